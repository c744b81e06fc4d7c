//! The sans-IO RTSP client core that pulls IP cameras: URLs, messages, authentication,
//! SDP and the session state machine. Nothing here touches a socket or a clock: bytes and
//! `now` come in as arguments, bytes and events go out.

pub mod auth;
pub mod message;
pub mod sdp;
pub mod session;
pub mod url;
