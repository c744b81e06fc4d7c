//! The server side of one RTMP connection, sans-IO: handshake, chunk stream, protocol
//! control, the NetConnection/NetStream commands of publishers and players, and the
//! connection's timers.
//!
//! # The driver loop
//!
//! The driver owns the socket and the clock. It feeds what it reads with
//! [`ServerSession::handle_input`], calls [`ServerSession::handle_timeout`] when the last
//! [`Output::Timeout`] passes, and drains [`ServerSession::poll_output`] after every call
//! until it returns a timeout: [`Output::Transmit`] bytes go to the peer in order,
//! [`Output::Event`]s are for the driver to act on.
//!
//! Time: every call that can change the timers takes `now`; the session never reads the
//! clock. A client has [`SessionConfig::handshake_timeout`] from [`ServerSession::new`] to
//! get a publish or play accepted; a publisher that sends no media for
//! [`SessionConfig::idle_timeout`] is dropped (pings and acknowledgements do not count). Either closes the session with
//! [`Event::Closed`]. Acknowledgements go out when the peer's window of bytes has been
//! received (counted, not timed).
//!
//! # Publish and play decisions
//!
//! The session derives the [`StreamPath`] of a `publish` or `play` itself
//! ([`StreamPath::from_app_key`], query cut off) and asks the [`Access`] policy it was
//! given: a publisher must give the path's key as `?key=` where the path has one (and
//! then needs nothing else), else be allowed by [`Access::authorize`] with the
//! credentials of the stream name's or the app's query (`?user=&pass=`, `?token=`); it may
//! not claim a path the alias rule gives to a configured or published stream
//! ([`StreamPath::check_claim`]: not `live/demo` while `demo` exists, nor a configured
//! source's own path); a player of `APP/NAME` gets the stream `NAME` when only that
//! exists ([`StreamPath::resolve`]) and must be allowed to read the path it gets. What it
//! refuses it answers itself (`NetStream.Publish.BadName`,
//! `NetStream.Publish.Unauthorized`, `NetStream.Play.StreamNotFound`,
//! `NetStream.Play.Failed`) and closes with [`Event::Closed`]. What it allows it
//! reports as [`Event::PublishRequested`] or [`Event::PlayRequested`]; the session then
//! processes no further input until the driver reports the hub's answer with
//! [`ServerSession::accept_publish`] or [`ServerSession::reject_publish`] (likewise for
//! play), so nothing is lost while the decision is pending.
//!
//! # Chunk streams and message stream used towards players
//!
//! | what                                   | csid            | message stream id |
//! |----------------------------------------|-----------------|-------------------|
//! | protocol / user control                | 2               | 0                 |
//! | `_result`, `_error`, `onFCPublish`      | 3 [`CSID_COMMAND`] | 0              |
//! | `onStatus`, metadata, sample access    | 5 [`CSID_DATA`]  | the stream's id   |
//! | audio (type 0x08)                      | 6 [`CSID_AUDIO`] | the stream's id   |
//! | video (type 0x09)                      | 7 [`CSID_VIDEO`] | the stream's id   |
//!
//! `createStream` hands out ids from [`MEDIA_STREAM_ID`] (1) up; ffmpeg, OBS/librtmp and
//! Flash create one stream, so players use stream 1. Every message is written with a type-0
//! header, so [`encode_media`] at the session's [`ServerSession::out_chunk_size`] produces
//! exactly the bytes [`ServerSession::send_media`] would: a shard can chunk a frame once
//! and hand the same [`Bytes`] to every player with [`ServerSession::send_prechunked`]
//! (check [`ServerSession::shares_encoding`] first).

use super::amf0::{self, Amf0Error, Amf0Value};
use super::chunk::{
    self, ChunkError, ChunkReader, ChunkWriter, ControlMessage, Message, UserControlEvent,
};
use super::handshake::{Handshake, HandshakeError, HandshakeProgress};
use crate::auth::{self, Action, Credentials, Verdict};
use crate::stream::{ClaimError, Holder, StreamPath};
use bytes::{Bytes, BytesMut};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

/// Chunk stream of command replies on the NetConnection (stream 0).
pub const CSID_COMMAND: u32 = 0x03;
/// Chunk stream of `onStatus`, metadata and other data on the media stream.
pub const CSID_DATA: u32 = 0x05;
/// Chunk stream of audio sent to players.
pub const CSID_AUDIO: u32 = 0x06;
/// Chunk stream of video sent to players.
pub const CSID_VIDEO: u32 = 0x07;
/// The first (and in practice only) message stream id handed out by `createStream`.
pub const MEDIA_STREAM_ID: u32 = 0x01;

/// `fmsVer` reported in the `connect` reply.
const FMS_VERSION: &str = "FMS/3,0,1,123";
/// `capabilities` reported in the `connect` reply.
const FMS_CAPABILITIES: f64 = 31.0;
/// The timeout reported when no timer runs (a player, or a closed session).
const IDLE: Duration = Duration::from_secs(3600);

/// Per-connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Chunk size announced after `connect` and used for everything sent afterwards.
    pub out_chunk_size: u32,
    /// Window Acknowledgement Size announced to the peer.
    pub window_ack_size: u32,
    /// Set Peer Bandwidth window announced to the peer (limit type dynamic).
    pub peer_bandwidth: u32,
    /// Longest accepted incoming message.
    pub max_message_len: usize,
    /// Time a client has from the connection until a publish or play is accepted.
    pub handshake_timeout: Duration,
    /// A publisher that sends nothing for this long is dropped.
    pub idle_timeout: Duration,
}

/// Longest message a connection may send before its publish is accepted (commands,
/// `connect`'s object): a large message then can only be an attack on memory.
pub const UNPUBLISHED_MAX_MESSAGE: usize = 64 * 1024;

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            out_chunk_size: 0x1000,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
            max_message_len: chunk::DEFAULT_MAX_MESSAGE_LEN,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Errors that end the session; the driver should flush pending output and close.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The handshake failed.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The chunk stream or a control message was malformed.
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// A command message whose name or AMF0 encoding could not be read.
    #[error("undecodable command (type {type_id:#04x}, csid {csid}): {source}")]
    BadCommand {
        /// Message type (0x14 or 0x11).
        type_id: u8,
        /// Chunk stream it arrived on.
        csid: u32,
        /// The decoding error.
        source: Amf0Error,
    },
    /// A command message whose first value is not a string.
    #[error("command message (csid {csid}) does not start with a name")]
    UnnamedCommand {
        /// Chunk stream it arrived on.
        csid: u32,
    },
    /// A command other than `connect` before `connect`.
    #[error("command {command:?} before connect")]
    NotConnected {
        /// The command name.
        command: String,
    },
    /// Too much input buffered while a publish/play decision was pending.
    #[error("{len} bytes buffered awaiting a publish/play decision (limit {max})")]
    InputBacklog {
        /// Bytes buffered.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `accept_*`/`reject_*` called when no such request is pending.
    #[error("{action} called while {state}")]
    NoPendingRequest {
        /// The method called.
        action: &'static str,
        /// What the session was doing.
        state: &'static str,
    },
    /// Input after the session ended (error or rejection).
    #[error("session closed")]
    Closed,
}

