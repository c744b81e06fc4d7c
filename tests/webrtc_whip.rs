//! WHIP ingest: what `POST /whip/{path}` answers, what happens to a publisher that never
//! connects, and the project's WHIP client (`corecast_client::WhipPublisher`) publishing a
//! recorded H.264 + Opus sequence: through 5 % packet loss (NACK and retransmission bring
//! the video back; the API and /metrics count what stays lost) and with a viewer's
//! keyframe request reaching it as one PLI. Offers for the status checks are made by
//! str0m; Chromium publishing is in `tests/browser.rs`.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::{Server, test_config};
use corecast_client::http;
use std::time::{Duration, Instant};
use str0m::media::{Direction, MediaKind};
use str0m::{Rtc, RtcConfig};

const T: Duration = Duration::from_secs(10);

/// A publisher's SDP offer made by str0m: sendonly video and/or audio in the codecs of
/// `cfg`.
fn offer_with(cfg: RtcConfig, video: bool, audio: bool) -> String {
    let mut rtc: Rtc = cfg.build(Instant::now());
    let mut api = rtc.sdp_api();
    if video {
        api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    }
    if audio {
        api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    }
    let (offer, _pending) = api.apply().expect("an offer");
    offer.to_sdp_string()
}

/// H.264 and Opus (str0m's default codecs, VP8 and VP9 among them).
fn offer() -> String {
    offer_with(Rtc::builder(), true, true)
}

/// `POST /whip/{path}` with `sdp`, extra headers: (status, Location, body).
fn post(s: &Server, path: &str, sdp: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let r = http::request(
        s.http,
        "POST",
        &format!("/whip/{path}"),
        headers,
        Some(("application/sdp", sdp.as_bytes())),
        T,
    )
    .expect("http");
    let location = r.header("Location").unwrap_or("").to_string();
    (r.status, location, r.body_text())
}

fn status_of(s: &Server, method: &str, path: &str) -> u16 {
    http::request(s.http, method, path, &[], None, T)
        .expect("http")
        .status
}

