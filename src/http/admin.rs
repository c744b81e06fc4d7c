//! The management API under `/api/v1/`: streams added, changed and removed at runtime
//! (`streams`), the config reloaded, sessions listed and ended (`sessions`), a camera
//! tried before it is added (`probe`), and the OpenAPI description of it all.
//!
//! Every endpoint here needs the `api` permission (loopback only by default). A request
//! that changes something must come from no browser page or from an allowed one
//! (`http.allow_origins`): a foreign page is refused with 403 before anything is read,
//! so another site cannot drive the API with the credentials a browser holds.
//! `GET /api/v1/streams` (the list the page reads) and `/api/v1/health` are answered by
//! [`super::server`].

pub mod probe;
mod sessions;
mod streams;

use super::origin::{self, Scheme};
use super::proto::{Request, Response};
use crate::auth::{Action, Verdict};
use crate::shard::ShardRef;
use crate::webrtc::Handle;
use std::net::IpAddr;

/// URL prefix of the API.
pub const PREFIX: &str = "/api/v1/";

/// What a handler gets besides the request.
pub struct Ctx<'a> {
    /// The shard the request came in on.
    pub shard: &'a ShardRef,
    /// That shard's WebRTC side.
    pub rtc: &'a Handle,
    /// The caller's address.
    pub ip: Option<IpAddr>,
    /// The listener's scheme.
    pub scheme: Scheme,
}

/// The OpenAPI 3 description of the API.
const OPENAPI: &str = include_str!("admin/openapi.json");

/// The resources this module answers, with the methods each allows.
fn resource(path: &str, method: &str) -> Option<&'static str> {
    let rest = path.strip_prefix(PREFIX)?;
    Some(match rest {
        // GET of the list is the page's (server.rs); here only POST.
        "streams" if method != "GET" && method != "HEAD" => "GET, HEAD, POST, OPTIONS",
        _ if rest.starts_with("streams/") => "GET, HEAD, PATCH, DELETE, OPTIONS",
        "sessions" => "GET, HEAD, OPTIONS",
        _ if rest.starts_with("sessions/") => "DELETE, OPTIONS",
        "config/reload" => "POST, OPTIONS",
        "probe" => "POST, OPTIONS",
        "openapi.json" => "GET, HEAD, OPTIONS",
        _ => return None,
    })
}

/// Answers `req` if it is one of this module's resources; `None` leaves it to the
/// caller. Every answer, refusals and preflights included, has `Cache-Control: no-store`
/// and `Vary: Origin`.
pub async fn route(cx: &Ctx<'_>, req: &Request) -> Option<Response> {
    let r = answer(cx, req).await?;
    Some(r.header("Cache-Control", "no-store"))
}

async fn answer(cx: &Ctx<'_>, req: &Request) -> Option<Response> {
    let allow_methods = resource(&req.path, &req.method)?;
    let allow = &cx.shard.shared.settings.config.http.allow_origins;
    let cors = |r: Response| origin::api_cors(r, req, allow, cx.scheme);
    if req.method == "OPTIONS" {
        let r = Response::new(204)
            .header("Allow", allow_methods)
            .header("Access-Control-Allow-Methods", allow_methods)
            .header(
                "Access-Control-Allow-Headers",
                "Content-Type, Authorization",
            );
        return Some(cors(r));
    }
    let method_ok = allow_methods.split(", ").any(|m| m == req.method);
    if !method_ok {
        let msg = format!("{} is not allowed on {}", req.method, req.path);
        return Some(cors(error(405, &msg).header("Allow", allow_methods)));
    }
    let changes = !matches!(req.method.as_str(), "GET" | "HEAD");
    if changes && !origin::classify(req, allow, cx.scheme).allowed() {
        let from = req.header("Origin").unwrap_or_default();
        let msg =
            format!("pages of origin '{from}' may not change the server (http.allow_origins)");
        return Some(cors(error(403, &msg)));
    }
    let creds = req.credentials();
    let verdict = cx.shard.authorize(Action::Api, None, cx.ip, &creds);
    if verdict != Verdict::Allow {
        return Some(cors(Response::refused(verdict, Action::Api)));
    }
    let rest = &req.path[PREFIX.len()..];
    let r = match rest {
        "openapi.json" => Response::new(200).body("application/json", OPENAPI),
        "config/reload" => streams::reload(cx).await,
        "probe" => probe::handle(cx, req).await,
        "sessions" => sessions::list(cx, req).await,
        _ if rest.starts_with("sessions/") => {
            sessions::delete(cx, &rest["sessions/".len()..]).await
        }
        _ => streams::handle(cx, req, rest.strip_prefix("streams").unwrap_or(rest)).await,
    };
    Some(cors(r))
}

/// An error answer: `{"error": msg}` with `status`.
pub fn error(status: u16, msg: &str) -> Response {
    Response::json(status, serde_json::json!({ "error": msg }).to_string())
}

/// The JSON body of `req`, or a 400/415 answer naming what is wrong.
pub fn json_body(req: &Request) -> Result<serde_json::Value, Response> {
    let ct = req.header("Content-Type").unwrap_or_default();
    let essence = ct.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json")
        && !essence.eq_ignore_ascii_case("application/merge-patch+json")
    {
        let msg = format!("expected a JSON body (Content-Type: application/json), got '{ct}'");
        return Err(error(415, &msg));
    }
    serde_json::from_slice(&req.body).map_err(|e| error(400, &format!("body is not JSON: {e}")))
}
