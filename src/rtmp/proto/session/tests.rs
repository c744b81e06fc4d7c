//! Session tests: a scripted client built from this module's own encoders.

use super::*;
use crate::rtmp::proto::chunk::{
    MSG_ACKNOWLEDGEMENT, MSG_AUDIO, MSG_COMMAND_AMF0, MSG_COMMAND_AMF3, MSG_DATA_AMF0,
    MSG_SET_CHUNK_SIZE, MSG_SET_PEER_BANDWIDTH, MSG_USER_CONTROL, MSG_VIDEO, MSG_WINDOW_ACK_SIZE,
    encode_message,
};
use crate::rtmp::proto::handshake::HANDSHAKE_LEN;

fn path(s: &str) -> StreamPath {
    StreamPath::parse(s).unwrap()
}

#[allow(clippy::disallowed_methods)] // Tests need an origin; time then moves by hand.
fn origin() -> Instant {
    Instant::now()
}

/// The next bytes the session sends, or `None` once it reports its timeout; an event in
/// between is a test failure.
fn next_transmit(session: &mut ServerSession) -> Option<Bytes> {
    match session.poll_output() {
        Output::Transmit(b) => Some(b),
        Output::Event(e) => panic!("unexpected event {e:?}"),
        Output::Timeout(_) => None,
    }
}

/// The scripted client side of a connection, in virtual time.
struct Client {
    session: ServerSession,
    /// The virtual clock.
    now: Instant,
    /// Reads what the server sends.
    reader: ChunkReader,
    received: BytesMut,
    /// Events drained from the session and not yet taken.
    events: Vec<Event>,
    /// The timeout the session reported last.
    timeout: Option<Instant>,
}

impl Client {
    /// A session through the plain handshake.
    fn new() -> Self {
        Self::with_config(SessionConfig::default())
    }

    fn with_config(config: SessionConfig) -> Self {
        Self::with_access(config, AccessTable::default())
    }

    fn with_access(config: SessionConfig, access: impl Access + 'static) -> Self {
        let now = origin();
        let mut session = ServerSession::new(now, config, 0x5EED).with_access(Box::new(access));
        let mut c0c1 = vec![0x03];
        c0c1.extend_from_slice(&[0u8; HANDSHAKE_LEN]);
        session.handle_input(now, Input::Receive(&c0c1)).unwrap();
        let s0s1s2 = next_transmit(&mut session).unwrap();
        assert_eq!(s0s1s2.len(), 1 + 2 * HANDSHAKE_LEN);
        assert!(next_transmit(&mut session).is_none());
        session
            .handle_input(now, Input::Receive(&[0u8; HANDSHAKE_LEN]))
            .unwrap();
        Client {
            session,
            now,
            reader: ChunkReader::new(1 << 24),
            received: BytesMut::new(),
            events: Vec::new(),
            timeout: None,
        }
    }

    /// Feeds bytes at the current virtual time.
    fn input(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.session.handle_input(self.now, Input::Receive(bytes))
    }

    /// Moves the clock on by `d` and lets the session's timer fire if due.
    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.session.handle_timeout(self.now);
    }

    /// Drains the session's output until its timeout.
    fn drain(&mut self) {
        loop {
            match self.session.poll_output() {
                Output::Transmit(b) => self.received.extend_from_slice(&b),
                Output::Event(e) => self.events.push(e),
                Output::Timeout(at) => {
                    self.timeout = Some(at);
                    return;
                }
            }
        }
    }

    /// The time the session next wants [`ServerSession::handle_timeout`].
    fn next_timeout(&mut self) -> Instant {
        self.drain();
        self.timeout.expect("drained to a timeout")
    }

    fn send(&mut self, csid: u32, type_id: u8, stream_id: u32, ts: u32, body: &[u8]) {
        self.try_send(csid, type_id, stream_id, ts, body).unwrap();
    }

    fn try_send(
        &mut self,
        csid: u32,
        type_id: u8,
        stream_id: u32,
        ts: u32,
        body: &[u8],
    ) -> Result<(), SessionError> {
        let mut out = BytesMut::new();
        encode_message(csid, type_id, stream_id, ts, body, 128, &mut out);
        self.input(&out)
    }

    fn command(&mut self, stream_id: u32, values: &[Amf0Value]) {
        self.send(3, MSG_COMMAND_AMF0, stream_id, 0, &amf0::encode_all(values));
    }

    /// Messages the server sent since the last call.
    fn replies(&mut self) -> Vec<Message> {
        self.drain();
        let mut out = Vec::new();
        while let Some(m) = self.reader.read(&mut self.received).unwrap() {
            if m.type_id == MSG_SET_CHUNK_SIZE {
                let Ok(Some(ControlMessage::SetChunkSize(n))) = ControlMessage::parse(1, &m.body)
                else {
                    panic!("bad Set Chunk Size");
                };
                self.reader.set_chunk_size(n).unwrap();
            }
            out.push(m);
        }
        assert!(self.received.is_empty());
        out
    }

    fn events(&mut self) -> Vec<Event> {
        self.drain();
        std::mem::take(&mut self.events)
    }

    fn connect(&mut self) -> Vec<Message> {
        self.connect_app("live")
    }

    fn connect_app(&mut self, app: &str) -> Vec<Message> {
        let obj = Amf0Value::object([
            ("app", Amf0Value::string(app)),
            ("type", Amf0Value::string("nonprivate")),
            (
                "flashVer",
                Amf0Value::string("FMLE/3.0 (compatible; Lavf61.7.100)"),
            ),
            ("tcUrl", Amf0Value::string("rtmp://127.0.0.1:1935/live")),
        ]);
        self.command(
            0,
            &[Amf0Value::string("connect"), Amf0Value::Number(1.0), obj],
        );
        self.replies()
    }
}

fn cmd(name: &str, txn: f64, args: &[Amf0Value]) -> Vec<Amf0Value> {
    let mut v = vec![
        Amf0Value::string(name),
        Amf0Value::Number(txn),
        Amf0Value::Null,
    ];
    v.extend_from_slice(args);
    v
}

fn decode(m: &Message) -> Vec<Amf0Value> {
    amf0::decode_all(&m.body).unwrap()
}

/// Name and `info.code` (or the 4th value's string) of a command reply.
fn name_and_code(m: &Message) -> (String, Option<String>) {
    let v = decode(m);
    let name = v[0].as_str().unwrap().to_owned();
    let code = v
        .get(3)
        .and_then(|i| i.get("code"))
        .and_then(Amf0Value::as_str)
        .map(str::to_owned);
    (name, code)
}

