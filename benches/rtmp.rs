//! RTMP protocol core: chunk parsing, AMF0 decoding and the fan-out chunking cost.

use bytes::{Bytes, BytesMut};
use corecast::rtmp::proto::amf0::{self, Amf0Value};
use corecast::rtmp::proto::chunk::{ChunkReader, MSG_VIDEO, encode_message};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

/// Number of video messages in the parse buffer.
const MESSAGES: usize = 1000;
/// Body length of each video message (~4 KiB).
const VIDEO_LEN: usize = 4000;

/// `MESSAGES` video messages chunked at `chunk_size` on csid 7.
fn video_stream(chunk_size: usize) -> Bytes {
    let body: Vec<u8> = (0..VIDEO_LEN).map(|i| (i * 7) as u8).collect();
    let mut out = BytesMut::new();
    for i in 0..MESSAGES {
        encode_message(
            7,
            MSG_VIDEO,
            1,
            (i * 33) as u32,
            &body,
            chunk_size,
            &mut out,
        );
    }
    out.freeze()
}

/// Reads every message; returns how many.
fn read_all(reader: &mut ChunkReader, mut buf: BytesMut) -> usize {
    let mut n = 0;
    while let Ok(Some(m)) = reader.read(&mut buf) {
        black_box(&m.body);
        n += 1;
    }
    n
}

fn bench_chunk_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("rtmp_chunk_read");
    for chunk_size in [4096u32, 128] {
        let stream = video_stream(chunk_size as usize);
        let new_reader = || {
            let mut r = ChunkReader::new(8 << 20);
            r.set_chunk_size(chunk_size).unwrap();
            r
        };
        assert_eq!(
            read_all(&mut new_reader(), BytesMut::from(&stream[..])),
            MESSAGES
        );
        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_function(format!("1000x4000B video @{chunk_size}"), |b| {
            b.iter_batched(
                || (new_reader(), BytesMut::from(&stream[..])),
                |(mut r, buf)| read_all(&mut r, buf),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// ffmpeg's `connect` command body.
fn connect_body() -> Vec<u8> {
    amf0::encode_all(&[
        Amf0Value::string("connect"),
        Amf0Value::Number(1.0),
        Amf0Value::object([
            ("app", Amf0Value::string("live")),
            ("type", Amf0Value::string("nonprivate")),
            (
                "flashVer",
                Amf0Value::string("FMLE/3.0 (compatible; Lavf61.7.100)"),
            ),
            ("tcUrl", Amf0Value::string("rtmp://127.0.0.1:1935/live")),
        ]),
    ])
}

/// A typical ffmpeg `onMetaData` body (string + ECMA array).
fn metadata_body() -> Vec<u8> {
    let n = |k: &str, v: f64| (k.to_owned(), Amf0Value::Number(v));
    amf0::encode_all(&[
        Amf0Value::string("onMetaData"),
        Amf0Value::EcmaArray(vec![
            n("duration", 0.0),
            n("width", 1280.0),
            n("height", 720.0),
            n("videodatarate", 2500.0),
            n("framerate", 30.0),
            n("videocodecid", 7.0),
            n("audiodatarate", 128.0),
            n("audiosamplerate", 48000.0),
            n("audiosamplesize", 16.0),
            ("stereo".into(), Amf0Value::Boolean(true)),
            n("audiocodecid", 10.0),
            ("encoder".into(), Amf0Value::string("Lavf61.7.100")),
            n("filesize", 0.0),
        ]),
    ])
}

fn bench_amf0(c: &mut Criterion) {
    let connect = connect_body();
    let meta = metadata_body();
    assert_eq!(amf0::decode_all(&connect).unwrap().len(), 3);
    assert_eq!(amf0::decode_all(&meta).unwrap().len(), 2);
    let mut group = c.benchmark_group("amf0_decode");
    group.throughput(Throughput::Bytes(connect.len() as u64));
    group.bench_function("connect", |b| {
        b.iter(|| amf0::decode_all(black_box(&connect)))
    });
    group.throughput(Throughput::Bytes(meta.len() as u64));
    group.bench_function("onMetaData", |b| {
        b.iter(|| amf0::decode_all(black_box(&meta)))
    });
    group.finish();
}

fn bench_fanout(c: &mut Criterion) {
    let frame: Vec<u8> = (0..30_000u32).map(|i| (i * 13) as u8).collect();
    let mut group = c.benchmark_group("rtmp_fanout");
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("encode_message 30kB @4096", |b| {
        b.iter(|| {
            let mut out = BytesMut::with_capacity(31_000);
            encode_message(7, MSG_VIDEO, 1, 40, black_box(&frame), 4096, &mut out);
            out.freeze()
        })
    });
    group.bench_function("encode once + 1000 Bytes::clone", |b| {
        let mut players: Vec<Bytes> = Vec::with_capacity(1000);
        b.iter(|| {
            let mut out = BytesMut::with_capacity(31_000);
            encode_message(7, MSG_VIDEO, 1, 40, black_box(&frame), 4096, &mut out);
            let shared = out.freeze();
            players.clear();
            for _ in 0..1000 {
                players.push(shared.clone());
            }
            black_box(&players);
        })
    });
    group.finish();
}

criterion_group!(benches, bench_chunk_parse, bench_amf0, bench_fanout);
criterion_main!(benches);
