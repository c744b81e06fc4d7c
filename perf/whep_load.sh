#!/usr/bin/env bash
# WebRTC (WHEP) egress load benchmark: what one corecast shard costs per WebRTC viewer.
#
#   perf/whep_load.sh                          N = 50 200 500, then +250 until loss or saturation
#   NS="200 500" MAX_N=0 DURATION=15 perf/whep_load.sh     just these N
#   SHARDS=2 NS="400 600" MAX_N=0 BATCH_N=0 PROFILE_N=0 perf/whep_load.sh
#                                              one stream, viewers over two shards
#
# Builds release, runs the criterion reference (benches/webrtc.rs: write_frame_to_n_peers/100
# and send_batch) on CPU $SERVER_CPU, encodes a 20 s 720p30 2 Mbit/s H.264 clip (GOP 2 s,
# video only) and serves it with corecast as a file source: one shard pinned to CPU
# $SERVER_CPU. For each N, corecast-load whep (pinned to CPU $LOAD_CPU) opens N viewers
# and the script reads the server's CPU time and RSS from /proc, and its /metrics counters,
# at the start and end of the tool's measurement window. After NS it keeps adding STEP
# viewers until the packet loss or the frames never sent reach 0.1 %, a viewer fails or
# drops out, fewer than 99 % of the N viewers play when the window starts, the viewers
# get fewer than 29 frames/s (the server falls behind), the server's core (with two
# shards: the busiest shard's) saturates (CPU >= 95 %) or N passes MAX_N. Then
# BATCH_REPEAT pairs of runs at BATCH_N viewers, webrtc.batch_send = true then false
# (sendmmsg against one sendto per
# datagram), compared by their medians. With perf(1) installed, one more run at PROFILE_N
# viewers under `perf record` (its CPU numbers are left out of the tables) and a summary of
# where the server's time goes.
#
# GSO=0 measures the server with webrtc.gso = false (one datagram per message, as before
# UDP GSO), for comparing the two.
#
# SHARDS=2: the server runs two shards, shard i pinned to CPU i of SERVER_CPUS ("0,1"),
# and the load tool runs two event loops, one pinned to each CPU of LOAD_CPUS ("0,1"), so
# that each core carries the same share of it (on a 2-core box the load has to share the
# server's cores). Viewers land on a shard as their WHEP POST's TCP connection does
# (SO_REUSEPORT on the HTTP port: the kernel spreads them); the stream is owned by one
# shard (the file source's) and relayed to the other over the mesh. At the window's start
# and end the script reads each shard thread's utime+stime (/proc/PID/task/TID/stat; the
# thread: the oldest named corecast-shard- pinned to cpus[i]) and each shard's WebRTC
# sessions (/api/v1/health), and reports CPU per viewer on the owner and on the relaying
# shard and their ratio (relaying / owner). To compare 1 and 2 shards at the same loss
# on 2 cores, run one shard with LOAD_CPU=SERVER_CPU (perf/README.md, "Two shards").
#
# Prints a Markdown report (tables, an ASCII chart of viewers vs CPU, the targets, the
# plots) and appends it to perf/RESULTS.md. Also writes one CSV row per run to
# $DATA/whep-<UTC stamp>.csv, the server's /metrics at the start and end of each window to
# $DATA/whep-<stamp>-<series>-<variant>-n<N>.{start,end}.prom, and perf/plot.sh's PNGs of
# that CSV (CPU and RSS per viewer against N, the frame latency histogram) to $PLOTS.
#
# Environment: NS ("50 200 500"), STEP (250), MAX_N (3000; 0: only NS), DURATION (20 s),
# RAMP (viewers/s, 100), BATCH_N (200; 0: skip), BATCH_REPEAT (3), PROFILE_N (500; 0: skip),
# SHARDS (1 or 2), SERVER_CPU (0) and LOAD_CPU (1) with one shard, SERVER_CPUS ("0,1") and
# LOAD_CPUS ("0,1") with two, BENCH (1; 0 skips the criterion reference), RESULTS
# (perf/RESULTS.md), DATA (perf/data), PLOTS (perf/plots), PLOT (1; 0: no plots),
# KEEP_TMP=1 keeps the temp dir (configs, logs, per-run JSON).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

NS=${NS:-"50 200 500"}
STEP=${STEP:-250}
MAX_N=${MAX_N:-3000}
DURATION=${DURATION:-20}
RAMP=${RAMP:-100}
BATCH_N=${BATCH_N:-200}
BATCH_REPEAT=${BATCH_REPEAT:-3}
PROFILE_N=${PROFILE_N:-500}
command -v perf >/dev/null || PROFILE_N=0
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
SHARDS=${SHARDS:-1}
case "$SHARDS" in
  1) SERVER_CPUS=$SERVER_CPU LOAD_CPUS=$LOAD_CPU ;;
  2) SERVER_CPUS=${SERVER_CPUS:-0,1} LOAD_CPUS=${LOAD_CPUS:-0,1}
     SERVER_CPU=${SERVER_CPUS%%,*} ;;
  *) echo "whep_load: SHARDS is 1 or 2" >&2; exit 1 ;;
