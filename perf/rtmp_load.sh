#!/usr/bin/env bash
# RTMP play load benchmark: corecast against nginx-rtmp on the same machine.
#
#   perf/rtmp_load.sh                               N = 100 500 1000, 20 s windows
#   NS="100 500" DURATION=15 perf/rtmp_load.sh      fewer players, shorter windows
#   PLAYERS="rtmpdump ffmpeg" NS="100 300" REPEAT=3 perf/rtmp_load.sh
#                                                   real players, one process each
#
# For each server and each N: start the server on 127.0.0.1 pinned to CPU $SERVER_CPU,
# publish a 2 Mbit/s 720p30 clip to it with ffmpeg, open N players (both pinned to CPU
# $LOAD_CPU), and read the server's CPU time and RSS from /proc at the start and end of a
# measurement window. Prints one Markdown table per server and player and the
# corecast/nginx ratios, appends them to perf/RESULTS.md and writes the rows as CSV to
# perf/data/rtmp-<UTC stamp>.csv (DATA; data/ next to $RESULTS), drawn by perf/plot.sh
# into perf/plots (PLOTS; PLOT=0: no plots).
#
# Players (PLAYERS, one or more):
#   light     corecast-load rtmp: one process, N connections (the window and the bitrate
#             per player are its own)
#   rtmpdump  Debian's rtmpdump (librtmp), `rtmpdump -v -q -r URL -o /dev/null`, one
#             process per player
#   ffmpeg    `ffmpeg -i URL -c copy -f null -` (ffmpeg's own RTMP client), one process
#             per player
# For the real players the script reads what each connection delivered from the server's
# side of the socket (`ss -ti`: bytes_acked over the window), so every server and player
# is measured alike; a player that got less than 90 % of the clip's bitrate counts as
# stalled. TTFF is the light client's only.
#
# Environment: NS, DURATION (s), RAMP (connections/s), SERVERS ("corecast nginx"),
# PLAYERS ("light"), TRACE (1: count the server's system calls per player per second over
# 5 s after each window with `perf trace -s`; the report gets a table of them),
# CORECAST_RTMP (lines added to corecast's [rtmp] section, for trying
# settings, e.g. 'merge_write = "50ms"'),
# REPEAT (runs per cell, 1; the report shows medians and [min-max]), CORECAST_REV (measure
# this commit, built from a clean export, instead of the working tree), CORECAST_BIN and
# CORECAST_LABEL (measure this binary, named so in the report), SERVER_CPU (0),
# LOAD_CPU (1), CLIP_SECONDS (20), RESULTS (perf/RESULTS.md),
# KEEP_TMP=1 keeps the temp dir (configs, logs, per-run JSON).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

NS=${NS:-"100 500 1000"}
DURATION=${DURATION:-20}
RAMP=${RAMP:-200}
SERVERS=${SERVERS:-"corecast nginx"}
PLAYERS=${PLAYERS:-light}
TRACE=${TRACE:-0}
TRACE_S=5
CORECAST_RTMP=${CORECAST_RTMP:-}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
CLIP_SECONDS=${CLIP_SECONDS:-20}
REPEAT=${REPEAT:-1}
RESULTS=${RESULTS:-perf/RESULTS.md}
SETTLE=2
CMDLINE="${CORECAST_BIN:+CORECAST_BIN=$CORECAST_BIN }${CORECAST_REV:+CORECAST_REV=$CORECAST_REV }${CORECAST_RTMP:+CORECAST_RTMP='$CORECAST_RTMP' }$([ "$TRACE" != 1 ] || echo "TRACE=1 ")PLAYERS=\"$PLAYERS\" NS=\"$NS\" DURATION=$DURATION REPEAT=$REPEAT RAMP=$RAMP SERVERS=\"$SERVERS\" perf/rtmp_load.sh"

