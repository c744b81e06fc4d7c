//! A pulled camera's whole life in virtual time: the camera side is scripted with byte
//! vectors (answers built per request, RTP packets by hand), no sockets, no sleeps.

use super::*;
use crate::media::MediaKind;

const URL: &str = "rtsp://admin:12345@192.0.2.10/live";
const UA: &str = "test/1";
const SECOND: Duration = Duration::from_secs(1);

/// One H.264 track with parameter sets in the SDP.
const SDP_H264: &str = "v=0\r\n\
o=- 1 1 IN IP4 192.0.2.10\r\n\
s=cam\r\n\
t=0 0\r\n\
a=control:*\r\n\
m=video 0 RTP/AVP 96\r\n\
a=rtpmap:96 H264/90000\r\n\
a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z0LAH9kAUAW7ARAAAAMAEAAAAwPA8YMkgA==,aMuDyyA=\r\n\
a=control:trackID=1\r\n";

/// H.264 and PCMU.
const SDP_AV: &str = "v=0\r\n\
s=cam\r\n\
t=0 0\r\n\
a=control:*\r\n\
m=video 0 RTP/AVP 96\r\n\
a=rtpmap:96 H264/90000\r\n\
a=control:trackID=1\r\n\
m=audio 0 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=control:trackID=2\r\n";

/// x264 baseline SPS and PPS.
const SPS: &[u8] = &[
    0x67, 0x42, 0xC0, 0x1F, 0xD9, 0x00, 0x50, 0x05, 0xBB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xC0, 0xF1, 0x83, 0x24, 0x80,
];
const PPS: &[u8] = &[0x68, 0xCB, 0x83, 0xCB, 0x20];
const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33, 0xFF];
const P_SLICE: &[u8] = &[0x41, 0x9A, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07];

fn camera() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 10], 554))
}

#[allow(clippy::disallowed_methods)] // Tests need an origin; time then moves by hand.
fn origin() -> Instant {
    Instant::now()
}

fn config() -> IngestConfig {
    IngestConfig {
        name: "cam".to_string(),
        url: RtspUrl::parse(URL).expect("url parses"),
        credentials: None,
        transport: TransportMode::Tcp,
        follow_redirects: RedirectPolicy::SameHost,
        on_demand: false,
        close_after: 10 * SECOND,
        udp_port_min: 30000,
        udp_port_max: 30009,
        udp_timeout: 3 * SECOND,
        response_timeout: 10 * SECOND,
        read_timeout: 10 * SECOND,
        retry_min: SECOND,
        retry_max: 30 * SECOND,
        seed: 7,
        user_agent: UA.to_string(),
    }
}

/// An RTP packet.
fn rtp(seq: u16, ts: u32, marker: bool, pt: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// STAP-A with SPS and PPS.
fn stap_a() -> Vec<u8> {
    let mut out = vec![0x78];
    for u in [SPS, PPS] {
        out.extend_from_slice(&(u.len() as u16).to_be_bytes());
        out.extend_from_slice(u);
    }
    out
}

/// Interleaved on channel `ch`.
fn interleaved(ch: u8, data: &[u8]) -> Vec<u8> {
    Session::interleave(ch, data).to_vec()
}

/// A request as the camera reads it.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    cseq: u32,
    text: String,
}

fn parse_req(b: &[u8]) -> Option<Req> {
    let text = String::from_utf8_lossy(b).to_string();
    let method = text.split(' ').next()?.to_string();
    if method.starts_with("RTSP/") || b.first() == Some(&b'$') {
        return None;
    }
    let cseq = text
        .lines()
        .find_map(|l| l.strip_prefix("CSeq: "))?
        .trim()
        .parse()
        .ok()?;
    Some(Req { method, cseq, text })
}

