//! The per-shard hub: owned streams, relays, waiting viewers and the directory replica.

use super::{MeshTx, OutFrame, SinkEvent, SinkLimits, SinkQueue, StreamMsg};
use crate::media::gop::GopCache;
use crate::media::{Frame, Track, TrackSet};
use crate::stats::{self, ShardStats};
use bytes::Bytes;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

/// Why a hub call was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum HubError {
    /// The path is already published (here or on another shard).
    #[error("stream '{path}' is already published (owner shard {owner})")]
    AlreadyPublished {
        /// Stream path.
        path: String,
        /// Its owner.
        owner: usize,
    },
    /// No such stream.
    #[error("stream '{0}' not found")]
    NotFound(String),
    /// The call needs a stream this shard owns.
    #[error("stream '{0}' is not owned by this shard")]
    NotOwner(String),
}

/// Where a path's media come from, as shown in the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// `file`, `rtmp`, `rtsp`, ...
    pub kind: &'static str,
    /// The source's address, without credentials.
    pub url: String,
    /// What the source is doing.
    pub state: SourceState,
    /// Counters of a pulled source (RTSP), refreshed by its driver.
    pub stats: Option<SourceStats>,
    /// How long a viewer's offer may wait for this source's first media (an on-demand
    /// source starts when the viewer arrives); `None`: the source does not start on
    /// demand, an offer without media is refused at once.
    pub start_timeout: Option<Duration>,
}

/// What a stream's source is doing, as the API shows it (`Display` gives the API's
/// string: `connecting`, `live`, `idle`, `retrying in 4s: <why>`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceState {
    /// Connecting, or connected and waiting for the first keyframe.
    Connecting,
    /// Delivering media.
    Live,
    /// On-demand and nobody watches: not connected.
    Idle,
    /// The last attempt failed; the next one is due in `in_secs` seconds.
    Retrying {
        /// Seconds until the next attempt (rounded up).
        in_secs: u64,
        /// Why the last attempt or session ended.
        why: String,
    },
}

impl std::fmt::Display for SourceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceState::Connecting => f.write_str("connecting"),
            SourceState::Live => f.write_str("live"),
            SourceState::Idle => f.write_str("idle"),
            SourceState::Retrying { in_secs, why } => write!(f, "retrying in {in_secs}s: {why}"),
        }
    }
}

/// Counters of a pulled source, as shown in the API and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Transport in use (`tcp`, `udp`), once connected.
    pub transport: Option<&'static str>,
    /// Sessions started after the first one.
    pub reconnects: u64,
    /// The last error that ended a session or a connection attempt.
    pub last_error: Option<String>,
    /// Per-track counters, in track order.
    pub tracks: Vec<SourceTrackStats>,
}

/// Counters of one received track (totals over every session of the source).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceTrackStats {
    /// Codec name.
    pub codec: &'static str,
    /// RTP packets received.
    pub packets: u64,
    /// RTP payload bytes received.
    pub bytes: u64,
    /// Packets lost (sequence gaps).
    pub lost: u64,
    /// Frames produced.
    pub frames: u64,
    /// Frames dropped (incomplete, or waiting for a keyframe after loss).
    pub frames_dropped: u64,
    /// Received bitrate over the last second, bits per second.
    pub bitrate: u64,
}

/// What this shard is for a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The path is published on this shard.
    Owner,
    /// The path is owned by another shard and relayed here.
    Relay {
        /// The owner shard.
        owner: usize,
    },
    /// Viewers are attached but nobody publishes the path now.
    Waiting,
}

/// A viewer's attachment to a path. Dropping it detaches the viewer; the hub forgets it
/// at its next pass.
#[derive(Debug)]
pub struct SinkHandle {
    /// Stream path.
    pub path: Arc<str>,
    /// The viewer's queue.
    pub queue: Rc<SinkQueue>,
}

impl Drop for SinkHandle {
    fn drop(&mut self) {
        self.queue.detach();
    }
}

/// A shard's view of one path, for the API.
#[derive(Debug, Clone)]
pub struct PathInfo {
    /// Stream path.
    pub path: Arc<str>,
    /// This shard's role.
    pub role: Role,
    /// Source (owner only).
    pub source: Option<SourceInfo>,
    /// Tracks, once known.
    pub tracks: Option<TrackSet>,
    /// Viewers attached on this shard.
    pub viewers: usize,
    /// Media bytes received (owner only).
    pub bytes_in: u64,
    /// Frames received (owner only).
    pub frames_in: u64,
    /// Frames dropped for this path's slow viewers on this shard, plus relay drops.
    pub frames_dropped: u64,
    /// Shards relaying this stream (owner only).
    pub relay_shards: Vec<usize>,
}

