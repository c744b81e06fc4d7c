//! AAC in RTP per RFC 3640 (`mpeg4-generic`, modes AAC-hbr and AAC-lbr): an AU header
//! section (16-bit AU-headers-length in bits, then one AU-size + AU-Index/AU-Index-delta
//! per access unit), then the access units.
//!
//! Supported `fmtp` fields: `sizelength`, `indexlength`, `indexdeltalength`. CTS/DTS
//! deltas, RAP flags, stream state and the auxiliary section are assumed absent (the
//! AAC modes do not use them). Each AU lasts 1024 samples (AAC-LC; HE-AAC with a
//! doubled RTP clock would be 2048 and is not detected). An AU larger than a packet is
//! sent fragmented: one AU header carrying the whole AU's size in each packet, the
//! marker bit on the last.

use super::{RtpPacket, Unit};
use crate::media::bits::BitReader;
use bytes::BytesMut;

/// Samples per AAC frame.
const FRAME_SAMPLES: i64 = 0x400;
/// AU-headers-length field.
const HEADERS_LENGTH: usize = 2;
/// Widest supported header field.
const MAX_FIELD_BITS: u8 = 32;

/// An AU being reassembled from fragments.
struct Fragments {
    rtp_time: u32,
    /// The whole AU's size, from each fragment's AU header.
    size: usize,
    buf: BytesMut,
    /// Larger than the frame limit: not stored, dropped at its end.
    oversized: bool,
    /// A fragment was lost or malformed: the rest is skipped, dropped at its end.
    broken: bool,
}

/// AAC depacketizer state.
pub(super) struct AacDepack {
    size_length: u8,
    index_length: u8,
    index_delta_length: u8,
    max: usize,
    frag: Option<Fragments>,
    /// Scratch: (AU size, serial number offset) of the current packet.
    aus: Vec<(usize, i64)>,
}

impl AacDepack {
    /// A depacketizer for the `fmtp` bit lengths; frames of at most `max` bytes.
    pub fn new(size_length: u8, index_length: u8, index_delta_length: u8, max: usize) -> Self {
        AacDepack {
            size_length,
            index_length,
            index_delta_length,
            max,
            frag: None,
            aus: Vec::new(),
        }
    }

    /// Sets the frame limit.
    pub fn set_max_frame(&mut self, max: usize) {
        self.max = max;
    }

    /// Forgets a partial fragmented AU; true if there was one.
    pub fn reset(&mut self) -> bool {
        self.frag.take().is_some()
    }

    /// A packet arrived after its successors: the fragmented AU it belongs to, if any,
    /// is incomplete.
    pub fn late(&mut self, pkt: &RtpPacket) {
        if let Some(f) = &mut self.frag
            && f.rtp_time == pkt.timestamp
        {
            f.broken = true;
        }
    }

    /// Takes one packet in sequence order.
    pub fn push(&mut self, pkt: &RtpPacket, lost_before: bool, units: &mut Vec<Unit>) {
        if let Some(f) = &mut self.frag {
            if f.rtp_time != pkt.timestamp {
                if !lost_before && !f.broken {
                    units.push(Unit::Malformed("fragmented AAC AU without its last part"));
                }
                self.drop_fragments(units);
            } else if lost_before {
                // Fragments of this AU are missing: the rest of it is skipped.
                f.broken = true;
            }
        }
        let payload = &pkt.payload;
        if payload.is_empty() {
            units.push(Unit::Malformed("empty AAC payload"));
            return;
        }
        let Some(data_start) = self.read_headers(payload) else {
            units.push(Unit::Malformed("invalid AU header section"));
            self.drop_fragments(units);
            return;
        };
        let data = payload.slice(data_start.min(payload.len())..);
        let total = self
            .aus
            .iter()
            .fold(0usize, |sum, (size, _)| sum.saturating_add(*size));
        if let [(size, _)] = self.aus[..]
            && size > data.len()
        {
            self.fragment(pkt, size, &data, units);
            return;
        }
        if let Some(f) = &self.frag {
            if !f.broken {
                units.push(Unit::Malformed("fragmented AAC AU interrupted"));
            }
            self.drop_fragments(units);
        }
        if total != data.len() || self.aus.is_empty() {
            units.push(Unit::Malformed("AU sizes do not match the payload"));
            return;
        }
        let mut pos = 0usize;
        for &(size, serial) in &self.aus {
            let Some(end) = pos.checked_add(size).filter(|end| *end <= data.len()) else {
                break;
            };
            let au = data.slice(pos..end);
            pos = end;
            if size > self.max {
                units.push(Unit::Dropped {
                    rtp_time: pkt.timestamp,
                    oversized: true,
                });
                continue;
            }
            units.push(Unit::Frame {
                rtp_time: pkt.timestamp,
                offset: serial.saturating_mul(FRAME_SAMPLES),
                keyframe: true,
                data: au,
                duration: Some(FRAME_SAMPLES),
            });
        }
    }

