//! The HTTP connection driver: accepts connections on a shard, reads requests through the
//! sans-IO parser, answers them in order, enforces the timeouts, and hands WebSocket
//! upgrades to the WebSocket loop. The same driver serves HTTPS: on a TLS listener the
//! connection first completes its handshake ([`crate::tls`]), then reads and writes
//! through the TLS stream.
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock.

use super::api;
use super::origin::{self, Scheme};
use super::proto::{Limits, Request, RequestParser, Response};
use super::ws::{self, WsMessage, WsSession};
use crate::auth::{Action, Credentials, Verdict};
use crate::shard::{ConnGuard, Listener, Refusal, Shard, ShardRef, Wake};
use crate::stats;
use crate::stream::SinkHandle;
use crate::tls::{Acceptor, Stream};
use crate::webrtc::Handle;
use crate::webrtc::signal::ws::{ServerMsg, WsSignaling};
use bytes::BytesMut;
use futures_lite::AsyncWriteExt;
use futures_lite::future;
use glommio::net::{TcpListener, TcpStream};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tracing::{debug, info};

const PAGE: &str = include_str!("page.html");
const READ_CHUNK: usize = 16 * 1024;
const WS_MAX_MESSAGE: usize = 64 * 1024;

/// Accepts HTTP connections (HTTPS with `tls`) until the task is dropped. One refused at
/// a limit gets a short answer (503 at the shard's limit, 429 at its address's) and is
/// closed; on a TLS listener it is closed at once (a plaintext answer would be noise).
pub async fn serve(shard: ShardRef, rtc: Handle, listener: TcpListener, tls: Option<Acceptor>) {
    let serving = shard.clone();
    let plain = tls.is_none();
    crate::shard::accept_loop(
        shard,
        Listener::Http,
        listener,
        |stream, guard| {
            let c = connection(serving.clone(), rtc.clone(), stream, guard, tls.clone());
            glommio::spawn_local(c).detach();
        },
        |stream, why| {
            if plain {
                glommio::spawn_local(refuse(stream, why)).detach();
            }
        },
    )
    .await
}

async fn refuse(mut stream: TcpStream, why: Refusal) {
    let response = match why {
        Refusal::Shard { .. } => {
            Response::text(503, "server busy: too many connections on this shard")
        }
        Refusal::Address { .. } => Response::text(429, "too many connections from your address"),
    };
    let mut out = BytesMut::new();
    response.write(&mut out, false, false);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.write_all(&out).await;
}

/// One HTTP connection: the socket, the parser and what is buffered either way.
struct Conn {
    shard: ShardRef,
    rtc: Handle,
    stream: Stream,
    scheme: Scheme,
    peer: Option<SocketAddr>,
    parser: RequestParser,
    buf: BytesMut,
    out: BytesMut,
    /// When the first byte of the request being read arrived.
    started: Option<Instant>,
    /// The credentials of a WebSocket upgrade, for the offers on the socket.
    ws_creds: Credentials,
    /// The subscription of an upgraded `/mse/{path}` request.
    mse: Option<SinkHandle>,
}

/// What a connection does after answering the requests it has.
/// Most answer bytes queued for one connection before its pipelined requests wait.
const MAX_PENDING_OUT: usize = 128 * 1024;

enum Step {
    /// Read more.
    Read,
    /// Write what is queued before answering more (pipelined requests wait their turn).
    Flush,
    /// Close (after flushing what is queued).
    Close,
    /// The request upgraded to a WebSocket (101 queued).
    Upgrade,
    /// The request upgraded to an MSE viewer's WebSocket (101 queued; `Conn::mse` set).
    Mse,
}

