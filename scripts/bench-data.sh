#!/usr/bin/env bash
# Builds the benchmark images once (cached): a 1 GiB raw disk holding an ext4 file system full
# of real files (copied from this machine's /usr) plus free (zero) space, and that disk as
# qcow2 (plain, zlib, zstd) and vmdk streamOptimized, all made by qemu-img.
# Usage: scripts/bench-data.sh [DIR]   (default target/bench-data); prints DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-target/bench-data}
mkdir -p "$dir"
size_mb=${BENCH_DISK_MB:-1024}
fill_mb=${BENCH_FILL_MB:-600}
if [ ! -f "$dir/disk.raw" ]; then
  tree="$dir/tree"
  rm -rf "$tree"; mkdir -p "$tree"
  # Real files, up to about $fill_mb MiB: shared data, libraries, binaries.
  budget=$((fill_mb * 1024))
  for src in /usr/share/doc /usr/share/locale /usr/bin /usr/share/man /usr/lib/x86_64-linux-gnu /usr/lib/python3 /usr/share; do
    [ -d "$src" ] || continue
    used=$(du -sk "$tree" | cut -f1)
    [ "$used" -lt "$budget" ] || break
    ( cd / && find "${src#/}" -xdev \( -type f -o -type d -o -type l \) -print0 2>/dev/null |
        head -z -n 200000 | tar --null -cf - --no-recursion -T - 2>/dev/null ) |
      tar -xf - -C "$tree" 2>/dev/null || true
    # Trim to the budget by dropping whole top-level dirs if we overshot badly.
  done
  truncate -s "${size_mb}M" "$dir/disk.raw.tmp"
  mkfs.ext4 -q -F -d "$tree" -L bench "$dir/disk.raw.tmp" 2>/dev/null || {
    echo "mkfs.ext4 -d failed (tree too large for ${size_mb} MiB?)" >&2; exit 1; }
  mv "$dir/disk.raw.tmp" "$dir/disk.raw"
  rm -rf "$tree"
fi
mk() { [ -f "$dir/$1" ] || { qemu-img convert -q "${@:2}" "$dir/disk.raw" "$dir/$1.tmp" && mv "$dir/$1.tmp" "$dir/$1"; }; }
mk plain.qcow2 -O qcow2
mk zlib.qcow2 -c -O qcow2 -o compression_type=zlib
mk zstd.qcow2 -c -O qcow2 -o compression_type=zstd
mk stream.vmdk -O vmdk -o subformat=streamOptimized
echo "$dir"
