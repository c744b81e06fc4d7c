//! The management API's sessions: `GET /api/v1/sessions` lists every RTMP publisher and
//! player, WebRTC viewer and RTSP camera source of every shard with growing counters;
//! `DELETE /api/v1/sessions/{id}` ends one on whichever shard holds it (a kicked
//! publisher frees its path at once); both need the `api` permission.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::camera::{Camera, CameraOpts};
use common::{Server, root, test_config};
use corecast_client::http;
use corecast_client::{ReceiveMode, WhepViewer};
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

fn demo_flv() -> std::path::PathBuf {
    root().join("configs/media/demo.flv")
}

/// Every listed session.
fn sessions(s: &Server) -> Vec<Value> {
    let v = s.get_json("/api/v1/sessions");
    v["sessions"].as_array().cloned().expect("sessions array")
}

/// The listed sessions of `kind` on `path`.
fn of(list: &[Value], kind: &str, path: &str) -> Vec<Value> {
    list.iter()
        .filter(|s| s["kind"] == kind && s["path"] == path)
        .cloned()
        .collect()
}

/// Polls the list (bounded) until `pred` holds; returns it.
fn wait_sessions(s: &Server, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let list = sessions(s);
        if pred(&list) {
            return list;
        }
        assert!(
            Instant::now() < end,
            "sessions never matched: {what}: {list:#?}\nlog:\n{}",
            s.drain_log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn delete(s: &Server, id: &str) -> http::Response {
    http::request(
        s.http,
        "DELETE",
        &format!("/api/v1/sessions/{id}"),
        &[],
        None,
        T,
    )
    .expect("http")
}

/// Whether an RTMP player gets 20 video frames of `url` within 20 s.
fn plays_frames(url: &str) -> bool {
    common::require_tool("ffmpeg");
    let mut c = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-rw_timeout",
            "10000000",
        ])
        .args(["-i", url, "-frames:v", "20", "-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg");
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if let Some(st) = c.try_wait().expect("wait") {
            return st.success();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    let _ = c.wait();
    false
}

fn stop(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

fn counter(s: &Value, name: &str) -> u64 {
    s[name].as_u64().unwrap_or_else(|| panic!("{name} in {s}"))
}

fn shard_of(s: &Value) -> u64 {
    let shard = counter(s, "shard");
    assert!(shard < 2, "{s}");
    shard
}

/// A session's fields as the contract states them.
fn check_shape(s: &Value) {
    let id = s["id"].as_str().expect("id is a string");
    assert!(id.parse::<u64>().is_ok(), "{s}");
    let started = s["started"].as_str().expect("started");
    assert!(
        started.len() == 20 && started.ends_with('Z') && started.as_bytes()[10] == b'T',
        "RFC 3339 UTC to the second: {s}"
    );
    for k in ["bytes_in", "bytes_out", "frames_dropped"] {
        counter(s, k);
    }
    let remote: SocketAddr = s["remote"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("remote ip:port in {s}"));
    assert!(remote.ip().is_loopback(), "{s}");
}

#[test]
fn every_kind_of_session_is_listed_with_growing_counters_until_its_client_goes() {
    let cam = Camera::start(&CameraOpts::default());
    let cfg = test_config(&format!(
        "[[streams]]\npath = \"cam\"\nsource = \"{}\"\ntransport = \"tcp\"\nshard = 1\n",
        cam.url
    ));
    let s = Server::start("admin_sessions_list", &cfg);
    s.wait_state("cam", Duration::from_secs(20), |st| st == "live");
    let publisher =
        common::ffmpeg_publish_loop(&demo_flv(), &[], &format!("rtmp://{}/live/pub", s.rtmp));
    wait_sessions(&s, "the publisher", |l| {
        !of(l, "publisher", "live/pub").is_empty()
    });
    s.wait_stream("live/pub", |st| {
        !st["tracks"].as_array().is_none_or(Vec::is_empty)
    });
    let player = common::ffmpeg_player(&format!("rtmp://{}/live/pub", s.rtmp));
    let mut viewer = WhepViewer::connect(s.http, "cam", ReceiveMode::Light, T)
        .unwrap_or_else(|e| panic!("whep: {e:?}"));
    viewer
        .run_for(Duration::from_millis(500))
        .expect("viewer runs");
    let first = wait_sessions(&s, "all four", |l| {
        of(l, "player", "live/pub").len() == 1 && of(l, "viewer", "cam").len() == 1
    });
    assert_eq!(first.len(), 4, "{first:#?}");
    let ids: Vec<&str> = first.iter().filter_map(|s| s["id"].as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort_by_key(|id| id.parse::<u64>().unwrap_or(0));
    assert_eq!(ids, sorted, "sorted by id");
    for x in &first {
        check_shape(x);
        shard_of(x);
    }
    let p = &of(&first, "publisher", "live/pub")[0];
    assert_eq!(
        (p["protocol"].as_str(), p["signaling"].as_null()),
        (Some("rtmp"), Some(()))
    );
    let pl = &of(&first, "player", "live/pub")[0];
    assert_eq!(pl["protocol"], "rtmp");
    let v = &of(&first, "viewer", "cam")[0];
    assert_eq!(
        (v["protocol"].as_str(), v["signaling"].as_str()),
        (Some("webrtc"), Some("whep"))
    );
    let src = &of(&first, "source", "cam")[0];
    assert_eq!((src["protocol"].as_str(), shard_of(src)), (Some("rtsp"), 1));
    assert_eq!(
        src["remote"].as_str(),
        cam.url.split('/').nth(2),
        "the camera's address"
    );

    // Counters grow: what comes in from the publisher and the camera, what goes out to
    // the player and the viewer.
    viewer
        .run_for(Duration::from_millis(1500))
        .expect("viewer runs");
    let later = sessions(&s);
    let grew = |kind: &str, path: &str, field: &str| {
        let (a, b) = (&of(&first, kind, path)[0], &of(&later, kind, path)[0]);
        assert_eq!(a["id"], b["id"]);
        assert!(
            counter(b, field) > counter(a, field),
            "{kind} {field} grows: {a} then {b}"
        );
    };
    grew("publisher", "live/pub", "bytes_in");
    grew("player", "live/pub", "bytes_out");
    grew("viewer", "cam", "bytes_out");
    grew("source", "cam", "bytes_in");

    // Every session goes from the list when its client goes; the camera source stays.
    stop(player);
    stop(publisher);
    viewer.close().expect("WHEP DELETE");
    drop(viewer);
    let left = wait_sessions(&s, "only the camera source", |l| l.len() == 1);
    assert_eq!(left[0]["kind"], "source");
}

#[test]
fn deleting_sessions_frees_the_path_closes_the_viewer_and_reconnects_the_camera() {
    let cam = Camera::start(&CameraOpts::default());
    let cfg = test_config(&format!(
        "[[streams]]\npath = \"cam\"\nsource = \"{}\"\ntransport = \"tcp\"\nshard = 0\n",
        cam.url
    ));
    let s = Server::start("admin_sessions_delete", &cfg);
    s.wait_state("cam", Duration::from_secs(20), |st| st == "live");
    let url = format!("rtmp://{}/live/kick", s.rtmp);

    // Unknown and malformed ids.
    let r = delete(&s, "999999");
    assert_eq!(r.status, 404, "{}", r.body_text());
    assert!(r.body_text().contains("\"error\""), "{}", r.body_text());
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(delete(&s, "x1").status, 400);
    assert_eq!(delete(&s, "-1").status, 400);

    // A publisher kicked: the path is free at once for the next one.
    let first = common::ffmpeg_publish_loop(&demo_flv(), &[], &url);
    let list = wait_sessions(&s, "the publisher", |l| {
        !of(l, "publisher", "live/kick").is_empty()
    });
    let id = of(&list, "publisher", "live/kick")[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let r = delete(&s, &id);
    assert_eq!(r.status, 204, "{}", r.body_text());
    s.log_until("session ended through the management API", T);
    wait_sessions(&s, "the publisher gone", |l| {
        of(l, "publisher", "live/kick").is_empty()
    });
    let mut first = first;
    let gone = Instant::now() + T;
    while first.try_wait().expect("wait").is_none() && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        first.try_wait().expect("wait").is_some(),
        "the kicked ffmpeg was disconnected"
    );
    assert_eq!(delete(&s, &id).status, 404, "gone");
    let second = common::ffmpeg_publish_loop(&demo_flv(), &[], &url);
    let list = wait_sessions(&s, "the second publisher", |l| {
        !of(l, "publisher", "live/kick").is_empty()
    });
    assert_ne!(
        of(&list, "publisher", "live/kick")[0]["id"].as_str(),
        Some(id.as_str())
    );
    assert!(
        plays_frames(&url),
        "a player sees the second publisher's frames"
    );
    stop(second);

    // An RTMP player kicked: disconnected.
    let play = s.stream("cam")["rtmp_path"]
        .as_str()
        .expect("rtmp_path")
        .to_string();
    let mut player = common::ffmpeg_player(&format!("rtmp://{}/{play}", s.rtmp));
    let list = wait_sessions(&s, "the player", |l| of(l, "player", "cam").len() == 1);
    let pid = of(&list, "player", "cam")[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(delete(&s, &pid).status, 204);
    wait_sessions(&s, "the player gone", |l| of(l, "player", "cam").is_empty());
    let gone = Instant::now() + T;
    while player.try_wait().expect("wait").is_none() && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        player.try_wait().expect("wait").is_some(),
        "the kicked player was disconnected"
    );

    // A WHEP viewer kicked: its session ends (the client sees it close or the media stop).
    let mut viewer = WhepViewer::connect(s.http, "cam", ReceiveMode::Light, T)
        .unwrap_or_else(|e| panic!("whep: {e:?}"));
    viewer
        .run_for(Duration::from_millis(1000))
        .expect("viewer runs");
    let list = wait_sessions(&s, "the viewer", |l| of(l, "viewer", "cam").len() == 1);
    let vid = of(&list, "viewer", "cam")[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(delete(&s, &vid).status, 204);
    wait_sessions(&s, "the viewer gone", |l| of(l, "viewer", "cam").is_empty());
    let ended = viewer.run_for(Duration::from_millis(1500));
    let before = viewer.stats().packets;
    let again = viewer.run_for(Duration::from_millis(1500));
    let stopped = viewer.stats().packets == before;
    assert!(
        ended.is_err() || again.is_err() || stopped,
        "the viewer's session closed or its media stopped: {:?}",
        viewer.stats()
    );

    // The camera source kicked: it drops the connection and reconnects; still listed.
    let list = sessions(&s);
    let src = of(&list, "source", "cam")[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (opened, _) = cam.connections();
    assert_eq!(delete(&s, &src).status, 204);
    s.log_until("camera connection dropped by request", T);
    cam.wait_connections(Duration::from_secs(20), |o, _| o > opened);
    s.wait_state("cam", Duration::from_secs(20), |st| st == "live");
    let list = sessions(&s);
    assert_eq!(
        of(&list, "source", "cam")[0]["id"].as_str(),
        Some(src.as_str())
    );
}

#[test]
fn the_session_api_needs_the_api_permission() {
    const SECRET: &str = "a test secret of at least 32 bytes, for the sessions test";
    let cfg = test_config(&format!(
        r#"
[auth]
jwt_secret = "{SECRET}"
fail_limit = 0
[[auth.users]]
user = "admin"
password = "adm"
permissions = [{{ action = "api" }}]
[[auth.users]]
user = "watcher"
password = "w"
permissions = [{{ action = "read" }}]
"#
    ));
    let s = Server::start("admin_sessions_auth", &cfg);
    let basic = |u: &str, p: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    };
    let token = |perms: Value| {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_secs()
            + 600;
        let claims = serde_json::json!({ "exp": exp, "corecast_permissions": perms });
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).expect("key");
        let jwt =
            jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("jwt");
        format!("Bearer {jwt}")
    };
    let call = |from: Option<IpAddr>, method: &str, path: &str, auth: Option<&str>| {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        http::request_from(from, s.http, method, path, &headers, None, T)
            .expect("http")
            .status
    };
    let other: IpAddr = "127.0.0.2".parse().expect("ip");
    let admin = basic("admin", "adm");
    let watcher = basic("watcher", "w");
    let no_api = token(serde_json::json!([{ "action": "read" }]));
    let api = token(serde_json::json!([{ "action": "api" }]));
    for (method, path) in [
        ("GET", "/api/v1/sessions"),
        ("DELETE", "/api/v1/sessions/1"),
    ] {
        assert_eq!(
            call(None, method, path, None),
            401,
            "{method}: no credentials"
        );
        assert_eq!(
            call(Some(other), method, path, None),
            401,
            "{method}: another address"
        );
        assert_eq!(
            call(None, method, path, Some(&watcher)),
            403,
            "{method}: no api"
        );
        assert_eq!(
            call(None, method, path, Some(&no_api)),
            403,
            "{method}: token, no api"
        );
    }
    assert_eq!(call(None, "GET", "/api/v1/sessions", Some(&admin)), 200);
    assert_eq!(
        call(Some(other), "GET", "/api/v1/sessions", Some(&api)),
        200
    );
    assert_eq!(call(None, "DELETE", "/api/v1/sessions/1", Some(&api)), 404);
}

#[test]
fn a_websocket_viewer_is_listed_with_ws_signaling_until_its_socket_closes() {
    use corecast_client::WhepPeer;
    use tungstenite::Message;
    let s = Server::start(
        "admin_sessions_ws",
        &test_config(&common::demo_stream("demo", 1)),
    );
    s.wait_stream("demo", |st| {
        !st["tracks"].as_array().is_none_or(Vec::is_empty)
    });
    let tcp = std::net::TcpStream::connect(s.http).expect("tcp");
    tcp.set_read_timeout(Some(T)).expect("timeout");
    let local = tcp.local_addr().expect("local");
    let (mut ws, _) =
        tungstenite::client::client(format!("ws://{}/ws", s.http), tcp).expect("ws handshake");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let peer = WhepPeer::new(
        Instant::now(),
        udp.local_addr().expect("addr"),
        ReceiveMode::Light,
    )
    .expect("peer");
    let offer = serde_json::json!({"type": "offer", "stream": "demo", "sdp": peer.offer()});
    ws.send(Message::text(offer.to_string())).expect("send");
    loop {
        let Message::Text(t) = ws.read().expect("ws read") else {
            continue;
        };
        let v: Value = serde_json::from_str(t.as_str()).expect("json");
        if v["type"] == "answer" {
            break;
        }
        assert_ne!(v["type"], "error", "{v}");
    }
    let list = wait_sessions(&s, "the ws viewer", |l| of(l, "viewer", "demo").len() == 1);
    let v = &of(&list, "viewer", "demo")[0];
    check_shape(v);
    assert_eq!(
        (v["protocol"].as_str(), v["signaling"].as_str()),
        (Some("webrtc"), Some("ws"))
    );
    assert_eq!(
        v["remote"].as_str(),
        Some(local.to_string().as_str()),
        "the socket's peer"
    );
    ws.close(None).expect("close");
    let _ = ws.flush();
    drop(ws);
    wait_sessions(&s, "the ws viewer gone", |l| {
        of(l, "viewer", "demo").is_empty()
    });
}