    /// One fragment of an AU of `size` bytes.
    fn fragment(&mut self, pkt: &RtpPacket, size: usize, data: &[u8], units: &mut Vec<Unit>) {
        if let Some(f) = &mut self.frag
            && f.size != size
            && !f.broken
        {
            units.push(Unit::Malformed("AU size changed between fragments"));
            f.broken = true;
        }
        let max = self.max;
        let f = self.frag.get_or_insert_with(|| Fragments {
            rtp_time: pkt.timestamp,
            size,
            buf: BytesMut::new(),
            oversized: size > max,
            broken: false,
        });
        if !f.oversized && !f.broken {
            if f.buf.len() + data.len() > size {
                units.push(Unit::Malformed("AU fragments longer than the AU"));
                f.broken = true;
            } else {
                if f.buf.is_empty() {
                    f.buf.reserve(size);
                }
                f.buf.extend_from_slice(data);
            }
        }
        let complete = !f.oversized && !f.broken && f.buf.len() == f.size;
        if !complete && !pkt.marker {
            return;
        }
        let Some(f) = self.frag.take() else {
            return;
        };
        if complete {
            units.push(Unit::Frame {
                rtp_time: f.rtp_time,
                offset: 0,
                keyframe: true,
                data: f.buf.freeze(),
                duration: Some(FRAME_SAMPLES),
            });
        } else {
            units.push(Unit::Dropped {
                rtp_time: f.rtp_time,
                oversized: f.oversized,
            });
        }
    }

    /// Drops the AU under reassembly.
    fn drop_fragments(&mut self, units: &mut Vec<Unit>) {
        if let Some(f) = self.frag.take() {
            units.push(Unit::Dropped {
                rtp_time: f.rtp_time,
                oversized: f.oversized,
            });
        }
    }

    /// Reads the AU header section into `self.aus`; returns where the AUs start, `None`
    /// if the section is malformed.
    fn read_headers(&mut self, payload: &[u8]) -> Option<usize> {
        self.aus.clear();
        let widths = [self.size_length, self.index_length, self.index_delta_length];
        if widths.iter().any(|w| *w > MAX_FIELD_BITS) {
            return None;
        }
        if widths == [0, 0, 0] {
            // No AU header section: the payload is one AU.
            self.aus.push((payload.len(), 0));
            return Some(0);
        }
        let (bits, rest) = payload.split_first_chunk::<HEADERS_LENGTH>()?;
        let bits = usize::from(u16::from_be_bytes(*bits));
        let section = rest.get(..bits.div_ceil(8))?;
        let mut r = BitReader::with_len(section, bits);
        let mut serial = 0i64;
        while r.bits_left() > 0 {
            let first = self.aus.is_empty();
            let index_bits = if first {
                self.index_length
            } else {
                self.index_delta_length
            };
            let size = r.bits(u32::from(self.size_length)).ok()? as usize;
            let index = i64::from(r.bits(u32::from(index_bits)).ok()?);
            if !first {
                // AU-Index-delta: the serial number grows by 1 + delta (interleaving).
                serial += 1 + index;
            }
            if self.size_length == 0 {
                // No sizes: the rest of the payload is one AU.
                self.aus.push((
                    payload.len().saturating_sub(HEADERS_LENGTH + section.len()),
                    0,
                ));
                break;
            }
            // Each AU has at least one byte: no more AUs than payload bytes.
            if size == 0 || self.aus.len() >= payload.len() {
                return None;
            }
            self.aus.push((size, serial));
        }
        if self.aus.is_empty() {
            return None;
        }
        Some(HEADERS_LENGTH + section.len())
    }
}
