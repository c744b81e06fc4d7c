//! H.264 RTP payloads per RFC 6184, packetization-mode 1 (non-interleaved): single NAL
//! unit packets, STAP-A aggregates and FU-A fragments.

use super::packer::{NalFormat, Packer, build, equal_pieces};
use super::{FU_E, FU_S};
use super::{MAX_PAYLOADS_PER_FRAME, PacketizedFrame, RtpError, RtpPayload, check_max_payload};
use crate::media::h264::nal::{AUD, FILLER, FU_A, IDR, LAST_SINGLE, PPS, SPS, STAP_A, TYPE_MASK};
use crate::media::{Codec, Frame, Track, avcc_nal_units};
use bytes::Bytes;

/// NAL unit header: forbidden_zero_bit.
const NAL_F: u8 = 0x80;
/// NAL unit header: nal_ref_idc bits.
const NAL_NRI: u8 = 0x60;
/// Size of an AVCC length prefix.
const AVCC_PREFIX: usize = 4;
/// STAP-A header byte.
const STAP_A_HEADER: usize = 1;
/// STAP-A per-unit 16-bit size field.
const STAP_A_SIZE: usize = 2;
/// FU indicator plus FU header.
const FU_A_HEADER: usize = 2;

/// Packetizes one H.264 access unit (AVCC, 4-byte length prefixes) per RFC 6184,
/// packetization-mode 1.
///
/// - AUD (type 9), filler data (12), empty units and units of the RTP/reserved types
///   0 and 24..=31 are dropped.
/// - A keyframe (an IDR slice, or `frame.keyframe`) is preceded by the track's SPS and
///   PPS unless the frame carries both in-band.
/// - Consecutive units that fit together in `max_payload` are aggregated into STAP-A
///   (greedily, in order); a unit that fits alone becomes a single NAL unit packet;
///   a larger one is cut into FU-A fragments of one size, each at most `max_payload`
///   bytes, the last possibly shorter (equal-length datagrams leave as one UDP GSO
///   message).
/// - The marker bit is set on the last payload only.
///
/// Errors: empty frame, no sendable NAL unit, a truncated length prefix or unit,
/// `max_payload` out of range, more than [`MAX_PAYLOADS_PER_FRAME`] payloads (counted
/// before aggregation), or a non-H.264 track.
pub fn packetize_h264(
    track: &Track,
    frame: &Frame,
    max_payload: usize,
) -> Result<PacketizedFrame, RtpError> {
    check_max_payload(max_payload)?;
    if track.codec != Codec::H264 {
        return Err(RtpError::UnsupportedCodec(track.codec));
    }
    if frame.data.is_empty() {
        return Err(RtpError::EmptyFrame);
    }

    // First pass: validate the framing, see what the access unit carries and bound the
    // number of payloads before allocating any.
    let mut consumed = 0usize;
    let (mut has_sps, mut has_pps, mut has_idr) = (false, false, false);
    let mut bound = 0usize;
    for nal in avcc_nal_units(&frame.data) {
        consumed += AVCC_PREFIX + nal.len();
        let Some(kind) = sendable_type(&nal) else {
            continue;
        };
        has_sps |= kind == SPS;
        has_pps |= kind == PPS;
        has_idr |= kind == IDR;
        bound += payload_bound(nal.len(), max_payload);
    }
    if consumed != frame.data.len() {
        return Err(RtpError::Truncated { offset: consumed });
    }
    if bound == 0 {
        return Err(RtpError::NoNalUnits);
    }
    let keyframe = has_idr || frame.keyframe;
    let insert_params = keyframe && !(has_sps && has_pps);
    let params = track.params.sps.iter().chain(&track.params.pps);
    if insert_params {
        bound = params
            .clone()
            .filter(|ps| sendable_type(ps).is_some())
            .fold(bound, |b, ps| {
                b.saturating_add(payload_bound(ps.len(), max_payload))
            });
    }
    if bound > MAX_PAYLOADS_PER_FRAME {
        return Err(RtpError::TooManyPayloads(bound));
    }

    let mut packer = Packer::<H264>::new(max_payload, bound);
    if insert_params {
        for ps in params.filter(|ps| sendable_type(ps).is_some()) {
            packer.push(ps);
        }
    }
    for nal in avcc_nal_units(&frame.data) {
        if sendable_type(&nal).is_some() {
            packer.push(&nal);
        }
    }
    let mut payloads = packer.finish();
    if let Some(last) = payloads.last_mut() {
        last.marker = true;
    }
    Ok(PacketizedFrame {
        payloads,
        // Wrapping truncation to the 32-bit RTP clock is the intent.
        rtp_time: frame.pts as u32,
        keyframe,
    })
}

/// The NAL unit type if the unit is sent, `None` if it is dropped.
fn sendable_type(nal: &[u8]) -> Option<u8> {
    let kind = nal.first()? & TYPE_MASK;
    let plain = (0x01..=LAST_SINGLE).contains(&kind);
    (plain && kind != AUD && kind != FILLER).then_some(kind)
}

/// Most payloads a unit of `len` bytes can take (one, or its FU-A fragments).
fn payload_bound(len: usize, max_payload: usize) -> usize {
    if len <= max_payload {
        1
    } else {
        // The NAL header byte is carried in the FU headers, not in the fragments.
        (len - 1).div_ceil(max_payload - FU_A_HEADER)
    }
}

/// RFC 6184: STAP-A aggregation, FU-A fragmentation.
struct H264;

impl NalFormat for H264 {
    const AGG_HEADER: usize = STAP_A_HEADER;
    const AGG_SIZE: usize = STAP_A_SIZE;
    fn aggregate(units: &[Bytes], size: usize) -> RtpPayload {
        stap_a(units, size)
    }
    fn fragment(nal: &[u8], max: usize, out: &mut Vec<RtpPayload>) {
        fragment(nal, max, out)
    }
}

