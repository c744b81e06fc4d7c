//! What a shard's drivers share: the process-wide [`Shared`] state (immutable settings,
//! atomic counters, published snapshots) and the shard-local [`Shard`] context (the hub,
//! the shutdown signal).
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock.

use crate::auth::{AccessRequest, Action, Credentials, FailLimiter, Verdict};
use crate::config::{Settings, StreamPlan, StreamTable};
use crate::limit::{AddrCounts, Burst, LogLimiter};
use crate::stats::{FrameLatency, ShardStats};
use crate::stream::{Hub, PathInfo, StreamPath};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};
use tracing::warn;

/// State shared by all shards. Written only through atomics and the per-shard snapshot
/// mutexes (each written by its own shard once a second or on change, read by API calls);
/// never on the media path.
#[derive(Debug)]
pub struct Shared {
    /// Validated configuration (`settings.table` is empty: the streams are in
    /// `streams`).
    pub settings: Settings,
    /// The configured streams as they run now: the API and a reload change them. Locked
    /// when a publisher asks for a path and when the table changes, never on the media
    /// path.
    streams: Mutex<StreamTable>,
    /// Counters of each shard.
    pub stats: Vec<Arc<ShardStats>>,
    /// Server-added frame latency of each shard's viewers.
    pub latency: Vec<Arc<FrameLatency>>,
    /// Every session (publishers, players, viewers, camera sources) of every shard.
    pub sessions: Arc<crate::session::Registry>,
    /// Each shard's latest view of its paths.
    pub snapshots: Vec<Mutex<ShardSnapshot>>,
    /// Set when the process is shutting down.
    pub stopping: AtomicBool,
    /// Set by SIGHUP: shard 0 reloads the config file at its next heartbeat.
    pub reload_requested: AtomicBool,
    /// Wall-clock start time.
    pub started: SystemTime,
    /// The HTTP address every shard listens on (port resolved).
    pub http_addr: SocketAddr,
    /// The RTMP address every shard listens on (port resolved).
    pub rtmp_addr: SocketAddr,
    /// Each shard's WebRTC UDP port (0 until bound).
    pub udp_ports: Vec<AtomicU64>,
    /// Each shard's CPU, or -1 when not pinned yet.
    pub cpus: Vec<AtomicU64>,
    /// Failed access attempts per address, process-wide (an address gets
    /// `auth.fail_limit` tries in all, not per shard): locked only for a request that
    /// carries credentials, never on the media path.
    pub auth_failures: Mutex<FailLimiter>,
    /// Milliseconds since start at each shard's last heartbeat.
    pub heartbeats: Vec<AtomicU64>,
    /// How any thread wakes each shard's heartbeat loop (stop, reload, a path change).
    wakes: Vec<WakeLine>,
    /// Open connections per peer address, process-wide, of each [`Listener`] (HTTP,
    /// RTMP): locked for one lookup when a connection is accepted and when it closes,
    /// never on the media path.
    addr_counts: [Mutex<AddrCounts>; 2],
}

/// One shard's wake-up line: a connected socket pair; any thread writes a byte to `tx`,
/// the shard's heartbeat loop reads `rx`. Writes never block (a full buffer already
/// holds a wake).
#[derive(Debug)]
struct WakeLine {
    tx: Option<std::os::unix::net::UnixStream>,
    rx: Mutex<Option<std::os::unix::net::UnixStream>>,
}

impl WakeLine {
    fn new() -> WakeLine {
        match std::os::unix::net::UnixStream::pair() {
            Ok((tx, rx)) if tx.set_nonblocking(true).is_ok() => WakeLine {
                tx: Some(tx),
                rx: Mutex::new(Some(rx)),
            },
            _ => WakeLine {
                tx: None,
                rx: Mutex::new(None),
            },
        }
    }

    fn ring(&self) {
        use std::io::Write;
        if let Some(tx) = &self.tx {
            let _ = (&*tx).write(&[1]);
        }
    }
}

/// A shard's paths with their input bitrate, as last published by the shard.
#[derive(Debug, Clone, Default)]
pub struct ShardSnapshot {
    /// Paths owned, relayed or waited for on the shard.
    pub paths: Vec<PathSnapshot>,
}

