//! The RTSP/1.0 client session that pulls one camera: a sans-IO state machine.
//!
//! The driver owns the TCP connection and the clock. It feeds what it reads with
//! [`Session::handle_input`], calls [`Session::handle_timeout`] when the last
//! [`Output::Timeout`] passes, and drains [`Session::poll_output`] after every input
//! until it returns a timeout: [`Output::Transmit`] bytes go to the camera,
//! [`Output::Event`]s describe progress and carry interleaved RTP/RTCP.
//!
//! The conversation: `OPTIONS` (is `GET_PARAMETER` supported?), `DESCRIBE` (SDP →
//! [`Event::Described`]); then the driver picks the transport with [`Session::setup`]:
//! one `SETUP` per usable track, `PLAY` → [`Event::Playing`]; keep-alives at half the
//! session timeout; `TEARDOWN` on [`Session::teardown`]. One request is outstanding at a
//! time; 401 challenges are answered (Basic or Digest) and every later request carries
//! `Authorization`. Requests the camera sends on the connection are answered at once.
//! Errors end the session: [`Session::handle_input`] and [`Session::poll_output`] return
//! them, after what was already queued, from then on.
//!
//! Time: every input takes `now` ([`Session::handle_input`], [`Session::handle_timeout`],
//! [`Session::setup`], [`Session::teardown`]); a request an input sets in motion is
//! stamped with that input's `now`: its response timeout, and the keep-alive period after
//! `PLAY`, start there. [`Session::poll_output`] reads no time.

use super::auth::{self, Authenticator, Challenge, Credentials};
use super::message::{Item, Limits, Method, Reader, Request, Response, RtspError, header};
use super::sdp::{Sdp, SdpError};
use super::url::{self, RtspUrl};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use super::sdp::SetupTrack;

/// How long a camera has to answer a request unless configured otherwise.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Session timeout when the camera's `Session` header gives none (RFC 2326 §12.37).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(60);
/// Shortest keep-alive interval, whatever the camera says.
const MIN_KEEPALIVE: Duration = Duration::from_secs(1);
/// Longest session timeout believed (a larger one still gets a keep-alive this often).
const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(3600);
/// How often a 401 with `stale=true` is answered with the new nonce, per request.
const MAX_STALE_RETRIES: u32 = 3;
/// The timeout reported when nothing is scheduled (waiting for the driver, or closed).
const IDLE: Duration = Duration::from_secs(3600);

/// What a session needs to know about its camera.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The camera URL; its user and password are used when `credentials` is `None`.
    pub url: RtspUrl,
    /// Credentials; override those in the URL.
    pub credentials: Option<Credentials>,
    /// How long the camera has to answer each request.
    pub response_timeout: Duration,
    /// Seed of the Digest client nonce.
    pub seed: u64,
    /// `User-Agent` of every request.
    pub user_agent: String,
}

impl SessionConfig {
    /// Defaults for `url`: its own credentials, 10 s to answer, seed 0, corecast's
    /// user agent.
    pub fn new(url: RtspUrl) -> SessionConfig {
        SessionConfig {
            url,
            credentials: None,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            seed: 0,
            user_agent: super::message::USER_AGENT.to_string(),
        }
    }
}

/// How RTP is to flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Interleaved on the RTSP connection (`RTP/AVP/TCP`), channels `2i`, `2i+1` for the
    /// i-th track set up (the camera may choose others).
    Tcp,
    /// UDP to the driver's sockets.
    Udp {
        /// One even RTP port per track to set up, in order (RTCP on the port above).
        /// Tracks beyond the list are not set up.
        client_rtp_ports: Vec<u16>,
    },
}

/// Where a set-up track's packets come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayingTrack {
    /// The track: position among the usable tracks of [`Event::Described`].
    pub track: usize,
    /// TCP: the interleaved (RTP, RTCP) channels.
    pub interleaved: Option<(u8, u8)>,
    /// UDP: the camera's (RTP, RTCP) ports.
    pub server_ports: Option<(u16, u16)>,
    /// UDP: the address the camera sends from, if it says (`source=`).
    pub source: Option<String>,
    /// The SSRC the camera announced, if any.
    pub ssrc: Option<u32>,
}

