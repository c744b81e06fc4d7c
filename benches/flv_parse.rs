//! FLV tag reading + demuxing throughput, and SPS parsing.

use bytes::Bytes;
use corecast::media::flv::{self, DemuxOutput, Demuxer, FlvHeader, TagType};
use corecast::media::h264;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

/// ffmpeg, 1 s of 320x240 H.264 baseline + AAC; see tests/data/README.md.
const FILE: &[u8] = include_bytes!("../tests/data/ffmpeg_320x240_baseline_aac.flv");

/// x264 `-profile:v baseline` SPS, 1280x720 at 30 fps.
const SPS_720P: &[u8] = &[
    0x67, 0x42, 0xC0, 0x1F, 0xD9, 0x00, 0x50, 0x05, 0xBB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xC0, 0xF1, 0x83, 0x24, 0x80,
];

/// Reads every tag and demuxes audio/video; returns the number of frames.
fn demux_all(buf: &Bytes) -> usize {
    let Ok(Some(header)) = FlvHeader::parse(buf) else {
        return 0;
    };
    let mut pos = header.first_tag_offset();
    let mut demux = Demuxer::new();
    let mut frames = 0;
    while let Ok(Some((tag, next))) = flv::read_tag(buf, pos, 1 << 20) {
        pos = next;
        let ts = i64::from(tag.timestamp);
        let out = match tag.tag_type {
            TagType::Video => demux.video(ts, &tag.data),
            TagType::Audio => demux.audio(ts, &tag.data),
            _ => Ok(None),
        };
        if let Ok(Some(DemuxOutput::Frame(f))) = out {
            black_box(&f);
            frames += 1;
        }
    }
    frames
}

fn bench_flv(c: &mut Criterion) {
    let buf = Bytes::from_static(FILE);
    assert_eq!(demux_all(&buf), 55);
    let mut group = c.benchmark_group("flv");
    group.throughput(Throughput::Bytes(FILE.len() as u64));
    group.bench_function("read_tag+demux", |b| b.iter(|| demux_all(black_box(&buf))));
    group.finish();
}

fn bench_sps(c: &mut Criterion) {
    assert!(h264::parse_sps(SPS_720P).is_ok());
    c.bench_function("parse_sps 720p", |b| {
        b.iter(|| h264::parse_sps(black_box(SPS_720P)))
    });
}

criterion_group!(benches, bench_flv, bench_sps);
criterion_main!(benches);
