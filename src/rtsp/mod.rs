//! RTSP camera ingest. `proto` is the sans-IO client core (messages, SDP, the session);
//! `ingest` is the sans-IO lifecycle of one pulled camera around it. The glommio driver
//! that runs them is `source::rtsp`.

pub mod ingest;
pub mod proto;
