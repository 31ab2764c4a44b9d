#!/usr/bin/env bash
# Format benchmark: guestctl vs qemu-img reading and writing each image format, on the 1 GiB
# ext4 disk of scripts/bench-data.sh (real files from /usr, free space), in the same run,
# the two tools taking turns, run after run; medians and ratios (guestctl / qemu-img wall
# time: below 1 is faster). Every output is checked with `qemu-img compare`.
# Usage: scripts/bench-formats.sh [RUNS] [FORMAT...]   (default 5 runs; formats: vhdx)
# BENCH_OUT=DIR writes the outputs there (e.g. /dev/shm: the host disk's writeback, which
# stalls whichever tool crosses the dirty limit, then stays out of the numbers).
# One function per format (bench_<format>); add a format by adding a function.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
shift || true
formats=("$@")
[ ${#formats[@]} -gt 0 ] || formats=(vhdx)
cargo build --release -q -p guestctl
gc=${CARGO_TARGET_DIR:-$PWD/target}/release/guestctl
data=$(scripts/bench-data.sh)
out=$(mktemp -d "${BENCH_OUT:-$data}/fmt.XXXX")
trap 'rm -rf "$out"' EXIT

secs() { # wall time of one run of "$@"
  rm -f "$out/o"
  /usr/bin/time -o "$out/t" -f '%e' "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; exit 1; }
  tail -1 "$out/t"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
printf '%-34s %10s %10s %7s\n' case qemu-img guestctl ratio
# row NAME SRC [qemu-img convert args] -- [guestctl convert args]: both write $out/o.
row() {
  local name=$1 src=$2; shift 2
  local qa=() ga=()
  while [ "$1" != "--" ]; do qa+=("$1"); shift; done; shift
  ga=("$@")
  local qs=() gs=()
  for _ in $(seq "$runs"); do
    qs+=("$(secs qemu-img convert "${qa[@]}" "$src" "$out/o")")
    gs+=("$(secs "$gc" convert --no-progress --force "$src" "$out/o" "${ga[@]}")")
  done
  qemu-img compare -q "$src" "$out/o" || { echo "MISMATCH in $name" >&2; exit 1; }
  local q g
  q=$(median "${qs[@]}"); g=$(median "${gs[@]}")
  printf '%-34s %9ss %9ss %7.2f\n' "$name" "$q" "$g" "$(echo "$g / $q" | bc -l)"
}

bench_vhdx() {
  local v=$data/disk.vhdx
  [ -f "$v" ] || { qemu-img convert -q -O vhdx "$data/disk.raw" "$v.tmp" && mv "$v.tmp" "$v"; }
  local f=$data/disk-fixed.vhdx
  [ -f "$f" ] || { qemu-img convert -q -O vhdx -o subformat=fixed "$data/disk.raw" "$f.tmp" && mv "$f.tmp" "$f"; }
  row "vhdx dynamic -> raw (read)" "$v" -O raw -- -O raw
  row "vhdx fixed -> raw (read)" "$f" -O raw -- -O raw
  row "raw -> vhdx dynamic (write)" "$data/disk.raw" -O vhdx -- -O vhdx
  row "raw -> vhdx fixed (write)" "$data/disk.raw" -O vhdx -o subformat=fixed -- -O vhdx --subformat fixed
  row "qcow2 -> vhdx dynamic (write)" "$data/plain.qcow2" -O vhdx -- -O vhdx
}

for f in "${formats[@]}"; do
  "bench_$f"
done
echo "(median of $runs runs taken in turns; $(nproc) cores; $(( $(stat -c %s "$data/disk.raw") >> 20 )) MiB ext4 disk; outputs in ${BENCH_OUT:-$data}, verified with qemu-img compare)"