fn user_control(m: &Message) -> UserControlEvent {
    assert_eq!(m.type_id, MSG_USER_CONTROL);
    match ControlMessage::parse(m.type_id, &m.body).unwrap() {
        Some(ControlMessage::UserControl(ev)) => ev,
        other => panic!("not a user control message: {other:?}"),
    }
}

#[test]
fn connect_reply_sequence() {
    let mut c = Client::new();
    let r = c.connect();
    let types: Vec<u8> = r.iter().map(|m| m.type_id).collect();
    assert_eq!(
        types,
        [
            MSG_WINDOW_ACK_SIZE,
            MSG_SET_PEER_BANDWIDTH,
            MSG_SET_CHUNK_SIZE,
            MSG_COMMAND_AMF0
        ]
    );
    assert_eq!(&r[0].body[..], &2_500_000u32.to_be_bytes());
    assert_eq!(&r[1].body[..], &[0x00, 0x26, 0x25, 0xA0, 0x02]);
    assert_eq!(&r[2].body[..], &[0x00, 0x00, 0x10, 0x00]);
    let v = decode(&r[3]);
    assert_eq!(v[0].as_str(), Some("_result"));
    assert_eq!(v[1].as_f64(), Some(1.0));
    assert_eq!(
        v[2].get("fmsVer").and_then(Amf0Value::as_str),
        Some("FMS/3,0,1,123")
    );
    assert_eq!(
        v[2].get("capabilities").and_then(Amf0Value::as_f64),
        Some(31.0)
    );
    assert_eq!(
        v[3].get("code").and_then(Amf0Value::as_str),
        Some("NetConnection.Connect.Success")
    );
    assert_eq!(
        v[3].get("objectEncoding").and_then(Amf0Value::as_f64),
        Some(0.0)
    );
    assert_eq!((r[3].csid, r[3].stream_id), (CSID_COMMAND, 0));
    assert_eq!(c.session.out_chunk_size(), 4096);
    assert_eq!(
        c.events(),
        [Event::Connected {
            app: "live".into(),
            app_query: None,
            tc_url: Some("rtmp://127.0.0.1:1935/live".into()),
            flash_ver: Some("FMLE/3.0 (compatible; Lavf61.7.100)".into()),
            object_encoding: 0.0,
        }]
    );
    // A second connect fails the call.
    c.command(0, &cmd("connect", 2.0, &[]));
    let r = c.replies();
    assert_eq!(
        name_and_code(&r[0]),
        ("_error".into(), Some("NetConnection.Call.Failed".into()))
    );
}

#[test]
fn ffmpeg_style_publish() {
    let mut c = Client::new();
    c.connect();
    c.events();

    c.command(0, &cmd("releaseStream", 2.0, &[Amf0Value::string("key")]));
    let r = c.replies();
    assert_eq!(name_and_code(&r[0]).0, "_result");
    assert_eq!(decode(&r[0])[1].as_f64(), Some(2.0));

    c.command(0, &cmd("FCPublish", 3.0, &[Amf0Value::string("key")]));
    let r = c.replies();
    assert_eq!(
        name_and_code(&r[0]),
        ("onFCPublish".into(), Some("NetStream.Publish.Start".into()))
    );

    c.command(0, &cmd("createStream", 4.0, &[]));
    let r = c.replies();
    let v = decode(&r[0]);
    assert_eq!(v[0].as_str(), Some("_result"));
    assert_eq!(v[1].as_f64(), Some(4.0));
    assert_eq!(v[3].as_f64(), Some(1.0));

    let publish = cmd(
        "publish",
        5.0,
        &[
            Amf0Value::string("key?token=abc"),
            Amf0Value::string("live"),
        ],
    );
    c.send(4, MSG_COMMAND_AMF0, 1, 0, &amf0::encode_all(&publish));
    assert!(c.replies().is_empty(), "publish waits for the driver");
    assert_eq!(
        c.events(),
        [Event::PublishRequested {
            path: path("live/key"),
            stream_id: 1,
            publish_type: "live".into(),
        }]
    );
    assert_eq!((c.session.app(), c.session.stream_key()), ("live", "key"));

    // The encoder does not wait: metadata arrives before the decision and is held.
    let mut meta = amf0::encode_all(&[
        Amf0Value::string("@setDataFrame"),
        Amf0Value::string("onMetaData"),
    ]);
    let meta_obj = amf0::encode_all(&[Amf0Value::EcmaArray(vec![
        ("width".into(), Amf0Value::Number(1280.0)),
        ("encoder".into(), Amf0Value::string("Lavf61.7.100")),
    ])]);
    meta.extend_from_slice(&meta_obj);
    c.send(4, MSG_DATA_AMF0, 1, 0, &meta);
    assert!(c.events().is_empty());

    c.session.accept_publish().unwrap();
    let r = c.replies();
    assert_eq!(r.len(), 2);
    assert_eq!(user_control(&r[0]), UserControlEvent::StreamBegin(1));
    assert_eq!(
        name_and_code(&r[1]),
        ("onStatus".into(), Some("NetStream.Publish.Start".into()))
    );
    assert_eq!((r[1].csid, r[1].stream_id), (CSID_DATA, 1));
    assert!(c.session.is_publishing());

    let ev = c.events();
    let [Event::Metadata(m)] = ev.as_slice() else {
        panic!("expected metadata, got {ev:?}");
    };
    let mut expected = amf0::encode_all(&[Amf0Value::string("onMetaData")]);
    expected.extend_from_slice(&meta_obj);
    assert_eq!(&m[..], &expected[..]);

    let video = vec![0x17, 0x01, 0, 0, 0, 0xAA, 0xBB];
    c.send(6, MSG_VIDEO, 1, 40, &video);
    let audio = vec![0xAF, 0x01, 0x21];
    c.send(4, MSG_AUDIO, 1, 23, &audio);
    assert_eq!(
        c.events(),
        [
            Event::Media {
                type_id: MSG_VIDEO,
                timestamp: 40,
                body: Bytes::from(video)
            },
            Event::Media {
                type_id: MSG_AUDIO,
                timestamp: 23,
                body: Bytes::from(audio)
            },
        ]
    );

    c.command(0, &cmd("FCUnpublish", 6.0, &[Amf0Value::string("key")]));
    c.command(1, &cmd("deleteStream", 7.0, &[Amf0Value::Number(1.0)]));
    assert_eq!(c.events(), [Event::Unpublished]);
    assert!(!c.session.is_publishing());
}

