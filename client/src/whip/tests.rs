//! Tests of [`WhipPeer`]: pure helpers, and a pairing with an in-process str0m receiver
//! (ICE-lite, receive-only, frame mode, NACK on) over an in-memory network stepped
//! through virtual time: no socket, no sleep.
#![allow(clippy::disallowed_methods)] // The virtual clock starts at the real one.

use super::*;
use std::collections::BTreeSet;
use str0m::bwe::Bitrate;
use str0m::change::SdpOffer;

const PUB_ADDR: &str = "10.0.0.1:5000";
const RECV_ADDR: &str = "10.0.0.2:6000";
/// One-way delay of the in-memory network.
const DELAY: Duration = Duration::from_millis(10);
/// 30 fps.
const FRAME: Duration = Duration::from_micros(33_333);
/// Opus packets of 20 ms.
const AUDIO: Duration = Duration::from_millis(20);

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn peer(opts: WhipOptions) -> WhipPeer {
    WhipPeer::new(Instant::now(), addr(PUB_ADDR), opts).expect("peer")
}

#[test]
fn offer_is_sendonly_h264_mode_1_constrained_baseline_with_rtx_and_opus() {
    let sdp = peer(WhipOptions::default()).offer();
    let video = sdp.find("m=video").expect("video section");
    let audio = sdp.find("m=audio").expect("audio section");
    assert!(video < audio, "video first:\n{sdp}");
    assert_eq!(sdp.matches("a=sendonly").count(), 2, "{sdp}");
    assert!(!sdp.contains("a=recvonly"), "{sdp}");
    let (v, a) = sdp[video..].split_at(audio - video);
    for needle in [
        "m=video 9 UDP/TLS/RTP/SAVPF 108 109",
        "a=rtpmap:108 H264/90000",
        "packetization-mode=1",
        "profile-level-id=42e01f",
        "a=rtpmap:109 rtx/90000",
        "a=fmtp:109 apt=108",
        "a=rtcp-fb:108 nack",
        "a=rtcp-fb:108 nack pli",
        "a=rtcp-fb:108 ccm fir",
        "a=ssrc-group:FID",
    ] {
        assert!(v.contains(needle), "video section lacks {needle}:\n{sdp}");
    }
    // Codec lines only: the random ICE credentials and stream ids may spell "VP8".
    let codecs: Vec<&str> = sdp
        .lines()
        .filter(|l| l.starts_with("a=rtpmap") || l.starts_with("a=fmtp"))
        .collect();
    for needle in ["42001f", "4d001f", "packetization-mode=0", "H265", "VP8"] {
        assert!(
            !codecs.iter().any(|l| l.contains(needle)),
            "offer has {needle}:\n{sdp}"
        );
    }
    assert!(a.contains("a=rtpmap:111 opus/48000/2"), "{sdp}");
    assert!(
        sdp.lines().any(|l| l.starts_with("a=candidate")
            && l.contains("10.0.0.1 5000")
            && l.contains("typ host")),
        "no host candidate:\n{sdp}"
    );
}

#[test]
fn offer_leaves_out_a_track_on_request_and_needs_one() {
    let video_only = peer(WhipOptions {
        audio: false,
        ..WhipOptions::default()
    });
    let sdp = video_only.offer();
    assert!(sdp.contains("m=video") && !sdp.contains("m=audio"), "{sdp}");
    assert_eq!(video_only.audio_mid(), None);
    let audio_only = peer(WhipOptions {
        video: false,
        ..WhipOptions::default()
    })
    .offer();
    assert!(
        !audio_only.contains("m=video") && audio_only.contains("opus"),
        "{audio_only}"
    );
    assert!(matches!(
        WhipPeer::new(
            Instant::now(),
            addr(PUB_ADDR),
            WhipOptions {
                video: false,
                audio: false,
                ..WhipOptions::default()
            }
        ),
        Err(ClientError::Misuse(_))
    ));
    assert!(matches!(
        WhipPeer::new(Instant::now(), addr("0.0.0.0:5000"), WhipOptions::default()),
        Err(ClientError::Misuse(_))
    ));
}

