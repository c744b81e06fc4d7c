//! The OpenAPI description (`src/http/admin/openapi.json`) against the real server.
//!
//! - `description_covers_every_endpoint`: the description's paths and methods are exactly
//!   the list kept here, and that list is what the code routes: the arms of
//!   `src/http/admin.rs::resource` (the management API), the paths `src/http/server.rs`
//!   knows, and the WHEP prefix and methods of `src/http/whep.rs`.
//! - `real_responses_match_the_description`: a server with a file source, an RTMP
//!   publisher (ffmpeg), a WHEP viewer and `[auth]`; `tests/openapi_check.py` validates
//!   the description (openapi-spec-validator), then makes the requests of every endpoint,
//!   successes and errors, and validates each request/response pair with openapi-core.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::{Server, demo_stream, ffmpeg_publish_loop, require_tool, root, test_config};
use corecast_client::{ReceiveMode, WhepPeer, WhepViewer};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const SECRET: &str = "a test secret of at least 32 bytes, for the OpenAPI test";

/// Every endpoint of the HTTP server with its methods, as the description must have them.
const ENDPOINTS: &[(&str, &[&str])] = &[
    ("/", &["GET", "HEAD", "OPTIONS"]),
    ("/index.html", &["GET", "HEAD", "OPTIONS"]),
    ("/api/v1/streams", &["GET", "HEAD", "POST", "OPTIONS"]),
    (
        "/api/v1/streams/{path}",
        &["GET", "HEAD", "PATCH", "DELETE", "OPTIONS"],
    ),
    ("/api/v1/sessions", &["GET", "HEAD", "OPTIONS"]),
    ("/api/v1/sessions/{id}", &["DELETE", "OPTIONS"]),
    ("/api/v1/config/reload", &["POST", "OPTIONS"]),
    ("/api/v1/probe", &["POST", "OPTIONS"]),
    ("/api/v1/openapi.json", &["GET", "HEAD", "OPTIONS"]),
    ("/api/v1/health", &["GET", "HEAD", "OPTIONS"]),
    ("/metrics", &["GET", "HEAD", "OPTIONS"]),
    ("/whep/{path}", &["POST", "DELETE", "PATCH", "OPTIONS"]),
    ("/ws", &["GET", "HEAD", "OPTIONS"]),
    ("/mse/{path}", &["GET", "HEAD", "OPTIONS"]),
];

fn description() -> Value {
    let text = std::fs::read_to_string(root().join("src/http/admin/openapi.json"))
        .expect("src/http/admin/openapi.json");
    serde_json::from_str(&text).expect("the description is JSON")
}

fn methods(list: &str) -> BTreeSet<String> {
    list.split(',')
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| !m.is_empty())
        .collect()
}

/// `(path, methods)` of the list kept here.
fn kept() -> BTreeSet<(String, BTreeSet<String>)> {
    ENDPOINTS
        .iter()
        .map(|(p, m)| (p.to_string(), methods(&m.join(","))))
        .collect()
}

/// The body of `fn name` in `src` (from its line to the first line that is just `}`).
fn fn_body<'a>(src: &'a str, name: &str) -> &'a str {
    let start = src.find(&format!("fn {name}(")).expect("function");
    let len = src[start..].find("\n}\n").expect("end of function");
    &src[start..start + len]
}

/// The string literals on a line, in order.
fn literals(line: &str) -> Vec<&str> {
    line.split('"').skip(1).step_by(2).collect()
}

/// What `admin::resource` routes: `(path, methods)` for each arm, read from its source.
/// An arm is `"name" [if ...] => "METHODS",` or `_ if rest.starts_with("name/") =>
/// "METHODS",` (a resource below `name`, described as `name/{param}`).
fn admin_resources() -> BTreeSet<(String, BTreeSet<String>)> {
    let src = std::fs::read_to_string(root().join("src/http/admin.rs")).expect("admin.rs");
    let mut out = BTreeSet::new();
    for line in fn_body(&src, "resource").lines() {
        let line = line.trim();
        if !line.contains("=>") || line.starts_with("//") || line.contains("return None") {
            continue;
        }
        let lits = literals(line);
        let (Some(name), Some(allow)) = (lits.first(), lits.last()) else {
            continue;
        };
        if lits.len() < 2 {
            continue;
        }
        let path = if line.starts_with("_ if rest.starts_with(") {
            let base = name.trim_end_matches('/');
            let param = if base == "streams" { "path" } else { "id" };
            format!("/api/v1/{base}/{{{param}}}")
        } else {
            format!("/api/v1/{name}")
        };
        out.insert((path, methods(allow)));
    }
    out
}

/// The paths `server::route` answers itself (its `known` list).
fn server_paths() -> BTreeSet<String> {
    let src = std::fs::read_to_string(root().join("src/http/server.rs")).expect("server.rs");
    let body = fn_body(&src, "route");
    let start = body.find("let known = matches!(").expect("the known paths");
    let end = start + body[start..].find(");").expect("end of the list");
    literals(&body[start..end])
        .into_iter()
        .filter(|p| p.starts_with('/'))
        .map(str::to_string)
        .collect()
}

/// WHEP's prefix and allowed methods.
fn whep() -> (String, BTreeSet<String>) {
    let src = std::fs::read_to_string(root().join("src/http/whep.rs")).expect("whep.rs");
    let find = |decl: &str| -> String {
        let line = src
            .lines()
            .find(|l| l.contains(decl))
            .unwrap_or_else(|| panic!("{decl} in whep.rs"));
        literals(line)[0].to_string()
    };
    let prefix = find("pub const PREFIX: &str");
    (
        format!("{prefix}{{path}}"),
        methods(&find("const ALLOW: &str")),
    )
}

