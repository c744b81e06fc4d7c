//! WebRTC egress: per-shard str0m peers behind one UDP socket.
//!
//! Layers, pure to driver:
//! - [`offer`]: reads a viewer's SDP offer and picks the offered payload type for each
//!   of the stream's tracks (or says why none fits).
//! - [`table`]: the shard's sessions, routing of datagrams by remote address (first STUN
//!   by ufrag) and one deadline heap for all session timers.
//! - [`peer`]: one viewer's str0m `Rtc` (ICE-lite, RTP mode) and the per-viewer RTP
//!   state; writes shared, once-per-shard packetized frames.
//! - [`ingest`]: one WHIP publisher's str0m `Rtc` (ICE-lite, RTP mode, receiving), its
//!   depacketizers and keyframe requests; what it receives becomes the stream's tracks
//!   and frames.
//! - [`engine`]: the sans-IO state of a shard's WebRTC side, tying the three together.
//! - [`handle`]: the shard-local [`Handle`] through which signaling reaches the engine
//!   the UDP driver runs, the process's session [`Registry`], and [`SessionMsg`]s to
//!   other shards over the mesh.
//! - [`signal`] and [`driver`]: the glommio side: offers from WHEP/WebSocket become
//!   sessions; one UDP socket per shard, batched sends.

pub mod driver;
pub mod engine;
pub mod handle;
pub mod ingest;
pub mod offer;
pub mod peer;
pub mod signal;
pub mod table;

pub use handle::{Handle, Registry, SessionMsg, SessionTx};

use std::sync::OnceLock;
use str0m::config::DtlsCert;

/// The process's DTLS certificate, made once (making one costs milliseconds; every
/// session reuses it). Also installs the crypto provider. `None` if the crypto
/// provider cannot make one.
pub fn process_cert() -> Option<DtlsCert> {
    static CERT: OnceLock<Option<DtlsCert>> = OnceLock::new();
    CERT.get_or_init(|| {
        let provider = str0m::crypto::from_feature_flags();
        let cert = provider.dtls_provider.generate_certificate();
        provider.install_process_default();
        cert
    })
    .clone()
}