NAME=rtmp_load
# shellcheck source=perf/lib.sh
. "$REPO/perf/lib.sh"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to install: $*" >&2; return 1; fi
}

TMP=$(mktemp -d /tmp/rtmp_load.XXXXXX)
SERVER_PID="" PUB_PID="" LOAD_PID=""
PLAYER_PIDS=()

# Stops the real players: SIGKILL (they hold nothing worth a clean exit), then reaps them.
stop_players() {
  [ ${#PLAYER_PIDS[@]} -gt 0 ] || return 0
  kill -KILL "${PLAYER_PIDS[@]}" 2>/dev/null || true
  wait "${PLAYER_PIDS[@]}" 2>/dev/null || true
  PLAYER_PIDS=()
}

cleanup() {
  stop_players
  stop_pid "$LOAD_PID"; LOAD_PID=""
  stop_pid "$PUB_PID"; PUB_PID=""
  stop_pid "$SERVER_PID"; SERVER_PID=""
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "rtmp_load: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Everything this script starts (the load tool, ffmpeg, probes) runs on LOAD_CPU; the
# servers are started with taskset on SERVER_CPU.
taskset -cp "$LOAD_CPU" $$ >/dev/null || die "cannot pin to CPU $LOAD_CPU (taskset)"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- tools -------------------------------------------------------------------------------
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v ffprobe >/dev/null || need+=(ffmpeg)
command -v python3 >/dev/null || need+=(python3)
command -v taskset >/dev/null || need+=(util-linux)
command -v ss >/dev/null || need+=(iproute2)
if [ "$TRACE" = 1 ]; then command -v perf >/dev/null || need+=(linux-perf); fi
if [[ " $PLAYERS " == *" rtmpdump "* ]]; then command -v rtmpdump >/dev/null || need+=(rtmpdump); fi
if [[ " $SERVERS " == *" nginx "* ]]; then
  command -v nginx >/dev/null || need+=(nginx)
  if ! ls /usr/lib/nginx/modules/ngx_rtmp_module.so >/dev/null 2>&1 \
     && ! nginx -V 2>&1 | grep -q rtmp; then
    need+=(libnginx-mod-rtmp)
  fi
fi
if [ ${#need[@]} -gt 0 ]; then
  say "installing with apt-get: ${need[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

say "cargo build --release -p corecast -p corecast-perf"
cargo build --release -q -p corecast -p corecast-perf
CORECAST="$REPO/target/release/corecast"
LOAD="$REPO/target/release/corecast-load"
# The corecast measured: the working tree, a committed revision (CORECAST_REV), built
# from a clean export so that edits in progress do not leak into the numbers (a cold
# build: minutes), or a binary built elsewhere (CORECAST_BIN, named by CORECAST_LABEL).
if [ -n "${CORECAST_BIN:-}" ]; then
  [ -x "$CORECAST_BIN" ] || die "CORECAST_BIN=$CORECAST_BIN is not an executable"
  CORECAST=$CORECAST_BIN
  REV_LABEL="${CORECAST_LABEL:-the binary $CORECAST_BIN}"
elif [ -n "${CORECAST_REV:-}" ]; then
  REV_LABEL=$(git rev-parse --short "$CORECAST_REV") || die "unknown revision $CORECAST_REV"
  say "building corecast at $REV_LABEL from a clean export"
  mkdir -p "$TMP/src"
  git archive "$CORECAST_REV" | tar -x -C "$TMP/src"
  cargo build --release -q --manifest-path "$TMP/src/Cargo.toml" -p corecast \
    --target-dir "$REPO/target/rev-build"
  CORECAST="$REPO/target/rev-build/release/corecast"
else
  REV_LABEL=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=$(git status --porcelain --untracked-files=no -- . ':!perf' 2>/dev/null | awk '{ print $2 }' | paste -sd, -)
  [ -z "$dirty" ] || REV_LABEL="$REV_LABEL + uncommitted changes to $dirty"
fi

say "making a ${CLIP_SECONDS} s 720p30 2 Mbit/s H.264 + AAC clip"
CLIP="$TMP/clip.flv"
timeout 300 ffmpeg -hide_banner -loglevel error -nostdin -y \
  -f lavfi -i "testsrc2=size=1280x720:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=44100" \
  -t "$CLIP_SECONDS" -c:v libx264 -preset veryfast -pix_fmt yuv420p \
  -b:v 2M -maxrate 2M -bufsize 2M -g 60 -bf 0 -c:a aac -b:a 64k -f flv "$CLIP"
CLIP_BPS=$(ffprobe -v error -show_entries format=bit_rate -of default=nw=1:nk=1 "$CLIP")
say "clip: $(stat -c %s "$CLIP") bytes, ${CLIP_BPS} bit/s"


# Waits (bounded) until something accepts TCP connections on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 100); do
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; then return 0; fi
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
    kill -0 "$LOAD_PID" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

start_corecast() {
  local dir=$1 port=$2
  cat >"$dir/corecast.toml" <<EOF
[runtime]
shards = 1
cpus = [$SERVER_CPU]
log = "warn"

[http]
listen = "127.0.0.1:$(free_port)"

[rtmp]
listen = "127.0.0.1:$port"
# Every player comes from this one address.
max_connections_per_ip = 100000
$CORECAST_RTMP

[webrtc]
udp_port = 0
bind = "127.0.0.1"
EOF
  taskset -c "$SERVER_CPU" "$CORECAST" --config "$dir/corecast.toml" >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
}

start_nginx() {
  nginx_rtmp_start "$1" "$2"
}

ROWS="$TMP/rows.jsonl"
: >"$ROWS"

# Runs the light client (corecast-load rtmp) with $2 players on $1 for the window; sets
# T0 C0 R0 T1 C1 R1 (time, server CPU ticks, RSS at the window's start and end) and
# writes the tool's JSON to $3/load.json.
light_players() {
  local url=$1 n=$2 dir=$3
  local setup_limit=$(( n / RAMP + 5 + 10 + 1 + SETTLE + 10 ))
  local extra=0
  [ "$TRACE" != 1 ] || extra=$((TRACE_S + 3))
  timeout $(( setup_limit + DURATION + extra + 30 )) "$LOAD" --url "$url" --players "$n" \
    --duration $((DURATION + extra)) --ramp-per-sec "$RAMP" --settle "$SETTLE" \
    --cpu "$LOAD_CPU" >"$dir/load.json" 2>"$dir/load.err" &
  LOAD_PID=$!
  wait_marker "$dir/load.err" "window start" "$setup_limit" \
    || { cat "$dir/load.err" >&2; die "the load tool did not start its window"; }
  T0=$(now); C0=$(cpu_ticks "$SERVER_PID"); R0=$(rss_kib "$SERVER_PID")
  if [ "$TRACE" = 1 ]; then
    # The CPU window is DURATION; the tool plays on while the server's calls are counted.
    sleep "$DURATION"
    T1=$(now); C1=$(cpu_ticks "$SERVER_PID"); R1=$(rss_kib "$SERVER_PID")
    trace_calls "$dir"
  fi
  wait_marker "$dir/load.err" "window end" $(( DURATION + extra + 10 )) \
    || { cat "$dir/load.err" >&2; die "the load tool did not end its window"; }
  [ "$TRACE" = 1 ] || { T1=$(now); C1=$(cpu_ticks "$SERVER_PID"); R1=$(rss_kib "$SERVER_PID"); }
  local rc=0
  wait "$LOAD_PID" || rc=$?
  LOAD_PID=""
  [ "$rc" = 0 ] || { cat "$dir/load.err" >&2; die "corecast-load exited $rc"; }
}

# With TRACE=1: counts the server's system calls for TRACE_S seconds (`perf trace -s`,
# after the CPU window: tracing slows the server) into $1/calls.txt, "name count" lines.
trace_calls() {
  : >"$1/calls.txt"
  timeout $((TRACE_S + 15)) perf trace -s -p "$SERVER_PID" -- sleep "$TRACE_S" 2>"$1/trace.txt" \
    >/dev/null || true
  awk 'NF >= 3 && $2 ~ /^[0-9]+$/ && $1 ~ /^[a-z_0-9]+$/ { c[$1] += $2 }
       END { for (k in c) print k, c[k] }' "$1/trace.txt" >"$1/calls.txt"
  [ -s "$1/calls.txt" ] || say "perf trace counted nothing (see $1/trace.txt)"
}

# The server's established connections on port $1 with their counters (`ss -ti`), one
# connection per line.
ss_snapshot() {
  ss -Htin state established "( sport = :$1 )" | paste -d' ' - -
}

# Sum of utime+stime ticks of the players still running.
players_ticks() {
  local pid sum=0 t
  for pid in "${PLAYER_PIDS[@]}"; do
    t=$(cpu_ticks "$pid" 2>/dev/null) || continue
    sum=$((sum + t))
  done
  echo "$sum"
}

# Starts $2 real players of kind $4 (rtmpdump | ffmpeg) on $1 (server port $5) at RAMP per
# second, waits until each has a connection that delivered data, then measures the window
# as light_players does and writes a load.json of the same shape from the server's sockets.
real_players() {
  local url=$1 n=$2 dir=$3 kind=$4 port=$5 i gap
  gap=$(python3 -c "print(1.0 / $RAMP)")
  PLAYER_PIDS=()
  for i in $(seq "$n"); do
    case $kind in
      rtmpdump) rtmpdump -q -v -r "$url" -o /dev/null >/dev/null 2>>"$dir/players.err" </dev/null & ;;
      ffmpeg) ffmpeg -hide_banner -loglevel error -nostdin -i "$url" -c copy -f null - \
                >/dev/null 2>>"$dir/players.err" </dev/null & ;;
      *) die "unknown player $kind" ;;
    esac
    PLAYER_PIDS+=($!)
    sleep "$gap"
  done
  # Every player connected and was sent something: n connections that carried at least
  # 10 kB to their peer (the publisher's carries less: acknowledgements).
  local limit=$(( n / RAMP + 30 )) start=$SECONDS got=0
  while [ $((SECONDS - start)) -lt "$limit" ]; do
    got=$(ss_snapshot "$port" | grep -c 'bytes_acked:[0-9]\{5,\}' || true)
    [ "$got" -ge "$n" ] && break
    sleep 0.5
  done
  [ "$got" -ge "$n" ] || say "only $got of $n players receive after ${limit} s; measuring them"
  sleep "$SETTLE"
  local p0 p1
  ss_snapshot "$port" >"$dir/ss0.txt"
  T0=$(now); C0=$(cpu_ticks "$SERVER_PID"); R0=$(rss_kib "$SERVER_PID"); p0=$(players_ticks)
  sleep "$DURATION"
  ss_snapshot "$port" >"$dir/ss1.txt"
  T1=$(now); C1=$(cpu_ticks "$SERVER_PID"); R1=$(rss_kib "$SERVER_PID"); p1=$(players_ticks)
  [ "$TRACE" != 1 ] || trace_calls "$dir"
  local alive=0 pid
  for pid in "${PLAYER_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done
  stop_players
  python3 - "$dir/ss0.txt" "$dir/ss1.txt" "$T0" "$T1" "$n" "$alive" "$p0" "$p1" "$CLK_TCK" \
    "$CLIP_BPS" >"$dir/load.json" <<'PY'
import json, re, statistics, sys
ss0, ss1, t0, t1, n, alive, p0, p1, clk, clip_bps = sys.argv[1:]
window = float(t1) - float(t0)

def conns(path):
    out = {}
    for line in open(path):
        f = line.split()
        if len(f) < 4:
            continue
        acked = re.search(r"bytes_acked:(\d+)", line)
        recv = re.search(r"bytes_received:(\d+)", line)
        out[f[3]] = (int(acked.group(1)) if acked else 0, int(recv.group(1)) if recv else 0)
    return out

a, b = conns(ss0), conns(ss1)
rates = []
for peer, (acked1, recv1) in b.items():
    if peer not in a:
        continue
    acked0, recv0 = a[peer]
    if recv1 - recv0 > acked1 - acked0:  # the publisher
        continue
    rates.append((acked1 - acked0) * 8 / window)
# Players that were playing at the window's start but whose connection is gone: 0 bit/s.
rates += [0.0] * sum(1 for p, (ac, rc) in a.items() if p not in b and ac > rc)
rates.sort()
stalled = sum(1 for r in rates if r < 0.9 * int(clip_bps))
pct = lambda q: rates[min(len(rates) - 1, int(q * len(rates)))] if rates else 0.0
print(json.dumps({
    "players_in_window": len(rates), "players_connected": len(rates),
    "players_failed": int(n) - int(alive), "players_stalled": stalled,
    "bitrate_per_player_bps": {"median": statistics.median(rates) if rates else 0.0,
                               "p5": pct(0.05), "min": rates[0] if rates else 0.0},
    "ttff_ms": None,
    "load_cpu_pct": (int(p1) - int(p0)) / float(clk) / window * 100.0,
}))
PY
}

ROWS="$TMP/rows.jsonl"
: >"$ROWS"

# One measurement: server $1 with $2 players of kind $4, run $3. Appends a JSON row to $ROWS.
measure() {
  local server=$1 n=$2 run=$3 player=$4 dir port url
  dir="$TMP/$server-$player-$n-$run"
  mkdir -p "$dir"
  port=$(free_port)
  url="rtmp://127.0.0.1:$port/live/load"
  say "$server, $n $player players (run $run of $REPEAT)"
  case $server in
    corecast) start_corecast "$dir" "$port" ;;
    nginx) start_nginx "$dir" "$port" ;;
    *) die "unknown server $server" ;;
  esac
  wait_port "$port" || { cat "$dir/server.log" >&2; die "$server did not listen on $port"; }

  timeout 36000 ffmpeg -hide_banner -loglevel error -nostdin -re -stream_loop -1 -i "$CLIP" \
    -c copy -f flv "$url" >"$dir/publisher.log" 2>&1 &
  PUB_PID=$!
  local live=0
  for _ in 1 2 3 4 5; do
    local streams
    streams=$(timeout 10 ffprobe -v error -show_entries stream=codec_type -of csv=p=0 "$url" \
      2>>"$dir/probe.log" || true)
    if [[ "$streams" == *video* ]]; then live=1; break; fi
    kill -0 "$PUB_PID" 2>/dev/null || break
    sleep 1
  done
  [ "$live" = 1 ] || { cat "$dir/publisher.log" >&2; die "$server: the publisher did not go live"; }
  sleep 1

  # Idle: only the publisher, for 3 s.
  local idle_rss it0 ic0 it1 ic1
  it0=$(now); ic0=$(cpu_ticks "$SERVER_PID")
  sleep 3
  it1=$(now); ic1=$(cpu_ticks "$SERVER_PID")
  idle_rss=$(rss_kib "$SERVER_PID")

  case $player in
    light) light_players "$url" "$n" "$dir" ;;
    *) real_players "$url" "$n" "$dir" "$player" "$port" ;;
  esac

  stop_pid "$PUB_PID"; PUB_PID=""
  stop_pid "$SERVER_PID"; SERVER_PID=""

  python3 - "$server" "$n" "$CLK_TCK" "$idle_rss" "$it0" "$ic0" "$it1" "$ic1" "$T0" "$C0" \
    "$R0" "$T1" "$C1" "$R1" "$CLIP_BPS" "$dir/load.json" "$run" "$player" >>"$ROWS" <<'PY'
