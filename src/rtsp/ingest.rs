//! The life of one pulled camera, sans-IO: connect, describe, set up, play, receive,
//! reconnect. The driver (`source::rtsp`) owns the sockets, the clock and name
//! resolution; this core owns every decision.
//!
//! Around one [`Session`] at a time it runs the source's lifecycle:
//!
//! - always-on: connect at start, reconnect after any failure with a backoff that doubles
//!   from [`IngestConfig::retry_min`] to [`IngestConfig::retry_max`] (back to the minimum
//!   after a session that delivered media); wrong or missing credentials wait the
//!   maximum at once, so a camera's login lockout is not provoked;
//! - on-demand: connect while [`Input::Demand`] is above zero, `TEARDOWN`
//!   [`IngestConfig::close_after`] after it fell to zero;
//! - redirects (3xx with `Location`) are followed up to [`MAX_REDIRECTS`] times in a row,
//!   as [`IngestConfig::follow_redirects`] allows (by default to the camera's own host
//!   only); the configured credentials go to the configured host only, a redirect to
//!   another host carries only those written in its `Location`; after a failure the
//!   configured URL is used again. Locations reach logs and errors redacted;
//! - [`TransportMode::Auto`]: UDP first; TCP for good once the camera refuses UDP (461),
//!   no UDP ports are free, or no packet arrives within [`IngestConfig::udp_timeout`];
//! - UDP datagrams are taken only from the camera's address and the ports its `SETUP`
//!   answer named (`server_port=`; a camera that names none is taken from any port of
//!   its address); others are dropped and counted ([`Event::Counters`]). Each track
//!   locks onto its first SSRC; another one is taken only after 1 s of silence of the
//!   locked one (see `media`);
//! - a playing camera that sends no media for [`IngestConfig::read_timeout`] is
//!   reconnected: only RTP of a track's locked SSRC counts (not RTCP, keep-alive
//!   answers or dropped packets); receiver reports every [`RR_INTERVAL`]; NAT punch
//!   datagrams towards the camera's UDP ports;
//! - the stream stays published across reconnects: each track's depacketizer restarts at
//!   its last time plus the wall time that passed, so timestamps stay continuous;
//! - [`Input::Close`] (shutdown) sends `TEARDOWN`.
//!
//! The run loop, as every core of the house: feed [`Ingest::handle_input`] and
//! [`Ingest::handle_timeout`] with `now`, then drain [`Ingest::poll_output`] until it
//! returns [`Output::Timeout`]. Actions ([`Output::Connect`], [`Output::BindUdp`]) are
//! answered with inputs ([`Input::Connected`], [`Input::Bound`], ...).

mod media;

use crate::media::{Frame, Track};
use crate::rtsp::proto::auth::Credentials;
use crate::rtsp::proto::session::{
    self, PlayingTrack, Session, SessionConfig, SessionError, Transport,
};
use crate::rtsp::proto::url::{RtspUrl, redact_location};
use crate::stream::{SourceState, SourceStats};
use bytes::Bytes;
use media::{Counters, Media};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How often receiver reports go to the camera (RFC 3550 allows 5 s minimum).
pub const RR_INTERVAL: Duration = Duration::from_secs(5);
/// Redirects (3xx with `Location`) followed in a row before a failure counts.
pub const MAX_REDIRECTS: u32 = 3;
/// How often the API's counters are refreshed while connected.
const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// The timeout reported when nothing is scheduled.
const IDLE: Duration = Duration::from_secs(3600);
/// A harmless datagram sent to the camera's ports so NATs and firewalls let its RTP in.
pub const PUNCH: [u8; 4] = [0xce, 0xfa, 0xed, 0xfe];

/// How RTP is to flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportMode {
    /// Interleaved on the RTSP connection.
    Tcp,
    /// UDP only.
    Udp,
    /// UDP first, TCP from the first UDP failure on.
    Auto,
}

