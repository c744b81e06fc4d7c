//! WHIP ingest: what `POST /whip/{path}` answers, and what happens to a publisher that
//! never connects. Offers are made by str0m (a sendonly H.264 + Opus publisher); media
//! from real publishers is in `tests/browser.rs` (Chromium) and the client crate's
//! publisher tests below.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::{Server, test_config};
use corecast_client::http;
use std::time::{Duration, Instant};
use str0m::media::{Direction, MediaKind};
use str0m::{Rtc, RtcConfig};

const T: Duration = Duration::from_secs(10);

/// A publisher's SDP offer made by str0m: sendonly video and/or audio in the codecs of
/// `cfg`.
fn offer_with(cfg: RtcConfig, video: bool, audio: bool) -> String {
    let mut rtc: Rtc = cfg.build(Instant::now());
    let mut api = rtc.sdp_api();
    if video {
        api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    }
    if audio {
        api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    }
    let (offer, _pending) = api.apply().expect("an offer");
    offer.to_sdp_string()
}

/// H.264 and Opus (str0m's default codecs, VP8 and VP9 among them).
fn offer() -> String {
    offer_with(Rtc::builder(), true, true)
}

/// `POST /whip/{path}` with `sdp`, extra headers: (status, Location, body).
fn post(s: &Server, path: &str, sdp: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let r = http::request(
        s.http,
        "POST",
        &format!("/whip/{path}"),
        headers,
        Some(("application/sdp", sdp.as_bytes())),
        T,
    )
    .expect("http");
    let location = r.header("Location").unwrap_or("").to_string();
    (r.status, location, r.body_text())
}

fn status_of(s: &Server, method: &str, path: &str) -> u16 {
    http::request(s.http, method, path, &[], None, T)
        .expect("http")
        .status
}

/// Waits until the API lists `path` (every shard's snapshot has it within a second).
fn wait_listed(s: &Server, path: &str, listed: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let there = s
            .get("/api/v1/streams")
            .body_text()
            .contains(&format!("\"{path}\""));
        if there == listed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} listed: {there}, expected {listed}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_offer_is_answered_and_errors_have_their_statuses() {
    let s = Server::start("whip-statuses", &test_config(""));
    // A good offer: 201, a Location under the path, an answer that receives.
    let (status, location, answer) = post(&s, "live/one", &offer(), &[]);
    assert_eq!(status, 201, "{answer}");
    assert!(location.starts_with("/whip/live/one/"), "{location}");
    assert!(answer.contains("a=recvonly"), "{answer}");
    assert!(answer.contains("a=candidate:"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("h264"), "{answer}");
    assert!(answer.contains("opus"), "{answer}");
    wait_listed(&s, "live/one", true);
    // A second publisher on the path: 409.
    let (status, _, body) = post(&s, "live/one", &offer(), &[]);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already published"), "{body}");
    // Not SDP: 400; no section that sends: 400; nothing we take: 406 naming it.
    let (status, _, body) = post(&s, "live/two", "hello", &[]);
    assert_eq!(status, 400, "{body}");
    let recv_only = offer().replace("a=sendonly", "a=recvonly");
    let (status, _, body) = post(&s, "live/two", &recv_only, &[]);
    assert_eq!(status, 400, "{body}");
    let vp8 = offer_with(Rtc::builder().clear_codecs().enable_vp8(true), true, false);
    let (status, _, body) = post(&s, "live/two", &vp8, &[]);
    assert_eq!(status, 406, "{body}");
    assert!(body.contains("vp8") && body.contains("H.264"), "{body}");
    // Another content type: 415.
    let r = http::request(
        s.http,
        "POST",
        "/whip/live/two",
        &[],
        Some(("text/plain", offer().as_bytes())),
        T,
    )
    .expect("http");
    assert_eq!(r.status, 415);
    // PATCH (trickle, ICE restart) is 405; OPTIONS answers CORS.
    assert_eq!(status_of(&s, "PATCH", &location), 405);
    let r = http::request(s.http, "OPTIONS", "/whip/live/two", &[], None, T).expect("http");
    assert_eq!(r.status, 204);
    assert!(
        r.header("Access-Control-Allow-Methods")
            .is_some_and(|m| m.contains("POST"))
    );
    // DELETE of the session under another path: 404; under its own: 200, then 404.
    let id = location.rsplit('/').next().unwrap_or("");
    assert_eq!(
        status_of(&s, "DELETE", &format!("/whip/live/other/{id}")),
        404
    );
    assert_eq!(status_of(&s, "DELETE", &location), 200);
    assert_eq!(status_of(&s, "DELETE", &location), 404);
    // The path is free again.
    wait_listed(&s, "live/one", false);
    let (status, _, body) = post(&s, "live/one", &offer(), &[]);
    assert_eq!(status, 201, "{body}");
}

#[test]
fn a_configured_path_cannot_be_published_and_the_shard_limit_is_503() {
    let config = test_config(&format!(
        "max_sessions = 1\n{}",
        common::demo_stream("demo", 0)
    ));
    let s = Server::start("whip-limits", &config);
    let (status, _, body) = post(&s, "demo", &offer(), &[]);
    assert_eq!(status, 409, "{body}");
    // One session per shard, two shards: of three publishers, one is refused at least.
    let statuses: Vec<u16> = (0..3)
        .map(|i| post(&s, &format!("live/p{i}"), &offer(), &[]).0)
        .collect();
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(statuses.contains(&201), "{statuses:?}");
}

#[test]
fn publishing_needs_the_publish_permission() {
    let config = test_config(
        r#"
[auth]
fail_limit = 0

[[auth.users]]
user = "obs"
password = "s3cret"
permissions = [{ action = "publish", path = "live/**" }]

[[auth.users]]
user = "viewer"
password = "v"
permissions = [{ action = "read" }]
"#,
    );
    let s = Server::start("whip-auth", &config);
    let (status, _, body) = post(&s, "live/cam", &offer(), &[]);
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = post(
        &s,
        "live/cam",
        &offer(),
        &[("Authorization", "Bearer viewer:v")],
    );
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = post(
        &s,
        "other",
        &offer(),
        &[("Authorization", "Bearer obs:s3cret")],
    );
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = post(
        &s,
        "live/cam",
        &offer(),
        &[("Authorization", "Bearer obs:wrong")],
    );
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = post(
        &s,
        "live/cam",
        &offer(),
        &[("Authorization", "Bearer obs:s3cret")],
    );
    assert_eq!(status, 201, "{body}");
}

#[test]
fn a_publisher_that_never_connects_is_cleaned_up() {
    let s = Server::start("whip-no-dtls", &test_config(""));
    let (status, _, body) = post(&s, "live/ghost", &offer(), &[]);
    assert_eq!(status, 201, "{body}");
    wait_listed(&s, "live/ghost", true);
    // No ICE, no DTLS: the session ends once nothing came for webrtc.session_timeout
    // (7 s; the connect time-out, 10 s, would come next) and the path is free.
    let log = s.log_until("whip publish ended", Duration::from_secs(20));
    let ended = log
        .lines()
        .find(|l| l.contains("whip publish ended"))
        .unwrap_or_else(|| panic!("no end logged:\n{log}"));
    assert!(
        ended.contains("connect failed") || ended.contains("consent lost"),
        "{ended}"
    );
    wait_listed(&s, "live/ghost", false);
    assert_eq!(s.metric("corecast_whip_publishers"), 0);
}
