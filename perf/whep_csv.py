"""perf/whep_load.sh's runs (its JSON rows) as CSV, one row per run, on stdout.

usage: python3 perf/whep_csv.py ROWS.jsonl SHARDS COMMIT

The columns are listed in perf/README.md ("Results as data"). Empty cells: not measured
(the owner_*/relay_* columns with one shard, latency without observations).
"""

import csv
import json
import os
import sys

COLUMNS = [
    "server", "shards", "variant", "series", "n", "viewers", "cpu_pct", "cpu_pct_per_viewer",
    "cpu_pct_per_viewer_net", "idle_cpu_pct", "rss_idle_kib", "rss_kib_per_viewer",
    "us_per_viewer_packet", "mbps_median", "mbps_p5", "pkts_per_s_per_viewer", "loss_pct",
    "frame_loss_pct", "ttff_p50_ms", "ttff_p95_ms", "ttff_p99_ms", "failed", "dropped",
    "latency_p50_ms", "latency_p99_ms", "owner_shard", "owner_cpu_pct", "owner_viewers",
    "owner_cpu_pct_per_viewer", "relay_cpu_pct", "relay_viewers", "relay_cpu_pct_per_viewer",
    "relay_to_owner", "datagrams_per_send_call", "load_cpu_pct", "other_on_core_pct",
    "commit", "metrics",
]


def cell(x):
    if x is None:
        return ""
    return f"{x:.6g}" if isinstance(x, float) else x


def row(r, shards, commit):
    l = r["load"]
    by = {s["role"]: s for s in r.get("shards", [])} if len(r.get("shards", [])) > 1 else {}
    o, rl = by.get("owner", {}), by.get("relay", {})
    ratio = (rl["cpu_pct_per_viewer"] / o["cpu_pct_per_viewer"]
             if o.get("cpu_pct_per_viewer") and rl.get("cpu_pct_per_viewer") else None)
    bitrate = l["bitrate_per_viewer_bps"]
    ttff = l["ttff_ms"]
    return {
        "server": "corecast", "shards": shards, "series": r["series"],
        "variant": "sendmmsg" if r["batch_send"] else "sendto", "n": r["n"],
        "viewers": r["viewers"], "cpu_pct": r["cpu_pct"],
        "cpu_pct_per_viewer": r["cpu_pct_per_viewer"],
        "cpu_pct_per_viewer_net": r["cpu_pct_per_viewer_net"], "idle_cpu_pct": r["idle_cpu_pct"],
        "rss_idle_kib": r["rss_idle_kib"], "rss_kib_per_viewer": r["rss_per_viewer_kib"],
        "us_per_viewer_packet": r["us_per_viewer_packet"],
        "mbps_median": bitrate["median"] / 1e6, "mbps_p5": bitrate["p5"] / 1e6,
        "pkts_per_s_per_viewer": l["packets_per_s_per_viewer"], "loss_pct": l["loss_pct"],
        "frame_loss_pct": l["frame_loss_pct"], "ttff_p50_ms": ttff["p50"],
        "ttff_p95_ms": ttff["p95"], "ttff_p99_ms": ttff["p99"],
        "failed": l["viewers_failed"], "dropped": l["viewers_dropped"],
        "latency_p50_ms": r.get("latency_p50_ms"), "latency_p99_ms": r.get("latency_p99_ms"),
        "owner_shard": o.get("shard"), "owner_cpu_pct": o.get("cpu_pct"),
        "owner_viewers": o.get("viewers"), "owner_cpu_pct_per_viewer": o.get("cpu_pct_per_viewer"),
        "relay_cpu_pct": rl.get("cpu_pct"), "relay_viewers": rl.get("viewers"),
        "relay_cpu_pct_per_viewer": rl.get("cpu_pct_per_viewer"), "relay_to_owner": ratio,
        "datagrams_per_send_call": r["datagrams_per_send_call"],
        "load_cpu_pct": l["load_cpu_pct"], "other_on_core_pct": r["other_on_core_pct"],
        "commit": commit,
        # The scrapes' common name (<this>.start.prom, <this>.end.prom) beside the CSV.
        "metrics": os.path.basename(r["metrics"]) if r["series"] != "profile" else "",
    }


def main():
    rows_path, shards, commit = sys.argv[1:]
    w = csv.DictWriter(sys.stdout, COLUMNS, lineterminator="\n")
    w.writeheader()
    for line in open(rows_path):
        if line.strip():
            w.writerow({k: cell(v) for k, v in row(json.loads(line), shards, commit).items()})


if __name__ == "__main__":
    main()
