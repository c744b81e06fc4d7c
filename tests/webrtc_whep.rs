//! WHEP playback against the real binary, with corecast's own str0m-based client
//! (`corecast_client`) as the viewer. In `Full` mode str0m's depacketizer reassembles
//! the frames, so the server's packetizer is checked by a different implementation; in
//! `Light` mode many viewers count RTP headers only.
//!
//! `CORECAST_TEST_LOG=1` echoes the server's log; `--nocapture` shows the measurements.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::*;
use corecast_client::{self as client, ClientError, ReceiveMode, TrackKind, WhepViewer, http};
use std::path::Path;
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a viewer's first frame when no latency is being measured.
const FIRST_FRAME_LIMIT: Duration = Duration::from_secs(10);
/// The bound on the first frame after the answer.
const FIRST_FRAME_MAX: Duration = Duration::from_millis(500);
/// Window over which frame counts are compared with the RTP timestamps.
const WINDOW: Duration = Duration::from_secs(3);
const MIN_COVERAGE: f64 = 0.95;

fn start_demo(tag: &str) -> Server {
    let s = Server::start(tag, &test_config(&demo_stream("demo", 0)));
    wait_tracks(&s, "demo");
    s
}

/// Waits (bounded) until the API lists `path` with its tracks; returns its video fps.
fn wait_tracks(s: &Server, path: &str) -> f64 {
    let v = s.wait_stream(path, |v| {
        v["tracks"].as_array().is_some_and(|t| !t.is_empty())
    });
    let fps = v["tracks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["codec"] == "h264"))
        .and_then(|t| t["fps"].as_f64())
        .unwrap_or(0.0);
    assert!(fps > 0.0, "no H.264 track with a frame rate: {v}");
    fps
}

/// `shards[i].webrtc_sessions` from `/api/v1/health`.
fn sessions(s: &Server) -> Vec<u64> {
    let v = s.get_json("/api/v1/health");
    v["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|sh| {
            sh["webrtc_sessions"]
                .as_u64()
                .unwrap_or_else(|| panic!("no webrtc_sessions in {sh}"))
        })
        .collect()
}

