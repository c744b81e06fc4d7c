use super::*;
use crate::media::clip::Clip;
use crate::media::{Codec, Frame, TrackId};
use crate::stream::OutFrame;
use std::sync::Arc;

const FILE: &[u8] = include_bytes!("../../../tests/data/ffmpeg_320x240_baseline_aac.flv");

/// The tracks and frames of the test clip (H.264 Baseline + AAC), as a publisher's would
/// come through the hub.
fn clip() -> (TrackSet, Vec<Frame>) {
    let clip = Clip::parse(Bytes::from_static(FILE), 1 << 20).expect("clip");
    let (tracks, frames) = clip.frames().expect("demux");
    (Arc::from(tracks), frames)
}

fn texts(out: &[MseOutput]) -> Vec<Value> {
    out.iter()
        .filter_map(|o| match o {
            MseOutput::Text(t) => serde_json::from_str(t).ok(),
            _ => None,
        })
        .collect()
}

fn binaries(out: &[MseOutput]) -> usize {
    out.iter()
        .filter(|o| matches!(o, MseOutput::Binary(_) | MseOutput::Fragment(_)))
        .count()
}

#[test]
fn tracks_give_init_then_the_init_segment_and_frames_give_fragments() {
    let (tracks, frames) = clip();
    let mut v = MseViewer::new("live/x");
    let mut out = Vec::new();
    v.handle_event(SinkEvent::Tracks(tracks), &mut out);
    let init = &texts(&out)[0];
    assert_eq!(init["type"], "init");
    let codecs = init["codecs"].as_str().expect("codecs");
    assert!(codecs.starts_with("avc1.42"), "{codecs}");
    assert!(codecs.ends_with("mp4a.40.2"), "{codecs}");
    assert_eq!(init["mime"], format!("video/mp4; codecs=\"{codecs}\""));
    assert_eq!(init["tracks"][0]["codec"], "h264");
    assert_eq!(init["tracks"][1]["codec"], "aac");
    match &out[1] {
        MseOutput::Binary(b) => assert_eq!(b.get(4..8), Some(&b"ftyp"[..])),
        other => panic!("{other:?}"),
    }
    out.clear();
    let n = frames.len();
    let payloads: Vec<*const u8> = frames.iter().map(|f| f.data.as_ptr()).collect();
    for f in frames {
        v.handle_event(SinkEvent::Frame(OutFrame::new(f)), &mut out);
    }
    // Each fragment's sample is a frame's own payload, not a copy.
    assert!(out.iter().all(|o| match o {
        MseOutput::Fragment(f) => payloads.contains(&f.payload.as_ptr()),
        _ => true,
    }));
    // Each track holds its latest frame until the next one fixes its duration.
    assert_eq!(binaries(&out), n - 2);
    // Fragments, whose payload is the frame's own buffer.
    assert!(out.iter().all(|o| match o {
        MseOutput::Fragment(f) => f.boxes.get(4..8) == Some(&b"moof"[..]),
        _ => false,
    }));
    // The source stops: the held frames go out, then `ended`; the socket stays.
    out.clear();
    v.handle_event(SinkEvent::End, &mut out);
    assert_eq!(binaries(&out), 2);
    assert_eq!(texts(&out)[0]["type"], "ended");
    assert!(!v.is_closed());
    assert_eq!(v.fragments(), n as u64);
}

#[test]
fn video_waits_for_a_keyframe_after_each_init() {
    let (tracks, frames) = clip();
    let video: Vec<Frame> = frames
        .into_iter()
        .filter(|f| f.kind == MediaKind::Video)
        .collect();
    let first_key = video.iter().position(|f| f.keyframe).expect("a keyframe");
    let second_key = video
        .iter()
        .skip(first_key + 1)
        .position(|f| f.keyframe)
        .map(|i| i + first_key + 1);
    let mut v = MseViewer::new("live/x");
    let mut out = Vec::new();
    v.handle_event(SinkEvent::Tracks(tracks), &mut out);
    out.clear();
    // Joining after the keyframe: nothing until the next one (if the clip has one).
    for f in video.iter().skip(first_key + 1).cloned() {
        v.handle_event(SinkEvent::Frame(OutFrame::new(f)), &mut out);
    }
    let expect = match second_key {
        Some(k) => video.len() - k - 1,
        None => 0,
    };
    assert_eq!(binaries(&out), expect);
}

