#!/usr/bin/env bash
# Builds ferry's guest boot image: Debian's cloud kernel and an initramfs of
# busybox-static, the virtio modules and ferry's guest agent (a static
# binary built from this tree). Debian packages only; nothing is downloaded
# when a VM boots.
#
# The image is cached outside the source tree, in a directory named by a hash
# of its inputs (this script, the agent binary, the two package versions):
#   ${FERRY_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry/guest}/<hash>/{vmlinuz,initrd.img}
# The last line on stdout is that directory; everything else goes to stderr.
# Running it again is cheap (only cargo's up-to-date check), and runs at the
# same time wait for each other on a lock file.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${FERRY_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry/guest}
target=x86_64-unknown-linux-gnu
kernel_meta=linux-image-cloud-amd64
# In load order: each needs only those before it. The net ones serve VMs
# started with virtio NICs; the button and evdev ones the ACPI power button.
modules="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
virtio_blk virtio_console failover net_failover virtio_net button evdev"

say() { echo "image.sh: $*" >&2; }

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

# The agent, static so that it needs nothing from the initramfs.
say "building ferry-guest-agent (static)"
(cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --quiet -p ferry-guest --target "$target") >&2
agent="${CARGO_TARGET_DIR:-$repo/target}/$target/release/ferry-guest-agent"

# Package versions from apt's lists; read the lists once if there are none.
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }'; }
if [ -z "$(candidate busybox-static)" ] || [ "$(candidate busybox-static)" = "(none)" ]; then
    say "apt has no package lists: apt-get update"
    apt-get update -qq >&2
fi
kernel_pkg=$(apt-cache depends "$kernel_meta" | awk '/Depends: linux-image-/ { print $2; exit }')
[ -n "$kernel_pkg" ] || { say "apt knows no kernel behind $kernel_meta"; exit 1; }
kernel_ver=$(candidate "$kernel_pkg")
busybox_ver=$(candidate busybox-static)

key=$( { sha256sum "${BASH_SOURCE[0]}" "$agent" | cut -d' ' -f1
         echo "$kernel_pkg=$kernel_ver busybox-static=$busybox_ver"; } | sha256sum | cut -c1-16)
out="$cache/$key"
if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ]; then
    touch "$out" # the newest in use, for the pruning below
    say "cached: $kernel_pkg $kernel_ver, busybox-static $busybox_ver"
    echo "$out"
    exit 0
fi

work=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The packages, kept across builds by their versioned file names.
debs="$cache/debs"
mkdir -p "$debs"
fetch() { # package version
    local file
    file=$(ls "$debs/$1_"*"$(echo "$2" | sed 's/.*://')_amd64.deb" 2>/dev/null | head -n1 || true)
    if [ -z "$file" ]; then
        say "apt-get download $1=$2"
        # apt's sandbox user cannot write here; the download runs as us.
        (cd "$debs" && apt-get download -q "$1=$2" 2>&1 | grep -v "unsandboxed" >&2 || true)
        file=$(ls "$debs/$1_"*"$(echo "$2" | sed 's/.*://')_amd64.deb" 2>/dev/null | head -n1 || true)
        [ -n "$file" ] || { say "could not download $1=$2"; exit 1; }
    fi
    echo "$file"
}
kernel_deb=$(fetch "$kernel_pkg" "$kernel_ver")
busybox_deb=$(fetch busybox-static "$busybox_ver")
dpkg-deb -x "$kernel_deb" "$work/kernel"
dpkg-deb -x "$busybox_deb" "$work/busybox"
busybox="$work/busybox/bin/busybox"

root="$work/root"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,lib/modules}
cp "$busybox" "$root/bin/busybox"
cp "$agent" "$root/sbin/ferry-guest-agent"
if command -v strip >/dev/null; then strip "$root/sbin/ferry-guest-agent"; fi
moddir=$(echo "$work"/kernel/lib/modules/*)
for m in $modules; do
    ko=$(find "$moddir/kernel" -name "$m.ko" | head -n1)
    [ -n "$ko" ] || { say "the kernel has no module $m"; exit 1; }
    cp "$ko" "$root/lib/modules/"
done

cat >"$root/init" <<EOF
#!/bin/busybox sh
# ferry's guest: mount the kernel's file systems, load the virtio modules, run
# the agent; power off whenever it returns.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
for m in $(echo $modules); do
    insmod /lib/modules/\$m.ko || echo "init: module \$m did not load"
done
/sbin/ferry-guest-agent
echo "init: ferry-guest-agent exited (\$?); powering off"
sync
poweroff -f
EOF
chmod 755 "$root/init"

(cd "$root" && find . | sort | "$busybox" cpio -o -H newc 2>/dev/null) | gzip -9n >"$work/initrd.img"
cp "$(echo "$work"/kernel/boot/vmlinuz-*)" "$work/vmlinuz"

mkdir -p "$work/image"
mv "$work/vmlinuz" "$work/initrd.img" "$work/image/"
rm -rf "$out"
mv "$work/image" "$out"
# The cache stays small: the three images last built or used (QEMU reads an
# image only when a VM starts), and only the packages of this one.
hex16='[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'
ls -1dt "$cache"/$hex16$hex16/ 2>/dev/null | tail -n +4 | xargs -r rm -rf
find "$debs" -name '*.deb' ! -path "$kernel_deb" ! -path "$busybox_deb" -delete
say "built: $kernel_pkg $kernel_ver, busybox-static $busybox_ver, initramfs $(stat -c %s "$out/initrd.img") bytes"
echo "$out"
