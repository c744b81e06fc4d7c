//! The server-added frame latency (`corecast_frame_latency_seconds`, per protocol out):
//! ffmpeg publishes over RTMP, a WHEP viewer (the project's client) and an RTMP player
//! (ffmpeg) watch. `/metrics` counts observations for both protocols, growing, in a
//! well-formed histogram; the health API shows the percentiles. Pulled sources (the file
//! source, an RTSP camera over UDP) stamp their frames too. No timing is asserted: the
//! numbers are printed (`--nocapture`).
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::camera::{Camera, CameraOpts};
use common::*;
use corecast_client::{ReceiveMode, WhepViewer};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const FAMILY: &str = "corecast_frame_latency_seconds";
/// How long the WHEP viewer plays.
const VIEWING: Duration = Duration::from_secs(20);

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One protocol's histogram as `/metrics` shows it.
#[derive(Debug, Default, Clone)]
struct Histogram {
    /// `(le, cumulative count)` in the order written.
    buckets: Vec<(f64, u64)>,
    sum: f64,
    count: u64,
}

/// The `protocol` histograms of the latency family in `text`.
fn histograms(text: &str) -> BTreeMap<String, Histogram> {
    let mut out: BTreeMap<String, Histogram> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with(FAMILY)) {
        let (sample, value) = line.rsplit_once(' ').expect("a value");
        let (name, labels) = sample.split_once('{').expect("labels");
        let labels = labels.strip_suffix('}').expect("closed labels");
        let label = |key: &str| {
            labels.split(',').find_map(|kv| {
                let v = kv.strip_prefix(key)?.strip_prefix("=\"")?;
                v.strip_suffix('"').map(str::to_string)
            })
        };
        let protocol = label("protocol").unwrap_or_else(|| panic!("no protocol: {line}"));
        let h = out.entry(protocol).or_default();
        match &name[FAMILY.len()..] {
            "_bucket" => {
                let le = label("le").unwrap_or_else(|| panic!("no le: {line}"));
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().expect("le")
                };
                h.buckets.push((le, value.parse().expect("bucket count")));
            }
            "_sum" => h.sum = value.parse().expect("sum"),
            "_count" => h.count = value.parse().expect("count"),
            other => panic!("unexpected sample {other}: {line}"),
        }
    }
    out
}

/// Bounds increase up to `+Inf`, counts are cumulative, `+Inf` is the count, the sum is
/// finite (and so is the mean).
fn check_shape(protocol: &str, h: &Histogram) {
    assert!(h.buckets.len() > 2, "{protocol}: {h:?}");
    for w in h.buckets.windows(2) {
        assert!(w[0].0 < w[1].0, "{protocol}: bounds out of order: {h:?}");
        assert!(w[0].1 <= w[1].1, "{protocol}: not cumulative: {h:?}");
    }
    let last = h.buckets.last().expect("buckets");
    assert!(last.0.is_infinite(), "{protocol}: no +Inf bucket: {h:?}");
    assert_eq!(last.1, h.count, "{protocol}: +Inf is not the count");
    assert!(
        h.sum.is_finite() && h.sum >= 0.0,
        "{protocol}: sum {}",
        h.sum
    );
    if h.count > 0 {
        assert!((h.sum / h.count as f64).is_finite());
    }
}

/// Every bucket, the sum and the count of `later` are at least those of `earlier`.
fn check_grew_monotonically(protocol: &str, earlier: &Histogram, later: &Histogram) {
    assert!(
        later.count > earlier.count,
        "{protocol}: no new observations ({} then {})",
        earlier.count,
        later.count
    );
    assert!(later.sum >= earlier.sum, "{protocol}: the sum went down");
    for (a, b) in earlier.buckets.iter().zip(&later.buckets) {
        assert_eq!(a.0, b.0);
        assert!(b.1 >= a.1, "{protocol}: bucket le={} went down", a.0);
    }
}

