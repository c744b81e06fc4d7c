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
use std::cell::{RefCell, RefMut};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A message between shards about WebRTC sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionMsg {
    /// End this session (a WHEP DELETE or WebSocket stop reached another shard).
    End(SessionId),
}

/// How a shard's WebRTC side reaches other shards. The runtime's mesh implements it
/// (control messages: never dropped, in order).
pub trait SessionTx {
    /// Sends `msg` to shard `to`.
    fn send_session(&self, to: usize, msg: SessionMsg);
}

/// Which shard holds each session (by id), process-wide. Touched only when a session
/// starts and ends, never on the media path.
#[derive(Debug, Default)]
pub struct Registry(Mutex<HashMap<u64, usize>>);

impl Registry {
    /// Records that `shard` holds `id`.
    pub fn insert(&self, id: SessionId, shard: usize) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(id.0, shard);
        }
    }

    /// Forgets `id`; returns the shard that held it.
    pub fn remove(&self, id: SessionId) -> Option<usize> {
        self.0.lock().ok().and_then(|mut m| m.remove(&id.0))
    }

    /// Number of sessions registered.
    pub fn len(&self) -> usize {
        self.0.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no session is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Inner {
    shard: usize,
    engine: RefCell<Engine>,
    registry: Arc<Registry>,
    tx: Rc<dyn SessionTx>,
}

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
        }))
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

    /// Handles a message from another shard.
    pub fn handle_msg(&self, msg: SessionMsg) {
        match msg {
            SessionMsg::End(id) => self.close_local(id),
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
            max_sessions: 4,
            candidates: vec![local],
            local,
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
