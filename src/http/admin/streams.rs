//! `POST /api/v1/streams`, `GET|PATCH|DELETE /api/v1/streams/{path}` and
//! `POST /api/v1/config/reload`: the HTTP face of [`crate::source::manage`].
//!
//! A body is one `[[streams]]` entry as JSON (the keys of the config file); a PATCH is a
//! JSON merge patch of the entry (RFC 7396: a key set to `null` is removed). Errors are
//! the config file's one-line messages (`streams[cams/cam7].source: ...`).

use super::{Ctx, error, json_body};
use crate::config::{StreamConfig, entry_from_json, merge_patch};
use crate::http::api;
use crate::http::proto::{Request, Response};
use crate::source::manage::{self, Change, ChangeError, Outcome, ReloadError};
use crate::stream::StreamPath;
use serde_json::{Value, json};
use std::time::Duration;

/// How long a POST or PATCH waits for the owner shard to show the stream in its answer.
const SHOW_WAIT: Duration = Duration::from_secs(1);
const SHOW_POLL: Duration = Duration::from_millis(10);

/// A request under `/api/v1/streams` (`rest`: empty or `/{path}`).
pub async fn handle(cx: &Ctx<'_>, req: &Request, rest: &str) -> Response {
    let raw = rest.trim_start_matches('/');
    if raw.is_empty() {
        // Only POST reaches here for the list (GET is the page's).
        return post(cx, req).await;
    }
    let path = match StreamPath::parse(raw) {
        Ok(p) => p,
        Err(e) => return error(404, &format!("'{raw}' is not a stream path: {e}")),
    };
    match req.method.as_str() {
        "GET" | "HEAD" => get(cx, &path),
        "PATCH" => patch(cx, req, &path).await,
        _ => delete(cx, &path),
    }
}

fn get(cx: &Ctx<'_>, path: &StreamPath) -> Response {
    let shared = &cx.shard.shared;
    let table = shared.streams().clone();
    match api::stream_json(
        &shared.snapshots(),
        &table,
        path.as_str(),
        shared.transcodes_audio(),
    ) {
        Some(v) => Response::json(200, v.to_string()),
        None => error(
            404,
            &format!("no stream '{path}' (not published, not configured)"),
        ),
    }
}

async fn post(cx: &Ctx<'_>, req: &Request) -> Response {
    let body = match json_body(req) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let label = body
        .get("path")
        .and_then(Value::as_str)
        .and_then(|p| StreamPath::parse(p).ok())
        .map_or_else(|| "new".to_string(), |p| p.as_str().to_string());
    let entry = match entry_from(body, &label) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let path = entry.path.clone();
    match manage::change(cx.shard, Change::Add(entry)) {
        Ok(done) => {
            let path = StreamPath::parse(&path).map_or(path, |p| p.as_str().to_string());
            let location = format!("/api/v1/streams/{path}");
            let body = answer(cx, &path, &done).await;
            Response::json(201, body.to_string()).header("Location", location)
        }
        Err(e) => change_error(&e),
    }
}

async fn patch(cx: &Ctx<'_>, req: &Request, path: &StreamPath) -> Response {
    let patch = match json_body(req) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !patch.is_object() {
        return error(400, "a PATCH body is a JSON object of the keys to change");
    }
    let Some((_, entry)) = cx
        .shard
        .shared
        .streams()
        .entry(path)
        .map(|(i, e)| (i, e.clone()))
    else {
        return error(404, &format!("no configured stream has the path '{path}'"));
    };
    let mut merged = serde_json::to_value(&entry).unwrap_or(Value::Null);
    merge_patch(&mut merged, &patch);
    let same_path = merged
        .get("path")
        .and_then(Value::as_str)
        .and_then(|p| StreamPath::parse(p).ok())
        .is_some_and(|p| p == *path);
    if !same_path {
        let msg = format!(
            "streams[{path}].path: a stream's path cannot change; add the new path and delete this one"
        );
        return error(400, &msg);
    }
    let entry = match entry_from(merged, path.as_str()) {
        Ok(e) => e,
        Err(r) => return r,
    };
    match manage::change(cx.shard, Change::Replace(entry)) {
        Ok(done) => Response::json(200, answer(cx, path.as_str(), &done).await.to_string()),
        Err(e) => change_error(&e),
    }
}

