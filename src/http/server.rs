//! The HTTP connection driver: accepts connections on a shard, reads requests through the
//! sans-IO parser, answers them in order, enforces the timeouts, and hands WebSocket
//! upgrades to the WebSocket loop.
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock.

use super::api;
use super::proto::{Limits, Request, RequestParser, Response};
use super::ws::{self, WsMessage, WsSession};
use crate::shard::{ConnGuard, Shard, ShardRef, Wake};
use crate::stats;
use crate::webrtc::table::SessionId;
use crate::webrtc::{Handle, signal};
use bytes::BytesMut;
use futures_lite::AsyncWriteExt;
use futures_lite::future;
use glommio::net::{TcpListener, TcpStream};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

const PAGE: &str = include_str!("page.html");
const READ_CHUNK: usize = 16 * 1024;
const WS_MAX_MESSAGE: usize = 64 * 1024;

/// Accepts HTTP connections until the task is dropped.
pub async fn serve(shard: ShardRef, rtc: Handle, listener: TcpListener) {
    let max = shard.shared.settings.config.http.max_connections as u64;
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!(shard = shard.id, "http accept: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let st = shard.stats();
        if stats::get(&st.connections) >= max {
            stats::add(&st.connections_refused, 1);
            glommio::spawn_local(refuse(stream)).detach();
            continue;
        }
        glommio::spawn_local(connection(shard.clone(), rtc.clone(), stream)).detach();
    }
}

async fn refuse(mut stream: TcpStream) {
    let mut out = BytesMut::new();
    Response::text(503, "server busy: too many connections on this shard")
        .write(&mut out, false, false);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.write_all(&out).await;
}

