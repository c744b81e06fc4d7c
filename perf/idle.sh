#!/usr/bin/env bash
# What a server costs when it has little to do: corecast (one shard) and nginx-rtmp (one
# worker) in the same run, each pinned to CPU $SERVER_CPU, with nothing to do and with one
# ffmpeg publisher (the 720p30 2 Mbit/s clip, looped in real time over RTMP) and no
# viewer. CPU is the server's utime+stime over WINDOW s from /proc, after 3 s of settling.
#
#   perf/idle.sh                      WINDOW=30, REPEAT=2, SERVERS="corecast nginx"
#
# Targets (issue 16): a corecast shard with nothing to do < 0.2 % of a core; one publisher
# and no viewers < 0.5 %. Prints a Markdown report and appends it to perf/RESULTS.md.
#
# Environment: WINDOW (30 s), REPEAT (2), SERVERS ("corecast nginx"), SERVER_CPU (0),
# LOAD_CPU (1), RESULTS (perf/RESULTS.md), KEEP_TMP=1 keeps the temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

WINDOW=${WINDOW:-30}
REPEAT=${REPEAT:-2}
SERVERS=${SERVERS:-"corecast nginx"}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
RESULTS=${RESULTS:-perf/RESULTS.md}
CMDLINE="WINDOW=$WINDOW REPEAT=$REPEAT SERVERS=\"$SERVERS\" perf/idle.sh"

NAME=idle
# shellcheck source=perf/lib.sh
. "$REPO/perf/lib.sh"

SERVER_PID="" PUB_PID=""
STOP_VARS="PUB_PID SERVER_PID"
make_tmp
pin_script "$LOAD_CPU"
need_tools ffmpeg ffprobe python3 taskset
[[ " $SERVERS " != *" nginx "* ]] || need_tools nginx
build_release
make_clip

ROWS="$TMP/rows.txt"
: >"$ROWS"

# One window: server $1, load $2 ("none" or "publisher"), run $3.
measure() {
  local server=$1 load=$2 run=$3 dir port
  dir="$TMP/$server-$load-$run"
  mkdir -p "$dir"
  port=$(free_port)
  case $server in
    corecast)
      server_config "$dir/corecast.toml" "$(free_port)" "$port"
      taskset -c "$SERVER_CPU" "$CORECAST" --config "$dir/corecast.toml" >"$dir/server.log" 2>&1 &
      SERVER_PID=$!
      ;;
    nginx) nginx_rtmp_start "$dir" "$port" ;;
    *) die "unknown server $server" ;;
  esac
  wait_tcp "$port" || { cat "$dir/server.log" >&2; die "$server did not listen on $port"; }
  if [ "$load" = publisher ]; then
    ffmpeg -hide_banner -loglevel error -nostdin -re -stream_loop -1 -i "$CLIP" -c copy \
      -f flv "rtmp://127.0.0.1:$port/live/idle" >"$dir/pub.log" 2>&1 &
    PUB_PID=$!
  fi
  sleep 3
  local t0 c0 t1 c1
  t0=$(now); c0=$(cpu_ticks "$SERVER_PID")
  sleep "$WINDOW"
  t1=$(now); c1=$(cpu_ticks "$SERVER_PID")
  if [ -n "$PUB_PID" ] && ! kill -0 "$PUB_PID" 2>/dev/null; then
    cat "$dir/pub.log" >&2; die "the publisher stopped"
  fi
  stop_pid "$PUB_PID"; PUB_PID=""
  stop_pid "$SERVER_PID"; SERVER_PID=""
  python3 -c "import sys; print(sys.argv[1], sys.argv[2], '%.3f' % ((int(sys.argv[4]) - int(sys.argv[3])) / float(sys.argv[5]) / (float(sys.argv[7]) - float(sys.argv[6])) * 100))" \
    "$server" "$load" "$c0" "$c1" "$CLK_TCK" "$t0" "$t1" >>"$ROWS"
  say "$server, $load: $(tail -1 "$ROWS" | cut -d' ' -f3) % of a core"
}

for run in $(seq "$REPEAT"); do
  for load in none publisher; do
    for server in $SERVERS; do
      measure "$server" "$load" "$run"
    done
  done
done

REPORT="$TMP/report.md"
python3 - "$ROWS" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$REV_LABEL" "$(nproc --all)" \
  "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$(uname -r)" "$CMDLINE" \
  "$WINDOW" "$SERVER_CPU" >"$REPORT" <<'PY'
import collections, statistics, sys
rows_path, date, head, nproc, cpu, kernel, cmd, window, scpu = sys.argv[1:]
runs = collections.defaultdict(list)
for line in open(rows_path):
    server, load, pct = line.split()
    runs[(server, load)].append(float(pct))
name = {"corecast": "corecast (1 shard)", "nginx": "nginx-rtmp (1 worker)"}
target = {"none": 0.2, "publisher": 0.5}
out = [f"## Idle and one publisher, {date}\n"]
out.append(f"- commit `{head}`, {nproc} CPUs ({cpu}), kernel {kernel}")
out.append(f"- command: `{cmd}`")
out.append(f"- each server pinned to CPU {scpu}; CPU is its utime+stime over {window} s windows "
           f"after 3 s of settling; the publisher is ffmpeg sending the 720p30 2 Mbit/s clip "
           f"in real time over RTMP, no viewer\n")
out.append("| server | load | CPU % of a core (median) | runs | corecast target |")
out.append("|---|---|---:|---|---|")
for (server, load), v in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    t = f"< {target[load]} %: {'met' if statistics.median(v) < target[load] else 'missed'}" \
        if server == "corecast" else ""
    out.append(f"| {name.get(server, server)} | {'nothing' if load == 'none' else 'one publisher'} "
               f"| {statistics.median(v):.3f} | {', '.join(f'{x:.3f}' for x in v)} | {t} |")
out.append("")
print("\n".join(out))
PY
cat "$REPORT"
{ echo; cat "$REPORT"; } >>"$RESULTS"
say "appended to $RESULTS"
