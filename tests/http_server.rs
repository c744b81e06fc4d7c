//! The HTTP layer against the real binary: routes, limits, keep-alive, pipelining,
//! timeouts and WebSocket, each checked with raw sockets.
#![allow(clippy::disallowed_methods)] // Tests and benchmarks drive real time.

mod common;

use common::*;
use std::io::{BufReader, Read, Write};
use std::time::{Duration, Instant};

#[test]
fn health_reports_every_shard() {
    let s = Server::start("health", &test_config(""));
    let v = s.get_json("/api/v1/health");
    assert_eq!(v["status"], "ok", "{v}");
    let shards = v["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 2);
    for (i, sh) in shards.iter().enumerate() {
        assert_eq!(sh["shard"], i);
        assert_eq!(sh["ok"], true);
        assert!(
            sh["webrtc_udp_port"].as_u64().is_some_and(|p| p > 0),
            "{sh}"
        );
    }
}

#[test]
fn demo_stream_is_listed_with_h264_720p() {
    let s = Server::start("demo", &test_config(&demo_stream("demo", 1)));
    // H.264, AAC, and the Opus made from the AAC for browsers.
    let demo = s.wait_stream("demo", |s| {
        s["tracks"].as_array().is_some_and(|t| t.len() == 3)
    });
    assert_eq!(demo["owner_shard"], 1);
    assert_eq!(demo["rtmp_path"], "live/demo");
    assert_eq!(demo["source"]["kind"], "file");
    assert_eq!(demo["source"]["state"], "live");
    let video = &demo["tracks"][0];
    assert_eq!(video["codec"], "h264");
    assert_eq!(video["width"], 1280);
    assert_eq!(video["height"], 720);
    assert_eq!(video["profile"], "Main");
    assert!(
        (video["fps"].as_f64().unwrap_or(0.0) - 30.0).abs() < 0.5,
        "{video}"
    );
    let audio = &demo["tracks"][1];
    assert_eq!(audio["codec"], "aac");
    assert_eq!(audio["sample_rate"], 44100);
    let opus = &demo["tracks"][2];
    assert_eq!(opus["codec"], "opus");
    assert_eq!(opus["transcoded_from"], 1);
    assert_eq!(opus["sample_rate"], 48000);
    // The clip is ~1.1 Mbit/s: once a full second has been measured the reported input
    // bitrate is of that order (a ratio, not a timing).
    let demo = s.wait_stream("demo", |s| s["bitrate_in"].as_u64().unwrap_or(0) > 0);
    let rate = demo["bitrate_in"].as_u64().unwrap_or(0) as f64;
    assert!(
        rate > 1.1e6 * 0.3 && rate < 1.1e6 * 3.0,
        "bitrate_in {rate}"
    );
}

#[test]
fn web_page_lists_streams_from_the_api() {
    let s = Server::start("page", &test_config(""));
    let r = s.get("/");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
    );
    let page = r.body_text();
    assert!(
        page.contains("/api/v1/streams") && page.contains("setInterval"),
        "page does not poll the API"
    );
}

#[test]
fn metrics_parse_as_prometheus_text() {
    require_tool("python3");
    let s = Server::start("metrics", &test_config(&demo_stream("demo", 0)));
    s.wait_stream("demo", |s| s["frames_in"].as_u64().unwrap_or(0) > 0);
    let r = s.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4"))
    );
    // The reference parser of the Prometheus Python client is the oracle.
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
need = ["corecast_connections", "corecast_streams", "corecast_bytes_in", "corecast_bytes_out",
        "corecast_frames_dropped", "corecast_frames_in"]
missing = [n for n in need if n not in fams]
assert not missing, missing
shards = {s.labels["shard"] for s in fams["corecast_streams"].samples}
assert shards == {"0", "1"}, shards
print(sum(s.value for s in fams["corecast_frames_in"].samples))
"#;
    let mut py = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    py.stdin
        .take()
        .expect("stdin")
        .write_all(&r.body)
        .expect("write");
    let out = py.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "prometheus_client rejected /metrics: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        r.body_text()
    );
    let frames: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0);
    assert!(frames > 0.0);
}

