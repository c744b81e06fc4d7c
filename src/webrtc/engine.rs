//! The WebRTC state of one shard: its sessions, how datagrams and timers reach them, and
//! the datagrams they produce. Sans-IO, in the one driver contract's shape: the shard's
//! UDP driver feeds it [`Input`]s (received datagrams, "media ready" wake-ups, the GOP a
//! session asked for, a session to end) with [`Engine::handle_input`], runs its timers
//! with [`Engine::handle_timeout`], and drains [`Engine::poll_output`] until it returns
//! [`Output::Timeout`].
//!
//! The hot path: datagrams collect in the engine's own buffer while peers write; the
//! driver passes its batch buffer to `poll_output`, which swaps the two (quinn's
//! `poll_transmit(buf)`): no copy and no allocation per packet, and the driver sends the
//! whole batch with `sendmmsg`. With each batch come the [`Departure`]s of the live frames
//! whose first datagram is in it ([`Engine::take_departures`]), for the driver to time
//! their latency when it sends them.

use super::ingest::{IngestConfig, IngestStats, Produced, Publisher};
use super::offer::{OfferedMedia, Selection, Take};
use super::peer::{CloseReason, Departure, Peer, PeerConfig, PeerError, PeerStats};
use super::table::{SessionId, Table};
use crate::stream::{OutFrame, ReadyList, SinkHandle};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use str0m::config::DtlsCert;
use str0m::net::Transmit;

/// Tunables of a shard's WebRTC engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Per-peer tunables.
    pub peer: PeerConfig,
    /// Per-publisher (WHIP) tunables.
    pub ingest: IngestConfig,
    /// Most sessions on the shard.
    pub max_sessions: usize,
    /// Host candidates announced in answers (the shard's UDP port on each address).
    pub candidates: Vec<SocketAddr>,
    /// The socket's local address (the destination of received datagrams).
    pub local: SocketAddr,
    /// Bounds on GOP re-sends.
    pub resend: ResendLimits,
}

/// Datagrams the engine collects from viewers' writes before it hands them to the driver
/// while more viewers wait: the first viewers' packets leave while the later ones are
/// written, instead of every viewer waiting for the whole fan-out (the server-added
/// latency of a frame ends at its first packet out).
pub const WRITE_BATCH: usize = 64;

/// Bounds on GOP re-sends, the answers to viewers' keyframe requests (each viewer also
/// waits [`PeerConfig::keyframe_interval`] between two). The GOP a viewer gets when it
/// joins is not a re-send: its queue bounds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResendLimits {
    /// Most bytes of frame data in one re-send: a longer GOP is cut after its last frame
    /// that fits (the keyframe comes first; a keyframe alone over it is not re-sent).
    pub max_bytes: usize,
    /// Bytes of frame data the shard re-sends per second, all viewers together; a
    /// re-send that does not fit in what is left is skipped (a budget of one second,
    /// refilled continuously).
    pub budget: u64,
}

impl Default for ResendLimits {
    fn default() -> Self {
        ResendLimits {
            max_bytes: 8 * 1024 * 1024,
            budget: 32 * 1024 * 1024,
        }
    }
}

/// The shard's re-send budget: a token bucket of [`ResendLimits::budget`] bytes.
#[derive(Debug)]
struct Budget {
    limits: ResendLimits,
    left: u64,
    at: Instant,
}

impl Budget {
    fn new(limits: ResendLimits, now: Instant) -> Self {
        Budget {
            limits,
            left: limits.budget,
            at: now,
        }
    }

    /// Takes `bytes` if that many are left at `now`.
    fn take(&mut self, now: Instant, bytes: u64) -> bool {
        let ns = now.saturating_duration_since(self.at).as_nanos();
        let refill = u128::from(self.limits.budget) * ns / 1_000_000_000;
        let left = (u128::from(self.left) + refill).min(u128::from(self.limits.budget));
        self.left = left as u64;
        self.at = self.at.max(now);
        if bytes > self.left {
            return false;
        }
        self.left -= bytes;
        true
    }
}

/// The frames of `gop` that one re-send may carry (a prefix within `max` bytes of frame
/// data) and their bytes.
fn cut_gop(gop: &[Rc<OutFrame>], max: usize) -> (&[Rc<OutFrame>], u64) {
    let mut bytes = 0usize;
    let mut n = 0;
    for f in gop {
        let next = bytes.saturating_add(f.frame.data.len());
        if next > max {
            break;
        }
        bytes = next;
        n += 1;
    }
    (&gop[..n], bytes as u64)
}

