//! RTP payload formats for WebRTC egress. Pure: frames in, RTP payloads out.
//!
//! A shard packetizes each frame once ([`packetize_h264`], [`packetize_audio`]); every
//! viewer's str0m `Rtc` (RTP mode) then writes the shared payloads with its own SSRC,
//! sequence numbers and timestamp offset. A payload is the RTP payload only: no RTP
//! header, which str0m writes. Payloads are `Arc<[u8]>` because str0m takes
//! `Into<Arc<[u8]>>` and keeps it without copying.
//!
//! Limits: `max_payload` must lie in [`MIN_PAYLOAD`]`..=`[`MAX_PAYLOAD_LIMIT`] and a frame
//! may produce at most [`MAX_PAYLOADS_PER_FRAME`] payloads; inputs outside are errors,
//! never panics.

mod audio;
pub mod depack;
mod h264;
mod h265;
mod packer;

pub use audio::packetize_audio;
#[cfg(test)]
pub(crate) use h264::depacketize_h264;
pub use h264::packetize_h264;
pub use h265::packetize_h265;

use crate::media::Codec;
use std::sync::Arc;

/// Fragmentation unit header (H.264 FU-A, H.265 FU): the first fragment of a NAL unit.
const FU_S: u8 = 0x80;
/// Fragmentation unit header: the last fragment of a NAL unit.
const FU_E: u8 = 0x40;

/// Default largest RTP payload: leaves room for the RTP header, header extensions and
/// SRTP tag within a 1280-byte IPv6 minimum MTU path.
pub const MAX_PAYLOAD: usize = 1200;

/// Smallest accepted `max_payload`: an FU-A fragment needs its 2-byte header plus one
/// byte of the NAL unit.
pub const MIN_PAYLOAD: usize = 0x03;

/// Largest accepted `max_payload`: a 65 507-byte UDP payload minus the 12-byte RTP header.
/// It also keeps every aggregated NAL unit within STAP-A's 16-bit size field.
pub const MAX_PAYLOAD_LIMIT: usize = 0xFFD7;

/// Most payloads one frame may produce (about 19 MB at [`MAX_PAYLOAD`]; an FLV tag is at
/// most 16 MB).
pub const MAX_PAYLOADS_PER_FRAME: usize = 0x4000;

/// One RTP payload, without the RTP header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPayload {
    /// The payload bytes, shared by every viewer.
    pub data: Arc<[u8]>,
    /// The RTP marker bit for this packet.
    pub marker: bool,
}

/// A frame cut into RTP payloads, ready to be written to any number of viewers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketizedFrame {
    /// The payloads in sending order; never empty.
    pub payloads: Vec<RtpPayload>,
    /// The frame's pts in the track clock, truncated to 32 bits (wrapping). Viewers add
    /// their own random offset.
    pub rtp_time: u32,
    /// Whether a decoder can start at this frame (video: IDR or flagged keyframe; audio:
    /// always).
    pub keyframe: bool,
}

/// Why a frame cannot be packetized (or payloads depacketized).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// The frame has no payload bytes.
    #[error("empty frame")]
    EmptyFrame,
    /// The frame has no NAL unit worth sending (after dropping AUD and filler data).
    #[error("frame has no NAL units")]
    NoNalUnits,
    /// An AVCC length prefix runs past the end of the frame.
    #[error("truncated AVCC NAL unit at byte {offset}")]
    Truncated {
        /// Offset of the first byte not covered by a complete NAL unit.
        offset: usize,
    },
    /// `max_payload` is outside [`MIN_PAYLOAD`]`..=`[`MAX_PAYLOAD_LIMIT`].
    #[error("max_payload {0} out of range")]
    MaxPayloadOutOfRange(usize),
    /// The frame would produce more than [`MAX_PAYLOADS_PER_FRAME`] payloads.
    #[error("frame needs {0} RTP payloads, more than allowed")]
    TooManyPayloads(usize),
    /// The track's codec is not handled by this packetizer.
    #[error("codec {} is not supported by this packetizer", .0.name())]
    UnsupportedCodec(Codec),
    /// An audio function got a video frame or the other way round.
    #[error("wrong media kind for this packetizer")]
    WrongKind,
    /// An audio frame does not fit one payload.
    #[error("audio frame of {len} bytes exceeds max_payload {max}")]
    FrameTooLarge {
        /// Frame size in bytes.
        len: usize,
        /// The `max_payload` asked for.
        max: usize,
    },
    /// A payload given to the test-only round-trip depacketizers violates RFC 6184 or
    /// RFC 7798 (ingest reports bad payloads through `depack::DepackOutput`).
    #[cfg(test)]
    #[error("malformed RTP payload: {0}")]
    Malformed(&'static str),
}

/// Packetizes a frame for its track's codec: H.264, H.265, or one Opus/G.711 frame per
/// payload. Other codecs (AAC, FLV pass-through audio) cannot be sent over WebRTC.
pub fn packetize(
    track: &crate::media::Track,
    frame: &crate::media::Frame,
    max_payload: usize,
) -> Result<PacketizedFrame, RtpError> {
    match track.codec {
        Codec::H264 => packetize_h264(track, frame, max_payload),
        Codec::H265 => packetize_h265(track, frame, max_payload),
        Codec::Opus | Codec::Pcma | Codec::Pcmu => packetize_audio(frame, max_payload),
        other => Err(RtpError::UnsupportedCodec(other)),
    }
}

/// Checks `max_payload` against [`MIN_PAYLOAD`]`..=`[`MAX_PAYLOAD_LIMIT`].
fn check_max_payload(max_payload: usize) -> Result<(), RtpError> {
    if (MIN_PAYLOAD..=MAX_PAYLOAD_LIMIT).contains(&max_payload) {
        Ok(())
    } else {
        Err(RtpError::MaxPayloadOutOfRange(max_payload))
    }
}
