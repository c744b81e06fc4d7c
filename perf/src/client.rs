//! A light RTMP player, sans-IO: plain handshake, `connect`, `createStream`, `play`, then
//! it only counts what arrives. Media bodies are reassembled by the chunk reader but never
//! decoded.
//!
//! The driver feeds received bytes to [`PlayClient::feed`] and writes out what
//! [`PlayClient::take_output`] returns.

use bytes::{Buf, Bytes, BytesMut};
use corecast::rtmp::proto::amf0::{self, Amf0Value};
use corecast::rtmp::proto::chunk::{
    self, ChunkError, ChunkReader, ControlMessage, Message, UserControlEvent, encode_message,
};

/// C0/S0: protocol version 3.
const RTMP_VERSION: u8 = 0x03;
/// Length of C1/C2/S1/S2.
const HANDSHAKE_LEN: usize = 0x600;
/// Chunk size the client writes with (it never announces another).
const OUT_CHUNK_SIZE: usize = chunk::DEFAULT_CHUNK_SIZE as usize;
/// Chunk stream of NetConnection commands (as ffmpeg and librtmp use).
const CSID_COMMAND: u32 = 3;
/// Chunk stream of the `play` command (ffmpeg's "source channel").
const CSID_PLAY: u32 = 8;
/// Longest message accepted from the server.
const MAX_MESSAGE_LEN: usize = 8 * 1024 * 1024;
/// Most bytes held waiting for the rest of a chunk (a chunk is at most the server's chunk
/// size plus an 18-byte header; servers use 4 KiB, and this bounds a hostile one).
const MAX_BUFFERED: usize = MAX_MESSAGE_LEN + 64;
/// Buffer length announced with Set Buffer Length, in milliseconds.
const BUFFER_MS: u32 = 3000;

/// Transaction id of `connect`.
const TXN_CONNECT: f64 = 1.0;
/// Transaction id of `createStream`.
const TXN_CREATE_STREAM: f64 = 2.0;

/// Why the client gave up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// S0 carried a version other than 3.
    #[error("server answered RTMP version {0:#04x}")]
    BadVersion(u8),
    /// The chunk stream from the server was malformed.
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// A command whose AMF0 could not be decoded.
    #[error("undecodable command: {0}")]
    Amf0(#[from] amf0::Amf0Error),
    /// The server answered `_error` or an error `onStatus`.
    #[error("refused: {0}")]
    Refused(String),
    /// The server sent more than a chunk's worth without completing it.
    #[error("more than {MAX_BUFFERED} bytes buffered")]
    TooMuchInput,
}

/// What one call to [`PlayClient::feed`] saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Audio messages (type 8).
    pub audio: u64,
    /// Video messages (type 9).
    pub video: u64,
    /// Every other complete message (commands, data, control).
    pub other: u64,
}

/// Where the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// C0+C1 sent, waiting for S0+S1+S2.
    Handshake,
    /// `connect` sent.
    Connecting,
    /// `createStream` sent.
    CreatingStream,
    /// `play` sent, waiting for `NetStream.Play.Start` or media.
    Starting,
    /// Receiving media.
    Playing,
}

/// The client side of one RTMP play connection.
#[derive(Debug)]
pub struct PlayClient {
    phase: Phase,
    app: String,
    tc_url: String,
    stream_name: String,
    reader: ChunkReader,
    inbuf: BytesMut,
    out: BytesMut,
    /// Bytes received so far (handshake included), for acknowledgements.
    received: u64,
    /// `received` when the last Acknowledgement was sent.
    acked: u64,
    /// The server's Window Acknowledgement Size (0: none announced).
    window: u32,
    stream_id: u32,
    /// Acknowledgements sent.
    acks_sent: u64,
}

