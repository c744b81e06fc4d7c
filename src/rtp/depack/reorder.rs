//! Sequence ordering: puts packets back in sequence-number order within a small window,
//! drops duplicates, and tells the payload stage where packets went missing.

use super::{DepackStats, RtpPacket};
use std::collections::VecDeque;

/// RFC 3550 A.1: a forward jump larger than this starts a new sequence (if confirmed).
const MAX_DROPOUT: i32 = 3000;
/// RFC 3550 A.1: a packet further back than this starts a new sequence (if confirmed).
const MAX_MISORDER: i32 = 100;
/// Sequence numbers remembered behind the next expected one, to tell a duplicate from a
/// late packet.
const HISTORY: u32 = u64::BITS;

/// A packet handed on in sequence order.
#[derive(Debug)]
pub(super) struct Released {
    /// The packet.
    pub packet: RtpPacket,
    /// Whether packets are missing right before it (loss, or the start of a new
    /// sequence that may have cut a frame).
    pub lost_before: bool,
    /// It arrived after packets that follow it were handed on: its payload cannot be
    /// used, and the frame it belongs to, if still open, is incomplete.
    pub late: bool,
}

/// The ordering state of one track.
pub(super) struct Reorder {
    /// Packets held after a gap (at most this many).
    window: usize,
    /// The current source, once a packet arrived.
    ssrc: Option<u32>,
    /// The next sequence number to hand on.
    next: u16,
    /// Slot `i` holds sequence `next + i` if it arrived; slot 0 is always empty (else it
    /// would have been handed on) and the last slot is always full.
    held: VecDeque<Option<RtpPacket>>,
    /// Bit `i`: sequence `next - 1 - i` was handed on.
    handed: u64,
    /// A packet far from the expected sequence, waiting for its successor to confirm a
    /// new sequence.
    probe: Option<RtpPacket>,
    /// Packets went missing since the last one handed on.
    gap: bool,
}

impl Reorder {
    /// Holds at most `window` packets behind a gap.
    pub fn new(window: usize) -> Reorder {
        Reorder {
            window,
            ssrc: None,
            next: 0,
            held: VecDeque::new(),
            handed: 0,
            probe: None,
            gap: false,
        }
    }

    /// Forgets the source and everything held.
    pub fn reset(&mut self) {
        *self = Reorder::new(self.window);
    }

    /// Takes one packet; appends the packets now in order to `out`.
    pub fn push(&mut self, pkt: &RtpPacket, out: &mut Vec<Released>, stats: &mut DepackStats) {
        let Some(ssrc) = self.ssrc else {
            self.start(pkt.clone(), false, out);
            return;
        };
        if pkt.ssrc != ssrc {
            // A new source: whatever is held belongs to the old one.
            self.flush(out, stats);
            stats.resyncs += 1;
            self.start(pkt.clone(), true, out);
            return;
        }
        let ahead = i32::from(pkt.sequence.wrapping_sub(self.next) as i16);
        if !(-MAX_MISORDER..=MAX_DROPOUT).contains(&ahead) {
            self.far(pkt, out, stats);
            return;
        }
        if self.probe.take().is_some() {
            // The sequence went on: the far packet was a stray.
            stats.stray += 1;
        }
        if ahead < 0 {
            let back = (-ahead - 1) as u32;
            if back < HISTORY && self.handed & (1 << back) != 0 {
                stats.duplicates += 1;
            } else {
                stats.reordered += 1;
                out.push(Released {
                    packet: pkt.clone(),
                    lost_before: false,
                    late: true,
                });
            }
            return;
        }
        let ahead = ahead as usize;
        if ahead < self.held.len() {
            // Fills a gap, or a copy of a held packet.
            match self.held.get_mut(ahead) {
                Some(slot @ None) => {
                    *slot = Some(pkt.clone());
                    stats.reordered += 1;
                }
                _ => {
                    stats.duplicates += 1;
                    return;
                }
            }
        } else {
            // Ahead of everything held: make room by giving up on the oldest gaps.
            let mut ahead = ahead;
            while ahead > self.window {
                self.pop(out, stats);
                ahead = usize::from(pkt.sequence.wrapping_sub(self.next));
            }
            // Popping moves `next` and the held slots together, so the packet is still
            // past the last held one.
            self.held.resize(ahead, None);
            self.held.push_back(Some(pkt.clone()));
        }
        self.drain(out);
    }

