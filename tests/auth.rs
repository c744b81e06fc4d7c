//! Access control against the real binary: a matrix of protocols (RTMP publish and play,
//! WHEP, WebSocket offers, the API, metrics) × credentials (none, wrong password, right
//! password, valid JWT, expired JWT, JWT for another path, wrong signature, `alg: none`),
//! address rules from another loopback address, ffmpeg publishing with `?user=&pass=`,
//! the built-in defaults, and the failed-attempt limit.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use base64::Engine;
use common::rtmp::{after_handshake, publish_commands};
use common::{Server, demo_stream, require_tool, root, test_config};
use corecast_client::{ReceiveMode, WhepPeer, http};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

const SECRET: &str = "a test secret of at least 32 bytes, never used elsewhere";
const T: Duration = Duration::from_secs(10);

/// Users of the matrix: `obs` may do everything on `demo` and `live/**`; nobody may do
/// anything without credentials, except publish `open/*` from 127.0.0.1.
fn matrix_config() -> String {
    test_config(&format!(
        r#"
[auth]
jwt_secret = "{SECRET}"
fail_limit = 0

[[auth.users]]
user = "obs"
password = "s3cret"
permissions = [{{ action = "publish", path = "live/**" }}, {{ action = "read", path = "demo" }},
               {{ action = "read", path = "live/**" }}, {{ action = "api" }}, {{ action = "metrics" }}]

[[auth.users]]
user = "any"
ips = ["127.0.0.1/32"]
permissions = [{{ action = "publish", path = "open/*" }}]

{}"#,
        demo_stream("demo", 0)
    ))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cred {
    None,
    WrongPassword,
    RightPassword,
    Jwt,
    ExpiredJwt,
    OtherPathJwt,
    WrongSignature,
    AlgNone,
}

const ALL: [Cred; 8] = [
    Cred::None,
    Cred::WrongPassword,
    Cred::RightPassword,
    Cred::Jwt,
    Cred::ExpiredJwt,
    Cred::OtherPathJwt,
    Cred::WrongSignature,
    Cred::AlgNone,
];

/// What a request with these credentials gets: allowed, 401 or 403.
fn expected(c: Cred) -> u16 {
    match c {
        Cred::RightPassword | Cred::Jwt => 200,
        Cred::OtherPathJwt => 403,
        _ => 401,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn token(perm_paths: &str, exp: u64, secret: &str) -> String {
    let perms = json!([
        { "action": "publish", "path": perm_paths },
        { "action": "read", "path": perm_paths },
        { "action": "read", "path": "demo" },
        { "action": "api" },
        { "action": "metrics" },
    ]);
    let perms = if perm_paths == "other/*" {
        json!([{ "action": "publish", "path": "other/*" }, { "action": "read", "path": "other/*" }])
    } else {
        perms
    };
    let claims = json!({ "exp": exp, "corecast_permissions": perms });
    let key = EncodingKey::from_secret(secret.as_bytes()).unwrap();
    encode(&Header::default(), &claims, &key).unwrap()
}

/// (user, password) or a token for `c`.
fn creds(c: Cred) -> (Option<(&'static str, &'static str)>, Option<String>) {
    let now = unix_now();
    match c {
        Cred::None => (None, None),
        Cred::WrongPassword => (Some(("obs", "wrong")), None),
        Cred::RightPassword => (Some(("obs", "s3cret")), None),
        Cred::Jwt => (None, Some(token("live/**", now + 600, SECRET))),
        Cred::ExpiredJwt => (None, Some(token("live/**", now - 3600, SECRET))),
        Cred::OtherPathJwt => (None, Some(token("other/*", now + 600, SECRET))),
        Cred::WrongSignature => (
            None,
            Some(token(
                "live/**",
                now + 600,
                "another secret of at least 32 bytes....",
            )),
        ),
        Cred::AlgNone => {
            let claims = json!({ "exp": now + 600, "corecast_permissions": [{ "action": "publish" }, { "action": "read" }, { "action": "api" }, { "action": "metrics" }] });
            let t = format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"JWT"}"#),
                b64(claims.to_string().as_bytes())
            );
            (None, Some(t))
        }
    }
}

/// The `Authorization` header for `c`.
fn authorization(c: Cred) -> Option<String> {
    match creds(c) {
        (Some((u, p)), _) => Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )),
        (_, Some(t)) => Some(format!("Bearer {t}")),
        _ => None,
    }
}

