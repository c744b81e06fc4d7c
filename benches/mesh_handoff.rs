//! Cross-shard frame hand-off: frames per second from shard 0 to a viewer queue on
//! shard 1, over the real glommio mesh (two executors, one per thread).
#![allow(clippy::disallowed_methods)] // Tests and benchmarks drive real time.

use bytes::Bytes;
use corecast::media::{Frame, MediaKind, TrackId};
use corecast::runtime::{MeshPlan, ShardMsg};
use corecast::stream::{MeshTx, OutFrame, SinkEvent, SinkLimits, SinkQueue, StreamMsg};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use glommio::{LocalExecutorBuilder, Placement};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

static PAYLOAD: [u8; 8192] = [0x5A; 8192];

fn handoff(c: &mut Criterion) {
    let mut ends = MeshPlan::new(2, 1024).split().into_iter();
    let (e0, e1) = (ends.next().expect("e0"), ends.next().expect("e1"));
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (cmd_tx, cmd_rx) = mpsc::channel::<u64>();
    let path: Arc<str> = Arc::from("bench");

    let sender = {
        let stop = stop.clone();
        let path = path.clone();
        LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(256 << 10)
            .spawn(move || async move {
                let (mesh, _rx) = e0.connect().await;
                let mut seq = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(n) = cmd_rx.try_recv() else {
                        glommio::executor().yield_now().await;
                        continue;
                    };
                    for _ in 0..n {
                        let frame = Frame {
                            track: TrackId(0),
                            kind: MediaKind::Video,
                            keyframe: seq % 60 == 0,
                            dts: seq,
                            pts: seq,
                            data: Bytes::from_static(&PAYLOAD),
                        };
                        seq += 1;
                        mesh.send_control(
                            1,
                            StreamMsg::Frame {
                                path: path.clone(),
                                frame,
                                arrived: None,
                            },
                        );
                        if seq % 256 == 0 {
                            glommio::executor().yield_now().await;
                        }
                    }
                    while mesh.backlog() > 0 {
                        glommio::executor().yield_now().await;
                    }
                }
                mesh.close();
            })
            .expect("shard 0")
    };
    let receiver = {
        let received = received.clone();
        LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(256 << 10)
            .spawn(move || async move {
                let (_mesh, mut rx) = e1.connect().await;
                let (_, rx) = rx.pop().expect("receiver from shard 0");
                let sink = SinkQueue::new(SinkLimits {
                    max_frames: 1 << 20,
                    max_bytes: usize::MAX,
                });
                // Ends when shard 0 drops its sender.
                while let Some(msg) = rx.recv().await {
                    if let ShardMsg::Stream(StreamMsg::Frame { frame, .. }) = msg {
                        sink.push(SinkEvent::Frame(OutFrame::new(frame)));
                        while sink.try_pop().is_some() {}
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .expect("shard 1")
    };

    let mut g = c.benchmark_group("mesh_handoff");
    g.throughput(Throughput::Elements(1));
    g.bench_function("frame_shard0_to_shard1", |b| {
        b.iter_custom(|iters| {
            let start_count = received.load(Ordering::Relaxed);
            let t = Instant::now();
            cmd_tx.send(iters).expect("command");
            while received.load(Ordering::Relaxed) < start_count + iters {
                std::thread::sleep(std::time::Duration::from_micros(20));
            }
            t.elapsed()
        })
    });
    g.finish();
    stop.store(true, Ordering::Relaxed);
    drop(cmd_tx);
    let _ = sender.join();
    let _ = receiver.join();
}

criterion_group!(benches, handoff);
criterion_main!(benches);
