//! WHIP (WebRTC-HTTP Ingestion Protocol, RFC 9725): `POST /whip/{path}` with an SDP offer
//! that sends video and/or audio publishes the stream on this shard and answers `201
//! Created` with the SDP answer (every candidate included: the server is ICE-lite) and a
//! `Location` to `DELETE`. `PATCH` (trickle ICE, ICE restart) is not supported: 405.
//!
//! A `POST` is checked before it costs anything: the access policy (`publish` on the
//! path: 401, 403 or 429; credentials as `Authorization: Bearer` (a JWT, or `user:password`)
//! or Basic), the stream's publish key when one is set (the Bearer value, as OBS sends
//! it), the content type (415), then the offer (400, 406), room (503, 429) and the path
//! (409). See [`crate::webrtc::signal::whip`].

use super::proto::{Request, Response};
use super::whep::{ALLOW, cors, options};
use crate::auth::{Action, Verdict};
use crate::shard::Shard;
use crate::stream::StreamPath;
use crate::webrtc::Handle;
use crate::webrtc::signal::{self, SignalError};
use crate::webrtc::table::SessionId;
use std::net::SocketAddr;
use subtle::ConstantTimeEq;

/// URL prefix of WHIP resources.
pub const PREFIX: &str = "/whip/";

/// Answers a request under [`PREFIX`] from the client at `peer`.
pub async fn handle(
    shard: &Shard,
    rtc: &Handle,
    req: &Request,
    peer: Option<SocketAddr>,
) -> Response {
    let rest = req.path[PREFIX.len()..].trim_end_matches('/');
    if rest.is_empty() {
        return cors(Response::text(
            404,
            "no stream path given: POST /whip/{path}",
        ));
    }
    match req.method.as_str() {
        "OPTIONS" => options(),
        "POST" => match post(shard, rtc, req, rest, peer) {
            Ok(r) => r,
            Err(e) => {
                signal::refused(shard, rtc, peer.map(|p| p.ip()), &e);
                let mut r = Response::text(e.status(), &e.to_string());
                if e.is_transient() {
                    r = r.header("Retry-After", "1");
                }
                cors(r)
            }
        },
        "DELETE" => delete(shard, rtc, req, rest),
        "PATCH" => cors(
            Response::text(
                405,
                "trickle ICE and ICE restarts are not supported: the answer carries every \
                 candidate; publish again to restart",
            )
            .header("Allow", ALLOW),
        ),
        other => cors(
            Response::text(405, &format!("{other} is not allowed on {}", req.path))
                .header("Allow", ALLOW),
        ),
    }
}

/// `DELETE /whip/{path}/{session}`: ends the publisher session if it publishes `path`.
fn delete(shard: &Shard, rtc: &Handle, req: &Request, rest: &str) -> Response {
    let Some((path, id)) = session_of(rest) else {
        return cors(Response::text(404, &format!("no session at {}", req.path)));
    };
    // A session id only ends the stream it was made for: the id of another path's
    // session (or a viewer's) is not found here.
    let _ = shard;
    let publishes = rtc.registry().publishing(id);
    if publishes.as_deref() == Some(path) && rtc.end_session(id) {
        cors(Response::new(200))
    } else {
        cors(Response::text(
            404,
            &format!("no publisher session {id} on {path}"),
        ))
    }
}

fn session_of(rest: &str) -> Option<(&str, SessionId)> {
    let (path, id) = rest.rsplit_once('/')?;
    if id.len() != 16 {
        return None;
    }
    Some((path, id.parse().ok()?))
}

fn post(
    shard: &Shard,
    rtc: &Handle,
    req: &Request,
    raw: &str,
    peer: Option<SocketAddr>,
) -> Result<Response, SignalError> {
    let path = StreamPath::parse(raw)?;
    let creds = req.credentials();
    let from = peer.map(|p| p.ip());
    let verdict = shard.authorize(Action::Publish, Some(path.as_str()), from, &creds);
    if verdict != Verdict::Allow {
        return Ok(cors(Response::refused(verdict, Action::Publish)));
    }
    let global = shard.shared.settings.config.rtmp.publish_key.as_deref();
    let streams = shard.shared.streams();
    if let Some(key) = streams.publish_key(path.as_str(), global) {
        let given = creds.token.as_deref().unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(key.as_bytes())) {
            return Ok(cors(
                Response::text(
                    401,
                    "this stream needs its publish key as `Authorization: Bearer <key>`",
                )
                .header("WWW-Authenticate", "Bearer realm=\"corecast\""),
            ));
        }
    }
    drop(streams);
    let ctype = req.header("Content-Type").unwrap_or("");
    let mime = ctype.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/sdp") {
        return Ok(cors(Response::text(
            415,
            &format!("the offer must be sent as Content-Type: application/sdp (got '{ctype}')"),
        )));
    }
    let Ok(sdp) = std::str::from_utf8(&req.body) else {
        return Err(SignalError::BadSdp("the SDP offer is not UTF-8".into()));
    };
    let via = signal::Via {
        signaling: crate::session::Signaling::Whip,
        peer,
    };
    let c = signal::whip::publish(shard, rtc, &path, sdp, via)?;
    let location = format!("{PREFIX}{}/{}", c.path, c.id);
    Ok(cors(
        Response::new(201)
            .header("Location", location)
            .header("ETag", format!("\"{}\"", c.id))
            .body("application/sdp", c.answer),
    ))
}
