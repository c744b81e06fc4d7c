//! RTSP camera ingest against a real camera stand-in (GStreamer's RTSP server, started by
//! tests/camera/rtsp_camera.py): TCP and UDP pulls reach WebRTC (WHEP) and RTMP viewers,
//! Basic and Digest authentication, wrong credentials, camera restarts, on-demand pulls,
//! the automatic UDP → TCP fallback and an H.265 camera.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::camera::{Camera, CameraOpts};
use common::{Server, require_tool, test_config};
use corecast_client::{ReceiveMode, TrackKind, WhepViewer};
use serde_json::Value;
use std::time::{Duration, Instant};

/// A `[[streams]]` entry pulling `url`, with extra keys.
fn cam_stream(path: &str, url: &str, extra: &str) -> String {
    format!("[[streams]]\npath = \"{path}\"\nsource = \"{url}\"\n{extra}\n")
}

fn wait_live(s: &Server, path: &str) -> Value {
    s.wait_state(path, Duration::from_secs(20), |st| st == "live")
}

/// ffprobe's view of the RTMP play path of `path`: (codec, width, height) per stream.
fn ffprobe_rtmp(s: &Server, path: &str) -> Vec<(String, u64, u64)> {
    let st = s.stream(path);
    let play = st["rtmp_path"].as_str().expect("rtmp_path");
    let url = format!("rtmp://{}/{play}", s.rtmp);
    let v = common::ffprobe_json(&["-show_entries", "stream=codec_name,width,height", &url]);
    let mut got: Vec<(String, u64, u64)> = v["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["codec_name"].as_str().unwrap_or("").to_string(),
                s["width"].as_u64().unwrap_or(0),
                s["height"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    got.sort();
    got
}

/// A WHEP viewer (str0m reassembles the frames) for 3 s; returns it for checks.
fn watch(s: &Server, path: &str, secs: u64) -> WhepViewer {
    let mut v = WhepViewer::connect(s.http, path, ReceiveMode::Full, Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("whep {path}: {e:?}\nlog:\n{}", s.drain_log().join("\n")));
    v.run_for(Duration::from_secs(secs)).expect("run");
    v
}

fn video_frames(v: &WhepViewer) -> usize {
    v.frames()
        .iter()
        .filter(|f| f.kind == TrackKind::Video)
        .count()
}

fn audio_frames(v: &WhepViewer) -> usize {
    v.frames()
        .iter()
        .filter(|f| f.kind == TrackKind::Audio)
        .count()
}

#[test]
fn tcp_and_udp_pulls_reach_webrtc_and_rtmp_viewers() {
    require_tool("ffprobe");
    // One mount per stream: GStreamer's shared media can skip a sequence number for a
    // client playing when another one joins, which would make this test about the camera.
    let cam = Camera::start(&CameraOpts {
        mounts: vec!["/a".into(), "/b".into()],
        ..CameraOpts::default()
    });
    let cfg = test_config(&format!(
        "{}{}",
        cam_stream("camtcp", &cam.urls[0], "transport = \"tcp\"\nshard = 0"),
        cam_stream("camudp", &cam.urls[1], "transport = \"udp\"\nshard = 1"),
    ));
    let s = Server::start("rtsp-tcp-udp", &cfg);
    for (path, transport) in [("camtcp", "tcp"), ("camudp", "udp")] {
        let st = wait_live(&s, path);
        let codecs: Vec<&str> = st["tracks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["codec"].as_str())
            .collect();
        // The camera's H.264 and AAC, and the Opus made from the AAC for browsers.
        assert_eq!(codecs, ["h264", "aac", "opus"], "{st}");
        assert_eq!(st["tracks"][2]["transcoded_from"], 1, "{st}");
        assert_eq!(st["tracks"][0]["width"], 640, "{st}");
        assert_eq!(st["tracks"][0]["height"], 360, "{st}");

        let v = watch(&s, path, 3);
        let video = video_frames(&v);
        // 25 fps for 3 s, the GOP cache burst on top.
        assert!(video >= 60, "{path}: {video} video frames");
        let first = v
            .frames()
            .iter()
            .find(|f| f.kind == TrackKind::Video)
            .expect("a video frame");
        assert!(
            first.nal_types.contains(&7)
                && first.nal_types.contains(&8)
                && first.nal_types.contains(&5),
            "{path}: first frame starts a picture: NAL types {:?}",
            first.nal_types
        );
        assert_eq!(v.stats().lost, 0, "{path}: packets lost on loopback");

        // Counters after a few seconds of media (they are published once a second, and
        // a loaded machine may lag: wait, bounded, for the thresholds).
        let st = s.wait_stream(path, |st| {
            let t = &st["source"]["tracks"];
            t[0]["packets"].as_u64().unwrap_or(0) > 100
                && t[0]["frames"].as_u64().unwrap_or(0) > 50
                && t[1]["frames"].as_u64().unwrap_or(0) > 50
        });
        let src = &st["source"];
        assert_eq!(src["kind"], "rtsp", "{st}");
        assert_eq!(src["transport"], transport, "{st}");
        assert!(
            !src["url"].as_str().unwrap_or("").contains('@'),
            "no credentials in the API: {st}"
        );
        let t0 = &src["tracks"][0];
        assert!(t0["packets"].as_u64().unwrap_or(0) > 100, "{st}");
        assert!(t0["frames"].as_u64().unwrap_or(0) > 50, "{st}");
        assert_eq!(t0["lost"], 0, "{st}\n{}", s.drain_log().join("\n"));
        assert!(t0["bitrate"].as_u64().unwrap_or(0) > 20_000, "{st}");
        assert!(
            src["tracks"][1]["frames"].as_u64().unwrap_or(0) > 50,
            "audio frames: {st}"
        );

        let probed = ffprobe_rtmp(&s, path);
        assert_eq!(
            probed,
            [("aac".to_string(), 0, 0), ("h264".to_string(), 640, 360)],
            "{path} over RTMP"
        );
    }
    let metrics = s.get("/metrics").body_text();
    for path in ["camtcp", "camudp"] {
        assert!(
            metrics.contains(&format!(
                "corecast_source_up{{path=\"{path}\",kind=\"rtsp\"}} 1"
            )),
            "{metrics}"
        );
        assert!(
            metrics.contains(&format!(
                "corecast_source_packets_lost_total{{path=\"{path}\",track=\"0\",codec=\"h264\"}} 0"
            )),
            "{metrics}"
        );
    }
    assert!(
        metrics.contains("corecast_rtsp_sessions{shard=\"0\"} 1"),
        "{metrics}"
    );
    // One RTSP connection per stream, never more.
    assert_eq!(cam.connections(), (2, 0));
}

#[test]
fn g711_and_opus_cameras_reach_webrtc_audio() {
    let pcma = Camera::start(&CameraOpts {
        audio: "pcma",
        ..CameraOpts::default()
    });
    let opus = Camera::start(&CameraOpts {
        audio: "opus",
        ..CameraOpts::default()
    });
    let cfg = test_config(&format!(
        "{}{}",
        cam_stream("alaw", &pcma.url, "transport = \"tcp\""),
        cam_stream("opus", &opus.url, "transport = \"tcp\""),
    ));
    let s = Server::start("rtsp-audio", &cfg);
    for (path, codec, rtpmap) in [
        ("alaw", "pcma", "PCMA/8000"),
        ("opus", "opus", "opus/48000/2"),
    ] {
        let st = wait_live(&s, path);
        assert_eq!(st["tracks"][1]["codec"], codec, "{st}");
        let v = watch(&s, path, 3);
        assert!(v.answer().contains(rtpmap), "{path}: answer {}", v.answer());
        let audio = audio_frames(&v);
        assert!(audio >= 60, "{path}: {audio} audio frames in 3 s");
        assert!(video_frames(&v) >= 60, "{path}: video frames");
        assert_eq!(v.stats().lost, 0);
    }
}

#[test]
fn digest_and_basic_auth_and_wrong_credentials() {
    let digest = Camera::start(&CameraOpts {
        audio: "none",
        auth: Some(("digest", "admin".into(), "p@ss:w0rd".into())),
        ..CameraOpts::default()
    });
    let basic = Camera::start(&CameraOpts {
        audio: "none",
        auth: Some(("basic", "viewer".into(), "secret".into())),
        ..CameraOpts::default()
    });
    let cfg = test_config(&format!(
        "{}{}{}{}",
        // Credentials in the URL, percent-encoded.
        cam_stream(
            "digest",
            &digest.url_with_credentials("admin", "p@ss:w0rd"),
            "transport = \"tcp\""
        ),
        // Credentials from the config.
        cam_stream(
            "basic",
            &basic.url,
            "transport = \"tcp\"\nuser = \"viewer\"\npassword = \"secret\""
        ),
        cam_stream(
            "wrong",
            &digest.url_with_credentials("admin", "guess"),
            "transport = \"tcp\""
        ),
        cam_stream("anonymous", &digest.url, "transport = \"tcp\""),
    ));
    let s = Server::start("rtsp-auth", &cfg);
    wait_live(&s, "digest");
    wait_live(&s, "basic");
    let st = s.wait_state("wrong", Duration::from_secs(10), |st| {
        st.contains("retrying")
    });
    let state = st["source"]["state"].as_str().unwrap_or("");
    assert!(
        state.contains("rejected the credentials") && state.contains("admin"),
        "wrong credentials are named as such: {state}"
    );
    let st = s.wait_state("anonymous", Duration::from_secs(10), |st| {
        st.contains("retrying")
    });
    let state = st["source"]["state"].as_str().unwrap_or("");
    assert!(
        state.contains("requires a user name and password"),
        "{state}"
    );
    // A rejected login is not retried at once: within 4 s the wrong stream connected
    // once (it waits rtsp.retry_max before the next try).
    std::thread::sleep(Duration::from_secs(3));
    let st = s.stream("wrong");
    assert_eq!(st["source"]["reconnects"], 0, "{st}");
    // The good ones play.
    let v = watch(&s, "digest", 2);
    assert!(video_frames(&v) >= 40);
    let v = watch(&s, "basic", 2);
    assert!(video_frames(&v) >= 40);
}

#[test]
fn camera_restart_reconnects_and_viewers_resume() {
    let mut cam = Camera::start(&CameraOpts {
        audio: "none",
        ..CameraOpts::default()
    });
    let cfg = test_config(&format!(
        "[rtsp]\nretry_min = \"500ms\"\n{}",
        cam_stream("cam", &cam.url, "transport = \"tcp\"\nshard = 1")
    ));
    let s = Server::start("rtsp-restart", &cfg);
    wait_live(&s, "cam");
    let mut v = WhepViewer::connect(s.http, "cam", ReceiveMode::Full, Duration::from_secs(10))
        .expect("whep");
    v.run_for(Duration::from_secs(2)).expect("run");
    let before = video_frames(&v);
    assert!(before >= 40, "{before} frames before the restart");
    let last_before = v
        .frames()
        .iter()
        .rev()
        .find(|f| f.kind == TrackKind::Video)
        .map(|f| f.rtp_time)
        .expect("a frame");

    // Power cut and back (the server reconnects within rtsp.retry_min).
    cam.restart();
    let end = Instant::now() + Duration::from_secs(10);
    let st = loop {
        let st = s.stream("cam");
        if st["source"]["reconnects"].as_u64().unwrap_or(0) >= 1 && st["source"]["state"] == "live"
        {
            break st;
        }
        assert!(Instant::now() < end, "no reconnect: {st}");
        v.run_for(Duration::from_millis(100)).expect("run");
    };
    assert_eq!(
        st["source"]["last_error"], "camera closed the connection",
        "{st}"
    );
    assert_eq!(cam.plays(), 1, "the new camera process was played once");

    // The same viewer (no new offer) gets pictures again, from a keyframe, with time
    // moving forward.
    v.run_for(Duration::from_secs(4)).expect("run");
    let after: Vec<_> = v
        .frames()
        .iter()
        .filter(|f| f.kind == TrackKind::Video)
        .skip(before)
        .collect();
    assert!(
        after.len() >= 50,
        "{} frames after the restart",
        after.len()
    );
    // The new session's first frame is the first after a jump in time: the camera is
    // away for at least rtsp.retry_min (500 ms) and the timeline resumes past the outage,
    // while the old session's last frames (in flight when `before` was counted) follow
    // their predecessors by one frame interval.
    let video: Vec<_> = v
        .frames()
        .iter()
        .filter(|f| f.kind == TrackKind::Video)
        .collect();
    let first = video[before - 1..]
        .windows(2)
        .find(|w| w[1].rtp_time - w[0].rtp_time > 9_000)
        .map(|w| w[1])
        .expect("frames after the restart, past the outage");
    assert!(
        first.nal_types.contains(&5),
        "resumes at a keyframe: {:?}",
        first.nal_types
    );
    assert!(
        after.windows(2).all(|w| w[1].rtp_time >= w[0].rtp_time),
        "timestamps never go back"
    );
    assert!(
        after.iter().all(|f| f.rtp_time > last_before),
        "timestamps continue past the old session"
    );
    assert_eq!(v.close().expect("delete"), 200);
}

#[test]
fn on_demand_pulls_only_while_watched() {
    let cam = Camera::start(&CameraOpts {
        audio: "none",
        ..CameraOpts::default()
    });
    let cfg = test_config(&cam_stream(
        "lobby",
        &cam.url,
        "transport = \"tcp\"\non_demand = true\non_demand_close_after = \"1s\"\nshard = 0",
    ));
    let mut s = Server::start("rtsp-on-demand", &cfg);
    // Listed, idle, and no connection to the camera.
    let st = s.wait_state("lobby", Duration::from_secs(5), |st| st == "idle");
    assert_eq!(st["tracks"], serde_json::json!([]), "{st}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        cam.connections(),
        (0, 0),
        "no RTSP connection before a viewer"
    );

    // The first viewer's offer waits for the camera's media, then plays. Viewers on both
    // shards: one owner-local, one relayed.
    let t = Instant::now();
    let mut v = WhepViewer::connect(s.http, "lobby", ReceiveMode::Full, Duration::from_secs(15))
        .expect("whep");
    let waited = t.elapsed();
    v.run_for(Duration::from_secs(2)).expect("run");
    assert!(video_frames(&v) >= 30, "{} frames", video_frames(&v));
    assert!(
        v.frames()
            .iter()
            .find(|f| f.kind == TrackKind::Video)
            .is_some_and(|f| f.nal_types.contains(&5)),
        "starts at a keyframe"
    );
    assert_eq!(cam.connections().0, 1, "one RTSP connection while watched");
    assert_eq!(s.stream("lobby")["source"]["state"], "live");
    assert!(
        waited < Duration::from_secs(10),
        "offer answered in {waited:?}"
    );

    // The last viewer leaves: the camera is released after on_demand_close_after.
    assert_eq!(v.close().expect("delete"), 200);
    cam.wait_connections(Duration::from_secs(6), |opened, closed| {
        opened == 1 && closed == 1
    });
    assert_eq!(cam.teardowns(), 1, "the camera was released with TEARDOWN");
    s.wait_state("lobby", Duration::from_secs(3), |st| st == "idle");

    // And it comes back for the next viewer.
    let mut v = WhepViewer::connect(s.http, "lobby", ReceiveMode::Full, Duration::from_secs(15))
        .expect("whep again");
    v.run_for(Duration::from_secs(1)).expect("run");
    assert!(video_frames(&v) >= 10);
    assert_eq!(cam.connections().0, 2);

    // Shutdown tears the camera session down too.
    drop(v);
    assert_eq!(s.stop(), 0);
    cam.wait_connections(Duration::from_secs(5), |_, closed| closed == 2);
    assert_eq!(cam.teardowns(), 2, "TEARDOWN at shutdown");
}

/// A fake RTSP server that answers every request with `302` to `to`; counts requests.
fn redirector(to: String) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().take(4) {
            let Ok(mut conn) = conn else { return };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let Ok(clone) = conn.try_clone() else { return };
            let mut r = BufReader::new(clone);
            let mut cseq = String::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let line = line.trim_end();
                if let Some(v) = line.strip_prefix("CSeq:") {
                    cseq = v.trim().to_string();
                }
                if line.is_empty() {
                    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let reply =
                        format!("RTSP/1.0 302 Moved\r\nCSeq: {cseq}\r\nLocation: {to}\r\n\r\n");
                    if conn.write_all(reply.as_bytes()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    (port, count)
}

#[test]
fn auto_transport_falls_back_to_tcp_and_unreachable_cameras_retry() {
    // One mount per stream: GStreamer's shared media misbehaves when a second client
    // joins a mount that is playing (it was seen to drop both clients and exit).
    let cam = Camera::start(&CameraOpts {
        audio: "none",
        protocols: "tcp",
        mounts: CameraOpts::numbered_mounts(2),
        ..CameraOpts::default()
    });
    let (auto_url, moved_target) = (cam.urls[0].clone(), cam.urls[1].clone());
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_port = dead.local_addr().expect("addr").port();
    drop(dead);
    let (moved_port, moved) = redirector(moved_target);
    let cfg = test_config(&format!(
        "{}{}{}",
        cam_stream("auto", &auto_url, "transport = \"auto\""),
        cam_stream("dead", &format!("rtsp://127.0.0.1:{dead_port}/cam"), ""),
        cam_stream(
            "moved",
            &format!("rtsp://127.0.0.1:{moved_port}/old"),
            "transport = \"tcp\""
        ),
    ));
    let s = Server::start("rtsp-auto", &cfg);
    let st = wait_live(&s, "auto");
    assert_eq!(st["source"]["transport"], "tcp", "{st}");
    // A 302 is followed to the camera.
    let st = wait_live(&s, "moved");
    assert_eq!(st["tracks"][0]["codec"], "h264", "{st}");
    assert!(moved.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    let st = s.wait_state("dead", Duration::from_secs(5), |st| st.contains("retrying"));
    assert!(
        st["source"]["state"]
            .as_str()
            .unwrap_or("")
            .contains("cannot connect"),
        "{st}"
    );
    // Backoff 1 s, 2 s, 4 s: within 4 s at most 3 attempts.
    std::thread::sleep(Duration::from_secs(4));
    let st = s.stream("dead");
    let reconnects = st["source"]["reconnects"].as_u64().unwrap_or(99);
    assert!((1..=3).contains(&reconnects), "{st}");
}

#[test]
fn h265_camera_reaches_webrtc() {
    let cam = Camera::start(&CameraOpts {
        video: "h265",
        audio: "none",
        ..CameraOpts::default()
    });
    let cfg = test_config(&cam_stream("hevc", &cam.url, "transport = \"udp\""));
    let s = Server::start("rtsp-h265", &cfg);
    let st = wait_live(&s, "hevc");
    assert_eq!(st["tracks"][0]["codec"], "h265", "{st}");
    assert_eq!(st["tracks"][0]["width"], 640, "{st}");
    assert_eq!(st["tracks"][0]["height"], 360, "{st}");
    assert_eq!(st["tracks"][0]["profile"], "Main", "{st}");
    let v = watch(&s, "hevc", 3);
    assert!(v.answer().contains("H265/90000"), "answer: {}", v.answer());
    let frames = video_frames(&v);
    assert!(frames >= 60, "{frames} H.265 frames in 3 s");
    assert!(v.stats().keyframes >= 1 || v.stats().frames >= 60);
    assert_eq!(v.stats().lost, 0);
}
