#!/usr/bin/env bash
# RTSP camera ingest load benchmark: what one corecast shard costs per camera stream it
# pulls over RTSP and fans out to one WebRTC (WHEP) viewer.
#
#   perf/rtsp_load.sh                              M = 50 100 200, then +50 until it breaks
#   MS="200" MAX_M=0 DURATION=15 perf/rtsp_load.sh         just M = 200
#   TRANSPORT=udp perf/rtsp_load.sh                RTP over UDP instead of interleaved TCP
#
# Builds release and encodes a 20 s 720p30 2 Mbit/s H.264 clip (GOP 2 s, video only). For
# each M: starts `corecast-load camera` (M simulated cameras: every rtsp://.../camN serves
# the clip, looped) pinned to CPU $LOAD_CPU, and corecast with M configured streams
#
#   [[streams]]
#   path = "camN"
#   source = "rtsp://127.0.0.1:PORT/camN"
#   transport = "tcp"
#
# and one shard pinned to CPU $SERVER_CPU. It waits (bounded) until the API shows all M
# streams live, measures the server with ingest only for $IDLE_S s, then runs
# `corecast-load whep` with one viewer per stream (--paths cam{0..M-1}, also on CPU
# $LOAD_CPU) and reads the server's CPU time, RSS, /metrics counters and per-stream
# frames_in at the start and end of the tool's measurement window. After MS it keeps
# adding STEP cameras until packet loss or frames never sent reach 0.1 %, a viewer fails,
# a path misses frames, the server ingests < 99.9 % of the frames the cameras sent (over
# the whole run: the cameras stop first), loses an RTP packet from a camera or reconnects
# one, the server's core saturates (CPU >= 95 %) or M passes MAX_M.
#
# The camera simulator and the viewers share CPU $LOAD_CPU; their CPU % is in the table
# ("load side"): near 100 % the load side, not the server, is the limit.
#
# Prints a Markdown report and appends it to perf/RESULTS.md.
#
# Environment: MS ("50 100 200"), STEP (50), MAX_M (1000; 0: only MS), DURATION (20 s),
# RAMP (viewers/s, 50), TRANSPORT (tcp|udp), IDLE_S (5), SERVER_CPU (0), LOAD_CPU (1),
# RESULTS (perf/RESULTS.md), KEEP_TMP=1 keeps the temp dir (configs, logs, per-run JSON).
# SOURCE=file replaces the cameras by M file sources of the same clip (a dry run of the
# script and of the fan-out side while the server cannot pull rtsp:// yet; its report says
# so).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

MS=${MS:-"50 100 200"}
STEP=${STEP:-50}
MAX_M=${MAX_M:-1000}
DURATION=${DURATION:-20}
RAMP=${RAMP:-50}
TRANSPORT=${TRANSPORT:-tcp}
IDLE_S=${IDLE_S:-5}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
RESULTS=${RESULTS:-perf/RESULTS.md}
SOURCE=${SOURCE:-rtsp}
SETTLE=3
CMDLINE="MS=\"$MS\" STEP=$STEP MAX_M=$MAX_M DURATION=$DURATION RAMP=$RAMP TRANSPORT=$TRANSPORT"
[ "$SOURCE" = rtsp ] || CMDLINE="$CMDLINE SOURCE=$SOURCE"
CMDLINE="$CMDLINE perf/rtsp_load.sh"

NAME=rtsp_load
# shellcheck source=perf/lib.sh
. "$REPO/perf/lib.sh"

case $TRANSPORT in tcp|udp) ;; *) die "TRANSPORT must be tcp or udp, not $TRANSPORT" ;; esac
case $SOURCE in rtsp|file) ;; *) die "SOURCE must be rtsp or file, not $SOURCE" ;; esac

TMP=$(mktemp -d /tmp/rtsp_load.XXXXXX)
SERVER_PID="" LOAD_PID="" SIM_PID=""