async fn connection(shard: ShardRef, rtc: Handle, mut stream: TcpStream) {
    let _guard = ConnGuard::new(&shard);
    let peer = stream.peer_addr().ok();
    let cfg = &shard.shared.settings.config.http;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(cfg.idle_timeout.0));
    let mut parser = RequestParser::new(Limits {
        max_header_bytes: cfg.max_header_bytes.as_usize(),
        max_body_bytes: cfg.max_body_bytes.as_usize(),
        ..Limits::default()
    });
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = BytesMut::new();
    let mut tmp = vec![0u8; READ_CHUNK];
    // When the first byte of the request being read arrived.
    let mut started: Option<Instant> = None;
    loop {
        // Answer every complete request in the buffer, in order.
        loop {
            match parser.parse(&mut buf) {
                Ok(Some(req)) => {
                    started = (!buf.is_empty()).then(Instant::now);
                    stats::add(&shard.stats().http_requests, 1);
                    if req.path == "/ws" && req.method == "GET" && req.wants_upgrade("websocket") {
                        match ws::upgrade_response(&req) {
                            Ok(resp) => {
                                resp.write(&mut out, true, false);
                                if flush(&shard, &mut stream, &mut out).await.is_ok() {
                                    websocket(&shard, &rtc, stream, buf, peer).await;
                                }
                            }
                            Err(e) => {
                                e.to_response().write(&mut out, false, false);
                                let _ = flush(&shard, &mut stream, &mut out).await;
                            }
                        }
                        return;
                    }
                    // An on-demand camera starts pulling now; the offer waits for its
                    // tracks (bounded by rtsp.on_demand_start_timeout).
                    let _demand = match super::whep::offer_path(&req) {
                        Some(p) => crate::webrtc::signal::await_media(&shard, p).await,
                        None => None,
                    };
                    let resp = route(&shard, &rtc, &req);
                    let keep_alive = req.keep_alive() && !shard.shutdown.is_fired();
                    debug!(peer = ?peer, method = %req.method, path = %req.path, status = resp.status, "http");
                    resp.write(&mut out, keep_alive, req.method == "HEAD");
                    if !keep_alive {
                        let _ = flush(&shard, &mut stream, &mut out).await;
                        return;
                    }
                }
                Ok(None) => {
                    if parser.take_expect_continue() {
                        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    break;
                }
                Err(e) => {
                    info!(peer = ?peer, status = e.status(), "bad HTTP request: {e}");
                    e.to_response().write(&mut out, false, false);
                    let _ = flush(&shard, &mut stream, &mut out).await;
                    return;
                }
            }
        }
        if flush(&shard, &mut stream, &mut out).await.is_err() {
            return;
        }
        let wait = match started {
            Some(t) => cfg.header_timeout.0.saturating_sub(t.elapsed()),
            None => cfg.idle_timeout.0,
        };
        let wake = shard
            .wait_io(&mut stream, &mut tmp, future::pending::<()>(), wait)
            .await;
        match wake {
            Wake::Read(Ok(0)) | Wake::Other(()) => return,
            Wake::Read(Ok(n)) => {
                if started.is_none() {
                    started = Some(Instant::now());
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            Wake::Read(Err(e)) => {
                debug!(peer = ?peer, "http read: {e}");
                return;
            }
            Wake::Timeout => {
                if started.is_some() {
                    info!(peer = ?peer, "request not completed within {:?}: closing", cfg.header_timeout.0);
                    Response::text(408, "request timeout").write(&mut out, false, false);
                    let _ = flush(&shard, &mut stream, &mut out).await;
                }
                return;
            }
            Wake::Shutdown => {
                if started.is_some() {
                    Response::text(503, "server shutting down").write(&mut out, false, false);
                    let _ = flush(&shard, &mut stream, &mut out).await;
                }
                return;
            }
        }
    }
}

async fn flush(shard: &Shard, stream: &mut TcpStream, out: &mut BytesMut) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let r = stream.write_all(out).await;
    if r.is_ok() {
        stats::add(&shard.stats().bytes_out, out.len() as u64);
    }
    out.clear();
    r
}

/// Routes a request to its handler.
pub fn route(shard: &Shard, rtc: &Handle, req: &Request) -> Response {
    let get_or_head = req.method == "GET" || req.method == "HEAD";
    let shared = &shard.shared;
    if req.path.starts_with(super::whep::PREFIX) {
        return super::whep::handle(shard, rtc, req);
    }
    let known = matches!(
        req.path.as_str(),
        "/" | "/index.html" | "/api/v1/streams" | "/api/v1/health" | "/metrics" | "/ws"
    );
    if !known {
        return Response::text(404, &format!("no such page: {}", req.path));
    }
    if req.method == "OPTIONS" {
        return Response::new(204)
            .header("Allow", "GET, HEAD, OPTIONS")
            .header("Access-Control-Allow-Origin", "*")
            .header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
    }
    if !get_or_head {
        return Response::text(
            405,
            &format!("{} is not allowed on {}", req.method, req.path),
        )
        .header("Allow", "GET, HEAD, OPTIONS");
    }
    match req.path.as_str() {
        "/" | "/index.html" => Response::new(200)
            .header("Cache-Control", "no-cache")
            .body("text/html; charset=utf-8", PAGE),
        "/api/v1/streams" => Response::json(
            200,
            api::streams_json(&shared.snapshots(), shared.rtmp_addr.port()),
        )
        .header("Access-Control-Allow-Origin", "*")
        .header("Cache-Control", "no-store"),
        "/api/v1/health" => {
            let now_ms = shared
                .started
                .elapsed()
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            // Heartbeats count from each shard's own start; compare against the freshest.
            let freshest = (0..shared.shards())
                .map(|i| shared.heartbeats[i].load(std::sync::atomic::Ordering::Relaxed))
                .max()
                .unwrap_or(now_ms);
            let (ok, body) = api::health_json(shared, freshest);
            Response::json(if ok { 200 } else { 503 }, body).header("Cache-Control", "no-store")
        }
        "/metrics" => Response::new(200).body(
            "text/plain; version=0.0.4; charset=utf-8",
            api::metrics_text(shared, &shared.snapshots()),
        ),
        _ => Response::text(426, "this endpoint needs a WebSocket upgrade")
            .header("Upgrade", "websocket"),
    }
}

/// The WebSocket loop at `/ws`: WebRTC signaling in JSON messages (see
/// [`handle_ws_text`]). The sessions a socket started end when it closes.
async fn websocket(
    shard: &Shard,
    rtc: &Handle,
    mut stream: TcpStream,
    leftover: BytesMut,
    peer: Option<SocketAddr>,
) {
    let mut ws = WsSession::new(WS_MAX_MESSAGE);
    let idle = shard.shared.settings.config.http.idle_timeout.0;
    if !leftover.is_empty() {
        ws.handle_input(&leftover);
    }
    let hello = serde_json::json!({"type": "hello", "server": "corecast", "version": env!("CARGO_PKG_VERSION"), "shard": shard.id});
    let _ = ws.send_text(hello.to_string());
    let mut tmp = vec![0u8; READ_CHUNK];
    let mut out = BytesMut::new();
    let mut sessions = WsSessions(Vec::new(), rtc);
    loop {
        loop {
            match ws.poll_message() {
                Ok(Some(WsMessage::Text(text))) => {
                    let _demand = match ws_offer_stream(&text) {
                        Some(s) => crate::webrtc::signal::await_media(shard, &s).await,
                        None => None,
                    };
                    for reply in handle_ws_text(shard, rtc, &text, &mut sessions.0) {
                        let _ = ws.send_text(reply);
                    }
                }
                Ok(Some(WsMessage::Binary(_))) => {
                    let _ = ws.send_text(
                        r#"{"type":"error","message":"binary messages are not supported"}"#.into(),
                    );
                }
                Ok(Some(WsMessage::Close)) => {}
                Ok(None) => break,
                Err(e) => {
                    info!(peer = ?peer, "websocket error: {e}");
                    ws.close();
                    out.extend_from_slice(&ws.take_output());
                    let _ = flush(shard, &mut stream, &mut out).await;
                    return;
                }
            }
        }
        out.extend_from_slice(&ws.take_output());
        if flush(shard, &mut stream, &mut out).await.is_err() || ws.is_closed() {
            return;
        }
        let wake = shard
            .wait_io(&mut stream, &mut tmp, future::pending::<()>(), idle)
            .await;
        match wake {
            Wake::Read(Ok(0)) | Wake::Read(Err(_)) | Wake::Other(()) => return,
            Wake::Read(Ok(n)) => ws.handle_input(&tmp[..n]),
            Wake::Timeout | Wake::Shutdown => {
                ws.close();
                out.extend_from_slice(&ws.take_output());
                let _ = flush(shard, &mut stream, &mut out).await;
                return;
            }
        }
    }
}

/// The WebRTC sessions a WebSocket started; they end with the socket.
struct WsSessions<'a>(Vec<SessionId>, &'a Handle);