#[derive(Debug)]
struct RemoteSub {
    shard: usize,
    waiting_keyframe: bool,
}

#[derive(Debug)]
struct PathState {
    path: Arc<str>,
    role: Role,
    source: Option<SourceInfo>,
    tracks: Option<TrackSet>,
    metadata: Option<Bytes>,
    has_video: bool,
    gop: GopCache<Rc<OutFrame>>,
    sinks: Vec<Rc<SinkQueue>>,
    remote: Vec<RemoteSub>,
    bytes_in: u64,
    frames_in: u64,
    dropped: u64,
}

impl PathState {
    fn new(path: Arc<str>, role: Role, limits: &HubLimits) -> Self {
        PathState {
            path,
            role,
            source: None,
            tracks: None,
            metadata: None,
            has_video: false,
            gop: GopCache::new(limits.gop_max_frames, limits.gop_max_bytes),
            sinks: Vec::new(),
            remote: Vec::new(),
            bytes_in: 0,
            frames_in: 0,
            dropped: 0,
        }
    }

    fn set_tracks(&mut self, tracks: TrackSet) {
        self.has_video = tracks
            .iter()
            .any(|t| t.kind() == crate::media::MediaKind::Video);
        for s in &self.sinks {
            s.push(SinkEvent::Tracks(tracks.clone()));
        }
        self.tracks = Some(tracks);
    }

    fn set_metadata(&mut self, metadata: Bytes) {
        for s in &self.sinks {
            s.push(SinkEvent::Metadata(metadata.clone()));
        }
        self.metadata = Some(metadata);
    }

    /// Local fan-out of one frame: cache it and queue it for every local viewer. The
    /// frame is wrapped once, so its derived forms are computed once per shard.
    fn fan_out(&mut self, frame: Frame, stats: &ShardStats) {
        let out = OutFrame::new(frame);
        self.gop.push(&out);
        for s in &self.sinks {
            if !s.push(SinkEvent::Frame(out.clone())) {
                self.dropped += 1;
                stats::add(&stats.frames_dropped, 1);
            }
        }
    }

    /// Hands a new viewer what it needs to start at once: metadata, tracks, then the GOP
    /// cache.
    fn prime(&self, q: &SinkQueue) {
        if let Some(m) = &self.metadata {
            q.push(SinkEvent::Metadata(m.clone()));
        }
        if let Some(t) = &self.tracks {
            q.push(SinkEvent::Tracks(t.clone()));
            for f in self.gop.frames() {
                q.push(SinkEvent::Frame(f.clone()));
            }
        }
    }

    fn end_sinks(&mut self) {
        for s in &self.sinks {
            s.push(SinkEvent::End);
        }
        self.tracks = None;
        self.metadata = None;
        self.gop.clear();
    }
}

/// Bounds the hub applies.
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    /// GOP cache frames.
    pub gop_max_frames: usize,
    /// GOP cache bytes.
    pub gop_max_bytes: usize,
    /// Per-viewer queue bounds.
    pub sink: SinkLimits,
}

/// The streams, relays and directory replica of one shard.
pub struct Hub {
    shard: usize,
    shards: usize,
    limits: HubLimits,
    directory: HashMap<Arc<str>, usize>,
    paths: HashMap<Arc<str>, PathState>,
    tx: Rc<dyn MeshTx>,
    stats: Arc<ShardStats>,
}

impl Hub {
    /// The hub of shard `shard` out of `shards`.
    pub fn new(
        shard: usize,
        shards: usize,
        limits: HubLimits,
        tx: Rc<dyn MeshTx>,
        stats: Arc<ShardStats>,
    ) -> Self {
        Hub {
            shard,
            shards,
            limits,
            directory: HashMap::new(),
            paths: HashMap::new(),
            tx,
            stats,
        }
    }

    /// This shard's index.
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// The owner of `path` according to this shard's directory replica.
    pub fn owner(&self, path: &str) -> Option<usize> {
        self.directory.get(path).copied()
    }