import json, os, sys
(server, n, clk, idle_rss, it0, ic0, it1, ic1, t0, c0, r0, t1, c1, r1, clip_bps, path, run,
 player) = sys.argv[1:]
load = json.load(open(path))
n, clk = int(n), float(clk)
window = float(t1) - float(t0)
cpu_pct = (int(c1) - int(c0)) / clk / window * 100.0
idle_pct = (int(ic1) - int(ic0)) / clk / (float(it1) - float(it0)) * 100.0
playing = load["players_in_window"] or 1
row = {
    "server": server, "player": player, "n": n, "run": int(run),
    "playing": load["players_in_window"],
    "connected": load["players_connected"], "failed": load["players_failed"],
    "window_s": round(window, 2), "cpu_pct": cpu_pct,
    "cpu_pct_per_player": cpu_pct / playing, "idle_cpu_pct": idle_pct,
    "cpu_pct_per_player_net": max(cpu_pct - idle_pct, 0.0) / playing,
    "rss_idle_kib": int(idle_rss), "rss_start_kib": int(r0), "rss_end_kib": int(r1),
    "rss_per_player_kib": (int(r1) - int(idle_rss)) / playing,
    "expected_bps": int(clip_bps), "load": load,
}
try:
    calls = dict(l.split() for l in open(os.path.join(os.path.dirname(path), "calls.txt")) if l.strip())
    row["calls_per_player_s"] = {k: int(v) / 5.0 / playing for k, v in calls.items()}