/// Why an offer was not turned into a session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The shard has `max_sessions` sessions.
    #[error("this server shard has its maximum of {0} WebRTC sessions")]
    Busy(usize),
    /// str0m rejected the offer.
    #[error(transparent)]
    Offer(#[from] PeerError),
}

/// Why an input was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// A datagram that belongs to no session (dropped).
    #[error("datagram of no session")]
    Unrouted,
    /// The session named does not exist (any more).
    #[error("no session {0}")]
    NoSession(SessionId),
}

/// What the driver feeds the engine.
#[derive(Debug)]
#[non_exhaustive]
pub enum Input<'a> {
    /// A datagram received from `from`.
    Datagram {
        /// Its source address.
        from: SocketAddr,
        /// Its bytes.
        data: &'a [u8],
    },
    /// Viewers' queues announced frames on the [`ReadyList`]: write them.
    Ready,
    /// The GOP cache a session asked for ([`Event::GopWanted`]), keyframe first.
    Gop {
        /// The session.
        id: SessionId,
        /// The frames to re-send.
        gop: &'a [Rc<OutFrame>],
    },
    /// End a session.
    Close {
        /// The session.
        id: SessionId,
        /// Why.
        reason: CloseReason,
    },
    /// End every session (shutdown).
    CloseAll(CloseReason),
}

/// What the engine asks of the driver, drained with [`Engine::poll_output`].
#[derive(Debug)]
pub enum Output {
    /// This many datagrams are in the caller's batch buffer: send them.
    Transmit(usize),
    /// Something the driver acts on.
    Event(Event),
    /// Nothing more until this time (or the next input): call
    /// [`Engine::handle_timeout`] then.
    Timeout(Instant),
}

/// Things the driver acts on.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A viewer asked for a keyframe: answer with [`Input::Gop`] (the hub's GOP cache of
    /// `path`), unless the cache is empty.
    GopWanted {
        /// The session.
        id: SessionId,
        /// The stream it watches.
        path: Arc<str>,
    },
    /// RTP packets written since the last such event (for the shard's counters).
    PacketsWritten(u64),
    /// An [`Input::Gop`] was re-sent, or skipped because the shard's re-send budget
    /// ([`ResendLimits::budget`]) was spent or its keyframe alone is over
    /// [`ResendLimits::max_bytes`].
    GopResend {
        /// The session.
        id: SessionId,
        /// Bytes of frame data re-sent (or that would have been).
        bytes: u64,
        /// Whether it was skipped.
        skipped: bool,
    },
    /// A publisher's tracks or frame for its stream.
    Produced {
        /// The publisher's session.
        id: SessionId,
        /// The stream it publishes.
        path: Arc<str>,
        /// What it produced.
        produced: Produced,
    },
    /// A session ended.
    Closed(Closed),
}

/// A session that ended.
#[derive(Debug, Clone)]
pub struct Closed {
    /// Its id.
    pub id: SessionId,
    /// The stream it watched.
    pub path: Arc<str>,
    /// Why it ended.
    pub reason: CloseReason,
    /// How long it lived.
    pub lived: Duration,
    /// Its counters (a publisher's bytes in and out).
    pub stats: PeerStats,
    /// A publisher's counters; `None` for a viewer.
    pub ingest: Option<IngestStats>,
}

/// A publisher's counters, for the driver to copy to the shard's statistics, the
/// stream's source and the session list.
#[derive(Debug, Clone)]
pub struct PublisherReport {
    /// The session.
    pub id: SessionId,
    /// The stream it publishes.
    pub path: Arc<str>,
    /// Growth since the last report.
    pub delta: IngestStats,
    /// Totals.
    pub totals: IngestStats,
    /// Per-track totals.
    pub tracks: Vec<crate::stream::SourceTrackStats>,
}

/// What a session does.
enum Role {
    /// Watches a stream.
    Viewer(Peer),
    /// Publishes one (WHIP).
    Publisher(Publisher, Arc<str>),
}

struct Session {
    role: Role,
    created: Instant,
}

