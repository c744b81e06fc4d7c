//! The runtime: pre-flight checks, one pinned glommio executor per shard, listeners,
//! the mesh, signals and shutdown.
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock.

mod mesh;
mod preflight;
mod signal;
mod trim;

pub use mesh::{Mesh, MeshEnds, MeshPlan, ShardMsg};
pub use preflight::{NoFile, PreflightError, check_memlock, check_nofile, probe_listeners};

use crate::config::Settings;
use crate::shard::{PathSnapshot, Shard, ShardRef, ShardSnapshot, Shared, Shutdown, SourceCmd};
use crate::stream::{Hub, HubLimits, SinkLimits};
use crate::{http, source, stats, webrtc};
use glommio::net::{TcpListener, UdpSocket};
use glommio::{CpuSet, LocalExecutorPoolBuilder, PoolPlacement};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// How long shutdown may take before the process exits anyway.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(2);

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A pre-flight check failed (a configuration or environment problem).
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// The executors could not be started.
    #[error("cannot start shards: {0}")]
    Start(String),
}

/// What the pre-flight checks found.
#[derive(Debug)]
pub struct Preflight {
    /// The HTTP address, its port resolved.
    pub http_addr: SocketAddr,
    /// The RTMP address, its port resolved.
    pub rtmp_addr: SocketAddr,
    /// The open-file limit (to log once logging is up).
    pub nofile: NoFile,
}

/// The checks made before starting: locked memory, the open-file limit (raised to the
/// hard limit; connection caps still at their defaults lowered to fit it), listen
/// addresses and ports.
pub fn preflight(settings: &mut Settings) -> Result<Preflight, PreflightError> {
    check_memlock(settings.shards, settings.config.runtime.io_memory.0)?;
    let nofile = check_nofile(settings)?;
    let (http_addr, rtmp_addr) = probe_listeners(settings)?;
    preflight::probe_tls_listeners(settings, &[http_addr, rtmp_addr])?;
    Ok(Preflight {
        http_addr,
        rtmp_addr,
        nofile,
    })
}

/// Starts the server and blocks until it has shut down (SIGINT/SIGTERM). `http_addr` and
/// `rtmp_addr` come from [`preflight`].
pub fn run(
    settings: Settings,
    http_addr: SocketAddr,
    rtmp_addr: SocketAddr,
) -> Result<(), RunError> {
    let n = settings.shards;
    signal::block_signals();
    let shared = Arc::new(Shared::new(settings, http_addr, rtmp_addr));
    signal::spawn_watcher(shared.clone());

    let placement = placement(&shared.settings)?;
    let plan = MeshPlan::new(n, shared.settings.config.runtime.mesh_capacity);
    let ends: Arc<Mutex<Vec<Option<MeshEnds>>>> =
        Arc::new(Mutex::new(plan.split().into_iter().map(Some).collect()));
    let ids: Arc<Mutex<Vec<usize>>> = Arc::new(Mutex::new(Vec::new()));
    let barrier = Arc::new(Barrier::new(n));
    let registry = Arc::new(webrtc::Registry::default());
    let (done_tx, done_rx) = std::sync::mpsc::channel::<usize>();

    let handles = LocalExecutorPoolBuilder::new(placement)
        .name("corecast-shard")
        .io_memory(shared.settings.config.runtime.io_memory.as_usize())
        .on_all_shards({
            let shared = shared.clone();
            move || async move {
                // Executors are created in placement order with increasing ids: the rank
                // of this executor's id is its shard index (and its CPU is cpus[index]).
                let my_id = glommio::executor().id();
                if let Ok(mut v) = ids.lock() {
                    v.push(my_id);
                }
                barrier.wait();
                let index = ids
                    .lock()
                    .map(|v| v.iter().filter(|id| **id < my_id).count())
                    .unwrap_or(0);
                let ends = ends
                    .lock()
                    .ok()
                    .and_then(|mut e| e.get_mut(index).and_then(Option::take));
                let result = match ends {
                    Some(ends) => shard_main(index, shared, ends, registry).await,
                    None => Err(ShardError::NoMeshEnds(index)),
                };
                if let Err(e) = &result {
                    error!(shard = index, "shard failed: {e}");
                }
                let _ = done_tx.send(index);
                result
            }
        })
        .map_err(|e| RunError::Start(e.to_string()))?;

    // Wait for the shards; after a stop request, give them SHUTDOWN_DEADLINE.
    let mut finished = 0;
    let mut failed = false;
    let mut stop_seen: Option<Instant> = None;
    let mut trimmer = trim::Trimmer::new(Instant::now());
    while finished < n {
        match done_rx.recv_timeout(Duration::from_millis(250)) {
            Ok(_) => finished += 1,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let _ = trimmer.tick(Instant::now());
        if shared.is_stopping() {
            let since = *stop_seen.get_or_insert_with(Instant::now);
            if since.elapsed() > SHUTDOWN_DEADLINE {
                warn!("shards did not stop within {SHUTDOWN_DEADLINE:?}; exiting anyway");
                return Ok(());
            }
        } else if finished > 0 {
            // A shard ended on its own: it failed. Stop the others.
            failed = true;
            shared.request_stop();
        }
    }
    for r in handles.join_all() {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failed = true;
                error!("{e}");
            }
            Err(e) => {
                failed = true;
                error!("shard executor: {e}");
            }
        }
    }
    if failed {
        return Err(RunError::Start("a shard failed; see the log above".into()));
    }
    info!("stopped");
    Ok(())
}

