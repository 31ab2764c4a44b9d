#!/usr/bin/env bash
# Conversion benchmark: guestctl vs qemu-img (with its best options, -m 8 -W), same images,
# the two taking turns run after run; medians of RUNS runs with the spread (min-max), the
# ratio of the medians; every output is checked with `qemu-img compare`.
# Usage: scripts/bench-convert.sh [RUNS]   (default 5)
#   BENCH_DATA=small      images from scripts/bench-data.sh (1 GiB ext4, the default)
#   BENCH_DATA=realistic  images from scripts/make-bench-disk.sh (1.7 GiB GPT disk like a
#                         Debian cloud image, ~300 MiB as zlib qcow2)
#   BENCH_QEMU_PLAIN=1    also time qemu-img without -m 8 -W
# The machine's load average is printed before and after: on a shared machine, CPU taken by
# others decides the wall times (see docs/ARCHITECTURE.md, Conversion).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
cargo build --release -q -p guestctl
gc=${CARGO_TARGET_DIR:-$PWD/target}/release/guestctl
case ${BENCH_DATA:-small} in
  small) data=$(scripts/bench-data.sh) ;;
  realistic) data=$(scripts/make-bench-disk.sh) ;;
  *) echo "BENCH_DATA is small or realistic" >&2; exit 2 ;;
esac
plain=${BENCH_QEMU_PLAIN:-0}
out=$(mktemp -d "$data/out.XXXX")
trap 'rm -rf "$out"' EXIT
# A backing chain for the flatten case: disk.raw <- mid (1 GiB of writes spread) <- top.
if [ ! -f "$data/chain-top.qcow2" ]; then
  qemu-img create -q -f qcow2 -b plain.qcow2 -F qcow2 "$data/chain-mid.qcow2"
  qemu-io -f qcow2 -c "write -P 0x5a 100M 64M" -c "write -z 300M 32M" "$data/chain-mid.qcow2" >/dev/null
  qemu-img create -q -f qcow2 -b chain-mid.qcow2 -F qcow2 "$data/chain-top.qcow2"
  qemu-io -f qcow2 -c "write -P 0xa5 120M 8M" -c "write -P 0x33 900M 16M" "$data/chain-top.qcow2" >/dev/null
