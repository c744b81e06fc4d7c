//! Scripted camera conversations: canned responses in, the exact requests out, time
//! advanced by hand.

use super::*;
use crate::media::{Codec, TrackId};

const UA: &str = "test/1";
const URL: &str = "rtsp://admin:12345@192.0.2.10/Streaming/Channels/101";
const REQ_URI: &str = "rtsp://192.0.2.10:554/Streaming/Channels/101";
const BASE: &str = "rtsp://192.0.2.10:554/Streaming/Channels/101/";

/// A Hikvision-like description: H.264, PCMU, ONVIF metadata; relative controls.
const SDP_HIK: &str = "v=0\r\n\
o=- 1 1 IN IP4 192.0.2.10\r\n\
s=Media Presentation\r\n\
t=0 0\r\n\
a=control:*\r\n\
m=video 0 RTP/AVP 96\r\n\
a=rtpmap:96 H264/90000\r\n\
a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z01AKNkAeAIn5cBEAAADAAQAAAMAyDxgySA=,aOvDyyA=\r\n\
a=control:trackID=1\r\n\
m=audio 0 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=control:trackID=2\r\n\
m=application 0 RTP/AVP 107\r\n\
a=rtpmap:107 vnd.onvif.metadata/90000\r\n\
a=control:trackID=3\r\n";

/// One H.264 track.
const SDP_ONE: &str =
    "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:track1\r\n";

#[allow(clippy::disallowed_methods)] // Tests need an origin; time then moves by hand.
fn origin() -> Instant {
    Instant::now()
}

fn config(url: &str) -> SessionConfig {
    let mut c = SessionConfig::new(RtspUrl::parse(url).expect("url parses"));
    c.user_agent = UA.to_string();
    c.seed = 42;
    c
}

/// A request as the session must write it.
fn req(line: &str, cseq: u32, headers: &[&str]) -> String {
    let mut s = format!("{line} RTSP/1.0\r\nCSeq: {cseq}\r\n");
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str(&format!("User-Agent: {UA}\r\n\r\n"));
    s
}

/// A camera response.
fn resp(cseq: Option<u32>, status: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut s = format!("RTSP/1.0 {status}\r\n");
    if let Some(c) = cseq {
        s.push_str(&format!("CSeq: {c}\r\n"));
    }
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    if !body.is_empty() {
        s.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    s.push_str("\r\n");
    s.push_str(body);
    s.into_bytes()
}

fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
    Session::interleave(channel, data).to_vec()
}

/// The session and its virtual clock; everything the session outputs is collected.
struct Script {
    s: Session,
    now: Instant,
    sent: Vec<String>,
    events: Vec<Event>,
    next: Result<Instant, SessionError>,
}

impl Script {
    fn new(cfg: SessionConfig) -> Script {
        let now = origin();
        let mut sc = Script {
            s: Session::new(cfg, now),
            now,
            sent: Vec::new(),
            events: Vec::new(),
            next: Ok(now),
        };
        sc.pump();
        sc
    }

    fn pump(&mut self) {
        self.next = loop {
            match self.s.poll_output() {
                Ok(Output::Transmit(b)) => self.sent.push(String::from_utf8_lossy(&b).into()),
                Ok(Output::Event(e)) => self.events.push(e),
                Ok(Output::Timeout(t)) => break Ok(t),
                Err(e) => break Err(e),
            }
        };
    }

    fn feed(&mut self, data: &[u8]) {
        let _ = self.s.handle_input(self.now, data);
        self.pump();
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.s.handle_timeout(self.now);
        self.pump();
    }

    fn sent(&mut self) -> Vec<String> {
        std::mem::take(&mut self.sent)
    }

    fn events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    fn error(&self) -> SessionError {
        self.next
            .clone()
            .expect_err("the session should have failed")
    }

    /// OPTIONS (answered with `public`) and DESCRIBE (answered with `sdp` under
    /// `Content-Base: BASE`), without authentication. Returns the Described event.
    fn describe(&mut self, public: &str, sdp: &str) -> Event {
        assert_eq!(self.sent(), [req(&format!("OPTIONS {REQ_URI}"), 1, &[])]);
        self.feed(&resp(
            Some(1),
            "200 OK",
            &[&format!("Public: {public}")],
            "",
        ));
        assert_eq!(
            self.sent(),
            [req(
                &format!("DESCRIBE {REQ_URI}"),
                2,
                &["Accept: application/sdp"]
            )]
        );
        self.feed(&resp(
            Some(2),
            "200 OK",
            &[
                "Content-Type: application/sdp",
                &format!("Content-Base: {BASE}"),
            ],
            sdp,
        ));
        let mut ev = self.events();
        assert_eq!(ev.len(), 1, "{ev:?}");
        ev.remove(0)
    }
}

const PUBLIC_ALL: &str =
    "OPTIONS, DESCRIBE, PLAY, PAUSE, SETUP, TEARDOWN, SET_PARAMETER, GET_PARAMETER";

fn field<'a>(request: &'a str, name: &str) -> Option<&'a str> {
    let at = request.find(&format!(" {name}="))? + name.len() + 2;
    let rest = &request[at..];
    match rest.strip_prefix('"') {
        Some(q) => q.split('"').next(),
        None => rest.split([',', '\r']).next(),
    }
}

