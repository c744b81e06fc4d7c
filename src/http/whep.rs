//! WHEP (WebRTC-HTTP Egress Protocol): `POST /whep/{path}` with an SDP offer creates a
//! session on this shard and answers `201 Created` with the SDP answer (all candidates
//! included: the server is ICE-lite, so no trickle is needed) and a `Location` to
//! `DELETE`. `PATCH` (trickle ICE) is not supported: 405. A stream whose video has
//! B-frames is still answered (201), with a `Warning: 299 corecast "..."` header saying
//! that browsers' WebRTC players stutter on them ([`signal::bframes_warning`]).
//!
//! A `POST` is checked before it can cost anything: the access policy first (`read` on
//! the path: 401 with `WWW-Authenticate`, 403 or 429), then a path that names no stream is 404
//! before the body is looked at, then the SDP is read (400 when it cannot receive
//! anything), then the shard's and the viewer address's limits (503, 429); only then
//! does the offer subscribe (and so start an on-demand camera). See
//! [`crate::webrtc::signal`].

use super::proto::{Request, Response};
use crate::auth::{Action, Verdict};
use crate::shard::Shard;
use crate::stream::StreamPath;
use crate::webrtc::Handle;
use crate::webrtc::signal::{self, Offer, SignalError};
use crate::webrtc::table::SessionId;
use std::net::SocketAddr;

/// URL prefix of WHEP resources.
pub const PREFIX: &str = "/whep/";

/// The methods a WHEP or WHIP resource takes.
pub(super) const ALLOW: &str = "OPTIONS, POST, DELETE, PATCH";

/// `r` with the CORS headers a browser needs to read a WHEP or WHIP answer.
pub(super) fn cors(r: Response) -> Response {
    r.header("Access-Control-Allow-Origin", "*")
        .header("Access-Control-Expose-Headers", "Location, Link, Warning")
}

/// Answers a request under [`PREFIX`] from the client at `peer`.
pub async fn handle(
    shard: &Shard,
    rtc: &Handle,
    req: &Request,
    peer: Option<SocketAddr>,
) -> Response {
    let from = peer.map(|p| p.ip());
    let rest = req.path[PREFIX.len()..].trim_end_matches('/');
    if rest.is_empty() {
        return cors(Response::text(
            404,
            "no stream path given: POST /whep/{path}",
        ));
    }
    match req.method.as_str() {
        "OPTIONS" => options(),
        "POST" => match post(shard, rtc, req, rest, peer).await {
            Ok(r) => r,
            Err(e) => {
                signal::refused(shard, rtc, from, &e);
                error_response(&e)
            }
        },
        "DELETE" => {
            let Some(id) = session_of(rest) else {
                return cors(Response::text(404, &format!("no session at {}", req.path)));
            };
            if rtc.end_session(id) {
                cors(Response::new(200))
            } else {
                cors(Response::text(404, &format!("no session {id}")))
            }
        }
        "PATCH" => cors(
            Response::text(
                405,
                "trickle ICE is not supported: the answer carries every candidate",
            )
            .header("Allow", ALLOW),
        ),
        other => cors(
            Response::text(405, &format!("{other} is not allowed on {}", req.path))
                .header("Allow", ALLOW),
        ),
    }
}

fn session_of(rest: &str) -> Option<SessionId> {
    let (_, id) = rest.rsplit_once('/')?;
    if id.len() != 16 {
        return None;
    }
    id.parse().ok()
}

async fn post(
    shard: &Shard,
    rtc: &Handle,
    req: &Request,
    path: &str,
    peer: Option<SocketAddr>,
) -> Result<Response, SignalError> {
    let from = peer.map(|p| p.ip());
    // Who may watch, then whether the stream can exist, are known from the path alone.
    if let Ok(p) = StreamPath::parse(path) {
        let creds = req.credentials();
        let verdict = shard.authorize(Action::Read, Some(p.as_str()), from, &creds);
        if verdict != Verdict::Allow {
            return Ok(cors(Response::refused(verdict, Action::Read)));
        }
    }
    signal::find_stream(shard, path)?;
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
    // Checked in full before anything subscribes; an on-demand camera starts pulling
    // only then, and the offer waits for its tracks.
    let offer = Offer::parse(path, sdp)?;
    let via = signal::Via {
        signaling: crate::session::Signaling::Whep,
        peer,
    };
    let c = signal::answer(shard, rtc, &offer, via).await?;
    let location = format!("{PREFIX}{}/{}", c.path, c.id);
    let mut r = Response::new(201)
        .header("Location", location)
        .header("ETag", format!("\"{}\"", c.id));
    if let Some(w) = &c.warning {
        r = r.header("Warning", warning_value(w));
    }
    Ok(cors(r.body("application/sdp", c.answer)))
}

/// A `Warning` header value (RFC 7234 5.5, code 299 "miscellaneous persistent warning")
/// with `text` as its quoted string.
fn warning_value(text: &str) -> String {
    let quoted: String = text
        .chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("299 corecast \"{quoted}\"")
}

fn error_response(e: &SignalError) -> Response {
    let mut r = Response::text(e.status(), &e.to_string());
    if e.is_transient() {
        r = r.header("Retry-After", "1");
    }
    cors(r)
}

/// The answer to `OPTIONS` on a WHEP or WHIP resource.
pub(super) fn options() -> Response {
    cors(
        Response::new(204)
            .header("Allow", ALLOW)
            .header("Access-Control-Allow-Methods", ALLOW)
            .header(
                "Access-Control-Allow-Headers",
                "Content-Type, If-Match, Authorization",
            )
            .header("Accept-Post", "application/sdp"),
    )
}
