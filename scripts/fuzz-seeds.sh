#!/usr/bin/env bash
# Makes small seed inputs for the fuzz targets (fuzz/corpus/ext, ext_journal, fat, ufs,
# inspect_parsers).
# Usage: scripts/fuzz-seeds.sh
# Then:  cd fuzz && cargo +nightly fuzz run ext corpus/ext -- -max_len=262144 -max_total_time=1200
set -euo pipefail
cd "$(dirname "$0")/.."
out=fuzz/corpus/ext
jout=fuzz/corpus/ext_journal
mkdir -p "$out" "$jout"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
src=$tmp/src
mkdir -p "$src/d/e"
printf 'hello\n' > "$src/a"
head -c 3000 /dev/urandom > "$src/d/blob"
ln -s a "$src/short"
ln -s "$(printf '/x%.0s' $(seq 1 40))" "$src/long"
for i in $(seq 1 30); do : > "$src/d/e/f$i"; done
setfattr -n user.k -v v "$src/a" 2>/dev/null || true
n=0
for spec in "ext2 -b 1024" "ext3 -b 1024 -J size=1" "ext4 -b 1024 -O ^has_journal" \
            "ext4 -b 1024 -O ^has_journal,inline_data" "ext4 -b 1024 -O ^has_journal,^metadata_csum" \
            "ext4 -b 1024 -O ^has_journal,^extents,^64bit"; do
  set -- $spec
  kind=$1; shift
  n=$((n+1))
  mkfs."$kind" -q -F -N 64 "$@" -d "$src" "$tmp/img" 256K >/dev/null 2>&1 || { echo "skip: $spec"; continue; }
  cp "$tmp/img" "$out/seed-$n-$kind.img"
done
# Journals with pending transactions (debugfs jw needs whole-block data files), with and
# without journal checksums, for the journal target.
head -c 2048 /dev/urandom > "$tmp/d2"
for jo in "" "-c -v 3" "-c -v 2"; do
  n=$((n+1))
  mkfs.ext4 -q -F -b 1024 -J size=1 "$tmp/j.img" 4M
  printf 'jo %s\njw -b 100,101 %s\njw -r 100 /dev/null\njw -b 102 -c %s\njc\n' "$jo" "$tmp/d2" "$tmp/d2" > "$tmp/cmds"
  debugfs -w -f "$tmp/cmds" "$tmp/j.img" >/dev/null 2>&1
  debugfs -R "dump <8> $tmp/journal" "$tmp/j.img" >/dev/null 2>&1
  # Only the log's first blocks matter: keep 64 KiB of the 1 MiB journal.
  head -c 65536 "$tmp/journal" > "$jout/seed-journal-$n.bin"
  # ... and say so in its superblock (s_maxlen = 64 blocks, big-endian at 0x10).
  printf '\000\000\000\100' | dd of="$jout/seed-journal-$n.bin" bs=1 seek=16 conv=notrunc status=none
done
ls -la "$out" "$jout"
# FAT seeds (fuzz/corpus/fat): FAT12/16/32 with long names, a subdirectory and a 3-cluster file.
fout=fuzz/corpus/fat
mkdir -p "$fout"
for bits in 12 16 32; do
  rm -f "$tmp/fat.img"
  size=$(case $bits in 12) echo 1440;; 16) echo 4200;; *) echo 34000;; esac)
  mkfs.fat -C -F "$bits" -s 1 "$tmp/fat.img" "$size" >/dev/null
  MTOOLS_SKIP_CHECK=1 mcopy -s -i "$tmp/fat.img" "$src/a" "$src/d" ::/
  # FAT32 needs 65525 clusters (33 MB): keep the first 1 MiB, which holds the FATs, the
  # root directory and the files (reads past the end are errors the walk handles).
  head -c 1048576 "$tmp/fat.img" > "$fout/seed-fat$bits.img"
done
# UFS seeds (fuzz/corpus/ufs): UFS1 and UFS2, both byte orders, 4 KiB blocks, from makefs.
uout=fuzz/corpus/ufs
mkdir -p "$uout"
for v in 1 2; do
  for e in le be; do
    makefs -t ffs -B "$e" -s 256k -o "version=$v,bsize=4096,fsize=512" "$tmp/ufs.img" "$src" >/dev/null
    cp "$tmp/ufs.img" "$uout/seed-ufs$v-$e.img"
  done