#[test]
fn tcp_flow_hikvision_two_tracks_keepalive_and_teardown() {
    let mut sc = Script::new(config(URL));
    let ev = sc.describe(PUBLIC_ALL, SDP_HIK);
    let Event::Described { tracks, skipped } = ev else {
        panic!("described expected");
    };
    assert_eq!(
        skipped,
        ["application/vnd.onvif.metadata: not a media codec"]
    );
    assert_eq!(tracks.len(), 2);
    assert_eq!(
        (
            tracks[0].track.id,
            tracks[0].track.codec,
            tracks[0].track.width
        ),
        (TrackId(0), Codec::H264, Some(1920))
    );
    assert_eq!(tracks[0].control, format!("{BASE}trackID=1"));
    assert_eq!(
        (tracks[1].index, tracks[1].track.id, tracks[1].payload_type),
        (1, TrackId(1), 0)
    );
    assert_eq!(sc.s.tracks().len(), 2);

    sc.s.setup(Transport::Tcp, sc.now);
    sc.pump();
    assert_eq!(
        sc.sent(),
        [req(
            &format!("SETUP {BASE}trackID=1"),
            3,
            &["Transport: RTP/AVP/TCP;unicast;interleaved=0-1"]
        )]
    );
    sc.feed(&resp(
        Some(3),
        "200 OK",
        &[
            "Session: 1234ABCD;timeout=20",
            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=1A2B3C4D;mode=\"play\"",
        ],
        "",
    ));
    assert_eq!(sc.s.session_id(), Some("1234ABCD"));
    assert_eq!(
        sc.sent(),
        [req(
            &format!("SETUP {BASE}trackID=2"),
            4,
            &[
                "Session: 1234ABCD",
                "Transport: RTP/AVP/TCP;unicast;interleaved=2-3"
            ]
        )]
    );
    sc.feed(&resp(
        Some(4),
        "200 OK",
        &[
            "Session: 1234ABCD;timeout=20",
            "Transport: RTP/AVP/TCP;unicast;interleaved=2-3",
        ],
        "",
    ));
    assert_eq!(
        sc.sent(),
        [req(
            &format!("PLAY {BASE}"),
            5,
            &["Session: 1234ABCD", "Range: npt=0.000-"]
        )]
    );
    // The PLAY answer, an RTP packet and an RTCP report in one read.
    let mut read = resp(
        Some(5),
        "200 OK",
        &[
            "Session: 1234ABCD",
            "RTP-Info: url=trackID=1;seq=1;rtptime=0",
            "Server: Hikvision-Webs",
        ],
        "",
    );
    read.extend(frame(0, &[0x80, 0x60, 0, 1]));
    read.extend(frame(3, &[0x81, 0xC8, 0, 6]));
    sc.feed(&read);
    let play_at = sc.now;
    assert_eq!(
        sc.events(),
        [
            Event::Playing {
                tracks: vec![
                    PlayingTrack {
                        track: 0,
                        interleaved: Some((0, 1)),
                        server_ports: None,
                        source: None,
                        ssrc: Some(0x1A2B_3C4D),
                    },
                    PlayingTrack {
                        track: 1,
                        interleaved: Some((2, 3)),
                        server_ports: None,
                        source: None,
                        ssrc: None,
                    },
                ],
                keepalive: Duration::from_secs(10),
                server: Some("Hikvision-Webs".to_string()),
            },
            Event::Rtp {
                track: 0,
                data: Bytes::from_static(&[0x80, 0x60, 0, 1])
            },
            Event::Rtcp {
                track: 1,
                data: Bytes::from_static(&[0x81, 0xC8, 0, 6])
            },
        ]
    );

    // timeout=20: a GET_PARAMETER at +10 s, none before.
    assert_eq!(sc.next, Ok(play_at + Duration::from_secs(10)));
    sc.advance(Duration::from_millis(9_999));
    assert!(sc.sent().is_empty());
    sc.advance(Duration::from_millis(1));
    assert_eq!(
        sc.sent(),
        [req(
            &format!("GET_PARAMETER {BASE}"),
            6,
            &["Session: 1234ABCD"]
        )]
    );
    assert_eq!(sc.next, Ok(sc.now + DEFAULT_RESPONSE_TIMEOUT));
    sc.feed(&resp(Some(6), "200 OK", &["Session: 1234ABCD"], ""));
    assert_eq!(sc.next, Ok(play_at + Duration::from_secs(20)));

    sc.s.teardown(sc.now);
    sc.pump();
    assert_eq!(
        sc.sent(),
        [req(&format!("TEARDOWN {BASE}"), 7, &["Session: 1234ABCD"])]
    );
    sc.feed(&resp(Some(7), "200 OK", &[], ""));
    assert_eq!(sc.events(), [Event::TornDown]);
    // Nothing more happens.
    sc.advance(Duration::from_secs(100));
    assert!(sc.sent().is_empty() && sc.events().is_empty());
}

