//! Per-shard counters, written by their shard and read by any shard for `/metrics` and
//! the API. Relaxed atomics: each counter is exact; a snapshot across counters is not.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a metric is, for Prometheus: a `counter` only goes up (its family name ends in
/// `_total`), a `gauge` goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic since start.
    Counter,
    /// A level that goes up and down.
    Gauge,
}

impl MetricKind {
    /// The `# TYPE` word.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        }
    }
}

/// One exported metric family, declared once: name (without the `corecast_` prefix),
/// kind and help text. The `/metrics` writer prints only declared families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// Name without the `corecast_` prefix.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// The `# HELP` text.
    pub help: &'static str,
}

impl Metric {
    /// A counter.
    pub const fn counter(name: &'static str, help: &'static str) -> Metric {
        Metric {
            name,
            kind: MetricKind::Counter,
            help,
        }
    }

    /// A gauge.
    pub const fn gauge(name: &'static str, help: &'static str) -> Metric {
        Metric {
            name,
            kind: MetricKind::Gauge,
            help,
        }
    }

    /// The exported family name: `corecast_` + name, `_total` added to a counter that
    /// lacks it.
    pub fn family(&self) -> String {
        let suffix = match self.kind {
            MetricKind::Counter if !self.name.ends_with("_total") => "_total",
            _ => "",
        };
        format!("corecast_{}{suffix}", self.name)
    }

    /// Writes the family's `# HELP` and `# TYPE` lines; returns the family name.
    pub fn write_header(&self, out: &mut String) -> String {
        let family = self.family();
        let _ = writeln!(out, "# HELP {family} {}", self.help);
        let _ = writeln!(out, "# TYPE {family} {}", self.kind.as_str());
        family
    }
}