cleanup() {
  stop_pid "$LOAD_PID"; LOAD_PID=""
  stop_pid "$SERVER_PID"; SERVER_PID=""
  stop_pid "$SIM_PID"; SIM_PID=""
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "rtsp_load: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The script, ffmpeg, cargo, the cameras and the viewers run on LOAD_CPU; the server on
# SERVER_CPU.
pin_script "$LOAD_CPU"

for tool in ffmpeg ffprobe python3 taskset curl; do
  command -v "$tool" >/dev/null || die "needs $tool"
done

build_release

# --- the clip ----------------------------------------------------------------------------
say "making a 20 s 720p30 2 Mbit/s H.264 clip (GOP 2 s)"
CLIP="$TMP/clip.flv"
timeout 300 ffmpeg -hide_banner -loglevel error -nostdin -y \
  -f lavfi -i "testsrc2=size=1280x720:rate=30" -t 20 -c:v libx264 -preset veryfast \
  -tune zerolatency -b:v 2M -maxrate 2M -bufsize 1M -g 60 -keyint_min 60 -sc_threshold 0 \
  -bf 0 -pix_fmt yuv420p -f flv "$CLIP"
CLIP_BPS=$(ffprobe -v error -show_entries format=bit_rate -of default=nw=1:nk=1 "$CLIP")
CLIP_FPS=30
say "clip: $(stat -c %s "$CLIP") bytes, ${CLIP_BPS} bit/s"

# The server's counters of interest, summed over labels ("name=value ..."); nothing if it
# does not answer in time (a saturated shard).
metrics() {
  { curl -s --max-time 10 "http://127.0.0.1:$1/metrics" || true; } \
    | awk '/^corecast_(rtsp_|source_|ingest_|frames_in_total|frames_dropped_total|bytes_in_total|udp_|webrtc_sessions|rtp_packets_out)/ {
        sub(/\{.*\}/, "", $1); sum[$1] += $2 }
      END { for (k in sum) printf "%s=%.0f ", k, sum[k] }'
}
# The streams API boiled down: "live=N total=N frames_in=N states=a:1,b:2".
streams() {
  { curl -s --max-time 10 "http://127.0.0.1:$1/api/v1/streams" || echo '{}'; } | python3 -c '
import collections, json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    d = {}
ss = [s for s in d.get("streams", []) if s.get("path", "").startswith("cam")]
states = collections.Counter((s.get("source") or {}).get("state", "none") for s in ss)
live = sum(1 for s in ss if (s.get("source") or {}).get("state") == "live"
           and any(t.get("codec") == "h264" for t in s.get("tracks", [])))
print("live=%d total=%d frames_in=%d states=%s" % (live, len(ss), sum(s.get("frames_in", 0) for s in ss),
      ",".join("%s:%d" % kv for kv in sorted(states.items())) or "-"))'
}
field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2 }'; }

# Waits (bounded) until file $1 contains line $2 while process $4 runs.
wait_marker() {
  local file=$1 text=$2 limit=$3 pid=$4 start
  start=$SECONDS
  while [ $((SECONDS - start)) -lt "$limit" ]; do
    grep -qF "$text" "$file" 2>/dev/null && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      grep -qF "$text" "$file" 2>/dev/null
      return
    fi
    sleep 0.05
  done
  return 1
}

# Writes the server config for M streams ($2) to $1/corecast.toml (M = 0: no streams).
write_config() {
  local dir=$1 m=$2 http=$3 rtsp_port=$4 i
  cat >"$dir/corecast.toml" <<EOF
[runtime]
shards = 1
cpus = [$SERVER_CPU]
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
EOF
  for ((i = 0; i < m; i++)); do
    if [ "$SOURCE" = file ]; then
      printf '\n[[streams]]\npath = "cam%d"\nsource = "file:%s"\n' "$i" "$CLIP"
    else
      printf '\n[[streams]]\npath = "cam%d"\nsource = "rtsp://127.0.0.1:%d/cam%d"\ntransport = "%s"\n' \
        "$i" "$rtsp_port" "$i" "$TRANSPORT"
    fi
  done >>"$dir/corecast.toml"
}

