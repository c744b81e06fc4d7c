//! Access-unit assembly shared by the H.264 and H.265 depacketizers: NAL units (whole or
//! in fragments) in, one AVCC frame per access unit out.

use super::{RtpPacket, Unit};
use crate::media::ParamSets;
use bytes::{BufMut, Bytes, BytesMut};
use std::ops::Range;

/// Size of an AVCC length prefix.
const AVCC_PREFIX: usize = 4;
/// Longest NAL unit header (H.265).
const MAX_HEADER: usize = 2;

/// A parameter-set kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ParamKind {
    /// H.265 video parameter set.
    Vps,
    /// Sequence parameter set.
    Sps,
    /// Picture parameter set.
    Pps,
}

/// What a NAL unit is, from its header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct NalInfo {
    /// Not kept in the frame (access unit delimiter, filler data).
    pub skip: bool,
    /// A slice (VCL NAL unit).
    pub vcl: bool,
    /// A slice a decoder can start from (H.264 IDR, H.265 IRAP).
    pub key: bool,
    /// A parameter set.
    pub param: Option<ParamKind>,
}

/// A NAL unit being reassembled from fragments (FU-A, FU).
#[derive(Debug, Clone, Copy)]
struct Fragmented {
    /// Offset of its length prefix in the buffer.
    start: usize,
    /// Its NAL unit header; every fragment must carry the same.
    header: [u8; MAX_HEADER],
    /// Bytes used in `header`.
    header_len: usize,
    /// What it is.
    info: NalInfo,
}

/// One access unit under assembly.
///
/// It ends on the RTP marker bit or when a packet with another timestamp arrives. A loss
/// before or inside it, a malformed packet, or a fragmented unit left unfinished makes
/// it incomplete: it is dropped. An access unit without slices (parameter sets or SEI
/// sent with their own marker bit) is kept and put in front of the next one.
pub(super) struct AccessUnit {
    buf: BytesMut,
    max: usize,
    rtp_time: Option<u32>,
    /// Packets went missing before or inside it.
    lost: bool,
    /// Incomplete: lost, or a malformed or interrupted part.
    broken: bool,
    /// Grew beyond `max`: the buffer was emptied and the rest is ignored.
    oversized: bool,
    keyframe: bool,
    vcl: bool,
    fragment: Option<Fragmented>,
    /// Complete parameter sets in the buffer.
    params: Vec<(ParamKind, Range<usize>)>,
    /// The sets last reported.
    known: ParamSets,
    /// Size of the latest frame, to size the next buffer.
    last_len: usize,
}

impl AccessUnit {
    /// An empty access unit of at most `max` bytes.
    pub fn new(max: usize) -> AccessUnit {
        AccessUnit {
            buf: BytesMut::new(),
            max,
            rtp_time: None,
            lost: false,
            broken: false,
            oversized: false,
            keyframe: false,
            vcl: false,
            fragment: None,
            params: Vec::new(),
            known: ParamSets::default(),
            last_len: 0,
        }
    }

    /// Sets the size limit.
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Parameter sets already known: equal in-band ones are not reported.
    pub fn set_known(&mut self, known: ParamSets) {
        self.known = known;
    }

    /// Forgets the access unit under assembly; true if it had content.
    pub fn reset(&mut self) -> bool {
        let had = self.rtp_time.is_some() && (!self.buf.is_empty() || self.broken);
        self.clear();
        self.rtp_time = None;
        had
    }

    /// A packet with `rtp_time` arrives: ends the current access unit if the timestamp
    /// changed, and marks what `lost_before` makes incomplete.
    pub fn begin(&mut self, rtp_time: u32, lost_before: bool, units: &mut Vec<Unit>) {
        if lost_before {
            // The gap may hold the end of the open access unit...
            self.lose();
        }
        if self.rtp_time.is_some_and(|t| t != rtp_time) {
            self.end(units);
        }
        if self.rtp_time.is_none() {
            self.rtp_time = Some(rtp_time);
        }
        if lost_before {
            // ...and the start of the one this packet belongs to.
            self.lose();
        }
    }

    /// A packet with `rtp_time` arrived too late to be used: if it belongs to the open
    /// access unit, that one is incomplete.
    pub fn late(&mut self, rtp_time: u32) {
        if self.rtp_time == Some(rtp_time) {
            self.lose();
        }
    }

