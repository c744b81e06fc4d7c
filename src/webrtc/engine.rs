//! The WebRTC state of one shard: its sessions, how datagrams and timers reach them, and
//! the datagrams they produce. Sans-IO: the shard's UDP driver feeds it received
//! datagrams, the current time and "media ready" wake-ups, and sends what collects in
//! [`Engine::out`].

use super::offer::{OfferedMedia, Selection};
use super::peer::{CloseReason, Peer, PeerConfig, PeerError, PeerStats};
use super::table::{SessionId, Table};
use crate::stream::{OutFrame, ReadyList, SinkHandle};
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
    /// Most sessions on the shard.
    pub max_sessions: usize,
    /// Host candidates announced in answers (the shard's UDP port on each address).
    pub candidates: Vec<SocketAddr>,
    /// The socket's local address (the destination of received datagrams).
    pub local: SocketAddr,
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
    /// Its counters.
    pub stats: PeerStats,
}

struct Session {
    peer: Peer,
    created: Instant,
}

/// The sessions of one shard.
pub struct Engine {
    table: Table<Session>,
    ready: Rc<ReadyList>,
    cert: DtlsCert,
    cfg: EngineConfig,
    /// Datagrams to send, in order.
    pub out: Vec<Transmit>,
    closed: Vec<Closed>,
    gop_wanted: Vec<SessionId>,
    keys: Vec<u64>,
    /// RTP packets written since the last `take_packets`.
    packets: u64,
}

impl Engine {
    /// An engine with no sessions.
    pub fn new(cert: DtlsCert, cfg: EngineConfig) -> Self {
        Engine {
            table: Table::new(),
            ready: Rc::new(ReadyList::new()),
            cert,
            cfg,
            out: Vec::new(),
            closed: Vec::new(),
            gop_wanted: Vec::new(),
            keys: Vec::new(),
            packets: 0,
        }
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

    /// Whether the shard can take another session.
    pub fn has_room(&self) -> bool {
        self.table.len() < self.cfg.max_sessions
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
        let id = self.table.insert(ufrag, Session { peer, created: now });
        self.table.set_deadline(id, now, now);
        // Announces at once (the GOP is queued), which also wakes the driver to pick up
        // the new deadline.
        queue.set_ready(self.ready.clone(), id.0);
        Ok((id, answer))
    }

    /// Handles one datagram from `from`. Datagrams of no session are dropped; returns
    /// whether it was routed.
    pub fn datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> bool {
        let Some(id) = self.table.route(from, || stun_local_ufrag(data)) else {
            return false;
        };
        let local = self.local_for(from);
        let Some(s) = self.table.get_mut(id) else {
            return false;
        };
        let mut next = s
            .peer
            .handle_datagram(now, from, local, data, &mut self.out);
        if next.is_some() && s.peer.is_connected() {
            // Connecting just now flushes the queued GOP burst.
            next = s.peer.pump(now, &mut self.out);
        }
        self.settle(id, next, now);
        true
    }

    /// Writes queued frames of every viewer whose queue announced itself.
    pub fn on_ready(&mut self, now: Instant) {
        let mut keys = std::mem::take(&mut self.keys);
        self.ready.take(&mut keys);
        for key in keys.drain(..) {
            let id = SessionId(key);
            let Some(s) = self.table.get_mut(id) else {
                continue;
            };
            let before = s.peer.stats.packets;
            let next = s.peer.pump(now, &mut self.out);
            self.packets += s.peer.stats.packets - before;
            self.settle(id, next, now);
        }
        self.keys = keys;
    }

    /// Runs the timers that are due.
    pub fn on_timers(&mut self, now: Instant) {
        while let Some(id) = self.table.pop_due(now) {
            let Some(s) = self.table.get_mut(id) else {
                continue;
            };
            let next = s.peer.handle_timeout(now, &mut self.out);
            self.settle(id, next, now);
        }
    }

    /// When the next timer is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.table.next_deadline()
    }

    /// Sessions that asked for a GOP re-send (keyframe request) since the last call,
    /// with their stream paths.
    pub fn take_gop_wanted(&mut self) -> Vec<(SessionId, Arc<str>)> {
        let ids = std::mem::take(&mut self.gop_wanted);
        ids.into_iter()
            .filter_map(|id| {
                let s = self.table.get(id)?;
                Some((id, s.peer.sink.path.clone()))
            })
            .collect()
    }

    /// Re-sends `gop` to session `id` (answering its keyframe request).
    pub fn send_gop(&mut self, now: Instant, id: SessionId, gop: &[Rc<OutFrame>]) {
        let Some(s) = self.table.get_mut(id) else {
            return;
        };
        let before = s.peer.stats.packets;
        let next = s.peer.send_gop(now, gop, &mut self.out);
        self.packets += s.peer.stats.packets - before;
        self.settle(id, next, now);
    }

    /// Ends session `id`; false if there is no such session.
    pub fn close(&mut self, now: Instant, id: SessionId, reason: CloseReason) -> bool {
        let Some(s) = self.table.get_mut(id) else {
            return false;
        };
        s.peer.close(reason, &mut self.out);
        self.settle(id, None, now);
        true
    }

    /// Ends every session.
    pub fn close_all(&mut self, now: Instant, reason: CloseReason) {
        for id in self.table.ids() {
            self.close(now, id, reason);
        }
    }

    /// RTP packets written since the last call.
    pub fn take_packets(&mut self) -> u64 {
        std::mem::take(&mut self.packets)
    }

    /// Sessions that ended since the last call.
    pub fn take_closed(&mut self) -> Vec<Closed> {
        std::mem::take(&mut self.closed)
    }

    /// Records the outcome of a call into a peer: a new deadline, a keyframe wish, or
    /// the end of the session.
    fn settle(&mut self, id: SessionId, next: Option<Instant>, now: Instant) {
        match next {
            Some(at) => {
                self.table.set_deadline(id, at, now);
                if let Some(s) = self.table.get(id)
                    && s.peer.wants_gop()
                    && !self.gop_wanted.contains(&id)
                {
                    self.gop_wanted.push(id);
                }
            }
            None => {
                if let Some(s) = self.table.remove(id) {
                    self.closed.push(Closed {
                        id,
                        path: s.peer.sink.path.clone(),
                        reason: s.peer.closed().unwrap_or(CloseReason::Error),
                        lived: now.saturating_duration_since(s.created),
                        stats: s.peer.stats,
                    });
                }
            }
        }
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