# Starts corecast with $1/corecast.toml; fails with its config error if it exits at once.
start_corecast() {
  local dir=$1 http=$2
  taskset -c "$SERVER_CPU" "$CORECAST" --config "$dir/corecast.toml" >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      local rc=0
      wait "$SERVER_PID" || rc=$?
      SERVER_PID=""
      sed 's/^/    /' "$dir/server.log" >&2
      if grep -q 'config error' "$dir/server.log"; then
        die "corecast rejected the config (exit $rc; config in $dir/corecast.toml, KEEP_TMP=1 keeps it). \
Does this build pull rtsp:// sources with 'transport'? (SOURCE=file runs the rest with file sources.)"
      fi
      die "corecast exited $rc at start-up"
    fi
    curl -s --max-time 1 "http://127.0.0.1:$http/api/v1/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "corecast did not answer on 127.0.0.1:$http within 10 s"
}

# --- the server's own footprint ----------------------------------------------------------
BASE_DIR="$TMP/base"
mkdir -p "$BASE_DIR"
http=$(free_port)
write_config "$BASE_DIR" 0 "$http" 0
start_corecast "$BASE_DIR" "$http"
sleep 1
BASE_RSS=$(rss_kib "$SERVER_PID")
stop_pid "$SERVER_PID"; SERVER_PID=""
say "corecast without streams: VmRSS $BASE_RSS KiB"

ROWS="$TMP/rows.jsonl"
: >"$ROWS"