/// Which redirects (3xx with `Location`) are followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectPolicy {
    /// To the configured camera's host only (any port).
    SameHost,
    /// To any host (the configured credentials still go to the camera's host only).
    Any,
    /// None.
    Never,
}

impl RedirectPolicy {
    /// As written in the config: `same-host`, `any`, `never`.
    pub fn name(self) -> &'static str {
        match self {
            RedirectPolicy::SameHost => "same-host",
            RedirectPolicy::Any => "any",
            RedirectPolicy::Never => "never",
        }
    }
}

/// Settings of one pulled camera, filled by the driver from `[rtsp]` and the stream.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// The stream path, for log lines.
    pub name: String,
    /// The configured camera URL.
    pub url: RtspUrl,
    /// Credentials; override those in the URL.
    pub credentials: Option<Credentials>,
    /// Transport.
    pub transport: TransportMode,
    /// Which redirects are followed.
    pub follow_redirects: RedirectPolicy,
    /// Connect only while someone watches.
    pub on_demand: bool,
    /// On-demand: linger this long after the last viewer left.
    pub close_after: Duration,
    /// Lowest local UDP port for RTP/RTCP pairs.
    pub udp_port_min: u16,
    /// Highest local UDP port for RTP/RTCP pairs.
    pub udp_port_max: u16,
    /// `Auto`: how long to wait for the first UDP packet.
    pub udp_timeout: Duration,
    /// Time a camera has to answer a request.
    pub response_timeout: Duration,
    /// A playing camera silent this long is reconnected.
    pub read_timeout: Duration,
    /// First wait before reconnecting.
    pub retry_min: Duration,
    /// Longest wait between reconnects.
    pub retry_max: Duration,
    /// Seed of Digest client nonces and our RTCP SSRCs (varied per session).
    pub seed: u64,
    /// `User-Agent` of every request.
    pub user_agent: String,
}

/// What the driver feeds in.
#[derive(Debug)]
pub enum Input<'a> {
    /// The TCP connection asked for with [`Output::Connect`] is open, to `peer`.
    Connected {
        /// The camera's address.
        peer: SocketAddr,
    },
    /// The name did not resolve or the connection failed.
    ConnectFailed(IngestError),
    /// Bytes read from the TCP connection.
    Tcp(&'a [u8]),
    /// The camera closed the TCP connection.
    TcpClosed,
    /// Reading or writing the TCP connection failed.
    TcpError(IngestError),
    /// The ports asked for with [`Output::BindUdp`]: one even RTP port per pair, RTCP on
    /// the port above.
    Bound {
        /// RTP ports, in track order.
        rtp_ports: Vec<u16>,
    },
    /// Not enough free port pairs.
    BindFailed,
    /// A datagram on one of the bound ports.
    Datagram {
        /// The port it arrived on.
        local_port: u16,
        /// Who sent it.
        from: SocketAddr,
        /// The datagram.
        data: &'a [u8],
    },
    /// How many want the stream (local viewers plus relaying shards).
    Demand(usize),
    /// Shutdown: `TEARDOWN` and stop.
    Close,
}

/// What [`Ingest::poll_output`] hands out.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Open a TCP connection (the driver resolves the name), answer with
    /// [`Input::Connected`] or [`Input::ConnectFailed`].
    Connect {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// Bind `pairs` RTP/RTCP port pairs in `port_min..=port_max`, answer with
    /// [`Input::Bound`] or [`Input::BindFailed`].
    BindUdp {
        /// Pairs needed.
        pairs: usize,
        /// Lowest port.
        port_min: u16,
        /// Highest port.
        port_max: u16,
    },
    /// Bytes to write to the TCP connection.
    Transmit(Bytes),
    /// A datagram to send from one of the bound ports.
    SendTo {
        /// The bound port to send from.
        from_port: u16,
        /// Where to.
        to: SocketAddr,
        /// The datagram.
        data: Bytes,
    },
    /// Close the TCP connection and release the UDP ports.
    Disconnect,
    /// Something to publish.
    Event(Event),
    /// Nothing more until this time (or new input): call [`Ingest::handle_timeout`].
    Timeout(Instant),
}

