#!/bin/bash
# The oracle of tests/integration/vhdx_chains.rs `hyperv_child_over_a_made_parent`: the
# corpus's Hyper-V checkpoint (dissect.hypervisor differencing.avhdx, whose parent is not
# shipped) read over a parent made here, by an independent reader, dissect.hypervisor (qemu
# cannot read differencing VHDX). Prints the sha256 the test expects; run it again after
# changing the parent recipe below (it must match make_hyperv_parent() in the test).
#
# Parent: `qemu-img create -f vhdx 8G` (2 MiB blocks, like the child), qemu-io writes of
# fixed patterns, then both headers' DataWriteGuid set to the child's parent_linkage (with a
# fresh CRC-32C), named as the child's relative_path says.
# The hashed bytes: every 2 MiB block the child's BAT holds (fully or partially present)
# and every range the parent wrote, in offset order (8 GiB in full would take minutes).
# Needs qemu-img, qemu-io, python3 with venv, network access to PyPI (pip) once.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
venv=${DISSECT_VENV:-$work/venv}
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q dissect.hypervisor; }
zcat ../shared/corpus/dissect.hypervisor/tests/_data/disk/vhdx/differencing.avhdx.gz > "$work/differencing.avhdx"
parent="$work/Generation 1_49C4BAF3-4B25-4406-8C4B-D39E65C32385.avhdx"
qemu-img create -q -f vhdx -o block_size=2M "$parent" 8G
qemu-io -f vhdx -c 'write -P 0x11 0 16M' -c 'write -P 0x22 512M 4M' -c 'write -P 0x33 2054M 8M' \
    -c 'write -P 0x44 7000M 64M' "$parent" >/dev/null
"$venv/bin/python" - "$work/differencing.avhdx" "$parent" <<'PY'
import hashlib, struct, sys, uuid
child, parent = sys.argv[1], sys.argv[2]

def crc32c(data):
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        t.append(c)
    crc = 0xFFFFFFFF
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF

link = uuid.UUID("ff34003b-11ed-4cf8-a166-b2be05e20b80").bytes_le
with open(parent, "r+b") as f:
    for off in (0x10000, 0x20000):
        f.seek(off); h = bytearray(f.read(4096))
        h[32:48] = link; h[4:8] = b"\0" * 4
        h[4:8] = struct.pack("<I", crc32c(bytes(h)))
        f.seek(off); f.write(h)

from dissect.hypervisor.disk.vhdx import VHDX
v = VHDX(child)
bs, cr = v.block_size, v.bat.chunk_ratio
ranges = []
with open(child, "rb") as f:
    f.seek(0x300000)
    bat = f.read(8 * 4098)
for i in range(len(bat) // 8):
    e, = struct.unpack_from("<Q", bat, 8 * i)
    if (i + 1) % (cr + 1) == 0 or e & 7 not in (6, 7):
        continue
    block = i - i // (cr + 1)
    ranges.append((block * bs, bs))
ranges += [(0, 16 << 20), (512 << 20, 4 << 20), (2054 << 20, 8 << 20), (7000 << 20, 64 << 20)]
h = hashlib.sha256()
for off, n in sorted(set(ranges)):
    v.seek(off)
    h.update(v.read(n))
print(h.hexdigest(), len(set(ranges)))
PY