# One measurement with M cameras and M viewers ($1). Appends a JSON row to $ROWS.
measure() {
  local m=$1 dir http rtsp_port
  dir="$TMP/m$m"
  mkdir -p "$dir"
  http=$(free_port)
  rtsp_port=$(free_port)
  say "$m cameras ($TRANSPORT), $m viewers"

  # The cameras.
  taskset -c "$LOAD_CPU" "$LOAD" camera --clip "$CLIP" --port "$rtsp_port" --threads 1 \
    --cpu "$LOAD_CPU" --max-sessions $(( m + 100 )) --report 5 \
    >"$dir/sim.json" 2>"$dir/sim.err" &
  SIM_PID=$!
  wait_marker "$dir/sim.err" "READY" 30 "$SIM_PID" \
    || { cat "$dir/sim.err" >&2; die "corecast-load camera did not start"; }

  write_config "$dir" "$m" "$http" "$rtsp_port"
  start_corecast "$dir" "$http"

  # All M streams live (bounded).
  local limit=$(( 30 + m / 10 )) start=$SECONDS st=""
  while :; do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$dir/server.log" >&2; die "corecast exited"; }
    st=$(streams "$http")
    [ "$(field "$st" live)" -ge "$m" ] 2>/dev/null && break
    if [ $(( SECONDS - start )) -ge "$limit" ]; then
      tail -20 "$dir/server.log" >&2
      tail -3 "$dir/sim.err" >&2
      die "only $(field "$st" live) of $m streams live after ${limit} s (source states: $(field "$st" states))"
    fi
    sleep 0.5
  done
  say "  $m streams live after $(( SECONDS - start )) s"
  sleep 1

  # Ingest only: the cameras, no viewers.
  local it0 ic0 it1 ic1 irss is0 is1
  it0=$(now); ic0=$(cpu_ticks "$SERVER_PID"); is0=$(cpu_ticks "$SIM_PID")
  sleep "$IDLE_S"
  it1=$(now); ic1=$(cpu_ticks "$SERVER_PID"); is1=$(cpu_ticks "$SIM_PID")
  irss=$(rss_kib "$SERVER_PID")

  local setup_limit=$(( m / RAMP + 5 + 10 + 2 + SETTLE + 20 ))
  timeout $(( setup_limit + DURATION + 30 )) "$LOAD" whep --url "http://127.0.0.1:$http" \
    --paths "cam{0..$(( m - 1 ))}" --viewers "$m" --ramp "$RAMP" --duration "$DURATION" \
    --settle "$SETTLE" --cpu "$LOAD_CPU" --stream-bps "$CLIP_BPS" --stream-fps "$CLIP_FPS" \
    >"$dir/load.json" 2>"$dir/load.err" &
  LOAD_PID=$!
  wait_marker "$dir/load.err" "window start" "$setup_limit" "$LOAD_PID" \
    || { cat "$dir/load.err" >&2; die "the load tool did not start its window"; }
  local t0 c0 r0 b0 s0 m0 f0 ft0 t1 c1 r1 b1 s1 m1 f1 ft1
  t0=$(now); c0=$(cpu_ticks "$SERVER_PID"); r0=$(rss_kib "$SERVER_PID"); b0=$(cpu_busy "$SERVER_CPU")
  s0=$(cpu_ticks "$SIM_PID"); ft0=$(now); f0=$(field "$(streams "$http")" frames_in); m0=$(metrics "$http")
  wait_marker "$dir/load.err" "window end" $(( DURATION + 10 )) "$LOAD_PID" \
    || { cat "$dir/load.err" >&2; die "the load tool did not end its window"; }
  t1=$(now); c1=$(cpu_ticks "$SERVER_PID"); r1=$(rss_kib "$SERVER_PID"); b1=$(cpu_busy "$SERVER_CPU")
  s1=$(cpu_ticks "$SIM_PID"); ft1=$(now); f1=$(field "$(streams "$http")" frames_in); m1=$(metrics "$http")
  local rc=0
  wait "$LOAD_PID" || rc=$?
  LOAD_PID=""
  [ "$rc" = 0 ] || { cat "$dir/load.err" >&2; die "corecast-load whep exited $rc"; }
  grep -v '^corecast-load: window' "$dir/load.err" | sed 's/^/    /' >&2 || true
  # Cameras first: once what they sent has arrived, the server's frames_in of the whole
  # run must equal the frames they sent.
  stop_pid "$SIM_PID"; SIM_PID=""
  [ -s "$dir/sim.json" ] || echo '{}' >"$dir/sim.json"
  sleep 1
  local fall
  fall=$(field "$(streams "$http")" frames_in)
  stop_pid "$SERVER_PID"; SERVER_PID=""

  python3 - "$m" "$CLK_TCK" "$BASE_RSS" "$it0" "$ic0" "$is0" "$it1" "$ic1" "$is1" "$irss" \
    "$t0" "$c0" "$r0" "$b0" "$s0" "$f0" "$ft0" "$t1" "$c1" "$r1" "$b1" "$s1" "$f1" "$ft1" "$m0" "$m1" \
    "$CLIP_BPS" "$CLIP_FPS" "$dir/load.json" "$dir/sim.json" "$fall" >>"$ROWS" <<'PY'
import json, sys
(m, clk, base_rss, it0, ic0, is0, it1, ic1, is1, irss, t0, c0, r0, b0, s0, f0, ft0, t1, c1, r1, b1,
 s1, f1, ft1, m0, m1, clip_bps, clip_fps, load_path, sim_path, frames_all) = sys.argv[1:]
m, clk, fps = int(m), float(clk), float(clip_fps)
load = json.load(open(load_path))
sim = json.load(open(sim_path))
window = float(t1) - float(t0)
idle_window = float(it1) - float(it0)
cpu = (int(c1) - int(c0)) / clk / window * 100.0
idle = (int(ic1) - int(ic0)) / clk / idle_window * 100.0
core_busy = (int(b1) - int(b0)) / clk / window * 100.0
sim_cpu = (int(s1) - int(s0)) / clk / window * 100.0
kv = lambda s: {k: int(v) for k, v in (p.split("=") for p in s.split())}
m0, m1 = kv(m0), kv(m1)
delta = lambda k: (m1[k] - m0.get(k, 0)) if k in m1 else None
ingested = int(f1 or 0) - int(f0 or 0)
# frames_in is read apart from the CPU counters: over its own interval. A server behind at
# the window start and caught up at its end ingests more than that interval's frames.
expected = m * fps * (float(ft1) - float(ft0))
sent = sim.get("frames_sent")
row = {
    "m": m, "window_s": round(window, 2),
    "cpu_pct": cpu, "cpu_pct_per_stream": cpu / m,
    "streams_per_core": 100.0 / (cpu / m) if cpu > 0 else None,
    "ingest_cpu_pct": idle, "ingest_cpu_pct_per_stream": idle / m,
    "core_busy_pct": core_busy, "other_on_core_pct": max(core_busy - cpu, 0.0),
    "rss_base_kib": int(base_rss), "rss_ingest_kib": int(irss), "rss_end_kib": int(r1),
    "rss_per_stream_kib": (int(r1) - int(base_rss)) / m,
    "rss_ingest_per_stream_kib": (int(irss) - int(base_rss)) / m,
    "window_frames_in": ingested, "window_frames_expected": round(expected),
    "window_ingest_pct": ingested / expected * 100.0 if expected else None,
    # Whole run: frames_in of the M streams / frames the cameras sent (join bursts included).
    "frames_in": int(frames_all or 0), "frames_sent": sent,
    "ingest_pct": int(frames_all or 0) / sent * 100.0 if sent else None,
    # RTP packets the server saw missing from the cameras' sequences, and reconnects
    # (None: the build has no such counter).
    "ingest_lost": delta("corecast_source_packets_lost_total") if "corecast_source_packets_lost_total" in m1
                   else delta("corecast_rtsp_packets_lost_total"),
    "reconnects": delta("corecast_source_reconnects_total"),
    "sim_cpu_pct": sim_cpu,
    "load_side_cpu_pct": sim_cpu + (load.get("load_cpu_pct") or 0.0),
    # Counters (_total) over the window; gauges at its end.
    "metrics": {k: (m1.get(k, 0) - m0.get(k, 0)) if k.endswith("_total") else m1.get(k, 0)
                for k in sorted(set(m0) | set(m1))},
    "expected_bps": int(clip_bps), "load": load, "sim": sim,
}
print(json.dumps(row))
PY
  python3 -c '
import json, sys
r = json.loads(sys.stdin.readlines()[-1]); l = r["load"]; s = r["sim"]
print("    server cpu %.1f%% (%.3f%%/stream: %s streams/core; ingest only %.3f%%/stream), rss +%.0f KiB/stream, ingested %s%% of frames, viewers: loss %.4f%%, never sent %.4f%%, %s/%d paths complete, failed %d; cameras: cpu %.1f%%, dropped %s frames, late %s; load side %.0f%% of CPU" % (
  r["cpu_pct"], r["cpu_pct_per_stream"], "%.0f" % r["streams_per_core"] if r["streams_per_core"] else "n/a",
  r["ingest_cpu_pct_per_stream"], r["rss_per_stream_kib"],
  "%.2f" % r["ingest_pct"] if r["ingest_pct"] is not None else "n/a",
  l["loss_pct"], l["frame_loss_pct"], l.get("paths_complete"), r["m"], l["viewers_failed"],
  r["sim_cpu_pct"], s.get("frames_dropped"), s.get("late_frames"), r["load_side_cpu_pct"]))' \
    <"$ROWS" >&2
}