/// Waits until the API lists `path` (every shard's snapshot has it within a second).
fn wait_listed(s: &Server, path: &str, listed: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let there = s
            .get("/api/v1/streams")
            .body_text()
            .contains(&format!("\"{path}\""));
        if there == listed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} listed: {there}, expected {listed}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_offer_is_answered_and_errors_have_their_statuses() {
    let s = Server::start("whip-statuses", &test_config(""));
    // A good offer: 201, a Location under the path, an answer that receives.
    let (status, location, answer) = post(&s, "live/one", &offer(), &[]);
    assert_eq!(status, 201, "{answer}");
    assert!(location.starts_with("/whip/live/one/"), "{location}");
    assert!(answer.contains("a=recvonly"), "{answer}");
    assert!(answer.contains("a=candidate:"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("h264"), "{answer}");
    assert!(answer.contains("opus"), "{answer}");
    wait_listed(&s, "live/one", true);
    // A second publisher on the path: 409.
    let (status, _, body) = post(&s, "live/one", &offer(), &[]);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already published"), "{body}");
    // Not SDP: 400; no section that sends: 400; nothing we take: 406 naming it.
    let (status, _, body) = post(&s, "live/two", "hello", &[]);
    assert_eq!(status, 400, "{body}");
    let recv_only = offer().replace("a=sendonly", "a=recvonly");
    let (status, _, body) = post(&s, "live/two", &recv_only, &[]);
    assert_eq!(status, 400, "{body}");
    let vp8 = offer_with(Rtc::builder().clear_codecs().enable_vp8(true), true, false);
    let (status, _, body) = post(&s, "live/two", &vp8, &[]);
    assert_eq!(status, 406, "{body}");
    assert!(body.contains("vp8") && body.contains("H.264"), "{body}");
    // Another content type: 415.
    let r = http::request(
        s.http,
        "POST",
        "/whip/live/two",
        &[],
        Some(("text/plain", offer().as_bytes())),
        T,
    )
    .expect("http");
    assert_eq!(r.status, 415);
    // PATCH (trickle, ICE restart) is 405; OPTIONS answers CORS.
    assert_eq!(status_of(&s, "PATCH", &location), 405);
    let r = http::request(s.http, "OPTIONS", "/whip/live/two", &[], None, T).expect("http");
    assert_eq!(r.status, 204);
    assert!(
        r.header("Access-Control-Allow-Methods")
            .is_some_and(|m| m.contains("POST"))
    );
    // DELETE of the session under another path: 404; under its own: 200, then 404.
    let id = location.rsplit('/').next().unwrap_or("");
    assert_eq!(
        status_of(&s, "DELETE", &format!("/whip/live/other/{id}")),
        404
    );
    assert_eq!(status_of(&s, "DELETE", &location), 200);
    assert_eq!(status_of(&s, "DELETE", &location), 404);
    // The path is free again.
    wait_listed(&s, "live/one", false);
    let (status, _, body) = post(&s, "live/one", &offer(), &[]);
    assert_eq!(status, 201, "{body}");
}

#[test]
fn a_configured_path_cannot_be_published_and_the_shard_limit_is_503() {
    let config = test_config(&format!(
        "max_sessions = 1\n{}",
        common::demo_stream("demo", 0)
    ));
    let s = Server::start("whip-limits", &config);
    let (status, _, body) = post(&s, "demo", &offer(), &[]);
    assert_eq!(status, 409, "{body}");
    // One session per shard, two shards: of three publishers, one is refused at least.
    let statuses: Vec<u16> = (0..3)
        .map(|i| post(&s, &format!("live/p{i}"), &offer(), &[]).0)
        .collect();
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(statuses.contains(&201), "{statuses:?}");
}

#[test]
fn publishing_needs_the_publish_permission() {
    let config = test_config(
        r#"
[auth]
fail_limit = 0

[[auth.users]]
user = "obs"
password = "s3cret"
permissions = [{ action = "publish", path = "live/**" }]

[[auth.users]]
user = "viewer"
password = "v"
permissions = [{ action = "read" }]
"#,
    );
    let s = Server::start("whip-auth", &config);
    let (status, _, body) = post(&s, "live/cam", &offer(), &[]);
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = post(
        &s,
        "live/cam",
        &offer(),
        &[("Authorization", "Bearer viewer:v")],
    );
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = post(
        &s,
        "other",
        &offer(),
        &[("Authorization", "Bearer obs:s3cret")],
    );
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = post(
        &s,
        "live/cam",
        &offer(),
        &[("Authorization", "Bearer obs:wrong")],
    );
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = post(
        &s,
        "live/cam",
        &offer(),
        &[("Authorization", "Bearer obs:s3cret")],
    );
    assert_eq!(status, 201, "{body}");
}

#[test]
fn a_publisher_that_never_connects_is_cleaned_up() {
    let s = Server::start("whip-no-dtls", &test_config(""));
    let (status, _, body) = post(&s, "live/ghost", &offer(), &[]);
    assert_eq!(status, 201, "{body}");
    wait_listed(&s, "live/ghost", true);
    // No ICE, no DTLS: the session ends once nothing came for webrtc.session_timeout
    // (7 s; the connect time-out, 10 s, would come next) and the path is free.
    let log = s.log_until("whip publish ended", Duration::from_secs(20));
    let ended = log
        .lines()
        .find(|l| l.contains("whip publish ended"))
        .unwrap_or_else(|| panic!("no end logged:\n{log}"));
    assert!(
        ended.contains("connect failed") || ended.contains("consent lost"),
        "{ended}"
    );
    wait_listed(&s, "live/ghost", false);
    assert_eq!(s.metric("corecast_whip_publishers"), 0);
}

/// Video frames as the WHIP client sends them: pts at 90 kHz, keyframe, AVCC access unit.
type Frames = Vec<(i64, bool, Vec<u8>)>;

/// A recorded H.264 sequence (the 320x240 test clip's video), its frame rate, and its SPS
/// and PPS.
fn recorded_video() -> (Frames, f64, Vec<Vec<u8>>) {
    use corecast::media::clip::Clip;
    use corecast::media::flv::{DemuxOutput, Demuxer, TagType};
    let file = std::fs::read(common::root().join("tests/data/ffmpeg_320x240_baseline_aac.flv"))
        .expect("test clip");
    let clip = Clip::parse(file.into(), 1 << 24).expect("clip");
    let mut demux = Demuxer::new();
    let mut frames = Vec::new();
    for tag in clip.tags().iter().filter(|t| t.kind == TagType::Video) {
        if let Ok(Some(DemuxOutput::Frame(f))) = demux.video(tag.offset_ms, &tag.body) {
            frames.push((f.pts, f.keyframe, f.data.to_vec()));
        }
    }
    let track = demux
        .tracks()
        .into_iter()
        .find(|t| t.codec == corecast::media::Codec::H264)
        .expect("an H.264 track");
    let params = track
        .params
        .sps
        .iter()
        .chain(track.params.pps.iter())
        .map(|b| b.to_vec())
        .collect();
    (frames, clip.video_fps().unwrap_or(30.0), params)
}

/// 5 s of a 440 Hz tone as 20 ms stereo Opus packets (libopus).
fn opus_tone() -> Vec<Vec<u8>> {
    let mut enc = opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio)
        .expect("encoder");
    (0..250)
        .map(|k| {
            let pcm: Vec<f32> = (0..960 * 2)
                .map(|i| {
                    let n = (k * 960 + i / 2) as f32;
                    0.3 * (2.0 * std::f32::consts::PI * 440.0 * n / 48_000.0).sin()
                })
                .collect();
            enc.encode_vec_float(&pcm, 1500).expect("encode")
        })
        .collect()
}