esac
# One event loop per CPU the load tool may use.
LOAD_THREADS=$(tr ',' '\n' <<<"$LOAD_CPUS" | grep -c .)
BENCH=${BENCH:-1}
RESULTS=${RESULTS:-perf/RESULTS.md}
DATA=${DATA:-perf/data}
PLOTS=${PLOTS:-perf/plots}
PLOT=${PLOT:-1}
# webrtc.gso of the server measured (1: on, the default; 0: sendmmsg of one datagram per
# message, as before GSO).
GSO=${GSO:-1}
SETTLE=3
CMDLINE="NS=\"$NS\" STEP=$STEP MAX_N=$MAX_N DURATION=$DURATION RAMP=$RAMP BATCH_N=$BATCH_N BATCH_REPEAT=$BATCH_REPEAT PROFILE_N=$PROFILE_N"
[ "$SHARDS" = 1 ] || CMDLINE="$CMDLINE SHARDS=$SHARDS"
[ "$GSO" = 1 ] || CMDLINE="$CMDLINE GSO=$GSO"
if [ "$SHARDS" = 1 ]; then
  [ "$SERVER_CPU" = 0 ] || CMDLINE="$CMDLINE SERVER_CPU=$SERVER_CPU"
  [ "$LOAD_CPU" = 1 ] || CMDLINE="$CMDLINE LOAD_CPU=$LOAD_CPU"
else
  [ "$SERVER_CPUS" = 0,1 ] || CMDLINE="$CMDLINE SERVER_CPUS=$SERVER_CPUS"
  [ "$LOAD_CPUS" = 0,1 ] || CMDLINE="$CMDLINE LOAD_CPUS=$LOAD_CPUS"
fi
CMDLINE="$CMDLINE perf/whep_load.sh"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$DATA"
CSV="$DATA/whep-$STAMP.csv"

NAME=whep_load
# shellcheck source=perf/lib.sh
. "$REPO/perf/lib.sh"

TMP=$(mktemp -d /tmp/whep_load.XXXXXX)
SERVER_PID="" LOAD_PID=""

