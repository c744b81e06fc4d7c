//! `POST /api/v1/probe`: tries a camera (RTSP `OPTIONS` and `DESCRIBE`) before it is
//! added, and answers its tracks or what the camera did.
//!
//! The RTSP conversation is the source's own ([`crate::source::describe`], the same
//! sans-IO session core); this module reads the body, bounds the whole in time (at most
//! `rtsp.connect_timeout` + [`PROBE_EXTRA`]), bounds how many run at once per shard, and
//! redacts credentials in what it answers and logs. A probe is one async task among the
//! shard's others: it never blocks the shard.
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock.

use super::{Ctx, error, json_body};
use crate::http::proto::{Request, Response};
use crate::limit::LogLimiter;
use crate::media::MediaKind;
use crate::rtsp::proto::auth::Credentials;
use crate::rtsp::proto::url::RtspUrl;
use crate::source::{DescribeRequest, Described, describe};
use futures_lite::future::or;
use serde_json::{Map, Value, json};
use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};
use tracing::info;

/// What a probe may take beyond `rtsp.connect_timeout` (the camera's answers).
pub const PROBE_EXTRA: Duration = Duration::from_secs(5);
/// Largest request body read.
const MAX_BODY: usize = 64 * 1024;
/// Probes running at once on one shard; more are answered 503.
const MAX_RUNNING: usize = 4;
/// Longest `Server` header shown.
const MAX_SERVER_LEN: usize = 200;

thread_local! {
    /// Probes running on this shard.
    static RUNNING: Cell<usize> = const { Cell::new(0) };
    /// One log line per second for probes, whatever the rate.
    static LOG: RefCell<LogLimiter> = RefCell::new(LogLimiter::new(Duration::from_secs(1)));
}

/// Counts a running probe while it lives.
struct Running;

impl Running {
    fn enter() -> Option<Running> {
        RUNNING.with(|r| {
            (r.get() < MAX_RUNNING).then(|| {
                r.set(r.get() + 1);
                Running
            })
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.with(|r| r.set(r.get().saturating_sub(1)));
    }
}

/// A probe as the body asks for it.
#[derive(Debug, PartialEq)]
struct ProbeBody {
    url: RtspUrl,
    credentials: Option<Credentials>,
}

/// The body's camera, as [`handle`] reads it: `Ok(url redacted, whether credentials
/// were given)` or the 400 message. For the fuzz target.
pub fn parse_body(body: &[u8]) -> Result<(String, bool), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let p = parse(&v)?;
    Ok((p.url.redacted(), p.credentials.is_some()))
}

/// Reads `{"url", "user"?, "password"?, "transport"?}`; the transport is checked but a
/// probe runs no media, so it does not change what is done.
fn parse(v: &Value) -> Result<ProbeBody, String> {
    let Some(obj) = v.as_object() else {
        return Err("body must be a JSON object".into());
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "url" | "user" | "password" | "transport"))
    {
        return Err(format!(
            "unknown key '{k}' (expected url, user, password, transport)"
        ));
    }
    let text = |key: &str| -> Result<Option<&str>, String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("{key} must be a string")),
        }
    };
    let url = text("url")?.ok_or("url is required (rtsp://host[:port]/path)")?;
    let url = RtspUrl::parse(url).map_err(|e| format!("url: {e}"))?;
    if let Some(t) = text("transport")?
        && !matches!(t, "tcp" | "udp" | "auto")
    {
        return Err(format!(
            "transport: expected \"tcp\", \"udp\" or \"auto\", got \"{t}\""
        ));
    }
    let user = text("user")?.filter(|u| !u.is_empty());
    let password = text("password")?.filter(|p| !p.is_empty());
    for (key, v) in [("user", user), ("password", password)] {
        if v.is_some_and(|v| v.chars().any(char::is_control)) {
            return Err(format!("{key} must not contain control characters"));
        }
    }
    let credentials = match (user, password) {
        (Some(user), password) => Some(Credentials {
            user: user.to_string(),
            password: password.unwrap_or_default().to_string(),
        }),
        (None, Some(_)) => return Err("password given without user".into()),
        (None, None) => None,
    };
    Ok(ProbeBody { url, credentials })
}

/// The 200 body: the redacted URL, each usable track, the camera's `Server`.
fn answer(url: &RtspUrl, d: &Described) -> Value {
    let tracks: Vec<Value> = d
        .tracks
        .iter()
        .map(|t| {
            let kind = match t.track.codec.kind() {
                MediaKind::Video => "video",
                _ => "audio",
            };
            let mut o = Map::new();
            o.insert("kind".into(), kind.into());
            o.insert("codec".into(), t.track.codec.name().to_uppercase().into());
            o.insert("clock_rate".into(), t.track.clock_rate.into());
            if let Some(ch) = t.track.channels {
                o.insert("channels".into(), ch.into());
            }
            Value::Object(o)
        })
        .collect();
    let mut body = json!({ "url": url.redacted(), "tracks": tracks });
    if let Some(s) = &d.server {
        let s: String = s.chars().take(MAX_SERVER_LEN).collect();
        body["server"] = s.into();
    }
    body
}

