//! The sessions the management API lists and ends: every RTMP publisher and player,
//! WebRTC viewer and RTSP camera source, on every shard.
//!
//! Two halves. The process-wide [`Registry`] holds one [`Entry`] per session (what it
//! is, where it lives, its counters); the API reads it from any shard. It is locked once
//! when a session starts and once when it ends, never on the media path: a session's
//! counters are atomics its own driver writes. The shard-local [`Local`] holds how to end
//! each of the shard's sessions (a [`Kick`] signal its driver waits on, or a closure);
//! ending a session of another shard is a message over the mesh ([`KickTx`]), answered
//! on the owner shard by [`Local::kick_local`].
//!
//! A driver registers its session with [`Local::register`] and holds the returned
//! [`SessionGuard`]: dropping it unregisters the session, whatever ended it.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};
use std::time::SystemTime;

/// A session's id: unique in the process, never reused (decimal in JSON and URLs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub u64);

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a string is not a session id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a session id (ids are decimal numbers)")]
pub struct BadId(pub String);

impl std::str::FromStr for Id {
    type Err = BadId;
    fn from_str(s: &str) -> Result<Self, BadId> {
        let bad = || BadId(s.chars().take(40).collect());
        if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map(Id).map_err(|_| bad())
    }
}

/// The protocol a session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// RTMP.
    Rtmp,
    /// RTMP over TLS.
    Rtmps,
    /// WebRTC.
    Webrtc,
    /// RTSP (a camera the server pulls).
    Rtsp,
    /// fMP4 over a WebSocket to a browser's Media Source Extensions.
    Mse,
}

impl Protocol {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Rtmps => "rtmps",
            Protocol::Webrtc => "webrtc",
            Protocol::Rtsp => "rtsp",
            Protocol::Mse => "mse",
        }
    }
}

/// What a session does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Publishes a stream (RTMP encoder).
    Publisher,
    /// Plays a stream over RTMP.
    Player,
    /// Watches a stream over WebRTC.
    Viewer,
    /// A source the server pulls (an RTSP camera).
    Source,
}

impl Kind {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Publisher => "publisher",
            Kind::Player => "player",
            Kind::Viewer => "viewer",
            Kind::Source => "source",
        }
    }
}

/// How a WebRTC session was negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signaling {
    /// WHEP (`POST /whep/{path}`).
    Whep,
    /// The WebSocket signaling at `/ws`.
    Ws,
    /// WHIP (`POST /whip/{path}`): a publisher.
    Whip,
}

impl Signaling {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Signaling::Whep => "whep",
            Signaling::Ws => "ws",
            Signaling::Whip => "whip",
        }
    }
}

/// What a session is, as its driver registers it.
#[derive(Debug, Clone)]
pub struct Info {
    /// Its protocol.
    pub protocol: Protocol,
    /// What it does.
    pub kind: Kind,
    /// How it was negotiated (WebRTC only).
    pub signaling: Option<Signaling>,
    /// The stream path.
    pub path: Option<Arc<str>>,
    /// The peer's address (for a source, the camera's, once connected).
    pub remote: Option<SocketAddr>,
}

/// A session's counters, written by its own driver only (relaxed atomics).
#[derive(Debug, Default)]
pub struct Counters {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    frames_dropped: AtomicU64,
}

