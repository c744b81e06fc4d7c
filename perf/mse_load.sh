#!/usr/bin/env bash
# MSE viewers against WebRTC viewers of the same stream: what one corecast shard costs per
# viewer of each.
#
#   perf/mse_load.sh                           N = 100 300, each kind, REPEAT times
#   NS="200" REPEAT=1 DURATION=15 perf/mse_load.sh
#
# Builds release, encodes a 20 s 720p30 2 Mbit/s H.264 High clip with B-frames (-bf 2, GOP
# 2 s, video only: no transcoding in the way) and serves it as a file source from one shard
# pinned to CPU $SERVER_CPU. For each N, each kind and each repeat, a fresh server; the
# load tool pinned to CPU $LOAD_CPU opens N viewers: `corecast-load mse` (WebSocket
# /mse/load, fMP4 fragments) or `corecast-load whep` (str0m viewers, light receive mode);
# the script reads the server's CPU time and RSS from /proc at the tool's window markers,
# after an idle reading of the file source alone. CPU per viewer = (CPU % - idle CPU %) / N.
#
# Prints a Markdown table (medians over the repeats, and each run) and appends it to
# $RESULTS; one CSV row per run to $DATA/mse-<UTC stamp>.csv.
#
# Environment: NS ("100 300"), REPEAT (3), DURATION (15 s), RAMP (viewers/s, 100),
# SERVER_CPU (0), LOAD_CPU (1), RESULTS (perf/RESULTS.md), DATA (perf/data),
# KEEP_TMP=1 keeps the temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

NS=${NS:-"100 300"}
REPEAT=${REPEAT:-3}
DURATION=${DURATION:-15}
RAMP=${RAMP:-100}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
RESULTS=${RESULTS:-perf/RESULTS.md}
DATA=${DATA:-perf/data}
SETTLE=3
CMDLINE="NS=\"$NS\" REPEAT=$REPEAT DURATION=$DURATION perf/mse_load.sh"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$DATA"
CSV="$DATA/mse-$STAMP.csv"

NAME=mse_load
# shellcheck source=perf/lib.sh
. "$REPO/perf/lib.sh"

SERVER_PID="" LOAD_PID=""
STOP_VARS="LOAD_PID SERVER_PID"
make_tmp
pin_script "$LOAD_CPU"
need_tools ffmpeg ffprobe python3 taskset curl
build_release
CLK_TCK=$(getconf CLK_TCK)

say "making a 20 s 720p30 2 Mbit/s H.264 High clip with B-frames (GOP 2 s)"
CLIP="$TMP/clip.flv"
timeout 300 ffmpeg -hide_banner -loglevel error -nostdin -y \
  -f lavfi -i "testsrc2=size=1280x720:rate=30" -t 20 -c:v libx264 -preset veryfast \
  -profile:v high -bf 2 -b:v 2M -maxrate 2M -bufsize 1M -g 60 -keyint_min 60 \
  -sc_threshold 0 -pix_fmt yuv420p -f flv "$CLIP"
CLIP_BPS=$(ffprobe -v error -show_entries format=bit_rate -of default=nw=1:nk=1 "$CLIP")

# Waits (bounded: $3 s) until file $1 holds text $2 while the load tool runs.
wait_marker() {
  local file=$1 text=$2 limit=$3 start=$SECONDS
  while [ $((SECONDS - start)) -lt "$limit" ]; do
    grep -qF "$text" "$file" 2>/dev/null && return 0
    if ! kill -0 "$LOAD_PID" 2>/dev/null; then
      grep -qF "$text" "$file" 2>/dev/null
      return
    fi
    sleep 0.05
  done
  return 1
}