/// The RTMP query for `c` (`?user=&pass=` or `?token=`).
fn rtmp_query(c: Cred) -> String {
    match creds(c) {
        (Some((u, p)), _) => format!("?user={u}&pass={p}"),
        (_, Some(t)) => format!("?token={t}"),
        _ => String::new(),
    }
}

fn http_get(addr: SocketAddr, from: Option<IpAddr>, path: &str, c: Cred) -> http::Response {
    let auth = authorization(c);
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    http::request_from(from, addr, "GET", path, &headers, None, T).expect("http")
}

/// Reads RTMP answers until one of `codes` shows up (or the server closes); returns it.
fn rtmp_outcome(c: &mut TcpStream, codes: &[&str]) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let end = Instant::now() + T;
    while Instant::now() < end {
        for code in codes {
            if got.windows(code.len()).any(|w| w == code.as_bytes()) {
                return Some((*code).to_string());
            }
        }
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    codes
        .iter()
        .find(|code| got.windows(code.len()).any(|w| w == code.as_bytes()))
        .map(|c| c.to_string())
}

/// Publishes `app/name` with the bare client: `Start` or `Unauthorized`.
fn rtmp_publish(addr: SocketAddr, from: Option<IpAddr>, app: &str, name: &str) -> String {
    let mut c = common::rtmp::after_handshake_from(from, addr);
    c.write_all(&publish_commands(app, name)).unwrap();
    rtmp_outcome(
        &mut c,
        &["NetStream.Publish.Start", "NetStream.Publish.Unauthorized"],
    )
    .unwrap_or_else(|| panic!("no answer to publish {app}/{name}"))
}

/// Plays `app/name` with the bare client: `Start` or `Failed`.
fn rtmp_play(addr: SocketAddr, app: &str, name: &str) -> String {
    let mut c = after_handshake(addr);
    c.write_all(&common::rtmp::play_commands(app, name))
        .unwrap();
    rtmp_outcome(&mut c, &["NetStream.Play.Start", "NetStream.Play.Failed"])
        .unwrap_or_else(|| panic!("no answer to play {app}/{name}"))
}

/// POSTs a real WHEP offer for `demo`; returns the status.
fn whep(addr: SocketAddr, c: Cred, token_in_query: bool) -> u16 {
    let peer = WhepPeer::new(
        Instant::now(),
        "127.0.0.1:9".parse().unwrap(),
        ReceiveMode::Full,
    )
    .expect("peer");
    let offer = peer.offer();
    let (path, auth) = match (token_in_query, creds(c)) {
        (true, (_, Some(t))) => (format!("/whep/demo?token={t}"), None),
        _ => ("/whep/demo".to_string(), authorization(c)),
    };
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let r = http::request(
        addr,
        "POST",
        &path,
        &headers,
        Some(("application/sdp", offer.as_bytes())),
        T,
    )
    .expect("whep");
    if r.status == 201
        && let Some(loc) = r.header("Location")
    {
        let _ = http::delete(addr, loc, T);
    }
    r.status
}

/// Opens `/ws` with `c` and offers `demo`: the upgrade's status if refused, else the
/// offer's answer (200) or the status of the error message.
fn ws_offer(addr: SocketAddr, c: Cred) -> u16 {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(T)).unwrap();
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    if let Some(a) = authorization(c) {
        req.headers_mut()
            .insert("Authorization", a.parse().unwrap());
    }
    let mut ws: WebSocket<TcpStream> = match tungstenite::client::client(req, stream) {
        Ok((ws, _)) => ws,
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            return r.status().as_u16();
        }
        Err(e) => panic!("ws handshake: {e}"),
    };
    let peer = WhepPeer::new(
        Instant::now(),
        "127.0.0.1:9".parse().unwrap(),
        ReceiveMode::Full,
    )
    .expect("peer");
    let offer = json!({ "type": "offer", "stream": "demo", "sdp": peer.offer() });
    ws.send(Message::text(offer.to_string())).unwrap();
    for _ in 0..20 {
        let Message::Text(t) = ws.read().expect("ws read") else {
            continue;
        };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        match v["type"].as_str() {
            Some("answer") => return 200,
            Some("error") => return v["status"].as_u64().unwrap_or(0) as u16,
            _ => {}
        }
    }
    panic!("no answer to the offer");
}

