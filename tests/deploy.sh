#!/usr/bin/env bash
# Deployment tests (issue #6), run by scripts/test.sh after `cargo test`:
#  1. the amd64 .deb, built by scripts/package.sh from the test build's binary
#     ($CARGO_TARGET_DIR/debug/edgetune): control fields, file list, modes,
#     conffiles, no model inside;
#  2. installed into a throw-away root (overlayfs over this machine's /usr,
#     /etc, /var in a private mount namespace; nothing on the host changes):
#     user and groups, state folder, units enabled, `systemd-analyze verify`
#     (and a broken unit is refused), `edgetune doctor` as the service user,
#     model install, upgrade / remove / reinstall keep the state and the
#     edited config, purge deletes them;
#  3. arm64 / armhf .debs from the ARM test builds scripts/arm.sh left
#     (Architecture field, ELF machine, hard-float ABI, same file list);
#  4. scripts/prepare-sd.sh on a stand-in SD card (boot + root folders, and a
#     real ext4 root image when loop mounts work), twice (idempotent), then
#     the first-boot script run in a throw-away root: package, config and
#     model installed, and a second boot does nothing.
# Needs root (chroot, mounts), dpkg-deb, systemd-analyze; skips a part with
# the reason when something is missing. Prints each part's time.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/edgetune/target}"
export EDGETUNE_SHARED="${EDGETUNE_SHARED:-$(cd .. && pwd)/shared}"

# everything below runs in a private mount namespace: mounts vanish with it
if [ -z "${EDGETUNE_DEPLOY_NS:-}" ]; then
  if [ "$(id -u)" = 0 ] && unshare -m --propagation private true 2>/dev/null; then
    EDGETUNE_DEPLOY_NS=1 exec unshare -m --propagation private "$0" "$@"
  fi
  EDGETUNE_DEPLOY_NS=none
fi

FAIL=0
pass() { echo "  ok: $*"; }
fail() { echo "  FAIL: $*"; FAIL=1; }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
skip() { echo "== [deploy] SKIPPED $1: $2"; }
t0=$(date +%s)
phase() { echo "== [deploy] $1"; pt=$(date +%s); }
done_phase() { echo "   ($(( $(date +%s) - pt )) s)"; }

