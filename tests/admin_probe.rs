//! `POST /api/v1/probe` ("test connection") against the GStreamer camera stand-in and
//! against cameras that fail: nothing listening, credentials wanted, a wrong mount, a
//! camera that never answers (the shards keep serving meanwhile), one that floods, more
//! probes at once than a shard runs; bad bodies. Credentials never come back.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::camera::{Camera, CameraOpts};
use common::{HttpResponse, Server, test_config};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// Short camera time-outs, so the silent camera fails fast: a probe is bounded by
/// `connect_timeout` + 5 s, each request by `min(response_timeout, 5 s)`.
const RTSP: &str = "[rtsp]\nconnect_timeout = \"1s\"\nresponse_timeout = \"2s\"\n";

fn probe_raw(s: &Server, content_type: &str, body: &[u8]) -> HttpResponse {
    corecast_client::http::post(
        s.http,
        "/api/v1/probe",
        content_type,
        body,
        Duration::from_secs(20),
    )
    .expect("probe request")
}

fn probe(s: &Server, body: Value) -> (u16, Value) {
    let r = probe_raw(s, "application/json", body.to_string().as_bytes());
    assert_eq!(
        r.header("Content-Type"),
        Some("application/json"),
        "{}",
        r.body_text()
    );
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    let v: Value = serde_json::from_slice(&r.body).expect("JSON body");
    (r.status, v)
}

fn error_of(v: &Value) -> &str {
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {v}"))
}

/// A loopback port with nothing listening.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A "camera" that accepts and then runs `behave` on the first connection.
fn fake_camera(behave: fn(std::net::TcpStream)) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        if let Ok((c, _)) = l.accept() {
            behave(c);
        }
    });
    addr
}