cleanup() {
  stop_pid "$LOAD_PID"; LOAD_PID=""
  stop_pid "$SERVER_PID"; SERVER_PID=""
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "whep_load: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The script, ffmpeg, cargo and the load tool run on LOAD_CPUS; the server on SERVER_CPUS
# (the criterion reference on its first CPU).
pin_script "$LOAD_CPUS"

for tool in ffmpeg ffprobe python3 taskset curl; do
  command -v "$tool" >/dev/null || die "needs $tool"
done

build_release

# --- the in-process reference ------------------------------------------------------------
BENCH_JSON="$TMP/bench.json"
echo '{}' >"$BENCH_JSON"
if [ "$BENCH" = 1 ]; then
  say "criterion reference on CPU $SERVER_CPU: write_frame_to_n_peers/100, send_batch"
  taskset -c "$SERVER_CPU" cargo bench -q --bench webrtc -- \
    'write_frame_to_n_peers/100|send_batch' --warm-up-time 1 --measurement-time 3 \
    >"$TMP/bench.log" 2>&1 || { tail -20 "$TMP/bench.log" >&2; die "cargo bench failed"; }
  python3 - "$REPO/target/criterion" >"$BENCH_JSON" <<'PY'
import json, os, sys
root = sys.argv[1]
def per_element(group, fn):
    d = os.path.join(root, group, fn, "new")
    est = json.load(open(os.path.join(d, "estimates.json")))
    bm = json.load(open(os.path.join(d, "benchmark.json")))
    elems = bm["throughput"]["Elements"]
    # The slope of the linear sampling is criterion's own estimate (the "time:" it prints).
    point = (est.get("slope") or est["mean"])["point_estimate"]
    return point / elems, est["median"]["point_estimate"] / elems
out = {}
try:
    out["write_ns_per_viewer_packet"] = per_element("write_frame_to_n_peers", "100")[0]
    out["sendmmsg_ns_per_datagram"] = per_element("send_batch", "sendmmsg/64")[0]
    out["sendto_ns_per_datagram"] = per_element("send_batch", "sendto/64")[0]
except (OSError, KeyError) as e:
    print(f"criterion results not found: {e}", file=sys.stderr)
print(json.dumps(out))
PY
  say "reference: $(cat "$BENCH_JSON")"
fi

# --- the stream --------------------------------------------------------------------------
say "making a 20 s 720p30 2 Mbit/s H.264 clip (GOP 2 s)"
CLIP="$TMP/clip.flv"
timeout 300 ffmpeg -hide_banner -loglevel error -nostdin -y \
  -f lavfi -i "testsrc2=size=1280x720:rate=30" -t 20 -c:v libx264 -preset veryfast \
  -tune zerolatency -b:v 2M -maxrate 2M -bufsize 1M -g 60 -keyint_min 60 -sc_threshold 0 \
  -bf 0 -pix_fmt yuv420p -f flv "$CLIP"
CLIP_BPS=$(ffprobe -v error -show_entries format=bit_rate -of default=nw=1:nk=1 "$CLIP")
say "clip: $(stat -c %s "$CLIP") bytes, ${CLIP_BPS} bit/s"

# Saves the server's /metrics (port $1) to file $2 and prints its counters, each summed
# over the shards; nothing if it does not answer in time (a saturated shard).
metrics() {
  { curl -s --max-time 10 "http://127.0.0.1:$1/metrics" || true; } >"$2"
  awk '/^corecast_(udp_|frames_dropped|webrtc_sessions)/ { sub(/\{.*\}/, "", $1); s[$1] += $2 }
    END { for (k in s) printf "%s=%.0f ", k, s[k] }' "$2"
}
# Busy ticks of the CPUs in list $1 ("0,1"), summed.
cpus_busy() {
  local total=0 c
  for c in ${1//,/ }; do total=$(( total + $(cpu_busy "$c") )); done
  echo "$total"
}
# Each shard's executor thread: "TID ..." in shard order. Shard i is pinned to the i-th
# CPU of SERVER_CPUS; glommio's threads all show the name "corecast-shard-" (truncated),
# and each executor later starts a blocking-pool thread of the same name: the executor is
# the oldest (lowest TID) of that name pinned to the shard's CPU.
shard_tids() {
  local pid=$1 cpu tid out=""
  for cpu in ${SERVER_CPUS//,/ }; do
    local found=""
    for tid in $(ls "/proc/$pid/task" | sort -n); do
      if [ "$(awk '/^Cpus_allowed_list:/ { print $2 }' "/proc/$pid/task/$tid/status" 2>/dev/null)" = "$cpu" ] \
          && [[ "$(cat "/proc/$pid/task/$tid/comm" 2>/dev/null)" == corecast-shard* ]]; then
        found=$tid
        break
      fi
    done
    out="$out ${found:-0}"
  done
  echo "$out"
}
# utime + stime of each thread in list $2 of process $1, in clock ticks: "T0 T1 ...".
thread_ticks() {
  local pid=$1 tid out=""
  for tid in $2; do
    out="$out $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/task/$tid/stat" 2>/dev/null || echo 0)"
  done
  echo "$out"
}
# Each shard's WebRTC sessions (/api/v1/health): "S0 S1 ...".
shard_sessions() {
  { curl -s --max-time 10 "http://127.0.0.1:$1/api/v1/health" || echo '{}'; } | python3 -c '
import json, sys
try:
    h = json.load(sys.stdin)
except ValueError:
    h = {}
print(" ".join(str(s.get("webrtc_sessions", 0)) for s in h.get("shards", [])))'
}
# The shard that owns stream "load" (/api/v1/streams).
owner_shard() {
  curl -s --max-time 10 "http://127.0.0.1:$1/api/v1/streams" | python3 -c '
import json, sys
print(next((s["owner_shard"] for s in json.load(sys.stdin) if s["path"] == "load"), 0))' 2>/dev/null || echo 0
}
# Datagrams the kernel dropped for lack of receive buffer (/proc/net/udp): on the server's
# UDP port, and on every other socket (the viewers'): "server=N viewers=M".
udp_drops() {
  python3 - "$1" <<'PY'
import sys
port = int(sys.argv[1])
server = viewers = 0
for line in open("/proc/net/udp").readlines()[1:]:
    f = line.split()
    drops = int(f[-1])
    if int(f[1].split(":")[1], 16) == port:
        server += drops
    else:
        viewers += drops
print(f"server={server} viewers={viewers}")
PY
}

# Waits (bounded) until the server's API shows stream "demo" with tracks.
wait_stream() {
  local port=$1
  for _ in $(seq 100); do
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    if curl -s --max-time 1 "http://127.0.0.1:$port/api/v1/streams" 2>/dev/null \
        | grep -q '"codec":"h264"'; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# Waits (bounded) until file $1 contains line $2 while $LOAD_PID runs.
wait_marker() {
  local file=$1 text=$2 limit=$3 start
  start=$SECONDS
  while [ $((SECONDS - start)) -lt "$limit" ]; do
    grep -qF "$text" "$file" 2>/dev/null && return 0
    if ! kill -0 "$LOAD_PID" 2>/dev/null; then
      # It may have written the marker and exited since the grep.
      grep -qF "$text" "$file" 2>/dev/null
      return
    fi
    sleep 0.05
  done
  return 1
}

start_corecast() {
  local dir=$1 http=$2 batch=$3
  cat >"$dir/corecast.toml" <<EOF
[runtime]
shards = $SHARDS
cpus = [$SERVER_CPUS]
io_memory = "256KiB"
log = "warn"

[http]
listen = "127.0.0.1:$http"
# Every viewer's offer comes from this one address.
max_connections_per_ip = 100000

[rtmp]
listen = "127.0.0.1:$(free_port)"

[webrtc]
udp_port = 0
bind = "127.0.0.1"
max_sessions = 20000
# Every load client comes from 127.0.0.1.
max_sessions_per_ip = 0
batch_send = $batch
gso = $([ "$GSO" = 1 ] && echo true || echo false)

[[streams]]
path = "load"
source = "file:$CLIP"
EOF
  taskset -c "$SERVER_CPUS" "$CORECAST" --config "$dir/corecast.toml" >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
}

ROWS="$TMP/rows.jsonl"
: >"$ROWS"

# One measurement: N viewers ($1), batch_send ($2), series ($3: "scan", "ab<run>" or
# "profile": under perf record).
# Appends a JSON row to $ROWS; saves the /metrics scrapes at the window's start and end
# in $DATA (not for the profile run).
measure() {
  local n=$1 batch=$2 series=$3 dir http prom variant
  variant=$([ "$batch" = true ] && echo sendmmsg || echo sendto)
  dir="$TMP/n$n-batch$batch-$series"
  prom="$DATA/whep-$STAMP-$series-$variant-n$n"
  [ "$series" != profile ] || prom="$dir/metrics"
  mkdir -p "$dir"
  http=$(free_port)
  say "$n viewers, batch_send = $batch ($series)"
  start_corecast "$dir" "$http" "$batch"
  wait_stream "$http" || { cat "$dir/server.log" >&2; die "corecast did not serve the stream"; }
  local udp_port
  udp_port=$(curl -s --max-time 5 "http://127.0.0.1:$http/api/v1/health" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["shards"][0]["webrtc_udp_port"])')
  sleep 1

  # Idle: the file source only, for 3 s.
  local idle_rss it0 ic0 it1 ic1
  it0=$(now); ic0=$(cpu_ticks "$SERVER_PID")
  sleep 3
  it1=$(now); ic1=$(cpu_ticks "$SERVER_PID")
  idle_rss=$(rss_kib "$SERVER_PID")

  local setup_limit=$(( n / RAMP + 5 + 10 + 2 + SETTLE + 20 ))
  timeout $(( setup_limit + DURATION + 30 )) "$LOAD" whep --url "http://127.0.0.1:$http" \
    --path load --viewers "$n" --ramp "$RAMP" --duration "$DURATION" --settle "$SETTLE" \
    --cpu "$LOAD_CPUS" --threads "$LOAD_THREADS" --stream-bps "$CLIP_BPS" --stream-fps 30 \
    >"$dir/load.json" 2>"$dir/load.err" &
  LOAD_PID=$!
  wait_marker "$dir/load.err" "window start" "$setup_limit" \
    || { cat "$dir/load.err" >&2; die "the load tool did not start its window"; }
  local t0 c0 r0 b0 m0 t1 c1 r1 b1 m1 tids s0 s1 v0 owner
  tids=$(shard_tids "$SERVER_PID")
  t0=$(now); c0=$(cpu_ticks "$SERVER_PID"); r0=$(rss_kib "$SERVER_PID"); b0=$(cpus_busy "$SERVER_CPUS")
  s0=$(thread_ticks "$SERVER_PID" "$tids")
  m0="$(metrics "$http" "$prom.start.prom")$(udp_drops "$udp_port")"
  v0=$(shard_sessions "$http"); owner=$(owner_shard "$http")
  if [ "$series" = profile ]; then
    perf record -F 999 -g -p "$SERVER_PID" -o "$TMP/perf.data" -- sleep $(( DURATION > 12 ? 10 : DURATION - 2 )) \
      >"$dir/perf.log" 2>&1 || say "perf record failed: $(tail -1 "$dir/perf.log")"
  fi
  wait_marker "$dir/load.err" "window end" $(( DURATION + 10 )) \
    || { cat "$dir/load.err" >&2; die "the load tool did not end its window"; }
  t1=$(now); c1=$(cpu_ticks "$SERVER_PID"); r1=$(rss_kib "$SERVER_PID"); b1=$(cpus_busy "$SERVER_CPUS")
  s1=$(thread_ticks "$SERVER_PID" "$tids")
  m1="$(metrics "$http" "$prom.end.prom")$(udp_drops "$udp_port")"
  local rc=0
  wait "$LOAD_PID" || rc=$?
  LOAD_PID=""
  [ "$rc" = 0 ] || { cat "$dir/load.err" >&2; die "corecast-load exited $rc"; }
  grep -v '^corecast-load: window' "$dir/load.err" | sed 's/^/    /' >&2 || true
  stop_pid "$SERVER_PID"; SERVER_PID=""

  python3 - "$n" "$batch" "$CLK_TCK" "$idle_rss" "$it0" "$ic0" "$it1" "$ic1" "$t0" "$c0" "$r0" \
    "$b0" "$t1" "$c1" "$r1" "$b1" "$m0" "$m1" "$CLIP_BPS" "$dir/load.json" "$BENCH_JSON" \
    "$series" "$tids" "$s0" "$s1" "$v0" "$owner" "$prom" >>"$ROWS" <<'PY'
import json, re, sys
(n, batch, clk, idle_rss, it0, ic0, it1, ic1, t0, c0, r0, b0, t1, c1, r1, b1, m0, m1,
 clip_bps, path, bench_path, series, tids, s0, s1, v0, owner, prom) = sys.argv[1:]
load = json.load(open(path))
bench = json.load(open(bench_path))
clk = float(clk)
window = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / clk / window * 100.0
core_busy = (int(b1) - int(b0)) / clk / window * 100.0
# Per shard: its thread's CPU % of a core and its WebRTC sessions at window start.
shard_cpu = [(int(b) - int(a)) / clk / window * 100.0 for a, b in zip(s0.split(), s1.split())]
shard_viewers = [int(x) for x in v0.split()]
if "0" in tids.split():
    shard_cpu = []  # a shard thread was not found
owner = int(owner)
shards = []
for i, c in enumerate(shard_cpu):
    v = shard_viewers[i] if i < len(shard_viewers) else 0
    shards.append({"shard": i, "role": "owner" if i == owner else "relay", "cpu_pct": c,
                   "viewers": v, "cpu_pct_per_viewer": c / v if v else None})
# Frame latency over the window, from the two scrapes' buckets (webrtc).
def buckets(p):
    out = {}
    try:
        for line in open(p):
            m = re.match(r'corecast_frame_latency_seconds_bucket\{protocol="webrtc",le="([^"]+)"\}\s+(\S+)', line)
            if m:
                out[float("inf") if m.group(1) == "+Inf" else float(m.group(1))] = float(m.group(2))
    except OSError:
        pass
    return out
ba, bb = buckets(prom + ".start.prom"), buckets(prom + ".end.prom")
hist = sorted((le, c - ba.get(le, 0.0)) for le, c in bb.items())
lat_count = hist[-1][1] if hist else 0.0
def quantile(q):
    if not lat_count:
        return None
    want, prev_le, prev_c = q * lat_count, 0.0, 0.0
    for le, c in hist:
        if c >= want:
            if le == float("inf"):
                return prev_le * 1000
            return (prev_le + (le - prev_le) * ((want - prev_c) / max(c - prev_c, 1e-9))) * 1000
        prev_le, prev_c = le, c
    return None
idle = (int(ic1) - int(ic0)) / clk / (float(it1) - float(it0)) * 100.0
kv = lambda s: {k: int(v) for k, v in (p.split("=") for p in s.split())}
m0, m1 = kv(m0), kv(m1)
d = lambda k: m1.get(k, 0) - m0.get(k, 0)
viewers = load["viewers_in_window"] or 1
pps = load["packets_per_s_per_viewer"]
us_per_vp = cpu / 100.0 / (viewers * pps) * 1e6 if pps > 0 else None
ref = bench.get("write_ns_per_viewer_packet")
calls = d("corecast_udp_send_calls_total")
row = {
    "n": int(n), "batch_send": batch == "true", "series": series,
    "viewers": load["viewers_in_window"],
    "window_s": round(window, 2), "cpu_pct": cpu, "idle_cpu_pct": idle,
    "core_busy_pct": core_busy, "other_on_core_pct": max(core_busy - cpu, 0.0),
    "cpu_pct_per_viewer": cpu / viewers,
    "cpu_pct_per_viewer_net": max(cpu - idle, 0.0) / viewers,
    "rss_idle_kib": int(idle_rss), "rss_start_kib": int(r0), "rss_end_kib": int(r1),
    "rss_per_viewer_kib": (int(r1) - int(idle_rss)) / viewers,
    "us_per_viewer_packet": us_per_vp,
    "ratio_to_reference": (us_per_vp * 1000.0 / ref) if (us_per_vp and ref) else None,
    "datagrams_out_per_s": d("corecast_udp_datagrams_out_total") / window,
    "datagrams_per_send_call": d("corecast_udp_datagrams_out_total") / calls if calls else None,
    "send_dropped": d("corecast_udp_send_dropped_total"),
    "server_rx_drops": d("server"), "viewer_rx_drops": d("viewers"),
    "frames_dropped": d("corecast_frames_dropped_total"),
    "expected_bps": int(clip_bps), "load": load,
    "shards": shards, "latency_count": lat_count,
    "latency_p50_ms": quantile(0.5), "latency_p99_ms": quantile(0.99),
    "metrics": prom,
}
print(json.dumps(row))
PY
  python3 -c '
import json, sys
r = json.loads(sys.stdin.readlines()[-1]); l = r["load"]
print("    server cpu %.1f%% (%.4f%%/viewer, %.2f us/viewer-packet), rss +%.0f KiB/viewer, loss %.4f%%, never sent %.4f%%, ttff p95 %.0f ms, failed %d, other load on the core %.1f%%" % (
  r["cpu_pct"], r["cpu_pct_per_viewer"], r["us_per_viewer_packet"] or 0, r["rss_per_viewer_kib"],
  l["loss_pct"], l["frame_loss_pct"], l["ttff_ms"]["p95"], l["viewers_failed"], r["other_on_core_pct"]))
if len(r["shards"]) > 1:
    print("    " + "; ".join("shard %d (%s): cpu %.1f%%, %d viewers, %s%%/viewer" % (
        s["shard"], s["role"], s["cpu_pct"], s["viewers"],
        "n/a" if s["cpu_pct_per_viewer"] is None else "%.4f" % s["cpu_pct_per_viewer"]) for s in r["shards"]))' \
    <"$ROWS" >&2
}

# Whether the last row says stop: loss or frames never sent >= 0.1 %, failures, viewers
# that never started playing, or a saturated core.
saturated() {
  python3 -c '
import json, sys
r = json.loads(sys.stdin.readlines()[-1]); l = r["load"]
stop = (l["loss_pct"] >= 0.1 or l["frame_loss_pct"] >= 0.1 or l["viewers_failed"] > 0
        or l["viewers_in_window"] < 0.99 * r["n"]
        or l["viewers_dropped"] > 0 or l["frames_per_s_per_viewer"]["median"] < 29.0
        or (max(s["cpu_pct"] for s in r["shards"]) if len(r["shards"]) > 1 else r["cpu_pct"]) >= 95.0)
sys.exit(0 if stop else 1)' <"$ROWS"
}

last=0
stopped=0
for n in $NS; do
  measure "$n" true scan
  last=$n
  if saturated; then stopped=1; break; fi
done
if [ "$stopped" = 0 ] && [ "$MAX_N" -gt 0 ]; then
  n=$(( last + STEP ))
  while [ "$n" -le "$MAX_N" ]; do
    measure "$n" true scan
    if saturated; then break; fi
    n=$(( n + STEP ))
  done
fi
if [ "$BATCH_N" -gt 0 ]; then
  for run in $(seq "$BATCH_REPEAT"); do
    measure "$BATCH_N" true "ab$run"
    measure "$BATCH_N" false "ab$run"
  done
fi
PROFILE_TXT="$TMP/profile.txt"
: >"$PROFILE_TXT"
if [ "$PROFILE_N" -gt 0 ]; then
  measure "$PROFILE_N" true profile
  if [ -s "$TMP/perf.data" ]; then
    perf report -i "$TMP/perf.data" --no-children --sort symbol -g none 2>/dev/null \
      | grep '%' | grep -v '^#' >"$TMP/perf.self" || true
    perf report -i "$TMP/perf.data" --children --sort symbol -g none 2>/dev/null \
      | grep '%' | grep -v '^#' >"$TMP/perf.children" || true
    python3 - "$TMP/perf.self" "$TMP/perf.children" "$PROFILE_N" >"$PROFILE_TXT" <<'PY'
import collections, re, sys
self_path, children_path, n = sys.argv[1:]
line = re.compile(r"\s*([\d.]+)%\s+(?:([\d.]+)%\s+)?\[(.)\]\s+(\S.*?)\s*$")
def rows(path):
    for l in open(path):
        m = line.match(l)
        if m:
            # perf pads the line with columns of its own ("  -  -"): keep the symbol.
            yield float(m.group(1)), m.group(3), re.split(r"\s{2,}", m.group(4))[0]
def kind(k, s):
    if k == "k":
        return "kernel"
    if any(x in s for x in ("aws_lc", "aes_gcm", "gcm_", "Aead", "aead_")):
        return "SRTP encryption (aws-lc AES-GCM)"
    if "rtx_cache" in s:
        return "str0m RTX (NACK) cache"
    if "str0m" in s or s.startswith(("dimpl", "is::")):
        return "str0m (RTP/RTCP/ICE/DTLS state, pacer, packet serialization)"
    if "memmove" in s or "memcpy" in s or "memset" in s:
        return "memcpy/memmove"
    if any(x in s for x in ("malloc", "calloc", "free", "realloc", "_int_", "unlink_chunk")):
        return "malloc/free"
    if s.startswith("corecast"):
        return "corecast"
    if "glommio" in s or "io_uring" in s:
        return "glommio"
    return "other user space (std collections, time, hashing)"
total = collections.Counter()
top = []
for pct, k, s in rows(self_path):
    total[kind(k, s)] += pct
    if k == ".":
        top.append((pct, s))
incl = {}
for pct, k, s in rows(children_path):
    for name in ("__sys_sendmmsg", "__sys_sendto", "handle_softirqs", "sock_def_readable"):
        if s.split()[0] == name and name not in incl:
            incl[name] = pct
print(f"Profile of the server at {n} viewers (perf record -g, 10 s of the window; % of the "
      f"server's samples):\n")
send = incl.get("__sys_sendmmsg", 0) + incl.get("__sys_sendto", 0)
print(f"- kernel {total['kernel']:.1f} %: the UDP send system calls {send:.1f} % (inclusive), of "
      f"which {incl.get('handle_softirqs', 0):.1f} % is the loopback receive path run in the "
      f"sender's context (softirq: IP/UDP receive, queueing to the viewer's socket) and "
      f"{incl.get('sock_def_readable', 0):.1f} % waking the load tool (a NIC would not charge these "
      f"to the server)")
for k, v in total.most_common():
    if k != "kernel":
        print(f"- {k}: {v:.1f} %")
print("- top user-space symbols: " + "; ".join(f"{s} {p:.1f} %" for p, s in top[:12]))
PY
  fi
fi

# --- report ------------------------------------------------------------------------------
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
REPORT="$TMP/report.md"
python3 - "$ROWS" "$BENCH_JSON" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$REV_LABEL" "$(nproc --all)" \
  "$CPU_MODEL" "$(uname -r)" "$CMDLINE" "$DURATION" "$RAMP" "$SERVER_CPUS" "$LOAD_CPUS" \
  "$PROFILE_TXT" "$SHARDS" "$CSV" >"$REPORT" <<'PY'
import json, sys
(rows_path, bench_path, date, head, nproc, cpu, kernel, cmd, duration, ramp, scpu,
 lcpu, profile_path, nshards, csv_path) = sys.argv[1:]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
bench = json.load(open(bench_path))
ref = bench.get("write_ns_per_viewer_packet")
out = []
out.append(f"## WebRTC (WHEP) egress load, {date}\n")
out.append(f"- commit `{head}`, {nproc} CPUs ({cpu}), kernel {kernel}")
out.append(f"- command: `{cmd}`")
if nshards == "1":
    out.append(f"- corecast: one shard pinned to CPU {scpu} (`runtime.shards = 1`, `io_memory = \"256KiB\"`), "
               f"stream `load` from a file source; corecast-load whep on CPU {lcpu}; viewers join at "
               f"{ramp}/s, then a 3 s settle and a {duration} s window")
else:
    out.append(f"- corecast: {nshards} shards, shard i pinned to CPU i of {scpu} (`runtime.shards = {nshards}`, "
               f"`io_memory = \"256KiB\"`), stream `load` from a file source on one shard (the owner), "
               f"relayed over the mesh to the other; corecast-load whep with one event loop pinned to each "
               f"of CPUs {lcpu} (the load shares the server's cores: the server's CPU is read per shard "
               f"thread); viewers land on a shard as their WHEP POST's connection does (SO_REUSEPORT); "
               f"they join at {ramp}/s, then a 3 s settle and a {duration} s window")
exp = rows[0]["expected_bps"] / 1e6 if rows else 0
out.append(f"- clip: 1280x720 30 fps H.264 (libx264 veryfast zerolatency, 2 Mbit/s, GOP 60, no "
           f"B-frames), video only, {exp:.2f} Mbit/s by ffprobe")
if ref:
    out.append(f"- in-process reference (criterion, same CPU): `write_frame_to_n_peers/100` "
               f"{ref:.0f} ns per viewer per packet; `send_batch` "
               f"{bench.get('sendmmsg_ns_per_datagram', 0):.0f} ns per datagram with sendmmsg, "
               f"{bench.get('sendto_ns_per_datagram', 0):.0f} ns with sendto (loopback)")
out.append("- CPU % is of one core: utime+stime of the server over the window; per viewer: / viewers "
           "playing at window start (net: idle CPU % with the source alone subtracted first); "
           "us/viewer-pkt = server CPU seconds / (viewers x packets per viewer); ratio = that / the "
           "reference; RSS/viewer = (VmRSS at window end - idle VmRSS) / viewers")
out.append("- loss: from RTP sequence gaps; never sent: frames missing from the RTP timestamps "
           "(frames the server dropped before sending leave no sequence gap); TTFF: answer to the "
           "first packet with the marker bit; other: busy time of the server's core not used by the "
           "server (other processes: should be ~0; with 2 shards the load tool)"
           + ("; per shard: utime+stime of the shard's thread (/proc/PID/task/TID/stat) / its WebRTC "
              "sessions at window start (/api/v1/health)" if nshards != "1" else "") + "\n")

def f(x, fmt):
    return "n/a" if x is None else format(x, fmt)

out.append("| run | viewers | batch | server CPU % | CPU %/viewer | net | us/viewer-pkt | ratio | RSS idle MiB | RSS/viewer KiB "
           "| Mbit/s/viewer median (p5) | pkts/s/viewer | loss % | never sent % | TTFF p50 / p95 / p99 ms "
           "| 1st frame after ICE+DTLS p50 / p95 ms "
           "| failed / ended | dgrams/call | UDP rx drops server / viewers | load CPU % | other % |")
out.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---|---|---:|---|---:|---:|")
scan = [r for r in rows if r["series"] == "scan"]
ab = [r for r in rows if r["series"].startswith("ab")]
for r in scan + ab:
    l = r["load"]
    b = l["bitrate_per_viewer_bps"]
    t = l["ttff_ms"]
    a = l.get("first_frame_after_connect_ms", {})
    out.append(
        f"| {r['series']} | {r['viewers']} | {'yes' if r['batch_send'] else 'no'} | {r['cpu_pct']:.1f} "
        f"| {r['cpu_pct_per_viewer']:.4f} | {r['cpu_pct_per_viewer_net']:.4f} "
        f"| {f(r['us_per_viewer_packet'], '.2f')} | {f(r['ratio_to_reference'], '.1f')} "
        f"| {r['rss_idle_kib'] / 1024:.1f} | {r['rss_per_viewer_kib']:.0f} "
        f"| {b['median'] / 1e6:.2f} ({b['p5'] / 1e6:.2f}) | {l['packets_per_s_per_viewer']:.0f} "
        f"| {l['loss_pct']:.4f} | {l['frame_loss_pct']:.4f} "
        f"| {t['p50']:.0f} / {t['p95']:.0f} / {t['p99']:.0f} "
        f"| {a.get('p50', 0):.0f} / {a.get('p95', 0):.0f} | {l['viewers_failed']} / {l['viewers_dropped']} "
        f"| {f(r['datagrams_per_send_call'], '.1f')} "
        f"| {r.get('server_rx_drops', 0)} / {r.get('viewer_rx_drops', 0)} | {f(l['load_cpu_pct'], '.0f')} "
        f"| {r['other_on_core_pct']:.1f} |")
out.append("")

lat = [r for r in scan + ab if r.get("latency_count")]
if lat:
    out.append("Server-added latency over the window (`corecast_frame_latency_seconds{protocol=\"webrtc\"}`, "
               "p50 / p99 interpolated in the buckets): " + ", ".join(
                   f"{r['series']} {r['viewers']} viewers{'' if r['batch_send'] else ' (sendto)'} "
                   f"{f(r['latency_p50_ms'], '.2f')} / {f(r['latency_p99_ms'], '.2f')} ms"
                   for r in lat) + "\n")

def busiest(r):
    """The CPU % of the busiest shard (the process's with one shard)."""
    return max(s["cpu_pct"] for s in r["shards"]) if len(r["shards"]) > 1 else r["cpu_pct"]

per_shard = [r for r in scan + ab if len(r["shards"]) > 1]
ratios = []
if per_shard:
    out.append("Per shard (thread utime+stime over the window; viewers: the shard's WebRTC sessions at "
               "window start):\n")
    out.append("| run | viewers | batch | shard | role | CPU % | viewers on it | CPU %/viewer | relaying / owner |")
    out.append("|---|---:|---|---:|---|---:|---:|---:|---:|")
    for r in per_shard:
        by = {s["role"]: s for s in r["shards"]}
        o, rl = by.get("owner"), by.get("relay")
        ratio = (rl["cpu_pct_per_viewer"] / o["cpu_pct_per_viewer"]
                 if o and rl and o["cpu_pct_per_viewer"] and rl["cpu_pct_per_viewer"] else None)
        r["relay_to_owner"] = ratio
        if ratio is not None:
            ratios.append((r, ratio))
        for s in r["shards"]:
            out.append(f"| {r['series']} | {r['viewers']} | {'yes' if r['batch_send'] else 'no'} | {s['shard']} "
                       f"| {s['role']} | {s['cpu_pct']:.1f} | {s['viewers']} | {f(s['cpu_pct_per_viewer'], '.4f')} "
                       f"| {f(ratio, '.2f') if s['role'] == 'relay' else ''} |")
    out.append("")

batched = scan
# Marginal cost: CPU % per added viewer between consecutive batched runs.
prev = None
for r in sorted(batched, key=lambda r: r["viewers"]):
    if prev and r["viewers"] > prev["viewers"]:
        r["marginal"] = (r["cpu_pct"] - prev["cpu_pct"]) / (r["viewers"] - prev["viewers"])
    prev = r
if len(batched) > 1:
    out.append("Marginal CPU per added viewer (batched runs): " + ", ".join(
        f"{r['viewers']}: {r['marginal']:.4f} %" for r in sorted(batched, key=lambda r: r["viewers"])
        if "marginal" in r) + "\n")
# ASCII chart: viewers vs server CPU %.
if batched:
    out.append("Server CPU (% of one core) by viewers, batch_send = true:\n")
    out.append("```")
    width = 50
    for r in sorted(batched, key=lambda r: r["viewers"]):
        bar = "#" * max(1, round(min(r["cpu_pct"], 100.0) / 100.0 * width))
        out.append(f"{r['viewers']:>6} | {bar:<{width}} | {r['cpu_pct']:5.1f} %")
    out.append(f"{'':>6} +{'-' * (width + 2)}+")
    out.append(f"{'':>6}   0 %{' ' * (width - 8)}100 %")
    out.append("```\n")

ok = [r for r in batched if r["load"]["loss_pct"] < 0.1 and r["load"]["frame_loss_pct"] < 0.1
      and r["load"]["viewers_failed"] == 0 and r["load"]["viewers_dropped"] == 0
      and r["viewers"] >= 0.99 * r["n"]
      and r["load"]["frames_per_s_per_viewer"]["median"] >= 29.0 and busiest(r) < 95.0]
out.append("Targets:\n")
if ok:
    best = max(ok, key=lambda r: r["viewers"])
    per = best["cpu_pct_per_viewer"]
    per_core = 100.0 / per if per > 0 else float("inf")
    verdict = "met" if per <= 0.11 else f"missed by {per / 0.11:.2f}x"
    out.append(f"- CPU per viewer <= 0.11 % of a core (>= 900 viewers/core): at {best['viewers']} viewers "
               f"(largest N sustained with < 0.1 % loss) {per:.4f} % per viewer, "
               f"{per_core:.0f} viewers/core extrapolated: {verdict}")
    big = [r for r in ok if r["viewers"] >= 200] or [best]
    worst_rss = max(r["rss_per_viewer_kib"] for r in big)
    verdict = "met" if worst_rss <= 256 else f"missed by {worst_rss / 256:.2f}x"
    out.append(f"- RSS <= 256 KiB per viewer: up to {worst_rss:.0f} KiB per viewer "
               f"(runs of {', '.join(str(r['viewers']) for r in big)} viewers): {verdict}")
    p95 = max(r["load"]["ttff_ms"]["p95"] for r in ok)
    verdict = "met" if p95 <= 300 else f"missed by {p95 / 300:.2f}x"
    out.append(f"- p95 time to first frame <= 300 ms: worst p95 {p95:.0f} ms over the sustained runs: {verdict}")
else:
    out.append("- no run was sustained with < 0.1 % loss")
if ab:
    import statistics
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    on = [r for r in ab if r["batch_send"]]
    off = [r for r in ab if not r["batch_send"]]
    if on and off:
        a, b = med(on, "cpu_pct"), med(off, "cpu_pct")
        span = lambda rs: f"{min(r['cpu_pct'] for r in rs):.1f}-{max(r['cpu_pct'] for r in rs):.1f}"
        calls = statistics.median(r["datagrams_per_send_call"] or 0 for r in on)
        out.append(f"- sendmmsg (webrtc.batch_send) at {on[0]['n']} viewers, {len(on)} runs each, "
                   f"alternating: median {a:.1f} % CPU [{span(on)}] ({calls:.1f} datagrams per call) "
                   f"vs {b:.1f} % [{span(off)}] with one sendto per datagram: "
                   f"{(b - a) / b * 100 if b else 0:+.1f} % CPU saved by batching")
if ratios:
    worst = max(x for _, x in ratios)
    verdict = "met" if worst <= 1.05 else f"missed by {worst / 1.05:.2f}x"
    out.append("- relaying shard's CPU per viewer <= 1.05x the owner's: " + ", ".join(
        f"{r['viewers']} viewers ({r['series']}) {x:.2f}x" for r, x in ratios) + f": {verdict}")
out.append("")
profile = open(profile_path).read().strip()
if profile:
    out.append(profile + "\n")
print("\n".join(out))
PY

# --- results as data, plots --------------------------------------------------------------
python3 "$REPO/perf/whep_csv.py" "$ROWS" "$SHARDS" "$REV_LABEL" >"$CSV"
say "wrote $CSV"
[ "$PLOT" != 1 ] || plot_markdown "$CSV" "$RESULTS" >>"$REPORT"

cat "$REPORT"
{ echo; cat "$REPORT"; } >>"$RESULTS"
say "appended to $RESULTS"