#[test]
fn answer_misuse_garbage_and_media_before_connecting() {
    let mut p = peer(WhipOptions::default());
    assert!(matches!(
        p.send_video(Instant::now(), 0, &[0, 0, 0, 1, 0x65], true),
        Err(ClientError::Misuse(_))
    ));
    assert!(matches!(
        p.accept_answer(Instant::now(), "not sdp"),
        Err(ClientError::BadAnswer(_))
    ));
    assert!(matches!(
        p.accept_answer(Instant::now(), "v=0"),
        Err(ClientError::Misuse(_))
    ));
    assert_eq!(p.stats().video_frames, 0);
}

#[test]
fn avcc_becomes_annex_b_and_annex_b_stays() {
    let avcc = [
        0, 0, 0, 3, 0x67, 1, 2, // SPS
        0, 0, 0, 2, 0x68, 3, // PPS
        0, 0, 0, 4, 0x65, 9, 9, 9, // IDR
    ];
    let annexb = to_annex_b(&avcc);
    assert_eq!(
        &*annexb,
        &[
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 9, 9
        ][..]
    );
    assert_eq!(annexb_nal_types(&annexb), vec![7, 8, 5]);
    // Annex B with a 4-byte start code is left alone.
    assert!(matches!(to_annex_b(&annexb), Cow::Borrowed(_)));
    // A 300-byte slice in AVCC starts 00 00 01 2c: not mistaken for a 3-byte start code.
    let mut p = vec![0, 0, 1, 0x2c, 0x41];
    p.resize(4 + 300, 0x3c);
    let b = to_annex_b(&p);
    assert_eq!(b.len(), 304);
    assert_eq!(&b[..5], &[0, 0, 0, 1, 0x41]);
    // 3-byte start codes and garbage pass through.
    let three = [0, 0, 1, 0x65, 1, 2];
    assert_eq!(&*to_annex_b(&three), &three[..]);
    assert_eq!(
        avcc_nal_units(&[0, 0, 0, 9, 0x65]),
        None,
        "length past the end"
    );
    assert_eq!(avcc_nal_units(&[0, 0, 0, 0]), None, "empty NAL unit");
    assert_eq!(avcc_nal_units(&[0, 0, 0]), None, "truncated length");
    assert_eq!(avcc_nal_units(&[]), None);
    assert_eq!(&*to_annex_b(&[]), &[][..]);
}

#[test]
fn drops_are_deterministic_and_near_the_asked_share() {
    let run = |seed| {
        let mut d = Dropper {
            ppm: 50_000,
            rng: XorShift::new(seed),
        };
        (0..100_000).map(|_| d.drop_next()).collect::<Vec<bool>>()
    };
    let a = run(7);
    assert_eq!(a, run(7));
    assert_ne!(a, run(8));
    let n = a.iter().filter(|d| **d).count();
    assert!((4_500..5_500).contains(&n), "{n} of 100000 at 5 %");
    assert_eq!(run(0).len(), 100_000, "seed 0 works");
    let mut off = Dropper {
        ppm: 0,
        rng: XorShift::new(1),
    };
    assert!((0..1000).all(|_| !off.drop_next()));
}

// ---- the in-memory pair ----