# Whether the last row says stop: loss, frames never sent or missed ingest >= 0.1 %, a
# failure, a path that missed frames, a packet lost on ingest or a reconnect, or a
# saturated core.
saturated() {
  python3 -c '
import json, sys
r = json.loads(sys.stdin.readlines()[-1]); l = r["load"]
stop = (l["loss_pct"] >= 0.1 or l["frame_loss_pct"] >= 0.1 or l["viewers_failed"] > 0
        or l["viewers_dropped"] > 0 or l.get("paths_complete", 0) < r["m"]
        or (r["ingest_pct"] is not None and r["ingest_pct"] < 99.9)
        or (r["ingest_lost"] or 0) > 0 or (r["reconnects"] or 0) > 0
        or r["cpu_pct"] >= 95.0)
sys.exit(0 if stop else 1)' <"$ROWS"
}

last=0
stopped=0
for m in $MS; do
  measure "$m"
  last=$m
  if saturated; then stopped=1; break; fi
done
if [ "$stopped" = 0 ] && [ "$MAX_M" -gt 0 ]; then
  m=$(( last + STEP ))
  while [ "$m" -le "$MAX_M" ]; do
    measure "$m"
    if saturated; then break; fi
    m=$(( m + STEP ))
  done
fi

# --- report ------------------------------------------------------------------------------
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
REPORT="$TMP/report.md"
python3 - "$ROWS" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$REV_LABEL" "$(nproc --all)" "$CPU_MODEL" \
  "$(uname -r)" "$CMDLINE" "$DURATION" "$RAMP" "$SERVER_CPU" "$LOAD_CPU" "$TRANSPORT" "$SOURCE" \
  "$IDLE_S" >"$REPORT" <<'PY'
