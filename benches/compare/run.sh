#!/usr/bin/env bash
# Side-by-side benchmark: edgetune vs ONNX Runtime and scikit-learn on the
# same images and machine. Makes its own virtual environment (PyPI:
# onnxruntime, scikit-learn, numpy, pillow), builds edgetune in release mode
# and prints a Markdown table (paste it into BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/edgetune/target}"
SHARED="${EDGETUNE_SHARED:-$(cd .. && pwd)/shared}"
VENV="${EDGETUNE_COMPARE_VENV:-$HOME/.cache/edgetune/venv-compare}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q onnxruntime scikit-learn numpy pillow
cargo build --release --locked --bin edgetune --example bench_backbone
exec "$VENV/bin/python" benches/compare/compare.py --edgetune "$CARGO_TARGET_DIR/release/edgetune" \
  --edgetune-bench "$CARGO_TARGET_DIR/release/examples/bench_backbone" --shared "$SHARED" "$@"
