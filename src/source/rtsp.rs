//! The RTSP pull driver: keeps one camera's stream published on its owner shard.
//!
//! A thin loop around the sans-IO [`Ingest`] core, which holds the whole lifecycle
//! (backoff, redirects, UDP→TCP fallback, on-demand, time-outs, receiver reports). The
//! driver reads the clock, resolves names, opens the TCP connection, binds the UDP port
//! pairs (socket2, without `SO_REUSEPORT`), feeds the core what arrives and the hub's
//! demand, executes its outputs and publishes its events to the hub.
//!
//! [`describe`] is the management API's "test connection": the same [`Session`] core
//! driven through `OPTIONS` and `DESCRIBE` (with its Basic/Digest answers to a 401) on
//! one connection, then dropped. It follows no redirect: it reports it.
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock.

use crate::config::{FollowRedirects, RtspConfig, RtspSource, RtspTransport};
use crate::rtsp::ingest::{
    Event, Ingest, IngestConfig, IngestError, Input, Output, RedirectPolicy, TransportMode,
};
use crate::rtsp::proto::auth::Credentials;
use crate::rtsp::proto::session::{
    Event as SessionEvent, Output as SessionOutput, Session, SessionConfig, SetupTrack,
};
use crate::rtsp::proto::url::RtspUrl;
use crate::session::{self, SessionGuard};
use crate::shard::{ShardRef, Wake};
use crate::stats;
use crate::stream::{DemandBell, SourceInfo, SourceState, StreamPath};
use bytes::Bytes;
use futures_lite::future::or;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpStream, UdpSocket};
use std::cell::Cell;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, info, warn};

/// Bytes read from the TCP connection at a time.
const READ_BUF: usize = 64 * 1024;
/// Largest UDP datagram accepted.
const UDP_BUF: usize = 65_536;
/// Datagrams queued from the UDP sockets to the loop; more are dropped.
const UDP_QUEUE: usize = 4096;
/// How long the TEARDOWN may take to leave at shutdown.
const TEARDOWN_GRACE: Duration = Duration::from_millis(300);

/// Most bytes [`describe`] reads from a camera (its `OPTIONS` and `DESCRIBE` answers).
pub const DESCRIBE_MAX_BYTES: usize = 64 * 1024;

/// What woke the driver besides its socket.
enum Poke {
    /// A datagram from a UDP receive task (None: the channel closed).
    Datagram(Option<Datagram>),
    /// The path's demand may have changed.
    Demand,
    /// The camera connection is to be dropped (through the management API).
    Kicked,
}

struct Datagram {
    port: u16,
    from: SocketAddr,
    data: Bytes,
}

/// Runs the RTSP source `src` as `path` until the task is dropped.
pub async fn run(shard: ShardRef, path: &str, src: RtspSource) {
    let rcfg = shard.shared.settings.config.rtsp.clone();
    let path = match StreamPath::parse(path) {
        Ok(p) => p,
        Err(e) => {
            warn!("rtsp source '{path}': {e}");
            return;
        }
    };
    let cfg = ingest_config(&shard, &path, &src, &rcfg);
    let mut ing = Ingest::new(cfg, Instant::now());
    let info = SourceInfo {
        kind: "rtsp",
        url: src.url.redacted(),
        state: ing.state().clone(),
        stats: None,
        // An offer waits this long for the camera's first media, on demand or while
        // an always-on camera is (re)connecting.
        start_timeout: Some(rcfg.on_demand_start_timeout.0),
        // The depacketizer continues the camera's timeline across jumps and reconnects.
        continues_timeline: true,
    };
    let path = match shard.hub.borrow_mut().publish(&path, info) {
        Ok(p) => p,
        Err(e) => {
            warn!("rtsp source: {e}");
            return;
        }
    };
    info!(path = %path, url = %src.url.redacted(), transport = src.transport.name(), on_demand = src.on_demand, "rtsp source started");
    let listed = session::Info {
        protocol: session::Protocol::Rtsp,
        kind: session::Kind::Source,
        signaling: None,
        path: Some(path.clone()),
        remote: None,
    };
    let listed = shard.sessions.register(SystemTime::now(), listed);
    let mut d = Driver::new(shard, path, &rcfg, listed);
    let mut demand = None;
    loop {
        let now = Instant::now();
        let dm = d.shard.hub.borrow().demand(&d.path);
        if demand != Some(dm) {
            demand = Some(dm);
            ing.handle_input(now, Input::Demand(dm));
        }
        if d.shard.shutdown.is_fired() && d.closing.is_none() {
            d.closing = Some(now + TEARDOWN_GRACE);
            ing.handle_input(now, Input::Close);
        }
        ing.handle_timeout(now);
        let next = d.drain(&mut ing).await;
        if ing.is_stopped() {
            break;
        }
        let wait = next
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let wake = d.wait(wait).await;
        let now = Instant::now();
        match wake {
            Wake::Read(Ok(0)) => ing.handle_input(now, Input::TcpClosed),
            Wake::Read(Ok(n)) => {
                d.arrived = now;
                d.listed.counters().add_in(n as u64);
                ing.handle_input(now, Input::Tcp(&d.buf[..n]));
            }
            Wake::Read(Err(e)) => ing.handle_input(now, Input::TcpError(IngestError::io(&e))),
            Wake::Other(Poke::Datagram(Some(dg))) => {
                d.arrived = now;
                d.listed.counters().add_in(dg.data.len() as u64);
                let input = Input::Datagram {
                    local_port: dg.port,
                    from: dg.from,
                    data: &dg.data,
                };
                ing.handle_input(now, input);
            }
            Wake::Other(Poke::Kicked) => d.kicked(now, &mut ing),
            // Demand is read at the top of the loop.
            Wake::Other(Poke::Datagram(None) | Poke::Demand) => {}
            Wake::Timeout | Wake::Shutdown => {}
        }
    }
    d.disconnect().await;
}