fn placement(settings: &Settings) -> Result<PoolPlacement, RunError> {
    let online = CpuSet::online().map_err(|e| RunError::Start(format!("cannot list CPUs: {e}")))?;
    let cpus: Vec<usize> = match &settings.cpus {
        Some(c) => c.clone(),
        None => {
            let mut avail: Vec<usize> = core_affinity::get_core_ids()
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.id)
                .collect();
            avail.sort_unstable();
            if avail.is_empty() {
                return Ok(PoolPlacement::Unbound(settings.shards));
            }
            (0..settings.shards)
                .map(|i| avail[i % avail.len()])
                .collect()
        }
    };
    let mut sets: Vec<CpuSet> = cpus
        .iter()
        .map(|cpu| online.clone().filter(|l| l.cpu == *cpu))
        .collect();
    if let Some(i) = sets.iter().position(|s| s.is_empty()) {
        return Err(RunError::Start(format!("CPU {} is not online", cpus[i])));
    }
    // glommio 0.9 hands out `Custom` sets from the end of the vector (it pops them), so
    // the executor spawned k-th (shard k) must find cpus[k] last.
    sets.reverse();
    Ok(PoolPlacement::Custom(sets))
}

/// Why a shard could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    /// The shard found no mesh ends for its index.
    #[error("shard {0}: no mesh ends")]
    NoMeshEnds(usize),
    /// A listener or socket could not be bound.
    #[error("shard {shard}: bind {what} {addr}: {source}")]
    Bind {
        /// The shard.
        shard: usize,
        /// What was bound (`http`, `rtmp`, `webrtc udp`).
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The crypto provider could not make the DTLS certificate.
    #[error("shard {0}: the crypto provider could not make a DTLS certificate")]
    NoCertificate(usize),
}