/// Polls the session counts until their sum is `want` (bounded by `limit`); returns how
/// long it took.
fn wait_sessions(s: &Server, want: u64, limit: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let per_shard = sessions(s);
        if per_shard.iter().sum::<u64>() == want {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < limit,
            "webrtc_sessions {per_shard:?} did not reach {want} in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ffmpeg -re -stream_loop -1 -i FILE -c copy -f flv URL` until dropped.
fn publish_loop(file: &Path, url: &str) -> Killed {
    Killed(ffmpeg_publish_loop(file, &[], url))
}

/// Gaps between the RTP times of consecutive video frames of more than 1.5 frame
/// durations, in ms: a missing frame, or a jump in the source's timeline.
fn gaps_ms(frames: &[client::FrameRecord], fps: f64) -> Vec<f64> {
    let mut ts: Vec<i64> = frames
        .iter()
        .filter(|f| f.kind == TrackKind::Video)
        .map(|f| f.rtp_time)
        .collect();
    ts.sort_unstable();
    ts.windows(2)
        .map(|w| (w[1] - w[0]) as f64 / 90.0)
        .filter(|ms| *ms > 1500.0 / fps)
        .collect()
}

/// Plays `path` in `Full` mode: the first video frame is an IDR with SPS and PPS ahead of
/// it and comes within [`FIRST_FRAME_MAX`] of the answer; over [`WINDOW`] at least
/// [`MIN_COVERAGE`] of the frames the RTP timestamps span (at `fps`) arrive; every video
/// frame str0m reassembled is H.264 in Annex B. Ends with `DELETE` (200).
///
/// The caller joins mid-GOP (half a GOP after the stream started), so that the first
/// frame can only come in time from the server's GOP cache, not from the next keyframe.
fn play_full(s: &Server, path: &str, fps: f64) {
    let mut v = WhepViewer::connect(s.http, path, ReceiveMode::Full, HTTP_TIMEOUT)
        .unwrap_or_else(|e| panic!("WHEP {path}: {e}"));
    let got = v
        .run_until(|st| st.frames >= 1, FIRST_FRAME_LIMIT)
        .expect("session alive");
    assert!(
        got,
        "no video frame in {FIRST_FRAME_LIMIT:?}: {:?}",
        v.stats()
    );
    let first_after = v.stats().first_frame_after.expect("first frame time");
    v.run_for(WINDOW).expect("session alive");
    let st = v.stats().clone();
    let frames: Vec<_> = v
        .frames()
        .iter()
        .filter(|f| f.kind == TrackKind::Video)
        .collect();
    let first = frames.first().expect("a video frame");
    let cov = v.peer().video_coverage(fps);
    let gaps = gaps_ms(v.frames(), fps);
    eprintln!(
        "{path}: connected after {:?}, first frame after {first_after:?} (NAL types {:?}), \
         {} frames / {} expected ({:.1}%) at {fps} fps, {} packets, {} lost, {} RTX, \
         {} keyframes, {} discontinuities, gaps {gaps:?} ms",
        st.connected_after,
        first.nal_types,
        cov.received,
        cov.expected,
        cov.ratio() * 100.0,
        st.packets,
        st.lost,
        st.rtx_packets,
        st.keyframes,
        st.discontinuities,
    );
    assert_eq!(
        st.first_frame_idr_with_sps_pps,
        Some(true),
        "first video frame has NAL types {:?}",
        first.nal_types
    );
    assert!(
        first_after <= FIRST_FRAME_MAX,
        "first frame {first_after:?} after the answer"
    );
    assert!(
        frames
            .iter()
            .all(|f| f.codec == Some(str0m::format::Codec::H264) && f.annex_b),
        "a video frame is not H.264 Annex B"
    );
    assert!(
        frames.iter().all(|f| !f.nal_types.is_empty()),
        "a video frame without NAL units"
    );
    // Every IDR carries its parameter sets in band, not only the first one.
    for f in frames.iter().filter(|f| f.is_idr()) {
        assert!(
            f.is_idr_with_parameter_sets(),
            "an IDR at RTP time {} without SPS/PPS ahead: {:?}",
            f.rtp_time,
            f.nal_types
        );
    }
    assert!(
        cov.ratio() >= MIN_COVERAGE,
        "{} of {} frames ({:.1}%)",
        cov.received,
        cov.expected,
        cov.ratio() * 100.0
    );
    // The window really was played: about WINDOW worth of frames.
    let span_frames = (WINDOW.as_secs_f64() * fps * 0.8) as u64;
    assert!(
        cov.received >= span_frames,
        "only {} frames in {WINDOW:?} at {fps} fps",
        cov.received
    );
    assert_eq!(v.close().expect("DELETE"), 200);
}

#[test]
fn demo_plays_in_full_mode_idr_first_within_500ms_and_95_percent_of_frames() {
    let s = start_demo("whep-demo");
    // The demo has a keyframe every 2 s: join 1 s into a GOP.
    std::thread::sleep(Duration::from_secs(1));
    play_full(&s, "demo", 30.0);
}

#[test]
fn rtmp_published_stream_plays_over_whep() {
    let s = Server::start("whep-rtmp", &test_config(""));
    let url = format!("rtmp://{}/live/cam1", s.rtmp);
    let file = root().join("tests/data/ffmpeg_320x240_baseline_aac.flv");
    let _publisher = publish_loop(&file, &url);
    let fps = wait_tracks(&s, "live/cam1");
    assert!(
        (fps - 10.0).abs() < 0.5,
        "the clip is 10 fps, API says {fps}"
    );
    // A slash in the path. The clip has a keyframe every second: join half-way.
    std::thread::sleep(Duration::from_millis(500));
    play_full(&s, "live/cam1", fps);
}

struct LightResult {
    frames: u64,
    received: u64,
    expected: u64,
    lost: u64,
    packets: u64,
    delete: u16,
}

#[test]
fn fifty_light_viewers_on_both_shards_each_get_95_percent_of_frames() {
    const N: usize = 50;
    let s = start_demo("whep-50");
    let http_addr = s.http;
    let (tx, rx) = mpsc::channel::<()>();
    let results: Vec<Result<LightResult, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..N)
            .map(|_| {
                let tx = tx.clone();
                scope.spawn(move || -> Result<LightResult, String> {
                    // Each POST is its own TCP connection: SO_REUSEPORT spreads them.
                    let mut v =
                        WhepViewer::connect(http_addr, "demo", ReceiveMode::Light, HTTP_TIMEOUT)
                            .map_err(|e| e.to_string())?;
                    let _ = tx.send(());
                    let ok = v
                        .run_until(|st| st.frames >= 1, FIRST_FRAME_LIMIT)
                        .map_err(|e| e.to_string())?;
                    if !ok {
                        return Err(format!("no first frame: {:?}", v.stats()));
                    }
                    v.run_for(WINDOW).map_err(|e| e.to_string())?;
                    let cov = v.peer().video_coverage(30.0);
                    let st = v.stats().clone();
                    let delete = v.close().map_err(|e| e.to_string())?;
                    Ok(LightResult {
                        frames: st.frames,
                        received: cov.received,
                        expected: cov.expected,
                        lost: st.lost,
                        packets: st.packets,
                        delete,
                    })
                })
            })
            .collect();
        drop(tx);
        // Once every viewer has its answer, all N sessions are live: count them per shard.
        let mut answered = 0;
        while answered < N && rx.recv_timeout(Duration::from_secs(30)).is_ok() {
            answered += 1;
        }
        let per_shard = sessions(&s);
        eprintln!("{answered} viewers answered; webrtc_sessions per shard {per_shard:?}");
        assert_eq!(answered, N, "only {answered} of {N} offers answered");
        assert_eq!(per_shard.iter().sum::<u64>(), N as u64, "{per_shard:?}");
        assert!(
            per_shard.iter().all(|&n| n > 0),
            "sessions did not land on both shards: {per_shard:?}"
        );
        // The API's per-path snapshot is refreshed once a second.
        let demo = s.wait_stream("demo", |v| {
            v["viewers"]["total"].as_u64().unwrap_or(0) >= N as u64
        });
        eprintln!("API viewers: {}", demo["viewers"]);
        let by_shard: Vec<u64> = demo["viewers"]["by_shard"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
            .unwrap_or_default();
        assert_eq!(
            by_shard, per_shard,
            "API viewers by shard vs webrtc_sessions"
        );
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("viewer thread panicked".into()))
            })
            .collect()
    });
    let mut worst = f64::MAX;
    let (mut frames, mut lost, mut packets) = (0, 0, 0);
    for (i, r) in results.iter().enumerate() {
        let r = r.as_ref().unwrap_or_else(|e| panic!("viewer {i}: {e}"));
        let ratio = r.received as f64 / r.expected.max(1) as f64;
        worst = worst.min(ratio);
        frames += r.frames;
        lost += r.lost;
        packets += r.packets;
        assert!(
            ratio >= MIN_COVERAGE,
            "viewer {i}: {} of {} frames ({:.1}%), {} lost packets",
            r.received,
            r.expected,
            ratio * 100.0,
            r.lost
        );
        assert_eq!(r.delete, 200, "viewer {i}: DELETE");
    }
    eprintln!(
        "{N} viewers: {frames} frames, {packets} packets, {lost} lost, worst coverage {:.1}%",
        worst * 100.0
    );
    wait_sessions(&s, 0, Duration::from_secs(10));
}

