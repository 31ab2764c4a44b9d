#!/usr/bin/env bash
# Makes fixtures/lvm.img.zst and fixtures/lvm.manifest: a 16 MiB GPT disk with two LVM2 PVs
# (partitions 1 and 2) in one VG "fixvg" (64 KiB extents) holding
#   lin       linear, fragmented (create/extend/remove interleaved), spans both PVs; an ext4
#             file system made by mkfs.ext4 -d from a small tree
#   str       2 stripes, 16 KiB stripe size; a byte pattern
#   my-data   linear, '-' in its name (mapper name fixvg-my--data); a byte pattern
#   pool/thin a thin pool and a thin LV (must be refused: unsupported segment type)
#
# Oracles recorded in the manifest (all from LVM's own tools, none from guestctl):
#   vgs/pvs/lvs --reportformat json, lvs --segments -o+seg_pe_ranges (json), and the sha256
#   of the bytes each readable LV must read as.
#
# How LV contents get there: the build machine's kernel may lack device-mapper (containers,
# firecracker guests), so LVs are never activated here (lvm --driverloaded n). Each LV's
# content file is written onto the PVs with the placement LVM reports (`lvs --segments -o
# seg_pe_ranges`, `pvs -o pe_start`), striped segments chunk by chunk in dm-stripe order.
# Then a qemu VM (the host's /boot kernel + initramfs, TCG) activates the VG with the real
# device-mapper and hashes /dev/fixvg/LV: those `dm-sha256` lines must equal the content
# hashes, or the script fails.
#
# Usage: sudo scripts/make-lvm-fixture.sh   (root once: losetup + LVM tools; needs lvm2,
#        util-linux (losetup, sfdisk), e2fsprogs, zstd, python3, cpio, qemu-system-x86 and a
#        /boot kernel whose initramfs has lvm + dm-mod, e.g. Debian's). Not run by the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "make-lvm-fixture: $*" >&2; exit 1; }
for t in lvm losetup sfdisk mkfs.ext4 zstd python3 sha256sum cpio qemu-system-x86_64; do
  command -v "$t" >/dev/null || die "$t missing"
done
[ "$(id -u)" = 0 ] || die "run as root (losetup, pvcreate)"

