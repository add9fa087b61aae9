#!/usr/bin/env bash
# Peak memory (max RSS, /usr/bin/time -v) of `extract` and `train` over
# 4,000 images, and cold start (process start -> first prediction with a
# trained head). The 4,000 images are the hymenoptera photos repeated ten
# times, each copy made distinct by bytes appended after the JPEG's end
# marker (same pixels, different content hash), so nothing is served from
# the cache by accident.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/edgetune/target}"
SHARED="${EDGETUNE_SHARED:-$(cd .. && pwd)/shared}"
N_COPIES="${N_COPIES:-10}"
cargo build --release --locked
B="$CARGO_TARGET_DIR/release/edgetune"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
for split in train val; do
  for label in ants bees; do
    mkdir -p "$WORK/data/$label"
    for f in "$SHARED/data/hymenoptera/$split/$label"/*.jpg; do
      for i in $(seq 1 "$N_COPIES"); do
        out="$WORK/data/$label/${split}_${i}_$(basename "$f")"
        cp "$f" "$out"
        printf 'copy %s' "$i" >> "$out"
      done
    done
  done
done
n=$(find "$WORK/data" -type f | wc -l)
echo "images: $n"
M=(--models-dir "$SHARED/models" --cache "$WORK/cache.redb" --progress none)
rss() { grep "Maximum resident set size" "$1" | awk '{print $6}'; }
/usr/bin/time -v "$B" extract "$WORK/data" "${M[@]}" 2> "$WORK/extract.time" | tail -1
grep -E "images:|total:" "$WORK/extract.time" || true
echo "extract: max RSS $(( $(rss "$WORK/extract.time") / 1024 )) MiB, wall $(grep 'Elapsed (wall' "$WORK/extract.time" | awk '{print $8}')"
/usr/bin/time -v "$B" train "$WORK/data" -o "$WORK/head.safetensors" "${M[@]}" 2> "$WORK/train.time" >/dev/null
grep -E "epochs in" "$WORK/train.time" || true
echo "train:   max RSS $(( $(rss "$WORK/train.time") / 1024 )) MiB, wall $(grep 'Elapsed (wall' "$WORK/train.time" | awk '{print $8}')"
photo="$SHARED/models/photos/parrot.jpg"
"$B" predict "$photo" --head "$WORK/head.safetensors" "${M[@]:0:2}" >/dev/null  # warm the page cache
best=999999
for _ in 1 2 3 4 5; do
  t0=$(date +%s%N)
  "$B" predict "$photo" --head "$WORK/head.safetensors" "${M[@]:0:2}" >/dev/null
  t1=$(date +%s%N)
  ms=$(( (t1 - t0) / 1000000 )); [ "$ms" -lt "$best" ] && best=$ms
done
echo "cold start (process start -> first prediction, best of 5): ${best} ms"
