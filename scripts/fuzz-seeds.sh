#!/usr/bin/env bash
# Makes small seed images for the ext fuzz targets (fuzz/corpus/ext, fuzz/corpus/ext_journal).
# Usage: scripts/fuzz-seeds.sh
# Then:  cd fuzz && cargo +nightly fuzz run ext corpus/ext -- -max_len=262144 -max_total_time=1200
set -euo pipefail
cd "$(dirname "$0")/.."
out=fuzz/corpus/ext
jout=fuzz/corpus/ext_journal
mkdir -p "$out" "$jout"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
src=$tmp/src
mkdir -p "$src/d/e"
printf 'hello\n' > "$src/a"
head -c 3000 /dev/urandom > "$src/d/blob"
ln -s a "$src/short"
ln -s "$(printf '/x%.0s' $(seq 1 40))" "$src/long"
for i in $(seq 1 30); do : > "$src/d/e/f$i"; done
setfattr -n user.k -v v "$src/a" 2>/dev/null || true
n=0
for spec in "ext2 -b 1024" "ext3 -b 1024 -J size=1" "ext4 -b 1024 -O ^has_journal" \
            "ext4 -b 1024 -O ^has_journal,inline_data" "ext4 -b 1024 -O ^has_journal,^metadata_csum" \
            "ext4 -b 1024 -O ^has_journal,^extents,^64bit"; do
  set -- $spec
  kind=$1; shift
  n=$((n+1))
  mkfs."$kind" -q -F -N 64 "$@" -d "$src" "$tmp/img" 256K >/dev/null 2>&1 || { echo "skip: $spec"; continue; }
  cp "$tmp/img" "$out/seed-$n-$kind.img"
done
# A journal with pending transactions, for the journal target.
mkfs.ext4 -q -F -b 1024 -J size=1 "$tmp/j.img" 4M
printf 'jo\njw -b 100,101 /dev/null\njc\n' > "$tmp/cmds" 2>/dev/null
debugfs -w -f "$tmp/cmds" "$tmp/j.img" >/dev/null 2>&1 || true
debugfs -R "dump <8> $jout/seed-journal.bin" "$tmp/j.img" >/dev/null 2>&1 || true
ls -la "$out" "$jout"
