//! H.265 RTP payloads per RFC 7798, without DONL (`sprop-max-don-diff` 0): single NAL
//! unit packets, aggregation packets (AP) and fragmentation units (FU).

use super::packer::{NalFormat, Packer, build, equal_pieces};
use super::{FU_E, FU_S};
use super::{MAX_PAYLOADS_PER_FRAME, PacketizedFrame, RtpError, RtpPayload, check_max_payload};
use crate::media::h265::nal::{AP, AUD, FILLER, FU, IRAP, PPS, SPS, TYPE_MASK, VPS};
use crate::media::{Codec, Frame, Track, avcc_nal_units};
use bytes::Bytes;

/// First byte of the NAL unit / payload header: forbidden_zero_bit (F).
const HDR_F: u8 = 0x80;
/// First byte of the header: the high bit of nuh_layer_id, kept next to F in FUs.
const HDR_LAYER_HIGH: u8 = 0x01;
/// Second byte of the header: nuh_temporal_id_plus1 (TID), never 0 in a valid unit.
const HDR_TID: u8 = 0x07;
/// Size of an HVCC length prefix.
const HVCC_PREFIX: usize = 4;
/// NAL unit header, and RTP payload header (PayloadHdr).
const NAL_HEADER: usize = 2;
/// AP per-unit 16-bit size field.
const AP_SIZE: usize = 2;
/// PayloadHdr plus FU header.
const FU_HEADER: usize = 3;
/// Smallest `max_payload` for H.265: an FU needs its 3-byte header plus one byte. The
/// shared [`super::MIN_PAYLOAD`] (3) is enough only for H.264.
const MIN_PAYLOAD_H265: usize = FU_HEADER + 1;

