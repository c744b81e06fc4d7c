//! Two real glommio shards joined by the mesh: a frame published on shard 0 reaches a
//! viewer on shard 1 without its payload being copied, and a stalled viewer does not hold
//! back the source or the other viewers.
#![allow(clippy::disallowed_methods)] // Tests and benchmarks drive real time.

use bytes::Bytes;
use corecast::media::{Codec, Frame, MediaKind, Track, TrackId};
use corecast::runtime::{MeshEnds, MeshPlan, ShardMsg};
use corecast::stats::ShardStats;
use corecast::stream::{Hub, HubLimits, SinkEvent, SinkLimits, SourceInfo};
use glommio::{LocalExecutorBuilder, Placement};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

static PAYLOAD: [u8; 4096] = [0x5A; 4096];
const FRAMES: i64 = 600;

fn limits() -> HubLimits {
    HubLimits {
        gop_max_frames: 1000,
        gop_max_bytes: 64 << 20,
        sink: SinkLimits {
            max_frames: 100,
            max_bytes: 8 << 20,
        },
        transcode: None,
    }
}

async fn start_hub(id: usize, ends: MeshEnds) -> Rc<RefCell<Hub>> {
    let (mesh, receivers) = ends.connect().await;
    let hub = Rc::new(RefCell::new(Hub::new(
        id,
        2,
        limits(),
        mesh,
        Arc::new(ShardStats::default()),
    )));
    for (from, rx) in receivers {
        let hub = hub.clone();
        glommio::spawn_local(async move {
            while let Some(msg) = rx.recv().await {
                if let ShardMsg::Stream(msg) = msg {
                    hub.borrow_mut().handle_msg(from, msg);
                }
            }
        })
        .detach();
    }
    hub
}

fn frame(i: i64) -> Frame {
    Frame {
        track: TrackId(0),
        kind: MediaKind::Video,
        keyframe: i % 30 == 0,
        dts: i * 3000,
        pts: i * 3000,
        data: Bytes::from_static(&PAYLOAD),
    }
}

#[derive(Debug, Default)]
struct Report {
    frames: usize,
    all_same_buffer: bool,
    first_is_keyframe: bool,
    stalled_queued: usize,
    stalled_dropped: u64,
}

