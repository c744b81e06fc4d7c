//! The MSE endpoint `/mse/{path}` with real encoders and an independent reader: ffmpeg
//! publishes H.264 High with B-frames and AAC over RTMP, a WebSocket client (tungstenite)
//! plays it, and ffprobe reads the init segment and fragments it got. Also: bad messages
//! get clear errors, refusals come before the upgrade, and a viewer that stops reading is
//! dropped to the next keyframe without disturbing another.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::{
    Server, ffmpeg_publish_loop, ffprobe_json, request, require_tool, test_config, x264_aac_clip,
};
use serde_json::Value;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<TcpStream>;

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("corecast-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        TempDir(d)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Publishes `file` in a loop to `live/{name}` and waits until the API lists its B-frames.
fn publish(s: &Server, file: &Path, name: &str) -> Killed {
    let url = format!("rtmp://{}/live/{name}", s.rtmp);
    let p = Killed(ffmpeg_publish_loop(file, &[], &url));
    let listed = s.wait_stream(&format!("live/{name}"), |v| {
        v["tracks"][0]["bframes"] == true && v["playback"] == "mse"
    });
    assert_eq!(listed["tracks"][0]["codec"], "h264");
    p
}

fn connect(http: SocketAddr, path: &str) -> Ws {
    let stream = TcpStream::connect(http).expect("tcp connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let (ws, _) = tungstenite::client::client(format!("ws://{http}/mse/{path}"), stream)
        .expect("ws handshake");
    ws
}

fn text(msg: &Message) -> Option<Value> {
    match msg {
        Message::Text(t) => serde_json::from_str(t.as_str()).ok(),
        _ => None,
    }
}

/// Reads the `init` message and the init segment after it.
fn read_init(ws: &mut Ws) -> (Value, Vec<u8>) {
    let first = ws.read().expect("init message");
    let init = text(&first).unwrap_or_else(|| panic!("first message is not JSON: {first:?}"));
    assert_eq!(init["type"], "init", "{init}");
    match ws.read().expect("init segment") {
        Message::Binary(b) => (init, b.to_vec()),
        other => panic!("expected the init segment, got {other:?}"),
    }
}

/// Reads binary messages for `d`; returns them with when each arrived.
fn read_for(ws: &mut Ws, d: Duration) -> Vec<(Instant, Vec<u8>)> {
    let end = Instant::now() + d;
    let mut got = Vec::new();
    while Instant::now() < end {
        match ws.read() {
            Ok(Message::Binary(b)) => got.push((Instant::now(), b.to_vec())),
            Ok(Message::Text(t)) => panic!("unexpected text message: {t}"),
            Ok(_) => {}
            Err(e) => panic!("ws read: {e}"),
        }
    }
    got
}

/// A packet as ffprobe shows it: pts, dts and duration in seconds, and whether it is a
/// keyframe.
type Packet = (f64, f64, f64, bool);

/// ffprobe's description of `file` and its packets per stream, in file order.
fn packets(file: &Path) -> (Value, Vec<Vec<Packet>>) {
    let f = file.to_str().expect("utf8");
    let v = ffprobe_json(&["-show_packets", "-show_streams", f]);
    let streams = v["streams"].as_array().expect("streams").len();
    let mut per = vec![Vec::new(); streams];
    for p in v["packets"].as_array().expect("packets") {
        let num = |k: &str| {
            p[k].as_str()
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        let i = p["stream_index"].as_u64().expect("index") as usize;
        let key = p["flags"].as_str().is_some_and(|f| f.contains('K'));
        per[i].push((num("pts_time"), num("dts_time"), num("duration_time"), key));
    }
    (v, per)
}

fn index_of(v: &Value, kind: &str) -> usize {
    v["streams"]
        .as_array()
        .and_then(|a| a.iter().position(|s| s["codec_type"] == kind))
        .unwrap_or_else(|| panic!("no {kind} stream: {v}"))
}

#[test]
fn an_mse_viewer_gets_fragments_that_ffprobe_reads_in_order() {
    require_tool("ffprobe");
    let dir = TempDir::new("mse");
    let s = Server::start("mse", &test_config(""));
    for (name, x264) in [
        ("bf2", &["-bf", "2"][..]),
        ("bf3", &["-bf", "3", "-b_strategy", "2"][..]),
    ] {
        // Longer than what is read, so that no loop of the publisher's file (whose seam
        // need not be one frame long) falls into it.
        let clip = x264_aac_clip(
            &dir.0.join(format!("{name}.flv")),
            "640x360",
            10,
            &[&["-g", "30"], x264].concat(),
        );
        let _publisher = publish(&s, &clip, name);
        let mut ws = connect(s.http, &format!("live/{name}"));
        let (init, segment) = read_init(&mut ws);
        let codecs = init["codecs"].as_str().unwrap_or_default();
        assert!(
            codecs.starts_with("avc1.64") && codecs.ends_with(",mp4a.40.2"),
            "codecs {codecs}: High profile H.264 and AAC-LC expected"
        );
        assert_eq!(init["mime"], format!("video/mp4; codecs=\"{codecs}\""));
        assert_eq!(init["tracks"].as_array().map(Vec::len), Some(2), "{init}");
        let fragments = read_for(&mut ws, Duration::from_secs(3));
        let out = dir.0.join(format!("{name}.mp4"));
        let mut all = segment.clone();
        for (_, f) in &fragments {
            all.extend_from_slice(f);
        }
        std::fs::write(&out, &all).expect("write");
        let (v, per) = packets(&out);
        let (vi, ai) = (index_of(&v, "video"), index_of(&v, "audio"));
        let stream = &v["streams"][vi];
        assert_eq!(stream["codec_name"], "h264");
        assert_eq!(stream["profile"], "High");
        assert_eq!(
            (stream["width"].as_u64(), stream["height"].as_u64()),
            (Some(640), Some(360))
        );
        assert_eq!(v["streams"][ai]["codec_name"], "aac");
        // Every fragment is one frame: ffprobe sees as many packets as fragments came.
        let (video, audio) = (&per[vi], &per[ai]);
        assert_eq!(video.len() + audio.len(), fragments.len(), "{name}");
        // The GOP cache plus 3 s of live frames at 30 fps, and ~47 AAC frames a second.
        assert!(video.len() >= 80, "{name}: {} video frames", video.len());
        assert!(audio.len() >= 120, "{name}: {} audio frames", audio.len());
        // Video starts at a keyframe, and every 30th frame is one (-g 30).
        assert!(
            video[0].3,
            "{name}: the first video frame is not a keyframe"
        );
        let keys: Vec<usize> = (0..video.len()).filter(|&i| video[i].3).collect();
        assert!(
            keys.windows(2).all(|w| w[1] - w[0] == 30),
            "{name}: keyframes at {keys:?}"
        );
        // B-frames: presentation order differs from decode order; decode times only grow
        // by a frame; sorted presentation times step by one frame too.
        let frame = 1.0 / 30.0;
        assert!(
            video.windows(2).any(|w| w[1].0 < w[0].0),
            "{name}: pts never go back (no B-frames?)"
        );
        assert!(
            video
                .windows(2)
                .all(|w| ((w[1].1 - w[0].1) - frame).abs() < 0.002),
            "{name}: dts do not step by one frame: {:?}",
            video.iter().map(|p| p.1).collect::<Vec<_>>()
        );
        assert!(
            video.iter().all(|p| (p.2 - frame).abs() < 0.002),
            "{name}: durations other than one frame"
        );
        assert!(video.iter().all(|p| p.0 >= p.1 - 1e-6), "{name}: pts < dts");
        let mut pts: Vec<f64> = video.iter().map(|p| p.0).collect();
        pts.sort_by(f64::total_cmp);
        // The last frames of a GOP may still wait for their reference (cut off at the end).
        let even = pts
            .windows(2)
            .filter(|w| ((w[1] - w[0]) - frame).abs() < 0.002)
            .count();
        assert!(
            even >= pts.len() - 4,
            "{name}: pts not evenly spaced: {pts:?}"
        );
        // AAC frames: 1024 samples at 48 kHz each, in order.
        assert!(
            audio
                .windows(2)
                .all(|w| ((w[1].1 - w[0].1) - 1024.0 / 48000.0).abs() < 0.001),
            "{name}: audio dts do not step by 1024 samples"
        );
        // The GOP cache came at once: the first fragments arrived together.
        let t0 = fragments[0].0;
        let burst = fragments
            .iter()
            .take_while(|(t, _)| t.duration_since(t0) < Duration::from_millis(100))
            .count();
        assert!(
            burst > 10,
            "{name}: only {burst} fragments in the first 100 ms"
        );
        let _ = ws.close(None);
    }
}

#[test]
fn the_endpoint_refuses_before_the_upgrade_and_answers_bad_messages_with_errors() {
    let dir = TempDir::new("mse-bad");
    let s = Server::start("mse-bad", &test_config(""));
    let clip = x264_aac_clip(
        &dir.0.join("bf.flv"),
        "320x240",
        2,
        &["-g", "30", "-bf", "2"],
    );
    let _publisher = publish(&s, &clip, "bad");
    // No such stream: 404 before any upgrade; no upgrade: 426; foreign page: 403.
    let upgrade = |path: &str, extra: &str| {
        request(
            s.http,
            &format!(
                "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n",
                s.http
            ),
        )
    };
    let r = upgrade("/mse/live/none", "");
    assert_eq!(r.status, 404, "{}", r.body_text());
    assert!(r.body_text().contains("live/none"), "{}", r.body_text());
    let r = upgrade("/mse/live/bad", "Origin: http://evil.example\r\n");
    assert_eq!(r.status, 403, "{}", r.body_text());
    let r = request(
        s.http,
        &format!("GET /mse/live/bad HTTP/1.1\r\nHost: {}\r\n\r\n", s.http),
    );
    assert_eq!(r.status, 426, "{}", r.body_text());

    let mut ws = connect(s.http, "live/bad");
    let _ = read_init(&mut ws);
    let reply = |ws: &mut Ws, msg: &str| -> Value {
        ws.send(Message::text(msg)).expect("send");
        for _ in 0..2000 {
            if let Some(v) = text(&ws.read().expect("read")) {
                return v;
            }
        }
        panic!("no answer to {msg}");
    };
    let v = reply(&mut ws, "hello");
    assert_eq!(v["type"], "error", "{v}");
    assert!(
        v["message"].as_str().unwrap_or("").contains("\"type\""),
        "{v}"
    );
    let v = reply(&mut ws, r#"{"type":"play","stream":"x"}"#);
    assert_eq!(v["type"], "error", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("unknown message type 'play'"),
        "{v}"
    );
    let v = reply(&mut ws, r#"{"type":"ping"}"#);
    assert_eq!(v["type"], "pong", "{v}");
    // Binary data: an error, then the socket closes with 1003.
    ws.send(Message::binary(vec![1u8, 2, 3])).expect("send");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut error = None;
    let code = loop {
        assert!(
            Instant::now() < deadline,
            "the socket stayed open after binary data"
        );
        match ws.read() {
            Ok(Message::Close(Some(frame))) => break u16::from(frame.code),
            Ok(m) => {
                if let Some(v) = text(&m) {
                    error = Some(v);
                }
            }
            Err(tungstenite::Error::ConnectionClosed) => break 0,
            Err(e) => panic!("read: {e}"),
        }
    };
    assert_eq!(code, 1003);
    let error = error.expect("an error message before the close");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or("")
            .contains("no binary"),
        "{error}"
    );
    // The server is fine: a new viewer plays.
    let mut again = connect(s.http, "live/bad");
    let _ = read_init(&mut again);
    assert!(!read_for(&mut again, Duration::from_millis(500)).is_empty());
}

#[test]
fn a_viewer_that_stops_reading_resumes_at_a_keyframe_and_another_is_not_disturbed() {
    require_tool("ffprobe");
    let dir = TempDir::new("mse-stall");
    let config = test_config("[media]\ngop_max_frames = 60\nsink_max_frames = 90\n");
    let s = Server::start("mse-stall", &config);
    // A high bitrate fills the stalled viewer's socket buffers quickly.
    let clip = x264_aac_clip(
        &dir.0.join("stall.flv"),
        "640x360",
        4,
        &["-g", "30", "-bf", "2", "-b:v", "4M"],
    );
    let _publisher = publish(&s, &clip, "stall");
    // The stalled viewer's receive buffer is small, so the server's writes block soon.
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.set_recv_buffer_size(4096).expect("rcvbuf");
    sock.connect(&s.http.into()).expect("connect");
    let stream: TcpStream = sock.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let (mut stalled, _) =
        tungstenite::client::client(format!("ws://{}/mse/live/stall", s.http), stream)
            .expect("handshake");
    let (_, segment) = read_init(&mut stalled);
    let mut healthy = connect(s.http, "live/stall");
    let _ = read_init(&mut healthy);
    // The stalled one reads nothing for 6 s; the healthy one keeps getting frames.
    let got = read_for(&mut healthy, Duration::from_secs(6));
    let gaps = got
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0))
        .max()
        .unwrap_or_default();
    assert!(
        got.len() > 300,
        "the healthy viewer got {} fragments in 6 s",
        got.len()
    );
    assert!(
        gaps < Duration::from_secs(1),
        "the healthy viewer waited {gaps:?}"
    );
    // It reads again: what it gets decodes from a keyframe after the gap.
    let resumed = read_for(&mut stalled, Duration::from_secs(3));
    let out = dir.0.join("stalled.mp4");
    let mut all = segment;
    for (_, f) in &resumed {
        all.extend_from_slice(f);
    }
    std::fs::write(&out, &all).expect("write");
    let (v, per) = packets(&out);
    let video = &per[index_of(&v, "video")];
    let jump = video
        .windows(2)
        .position(|w| w[1].1 - w[0].1 > 0.5)
        .unwrap_or_else(|| panic!("no gap in the stalled viewer's frames: {video:?}"));
    assert!(
        video[jump + 1].3,
        "the first frame after the gap is not a keyframe: {:?}",
        &video[jump..(jump + 3).min(video.len())]
    );
    assert!(video.len() > jump + 30, "few frames after the gap");
    // The server counted the stalled viewer's drops (management API, protocol mse).
    let sessions = s.get_json("/api/v1/sessions");
    let dropped: Vec<u64> = sessions["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter(|x| x["protocol"] == "mse")
        .filter_map(|x| x["frames_dropped"].as_u64())
        .collect();
    assert_eq!(dropped.len(), 2, "{sessions}");
    assert!(
        dropped.iter().any(|&d| d > 0),
        "no drops counted: {sessions}"
    );
}
