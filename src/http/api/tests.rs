//! `/metrics` text pinned byte for byte, and the declarations it is built from.

use super::*;
use crate::config::Config;
use crate::shard::PathSnapshot;
use crate::stats::{self, ShardStats};
use crate::stream::{PathInfo, SourceInfo, SourceState, SourceStats, SourceTrackStats};
use std::net::SocketAddr;
use std::path::Path;

fn shared() -> Shared {
    let settings = Config::parse("")
        .and_then(|c| c.validate(&[0, 1], Path::new(env!("CARGO_MANIFEST_DIR"))))
        .expect("empty config");
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    Shared::new(settings, addr, addr)
}

fn path(path: &str, role: Role, viewers: usize, source: Option<SourceInfo>) -> PathSnapshot {
    PathSnapshot {
        info: PathInfo {
            path: path.into(),
            role,
            source,
            tracks: None,
            viewers,
            bytes_in: 0,
            frames_in: 0,
            frames_dropped: 0,
            relay_shards: Vec::new(),
            transcoding: false,
            reordered: 0,
            transcode_cpu_micros: 0,
            transcode_errors: 0,
        },
        bitrate_in: 1_500_000,
    }
}

fn source(kind: &'static str, state: SourceState, stats: Option<SourceStats>) -> SourceInfo {
    SourceInfo {
        kind,
        url: "rtsp://127.0.0.1/cam".into(),
        state,
        stats,
        start_timeout: None,
        continues_timeline: kind != "rtmp",
    }
}

/// Two shards: an RTSP camera (two tracks) and a file on shard 0, a relay and a path
/// whose label needs escaping on shard 1.
fn snapshots() -> Vec<ShardSnapshot> {
    let track = |codec, n| SourceTrackStats {
        codec,
        packets: 100 * n,
        bytes: 1000 * n,
        lost: n,
        frames: 10 * n,
        frames_dropped: n / 2,
        bitrate: 64_000 * n,
    };
    let cam = SourceStats {
        transport: Some("tcp"),
        reconnects: 3,
        last_error: None,
        tracks: vec![track("H264", 1), track("AAC", 2)],
    };
    vec![
        ShardSnapshot {
            paths: vec![
                path(
                    "cam",
                    Role::Owner,
                    2,
                    Some(source("rtsp", SourceState::Live, Some(cam))),
                ),
                path(
                    "demo",
                    Role::Owner,
                    0,
                    Some(source("file", SourceState::Idle, None)),
                ),
            ],
        },
        ShardSnapshot {
            paths: vec![
                path("cam", Role::Relay { owner: 0 }, 5, None),
                path("a\"b\\c", Role::Waiting, 1, None),
            ],
        },
    ]
}

#[test]
fn metrics_text_is_pinned_byte_for_byte() {
    let shared = shared();
    stats::add(&shared.stats[0].connections, 4);
    stats::add(&shared.stats[1].bytes_out, 12345);
    stats::add(&shared.stats[1].rtsp_packets_lost, 7);
    // Frame latency: summed over the shards, per protocol.
    shared.latency[0].webrtc.observe_micros(1_200);
    shared.latency[1].webrtc.observe_micros(300);
    shared.latency[1].rtmp.observe_micros(40_000);
    let text = metrics_text(&shared, &snapshots());
    let golden = include_str!("metrics.golden");
    if text != golden {
        let _ = std::fs::write(std::env::temp_dir().join("corecast-metrics.actual"), &text);
    }
    assert_eq!(text, golden, "/metrics changed");
}

#[test]
fn every_declared_family_has_help_and_type_and_nothing_else_is_written() {
    let text = metrics_text(&shared(), &snapshots());
    let declared: Vec<&stats::Metric> = ShardStats::METRICS
        .iter()
        .chain(stats::PATH_METRICS)
        .chain(stats::HISTOGRAM_METRICS)
        .collect();
    for m in &declared {
        let family = m.family();
        let help = format!("# HELP {family} {}\n", m.help);
        let kind = format!("# TYPE {family} {}\n", m.kind.as_str());
        assert_eq!(text.matches(&help).count(), 1, "{help}");
        assert_eq!(text.matches(&kind).count(), 1, "{kind}");
        assert!(
            text.contains(&format!("{help}{kind}")),
            "HELP then TYPE for {family}"
        );
    }
    let typed: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    assert_eq!(
        typed.len(),
        declared.len(),
        "a family without a declaration"
    );
    for sample in text.lines().filter(|l| !l.starts_with('#')) {
        let name = sample.split(['{', ' ']).next().unwrap_or_default();
        let histogram = |m: &stats::Metric| {
            m.kind == stats::MetricKind::Histogram
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(&m.family()))
        };
        assert!(
            declared.iter().any(|m| m.family() == name || histogram(m)),
            "undeclared sample {sample}"
        );
    }
    assert!(!text.contains("untyped"));
}