/// A datagram in flight.
struct InFlight {
    at: Instant,
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

/// A receive-only str0m peer in frame mode, ICE-lite, as the server side would be.
struct Receiver {
    rtc: Rtc,
    local: SocketAddr,
    video: Option<Mid>,
    audio: Option<Mid>,
    timeout: Instant,
    /// (RTP time, NAL unit types, size) of each video frame str0m reassembled.
    video_frames: Vec<(u64, Vec<u8>, usize)>,
    /// Payloads of the audio frames.
    audio_frames: Vec<Vec<u8>>,
}

impl Receiver {
    fn new(now: Instant, offer: &str) -> (Receiver, String) {
        let local = addr(RECV_ADDR);
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .build(now);
        rtc.add_local_candidate(Candidate::host(local, "udp").expect("candidate"));
        let offer = SdpOffer::from_sdp_string(offer).expect("offer parses");
        let answer = rtc.sdp_api().accept_offer(offer).expect("offer accepted");
        let r = Receiver {
            rtc,
            local,
            video: None,
            audio: None,
            timeout: now,
            video_frames: Vec::new(),
            audio_frames: Vec::new(),
        };
        (r, answer.to_sdp_string())
    }

    fn drain(&mut self, now: Instant, net: &mut VecDeque<InFlight>) {
        loop {
            match self.rtc.poll_output().expect("receiver output") {
                Output::Timeout(t) => {
                    self.timeout = t;
                    return;
                }
                Output::Transmit(t) => net.push_back(InFlight {
                    at: now + DELAY,
                    from: t.source,
                    to: t.destination,
                    data: t.contents.into(),
                }),
                Output::Event(Event::MediaAdded(m)) => match m.kind {
                    MediaKind::Video => self.video = Some(m.mid),
                    MediaKind::Audio => self.audio = Some(m.mid),
                },
                Output::Event(Event::MediaData(d)) => {
                    if Some(d.mid) == self.video {
                        self.video_frames.push((
                            d.time.numer(),
                            annexb_nal_types(&d.data),
                            d.data.len(),
                        ));
                    } else if Some(d.mid) == self.audio {
                        self.audio_frames.push(d.data.to_vec());
                    }
                }
                Output::Event(_) => {}
            }
        }
    }

    fn receive(&mut self, now: Instant, d: &InFlight, net: &mut VecDeque<InFlight>) {
        let r = Receive::new(Protocol::Udp, d.from, self.local, &d.data).expect("datagram");
        self.rtc
            .handle_input(Input::Receive(now, r))
            .expect("receiver input");
        self.drain(now, net);
    }

    fn tick(&mut self, now: Instant, net: &mut VecDeque<InFlight>) {
        if now >= self.timeout {
            self.rtc
                .handle_input(Input::Timeout(now))
                .expect("receiver timeout");
            self.drain(now, net);
        }
    }

    fn request_keyframe(
        &mut self,
        now: Instant,
        kind: KeyframeRequestKind,
        net: &mut VecDeque<InFlight>,
    ) {
        let mid = self.video.expect("video media");
        self.rtc
            .writer(mid)
            .expect("writer")
            .request_keyframe(None, kind)
            .expect("keyframe request");
        self.drain(now, net);
    }