async fn connection(
    shard: ShardRef,
    rtc: Handle,
    tcp: TcpStream,
    _guard: ConnGuard,
    tls: Option<Acceptor>,
) {
    let peer = tcp.peer_addr().ok();
    let cfg = &shard.shared.settings.config.http;
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_write_timeout(Some(cfg.idle_timeout.0));
    // The handshake has the time a request has (http.header_timeout).
    let (stream, scheme) = match &tls {
        None => (Stream::Plain(tcp), Scheme::Http),
        Some(acceptor) => {
            let hs = shard.accept_tls(acceptor, tcp, cfg.header_timeout.0, Listener::Http);
            match hs.await {
                Some(s) => (s, Scheme::Https),
                None => return,
            }
        }
    };
    let parser = RequestParser::new(Limits {
        max_header_bytes: cfg.max_header_bytes.as_usize(),
        max_body_bytes: cfg.max_body_bytes.as_usize(),
        ..Limits::default()
    });
    let mut c = Conn {
        shard: shard.clone(),
        rtc,
        stream,
        scheme,
        peer,
        parser,
        buf: BytesMut::with_capacity(4096),
        out: BytesMut::new(),
        started: None,
        ws_creds: Credentials::default(),
        mse: None,
    };
    let mut tmp = vec![0u8; READ_CHUNK];
    loop {
        match c.answer_requests().await {
            Step::Read => {}
            Step::Flush => {
                if flush(&shard, &mut c.stream, &mut c.out).await.is_err() {
                    return;
                }
                continue;
            }
            Step::Close => {
                if flush(&shard, &mut c.stream, &mut c.out).await.is_ok() {
                    c.stream.close().await;
                }
                return;
            }
            Step::Upgrade => {
                if flush(&shard, &mut c.stream, &mut c.out).await.is_ok() {
                    let creds = std::mem::take(&mut c.ws_creds);
                    websocket(&shard, &c.rtc, c.stream, c.buf, peer, creds).await;
                }
                return;
            }
            Step::Mse => {
                let Some(sink) = c.mse.take() else { return };
                // Dropping the subscription (a failed flush) detaches it.
                if flush(&shard, &mut c.stream, &mut c.out).await.is_ok() {
                    super::mse_conn::play(&shard, c.stream, c.buf, peer, sink).await;
                }
                return;
            }
        }
        if flush(&shard, &mut c.stream, &mut c.out).await.is_err() {
            return;
        }
        if !c.read(&mut tmp).await {
            c.stream.close().await;
            return;
        }
    }
}