    /// Paths in the directory, with their owners.
    pub fn directory(&self) -> impl Iterator<Item = (&Arc<str>, usize)> + '_ {
        self.directory.iter().map(|(p, o)| (p, *o))
    }

    fn others(&self) -> impl Iterator<Item = usize> + use<> {
        let me = self.shard;
        (0..self.shards).filter(move |s| *s != me)
    }

    /// Starts publishing `path` on this shard and announces it to every shard.
    pub fn publish(&mut self, path: &str, source: SourceInfo) -> Result<Arc<str>, HubError> {
        if let Some(owner) = self.owner(path) {
            return Err(HubError::AlreadyPublished {
                path: path.to_string(),
                owner,
            });
        }
        let path: Arc<str> = Arc::from(path);
        self.directory.insert(path.clone(), self.shard);
        let limits = self.limits;
        let st = self
            .paths
            .entry(path.clone())
            .or_insert_with(|| PathState::new(path.clone(), Role::Owner, &limits));
        if st.role != Role::Owner {
            // Viewers were waiting here for this path.
            st.role = Role::Owner;
        }
        st.source = Some(source);
        stats::add(&self.stats.streams, 1);
        for to in self.others() {
            self.tx.send_control(
                to,
                StreamMsg::Announce {
                    path: path.clone(),
                    owner: self.shard,
                },
            );
        }
        info!(shard = self.shard, path = %path, "stream published");
        Ok(path)
    }

    /// Updates the state shown for an owned stream's source.
    pub fn set_source_state(&mut self, path: &str, state: SourceState) {
        if let Some(st) = self.paths.get_mut(path)
            && let Some(src) = &mut st.source
        {
            src.state = state;
        }
    }

    /// Updates the counters shown for an owned stream's source.
    pub fn set_source_stats(&mut self, path: &str, stats: SourceStats) {
        if let Some(st) = self.paths.get_mut(path)
            && let Some(src) = &mut st.source
        {
            src.stats = Some(stats);
        }
    }

    /// Viewers of an owned `path` anywhere: attached on this shard, plus one per shard
    /// relaying it. Zero for paths this shard does not own.
    pub fn demand(&self, path: &str) -> usize {
        match self.paths.get(path) {
            Some(st) if st.role == Role::Owner => {
                st.sinks.iter().filter(|s| !s.is_detached()).count() + st.remote.len()
            }
            _ => 0,
        }
    }

    /// Forgets an owned stream's GOP cache (its source went away; a viewer joining now
    /// should not get pictures from before).
    pub fn clear_gop(&mut self, path: &str) {
        if let Some(st) = self.paths.get_mut(path)
            && st.role == Role::Owner
        {
            st.gop.clear();
        }
    }

    /// Sets the tracks of an owned stream (when they first become known or change).
    pub fn set_tracks(&mut self, path: &str, tracks: Vec<Track>) -> Result<(), HubError> {
        let st = self.owned_mut(path)?;
        let tracks: TrackSet = Arc::from(tracks);
        st.set_tracks(tracks.clone());
        let subs: Vec<usize> = st.remote.iter().map(|r| r.shard).collect();
        let p = st.path.clone();
        for to in subs {
            self.tx.send_control(
                to,
                StreamMsg::Tracks {
                    path: p.clone(),
                    tracks: tracks.clone(),
                },
            );
        }
        Ok(())
    }

    /// Sets the metadata of an owned stream (RTMP `@setDataFrame`/`onMetaData`).
    pub fn set_metadata(&mut self, path: &str, metadata: Bytes) -> Result<(), HubError> {
        let st = self.owned_mut(path)?;
        st.set_metadata(metadata.clone());
        let subs: Vec<usize> = st.remote.iter().map(|r| r.shard).collect();
        let p = st.path.clone();
        for to in subs {
            self.tx.send_control(
                to,
                StreamMsg::Metadata {
                    path: p.clone(),
                    metadata: metadata.clone(),
                },
            );
        }
        Ok(())
    }

    /// Pushes a frame of an owned stream to its GOP cache, local viewers and subscribed
    /// shards. Never blocks: a full queue or channel drops frames to the next keyframe.
    pub fn push_frame(&mut self, path: &str, frame: Frame) -> Result<(), HubError> {
        let Hub {
            paths, stats, tx, ..
        } = self;
        let st = match paths.get_mut(path) {
            Some(st) if st.role == Role::Owner => st,
            _ => return Err(HubError::NotOwner(path.to_string())),
        };
        st.bytes_in += frame.data.len() as u64;
        st.frames_in += 1;
        stats::add(&stats.frames_in, 1);
        stats::add(&stats.bytes_in, frame.data.len() as u64);
        let resume = frame.is_resume_point(st.has_video);
        let remote_frame = (!st.remote.is_empty()).then(|| frame.clone());
        st.fan_out(frame, stats);
        let Some(frame) = remote_frame else {
            return Ok(());
        };
        for sub in &mut st.remote {
            if sub.waiting_keyframe && !resume {
                st.dropped += 1;
                stats::add(&stats.mesh_frames_dropped, 1);
                continue;
            }
            let msg = StreamMsg::Frame {
                path: st.path.clone(),
                frame: frame.clone(),
            };
            if tx.try_send_media(sub.shard, msg) {
                sub.waiting_keyframe = false;
            } else {
                if !sub.waiting_keyframe {
                    debug!(path = %st.path, to = sub.shard, "mesh full, relay drops to next keyframe");
                }
                sub.waiting_keyframe = true;
                st.dropped += 1;
                stats::add(&stats.mesh_frames_dropped, 1);
            }
        }
        Ok(())
    }

    /// Stops publishing an owned stream: viewers everywhere are told, the directory
    /// entry is withdrawn. Viewers stay attached and resume if the path is published again.
    pub fn unpublish(&mut self, path: &str) -> Result<(), HubError> {
        let shard = self.shard;
        let st = self.owned_mut(path)?;
        st.end_sinks();
        st.source = None;
        st.role = Role::Waiting;
        let p = st.path.clone();
        let subs: Vec<usize> = st.remote.drain(..).map(|r| r.shard).collect();
        for to in subs {
            self.tx.send_control(to, StreamMsg::End { path: p.clone() });
        }
        self.directory.remove(&p);
        for to in self.others() {
            self.tx.send_control(
                to,
                StreamMsg::Withdraw {
                    path: p.clone(),
                    owner: shard,
                },
            );
        }
        stats::sub(&self.stats.streams, 1);
        info!(shard, path = %p, "stream unpublished");
        self.prune();
        Ok(())
    }

    /// The tracks of `path` as this shard knows them (owned or relayed here).
    pub fn tracks(&self, path: &str) -> Option<TrackSet> {
        self.paths.get(path).and_then(|st| st.tracks.clone())
    }

    /// The GOP cache of `path` on this shard (keyframe first), for a viewer that asked
    /// for a keyframe.
    pub fn gop(&self, path: &str) -> Vec<Rc<OutFrame>> {
        self.paths
            .get(path)
            .map(|st| st.gop.frames().cloned().collect())
            .unwrap_or_default()
    }

    /// Attaches a viewer to `path`, wherever it is owned. The viewer's queue first gets
    /// the tracks and the GOP cache, then live frames.
    pub fn subscribe(&mut self, path: &str) -> Result<SinkHandle, HubError> {
        let queue = Rc::new(SinkQueue::new(self.limits.sink));
        let limits = self.limits;
        if let Some(st) = self.paths.get_mut(path)
            && st.role != Role::Waiting
        {
            st.prime(&queue);
            st.sinks.push(queue.clone());
            stats::add(&self.stats.viewers, 1);
            return Ok(SinkHandle {
                path: st.path.clone(),
                queue,
            });
        }
        let owner = self
            .owner(path)
            .ok_or_else(|| HubError::NotFound(path.to_string()))?;
        // Owned elsewhere and no relay yet (an owned path always has a state entry).
        let p: Arc<str> = self
            .directory
            .get_key_value(path)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| Arc::from(path));
        let st = self
            .paths
            .entry(p.clone())
            .or_insert_with(|| PathState::new(p.clone(), Role::Relay { owner }, &limits));
        st.role = Role::Relay { owner };
        st.sinks.push(queue.clone());
        stats::add(&self.stats.viewers, 1);
        stats::add(&self.stats.relays, 1);
        self.tx.send_control(
            owner,
            StreamMsg::Subscribe {
                path: p.clone(),
                shard: self.shard,
            },
        );
        debug!(shard = self.shard, path = %p, owner, "relay opened");
        Ok(SinkHandle { path: p, queue })
    }

    /// Forgets detached viewers and closes relays nobody watches.
    pub fn prune(&mut self) {
        let mut gone = Vec::new();
        for (p, st) in self.paths.iter_mut() {
            let before = st.sinks.len();
            st.sinks.retain(|s| !s.is_detached());
            stats::sub(&self.stats.viewers, (before - st.sinks.len()) as u64);
            if st.sinks.is_empty() {
                match st.role {
                    Role::Relay { owner } => {
                        self.tx.send_control(
                            owner,
                            StreamMsg::Unsubscribe {
                                path: p.clone(),
                                shard: self.shard,
                            },
                        );
                        stats::sub(&self.stats.relays, 1);
                        debug!(shard = self.shard, path = %p, owner, "relay closed");
                        gone.push(p.clone());
                    }
                    Role::Waiting => gone.push(p.clone()),
                    Role::Owner => {}
                }
            }
        }
        for p in gone {
            self.paths.remove(&p);
        }
    }

    /// Handles a message from shard `from`.
    pub fn handle_msg(&mut self, from: usize, msg: StreamMsg) {
        match msg {
            StreamMsg::Announce { path, owner } => {
                // Two shards may publish the same path at the same moment (each checked
                // only its own directory). The lower shard keeps it, on every shard, in
                // whatever order the announcements arrive.
                if let Some(&prev) = self.directory.get(&path)
                    && prev < owner
                {
                    warn!(path = %path, kept = prev, refused = owner, "stream published on two shards at once; the lower shard keeps it");
                    return;
                }
                self.directory.insert(path.clone(), owner);
                let me = self.shard;
                if let Some(st) = self.paths.get_mut(&path)
                    && st.role == Role::Owner
                {
                    // We lost the race: our publisher is cut off (its next push gets
                    // `NotOwner`) and our viewers are relayed from the winner.
                    warn!(path = %path, shard = me, winner = owner, "stream published on two shards at once; this shard gives it up");
                    st.end_sinks();
                    st.source = None;
                    st.role = Role::Waiting;
                    let subs: Vec<usize> = st.remote.drain(..).map(|r| r.shard).collect();
                    for to in subs {
                        self.tx
                            .send_control(to, StreamMsg::End { path: path.clone() });
                    }
                    stats::sub(&self.stats.streams, 1);
                }
                // Viewers waiting here for this path: start relaying.
                if let Some(st) = self.paths.get_mut(&path)
                    && st.role == Role::Waiting
                    && !st.sinks.is_empty()
                {
                    st.role = Role::Relay { owner };
                    stats::add(&self.stats.relays, 1);
                    self.tx.send_control(
                        owner,
                        StreamMsg::Subscribe {
                            path,
                            shard: self.shard,
                        },
                    );
                }
            }
            StreamMsg::Withdraw { path, owner } => {
                if self.directory.get(&path) == Some(&owner) {
                    self.directory.remove(&path);
                }
            }
            StreamMsg::Subscribe { path, shard } => match self.paths.get_mut(&path) {
                Some(st) if st.role == Role::Owner => {
                    st.remote.retain(|r| r.shard != shard);
                    st.remote.push(RemoteSub {
                        shard,
                        waiting_keyframe: false,
                    });
                    let init = StreamMsg::Init {
                        path: path.clone(),
                        metadata: st.metadata.clone(),
                        tracks: st.tracks.clone(),
                        gop: st.gop.frames().map(|f| f.frame.clone()).collect(),
                    };
                    self.tx.send_control(shard, init);
                }
                _ => self.tx.send_control(shard, StreamMsg::End { path }),
            },
            StreamMsg::Unsubscribe { path, shard } => {
                if let Some(st) = self.paths.get_mut(&path) {
                    st.remote.retain(|r| r.shard != shard);
                }
            }
            StreamMsg::Init {
                path,
                metadata,
                tracks,
                gop,
            } => {
                let stats = &self.stats;
                if let Some(st) = relay_in(&mut self.paths, &path, from) {
                    st.gop.clear();
                    if let Some(m) = metadata {
                        st.set_metadata(m);
                    }
                    if let Some(t) = tracks {
                        st.set_tracks(t);
                    }
                    for f in gop {
                        st.fan_out(f, stats);
                    }
                }
            }
            StreamMsg::Metadata { path, metadata } => {
                if let Some(st) = self.relay_mut(&path, from) {
                    st.set_metadata(metadata);
                }
            }
            StreamMsg::Tracks { path, tracks } => {
                if let Some(st) = self.relay_mut(&path, from) {
                    st.set_tracks(tracks);
                }
            }
            StreamMsg::Frame { path, frame } => {
                let stats = &self.stats;
                if let Some(st) = relay_in(&mut self.paths, &path, from) {
                    st.fan_out(frame, stats);
                }
            }
            StreamMsg::End { path } => {
                if let Some(st) = self.relay_mut(&path, from) {
                    st.end_sinks();
                    st.role = Role::Waiting;
                    stats::sub(&self.stats.relays, 1);
                }
            }
        }
    }

    fn owned_mut(&mut self, path: &str) -> Result<&mut PathState, HubError> {
        match self.paths.get_mut(path) {
            Some(st) if st.role == Role::Owner => Ok(st),
            _ => Err(HubError::NotOwner(path.to_string())),
        }
    }

    fn relay_mut(&mut self, path: &str, from: usize) -> Option<&mut PathState> {
        relay_in(&mut self.paths, path, from)
    }

    /// This shard's paths, for the API.
    pub fn paths(&self) -> Vec<PathInfo> {
        self.paths
            .values()
            .map(|st| PathInfo {
                path: st.path.clone(),
                role: st.role.clone(),
                source: st.source.clone(),
                tracks: st.tracks.clone(),
                viewers: st.sinks.iter().filter(|s| !s.is_detached()).count(),
                bytes_in: st.bytes_in,
                frames_in: st.frames_in,
                frames_dropped: st.dropped,
                relay_shards: st.remote.iter().map(|r| r.shard).collect(),
            })
            .collect()
    }

    /// Ends every owned stream (shutdown).
    pub fn unpublish_all(&mut self) {
        let owned: Vec<Arc<str>> = self
            .paths
            .values()
            .filter(|st| st.role == Role::Owner)
            .map(|st| st.path.clone())
            .collect();
        for p in owned {
            let _ = self.unpublish(&p);
        }
    }
}