except FileNotFoundError:
    pass
print(json.dumps(row))
r = row
print("    cpu %.2f%% (%.4f%%/player), rss +%.1f KiB/player, median %.2f Mbit/s, stalled %d, "
      "players' CPU %.0f%%" % (r["cpu_pct"], r["cpu_pct_per_player"], r["rss_per_player_kib"],
      load["bitrate_per_player_bps"]["median"] / 1e6, load["players_stalled"],
      load["load_cpu_pct"] or 0), file=sys.stderr)
PY
}

# Servers alternate at each N, so that drift of the machine hits both alike.
for run in $(seq "$REPEAT"); do
  for n in $NS; do
    for player in $PLAYERS; do
      for server in $SERVERS; do
        measure "$server" "$n" "$run" "$player"
      done
    done
  done
done

# --- report ------------------------------------------------------------------------------
HEAD=$REV_LABEL
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
REPORT="$TMP/report.md"
CSV="${DATA:-$(dirname "$RESULTS")/data}/rtmp-$(date -u +%Y%m%dT%H%M%SZ).csv"
CSV=$CSV python3 - "$ROWS" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$HEAD" "$(nproc --all)" "$CPU_MODEL" "$(uname -r)" \
  "$CMDLINE" "$DURATION" "$RAMP" "$SERVER_CPU" "$LOAD_CPU" "$REPEAT" >"$REPORT" <<'PY'