# One run: kind $1 (mse | webrtc), N viewers $2, repeat $3; appends a JSON row to $ROWS.
measure() {
  local kind=$1 n=$2 rep=$3 dir http
  dir="$TMP/$kind-n$n-r$rep"
  mkdir -p "$dir"
  http=$(free_port)
  server_config "$dir/corecast.toml" "$http"
  cat >>"$dir/corecast.toml" <<EOF

[[streams]]
path = "load"
source = "file:$CLIP"
EOF
  # The MSE viewers do not answer pings; the window is shorter than two intervals anyway.
  sed -i "s/^max_connections_per_ip = 100000$/max_connections_per_ip = 100000\nws_ping_interval = \"0s\"\nidle_timeout = \"600s\"/" "$dir/corecast.toml"
  taskset -c "$SERVER_CPU" "$CORECAST" --config "$dir/corecast.toml" >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
  local i
  for i in $(seq 100); do
    curl -s --max-time 2 "http://127.0.0.1:$http/api/v1/streams" | grep -q '"path":"load"' && break
    sleep 0.1
  done
  sleep 1
  local it0 ic0 it1 ic1
  it0=$(now); ic0=$(cpu_ticks "$SERVER_PID"); sleep 3; it1=$(now); ic1=$(cpu_ticks "$SERVER_PID")
  say "$kind: $n viewers (run $rep)"
  local limit=$(( n / RAMP + 30 + SETTLE ))
  if [ "$kind" = mse ]; then
    timeout $(( limit + DURATION + 30 )) "$LOAD" mse --url "http://127.0.0.1:$http" --path load \
      --viewers "$n" --ramp "$RAMP" --settle "$SETTLE" --duration "$DURATION" --cpu "$LOAD_CPU" \
      >"$dir/load.json" 2>"$dir/load.err" &
  else
    timeout $(( limit + DURATION + 30 )) "$LOAD" whep --url "http://127.0.0.1:$http" --path load \
      --viewers "$n" --ramp "$RAMP" --settle "$SETTLE" --duration "$DURATION" --cpu "$LOAD_CPU" \
      --stream-bps "$CLIP_BPS" --stream-fps 30 >"$dir/load.json" 2>"$dir/load.err" &
  fi
  LOAD_PID=$!
  wait_marker "$dir/load.err" "window start" "$limit" \
    || { cat "$dir/load.err" >&2; die "the load tool did not start its window"; }
  local t0 c0 t1 c1 r1
  t0=$(now); c0=$(cpu_ticks "$SERVER_PID")
  wait_marker "$dir/load.err" "window end" $(( DURATION + 10 )) \
    || { cat "$dir/load.err" >&2; die "the load tool did not end its window"; }
  t1=$(now); c1=$(cpu_ticks "$SERVER_PID"); r1=$(rss_kib "$SERVER_PID")
  local rc=0
  wait "$LOAD_PID" || rc=$?
  LOAD_PID=""
  [ "$rc" = 0 ] || { cat "$dir/load.err" >&2; die "corecast-load exited $rc"; }
  stop_pid "$SERVER_PID"; SERVER_PID=""
  python3 - "$kind" "$n" "$rep" "$CLK_TCK" "$it0" "$ic0" "$it1" "$ic1" "$t0" "$c0" "$t1" "$c1" \
    "$r1" "$dir/load.json" >>"$ROWS" <<'PY'
import json, sys
kind, n, rep, clk, it0, ic0, it1, ic1, t0, c0, t1, c1, r1, path = sys.argv[1:]
clk, n = float(clk), int(n)
load = json.load(open(path))
idle = (int(ic1) - int(ic0)) / clk / (float(it1) - float(it0)) * 100.0
cpu = (int(c1) - int(c0)) / clk / (float(t1) - float(t0)) * 100.0
if kind == "mse":
    got = load["open"]
    mbit = load["mbit_per_viewer"]["median"]
    rate = load["messages_per_viewer_per_s"]["median"]
    ok = load["failed"] == 0 and got == n
else:
    got = load.get("viewers_in_window", 0)
    mbit = (load.get("bitrate_per_viewer_bps") or {}).get("median")
    mbit = mbit / 1e6 if mbit else None
    rate = load.get("packets_per_s_per_viewer")
    ok = got == n
print(json.dumps({"kind": kind, "n": n, "rep": int(rep), "idle_cpu_pct": idle, "cpu_pct": cpu,
                  "cpu_pct_per_viewer": (cpu - idle) / n, "rss_kib": int(r1), "viewers": got,
                  "mbit_per_viewer": mbit, "rate_per_viewer": rate, "ok": ok}))
PY
  tail -1 "$ROWS" >&2
}

ROWS="$TMP/rows.jsonl"
: >"$ROWS"
for n in $NS; do
  for rep in $(seq "$REPEAT"); do
    for kind in mse webrtc; do
      measure "$kind" "$n" "$rep"
    done
  done
done

python3 - "$ROWS" "$CSV" "$CMDLINE" "$REV_LABEL" "$CLIP_BPS" <<'PY' | tee -a "$RESULTS"
import csv, json, statistics, sys, datetime
rows_path, csv_path, cmdline, rev, clip_bps = sys.argv[1:]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
with open(csv_path, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
    w.writeheader()
    w.writerows(rows)
when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
print(f"\n### MSE and WebRTC viewers of one stream ({when}, {rev})\n")
print(f"`{cmdline}`: one shard, 720p30 H.264 High with B-frames at {int(clip_bps) / 1e6:.2f} Mbit/s "
      f"(video only), served as a file source; CSV `{csv_path}`.\n")
print("| viewers | kind | CPU % per viewer (median) | runs | server CPU % | idle % | RSS MiB | Mbit/s per viewer | fragments or packets/s per viewer | all viewers served |")
print("|---|---|---|---|---|---|---|---|---|---|")
groups = {}
for r in rows:
    groups.setdefault((r["n"], r["kind"]), []).append(r)
for (n, kind), rs in sorted(groups.items()):
    per = statistics.median(r["cpu_pct_per_viewer"] for r in rs)
    runs = ", ".join(f"{r['cpu_pct_per_viewer']:.4f}" for r in rs)
    cpu = statistics.median(r["cpu_pct"] for r in rs)
    idle = statistics.median(r["idle_cpu_pct"] for r in rs)
    rss = statistics.median(r["rss_kib"] for r in rs) / 1024
    mbit = [r["mbit_per_viewer"] for r in rs if r["mbit_per_viewer"] is not None]
    rate = [r["rate_per_viewer"] for r in rs if r["rate_per_viewer"] is not None]
    print(f"| {n} | {kind} | {per:.4f} | {runs} | {cpu:.1f} | {idle:.2f} | {rss:.0f} | "
          f"{statistics.median(mbit) if mbit else float('nan'):.2f} | "
          f"{statistics.median(rate) if rate else float('nan'):.1f} | "
          f"{'yes' if all(r['ok'] for r in rs) else 'no'} |")
ratios = []
for n in sorted({k[0] for k in groups}):
    m, w = groups.get((n, "mse")), groups.get((n, "webrtc"))
    if m and w:
        a = statistics.median(r["cpu_pct_per_viewer"] for r in m)
        b = statistics.median(r["cpu_pct_per_viewer"] for r in w)
        ratios.append(f"{n} viewers: MSE/WebRTC = {a / b:.2f}" if b > 0 else f"{n}: n/a")
print("\n" + "; ".join(ratios) + ".\n")
PY