impl PlayClient {
    /// A client that will play `stream_name` in `app`; C0+C1 are queued at once.
    /// `seed` fills C1's random bytes.
    pub fn new(app: &str, tc_url: &str, stream_name: &str, seed: u64) -> Self {
        let mut out = BytesMut::with_capacity(1 + HANDSHAKE_LEN);
        out.extend_from_slice(&[RTMP_VERSION]);
        // C1: time (0), zero (0): a plain handshake; then random bytes.
        out.extend_from_slice(&[0; 8]);
        let mut x = seed | 1;
        while out.len() < 1 + HANDSHAKE_LEN {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let take = (1 + HANDSHAKE_LEN - out.len()).min(8);
            out.extend_from_slice(&x.to_le_bytes()[..take]);
        }
        PlayClient {
            phase: Phase::Handshake,
            app: app.to_owned(),
            tc_url: tc_url.to_owned(),
            stream_name: stream_name.to_owned(),
            reader: ChunkReader::new(MAX_MESSAGE_LEN),
            inbuf: BytesMut::new(),
            out,
            received: 0,
            acked: 0,
            window: 0,
            stream_id: 0,
            acks_sent: 0,
        }
    }

    /// Whether `play` was answered with `NetStream.Play.Start` or media arrived.
    pub fn is_playing(&self) -> bool {
        self.phase == Phase::Playing
    }

    /// Acknowledgement messages sent so far.
    pub fn acks_sent(&self) -> u64 {
        self.acks_sent
    }