impl Session {
    fn viewer(&self) -> Option<&Peer> {
        match &self.role {
            Role::Viewer(p) => Some(p),
            Role::Publisher(..) => None,
        }
    }

    fn viewer_mut(&mut self) -> Option<&mut Peer> {
        match &mut self.role {
            Role::Viewer(p) => Some(p),
            Role::Publisher(..) => None,
        }
    }
}

/// A session has a heap allocation of its own: a peer (str0m's `Rtc` inline) is tens of
/// KiB, and held inline the session map would copy every live session when it grows and
/// keep buckets that size for its peak forever.
type Boxed = Box<Session>;

/// The sessions of one shard.
pub struct Engine {
    table: Table<Boxed>,
    ready: Rc<ReadyList>,
    cert: DtlsCert,
    cfg: EngineConfig,
    /// Datagrams to send, in order (swapped into the driver's batch buffer).
    out: Vec<Transmit>,
    events: VecDeque<Event>,
    gop_wanted: Vec<SessionId>,
    keys: Vec<u64>,
    /// Viewers announced ready and not written yet, in order ([`WRITE_BATCH`]).
    pending: VecDeque<u64>,
    /// RTP packets written since the last [`Event::PacketsWritten`].
    packets: u64,
    /// The latest time the engine was given.
    now: Instant,
    /// What GOP re-sends may still cost.
    budget: Budget,
    /// Publisher sessions by the path they publish.
    publishers: HashMap<Arc<str>, SessionId>,
    /// Live frames whose first datagram is in `out` (indices into it).
    departures: Vec<Departure>,
    /// Those of the batch last handed to the driver (indices into it).
    batch_departures: Vec<Departure>,
}

impl Engine {
    /// An engine with no sessions, at time `now`.
    pub fn new(now: Instant, cert: DtlsCert, cfg: EngineConfig) -> Self {
        let budget = Budget::new(cfg.resend, now);
        Engine {
            table: Table::new(),
            ready: Rc::new(ReadyList::new()),
            cert,
            cfg,
            out: Vec::new(),
            events: VecDeque::new(),
            gop_wanted: Vec::new(),
            keys: Vec::new(),
            pending: VecDeque::new(),
            packets: 0,
            now,
            budget,
            publishers: HashMap::new(),
            departures: Vec::new(),
            batch_departures: Vec::new(),
        }
    }

    /// Sets the bounds on GOP re-sends, with a full budget.
    #[cfg(test)]
    fn set_resend_limits(&mut self, limits: ResendLimits) {
        self.budget = Budget::new(limits, self.now);
    }

    /// The list viewers' queues announce new frames on; the driver waits on it.
    pub fn ready_list(&self) -> Rc<ReadyList> {
        self.ready.clone()
    }

