//! Audio payloads that are one frame each: Opus (RFC 7587) and G.711 (RFC 3551).

use super::{RtpPacket, Unit};

/// Opus frame sizes in 48 kHz ticks by TOC configuration (RFC 6716 §3.1, table 2):
/// SILK (0–11) 10/20/40/60 ms, hybrid (12–15) 10/20 ms, CELT (16–31) 2.5/5/10/20 ms.
const OPUS_FRAME_TICKS: [i64; 32] = [
    480, 960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 480, 960, 120, 240,
    480, 960, 120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960,
];
/// Opus code 3: frame count bits of the second byte.
const OPUS_COUNT_MASK: u8 = 0x3F;

/// Which one-frame payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RawKind {
    /// Opus: duration from the TOC byte, in 48 kHz ticks (the RTP clock RFC 7587 fixes).
    Opus,
    /// G.711: one byte per sample (mono).
    G711,
}

/// Payload in, frame out.
pub(super) struct RawAudio {
    kind: RawKind,
    max: usize,
}

impl RawAudio {
    /// Frames of at most `max` bytes.
    pub fn new(kind: RawKind, max: usize) -> RawAudio {
        RawAudio { kind, max }
    }

    /// Sets the frame limit.
    pub fn set_max_frame(&mut self, max: usize) {
        self.max = max;
    }

    /// The payload is the frame, a keyframe. Loss needs no handling: each frame stands
    /// alone.
    pub fn push(&mut self, pkt: &RtpPacket, units: &mut Vec<Unit>) {
        if pkt.payload.is_empty() {
            units.push(Unit::Malformed("empty audio payload"));
            return;
        }
        if pkt.payload.len() > self.max {
            units.push(Unit::Dropped {
                rtp_time: pkt.timestamp,
                oversized: true,
            });
            return;
        }
        let duration = match self.kind {
            RawKind::Opus => opus_duration(&pkt.payload),
            RawKind::G711 => i64::try_from(pkt.payload.len()).ok(),
        };
        units.push(Unit::Frame {
            rtp_time: pkt.timestamp,
            offset: 0,
            keyframe: true,
            data: pkt.payload.clone(),
            duration,
        });
    }
}

/// The duration of an Opus packet from its TOC byte (RFC 6716 §3.1), in 48 kHz ticks;
/// `None` if a code 3 packet lacks its frame count.
fn opus_duration(packet: &[u8]) -> Option<i64> {
    let toc = *packet.first()?;
    let size = *OPUS_FRAME_TICKS.get(usize::from(toc >> 3))?;
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => i64::from(packet.get(1)? & OPUS_COUNT_MASK),
    };
    Some(size * frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_toc_durations() {
        // RFC 6716 §3.1: config 1 (SILK NB 20 ms), code 0.
        assert_eq!(opus_duration(&[0x08, 0xAA]), Some(960));
        // Config 31 (CELT FB 20 ms), code 1: two frames.
        assert_eq!(opus_duration(&[0xF9]), Some(1920));
        // Config 16 (CELT NB 2.5 ms), code 3 with 4 frames.
        assert_eq!(opus_duration(&[0x83, 0x04]), Some(480));
        // Config 3 (SILK NB 60 ms), code 2.
        assert_eq!(opus_duration(&[0x1A]), Some(5760));
        // Code 3 without its count byte.
        assert_eq!(opus_duration(&[0x03]), None);
        assert_eq!(opus_duration(&[]), None);
    }
}
