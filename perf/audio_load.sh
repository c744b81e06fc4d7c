#!/usr/bin/env bash
# What AAC to Opus transcoding adds under WebRTC load: N WebRTC viewers of one AAC stream
# (the owner shard transcodes it once) against N viewers of the same stream with Opus.
#
#   perf/audio_load.sh                       400 viewers, 2 rounds of (AAC, Opus), 20 s each
#   N=200 ROUNDS=1 DURATION=10 perf/audio_load.sh
#
# The camera is the GStreamer RTSP stand-in (tests/camera/rtsp_camera.py): 1280x720 30 fps
# H.264 at 2 Mbit/s and a 48 kHz stereo tone at 128 kbit/s, as AAC in one run and as Opus
# in the other, so the viewers get the same video and the same Opus bitrate both ways.
# corecast runs one shard pinned to CPU $SERVER_CPU and pulls the camera; corecast-load
# whep (pinned to CPU $LOAD_CPU with the camera) opens N viewers, which negotiate video and
# Opus audio. The script reads the server's CPU time and RSS from /proc and the transcoder's
# CPU counter from /metrics at the start and end of the tool's measurement window; runs
# alternate AAC, Opus, AAC, ... and the report compares the medians.
#
# Prints a Markdown report and appends it to perf/RESULTS.md.
#
# Environment: N (400), ROUNDS (2), DURATION (20 s), RAMP (viewers/s, 100), SERVER_CPU
# (0), LOAD_CPU (1), RESULTS (perf/RESULTS.md), KEEP_TMP=1 keeps the temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

N=${N:-400}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-20}
RAMP=${RAMP:-100}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
RESULTS=${RESULTS:-perf/RESULTS.md}
SETTLE=3
CMDLINE="N=$N ROUNDS=$ROUNDS DURATION=$DURATION RAMP=$RAMP perf/audio_load.sh"

NAME=audio_load
# shellcheck source=perf/lib.sh
. "$REPO/perf/lib.sh"

SERVER_PID="" LOAD_PID="" CAMERA_PID=""
STOP_VARS="LOAD_PID SERVER_PID CAMERA_PID"
make_tmp
pin_script "$LOAD_CPU"
need_tools python3 taskset curl
/usr/bin/python3 -c 'import gi' 2>/dev/null \
  || die "needs Debian's python3-gi and GStreamer for the camera (tests/run.sh installs them)"

build_release

# Starts the camera serving audio codec $1; sets CAMERA_PID and CAMERA_URL.
start_camera() {
  local codec=$1 dir=$2
  taskset -c "$LOAD_CPU" /usr/bin/python3 "$REPO/tests/camera/rtsp_camera.py" --port 0 \
    --video h264 --size 1280x720 --fps 30 --bitrate 2000 --audio "$codec" --audio-bitrate 128 \
    >"$dir/camera.out" 2>"$dir/camera.err" &
  CAMERA_PID=$!
  for _ in $(seq 450); do
    CAMERA_URL=$(sed -n 's/^READY //p' "$dir/camera.out")
    [ -n "$CAMERA_URL" ] && return 0
    kill -0 "$CAMERA_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$dir/camera.err" >&2
  die "the camera did not start"
}

start_corecast() {
  local dir=$1 http=$2 url=$3
  server_config "$dir/corecast.toml" "$http"
  cat >>"$dir/corecast.toml" <<EOF

[rtsp]
transport = "tcp"

[[streams]]
path = "load"
source = "$url"
EOF
  taskset -c "$SERVER_CPU" "$CORECAST" --config "$dir/corecast.toml" >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
}