/// What the session reports to the driver.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// `connect` was answered.
    Connected {
        /// Application name, query string removed (`live` for `rtmp://host/live`).
        app: String,
        /// Query string of the app, if it carried one (`rtmp://host/live?token=x`).
        app_query: Option<String>,
        /// `tcUrl` as sent by the client.
        tc_url: Option<String>,
        /// `flashVer` as sent by the client (e.g. `FMLE/3.0 (compatible; Lavf61.7.100)`).
        flash_ver: Option<String>,
        /// `objectEncoding` requested (0 = AMF0, 3 = AMF3).
        object_encoding: f64,
    },
    /// `publish`, allowed by the [`Access`] policy: answer with the hub's word,
    /// [`ServerSession::accept_publish`] or [`ServerSession::reject_publish`]; input is held
    /// until then.
    PublishRequested {
        /// The stream path (`APP/KEY`, query cut off).
        path: StreamPath,
        /// Message stream the publisher uses.
        stream_id: u32,
        /// Publishing type: `live`, `record` or `append`.
        publish_type: String,
    },
    /// `play`: answer with [`ServerSession::accept_play`] or [`ServerSession::reject_play`];
    /// input is held until then.
    PlayRequested {
        /// The stream path: `APP/KEY` (query cut off), or its alias `KEY` when only that
        /// exists.
        path: StreamPath,
        /// Message stream the player uses.
        stream_id: u32,
    },
    /// Stream metadata from the publisher, as a ready-to-send AMF0 data message body
    /// (`"onMetaData"` followed by the object or ECMA array).
    Metadata(Bytes),
    /// An audio (0x08) or video (0x09) message from the publisher; the body is an FLV
    /// tag body.
    Media {
        /// 0x08 audio or 0x09 video.
        type_id: u8,
        /// Milliseconds, extended past the 32-bit wrap of the wire timestamp (about every
        /// 49 days) so that it only ever moves forward across the wrap.
        timestamp: i64,
        /// The message body (shares the receive buffer, no copy).
        body: Bytes,
    },
    /// The publisher stopped (`FCUnpublish`, `deleteStream` or `closeStream`).
    Unpublished,
    /// The player stopped (`deleteStream` or `closeStream`).
    PlayStopped,
    /// The player's `receiveAudio` flag.
    ReceiveAudio(bool),
    /// The player's `receiveVideo` flag.
    ReceiveVideo(bool),
    /// The session ended on its own (a timer, or a request it refused); whatever output
    /// is pending is its last word. Close the connection.
    Closed(CloseReason),
}

/// Why the session ended on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// No publish or play was accepted within the handshake timeout.
    HandshakeTimeout(Duration),
    /// The publisher sent nothing for the idle timeout.
    IdleTimeout(Duration),
    /// A publish (bad name, wrong key, a path the alias rule gives to another stream) or
    /// play (bad name) the session refused, and why.
    Refused(String),
    /// The stream the player played was removed from the server ([`ServerSession::end_play`]).
    StreamRemoved,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::HandshakeTimeout(d) => write!(f, "no connect/publish/play within {d:?}"),
            CloseReason::IdleTimeout(d) => write!(f, "publisher silent for {d:?}"),
            CloseReason::Refused(why) => f.write_str(why),
            CloseReason::StreamRemoved => f.write_str("the stream was removed"),
        }
    }
}

/// What the driver feeds the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input<'a> {
    /// Bytes read from the peer.
    Receive(&'a [u8]),
}

/// What the session asks of the driver; see the module doc for the loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Bytes to write to the peer, in order.
    Transmit(Bytes),
    /// Something for the driver to act on.
    Event(Event),
    /// Nothing more until this time (or new input): call
    /// [`ServerSession::handle_timeout`] then.
    Timeout(Instant),
}

/// The shard's policy for publish and play, asked by the session (which holds no shard
/// state of its own).
pub trait Access {
    /// The key a publisher of `path` must give as `?key=`, if any.
    fn publish_key(&self, path: &StreamPath) -> Option<String>;
    /// Whether a publisher may claim `path`: [`StreamPath::check_claim`] over the
    /// configured streams, then the published ones.
    fn check_claim(&self, path: &StreamPath) -> Result<(), ClaimError>;
    /// Whether a stream is published at `path` (for the alias rule of play).
    fn exists(&self, path: &StreamPath) -> bool;
    /// Whether the peer, with `creds` (from the stream name's and the app's query), may
    /// do `action` on `path` ([`crate::auth::Authorizer`]; the peer's address is the
    /// policy's to know).
    fn authorize(&self, action: Action, path: &StreamPath, creds: &Credentials) -> Verdict;
}

/// An [`Access`] policy from plain tables: open publishing and no streams by default.
#[derive(Debug, Clone, Default)]
pub struct AccessTable {
    /// Per-path publish keys.
    pub publish_keys: HashMap<StreamPath, String>,
    /// The key of every other path, if any.
    pub publish_key: Option<String>,
    /// Paths fed by configured sources.
    pub sources: HashSet<StreamPath>,
    /// Configured paths publishers push to.
    pub targets: HashSet<StreamPath>,
    /// Paths with a published stream.
    pub streams: HashSet<StreamPath>,
    /// Refusals of the access policy by path (every other request is allowed).
    pub refused: HashMap<StreamPath, Verdict>,
}

impl Access for AccessTable {
    fn publish_key(&self, path: &StreamPath) -> Option<String> {
        self.publish_keys
            .get(path)
            .or(self.publish_key.as_ref())
            .cloned()
    }

