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