#[test]
fn rejected_publish_closes() {
    let mut c = Client::new();
    c.connect();
    c.command(0, &cmd("createStream", 2.0, &[]));
    c.send(
        4,
        MSG_COMMAND_AMF0,
        1,
        0,
        &amf0::encode_all(&cmd("publish", 3.0, &[Amf0Value::string("k")])),
    );
    c.replies();
    c.events();
    assert!(c.session.accept_play().is_err(), "no play pending");
    c.session
        .reject_publish("NetStream.Publish.Unauthorized", "Bad key.")
        .unwrap();
    let r = c.replies();
    let v = decode(&r[0]);
    assert_eq!(v[3].get("level").and_then(Amf0Value::as_str), Some("error"));
    assert_eq!(
        v[3].get("code").and_then(Amf0Value::as_str),
        Some("NetStream.Publish.Unauthorized")
    );
    assert!(c.session.is_closed());
    assert_eq!(
        c.try_send(4, MSG_AUDIO, 1, 0, &[0xAF]),
        Err(SessionError::Closed)
    );
}

#[test]
fn play_sequence() {
    let mut c = Client::new();
    c.connect();
    c.events();
    c.command(0, &cmd("createStream", 2.0, &[]));
    c.replies();
    c.command(1, &cmd("getStreamLength", 3.0, &[Amf0Value::string("cam")]));
    assert_eq!(name_and_code(&c.replies()[0]).0, "_result");
    let play = cmd(
        "play",
        4.0,
        &[
            Amf0Value::string("cam?sig=1"),
            Amf0Value::Number(-2000.0),
            Amf0Value::Number(-1.0),
        ],
    );
    c.send(8, MSG_COMMAND_AMF0, 1, 0, &amf0::encode_all(&play));
    // ffmpeg follows play with Set Buffer Length.
    let sbl = ControlMessage::UserControl(UserControlEvent::SetBufferLength {
        stream_id: 1,
        buffer_ms: 3000,
    })
    .to_message();
    c.send(2, MSG_USER_CONTROL, 0, 0, &sbl.body);
    assert_eq!(
        c.events(),
        [Event::PlayRequested {
            path: path("live/cam"),
            stream_id: 1,
        }]
    );
    assert_eq!(c.session.stream_key(), "cam");
    assert!(c.replies().is_empty());

    c.session.accept_play().unwrap();
    assert_eq!(
        c.session.peer_buffer_ms(),
        Some(3000),
        "held input processed"
    );
    let r = c.replies();
    assert_eq!(r.len(), 4);
    assert_eq!(user_control(&r[0]), UserControlEvent::StreamBegin(1));
    assert_eq!(
        name_and_code(&r[1]).1.as_deref(),
        Some("NetStream.Play.Reset")
    );
    assert_eq!(
        name_and_code(&r[2]).1.as_deref(),
        Some("NetStream.Play.Start")
    );
    assert_eq!(r[3].type_id, MSG_DATA_AMF0);
    assert_eq!(
        decode(&r[3]),
        [
            Amf0Value::string("|RtmpSampleAccess"),
            Amf0Value::Boolean(true),
            Amf0Value::Boolean(true)
        ]
    );
    assert!(
        r[1..]
            .iter()
            .all(|m| m.stream_id == 1 && m.csid == CSID_DATA)
    );
    assert!(c.session.is_playing());

    // Media: the session's chunking equals the shared fan-out encoding.
    let frame: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    assert!(c.session.shares_encoding(4096));
    c.session.send_media(MSG_VIDEO, 0x0100_0000, &frame);
    let own = next_transmit(&mut c.session).unwrap();
    let mut shared = BytesMut::new();
    encode_media(
        MSG_VIDEO,
        0x0100_0000,
        &frame,
        c.session.out_chunk_size(),
        &mut shared,
    );
    assert_eq!(own, shared);
    c.received.extend_from_slice(&own);
    c.session.send_prechunked(shared.freeze());
    c.session
        .send_metadata(&amf0::encode_all(&[Amf0Value::string("onMetaData")]), 0);
    c.session.send_media(MSG_AUDIO, 5, &[0xAF, 0x01]);
    let r = c.replies();
    assert_eq!(r.len(), 4);
    assert_eq!(
        (r[0].csid, r[0].type_id, r[0].stream_id),
        (CSID_VIDEO, MSG_VIDEO, 1)
    );
    assert_eq!(r[0], r[1]);
    assert_eq!(&r[0].body[..], &frame[..]);
    assert_eq!((r[2].csid, r[2].type_id), (CSID_DATA, MSG_DATA_AMF0));
    assert_eq!(
        (r[3].csid, r[3].type_id, r[3].timestamp),
        (CSID_AUDIO, MSG_AUDIO, 5)
    );

    c.session.send_unpublish_notify();
    let r = c.replies();
    assert_eq!(
        name_and_code(&r[0]).1.as_deref(),
        Some("NetStream.Play.UnpublishNotify")
    );
    assert_eq!(user_control(&r[1]), UserControlEvent::StreamEof(1));
    c.session.send_publish_notify();
    let r = c.replies();
    assert_eq!(user_control(&r[0]), UserControlEvent::StreamBegin(1));
    assert_eq!(
        name_and_code(&r[1]).1.as_deref(),
        Some("NetStream.Play.PublishNotify")
    );

    c.session.end_play();
    let r = c.replies();
    assert_eq!(
        name_and_code(&r[0]).1.as_deref(),
        Some("NetStream.Play.UnpublishNotify"),
        "a removed stream's player is told first"
    );
    assert_eq!(user_control(&r[1]), UserControlEvent::StreamEof(1));
    assert_eq!(c.events(), [Event::Closed(CloseReason::StreamRemoved)]);
    assert!(c.session.is_closed());
}

#[test]
fn play_then_receive_video_off_and_delete() {
    let mut c = Client::new();
    c.connect();
    c.events();
    c.command(0, &cmd("createStream", 2.0, &[]));
    c.replies();
    let play = cmd("play", 4.0, &[Amf0Value::string("cam")]);
    c.send(8, MSG_COMMAND_AMF0, 1, 0, &amf0::encode_all(&play));
    c.events();
    c.session.accept_play().unwrap();
    c.replies();
    c.command(0, &cmd("receiveVideo", 0.0, &[Amf0Value::Boolean(false)]));
    c.command(1, &cmd("deleteStream", 0.0, &[Amf0Value::Number(1.0)]));
    assert_eq!(c.events(), [Event::ReceiveVideo(false), Event::PlayStopped]);
}

