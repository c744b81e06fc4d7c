//! Counting media from clear-text RTP headers, without decrypting.
//!
//! SRTP encrypts only the payload: the fixed RTP header (marker, payload type, sequence
//! number, timestamp, SSRC) stays readable. [`RtpCounter`] keeps per-SSRC counts from
//! those headers: packets, bytes, marker bits (one per video frame), duplicates,
//! reordering and loss (RFC 3550 A.3: expected from the extended sequence range minus
//! unique packets received). It is what the `Light` receive mode uses instead of str0m's
//! depacketizer, and the `Full` mode runs it too so both report the same counters.

/// What a datagram on a WebRTC 5-tuple carries, by its first byte (RFC 7983) and, for
/// RTP/RTCP, its second byte (RFC 5761).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramKind {
    /// First byte 0–3.
    Stun,
    /// First byte 20–63.
    Dtls,
    /// First byte 128–191, packet type outside 64–95 (after the marker bit).
    Rtp,
    /// First byte 128–191, packet type 192–223 (`b[1] & 0x7f` in 64–95).
    Rtcp,
    /// Anything else (TURN channels, ZRTP, garbage).
    Other,
}

/// Classifies a datagram (RFC 7983 section 7, RFC 5761 section 4).
pub fn classify(b: &[u8]) -> DatagramKind {
    match b.first() {
        Some(0x00..=0x03) => DatagramKind::Stun,
        Some(0x14..=0x3f) => DatagramKind::Dtls,
        Some(0x80..=0xbf) => match b.get(1) {
            Some(b1) if (0x40..=0x5f).contains(&(b1 & 0x7f)) => DatagramKind::Rtcp,
            Some(_) => DatagramKind::Rtp,
            None => DatagramKind::Other,
        },
        _ => DatagramKind::Other,
    }
}

/// The clear-text fixed header of an RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit (video: last packet of a frame).
    pub marker: bool,
    /// Payload type.
    pub pt: u8,
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
    /// Length of the header including CSRCs and the header extension.
    pub header_len: usize,
}

/// Reads the fixed header (version 2, CSRC list and extension length bounded by the
/// packet). `None` if the packet is too short or not version 2.
pub fn parse_header(b: &[u8]) -> Option<RtpHeader> {
    if b.len() < 12 || b[0] >> 6 != 2 {
        return None;
    }
    let cc = usize::from(b[0] & 0x0f);
    let mut len = 12 + 4 * cc;
    if b[0] & 0x10 != 0 {
        let ext = b.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    if len > b.len() {
        return None;
    }
    Some(RtpHeader {
        marker: b[1] & 0x80 != 0,
        pt: b[1] & 0x7f,
        seq: u16::from_be_bytes([b[2], b[3]]),
        timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        header_len: len,
    })
}

/// What a payload type carries, from the SDP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadClass {
    /// A video codec.
    Video,
    /// An audio codec.
    Audio,
    /// Retransmissions (RFC 4588 `rtx`).
    Rtx,
    /// Anything else (RED, FEC, or a payload type the answer did not name).
    Other,
}

/// Payload types of an SDP answer and what each carries: the format list of each
/// `m=video`/`m=audio` line, with `rtx`, `red`, `ulpfec` and `flexfec` from `a=rtpmap`
/// set apart.
pub fn payload_classes(sdp: &str) -> Vec<(u8, PayloadClass)> {
    let mut out: Vec<(u8, PayloadClass)> = Vec::new();
    let mut section = PayloadClass::Other;
    let mut start = 0;
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split_whitespace();
            section = match parts.next() {
                Some("video") => PayloadClass::Video,
                Some("audio") => PayloadClass::Audio,
                _ => PayloadClass::Other,
            };
            start = out.len();
            // port, proto, then the formats
            for f in parts.skip(2) {
                if let Ok(pt) = f.parse::<u8>()
                    && pt < 128
                {
                    out.push((pt, section));
                }
            }
        } else if let Some(map) = line.strip_prefix("a=rtpmap:") {
            let mut parts = map.split_whitespace();
            let (Some(pt), Some(enc)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(pt) = pt.parse::<u8>() else { continue };
            let name = enc.split('/').next().unwrap_or("");
            let class = if name.eq_ignore_ascii_case("rtx") {
                PayloadClass::Rtx
            } else if ["red", "ulpfec", "flexfec-03", "flexfec"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
            {
                PayloadClass::Other
            } else {
                section
            };
            if let Some(e) = out[start..].iter_mut().find(|(p, _)| *p == pt) {
                e.1 = class;
            }
        }
    }
    out
}