/// Runs one shard until shutdown.
async fn shard_main(
    id: usize,
    shared: Arc<Shared>,
    ends: MeshEnds,
    registry: Arc<webrtc::Registry>,
) -> Result<(), ShardError> {
    // The first timer of an executor can take several milliseconds: warm it up.
    glommio::timer::sleep(Duration::from_millis(1)).await;
    let (mesh, receivers) = ends.connect().await;
    let hub = make_hub(id, &shared, mesh.clone());
    let (rtc, udp, udp_port) = start_webrtc(id, &shared, mesh.clone(), registry)?;
    let shard: ShardRef = Rc::new(Shard {
        id,
        shared: shared.clone(),
        hub: RefCell::new(hub),
        shutdown: Shutdown::default(),
        cmd_tx: mesh.clone(),
        sources: RefCell::default(),
        dirty: Cell::new(false),
        sessions: crate::session::Local::new(id, shared.sessions.clone(), mesh.clone()),
    });
    if let Some(cpu) = current_cpu() {
        shared.cpus[id].store(cpu as u64, Ordering::Relaxed);
    }
    spawn_receivers(&shard, &rtc, receivers);

    let bind = |what, addr| {
        listen_shared(addr).map_err(|e| ShardError::Bind {
            shard: id,
            what,
            addr,
            source: e,
        })
    };
    let http_listener = bind("http", shared.http_addr)?;
    let rtmp_listener = bind("rtmp", shared.rtmp_addr)?;
    let tls = &shared.settings.tls;
    let https = match &tls.http {
        Some(l) => Some((bind("https", l.listen)?, l.acceptor.clone())),
        None => None,
    };
    let rtmps = match &tls.rtmp {
        Some(l) => Some((bind("rtmps", l.listen)?, l.acceptor.clone())),
        None => None,
    };

    // Tasks that end with the shard: dropping a glommio Task cancels it. The listeners
    // come first (shutdown closes them before the rest).
    let mut tasks = vec![
        glommio::spawn_local(http::server::serve(
            shard.clone(),
            rtc.clone(),
            http_listener,
            None,
        )),
        glommio::spawn_local(crate::rtmp::serve(shard.clone(), rtmp_listener, None)),
    ];
    if let Some((l, acceptor)) = https {
        let serve = http::server::serve(shard.clone(), rtc.clone(), l, Some(acceptor));
        tasks.push(glommio::spawn_local(serve));
    }
    if let Some((l, acceptor)) = rtmps {
        let serve = crate::rtmp::serve(shard.clone(), l, Some(acceptor));
        tasks.push(glommio::spawn_local(serve));
    }
    let listeners = tasks.len();
    tasks.push(glommio::spawn_local(webrtc::driver::run(
        shard.clone(),
        rtc,
        udp,
    )));
    // Let every shard bind and connect before sources announce streams.
    glommio::timer::sleep(Duration::from_millis(20)).await;
    let plans: Vec<_> = shared.streams().plans.clone();
    for plan in plans.into_iter().filter(|p| p.shard == id) {
        source::handle(&shard, SourceCmd::Start(plan));
    }
    info!(shard = id, cpu = ?current_cpu(), udp_port, "shard ready");
    if id == 0 {
        log_addresses(&shared);
    }
    tick_until_stopped(&shard).await;
    shut_down(&shard, tasks, listeners).await;
    mesh.close();
    Ok(())
}

/// The shard's hub, sending to other shards over `mesh`.
fn make_hub(id: usize, shared: &Shared, mesh: Rc<Mesh>) -> Hub {
    let cfg = &shared.settings.config;
    let limits = HubLimits {
        gop_max_frames: cfg.media.gop_max_frames,
        gop_max_bytes: cfg.media.gop_max_bytes.as_usize(),
        sink: SinkLimits {
            max_frames: cfg.media.sink_max_frames,
            max_bytes: cfg.media.sink_max_bytes.as_usize(),
        },
        transcode: (cfg.media.transcode_audio == crate::config::TranscodeAudio::Auto)
            .then(crate::media::transcode::TranscodeConfig::default),
    };
    let mut hub = Hub::new(id, shared.shards(), limits, mesh, shared.stats[id].clone());
    hub.set_cpu_clock(thread_cpu_time);
    hub
}

/// CPU time of the calling thread (a shard's), for what the hub's transcoding costs.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to ours.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// Binds the shard's WebRTC UDP socket and makes its engine, owned by the handle the
/// UDP driver and the HTTP server share. Returns the handle, the socket and its port.
fn start_webrtc(
    id: usize,
    shared: &Shared,
    mesh: Rc<Mesh>,
    registry: Arc<webrtc::Registry>,
) -> Result<(webrtc::Handle, UdpSocket, u16), ShardError> {
    let wcfg = &shared.settings.config.webrtc;
    let port = if wcfg.udp_port == 0 {
        0
    } else {
        wcfg.udp_port + id as u16
    };
    let addr = SocketAddr::new(wcfg.bind, port);
    let udp = UdpSocket::bind(addr).map_err(|e| ShardError::Bind {
        shard: id,
        what: "webrtc udp",
        addr,
        source: e.into(),
    })?;
    let udp_port = udp.local_addr().map(|a| a.port()).unwrap_or(port);
    shared.udp_ports[id].store(u64::from(udp_port), Ordering::Relaxed);
    let cert = webrtc::process_cert().ok_or(ShardError::NoCertificate(id))?;
    let candidates = webrtc::driver::candidate_addrs(wcfg.bind, &wcfg.advertised, udp_port);
    if id == 0 {
        info!(candidates = ?candidates, "webrtc host candidates");
    }
    let engine = webrtc::engine::Engine::new(
        Instant::now(),
        cert,
        webrtc::engine::EngineConfig {
            peer: webrtc::peer::PeerConfig {
                inactivity: wcfg.session_timeout.0,
                keyframe_interval: wcfg.keyframe_interval.0,
                nack_packets: wcfg.nack_packets,
                ..Default::default()
            },
            ingest: webrtc::ingest::IngestConfig {
                inactivity: wcfg.session_timeout.0,
                max_bitrate: wcfg.whip_max_bitrate,
                max_frame: shared.settings.config.media.max_frame_bytes.as_usize(),
                ..Default::default()
            },
            max_sessions: wcfg.max_sessions,
            candidates,
            local: SocketAddr::new(wcfg.bind, udp_port),
            resend: webrtc::engine::ResendLimits {
                max_bytes: shared.settings.config.media.sink_max_bytes.as_usize(),
                budget: wcfg.gop_resend_budget.as_usize() as u64,
            },
        },
    );
    let rtc = webrtc::Handle::new(id, engine, registry, mesh);
    Ok((rtc, udp, udp_port))
}

