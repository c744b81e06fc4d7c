//! Receiver statistics for RTCP receiver reports (RFC 3550 §6.4.2 and appendix A).
//!
//! One [`ReceiverStats`] per received track: the driver feeds it every RTP packet with
//! its arrival time and every RTCP compound packet from the sender, and asks it for a
//! [`ReportBlock`] when a report is due (RFC 3550 §6.2 interval; the timer is the
//! driver's). [`build_receiver_report`] writes the RR + SDES CNAME compound packet.
//!
//! All times here are in ticks of the track's RTP clock, read by the driver from its
//! monotonic clock (`elapsed × clock_rate`): the arrival time for jitter (A.8) and the
//! time of an SR's arrival and of the report for DLSR.

use super::{DepackError, RtpPacket};

/// A.1: packets in sequence before a source is valid.
const MIN_SEQUENTIAL: u32 = 2;
/// A.1: largest forward jump still in sequence.
const MAX_DROPOUT: u16 = 3000;
/// A.1: largest backward jump still in sequence.
const MAX_MISORDER: u16 = 100;
/// Sequence number modulus.
const SEQ_MOD: u32 = 1 << 16;
/// RTCP version bits in the first byte.
const RTCP_VERSION: u8 = 0x80;
/// RTCP header: version mask.
const VERSION_MASK: u8 = 0xC0;
/// RTCP packet type: sender report.
const PT_SR: u8 = 0xC8;
/// RTCP packet type: receiver report.
const PT_RR: u8 = 0xC9;
/// RTCP packet type: source description.
const PT_SDES: u8 = 0xCA;
/// SDES item: canonical name.
const SDES_CNAME: u8 = 0x01;
/// RTCP common header.
const RTCP_HEADER: usize = 4;
/// SR: sender SSRC plus sender info (NTP 8, RTP 4, packets 4, octets 4).
const SR_BODY: usize = 0x18;
/// Report blocks in one RR (5-bit count).
const MAX_REPORT_BLOCKS: usize = 0x1F;
/// Longest SDES item text.
const MAX_SDES_TEXT: usize = 0xFF;
/// Cumulative lost is a signed 24-bit field.
const MAX_CUMULATIVE_LOST: i64 = 0x7F_FFFF;
/// Smallest cumulative lost.
const MIN_CUMULATIVE_LOST: i64 = -0x80_0000;

/// The sender info of an RTCP sender report (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    /// The sender's SSRC.
    pub ssrc: u32,
    /// NTP timestamp (64-bit fixed point, seconds since 1900) of `rtp_time`.
    pub ntp: u64,
    /// The RTP timestamp corresponding to `ntp`.
    pub rtp_time: u32,
    /// Packets sent.
    pub packets: u32,
    /// Payload octets sent.
    pub octets: u32,
}

impl SenderReport {
    /// The middle 32 bits of the NTP timestamp: the LSR of a report block.
    pub fn lsr(&self) -> u32 {
        (self.ntp >> 16) as u32
    }
}

/// One RR report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source reported on.
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost since the start (negative with duplicates), 24-bit signed.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles in the high 16 bits).
    pub highest_seq: u32,
    /// Interarrival jitter in RTP ticks.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP timestamp, 0 if none.
    pub lsr: u32,
    /// Delay since that SR in 1/65536 s, 0 if none.
    pub dlsr: u32,
}

/// Sequence and jitter state of the source (A.1, A.3, A.8).
#[derive(Debug, Clone)]
struct Source {
    ssrc: u32,
    max_seq: u16,
    /// Shifted count of sequence number cycles.
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Relative transit time of the previous packet.
    transit: Option<u32>,
    /// Jitter estimate, scaled by 16 (A.8).
    jitter: u32,
}

impl Source {
    /// A.1 `init_seq` on a new source; in probation until `MIN_SEQUENTIAL` packets.
    fn new(ssrc: u32, seq: u16) -> Source {
        let mut s = Source {
            ssrc,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: 0,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter: 0,
        };
        s.init_seq(seq);
        s.max_seq = seq.wrapping_sub(1);
        s
    }

