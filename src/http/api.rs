//! The REST API and `/metrics`, built from the shards' published snapshots and counters.

use crate::config::{StreamConfig, StreamTable};
use crate::media::{Codec, MediaKind, Track};
use crate::shard::{ShardSnapshot, Shared};
use crate::stats::{self, FrameLatency, HistogramSnapshot, Metric, ShardStats};
use crate::stream::{
    PathInfo, Role, SourceInfo, SourceState, SourceStats, SourceTrackStats, StreamPath,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write;

use std::sync::atomic::Ordering;

/// A track of stream `info` as the API lists it.
fn track_json(t: &Track, info: &PathInfo) -> Value {
    let mut v = json!({
        "id": t.id.0,
        "kind": if t.kind() == MediaKind::Video { "video" } else { "audio" },
        "codec": t.codec.name(),
        "clock_rate": t.clock_rate,
    });
    if let Some(obj) = v.as_object_mut() {
        if t.kind() == MediaKind::Video {
            obj.insert("width".into(), json!(t.width));
            obj.insert("height".into(), json!(t.height));
            obj.insert(
                "fps".into(),
                json!(t.fps.map(|f| (f * 100.0).round() / 100.0)),
            );
            obj.insert("profile".into(), json!(t.profile));
            obj.insert("bframes".into(), json!(info.bframes(t.id)));
        } else {
            obj.insert("sample_rate".into(), json!(t.clock_rate));
            obj.insert("channels".into(), json!(t.channels));
        }
        if let Some(from) = t.transcoded_from {
            obj.insert("transcoded_from".into(), json!(from.0));
        }
        // FLV carries H.264, AAC and G.711: RTMP players get no H.265 or Opus track.
        let rtmp = matches!(
            t.codec,
            Codec::H264 | Codec::Aac | Codec::FlvAudio(_) | Codec::Pcma | Codec::Pcmu
        );
        obj.insert("rtmp".into(), json!(rtmp));
    }
    v
}

/// How a browser plays a stream (the page's choice, `playback` in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playback {
    /// WebRTC (WHEP): the lowest latency.
    Webrtc,
    /// fMP4 over a WebSocket into Media Source Extensions (`/mse/{path}`): for what
    /// browsers' WebRTC players cannot play well.
    Mse,
}

impl Playback {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Playback::Webrtc => "webrtc",
            Playback::Mse => "mse",
        }
    }
}

/// How a browser should play stream `info`: over MSE when a video track has B-frames
/// (browsers' WebRTC players stutter on them), or when the only sound is AAC and the
/// server makes no Opus from it (`transcode` false: `media.transcode_audio = "off"`), as
/// MSE plays AAC; over WebRTC otherwise.
pub fn playback(info: &PathInfo, transcode: bool) -> Playback {
    let Some(tracks) = info.tracks.as_deref() else {
        return Playback::Webrtc;
    };
    let bframes = tracks
        .iter()
        .any(|t| t.kind() == MediaKind::Video && info.bframes(t.id));
    let audio = |t: &&Track| t.kind() == MediaKind::Audio;
    let webrtc_audio = tracks
        .iter()
        .filter(audio)
        .any(|t| matches!(t.codec, Codec::Opus | Codec::Pcma | Codec::Pcmu));
    let aac = tracks.iter().filter(audio).any(|t| t.codec == Codec::Aac);
    if bframes || (aac && !webrtc_audio && !transcode) {
        Playback::Mse
    } else {
        Playback::Webrtc
    }
}

/// A source; without `addresses`, neither its URL (a publisher's `rtmp://IP:PORT`, a
/// camera's address) nor its last error (which may name one).
fn source_json(s: &SourceInfo, addresses: bool) -> Value {
    let mut v = json!({ "kind": s.kind, "state": s.state.to_string() });
    if let (true, Some(obj)) = (addresses, v.as_object_mut()) {
        obj.insert("url".into(), json!(s.url));
    }
    if let (Some(st), Some(obj)) = (&s.stats, v.as_object_mut()) {
        obj.insert("transport".into(), json!(st.transport));
        obj.insert("reconnects".into(), json!(st.reconnects));
        if addresses {
            obj.insert("last_error".into(), json!(st.last_error));
        }
        let tracks: Vec<Value> = st
            .tracks
            .iter()
            .enumerate()
            .map(|(id, t)| {
                json!({
                    "id": id,
                    "codec": t.codec,
                    "packets": t.packets,
                    "bytes": t.bytes,
                    "lost": t.lost,
                    "frames": t.frames,
                    "frames_dropped": t.frames_dropped,
                    "bitrate": t.bitrate,
                })
            })
            .collect();
        obj.insert("tracks".into(), json!(tracks));
    }
    v
}

