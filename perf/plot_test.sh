#!/usr/bin/env bash
# Checks perf/plot.sh on synthetic results in a temp dir: an RTMP CSV in rtmp_load.sh's
# shape (corecast and nginx, three players, three repetitions, 100/300/1000 players) with
# /metrics scrapes, and a two-shard WHEP CSV in whep_load.sh's shape. Fails unless every
# expected PNG is written, is a PNG and `rtmp`/`whep` pick the newest CSV of their kind.
#
#   perf/plot_test.sh            (KEEP_TMP=1 keeps the temp dir to look at the PNGs)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
NAME=plot_test
# shellcheck source=perf/lib.sh
. "$REPO/perf/lib.sh"
need_tools gnuplot python3
STOP_VARS=""
make_tmp
mkdir -p "$TMP/data"

python3 - "$TMP/data" <<'PY'
import random, sys
data = sys.argv[1]
random.seed(16)
# RTMP: an older and a newer CSV (plot.sh rtmp must take the newer).
rows = ["server,player,n,rep,playing,cpu_pct,cpu_pct_per_player,rss_kib_per_player,mbps_p5"]
for n in (100, 300, 1000):
    for rep in (1, 2, 3):
        for server, base in (("corecast", 0.030), ("nginx", 0.050)):
            for player in ("light", "rtmpdump", "ffmpeg") if n < 1000 else ("light",):
                per = base * random.uniform(0.9, 1.1) * (1.0 if player == "light" else 1.2)
                rss = (40 if server == "corecast" else 60) * random.uniform(0.9, 1.1)
                rows.append(f"{server},{player},{n},{rep},{n},{per * n:.2f},{per:.5f},{rss:.1f},2.01")
open(f"{data}/rtmp-20261201T000000Z.csv", "w").write(rows[0] + "\n" + rows[1] + "\n")
open(f"{data}/rtmp-20261203T160000Z.csv", "w").write("\n".join(rows) + "\n")

def scrape(counts, protocol):
    les = ["0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
           "0.1", "0.25", "0.5", "1", "+Inf"]
    out, total = ["# TYPE corecast_frame_latency_seconds histogram"], 0
    for le, c in zip(les, counts + [0] * (len(les) - len(counts))):
        total += c
        out.append(f'corecast_frame_latency_seconds_bucket{{protocol="{protocol}",le="{le}"}} {total}')
    out.append(f'corecast_frame_latency_seconds_count{{protocol="{protocol}"}} {total}')
    return "\n".join(out) + "\n"

for n in (100, 300):
    base = f"{data}/rtmp-20261203T160000Z-corecast-light-n{n}"
    open(base + ".start.prom", "w").write(scrape([5, 5], "rtmp"))
    open(base + ".end.prom", "w").write(scrape([5, 50, 400 * n // 100, 300, 20, 5], "rtmp"))

# WHEP, two shards: the columns plot.py reads, as whep_csv.py writes them.
cols = ["server", "shards", "variant", "series", "n", "viewers", "cpu_pct", "cpu_pct_per_viewer",
        "rss_kib_per_viewer", "owner_cpu_pct_per_viewer", "relay_cpu_pct_per_viewer", "metrics"]
rows = [",".join(cols)]
for series, variant, n in [("scan", "sendmmsg", 200), ("scan", "sendmmsg", 400), ("scan", "sendmmsg", 800),
                           ("ab1", "sendmmsg", 400), ("ab1", "sendto", 400), ("profile", "sendmmsg", 500)]:
    per = 0.17 * random.uniform(0.95, 1.05)
    name = f"whep-20261203T170000Z-{series}-{variant}-n{n}"
    rows.append(f"corecast,2,{variant},{series},{n},{n},{per * n:.1f},{per:.4f},{200 + n / 100:.0f},"
                f"{per * 1.01:.4f},{per * 0.99:.4f},{name if series != 'profile' else ''}")
    if series != "profile":
        open(f"{data}/{name}.start.prom", "w").write(scrape([0, 1], "webrtc"))
        open(f"{data}/{name}.end.prom", "w").write(scrape([0, 1, 10, 100, 400, 300, 80, 10, 1], "webrtc"))
open(f"{data}/whep-20261203T170000Z.csv", "w").write("\n".join(rows) + "\n")
PY

out=$(DATA="$TMP/data" PLOTS="$TMP/plots" perf/plot.sh rtmp whep)
echo "$out"
for want in rtmp-20261203T160000Z-cpu rtmp-20261203T160000Z-rss rtmp-20261203T160000Z-latency \
    whep-20261203T170000Z-cpu whep-20261203T170000Z-rss whep-20261203T170000Z-latency; do
  png="$TMP/plots/$want.png"
  grep -qxF "$png" <<<"$out" || die "$want.png not reported"
  [ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || die "$want.png is not a PNG"
done
[ ! -e "$TMP/plots/rtmp-20261201T000000Z-cpu.png" ] || die "plot.sh rtmp took the older CSV"
say "plot.sh: ok"