    /// A.1 `init_seq`.
    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// A.1 `update_seq`: whether the packet counts.
    fn update_seq(&mut self, seq: u16) -> bool {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return true;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return false;
        }
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                // Wrapped.
                self.cycles = self.cycles.wrapping_add(SEQ_MOD);
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= SEQ_MOD - u32::from(MAX_MISORDER) {
            // A very large jump: a restarted sender, if the next packet follows it.
            if u32::from(seq) == self.bad_seq {
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (SEQ_MOD - 1);
                return false;
            }
        }
        // Else a duplicate or reordered packet: counted, no state change.
        self.received = self.received.wrapping_add(1);
        true
    }

    fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// A.3: expected minus received since the start.
    fn cumulative_lost(&self) -> i64 {
        let expected = i64::from(self.extended_max()) - i64::from(self.base_seq) + 1;
        expected - i64::from(self.received)
    }

    /// A.8 with `arrival` in RTP ticks.
    fn update_jitter(&mut self, timestamp: u32, arrival: i64) {
        // Wrapping 32-bit arithmetic, as the RTP clock itself.
        let transit = (arrival as u32).wrapping_sub(timestamp);
        if let Some(prev) = self.transit {
            let d = (transit.wrapping_sub(prev) as i32).unsigned_abs();
            // J += (|D| - J) / 16, with J kept scaled by 16.
            self.jitter = self
                .jitter
                .wrapping_add(d)
                .wrapping_sub((self.jitter + 8) >> 4);
        }
        self.transit = Some(transit);
    }
}

/// The last SR received and when.
#[derive(Debug, Clone, Copy)]
struct LastSr {
    report: SenderReport,
    arrival: i64,
}

/// Reception statistics of one track's RTP source, for RTCP receiver reports.
#[derive(Debug, Clone)]
pub struct ReceiverStats {
    clock_rate: u32,
    source: Option<Source>,
    last_sr: Option<LastSr>,
}

impl ReceiverStats {
    /// Statistics for a track whose RTP clock runs at `clock_rate` Hz.
    pub fn new(clock_rate: u32) -> ReceiverStats {
        ReceiverStats {
            clock_rate: clock_rate.max(1),
            source: None,
            last_sr: None,
        }
    }

    /// Records an RTP packet that arrived at `arrival` (track-clock ticks). A new SSRC
    /// starts the statistics over.
    pub fn on_rtp(&mut self, pkt: &RtpPacket, arrival: i64) {
        let source = match &mut self.source {
            Some(s) if s.ssrc == pkt.ssrc => s,
            _ => self.source.insert(Source::new(pkt.ssrc, pkt.sequence)),
        };
        if source.update_seq(pkt.sequence) {
            source.update_jitter(pkt.timestamp, arrival);
        }
    }

    /// Reads a compound RTCP packet from the sender that arrived at `arrival`
    /// (track-clock ticks); keeps its sender report, if any, for LSR/DLSR. Other packet
    /// types are skipped. Returns the sender report.
    pub fn on_rtcp(
        &mut self,
        data: &[u8],
        arrival: i64,
    ) -> Result<Option<SenderReport>, DepackError> {
        let sr = parse_sender_report(data)?;
        if let Some(report) = sr {
            self.last_sr = Some(LastSr { report, arrival });
        }
        Ok(sr)
    }

    /// The source's SSRC, once a packet arrived.
    pub fn ssrc(&self) -> Option<u32> {
        self.source.as_ref().map(|s| s.ssrc)
    }

    /// Extended highest sequence number received.
    pub fn extended_highest_seq(&self) -> Option<u32> {
        self.source.as_ref().map(Source::extended_max)
    }

    /// Packets lost since the start (A.3); negative when duplicates outnumber losses.
    pub fn cumulative_lost(&self) -> i64 {
        self.source.as_ref().map_or(0, Source::cumulative_lost)
    }

    /// Interarrival jitter in RTP ticks (A.8).
    pub fn jitter(&self) -> u32 {
        self.source.as_ref().map_or(0, |s| s.jitter >> 4)
    }

    /// The report block for the source at `now` (track-clock ticks), `None` before any
    /// packet. Starts a new interval for the fraction lost (A.3), so call it once per
    /// report sent.
    pub fn report_block(&mut self, now: i64) -> Option<ReportBlock> {
        let s = self.source.as_mut()?;
        let extended = s.extended_max();
        let expected = extended.wrapping_sub(s.base_seq).wrapping_add(1);
        let expected_interval = expected.wrapping_sub(s.expected_prior);
        s.expected_prior = expected;
        let received_interval = s.received.wrapping_sub(s.received_prior);
        s.received_prior = s.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(0xFF) as u8
        };
        let cumulative_lost = s
            .cumulative_lost()
            .clamp(MIN_CUMULATIVE_LOST, MAX_CUMULATIVE_LOST) as i32;
        let (lsr, dlsr) = match self.last_sr {
            Some(sr) if sr.report.ssrc == s.ssrc => {
                let ticks = i128::from(now.saturating_sub(sr.arrival).max(0));
                let units = ticks * 0x1_0000 / i128::from(self.clock_rate);
                (sr.report.lsr(), units.min(i128::from(u32::MAX)) as u32)
            }
            _ => (0, 0),
        };
        Some(ReportBlock {
            ssrc: s.ssrc,
            fraction_lost,
            cumulative_lost,
            highest_seq: extended,
            jitter: s.jitter >> 4,
            lsr,
            dlsr,
        })
    }
}

