//! WebRTC abuse against the real binary: junk offers start no on-demand camera and leave
//! a legitimate viewer its session, one address holds at most
//! `webrtc.max_sessions_per_ip` sessions (finished or not), a path that names no stream
//! is 404 before the body is read, and keyframe requests past the shard's re-send
//! budget are skipped and counted. The viewers are the project's str0m-based
//! client (`corecast_client`); `127.0.0.2` is another viewer address on loopback.
//!
//! `CORECAST_TEST_LOG=1` echoes the server's log; `--nocapture` shows the counts.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::camera::{Camera, CameraOpts};
use common::*;
use corecast_client::{ReceiveMode, WhepPeer, WhepViewer, http, post_offer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_FRAME_LIMIT: Duration = Duration::from_secs(10);
const OTHER_ADDRESS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// A real offer (str0m's, as the viewers send), which nothing ever answers with ICE.
fn real_offer() -> String {
    let local = SocketAddr::from(([127, 0, 0, 1], 9));
    WhepPeer::new(Instant::now(), local, ReceiveMode::Light)
        .expect("peer")
        .offer()
}

/// An SDP with a session part and no media section.
const NO_MEDIA: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n";

/// A well-formed offer that can only receive VP8 (which the server never sends).
const VP8_ONLY: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
a=setup:actpass\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n";

/// A well-formed offer of a data channel only.
const DATA_ONLY: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
a=sctp-port:5000\r\n";

fn post(s: &Server, path: &str, ctype: &str, body: &[u8]) -> http::Response {
    http::post(s.http, path, ctype, body, HTTP_TIMEOUT).expect("response")
}

/// Waits (bounded) until the API lists `path` with its tracks.
fn wait_tracks(s: &Server, path: &str) {
    s.wait_stream(path, |v| {
        v["tracks"].as_array().is_some_and(|t| !t.is_empty())
    });
}

/// Open WebRTC sessions, all shards.
fn sessions(s: &Server) -> u64 {
    let v = s.get_json("/api/v1/health");
    v["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|sh| sh["webrtc_sessions"].as_u64().expect("webrtc_sessions"))
        .sum()
}

/// Plays `path` from `from` until `n` more video frames arrived (bounded).
fn plays(v: &mut WhepViewer, n: u64) {
    let want = v.stats().frames + n;
    let got = v
        .run_until(|st| st.frames >= want, FIRST_FRAME_LIMIT)
        .expect("session alive");
    assert!(got, "fewer than {n} frames: {:?}", v.stats());
}

/// The kinds of junk offer of the flood, with the path they go to and the status the
/// server must answer.
fn junk_kinds(real: &str) -> Vec<(&'static str, &'static str, Vec<u8>, u16)> {
    vec![
        (
            "binary garbage",
            "/whep/lobby",
            vec![0xff, 0xfe, 0x00, 0x9c, 0x80, 0x81],
            400,
        ),
        ("text garbage", "/whep/lobby", b"hello there".to_vec(), 400),
        (
            "no m= line",
            "/whep/lobby",
            NO_MEDIA.as_bytes().to_vec(),
            400,
        ),
        ("VP8 only", "/whep/lobby", VP8_ONLY.as_bytes().to_vec(), 406),
        (
            "data channel only",
            "/whep/lobby",
            DATA_ONLY.as_bytes().to_vec(),
            400,
        ),
        (
            "real offer, address full",
            "/whep/lobby",
            real.as_bytes().to_vec(),
            429,
        ),
        (
            "garbage, unknown path",
            "/whep/no/such",
            b"junk".to_vec(),
            404,
        ),
        (
            "real offer, unknown path",
            "/whep/nosuch",
            real.as_bytes().to_vec(),
            404,
        ),
    ]
}

#[test]
fn junk_offers_start_no_camera_and_leave_a_viewer_its_session() {
    let cam = Camera::start(&CameraOpts {
        audio: "none",
        ..CameraOpts::default()
    });
    let cfg = test_config(&format!(
        "{}[[streams]]\npath = \"lobby\"\nsource = \"{}\"\ntransport = \"tcp\"\n\
         on_demand = true\nshard = 0\n",
        demo_stream("demo", 1),
        cam.url
    ));
    let s = Server::start("webrtc-junk", &cfg);
    wait_tracks(&s, "demo");
    assert_eq!(s.stream("lobby")["source"]["state"], "idle");
    let real = real_offer();
    let limit = 64; // webrtc.max_sessions_per_ip's default
    let mut refused = 0;
    let mut peak_before = 0;

    std::thread::scope(|scope| {
        // A legitimate viewer from 127.0.0.1, before the flood, plays through it.
        let (ready_tx, ready_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let http_addr = s.http;
        let viewer = scope.spawn(move || {
            let mut v = WhepViewer::connect(http_addr, "demo", ReceiveMode::Full, HTTP_TIMEOUT)
                .expect("legitimate viewer");
            plays(&mut v, 5);
            ready_tx.send(()).expect("ready");
            let before = v.stats().frames;
            while done_rx.try_recv().is_err() {
                v.run_for(Duration::from_millis(100))
                    .expect("the legitimate viewer keeps its session");
            }
            let during = v.stats().frames - before;
            plays(&mut v, 10);
            assert_eq!(v.close().expect("DELETE"), 200);
            during
        });
        ready_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("legitimate viewer playing");

        peak_before = common::peak_rss_kib(s.child.id());
        let start = Instant::now();
        let mut statuses: BTreeMap<(&str, u16), usize> = BTreeMap::new();
        // Phase 1: real offers that never do ICE fill this address's places, four
        // connections at a time.
        let addr = s.http;
        let phase1: Vec<u16> = std::thread::scope(|inner| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let real = &real;
                    inner.spawn(move || {
                        (0..25)
                            .map(|_| {
                                http::post(
                                    addr,
                                    "/whep/demo",
                                    "application/sdp",
                                    real.as_bytes(),
                                    HTTP_TIMEOUT,
                                )
                                .expect("response")
                                .status
                            })
                            .collect::<Vec<u16>>()
                    })
                })
                .collect();
            hs.into_iter()
                .flat_map(|h| h.join().expect("phase 1"))
                .collect()
        });
        for status in phase1 {
            assert!([201, 429].contains(&status), "real offer: {status}");
            *statuses
                .entry(("real offer, never ICE", status))
                .or_default() += 1;
        }
        assert_eq!(
            statuses.get(&("real offer, never ICE", 201)),
            Some(&(limit - 1)),
            "the address holds its limit, the legitimate viewer included: {statuses:?}"
        );
        // Phase 2: 400 junk offers over about 3 s, from four connections at a time.
        let kinds = junk_kinds(&real);
        let counts: Vec<BTreeMap<(&str, u16), usize>> = std::thread::scope(|inner| {
            let hs: Vec<_> = (0..4)
                .map(|t| {
                    let (kinds, addr) = (&kinds, s.http);
                    inner.spawn(move || {
                        let mut m: BTreeMap<(&str, u16), usize> = BTreeMap::new();
                        let t0 = Instant::now();
                        for i in 0..100 {
                            let (what, path, body, want) = &kinds[(i * 4 + t) % kinds.len()];
                            let r = http::post(addr, path, "application/sdp", body, HTTP_TIMEOUT)
                                .expect("response");
                            assert_eq!(r.status, *want, "{what}: {}", r.body_text());
                            *m.entry((*what, r.status)).or_default() += 1;
                            let due = t0 + Duration::from_millis(30 * (i as u64 + 1));
                            std::thread::sleep(due.saturating_duration_since(Instant::now()));
                        }
                        m
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().expect("flood")).collect()
        });
        let took = start.elapsed();
        for m in counts {
            for (k, n) in m {
                *statuses.entry(k).or_default() += n;
            }
        }
        eprintln!("500 offers in {took:?}: {statuses:#?}");
        assert_eq!(statuses.values().sum::<usize>(), 500);
        // The address stays full only while its unconnected sessions live (10 s).
        assert!(
            took < Duration::from_secs(9),
            "the flood took {took:?}: too slow to test what it means to"
        );
        done_tx.send(()).expect("done");
        refused = statuses
            .iter()
            .filter(|((_, status), _)| *status == 429)
            .map(|(_, n)| *n as u64)
            .sum();
        let during = viewer.join().expect("legitimate viewer");
        eprintln!("the legitimate viewer got {during} frames during the flood");
        assert!(during > 0, "no media during the flood");
    });

    let peak = common::peak_rss_kib(s.child.id());
    eprintln!(
        "server peak RSS {} MiB before the flood, {} MiB after (+{} KiB)",
        peak_before / 1024,
        peak / 1024,
        peak - peak_before
    );
    // What the flood may hold: 63 sessions that never connect (a str0m peer each).
    assert!(
        peak - peak_before < 32 * 1024,
        "the flood grew the server's peak RSS by {} KiB",
        peak - peak_before
    );
    // No offer started the camera.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(cam.connections(), (0, 0), "the camera was never contacted");
    assert_eq!(cam.plays(), 0);
    assert_eq!(s.stream("lobby")["source"]["state"], "idle");
    // Another address is served while this one is full.
    let mut v = WhepViewer::connect_from(
        Some(OTHER_ADDRESS),
        s.http,
        "demo",
        ReceiveMode::Full,
        HTTP_TIMEOUT,
    )
    .expect("a viewer from another address");
    plays(&mut v, 10);
    assert_eq!(v.close().expect("DELETE"), 200);
    assert_eq!(s.metric("corecast_webrtc_refused_per_ip_total"), refused);
    // The refusals were logged at most once a second per shard, with counts.
    let log = s.log_until("WebRTC offers refused", Duration::from_secs(2));
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WebRTC offers refused"))
        .collect();
    eprintln!("{} log lines about refused offers", lines.len());
    assert!(!lines.is_empty());
    assert!(
        lines.len() <= 2 * 8,
        "{} lines:\n{}",
        lines.len(),
        lines.join("\n")
    );
    assert!(lines.iter().all(|l| l.contains("refused=")), "{lines:?}");
}

#[test]
fn one_address_holds_at_most_max_sessions_per_ip() {
    let s = Server::start(
        "webrtc-per-ip",
        &test_config(&format!(
            "max_sessions_per_ip = 3\n{}",
            demo_stream("demo", 0)
        )),
    );
    wait_tracks(&s, "demo");
    let real = real_offer();
    // Three offers that never do ICE from 127.0.0.1 hold its three places.
    let held: Vec<_> = (0..3)
        .map(|_| post_offer(s.http, "demo", &real, HTTP_TIMEOUT).expect("201"))
        .collect();
    // The fourth is refused, by WHEP...
    let e = WhepViewer::connect(s.http, "demo", ReceiveMode::Full, HTTP_TIMEOUT)
        .expect_err("a fourth session from 127.0.0.1");
    assert_eq!(e.status(), Some(429), "{e}");
    let body = e.body().unwrap_or("");
    assert!(body.contains('3'), "the body names the limit: {body}");
    // ...and over the WebSocket.
    let reply = ws_offer(s.http, "demo", &real);
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["status"], 429, "{reply}");
    // Another address is served.
    let mut other = WhepViewer::connect_from(
        Some(OTHER_ADDRESS),
        s.http,
        "demo",
        ReceiveMode::Full,
        HTTP_TIMEOUT,
    )
    .expect("a session from 127.0.0.2");
    plays(&mut other, 5);
    // Ending one gives its place back.
    assert_eq!(
        http::delete(s.http, &held[0].location, HTTP_TIMEOUT)
            .expect("DELETE")
            .status,
        200
    );
    let mut mine = WhepViewer::connect(s.http, "demo", ReceiveMode::Full, HTTP_TIMEOUT)
        .expect("a place again");
    plays(&mut mine, 5);
    let e = WhepViewer::connect(s.http, "demo", ReceiveMode::Light, HTTP_TIMEOUT)
        .expect_err("full again");
    assert_eq!(e.status(), Some(429), "{e}");
    // The two that never connected are closed (no ICE+DTLS within 10 s) and count no
    // more; the two viewers play on meanwhile.
    let end = Instant::now() + Duration::from_secs(20);
    while sessions(&s) > 2 {
        assert!(Instant::now() < end, "unconnected sessions never closed");
        other.run_for(Duration::from_millis(100)).expect("alive");
        mine.run_for(Duration::from_millis(100)).expect("alive");
    }
    let mut more: Vec<_> = (0..2)
        .map(|_| {
            WhepViewer::connect(s.http, "demo", ReceiveMode::Light, HTTP_TIMEOUT)
                .expect("places of closed sessions are given back")
        })
        .collect();
    for v in more.iter_mut().chain([&mut other, &mut mine]) {
        plays(v, 3);
    }
    assert!(s.metric("corecast_webrtc_refused_per_ip_total") >= 3);
}

/// Sends one offer over `/ws` from 127.0.0.1 and returns the reply to it.
fn ws_offer(http_addr: SocketAddr, stream: &str, sdp: &str) -> Value {
    use tungstenite::Message;
    let tcp = std::net::TcpStream::connect(http_addr).expect("tcp connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let (mut ws, _) =
        tungstenite::client::client(format!("ws://{http_addr}/ws"), tcp).expect("ws handshake");
    let offer = serde_json::json!({"type": "offer", "stream": stream, "sdp": sdp});
    ws.send(Message::text(offer.to_string())).expect("ws send");
    for _ in 0..20 {
        let Message::Text(t) = ws.read().expect("ws read") else {
            continue;
        };
        let v: Value = serde_json::from_str(t.as_str()).expect("json");
        if v["type"] != "hello" {
            return v;
        }
    }
    panic!("no reply to the offer");
}

/// What a request is, its path, Content-Type and body, the status it gets and what the
/// answer says.
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static [u8],
    u16,
    &'static str,
);

#[test]
fn a_path_that_names_no_stream_is_404_before_the_body_is_read() {
    let s = Server::start("webrtc-404", &test_config(&demo_stream("demo", 0)));
    wait_tracks(&s, "demo");
    let cases: [Case; 7] = [
        (
            "junk, unknown path",
            "/whep/nosuch",
            "application/sdp",
            b"\xff\xfejunk",
            404,
            "no stream 'nosuch'",
        ),
        (
            "junk as text, unknown path",
            "/whep/a/b",
            "text/plain",
            b"junk",
            404,
            "no stream 'a/b'",
        ),
        (
            "junk, known path",
            "/whep/demo",
            "application/sdp",
            b"junk",
            400,
            "bad SDP offer",
        ),
        (
            "not UTF-8, known path",
            "/whep/demo",
            "application/sdp",
            b"\xff\xfe",
            400,
            "not UTF-8",
        ),
        (
            "no m= line",
            "/whep/demo",
            "application/sdp",
            NO_MEDIA.as_bytes(),
            400,
            "no m= line",
        ),
        (
            "VP8 only",
            "/whep/demo",
            "application/sdp",
            VP8_ONLY.as_bytes(),
            406,
            "no common codec",
        ),
        (
            "data channel only",
            "/whep/demo",
            "application/sdp",
            DATA_ONLY.as_bytes(),
            400,
            "no audio or video section",
        ),
    ];
    for (what, path, ctype, body, want, says) in cases {
        let r = post(&s, path, ctype, body);
        eprintln!("{what}: {} {}", r.status, r.body_text().trim());
        assert_eq!(r.status, want, "{what}: {}", r.body_text());
        assert!(r.body_text().contains(says), "{what}: {}", r.body_text());
    }
    // The server still serves.
    let mut v = WhepViewer::connect(s.http, "demo", ReceiveMode::Full, HTTP_TIMEOUT)
        .expect("a real viewer");
    plays(&mut v, 5);
    assert_eq!(sessions(&s), 1);
}

#[test]
fn keyframe_requests_past_the_shard_budget_are_skipped_and_counted() {
    // Re-sends allowed every 100 ms per viewer, but only 64 KiB of them per second per
    // shard: a viewer asking every 150 ms gets some answered and the rest counted.
    let s = Server::start(
        "webrtc-resend-budget",
        &test_config(&format!(
            "keyframe_interval = \"100ms\"\ngop_resend_budget = \"64KiB\"\n{}",
            demo_stream("demo", 0)
        )),
    );
    wait_tracks(&s, "demo");
    let mut v =
        WhepViewer::connect(s.http, "demo", ReceiveMode::Full, HTTP_TIMEOUT).expect("viewer");
    plays(&mut v, 5);
    for _ in 0..30 {
        assert!(v.peer_mut().request_keyframe(), "PLI sent");
        v.run_for(Duration::from_millis(150)).expect("alive");
    }
    plays(&mut v, 5);
    let sent = s.metric("corecast_webrtc_gop_resends_total");
    let skipped = s.metric("corecast_webrtc_gop_resends_skipped_total");
    eprintln!("30 keyframe requests: {sent} GOP re-sends, {skipped} skipped");
    assert!(skipped >= 1, "{sent} sent, {skipped} skipped");
    assert!(sent + skipped >= 10, "{sent} sent, {skipped} skipped");
}
