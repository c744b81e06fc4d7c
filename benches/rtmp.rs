//! RTMP protocol core: chunk parsing, AMF0 decoding, the fan-out chunking cost, and a
//! publisher's media through the whole session (`handle_input` + `poll_output`).

use bytes::{Bytes, BytesMut};
use corecast::rtmp::proto::amf0::{self, Amf0Value};
use corecast::rtmp::proto::chunk::{ChunkReader, MSG_COMMAND_AMF0, MSG_VIDEO, encode_message};
use corecast::rtmp::proto::{Event, Input, Output, ServerSession, SessionConfig};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Instant;

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

/// A session through the handshake, `connect` and an accepted `publish` of `live/bench`.
fn publishing_session(now: Instant) -> ServerSession {
    let mut s = ServerSession::new(now, SessionConfig::default(), 1);
    let mut input = vec![0x03];
    input.resize(1 + 2 * 1536, 0);
    let mut out = BytesMut::new();
    encode_message(3, MSG_COMMAND_AMF0, 0, 0, &connect_body(), 128, &mut out);
    let publish = amf0::encode_all(&[
        Amf0Value::string("publish"),
        Amf0Value::Number(2.0),
        Amf0Value::Null,
        Amf0Value::string("bench"),
    ]);
    encode_message(4, MSG_COMMAND_AMF0, 1, 0, &publish, 128, &mut out);
    input.extend_from_slice(&out);
    s.handle_input(now, Input::Receive(&input))
        .expect("handshake, connect and publish");
    let mut requested = false;
    loop {
        match s.poll_output() {
            Output::Event(Event::PublishRequested { .. }) => requested = true,
            Output::Timeout(_) => break,
            _ => {}
        }
    }
    assert!(requested, "publish requested");
    s.accept_publish().expect("accept");
    while !matches!(s.poll_output(), Output::Timeout(_)) {}
    s
}

/// Feeds `stream` to `s` in 64 KiB reads (as the driver does) and drains it; returns the
/// number of media events.
fn ingest(s: &mut ServerSession, now: Instant, stream: &[u8]) -> usize {
    let mut media = 0;
    for read in stream.chunks(64 * 1024) {
        s.handle_input(now, Input::Receive(read))
            .expect("valid media");
        loop {
            match s.poll_output() {
                Output::Event(Event::Media { body, .. }) => {
                    black_box(body);
                    media += 1;
                }
                Output::Timeout(_) => break,
                _ => {}
            }
        }
    }
    media
}

fn bench_session(c: &mut Criterion) {
    #[allow(clippy::disallowed_methods)] // The benchmark's clock origin; no timer fires.
    let now = Instant::now();
    let stream = video_stream(128);
    assert_eq!(ingest(&mut publishing_session(now), now, &stream), MESSAGES);
    let mut group = c.benchmark_group("rtmp_session");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("publish 1000x4000B video @128", |b| {
        b.iter_batched(
            || publishing_session(now),
            |mut s| ingest(&mut s, now, &stream),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_chunk_parse,
    bench_amf0,
    bench_fanout,
    bench_session
);
criterion_main!(benches);
