//! Browser boundaries against the real binary: `/api` answers CORS only to origins in
//! `http.allow_origins`, `/ws` refuses foreign origins with 403 before the upgrade, WHEP
//! answers any origin without credentials, and `/api` hides peers' addresses from
//! callers that are not the host itself.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::*;
use corecast_client::http::request_from;
use corecast_client::{ReceiveMode, WhepPeer};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

const LISTED: &str = "http://player.example:8000";
const FOREIGN: &str = "http://evil.example";
const T: Duration = Duration::from_secs(10);

fn server(tag: &str) -> Server {
    let http = format!("allow_origins = [\"{LISTED}\"]");
    Server::start(tag, &test_config_http(&http, &demo_stream("demo", 0)))
}

/// `GET path` with extra headers, from `from` (or the default 127.0.0.1).
fn get(s: &Server, from: Option<&str>, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let from = from.map(|a| a.parse::<IpAddr>().expect("ip"));
    request_from(from, s.http, "GET", path, headers, None, T).expect("GET")
}

/// The status line of a `/ws` upgrade request with `origin` (and the request's own
/// `Host`).
fn ws_status(addr: SocketAddr, origin: Option<&str>) -> String {
    let mut c = connect(addr);
    let mut req = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(o) = origin {
        req.push_str(&format!("Origin: {o}\r\n"));
    }
    req.push_str("\r\n");
    c.write_all(req.as_bytes()).expect("write");
    let mut line = String::new();
    BufReader::new(c).read_line(&mut line).expect("status line");
    line.trim_end().to_string()
}

#[test]
fn api_cors_only_for_listed_origins() {
    let s = server("bounds-api");
    for path in ["/api/v1/streams", "/api/v1/health"] {
        let r = get(&s, None, path, &[("Origin", FOREIGN)]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("Access-Control-Allow-Origin"), None, "{path}");
        assert_eq!(r.header("Vary"), Some("Origin"), "{path}");
        let r = get(&s, None, path, &[("Origin", LISTED)]);
        assert_eq!(
            r.header("Access-Control-Allow-Origin"),
            Some(LISTED),
            "{path}"
        );
        assert_eq!(r.header("Access-Control-Allow-Credentials"), None);
    }
    // Same origin (the page itself) needs no CORS; a request without Origin gets none.
    let own = format!("http://{}", s.http);
    let r = get(&s, None, "/api/v1/streams", &[("Origin", &own)]);
    assert_eq!(
        (r.status, r.header("Access-Control-Allow-Origin")),
        (200, None)
    );
    let r = get(&s, None, "/api/v1/streams", &[]);
    assert_eq!(
        (r.status, r.header("Access-Control-Allow-Origin")),
        (200, None)
    );
    // Preflight: the same rule.
    let pre = |origin: &str| {
        let headers = [("Origin", origin), ("Access-Control-Request-Method", "GET")];
        request_from(
            None,
            s.http,
            "OPTIONS",
            "/api/v1/streams",
            &headers,
            None,
            T,
        )
        .expect("OPTIONS")
    };
    assert_eq!(pre(FOREIGN).header("Access-Control-Allow-Origin"), None);
    assert_eq!(
        pre(LISTED).header("Access-Control-Allow-Origin"),
        Some(LISTED)
    );
}

#[test]
fn ws_upgrade_from_a_foreign_origin_is_forbidden() {
    let s = server("bounds-ws");
    let own = format!("http://{}", s.http);
    assert!(ws_status(s.http, Some(FOREIGN)).starts_with("HTTP/1.1 403"));
    assert!(ws_status(s.http, Some("null")).starts_with("HTTP/1.1 403"));
    assert!(ws_status(s.http, Some(LISTED)).starts_with("HTTP/1.1 101"));
    assert!(ws_status(s.http, Some(&own)).starts_with("HTTP/1.1 101"));
    assert!(ws_status(s.http, None).starts_with("HTTP/1.1 101"));
    assert_eq!(s.metric("corecast_http_origin_refused_total"), 2);
    // Any origin with the explicit wildcard.
    let any = Server::start(
        "bounds-ws-any",
        &test_config_http("allow_origins = [\"*\"]", ""),
    );
    assert!(ws_status(any.http, Some(FOREIGN)).starts_with("HTTP/1.1 101"));
}

#[test]
fn whep_answers_any_origin_without_credentials() {
    corecast_client::init_crypto();
    let s = server("bounds-whep");
    s.wait_state("demo", T, |st| st == "live");
    let headers = [
        ("Origin", FOREIGN),
        ("Access-Control-Request-Method", "POST"),
    ];
    let r =
        request_from(None, s.http, "OPTIONS", "/whep/demo", &headers, None, T).expect("OPTIONS");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(r.header("Access-Control-Allow-Credentials"), None);

    let local: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let peer = WhepPeer::new(Instant::now(), local, ReceiveMode::Light).expect("offer");
    let offer = peer.offer();
    let body = Some(("application/sdp", offer.as_bytes()));
    let r = request_from(
        None,
        s.http,
        "POST",
        "/whep/demo",
        &[("Origin", FOREIGN)],
        body,
        T,
    )
    .expect("POST");
    assert_eq!(r.status, 201, "{}", r.body_text());
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(r.header("Access-Control-Allow-Credentials"), None);
    let location = r.header("Location").expect("Location").to_string();
    let r = request_from(
        None,
        s.http,
        "DELETE",
        &location,
        &[("Origin", FOREIGN)],
        None,
        T,
    )
    .expect("DELETE");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
}

#[test]
fn api_hides_publisher_addresses_from_other_hosts() {
    let s = server("bounds-addr");
    // A publisher from 127.0.0.1 (its address is the source URL).
    let mut publisher = rtmp::after_handshake(s.rtmp);
    publisher
        .write_all(&rtmp::publish_commands("live", "t"))
        .expect("publish");
    let end = Instant::now() + T;
    while s.stream("live/t").is_null() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let local = get(&s, None, "/api/v1/streams", &[]);
    let text = local.body_text();
    assert!(
        text.contains("rtmp://127.0.0.1:"),
        "the host sees addresses: {text}"
    );

    let other = get(&s, Some("127.0.0.2"), "/api/v1/streams", &[]);
    assert_eq!(other.status, 200);
    let text = other.body_text();
    assert!(text.contains("\"live/t\""), "{text}");
    assert!(!text.contains("127.0.0.1"), "a peer address leaked: {text}");
    assert!(!text.contains("\"url\""), "{text}");
    drop(publisher);
}