/// A camera answer.
fn resp(cseq: u32, status: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut s = format!("RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n");
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

/// How a well-behaved camera answers `r`, describing `sdp`.
fn answer(r: &Req, sdp: &str) -> Vec<u8> {
    let c = r.cseq;
    match r.method.as_str() {
        "OPTIONS" => resp(
            c,
            "200 OK",
            &["Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"],
            "",
        ),
        "DESCRIBE" => resp(
            c,
            "200 OK",
            &[
                "Content-Base: rtsp://192.0.2.10:554/live/",
                "Content-Type: application/sdp",
            ],
            sdp,
        ),
        "SETUP" => {
            let n = r.text.matches("trackID=2").count();
            let transport = if r.text.contains("RTP/AVP/TCP") {
                format!(
                    "Transport: RTP/AVP/TCP;unicast;interleaved={}-{}",
                    2 * n,
                    2 * n + 1
                )
            } else {
                let client = r
                    .text
                    .split("client_port=")
                    .nth(1)
                    .and_then(|s| s.split(['\r', ';']).next())
                    .unwrap_or("0-1")
                    .to_string();
                format!(
                    "Transport: RTP/AVP;unicast;client_port={client};server_port={}-{}",
                    6970 + 2 * n,
                    6971 + 2 * n
                )
            };
            resp(c, "200 OK", &["Session: 1234;timeout=60", &transport], "")
        }
        _ => resp(c, "200 OK", &["Session: 1234"], ""),
    }
}

/// The ingest, its virtual clock and everything it handed out.
struct Rig {
    ing: Ingest,
    now: Instant,
    start: Instant,
    next: Instant,
    /// Requests written to the camera, not yet answered.
    requests: Vec<Req>,
    /// Every request ever written (methods).
    log: Vec<String>,
    /// Every `SETUP` ever written.
    setups: Vec<String>,
    /// Interleaved frames written (receiver reports).
    tcp_frames: Vec<Vec<u8>>,
    actions: Vec<Output>,
    events: Vec<Event>,
}

impl Rig {
    fn new(cfg: IngestConfig) -> Rig {
        let now = origin();
        let mut rig = Rig {
            ing: Ingest::new(cfg, now),
            now,
            start: now,
            next: now,
            requests: Vec::new(),
            log: Vec::new(),
            setups: Vec::new(),
            tcp_frames: Vec::new(),
            actions: Vec::new(),
            events: Vec::new(),
        };
        rig.pump();
        rig
    }

    fn pump(&mut self) {
        for _ in 0..100_000 {
            match self.ing.poll_output() {
                Output::Timeout(t) => {
                    self.next = t;
                    return;
                }
                Output::Transmit(b) => match parse_req(&b) {
                    Some(r) => {
                        self.log.push(r.method.clone());
                        if r.method == "SETUP" {
                            self.setups.push(r.text.clone());
                        }
                        self.requests.push(r);
                    }
                    None => self.tcp_frames.push(b.to_vec()),
                },
                Output::Event(e) => self.events.push(e),
                o => self.actions.push(o),
            }
        }
        panic!("poll_output never returned a timeout");
    }

    fn input(&mut self, i: Input<'_>) {
        self.ing.handle_input(self.now, i);
        self.pump();
    }

    fn feed(&mut self, b: &[u8]) {
        self.input(Input::Tcp(b));
    }

    /// Moves the clock by `d`, stopping at every timeout on the way.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..100_000 {
            self.now = self.next.clamp(self.now, end);
            self.ing.handle_timeout(self.now);
            self.pump();
            if self.now >= end {
                return;
            }
        }
        panic!("timers never reached the end");
    }

    fn take_actions(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.actions)
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    fn states(&mut self) -> Vec<SourceState> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::State(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    /// Expects a connect request, answers it.
    fn connect(&mut self) {
        let a = self.take_actions();
        assert!(
            a.iter()
                .any(|o| matches!(o, Output::Connect { port: 554, host } if host == "192.0.2.10")),
            "expected a Connect, got {a:?}"
        );
        self.input(Input::Connected { peer: camera() });
    }

    /// Answers requests with `f` (or as a good camera would when it returns `None`) and
    /// binds UDP ports when asked, until nothing is pending.
    fn serve_with(&mut self, sdp: &str, mut f: impl FnMut(&Req) -> Option<Vec<u8>>) {
        for _ in 0..100 {
            if let Some(pos) = self
                .actions
                .iter()
                .position(|o| matches!(o, Output::BindUdp { .. }))
            {
                let Output::BindUdp { pairs, .. } = self.actions.remove(pos) else {
                    unreachable!()
                };
                let rtp_ports = (0..pairs as u16).map(|i| 30000 + 2 * i).collect();
                self.input(Input::Bound { rtp_ports });
                continue;
            }
            if self.requests.is_empty() {
                return;
            }
            let r = self.requests.remove(0);
            let a = f(&r).unwrap_or_else(|| answer(&r, sdp));
            self.feed(&a);
        }
    }

    fn serve(&mut self, sdp: &str) {
        self.serve_with(sdp, |_| None);
    }

    /// Connect and play `sdp`.
    fn play(&mut self, sdp: &str) {
        self.connect();
        self.serve(sdp);
        assert!(self.log.iter().any(|m| m == "PLAY"), "{:?}", self.log);
    }

    /// A keyframe (STAP-A with SPS/PPS, then the IDR) on interleaved channel 0.
    fn keyframe_tcp(&mut self, seq: u16, ts: u32) {
        self.feed(&interleaved(0, &rtp(seq, ts, false, 96, &stap_a())));
        self.feed(&interleaved(0, &rtp(seq + 1, ts, true, 96, IDR)));
    }

    fn frames(&self) -> Vec<&Frame> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Frame(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    fn disconnects(&self) -> usize {
        self.actions
            .iter()
            .filter(|o| matches!(o, Output::Disconnect))
            .count()
    }

    /// The time until the next connect attempt, from a failure now.
    fn retry_delay(&mut self) -> Duration {
        self.next.saturating_duration_since(self.now)
    }
}

/// Fails the connect attempt.
fn refuse(rig: &mut Rig) {
    let a = rig.take_actions();
    assert!(
        a.iter().any(|o| matches!(o, Output::Connect { .. })),
        "{a:?}"
    );
    rig.input(Input::ConnectFailed(IngestError::Connect {
        addr: camera(),
        kind: std::io::ErrorKind::ConnectionRefused,
        why: "Connection refused".to_string(),
    }));
}

#[test]
fn plays_over_tcp_publishes_tracks_and_goes_live_on_the_first_keyframe() {
    let mut rig = Rig::new(config());
    assert_eq!(rig.ing.state(), &SourceState::Connecting);
    rig.play(SDP_H264);
    assert_eq!(rig.log, ["OPTIONS", "DESCRIBE", "SETUP", "PLAY"]);
    assert!(
        rig.events
            .iter()
            .any(|e| matches!(e, Event::Tracks(t) if t.len() == 1))
    );
    // A P-frame first: not a start, not live.
    rig.feed(&interleaved(0, &rtp(1, 0, true, 96, P_SLICE)));
    assert_eq!(rig.ing.state(), &SourceState::Connecting);
    rig.keyframe_tcp(2, 3000);
    assert_eq!(rig.ing.state(), &SourceState::Live);
    let frames = rig.frames();
    assert!(
        frames
            .iter()
            .any(|f| f.keyframe && f.kind == MediaKind::Video)
    );
    assert!(
        rig.events
            .iter()
            .any(|e| matches!(e, Event::Stats(s) if s.transport == Some("tcp")))
    );
    // Counters for /metrics come out with the drain.
    assert!(
        rig.events
            .iter()
            .any(|e| matches!(e, Event::Counters { packets, .. } if *packets >= 1))
    );
}

#[test]
fn backoff_doubles_from_retry_min_to_retry_max() {
    let mut rig = Rig::new(config());
    let mut delays = Vec::new();
    for _ in 0..7 {
        refuse(&mut rig);
        delays.push(rig.retry_delay().as_secs());
        let d = rig.retry_delay();
        rig.run_for(d);
    }
    assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
    assert!(matches!(rig.states().last(), Some(SourceState::Connecting)));
    assert!(rig.states().contains(&SourceState::Retrying {
        in_secs: 16,
        why: "cannot connect to 192.0.2.10:554: Connection refused".to_string()
    }));
}

#[test]
fn backoff_resets_after_a_session_that_delivered_media() {
    let mut rig = Rig::new(config());
    for _ in 0..3 {
        refuse(&mut rig);
        let d = rig.retry_delay();
        rig.run_for(d);
    }
    refuse(&mut rig);
    assert_eq!(rig.retry_delay(), 8 * SECOND);
    let d = rig.retry_delay();
    rig.run_for(d);
    rig.play(SDP_H264);
    rig.keyframe_tcp(1, 0);
    rig.input(Input::TcpClosed);
    assert_eq!(
        rig.retry_delay(),
        SECOND,
        "media delivered: from retry_min again"
    );
    let d = rig.retry_delay();
    rig.run_for(d);
    // The next failure (no media) doubles again.
    refuse(&mut rig);
    assert_eq!(rig.retry_delay(), 2 * SECOND);
}

#[test]
fn wrong_credentials_wait_retry_max_at_once() {
    let mut rig = Rig::new(config());
    rig.connect();
    let challenge = "WWW-Authenticate: Basic realm=\"cam\"";
    rig.serve_with(SDP_H264, |r| {
        (r.method == "DESCRIBE").then(|| resp(r.cseq, "401 Unauthorized", &[challenge], ""))
    });
    assert_eq!(rig.retry_delay(), 30 * SECOND);
    let states = rig.states();
    let Some(SourceState::Retrying { in_secs, why }) = states.last() else {
        panic!("{states:?}")
    };
    assert_eq!(*in_secs, 30);
    assert!(
        why.contains("rejected the credentials") && why.contains("admin"),
        "{why}"
    );
    assert!(rig.events.iter().any(|e| matches!(e, Event::ClearGop)));
}

#[test]
fn missing_credentials_are_named_and_wait_retry_max() {
    let mut cfg = config();
    cfg.url = RtspUrl::parse("rtsp://192.0.2.10/live").expect("url parses");
    let mut rig = Rig::new(cfg);
    rig.connect();
    let challenge = "WWW-Authenticate: Basic realm=\"cam\"";
    rig.serve_with(SDP_H264, |r| {
        Some(resp(r.cseq, "401 Unauthorized", &[challenge], ""))
    });
    assert_eq!(rig.retry_delay(), 30 * SECOND);
    let states = rig.states();
    let Some(SourceState::Retrying { why, .. }) = states.last() else {
        panic!("{states:?}")
    };
    assert!(why.contains("requires a user name and password"), "{why}");
    assert_eq!(rig.disconnects(), 1);
}

/// A 302 to `location` for every request.
fn redirect_to(location: &str) -> impl FnMut(&Req) -> Option<Vec<u8>> + '_ {
    move |r: &Req| {
        let loc = format!("Location: {location}");
        Some(resp(r.cseq, "302 Found", &[&loc], ""))
    }
}

