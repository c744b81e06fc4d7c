//! The sans-IO RTSP client core: messages (and, as ingest grows, SDP, auth, the session
//! state machine and depacketizers). Nothing here touches a socket or a clock.

pub mod message;
