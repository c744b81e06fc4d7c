//! What a shard's drivers share: the process-wide [`Shared`] state (immutable settings,
//! atomic counters, published snapshots) and the shard-local [`Shard`] context (the hub,
//! the shutdown signal).
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock.

use crate::config::Settings;
use crate::stats::ShardStats;
use crate::stream::{Hub, PathInfo};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::SystemTime;

/// State shared by all shards. Written only through atomics and the per-shard snapshot
/// mutexes (each written by its own shard once a second or on change, read by API calls);
/// never on the media path.
#[derive(Debug)]
pub struct Shared {
    /// Validated configuration.
    pub settings: Settings,
    /// Counters of each shard.
    pub stats: Vec<Arc<ShardStats>>,
    /// Each shard's latest view of its paths.
    pub snapshots: Vec<Mutex<ShardSnapshot>>,
    /// Set when the process is shutting down.
    pub stopping: AtomicBool,
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
    /// Milliseconds since start at each shard's last heartbeat.
    pub heartbeats: Vec<AtomicU64>,
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
    pub fn new(settings: Settings, http_addr: SocketAddr, rtmp_addr: SocketAddr) -> Self {
        let n = settings.shards;
        Shared {
            settings,
            stats: (0..n).map(|_| Arc::new(ShardStats::default())).collect(),
            snapshots: (0..n)
                .map(|_| Mutex::new(ShardSnapshot::default()))
                .collect(),
            stopping: AtomicBool::new(false),
            started: SystemTime::now(),
            http_addr,
            rtmp_addr,
            udp_ports: (0..n).map(|_| AtomicU64::new(0)).collect(),
            cpus: (0..n).map(|_| AtomicU64::new(u64::MAX)).collect(),
            heartbeats: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.settings.shards
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
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
}

impl Shard {
    /// This shard's counters.
    pub fn stats(&self) -> &ShardStats {
        &self.shared.stats[self.id]
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

/// Counts an open TCP connection (HTTP, WebSocket, RTMP) for as long as it lives.
pub struct ConnGuard<'a>(&'a Shard);

impl<'a> ConnGuard<'a> {
    /// Counts a new connection.
    pub fn new(shard: &'a Shard) -> Self {
        crate::stats::add(&shard.stats().connections, 1);
        crate::stats::add(&shard.stats().connections_total, 1);
        ConnGuard(shard)
    }
}

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        crate::stats::sub(&self.0.stats().connections, 1);
    }
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
    /// makes; a losing read is safely abandoned (glommio reads on readiness).
    pub async fn wait_io<T>(
        &self,
        stream: &mut glommio::net::TcpStream,
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