/// What [`Session::poll_output`] hands out.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Bytes to write to the camera.
    Transmit(Bytes),
    /// Something happened.
    Event(Event),
    /// Nothing more until this time (or new input): call [`Session::handle_timeout`] then.
    Timeout(Instant),
}

/// Progress of the session.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The camera's SDP is read; call [`Session::setup`] next.
    Described {
        /// The usable tracks, ids in order.
        tracks: Vec<SetupTrack>,
        /// Why each other media section is left out
        /// (`application/vnd.onvif.metadata: not a media codec`).
        skipped: Vec<String>,
    },
    /// `PLAY` succeeded.
    Playing {
        /// Each track set up, in order.
        tracks: Vec<PlayingTrack>,
        /// How often the session sends a keep-alive (half the session timeout).
        keepalive: Duration,
        /// The camera's `Server` header.
        server: Option<String>,
    },
    /// An interleaved RTP packet. May come before [`Event::Playing`]: some cameras send
    /// media before they answer `PLAY`.
    Rtp {
        /// Position among the usable tracks.
        track: usize,
        /// The packet.
        data: Bytes,
    },
    /// An interleaved RTCP packet (compound).
    Rtcp {
        /// Position among the usable tracks.
        track: usize,
        /// The packet.
        data: Bytes,
    },
    /// After [`Session::teardown`]: the camera answered `TEARDOWN` (or did not in time,
    /// or there was no session to tear down). The connection may be closed.
    TornDown,
}

