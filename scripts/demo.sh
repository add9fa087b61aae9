#!/usr/bin/env bash
# The main job on the bundled defaults: install the MobileNetV2 backbone,
# extract features of the ants-vs-bees photos (a second run is served from
# the cache), train a head, evaluate it on the held-out photos and classify
# one image. Needs ../shared (or EDGETUNE_SHARED) for the model and data.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/edgetune/target}"
SHARED="${EDGETUNE_SHARED:-$(cd .. && pwd)/shared}"
DATA="$SHARED/data/hymenoptera"
OUT="${EDGETUNE_DEMO_OUT:-out}"
mkdir -p "$OUT"

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "build (release)"
cargo build --release --locked
edgetune="$CARGO_TARGET_DIR/release/edgetune"

step "install the backbone from $SHARED/models (sha256-checked)"
"$edgetune" models install --from "$SHARED/models"

step "extract features (cold), then again (from the cache)"
"$edgetune" extract "$DATA/train" "$DATA/val"
"$edgetune" extract "$DATA/train" "$DATA/val"

step "train a head on $DATA/train (defaults)"
"$edgetune" train "$DATA/train" -o "$OUT/head.safetensors" --plot "$OUT/training.png"

step "evaluate on $DATA/val"
"$edgetune" eval "$DATA/val" --head "$OUT/head.safetensors" --plot "$OUT/confusion.png"

step "predict"
"$edgetune" predict "$DATA/val/bees/1032546534_06907fe3b3.jpg" "$DATA/val/ants/10308379_1b6c72e180.jpg" \
  --head "$OUT/head.safetensors" --top-k 2

step "done: $OUT/head.safetensors, $OUT/training.png, $OUT/confusion.png"
