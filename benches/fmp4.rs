//! fMP4 muxing cost per frame, replaying a recorded clip: one muxer per viewer pushes
//! every frame of the stream, so this is the per-viewer hot path.

use bytes::Bytes;
use corecast::media::Frame;
use corecast::media::clip::Clip;
use corecast::media::fmp4::Muxer;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

/// ffmpeg, 1 s of 320x240 H.264 baseline + AAC; see tests/data/README.md.
const FILE: &[u8] = include_bytes!("../tests/data/ffmpeg_320x240_baseline_aac.flv");

/// Pushes every frame and flushes; returns the bytes written.
fn mux_all(muxer: &mut Muxer, frames: &[Frame]) -> usize {
    let mut bytes = 0;
    for f in frames {
        if let Some(frag) = muxer.push(f) {
            bytes += black_box(frag).len();
        }
    }
    bytes + muxer.flush().iter().map(Bytes::len).sum::<usize>()
}

fn bench_fmp4(c: &mut Criterion) {
    let clip = Clip::parse(Bytes::from_static(FILE), 1 << 20).expect("clip");
    let (tracks, frames) = clip.frames().expect("demux");
    let muxer = Muxer::new(&tracks).expect("muxer");
    assert!(mux_all(&mut muxer.clone(), &frames) > 0);
    let mut group = c.benchmark_group("fmp4");
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function("push clip frames", |b| {
        b.iter(|| mux_all(&mut muxer.clone(), black_box(&frames)))
    });
    group.finish();
    c.bench_function("fmp4 new + init segment", |b| {
        b.iter(|| Muxer::new(black_box(&tracks)).map(|m| m.init_segment().len()))
    });
}

criterion_group!(benches, bench_fmp4);
criterion_main!(benches);
