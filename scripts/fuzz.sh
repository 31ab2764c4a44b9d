#!/usr/bin/env bash
# Runs the cargo-fuzz targets with seeds made by qemu-img.
# Usage: scripts/fuzz.sh [TARGET...] [-t SECONDS]   (default: every target, 60 s each)
# Needs: nightly toolchain (`cargo +nightly`), cargo-fuzz, qemu-img, e2fsprogs (ext seeds).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=60
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    -t) secs="$2"; shift 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(detect qcow2 vmdk vhd vdi ext ext_journal part inspect_parsers registry lvm fat ntfs lznt1 reparse ufs xfs xfs_log vhdx)
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 1; }
command -v qemu-img >/dev/null || { echo "qemu-img missing: apt-get install qemu-utils" >&2; exit 1; }

seed_dir() { mkdir -p "fuzz/corpus/$1"; echo "fuzz/corpus/$1"; }
make_seeds() {
  local t; t=$(mktemp -d)
  head -c 65536 /dev/urandom > "$t/rand"
  # qcow2 seeds: small virtual sizes keep the files small.
  local q; q=$(seed_dir qcow2)
  for opts in "cluster_size=512" "cluster_size=4096" "compat=0.10,cluster_size=512" \
              "extended_l2=on,cluster_size=16384" "compression_type=zstd,cluster_size=4096"; do
    local n; n=$(echo "$opts" | tr ',=' '__')
    qemu-img create -q -f qcow2 -o "$opts" "$t/$n.qcow2" 64K
    qemu-io -f qcow2 -c "write -P 0x61 0 4k" -c "write -z 8k 4k" "$t/$n.qcow2" >/dev/null
    cp "$t/$n.qcow2" "$q/$n"
  done
  qemu-img convert -q -c -O qcow2 -o cluster_size=4096 "$t/rand" "$q/compressed" 2>/dev/null || true
  qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 -o cluster_size=512 "$q/overlay" 64K 2>/dev/null || \
    qemu-img create -q -f qcow2 -o cluster_size=512 "$q/overlay" 64K
  # vmdk seeds.
  local v; v=$(seed_dir vmdk)
  for sub in monolithicSparse streamOptimized; do
    qemu-img convert -q -O vmdk -o subformat=$sub "$t/rand" "$v/$sub"
  done
  printf '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 128 FLAT "x-flat.vmdk" 0\nRW 64 ZERO\n' > "$v/descriptor"
  # vhd (qemu's vpc) and vdi seeds over a 64 KiB disk. qemu-img's dynamic VHDs have 2 MiB
  # blocks (2 MiB files): the seeds get their block size cut to 64 KiB (header checksum
  # redone), and a differencing variant (disk type 4 in both footers).
  local h; h=$(seed_dir vhd)
  for sub in dynamic fixed "dynamic,force_size=on"; do
    qemu-img convert -q -O vpc -o "subformat=$sub" "$t/rand" "$h/$(echo "$sub" | tr ',=' '__')"
  done
  for sub in dynamic dynamic_force_size_on; do
    python3 - "$h/$sub" "$h/${sub}-differencing" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
def csum(buf, at):
    buf[at:at + 4] = b'\0\0\0\0'
    buf[at:at + 4] = struct.pack('>I', ~sum(buf) & 0xffffffff)
size, = struct.unpack('>Q', b[48:56]); hdr = bytearray(b[512:1536])
hdr[28:36] = struct.pack('>II', -(-size // 65536), 65536); csum(hdr, 36); b[512:1536] = hdr
bat, = struct.unpack('>Q', hdr[16:24]); sector, = struct.unpack('>I', b[bat:bat + 4])
foot = bytearray(b[:512]); out = b[:sector * 512 + 512 + 65536] + foot
open(sys.argv[1], 'wb').write(out)
foot[60:64] = struct.pack('>I', 4); csum(foot, 64)
open(sys.argv[2], 'wb').write(foot + out[512:-512] + foot)
PY
  done
  local i; i=$(seed_dir vdi)
  for st in on off; do
    qemu-img convert -q -O vdi -o "static=$st" "$t/rand" "$i/static_$st"
  done
  # partition-table seeds: sfdisk-made MBR (with logicals) and GPT on small sparse files.
  local pt; pt=$(seed_dir part)
  truncate -s 1M "$t/mbr" "$t/gpt"
  printf 'label: dos\nstart=64, size=128, type=83\nsize=512, type=5\nsize=64, type=83\nsize=64, type=7\n' | sfdisk -q "$t/mbr" >/dev/null 2>&1 && head -c 65536 "$t/mbr" > "$pt/mbr"
  printf 'label: gpt\nstart=64, size=128, name="a"\nsize=64\n' | sfdisk -q "$t/gpt" >/dev/null 2>&1 && cp "$t/gpt" "$pt/gpt"
  # inspection seeds: a small sqlite rpmdb (512-byte pages) and package/release files.
  local ip; ip=$(seed_dir inspect_parsers)
  local pg=../shared/corpus/libguestfs/test-data/phony-guests
  if [ -f "$pg/fedora-db.sql.xz" ] && command -v sqlite3 >/dev/null; then
    xz -dc "$pg/fedora-db.sql.xz" | sqlite3 "$t/rpm.sqlite"
    sqlite3 "$t/rpm.sqlite" 'DELETE FROM Packages WHERE hnum > 4; PRAGMA page_size=512; VACUUM;'
    cp "$t/rpm.sqlite" "$ip/rpmdb"
    cp "$pg/debian-packages" "$pg/archlinux-package" "$ip/" 2>/dev/null || true
  fi
  printf 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12"\n' > "$ip/os-release"
  printf 'UUID=abcd / ext4 defaults 0 1\nLABEL=b\\040c /boot ext2 defaults 0 2\n' > "$ip/fstab"
  # NTFS seeds: the ntfs crate's testfs1 from the corpus (first 1 MiB: boot sector, $MFT,
  # indexes) and a small volume made by mkntfs.
  local n; n=$(seed_dir ntfs)
  [ -f ../shared/corpus/ntfs/testdata/testfs1 ] && head -c 1048576 ../shared/corpus/ntfs/testdata/testfs1 > "$n/testfs1"
  truncate -s 1M "$t/ntfs" && mkntfs -q -Q -F -c 512 "$t/ntfs" >/dev/null 2>&1 && cp "$t/ntfs" "$n/mkntfs" || true
  # XFS log seeds: the logs of the dirty-log fixtures (their active part: the first MiB,
  # and the first 64 KiB), and one with its first blocks moved to the end (wrapped).
  local x; x=$(seed_dir xfs_log)
  for img in fixtures/xfs/dirtylog-*.img.zst; do
    [ -f "$img" ] || continue
    python3 - "$img" "$x/$(basename "$img" .img.zst)" <<'PY'
import struct, subprocess, sys
img = subprocess.run(["zstd", "-dc", sys.argv[1]], check=True, capture_output=True).stdout
bs, = struct.unpack(">I", img[4:8])
agblocks, = struct.unpack(">I", img[0x54:0x58])
agblklog = img[0x7C]
logstart, = struct.unpack(">Q", img[0x30:0x38])
start = ((logstart >> agblklog) * agblocks + (logstart & ((1 << agblklog) - 1))) * bs
log = img[start:start + (1 << 20)]
open(sys.argv[2], "wb").write(log)
open(sys.argv[2] + "-64k", "wb").write(log[:65536])
open(sys.argv[2] + "-wrapped", "wb").write(log[32768:] + log[:32768])
PY
  done
  # VHDX seeds: qemu-made images and the dirty-log fixtures, written in the vhdx target's
  # sparse form (flags: fix every checksum; size in 64 KiB units; non-zero 512-byte runs).
  local vx; vx=$(seed_dir vhdx)
  qemu-img create -q -f vhdx -o block_size=1M "$t/d.vhdx" 3M
  qemu-io -f vhdx -c "write -P 0x61 0 4k" -c "write -P 0x62 2M 512" "$t/d.vhdx" >/dev/null
  head -c 2097152 /dev/urandom > "$t/r2"
  qemu-img convert -q -O vhdx -o subformat=fixed,block_size=1M "$t/r2" "$t/f.vhdx"
  qemu-img create -q -f vhdx -o block_size=1M,block_state_zero=off "$t/n.vhdx" 5M
  for z in fixtures/vhdx/*.vhdx.zst; do zstd -q -d -f "$z" -o "$t/$(basename "$z" .zst)"; done
  for img in "$t"/*.vhdx; do
    python3 - "$img" "$vx/$(basename "$img" .vhdx)" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
# The size is the file's; the bytes past 6 MiB (payload blocks) are left out: the
# structures are at the front.
out = bytearray([7]) + struct.pack("<H", min(len(b) + 65535 >> 16, 256))
b = b[:6 << 20]
i = 0
while i < len(b):
    if b[i:i + 512].strip(b"\0"):
        j = i
        while j < len(b) and b[j:j + 512].strip(b"\0") and j - i < 65024:
            j += 512
        out += struct.pack("<IH", i, j - i) + b[i:j]
        i = j
    else:
        i += 512
open(sys.argv[2], "wb").write(out)
PY
  done
  local d; d=$(seed_dir detect)
  cp "$q"/* "$v"/* "$h"/* "$i"/* "$d"/ 2>/dev/null || true
  rm -rf "$t"
}
make_seeds
bash scripts/fuzz-seeds.sh >/dev/null
for target in "${targets[@]}"; do
  echo "== fuzzing $target for ${secs}s"
  mkdir -p "fuzz/corpus/$target"  # targets without seeds start from an empty corpus
  # Disk images need ~1 MiB inputs; the inspection parsers read files, 256 KiB is plenty.
  max_len=1100000
  [ "$target" = inspect_parsers ] && max_len=262144
  # XFS inputs list an image's non-zero sectors: a populated filesystem needs a few MiB.
  [ "$target" = xfs ] && max_len=4500000
  # VHDX inputs are sparse descriptions of images of several MiB.
  [ "$target" = vhdx ] && max_len=2200000
  cargo +nightly fuzz run "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$secs" -max_len="$max_len" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
done