/// The core's settings from `[rtsp]` and the stream's own.
fn ingest_config(shard: &ShardRef, path: &str, src: &RtspSource, r: &RtspConfig) -> IngestConfig {
    IngestConfig {
        name: path.to_string(),
        url: src.url.clone(),
        credentials: src.credentials.clone(),
        transport: match src.transport {
            RtspTransport::Tcp => TransportMode::Tcp,
            RtspTransport::Udp => TransportMode::Udp,
            RtspTransport::Auto => TransportMode::Auto,
        },
        follow_redirects: match src.follow_redirects {
            FollowRedirects::SameHost => RedirectPolicy::SameHost,
            FollowRedirects::Any => RedirectPolicy::Any,
            FollowRedirects::Never => RedirectPolicy::Never,
        },
        on_demand: src.on_demand,
        close_after: src.close_after,
        udp_port_min: r.udp_port_min,
        udp_port_max: r.udp_port_max,
        udp_timeout: r.udp_timeout.0,
        response_timeout: r.response_timeout.0,
        read_timeout: r.read_timeout.0,
        retry_min: r.retry_min.0,
        retry_max: r.retry_max.0,
        seed: seed(shard.id),
        user_agent: format!("corecast/{}", env!("CARGO_PKG_VERSION")),
    }
}

/// The sockets of one source and what it counts.
struct Driver {
    shard: ShardRef,
    path: Arc<str>,
    connect_timeout: Duration,
    write_timeout: Duration,
    tcp: Option<TcpStream>,
    open: Option<OpenConnection>,
    udp: Vec<(u16, Rc<UdpSocket>)>,
    tasks: Vec<glommio::Task<()>>,
    tx: Rc<LocalSender<Datagram>>,
    rx: LocalReceiver<Datagram>,
    buf: Vec<u8>,
    /// Rings when viewers come or go (the hub's demand for the path may have changed).
    bell: Rc<DemandBell>,
    /// Counted in `rtsp_sessions`.
    live: bool,
    /// Shutting down: writes must end by then.
    closing: Option<Instant>,
    /// The source as the management API lists it.
    listed: SessionGuard,
    /// When the latest media (a TCP read or a datagram) came in: the arrival time of
    /// the frames the core completes from it.
    arrived: Instant,
}

impl Driver {
    fn new(shard: ShardRef, path: Arc<str>, rcfg: &RtspConfig, listed: SessionGuard) -> Driver {
        let (tx, rx) = local_channel::new_bounded(UDP_QUEUE);
        // The path was just published here, so the hub has its bell; a spare one that
        // never rings would only mean demand is read when something else wakes us.
        let bell = shard.hub.borrow().demand_bell(&path).unwrap_or_default();
        Driver {
            bell,
            shard,
            path,
            connect_timeout: rcfg.connect_timeout.0,
            write_timeout: rcfg.response_timeout.0,
            tcp: None,
            open: None,
            udp: Vec::new(),
            tasks: Vec::new(),
            tx: Rc::new(tx),
            rx,
            buf: vec![0u8; READ_BUF],
            live: false,
            closing: None,
            listed,
            arrived: Instant::now(),
        }
    }