/// One path on one shard.
#[derive(Debug, Clone)]
pub struct PathSnapshot {
    /// The hub's view.
    pub info: PathInfo,
    /// Input bitrate over the last interval, bits per second (owner only).
    pub bitrate_in: u64,
}

impl Shared {
    /// Shared state for `settings` with the resolved listen addresses.
    pub fn new(mut settings: Settings, http_addr: SocketAddr, rtmp_addr: SocketAddr) -> Self {
        let n = settings.shards;
        let streams = Mutex::new(std::mem::take(&mut settings.table));
        let a = &settings.config.auth;
        let auth_failures = Mutex::new(FailLimiter::new(
            a.fail_limit,
            AUTH_FAIL_WINDOW,
            a.fail_block.0,
        ));
        Shared {
            auth_failures,
            streams,
            settings,
            stats: (0..n).map(|_| Arc::new(ShardStats::default())).collect(),
            latency: (0..n).map(|_| Arc::new(FrameLatency::default())).collect(),
            sessions: Arc::default(),
            snapshots: (0..n)
                .map(|_| Mutex::new(ShardSnapshot::default()))
                .collect(),
            stopping: AtomicBool::new(false),
            reload_requested: AtomicBool::new(false),
            started: SystemTime::now(),
            http_addr,
            rtmp_addr,
            udp_ports: (0..n).map(|_| AtomicU64::new(0)).collect(),
            cpus: (0..n).map(|_| AtomicU64::new(u64::MAX)).collect(),
            heartbeats: (0..n).map(|_| AtomicU64::new(0)).collect(),
            wakes: (0..n).map(|_| WakeLine::new()).collect(),
            addr_counts: Default::default(),
        }
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.settings.shards
    }

    /// The configured streams as they run now (a poisoned lock still holds a valid
    /// table: it is replaced whole).
    pub fn streams(&self) -> std::sync::MutexGuard<'_, StreamTable> {
        self.streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether browsers get Opus made from AAC (`media.transcode_audio` is not `off`).
    pub fn transcodes_audio(&self) -> bool {
        self.settings.config.media.transcode_audio != crate::config::TranscodeAudio::Off
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Starts the shutdown: every shard's heartbeat loop wakes and sees it. Returns
    /// whether it had begun already.
    pub fn request_stop(&self) -> bool {
        let was = self.stopping.swap(true, Ordering::Relaxed);
        for w in &self.wakes {
            w.ring();
        }
        was
    }

    /// Wakes shard `shard`'s heartbeat loop (a reload to apply, paths to show).
    pub fn wake(&self, shard: usize) {
        if let Some(w) = self.wakes.get(shard) {
            w.ring();
        }
    }

    /// The end shard `shard` waits on for [`Shared::wake`], taken once; `None` if the
    /// socket pair could not be made (the shard then polls).
    pub fn take_wake(&self, shard: usize) -> Option<std::os::unix::net::UnixStream> {
        let w = self.wakes.get(shard)?;
        w.rx.lock().ok()?.take()
    }

    /// The per-address table of `listener` (a poisoned lock is still a valid table:
    /// its holder only counted).
    fn addr_counts(&self, listener: Listener) -> std::sync::MutexGuard<'_, AddrCounts> {
        let m = &self.addr_counts[listener.index()];
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of every shard's snapshot.
    pub fn snapshots(&self) -> Vec<ShardSnapshot> {
        self.snapshots
            .iter()
            .map(|m| m.lock().map(|s| s.clone()).unwrap_or_default())
            .collect()
    }
}

/// The context of one shard, shared by its tasks through `Rc`.
pub struct Shard {
    /// Index of the shard.
    pub id: usize,
    /// Process-wide state.
    pub shared: Arc<Shared>,
    /// Streams, relays and directory of this shard.
    pub hub: RefCell<Hub>,
    /// Fires when the shard shuts down.
    pub shutdown: Shutdown,
    /// Where orders for other shards go (the mesh).
    pub cmd_tx: Rc<dyn CmdTx>,
    /// The tasks of the configured sources this shard runs, by path: dropping one stops
    /// its source.
    pub sources: RefCell<HashMap<StreamPath, glommio::Task<()>>>,
    /// Set when the shard's paths changed in a way the API should show at once: the
    /// next heartbeat publishes the snapshot instead of waiting for the second.
    pub dirty: Cell<bool>,
    /// How to end each of the shard's sessions (the shard's half of
    /// [`Shared::sessions`]).
    pub sessions: Rc<crate::session::Local>,
}

/// An order about a configured stream's source, for the shard that runs it or is to.
#[derive(Debug, Clone)]
pub enum SourceCmd {
    /// Start the source of this plan here (its owner shard).
    Start(StreamPlan),
    /// Stop the source of `path` here, then start `then` (a restart; its plan may name
    /// another shard: the start goes there after this shard's withdrawal, in order).
    Stop {
        /// The stream.
        path: StreamPath,
        /// The path is gone: its viewers are ended. Otherwise they stay attached and
        /// resume when the path is published again.
        removed: bool,
        /// What to start once it is stopped.
        then: Option<StreamPlan>,
    },
}

/// How a shard sends [`SourceCmd`]s to another shard (the mesh implements it).
pub trait CmdTx {
    /// Queues `cmd` for shard `to`: never lost, delivered in order after what this shard
    /// sent `to` before.
    fn send_cmd(&self, to: usize, cmd: SourceCmd);
}

/// The window `auth.fail_limit` counts failed attempts in.
pub const AUTH_FAIL_WINDOW: Duration = Duration::from_secs(60);

impl Shard {
    /// This shard's counters.
    pub fn stats(&self) -> &ShardStats {
        &self.shared.stats[self.id]
    }

