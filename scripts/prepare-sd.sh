#!/usr/bin/env bash
# Prepares a freshly flashed Raspberry Pi OS (Bookworm) SD card for edgetune.
# Run on a Linux machine with the card's two partitions mounted:
#
#   sudo scripts/prepare-sd.sh --boot /media/$USER/bootfs --root /media/$USER/rootfs \
#       --deb out/deb/edgetune_0.1.0-1_arm64.deb --models ../shared/models \
#       [--model mobilenet_v2_1.0_224_features] [--config my.toml] [--head head.safetensors] [--no-spi]
#
# It changes, on the boot partition: config.txt, a marked block under [all]
# (dtparam=i2c_arm=on, dtparam=spi=on, camera_auto_detect=1); on the root
# partition: /etc/modules-load.d/edgetune.conf (i2c-dev), the payload in
# /var/lib/edgetune-firstboot/ (package, model checked against its sha256,
# optional config and head), /usr/local/sbin/edgetune-firstboot and its unit
# edgetune-firstboot.service, enabled. At the next boot that unit installs
# everything and disables itself. cmdline.txt is not touched, so this works
# with the Raspberry Pi Imager's customisation (user, Wi-Fi, ssh) on the same
# card. Running it again gives the same card (and re-arms the first-boot
# unit: that is how an offline update is put on a card that already booted).
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
die() { echo "error: prepare-sd.sh: $*" >&2; exit 1; }
say() { echo "prepare-sd: $*"; }

BOOT="" ROOT="" DEB="" MODELS="" MODEL=mobilenet_v2_1.0_224_features CONFIG="" HEAD="" SPI=1
while [ $# -gt 0 ]; do
  case "$1" in
    --boot) BOOT="$2"; shift 2 ;;
    --root) ROOT="$2"; shift 2 ;;
    --deb) DEB="$2"; shift 2 ;;
    --models) MODELS="$2"; shift 2 ;;
    --model) MODEL="$2"; shift 2 ;;
    --config) CONFIG="$2"; shift 2 ;;
    --head) HEAD="$2"; shift 2 ;;
    --no-spi) SPI=0; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[ -n "$BOOT" ] && [ -n "$ROOT" ] && [ -n "$DEB" ] || die "--boot, --root and --deb are required (see --help)"

# ---- is this a Raspberry Pi OS card?
[ -f "$BOOT/config.txt" ] && [ -f "$BOOT/cmdline.txt" ] \
  || die "$BOOT: no config.txt and cmdline.txt: not the boot partition of a Raspberry Pi OS card"
[ -f "$ROOT/etc/os-release" ] && [ -d "$ROOT/usr" ] && [ -d "$ROOT/etc/systemd/system" ] \
  || die "$ROOT: no etc/os-release, usr/ and etc/systemd/system/: not the root partition"
[ "$(cd "$ROOT" && pwd -P)" != / ] || die "--root is / : this script prepares a card, not this machine"
[ -f "$DEB" ] || die "$DEB: no such package (build it with scripts/package.sh)"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (apt-get install dpkg)"
deb_arch=$(dpkg-deb -f "$DEB" Architecture)
[ "$(dpkg-deb -f "$DEB" Package)" = edgetune ] || die "$DEB is not the edgetune package"
# the card's architecture: libc6's in its dpkg database
card_arch=$(awk '/^Package: libc6$/{p=1} p&&/^Architecture:/{print $2; exit} /^$/{p=0}' \
  "$ROOT/var/lib/dpkg/status" 2>/dev/null || true)
if [ -n "$card_arch" ]; then
  [ "$card_arch" = "$deb_arch" ] || die "the card is $card_arch, $DEB is $deb_arch: use edgetune_*_${card_arch}.deb"
else
  say "warning: cannot read the card's architecture from $ROOT/var/lib/dpkg/status; not checked"
fi
. "$ROOT/etc/os-release"
case "${VERSION_CODENAME:-}" in
  bookworm|trixie) ;;
  *) say "warning: ${PRETTY_NAME:-unknown OS}: tested layout is Raspberry Pi OS Bookworm" ;;
esac

