#!/usr/bin/env bash
# Regenerates the committed fixtures with real tools (qemu-img, qemu-io, mkfs.ext4, python3):
#   fixtures/demo.qcow2        a small Debian-like guest: GPT disk, one ext4 partition, as a
#                              zlib-compressed qcow2 (the README's first command reads it)
#   fixtures/formats.tar.zst   small qcow2/vmdk images covering every reader feature, with
#                              formats/MANIFEST.tsv holding qemu-img's raw sha256 of each
# Usage: scripts/make-fixtures.sh      (no root needed; takes a few seconds)
set -euo pipefail
cd "$(dirname "$0")/.."
for t in qemu-img qemu-io mkfs.ext4 python3 zstd tar; do
  command -v "$t" >/dev/null || { echo "make-fixtures: $t is missing (apt-get install qemu-utils e2fsprogs python3 zstd tar)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=0

# ---------------------------------------------------------------- demo.qcow2
root="$work/root"
mkdir -p "$root"/{etc,bin,usr/bin,var/lib/dpkg,boot,home/demo,root,tmp}
cat > "$root/etc/os-release" <<'OS'
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
OS
echo "12.5" > "$root/etc/debian_version"
echo "demo-guest" > "$root/etc/hostname"
printf 'LABEL=demo-root / ext4 defaults 0 1\nproc /proc proc defaults 0 0\n' > "$root/etc/fstab"
printf '127.0.0.1 localhost\n127.0.1.1 demo-guest\n' > "$root/etc/hosts"
echo "c0ffee00c0ffee00c0ffee00c0ffee00" > "$root/etc/machine-id"
cat > "$root/var/lib/dpkg/status" <<'DPKG'
Package: base-files
Status: install ok installed
Priority: required
Section: admin
Installed-Size: 341
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files

Package: bash
Status: install ok installed
Priority: required
Section: shells
Installed-Size: 7163
Maintainer: Matthias Klose <doko@debian.org>
Architecture: amd64
Version: 5.2.15-2+b2
Description: GNU Bourne Again SHell

Package: dash
Status: install ok installed
Priority: required
Section: shells
Installed-Size: 212
Maintainer: Andrej Shadura <andrewsh@debian.org>
Architecture: amd64
Version: 0.5.12-2
Description: POSIX-compliant shell

Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12987
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries
DPKG
cp /bin/dash "$root/bin/sh"
cp /bin/ls "$root/usr/bin/ls" 2>/dev/null || cp /usr/bin/ls "$root/usr/bin/ls"
echo "Welcome to the guestctl demo guest." > "$root/etc/motd"
echo "hello from a file inside the demo guest" > "$root/home/demo/hello.txt"
part="$work/part.ext4"
truncate -s 30M "$part"
mkfs.ext4 -q -F -L demo-root -U 5b0e7e21-8d0e-4a5c-9c1f-5a1d2e3f4a5b -E root_owner=0:0 -d "$root" "$part"
python3 - "$work/disk.raw" "$part" <<'PY'
# A 32 MiB GPT disk (protective MBR, primary and backup headers) with one Linux partition
# from LBA 2048 holding the ext4 image.
import struct, sys, uuid, zlib
disk, part = sys.argv[1], sys.argv[2]
SECTOR, SIZE = 512, 32 << 20
n = SIZE // SECTOR
data = open(part, 'rb').read()
first, last = 2048, 2048 + len(data) // SECTOR - 1
img = bytearray(SIZE)
img[first * SECTOR:first * SECTOR + len(data)] = data
# protective MBR
img[446:462] = struct.pack('<B3sB3sII', 0, b'\x00\x02\x00', 0xEE, b'\xff\xff\xff', 1, min(n - 1, 0xFFFFFFFF))
img[510:512] = b'\x55\xaa'
linux = uuid.UUID('0fc63daf-8483-4772-8e79-3d69d8477de4').bytes_le
entry = linux + uuid.UUID('6a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9').bytes_le
entry += struct.pack('<QQQ', first, last, 0) + 'demo-root'.encode('utf-16-le').ljust(72, b'\0')
entries = entry.ljust(128 * 128, b'\0')
ecrc = zlib.crc32(entries)
disk_guid = uuid.UUID('1d2e3f40-5a6b-4c7d-8e9f-a0b1c2d3e4f5').bytes_le
def header(cur, backup, entries_lba):
    h = struct.pack('<8sIIIIQQQQ16sQIII', b'EFI PART', 0x10000, 92, 0, 0, cur, backup,
                    34, n - 34, disk_guid, entries_lba, 128, 128, ecrc)
    h = h[:16] + struct.pack('<I', zlib.crc32(h)) + h[20:]
    return h
img[SECTOR:SECTOR + 92] = header(1, n - 1, 2)
img[2 * SECTOR:2 * SECTOR + len(entries)] = entries
img[(n - 33) * SECTOR:(n - 33) * SECTOR + len(entries)] = entries
img[(n - 1) * SECTOR:(n - 1) * SECTOR + 92] = header(n - 1, 1, n - 33)
open(disk, 'wb').write(img)
PY
qemu-img convert -q -c -O qcow2 -o compression_type=zlib "$work/disk.raw" fixtures/demo.qcow2.tmp
mv fixtures/demo.qcow2.tmp fixtures/demo.qcow2

# ---------------------------------------------------------------- formats.tar.zst
f="$work/formats"
mkdir -p "$f"
python3 - "$f/content.raw" <<'PY'
# 2 MiB + 1536 B: zeros, text, pseudo-random bytes, text in 64 KiB stripes (fixed seed).
import random, sys
r = random.Random(42)
text = b"guestctl fixture: qcow2 and vmdk readers are checked against qemu-img. "
out = bytearray()
for i in range(32):
    kind = i % 4
    if kind == 0: out += bytes(65536)
    elif kind == 2: out += r.randbytes(65536)
    else: out += (text * (65536 // len(text) + 1))[:65536]
out += r.randbytes(1536)
open(sys.argv[1], 'wb').write(out)
PY
(
cd "$f"
q() { qemu-img "$@" >/dev/null; }
io() { local fmt=$1 img=$2; shift 2; local a=(); for c in "$@"; do a+=(-c "$c"); done; qemu-io -f "$fmt" "${a[@]}" "$img" >/dev/null; }
W=("write -P 0x11 0 4k" "write -P 0x22 70000 3000" "write -P 0x33 1M 512k" "write -z 1081344 65536")
for cs in 512 4096 65536 2097152; do
  q create -q -f qcow2 -o cluster_size=$cs "qcow2-c$cs.qcow2" 4M; io qcow2 "qcow2-c$cs.qcow2" "${W[@]}"
done
q create -q -f qcow2 -o compat=0.10 qcow2-v2.qcow2 4M; io qcow2 qcow2-v2.qcow2 "${W[@]}"
q convert -q -c -O qcow2 -o compression_type=zlib content.raw qcow2-zlib.qcow2
q convert -q -c -O qcow2 -o compression_type=zstd,cluster_size=4096 content.raw qcow2-zstd-c4k.qcow2
q convert -q -O qcow2 content.raw chain-base.qcow2
q create -q -f qcow2 -o extended_l2=on,cluster_size=32768 -b chain-base.qcow2 -F qcow2 qcow2-extl2-overlay.qcow2
io qcow2 qcow2-extl2-overlay.qcow2 "write -P 0x44 2048 1024" "write -z 40960 4096" "write -P 0x45 1M 100k"
q create -q -f qcow2 -b qcow2-extl2-overlay.qcow2 -F qcow2 chain-top-larger.qcow2 6M
io qcow2 chain-top-larger.qcow2 "write -P 0x46 5M 4k" "write -P 0x47 100k 8k"
truncate -s 2M raw-base.img; io raw raw-base.img "write -P 0x48 0 2M"
q create -q -f qcow2 -b raw-base.img -F raw qcow2-over-raw.qcow2 4M; io qcow2 qcow2-over-raw.qcow2 "write -P 0x49 1M 4k"
q create -q -f qcow2 -o data_file=qcow2-datafile.bin qcow2-datafile.qcow2 4M; io qcow2 qcow2-datafile.qcow2 "${W[@]}"
for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat; do
  q create -q -f vmdk -o subformat=$sub "vmdk-$sub.vmdk" 4M; io vmdk "vmdk-$sub.vmdk" "${W[@]:0:3}"
done
q convert -q -O vmdk -o subformat=streamOptimized content.raw vmdk-streamOptimized.vmdk
q create -q -f vmdk -o zeroed_grain=on vmdk-zeroed.vmdk 4M; io vmdk vmdk-zeroed.vmdk "write -P 0x50 0 1M" "write -z 128k 128k"
q create -q -f vmdk -b vmdk-monolithicSparse.vmdk -F vmdk vmdk-delta.vmdk; io vmdk vmdk-delta.vmdk "write -P 0x51 2M 64k"
q create -q -f qcow2 -b vmdk-delta.vmdk -F vmdk qcow2-over-vmdk.qcow2; io qcow2 qcow2-over-vmdk.qcow2 "write -P 0x52 3M 4k"
rm -f content.raw
printf 'file\tformat\tvirtual-size\tqemu-img raw sha256\n' > MANIFEST.tsv
for img in *.qcow2 *.vmdk; do
  case "$img" in *-f0*.vmdk|*-s0*.vmdk|*-flat.vmdk) continue ;; esac
  fmt=$(qemu-img info --output=json "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["format"])')
  qemu-img check -q "$img" 2>/dev/null || { [ "$fmt" = vmdk ] || { echo "qemu-img check failed on $img" >&2; exit 1; }; }
  qemu-img convert -O raw "$img" "$img.raw"
  printf '%s\t%s\t%s\t%s\n' "$img" "$fmt" "$(stat -c %s "$img.raw")" "$(sha256sum < "$img.raw" | cut -d' ' -f1)" >> MANIFEST.tsv
  rm -f "$img.raw"
done
)
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work" -cf - formats | zstd -q -19 --long=27 -f -o fixtures/formats.tar.zst
ls -la fixtures/