    /// This shard's frame latency histograms.
    pub fn latency(&self) -> &FrameLatency {
        &self.shared.latency[self.id]
    }

    /// Asks the access policy whether the peer at `ip` with `creds` may do `action` on
    /// `path` now. Wrong credentials count against the address; once it reaches
    /// `auth.fail_limit`, its requests with credentials are [`Verdict::Blocked`] for
    /// `auth.fail_block` (logged once). Anonymous requests are still answered.
    pub fn authorize(
        &self,
        action: Action,
        path: Option<&str>,
        ip: Option<IpAddr>,
        creds: &Credentials,
    ) -> Verdict {
        let now = Instant::now();
        let sent = creds.user.is_some() || creds.pass.is_some() || creds.token.is_some();
        let failures = &self.shared.auth_failures;
        let blocked = |ip| failures.lock().is_ok_and(|f| f.is_blocked(ip, now));
        if sent && ip.is_some_and(blocked) {
            return Verdict::Blocked;
        }
        let unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let req = AccessRequest {
            action,
            path,
            ip,
            creds,
        };
        let verdict = self.shared.settings.auth.check(&req, unix);
        if verdict == Verdict::Unauthorized
            && sent
            && let Some(ip) = ip
            && failures.lock().is_ok_and(|mut f| f.fail(ip, now))
        {
            let a = &self.shared.settings.config.auth;
            warn!(
                %ip,
                "{} failed access attempts within {AUTH_FAIL_WINDOW:?}: its credentials are refused for {:?}",
                a.fail_limit, a.fail_block.0
            );
        }
        verdict
    }
}

/// A one-shot, shard-local shutdown signal that any number of tasks can wait for. A
/// waiter that goes away (its connection ended) unregisters itself, so the table holds
/// only live waiters.
#[derive(Default)]
pub struct Shutdown {
    fired: Cell<bool>,
    next: Cell<u64>,
    wakers: RefCell<HashMap<u64, Waker>>,
}

impl Shutdown {
    /// Fires the signal and wakes every waiter.
    pub fn fire(&self) {
        self.fired.set(true);
        for (_, w) in self.wakers.borrow_mut().drain() {
            w.wake();
        }
    }

    /// Whether the signal has fired.
    pub fn is_fired(&self) -> bool {
        self.fired.get()
    }

