//! Per-shard counters and histograms, written by their shard and read by any shard for
//! `/metrics` and the API. Relaxed atomics: each counter is exact; a snapshot across
//! counters is not.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// What a metric is, for Prometheus: a `counter` only goes up (its family name ends in
/// `_total`), a `gauge` goes up and down, a `histogram` counts observations in buckets
/// (samples `_bucket{le=..}`, `_sum`, `_count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic since start.
    Counter,
    /// A level that goes up and down.
    Gauge,
    /// Observations counted in fixed buckets ([`Histogram`]).
    Histogram,
}

impl MetricKind {
    /// The `# TYPE` word.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One exported metric family, declared once: name (without the `corecast_` prefix),
/// kind and help text. The `/metrics` writer prints only declared families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// Name without the `corecast_` prefix.
    pub name: &'static str,
    /// Counter, gauge or histogram.
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

    /// A histogram.
    pub const fn histogram(name: &'static str, help: &'static str) -> Metric {
        Metric {
            name,
            kind: MetricKind::Histogram,
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
        udp_send_messages: Counter, "Messages in the send calls for WebRTC datagrams: one datagram each, or with UDP GSO (webrtc.gso) a run of datagrams to one viewer.",
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

/// Upper bounds of the [`Histogram`] buckets, microseconds (0.1 ms to 1 s); a last
/// bucket, `+Inf`, takes what is above.
pub const LATENCY_BUCKETS_MICROS: [u64; 13] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// Buckets of a [`Histogram`]: the bounds, then `+Inf`.
const BUCKETS: usize = LATENCY_BUCKETS_MICROS.len() + 1;

/// A Prometheus histogram of durations over the fixed buckets [`LATENCY_BUCKETS_MICROS`],
/// written by its shard with relaxed atomics (two adds per observation). Durations are
/// kept in microseconds and exported in seconds. The count is the sum of the buckets, so
/// that `_count` equals the `+Inf` bucket even in a snapshot taken while the shard
/// observes (`_sum` may then lag by an observation).
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; BUCKETS],
    /// Sum of the observations, microseconds.
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Counts one observation of `micros` microseconds.
    pub fn observe_micros(&self, micros: u64) {
        // The first bucket whose bound is not below the value (Prometheus' `le`).
        let i = LATENCY_BUCKETS_MICROS.partition_point(|&bound| bound < micros);
        if let Some(b) = self.buckets.get(i) {
            add(b, 1);
        }
        add(&self.sum_micros, micros);
    }

    /// Counts the time from `from` to `to` (zero if `to` is earlier).
    pub fn observe(&self, from: Instant, to: Instant) {
        let d = to.saturating_duration_since(from);
        self.observe_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// The counts now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| get(&self.buckets[i])),
            sum_micros: get(&self.sum_micros),
        }
    }
}

/// The counts of a [`Histogram`] at one moment, or of several added up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    pub buckets: [u64; BUCKETS],
    /// Sum of the observations, microseconds.
    pub sum_micros: u64,
}