import json, statistics, sys
rows_path, date, head, nproc, cpu, kernel, cmd, duration, ramp, scpu, lcpu, repeat = sys.argv[1:]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
name = {"corecast": "corecast", "nginx": "nginx-rtmp"}
med = statistics.median
out = []
out.append(f"## RTMP play load, {date}\n")
out.append(f"- commit `{head}`, {nproc} CPUs ({cpu}), kernel {kernel}")
out.append(f"- command: `{cmd}`")
out.append(f"- server pinned to CPU {scpu}; ffmpeg publisher and the players on CPU {lcpu}; "
           f"{duration} s window after all players started (ramp {ramp}/s + 2 s settle); "
           f"{repeat} run(s) per cell, servers alternating")
exp = rows[0]["expected_bps"] / 1e6 if rows else 0
out.append(f"- clip: 1280x720 30 fps H.264 2 Mbit/s (GOP 60, no B-frames) + AAC 64 kbit/s, "
           f"{exp:.2f} Mbit/s expected per player")
out.append("- CPU % is of one core: utime+stime of the server process from /proc/PID/stat over "
           "the window; CPU %/player = server CPU % / players playing, median of the runs "
           "[min-max]; net = (server CPU % - idle CPU % with only the publisher) / players")
out.append("- RSS/player = (VmRSS at window end - idle VmRSS with only the publisher) / players "
           "playing; Mbit/s/player: median (lowest p5) of what each player received over the "
           "window (RTMP bytes)")