    /// Drops the camera connection, asked through the management API: the core takes
    /// it as a lost connection and reconnects after its backoff; the stream stays
    /// published and configured.
    fn kicked(&mut self, now: Instant, ing: &mut Ingest) {
        if self.tcp.is_none() {
            info!(path = %self.path, "rtsp source: asked to drop its camera connection, but it is not connected");
            return;
        }
        info!(path = %self.path, "rtsp source: camera connection dropped by request; it reconnects, the stream stays configured");
        let why = IngestError::Io {
            kind: std::io::ErrorKind::ConnectionAborted,
            why: "connection dropped through the management API".into(),
        };
        ing.handle_input(now, Input::TcpError(why));
    }

    /// Executes the core's outputs until it returns its next timeout.
    async fn drain(&mut self, ing: &mut Ingest) -> Instant {
        loop {
            match ing.poll_output() {
                Output::Timeout(t) => return t,
                Output::Connect { host, port } => {
                    stats::add(&self.shard.stats().rtsp_connects, 1);
                    let input = self.connect(&host, port).await;
                    if matches!(input, Input::Close) {
                        self.closing = Some(Instant::now() + TEARDOWN_GRACE);
                    }
                    ing.handle_input(Instant::now(), input);
                }
                Output::BindUdp {
                    pairs,
                    port_min,
                    port_max,
                } => {
                    let input = match bind_pairs(pairs, port_min, port_max, self.shard.id) {
                        Some(p) => Input::Bound {
                            rtp_ports: self.listen(p),
                        },
                        None => Input::BindFailed,
                    };
                    ing.handle_input(Instant::now(), input);
                }
                Output::Transmit(b) => {
                    if let Err(e) = self.write(&b).await {
                        ing.handle_input(Instant::now(), Input::TcpError(e));
                    }
                }
                Output::SendTo {
                    from_port,
                    to,
                    data,
                } => {
                    if let Some((_, s)) = self.udp.iter().find(|(p, _)| *p == from_port) {
                        let _ = s.send_to(&data, to).await;
                    }
                }
                Output::Disconnect => self.disconnect().await,
                Output::Event(ev) => self.publish(ev),
            }
        }
    }