    /// Hands on everything held, counting the gaps as lost.
    pub fn flush(&mut self, out: &mut Vec<Released>, stats: &mut DepackStats) {
        while !self.held.is_empty() {
            self.pop(out, stats);
        }
    }

    /// A packet outside the RFC 3550 A.1 window: a new sequence if it follows a previous
    /// such packet (the probe), else kept as the probe.
    fn far(&mut self, pkt: &RtpPacket, out: &mut Vec<Released>, stats: &mut DepackStats) {
        match self.probe.take() {
            Some(probe) if probe.sequence.wrapping_add(1) == pkt.sequence => {
                self.flush(out, stats);
                stats.resyncs += 1;
                self.start(probe, true, out);
                self.hand_on(pkt.clone(), out);
            }
            Some(_) => {
                stats.stray += 1;
                self.probe = Some(pkt.clone());
            }
            None => self.probe = Some(pkt.clone()),
        }
    }

    /// Starts a new sequence at `pkt`.
    fn start(&mut self, pkt: RtpPacket, lost_before: bool, out: &mut Vec<Released>) {
        self.ssrc = Some(pkt.ssrc);
        self.next = pkt.sequence;
        self.held.clear();
        self.handed = 0;
        self.probe = None;
        self.gap = lost_before;
        self.hand_on(pkt, out);
    }

    /// Hands on `pkt` as sequence `next` and advances.
    fn hand_on(&mut self, packet: RtpPacket, out: &mut Vec<Released>) {
        out.push(Released {
            packet,
            lost_before: std::mem::take(&mut self.gap),
            late: false,
        });
        self.advance(true);
    }

    /// Moves past sequence `next`.
    fn advance(&mut self, handed: bool) {
        self.next = self.next.wrapping_add(1);
        self.handed = self.handed << 1 | u64::from(handed);
    }

    /// Removes slot 0: hands on its packet, or counts it lost.
    fn pop(&mut self, out: &mut Vec<Released>, stats: &mut DepackStats) {
        match self.held.pop_front() {
            Some(Some(pkt)) => {
                // `hand_on` advances.
                self.hand_on(pkt, out);
            }
            // An empty buffer: the packet at `next` is missing all the same.
            Some(None) | None => {
                stats.lost += 1;
                self.gap = true;
                self.advance(false);
            }
        }
        self.drain(out);
    }

