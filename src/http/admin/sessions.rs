//! `GET /api/v1/sessions` and `DELETE /api/v1/sessions/{id}`: every publisher, RTMP
//! player, WebRTC viewer and RTSP camera source of every shard, read from the
//! process-wide [`crate::session::Registry`]; ending one is asked of the shard that holds
//! it (over the mesh when that is another shard).

use super::{Ctx, error};
use crate::http::proto::{Request, Response};
use crate::session::{EndError, Id};
use tracing::info;

/// Every session on every shard, sorted by id.
pub async fn list(cx: &Ctx<'_>, _req: &Request) -> Response {
    let sessions: Vec<serde_json::Value> = cx
        .shard
        .sessions
        .registry()
        .list()
        .iter()
        .map(|e| e.to_json())
        .collect();
    Response::json(200, serde_json::json!({ "sessions": sessions }).to_string())
}

/// Ends session `id`: 204 once its shard was asked to.
pub async fn delete(cx: &Ctx<'_>, id: &str) -> Response {
    let id: Id = match id.parse() {
        Ok(id) => id,
        Err(e) => return error(400, &e.to_string()),
    };
    match cx.shard.sessions.end(id) {
        Ok(e) => {
            info!(
                by = ?cx.ip,
                session = %id,
                protocol = e.protocol.as_str(),
                kind = e.kind.as_str(),
                path = e.path.as_deref().unwrap_or(""),
                remote = ?e.remote(),
                shard = e.shard,
                "session ended through the management API"
            );
            Response::new(204)
        }
        Err(e @ EndError::NotFound(_)) => error(404, &e.to_string()),
    }
}
