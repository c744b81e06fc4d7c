//! Tests of [`WhepPeer`]: pure helpers, and a loopback pairing with an in-process str0m
//! answerer (ICE-lite, send-only, frame mode) over two UDP sockets on 127.0.0.1.
#![allow(clippy::disallowed_methods)] // Loopback tests drive real time and sockets.

use super::*;
use std::net::UdpSocket;
use str0m::change::SdpOffer;
use str0m::media::{MediaTime, Pt};

#[test]
fn nal_types_of_annex_b() {
    let au = [
        0, 0, 0, 1, 0x67, 1, 2, // SPS
        0, 0, 1, 0x68, 3, // PPS (3-byte start code)
        0, 0, 0, 1, 0x65, 9, 9, 9, // IDR
    ];
    assert_eq!(annexb_nal_types(&au), vec![7, 8, 5]);
    assert_eq!(annexb_nal_types(&[0x65, 1, 2]), Vec::<u8>::new());
    assert_eq!(annexb_nal_types(&[0, 0, 1]), Vec::<u8>::new());
    let rec = |nal_types: Vec<u8>| FrameRecord {
        kind: TrackKind::Video,
        mid: "0".into(),
        codec: Some(Codec::H264),
        rtp_time: 0,
        arrival: Instant::now(),
        size: 0,
        nal_types,
        annex_b: true,
        contiguous: true,
        payload: Vec::new(),
        sender_micros: None,
    };
    assert!(rec(vec![9, 7, 8, 5]).is_idr_with_parameter_sets());
    assert!(rec(vec![7, 8, 6, 5, 5]).is_idr_with_parameter_sets());
    assert!(!rec(vec![7, 5, 8]).is_idr_with_parameter_sets());
    assert!(!rec(vec![5]).is_idr_with_parameter_sets());
    assert!(rec(vec![5]).is_idr());
    assert!(!rec(vec![7, 8, 1]).is_idr_with_parameter_sets());
}

fn local_socket() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_nonblocking(true).expect("nonblocking");
    let a = s.local_addr().expect("addr");
    (s, a)
}

#[test]
fn offer_has_recvonly_video_and_audio_with_h264_opus_g711_and_a_host_candidate() {
    let (_s, addr) = local_socket();
    let p = WhepPeer::new(Instant::now(), addr, ReceiveMode::Full).expect("peer");
    let sdp = p.offer();
    let video = sdp.find("m=video").expect("video section");
    let audio = sdp.find("m=audio").expect("audio section");
    assert!(video < audio, "video first:\n{sdp}");
    assert_eq!(sdp.matches("a=recvonly").count(), 2, "{sdp}");
    for needle in [
        "H264/90000",
        "packetization-mode=1",
        "profile-level-id=42e01f",
        "profile-level-id=42001f",
        "profile-level-id=4d001f",
        "opus/48000/2",
        "PCMU/8000",
        "PCMA/8000",
    ] {
        assert!(sdp.contains(needle), "offer lacks {needle}:\n{sdp}");
    }
    assert!(
        sdp.lines().any(|l| l.starts_with("a=candidate")
            && l.contains(&format!("127.0.0.1 {}", addr.port()))
            && l.contains("typ host")),
        "no host candidate for {addr}:\n{sdp}"
    );
    assert!(!sdp.contains("a=ice-lite"));
}

#[test]
fn answer_misuse_and_garbage() {
    let (_s, addr) = local_socket();
    let mut p = WhepPeer::new(Instant::now(), addr, ReceiveMode::Light).expect("peer");
    assert!(matches!(
        p.accept_answer(Instant::now(), "not sdp"),
        Err(ClientError::BadAnswer(_))
    ));
    // The pending offer was used up by the failed attempt.
    assert!(matches!(
        p.accept_answer(Instant::now(), "v=0"),
        Err(ClientError::Misuse(_))
    ));
    let unspecified: SocketAddr = "0.0.0.0:5000".parse().expect("addr");
    assert!(matches!(
        WhepPeer::new(Instant::now(), unspecified, ReceiveMode::Light),
        Err(ClientError::Misuse(_))
    ));
}

/// An in-process server side: str0m ICE-lite, frame mode, writing synthetic H.264 access
/// units (SPS + PPS + a 4000-byte IDR, then 1500-byte P frames) at 30 fps once connected.
struct Answerer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    video: Option<Mid>,
    connected: bool,
    timeout: Instant,
    next_frame: Option<Instant>,
    frame_no: u64,
}