    fn request_remb(&mut self, now: Instant, kbps: u64, net: &mut VecDeque<InFlight>) {
        let mid = self.video.expect("video media");
        self.rtc
            .direct_api()
            .stream_rx_by_mid(mid, None)
            .expect("video receive stream")
            .request_remb(Bitrate::kbps(kbps));
        self.drain(now, net);
    }
}

const SPS: [u8; 6] = [0x67, 0x42, 0xe0, 0x1f, 0x8c, 0x8d];
const PPS: [u8; 4] = [0x68, 0xce, 0x3c, 0x80];

/// A synthetic access unit in AVCC form, as corecast's frames hold it: every 30th a
/// 4000-byte IDR slice (every 60th with an SPS and a PPS ahead of it, the others
/// without: the publisher's parameter sets fill in), else a 1500-byte P slice.
fn avcc_frame(n: u64) -> (bool, Vec<u8>) {
    let mut au = Vec::new();
    let mut nal = |body: &[u8], len: usize| {
        au.extend_from_slice(&(len as u32).to_be_bytes());
        au.extend_from_slice(body);
        au.resize(au.len() + len - body.len(), (n % 200) as u8 + 1);
    };
    let key = n.is_multiple_of(30);
    if key {
        if n.is_multiple_of(60) {
            nal(&SPS, SPS.len());
            nal(&PPS, PPS.len());
        }
        nal(&[0x65], 4000);
    } else {
        nal(&[0x41], 1500);
    }
    (key, au)
}

/// Receiver feedback a run sends once `frames` video frames were written.
enum Feedback {
    Keyframe(KeyframeRequestKind),
    Remb(u64),
}

/// The outcome of a run.
struct Run {
    publisher: WhipPeer,
    receiver: Receiver,
    audio_sent: Vec<Vec<u8>>,
    keyframe_requests_seen: u64,
}

/// Publishes `frames` video frames at 30 fps and Opus packets every 20 ms over the
/// in-memory network, withholding `drop_ppm` of the original media packets, with
/// `script` feedback from the receiver; then runs two more seconds for the last
/// retransmissions and statistics.
fn run_pair(frames: u64, drop_ppm: u32, script: &[(u64, Feedback)]) -> Run {
    let start = Instant::now();
    let mut publisher = peer(WhipOptions::default());
    publisher.set_drop(drop_ppm, 0x5eed);
    publisher.set_parameter_sets(vec![SPS.to_vec(), PPS.to_vec()]);
    let (mut receiver, answer) = Receiver::new(start, &publisher.offer());
    publisher
        .accept_answer(start, &answer)
        .expect("answer accepted");
    assert!(publisher.sends_video() && publisher.sends_audio());
    let mut net: VecDeque<InFlight> = VecDeque::new();
    let mut out = Vec::new();
    let mut now = start;
    let mut media_start = None;
    let (mut sent, mut audio_sent) = (0u64, Vec::new());
    let mut script = script.iter().peekable();
    let mut requests = 0;
    let mut end = start + Duration::from_secs(5);
    while now < end {
        while net.front().is_some_and(|d| d.at <= now) {
            let Some(d) = net.pop_front() else { break };
            if d.to == receiver.local {
                receiver.receive(now, &d, &mut net);
            } else {
                publisher.handle_datagram(now, d.from, d.to, &d.data);
            }
        }
        receiver.tick(now, &mut net);
        if publisher.is_connected() {
            let t0 = *media_start.get_or_insert(now);
            end = end.max(t0 + FRAME * frames as u32 + Duration::from_secs(2));
            while sent < frames && t0 + FRAME * sent as u32 <= now {
                let (key, au) = avcc_frame(sent);
                publisher
                    .send_video(now, (sent * 3000) as i64, &au, key)
                    .expect("video written");
                sent += 1;
                while let Some((_, fb)) = script.next_if(|(at, _)| *at <= sent) {
                    match fb {
                        Feedback::Keyframe(k) => receiver.request_keyframe(now, *k, &mut net),
                        Feedback::Remb(kbps) => receiver.request_remb(now, *kbps, &mut net),
                    }
                }
            }
            let audio_end = t0 + FRAME * frames as u32;
            let n = audio_sent.len() as u32;
            if t0 + AUDIO * n <= now && t0 + AUDIO * n < audio_end {
                let pkt = vec![0xfc, n as u8, (n >> 8) as u8, 0x55, 0xaa];
                publisher
                    .send_audio(now, i64::from(n) * 960, &pkt)
                    .expect("audio written");
                audio_sent.push(pkt);
            }
        }
        requests += u64::from(publisher.take_keyframe_request());
        let next_pub = publisher.poll(now, &mut out);
        for d in out.drain(..) {
            assert_eq!(d.source, addr(PUB_ADDR));
            net.push_back(InFlight {
                at: now + DELAY,
                from: d.source,
                to: d.destination,
                data: d.contents,
            });
        }
        assert_eq!(publisher.closed(), None, "{publisher:?}");
        let mut next = [Some(receiver.timeout), next_pub, net.front().map(|d| d.at)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(end);
        if let Some(t0) = media_start
            && sent < frames
        {
            next = next
                .min(t0 + FRAME * sent as u32)
                .min(t0 + AUDIO * audio_sent.len() as u32);
        }
        now = next.max(now + Duration::from_micros(100));
    }
    assert_eq!(sent, frames, "connected too late: {publisher:?}");
    Run {
        publisher,
        receiver,
        audio_sent,
        keyframe_requests_seen: requests,
    }
}

#[test]
fn lossless_pair_reassembles_every_frame_from_avcc_with_parameter_sets_in_band() {
    let r = run_pair(60, 0, &[]);
    let s = r.publisher.stats();
    assert!(s.connected_after.is_some(), "{s:?}");
    assert_eq!((s.video_frames, s.keyframes), (60, 2), "{s:?}");
    assert_eq!(
        (s.dropped(), s.retransmissions, s.nacks),
        (0, 0, 0),
        "{s:?}"
    );
    assert!(s.video_packets > 60, "the IDRs take several packets: {s:?}");
    assert_eq!(s.audio_packets, s.audio_frames);
    assert_eq!((s.plis, s.firs, s.rembs), (0, 0, 0));
    let v = &r.receiver.video_frames;
    assert_eq!(v.len(), 60);
    let times: Vec<u64> = v.iter().map(|f| f.0).collect();
    assert_eq!(times, (0..60).map(|i| i * 3000).collect::<Vec<_>>());
    // The AVCC lengths became 4-byte start codes: 3 × 4 + SPS 6 + PPS 4 + IDR 4000.
    assert_eq!(v[0].1, vec![7, 8, 5]);
    assert_eq!(v[0].2, 12 + 6 + 4 + 4000);
    assert_eq!(v[1].1, vec![1]);
    assert_eq!(v[1].2, 4 + 1500);
    // Frame 30 had no SPS/PPS of its own: the publisher's went ahead of it, once.
    assert_eq!(v[30].1, vec![7, 8, 5]);
    assert_eq!(v[30].2, 12 + 6 + 4 + 4000);
    assert_eq!(r.receiver.audio_frames, r.audio_sent);
}

#[test]
fn five_percent_loss_is_recovered_by_nack_and_rtx_and_one_pli_counts_once_as_does_one_fir() {
    let frames = 300;
    let r = run_pair(
        frames,
        50_000,
        &[
            (150, Feedback::Keyframe(KeyframeRequestKind::Pli)),
            (200, Feedback::Remb(750)),
            (250, Feedback::Keyframe(KeyframeRequestKind::Fir)),
        ],
    );
    let s = r.publisher.stats();
    // About 5 % of the original media packets were withheld, both kinds.
    let share = s.video_dropped as f64 / s.video_packets as f64;
    assert!((0.02..0.09).contains(&share), "{share}: {s:?}");
    assert!(s.audio_dropped > 0, "{s:?}");
    // The receiver asked for them and the RTX stream brought them back.
    assert!(s.nacks > 0, "{s:?}");
    assert!(
        s.retransmissions * 10 >= s.video_dropped * 9,
        "retransmitted {} of {} dropped: {s:?}",
        s.retransmissions,
        s.video_dropped
    );
    let distinct: BTreeSet<u64> = r.receiver.video_frames.iter().map(|f| f.0).collect();
    assert!(
        distinct.len() as u64 * 100 >= frames * 95,
        "{} of {frames} frames reassembled: {s:?}",
        distinct.len()
    );
    // Audio has no retransmission: what was dropped stays lost.
    assert!(r.receiver.audio_frames.len() < r.audio_sent.len());
    // One PLI and one FIR from the receiver are one of each here.
    assert_eq!((s.plis, s.firs), (1, 1), "{s:?}");
    assert_eq!(r.keyframe_requests_seen, 2);
    assert_eq!((s.rembs, s.remb_bps), (1, Some(750_000)), "{s:?}");
}