    /// Ends the access unit (marker bit or new timestamp).
    pub fn end(&mut self, units: &mut Vec<Unit>) {
        let Some(rtp_time) = self.rtp_time.take() else {
            return;
        };
        if let Some(f) = self.fragment.take() {
            self.buf.truncate(f.start);
            if !self.lost {
                units.push(Unit::Malformed("fragmented NAL unit without end"));
            }
            self.broken = true;
        }
        if self.broken || self.oversized {
            self.report_params(units);
            units.push(Unit::Dropped {
                rtp_time,
                oversized: self.oversized,
            });
            self.clear();
            return;
        }
        if !self.vcl {
            // Nothing, or only parameter sets / SEI: they go with the next access unit.
            return;
        }
        self.report_params(units);
        self.last_len = self.buf.len();
        let data = self.buf.split().freeze();
        units.push(Unit::Frame {
            rtp_time,
            offset: 0,
            keyframe: self.keyframe,
            data,
            duration: None,
        });
        self.clear();
    }

    /// Marks the access unit incomplete because of a malformed part.
    pub fn malformed(&mut self, what: &'static str, units: &mut Vec<Unit>) {
        units.push(Unit::Malformed(what));
        self.broken = true;
    }

    /// Adds a complete NAL unit.
    pub fn push(&mut self, nal: &[u8], info: NalInfo, units: &mut Vec<Unit>) {
        if self.fragment.is_some() {
            self.interrupt(units);
        }
        if info.skip || !self.make_room(AVCC_PREFIX + nal.len()) {
            return;
        }
        let start = self.buf.len() + AVCC_PREFIX;
        // `make_room` bounds the unit by `max`, at most u32::MAX.
        self.buf.put_u32(nal.len() as u32);
        self.buf.put_slice(nal);
        self.note(info, start..self.buf.len());
    }

    /// Starts a fragmented NAL unit: its reconstructed `header` and first bytes.
    pub fn fragment_start(
        &mut self,
        header: &[u8],
        info: NalInfo,
        chunk: &[u8],
        units: &mut Vec<Unit>,
    ) {
        if self.fragment.is_some() {
            self.interrupt(units);
        }
        let mut stored = [0u8; MAX_HEADER];
        let Some(slot) = stored.get_mut(..header.len()) else {
            return;
        };
        slot.copy_from_slice(header);
        if !self.make_room(AVCC_PREFIX + header.len() + chunk.len()) {
            return;
        }
        let start = self.buf.len();
        self.buf.put_u32(0);
        self.buf.put_slice(header);
        self.buf.put_slice(chunk);
        self.fragment = Some(Fragmented {
            start,
            header: stored,
            header_len: header.len(),
            info,
        });
    }

    /// Continues the fragmented NAL unit whose reconstructed header is `header`; `end`
    /// completes it.
    pub fn fragment_continue(
        &mut self,
        header: &[u8],
        chunk: &[u8],
        end: bool,
        units: &mut Vec<Unit>,
    ) {
        if self.oversized {
            return;
        }
        let Some(f) = self.fragment else {
            // The start was lost (already counted), or never sent.
            if !self.lost {
                units.push(Unit::Malformed("fragment without a start"));
            }
            self.broken = true;
            return;
        };
        if f.header.get(..f.header_len) != Some(header) {
            self.interrupt(units);
            return;
        }
        if !self.make_room(chunk.len()) {
            return;
        }
        self.buf.put_slice(chunk);
        if end {
            self.fragment = None;
            let body = f.start + AVCC_PREFIX;
            let len = self.buf.len() - body;
            if let Some(prefix) = self.buf.get_mut(f.start..body) {
                prefix.copy_from_slice(&(len as u32).to_be_bytes());
            }
            if f.info.skip {
                self.buf.truncate(f.start);
            } else {
                self.note(f.info, body..self.buf.len());
            }
        }
    }

    /// Records what a complete unit at `range` is.
    fn note(&mut self, info: NalInfo, range: Range<usize>) {
        self.vcl |= info.vcl;
        self.keyframe |= info.key;
        if let Some(kind) = info.param {
            self.params.push((kind, range));
        }
    }