/// A camera that wants Basic authentication for `DESCRIBE`; every request's text goes
/// to `seen`.
fn basic_auth_camera(seen: &mut Vec<String>) -> impl FnMut(&Req) -> Option<Vec<u8>> + '_ {
    move |r: &Req| {
        seen.push(r.text.clone());
        (r.method == "DESCRIBE" && !r.text.contains("Authorization:")).then(|| {
            resp(
                r.cseq,
                "401 Unauthorized",
                &["WWW-Authenticate: Basic realm=\"cam\""],
                "",
            )
        })
    }
}

fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Authorization: Basic {}",
        crate::rtsp::proto::auth::base64_encode(raw.as_bytes())
    )
}

fn operator() -> Credentials {
    Credentials {
        user: "op".to_string(),
        password: "opsecret".to_string(),
    }
}

/// Every failure text the operator can see: states' reasons and the API's `last_error`.
fn shown_errors(rig: &Rig) -> Vec<String> {
    rig.events
        .iter()
        .filter_map(|e| match e {
            Event::State(SourceState::Retrying { why, .. }) => Some(why.clone()),
            Event::Stats(s) => s.last_error.clone(),
            _ => None,
        })
        .collect()
}

#[test]
fn redirect_to_the_same_host_is_followed_with_the_credentials_and_plays() {
    let mut cfg = config();
    cfg.credentials = Some(operator());
    let mut rig = Rig::new(cfg);
    rig.connect();
    rig.serve_with(SDP_H264, |r| {
        (r.method == "DESCRIBE").then(|| {
            resp(
                r.cseq,
                "302 Found",
                &["Location: rtsp://192.0.2.10:8554/real"],
                "",
            )
        })
    });
    let a = rig.take_actions();
    assert!(a.contains(&Output::Disconnect), "{a:?}");
    assert!(
        a.contains(&Output::Connect {
            host: "192.0.2.10".to_string(),
            port: 8554
        }),
        "{a:?}"
    );
    assert_eq!(rig.ing.url().user.as_deref(), Some("admin"));
    rig.input(Input::Connected {
        peer: SocketAddr::from(([192, 0, 2, 10], 8554)),
    });
    let mut seen = Vec::new();
    rig.serve_with(SDP_H264, basic_auth_camera(&mut seen));
    assert!(rig.requests.is_empty());
    assert!(rig.log.iter().any(|m| m == "PLAY"));
    let describes: Vec<&String> = seen.iter().filter(|t| t.starts_with("DESCRIBE")).collect();
    assert_eq!(describes.len(), 2, "{seen:?}");
    assert!(describes[1].contains(&basic("op", "opsecret")), "{seen:?}");
    assert!(
        !rig.states()
            .iter()
            .any(|s| matches!(s, SourceState::Retrying { .. }))
    );
}

#[test]
fn redirect_to_another_host_is_refused_by_default() {
    let mut rig = Rig::new(config());
    rig.connect();
    rig.serve_with(SDP_H264, redirect_to("rtsp://192.0.2.20/real"));
    let a = rig.take_actions();
    assert!(
        !a.iter().any(|o| matches!(o, Output::Connect { .. })),
        "{a:?}"
    );
    let states = rig.states();
    let Some(SourceState::Retrying { in_secs, why }) = states.last() else {
        panic!("{states:?}")
    };
    assert_eq!(
        why,
        "camera redirects to rtsp://192.0.2.20:554/real: rtsp.follow_redirects = \"same-host\""
    );
    // The camera will say the same again: no hurry.
    assert_eq!(*in_secs, 30);
    assert_eq!(rig.ing.url().host, "192.0.2.10");
    let d = rig.retry_delay();
    rig.run_for(d);
    rig.connect();

    // "never" refuses the camera's own host too.
    let mut cfg = config();
    cfg.follow_redirects = RedirectPolicy::Never;
    let mut rig = Rig::new(cfg);
    rig.connect();
    rig.serve_with(SDP_H264, redirect_to("rtsp://192.0.2.10:8554/real"));
    assert!(
        !rig.take_actions()
            .iter()
            .any(|o| matches!(o, Output::Connect { .. }))
    );
    assert!(
        shown_errors(&rig)
            .iter()
            .any(|e| e.ends_with("rtsp.follow_redirects = \"never\"")),
        "{:?}",
        shown_errors(&rig)
    );
}