#[test]
fn bad_requests_get_the_right_status_and_others_are_served() {
    let s = Server::start("bad", &test_config(""));
    // A keep-alive connection opened before the bad ones keeps working throughout.
    let mut keep = connect(s.http);
    let mut keep_r = BufReader::new(keep.try_clone().expect("clone"));
    let ask = |keep: &mut std::net::TcpStream, r: &mut BufReader<std::net::TcpStream>| {
        keep.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("write");
        read_response(r).expect("response").status
    };
    assert_eq!(ask(&mut keep, &mut keep_r), 200);

    let cases: Vec<(String, u16)> = vec![
        ("\x16\x03\x01garbage\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\nHost t\r\n\r\n".into(), 400),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
                "a".repeat(20_000)
            ),
            431,
        ),
        (
            "POST /api/v1/streams HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n".into(),
            413,
        ),
        (
            "POST /api/v1/streams HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n".into(),
            400,
        ),
        ("GET /nope HTTP/1.1\r\nHost: t\r\n\r\n".into(), 404),
        (
            "DELETE /api/v1/streams HTTP/1.1\r\nHost: t\r\n\r\n".into(),
            405,
        ),
        ("GET / HTTP/2.0\r\nHost: t\r\n\r\n".into(), 505),
    ];
    for (raw, want) in cases {
        let r = request(s.http, &raw);
        assert_eq!(r.status, want, "for {:?}", &raw[..raw.len().min(60)]);
        assert!(!r.body.is_empty(), "error answers carry a short text body");
        assert_eq!(ask(&mut keep, &mut keep_r), 200);
    }
    let r = request(s.http, "DELETE /api/v1/streams HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(r.header("allow").is_some_and(|a| a.contains("GET")));
    assert_eq!(s.get("/api/v1/health").status, 200);
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let s = Server::start("pipeline", &test_config(""));
    let mut c = connect(s.http);
    let mut raw = String::new();
    for p in ["/api/v1/health", "/nope", "/api/v1/streams", "/metrics"] {
        raw.push_str(&format!("GET {p} HTTP/1.1\r\nHost: t\r\n\r\n"));
    }
    // A chunked body on a route that does not take one is read and refused, and the
    // connection stays usable.
    raw.push_str("POST /api/v1/health HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    raw.push_str("GET /api/v1/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    c.write_all(raw.as_bytes()).expect("write");
    let mut r = BufReader::new(c);
    let statuses: Vec<u16> =
        std::iter::from_fn(|| read_response(&mut r).map(|x| x.status)).collect();
    assert_eq!(statuses, [200, 404, 200, 200, 405, 200]);
}

#[test]
fn slow_header_senders_are_cut_off_and_idle_connections_closed() {
    let s = Server::start(
        "slowloris",
        &test_config_http("header_timeout = \"700ms\"\nidle_timeout = \"1s\"", ""),
    );
    // Slowloris: a byte at a time, never finishing the headers.
    let mut slow = connect(s.http);
    let started = Instant::now();
    let mut got = Vec::new();
    for b in b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: "
        .iter()
        .cycle()
        .take(40)
    {
        if slow.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        slow.set_nonblocking(true).expect("nb");
        let mut buf = [0u8; 512];
        if let Ok(n) = slow.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
            if n == 0 || !got.is_empty() {
                break;
            }
        }
        slow.set_nonblocking(false).expect("block");
    }
    slow.set_nonblocking(false).expect("block");
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    got.extend_from_slice(&rest);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "slow client got {text:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the slow client was not cut off"
    );

    // An idle keep-alive connection is closed (EOF) after idle_timeout.
    let mut idle = connect(s.http);
    let mut buf = [0u8; 16];
    assert_eq!(idle.read(&mut buf).expect("read"), 0);
    assert_eq!(s.get("/api/v1/health").status, 200);
}

#[test]
fn connections_over_the_shard_limit_get_503() {
    let s = Server::start(
        "limit",
        &test_config_http("max_connections = 2", "").replace("shards = 2", "shards = 1"),
    );
    let held: Vec<_> = (0..2).map(|_| connect(s.http)).collect();
    // Make sure both are accepted and counted before the third arrives.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = request(s.http, "GET /api/v1/health HTTP/1.1\r\nHost: t\r\n\r\n");
        if r.status == 503 {
            assert!(r.body_text().contains("too many connections"));
            break;
        }
        assert!(Instant::now() < deadline, "never refused");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.get("/api/v1/health").status != 200 {
        assert!(Instant::now() < deadline, "never recovered");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn websocket_greets_and_answers_ping() {
    let s = Server::start("ws", &test_config(""));
    let stream = connect(s.http);
    let (mut ws, resp) = tungstenite::client::client(format!("ws://{}/ws", s.http), stream)
        .expect("websocket handshake");
    assert_eq!(resp.status(), 101);
    let hello = ws.read().expect("hello");
    let v: serde_json::Value = serde_json::from_str(hello.to_text().expect("text")).expect("json");
    assert_eq!(v["type"], "hello");
    ws.send(tungstenite::Message::text(r#"{"type":"ping"}"#))
        .expect("send");
    let pong = ws.read().expect("pong");
    assert_eq!(pong.to_text().expect("text"), r#"{"type":"pong"}"#);
    ws.send(tungstenite::Message::text("not json"))
        .expect("send");
    let err: serde_json::Value =
        serde_json::from_str(ws.read().expect("err").to_text().expect("text")).expect("json");
    assert_eq!(err["type"], "error");
    ws.send(tungstenite::Message::Ping(vec![1, 2, 3]))
        .expect("ping");
    let mut got_pong = false;
    for _ in 0..3 {
        if let Ok(tungstenite::Message::Pong(p)) = ws.read() {
            assert_eq!(&p[..], &[1, 2, 3]);
            got_pong = true;
            break;
        }
    }
    assert!(got_pong);
    ws.close(None).expect("close");
    // A plain GET on /ws is told to upgrade.
    assert_eq!(s.get("/ws").status, 426);
}

#[test]
fn sigterm_stops_cleanly_with_open_connections() {
    let mut s = Server::start("sigterm", &test_config(&demo_stream("demo", 0)));
    s.wait_stream("demo", |_| true);
    let _open = connect(s.http);
    let stream = connect(s.http);
    let (_ws, _) = tungstenite::client::client(format!("ws://{}/ws", s.http), stream).expect("ws");
    let t = Instant::now();
    assert_eq!(s.stop(), 0);
    assert!(t.elapsed() < Duration::from_secs(5));
    let log = s.drain_log().join("\n");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}
