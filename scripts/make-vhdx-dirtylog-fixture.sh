#!/bin/bash
# Builds fixtures/vhdx/dirty-log*.vhdx.zst: VHDX files whose last metadata update exists only
# in the log, made by qemu itself. No root needed; needs qemu-img, qemu-io, python3, zstd.
#
# qemu writes every BAT update as a log entry, flushes it, applies it, then clears the
# header's LogGuid. To stop it between writing an entry and applying it, the image is opened
# through blkdebug: `break pwritev a` suspends the next write, `resume a` lets it go, and
# qemu-io's `abort` kills the process where it stands (nothing is flushed or closed). The
# script steps through the writes of one guest write to a new block and aborts before the
# k-th, then keeps the image if the header's LogGuid is set:
#   dirty-log.vhdx         the entry of the BAT update of block 3 is complete: it must be
#                          replayed (blocks 0 and 2 were written and committed before)
#   dirty-log-torn.vhdx    LogGuid set and the entry's descriptor sector written, but not its data
#                          sector (its CRC-32C fails): nothing to replay
#
# The oracle for each (never guestctl's output): a copy opened read-write by qemu-io (which
# replays the log), then `qemu-img convert -O raw`; its sha256 goes to <name>.sha256. For
# dirty-log.vhdx the script also checks that the log matters: the same image with LogGuid
# cleared (headers rewritten with a fresh CRC-32C) converts to different bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
out=fixtures/vhdx
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in qemu-img qemu-io python3 zstd sha256sum; do
    command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done

# Prints the current header's LogGuid (hex, all zeros when clean); with "clear", rewrites
# both headers with a zero LogGuid.
header_tool() {
    python3 - "$@" <<'PY'
import struct, sys
def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff
path = sys.argv[1]
with open(path, 'r+b') as f:
    best = None
    for off in (0x10000, 0x20000):
        f.seek(off); h = bytearray(f.read(4096))
        stored = struct.unpack_from('<I', h, 4)[0]
        z = bytearray(h); z[4:8] = b'\0' * 4
        if h[:4] == b'head' and crc32c(bytes(z)) == stored:
            seq = struct.unpack_from('<Q', h, 8)[0]
            if best is None or seq > best[0]:
                best = (seq, off, h)
        if len(sys.argv) > 2 and sys.argv[2] == 'clear' and h[:4] == b'head':
            h[48:64] = b'\0' * 16; h[4:8] = b'\0' * 4
            h[4:8] = struct.pack('<I', crc32c(bytes(h)))
            f.seek(off); f.write(h)
    print(best[2][48:64].hex() if best else 'none')
PY
}

# Makes $1 by aborting qemu-io before the $2-th write of the last guest write.
make_one() {
    local name=$1 k=$2
    local img=$work/$name
    qemu-img create -q -f vhdx -o log_size=1M,block_size=1M "$img" 12M
    local cmds=(-c 'write -P 0x5a 0 1M' -c 'write -P 0x33 2M 512'
                -c 'break pwritev a' -c 'aio_write -P 0xc3 3M 2M' -c 'wait_break a')
    for ((i = 1; i < k; i++)); do
        cmds+=(-c 'break pwritev a' -c 'resume a' -c 'wait_break a')
    done
    cmds+=(-c abort)
    (cd "$work" && ulimit -c 0 && qemu-io -f vhdx "${cmds[@]}" "blkdebug::$name" >/dev/null 2>&1) || true
    local g
    g=$(header_tool "$img")
    if [ "$g" = "none" ] || [ "$g" = "00000000000000000000000000000000" ]; then
        echo "$name: the header's LogGuid is not set (k=$k): qemu's write order changed?" >&2
        exit 1
    fi
    cp "$img" "$work/copy.vhdx"
    qemu-io -f vhdx -c quit "$work/copy.vhdx"
    qemu-img convert -O raw "$work/copy.vhdx" "$work/copy.raw"
    sha256sum < "$work/copy.raw" | cut -d' ' -f1 > "$out/$name.sha256"
    zstd -q -19 -f "$img" -o "$out/$name.zst"
    echo "$name: LogGuid $g, oracle $(cat "$out/$name.sha256")"
}

# The pwritev events of one new-block write: data, log sectors, the BAT sector, headers.
make_one dirty-log.vhdx 6
make_one dirty-log-torn.vhdx 5

# The log must matter for dirty-log.vhdx: without it the bytes differ.
zstd -q -d -f "$out/dirty-log.vhdx.zst" -o "$work/nolog.vhdx"
header_tool "$work/nolog.vhdx" clear >/dev/null
qemu-img convert -O raw "$work/nolog.vhdx" "$work/nolog.raw"
if [ "$(sha256sum < "$work/nolog.raw" | cut -d' ' -f1)" = "$(cat "$out/dirty-log.vhdx.sha256")" ]; then
    echo "dirty-log.vhdx: replaying the log changes nothing; the fixture would test nothing" >&2
    exit 1
fi
# And it must not matter for the torn one (qemu finds no valid entry).
zstd -q -d -f "$out/dirty-log-torn.vhdx.zst" -o "$work/torn.vhdx"
header_tool "$work/torn.vhdx" clear >/dev/null
qemu-img convert -O raw "$work/torn.vhdx" "$work/torn.raw"
[ "$(sha256sum < "$work/torn.raw" | cut -d' ' -f1)" = "$(cat "$out/dirty-log-torn.vhdx.sha256")" ] || {
    echo "dirty-log-torn.vhdx: qemu replayed something from the torn log" >&2; exit 1; }
ls -l "$out"