#[test]
fn frame_crosses_shards_without_copy_and_stalled_viewer_does_not_block() {
    let mut ends = MeshPlan::new(2, 64).split().into_iter();
    let (e0, e1) = (ends.next().expect("e0"), ends.next().expect("e1"));
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();

    let owner = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(256 << 10)
        .spawn(move || async move {
            let hub = start_hub(0, e0).await;
            let info = SourceInfo {
                kind: "test",
                url: "test:".into(),
                state: corecast::stream::SourceState::Live,
                stats: None,
                start_timeout: None,
                continues_timeline: true,
            };
            hub.borrow_mut().publish("live/t", info).expect("publish");
            hub.borrow_mut()
                .set_tracks("live/t", vec![Track::new(TrackId(0), Codec::H264, 90_000)])
                .expect("tracks");
            // Wait for the viewer on shard 1 to attach.
            ready_rx.recv().expect("ready");
            for i in 0..FRAMES {
                hub.borrow_mut()
                    .push_frame("live/t", frame(i))
                    .expect("push");
                if i % 10 == 9 {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
            }
            // The source never waited on anyone; keep the executor alive until the
            // viewer has read.
            while done_rx.try_recv().is_err() {
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
        })
        .expect("shard 0");

    let viewer = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(256 << 10)
        .spawn(move || async move {
            let hub = start_hub(1, e1).await;
            while hub.borrow().owner("live/t").is_none() {
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
            let live = hub.borrow_mut().subscribe("live/t").expect("subscribe");
            let stalled = hub.borrow_mut().subscribe("live/t").expect("subscribe");
            ready_tx.send(()).expect("ready");
            let mut r = Report {
                all_same_buffer: true,
                ..Report::default()
            };
            let mut last_dts = -1;
            while last_dts < (FRAMES - 1) * 3000 {
                let ev = glommio::timer::timeout(Duration::from_secs(10), async {
                    Ok(live.queue.recv().await)
                })
                .await
                .expect("frames stopped arriving");
                if let SinkEvent::Frame(f) = ev {
                    let f = &f.frame;
                    if r.frames == 0 {
                        r.first_is_keyframe = f.keyframe;
                    }
                    r.frames += 1;
                    r.all_same_buffer &= f.data.as_ptr() == PAYLOAD.as_ptr();
                    last_dts = f.dts;
                }
            }
            r.stalled_queued = stalled.queue.queued_frames();
            r.stalled_dropped = stalled.queue.dropped();
            done_tx.send(()).expect("done");
            r
        })
        .expect("shard 1");

    let r = viewer.join().expect("viewer");
    owner.join().expect("owner");
    assert!(
        r.all_same_buffer,
        "a payload was copied on its way across shards"
    );
    assert!(r.first_is_keyframe);
    // The live viewer kept up (the mesh may drop a GOP under load, but not most frames).
    assert!(r.frames as i64 >= FRAMES * 8 / 10, "{r:?}");
    // The stalled viewer is bounded and dropping, not blocking.
    assert!(r.stalled_queued <= limits().sink.max_frames, "{r:?}");
    assert!(r.stalled_dropped > 0, "{r:?}");
}

/// A shard's WebRTC handle on the real mesh, with an engine that has no sessions.
fn webrtc_handle(
    id: usize,
    mesh: Rc<corecast::runtime::Mesh>,
    registry: &Arc<corecast::webrtc::Registry>,
) -> corecast::webrtc::Handle {
    use corecast::webrtc::engine::{Engine, EngineConfig};
    let local: std::net::SocketAddr = ([127, 0, 0, 1], 8189 + id as u16).into();
    let cfg = EngineConfig {
        peer: corecast::webrtc::peer::PeerConfig::default(),
        ingest: Default::default(),
        max_sessions: 4,
        candidates: vec![local],
        local,
        resend: Default::default(),
    };
    let cert = corecast::webrtc::process_cert().expect("certificate");
    let engine = Engine::new(std::time::Instant::now(), cert, cfg);
    corecast::webrtc::Handle::new(id, engine, registry.clone(), mesh)
}

#[test]
fn delete_of_a_session_on_another_shard_crosses_the_mesh() {
    use corecast::webrtc::SessionMsg;
    use corecast::webrtc::table::SessionId;
    let mut ends = MeshPlan::new(2, 64).split().into_iter();
    let (e0, e1) = (ends.next().expect("e0"), ends.next().expect("e1"));
    let registry = Arc::new(corecast::webrtc::Registry::default());
    let id = SessionId(0x1234_5678_9abc_def0);
    registry.insert(id, 1);
    let (done_tx, done_rx) = mpsc::channel::<()>();

    let reg = registry.clone();
    let deleter = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(256 << 10)
        .spawn(move || async move {
            let (mesh, _rx) = e0.connect().await;
            let rtc = webrtc_handle(0, mesh.clone(), &reg);
            // The DELETE lands on shard 0; a repeat is refused at once.
            let first = rtc.end_session(id);
            let again = rtc.end_session(id);
            // Keep the channel open until shard 1 has read.
            while done_rx.try_recv().is_err() {
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
            mesh.close();
            (first, again)
        })
        .expect("shard 0");

    let reg = registry.clone();
    let owner = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(256 << 10)
        .spawn(move || async move {
            let (mesh, mut rx) = e1.connect().await;
            let rtc = webrtc_handle(1, mesh, &reg);
            let (from, rx) = rx.pop().expect("receiver from shard 0");
            let msg =
                glommio::timer::timeout(Duration::from_secs(10), async { Ok(rx.recv().await) })
                    .await
                    .expect("no message within 10 s")
                    .expect("channel open");
            done_tx.send(()).expect("done");
            let got = match msg {
                ShardMsg::Session(m) => m,
                other => panic!("expected a session message, got {other:?}"),
            };
            // The owner ends it (the session is already gone here: no harm).
            rtc.handle_msg(got.clone());
            (from, got, rtc.engine().is_empty())
        })
        .expect("shard 1");

    let (first, again) = deleter.join().expect("deleter");
    let (from, got, empty) = owner.join().expect("owner");
    assert!(first, "the first DELETE finds the session");
    assert!(!again, "a repeated DELETE is refused before the owner acts");
    assert_eq!(from, 0);
    assert_eq!(got, SessionMsg::End(id));
    assert!(empty);
    assert!(registry.is_empty());
}

#[test]
fn a_stalled_shard_costs_a_bounded_control_backlog_and_gets_the_latest_state() {
    use corecast::stream::{MeshTx, StreamMsg};
    const N: u32 = 10_000;
    let mut ends = MeshPlan::new(2, 4).split().into_iter();
    let (e0, e1) = (ends.next().expect("e0"), ends.next().expect("e1"));
    let (sent_tx, sent_rx) = mpsc::channel::<usize>();
    let (done_tx, done_rx) = mpsc::channel::<()>();

    let sender = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(256 << 10)
        .spawn(move || async move {
            let (mesh, _receivers) = e0.connect().await;
            let a: Arc<str> = "live/a".into();
            let b: Arc<str> = "live/b".into();
            let mut longest = 0;
            // Shard 1 reads nothing meanwhile: metadata changes, viewers coming and
            // going, track changes, a path published and withdrawn, over and over.
            for i in 0..N {
                let metadata = Bytes::from(i.to_be_bytes().to_vec());
                mesh.send_control(
                    1,
                    StreamMsg::Metadata {
                        path: a.clone(),
                        metadata,
                    },
                );
                let (path, shard) = (a.clone(), 0);
                mesh.send_control(
                    1,
                    if i % 2 == 0 {
                        StreamMsg::Subscribe { path, shard }
                    } else {
                        StreamMsg::Unsubscribe { path, shard }
                    },
                );
                let tracks = Arc::from(vec![Track::new(TrackId(0), Codec::H264, 90_000 + i)]);
                mesh.send_control(
                    1,
                    StreamMsg::Tracks {
                        path: b.clone(),
                        tracks,
                    },
                );
                let (path, owner) = (b.clone(), 0);
                mesh.send_control(
                    1,
                    if i % 2 == 0 {
                        StreamMsg::Announce {
                            path,
                            owner,
                            start_timeout: None,
                        }
                    } else {
                        StreamMsg::Withdraw { path, owner }
                    },
                );
                longest = longest.max(mesh.backlog());
            }
            sent_tx.send(longest).expect("sent");
            while done_rx.try_recv().is_err() {
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
        })
        .expect("shard 0");

    let receiver = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(256 << 10)
        .spawn(move || async move {
            let (_mesh, mut receivers) = e1.connect().await;
            let (_, rx) = receivers.pop().expect("a receiver");
            let longest = sent_rx.recv().expect("sender done");
            let mut got = Vec::new();
            while let Ok(Some(msg)) =
                glommio::timer::timeout(Duration::from_millis(500), async { Ok(rx.recv().await) })
                    .await
            {
                if let ShardMsg::Stream(m) = msg {
                    got.push(m);
                }
            }
            done_tx.send(()).expect("done");
            (longest, got)
        })
        .expect("shard 1");

    let (longest, got) = receiver.join().expect("receiver");
    sender.join().expect("sender");
    // Four kinds of message about two paths: the backlog never held more than one of each.
    assert!(longest <= 4, "the backlog grew to {longest} messages");
    // The channel's 4, the one the pump was sending, the backlog's 4.
    assert!(got.len() <= 4 + 1 + 4, "{} messages delivered", got.len());
    // What arrived last of each kind is the sender's last word.
    let last_meta = got.iter().rev().find_map(|m| match m {
        StreamMsg::Metadata { metadata, .. } => Some(metadata.clone()),
        _ => None,
    });
    assert_eq!(last_meta.as_deref(), Some(&(N - 1).to_be_bytes()[..]));
    let last_sub = got.iter().rev().find(|m| {
        matches!(
            m,
            StreamMsg::Subscribe { .. } | StreamMsg::Unsubscribe { .. }
        )
    });
    assert!(
        matches!(last_sub, Some(StreamMsg::Unsubscribe { .. })),
        "{last_sub:?}"
    );
    let last_tracks = got.iter().rev().find_map(|m| match m {
        StreamMsg::Tracks { tracks, .. } => Some(tracks[0].clock_rate),
        _ => None,
    });
    assert_eq!(last_tracks, Some(90_000 + N - 1));
    let last_dir = got
        .iter()
        .rev()
        .find(|m| matches!(m, StreamMsg::Announce { .. } | StreamMsg::Withdraw { .. }));
    assert!(
        matches!(last_dir, Some(StreamMsg::Withdraw { .. })),
        "{last_dir:?}"
    );
}