done
# XFS seeds (fuzz/corpus/xfs): v5 (4 KiB, 1 KiB, 64 KiB directory blocks) and v4 (512-byte
# blocks, no ftype) filesystems populated by mkfs.xfs's prototype file with shortform, block,
# leaf and node directories, inline and remote symlinks and a multi-extent file; as root, one
# more with xattrs of every form and a fragmented (bmbt) file written through a loop mount.
# Each image is encoded as the target expects: its non-zero 512-byte sectors.
xout=fuzz/corpus/xfs
mkdir -p "$xout"
encode_xfs() {  # image → sparse-sector fuzz input
  python3 - "$1" "$2" <<'PY'
import struct, sys
img = open(sys.argv[1], 'rb').read()
n = len(img) // 512
out = [struct.pack('<I', n)]
s = 0
while s < n:
    if not any(img[s*512:(s+1)*512]):
        s += 1
        continue
    k = 1
    while k < 128 and s + k < n and any(img[(s+k)*512:(s+k+1)*512]):
        k += 1
    out.append(struct.pack('<IH', s, k) + img[s*512:(s+k)*512])
    s += k
open(sys.argv[2], 'wb').write(b''.join(out))
PY
}
{
  echo "/dev/null"; echo "0 0"; echo "d--755 0 0"
  echo " a ---644 0 0 $src/a"
  echo " blob ---644 0 0 $src/d/blob"
  echo " short l--777 0 0 a"
  echo " long l--777 0 0 $(printf 'x%.0s' $(seq 1 700))"
  for n in 3 40 150 600; do
    echo " dir$n d--755 0 0"
    for i in $(seq 1 "$n"); do echo "  entry_with_a_long_name_$i ---644 0 0 $src/a"; done
    echo "  \$"
  done
  echo "\$"
} > "$tmp/proto"
n=0
for opts in "" "-b size=1024" "-n size=65536" "-m crc=0 -b size=512 -n ftype=0 -i size=256"; do
  n=$((n+1))
  rm -f "$tmp/x.img"; truncate -s 320M "$tmp/x.img"
  mkfs.xfs -q -f $opts -p "$tmp/proto" "$tmp/x.img" 2>/dev/null || { echo "skip: xfs $opts"; continue; }
  encode_xfs "$tmp/x.img" "$xout/seed-xfs-$n"
done
if [ "$(id -u)" = 0 ]; then
  rm -f "$tmp/x.img"; truncate -s 320M "$tmp/x.img"; mkfs.xfs -q -f "$tmp/x.img"
  mkdir -p "$tmp/m"; mount -o loop "$tmp/x.img" "$tmp/m"
  : > "$tmp/m/sf"; setfattr -n user.k -v v "$tmp/m/sf"
  : > "$tmp/m/leaf"; for i in $(seq 1 60); do setfattr -n "user.attr_$i" -v "value_$i" "$tmp/m/leaf"; done
  : > "$tmp/m/node"; for i in $(seq 1 700); do setfattr -n "user.a_long_attribute_name_$i" -v "v$i" "$tmp/m/node"; done
  : > "$tmp/m/remote"; setfattr -n user.r -v "$(head -c 6000 /dev/zero | tr '\0' q)" "$tmp/m/remote"
  setfacl -m u:1000:r "$tmp/m/sf" 2>/dev/null || true
  xfs_io -f -c 'pwrite -S 0 0 2m' "$tmp/m/frag" >/dev/null
  for o in $(seq 0 2 511); do xfs_io -c "fpunch $((o*4096)) 4096" "$tmp/m/frag"; done
  umount "$tmp/m"
  encode_xfs "$tmp/x.img" "$xout/seed-xfs-attrs"
fi
ls -la "$xout"
# rpmdb seeds (fuzz/corpus/inspect_parsers): small Berkeley DB files from db5.3_load (hash and
# btree, both byte orders, 512-byte pages, overflow items, on- and off-page duplicates) and the
# first 16 KiB of the ndb fixture (both slot pages and the first blobs).
iout=fuzz/corpus/inspect_parsers
mkdir -p "$iout"
{
  printf 'VERSION=3\nformat=bytevalue\ntype=hash\nHEADER=END\n'
  for i in 1 2 3; do printf ' %02x000000\n %s\n' "$i" "$(head -c $((i * 700)) /dev/urandom | od -An -tx1 -v | tr -d ' \n')"; done
  for i in $(seq 1 40); do printf ' 64757073\n %s\n' "$(printf 'dup %03d' "$i" | od -An -tx1 -v | tr -d ' \n')"; done
  printf 'DATA=END\n'
} > "$tmp/bdb.txt"
for opts in "-t hash" "-t hash -c db_lorder=4321" "-t btree" "-t btree -c db_lorder=4321"; do
  rm -f "$tmp/seed.db"
  db5.3_load $opts -c db_pagesize=512 -c duplicates=1 -f "$tmp/bdb.txt" "$tmp/seed.db"
  cp "$tmp/seed.db" "$iout/seed-bdb-$(echo "$opts" | tr -dc 'a-z0-9')"
done
xz -dc fixtures/rpmdb-ndb/Packages.db.xz > "$tmp/ndb"
head -c 16384 "$tmp/ndb" > "$iout/seed-ndb"
ls -la "$iout"