impl Conn {
    /// Answers every complete request in the buffer, in order.
    async fn answer_requests(&mut self) -> Step {
        let shard = self.shard.clone();
        loop {
            // A client that pipelines many requests and reads slowly gets its answers as
            // fast as it reads them, not all built in memory at once.
            if self.out.len() >= MAX_PENDING_OUT {
                return Step::Flush;
            }
            let req = match self.parser.parse(&mut self.buf) {
                Ok(Some(req)) => req,
                Ok(None) => {
                    if self.parser.take_expect_continue() {
                        self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    return Step::Read;
                }
                Err(e) => {
                    info!(peer = ?self.peer, status = e.status(), "bad HTTP request: {e}");
                    e.to_response().write(&mut self.out, false, false);
                    return Step::Close;
                }
            };
            self.started = (!self.buf.is_empty()).then(Instant::now);
            stats::add(&shard.stats().http_requests, 1);
            let upgrade = req.method == "GET" && req.wants_upgrade("websocket");
            if upgrade && req.path.starts_with(super::mse::PREFIX) {
                return self.mse_upgrade(&req);
            }
            if req.path == "/ws" && upgrade {
                if let Some(step) = self.foreign_origin(&req) {
                    return step;
                }
                let creds = req.credentials();
                let ip = self.peer.map(|p| p.ip());
                if let refusal @ (Verdict::Unauthorized | Verdict::Forbidden | Verdict::Blocked) =
                    shard.authorize(Action::Read, None, ip, &creds)
                {
                    Response::refused(refusal, Action::Read).write(&mut self.out, false, false);
                    return Step::Close;
                }
                self.ws_creds = creds;
                return match ws::upgrade_response(&req) {
                    Ok(resp) => {
                        resp.write(&mut self.out, true, false);
                        Step::Upgrade
                    }
                    Err(e) => {
                        e.to_response().write(&mut self.out, false, false);
                        Step::Close
                    }
                };
            }
            let resp = route(&shard, &self.rtc, &req, self.peer, self.scheme).await;
            let keep_alive = req.keep_alive() && !shard.shutdown.is_fired();
            debug!(peer = ?self.peer, method = %req.method, path = %req.path, status = resp.status, "http");
            resp.write(&mut self.out, keep_alive, req.method == "HEAD");
            if !keep_alive {
                return Step::Close;
            }
        }
    }

    /// 403 for a WebSocket upgrade from a page of a foreign origin (`http.allow_origins`).
    fn foreign_origin(&mut self, req: &Request) -> Option<Step> {
        let allow = &self.shard.shared.settings.config.http.allow_origins;
        if origin::classify(req, allow, self.scheme).allowed() {
            return None;
        }
        // Counted; logged quietly, as any page can send these in a loop.
        stats::add(&self.shard.stats().http_origin_refused, 1);
        let from = req.header("Origin").unwrap_or_default();
        let path = &req.path;
        debug!(peer = ?self.peer, origin = from, "{path} upgrade refused: foreign Origin");
        let msg = format!("pages of origin '{from}' may not open {path} (http.allow_origins)");
        Response::text(403, &msg).write(&mut self.out, false, false);
        Some(Step::Close)
    }

    /// `GET /mse/{path}` with a WebSocket upgrade: the origin, `read` on the path and the
    /// stream's existence are checked before the upgrade (403, 401/403/429, 404); then
    /// the viewer subscribes and the connection switches to [`super::mse_conn`].
    fn mse_upgrade(&mut self, req: &Request) -> Step {
        if let Some(step) = self.foreign_origin(req) {
            return step;
        }
        let shard = &self.shard;
        let rest = req.path[super::mse::PREFIX.len()..].trim_end_matches('/');
        let path = match crate::webrtc::signal::find_stream(shard, rest) {
            Ok(p) => p,
            Err(e) => {
                Response::text(e.status(), &e.to_string()).write(&mut self.out, false, false);
                return Step::Close;
            }
        };
        let ip = self.peer.map(|p| p.ip());
        let verdict = shard.authorize(Action::Read, Some(path.as_str()), ip, &req.credentials());
        if verdict != Verdict::Allow {
            Response::refused(verdict, Action::Read).write(&mut self.out, false, false);
            return Step::Close;
        }
        let resp = match ws::upgrade_response(req) {
            Ok(resp) => resp,
            Err(e) => {
                e.to_response().write(&mut self.out, false, false);
                return Step::Close;
            }
        };
        let subscribed = shard.hub.borrow_mut().subscribe(path.as_str());
        match subscribed {
            Ok(sink) => {
                resp.write(&mut self.out, true, false);
                self.mse = Some(sink);
                Step::Mse
            }
            Err(e) => {
                Response::text(404, &e.to_string()).write(&mut self.out, false, false);
                Step::Close
            }
        }
    }

    /// Waits for more bytes (bounded by the header or idle timeout); false when the
    /// connection should close (any answer is queued in `out` and flushed here).
    async fn read(&mut self, tmp: &mut [u8]) -> bool {
        let cfg = &self.shard.shared.settings.config.http;
        let wait = match self.started {
            Some(t) => cfg.header_timeout.0.saturating_sub(t.elapsed()),
            None => cfg.idle_timeout.0,
        };
        let wake = self
            .shard
            .wait_io(&mut self.stream, tmp, future::pending::<()>(), wait)
            .await;
        let last = match wake {
            Wake::Read(Ok(0)) | Wake::Other(()) => return false,
            Wake::Read(Ok(n)) => {
                self.started.get_or_insert_with(Instant::now);
                self.buf.extend_from_slice(&tmp[..n]);
                return true;
            }
            Wake::Read(Err(e)) => {
                debug!(peer = ?self.peer, "http read: {e}");
                return false;
            }
            Wake::Timeout => {
                if self.started.is_some() {
                    info!(peer = ?self.peer, "request not completed within {:?}: closing", cfg.header_timeout.0);
                }
                Response::text(408, "request timeout")
            }
            Wake::Shutdown => Response::text(503, "server shutting down"),
        };
        if self.started.is_some() {
            last.write(&mut self.out, false, false);
            let _ = flush(&self.shard, &mut self.stream, &mut self.out).await;
        }
        false
    }
}

async fn flush(shard: &Shard, stream: &mut Stream, out: &mut BytesMut) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    // A TLS stream holds what rustls has not sent yet until it is flushed.
    let r = async {
        stream.write_all(out).await?;
        stream.flush().await
    }
    .await;
    if r.is_ok() {
        stats::add(&shard.stats().bytes_out, out.len() as u64);
    }
    out.clear();
    r
}