    /// The local address a datagram from `from` was (most likely) sent to: the loopback
    /// candidate for loopback peers, else the first other candidate. str0m only takes
    /// STUN requests addressed to one of its candidates.
    fn local_for(&self, from: SocketAddr) -> SocketAddr {
        let c = &self.cfg.candidates;
        let loopback = from.ip().is_loopback();
        c.iter()
            .find(|a| a.ip().is_loopback() == loopback)
            .or(c.first())
            .copied()
            .unwrap_or(self.cfg.local)
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Whether session `id` exists.
    pub fn contains(&self, id: SessionId) -> bool {
        self.table.get(id).is_some()
    }

    /// Session `id`'s counters and the frames its queue dropped, if it exists.
    pub fn counters(&self, id: SessionId) -> Option<(PeerStats, u64)> {
        let p = self.table.get(id)?.viewer()?;
        Some((p.stats, p.sink.queue.dropped()))
    }

    /// Publisher session `id`'s counters, if it exists.
    pub fn ingest_counters(&self, id: SessionId) -> Option<IngestStats> {
        match &self.table.get(id)?.role {
            Role::Publisher(p, _) => Some(p.stats),
            Role::Viewer(_) => None,
        }
    }

    /// Every publisher's report ([`Publisher::report`]), into `out`.
    pub fn publisher_reports(&mut self, now: Instant, out: &mut Vec<PublisherReport>) {
        for id in self.publishers.values().copied().collect::<Vec<_>>() {
            if let Some(s) = self.table.get_mut(id)
                && let Role::Publisher(p, path) = &mut s.role
            {
                let (delta, tracks) = p.report(now);
                out.push(PublisherReport {
                    id,
                    path: path.clone(),
                    delta,
                    totals: p.stats,
                    tracks,
                });
            }
        }
    }

    /// The publisher session of `path`, if a WHIP publisher on this shard has it.
    pub fn publisher_of(&self, path: &str) -> Option<SessionId> {
        self.publishers.get(path).copied()
    }

    /// Creates a publisher session (WHIP) for `offer_sdp`, receiving what `take` chose,
    /// publishing `path` (the caller has claimed it in the hub). Returns its id and the
    /// SDP answer.
    pub fn create_publisher(
        &mut self,
        now: Instant,
        offer_sdp: &str,
        offer: &[OfferedMedia],
        take: &[Take],
        path: Arc<str>,
    ) -> Result<(SessionId, String), CreateError> {
        self.now = self.now.max(now);
        if !self.has_room() {
            return Err(CreateError::Busy(self.cfg.max_sessions));
        }
        let mids: Vec<Option<String>> = offer.iter().map(|m| m.mid.clone()).collect();
        let (publisher, answer) = Publisher::accept(
            now,
            offer_sdp,
            take,
            &mids,
            &self.cert,
            &self.cfg.candidates,
            self.cfg.ingest,
        )?;
        let ufrag = publisher.ufrag.clone();
        let session = Session {
            role: Role::Publisher(publisher, path.clone()),
            created: now,
        };
        let id = self.table.insert(ufrag, Box::new(session));
        self.table.set_deadline(id, now, now);
        self.publishers.insert(path, id);
        Ok((id, answer))
    }

    /// Whether the shard can take another session.
    pub fn has_room(&self) -> bool {
        self.table.len() < self.cfg.max_sessions
    }

    /// Most sessions on the shard.
    pub fn max_sessions(&self) -> usize {
        self.cfg.max_sessions
    }

    /// Creates a session for `offer_sdp` sending what `sel` chose, fed by `sink`.
    /// Returns its id and the SDP answer.
    pub fn create(
        &mut self,
        now: Instant,
        offer_sdp: &str,
        offer: &[OfferedMedia],
        sel: &Selection,
        sink: SinkHandle,
    ) -> Result<(SessionId, String), CreateError> {
        self.now = self.now.max(now);
        if !self.has_room() {
            return Err(CreateError::Busy(self.cfg.max_sessions));
        }
        let mids: Vec<Option<String>> = offer.iter().map(|m| m.mid.clone()).collect();
        let queue = sink.queue.clone();
        let (peer, answer) = Peer::accept(
            now,
            offer_sdp,
            sel,
            &mids,
            &self.cert,
            &self.cfg.candidates,
            sink,
            self.cfg.peer,
        )?;
        let ufrag = peer.ufrag.clone();
        let id = self.table.insert(
            ufrag,
            Box::new(Session {
                role: Role::Viewer(peer),
                created: now,
            }),
        );
        self.table.set_deadline(id, now, now);
        // Announces at once (the GOP is queued), which also wakes the driver to pick up
        // the new deadline.
        queue.set_ready(self.ready.clone(), id.0);
        Ok((id, answer))
    }

    /// Takes one input. Datagrams of no session are dropped ([`InputError::Unrouted`]).
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> Result<(), InputError> {
        self.now = self.now.max(now);
        match input {
            Input::Datagram { from, data } => self.datagram(now, from, data),
            Input::Ready => {
                self.write_ready(now);
                Ok(())
            }
            Input::Gop { id, gop } => self.send_gop(now, id, gop),
            Input::Close { id, reason } => self.close(now, id, reason),
            Input::CloseAll(reason) => {
                for id in self.table.ids() {
                    let _ = self.close(now, id, reason);
                }
                Ok(())
            }
        }
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        while let Some(id) = self.table.pop_due(now) {
            let Some(s) = self.table.get_mut(id) else {
                continue;
            };
            let next = match &mut s.role {
                Role::Viewer(p) => p.handle_timeout(now, &mut self.out),
                Role::Publisher(p, _) => p.handle_timeout(now, &mut self.out),
            };
            self.settle(id, next, now);
        }
    }

    /// The next thing for the driver to do. Datagrams come first, moved into `batch`
    /// (which should be empty; its capacity is kept for the next round): the driver sends
    /// them and clears it. Then events, then the time of the next timer.
    pub fn poll_output(&mut self, batch: &mut Vec<Transmit>) -> Output {
        // Viewers still to write (a fan-out larger than one batch) come before events and
        // timers: their frames are late already.
        if self.out.is_empty() && !self.pending.is_empty() {
            self.write_pending(self.now);
        }
        if !self.out.is_empty() {
            let base = batch.len();
            if base == 0 {
                self.batch_departures.clear();
            }
            let moved = self.departures.drain(..).map(|d| Departure {
                index: d.index + base,
                ..d
            });
            self.batch_departures.extend(moved);
            if batch.is_empty() {
                std::mem::swap(batch, &mut self.out);
            } else {
                batch.append(&mut self.out);
            }
            // Keep the buffer's capacity for the next round, unless a burst made it huge.
            if self.out.capacity() > 4096 {
                self.out = Vec::with_capacity(256);
            }
            return Output::Transmit(batch.len());
        }
        if let Some(ev) = self.events.pop_front() {
            return Output::Event(ev);
        }
        while let Some(id) = self.gop_wanted.pop() {
            if let Some(p) = self.table.get(id).and_then(|s| s.viewer()) {
                let path = p.sink.path.clone();
                return Output::Event(Event::GopWanted { id, path });
            }
        }
        if self.packets > 0 {
            return Output::Event(Event::PacketsWritten(std::mem::take(&mut self.packets)));
        }
        let next = self.table.next_deadline();
        Output::Timeout(next.unwrap_or(self.now + super::table::MAX_TIMER))
    }

    /// Moves the [`Departure`]s of the batch the last [`Output::Transmit`] handed out
    /// (indices into it) into `into`.
    pub fn take_departures(&mut self, into: &mut Vec<Departure>) {
        into.append(&mut self.batch_departures);
    }

    fn datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Result<(), InputError> {
        let id = self
            .table
            .route(from, || stun_local_ufrag(data))
            .ok_or(InputError::Unrouted)?;
        let local = self.local_for(from);
        let s = self.table.get_mut(id).ok_or(InputError::Unrouted)?;
        let next = match &mut s.role {
            Role::Viewer(p) => {
                let next = p.handle_datagram(now, from, local, data, &mut self.out);
                if next.is_some() && p.is_connected() {
                    // Connecting just now flushes the queued GOP burst.
                    p.pump(now, &mut self.out)
                } else {
                    next
                }
            }
            Role::Publisher(p, _) => p.handle_datagram(now, from, local, data, &mut self.out),
        };
        self.settle(id, next, now);
        Ok(())
    }

    /// Writes queued frames of every viewer whose queue announced itself.
    fn write_ready(&mut self, now: Instant) {
        self.ready.take(&mut self.keys);
        self.pending.extend(self.keys.drain(..));
        self.write_pending(now);
    }

    /// Writes waiting viewers until [`WRITE_BATCH`] datagrams are ready to send (the
    /// rest are written when the driver comes back for more output).
    fn write_pending(&mut self, now: Instant) {
        while self.out.len() < WRITE_BATCH {
            let Some(key) = self.pending.pop_front() else {
                return;
            };
            let id = SessionId(key);
            let Some(p) = self.table.get_mut(id).and_then(|s| s.viewer_mut()) else {
                continue;
            };
            let before = p.stats.packets;
            let next = p.pump(now, &mut self.out);
            self.packets += p.stats.packets - before;
            self.settle(id, next, now);
        }
    }

    /// Re-sends `gop` to session `id` (answering its keyframe request), as much of it as
    /// [`ResendLimits::max_bytes`] allows, if the shard's budget has room; else the
    /// request is dropped (the viewer may ask again after its keyframe interval).
    fn send_gop(
        &mut self,
        now: Instant,
        id: SessionId,
        gop: &[Rc<OutFrame>],
    ) -> Result<(), InputError> {
        if self.table.get(id).and_then(|s| s.viewer()).is_none() {
            return Err(InputError::NoSession(id));
        }
        let (gop, bytes) = cut_gop(gop, self.budget.limits.max_bytes);
        let skipped = gop.is_empty() || !self.budget.take(now, bytes);
        self.events
            .push_back(Event::GopResend { id, bytes, skipped });
        let p = self
            .table
            .get_mut(id)
            .and_then(|s| s.viewer_mut())
            .ok_or(InputError::NoSession(id))?;
        if skipped {
            p.skip_gop(now);
            return Ok(());
        }
        let before = p.stats.packets;
        let next = p.send_gop(now, gop, &mut self.out);
        self.packets += p.stats.packets - before;
        self.settle(id, next, now);
        Ok(())
    }

    /// Ends session `id`.
    fn close(
        &mut self,
        now: Instant,
        id: SessionId,
        reason: CloseReason,
    ) -> Result<(), InputError> {
        let s = self.table.get_mut(id).ok_or(InputError::NoSession(id))?;
        match &mut s.role {
            Role::Viewer(p) => p.close(reason, &mut self.out),
            Role::Publisher(p, _) => p.close(reason, &mut self.out),
        }
        self.settle(id, None, now);
        Ok(())
    }

    /// Records the outcome of a call into a peer: a new deadline, a keyframe wish, or
    /// the end of the session.
    fn settle(&mut self, id: SessionId, next: Option<Instant>, now: Instant) {
        if let Some(p) = self.table.get_mut(id).and_then(|s| s.viewer_mut()) {
            p.take_departures(&mut self.departures);
        }
        let Some(at) = next else {
            self.ended(id, now);
            return;
        };
        self.table.set_deadline(id, at, now);
        let Some(s) = self.table.get_mut(id) else {
            return;
        };
        match &mut s.role {
            Role::Viewer(p) => {
                if p.wants_gop() && !self.gop_wanted.contains(&id) {
                    self.gop_wanted.push(id);
                    // A viewer's keyframe request also goes to the stream's publisher
                    // when it is one of this shard's (rate-limited there).
                    let path = p.sink.path.clone();
                    self.forward_keyframe_request(&path, now);
                }
            }
            Role::Publisher(p, path) => {
                while let Some(produced) = p.poll_produced() {
                    self.events.push_back(Event::Produced {
                        id,
                        path: path.clone(),
                        produced,
                    });
                }
            }
        }
    }

    /// Asks the publisher of `path`, if it is on this shard, for a keyframe (a viewer on
    /// another shard wants one); within the publisher's rate limit.
    pub fn request_publisher_keyframe(&mut self, now: Instant, path: &str) {
        self.now = self.now.max(now);
        self.forward_keyframe_request(path, now);
    }

    /// Asks the publisher of `path`, if it is on this shard, for a keyframe.
    fn forward_keyframe_request(&mut self, path: &str, now: Instant) {
        let Some(pid) = self.publishers.get(path).copied() else {
            return;
        };
        let Some(s) = self.table.get_mut(pid) else {
            return;
        };
        if let Role::Publisher(p, _) = &mut s.role {
            let next = p.request_keyframe(now, &mut self.out);
            self.settle(pid, next, now);
        }
    }

    /// Session `id` ended: forget it and say so.
    fn ended(&mut self, id: SessionId, now: Instant) {
        let Some(s) = self.table.remove(id) else {
            return;
        };
        let lived = now.saturating_duration_since(s.created);
        let closed = match s.role {
            Role::Viewer(p) => Closed {
                id,
                path: p.sink.path.clone(),
                reason: p.closed().unwrap_or(CloseReason::Error),
                lived,
                stats: p.stats,
                ingest: None,
            },
            Role::Publisher(p, path) => {
                if self.publishers.get(&path) == Some(&id) {
                    self.publishers.remove(&path);
                }
                Closed {
                    id,
                    path,
                    reason: p.closed().unwrap_or(CloseReason::Error),
                    lived,
                    stats: PeerStats {
                        bytes_in: p.stats.bytes_in,
                        bytes_out: p.stats.bytes_out,
                        ..PeerStats::default()
                    },
                    ingest: Some(p.stats),
                }
            }
        };
        self.events.push_back(Event::Closed(closed));
    }
}

/// The local (server) ufrag named by a STUN binding request's USERNAME
/// (`server:client`), if `data` is one.
fn stun_local_ufrag(data: &[u8]) -> Option<String> {
    if data.first().is_none_or(|b| *b > 1) {
        return None;
    }
    let msg = str0m::ice::StunMessage::parse(data).ok()?;
    let (local, _) = msg.split_username()?;
    Some(local.to_string())
}

#[cfg(test)]
mod tests;
