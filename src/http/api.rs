//! The REST API and `/metrics`, built from the shards' published snapshots and counters.

use crate::media::{MediaKind, Track};
use crate::shard::{ShardSnapshot, Shared};
use crate::stream::Role;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;

fn track_json(t: &Track) -> Value {
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
        } else {
            obj.insert("sample_rate".into(), json!(t.clock_rate));
            obj.insert("channels".into(), json!(t.channels));
        }
    }
    v
}

fn source_json(s: &crate::stream::SourceInfo) -> Value {
    let mut v = json!({ "kind": s.kind, "url": s.url, "state": s.state.to_string() });
    if let (Some(st), Some(obj)) = (&s.stats, v.as_object_mut()) {
        obj.insert("transport".into(), json!(st.transport));
        obj.insert("reconnects".into(), json!(st.reconnects));
        obj.insert("last_error".into(), json!(st.last_error));
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
/// (`rtmp://HOST:rtmp_port/rtmp_path`).
pub fn streams_json(snapshots: &[ShardSnapshot], rtmp_port: u16) -> String {
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
            let source = i.source.as_ref().map(source_json);
            let rtmp_path = crate::rtmp::play_path(&i.path);
            streams.push(json!({
                "path": &*i.path,
                "rtmp_path": rtmp_path,
                "source": source,
                "owner_shard": shard,
                "tracks": i.tracks.as_ref().map(|t| t.iter().map(track_json).collect::<Vec<_>>()).unwrap_or_default(),
                "bitrate_in": p.bitrate_in,
                "bytes_in": i.bytes_in,
                "frames_in": i.frames_in,
                "frames_dropped": dropped.get(&*i.path).copied().unwrap_or(0),
                "relay_shards": i.relay_shards,
                "viewers": { "total": by_shard.iter().sum::<usize>(), "by_shard": by_shard },
            }));
        }
    }
    streams.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    json!({ "rtmp_port": rtmp_port, "streams": streams }).to_string()
}

/// `GET /api/v1/health`: per-shard status. `ok` is false if a shard missed heartbeats.
pub fn health_json(shared: &Shared, now_ms: u64) -> (bool, String) {
    let mut all_ok = !shared.is_stopping();
    let shards: Vec<Value> = (0..shared.shards())
        .map(|i| {
            let beat = shared.heartbeats[i].load(Ordering::Relaxed);
            let lag = now_ms.saturating_sub(beat);
            let ok = lag < 2000;
            all_ok &= ok;
            let cpu = shared.cpus[i].load(Ordering::Relaxed);
            let st = &shared.stats[i];
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
            })
        })
        .collect();
    let uptime = shared.started.elapsed().map(|d| d.as_secs()).unwrap_or(0);
    let body = json!({
        "status": if all_ok { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": uptime,
        "shards": shards,
    });
    (all_ok, body.to_string())
}

/// The help text of each exported counter.
fn help(name: &str) -> (&'static str, &'static str) {
    match name {
        "connections" => ("gauge", "Open TCP connections (HTTP, WebSocket, RTMP)."),
        "connections_total" => ("counter", "TCP connections accepted."),
        "connections_refused" => ("counter", "Connections refused at the per-shard limit."),
        "http_requests" => ("counter", "HTTP requests answered."),
        "bytes_in" => ("counter", "Bytes received from clients and sources."),
        "bytes_out" => ("counter", "Bytes sent to clients."),
        "frames_in" => ("counter", "Media frames received from sources."),
        "frames_dropped" => ("counter", "Frames dropped for slow viewers."),
        "mesh_frames_dropped" => (
            "counter",
            "Frames not relayed because a cross-shard channel was full.",
        ),
        "streams" => ("gauge", "Streams owned by the shard."),
        "relays" => ("gauge", "Streams relayed to the shard from their owner."),
        "viewers" => ("gauge", "Viewers attached on the shard."),
        "udp_datagrams_in" => ("counter", "UDP datagrams received on the WebRTC port."),
        "udp_datagrams_out" => ("counter", "UDP datagrams sent from the WebRTC port."),
        "udp_send_dropped" => (
            "counter",
            "UDP datagrams not sent (socket buffer full or send error).",
        ),
        "udp_send_calls" => ("counter", "Send system calls made for WebRTC datagrams."),
        "webrtc_sessions" => ("gauge", "WebRTC sessions open on the shard."),
        "webrtc_sessions_total" => ("counter", "WebRTC sessions created."),
        "webrtc_refused" => ("counter", "WebRTC offers refused at webrtc.max_sessions."),
        "rtp_packets_out" => ("counter", "RTP packets written to WebRTC viewers."),
        "webrtc_gop_resends" => (
            "counter",
            "GOP re-sends answering WebRTC keyframe requests.",
        ),
        "rtsp_sessions" => ("gauge", "RTSP sources connected and delivering media."),
        "rtsp_connects" => (
            "counter",
            "RTSP connection attempts (first and reconnects).",
        ),
        "rtsp_connections" => ("gauge", "Open TCP connections to RTSP cameras."),
        "rtsp_packets_in" => ("counter", "RTP packets received from RTSP cameras."),
        "rtsp_packets_lost" => (
            "counter",
            "RTP packets from RTSP cameras lost in transit (sequence gaps).",
        ),
        _ => ("untyped", "corecast counter."),
    }
}

