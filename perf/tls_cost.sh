#!/usr/bin/env bash
# What TLS costs the server: CPU per client over plain and TLS listeners of one corecast.
#
#   perf/tls_cost.sh                       N=20 players / pollers, 15 s per cell (~60 s)
#   N=10 WINDOW=10 perf/tls_cost.sh
#
# Starts corecast (release, 2 shards, loopback) with HTTPS and RTMPS on (a self-signed
# P-256 certificate made with openssl) and the 1.1 Mbit/s 720p demo clip as a file source,
# then measures four cells one after the other, each for WINDOW seconds after SETTLE:
#   rtmp   N `rtmpdump --live` players of rtmp://   (Debian's rtmpdump speaks rtmps)
#   rtmps  N `rtmpdump --live` players of rtmps://
#   http   N keep-alive clients polling GET /api/v1/streams every POLL_MS (one python3
#          process, one thread per client)
#   https  the same over HTTPS (one TLS handshake per client, then keep-alive)
# The server's CPU (utime+stime from /proc) over the window, divided by N, is the cost
# per client; the TLS/plain ratio is printed per pair. Prints a Markdown table (and
# appends it to $RESULTS when RESULTS is set).
#
# Environment: N (20; at most ~20 client processes at once on a shared machine),
# WINDOW (15 s), SETTLE (3 s), POLL_MS (100), PROFILE (release; debug measures the
# debug build, whose unoptimised crypto overstates TLS), RESULTS (unset),
# KEEP_TMP=1 keeps the temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

NAME=tls_cost
# shellcheck source=perf/lib.sh
. "$REPO/perf/lib.sh"

N=${N:-20}
WINDOW=${WINDOW:-15}
SETTLE=${SETTLE:-3}
POLL_MS=${POLL_MS:-100}
PROFILE=${PROFILE:-release}

for t in rtmpdump openssl python3 curl; do
  command -v "$t" >/dev/null || die "$t is needed (apt-get install rtmpdump openssl python3 curl)"
done

if [ "$PROFILE" = release ]; then
  say "cargo build --release -p corecast"
  cargo build --release -q -p corecast
fi
CORECAST="$REPO/target/$PROFILE/corecast"
[ -x "$CORECAST" ] || die "no $CORECAST"
REV_LABEL=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

TMP=$(mktemp -d /tmp/tls_cost.XXXXXX)
SERVER_PID="" CLIENT_PIDS=()
stop_clients() {
  for p in "${CLIENT_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${CLIENT_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  CLIENT_PIDS=()
}
cleanup() {
  stop_clients
  stop_pid "$SERVER_PID"; SERVER_PID=""
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "tls_cost: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n 65536 2>/dev/null || true
ulimit -l unlimited 2>/dev/null || true

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 2>/dev/null

HTTP=$(free_port) HTTPS=$(free_port) RTMP=$(free_port) RTMPS=$(free_port)
cat >"$TMP/corecast.toml" <<EOF
[runtime]
shards = 2
io_memory = "256KiB"
log = "warn"
[http]
listen = "127.0.0.1:$HTTP"
tls_listen = "127.0.0.1:$HTTPS"
tls_cert = "cert.pem"
tls_key = "key.pem"
[rtmp]
listen = "127.0.0.1:$RTMP"
tls_listen = "127.0.0.1:$RTMPS"
[webrtc]
udp_port = 0
bind = "127.0.0.1"
advertised = ["127.0.0.1"]
[[streams]]
path = "demo"
source = "file:$REPO/configs/media/demo.flv"
EOF
"$CORECAST" --config "$TMP/corecast.toml" 2>"$TMP/server.log" &
SERVER_PID=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$HTTP/api/v1/streams" | grep -q '"demo"' && break
  kill -0 "$SERVER_PID" 2>/dev/null || die "corecast exited: $(tail -3 "$TMP/server.log")"
  sleep 0.1
done

cat >"$TMP/poll.py" <<'EOF'
import http.client, ssl, sys, threading, time
scheme, port, n, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]) / 1000
ctx = ssl.create_default_context(cafile=sys.argv[5]) if scheme == "https" else None
done = [0]
def client():
    c = (http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
         if ctx else http.client.HTTPConnection("127.0.0.1", port, timeout=10))
    while True:
        c.request("GET", "/api/v1/streams")
        r = c.getresponse(); r.read()
        done[0] += 1
        time.sleep(every)
