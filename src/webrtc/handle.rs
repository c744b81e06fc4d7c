//! The shard-local handle to the shard's WebRTC side: the engine (driven by the UDP
//! driver), the process-wide registry of which shard holds which session, and the way to
//! other shards (the mesh). The runtime makes one per shard and gives it to both the UDP
//! driver and the HTTP server; signaling (WHEP, WebSocket) reaches the engine only
//! through it.
//!
//! Ending a session that lives on another shard is a [`SessionMsg::End`] over the mesh,
//! like every other cross-shard message. The registry stays process-wide so that the id
//! leaves it at once: a repeated DELETE is 404 on any shard even before the owner shard
//! has closed the session.
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock.

use super::engine::{Engine, Input};
use super::peer::CloseReason;
use super::table::SessionId;
use crate::limit::{AddrCounts, LogLimiter};
use crate::session::{self, SessionGuard};
use std::cell::{RefCell, RefMut};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::{Rc, Weak};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// A message between shards about WebRTC sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionMsg {
    /// End this session (a WHEP DELETE or WebSocket stop reached another shard).
    End(SessionId),
    /// A viewer on another shard asked for a keyframe of this path: ask its publisher
    /// (a WHIP session on this shard, if it has one).
    Keyframe(Arc<str>),
}

/// How a shard's WebRTC side reaches other shards. The runtime's mesh implements it
/// (control messages: never dropped, in order).
pub trait SessionTx {
    /// Sends `msg` to shard `to`.
    fn send_session(&self, to: usize, msg: SessionMsg);
}

/// Which shard holds each session (by id), and how many sessions each viewer address
/// holds, process-wide. Touched only when a session starts and ends, never on the media
/// path.
///
/// An address's count covers its sessions from the moment an offer is admitted (a
/// [`Reservation`], before it waits for an on-demand source) until the session ends or
/// is ended by request, whether ICE and DTLS ever finished or not: junk offers from one
/// address hold at most `webrtc.max_sessions_per_ip` sessions, on all shards together.
#[derive(Debug, Default)]
pub struct Registry(Mutex<Sessions>);

#[derive(Debug, Default)]
struct Sessions {
    /// Session id to (shard, viewer address).
    by_id: HashMap<u64, (usize, Option<IpAddr>)>,
    /// Publisher (WHIP) session ids to the path they publish.
    publishing: HashMap<u64, Arc<str>>,
    /// Sessions and admitted offers per viewer address.
    per_ip: AddrCounts,
}

/// A place for one session of a viewer address, taken by [`Registry::reserve`] before an
/// offer may start anything; given back when dropped unless
/// [`Registry::insert_reserved`] turned it into a session.
#[derive(Debug)]
pub struct Reservation<'a> {
    registry: &'a Registry,
    ip: Option<IpAddr>,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Some(ip) = self.ip.take()
            && let Ok(mut m) = self.registry.0.lock()
        {
            m.per_ip.remove(ip);
        }
    }
}

impl Registry {
    /// Records that `shard` holds `id` (a session counted under no address).
    pub fn insert(&self, id: SessionId, shard: usize) {
        if let Ok(mut m) = self.0.lock() {
            m.by_id.insert(id.0, (shard, None));
        }
    }

    /// Takes a place for one more session from `ip` if it holds fewer than `limit`
    /// (0: no limit); `None` when it is at the limit.
    pub fn reserve(&self, ip: Option<IpAddr>, limit: usize) -> Option<Reservation<'_>> {
        if let Some(ip) = ip {
            let max = match limit {
                0 => u32::MAX,
                n => u32::try_from(n).unwrap_or(u32::MAX),
            };
            self.0.lock().ok()?.per_ip.try_add(ip, max).ok()?;
        }
        Some(Reservation { registry: self, ip })
    }

    /// Records that `shard` holds `id`, counted under the address of `r`.
    pub fn insert_reserved(&self, id: SessionId, shard: usize, mut r: Reservation<'_>) {
        let ip = r.ip.take();
        if let Ok(mut m) = self.0.lock() {
            m.by_id.insert(id.0, (shard, ip));
        }
    }

    /// Forgets `id` (and counts it no more against its address); returns the shard
    /// that held it.
    pub fn remove(&self, id: SessionId) -> Option<usize> {
        let mut m = self.0.lock().ok()?;
        let (shard, ip) = m.by_id.remove(&id.0)?;
        m.publishing.remove(&id.0);
        if let Some(ip) = ip {
            m.per_ip.remove(ip);
        }
        Some(shard)
    }

    /// Marks session `id` as the publisher of `path`.
    pub fn set_publishing(&self, id: SessionId, path: Arc<str>) {
        if let Ok(mut m) = self.0.lock() {
            m.publishing.insert(id.0, path);
        }
    }

    /// The path session `id` publishes, if it is a publisher.
    pub fn publishing(&self, id: SessionId) -> Option<Arc<str>> {
        self.0.lock().ok()?.publishing.get(&id.0).cloned()
    }

    /// Number of sessions registered.
    pub fn len(&self) -> usize {
        self.0.lock().map(|m| m.by_id.len()).unwrap_or(0)
    }

    /// Whether no session is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sessions and admitted offers counted under `ip`.
    pub fn count(&self, ip: IpAddr) -> usize {
        self.0
            .lock()
            .map(|m| m.per_ip.count(ip) as usize)
            .unwrap_or(0)
    }
}

