//! WebSocket (RFC 6455) server side, sans-IO, over tungstenite.
//!
//! [`accept_key`] / [`upgrade_response`] validate an upgrade [`Request`] and build the
//! `101 Switching Protocols` answer. [`WsSession`] then runs the framing: the driver feeds
//! socket bytes with [`WsSession::handle_input`], drains [`WsSession::poll_message`] until
//! `Ok(None)`, and writes [`WsSession::take_output`] to the socket after every input or
//! send. Pings are answered and the close handshake is completed automatically. On any
//! error a Close frame with the matching status code is queued (best effort) and the
//! session is closed: write the output, then drop the connection.
//!
//! Keep-alive ([`WsSession::keep_alive`]): the session pings the peer every interval
//! (time is an input: [`WsSession::handle_timeout`], [`WsSession::poll_timeout`]); any
//! frame from the peer, a Pong included, proves it alive. A peer that lets two pings go
//! unanswered is closed with status 1001 ([`WsSession::timed_out`]), so a quiet viewer
//! that answers pings stays connected however long it only watches.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tungstenite::error::{CapacityError, Error as TError};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Message, Role, WebSocket, WebSocketConfig};

use super::proto::{Request, Response};

/// Input accepted beyond the message limit before the driver must poll.
const INPUT_SLACK: usize = 256 * 1024;

