#!/usr/bin/env bash
# Cross-build edgetune for Raspberry Pi boards and test it under qemu-user
# (issue #4). Linkers and qemu runners come from .cargo/config.toml; the
# toolchain pieces are installed by .ci/run (or see docs/ARM.md).
#
#   scripts/arm.sh tools              check the cross toolchain pieces are there
#   scripts/arm.sh test  [TRIPLE...]  ARM test sets under qemu
#   scripts/arm.sh cli   [TRIPLE...]  edgetune --version / predict under qemu, and
#                                     heads + caches moved between x86_64 and ARM
#   scripts/arm.sh armv6              ARMv6 (Pi 1 / Zero) build with -Zbuild-std,
#                                     kernel + portability tests and CLI under qemu-arm
#   scripts/arm.sh dist  [TRIPLE...]  stripped `dist` binaries and their sizes
#   scripts/arm.sh ci                 tools, test, cli for aarch64 + armv7, then armv6
#                                     (EDGETUNE_ARMV6=0 skips it)
#
# TRIPLE defaults to aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf.
# EDGETUNE_ARM_CARGO_ARGS adds cargo arguments (the ARM builds use --features pi).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/edgetune/target}"
export EDGETUNE_SHARED="${EDGETUNE_SHARED:-$(cd .. && pwd)/shared}"
# qemu-user shows the host's /proc/cpuinfo: tell tract that armv7 has NEON
# (also set in .cargo/config.toml [env] for cargo-run tests; this covers the
# explicit qemu invocations below).
export TRACT_CPU_ARM32_NEON=true
export CARGO_TERM_PROGRESS_WHEN=never

A64=aarch64-unknown-linux-gnu
A32=armv7-unknown-linux-gnueabihf
A6=arm-unknown-linux-gnueabihf
DEFAULT_TARGETS=("$A64" "$A32")
read -r -a EXTRA <<<"${EDGETUNE_ARM_CARGO_ARGS:-}"
# ARM builds carry the Raspberry Pi hardware (GPIO, OLED, SPI screen): the
# `pi` feature. (The V4L2 webcam source is 64-bit only, see Cargo.toml.)
cargs() { # extra cargo args for a target
  echo --features pi
}
MODELS="$EDGETUNE_SHARED/models"

die() { echo "error: $*" >&2; exit 1; }
now() { date +%s; }
T_START=$(now)
phase_t=0
phase() { phase_t=$(now); echo "== [arm] $*"; }
done_phase() { echo "== [arm] $1: $(( $(now) - phase_t )) s (arm total $(( $(now) - T_START )) s)"; }

runner() { # the qemu command line for a target, as in .cargo/config.toml
  case "$1" in
    "$A64") echo "qemu-aarch64 -cpu cortex-a72 -L /usr/aarch64-linux-gnu" ;;
    "$A32") echo "qemu-arm -L /usr/arm-linux-gnueabihf" ;;
    "$A6") echo "qemu-arm -L /usr/arm-linux-gnueabihf" ;;
    *) die "unknown target $1" ;;
  esac
}

