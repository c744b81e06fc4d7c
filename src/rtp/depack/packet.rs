//! The RTP fixed header (RFC 3550 §5.1): parsing, and writing for tests and tools.

use super::DepackError;
use bytes::{BufMut, Bytes, BytesMut};

/// Length of the fixed RTP header.
const FIXED_HEADER: usize = 0x0C;
/// First byte: version bits.
const VERSION_SHIFT: u8 = 6;
/// The only RTP version.
const VERSION: u8 = 2;
/// First byte: padding flag.
const PADDING: u8 = 0x20;
/// First byte: header extension flag.
const EXTENSION: u8 = 0x10;
/// First byte: CSRC count.
const CSRC_COUNT: u8 = 0x0F;
/// Second byte: marker bit.
const MARKER: u8 = 0x80;
/// Second byte: payload type.
const PAYLOAD_TYPE: u8 = 0x7F;
/// Header extension: 16-bit profile, 16-bit length in 32-bit words.
const EXTENSION_HEADER: usize = 4;
/// RTCP packet types SR..APP as they appear in an RTP payload type field (200..=204 with
/// the marker bit taken out, RFC 5761 §4).
const RTCP_AS_PAYLOAD_TYPE: std::ops::RangeInclusive<u8> = 0x48..=0x4C;

/// One RTP packet: the header fields a depacketizer needs and the payload, without
/// CSRCs, header extension or padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Marker bit (video: last packet of an access unit).
    pub marker: bool,
    /// Sequence number.
    pub sequence: u16,
    /// RTP timestamp in the track clock.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
    /// The payload: a zero-copy slice of the parsed buffer.
    pub payload: Bytes,
}

impl RtpPacket {
    /// Parses an RTP packet (version 2): skips the CSRC list and the header extension,
    /// removes padding, and slices the payload out of `data` without copying. An empty
    /// payload is valid here. Rejects packets whose payload type is an RTCP packet type
    /// (RTCP sent on the RTP channel).
    pub fn parse(data: Bytes) -> Result<RtpPacket, DepackError> {
        let len = data.len();
        let truncated = |need| DepackError::Truncated { len, need };
        let fixed: [u8; FIXED_HEADER] = data
            .first_chunk::<FIXED_HEADER>()
            .copied()
            .ok_or(truncated(FIXED_HEADER))?;
        let [b0, b1, s0, s1, t0, t1, t2, t3, c0, c1, c2, c3] = fixed;
        let version = b0 >> VERSION_SHIFT;
        if version != VERSION {
            return Err(DepackError::Version(version));
        }
        let payload_type = b1 & PAYLOAD_TYPE;
        if RTCP_AS_PAYLOAD_TYPE.contains(&payload_type) {
            return Err(DepackError::RtcpOnRtpChannel(b1));
        }
        let mut start = FIXED_HEADER + 4 * usize::from(b0 & CSRC_COUNT);
        if b0 & EXTENSION != 0 {
            let words = data
                .get(start + 2..start + EXTENSION_HEADER)
                .and_then(|w| w.first_chunk::<2>())
                .map(|w| usize::from(u16::from_be_bytes(*w)))
                .ok_or(truncated(start + EXTENSION_HEADER))?;
            start += EXTENSION_HEADER + 4 * words;
        }
        if start > len {
            return Err(truncated(start));
        }
        let mut end = len;
        if b0 & PADDING != 0 {
            let available = len - start;
            let padding = data.last().map_or(0, |p| usize::from(*p));
            if padding == 0 || padding > available {
                return Err(DepackError::Padding { padding, available });
            }
            end -= padding;
        }
        Ok(RtpPacket {
            payload_type,
            marker: b1 & MARKER != 0,
            sequence: u16::from_be_bytes([s0, s1]),
            timestamp: u32::from_be_bytes([t0, t1, t2, t3]),
            ssrc: u32::from_be_bytes([c0, c1, c2, c3]),
            payload: data.slice(start..end),
        })
    }

    /// Writes the packet with a 12-byte header (no CSRC, extension or padding).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(FIXED_HEADER + self.payload.len());
        out.put_u8(VERSION << VERSION_SHIFT);
        out.put_u8(u8::from(self.marker) << 7 | (self.payload_type & PAYLOAD_TYPE));
        out.put_u16(self.sequence);
        out.put_u32(self.timestamp);
        out.put_u32(self.ssrc);
        out.put_slice(&self.payload);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3550 §5.1 layout, written by hand: V=2, M=1, PT=96, seq 0x1234, ts
    /// 0xDEADBEEF, SSRC 0x01020304, payload 3 bytes.
    const PLAIN: &[u8] = &[
        0x80, 0xE0, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 0x01, 0x02, 0x03, 0x04, 0x65, 0x88, 0x80,
    ];