# ---- the model: checked here, so a bad copy is caught before the card goes in
onnx="" manifest=""
if [ -n "$MODELS" ]; then
  manifest="$HERE/models/$MODEL.toml"
  [ -f "$manifest" ] || manifest="$MODELS/$MODEL.toml"
  [ -f "$manifest" ] || die "no manifest for model $MODEL (models/$MODEL.toml)"
  file=$(sed -n 's/^file *= *"\(.*\)"/\1/p' "$manifest" | head -1)
  sha=$(sed -n 's/^sha256 *= *"\(.*\)"/\1/p' "$manifest" | head -1)
  onnx="$MODELS/$file"
  [ -f "$onnx" ] || die "$onnx not found (--models DIR must hold $file)"
  if [ -n "$sha" ]; then
    actual=$(sha256sum "$onnx" | cut -d' ' -f1)
    [ "$actual" = "$sha" ] || die "$onnx: sha256 is $actual, expected $sha (wrong or truncated file)"
  fi
else
  say "warning: no --models: install the model on the Pi yourself (edgetune models install --from DIR --models-dir /var/lib/edgetune/models)"
fi
[ -z "$CONFIG" ] || [ -f "$CONFIG" ] || die "$CONFIG: no such config file"
[ -z "$HEAD" ] || [ -f "$HEAD" ] || die "$HEAD: no such head file"

need_kb=$(( $(du -sk "$DEB" | cut -f1) + ${onnx:+$(du -sk "$onnx" | cut -f1)} + 0 + 1024 ))
free_kb=$(df -Pk "$ROOT" | awk 'NR==2{print $4}')
[ "$free_kb" -ge "$need_kb" ] || die "$ROOT: ${free_kb} KiB free, need ${need_kb} KiB"

# ---- boot partition: interfaces (a marked block, replaced on every run)
cfg="$BOOT/config.txt"
block_start="# >>> edgetune (scripts/prepare-sd.sh): I2C display, SPI panel, camera"
block_end="# <<< edgetune"
tmp=$(mktemp)
awk -v s="$block_start" -v e="$block_end" '$0==s{skip=1;next} skip&&$0==e{skip=0;next} !skip' "$cfg" > "$tmp"
# drop trailing blank lines the previous block left
sed -i -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$tmp"
{
  echo
  echo "$block_start"
  echo "[all]"
  echo "dtparam=i2c_arm=on"
  [ "$SPI" = 1 ] && echo "dtparam=spi=on"
  echo "camera_auto_detect=1"
  echo "$block_end"
} >> "$tmp"
cat "$tmp" > "$cfg"   # keeps the file's owner and mode (vfat)
rm -f "$tmp"
say "$cfg: I2C$([ "$SPI" = 1 ] && echo ", SPI"), camera auto-detect on"

# ---- root partition
install -d -m 0755 "$ROOT/etc/modules-load.d" "$ROOT/usr/local/sbin" "$ROOT/etc/systemd/system/multi-user.target.wants"
echo "i2c-dev" > "$ROOT/etc/modules-load.d/edgetune.conf"
chmod 0644 "$ROOT/etc/modules-load.d/edgetune.conf"

P="$ROOT/var/lib/edgetune-firstboot"
rm -rf "$P"
install -d -m 0755 "$P"   # readable by the edgetune user, who installs the model
install -m 0644 "$DEB" "$P/edgetune.deb"
if [ -n "$onnx" ]; then
  install -d -m 0755 "$P/models"
  install -m 0644 "$onnx" "$P/models/"
  install -m 0644 "$manifest" "$P/models/$MODEL.toml"
  echo "$MODEL" > "$P/model-name"
fi
[ -z "$CONFIG" ] || install -m 0644 "$CONFIG" "$P/config.toml"
[ -z "$HEAD" ] || install -m 0644 "$HEAD" "$P/head.safetensors"
cat > "$P/README" <<README
Put here by edgetune's scripts/prepare-sd.sh from $(basename "$DEB").
edgetune-firstboot.service installs it at boot (journalctl -u edgetune-firstboot)
and writes 'done' here; then: sudo -u edgetune edgetune doctor
README
install -m 0755 "$HERE/packaging/firstboot/edgetune-firstboot" "$ROOT/usr/local/sbin/edgetune-firstboot"
install -m 0644 "$HERE/packaging/firstboot/edgetune-firstboot.service" "$ROOT/etc/systemd/system/edgetune-firstboot.service"
ln -sfn /etc/systemd/system/edgetune-firstboot.service \
  "$ROOT/etc/systemd/system/multi-user.target.wants/edgetune-firstboot.service"
sync
say "$ROOT: first-boot install of $(dpkg-deb -f "$DEB" Package) $(dpkg-deb -f "$DEB" Version) ($deb_arch)${onnx:+, model $MODEL}${CONFIG:+, config}${HEAD:+, head} armed"
say "done: unmount both partitions, put the card in the Pi and boot it; then: journalctl -u edgetune-firstboot; sudo -u edgetune edgetune doctor"