    fn check_claim(&self, path: &StreamPath) -> Result<(), ClaimError> {
        fn held(set: &HashSet<StreamPath>, h: Holder) -> impl Iterator<Item = (&str, Holder)> {
            set.iter().map(move |p| (p.as_str(), h))
        }
        path.check_claim(
            held(&self.sources, Holder::Source)
                .chain(held(&self.targets, Holder::PublishTarget))
                .chain(held(&self.streams, Holder::Published)),
        )
    }

    fn exists(&self, path: &StreamPath) -> bool {
        self.streams.contains(path)
    }

    fn authorize(&self, _action: Action, path: &StreamPath, _creds: &Credentials) -> Verdict {
        self.refused.get(path).copied().unwrap_or(Verdict::Allow)
    }
}

/// What the session is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// C0/C1, then C2.
    ExpectHandshake,
    /// The `connect` command.
    ExpectConnect,
    /// `createStream`, `publish` or `play`.
    ExpectStreamCommand,
    /// The driver's publish decision.
    AwaitPublishDecision,
    /// Media from the publisher.
    Publishing,
    /// The driver's play decision.
    AwaitPlayDecision,
    /// Nothing in particular: the driver sends media to the player.
    Playing,
    /// Nothing: the session ended.
    Closed,
}

impl State {
    fn describe(self) -> &'static str {
        match self {
            State::ExpectHandshake => "awaiting the handshake",
            State::ExpectConnect => "awaiting connect",
            State::ExpectStreamCommand => "connected",
            State::AwaitPublishDecision => "awaiting a publish decision",
            State::Publishing => "publishing",
            State::AwaitPlayDecision => "awaiting a play decision",
            State::Playing => "playing",
            State::Closed => "closed",
        }
    }
}

/// A decoded command message.
struct Command {
    name: String,
    transaction: f64,
    args: Vec<Amf0Value>,
}

/// The server session of one RTMP connection.
pub struct ServerSession {
    config: SessionConfig,
    access: Box<dyn Access>,
    state: State,
    /// The latest time the driver gave.
    now: Instant,
    /// When the session was created (the handshake timer runs from here).
    started: Instant,
    /// When the publisher's last media arrived, or its publish was accepted (the idle
    /// timer runs from here: pings, acknowledgements and commands do not keep a
    /// publisher that sends no media).
    last_media: Instant,
    handshake: Handshake,
    reader: ChunkReader,
    writer: ChunkWriter,
    inbuf: BytesMut,
    out_buf: BytesMut,
    out_queue: VecDeque<Bytes>,
    events: VecDeque<Event>,
    app: String,
    /// The query of `connect`'s app (`rtmp://host/live?user=u&pass=p`), for credentials.
    app_query: Option<String>,
    stream_key: String,
    stream_id: u32,
    next_stream_id: u32,
    chunk_size_sent: bool,
    peer_window: Option<u32>,
    last_ack: u64,
    peer_acked: Option<u32>,
    peer_bandwidth: Option<(u32, u8)>,
    peer_buffer_ms: Option<u32>,
    media_clock: Timestamp32,
}

impl fmt::Debug for ServerSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSession")
            .field("state", &self.state)
            .field("app", &self.app)
            .field("stream_key", &self.stream_key)
            .field("stream_id", &self.stream_id)
            .finish_non_exhaustive()
    }
}

/// The session's timers; at most one runs at a time, chosen by the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Until a publish or play is accepted.
    Handshake,
    /// Between two reads of a publisher.
    Idle,
}

/// Extends RTMP's 32-bit millisecond timestamps past their wrap-around.
///
/// Only a step from the top quarter of the range ([`WRAP_ZONE`] below 2^32) into the
/// bottom quarter is a wrap (after 49.7 days of stream). Any other step back, however
/// large (a publisher restarting its clock at 0), is a step back; the hub's timeline
/// continuity absorbs it (`media::timeline`). A message from just before the wrap that
/// arrives just after it stays in the earlier epoch.
#[derive(Debug, Default, Clone, Copy)]
pub struct Timestamp32 {
    last: Option<u32>,
    epoch: i64,
}

/// How close to either end of the 32-bit range the two sides of a wrap lie (2^30 ms,
/// 12.4 days).
pub const WRAP_ZONE: u32 = 1 << 30;

impl Timestamp32 {
    /// The 64-bit time of a wire timestamp.
    pub fn extend(&mut self, ts: u32) -> i64 {
        const RANGE: i64 = 1 << 32;
        if let Some(last) = self.last {
            let high = |t: u32| t > u32::MAX - WRAP_ZONE;
            let low = |t: u32| t < WRAP_ZONE;
            if high(last) && low(ts) {
                self.epoch = self.epoch.saturating_add(RANGE);
            } else if low(last) && high(ts) && self.epoch > 0 {
                return self.epoch - RANGE + i64::from(ts);
            }
        }
        self.last = Some(ts);
        self.epoch + i64::from(ts)
    }
}

/// Chunk stream the session uses for a media or data message type.
pub fn media_csid(type_id: u8) -> u32 {
    match type_id {
        chunk::MSG_AUDIO => CSID_AUDIO,
        chunk::MSG_VIDEO => CSID_VIDEO,
        _ => CSID_DATA,
    }
}

/// Chunks a message for players exactly as [`ServerSession::send_media`] (and, for type
/// 0x12, [`ServerSession::send_metadata`]) does on stream [`MEDIA_STREAM_ID`]: encode a
/// frame once per chunk size and share the result with [`ServerSession::send_prechunked`].
pub fn encode_media(type_id: u8, timestamp: u32, body: &[u8], chunk_size: u32, out: &mut BytesMut) {
    encode_media_parts(type_id, timestamp, &[body], chunk_size, out);
}

/// [`encode_media`] for a body in parts (tag header, shared payload), without assembling it.
pub fn encode_media_parts(
    type_id: u8,
    timestamp: u32,
    parts: &[&[u8]],
    chunk_size: u32,
    out: &mut BytesMut,
) {
    chunk::encode_message_parts(
        media_csid(type_id),
        type_id,
        MEDIA_STREAM_ID,
        timestamp,
        parts,
        chunk_size as usize,
        out,
    );
}

/// Why the access policy refused, for the log.
fn refusal_text(v: Verdict) -> &'static str {
    match v {
        Verdict::Forbidden => "credentials do not allow it",
        Verdict::Blocked => "too many failed attempts from this address",
        _ => "no or wrong credentials",
    }
}