#[test]
fn redirect_to_another_host_with_any_carries_no_configured_credentials() {
    for configured in [None, Some(operator())] {
        let mut cfg = config();
        cfg.follow_redirects = RedirectPolicy::Any;
        cfg.credentials = configured;
        let mut rig = Rig::new(cfg);
        rig.connect();
        rig.serve_with(SDP_H264, redirect_to("rtsp://192.0.2.20:8554/real"));
        let a = rig.take_actions();
        assert!(
            a.contains(&Output::Connect {
                host: "192.0.2.20".to_string(),
                port: 8554
            }),
            "{a:?}"
        );
        assert_eq!(rig.ing.url().user, None, "the URL's user stays home");
        rig.input(Input::Connected {
            peer: SocketAddr::from(([192, 0, 2, 20], 8554)),
        });
        let mut seen = Vec::new();
        rig.serve_with(SDP_H264, basic_auth_camera(&mut seen));
        assert!(!seen.is_empty());
        assert!(
            seen.iter().all(|t| !t.contains("Authorization")),
            "{seen:?}"
        );
        let why = shown_errors(&rig).join("\n");
        assert!(why.contains("requires a user name and password"), "{why}");
    }

    // A Location's own credentials are what goes there.
    let mut cfg = config();
    cfg.follow_redirects = RedirectPolicy::Any;
    cfg.credentials = Some(operator());
    let mut rig = Rig::new(cfg);
    rig.connect();
    rig.serve_with(
        SDP_H264,
        redirect_to("rtsp://guest:guestpw@192.0.2.20/real"),
    );
    rig.take_actions();
    rig.input(Input::Connected {
        peer: SocketAddr::from(([192, 0, 2, 20], 554)),
    });
    let mut seen = Vec::new();
    rig.serve_with(SDP_H264, basic_auth_camera(&mut seen));
    assert!(rig.log.iter().any(|m| m == "PLAY"));
    assert!(
        seen.iter().any(|t| t.contains(&basic("guest", "guestpw"))),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|t| !t.contains(&basic("op", "opsecret"))
            && !t.contains(&basic("admin", "12345"))),
        "{seen:?}"
    );
}

#[test]
fn credentials_in_a_location_never_appear_in_errors() {
    let secret_locations = [
        // Refused (another host).
        "rtsp://u:topsecret@192.0.2.20/x?password=pwsecret",
        // Not RTSP.
        "http://u:topsecret@192.0.2.10/x?token=pwsecret",
        // Not even a URL.
        "rtsp://u:top secret@192.0.2.10/x",
    ];
    for location in secret_locations {
        let mut rig = Rig::new(config());
        rig.connect();
        rig.serve_with(SDP_H264, redirect_to(location));
        let shown = shown_errors(&rig);
        assert!(!shown.is_empty());
        for e in &shown {
            assert!(e.contains("redirect"), "{e}");
            assert!(
                !e.contains("secret") && !e.contains("u:"),
                "{location} shown as {e}"
            );
        }
    }
    // Followed until the limit: the last redirect's error shows it redacted.
    let loc = "rtsp://u:topsecret@192.0.2.10/loop?password=pwsecret";
    let mut rig = Rig::new(config());
    rig.connect();
    rig.serve_with(SDP_H264, redirect_to(loc));
    for _ in 0..MAX_REDIRECTS {
        assert!(
            rig.take_actions()
                .iter()
                .any(|o| matches!(o, Output::Connect { .. }))
        );
        rig.input(Input::Connected { peer: camera() });
        rig.serve_with(SDP_H264, redirect_to(loc));
    }
    let shown = shown_errors(&rig);
    assert_eq!(
        shown.last().map(String::as_str),
        Some("camera redirects OPTIONS to rtsp://192.0.2.10:554/loop?password=*** (302)"),
        "{shown:?}"
    );
    assert!(shown.iter().all(|e| !e.contains("secret")), "{shown:?}");
}

#[test]
fn redirect_limit_then_back_to_the_configured_url() {
    let mut rig = Rig::new(config());
    let redirect = |r: &Req| {
        Some(resp(
            r.cseq,
            "302 Found",
            &["Location: rtsp://192.0.2.10:8554/loop"],
            "",
        ))
    };
    rig.connect();
    rig.serve_with(SDP_H264, redirect);
    for _ in 0..MAX_REDIRECTS {
        let a = rig.take_actions();
        assert!(
            a.iter()
                .any(|o| matches!(o, Output::Connect { port: 8554, .. })),
            "{a:?}"
        );
        rig.input(Input::Connected {
            peer: SocketAddr::from(([192, 0, 2, 10], 8554)),
        });
        rig.serve_with(SDP_H264, redirect);
    }
    // The fourth redirect counts as a failure: back off, then the configured URL.
    let states = rig.states();
    let Some(SourceState::Retrying { why, .. }) = states.last() else {
        panic!("{states:?}")
    };
    assert!(why.contains("redirects"), "{why}");
    assert_eq!(rig.ing.url().port, 554);
    let d = rig.retry_delay();
    rig.run_for(d);
    rig.connect();
}

#[test]
fn auto_transport_switches_to_tcp_for_good_on_461() {
    let mut cfg = config();
    cfg.transport = TransportMode::Auto;
    let mut rig = Rig::new(cfg);
    rig.connect();
    rig.serve_with(SDP_H264, |r| {
        (r.method == "SETUP").then(|| resp(r.cseq, "461 Unsupported Transport", &[], ""))
    });
    assert_eq!(rig.setups.len(), 1);
    assert!(
        rig.setups[0].contains("client_port=30000-30001"),
        "{:?}",
        rig.setups
    );
    let a = rig.take_actions();
    assert!(a.contains(&Output::Disconnect));
    // No backoff: a new connection at once, over TCP.
    assert!(
        a.iter().any(|o| matches!(o, Output::Connect { .. })),
        "{a:?}"
    );
    rig.input(Input::Connected { peer: camera() });
    rig.serve(SDP_H264);
    assert_eq!(rig.setups.len(), 2);
    assert!(rig.setups[1].contains("RTP/AVP/TCP"), "{:?}", rig.setups);
    rig.keyframe_tcp(1, 0);
    assert_eq!(rig.ing.state(), &SourceState::Live);
    // And later sessions stay on TCP.
    rig.input(Input::TcpClosed);
    let d = rig.retry_delay();
    rig.run_for(d);
    rig.play(SDP_H264);
    assert_eq!(rig.setups.len(), 3);
    assert!(rig.setups[2].contains("RTP/AVP/TCP"), "{:?}", rig.setups);
}