/// Sequence numbers remembered for duplicate detection.
const WINDOW: i64 = 1024;

/// Counts of one SSRC.
#[derive(Debug, Clone)]
pub struct SsrcStats {
    /// The SSRC.
    pub ssrc: u32,
    /// Payload type of its first packet.
    pub pt: u8,
    /// What it carries (by payload type).
    pub class: PayloadClass,
    /// Unique packets.
    pub packets: u64,
    /// Bytes of unique packets (whole datagrams).
    pub bytes: u64,
    /// Packets with the marker bit (video: frames).
    pub markers: u64,
    /// Packets seen twice.
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number.
    pub reordered: u64,
    /// Lowest and highest extended sequence numbers.
    seq_range: (i64, i64),
    /// Ring of received extended sequence numbers, `WINDOW` wide, ending at the highest.
    window: [u64; (WINDOW / 64) as usize],
    /// Last extended RTP timestamp.
    last_ts: i64,
    /// Bytes since the last marker.
    frame_bytes: usize,
}

impl SsrcStats {
    fn new(ssrc: u32, pt: u8, class: PayloadClass, seq: u16, ts: u32) -> Self {
        let s = i64::from(seq);
        SsrcStats {
            ssrc,
            pt,
            class,
            packets: 0,
            bytes: 0,
            markers: 0,
            duplicates: 0,
            reordered: 0,
            seq_range: (s, s),
            window: [0; (WINDOW / 64) as usize],
            last_ts: i64::from(ts),
            frame_bytes: 0,
        }
    }

    /// Packets the sequence range spans.
    pub fn expected(&self) -> u64 {
        (self.seq_range.1 - self.seq_range.0 + 1) as u64
    }

    /// Packets missing from the sequence range (0 when duplicates outnumber them).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.packets)
    }

    /// Highest extended sequence number.
    pub fn highest_seq(&self) -> i64 {
        self.seq_range.1
    }

    fn bit(&mut self, ext: i64) -> (usize, u64) {
        let i = ext.rem_euclid(WINDOW) as usize;
        (i / 64, 1u64 << (i % 64))
    }

    /// Records one packet; returns whether it was new (not a duplicate) and its extended
    /// sequence number.
    fn record_seq(&mut self, seq: u16) -> (bool, i64) {
        let (lo, hi) = self.seq_range;
        let delta = i64::from(seq.wrapping_sub(hi as u16) as i16);
        let ext = hi + delta;
        if self.packets == 0 && self.duplicates == 0 {
            let (w, b) = self.bit(ext);
            self.window[w] |= b;
            return (true, ext);
        }
        if delta > 0 {
            // Forget the slots the window moves past.
            if delta >= WINDOW {
                self.window = [0; (WINDOW / 64) as usize];
            } else {
                for s in hi + 1..=ext {
                    let (w, b) = self.bit(s);
                    self.window[w] &= !b;
                }
            }
            self.seq_range.1 = ext;
        } else {
            self.reordered += u64::from(delta < 0);
            if ext < lo {
                self.seq_range.0 = ext;
            }
            if hi - ext >= WINDOW {
                // Too old to tell: count it.
                return (true, ext);
            }
        }
        let (w, b) = self.bit(ext);
        if self.window[w] & b != 0 {
            if delta < 0 {
                self.reordered -= 1;
            }
            return (false, ext);
        }
        self.window[w] |= b;
        (true, ext)
    }

    fn extend_ts(&mut self, ts: u32) -> i64 {
        let delta = i64::from(ts.wrapping_sub(self.last_ts as u32) as i32);
        let ext = self.last_ts + delta;
        if delta > 0 {
            self.last_ts = ext;
        }
        ext
    }
}