#[test]
fn rejected_play() {
    let mut c = Client::new();
    c.connect();
    c.send(
        8,
        MSG_COMMAND_AMF0,
        1,
        0,
        &amf0::encode_all(&cmd("play", 0.0, &[Amf0Value::string("nope")])),
    );
    c.session
        .reject_play("NetStream.Play.StreamNotFound", "No such stream.")
        .unwrap();
    let r = c.replies();
    let last = r.last().unwrap();
    assert_eq!(
        name_and_code(last).1.as_deref(),
        Some("NetStream.Play.StreamNotFound")
    );
}

#[test]
fn ping_request_gets_response() {
    let mut c = Client::new();
    let ping = ControlMessage::UserControl(UserControlEvent::PingRequest(0xABCD)).to_message();
    c.send(2, MSG_USER_CONTROL, 0, 0, &ping.body);
    let r = c.replies();
    assert_eq!(r.len(), 1);
    assert_eq!(user_control(&r[0]), UserControlEvent::PingResponse(0xABCD));
}

#[test]
fn acknowledgement_after_window() {
    let mut c = Client::new();
    c.connect();
    let was = ControlMessage::WindowAckSize(8000).to_message();
    c.send(2, MSG_WINDOW_ACK_SIZE, 0, 0, &was.body);
    // Media outside publishing is ignored but still counted.
    c.send(6, MSG_AUDIO, 1, 0, &[0u8; 3000]);
    assert!(c.replies().is_empty());
    c.send(6, MSG_AUDIO, 1, 0, &[0u8; 3000]);
    let r = c.replies();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].type_id, MSG_ACKNOWLEDGEMENT);
    let seq = u32::from_be_bytes(r[0].body[..4].try_into().unwrap());
    assert_eq!(u64::from(seq), c.session.bytes_received());
    assert!(seq > 3073 + 6000);
    // The peer's acknowledgements are recorded.
    let ack = ControlMessage::Acknowledgement { sequence: 1234 }.to_message();
    c.send(2, MSG_ACKNOWLEDGEMENT, 0, 0, &ack.body);
    assert_eq!(c.session.peer_acknowledged(), Some(1234));
}

#[test]
fn publish_before_connect_is_an_error() {
    let mut c = Client::new();
    let body = amf0::encode_all(&cmd("publish", 5.0, &[Amf0Value::string("key")]));
    assert_eq!(
        c.try_send(4, MSG_COMMAND_AMF0, 1, 0, &body),
        Err(SessionError::NotConnected {
            command: "publish".into()
        })
    );
    assert!(c.session.is_closed());
}

#[test]
fn publish_twice_fails_the_call() {
    let mut c = Client::new();
    c.connect();
    let body = amf0::encode_all(&cmd("publish", 5.0, &[Amf0Value::string("key")]));
    c.send(4, MSG_COMMAND_AMF0, 1, 0, &body);
    c.session.accept_publish().unwrap();
    c.replies();
    c.send(4, MSG_COMMAND_AMF0, 1, 0, &body);
    let r = c.replies();
    assert_eq!(
        name_and_code(&r[0]),
        ("_error".into(), Some("NetConnection.Call.Failed".into()))
    );
}

#[test]
fn garbage_after_handshake_is_an_error() {
    let mut c = Client::new();
    let err = c.input(&[0xC5, 0x12, 0x34]).unwrap_err();
    assert_eq!(
        err,
        SessionError::Chunk(ChunkError::UnknownChunkStream { csid: 5, fmt: 3 })
    );
    let mut c = Client::new();
    let err = c.input(&[0x03, 0, 0, 0, 0, 0, 2, 0x14, 0, 0, 0, 0, 0xFF, 0xFF]);
    assert!(
        matches!(err, Err(SessionError::BadCommand { .. })),
        "{err:?}"
    );
}

#[test]
fn bad_handshake_version_is_an_error() {
    let now = origin();
    let mut s = ServerSession::new(now, SessionConfig::default(), 1);
    assert!(matches!(
        s.handle_input(now, Input::Receive(&[0x06, 0, 0])),
        Err(SessionError::Handshake(_))
    ));
    assert_eq!(
        s.handle_input(now, Input::Receive(&[0])),
        Err(SessionError::Closed)
    );
}

#[test]
fn unknown_command_with_transaction_gets_error() {
    let mut c = Client::new();
    c.connect();
    c.command(0, &cmd("_checkbw", 9.0, &[]));
    let r = c.replies();
    assert_eq!(r.len(), 1);
    let v = decode(&r[0]);
    assert_eq!(v[0].as_str(), Some("_error"));
    assert_eq!(v[1].as_f64(), Some(9.0));
    assert_eq!(
        v[3].get("code").and_then(Amf0Value::as_str),
        Some("NetConnection.Call.Failed")
    );
    c.command(0, &cmd("somethingElse", 0.0, &[]));
    assert!(c.replies().is_empty());
}

#[test]
fn amf3_command_and_client_chunk_size() {
    let mut c = Client::new();
    // The client raises its chunk size first, as OBS does.
    let scs = ControlMessage::SetChunkSize(4096).to_message();
    c.send(2, MSG_SET_CHUNK_SIZE, 0, 0, &scs.body);
    let obj = Amf0Value::object([
        ("app", Amf0Value::string("live?x=1/")),
        ("objectEncoding", Amf0Value::Number(3.0)),
    ]);
    let mut body = vec![0x00];
    body.extend_from_slice(&amf0::encode_all(&[
        Amf0Value::string("connect"),
        Amf0Value::Number(1.0),
        obj,
    ]));
    let mut out = BytesMut::new();
    encode_message(3, MSG_COMMAND_AMF3, 0, 0, &body, 4096, &mut out);
    c.input(&out).unwrap();
    let r = c.replies();
    let v = decode(&r[3]);
    assert_eq!(
        v[3].get("objectEncoding").and_then(Amf0Value::as_f64),
        Some(3.0)
    );
    let ev = c.events();
    let [Event::Connected { app, app_query, .. }] = ev.as_slice() else {
        panic!("{ev:?}");
    };
    assert_eq!((app.as_str(), app_query.as_deref()), ("live", Some("x=1")));
}

