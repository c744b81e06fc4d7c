//! What the H.264 (RFC 6184) and H.265 (RFC 7798) packetizers share: greedy aggregation
//! of consecutive small NAL units, single NAL unit packets, and fragmentation of large
//! ones, each codec supplying its own aggregation and fragmentation formats.

use super::RtpPayload;
use bytes::Bytes;
use std::marker::PhantomData;
use std::sync::Arc;

/// A codec's aggregation and fragmentation packet formats.
pub(super) trait NalFormat {
    /// Bytes of an aggregation packet's own header (STAP-A: 1, AP: 2).
    const AGG_HEADER: usize;
    /// Bytes before each aggregated unit (its 16-bit size).
    const AGG_SIZE: usize = 2;
    /// An aggregation packet of `size` bytes holding `units`.
    fn aggregate(units: &[Bytes], size: usize) -> RtpPayload;
    /// Cuts `nal` into fragments of at most `max` bytes, appended to `out`.
    fn fragment(nal: &[u8], max: usize, out: &mut Vec<RtpPayload>);
}

/// Builds the payloads of one access unit, aggregating small units.
pub(super) struct Packer<F: NalFormat> {
    max: usize,
    out: Vec<RtpPayload>,
    /// Units waiting to be sent as one aggregation packet (or alone if only one).
    pending: Vec<Bytes>,
    /// Size of `pending` as an aggregation payload.
    pending_size: usize,
    format: PhantomData<F>,
}

impl<F: NalFormat> Packer<F> {
    pub(super) fn new(max: usize, capacity: usize) -> Self {
        Packer {
            max,
            out: Vec::with_capacity(capacity),
            pending: Vec::new(),
            pending_size: 0,
            format: PhantomData,
        }
    }

    /// Adds a sendable unit that is at most `max` bytes or fragmentable.
    pub(super) fn push(&mut self, nal: &Bytes) {
        let entry = F::AGG_SIZE + nal.len();
        if !self.pending.is_empty() && self.pending_size + entry <= self.max {
            self.pending.push(nal.clone());
            self.pending_size += entry;
            return;
        }
        self.flush();
        if F::AGG_HEADER + entry <= self.max {
            self.pending.push(nal.clone());
            self.pending_size = F::AGG_HEADER + entry;
        } else if nal.len() <= self.max {
            self.out.push(single(nal));
        } else {
            F::fragment(nal, self.max, &mut self.out);
        }
    }

    /// Sends the pending units.
    fn flush(&mut self) {
        match self.pending.as_slice() {
            [] => {}
            [nal] => self.out.push(single(nal)),
            units => self.out.push(F::aggregate(units, self.pending_size)),
        }
        self.pending.clear();
        self.pending_size = 0;
    }

    /// The payloads, pending units flushed.
    pub(super) fn finish(mut self) -> Vec<RtpPayload> {
        self.flush();
        self.out
    }
}

/// A payload of `len` bytes written by `fill`, in one allocation (`Arc::from(Vec)` would
/// allocate and copy twice). `fill` gets exactly `len` zeroed bytes.
pub(super) fn build(len: usize, fill: impl FnOnce(&mut [u8])) -> Arc<[u8]> {
    // `RepeatN` is `TrustedLen`: the Arc is allocated once at its final size.
    let mut arc: Arc<[u8]> = std::iter::repeat_n(0u8, len).collect();
    // A fresh Arc is unique, so `get_mut` always succeeds.
    if let Some(buf) = Arc::get_mut(&mut arc) {
        fill(buf);
    }
    arc
}

/// A single NAL unit packet: the unit itself.
fn single(nal: &[u8]) -> RtpPayload {
    RtpPayload {
        data: Arc::from(nal),
        marker: false,
    }
}
