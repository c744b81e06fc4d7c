//! H.264 RTP payloads per RFC 6184, packetization-mode 0 and 1: single NAL unit packets
//! (types 1–23), STAP-A (24) and FU-A (28). The interleaved mode's STAP-B, MTAP16/24 and
//! FU-B are not supported: they count as malformed and break their access unit.

use super::Unit;
use super::nal::{AccessUnit, NalDepack, NalInfo, NalPayload, ParamKind};
use crate::media::h264::nal::{
    AUD, FILLER, FU_A, FU_B, IDR, LAST_SINGLE, MTAP16, MTAP24, PPS, SPS, STAP_A, STAP_B, TYPE_MASK,
};
use crate::rtp::{FU_E, FU_S};

/// NAL unit header: forbidden_zero_bit and nal_ref_idc, kept in FU indicators.
const F_NRI: u8 = 0xE0;
/// STAP-A per-unit size field.
const STAP_SIZE: usize = 2;

/// The H.264 payload format.
pub(super) struct H264;

/// H.264 depacketizer state: the access unit under assembly.
pub(super) type H264Depack = NalDepack<H264>;

impl NalPayload for H264 {
    fn payload(au: &mut AccessUnit, payload: &[u8], units: &mut Vec<Unit>) {
        let Some((&header, body)) = payload.split_first() else {
            units.push(Unit::Malformed("empty H.264 payload"));
            return;
        };
        match header & TYPE_MASK {
            0x01..=LAST_SINGLE => au.push(payload, info(header), units),
            STAP_A => Self::stap_a(au, body, units),
            STAP_B | MTAP16 | MTAP24 | FU_B => {
                au.malformed("interleaved H.264 packet (STAP-B, MTAP, FU-B)", units)
            }
            FU_A => Self::fu_a(au, header, body, units),
            // 0, 30 and 31: reserved; RFC 6184 §5.2 says to ignore them.
            _ => units.push(Unit::Malformed("reserved H.264 NAL unit type")),
        }
    }
}

impl H264 {
    /// STAP-A: 16-bit size, NAL unit, repeated. Checked whole before any unit is used.
    fn stap_a(au: &mut AccessUnit, body: &[u8], units: &mut Vec<Unit>) {
        let valid = !body.is_empty() && stap_units(body).all(|u| u.is_some());
        if !valid {
            au.malformed("truncated or invalid STAP-A", units);
            return;
        }
        for nal in stap_units(body).flatten() {
            if let Some(&h) = nal.first() {
                au.push(nal, info(h), units);
            }
        }
    }

    /// FU-A: indicator (F, NRI), FU header (S, E, R, type), fragment.
    fn fu_a(au: &mut AccessUnit, indicator: u8, body: &[u8], units: &mut Vec<Unit>) {
        let Some((&fu, chunk)) = body.split_first() else {
            au.malformed("FU-A without FU header", units);
            return;
        };
        let kind = fu & TYPE_MASK;
        let (start, end) = (fu & FU_S != 0, fu & FU_E != 0);
        if start && end {
            au.malformed("FU-A with both start and end bits", units);
            return;
        }
        if !(0x01..=LAST_SINGLE).contains(&kind) {
            au.malformed("FU-A of a packet-type NAL unit", units);
            return;
        }
        let header = (indicator & F_NRI) | kind;
        if start {
            au.fragment_start(&[header], info(header), chunk, units);
        } else {
            au.fragment_continue(&[header], chunk, end, units);
        }
    }
}

/// What an H.264 NAL unit is.
fn info(header: u8) -> NalInfo {
    let kind = header & TYPE_MASK;
    NalInfo {
        skip: kind == AUD || kind == FILLER,
        vcl: (0x01..=IDR).contains(&kind),
        key: kind == IDR,
        param: match kind {
            SPS => Some(ParamKind::Sps),
            PPS => Some(ParamKind::Pps),
            _ => None,
        },
    }
}

/// The units of a STAP-A body; `None` for a truncated, empty or non-NAL unit (and the
/// iteration stops there).
fn stap_units(body: &[u8]) -> impl Iterator<Item = Option<&[u8]>> {
    let mut rest = Some(body);
    std::iter::from_fn(move || {
        let r = rest.take()?;
        if r.is_empty() {
            return None;
        }
        let unit = r.split_first_chunk::<STAP_SIZE>().and_then(|(size, tail)| {
            let size = usize::from(u16::from_be_bytes(*size));
            let (unit, tail) = tail.split_at_checked(size)?;
            let kind = unit.first()? & TYPE_MASK;
            (0x01..=LAST_SINGLE).contains(&kind).then_some((unit, tail))
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
