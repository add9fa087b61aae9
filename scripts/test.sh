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