for _ in range(n):
    threading.Thread(target=client, daemon=True).start()
while True:
    time.sleep(1)
EOF

# Measures the server's CPU over WINDOW s while the clients of a cell run; prints
# "cell cpu_percent_of_a_core per_client_percent alive/client_processes".
measure() {
  local cell=$1
  sleep "$SETTLE"
  local t0 c0 t1 c1
  t0=$(now); c0=$(cpu_ticks "$SERVER_PID")
  sleep "$WINDOW"
  t1=$(now); c1=$(cpu_ticks "$SERVER_PID")
  local alive=0
  for p in "${CLIENT_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
  python3 -c "
cpu = ($c1 - $c0) / $CLK_TCK / ($t1 - $t0) * 100
print('$cell %.2f %.3f $alive/${#CLIENT_PIDS[@]}' % (cpu, cpu / $N))"
}

players() {
  local url=$1
  for _ in $(seq "$N"); do
    rtmpdump --live -q -r "$url" -o /dev/null 2>/dev/null &
    CLIENT_PIDS+=($!)
  done
}

pollers() {
  python3 "$TMP/poll.py" "$1" "$2" "$N" "$POLL_MS" "$TMP/cert.pem" &
  CLIENT_PIDS+=($!)
}

say "idle"
IDLE=$(measure idle)
say "rtmp: $N players"; players "rtmp://127.0.0.1:$RTMP/live/demo"; R1=$(measure rtmp); stop_clients
say "rtmps: $N players"; players "rtmps://127.0.0.1:$RTMPS/live/demo"; R2=$(measure rtmps); stop_clients
say "http: $N pollers"; pollers http "$HTTP"; R3=$(measure http); stop_clients
say "https: $N pollers"; pollers https "$HTTPS"; R4=$(measure https); stop_clients
FAILS=$(curl -s "http://127.0.0.1:$HTTP/metrics" | awk '/^corecast_tls_handshake_failures_total/ { s += $2 } END { print s + 0 }')

TABLE=$(python3 - "$IDLE" "$R1" "$R2" "$R3" "$R4" <<EOF
import sys
rows = [r.split() for r in sys.argv[1:]]
idle = float(rows[0][1])
print("### TLS cost: corecast $REV_LABEL ($PROFILE), N=$N, ${WINDOW} s per cell, $(date -u +%Y-%m-%dT%H:%MZ)")
print()
print("Server CPU (% of one core, 2 shards) while N clients run; per client = (cell - idle) / N.")
print("RTMP cells: \`rtmpdump --live\` players of the demo clip (1280x720, 1.1 Mbit/s); HTTP cells: keep-alive")
print("clients polling /api/v1/streams every ${POLL_MS} ms. Idle (file source only): %.2f %%." % idle)
print()
print("| cell | client processes alive | server CPU % | per client % | TLS / plain |")
print("|---|---|---|---|---|")
per = {}
for name, cpu, _, alive in rows[1:]:
    per[name] = (float(cpu) - idle) / $N
for name, cpu, _, alive in rows[1:]:
    plain = {"rtmps": "rtmp", "https": "http"}.get(name)
    ratio = "%.2f" % (per[name] / per[plain]) if plain and per[plain] > 0 else ""
    print("| %s | %s | %s | %.3f | %s |" % (name, alive, cpu, per[name], ratio))
print()
print("TLS handshake failures counted during the run: $FAILS.")
EOF
)
echo "$TABLE"
if [ -n "${RESULTS:-}" ]; then printf '\n%s\n' "$TABLE" >>"$RESULTS"; fi
