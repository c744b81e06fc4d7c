//! corecast: a thread-per-core live-media server.
//!
//! The crate is layered as in `docs/ARCHITECTURE.md`: pure media and protocol cores
//! (`media`, `http::proto`, `rtmp::proto`) that never touch a socket or a clock,
//! shard-local stream logic (`stream`), and thin glommio drivers (`http::server`,
//! `rtmp`, `source`) started by the `runtime`.
#![deny(missing_docs)]

pub mod auth;
pub mod config;
pub mod http;
pub mod limit;
pub mod media;
pub mod rtmp;
pub mod rtp;
pub mod rtsp;
pub mod runtime;
pub mod sdp;
pub mod session;
pub mod shard;
pub mod source;
pub mod stats;
pub mod stream;
pub mod tls;
pub mod webrtc;
