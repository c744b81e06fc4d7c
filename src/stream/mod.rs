//! Streams, relays and the directory: the shard-local half of the media path.
//!
//! Each shard has one [`Hub`]. A path published on this shard is *owned* here: the hub
//! keeps its tracks and GOP cache, fans frames out to local [`SinkQueue`]s and sends them
//! once to each other shard that subscribed. On those shards the same path is a *relay*
//! that keeps its own GOP cache copy (sharing the payloads) and fans out locally. Every
//! hub keeps a replica of the directory (path → owner shard), maintained by
//! announce/withdraw messages (which also carry each source's start timeout). Tasks that
//! wait for a path's first media register a `Waker` with the hub, which wakes them when
//! the path gets tracks or goes away. Nothing here reads a clock or touches a socket: the
//! shard driver feeds messages in and delivers what the hub sends through [`MeshTx`].

mod hub;
mod path;
mod sink;

pub use hub::{
    DemandBell, DemandChanged, Hub, HubError, HubLimits, PathInfo, Role, SinkHandle, SourceInfo,
    SourceState, SourceStats, SourceTrackStats, Viewer,
};
pub use path::{ClaimError, Clash, Holder, MAX_PATH_LEN, PathError, StreamPath};
pub use sink::{OutFrame, ReadyList, SinkEvent, SinkLimits, SinkQueue};

use crate::media::{Frame, TrackSet};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A message between shards about streams.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StreamMsg {
    /// `owner` now publishes `path`.
    Announce {
        /// Stream path.
        path: Arc<str>,
        /// Shard that owns it.
        owner: usize,
        /// How long a viewer may wait for its first media (its source's
        /// [`SourceInfo::start_timeout`]), so that every shard knows.
        start_timeout: Option<Duration>,
    },
    /// `owner` stopped publishing `path`.
    Withdraw {
        /// Stream path.
        path: Arc<str>,
        /// Shard that owned it.
        owner: usize,
    },
    /// Shard `shard` has viewers of `path` and wants its frames.
    Subscribe {
        /// Stream path.
        path: Arc<str>,
        /// The subscribing shard.
        shard: usize,
    },
    /// Shard `shard` relays `path` to browsers (`any`), or no longer: the owner makes
    /// the stream's browser audio while some shard has them.
    Browsers {
        /// Stream path.
        path: Arc<str>,
        /// The relaying shard.
        shard: usize,
        /// Whether it has browser viewers.
        any: bool,
    },
    /// Shard `shard` has no viewers of `path` any more.
    Unsubscribe {
        /// Stream path.
        path: Arc<str>,
        /// The unsubscribing shard.
        shard: usize,
    },
    /// The state a new relay starts from: metadata, tracks and GOP cache.
    Init {
        /// Stream path.
        path: Arc<str>,
        /// Current metadata, if any.
        metadata: Option<Bytes>,
        /// Current tracks, if known.
        tracks: Option<TrackSet>,
        /// GOP cache, keyframe first.
        gop: Vec<Frame>,
    },
    /// The tracks changed.
    Tracks {
        /// Stream path.
        path: Arc<str>,
        /// The new tracks.
        tracks: TrackSet,
    },
    /// The stream's metadata changed.
    Metadata {
        /// Stream path.
        path: Arc<str>,
        /// AMF0 `onMetaData` body.
        metadata: Bytes,
    },
    /// A media frame.
    Frame {
        /// Stream path.
        path: Arc<str>,
        /// The frame (its payload is shared, not copied).
        frame: Frame,
        /// When its last byte or packet arrived on the owner ([`OutFrame::arrived`]).
        arrived: Option<Instant>,
    },
    /// The stream ended.
    End {
        /// Stream path.
        path: Arc<str>,
        /// The path was removed: viewers are ended rather than left waiting.
        removed: bool,
    },
}

impl StreamMsg {
    /// Whether this is media (droppable under backpressure) rather than control.
    pub fn is_media(&self) -> bool {
        matches!(self, StreamMsg::Frame { .. })
    }

    /// The stream path the message is about.
    pub fn path(&self) -> &Arc<str> {
        match self {
            StreamMsg::Announce { path, .. }
            | StreamMsg::Withdraw { path, .. }
            | StreamMsg::Subscribe { path, .. }
            | StreamMsg::Unsubscribe { path, .. }
            | StreamMsg::Browsers { path, .. }
            | StreamMsg::Init { path, .. }
            | StreamMsg::Tracks { path, .. }
            | StreamMsg::Metadata { path, .. }
            | StreamMsg::Frame { path, .. }
            | StreamMsg::End { path, .. } => path,
        }
    }

    /// Whether this message, sent after `earlier` to the same shard and not yet
    /// delivered, makes `earlier` useless: the receiver would end in the same state
    /// without it. A sender's queue of undelivered control messages can then hold at most
    /// one of each kind per path, however often a path is published, watched or changed.
    pub fn supersedes(&self, earlier: &StreamMsg) -> bool {
        use StreamMsg as M;
        self.path() == earlier.path()
            && matches!(
                (self, earlier),
                (
                    M::Announce { .. } | M::Withdraw { .. },
                    M::Announce { .. } | M::Withdraw { .. }
                ) | (
                    M::Subscribe { .. } | M::Unsubscribe { .. },
                    M::Subscribe { .. } | M::Unsubscribe { .. }
                ) | (
                    M::Init { .. },
                    M::Init { .. } | M::Tracks { .. } | M::Metadata { .. }
                ) | (M::Tracks { .. }, M::Tracks { .. })
                    | (M::Browsers { .. }, M::Browsers { .. })
                    | (M::Metadata { .. }, M::Metadata { .. })
            )
            || matches!(
                (self, earlier),
                (M::End { removed: now, .. }, M::End { removed: before, .. }) if *now || !*before
            ) && self.path() == earlier.path()
    }
}

/// How a hub sends to other shards. Control messages must arrive, in order; media may be
/// refused when the channel is full (the hub then drops to the next keyframe).
pub trait MeshTx {
    /// Queues a control message for shard `to`; never lost, delivered in order.
    fn send_control(&self, to: usize, msg: StreamMsg);
    /// Tries to send a media message to shard `to`; false if it was not sent (channel
    /// full, or control messages about the same path still queued ahead of it).
    fn try_send_media(&self, to: usize, msg: StreamMsg) -> bool;
}
