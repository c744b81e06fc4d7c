# Shared by the load scripts (rtmp_load.sh, whep_load.sh, rtsp_load.sh): sourced after
# the script sets NAME (its name in messages) and REPO, and cd's to the repository root.

say() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$NAME" "$*" >&2; exit 1; }

# Stops a process we started: SIGTERM, up to 5 s, then SIGKILL.
stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Pins this script (and what it starts without taskset) to CPU $1 and raises the limits
# the load needs: open files, and locked memory (glommio registers io_memory with
# io_uring).
pin_script() {
  taskset -cp "$1" $$ >/dev/null || die "cannot pin to CPU $1 (taskset)"
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  ulimit -l unlimited 2>/dev/null || true
}

# Builds corecast and the load tool (release) and sets CORECAST, LOAD and REV_LABEL (the
# commit, plus the files outside perf/ with uncommitted changes).
build_release() {
  say "cargo build --release -p corecast -p corecast-perf"
  cargo build --release -q -p corecast -p corecast-perf
  CORECAST="$REPO/target/release/corecast"
  LOAD="$REPO/target/release/corecast-load"
  REV_LABEL=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  local dirty
  dirty=$( (git status --porcelain --untracked-files=no -- . ':!perf' 2>/dev/null || true) | awk '{ print $2 }' | paste -sd, -)
  [ -z "$dirty" ] || REV_LABEL="$REV_LABEL + uncommitted changes to $dirty"
}

CLK_TCK=$(getconf CLK_TCK)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# utime + stime of process $1, in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# Busy ticks of CPU $1 (user, nice, system, irq, softirq, steal).
cpu_busy() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
now() { date +%s.%N; }

# A temp dir in TMP, removed at exit (kept with KEEP_TMP=1) after the processes whose PIDs
# are in the variables named in STOP_VARS (e.g. STOP_VARS="LOAD_PID SERVER_PID") are
# stopped, in that order.
make_tmp() {
  TMP=$(mktemp -d "/tmp/$NAME.XXXXXX")
  trap 'for v in $STOP_VARS; do stop_pid "${!v}"; done
        if [ "${KEEP_TMP:-0}" = 1 ]; then echo "$NAME: kept $TMP" >&2; else rm -rf "$TMP"; fi' EXIT
  trap 'exit 130' INT TERM
}

# Dies unless every command named is installed.
need_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "needs $tool"
  done
}

# A 20 s 1280x720 30 fps 2 Mbit/s H.264 clip (GOP 2 s, no B-frames, video only) in
# $TMP/clip.flv: sets CLIP and CLIP_BPS.
make_clip() {
  say "making a 20 s 720p30 2 Mbit/s H.264 clip (GOP 2 s)"
  CLIP="$TMP/clip.flv"
  timeout 300 ffmpeg -hide_banner -loglevel error -nostdin -y \
    -f lavfi -i "testsrc2=size=1280x720:rate=30" -t 20 -c:v libx264 -preset veryfast \
    -tune zerolatency -b:v 2M -maxrate 2M -bufsize 1M -g 60 -keyint_min 60 -sc_threshold 0 \
    -bf 0 -pix_fmt yuv420p -f flv "$CLIP"
  CLIP_BPS=$(ffprobe -v error -show_entries format=bit_rate -of default=nw=1:nk=1 "$CLIP")
}

# Writes to file $1 the settings every load run shares: one shard pinned to $SERVER_CPU,
# HTTP on 127.0.0.1:$2, RTMP on 127.0.0.1:$3 (a free port if not given), WebRTC on loopback without per-address
# limits (every load client comes from 127.0.0.1). Callers append their own sections.
server_config() {
  cat >"$1" <<EOF
[runtime]
shards = 1
cpus = [$SERVER_CPU]
io_memory = "256KiB"
log = "warn"

[http]
listen = "127.0.0.1:$2"
max_connections_per_ip = 100000

[rtmp]
listen = "127.0.0.1:${3:-$(free_port)}"

[webrtc]
udp_port = 0
bind = "127.0.0.1"
advertised = ["127.0.0.1"]
max_sessions = 20000
max_sessions_per_ip = 0
EOF
}

# Waits (bounded: $3 s) until file $1 holds the text $2, while process $4 runs.
wait_line() {
  local file=$1 text=$2 limit=$3 pid=$4 start=$SECONDS
  while [ $((SECONDS - start)) -lt "$limit" ]; do
    grep -qF "$text" "$file" 2>/dev/null && return 0
    # It may have written the line and exited since the grep.
    kill -0 "$pid" 2>/dev/null || { grep -qF "$text" "$file" 2>/dev/null; return; }
    sleep 0.05
  done
  return 1
}

# Starts nginx-rtmp (Debian's nginx with libnginx-mod-rtmp) in the foreground on CPU
# $SERVER_CPU, one worker, RTMP on 127.0.0.1:$2 (application `live`), its files under
# $1/nginx; sets SERVER_PID.
nginx_rtmp_start() {
  local dir=$1 port=$2 module=""
  mkdir -p "$dir/nginx/logs"
  if [ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ]; then
    module="load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;"
  fi
  cat >"$dir/nginx/nginx.conf" <<NGINX
$module
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
error_log $dir/nginx/logs/error.log warn;
pid $dir/nginx/nginx.pid;
events { worker_connections 16384; }
rtmp {
  server {
    listen 127.0.0.1:$port;
    chunk_size 4096;
    application live { live on; }
  }
}
NGINX
  taskset -c "$SERVER_CPU" nginx -p "$dir/nginx" -e "$dir/nginx/logs/error.log" \
    -c "$dir/nginx/nginx.conf" >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
}

# Waits (bounded: 10 s) until something listens on TCP 127.0.0.1:$1.
wait_tcp() {
  local _
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}


# Draws results CSV $1 with perf/plot.sh (into $PLOTS, default perf/plots) and prints
# Markdown image lines for them, linked relative to the results file $2 (e.g.
# perf/RESULTS.md: `![CPU per viewer/player against N](plots/<csv name>-cpu.png)`).
# Prints nothing (and says why on stderr) if plot.sh fails: the report goes on.
plot_markdown() {
  local csv=$1 results=$2 pngs
  if ! pngs=$(PLOTS="${PLOTS:-perf/plots}" "$REPO/perf/plot.sh" "$csv"); then
    say "perf/plot.sh failed: no plots"
    return 0
  fi
  say "plots: $(echo $pngs)"
  # shellcheck disable=SC2086 # one path a line, no spaces
  python3 - "$results" $pngs <<'PY'
import os, sys
results, pngs = sys.argv[1], sys.argv[2:]
here = os.path.dirname(os.path.abspath(results))
what = {"cpu": "CPU per viewer/player against N", "rss": "RSS per viewer/player against N",
        "latency": "server-added latency over the window"}
print()
for p in pngs:
    kind = p.rsplit("-", 1)[-1][: -len(".png")]
    print(f"![{what.get(kind, kind)}]({os.path.relpath(os.path.abspath(p), here)})")
print()
PY
}