tools() {
  local missing=()
  for c in aarch64-linux-gnu-gcc arm-linux-gnueabihf-gcc qemu-aarch64 qemu-arm; do
    command -v "$c" >/dev/null || missing+=("$c")
  done
  [ -f /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || missing+=("libc6-dev-arm64-cross (aarch64 sysroot)")
  [ -f /usr/arm-linux-gnueabihf/lib/ld-linux-armhf.so.3 ] || missing+=("libc6-dev-armhf-cross (armhf sysroot)")
  local have; have=$(rustup target list --installed 2>/dev/null || true)
  for t in "$A64" "$A32"; do grep -qx "$t" <<<"$have" || missing+=("rustup target $t"); done
  [ ${#missing[@]} -eq 0 ] || die "missing cross toolchain pieces: ${missing[*]} (run .ci/run, or see docs/ARM.md)"
  echo "cross tools: $(aarch64-linux-gnu-gcc -dumpversion) gcc, $(qemu-aarch64 --version | head -1)"
}

# Integration tests run under qemu. Only library-level tests: the ones that
# spawn the `edgetune` binary cannot exec an ARM binary without binfmt; the
# CLI is checked by `cli` with explicit qemu invocations.
TEST_SETS=(kernels head_train portability headfile)
test_args() {
  local a=()
  for t in "${TEST_SETS[@]}"; do [ -f "tests/$t.rs" ] && a+=(--test "$t"); done
  echo "${a[@]}"
}

# aarch64 also runs the backbone's 1x1-conv GEMM (NEON direct-A kernel)
# against the scalar reference and MobileNetV2 with it against ORT.
extra_sets() { [ "$1" = "$A64" ] && echo --test pwconv; true; }

run_tests() { # target [extra cargo args...]
  local t=$1; shift
  # shellcheck disable=SC2046
  cargo test --locked --target "$t" "$@" $(cargs "$t") "${EXTRA[@]}" $(test_args) $(extra_sets "$t")
  # one backbone inference against the ONNX Runtime reference features
  cargo test --locked --target "$t" "$@" $(cargs "$t") "${EXTRA[@]}" --test backbone -- --exact reference_input_gives_reference_features
}

cmd_test() {
  for t in "$@"; do
    phase "build tests for $t"
    cargo test --locked --target "$t" $(cargs "$t") "${EXTRA[@]}" $(test_args) $(extra_sets "$t") --test backbone --no-run
    done_phase "build $t"
    phase "tests under $(runner "$t" | cut -d' ' -f1) for $t"
    run_tests "$t"
    done_phase "qemu tests $t"
  done
}

# ---------------------------------------------------------------- CLI + portability

WORK=""
HOST_BIN=""
PHOTOS=()
TRAIN_ARGS=(--hidden 16 --epochs 30 --patience 0 --seed 7 --val-split 0.25 --progress none)
PREDICT_ARGS=(--top-k 2)

host_setup() {
  [ -n "$WORK" ] && return
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/edgetune-arm.XXXXXX")
  trap 'rm -rf "$WORK"' EXIT
  phase "host: small data set, head trained on x86_64"
  cargo build --locked "${EXTRA[@]}" --bin edgetune
  HOST_BIN="$CARGO_TARGET_DIR/debug/edgetune"
  local src="$EDGETUNE_SHARED/data/hymenoptera/train"
  for c in ants bees; do
    mkdir -p "$WORK/data/$c"
    # the first 8 images of each class (sorted: the same set everywhere)
    find "$src/$c" -maxdepth 1 -type f -name '*.jpg' | LC_ALL=C sort | head -8 | xargs -I{} cp {} "$WORK/data/$c/"
  done
  PHOTOS=("$MODELS/photos/parrot.jpg" "$(find "$EDGETUNE_SHARED/data/hymenoptera/val/bees" -name '*.jpg' | LC_ALL=C sort | head -1)")
  "$HOST_BIN" train "$WORK/data" -o "$WORK/x86_64.head" --models-dir "$MODELS" --cache "$WORK/x86_64.redb" "${TRAIN_ARGS[@]}" --json
  "$HOST_BIN" predict "${PHOTOS[@]}" --head "$WORK/x86_64.head" --models-dir "$MODELS" "${PREDICT_ARGS[@]}" --json >"$WORK/pred.x86_64.x86_64.json"
  done_phase "host setup"
}

# same images, same labels, probabilities within $3 (top-k is all classes here)
same_predictions() { # a.json b.json tol
  python3 - "$@" <<'EOF'
import json, sys
a, b, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
la = [json.loads(l) for l in open(a) if l.strip()]
lb = [json.loads(l) for l in open(b) if l.strip()]
assert len(la) == len(lb) and la, f"{a}: {len(la)} lines, {b}: {len(lb)}"
worst = 0.0
for x, y in zip(la, lb):
    assert x["image"] == y["image"], (x["image"], y["image"])
    # by label: two near-equal classes may be listed in either order
    px = {t["label"]: t["probability"] for t in x["top"]}
    py = {t["label"]: t["probability"] for t in y["top"]}
    assert px.keys() == py.keys(), (x["top"], y["top"])
    for k in px:
        worst = max(worst, abs(px[k] - py[k]))
assert worst <= tol, f"probabilities differ by {worst} > {tol}: {a} vs {b}"
print(f"  same predictions: {a.rsplit('/',1)[-1]} = {b.rsplit('/',1)[-1]} (max |dp| {worst:.2e})")
EOF
}

cli_check() { # target binary
  local t=$1 bin=$2 q; q=$(runner "$t")
  local arch=${t%%-*}
  phase "CLI under $q: $t"
  local v; v=$($q "$bin" --version)
  [ "$v" = "$("$HOST_BIN" --version)" ] || die "$t: --version says '$v'"
  echo "  $v"
  # a head trained on x86_64 predicts the same on ARM
  $q "$bin" predict "${PHOTOS[@]}" --head "$WORK/x86_64.head" --models-dir "$MODELS" "${PREDICT_ARGS[@]}" --json >"$WORK/pred.x86_64.$arch.json"
  cat "$WORK/pred.x86_64.$arch.json"
  same_predictions "$WORK/pred.x86_64.x86_64.json" "$WORK/pred.x86_64.$arch.json" 2e-3
  # the reverse: train on ARM from the x86_64 feature cache (every image is a
  # cache hit, so no backbone runs), then predict with that head on both
  cp "$WORK/x86_64.redb" "$WORK/$arch.redb"
  $q "$bin" train "$WORK/data" -o "$WORK/$arch.head" --models-dir "$MODELS" --cache "$WORK/$arch.redb" "${TRAIN_ARGS[@]}" --json
  # (one photo: each backbone run under qemu takes tens of seconds)
  $q "$bin" predict "${PHOTOS[0]}" --head "$WORK/$arch.head" --models-dir "$MODELS" "${PREDICT_ARGS[@]}" --json >"$WORK/pred.$arch.$arch.json"
  "$HOST_BIN" predict "${PHOTOS[0]}" --head "$WORK/$arch.head" --models-dir "$MODELS" "${PREDICT_ARGS[@]}" --json >"$WORK/pred.$arch.x86_64.json"
  same_predictions "$WORK/pred.$arch.$arch.json" "$WORK/pred.$arch.x86_64.json" 2e-3
  done_phase "CLI $t"
}

cmd_cli() {
  host_setup
  for t in "$@"; do
    cargo build --locked --target "$t" $(cargs "$t") "${EXTRA[@]}" --bin edgetune
    cli_check "$t" "$CARGO_TARGET_DIR/$t/debug/edgetune"
  done
}

# ---------------------------------------------------------------- ARMv6

# No prebuilt std for arm-unknown-linux-gnueabihf is served here, so std is
# rebuilt from the rust-src component with -Zbuild-std, which a stable
# toolchain accepts under RUSTC_BOOTSTRAP=1.
armv6_cargo() { # cargo subcommand and args
  local sub=$1; shift
  RUSTC_BOOTSTRAP=1 cargo "$sub" --locked --target "$A6" -Zbuild-std=std,panic_abort "$@" $(cargs "$A6") "${EXTRA[@]}"
}

armv6_ready() {
  rustup component list --installed 2>/dev/null | grep -q '^rust-src' || {
    echo "rust-src is not installed (rustup component add rust-src): ARMv6 is not built" >&2
    return 1
  }
}

cmd_armv6() {
  armv6_ready || die "ARMv6 needs the rust-src component"
  # an ARMv6 CPU has no NEON: keep tract on its VFP2 kernels
  local neon_was=$TRACT_CPU_ARM32_NEON
  export TRACT_CPU_ARM32_NEON=false
  phase "ARMv6 ($A6) build with -Zbuild-std"
  # One build: `cargo test` builds the `edgetune` binary for the integration
  # tests too (target/$A6/debug/edgetune). A separate `cargo build` would
  # rebuild std and every dependency once more (build-std gives the test
  # run's std another hash), ~10 min for nothing.
  # shellcheck disable=SC2046
  armv6_cargo test $(test_args) --no-run
  [ -x "$CARGO_TARGET_DIR/$A6/debug/edgetune" ] || die "$A6: the test build left no edgetune binary"
  done_phase "build $A6"
  phase "ARMv6 kernel/head/portability tests under qemu-arm"
  # shellcheck disable=SC2046
  armv6_cargo test $(test_args)
  done_phase "qemu tests $A6"
  host_setup
  cli_check "$A6" "$CARGO_TARGET_DIR/$A6/debug/edgetune"
  armv6_isa_report "$CARGO_TARGET_DIR/$A6/debug/edgetune"
  export TRACT_CPU_ARM32_NEON=$neon_was
}

# What the ARMv6 build asks of the CPU: the EABI build attributes of
# edgetune's own objects (rlib members) versus the linked binary, which
# also holds Debian armhf's ARMv7 startup files.
armv6_isa_report() {
  local bin=$1 rlib
  rlib=$(ls -t "$CARGO_TARGET_DIR/$A6"/debug/deps/libedgetune-*.rlib 2>/dev/null | head -1)
  if [ -n "$rlib" ]; then
    echo "  build attributes of edgetune's own code ($(basename "$rlib")):"
    arm-linux-gnueabihf-readelf -A "$rlib" 2>/dev/null | grep -E 'Tag_CPU_arch:|Tag_FP_arch|Tag_Advanced_SIMD|Tag_THUMB' | sort | uniq -c | sed 's/^/    /'
  fi
  echo "  build attributes of the linked binary (includes Debian armhf crt files):"
  arm-linux-gnueabihf-readelf -A "$bin" | grep -E 'Tag_CPU_arch:|Tag_FP_arch|Tag_Advanced_SIMD|Tag_THUMB' | sed 's/^/    /'
}

# ---------------------------------------------------------------- dist

cmd_dist() {
  for t in "$@"; do
    phase "dist build for $t"
    if [ "$t" = "$A6" ]; then
      armv6_ready || die "ARMv6 needs the rust-src component"
      armv6_cargo build --profile dist --bin edgetune
    else
      cargo build --locked --profile dist --target "$t" $(cargs "$t") "${EXTRA[@]}" --bin edgetune
    fi
    done_phase "dist $t"
  done
  echo "== [arm] dist binaries (stripped):"
  for t in "$@"; do
    local b="$CARGO_TARGET_DIR/$t/dist/edgetune"
    [ -f "$b" ] && printf '  %-32s %9d bytes  %s\n' "$t" "$(stat -c %s "$b")" "$(file -b "$b" | cut -d, -f1-2)"
  done
}

# ---------------------------------------------------------------- main

cmd=${1:-ci}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${DEFAULT_TARGETS[@]}")
[ -f "$MODELS/mobilenet_v2_1.0_224_features.onnx" ] || die "$MODELS not found (set EDGETUNE_SHARED)"
case "$cmd" in
  tools) tools ;;
  test) tools; cmd_test "${targets[@]}" ;;
  cli) tools; cmd_cli "${targets[@]}" ;;
  armv6) tools; cmd_armv6 ;;
  dist) tools; cmd_dist "${targets[@]}" ;;
  ci)
    tools
    cmd_test "${targets[@]}"
    cmd_cli "${targets[@]}"
    if [ "${EDGETUNE_ARMV6:-1}" != 0 ]; then
      if armv6_ready; then cmd_armv6; else die "ARMv6 requested but rust-src is missing (EDGETUNE_ARMV6=0 skips it)"; fi
    fi
    echo "== [arm] all ARM checks passed in $(( $(now) - T_START )) s"
    ;;
  *) die "usage: scripts/arm.sh tools|test|cli|armv6|dist|ci [TRIPLE...]" ;;
esac