out.append("- TTFF: from the start of TCP connect to the first video message (median of the "
           "runs' p50 / highest p95 / max); stalled: playing at window start but no bytes in "
           "the last 2 s of it, dropped ones included (sum over runs)\n")

def cell(rs, key, fmt):
    v = [r[key] for r in rs]
    if len(v) == 1:
        return format(v[0], fmt)
    return f"{format(med(v), fmt)} [{format(min(v), fmt)}-{format(max(v), fmt)}]"

groups = {}
for r in rows:
    groups.setdefault((r["server"], r.get("player", "light"), r["n"]), []).append(r)
players = list(dict.fromkeys(r.get("player", "light") for r in rows))
pname = {"light": "corecast-load (one process)", "rtmpdump": "rtmpdump (librtmp), one process each",
         "ffmpeg": "ffmpeg -c copy -f null, one process each"}

def ttff(loads):
    t = [l["ttff_ms"] for l in loads if l.get("ttff_ms")]
    if not t:
        return "n/a"
    return (f"{med(x['p50'] for x in t):.1f} / {max(x['p95'] for x in t):.1f} "
            f"/ {max(x['max'] for x in t):.1f}")

for server in dict.fromkeys(r["server"] for r in rows):
    for player in players:
        cells = [(n, rs) for (srv, pl, n), rs in groups.items() if srv == server and pl == player]
        if not cells:
            continue
        out.append(f"### {name.get(server, server)}, players: {pname.get(player, player)}\n")
        out.append("| players | playing | failed | idle CPU % | server CPU % | CPU %/player "
                   "| net CPU %/player | RSS idle MiB | RSS/player KiB | Mbit/s/player "
                   "| TTFF p50 / p95 / max ms | stalled | players' CPU % |")
        out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|")
        for n, rs in cells:
            loads = [r["load"] for r in rs]
            out.append(
                f"| {n} | {min(r['playing'] for r in rs)} | {sum(r['failed'] for r in rs)} "
                f"| {cell(rs, 'idle_cpu_pct', '.1f')} | {cell(rs, 'cpu_pct', '.1f')} "
                f"| {cell(rs, 'cpu_pct_per_player', '.4f')} "
                f"| {cell(rs, 'cpu_pct_per_player_net', '.4f')} "
                f"| {med(r['rss_idle_kib'] for r in rs) / 1024:.1f} "
                f"| {cell(rs, 'rss_per_player_kib', '.1f')} "
                f"| {med(l['bitrate_per_player_bps']['median'] for l in loads) / 1e6:.2f} "
                f"({min(l['bitrate_per_player_bps']['p5'] for l in loads) / 1e6:.2f}) "
                f"| {ttff(loads)} "
                f"| {sum(l['players_stalled'] for l in loads)} "
                f"| {med((l['load_cpu_pct'] or 0) for l in loads):.0f} |")
        out.append("")
