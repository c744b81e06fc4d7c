//! WebSocket (RFC 6455) server side, sans-IO, over tungstenite.
//!
//! [`accept_key`] / [`upgrade_response`] validate an upgrade [`Request`] and build the
//! `101 Switching Protocols` answer. [`WsSession`] then runs the framing: the driver feeds
//! socket bytes with [`WsSession::handle_input`], drains [`WsSession::poll_message`] until
//! `Ok(None)`, and writes [`WsSession::take_output`] to the socket after every input or
//! send. Pings are answered and the close handshake is completed automatically. On any
//! error a Close frame with the matching status code is queued (best effort) and the
//! session is closed: write the output, then drop the connection.

use std::io::{self, Read, Write};

use bytes::{Buf, BytesMut};
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
    input_limit: usize,
    overflow: bool,
}

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
            input_limit: max_message.saturating_mul(2).saturating_add(INPUT_SLACK),
            overflow: false,
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
            match self.ws.read() {
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
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        if let Err(TError::ConnectionClosed | TError::AlreadyClosed) = self.ws.close(Some(frame)) {
            self.closed = true;
        }
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
mod tests {
    use super::*;
    use crate::http::proto::{Limits, RequestParser};

    const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn request(extra: &str) -> Request {
        let raw = format!(
            "GET /ws HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
             Connection: keep-alive, Upgrade\r\n{extra}\r\n"
        );
        let mut buf = BytesMut::from(raw.as_bytes());
        RequestParser::new(Limits::default())
            .parse(&mut buf)
            .unwrap()
            .unwrap()
    }

    fn good_request() -> Request {
        request(&format!(
            "Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n"
        ))
    }

    /// A client frame with the given first byte (FIN/opcode), masked with `mask`.
    fn client_frame(b0: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut f = vec![b0];
        match payload.len() {
            n @ 0..=125 => f.push(0x80 | n as u8),
            n @ 126..=0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    #[test]
    fn accept_key_rfc_sample() {
        // RFC 6455 §1.3; checked independently: base64(sha1(key + GUID)).
        assert_eq!(
            accept_key(&good_request()).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn upgrade_response_bytes() {
        let resp = upgrade_response(&good_request()).unwrap();
        let mut out = BytesMut::new();
        resp.write(&mut out, true, false);
        assert_eq!(
            &out[..],
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }

    #[test]
    fn rejected_upgrades() {
        let version = "Sec-WebSocket-Version: 13\r\n";
        let key = format!("Sec-WebSocket-Key: {SAMPLE_KEY}\r\n");
        assert_eq!(
            accept_key(&request(version)),
            Err(WsError::BadUpgrade("missing Sec-WebSocket-Key"))
        );
        let err = accept_key(&request(&format!("{key}Sec-WebSocket-Version: 8\r\n"))).unwrap_err();
        assert_eq!(err, WsError::UnsupportedVersion);
        assert_eq!(err.status(), 426);
        let resp = err.to_response();
        assert!(
            resp.headers
                .iter()
                .any(|(n, v)| n == "Sec-WebSocket-Version" && v == "13")
        );
        assert!(matches!(
            accept_key(&request(&key)),
            Err(WsError::BadUpgrade(_))
        ));
        for bad_key in [
            "short==",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25j!Q==",
        ] {
            let r = request(&format!("Sec-WebSocket-Key: {bad_key}\r\n{version}"));
            assert_eq!(
                accept_key(&r),
                Err(WsError::BadUpgrade("invalid Sec-WebSocket-Key")),
                "{bad_key}"
            );
        }

        let mut r = good_request();
        r.method = "POST".to_owned();
        assert!(matches!(accept_key(&r), Err(WsError::BadUpgrade(_))));
        let mut r = good_request();
        r.minor_version = 0;
        assert!(matches!(accept_key(&r), Err(WsError::BadUpgrade(_))));
        let mut r = good_request();
        r.headers.retain(|(n, _)| n != "Upgrade");
        assert!(matches!(upgrade_response(&r), Err(WsError::BadUpgrade(_))));
        let mut r = good_request();
        r.headers.retain(|(n, _)| n != "Connection");
        assert!(matches!(upgrade_response(&r), Err(WsError::BadUpgrade(_))));
        assert_eq!(WsError::BadUpgrade("x").status(), 400);
    }

    #[test]
    fn masked_text_hello() {
        let mut s = WsSession::new(64 * 1024);
        // RFC 6455 §5.7 sample: masked "Hello".
        s.handle_input(&[
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ]);
        assert_eq!(
            s.poll_message(),
            Ok(Some(WsMessage::Text("Hello".to_owned())))
        );
        s.handle_input(&client_frame(0x81, b"hello", MASK));
        assert_eq!(
            s.poll_message(),
            Ok(Some(WsMessage::Text("hello".to_owned())))
        );
        assert_eq!(s.poll_message(), Ok(None));
        assert!(s.take_output().is_empty());
        assert!(!s.is_closed());
    }

    #[test]
    fn split_and_fragmented_frames() {
        let mut s = WsSession::new(64 * 1024);
        let mut bytes = client_frame(0x01, b"hel", MASK); // text, not final
        bytes.extend(client_frame(0x89, b"p", MASK)); // ping in between
        bytes.extend(client_frame(0x80, b"lo", MASK)); // continuation, final
        bytes.extend(client_frame(0x82, &[0, 1, 2, 255], MASK)); // binary
        let mut got = Vec::new();
        for b in &bytes {
            s.handle_input(&[*b]);
            while let Some(msg) = s.poll_message().unwrap() {
                got.push(msg);
            }
        }
        assert_eq!(
            got,
            vec![
                WsMessage::Text("hello".to_owned()),
                WsMessage::Binary(vec![0, 1, 2, 255])
            ]
        );
        assert_eq!(s.take_output(), vec![0x8a, 0x01, b'p']);
        s.handle_input(&[]);
        assert_eq!(s.poll_message(), Ok(None));

        let mut s = WsSession::new(64 * 1024);
        s.handle_input(&bytes);
        assert_eq!(
            s.poll_message(),
            Ok(Some(WsMessage::Text("hello".to_owned())))
        );
        assert_eq!(
            s.poll_message(),
            Ok(Some(WsMessage::Binary(vec![0, 1, 2, 255])))
        );
        assert_eq!(s.poll_message(), Ok(None));
    }

    #[test]
    fn ping_answered_with_pong() {
        let mut s = WsSession::new(1024);
        s.handle_input(&client_frame(0x89, b"abc", MASK));
        assert_eq!(s.poll_message(), Ok(None));
        assert_eq!(s.take_output(), vec![0x8a, 0x03, b'a', b'b', b'c']);
        assert!(s.take_output().is_empty());
        // Pongs from the client are dropped silently.
        s.handle_input(&client_frame(0x8a, b"x", MASK));
        assert_eq!(s.poll_message(), Ok(None));
        assert!(s.take_output().is_empty());
    }

    #[test]
    fn message_over_limit() {
        // An oversized frame is rejected from its header, before the payload arrives.
        let mut s = WsSession::new(1024);
        s.handle_input(&client_frame(0x82, &[7; 2000], MASK)[..10]);
        assert_eq!(
            s.poll_message(),
            Err(WsError::MessageTooLarge {
                size: 2000,
                max: 1024
            })
        );
        assert!(s.is_closed());
        assert_eq!(s.take_output(), vec![0x88, 0x02, 0x03, 0xf1]);

        // Below the 125-byte control-frame floor the message limit still applies...
        let mut s = WsSession::new(16);
        s.handle_input(&client_frame(0x82, &[7; 17], MASK));
        assert_eq!(
            s.poll_message(),
            Err(WsError::MessageTooLarge { size: 17, max: 16 })
        );
        assert!(s.is_closed());
        // Close frame with 1009 (Message Too Big).
        assert_eq!(s.take_output(), vec![0x88, 0x02, 0x03, 0xf1]);
        assert_eq!(s.poll_message(), Ok(None));
        assert_eq!(s.send_text("x".to_owned()), Err(WsError::Closed));

        // ...while control frames up to 125 bytes pass.
        let mut s = WsSession::new(16);
        s.handle_input(&client_frame(0x89, &[b'p'; 125], MASK));
        assert_eq!(s.poll_message(), Ok(None));
        assert_eq!(s.take_output().len(), 2 + 125);

        // Fragments that add up past the limit.
        let mut s = WsSession::new(16);
        s.handle_input(&client_frame(0x02, &[1; 10], MASK));
        s.handle_input(&client_frame(0x80, &[2; 10], MASK));
        assert!(matches!(
            s.poll_message(),
            Err(WsError::MessageTooLarge { .. })
        ));
        assert!(s.is_closed());
    }

    #[test]
    fn input_overflow() {
        let mut s = WsSession::new(16);
        s.handle_input(&vec![0u8; 2 * 16 + INPUT_SLACK + 1]);
        assert_eq!(s.poll_message(), Err(WsError::InputOverflow));
        assert!(s.is_closed());
    }

    #[test]
    fn protocol_violations() {
        let cases: &[(&[u8], &str)] = &[
            (&[0x81, 0x05, b'h', b'e', b'l', b'l', b'o'], "unmasked"),
            (&[0x83, 0x80, 0, 0, 0, 0], "reserved opcode"),
            (&[0xc1, 0x80, 0, 0, 0, 0], "rsv bit"),
            (&[0x09, 0x80, 0, 0, 0, 0], "fragmented ping"),
            (&[0x80, 0x80, 0, 0, 0, 0], "continuation without start"),
        ];
        for (bytes, what) in cases {
            let mut s = WsSession::new(1024);
            s.handle_input(bytes);
            assert!(
                matches!(s.poll_message(), Err(WsError::Protocol(_))),
                "{what}"
            );
            assert!(s.is_closed(), "{what}");
            // Close frame with 1002 (Protocol Error).
            assert_eq!(s.take_output(), vec![0x88, 0x02, 0x03, 0xea], "{what}");
        }
        let mut s = WsSession::new(1024);
        s.handle_input(&client_frame(0x81, &[0xff, 0xfe], MASK));
        assert_eq!(s.poll_message(), Err(WsError::InvalidUtf8));
        assert_eq!(s.take_output(), vec![0x88, 0x02, 0x03, 0xef]);
    }

    #[test]
    fn send_text_frames() {
        let mut s = WsSession::new(1024);
        s.send_text("hi".to_owned()).unwrap();
        s.send_binary(vec![1, 2]).unwrap();
        assert_eq!(s.output_len(), 8);
        assert_eq!(
            s.take_output(),
            vec![0x81, 0x02, b'h', b'i', 0x82, 0x02, 1, 2]
        );
    }

    #[test]
    fn random_input_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        };
        for _ in 0..5_000 {
            let mut s = WsSession::new(64);
            // Mostly well-formed frame starts so the payload paths are reached too.
            let mut d = vec![
                [0x81, 0x82, 0x01, 0x89, 0x88, 0x80][usize::from(rnd()) % 6],
                0x80 | (rnd() & 0x7f),
            ];
            d.extend((0..usize::from(rnd()) % 96).map(|_| rnd()));
            for chunk in d.chunks(1 + usize::from(rnd()) % 8) {
                s.handle_input(chunk);
                while let Ok(Some(_)) = s.poll_message() {}
                let _ = s.take_output();
            }
            let _ = s.send_text("x".to_owned());
            s.close();
        }
    }

    #[test]
    fn close_initiated_by_peer() {
        let mut s = WsSession::new(1024);
        s.handle_input(&client_frame(0x88, &[0x03, 0xe8, b'b', b'y', b'e'], MASK));
        assert_eq!(s.poll_message(), Ok(Some(WsMessage::Close)));
        assert!(s.is_closed());
        assert_eq!(
            s.take_output(),
            vec![0x88, 0x05, 0x03, 0xe8, b'b', b'y', b'e']
        );
        assert_eq!(s.poll_message(), Ok(None));
        assert_eq!(s.send_text("late".to_owned()), Err(WsError::Closed));
        assert!(s.take_output().is_empty());
    }

    #[test]
    fn close_initiated_by_server() {
        let mut s = WsSession::new(1024);
        s.close();
        assert!(!s.is_closed());
        assert_eq!(s.take_output(), vec![0x88, 0x02, 0x03, 0xe8]);
        assert_eq!(s.send_text("after close".to_owned()), Err(WsError::Closed));
        s.close(); // idempotent
        assert!(s.take_output().is_empty());
        // Data the client sent before seeing our close is still delivered.
        s.handle_input(&client_frame(0x81, b"late", MASK));
        assert_eq!(
            s.poll_message(),
            Ok(Some(WsMessage::Text("late".to_owned())))
        );
        s.handle_input(&client_frame(0x88, &[0x03, 0xe8], MASK));
        assert_eq!(s.poll_message(), Ok(Some(WsMessage::Close)));
        assert!(s.is_closed());
        assert!(s.take_output().is_empty());
    }
}
