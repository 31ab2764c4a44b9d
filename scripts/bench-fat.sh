#!/usr/bin/env bash
# FAT32 reader benchmark, side by side in one run: `guestctl ls -R` (the release CLI) vs
# sleuthkit's `fls -r -p`, and `guestctl checksum -R` vs host sha256sum over the source tree.
# Usage: scripts/bench-fat.sh [WORKDIR]     (default: a temp dir; keeps nothing)
# The image: a FAT32 volume of /usr/share/doc and /usr/share/man (a few thousand files), made
# with mkfs.fat + mcopy (no root).
set -euo pipefail
cd "$(dirname "$0")/.."
for t in fls mkfs.fat mcopy bc; do
  command -v "$t" >/dev/null || { echo "needs $t (sleuthkit, dosfstools, mtools, bc)" >&2; exit 1; }
done
work=${1:-$(mktemp -d)}
[ -n "${1:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
cargo build -q --release --bin guestctl
gc=${CARGO_TARGET_DIR:-target}/release/guestctl

img=$work/bench-fat32.img
src=$work/src
if [ ! -f "$img" ]; then
  rm -rf "$src"; mkdir -p "$src"
  # Regular files only (FAT has no symlinks), names as they are.
  # FAT-safe names only (no :*?"<>|\ , unique ignoring case), so the image holds exactly the tree.
  (cd /usr/share && find doc man -type f -size -2M |
    awk '!/[:*?"<>|\\]/ && !/[. ]$/ { k = tolower($0); if (!(k in seen) && n < 6000) { seen[k]; n++; print } }') > "$work/list"
  (cd /usr/share && tar -cf - -T "$work/list") | (cd "$src" && tar -xf -)
  mb=$(( $(du -sm "$src" | cut -f1) * 2 + 64 ))
  mkfs.fat -C -F 32 "$img" $((mb * 1024)) >/dev/null
  MTOOLS_SKIP_CHECK=1 mcopy -D o -s -i "$img" "$src/doc" "$src/man" ::/
fi
cat "$img" > /dev/null  # page cache
files=$(find "$src" -type f | wc -l)

now() { date +%s.%N; }
best() {  # best of $RUNS (default 3) wall-clock runs of "$@", stdout discarded
  local b=999999 s e t
  for _ in $(seq 1 "${RUNS:-3}"); do
    s=$(now); "$@" > /dev/null; e=$(now)
    t=$(echo "$e - $s" | bc -l); b=$(echo "if ($t < $b) $t else $b" | bc -l)
  done
  printf '%.4f' "$b"
}
ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }

# Same answers first: the checksums must equal the host's over the source tree.
host_sums() { (cd "$src" && find . -type f -exec sha256sum {} + | sort -k2); }
ours=$($gc checksum -R "$img" / | sort -k2 | sha256sum)
want=$(host_sums | sha256sum)
[ "$ours" = "$want" ] || { echo "guestctl checksum -R differs from sha256sum over the source tree" >&2; exit 1; }

echo "image: $(du -h --apparent-size "$img" | cut -f1) FAT32, $files files"
t_ls=$(best "$gc" ls -R "$img" /)
t_fls=$(best fls -r -p "$img")
echo "ls -R    guestctl ls -R ${t_ls}s | fls -r -p ${t_fls}s | ratio fls/guestctl $(ratio "$t_fls" "$t_ls")"
t_sum=$(best "$gc" checksum -R "$img" /)
t_host=$(best host_sums)
echo "checksum guestctl checksum -R ${t_sum}s | host sha256sum ${t_host}s | ratio host/guestctl $(ratio "$t_host" "$t_sum")"