/// One task per peer shard delivering its messages: stream messages to the hub,
/// WebRTC session messages to the WebRTC side, kicks to the shard's sessions.
fn spawn_receivers(
    shard: &ShardRef,
    rtc: &webrtc::Handle,
    receivers: Vec<(
        usize,
        glommio::channels::shared_channel::ConnectedReceiver<ShardMsg>,
    )>,
) {
    for (from, rx) in receivers {
        let shard = shard.clone();
        let rtc = rtc.clone();
        glommio::spawn_local(async move {
            while let Some(msg) = rx.recv().await {
                match msg {
                    ShardMsg::Stream(m) => shard.hub.borrow_mut().handle_msg(from, m),
                    ShardMsg::Session(m) => rtc.handle_msg(m),
                    ShardMsg::Source(cmd) => source::handle(&shard, cmd),
                    ShardMsg::Kick(id) => {
                        shard.sessions.kick_local(id);
                    }
                }
            }
        })
        .detach();
    }
}

fn log_addresses(shared: &Shared) {
    info!(
        "listening http={} rtmp={} webrtc_udp={:?}",
        shared.http_addr,
        shared.rtmp_addr,
        (0..shared.shards())
            .map(|i| shared.udp_ports[i].load(Ordering::Relaxed))
            .collect::<Vec<_>>()
    );
    let ip = shared.http_addr.ip();
    let host = match ip {
        _ if ip.is_unspecified() => "localhost".to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        std::net::IpAddr::V4(v4) => v4.to_string(),
    };
    info!(
        "web page: http://{host}:{}/  publish: rtmp://{host}:{}/live/KEY",
        shared.http_addr.port(),
        shared.rtmp_addr.port()
    );
    let tls = &shared.settings.tls;
    if let Some(l) = &tls.http {
        info!(
            "listening https={} (web page: https://{host}:{}/)",
            l.listen,
            l.listen.port()
        );
    }
    if let Some(l) = &tls.rtmp {
        info!(
            "listening rtmps={} (publish: rtmps://{host}:{}/live/KEY)",
            l.listen,
            l.listen.port()
        );
    }
}

