//! AAC → Opus transcoding cost: one iteration transcodes about one second of a continuous
//! stream (43 AAC frames at 44.1 kHz, 0.9985 s; 47 at 48 kHz, 1.003 s), so the time per
//! iteration is the CPU time per second of audio.
//! The target (issue 14) is at most 1 % of a core, 10 ms per second, for 44.1 kHz stereo
//! at 128 kbit/s. Input: the ffmpeg fixtures of `tests/data/` (see its README), replayed
//! in a loop with continuous pts.

use bytes::Bytes;
use corecast::media::transcode::{TranscodeConfig, Transcoder};
use corecast::media::{Codec, Frame, MediaKind, ParamSets, Track, TrackId};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

/// 2 s of a 1 kHz sine, 44.1 kHz stereo AAC-LC at 128 kbit/s, ADTS.
const STEREO_44100: &[u8] = include_bytes!("../tests/data/ffmpeg_sine1k_44100_stereo_128k.aac");
/// 1 s of a 1 kHz sine, 48 kHz mono AAC-LC at 64 kbit/s, ADTS.
const MONO_48000: &[u8] = include_bytes!("../tests/data/ffmpeg_sine1k_48000_mono_64k.aac");

/// Splits ADTS into an AudioSpecificConfig and raw access units (test input only).
fn adts(data: &[u8]) -> (Bytes, Vec<Bytes>) {
    let mut units = Vec::new();
    let mut asc = None;
    let mut pos = 0;
    while let Some(h) = data.get(pos..pos + 7) {
        let header_len = if h[1] & 1 == 1 { 7 } else { 9 };
        let len = (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        let object_type = u16::from(h[2] >> 6) + 1;
        let freq_index = u16::from((h[2] >> 2) & 0xF);
        let channels = u16::from(((h[2] & 1) << 2) | (h[3] >> 6));
        let bits = (object_type << 11) | (freq_index << 7) | (channels << 3);
        asc.get_or_insert(Bytes::copy_from_slice(&bits.to_be_bytes()));
        units.push(Bytes::copy_from_slice(&data[pos + header_len..pos + len]));
        pos += len;
    }
    (asc.expect("ADTS frames"), units)
}

fn bench_one(c: &mut Criterion, name: &str, fixture: &[u8], rate: u32) {
    let (asc, units) = adts(fixture);
    let mut track = Track::new(TrackId(1), Codec::Aac, rate);
    track.params = ParamSets {
        audio_config: Some(asc),
        ..ParamSets::default()
    };
    let mut t = Transcoder::new(&track, TrackId(2), &TranscodeConfig::default()).expect("new");
    let mut n = 0usize;
    // AAC frames in about one second.
    let frames_per_iter = (rate as usize + 512) / 1024;
    c.bench_function(name, |b| {
        b.iter(|| {
            for _ in 0..frames_per_iter {
                t.handle_frame(&Frame {
                    track: TrackId(1),
                    kind: MediaKind::Audio,
                    keyframe: true,
                    dts: 1024 * n as i64,
                    pts: 1024 * n as i64,
                    data: units[n % units.len()].clone(),
                });
                n += 1;
                while let Some(f) = t.poll_frame() {
                    black_box(f);
                }
            }
        })
    });
    let stats = t.stats();
    assert_eq!(
        stats.decode_errors + stats.encode_errors + stats.discontinuities,
        0
    );
}

fn bench_transcode(c: &mut Criterion) {
    bench_one(
        c,
        "transcode aac 44.1k stereo 128k -> opus, 1 s",
        STEREO_44100,
        44_100,
    );
    bench_one(
        c,
        "transcode aac 48k mono 64k -> opus, 1 s",
        MONO_48000,
        48_000,
    );
}

criterion_group!(benches, bench_transcode);
criterion_main!(benches);