/// Runs `OPTIONS` and `DESCRIBE` against the camera in the body.
pub async fn handle(cx: &Ctx<'_>, req: &Request) -> Response {
    if req.body.len() > MAX_BODY {
        let msg = format!("body larger than {} KiB", MAX_BODY / 1024);
        return error(413, &msg);
    }
    let body = match json_body(req) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let probe = match parse(&body) {
        Ok(p) => p,
        Err(msg) => return error(400, &msg),
    };
    let Some(_running) = Running::enter() else {
        let msg = format!("{MAX_RUNNING} probes are running on this shard; try again shortly");
        return error(503, &msg).header("Retry-After", "1");
    };
    let rtsp = &cx.shard.shared.settings.config.rtsp;
    let limit = rtsp.connect_timeout.0 + PROBE_EXTRA;
    let url = probe.url.clone();
    let run = describe(DescribeRequest {
        url: probe.url,
        credentials: probe.credentials,
        connect_timeout: rtsp.connect_timeout.0,
        response_timeout: rtsp.response_timeout.0.min(PROBE_EXTRA),
    });
    let timed_out = async {
        glommio::timer::sleep(limit).await;
        None
    };
    let result = or(async { Some(run.await) }, timed_out).await;
    let (status, body, outcome) = match result {
        Some(Ok(d)) => {
            let outcome = format!("{} track(s)", d.tracks.len());
            (200, answer(&url, &d), outcome)
        }
        Some(Err(e)) => {
            let msg = e.to_string();
            (502, json!({ "error": msg }), msg)
        }
        None => {
            let msg = format!("camera did not answer DESCRIBE within {limit:?} (timeout)");
            (502, json!({ "error": msg }), msg)
        }
    };
    log(cx, &url, &outcome);
    Response::json(status, body.to_string())
}

/// One line per probe, at most one per second (the others counted in it).
fn log(cx: &Ctx<'_>, url: &RtspUrl, outcome: &str) {
    let Some(burst) = LOG.with(|l| l.borrow_mut().hit(Instant::now())) else {
        return;
    };
    let url = url.redacted();
    let from = cx.ip.map(|ip| ip.to_string()).unwrap_or_default();
    if burst.count > 1 {
        info!(%url, %from, probes = burst.count, over = ?burst.over, "api: probe: {outcome} (and the probes since the last line)");
    } else {
        info!(%url, %from, "api: probe: {outcome}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &str) -> Result<ProbeBody, String> {
        parse(&serde_json::from_str(s).expect("test JSON"))
    }

    #[test]
    fn body_keys_credentials_and_errors() {
        let p = body(r#"{"url": "rtsp://a:b@192.0.2.1/x", "transport": "tcp"}"#).expect("ok");
        assert_eq!(p.url.host, "192.0.2.1");
        assert_eq!(p.credentials, None, "the URL's own are used by the session");
        let p = body(r#"{"url": "rtsp://192.0.2.1/x", "user": "u", "password": "p"}"#).expect("ok");
        assert_eq!(
            p.credentials.map(|c| (c.user, c.password)),
            Some(("u".into(), "p".into()))
        );
        // Empty fields (a form left blank) are no credentials.
        let p = body(r#"{"url": "rtsp://192.0.2.1/x", "user": "", "password": ""}"#).expect("ok");
        assert_eq!(p.credentials, None);
        for (b, want) in [
            (r#"[]"#, "body must be a JSON object"),
            (r#"{}"#, "url is required"),
            (r#"{"url": 5}"#, "url must be a string"),
            (
                r#"{"url": "http://x/"}"#,
                "url: camera URL must start with rtsp://",
            ),
            (r#"{"url": "rtsp://"}"#, "url: camera URL has no host"),
            (
                r#"{"url": "rtsp://h/", "transport": "quic"}"#,
                "transport: expected",
            ),
            (
                r#"{"url": "rtsp://h/", "password": "p"}"#,
                "password given without user",
            ),
            (r#"{"url": "rtsp://h/", "pass": "p"}"#, "unknown key 'pass'"),
            (
                r#"{"url": "rtsp://h/", "user": "a\r\nX: y"}"#,
                "user must not contain control characters",
            ),
        ] {
            let e = body(b).expect_err(b);
            assert!(e.starts_with(want), "{b}: {e}");
        }
    }

    #[test]
    fn answer_redacts_and_lists_tracks() {
        use crate::media::{Codec, Track, TrackId};
        use crate::rtsp::proto::session::SetupTrack;
        let url =
            RtspUrl::parse("rtsp://admin:secret@192.0.2.1/live?password=hunter2").expect("url");
        let track = |codec, rate, channels| {
            let mut t = Track::new(TrackId(0), codec, rate);
            t.channels = channels;
            SetupTrack {
                index: 0,
                track: t,
                depack: crate::rtp::depack::DepackConfig::H264,
                control: String::new(),
                payload_type: 96,
            }
        };
        let d = Described {
            tracks: vec![
                track(Codec::H264, 90000, None),
                track(Codec::Aac, 48000, Some(2)),
            ],
            skipped: vec![],
            server: Some("GStreamer RTSP server".into()),
        };
        let v = answer(&url, &d);
        let text = v.to_string();
        assert!(
            !text.contains("secret") && !text.contains("hunter2"),
            "{text}"
        );
        assert_eq!(
            v,
            json!({
                "url": "rtsp://192.0.2.1:554/live?password=***",
                "tracks": [
                    {"kind": "video", "codec": "H264", "clock_rate": 90000},
                    {"kind": "audio", "codec": "AAC", "clock_rate": 48000, "channels": 2},
                ],
                "server": "GStreamer RTSP server",
            })
        );
    }
}
