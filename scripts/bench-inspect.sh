#!/usr/bin/env bash
# guestctl inspect vs virt-inspector, on the same images, in one run: timings side by side
# (with the ratio) and a field-by-field comparison of what each reports.
#
# Images: the committed demo (fixtures/demo.qcow2), a Debian guest carrying this host's real
# dpkg status (hundreds of packages) with a separate /boot, as a zlib-compressed qcow2 on GPT;
# a Fedora-33-like guest whose rpmdb.sqlite is libguestfs's dump (../shared/corpus); an
# Ubuntu-like MBR guest (lsb-release). All made here with sfdisk + mkfs.ext4 -d, no root.
#
# Usage: scripts/bench-inspect.sh [RUNS]   (guestctl runs per image, default 20; virt-inspector
#        runs once per image under TCG here — LIBGUESTFS_BACKEND_SETTINGS=force_tcg — because
#        nested KVM hangs on this machine; set GUESTCTL_BENCH_KVM=1 to let libguestfs use KVM.)
# Needs: sfdisk, mkfs.ext4, qemu-img, python3, sqlite3, xz; virt-inspector (libguestfs-tools)
#        for the comparison (skipped with a message when absent).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-inspect.XXXXXX")
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet
gc=$PWD/target/release/guestctl
corpus=../shared/corpus

