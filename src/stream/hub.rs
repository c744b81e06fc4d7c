//! The per-shard hub: owned streams, relays, waiting viewers and the directory replica.

use super::{
    ClaimError, Holder, MeshTx, OutFrame, SinkEvent, SinkLimits, SinkQueue, StreamMsg, StreamPath,
};
use crate::media::gop::GopCache;
use crate::media::timeline::{Continuity, JumpReports};
use crate::media::{Frame, Track, TrackId, TrackSet};
use crate::stats::{self, ShardStats};
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
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
    /// The path collides with a published stream by the alias rule
    /// ([`StreamPath::check_claim`]).
    #[error("{0}")]
    Clash(#[from] ClaimError),
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
    /// camera starting when the viewer arrives, a camera connecting, a publisher between
    /// `publish` and its first frame); `None`: the source has media from the start, an
    /// offer without media is refused at once.
    pub start_timeout: Option<Duration>,
    /// Whether the source keeps its timeline continuous by itself: a pulled RTSP camera
    /// (its depacketizer continues across clock jumps and reconnects) and the file
    /// source (it loops with continuous time) set it. The hub continues every other
    /// source's timeline: a publisher's clock is its own ([`Continuity`]).
    pub continues_timeline: bool,
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
    /// The owned path's demand bell, rung when the viewer goes (None on a relay: the
    /// relay's `Unsubscribe` rings the owner's).
    bell: Option<Rc<DemandBell>>,
}

impl SinkHandle {
    /// A handle to a queue no hub feeds (benchmarks and tests fill the queue themselves).
    pub fn standalone(path: Arc<str>, queue: Rc<SinkQueue>) -> SinkHandle {
        SinkHandle {
            path,
            queue,
            bell: None,
        }
    }
}

impl Drop for SinkHandle {
    fn drop(&mut self) {
        self.queue.detach();
        if let Some(b) = &self.bell {
            b.ring();
        }
    }
}

/// Rings when the demand for an owned path may have changed (a viewer came or went
/// here, a shard started or stopped relaying it), so the one task that cares (an
/// on-demand source's driver) wakes instead of polling [`Hub::demand`]. A ring while
/// nobody waits is kept for the next wait.
#[derive(Debug, Default)]
pub struct DemandBell {
    rung: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl DemandBell {
    /// Marks a change and wakes the waiter.
    pub fn ring(&self) {
        self.rung.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Resolves at the next ring (at once if one came since the last wait).
    pub fn changed(&self) -> DemandChanged<'_> {
        DemandChanged(self)
    }
}

/// The future of [`DemandBell::changed`].
#[derive(Debug)]
pub struct DemandChanged<'a>(&'a DemandBell);

impl Future for DemandChanged<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.rung.replace(false) {
            return Poll::Ready(());
        }
        *self.0.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
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
    /// The stream's AAC is being transcoded to Opus for browsers (owner only).
    pub transcoding: bool,
    /// Video tracks whose frames come out of decode order (B-frames), one bit per track
    /// id ([`track_bit`]): their SPS says so (`max_num_reorder_frames` > 0), or a frame's
    /// presentation time differed from its decode time since the tracks were last set
    /// (owner only); read it with [`PathInfo::bframes`].
    pub reordered: u64,
    /// CPU time its transcoding used, in µs (owner only).
    pub transcode_cpu_micros: u64,
    /// Audio frames its transcoding failed to decode or encode (owner only).
    pub transcode_errors: u64,
}

impl PathInfo {
    /// Whether track `id`'s frames came out of decode order (B-frames).
    pub fn bframes(&self, id: TrackId) -> bool {
        self.reordered & track_bit(id) != 0
    }
}

/// Track `id`'s bit in a per-track set (0 past the 64th track).
fn track_bit(id: TrackId) -> u64 {
    1u64.checked_shl(u32::from(id.0)).unwrap_or(0)
}