/// Walks a compound RTCP packet (RFC 3550 §6.1) and returns its first sender report.
/// Every packet's header and length are checked; packet types other than SR are
/// skipped.
pub fn parse_sender_report(data: &[u8]) -> Result<Option<SenderReport>, DepackError> {
    let mut offset = 0;
    let mut found = None;
    while offset < data.len() {
        let err = |what| DepackError::Rtcp { offset, what };
        let rest = data.get(offset..).unwrap_or_default();
        let [b0, pt, l0, l1] = *rest
            .first_chunk::<RTCP_HEADER>()
            .ok_or(err("truncated header"))?;
        if b0 & VERSION_MASK != RTCP_VERSION {
            return Err(err("version is not 2"));
        }
        let len = (usize::from(u16::from_be_bytes([l0, l1])) + 1) * 4;
        let packet = rest.get(..len).ok_or(err("length past the end"))?;
        if pt == PT_SR && found.is_none() {
            let body = packet
                .get(RTCP_HEADER..RTCP_HEADER + SR_BODY)
                .and_then(|b| b.first_chunk::<SR_BODY>())
                .ok_or(err("sender report too short"))?;
            let word = |i: usize| {
                let mut w = [0u8; 4];
                if let Some(src) = body.get(i..i + 4) {
                    w.copy_from_slice(src);
                }
                u32::from_be_bytes(w)
            };
            found = Some(SenderReport {
                ssrc: word(0),
                ntp: u64::from(word(4)) << 32 | u64::from(word(8)),
                rtp_time: word(12),
                packets: word(16),
                octets: word(20),
            });
        }
        offset += len;
    }
    Ok(found)
}