traced = [r for r in rows if "calls_per_player_s" in r]
if traced:
    calls = ["sendmsg", "sendto", "writev", "io_uring_enter", "epoll_wait", "recvfrom",
             "membarrier"]
    out.append("### System calls per player per second (`perf trace -s`, 5 s after each "
               "window, medians of the runs)\n")
    out.append("| server | players | N | " + " | ".join(calls) + " |")
    out.append("|---|---|---:|" + "---:|" * len(calls))
    tg = {}
    for r in traced:
        tg.setdefault((r["server"], r.get("player", "light"), r["n"]), []).append(r)
    for (srv, pl, n), rs in tg.items():
        cells = []
        for c in calls:
            v = [r["calls_per_player_s"].get(c, 0.0) for r in rs]
            cells.append(f"{med(v):.1f}" if any(v) else "")
        out.append(f"| {name.get(srv, srv)} | {pl} | {n} | " + " | ".join(cells) + " |")
    out.append("")
ns = list(dict.fromkeys(r["n"] for r in rows))
pairs = [(pl, n) for pl in players for n in ns
         if ("corecast", pl, n) in groups and ("nginx", pl, n) in groups]
if pairs:
    out.append("### corecast / nginx-rtmp (medians)\n")
    out.append("| players | kind | CPU %/player corecast | nginx-rtmp | ratio [range] | net ratio "
               "| RSS/player KiB corecast | nginx-rtmp | ratio |")
    out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    ratio = lambda a, b: f"{a / b:.2f}" if b > 0 else "n/a"
    for pl, n in pairs:
        c, g = groups[("corecast", pl, n)], groups[("nginx", pl, n)]
        m = lambda rs, k: med(r[k] for r in rs)
        # The range: each run's corecast over the same run's nginx-rtmp.
        per_run = {}
        for r in c + g:
            per_run.setdefault(r["run"], {})[r["server"]] = r["cpu_pct_per_player"]
        rr = [v["corecast"] / v["nginx"] for v in per_run.values()
              if "corecast" in v and v.get("nginx", 0) > 0]
        span = f" [{min(rr):.2f}-{max(rr):.2f}]" if len(rr) > 1 else ""
        out.append(
            f"| {n} | {pl} | {m(c, 'cpu_pct_per_player'):.4f} | {m(g, 'cpu_pct_per_player'):.4f} "
            f"| {ratio(m(c, 'cpu_pct_per_player'), m(g, 'cpu_pct_per_player'))}{span} "
            f"| {ratio(m(c, 'cpu_pct_per_player_net'), m(g, 'cpu_pct_per_player_net'))} "
            f"| {m(c, 'rss_per_player_kib'):.1f} | {m(g, 'rss_per_player_kib'):.1f} "
            f"| {ratio(m(c, 'rss_per_player_kib'), m(g, 'rss_per_player_kib'))} |")
    out.append("")