#[test]
fn transcoded_tracks_are_left_out_and_an_unplayable_stream_closes_with_1003() {
    let (tracks, _) = clip();
    let mut with_opus: Vec<Track> = tracks.to_vec();
    let mut opus = Track::new(TrackId(2), Codec::Opus, 48_000);
    opus.channels = Some(2);
    opus.transcoded_from = Some(TrackId(1));
    with_opus.push(opus);
    let mut v = MseViewer::new("live/x");
    let mut out = Vec::new();
    v.handle_event(SinkEvent::Tracks(Arc::from(with_opus)), &mut out);
    let init = &texts(&out)[0];
    assert_eq!(init["tracks"].as_array().map(Vec::len), Some(2), "{init}");
    assert!(!init["codecs"].as_str().unwrap_or("").contains("opus"));

    // G.711 only: nothing an fMP4 for MSE carries.
    let mut v = MseViewer::new("cam");
    let mut out = Vec::new();
    let pcma = Track::new(TrackId(0), Codec::Pcma, 8000);
    v.handle_event(SinkEvent::Tracks(Arc::from(vec![pcma])), &mut out);
    let err = &texts(&out)[0];
    assert_eq!(err["type"], "error");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or("")
            .contains("'cam' cannot be played over MSE"),
        "{err}"
    );
    assert!(matches!(out.last(), Some(MseOutput::Close(1003, _))));
    assert!(v.is_closed());
    out.clear();
    v.handle_event(SinkEvent::End, &mut out);
    assert!(out.is_empty());
}

#[test]
fn page_messages_get_answers_and_binary_data_closes() {
    let mut v = MseViewer::new("live/x");
    let mut out = Vec::new();
    v.handle_text(r#"{"type":"ping"}"#, &mut out);
    v.handle_text("not json", &mut out);
    v.handle_text(r#"{"type":"play"}"#, &mut out);
    let long = format!(r#"{{"type":"{}"}}"#, "é".repeat(500));
    v.handle_text(&long, &mut out);
    let t = texts(&out);
    assert_eq!(t[0]["type"], "pong");
    assert_eq!(t[1]["type"], "error");
    assert!(t[2]["message"].as_str().unwrap_or("").contains("'play'"));
    // What the peer sent is quoted cut short.
    assert!(t[3]["message"].as_str().unwrap_or("").len() < 300);
    assert!(!v.is_closed());
    out.clear();
    v.handle_binary(&mut out);
    assert_eq!(texts(&out)[0]["type"], "error");
    assert!(matches!(out.last(), Some(MseOutput::Close(1003, _))));
    assert!(v.is_closed());
}

#[test]
fn a_removed_stream_closes_normally() {
    let (tracks, _) = clip();
    let mut v = MseViewer::new("live/x");
    let mut out = Vec::new();
    v.handle_event(SinkEvent::Tracks(tracks), &mut out);
    out.clear();
    v.handle_event(SinkEvent::Removed, &mut out);
    assert!(matches!(out.last(), Some(MseOutput::Close(1000, _))));
}

#[test]
fn the_server_ends_a_viewer_with_the_status_of_why() {
    let mut v = MseViewer::new("live/x");
    let mut out = Vec::new();
    v.end(End::Kicked, &mut out);
    assert!(matches!(out.last(), Some(MseOutput::Close(1000, r)) if r.contains("management API")));
    let mut v = MseViewer::new("live/x");
    out.clear();
    v.end(End::Shutdown, &mut out);
    assert!(matches!(out.last(), Some(MseOutput::Close(1001, _))));
    assert!(v.is_closed());
}
