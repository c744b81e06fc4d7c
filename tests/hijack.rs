//! No path hijacking: while the configured file source `demo` runs, ffmpeg cannot publish
//! `live/demo` (the RTMP name players of `demo` use) nor `demo` itself, and ffprobe of the
//! advertised `rtmp://HOST/live/demo` still gets the demo clip; between published streams,
//! the first of a path and its RTMP name keeps it.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::*;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// ffmpeg publishing a 320x240 test pattern (not the demo clip) at `rtmp://ADDR/`, with
/// the RTMP app and stream name given apart (so that `app` may be empty), for at most
/// 10 s.
fn publish_pattern(addr: std::net::SocketAddr, app: &str, name: &str) -> Child {
    require_tool("ffmpeg");
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi"])
        .args(["-i", "testsrc=size=320x240:rate=25", "-t", "10"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"])
        .args(["-f", "flv", "-rtmp_app", app, "-rtmp_playpath", name])
        .arg(format!("rtmp://{addr}/"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg publisher")
}

/// Waits (bounded) for `child` to exit; its status and stderr.
fn exit_of(mut child: Child, limit: Duration) -> (bool, String) {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait ffmpeg") {
            let out = child.wait_with_output().expect("ffmpeg output");
            return (
                status.success(),
                String::from_utf8_lossy(&out.stderr).into(),
            );
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ffmpeg still publishing after {limit:?}: the publish was not refused");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// ffmpeg's publish of `app/name` fails, and the server's log gives `refusal`.
fn publish_is_refused(s: &Server, app: &str, name: &str, refusal: &str) {
    let (ok, err) = exit_of(publish_pattern(s.rtmp, app, name), Duration::from_secs(20));
    assert!(!ok, "ffmpeg published {app}/{name}: {err}");
    let log = s.log_until(refusal, Duration::from_secs(5));
    assert!(
        log.contains(refusal),
        "no refusal '{refusal}' in the log:\n{log}"
    );
}

/// ffprobe's first video stream at `url`.
fn probe_video(url: &str) -> serde_json::Value {
    ffprobe_json(&["-select_streams", "v:0", "-show_streams", url])["streams"][0].clone()
}

#[test]
fn publishing_over_a_configured_stream_or_its_rtmp_name_is_refused() {
    let s = Server::start("hijack", &test_config(&demo_stream("demo", 0)));
    s.wait_state("demo", Duration::from_secs(10), |st| st == "live");
    let advertised = s.stream("demo")["rtmp_path"].clone();
    assert_eq!(advertised, "live/demo");

    for (app, name, refusal) in [
        (
            "live",
            "demo",
            "'live/demo' is the RTMP name of the configured stream 'demo'",
        ),
        ("", "demo", "'demo' is fed by a configured source"),
    ] {
        publish_is_refused(&s, app, name, refusal);
    }

    // The players of the advertised URL still get the demo clip, not the test pattern.
    let v = probe_video(&format!("rtmp://{}/live/demo", s.rtmp));
    assert_eq!(v["codec_name"], "h264", "{v}");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(1280), Some(720)),
        "{v}"
    );
    assert_eq!(s.stream("live/demo"), serde_json::Value::Null);

    // The same publisher is welcome at a free path.
    let publisher = publish_pattern(s.rtmp, "live", "other");
    let st = s.wait_state("live/other", Duration::from_secs(10), |st| st == "live");
    assert_eq!(st["source"]["kind"], "rtmp");
    let (ok, err) = exit_of(publisher, Duration::from_secs(20));
    assert!(ok, "ffmpeg to a free path: {err}");
}

#[test]
fn a_published_stream_and_its_rtmp_name_exclude_each_other() {
    let s = Server::start("hijack-pub", &test_config(""));
    // Two publishers that got there first: `cam` (no app) and `live/pub`.
    let mut first = Vec::new();
    for (app, key, path) in [("", "cam", "cam"), ("live", "pub", "live/pub")] {
        let mut c = rtmp::after_handshake(s.rtmp);
        c.write_all(&rtmp::publish_commands(app, key))
            .expect("publish");
        let end = Instant::now() + Duration::from_secs(10);
        while s.stream(path).is_null() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!s.stream(path).is_null(), "{path} published");
        first.push(c);
    }
    for (app, name, refusal) in [
        (
            "live",
            "cam",
            "'live/cam' is the RTMP name of the published stream 'cam'",
        ),
        (
            "",
            "pub",
            "'pub' would be played over RTMP as 'live/pub', which is a published stream",
        ),
    ] {
        publish_is_refused(&s, app, name, refusal);
    }
    assert_eq!(s.stream("live/cam"), serde_json::Value::Null);
    assert_eq!(s.stream("pub"), serde_json::Value::Null);
    drop(first);
}
