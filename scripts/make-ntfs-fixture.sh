#!/bin/bash
# Builds fixtures/ntfs.img.zst and fixtures/ntfs.manifest with the real NTFS tools: mkntfs
# on a file, mounted with ntfs-3g (needs root and /dev/fuse, only here: the tests read the
# committed image), filled from a generated source tree. The manifest is written from the
# SOURCE tree (find -printf, sha256sum), from the reparse buffers this script writes, and
# from getfattr on the mount (which files ntfs-3g compressed); never from guestctl.
#
# Manifest lines (tab-separated):
#   label/uuid <value>                 blkid of the unmounted image
#   f <path> <nlink> <size> <sha256>   regular file (source tree)
#   d <path>                           directory (source tree)
#   s <path>:<stream> <size> <sha256>  alternate data stream written through the mount
#   l <path> <target>                  symlink/junction: the guest target its buffer names
#   c <path>                           ntfs-3g reports FILE_ATTRIBUTE_COMPRESSED (0x800)
set -euo pipefail
cd "$(dirname "$0")/.."
out=fixtures
work=$(mktemp -d)
mnt=$work/mnt
trap 'mountpoint -q "$mnt" && umount "$mnt"; rm -rf "$work"' EXIT
src=$work/src
mkdir -p "$src/dir/sub" "$src/other" "$src/compressed" "$mnt"

# --- the source tree ---------------------------------------------------------------
printf 'deep file\n' > "$src/dir/sub/deep.txt"
printf 'a linked file\n' > "$src/dir/a.txt"
ln "$src/dir/a.txt" "$src/other/b-hardlink.txt"
: > "$src/empty"
printf 'unicode\n' > "$src/héllo wörld ✓ ünïcode.txt"
long=$(printf 'L%.0s' $(seq 1 200))
printf 'long name\n' > "$src/dir/$long"
# 96 KiB of deterministic noise (incompressible, several clusters)
python3 -c 'import hashlib,sys; sys.stdout.buffer.write(b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(3072)))' > "$src/large.bin"
# compressible text for the compressed directory: ~200 KiB, several compression units
python3 -c 'import sys; sys.stdout.write("".join(f"line {i:06d}: the quick brown fox jumps over the lazy dog {i*i%997}\n" for i in range(2800)))' > "$src/compressed/text.txt"
# a file of one byte value (one chunk compresses to a few bytes) plus a tail
python3 -c 'import sys; sys.stdout.buffer.write(b"A"*70000 + b"tail")' > "$src/compressed/runs.bin"
# sparse: data at 0 and at 4 MiB, hole between
truncate -s 5M "$src/sparse"
printf 'start' | dd of="$src/sparse" conv=notrunc status=none
printf 'end' | dd of="$src/sparse" bs=1 seek=$((4 << 20)) conv=notrunc status=none

# --- make the filesystem -------------------------------------------------------------
img=$work/ntfs.img
truncate -s 12M "$img"
mkntfs -q -Q -F -c 4096 -L guestctl-ntfs "$img"
ntfs-3g -o compression,streams_interface=windows "$img" "$mnt"
mkdir -p "$mnt/compressed"
setfattr -h -v 0x00000800 -n system.ntfs_attrib_be "$mnt/compressed"
(cd "$src" && find . -mindepth 1 -type d -printf '%P\n') | while read -r d; do mkdir -p "$mnt/$d"; done
(cd "$src" && find . -type f -links 1 -printf '%P\n') | while read -r f; do cp --sparse=always "$src/$f" "$mnt/$f"; done
cp "$src/dir/a.txt" "$mnt/dir/a.txt"
ln "$mnt/dir/a.txt" "$mnt/other/b-hardlink.txt"
printf 'hidden stream\n' > "$mnt/dir/a.txt:secret"
printf 'second stream, longer %s\n' "$(seq 1 50 | tr '\n' ' ')" > "$mnt/large.bin:two"

# reparse points: relative symlink, absolute symlink, junction (raw buffers)
mkdir -p "$mnt/links"
reparse() { # tag sub print flags(-1 = junction) -> hex buffer
  python3 - "$@" <<'PY'
import struct, sys
tag, sub, prn, flags = int(sys.argv[1], 16), sys.argv[2], sys.argv[3], int(sys.argv[4])
s, p = sub.encode('utf-16-le'), prn.encode('utf-16-le')
hdr = struct.pack('<HHHH', 0, len(s), len(s), len(p))
if flags >= 0:
    hdr += struct.pack('<I', flags)
data = hdr + s + p
print('0x' + (struct.pack('<IHH', tag, len(data), 0) + data).hex())
PY
}
: > "$mnt/links/rel"
setfattr -h -v "$(reparse a000000c '..\dir\a.txt' '..\dir\a.txt' 1)" -n system.ntfs_reparse_data "$mnt/links/rel"
: > "$mnt/links/abs"
setfattr -h -v "$(reparse a000000c '\??\C:\dir\sub\deep.txt' 'C:\dir\sub\deep.txt' 0)" -n system.ntfs_reparse_data "$mnt/links/abs"
mkdir "$mnt/links/junction"
setfattr -h -v "$(reparse a0000003 '\??\C:\dir' 'C:\dir' -1)" -n system.ntfs_reparse_data "$mnt/links/junction"

# --- the manifest ---------------------------------------------------------------------
man=$work/manifest
(cd "$src" && find . -mindepth 1 -type d -printf 'd\t/%P\n'
 cd "$src" && find . -type f -printf '%P\n' | sort | while read -r f; do
   printf 'f\t/%s\t%s\t%s\t%s\n' "$f" "$(stat -c %h "$f")" "$(stat -c %s "$f")" "$(sha256sum < "$f" | cut -d' ' -f1)"
 done
 printf 'd\t/links\n') > "$man"
for s in "dir/a.txt:secret" "large.bin:two"; do
  printf 's\t/%s\t%s\t%s\n' "$s" "$(stat -c %s "$mnt/$s")" "$(sha256sum < "$mnt/$s" | cut -d' ' -f1)" >> "$man"
done
printf 'l\t/links/rel\t../dir/a.txt\nl\t/links/abs\t/dir/sub/deep.txt\nl\t/links/junction\t/dir\n' >> "$man"
for f in compressed/text.txt compressed/runs.bin; do
  a=$(getfattr -h -e hex -n system.ntfs_attrib_be "$mnt/$f" | sed -n 's/.*=0x//p')
  if (( 0x$a & 0x800 )); then printf 'c\t/%s\n' "$f" >> "$man"; fi
done
umount "$mnt"
printf 'label\t%s\nuuid\t%s\n' "$(blkid -o value -s LABEL "$img")" "$(blkid -o value -s UUID "$img")" >> "$man"
zstd -q -19 -f "$img" -o "$out/ntfs.img.zst"
sort "$man" > "$out/ntfs.manifest"
ls -l "$out/ntfs.img.zst" "$out/ntfs.manifest"