#[test]
fn udp_flow_client_and_server_ports() {
    let mut sc = Script::new(config(URL));
    sc.describe(PUBLIC_ALL, SDP_HIK);
    sc.s.setup(
        Transport::Udp {
            client_rtp_ports: vec![5000, 5002],
        },
        sc.now,
    );
    sc.pump();
    assert_eq!(
        sc.sent(),
        [req(
            &format!("SETUP {BASE}trackID=1"),
            3,
            &["Transport: RTP/AVP;unicast;client_port=5000-5001"]
        )]
    );
    sc.feed(&resp(
        Some(3),
        "200 OK",
        &[
            "Session: 77;timeout=60",
            "Transport: RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;source=192.0.2.10;ssrc=00000BB8",
        ],
        "",
    ));
    assert_eq!(
        sc.sent(),
        [req(
            &format!("SETUP {BASE}trackID=2"),
            4,
            &[
                "Session: 77",
                "Transport: RTP/AVP;unicast;client_port=5002-5003"
            ]
        )]
    );
    // A camera that answers with a single server port.
    sc.feed(&resp(
        Some(4),
        "200 OK",
        &["Session: 77", "Transport: RTP/AVP;unicast;server_port=6972"],
        "",
    ));
    assert_eq!(sc.sent().len(), 1);
    sc.feed(&resp(Some(5), "200 OK", &[], ""));
    let events = sc.events();
    let [
        Event::Playing {
            tracks,
            keepalive,
            server,
        },
    ] = events.as_slice()
    else {
        panic!("playing expected");
    };
    assert_eq!(*keepalive, Duration::from_secs(30));
    assert_eq!(*server, None);
    assert_eq!(
        tracks[0],
        PlayingTrack {
            track: 0,
            interleaved: None,
            server_ports: Some((6970, 6971)),
            source: Some("192.0.2.10".to_string()),
            ssrc: Some(3000),
        }
    );
    assert_eq!(tracks[1].server_ports, Some((6972, 6973)));
}

#[test]
fn udp_with_fewer_ports_sets_up_fewer_tracks_and_no_ports_is_a_driver_bug() {
    let mut sc = Script::new(config(URL));
    sc.describe(PUBLIC_ALL, SDP_HIK);
    sc.s.setup(
        Transport::Udp {
            client_rtp_ports: vec![5000],
        },
        sc.now,
    );
    sc.pump();
    assert_eq!(sc.sent().len(), 1);
    sc.feed(&resp(Some(3), "200 OK", &["Session: 1"], ""));
    assert!(sc.sent()[0].starts_with("PLAY "));

    let mut sc = Script::new(config(URL));
    sc.describe(PUBLIC_ALL, SDP_HIK);
    sc.s.setup(
        Transport::Udp {
            client_rtp_ports: vec![],
        },
        sc.now,
    );
    sc.pump();
    assert!(matches!(sc.error(), SessionError::InvalidSetup(_)));
}

#[test]
fn udp_461_unsupported_transport_asks_for_tcp() {
    let mut sc = Script::new(config(URL));
    sc.describe(PUBLIC_ALL, SDP_ONE);
    sc.s.setup(
        Transport::Udp {
            client_rtp_ports: vec![5000],
        },
        sc.now,
    );
    sc.pump();
    sc.feed(&resp(Some(3), "461 Unsupported Transport", &[], ""));
    assert_eq!(sc.error(), SessionError::UnsupportedTransport);
    // Over TCP a 461 is just a failure.
    let mut sc = Script::new(config(URL));
    sc.describe(PUBLIC_ALL, SDP_ONE);
    sc.s.setup(Transport::Tcp, sc.now);
    sc.pump();
    sc.feed(&resp(Some(3), "461 Unsupported Transport", &[], ""));
    assert_eq!(
        sc.error(),
        SessionError::Status {
            method: Method::Setup,
            status: 461,
            reason: "Unsupported Transport".to_string()
        }
    );
}

#[test]
fn digest_with_qop_counts_nc_on_every_request() {
    let mut sc = Script::new(config(URL));
    assert_eq!(sc.sent().len(), 1);
    sc.feed(&resp(
        Some(1),
        "401 Unauthorized",
        &[
            "WWW-Authenticate: Digest realm=\"IP Camera(C1234)\", qop=\"auth,auth-int\", nonce=\"n1\", opaque=\"op\"",
            "WWW-Authenticate: Basic realm=\"IP Camera(C1234)\"",
        ],
        "",
    ));
    let sent = sc.sent();
    let [options] = sent.as_slice() else {
        panic!("one retry: {sent:?}");
    };
    assert!(options.starts_with(&format!("OPTIONS {REQ_URI} RTSP/1.0\r\nCSeq: 2\r\n")));
    assert_eq!(field(options, "username"), Some("admin"));
    assert_eq!(field(options, "uri"), Some(REQ_URI));
    assert_eq!(field(options, "nc"), Some("00000001"));
    assert_eq!(field(options, "qop"), Some("auth"));
    assert_eq!(field(options, "opaque"), Some("op"));
    let cnonce = field(options, "cnonce").expect("cnonce").to_string();
    sc.feed(&resp(Some(2), "200 OK", &["Public: DESCRIBE, SETUP"], ""));
    let sent = sc.sent();
    let describe = &sent[0];
    assert!(describe.starts_with(&format!("DESCRIBE {REQ_URI} RTSP/1.0\r\nCSeq: 3\r\n")));
    assert_eq!(field(describe, "nc"), Some("00000002"));
    assert_eq!(field(describe, "cnonce"), Some(cnonce.as_str()));
    assert_ne!(field(describe, "response"), field(options, "response"));
    sc.feed(&resp(Some(3), "200 OK", &[], SDP_ONE));
    sc.events();
    sc.s.setup(Transport::Tcp, sc.now);
    sc.pump();
    let sent = sc.sent();
    assert_eq!(field(&sent[0], "nc"), Some("00000003"));
    // The Digest uri is the SETUP's (relative control resolved against the URL).
    assert_eq!(
        field(&sent[0], "uri"),
        Some(format!("{REQ_URI}/track1").as_str())
    );
}