#[derive(Debug)]
struct RemoteSub {
    shard: usize,
    waiting_keyframe: bool,
    /// The shard relays to browsers.
    browsers: bool,
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
    /// Rung when `sinks` or `remote` change (owner).
    bell: Rc<DemandBell>,
    bytes_in: u64,
    frames_in: u64,
    dropped: u64,
    /// See [`PathInfo::reordered`].
    reordered: u64,
    /// Continues a pushed source's timeline; kept across publishes of the path, so
    /// viewers that wait through a publisher's restart see time go on.
    timeline: Continuity,
    /// The source took over a path that had frames before (a restarted or replaced
    /// source): the hub continues its timeline even if it keeps its own continuous, as
    /// its clock is unrelated to the previous source's.
    took_over: bool,
    /// Browser viewers attached here (counted at subscribe, recounted at prune).
    browsers: usize,
    /// The Opus track made from the stream's AAC for browsers (owner).
    audio: Option<audio::AudioTranscode>,
    jump_reports: JumpReports,
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
            bell: Rc::default(),
            bytes_in: 0,
            frames_in: 0,
            dropped: 0,
            reordered: 0,
            timeline: Continuity::new(),
            took_over: false,
            browsers: 0,
            audio: None,
            jump_reports: JumpReports::new(),
        }
    }

    /// Rebases a frame of a source whose timeline the hub continues (see
    /// [`SourceInfo::continues_timeline`]); counts absorbed jumps and logs them,
    /// rate-limited.
    fn continue_timeline(&mut self, frame: &mut Frame, stats: &ShardStats) {
        let Some(source) = &self.source else {
            return;
        };
        let clock = self
            .tracks
            .as_ref()
            .and_then(|t| t.iter().find(|t| t.id == frame.track))
            .map(|t| t.clock_rate);
        let Some(clock) = clock else {
            return;
        };
        if source.continues_timeline && !self.took_over {
            // Its times pass as they are; noted, so a source that takes over later
            // continues from them.
            self.timeline.observe(frame, clock);
            return;
        }
        let Some(jump) = self.timeline.rebase(frame, clock) else {
            return;
        };
        stats::add(&stats.timeline_jumps, 1);
        let at = self.timeline.latest_micros().unwrap_or(0);
        if let Some(held) = self.jump_reports.report(at) {
            info!(
                path = %self.path,
                track = jump.track.0,
                earlier_jumps_not_logged = held,
                "{}: publisher's clock jumped {:+.1} s; timeline continued",
                self.path,
                jump.secs()
            );
        }
    }

    /// Adds the browsers' Opus track to `tracks` when they have AAC (keeping the
    /// running transcode when the AAC track is the same).
    fn plan_audio(
        &mut self,
        tracks: &mut Vec<Track>,
        config: crate::media::transcode::TranscodeConfig,
    ) {
        if let Some(a) = &self.audio
            && let Some(aac) = tracks.iter().find(|t| t.id == a.aac.id)
            && aac.params == a.aac.params
            && aac.clock_rate == a.aac.clock_rate
            && !tracks.iter().any(|t| t.id == a.opus.id)
        {
            tracks.push(a.opus.clone());
            return;
        }
        self.audio = audio::AudioTranscode::plan(&self.path, tracks, config);
        if let Some(a) = &self.audio {
            tracks.push(a.opus.clone());
        }
    }

    fn set_tracks(&mut self, tracks: TrackSet) {
        self.has_video = tracks
            .iter()
            .any(|t| t.kind() == crate::media::MediaKind::Video);
        for s in &self.sinks {
            s.push(SinkEvent::Tracks(tracks.clone()));
        }
        // An SPS that declares reordering (B-frames) says so before any such frame.
        self.reordered = tracks
            .iter()
            .filter(|t| crate::media::h264::declares_reordering(t))
            .fold(0, |bits, t| bits | track_bit(t.id));
        self.tracks = Some(tracks);
    }

    fn set_metadata(&mut self, metadata: Bytes) {
        for s in &self.sinks {
            s.push(SinkEvent::Metadata(metadata.clone()));
        }
        self.metadata = Some(metadata);
    }

    /// Local fan-out of one frame that arrived at `arrived`: cache it and queue it for
    /// every local viewer. The frame is wrapped once, so its derived forms are computed
    /// once per shard.
    fn fan_out(&mut self, frame: Frame, arrived: Option<Instant>, stats: &ShardStats) {
        let out = OutFrame::arrived(frame, arrived);
        self.gop.push(&out);
        for s in &self.sinks {
            if !s.push(SinkEvent::Frame(out.clone())) {
                self.dropped += 1;
                stats::add(&stats.frames_dropped, 1);
            }
        }
    }

    /// Hands a new viewer what it needs to start at once: metadata, tracks, then the GOP
    /// cache (replayed: not live for the viewer's latency).
    fn prime(&self, q: &SinkQueue) {
        if let Some(m) = &self.metadata {
            q.push(SinkEvent::Metadata(m.clone()));
        }
        if let Some(t) = &self.tracks {
            q.push(SinkEvent::Tracks(t.clone()));
            for f in self.gop.frames() {
                q.push(SinkEvent::Frame(f.clone()));
            }
            q.set_replayed_until(self.gop.frames().filter_map(|f| f.arrived).max());
        }
    }

    /// Tells the viewers the source stopped (`removed`: the path is gone, they end).
    fn end_sinks(&mut self, removed: bool) {
        let ev = if removed {
            SinkEvent::Removed
        } else {
            SinkEvent::End
        };
        for s in &self.sinks {
            s.push(ev.clone());
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
    /// AAC is transcoded to Opus for browsers with these settings; `None`: off.
    pub transcode: Option<crate::media::transcode::TranscodeConfig>,
}

/// Who a viewer is, for what the stream makes for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// A player that takes the stream's own codecs (RTMP).
    Player,
    /// A browser (WebRTC): it needs Opus where the stream has AAC.
    Browser,
}