    /// Number of registered waiters.
    pub fn waiters(&self) -> usize {
        self.wakers.borrow().len()
    }

    /// Resolves once the signal fires.
    pub fn wait(&self) -> ShutdownWait<'_> {
        let id = self.next.get();
        self.next.set(id + 1);
        ShutdownWait { signal: self, id }
    }
}

/// The future of [`Shutdown::wait`].
pub struct ShutdownWait<'a> {
    signal: &'a Shutdown,
    id: u64,
}

impl Future for ShutdownWait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.fired.get() {
            return Poll::Ready(());
        }
        self.signal
            .wakers
            .borrow_mut()
            .insert(self.id, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for ShutdownWait<'_> {
    fn drop(&mut self) {
        self.signal.wakers.borrow_mut().remove(&self.id);
    }
}

/// A shard handle as drivers hold it.
pub type ShardRef = Rc<Shard>;

/// The listener a connection came in on: each has its own limits and gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// HTTP (and the WebSockets upgraded from it).
    Http,
    /// RTMP.
    Rtmp,
}

impl Listener {
    /// The name logs use.
    pub fn name(self) -> &'static str {
        match self {
            Listener::Http => "HTTP",
            Listener::Rtmp => "RTMP",
        }
    }

    /// The config section of its limits.
    pub fn section(self) -> &'static str {
        match self {
            Listener::Http => "http",
            Listener::Rtmp => "rtmp",
        }
    }

    fn index(self) -> usize {
        match self {
            Listener::Http => 0,
            Listener::Rtmp => 1,
        }
    }

    /// `max_connections` (per shard) and `max_connections_per_ip` (process-wide; 0 is
    /// no limit).
    fn limits(self, settings: &Settings) -> (usize, usize) {
        let c = &settings.config;
        let (shard, per_ip) = match self {
            Listener::Http => (c.http.max_connections, c.http.max_connections_per_ip),
            Listener::Rtmp => (c.rtmp.max_connections, c.rtmp.max_connections_per_ip),
        };
        (shard, if per_ip == 0 { usize::MAX } else { per_ip })
    }

    fn gauge(self, st: &ShardStats) -> &AtomicU64 {
        match self {
            Listener::Http => &st.http_connections,
            Listener::Rtmp => &st.rtmp_connections,
        }
    }
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The shard already holds `max_connections` of this listener.
    Shard {
        /// Which listener.
        listener: Listener,
        /// The limit.
        max: usize,
    },
    /// The peer's address already holds `max_connections_per_ip` of this listener.
    Address {
        /// Which listener.
        listener: Listener,
        /// The address.
        ip: IpAddr,
        /// The limit.
        max: usize,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Shard { listener, max } => write!(
                f,
                "{}.max_connections = {max} reached on this shard",
                listener.section()
            ),
            Refusal::Address { listener, ip, max } => write!(
                f,
                "{}.max_connections_per_ip = {max} from {ip}",
                listener.section()
            ),
        }
    }
}

/// Counts an open TCP connection (HTTP, WebSocket, RTMP) for as long as it lives: in the
/// shard's total and per-listener gauges and in the process-wide per-address table.
pub struct ConnGuard {
    shard: ShardRef,
    listener: Listener,
    ip: Option<IpAddr>,
}

impl ConnGuard {
    /// Counts a new connection from `peer` unless a limit of `listener` refuses it.
    pub fn admit(
        shard: &ShardRef,
        listener: Listener,
        peer: Option<SocketAddr>,
    ) -> Result<Self, Refusal> {
        let (max, max_per_ip) = listener.limits(&shard.shared.settings);
        let st = shard.stats();
        if crate::stats::get(listener.gauge(st)) >= max as u64 {
            return Err(Refusal::Shard { listener, max });
        }
        let ip = peer.map(|p| p.ip());
        if let Some(ip) = ip {
            let cap = u32::try_from(max_per_ip).unwrap_or(u32::MAX);
            shard
                .shared
                .addr_counts(listener)
                .try_add(ip, cap)
                .map_err(|_| Refusal::Address {
                    listener,
                    ip,
                    max: max_per_ip,
                })?;
        }
        crate::stats::add(&st.connections, 1);
        crate::stats::add(listener.gauge(st), 1);
        crate::stats::add(&st.connections_total, 1);
        Ok(ConnGuard {
            shard: shard.clone(),
            listener,
            ip,
        })
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let st = self.shard.stats();
        crate::stats::sub(&st.connections, 1);
        crate::stats::sub(self.listener.gauge(st), 1);
        if let Some(ip) = self.ip {
            self.shard.shared.addr_counts(self.listener).remove(ip);
        }
    }
}

