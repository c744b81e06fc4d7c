//! The driver of an MSE viewer ([`crate::http::mse`]): after the upgrade of
//! `GET /mse/{path}`, it subscribes to the stream, and moves the viewer's stream events
//! and the page's WebSocket messages through [`MseViewer`] until either side ends.
//!
//! A viewer that reads slowly blocks only its own task: while a write waits, its queue
//! fills and drops frames up to the next keyframe, as for every other viewer
//! ([`crate::stream::SinkQueue`]). Listed in the management API (protocol `mse`) and
//! ended from it like any session.
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock.

use super::mse::{End, MseOutput, MseViewer};
use super::ws::{WsMessage, WsSession};
use crate::session::{self, Kick, SessionGuard};
use crate::shard::{Shard, Wake};
use crate::stream::{SinkEvent, SinkHandle, SinkQueue};
use crate::tls::Stream;
use bytes::{Bytes, BytesMut};
use futures_lite::future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Instant, SystemTime};
use tracing::{debug, info};

/// Most stream events handled before the output is written.
const BATCH: usize = 256;
/// Read buffer: the page sends only pings and close frames.
const READ_CHUNK: usize = 2048;
/// Largest message the page may send.
const MAX_MESSAGE: usize = 4096;

/// What woke the viewer besides its socket.
enum Poke {
    Event(SinkEvent),
    Kicked,
}

/// Plays `sink` (a subscription to `path`) to the page on `stream` until the page leaves,
/// the stream is removed, the session is ended or the server stops. `leftover` is what
/// the page sent after its upgrade request.
pub async fn play(
    shard: &Shard,
    mut stream: Stream,
    leftover: BytesMut,
    peer: Option<SocketAddr>,
    sink: SinkHandle,
) {
    let path = sink.path.clone();
    let listed = shard.sessions.register(
        SystemTime::now(),
        session::Info {
            protocol: session::Protocol::Mse,
            kind: session::Kind::Viewer,
            signaling: None,
            path: Some(path.clone()),
            remote: peer,
        },
    );
    info!(peer = ?peer, path = %path, "mse viewer started");
    let send_buffer = shard.shared.settings.config.http.mse_send_buffer.as_usize();
    if send_buffer > 0 {
        crate::shard::set_send_buffer(stream.tcp(), send_buffer);
    }
    let mut ws = WsSession::new(MAX_MESSAGE);
    let cfg = &shard.shared.settings.config.http;
    ws.keep_alive(cfg.ws_ping_interval.0, Instant::now());
    if !leftover.is_empty() {
        ws.handle_input(&leftover);
    }
    let mut viewer = MseViewer::new(&path);
    let end = run(shard, &mut stream, &mut ws, &mut viewer, &sink, &listed).await;
    let _ = stream.close().await;
    info!(peer = ?peer, path = %path, fragments = viewer.fragments(), dropped = sink.queue.dropped(), "mse viewer ended: {end}");
}