#[test]
fn probe_answers_the_cameras_tracks_without_its_credentials() {
    let cam = Camera::start(&CameraOpts::default());
    let s = Server::start("probe-tracks", &test_config(RTSP));
    let url = cam.url.replace("rtsp://", "rtsp://someone:hunter2@");
    let (status, v) = probe(&s, json!({ "url": url, "transport": "tcp" }));
    assert_eq!(status, 200, "{v}");
    let tracks = v["tracks"].as_array().expect("tracks");
    assert_eq!(
        tracks[0],
        json!({"kind": "video", "codec": "H264", "clock_rate": 90000}),
        "{v}"
    );
    assert_eq!(tracks[1]["kind"], "audio", "{v}");
    assert_eq!(tracks[1]["codec"], "AAC", "{v}");
    assert!(
        v["server"]
            .as_str()
            .is_some_and(|s| s.contains("GStreamer")),
        "{v}"
    );
    assert_eq!(v["url"], cam.url, "{v}");
    assert!(!v.to_string().contains("hunter2"), "{v}");
    // The log line is written before the answer but read on another thread: wait for it.
    let log = s.log_until("api: probe: 2 track(s)", Duration::from_secs(5));
    assert!(log.contains("api: probe: 2 track(s)"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
}

#[test]
fn probe_names_what_the_camera_did() {
    let auth = ("digest", "admin".to_string(), "s3cret".to_string());
    let cam = Camera::start(&CameraOpts {
        auth: Some(auth),
        ..CameraOpts::default()
    });
    let s = Server::start("probe-errors", &test_config(RTSP));

    // Nothing listening.
    let url = format!("rtsp://127.0.0.1:{}/cam", closed_port());
    let (status, v) = probe(&s, json!({ "url": url }));
    assert_eq!(status, 502, "{v}");
    assert!(error_of(&v).contains("refused"), "{v}");

    // Credentials wanted: none, wrong ones, then the right ones (Digest).
    let (status, v) = probe(&s, json!({ "url": cam.url }));
    assert_eq!(status, 502, "{v}");
    assert!(error_of(&v).contains("401"), "{v}");
    let wrong = json!({ "url": cam.url, "user": "admin", "password": "nope" });
    let (status, v) = probe(&s, wrong);
    assert_eq!(status, 502, "{v}");
    assert!(error_of(&v).contains("401"), "{v}");
    assert!(!v.to_string().contains("nope"), "{v}");
    let right = json!({ "url": cam.url, "user": "admin", "password": "s3cret" });
    let (status, v) = probe(&s, right);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["tracks"][0]["codec"], "H264", "{v}");

    // A mount the camera does not have.
    let url = format!("rtsp://admin:s3cret@127.0.0.1:{}/nothing", cam.port);
    let (status, v) = probe(&s, json!({ "url": url }));
    assert_eq!(status, 502, "{v}");
    assert!(error_of(&v).contains("404"), "{v}");
    assert!(!v.to_string().contains("s3cret"), "{v}");
    let log = s.drain_log().join("\n");
    assert!(!log.contains("s3cret") && !log.contains("nope"), "{log}");
}

#[test]
fn probe_is_bounded_in_time_and_bytes() {
    let s = Server::start("probe-bounds", &test_config(RTSP));

    // Accepts, reads, never answers: the request's time-out (2 s) ends it.
    let silent = fake_camera(|mut c| {
        let mut buf = [0u8; 4096];
        while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
    });
    let t0 = Instant::now();
    let http = s.http;
    let waiting = std::thread::spawn(move || {
        let body = json!({ "url": format!("rtsp://{silent}/x") }).to_string();
        corecast_client::http::post(
            http,
            "/api/v1/probe",
            "application/json",
            body.as_bytes(),
            Duration::from_secs(20),
        )
        .expect("probe request")
    });
    // Meanwhile every shard keeps answering (the probe is one task among others).
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..10 {
        let t = Instant::now();
        assert_eq!(s.get("/api/v1/health").status, 200);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }
    let r = waiting.join().expect("probe thread");
    let v: Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(r.status, 502, "{v}");
    assert!(error_of(&v).contains("did not answer OPTIONS"), "{v}");
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());

    // Answers OPTIONS with an endless stream of interleaved frames: cut at 64 KiB.
    let flood = fake_camera(|mut c| {
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf);
        let frame = [b'$', 0, 4, 0];
        let mut chunk = frame.to_vec();
        chunk.resize(4 + 1024, 0);
        for _ in 0..10_000 {
            if c.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let (status, v) = probe(&s, json!({ "url": format!("rtsp://{flood}/x") }));
    assert_eq!(status, 502, "{v}");
    assert!(error_of(&v).contains("more than 64 KiB"), "{v}");

    // At most four probes at once per shard: nine at once on two shards leave one
    // answered 503 at least.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let many = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().take(9).flatten() {
            held.push(c);
        }
        std::thread::sleep(Duration::from_secs(5));
    });
    let probes: Vec<_> = (0..9)
        .map(|_| {
            let body = json!({ "url": format!("rtsp://{many}/x") }).to_string();
            std::thread::spawn(move || {
                corecast_client::http::post(
                    http,
                    "/api/v1/probe",
                    "application/json",
                    body.as_bytes(),
                    Duration::from_secs(20),
                )
                .expect("probe request")
            })
        })
        .collect();
    let answers: Vec<HttpResponse> = probes
        .into_iter()
        .map(|p| p.join().expect("probe thread"))
        .collect();
    let busy: Vec<&HttpResponse> = answers.iter().filter(|r| r.status == 503).collect();
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert!(!busy.is_empty(), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 502 || *s == 503),
        "{statuses:?}"
    );
    assert_eq!(busy[0].header("Retry-After"), Some("1"));
    assert!(busy[0].body_text().contains("probes are running"));

    // The server is fine afterwards.
    let r = s.get("/api/v1/health");
    assert_eq!(r.status, 200);
}

#[test]
fn probe_refuses_bad_urls_and_bodies() {
    let s = Server::start("probe-bad", &test_config(RTSP));
    for (body, want) in [
        (
            json!({ "url": "http://127.0.0.1/cam" }),
            "must start with rtsp://",
        ),
        (json!({ "url": "rtsp://" }), "no host"),
        (json!({ "url": "rtsp://127.0.0.1:99999/x" }), "invalid port"),
        (json!({}), "url is required"),
        (
            json!({ "url": "rtsp://127.0.0.1/x", "transport": "sctp" }),
            "transport",
        ),
    ] {
        let (status, v) = probe(&s, body.clone());
        assert_eq!(status, 400, "{body}: {v}");
        assert!(error_of(&v).contains(want), "{body}: {v}");
    }
    let r = probe_raw(&s, "application/json", b"{not json");
    assert_eq!(r.status, 400, "{}", r.body_text());
    let r = probe_raw(&s, "text/plain", b"rtsp://127.0.0.1/x");
    assert_eq!(r.status, 415, "{}", r.body_text());
}