struct Inner {
    shard: usize,
    engine: RefCell<Engine>,
    registry: Arc<Registry>,
    tx: Rc<dyn SessionTx>,
    /// Offers refused on the shard, for a log of at most one line per second.
    refusals: RefCell<LogLimiter>,
    /// The shard's sessions as the management API lists them, until they end.
    listed: RefCell<HashMap<SessionId, SessionGuard>>,
    /// When a keyframe request for each path last went to its owner shard.
    keyframe_sent: RefCell<HashMap<Arc<str>, Instant>>,
}

/// Fewest time between two keyframe requests for one path sent to its owner shard (the
/// publisher's own limit is the same).
const KEYFRAME_FORWARD_INTERVAL: Duration = Duration::from_millis(500);

/// Fewest time between two log lines about refused offers.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The shard-local handle to the shard's WebRTC side (cheap to clone).
#[derive(Clone)]
pub struct Handle(Rc<Inner>);

impl Handle {
    /// The handle of shard `shard`, owning its `engine`.
    pub fn new(
        shard: usize,
        engine: Engine,
        registry: Arc<Registry>,
        tx: Rc<dyn SessionTx>,
    ) -> Self {
        Handle(Rc::new(Inner {
            shard,
            engine: RefCell::new(engine),
            registry,
            tx,
            refusals: RefCell::new(LogLimiter::new(REFUSAL_LOG_INTERVAL)),
            listed: RefCell::new(HashMap::new()),
            keyframe_sent: RefCell::new(HashMap::new()),
        }))
    }

    /// Lists session `id` (just created on this shard) in the management API as `info`
    /// until [`Handle::unlist`]; ending it there is [`Handle::end_session`].
    pub fn list(&self, sessions: &Rc<session::Local>, id: SessionId, info: session::Info) {
        let weak: Weak<Inner> = Rc::downgrade(&self.0);
        let end = Rc::new(move || {
            if let Some(inner) = weak.upgrade() {
                Handle(inner).end_session(id);
            }
        });
        let guard = sessions.register_with(SystemTime::now(), info, end);
        self.0.listed.borrow_mut().insert(id, guard);
    }

    /// Takes session `id` (ended) off the management API's list.
    pub fn unlist(&self, id: SessionId) {
        let guard = self.0.listed.borrow_mut().remove(&id);
        drop(guard);
    }

    /// Copies each listed session's counters from the engine to the list.
    pub fn sync_counters(&self) {
        let engine = self.0.engine.borrow();
        for (id, guard) in self.0.listed.borrow().iter() {
            if let Some((stats, dropped)) = engine.counters(*id) {
                guard.counters().set_bytes(stats.bytes_in, stats.bytes_out);
                guard.counters().set_dropped(dropped);
            } else if let Some(st) = engine.ingest_counters(*id) {
                guard.counters().set_bytes(st.bytes_in, st.bytes_out);
                guard.counters().set_dropped(st.frames_dropped);
            }
        }
    }

    /// Counts a refused offer at `now`; returns how many to log (this one included)
    /// when a line is due, at most once per second.
    pub fn note_refusal(&self, now: Instant) -> Option<u64> {
        self.0.refusals.borrow_mut().hit(now).map(|b| b.count)
    }

    /// The shard's index.
    pub fn shard(&self) -> usize {
        self.0.shard
    }

