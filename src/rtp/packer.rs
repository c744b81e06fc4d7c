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

/// Cuts a fragmented unit's `body` into the fewest pieces of at most `cap` bytes, all of
/// one size (the ceiling of an even split) but the last, which may be shorter: a frame's
/// fragments then make equal-length datagrams that leave as one UDP GSO message. Yields
/// each piece with whether it is the first and the last.
pub(super) fn equal_pieces(body: &[u8], cap: usize) -> impl Iterator<Item = (bool, bool, &[u8])> {
    let count = body.len().div_ceil(cap.max(1)).max(1);
    let size = body.len().div_ceil(count).max(1);
    let pieces = body.len().div_ceil(size);
    body.chunks(size)
        .enumerate()
        .map(move |(i, piece)| (i == 0, i + 1 == pieces, piece))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(len: usize, cap: usize) -> Vec<usize> {
        let body = vec![0u8; len];
        let mut v = Vec::new();
        let mut rebuilt = 0;
        for (k, (first, last, piece)) in equal_pieces(&body, cap).enumerate() {
            assert_eq!(first, k == 0);
            assert!(piece.len() <= cap);
            rebuilt += piece.len();
            v.push(piece.len());
            if last {
                assert_eq!(rebuilt, len, "the last piece ends the body");
            }
        }
        assert_eq!(rebuilt, len);
        v
    }

    #[test]
    fn pieces_are_equal_but_the_last_which_may_be_shorter() {
        // 29 999 bytes at 1198: 26 pieces of 1154 and a last of 1149.
        let s = sizes(29_999, 1198);
        assert_eq!(s.len(), 26);
        assert!(s[..25].iter().all(|&n| n == 1154), "{s:?}");
        assert_eq!(s[25], 29_999 - 25 * 1154);
        // An even split has no short piece.
        assert_eq!(sizes(2400, 1200), [1200, 1200]);
        assert_eq!(sizes(2401, 1200), [801, 801, 799]);
        assert_eq!(sizes(1201, 1200), [601, 600]);
        assert_eq!(sizes(10, 4), [4, 4, 2]);
        assert_eq!(sizes(9, 4), [3, 3, 3]);
        assert_eq!(sizes(3, 4), [3]);
        // Never more pieces than a cut at `cap` would make.
        for len in 1..300 {
            for cap in 1..40 {
                assert!(sizes(len, cap).len() <= len.div_ceil(cap), "{len} at {cap}");
            }
        }
    }
}
