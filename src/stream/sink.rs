//! A viewer's bounded queue of stream events, with drop-to-keyframe backpressure.

use crate::media::gop::GopFrame;
use crate::media::{Frame, MediaKind, TrackSet};
use crate::rtp::PacketizedFrame;
use bytes::Bytes;
use std::cell::{OnceCell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Instant;

/// What a viewer is told about its stream.
#[derive(Debug, Clone)]
pub enum SinkEvent {
    /// The stream's tracks (first event, and again whenever parameters change).
    Tracks(TrackSet),
    /// Stream metadata (an AMF0 `onMetaData` body, as RTMP publishers send it).
    Metadata(Bytes),
    /// A media frame, shared by every viewer on the shard.
    Frame(Rc<OutFrame>),
    /// The source stopped. The viewer stays attached: if the path is published again it
    /// gets `Tracks` and frames again.
    End,
    /// The path was removed from the server (its configured stream deleted): the viewer
    /// is ended.
    Removed,
}

/// A frame as fanned out on one shard: the frame, plus the forms derived from it that
/// every viewer of the shard shares, computed by the first viewer that needs them.
#[derive(Debug)]
pub struct OutFrame {
    /// The frame.
    pub frame: Frame,
    /// When the ingest driver read the frame's last byte or packet (the same process
    /// clock on every shard); `None` for frames that are not live (a new relay's GOP) or
    /// from a source that does not stamp them. Viewers' drivers measure the server-added
    /// latency from it ([`crate::stats::FrameLatency`]).
    pub arrived: Option<Instant>,
    /// The frame as RTMP chunk bytes (FLV tag body, chunked at the server's chunk size).
    pub rtmp: OnceCell<Bytes>,
    /// The frame as RTP payloads for WebRTC viewers; `None` if it cannot be packetized.
    pub rtp: OnceCell<Option<PacketizedFrame>>,
}

impl OutFrame {
    /// Wraps a frame for fan-out.
    pub fn new(frame: Frame) -> Rc<OutFrame> {
        Self::arrived(frame, None)
    }

    /// Wraps a frame that arrived at `arrived` for fan-out.
    pub fn arrived(frame: Frame, arrived: Option<Instant>) -> Rc<OutFrame> {
        Rc::new(OutFrame {
            frame,
            arrived,
            rtmp: OnceCell::new(),
            rtp: OnceCell::new(),
        })
    }
}

impl GopFrame for Rc<OutFrame> {
    fn frame(&self) -> &Frame {
        &self.frame
    }
}

/// Queue capacity past which an empty queue gives its memory back.
const SHRINK_ABOVE: usize = 64;
/// Capacity an empty queue shrinks to.
const SHRINK_TO: usize = 16;
/// Most control events (tracks, metadata, end) queued for one viewer. A viewer that lets
/// more pile up has its queue collapsed to the latest of each kind (see
/// [`SinkQueue::push`]).
const MAX_CONTROL_EVENTS: usize = 8;

/// Bounds of one sink queue.
#[derive(Debug, Clone, Copy)]
pub struct SinkLimits {
    /// Most frames queued.
    pub max_frames: usize,
    /// Most payload bytes queued.
    pub max_bytes: usize,
}

/// The queue between a stream (or relay) and one local viewer. Shared by `Rc` between the
/// producer (the shard's hub) and the viewer's task on the same shard.
#[derive(Debug)]
pub struct SinkQueue {
    inner: RefCell<Inner>,
    /// The viewer is a browser ([`crate::stream::Viewer::Browser`]).
    browser: std::cell::Cell<bool>,
    /// The arrival of the latest frame replayed from the GOP cache when the viewer
    /// joined: frames that arrived no later are not live for this viewer.
    replayed_until: std::cell::Cell<Option<Instant>>,
}

#[derive(Debug)]
struct Inner {
    queue: VecDeque<SinkEvent>,
    /// Frames queued.
    frames: usize,
    /// Control events queued.
    controls: usize,
    /// Payload bytes queued: frames and metadata.
    bytes: usize,
    limits: SinkLimits,
    has_video: bool,
    waiting_keyframe: bool,
    dropped: u64,
    delivered: u64,
    detached: bool,
    waker: Option<Waker>,
    /// Where to announce new events instead of `waker`, with this sink's key.
    ready: Option<(Rc<ReadyList>, u64)>,
    /// The key is on the ready list and the consumer has not drained the queue since.
    announced: bool,
}

/// How one consumer task serves many sinks: a sink that gets an event puts its key on
/// the list (once until it is drained) and wakes the one task waiting on the list.
#[derive(Debug, Default)]
pub struct ReadyList {
    keys: RefCell<Vec<u64>>,
    waker: RefCell<Option<Waker>>,
    kicked: std::cell::Cell<bool>,
}

impl ReadyList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    fn announce(&self, key: u64) {
        self.keys.borrow_mut().push(key);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Wakes the waiting task without a key (it has other work).
    pub fn kick(&self) {
        self.kicked.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Moves the announced keys into `into`.
    pub fn take(&self, into: &mut Vec<u64>) {
        into.append(&mut self.keys.borrow_mut());
    }

    /// Whether no key is announced.
    pub fn is_empty(&self) -> bool {
        self.keys.borrow().is_empty()
    }

    /// Waits until a key is announced or the list is kicked.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if !self.keys.borrow().is_empty() || self.kicked.replace(false) {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

impl SinkQueue {
    /// An empty queue.
    pub fn new(limits: SinkLimits) -> Self {
        SinkQueue {
            inner: RefCell::new(Inner {
                queue: VecDeque::new(),
                frames: 0,
                controls: 0,
                bytes: 0,
                limits,
                has_video: false,
                waiting_keyframe: false,
                dropped: 0,
                delivered: 0,
                detached: false,
                waker: None,
                ready: None,
                announced: false,
            }),
            browser: std::cell::Cell::new(false),
            replayed_until: std::cell::Cell::new(None),
        }
    }

    /// Notes that frames which arrived up to `arrived` were replayed to the viewer from
    /// the GOP cache (the hub does when it primes a joining viewer).
    pub fn set_replayed_until(&self, arrived: Option<Instant>) {
        if arrived > self.replayed_until.get() {
            self.replayed_until.set(arrived);
        }
    }

    /// When `f` arrived, if it is live for this viewer: stamped, and not replayed from
    /// the GOP cache when the viewer joined. A frame that arrived at the same instant as
    /// the last replayed one counts as replayed (stamps are per read, not per frame).
    pub fn live_arrival(&self, f: &OutFrame) -> Option<Instant> {
        let at = f.arrived?;
        match self.replayed_until.get() {
            Some(until) if at <= until => None,
            _ => Some(at),
        }
    }

    /// Marks the viewer as a browser (or not).
    pub fn set_browser(&self, browser: bool) {
        self.browser.set(browser);
    }

    /// Whether the viewer is a browser.
    pub fn is_browser(&self) -> bool {
        self.browser.get()
    }

    /// Queues an event. A frame that does not fit is dropped, and so is every frame after
    /// it until the next keyframe (a decoder cannot use a partial GOP). A control event
    /// that does not fit (more than a few queued, or metadata past the byte bound) is
    /// always queued, but first the queue collapses: its frames are dropped (the viewer
    /// resumes at the next keyframe) and of its control events only the latest of each
    /// kind stay, so what a stuck viewer holds stays bounded however often a publisher
    /// re-announces. Never blocks. Returns false if the event was dropped.
    pub fn push(&self, ev: SinkEvent) -> bool {
        let mut s = self.inner.borrow_mut();
        if s.detached {
            return false;
        }
        match &ev {
            SinkEvent::Frame(f) => {
                let f = &f.frame;
                let resume = f.is_resume_point(s.has_video);
                if s.waiting_keyframe && !resume {
                    s.dropped += 1;
                    return false;
                }
                if s.frames + 1 > s.limits.max_frames || s.bytes + f.data.len() > s.limits.max_bytes
                {
                    s.waiting_keyframe = true;
                    s.dropped += 1;
                    return false;
                }
                s.waiting_keyframe = false;
                s.frames += 1;
                s.bytes += f.data.len();
            }
            control => {
                let len = event_bytes(control);
                if s.controls >= MAX_CONTROL_EVENTS || s.bytes + len > s.limits.max_bytes {
                    s.collapse();
                }
                if let SinkEvent::Tracks(t) = control {
                    s.has_video = t.iter().any(|t| t.kind() == MediaKind::Video);
                }
                s.controls += 1;
                s.bytes += len;
            }
        }
        s.queue.push_back(ev);
        if let Some((list, key)) = &s.ready {
            if !s.announced {
                list.announce(*key);
                s.announced = true;
            }
        } else if let Some(w) = s.waker.take() {
            w.wake();
        }
        true
    }

    /// Takes the next event, if any.
    pub fn try_pop(&self) -> Option<SinkEvent> {
        let mut s = self.inner.borrow_mut();
        let Some(ev) = s.queue.pop_front() else {
            s.announced = false;
            // A joining viewer's GOP burst grows the queue; give that memory back once
            // it has drained, as a shard holds thousands of these.
            if s.queue.capacity() > SHRINK_ABOVE {
                s.queue.shrink_to(SHRINK_TO);
            }
            return None;
        };
        if let SinkEvent::Frame(f) = &ev {
            s.frames -= 1;
            s.bytes -= f.frame.data.len();
            s.delivered += 1;
        } else {
            s.controls -= 1;
            s.bytes -= event_bytes(&ev);
        }
        Some(ev)
    }

    /// Announces this sink's events on `list` under `key` instead of waking a task
    /// waiting in [`SinkQueue::recv`]. A sink with queued events announces at once.
    pub fn set_ready(&self, list: Rc<ReadyList>, key: u64) {
        let mut s = self.inner.borrow_mut();
        if !s.queue.is_empty() {
            list.announce(key);
            s.announced = true;
        }
        s.ready = Some((list, key));
    }

    /// Waits for the next event.
    pub async fn recv(&self) -> SinkEvent {
        poll_fn(|cx| {
            if let Some(ev) = self.try_pop() {
                return Poll::Ready(ev);
            }
            self.inner.borrow_mut().waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Marks the viewer gone: the hub forgets the sink at its next pass.
    pub fn detach(&self) {
        let mut s = self.inner.borrow_mut();
        s.detached = true;
        s.queue.clear();
        s.frames = 0;
        s.controls = 0;
        s.bytes = 0;
    }

    /// Whether the viewer is gone.
    pub fn is_detached(&self) -> bool {
        self.inner.borrow().detached
    }

    /// Frames dropped for this viewer.
    pub fn dropped(&self) -> u64 {
        self.inner.borrow().dropped
    }

    /// Frames handed to the viewer.
    pub fn delivered(&self) -> u64 {
        self.inner.borrow().delivered
    }

    /// Frames waiting in the queue.
    pub fn queued_frames(&self) -> usize {
        self.inner.borrow().frames
    }

    /// Events of any kind waiting in the queue, and their payload bytes.
    pub fn queued(&self) -> (usize, usize) {
        let s = self.inner.borrow();
        (s.queue.len(), s.bytes)
    }
}

/// Payload bytes an event holds in a queue: a frame's data or a metadata body. Tracks are
/// one `Arc` shared by every viewer; an end holds nothing.
fn event_bytes(ev: &SinkEvent) -> usize {
    match ev {
        SinkEvent::Frame(f) => f.frame.data.len(),
        SinkEvent::Metadata(m) => m.len(),
        SinkEvent::Tracks(_) | SinkEvent::End | SinkEvent::Removed => 0,
    }
}

impl Inner {
    /// Drops every queued frame and keeps, in order, only the latest tracks, the latest
    /// metadata, and an end not followed by tracks: what a viewer that lost the frames
    /// needs to resume at the next keyframe.
    fn collapse(&mut self) {
        let (mut tracks, mut meta, mut end) = (false, false, false);
        let mut keep = Vec::new();
        for ev in self.queue.drain(..).rev() {
            let wanted = match &ev {
                SinkEvent::Frame(_) => {
                    self.dropped += 1;
                    false
                }
                SinkEvent::Tracks(_) => !std::mem::replace(&mut tracks, true),
                SinkEvent::Metadata(_) => !std::mem::replace(&mut meta, true),
                SinkEvent::End => !tracks && !std::mem::replace(&mut end, true),
                SinkEvent::Removed => true,
            };
            if wanted {
                keep.push(ev);
            }
        }
        self.frames = 0;
        self.controls = keep.len();
        self.bytes = keep.iter().map(event_bytes).sum();
        self.queue.extend(keep.into_iter().rev());
        self.waiting_keyframe = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{Codec, Track, TrackId};
    use std::sync::Arc;

    fn video(keyframe: bool, t: i64) -> SinkEvent {
        SinkEvent::Frame(OutFrame::new(Frame {
            track: TrackId(0),
            kind: MediaKind::Video,
            keyframe,
            dts: t,
            pts: t,
            data: Bytes::from_static(&[0; 100]),
        }))
    }

    fn tracks() -> SinkEvent {
        SinkEvent::Tracks(Arc::from(vec![Track::new(TrackId(0), Codec::H264, 90_000)]))
    }

    #[test]
    fn full_queue_drops_until_next_keyframe() {
        let q = SinkQueue::new(SinkLimits {
            max_frames: 2,
            max_bytes: 1 << 20,
        });
        assert!(q.push(tracks()));
        assert!(q.push(video(true, 0)));
        assert!(q.push(video(false, 1)));
        assert!(!q.push(video(false, 2))); // full
        assert!(matches!(q.try_pop(), Some(SinkEvent::Tracks(_))));
        assert!(matches!(q.try_pop(), Some(SinkEvent::Frame(_))));
        // There is room again, but frame 3 depends on the dropped frame 2.
        assert!(!q.push(video(false, 3)));
        assert!(q.push(video(true, 4)));
        assert_eq!(q.dropped(), 2);
        assert_eq!(q.queued_frames(), 2);
    }

    #[test]
    fn drained_queue_gives_back_the_memory_of_a_burst() {
        let q = SinkQueue::new(SinkLimits {
            max_frames: 1000,
            max_bytes: 1 << 30,
        });
        for t in 0..300 {
            q.push(video(t == 0, t));
        }
        assert!(q.inner.borrow().queue.capacity() >= 300);
        while q.try_pop().is_some() {}
        assert!(q.inner.borrow().queue.capacity() <= SHRINK_ABOVE);
    }

    #[test]
    fn control_events_are_counted_and_a_stuck_viewer_keeps_only_the_latest() {
        let q = SinkQueue::new(SinkLimits {
            max_frames: 100,
            max_bytes: 1 << 20,
        });
        assert!(q.push(tracks()));
        assert!(q.push(video(true, 0)));
        // A publisher re-sends 256 KiB of metadata 1000 times to a viewer that reads nothing.
        for i in 0..1000u32 {
            let mut m = vec![0u8; 256 * 1024];
            m[..4].copy_from_slice(&i.to_be_bytes());
            assert!(q.push(SinkEvent::Metadata(Bytes::from(m))));
            let (events, bytes) = q.queued();
            assert!(events <= MAX_CONTROL_EVENTS + 1, "{events} events");
            assert!(bytes <= (1 << 20) + 256 * 1024, "{bytes} bytes");
        }
        // Frames were dropped: the viewer resumes at a keyframe, with the tracks first.
        assert_eq!(q.dropped(), 1);
        assert!(!q.push(video(false, 1)));
        assert!(q.push(video(true, 2)));
        assert!(matches!(q.try_pop(), Some(SinkEvent::Tracks(_))));
        let mut last = None;
        while let Some(ev) = q.try_pop() {
            match ev {
                SinkEvent::Metadata(m) => last = Some(m),
                SinkEvent::Frame(f) => assert!(f.frame.keyframe),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            last.as_deref().map(|m| &m[..4]),
            Some(&999u32.to_be_bytes()[..])
        );
        assert_eq!(q.queued(), (0, 0));
    }

    #[test]
    fn repeated_restarts_collapse_to_the_latest_tracks() {
        let q = SinkQueue::new(SinkLimits {
            max_frames: 100,
            max_bytes: 1 << 20,
        });
        for t in 0..50 {
            q.push(tracks());
            q.push(video(true, t));
            q.push(SinkEvent::End);
        }
        q.push(tracks());
        let (events, _) = q.queued();
        assert!(events <= MAX_CONTROL_EVENTS + 1, "{events}");
        let kinds: Vec<_> = std::iter::from_fn(|| q.try_pop())
            .map(|e| match e {
                SinkEvent::Tracks(_) => 'T',
                SinkEvent::End => 'E',
                SinkEvent::Removed => 'R',
                SinkEvent::Metadata(_) => 'M',
                SinkEvent::Frame(_) => 'F',
            })
            .collect();
        // The last collapse kept the latest tracks and end; the last restart followed.
        assert_eq!(kinds, ['T', 'E', 'T', 'F', 'E', 'T']);
    }

    #[test]
    fn detached_sink_takes_nothing() {
        let q = SinkQueue::new(SinkLimits {
            max_frames: 10,
            max_bytes: 1 << 20,
        });
        q.push(video(true, 0));
        q.detach();
        assert!(q.is_detached());
        assert!(!q.push(video(true, 1)));
        assert!(q.try_pop().is_none());
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // Any instant serves as the origin.
    fn frames_replayed_to_a_joining_viewer_are_not_live() {
        let q = SinkQueue::new(SinkLimits {
            max_frames: 10,
            max_bytes: 1 << 20,
        });
        let t0 = Instant::now();
        let at = |ms| Some(t0 + std::time::Duration::from_millis(ms));
        let frame = |arrived| match video(true, 0) {
            SinkEvent::Frame(f) => OutFrame::arrived(f.frame.clone(), arrived),
            other => panic!("{other:?}"),
        };
        // Before any replay, a stamped frame is live; an unstamped one never is.
        assert_eq!(q.live_arrival(&frame(at(5))), at(5));
        assert_eq!(q.live_arrival(&frame(None)), None);
        q.set_replayed_until(at(10));
        q.set_replayed_until(at(3)); // never moves back
        assert_eq!(q.live_arrival(&frame(at(5))), None);
        assert_eq!(q.live_arrival(&frame(at(10))), None);
        assert_eq!(q.live_arrival(&frame(at(11))), at(11));
    }
}