/// A WHIP publisher (the project's client) sending the recorded sequence on its own
/// thread for `secs`, with `drop_ppm` of its original media packets dropped.
/// A WHIP publisher of `path`, connected, with the recorded clip's parameter sets, and
/// the clip's frames and rate.
fn recorded_publisher(
    http: std::net::SocketAddr,
    path: &str,
) -> (corecast_client::WhipPublisher, Frames, f64) {
    let (video, fps, params) = recorded_video();
    let mut p = corecast_client::WhipPublisher::connect(
        http,
        path,
        None,
        corecast_client::WhipOptions::default(),
        T,
    )
    .expect("whip publisher");
    p.peer_mut().set_parameter_sets(params);
    (p, video, fps)
}

fn publish_in_background(
    s: &Server,
    path: &'static str,
    secs: u64,
    drop_ppm: u32,
) -> std::thread::JoinHandle<corecast_client::WhipStats> {
    let http = s.http;
    std::thread::spawn(move || {
        let (mut p, video, fps) = recorded_publisher(http, path);
        let audio = opus_tone();
        p.peer_mut().set_drop(drop_ppm, 7);
        p.publish_for(Duration::from_secs(secs), &video, fps, Some(&audio))
            .expect("publish");
        let stats = p.stats().clone();
        let _ = p.close();
        stats
    })
}

/// Waits (bounded) until `path` lists the clip's H.264 track, and an Opus one if `opus`.
fn wait_tracks(s: &Server, path: &str, opus: bool) {
    s.wait_stream(path, |st| {
        let t = st["tracks"].as_array().cloned().unwrap_or_default();
        t.iter().any(|t| t["codec"] == "h264" && t["width"] == 320)
            && (!opus || t.iter().any(|t| t["codec"] == "opus"))
    });
}

#[test]
fn five_percent_loss_is_recovered_by_nack_and_viewers_see_the_frames() {
    let s = Server::start("whip-loss", &test_config(""));
    let publisher = publish_in_background(&s, "live/lossy", 9, 50_000);
    wait_tracks(&s, "live/lossy", true);
    let mut v = corecast_client::WhepViewer::connect(
        s.http,
        "live/lossy",
        corecast_client::ReceiveMode::Full,
        T,
    )
    .expect("whep viewer");
    v.run_for(Duration::from_secs(5)).expect("run");
    let coverage = v.peer().video_coverage(recorded_video().1);
    let audio = v
        .frames()
        .iter()
        .filter(|f| f.kind == corecast_client::TrackKind::Audio)
        .count();
    // Loss per publisher: the API shows each received track's packets and losses (Opus
    // is not retransmitted: the audio's dropped packets stay lost), and /metrics counts them.
    let source = s.stream("live/lossy")["source"].clone();
    let stats = publisher.join().expect("publisher thread");
    eprintln!(
        "publisher: {} video packets, {} dropped, {} retransmitted, {} NACKs, {} PLIs; \
         viewer: {coverage:?}, {audio} Opus frames; source: {source}",
        stats.video_packets, stats.video_dropped, stats.retransmissions, stats.nacks, stats.plis
    );
    let sent = stats.video_packets + stats.audio_packets;
    let share = stats.dropped() as f64 / sent.max(1) as f64;
    assert!(
        (0.02..0.09).contains(&share),
        "{share} of the packets dropped: {stats:?}"
    );
    assert!(
        stats.video_dropped >= 3,
        "too few video packets dropped: {stats:?}"
    );
    assert!(
        stats.retransmissions >= stats.video_dropped * 9 / 10,
        "lost video packets were not asked for again: {stats:?}"
    );
    assert!(
        coverage.received as f64 >= 0.95 * coverage.expected as f64,
        "the viewer saw {coverage:?}"
    );
    assert!(audio >= 150, "{audio} Opus frames in 5 s");
    assert_eq!(source["kind"], "whip", "{source}");
    assert_eq!(source["transport"], "webrtc", "{source}");
    let tracks = source["tracks"].as_array().cloned().unwrap_or_default();
    assert!(
        tracks
            .iter()
            .any(|t| t["codec"] == "h264" && t["packets"].as_u64() > Some(50)),
        "{source}"
    );
    assert!(
        tracks
            .iter()
            .any(|t| t["codec"] == "opus" && t["lost"].as_u64() > Some(0)),
        "{source}"
    );
    assert!(s.metric("corecast_whip_packets_in_total") > 0);
    assert!(s.metric("corecast_whip_packets_lost_total") > 0);
    // The publisher was told the most it may send (REMB, webrtc.whip_max_bitrate).
    assert!(stats.rembs > 0, "{stats:?}");
    assert_eq!(stats.remb_bps, Some(6_000_000));
}