print("\n".join(out))

# The rows as CSV, for perf/plot.sh.
import csv, os
path = os.environ["CSV"]
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["server", "player", "n", "rep", "playing", "cpu_pct", "cpu_pct_per_player",
                "rss_kib_per_player", "mbps_p5", "mbps_median", "stalled", "commit"])
    for r in rows:
        l = r["load"]
        w.writerow([r["server"], r.get("player", "light"), r["n"], r["run"], r["playing"],
                    f"{r['cpu_pct']:.3f}", f"{r['cpu_pct_per_player']:.5f}",
                    f"{r['rss_per_player_kib']:.2f}",
                    f"{l['bitrate_per_player_bps']['p5'] / 1e6:.3f}",
                    f"{l['bitrate_per_player_bps']['median'] / 1e6:.3f}",
                    l["players_stalled"], head])
print(f"wrote {path}", file=sys.stderr)
PY

[ "${PLOT:-1}" != 1 ] || plot_markdown "$CSV" "$RESULTS" >>"$REPORT"
cat "$REPORT"
if [ ! -f "$RESULTS" ]; then
  printf '# Measured results\n\nNumbers measured on the machine named in each section, with the command that produced them.\n\n' >"$RESULTS"
fi
{ echo; cat "$REPORT"; } >>"$RESULTS"
say "appended to $RESULTS"