#[test]
fn bare_on_metadata_and_aggregate() {
    let mut c = Client::new();
    c.connect();
    let body = amf0::encode_all(&cmd("publish", 1.0, &[Amf0Value::string("s")]));
    c.send(4, MSG_COMMAND_AMF0, 1, 0, &body);
    c.session.accept_publish().unwrap();
    c.events();
    let meta = amf0::encode_all(&[
        Amf0Value::string("onMetaData"),
        Amf0Value::object([("fps", Amf0Value::Number(30.0))]),
    ]);
    c.send(4, MSG_DATA_AMF0, 1, 0, &meta);
    // Non-metadata data and AMF3 payloads are ignored, not fatal.
    c.send(4, MSG_DATA_AMF0, 1, 0, &[0x11, 0x0A]);
    c.send(
        4,
        MSG_DATA_AMF0,
        1,
        0,
        &amf0::encode_all(&[Amf0Value::string("onCuePoint")]),
    );
    assert_eq!(c.events(), [Event::Metadata(Bytes::from(meta))]);

    // Two FLV tags in one aggregate message, at 1000 and 1040 (base 1000 → 5000).
    let mut agg = Vec::new();
    for (ty, ts, data) in [(9u8, 1000u32, &[1u8, 2][..]), (8, 1040, &[3][..])] {
        agg.push(ty);
        agg.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        agg.extend_from_slice(&ts.to_be_bytes()[1..]);
        agg.push((ts >> 24) as u8);
        agg.extend_from_slice(&[0, 0, 0]);
        agg.extend_from_slice(data);
        agg.extend_from_slice(&(11 + data.len() as u32).to_be_bytes());
    }
    c.send(4, 0x16, 1, 5000, &agg);
    let ev = c.events();
    assert_eq!(
        ev,
        [
            Event::Media {
                type_id: 9,
                timestamp: 5000,
                body: Bytes::from_static(&[1, 2])
            },
            Event::Media {
                type_id: 8,
                timestamp: 5040,
                body: Bytes::from_static(&[3])
            },
        ]
    );
}

#[test]
fn byte_by_byte_session() {
    let now = origin();
    let mut s = ServerSession::new(now, SessionConfig::default(), 2);
    let mut input = vec![0x03];
    input.extend_from_slice(&[0u8; 2 * HANDSHAKE_LEN]);
    let connect = amf0::encode_all(&cmd("connect", 1.0, &[]));
    let mut out = BytesMut::new();
    encode_message(3, MSG_COMMAND_AMF0, 0, 0, &connect, 128, &mut out);
    input.extend_from_slice(&out);
    for b in input {
        s.handle_input(now, Input::Receive(&[b])).unwrap();
    }
    assert!(matches!(
        s.poll_output(),
        Output::Event(Event::Connected { .. })
    ));
    let total: usize = std::iter::from_fn(|| next_transmit(&mut s))
        .map(|b| b.len())
        .sum();
    assert!(total > 3073);
}

#[test]
fn backlog_limit_while_awaiting_decision() {
    let mut c = Client::with_config(SessionConfig {
        max_message_len: 1000,
        ..SessionConfig::default()
    });
    c.connect();
    let body = amf0::encode_all(&cmd("publish", 1.0, &[Amf0Value::string("s")]));
    c.send(4, MSG_COMMAND_AMF0, 1, 0, &body);
    let big = vec![0u8; 0x10_0001];
    assert!(matches!(
        c.input(&big),
        Err(SessionError::InputBacklog { .. })
    ));
}

#[test]
fn media_timestamps_extend_past_the_32_bit_wrap() {
    let mut t = Timestamp32::default();
    assert_eq!(t.extend(u32::MAX - 10), i64::from(u32::MAX) - 10);
    assert_eq!(t.extend(5), (1i64 << 32) + 5);
    // Small reordering just after the wrap stays in the new epoch.
    assert_eq!(t.extend(3), (1i64 << 32) + 3);
}

#[test]
fn media_timestamps_wrap_only_from_the_top_of_the_range() {
    const E: i64 = 1 << 32;
    // A publisher restarting its clock at 0 after 30 days (more than 2^31 ms): a step
    // back, not a wrap (+49 days).
    let mut t = Timestamp32::default();
    let days30 = 30 * 86_400_000u32;
    assert_eq!(t.extend(days30), i64::from(days30));
    assert_eq!(t.extend(0), 0);
    assert_eq!(t.extend(40), 40);
    // A small step back is a step back.
    let mut t = Timestamp32::default();
    assert_eq!(t.extend(60_000), 60_000);
    assert_eq!(t.extend(0), 0);
    // From the top quarter into the bottom quarter: a wrap, also with a gap.
    let mut t = Timestamp32::default();
    let top = u32::MAX - WRAP_ZONE + 1;
    assert_eq!(t.extend(top), i64::from(top));
    assert_eq!(t.extend(WRAP_ZONE - 1), E + i64::from(WRAP_ZONE) - 1);
    // A straggler from before the wrap stays in its epoch and does not move the clock.
    assert_eq!(t.extend(u32::MAX), E - 1);
    assert_eq!(t.extend(WRAP_ZONE), E + i64::from(WRAP_ZONE));
    // Just below the zones: no wrap.
    let mut t = Timestamp32::default();
    assert_eq!(t.extend(top - 1), i64::from(top - 1));
    assert_eq!(t.extend(5), 5);
    let mut t = Timestamp32::default();
    assert_eq!(t.extend(top), i64::from(top));
    assert_eq!(t.extend(WRAP_ZONE), i64::from(WRAP_ZONE));
    // Before any wrap a high timestamp after a low one is a forward step.
    let mut t = Timestamp32::default();
    assert_eq!(t.extend(5), 5);
    assert_eq!(t.extend(u32::MAX), i64::from(u32::MAX));
}

// Timers, in virtual time.

const SEC: Duration = Duration::from_secs(1);

/// Publishes `name` on a connected client (stream 1).
fn publish(c: &mut Client, name: &str) {
    let body = amf0::encode_all(&cmd("publish", 5.0, &[Amf0Value::string(name)]));
    c.send(4, MSG_COMMAND_AMF0, 1, 0, &body);
}

/// Plays `name` on a connected client (stream 1).
fn play(c: &mut Client, name: &str) {
    let body = amf0::encode_all(&cmd("play", 5.0, &[Amf0Value::string(name)]));
    c.send(8, MSG_COMMAND_AMF0, 1, 0, &body);
}

/// The `onStatus` code of the last reply.
fn last_status(c: &mut Client) -> Option<String> {
    name_and_code(c.replies().last().expect("a reply")).1
}

#[test]
fn handshake_timeout_closes() {
    let mut c = Client::new();
    let start = c.now;
    assert_eq!(c.next_timeout(), start + 10 * SEC);
    c.advance(5 * SEC);
    // connect does not restart the timer: it runs until a publish or play is accepted.
    c.connect();
    assert_eq!(c.next_timeout(), start + 10 * SEC);
    c.advance(4 * SEC);
    assert!(!c.session.is_closed());
    assert!(c.events().iter().all(|e| !matches!(e, Event::Closed(_))));
    c.advance(SEC);
    assert_eq!(
        c.events(),
        [Event::Closed(CloseReason::HandshakeTimeout(10 * SEC))]
    );
    assert!(c.session.is_closed());
    assert_eq!(c.input(&[0]), Err(SessionError::Closed));
    assert_eq!(
        CloseReason::HandshakeTimeout(10 * SEC).to_string(),
        "no connect/publish/play within 10s"
    );
}