/// Why the session ended. Shown to the operator as the stream state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A 401 and no credentials configured.
    #[error("camera requires a user name and password (401) and none is configured")]
    AuthRequired,
    /// A 401 to a request that carried credentials.
    #[error("camera rejected the credentials (401 after authenticating as '{user}')")]
    WrongCredentials {
        /// The user name sent.
        user: String,
    },
    /// The camera's challenge cannot be answered.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// 461 to a UDP `SETUP`: the driver should retry over TCP.
    #[error("camera refused RTP over UDP (461 Unsupported Transport)")]
    UnsupportedTransport,
    /// Any other unsuccessful answer.
    #[error("camera answered {method} with {status} {reason}")]
    Status {
        /// The request.
        method: Method,
        /// Status code.
        status: u16,
        /// Reason phrase.
        reason: String,
    },
    /// A 3xx with `Location`; not followed here (the driver reconnects there). The
    /// message shows the location [redacted](crate::rtsp::proto::url::redact_location).
    #[error("camera redirects {method} to {} ({status})", crate::rtsp::proto::url::redact_location(.location))]
    Redirect {
        /// The request.
        method: Method,
        /// Status code.
        status: u16,
        /// Where to.
        location: String,
    },
    /// Nothing in the SDP corecast can play.
    #[error("camera offers no track corecast can play ({0})")]
    NoUsableTracks(String),
    /// The camera did not answer in time.
    #[error("camera did not answer {method} within {after:?}")]
    Timeout {
        /// The request.
        method: Method,
        /// The response timeout.
        after: Duration,
    },
    /// The bytes from the camera are not RTSP.
    #[error("camera sent something that is not RTSP: {0}")]
    Protocol(#[from] RtspError),
    /// The DESCRIBE body is not usable SDP.
    #[error(transparent)]
    Sdp(#[from] SdpError),
    /// [`Session::setup`] was called in a way that sets up nothing (a bug in the
    /// driver, not the camera).
    #[error("setup() sets up no track: {0}")]
    InvalidSetup(&'static str),
}

/// What the session waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    ExpectOptions,
    ExpectDescribe,
    /// Described; waiting for the driver's [`Session::setup`].
    ExpectSetupCall,
    /// The answer to the `SETUP` of `plan[pos]`.
    ExpectSetup {
        pos: usize,
    },
    ExpectPlay,
    Playing,
    ExpectTeardown,
    Closed,
}

/// The request waiting for its answer.
#[derive(Debug)]
struct Pending {
    cseq: u32,
    /// As sent, without `Authorization` (added at each send).
    request: Request,
    /// Whether it carried `Authorization`.
    authorized: bool,
    stale_retries: u32,
    /// `None` until the input's `now` stamps it.
    deadline: Option<Instant>,
    keepalive: bool,
}

/// An RTSP client session. See the module documentation for the run loop.
#[derive(Debug)]
pub struct Session {
    url: RtspUrl,
    credentials: Option<Credentials>,
    response_timeout: Duration,
    seed: u64,
    user_agent: String,

    state: State,
    reader: Reader,
    buf: BytesMut,
    out: VecDeque<Output>,
    error: Option<SessionError>,

    cseq: u32,
    pending: Option<Pending>,
    auth: Option<Authenticator>,
    /// Authenticators built so far (varies the client nonce).
    auth_rounds: u64,

    get_parameter: bool,
    /// URL of `PLAY`, `TEARDOWN` and keep-alives.
    aggregate: String,
    tracks: Vec<SetupTrack>,
    transport: Transport,
    /// Indexes into `tracks` to set up, in order.
    plan: Vec<usize>,
    playing: Vec<PlayingTrack>,
    session_id: Option<String>,
    keepalive: Duration,
    keepalive_at: Option<Instant>,
    /// `PLAY` succeeded in [`Session::handle_input`]: the keep-alive period starts at
    /// its `now`.
    keepalive_arm: bool,
    /// The camera's `Server` header, from its latest answer that had one.
    server: Option<String>,
    /// The `now` of the last input.
    now: Instant,
}

impl Session {
    /// A session that starts with `OPTIONS`.
    pub fn new(cfg: SessionConfig, now: Instant) -> Session {
        let credentials = cfg.credentials.or_else(|| {
            cfg.url.user.as_ref().map(|user| Credentials {
                user: user.clone(),
                password: cfg.url.password.clone().unwrap_or_default(),
            })
        });
        let aggregate = cfg.url.request_uri();
        let mut s = Session {
            url: cfg.url,
            credentials,
            response_timeout: cfg.response_timeout,
            seed: cfg.seed,
            user_agent: cfg.user_agent,
            state: State::ExpectOptions,
            reader: Reader::new(Limits::default()),
            buf: BytesMut::new(),
            out: VecDeque::new(),
            error: None,
            cseq: 0,
            pending: None,
            auth: None,
            auth_rounds: 0,
            get_parameter: false,
            aggregate,
            tracks: Vec::new(),
            transport: Transport::Tcp,
            plan: Vec::new(),
            playing: Vec::new(),
            session_id: None,
            keepalive: DEFAULT_SESSION_TIMEOUT / 2,
            keepalive_at: None,
            keepalive_arm: false,
            server: None,
            now,
        };
        let uri = s.url.request_uri();
        s.send(Request::new(Method::Options, uri), false);
        s.stamp(now);
        s
    }

    /// The usable tracks, once described.
    pub fn tracks(&self) -> &[SetupTrack] {
        &self.tracks
    }

    /// The tracks set up so far, in order (the camera's ports or channels of each), also
    /// before `PLAY` succeeded.
    pub fn set_up_tracks(&self) -> &[PlayingTrack] {
        &self.playing
    }

    /// The camera's `Server` header, from its latest answer that had one (a probe
    /// shows it beside the tracks of [`Event::Described`]).
    pub fn server(&self) -> Option<&str> {
        self.server.as_deref()
    }

    /// The camera's session id, once a `SETUP` succeeded.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// Bytes read from the camera's connection at `now`. Only the bytes of one incomplete
    /// message or frame are kept between calls (bounded by [`Limits::default`]). Returns
    /// the error that ended the session, by these bytes or before.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), SessionError> {
        self.now = self.now.max(now);
        if self.state != State::Closed && self.error.is_none() {
            self.buf.extend_from_slice(data);
            while self.error.is_none() {
                match self.reader.read(&mut self.buf) {
                    Ok(Some(item)) => self.handle_item(item),
                    Ok(None) => break,
                    Err(e) => self.fail(e.into()),
                }
            }
            self.stamp(now);
        }
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The next output; call until it returns [`Output::Timeout`]. Once the session
    /// failed, returns the error (after any output queued before it) on every call.
    pub fn poll_output(&mut self) -> Result<Output, SessionError> {
        if let Some(o) = self.out.pop_front() {
            return Ok(o);
        }
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let now = self.now;
        let next = match (&self.pending, self.state, self.keepalive_at) {
            (Some(p), _, _) => p.deadline.unwrap_or(now),
            (None, State::Playing, Some(at)) => at,
            _ => now + IDLE,
        };
        Ok(Output::Timeout(next))
    }

    /// Sets up the described tracks over `transport`, then plays. Only valid after
    /// [`Event::Described`]; ignored at any other time.
    pub fn setup(&mut self, transport: Transport, now: Instant) {
        self.now = self.now.max(now);
        if self.error.is_some() || self.state != State::ExpectSetupCall {
            return;
        }
        let n = match &transport {
            Transport::Tcp => self.tracks.len(),
            Transport::Udp { client_rtp_ports } => client_rtp_ports.len().min(self.tracks.len()),
        };
        if n == 0 {
            self.fail(SessionError::InvalidSetup("no UDP client port given"));
            return;
        }
        self.plan = (0..n).collect();
        self.transport = transport;
        self.send_setup(0);
        self.stamp(now);
    }

    /// Sends due keep-alives and fails a request the camera did not answer in time.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.error.is_some() || self.state == State::Closed {
            return;
        }
        self.stamp(now);
        if let Some(p) = &self.pending {
            if p.deadline.is_none_or(|d| now < d) {
                return;
            }
            let method = p.request.method;
            self.pending = None;
            if self.state == State::ExpectTeardown {
                self.close();
            } else {
                self.fail(SessionError::Timeout {
                    method,
                    after: self.response_timeout,
                });
            }
            return;
        }
        if self.state == State::Playing && self.keepalive_at.is_some_and(|at| now >= at) {
            let method = if self.get_parameter {
                Method::GetParameter
            } else {
                Method::Options
            };
            let req = self.request(method, self.aggregate.clone());
            self.send(req, true);
            self.stamp(now);
            self.keepalive_at = Some(now + self.keepalive);
        }
    }

    /// Ends the session: `TEARDOWN` if the camera gave a session, then
    /// [`Event::TornDown`].
    pub fn teardown(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.error.is_some() || matches!(self.state, State::Closed | State::ExpectTeardown) {
            return;
        }
        if self.session_id.is_some() {
            self.state = State::ExpectTeardown;
            let req = self.request(Method::Teardown, self.aggregate.clone());
            self.send(req, false);
            self.stamp(now);
        } else {
            self.pending = None;
            self.close();
        }
    }

    /// Frames `data` for channel `channel` of the RTSP connection (RTCP receiver
    /// reports over TCP). Empty (nothing to write) if `data` is longer than a frame can
    /// be (65535 bytes).
    pub fn interleave(channel: u8, data: &[u8]) -> Bytes {
        let Ok(len) = u16::try_from(data.len()) else {
            return Bytes::new();
        };
        let mut out = BytesMut::with_capacity(4 + data.len());
        out.put_u8(b'$');
        out.put_u8(channel);
        out.put_u16(len);
        out.put_slice(data);
        out.freeze()
    }

    /// Starts the timers of what an input set in motion.
    fn stamp(&mut self, now: Instant) {
        if let Some(p) = &mut self.pending
            && p.deadline.is_none()
        {
            p.deadline = Some(now + self.response_timeout);
        }
        if self.keepalive_arm {
            self.keepalive_arm = false;
            self.keepalive_at = Some(now + self.keepalive);
        }
    }

    fn fail(&mut self, e: SessionError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
        self.pending = None;
        self.buf.clear();
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.keepalive_at = None;
        self.out.push_back(Output::Event(Event::TornDown));
    }

    /// A request with the `Session` header, once there is one.
    fn request(&self, method: Method, uri: String) -> Request {
        let mut req = Request::new(method, uri);
        if let Some(id) = &self.session_id {
            req.headers.push(("Session".to_string(), id.clone()));
        }
        req
    }

    /// Queues a request; its deadline is set by the next [`Session::stamp`].
    fn send(&mut self, request: Request, keepalive: bool) {
        self.send_attempt(request, keepalive, 0);
    }

    fn send_attempt(&mut self, request: Request, keepalive: bool, stale: u32) {
        self.cseq = self.cseq.wrapping_add(1);
        let mut wire = request.clone();
        if let Some(a) = &mut self.auth {
            let value = a.authorization(request.method.as_str(), &request.uri);
            wire.headers.push(("Authorization".to_string(), value));
        }
        self.out
            .push_back(Output::Transmit(wire.to_bytes(self.cseq, &self.user_agent)));
        self.pending = Some(Pending {
            cseq: self.cseq,
            request,
            authorized: self.auth.is_some(),
            stale_retries: stale,
            deadline: None,
            keepalive,
        });
    }

    fn handle_item(&mut self, item: Item) {
        match item {
            Item::Interleaved { channel, data } => {
                let found = self.playing.iter().find_map(|p| {
                    let (rtp, rtcp) = p.interleaved?;
                    (channel == rtp || channel == rtcp).then_some((p.track, channel == rtp))
                });
                // Frames on channels no SETUP gave are dropped.
                if let Some((track, is_rtp)) = found {
                    let ev = if is_rtp {
                        Event::Rtp { track, data }
                    } else {
                        Event::Rtcp { track, data }
                    };
                    self.out.push_back(Output::Event(ev));
                }
            }
            Item::Request {
                method, headers, ..
            } => {
                let (status, reason) = match method {
                    Method::Options | Method::GetParameter | Method::SetParameter => (200, "OK"),
                    _ => (501, "Not Implemented"),
                };
                let mut resp = Response {
                    status,
                    reason: reason.to_string(),
                    headers: Vec::new(),
                    body: Bytes::new(),
                };
                for name in ["CSeq", "Session"] {
                    if let Some(v) = header(&headers, name) {
                        resp.headers.push((name.to_string(), v.to_string()));
                    }
                }
                self.out.push_back(Output::Transmit(resp.to_bytes()));
            }
            Item::Response(r) => self.handle_response(r),
        }
    }

    fn handle_response(&mut self, r: Response) {
        let Some(p) = &self.pending else {
            return;
        };
        // An answer to an earlier request (one we gave up on, or a retried one).
        if r.cseq().is_some_and(|c| c != p.cseq) {
            return;
        }
        let Some(p) = self.pending.take() else {
            return;
        };
        if let Some(server) = r.header("Server") {
            self.server = Some(server.to_string());
        }
        let method = p.request.method;
        if r.status == 401 {
            self.unauthorized(p, &r);
            return;
        }
        let ok = (200..300).contains(&r.status);
        if p.keepalive {
            // Any answer shows the camera is alive, except that the session is gone.
            if r.status == 454 {
                self.fail(status_error(method, &r));
            }
            return;
        }
        if (300..400).contains(&r.status)
            && let Some(location) = r.header("Location")
        {
            self.fail(SessionError::Redirect {
                method,
                status: r.status,
                location: location.to_string(),
            });
            return;
        }
        match self.state {
            State::ExpectOptions => {
                // OPTIONS only tells whether GET_PARAMETER works; a camera that refuses
                // it may still DESCRIBE.
                if ok {
                    self.get_parameter = r.header("Public").is_some_and(|p| {
                        p.split(',')
                            .any(|m| m.trim().eq_ignore_ascii_case("GET_PARAMETER"))
                    });
                }
                self.state = State::ExpectDescribe;
                let mut req = Request::new(Method::Describe, self.url.request_uri());
                req.headers
                    .push(("Accept".to_string(), "application/sdp".to_string()));
                self.send(req, false);
            }
            State::ExpectDescribe if ok => self.described(&r),
            State::ExpectSetup { pos } if ok => self.set_up(pos, &r),
            State::ExpectSetup { .. }
                if r.status == 461 && matches!(self.transport, Transport::Udp { .. }) =>
            {
                self.fail(SessionError::UnsupportedTransport);
            }
            State::ExpectPlay if ok => {
                self.state = State::Playing;
                self.keepalive_arm = true;
                self.out.push_back(Output::Event(Event::Playing {
                    tracks: self.playing.clone(),
                    keepalive: self.keepalive,
                    server: r.header("Server").map(str::to_string),
                }));
            }
            State::ExpectTeardown => self.close(),
            _ => self.fail(status_error(method, &r)),
        }
    }

    /// A 401: answer the challenge once, or with a new nonce when it was stale.
    fn unauthorized(&mut self, p: Pending, r: &Response) {
        let Some(creds) = self.credentials.clone() else {
            self.fail(SessionError::AuthRequired);
            return;
        };
        let challenge = match auth::parse_challenges(r.headers_named("WWW-Authenticate")) {
            Ok(c) => c,
            Err(e) => {
                self.fail(e.into());
                return;
            }
        };
        let mut stale_retries = p.stale_retries;
        if p.authorized {
            let stale = matches!(&challenge, Challenge::Digest(d) if d.stale);
            if !stale || stale_retries >= MAX_STALE_RETRIES {
                self.fail(SessionError::WrongCredentials { user: creds.user });
                return;
            }
            stale_retries += 1;
        }
        self.auth_rounds += 1;
        let seed = self.seed.wrapping_add(self.auth_rounds);
        self.auth = Some(Authenticator::new(creds, challenge, seed));
        self.send_attempt(p.request, p.keepalive, stale_retries);
    }

    /// A successful DESCRIBE: read the SDP and resolve the control URLs.
    fn described(&mut self, r: &Response) {
        let sdp = match Sdp::parse(&r.body) {
            Ok(s) => s,
            Err(e) => {
                self.fail(e.into());
                return;
            }
        };
        let base = r
            .header("Content-Base")
            .or_else(|| r.header("Content-Location"))
            .filter(|b| url::is_absolute(b))
            .map(str::to_string)
            .unwrap_or_else(|| self.url.request_uri());
        // As ffmpeg does: an absolute session-level control is the aggregate URL and
        // the base of relative media controls; anything else means the base.
        self.aggregate = match &sdp.control {
            Some(c) if url::is_absolute(c) => c.clone(),
            _ => base,
        };
        let (tracks, skipped) = sdp.setup_tracks(&self.aggregate);
        self.tracks = tracks;
        if self.tracks.is_empty() {
            let offered = if skipped.is_empty() {
                "the SDP has no media sections".to_string()
            } else {
                skipped.join("; ")
            };
            self.fail(SessionError::NoUsableTracks(offered));
            return;
        }
        self.state = State::ExpectSetupCall;
        self.out.push_back(Output::Event(Event::Described {
            tracks: self.tracks.clone(),
            skipped,
        }));
    }

    fn send_setup(&mut self, pos: usize) {
        let Some(track) = self.plan.get(pos).and_then(|i| self.tracks.get(*i)) else {
            return;
        };
        let transport = match &self.transport {
            Transport::Tcp => {
                let (rtp, rtcp) = tcp_channels(pos);
                format!("RTP/AVP/TCP;unicast;interleaved={rtp}-{rtcp}")
            }
            Transport::Udp { client_rtp_ports } => {
                let port = client_rtp_ports.get(pos).copied().unwrap_or_default();
                format!(
                    "RTP/AVP;unicast;client_port={port}-{}",
                    port.saturating_add(1)
                )
            }
        };
        let mut req = self.request(Method::Setup, track.control.clone());
        req.headers.push(("Transport".to_string(), transport));
        self.state = State::ExpectSetup { pos };
        self.send(req, false);
    }

    /// A successful SETUP of `plan[pos]`: note session and transport, go on.
    fn set_up(&mut self, pos: usize, r: &Response) {
        if self.session_id.is_none()
            && let Some(value) = r.header("Session")
        {
            let (id, timeout) = parse_session(value);
            if !id.is_empty() {
                self.session_id = Some(id.to_string());
                self.keepalive = (timeout / 2).max(MIN_KEEPALIVE);
            }
        }
        let t = parse_transport(r.header("Transport").unwrap_or(""));
        let tcp = self.transport == Transport::Tcp;
        self.playing.push(PlayingTrack {
            track: self.plan.get(pos).copied().unwrap_or(pos),
            interleaved: tcp.then(|| t.interleaved.unwrap_or_else(|| tcp_channels(pos))),
            server_ports: if tcp { None } else { t.server_ports },
            source: if tcp { None } else { t.source },
            ssrc: t.ssrc,
        });
        if pos + 1 < self.plan.len() {
            self.send_setup(pos + 1);
        } else {
            self.state = State::ExpectPlay;
            let mut req = self.request(Method::Play, self.aggregate.clone());
            req.headers
                .push(("Range".to_string(), "npt=0.000-".to_string()));
            self.send(req, false);
        }
    }
}