impl Counters {
    /// Counts `n` bytes received.
    pub fn add_in(&self, n: u64) {
        self.bytes_in.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` bytes sent.
    pub fn add_out(&self, n: u64) {
        self.bytes_out.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the totals kept elsewhere by the driver (bytes received and sent).
    pub fn set_bytes(&self, bytes_in: u64, bytes_out: u64) {
        self.bytes_in.store(bytes_in, Ordering::Relaxed);
        self.bytes_out.store(bytes_out, Ordering::Relaxed);
    }

    /// Sets the frames dropped so far from the session's queue.
    pub fn set_dropped(&self, n: u64) {
        self.frames_dropped.store(n, Ordering::Relaxed);
    }

    /// Bytes received, bytes sent, frames dropped.
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
            self.frames_dropped.load(Ordering::Relaxed),
        )
    }
}

/// One registered session, as the API sees it.
#[derive(Debug)]
pub struct Entry {
    /// Its id.
    pub id: Id,
    /// The shard it lives on.
    pub shard: usize,
    /// When it was registered.
    pub started: SystemTime,
    /// Its protocol.
    pub protocol: Protocol,
    /// What it does.
    pub kind: Kind,
    /// How it was negotiated (WebRTC only).
    pub signaling: Option<Signaling>,
    /// The stream path.
    pub path: Option<Arc<str>>,
    /// The peer's address; a source's changes when it reconnects (locked then only).
    remote: Mutex<Option<SocketAddr>>,
    /// Its counters.
    pub counters: Counters,
}

impl Entry {
    /// The peer's address.
    pub fn remote(&self) -> Option<SocketAddr> {
        *lock(&self.remote)
    }

    /// The session as one element of `GET /api/v1/sessions`.
    pub fn to_json(&self) -> serde_json::Value {
        let (bytes_in, bytes_out, frames_dropped) = self.counters.get();
        serde_json::json!({
            "id": self.id.to_string(),
            "protocol": self.protocol.as_str(),
            "kind": self.kind.as_str(),
            "signaling": self.signaling.map(Signaling::as_str),
            "path": self.path.as_deref(),
            "remote": self.remote().map(|a| a.to_string()),
            "shard": self.shard,
            "started": rfc3339(self.started),
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
            "frames_dropped": frames_dropped,
        })
    }
}

/// `t` as RFC 3339 UTC to the second (`2026-12-03T10:11:12Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A poisoned lock still holds a valid table: its holders only insert and remove.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every session of the process (see the module doc).
#[derive(Debug)]
pub struct Registry {
    next: AtomicU64,
    by_id: Mutex<BTreeMap<Id, Arc<Entry>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            next: AtomicU64::new(1),
            by_id: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Registry {
    /// Registers a session of `shard` started at `started`.
    pub fn insert(&self, shard: usize, started: SystemTime, info: Info) -> Arc<Entry> {
        let id = Id(self.next.fetch_add(1, Ordering::Relaxed));
        let entry = Arc::new(Entry {
            id,
            shard,
            started,
            protocol: info.protocol,
            kind: info.kind,
            signaling: info.signaling,
            path: info.path,
            remote: Mutex::new(info.remote),
            counters: Counters::default(),
        });
        lock(&self.by_id).insert(id, entry.clone());
        entry
    }

    /// Forgets `id`.
    pub fn remove(&self, id: Id) {
        lock(&self.by_id).remove(&id);
    }

    /// Session `id`, if registered.
    pub fn get(&self, id: Id) -> Option<Arc<Entry>> {
        lock(&self.by_id).get(&id).cloned()
    }

    /// Every session, by id.
    pub fn list(&self) -> Vec<Arc<Entry>> {
        lock(&self.by_id).values().cloned().collect()
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        lock(&self.by_id).len()
    }

    /// Whether no session is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How a shard reaches the shard that holds a session (the runtime's mesh).
pub trait KickTx {
    /// Asks shard `to` to end session `id`.
    fn send_kick(&self, to: usize, id: Id);
}

/// A one-waiter signal a driver waits on beside its socket; fired to end the session.
#[derive(Debug, Default)]
pub struct Kick {
    fired: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Kick {
    /// Fires the signal (wakes the waiter).
    pub fn fire(&self) {
        self.fired.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Resolves once the signal fired, and re-arms it.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.fired.replace(false) {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

/// How to end one session of the shard.
type KickFn = Rc<dyn Fn()>;

/// The shard-local half: how to end each of the shard's sessions.
pub struct Local {
    shard: usize,
    registry: Arc<Registry>,
    kicks: RefCell<HashMap<Id, KickFn>>,
    tx: Rc<dyn KickTx>,
}

/// Why [`Local::end`] did not ask for an end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndError {
    /// No session has that id (any more).
    #[error("no session {0}")]
    NotFound(Id),
}

impl Local {
    /// Shard `shard`'s half of `registry`, reaching other shards through `tx`.
    pub fn new(shard: usize, registry: Arc<Registry>, tx: Rc<dyn KickTx>) -> Rc<Self> {
        Rc::new(Local {
            shard,
            registry,
            kicks: RefCell::new(HashMap::new()),
            tx,
        })
    }

    /// The process-wide registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Registers a session its driver ends when [`SessionGuard::kicked`] resolves.
    pub fn register(self: &Rc<Self>, started: SystemTime, info: Info) -> SessionGuard {
        let signal = Rc::new(Kick::default());
        let fire = signal.clone();
        self.insert(started, info, Rc::new(move || fire.fire()), signal)
    }

    /// Registers a session ended by calling `kick` (on this shard, never re-entered from
    /// the guard's drop).
    pub fn register_with(
        self: &Rc<Self>,
        started: SystemTime,
        info: Info,
        kick: Rc<dyn Fn()>,
    ) -> SessionGuard {
        self.insert(started, info, kick, Rc::new(Kick::default()))
    }

    fn insert(
        self: &Rc<Self>,
        started: SystemTime,
        info: Info,
        kick: KickFn,
        signal: Rc<Kick>,
    ) -> SessionGuard {
        let entry = self.registry.insert(self.shard, started, info);
        self.kicks.borrow_mut().insert(entry.id, kick);
        SessionGuard {
            local: self.clone(),
            entry,
            signal,
        }
    }

    /// Asks for the end of session `id`, on whichever shard holds it. Returns the
    /// session as it was.
    pub fn end(&self, id: Id) -> Result<Arc<Entry>, EndError> {
        let entry = self.registry.get(id).ok_or(EndError::NotFound(id))?;
        if entry.shard == self.shard {
            self.kick_local(id);
        } else {
            self.tx.send_kick(entry.shard, id);
        }
        Ok(entry)
    }

    /// Ends session `id` of this shard (a message from another shard); false if it is
    /// gone already.
    pub fn kick_local(&self, id: Id) -> bool {
        // Called outside the borrow: a kick may end the session at once.
        let kick = self.kicks.borrow().get(&id).cloned();
        match kick {
            Some(k) => {
                k();
                true
            }
            None => false,
        }
    }

    /// Number of this shard's sessions.
    pub fn len(&self) -> usize {
        self.kicks.borrow().len()
    }

    /// Whether the shard has no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A registered session: unregistered when dropped.
pub struct SessionGuard {
    local: Rc<Local>,
    entry: Arc<Entry>,
    signal: Rc<Kick>,
}

impl SessionGuard {
    /// Its id.
    pub fn id(&self) -> Id {
        self.entry.id
    }

    /// Its counters.
    pub fn counters(&self) -> &Counters {
        &self.entry.counters
    }

    /// Records a new peer address (a source that reconnected).
    pub fn set_remote(&self, remote: Option<SocketAddr>) {
        *lock(&self.entry.remote) = remote;
    }

    /// The signal its driver waits on (sessions made with [`Local::register`]).
    pub fn signal(&self) -> Rc<Kick> {
        self.signal.clone()
    }

    /// Resolves when the session is asked to end (sessions made with
    /// [`Local::register`]).
    pub async fn kicked(&self) {
        self.signal.wait().await
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let id = self.entry.id;
        let kick = self.local.kicks.borrow_mut().remove(&id);
        self.local.registry.remove(id);
        drop(kick);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll};

    /// An in-memory mesh: the kicks each shard sent, in order.
    #[derive(Default)]
    struct FakeMesh(RefCell<Vec<(usize, Id)>>);

    struct Port(Rc<FakeMesh>);

    impl KickTx for Port {
        fn send_kick(&self, to: usize, id: Id) {
            self.0.0.borrow_mut().push((to, id));
        }
    }

    fn shards(n: usize) -> (Arc<Registry>, Rc<FakeMesh>, Vec<Rc<Local>>) {
        let registry = Arc::new(Registry::default());
        let mesh = Rc::new(FakeMesh::default());
        let locals = (0..n)
            .map(|i| Local::new(i, registry.clone(), Rc::new(Port(mesh.clone()))))
            .collect();
        (registry, mesh, locals)
    }

    fn info(kind: Kind, path: &str) -> Info {
        Info {
            protocol: Protocol::Rtmp,
            kind,
            signaling: None,
            path: Some(path.into()),
            remote: Some(SocketAddr::from(([127, 0, 0, 1], 40000))),
        }
    }

    fn is_ready(f: std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        matches!(f.poll(&mut cx), Poll::Ready(()))
    }

    #[test]
    fn ids_are_unique_across_shards_and_the_list_is_sorted_by_id() {
        let (registry, _, l) = shards(2);
        let t = SystemTime::UNIX_EPOCH;
        let a = l[0].register(t, info(Kind::Publisher, "live/a"));
        let b = l[1].register(t, info(Kind::Player, "live/a"));
        let c = l[0].register(t, info(Kind::Player, "live/a"));
        let ids: Vec<Id> = registry.list().iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![a.id(), b.id(), c.id()]);
        assert!(a.id() < b.id() && b.id() < c.id());
        assert_eq!(registry.get(b.id()).map(|e| e.shard), Some(1));
        assert_eq!((l[0].len(), l[1].len()), (2, 1));
    }

    #[test]
    fn dropping_the_guard_unregisters_on_both_halves() {
        let (registry, _, l) = shards(1);
        let g = l[0].register(SystemTime::UNIX_EPOCH, info(Kind::Player, "live/a"));
        let id = g.id();
        drop(g);
        assert!(registry.is_empty());
        assert!(l[0].is_empty());
        assert_eq!(l[0].end(id).map(|_| ()), Err(EndError::NotFound(id)));
        assert!(!l[0].kick_local(id));
    }

    #[test]
    fn ending_a_local_session_fires_its_signal_and_sends_nothing() {
        let (_, mesh, l) = shards(2);
        let g = l[0].register(SystemTime::UNIX_EPOCH, info(Kind::Publisher, "live/a"));
        let mut kicked = pin!(g.kicked());
        assert!(!is_ready(kicked.as_mut()));
        let e = l[0].end(g.id()).expect("found");
        assert_eq!(e.kind, Kind::Publisher);
        assert!(is_ready(kicked.as_mut()));
        assert!(mesh.0.borrow().is_empty());
    }

    #[test]
    fn ending_another_shards_session_travels_over_the_mesh() {
        let (_, mesh, l) = shards(2);
        let g = l[1].register(SystemTime::UNIX_EPOCH, info(Kind::Player, "live/a"));
        let signal = g.signal();
        assert!(l[0].end(g.id()).is_ok());
        assert_eq!(*mesh.0.borrow(), vec![(1, g.id())]);
        // Shard 1 takes the message.
        assert!(l[1].kick_local(g.id()));
        let mut waited = pin!(signal.wait());
        assert!(is_ready(waited.as_mut()));
        // Once the session is gone, a late message is no harm.
        let id = g.id();
        drop(g);
        assert!(!l[1].kick_local(id));
    }

    #[test]
    fn a_kick_closure_may_end_the_session_at_once() {
        let (registry, _, l) = shards(1);
        let slot: Rc<RefCell<Option<SessionGuard>>> = Rc::default();
        let s = slot.clone();
        let g = l[0].register_with(
            SystemTime::UNIX_EPOCH,
            info(Kind::Viewer, "live/a"),
            Rc::new(move || drop(s.borrow_mut().take())),
        );
        let id = g.id();
        *slot.borrow_mut() = Some(g);
        assert!(l[0].kick_local(id));
        assert!(registry.is_empty() && l[0].is_empty());
    }

    #[test]
    fn counters_and_json() {
        let (registry, _, l) = shards(1);
        let started = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_796_292_672_500);
        let mut i = info(Kind::Viewer, "live/a");
        i.protocol = Protocol::Webrtc;
        i.signaling = Some(Signaling::Whep);
        let g = l[0].register(started, i);
        g.counters().add_in(10);
        g.counters().add_in(5);
        g.counters().add_out(7);
        g.counters().set_dropped(3);
        let json = registry.list()[0].to_json();
        assert_eq!(
            json,
            serde_json::json!({
                "id": g.id().to_string(), "protocol": "webrtc", "kind": "viewer",
                "signaling": "whep", "path": "live/a", "remote": "127.0.0.1:40000",
                "shard": 0, "started": "2026-12-03T10:11:12Z",
                "bytes_in": 15, "bytes_out": 7, "frames_dropped": 3,
            })
        );
        g.set_remote(None);
        g.counters().set_bytes(1, 2);
        let json = registry.list()[0].to_json();
        assert_eq!(json["remote"], serde_json::Value::Null);
        assert_eq!(
            (json["bytes_in"].as_u64(), json["bytes_out"].as_u64()),
            (Some(1), Some(2))
        );
    }

    #[test]
    fn ids_parse_strictly() {
        assert_eq!("42".parse::<Id>(), Ok(Id(42)));
        for bad in [
            "",
            "-1",
            "+1",
            "1.0",
            "abc",
            " 1",
            "99999999999999999999999",
        ] {
            assert!(bad.parse::<Id>().is_err(), "{bad:?}");
        }
    }
}
