use super::*;
use bytes::Bytes;

const V: TrackId = TrackId(0);
const A: TrackId = TrackId(1);
/// Video clock.
const VC: u32 = 90_000;
/// Audio clock (AAC at 48 kHz: 1024 samples a frame).
const AC: u32 = 48_000;
const HOUR: i64 = 3600;

fn frame(track: TrackId, kind: MediaKind, dts: i64, pts: i64) -> Frame {
    Frame {
        track,
        kind,
        keyframe: true,
        dts,
        pts,
        data: Bytes::new(),
    }
}

/// Rebases video frames at `dts` (pts = dts); returns the output dts and the jumps.
fn video(c: &mut Continuity, dts: &[i64]) -> (Vec<i64>, Vec<Jump>) {
    let mut jumps = Vec::new();
    let out = dts
        .iter()
        .map(|&d| {
            let mut f = frame(V, MediaKind::Video, d, d);
            jumps.extend(c.rebase(&mut f, VC));
            assert_eq!(f.pts, f.dts);
            f.dts
        })
        .collect();
    (out, jumps)
}

fn audio(c: &mut Continuity, dts: i64) -> (i64, Option<Jump>) {
    let mut f = frame(A, MediaKind::Audio, dts, dts);
    let j = c.rebase(&mut f, AC);
    (f.dts, j)
}

#[test]
fn a_continuous_timeline_passes_unchanged() {
    let mut c = Continuity::new();
    let ts = [1000, 4000, 7000, 10_000, 10_000 + 9 * 90_000];
    let (out, jumps) = video(&mut c, &ts);
    assert_eq!(out, ts);
    assert!(jumps.is_empty());
}

#[test]
fn a_forward_jump_continues_one_frame_interval_on() {
    let mut c = Continuity::new();
    let j = HOUR * 90_000;
    let (out, jumps) = video(&mut c, &[0, 3000, 6000, 6000 + j, 9000 + j, 12_000 + j]);
    assert_eq!(out, [0, 3000, 6000, 9000, 12_000, 15_000]);
    assert_eq!(jumps.len(), 1);
    assert_eq!(jumps[0].track, V);
    // The clock went 3600 s less one frame beyond where the next frame was due.
    assert_eq!(jumps[0].by_micros, HOUR * 1_000_000 - 33_333);
    assert!((jumps[0].secs() - 3600.0).abs() < 0.1);
    // 10 s exactly is no jump.
    let (out, jumps) = video(&mut c, &[12_000 + j + 900_000]);
    assert_eq!(out, [915_000]);
    assert!(jumps.is_empty());
}

#[test]
fn a_clock_restarting_at_zero_continues() {
    let mut c = Continuity::new();
    let s60 = 60 * 90_000;
    let (out, jumps) = video(&mut c, &[s60, s60 + 3000, 0, 3000, 6000]);
    assert_eq!(out, [s60, s60 + 3000, s60 + 6000, s60 + 9000, s60 + 12_000]);
    assert_eq!(jumps.len(), 1);
    assert!(
        (jumps[0].secs() + 60.067).abs() < 0.001,
        "{}",
        jumps[0].secs()
    );
    // 1.5 s back is a jump too; the interval is the latest one.
    let (out, jumps) = video(&mut c, &[6000 - 135_000, 6000 - 132_000]);
    assert_eq!(out, [s60 + 15_000, s60 + 18_000]);
    assert_eq!(jumps.len(), 1);
}

#[test]
fn small_reordering_is_kept() {
    let mut c = Continuity::new();
    // 0.9 s back, then on from the latest.
    let (out, jumps) = video(&mut c, &[90_000, 93_000, 12_000, 96_000]);
    assert_eq!(out, [90_000, 93_000, 12_000, 96_000]);
    assert!(jumps.is_empty());
}

#[test]
fn the_default_interval_before_any_is_known() {
    let mut c = Continuity::new();
    let (out, _) = video(&mut c, &[500, 500 + 20 * 90_000]);
    assert_eq!(out, [500, 3500]);
    let mut c = Continuity::new();
    assert_eq!(audio(&mut c, 0).0, 0);
    // 20 ms of 48 kHz.
    assert_eq!(audio(&mut c, 30 * 48_000).0, 960);
    // An audio jump continues by the previous delta.
    let mut c = Continuity::new();
    for d in [0, 1024, 2048] {
        audio(&mut c, d);
    }
    let (out, jump) = audio(&mut c, 2048 + HOUR * 48_000);
    assert_eq!(out, 3072);
    assert!(jump.is_some());
}

#[test]
fn audio_and_video_stay_in_sync_across_a_jump() {
    let mut c = Continuity::new();
    // Interleaved, audio 20 ms ahead in the mux: video at n/30 s, audio at n*1024/48000 s.
    let mut last = (0i64, 0i64);
    let mut jumps = 0;
    for n in 0..200i64 {
        let shift = if n >= 100 { HOUR } else { 0 };
        let vin = n * 3000 + shift * 90_000;
        let ain = (n * 1024 + 960) + shift * 48_000;
        let (v, jv) = video(&mut c, &[vin]);
        let (a, ja) = audio(&mut c, ain);
        jumps += jv.len() + usize::from(ja.is_some());
        // The wall-time distance between the two is what the publisher sent.
        let got = ticks_to_micros(a, AC) - ticks_to_micros(v[0], VC);
        let sent = ticks_to_micros(ain - shift * 48_000, AC) - ticks_to_micros(n * 3000, VC);
        assert!(
            (got - sent).abs() <= 21,
            "frame {n}: {got} µs apart, sent {sent}"
        );
        if n > 0 {
            assert!(v[0] > last.0 && a > last.1, "frame {n} goes back");
        }
        last = (v[0], a);
    }
    // Video saw the jump; audio followed the shared offset.
    assert_eq!(jumps, 1);
    assert_eq!(last.0, 199 * 3000);
}