fn status_error(method: Method, r: &Response) -> SessionError {
    SessionError::Status {
        method,
        status: r.status,
        reason: r.reason.clone(),
    }
}

/// The interleaved channels asked for the `pos`-th track set up.
fn tcp_channels(pos: usize) -> (u8, u8) {
    let rtp = u8::try_from(pos.saturating_mul(2)).unwrap_or(254);
    (rtp, rtp.saturating_add(1))
}

/// `Session: <id>[;timeout=<seconds>]`.
fn parse_session(value: &str) -> (&str, Duration) {
    let mut parts = value.split(';');
    let id = parts.next().unwrap_or("").trim();
    let timeout = parts
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("timeout"))
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(DEFAULT_SESSION_TIMEOUT, Duration::from_secs)
        .min(MAX_SESSION_TIMEOUT);
    (id, timeout)
}

/// The fields of a SETUP response's `Transport` header the client uses.
#[derive(Debug, Default, PartialEq, Eq)]
struct TransportReply {
    interleaved: Option<(u8, u8)>,
    server_ports: Option<(u16, u16)>,
    source: Option<String>,
    ssrc: Option<u32>,
}

/// Reads `RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=1A2B3C4D` or
/// `RTP/AVP;unicast;client_port=...;server_port=6970-6971;source=192.0.2.1`; fields
/// that do not parse are left out. Only the first transport of a list is read.
fn parse_transport(value: &str) -> TransportReply {
    let first = value.split(',').next().unwrap_or("");
    let mut t = TransportReply::default();
    for param in first.split(';') {
        let Some((k, v)) = param.split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "interleaved" => t.interleaved = parse_pair(v),
            "server_port" => t.server_ports = parse_pair(v),
            "source" if !v.is_empty() => t.source = Some(v.to_string()),
            "ssrc" => t.ssrc = u32::from_str_radix(v, 16).ok(),
            _ => {}
        }
    }
    t
}

/// `a-b`, or `a` meaning `a-(a+1)`.
fn parse_pair<T>(v: &str) -> Option<(T, T)>
where
    T: std::str::FromStr + Copy + TryFrom<u32>,
    u32: From<T>,
{
    match v.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let a: T = v.parse().ok()?;
            let b = T::try_from(u32::from(a) + 1).ok()?;
            Some((a, b))
        }
    }
}

#[cfg(test)]
mod tests;