#[test]
fn handshake_timeout_before_c0c1() {
    let now = origin();
    let config = SessionConfig {
        handshake_timeout: 3 * SEC,
        ..SessionConfig::default()
    };
    let mut s = ServerSession::new(now, config, 9);
    assert_eq!(s.poll_output(), Output::Timeout(now + 3 * SEC));
    s.handle_timeout(now + 3 * SEC - Duration::from_millis(1));
    assert!(!s.is_closed());
    s.handle_timeout(now + 3 * SEC);
    assert_eq!(
        s.poll_output(),
        Output::Event(Event::Closed(CloseReason::HandshakeTimeout(3 * SEC)))
    );
    assert!(s.is_closed());
}

#[test]
fn idle_publisher_is_closed_and_only_media_keeps_it_open() {
    let mut c = Client::new();
    c.connect();
    publish(&mut c, "cam");
    c.advance(2 * SEC);
    c.session.accept_publish().unwrap();
    c.events();
    // The handshake timer stops; the idle timer runs from the accepted publish.
    assert_eq!(c.next_timeout(), c.now + 30 * SEC);
    c.advance(20 * SEC);
    c.send(6, MSG_VIDEO, 1, 40, &[0x17, 0x01]);
    assert_eq!(c.next_timeout(), c.now + 30 * SEC);
    // Pings answered, acknowledgements and metadata: input, but no media.
    for _ in 0..29 {
        c.advance(SEC);
        c.send(2, MSG_USER_CONTROL, 0, 0, &[0, 7, 0, 0, 0, 1]);
        c.send(2, MSG_ACKNOWLEDGEMENT, 0, 0, &[0, 0, 0x10, 0]);
    }
    assert!(
        !c.session.is_closed(),
        "past the handshake timeout, not idle"
    );
    assert_eq!(c.next_timeout(), c.now + SEC);
    c.advance(SEC);
    let ev = c.events();
    assert_eq!(
        ev.last(),
        Some(&Event::Closed(CloseReason::IdleTimeout(30 * SEC)))
    );
    assert!(c.session.is_closed());
    assert_eq!(
        CloseReason::IdleTimeout(30 * SEC).to_string(),
        "publisher silent for 30s"
    );
}

#[test]
fn a_player_has_no_timer() {
    let mut c = Client::new();
    c.connect();
    play(&mut c, "cam");
    c.session.accept_play().unwrap();
    c.events();
    let next = c.next_timeout();
    assert!(next >= c.now + 3600 * SEC, "nothing scheduled");
    c.advance(7200 * SEC);
    assert!(!c.session.is_closed());
    assert!(c.events().is_empty());
}

#[test]
fn acknowledgement_is_sent_after_the_window_whatever_the_time() {
    let mut c = Client::new();
    c.connect();
    // The handshake and connect (about 3.3 kB) count towards the first window.
    let was = ControlMessage::WindowAckSize(8000).to_message();
    c.send(2, MSG_WINDOW_ACK_SIZE, 0, 0, &was.body);
    c.advance(5 * SEC);
    assert!(
        c.replies().is_empty(),
        "no ack before the window, however long"
    );
    c.send(6, MSG_AUDIO, 1, 0, &[0u8; 3000]);
    c.advance(4 * SEC);
    assert!(c.replies().is_empty());
    c.send(6, MSG_AUDIO, 1, 0, &[0u8; 3000]);
    let r = c.replies();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].type_id, MSG_ACKNOWLEDGEMENT);
    let seq = u32::from_be_bytes(r[0].body[..4].try_into().unwrap());
    assert_eq!(u64::from(seq), c.session.bytes_received());
}

// Publish and play decisions.

fn keyed() -> AccessTable {
    let mut a = AccessTable::default();
    a.publish_keys.insert(path("live/cam"), "s3".into());
    a
}

#[test]
fn wrong_or_missing_key_is_unauthorized_and_closes() {
    for name in ["cam", "cam?key=nope", "cam?other=s3"] {
        let mut c = Client::with_access(SessionConfig::default(), keyed());
        c.connect();
        c.events();
        publish(&mut c, name);
        assert_eq!(
            last_status(&mut c).as_deref(),
            Some("NetStream.Publish.Unauthorized"),
            "{name}"
        );
        assert_eq!(
            c.events(),
            [Event::Closed(CloseReason::Refused(
                "publish to 'live/cam' refused: wrong or missing key".into()
            ))]
        );
        assert!(c.session.is_closed());
    }
}

#[test]
fn right_key_is_accepted_and_its_query_is_stripped() {
    let mut c = Client::with_access(SessionConfig::default(), keyed());
    c.connect();
    c.events();
    publish(&mut c, "cam?x=1&key=s3");
    assert_eq!(
        c.events(),
        [Event::PublishRequested {
            path: path("live/cam"),
            stream_id: 1,
            publish_type: "live".into(),
        }]
    );
    c.session.accept_publish().unwrap();
    assert_eq!(
        last_status(&mut c).as_deref(),
        Some("NetStream.Publish.Start")
    );
    assert!(c.session.is_publishing());
}

#[test]
fn the_global_key_guards_other_paths() {
    let mut access = keyed();
    access.publish_key = Some("all".into());
    let mut c = Client::with_access(SessionConfig::default(), access.clone());
    c.connect();
    publish(&mut c, "other?key=s3");
    assert_eq!(
        last_status(&mut c).as_deref(),
        Some("NetStream.Publish.Unauthorized")
    );
    let mut c = Client::with_access(SessionConfig::default(), access);
    c.connect();
    c.events();
    publish(&mut c, "other?key=all");
    assert!(matches!(
        c.events().as_slice(),
        [Event::PublishRequested { path: p, .. }] if p.as_str() == "live/other"
    ));
}

#[test]
fn bad_name_is_refused() {
    let mut c = Client::new();
    c.connect();
    c.events();
    publish(&mut c, "../x");
    assert_eq!(
        last_status(&mut c).as_deref(),
        Some("NetStream.Publish.BadName")
    );
    let ev = c.events();
    let [Event::Closed(CloseReason::Refused(why))] = ev.as_slice() else {
        panic!("{ev:?}");
    };
    assert!(
        why.starts_with("publish refused: bad stream name 'live/../x'"),
        "{why}"
    );
    assert!(c.session.is_closed());

    let mut c = Client::new();
    c.connect();
    c.events();
    play(&mut c, "c*m");
    assert_eq!(
        last_status(&mut c).as_deref(),
        Some("NetStream.Play.StreamNotFound")
    );
    let ev = c.events();
    assert!(
        matches!(ev.as_slice(), [Event::Closed(CloseReason::Refused(why))] if why.starts_with("play refused: bad stream name")),
        "{ev:?}"
    );
}