    /// A fragmented unit was cut short by another packet.
    fn interrupt(&mut self, units: &mut Vec<Unit>) {
        if let Some(f) = self.fragment.take() {
            self.buf.truncate(f.start);
        }
        if !self.lost {
            // After a loss, the end may simply have been lost.
            units.push(Unit::Malformed("fragmented NAL unit interrupted"));
        }
        self.broken = true;
    }

    /// Packets are missing.
    fn lose(&mut self) {
        if self.rtp_time.is_some() {
            self.lost = true;
            self.broken = true;
        }
    }

    /// Whether `n` more bytes fit the limit; if not, empties the buffer and ignores the
    /// rest of the access unit.
    fn make_room(&mut self, n: usize) -> bool {
        if self.oversized {
            return false;
        }
        if self.buf.len().saturating_add(n) > self.max {
            self.oversized = true;
            self.buf.clear();
            self.params.clear();
            self.fragment = None;
            return false;
        }
        if self.buf.capacity() - self.buf.len() < n {
            // Room for a frame like the last one, bounded by the limit.
            let want = n.max(self.last_len.saturating_sub(self.buf.len()));
            self.buf.reserve(want);
        }
        true
    }

    /// Reports the parameter sets of the buffer if they differ from the known ones.
    fn report_params(&mut self, units: &mut Vec<Unit>) {
        if self.params.is_empty() {
            return;
        }
        let mut changed = false;
        for kind in [ParamKind::Vps, ParamKind::Sps, ParamKind::Pps] {
            let mut sets: Vec<&[u8]> = Vec::new();
            for (_, r) in self.params.iter().filter(|(k, _)| *k == kind) {
                if let Some(set) = self.buf.get(r.clone())
                    && !sets.contains(&set)
                {
                    sets.push(set);
                }
            }
            if sets.is_empty() {
                continue;
            }
            let known = match kind {
                ParamKind::Vps => &mut self.known.vps,
                ParamKind::Sps => &mut self.known.sps,
                ParamKind::Pps => &mut self.known.pps,
            };
            let same = known.len() == sets.len() && known.iter().zip(&sets).all(|(a, b)| a == b);
            if !same {
                *known = sets.into_iter().map(Bytes::copy_from_slice).collect();
                changed = true;
            }
        }
        self.params.clear();
        if changed {
            units.push(Unit::Params(self.known.clone()));
        }
    }

    /// Empties the buffer and the per-access-unit state (the timestamp stays).
    fn clear(&mut self) {
        self.buf.clear();
        self.lost = false;
        self.broken = false;
        self.oversized = false;
        self.keyframe = false;
        self.vcl = false;
        self.fragment = None;
        self.params.clear();
    }
}

/// An RTP payload format of NAL units (RFC 6184, RFC 7798): how one payload goes into
/// the access unit under assembly.
pub(super) trait NalPayload {
    /// Adds the NAL units (or fragment) of one RTP payload to `au`.
    fn payload(au: &mut AccessUnit, payload: &[u8], units: &mut Vec<Unit>);
}

/// A NAL-unit depacketizer: the access unit under assembly, read in payload format `F`.
pub(super) struct NalDepack<F> {
    au: AccessUnit,
    format: std::marker::PhantomData<F>,
}

impl<F: NalPayload> NalDepack<F> {
    /// Access units of at most `max_frame` bytes.
    pub fn new(max_frame: usize) -> NalDepack<F> {
        NalDepack {
            au: AccessUnit::new(max_frame),
            format: std::marker::PhantomData,
        }
    }

    /// Sets the access unit limit.
    pub fn set_max_frame(&mut self, max: usize) {
        self.au.set_max(max);
    }

    /// Parameter sets known from the SDP.
    pub fn set_known(&mut self, known: ParamSets) {
        self.au.set_known(known);
    }

    /// Forgets the partial access unit; true if there was one.
    pub fn reset(&mut self) -> bool {
        self.au.reset()
    }

    /// A packet arrived after its successors: its access unit, if open, is incomplete.
    pub fn late(&mut self, pkt: &RtpPacket) {
        self.au.late(pkt.timestamp);
    }

    /// Takes one packet in sequence order.
    pub fn push(&mut self, pkt: &RtpPacket, lost_before: bool, units: &mut Vec<Unit>) {
        self.au.begin(pkt.timestamp, lost_before, units);
        F::payload(&mut self.au, &pkt.payload, units);
        if pkt.marker {
            self.au.end(units);
        }
    }
}