/// `GET /metrics`: Prometheus text exposition format 0.0.4.
pub fn metrics_text(shared: &Shared, snapshots: &[ShardSnapshot]) -> String {
    let mut out = String::new();
    let per_shard: Vec<Vec<(&'static str, u64)>> =
        shared.stats.iter().map(|s| s.fields()).collect();
    if let Some(first) = per_shard.first() {
        for (k, (name, _)) in first.iter().enumerate() {
            let (kind, text) = help(name);
            let suffix = if kind == "counter" && !name.ends_with("_total") {
                "_total"
            } else {
                ""
            };
            let metric = format!("corecast_{name}{suffix}");
            let _ = writeln!(out, "# HELP {metric} {text}");
            let _ = writeln!(out, "# TYPE {metric} {kind}");
            for (shard, fields) in per_shard.iter().enumerate() {
                let _ = writeln!(out, "{metric}{{shard=\"{shard}\"}} {}", fields[k].1);
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP corecast_stream_bitrate_in_bps Input bitrate of a stream, bits per second."
    );
    let _ = writeln!(out, "# TYPE corecast_stream_bitrate_in_bps gauge");
    for snap in snapshots {
        for p in snap.paths.iter().filter(|p| p.info.role == Role::Owner) {
            let _ = writeln!(
                out,
                "corecast_stream_bitrate_in_bps{{path=\"{}\"}} {}",
                escape_label(&p.info.path),
                p.bitrate_in
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP corecast_stream_viewers Viewers of a stream on a shard."
    );
    let _ = writeln!(out, "# TYPE corecast_stream_viewers gauge");
    for (shard, snap) in snapshots.iter().enumerate() {
        for p in &snap.paths {
            let _ = writeln!(
                out,
                "corecast_stream_viewers{{path=\"{}\",shard=\"{shard}\"}} {}",
                escape_label(&p.info.path),
                p.info.viewers
            );
        }
    }
    source_metrics(&mut out, snapshots);
    out
}

/// Per-source families: state and, for pulled sources, per-track receive counters.
fn source_metrics(out: &mut String, snapshots: &[ShardSnapshot]) {
    let owned: Vec<(&str, &crate::stream::SourceInfo)> = snapshots
        .iter()
        .flat_map(|s| s.paths.iter())
        .filter(|p| p.info.role == Role::Owner)
        .filter_map(|p| Some((&*p.info.path, p.info.source.as_ref()?)))
        .collect();
    let _ = writeln!(
        out,
        "# HELP corecast_source_up Whether a stream's source is live (1) or not (connecting, retrying, idle: 0)."
    );
    let _ = writeln!(out, "# TYPE corecast_source_up gauge");
    for (path, s) in &owned {
        let _ = writeln!(
            out,
            "corecast_source_up{{path=\"{}\",kind=\"{}\"}} {}",
            escape_label(path),
            s.kind,
            u8::from(s.state == crate::stream::SourceState::Live)
        );
    }
    let pulled: Vec<(&str, &crate::stream::SourceStats)> = owned
        .iter()
        .filter_map(|(p, s)| Some((*p, s.stats.as_ref()?)))
        .collect();
    let _ = writeln!(
        out,
        "# HELP corecast_source_reconnects_total Sessions a pulled source started after its first."
    );
    let _ = writeln!(out, "# TYPE corecast_source_reconnects_total counter");
    for (path, st) in &pulled {
        let _ = writeln!(
            out,
            "corecast_source_reconnects_total{{path=\"{}\"}} {}",
            escape_label(path),
            st.reconnects
        );
    }
    type Field = fn(&crate::stream::SourceTrackStats) -> u64;
    let families: [(&str, &str, &str, Field); 5] = [
        (
            "source_packets_total",
            "counter",
            "RTP packets received per track.",
            |t| t.packets,
        ),
        (
            "source_packets_lost_total",
            "counter",
            "RTP packets lost per track (sequence gaps).",
            |t| t.lost,
        ),
        (
            "source_frames_total",
            "counter",
            "Frames depacketized per track.",
            |t| t.frames,
        ),
        (
            "source_frames_dropped_total",
            "counter",
            "Frames dropped per track (incomplete, or waiting for a keyframe after loss).",
            |t| t.frames_dropped,
        ),
        (
            "source_bitrate_bps",
            "gauge",
            "Received bitrate per track, bits per second.",
            |t| t.bitrate,
        ),
    ];
    for (name, kind, text, field) in families {
        let _ = writeln!(out, "# HELP corecast_{name} {text}");
        let _ = writeln!(out, "# TYPE corecast_{name} {kind}");
        for (path, st) in &pulled {
            for (id, t) in st.tracks.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "corecast_{name}{{path=\"{}\",track=\"{id}\",codec=\"{}\"}} {}",
                    escape_label(path),
                    t.codec,
                    field(t)
                );
            }
        }
    }
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