/// A WHIP publisher (the project's client) of the recorded video on its own thread until
/// told to stop, reporting the PLIs it counted every 100 ms.
struct PliPublisher {
    thread: std::thread::JoinHandle<()>,
    plis: std::sync::mpsc::Receiver<u64>,
    stop: std::sync::mpsc::Sender<()>,
}

impl PliPublisher {
    fn start(s: &Server, path: &'static str) -> PliPublisher {
        let http = s.http;
        let (tx, plis) = std::sync::mpsc::channel::<u64>();
        let (stop, done) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let (mut p, video, fps) = recorded_publisher(http, path);
            let deadline = Instant::now() + Duration::from_secs(40);
            while done.try_recv().is_err() && Instant::now() < deadline {
                p.publish_for(Duration::from_millis(100), &video, fps, None)
                    .expect("publish");
                let _ = tx.send(p.stats().plis);
            }
            let _ = p.close();
        });
        wait_tracks(s, path, false);
        PliPublisher { thread, plis, stop }
    }

    /// The latest PLI count reported.
    fn plis(&self) -> u64 {
        self.plis.try_iter().last().expect("publisher running")
    }

    fn finish(self) {
        let _ = self.stop.send(());
        self.thread.join().expect("publisher thread");
    }
}

/// One PLI from viewer `v` raises the publisher's count by exactly one.
fn one_pli_arrives(v: &mut corecast_client::WhepViewer, p: &PliPublisher) {
    v.run_for(Duration::from_secs(3)).expect("run");
    let before = p.plis();
    assert!(v.peer_mut().request_keyframe(), "PLI written");
    v.run_for(Duration::from_secs(2)).expect("run");
    let after = p.plis();
    assert_eq!(
        after,
        before + 1,
        "PLIs at the publisher: {before} then {after}"
    );
}

#[test]
fn a_viewers_keyframe_request_reaches_the_publisher_as_one_pli() {
    let s = Server::start(
        "whip-pli",
        &test_config("").replace("shards = 2", "shards = 1"),
    );
    let p = PliPublisher::start(&s, "live/pli");
    let mut v = corecast_client::WhepViewer::connect(
        s.http,
        "live/pli",
        corecast_client::ReceiveMode::Full,
        T,
    )
    .expect("whep viewer");
    one_pli_arrives(&mut v, &p);
    p.finish();
    // The publisher's frames are timed from their arrival to the viewer (the only
    // source here, so every observation is of a WHIP frame).
    assert!(s.metric("corecast_frame_latency_seconds_count") > 0);
}

/// The shard of the session listed with `kind` (and `signaling`) on `path`.
fn shard_of(s: &Server, kind: &str, signaling: &str, path: &str) -> Option<u64> {
    let list = s.get("/api/v1/sessions").body_text();
    let v: serde_json::Value = serde_json::from_str(&list).ok()?;
    let sessions = v["sessions"].as_array()?.clone();
    sessions
        .iter()
        .find(|e| e["kind"] == kind && e["signaling"] == signaling && e["path"] == path)
        .and_then(|e| e["shard"].as_u64())
}

#[test]
fn a_viewer_on_another_shard_reaches_the_publisher_too() {
    let s = Server::start("whip-pli-relay", &test_config(""));
    let p = PliPublisher::start(&s, "live/relay");
    let home = shard_of(&s, "publisher", "whip", "live/relay").expect("publisher listed");
    // Connections land on either shard: keep the first viewer that landed on the other.
    let mut viewer = None;
    for _ in 0..16 {
        let v = corecast_client::WhepViewer::connect(
            s.http,
            "live/relay",
            corecast_client::ReceiveMode::Full,
            T,
        )
        .expect("whep viewer");
        // The one viewer listed (the others were ended with DELETE).
        if shard_of(&s, "viewer", "whep", "live/relay").is_some_and(|sh| sh != home) {
            viewer = Some(v);
            break;
        }
        let mut v = v;
        let _ = v.close();
    }
    let mut v = viewer.expect("no viewer landed on the other shard in 16 tries");
    one_pli_arrives(&mut v, &p);
    p.finish();
}
