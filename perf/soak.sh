#!/usr/bin/env bash
# Soak and fault suite: corecast under viewers that come and go and sources that die,
# for SOAK_MINUTES; fails when memory grows, fds leak, a viewer that stayed misses
# frames or the server panics.
#
#   perf/soak.sh                                          60 min, 200 WebRTC + 200 RTMP
#   SOAK_MINUTES=2 SOAK_WEBRTC=20 SOAK_RTMP=10 SOAK_CAMERA_EVERY=50 SOAK_PUBLISHER_EVERY=70 perf/soak.sh
#
# Builds release, starts corecast (SOAK_SHARDS shards, loopback only, WebRTC advertising
# 127.0.0.1) with an always-on RTSP camera (tests/camera/rtsp_camera.py: GStreamer,
# 640x360 25 fps H.264 ~700 kbit/s + AAC, path `cam`) and an RTMP publisher (ffmpeg -re,
# lavfi testsrc 640x360 25 fps, x264 zerolatency GOP 50 700 kbit/s + AAC 64 kbit/s, path
# `live/pub`). Viewers are split between the two streams: SOAK_WEBRTC WebRTC viewers
# (corecast-load whep) and SOAK_RTMP RTMP players (one `rtmpdump --live` each, whose FLV
# the driver counts video frames in). SOAK_CHURN % of the viewers of each kind and stream
# leave and new ones join every minute; the others stay the whole run. The camera is
# SIGKILLed and restarted every SOAK_CAMERA_EVERY s, the publisher every
# SOAK_PUBLISHER_EVERY s. Every SOAK_SAMPLE s: server RSS, open fds, CPU, viewers.
#
# Checks (exit 1 naming the failed ones): RSS slope after warm-up (min(20 % of the run,
# 5 min)) < 5 % per hour (runs under 10 min: growth over their second half < 10 %, see
# perf/README.md); open fds back within 2 of the baseline once every client and
# source stopped; every viewer that stayed got >= 95 % of the video frames its source
# delivered over its window; no `panic` in the server log.
#
# Environment: SOAK_MINUTES (60), SOAK_WEBRTC (200), SOAK_RTMP (200), SOAK_CHURN (10),
# SOAK_CAMERA_EVERY (300), SOAK_PUBLISHER_EVERY (420), SOAK_SAMPLE (10), SOAK_SHARDS (2),
# SOAK_WARMUP (s), SOAK_LD_PRELOAD (a library preloaded into the server only, e.g.
# /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 to compare allocators), SOAK_PROFILE (release; debug uses the debug build), SOAK_OUT (results
# dir; default target/soak/<UTC time>), KEEP_TMP=1 keeps the temp dir.
# Results: samples.csv, verdict.json, summary.md (Markdown for perf/RESULTS.md), soak.png,
# server.log, camera.log, publisher.log.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

NAME=soak
# shellcheck source=perf/lib.sh
. "$REPO/perf/lib.sh"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to install: $*" >&2; return 1; fi
}

need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v rtmpdump >/dev/null || need+=(rtmpdump)
command -v gnuplot >/dev/null || need+=(gnuplot-nox)
command -v python3 >/dev/null || need+=(python3)
/usr/bin/python3 -c 'import gi; gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0")' \
  2>/dev/null || need+=(python3-gi gir1.2-gst-rtsp-server-1.0)
command -v gst-inspect-1.0 >/dev/null || need+=(gstreamer1.0-tools)
if command -v gst-inspect-1.0 >/dev/null; then
  gst-inspect-1.0 --exists x264enc 2>/dev/null || need+=(gstreamer1.0-plugins-ugly)
  gst-inspect-1.0 --exists avenc_aac 2>/dev/null || need+=(gstreamer1.0-libav)
  gst-inspect-1.0 --exists rtph264pay 2>/dev/null || need+=(gstreamer1.0-plugins-good)
else
  need+=(gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-libav)
fi
if [ ${#need[@]} -gt 0 ]; then
  say "installing with apt-get: ${need[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# One rtmpdump and a few fds per player, one UDP socket per WebRTC viewer; glommio locks
# io_memory.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ulimit -l unlimited 2>/dev/null || true

# SOAK_PROFILE=debug uses the debug binaries (tests/run.sh: `cargo test` built them).
if [ "${SOAK_PROFILE:-release}" = debug ]; then
  say "cargo build -p corecast -p corecast-perf"
  cargo build -q -p corecast -p corecast-perf
  CORECAST="$REPO/target/debug/corecast"
  LOAD="$REPO/target/debug/corecast-load"
  REV_LABEL=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=$( (git status --porcelain --untracked-files=no -- . ':!perf' 2>/dev/null || true) | awk '{ print $2 }' | paste -sd, -)
  [ -z "$dirty" ] || REV_LABEL="$REV_LABEL + uncommitted changes to $dirty"
else
  build_release
fi

OUT=${SOAK_OUT:-"$REPO/target/soak/$(date -u +%Y%m%dT%H%M%SZ)"}
mkdir -p "$OUT"
TMP=$(mktemp -d /tmp/soak.XXXXXX)
cleanup() {
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "soak: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
echo "$REV_LABEL" >"$OUT/commit"
say "soak at $REV_LABEL, results in $OUT"
python3 "$REPO/perf/soak.py" "$CORECAST" "$LOAD" "$TMP" "$OUT" "$REPO"