/// One path in the directory replica.
#[derive(Debug, Clone, Copy)]
struct DirEntry {
    owner: usize,
    /// The owner's source's [`SourceInfo::start_timeout`].
    start_timeout: Option<Duration>,
}

/// The streams, relays and directory replica of one shard.
pub struct Hub {
    shard: usize,
    shards: usize,
    limits: HubLimits,
    directory: HashMap<Arc<str>, DirEntry>,
    paths: HashMap<Arc<str>, PathState>,
    tx: Rc<dyn MeshTx>,
    stats: Arc<ShardStats>,
    /// Tasks waiting for a path's tracks (or its withdrawal), by path, with their keys.
    media_waiters: HashMap<Arc<str>, Vec<(u64, Waker)>>,
    next_waiter: u64,
    /// The thread's CPU clock, as the driver reads it (zero until set).
    cpu_clock: fn() -> Duration,
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
            media_waiters: HashMap::new(),
            next_waiter: 0,
            cpu_clock: || Duration::ZERO,
        }
    }

    /// Sets how the hub reads the thread's CPU clock (to count what transcoding costs).
    pub fn set_cpu_clock(&mut self, clock: fn() -> Duration) {
        self.cpu_clock = clock;
    }

    /// This shard's index.
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// The owner of `path` according to this shard's directory replica.
    pub fn owner(&self, path: &str) -> Option<usize> {
        self.directory.get(path).map(|e| e.owner)
    }

    /// Paths in the directory, with their owners.
    pub fn directory(&self) -> impl Iterator<Item = (&Arc<str>, usize)> + '_ {
        self.directory.iter().map(|(p, e)| (p, e.owner))
    }

    /// How long a viewer may wait for `path`'s first media: its source's
    /// [`SourceInfo::start_timeout`], known on every shard (announced with the path).
    pub fn start_timeout(&self, path: &str) -> Option<Duration> {
        self.directory.get(path).and_then(|e| e.start_timeout)
    }

    /// Registers `waker` to be woken when `path` gets tracks, or is withdrawn or ended
    /// (then the waiter looks again). Returns a key for [`Hub::remove_media_waiter`];
    /// a woken waiter is forgotten and registers again if it still waits.
    pub fn add_media_waiter(&mut self, path: &str, waker: &Waker) -> u64 {
        let key = self.next_waiter;
        self.next_waiter += 1;
        let list = match self.media_waiters.get_mut(path) {
            Some(l) => l,
            None => self.media_waiters.entry(Arc::from(path)).or_default(),
        };
        list.push((key, waker.clone()));
        key
    }

    /// Forgets a waiter that stopped waiting (timed out, or its connection went).
    pub fn remove_media_waiter(&mut self, path: &str, key: u64) {
        if let Some(list) = self.media_waiters.get_mut(path) {
            list.retain(|(k, _)| *k != key);
            if list.is_empty() {
                self.media_waiters.remove(path);
            }
        }
    }

    /// Number of tasks waiting for some path's media.
    pub fn media_waiters(&self) -> usize {
        self.media_waiters.values().map(Vec::len).sum()
    }

    /// Wakes every task waiting for `path`'s media.
    fn wake_media(&mut self, path: &str) {
        for (_, w) in self.media_waiters.remove(path).into_iter().flatten() {
            w.wake();
        }
    }

    fn others(&self) -> impl Iterator<Item = usize> + use<> {
        let me = self.shard;
        (0..self.shards).filter(move |s| *s != me)
    }

    /// Whether a publisher may claim `path` by the alias rule among the published
    /// streams this shard knows of ([`StreamPath::check_claim`]).
    pub fn check_claim(&self, path: &StreamPath) -> Result<(), ClaimError> {
        path.check_claim(self.directory.keys().map(|p| (&**p, Holder::Published)))
    }

    /// Starts publishing `path` on this shard and announces it to every shard. Refused
    /// when `path` or a path the alias rule ties to it is published. Two shards that do
    /// either at the same moment both succeed here; the lower shard keeps its stream when
    /// the announcements cross ([`Hub::handle_msg`]).
    pub fn publish(&mut self, path: &str, source: SourceInfo) -> Result<Arc<str>, HubError> {
        if let Some(owner) = self.owner(path) {
            return Err(HubError::AlreadyPublished {
                path: path.to_string(),
                owner,
            });
        }
        if let Ok(p) = StreamPath::parse(path) {
            self.check_claim(&p)?;
        }
        let path: Arc<str> = Arc::from(path);
        let start_timeout = source.start_timeout;
        self.directory.insert(
            path.clone(),
            DirEntry {
                owner: self.shard,
                start_timeout,
            },
        );
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
        // A new source's clock is its own: viewers still attached see time go on.
        st.timeline.restart();
        st.took_over = st.timeline.latest_micros().is_some();
        stats::add(&self.stats.streams, 1);
        for to in self.others() {
            self.tx.send_control(
                to,
                StreamMsg::Announce {
                    path: path.clone(),
                    owner: self.shard,
                    start_timeout,
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

    /// The bell that rings when [`Hub::demand`] of an owned `path` may have changed.
    pub fn demand_bell(&self, path: &str) -> Option<Rc<DemandBell>> {
        self.paths
            .get(path)
            .filter(|st| st.role == Role::Owner)
            .map(|st| st.bell.clone())
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
    pub fn set_tracks(&mut self, path: &str, mut tracks: Vec<Track>) -> Result<(), HubError> {
        let transcode = self.limits.transcode;
        let st = self.owned_mut(path)?;
        if let Some(config) = transcode {
            st.plan_audio(&mut tracks, config);
        }
        let tracks: TrackSet = Arc::from(tracks);
        st.set_tracks(tracks.clone());
        let subs: Vec<usize> = st.remote.iter().map(|r| r.shard).collect();
        let p = st.path.clone();
        self.wake_media(&p);
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
    /// The frame's times are continued across jumps of the source's clock first, unless
    /// the source does that itself ([`SourceInfo::continues_timeline`]). The frame has no
    /// arrival time: its latency is not measured (see [`Hub::push_frame_arrived`]).
    pub fn push_frame(&mut self, path: &str, frame: Frame) -> Result<(), HubError> {
        self.push(path, frame, None)
    }

    /// As [`Hub::push_frame`], for a frame whose last byte or packet the ingest driver
    /// read at `arrived`: viewers' drivers measure the server-added latency from it.
    pub fn push_frame_arrived(
        &mut self,
        path: &str,
        frame: Frame,
        arrived: Instant,
    ) -> Result<(), HubError> {
        self.push(path, frame, Some(arrived))
    }

    fn push(
        &mut self,
        path: &str,
        mut frame: Frame,
        arrived: Option<Instant>,
    ) -> Result<(), HubError> {
        let Hub {
            paths,
            stats,
            tx,
            cpu_clock,
            ..
        } = self;
        let st = match paths.get_mut(path) {
            Some(st) if st.role == Role::Owner => st,
            _ => return Err(HubError::NotOwner(path.to_string())),
        };
        st.continue_timeline(&mut frame, stats);
        st.bytes_in += frame.data.len() as u64;
        st.frames_in += 1;
        if frame.kind == crate::media::MediaKind::Video && frame.pts != frame.dts {
            st.reordered |= track_bit(frame.track);
        }
        stats::add(&stats.frames_in, 1);
        stats::add(&stats.bytes_in, frame.data.len() as u64);
        let opus = match &mut st.audio {
            Some(a) if frame.track == a.aac.id => {
                let wanted = st.browsers > 0 || st.remote.iter().any(|r| r.browsers);
                a.handle(&st.path, &frame, wanted, *cpu_clock)
            }
            _ => Vec::new(),
        };
        deliver(st, &**tx, stats, frame, arrived);
        // Transcoded audio is as late as the frame that completed it.
        for f in opus {
            deliver(st, &**tx, stats, f, arrived);
        }
        Ok(())
    }

    /// Stops publishing an owned stream: viewers everywhere are told, the directory
    /// entry is withdrawn. Viewers stay attached and resume if the path is published again.
    pub fn unpublish(&mut self, path: &str) -> Result<(), HubError> {
        self.withdraw(path, false)
    }

    /// Stops publishing an owned stream whose path is removed from the server (its
    /// configured stream deleted): as [`Hub::unpublish`], but viewers everywhere get
    /// [`SinkEvent::Removed`] and are ended.
    pub fn remove(&mut self, path: &str) -> Result<(), HubError> {
        self.withdraw(path, true)
    }

    fn withdraw(&mut self, path: &str, removed: bool) -> Result<(), HubError> {
        let shard = self.shard;
        let st = self.owned_mut(path)?;
        st.end_sinks(removed);
        st.source = None;
        st.role = Role::Waiting;
        let p = st.path.clone();
        let subs: Vec<usize> = st.remote.drain(..).map(|r| r.shard).collect();
        for to in subs {
            let end = StreamMsg::End {
                path: p.clone(),
                removed,
            };
            self.tx.send_control(to, end);
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
        self.wake_media(&p);
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
        self.subscribe_as(path, Viewer::Player)
    }

    /// [`Hub::subscribe`] for a `viewer` of that kind: a browser makes the stream's
    /// Opus track from AAC run while it watches.
    pub fn subscribe_as(&mut self, path: &str, viewer: Viewer) -> Result<SinkHandle, HubError> {
        let queue = Rc::new(SinkQueue::new(self.limits.sink));
        queue.set_browser(viewer == Viewer::Browser);
        let limits = self.limits;
        let shard = self.shard;
        if let Some(st) = self.paths.get_mut(path)
            && st.role != Role::Waiting
        {
            st.prime(&queue);
            st.sinks.push(queue.clone());
            if viewer == Viewer::Browser {
                st.browsers += 1;
                if st.browsers == 1
                    && let Role::Relay { owner } = st.role
                {
                    let msg = StreamMsg::Browsers {
                        path: st.path.clone(),
                        shard,
                        any: true,
                    };
                    self.tx.send_control(owner, msg);
                }
            }
            stats::add(&self.stats.viewers, 1);
            let bell = (st.role == Role::Owner).then(|| st.bell.clone());
            if let Some(b) = &bell {
                b.ring();
            }
            return Ok(SinkHandle {
                path: st.path.clone(),
                queue,
                bell,
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
        st.browsers += usize::from(viewer == Viewer::Browser);
        let browsers = st.browsers > 0;
        stats::add(&self.stats.viewers, 1);
        stats::add(&self.stats.relays, 1);
        self.tx.send_control(
            owner,
            StreamMsg::Subscribe {
                path: p.clone(),
                shard: self.shard,
            },
        );
        if browsers {
            let msg = StreamMsg::Browsers {
                path: p.clone(),
                shard: self.shard,
                any: true,
            };
            self.tx.send_control(owner, msg);
        }
        debug!(shard = self.shard, path = %p, owner, "relay opened");
        Ok(SinkHandle {
            path: p,
            queue,
            bell: None,
        })
    }

    /// Forgets detached viewers and closes relays nobody watches.
    pub fn prune(&mut self) {
        let mut gone = Vec::new();
        for (p, st) in self.paths.iter_mut() {
            let before = st.sinks.len();
            st.sinks.retain(|s| !s.is_detached());
            stats::sub(&self.stats.viewers, (before - st.sinks.len()) as u64);
            let browsers = st.sinks.iter().filter(|s| s.is_browser()).count();
            if let (0, true, Role::Relay { owner }) = (browsers, st.browsers > 0, &st.role) {
                let msg = StreamMsg::Browsers {
                    path: p.clone(),
                    shard: self.shard,
                    any: false,
                };
                self.tx.send_control(*owner, msg);
            }
            st.browsers = browsers;
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
            StreamMsg::Announce {
                path,
                owner,
                start_timeout,
            } => self.on_announce(path, owner, start_timeout),
            StreamMsg::Withdraw { path, owner } => {
                if self.owner(&path) == Some(owner) {
                    self.directory.remove(&path);
                }
                self.wake_media(&path);
            }
            StreamMsg::Subscribe { path, shard } => self.on_subscribe(path, shard),
            StreamMsg::Browsers { path, shard, any } => {
                if let Some(st) = self.paths.get_mut(&path)
                    && let Some(r) = st.remote.iter_mut().find(|r| r.shard == shard)
                {
                    r.browsers = any;
                }
            }
            StreamMsg::Unsubscribe { path, shard } => {
                if let Some(st) = self.paths.get_mut(&path) {
                    st.remote.retain(|r| r.shard != shard);
                    st.bell.ring();
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
                    // The GOP is replayed, not live: no arrival time.
                    for f in gop {
                        st.fan_out(f, None, stats);
                    }
                    self.wake_media(&path);
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
                    self.wake_media(&path);
                }
            }
            StreamMsg::Frame {
                path,
                frame,
                arrived,
            } => {
                let stats = &self.stats;
                if let Some(st) = relay_in(&mut self.paths, &path, from) {
                    st.fan_out(frame, arrived, stats);
                }
            }
            StreamMsg::End { path, removed } => {
                if let Some(st) = self.relay_mut(&path, from) {
                    st.end_sinks(removed);
                    st.role = Role::Waiting;
                    stats::sub(&self.stats.relays, 1);
                    self.wake_media(&path);
                }
            }
        }
    }

    /// Another shard publishes `path`.
    /// Two shards may publish a path and its RTMP alias (`demo`, `live/demo`) at the same
    /// moment, each before it heard of the other. As for one path, the lower shard keeps
    /// its stream: a higher shard owning a path that clashes with one a lower shard
    /// announces unpublishes it (its publisher's next push gets `NotOwner`); the lower
    /// shard keeps its own and hears the other's `Withdraw`.
    fn settle_alias_race(&mut self, announced: &str, owner: usize) {
        let Ok(announced) = StreamPath::parse(announced) else {
            return;
        };
        if owner >= self.shard {
            return;
        }
        let losing: Vec<Arc<str>> = self
            .paths
            .values()
            .filter(|st| st.role == Role::Owner && *st.path != *announced.as_str())
            .filter(|st| announced.clash(&st.path).is_some())
            .map(|st| st.path.clone())
            .collect();
        for p in losing {
            warn!(path = %p, kept = %announced, winner = owner, shard = self.shard, "a stream and its RTMP name were published on two shards at once; the lower shard keeps its own");
            let _ = self.unpublish(&p);
        }
    }

    fn on_announce(&mut self, path: Arc<str>, owner: usize, start_timeout: Option<Duration>) {
        // Two shards may publish the same path at the same moment (each checked only its
        // own directory). The lower shard keeps it, on every shard, in whatever order the
        // announcements arrive.
        if let Some(prev) = self.owner(&path)
            && prev < owner
        {
            warn!(path = %path, kept = prev, refused = owner, "stream published on two shards at once; the lower shard keeps it");
            return;
        }
        self.settle_alias_race(&path, owner);
        let entry = DirEntry {
            owner,
            start_timeout,
        };
        self.directory.insert(path.clone(), entry);
        let me = self.shard;
        if let Some(st) = self.paths.get_mut(&path)
            && st.role == Role::Owner
        {
            // We lost the race: our publisher is cut off (its next push gets `NotOwner`)
            // and our viewers are relayed from the winner.
            warn!(path = %path, shard = me, winner = owner, "stream published on two shards at once; this shard gives it up");
            st.end_sinks(false);
            st.source = None;
            st.role = Role::Waiting;
            let subs: Vec<usize> = st.remote.drain(..).map(|r| r.shard).collect();
            for to in subs {
                let end = StreamMsg::End {
                    path: path.clone(),
                    removed: false,
                };
                self.tx.send_control(to, end);
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
            let browsers = st.sinks.iter().any(|s| s.is_browser() && !s.is_detached());
            let msg = StreamMsg::Subscribe {
                path: path.clone(),
                shard: self.shard,
            };
            self.tx.send_control(owner, msg);
            if browsers {
                let msg = StreamMsg::Browsers {
                    path,
                    shard: self.shard,
                    any: true,
                };
                self.tx.send_control(owner, msg);
            }
        }
    }

    /// Shard `shard` wants the frames of `path`: start it from our state, or tell it the
    /// stream is not here.
    fn on_subscribe(&mut self, path: Arc<str>, shard: usize) {
        match self.paths.get_mut(&path) {
            Some(st) if st.role == Role::Owner => {
                st.remote.retain(|r| r.shard != shard);
                st.remote.push(RemoteSub {
                    shard,
                    waiting_keyframe: false,
                    browsers: false,
                });
                st.bell.ring();
                let init = StreamMsg::Init {
                    path: path.clone(),
                    metadata: st.metadata.clone(),
                    tracks: st.tracks.clone(),
                    gop: st.gop.frames().map(|f| f.frame.clone()).collect(),
                };
                self.tx.send_control(shard, init);
            }
            _ => {
                let end = StreamMsg::End {
                    path,
                    removed: false,
                };
                self.tx.send_control(shard, end);
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
                transcoding: st.audio.as_ref().is_some_and(|a| a.running()),
                reordered: st.reordered,
                transcode_cpu_micros: st
                    .audio
                    .as_ref()
                    .map_or(0, |a| u64::try_from(a.cpu.as_micros()).unwrap_or(u64::MAX)),
                transcode_errors: st.audio.as_ref().map_or(0, |a| a.errors),
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

/// Hands one frame of an owned stream to its GOP cache, local viewers and subscribed
/// shards (with its arrival time). Never blocks: a full queue or channel drops frames to
/// the next keyframe.
fn deliver(
    st: &mut PathState,
    tx: &dyn MeshTx,
    stats: &ShardStats,
    frame: Frame,
    arrived: Option<Instant>,
) {
    let resume = frame.is_resume_point(st.has_video);
    let remote_frame = (!st.remote.is_empty()).then(|| frame.clone());
    st.fan_out(frame, arrived, stats);
    let Some(frame) = remote_frame else {
        return;
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
            arrived,
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

mod audio;
#[cfg(test)]
mod tests;