#[test]
fn auto_transport_switches_to_tcp_when_udp_stays_silent() {
    let mut cfg = config();
    cfg.transport = TransportMode::Auto;
    let mut rig = Rig::new(cfg);
    rig.play(SDP_H264);
    assert!(rig.ing.state() == &SourceState::Connecting);
    rig.log.clear();
    rig.run_for(3 * SECOND);
    // TEARDOWN, then a new connection over TCP.
    assert_eq!(rig.log, ["TEARDOWN"]);
    let a = rig.take_actions();
    assert!(a.contains(&Output::Disconnect));
    assert!(
        a.iter().any(|o| matches!(o, Output::Connect { .. })),
        "{a:?}"
    );
    rig.requests.clear();
    rig.input(Input::Connected { peer: camera() });
    rig.serve(SDP_H264);
    assert!(rig.requests.is_empty());
    assert!(rig.setups[0].contains("client_port="), "{:?}", rig.setups);
    assert!(rig.setups[1].contains("RTP/AVP/TCP"), "{:?}", rig.setups);
    assert_eq!(rig.log.last().map(String::as_str), Some("PLAY"));
}

#[test]
fn udp_only_transport_does_not_fall_back() {
    let mut cfg = config();
    cfg.transport = TransportMode::Udp;
    let mut rig = Rig::new(cfg);
    rig.connect();
    rig.serve_with(SDP_H264, |r| {
        (r.method == "SETUP").then(|| resp(r.cseq, "461 Unsupported Transport", &[], ""))
    });
    let states = rig.states();
    assert!(
        matches!(states.last(), Some(SourceState::Retrying { why, .. }) if why.contains("461")),
        "{states:?}"
    );
}

