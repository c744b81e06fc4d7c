//! RTSP camera ingest. `proto` is the sans-IO client core; the glommio driver that pulls
//! cameras comes with it.

pub mod proto;