#[test]
fn basic_when_only_basic_is_offered_and_config_credentials_win() {
    let mut cfg = config(URL);
    cfg.credentials = Some(Credentials {
        user: "Aladdin".into(),
        password: "open sesame".into(),
    });
    let mut sc = Script::new(cfg);
    sc.sent();
    sc.feed(&resp(
        Some(1),
        "401 Unauthorized",
        &["WWW-Authenticate: Basic realm=\"cam\""],
        "",
    ));
    assert_eq!(
        sc.sent(),
        [req(
            &format!("OPTIONS {REQ_URI}"),
            2,
            &["Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="]
        )]
    );
}

#[test]
fn stale_nonce_is_retried_with_the_new_nonce_at_most_three_times() {
    let challenge = |nonce: &str, stale: bool| {
        format!(
            "WWW-Authenticate: Digest realm=\"r\", nonce=\"{nonce}\", qop=\"auth\"{}",
            if stale { ", stale=TRUE" } else { "" }
        )
    };
    let mut sc = Script::new(config(URL));
    sc.sent();
    sc.feed(&resp(
        Some(1),
        "401 Unauthorized",
        &[&challenge("n1", false)],
        "",
    ));
    assert_eq!(field(&sc.sent()[0], "nonce"), Some("n1"));
    sc.feed(&resp(Some(2), "200 OK", &[], ""));
    assert_eq!(field(&sc.sent()[0], "nc"), Some("00000002"));
    // The nonce expires on DESCRIBE: retried with the new one, nc back to 1.
    sc.feed(&resp(
        Some(3),
        "401 Unauthorized",
        &[&challenge("n2", true)],
        "",
    ));
    let sent = sc.sent();
    assert!(sent[0].starts_with("DESCRIBE ") && sent[0].contains("CSeq: 4\r\n"));
    assert_eq!(field(&sent[0], "nonce"), Some("n2"));
    assert_eq!(field(&sent[0], "nc"), Some("00000001"));
    sc.feed(&resp(Some(4), "200 OK", &[], SDP_ONE));
    assert!(matches!(sc.events().as_slice(), [Event::Described { .. }]));

    // A camera that calls every nonce stale: three retries, then the credentials are
    // taken to be wrong.
    let mut sc = Script::new(config(URL));
    sc.sent();
    sc.feed(&resp(
        Some(1),
        "401 Unauthorized",
        &[&challenge("a", false)],
        "",
    ));
    for (cseq, nonce) in [(2, "b"), (3, "c"), (4, "d")] {
        assert_eq!(sc.sent().len(), 1);
        sc.feed(&resp(
            Some(cseq),
            "401 Unauthorized",
            &[&challenge(nonce, true)],
            "",
        ));
    }
    assert_eq!(field(&sc.sent()[0], "nonce"), Some("d"));
    sc.feed(&resp(
        Some(5),
        "401 Unauthorized",
        &[&challenge("e", true)],
        "",
    ));
    assert_eq!(
        sc.error(),
        SessionError::WrongCredentials {
            user: "admin".into()
        }
    );
}

#[test]
fn wrong_credentials_and_no_credentials() {
    let mut sc = Script::new(config(URL));
    sc.sent();
    let challenge = "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\"";
    sc.feed(&resp(Some(1), "401 Unauthorized", &[challenge], ""));
    assert_eq!(sc.sent().len(), 1);
    sc.feed(&resp(Some(2), "401 Unauthorized", &[challenge], ""));
    let e = sc.error();
    assert_eq!(
        e.to_string(),
        "camera rejected the credentials (401 after authenticating as 'admin')"
    );
    // The error stays; input after it is ignored.
    sc.feed(&resp(Some(2), "200 OK", &[], ""));
    assert_eq!(sc.error(), e);
    assert!(sc.sent().is_empty());

    let mut sc = Script::new(config(REQ_URI));
    sc.sent();
    sc.feed(&resp(Some(1), "401 Unauthorized", &[challenge], ""));
    assert_eq!(sc.error(), SessionError::AuthRequired);

    let mut sc = Script::new(config(URL));
    sc.feed(&resp(
        Some(1),
        "401 Unauthorized",
        &["WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256"],
        "",
    ));
    assert_eq!(
        sc.error().to_string(),
        "camera only offers authentication corecast does not support: Digest algorithm=SHA-256"
    );
}