    fn parse(b: &[u8]) -> Result<RtpPacket, DepackError> {
        RtpPacket::parse(Bytes::copy_from_slice(b))
    }

    #[test]
    fn fixed_header_fields() {
        let data = Bytes::from_static(PLAIN);
        let p = RtpPacket::parse(data.clone()).unwrap();
        assert_eq!(p.payload_type, 96);
        assert!(p.marker);
        assert_eq!(p.sequence, 0x1234);
        assert_eq!(p.timestamp, 0xDEAD_BEEF);
        assert_eq!(p.ssrc, 0x0102_0304);
        assert_eq!(&p.payload[..], &[0x65, 0x88, 0x80]);
        // Zero-copy.
        assert_eq!(p.payload.as_ptr(), data[12..].as_ptr());
        assert_eq!(p.to_bytes(), data);
        // Header only: an empty payload.
        assert!(parse(&PLAIN[..12]).unwrap().payload.is_empty());
    }

    #[test]
    fn csrcs_extension_and_padding_are_skipped() {
        // CC=2, X=1, P=1: two CSRCs, a one-word extension (RFC 8285 one-byte profile
        // 0xBEDE), payload AB CD, then 3 bytes of padding.
        let pkt = [
            0xB2, 0x60, 0x00, 0x01, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x20, // fixed
            0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22, // CSRCs
            0xBE, 0xDE, 0x00, 0x01, 0x10, 0xAA, 0x00, 0x00, // extension
            0xAB, 0xCD, // payload
            0x00, 0x00, 0x03, // padding
        ];
        let p = parse(&pkt).unwrap();
        assert!(!p.marker);
        assert_eq!(p.payload_type, 96);
        assert_eq!(&p.payload[..], &[0xAB, 0xCD]);
        // Padding taking the whole payload.
        let mut all_pad = pkt[..28].to_vec();
        all_pad.extend_from_slice(&[0, 0, 0, 4]);
        assert!(parse(&all_pad).unwrap().payload.is_empty());
    }

    #[test]
    fn malformed_headers_are_errors() {
        // Short fixed header.
        for n in 0..12 {
            assert_eq!(
                parse(&PLAIN[..n]),
                Err(DepackError::Truncated { len: n, need: 12 })
            );
        }
        // Versions 0, 1, 3.
        for v in [0x00, 0x40, 0xC0] {
            let mut b = PLAIN.to_vec();
            b[0] = v;
            assert_eq!(parse(&b), Err(DepackError::Version(v >> 6)));
        }
        // CSRC count past the end: 15 CSRCs need 72 bytes.
        let mut b = PLAIN.to_vec();
        b[0] = 0x8F;
        assert_eq!(parse(&b), Err(DepackError::Truncated { len: 15, need: 72 }));
        // Extension header cut, and extension length past the end.
        let mut b = PLAIN[..12].to_vec();
        b[0] = 0x90;
        b.extend_from_slice(&[0xBE, 0xDE]);
        assert_eq!(parse(&b), Err(DepackError::Truncated { len: 14, need: 16 }));
        b.extend_from_slice(&[0xFF, 0xFF, 0x00]);
        assert_eq!(
            parse(&b),
            Err(DepackError::Truncated {
                len: 17,
                need: 16 + 4 * 0xFFFF
            })
        );
        // Padding longer than the payload, and a zero padding count.
        let mut b = PLAIN.to_vec();
        b[0] = 0xA0;
        b[14] = 4;
        assert_eq!(
            parse(&b),
            Err(DepackError::Padding {
                padding: 4,
                available: 3
            })
        );
        b[14] = 0;
        assert_eq!(
            parse(&b),
            Err(DepackError::Padding {
                padding: 0,
                available: 3
            })
        );
        // Padding flag on a header-only packet: the count byte would be in the header.
        let mut b = PLAIN[..12].to_vec();
        b[0] = 0xA0;
        assert!(matches!(parse(&b), Err(DepackError::Padding { .. })));
        // An RTCP receiver report (PT 201) on the RTP channel.
        let rr = [0x80, 0xC9, 0x00, 0x01, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(parse(&rr), Err(DepackError::RtcpOnRtpChannel(0xC9)));
    }
}