/// Routes a request from `peer`, come in over `scheme`, to its handler (a WHEP offer may
/// wait for the stream's media).
pub async fn route(
    shard: &ShardRef,
    rtc: &Handle,
    req: &Request,
    peer: Option<SocketAddr>,
    scheme: Scheme,
) -> Response {
    let shared = &shard.shared;
    let ip = peer.map(|p| p.ip());
    if req.path.starts_with(super::whep::PREFIX) {
        return super::whep::handle(shard, rtc, req, peer).await;
    }
    if req.path.starts_with(super::whip::PREFIX) {
        return super::whip::handle(shard, rtc, req, peer).await;
    }
    let cx = super::admin::Ctx {
        shard,
        rtc,
        ip,
        scheme,
    };
    if let Some(resp) = super::admin::route(&cx, req).await {
        return resp;
    }
    if req.path.starts_with(super::mse::PREFIX) {
        return mse_without_upgrade(req);
    }
    let known = matches!(
        req.path.as_str(),
        "/" | "/index.html" | "/api/v1/streams" | "/api/v1/health" | "/metrics" | "/ws"
    );
    if !known {
        return Response::text(404, &format!("no such page: {}", req.path));
    }
    let allow = &shared.settings.config.http.allow_origins;
    let api = req.path.starts_with("/api/");
    if req.method == "OPTIONS" {
        let r = Response::new(204).header("Allow", "GET, HEAD, OPTIONS");
        return if api {
            origin::api_cors(r, req, allow, scheme)
                .header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        } else {
            r
        };
    }
    if !matches!(req.method.as_str(), "GET" | "HEAD") {
        return Response::text(
            405,
            &format!("{} is not allowed on {}", req.method, req.path),
        )
        .header("Allow", "GET, HEAD, OPTIONS");
    }
    let creds = req.credentials();
    let ask = |action| shard.authorize(action, None, ip, &creds);
    let needed = match req.path.as_str() {
        "/api/v1/health" => Some(Action::Api),
        "/metrics" => Some(Action::Metrics),
        _ => None,
    };
    if let Some(action) = needed
        && let refusal @ (Verdict::Unauthorized | Verdict::Forbidden | Verdict::Blocked) =
            ask(action)
    {
        return Response::refused(refusal, action);
    }
    // The stream list serves the page: `read` sees it, only `api` sees addresses.
    let mut show_addresses = false;
    if req.path == "/api/v1/streams" {
        show_addresses = ask(Action::Api) == Verdict::Allow;
        if !show_addresses
            && let refusal @ (Verdict::Unauthorized | Verdict::Forbidden | Verdict::Blocked) =
                ask(Action::Read)
        {
            return Response::refused(refusal, Action::Read);
        }
    }
    match req.path.as_str() {
        "/" | "/index.html" => Response::new(200)
            .header("Cache-Control", "no-cache")
            .body("text/html; charset=utf-8", PAGE),
        "/api/v1/streams" => {
            let snapshots = shared.snapshots();
            let table = shared.streams().clone();
            let port = shared.rtmp_addr.port();
            let transcode = shared.transcodes_audio();
            let body = api::streams_json(&snapshots, &table, port, show_addresses, transcode);
            origin::api_cors(Response::json(200, body), req, allow, scheme)
                .header("Cache-Control", "no-store")
        }
        "/api/v1/health" => {
            origin::api_cors(health(shared), req, allow, scheme).header("Cache-Control", "no-store")
        }
        "/metrics" => Response::new(200).body(
            "text/plain; version=0.0.4; charset=utf-8",
            api::metrics_text(shared, &shared.snapshots()),
        ),
        _ => Response::text(426, "this endpoint needs a WebSocket upgrade")
            .header("Upgrade", "websocket"),
    }
}