# disk IMG LABEL "SIZE_MIB:SRC:MKFS_OPTS" ...  → a partitioned raw disk, one ext4 per partition.
disk() {
  local img=$1 label=$2; shift 2
  local total=2 spec start=2048 script="label: $label"$'\n'
  for spec in "$@"; do total=$((total + ${spec%%:*})); done
  truncate -s "${total}M" "$img"
  for spec in "$@"; do
    local mib=${spec%%:*} sectors
    sectors=$((mib * 2048))
    script+="start=$start, size=$sectors"$'\n'
    start=$((start + sectors))
  done
  printf '%s' "$script" | sfdisk -q --no-reread --no-tell-kernel "$img"
  start=2048
  for spec in "$@"; do
    local mib=${spec%%:*} rest=${spec#*:}
    local src=${rest%%:*} opts=${rest#*:}
    # shellcheck disable=SC2086
    mkfs.ext4 -q -F -E offset=$((start * 512)) -d "$src" $opts "$img" "${mib}M"
    start=$((start + mib * 2048))
  done
}

elf() { mkdir -p "$1/bin" "$1/usr/bin"; cp /bin/dash "$1/bin/dash"; ln -sf dash "$1/bin/sh"; }

# 1. Debian with this host's dpkg status and a separate /boot.
d=$work/debian; mkdir -p "$d/root/etc" "$d/root/boot" "$d/root/var/lib/dpkg" "$d/boot"
elf "$d/root"
printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n' > "$d/root/etc/os-release"
cp /etc/debian_version "$d/root/etc/debian_version" 2>/dev/null || echo 12.5 > "$d/root/etc/debian_version"
echo bench-debian > "$d/root/etc/hostname"
printf 'UUID=0b5e2c4e-1111-4a4a-9c9c-000000000002 / ext4 defaults 0 1\nLABEL=BOOT /boot ext4 defaults 0 2\n' > "$d/root/etc/fstab"
cp /var/lib/dpkg/status "$d/root/var/lib/dpkg/status"
printf '\n' >> "$d/root/var/lib/dpkg/status"
echo kernel > "$d/boot/vmlinuz-6.1.0-13-amd64"
disk "$work/debian.raw" gpt "16:$d/boot:-L BOOT" "96:$d/root:-U 0b5e2c4e-1111-4a4a-9c9c-000000000002"
qemu-img convert -q -c -O qcow2 "$work/debian.raw" "$work/debian.qcow2"

# 2. Fedora 33 with libguestfs's rpmdb.
f=$work/fedora; mkdir -p "$f/etc/sysconfig" "$f/var/lib/rpm"
elf "$f"
printf 'NAME=Fedora\nID=fedora\nVERSION_ID=33\nPRETTY_NAME="Fedora 33 (Server Edition)"\n' > "$f/etc/os-release"
echo 'Fedora release 33 (Thirty Three)' > "$f/etc/redhat-release"
printf 'HOSTNAME=fedora.invalid\n' > "$f/etc/sysconfig/network"
echo 'LABEL=root / ext4 defaults 1 1' > "$f/etc/fstab"
xz -dc "$corpus/libguestfs/test-data/phony-guests/fedora-db.sql.xz" | sqlite3 "$f/var/lib/rpm/rpmdb.sqlite"
disk "$work/fedora.raw" gpt "32:$f:-L root"
qemu-img convert -q -c -O qcow2 "$work/fedora.raw" "$work/fedora.qcow2"

# 3. Ubuntu-like on MBR.
u=$work/ubuntu; mkdir -p "$u/root/etc" "$u/root/boot" "$u/boot"
elf "$u/root"
printf 'DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=10.10\nDISTRIB_CODENAME=maverick\nDISTRIB_DESCRIPTION="Ubuntu 10.10 (Phony Pharaoh)"\n' > "$u/root/etc/lsb-release"
echo ubuntu.invalid > "$u/root/etc/hostname"
printf 'LABEL=BOOT /boot ext2 default 0 0\n/dev/vda2 / ext2 default 0 0\n' > "$u/root/etc/fstab"
mkdir -p "$u/root/var/lib/dpkg"
cp "$corpus/libguestfs/test-data/phony-guests/debian-packages" "$u/root/var/lib/dpkg/status"
disk "$work/ubuntu.img" dos "8:$u/boot:-L BOOT" "16:$u/root:"

images=(fixtures/demo.qcow2 "$work/debian.qcow2" "$work/fedora.qcow2" "$work/ubuntu.img")

now() { date +%s.%N; }
have_vi=0
if command -v virt-inspector >/dev/null; then have_vi=1; else
  echo "virt-inspector not installed (apt-get install -t bookworm-backports libguestfs-tools): comparison skipped"
fi
export LIBGUESTFS_BACKEND=direct
[ "${GUESTCTL_BENCH_KVM:-0}" = 1 ] || export LIBGUESTFS_BACKEND_SETTINGS=force_tcg

for img in "${images[@]}"; do
  name=$(basename "$img")
  "$gc" inspect --json "$img" > "$work/$name.json"
  t0=$(now)
  for _ in $(seq "$runs"); do "$gc" inspect --json "$img" > /dev/null; done
  t1=$(now)
  ours=$(python3 -c "print(f'{($t1 - $t0) / $runs:.4f}')")
  apps=$(python3 -c "import json,sys; print(sum(len(o['applications']) for o in json.load(open(sys.argv[1]))))" "$work/$name.json")
  if [ $have_vi = 1 ]; then
    t0=$(now)
    vi_ok=1
    virt-inspector -a "$img" > "$work/$name.xml" 2> "$work/$name.vi.err" || vi_ok=0
    t1=$(now)
    theirs=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
    if [ $vi_ok = 0 ]; then
      echo "inspect  $name ($apps applications): guestctl ${ours}s (mean of $runs) | virt-inspector failed after ${theirs}s: $(grep -m1 error "$work/$name.vi.err")"
      continue
    fi
    ratio=$(python3 -c "print(f'{$theirs / $ours:.0f}')")
    echo "inspect  $name ($apps applications): guestctl ${ours}s (mean of $runs) | virt-inspector ${theirs}s | guestctl is ${ratio}x faster"
    # Differences are printed (docs/INSPECT.md explains the known ones); they are not a failure
    # of this script, whose job is to show them.
    python3 scripts/compare-inspector.py "$work/$name.xml" "$work/$name.json" || true
  else
    echo "inspect  $name ($apps applications): guestctl ${ours}s (mean of $runs)"
  fi
done