/// A viewer connects, gets a frame and leaves with DELETE (200).
fn good_viewer(s: &Server) {
    let mut v = WhepViewer::connect(s.http, "demo", ReceiveMode::Light, HTTP_TIMEOUT)
        .expect("a good viewer is served");
    assert!(
        v.run_until(|st| st.frames >= 1, FIRST_FRAME_LIMIT)
            .expect("session alive"),
        "good viewer got no frame"
    );
    assert_eq!(v.close().expect("DELETE"), 200);
}

/// A real offer from the client library.
fn real_offer() -> String {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = sock.local_addr().expect("addr");
    client::WhepPeer::new(Instant::now(), addr, ReceiveMode::Light)
        .expect("peer")
        .offer()
}

#[test]
fn bad_offers_are_refused_and_the_server_keeps_serving() {
    let s = start_demo("whep-bad");
    let post = |path: &str, ctype: &str, body: &str| {
        http::post(s.http, path, ctype, body.as_bytes(), HTTP_TIMEOUT).expect("response")
    };
    let cases = [
        (
            "garbage SDP",
            "/whep/demo",
            "application/sdp",
            "this is not SDP\r\n".to_string(),
            400,
        ),
        ("text/plain", "/whep/demo", "text/plain", real_offer(), 415),
        (
            "unknown path",
            "/whep/nosuch",
            "application/sdp",
            real_offer(),
            404,
        ),
        (
            "unknown nested path",
            "/whep/live/nosuch",
            "application/sdp",
            real_offer(),
            404,
        ),
        (
            "empty body",
            "/whep/demo",
            "application/sdp",
            String::new(),
            400,
        ),
        (
            "bad stream path",
            "/whep/live/a%zz",
            "application/sdp",
            real_offer(),
            400,
        ),
        (
            "empty path segment",
            "/whep/live//demo",
            "application/sdp",
            real_offer(),
            400,
        ),
    ];
    for (what, path, ctype, body, want) in cases {
        let r = post(path, ctype, &body);
        eprintln!("{what}: {} {}", r.status, r.body_text().trim());
        assert_eq!(r.status, want, "{what}: {}", r.body_text());
        if what.contains("path") && want == 400 {
            // The reason is in the answer.
            assert!(
                r.body_text().contains("bad stream path"),
                "{what}: {}",
                r.body_text()
            );
        }
        assert!(
            r.header("location").is_none(),
            "{what}: a Location on an error"
        );
        good_viewer(&s);
    }
    wait_sessions(&s, 0, Duration::from_secs(10));
}