    /// Hands on the packets that are now in order.
    fn drain(&mut self, out: &mut Vec<Released>) {
        while let Some(Some(_)) = self.held.front() {
            if let Some(Some(pkt)) = self.held.pop_front() {
                self.hand_on(pkt, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn pkt(seq: u16) -> RtpPacket {
        RtpPacket {
            payload_type: 96,
            marker: false,
            sequence: seq,
            timestamp: 0,
            ssrc: 7,
            payload: Bytes::new(),
        }
    }

    /// Pushes `seqs`; returns the handed-on sequence numbers, each with its loss flag.
    fn run(r: &mut Reorder, seqs: &[u16], stats: &mut DepackStats) -> Vec<(u16, bool)> {
        let mut out = Vec::new();
        for &s in seqs {
            r.push(&pkt(s), &mut out, stats);
        }
        out.iter()
            .filter(|r| !r.late)
            .map(|r| (r.packet.sequence, r.lost_before))
            .collect()
    }

    #[test]
    fn in_order_passes_through_across_the_wrap() {
        let mut r = Reorder::new(4);
        let mut st = DepackStats::default();
        let got = run(&mut r, &[65534, 65535, 0, 1], &mut st);
        assert_eq!(
            got,
            [(65534, false), (65535, false), (0, false), (1, false)]
        );
        assert_eq!(st, DepackStats::default());
    }

    #[test]
    fn swapped_pair_is_put_back_in_order() {
        let mut r = Reorder::new(4);
        let mut st = DepackStats::default();
        let got = run(&mut r, &[10, 12, 11, 13], &mut st);
        assert_eq!(got, [(10, false), (11, false), (12, false), (13, false)]);
        assert_eq!((st.reordered, st.lost), (1, 0));
    }

    #[test]
    fn gap_is_lost_once_the_window_is_full() {
        let mut r = Reorder::new(2);
        let mut st = DepackStats::default();
        assert_eq!(run(&mut r, &[1, 3, 4], &mut st), [(1, false)]);
        // A third packet behind the gap: 2 is given up.
        let got = run(&mut r, &[5], &mut st);
        assert_eq!(got, [(3, true), (4, false), (5, false)]);
        assert_eq!(st.lost, 1);
        // 2 arrives too late: handed on as late, counted as reordered.
        let mut out = Vec::new();
        r.push(&pkt(2), &mut out, &mut st);
        assert!(matches!(out[..], [Released { late: true, .. }]));
        assert_eq!((st.reordered, st.duplicates), (1, 0));
        // A copy of 4 is a duplicate.
        assert!(run(&mut r, &[4], &mut st).is_empty());
        assert_eq!(st.duplicates, 1);
    }

    #[test]
    fn window_zero_declares_loss_at_once() {
        let mut r = Reorder::new(0);
        let mut st = DepackStats::default();
        let got = run(&mut r, &[1, 4, 5], &mut st);
        assert_eq!(got, [(1, false), (4, true), (5, false)]);
        assert_eq!(st.lost, 2);
    }

    #[test]
    fn duplicates_held_and_handed() {
        let mut r = Reorder::new(8);
        let mut st = DepackStats::default();
        let got = run(&mut r, &[1, 1, 3, 3, 2, 2], &mut st);
        assert_eq!(got, [(1, false), (2, false), (3, false)]);
        assert_eq!((st.duplicates, st.reordered, st.lost), (3, 1, 0));
    }

    #[test]
    fn flush_releases_held_packets() {
        let mut r = Reorder::new(8);
        let mut st = DepackStats::default();
        assert_eq!(run(&mut r, &[1, 4, 6], &mut st), [(1, false)]);
        let mut out = Vec::new();
        r.flush(&mut out, &mut st);
        let got: Vec<(u16, bool)> = out
            .iter()
            .map(|r| (r.packet.sequence, r.lost_before))
            .collect();
        assert_eq!(got, [(4, true), (6, true)]);
        assert_eq!(st.lost, 3);
    }

    #[test]
    fn far_jump_needs_confirmation() {
        let mut r = Reorder::new(4);
        let mut st = DepackStats::default();
        // 30000 alone is a stray; 3 continues the sequence.
        let got = run(&mut r, &[1, 2, 30000, 3], &mut st);
        assert_eq!(got, [(1, false), (2, false), (3, false)]);
        assert_eq!(st.stray, 1);
        // 40000 then 40001: a new sequence, flagged as a cut.
        let got = run(&mut r, &[40000, 40001, 40002], &mut st);
        assert_eq!(got, [(40000, true), (40001, false), (40002, false)]);
        assert_eq!((st.resyncs, st.stray, st.lost), (1, 1, 0));
        // Two unrelated far packets: the first is a stray, the second the new probe.
        run(&mut r, &[100, 200], &mut st);
        assert_eq!(st.stray, 2);
    }

    #[test]
    fn new_ssrc_starts_a_new_sequence() {
        let mut r = Reorder::new(4);
        let mut st = DepackStats::default();
        run(&mut r, &[1, 3], &mut st);
        let mut other = pkt(500);
        other.ssrc = 8;
        let mut out = Vec::new();
        r.push(&other, &mut out, &mut st);
        let got: Vec<(u16, bool)> = out
            .iter()
            .map(|r| (r.packet.sequence, r.lost_before))
            .collect();
        assert_eq!(got, [(3, true), (500, true)]);
        assert_eq!((st.resyncs, st.lost), (1, 1));
    }
}