#[test]
fn udp_media_punches_reports_and_drops_foreign_datagrams() {
    let mut cfg = config();
    cfg.transport = TransportMode::Udp;
    let mut rig = Rig::new(cfg);
    rig.play(SDP_H264);
    // NAT punch towards the camera's RTP and RTCP ports, from ours.
    let a = rig.take_actions();
    let punches: Vec<_> = a
        .iter()
        .filter_map(|o| match o {
            Output::SendTo {
                from_port,
                to,
                data,
            } if data[..] == PUNCH => Some((*from_port, *to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        punches,
        [
            (30000, SocketAddr::from(([192, 0, 2, 10], 6970))),
            (30001, SocketAddr::from(([192, 0, 2, 10], 6971)))
        ]
    );
    // A foreign sender's keyframe is dropped.
    let stranger = SocketAddr::from(([198, 51, 100, 7], 6970));
    for (seq, p) in [(1u16, stap_a()), (2, IDR.to_vec())] {
        let pkt = rtp(seq, 0, seq == 2, 96, &p);
        rig.input(Input::Datagram {
            local_port: 30000,
            from: stranger,
            data: &pkt,
        });
    }
    assert!(rig.frames().is_empty());
    assert_eq!(rig.ing.state(), &SourceState::Connecting);
    // The camera's is taken.
    let from = SocketAddr::from(([192, 0, 2, 10], 6970));
    for (seq, p) in [(1u16, stap_a()), (2, IDR.to_vec())] {
        let pkt = rtp(seq, 0, seq == 2, 96, &p);
        rig.input(Input::Datagram {
            local_port: 30000,
            from,
            data: &pkt,
        });
    }
    assert_eq!(rig.frames().len(), 1);
    assert_eq!(rig.ing.state(), &SourceState::Live);
    // A receiver report to the camera's RTCP port after 5 s.
    rig.run_for(5 * SECOND);
    let a = rig.take_actions();
    assert!(a.iter().any(|o| matches!(o, Output::SendTo { from_port: 30001, to, data } if to.port() == 6971 && data[1] == 201)), "{a:?}");
}

#[test]
fn rtcp_receiver_reports_every_five_seconds_over_tcp() {
    let mut rig = Rig::new(config());
    rig.play(SDP_H264);
    rig.keyframe_tcp(1, 0);
    let mut at = Vec::new();
    for i in 1..=30u16 {
        rig.run_for(SECOND / 2);
        rig.feed(&interleaved(
            0,
            &rtp(2 + i, u32::from(i) * 4500, true, 96, P_SLICE),
        ));
        if !rig.tcp_frames.is_empty() {
            for f in std::mem::take(&mut rig.tcp_frames) {
                // `$`, channel 1 (RTCP), then an RR (packet type 201).
                assert_eq!((f[0], f[1], f[5]), (b'$', 1, 201));
            }
            at.push(rig.now.duration_since(rig.start).as_millis());
        }
    }
    assert_eq!(at, [5000, 10000, 15000]);
}

#[test]
fn keepalive_is_sent_at_half_the_session_timeout() {
    let mut rig = Rig::new(config());
    rig.play(SDP_H264);
    rig.log.clear();
    // Media keeps flowing; the camera's session timeout is 60 s.
    for i in 0..70u16 {
        rig.run_for(SECOND);
        rig.feed(&interleaved(
            0,
            &rtp(i, u32::from(i) * 90_000, true, 96, P_SLICE),
        ));
        rig.serve(SDP_H264);
    }
    assert_eq!(rig.log, ["GET_PARAMETER", "GET_PARAMETER"]);
    assert_eq!(rig.disconnects(), 0);
}

#[test]
fn camera_silence_reconnects_after_read_timeout() {
    let mut rig = Rig::new(config());
    rig.play(SDP_H264);
    rig.keyframe_tcp(1, 0);
    rig.log.clear();
    rig.run_for(9 * SECOND);
    assert_eq!(rig.disconnects(), 0);
    rig.run_for(SECOND);
    assert_eq!(rig.log, ["TEARDOWN"]);
    assert_eq!(rig.disconnects(), 1);
    let states = rig.states();
    assert!(
        matches!(states.last(), Some(SourceState::Retrying { in_secs: 1, why }) if why == "no media from the camera for 10s"),
        "{states:?}"
    );
    rig.run_for(SECOND);
    assert!(
        rig.take_actions()
            .iter()
            .any(|o| matches!(o, Output::Connect { .. }))
    );
}

#[test]
fn restart_keeps_timestamps_continuous() {
    let mut rig = Rig::new(config());
    rig.play(SDP_H264);
    rig.keyframe_tcp(1, 0);
    rig.feed(&interleaved(0, &rtp(3, 3000, true, 96, P_SLICE)));
    let before = rig.frames().iter().map(|f| f.pts).max().expect("frames");
    rig.input(Input::TcpClosed);
    let d = rig.retry_delay();
    rig.run_for(d);
    rig.play(SDP_H264);
    // The camera restarted its own clock and sequence numbers.
    rig.take_events();
    rig.keyframe_tcp(40000, 123);
    let after = rig.frames();
    assert_eq!(after.len(), 1);
    // Continued by at least the second the camera was away.
    assert!(
        after[0].pts > before + 90_000,
        "{} vs {before}",
        after[0].pts
    );
    assert_eq!(rig.ing.state(), &SourceState::Live);
}

#[test]
fn on_demand_idles_until_demand_then_connects() {
    let mut cfg = config();
    cfg.on_demand = true;
    let mut rig = Rig::new(cfg);
    assert_eq!(rig.ing.state(), &SourceState::Idle);
    rig.run_for(60 * SECOND);
    assert!(rig.take_actions().is_empty());
    rig.input(Input::Demand(0));
    assert!(rig.take_actions().is_empty());
    rig.input(Input::Demand(1));
    assert_eq!(rig.states(), [SourceState::Connecting]);
    rig.play(SDP_H264);
    rig.keyframe_tcp(1, 0);
    assert_eq!(rig.ing.state(), &SourceState::Live);
}

#[test]
fn on_demand_tears_down_close_after_the_last_viewer_left() {
    let mut cfg = config();
    cfg.on_demand = true;
    let mut rig = Rig::new(cfg);
    rig.input(Input::Demand(2));
    rig.play(SDP_H264);
    rig.log.clear();
    rig.input(Input::Demand(0));
    for i in 0..9u16 {
        rig.run_for(SECOND);
        rig.feed(&interleaved(
            0,
            &rtp(i, u32::from(i) * 90_000, true, 96, P_SLICE),
        ));
    }
    assert_eq!(rig.disconnects(), 0);
    rig.run_for(SECOND);
    assert_eq!(rig.log, ["TEARDOWN"]);
    assert_eq!(rig.disconnects(), 1);
    assert_eq!(rig.ing.state(), &SourceState::Idle);
    assert!(rig.events.iter().any(|e| matches!(e, Event::ClearGop)));
    // Idle: no reconnect until demand.
    rig.take_actions();
    rig.run_for(60 * SECOND);
    assert!(rig.take_actions().is_empty());
    rig.input(Input::Demand(1));
    rig.connect();
}

#[test]
fn on_demand_demand_returning_before_the_close_cancels_it() {
    let mut cfg = config();
    cfg.on_demand = true;
    let mut rig = Rig::new(cfg);
    rig.input(Input::Demand(1));
    rig.play(SDP_H264);
    rig.log.clear();
    rig.input(Input::Demand(0));
    for i in 0..8u16 {
        rig.run_for(SECOND);
        rig.feed(&interleaved(
            0,
            &rtp(i, u32::from(i) * 90_000, true, 96, P_SLICE),
        ));
    }
    rig.input(Input::Demand(1));
    for i in 8..30u16 {
        rig.run_for(SECOND);
        rig.feed(&interleaved(
            0,
            &rtp(i, u32::from(i) * 90_000, true, 96, P_SLICE),
        ));
    }
    assert!(!rig.log.iter().any(|m| m == "TEARDOWN"), "{:?}", rig.log);
    assert_eq!(rig.disconnects(), 0);
}

#[test]
fn shutdown_sends_teardown_and_stops() {
    let mut rig = Rig::new(config());
    rig.play(SDP_H264);
    rig.keyframe_tcp(1, 0);
    // Media still buffered in the session does not hold the TEARDOWN back.
    rig.log.clear();
    rig.input(Input::Close);
    assert_eq!(rig.log, ["TEARDOWN"]);
    assert_eq!(rig.disconnects(), 1);
    assert!(rig.ing.is_stopped());
    rig.take_actions();
    rig.run_for(120 * SECOND);
    assert!(rig.take_actions().is_empty());
}

#[test]
fn shutdown_while_connecting_or_waiting_just_stops() {
    let mut rig = Rig::new(config());
    rig.input(Input::Close);
    assert!(rig.ing.is_stopped());
    let mut rig = Rig::new(config());
    refuse(&mut rig);
    rig.input(Input::Close);
    assert!(rig.ing.is_stopped());
    rig.run_for(60 * SECOND);
    assert!(rig.take_actions().is_empty());
}

#[test]
fn state_sequence_connecting_live_retrying_connecting_live() {
    let mut rig = Rig::new(config());
    rig.play(SDP_H264);
    rig.keyframe_tcp(1, 0);
    rig.input(Input::TcpError(IngestError::Io {
        kind: std::io::ErrorKind::ConnectionReset,
        why: "Connection reset by peer".to_string(),
    }));
    let d = rig.retry_delay();
    rig.run_for(d);
    rig.play(SDP_H264);
    rig.keyframe_tcp(10, 9000);
    assert_eq!(
        rig.states(),
        [
            SourceState::Live,
            SourceState::Retrying {
                in_secs: 1,
                why: "connection error: Connection reset by peer".to_string()
            },
            SourceState::Connecting,
            SourceState::Live,
        ]
    );
    // The reconnect is counted.
    let reconnects = rig.events.iter().rev().find_map(|e| match e {
        Event::Stats(s) => Some(s.reconnects),
        _ => None,
    });
    assert_eq!(reconnects, Some(1));
}

#[test]
fn garbage_from_the_camera_ends_the_session_with_a_clear_error_and_backoff() {
    let mut rig = Rig::new(config());
    rig.connect();
    rig.feed(b"HTTP/1.1 400 Bad Request\r\n\r\n<html>nope</html>");
    let states = rig.states();
    let Some(SourceState::Retrying { in_secs: 1, why }) = states.last() else {
        panic!("{states:?}")
    };
    assert!(
        why.starts_with("camera sent something that is not RTSP"),
        "{why}"
    );
    assert_eq!(rig.disconnects(), 1);
}

#[test]
fn mutated_conversations_never_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..200 {
        let mut cfg = config();
        cfg.transport = [TransportMode::Tcp, TransportMode::Udp, TransportMode::Auto][round % 3];
        let mut rig = Rig::new(cfg);
        rig.connect();
        rig.serve_with(SDP_AV, |r| {
            let mut a = answer(r, SDP_AV);
            for _ in 0..(rand() % 4) {
                let i = (rand() as usize) % a.len();
                a[i] = rand() as u8;
            }
            Some(a)
        });
        let mut junk = interleaved(0, &rtp(1, 0, true, 96, IDR));
        let i = (rand() as usize) % junk.len();
        junk[i] ^= 0xff;
        rig.feed(&junk);
        rig.input(Input::Datagram {
            local_port: 30000,
            from: camera(),
            data: &junk,
        });
        rig.run_for(40 * SECOND);
        rig.input(Input::Close);
        assert!(rig.ing.is_stopped());
    }
}

#[test]
fn bind_failure_falls_back_to_tcp_on_auto() {
    let mut cfg = config();
    cfg.transport = TransportMode::Auto;
    let mut rig = Rig::new(cfg);
    rig.connect();
    for _ in 0..2 {
        let r = rig.requests.remove(0);
        rig.feed(&answer(&r, SDP_H264));
    }
    let a = rig.take_actions();
    assert!(
        a.iter().any(|o| matches!(
            o,
            Output::BindUdp {
                pairs: 1,
                port_min: 30000,
                port_max: 30009
            }
        )),
        "{a:?}"
    );
    rig.input(Input::BindFailed);
    let a = rig.take_actions();
    assert!(a.contains(&Output::Disconnect));
    assert!(
        a.iter().any(|o| matches!(o, Output::Connect { .. })),
        "{a:?}"
    );
}

#[test]
fn random_scripts_never_panic_and_timeouts_never_lie_in_the_past() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let good: Vec<Vec<u8>> = ["OPTIONS", "DESCRIBE", "SETUP", "PLAY"]
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let r = Req {
                method: m.to_string(),
                cseq: i as u32 + 1,
                text: String::new(),
            };
            answer(&r, SDP_AV)
        })
        .collect();
    for round in 0..300u64 {
        let mut cfg = config();
        cfg.transport =
            [TransportMode::Tcp, TransportMode::Udp, TransportMode::Auto][(round % 3) as usize];
        cfg.on_demand = round % 2 == 0;
        let mut now = origin();
        let mut ing = Ingest::new(cfg, now);
        for _ in 0..60 {
            let r = rand();
            let pkt = rtp(r as u16, (r >> 16) as u32, r & 1 == 0, 96, IDR);
            let bytes = good[(r >> 8) as usize % good.len()].clone();
            match r % 12 {
                0 | 1 => ing.handle_input(now, Input::Tcp(&bytes)),
                2 => ing.handle_input(now, Input::Tcp(&interleaved((r >> 4) as u8 % 4, &pkt))),
                3 => ing.handle_input(
                    now,
                    Input::Datagram {
                        local_port: 30000 + (r >> 4) as u16 % 4,
                        from: camera(),
                        data: &pkt,
                    },
                ),
                4 => ing.handle_input(now, Input::Connected { peer: camera() }),
                5 => ing.handle_input(now, Input::ConnectFailed(IngestError::Closed)),
                6 => ing.handle_input(
                    now,
                    Input::Bound {
                        rtp_ports: vec![30000, 30002],
                    },
                ),
                7 => ing.handle_input(now, Input::BindFailed),
                8 => ing.handle_input(now, Input::Demand((r >> 4) as usize % 3)),
                9 => ing.handle_input(now, Input::TcpClosed),
                _ => {
                    now += Duration::from_millis((r >> 4) % 20_000);
                    ing.handle_timeout(now);
                }
            }
            let mut next = None;
            for _ in 0..10_000 {
                if let Output::Timeout(t) = ing.poll_output() {
                    next = Some(t);
                    break;
                }
            }
            let next = next.expect("poll_output reaches its timeout");
            assert!(next >= now, "round {round}: a timeout in the past");
        }
        ing.handle_input(now, Input::Close);
        assert!(ing.is_stopped());
    }
}