/// Waits (bounded) until `demo` has its tracks, asking the API with the right password.
fn wait_demo(server: &Server) {
    let end = Instant::now() + T;
    while Instant::now() < end {
        let r = http_get(server.http, None, "/api/v1/streams", Cred::RightPassword);
        let v: Value = serde_json::from_str(&r.body_text()).unwrap_or_default();
        let ready = v["streams"].as_array().is_some_and(|s| {
            s.iter().any(|s| {
                s["path"] == "demo" && s["tracks"].as_array().is_some_and(|t| !t.is_empty())
            })
        });
        if ready {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("demo did not start");
}

fn status_of_rtmp(outcome: &str) -> u16 {
    if outcome.ends_with("Start") { 200 } else { 0 }
}

#[test]
fn every_protocol_answers_every_kind_of_credentials() {
    let server = Server::start("auth_matrix", &matrix_config());
    wait_demo(&server);
    let mut failures = Vec::new();
    for (i, c) in ALL.into_iter().enumerate() {
        let want = expected(c);
        let mut check = |what: &str, got: u16, want: u16| {
            if got != want {
                failures.push(format!("{what} with {c:?}: got {got}, want {want}"));
            }
        };
        // RTMP publish and play: accepted, or refused with the RTMP status.
        let q = rtmp_query(c);
        let publish = rtmp_publish(server.rtmp, None, "live", &format!("m{i}{q}"));
        let rtmp_want = if want == 200 { 200 } else { 0 };
        check("rtmp publish", status_of_rtmp(&publish), rtmp_want);
        if want != 200 {
            assert_eq!(publish, "NetStream.Publish.Unauthorized");
        }
        let play = rtmp_play(server.rtmp, "live", &format!("demo{q}"));
        check("rtmp play", status_of_rtmp(&play), rtmp_want);
        if want != 200 {
            assert_eq!(play, "NetStream.Play.Failed");
        }
        // WHEP: 201 when allowed.
        let whep_want = if want == 200 { 201 } else { want };
        check("whep", whep(server.http, c, false), whep_want);
        // WebSocket: refused at the upgrade (nothing readable), or per offer.
        check("ws offer", ws_offer(server.http, c), want);
        // API and metrics.
        let r = http_get(server.http, None, "/api/v1/health", c);
        check("api", r.status, want);
        if r.status == 401 {
            assert_eq!(
                r.header("WWW-Authenticate"),
                Some("Basic realm=\"corecast\"")
            );
        }
        check(
            "metrics",
            http_get(server.http, None, "/metrics", c).status,
            want,
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // The token may come in the query where a page cannot set headers.
    assert_eq!(whep(server.http, Cred::Jwt, true), 201);
    assert_eq!(whep(server.http, Cred::ExpiredJwt, true), 401);
}

#[test]
fn an_address_rule_refuses_a_publish_from_another_address() {
    let server = Server::start("auth_ips", &matrix_config());
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    assert_eq!(
        rtmp_publish(server.rtmp, Some(other), "open", "cam"),
        "NetStream.Publish.Unauthorized"
    );
    server.log_until("publish to 'open/cam' refused", T);
    assert_eq!(
        rtmp_publish(server.rtmp, None, "open", "cam"),
        "NetStream.Publish.Start"
    );
}

#[test]
fn ffmpeg_publishes_with_user_and_pass() {
    require_tool("ffmpeg");
    let server = Server::start("auth_ffmpeg", &matrix_config());
    let file = root().join("configs/media/demo.flv");
    let url = |pass: &str| format!("rtmp://{}/live/ff?user=obs&pass={pass}", server.rtmp);
    // A wrong password: ffmpeg is refused and exits.
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(&file)
        .args(["-t", "3", "-c", "copy", "-f", "flv", &url("wrong")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("ffmpeg");
    assert!(!status.success(), "a wrong password must not publish");
    let mut ok = common::ffmpeg_publish_loop(&file, &[], &url("s3cret"));
    let end = Instant::now() + T;
    let mut seen = false;
    while Instant::now() < end && !seen {
        let r = http_get(server.http, None, "/api/v1/streams", Cred::RightPassword);
        let v: Value = serde_json::from_str(&r.body_text()).unwrap_or_default();
        seen = v["streams"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["path"] == "live/ff"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = ok.kill();
    let _ = ok.wait();
    assert!(seen, "ffmpeg with the right password publishes live/ff");
}

#[test]
fn the_default_users_open_reading_and_keep_the_rest_on_loopback() {
    let server = Server::start("auth_defaults", &test_config(&demo_stream("demo", 0)));
    server.wait_stream("demo", |_| true);
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    // Reading the stream list works from anywhere, without addresses.
    let far = http_get(server.http, Some(other), "/api/v1/streams", Cred::None);
    assert_eq!(far.status, 200);
    let v: Value = serde_json::from_str(&far.body_text()).unwrap();
    let demo = &v["streams"][0];
    assert_eq!(demo["path"], "demo");
    assert!(demo["source"].get("url").is_none(), "{demo}");
    let near = server.get_json("/api/v1/streams");
    assert!(near["streams"][0]["source"].get("url").is_some());
    // The rest of the API and the metrics: loopback only.
    for path in ["/api/v1/health", "/metrics"] {
        let r = http_get(server.http, Some(other), path, Cred::None);
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some("Basic realm=\"corecast\"")
        );
        assert_eq!(server.get(path).status, 200, "{path}");
    }
    // Publishing too (the bare client binds 127.0.0.2: ffmpeg cannot).
    assert_eq!(
        rtmp_publish(server.rtmp, Some(other), "live", "x"),
        "NetStream.Publish.Unauthorized"
    );
    assert_eq!(
        rtmp_publish(server.rtmp, None, "live", "x"),
        "NetStream.Publish.Start"
    );
    // The page and playing stay open.
    assert_eq!(
        http_get(server.http, Some(other), "/", Cred::None).status,
        200
    );
    assert_eq!(
        rtmp_play(server.rtmp, "live", "demo"),
        "NetStream.Play.Start"
    );
}

#[test]
fn failed_attempts_block_an_address_for_a_while_with_one_log_line() {
    let config = test_config(
        r#"
[auth]
fail_limit = 3
fail_block = "1m"
[[auth.users]]
user = "admin"
password = "right"
permissions = [{ action = "api" }]
"#,
    );
    let server = Server::start("auth_fail_limit", &config);
    let basic = |p: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("admin:{p}"))
        )
    };
    let get = |p: &str| {
        let h = basic(p);
        http::request(
            server.http,
            "GET",
            "/api/v1/health",
            &[("Authorization", &h)],
            None,
            T,
        )
        .expect("http")
        .status
    };
    assert_eq!(get("right"), 200);
    for _ in 0..3 {
        assert_eq!(get("wrong"), 401);
    }
    server.log_until("3 failed access attempts", T);
    assert_eq!(get("right"), 429, "blocked, even with the right password");
    for _ in 0..5 {
        assert_eq!(get("wrong"), 429);
    }
    let lines = server.drain_log();
    assert!(
        !lines.iter().any(|l| l.contains("failed access attempts")),
        "one log line per block: {lines:?}"
    );
}

#[test]
fn ffprobe_plays_with_credentials_and_not_without() {
    require_tool("ffprobe");
    let server = Server::start("auth_ffprobe", &matrix_config());
    wait_demo(&server);
    let probe = |query: &str| {
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-rw_timeout",
                "10000000",
                "-show_entries",
                "stream=codec_name",
            ])
            .args(["-of", "csv=p=0"])
            .arg(format!("rtmp://{}/live/demo{query}", server.rtmp))
            .stdin(Stdio::null())
            .output()
            .expect("ffprobe")
    };
    let ok = probe(&rtmp_query(Cred::RightPassword));
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success() && text.contains("h264"), "{text}");
    let ok = probe(&rtmp_query(Cred::Jwt));
    assert!(ok.status.success(), "a valid token plays");
    for c in [
        Cred::None,
        Cred::WrongPassword,
        Cred::ExpiredJwt,
        Cred::OtherPathJwt,
    ] {
        let refused = probe(&rtmp_query(c));
        assert!(!refused.status.success(), "{c:?} must not play");
    }
    server.log_until("play of 'demo' refused", T);
}