/// What the driver publishes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The stream's tracks (new, or their parameters changed).
    Tracks(Vec<Track>),
    /// A frame.
    Frame(Frame),
    /// The GOP cache is stale (the camera went away).
    ClearGop,
    /// The source state changed.
    State(SourceState),
    /// Counters for the API.
    Stats(SourceStats),
    /// Packets, payload bytes and losses since the last `Counters` (for `/metrics`).
    Counters {
        /// RTP packets.
        packets: u64,
        /// RTP bytes.
        bytes: u64,
        /// Packets lost.
        lost: u64,
        /// UDP datagrams dropped for their sender (not the camera's address and ports).
        foreign: u64,
        /// RTP packets dropped for their SSRC (not the one the track is locked on).
        stray_ssrc: u64,
    },
}

/// Why a session (or an attempt) ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The camera's name did not resolve.
    #[error("cannot resolve {host}: {why}")]
    Resolve {
        /// The name.
        host: String,
        /// Why.
        why: String,
    },
    /// The TCP connection could not be opened.
    #[error("cannot connect to {addr}: {why}")]
    Connect {
        /// Where to.
        addr: SocketAddr,
        /// The kind of I/O error.
        kind: std::io::ErrorKind,
        /// Its text.
        why: String,
    },
    /// The camera closed the connection.
    #[error("camera closed the connection")]
    Closed,
    /// Reading or writing the connection failed.
    #[error("connection error: {why}")]
    Io {
        /// The kind of I/O error.
        kind: std::io::ErrorKind,
        /// Its text.
        why: String,
    },
    /// A playing camera sent nothing for this long.
    #[error("no media from the camera for {0:?}")]
    ReadTimeout(Duration),
    /// UDP was set up but no packet came.
    #[error("no UDP packets within {0:?} (camera behind NAT or firewall?)")]
    NoUdp(Duration),
    /// No free port pair.
    #[error("no free UDP port pair in {0}..={1}")]
    NoUdpPorts(u16, u16),
    /// A redirect whose `Location` is not an RTSP URL.
    #[error("bad redirect '{location}': {why}")]
    BadRedirect {
        /// The `Location`, redacted.
        location: String,
        /// Why it does not parse.
        why: String,
    },
    /// A redirect the configuration does not follow.
    #[error("camera redirects to {to}: rtsp.follow_redirects = \"{policy}\"")]
    RedirectRefused {
        /// Where to, redacted.
        to: String,
        /// The policy that refused it.
        policy: &'static str,
    },
    /// The RTSP conversation failed.
    #[error("{0}")]
    Session(#[from] SessionError),
}

impl IngestError {
    /// An I/O error of the connection.
    pub fn io(e: &std::io::Error) -> IngestError {
        IngestError::Io {
            kind: e.kind(),
            why: e.to_string(),
        }
    }

    /// Whether retrying soon cannot help (credentials, a refused redirect): such
    /// failures wait the longest.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            IngestError::Session(SessionError::WrongCredentials { .. })
                | IngestError::Session(SessionError::AuthRequired)
                | IngestError::RedirectRefused { .. }
        )
    }

    /// Whether TCP may work where UDP did not.
    fn is_udp_failure(&self) -> bool {
        matches!(
            self,
            IngestError::NoUdp(_)
                | IngestError::NoUdpPorts(..)
                | IngestError::Session(SessionError::UnsupportedTransport)
        )
    }
}

/// What the source is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// On-demand and nobody watches.
    ExpectDemand,
    /// Waiting to reconnect.
    Backoff { at: Instant },
    /// Waiting for the driver's connect result.
    ExpectConnect,
    /// Connected: see `conn`.
    Connected,
    /// Shut down.
    Stopped,
}

