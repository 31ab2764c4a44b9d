#!/usr/bin/env bash
# ext2/3/4 reader benchmark, side by side in one run with sleuthkit (fls -r, icat) and the
# ext4-view crate, on the same image from the page cache.
# Usage: scripts/bench-ext.sh [WORKDIR]     (default: a temp dir; keeps nothing)
# The image: /usr/share/man (~24k files, the metadata walk) plus 1 GiB in four random
# 256 MiB files (the content read), made with mkfs.ext4 -d.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v fls >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -qq sleuthkit >/dev/null; }
command -v fls >/dev/null || { echo "needs sleuthkit (fls, icat): apt-get install sleuthkit" >&2; exit 1; }
work=${1:-$(mktemp -d)}
[ -n "${1:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
cargo build -q --release -p guestctl-fs --example ext_bench
cargo build -q --release --bin guestctl
bin=target/release/examples/ext_bench
gc=target/release/guestctl

img=$work/bench-ext4.img
if [ ! -f "$img" ]; then
  src=$work/src
  rm -rf "$src"; mkdir -p "$src/big"
  cp -a /usr/share/man "$src/man"
  for i in 1 2 3 4; do head -c 256M /dev/urandom > "$src/big/blob$i"; done
  mkfs.ext4 -q -F -d "$src" "$img" 2G
  rm -rf "$src"
fi
cat "$img" > /dev/null  # page cache

now() { date +%s.%N; }
best() {  # best of $RUNS (default 3) wall-clock runs of "$@", stdout discarded
  local b=999999 s e t
  for _ in $(seq 1 "${RUNS:-3}"); do
    s=$(now); "$@" > /dev/null; e=$(now)
    t=$(echo "$e - $s" | bc -l); b=$(echo "if ($t < $b) $t else $b" | bc -l)
  done
  printf '%.4f' "$b"
}
ratio() { printf '%.1f' "$(echo "$1 / $2" | bc -l)"; }

nodes=$($bin walk "$img" | sed 's/.*nodes=\([0-9]*\).*/\1/')
echo "image: $(du -h --apparent-size "$img" | cut -f1), $nodes nodes"
t_ours=$(best $bin walk "$img")
t_nov=$(best $bin walk-noverify "$img")
t_fls=$(best fls -r -p "$img")
t_view=$(RUNS=1 best $bin view-walk "$img")  # ~50 s: once
echo "walk   guestctl ${t_ours}s | fls -r -p ${t_fls}s | ext4-view ${t_view}s | guestctl is $(ratio "$t_fls" "$t_ours")x faster than fls, $(ratio "$t_view" "$t_ours")x faster than ext4-view"
t_ls=$(best $gc ls -R "$img" /)
echo "ls -R  guestctl ls -R ${t_ls}s (the CLI, output to /dev/null) | fls -r -p ${t_fls}s | $(ratio "$t_fls" "$t_ls")x faster"
echo "csum   walk with checksums verified ${t_ours}s, without ${t_nov}s: verification costs $(ratio "$t_ours" "$t_nov")x"

out=$($bin read "$img")
bytes=$(echo "$out" | sed 's/.*bytes=\([0-9]*\).*/\1/')
t_read=$(best $bin read "$img")
t_vread=$(RUNS=1 best $bin view-read "$img")
echo "read   guestctl ${t_read}s ($(printf '%.2f' "$(echo "$bytes / $t_read / 1000000000" | bc -l)") GB/s, one thread, $bytes bytes) | ext4-view ${t_vread}s | $(ratio "$t_vread" "$t_read")x faster"

inodes=$($bin list "$img" | awk -F'\t' '$2 >= 1048576 {print $1}' | tr '\n' ' ')
icat_all() { for i in $inodes; do icat "$img" "$i"; done; }
t_icat=$(best icat_all)
t_ri=$(best $bin read-inodes "$img" $inodes)
echo "icat   files >= 1 MiB ($(echo $inodes | wc -w)): guestctl ${t_ri}s | icat ${t_icat}s | $(ratio "$t_icat" "$t_ri")x faster"