fi
timed() { # wall time of one run of "$@" (the old output removed just before); peak RSS (KB) in $out/rss
  rm -f "$out/o"
  /usr/bin/time -o "$out/t" -f '%e %M' "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; exit 1; }
  local t; t=$(tail -1 "$out/t")
  echo "${t#* }" > "$out/rss"
  printf '%s' "${t% *}"
}
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%.2f", (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
spread() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%.2f-%.2f", a[1], a[NR]}'; }
mb() { echo $(( ($(stat -c "%b * %B" "$1") + 524287) / 1048576 )); }  # allocated, not apparent
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "load average before: $(load); $(nproc) cores; images: $data"
hdr=$(printf '%-27s %17s %17s %6s' case "qemu-img -m8 -W" guestctl ratio)
if [ "$plain" = 1 ]; then hdr+=$(printf ' %17s %6s' "qemu-img" ratio); fi
printf '%s %8s %13s\n' "$hdr" "RSS (MB)" "size q/g (MB)"
row() { # name, src, qemu-img args..., --, guestctl args...
  local name=$1 src=$2; shift 2
  local qa=() ga=()
  while [ "$1" != "--" ]; do qa+=("$1"); shift; done; shift
  ga=("$@")
  local q=() g=() p=() grss qsize gsize
  for _ in $(seq "$runs"); do
    q+=("$(timed qemu-img convert -m 8 -W "${qa[@]}" "$src" "$out/o")"); qsize=$(mb "$out/o")
    g+=("$(timed "$gc" convert --no-progress --force "$src" "$out/o" "${ga[@]}")"); grss=$(cat "$out/rss")
    gsize=$(mb "$out/o")
    qemu-img compare -q "$src" "$out/o" || { echo "MISMATCH in $name" >&2; exit 1; }
    if [ "$plain" = 1 ]; then p+=("$(timed qemu-img convert "${qa[@]}" "$src" "$out/o")"); fi
  done
  local line
  line=$(printf '%-27s %5ss %10s %5ss %10s %6.2f' "$name" "$(med "${q[@]}")" "($(spread "${q[@]}"))" \
    "$(med "${g[@]}")" "($(spread "${g[@]}"))" "$(echo "$(med "${g[@]}") / $(med "${q[@]}")" | bc -l)")
  if [ "$plain" = 1 ]; then
    line+=$(printf ' %5ss %10s %6.2f' "$(med "${p[@]}")" "($(spread "${p[@]}"))" \
      "$(echo "$(med "${g[@]}") / $(med "${p[@]}")" | bc -l)")
  fi
  printf '%s %8s %13s\n' "$line" "$((grss / 1024))" "$qsize/$gsize"
}
row "qcow2(zlib) -> raw" "$data/zlib.qcow2" -O raw -- -O raw
row "qcow2(zstd) -> raw" "$data/zstd.qcow2" -O raw -- -O raw
row "raw -> qcow2" "$data/disk.raw" -O qcow2 -- -O qcow2
row "raw -> qcow2 zlib" "$data/disk.raw" -c -O qcow2 -- -O qcow2 -c
row "raw -> qcow2 zstd" "$data/disk.raw" -c -O qcow2 -o compression_type=zstd -- -O qcow2 --compress=zstd
row "vmdk stream -> qcow2" "$data/stream.vmdk" -O qcow2 -- -O qcow2
row "qcow2 chain -> flat qcow2" "$data/chain-top.qcow2" -O qcow2 -- -O qcow2
row "raw -> vmdk" "$data/disk.raw" -O vmdk -- -O vmdk
row "raw -> vmdk stream" "$data/disk.raw" -O vmdk -o subformat=streamOptimized -- -O vmdk --subformat streamOptimized
row "qcow2(zlib) -> vmdk stream" "$data/zlib.qcow2" -O vmdk -o subformat=streamOptimized -- -O vmdk --subformat streamOptimized
echo "(wall seconds: median (min-max) of $runs runs taken in turns; ratio = guestctl / qemu-img medians; outputs verified with qemu-img compare)"
echo "load average after the first table: $(load)"
echo
# Scaling: guestctl with 1 and 2 worker threads; throughput = guest (virtual) bytes / median wall time.
size_mb=$(( $(stat -c %s "$data/disk.raw") / 1048576 ))
printf '%-28s %12s %12s %12s\n' "case (MB/s of guest data)" qemu-img "guestctl -j1" "guestctl -j2"
trow() { # name, src, qemu-img args..., --, guestctl args...
  local name=$1 src=$2; shift 2
  local qa=() ga=()
  while [ "$1" != "--" ]; do qa+=("$1"); shift; done; shift
  ga=("$@")
  local q=() t1=() t2=()
  for _ in $(seq "$runs"); do
    q+=("$(timed qemu-img convert -m 8 -W "${qa[@]}" "$src" "$out/o")")
    t1+=("$(timed "$gc" convert --no-progress --force -j 1 "$src" "$out/o" "${ga[@]}")")
    t2+=("$(timed "$gc" convert --no-progress --force -j 2 "$src" "$out/o" "${ga[@]}")")
  done
  qemu-img compare -q "$src" "$out/o" || { echo "MISMATCH in $name" >&2; exit 1; }
  printf '%-28s %12.0f %12.0f %12.0f\n' "$name" "$(echo "$size_mb / $(med "${q[@]}")" | bc -l)" \
    "$(echo "$size_mb / $(med "${t1[@]}")" | bc -l)" "$(echo "$size_mb / $(med "${t2[@]}")" | bc -l)"
}
trow "qcow2(zlib) -> raw" "$data/zlib.qcow2" -O raw -- -O raw
trow "raw -> qcow2" "$data/disk.raw" -O qcow2 -- -O qcow2
trow "raw -> qcow2 zlib" "$data/disk.raw" -c -O qcow2 -- -O qcow2 -c
trow "raw -> qcow2 zstd" "$data/disk.raw" -c -O qcow2 -o compression_type=zstd -- -O qcow2 --compress=zstd
trow "vmdk stream -> qcow2" "$data/stream.vmdk" -O qcow2 -- -O qcow2
trow "raw -> vmdk stream" "$data/disk.raw" -O vmdk -o subformat=streamOptimized -- -O vmdk --subformat streamOptimized
echo "(${size_mb} MiB virtual disk; medians of $runs; load average after: $(load))"
