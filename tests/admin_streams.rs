//! Streams managed at runtime: added, changed and removed through `/api/v1/streams`, and
//! by editing the config file and sending SIGHUP, against real clients (the GStreamer
//! camera stand-in, WHEP viewers, ffmpeg/ffprobe over RTMP).
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::camera::{Camera, CameraOpts};
use common::{Server, demo_stream, root, test_config};
use corecast_client::{ReceiveMode, TrackKind, WhepViewer, http};
use serde_json::{Value, json};
use std::process::Child;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// `method path` with a JSON body; (status, body as JSON or Null, Location).
fn call(s: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value, String) {
    let text = body.map(|b| b.to_string());
    let body = text.as_deref().map(|t| ("application/json", t.as_bytes()));
    let r = http::request(s.http, method, path, &[], body, T)
        .unwrap_or_else(|e| panic!("{method} {path}: {e:?}"));
    let json = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let location = r.header("Location").unwrap_or_default().to_string();
    (r.status, json, location)
}

fn demo_file() -> String {
    format!("file:{}", root().join("configs/media/demo.flv").display())
}

fn video_frames(v: &WhepViewer) -> usize {
    v.frames()
        .iter()
        .filter(|f| f.kind == TrackKind::Video)
        .count()
}

fn whep(s: &Server, path: &str) -> WhepViewer {
    WhepViewer::connect(s.http, path, ReceiveMode::Full, Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("whep {path}: {e:?}\nlog:\n{}", s.drain_log().join("\n")))
}

/// Runs `v` until it has `n` more video frames than now (bounded); true if it got them.
fn more_frames(v: &mut WhepViewer, n: usize, within: Duration) -> bool {
    let start = video_frames(v);
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let _ = v.run_for(Duration::from_millis(200));
        if video_frames(v) >= start + n {
            return true;
        }
    }
    false
}