/// `/mse/{path}` without a WebSocket upgrade: 426 for GET and HEAD, the methods for
/// OPTIONS, 405 otherwise.
fn mse_without_upgrade(req: &Request) -> Response {
    const ALLOW: &str = "GET, HEAD, OPTIONS";
    match req.method.as_str() {
        "OPTIONS" => Response::new(204).header("Allow", ALLOW),
        "GET" | "HEAD" => Response::text(
            426,
            "this endpoint needs a WebSocket upgrade: the page plays the stream from it over MSE",
        )
        .header("Upgrade", "websocket"),
        other => Response::text(405, &format!("{other} is not allowed on {}", req.path))
            .header("Allow", ALLOW),
    }
}

/// `GET /api/v1/health`: 200, or 503 when a shard missed its heartbeats.
fn health(shared: &crate::shard::Shared) -> Response {
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
    Response::json(if ok { 200 } else { 503 }, body)
}

/// The WebSocket loop at `/ws`: WebRTC signaling in JSON messages
/// ([`crate::webrtc::signal::ws`]). The sessions a socket started end when it closes.
async fn websocket(
    shard: &Shard,
    rtc: &Handle,
    mut stream: Stream,
    leftover: BytesMut,
    peer: Option<SocketAddr>,
    creds: Credentials,
) {
    let mut ws = WsSession::new(WS_MAX_MESSAGE);
    let cfg = &shard.shared.settings.config.http;
    let idle = cfg.idle_timeout.0;
    ws.keep_alive(cfg.ws_ping_interval.0, Instant::now());
    if !leftover.is_empty() {
        ws.handle_input(&leftover);
    }
    let mut signaling = WsSignaling::new(rtc.clone(), peer, creds);
    let _ = ws.send_text(signaling.hello().to_text());
    let mut tmp = vec![0u8; READ_CHUNK];
    let mut out = BytesMut::new();
    loop {
        loop {
            match ws.poll_message() {
                Ok(Some(WsMessage::Text(text))) => {
                    for reply in signaling.handle_text(shard, &text).await {
                        let _ = ws.send_text(reply.to_text());
                    }
                }
                Ok(Some(WsMessage::Binary(_))) => {
                    let reply = ServerMsg::error("binary messages are not supported");
                    let _ = ws.send_text(reply.to_text());
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
        // With keep-alive on, the pings decide when a quiet socket is gone; without,
        // idle_timeout does.
        let wait = match ws.poll_timeout() {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => idle,
        };
        let wake = shard
            .wait_io(&mut stream, &mut tmp, future::pending::<()>(), wait)
            .await;
        match wake {
            Wake::Read(Ok(0)) | Wake::Read(Err(_)) | Wake::Other(()) => return,
            Wake::Read(Ok(n)) => ws.handle_input(&tmp[..n]),
            Wake::Timeout if ws.poll_timeout().is_some() => {
                ws.handle_timeout(Instant::now());
                if ws.timed_out() {
                    info!(peer = ?peer, "websocket closed: two pings unanswered");
                }
            }
            Wake::Timeout | Wake::Shutdown => {
                ws.close();
                out.extend_from_slice(&ws.take_output());
                let _ = flush(shard, &mut stream, &mut out).await;
                return;
            }
        }
    }
}