/// Splits `name?query` into the name and the query.
fn split_query(s: &str) -> (String, Option<String>) {
    match s.split_once('?') {
        Some((name, query)) => (name.to_owned(), Some(query.to_owned())),
        None => (s.to_owned(), None),
    }
}

fn status_object(level: &str, code: &str, description: &str) -> Amf0Value {
    Amf0Value::object([
        ("level", Amf0Value::string(level)),
        ("code", Amf0Value::string(code)),
        ("description", Amf0Value::string(description)),
    ])
}

impl ServerSession {
    /// A session awaiting the client's handshake, created at `now` (its handshake timer
    /// starts here); `random_seed` feeds the handshake filler. Its [`Access`] policy is an
    /// empty [`AccessTable`] until [`Self::with_access`] sets one.
    pub fn new(now: Instant, config: SessionConfig, random_seed: u64) -> Self {
        let mut config = config;
        config.out_chunk_size = config.out_chunk_size.clamp(1, chunk::MAX_CHUNK_SIZE);
        ServerSession {
            // Until a publish is accepted only commands come: keep them small.
            reader: ChunkReader::new(config.max_message_len.min(UNPUBLISHED_MAX_MESSAGE)),
            config,
            access: Box::new(AccessTable::default()),
            state: State::ExpectHandshake,
            now,
            started: now,
            last_media: now,
            handshake: Handshake::new(random_seed),
            writer: ChunkWriter::new(),
            inbuf: BytesMut::new(),
            out_buf: BytesMut::new(),
            out_queue: VecDeque::new(),
            events: VecDeque::new(),
            app: String::new(),
            app_query: None,
            stream_key: String::new(),
            stream_id: MEDIA_STREAM_ID,
            next_stream_id: MEDIA_STREAM_ID,
            chunk_size_sent: false,
            peer_window: None,
            last_ack: 0,
            peer_acked: None,
            peer_bandwidth: None,
            peer_buffer_ms: None,
            media_clock: Timestamp32::default(),
        }
    }

    /// Sets the policy asked about publish keys, configured sources and existing streams.
    pub fn with_access(mut self, access: Box<dyn Access>) -> Self {
        self.access = access;
        self
    }