#[test]
fn interleaved_rtp_in_the_play_read_and_split_across_reads() {
    let mut sc = Script::new(config(URL));
    sc.describe(PUBLIC_ALL, SDP_ONE);
    sc.s.setup(Transport::Tcp, sc.now);
    sc.pump();
    sc.feed(&resp(Some(3), "200 OK", &["Session: 5"], ""));
    sc.sent();
    let rtp: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
    let mut stream = resp(Some(4), "200 OK", &[], "");
    stream.extend(frame(0, &rtp));
    stream.extend(frame(1, &[0x80, 0xC9, 0, 1, 0, 0, 0, 1]));
    stream.extend(frame(0, &rtp[..12]));
    // The PLAY answer plus half a packet, then the rest a byte at a time.
    let cut = stream.len() - 300;
    sc.feed(&stream[..cut]);
    assert!(matches!(sc.events().as_slice(), [Event::Playing { .. }]));
    for b in &stream[cut..] {
        sc.feed(std::slice::from_ref(b));
    }
    assert_eq!(
        sc.events(),
        [
            Event::Rtp {
                track: 0,
                data: Bytes::from(rtp.clone())
            },
            Event::Rtcp {
                track: 0,
                data: Bytes::from_static(&[0x80, 0xC9, 0, 1, 0, 0, 0, 1])
            },
            Event::Rtp {
                track: 0,
                data: Bytes::copy_from_slice(&rtp[..12])
            },
        ]
    );
}

#[test]
fn camera_chosen_channels_and_media_before_the_play_answer() {
    let mut sc = Script::new(config(URL));
    sc.describe(PUBLIC_ALL, SDP_HIK);
    sc.s.setup(Transport::Tcp, sc.now);
    sc.pump();
    sc.feed(&resp(
        Some(3),
        "200 OK",
        &[
            "Session: 9",
            "Transport: RTP/AVP/TCP;unicast;interleaved=6-7",
        ],
        "",
    ));
    // No Transport in the answer: the channels asked for.
    sc.feed(&resp(Some(4), "200 OK", &["Session: 9"], ""));
    sc.sent();
    // Some cameras start sending before they answer PLAY.
    let mut read = frame(6, b"video");
    read.extend(frame(0, b"stray"));
    read.extend(frame(2, b"audio"));
    read.extend(frame(7, b"rr"));
    read.extend(resp(Some(5), "200 OK", &[], ""));
    sc.feed(&read);
    let ev = sc.events();
    assert_eq!(
        ev[..3],
        [
            Event::Rtp {
                track: 0,
                data: Bytes::from_static(b"video")
            },
            Event::Rtp {
                track: 1,
                data: Bytes::from_static(b"audio")
            },
            Event::Rtcp {
                track: 0,
                data: Bytes::from_static(b"rr")
            },
        ]
    );
    let Event::Playing { tracks, .. } = &ev[3] else {
        panic!("playing expected: {ev:?}");
    };
    assert_eq!(tracks[0].interleaved, Some((6, 7)));
    assert_eq!(tracks[1].interleaved, Some((2, 3)));
}

#[test]
fn camera_requests_are_answered_even_with_a_request_outstanding() {
    let mut sc = Script::new(config(URL));
    sc.sent();
    sc.feed(
        b"GET_PARAMETER rtsp://192.0.2.10/ RTSP/1.0\r\nCSeq: 99\r\nSession: 42\r\nContent-Length: 0\r\n\r\n\
ANNOUNCE rtsp://192.0.2.10/ RTSP/1.0\r\nCSeq: 100\r\nContent-Length: 3\r\n\r\nv=0\
OPTIONS * RTSP/1.0\r\n\r\n",
    );
    assert_eq!(
        sc.sent(),
        [
            "RTSP/1.0 200 OK\r\nCSeq: 99\r\nSession: 42\r\n\r\n",
            "RTSP/1.0 501 Not Implemented\r\nCSeq: 100\r\n\r\n",
            "RTSP/1.0 200 OK\r\n\r\n",
        ]
    );
    // The OPTIONS is still outstanding.
    sc.feed(&resp(Some(1), "200 OK", &[], ""));
    assert!(sc.sent()[0].starts_with("DESCRIBE "));
}

#[test]
fn keepalive_is_options_when_get_parameter_is_not_public() {
    let mut sc = Script::new(config(URL));
    sc.describe("OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN", SDP_ONE);
    sc.s.setup(Transport::Tcp, sc.now);
    sc.pump();
    sc.feed(&resp(Some(3), "200 OK", &["Session: abc"], ""));
    sc.feed(&resp(Some(4), "200 OK", &[], ""));
    sc.sent();
    let events = sc.events();
    let [Event::Playing { keepalive, .. }] = events.as_slice() else {
        panic!("playing");
    };
    assert_eq!(*keepalive, Duration::from_secs(30));
    sc.advance(Duration::from_secs(30));
    assert_eq!(
        sc.sent(),
        [req(&format!("OPTIONS {BASE}"), 5, &["Session: abc"])]
    );
    // An unhelpful answer still shows the camera is alive ...
    sc.feed(&resp(Some(5), "405 Method Not Allowed", &[], ""));
    assert!(sc.next.is_ok());
    sc.advance(Duration::from_secs(30));
    assert_eq!(sc.sent().len(), 1);
    // ... but a lost session ends it.
    sc.feed(&resp(Some(6), "454 Session Not Found", &[], ""));
    assert_eq!(
        sc.error().to_string(),
        "camera answered OPTIONS with 454 Session Not Found"
    );
}

