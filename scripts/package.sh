#!/usr/bin/env bash
# Builds edgetune Debian packages: out/deb/edgetune_<version>_<arch>.deb.
#
#   scripts/package.sh                      # arm64 + armhf (dist profile, cross-compiled)
#   scripts/package.sh arm64 armhf amd64    # any of them
#   scripts/package.sh --binary PATH amd64  # package an existing binary (CI: the test build)
#
# Options: --out DIR (default out/deb), --binary PATH (one arch only; skips
# cargo), --version V (default: Cargo.toml's version + "-1"), --fast (gzip -1
# instead of xz: for tests), --features F (replaces the default `pi`).
#
# Real packages: `cargo build --profile dist --target <triple>` (stripped,
# LTO): aarch64-unknown-linux-gnu for arm64 (Pi 3/4/5, Zero 2 W on 64-bit
# Raspberry Pi OS), armv7-unknown-linux-gnueabihf for armhf (32-bit OS;
# linkers from .cargo/config.toml, see docs/ARM.md), x86_64-unknown-linux-gnu
# for amd64. ARM packages are built with the `pi` feature (GPIO, OLED, SPI).
#
# Packager: dpkg-deb on a staged tree (--root-owner-group: no fakeroot
# needed). The file list is below, in one place; docs/DEPLOY.md says why not
# cargo-deb.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/edgetune/target}"

die() { echo "error: package.sh: $*" >&2; exit 1; }

OUT=out/deb BINARY="" VERSION="" FAST=0 FEATURES=pi ARCHES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --binary) BINARY="$2"; shift 2 ;;
    --version) VERSION="$2"; shift 2 ;;
    --fast) FAST=1; shift ;;
    --features) FEATURES="$2"; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    arm64|armhf|amd64) ARCHES+=("$1"); shift ;;
    *) die "unknown argument $1 (arm64, armhf, amd64, --binary PATH, --out DIR, --version V, --fast)" ;;
  esac
done
[ ${#ARCHES[@]} -gt 0 ] || ARCHES=(arm64 armhf)
[ -z "$BINARY" ] || [ ${#ARCHES[@]} -eq 1 ] || die "--binary takes exactly one architecture"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (apt-get install dpkg-dev)"
command -v readelf >/dev/null || die "readelf not found (apt-get install binutils)"

CARGO_VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
[ -n "$VERSION" ] || VERSION="${CARGO_VERSION}-1"

triple() { case "$1" in arm64) echo aarch64-unknown-linux-gnu ;; armhf) echo armv7-unknown-linux-gnueabihf ;; amd64) echo x86_64-unknown-linux-gnu ;; esac; }
strip_tool() { case "$1" in arm64) echo aarch64-linux-gnu-strip ;; armhf) echo arm-linux-gnueabihf-strip ;; amd64) echo strip ;; esac; }
elf_machine() { case "$1" in arm64) echo AArch64 ;; armhf) echo ARM ;; amd64) echo "X86-64" ;; esac; }

build() { # arch -> prints the binary path
  local arch=$1 t; t=$(triple "$arch")
  local args=(--locked --profile dist --target "$t" --bin edgetune)
  [ -n "$FEATURES" ] && args+=(--features "$FEATURES")
  echo "== cargo build ${args[*]}" >&2
  cargo build "${args[@]}" >&2
  echo "$CARGO_TARGET_DIR/$t/dist/edgetune"
}

# Minimum glibc the binary needs, from its symbol versions (dpkg-shlibdeps
# would need the target's libc6 package installed, which a cross setup lacks).
glibc_min() {
  readelf -W --version-info "$1" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1
}

package() { # arch binary
  local arch=$1 bin=$2
  [ -x "$bin" ] || die "$bin: no such executable"
  local machine; machine=$(readelf -h "$bin" | sed -n 's/^ *Machine: *//p')
  case "$machine" in
    *"$(elf_machine "$arch")"*) ;;
    *) die "$bin is a $machine binary, not $arch" ;;
  esac
  local stage; stage=$(mktemp -d "${TMPDIR:-/tmp}/edgetune-deb.XXXXXX")
  trap 'rm -rf "$stage"' RETURN
  chmod 0755 "$stage"
  install -d -m 0755 "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" \
    "$stage/etc/edgetune" "$stage/usr/share/edgetune/models" "$stage/usr/share/doc/edgetune"
  local st; st=$(strip_tool "$arch")
  command -v "$st" >/dev/null || die "$st not found (binutils for $arch)"
  "$st" --strip-all -o "$stage/usr/bin/edgetune" "$bin"
  chmod 0755 "$stage/usr/bin/edgetune"
  install -m 0644 packaging/systemd/edgetune.service packaging/systemd/edgetune.path "$stage/lib/systemd/system/"
  install -m 0644 packaging/config.toml "$stage/etc/edgetune/config.toml"
  install -m 0644 models/*.toml "$stage/usr/share/edgetune/models/"
  install -m 0644 docs/DEPLOY.md packaging/debian/copyright "$stage/usr/share/doc/edgetune/"
  install -m 0644 packaging/config.toml "$stage/usr/share/doc/edgetune/config.toml.default"
  install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
  install -m 0644 packaging/debian/conffiles "$stage/DEBIAN/"
  local glibc; glibc=$(glibc_min "$stage/usr/bin/edgetune")
  local size; size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
  cat > "$stage/DEBIAN/control" <<CONTROL
Package: edgetune
Version: $VERSION
Architecture: $arch
Maintainer: edgetune maintainers <edgetune@localhost>
Installed-Size: $size
Depends: libc6 (>= ${glibc:-2.31}), adduser
Recommends: rpicam-apps | libcamera-apps, i2c-tools
Section: science
Priority: optional
Description: transfer learning on the edge: camera-triggered image classifier
 A frozen MobileNetV2 backbone (tract), cached features and a small dense
 head trained on the device. Runs \`edgetune run --config
 /etc/edgetune/config.toml\` as the edgetune user (groups gpio, i2c, spi,
 video) from a hardened systemd unit. State in /var/lib/edgetune is kept on
 upgrade and removal, deleted on purge. The model file is not included:
 \`edgetune models install --from DIR --models-dir /var/lib/edgetune/models\`.
CONTROL
  (cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum > DEBIAN/md5sums)
  chmod 0644 "$stage/DEBIAN/md5sums" "$stage/DEBIAN/control"
  mkdir -p "$OUT"
  local deb="$OUT/edgetune_${VERSION}_${arch}.deb"
  local z=(-Zxz)
  [ "$FAST" = 1 ] && z=(-Zgzip -z1)
  dpkg-deb --root-owner-group "${z[@]}" --build "$stage" "$deb" >/dev/null
  echo "$deb ($(du -h "$deb" | cut -f1), needs glibc >= ${glibc:-?})"
}

for arch in "${ARCHES[@]}"; do
  if [ -n "$BINARY" ]; then bin=$BINARY; else bin=$(build "$arch"); fi
  package "$arch" "$bin"
done
