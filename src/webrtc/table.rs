//! The session table of one shard: sessions by id, datagram routing by remote address
//! (and by ICE ufrag for a session's first STUN request), and one deadline heap that
//! drives every session's timer.
//!
//! Pure: the caller passes `now`. Nothing here scans all sessions: routing is two hash
//! lookups, timers are a binary heap with at most one live entry per session.

use std::cmp::Reverse;
use std::collections::hash_map::{Entry, RandomState};
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most remote addresses one session may be reached from (ICE may use several).
pub const MAX_ADDRS_PER_SESSION: usize = 8;

/// The furthest ahead a session's timer is set; later deadlines are clamped to this, so
/// a session never sleeps longer than this without a look.
pub const MAX_TIMER: Duration = Duration::from_secs(1);

/// A session's id: random, so it cannot be guessed from another session's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for SessionId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(SessionId)
    }
}

struct Entry_<T> {
    value: T,
    ufrag: String,
    addrs: Vec<SocketAddr>,
    /// The deadline the session asked for.
    want: Option<Instant>,
    /// The deadline of the session's live heap entry, if any.
    queued: Option<Instant>,
}

/// Sessions of one shard, generic over the session type.
pub struct Table<T> {
    sessions: HashMap<SessionId, Entry_<T>>,
    by_addr: HashMap<SocketAddr, SessionId>,
    by_ufrag: HashMap<String, SessionId>,
    heap: BinaryHeap<Reverse<(Instant, SessionId)>>,
    ids: RandomState,
    counter: u64,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            sessions: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            heap: BinaryHeap::new(),
            ids: RandomState::new(),
            counter: 0,
        }
    }
}

