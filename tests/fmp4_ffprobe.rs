//! The fragmented-MP4 muxer against ffprobe as an independent reader: an ffmpeg-made FLV
//! (H.264 High with B-frames, AAC) goes through corecast's FLV demuxer and the muxer, and
//! ffprobe must see every frame with its times, keyframes and codec parameters.

mod common;

use bytes::Bytes;
use common::{ffprobe_json, require_tool};
use corecast::media::clip::Clip;
use corecast::media::fmp4::Muxer;
use corecast::media::{Frame, MediaKind};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One ms of the 90 kHz clock: FLV timestamps are whole milliseconds, so a 1/30 s step
/// arrives as 33 or 34 ms.
const MS: i64 = 90;
/// 1/30 s at 90 kHz.
const FRAME: i64 = 3000;

/// Makes a 4 s 640x360 30 fps H.264 High + 48 kHz AAC FLV with ffmpeg, `x264_opts` added.
fn make_flv(dir: &Path, x264_opts: &[&str]) -> PathBuf {
    require_tool("ffmpeg");
    let out = dir.join("in.flv");
    let status = Command::new("nice")
        .args(["-n", "19", "ffmpeg", "-v", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000"])
        .args(["-t", "4", "-c:v", "libx264", "-preset", "veryfast"])
        .args(["-profile:v", "high", "-g", "30", "-threads", "1"])
        .args(x264_opts)
        .args(["-c:a", "aac", "-f", "flv"])
        .arg(&out)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg failed to make the test FLV");
    out
}

/// Demuxes the FLV with corecast's code and muxes it to fMP4; returns the file and the
/// frames pushed.
fn mux(flv: &Path, mp4: &Path) -> Vec<Frame> {
    let data = std::fs::read(flv).expect("read flv");
    let clip = Clip::parse(Bytes::from(data), 8 << 20).expect("clip");
    let (tracks, frames) = clip.frames().expect("demux");
    assert_eq!(tracks.len(), 2, "tracks {tracks:?}");
    let mut muxer = Muxer::new(&tracks).expect("muxer");
    assert!(
        muxer.codecs().starts_with("avc1.64") && muxer.codecs().ends_with(",mp4a.40.2"),
        "codecs {}",
        muxer.codecs()
    );
    let mut file = muxer.init_segment().to_vec();
    let mut fragments = 0;
    for f in &frames {
        if let Some(frag) = muxer.push(f) {
            file.extend_from_slice(&frag);
            fragments += 1;
        }
    }
    for frag in muxer.flush() {
        file.extend_from_slice(&frag);
        fragments += 1;
    }
    assert_eq!(fragments, frames.len(), "one fragment per frame");
    std::fs::write(mp4, file).expect("write mp4");
    frames
}

fn int(v: &Value, key: &str) -> i64 {
    v[key]
        .as_i64()
        .or_else(|| v[key].as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn check(tag: &str, x264_opts: &[&str]) {
    let dir = std::env::temp_dir().join(format!("corecast-fmp4-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let flv = make_flv(&dir, x264_opts);
    let mp4 = dir.join("out.mp4");
    let frames = mux(&flv, &mp4);
    let pushed_video = frames.iter().filter(|f| f.kind == MediaKind::Video).count();
    let pushed_audio = frames.len() - pushed_video;
    assert!(pushed_video >= 119, "{pushed_video} video frames in 4 s");

    let probe = ffprobe_json(&[
        "-show_packets",
        "-show_streams",
        mp4.to_str().expect("utf-8 path"),
    ]);
    let streams = probe["streams"].as_array().expect("streams");
    let stream = |kind: &str| {
        streams
            .iter()
            .find(|s| s["codec_type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} stream in {streams:?}"))
    };
    let (v, a) = (stream("video"), stream("audio"));
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(v["profile"], "High");
    assert_eq!(v["width"], 640);
    assert_eq!(v["height"], 360);
    assert_eq!(a["codec_name"], "aac");
    assert_eq!(a["sample_rate"], "48000");
    let (vi, ai) = (int(v, "index"), int(a, "index"));

    let packets = probe["packets"].as_array().expect("packets");
    let of = |index: i64| -> Vec<&Value> {
        packets
            .iter()
            .filter(|p| int(p, "stream_index") == index)
            .collect()
    };
    let (video, audio) = (of(vi), of(ai));
    assert_eq!(video.len(), pushed_video, "video packets");
    assert_eq!(audio.len(), pushed_audio, "audio packets");

    // Decode order: dts increasing, pts not (B-frames); the first at the 10 s margin.
    let dts: Vec<i64> = video.iter().map(|p| int(p, "dts")).collect();
    let pts: Vec<i64> = video.iter().map(|p| int(p, "pts")).collect();
    assert!(dts.windows(2).all(|w| w[1] > w[0]), "dts not increasing");
    assert!(
        pts.windows(2).any(|w| w[1] < w[0]),
        "pts are monotonic in decode order: no B-frames seen"
    );
    assert!(
        (dts[0] - 10 * 90_000).abs() <= FRAME,
        "first dts {}",
        dts[0]
    );
    // Presentation order steps by 1/30 s (to the millisecond of the FLV timestamps).
    let mut sorted = pts.clone();
    sorted.sort_unstable();
    for w in sorted.windows(2) {
        let step = w[1] - w[0];
        assert!((step - FRAME).abs() <= MS, "pts step {step}");
    }
    // Durations are 1/30 s, to the millisecond, and add up to whole frames.
    let durations: Vec<i64> = video.iter().map(|p| int(p, "duration")).collect();
    for d in &durations {
        assert!((d - FRAME).abs() <= MS, "duration {d}");
    }
    let total: i64 = durations.iter().sum();
    assert!(
        (total - FRAME * durations.len() as i64).abs() <= 2 * MS,
        "total duration {total} for {} frames",
        durations.len()
    );
    // Keyframes: the first and every 30th.
    for (i, p) in video.iter().enumerate() {
        let key = p["flags"].as_str().expect("flags").contains('K');
        if i % 30 == 0 {
            assert!(key, "video packet {i} is not a keyframe");
        }
    }
    let keys = video
        .iter()
        .filter(|p| p["flags"].as_str().is_some_and(|f| f.contains('K')))
        .count();
    let pushed_keys = frames
        .iter()
        .filter(|f| f.keyframe && f.kind == MediaKind::Video);
    assert_eq!(keys, pushed_keys.count(), "keyframes");
    // Audio: 1024-sample frames at 48 kHz, increasing.
    let adts: Vec<i64> = audio.iter().map(|p| int(p, "dts")).collect();
    assert!(
        adts.windows(2).all(|w| w[1] > w[0]),
        "audio dts not increasing"
    );
    decodes_cleanly(&mp4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ffprobe_reads_h264_high_with_two_b_frames_and_aac() {
    check("bf2", &["-bf", "2"]);
}

#[test]
fn ffprobe_reads_h264_high_with_three_adaptive_b_frames_and_aac() {
    check("bf3", &["-bf", "3", "-b_strategy", "2"]);
}

/// ffmpeg decodes the whole file without a single error line.
fn decodes_cleanly(mp4: &Path) {
    let out = Command::new("nice")
        .args(["-n", "19", "ffmpeg", "-v", "error", "-threads", "1", "-i"])
        .arg(mp4)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffmpeg decoding the fMP4: {stderr}"
    );
}

/// Runs ffmpeg with `args` (quietly, niced) and fails the test if it fails.
fn ffmpeg(args: &[&str]) {
    require_tool("ffmpeg");
    let status = Command::new("nice")
        .args(["-n", "19", "ffmpeg", "-v", "error", "-y"])
        .args(args)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg {args:?} failed");
}

/// The NAL units of an Annex B stream.
fn annex_b_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::new();
    for (n, &s) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(data.len(), |&next| next - 3);
        while end > s && data[end - 1] == 0 {
            end -= 1; // the zero byte of a 4-byte start code
        }
        units.push(&data[s..end]);
    }
    units
}

#[test]
fn ffprobe_reads_h265_and_opus() {
    use corecast::media::{Codec, Track, TrackId};
    let dir = std::env::temp_dir().join(format!("corecast-fmp4-hevc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (hevc, ogg) = (dir.join("in.hevc"), dir.join("in.ogg"));
    let (hevc_s, ogg_s) = (hevc.to_str().expect("path"), ogg.to_str().expect("path"));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=30",
        "-t",
        "2",
        "-c:v",
        "libx265",
        "-preset",
        "veryfast",
        "-x265-params",
        "log-level=error:aud=1:bframes=0:keyint=30",
        "-f",
        "hevc",
        hevc_s,
    ]);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=1000:sample_rate=48000",
        "-t",
        "2",
        "-ac",
        "2",
        "-c:a",
        "libopus",
        "-f",
        "ogg",
        ogg_s,
    ]);

    // H.265: access units start at an AUD; parameter sets go to the track.
    let data = std::fs::read(&hevc).expect("read hevc");
    let mut video = Track::new(TrackId(0), Codec::H265, 90_000);
    let mut access_units: Vec<(bool, Vec<u8>)> = Vec::new();
    for unit in annex_b_units(&data) {
        let kind = (unit[0] >> 1) & 0x3F;
        let unit_bytes = Bytes::copy_from_slice(unit);
        match kind {
            32 if video.params.vps.is_empty() => video.params.vps.push(unit_bytes),
            33 if video.params.sps.is_empty() => video.params.sps.push(unit_bytes),
            34 if video.params.pps.is_empty() => video.params.pps.push(unit_bytes),
            32..=34 => {}
            35 => access_units.push((false, Vec::new())),
            _ => {
                let au = access_units.last_mut().expect("an AUD first");
                au.0 |= (16..=23).contains(&kind);
                au.1.extend_from_slice(&(unit.len() as u32).to_be_bytes());
                au.1.extend_from_slice(unit);
            }
        }
    }
    video.apply_params();
    assert_eq!(access_units.len(), 60, "H.265 access units in 2 s");

    // Opus: the packets after OpusHead and OpusTags, 20 ms each.
    let mut reader = ogg::reading::PacketReader::new(std::fs::File::open(&ogg).expect("ogg"));
    let mut packets = Vec::new();
    while let Some(p) = reader.read_packet().expect("ogg packet") {
        packets.push(p.data);
    }
    assert!(packets[0].starts_with(b"OpusHead") && packets[1].starts_with(b"OpusTags"));
    let opus_packets = &packets[2..];
    let mut audio = Track::new(TrackId(1), Codec::Opus, 48_000);
    audio.channels = Some(packets[0][9]);

    let mut muxer = Muxer::new(&[video, audio]).expect("muxer");
    assert_eq!(muxer.codecs().split(',').nth(1), Some("opus"));
    assert!(
        muxer.codecs().starts_with("hvc1.1.6.L"),
        "{}",
        muxer.codecs()
    );
    let mut frames = Vec::new();
    for (i, (keyframe, au)) in access_units.iter().enumerate() {
        let t = 90_000 + i as i64 * FRAME;
        frames.push(Frame {
            track: TrackId(0),
            kind: MediaKind::Video,
            keyframe: *keyframe,
            dts: t,
            pts: t,
            data: Bytes::from(au.clone()),
        });
    }
    for (i, p) in opus_packets.iter().enumerate() {
        let t = 48_000 + i as i64 * 960;
        frames.push(Frame {
            track: TrackId(1),
            kind: MediaKind::Audio,
            keyframe: true,
            dts: t,
            pts: t,
            data: Bytes::from(p.clone()),
        });
    }
    // Interleave by time, as a live stream would.
    frames.sort_by_key(|f| {
        f.dts * 90_000
            / if f.kind == MediaKind::Video {
                90_000
            } else {
                48_000
            }
    });
    let mut file = muxer.init_segment().to_vec();
    for f in &frames {
        if let Some(frag) = muxer.push(f) {
            file.extend_from_slice(&frag);
        }
    }
    for frag in muxer.flush() {
        file.extend_from_slice(&frag);
    }
    let mp4 = dir.join("out.mp4");
    std::fs::write(&mp4, file).expect("write mp4");

    let probe = ffprobe_json(&[
        "-show_packets",
        "-show_streams",
        mp4.to_str().expect("path"),
    ]);
    let streams = probe["streams"].as_array().expect("streams");
    let v = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("video");
    let a = streams
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .expect("audio");
    assert_eq!(v["codec_name"], "hevc");
    assert_eq!(v["codec_tag_string"], "hvc1");
    assert_eq!(v["profile"], "Main");
    assert_eq!(v["width"], 640);
    assert_eq!(v["height"], 360);
    assert_eq!(a["codec_name"], "opus");
    assert_eq!(a["sample_rate"], "48000");
    assert_eq!(a["channels"], 2);
    let packets = probe["packets"].as_array().expect("packets");
    let count = |s: &Value| {
        packets
            .iter()
            .filter(|p| p["stream_index"] == s["index"])
            .count()
    };
    assert_eq!(count(v), access_units.len());
    assert_eq!(count(a), opus_packets.len());
    let keys = packets
        .iter()
        .filter(|p| p["stream_index"] == v["index"])
        .filter(|p| p["flags"].as_str().is_some_and(|f| f.contains('K')))
        .count();
    assert_eq!(keys, access_units.iter().filter(|(k, _)| *k).count());
    assert!(keys >= 2, "{keys} H.265 keyframes");
    decodes_cleanly(&mp4);
    let _ = std::fs::remove_dir_all(&dir);
}