    /// Resolves and connects (unless shutdown comes first: then [`Input::Close`]).
    async fn connect(&mut self, host: &str, port: u16) -> Input<'static> {
        let attempt = async {
            let addr = resolve(host, port).await?;
            match TcpStream::connect_timeout(addr, self.connect_timeout).await {
                Ok(s) => Ok((s, addr)),
                Err(e) => {
                    let e = std::io::Error::from(e);
                    Err(IngestError::Connect {
                        addr,
                        kind: e.kind(),
                        why: e.to_string(),
                    })
                }
            }
        };
        let shutdown = async {
            self.shard.shutdown.wait().await;
            None
        };
        match or(async { Some(attempt.await) }, shutdown).await {
            None => Input::Close,
            Some(Err(e)) => Input::ConnectFailed(e),
            Some(Ok((tcp, addr))) => {
                let _ = tcp.set_nodelay(true);
                debug!(path = %self.path, %addr, "rtsp: connected");
                self.tcp = Some(tcp);
                self.open = Some(OpenConnection::new(&self.shard));
                self.listed.set_remote(Some(addr));
                Input::Connected { peer: addr }
            }
        }
    }

    /// Waits for bytes, a datagram, `timeout` or shutdown.
    async fn wait(&mut self, timeout: Duration) -> Wake<Poke> {
        let rx = &self.rx;
        let bell = &self.bell;
        let kick = self.listed.signal();
        let poke = async {
            let demand = async {
                bell.changed().await;
                Poke::Demand
            };
            let kicked = async {
                kick.wait().await;
                Poke::Kicked
            };
            or(
                async { Poke::Datagram(rx.recv().await) },
                or(demand, kicked),
            )
            .await
        };
        match &mut self.tcp {
            Some(tcp) => self.shard.wait_io(tcp, &mut self.buf, poke, timeout).await,
            None => {
                or(async { Wake::Other(poke.await) }, async {
                    or(
                        async {
                            glommio::timer::sleep(timeout).await;
                            Wake::Timeout
                        },
                        async {
                            self.shard.shutdown.wait().await;
                            Wake::Shutdown
                        },
                    )
                    .await
                })
                .await
            }
        }
    }

    /// Writes to the camera, bounded in time (by the TEARDOWN grace at shutdown).
    async fn write(&mut self, b: &[u8]) -> Result<(), IngestError> {
        let Some(tcp) = &mut self.tcp else {
            return Ok(());
        };
        let limit = match self.closing {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => self.write_timeout,
        };
        let timed_out = async {
            glommio::timer::sleep(limit).await;
            None
        };
        match or(async { Some(tcp.write_all(b).await) }, timed_out).await {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(IngestError::io(&e)),
            None => Err(IngestError::Io {
                kind: std::io::ErrorKind::TimedOut,
                why: format!("write did not finish within {limit:?}"),
            }),
        }
    }

    /// Starts a receiver per bound socket; returns the RTP ports.
    fn listen(&mut self, pairs: Vec<(UdpSocket, UdpSocket, u16)>) -> Vec<u16> {
        let mut ports = Vec::with_capacity(pairs.len());
        for (rtp, rtcp, port) in pairs {
            ports.push(port);
            for (sock, p) in [(rtp, port), (rtcp, port + 1)] {
                let sock = Rc::new(sock);
                self.udp.push((p, sock.clone()));
                let task = udp_receive(sock, p, self.tx.clone());
                self.tasks.push(glommio::spawn_local(task));
            }
        }
        ports
    }

    /// Closes the connection and releases the ports.
    async fn disconnect(&mut self) {
        self.set_live(false);
        self.tasks.clear();
        self.udp.clear();
        if let Some(mut tcp) = self.tcp.take() {
            let _ = tcp.close().await;
        }
        self.open = None;
    }

    fn set_live(&mut self, live: bool) {
        if live != self.live {
            self.live = live;
            let gauge = &self.shard.stats().rtsp_sessions;
            if live {
                stats::add(gauge, 1);
            } else {
                stats::sub(gauge, 1);
            }
        }
    }

    fn publish(&mut self, ev: Event) {
        if let Event::State(s) = &ev {
            self.set_live(*s == SourceState::Live);
        }
        let st = self.shard.stats();
        let mut hub = self.shard.hub.borrow_mut();
        match ev {
            Event::Tracks(t) => {
                let _ = hub.set_tracks(&self.path, t);
            }
            Event::Frame(f) => {
                let _ = hub.push_frame_arrived(&self.path, f, self.arrived);
            }
            Event::ClearGop => hub.clear_gop(&self.path),
            Event::State(s) => hub.set_source_state(&self.path, s),
            Event::Stats(s) => hub.set_source_stats(&self.path, s),
            Event::Counters {
                packets,
                bytes,
                lost,
                foreign,
                stray_ssrc,
            } => {
                stats::add(&st.rtsp_packets_in, packets);
                stats::add(&st.bytes_in, bytes);
                stats::add(&st.rtsp_packets_lost, lost);
                stats::add(&st.rtsp_foreign_packets, foreign);
                stats::add(&st.rtsp_ssrc_dropped_packets, stray_ssrc);
            }
        }
    }
}

/// Counts an open camera connection (`rtsp_connections`), so that shutdown waits for its
/// TEARDOWN.
struct OpenConnection(ShardRef);

impl OpenConnection {
    fn new(shard: &ShardRef) -> Self {
        stats::add(&shard.stats().rtsp_connections, 1);
        OpenConnection(shard.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        stats::sub(&self.0.stats().rtsp_connections, 1);
    }
}

thread_local! {
    /// Where this shard's next search for a free UDP port pair starts.
    static NEXT_PAIR: Cell<u32> = const { Cell::new(0) };
}

/// Binds `n` RTP/RTCP socket pairs on even/odd ports of `min..=max`, without
/// `SO_REUSEPORT`, so two sources (or shards) never share a port.
fn bind_pairs(
    n: usize,
    min: u16,
    max: u16,
    shard: usize,
) -> Option<Vec<(UdpSocket, UdpSocket, u16)>> {
    let first = u32::from(min.div_ceil(2) * 2);
    let pairs = (u32::from(max) + 1).saturating_sub(first) / 2;
    let mut out = Vec::with_capacity(n);
    let start = NEXT_PAIR.with(|c| c.get()).wrapping_add(shard as u32 * 97);
    for k in 0..pairs {
        if out.len() == n {
            break;
        }
        let pair = (start + k) % pairs;
        let port = u16::try_from(first + pair * 2).ok()?;
        let (Ok(rtp), Ok(rtcp)) = (bind_udp(port), bind_udp(port + 1)) else {
            continue;
        };
        NEXT_PAIR.with(|c| c.set(pair + 1));
        out.push((rtp, rtcp, port));
    }
    (out.len() == n).then_some(out)
}

fn bind_udp(port: u16) -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    let _ = s.set_recv_buffer_size(1 << 20);
    s.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())?;
    s.set_nonblocking(true)?;
    // SAFETY: the descriptor comes from `into_raw_fd`, so the new socket owns it alone.
    Ok(unsafe { UdpSocket::from_raw_fd(s.into_raw_fd()) })
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, IngestError> {
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let h = host.to_string();
    let found = glommio::executor()
        .spawn_blocking(move || (h.as_str(), port).to_socket_addrs().map(|mut a| a.next()))
        .await;
    let why = match found {
        Ok(Some(a)) => return Ok(a),
        Ok(None) => "no address".to_string(),
        Err(e) => e.to_string(),
    };
    Err(IngestError::Resolve {
        host: host.to_string(),
        why,
    })
}

