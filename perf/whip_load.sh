#!/usr/bin/env bash
# WHIP ingest load benchmark: what one corecast shard costs per WHIP publisher, and the
# server-added latency of a WHIP stream's frames with 1, 100 and 400 WebRTC viewers.
#
#   perf/whip_load.sh                              NS="10 25 50", VIEWERS="1 100 400"
#   NS="25" VIEWERS="1 400" DURATION=15 perf/whip_load.sh
#
# Encodes a 20 s 720p30 2 Mbit/s H.264 clip (GOP 2 s, no B-frames). corecast runs one
# shard pinned to CPU $SERVER_CPU; the load tools run on CPU $LOAD_CPU.
#
# Publishers per core: for each N of NS, `corecast-load whip` publishes the clip to
# pub0..pub<N-1> over WHIP (str0m in the tool packetizes, encrypts and answers NACKs);
# once all publish, the server's CPU is read over SETTLE s with no viewer (ingest only),
# then `corecast-load whep` opens one viewer per stream and the server's CPU is read over
# its DURATION s window: CPU per publisher with its viewer.
#
# Latency: one publisher, then for each V of VIEWERS, V viewers of its stream; the
# `corecast_frame_latency_seconds{protocol="webrtc"}` histogram (a frame's last packet in
# to its first packet out to a viewer) is read at the window's start and end, and p50 /
# p99 of the difference are interpolated in its buckets.
#
# Prints a Markdown report and appends it to perf/RESULTS.md.
#
# Environment: NS ("10 25 50"), VIEWERS ("1 100 400"), DURATION (15 s), SETTLE (5 s), RAMP
# (viewers and publishers per second, 50), SERVER_CPU (0), LOAD_CPU (1), RESULTS
# (perf/RESULTS.md), KEEP_TMP=1 keeps the temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

NS=${NS:-"10 25 50"}
VIEWERS=${VIEWERS:-"1 100 400"}
DURATION=${DURATION:-15}
SETTLE=${SETTLE:-5}
RAMP=${RAMP:-50}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
RESULTS=${RESULTS:-perf/RESULTS.md}
CMDLINE="NS=\"$NS\" VIEWERS=\"$VIEWERS\" DURATION=$DURATION SETTLE=$SETTLE RAMP=$RAMP perf/whip_load.sh"

NAME=whip_load
# shellcheck source=perf/lib.sh
. "$REPO/perf/lib.sh"

SERVER_PID="" PUB_PID="" VIEW_PID=""
STOP_VARS="VIEW_PID PUB_PID SERVER_PID"
make_tmp
pin_script "$LOAD_CPU"
need_tools ffmpeg ffprobe python3 taskset curl
build_release
make_clip

start_corecast() {
  local dir=$1 http=$2
  server_config "$dir/corecast.toml" "$http"
  taskset -c "$SERVER_CPU" "$CORECAST" --config "$dir/corecast.toml" >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    curl -s --max-time 1 "http://127.0.0.1:$http/api/v1/health" >/dev/null 2>&1 && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$dir/server.log" >&2
  die "corecast did not start"
}

