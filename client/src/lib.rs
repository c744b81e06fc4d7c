//! Clients of corecast's own protocols, used by the integration tests and the load tool.
//!
//! A crate of its own (`corecast-client`): the server library does not ship it.
//!
//! WHEP (WebRTC playback):
//! - [`WhepPeer`] is the sans-IO viewer: offer, answer, datagrams in, datagrams and a
//!   deadline out, counters ([`ViewerStats`]) and, in [`ReceiveMode::Full`], a record of
//!   every frame str0m reassembled ([`FrameRecord`]). A load tool drives many of them
//!   from one event loop.
//! - [`WhepViewer`] is a blocking driver for one peer on a `std::net::UdpSocket`, with
//!   the WHEP signaling (`POST` offer, `DELETE` session) done by [`http`].
//! - [`rtp`] counts media from clear-text RTP headers (the `Light` mode) and measures
//!   frame coverage.
//!
//! WHIP (WebRTC ingest):
//! - [`WhipPeer`] is the sans-IO publisher: a send-only offer (H.264 constrained
//!   baseline, packetization-mode 1, with RTX; Opus), frames in (AVCC or Annex B),
//!   datagrams and a deadline out, counters ([`WhipStats`]: packets, retransmissions,
//!   NACKs, PLIs, FIRs, REMBs) and loss injection for tests ([`WhipPeer::set_drop`]).
//! - [`WhipPublisher`] is a blocking driver for one peer on a `std::net::UdpSocket`,
//!   with the WHIP signaling (`POST` offer with an optional bearer token, `DELETE`
//!   session) and a real-time loop over recorded frames
//!   ([`WhipPublisher::publish_for`]).
#![deny(missing_docs)]

pub mod http;
pub mod publisher;
pub mod rtp;
pub mod viewer;
pub mod whep;
pub mod whip;

pub use publisher::{WhipPublisher, post_whip_offer, post_whip_offer_from};
pub use viewer::{Answered, WhepViewer, post_offer, post_offer_from};
pub use whep::{
    DEFAULT_MAX_FRAMES, Datagram, FrameRecord, PeerClosed, ReceiveMode, TrackKind, ViewerStats,
    WhepPeer, annexb_nal_types, init_crypto,
};
pub use whip::{WhipOptions, WhipPeer, WhipStats, to_annex_b};

/// Why a WHEP or WHIP client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The HTTP exchange failed (connect, time-out, malformed response).
    #[error(transparent)]
    Http(#[from] http::HttpError),
    /// The server answered with a status other than the expected one.
    #[error("{method} {path}: HTTP {status}: {body}")]
    Status {
        /// Method of the request.
        method: &'static str,
        /// Path of the request.
        path: String,
        /// Status code.
        status: u16,
        /// Body as text.
        body: String,
    },
    /// `201 Created` without a `Location` header.
    #[error("POST {0}: 201 without a Location header")]
    NoLocation(String),
    /// The answer is not SDP str0m accepts.
    #[error("bad SDP answer: {0}")]
    BadAnswer(String),
    /// str0m refused an operation.
    #[error("WebRTC: {0}")]
    Rtc(String),
    /// The UDP socket failed.
    #[error("UDP socket: {0}")]
    Io(#[from] std::io::Error),
    /// The peer stopped (DTLS closed by the server, or str0m failed).
    #[error("WebRTC session ended: {0:?}")]
    Closed(PeerClosed),
    /// ICE and DTLS did not come up within the time given.
    #[error("ICE and DTLS not up within {0:?}")]
    NotConnected(std::time::Duration),
    /// The API was used out of order.
    #[error("misuse: {0}")]
    Misuse(&'static str),
}

impl ClientError {
    /// The HTTP status of a refused request.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The body of a refused request.
    pub fn body(&self) -> Option<&str> {
        match self {
            ClientError::Status { body, .. } => Some(body),
            _ => None,
        }
    }
}