/// ffprobe's codecs of the RTMP play path of `path`.
fn rtmp_codecs(s: &Server, path: &str) -> Vec<String> {
    let play = s.stream(path)["rtmp_path"]
        .as_str()
        .expect("rtmp_path")
        .to_string();
    let url = format!("rtmp://{}/{play}", s.rtmp);
    let v = common::ffprobe_json(&["-show_entries", "stream=codec_name", &url]);
    let mut c: Vec<String> = v["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["codec_name"].as_str().map(str::to_string))
        .collect();
    c.sort();
    c
}

fn exited_within(c: &mut Child, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    let _ = c.wait();
    false
}

fn config_file(s: &Server) -> std::path::PathBuf {
    s.dir.join("corecast.toml")
}

const HEADER: &str = "# Site config: cameras of building 7.\n";

fn start(tag: &str, streams: &str) -> Server {
    let cfg = format!("{HEADER}{}{streams}", test_config(""));
    Server::start(tag, &cfg)
}

#[test]
fn a_file_source_and_a_camera_added_through_the_api_play_over_whep_and_rtmp() {
    let cam = Camera::start(&CameraOpts::default());
    let s = start("api-add", "");
    let (st, body, loc) = call(
        &s,
        "POST",
        "/api/v1/streams",
        Some(json!({"path": "files/loop", "source": demo_file()})),
    );
    assert_eq!(st, 201, "{body}");
    assert_eq!(loc, "/api/v1/streams/files/loop");
    assert_eq!(body["persisted"], true, "{body}");
    assert_eq!(body["stream"]["source"]["kind"], "file", "{body}");
    let (st, body, _) = call(
        &s,
        "POST",
        "/api/v1/streams",
        Some(json!({"path": "cams/cam7", "source": cam.url, "transport": "tcp"})),
    );
    assert_eq!(st, 201, "{body}");
    s.wait_state("cams/cam7", Duration::from_secs(20), |st| st == "live");
    let (st, one, _) = call(&s, "GET", "/api/v1/streams/cams/cam7", None);
    assert_eq!(st, 200);
    assert_eq!(one["configured"], true);
    assert_eq!(one["config"]["transport"], "tcp", "{one}");
    for path in ["files/loop", "cams/cam7"] {
        let mut v = whep(&s, path);
        assert!(
            more_frames(&mut v, 20, T),
            "{path}: WHEP viewer got no frames"
        );
        assert!(
            rtmp_codecs(&s, path).contains(&"h264".to_string()),
            "{path} over RTMP"
        );
    }
    let file = std::fs::read_to_string(config_file(&s)).expect("config");
    assert!(file.starts_with(HEADER), "comments kept:\n{file}");
    assert!(file.contains("path = \"cams/cam7\""), "{file}");
    assert!(file.contains("transport = \"tcp\""), "{file}");
}

#[test]
fn a_patched_camera_url_moves_the_watching_viewer_to_the_new_camera() {
    let cam_a = Camera::start(&CameraOpts::default());
    let cam_b = Camera::start(&CameraOpts {
        pattern: "smpte",
        ..CameraOpts::default()
    });
    let s = start("api-patch", "");
    let (st, body, _) = call(
        &s,
        "POST",
        "/api/v1/streams",
        Some(json!({"path": "cam", "source": cam_a.url, "transport": "tcp"})),
    );
    assert_eq!(st, 201, "{body}");
    s.wait_state("cam", Duration::from_secs(20), |st| st == "live");
    let mut v = whep(&s, "cam");
    assert!(more_frames(&mut v, 20, T), "frames from camera A");
    let (st, body, _) = call(
        &s,
        "PATCH",
        "/api/v1/streams/cam",
        Some(json!({"source": cam_b.url})),
    );
    assert_eq!(st, 200, "{body}");
    let last_a = v
        .frames()
        .iter()
        .filter(|f| f.kind == TrackKind::Video)
        .map(|f| f.rtp_time)
        .max()
        .unwrap_or(0);
    let seen = v.frames().len();
    // The same session goes on with the new camera's pictures: no new offer.
    assert!(
        more_frames(&mut v, 50, Duration::from_secs(20)),
        "the viewer did not resume on camera B\nlog:\n{}",
        s.drain_log().join("\n")
    );
    assert!(v.peer().closed().is_none(), "the session stayed open");
    // Time goes on across the change of camera: no jump back, none of seconds ahead.
    let after: Vec<i64> = v.frames()[seen..]
        .iter()
        .filter(|f| f.kind == TrackKind::Video)
        .map(|f| f.rtp_time)
        .collect();
    let first_b = after.iter().copied().min().unwrap_or(0);
    assert!(
        first_b >= last_a - 90_000 / 2 && first_b <= last_a + 2 * 90_000,
        "camera B's first frame at {first_b}, camera A's last at {last_a}"
    );
    assert!(cam_b.plays() >= 1, "camera B is pulled");
    cam_a.wait_connections(T, |opened, closed| opened >= 1 && closed == opened);
    let one = s.stream("cam");
    assert!(
        one["source"]["url"]
            .as_str()
            .is_some_and(|u| u.contains(&format!(":{}", cam_b.port))),
        "{one}"
    );
    let file = std::fs::read_to_string(config_file(&s)).expect("config");
    assert!(
        file.contains(&format!("source = \"{}\"", cam_b.url)),
        "{file}"
    );
    assert!(file.contains("transport = \"tcp\""), "{file}");
    assert!(!file.contains(&cam_a.url), "{file}");
}

#[test]
fn deleting_a_stream_ends_its_viewers_and_frees_the_path() {
    let s = start("api-delete", &demo_stream("keep", 0));
    let (st, body, _) = call(
        &s,
        "POST",
        "/api/v1/streams",
        Some(json!({"path": "live/gone", "source": demo_file(), "shard": 1})),
    );
    assert_eq!(st, 201, "{body}");
    let mut v = whep(&s, "live/gone");
    assert!(more_frames(&mut v, 10, T));
    let mut player = common::ffmpeg_player(&format!("rtmp://{}/live/gone", s.rtmp));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        player.try_wait().expect("player").is_none(),
        "the RTMP player plays"
    );
    let (st, body, _) = call(&s, "DELETE", "/api/v1/streams/live/gone", None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["persisted"], true);
    // The WebRTC viewer's session is closed by the server, the RTMP player ends.
    let deadline = Instant::now() + T;
    while v.peer().closed().is_none() && Instant::now() < deadline {
        let _ = v.run_for(Duration::from_millis(200));
    }
    assert!(
        v.peer().closed().is_some(),
        "the WHEP viewer's session was not closed"
    );
    assert!(exited_within(&mut player, T), "the RTMP player did not end");
    // The streams API reads the shards' snapshots, which follow a change within their
    // next 50 ms tick.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut st = 0;
    while Instant::now() < deadline {
        st = call(&s, "GET", "/api/v1/streams/live/gone", None).0;
        if st == 404 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(st, 404);
    let file = std::fs::read_to_string(config_file(&s)).expect("config");
    assert!(!file.contains("live/gone"), "{file}");
    assert!(file.starts_with(HEADER));
    // The path is free: a publisher may take it.
    let mut publisher = common::ffmpeg_publish_loop(
        &root().join("configs/media/demo.flv"),
        &[],
        &format!("rtmp://{}/live/gone", s.rtmp),
    );
    s.wait_stream("live/gone", |st| st["source"]["kind"] == "rtmp");
    let _ = publisher.kill();
    let _ = publisher.wait();
    // The stream configured in the file was not touched.
    assert_eq!(s.stream("keep")["source"]["state"], "live");
}

#[test]
fn bad_requests_get_the_config_files_messages() {
    let s = start("api-errors", &demo_stream("demo", 0));
    let post = |body: Value| call(&s, "POST", "/api/v1/streams", Some(body));
    let (st, b, _) = post(json!({"path": "cams/cam7", "source": "http://x/y"}));
    assert_eq!(st, 400);
    let e = b["error"].as_str().unwrap_or_default();
    assert!(
        e.starts_with("streams[cams/cam7].source: unsupported source 'http'"),
        "{b}"
    );
    let (st, b, _) = post(json!({"path": "x", "source": demo_file(), "transport": "tcp"}));
    assert_eq!(st, 400);
    assert_eq!(
        b["error"], "streams[x].transport: applies to rtsp:// sources only",
        "{b}"
    );
    let (st, b, _) = post(json!({"path": "x", "source": demo_file(), "colour": "red"}));
    assert_eq!(st, 400);
    assert!(
        b["error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown field `colour`")),
        "{b}"
    );
    let (st, b, _) = post(json!({"path": "demo", "source": demo_file()}));
    assert_eq!(st, 409, "{b}");
    let (st, b, _) = post(json!({"path": "live/demo", "source": demo_file()}));
    assert_eq!(st, 400, "the alias rule: {b}");
    let (st, b, _) = call(&s, "PATCH", "/api/v1/streams/nope", Some(json!({})));
    assert_eq!(st, 404, "{b}");
    let (st, b, _) = call(
        &s,
        "PATCH",
        "/api/v1/streams/demo",
        Some(json!({"path": "demo2"})),
    );
    assert_eq!(st, 400, "{b}");
    let (st, _, _) = call(&s, "DELETE", "/api/v1/streams/nope", None);
    assert_eq!(st, 404);
    let r = http::request(
        s.http,
        "POST",
        "/api/v1/streams",
        &[],
        Some(("text/plain", b"{}")),
        T,
    )
    .expect("post");
    assert_eq!(r.status, 415);
    // A path a publisher holds cannot get a source.
    let mut publisher = common::ffmpeg_publish_loop(
        &root().join("configs/media/demo.flv"),
        &[],
        &format!("rtmp://{}/live/pushed", s.rtmp),
    );
    s.wait_stream("live/pushed", |st| st["source"]["kind"] == "rtmp");
    let (st, b, _) = post(json!({"path": "live/pushed", "source": demo_file()}));
    assert_eq!(st, 409, "{b}");
    let _ = publisher.kill();
    let _ = publisher.wait();
    // None of it reached the file or the running streams.
    let file = std::fs::read_to_string(config_file(&s)).expect("config");
    assert_eq!(file.matches("[[streams]]").count(), 1, "{file}");
    assert_eq!(s.stream("demo")["source"]["state"], "live");
}