#[test]
fn whep_resource_methods_and_codec_mismatch() {
    let s = start_demo("whep-methods");
    // An offer with VP8 only: nothing the H.264 stream can use (406, naming its codec).
    client::init_crypto();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut rtc = str0m::Rtc::builder()
        .clear_codecs()
        .enable_vp8(true)
        .build(Instant::now());
    rtc.add_local_candidate(
        str0m::Candidate::host(sock.local_addr().expect("addr"), "udp").expect("candidate"),
    );
    let mut api = rtc.sdp_api();
    api.add_media(
        str0m::media::MediaKind::Video,
        str0m::media::Direction::RecvOnly,
        None,
        None,
        None,
    );
    let (offer, _pending) = api.apply().expect("offer");
    let r = http::post(
        s.http,
        "/whep/demo",
        "application/sdp",
        offer.to_sdp_string().as_bytes(),
        HTTP_TIMEOUT,
    )
    .expect("response");
    eprintln!("VP8-only offer: {} {}", r.status, r.body_text().trim());
    assert_eq!(r.status, 406);
    assert!(
        r.body_text().to_ascii_lowercase().contains("h264"),
        "406 body does not name the stream's codec: {}",
        r.body_text()
    );

    // OPTIONS: 204 with CORS headers.
    let r =
        http::request(s.http, "OPTIONS", "/whep/demo", &[], None, HTTP_TIMEOUT).expect("response");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(
        r.header("access-control-allow-methods")
            .is_some_and(|m| m.contains("POST") && m.contains("DELETE")),
        "{:?}",
        r.headers
    );

    // A live session: PATCH is 405, DELETE 200, a second DELETE 404.
    let mut v =
        WhepViewer::connect(s.http, "demo", ReceiveMode::Light, HTTP_TIMEOUT).expect("viewer");
    assert!(v.location().starts_with("/whep/demo/"), "{}", v.location());
    let r = http::request(
        s.http,
        "PATCH",
        v.location(),
        &[],
        Some((
            "application/trickle-ice-sdpfrag",
            b"a=end-of-candidates\r\n",
        )),
        HTTP_TIMEOUT,
    )
    .expect("response");
    assert_eq!(r.status, 405);
    assert_eq!(v.close().expect("DELETE"), 200);
    let r = http::delete(s.http, v.location(), HTTP_TIMEOUT).expect("response");
    assert_eq!(r.status, 404, "second DELETE");
    let r = http::delete(s.http, "/whep/demo/00000000deadbeef", HTTP_TIMEOUT).expect("response");
    assert_eq!(r.status, 404, "DELETE of an unknown session");
    wait_sessions(&s, 0, Duration::from_secs(10));
}

