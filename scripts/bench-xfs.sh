#!/usr/bin/env bash
# XFS reader benchmark: the kernel's XFS driver (loop device + read-only mount) against
# guestctl on the same image, alternating runs, medians.
#
#   walk  kernel: losetup + mount -o ro + find MNT | wc -l + umount + losetup -d
#         guestctl: guestctl ls -R IMG / | wc -l      (entry counts checked equal)
#   read  kernel: cat MNT/big/blob > /dev/null on a mounted image (mount/umount not timed)
#         guestctl: guestctl cat IMG /big/blob > /dev/null   (bytes checked equal with cmp)
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

# ---- guestctl side -----------------------------------------------------------------------------
# Each prints the milliseconds of one run.
bench_guestctl_walk() {
  local s e c
  s=$(now); c=$("$gc" ls -R "$img" / | wc -l); e=$(now)
  echo "$c" > "$work/guestctl-entries"
  ms "$s" "$e"
}
bench_guestctl_read() {
  local s e
  s=$(now); "$gc" cat "$img" /big/blob > /dev/null; e=$(now)
  ms "$s" "$e"
}
check_same_content() {  # once, outside the timing: guestctl's bytes are the kernel's
  loop=$(losetup -f --show -r "$img")
  mount -o ro "$loop" "$mnt"
  if ! cmp -s <("$gc" cat "$img" /big/blob) "$mnt/big/blob"; then
    echo "bench-xfs: guestctl cat differs from the kernel's /big/blob" >&2; exit 1
  fi
  umount "$mnt"; losetup -d "$loop"; loop=
}

report() {  # report NAME KERNEL_TIMES GUESTCTL_TIMES
  local k g
  k=$(echo "$2" | tr ' ' '\n' | grep -v '^$' | median)
  g=$(echo "$3" | tr ' ' '\n' | grep -v '^$' | median)
  echo "$1: kernel median $k ms, guestctl median $g ms, ratio guestctl/kernel $(awk -v g="$g" -v k="$k" 'BEGIN {printf "%.2f", (k ? g / k : 0)}')${4:-}"
}

mkdir -p "$mnt"
echo "image: $(du -h --apparent-size "$img" | cut -f1) apparent, $(du -h "$img" | cut -f1) allocated; $RUNS runs per side, alternating, warm page cache"
kw=""; gw=""; kr=""; gr=""
for _ in $(seq 1 "$RUNS"); do   # alternate the two sides run by run
  kw="$kw $(kernel_walk)"
  gw="$gw $(bench_guestctl_walk)"
done
# find counts the mount point itself; guestctl ls -R lists what is below /.
echo "entries: find $(cat "$work/kernel-entries") (incl. the mount point), guestctl ls -R $(cat "$work/guestctl-entries")"
if [ "$(( $(cat "$work/kernel-entries") - 1 ))" != "$(cat "$work/guestctl-entries")" ]; then
  echo "bench-xfs: entry counts differ" >&2; exit 1
fi
report walk "$kw" "$gw"
for _ in $(seq 1 "$RUNS"); do
  kr="$kr $(kernel_read)"
  gr="$gr $(bench_guestctl_read)"
done
check_same_content
gbps() { awk -v mb="$BIG_MB" -v t="$(echo "$1" | tr ' ' '\n' | grep -v '^$' | median)" 'BEGIN {printf "%.2f", mb * 1048576 / (t / 1000) / 1e9}'; }
report "read ($BIG_MB MiB)" "$kr" "$gr" " (kernel $(gbps "$kr") GB/s, guestctl $(gbps "$gr") GB/s)"
