#!/usr/bin/env bash
# Regenerates the committed fixtures with real tools (qemu-img, qemu-io, mkfs.ext4, python3):
#
#   fixtures/formats.tar.zst   formats/: small qcow2 and vmdk images covering every reader feature
#                              (cluster sizes, v2, zlib/zstd compression, extended L2, zero
#                              clusters, backing chains, external data files, a dirty image,
#                              every vmdk subformat, deltas, odd sizes), plus formats/MANIFEST.tsv
#                              with the sha256 of `qemu-img convert -O raw` of each (the oracle).
#   fixtures/demo.qcow2        a 64 MiB GPT disk with one ext4 partition holding a small
#                              Debian-12-like root, as a zlib-compressed qcow2 v3.
#
# Usage: scripts/make-fixtures.sh        (no root; idempotent; about 30 s)
# Needs: qemu-img and qemu-io (qemu-utils), mkfs.ext4 with -d, debugfs and e2fsck (e2fsprogs),
#        zstd, GNU tar, python3.
#
# Every image is written by qemu-img/qemu-io/mke2fs themselves; python3 only writes the raw
# content file, the GPT and two hand-written multi-extent vmdk descriptors, and edits qemu-img
# cannot make: dropping a backing-format extension (qemu-img 10 refuses -b without -F), and
# pinning what is random or time-based (VMDK CIDs, snapshot dates, ext4 ctimes via debugfs) so
# that reruns produce the same bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir=$PWD/fixtures

die() { echo "make-fixtures: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is missing: install $2"; }
need qemu-img "qemu-utils (apt-get install qemu-utils)"
need qemu-io "qemu-utils (apt-get install qemu-utils)"
need mkfs.ext4 "e2fsprogs (apt-get install e2fsprogs)"
need zstd "zstd (apt-get install zstd)"
need tar "GNU tar (apt-get install tar)"
need python3 "python3 (apt-get install python3)"
need sha256sum "coreutils"
need debugfs "e2fsprogs (apt-get install e2fsprogs)"
need e2fsck "e2fsprogs (apt-get install e2fsprogs)"
usage=$(mkfs.ext4 2>&1 || true)
[[ $usage == *"-d root"* ]] || die "mkfs.ext4 is too old: it has no -d (e2fsprogs >= 1.43 needed)"
[[ $(tar --version 2>/dev/null || true) == *"GNU tar"* ]] || die "tar is not GNU tar (--sort=name is needed)"
opts=$(qemu-img create -f qcow2 -o help 2>/dev/null || true)
[[ $opts == *compression_type* && $opts == *extended_l2* && $opts == *data_file_raw* ]] ||
  die "qemu-img is too old: zstd compression, extended_l2 and data_file_raw need qemu >= 5.2"

work=$(mktemp -d "${TMPDIR:-/tmp}/make-fixtures.XXXXXX")
trap 'rm -rf "$work"' EXIT
export LC_ALL=C SOURCE_DATE_EPOCH=0
umask 022
# Every timestamp inside the demo guest (Debian 12.5 came out on 2024-02-10).
demo_time=1707523200
mkdir -p "$out_dir"

# qemu-img, quiet; qemu-io with one -c per argument, failing loudly on any error message.
q() { qemu-img "$@" >/dev/null || die "qemu-img $* failed"; }
io() {
  local fmt=$1 img=$2 c out; shift 2
  local a=()
  for c in "$@"; do a+=(-c "$c"); done
  out=$(qemu-io -f "$fmt" "${a[@]}" "$img" 2>&1) || die "qemu-io on $img failed: $out"
  if grep -qiE 'error|fail|invalid|cannot|not supported' <<<"$out"; then die "qemu-io on $img: $out"; fi
}

# ================================================================ formats.tar.zst
F=$work/formats
mkdir -p "$F"
declare -A DESC=()
# note FILE DESCRIPTION: FILE is an image the manifest lists (its extents/backing files are not).
note() { [ -e "$F/$1" ] || die "note: $1 was not made"; DESC[$1]=$2; }