# The server's latency histogram and WHIP counters, as "name{le}=value" words.
metrics() {
  { curl -s --max-time 10 "http://127.0.0.1:$1/metrics" || true; } | awk '
    /^corecast_frame_latency_seconds_bucket\{.*protocol="webrtc"/ {
      match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); b[le] += $2 }
    /^corecast_frame_latency_seconds_(sum|count)\{.*protocol="webrtc"/ {
      split($1, n, "{"); s[n[1]] += $2 }
    /^corecast_whip_(packets_in|packets_lost|frames_dropped|keyframe_requests)_total/ {
      split($1, n, "{"); s[n[1]] += $2 }
    END { for (k in b) printf "bucket:%s=%s ", k, b[k]; for (k in s) printf "%s=%s ", k, s[k] }'
}

start_publishers() {
  local dir=$1 http=$2 n=$3
  timeout $(( n / RAMP + 60 + DURATION * 4 + SETTLE * 4 )) "$LOAD" whip \
    --url "http://127.0.0.1:$http" --path-template 'pub%d' --publishers "$n" --ramp "$RAMP" \
    --clip "$CLIP" --cpu "$LOAD_CPU" --report 0 >"$dir/pub.json" 2>"$dir/pub.err" &
  PUB_PID=$!
  wait_line "$dir/pub.err" "publishing" $(( n / RAMP + 40 )) "$PUB_PID" \
    || { cat "$dir/pub.err" >&2; die "the publishers did not start"; }
}

# Runs corecast-load whep with $3 viewers over paths $4 (count $5); records the server's
# CPU ticks and metrics at the tool's window start and end into $dir/window.
viewer_window() {
  local dir=$1 http=$2 v=$3 template=$4 count=$5
  local limit=$(( v / RAMP + 40 ))
  timeout $(( limit + DURATION + 30 )) "$LOAD" whep --url "http://127.0.0.1:$http" \
    --path-template "$template" --path-count "$count" --viewers "$v" --ramp "$RAMP" \
    --duration "$DURATION" --settle 3 --cpu "$LOAD_CPU" --stream-fps 30 \
    >"$dir/view.json" 2>"$dir/view.err" &
  VIEW_PID=$!
  wait_line "$dir/view.err" "window start" "$limit" "$VIEW_PID" \
    || { cat "$dir/view.err" >&2; die "the viewers did not start their window"; }
  echo "t0=$(now) c0=$(cpu_ticks "$SERVER_PID") r0=$(rss_kib "$SERVER_PID")" >"$dir/window"
  echo "m0=\"$(metrics "$http")\"" >>"$dir/window"
  wait_line "$dir/view.err" "window end" $(( DURATION + 15 )) "$VIEW_PID" \
    || { cat "$dir/view.err" >&2; die "the viewers did not end their window"; }
  echo "t1=$(now) c1=$(cpu_ticks "$SERVER_PID") r1=$(rss_kib "$SERVER_PID")" >>"$dir/window"
  echo "m1=\"$(metrics "$http")\"" >>"$dir/window"
  local rc=0
  wait "$VIEW_PID" || rc=$?
  VIEW_PID=""
  [ "$rc" = 0 ] || { cat "$dir/view.err" >&2; die "corecast-load whep exited $rc"; }
}

ROWS="$TMP/rows.jsonl"
: >"$ROWS"

# Appends a JSON row for the run in $1 (series $2, publishers $3, viewers $4).
row() {
  local dir=$1 series=$2 n=$3 v=$4
  # shellcheck disable=SC1091
  . "$dir/window"
  python3 - "$series" "$n" "$v" "$CLK_TCK" "$t0" "$c0" "$r0" "$t1" "$c1" "$r1" "$m0" "$m1" \
    "$(cat "$dir/ingest" 2>/dev/null || echo '')" "$dir/view.json" "$dir/pub.json" \
    >>"$ROWS" <<'PY'
import json, sys
(series, n, v, clk, t0, c0, r0, t1, c1, r1, m0, m1, ingest, view, pub) = sys.argv[1:]
clk = float(clk)
w = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / clk / w * 100.0
kv = lambda s: {k: float(x) for k, x in (p.split("=", 1) for p in s.split())}
a, b = kv(m0), kv(m1)
buckets = sorted(((float(k.split(":", 1)[1]) if k.split(":", 1)[1] != "+Inf" else float("inf")),
                  b[k] - a.get(k, 0.0)) for k in b if k.startswith("bucket:"))
count = buckets[-1][1] if buckets else 0.0
def q(p):
    if not count:
        return None
    want, prev_le, prev_c = p * count, 0.0, 0.0
    for le, c in buckets:
        if c >= want:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((want - prev_c) / max(c - prev_c, 1e-9))
        prev_le, prev_c = le, c
    return None
d = lambda k: b.get(k, 0.0) - a.get(k, 0.0)
load = json.load(open(view))
try:
    pubs = json.loads(open(pub).read() or "{}")
except ValueError:
    pubs = {}
ing = {}
if ingest:
    it0, ic0, it1, ic1 = (float(x) for x in ingest.split())
    ing = {"ingest_cpu_pct": (ic1 - ic0) / clk / (it1 - it0) * 100.0}
print(json.dumps(dict(ing, **{
    "series": series, "publishers": int(n), "viewers": int(v), "window_s": round(w, 2),
    "cpu_pct": cpu, "rss_end_kib": int(r1),
    "latency_count": count,
    "latency_p50_ms": (q(0.5) * 1000) if q(0.5) is not None else None,
    "latency_p99_ms": (q(0.99) * 1000) if q(0.99) is not None else None,
    "latency_mean_ms": (d("corecast_frame_latency_seconds_sum") / count * 1000) if count else None,
    "whip_lost": d("corecast_whip_packets_lost_total"),
    "whip_packets": d("corecast_whip_packets_in_total"),
    "whip_dropped_frames": d("corecast_whip_frames_dropped_total"),
    "load": load, "pub": pubs,
})))
PY
  python3 -c '
import json, sys
r = json.loads(sys.stdin.readlines()[-1]); l = r["load"]
f = lambda x: "n/a" if x is None else "%.2f" % x
print("    %s: %d publishers, %d viewers: server cpu %.1f%% (ingest only %s%%), latency p50 %s ms p99 %s ms, viewer loss %.4f%%, whip lost %d" % (
  r["series"], r["publishers"], r["viewers"], r["cpu_pct"], f(r.get("ingest_cpu_pct")),
  f(r["latency_p50_ms"]), f(r["latency_p99_ms"]), l["loss_pct"], r["whip_lost"]))' <"$ROWS" >&2
}

# --- publishers per core -------------------------------------------------------------------
for n in $NS; do
  dir="$TMP/pub$n"; mkdir -p "$dir"
  http=$(free_port)
  say "$n WHIP publishers, one viewer each"
  start_corecast "$dir" "$http"
  start_publishers "$dir" "$http" "$n"
  it0=$(now); ic0=$(cpu_ticks "$SERVER_PID")
  sleep "$SETTLE"
  echo "$it0 $ic0 $(now) $(cpu_ticks "$SERVER_PID")" >"$dir/ingest"
  viewer_window "$dir" "$http" "$n" 'pub%d' "$n"
  stop_pid "$PUB_PID"; PUB_PID=""
  stop_pid "$SERVER_PID"; SERVER_PID=""
  row "$dir" publishers "$n" "$n"
done

# --- latency with 1 / 100 / 400 viewers of one WHIP stream -------------------------------
for v in $VIEWERS; do
  dir="$TMP/lat$v"; mkdir -p "$dir"
  http=$(free_port)
  say "one WHIP publisher, $v viewers"
  start_corecast "$dir" "$http"
  start_publishers "$dir" "$http" 1
  sleep 2
  viewer_window "$dir" "$http" "$v" 'pub0' 1
  stop_pid "$PUB_PID"; PUB_PID=""
  stop_pid "$SERVER_PID"; SERVER_PID=""
  row "$dir" latency 1 "$v"
done

# --- report ------------------------------------------------------------------------------
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
REPORT="$TMP/report.md"
python3 - "$ROWS" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$REV_LABEL" "$(nproc --all)" \
  "$CPU_MODEL" "$(uname -r)" "$CMDLINE" "$CLIP_BPS" "$SERVER_CPU" "$LOAD_CPU" "$DURATION" \
  >"$REPORT" <<'PY'
import json, sys
(rows_path, date, head, nproc, cpu, kernel, cmd, bps, scpu, lcpu, duration) = sys.argv[1:]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
f = lambda x, p=2: "n/a" if x is None else f"{x:.{p}f}"
out = [f"## WHIP ingest load, {date}\n"]
out.append(f"- commit `{head}`, {nproc} CPUs ({cpu}), kernel {kernel}")
out.append(f"- command: `{cmd}`")
out.append(f"- clip: 1280x720 30 fps H.264, {int(bps) / 1e6:.2f} Mbit/s by ffprobe, GOP 60, video only; "
           f"corecast: one shard pinned to CPU {scpu}; `corecast-load whip` (publishers) and "
           f"`corecast-load whep` (viewers) on CPU {lcpu}; {duration} s windows")
out.append("- CPU % is of one core (utime+stime of the server); ingest only: publishers, no viewer; "
           "latency: `corecast_frame_latency_seconds{protocol=\"webrtc\"}` over the window (last packet "
           "of a frame in to its first packet out, per viewer), p50/p99 interpolated in the buckets\n")
pubs = [r for r in rows if r["series"] == "publishers"]
if pubs:
    out.append("Publishers per core (one viewer per stream):\n")
    out.append("| publishers | server CPU % | per publisher + viewer % | ingest only % | per publisher (ingest) % "
               "| publishers/core (extrapolated) | viewer Mbit/s median | viewer loss % | WHIP packets lost "
               "| latency p50 / p99 ms | load: publishing / failed |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in pubs:
        n, l, p = r["publishers"], r["load"], r["pub"]
        per = r["cpu_pct"] / n
        ing = r.get("ingest_cpu_pct")
        out.append(f"| {n} | {r['cpu_pct']:.1f} | {per:.3f} | {f(ing, 1)} | {f(ing / n if ing is not None else None, 3)} "
                   f"| {100 / per:.0f} | {l['bitrate_per_viewer_bps']['median'] / 1e6:.2f} | {l['loss_pct']:.4f} "
                   f"| {r['whip_lost']:.0f} | {f(r['latency_p50_ms'])} / {f(r['latency_p99_ms'])} "
                   f"| {p.get('publishing', 'n/a')} / {p.get('failed', 'n/a')} |")
    out.append("")
lat = [r for r in rows if r["series"] == "latency"]
if lat:
    out.append("Server-added latency of one WHIP stream (target p99 <= 5 ms at 400 viewers):\n")
    out.append("| viewers | server CPU % | frames observed | p50 ms | p99 ms | mean ms | viewer loss % |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|")
    for r in lat:
        out.append(f"| {r['viewers']} | {r['cpu_pct']:.1f} | {r['latency_count']:.0f} | {f(r['latency_p50_ms'])} "
                   f"| {f(r['latency_p99_ms'])} | {f(r['latency_mean_ms'])} | {r['load']['loss_pct']:.4f} |")
    out.append("")
print("\n".join(out))
PY
cat "$REPORT"
{ echo; cat "$REPORT"; } >>"$RESULTS"
say "appended to $RESULTS"
