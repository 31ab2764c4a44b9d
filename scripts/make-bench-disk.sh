#!/usr/bin/env bash
# Builds (once, cached) a realistic benchmark disk like a Debian cloud image, without root:
# a GPT disk (BIOS boot partition, FAT EFI system partition, ext4 root) whose root file system
# is made by `mkfs.ext4 -d` from real files copied from this machine (/etc, /usr/bin,
# /usr/sbin, /usr/lib, /usr/share ... up to BENCH_FILL_MB MiB: binaries, libraries, docs),
# the rest of the disk free (zero) space. Then the same disk as qcow2 made by qemu-img:
# zlib-compressed, zstd-compressed, uncompressed, and a streamOptimized vmdk.
#
# Usage: scripts/make-bench-disk.sh [DIR]   (default $CARGO_TARGET_DIR/bench-disk, else
#   target/bench-disk); prints DIR.
#   BENCH_DISK_MB (default 1740, ~1.7 GiB), BENCH_FILL_MB (default 900: ~300 MiB as zlib qcow2)
# Files in DIR: disk.raw plain.qcow2 zlib.qcow2 zstd.qcow2 stream.vmdk (never commit them).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-${CARGO_TARGET_DIR:-target}/bench-disk}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
size_mb=${BENCH_DISK_MB:-1740}
fill_mb=${BENCH_FILL_MB:-900}
if [ ! -f "$dir/disk.raw" ]; then
  tree="$dir/tree"
  rm -rf "$tree" "$dir/list"; mkdir -p "$tree"
  # Regular files, symlinks and directories in a fixed order (sorted per source) until the
  # budget is used up (hard links counted once): a Debian-like root, not one kind of file.
  for src in etc usr/bin usr/sbin usr/lib/x86_64-linux-gnu usr/lib/python3 usr/share/doc \
             usr/share/man usr/share/locale usr/share/perl usr/share/i18n usr/lib usr/share; do
    [ -d "/$src" ] && (cd / && find "$src" -xdev \( -type f -readable -o -type l -o -type d \) \
      -printf '%s\t%i\t%p\n' 2>/dev/null | LC_ALL=C sort -t$'\t' -k3)
  done | awk -F'\t' -v budget=$((fill_mb << 20)) '
      !seen[$3]++ && sum + $1 <= budget { if (!ino[$2]++) sum += $1; print $3 }' \
      > "$dir/list"
  (cd / && tar --no-recursion -cf - -T "$dir/list" 2>/dev/null || true) |
    tar -xf - -C "$tree" 2>/dev/null || true
  mkdir -p "$tree"/{boot,dev,proc,sys,run,tmp,var/log,home,root,mnt}
  # Layout like Debian's cloud images: 1 MiB alignment, BIOS boot, ESP, root to the end.
  raw="$dir/disk.raw.tmp"
  rm -f "$raw"; truncate -s "${size_mb}M" "$raw"
  sfdisk -q "$raw" >/dev/null <<EOF
label: gpt
start=2048, size=6144, type=21686148-6449-6E6F-744E-656564454649, name="bios"
start=8192, size=253952, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="esp"
start=262144, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"
EOF
  esp="$dir/esp.tmp"; rm -f "$esp"
  mkfs.vfat -C -n EFI "$esp" $((253952 / 2)) >/dev/null
  mkdir -p "$dir/efi/EFI/debian"
  cp /usr/lib/x86_64-linux-gnu/libc.so.6 "$dir/efi/EFI/debian/grubx64.efi" 2>/dev/null || true
  mcopy -s -i "$esp" "$dir/efi/EFI" ::/
  dd if="$esp" of="$raw" bs=512 seek=8192 conv=notrunc,sparse status=none
  root_sectors=$(( size_mb * 2048 - 262144 - 34 ))
  mkfs.ext4 -q -F -L root -E offset=$((262144 * 512)) -d "$tree" "$raw" \
    $(( root_sectors / 8 * 4 ))k >/dev/null 2>&1 || {
    echo "mkfs.ext4 -d failed (tree too large for ${size_mb} MiB?)" >&2; exit 1; }
  mv "$raw" "$dir/disk.raw"
  rm -rf "$tree" "$esp" "$dir/efi" "$dir/list"
fi
mk() { [ -f "$dir/$1" ] || { qemu-img convert -q "${@:2}" "$dir/disk.raw" "$dir/$1.tmp" && mv "$dir/$1.tmp" "$dir/$1"; }; }
mk plain.qcow2 -O qcow2
mk zlib.qcow2 -c -O qcow2 -o compression_type=zlib
mk zstd.qcow2 -c -O qcow2 -o compression_type=zstd
mk stream.vmdk -O vmdk -o subformat=streamOptimized
echo "$dir"