#[test]
fn with_persist_off_changes_live_until_restart() {
    let cfg = format!("{}[api]\npersist = false\n", test_config(""));
    let s = Server::start("api-nopersist", &cfg);
    let before = std::fs::read_to_string(config_file(&s)).expect("config");
    let (st, b, _) = call(
        &s,
        "POST",
        "/api/v1/streams",
        Some(json!({"path": "temp", "source": demo_file()})),
    );
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["persisted"], false);
    assert!(
        b["message"]
            .as_str()
            .is_some_and(|m| m.contains("until restart")),
        "{b}"
    );
    assert_eq!(b["stream"]["source"]["state"], "live", "{b}");
    assert_eq!(
        std::fs::read_to_string(config_file(&s)).expect("config"),
        before
    );
}

/// Sends SIGHUP to the server.
fn sighup(s: &Server) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(s.child.id() as i32, libc::SIGHUP);
    }
}

#[test]
fn sighup_applies_an_edited_file_and_a_bad_one_changes_nothing() {
    let s = start(
        "reload",
        &format!("{}{}", demo_stream("keep", 0), demo_stream("gone", 1)),
    );
    let mut v = whep(&s, "keep");
    assert!(more_frames(&mut v, 10, T));
    let file = config_file(&s);
    let text = std::fs::read_to_string(&file).expect("config");
    let edited = text
        .replace(&demo_stream("gone", 1), &demo_stream("new", 1))
        .replacen("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\"", 1);
    assert_ne!(edited, text);
    std::fs::write(&file, &edited).expect("edit");
    sighup(&s);
    let log = s.log_until("config reloaded", T);
    assert!(
        log.contains("added=[\"new\"]") && log.contains("removed=[\"gone\"]"),
        "{log}"
    );
    let log = s.log_until("need a restart", T);
    assert!(log.contains("http.listen"), "{log}");
    s.wait_state("new", T, |st| st == "live");
    let (st, _, _) = call(&s, "GET", "/api/v1/streams/gone", None);
    assert_eq!(st, 404);
    // A file with an error is refused whole: "new" stays, "newer" does not come.
    let broken = format!(
        "{edited}[[streams]]\npath = \"newer\"\nsource = \"file:{}\"\n[[streams]]\npath = \"new\"\nsource = \"gopher://x\"\n",
        root().join("configs/media/demo.flv").display()
    );
    std::fs::write(&file, &broken).expect("edit");
    sighup(&s);
    let log = s.log_until("config reload rejected", T);
    assert!(log.contains("streams[new]"), "{log}");
    let (st, b, _) = call(&s, "POST", "/api/v1/config/reload", None);
    assert_eq!(st, 400, "{b}");
    let (st, _, _) = call(&s, "GET", "/api/v1/streams/newer", None);
    assert_eq!(st, 404);
    assert_eq!(s.stream("new")["source"]["state"], "live");
    std::fs::write(&file, &edited).expect("restore");
    let (st, b, _) = call(&s, "POST", "/api/v1/config/reload", None);
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["unchanged"], 2, "{b}");
    // The untouched stream's viewer kept every frame through all of it.
    assert!(more_frames(&mut v, 10, T));
    let cov = v.peer().video_coverage(30.0);
    assert!(
        cov.ratio() >= 0.99 && v.peer().closed().is_none(),
        "the viewer of the untouched stream lost frames: {cov:?}"
    );
}