    /// Bytes to send, if any.
    pub fn take_output(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// Consumes bytes from the server and counts the complete messages among them.
    pub fn feed(&mut self, data: &[u8]) -> Result<Counts, ClientError> {
        self.received += data.len() as u64;
        if self.inbuf.len() + data.len() > MAX_BUFFERED {
            return Err(ClientError::TooMuchInput);
        }
        self.inbuf.extend_from_slice(data);
        let mut counts = Counts::default();
        if self.phase == Phase::Handshake {
            if self.inbuf.len() < 1 + 2 * HANDSHAKE_LEN {
                return Ok(counts);
            }
            let version = self.inbuf[0];
            if version != RTMP_VERSION {
                return Err(ClientError::BadVersion(version));
            }
            // C2 echoes S1; S2 (the echo of our C1) is not checked.
            self.out.extend_from_slice(&self.inbuf[1..=HANDSHAKE_LEN]);
            self.inbuf.advance(1 + 2 * HANDSHAKE_LEN);
            self.send_connect();
            self.phase = Phase::Connecting;
        }
        while let Some(msg) = self.reader.read(&mut self.inbuf)? {
            match msg.type_id {
                chunk::MSG_AUDIO => {
                    counts.audio += 1;
                    self.media_seen();
                }
                chunk::MSG_VIDEO => {
                    counts.video += 1;
                    self.media_seen();
                }
                _ => {
                    counts.other += 1;
                    self.on_message(&msg)?;
                }
            }
        }
        if self.window > 0 && self.received - self.acked >= u64::from(self.window) {
            self.acked = self.received;
            self.acks_sent += 1;
            // The sequence number wraps at 2^32.
            let sequence = (self.received & u64::from(u32::MAX)) as u32;
            self.send_control(ControlMessage::Acknowledgement { sequence });
        }
        Ok(counts)
    }

    fn media_seen(&mut self) {
        if self.phase == Phase::Starting {
            self.phase = Phase::Playing;
        }
    }

    fn on_message(&mut self, msg: &Message) -> Result<(), ClientError> {
        if let Some(control) = ControlMessage::parse(msg.type_id, &msg.body)? {
            match control {
                ControlMessage::SetChunkSize(n) => self.reader.set_chunk_size(n)?,
                ControlMessage::Abort { csid } => self.reader.abort(csid),
                ControlMessage::WindowAckSize(w) => self.window = w,
                ControlMessage::UserControl(UserControlEvent::PingRequest(t)) => {
                    self.send_control(ControlMessage::UserControl(UserControlEvent::PingResponse(
                        t,
                    )));
                }
                _ => {}
            }
            return Ok(());
        }
        let body = match msg.type_id {
            chunk::MSG_COMMAND_AMF0 => &msg.body[..],
            // An AMF3 command is a format byte (0) followed by AMF0 values.
            chunk::MSG_COMMAND_AMF3 => msg.body.get(1..).unwrap_or_default(),
            _ => return Ok(()),
        };
        let values = amf0::decode_all(body)?;
        let name = values.first().and_then(Amf0Value::as_str).unwrap_or("");
        let txn = values.get(1).and_then(Amf0Value::as_f64).unwrap_or(0.0);
        let info = values.get(3);
        let text = |key: &str| {
            info.and_then(|o| o.get(key))
                .and_then(Amf0Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        match name {
            "_result" if self.phase == Phase::Connecting && txn == TXN_CONNECT => {
                self.send_command(
                    CSID_COMMAND,
                    0,
                    &[
                        Amf0Value::string("createStream"),
                        Amf0Value::Number(TXN_CREATE_STREAM),
                        Amf0Value::Null,
                    ],
                );
                self.phase = Phase::CreatingStream;
            }
            "_result" if self.phase == Phase::CreatingStream && txn == TXN_CREATE_STREAM => {
                let id = info.and_then(Amf0Value::as_f64).unwrap_or(1.0);
                self.stream_id = if (1.0..=f64::from(u32::MAX)).contains(&id) {
                    id as u32
                } else {
                    1
                };
                self.send_command(
                    CSID_PLAY,
                    self.stream_id,
                    &[
                        Amf0Value::string("play"),
                        Amf0Value::Number(0.0),
                        Amf0Value::Null,
                        Amf0Value::string(self.stream_name.clone()),
                        Amf0Value::Number(-2000.0),
                    ],
                );
                self.send_control(ControlMessage::UserControl(
                    UserControlEvent::SetBufferLength {
                        stream_id: self.stream_id,
                        buffer_ms: BUFFER_MS,
                    },
                ));
                self.phase = Phase::Starting;
            }
            "_error" => {
                let what = format!("{} {}", text("code"), text("description"));
                return Err(ClientError::Refused(what.trim().to_owned()));
            }
            "onStatus" => {
                let code = text("code");
                if text("level") == "error" || code.ends_with("Failed") {
                    let what = format!("{code} {}", text("description"));
                    return Err(ClientError::Refused(what.trim().to_owned()));
                }
                if code == "NetStream.Play.Start" && self.phase == Phase::Starting {
                    self.phase = Phase::Playing;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn send_connect(&mut self) {
        let obj = Amf0Value::object([
            ("app", Amf0Value::string(self.app.clone())),
            ("type", Amf0Value::string("nonprivate")),
            ("flashVer", Amf0Value::string("LNX 9,0,124,2")),
            ("tcUrl", Amf0Value::string(self.tc_url.clone())),
            ("fpad", Amf0Value::Boolean(false)),
            ("capabilities", Amf0Value::Number(15.0)),
            ("audioCodecs", Amf0Value::Number(4071.0)),
            ("videoCodecs", Amf0Value::Number(252.0)),
            ("videoFunction", Amf0Value::Number(1.0)),
        ]);
        self.send_command(
            CSID_COMMAND,
            0,
            &[
                Amf0Value::string("connect"),
                Amf0Value::Number(TXN_CONNECT),
                obj,
            ],
        );
    }

    fn send_command(&mut self, csid: u32, stream_id: u32, values: &[Amf0Value]) {
        let body = amf0::encode_all(values);
        encode_message(
            csid,
            chunk::MSG_COMMAND_AMF0,
            stream_id,
            0,
            &body,
            OUT_CHUNK_SIZE,
            &mut self.out,
        );
    }

    fn send_control(&mut self, control: ControlMessage) {
        let msg = control.to_message();
        encode_message(
            msg.csid,
            msg.type_id,
            msg.stream_id,
            msg.timestamp,
            &msg.body,
            OUT_CHUNK_SIZE,
            &mut self.out,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corecast::rtmp::proto::{Event, Input, Output, ServerSession, SessionConfig};
    use std::time::Instant;

    /// Exchanges bytes until neither side has anything to say; accepts or rejects play.
    fn pump(
        client: &mut PlayClient,
        server: &mut ServerSession,
        accept: bool,
    ) -> Result<Counts, ClientError> {
        let now = origin();
        let mut total = Counts::default();
        for _ in 0..32 {
            let mut moved = false;
            while let Some(b) = client.take_output() {
                moved = true;
                server
                    .handle_input(now, Input::Receive(&b))
                    .expect("server accepts client bytes");
            }
            loop {
                match server.poll_output() {
                    Output::Event(Event::PlayRequested { path, .. }) => {
                        assert_eq!(path.as_str(), "live/load");
                        assert_eq!(server.app(), "live");
                        assert_eq!(server.stream_key(), "load");
                        if accept {
                            server.accept_play().expect("accept");
                        } else {
                            server
                                .reject_play("NetStream.Play.StreamNotFound", "nothing here")
                                .expect("reject");
                        }
                    }
                    Output::Event(_) => {}
                    Output::Transmit(b) => {
                        moved = true;
                        let c = client.feed(&b)?;
                        total.audio += c.audio;
                        total.video += c.video;
                        total.other += c.other;
                    }
                    Output::Timeout(_) => break,
                }
            }
            if !moved {
                break;
            }
        }
        Ok(total)
    }

    #[allow(clippy::disallowed_methods)] // The session's clock; no timer fires in these tests.
    fn origin() -> Instant {
        Instant::now()
    }

    fn pair(window: u32) -> (PlayClient, ServerSession) {
        let client = PlayClient::new("live", "rtmp://127.0.0.1:1935/live", "load", 42);
        let server = ServerSession::new(
            origin(),
            SessionConfig {
                window_ack_size: window,
                ..SessionConfig::default()
            },
            7,
        );
        (client, server)
    }

    #[test]
    fn plays_against_the_corecast_session() {
        let (mut client, mut server) = pair(2_500_000);
        pump(&mut client, &mut server, true).expect("no error");
        assert!(client.is_playing());
        assert!(server.is_playing());
        // A video frame larger than the server's 4 KiB chunk size and an audio frame.
        let video = vec![0x17; 10_000];
        server.send_media(chunk::MSG_VIDEO, 0, &video);
        server.send_media(chunk::MSG_AUDIO, 0, &[0xAF, 0x01, 0x21]);
        let counts = pump(&mut client, &mut server, true).expect("no error");
        assert_eq!((counts.video, counts.audio), (1, 1));
        assert_eq!(server.peer_buffer_ms(), Some(BUFFER_MS));
    }

    #[test]
    fn acknowledges_the_window() {
        let (mut client, mut server) = pair(5000);
        pump(&mut client, &mut server, true).expect("no error");
        let mut video = 0;
        for ts in 0..4 {
            server.send_media(chunk::MSG_VIDEO, ts * 33, &[0x27; 3000]);
            video += pump(&mut client, &mut server, true)
                .expect("no error")
                .video;
        }
        assert_eq!(video, 4);
        assert!(client.acks_sent() >= 2, "acks {}", client.acks_sent());
        assert!(server.peer_acknowledged().is_some());
    }

    #[test]
    fn refused_play_is_an_error() {
        let (mut client, mut server) = pair(2_500_000);
        let err = pump(&mut client, &mut server, false).unwrap_err();
        assert!(
            matches!(&err, ClientError::Refused(s) if s.contains("StreamNotFound")),
            "{err}"
        );
        assert!(!client.is_playing());
    }

    #[test]
    fn bad_version_and_flood_are_errors() {
        let mut client = PlayClient::new("live", "rtmp://h/live", "k", 1);
        let mut s = vec![0x06];
        s.resize(1 + 2 * HANDSHAKE_LEN, 0);
        assert_eq!(client.feed(&s), Err(ClientError::BadVersion(6)));
        let mut client = PlayClient::new("live", "rtmp://h/live", "k", 1);
        let big = vec![0u8; MAX_BUFFERED + 1];
        assert_eq!(client.feed(&big), Err(ClientError::TooMuchInput));
    }
}