# Waits (bounded) until the stream has video and an Opus track (for AAC: the transcoded one).
wait_stream() {
  local port=$1
  for _ in $(seq 300); do
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    if curl -s --max-time 1 "http://127.0.0.1:$port/api/v1/streams" 2>/dev/null \
        | python3 -c '
import json, sys
s = json.load(sys.stdin)["streams"][0]
codecs = [t["codec"] for t in s["tracks"]]
sys.exit(0 if "h264" in codecs and "opus" in codecs else 1)' 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# Transcoder CPU time so far (microseconds, every stream).
transcode_us() {
  { curl -s --max-time 10 "http://127.0.0.1:$1/metrics" || true; } \
    | awk '/^corecast_stream_transcode_cpu_microseconds_total/ { s += $2 } END { print s + 0 }'
}

ROWS="$TMP/rows.jsonl"
: >"$ROWS"

# One run: audio codec $1 at the camera, round $2. Appends a JSON row to $ROWS.
measure() {
  local codec=$1 round=$2 dir http
  dir="$TMP/$codec-$round"
  mkdir -p "$dir"
  say "round $round: camera audio $codec, $N viewers"
  start_camera "$codec" "$dir"
  http=$(free_port)
  start_corecast "$dir" "$http" "$CAMERA_URL"
  wait_stream "$http" || { cat "$dir/server.log" >&2; die "corecast did not serve the stream"; }
  sleep 2

  # Idle: the camera's ingest alone, for 3 s.
  local idle_rss it0 ic0 it1 ic1
  it0=$(now); ic0=$(cpu_ticks "$SERVER_PID")
  sleep 3
  it1=$(now); ic1=$(cpu_ticks "$SERVER_PID")
  idle_rss=$(rss_kib "$SERVER_PID")

  local setup_limit=$(( N / RAMP + 5 + 10 + 2 + SETTLE + 20 ))
  timeout $(( setup_limit + DURATION + 30 )) "$LOAD" whep --url "http://127.0.0.1:$http" \
    --path load --viewers "$N" --ramp "$RAMP" --duration "$DURATION" --settle "$SETTLE" \
    --cpu "$LOAD_CPU" --stream-fps 30 >"$dir/load.json" 2>"$dir/load.err" &
  LOAD_PID=$!
  wait_line "$dir/load.err" "window start" "$setup_limit" "$LOAD_PID" \
    || { cat "$dir/load.err" >&2; die "the load tool did not start its window"; }
  local t0 c0 r0 x0 t1 c1 r1 x1
  t0=$(now); c0=$(cpu_ticks "$SERVER_PID"); r0=$(rss_kib "$SERVER_PID"); x0=$(transcode_us "$http")
  wait_line "$dir/load.err" "window end" $(( DURATION + 10 )) "$LOAD_PID" \
    || { cat "$dir/load.err" >&2; die "the load tool did not end its window"; }
  t1=$(now); c1=$(cpu_ticks "$SERVER_PID"); r1=$(rss_kib "$SERVER_PID"); x1=$(transcode_us "$http")
  local streams
  streams=$(curl -s --max-time 10 "http://127.0.0.1:$http/api/v1/streams" || echo '{}')
  local rc=0
  wait "$LOAD_PID" || rc=$?
  LOAD_PID=""
  [ "$rc" = 0 ] || { cat "$dir/load.err" >&2; die "corecast-load exited $rc"; }
  grep -v '^corecast-load: window' "$dir/load.err" | sed 's/^/    /' >&2 || true
  stop_pid "$SERVER_PID"; SERVER_PID=""
  stop_pid "$CAMERA_PID"; CAMERA_PID=""

  python3 - "$codec" "$round" "$CLK_TCK" "$idle_rss" "$it0" "$ic0" "$it1" "$ic1" "$t0" "$c0" \
    "$r0" "$x0" "$t1" "$c1" "$r1" "$x1" "$dir/load.json" "$streams" >>"$ROWS" <<'PY'
import json, sys
(codec, rnd, clk, idle_rss, it0, ic0, it1, ic1, t0, c0, r0, x0, t1, c1, r1, x1, path,
 streams) = sys.argv[1:]
load = json.load(open(path))
clk = float(clk)
window = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / clk / window * 100.0
idle = (int(ic1) - int(ic0)) / clk / (float(it1) - float(it0)) * 100.0
transcode = (int(x1) - int(x0)) / 1e6 / window * 100.0
viewers = load["viewers_in_window"] or 1
try:
    s = json.loads(streams)["streams"][0]
    transcoding = bool(s.get("transcoding"))
    opus = [t for t in s["tracks"] if t["codec"] == "opus"]
    transcoded = bool(opus and opus[0].get("transcoded_from") is not None)
except (ValueError, KeyError, IndexError):
    transcoding = transcoded = None
print(json.dumps({
    "codec": codec, "round": int(rnd), "viewers": load["viewers_in_window"],
    "window_s": round(window, 2), "cpu_pct": cpu, "idle_cpu_pct": idle,
    "transcode_cpu_pct": transcode,
    "cpu_pct_per_viewer": cpu / viewers,
    # Egress alone: the server's CPU less the ingest (idle) and the transcoder.
    "egress_pct_per_viewer": max(cpu - idle - transcode, 0.0) / viewers,
    "rss_idle_kib": int(idle_rss),
    "rss_per_viewer_kib": (int(r1) - int(idle_rss)) / viewers,
    "transcoding": transcoding, "opus_transcoded": transcoded,
    "load": load,
}))
PY
  python3 -c '
import json, sys
r = json.loads(sys.stdin.readlines()[-1]); l = r["load"]
print("    server cpu %.1f%% (%.4f%%/viewer; egress %.4f%%/viewer), transcoder %.2f%%, rss +%.0f KiB/viewer, audio %.1f pkt/s/viewer, loss %.4f%%, failed %d" % (
  r["cpu_pct"], r["cpu_pct_per_viewer"], r["egress_pct_per_viewer"], r["transcode_cpu_pct"],
  r["rss_per_viewer_kib"], l["audio_packets_per_s_per_viewer"], l["loss_pct"], l["viewers_failed"]))' \
    <"$ROWS" >&2
}

for round in $(seq "$ROUNDS"); do
  measure aac "$round"
  measure opus "$round"
done

# --- report ------------------------------------------------------------------------------
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
REPORT="$TMP/report.md"
python3 - "$ROWS" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$REV_LABEL" "$(nproc --all)" \
  "$CPU_MODEL" "$(uname -r)" "$CMDLINE" "$DURATION" "$RAMP" "$SERVER_CPU" "$LOAD_CPU" \
  >"$REPORT" <<'PY'
import json, statistics, sys
(rows_path, date, head, nproc, cpu, kernel, cmd, duration, ramp, scpu, lcpu) = sys.argv[1:]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
out = [f"## WebRTC viewers of an AAC stream (transcoded to Opus) against an Opus stream, {date}\n"]
out.append(f"- commit `{head}`, {nproc} CPUs ({cpu}), kernel {kernel}")
out.append(f"- command: `{cmd}`")
out.append(f"- camera: the GStreamer RTSP stand-in, 1280x720 30 fps H.264 2 Mbit/s and a 48 kHz "
           f"stereo tone at 128 kbit/s as AAC or as Opus; corecast: one shard pinned to CPU {scpu}, "
           f"pulling the camera; corecast-load whep and the camera on CPU {lcpu}; viewers (video + "
           f"Opus) join at {ramp}/s, then a 3 s settle and a {duration} s window")
out.append("- CPU % is of one core (utime+stime of the server over the window); transcoder: the "
           "`corecast_stream_transcode_cpu_microseconds_total` increase over the window; egress/"
           "viewer: (server CPU - ingest alone before the viewers - transcoder) / viewers\n")
out.append("| run | audio at the camera | viewers | server CPU % | transcoder CPU % | CPU %/viewer "
           "| egress %/viewer | RSS/viewer KiB | audio pkt/s/viewer | video fps/viewer | Mbit/s/viewer "
           "| loss % | failed |")
out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    l = r["load"]
    out.append(f"| {r['round']} | {r['codec'].upper()}{' (transcoded)' if r['opus_transcoded'] else ''} "
               f"| {r['viewers']} | {r['cpu_pct']:.1f} | {r['transcode_cpu_pct']:.2f} "
               f"| {r['cpu_pct_per_viewer']:.4f} | {r['egress_pct_per_viewer']:.4f} "
               f"| {r['rss_per_viewer_kib']:.0f} | {l['audio_packets_per_s_per_viewer']:.1f} "
               f"| {l['frames_per_s_per_viewer']['median']:.1f} "
               f"| {l['bitrate_per_viewer_bps']['median'] / 1e6:.2f} | {l['loss_pct']:.4f} "
               f"| {l['viewers_failed']} |")
out.append("")
med = lambda codec, k: statistics.median(r[k] for r in rows if r["codec"] == codec)
if any(r["codec"] == "aac" for r in rows) and any(r["codec"] == "opus" for r in rows):
    a, o = med("aac", "cpu_pct_per_viewer"), med("opus", "cpu_pct_per_viewer")
    ea, eo = med("aac", "egress_pct_per_viewer"), med("opus", "egress_pct_per_viewer")
    t = med("aac", "transcode_cpu_pct")
    ra, ro = med("aac", "rss_per_viewer_kib"), med("opus", "rss_per_viewer_kib")
    out.append("Medians:\n")
    out.append(f"- CPU per viewer: AAC stream {a:.4f} %, Opus stream {o:.4f} % "
               f"({(a - o) / o * 100 if o else 0:+.1f} %)")
    out.append(f"- egress per viewer (ingest and transcoder taken out): AAC {ea:.4f} %, Opus {eo:.4f} % "
               f"({(ea - eo) / eo * 100 if eo else 0:+.1f} %)")
    out.append(f"- the transcoder: {t:.2f} % of a core for the whole stream, whatever the viewers")
    out.append(f"- RSS per viewer: AAC {ra:.0f} KiB, Opus {ro:.0f} KiB")
    out.append("")
print("\n".join(out))
PY

cat "$REPORT"
{ echo; cat "$REPORT"; } >>"$RESULTS"
say "appended to $RESULTS"