/// WebSocket handshake and session errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WsError {
    /// The request is not a valid WebSocket upgrade (answer 400).
    #[error("bad WebSocket upgrade: {0}")]
    BadUpgrade(&'static str),
    /// `Sec-WebSocket-Version` is not 13 (answer 426 with `Sec-WebSocket-Version: 13`).
    #[error("unsupported WebSocket version")]
    UnsupportedVersion,
    /// A frame or message exceeds the configured limit.
    #[error("message of {size} bytes exceeds the {max} byte limit")]
    MessageTooLarge {
        /// Announced or accumulated size.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// A text message is not valid UTF-8.
    #[error("invalid UTF-8 in text message")]
    InvalidUtf8,
    /// The peer violated the protocol (unmasked frame, bad opcode, ...).
    #[error("WebSocket protocol error: {0}")]
    Protocol(String),
    /// More unread input was buffered than allowed; the driver did not poll.
    #[error("WebSocket input buffer overflow")]
    InputOverflow,
    /// The session is closed.
    #[error("WebSocket session closed")]
    Closed,
}

impl WsError {
    /// The HTTP status to reject a failed upgrade with (426 or 400).
    pub fn status(&self) -> u16 {
        match self {
            Self::UnsupportedVersion => 426,
            _ => 400,
        }
    }

    /// The HTTP response rejecting a failed upgrade.
    pub fn to_response(&self) -> Response {
        let resp = Response::text(self.status(), &self.to_string());
        match self {
            Self::UnsupportedVersion => resp.header("Sec-WebSocket-Version", "13"),
            _ => resp,
        }
    }
}

/// Validates a WebSocket upgrade request and returns its `Sec-WebSocket-Accept` value.
pub fn accept_key(req: &Request) -> Result<String, WsError> {
    if req.method != "GET" {
        return Err(WsError::BadUpgrade("method must be GET"));
    }
    if req.minor_version < 1 {
        return Err(WsError::BadUpgrade("HTTP/1.1 required"));
    }
    if !req.header_has_token("upgrade", "websocket") {
        return Err(WsError::BadUpgrade("missing Upgrade: websocket"));
    }
    if !req.header_has_token("connection", "upgrade") {
        return Err(WsError::BadUpgrade("missing Connection: upgrade"));
    }
    match req.header("sec-websocket-version") {
        Some("13") => {}
        Some(_) => return Err(WsError::UnsupportedVersion),
        None => return Err(WsError::BadUpgrade("missing Sec-WebSocket-Version")),
    }
    let key = req
        .header("sec-websocket-key")
        .ok_or(WsError::BadUpgrade("missing Sec-WebSocket-Key"))?;
    if !is_nonce(key) {
        return Err(WsError::BadUpgrade("invalid Sec-WebSocket-Key"));
    }
    Ok(tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

/// The `101 Switching Protocols` response accepting a WebSocket upgrade request.
pub fn upgrade_response(req: &Request) -> Result<Response, WsError> {
    let accept = accept_key(req)?;
    Ok(Response::new(101)
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Accept", accept))
}

/// Whether `key` is base64 of 16 bytes: 22 base64 characters then `==`.
fn is_nonce(key: &str) -> bool {
    key.len() == 24
        && key.ends_with("==")
        && key
            .bytes()
            .take(22)
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// A message received from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WsMessage {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// The peer closed (or acknowledged our close); the reply is in the output and the
    /// session is closed.
    Close,
}

/// In-memory transport between the driver and tungstenite.
#[derive(Debug, Default)]
struct Pipe {
    inbound: BytesMut,
    outbound: Vec<u8>,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.inbound.is_empty() {
            // Never Ok(0): tungstenite would take that for the peer's EOF.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.inbound.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), self.inbound.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.inbound.advance(n);
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outbound.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A server-side WebSocket session after the upgrade.
#[derive(Debug)]
pub struct WsSession {
    ws: WebSocket<Pipe>,
    closed: bool,
    /// A close frame was queued: no data frame may follow.
    closing: bool,
    input_limit: usize,
    overflow: bool,
    keepalive: Option<KeepAlive>,
}

/// Ping schedule of a session.
#[derive(Debug, Clone, Copy)]
struct KeepAlive {
    interval: Duration,
    next_ping: Instant,
    /// Pings sent since the peer last sent anything.
    unanswered: u32,
    timed_out: bool,
}

/// Pings a peer may leave unanswered; at the next ping time it is closed.
const MAX_UNANSWERED: u32 = 2;

impl WsSession {
    /// A session accepting data frames and messages of at most `max_message` bytes
    /// (control frames up to their protocol maximum of 125 bytes).
    pub fn new(max_message: usize) -> Self {
        let config = WebSocketConfig {
            max_message_size: Some(max_message),
            // Control frames (ping, close) may carry 125 bytes whatever the message limit.
            max_frame_size: Some(max_message.max(125)),
            ..WebSocketConfig::default()
        };
        Self {
            ws: WebSocket::from_raw_socket(Pipe::default(), Role::Server, Some(config)),
            closed: false,
            closing: false,
            input_limit: max_message.saturating_mul(2).saturating_add(INPUT_SLACK),
            overflow: false,
            keepalive: None,
        }
    }

    /// Pings the peer every `interval` from `now` on, and closes it when two pings in a
    /// row go unanswered. A zero interval turns keep-alive off.
    pub fn keep_alive(&mut self, interval: Duration, now: Instant) {
        self.keepalive = (!interval.is_zero()).then_some(KeepAlive {
            interval,
            next_ping: now + interval,
            unanswered: 0,
            timed_out: false,
        });
    }

    /// When [`Self::handle_timeout`] is next due (None: keep-alive is off or the session
    /// is closed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        self.keepalive.map(|k| k.next_ping)
    }

    /// Sends the due ping, or closes (1001) a peer that left two unanswered; the bytes
    /// land in the output.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(mut k) = self.keepalive else { return };
        if self.closed || now < k.next_ping {
            return;
        }
        if k.unanswered >= MAX_UNANSWERED {
            k.timed_out = true;
            self.keepalive = Some(k);
            let _ = self.fail(WsError::Closed, CloseCode::Away);
            return;
        }
        k.unanswered += 1;
        k.next_ping = now + k.interval;
        self.keepalive = Some(k);
        let _ = self.send(Message::Ping(Vec::new()));
    }

    /// Whether the session was closed for unanswered pings.
    pub fn timed_out(&self) -> bool {
        self.keepalive.is_some_and(|k| k.timed_out)
    }

    fn peer_alive(&mut self) {
        if let Some(k) = &mut self.keepalive {
            k.unanswered = 0;
        }
    }

    /// Buffers bytes received from the socket; follow with [`Self::poll_message`] until
    /// `Ok(None)`. Ignored once the session is closed.
    pub fn handle_input(&mut self, data: &[u8]) {
        if self.closed || self.overflow {
            return;
        }
        let inbound = &mut self.ws.get_mut().inbound;
        if inbound.len().saturating_add(data.len()) > self.input_limit {
            self.overflow = true;
            return;
        }
        inbound.extend_from_slice(data);
    }

    /// The next complete message, `Ok(None)` when more input is needed or the session is
    /// closed. Pings are answered and Pongs dropped here; their replies land in the
    /// output.
    pub fn poll_message(&mut self) -> Result<Option<WsMessage>, WsError> {
        if self.closed {
            return Ok(None);
        }
        if self.overflow {
            return Err(self.fail(WsError::InputOverflow, CloseCode::Size));
        }
        loop {
            let read = self.ws.read();
            if read.is_ok() {
                self.peer_alive();
            }
            match read {
                Ok(Message::Text(text)) => return Ok(Some(WsMessage::Text(text))),
                Ok(Message::Binary(data)) => return Ok(Some(WsMessage::Binary(data))),
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Close(_)) => {
                    // Writes the queued close reply; on a server this ends the session.
                    self.flush();
                    self.closed = true;
                    return Ok(Some(WsMessage::Close));
                }
                Err(TError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.flush();
                    return Ok(None);
                }
                Err(TError::ConnectionClosed | TError::AlreadyClosed) => {
                    self.closed = true;
                    return Ok(None);
                }
                Err(e) => {
                    let (err, code) = map_error(e);
                    return Err(self.fail(err, code));
                }
            }
        }
    }

    /// Queues a text message.
    pub fn send_text(&mut self, text: String) -> Result<(), WsError> {
        self.send(Message::Text(text))
    }

    /// Queues a binary message.
    pub fn send_binary(&mut self, data: Vec<u8>) -> Result<(), WsError> {
        self.send(Message::Binary(data))
    }

    /// Starts the close handshake (status 1000); the peer's reply arrives as
    /// [`WsMessage::Close`].
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closing = true;
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        if let Err(TError::ConnectionClosed | TError::AlreadyClosed) = self.ws.close(Some(frame)) {
            self.closed = true;
        }
    }

    /// Starts the close handshake with status `code` and a `reason` (cut to the 123 bytes
    /// a close frame holds).
    pub fn close_with(&mut self, code: u16, reason: &str) {
        if self.closed {
            return;
        }
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        self.closing = true;
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.get(..end).unwrap_or_default().to_string().into(),
        };
        if let Err(TError::ConnectionClosed | TError::AlreadyClosed) = self.ws.close(Some(frame)) {
            self.closed = true;
        }
    }

    /// Starts a binary message of `len` bytes that the caller writes itself, after this
    /// header and after whatever [`WsSession::take_output`] holds now (take that first):
    /// for payloads held in shared buffers, sent as they are rather than copied into the
    /// session's output. A server's frames are not masked, so the payload goes unchanged.
    pub fn binary_header(&mut self, len: usize) -> Result<Bytes, WsError> {
        if self.closed || self.closing {
            return Err(WsError::Closed);
        }
        let mut h = BytesMut::with_capacity(10);
        h.put_u8(0x82); // FIN, binary
        match len {
            0..=125 => h.put_u8(len as u8),
            126..=0xFFFF => {
                h.put_u8(126);
                h.put_u16(len as u16);
            }
            _ => {
                h.put_u8(127);
                h.put_u64(len as u64);
            }
        }
        Ok(h.freeze())
    }

    /// Takes the bytes to write to the socket; call after every input, poll or send.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.ws.get_mut().outbound)
    }

    /// Bytes waiting in the output.
    pub fn output_len(&self) -> usize {
        self.ws.get_ref().outbound.len()
    }

    /// Whether the session is over: close handshake done or a fatal error. Write the
    /// remaining output, then close the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn send(&mut self, msg: Message) -> Result<(), WsError> {
        if self.closed {
            return Err(WsError::Closed);
        }
        match self.ws.send(msg) {
            Ok(()) => Ok(()),
            Err(TError::ConnectionClosed | TError::AlreadyClosed) => {
                self.closed = true;
                Err(WsError::Closed)
            }
            // Sending after our own close frame; the session is still open for reading.
            Err(TError::Protocol(_)) => Err(WsError::Closed),
            Err(e) => Err(map_error(e).0),
        }
    }

    fn flush(&mut self) {
        if let Err(TError::ConnectionClosed | TError::AlreadyClosed) = self.ws.flush() {
            self.closed = true;
        }
    }

    /// Queues a Close frame with `code` (best effort) and ends the session.
    fn fail(&mut self, err: WsError, code: CloseCode) -> WsError {
        self.closing = true;
        let frame = CloseFrame {
            code,
            reason: "".into(),
        };
        let _ = self.ws.close(Some(frame));
        self.closed = true;
        err
    }
}

fn map_error(e: TError) -> (WsError, CloseCode) {
    match e {
        TError::Capacity(CapacityError::MessageTooLong { size, max_size }) => (
            WsError::MessageTooLarge {
                size,
                max: max_size,
            },
            CloseCode::Size,
        ),
        TError::Utf8 => (WsError::InvalidUtf8, CloseCode::Invalid),
        TError::ConnectionClosed | TError::AlreadyClosed => (WsError::Closed, CloseCode::Normal),
        other => (WsError::Protocol(other.to_string()), CloseCode::Protocol),
    }
}

#[cfg(test)]
mod tests;