# ---- content.raw: 8 MiB + 1536 B of mixed blocks, fixed seed; also a raw backing file and the
# target of flat vmdk extents. 64 KiB blocks cycle through: random, per-block text, zeros, a byte
# pattern, 4 KiB random + zeros, 512 B text / 512 B zero stripes, zeros + text, and an unaligned
# random run; 3 MiB..4 MiB is all zero; the tail (past 8 MiB) is 1536 B of text and random.
python3 - "$F/content.raw" <<'PY'
import random, sys
r = random.Random(42)
K = 1024
BLK = 64 * K
def text(i, n):
    s = b"".join(b"content block %04d line %03d: the quick brown fox jumps over the lazy dog\n" % (i, j)
                 for j in range(n // 60 + 1))
    return s[:n]
out = bytearray()
for i in range(128):
    k = i % 8
    if 48 <= i < 64:
        b = bytes(BLK)                                   # 1 MiB zero region
    elif k == 0:
        b = r.randbytes(BLK) if i % 16 == 0 else text(i, BLK)
    elif k == 1:
        b = text(i, BLK)
    elif k == 2:
        b = bytes(BLK)
    elif k == 3:
        b = (bytes([i & 0xff, 0x5a, 0xa5, 0xff]) * (BLK // 4))
    elif k == 4:
        b = r.randbytes(4 * K) + bytes(BLK - 4 * K)
    elif k == 5:
        t = text(i, BLK)
        b = b"".join(t[s:s + 512] + bytes(512) for s in range(0, BLK, 1024))
    elif k == 6:
        b = bytes(BLK // 2) + text(i, BLK // 2)
    else:
        b = bytes(1000) + r.randbytes(3000) + text(i, BLK - 4000)
    assert len(b) == BLK
    out += b
out += text(999, 1000) + r.randbytes(536)
assert len(out) == 8 * K * K + 1536
open(sys.argv[1], "wb").write(out)
PY

cd "$F"
# Writes for the 8 MiB + 1536 B images: unaligned, a tail write, a zero write.
W8=("write -P 0xa1 0 4k" "write -P 0xa2 70001 3001" "write -P 0xa3 3M 640k"
    "write -z 1081344 65536" "write -P 0xa4 8389000 632" "write -z 7340033 3333")
# Writes for the 4 MiB images.
W4=("write -P 0x11 0 4k" "write -P 0x22 70000 3000" "write -P 0x33 1M 512k" "write -z 1081344 65536"
    "write -P 0x34 4193792 512")

# ---- qcow2: cluster sizes and versions
for cs in 512:c512:512-byte 4096:c4k:4-KiB 65536:c64k:64-KiB 2097152:c2m:2-MiB; do
  IFS=: read -r bytes tag label <<<"$cs"
  n=qcow2-v3-$tag.qcow2
  q convert -O qcow2 -o cluster_size="$bytes" content.raw "$n"; io qcow2 "$n" "${W8[@]}"
  note "$n" "qcow2 v3, $label clusters, converted from content.raw then unaligned/tail/zero writes"
done
q convert -O qcow2 -o compat=0.10 content.raw qcow2-v2.qcow2; io qcow2 qcow2-v2.qcow2 "${W8[@]}"
note qcow2-v2.qcow2 "qcow2 v2 (compat=0.10), 64 KiB clusters; zero writes become real zeros (v2 has no zero flag)"
q create -f qcow2 -o compat=0.10,cluster_size=4096 qcow2-v2-c4k-sparse.qcow2 4M; io qcow2 qcow2-v2-c4k-sparse.qcow2 "${W4[@]}"
note qcow2-v2-c4k-sparse.qcow2 "qcow2 v2, 4 KiB clusters, created empty then written by qemu-io (mostly unallocated)"

# ---- qcow2: compression
q convert -c -O qcow2 -o compression_type=zlib content.raw qcow2-zlib.qcow2
note qcow2-zlib.qcow2 "qcow2 v3, zlib-compressed clusters (random clusters stay uncompressed), 64 KiB clusters"
q convert -c -O qcow2 -o compression_type=zlib,cluster_size=4096 content.raw qcow2-zlib-c4k.qcow2
note qcow2-zlib-c4k.qcow2 "qcow2 v3, zlib-compressed, 4 KiB clusters"
q convert -c -O qcow2 -o compression_type=zstd content.raw qcow2-zstd.qcow2
note qcow2-zstd.qcow2 "qcow2 v3, zstd-compressed (compression_type=zstd header field + incompatible bit), 64 KiB clusters"
q convert -c -O qcow2 -o compression_type=zstd,cluster_size=4096 content.raw qcow2-zstd-c4k.qcow2
note qcow2-zstd-c4k.qcow2 "qcow2 v3, zstd-compressed, 4 KiB clusters"
q convert -c -O qcow2 -o compat=0.10 content.raw qcow2-v2-zlib.qcow2
note qcow2-v2-zlib.qcow2 "qcow2 v2, zlib-compressed"
q convert -c -O qcow2 -o compression_type=zlib content.raw qcow2-zlib-rewritten.qcow2
io qcow2 qcow2-zlib-rewritten.qcow2 "${W8[@]}"
note qcow2-zlib-rewritten.qcow2 "zlib-compressed qcow2 partly overwritten: compressed clusters COWed to normal ones, zero flags"
# One cluster per write -c: qemu compresses the clusters of one request in parallel threads, so
# a multi-cluster request lays them out in a different host order from run to run.
q create -f qcow2 -o compression_type=zstd qcow2-zstd-compressed-writes.qcow2 4M
io qcow2 qcow2-zstd-compressed-writes.qcow2 "write -c -P 0xc1 0 64k" "write -c -P 0xc2 128k 64k" "write -c -P 0xc2 192k 64k" \
  "write -P 0xc3 1M 64k" "write -c -P 0xc4 2M 64k" "write -P 0xc5 2M 512" "write -c -P 0xc6 4032k 64k"
note qcow2-zstd-compressed-writes.qcow2 "qcow2 v3 zstd, compressed clusters written one by one by qemu-io (write -c) among normal ones"

# ---- qcow2: extended L2 (sub-clusters)
q convert -O qcow2 -o extended_l2=on,cluster_size=64k content.raw qcow2-extl2-c64k.qcow2
io qcow2 qcow2-extl2-c64k.qcow2 "write -P 0xab 4k 2k" "write -P 0xac 100001 5000" "write -z 200k 6k" \
  "write -z -u 320k 64k" "discard 512k 64k" "write -z 1089k 3k" "write -P 0xad 8389120 1024"
note qcow2-extl2-c64k.qcow2 "extended L2, 64 KiB clusters (2 KiB sub-clusters): sub-cluster writes at unaligned offsets, zero and discarded sub-clusters"
q create -f qcow2 -o extended_l2=on,cluster_size=32k qcow2-extl2-c32k-sparse.qcow2 4M
io qcow2 qcow2-extl2-c32k-sparse.qcow2 "write -P 0xb1 1536 1k" "write -P 0xb2 33k 2k" "write -z 40k 4k" \
  "write -P 0xb3 5000 100" "write -P 0xb4 1M 100k" "write -z 1040k 3k" "discard 1M 32k" "write -P 0xb5 4190208 4096"
note qcow2-extl2-c32k-sparse.qcow2 "extended L2, 32 KiB clusters (1 KiB sub-clusters), created empty: allocated clusters with unallocated sub-clusters"
q create -f qcow2 -o extended_l2=on,cluster_size=32k -b qcow2-v3-c64k.qcow2 -F qcow2 qcow2-extl2-c32k-overlay.qcow2
io qcow2 qcow2-extl2-c32k-overlay.qcow2 "write -P 0x44 2048 1024" "write -z 40960 4096" "write -P 0x45 1M 100k" \
  "write -P 0x46 3000 10" "discard 3M 64k" "write -z -u 5M 32k" "write -P 0x47 8388608 1536"
note qcow2-extl2-c32k-overlay.qcow2 "extended L2 overlay on qcow2-v3-c64k.qcow2: unallocated sub-clusters read the backing, zero sub-clusters hide it"
q convert -c -O qcow2 -o extended_l2=on content.raw qcow2-extl2-zlib.qcow2
io qcow2 qcow2-extl2-zlib.qcow2 "write -P 0xae 70000 3000" "write -z 2M 2k"
note qcow2-extl2-zlib.qcow2 "extended L2 with zlib-compressed clusters (compressed entries carry no sub-cluster bitmap), then sub-cluster writes"

# ---- qcow2: zero clusters, unmap, discard
q convert -O qcow2 content.raw qcow2-zero-clusters.qcow2
io qcow2 qcow2-zero-clusters.qcow2 "write -z 0 128k" "write -z -u 1M 256k" "discard 2M 192k" \
  "write -z 3146728 5000" "write -z 6M 2M" "write -P 0xd0 7M 4k"
note qcow2-zero-clusters.qcow2 "qcow2 v3 over allocated data: zero flag keeping the host cluster (write -z), unmapped zero (write -z -u), discard, partial-cluster zeroing"
q create -f qcow2 -b qcow2-zstd.qcow2 -F qcow2 qcow2-zero-over-backing.qcow2
io qcow2 qcow2-zero-over-backing.qcow2 "write -z 64k 128k" "write -z -u 1M 64k" "discard 2M 128k" \
  "write -P 0xd1 3M 4k" "write -z 4M 1000"
note qcow2-zero-over-backing.qcow2 "overlay on the zstd image: zero clusters and discards must read zero, not the backing data"

# ---- qcow2: other metadata a reader must step over
q create -f qcow2 -o preallocation=metadata qcow2-prealloc-metadata.qcow2 4M; io qcow2 qcow2-prealloc-metadata.qcow2 "${W4[@]}"
note qcow2-prealloc-metadata.qcow2 "preallocation=metadata: every cluster allocated (most never written, reading zero)"
q convert -O qcow2 content.raw qcow2-snapshots.qcow2
q snapshot -c snap1 qcow2-snapshots.qcow2; io qcow2 qcow2-snapshots.qcow2 "${W8[@]}"
q snapshot -c snap2 qcow2-snapshots.qcow2; io qcow2 qcow2-snapshots.qcow2 "write -P 0xe1 5M 100k" "write -z 0 64k"
python3 - qcow2-snapshots.qcow2 <<'PY'
# Snapshot table entries carry their creation time: pin it (date_sec, date_nsec) for stable reruns.
import struct, sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
n, off = struct.unpack(">IQ", b[60:72])
for i in range(n):
    _, _, id_len, name_len, _, _, _, _, extra = struct.unpack(">QIHHIIQII", b[off:off + 40])
    b[off + 16:off + 24] = struct.pack(">II", 1700000000 + i, 0)
    off += 40 + extra + id_len + name_len
    off = (off + 7) // 8 * 8
open(p, "wb").write(b)
PY
note qcow2-snapshots.qcow2 "two internal snapshots; the active layer shares clusters (refcount 2, no COPIED flag) and diverges"
q convert -O qcow2 -o refcount_bits=1,cluster_size=4096 content.raw qcow2-refcount1-bitmap.qcow2
q bitmap --add qcow2-refcount1-bitmap.qcow2 dirty0; io qcow2 qcow2-refcount1-bitmap.qcow2 "write -P 0xe2 1M 64k"
note qcow2-refcount1-bitmap.qcow2 "refcount_bits=1, 4 KiB clusters, a persistent dirty bitmap (bitmaps extension, autoclear bit)"

# ---- qcow2: dirty bit. A lazy_refcounts image whose qemu-io process aborts mid-session keeps
# its dirty bit and has stale refcounts, so `qemu-img check` reports errors on it by design
# (qemu repairs such images when it opens them read-write; read-only readers just read them).
q create -f qcow2 -o lazy_refcounts=on qcow2-dirty.qcow2 4M
{ (ulimit -c 0; exec qemu-io -f qcow2 -c "write -P 0xdd 0 256k" -c "write -P 0xde 1M 64k" \
  -c "write -P 0xdf 70000 3000" -c abort qcow2-dirty.qcow2) >/dev/null 2>&1; } 2>/dev/null || true
python3 - qcow2-dirty.qcow2 <<'PY' || die "qcow2-dirty.qcow2: the abort did not leave the dirty bit set"
import struct, sys
b = open(sys.argv[1], "rb").read(80)
sys.exit(0 if struct.unpack(">Q", b[72:80])[0] & 1 else 1)
PY
note qcow2-dirty.qcow2 "dirty bit set (lazy_refcounts, qemu-io aborted after writes): refcounts stale, L2 tables valid; qemu-img check reports errors by design"

# ---- backing chains
q create -f qcow2 -b content.raw -F raw qcow2-over-raw.qcow2
io qcow2 qcow2-over-raw.qcow2 "write -P 0x49 1M 4k" "write -P 0x4a 5000 3" "write -z 6M 64k"
note qcow2-over-raw.qcow2 "qcow2 overlay on the raw content.raw (backing format raw)"
q create -f qcow2 chain3-base.qcow2 6M
io qcow2 chain3-base.qcow2 "write -P 0x31 0 2M" "write -P 0x32 4M 1M" "write -P 0x33 6290432 1024"
q create -f qcow2 -b chain3-base.qcow2 -F qcow2 chain3-mid.qcow2
io qcow2 chain3-mid.qcow2 "write -P 0x41 1M 2M" "write -z 4M 64k" "write -P 0x42 4259840 100"
q create -f qcow2 -o cluster_size=4096 -b chain3-mid.qcow2 -F qcow2 chain3-top.qcow2
io qcow2 chain3-top.qcow2 "write -P 0x51 1536 1k" "write -P 0x52 5M 100k" "discard 1M 8k" "write -P 0x53 4194404 8"
note chain3-base.qcow2 "bottom of a three-image qcow2 chain (6 MiB)"
note chain3-mid.qcow2 "middle of the chain: writes and a zero range over chain3-base.qcow2"
note chain3-top.qcow2 "top of the chain (4 KiB clusters) over chain3-mid.qcow2 over chain3-base.qcow2"
q create -f qcow2 -o compat=0.10 -b chain3-mid.qcow2 -F qcow2 qcow2-v2-overlay.qcow2
io qcow2 qcow2-v2-overlay.qcow2 "write -z 1M 64k" "write -P 0x54 2M 4k"
note qcow2-v2-overlay.qcow2 "qcow2 v2 overlay on chain3-mid.qcow2 (v2 cannot store zero clusters: zeros are written)"
q create -f qcow2 -o cluster_size=65536 qcow2-odd-5M512.qcow2 $((5 * 1048576 + 512))
io qcow2 qcow2-odd-5M512.qcow2 "write -P 0x71 0 1M" "write -P 0x72 5M 512" "write -P 0x73 5177344 4096"
note qcow2-odd-5M512.qcow2 "odd virtual size 5 MiB + 512 B (the last cluster is mostly past the end)"
q create -f qcow2 -b qcow2-odd-5M512.qcow2 -F qcow2 qcow2-larger-than-backing.qcow2 8M
io qcow2 qcow2-larger-than-backing.qcow2 "write -P 0x61 5100k 100k" "write -P 0x62 7M 4k" "write -P 0x63 5M 256"
note qcow2-larger-than-backing.qcow2 "8 MiB overlay on a 5 MiB + 512 B backing: reads past the backing's end are zero, also inside the straddling cluster"
q create -f qcow2 -b chain3-base.qcow2 -F qcow2 qcow2-smaller-than-backing.qcow2 $((2 * 1048576 + 1024))
io qcow2 qcow2-smaller-than-backing.qcow2 "write -P 0x64 1M 4k"
note qcow2-smaller-than-backing.qcow2 "2 MiB + 1 KiB overlay on the 6 MiB chain3-base.qcow2: only the overlay's size is visible"
q convert -O vmdk -o subformat=monolithicSparse content.raw vmdk-base-for-qcow2.vmdk
io vmdk vmdk-base-for-qcow2.vmdk "write -P 0x81 2M 64k"
q create -f qcow2 -b vmdk-base-for-qcow2.vmdk -F vmdk qcow2-over-vmdk.qcow2
io qcow2 qcow2-over-vmdk.qcow2 "write -P 0x52 3M 4k" "write -z 2M 4k"
note vmdk-base-for-qcow2.vmdk "monolithicSparse vmdk used as a qcow2 backing file"
note qcow2-over-vmdk.qcow2 "qcow2 overlay whose backing file is a monolithicSparse vmdk (backing format vmdk)"
# Backing files in a subdirectory: the top names "backing/mid.qcow2"; mid (inside backing/)
# names plain "base.qcow2", which only resolves relative to mid's own directory.
mkdir -p backing
( cd backing
  q create -f qcow2 base.qcow2 4M; io qcow2 base.qcow2 "write -P 0x91 0 1M" "write -P 0x92 3M 1M"
  q create -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2; io qcow2 mid.qcow2 "write -P 0x93 512k 1M" )
q create -f qcow2 -b backing/mid.qcow2 -F qcow2 qcow2-backing-in-subdir.qcow2
io qcow2 qcow2-backing-in-subdir.qcow2 "write -P 0x94 1M 4k"
note qcow2-backing-in-subdir.qcow2 "backing 'backing/mid.qcow2', whose own backing 'base.qcow2' is relative to backing/ (not to the top image)"
# No backing format stored: qemu-img 10 refuses to create that (-b without -F), so the
# backing-format header extension (0xe2792aca) is dropped afterwards; qemu then probes the format.
q create -f qcow2 -b chain3-base.qcow2 -F qcow2 qcow2-no-backing-fmt.qcow2
io qcow2 qcow2-no-backing-fmt.qcow2 "write -P 0x95 2M 64k" "write -z 0 64k"
python3 - qcow2-no-backing-fmt.qcow2 <<'PY'
import struct, sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
version, bf_off, bf_len = struct.unpack(">IQI", b[4:20])
hdr_len = struct.unpack(">I", b[100:104])[0] if version >= 3 else 72
start = off = hdr_len
kept, found = bytearray(), False
while True:
    typ, ln = struct.unpack(">II", b[off:off + 8])
    body = b[off + 8:off + 8 + ln]
    off += 8 + (ln + 7) // 8 * 8
    if typ == 0:
        break
    if typ == 0xE2792ACA:
        found = True
        continue
    kept += struct.pack(">II", typ, ln) + body + bytes((8 - ln % 8) % 8)
assert found, "no backing format extension"
kept += bytes(8)                       # end-of-extensions marker
assert start + len(kept) <= bf_off
b[start:bf_off] = kept + bytes(bf_off - start - len(kept))
open(p, "wb").write(b)
PY
qemu-img info qcow2-no-backing-fmt.qcow2 2>/dev/null | grep -q 'backing file format' && die "backing format still stored"
note qcow2-no-backing-fmt.qcow2 "overlay on chain3-base.qcow2 with no backing format stored (extension removed): the backing must be probed"

# ---- qcow2: external data files
q create -f qcow2 -o data_file=qcow2-datafile.data qcow2-datafile.qcow2 4M
io qcow2 qcow2-datafile.qcow2 "${W4[@]}" "write -z -u 1M 64k"
note qcow2-datafile.qcow2 "external data file qcow2-datafile.data (data_file_raw=off): guest data only where L2 maps it"
q convert -O qcow2 -o data_file=qcow2-datafile-raw.data,data_file_raw=on content.raw qcow2-datafile-raw.qcow2
io qcow2 qcow2-datafile-raw.qcow2 "${W8[@]}"
note qcow2-datafile-raw.qcow2 "external data file with data_file_raw=on (autoclear bit): the .data file is the raw disk"

# ---- vmdk
for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat; do
  q convert -O vmdk -o subformat=$sub content.raw "vmdk-$sub.vmdk"; io vmdk "vmdk-$sub.vmdk" "${W8[@]}"
done
note vmdk-monolithicSparse.vmdk "vmdk monolithicSparse (hosted sparse extent, embedded descriptor), converted then rewritten"
note vmdk-monolithicFlat.vmdk "vmdk monolithicFlat: text descriptor + vmdk-monolithicFlat-flat.vmdk"
note vmdk-twoGbMaxExtentSparse.vmdk "vmdk twoGbMaxExtentSparse: text descriptor + sparse extent -s001.vmdk"
note vmdk-twoGbMaxExtentFlat.vmdk "vmdk twoGbMaxExtentFlat: text descriptor + flat extent -f001.vmdk"
q convert -O vmdk -o subformat=streamOptimized content.raw vmdk-streamOptimized.vmdk
note vmdk-streamOptimized.vmdk "vmdk streamOptimized: deflate-compressed grains, markers, footer with the grain directory"
q create -f vmdk -b vmdk-monolithicSparse.vmdk -F vmdk vmdk-delta.vmdk
io vmdk vmdk-delta.vmdk "write -P 0x51 2M 64k" "write -P 0x52 70000 3000" "write -z 4M 64k"
q create -f vmdk -b vmdk-delta.vmdk -F vmdk vmdk-delta2.vmdk
io vmdk vmdk-delta2.vmdk "write -P 0x53 2080k 64k" "write -P 0x54 8389120 1024"
note vmdk-delta.vmdk "vmdk delta (parentFileNameHint) on vmdk-monolithicSparse.vmdk"
note vmdk-delta2.vmdk "vmdk delta on vmdk-delta.vmdk: a three-image vmdk chain"
q create -f vmdk -o zeroed_grain=on vmdk-zeroed-grain.vmdk 4M
io vmdk vmdk-zeroed-grain.vmdk "write -P 0x50 0 1M" "write -z 128k 128k" "write -z 2M 64k" "write -P 0x55 3146728 5000"
note vmdk-zeroed-grain.vmdk "vmdk with zeroed_grain=on: write -z leaves zeroed-grain table entries (GTE 1)"
q create -f vmdk -o zeroed_grain=on -b vmdk-monolithicSparse.vmdk -F vmdk vmdk-zeroed-grain-delta.vmdk
io vmdk vmdk-zeroed-grain-delta.vmdk "write -z 0 128k" "write -P 0x56 1M 4k"
note vmdk-zeroed-grain-delta.vmdk "zeroed_grain vmdk delta: zeroed grains hide the parent's data"
q create -f vmdk vmdk-odd-5M512.vmdk $((5 * 1048576 + 512))
io vmdk vmdk-odd-5M512.vmdk "write -P 0x74 0 64k" "write -P 0x75 5M 512" "write -P 0x76 5177344 4096"
note vmdk-odd-5M512.vmdk "monolithicSparse vmdk of 5 MiB + 512 B (last grain partly past the end)"
python3 -c 'import sys; open(sys.argv[1], "wb").write(open(sys.argv[2], "rb").read()[:1048576 + 1536])' \
  odd.raw content.raw
q convert -O vmdk -o subformat=streamOptimized odd.raw vmdk-odd-1M3s-stream.vmdk
note vmdk-odd-1M3s-stream.vmdk "streamOptimized vmdk of 1 MiB + 3 sectors"
q convert -c -O qcow2 -o compression_type=zstd,cluster_size=4096 odd.raw qcow2-odd-1M3s-zstd.qcow2
note qcow2-odd-1M3s-zstd.qcow2 "zstd-compressed qcow2 of 1 MiB + 3 sectors (last compressed cluster is short)"
q create -f qcow2 -o cluster_size=4096 qcow2-odd-1M3s-c4k.qcow2 $((1048576 + 1536))
io qcow2 qcow2-odd-1M3s-c4k.qcow2 "write -P 0x77 1M 1536" "write -P 0x78 4000 200"
note qcow2-odd-1M3s-c4k.qcow2 "qcow2, 4 KiB clusters, 1 MiB + 3 sectors, tail written"
rm -f odd.raw
# Multi-extent vmdk descriptors, hand-written (qemu-img never emits mixed extents):
#  FLAT extents at sector offsets into content.raw (one over its all-zero MiB), and two SPARSE
#  extents taken from two twoGbMaxExtentSparse images of different sizes. No ZERO extent and no
#  RDONLY/NOACCESS access: qemu silently drops such extent lines (shrinking the disk), so qemu-img
#  is no oracle for them.
q create -f vmdk -o subformat=twoGbMaxExtentSparse vmdk-multi-a.vmdk 2M
io vmdk vmdk-multi-a.vmdk "write -P 0x57 0 64k" "write -P 0x58 1M 100k"
q create -f vmdk -o subformat=twoGbMaxExtentSparse vmdk-multi-b.vmdk 3M
io vmdk vmdk-multi-b.vmdk "write -P 0x59 64k 64k" "write -P 0x5a 3145216 512"
rm -f vmdk-multi-a.vmdk vmdk-multi-b.vmdk
cat > vmdk-multiextent-flat.vmdk <<'VMDK'
# Disk DescriptorFile
version=1
CID=00000001
parentCID=ffffffff
createType="twoGbMaxExtentFlat"

# Extent description
RW 4096 FLAT "content.raw" 2048
RW 2048 FLAT "content.raw" 6144
RW 1024 FLAT "content.raw" 0
RW 3 FLAT "content.raw" 16384

# The Disk Data Base
#DDB

ddb.virtualHWVersion = "4"
ddb.adapterType = "ide"
VMDK
note vmdk-multiextent-flat.vmdk "hand-written descriptor: four FLAT extents at sector offsets into content.raw, the last 3 sectors long"
cat > vmdk-multiextent-sparse.vmdk <<'VMDK'
# Disk DescriptorFile
version=1
CID=00000001
parentCID=ffffffff
createType="twoGbMaxExtentSparse"

# Extent description
RW 4096 SPARSE "vmdk-multi-a-s001.vmdk"
RW 6144 SPARSE "vmdk-multi-b-s001.vmdk"

# The Disk Data Base
#DDB

ddb.virtualHWVersion = "4"
ddb.adapterType = "ide"
VMDK
note vmdk-multiextent-sparse.vmdk "hand-written descriptor: two SPARSE extents of different sizes (2 MiB, 3 MiB)"

# VMDK CIDs are random per qemu-img run (and printed with or without zero padding): pin every
# CID, and every parentCID that names a parent, to 00000001 so chains stay consistent and reruns
# give the same bytes. An embedded descriptor is rewritten inside its fixed-size area.
python3 - *.vmdk <<'PY'
import re, struct, sys
for p in sys.argv[1:]:
    b = bytearray(open(p, "rb").read())
    if b[:4] == b"KDMV":
        off, size = (v * 512 for v in struct.unpack("<QQ", b[28:44]))
        if off == 0:
            continue                       # a bare sparse extent: no descriptor
    else:
        off, size = 0, len(b)
    if off == 0 and size > 65536:
        continue                           # a flat extent
    d = bytes(b[off:off + size])
    text = d.split(b"\0", 1)[0]
    t2 = re.sub(rb"(?m)^CID=[0-9a-fA-F]{1,8}$", b"CID=00000001", text)
    t2 = re.sub(rb"(?m)^parentCID=(?!ffffffff$)[0-9a-fA-F]{1,8}$", b"parentCID=00000001", t2)
    if t2 == text:
        continue
    if b[:4] == b"KDMV":
        assert len(t2) < size, p + ": the pinned descriptor does not fit"
        b[off:off + size] = t2.ljust(size, b"\0")
    else:
        b = bytearray(t2)
    open(p, "wb").write(b)
PY

# ---- check every image with qemu-img and write the manifest (the oracle)
{
  printf 'file\tformat\tvirtual-size\tqemu-img-raw-sha256\tdescription\n'
  for img in $(printf '%s\n' "${!DESC[@]}" | sort); do
    fmt=$(qemu-img info --output=json "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["format"])')
    set +e; chk=$(qemu-img check "$img" 2>&1); rc=$?; set -e
    case "$rc:$img" in
      0:*|63:*) ;;                                        # 63: the format has no check
      2:qcow2-dirty.qcow2|3:qcow2-dirty.qcow2) ;;         # stale refcounts, by design
      *) die "qemu-img check $img: exit $rc: $chk" ;;
    esac
    qemu-img convert -O raw "$img" "$work/oracle.raw" || die "qemu-img convert $img failed"
    printf '%s\t%s\t%s\t%s\t%s\n' "$img" "$fmt" "$(stat -c %s "$work/oracle.raw")" \
      "$(sha256sum < "$work/oracle.raw" | cut -d' ' -f1)" "${DESC[$img]}"
    rm -f "$work/oracle.raw"
  done
} > MANIFEST.tsv
cd "$work"
find formats -exec touch -h -d @0 {} +
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode=go-w,a+rX -cf formats.tar formats
zstd -q -19 --long=27 -T0 -f formats.tar -o "$out_dir/formats.tar.zst.tmp"
mv "$out_dir/formats.tar.zst.tmp" "$out_dir/formats.tar.zst"

# ================================================================ demo.qcow2
root=$work/root
mkdir -p "$root"/{etc/apt,bin,usr/bin,usr/lib,usr/share/doc,var/lib/dpkg,var/log,boot,home/demo,root,tmp}
cat > "$root/etc/os-release" <<'OS'
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
OS
cp "$root/etc/os-release" "$root/usr/lib/os-release"
echo "12.5" > "$root/etc/debian_version"
echo "demo-guest" > "$root/etc/hostname"
printf '# /etc/fstab: static file system information.\nLABEL=demo-root / ext4 defaults 0 1\nproc /proc proc defaults 0 0\n' > "$root/etc/fstab"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tdemo-guest\n' > "$root/etc/hosts"
echo "c0ffee00c0ffee00c0ffee00c0ffee00" > "$root/etc/machine-id"
printf 'root:x:0:0:root:/root:/bin/sh\ndemo:x:1000:1000:Demo User,,,:/home/demo:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\ndemo:x:1000:\n' > "$root/etc/group"
echo "deb http://deb.debian.org/debian bookworm main" > "$root/etc/apt/sources.list"
echo "Welcome to the guestctl demo guest." > "$root/etc/motd"
cat > "$root/var/lib/dpkg/status" <<'DPKG'
Package: base-files
Essential: yes
Status: install ok installed
Priority: required
Section: admin
Installed-Size: 341
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy of a Debian system.

Package: bash
Essential: yes
Status: install ok installed
Priority: required
Section: shells
Installed-Size: 7163
Maintainer: Matthias Klose <doko@debian.org>
Architecture: amd64
Version: 5.2.15-2+b2
Description: GNU Bourne Again SHell

Package: dash
Essential: yes
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
sh_elf=$(readlink -f /bin/dash 2>/dev/null || readlink -f /bin/sh)
[[ $(head -c 4 "$sh_elf" | od -An -c | tr -d ' ') == 177ELF ]] || die "/bin/dash is needed (an ELF for the guest's /bin/sh)"
cp "$sh_elf" "$root/bin/sh"
cp "$(readlink -f /bin/ls)" "$root/usr/bin/ls" 2>/dev/null || cp "$(command -v ls)" "$root/usr/bin/ls"
ln -s /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"
ln -s ../../bin/sh "$root/usr/bin/sh"
ln -s /run "$root/var/run"
echo "hello from a file inside the demo guest" > "$root/home/demo/hello.txt"
for i in $(seq -w 1 150); do echo "package doc $i" > "$root/usr/share/doc/pkg-$i"; done  # an htree directory
printf 'log line\n' > "$root/var/log/dpkg.log"
python3 -c 'f = open("'"$root"'/var/log/sparse.img", "wb"); f.seek(3 << 20); f.write(b"end-of-sparse-file\n")'
chmod 0700 "$root/root"; chmod 1777 "$root/tmp"
find "$root" -exec touch -h -d "@$demo_time" {} +

python3 - "$work/disk.raw" "$work/part.ext4" <<'PY'
# A 64 MiB disk with a GPT (protective MBR, primary + backup header and entries) and one Linux
# partition from LBA 2048; the partition image (sized here) is filled by mkfs.ext4 below.
import struct, sys, uuid, zlib
disk, part = sys.argv[1], sys.argv[2]
SECTOR, SIZE = 512, 64 << 20
n = SIZE // SECTOR
first = 2048
last = first + (n - 34 - first) // 8 * 8 - 1
img = bytearray(SIZE)
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
    return h[:16] + struct.pack('<I', zlib.crc32(h)) + h[20:]
img[SECTOR:SECTOR + 92] = header(1, n - 1, 2)
img[2 * SECTOR:2 * SECTOR + len(entries)] = entries
img[(n - 33) * SECTOR:(n - 33) * SECTOR + len(entries)] = entries
img[(n - 1) * SECTOR:(n - 1) * SECTOR + 92] = header(n - 1, 1, n - 33)
open(disk, 'wb').write(img)
with open(part, 'wb') as f:
    f.truncate((last - first + 1) * SECTOR)
PY
E2FSPROGS_FAKE_TIME=$demo_time mkfs.ext4 -q -F -b 4096 -L demo-root -U 5b0e7e21-8d0e-4a5c-9c1f-5a1d2e3f4a5b \
  -E root_owner=0:0,hash_seed=3c1e8f4a-7b2d-4e6f-9a0b-1c2d3e4f5a6b,lazy_itable_init=0 \
  -d "$root" "$work/part.ext4" || die "mkfs.ext4 -d failed"
# mke2fs -d copies each file's owner (the user running this script) and ctime (which touch
# cannot set): set owners as in a real guest (root; demo's home 1000:1000) and pin ctimes with
# debugfs, so that reruns anywhere give the same bytes (mke2fs's own times use
# E2FSPROGS_FAKE_TIME).
(cd "$root" && find . | sort | sed 's|^\.||; s|^$|/|' | while read -r p; do
  id=0; [[ $p == /home/demo* ]] && id=1000
  printf 'sif %s ctime @%s\nsif %s ctime_extra 0\nsif %s uid %s\nsif %s gid %s\n' \
    "$p" "$demo_time" "$p" "$p" "$id" "$p" "$id"
done) > "$work/inodes.cmds"
E2FSPROGS_FAKE_TIME=$demo_time debugfs -w -f "$work/inodes.cmds" "$work/part.ext4" >/dev/null 2>&1 ||
  die "debugfs could not set owners and ctimes"
[[ $(debugfs -R 'stat /home/demo/hello.txt' "$work/part.ext4" 2>/dev/null) == *"User:  1000"* ]] ||
  die "debugfs did not set the owner of /home/demo/hello.txt"
e2fsck -fn "$work/part.ext4" >/dev/null 2>&1 || die "e2fsck finds errors in the demo file system"
python3 - "$work/disk.raw" "$work/part.ext4" <<'PY'
import sys
with open(sys.argv[1], 'r+b') as d, open(sys.argv[2], 'rb') as p:
    d.seek(2048 * 512)
    d.write(p.read())
PY
q convert -c -O qcow2 -o compression_type=zlib "$work/disk.raw" "$out_dir/demo.qcow2.tmp"
qemu-img check -q "$out_dir/demo.qcow2.tmp" || die "qemu-img check failed on demo.qcow2"
mv "$out_dir/demo.qcow2.tmp" "$out_dir/demo.qcow2"

du -h "$out_dir"/formats.tar.zst "$out_dir"/demo.qcow2
echo "make-fixtures: $(( $(wc -l < "$F/MANIFEST.tsv") - 1 )) images in formats.tar.zst, all checked and hashed by qemu-img"