/// Packetizes one H.265 access unit (HVCC, 4-byte length prefixes) per RFC 7798, without
/// DONL fields (`sprop-max-don-diff` 0).
///
/// - AUD (type 35), filler data (38), the RTP packet types 48..=63, empty units and
///   units that are not valid H.265 NAL units (shorter than the 2-byte header, or with
///   `nuh_temporal_id_plus1` 0) are dropped.
/// - A keyframe (an IRAP picture, types 16..=23, or `frame.keyframe`) is preceded by the
///   track's VPS, SPS and PPS unless the frame carries in-band every kind of parameter
///   set the track has.
/// - Consecutive units that fit together in `max_payload` are aggregated into APs
///   (greedily, in order; PayloadHdr F is the OR, LayerId and TID the lowest of the
///   units'); a unit that fits alone becomes a single NAL unit packet; a larger one is
///   cut into FUs of one size, each at most `max_payload` bytes, the last possibly
///   shorter (equal-length datagrams leave as one UDP GSO message).
/// - The marker bit is set on the last payload only.
///
/// Errors: empty frame, no sendable NAL unit, a truncated length prefix or unit,
/// `max_payload` out of range (H.265 needs at least 4), more than
/// [`MAX_PAYLOADS_PER_FRAME`] payloads (counted before aggregation), or a non-H.265 track.
pub fn packetize_h265(
    track: &Track,
    frame: &Frame,
    max_payload: usize,
) -> Result<PacketizedFrame, RtpError> {
    check_max_payload(max_payload)?;
    if max_payload < MIN_PAYLOAD_H265 {
        return Err(RtpError::MaxPayloadOutOfRange(max_payload));
    }
    if track.codec != Codec::H265 {
        return Err(RtpError::UnsupportedCodec(track.codec));
    }
    if frame.data.is_empty() {
        return Err(RtpError::EmptyFrame);
    }

    // First pass: validate the framing, see what the access unit carries and bound the
    // number of payloads before allocating any.
    let mut consumed = 0usize;
    let (mut has_vps, mut has_sps, mut has_pps, mut has_irap) = (false, false, false, false);
    let mut bound = 0usize;
    for nal in avcc_nal_units(&frame.data) {
        consumed += HVCC_PREFIX + nal.len();
        let Some(kind) = sendable_type(&nal) else {
            continue;
        };
        has_vps |= kind == VPS;
        has_sps |= kind == SPS;
        has_pps |= kind == PPS;
        has_irap |= IRAP.contains(&kind);
        bound += payload_bound(nal.len(), max_payload);
    }
    if consumed != frame.data.len() {
        return Err(RtpError::Truncated { offset: consumed });
    }
    if bound == 0 {
        return Err(RtpError::NoNalUnits);
    }
    let keyframe = has_irap || frame.keyframe;
    let sets = &track.params;
    let params = sets
        .vps
        .iter()
        .chain(&sets.sps)
        .chain(&sets.pps)
        .filter(|ps| sendable_type(ps).is_some());
    // A kind the track does not have is not required in-band.
    let missing = |set: &[Bytes], in_band: bool| !in_band && !set.is_empty();
    let insert_params = keyframe
        && (missing(&sets.vps, has_vps)
            || missing(&sets.sps, has_sps)
            || missing(&sets.pps, has_pps));
    if insert_params {
        bound = params.clone().fold(bound, |b, ps| {
            b.saturating_add(payload_bound(ps.len(), max_payload))
        });
    }
    if bound > MAX_PAYLOADS_PER_FRAME {
        return Err(RtpError::TooManyPayloads(bound));
    }

    let mut packer = Packer::<H265>::new(max_payload, bound);
    if insert_params {
        for ps in params {
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

/// The NAL unit type of a 2-byte header.
fn nal_type(header: [u8; 2]) -> u8 {
    (header[0] >> 1) & TYPE_MASK
}

/// nuh_layer_id of a 2-byte header.
fn layer_id(header: [u8; 2]) -> u8 {
    ((header[0] & HDR_LAYER_HIGH) << 5) | (header[1] >> 3)
}

/// The header of a unit at least 2 bytes long with a non-zero TID and a type below 48:
/// a NAL unit that may travel in an RTP packet.
fn valid_header(nal: &[u8]) -> Option<[u8; 2]> {
    let header = *nal.first_chunk::<NAL_HEADER>()?;
    (header[1] & HDR_TID != 0 && nal_type(header) < AP).then_some(header)
}

/// The NAL unit type if the unit is sent, `None` if it is dropped.
fn sendable_type(nal: &[u8]) -> Option<u8> {
    let kind = nal_type(valid_header(nal)?);
    (kind != AUD && kind != FILLER).then_some(kind)
}

/// Most payloads a unit of `len` bytes can take (one, or its FUs).
fn payload_bound(len: usize, max_payload: usize) -> usize {
    if len <= max_payload {
        1
    } else {
        // The NAL header is carried in the FU headers, not in the fragments.
        (len - NAL_HEADER).div_ceil(max_payload - FU_HEADER)
    }
}

/// RFC 7798: AP aggregation, FU fragmentation.
struct H265;

impl NalFormat for H265 {
    const AGG_HEADER: usize = NAL_HEADER;
    const AGG_SIZE: usize = AP_SIZE;
    fn aggregate(units: &[Bytes], size: usize) -> RtpPayload {
        aggregate(units, size)
    }
    fn fragment(nal: &[u8], max: usize, out: &mut Vec<RtpPayload>) {
        fragment(nal, max, out)
    }
}

/// An AP of `size` bytes: PayloadHdr with F the OR of the units' F bits, LayerId and TID
/// the lowest of theirs (RFC 7798 §4.4.2), then each unit after its 16-bit size.
fn aggregate(units: &[Bytes], size: usize) -> RtpPayload {
    let (f, layer, tid) = units.iter().fold((0u8, 0x3Fu8, HDR_TID), |(f, l, t), nal| {
        let h = nal.first_chunk::<NAL_HEADER>().copied().unwrap_or([0, 0]);
        (
            f | (h[0] & HDR_F),
            l.min(layer_id(h)),
            t.min(h[1] & HDR_TID),
        )
    });
    let data = build(size, |buf| {
        let Some((header, mut rest)) = buf.split_first_chunk_mut::<NAL_HEADER>() else {
            return;
        };
        *header = [f | (AP << 1) | (layer >> 5), ((layer & 0x1F) << 3) | tid];
        for nal in units {
            let Some((field, tail)) = std::mem::take(&mut rest).split_first_chunk_mut::<AP_SIZE>()
            else {
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

/// Cuts a unit longer than `max` into FUs of one size but the last, which may be
/// shorter ([`equal_pieces`]).
fn fragment(nal: &[u8], max: usize, out: &mut Vec<RtpPayload>) {
    let Some((&header, body)) = nal.split_first_chunk::<NAL_HEADER>() else {
        return;
    };
    let payload_header = [
        (header[0] & (HDR_F | HDR_LAYER_HIGH)) | (FU << 1),
        header[1],
    ];
    let kind = nal_type(header);
    for (first, last, chunk) in equal_pieces(body, max - FU_HEADER) {
        let mut fu_header = kind;
        if first {
            fu_header |= FU_S;
        }
        if last {
            fu_header |= FU_E;
        }
        let data = build(FU_HEADER + chunk.len(), |buf| {
            if let [a, b, c, rest @ ..] = buf {
                [*a, *b] = payload_header;
                *c = fu_header;
                rest.copy_from_slice(chunk);
            }
        });
        out.push(RtpPayload {
            data,
            marker: false,
        });
    }
}

/// Reassembles the NAL units of one RFC 7798 payload sequence without DONL (single NAL
/// unit packets, APs, FUs), in order, with no loss.
///
/// Test-only, for round-tripping [`packetize_h265`] (ingest uses [`super::depack`]): it
/// does no sequence-number, loss or timestamp handling. Output is
/// bounded by the input size. Errors on payloads or units shorter than the 2-byte header
/// or with TID 0, APs with fewer than two units or truncated entries, APs or FUs
/// carrying RTP packet types (48..=63), FUs out of order (no start, a second start, both
/// S and E, an unfinished unit, a header change within a unit) and PACI or other packet
/// types 50..=63.
#[cfg(test)]
pub(crate) fn depacketize_h265(payloads: &[&[u8]]) -> Result<Vec<Vec<u8>>, RtpError> {
    let mut units = Vec::new();
    let mut partial: Option<Vec<u8>> = None;
    for payload in payloads {
        let (&header, body) = payload
            .split_first_chunk::<NAL_HEADER>()
            .ok_or(RtpError::Malformed("payload shorter than its header"))?;
        if header[1] & HDR_TID == 0 {
            return Err(RtpError::Malformed("payload header with TID 0"));
        }
        let kind = nal_type(header);
        if kind != FU && partial.is_some() {
            return Err(RtpError::Malformed("FU interrupted before its end"));
        }
        match kind {
            0..AP => units.push(payload.to_vec()),
            AP => {
                let mut rest = body;
                let mut count = 0usize;
                while !rest.is_empty() {
                    let (size, tail) = rest
                        .split_first_chunk::<AP_SIZE>()
                        .ok_or(RtpError::Malformed("truncated AP size"))?;
                    let size = usize::from(u16::from_be_bytes(*size));
                    let (unit, tail) = tail
                        .split_at_checked(size)
                        .ok_or(RtpError::Malformed("truncated AP unit"))?;
                    if valid_header(unit).is_none() {
                        return Err(RtpError::Malformed("invalid NAL unit in AP"));
                    }
                    units.push(unit.to_vec());
                    count += 1;
                    rest = tail;
                }
                if count < 2 {
                    return Err(RtpError::Malformed("AP with fewer than two units"));
                }
            }
            FU => {
                let (&fu_header, chunk) = body
                    .split_first()
                    .ok_or(RtpError::Malformed("FU without FU header"))?;
                let (start, end) = (fu_header & FU_S != 0, fu_header & FU_E != 0);
                let fu_type = fu_header & TYPE_MASK;
                if fu_type >= AP {
                    return Err(RtpError::Malformed("FU of an RTP packet type"));
                }
                let nal_header = [
                    (header[0] & (HDR_F | HDR_LAYER_HIGH)) | (fu_type << 1),
                    header[1],
                ];
                if start {
                    if end {
                        return Err(RtpError::Malformed("FU with both S and E"));
                    }
                    if partial.is_some() {
                        return Err(RtpError::Malformed("FU start inside a unit"));
                    }
                    let mut unit = Vec::with_capacity(NAL_HEADER + chunk.len());
                    unit.extend_from_slice(&nal_header);
                    unit.extend_from_slice(chunk);
                    partial = Some(unit);
                } else {
                    let unit = partial
                        .as_mut()
                        .ok_or(RtpError::Malformed("FU continuation without start"))?;
                    if unit.first_chunk::<NAL_HEADER>() != Some(&nal_header) {
                        return Err(RtpError::Malformed("FU header changed within a unit"));
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
        return Err(RtpError::Malformed("unfinished FU"));
    }
    Ok(units)
}

#[cfg(test)]
mod tests;