/// Declares a struct of atomic counters, each with its kind and help text
/// (`name: Counter, "help"`), and the [`Metric`] of each, in field order.
macro_rules! counters {
    ($(#[$m:meta])* $name:ident { $($field:ident: $kind:ident, $help:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Default)]
        pub struct $name {
            $(#[doc = $help] pub $field: AtomicU64,)*
        }

        impl $name {
            /// Every counter's declaration, in field order.
            pub const METRICS: &'static [Metric] = &[
                $(Metric { name: stringify!($field), kind: MetricKind::$kind, help: $help },)*
            ];

            /// Every counter with its declaration, in field order.
            pub fn fields(&self) -> Vec<(&'static Metric, u64)> {
                let values = [$(self.$field.load(Ordering::Relaxed),)*];
                Self::METRICS.iter().zip(values).collect()
            }
        }
    };
}

counters! {
    /// Counters of one shard.
    ShardStats {
        connections: Gauge, "Open TCP connections (HTTP, WebSocket, RTMP).",
        connections_total: Counter, "TCP connections accepted.",
        connections_refused: Counter, "Connections refused at a limit (per shard or per address).",
        http_connections: Gauge, "Open HTTP and WebSocket connections.",
        rtmp_connections: Gauge, "Open RTMP connections.",
        accept_errors: Counter, "Failed accepts on the HTTP and RTMP listeners (e.g. out of file descriptors).",
        http_requests: Counter, "HTTP requests answered.",
        http_origin_refused: Counter, "WebSocket upgrades refused for a foreign Origin (403).",
        tls_handshake_failures: Counter, "TLS handshakes on the HTTPS and RTMPS listeners that failed (not TLS, refused by rustls, or not completed in time).",
        bytes_in: Counter, "Bytes received from clients and sources.",
        bytes_out: Counter, "Bytes sent to clients.",
        frames_in: Counter, "Media frames received from sources.",
        frames_dropped: Counter, "Frames dropped for slow viewers.",
        mesh_frames_dropped: Counter, "Frames not relayed because a cross-shard channel was full.",
        timeline_jumps: Counter, "Jumps of a publisher's clock absorbed (the stream's timeline went on).",
        streams: Gauge, "Streams owned by the shard.",
        relays: Gauge, "Streams relayed to the shard from their owner.",
        viewers: Gauge, "Viewers attached on the shard.",
        udp_datagrams_in: Counter, "UDP datagrams received on the WebRTC port.",
        udp_datagrams_out: Counter, "UDP datagrams sent from the WebRTC port.",
        udp_send_dropped: Counter, "UDP datagrams not sent (socket buffer full or send error).",
        udp_send_calls: Counter, "Send system calls made for WebRTC datagrams.",
        webrtc_sessions: Gauge, "WebRTC sessions open on the shard.",
        webrtc_sessions_total: Counter, "WebRTC sessions created.",
        webrtc_refused: Counter, "WebRTC offers refused at webrtc.max_sessions.",
        webrtc_refused_per_ip: Counter, "WebRTC offers refused at webrtc.max_sessions_per_ip.",
        rtp_packets_out: Counter, "RTP packets written to WebRTC viewers.",
        webrtc_gop_resends: Counter, "GOP re-sends answering WebRTC keyframe requests.",
        webrtc_gop_resends_skipped: Counter, "WebRTC keyframe requests not answered: the shard's webrtc.gop_resend_budget was spent.",
        whip_publishers: Gauge, "WHIP publishers connected to the shard.",
        whip_packets_in: Counter, "RTP packets received from WHIP publishers (retransmissions included).",
        whip_packets_lost: Counter, "RTP packets from WHIP publishers still missing when their frame was due (after retransmission).",
        whip_frames_dropped: Counter, "Frames from WHIP publishers dropped (a lost packet, a malformed payload, or waiting for a keyframe after one).",
        whip_keyframe_requests: Counter, "Keyframe requests (PLI) sent to WHIP publishers.",
        rtsp_sessions: Gauge, "RTSP sources connected and delivering media.",
        rtsp_connects: Counter, "RTSP connection attempts (first and reconnects).",
        rtsp_connections: Gauge, "Open TCP connections to RTSP cameras.",
        rtsp_packets_in: Counter, "RTP packets received from RTSP cameras.",
        rtsp_packets_lost: Counter, "RTP packets from RTSP cameras lost in transit (sequence gaps).",
        rtsp_foreign_packets: Counter, "UDP datagrams on RTSP sources' ports from a sender other than the camera's address and SETUP ports (dropped).",
        rtsp_ssrc_dropped_packets: Counter, "RTP packets from RTSP cameras of an SSRC other than the one the track is locked on (dropped; a new SSRC is taken after 1 s of silence).",
    }
}

/// Input bitrate of a stream (owner shard; label `path`).
pub const STREAM_BITRATE_IN: Metric = Metric::gauge(
    "stream_bitrate_in_bps",
    "Input bitrate of a stream, bits per second.",
);
/// Viewers of a stream on a shard (labels `path`, `shard`).
pub const STREAM_VIEWERS: Metric =
    Metric::gauge("stream_viewers", "Viewers of a stream on a shard.");
/// Whether a stream's AAC is being transcoded to Opus for browsers (label `path`).
pub const STREAM_TRANSCODING: Metric = Metric::gauge(
    "stream_transcoding",
    "Whether a stream's AAC audio is being transcoded to Opus for browser viewers (1) or not (0).",
);
/// CPU time a stream's transcoding used (label `path`).
pub const STREAM_TRANSCODE_CPU: Metric = Metric::counter(
    "stream_transcode_cpu_microseconds_total",
    "CPU time spent transcoding a stream's AAC audio to Opus, microseconds.",
);
/// Audio frames a stream's transcoding could not decode or encode (label `path`).
pub const STREAM_TRANSCODE_ERRORS: Metric = Metric::counter(
    "stream_transcode_errors_total",
    "Audio frames that failed to decode (replaced by silence) or encode (dropped) while transcoding to Opus.",
);
/// Whether a stream's source is live (labels `path`, `kind`).
pub const SOURCE_UP: Metric = Metric::gauge(
    "source_up",
    "Whether a stream's source is live (1) or not (connecting, retrying, idle: 0).",
);
/// Sessions a pulled source started after its first (label `path`).
pub const SOURCE_RECONNECTS: Metric = Metric::counter(
    "source_reconnects_total",
    "Sessions a pulled source started after its first.",
);
/// RTP packets received per track of a pulled source (labels `path`, `track`, `codec`).
pub const SOURCE_PACKETS: Metric =
    Metric::counter("source_packets_total", "RTP packets received per track.");
/// RTP packets lost per track of a pulled source.
pub const SOURCE_PACKETS_LOST: Metric = Metric::counter(
    "source_packets_lost_total",
    "RTP packets lost per track (sequence gaps).",
);
/// Frames depacketized per track of a pulled source.
pub const SOURCE_FRAMES: Metric =
    Metric::counter("source_frames_total", "Frames depacketized per track.");
/// Frames dropped per track of a pulled source.
pub const SOURCE_FRAMES_DROPPED: Metric = Metric::counter(
    "source_frames_dropped_total",
    "Frames dropped per track (incomplete, or waiting for a keyframe after loss).",
);
/// Received bitrate per track of a pulled source.
pub const SOURCE_BITRATE: Metric = Metric::gauge(
    "source_bitrate_bps",
    "Received bitrate per track, bits per second.",
);

/// The labelled families of streams and sources, in the order `/metrics` writes them
/// (after the [`ShardStats::METRICS`]).
pub const PATH_METRICS: &[Metric] = &[
    STREAM_BITRATE_IN,
    STREAM_VIEWERS,
    STREAM_TRANSCODING,
    STREAM_TRANSCODE_CPU,
    STREAM_TRANSCODE_ERRORS,
    SOURCE_UP,
    SOURCE_RECONNECTS,
    SOURCE_PACKETS,
    SOURCE_PACKETS_LOST,
    SOURCE_FRAMES,
    SOURCE_FRAMES_DROPPED,
    SOURCE_BITRATE,
];

/// Adds to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Subtracts from a gauge, saturating at zero.
pub fn sub(c: &AtomicU64, n: u64) {
    let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
}

/// Reads a counter.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_shard_counter_is_declared_with_kind_and_help() {
        let stats = ShardStats::default();
        // The Debug form lists the struct's fields, independently of the declarations.
        let debug = format!("{stats:?}");
        assert_eq!(
            debug.matches(": ").count(),
            ShardStats::METRICS.len(),
            "{debug}"
        );
        let fields = stats.fields();
        assert_eq!(fields.len(), ShardStats::METRICS.len());
        for (metric, value) in fields {
            assert!(
                debug.contains(&format!("{}: ", metric.name)),
                "{}",
                metric.name
            );
            assert!(
                metric.help.ends_with('.') && metric.help.len() > 10,
                "{metric:?}"
            );
            assert_eq!(value, 0);
        }
        add(&stats.rtsp_packets_lost, 3);
        let lost = stats
            .fields()
            .into_iter()
            .find(|(m, _)| m.name == "rtsp_packets_lost");
        assert_eq!(
            lost.map(|(m, v)| (m.kind, v)),
            Some((MetricKind::Counter, 3))
        );
    }

    #[test]
    fn family_names_are_unique_and_counters_end_in_total() {
        let all = ShardStats::METRICS.iter().chain(PATH_METRICS);
        let mut seen = HashSet::new();
        for m in all {
            let family = m.family();
            assert!(seen.insert(family.clone()), "{family} declared twice");
            assert!(family.starts_with("corecast_"), "{family}");
            match m.kind {
                MetricKind::Counter => assert!(family.ends_with("_total"), "{family}"),
                MetricKind::Gauge => assert!(!family.ends_with("_total"), "{family}"),
            }
        }
        assert_eq!(
            Metric::counter("bytes_in", "x").family(),
            "corecast_bytes_in_total"
        );
        assert_eq!(Metric::counter("a_total", "x").family(), "corecast_a_total");
        assert_eq!(Metric::gauge("viewers", "x").family(), "corecast_viewers");
    }

    #[test]
    fn header_is_help_then_type() {
        let mut out = String::new();
        let family = STREAM_VIEWERS.write_header(&mut out);
        assert_eq!(family, "corecast_stream_viewers");
        assert_eq!(
            out,
            "# HELP corecast_stream_viewers Viewers of a stream on a shard.\n\
             # TYPE corecast_stream_viewers gauge\n"
        );
    }
}