#[test]
fn response_timeout_and_timers_armed_by_received_bytes() {
    let mut sc = Script::new(config(URL));
    let start = sc.now;
    assert_eq!(sc.next, Ok(start + Duration::from_secs(10)));
    sc.advance(Duration::from_secs(9));
    assert!(sc.next.is_ok());
    sc.advance(Duration::from_secs(1));
    let e = sc.error();
    assert_eq!(
        e,
        SessionError::Timeout {
            method: Method::Options,
            after: Duration::from_secs(10)
        }
    );
    assert_eq!(e.to_string(), "camera did not answer OPTIONS within 10s");

    // The DESCRIBE that an answer triggers is timed from that input's `now`.
    let mut sc = Script::new(config(URL));
    sc.sent();
    sc.now += Duration::from_secs(5);
    let _ = sc.s.handle_input(sc.now, &resp(Some(1), "200 OK", &[], ""));
    sc.pump();
    assert_eq!(sc.next, Ok(sc.now + Duration::from_secs(10)));
}

#[test]
fn error_statuses_redirects_and_an_options_refusal() {
    let mut sc = Script::new(config(URL));
    sc.feed(&resp(Some(1), "200 OK", &[], ""));
    sc.feed(&resp(Some(2), "404 Not Found", &[], ""));
    assert_eq!(
        sc.error().to_string(),
        "camera answered DESCRIBE with 404 Not Found"
    );

    let mut sc = Script::new(config(URL));
    sc.feed(&resp(
        Some(1),
        "302 Moved Temporarily",
        &["Location: rtsp://192.0.2.11/live"],
        "",
    ));
    assert_eq!(
        sc.error(),
        SessionError::Redirect {
            method: Method::Options,
            status: 302,
            location: "rtsp://192.0.2.11/live".to_string()
        }
    );

    // A camera that does not do OPTIONS still gets its DESCRIBE.
    let mut sc = Script::new(config(URL));
    sc.sent();
    sc.feed(&resp(Some(1), "501 Not Implemented", &[], ""));
    assert!(sc.sent()[0].starts_with("DESCRIBE "));
}

#[test]
fn server_header_of_the_latest_answer_that_has_one() {
    // A probe stops at Described and shows the camera's Server beside the tracks.
    let mut sc = Script::new(config(URL));
    assert_eq!(sc.s.server(), None);
    sc.sent();
    sc.feed(&resp(
        Some(1),
        "200 OK",
        &["Server: Hikvision-Webs", "Public: OPTIONS, DESCRIBE"],
        "",
    ));
    assert_eq!(sc.s.server(), Some("Hikvision-Webs"));
    // An answer without one keeps the last; a stale answer (another CSeq) is ignored.
    sc.feed(&resp(Some(7), "200 OK", &["Server: stale"], ""));
    assert_eq!(sc.s.server(), Some("Hikvision-Webs"));
    sc.feed(&resp(
        Some(2),
        "200 OK",
        &[
            "Content-Type: application/sdp",
            &format!("Content-Base: {BASE}"),
        ],
        SDP_ONE,
    ));
    assert_eq!(sc.s.server(), Some("Hikvision-Webs"));
    assert!(matches!(sc.events()[..], [Event::Described { .. }]));

    // The 401 that asks for credentials names the server too.
    let mut sc = Script::new(config("rtsp://192.0.2.10/x"));
    sc.feed(&resp(
        Some(1),
        "401 Unauthorized",
        &[
            "Server: Dahua Rtsp Server",
            "WWW-Authenticate: Basic realm=\"cam\"",
        ],
        "",
    ));
    assert_eq!(sc.error(), SessionError::AuthRequired);
    assert_eq!(sc.s.server(), Some("Dahua Rtsp Server"));
}

#[test]
fn cseq_matching_ignores_stale_answers_and_accepts_missing_cseq() {
    let mut sc = Script::new(config(URL));
    sc.sent();
    sc.feed(&resp(Some(7), "200 OK", &[], ""));
    assert!(sc.sent().is_empty(), "an answer to another CSeq is skipped");
    sc.feed(&resp(None, "200 OK", &[], ""));
    assert!(sc.sent()[0].starts_with("DESCRIBE "));
    // An unsolicited response while nothing is outstanding is ignored too.
    sc.feed(&resp(Some(2), "200 OK", &[], SDP_ONE));
    sc.events();
    sc.feed(&resp(Some(2), "500 Internal Server Error", &[], ""));
    assert!(sc.next.is_ok());
}

#[test]
fn garbage_and_bad_sdp_end_the_session() {
    let mut sc = Script::new(config(URL));
    sc.feed(b"HTTP/1.1 400 Bad Request\r\n\r\n");
    assert!(
        matches!(sc.error(), SessionError::Protocol(_)),
        "{:?}",
        sc.next
    );
    assert!(
        sc.error()
            .to_string()
            .starts_with("camera sent something that is not RTSP"),
        "{}",
        sc.error()
    );

    let mut sc = Script::new(config(URL));
    sc.feed(&resp(Some(1), "200 OK", &[], ""));
    sc.feed(&resp(Some(2), "200 OK", &[], "<html>login</html>"));
    assert!(matches!(sc.error(), SessionError::Sdp(SdpError::NotSdp(_))));
}

