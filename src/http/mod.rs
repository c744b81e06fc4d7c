//! HTTP/1.1 and WebSocket: a sans-IO request parser and response writer (`proto`), a
//! sans-IO WebSocket session over tungstenite (`ws`), the stream list, health and metrics
//! (`api`), the management API (`admin`),
//! WHEP (`whep`), the MSE viewer (`mse`, fMP4 over a WebSocket; driven by `mse_conn`),
//! the browser boundaries of `/api` and `/ws` (`origin`) and the glommio
//! connection driver (`server`). WebRTC signaling itself
//! (the offer path, the WebSocket messages) lives in `webrtc::signal`; HTTP only carries
//! it to the shard's `webrtc::Handle`.

pub mod admin;
pub mod api;
pub mod mse;
pub mod mse_conn;
pub mod origin;
pub mod proto;
pub mod server;
pub mod whep;
pub mod whip;
pub mod ws;