/// The Prometheus Python client reads the family as a histogram.
fn prometheus_client_reads_a_histogram(text: &str) {
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
f = fams["corecast_frame_latency_seconds"]
assert f.type == "histogram", f.type
names = {s.name for s in f.samples}
assert names == {"corecast_frame_latency_seconds_bucket", "corecast_frame_latency_seconds_sum",
                 "corecast_frame_latency_seconds_count"}, names
"#;
    let mut py = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    py.stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = py.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "prometheus_client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits (bounded) until `/metrics` has observations of both protocols; returns them.
fn wait_observed(s: &Server, limit: Duration) -> BTreeMap<String, Histogram> {
    let end = Instant::now() + limit;
    loop {
        let h = histograms(&s.get("/metrics").body_text());
        let seen = |p: &str| h.get(p).is_some_and(|h| h.count > 0);
        if seen("webrtc") && seen("rtmp") {
            return h;
        }
        assert!(
            Instant::now() < end,
            "no latency observed for both protocols within {limit:?}: {h:?}\nlog:\n{}",
            s.drain_log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn whep_and_rtmp_viewers_of_an_rtmp_publisher_fill_the_latency_histogram() {
    require_tool("python3");
    let s = Server::start("latency", &test_config(""));
    let url = format!("rtmp://{}/live/lat", s.rtmp);
    let file = root().join("tests/data/ffmpeg_320x240_baseline_aac.flv");
    let _publisher = Killed(ffmpeg_publish_loop(&file, &[], &url));
    s.wait_stream("live/lat", |st| {
        !st["tracks"].as_array().is_none_or(Vec::is_empty)
    });
    // Before anyone watches, both protocols are there with no observations.
    let text = s.get("/metrics").body_text();
    let idle = histograms(&text);
    for protocol in ["webrtc", "rtmp"] {
        let h = idle.get(protocol).expect("declared for both protocols");
        check_shape(protocol, h);
        assert_eq!(h.count, 0, "{protocol}");
    }
    prometheus_client_reads_a_histogram(&text);

    let http = s.http;
    let viewer = std::thread::spawn(move || {
        let mut v = WhepViewer::connect(http, "live/lat", ReceiveMode::Light, HTTP_TIMEOUT)
            .unwrap_or_else(|e| panic!("WHEP: {e}"));
        v.run_for(VIEWING).expect("session alive");
        let packets = v.stats().packets;
        let _ = v.close();
        packets
    });
    let _player = Killed(ffmpeg_player(&url));

    let first = wait_observed(&s, Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(2));
    let text = s.get("/metrics").body_text();
    let second = histograms(&text);
    for protocol in ["webrtc", "rtmp"] {
        let (a, b) = (&first[protocol], &second[protocol]);
        check_shape(protocol, a);
        check_shape(protocol, b);
        check_grew_monotonically(protocol, a, b);
    }
    prometheus_client_reads_a_histogram(&text);

    let health = s.get_json("/api/v1/health");
    let mut per_shard = [0u64; 2];
    for (k, protocol) in ["webrtc", "rtmp"].into_iter().enumerate() {
        let l = &health["frame_latency"][protocol];
        let count = l["count"].as_u64().expect("count");
        assert!(count > 0, "{protocol}: {health}");
        let p50 = l["p50_ms"].as_f64().expect("p50");
        let p99 = l["p99_ms"].as_f64().expect("p99");
        assert!(p50.is_finite() && p99.is_finite() && p50 >= 0.0 && p99 >= p50);
        let h = &second[protocol];
        eprintln!(
            "{protocol}: {count} observations, p50 {p50} ms, p99 {p99} ms, mean {:.3} ms",
            h.sum / h.count as f64 * 1e3
        );
        for shard in health["shards"].as_array().expect("shards") {
            per_shard[k] += shard["frame_latency"][protocol]["count"]
                .as_u64()
                .expect("per-shard count");
        }
        assert_eq!(
            per_shard[k], count,
            "{protocol}: shards and total: {health}"
        );
    }
    let packets = viewer.join().expect("viewer thread");
    assert!(packets > 0, "the WHEP viewer got no RTP");
}

/// WebRTC observations so far, summed over the shards.
fn webrtc_count(s: &Server) -> u64 {
    histograms(&s.get("/metrics").body_text())
        .get("webrtc")
        .map_or(0, |h| h.count)
}

/// Watches `path` over WHEP for `d` (Light mode); returns the RTP packets received.
fn watch(s: &Server, path: &str, d: Duration) -> u64 {
    let mut v = WhepViewer::connect(s.http, path, ReceiveMode::Light, HTTP_TIMEOUT)
        .unwrap_or_else(|e| panic!("WHEP {path}: {e}"));
    v.run_for(d).expect("session alive");
    let packets = v.stats().packets;
    let _ = v.close();
    packets
}

#[test]
fn frames_of_the_file_source_and_an_rtsp_camera_are_measured_too() {
    let cam = Camera::start(&CameraOpts {
        audio: "none",
        ..CameraOpts::default()
    });
    let camera = format!(
        "[[streams]]\npath = \"cam\"\nsource = \"{}\"\ntransport = \"udp\"\nshard = 1\n",
        cam.url
    );
    let cfg = test_config(&format!("{}{camera}", demo_stream("demo", 0)));
    let s = Server::start("latency-pulled", &cfg);
    for path in ["demo", "cam"] {
        s.wait_state(path, Duration::from_secs(20), |st| st == "live");
        s.wait_stream(path, |st| {
            !st["tracks"].as_array().is_none_or(Vec::is_empty)
        });
        let before = webrtc_count(&s);
        let packets = watch(&s, path, Duration::from_secs(4));
        assert!(packets > 0, "{path}: no RTP");
        let after = webrtc_count(&s);
        let h = &s.get_json("/api/v1/health")["frame_latency"]["webrtc"];
        eprintln!(
            "{path}: {} observations, server p50 {} ms, p99 {} ms",
            after - before,
            h["p50_ms"],
            h["p99_ms"]
        );
        assert!(
            after > before,
            "{path}: no latency observed ({before} then {after})"
        );
    }
}
