//! Audio RTP payloads: Opus (RFC 7587) and G.711 (RFC 3551), one frame per packet.

use super::{PacketizedFrame, RtpError, RtpPayload, check_max_payload};
use crate::media::{Frame, MediaKind};
use std::sync::Arc;

/// Packetizes one Opus packet or one block of G.711 samples into a single RTP payload.
///
/// The payload is the frame unchanged. The caller must only pass Opus or G.711 frames
/// (AAC needs RFC 3640 AU headers and is not handled). A frame larger than
/// `max_payload` is an error, not split: the payloads of a [`PacketizedFrame`] share one
/// RTP timestamp, so G.711 sample blocks cannot be cut here (the source should emit
/// 20 ms frames, 160 bytes at 8 kHz). The marker bit is clear: RFC 3551 §4.1 and
/// RFC 7587 §4.1 reserve it for the first packet after a silence (DTX), which a
/// continuous stream never sends.
pub fn packetize_audio(frame: &Frame, max_payload: usize) -> Result<PacketizedFrame, RtpError> {
    check_max_payload(max_payload)?;
    if frame.kind != MediaKind::Audio {
        return Err(RtpError::WrongKind);
    }
    if frame.data.is_empty() {
        return Err(RtpError::EmptyFrame);
    }
    if frame.data.len() > max_payload {
        return Err(RtpError::FrameTooLarge {
            len: frame.data.len(),
            max: max_payload,
        });
    }
    Ok(PacketizedFrame {
        payloads: vec![RtpPayload {
            data: Arc::from(&frame.data[..]),
            marker: false,
        }],
        // Wrapping truncation to the 32-bit RTP clock is the intent.
        rtp_time: frame.pts as u32,
        keyframe: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::TrackId;
    use crate::rtp::MAX_PAYLOAD;
    use bytes::Bytes;

    fn audio(pts: i64, data: &'static [u8]) -> Frame {
        Frame {
            track: TrackId(1),
            kind: MediaKind::Audio,
            keyframe: true,
            dts: pts,
            pts,
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn opus_frame_is_one_payload() {
        // An Opus TOC byte (config 31, stereo, one frame) and some body.
        let p = packetize_audio(&audio(960, &[0xFC, 0xFF, 0xFE, 0x01]), MAX_PAYLOAD).unwrap();
        assert_eq!(p.payloads.len(), 1);
        assert_eq!(&p.payloads[0].data[..], &[0xFC, 0xFF, 0xFE, 0x01]);
        assert!(!p.payloads[0].marker);
        assert_eq!(p.rtp_time, 960);
        assert!(p.keyframe);
    }

    #[test]
    fn rtp_time_wraps() {
        let p = packetize_audio(&audio(0x1_0000_0005, &[0xD5]), MAX_PAYLOAD).unwrap();
        assert_eq!(p.rtp_time, 5);
        let p = packetize_audio(&audio(-1, &[0xD5]), MAX_PAYLOAD).unwrap();
        assert_eq!(p.rtp_time, 0xFFFF_FFFF);
    }

    #[test]
    fn g711_limits() {
        static SAMPLES: [u8; 0xA0] = [0xD5; 0xA0];
        let p = packetize_audio(&audio(160, &SAMPLES), 0xA0).unwrap();
        assert_eq!(p.payloads[0].data.len(), 0xA0);
        assert_eq!(
            packetize_audio(&audio(160, &SAMPLES), 0x9F),
            Err(RtpError::FrameTooLarge {
                len: 0xA0,
                max: 0x9F
            })
        );
        assert_eq!(
            packetize_audio(&audio(0, &[]), MAX_PAYLOAD),
            Err(RtpError::EmptyFrame)
        );
        assert_eq!(
            packetize_audio(&audio(0, &[0xD5]), 0x02),
            Err(RtpError::MaxPayloadOutOfRange(0x02))
        );
        let mut video = audio(0, &[0xD5]);
        video.kind = MediaKind::Video;
        assert_eq!(
            packetize_audio(&video, MAX_PAYLOAD),
            Err(RtpError::WrongKind)
        );
    }
}