/// How long an accept loop waits after a failed accept (out of file descriptors, say)
/// before trying again: the loop must not spin while the condition lasts.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// At most one refusal line and one accept-error line per listener and shard this often.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The refusal and accept-error log of one accept loop.
struct AcceptLog {
    listener: Listener,
    shard: usize,
    refused: LogLimiter,
    last_refusal: Option<Refusal>,
    errors: LogLimiter,
    last_error: String,
}

impl AcceptLog {
    fn new(listener: Listener, shard: usize) -> Self {
        AcceptLog {
            listener,
            shard,
            refused: LogLimiter::new(REFUSAL_LOG_INTERVAL),
            last_refusal: None,
            errors: LogLimiter::new(REFUSAL_LOG_INTERVAL),
            last_error: String::new(),
        }
    }

    fn refused(&mut self, now: Instant, why: Refusal) {
        self.last_refusal = Some(why);
        if let Some(b) = self.refused.hit(now) {
            self.log_refused(b);
        }
    }

    fn error(&mut self, now: Instant, e: String) {
        self.last_error = e;
        if let Some(b) = self.errors.hit(now) {
            self.log_errors(b);
        }
    }

    /// When the next held-back count is due, if any is.
    fn due(&self) -> Option<Instant> {
        match (self.refused.deadline(), self.errors.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Reports what was counted since the last lines, once they are due.
    fn flush(&mut self, now: Instant) {
        if let Some(b) = self.refused.flush(now) {
            self.log_refused(b);
        }
        if let Some(b) = self.errors.flush(now) {
            self.log_errors(b);
        }
    }

    fn log_refused(&self, b: Burst) {
        let why = self
            .last_refusal
            .map_or_else(String::new, |r| r.to_string());
        let (name, shard) = (self.listener.name(), self.shard);
        if b.count == 1 {
            warn!(shard, "{name}: refused a connection ({why})");
        } else {
            let secs = b.over.as_secs_f64();
            warn!(
                shard,
                "{name}: refused {} connections in the last {secs:.1} s (last: {why})", b.count
            );
        }
    }

    fn log_errors(&self, b: Burst) {
        let (name, shard, e) = (self.listener.name(), self.shard, &self.last_error);
        let retry = ACCEPT_RETRY.as_millis();
        if b.count == 1 {
            warn!(
                shard,
                "{name}: accept failed ({e}); retrying every {retry} ms"
            );
        } else {
            let secs = b.over.as_secs_f64();
            warn!(
                shard,
                "{name}: accept failed {} times in the last {secs:.1} s ({e}); retrying every {retry} ms",
                b.count
            );
        }
    }
}

/// Sets the kernel send buffer (SO_SNDBUF) of a connection: what a slow reader can hold
/// in the kernel. A failure is logged at debug level (the kernel's size stays).
pub fn set_send_buffer(stream: &glommio::net::TcpStream, bytes: usize) {
    use std::os::fd::AsRawFd;
    let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt on a socket we own, with a pointer to a c_int and its length.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!("SO_SNDBUF {bytes}: {}", std::io::Error::last_os_error());
    }
}

/// The accept loop every TCP listener runs until its task is dropped: admits each
/// connection through [`ConnGuard::admit`] and hands it to `serve` with its guard, or
/// gives it to `refuse` with the reason (counted in `connections_refused`). Refusals and
/// failed accepts are logged at most once a second with a count; a failed accept (no file
/// descriptor left) is retried after a short pause instead of spinning.
pub async fn accept_loop(
    shard: ShardRef,
    listener: Listener,
    tcp: glommio::net::TcpListener,
    mut serve: impl FnMut(glommio::net::TcpStream, ConnGuard),
    mut refuse: impl FnMut(glommio::net::TcpStream, Refusal),
) {
    use futures_lite::future;
    let log = RefCell::new(AcceptLog::new(listener, shard.id));
    let accepting = async {
        loop {
            let stream = match tcp.accept().await {
                Ok(s) => s,
                Err(e) => {
                    crate::stats::add(&shard.stats().accept_errors, 1);
                    log.borrow_mut().error(Instant::now(), e.to_string());
                    glommio::timer::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            };
            match ConnGuard::admit(&shard, listener, stream.peer_addr().ok()) {
                Ok(guard) => serve(stream, guard),
                Err(why) => {
                    crate::stats::add(&shard.stats().connections_refused, 1);
                    log.borrow_mut().refused(Instant::now(), why);
                    refuse(stream, why);
                }
            }
        }
    };
    let flushing = async {
        loop {
            // Until the held-back counts are due, or a while when nothing is held back
            // (a refusal meanwhile is logged at once, and what follows it is due a
            // second later).
            let wait = log.borrow().due().map_or(REFUSAL_LOG_INTERVAL, |at| {
                at.saturating_duration_since(Instant::now())
            });
            glommio::timer::sleep(wait.max(Duration::from_millis(1))).await;
            log.borrow_mut().flush(Instant::now());
        }
    };
    future::or(accepting, flushing).await
}

/// What woke a connection task: see [`Shard::wait_io`].
pub enum Wake<T> {
    /// The socket read returned (bytes, EOF as `Ok(0)`, or an error).
    Read(std::io::Result<usize>),
    /// The extra future finished first.
    Other(T),
    /// The deadline passed.
    Timeout,
    /// The shard is shutting down.
    Shutdown,
}

impl Shard {
    /// Waits for the first of: bytes on `stream` (read into `buf`, counted in
    /// `bytes_in`), `other`, `timeout`, or shutdown. The one wait every connection driver
    /// makes; a losing read is safely abandoned (glommio reads on readiness; a TLS stream
    /// keeps what it read in its rustls connection). With TLS, `bytes_in` counts
    /// plaintext.
    pub async fn wait_io<T>(
        &self,
        stream: &mut (impl futures_lite::AsyncRead + Unpin),
        buf: &mut [u8],
        other: impl Future<Output = T>,
        timeout: std::time::Duration,
    ) -> Wake<T> {
        use futures_lite::{AsyncReadExt, future};
        let wake = future::or(
            async { Wake::Read(stream.read(buf).await) },
            future::or(
                async { Wake::Other(other.await) },
                future::or(
                    async {
                        glommio::timer::sleep(timeout).await;
                        Wake::Timeout
                    },
                    async {
                        self.shutdown.wait().await;
                        Wake::Shutdown
                    },
                ),
            ),
        )
        .await;
        if let Wake::Read(Ok(n)) = &wake {
            crate::stats::add(&self.stats().bytes_in, *n as u64);
        }
        wake
    }
}

impl Shard {
    /// Runs the TLS handshake of a connection accepted on a TLS listener, bounded by
    /// `timeout` and by shutdown. A failed one (not TLS, refused by rustls, too slow) is
    /// counted in `tls_handshake_failures` and logged at debug level only, as any
    /// scanner can cause them in a loop; the connection is then dropped.
    pub async fn accept_tls(
        &self,
        acceptor: &crate::tls::Acceptor,
        tcp: glommio::net::TcpStream,
        timeout: Duration,
        listener: Listener,
    ) -> Option<crate::tls::Stream> {
        let peer = tcp.peer_addr().ok();
        let handshake = async { Some(acceptor.accept(tcp, timeout).await) };
        let stop = async {
            self.shutdown.wait().await;
            None
        };
        match futures_lite::future::or(handshake, stop).await? {
            Ok(stream) => Some(stream),
            Err(e) => {
                crate::stats::add(&self.stats().tls_handshake_failures, 1);
                tracing::debug!(?peer, "{} over TLS: {e}", listener.name());
                None
            }
        }
    }
}
