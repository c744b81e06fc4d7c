use super::*;
use crate::media::ParamSets;

/// 2 s of a 1 kHz sine (-6 dBFS), 44.1 kHz stereo AAC-LC at 128 kbit/s, ADTS (ffmpeg).
const SINE_44100_STEREO: &[u8] =
    include_bytes!("../../../tests/data/ffmpeg_sine1k_44100_stereo_128k.aac");
/// 1 s of a 1 kHz sine, 48 kHz mono AAC-LC at 64 kbit/s, ADTS (ffmpeg).
const SINE_48000_MONO: &[u8] =
    include_bytes!("../../../tests/data/ffmpeg_sine1k_48000_mono_64k.aac");
/// 1 s of silence with one 0.9 impulse at source sample 22050, 44.1 kHz stereo, ADTS
/// (ffmpeg). ffmpeg's encoder primes with 1024 samples, so in the AAC stream's own sample
/// timeline (frame i starts at 1024·i) the click is at 23074: `ffmpeg -i … -f f32le`
/// puts it there too.
const CLICK_44100_STEREO: &[u8] =
    include_bytes!("../../../tests/data/ffmpeg_click_22050_44100_stereo_128k.aac");
const CLICK_AT: i64 = 22050 + 1024;

/// Splits an ADTS stream into its AudioSpecificConfig and raw access units.
fn adts(data: &[u8]) -> (Vec<u8>, Vec<Bytes>) {
    let mut units = Vec::new();
    let mut asc = None;
    let mut pos = 0;
    while pos + 7 <= data.len() {
        let h = &data[pos..pos + 7];
        assert_eq!((h[0], h[1] & 0xF6), (0xFF, 0xF0), "ADTS sync at {pos}");
        let header_len = if h[1] & 1 == 1 { 7 } else { 9 };
        let profile = h[2] >> 6;
        let freq_index = (h[2] >> 2) & 0xF;
        let channel_config = ((h[2] & 1) << 2) | (h[3] >> 6);
        let len = (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        asc.get_or_insert_with(|| {
            // AudioSpecificConfig: object type (profile + 1), frequency index, channels.
            let bits = (u16::from(profile + 1) << 11)
                | (u16::from(freq_index) << 7)
                | (u16::from(channel_config) << 3);
            bits.to_be_bytes().to_vec()
        });
        units.push(Bytes::copy_from_slice(&data[pos + header_len..pos + len]));
        pos += len;
    }
    (asc.expect("at least one ADTS frame"), units)
}

fn aac_track(asc: &[u8], clock_rate: u32) -> Track {
    let mut track = Track::new(TrackId(1), Codec::Aac, clock_rate);
    track.params = ParamSets {
        audio_config: Some(Bytes::copy_from_slice(asc)),
        ..ParamSets::default()
    };
    track
}

fn aac_frame(pts: i64, data: Bytes) -> Frame {
    Frame {
        track: TrackId(1),
        kind: MediaKind::Audio,
        keyframe: true,
        dts: pts,
        pts,
        data,
    }
}

fn drain(t: &mut Transcoder, out: &mut Vec<Frame>) {
    while let Some(f) = t.poll_frame() {
        out.push(f);
    }
}

/// Transcodes the ADTS stream with frame i at `base + 1024·i` (clock = AAC rate), flushed.
fn transcode(data: &[u8], base: i64) -> (Transcoder, Vec<Frame>) {
    let (asc, units) = adts(data);
    let rate = AudioSpecificConfig::parse(&asc).expect("asc").sample_rate;
    let mut t = Transcoder::new(
        &aac_track(&asc, rate),
        TrackId(2),
        &TranscodeConfig::default(),
    )
    .expect("transcoder");
    let mut out = Vec::new();
    for (i, unit) in units.into_iter().enumerate() {
        t.handle_frame(&aac_frame(base + 1024 * i as i64, unit));
        assert!(t.pending_frames() <= t.max_pending_frames());
        drain(&mut t, &mut out);
    }
    t.flush();
    drain(&mut t, &mut out);
    (t, out)
}

/// Decodes Opus frames with libopus onto their timeline: returns the first pts and the
/// interleaved samples from there (gaps filled with silence).
fn decode_opus(frames: &[Frame], channels: usize) -> (i64, Vec<f32>) {
    let ch = if channels == 1 {
        opus::Channels::Mono
    } else {
        opus::Channels::Stereo
    };
    let mut dec = opus::Decoder::new(48_000, ch).expect("decoder");
    let start = frames.first().expect("output").pts;
    let mut pcm = Vec::new();
    let mut buf = vec![0.0f32; 5760 * channels];
    for f in frames {
        assert_eq!(
            opus::packet::get_nb_channels(&f.data).expect("toc"),
            ch,
            "channel count in the Opus TOC"
        );
        let n = dec.decode_float(&f.data, &mut buf, false).expect("decodes");
        assert_eq!(n, OPUS_FRAME_SAMPLES);
        let at = usize::try_from(f.pts - start).expect("monotonic") * channels;
        pcm.resize(at, 0.0);
        pcm.extend_from_slice(&buf[..n * channels]);
    }
    (start, pcm)
}

/// Power of `freq` in one channel of interleaved 48 kHz samples (Goertzel).
fn goertzel(pcm: &[f32], channels: usize, channel: usize, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / 48_000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for x in pcm.iter().skip(channel).step_by(channels) {
        let s = f64::from(*x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

fn assert_tone_1khz(pcm: &[f32], channels: usize) {
    // Skip the first 100 ms (priming and encoder ramp-up).
    let body = &pcm[4800 * channels..pcm.len() - 4800 * channels];
    for channel in 0..channels {
        let tone = goertzel(body, channels, channel, 1000.0);
        for other in [
            250.0, 500.0, 750.0, 1250.0, 1500.0, 2000.0, 3000.0, 5000.0, 10_000.0,
        ] {
            let p = goertzel(body, channels, channel, other);
            assert!(
                tone > 1000.0 * p,
                "channel {channel}: 1 kHz {tone} vs {other} Hz {p}"
            );
        }
    }
}

fn assert_pts_steps(frames: &[Frame]) {
    for pair in frames.windows(2) {
        assert_eq!(pair[1].pts - pair[0].pts, 960, "pts step");
        assert_eq!(pair[1].dts, pair[1].pts);
    }
}

#[test]
fn sine_44100_stereo_becomes_a_1khz_stereo_opus_tone() {
    let base = 441_000; // 10 s into the stream
    let (t, frames) = transcode(SINE_44100_STEREO, base);
    assert_eq!(t.output_track().channels, Some(2));
    assert_eq!(t.output_track().clock_rate, 48_000);
    assert_eq!(t.delay(), 160 + 312);
    assert_pts_steps(&frames);
    assert!(frames.iter().all(|f| f.track == TrackId(2) && f.keyframe));
    let (start, pcm) = decode_opus(&frames, 2);
    assert_tone_1khz(&pcm, 2);

    // The output starts `delay` before the first AAC frame and covers all its input.
    let stats = t.stats();
    let anchor = 480_000;
    assert_eq!(start, anchor - 472);
    let input = rescale(stats.frames_in as i64 * 1024, 44_100, 48_000);
    let end = frames.last().expect("frames").pts + 960;
    assert!((0..960).contains(&(end - (anchor + input))), "end {end}");
    assert_eq!(stats.frames_out, frames.len() as u64);
    assert_eq!(
        (
            stats.decode_errors,
            stats.encode_errors,
            stats.discontinuities
        ),
        (0, 0, 0)
    );
    // ~64 kbit/s per channel: 2 s of stereo near 32 kB.
    let bytes: usize = frames.iter().map(|f| f.data.len()).sum();
    assert!((20_000..45_000).contains(&bytes), "{bytes} bytes");
}

#[test]
fn sine_48000_mono_is_not_resampled() {
    let (t, frames) = transcode(SINE_48000_MONO, 0);
    assert_eq!(t.output_track().channels, Some(1));
    assert_eq!(t.delay(), 312, "only the encoder look-ahead");
    assert_eq!(t.max_pending_frames(), 960 + 1024);
    assert_pts_steps(&frames);
    assert_eq!(frames[0].pts, -312);
    let (_, pcm) = decode_opus(&frames, 1);
    assert_tone_1khz(&pcm, 1);
    let input = t.stats().frames_in as i64 * 1024;
    let end = frames.last().expect("frames").pts + 960;
    assert!((0..960).contains(&(end - input)), "end {end}");
}

#[test]
fn click_comes_out_at_its_aac_pts() {
    for base in [0, 44_100 * 3600] {
        let (_, frames) = transcode(CLICK_44100_STEREO, base);
        let (start, pcm) = decode_opus(&frames, 2);
        let peak = (0..pcm.len())
            .max_by(|&a, &b| pcm[a].abs().total_cmp(&pcm[b].abs()))
            .expect("samples");
        let at = start + (peak / 2) as i64;
        let expected = rescale(base + CLICK_AT, 44_100, 48_000);
        assert!(
            (at - expected).abs() <= 48,
            "click at {at}, expected {expected} (±1 ms); off by {}",
            at - expected
        );
    }
}

/// Feeds `units` with the given pts, draining the output.
fn feed(t: &mut Transcoder, frames: impl IntoIterator<Item = (i64, Bytes)>) -> Vec<Frame> {
    let mut out = Vec::new();
    for (pts, unit) in frames {
        t.handle_frame(&aac_frame(pts, unit));
        assert!(t.pending_frames() <= t.max_pending_frames());
        drain(t, &mut out);
    }
    out
}

fn sine_transcoder(clock_rate: u32) -> (Transcoder, Vec<Bytes>) {
    let (asc, units) = adts(SINE_44100_STEREO);
    let t = Transcoder::new(
        &aac_track(&asc, clock_rate),
        TrackId(2),
        &TranscodeConfig::default(),
    )
    .expect("transcoder");
    (t, units)
}

#[test]
fn pts_jump_restarts_the_pipeline_at_the_new_pts() {
    let (mut t, units) = sine_transcoder(44_100);
    let (first, second) = units.split_at(40);
    let before = feed(
        &mut t,
        first
            .iter()
            .enumerate()
            .map(|(i, u)| (1024 * i as i64, u.clone())),
    );
    // The publisher jumps 5 s ahead.
    let jump = 5 * 44_100;
    let after = feed(
        &mut t,
        second
            .iter()
            .enumerate()
            .map(|(i, u)| (jump + 1024 * i as i64, u.clone())),
    );
    assert_eq!(t.stats().discontinuities, 1);
    assert_pts_steps(&before);
    assert_pts_steps(&after);
    assert_eq!(
        after[0].pts,
        5 * 48_000 - 472,
        "re-anchored, delay compensated"
    );
    assert!(before.last().expect("before").pts < after[0].pts);
    // The restarted pipeline still makes the tone.
    let (_, pcm) = decode_opus(&after, 2);
    assert_tone_1khz(&pcm, 2);

    // And back to an earlier time (a publisher restarting its clock).
    let again = feed(&mut t, first.iter().map(|u| (0, u.clone())).take(1));
    assert_eq!(t.stats().discontinuities, 2);
    assert_eq!(again[0].pts, -472);
}

#[test]
fn rtmp_millisecond_rounding_is_not_a_discontinuity() {
    // FLV carries milliseconds; the demuxer scales them back to the 44.1 kHz clock.
    let (mut t, units) = sine_transcoder(44_100);
    let pts = |i: i64| (i * 1024 * 1000 + 22_050) / 44_100 * 441 / 10;
    let out = feed(
        &mut t,
        units
            .iter()
            .enumerate()
            .map(|(i, u)| (pts(i as i64), u.clone())),
    );
    assert_eq!(t.stats().discontinuities, 0);
    assert_pts_steps(&out);
}

#[test]
fn track_clock_other_than_the_sample_rate() {
    // An RTSP source may announce a 90 kHz clock for AAC.
    let (mut t, units) = sine_transcoder(90_000);
    let base = 900_000; // 10 s
    let out = feed(
        &mut t,
        units
            .iter()
            .enumerate()
            .map(|(i, u)| (base + rescale(1024 * i as i64, 44_100, 90_000), u.clone())),
    );
    assert_eq!(t.stats().discontinuities, 0);
    assert_pts_steps(&out);
    assert_eq!(out[0].pts, 480_000 - 472);
}

#[test]
fn undecodable_frames_are_counted_and_replaced_by_silence() {
    let (mut t, units) = sine_transcoder(44_100);
    // A program config element (unsupported), a coupling channel element (unsupported),
    // an empty payload and a truncated one.
    let bad = [
        Bytes::from_static(&[0xA0, 0, 0, 0]),
        Bytes::from_static(&[0x40, 0, 0, 0]),
        Bytes::new(),
        units[10].slice(..3),
    ];
    let frames = units.iter().enumerate().map(|(i, u)| {
        let data = match i {
            20..=23 => bad[i - 20].clone(),
            _ => u.clone(),
        };
        (1024 * i as i64, data)
    });
    let out = feed(&mut t, frames);
    let stats = t.stats();
    assert_eq!(stats.decode_errors, 4);
    assert_eq!(stats.discontinuities, 0);
    assert_eq!(stats.encode_errors, 0);
    assert_pts_steps(&out);
    // The gap is silent: ~93 ms starting near 20·1024/44.1 kHz = 464 ms.
    let (start, pcm) = decode_opus(&out, 2);
    let at = |ms: i64| (usize::try_from(ms * 48 - start).expect("after start")) * 2;
    let energy = |from: usize, to: usize| pcm[from..to].iter().map(|x| x * x).sum::<f32>();
    assert!(energy(at(490), at(540)) < 0.001 * energy(at(300), at(350)));
}

#[test]
fn bitrate_is_configurable() {
    let (asc, units) = adts(SINE_44100_STEREO);
    let size = |bitrate_per_channel| {
        let config = TranscodeConfig {
            bitrate_per_channel,
        };
        let mut t = Transcoder::new(&aac_track(&asc, 44_100), TrackId(2), &config).expect("new");
        let out = feed(
            &mut t,
            units
                .iter()
                .enumerate()
                .map(|(i, u)| (1024 * i as i64, u.clone())),
        );
        out.iter().map(|f| f.data.len()).sum::<usize>()
    };
    let (low, high) = (size(16_000), size(128_000));
    assert!(
        high > 3 * low,
        "16 kbit/s: {low} bytes, 128 kbit/s: {high} bytes"
    );
    let err = Transcoder::new(
        &aac_track(&asc, 44_100),
        TrackId(2),
        &TranscodeConfig {
            bitrate_per_channel: 1_000,
        },
    )
    .expect_err("too low");
    assert!(matches!(err, TranscodeError::InvalidBitrate(1_000)));
}

fn build(asc: &[u8]) -> Result<Transcoder, TranscodeError> {
    Transcoder::new(
        &aac_track(asc, 44_100),
        TrackId(2),
        &TranscodeConfig::default(),
    )
}

#[test]
fn he_aac_and_other_unsupported_configs_are_refused_by_name() {
    let he = |object_type| {
        AudioSpecificConfig {
            object_type,
            sample_rate: 24_000,
            channels: 2,
        }
        .to_bytes()
    };
    // HE-AAC with explicit SBR signalling, as OBS's and FDK's encoders write it.
    let err = build(&[0x2B, 0x11, 0x88]).expect_err("HE-AAC");
    assert!(matches!(
        err,
        TranscodeError::UnsupportedObjectType { object_type: 5, .. }
    ));
    assert!(err.to_string().contains("HE-AAC"), "{err}");
    let err = build(&he(29)).expect_err("HE-AACv2");
    assert!(err.to_string().contains("(HE-AACv2)"), "{err}");
    let err = build(&he(1)).expect_err("Main");
    assert!(err.to_string().contains("(Main)"), "{err}");

    // 5.1 and a program config element.
    assert!(matches!(
        build(&[0x11, 0xB0]),
        Err(TranscodeError::UnsupportedChannels(6))
    ));
    assert!(matches!(
        build(&[0x12, 0x00]),
        Err(TranscodeError::UnsupportedChannels(0))
    ));
    // A 24-bit explicit rate.
    let odd = AudioSpecificConfig {
        object_type: 2,
        sample_rate: 12_345,
        channels: 2,
    };
    assert!(matches!(
        build(&odd.to_bytes()),
        Err(TranscodeError::UnsupportedSampleRate(12_345))
    ));
    // 960-sample frames (frameLengthFlag): the decoder refuses them.
    assert!(matches!(
        build(&[0x12, 0x14]),
        Err(TranscodeError::Decoder(_))
    ));
    assert!(matches!(
        build(&[0x12]),
        Err(TranscodeError::Config(AacError::Truncated))
    ));

    let mut track = aac_track(&[0x12, 0x10], 44_100);
    track.params.audio_config = None;
    let config = TranscodeConfig::default();
    assert!(matches!(
        Transcoder::new(&track, TrackId(2), &config),
        Err(TranscodeError::MissingConfig)
    ));
    track.codec = Codec::Opus;
    assert!(matches!(
        Transcoder::new(&track, TrackId(2), &config),
        Err(TranscodeError::NotAac("opus"))
    ));
    let mut track = aac_track(&[0x12, 0x10], 0);
    assert!(matches!(
        Transcoder::new(&track, TrackId(2), &config),
        Err(TranscodeError::ZeroClockRate)
    ));
    track.clock_rate = 44_100;
    assert!(Transcoder::new(&track, TrackId(2), &config).is_ok());
}

#[test]
fn every_standard_rate_and_layout_builds() {
    for rate in AAC_RATES {
        for channels in [1, 2] {
            let asc = AudioSpecificConfig {
                object_type: 2,
                sample_rate: rate,
                channels,
            };
            let t = build(&asc.to_bytes()).unwrap_or_else(|e| panic!("{rate} Hz: {e}"));
            // One Opus frame plus at most twice what one AAC frame resamples to.
            let bound = OPUS_FRAME_SAMPLES + 2 * AAC_FRAME_SAMPLES * 48_000 / rate as usize;
            assert!(t.max_pending_frames() <= bound, "{rate} Hz");
        }
    }
}

/// xorshift64*: deterministic noise for the mutation test.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

#[test]
fn mutated_frames_and_pts_never_panic() {
    let (mut t, units) = sine_transcoder(44_100);
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut pts = 0i64;
    for round in 0..2_000 {
        let mut data = units[round % units.len()].to_vec();
        match next(&mut rng) % 4 {
            0 => {
                let bit = next(&mut rng) as usize % (data.len() * 8).max(1);
                if let Some(b) = data.get_mut(bit / 8) {
                    *b ^= 1 << (bit % 8);
                }
            }
            1 => data.truncate(next(&mut rng) as usize % (data.len() + 1)),
            2 => {
                data = (0..next(&mut rng) % 64)
                    .map(|_| next(&mut rng) as u8)
                    .collect()
            }
            _ => {}
        }
        match next(&mut rng) % 50 {
            0 => pts = pts.wrapping_add(next(&mut rng) as i64),
            1 => t.flush(),
            _ => {}
        }
        feed(&mut t, [(pts, Bytes::from(data))]);
        pts = pts.wrapping_add(1024);
    }
    let stats = t.stats();
    assert_eq!(stats.frames_in, 2_000);
    assert!(stats.decode_errors > 0 && stats.frames_out > 0, "{stats:?}");
}
