//! H.265 RTP payloads per RFC 7798: single NAL unit packets (types 0–47), aggregation
//! packets (AP, 48) and fragmentation units (FU, 49).
//!
//! DONL fields are assumed absent: `sprop-max-don-diff` is 0 (the default, and what
//! cameras send), so units are in decoding order. PACI packets (50) are skipped, other
//! types (51–63) count as malformed and are ignored.

use super::Unit;
use super::nal::{AccessUnit, NalDepack, NalInfo, NalPayload, ParamKind};
use crate::media::h265::nal::{
    self as types, AP, AUD, FILLER, FU, IRAP, LAST_VCL, PACI, PPS, SPS, TYPE_MASK, VPS,
};
use crate::rtp::{FU_E, FU_S};

/// NAL unit / payload header size.
const HEADER: usize = 2;
/// First header byte: F and the high bit of LayerId, kept in FU payload headers.
const F_LAYER_HIGH: u8 = 0x81;
/// Second header byte: nuh_temporal_id_plus1, never 0.
const TID_MASK: u8 = 0x07;
/// AP per-unit size field.
const AP_SIZE: usize = 2;

/// The H.265 payload format.
pub(super) struct H265;

/// H.265 depacketizer state: the access unit under assembly.
pub(super) type H265Depack = NalDepack<H265>;

impl NalPayload for H265 {
    fn payload(au: &mut AccessUnit, payload: &[u8], units: &mut Vec<Unit>) {
        let Some(header) = payload.first_chunk::<HEADER>().copied() else {
            units.push(Unit::Malformed("H.265 payload shorter than its header"));
            return;
        };
        if header[1] & TID_MASK == 0 {
            au.malformed("H.265 payload header with TID 0", units);
            return;
        }
        let body = payload.get(HEADER..).unwrap_or_default();
        match nal_type(header) {
            0..AP => au.push(payload, info(header), units),
            AP => Self::aggregate(au, body, units),
            FU => Self::fragment(au, header, body, units),
            // No payload format carries slices in PACI in practice; skipped unread.
            PACI => {}
            _ => units.push(Unit::Malformed("unspecified H.265 packet type")),
        }
    }
}

impl H265 {
    /// AP: 16-bit size, NAL unit, repeated (no DONL). Checked whole before any unit is
    /// used.
    fn aggregate(au: &mut AccessUnit, body: &[u8], units: &mut Vec<Unit>) {
        let valid = !body.is_empty() && ap_units(body).all(|u| u.is_some());
        if !valid {
            au.malformed("truncated or invalid H.265 AP", units);
            return;
        }
        for nal in ap_units(body).flatten() {
            if let Some(h) = nal.first_chunk::<HEADER>() {
                au.push(nal, info(*h), units);
            }
        }
    }

    /// FU: payload header, FU header (S, E, type), fragment (no DONL).
    fn fragment(au: &mut AccessUnit, payload_header: [u8; 2], body: &[u8], units: &mut Vec<Unit>) {
        let Some((&fu, chunk)) = body.split_first() else {
            au.malformed("H.265 FU without FU header", units);
            return;
        };
        let kind = fu & TYPE_MASK;
        let (start, end) = (fu & FU_S != 0, fu & FU_E != 0);
        if start && end {
            au.malformed("H.265 FU with both start and end bits", units);
            return;
        }
        if kind >= AP {
            au.malformed("H.265 FU of a packet-type NAL unit", units);
            return;
        }
        let header = [
            (payload_header[0] & F_LAYER_HIGH) | (kind << 1),
            payload_header[1],
        ];
        if start {
            au.fragment_start(&header, info(header), chunk, units);
        } else {
            au.fragment_continue(&header, chunk, end, units);
        }
    }
}

/// The type field of a NAL unit header.
fn nal_type(header: [u8; 2]) -> u8 {
    types::kind(header[0])
}

/// What an H.265 NAL unit is.
fn info(header: [u8; 2]) -> NalInfo {
    let kind = nal_type(header);
    NalInfo {
        skip: kind == AUD || kind == FILLER,
        vcl: kind <= LAST_VCL,
        key: IRAP.contains(&kind),
        param: match kind {
            VPS => Some(ParamKind::Vps),
            SPS => Some(ParamKind::Sps),
            PPS => Some(ParamKind::Pps),
            _ => None,
        },
    }
}

/// The units of an AP body; `None` for a truncated or invalid unit (and the iteration
/// stops there).
fn ap_units(body: &[u8]) -> impl Iterator<Item = Option<&[u8]>> {
    let mut rest = Some(body);
    std::iter::from_fn(move || {
        let r = rest.take()?;
        if r.is_empty() {
            return None;
        }
        let unit = r.split_first_chunk::<AP_SIZE>().and_then(|(size, tail)| {
            let size = usize::from(u16::from_be_bytes(*size));
            let (unit, tail) = tail.split_at_checked(size)?;
            let header = *unit.first_chunk::<HEADER>()?;
            let valid = header[1] & TID_MASK != 0 && nal_type(header) < AP;
            valid.then_some((unit, tail))
        });
        match unit {
            Some((unit, tail)) => {
                rest = Some(tail);
                Some(Some(unit))
            }
            None => Some(None),
        }
    })
}
