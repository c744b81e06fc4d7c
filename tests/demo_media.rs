//! Our FLV, SPS and AAC parsers against ffprobe as the oracle, on the shipped demo clip
//! and a second ffmpeg-made file.
#![allow(clippy::disallowed_methods)] // Tests and benchmarks drive real time.

mod common;

use bytes::Bytes;
use common::{require_tool, root};
use corecast::media::MediaKind;
use corecast::media::clip::Clip;
use corecast::media::flv::{DemuxOutput, Demuxer, TagType};
use std::process::Command;

struct Parsed {
    width: Option<u32>,
    height: Option<u32>,
    profile: Option<String>,
    fps: Option<f64>,
    sample_rate: Option<u32>,
    channels: Option<u8>,
    video_frames: usize,
    keyframes: usize,
}

fn parse_ours(file: &str) -> Parsed {
    let data = std::fs::read(root().join(file)).expect("read clip");
    let clip = Clip::parse(Bytes::from(data), 8 << 20).expect("clip");
    let mut demux = Demuxer::new();
    let (mut video_frames, mut keyframes) = (0, 0);
    for tag in clip.tags() {
        let out = match tag.kind {
            TagType::Video => demux.video(tag.offset_ms, &tag.body),
            _ => demux.audio(tag.offset_ms, &tag.body),
        }
        .expect("demux");
        if let Some(DemuxOutput::Frame(f)) = out
            && f.kind == MediaKind::Video
        {
            video_frames += 1;
            keyframes += usize::from(f.keyframe);
        }
    }
    let tracks = demux.tracks();
    let v = tracks.iter().find(|t| t.kind() == MediaKind::Video);
    let a = tracks.iter().find(|t| t.kind() == MediaKind::Audio);
    Parsed {
        width: v.and_then(|t| t.width),
        height: v.and_then(|t| t.height),
        profile: v.and_then(|t| t.profile.clone()),
        fps: v.and_then(|t| t.fps).or(clip.video_fps()),
        sample_rate: a.map(|t| t.clock_rate),
        channels: a.and_then(|t| t.channels),
        video_frames,
        keyframes,
    }
}

fn ffprobe(file: &str, args: &[&str]) -> serde_json::Value {
    require_tool("ffprobe");
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(root().join(file))
        .output()
        .expect("ffprobe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

fn compare(file: &str) {
    let ours = parse_ours(file);
    let streams = ffprobe(file, &["-show_streams"]);
    let v = streams["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == "video"))
        .expect("video stream");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(ours.width, v["width"].as_u64().map(|w| w as u32));
    assert_eq!(ours.height, v["height"].as_u64().map(|h| h as u32));
    assert_eq!(ours.profile.as_deref(), v["profile"].as_str());
    let rate = v["avg_frame_rate"].as_str().expect("rate");
    let (n, d) = rate.split_once('/').expect("n/d");
    let fps = n.parse::<f64>().expect("n") / d.parse::<f64>().expect("d");
    let ours_fps = ours.fps.expect("fps");
    assert!(
        (ours_fps - fps).abs() / fps < 0.05,
        "fps ours {ours_fps} ffprobe {fps}"
    );
    if let Some(a) = streams["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == "audio"))
    {
        assert_eq!(a["codec_name"], "aac");
        assert_eq!(
            ours.sample_rate.map(|r| r.to_string()).as_deref(),
            a["sample_rate"].as_str()
        );
        assert_eq!(ours.channels.map(u64::from), a["channels"].as_u64());
    }
    let frames = ffprobe(
        file,
        &["-select_streams", "v", "-show_entries", "packet=flags"],
    );
    let packets = frames["packets"].as_array().expect("packets");
    let keys = packets
        .iter()
        .filter(|p| p["flags"].as_str().is_some_and(|f| f.starts_with('K')))
        .count();
    assert_eq!(ours.video_frames, packets.len(), "video frame count");
    assert_eq!(ours.keyframes, keys, "keyframe count");
}

#[test]
fn demo_clip_matches_ffprobe() {
    compare("configs/media/demo.flv");
    let ours = parse_ours("configs/media/demo.flv");
    // The shipped clip: 720p30, a keyframe every 2 s, a few seconds long.
    assert_eq!((ours.width, ours.height), (Some(1280), Some(720)));
    assert_eq!(ours.keyframes, 2);
    let size = std::fs::metadata(root().join("configs/media/demo.flv"))
        .expect("size")
        .len();
    assert!(size < 1_000_000, "demo clip is {size} bytes");
}

#[test]
fn baseline_test_file_matches_ffprobe() {
    compare("tests/data/ffmpeg_320x240_baseline_aac.flv");
}