/// `GET /api/v1/streams`: every published stream with its source, owner, tracks, input
/// bitrate, viewers (total and per shard) and the RTMP path players open
/// (`rtmp://HOST:rtmp_port/rtmp_path`), and whether it is configured (`[[streams]]` in
/// `table`). Peers' addresses (a publisher's, a camera's) and configured entries
/// (`config`) are in it only with `show_addresses` (a caller with the `api` permission);
/// viewers are counted, never listed.
pub fn streams_json(
    snapshots: &[ShardSnapshot],
    table: &StreamTable,
    rtmp_port: u16,
    show_addresses: bool,
    transcode: bool,
) -> String {
    let mut streams = stream_values(snapshots, table, show_addresses, transcode);
    streams.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    json!({ "rtmp_port": rtmp_port, "streams": streams }).to_string()
}

/// `GET /api/v1/streams/{path}`: the stream as in the list (with addresses), or, for a
/// configured stream whose source has not published yet, its entry with no media.
/// `transcode`: whether the server makes Opus from AAC for browsers
/// (`media.transcode_audio`), which decides the stream's `playback`.
pub fn stream_json(
    snapshots: &[ShardSnapshot],
    table: &StreamTable,
    path: &str,
    transcode: bool,
) -> Option<Value> {
    let found = stream_values(snapshots, table, true, transcode)
        .into_iter()
        .find(|v| v["path"] == path);
    if found.is_some() {
        return found;
    }
    let (_, entry) = table.entry(&StreamPath::parse(path).ok()?)?;
    let source = table
        .plan(path)
        .map(|p| json!({ "kind": p.source.kind(), "state": "starting" }));
    Some(json!({
        "path": path,
        "rtmp_path": crate::rtmp::play_path(path),
        "source": source,
        "owner_shard": table.plan(path).map(|p| p.shard),
        "tracks": [],
        "bitrate_in": 0,
        "bytes_in": 0,
        "frames_in": 0,
        "frames_dropped": 0,
        "relay_shards": [],
        "viewers": { "total": 0, "by_shard": vec![0; snapshots.len()] },
        "configured": true,
        "config": entry_json(entry),
    }))
}

/// A `[[streams]]` entry as the API shows it: the password and credentials in the source
/// URL hidden.
pub fn entry_json(entry: &StreamConfig) -> Value {
    let mut v = serde_json::to_value(entry).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        if obj.contains_key("password") {
            obj.insert("password".into(), json!("***"));
        }
        if let Some(Value::String(src)) = obj.get("source")
            && let Ok(url) = crate::rtsp::proto::url::RtspUrl::parse(src)
        {
            let shown = url.redacted();
            obj.insert("source".into(), json!(shown));
        }
    }
    v
}

fn stream_values(
    snapshots: &[ShardSnapshot],
    table: &StreamTable,
    show: bool,
    transcode: bool,
) -> Vec<Value> {
    let mut viewers: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut dropped: BTreeMap<&str, u64> = BTreeMap::new();
    for (shard, snap) in snapshots.iter().enumerate() {
        for p in &snap.paths {
            let v = viewers
                .entry(&p.info.path)
                .or_insert_with(|| vec![0; snapshots.len()]);
            v[shard] += p.info.viewers;
            *dropped.entry(&p.info.path).or_default() += p.info.frames_dropped;
        }
    }
    let mut streams = Vec::new();
    for (shard, snap) in snapshots.iter().enumerate() {
        for p in snap.paths.iter().filter(|p| p.info.role == Role::Owner) {
            let i = &p.info;
            let by_shard = viewers.get(&*i.path).cloned().unwrap_or_default();
            let source = i.source.as_ref().map(|s| source_json(s, show));
            let rtmp_path = crate::rtmp::play_path(&i.path);
            let entry = StreamPath::parse(&i.path)
                .ok()
                .and_then(|p| table.entry(&p).map(|(_, e)| e));
            let mut v = json!({
                "path": &*i.path,
                "rtmp_path": rtmp_path,
                "source": source,
                "owner_shard": shard,
                "tracks": i.tracks.as_ref().map(|t| t.iter().map(|t| track_json(t, i)).collect::<Vec<_>>()).unwrap_or_default(),
                "bitrate_in": p.bitrate_in,
                "bytes_in": i.bytes_in,
                "frames_in": i.frames_in,
                "frames_dropped": dropped.get(&*i.path).copied().unwrap_or(0),
                "relay_shards": i.relay_shards,
                "transcoding": i.transcoding,
                "playback": playback(i, transcode).as_str(),
                "viewers": { "total": by_shard.iter().sum::<usize>(), "by_shard": by_shard },
                "configured": entry.is_some(),
            });
            if let (true, Some(e), Some(obj)) = (show, entry, v.as_object_mut()) {
                obj.insert("config".into(), entry_json(e));
            }
            streams.push(v);
        }
    }
    streams
}