#[test]
fn delete_ends_the_session_and_a_silent_viewer_is_cleaned_up() {
    let s = start_demo("whep-end");
    // DELETE: the count drops, and the media stops (or DTLS is closed by the server).
    let mut v =
        WhepViewer::connect(s.http, "demo", ReceiveMode::Light, HTTP_TIMEOUT).expect("viewer");
    assert!(
        v.run_until(|st| st.frames >= 1, FIRST_FRAME_LIMIT)
            .expect("alive")
    );
    assert_eq!(sessions(&s).iter().sum::<u64>(), 1);
    assert_eq!(v.close().expect("DELETE"), 200);
    let took = wait_sessions(&s, 0, Duration::from_secs(10));
    eprintln!("DELETE: sessions back to 0 after {took:?}");
    // Whatever was in flight arrives; after that nothing more.
    let _ = v.run_for(Duration::from_millis(500));
    let before = v.stats().packets;
    match v.run_for(Duration::from_secs(2)) {
        Ok(()) => {}
        Err(ClientError::Closed(why)) => eprintln!("DELETE: server closed DTLS ({why:?})"),
        Err(e) => panic!("viewer after DELETE: {e}"),
    }
    assert_eq!(
        v.stats().packets,
        before,
        "media still flowing 0.5 s after DELETE"
    );

    // A viewer that stops sending (no DELETE, no DTLS close): consent checks stop, and the
    // server must end the session by itself.
    let mut v =
        WhepViewer::connect(s.http, "demo", ReceiveMode::Light, HTTP_TIMEOUT).expect("viewer");
    assert!(
        v.run_until(|st| st.frames >= 1, FIRST_FRAME_LIMIT)
            .expect("alive")
    );
    assert_eq!(sessions(&s).iter().sum::<u64>(), 1);
    drop(v);
    let took = wait_sessions(&s, 0, Duration::from_secs(40));
    eprintln!("silent viewer: session ended {took:?} after its last packet");
    // webrtc.session_timeout is 7 s by default: ~10 s with the shard's timer granularity.
    assert!(
        took <= Duration::from_secs(15),
        "silent viewer's session lived {took:?}"
    );
}

#[test]
fn a_full_shard_answers_503_until_a_session_ends() {
    // Two sessions per shard; offers land on a shard by SO_REUSEPORT's hash.
    let s = Server::start(
        "whep-busy",
        &test_config(&format!("max_sessions = 2\n{}", demo_stream("demo", 0))),
    );
    wait_tracks(&s, "demo");
    let mut viewers = Vec::new();
    let mut refused = 0;
    for _ in 0..20 {
        match WhepViewer::connect(s.http, "demo", ReceiveMode::Light, HTTP_TIMEOUT) {
            Ok(v) => viewers.push(v),
            Err(e) if e.status() == Some(503) => {
                refused += 1;
                let body = e.body().unwrap_or("");
                assert!(
                    body.contains('2'),
                    "503 body does not name the limit: {body}"
                );
            }
            Err(e) => panic!("offer: {e}"),
        }
    }
    eprintln!("{} accepted, {refused} refused (503)", viewers.len());
    assert_eq!(viewers.len(), 4, "2 shards x max_sessions 2");
    assert_eq!(sessions(&s), vec![2, 2]);
    // The accepted ones are served.
    for v in &mut viewers {
        assert!(
            v.run_until(|st| st.frames >= 1, FIRST_FRAME_LIMIT)
                .expect("alive"),
            "no first frame"
        );
    }
    for v in &mut viewers {
        assert_eq!(v.close().expect("DELETE"), 200);
    }
    wait_sessions(&s, 0, Duration::from_secs(10));
    good_viewer(&s);
}