/// The shard's heartbeat and its once-a-second prune and snapshot, until the process
/// stops: once a second, or at once when its wake line rings (stop, reload, a path
/// change).
async fn tick_until_stopped(shard: &ShardRef) {
    use futures_lite::AsyncReadExt;
    use std::os::fd::{FromRawFd, IntoRawFd};
    let shared = &shard.shared;
    let start = Instant::now();
    let mut last_tick = Instant::now();
    let mut last_bytes: HashMap<Arc<str>, u64> = HashMap::new();
    publish_snapshot(shard, &mut last_bytes, Duration::from_secs(1));
    // Woken by a byte on this line (stop, reload, a path change), else once a second;
    // without it (the socket pair could not be made), every 50 ms.
    let mut wake = shared.take_wake(shard.id).map(|s| {
        // SAFETY: the descriptor is one end of a connected Unix stream socket pair that
        // we own and hand over whole (into_raw_fd gives up our ownership); glommio
        // closes it when dropped.
        unsafe { glommio::net::UnixStream::from_raw_fd(s.into_raw_fd()) }
    });
    let mut buf = [0u8; 64];
    while !shared.is_stopping() {
        let due = TICK
            .saturating_sub(last_tick.elapsed())
            .max(Duration::from_millis(1));
        let lost = match wake.as_mut() {
            Some(w) => {
                futures_lite::future::or(
                    async { matches!(w.read(&mut buf).await, Ok(0) | Err(_)) },
                    async {
                        glommio::timer::sleep(due).await;
                        false
                    },
                )
                .await
            }
            None => {
                glommio::timer::sleep(due.min(Duration::from_millis(50))).await;
                false
            }
        };
        if lost {
            wake = None;
        }
        shared.heartbeats[shard.id].store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
        if shard.id == 0 && shared.reload_requested.swap(false, Ordering::Relaxed) {
            let _ = source::manage::reload_logged(shard, "SIGHUP");
        }
        if last_tick.elapsed() >= TICK {
            let dt = last_tick.elapsed();
            last_tick = Instant::now();
            shard.hub.borrow_mut().prune();
            publish_snapshot(shard, &mut last_bytes, dt);
        } else if shard.dirty.get() {
            // Paths came or went: show them now (bitrates are computed at the second).
            publish_snapshot(shard, &mut last_bytes.clone(), last_tick.elapsed());
        }
    }
}

/// The heartbeat: prune, snapshot and heartbeat once a second.
const TICK: Duration = Duration::from_secs(1);

/// Stops the shard: fires its shutdown signal, closes the listeners (the first
/// `listeners` tasks), unpublishes its streams and gives connections up to 500 ms to say
/// goodbye.
async fn shut_down(shard: &Shard, mut tasks: Vec<glommio::Task<()>>, listeners: usize) {
    let (id, shared) = (shard.id, &shard.shared);
    info!(shard = id, "shutting down");
    shard.shutdown.fire();
    drop(tasks.drain(..listeners)); // listeners close: no new connections
    shard.hub.borrow_mut().unpublish_all();
    // Let connections send their goodbyes (RTSP sources their TEARDOWN).
    let grace = Instant::now();
    while (stats::get(&shared.stats[id].connections) > 0
        || stats::get(&shared.stats[id].rtsp_connections) > 0)
        && grace.elapsed() < Duration::from_millis(500)
    {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    drop(tasks);
    shard.sources.borrow_mut().clear();
}

fn publish_snapshot(shard: &Shard, last_bytes: &mut HashMap<Arc<str>, u64>, dt: Duration) {
    shard.dirty.set(false);
    let infos = shard.hub.borrow().paths();
    let secs = dt.as_secs_f64().max(0.001);
    let mut seen = HashMap::new();
    let paths = infos
        .into_iter()
        .map(|info| {
            let prev = last_bytes.get(&info.path).copied().unwrap_or(info.bytes_in);
            let bitrate_in = ((info.bytes_in.saturating_sub(prev)) as f64 * 8.0 / secs) as u64;
            seen.insert(info.path.clone(), info.bytes_in);
            PathSnapshot { info, bitrate_in }
        })
        .collect();
    *last_bytes = seen;
    if let Ok(mut s) = shard.shared.snapshots[shard.id].lock() {
        *s = ShardSnapshot { paths };
    }
}

/// Binds a listener every shard shares (SO_REUSEPORT: the kernel spreads connections
/// over the shards). glommio's own `TcpListener::bind` sets only SO_REUSEPORT; the
/// connections such a listener accepts then block the port for the ~60 s they spend in
/// TIME_WAIT after the server closed them, so a restart could not bind it. With
/// SO_REUSEADDR as well, a restart binds at once. A second instance is still refused: the
/// pre-flight bind (SO_REUSEADDR without SO_REUSEPORT) conflicts with listening sockets.
fn listen_shared(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::{FromRawFd, IntoRawFd};
    let sk = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sk.set_reuse_address(true)?;
    sk.set_reuse_port(true)?;
    sk.bind(&addr.into())?;
    sk.listen(1024)?;
    // SAFETY: the descriptor is a bound, listening TCP socket that we own and hand over
    // whole (into_raw_fd gives up our ownership); glommio closes it when dropped.
    Ok(unsafe { TcpListener::from_raw_fd(sk.into_raw_fd()) })
}

fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu has no preconditions; it returns -1 on error.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}