/// How a connected session ends.
enum End {
    /// On-demand: nobody watched for `close_after`.
    Idle,
    /// Shutdown.
    Shutdown,
    /// A failure: back off and retry.
    Failed(IngestError),
}

/// One connected session.
struct Conn {
    session: Session,
    camera: IpAddr,
    udp: bool,
    /// Bound RTP ports, per track set up (RTCP on the port above).
    udp_ports: Vec<u16>,
    our_ssrc: u32,
    /// The session's own next timeout.
    session_next: Instant,
    /// Since when, and which tracks, once `PLAY` succeeded.
    playing: Option<(Instant, Vec<PlayingTrack>)>,
    live: bool,
    rr_at: Option<Instant>,
    stats_at: Instant,
    last_stats: Instant,
    /// On-demand: since when nobody watches.
    idle_since: Option<Instant>,
    /// A foreign datagram was logged (one line per session, not one per packet).
    foreign_logged: bool,
}

/// One pulled camera. See the module documentation for the run loop.
pub struct Ingest {
    cfg: IngestConfig,
    /// The URL in use (a redirect's until a session fails).
    url: RtspUrl,
    redirects: u32,
    use_tcp: bool,
    backoff: Duration,
    sessions: u64,
    demand: usize,
    phase: Phase,
    conn: Option<Conn>,
    media: Media,
    state: SourceState,
    out: VecDeque<Output>,
    now: Instant,
}

impl Ingest {
    /// A source that connects at once, or (on-demand) at the first demand.
    pub fn new(cfg: IngestConfig, now: Instant) -> Ingest {
        let mut ing = Ingest {
            url: cfg.url.clone(),
            redirects: 0,
            use_tcp: cfg.transport == TransportMode::Tcp,
            backoff: cfg.retry_min,
            sessions: 0,
            demand: 0,
            phase: Phase::ExpectDemand,
            conn: None,
            media: Media::new(now),
            state: SourceState::Idle,
            out: VecDeque::new(),
            now,
            cfg,
        };
        if !ing.cfg.on_demand {
            ing.state = SourceState::Connecting;
            ing.connect();
        }
        ing
    }

    /// The source state (as last emitted with [`Event::State`]).
    pub fn state(&self) -> &SourceState {
        &self.state
    }

    /// The URL in use (differs from the configured one after a redirect).
    pub fn url(&self) -> &RtspUrl {
        &self.url
    }

    /// Whether the source stopped for good (after [`Input::Close`]).
    pub fn is_stopped(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// One input at `now`.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        self.now = self.now.max(now);
        match input {
            Input::Connected { peer } => self.connected(peer),
            Input::ConnectFailed(e) => {
                if self.phase == Phase::ExpectConnect {
                    self.failed(e);
                }
            }
            Input::Tcp(data) => {
                if let Some(c) = &mut self.conn {
                    let _ = c.session.handle_input(self.now, data);
                    self.pump_session();
                }
            }
            Input::TcpClosed => self.end(End::Failed(IngestError::Closed), false),
            Input::TcpError(e) => self.end(End::Failed(e), false),
            Input::Bound { rtp_ports } => self.bound(rtp_ports),
            Input::BindFailed => {
                let e = IngestError::NoUdpPorts(self.cfg.udp_port_min, self.cfg.udp_port_max);
                self.end(End::Failed(e), false);
            }
            Input::Datagram {
                local_port,
                from,
                data,
            } => self.datagram(local_port, from, data),
            Input::Demand(n) => self.set_demand(n),
            Input::Close => match self.phase {
                Phase::Connected => self.end(End::Shutdown, true),
                _ => self.phase = Phase::Stopped,
            },
        }
        self.check_live();
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        let now = self.now;
        match self.phase {
            Phase::Backoff { at } if now >= at => self.backoff_over(),
            Phase::Connected => {
                if let Some(c) = &mut self.conn {
                    c.session.handle_timeout(now);
                }
                self.pump_session();
                self.connected_timers();
            }
            _ => {}
        }
    }