impl HistogramSnapshot {
    /// Observations counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Adds `other`'s counts (another shard's) to these.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.sum_micros += other.sum_micros;
    }

    /// The `q` quantile (0 to 1) in seconds, interpolated linearly within its bucket as
    /// Prometheus' `histogram_quantile` does (the first bucket starts at 0); the highest
    /// finite bound if it falls in `+Inf`; `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let top = LATENCY_BUCKETS_MICROS[LATENCY_BUCKETS_MICROS.len() - 1];
        let rank = q.clamp(0.0, 1.0) * count as f64;
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n > 0 && (below + n) as f64 >= rank {
                let Some(&upper) = LATENCY_BUCKETS_MICROS.get(i) else {
                    break;
                };
                let lower = i.checked_sub(1).map_or(0, |j| LATENCY_BUCKETS_MICROS[j]);
                let within = (rank - below as f64) / n as f64;
                return Some((lower as f64 + (upper - lower) as f64 * within) / 1e6);
            }
            below += n;
        }
        Some(top as f64 / 1e6)
    }

    /// Writes the samples of one labelled histogram of `family`: the cumulative
    /// `_bucket{labels,le=..}` lines, then `_sum` (seconds) and `_count`.
    pub fn write_samples(&self, out: &mut String, family: &str, labels: &str) {
        let mut cumulative = 0u64;
        for (i, n) in self.buckets.iter().enumerate() {
            cumulative += n;
            let le = match LATENCY_BUCKETS_MICROS.get(i) {
                Some(bound) => seconds(*bound),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(out, "{family}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let sum = seconds(self.sum_micros);
        let _ = writeln!(out, "{family}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{family}_count{{{labels}}} {cumulative}");
    }
}

/// Microseconds as seconds in Prometheus' text (`0.00025`, `1`).
fn seconds(micros: u64) -> String {
    (micros as f64 / 1e6).to_string()
}

/// The server-added latency of live frames on one shard, per protocol out: from the
/// moment the ingest driver read the frame's last byte or packet to the moment the
/// frame's first packet was handed to the socket for a viewer.
#[derive(Debug, Default)]
pub struct FrameLatency {
    /// To WebRTC viewers.
    pub webrtc: Histogram,
    /// To RTMP players.
    pub rtmp: Histogram,
}

impl FrameLatency {
    /// The `protocol` label values, in the order `/metrics` writes them.
    pub const PROTOCOLS: [&'static str; 2] = ["webrtc", "rtmp"];

    /// Each protocol's label value and histogram, in [`FrameLatency::PROTOCOLS`] order.
    pub fn by_protocol(&self) -> [(&'static str, &Histogram); 2] {
        let [webrtc, rtmp] = Self::PROTOCOLS;
        [(webrtc, &self.webrtc), (rtmp, &self.rtmp)]
    }

    /// Each protocol's counts now, added to `totals` (in [`FrameLatency::PROTOCOLS`]
    /// order): the sum over shards.
    pub fn add_to(&self, totals: &mut [HistogramSnapshot; 2]) {
        for (total, (_, h)) in totals.iter_mut().zip(self.by_protocol()) {
            total.merge(&h.snapshot());
        }
    }
}

/// Server-added frame latency per protocol out (label `protocol`), summed over shards.
pub const FRAME_LATENCY: Metric = Metric::histogram(
    "frame_latency_seconds",
    "Server-added latency of live frames per protocol out: from the arrival of a frame's last byte or packet to its first packet handed to the socket for a viewer, one observation per viewer and frame. Frames replayed from the GOP cache to a joining viewer, and frames sent before a WebRTC viewer is connected or answering its keyframe request, are not live and not observed.",
);

/// The histogram families, in the order `/metrics` writes them (after the
/// [`PATH_METRICS`]).
pub const HISTOGRAM_METRICS: &[Metric] = &[FRAME_LATENCY];

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
        let all = ShardStats::METRICS
            .iter()
            .chain(PATH_METRICS)
            .chain(HISTOGRAM_METRICS);
        let mut seen = HashSet::new();
        for m in all {
            let family = m.family();
            assert!(seen.insert(family.clone()), "{family} declared twice");
            assert!(family.starts_with("corecast_"), "{family}");
            match m.kind {
                MetricKind::Counter => assert!(family.ends_with("_total"), "{family}"),
                MetricKind::Gauge | MetricKind::Histogram => {
                    assert!(!family.ends_with("_total"), "{family}")
                }
            }
        }
        assert_eq!(FRAME_LATENCY.family(), "corecast_frame_latency_seconds");
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

    #[test]
    fn histogram_buckets_take_values_up_to_their_bound() {
        let h = Histogram::default();
        // On a bound, just above it, below the first, above the last.
        for micros in [
            100,
            101,
            0,
            5_000,
            5_001,
            1_000_000,
            1_000_001,
            u64::MAX / 4,
        ] {
            h.observe_micros(micros);
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 8);
        let mut want = [0u64; BUCKETS];
        want[0] = 2; // 0 and 100 (le 0.0001)
        want[1] = 1; // 101 (le 0.00025)
        want[5] = 1; // 5000 (le 0.005)
        want[6] = 1; // 5001 (le 0.01)
        want[12] = 1; // 1 s (le 1)
        want[13] = 2; // above 1 s (+Inf)
        assert_eq!(s.buckets, want);
        assert_eq!(
            s.sum_micros,
            100 + 101 + 5_000 + 5_001 + 1_000_000 + 1_000_001 + u64::MAX / 4
        );
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // Any instant serves as the origin.
    fn histogram_observes_instants_and_never_goes_negative() {
        let h = Histogram::default();
        let t0 = Instant::now();
        h.observe(t0, t0 + std::time::Duration::from_micros(1_500));
        h.observe(t0 + std::time::Duration::from_millis(1), t0);
        let s = h.snapshot();
        assert_eq!(s.count(), 2);
        assert_eq!(s.sum_micros, 1_500);
        assert_eq!(s.buckets[0], 1); // the negative one counts as 0
        assert_eq!(s.buckets[4], 1); // 1.5 ms: le 0.0025
    }

    #[test]
    fn histogram_quantiles_interpolate_within_the_bucket() {
        let mut s = HistogramSnapshot::default();
        assert_eq!(s.quantile(0.5), None);
        // 100 observations between 1 and 2.5 ms: the median is half-way.
        s.buckets[4] = 100;
        let p50 = s.quantile(0.5).expect("p50");
        assert!((p50 - 0.00175).abs() < 1e-9, "{p50}");
        let p99 = s.quantile(0.99).expect("p99");
        assert!((p99 - 0.002485).abs() < 1e-9, "{p99}");
        // The first bucket starts at 0; +Inf gives the highest bound.
        let mut low = HistogramSnapshot::default();
        low.buckets[0] = 4;
        assert!((low.quantile(0.5).expect("q") - 0.00005).abs() < 1e-12);
        let mut high = HistogramSnapshot::default();
        high.buckets[BUCKETS - 1] = 1;
        assert_eq!(high.quantile(0.99), Some(1.0));
        // Merged shards: 90 fast, 10 slow; p99 lands in the slow bucket.
        let mut a = HistogramSnapshot::default();
        a.buckets[0] = 90;
        a.sum_micros = 90 * 50;
        let mut b = HistogramSnapshot::default();
        b.buckets[8] = 10; // 25..50 ms
        b.sum_micros = 10 * 30_000;
        a.merge(&b);
        assert_eq!(a.count(), 100);
        assert_eq!(a.sum_micros, 90 * 50 + 10 * 30_000);
        assert!(a.quantile(0.5).expect("p50") <= 0.0001);
        let p99 = a.quantile(0.99).expect("p99");
        assert!((0.025..=0.05).contains(&p99), "{p99}");
    }

    #[test]
    fn histogram_text_is_cumulative_with_sum_in_seconds() {
        let h = Histogram::default();
        h.observe_micros(200);
        h.observe_micros(3_000);
        h.observe_micros(2_000_000);
        let mut out = String::new();
        h.snapshot()
            .write_samples(&mut out, "corecast_x_seconds", "protocol=\"rtmp\"");
        let want = "\
corecast_x_seconds_bucket{protocol=\"rtmp\",le=\"0.0001\"} 0
corecast_x_seconds_bucket{protocol=\"rtmp\",le=\"0.00025\"} 1
corecast_x_seconds_bucket{protocol=\"rtmp\",le=\"0.0005\"} 1
corecast_x_seconds_bucket{protocol=\"rtmp\",le=\"0.001\"} 1
corecast_x_seconds_bucket{protocol=\"rtmp\",le=\"0.0025\"} 1
corecast_x_seconds_bucket{protocol=\"rtmp\",le=\"0.005\"} 2
corecast_x_seconds_bucket{protocol=\"rtmp\",le=\"0.01\"} 2
corecast_x_seconds_bucket{protocol=\"rtmp\",le=\"0.025\"} 2
corecast_x_seconds_bucket{protocol=\"rtmp\",le=\"0.05\"} 2
corecast_x_seconds_bucket{protocol=\"rtmp\",le=\"0.1\"} 2
corecast_x_seconds_bucket{protocol=\"rtmp\",le=\"0.25\"} 2
corecast_x_seconds_bucket{protocol=\"rtmp\",le=\"0.5\"} 2
corecast_x_seconds_bucket{protocol=\"rtmp\",le=\"1\"} 2
corecast_x_seconds_bucket{protocol=\"rtmp\",le=\"+Inf\"} 3
corecast_x_seconds_sum{protocol=\"rtmp\"} 2.0032
corecast_x_seconds_count{protocol=\"rtmp\"} 3
";
        assert_eq!(out, want);
        let mut header = String::new();
        FRAME_LATENCY.write_header(&mut header);
        assert!(header.ends_with("# TYPE corecast_frame_latency_seconds histogram\n"));
    }
}
