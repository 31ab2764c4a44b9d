#!/usr/bin/env bash
# VHD and VDI benchmark: guestctl vs qemu-img (-m 8 -W, its fastest convert options) reading
# each format to raw and writing each format from raw, on the bench disk of
# scripts/bench-data.sh (1 GiB ext4 full of real files, plus free space). The two tools take
# turns run after run; medians of N runs, as ratios; every output is checked with
# `qemu-img compare`.
# Usage: scripts/bench-formats.sh [RUNS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
cargo build --release -q -p guestctl
target=${CARGO_TARGET_DIR:-$PWD/target}
gc=$target/release/guestctl
data=$(scripts/bench-data.sh "$target/bench-data")
out=$(mktemp -d "$data/out.XXXX")
trap 'rm -rf "$out"' EXIT
mk() { [ -f "$data/$1" ] || { qemu-img convert -q "${@:2}" "$data/disk.raw" "$data/$1.tmp" && mv "$data/$1.tmp" "$data/$1"; }; }
mk fixed.vhd -O vpc -o subformat=fixed,force_size=on
mk dynamic.vhd -O vpc -o subformat=dynamic,force_size=on
mk dynamic.vdi -O vdi
mk static.vdi -O vdi -o static=on
timed() { # wall time of one run of "$@"
  # The previous run's output is removed and its writeback finished before the clock starts,
  # so neither tool pays for the other's dirty pages (unsynced, the same input took 0.19 s
  # to 0.95 s from run to run).
  rm -f "$out/o"
  sync
  /usr/bin/time -o "$out/t" -f '%e' "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; exit 1; }
  tail -1 "$out/t"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
printf '%-24s %10s %10s %7s\n' case qemu-img guestctl ratio
row() { # name, qemu-img format of the output (for compare), src, qemu-img args..., --, guestctl args...
  local name=$1 ofmt=$2 src=$3; shift 3
  local qa=() ga=()
  while [ "$1" != "--" ]; do qa+=("$1"); shift; done; shift
  ga=("$@")
  : > "$out/q"; : > "$out/g"
  for _ in $(seq "$runs"); do
    timed qemu-img convert -m 8 -W "${qa[@]}" "$src" "$out/o" >> "$out/q"
    timed "$gc" convert --no-progress --force "$src" "$out/o" "${ga[@]}" >> "$out/g"
  done
  local sfmt=raw
  case $src in *.vhd) sfmt=vpc ;; *.vdi) sfmt=vdi ;; esac
  qemu-img compare -q -f "$sfmt" -F "$ofmt" "$src" "$out/o" || { echo "MISMATCH in $name" >&2; exit 1; }
  local q g
  q=$(median < "$out/q"); g=$(median < "$out/g")
  printf '%-24s %9ss %9ss %7.2f\n' "$name" "$q" "$g" "$(echo "$g / $q" | bc -l)"
}
row "vhd fixed -> raw" raw "$data/fixed.vhd" -f vpc -O raw -- -O raw
row "vhd dynamic -> raw" raw "$data/dynamic.vhd" -O raw -- -O raw
row "vdi dynamic -> raw" raw "$data/dynamic.vdi" -O raw -- -O raw
row "vdi static -> raw" raw "$data/static.vdi" -O raw -- -O raw
row "raw -> vhd dynamic" vpc "$data/disk.raw" -O vpc -o force_size=on -- -O vhd
row "raw -> vhd fixed" vpc "$data/disk.raw" -O vpc -o subformat=fixed,force_size=on -- -O vhd --subformat fixed
row "raw -> vdi dynamic" vdi "$data/disk.raw" -O vdi -- -O vdi
row "raw -> vdi static" vdi "$data/disk.raw" -O vdi -o static=on -- -O vdi --subformat static
echo "(ratio = guestctl / qemu-img wall time, medians of $runs runs taken in turns; $(nproc) cores;" \
  "$(( $(stat -c %s "$data/disk.raw") >> 20 )) MiB disk; outputs verified with qemu-img compare)"