impl Drop for WsSessions<'_> {
    fn drop(&mut self) {
        for id in self.0.drain(..) {
            self.1.end_session(id);
        }
    }
}

/// Most WebRTC sessions one WebSocket may hold.
const WS_MAX_SESSIONS: usize = 16;

fn ws_error(message: impl std::fmt::Display, extra: serde_json::Value) -> String {
    let mut v = serde_json::json!({"type": "error", "message": message.to_string()});
    if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in more {
            obj.insert(k.clone(), x.clone());
        }
    }
    v.to_string()
}

/// The stream of a WebSocket `offer` message, for waiting on its media first.
fn ws_offer_stream(text: &str) -> Option<String> {
    let msg: serde_json::Value = serde_json::from_str(text).ok()?;
    if msg.get("type")?.as_str()? != "offer" {
        return None;
    }
    Some(msg.get("stream")?.as_str()?.trim_matches('/').to_string())
}

/// Answers one signaling message; returns the replies in order.
///
/// - `{"type":"offer","stream":"live/cam1","sdp":"..."}` → `{"type":"answer","stream",
///   "session","sdp"}` then one `{"type":"candidate","session","candidate","sdpMid",
///   "sdpMLineIndex"}` per server candidate (they are also in the answer); or
///   `{"type":"error","message","status"}` with the WHEP status (404, 400, 406, 503).
/// - `{"type":"stop","session":"..."}` ends a session of this socket.
/// - `{"type":"candidate",...}` from the viewer is accepted and not needed (the server
///   is ICE-lite and learns the viewer's address from its checks).
/// - `{"type":"ping"}` → `{"type":"pong"}`.
pub fn handle_ws_text(
    shard: &Shard,
    rtc: &Handle,
    text: &str,
    sessions: &mut Vec<SessionId>,
) -> Vec<String> {
    use serde_json::json;
    let msg: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return vec![ws_error(format!("invalid JSON: {e}"), json!({}))],
    };
    let field = |k: &str| msg.get(k).and_then(|v| v.as_str());
    match field("type") {
        Some("ping") => vec![json!({"type": "pong"}).to_string()],
        Some("offer") => {
            let (Some(stream), Some(sdp)) = (field("stream"), field("sdp")) else {
                return vec![ws_error(
                    "an offer needs \"stream\" and \"sdp\"",
                    json!({"status": 400}),
                )];
            };
            let stream = stream.trim_matches('/');
            if sessions.len() >= WS_MAX_SESSIONS {
                return vec![ws_error(
                    format!("one WebSocket may watch at most {WS_MAX_SESSIONS} streams"),
                    json!({"status": 503, "stream": stream}),
                )];
            }
            match signal::create_session(shard, rtc, stream, sdp) {
                Ok(c) => {
                    sessions.push(c.id);
                    let session = c.id.to_string();
                    let mut replies = vec![
                        json!({"type": "answer", "stream": &*c.path, "session": &session, "sdp": &c.answer})
                            .to_string(),
                    ];
                    let (mid, candidates) = c.candidates();
                    for candidate in candidates {
                        replies.push(
                            json!({"type": "candidate", "session": &session, "candidate": candidate, "sdpMid": mid, "sdpMLineIndex": 0})
                                .to_string(),
                        );
                    }
                    replies
                }
                Err(e) => vec![ws_error(
                    &e,
                    json!({"status": e.status(), "stream": stream}),
                )],
            }
        }
        Some("stop") => {
            let id = field("session").and_then(|s| s.parse::<SessionId>().ok());
            match id.and_then(|id| sessions.iter().position(|s| *s == id)) {
                Some(i) => {
                    let id = sessions.swap_remove(i);
                    rtc.end_session(id);
                    vec![json!({"type": "stopped", "session": id.to_string()}).to_string()]
                }
                None => vec![ws_error(
                    "no such session on this socket",
                    json!({"status": 404}),
                )],
            }
        }
        Some("candidate") => Vec::new(),
        Some(other) => vec![ws_error(
            format!("unknown message type '{other}'"),
            json!({}),
        )],
        None => vec![ws_error("message has no \"type\"", json!({}))],
    }
}