    /// Feeds what the driver has for the session (bytes received at `now`) and processes as
    /// much as possible.
    ///
    /// After an error the session is closed: drain [`Self::poll_output`] (its last word) and
    /// drop the connection.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> Result<(), SessionError> {
        self.now = self.now.max(now);
        if self.state == State::Closed {
            return Err(SessionError::Closed);
        }
        match input {
            Input::Receive(data) => {
                self.inbuf.extend_from_slice(data);
            }
        }
        self.process()
    }

    /// Fires the timer due at `now`, if any: a handshake or idle time-out closes the
    /// session with [`Event::Closed`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        let Some((timer, at)) = self.deadline() else {
            return;
        };
        if self.now < at {
            return;
        }
        self.state = State::Closed;
        let reason = match timer {
            Timer::Handshake => CloseReason::HandshakeTimeout(self.config.handshake_timeout),
            Timer::Idle => CloseReason::IdleTimeout(self.config.idle_timeout),
        };
        self.events.push_back(Event::Closed(reason));
    }

    /// The next thing for the driver: events first, then bytes to send (handshake replies,
    /// control and command messages, media) in order, and at last the time
    /// [`Self::handle_timeout`] is next due.
    pub fn poll_output(&mut self) -> Output {
        if let Some(event) = self.events.pop_front() {
            return Output::Event(event);
        }
        self.flush_out_buf();
        if let Some(bytes) = self.out_queue.pop_front() {
            return Output::Transmit(bytes);
        }
        if self.out_queue.capacity() > 0x40 {
            // The burst of a joining player's GOP is over: give the memory back.
            self.out_queue.shrink_to(0x10);
        }
        Output::Timeout(self.deadline().map_or(self.now + IDLE, |(_, at)| at))
    }

    /// The running timer and when it fires.
    fn deadline(&self) -> Option<(Timer, Instant)> {
        match self.state {
            State::Closed | State::Playing => None,
            State::Publishing => Some((Timer::Idle, self.last_media + self.config.idle_timeout)),
            _ => Some((
                Timer::Handshake,
                self.started + self.config.handshake_timeout,
            )),
        }
    }

    /// Accepts the pending publish: sends Stream Begin and `NetStream.Publish.Start`, then
    /// processes input held while the decision was pending.
    pub fn accept_publish(&mut self) -> Result<(), SessionError> {
        self.expect_pending(State::AwaitPublishDecision, "accept_publish")?;
        self.send_control(ControlMessage::UserControl(UserControlEvent::StreamBegin(
            self.stream_id,
        )));
        let description = format!("{} is now published.", self.stream_key);
        self.send_on_status("status", "NetStream.Publish.Start", &description);
        self.state = State::Publishing;
        self.last_media = self.now;
        self.reader.set_max_message_len(self.config.max_message_len);
        self.process()
    }

    /// Rejects the pending publish with an error `onStatus` (e.g.
    /// `NetStream.Publish.BadName`, `NetStream.Publish.Unauthorized`); the session closes.
    pub fn reject_publish(&mut self, code: &str, description: &str) -> Result<(), SessionError> {
        self.expect_pending(State::AwaitPublishDecision, "reject_publish")?;
        self.send_on_status("error", code, description);
        self.state = State::Closed;
        Ok(())
    }

    /// Accepts the pending play: sends Set Chunk Size (if not yet sent), Stream Begin,
    /// `NetStream.Play.Reset`, `NetStream.Play.Start` and `|RtmpSampleAccess`, then processes
    /// input held while the decision was pending. Send metadata and media afterwards.
    pub fn accept_play(&mut self) -> Result<(), SessionError> {
        self.expect_pending(State::AwaitPlayDecision, "accept_play")?;
        self.ensure_chunk_size_sent();
        self.send_control(ControlMessage::UserControl(UserControlEvent::StreamBegin(
            self.stream_id,
        )));
        let key = self.stream_key.clone();
        self.send_on_status(
            "status",
            "NetStream.Play.Reset",
            &format!("Playing and resetting {key}."),
        );
        self.send_on_status(
            "status",
            "NetStream.Play.Start",
            &format!("Started playing {key}."),
        );
        let access = amf0::encode_all(&[
            Amf0Value::string("|RtmpSampleAccess"),
            Amf0Value::Boolean(true),
            Amf0Value::Boolean(true),
        ]);
        self.send_stream_message(CSID_DATA, chunk::MSG_DATA_AMF0, 0, &access);
        self.state = State::Playing;
        self.process()
    }

    /// Rejects the pending play with an error `onStatus` (e.g.
    /// `NetStream.Play.StreamNotFound`); the session closes.
    pub fn reject_play(&mut self, code: &str, description: &str) -> Result<(), SessionError> {
        self.expect_pending(State::AwaitPlayDecision, "reject_play")?;
        self.send_on_status("error", code, description);
        self.state = State::Closed;
        Ok(())
    }

    /// Sends a metadata body (as in [`Event::Metadata`]) to the player as an AMF0
    /// data message on csid 5.
    pub fn send_metadata(&mut self, body: &[u8], timestamp: u32) {
        self.send_stream_message(CSID_DATA, chunk::MSG_DATA_AMF0, timestamp, body);
    }

    /// Sends an audio (0x08) or video (0x09) message to the player, on csid 6 or 7.
    pub fn send_media(&mut self, type_id: u8, timestamp: u32, body: &[u8]) {
        self.send_stream_message(media_csid(type_id), type_id, timestamp, body);
    }

    /// Queues bytes chunked elsewhere (see [`encode_media`]) after all pending output.
    /// They must be whole messages encoded at [`Self::out_chunk_size`] for this session's
    /// stream id, which [`Self::shares_encoding`] checks.
    pub fn send_prechunked(&mut self, chunks: Bytes) {
        self.flush_out_buf();
        if !chunks.is_empty() {
            self.out_queue.push_back(chunks);
        }
    }

    /// Whether bytes from [`encode_media`] at `chunk_size` equal what [`Self::send_media`]
    /// would write, so a shared encoding may be sent with [`Self::send_prechunked`].
    pub fn shares_encoding(&self, chunk_size: u32) -> bool {
        self.stream_id == MEDIA_STREAM_ID && self.writer.chunk_size() == chunk_size
    }

    /// Sends User Control Stream EOF for the player's stream.
    pub fn send_stream_eof(&mut self) {
        self.send_control(ControlMessage::UserControl(UserControlEvent::StreamEof(
            self.stream_id,
        )));
    }

    /// Ends a player whose stream was removed from the server: it is told as when a
    /// publisher leaves (`NetStream.Play.UnpublishNotify`, Stream EOF), then the session
    /// closes with [`CloseReason::StreamRemoved`] (the notice is still output first).
    pub fn end_play(&mut self) {
        if self.state == State::Closed {
            return;
        }
        self.send_unpublish_notify();
        self.state = State::Closed;
        self.events
            .push_back(Event::Closed(CloseReason::StreamRemoved));
    }

    /// Tells the player its publisher went away: `NetStream.Play.UnpublishNotify` and
    /// Stream EOF.
    pub fn send_unpublish_notify(&mut self) {
        let description = format!("{} is now unpublished.", self.stream_key);
        self.send_on_status("status", "NetStream.Play.UnpublishNotify", &description);
        self.send_stream_eof();
    }

    /// Tells the player a publisher (re)appeared: Stream Begin and
    /// `NetStream.Play.PublishNotify`.
    pub fn send_publish_notify(&mut self) {
        self.send_control(ControlMessage::UserControl(UserControlEvent::StreamBegin(
            self.stream_id,
        )));
        let description = format!("{} is now published.", self.stream_key);
        self.send_on_status("status", "NetStream.Play.PublishNotify", &description);
    }

    /// The outgoing chunk size in force (128 until `connect` or `accept_play` switch it to
    /// the configured size).
    pub fn out_chunk_size(&self) -> u32 {
        self.writer.chunk_size()
    }

    /// Message stream id of the publish/play stream (1 in practice).
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// Application name from `connect`, without its query (empty before).
    pub fn app(&self) -> &str {
        &self.app
    }

    /// Stream key of the publish/play request (empty before).
    pub fn stream_key(&self) -> &str {
        &self.stream_key
    }

    /// Whether the session is publishing (after `accept_publish`).
    pub fn is_publishing(&self) -> bool {
        self.state == State::Publishing
    }

    /// Whether the session is playing (after `accept_play`).
    pub fn is_playing(&self) -> bool {
        self.state == State::Playing
    }

    /// Whether the session has ended (error or rejection).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Bytes received and processed (handshake and chunk stream).
    pub fn bytes_received(&self) -> u64 {
        self.handshake.bytes_consumed() + self.reader.bytes_read()
    }

    /// The last Acknowledgement sequence number from the peer.
    pub fn peer_acknowledged(&self) -> Option<u32> {
        self.peer_acked
    }

    /// The peer's Set Peer Bandwidth (window, limit type), if it sent one.
    pub fn peer_bandwidth(&self) -> Option<(u32, u8)> {
        self.peer_bandwidth
    }

    /// The player's buffer length (User Control Set Buffer Length), in milliseconds.
    pub fn peer_buffer_ms(&self) -> Option<u32> {
        self.peer_buffer_ms
    }

    fn expect_pending(&self, state: State, action: &'static str) -> Result<(), SessionError> {
        if self.state == state {
            Ok(())
        } else {
            Err(SessionError::NoPendingRequest {
                action,
                state: self.state.describe(),
            })
        }
    }

    /// Most input held while a publish/play decision is pending.
    fn backlog_limit(&self) -> usize {
        self.config.max_message_len.saturating_mul(2).max(0x10_0000)
    }

    fn process(&mut self) -> Result<(), SessionError> {
        let result = self.process_inner();
        if result.is_err() {
            self.state = State::Closed;
        }
        result
    }

    fn process_inner(&mut self) -> Result<(), SessionError> {
        while self.state == State::ExpectHandshake {
            match self.handshake.handle_input(&mut self.inbuf)? {
                HandshakeProgress::Send(reply) => self.send_prechunked(reply),
                HandshakeProgress::Done => self.state = State::ExpectConnect,
                _ => return Ok(()),
            }
        }
        loop {
            match self.state {
                State::AwaitPublishDecision | State::AwaitPlayDecision => {
                    let max = self.backlog_limit();
                    if self.inbuf.len() > max {
                        return Err(SessionError::InputBacklog {
                            len: self.inbuf.len(),
                            max,
                        });
                    }
                    return Ok(());
                }
                State::Closed => return Ok(()),
                _ => {}
            }
            let Some(msg) = self.reader.read(&mut self.inbuf)? else {
                // Complete chunks of unfinished messages count too.
                self.maybe_acknowledge();
                return Ok(());
            };
            self.handle_message(msg)?;
            self.maybe_acknowledge();
        }
    }

    /// Sends an Acknowledgement once the peer's window of bytes has been received.
    fn maybe_acknowledge(&mut self) {
        let Some(window) = self.peer_window.filter(|&w| w > 0) else {
            return;
        };
        let total = self.bytes_received();
        if total.saturating_sub(self.last_ack) >= u64::from(window) {
            self.last_ack = total;
            // The sequence number wraps at 2^32 by definition.
            self.send_control(ControlMessage::Acknowledgement {
                sequence: total as u32,
            });
        }
    }

    fn handle_message(&mut self, msg: Message) -> Result<(), SessionError> {
        if let Some(control) = ControlMessage::parse(msg.type_id, &msg.body)? {
            return self.handle_control(control);
        }
        match msg.type_id {
            chunk::MSG_COMMAND_AMF0 | chunk::MSG_COMMAND_AMF3 => {
                let command = parse_command(&msg)?;
                self.handle_command(command, &msg)
            }
            chunk::MSG_DATA_AMF0 | chunk::MSG_DATA_AMF3 => {
                self.handle_data(&msg);
                Ok(())
            }
            chunk::MSG_AUDIO | chunk::MSG_VIDEO => {
                if self.state == State::Publishing {
                    self.last_media = self.now;
                    let timestamp = self.media_clock.extend(msg.timestamp);
                    self.events.push_back(Event::Media {
                        type_id: msg.type_id,
                        timestamp,
                        body: msg.body,
                    });
                } else {
                    tracing::debug!(type_id = msg.type_id, "media while not publishing ignored");
                }
                Ok(())
            }
            chunk::MSG_AGGREGATE => {
                if self.state == State::Publishing {
                    self.last_media = self.now;
                    self.handle_aggregate(&msg);
                }
                Ok(())
            }
            other => {
                tracing::debug!(type_id = other, csid = msg.csid, "message type ignored");
                Ok(())
            }
        }
    }

    fn handle_control(&mut self, control: ControlMessage) -> Result<(), SessionError> {
        match control {
            ControlMessage::SetChunkSize(n) => self.reader.set_chunk_size(n)?,
            ControlMessage::Abort { csid } => self.reader.abort(csid),
            ControlMessage::Acknowledgement { sequence } => self.peer_acked = Some(sequence),
            ControlMessage::WindowAckSize(w) => self.peer_window = Some(w),
            ControlMessage::SetPeerBandwidth { size, limit } => {
                self.peer_bandwidth = Some((size, limit));
            }
            ControlMessage::UserControl(UserControlEvent::PingRequest(t)) => {
                self.send_control(ControlMessage::UserControl(UserControlEvent::PingResponse(
                    t,
                )));
            }
            ControlMessage::UserControl(UserControlEvent::SetBufferLength {
                buffer_ms, ..
            }) => self.peer_buffer_ms = Some(buffer_ms),
            ControlMessage::UserControl(other) => {
                tracing::debug!(event = ?other, "user control event ignored");
            }
        }
        Ok(())
    }

    fn handle_command(&mut self, cmd: Command, msg: &Message) -> Result<(), SessionError> {
        let txn = cmd.transaction;
        if self.state == State::ExpectConnect && cmd.name != "connect" {
            return Err(SessionError::NotConnected { command: cmd.name });
        }
        match cmd.name.as_str() {
            "connect" => self.on_connect(&cmd),
            "releaseStream" => {
                if txn != 0.0 {
                    self.send_command_reply("_result", txn, Amf0Value::Null, Amf0Value::Undefined);
                }
            }
            "FCPublish" => {
                let name = cmd
                    .args
                    .get(1)
                    .and_then(Amf0Value::as_str)
                    .unwrap_or_default();
                let values = [
                    Amf0Value::string("onFCPublish"),
                    Amf0Value::Number(0.0),
                    Amf0Value::Null,
                    status_object("status", "NetStream.Publish.Start", name),
                ];
                self.send_amf(CSID_COMMAND, 0, &values);
            }
            "createStream" => {
                if matches!(self.state, State::ExpectStreamCommand) {
                    let id = self.next_stream_id;
                    self.next_stream_id = id.saturating_add(1);
                    let id = Amf0Value::Number(f64::from(id));
                    self.send_command_reply("_result", txn, Amf0Value::Null, id);
                } else {
                    self.call_failed(txn, "createStream while a stream is active");
                }
            }
            "publish" => self.on_publish(&cmd, msg),
            "play" => self.on_play(&cmd, msg),
            "FCUnpublish" | "deleteStream" | "closeStream" => self.stop_stream(&cmd.name),
            "getStreamLength" => {
                self.send_command_reply("_result", txn, Amf0Value::Null, Amf0Value::Number(0.0));
            }
            "receiveAudio" | "receiveVideo" => {
                let flag = cmd.args.get(1).and_then(Amf0Value::as_bool).unwrap_or(true);
                self.events.push_back(if cmd.name == "receiveAudio" {
                    Event::ReceiveAudio(flag)
                } else {
                    Event::ReceiveVideo(flag)
                });
            }
            "_result" | "_error" | "onStatus" | "onBWDone" => {
                tracing::debug!(command = %cmd.name, "reply from peer ignored");
            }
            _ => {
                if txn != 0.0 {
                    let description = format!("unknown command {}", cmd.name);
                    self.call_failed(txn, &description);
                } else {
                    tracing::debug!(command = %cmd.name, "unknown command ignored");
                }
            }
        }
        Ok(())
    }

    fn on_connect(&mut self, cmd: &Command) {
        let txn = cmd.transaction;
        if self.state != State::ExpectConnect {
            self.call_failed(txn, "already connected");
            return;
        }
        let obj = cmd.args.first();
        let text = |key: &str| {
            obj.and_then(|o| o.get(key))
                .and_then(Amf0Value::as_str)
                .map(str::to_owned)
        };
        let (app, app_query) = split_query(text("app").unwrap_or_default().trim_end_matches('/'));
        let object_encoding = obj
            .and_then(|o| o.get("objectEncoding"))
            .and_then(Amf0Value::as_f64)
            .unwrap_or(0.0);

        self.send_control(ControlMessage::WindowAckSize(self.config.window_ack_size));
        self.send_control(ControlMessage::SetPeerBandwidth {
            size: self.config.peer_bandwidth,
            limit: chunk::LIMIT_DYNAMIC,
        });
        self.ensure_chunk_size_sent();
        let props = Amf0Value::object([
            ("fmsVer", Amf0Value::string(FMS_VERSION)),
            ("capabilities", Amf0Value::Number(FMS_CAPABILITIES)),
        ]);
        let info = Amf0Value::object([
            ("level", Amf0Value::string("status")),
            ("code", Amf0Value::string("NetConnection.Connect.Success")),
            ("description", Amf0Value::string("Connection succeeded.")),
            ("objectEncoding", Amf0Value::Number(object_encoding)),
        ]);
        self.send_command_reply("_result", txn, props, info);
        self.state = State::ExpectStreamCommand;
        self.app.clone_from(&app);
        self.app_query.clone_from(&app_query);
        self.events.push_back(Event::Connected {
            app,
            app_query,
            tc_url: text("tcUrl"),
            flash_ver: text("flashVer"),
            object_encoding,
        });
    }

    /// The stream name argument and the message stream of a publish/play command.
    fn stream_request(&mut self, cmd: &Command, msg: &Message) -> Option<(String, Option<String>)> {
        let name = cmd
            .args
            .get(1)
            .and_then(Amf0Value::as_str)
            .unwrap_or_default();
        let (key, query) = split_query(name);
        self.stream_id = if msg.stream_id == 0 {
            MEDIA_STREAM_ID
        } else {
            msg.stream_id
        };
        (!key.is_empty()).then_some((key, query))
    }

    fn on_publish(&mut self, cmd: &Command, msg: &Message) {
        if self.state != State::ExpectStreamCommand {
            self.call_failed(cmd.transaction, "publish while a stream is active");
            return;
        }
        let Some((stream_key, query)) = self.stream_request(cmd, msg) else {
            self.send_on_status("error", "NetStream.Publish.BadName", "Empty stream name.");
            return;
        };
        let publish_type = cmd
            .args
            .get(2)
            .and_then(Amf0Value::as_str)
            .unwrap_or("live")
            .to_owned();
        self.stream_key.clone_from(&stream_key);
        let path = match self.request_path() {
            Ok(path) => path,
            Err(why) => {
                let log = format!("publish refused: {why}");
                return self.refuse("NetStream.Publish.BadName", &why, log);
            }
        };
        let creds = self.credentials(query.as_deref());
        if let Some(key) = self.access.publish_key(&path) {
            // A path's key is required and enough (the shorthand of older configs).
            if !creds
                .key
                .as_deref()
                .is_some_and(|k| auth::secret::eq(k, &key))
            {
                return self.refuse(
                    "NetStream.Publish.Unauthorized",
                    "publishing to this path needs a valid ?key=",
                    format!("publish to '{path}' refused: wrong or missing key"),
                );
            }
        } else if let refusal @ (Verdict::Unauthorized | Verdict::Forbidden | Verdict::Blocked) =
            self.access.authorize(Action::Publish, &path, &creds)
        {
            return self.refuse(
                "NetStream.Publish.Unauthorized",
                "not allowed to publish this path (give ?user=&pass= or ?token=)",
                format!("publish to '{path}' refused: {}", refusal_text(refusal)),
            );
        }
        if let Err(e) = self.access.check_claim(&path) {
            let why = e.to_string();
            return self.refuse(
                "NetStream.Publish.BadName",
                &why,
                format!("publish refused: {why}"),
            );
        }
        self.state = State::AwaitPublishDecision;
        self.events.push_back(Event::PublishRequested {
            path,
            stream_id: self.stream_id,
            publish_type,
        });
    }

    fn on_play(&mut self, cmd: &Command, msg: &Message) {
        if self.state != State::ExpectStreamCommand {
            self.call_failed(cmd.transaction, "play while a stream is active");
            return;
        }
        let Some((stream_key, query)) = self.stream_request(cmd, msg) else {
            self.send_on_status(
                "error",
                "NetStream.Play.StreamNotFound",
                "Empty stream name.",
            );
            return;
        };
        self.stream_key.clone_from(&stream_key);
        let path = match self.request_path() {
            Ok(path) => path,
            Err(why) => {
                let log = format!("play refused: {why}");
                return self.refuse("NetStream.Play.StreamNotFound", &why, log);
            }
        };
        // A one-segment path (`demo`) is reachable under any app: RTMP clients insist on
        // an app and a name (see `rtmp::play_path`).
        let path = path.resolve(|p| self.access.exists(p));
        let creds = self.credentials(query.as_deref());
        if let refusal @ (Verdict::Unauthorized | Verdict::Forbidden | Verdict::Blocked) =
            self.access.authorize(Action::Read, &path, &creds)
        {
            return self.refuse(
                "NetStream.Play.Failed",
                "not allowed to play this path (give ?user=&pass= or ?token=)",
                format!("play of '{path}' refused: {}", refusal_text(refusal)),
            );
        }
        self.state = State::AwaitPlayDecision;
        self.events.push_back(Event::PlayRequested {
            path,
            stream_id: self.stream_id,
        });
    }

    /// Credentials of a publish/play: the stream name's query, then the app's.
    fn credentials(&self, query: Option<&str>) -> Credentials {
        let of = |q: Option<&str>| q.map(auth::creds::from_query).unwrap_or_default();
        of(query).or(of(self.app_query.as_deref()))
    }

    /// The stream path of the publish/play request: `APP/KEY`, or why the name is bad.
    fn request_path(&self) -> Result<StreamPath, String> {
        StreamPath::from_app_key(&self.app, &self.stream_key).map_err(|e| {
            format!(
                "bad stream name '{}/{}': {e}",
                self.app.trim_matches('/'),
                self.stream_key
            )
        })
    }

    /// Answers a publish/play request the session refuses itself with an error `onStatus`,
    /// and closes.
    fn refuse(&mut self, code: &str, description: &str, log: String) {
        self.send_on_status("error", code, description);
        self.state = State::Closed;
        self.events
            .push_back(Event::Closed(CloseReason::Refused(log)));
    }

    fn stop_stream(&mut self, command: &str) {
        match self.state {
            State::Publishing => {
                self.events.push_back(Event::Unpublished);
                self.state = State::ExpectStreamCommand;
            }
            State::Playing => {
                self.events.push_back(Event::PlayStopped);
                self.state = State::ExpectStreamCommand;
            }
            _ => tracing::debug!(command, "no active stream to stop"),
        }
    }

    fn handle_data(&mut self, msg: &Message) {
        if self.state != State::Publishing {
            tracing::debug!(csid = msg.csid, "data message while not publishing ignored");
            return;
        }
        let body = if msg.type_id == chunk::MSG_DATA_AMF3 && msg.body.first() == Some(&0x00) {
            msg.body.slice(1..)
        } else {
            msg.body.clone()
        };
        let mut rest: &[u8] = &body;
        let name = match amf0::decode(&mut rest) {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(error = %e, "undecodable data message ignored");
                return;
            }
        };
        let metadata = match name.as_str() {
            Some("@setDataFrame") => body.slice(body.len() - rest.len()..),
            Some("onMetaData") => body,
            other => {
                tracing::debug!(name = ?other, "data message ignored");
                return;
            }
        };
        // Forward only a well-formed AMF0 `onMetaData` + object, ready for players.
        match amf0::decode_all(&metadata) {
            Ok(values)
                if values.first().and_then(Amf0Value::as_str) == Some("onMetaData")
                    && values.get(1).and_then(Amf0Value::properties).is_some() =>
            {
                self.events.push_back(Event::Metadata(metadata));
            }
            Ok(_) => tracing::debug!("metadata without onMetaData object ignored"),
            Err(e) => tracing::debug!(error = %e, "undecodable metadata ignored"),
        }
    }

    /// Splits an aggregate message (FLV tags back to back) into media events.
    fn handle_aggregate(&mut self, msg: &Message) {
        let body = &msg.body;
        let mut pos = 0usize;
        let mut first_ts = None;
        while let Some(h) = body.get(pos..pos + 11) {
            let type_id = h[0];
            let size = ((h[1] as usize) << 16) | ((h[2] as usize) << 8) | h[3] as usize;
            let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
            let start = pos + 11;
            let Some(end) = start.checked_add(size).filter(|&e| e <= body.len()) else {
                tracing::debug!("truncated aggregate message");
                return;
            };
            let base = *first_ts.get_or_insert(ts);
            if matches!(type_id, chunk::MSG_AUDIO | chunk::MSG_VIDEO) {
                let timestamp = self
                    .media_clock
                    .extend(msg.timestamp.wrapping_add(ts.wrapping_sub(base)));
                self.events.push_back(Event::Media {
                    type_id,
                    timestamp,
                    body: body.slice(start..end),
                });
            }
            pos = end + 4; // PreviousTagSize
        }
    }

    fn ensure_chunk_size_sent(&mut self) {
        if self.chunk_size_sent {
            return;
        }
        self.chunk_size_sent = true;
        let size = self.config.out_chunk_size;
        self.send_control(ControlMessage::SetChunkSize(size));
        // The size was clamped to the valid range in `new`.
        let _ = self.writer.set_chunk_size(size);
    }

    fn write(&mut self, msg: &Message) {
        self.writer.write(msg, &mut self.out_buf);
    }

    fn send_control(&mut self, control: ControlMessage) {
        self.write(&control.to_message());
    }

    fn send_amf(&mut self, csid: u32, stream_id: u32, values: &[Amf0Value]) {
        let msg = Message {
            csid,
            timestamp: 0,
            type_id: chunk::MSG_COMMAND_AMF0,
            stream_id,
            body: Bytes::from(amf0::encode_all(values)),
        };
        self.write(&msg);
    }

    fn send_command_reply(&mut self, name: &str, txn: f64, obj: Amf0Value, info: Amf0Value) {
        let values = [Amf0Value::string(name), Amf0Value::Number(txn), obj, info];
        self.send_amf(CSID_COMMAND, 0, &values);
    }

    /// `_error` with `NetConnection.Call.Failed`, or nothing for transaction 0.
    fn call_failed(&mut self, txn: f64, description: &str) {
        if txn == 0.0 {
            tracing::debug!(description, "failed call without transaction id");
            return;
        }
        let info = status_object("error", "NetConnection.Call.Failed", description);
        self.send_command_reply("_error", txn, Amf0Value::Null, info);
    }

    fn send_on_status(&mut self, level: &str, code: &str, description: &str) {
        let mut info = status_object(level, code, description);
        if let Amf0Value::Object(props) = &mut info {
            props.push((
                "details".into(),
                Amf0Value::string(self.stream_key.as_str()),
            ));
        }
        let values = [
            Amf0Value::string("onStatus"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            info,
        ];
        self.send_amf(CSID_DATA, self.stream_id, &values);
    }

    fn send_stream_message(&mut self, csid: u32, type_id: u8, timestamp: u32, body: &[u8]) {
        chunk::encode_message(
            csid,
            type_id,
            self.stream_id,
            timestamp,
            body,
            self.writer.chunk_size() as usize,
            &mut self.out_buf,
        );
    }

    fn flush_out_buf(&mut self) {
        if !self.out_buf.is_empty() {
            self.out_queue.push_back(self.out_buf.split().freeze());
        }
    }
}