#[test]
fn viewers_outlive_the_session_timeout_on_consent_checks() {
    // webrtc.session_timeout is 7 s: a viewer that only sends what str0m sends by itself
    // (ICE consent checks; RTCP in Full mode) stays connected well past it, in both modes.
    const PLAY: Duration = Duration::from_secs(10);
    let s = start_demo("whep-long");
    let http_addr = s.http;
    std::thread::scope(|scope| {
        let hs: Vec<_> = [ReceiveMode::Light, ReceiveMode::Full]
            .into_iter()
            .map(|mode| {
                scope.spawn(move || {
                    let mut v = WhepViewer::connect(http_addr, "demo", mode, HTTP_TIMEOUT)
                        .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
                    v.peer_mut().set_max_frames(10_000);
                    assert!(
                        v.run_until(|st| st.frames >= 1, FIRST_FRAME_LIMIT)
                            .expect("alive"),
                        "{mode:?}: no first frame"
                    );
                    v.run_for(PLAY)
                        .unwrap_or_else(|e| panic!("{mode:?} after {PLAY:?}: {e}"));
                    let cov = v.peer().video_coverage(30.0);
                    eprintln!(
                        "{mode:?} over {PLAY:?}: {} of {} frames, {} lost, {} datagrams sent, \
                         gaps {:?} ms",
                        cov.received,
                        cov.expected,
                        v.stats().lost,
                        v.stats().datagrams_out,
                        gaps_ms(v.frames(), 30.0)
                    );
                    assert!(cov.ratio() >= MIN_COVERAGE, "{mode:?}: {cov:?}");
                    assert!(cov.received as f64 >= PLAY.as_secs_f64() * 30.0 * 0.9);
                    v
                })
            })
            .collect();
        let mut viewers: Vec<WhepViewer> = hs
            .into_iter()
            .map(|h| h.join().expect("viewer thread"))
            .collect();
        assert_eq!(sessions(&s).iter().sum::<u64>(), 2);
        for v in &mut viewers {
            assert_eq!(v.close().expect("DELETE"), 200);
        }
    });
    wait_sessions(&s, 0, Duration::from_secs(10));
}

/// One Light viewer: connect, first frame, DELETE.
fn join_and_leave(http_addr: std::net::SocketAddr) -> Result<(), String> {
    let mut v = WhepViewer::connect(http_addr, "demo", ReceiveMode::Light, HTTP_TIMEOUT)
        .map_err(|e| e.to_string())?;
    let ok = v
        .run_until(|st| st.frames >= 1, FIRST_FRAME_LIMIT)
        .map_err(|e| e.to_string())?;
    if !ok {
        return Err(format!("no first frame: {:?}", v.stats()));
    }
    match v.close().map_err(|e| e.to_string())? {
        200 => Ok(()),
        other => Err(format!("DELETE answered {other}")),
    }
}

/// Runs `n` join/leave cycles on `threads` threads.
fn cycles(http_addr: std::net::SocketAddr, n: usize, threads: usize) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                        join_and_leave(http_addr)?;
                    }
                    Ok::<(), String>(())
                })
            })
            .collect();
        for h in hs {
            if let Err(e) = h.join().unwrap_or_else(|_| Err("thread panicked".into())) {
                panic!("join/leave cycle: {e}");
            }
        }
    });
}

#[test]
fn two_hundred_joins_and_leaves_leave_no_sessions_and_bounded_memory() {
    const TOTAL: usize = 200;
    const WARMUP: usize = 20;
    const THREADS: usize = 4;
    const MAX_GROWTH_KIB: u64 = 16 * 1024;
    let s = start_demo("whep-churn");
    let pid = s.child.id();
    let t = Instant::now();
    cycles(s.http, WARMUP, THREADS);
    wait_sessions(&s, 0, Duration::from_secs(10));
    let warm = rss_kib(pid);
    cycles(s.http, TOTAL - WARMUP, THREADS);
    let took = wait_sessions(&s, 0, Duration::from_secs(10));
    let after = rss_kib(pid);
    // Every cycle was a session of its own.
    let metrics = s.get("/metrics").body_text();
    let created: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("corecast_webrtc_sessions_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(created, TOTAL as u64, "sessions created");
    eprintln!(
        "{TOTAL} cycles in {:?} ({THREADS} at a time); sessions 0 {took:?} after the last; \
         RSS after {WARMUP}: {warm} KiB, after {TOTAL}: {after} KiB ({:+} KiB)",
        t.elapsed(),
        after as i64 - warm as i64
    );
    assert!(
        after <= warm + MAX_GROWTH_KIB,
        "RSS grew from {warm} KiB to {after} KiB over {} cycles",
        TOTAL - WARMUP
    );
}