/// Open file descriptors and resident memory (KiB) of `pid`.
fn fds_and_rss(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (fds, rss)
}

#[test]
fn fifty_streams_added_and_removed_leave_fds_and_memory_at_baseline() {
    let s = start("api-churn", "");
    let pid = s.child.id();
    // Nothing listens on port 1 of 127.0.0.9: the cameras are refused and retried.
    let round = |n: usize| {
        for i in 0..n {
            let source = if i % 2 == 0 {
                demo_file()
            } else {
                "rtsp://127.0.0.9:1/cam".to_string()
            };
            let (st, b, _) = call(
                &s,
                "POST",
                "/api/v1/streams",
                Some(json!({"path": format!("churn/{i}"), "source": source})),
            );
            assert_eq!(st, 201, "{b}");
        }
        for i in 0..n {
            let (st, b, _) = call(&s, "DELETE", &format!("/api/v1/streams/churn/{i}"), None);
            assert_eq!(st, 200, "{b}");
        }
    };
    round(50);
    std::thread::sleep(Duration::from_secs(1));
    let (fds0, rss0) = fds_and_rss(pid);
    for _ in 0..6 {
        round(50);
    }
    // Freed clips (550 KB each) may sit in the allocator until the server's periodic
    // trim (every 30 s) hands them back: wait for it, bounded.
    let deadline = Instant::now() + Duration::from_secs(45);
    let (fds1, rss1) = loop {
        std::thread::sleep(Duration::from_millis(500));
        let (fds, rss) = fds_and_rss(pid);
        if rss <= rss0 + 4096 || Instant::now() > deadline {
            break (fds, rss);
        }
    };
    eprintln!("after 50 streams: {fds0} fds, {rss0} KiB; after 300 more: {fds1} fds, {rss1} KiB");
    assert_eq!(
        fds1, fds0,
        "open descriptors after 300 more streams came and went"
    );
    assert!(
        rss1 <= rss0 + 4096,
        "RSS grew from {rss0} KiB to {rss1} KiB over 300 streams"
    );
    let v = s.get_json("/api/v1/streams");
    assert_eq!(v["streams"].as_array().map(Vec::len), Some(0), "{v}");
    let file = std::fs::read_to_string(config_file(&s)).expect("config");
    assert!(!file.contains("churn/"), "{file}");
}