fn delete(cx: &Ctx<'_>, path: &StreamPath) -> Response {
    match manage::change(cx.shard, Change::Remove(path.clone())) {
        Ok(done) => {
            let body = json!({
                "path": path.as_str(),
                "persisted": done.persisted,
                "message": done.message,
            });
            Response::json(200, body.to_string())
        }
        Err(e) => change_error(&e),
    }
}

/// Re-reads the config file (as SIGHUP does).
pub async fn reload(cx: &Ctx<'_>) -> Response {
    match manage::reload_logged(cx.shard, "POST /api/v1/config/reload") {
        Ok(done) => {
            let c = &done.changes;
            let body = json!({
                "added": c.added,
                "changed": c.changed,
                "removed": c.removed,
                "unchanged": c.unchanged,
                "restart_needed": done.restart_needed,
            });
            Response::json(200, body.to_string())
        }
        Err(e @ ReloadError::NoFile) => error(409, &e.to_string()),
        Err(e) => error(400, &e.to_string()),
    }
}

/// An entry from its JSON, or 400 with the config file's message for it.
fn entry_from(v: Value, label: &str) -> Result<StreamConfig, Response> {
    entry_from_json(v, label).map_err(|e| error(400, &e.to_string()))
}

/// The body of a POST or PATCH answer: where the change lives and the stream, once its
/// owner shows it (waited for up to [`SHOW_WAIT`]; a configured stream not published yet
/// is shown with no media).
async fn answer(cx: &Ctx<'_>, path: &str, done: &Outcome) -> Value {
    let shared = &cx.shard.shared;
    let has_source = shared.streams().has_source(path);
    let mut waited = Duration::ZERO;
    let stream = loop {
        let table = shared.streams().clone();
        let snapshots = shared.snapshots();
        let published = snapshots
            .iter()
            .flat_map(|s| s.paths.iter())
            .any(|p| &*p.info.path == path && p.info.source.is_some());
        if published || !has_source || waited >= SHOW_WAIT {
            break api::stream_json(&snapshots, &table, path, shared.transcodes_audio());
        }
        glommio::timer::sleep(SHOW_POLL).await;
        waited += SHOW_POLL;
    };
    json!({
        "path": path,
        "persisted": done.persisted,
        "message": done.message,
        "stream": stream,
    })
}

fn change_error(e: &ChangeError) -> Response {
    let status = match e {
        ChangeError::Invalid(_) => 400,
        ChangeError::NotFound(_) => 404,
        ChangeError::Exists(_) | ChangeError::Busy(..) => 409,
        ChangeError::Write { .. } => 500,
    };
    error(status, &e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_from_json_name_the_key_like_the_config_file() {
        let e = entry_from(json!({"path": "cam7", "transport": "quic"}), "cam7").unwrap_err();
        let body = String::from_utf8_lossy(&e.body).into_owned();
        assert_eq!(e.status, 400);
        assert!(
            body.contains("streams[cam7].transport: unknown variant"),
            "{body}"
        );
        let e = entry_from(json!({"path": "a", "colour": 1}), "a").unwrap_err();
        let body = String::from_utf8_lossy(&e.body).into_owned();
        assert!(
            body.contains("streams[a]") && body.contains("unknown field `colour`"),
            "{body}"
        );
        let ok = entry_from(json!({"path": "a", "source": "file:x.flv"}), "a").unwrap();
        assert_eq!(ok.source.as_deref(), Some("file:x.flv"));
    }
}
