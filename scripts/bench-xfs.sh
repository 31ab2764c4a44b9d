#!/usr/bin/env bash
# XFS reader benchmark skeleton: the kernel's XFS driver (loop device + read-only mount) against
# guestctl on the same image, alternating runs, medians.
#
#   walk  kernel: losetup + mount -o ro + find MNT | wc -l + umount + losetup -d
#         guestctl: guestctl ls -R IMG /                          (TODO: bench_guestctl_walk)
#   read  kernel: cat MNT/big/blob > /dev/null on a mounted image (mount/umount not timed)
#         guestctl: guestctl cat IMG /big/blob > /dev/null         (TODO: bench_guestctl_read)
#
# Both sides run warm: the image file is read into the host page cache once before timing
# (cat IMG > /dev/null) and caches are never dropped. For the kernel's walk each run is a new
# mount, so its own inode/dentry caches start empty every time (as guestctl's, which reads the
# image file); for the kernel's read the file's pages are dropped with each umount, so the
# read mounts freshly for every run too (the mount itself is outside the timed part).
#
# Usage: sudo scripts/bench-xfs.sh [WORKDIR]    (root: losetup, mount; default a temp dir in
#        /tmp, removed at exit; RUNS=N runs per side, default 5; BIG_MB=N for a smaller big file)
# The image (made once per WORKDIR): mkfs.xfs on a 3 GiB sparse file, a tree of >10k entries
# (a copy of /usr/share/man and /usr/include when present, topped up with generated files)
# and one 2 GiB file of random data (/big/blob).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench-xfs: run as root (losetup, mount)" >&2; exit 1; }
RUNS=${RUNS:-5}
BIG_MB=${BIG_MB:-2048}   # size of /big/blob (smaller only for a quick smoke test of the script)
work=${1:-$(mktemp -d /tmp/bench-xfs.XXXXXX)}
mkdir -p "$work"
mnt=$work/mnt
loop=
cleanup() {
  mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"
  [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
  [ -n "${1:-}" ] || rm -rf "$work"
}
if [ -n "${1:-}" ]; then trap 'cleanup keep' EXIT; else trap cleanup EXIT; fi
gc=${GUESTCTL:-target/release/guestctl}

# ---- the image ---------------------------------------------------------------------------------
img=$work/bench.xfs
if [ ! -f "$img" ]; then
  truncate -s 3G "$img"
  mkfs.xfs -q -f "$img"
  mkdir -p "$mnt"
  loop=$(losetup -f --show "$img")
  mount "$loop" "$mnt"
  mkdir -p "$mnt/tree" "$mnt/big"
  for d in /usr/share/man /usr/include; do [ -d "$d" ] && cp -a "$d" "$mnt/tree/"; done
  # top up to at least 12,000 entries: 40 directories of generated small files
  n=$(find "$mnt/tree" | wc -l)
  i=0
  while [ "$n" -lt 12000 ]; do
    mkdir -p "$mnt/tree/gen/d$((i / 300))"
    printf 'file %d\n' "$i" > "$mnt/tree/gen/d$((i / 300))/f$i"
    i=$((i + 1)); n=$((n + 1))
  done
  head -c "${BIG_MB}M" /dev/urandom > "$mnt/big/blob"
  umount "$mnt"; losetup -d "$loop"; loop=
fi
cat "$img" > /dev/null   # warm: the image file in the host page cache

now() { date +%s%N; }
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }
ms() { echo $(( ($2 - $1) / 1000000 )); }

# ---- kernel side --------------------------------------------------------------------------------
kernel_walk() {  # prints the milliseconds of one loop+mount+find+umount
  local s e c
  s=$(now)
  loop=$(losetup -f --show -r "$img")
  mount -o ro "$loop" "$mnt"
  c=$(find "$mnt" | wc -l)
  umount "$mnt"; losetup -d "$loop"; loop=
  e=$(now)
  echo "$c" > "$work/kernel-entries"
  ms "$s" "$e"
}
kernel_read() {  # prints the milliseconds of cat BIG > /dev/null on a fresh mount
  local s e
  loop=$(losetup -f --show -r "$img")
  mount -o ro "$loop" "$mnt"
  s=$(now); cat "$mnt/big/blob" > /dev/null; e=$(now)
  umount "$mnt"; losetup -d "$loop"; loop=
  ms "$s" "$e"
}

# ---- guestctl side: PLACEHOLDERS for the lead ------------------------------------------------------
# Each prints the milliseconds of one run, or "-" while not implemented.
bench_guestctl_walk() {
  # TODO(lead): time `"$gc" ls -R "$img" /`, e.g.
  #   local s e; s=$(now); "$gc" ls -R "$img" / > /dev/null; e=$(now); ms "$s" "$e"
  # and check its entry count against $work/kernel-entries (find counts the root too).
  echo -
}
bench_guestctl_read() {
  # TODO(lead): time `"$gc" cat "$img" /big/blob > /dev/null`, e.g.
  #   local s e; s=$(now); "$gc" cat "$img" /big/blob > /dev/null; e=$(now); ms "$s" "$e"
  # (and once, outside the timing: cmp <("$gc" cat "$img" /big/blob) MNT/big/blob).
  echo -
}

report() {  # report NAME KERNEL_TIMES GUESTCTL_TIMES
  local k g
  k=$(echo "$2" | tr ' ' '\n' | grep -v '^$' | median)
  if echo "$3" | grep -q -- '-'; then
    echo "$1: kernel median $k ms, guestctl median - ms (not implemented), ratio -"
  else
    g=$(echo "$3" | tr ' ' '\n' | grep -v '^$' | median)
    echo "$1: kernel median $k ms, guestctl median $g ms, ratio Y/X $(awk -v g="$g" -v k="$k" 'BEGIN {printf "%.2f", (k ? g / k : 0)}')"
  fi
}

mkdir -p "$mnt"
echo "image: $(du -h --apparent-size "$img" | cut -f1) apparent, $(du -h "$img" | cut -f1) allocated; $RUNS runs per side, alternating, warm page cache"
kw=""; gw=""; kr=""; gr=""
for _ in $(seq 1 "$RUNS"); do   # alternate the two sides run by run
  kw="$kw $(kernel_walk)"
  gw="$gw $(bench_guestctl_walk)"
done
echo "entries (find, incl. the mount point): $(cat "$work/kernel-entries")"
report walk "$kw" "$gw"
for _ in $(seq 1 "$RUNS"); do
  kr="$kr $(kernel_read)"
  gr="$gr $(bench_guestctl_read)"
done
report "read ($BIG_MB MiB)" "$kr" "$gr"