#[test]
fn no_usable_tracks_lists_what_the_camera_offers() {
    let mut sc = Script::new(config(URL));
    sc.feed(&resp(Some(1), "200 OK", &[], ""));
    sc.feed(&resp(
        Some(2),
        "200 OK",
        &[],
        "v=0\r\nm=video 0 RTP/AVP 26\r\nm=application 0 RTP/AVP 107\r\na=rtpmap:107 vnd.onvif.metadata/90000\r\n",
    ));
    assert_eq!(
        sc.error().to_string(),
        "camera offers no track corecast can play (video/JPEG: codec not supported; \
         application/vnd.onvif.metadata: not a media codec)"
    );
    let mut sc = Script::new(config(URL));
    sc.feed(&resp(Some(1), "200 OK", &[], ""));
    sc.feed(&resp(Some(2), "200 OK", &[], "v=0\r\ns=empty\r\n"));
    assert_eq!(
        sc.error(),
        SessionError::NoUsableTracks("the SDP has no media sections".to_string())
    );
}

/// Drives a session to its SETUP and returns the requests from then on, up to PLAY.
fn setup_and_play_uris(headers: &[&str], sdp: &str) -> Vec<String> {
    let mut sc = Script::new(config(URL));
    sc.feed(&resp(Some(1), "200 OK", &[], ""));
    sc.sent();
    sc.feed(&resp(Some(2), "200 OK", headers, sdp));
    sc.s.setup(Transport::Tcp, sc.now);
    sc.pump();
    let mut uris = Vec::new();
    for cseq in 3.. {
        let sent = sc.sent();
        let Some(line) = sent.first().and_then(|r| r.lines().next()) else {
            break;
        };
        uris.push(line.to_string());
        if line.starts_with("PLAY") {
            break;
        }
        sc.feed(&resp(Some(cseq), "200 OK", &["Session: 1"], ""));
    }
    uris
}

#[test]
fn control_urls_from_content_base_content_location_or_the_request() {
    let two = "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:track1\r\n\
m=audio 0 RTP/AVP 8\r\na=control:track2\r\n";
    assert_eq!(
        setup_and_play_uris(&["Content-Location: rtsp://192.0.2.10/loc/"], two),
        [
            "SETUP rtsp://192.0.2.10/loc/track1 RTSP/1.0",
            "SETUP rtsp://192.0.2.10/loc/track2 RTSP/1.0",
            "PLAY rtsp://192.0.2.10/loc/ RTSP/1.0",
        ]
    );
    assert_eq!(
        setup_and_play_uris(
            &[
                "Content-Base: rtsp://192.0.2.10/base/",
                "Content-Location: rtsp://192.0.2.10/loc/"
            ],
            two
        ),
        [
            "SETUP rtsp://192.0.2.10/base/track1 RTSP/1.0",
            "SETUP rtsp://192.0.2.10/base/track2 RTSP/1.0",
            "PLAY rtsp://192.0.2.10/base/ RTSP/1.0",
        ]
    );
    assert_eq!(
        setup_and_play_uris(&[], two),
        [
            format!("SETUP {REQ_URI}/track1 RTSP/1.0"),
            format!("SETUP {REQ_URI}/track2 RTSP/1.0"),
            format!("PLAY {REQ_URI} RTSP/1.0"),
        ]
    );
    // Axis: an absolute session-level control is the aggregate URL.
    let axis = "v=0\r\n\
a=control:rtsp://192.0.2.30/axis-media/media.amp?videocodec=h264\r\n\
m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
a=control:rtsp://192.0.2.30/axis-media/media.amp/stream=0?videocodec=h264\r\n";
    assert_eq!(
        setup_and_play_uris(
            &["Content-Base: rtsp://192.0.2.30/axis-media/media.amp/"],
            axis
        ),
        [
            "SETUP rtsp://192.0.2.30/axis-media/media.amp/stream=0?videocodec=h264 RTSP/1.0",
            "PLAY rtsp://192.0.2.30/axis-media/media.amp?videocodec=h264 RTSP/1.0",
        ]
    );
}

#[test]
fn teardown_without_a_session_and_teardown_timeout() {
    let mut sc = Script::new(config(URL));
    sc.sent();
    sc.s.teardown(sc.now);
    sc.pump();
    assert!(sc.sent().is_empty());
    assert_eq!(sc.events(), [Event::TornDown]);
    // The OPTIONS answer arriving afterwards changes nothing.
    sc.feed(&resp(Some(1), "200 OK", &[], ""));
    assert!(sc.sent().is_empty() && sc.next.is_ok());

    let mut sc = Script::new(config(URL));
    sc.describe(PUBLIC_ALL, SDP_ONE);
    sc.s.setup(Transport::Tcp, sc.now);
    sc.pump();
    sc.feed(&resp(Some(3), "200 OK", &["Session: s1;timeout=60"], ""));
    sc.sent();
    // Torn down while PLAY is outstanding: its answer is then skipped.
    sc.s.teardown(sc.now);
    sc.pump();
    assert_eq!(
        sc.sent(),
        [req(&format!("TEARDOWN {BASE}"), 5, &["Session: s1"])]
    );
    sc.feed(&resp(Some(4), "200 OK", &[], ""));
    assert!(sc.events().is_empty());
    sc.advance(DEFAULT_RESPONSE_TIMEOUT);
    assert_eq!(sc.events(), [Event::TornDown]);
    assert!(sc.next.is_ok());
}

