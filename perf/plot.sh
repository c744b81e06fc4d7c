#!/usr/bin/env bash
# PNG plots of the load scripts' results (gnuplot).
#
#   perf/plot.sh perf/data/whep-20261203T1612Z.csv     one results CSV
#   perf/plot.sh rtmp                                  the newest perf/data/rtmp-*.csv
#   perf/plot.sh whep rtmp                             the newest of each kind
#   perf/plot.sh -o whep-shards A.csv B.csv            A and B on one set of charts,
#                                                      perf/plots/whep-shards-*.png
#
# For each CSV (with -o NAME: for all of them together, named NAME), in $PLOTS
# (perf/plots), named after the CSV (<base>-cpu.png, ...):
# - rtmp-*.csv (perf/rtmp_load.sh: server,player,n,rep,playing,cpu_pct,cpu_pct_per_player,
#   rss_kib_per_player,mbps_p5): CPU % of a core per player and RSS KiB per player against
#   N, one line per server x player, the median of the repetitions with min-max error bars;
# - whep-*.csv (perf/whep_load.sh: server,shards,variant,series,n,...): CPU % per viewer
#   and RSS KiB per viewer against N, one line per shard count x variant (batch_send:
#   sendmmsg or sendto), medians with min-max bars; with 2 shards also the owner shard's
#   and the relaying shard's CPU per viewer (each shard thread's CPU / its viewers);
# - from the /metrics scrapes saved beside the CSV (<base>-<series>-n<N>.start.prom and
#   .end.prom: at the start and end of the measurement window), the distribution of
#   corecast_frame_latency_seconds over the window (end - start; the end scrape alone if
#   there is no start), % of the observations per bucket, one bar per run: <base>-latency.png.
#
# Prints the PNGs it wrote, one path a line, on stdout. Needs python3 and gnuplot
# (installs gnuplot-nox with apt-get if it is missing).
#
# Environment: DATA (perf/data: where `rtmp`/`whep` look), PLOTS (perf/plots); both
# relative to the repository, CSV arguments to the current directory.
set -euo pipefail
CALLER_DIR=$(pwd)
cd "$(dirname "$0")/.."
REPO=$(pwd)
NAME=plot
# shellcheck source=perf/lib.sh
. "$REPO/perf/lib.sh"

DATA=${DATA:-perf/data}
PLOTS=${PLOTS:-perf/plots}
if ! command -v gnuplot >/dev/null; then
  # Like soak.sh: install it (gnuplot-nox: no X11).
  say "installing gnuplot-nox with apt-get"
  if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    die "needs gnuplot (apt-get install gnuplot-nox) and cannot install it without root or sudo"; fi
  "${sudo[@]}" apt-get update -qq >&2 || true
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox >&2 \
    || die "apt-get install gnuplot-nox failed"
fi
need_tools gnuplot python3
OUT=""
if [ "${1:-}" = -o ]; then
  [ $# -ge 2 ] || die "usage: perf/plot.sh [-o NAME] CSV|rtmp|whep ..."
  OUT=$2
  shift 2
fi
[ $# -gt 0 ] || die "usage: perf/plot.sh [-o NAME] CSV|rtmp|whep ..."
mkdir -p "$PLOTS"

csvs=()
for arg in "$@"; do
  case "$arg" in
    rtmp | whep)
      # The newest CSV of that kind (the names carry a UTC stamp).
      csv=$(find "$DATA" -maxdepth 1 -name "$arg-*.csv" 2>/dev/null | sort | tail -1)
      [ -n "$csv" ] || die "no $DATA/$arg-*.csv"
      ;;
    /*) csv=$arg ;;
    *) csv="$CALLER_DIR/$arg" ;;  # relative to where plot.sh was called from
  esac
  [ -f "$csv" ] || die "no such file: $csv"
  csvs+=("$csv")
done
if [ -n "$OUT" ]; then
  python3 "$REPO/perf/plot.py" "$PLOTS" "$OUT" "${csvs[@]}"
else
  for csv in "${csvs[@]}"; do
    python3 "$REPO/perf/plot.py" "$PLOTS" "" "$csv"
  done
fi