    /// The next output; call until it returns [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        let c = std::mem::take(&mut self.media.counters);
        if c != Counters::default() {
            return Output::Event(Event::Counters {
                packets: c.packets,
                bytes: c.bytes,
                lost: c.lost,
                foreign: c.foreign,
                stray_ssrc: c.stray_ssrc,
            });
        }
        Output::Timeout(self.next_timeout())
    }

    fn next_timeout(&self) -> Instant {
        let far = self.now + IDLE;
        match (self.phase, &self.conn) {
            (Phase::Backoff { at }, _) => at,
            (Phase::Connected, Some(c)) => {
                let mut next = c.session_next.min(c.stats_at);
                if let Some(at) = c.rr_at {
                    next = next.min(at);
                }
                if let Some((since, _)) = &c.playing {
                    next = next.min(self.media.last_media + self.cfg.read_timeout);
                    if self.udp_watch(c) {
                        next = next.min(*since + self.cfg.udp_timeout);
                    }
                }
                if let Some(idle) = c.idle_since {
                    next = next.min(idle + self.cfg.close_after);
                }
                next
            }
            _ => far,
        }
    }

    /// Whether the UDP silence timer runs: auto transport, on UDP, nothing received yet.
    fn udp_watch(&self, c: &Conn) -> bool {
        c.udp && self.cfg.transport == TransportMode::Auto && !self.media.got_any()
    }

    fn set_state(&mut self, s: SourceState) {
        if self.state != s {
            self.state = s.clone();
            self.out.push_back(Output::Event(Event::State(s)));
        }
    }

    /// Starts a connection attempt.
    fn connect(&mut self) {
        if self.sessions > 0 {
            self.media.reconnects += 1;
        }
        self.sessions += 1;
        self.media.frames_this_session = 0;
        self.set_state(SourceState::Connecting);
        self.phase = Phase::ExpectConnect;
        self.out.push_back(Output::Connect {
            host: self.url.host.clone(),
            port: self.url.port,
        });
    }

    fn connected(&mut self, peer: SocketAddr) {
        if self.phase != Phase::ExpectConnect {
            return;
        }
        let now = self.now;
        let seed = self.cfg.seed ^ self.sessions.rotate_left(32);
        // The configured credentials go to the configured host only; elsewhere a
        // redirect's own (in `self.url`) or none.
        let credentials = if self.url.same_host(&self.cfg.url) {
            self.cfg.credentials.clone()
        } else {
            None
        };
        let session = Session::new(
            SessionConfig {
                url: self.url.clone(),
                credentials,
                response_timeout: self.cfg.response_timeout,
                seed,
                user_agent: self.cfg.user_agent.clone(),
            },
            now,
        );
        self.conn = Some(Conn {
            session,
            camera: peer.ip(),
            udp: !self.use_tcp,
            udp_ports: Vec::new(),
            our_ssrc: seed as u32,
            session_next: now,
            playing: None,
            live: false,
            rr_at: None,
            stats_at: now + STATS_INTERVAL,
            last_stats: now,
            idle_since: (self.cfg.on_demand && self.demand == 0).then_some(now),
            foreign_logged: false,
        });
        self.phase = Phase::Connected;
        self.pump_session();
    }

    /// Drains the session's outputs.
    fn pump_session(&mut self) {
        loop {
            let Some(c) = &mut self.conn else { return };
            match c.session.poll_output() {
                Ok(session::Output::Transmit(b)) => self.out.push_back(Output::Transmit(b)),
                Ok(session::Output::Timeout(t)) => {
                    c.session_next = t;
                    return;
                }
                Ok(session::Output::Event(ev)) => self.session_event(ev),
                Err(e) => {
                    self.end(End::Failed(e.into()), false);
                    return;
                }
            }
        }
    }

    fn session_event(&mut self, ev: session::Event) {
        let now = self.now;
        let Some(c) = &mut self.conn else { return };
        match ev {
            session::Event::Described { tracks, skipped } => {
                for s in &skipped {
                    info!(path = %self.cfg.name, "rtsp: skipping track {s}");
                }
                self.media.begin(&tracks, now, &mut self.out);
                if c.udp {
                    self.out.push_back(Output::BindUdp {
                        pairs: tracks.len(),
                        port_min: self.cfg.udp_port_min,
                        port_max: self.cfg.udp_port_max,
                    });
                } else {
                    c.session.setup(Transport::Tcp, now);
                }
            }
            session::Event::Playing { tracks, .. } => {
                self.media.last_media = now;
                self.media.transport = Some(if c.udp { "udp" } else { "tcp" });
                if c.udp {
                    punch(c, &tracks, &mut self.out);
                }
                let server_ports: Vec<_> = tracks.iter().map(|t| t.server_ports).collect();
                info!(path = %self.cfg.name, transport = self.media.transport, tracks = tracks.len(), client_ports = ?c.udp_ports, ?server_ports, "rtsp: playing");
                c.rr_at = Some(now + RR_INTERVAL);
                c.playing = Some((now, tracks));
            }
            session::Event::Rtp { track, data } => {
                self.media.on_rtp(track, data, now, &mut self.out);
            }
            session::Event::Rtcp { track, data } => self.media.on_rtcp(track, &data, now),
            _ => {}
        }
    }

    fn bound(&mut self, rtp_ports: Vec<u16>) {
        let now = self.now;
        let Some(c) = &mut self.conn else { return };
        if !c.udp || !c.udp_ports.is_empty() {
            return;
        }
        c.udp_ports = rtp_ports.clone();
        c.session.setup(
            Transport::Udp {
                client_rtp_ports: rtp_ports,
            },
            now,
        );
        self.pump_session();
    }

    /// A datagram: RTP or RTCP of the track bound to `local_port`, if it comes from the
    /// camera's address and the port its `SETUP` answer named for it (any port of that
    /// address when the answer named none); anything else is dropped and counted.
    fn datagram(&mut self, local_port: u16, from: SocketAddr, data: &[u8]) {
        let now = self.now;
        let Some(c) = &mut self.conn else { return };
        let (pos, rtcp) = match c.udp_ports.iter().position(|p| *p == local_port) {
            Some(i) => (i, false),
            None => match c.udp_ports.iter().position(|p| *p + 1 == local_port) {
                Some(i) => (i, true),
                None => return,
            },
        };
        let set_up = c.session.set_up_tracks().get(pos);
        let port_ok = match set_up.map(|t| t.server_ports) {
            Some(Some((rtp_port, rtcp_port))) => {
                from.port() == if rtcp { rtcp_port } else { rtp_port }
            }
            Some(None) => true,
            // Not set up (yet): the camera has no business sending.
            None => false,
        };
        let Some(track) = set_up
            .map(|t| t.track)
            .filter(|_| port_ok && from.ip() == c.camera)
        else {
            self.media.counters.foreign += 1;
            if !std::mem::replace(&mut c.foreign_logged, true) {
                warn!(path = %self.cfg.name, %from, local_port, camera = %c.camera, "rtsp: dropping UDP from a sender that is not the camera's address and SETUP ports (counted in rtsp_foreign_packets; logged once per session)");
            }
            return;
        };
        if rtcp {
            self.media.on_rtcp(track, data, now);
        } else {
            let data = Bytes::copy_from_slice(data);
            self.media.on_rtp(track, data, now, &mut self.out);
        }
    }

    fn set_demand(&mut self, n: usize) {
        self.demand = n;
        if !self.cfg.on_demand {
            return;
        }
        let now = self.now;
        if let Some(c) = &mut self.conn {
            if n > 0 {
                c.idle_since = None;
            } else {
                c.idle_since.get_or_insert(now);
            }
        }
        if n > 0 && self.phase == Phase::ExpectDemand {
            info!(path = %self.cfg.name, "rtsp source: a viewer arrived, connecting");
            self.connect();
        }
    }

    /// Live at the first frame a viewer can start from.
    fn check_live(&mut self) {
        let Some(c) = &mut self.conn else { return };
        if c.live || self.media.starts_this_session == 0 {
            return;
        }
        c.live = true;
        let dt = self.now.saturating_duration_since(c.last_stats);
        c.last_stats = self.now;
        c.stats_at = self.now + STATS_INTERVAL;
        let stats = self.media.stats(dt);
        self.out.push_back(Output::Event(Event::Stats(stats)));
        self.set_state(SourceState::Live);
        info!(path = %self.cfg.name, "rtsp source live");
    }

    /// Time-outs, receiver reports, statistics and the on-demand close.
    fn connected_timers(&mut self) {
        let now = self.now;
        let Some(c) = &self.conn else { return };
        if let Some((since, _)) = &c.playing {
            if self.udp_watch(c) && now.saturating_duration_since(*since) >= self.cfg.udp_timeout {
                let e = IngestError::NoUdp(self.cfg.udp_timeout);
                return self.end(End::Failed(e), true);
            }
            let quiet = now.saturating_duration_since(self.media.last_media);
            if quiet >= self.cfg.read_timeout {
                let e = IngestError::ReadTimeout(self.cfg.read_timeout);
                return self.end(End::Failed(e), true);
            }
        }
        if c.idle_since
            .is_some_and(|i| now.saturating_duration_since(i) >= self.cfg.close_after)
        {
            return self.end(End::Idle, true);
        }
        if c.rr_at.is_some_and(|at| now >= at) {
            self.receiver_reports();
        }
        let Some(c) = &mut self.conn else { return };
        if now >= c.stats_at {
            let dt = now.saturating_duration_since(c.last_stats);
            c.last_stats = now;
            c.stats_at = now + STATS_INTERVAL;
            let stats = self.media.stats(dt);
            self.out.push_back(Output::Event(Event::Stats(stats)));
        }
    }

    /// Sends the receiver reports: over UDP to the camera's RTCP port of each track, or
    /// interleaved on the TCP connection.
    fn receiver_reports(&mut self) {
        let now = self.now;
        let Some(c) = &mut self.conn else { return };
        c.rr_at = Some(now + RR_INTERVAL);
        let Some((_, tracks)) = &c.playing else {
            return;
        };
        for (i, rr) in self.media.receiver_reports(c.our_ssrc, now) {
            let Some(pt) = tracks.get(i) else { continue };
            if !c.udp {
                if let Some((_, ch)) = pt.interleaved {
                    self.out
                        .push_back(Output::Transmit(Session::interleave(ch, &rr)));
                }
            } else if let (Some(port), Some((_, sport))) = (c.udp_ports.get(i), pt.server_ports) {
                self.out.push_back(Output::SendTo {
                    from_port: port + 1,
                    to: SocketAddr::new(c.camera, sport),
                    data: Bytes::from(rr),
                });
            }
        }
    }

    /// Ends the connected session (with `TEARDOWN` if `teardown`), then decides what next.
    fn end(&mut self, why: End, teardown: bool) {
        let Some(mut c) = self.conn.take() else {
            return;
        };
        if teardown {
            c.session.teardown(self.now);
            // Media still buffered comes out as events first; only the bytes matter now.
            while let Ok(o) = c.session.poll_output() {
                match o {
                    session::Output::Transmit(b) => self.out.push_back(Output::Transmit(b)),
                    session::Output::Timeout(_) => break,
                    session::Output::Event(_) => {}
                }
            }
        }
        self.out.push_back(Output::Disconnect);
        self.media.last_end = Some(self.now);
        self.media.transport = None;
        match why {
            End::Shutdown => self.phase = Phase::Stopped,
            End::Idle => {
                info!(path = %self.cfg.name, "rtsp source: no viewers, camera released");
                self.out.push_back(Output::Event(Event::ClearGop));
                self.backoff = self.cfg.retry_min;
                self.phase = Phase::Backoff { at: self.now };
                self.backoff_over();
            }
            End::Failed(e) => self.failed(e),
        }
    }

    /// A session or attempt failed: follow a redirect, fall back to TCP, or back off.
    fn failed(&mut self, e: IngestError) {
        let delivered = self.media.frames_this_session > 0;
        let e = match e {
            IngestError::Session(SessionError::Redirect { location, .. })
                if self.redirects < MAX_REDIRECTS =>
            {
                match self.redirect(&location) {
                    Ok(()) => return self.connect(),
                    Err(e) => e,
                }
            }
            e => e,
        };
        if self.redirects > 0 && !delivered {
            self.url = self.cfg.url.clone();
        }
        self.redirects = 0;
        if self.cfg.transport == TransportMode::Auto && !self.use_tcp && e.is_udp_failure() {
            warn!(path = %self.cfg.name, "rtsp source: {e}; switching to TCP");
            self.use_tcp = true;
            return self.connect();
        }
        if delivered {
            self.backoff = self.cfg.retry_min;
        }
        if e.is_permanent() {
            self.backoff = self.cfg.retry_max;
        }
        let msg = e.to_string();
        warn!(path = %self.cfg.name, retry_in = ?self.backoff, "rtsp source: {msg}");
        self.media.last_error = Some(msg.clone());
        let stats = self.media.stats(STATS_INTERVAL);
        self.out.push_back(Output::Event(Event::Stats(stats)));
        self.set_state(SourceState::Retrying {
            in_secs: self.backoff.as_secs_f64().ceil() as u64,
            why: msg,
        });
        self.out.push_back(Output::Event(Event::ClearGop));
        self.phase = Phase::Backoff {
            at: self.now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(self.cfg.retry_max);
    }

    /// Follows a redirect to `location` if [`IngestConfig::follow_redirects`] allows:
    /// to the camera's host with the configured credentials (unless `location` has its
    /// own), elsewhere with only those in `location`.
    fn redirect(&mut self, location: &str) -> Result<(), IngestError> {
        let mut to = RtspUrl::parse(location).map_err(|e| IngestError::BadRedirect {
            location: redact_location(location),
            why: e.to_string(),
        })?;
        let same_host = to.same_host(&self.cfg.url);
        let policy = self.cfg.follow_redirects;
        let allowed = match policy {
            RedirectPolicy::SameHost => same_host,
            RedirectPolicy::Any => true,
            RedirectPolicy::Never => false,
        };
        if !allowed {
            return Err(IngestError::RedirectRefused {
                to: to.redacted(),
                policy: policy.name(),
            });
        }
        if same_host && to.user.is_none() {
            to.user = self.cfg.url.user.clone();
            to.password = self.cfg.url.password.clone();
        }
        info!(path = %self.cfg.name, to = %to.redacted(), with_credentials = same_host || to.user.is_some(), "rtsp source: camera redirects");
        self.url = to;
        self.redirects += 1;
        Ok(())
    }

    /// The wait is over: connect, or (on-demand, nobody watching) go idle.
    fn backoff_over(&mut self) {
        if self.cfg.on_demand && self.demand == 0 {
            self.phase = Phase::ExpectDemand;
            self.set_state(SourceState::Idle);
        } else {
            self.connect();
        }
    }
}

/// Opens the NAT/firewall path towards the camera's ports.
fn punch(c: &Conn, tracks: &[PlayingTrack], out: &mut VecDeque<Output>) {
    for (port, t) in c.udp_ports.iter().zip(tracks) {
        if let Some((srtp, srtcp)) = t.server_ports {
            for (from_port, to) in [(*port, srtp), (port + 1, srtcp)] {
                out.push_back(Output::SendTo {
                    from_port,
                    to: SocketAddr::new(c.camera, to),
                    data: Bytes::from_static(&PUNCH),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