work=$(mktemp -d "${TMPDIR:-/tmp}/make-lvm-fixture.XXXXXX")
loops=()
cleanup() {
  L vgchange -an fixvg >/dev/null 2>&1 || true
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap "echo kept $work" EXIT

# No udev, no backup archive in /etc, only loop devices.
L() { lvm "$@" --driverloaded n --config 'devices { obtain_device_list_from_udev=0 filter=["a|^/dev/loop|","r|.*|"] use_devicesfile=0 } activation { udev_sync=0 udev_rules=0 } backup { backup=0 archive=0 }'; }

img=$work/lvm.img
truncate -s 16M "$img"
# GPT: partition 1 sectors 2048..8191 (3 MiB), partition 2 8192..30719 (11 MiB).
printf 'label: gpt\nlabel-id: 4C564D32-0000-4000-8000-00000000F1C5\nstart=2048, size=6144, type=E6D6D379-F507-44C2-A23C-238F2A3DF928, uuid=4C564D32-0000-4000-8000-000000000001, name="pv-a"\nstart=8192, size=22528, type=E6D6D379-F507-44C2-A23C-238F2A3DF928, uuid=4C564D32-0000-4000-8000-000000000002, name="pv-b"\n' \
  | sfdisk -q --no-reread --no-tell-kernel "$img" >/dev/null
# One loop device per partition (offset + size limit): no partition scanning needed.
p1=$(losetup -f --show -o $((2048 * 512)) --sizelimit $((6144 * 512)) "$img"); loops+=("$p1")
p2=$(losetup -f --show -o $((8192 * 512)) --sizelimit $((22528 * 512)) "$img"); loops+=("$p2")

L pvcreate -q --metadatasize 192k --dataalignment 64k "$p1" "$p2"
L vgcreate -q -s 64k fixvg "$p1" "$p2"
# Never activate (no device-mapper needed), never zero/wipe through a device.
C() { L lvcreate -q -an -Zn -Wn -y "$@"; }
C -n lin -l 4 fixvg "$p1"
C -n filler1 -l 3 fixvg "$p1"
L lvextend -q -l +3 fixvg/lin "$p1"
C -n filler2 -l 2 fixvg "$p1"
L lvextend -q -l +2 fixvg/lin "$p1"
L lvremove -q -y fixvg/filler1
C -n str -i 2 -I 16k -l 8 fixvg "$p1" "$p2"
C -n my-data -l 5 fixvg "$p2"
L lvextend -q -l +3 fixvg/lin "$p1"    # fills filler1's hole: lin goes back to PV 1
L lvextend -q -l +4 fixvg/lin "$p2"    # and on to PV 2
L lvremove -q -y fixvg/filler2
# A thin pool + thin LV: listed, refused (segment types thin-pool / thin). LVM will not
# create thin pools, snapshots or raid LVs without device-mapper, so the definitions are added
# to a vgcfgbackup of the VG and written back by LVM's own vgcfgrestore (which validates them).
# The pool's hidden pool_tdata/pool_tmeta sub-LVs are plain linear LVs on PV 2.
L lvcreate -q -an -Zn -Wn -y -n pooldata -l 2 fixvg "$p2"
L lvcreate -q -an -Zn -Wn -y -n poolmeta -l 1 fixvg "$p2"
L vgcfgbackup -q -f "$work/vg.conf" fixvg
python3 - "$work/vg.conf" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
# pool_tdata / pool_tmeta become hidden sub-LVs.
s = s.replace("\t\tpooldata {", "\t\tpool_tdata {").replace("\t\tpoolmeta {", "\t\tpool_tmeta {")
for sub in ("pool_tdata", "pool_tmeta"):
    s = re.sub(r'(\n\t\t%s \{.*?status = \[)"READ", "WRITE", "VISIBLE"\]' % sub,
               r'\1"READ", "WRITE"]', s, count=1, flags=re.S)
extra = '''
		pool {
			id = "P00l00-0000-0000-0000-0000-0000-000001"
			status = ["READ", "WRITE", "VISIBLE"]
			flags = []
			segment_count = 1

			segment1 {
				start_extent = 0
				extent_count = 2
				type = "thin-pool"
				metadata = "pool_tmeta"
				pool = "pool_tdata"
				transaction_id = 1
				chunk_size = 128
				discards = "passdown"
				zero_new_blocks = 1
			}
		}

		thin {
			id = "Th1n00-0000-0000-0000-0000-0000-000001"
			status = ["READ", "WRITE", "VISIBLE"]
			flags = []
			segment_count = 1

			segment1 {
				start_extent = 0
				extent_count = 4
				type = "thin"
				thin_pool = "pool"
				transaction_id = 0
				device_id = 1
			}
		}
'''
i = s.index("\n\tlogical_volumes {")
j = s.index("\n\t}\n", i)
s = s[:j] + extra + s[j:]
open(p, "w").write(s)
PY
L vgcfgrestore -q --force -f "$work/vg.conf" fixvg || die "vgcfgrestore of the thin pool failed"

# The oracle reports.
rep() { L "$@" --reportformat json --units b --nosuffix; }
rep vgs -o vg_name,vg_uuid,vg_size,vg_extent_size,vg_extent_count,pv_count,lv_count,vg_seqno > "$work/vgs.json"
rep pvs -o pv_name,pv_uuid,vg_name,pv_size,dev_size,pe_start,pv_pe_count,pv_pe_alloc_count > "$work/pvs.json"
rep lvs -a -o lv_name,lv_uuid,lv_size,lv_attr,seg_count > "$work/lvs.json"
rep lvs -a --segments -o lv_name,segtype,seg_start_pe,seg_size_pe,stripes,stripe_size,seg_pe_ranges > "$work/segs.json"
L pvs -o pv_name,pe_start --units b --nosuffix --noheadings > "$work/pe_start.txt"

# Content for each readable LV.
mkdir -p "$work/tree/etc" "$work/tree/data"
printf 'fixture for guestctl LVM tests\n' > "$work/tree/etc/motd"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$work/tree/etc/passwd"
python3 -c 'import sys; sys.stdout.buffer.write(bytes((i * 7 + i // 251) & 255 for i in range(40000)))' > "$work/tree/data/pattern.bin"
lin_bytes=$(L lvs --noheadings --units b --nosuffix -o lv_size fixvg/lin | tr -d ' ')
truncate -s "$lin_bytes" "$work/lin.content"
E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -b 1024 -L lvm-lin -U 4c564d32-0000-4000-8000-00000000e474 \
  -E root_owner=0:0,hash_seed=4c564d32-0000-4000-8000-000000000000 -d "$work/tree" "$work/lin.content"
for lv in str my-data; do
  n=$(L lvs --noheadings --units b --nosuffix -o lv_size "fixvg/$lv" | tr -d ' ')
  python3 - "$lv" "$n" > "$work/$lv.content" <<'PY'
import sys, hashlib
name, n = sys.argv[1], int(sys.argv[2])
out = bytearray()
i = 0
while len(out) < n:  # 512-byte blocks that name the LV and their own offset
    block = f"{name} block {i} offset {i * 512}\n".encode()
    block += hashlib.sha256(block).digest() * 16
    out += block[:512].ljust(512, b"\0")
    i += 1
sys.stdout.buffer.write(bytes(out[:n]))
PY
done

# Write each content file where LVM says its extents are (the image file, at partition offset +
# pe_start + extent * extent_size).
python3 - "$img" "$work" "$p1" "$p2" <<'PY'
import json, sys
img, work, p1, p2 = sys.argv[1:5]
part_off = {p1: 2048 * 512, p2: 8192 * 512}
pe_start = {}
for line in open(f"{work}/pe_start.txt"):
    dev, start = line.split()
    pe_start[dev] = int(start)
vg = json.load(open(f"{work}/vgs.json"))["report"][0]["vg"][0]
ext = int(vg["vg_extent_size"])
segs = json.load(open(f"{work}/segs.json"))["report"][0]["seg"]
def pv_byte(dev, pe):
    return part_off[dev] + pe_start[dev] + pe * ext
with open(img, "r+b") as f:
    for lv in ("lin", "str", "my-data"):
        data = open(f"{work}/{lv}.content", "rb").read()
        for s in (s for s in segs if s["lv_name"] == lv):
            start, size = int(s["seg_start_pe"]), int(s["seg_size_pe"])
            ranges = []
            for r in s["seg_pe_ranges"].split():
                dev, span = r.rsplit(":", 1)
                a, b = span.split("-")
                ranges.append((dev, int(a), int(b)))
            seg = data[start * ext:(start + size) * ext]
            if s["segtype"] == "linear":
                assert len(ranges) == 1 and ranges[0][2] - ranges[0][1] + 1 == size
                f.seek(pv_byte(ranges[0][0], ranges[0][1])); f.write(seg)
            elif s["segtype"] == "striped":
                n, chunk = int(s["stripes"]), int(s["stripe_size"])
                assert len(ranges) == n
                for i in range(len(seg) // chunk):
                    dev, a, _ = ranges[i % n]
                    f.seek(pv_byte(dev, a) + (i // n) * chunk)
                    f.write(seg[i * chunk:(i + 1) * chunk])
            else:
                raise SystemExit(f"unexpected segment type {s['segtype']} in {lv}")
PY

for l in "${loops[@]}"; do losetup -d "$l"; done
loops=()

# The kernel's device-mapper view: boot the host's kernel and initramfs (Debian's carries lvm,
# dm-mod and sha256sum) under qemu with the image attached read-only (snapshot=on), activate
# the VG there and hash /dev/fixvg/LV. TCG, not KVM: nested KVM may lack the CPU features the
# kernel's decompressor uses. Each hash must equal the content written above.
kernel=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -1)
initrd=${kernel/vmlinuz/initrd.img}
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
[ -f "$kernel" ] && [ -f "$initrd" ] || die "no /boot/vmlinuz-* + initrd.img-* to boot"
mkdir -p "$work/vmroot"
cat > "$work/vmroot/lvmcheck" <<'SH'
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /proc /sys /dev /run/lvm /run/lock/lvm
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
for m in virtio_pci virtio_blk dm_mod; do modprobe $m 2>/dev/null; done
sleep 1
C='devices { obtain_device_list_from_udev=0 use_devicesfile=0 } activation { udev_sync=0 udev_rules=0 }'
lvm vgchange -ay --nolocking --config "$C" fixvg >/dev/null 2>&1
for lv in lin str my-data; do echo "DMSHA $lv $(sha256sum < /dev/fixvg/$lv | cut -d' ' -f1)"; done
lvm vgchange -an --nolocking --config "$C" fixvg >/dev/null 2>&1
poweroff -f
SH
chmod +x "$work/vmroot/lvmcheck"
(cd "$work/vmroot" && find . | cpio -o -H newc 2>/dev/null) > "$work/extra.cpio"
cat "$initrd" "$work/extra.cpio" > "$work/initrd"
timeout 600 qemu-system-x86_64 -accel tcg -cpu max -m 512 -nographic -no-reboot \
  -kernel "$kernel" -initrd "$work/initrd" -append "console=ttyS0 rdinit=/lvmcheck quiet" \
  -drive file="$img",format=raw,if=virtio,readonly=on,snapshot=on 2>&1 | tr -d '\r' > "$work/vm.log" || true
: > "$work/dm.txt"
for lv in lin str my-data; do
  got=$(sed -n "s/^DMSHA $lv \([0-9a-f]\{64\}\)$/\1/p" "$work/vm.log")
  [ -n "$got" ] || { cat "$work/vm.log" >&2; die "no device-mapper hash for $lv from the VM"; }
  [ "$got" = "$(sha256sum < "$work/$lv.content" | cut -d' ' -f1)" ] || die "device-mapper disagrees about $lv"
  echo "dm-sha256 $lv $got" >> "$work/dm.txt"
done

m=fixtures/lvm.manifest
{
  echo "# fixtures/lvm.img.zst, made by scripts/make-lvm-fixture.sh with $(lvm version | sed -n 's/^ *LVM version: *//p')"
  echo "# partitions: 1 at byte $((2048 * 512)), 2 at byte $((8192 * 512)); LVM device names below are the"
  echo "# loop devices of partitions 1 and 2: PV1=$p1 PV2=$p2"
  echo "# dm-sha256: sha256sum /dev/fixvg/LV inside a qemu VM (host kernel + initrd: lvm vgchange -ay)"
  for lv in lin str my-data; do echo "sha256 $lv $(sha256sum < "$work/$lv.content" | cut -d' ' -f1)"; done
  cat "$work/dm.txt"
  for r in vgs pvs lvs segs; do echo "json $r $(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$work/$r.json")"; done
} > "$m"
zstd -q -19 -f "$img" -o fixtures/lvm.img.zst
ls -la fixtures/lvm.img.zst "$m"