import json, sys
(rows_path, date, head, nproc, cpu, kernel, cmd, duration, ramp, scpu, lcpu, transport, source,
 idle_s) = sys.argv[1:]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
out = []
title = "RTSP camera ingest load" if source == "rtsp" else \
    "RTSP camera ingest load: DRY RUN with file sources (no RTSP ingest measured)"
out.append(f"## {title}, {date}\n")
out.append(f"- commit `{head}`, {nproc} CPUs ({cpu}), kernel {kernel}")
out.append(f"- command: `{cmd}`")
if source == "rtsp":
    out.append(f"- corecast: one shard pinned to CPU {scpu} (`runtime.shards = 1`, `io_memory = \"256KiB\"`) "
               f"pulling M streams `rtsp://127.0.0.1:PORT/camN` (`transport = \"{transport}\"`) from "
               f"`corecast-load camera` (M simulated cameras, one executor on CPU {lcpu})")
else:
    out.append(f"- corecast: one shard pinned to CPU {scpu} serving M file sources of the clip "
               f"(SOURCE=file: the script and the fan-out checked; no RTSP ingest)")
out.append(f"- viewers: `corecast-load whep --paths cam{{0..M-1}}`, one per stream, on CPU {lcpu} "
           f"(the same CPU as the cameras: \"load side\" is their CPU % together), joining at {ramp}/s, "
           f"then a 3 s settle and a {duration} s window; ingest-only figures from {idle_s} s before the viewers")
exp = rows[0]["expected_bps"] / 1e6 if rows else 0
out.append(f"- clip: 1280x720 30 fps H.264 (libx264 veryfast zerolatency, 2 Mbit/s, GOP 60, no "
           f"B-frames), video only, {exp:.2f} Mbit/s by ffprobe")
out.append("- CPU % is of one core: utime+stime of the server over the window; per stream: / M; "
           "streams/core = 100 / that; RSS/stream = (VmRSS at window end - VmRSS of corecast "
           "without streams) / M; ingested = frames_in of the M streams / "
           "frames the cameras sent, whole run (the cameras stop first); loss / never sent: what the viewers got (RTP sequence gaps / "
           "frames missing from the RTP timestamps); paths complete: streams whose viewer got "
           "every frame and packet in the window\n")

def f(x, fmt):
    return "n/a" if x is None else format(x, fmt)