    /// The engine, borrowed for one step (never across an await).
    pub fn engine(&self) -> RefMut<'_, Engine> {
        self.0.engine.borrow_mut()
    }

    /// The process-wide session registry.
    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }

    /// Wakes the UDP driver (signaling changed something it must send or time).
    pub fn wake(&self) {
        self.0.engine.borrow().ready_list().kick();
    }

    /// Ends session `id`, on whichever shard holds it. False if no shard has it. The id
    /// leaves the registry at once, so a repeated request gets "no such session" even
    /// before the owner shard has closed it.
    pub fn end_session(&self, id: SessionId) -> bool {
        match self.0.registry.remove(id) {
            None => false,
            Some(owner) if owner == self.0.shard => {
                self.close_local(id);
                true
            }
            Some(owner) => {
                self.0.tx.send_session(owner, SessionMsg::End(id));
                true
            }
        }
    }

    /// A viewer here asked for a keyframe of `path`, which shard `owner` publishes: if
    /// that is another shard, the request goes there for its publisher (at most one per
    /// path per 500 ms). The owner's own viewers' requests reach its publisher in the
    /// engine.
    pub fn keyframe_wanted(&self, path: &Arc<str>, owner: usize, now: Instant) {
        if owner == self.0.shard {
            return;
        }
        let mut sent = self.0.keyframe_sent.borrow_mut();
        if sent
            .get(path)
            .is_some_and(|t| now.saturating_duration_since(*t) < KEYFRAME_FORWARD_INTERVAL)
        {
            return;
        }
        sent.retain(|_, t| now.saturating_duration_since(*t) < KEYFRAME_FORWARD_INTERVAL);
        sent.insert(path.clone(), now);
        self.0
            .tx
            .send_session(owner, SessionMsg::Keyframe(path.clone()));
    }

    /// Handles a message from another shard.
    pub fn handle_msg(&self, msg: SessionMsg) {
        match msg {
            SessionMsg::End(id) => self.close_local(id),
            SessionMsg::Keyframe(path) => {
                self.engine()
                    .request_publisher_keyframe(Instant::now(), &path);
                self.wake();
            }
        }
    }

    fn close_local(&self, id: SessionId) {
        let input = Input::Close {
            id,
            reason: CloseReason::Requested,
        };
        // A session that already ended on its own is no error here.
        let _ = self.engine().handle_input(Instant::now(), input);
        self.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webrtc::engine::EngineConfig;
    use crate::webrtc::peer::PeerConfig;
    use std::cell::RefCell as Cell_;

    /// An in-memory mesh: what each shard sent, in order.
    #[derive(Default)]
    struct FakeMesh(Cell_<Vec<(usize, SessionMsg)>>);

    struct Port(Rc<FakeMesh>);

    impl SessionTx for Port {
        fn send_session(&self, to: usize, msg: SessionMsg) {
            self.0.0.borrow_mut().push((to, msg));
        }
    }

    fn shard(id: usize, registry: &Arc<Registry>, mesh: &Rc<FakeMesh>) -> Handle {
        let cert = crate::webrtc::process_cert().expect("certificate");
        let local = std::net::SocketAddr::from(([127, 0, 0, 1], 8189 + id as u16));
        let cfg = EngineConfig {
            peer: PeerConfig::default(),
            ingest: Default::default(),
            max_sessions: 4,
            candidates: vec![local],
            local,
            resend: Default::default(),
        };
        let engine = Engine::new(Instant::now(), cert, cfg);
        Handle::new(id, engine, registry.clone(), Rc::new(Port(mesh.clone())))
    }

    #[test]
    fn delete_of_another_shards_session_travels_over_the_mesh_once() {
        let registry = Arc::new(Registry::default());
        let mesh = Rc::new(FakeMesh::default());
        let (s0, s1) = (shard(0, &registry, &mesh), shard(1, &registry, &mesh));
        let id = SessionId(0xabcd);
        registry.insert(id, 1);
        // The DELETE lands on shard 0: shard 1 is told over the mesh.
        assert!(s0.end_session(id));
        assert_eq!(*mesh.0.borrow(), vec![(1, SessionMsg::End(id))]);
        // A repeated DELETE, on any shard, finds no session before shard 1 acted.
        assert!(!s0.end_session(id));
        assert!(!s1.end_session(id));
        assert!(registry.is_empty());
        assert_eq!(mesh.0.borrow().len(), 1, "nothing more was sent");
        // Shard 1 takes the message; the session already went: no harm.
        let (to, msg) = mesh.0.borrow_mut().remove(0);
        assert_eq!(to, 1);
        s1.handle_msg(msg);
        assert!(s1.engine().is_empty());
    }

    #[test]
    fn keyframe_requests_go_to_the_owner_shard_at_most_twice_a_second() {
        let registry = Arc::new(Registry::default());
        let mesh = Rc::new(FakeMesh::default());
        let (s0, s1) = (shard(0, &registry, &mesh), shard(1, &registry, &mesh));
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        let cam: Arc<str> = Arc::from("live/cam");
        let other: Arc<str> = Arc::from("live/other");
        // Shard 0's viewers of shard 1's stream: one request per 500 ms per path.
        s0.keyframe_wanted(&cam, 1, ms(0));
        s0.keyframe_wanted(&cam, 1, ms(100));
        s0.keyframe_wanted(&other, 1, ms(200));
        s0.keyframe_wanted(&cam, 1, ms(499));
        s0.keyframe_wanted(&cam, 1, ms(500));
        // The owner's own viewers never send (its engine asks its publisher).
        s1.keyframe_wanted(&cam, 1, ms(600));
        let sent: Vec<(usize, SessionMsg)> = mesh.0.borrow_mut().drain(..).collect();
        assert_eq!(
            sent,
            vec![
                (1, SessionMsg::Keyframe(cam.clone())),
                (1, SessionMsg::Keyframe(other)),
                (1, SessionMsg::Keyframe(cam.clone())),
            ]
        );
        // Shard 1 takes one without a publisher of the path: nothing happens.
        s1.handle_msg(SessionMsg::Keyframe(cam));
        assert!(s1.engine().is_empty());
    }

    #[test]
    fn refusals_are_logged_at_most_once_a_second_with_a_count() {
        let registry = Arc::new(Registry::default());
        let mesh = Rc::new(FakeMesh::default());
        let h = shard(0, &registry, &mesh);
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        assert_eq!(h.note_refusal(t), Some(1), "the first at once");
        let logged: Vec<_> = (1..=500u64)
            .filter_map(|i| h.note_refusal(ms(i * 4)))
            .collect();
        // 500 refusals over 2 s: lines at 1 s and 2 s, carrying every refusal since.
        assert_eq!(logged, vec![250, 250]);
        assert_eq!(h.note_refusal(ms(2001)), None);
        assert_eq!(h.note_refusal(ms(3500)), Some(2));
    }

    #[test]
    fn sessions_per_address_are_counted_until_they_end() {
        let registry = Registry::default();
        let a = IpAddr::from([127, 0, 0, 1]);
        let b = IpAddr::from([127, 0, 0, 2]);
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("v6");
        let r1 = registry.reserve(Some(a), 2).expect("first");
        let r2 = registry
            .reserve(Some(mapped), 2)
            .expect("second (same address)");
        assert!(registry.reserve(Some(a), 2).is_none(), "third refused");
        assert!(registry.reserve(Some(b), 2).is_some(), "another address");
        assert_eq!(registry.count(b), 0, "a dropped reservation is given back");
        assert!(
            registry.reserve(None, 2).is_some(),
            "no address: not counted"
        );
        registry.insert_reserved(SessionId(1), 0, r1);
        drop(r2);
        assert_eq!(registry.count(a), 1);
        let r = registry.reserve(Some(a), 2).expect("room again");
        registry.insert_reserved(SessionId(2), 1, r);
        assert!(registry.reserve(Some(a), 2).is_none());
        assert!(registry.reserve(Some(a), 0).is_some(), "0: no limit");
        assert_eq!(registry.remove(SessionId(1)), Some(0));
        assert_eq!(registry.remove(SessionId(1)), None, "counted off once");
        assert_eq!(registry.count(a), 1);
        assert_eq!(registry.remove(SessionId(2)), Some(1));
        assert_eq!((registry.count(a), registry.len()), (0, 0));
    }

    #[test]
    fn delete_of_an_own_session_sends_nothing() {
        let registry = Arc::new(Registry::default());
        let mesh = Rc::new(FakeMesh::default());
        let s0 = shard(0, &registry, &mesh);
        let id = SessionId(7);
        registry.insert(id, 0);
        assert!(s0.end_session(id));
        assert!(mesh.0.borrow().is_empty());
        assert!(!s0.end_session(SessionId(8)), "unknown session");
    }
}
