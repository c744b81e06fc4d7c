//! The cross-shard mesh: one bounded glommio shared channel for each ordered pair of
//! shards, carrying [`ShardMsg`]s: the hubs' [`StreamMsg`]s and the WebRTC side's
//! [`SessionMsg`]s. It is the only way anything crosses shards.

use crate::shard::{CmdTx, SourceCmd};
use crate::stream::{MeshTx, StreamMsg};
use crate::webrtc::{SessionMsg, SessionTx};
use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use tracing::{debug, warn};

/// A message between shards.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ShardMsg {
    /// For the receiving shard's hub.
    Stream(StreamMsg),
    /// For the receiving shard's WebRTC side (end a session it holds).
    Session(SessionMsg),
    /// For the receiving shard's sources (start, stop, restart a configured stream).
    Source(SourceCmd),
    /// End this session of the receiving shard (`DELETE /api/v1/sessions/{id}` landed
    /// on another shard).
    Kick(crate::session::Id),
}

/// The unconnected channel ends of every shard, made on the main thread before the
/// shards start. Shard i takes row i (its senders) and column i (its receivers).
pub struct MeshPlan {
    /// `ends[from][to]`: the sender half (taken by `from`) and receiver half (taken by `to`).
    ends: Vec<Vec<ChannelEnds>>,
}

/// Both halves of one channel, until the shards take them.
type ChannelEnds = (
    Option<SharedSender<ShardMsg>>,
    Option<SharedReceiver<ShardMsg>>,
);

/// One shard's unconnected ends.
pub struct MeshEnds {
    shard: usize,
    senders: Vec<Option<SharedSender<ShardMsg>>>,
    receivers: Vec<Option<SharedReceiver<ShardMsg>>>,
}

impl MeshPlan {
    /// Channels for `shards` shards with `capacity` messages each.
    pub fn new(shards: usize, capacity: usize) -> Self {
        let ends = (0..shards)
            .map(|from| {
                (0..shards)
                    .map(|to| {
                        if from == to {
                            (None, None)
                        } else {
                            let (s, r) = shared_channel::new_bounded(capacity);
                            (Some(s), Some(r))
                        }
                    })
                    .collect()
            })
            .collect();
        MeshPlan { ends }
    }

    /// Takes the ends of every shard.
    pub fn split(mut self) -> Vec<MeshEnds> {
        let n = self.ends.len();
        let mut out: Vec<MeshEnds> = (0..n)
            .map(|shard| MeshEnds {
                shard,
                senders: (0..n).map(|_| None).collect(),
                receivers: (0..n).map(|_| None).collect(),
            })
            .collect();
        for from in 0..n {
            for to in 0..n {
                let (s, r) = (self.ends[from][to].0.take(), self.ends[from][to].1.take());
                out[from].senders[to] = s;
                out[to].receivers[from] = r;
            }
        }
        out
    }
}

impl MeshEnds {
    /// Connects every end (waits for the peers to connect theirs). Returns the sending
    /// side and the receivers, one per peer.
    pub async fn connect(self) -> (Rc<Mesh>, Vec<(usize, ConnectedReceiver<ShardMsg>)>) {
        let send_tasks: Vec<_> = self
            .senders
            .into_iter()
            .map(|s| s.map(|s| glommio::spawn_local(s.connect())))
            .collect();
        let recv_tasks: Vec<_> = self
            .receivers
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| r.map(|r| (i, glommio::spawn_local(r.connect()))))
            .collect();
        let mut senders = Vec::new();
        for t in send_tasks {
            senders.push(match t {
                Some(t) => Some(t.await),
                None => None,
            });
        }
        let mut receivers = Vec::new();
        for (i, t) in recv_tasks {
            receivers.push((i, t.await));
        }
        let n = senders.len();
        let me = self.shard;
        let mesh = Rc::new_cyclic(|weak| Mesh {
            me,
            weak: weak.clone(),
            senders,
            backlog: (0..n).map(|_| RefCell::new(VecDeque::new())).collect(),
            in_flight: (0..n).map(|_| RefCell::new(None)).collect(),
            pumping: (0..n).map(|_| Cell::new(false)).collect(),
        });
        (mesh, receivers)
    }
}

/// A shard's sending side of the mesh.
pub struct Mesh {
    me: usize,
    weak: Weak<Mesh>,
    senders: Vec<Option<ConnectedSender<ShardMsg>>>,
    /// Control messages that did not fit, per destination, in order; a message replaces
    /// the earlier ones it supersedes ([`StreamMsg::supersedes`]), so this holds at most
    /// a few messages per live path.
    backlog: Vec<RefCell<VecDeque<ShardMsg>>>,
    /// Per destination, the path of the stream message the pump is sending (taken off
    /// the backlog, not yet in the channel).
    in_flight: Vec<RefCell<Option<Arc<str>>>>,
    pumping: Vec<Cell<bool>>,
}

impl Mesh {
    fn sender(&self, to: usize) -> Option<&ConnectedSender<ShardMsg>> {
        self.senders.get(to).and_then(|s| s.as_ref())
    }

