#!/usr/bin/env bash
# Runs every test edgetune has on this machine: the host test suite, then
# (issue 4) the ARM sets under qemu. Needs ../shared (models and data) beside
# the checkout, or EDGETUNE_SHARED pointing at it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/edgetune/target}"
export EDGETUNE_SHARED="${EDGETUNE_SHARED:-$(cd .. && pwd)/shared}"
if [ ! -f "$EDGETUNE_SHARED/models/mobilenet_v2_1.0_224_features.onnx" ]; then
  echo "error: $EDGETUNE_SHARED/models/mobilenet_v2_1.0_224_features.onnx not found (set EDGETUNE_SHARED)" >&2
  exit 1
fi
echo "== host tests ($(uname -m))"
cargo test --locked

# ---- ARM (issue #4): cross-built with the Debian cross gcc, tests run under
# qemu-user (~100x slower than native), so only the ARM test sets run there:
# kernels (NEON on aarch64, portable on armv7/ARMv6), head training, head
# file round trip, portability, one backbone inference; then the CLI
# (--version, predict) and heads/caches moved between x86_64 and ARM.
# EDGETUNE_ARM=0 skips all of it; EDGETUNE_ARMV6=0 skips the ARMv6 part.
# Phases print their times; see docs/ARM.md.
if [ "${EDGETUNE_ARM:-1}" != 0 ]; then
  arm_t0=$(date +%s)
  scripts/arm.sh ci
  echo "== ARM part: $(( $(date +%s) - arm_t0 )) s"
fi

# ---- deployment (issue #6): tests/deploy.sh packages the binary cargo test
# just built (amd64) and the ARM test builds (arm64, armhf), installs the
# amd64 .deb into a throw-away root (overlayfs, private mount namespace),
# runs systemd-analyze verify, upgrade/remove/purge, scripts/prepare-sd.sh on
# a stand-in SD card and a simulated first boot (~20 s). Parts it cannot run
# (not root, no systemd-analyze, no ARM build) are skipped with the reason.
# `edgetune doctor` is tested by cargo test (tests/deploy_doctor.rs).
# EDGETUNE_DEPLOY=0 skips it. See docs/DEPLOY.md.
if [ "${EDGETUNE_DEPLOY:-1}" != 0 ]; then
  if command -v timeout >/dev/null; then timeout 600 tests/deploy.sh; else tests/deploy.sh; fi
fi
