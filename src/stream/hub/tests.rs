//! Hub tests: several hubs over an in-memory mesh.

use super::*;
use crate::media::{Codec, MediaKind, TrackId};
use crate::stream::Clash;
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
        transcode: None,
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
        continues_timeline: false,
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
fn a_stream_and_its_rtmp_name_are_never_both_published_across_shards() {
    let (mesh, mut h) = hubs(2, 100);
    h[0].publish("demo", src()).unwrap();
    settle(&mesh, &mut h);
    let e = h[1].publish("live/demo", src()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "'live/demo' is the RTMP name of the published stream 'demo'"
    );
    h[0].unpublish("demo").unwrap();
    settle(&mesh, &mut h);
    h[1].publish("live/demo", src()).unwrap();
    settle(&mesh, &mut h);
    assert!(matches!(
        h[0].publish("demo", src()),
        Err(HubError::Clash(ClaimError {
            clash: Clash::AliasedBy,
            ..
        }))
    ));
    assert!(h[0].publish("live/a/demo", src()).is_ok());
}

#[test]
fn a_stream_and_its_rtmp_name_published_at_once_the_lower_shard_keeps_its_own() {
    for (low, high) in [("demo", "live/demo"), ("live/demo", "demo")] {
        let (mesh, mut h) = hubs(3, 100);
        h[0].publish(low, src()).unwrap();
        h[1].publish(high, src()).unwrap();
        settle(&mesh, &mut h);
        for hub in &h {
            assert_eq!(hub.owner(low), Some(0), "{low}");
            assert_eq!(hub.owner(high), None, "{high}");
        }
        assert!(matches!(
            h[1].push_frame(high, video(true, 0)),
            Err(HubError::NotOwner(_))
        ));
    }
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

/// A waker that counts its wake-ups.
#[derive(Default)]
struct CountWaker(std::sync::atomic::AtomicUsize);

impl std::task::Wake for CountWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn count_waker() -> (Arc<CountWaker>, Waker) {
    let c = Arc::new(CountWaker::default());
    (c.clone(), Waker::from(c))
}

fn woken(c: &CountWaker) -> usize {
    c.0.load(std::sync::atomic::Ordering::Relaxed)
}

fn h264() -> Vec<Track> {
    vec![Track::new(TrackId(0), Codec::H264, 90_000)]
}

#[test]
fn start_timeout_is_announced_to_every_shard() {
    let (mesh, mut h) = hubs(3, 64);
    let on_demand = SourceInfo {
        start_timeout: Some(Duration::from_secs(7)),
        ..src()
    };
    h[1].publish("cam", on_demand).expect("publish");
    h[2].publish("file", src()).expect("publish");
    settle(&mesh, &mut h);
    for hub in &h {
        assert_eq!(hub.start_timeout("cam"), Some(Duration::from_secs(7)));
        assert_eq!(hub.start_timeout("file"), None);
        assert_eq!(hub.start_timeout("nope"), None);
    }
}

#[test]
fn media_waiters_wake_when_the_owner_gets_tracks() {
    let (mesh, mut h) = hubs(1, 64);
    h[0].publish("cam", src()).expect("publish");
    let (c, w) = count_waker();
    h[0].add_media_waiter("cam", &w);
    let (other, ow) = count_waker();
    h[0].add_media_waiter("elsewhere", &ow);
    assert_eq!(h[0].media_waiters(), 2);
    h[0].set_tracks("cam", h264()).expect("tracks");
    settle(&mesh, &mut h);
    assert_eq!(woken(&c), 1);
    assert_eq!(woken(&other), 0, "a waiter of another path sleeps on");
    assert_eq!(h[0].media_waiters(), 1, "a woken waiter is forgotten");
}

#[test]
fn media_waiters_on_a_relay_shard_wake_when_tracks_arrive() {
    let (mesh, mut h) = hubs(2, 64);
    h[0].publish("cam", src()).expect("publish");
    settle(&mesh, &mut h);
    // The placeholder viewer opens the relay; the owner has no tracks yet.
    let _demand = h[1].subscribe("cam").expect("subscribe");
    settle(&mesh, &mut h);
    assert!(h[1].tracks("cam").is_none());
    let (c, w) = count_waker();
    h[1].add_media_waiter("cam", &w);
    h[0].set_tracks("cam", h264()).expect("tracks");
    assert_eq!(woken(&c), 0, "not before the message crosses");
    settle(&mesh, &mut h);
    assert_eq!(woken(&c), 1);
    assert!(h[1].tracks("cam").is_some());
}

#[test]
fn media_waiters_wake_when_the_path_is_withdrawn() {
    let (mesh, mut h) = hubs(2, 64);
    h[0].publish("cam", src()).expect("publish");
    settle(&mesh, &mut h);
    let (local, lw) = count_waker();
    let (remote, rw) = count_waker();
    h[0].add_media_waiter("cam", &lw);
    h[1].add_media_waiter("cam", &rw);
    h[0].unpublish("cam").expect("unpublish");
    settle(&mesh, &mut h);
    assert_eq!((woken(&local), woken(&remote)), (1, 1));
    assert_eq!(h[1].owner("cam"), None);
    assert_eq!(h[0].media_waiters() + h[1].media_waiters(), 0);
}

#[test]
fn a_removed_media_waiter_is_not_woken() {
    let (_mesh, mut h) = hubs(1, 64);
    h[0].publish("cam", src()).expect("publish");
    let (c, w) = count_waker();
    let key = h[0].add_media_waiter("cam", &w);
    h[0].remove_media_waiter("cam", key);
    assert_eq!(h[0].media_waiters(), 0);
    h[0].set_tracks("cam", h264()).expect("tracks");
    assert_eq!(woken(&c), 0);
}

/// Polls `bell.changed()` once with `waker`: true if it was ready.
fn bell_ready(bell: &DemandBell, waker: &Waker) -> bool {
    let mut fut = std::pin::pin!(bell.changed());
    fut.as_mut()
        .poll(&mut std::task::Context::from_waker(waker))
        .is_ready()
}

#[test]
fn demand_bell_rings_when_local_viewers_come_and_go() {
    let (_mesh, mut h) = hubs(1, 64);
    h[0].publish("cam", src()).expect("publish");
    let bell = h[0].demand_bell("cam").expect("owned");
    let (c, w) = count_waker();
    assert!(!bell_ready(&bell, &w), "no change yet");
    let v = h[0].subscribe("cam").expect("subscribe");
    assert_eq!(woken(&c), 1, "a viewer came");
    assert_eq!(h[0].demand("cam"), 1);
    assert!(bell_ready(&bell, &w), "the ring is kept for the next wait");
    assert!(!bell_ready(&bell, &w), "and used up by it");
    drop(v);
    assert_eq!(woken(&c), 2, "the viewer went");
    assert_eq!(h[0].demand("cam"), 0);
    assert!(bell_ready(&bell, &w));
    assert!(h[0].demand_bell("nope").is_none());
}

#[test]
fn demand_bell_rings_when_a_shard_starts_and_stops_relaying() {
    let (mesh, mut h) = hubs(2, 64);
    h[0].publish("cam", src()).expect("publish");
    settle(&mesh, &mut h);
    assert!(
        h[1].demand_bell("cam").is_none(),
        "only the owner has the bell"
    );
    let bell = h[0].demand_bell("cam").expect("owned");
    let (c, w) = count_waker();
    assert!(!bell_ready(&bell, &w));
    let v = h[1].subscribe("cam").expect("relay");
    settle(&mesh, &mut h);
    assert_eq!(woken(&c), 1, "shard 1 subscribed");
    assert_eq!(h[0].demand("cam"), 1);
    assert!(bell_ready(&bell, &w));
    assert!(!bell_ready(&bell, &w));
    drop(v);
    assert_eq!(
        woken(&c),
        1,
        "a relay viewer rings its own shard's relay, not the owner"
    );
    h[1].prune();
    settle(&mesh, &mut h);
    assert_eq!(woken(&c), 2, "shard 1 unsubscribed");
    assert_eq!(h[0].demand("cam"), 0);
}

#[test]
fn a_later_control_message_supersedes_only_earlier_ones_of_its_kind_and_path() {
    let a: Arc<str> = "live/a".into();
    let b: Arc<str> = "live/b".into();
    let meta = |p: &Arc<str>| StreamMsg::Metadata {
        path: p.clone(),
        metadata: Bytes::from_static(b"m"),
    };
    let tracks = |p: &Arc<str>| StreamMsg::Tracks {
        path: p.clone(),
        tracks: Arc::from(Vec::new()),
    };
    let init = |p: &Arc<str>| StreamMsg::Init {
        path: p.clone(),
        metadata: None,
        tracks: None,
        gop: Vec::new(),
    };
    let sub = |p: &Arc<str>| StreamMsg::Subscribe {
        path: p.clone(),
        shard: 1,
    };
    let unsub = |p: &Arc<str>| StreamMsg::Unsubscribe {
        path: p.clone(),
        shard: 1,
    };
    let announce = |p: &Arc<str>| StreamMsg::Announce {
        path: p.clone(),
        owner: 0,
        start_timeout: None,
    };
    let withdraw = |p: &Arc<str>| StreamMsg::Withdraw {
        path: p.clone(),
        owner: 0,
    };
    let end = |p: &Arc<str>| StreamMsg::End {
        path: p.clone(),
        removed: false,
    };
    assert!(meta(&a).supersedes(&meta(&a)));
    assert!(!meta(&a).supersedes(&meta(&b)));
    assert!(tracks(&a).supersedes(&tracks(&a)));
    assert!(init(&a).supersedes(&tracks(&a)));
    assert!(init(&a).supersedes(&meta(&a)));
    assert!(init(&a).supersedes(&init(&a)));
    assert!(!tracks(&a).supersedes(&init(&a)));
    assert!(unsub(&a).supersedes(&sub(&a)));
    assert!(sub(&a).supersedes(&unsub(&a)));
    assert!(withdraw(&a).supersedes(&announce(&a)));
    assert!(announce(&a).supersedes(&withdraw(&a)));
    // An end is kept until a later end: a relay must see that its stream ended.
    assert!(end(&a).supersedes(&end(&a)));
    assert!(!end(&b).supersedes(&end(&a)));
    assert!(!init(&a).supersedes(&end(&a)));
    assert!(!end(&a).supersedes(&init(&a)));
    assert!(!meta(&a).supersedes(&announce(&a)));
}

/// Publishes `a` from a source that does (or does not) continue its own timeline, with
/// one 90 kHz video track and a viewer.
fn pushed(continues_timeline: bool) -> (Hub, SinkHandle) {
    let (_mesh, mut h) = hubs(1, 100);
    let mut hub = h.remove(0);
    let source = SourceInfo {
        continues_timeline,
        ..src()
    };
    hub.publish("a", source).unwrap();
    hub.set_tracks("a", vec![Track::new(TrackId(0), Codec::H264, 90_000)])
        .unwrap();
    let v = hub.subscribe("a").unwrap();
    (hub, v)
}

#[test]
fn a_publishers_clock_jump_is_continued_for_viewers() {
    let (mut hub, v) = pushed(false);
    let hour = 3600 * 90_000;
    for t in [0, 3000, 6000 + hour, 9000 + hour, 0, 3000] {
        hub.push_frame("a", video(t == 0, t)).unwrap();
    }
    assert_eq!(frames(&v.queue), [0, 3000, 6000, 9000, 12_000, 15_000]);
    assert_eq!(stats::get(&hub.stats.timeline_jumps), 2);
    // A publisher's restart (re-publish) continues the same timeline.
    hub.unpublish("a").unwrap();
    hub.publish(
        "a",
        SourceInfo {
            kind: "rtmp",
            ..src()
        },
    )
    .unwrap();
    hub.set_tracks("a", vec![Track::new(TrackId(0), Codec::H264, 90_000)])
        .unwrap();
    hub.push_frame("a", video(true, 0)).unwrap();
    assert_eq!(frames(&v.queue), [18_000]);
    // A new publisher's clock is not a jump.
    assert_eq!(stats::get(&hub.stats.timeline_jumps), 2);
}

#[test]
fn sources_that_continue_their_own_timeline_are_not_rebased() {
    let (mut hub, v) = pushed(true);
    let hour = 3600 * 90_000;
    for t in [0, 3000, 6000 + hour] {
        hub.push_frame("a", video(t == 0, t)).unwrap();
    }
    assert_eq!(frames(&v.queue), [0, 3000, 6000 + hour]);
}

fn aac_track() -> Track {
    let mut t = Track::new(TrackId(1), Codec::Aac, 44_100);
    // AAC-LC, 44.1 kHz, stereo.
    t.params.audio_config = Some(Bytes::from_static(&[0x12, 0x10]));
    t.channels = Some(2);
    t
}

fn aac(t: i64) -> Frame {
    Frame {
        track: TrackId(1),
        kind: MediaKind::Audio,
        keyframe: true,
        dts: t,
        pts: t,
        // Not AAC: each decodes to silence (counted), which still makes Opus.
        data: Bytes::from_static(&[0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c]),
    }
}

fn codecs_of(q: &SinkQueue, tracks: &[Track]) -> Vec<Codec> {
    std::iter::from_fn(|| q.try_pop())
        .filter_map(|e| match e {
            SinkEvent::Frame(f) => tracks
                .iter()
                .find(|t| t.id == f.frame.track)
                .map(|t| t.codec),
            _ => None,
        })
        .collect()
}

fn transcoding(h: &Hub, path: &str) -> bool {
    h.paths().iter().any(|p| &*p.path == path && p.transcoding)
}

#[test]
fn aac_is_transcoded_to_opus_only_while_a_browser_watches_on_any_shard() {
    let (mesh, mut h) = hubs(2, 10_000);
    for hub in h.iter_mut() {
        hub.limits.transcode = Some(Default::default());
    }
    h[0].publish("cam", src()).unwrap();
    h[0].set_tracks("cam", vec![aac_track()]).unwrap();
    settle(&mesh, &mut h);
    let tracks = h[0].tracks("cam").expect("tracks");
    let opus = tracks
        .iter()
        .find(|t| t.codec == Codec::Opus)
        .expect("an Opus track");
    assert_eq!(opus.transcoded_from, Some(TrackId(1)));
    assert_eq!(opus.channels, Some(2));
    // A player alone: the AAC goes out as it came, nothing is transcoded.
    let player = h[0].subscribe("cam").unwrap();
    for i in 0..50 {
        h[0].push_frame("cam", aac(i * 1024)).unwrap();
    }
    assert!(
        codecs_of(&player.queue, &tracks)
            .iter()
            .all(|c| *c == Codec::Aac)
    );
    assert!(!transcoding(&h[0], "cam"));
    // A browser on the other shard: the owner transcodes, the relay gets the Opus.
    settle(&mesh, &mut h);
    let browser = h[1].subscribe_as("cam", Viewer::Browser).unwrap();
    settle(&mesh, &mut h);
    let mut got = codecs_of(&browser.queue, &tracks);
    for i in 50..100 {
        h[0].push_frame("cam", aac(i * 1024)).unwrap();
        settle(&mesh, &mut h);
        got.extend(codecs_of(&browser.queue, &tracks));
    }
    assert!(transcoding(&h[0], "cam"));
    let opus_frames = got.iter().filter(|c| **c == Codec::Opus).count();
    // 50 AAC frames of 1024 samples at 44.1 kHz: 1.16 s, about 58 Opus frames (less the
    // pipeline's delay).
    assert!(
        (50..=60).contains(&opus_frames),
        "{opus_frames} Opus frames: {got:?}"
    );
    let local = codecs_of(&player.queue, &tracks);
    assert!(
        local.contains(&Codec::Opus),
        "the owner's own viewers get them too: {local:?}"
    );
    // The browser leaves: 10 s of stream time later the transcoder stops.
    browser.queue.detach();
    h[1].prune();
    settle(&mesh, &mut h);
    let ten_s = 44_100 * 10 / 1024 + 2;
    for i in 100..100 + ten_s {
        h[0].push_frame("cam", aac(i * 1024)).unwrap();
    }
    assert!(!transcoding(&h[0], "cam"));
}

/// The frames of a queue with whether each is live for the viewer, and its arrival.
fn arrivals(q: &SinkQueue) -> Vec<(i64, Option<Instant>)> {
    std::iter::from_fn(|| q.try_pop())
        .filter_map(|e| match e {
            SinkEvent::Frame(f) => Some((f.frame.dts, q.live_arrival(&f))),
            _ => None,
        })
        .collect()
}

#[test]
#[allow(clippy::disallowed_methods)] // Any instant serves as the origin.
fn arrival_times_travel_with_frames_and_replays_are_not_live() {
    let (mesh, mut h) = hubs(2, 100);
    let t0 = Instant::now();
    let at = |ms| t0 + Duration::from_millis(ms);
    h[0].publish("a", src()).unwrap();
    h[0].set_tracks("a", vec![Track::new(TrackId(0), Codec::H264, 90_000)])
        .unwrap();
    h[0].push_frame_arrived("a", video(true, 0), at(0)).unwrap();
    h[0].push_frame_arrived("a", video(false, 1), at(10))
        .unwrap();
    settle(&mesh, &mut h);
    // Joining viewers on the owner and on a relay shard get the GOP: not live.
    let local = h[0].subscribe("a").unwrap();
    let remote = h[1].subscribe("a").unwrap();
    settle(&mesh, &mut h);
    assert_eq!(arrivals(&local.queue), [(0, None), (1, None)]);
    assert_eq!(arrivals(&remote.queue), [(0, None), (1, None)]);
    // Live frames keep the owner's arrival time on every shard; a frame pushed without
    // one is not measured.
    h[0].push_frame_arrived("a", video(false, 2), at(20))
        .unwrap();
    h[0].push_frame("a", video(false, 3)).unwrap();
    settle(&mesh, &mut h);
    let live = [(2, Some(at(20))), (3, None)];
    assert_eq!(arrivals(&local.queue), live);
    assert_eq!(arrivals(&remote.queue), live);
    // A viewer joining now on the relay shard: its GOP (relayed frames included) is a
    // replay for it, what follows is live.
    let late = h[1].subscribe("a").unwrap();
    h[0].push_frame_arrived("a", video(false, 4), at(30))
        .unwrap();
    settle(&mesh, &mut h);
    assert_eq!(
        arrivals(&late.queue),
        [
            (0, None),
            (1, None),
            (2, None),
            (3, None),
            (4, Some(at(30)))
        ]
    );
}

#[test]
fn video_frames_out_of_decode_order_mark_their_track_until_new_tracks() {
    let (_mesh, mut h) = hubs(1, 100);
    h[0].publish("a", src()).unwrap();
    let tracks = vec![
        Track::new(TrackId(0), Codec::H264, 90_000),
        Track::new(TrackId(1), Codec::Aac, 44_100),
    ];
    h[0].set_tracks("a", tracks.clone()).unwrap();
    let reordered = |h: &Hub| h.paths()[0].reordered;
    h[0].push_frame("a", video(true, 0)).unwrap();
    h[0].push_frame("a", video(false, 3000)).unwrap();
    assert_eq!(reordered(&h[0]), 0, "frames in decode order");
    // Audio whose times differ (a quirk of some muxers) is not a B-frame.
    let mut aac = video(false, 3000);
    (aac.track, aac.kind, aac.pts) = (TrackId(1), MediaKind::Audio, 3500);
    h[0].push_frame("a", aac).unwrap();
    assert_eq!(reordered(&h[0]), 0);
    // A P-frame shown after the B-frames decoded after it.
    let mut p = video(false, 6000);
    p.pts = 12_000;
    h[0].push_frame("a", p).unwrap();
    assert_eq!(reordered(&h[0]), 0b01);
    let info = &h[0].paths()[0];
    assert!(info.bframes(TrackId(0)) && !info.bframes(TrackId(1)));
    // A new publisher's tracks start over.
    h[0].set_tracks("a", tracks.clone()).unwrap();
    assert_eq!(reordered(&h[0]), 0);
    // An SPS that declares reordering (x264 `-bf 2`) marks the track at once.
    let mut declared = tracks;
    declared[0].params.sps = vec![bytes::Bytes::from_static(&[
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0x99, 0x60,
    ])];
    h[0].set_tracks("a", declared).unwrap();
    assert_eq!(reordered(&h[0]), 0b01);
}