/// Decodes a command message: name, transaction id, then the command object and arguments.
///
/// Values after the name and transaction id that fail to decode (e.g. AMF3 inside an
/// argument) end the argument list instead of failing the command.
fn parse_command(msg: &Message) -> Result<Command, SessionError> {
    let mut body: &[u8] = &msg.body;
    if msg.type_id == chunk::MSG_COMMAND_AMF3 && body.first() == Some(&0x00) {
        body = body.get(1..).unwrap_or_default();
    }
    let bad = |source| SessionError::BadCommand {
        type_id: msg.type_id,
        csid: msg.csid,
        source,
    };
    let name = match amf0::decode(&mut body).map_err(bad)? {
        Amf0Value::String(s) | Amf0Value::LongString(s) => s,
        _ => return Err(SessionError::UnnamedCommand { csid: msg.csid }),
    };
    let transaction = if body.is_empty() {
        0.0
    } else {
        amf0::decode(&mut body)
            .map_err(bad)?
            .as_f64()
            .unwrap_or(0.0)
    };
    let mut args = Vec::new();
    while !body.is_empty() {
        match amf0::decode(&mut body) {
            Ok(v) => args.push(v),
            Err(e) => {
                tracing::debug!(command = %name, error = %e, "command arguments cut short");
                break;
            }
        }
    }
    Ok(Command {
        name,
        transaction,
        args,
    })
}

#[cfg(test)]
mod tests;
