//! A stream with B-frames is still played over WebRTC, with a warning: browsers' WebRTC
//! players stutter on B-frames (the page plays such a stream over MSE). WHEP answers 201
//! with a `Warning: 299 corecast "..."` header, `/ws` puts the same text in the answer's
//! `warning`, and the server logs one warning line per session. A stream without
//! B-frames (the demo) gets none of these.
//!
//! The publisher is ffmpeg encoding live with libx264 `-bf 2` over RTMP; the hub marks
//! the track after a few reordered frames, so the tests first wait for the API to list
//! `bframes: true`. The viewer's offer is corecast's own client's.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::*;
use corecast_client::{ReceiveMode, WhepPeer, http};
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Kills the child on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// ffmpeg encoding 320x240 test video live with two B-frames between references and
/// publishing it over RTMP to `url`.
fn publish_bframes(url: &str) -> Killed {
    require_tool("ffmpeg");
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=320x240:rate=25"])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args(["-bf", "2", "-g", "25", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg publisher");
    Killed(child)
}

/// A recvonly offer from corecast's client library.
fn offer() -> String {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = sock.local_addr().expect("addr");
    WhepPeer::new(Instant::now(), addr, ReceiveMode::Light)
        .expect("peer")
        .offer()
}

fn expected_warning(path: &str) -> String {
    format!(
        "stream '{path}' has B-frames: browsers' WebRTC players stutter on them; the page \
         plays it over MSE"
    )
}

/// POSTs an offer for `path`; returns the response.
fn whep_post(s: &Server, path: &str) -> http::Response {
    http::post(
        s.http,
        &format!("/whep/{path}"),
        "application/sdp",
        offer().as_bytes(),
        HTTP_TIMEOUT,
    )
    .expect("WHEP response")
}

/// Sends an offer for `path` on a new `/ws` socket; returns the `answer` (or `error`)
/// message. The socket is returned too: its sessions end with it.
fn ws_offer(http_addr: SocketAddr, path: &str) -> (Value, WebSocket<TcpStream>) {
    let stream = TcpStream::connect(http_addr).expect("tcp connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let (mut ws, _) =
        tungstenite::client::client(format!("ws://{http_addr}/ws"), stream).expect("handshake");
    let msg = json!({"type": "offer", "stream": path, "sdp": offer()});
    ws.send(Message::text(msg.to_string())).expect("send");
    for _ in 0..20 {
        let Message::Text(t) = ws.read().expect("ws read") else {
            continue;
        };
        let v: Value = serde_json::from_str(t.as_str()).expect("json");
        if v["type"] == "answer" || v["type"] == "error" {
            return (v, ws);
        }
    }
    panic!("no answer on /ws for {path}");
}

/// The server's log lines so far that contain `needle`, waiting (bounded) until there
/// are at least `want`.
fn log_lines(s: &Server, seen: &mut Vec<String>, needle: &str, want: usize) -> usize {
    let start = Instant::now();
    loop {
        seen.extend(s.drain_log());
        let n = seen.iter().filter(|l| l.contains(needle)).count();
        if n >= want || start.elapsed() > Duration::from_secs(5) {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_b_frame_stream_is_answered_with_a_warning_and_the_demo_without() {
    let s = Server::start("webrtc-bframes", &test_config(&demo_stream("demo", 0)));
    let url = format!("rtmp://{}/live/bf", s.rtmp);
    let _publisher = publish_bframes(&url);
    let listed = s.wait_stream("live/bf", |v| v["tracks"][0]["bframes"] == true);
    assert_eq!(listed["tracks"][0]["kind"], "video");
    let warning = expected_warning("live/bf");
    let mut log = Vec::new();

    // WHEP: 201 with the answer, and the Warning header; one log line per session.
    let mut sessions = Vec::new();
    for i in 1..=2 {
        let r = whep_post(&s, "live/bf");
        assert_eq!(
            r.status,
            201,
            "WHEP for a B-frame stream: {}",
            r.body_text()
        );
        assert!(r.body_text().starts_with("v=0"), "{}", r.body_text());
        assert_eq!(
            r.header("warning"),
            Some(format!("299 corecast \"{warning}\"").as_str()),
            "headers: {:?}",
            r.headers
        );
        let exposed = r.header("access-control-expose-headers").unwrap_or("");
        assert!(
            exposed.contains("Warning"),
            "not exposed to pages: {exposed}"
        );
        let location = r.header("location").expect("Location").to_string();
        let n = log_lines(&s, &mut log, &warning, i);
        assert_eq!(n, i, "one warning line per session: {log:#?}");
        let line = log.iter().rev().find(|l| l.contains(&warning)).cloned();
        let line = line.unwrap_or_default();
        assert!(
            line.contains("WARN") && line.contains("session="),
            "the warning line: {line}"
        );
        sessions.push(location);
    }

    // /ws: the answer carries the same text as `warning`.
    let (answer, ws) = ws_offer(s.http, "live/bf");
    assert_eq!(answer["type"], "answer", "{answer}");
    assert_eq!(answer["warning"], warning.as_str(), "{answer}");
    assert_eq!(log_lines(&s, &mut log, &warning, 3), 3, "{log:#?}");
    drop(ws);

    // The demo stream (no B-frames): no header, no field, no log line.
    let demo = s.wait_stream("demo", |v| {
        v["tracks"].as_array().is_some_and(|t| !t.is_empty())
    });
    assert_eq!(demo["tracks"][0]["bframes"], false, "{demo}");
    let r = whep_post(&s, "demo");
    assert_eq!(r.status, 201, "{}", r.body_text());
    assert_eq!(r.header("warning"), None, "headers: {:?}", r.headers);
    let (answer, _ws) = ws_offer(s.http, "demo");
    assert_eq!(answer["type"], "answer", "{answer}");
    assert!(answer.get("warning").is_none(), "{answer}");
    std::thread::sleep(Duration::from_millis(300));
    log.extend(s.drain_log());
    assert!(
        !log.iter().any(|l| l.contains("stream 'demo' has B-frames")),
        "{log:#?}"
    );
    for location in sessions {
        let r = http::delete(s.http, &location, HTTP_TIMEOUT).expect("DELETE");
        assert_eq!(r.status, 200, "DELETE {location}");
    }
}