/// A compound RTCP packet: a receiver report from `our_ssrc` with `blocks` (at most 31
/// are written), then an SDES with our CNAME (truncated to 255 bytes), as RFC 3550 §6.1
/// requires of every compound packet.
pub fn build_receiver_report(our_ssrc: u32, cname: &str, blocks: &[ReportBlock]) -> Vec<u8> {
    let blocks = blocks.get(..MAX_REPORT_BLOCKS).unwrap_or(blocks);
    let mut cut = cname.len().min(MAX_SDES_TEXT);
    while !cname.is_char_boundary(cut) {
        cut -= 1;
    }
    let cname = cname.get(..cut).unwrap_or_default().as_bytes();
    // SSRC, CNAME item, then 1 to 4 null octets up to a 32-bit boundary.
    let chunk = 4 + 2 + cname.len();
    let chunk = chunk + 4 - chunk % 4;
    let rr_len = RTCP_HEADER + 4 + 24 * blocks.len();
    let mut out = Vec::with_capacity(rr_len + RTCP_HEADER + chunk);

    out.push(RTCP_VERSION | blocks.len() as u8);
    out.push(PT_RR);
    out.extend_from_slice(&((rr_len / 4 - 1) as u16).to_be_bytes());
    out.extend_from_slice(&our_ssrc.to_be_bytes());
    for b in blocks {
        out.extend_from_slice(&b.ssrc.to_be_bytes());
        let lost = (b.cumulative_lost as u32) & 0x00FF_FFFF;
        out.extend_from_slice(&(u32::from(b.fraction_lost) << 24 | lost).to_be_bytes());
        out.extend_from_slice(&b.highest_seq.to_be_bytes());
        out.extend_from_slice(&b.jitter.to_be_bytes());
        out.extend_from_slice(&b.lsr.to_be_bytes());
        out.extend_from_slice(&b.dlsr.to_be_bytes());
    }

    out.push(RTCP_VERSION | 1);
    out.push(PT_SDES);
    out.extend_from_slice(&(((RTCP_HEADER + chunk) / 4 - 1) as u16).to_be_bytes());
    out.extend_from_slice(&our_ssrc.to_be_bytes());
    out.push(SDES_CNAME);
    out.push(cname.len() as u8);
    out.extend_from_slice(cname);
    out.resize(rr_len + RTCP_HEADER + chunk, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn pkt(seq: u16, ts: u32) -> RtpPacket {
        RtpPacket {
            payload_type: 0,
            marker: false,
            sequence: seq,
            timestamp: ts,
            ssrc: 0xAABB_CCDD,
            payload: Bytes::new(),
        }
    }

    #[test]
    fn receiver_report_bytes() {
        let block = ReportBlock {
            ssrc: 0x1122_3344,
            fraction_lost: 0x40,
            cumulative_lost: 5,
            highest_seq: 0x0001_0005,
            jitter: 0x20,
            lsr: 0xAABB_CCDD,
            dlsr: 0x0001_8000,
        };
        let got = build_receiver_report(0xDEAD_BEEF, "cc", &[block]);
        #[rustfmt::skip]
        let want = [
            // RR: V=2, RC=1, PT=201, length 7 words + 1.
            0x81, 0xC9, 0x00, 0x07,
            0xDE, 0xAD, 0xBE, 0xEF,
            0x11, 0x22, 0x33, 0x44,
            0x40, 0x00, 0x00, 0x05,
            0x00, 0x01, 0x00, 0x05,
            0x00, 0x00, 0x00, 0x20,
            0xAA, 0xBB, 0xCC, 0xDD,
            0x00, 0x01, 0x80, 0x00,
            // SDES: V=2, SC=1, PT=202, length 2 words + 1.
            0x81, 0xCA, 0x00, 0x03,
            0xDE, 0xAD, 0xBE, 0xEF,
            // CNAME "cc", then two null octets (end of items + padding).
            0x01, 0x02, b'c', b'c',
            0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn empty_receiver_report_and_cname_padding() {
        // No blocks yet. A 2-byte CNAME fills the chunk to a word boundary (4 + 2 + 2),
        // so a whole word of nulls ends the item list.
        let got = build_receiver_report(1, "ab", &[]);
        #[rustfmt::skip]
        let want = [
            0x80, 0xC9, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,
            0x81, 0xCA, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01,
            0x01, 0x02, b'a', b'b', 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(got, want);
        // A 3-byte CNAME: three nulls.
        let got = build_receiver_report(1, "abc", &[]);
        #[rustfmt::skip]
        let want = [
            0x81, 0xCA, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01,
            0x01, 0x03, b'a', b'b', b'c', 0x00, 0x00, 0x00,
        ];
        assert_eq!(&got[8..], &want);
        // Negative cumulative loss is 24-bit two's complement.
        let block = ReportBlock {
            ssrc: 0,
            fraction_lost: 0,
            cumulative_lost: -2,
            highest_seq: 0,
            jitter: 0,
            lsr: 0,
            dlsr: 0,
        };
        let got = build_receiver_report(1, "", &[block]);
        assert_eq!(&got[12..16], &[0x00, 0xFF, 0xFF, 0xFE]);
        // Every length field matches the bytes.
        let long = "x".repeat(300);
        let got = build_receiver_report(1, &long, &[block; 40]);
        let rr_len = (usize::from(u16::from_be_bytes([got[2], got[3]])) + 1) * 4;
        assert_eq!(got[0], 0x80 | 31);
        assert_eq!(rr_len, 8 + 31 * 24);
        let sdes = &got[rr_len..];
        assert_eq!(sdes[9], 255);
        assert_eq!(
            (usize::from(u16::from_be_bytes([sdes[2], sdes[3]])) + 1) * 4,
            sdes.len()
        );
    }

    #[test]
    fn loss_and_fraction_since_last_report() {
        let mut st = ReceiverStats::new(90_000);
        assert_eq!(st.report_block(0), None);
        // Probation: the first packet is not counted (A.1), the second starts the count.
        for seq in [100u16, 101, 102, 104, 105, 107] {
            st.on_rtp(&pkt(seq, 0), 0);
        }
        // Expected 101..=107 (7), received 5.
        assert_eq!(st.cumulative_lost(), 2);
        let b = st.report_block(0).unwrap();
        assert_eq!(b.ssrc, 0xAABB_CCDD);
        assert_eq!(b.highest_seq, 107);
        assert_eq!(b.cumulative_lost, 2);
        assert_eq!(b.fraction_lost, (2 * 256 / 7) as u8);
        // Next interval: 108..=111 all received.
        for seq in 108..=111 {
            st.on_rtp(&pkt(seq, 0), 0);
        }
        let b = st.report_block(0).unwrap();
        assert_eq!((b.fraction_lost, b.cumulative_lost), (0, 2));
        // A duplicate makes the count negative over an interval: fraction 0.
        st.on_rtp(&pkt(111, 0), 0);
        let b = st.report_block(0).unwrap();
        assert_eq!((b.fraction_lost, b.cumulative_lost), (0, 1));
    }

    #[test]
    fn sequence_wrap_extends_the_highest() {
        let mut st = ReceiverStats::new(8000);
        for seq in [65534u16, 65535, 0, 1] {
            st.on_rtp(&pkt(seq, 0), 0);
        }
        assert_eq!(st.extended_highest_seq(), Some(0x0001_0001));
        assert_eq!(st.cumulative_lost(), 0);
    }

    #[test]
    fn jitter_follows_a8() {
        let mut st = ReceiverStats::new(8000);
        // 20 ms packets (160 ticks); every other one arrives 80 ticks late.
        for i in 0..200u16 {
            let ts = u32::from(i) * 160;
            let late = if i % 2 == 1 { 80 } else { 0 };
            st.on_rtp(&pkt(i, ts.wrapping_add(0xFFFF_F000)), i64::from(ts) + late);
        }
        // |D| is 80 for every pair: J converges to 80.
        assert!((78..=80).contains(&st.jitter()), "{}", st.jitter());
        // Constant delay: no jitter.
        let mut st = ReceiverStats::new(8000);
        for i in 0..50u16 {
            st.on_rtp(&pkt(i, u32::from(i) * 160), 1_000_000 + i64::from(i) * 160);
        }
        assert_eq!(st.jitter(), 0);
    }

    #[test]
    fn sender_report_gives_lsr_and_dlsr() {
        #[rustfmt::skip]
        let compound = [
            // SR from 0xAABBCCDD, no report blocks.
            0x80, 0xC8, 0x00, 0x06,
            0xAA, 0xBB, 0xCC, 0xDD,
            0xE8, 0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, // NTP
            0x00, 0x01, 0x00, 0x00, // RTP time
            0x00, 0x00, 0x00, 0x10, // packets
            0x00, 0x00, 0x04, 0x00, // octets
            // SDES CNAME "x".
            0x81, 0xCA, 0x00, 0x02,
            0xAA, 0xBB, 0xCC, 0xDD,
            0x01, 0x01, b'x', 0x00,
        ];
        let mut st = ReceiverStats::new(90_000);
        st.on_rtp(&pkt(1, 0), 0);
        let sr = st.on_rtcp(&compound, 90_000).unwrap().unwrap();
        assert_eq!(sr.ntp, 0xE812_3456_789A_BCDE);
        assert_eq!((sr.rtp_time, sr.packets, sr.octets), (0x1_0000, 16, 1024));
        assert_eq!(sr.lsr(), 0x3456_789A);
        // 1.5 s later: DLSR 1.5 * 65536.
        let b = st.report_block(90_000 + 135_000).unwrap();
        assert_eq!((b.lsr, b.dlsr), (0x3456_789A, 98_304));
        // An SR from another source is not used.
        let mut st = ReceiverStats::new(90_000);
        let mut p = pkt(1, 0);
        p.ssrc = 5;
        st.on_rtp(&p, 0);
        st.on_rtcp(&compound, 0).unwrap();
        assert_eq!(st.report_block(0).map(|b| (b.lsr, b.dlsr)), Some((0, 0)));
    }

    #[test]
    fn malformed_rtcp_is_an_error() {
        let rr = [0x80, 0xC9, 0x00, 0x01, 0, 0, 0, 1];
        assert_eq!(parse_sender_report(&rr), Ok(None));
        assert_eq!(parse_sender_report(&[]), Ok(None));
        let cases: [(&[u8], usize, &str); 5] = [
            (&[0x80, 0xC9, 0x00], 0, "truncated header"),
            (&[0x40, 0xC9, 0x00, 0x00], 0, "version is not 2"),
            (
                &[0x80, 0xC9, 0x00, 0x02, 0, 0, 0, 1],
                0,
                "length past the end",
            ),
            (
                &[0x80, 0xC8, 0x00, 0x01, 0, 0, 0, 1],
                0,
                "sender report too short",
            ),
            (
                &[0x80, 0xC9, 0x00, 0x01, 0, 0, 0, 1, 0x80],
                8,
                "truncated header",
            ),
        ];
        for (data, offset, what) in cases {
            assert_eq!(
                parse_sender_report(data),
                Err(DepackError::Rtcp { offset, what }),
                "{data:?}"
            );
        }
    }
}