impl<T> Table<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a session reachable by its local ICE ufrag. The ufrag must be unique.
    pub fn insert(&mut self, ufrag: String, value: T) -> SessionId {
        let id = loop {
            self.counter += 1;
            let mut h = self.ids.build_hasher();
            h.write_u64(self.counter);
            let id = SessionId(h.finish());
            if !self.sessions.contains_key(&id) {
                break id;
            }
        };
        self.by_ufrag.insert(ufrag.clone(), id);
        self.sessions.insert(
            id,
            Entry_ {
                value,
                ufrag,
                addrs: Vec::new(),
                want: None,
                queued: None,
            },
        );
        id
    }

    /// Whether a ufrag is taken.
    pub fn has_ufrag(&self, ufrag: &str) -> bool {
        self.by_ufrag.contains_key(ufrag)
    }

    /// Removes a session with its routes; its heap entries become stale.
    pub fn remove(&mut self, id: SessionId) -> Option<T> {
        let e = self.sessions.remove(&id)?;
        self.by_ufrag.remove(&e.ufrag);
        for a in &e.addrs {
            if self.by_addr.get(a) == Some(&id) {
                self.by_addr.remove(a);
            }
        }
        if self.sessions.is_empty() {
            // Everything left is stale.
            self.heap.clear();
        }
        Some(e.value)
    }

    /// The session of `id`.
    pub fn get_mut(&mut self, id: SessionId) -> Option<&mut T> {
        self.sessions.get_mut(&id).map(|e| &mut e.value)
    }

    /// The session of `id`.
    pub fn get(&self, id: SessionId) -> Option<&T> {
        self.sessions.get(&id).map(|e| &e.value)
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Ids of all sessions (for shutdown).
    pub fn ids(&self) -> Vec<SessionId> {
        self.sessions.keys().copied().collect()
    }

    /// The session a datagram from `from` belongs to: the address map, or else the
    /// session whose local ufrag the datagram's STUN USERNAME names (`ufrag()` is only
    /// called on a miss), which then learns the address. A session reachable from
    /// [`MAX_ADDRS_PER_SESSION`] addresses learns no more.
    pub fn route<S: AsRef<str>>(
        &mut self,
        from: SocketAddr,
        ufrag: impl FnOnce() -> Option<S>,
    ) -> Option<SessionId> {
        if let Some(id) = self.by_addr.get(&from) {
            return Some(*id);
        }
        let id = *self.by_ufrag.get(ufrag()?.as_ref())?;
        let e = self.sessions.get_mut(&id)?;
        if e.addrs.len() < MAX_ADDRS_PER_SESSION {
            e.addrs.push(from);
            if let Entry::Vacant(v) = self.by_addr.entry(from) {
                v.insert(id);
            }
        }
        Some(id)
    }

    /// Sets when the session wants its timer, clamped to `now + MAX_TIMER`.
    pub fn set_deadline(&mut self, id: SessionId, at: Instant, now: Instant) {
        let at = at.min(now + MAX_TIMER);
        let Some(e) = self.sessions.get_mut(&id) else {
            return;
        };
        e.want = Some(at);
        if e.queued.is_none_or(|q| at < q) {
            e.queued = Some(at);
            self.heap.push(Reverse((at, id)));
        }
    }

    /// The earliest pending deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// Pops one session whose deadline has passed, skipping stale entries and
    /// re-queueing sessions whose wish moved later.
    pub fn pop_due(&mut self, now: Instant) -> Option<SessionId> {
        while let Some(Reverse((t, id))) = self.heap.peek().copied() {
            if t > now {
                return None;
            }
            self.heap.pop();
            let Some(e) = self.sessions.get_mut(&id) else {
                continue;
            };
            if e.queued != Some(t) {
                continue; // superseded by an earlier entry
            }
            e.queued = None;
            match e.want {
                Some(w) if w > now => {
                    e.queued = Some(w);
                    self.heap.push(Reverse((w, id)));
                }
                _ => {
                    e.want = None;
                    return Some(id);
                }
            }
        }
        None
    }

    /// Heap entries, live and stale (for tests and metrics).
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }

    /// Routed remote addresses (for tests and metrics).
    pub fn addr_count(&self) -> usize {
        self.by_addr.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::disallowed_methods)] // Any instant serves as the origin.
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn routes_by_ufrag_then_by_address() {
        let mut t = Table::new();
        let a = t.insert("ua".into(), 'a');
        let b = t.insert("ub".into(), 'b');
        assert_ne!(a, b);
        // Unknown address, not STUN: dropped.
        assert_eq!(t.route(addr(1), || None::<&str>), None);
        // Unknown ufrag: dropped, nothing learnt.
        assert_eq!(t.route(addr(1), || Some("zz")), None);
        assert_eq!(t.addr_count(), 0);
        // First STUN names the session; the address is learnt.
        assert_eq!(t.route(addr(1), || Some("ub")), Some(b));
        let mut asked = false;
        assert_eq!(
            t.route(addr(1), || {
                asked = true;
                None::<&str>
            }),
            Some(b)
        );
        assert!(!asked, "a known address needs no STUN parse");
        assert_eq!(t.route(addr(2), || Some("ua")), Some(a));
        assert_eq!(t.remove(b), Some('b'));
        assert_eq!(t.route(addr(1), || None::<&str>), None);
        assert!(!t.has_ufrag("ub"));
        assert_eq!(t.addr_count(), 1);
        assert_eq!(t.remove(a), Some('a'));
        assert_eq!((t.addr_count(), t.len(), t.heap_len()), (0, 0, 0));
    }

    #[test]
    fn addresses_per_session_are_bounded() {
        let mut t = Table::new();
        let a = t.insert("ua".into(), ());
        for p in 0..100 {
            assert_eq!(t.route(addr(p), || Some("ua")), Some(a));
        }
        assert_eq!(t.addr_count(), MAX_ADDRS_PER_SESSION);
    }

    #[test]
    fn ids_round_trip_through_text() {
        let mut t = Table::new();
        let a = t.insert("u".into(), ());
        let s = a.to_string();
        assert_eq!(s.len(), 16);
        assert_eq!(s.parse::<SessionId>(), Ok(a));
        assert!("xyz".parse::<SessionId>().is_err());
    }

    #[test]
    fn deadline_heap_fires_in_order_and_skips_stale_entries() {
        let now = Instant::now();
        let ms = |n| now + Duration::from_millis(n);
        let mut t = Table::new();
        let a = t.insert("a".into(), ());
        let b = t.insert("b".into(), ());
        t.set_deadline(a, ms(30), now);
        t.set_deadline(b, ms(10), now);
        // a moves earlier: a new entry; the old one goes stale.
        t.set_deadline(a, ms(5), now);
        // b moves later: no new entry, it is re-queued when its old one pops.
        t.set_deadline(b, ms(20), now);
        assert_eq!(t.next_deadline(), Some(ms(5)));
        assert_eq!(t.pop_due(ms(4)), None);
        assert_eq!(t.pop_due(ms(5)), Some(a));
        assert_eq!(t.pop_due(ms(15)), None); // b's entry at 10 re-queued at 20
        assert_eq!(t.pop_due(ms(25)), Some(b));
        assert_eq!(t.pop_due(ms(100)), None); // a's stale entry at 30
        assert_eq!(t.heap_len(), 0);
    }

    #[test]
    fn far_deadlines_are_clamped_and_removed_sessions_never_fire() {
        let now = Instant::now();
        let mut t = Table::new();
        let a = t.insert("a".into(), ());
        let b = t.insert("b".into(), ());
        t.set_deadline(a, now + Duration::from_secs(3600), now);
        assert_eq!(t.next_deadline(), Some(now + MAX_TIMER));
        t.set_deadline(b, now, now);
        t.remove(b);
        assert_eq!(t.pop_due(now), None);
        assert_eq!(t.pop_due(now + MAX_TIMER), Some(a));
    }

    #[test]
    fn heap_stays_small_under_many_updates() {
        let now = Instant::now();
        let mut t = Table::new();
        let ids: Vec<_> = (0..100).map(|i| t.insert(format!("u{i}"), ())).collect();
        for step in 0..1000u64 {
            for id in &ids {
                // Later and later deadlines: never a new heap entry.
                t.set_deadline(*id, now + Duration::from_millis(10 + step), now);
            }
        }
        assert_eq!(t.heap_len(), ids.len());
    }
}