W=$(mktemp -d "${TMPDIR:-/tmp}/edgetune-deploy.XXXXXX")
cleanup() {
  # lazy unmounts of anything still mounted under the work folder
  grep " $W" /proc/self/mounts 2>/dev/null | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT

for t in dpkg-deb readelf; do
  command -v "$t" >/dev/null || { skip "all deploy tests" "$t not found (apt-get install dpkg-dev binutils)"; exit 0; }
done
BIN="$CARGO_TARGET_DIR/debug/edgetune"
[ -x "$BIN" ] || { echo "error: $BIN not built (run cargo test first)" >&2; exit 1; }

# ------------------------------------------------------------------ 1. the amd64 package
phase "amd64 package from the test build"
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
scripts/package.sh --binary "$BIN" --fast --out "$W/deb" amd64
DEB="$W/deb/edgetune_${VERSION}-1_amd64.deb"
field() { dpkg-deb -f "$1" "$2"; }
check "Package/Architecture/Version" test "$(field "$DEB" Package) $(field "$DEB" Architecture) $(field "$DEB" Version)" = "edgetune amd64 ${VERSION}-1"
check "Depends on adduser and libc6 (>= x)" grep -Eq '^libc6 \(>= 2\.[0-9]+\), adduser$' <<<"$(field "$DEB" Depends)"
check "conffiles: /etc/edgetune/config.toml" test "$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles)" = /etc/edgetune/config.toml
listing=$(dpkg-deb -c "$DEB" | awk '{print $1, $2, $6}')
expect_file() { # mode owner path
  grep -qxF -- "$1 $2 $3" <<<"$listing" || { fail "$3 is not $1 $2: $(grep " $3$" <<<"$listing" || echo missing)"; return; }
  pass "$3 $1 $2"
}
expect_file -rwxr-xr-x root/root ./usr/bin/edgetune
expect_file -rw-r--r-- root/root ./lib/systemd/system/edgetune.service
expect_file -rw-r--r-- root/root ./lib/systemd/system/edgetune.path
expect_file -rw-r--r-- root/root ./etc/edgetune/config.toml
expect_file -rw-r--r-- root/root ./usr/share/edgetune/models/mobilenet_v2_1.0_224_features.toml
expect_file -rw-r--r-- root/root ./usr/share/doc/edgetune/copyright
check "no model file in the package" bash -c "! grep -q '\.onnx' <<<'$listing'"
check "nothing under /var/lib/edgetune in the package (dpkg never deletes state)" bash -c "! grep -q './var/' <<<'$listing'"
dpkg-deb -x "$DEB" "$W/x"
check "packaged binary is stripped and runs" bash -c "'$W/x/usr/bin/edgetune' --version | grep -q '^edgetune $VERSION'"
check "packaged config = packaging/config.toml" cmp -s "$W/x/etc/edgetune/config.toml" packaging/config.toml
for s in postinst prerm postrm; do sh -n "packaging/debian/$s" || fail "sh -n $s"; done
done_phase

# ------------------------------------------------------------------ throw-away root
# overlayfs: this machine's /usr, /etc, /var read through, every write kept
# in $W; /proc and /dev bound. The host is not changed.
make_root() { # dir
  local R=$1 d
  mkdir -p "$R"
  for d in usr etc var; do
    mkdir -p "$R.w/$d-up" "$R.w/$d-work" "$R/$d"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$R.w/$d-up,workdir=$R.w/$d-work" "$R/$d" || return 1
  done
  for d in bin sbin lib lib64; do [ -e "/$d" ] && ln -s "usr/$d" "$R/$d"; done
  mkdir -p "$R/proc" "$R/dev" "$R/tmp" "$R/run" "$R/root" "$R/mnt/shared"
  chmod 1777 "$R/tmp"
  mount --bind /proc "$R/proc" && mount --rbind /dev "$R/dev" || return 1
  # the model comes from ../shared, read-only
  mount --bind "$EDGETUNE_SHARED" "$R/mnt/shared" && mount -o remount,bind,ro "$R/mnt/shared" || true
  # start from a clean slate if this machine had edgetune installed
  chroot "$R" dpkg -P edgetune >/dev/null 2>&1 || true
  rm -rf "$R/var/lib/edgetune" "$R/etc/edgetune"
}

CHROOT_OK=0
if [ "$EDGETUNE_DEPLOY_NS" != 1 ]; then
  skip "install into a throw-away root" "needs root and mount namespaces (unshare -m); running as uid $(id -u)"
elif ! make_root "$W/root" 2>"$W/mount.err"; then
  skip "install into a throw-away root" "overlay/bind mounts refused: $(tail -1 "$W/mount.err")"
else
  CHROOT_OK=1
fi

if [ "$CHROOT_OK" = 1 ]; then
  R="$W/root"
  in_root() { chroot "$R" "$@"; }
  # ---------------------------------------------------------------- 2. install
  phase "install into a throw-away root"
  cp "$DEB" "$R/tmp/edgetune.deb"
  in_root dpkg -i /tmp/edgetune.deb > "$W/install.log" 2>&1 || { cat "$W/install.log"; fail "dpkg -i"; }
  check "dpkg: installed" test "$(in_root dpkg-query -W -f '${db:Status-Abbrev}' edgetune)" = "ii "
  check "no warnings from the maintainer scripts" bash -c "! grep -qi 'warn' '$W/install.log'"
  check "edgetune is a system user with home /var/lib/edgetune, no login" \
    bash -c "in=\$(chroot '$R' getent passwd edgetune); IFS=: read -r _ _ uid _ _ home shell <<<\"\$in\"; [ \$uid -lt 1000 ] && [ \$home = /var/lib/edgetune ] && [ \$shell = /usr/sbin/nologin ]"
  groups=$(in_root id -nG edgetune)
  for g in gpio i2c spi video; do check "edgetune in group $g" grep -qw "$g" <<<"$groups"; done
  for d in "" /heads /models /cache /datasets /frames; do
    check "/var/lib/edgetune$d: edgetune:edgetune 750" test "$(in_root stat -c '%U:%G %a' "/var/lib/edgetune$d")" = "edgetune:edgetune 750"
  done
  check "edgetune.service enabled" test -L "$R/etc/systemd/system/multi-user.target.wants/edgetune.service"
  check "edgetune.path enabled" test -L "$R/etc/systemd/system/paths.target.wants/edgetune.path"
  if command -v systemd-analyze >/dev/null; then
    echo "   systemd $(systemd-analyze --version | head -1 | awk '{print $2}') (Raspberry Pi OS Bookworm: 252)"
    in_root systemd-analyze verify edgetune.service edgetune.path > "$W/verify.log" 2>&1 \
      && pass "systemd-analyze verify edgetune.service edgetune.path" \
      || { cat "$W/verify.log"; fail "systemd-analyze verify"; }
    check "verify printed nothing (no unknown keys on this systemd)" test ! -s "$W/verify.log"
    # negative control: verify does catch a broken unit
    sed 's/^Restart=on-failure/Restart=sometimes/; s|^ExecStart=/usr/bin/edgetune|ExecStart=/usr/bin/edgetune-nope|' \
      "$R/lib/systemd/system/edgetune.service" > "$R/tmp/broken.service"
    check "systemd-analyze verify refuses a broken copy" bash -c "! chroot '$R' systemd-analyze verify /tmp/broken.service >/dev/null 2>&1"
    props=$(in_root systemd-analyze security --offline=yes /lib/systemd/system/edgetune.service 2>/dev/null | tail -1 || true)
    [ -n "$props" ] && echo "   systemd-analyze security: $props"
  else
    skip "systemd-analyze verify" "systemd-analyze not found (apt-get install systemd)"
  fi
  check "edgetune runs in the root" bash -c "chroot '$R' edgetune --version >/dev/null"

  # doctor as the service user: no model yet (problem), then install the model
  in_root runuser -u edgetune -- edgetune doctor --no-camera-test --min-free-mb 1 > "$W/doctor1.txt" 2>&1 && rc=0 || rc=$?
  check "doctor exits 1 before the model is installed" test "$rc" = 1
  check "doctor reads /etc/edgetune/config.toml" grep -q '^ok       config: /etc/edgetune/config.toml parses' "$W/doctor1.txt"
  check "doctor: model problem names the fix" grep -q '^problem  model: .*fix: sudo -u edgetune edgetune models install' "$W/doctor1.txt"
  check "doctor: state folder writable by edgetune" grep -q '^ok       state: /var/lib/edgetune is writable' "$W/doctor1.txt"
  in_root runuser -u edgetune -- edgetune models install --from /mnt/shared/models --models-dir /var/lib/edgetune/models > "$W/models.log" 2>&1 \
    && pass "models install --from ... --models-dir /var/lib/edgetune/models (as edgetune)" || { cat "$W/models.log"; fail "models install"; }
  in_root runuser -u edgetune -- edgetune doctor --no-camera-test --min-free-mb 1 --json > "$W/doctor2.json" 2>/dev/null || true
  check "doctor --json: model ok after install" grep -q '"name": "model",' "$W/doctor2.json"
  if command -v python3 >/dev/null; then python3 - "$W/doctor2.json" <<'PY' && pass "doctor --json parses; model ok, head problem (none trained)" || fail "doctor --json content"
import json, sys
j = json.load(open(sys.argv[1]))
st = {c["name"]: c["status"] for c in j["checks"]}
assert j["ok"] is False and st["model"] == "ok" and st["head"] == "problem", st
PY
  else skip "doctor --json content" "python3 not found"; fi
  done_phase

  phase "upgrade, remove, reinstall, purge"
  # state the user made: a head, a photo; and an edited conffile
  echo "a head" > "$R/var/lib/edgetune/heads/head.safetensors"
  mkdir -p "$R/var/lib/edgetune/datasets/main/bees"
  echo "a photo" > "$R/var/lib/edgetune/datasets/main/bees/1.jpg"
  in_root chown -R edgetune:edgetune /var/lib/edgetune
  echo "# edited by the admin" >> "$R/etc/edgetune/config.toml"
  state_sum() { (cd "$R/var/lib/edgetune" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum); }
  before=$(state_sum)
  uid=$(in_root id -u edgetune)
  scripts/package.sh --binary "$BIN" --fast --out "$W/deb2" --version "${VERSION}-2" amd64 >/dev/null
  cp "$W/deb2/edgetune_${VERSION}-2_amd64.deb" "$R/tmp/edgetune2.deb"
  in_root dpkg -i /tmp/edgetune2.deb > "$W/upgrade.log" 2>&1 || { cat "$W/upgrade.log"; fail "upgrade"; }
  check "upgraded to ${VERSION}-2" test "$(in_root dpkg-query -W -f '${Version}' edgetune)" = "${VERSION}-2"
  check "upgrade keeps heads, photos, model" test "$(state_sum)" = "$before"
  check "upgrade keeps the edited config" grep -q "edited by the admin" "$R/etc/edgetune/config.toml"
  in_root dpkg -r edgetune > "$W/remove.log" 2>&1 || { cat "$W/remove.log"; fail "dpkg -r"; }
  check "remove: binary gone" test ! -e "$R/usr/bin/edgetune"
  check "remove: state kept" test "$(state_sum)" = "$before"
  check "remove: edited config kept" grep -q "edited by the admin" "$R/etc/edgetune/config.toml"
  in_root dpkg -i /tmp/edgetune2.deb > "$W/reinstall.log" 2>&1 || { cat "$W/reinstall.log"; fail "reinstall"; }
  check "reinstall: same user id, state kept" test "$(in_root id -u edgetune) $(state_sum)" = "$uid $before"
  check "reinstall: unit enabled again" test -L "$R/etc/systemd/system/multi-user.target.wants/edgetune.service"
  in_root dpkg -P edgetune > "$W/purge.log" 2>&1 || { cat "$W/purge.log"; fail "dpkg -P"; }
  check "purge: /var/lib/edgetune deleted" test ! -e "$R/var/lib/edgetune"
  check "purge: /etc/edgetune deleted" test ! -e "$R/etc/edgetune"
  check "purge: unit symlinks gone" test ! -e "$R/etc/systemd/system/multi-user.target.wants/edgetune.service"
  done_phase
fi

# ------------------------------------------------------------------ 3. ARM packages
phase "arm64 and armhf packages (from the ARM test builds)"
for pair in arm64:aarch64-unknown-linux-gnu:AArch64 armhf:armv7-unknown-linux-gnueabihf:ARM; do
  IFS=: read -r arch triple machine <<<"$pair"
  abin="$CARGO_TARGET_DIR/$triple/debug/edgetune"
  if [ ! -x "$abin" ]; then
    skip "$arch package" "$abin not built (scripts/arm.sh ci builds it; EDGETUNE_ARM=0 skips that)"
    continue
  fi
  st=$([ "$arch" = arm64 ] && echo aarch64-linux-gnu-strip || echo arm-linux-gnueabihf-strip)
  command -v "$st" >/dev/null || { skip "$arch package" "$st not found (binutils of the cross gcc)"; continue; }
  scripts/package.sh --binary "$abin" --fast --out "$W/deb" "$arch" >/dev/null
  adeb="$W/deb/edgetune_${VERSION}-1_${arch}.deb"
  check "$arch: Architecture: $arch" test "$(field "$adeb" Architecture)" = "$arch"
  check "$arch: same files as amd64" test "$(dpkg-deb -c "$adeb" | awk '{print $1, $2, $6}')" = "$listing"
  dpkg-deb -x "$adeb" "$W/x-$arch"
  check "$arch: /usr/bin/edgetune is an ELF for $machine" bash -c "readelf -h '$W/x-$arch/usr/bin/edgetune' | grep -q 'Machine: *$machine'"
  if [ "$arch" = armhf ]; then
    check "armhf: hard-float ABI (Tag_ABI_VFP_args)" bash -c "readelf -A '$W/x-armhf/usr/bin/edgetune' | grep -q 'Tag_ABI_VFP_args: VFP registers'"
    check "armhf: interpreter /lib/ld-linux-armhf.so.3" bash -c "readelf -l '$W/x-armhf/usr/bin/edgetune' | grep -q 'ld-linux-armhf.so.3'"
  else
    check "arm64: interpreter /lib/ld-linux-aarch64.so.1" bash -c "readelf -l '$W/x-arm64/usr/bin/edgetune' | grep -q 'ld-linux-aarch64.so.1'"
  fi
  echo "   $arch: Depends: $(field "$adeb" Depends)"
  check "package.sh refuses a binary of another architecture" bash -c "! scripts/package.sh --binary '$abin' --fast --out '$W/wrong' amd64 2>/dev/null"
done
done_phase

# ------------------------------------------------------------------ 4. the SD card
phase "prepare-sd.sh on a stand-in SD card"
fake_card() { # boot root
  local B=$1 RT=$2
  mkdir -p "$B" "$RT/etc/systemd/system" "$RT/usr/lib" "$RT/var/lib/dpkg"
  # Raspberry Pi OS Bookworm's config.txt (abridged, as flashed)
  cat > "$B/config.txt" <<'EOF'
# For more options and information see
# http://rptl.io/configtxt
# Some settings may impact device functionality. See link above for details

# Uncomment some or all of these to enable the optional hardware interfaces
#dtparam=i2c_arm=on
#dtparam=i2s=on
#dtparam=spi=on

# Enable audio (loads snd_bcm2835)
dtparam=audio=on

# Automatically load overlays for detected cameras
camera_auto_detect=1

# Automatically load overlays for detected DSI displays
display_auto_detect=1

# Enable DRM VC4 V3D driver
dtoverlay=vc4-kms-v3d
max_framebuffers=2

[cm4]
otg_mode=1

[all]
EOF
  echo "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot" > "$B/cmdline.txt"
  printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_CODENAME=bookworm\n' > "$RT/etc/os-release"
  printf 'Package: libc6\nStatus: install ok installed\nArchitecture: %s\nVersion: 2.36-9+rpt2+deb12u4\n\n' "$3" > "$RT/var/lib/dpkg/status"
}
card_sum() { (cd "$1" && find . -print0 | sort -z | xargs -0 stat -c '%n %a %s' | sha256sum; find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum); }
MODELS="$EDGETUNE_SHARED/models"
fake_card "$W/sd/boot" "$W/sd/root" amd64
cmdline_before=$(sha256sum < "$W/sd/boot/cmdline.txt")
echo 'camera = "dir:/var/lib/edgetune/frames"' > "$W/my-config.toml"
sd_args=(--boot "$W/sd/boot" --root "$W/sd/root" --deb "$DEB" --models "$MODELS" --config "$W/my-config.toml")
scripts/prepare-sd.sh "${sd_args[@]}" > "$W/sd1.log" 2>&1 && pass "prepare-sd.sh" || { cat "$W/sd1.log"; fail "prepare-sd.sh"; }
C="$W/sd/boot/config.txt"
check "config.txt: dtparam=i2c_arm=on once" test "$(grep -cx 'dtparam=i2c_arm=on' "$C")" = 1
check "config.txt: dtparam=spi=on once" test "$(grep -cx 'dtparam=spi=on' "$C")" = 1
check "config.txt: camera_auto_detect=1 under [all] in the edgetune block" \
  bash -c "sed -n '/^# >>> edgetune/,/^# <<< edgetune/p' '$C' | grep -qx camera_auto_detect=1"
check "config.txt: the rest is untouched" bash -c "grep -qx 'otg_mode=1' '$C' && grep -qx '#dtparam=i2s=on' '$C'"
check "cmdline.txt untouched" test "$(sha256sum < "$W/sd/boot/cmdline.txt")" = "$cmdline_before"
check "root: i2c-dev loaded at boot" grep -qx i2c-dev "$W/sd/root/etc/modules-load.d/edgetune.conf"
P="$W/sd/root/var/lib/edgetune-firstboot"
check "root: package, model, config in the payload" test -f "$P/edgetune.deb" -a -f "$P/models/mobilenet_v2_1.0_224_features.onnx" -a -f "$P/config.toml"
check "root: model copy matches the manifest sha256" test "$(sha256sum < "$P/models/mobilenet_v2_1.0_224_features.onnx" | cut -d' ' -f1)" = "$(sed -n 's/^sha256 = "\(.*\)"/\1/p' models/mobilenet_v2_1.0_224_features.toml)"
check "root: first-boot unit enabled" test "$(readlink "$W/sd/root/etc/systemd/system/multi-user.target.wants/edgetune-firstboot.service")" = /etc/systemd/system/edgetune-firstboot.service
check "root: first-boot script executable" test -x "$W/sd/root/usr/local/sbin/edgetune-firstboot"
sum1=$(card_sum "$W/sd")
scripts/prepare-sd.sh "${sd_args[@]}" > "$W/sd2.log" 2>&1 || { cat "$W/sd2.log"; fail "prepare-sd.sh (second run)"; }
check "second run leaves the same card (idempotent)" test "$(card_sum "$W/sd")" = "$sum1"
if command -v systemd-analyze >/dev/null && [ "$CHROOT_OK" = 1 ]; then
  cp packaging/firstboot/edgetune-firstboot.service "$W/root/tmp/"
  mkdir -p "$W/root/usr/local/sbin" && ln -sf /bin/true "$W/root/usr/local/sbin/edgetune-firstboot"
  check "systemd-analyze verify edgetune-firstboot.service" bash -c "chroot '$W/root' systemd-analyze verify /tmp/edgetune-firstboot.service"
  rm -f "$W/root/usr/local/sbin/edgetune-firstboot"
fi
# refusals
fake_card "$W/sd-arm/boot" "$W/sd-arm/root" arm64
out=$(scripts/prepare-sd.sh --boot "$W/sd-arm/boot" --root "$W/sd-arm/root" --deb "$DEB" 2>&1 || true)
check "refuses an amd64 package for an arm64 card" grep -q "the card is arm64, .* is amd64" <<<"$out"
mkdir -p "$W/badmodels"; head -c 1000 "$MODELS/mobilenet_v2_1.0_224_features.onnx" > "$W/badmodels/mobilenet_v2_1.0_224_features.onnx"
out=$(scripts/prepare-sd.sh --boot "$W/sd/boot" --root "$W/sd/root" --deb "$DEB" --models "$W/badmodels" 2>&1 || true)
check "refuses a truncated model (sha256)" grep -q "wrong or truncated" <<<"$out"
out=$(scripts/prepare-sd.sh --boot "$W" --root "$W/sd/root" --deb "$DEB" 2>&1 || true)
check "refuses a folder that is not a boot partition" grep -q "not the boot partition" <<<"$out"
check "payload untouched by the refused runs" test "$(card_sum "$W/sd")" = "$sum1"

# a real ext4 root partition image, loop-mounted
if [ "$EDGETUNE_DEPLOY_NS" = 1 ] && command -v mkfs.ext4 >/dev/null; then
  truncate -s 160M "$W/root.img"
  fake_card "$W/img/boot" "$W/img/rootsrc" amd64
  mkfs.ext4 -q -F -L rootfs -d "$W/img/rootsrc" "$W/root.img"
  mkdir -p "$W/img/root"
  if mount -o loop "$W/root.img" "$W/img/root" 2>"$W/loop.err"; then
    scripts/prepare-sd.sh --boot "$W/img/boot" --root "$W/img/root" --deb "$DEB" --models "$MODELS" > "$W/sd3.log" 2>&1 \
      && pass "prepare-sd.sh on a loop-mounted ext4 root image" || { cat "$W/sd3.log"; fail "prepare-sd.sh on ext4"; }
    umount "$W/img/root"
    if command -v debugfs >/dev/null; then
      check "  ... payload and unit are in the image after unmount" bash -c \
        "debugfs -R 'ls -l /var/lib/edgetune-firstboot' '$W/root.img' 2>/dev/null | grep -q edgetune.deb && debugfs -R 'stat /etc/systemd/system/multi-user.target.wants/edgetune-firstboot.service' '$W/root.img' 2>/dev/null | grep -q 'Type: symlink'"
    fi
  else
    skip "loop-mounted ext4 root image" "mount -o loop refused: $(tail -1 "$W/loop.err") (the folder stand-in above covers the script)"
  fi
fi
done_phase

# ------------------------------------------------------------------ first boot, simulated
if [ "$CHROOT_OK" = 1 ]; then
  phase "first boot of the prepared card (in a throw-away root)"
  F="$W/fb"
  make_root "$F" 2>/dev/null || fail "second throw-away root"
  # what prepare-sd.sh put on the card's root partition, copied onto it
  cp -a "$W/sd/root/var/lib/edgetune-firstboot" "$F/var/lib/"
  mkdir -p "$F/usr/local/sbin"
  cp -a "$W/sd/root/usr/local/sbin/edgetune-firstboot" "$F/usr/local/sbin/"
  cp -a "$W/sd/root/etc/systemd/system/edgetune-firstboot.service" "$F/etc/systemd/system/"
  cp -a "$W/sd/root/etc/systemd/system/multi-user.target.wants/edgetune-firstboot.service" "$F/etc/systemd/system/multi-user.target.wants/"
  check "first boot: unit enabled before" test -L "$F/etc/systemd/system/multi-user.target.wants/edgetune-firstboot.service"
  chroot "$F" /usr/local/sbin/edgetune-firstboot > "$W/fb1.log" 2>&1 && pass "first boot script" || { cat "$W/fb1.log"; fail "first boot script"; }
  check "first boot: package installed" test "$(chroot "$F" dpkg-query -W -f '${db:Status-Abbrev}' edgetune)" = "ii "
  check "first boot: config from the card" cmp -s "$W/my-config.toml" "$F/etc/edgetune/config.toml"
  check "first boot: model verified into /var/lib/edgetune/models, owned by edgetune" \
    test "$(chroot "$F" stat -c %U /var/lib/edgetune/models/mobilenet_v2_1.0_224_features.onnx)" = edgetune
  check "first boot: done flag, payload freed" test -f "$F/var/lib/edgetune-firstboot/done" -a ! -e "$F/var/lib/edgetune-firstboot/edgetune.deb"
  check "first boot: unit disabled" test ! -e "$F/etc/systemd/system/multi-user.target.wants/edgetune-firstboot.service"
  chroot "$F" /usr/local/sbin/edgetune-firstboot > "$W/fb2.log" 2>&1 || fail "second boot"
  check "second boot: nothing to do" grep -q "already done" "$W/fb2.log"
  # an interrupted first boot (package in, model not yet) completes on the next
  rm -f "$F/var/lib/edgetune-firstboot/done" "$F/var/lib/edgetune/models/mobilenet_v2_1.0_224_features.onnx"
  cp -a "$W/sd/root/var/lib/edgetune-firstboot/." "$F/var/lib/edgetune-firstboot/"
  chroot "$F" /usr/local/sbin/edgetune-firstboot > "$W/fb3.log" 2>&1 || { cat "$W/fb3.log"; fail "re-run after an interruption"; }
  check "re-run after an interruption: package kept, model installed" bash -c \
    "grep -q 'already installed' '$W/fb3.log' && test -f '$F/var/lib/edgetune/models/mobilenet_v2_1.0_224_features.onnx'"
  done_phase
else
  skip "first boot simulation" "no throw-away root (see above)"
fi

echo "== [deploy] $( [ $FAIL = 0 ] && echo passed || echo FAILED ) in $(( $(date +%s) - t0 )) s"
exit $FAIL