/// `GET /api/v1/health`: per-shard status. `ok` is false if a shard missed heartbeats.
pub fn health_json(shared: &Shared, now_ms: u64) -> (bool, String) {
    let mut all_ok = !shared.is_stopping();
    // The total is the sum of the shards' values shown (one read of each).
    let mut total_latency: [HistogramSnapshot; 2] = Default::default();
    let shards: Vec<Value> = (0..shared.shards())
        .map(|i| {
            let beat = shared.heartbeats[i].load(Ordering::Relaxed);
            let lag = now_ms.saturating_sub(beat);
            let ok = lag < 2000;
            all_ok &= ok;
            let cpu = shared.cpus[i].load(Ordering::Relaxed);
            let st = &shared.stats[i];
            let mut latency: [HistogramSnapshot; 2] = Default::default();
            if let Some(l) = shared.latency.get(i) {
                l.add_to(&mut latency);
            }
            for (t, l) in total_latency.iter_mut().zip(&latency) {
                t.merge(l);
            }
            json!({
                "shard": i,
                "ok": ok,
                "cpu": (cpu != u64::MAX).then_some(cpu),
                "heartbeat_lag_ms": lag,
                "webrtc_udp_port": shared.udp_ports[i].load(Ordering::Relaxed),
                "connections": st.connections.load(Ordering::Relaxed),
                "streams": st.streams.load(Ordering::Relaxed),
                "relays": st.relays.load(Ordering::Relaxed),
                "viewers": st.viewers.load(Ordering::Relaxed),
                "webrtc_sessions": st.webrtc_sessions.load(Ordering::Relaxed),
                "frame_latency": latency_json(&latency),
            })
        })
        .collect();
    let uptime = shared.started.elapsed().map(|d| d.as_secs()).unwrap_or(0);
    let body = json!({
        "status": if all_ok { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": uptime,
        "frame_latency": latency_json(&total_latency),
        "shards": shards,
    });
    (all_ok, body.to_string())
}

/// Each protocol's frame latency, summed over the shards, in
/// [`FrameLatency::PROTOCOLS`] order.
fn latency_totals(shared: &Shared) -> [HistogramSnapshot; 2] {
    let mut totals = Default::default();
    for l in &shared.latency {
        l.add_to(&mut totals);
    }
    totals
}

/// Frame latency per protocol for the API: observations and the median and 99th
/// percentile in milliseconds (interpolated within the histogram's buckets; null before
/// the first observation).
fn latency_json(per_protocol: &[HistogramSnapshot; 2]) -> Value {
    let ms = |h: &HistogramSnapshot, q| h.quantile(q).map(|s| (s * 1e6).round() / 1e3);
    let mut v = serde_json::Map::new();
    for (protocol, h) in FrameLatency::PROTOCOLS.iter().zip(per_protocol) {
        v.insert(
            protocol.to_string(),
            json!({ "count": h.count(), "p50_ms": ms(h, 0.5), "p99_ms": ms(h, 0.99) }),
        );
    }
    Value::Object(v)
}

/// `GET /metrics`: Prometheus text exposition format 0.0.4. Every family written is
/// declared once in [`crate::stats`], with its kind and help.
pub fn metrics_text(shared: &Shared, snapshots: &[ShardSnapshot]) -> String {
    let mut out = String::new();
    let stats: Vec<&ShardStats> = shared.stats.iter().map(|s| &**s).collect();
    shard_metrics(&mut out, &stats);
    stream_metrics(&mut out, snapshots);
    source_metrics(&mut out, snapshots);
    latency_metrics(&mut out, &latency_totals(shared));
    out
}

/// The frame latency histogram per protocol out, summed over the shards.
fn latency_metrics(out: &mut String, per_protocol: &[HistogramSnapshot; 2]) {
    let family = stats::FRAME_LATENCY.write_header(out);
    for (protocol, h) in FrameLatency::PROTOCOLS.iter().zip(per_protocol) {
        h.write_samples(out, &family, &format!("protocol=\"{protocol}\""));
    }
}

/// One family: its `# HELP` and `# TYPE` lines, then a sample per (labels, value).
fn write_family(
    out: &mut String,
    metric: &Metric,
    samples: impl IntoIterator<Item = (String, u64)>,
) {
    let family = metric.write_header(out);
    for (labels, value) in samples {
        let _ = writeln!(out, "{family}{{{labels}}} {value}");
    }
}

/// Every [`ShardStats`] counter, one sample per shard.
fn shard_metrics(out: &mut String, stats: &[&ShardStats]) {
    if stats.is_empty() {
        return;
    }
    let per_shard: Vec<Vec<(&Metric, u64)>> = stats.iter().map(|s| s.fields()).collect();
    for (k, metric) in ShardStats::METRICS.iter().enumerate() {
        let samples = per_shard.iter().enumerate().map(|(shard, fields)| {
            let value = fields.get(k).map_or(0, |(_, v)| *v);
            (format!("shard=\"{shard}\""), value)
        });
        write_family(out, metric, samples);
    }
}

/// Per-stream families: input bitrate (owner) and viewers (every shard).
fn stream_metrics(out: &mut String, snapshots: &[ShardSnapshot]) {
    let owned = snapshots
        .iter()
        .flat_map(|s| s.paths.iter())
        .filter(|p| p.info.role == Role::Owner);
    let bitrates = owned.map(|p| (path_label(&p.info.path), p.bitrate_in));
    write_family(out, &stats::STREAM_BITRATE_IN, bitrates);
    let viewers = snapshots.iter().enumerate().flat_map(|(shard, snap)| {
        snap.paths.iter().map(move |p| {
            let labels = format!("{},shard=\"{shard}\"", path_label(&p.info.path));
            (labels, p.info.viewers as u64)
        })
    });
    write_family(out, &stats::STREAM_VIEWERS, viewers);
    let owned = snapshots
        .iter()
        .flat_map(|s| s.paths.iter())
        .filter(|p| p.info.role == Role::Owner);
    let owned: Vec<_> = owned.collect();
    let family = |f: fn(&PathInfo) -> u64| {
        owned
            .iter()
            .map(move |p| (path_label(&p.info.path), f(&p.info)))
    };
    write_family(
        out,
        &stats::STREAM_TRANSCODING,
        family(|i| u64::from(i.transcoding)),
    );
    write_family(
        out,
        &stats::STREAM_TRANSCODE_CPU,
        family(|i| i.transcode_cpu_micros),
    );
    write_family(
        out,
        &stats::STREAM_TRANSCODE_ERRORS,
        family(|i| i.transcode_errors),
    );
}

/// Per-source families: state and, for pulled sources, per-track receive counters.
fn source_metrics(out: &mut String, snapshots: &[ShardSnapshot]) {
    type Field = fn(&SourceTrackStats) -> u64;
    const TRACK_FAMILIES: [(Metric, Field); 5] = [
        (stats::SOURCE_PACKETS, |t| t.packets),
        (stats::SOURCE_PACKETS_LOST, |t| t.lost),
        (stats::SOURCE_FRAMES, |t| t.frames),
        (stats::SOURCE_FRAMES_DROPPED, |t| t.frames_dropped),
        (stats::SOURCE_BITRATE, |t| t.bitrate),
    ];
    let owned: Vec<(&str, &SourceInfo)> = snapshots
        .iter()
        .flat_map(|s| s.paths.iter())
        .filter(|p| p.info.role == Role::Owner)
        .filter_map(|p| Some((&*p.info.path, p.info.source.as_ref()?)))
        .collect();
    let up = owned.iter().map(|(path, s)| {
        let labels = format!("{},kind=\"{}\"", path_label(path), s.kind);
        (labels, u64::from(s.state == SourceState::Live))
    });
    write_family(out, &stats::SOURCE_UP, up);
    let pulled: Vec<(&str, &SourceStats)> = owned
        .iter()
        .filter_map(|(p, s)| Some((*p, s.stats.as_ref()?)))
        .collect();
    let reconnects = pulled
        .iter()
        .map(|(path, st)| (path_label(path), st.reconnects));
    write_family(out, &stats::SOURCE_RECONNECTS, reconnects);
    for (metric, field) in TRACK_FAMILIES {
        let samples = pulled.iter().flat_map(|(path, st)| {
            st.tracks.iter().enumerate().map(move |(id, t)| {
                let labels = format!("{},track=\"{id}\",codec=\"{}\"", path_label(path), t.codec);
                (labels, field(t))
            })
        });
        write_family(out, &metric, samples);
    }
}

/// The `path="..."` label, escaped.
fn path_label(path: &str) -> String {
    format!("path=\"{}\"", escape_label(path))
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests;