/// An RTP packet of `ssrc`.
fn rtp_of(ssrc: u32, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = rtp(seq, ts, marker, 96, payload);
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p
}

/// A sender report (RTCP) of the camera's stream.
fn sender_report() -> Vec<u8> {
    let mut p = vec![0x80, 200, 0x00, 0x06];
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(&[0u8; 20]);
    p
}

/// (foreign datagrams, packets of another SSRC) dropped, from the counters handed out.
fn dropped(rig: &Rig) -> (u64, u64) {
    rig.events.iter().fold((0, 0), |(f, s), e| match e {
        Event::Counters {
            foreign,
            stray_ssrc,
            ..
        } => (f + foreign, s + stray_ssrc),
        _ => (f, s),
    })
}

impl Rig {
    /// A datagram from `from` to our port `local_port`.
    fn datagram(&mut self, local_port: u16, from: SocketAddr, data: &[u8]) {
        self.input(Input::Datagram {
            local_port,
            from,
            data,
        });
    }

    /// A keyframe (STAP-A with SPS/PPS, then the IDR) from `from` to our RTP port.
    fn keyframe_udp(&mut self, from: SocketAddr, seq: u16, ts: u32) {
        self.datagram(30000, from, &rtp(seq, ts, false, 96, &stap_a()));
        self.datagram(30000, from, &rtp(seq + 1, ts, true, 96, IDR));
    }
}

fn udp_rig() -> Rig {
    let mut cfg = config();
    cfg.transport = TransportMode::Udp;
    let mut rig = Rig::new(cfg);
    rig.play(SDP_H264);
    rig.take_actions();
    rig
}

#[test]
fn udp_from_a_port_the_camera_did_not_name_is_dropped_and_counted() {
    let mut rig = udp_rig();
    // The camera answered SETUP with server_port=6970-6971.
    let other_port = SocketAddr::from(([192, 0, 2, 10], 7000));
    rig.keyframe_udp(other_port, 1, 0);
    assert!(rig.frames().is_empty());
    assert_eq!(rig.ing.state(), &SourceState::Connecting);
    assert_eq!(dropped(&rig), (2, 0));
    // RTCP must come from the camera's RTCP port, not its RTP port.
    rig.datagram(
        30001,
        SocketAddr::from(([192, 0, 2, 10], 6970)),
        &sender_report(),
    );
    // Another address, right port.
    let stranger = SocketAddr::from(([198, 51, 100, 7], 6970));
    rig.keyframe_udp(stranger, 1, 0);
    assert_eq!(dropped(&rig), (5, 0));
    // The camera's own ports.
    rig.keyframe_udp(SocketAddr::from(([192, 0, 2, 10], 6970)), 1, 0);
    rig.datagram(
        30001,
        SocketAddr::from(([192, 0, 2, 10], 6971)),
        &sender_report(),
    );
    assert_eq!(rig.frames().len(), 1);
    assert_eq!(rig.ing.state(), &SourceState::Live);
    assert_eq!(dropped(&rig), (5, 0));
    // A port nobody bound for this session (or a datagram left over from the last).
    rig.datagram(
        30010,
        SocketAddr::from(([192, 0, 2, 10], 6970)),
        &sender_report(),
    );
    assert_eq!(dropped(&rig), (5, 0));
}