#[test]
fn description_covers_every_endpoint() {
    let doc = description();
    let described: BTreeSet<(String, BTreeSet<String>)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(p, item)| {
            let ms = item
                .as_object()
                .expect("path item")
                .keys()
                .filter(|k| *k != "parameters" && !k.starts_with("x-"))
                .map(|k| k.to_ascii_uppercase())
                .collect();
            (p.clone(), ms)
        })
        .collect();
    let kept = kept();
    assert_eq!(
        described, kept,
        "the description's paths and methods differ from the endpoints this test keeps"
    );

    // The management API: every arm of admin::resource is in the list, with its methods.
    let admin = admin_resources();
    assert!(
        admin.len() >= 6,
        "read the arms of admin::resource: {admin:?}"
    );
    for (path, ms) in &admin {
        let listed = kept.iter().find(|(p, _)| p == path);
        let Some((_, listed)) = listed else {
            panic!(
                "admin::resource routes {path} ({ms:?}), which the list (and so the description) lacks"
            );
        };
        // The list's `streams` arm is POST only here: GET and HEAD are server.rs's.
        assert!(
            ms.is_subset(listed) && (listed - ms).iter().all(|m| m == "GET" || m == "HEAD"),
            "{path}: admin::resource allows {ms:?}, the list has {listed:?}"
        );
    }
    // Every /api/v1/ entry of the list is routed by admin.rs or server.rs.
    let server = server_paths();
    for (path, _) in kept.iter().filter(|(p, _)| p.starts_with("/api/v1/")) {
        assert!(
            admin.iter().any(|(p, _)| p == path) || server.contains(path),
            "{path} is in the list but neither admin::resource nor server::route has it"
        );
    }
    // server.rs's own paths and WHEP.
    for path in &server {
        assert!(
            kept.iter().any(|(p, _)| p == path),
            "server::route knows {path}, which the list (and so the description) lacks"
        );
    }
    let (whep_path, whep_methods) = whep();
    assert!(
        kept.contains(&(whep_path.clone(), whep_methods.clone())),
        "WHEP: {whep_path} {whep_methods:?} is not in the list"
    );
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `obs` (password) may read, use the API and read the metrics from anywhere; `viewer` may
/// only read; any caller on 127.0.0.1 may do everything; three failed attempts block an
/// address.
fn config() -> String {
    test_config(&format!(
        r#"
[auth]
jwt_secret = "{SECRET}"
fail_limit = 3
fail_block = "1m"

[[auth.users]]
user = "any"
ips = ["127.0.0.1/32"]
permissions = [{{ action = "publish" }}, {{ action = "read" }}, {{ action = "api" }}, {{ action = "metrics" }}]

[[auth.users]]
user = "obs"
password = "s3cret"
permissions = [{{ action = "read" }}, {{ action = "api" }}, {{ action = "metrics" }}]

[[auth.users]]
user = "viewer"
password = "v"
permissions = [{{ action = "read" }}]

{}"#,
        demo_stream("demo", 0)
    ))
}

#[test]
fn real_responses_match_the_description() {
    require_tool("python3");
    let have = Command::new("python3")
        .args(["-c", "import openapi_core, openapi_spec_validator"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        have,
        "the Python packages openapi-core and openapi-spec-validator are required for this \
         test but are not installed (tests/run.sh installs them)"
    );
    let s = Server::start("openapi", &config());
    let media = root().join("configs/media/demo.flv");
    let url = format!("rtmp://127.0.0.1:{}/live/pub", s.rtmp.port());
    let mut publisher = ffmpeg_publish_loop(&media, &[], &url);
    s.wait_stream("live/pub", |st| st["source"]["state"] == "live");

    let mut viewer =
        WhepViewer::connect(s.http, "demo", ReceiveMode::Light, Duration::from_secs(10))
            .expect("WHEP viewer of demo");
    assert!(
        viewer
            .run_until(|st| st.frames >= 1, Duration::from_secs(10))
            .expect("the viewer's session lives"),
        "the WHEP viewer gets frames"
    );

    // An offer for the script's own WHEP requests (answered, never connected).
    let sock = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let peer = WhepPeer::new(
        Instant::now(),
        sock.local_addr().expect("addr"),
        ReceiveMode::Light,
    )
    .expect("peer");
    let offer = s.dir.join("offer.sdp");
    std::fs::write(&offer, peer.offer()).expect("offer");
    let claims = json!({
        "exp": unix_now() + 600,
        "corecast_permissions": [{ "action": "api" }, { "action": "read" }, { "action": "metrics" }],
    });
    let key = EncodingKey::from_secret(SECRET.as_bytes()).expect("key");
    let jwt = encode(&Header::default(), &claims, &key).expect("jwt");

    let mut check = Command::new("python3")
        .arg(root().join("tests/openapi_check.py"))
        .arg("--spec")
        .arg(root().join("src/http/admin/openapi.json"))
        .arg("--base")
        .arg(format!("http://{}", s.http))
        .arg("--offer")
        .arg(&offer)
        .arg("--jwt")
        .arg(&jwt)
        .arg("--config")
        .arg(s.dir.join("corecast.toml"))
        .arg("--media")
        .arg(&media)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 tests/openapi_check.py");
    // The viewer keeps its session alive (consent) while the script runs.
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = check.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = check.kill();
            panic!("tests/openapi_check.py did not finish within 180 s");
        }
        let _ = viewer.run_for(Duration::from_millis(100));
    };
    let out = check.wait_with_output().expect("output");
    let _ = publisher.kill();
    let _ = publisher.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.success(),
        "responses that do not match the OpenAPI description:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
}