fn relay_in<'a>(
    paths: &'a mut HashMap<Arc<str>, PathState>,
    path: &str,
    from: usize,
) -> Option<&'a mut PathState> {
    paths
        .get_mut(path)
        .filter(|st| st.role == (Role::Relay { owner: from }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{Codec, MediaKind, TrackId};
    use bytes::Bytes;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    /// An in-memory mesh between hubs: queues per destination, media capacity bounded.
    #[derive(Default)]
    struct FakeMesh {
        queues: RefCell<Vec<VecDeque<(usize, StreamMsg)>>>,
        media_capacity: usize,
    }

    struct Port {
        from: usize,
        mesh: Rc<FakeMesh>,
    }

    impl MeshTx for Port {
        fn send_control(&self, to: usize, msg: StreamMsg) {
            self.mesh.queues.borrow_mut()[to].push_back((self.from, msg));
        }
        fn try_send_media(&self, to: usize, msg: StreamMsg) -> bool {
            let mut q = self.mesh.queues.borrow_mut();
            if q[to].len() >= self.mesh.media_capacity {
                return false;
            }
            q[to].push_back((self.from, msg));
            true
        }
    }

    fn limits() -> HubLimits {
        HubLimits {
            gop_max_frames: 100,
            gop_max_bytes: 1 << 20,
            sink: SinkLimits {
                max_frames: 50,
                max_bytes: 1 << 20,
            },
        }
    }

    fn hubs(n: usize, media_capacity: usize) -> (Rc<FakeMesh>, Vec<Hub>) {
        let mesh = Rc::new(FakeMesh {
            queues: RefCell::new(vec![VecDeque::new(); n]),
            media_capacity,
        });
        let hubs = (0..n)
            .map(|i| {
                let port: Rc<dyn MeshTx> = Rc::new(Port {
                    from: i,
                    mesh: mesh.clone(),
                });
                Hub::new(i, n, limits(), port, Arc::new(ShardStats::default()))
            })
            .collect();
        (mesh, hubs)
    }

    /// Delivers queued messages until the mesh is quiet.
    fn settle(mesh: &FakeMesh, hubs: &mut [Hub]) {
        loop {
            let mut moved = false;
            for (i, hub) in hubs.iter_mut().enumerate() {
                loop {
                    let next = mesh.queues.borrow_mut()[i].pop_front();
                    let Some((from, msg)) = next else { break };
                    hub.handle_msg(from, msg);
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn src() -> SourceInfo {
        SourceInfo {
            kind: "test",
            url: "test:".into(),
            state: crate::stream::SourceState::Live,
            stats: None,
            start_timeout: None,
        }
    }

    fn video(keyframe: bool, t: i64) -> Frame {
        Frame {
            track: TrackId(0),
            kind: MediaKind::Video,
            keyframe,
            dts: t,
            pts: t,
            data: Bytes::from(vec![t as u8; 64]),
        }
    }

    fn frames(q: &SinkQueue) -> Vec<i64> {
        std::iter::from_fn(|| q.try_pop())
            .filter_map(|e| match e {
                SinkEvent::Frame(f) => Some(f.frame.dts),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn announce_reaches_every_directory_and_duplicates_are_refused() {
        let (mesh, mut h) = hubs(3, 100);
        h[1].publish("live/a", src()).unwrap();
        settle(&mesh, &mut h);
        for hub in &h {
            assert_eq!(hub.owner("live/a"), Some(1));
        }
        assert!(matches!(
            h[2].publish("live/a", src()),
            Err(HubError::AlreadyPublished { owner: 1, .. })
        ));
        h[1].unpublish("live/a").unwrap();
        settle(&mesh, &mut h);
        assert!(h.iter().all(|hub| hub.owner("live/a").is_none()));
        assert!(h[2].publish("live/a", src()).is_ok());
    }

    #[test]
    fn new_local_viewer_gets_tracks_and_gop_first() {
        let (_mesh, mut h) = hubs(1, 100);
        h[0].publish("a", src()).unwrap();
        h[0].set_tracks("a", vec![Track::new(TrackId(0), Codec::H264, 90_000)])
            .unwrap();
        for (i, key) in [(0, true), (1, false), (2, true), (3, false)] {
            h[0].push_frame("a", video(key, i)).unwrap();
        }
        let v = h[0].subscribe("a").unwrap();
        assert!(matches!(v.queue.try_pop(), Some(SinkEvent::Tracks(_))));
        assert_eq!(frames(&v.queue), [2, 3]);
        h[0].push_frame("a", video(false, 4)).unwrap();
        assert_eq!(frames(&v.queue), [4]);
    }

    #[test]
    fn remote_viewer_is_relayed_without_copying_the_payload() {
        let (mesh, mut h) = hubs(2, 100);
        h[0].publish("a", src()).unwrap();
        h[0].set_tracks("a", vec![Track::new(TrackId(0), Codec::H264, 90_000)])
            .unwrap();
        h[0].push_frame("a", video(true, 0)).unwrap();
        settle(&mesh, &mut h);
        let v = h[1].subscribe("a").unwrap();
        settle(&mesh, &mut h);
        let f = video(false, 1);
        let ptr = f.data.as_ptr();
        h[0].push_frame("a", f).unwrap();
        settle(&mesh, &mut h);
        assert!(matches!(v.queue.try_pop(), Some(SinkEvent::Tracks(_))));
        let got: Vec<Frame> = std::iter::from_fn(|| v.queue.try_pop())
            .filter_map(|e| match e {
                SinkEvent::Frame(f) => Some(f.frame.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(got.iter().map(|f| f.dts).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(got[1].data.as_ptr(), ptr);
        // One relay subscription however many viewers shard 1 has.
        let _v2 = h[1].subscribe("a").unwrap();
        settle(&mesh, &mut h);
        let owner = h[0].paths();
        assert_eq!(owner[0].relay_shards, [1]);
    }

    #[test]
    fn full_mesh_drops_relay_to_next_keyframe() {
        let (mesh, mut h) = hubs(2, 2);
        h[0].publish("a", src()).unwrap();
        h[0].set_tracks("a", vec![Track::new(TrackId(0), Codec::H264, 90_000)])
            .unwrap();
        settle(&mesh, &mut h);
        let v = h[1].subscribe("a").unwrap();
        settle(&mesh, &mut h);
        // Shard 1 does not run: the channel fills after two frames.
        for (i, key) in [
            (0, true),
            (1, false),
            (2, false),
            (3, false),
            (4, true),
            (5, false),
        ] {
            h[0].push_frame("a", video(key, i)).unwrap();
            if i == 3 {
                settle(&mesh, &mut h);
            }
        }
        settle(&mesh, &mut h);
        // 2 and 3 were refused; 4 is a keyframe, 5 follows it.
        assert_eq!(frames(&v.queue), [0, 1, 4, 5]);
        assert_eq!(h[0].paths()[0].frames_dropped, 2);
    }

    #[test]
    fn stalled_viewer_does_not_hold_back_the_source_or_others() {
        let (_mesh, mut h) = hubs(1, 100);
        h[0].publish("a", src()).unwrap();
        h[0].set_tracks("a", vec![Track::new(TrackId(0), Codec::H264, 90_000)])
            .unwrap();
        let stalled = h[0].subscribe("a").unwrap();
        let live = h[0].subscribe("a").unwrap();
        for i in 0..1000 {
            h[0].push_frame("a", video(i % 30 == 0, i)).unwrap();
            let _ = frames(&live.queue);
        }
        assert!(stalled.queue.queued_frames() <= limits().sink.max_frames);
        assert!(stalled.queue.dropped() > 900);
        assert_eq!(live.queue.dropped(), 0);
        assert_eq!(live.queue.delivered(), 1000);
    }

    #[test]
    fn relay_closes_when_its_last_viewer_leaves() {
        let (mesh, mut h) = hubs(2, 100);
        h[0].publish("a", src()).unwrap();
        settle(&mesh, &mut h);
        let v = h[1].subscribe("a").unwrap();
        settle(&mesh, &mut h);
        assert_eq!(h[0].paths()[0].relay_shards, [1]);
        drop(v);
        h[1].prune();
        settle(&mesh, &mut h);
        assert!(h[0].paths()[0].relay_shards.is_empty());
        assert!(h[1].paths().is_empty());
    }

    #[test]
    fn viewers_survive_unpublish_and_resume_on_republish() {
        let (mesh, mut h) = hubs(2, 100);
        h[0].publish("a", src()).unwrap();
        settle(&mesh, &mut h);
        let v = h[1].subscribe("a").unwrap();
        settle(&mesh, &mut h);
        h[0].unpublish("a").unwrap();
        settle(&mesh, &mut h);
        let events: Vec<SinkEvent> = std::iter::from_fn(|| v.queue.try_pop()).collect();
        assert!(matches!(events.last(), Some(SinkEvent::End)));
        // Published again, this time on shard 0 again: the waiting relay resubscribes.
        h[0].publish("a", src()).unwrap();
        h[0].set_tracks("a", vec![Track::new(TrackId(0), Codec::H264, 90_000)])
            .unwrap();
        settle(&mesh, &mut h);
        h[0].push_frame("a", video(true, 7)).unwrap();
        settle(&mesh, &mut h);
        assert!(matches!(v.queue.try_pop(), Some(SinkEvent::Tracks(_))));
        assert_eq!(frames(&v.queue), [7]);
    }

    #[test]
    fn simultaneous_publish_on_two_shards_leaves_the_lower_shard_owner_everywhere() {
        let (mesh, mut h) = hubs(3, 100);
        // Both publish before either hears of the other.
        h[2].publish("a", src()).unwrap();
        h[1].publish("a", src()).unwrap();
        let v = h[2].subscribe("a").unwrap();
        settle(&mesh, &mut h);
        for hub in &h {
            assert_eq!(hub.owner("a"), Some(1));
        }
        // Shard 2's publisher is cut off; its viewer is now relayed from shard 1.
        assert!(matches!(
            h[2].push_frame("a", video(true, 0)),
            Err(HubError::NotOwner(_))
        ));
        h[1].set_tracks("a", vec![Track::new(TrackId(0), Codec::H264, 90_000)])
            .unwrap();
        h[1].push_frame("a", video(true, 5)).unwrap();
        settle(&mesh, &mut h);
        let events: Vec<SinkEvent> = std::iter::from_fn(|| v.queue.try_pop()).collect();
        assert!(matches!(events.first(), Some(SinkEvent::End)));
        assert!(
            events
                .iter()
                .any(|e| matches!(e, SinkEvent::Frame(f) if f.frame.dts == 5))
        );
    }

    #[test]
    fn unknown_path_is_not_found() {
        let (_mesh, mut h) = hubs(2, 100);
        assert!(matches!(h[0].subscribe("nope"), Err(HubError::NotFound(_))));
        assert!(matches!(
            h[0].push_frame("nope", video(true, 0)),
            Err(HubError::NotOwner(_))
        ));
    }
}