#[test]
fn interleave_frames_and_refuses_oversize() {
    assert_eq!(&Session::interleave(3, &[1, 2])[..], &[b'$', 3, 0, 2, 1, 2]);
    assert!(Session::interleave(1, &vec![0; 65_536]).is_empty());
    assert_eq!(Session::interleave(1, &vec![0; 65_535]).len(), 65_539);
}

#[test]
fn session_header_parsing() {
    assert_eq!(parse_session("abc"), ("abc", DEFAULT_SESSION_TIMEOUT));
    assert_eq!(
        parse_session(" 12345678 ; timeout = 30"),
        ("12345678", Duration::from_secs(30))
    );
    assert_eq!(parse_session("x;timeout=0"), ("x", DEFAULT_SESSION_TIMEOUT));
    assert_eq!(
        parse_session("x;timeout=junk"),
        ("x", DEFAULT_SESSION_TIMEOUT)
    );
    assert_eq!(
        parse_session("x;timeout=99999999999"),
        ("x", MAX_SESSION_TIMEOUT)
    );
    assert_eq!(
        parse_transport("RTP/AVP/TCP;unicast;interleaved=4;ssrc=zz"),
        TransportReply {
            interleaved: Some((4, 5)),
            ..TransportReply::default()
        }
    );
    assert_eq!(parse_transport("RTP/AVP;interleaved=255").interleaved, None);
    assert_eq!(
        parse_transport("RTP/AVP;server_port=7000-7001, RTP/AVP;server_port=1-2").server_ports,
        Some((7000, 7001))
    );
}

/// xorshift64*: deterministic noise for the mutation test.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A whole camera side of a conversation, mutated a few bytes at a time and cut into
/// random reads: the session may fail, but never panics and never buffers more than one
/// message or frame.
#[test]
fn mutated_conversations_never_panic_and_stay_bounded() {
    let mut transcript = Vec::new();
    transcript.extend(resp(
        Some(1),
        "401 Unauthorized",
        &["WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", qop=\"auth\""],
        "",
    ));
    transcript.extend(resp(
        Some(2),
        "200 OK",
        &[&format!("Public: {PUBLIC_ALL}")],
        "",
    ));
    transcript.extend(resp(
        Some(3),
        "200 OK",
        &[&format!("Content-Base: {BASE}")],
        SDP_HIK,
    ));
    transcript.extend(resp(
        Some(4),
        "200 OK",
        &[
            "Session: 1;timeout=4",
            "Transport: RTP/AVP/TCP;interleaved=0-1;server_port=1-2",
        ],
        "",
    ));
    transcript.extend(resp(Some(5), "200 OK", &["Session: 1"], ""));
    transcript.extend(b"GET_PARAMETER * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    transcript.extend(resp(Some(6), "200 OK", &[], ""));
    transcript.extend(frame(0, &[0x80; 40]));
    transcript.extend(frame(3, &[0x81; 8]));
    let limits = Limits::default();
    let bound = limits.max_head + limits.max_body + 4 + 65_535;
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let (mut played, mut failed) = (0, 0);
    for round in 0..3000 {
        let mut input = transcript.clone();
        for _ in 0..noise.below(4) {
            let at = noise.below(input.len());
            match noise.below(3) {
                0 => input[at] = noise.next() as u8,
                1 => input.insert(at, noise.next() as u8),
                _ => {
                    input.remove(at);
                }
            }
        }
        let mut sc = Script::new(config(URL));
        let mut rest = input.as_slice();
        while !rest.is_empty() {
            let n = 1 + noise.below(rest.len().min(200));
            let (piece, tail) = rest.split_at(n);
            rest = tail;
            sc.feed(piece);
            assert!(sc.s.buf.len() <= bound);
            let events = sc.events();
            if events.iter().any(|e| matches!(e, Event::Playing { .. })) {
                played += 1;
            }
            if events.iter().any(|e| matches!(e, Event::Described { .. })) {
                let transport = if round % 2 == 0 {
                    Transport::Tcp
                } else {
                    Transport::Udp {
                        client_rtp_ports: vec![5000, 5002, 5004],
                    }
                };
                sc.s.setup(transport, sc.now);
                sc.pump();
            }
            if noise.below(8) == 0 {
                sc.advance(Duration::from_secs(noise.below(12) as u64));
            }
        }
        if sc.next.is_err() {
            failed += 1;
        }
        sc.s.teardown(sc.now);
        sc.pump();
    }
    // Both ends of the outcome are exercised.
    assert!(
        played > 500 && failed > 500,
        "played {played}, failed {failed}"
    );
}