out.append("| M | server CPU % | CPU %/stream | streams/core | ingest-only CPU %/stream | RSS/stream KiB "
           "(ingest only) | ingested % | ingest lost pkts / reconnects | viewer fps median (p5) | loss % "
           "| never sent % | paths complete | viewers failed | camera drops | camera CPU % | load side CPU % "
           "| other % |")
out.append("|---:|---:|---:|---:|---:|---|---:|---|---|---:|---:|---|---:|---:|---:|---:|---:|")
for r in rows:
    l, s = r["load"], r["sim"]
    fp = l["frames_per_s_per_viewer"]
    out.append(
        f"| {r['m']} | {r['cpu_pct']:.1f} | {r['cpu_pct_per_stream']:.3f} | {f(r['streams_per_core'], '.0f')} "
        f"| {r['ingest_cpu_pct_per_stream']:.3f} | {r['rss_per_stream_kib']:.0f} ({r['rss_ingest_per_stream_kib']:.0f}) "
        f"| {f(r['ingest_pct'], '.2f')} | {f(r['ingest_lost'], 'd')} / {f(r['reconnects'], 'd')} "
        f"| {fp['median']:.1f} ({fp['p5']:.1f}) | {l['loss_pct']:.4f} "
        f"| {l['frame_loss_pct']:.4f} | {l.get('paths_complete', 'n/a')} / {r['m']} | {l['viewers_failed']} "
        f"| {s.get('frames_dropped', 'n/a')} | {r['sim_cpu_pct']:.1f} | {r['load_side_cpu_pct']:.0f} "
        f"| {r['other_on_core_pct']:.1f} |")
out.append("")
counters = sorted({k for r in rows for k in r["metrics"] if k.startswith(("corecast_rtsp_", "corecast_source_", "corecast_ingest_"))}
                  | {"corecast_frames_dropped_total"})
if rows:
    out.append("Server metrics (`/metrics`, summed over labels; `_total` counters over the window, "
               "gauges at its end): " + "; ".join(
        f"M={r['m']}: " + ", ".join(f"{k.removeprefix('corecast_')} {r['metrics'].get(k, 0)}" for k in counters)
        for r in rows) + "\n")
ok = [r for r in rows if r["load"]["loss_pct"] < 0.1 and r["load"]["frame_loss_pct"] < 0.1
      and r["load"]["viewers_failed"] == 0 and r["load"].get("paths_complete", 0) == r["m"]
      and (r["ingest_pct"] is None or r["ingest_pct"] >= 99.9) and not r["ingest_lost"]
      and not r["reconnects"] and r["cpu_pct"] < 95.0]
out.append("Target (>= 200 camera streams per core ingested and fanned out to one viewer each, "
           "no frame loss on loopback):\n")
dry = "" if source == "rtsp" else " (file sources: not the target's measurement)"
if ok:
    best = max(ok, key=lambda r: r["m"])
    per = best["cpu_pct_per_stream"]
    spc = best["streams_per_core"] or float("inf")
    if best["m"] >= 200:
        verdict = "met" if spc >= 200 else f"missed by {200 / spc:.2f}x"
    else:
        verdict = f"not shown: no loss-free run at M >= 200 (this is {spc:.0f} streams/core extrapolated)"
    out.append(f"- at M = {best['m']} (largest M without loss) {per:.3f} % of a core per stream: "
               f"{spc:.0f} streams per core: {verdict}{dry}")
else:
    out.append(f"- no run without loss{dry}")
if any(r["load_side_cpu_pct"] >= 90 for r in rows):
    out.append("- the load side (cameras + viewers on one CPU) reached >= 90 % of its CPU in some runs: "
               "their loss may be the load side's")
out.append("")
print("\n".join(out))
PY

cat "$REPORT"
{ echo; cat "$REPORT"; } >>"$RESULTS"
say "appended to $RESULTS"