#[test]
fn streams_json_without_addresses_names_no_peer() {
    let mut snaps = snapshots();
    let cam_err = SourceStats {
        transport: Some("tcp"),
        reconnects: 1,
        last_error: Some("connect to 10.1.2.3:554 refused".into()),
        tracks: Vec::new(),
    };
    snaps[0].paths.push(path(
        "live/pub",
        Role::Owner,
        0,
        Some(SourceInfo {
            kind: "rtmp",
            url: "rtmp://192.0.2.7:50123".into(),
            state: SourceState::Live,
            stats: Some(cam_err),
            start_timeout: None,
            continues_timeline: false,
        }),
    ));
    let shown = streams_json(&snaps, &Default::default(), 1935, true, true);
    for addr in ["192.0.2.7:50123", "10.1.2.3", "rtsp://127.0.0.1/cam"] {
        assert!(shown.contains(addr), "{addr} missing: {shown}");
    }
    let hidden = streams_json(&snaps, &Default::default(), 1935, false, true);
    for addr in [
        "192.0.2.7",
        "10.1.2.3",
        "127.0.0.1",
        "\"url\"",
        "last_error",
    ] {
        assert!(!hidden.contains(addr), "{addr} in {hidden}");
    }
    let v: serde_json::Value = serde_json::from_str(&hidden).unwrap();
    let pubd = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"] == "live/pub")
        .unwrap();
    assert_eq!(pubd["source"]["kind"], "rtmp");
    assert_eq!(pubd["source"]["state"], "live");
}

#[test]
fn health_shows_frame_latency_per_protocol_summed_and_per_shard() {
    let shared = shared();
    for _ in 0..99 {
        shared.latency[0].webrtc.observe_micros(1_500); // 1..2.5 ms
    }
    shared.latency[1].webrtc.observe_micros(30_000); // 25..50 ms
    let (_, body) = health_json(&shared, 0);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let webrtc = &v["frame_latency"]["webrtc"];
    assert_eq!(webrtc["count"], 100);
    let p50 = webrtc["p50_ms"].as_f64().expect("p50");
    let p99 = webrtc["p99_ms"].as_f64().expect("p99");
    assert!((1.0..=2.5).contains(&p50), "{p50}");
    assert!(
        (1.0..=2.5).contains(&p99),
        "{p99}: the 99th of 100 is a fast one"
    );
    assert_eq!(v["frame_latency"]["rtmp"]["count"], 0);
    assert!(v["frame_latency"]["rtmp"]["p99_ms"].is_null());
    assert_eq!(v["shards"][0]["frame_latency"]["webrtc"]["count"], 99);
    assert_eq!(v["shards"][1]["frame_latency"]["webrtc"]["count"], 1);
    let slow = v["shards"][1]["frame_latency"]["webrtc"]["p99_ms"]
        .as_f64()
        .expect("p99");
    assert!((25.0..=50.0).contains(&slow), "{slow}");
}

#[test]
fn playback_is_mse_for_b_frames_and_for_aac_that_browsers_cannot_get_otherwise() {
    use crate::media::{Codec, Track, TrackId};
    let info = |codecs: &[Codec], reordered: u64| {
        let mut p = path("live/x", Role::Owner, 0, None).info;
        let tracks: Vec<Track> = codecs
            .iter()
            .enumerate()
            .map(|(i, c)| Track::new(TrackId(i as u8), *c, 90_000))
            .collect();
        p.tracks = Some(tracks.into());
        p.reordered = reordered;
        p
    };
    use Codec::{Aac, H264, Opus, Pcma};
    // No tracks yet, or plain H.264: WebRTC.
    let mut none = info(&[], 0);
    none.tracks = None;
    assert_eq!(playback(&none, true), Playback::Webrtc);
    assert_eq!(playback(&info(&[H264], 0), true), Playback::Webrtc);
    // B-frames on the video track: MSE, whatever the audio.
    assert_eq!(playback(&info(&[H264, Aac], 1), true), Playback::Mse);
    assert_eq!(playback(&info(&[H264, Opus], 1), false), Playback::Mse);
    // A B-frame bit of an audio track means nothing.
    assert_eq!(playback(&info(&[H264, Aac], 2), true), Playback::Webrtc);
    // AAC: WebRTC while the server transcodes it; MSE when it does not, unless the
    // stream has sound WebRTC carries.
    assert_eq!(playback(&info(&[H264, Aac], 0), true), Playback::Webrtc);
    assert_eq!(playback(&info(&[H264, Aac], 0), false), Playback::Mse);
    assert_eq!(playback(&info(&[Aac], 0), false), Playback::Mse);
    assert_eq!(playback(&info(&[H264, Pcma], 0), false), Playback::Webrtc);
    assert_eq!(Playback::Mse.as_str(), "mse");
    assert_eq!(Playback::Webrtc.as_str(), "webrtc");
}
