#![no_main]
//! Builds an AAC → Opus transcoder from an arbitrary (or a known-good) AudioSpecificConfig
//! and feeds it arbitrary access units with arbitrary pts jumps, flushes and resets.

use bytes::Bytes;
use corecast::media::transcode::{TranscodeConfig, Transcoder};
use corecast::media::{Codec, Frame, MediaKind, ParamSets, Track, TrackId};
use libfuzzer_sys::fuzz_target;

/// AAC-LC 44.1 kHz stereo, 48 kHz mono, 8 kHz mono, 96 kHz stereo.
const GOOD_CONFIGS: [&[u8]; 4] = [&[0x12, 0x10], &[0x11, 0x88], &[0x15, 0x88], &[0x10, 0x10]];

fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let n = n.min(data.len());
    let (head, tail) = data.split_at(n);
    *data = tail;
    head
}

fuzz_target!(|input: &[u8]| {
    let mut data = input;
    let Some(&[mode, clock]) = take(&mut data, 2).first_chunk::<2>() else {
        return;
    };
    let config: Bytes = if mode & 0x80 != 0 {
        Bytes::from_static(GOOD_CONFIGS[usize::from(mode & 3)])
    } else {
        Bytes::copy_from_slice(take(&mut data, usize::from(mode & 7)))
    };
    let clock_rate =
        [44_100, 48_000, 8_000, 90_000, 1_000, 0, 96_000, 22_050][usize::from(clock & 7)];
    let mut track = Track::new(TrackId(1), Codec::Aac, clock_rate);
    track.params = ParamSets {
        audio_config: Some(config),
        ..ParamSets::default()
    };
    let Ok(mut t) = Transcoder::new(&track, TrackId(2), &TranscodeConfig::default()) else {
        return;
    };
    let mut pts: i64 = 0;
    while let Some(&[op, len]) = take(&mut data, 2).first_chunk::<2>() {
        match op & 0x0F {
            0 => pts = pts.wrapping_add(i64::from(op as i8) << 40),
            1 => pts = pts.wrapping_sub(1),
            2 => t.flush(),
            3 => t.reset(),
            _ => {}
        }
        let payload = Bytes::copy_from_slice(take(&mut data, usize::from(len) * 4));
        t.handle_frame(&Frame {
            track: TrackId(1),
            kind: MediaKind::Audio,
            keyframe: true,
            dts: pts,
            pts,
            data: payload,
        });
        assert!(t.pending_frames() <= t.max_pending_frames());
        while t.poll_frame().is_some() {}
        pts = pts.wrapping_add(i64::from(clock_rate) * 1024 / 44_100);
    }
    t.flush();
    while t.poll_frame().is_some() {}
});