/// A STAP-A of `size` bytes: F is the OR of the units' F bits, NRI their maximum
/// (RFC 6184 §5.7.1), then each unit after its 16-bit size.
fn stap_a(units: &[Bytes], size: usize) -> RtpPayload {
    let (f, nri) = units.iter().fold((0u8, 0u8), |(f, nri), nal| {
        let h = nal.first().copied().unwrap_or(0);
        (f | (h & NAL_F), nri.max(h & NAL_NRI))
    });
    let data = build(size, |buf| {
        let Some((header, mut rest)) = buf.split_first_mut() else {
            return;
        };
        *header = f | nri | STAP_A;
        for nal in units {
            let Some((field, tail)) = std::mem::take(&mut rest).split_first_chunk_mut() else {
                return;
            };
            // Each unit is shorter than MAX_PAYLOAD_LIMIT, so its size fits 16 bits.
            *field = (nal.len() as u16).to_be_bytes();
            let Some((unit, tail)) = tail.split_at_mut_checked(nal.len()) else {
                return;
            };
            unit.copy_from_slice(nal);
            rest = tail;
        }
    });
    RtpPayload {
        data,
        marker: false,
    }
}

/// Cuts a unit longer than `max` into FU-A fragments of one size but the last, which
/// may be shorter ([`equal_pieces`]).
fn fragment(nal: &[u8], max: usize, out: &mut Vec<RtpPayload>) {
    let Some((&header, body)) = nal.split_first() else {
        return;
    };
    let indicator = (header & (NAL_F | NAL_NRI)) | FU_A;
    let kind = header & TYPE_MASK;
    for (first, last, chunk) in equal_pieces(body, max - FU_A_HEADER) {
        let mut fu_header = kind;
        if first {
            fu_header |= FU_S;
        }
        if last {
            fu_header |= FU_E;
        }
        let data = build(FU_A_HEADER + chunk.len(), |buf| {
            if let [a, b, rest @ ..] = buf {
                *a = indicator;
                *b = fu_header;
                rest.copy_from_slice(chunk);
            }
        });
        out.push(RtpPayload {
            data,
            marker: false,
        });
    }
}

/// Reassembles the NAL units of one packetization-mode 1 payload sequence (single NAL
/// unit packets, STAP-A, FU-A), in order, with no loss.
///
/// Test-only, for round-tripping [`packetize_h264`] (ingest uses [`super::depack`]): it does no sequence-number,
/// loss or timestamp handling and is not an ingest depacketizer. Output is bounded by
/// the input size. Errors on empty payloads, truncated STAP-A entries, FU-A fragments out
/// of order (no start, a second start, an unfinished unit) and packet types other than
/// 1..=23, 24 and 28.
#[cfg(test)]
pub(crate) fn depacketize_h264(payloads: &[&[u8]]) -> Result<Vec<Vec<u8>>, RtpError> {
    let mut units = Vec::new();
    let mut partial: Option<Vec<u8>> = None;
    for payload in payloads {
        let (&header, body) = payload
            .split_first()
            .ok_or(RtpError::Malformed("empty payload"))?;
        let kind = header & TYPE_MASK;
        if kind != FU_A && partial.is_some() {
            return Err(RtpError::Malformed("FU-A interrupted before its end"));
        }
        match kind {
            0x01..=LAST_SINGLE => units.push(payload.to_vec()),
            STAP_A => {
                if body.is_empty() {
                    return Err(RtpError::Malformed("empty STAP-A"));
                }
                let mut rest = body;
                while !rest.is_empty() {
                    let (size, tail) = rest
                        .split_first_chunk::<STAP_A_SIZE>()
                        .ok_or(RtpError::Malformed("truncated STAP-A size"))?;
                    let size = usize::from(u16::from_be_bytes(*size));
                    if size == 0 {
                        return Err(RtpError::Malformed("empty STAP-A unit"));
                    }
                    let (unit, tail) = tail
                        .split_at_checked(size)
                        .ok_or(RtpError::Malformed("truncated STAP-A unit"))?;
                    units.push(unit.to_vec());
                    rest = tail;
                }
            }
            FU_A => {
                let (&fu_header, chunk) = body
                    .split_first()
                    .ok_or(RtpError::Malformed("FU-A without FU header"))?;
                let (start, end) = (fu_header & FU_S != 0, fu_header & FU_E != 0);
                let nal_header = (header & (NAL_F | NAL_NRI)) | (fu_header & TYPE_MASK);
                if start {
                    if end {
                        return Err(RtpError::Malformed("FU-A with both S and E"));
                    }
                    if partial.is_some() {
                        return Err(RtpError::Malformed("FU-A start inside a unit"));
                    }
                    let mut unit = Vec::with_capacity(1 + chunk.len());
                    unit.push(nal_header);
                    unit.extend_from_slice(chunk);
                    partial = Some(unit);
                } else {
                    let unit = partial
                        .as_mut()
                        .ok_or(RtpError::Malformed("FU-A continuation without start"))?;
                    if unit.first() != Some(&nal_header) {
                        return Err(RtpError::Malformed("FU-A header changed within a unit"));
                    }
                    unit.extend_from_slice(chunk);
                    if end && let Some(unit) = partial.take() {
                        units.push(unit);
                    }
                }
            }
            _ => return Err(RtpError::Malformed("unsupported packet type")),
        }
    }
    if partial.is_some() {
        return Err(RtpError::Malformed("unfinished FU-A"));
    }
    Ok(units)
}

#[cfg(test)]
mod tests;
