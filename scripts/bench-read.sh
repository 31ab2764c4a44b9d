#!/usr/bin/env bash
# Reading benchmark: guestctl vs `qemu-img convert -O raw`, same images, same run, as ratios.
# Each tool converts each image to a raw file in the same directory; best of N runs (page
# cache warm for both). guestctl is timed single-threaded (-j1, the issue's target) and with
# its default thread count.
# Usage: scripts/bench-read.sh [RUNS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
cargo build --release -q
g=target/release/guestctl
data=$(scripts/bench-data.sh)
out=$(mktemp -d "$data/out.XXXX")
trap 'rm -rf "$out"' EXIT

best() { # best wall time of $runs runs of "$@" (output file removed between runs)
  local b="" t0 t1 t
  for _ in $(seq "$runs"); do
    rm -f "$out/o.raw"
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; exit 1; }; t1=$(date +%s.%N)
    t=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$b" ] || [ "$(echo "$t < $b" | bc -l)" = 1 ]; then b=$t; fi
  done
  printf '%.3f' "$b"
}
printf '%-14s %9s %12s %12s %10s %10s\n' image size qemu-img guestctl-j1 ratio-j1 ratio-jN
for img in ${BENCH_IMAGES:-plain.qcow2 zlib.qcow2 zstd.qcow2 stream.vmdk}; do
  f="$data/$img"
  q=$(best qemu-img convert -O raw "$f" "$out/o.raw")
  qsum=$(sha256sum < "$out/o.raw" | cut -c1-16)
  g1=$(best "$g" convert -j1 --no-progress "$f" "$out/o.raw" -O raw)
  gsum=$(sha256sum < "$out/o.raw" | cut -c1-16)
  [ "$qsum" = "$gsum" ] || { echo "MISMATCH on $img: qemu $qsum guestctl $gsum" >&2; exit 1; }
  gn=$(best "$g" convert --no-progress "$f" "$out/o.raw" -O raw)
  printf '%-14s %9s %11ss %11ss %10.2f %10.2f\n' "$img" "$(du -h "$f" | cut -f1)" "$q" "$g1" \
    "$(echo "$g1 / $q" | bc -l)" "$(echo "$gn / $q" | bc -l)"
done
echo "(ratio = guestctl time / qemu-img time; < 1.00 means guestctl is faster; jN = $(nproc) threads; outputs verified identical by sha256)"
