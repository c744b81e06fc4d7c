//! H.264 RTP depacketization (ingest): parse + depacketize a recorded RTP sequence.
//!
//! Inputs, built once with `corecast::rtp::packetize_h264` at 1200-byte payloads:
//! - `synthetic_2mbps`: 10 s of a 2 Mbit/s 30 fps stream, an IDR (~30 kB) every 2 s and
//!   P-frames of ~8 kB, mostly FU-A;
//! - `demo_clip`: the video of `configs/media/demo.flv`.
//!
//! Each is measured twice, once with throughput in frames and once in packets (the time
//! per element is the time per frame / per packet).

use bytes::Bytes;
use corecast::media::clip::Clip;
use corecast::media::flv::{DemuxOutput, Demuxer, TagType};
use corecast::media::{Codec, Frame, MediaKind, Track, TrackId};
use corecast::rtp::depack::{DepackConfig, DepackOutput, Depacketizer, RtpPacket};
use corecast::rtp::{MAX_PAYLOAD, packetize_h264};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

/// x264 baseline SPS and PPS (1280x720).
const SPS: &[u8] = &[
    0x67, 0x42, 0xC0, 0x1F, 0xD9, 0x00, 0x50, 0x05, 0xBB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xC0, 0xF1, 0x83, 0x24, 0x80,
];
const PPS: &[u8] = &[0x68, 0xCB, 0x83, 0xCB, 0x20];

/// 300 frames at 30 fps: IDR of 30 kB every 60 frames, P-frames of 7–9 kB.
fn synthetic() -> (Track, Vec<Frame>) {
    let mut track = Track::new(TrackId(0), Codec::H264, 90_000);
    track.params.sps = vec![Bytes::from_static(SPS)];
    track.params.pps = vec![Bytes::from_static(PPS)];
    let frames = (0..300usize)
        .map(|i| {
            let key = i % 60 == 0;
            let len = if key {
                30_000
            } else {
                7_000 + (i * 211) % 2_000
            };
            let mut data = Vec::with_capacity(4 + len);
            data.extend_from_slice(&(len as u32).to_be_bytes());
            data.push(if key { 0x65 } else { 0x41 });
            data.extend((1..len).map(|j| (j * 7 + i) as u8));
            Frame {
                track: TrackId(0),
                kind: MediaKind::Video,
                keyframe: key,
                dts: i as i64 * 3000,
                pts: i as i64 * 3000,
                data: Bytes::from(data),
            }
        })
        .collect();
    (track, frames)
}

/// The video track and frames of `configs/media/demo.flv`.
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

/// The frames as RTP datagrams (12-byte header + payload).
fn record(track: &Track, frames: &[Frame]) -> Vec<Bytes> {
    let mut seq = 0xFF00u16;
    let mut out = Vec::new();
    for f in frames {
        let p = packetize_h264(track, f, MAX_PAYLOAD).expect("frame packetizes");
        for pl in p.payloads {
            let pkt = RtpPacket {
                payload_type: 96,
                marker: pl.marker,
                sequence: seq,
                timestamp: p.rtp_time.wrapping_add(0xFFF0_0000),
                ssrc: 0x1234_5678,
                payload: Bytes::copy_from_slice(&pl.data),
            };
            out.push(pkt.to_bytes());
            seq = seq.wrapping_add(1);
        }
    }
    out
}

/// Parses and depacketizes every datagram; returns the frames out.
fn depacketize(datagrams: &[Bytes], out: &mut Vec<DepackOutput>) -> usize {
    let mut d = Depacketizer::new(DepackConfig::H264, TrackId(0), 90_000);
    let mut frames = 0;
    for dg in datagrams {
        if let Ok(pkt) = RtpPacket::parse(dg.clone()) {
            d.push(&pkt, out);
            frames += out
                .iter()
                .filter(|o| matches!(o, DepackOutput::Frame(_)))
                .count();
            out.clear();
        }
    }
    frames
}

fn bench_h264(c: &mut Criterion) {
    let mut group = c.benchmark_group("rtp_depacketize_h264");
    for (name, (track, frames)) in [("synthetic_2mbps", synthetic()), ("demo_clip", demo())] {
        let datagrams = record(&track, &frames);
        let bytes: usize = datagrams.iter().map(Bytes::len).sum();
        let mut out = Vec::new();
        assert_eq!(depacketize(&datagrams, &mut out), frames.len());
        eprintln!(
            "{name}: {} frames, {} packets, {} bytes",
            frames.len(),
            datagrams.len(),
            bytes
        );
        group.throughput(Throughput::Elements(frames.len() as u64));
        group.bench_function(format!("{name}/frames"), |b| {
            b.iter(|| depacketize(black_box(&datagrams), &mut out))
        });
        group.throughput(Throughput::Elements(datagrams.len() as u64));
        group.bench_function(format!("{name}/packets"), |b| {
            b.iter(|| depacketize(black_box(&datagrams), &mut out))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_h264);
criterion_main!(benches);
