#!/usr/bin/env bash
# The whole test suite: installs what the tests need when it is missing, then runs
# formatting, lints, unit and integration tests, and a bounded fuzzing pass.
#
#   tests/run.sh            everything
#   FUZZ_SECONDS=0 tests/run.sh   skip the fuzzing pass (it is on by default)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to install: $*" >&2; return 1; fi
}

# --- tools the tests drive -------------------------------------------------------------
apt_needed=()
command -v ffmpeg  >/dev/null || apt_needed+=(ffmpeg)
command -v ffprobe >/dev/null || apt_needed+=(ffmpeg)
command -v python3 >/dev/null || apt_needed+=(python3)
# The opus crate builds its bundled libopus with CMake (src/media/transcode.rs).
command -v cmake   >/dev/null || apt_needed+=(cmake)
# tests/browser.rs drives Debian's Chromium (headless, WebRTC with H.264) at this path.
[ -x /usr/bin/chromium ] || apt_needed+=(chromium)
# tests/camera/rtsp_camera.py (the RTSP camera stand-in) runs GStreamer's RTSP server under
# Debian's /usr/bin/python3: python3-gi is installed for that interpreter only.
/usr/bin/python3 -c 'import gi; gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer' 2>/dev/null \
  || apt_needed+=(python3 python3-gi gir1.2-gst-rtsp-server-1.0)
command -v gst-inspect-1.0 >/dev/null || apt_needed+=(gstreamer1.0-tools)
gst_element() { gst-inspect-1.0 --exists "$1" 2>/dev/null || apt_needed+=("$2"); }
for el in videotestsrc videoconvert audiotestsrc audioconvert audioresample opusenc; do
  gst_element "$el" gstreamer1.0-plugins-base; done
for el in rtph264pay rtph265pay rtpmp4gpay rtpopuspay rtppcmapay rtppcmupay alawenc mulawenc; do
  gst_element "$el" gstreamer1.0-plugins-good; done
gst_element x265enc   gstreamer1.0-plugins-bad
gst_element x264enc   gstreamer1.0-plugins-ugly
gst_element avenc_aac gstreamer1.0-libav
# The soak step (perf/soak.sh): RTMP players are rtmpdump processes; gnuplot draws its plot.
command -v rtmpdump >/dev/null || apt_needed+=(rtmpdump)
command -v gnuplot  >/dev/null || apt_needed+=(gnuplot-nox)
if [ ${#apt_needed[@]} -gt 0 ]; then
  mapfile -t apt_needed < <(printf '%s\n' "${apt_needed[@]}" | sort -u)
  say "installing with apt-get: ${apt_needed[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_needed[@]}"
fi
if ! python3 -c 'import prometheus_client' 2>/dev/null; then
  say "installing the Prometheus text-format parser (prometheus-client) with pip"
  python3 -m pip install -q prometheus-client 2>/dev/null \
    || python3 -m pip install -q --break-system-packages prometheus-client \
    || { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-prometheus-client; }
fi
# tests/openapi_check.py validates the OpenAPI description and the server's answers.
if ! python3 -c 'import openapi_core, openapi_spec_validator' 2>/dev/null; then
  say "installing the OpenAPI validators (openapi-core, openapi-spec-validator) with pip"
  python3 -m pip install -q openapi-core openapi-spec-validator 2>/dev/null \
    || python3 -m pip install -q --break-system-packages openapi-core openapi-spec-validator
fi

# A whole-suite run rebuilds most of the tree anyway; incremental caches would add some
# 7 GB to target/ for nothing. Set CARGO_INCREMENTAL=1 to keep them.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# --- static checks ---------------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# --- tests -----------------------------------------------------------------------------
say "cargo test --workspace"
cargo test --workspace --all-targets

# --- perf plots ----------------------------------------------------------------------------
# perf/plot.sh draws synthetic RTMP and WHEP results (a few seconds).
say "perf/plot_test.sh"
timeout 120 perf/plot_test.sh

# --- soak --------------------------------------------------------------------------------
# Two minutes of the soak and fault suite with fewer viewers: a leak, a viewer that stops
# getting frames, an fd left open or a panic fails here. It uses the debug binaries
# `cargo test` just built (no release build: the step takes about 2.5 minutes).
say "perf/soak.sh: 2 minutes, 20 WebRTC viewers, 10 RTMP players, sources killed every 50/70 s"
SOAK_PROFILE=debug SOAK_MINUTES=2 SOAK_WEBRTC=20 SOAK_RTMP=10 SOAK_CAMERA_EVERY=50 \
  SOAK_PUBLISHER_EVERY=70 SOAK_OUT=target/soak/ci timeout 600 perf/soak.sh

# --- fuzzing ---------------------------------------------------------------------------
# libFuzzer targets built on the stable toolchain with the same coverage flags cargo-fuzz
# passes (without AddressSanitizer, which needs nightly), each run for a bounded time.
FUZZ_SECONDS="${FUZZ_SECONDS:-8}"
if [ "$FUZZ_SECONDS" != "0" ]; then
  say "fuzzing each target for ${FUZZ_SECONDS}s"
  fuzz_flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
  # An explicit --target keeps the coverage flags off build scripts, as cargo-fuzz does.
  host=$(rustc -vV | sed -n 's/^host: //p')
  RUSTFLAGS="$fuzz_flags" cargo build --release --target "$host" --manifest-path fuzz/Cargo.toml --bins -q
  for target in $(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v corecast-fuzz); do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus"
    echo "fuzz $target"
    mkdir -p fuzz/artifacts
    "fuzz/target/$host/release/$target" "$corpus" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 \
      -artifact_prefix=fuzz/artifacts/ \
      -print_final_stats=0 2>"fuzz/target/$target.log" || {
        echo "fuzz target $target failed:"; tail -40 "fuzz/target/$target.log"; exit 1; }
  done
fi

say "all checks passed"
