#!/usr/bin/env bash
# Conversion benchmark: guestctl vs qemu-img (with its best options, -m 8 -W), same images,
# same run, best of N, as ratios; every output is checked with `qemu-img compare`.
# Usage: scripts/bench-convert.sh [RUNS]   (default 3; images from scripts/bench-data.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
cargo build --release -q -p guestctl
gc=${CARGO_TARGET_DIR:-$PWD/target}/release/guestctl
data=$(scripts/bench-data.sh)
out=$(mktemp -d "$data/out.XXXX")
trap 'rm -rf "$out"' EXIT
# A backing chain for the flatten case: disk.raw <- mid (1 GiB of writes spread) <- top.
if [ ! -f "$data/chain-top.qcow2" ]; then
  qemu-img create -q -f qcow2 -b plain.qcow2 -F qcow2 "$data/chain-mid.qcow2"
  qemu-io -f qcow2 -c "write -P 0x5a 100M 64M" -c "write -z 300M 32M" "$data/chain-mid.qcow2" >/dev/null
  qemu-img create -q -f qcow2 -b chain-mid.qcow2 -F qcow2 "$data/chain-top.qcow2"
  qemu-io -f qcow2 -c "write -P 0xa5 120M 8M" -c "write -P 0x33 900M 16M" "$data/chain-top.qcow2" >/dev/null
fi
timed() { # wall time of one run of "$@"; its peak RSS (KB) in $out/rss
  rm -f "$out/o"
  /usr/bin/time -o "$out/t" -f '%e %M' "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; exit 1; }
  local t; t=$(tail -1 "$out/t")
  echo "${t#* }" > "$out/rss"
  printf '%s' "${t% *}"
}
min() { if [ -z "$1" ] || [ "$(echo "$2 < $1" | bc -l)" = 1 ]; then printf '%s' "$2"; else printf '%s' "$1"; fi; }
mb() { echo $(( ($(stat -c "%b * %B" "$1") + 524287) / 1048576 )); }  # allocated, not apparent
# The two tools take turns, run after run, so that a noisy neighbour slows both alike.
printf '%-28s %10s %10s %7s %12s %14s\n' case qemu-img guestctl ratio guestctl-RSS "size q/g (MB)"
row() { # name, src, qemu-img args..., --, guestctl args...
  local name=$1 src=$2; shift 2
  local qa=() ga=()
  while [ "$1" != "--" ]; do qa+=("$1"); shift; done; shift
  ga=("$@")
  local q="" g="" grss qsize gsize
  for _ in $(seq "$runs"); do
    q=$(min "$q" "$(timed qemu-img convert -m 8 -W "${qa[@]}" "$src" "$out/o")"); qsize=$(mb "$out/o")
    g=$(min "$g" "$(timed "$gc" convert --no-progress --force "$src" "$out/o" "${ga[@]}")"); grss=$(cat "$out/rss")
    gsize=$(mb "$out/o")
  done
  qemu-img compare -q "$src" "$out/o" || { echo "MISMATCH in $name" >&2; exit 1; }
  printf '%-28s %9ss %9ss %7.2f %9s MB %14s\n' "$name" "$q" "$g" "$(echo "$g / $q" | bc -l)" "$((grss / 1024))" "$qsize/$gsize"
}
row "qcow2(zlib) -> raw" "$data/zlib.qcow2" -O raw -- -O raw
row "raw -> qcow2" "$data/disk.raw" -O qcow2 -- -O qcow2
row "raw -> qcow2 zlib" "$data/disk.raw" -c -O qcow2 -- -O qcow2 -c
row "raw -> qcow2 zstd" "$data/disk.raw" -c -O qcow2 -o compression_type=zstd -- -O qcow2 --compress=zstd
row "vmdk stream -> qcow2" "$data/stream.vmdk" -O qcow2 -- -O qcow2
row "qcow2 chain -> flat qcow2" "$data/chain-top.qcow2" -O qcow2 -- -O qcow2
row "raw -> vmdk" "$data/disk.raw" -O vmdk -- -O vmdk
row "raw -> vmdk stream" "$data/disk.raw" -O vmdk -o subformat=streamOptimized -- -O vmdk --subformat streamOptimized
row "qcow2(zlib) -> vmdk stream" "$data/zlib.qcow2" -O vmdk -o subformat=streamOptimized -- -O vmdk --subformat streamOptimized
echo "(ratio = guestctl / qemu-img wall time, best of $runs runs taken in turns; $(nproc) cores; outputs verified with qemu-img compare)"
echo
# Scaling: guestctl with 1 and 2 worker threads; throughput = guest (virtual) bytes / wall time.
size_mb=$(( $(stat -c %s "$data/disk.raw") / 1048576 ))
printf '%-28s %12s %12s %12s\n' "case (MB/s of guest data)" qemu-img "guestctl -j1" "guestctl -j2"
trow() { # name, src, qemu-img args..., --, guestctl args...
  local name=$1 src=$2; shift 2
  local qa=() ga=()
  while [ "$1" != "--" ]; do qa+=("$1"); shift; done; shift
  ga=("$@")
  local q="" t1="" t2=""
  for _ in $(seq "$runs"); do
    q=$(min "$q" "$(timed qemu-img convert -m 8 -W "${qa[@]}" "$src" "$out/o")")
    t1=$(min "$t1" "$(timed "$gc" convert --no-progress --force -j 1 "$src" "$out/o" "${ga[@]}")")
    t2=$(min "$t2" "$(timed "$gc" convert --no-progress --force -j 2 "$src" "$out/o" "${ga[@]}")")
  done
  qemu-img compare -q "$src" "$out/o" || { echo "MISMATCH in $name" >&2; exit 1; }
  printf '%-28s %12.0f %12.0f %12.0f\n' "$name" "$(echo "$size_mb / $q" | bc -l)" \
    "$(echo "$size_mb / $t1" | bc -l)" "$(echo "$size_mb / $t2" | bc -l)"
}
trow "qcow2(zlib) -> raw" "$data/zlib.qcow2" -O raw -- -O raw
trow "raw -> qcow2" "$data/disk.raw" -O qcow2 -- -O qcow2
trow "raw -> qcow2 zlib" "$data/disk.raw" -c -O qcow2 -- -O qcow2 -c
trow "raw -> qcow2 zstd" "$data/disk.raw" -c -O qcow2 -o compression_type=zstd -- -O qcow2 --compress=zstd
trow "vmdk stream -> qcow2" "$data/stream.vmdk" -O qcow2 -- -O qcow2
trow "raw -> vmdk stream" "$data/disk.raw" -O vmdk -o subformat=streamOptimized -- -O vmdk --subformat streamOptimized
echo "(${size_mb} MiB virtual disk; best of $runs)"