#[test]
fn a_track_silent_for_a_while_is_no_jump() {
    let mut c = Continuity::new();
    audio(&mut c, 0);
    video(&mut c, &(0..600).map(|n| n * 3000).collect::<Vec<_>>());
    // Audio resumes 20 s later, in step with video: as sent.
    assert_eq!(audio(&mut c, 20 * 48_000), (20 * 48_000, None));
}

#[test]
fn b_frame_offsets_are_kept() {
    let mut c = Continuity::new();
    let j = HOUR * 90_000;
    // Decode order I P B: pts - dts of 6000 / 3000 ticks.
    let input = [
        (0, 6000),
        (3000, 12_000),
        (6000, 9000),
        (9000 + j, 15_000 + j),
    ];
    let out: Vec<(i64, i64)> = input
        .iter()
        .map(|&(d, p)| {
            let mut f = frame(V, MediaKind::Video, d, p);
            c.rebase(&mut f, VC);
            (f.dts, f.pts)
        })
        .collect();
    assert_eq!(out[..3], input[..3]);
    assert_eq!(out[3], (9000, 15_000));
}

#[test]
fn a_track_changing_its_clock_keeps_the_stream_offset() {
    let mut c = Continuity::new();
    video(&mut c, &[0, 3000, 3000 + HOUR * 90_000]);
    // The audio track appears after the jump, in step with the publisher's clock.
    let (a, j) = audio(&mut c, HOUR * 48_000);
    assert_eq!(j, None);
    assert_eq!(a, micros_to_ticks(ticks_to_micros(6000, VC), AC) - 1600);
    // Its clock changes (44.1 kHz): the same offset applies.
    let mut f = frame(
        A,
        MediaKind::Audio,
        HOUR * 44_100 + 441,
        HOUR * 44_100 + 441,
    );
    assert_eq!(c.rebase(&mut f, 44_100), None);
    assert_eq!(
        f.dts,
        micros_to_ticks(ticks_to_micros(6000, VC), 44_100) - 1470 + 441
    );
}

#[test]
fn extreme_times_saturate_without_panicking() {
    let mut c = Continuity::new();
    for d in [i64::MAX, i64::MIN, 0, i64::MAX / 2, -5, i64::MIN] {
        let mut f = frame(V, MediaKind::Video, d, d.saturating_add(3000));
        c.rebase(&mut f, VC);
    }
    let mut f = frame(A, MediaKind::Audio, i64::MIN, i64::MAX);
    c.rebase(&mut f, 0);
    assert_eq!(rescale(i64::MAX, 1_000_000, 1), i64::MAX);
    assert_eq!(rescale(-7, 1, 2), -4);
    assert_eq!(rescale(7, 1, 2), 4);
}

#[test]
fn jump_limits_and_intervals() {
    let l = JumpLimits::new(90_000);
    assert!(!l.is_jump(900_000) && l.is_jump(900_001));
    assert!(!l.is_jump(-90_000) && l.is_jump(-90_001));
    assert_eq!(JumpLimits::new(u32::MAX).capped(100).forward, 100);
    let mut i = FrameInterval::new(90_000, MediaKind::Video);
    assert_eq!(i.get(), 3000);
    i.observe(90_001); // a pause
    i.observe(-10); // reordering
    assert_eq!(i.get(), 3000);
    i.observe(3600);
    assert_eq!(i.get(), 3600);
    i.set(0);
    assert_eq!(i.get(), 3600);
}

#[test]
fn jump_reports_are_rate_limited_by_stream_time() {
    let mut r = JumpReports::new();
    assert_eq!(r.report(0), Some(0));
    assert_eq!(r.report(1_000_000), None);
    assert_eq!(r.report(9_999_999), None);
    assert_eq!(r.report(10_000_000), Some(2));
    assert_eq!(r.report(10_000_001), None);
}

#[test]
fn a_restart_continues_from_the_latest_frame_whatever_the_new_clock() {
    let mut c = Continuity::new();
    // A first source's first frame passes through.
    c.restart();
    assert_eq!(video(&mut c, &[500, 3500]), (vec![500, 3500], vec![]));
    audio(&mut c, 48_000 * 3500 / 90_000);
    // A new publisher whose clock is 0.03 s behind: no reordering, time goes on.
    c.restart();
    let (out, jumps) = video(&mut c, &[3500 - 2700, 3500 - 2700 + 3000]);
    assert_eq!(out, [6500, 9500]);
    assert!(jumps.is_empty());
    // Audio follows the same offset.
    assert_eq!(
        audio(&mut c, 48_000 * 3500 / 90_000).0,
        48_000 * 3500 / 90_000 + 1440 + 1600
    );
}