    /// Control messages waiting for room, to all destinations.
    pub fn backlog(&self) -> usize {
        self.backlog.iter().map(|b| b.borrow().len()).sum()
    }

    /// Closes every channel (shutdown).
    pub fn close(&self) {
        for s in self.senders.iter().flatten() {
            s.close();
        }
    }

    async fn pump(self: Rc<Self>, to: usize) {
        loop {
            let next = self.backlog[to].borrow_mut().pop_front();
            let Some(msg) = next else { break };
            let Some(sender) = self.sender(to) else { break };
            *self.in_flight[to].borrow_mut() = stream_path(&msg).cloned();
            let sent = sender.send(msg).await;
            *self.in_flight[to].borrow_mut() = None;
            if sent.is_err() {
                debug!(from = self.me, to, "mesh peer gone; dropping its backlog");
                self.backlog[to].borrow_mut().clear();
                break;
            }
        }
        self.pumping[to].set(false);
    }

    /// Queues `msg` behind the backlog for `to`, dropping the queued messages it
    /// supersedes.
    fn queue(&self, to: usize, msg: ShardMsg) {
        let mut backlog = self.backlog[to].borrow_mut();
        if let ShardMsg::Stream(new) = &msg {
            backlog.retain(|old| !matches!(old, ShardMsg::Stream(old) if new.supersedes(old)));
        }
        backlog.push_back(msg);
        if backlog.len().is_power_of_two() && backlog.len() >= 1024 {
            warn!(
                from = self.me,
                to,
                queued = backlog.len(),
                "mesh control backlog is long: the peer shard is not keeping up"
            );
        }
    }

    /// Whether control messages about `path` wait to be sent to `to`.
    fn holds(&self, to: usize, path: &Arc<str>) -> bool {
        holds(
            &self.backlog[to].borrow(),
            self.in_flight[to].borrow().as_ref(),
            path,
        )
    }
}

/// Whether a backlog (and the message being sent from it) holds control messages about
/// `path`: a frame of `path` must not overtake them; frames of other paths may.
fn holds(backlog: &VecDeque<ShardMsg>, in_flight: Option<&Arc<str>>, path: &Arc<str>) -> bool {
    in_flight == Some(path) || backlog.iter().any(|m| stream_path(m) == Some(path))
}

/// The stream path a mesh message is about, if it is a stream message.
fn stream_path(msg: &ShardMsg) -> Option<&Arc<str>> {
    match msg {
        ShardMsg::Stream(m) => Some(m.path()),
        ShardMsg::Session(_) | ShardMsg::Source(_) | ShardMsg::Kick(_) => None,
    }
}

impl Mesh {
    /// Queues a control message for shard `to`: never lost, delivered in order (what
    /// does not fit in the channel waits in the backlog, pumped by a task).
    pub fn send(&self, to: usize, msg: ShardMsg) {
        let Some(sender) = self.sender(to) else {
            return;
        };
        if !self.pumping[to].get() {
            match sender.try_send(msg) {
                Ok(()) => return,
                Err(e) => match e {
                    glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(msg)) => {
                        self.queue(to, msg);
                    }
                    _ => return, // closed: the peer is shutting down
                },
            }
            if let Some(me) = self.weak.upgrade() {
                self.pumping[to].set(true);
                glommio::spawn_local(me.pump(to)).detach();
            }
        } else {
            self.queue(to, msg);
        }
    }
}

impl MeshTx for Mesh {
    fn send_control(&self, to: usize, msg: StreamMsg) {
        self.send(to, ShardMsg::Stream(msg));
    }

    fn try_send_media(&self, to: usize, msg: StreamMsg) -> bool {
        if self.pumping[to].get() && self.holds(to, msg.path()) {
            return false;
        }
        match self.sender(to) {
            Some(s) => s.try_send(ShardMsg::Stream(msg)).is_ok(),
            None => false,
        }
    }
}

impl CmdTx for Mesh {
    fn send_cmd(&self, to: usize, cmd: SourceCmd) {
        self.send(to, ShardMsg::Source(cmd));
    }
}

impl SessionTx for Mesh {
    fn send_session(&self, to: usize, msg: SessionMsg) {
        self.send(to, ShardMsg::Session(msg));
    }
}

impl crate::session::KickTx for Mesh {
    fn send_kick(&self, to: usize, id: crate::session::Id) {
        self.send(to, ShardMsg::Kick(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(path: &str) -> ShardMsg {
        ShardMsg::Stream(StreamMsg::End {
            path: path.into(),
            removed: false,
        })
    }

    #[test]
    fn only_frames_of_a_path_with_queued_control_messages_wait() {
        let (a, b): (Arc<str>, Arc<str>) = ("live/a".into(), "live/b".into());
        let backlog: VecDeque<ShardMsg> = [end("live/a")].into();
        assert!(holds(&backlog, None, &a));
        assert!(!holds(&backlog, None, &b));
        assert!(holds(&VecDeque::new(), Some(&b), &b));
        assert!(!holds(&VecDeque::new(), Some(&a), &b));
        let session = ShardMsg::Session(SessionMsg::End(crate::webrtc::table::SessionId(1)));
        assert!(!holds(&[session].into(), None, &a));
    }
}