/// A video frame completed by a packet with the marker bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkedFrame {
    /// SSRC of the frame.
    pub ssrc: u32,
    /// Extended RTP timestamp.
    pub rtp_time: i64,
    /// Bytes of the packets since the previous marker of this SSRC (approximate under
    /// reordering), including headers and the SRTP tag.
    pub bytes: usize,
}

/// What [`RtpCounter::count`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// The header.
    pub header: RtpHeader,
    /// The payload class of its SSRC.
    pub class: PayloadClass,
    /// False for a duplicate.
    pub new: bool,
    /// Set when a new video packet carried the marker bit.
    pub frame: Option<MarkedFrame>,
}

/// Per-SSRC counters over clear-text RTP headers.
#[derive(Debug, Clone, Default)]
pub struct RtpCounter {
    classes: Vec<(u8, PayloadClass)>,
    ssrcs: Vec<SsrcStats>,
    /// Datagrams that looked like RTP but whose header did not parse.
    pub malformed: u64,
}

/// More SSRCs than this are not tracked separately (a hostile sender could otherwise
/// grow the table without bound); their packets count as malformed.
const MAX_SSRCS: usize = 32;

impl RtpCounter {
    /// A counter that classifies payload types with `classes` (see [`payload_classes`]).
    pub fn new(classes: Vec<(u8, PayloadClass)>) -> Self {
        RtpCounter {
            classes,
            ssrcs: Vec::new(),
            malformed: 0,
        }
    }

    /// Replaces the payload type map (SSRCs already seen keep their class).
    pub fn set_classes(&mut self, classes: Vec<(u8, PayloadClass)>) {
        self.classes = classes;
    }

    /// What payload type `pt` carries.
    pub fn class_of(&self, pt: u8) -> PayloadClass {
        self.classes
            .iter()
            .find(|(p, _)| *p == pt)
            .map_or(PayloadClass::Other, |(_, c)| *c)
    }

    /// Counts one RTP datagram; `None` if its header does not parse.
    pub fn count(&mut self, datagram: &[u8]) -> Option<Counted> {
        let Some(h) = parse_header(datagram) else {
            self.malformed += 1;
            return None;
        };
        let i = match self.ssrcs.iter().position(|s| s.ssrc == h.ssrc) {
            Some(i) => i,
            None if self.ssrcs.len() < MAX_SSRCS => {
                let class = self.class_of(h.pt);
                self.ssrcs
                    .push(SsrcStats::new(h.ssrc, h.pt, class, h.seq, h.timestamp));
                self.ssrcs.len() - 1
            }
            None => {
                self.malformed += 1;
                return None;
            }
        };
        let s = &mut self.ssrcs[i];
        let (new, _) = s.record_seq(h.seq);
        let mut frame = None;
        if new {
            s.packets += 1;
            s.bytes += datagram.len() as u64;
            s.frame_bytes += datagram.len();
            let ext_ts = s.extend_ts(h.timestamp);
            if h.marker {
                s.markers += 1;
                if s.class == PayloadClass::Video {
                    frame = Some(MarkedFrame {
                        ssrc: h.ssrc,
                        rtp_time: ext_ts,
                        bytes: s.frame_bytes,
                    });
                }
                s.frame_bytes = 0;
            }
        } else {
            s.duplicates += 1;
        }
        Some(Counted {
            header: h,
            class: s.class,
            new,
            frame,
        })
    }