impl Answerer {
    fn new(offer: &str) -> (Answerer, String) {
        let (socket, local) = local_socket();
        let now = Instant::now();
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .build(now);
        rtc.add_local_candidate(Candidate::host(local, "udp").expect("candidate"));
        let offer = SdpOffer::from_sdp_string(offer).expect("offer parses");
        let answer = rtc.sdp_api().accept_offer(offer).expect("offer accepted");
        let mut a = Answerer {
            rtc,
            socket,
            local,
            video: None,
            connected: false,
            timeout: now,
            next_frame: None,
            frame_no: 0,
        };
        a.drain();
        (a, answer.to_sdp_string())
    }

    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output().expect("answerer output") {
                Output::Timeout(t) => {
                    self.timeout = t;
                    return;
                }
                Output::Transmit(t) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Output::Event(Event::MediaAdded(m)) if m.kind == MediaKind::Video => {
                    self.video = Some(m.mid);
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(_) => {}
            }
        }
    }

    fn h264_pt(&mut self, mid: Mid) -> Pt {
        let w = self.rtc.writer(mid).expect("writer");
        let p = w
            .payload_params()
            .find(|p| {
                p.spec().codec == Codec::H264 && p.spec().format.packetization_mode == Some(1)
            })
            .expect("negotiated H.264 packetization-mode 1");
        p.pt()
    }

    fn step(&mut self, now: Instant) {
        if now >= self.timeout {
            self.rtc
                .handle_input(Input::Timeout(now))
                .expect("answerer timeout");
            self.drain();
        }
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
            let r = Receive::new(Protocol::Udp, from, self.local, &buf[..n]).expect("datagram");
            self.rtc
                .handle_input(Input::Receive(now, r))
                .expect("answerer input");
            self.drain();
        }
        if !self.connected {
            return;
        }
        let Some(mid) = self.video else { return };
        let due = *self.next_frame.get_or_insert(now);
        if now < due {
            return;
        }
        let pt = self.h264_pt(mid);
        let mut au = Vec::new();
        if self.frame_no.is_multiple_of(30) {
            au.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0x8c, 0x8d]);
            au.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
            au.extend_from_slice(&[0, 0, 0, 1, 0x65]);
            au.resize(au.len() + 4000, 0x5a);
        } else {
            au.extend_from_slice(&[0, 0, 0, 1, 0x41]);
            au.resize(au.len() + 1500, 0x3c);
        }
        let time = MediaTime::from_90khz(self.frame_no * 3000);
        self.rtc
            .writer(mid)
            .expect("writer")
            .write(pt, now, time, au)
            .expect("write");
        self.drain();
        self.frame_no += 1;
        self.next_frame = Some(due + Duration::from_micros(33_333));
    }
}

/// Runs a client peer against an answerer until `done` holds (or 10 s pass).
fn run_pair(mode: ReceiveMode, frames: u64) -> WhepPeer {
    let (csock, caddr) = local_socket();
    let mut client = WhepPeer::new(Instant::now(), caddr, mode).expect("peer");
    let (mut server, answer) = Answerer::new(&client.offer());
    client
        .accept_answer(Instant::now(), &answer)
        .expect("answer accepted");
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while client.stats().frames < frames {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {frames} frames in 10 s: {client:?}"
        );
        let now = Instant::now();
        client.poll(now, &mut out);
        for d in out.drain(..) {
            assert_eq!(d.source, caddr);
            let _ = csock.send_to(&d.contents, d.destination);
        }
        server.step(now);
        while let Ok((n, from)) = csock.recv_from(&mut buf) {
            client.handle_datagram(Instant::now(), from, caddr, &buf[..n]);
        }
        assert_eq!(client.closed(), None);
        std::thread::sleep(Duration::from_millis(1));
    }
    client
}

#[test]
fn loopback_full_mode_reassembles_h264_with_str0m() {
    let c = run_pair(ReceiveMode::Full, 40);
    let s = c.stats();
    assert!(c.is_connected());
    assert!(s.connected_after.is_some(), "{s:?}");
    assert!(s.first_frame_after.is_some());
    assert_eq!(
        s.first_frame_idr_with_sps_pps,
        Some(true),
        "{:?}",
        c.frames().first()
    );
    let first = &c.frames()[0];
    assert_eq!(first.kind, TrackKind::Video);
    assert_eq!(first.codec, Some(Codec::H264));
    assert!(first.annex_b, "str0m outputs Annex B");
    assert_eq!(first.nal_types, vec![7, 8, 5]);
    // Start codes (3 x 4) + SPS (6) + PPS (4) + IDR (4001).
    assert_eq!(first.size, 12 + 6 + 4 + 4001);
    assert!(
        c.frames()[1..]
            .iter()
            .all(|f| f.nal_types == [1] || f.nal_types == [7, 8, 5])
    );
    assert_eq!(s.keyframes, 2, "frames 0 and 30 are IDRs: {s:?}");
    assert!(s.packets > s.frames, "the IDR needs several packets");
    assert_eq!(s.lost, 0);
    assert_eq!(s.discontinuities, 0);
    let cov = c.video_coverage(30.0);
    assert_eq!((cov.received, cov.expected), (40, 40));
    assert_eq!(c.ssrcs().len(), 1);
    assert_eq!(c.ssrcs()[0].class, rtp::PayloadClass::Video);
}

#[test]
fn loopback_light_mode_counts_frames_from_marker_bits() {
    let c = run_pair(ReceiveMode::Light, 40);
    let s = c.stats();
    assert!(c.is_connected());
    assert!(s.first_frame_after.is_some());
    assert_eq!(
        s.first_frame_idr_with_sps_pps, None,
        "Light mode does not look inside"
    );
    assert_eq!(s.keyframes, 0);
    assert!(s.packets > s.frames);
    assert_eq!(s.lost, 0);
    assert!(
        c.frames()
            .iter()
            .all(|f| f.kind == TrackKind::Video && f.nal_types.is_empty())
    );
    assert!(
        c.frames()[0].size > 4000,
        "the IDR's packets: {}",
        c.frames()[0].size
    );
    let cov = c.video_coverage(30.0);
    assert_eq!((cov.received, cov.expected), (40, 40));
}

#[test]
fn local_close_sends_dtls_close_notify() {
    let mut c = run_pair(ReceiveMode::Light, 1);
    c.close(Instant::now());
    assert_eq!(c.closed(), Some(&PeerClosed::Local));
    let mut out = Vec::new();
    assert_eq!(c.poll(Instant::now(), &mut out), None);
    assert!(
        out.iter()
            .any(|d| rtp::classify(&d.contents) == DatagramKind::Dtls),
        "no DTLS alert among {} datagrams",
        out.len()
    );
}