/// Receives one bound socket's datagrams into the loop's queue.
async fn udp_receive(sock: Rc<UdpSocket>, port: u16, tx: Rc<LocalSender<Datagram>>) {
    let mut buf = vec![0u8; UDP_BUF];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            glommio::timer::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let data = Bytes::copy_from_slice(&buf[..n]);
        let _ = tx.try_send(Datagram { port, from, data });
    }
}

fn seed(shard: usize) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (shard as u64).rotate_left(48) ^ 0x9e37_79b9_7f4a_7c15
}

/// A camera to [`describe`].
#[derive(Debug, Clone)]
pub struct DescribeRequest {
    /// The camera URL (its credentials are used when `credentials` is `None`).
    pub url: RtspUrl,
    /// Credentials; override those in the URL.
    pub credentials: Option<Credentials>,
    /// Time to open the TCP connection.
    pub connect_timeout: Duration,
    /// Time the camera has to answer each request.
    pub response_timeout: Duration,
}

/// What a camera's `DESCRIBE` answered.
#[derive(Debug, Clone)]
pub struct Described {
    /// The usable tracks, in order.
    pub tracks: Vec<SetupTrack>,
    /// Why each other media section is left out.
    pub skipped: Vec<String>,
    /// The camera's `Server` header.
    pub server: Option<String>,
}

/// Connects to the camera and runs `OPTIONS` and `DESCRIBE` (answering a 401 as the
/// source does), reading at most [`DESCRIBE_MAX_BYTES`]; the connection is closed after
/// the SDP. Each step is bounded by the request's time-outs; the caller bounds the
/// whole.
pub async fn describe(req: DescribeRequest) -> Result<Described, IngestError> {
    let addr = resolve(&req.url.host, req.url.port).await?;
    let mut tcp = TcpStream::connect_timeout(addr, req.connect_timeout)
        .await
        .map_err(|e| {
            let e = std::io::Error::from(e);
            IngestError::Connect {
                addr,
                kind: e.kind(),
                why: e.to_string(),
            }
        })?;
    let _ = tcp.set_nodelay(true);
    let cfg = SessionConfig {
        url: req.url,
        credentials: req.credentials,
        response_timeout: req.response_timeout,
        seed: seed(0),
        user_agent: format!("corecast/{}", env!("CARGO_PKG_VERSION")),
    };
    let mut s = Session::new(cfg, Instant::now());
    let r = describe_on(&mut tcp, &mut s).await;
    let _ = tcp.close().await;
    r
}

/// The conversation of [`describe`] on an open connection.
async fn describe_on(tcp: &mut TcpStream, s: &mut Session) -> Result<Described, IngestError> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut read = 0usize;
    loop {
        let next = match s.poll_output()? {
            SessionOutput::Transmit(b) => {
                tcp.write_all(&b).await.map_err(|e| IngestError::io(&e))?;
                continue;
            }
            SessionOutput::Event(SessionEvent::Described { tracks, skipped }) => {
                let server = s.server().map(str::to_string);
                return Ok(Described {
                    tracks,
                    skipped,
                    server,
                });
            }
            SessionOutput::Event(_) => continue,
            SessionOutput::Timeout(t) => t,
        };
        let wait = next.saturating_duration_since(Instant::now());
        let timer = async {
            glommio::timer::sleep(wait).await;
            None
        };
        let got = or(async { Some(tcp.read(&mut buf).await) }, timer).await;
        let now = Instant::now();
        match got {
            None => s.handle_timeout(now),
            Some(Ok(0)) => return Err(IngestError::Closed),
            Some(Ok(n)) => {
                read += n;
                if read > DESCRIBE_MAX_BYTES {
                    return Err(IngestError::Io {
                        kind: std::io::ErrorKind::InvalidData,
                        why: format!(
                            "camera sent more than {} KiB without answering DESCRIBE",
                            DESCRIBE_MAX_BYTES / 1024
                        ),
                    });
                }
                let _ = s.handle_input(now, &buf[..n]);
            }
            Some(Err(e)) => return Err(IngestError::io(&e)),
        }
    }
}