    /// Counts per SSRC, in order of first packet.
    pub fn ssrcs(&self) -> &[SsrcStats] {
        &self.ssrcs
    }

    /// Unique packets of every SSRC.
    pub fn packets(&self) -> u64 {
        self.ssrcs.iter().map(|s| s.packets).sum()
    }

    /// Bytes of unique packets of every SSRC.
    pub fn bytes(&self) -> u64 {
        self.ssrcs.iter().map(|s| s.bytes).sum()
    }

    /// Packets missing from the media (video and audio) SSRCs. Retransmission streams
    /// are left out: their sequence numbers only cover what was asked for.
    pub fn lost(&self) -> u64 {
        self.ssrcs
            .iter()
            .filter(|s| matches!(s.class, PayloadClass::Video | PayloadClass::Audio))
            .map(SsrcStats::lost)
            .sum()
    }

    /// Unique packets of `class`.
    pub fn packets_of(&self, class: PayloadClass) -> u64 {
        self.ssrcs
            .iter()
            .filter(|s| s.class == class)
            .map(|s| s.packets)
            .sum()
    }
}

/// How many frames arrived of those the RTP timestamps span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameCoverage {
    /// Frames with distinct timestamps.
    pub received: u64,
    /// Frames the timestamps span at the nominal frame rate.
    pub expected: u64,
}

impl FrameCoverage {
    /// `received / expected` (1.0 when nothing was expected).
    pub fn ratio(&self) -> f64 {
        if self.expected == 0 {
            1.0
        } else {
            self.received as f64 / self.expected as f64
        }
    }
}