#[test]
fn udp_from_a_camera_that_names_no_server_port_is_taken_from_any_port() {
    let mut cfg = config();
    cfg.transport = TransportMode::Udp;
    let mut rig = Rig::new(cfg);
    rig.connect();
    rig.serve_with(SDP_H264, |r| {
        (r.method == "SETUP").then(|| {
            resp(
                r.cseq,
                "200 OK",
                &[
                    "Session: 1234;timeout=60",
                    "Transport: RTP/AVP;unicast;client_port=30000-30001",
                ],
                "",
            )
        })
    });
    assert!(rig.log.iter().any(|m| m == "PLAY"));
    rig.keyframe_udp(SocketAddr::from(([192, 0, 2, 10], 41000)), 1, 0);
    assert_eq!(rig.frames().len(), 1);
    // Still the camera's address only.
    rig.keyframe_udp(SocketAddr::from(([198, 51, 100, 7], 41000)), 3, 3000);
    assert_eq!(rig.frames().len(), 1);
    assert_eq!(dropped(&rig), (2, 0));
}

#[test]
fn new_ssrc_is_ignored_until_the_old_is_silent_a_second_then_taken() {
    let mut rig = Rig::new(config());
    rig.play(SDP_H264);
    rig.keyframe_tcp(1, 0);
    assert_eq!(rig.frames().len(), 1);
    // An intruder's keyframe while the camera sends: dropped, counted.
    rig.run_for(SECOND / 2);
    rig.feed(&interleaved(0, &rtp_of(0xBAD, 500, 777, false, &stap_a())));
    rig.feed(&interleaved(0, &rtp_of(0xBAD, 501, 777, true, IDR)));
    assert_eq!(rig.frames().len(), 1);
    assert_eq!(dropped(&rig), (0, 2));
    // The camera goes on.
    rig.run_for(SECOND / 10);
    rig.feed(&interleaved(0, &rtp(3, 4500, true, 96, P_SLICE)));
    assert_eq!(rig.frames().len(), 2);
    let before = rig.frames().iter().map(|f| f.pts).max().expect("frames");
    // 0.9 s of silence: still locked.
    rig.run_for(SECOND * 9 / 10);
    rig.feed(&interleaved(0, &rtp_of(0xBAD, 502, 9000, true, P_SLICE)));
    assert_eq!(dropped(&rig), (0, 3));
    // A second of silence: the new SSRC is taken from its next keyframe on.
    rig.run_for(SECOND / 10);
    rig.feed(&interleaved(0, &rtp_of(0xBAD, 503, 12_000, true, P_SLICE)));
    assert_eq!(dropped(&rig), (0, 3));
    assert_eq!(rig.frames().len(), 2, "not a keyframe: waits for one");
    rig.feed(&interleaved(
        0,
        &rtp_of(0xBAD, 504, 15_000, false, &stap_a()),
    ));
    rig.feed(&interleaved(0, &rtp_of(0xBAD, 505, 15_000, true, IDR)));
    let frames = rig.frames();
    assert_eq!(frames.len(), 3);
    let after = frames[2];
    assert!(after.keyframe);
    // Continued after the old stream's last frame by the second of silence.
    assert!(
        after.pts >= before + 90_000 && after.pts < before + 2 * 90_000,
        "{} vs {before}",
        after.pts
    );
    // And now the old SSRC is the stranger.
    rig.feed(&interleaved(0, &rtp(4, 9000, true, 96, P_SLICE)));
    assert_eq!(rig.frames().len(), 3);
    assert_eq!(dropped(&rig), (0, 4));
    assert_eq!(rig.ing.state(), &SourceState::Live);
}

#[test]
fn rtcp_and_dropped_packets_do_not_keep_a_silent_camera_alive() {
    // UDP: sender reports from the camera's RTCP port, RTP from foreign senders.
    let mut rig = udp_rig();
    let cam_rtp = SocketAddr::from(([192, 0, 2, 10], 6970));
    let cam_rtcp = SocketAddr::from(([192, 0, 2, 10], 6971));
    rig.keyframe_udp(cam_rtp, 1, 0);
    assert_eq!(rig.ing.state(), &SourceState::Live);
    for i in 0..19u16 {
        rig.run_for(SECOND / 2);
        rig.datagram(30001, cam_rtcp, &sender_report());
        let p = rtp(3 + i, 3000 * u32::from(i), true, 96, P_SLICE);
        rig.datagram(30000, SocketAddr::from(([192, 0, 2, 10], 7000)), &p);
        rig.datagram(30000, SocketAddr::from(([198, 51, 100, 7], 6970)), &p);
    }
    assert_eq!(rig.disconnects(), 0);
    rig.run_for(SECOND / 2);
    assert_eq!(rig.disconnects(), 1);
    assert!(
        shown_errors(&rig)
            .iter()
            .any(|e| e == "no media from the camera for 10s"),
        "{:?}",
        shown_errors(&rig)
    );

    // TCP: sender reports on the RTCP channel, RTP on a channel no SETUP gave, and an
    // intruder's SSRC inside the second it cannot take over yet.
    let mut rig = Rig::new(config());
    rig.play(SDP_H264);
    rig.keyframe_tcp(1, 0);
    for i in 0..19u16 {
        rig.run_for(SECOND / 2);
        rig.feed(&interleaved(1, &sender_report()));
        rig.feed(&interleaved(4, &rtp(3 + i, 0, true, 96, P_SLICE)));
        if i == 0 {
            rig.feed(&interleaved(0, &rtp_of(0xBAD, 9, 0, true, P_SLICE)));
        }
    }
    assert_eq!(dropped(&rig), (0, 1));
    assert_eq!(rig.disconnects(), 0);
    rig.run_for(SECOND / 2);
    assert_eq!(rig.disconnects(), 1);
}