/// The viewer's loop; returns why it ended.
async fn run(
    shard: &Shard,
    stream: &mut Stream,
    ws: &mut WsSession,
    viewer: &mut MseViewer,
    sink: &SinkHandle,
    listed: &SessionGuard,
) -> String {
    let mut tmp = vec![0u8; READ_CHUNK];
    let mut out = Vec::new();
    // What goes to the socket next, in order; kept between writes (no allocation a send).
    let mut pending: Vec<Bytes> = Vec::new();
    let mut bytes_in = 0u64;
    let mut bytes_out = 0u64;
    let idle = shard.shared.settings.config.http.idle_timeout.0;
    loop {
        // The page's messages.
        loop {
            match ws.poll_message() {
                Ok(Some(WsMessage::Text(text))) => viewer.handle_text(&text, &mut out),
                Ok(Some(WsMessage::Binary(_))) => viewer.handle_binary(&mut out),
                Ok(Some(WsMessage::Close)) => {}
                Ok(None) => break,
                Err(e) => {
                    let _ = flush(shard, stream, ws, &mut pending).await;
                    return format!("websocket error: {e}");
                }
            }
        }
        apply(ws, &mut out, &mut pending);
        match flush(shard, stream, ws, &mut pending).await {
            Ok(n) => bytes_out += n as u64,
            Err(e) => return format!("write: {e}"),
        }
        listed.counters().set_bytes(bytes_in, bytes_out);
        listed.counters().set_dropped(sink.queue.dropped());
        if ws.is_closed() {
            return if viewer.is_closed() {
                "closed by the server".into()
            } else {
                "closed by the page".into()
            };
        }
        let wait = match ws.poll_timeout() {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => idle,
        };
        let poke = poke(sink.queue.clone(), listed.signal());
        match shard.wait_io(stream, &mut tmp, poke, wait).await {
            Wake::Read(Ok(0)) => return "the page closed the connection".into(),
            Wake::Read(Ok(n)) => {
                bytes_in += n as u64;
                ws.handle_input(tmp.get(..n).unwrap_or_default());
            }
            Wake::Read(Err(e)) => return format!("read: {e}"),
            Wake::Other(Poke::Event(ev)) => {
                viewer.handle_event(ev, &mut out);
                for _ in 1..BATCH {
                    let Some(ev) = sink.queue.try_pop() else {
                        break;
                    };
                    viewer.handle_event(ev, &mut out);
                }
            }
            Wake::Other(Poke::Kicked) => {
                viewer.end(End::Kicked, &mut out);
                apply(ws, &mut out, &mut pending);
                let _ = flush(shard, stream, ws, &mut pending).await;
                return "ended through the management API".into();
            }
            Wake::Timeout if ws.poll_timeout().is_some() => {
                ws.handle_timeout(Instant::now());
                if ws.timed_out() {
                    let _ = flush(shard, stream, ws, &mut pending).await;
                    return "two pings unanswered".into();
                }
            }
            Wake::Timeout => return "idle".into(),
            Wake::Shutdown => {
                viewer.end(End::Shutdown, &mut out);
                apply(ws, &mut out, &mut pending);
                let _ = flush(shard, stream, ws, &mut pending).await;
                return "server shutting down".into();
            }
        }
    }
}

/// Queues the viewer's output, in order, on `pending`: messages through the socket's
/// session, fragments as a frame header and their two buffers, the payload being the
/// frame's own (no copy of the media per viewer).
fn apply(ws: &mut WsSession, out: &mut Vec<MseOutput>, pending: &mut Vec<Bytes>) {
    for o in out.drain(..) {
        let sent = match o {
            MseOutput::Text(t) => ws.send_text(t),
            MseOutput::Binary(b) => ws.send_binary(b.to_vec()),
            MseOutput::Fragment(f) => {
                // What the session queued goes first.
                take_output(ws, pending);
                ws.binary_header(f.len()).map(|header| {
                    pending.extend([header, f.boxes, f.payload]);
                })
            }
            MseOutput::Close(code, why) => {
                ws.close_with(code, &why);
                Ok(())
            }
        };
        if let Err(e) = sent {
            debug!("mse: not sent: {e}");
        }
    }
    take_output(ws, pending);
}

fn take_output(ws: &mut WsSession, pending: &mut Vec<Bytes>) {
    let out = ws.take_output();
    if !out.is_empty() {
        pending.push(Bytes::from(out));
    }
}

/// The next stream event of the viewer, or the kick of its session.
async fn poke(queue: Rc<SinkQueue>, kick: Rc<Kick>) -> Poke {
    let event = async { Poke::Event(queue.recv().await) };
    let kicked = async {
        kick.wait().await;
        Poke::Kicked
    };
    future::or(event, kicked).await
}

/// Writes what the session and the viewer queued; returns the bytes written.
async fn flush(
    shard: &Shard,
    stream: &mut Stream,
    ws: &mut WsSession,
    pending: &mut Vec<Bytes>,
) -> std::io::Result<usize> {
    take_output(ws, pending);
    let n = stream.write_bufs(pending).await?;
    crate::stats::add(&shard.stats().bytes_out, n as u64);
    Ok(n)
}
