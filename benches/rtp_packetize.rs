//! H.264 RTP packetization of the demo clip's first IDR and a median-sized P-frame: time
//! per frame, throughput in packets (RTP payloads) per second.

use bytes::Bytes;
use corecast::media::clip::Clip;
use corecast::media::flv::{DemuxOutput, Demuxer, TagType};
use corecast::media::{Frame, Track};
use corecast::rtp::{MAX_PAYLOAD, packetize_h264};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

/// The video track and video frames of `configs/media/demo.flv`.
fn demo() -> (Track, Vec<Frame>) {
    let file = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/media/demo.flv"
    ))
    .expect("configs/media/demo.flv");
    let clip = Clip::parse(Bytes::from(file), 8 << 20).expect("demo clip");
    let mut demux = Demuxer::new();
    let mut frames = Vec::new();
    for tag in clip.tags().iter().filter(|t| t.kind == TagType::Video) {
        if let Ok(Some(DemuxOutput::Frame(f))) = demux.video(tag.offset_ms, &tag.body) {
            frames.push(f);
        }
    }
    let track = demux.tracks().into_iter().next().expect("video track");
    (track, frames)
}

fn bench_h264(c: &mut Criterion) {
    let (track, frames) = demo();
    let idr = frames
        .iter()
        .find(|f| f.keyframe)
        .expect("a keyframe")
        .clone();
    let mut p_frames: Vec<&Frame> = frames.iter().filter(|f| !f.keyframe).collect();
    p_frames.sort_by_key(|f| f.data.len());
    let p_frame = p_frames[p_frames.len() / 2].clone();

    let mut group = c.benchmark_group("rtp_h264");
    for (name, frame) in [("idr", &idr), ("p_frame", &p_frame)] {
        let packets = packetize_h264(&track, frame, MAX_PAYLOAD)
            .expect("demo frame packetizes")
            .payloads
            .len();
        eprintln!("{name}: {} bytes, {packets} packets", frame.data.len());
        group.throughput(Throughput::Elements(packets as u64));
        group.bench_function(name, |b| {
            b.iter(|| packetize_h264(black_box(&track), black_box(frame), MAX_PAYLOAD))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_h264);
criterion_main!(benches);