#[test]
fn a_configured_source_path_is_not_publishable() {
    let mut access = AccessTable::default();
    access.sources.insert(path("live/cam"));
    let mut c = Client::with_access(SessionConfig::default(), access);
    c.connect();
    c.events();
    publish(&mut c, "cam");
    assert_eq!(
        last_status(&mut c).as_deref(),
        Some("NetStream.Publish.BadName")
    );
    assert_eq!(
        c.events(),
        [Event::Closed(CloseReason::Refused(
            "publish refused: 'live/cam' is fed by a configured source".into()
        ))]
    );
}

/// The onStatus code and description of the last reply.
fn last_status_text(c: &mut Client) -> (Option<String>, Option<String>) {
    let m = c.replies().pop().expect("a reply");
    let v = decode(&m);
    let field = |k: &str| {
        v.get(3)
            .and_then(|i| i.get(k))
            .and_then(Amf0Value::as_str)
            .map(str::to_owned)
    };
    (field("code"), field("description"))
}

/// Publishes `app`/`name` against `access`: the path asked for, or the refusal's
/// description.
fn try_publish(access: &AccessTable, app: &str, name: &str) -> Result<String, String> {
    let mut c = Client::with_access(SessionConfig::default(), access.clone());
    c.connect_app(app);
    c.events();
    publish(&mut c, name);
    match c.events().as_slice() {
        [Event::PublishRequested { path, .. }] => Ok(path.to_string()),
        [Event::Closed(CloseReason::Refused(log))] => {
            let (code, description) = last_status_text(&mut c);
            assert_eq!(code.as_deref(), Some("NetStream.Publish.BadName"));
            let description = description.expect("a description");
            assert_eq!(log, &format!("publish refused: {description}"));
            Err(description)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_rtmp_name_of_a_configured_stream_cannot_be_published() {
    let access = AccessTable {
        sources: [path("demo")].into(),
        ..AccessTable::default()
    };
    assert_eq!(
        try_publish(&access, "live", "demo"),
        Err("'live/demo' is the RTMP name of the configured stream 'demo'".into())
    );
    assert_eq!(
        try_publish(&access, "other", "demo?key=x"),
        Err("'other/demo' is the RTMP name of the configured stream 'demo'".into())
    );
    // No app: the path is `demo` itself.
    assert_eq!(
        try_publish(&access, "", "demo"),
        Err("'demo' is fed by a configured source".into())
    );
    assert_eq!(
        try_publish(&access, "live", "demo2"),
        Ok("live/demo2".into())
    );
}

#[test]
fn a_keyed_push_path_keeps_its_rtmp_name() {
    let mut access = AccessTable::default();
    access.targets.insert(path("cam"));
    access.publish_keys.insert(path("cam"), "k".into());
    assert_eq!(
        try_publish(&access, "live", "cam?key=k"),
        Err("'live/cam' is the RTMP name of the configured stream 'cam'".into())
    );
    assert_eq!(try_publish(&access, "", "cam?key=k"), Ok("cam".into()));
}

#[test]
fn a_published_stream_and_its_rtmp_name_exclude_each_other() {
    let access = AccessTable {
        streams: [path("demo"), path("live/x")].into(),
        ..AccessTable::default()
    };
    assert_eq!(
        try_publish(&access, "live", "demo"),
        Err("'live/demo' is the RTMP name of the published stream 'demo'".into())
    );
    // Publishing `x` while `live/x` plays: RTMP players of `live/x` would not reach it.
    assert_eq!(
        try_publish(&access, "", "x"),
        Err("'x' would be played over RTMP as 'live/x', which is a published stream".into())
    );
    assert_eq!(
        try_publish(&access, "live", "a/demo"),
        Ok("live/a/demo".into())
    );
}

#[test]
fn play_alias_reaches_a_stream_under_any_app() {
    let play_path = |streams: &[&str], app: &str, name: &str| {
        let access = AccessTable {
            streams: streams.iter().map(|s| path(s)).collect(),
            ..AccessTable::default()
        };
        let mut c = Client::with_access(SessionConfig::default(), access);
        c.connect_app(app);
        c.events();
        play(&mut c, name);
        match c.events().as_slice() {
            [Event::PlayRequested { path, .. }] => path.to_string(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(play_path(&["demo"], "live", "demo"), "demo");
    assert_eq!(play_path(&["demo"], "any", "demo?x=1"), "demo");
    // The two-segment stream wins when it exists; nothing exists: the path as asked.
    assert_eq!(
        play_path(&["demo", "live/demo"], "live", "demo"),
        "live/demo"
    );
    assert_eq!(play_path(&[], "live", "demo"), "live/demo");
    assert_eq!(play_path(&["cam"], "live", "x/cam"), "live/x/cam");
    // Any stream is reachable under any one app, as before the rule moved here.
    assert_eq!(play_path(&["a/b"], "live", "a/b"), "a/b");
}

#[test]
fn paths_and_keys() {
    assert_eq!(
        StreamPath::from_app_key("live", "cam1").map(|p| p.to_string()),
        Ok("live/cam1".to_string())
    );
    assert!(StreamPath::from_app_key("live", "../x").is_err());
}

/// An access policy that records the credentials it was asked with.
#[derive(Default)]
struct Recorder {
    verdict: Option<crate::auth::Verdict>,
    asked: std::rc::Rc<
        std::cell::RefCell<Vec<(crate::auth::Action, String, crate::auth::Credentials)>>,
    >,
}

impl Access for Recorder {
    fn publish_key(&self, _: &StreamPath) -> Option<String> {
        None
    }
    fn check_claim(&self, _: &StreamPath) -> Result<(), crate::stream::ClaimError> {
        Ok(())
    }
    fn exists(&self, _: &StreamPath) -> bool {
        false
    }
    fn authorize(
        &self,
        action: crate::auth::Action,
        path: &StreamPath,
        creds: &crate::auth::Credentials,
    ) -> crate::auth::Verdict {
        self.asked
            .borrow_mut()
            .push((action, path.to_string(), creds.clone()));
        self.verdict.unwrap_or(crate::auth::Verdict::Allow)
    }
}

#[test]
fn credentials_come_from_the_stream_query_then_the_app_query() {
    use crate::auth::{Action, Credentials, Verdict};
    let rec = Recorder::default();
    let asked = rec.asked.clone();
    let mut c = Client::with_access(SessionConfig::default(), rec);
    c.connect_app("live?user=app&token=t1");
    c.events();
    publish(&mut c, "cam?user=obs&pass=a%20b");
    assert!(matches!(
        c.events().as_slice(),
        [Event::PublishRequested { .. }]
    ));
    let want = Credentials {
        user: Some("obs".into()),
        pass: Some("a b".into()),
        token: Some("t1".into()),
        key: None,
    };
    assert_eq!(
        asked.borrow()[0],
        (Action::Publish, "live/cam".into(), want)
    );
    for (verdict, kind) in [
        (Verdict::Unauthorized, "publish"),
        (Verdict::Forbidden, "play"),
    ] {
        let rec = Recorder {
            verdict: Some(verdict),
            ..Recorder::default()
        };
        let mut c = Client::with_access(SessionConfig::default(), rec);
        c.connect();
        c.events();
        let code = if kind == "publish" {
            publish(&mut c, "cam");
            "NetStream.Publish.Unauthorized"
        } else {
            play(&mut c, "cam?token=x");
            "NetStream.Play.Failed"
        };
        assert_eq!(last_status(&mut c).as_deref(), Some(code));
        assert!(matches!(
            c.events().as_slice(),
            [Event::Closed(CloseReason::Refused(_))]
        ));
        assert!(c.session.is_closed());
    }
}

#[test]
fn a_right_key_needs_no_other_permission() {
    let mut access = keyed();
    access
        .refused
        .insert(path("live/cam"), crate::auth::Verdict::Unauthorized);
    let mut c = Client::with_access(SessionConfig::default(), access);
    c.connect();
    c.events();
    publish(&mut c, "cam?key=s3");
    assert!(matches!(
        c.events().as_slice(),
        [Event::PublishRequested { .. }]
    ));
}

/// A whole publish conversation as the client sends it: handshake, connect, publish,
/// metadata, media.
fn publish_conversation() -> Vec<u8> {
    let mut input = vec![0x03];
    input.resize(1 + 2 * HANDSHAKE_LEN, 0);
    let mut out = BytesMut::new();
    let connect = cmd(
        "connect",
        1.0,
        &[Amf0Value::object([("app", Amf0Value::string("live"))])],
    );
    let publish = cmd("publish", 2.0, &[Amf0Value::string("cam?key=s3")]);
    let meta = amf0::encode_all(&[
        Amf0Value::string("onMetaData"),
        Amf0Value::object([("fps", Amf0Value::Number(30.0))]),
    ]);
    encode_message(
        3,
        MSG_COMMAND_AMF0,
        0,
        0,
        &amf0::encode_all(&connect),
        128,
        &mut out,
    );
    encode_message(
        4,
        MSG_COMMAND_AMF0,
        1,
        0,
        &amf0::encode_all(&publish),
        128,
        &mut out,
    );
    encode_message(4, MSG_DATA_AMF0, 1, 0, &meta, 128, &mut out);
    encode_message(6, MSG_VIDEO, 1, 40, &[0x17; 300], 128, &mut out);
    encode_message(4, MSG_AUDIO, 1, 23, &[0xAF, 0x01, 0x21], 128, &mut out);
    input.extend_from_slice(&out);
    input
}

#[test]
fn mutated_publish_conversations_never_panic() {
    let clean = publish_conversation();
    let start = 1 + 2 * HANDSHAKE_LEN;
    let mut outcomes = [0usize; 3]; // publishing, closed, neither
    for (i, flip) in (start..clean.len()).flat_map(|i| [(i, 0xFFu8), (i, 0x01)]) {
        let mut input = clean.clone();
        input[i] ^= flip;
        let now = origin();
        let mut s =
            ServerSession::new(now, SessionConfig::default(), 3).with_access(Box::new(keyed()));
        for (n, part) in input.chunks(1 + i % 61).enumerate() {
            let at = now + Duration::from_millis(n as u64);
            if s.handle_input(at, Input::Receive(part)).is_err() {
                break;
            }
            // Drained to a timeout in a bounded number of steps, answering the requests.
            let mut steps = 0;
            loop {
                steps += 1;
                assert!(steps < 10_000, "poll_output never reached a timeout");
                match s.poll_output() {
                    // Accepting processes held input, which may be bad: that closes.
                    Output::Event(Event::PublishRequested { .. }) => {
                        if let Err(e) = s.accept_publish() {
                            assert!(s.is_closed(), "{e}");
                        }
                    }
                    Output::Event(Event::PlayRequested { .. }) => {
                        if let Err(e) = s.accept_play() {
                            assert!(s.is_closed(), "{e}");
                        }
                    }
                    Output::Timeout(t) => {
                        assert!(t > at, "a timeout in the past");
                        break;
                    }
                    _ => {}
                }
            }
        }
        outcomes[if s.is_publishing() {
            0
        } else if s.is_closed() {
            1
        } else {
            2
        }] += 1;
        if s.is_closed() {
            assert_eq!(
                s.handle_input(now, Input::Receive(&[0])),
                Err(SessionError::Closed)
            );
        }
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

#[test]
fn messages_stay_small_until_a_publish_is_accepted() {
    // An 8 MiB command right after connect is refused at its header, before any of it
    // is buffered or decoded.
    let mut c = Client::new();
    c.connect();
    let mut out = BytesMut::new();
    let mut header_only = BytesMut::new();
    encode_message(
        3,
        MSG_COMMAND_AMF0,
        0,
        0,
        &vec![5u8; 8 << 20],
        128,
        &mut out,
    );
    header_only.extend_from_slice(&out[..12]);
    let err = c.input(&header_only).unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Chunk(ChunkError::MessageTooLarge {
                max: UNPUBLISHED_MAX_MESSAGE,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(c.session.is_closed());

    // A publisher, once accepted, may send frames up to the configured limit.
    let mut c = Client::new();
    c.connect();
    publish(&mut c, "cam");
    c.session.accept_publish().unwrap();
    c.events();
    let mut frame = vec![0x17, 0x01, 0, 0, 0];
    frame.resize(1 << 20, 0xAB);
    c.send(6, MSG_VIDEO, 1, 40, &frame);
    assert!(
        c.events()
            .iter()
            .any(|e| matches!(e, Event::Media { body, .. } if body.len() == 1 << 20)),
        "a 1 MiB keyframe arrives"
    );
}