/// Frames expected over the span of `rtp_times` (extended timestamps, any order) at one
/// frame per `ticks_per_frame`, against the distinct timestamps received. Between two
/// neighbouring timestamps (sorted) `round(gap / ticks_per_frame)` frames are expected,
/// at least one: a gap of two frame durations is one frame lost, and frames closer
/// than a frame duration (a server's catch-up burst, jitter in a source's millisecond
/// timestamps) are each one frame.
pub fn frame_coverage(
    rtp_times: impl IntoIterator<Item = i64>,
    ticks_per_frame: u64,
) -> FrameCoverage {
    let mut ts: Vec<i64> = rtp_times.into_iter().collect();
    ts.sort_unstable();
    ts.dedup();
    let Some(first) = ts.first().copied() else {
        return FrameCoverage::default();
    };
    let tpf = ticks_per_frame.max(1) as i64;
    let mut expected = 1u64;
    let mut prev = first;
    for &t in &ts[1..] {
        let gap = t - prev;
        expected += ((gap + tpf / 2) / tpf).max(1) as u64;
        prev = t;
    }
    FrameCoverage {
        received: ts.len() as u64,
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
        let mut b = vec![0x80, (u8::from(marker) << 7) | pt];
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&ts.to_be_bytes());
        b.extend_from_slice(&ssrc.to_be_bytes());
        b.extend_from_slice(&[0xaa; 20]);
        b
    }

    fn video_counter() -> RtpCounter {
        RtpCounter::new(vec![(96, PayloadClass::Video), (97, PayloadClass::Rtx)])
    }

    #[test]
    fn classify_by_first_byte() {
        assert_eq!(classify(&[0x00, 0x01]), DatagramKind::Stun);
        assert_eq!(classify(&[0x01, 0x01]), DatagramKind::Stun);
        assert_eq!(classify(&[22, 0xfe, 0xfd]), DatagramKind::Dtls);
        assert_eq!(classify(&[0x80, 96]), DatagramKind::Rtp);
        assert_eq!(classify(&[0x80, 0x80 | 96]), DatagramKind::Rtp);
        assert_eq!(classify(&[0x80, 200]), DatagramKind::Rtcp); // SR
        assert_eq!(classify(&[0x81, 201]), DatagramKind::Rtcp); // RR
        assert_eq!(classify(&[0x81, 206]), DatagramKind::Rtcp); // PSFB
        assert_eq!(classify(&[0x80, 0x7f]), DatagramKind::Rtp); // PT 127, no marker
        assert_eq!(classify(&[0x80]), DatagramKind::Other);
        assert_eq!(classify(&[0x40, 0]), DatagramKind::Other);
        assert_eq!(classify(&[]), DatagramKind::Other);
    }

    #[test]
    fn header_with_csrcs_and_extension() {
        let mut b = pkt(true, 96, 7, 9000, 0x1234);
        b[0] = 0x80 | 0x10 | 1; // X, one CSRC
        // CSRC at 12..16, extension header at 16..20: profile, length 1 word.
        b[16..20].copy_from_slice(&[0xbe, 0xde, 0x00, 0x01]);
        let h = parse_header(&b).expect("header");
        assert_eq!(
            (h.marker, h.pt, h.seq, h.timestamp, h.ssrc, h.header_len),
            (true, 96, 7, 9000, 0x1234, 24)
        );
        b[18..20].copy_from_slice(&[0x00, 0xff]);
        assert_eq!(parse_header(&b), None, "extension past the end");
        assert_eq!(parse_header(&b[..11]), None);
        let mut v1 = pkt(false, 96, 1, 1, 1);
        v1[0] = 0x40;
        assert_eq!(parse_header(&v1), None);
    }

    #[test]
    fn loss_across_the_sequence_wrap() {
        let mut c = video_counter();
        let mut seq: u16 = 65530;
        let mut frames = 0;
        // 20 packets across the wrap, two of them (65535 and 3) lost.
        for i in 0..20u32 {
            if seq != 65535 && seq != 3 {
                let r = c
                    .count(&pkt(i % 4 == 3, 96, seq, i / 4 * 3000, 7))
                    .expect("rtp");
                frames += usize::from(r.frame.is_some());
            }
            seq = seq.wrapping_add(1);
        }
        let s = &c.ssrcs()[0];
        assert_eq!(s.expected(), 20);
        assert_eq!(s.packets, 18);
        assert_eq!(s.lost(), 2);
        assert_eq!(c.lost(), 2);
        assert_eq!(s.highest_seq(), 65530 + 19);
        assert_eq!(frames, 5);
        assert_eq!(s.markers, 5);
    }

    #[test]
    fn reordering_and_duplicates_are_not_loss() {
        let mut c = video_counter();
        for seq in [100u16, 102, 101, 103, 103, 99, 104, 101] {
            c.count(&pkt(false, 96, seq, 0, 7));
        }
        let s = &c.ssrcs()[0];
        assert_eq!(s.packets, 6, "99..=104");
        assert_eq!(s.expected(), 6);
        assert_eq!(s.lost(), 0);
        assert_eq!(s.duplicates, 2);
        assert_eq!(s.reordered, 2, "101 and 99 came late");
    }

    #[test]
    fn reordering_across_the_wrap() {
        let mut c = video_counter();
        for seq in [65534u16, 0, 65535, 1] {
            c.count(&pkt(false, 96, seq, 0, 7));
        }
        let s = &c.ssrcs()[0];
        assert_eq!(
            (s.expected(), s.packets, s.lost(), s.reordered),
            (4, 4, 0, 1)
        );
    }

    #[test]
    fn long_gap_and_many_wraps() {
        let mut c = video_counter();
        let mut seq: u16 = 0;
        for _ in 0..200_000u32 {
            c.count(&pkt(false, 96, seq, 0, 7));
            seq = seq.wrapping_add(1);
        }
        // A gap of 2000 (past the duplicate window).
        seq = seq.wrapping_add(2000);
        c.count(&pkt(false, 96, seq, 0, 7));
        let s = &c.ssrcs()[0];
        assert_eq!(s.packets, 200_001);
        assert_eq!(s.lost(), 2000);
        assert_eq!(s.duplicates, 0);
    }

    #[test]
    fn classes_from_the_answer_and_rtx_not_in_loss() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 123 119 35\r\n\
            a=rtpmap:123 H264/90000\r\na=rtpmap:119 rtx/90000\r\na=fmtp:119 apt=123\r\n\
            a=rtpmap:35 red/90000\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\n\
            m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
        let classes = payload_classes(sdp);
        assert_eq!(
            classes,
            vec![
                (123, PayloadClass::Video),
                (119, PayloadClass::Rtx),
                (35, PayloadClass::Other),
                (111, PayloadClass::Audio),
                (0, PayloadClass::Audio),
            ]
        );
        let mut c = RtpCounter::new(classes);
        c.count(&pkt(true, 123, 1, 0, 1));
        c.count(&pkt(true, 123, 3, 3000, 1));
        c.count(&pkt(false, 119, 50, 0, 2));
        c.count(&pkt(false, 119, 60, 0, 2));
        c.count(&pkt(false, 111, 9, 0, 3));
        assert_eq!(c.lost(), 1, "the RTX gap does not count");
        assert_eq!(c.packets_of(PayloadClass::Audio), 1);
        assert_eq!(c.packets_of(PayloadClass::Rtx), 2);
        assert_eq!(c.packets(), 5);
    }

    #[test]
    fn marked_frames_carry_extended_timestamps_and_bytes() {
        let mut c = video_counter();
        let mut got = Vec::new();
        let mut ts = u32::MAX - 3000;
        for seq in 0..6u16 {
            let r = c.count(&pkt(seq % 2 == 1, 96, seq, ts, 9)).expect("rtp");
            if let Some(f) = r.frame {
                got.push(f);
                ts = ts.wrapping_add(3000);
            }
        }
        let base = i64::from(u32::MAX - 3000);
        assert_eq!(
            got.iter().map(|f| f.rtp_time - base).collect::<Vec<_>>(),
            vec![0, 3000, 6000]
        );
        assert!(got.iter().all(|f| f.bytes == 64));
        // Audio markers are not frames.
        let mut a = RtpCounter::new(vec![(111, PayloadClass::Audio)]);
        assert_eq!(
            a.count(&pkt(true, 111, 0, 0, 1)).and_then(|r| r.frame),
            None
        );
    }

    #[test]
    fn ssrc_table_is_bounded() {
        let mut c = video_counter();
        for ssrc in 0..100u32 {
            c.count(&pkt(false, 96, 0, 0, ssrc));
        }
        assert_eq!(c.ssrcs().len(), MAX_SSRCS);
        assert_eq!(c.malformed, 100 - MAX_SSRCS as u64);
    }

    #[test]
    fn coverage_counts_gaps_bursts_and_order() {
        // 10 frames at 3000 ticks, frame 4 missing, delivered out of order.
        let ts = [
            0, 3000, 6000, 9000, 15000, 18000, 21000, 27000, 24000, 12000,
        ];
        let c = frame_coverage(ts.iter().copied().filter(|&t| t != 12000), 3000);
        assert_eq!((c.received, c.expected), (9, 10));
        // A burst 90 ticks apart then live frames: every frame counts once.
        let burst: Vec<i64> = (0..30)
            .map(|i| i * 90)
            .chain((1..=10).map(|i| 2610 + i * 3000))
            .collect();
        let c = frame_coverage(burst, 3000);
        assert_eq!((c.received, c.expected), (40, 40));
        // Millisecond jitter (2970, 3060) rounds to one frame.
        let c = frame_coverage([0, 2970, 6030, 9000], 3000);
        assert_eq!((c.received, c.expected), (4, 4));
        assert_eq!(frame_coverage([], 3000), FrameCoverage::default());
        assert!((frame_coverage([5, 5, 5], 3000).ratio() - 1.0).abs() < 1e-9);
    }
}
