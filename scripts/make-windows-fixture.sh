#!/usr/bin/env bash
# Makes fixtures/windows-root.ntfs.zst: an empty Windows-shaped NTFS volume (64 MiB) with the
# directories inspection looks for (/Windows/System32/Config, /Windows/System32/Drivers,
# /Program Files) and /autoexec.bat, laid out like libguestfs's phony Windows guest
# (serial 091A29CC586B609C, meant to be partition 2 at sector 524288 of a disk with MBR
# signature "1234").
#
# The registry hives and cmd.exe are NOT in it: they are third-party test data that stay in
# ../shared/corpus. The test (tests/inspect_windows.rs) copies them in at test time with
# `ntfscp`, which needs no mount and no root, then builds the MBR disk around the volume.
#
# Usage: sudo scripts/make-windows-fixture.sh   (needs root and FUSE once, to mount with ntfs-3g
#        and create the directories; ntfs-3g, zstd, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "make-windows-fixture: $*" >&2; exit 1; }
command -v mkntfs >/dev/null || die "mkntfs missing: apt-get install ntfs-3g"
command -v ntfs-3g >/dev/null || die "ntfs-3g missing: apt-get install ntfs-3g"
command -v zstd >/dev/null || die "zstd missing: apt-get install zstd"
[ "$(id -u)" = 0 ] || die "run as root (ntfs-3g mounts the volume once to create directories)"
work=$(mktemp -d "${TMPDIR:-/tmp}/make-windows-fixture.XXXXXX")
mnt=$work/mnt
cleanup() { mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"; rm -rf "$work"; }
trap cleanup EXIT

vol=$work/root.ntfs
truncate -s 64M "$vol"
mkntfs -q -F -Q -s 512 -p 524288 -H 255 -S 63 -L "" "$vol" >/dev/null 2>&1 || die "mkntfs failed"
mkdir "$mnt"
ntfs-3g "$vol" "$mnt"
mkdir -p "$mnt/Windows/System32/Config" "$mnt/Windows/System32/Drivers" "$mnt/Program Files"
: > "$mnt/autoexec.bat"
umount "$mnt"
# The volume serial virt-inspector reports for the phony guest (boot sector bytes 0x48..0x50,
# and the backup boot sector in the volume's last sector).
python3 - "$vol" <<'PY'
import struct, sys, os
serial = struct.pack('<Q', 0x091A29CC586B609C)
with open(sys.argv[1], 'r+b') as f:
    size = os.fstat(f.fileno()).st_size
    for at in (0, size - 512):
        f.seek(at)
        boot = f.read(512)
        if boot[3:11] == b'NTFS    ':
            f.seek(at + 0x48)
            f.write(serial)
PY
ntfsinfo -m "$vol" >/dev/null 2>&1 || die "ntfsinfo cannot read the result"
zstd -q -19 -f "$vol" -o fixtures/windows-root.ntfs.zst
ls -la fixtures/windows-root.ntfs.zst
