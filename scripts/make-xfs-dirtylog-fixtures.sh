#!/bin/bash
# Builds fixtures/xfs/dirtylog-*.img.zst: XFS images whose latest changes exist ONLY in the
# log, each with its oracle files, using the real tools (mkfs.xfs, the kernel's XFS, xfs_io,
# xfs_logprint). Needs root and loop devices, only here: the tests read the committed images.
#
# For each variant: mkfs on a 320 MB sparse file, mount, write a base tree, umount (base state
# written back, clean log), mount again, change things (create, write with fsync so the DATA
# is on disk, mkdir with many entries, rename, unlink, truncate, xattrs, symlinks, hard links,
# a reflink copy), record the intended tree on the live mount, then `xfs_io -x -c 'shutdown -f'`
# (forces the log to disk; metadata is never written back) and umount. The image is copied
# before anything mounts it again.
#
# Oracles (never guestctl's output):
#   (a) the intended tree, taken on the live mount just before the shutdown;
#   (b) the kernel's own replay: a copy of the image mounted (log recovery runs), listed,
#       unmounted.
# The script checks (a) == (b) and that the un-replayed image (mounted -o ro,norecovery)
# shows a different tree, else the fixture would test nothing. Files written per image:
#   dirtylog-<v>.img.zst     the dirty image (zstd -19 --long)
#   dirtylog-<v>.find        find . -printf '%y %m %U %G %s %p -> %l\n' | LC_ALL=C sort
#   dirtylog-<v>.sha256      sha256sum of every regular file, ./path form, sorted by path
#   dirtylog-<v>.xattrs      getfattr -h -d -m - -e hex per path (files with attributes)
#   dirtylog-<v>.logprint.zst  xfs_logprint -t of the dirty image (reference only)
#
# Variants: v5 (mkfs defaults), v5-sect4k (-s size=4096: 4 KiB log sectors), v5-su32k
# (-l su=32k, mounted with logbsize=256k: records up to 256 KiB with extended headers),
# v5-wrap (file churn first, so the dirty part of the log wraps around its physical end).
# v4 (-m crc=0) is made too when the running kernel still mounts v4 filesystems.
set -euo pipefail
cd "$(dirname "$0")/.."
out=fixtures/xfs
mkdir -p "$out"
work=$(mktemp -d)
trap 'for m in "$work"/mnt*; do mountpoint -q "$m" && umount "$m"; done; rm -rf "$work"' EXIT
for t in mkfs.xfs xfs_io xfs_logprint zstd getfattr setfattr python3; do
    command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done

# The oracle listing of the tree at $1 into files $2.find, $2.sha256, $2.xattrs.
# With a third argument, errors are ignored (the un-replayed tree can be inconsistent).
listing() {
    local dir=$1 base=$2 tolerant=${3:-}
    if [ -n "$tolerant" ]; then
        (cd "$dir" && find . -printf '%y %m %U %G %s %p -> %l\n' 2>/dev/null | LC_ALL=C sort) > "$base.find" || true
        return 0
    fi
    (cd "$dir" && find . -printf '%y %m %U %G %s %p -> %l\n' | LC_ALL=C sort) > "$base.find"
    (cd "$dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum) > "$base.sha256"
    (cd "$dir" && find . -print0 | LC_ALL=C sort -z |
        xargs -0 -r getfattr -h -d -m - -e hex --absolute-names 2>/dev/null) > "$base.xattrs" || true
}

# Every file's contents, made once before any mount: the changes below must run quickly
# (the kernel writes metadata back from the log every 30 s or so).
src=$work/src
mkdir -p "$src"
gen_all() {
    python3 - "$src" <<'PY'
import os, sys
d = sys.argv[1]
def gen(name, seed, n):
    out = bytearray()
    i = 0
    while len(out) < n:
        out += f"{seed}:{i:08d} the quick brown fox jumps over the lazy dog\n".encode()
        i += 1
    with open(os.path.join(d, name), "wb") as f:
        f.write(bytes(out[:n]))
for name, n in [("hosts", 300), ("passwd", 2000), ("big", 200000), ("victim", 50000),
                ("keep", 100), ("trunc", 100000), ("small", 42), ("block", 4096),
                ("added", 777), ("appended", 5000), ("rewritten", 100), ("remote", 6000)]:
    gen(name, name, n)
for i in range(1, 13):
    gen(f"f{i}", f"base-f{i}", 64)
for i in range(1, 41):
    gen(f"d40-{i}", f"d40-{i}", 20)
PY
}
gen_all

base_tree() {
    local m=$1
    mkdir -p "$m/etc" "$m/home/user" "$m/var/log" "$m/old"
    cp "$src/hosts" "$m/etc/hosts"
    cp "$src/passwd" "$m/etc/passwd"
    cp "$src/big" "$m/var/log/big.log"
    cp "$src/victim" "$m/old/victim"
    cp "$src/keep" "$m/old/keep"
    cp "$src/trunc" "$m/home/user/trunc.bin"
    for i in $(seq 1 12); do cp "$src/f$i" "$m/home/user/f$i"; done
    setfattr -n user.base -v base-value "$m/etc/hosts"
    ln -s ../etc/hosts "$m/home/user/hosts-link"
}

changes() {
    local m=$1
    # Small files in a new directory and in existing ones.
    mkdir "$m/new"
    cp "$src/small" "$m/new/small.txt"
    cp "$src/block" "$m/new/block.bin"
    : > "$m/new/empty"
    cp "$src/added" "$m/etc/added.conf"
    # A file of many extents (every other 4 KiB block, direct I/O so no preallocation
    # merges them): past what the inode's fork holds, so its data fork becomes a btree and
    # the log carries a bmbt root.
    local cmds=()
    for i in $(seq 0 2 120); do cmds+=(-c "pwrite -q -S $((i % 200 + 1)) $((i * 4096)) 4096"); done
    xfs_io -d -f "${cmds[@]}" -c fsync "$m/new/sparse-extents"
    # Appending to a base file, rewriting another in place.
    cat "$src/appended" >> "$m/var/log/big.log"
    dd if="$src/rewritten" of="$m/etc/passwd" bs=1 seek=100 conv=notrunc status=none
    # Directories: one in block form (40 entries), one in leaf/node form (400 entries).
    mkdir "$m/new/dir40" "$m/new/dir400"
    for i in $(seq 1 40); do cp "$src/d40-$i" "$m/new/dir40/entry-number-$i"; done
    (cd "$m/new/dir400" && touch $(seq -f 'a-rather-long-file-name-to-fill-blocks-%g' 1 400))
    # Rename within and across directories, unlink, truncate, chmod/chown.
    mv "$m/home/user/f1" "$m/home/user/f1-renamed"
    mv "$m/home/user/f2" "$m/new/f2-moved"
    mv "$m/old/keep" "$m/old/kept"
    rm "$m/old/victim" "$m/home/user/f3"
    truncate -s 1000 "$m/home/user/trunc.bin"
    chmod 0600 "$m/etc/added.conf"
    chown 1000:1000 "$m/home/user/f4"
    chmod 4755 "$m/home/user/f5"
    # Hard link, symlinks (inline and remote), a fifo.
    ln "$m/new/small.txt" "$m/new/small-hardlink.txt"
    ln -s small.txt "$m/new/short-link"
    ln -s "/$(printf 'long-symlink-target-component/%.0s' $(seq 1 20))end" "$m/new/long-link"
    mkfifo "$m/new/fifo"
    # Extended attributes: shortform, many (leaf), a remote value, removal, on a directory.
    setfattr -n user.one -v first "$m/new/small.txt"
    setfattr -n trusted.two -v 0x00ff00ff "$m/new/small.txt"
    for i in $(seq 1 60); do setfattr -n "user.attr-$i" -v "value number $i" "$m/new/block.bin"; done
    setfattr -n user.remote -v "$(cat "$src/remote")" "$m/etc/added.conf"
    setfattr -x user.base "$m/etc/hosts"
    setfattr -n user.dir -v on-a-directory "$m/new/dir40"
    # Metadata made and freed again within the log: a directory of 300 files and their inode
    # chunks (icreate, then cancelled inode and directory buffers), an attribute leaf.
    mkdir "$m/new/gone"
    (cd "$m/new/gone" && touch $(seq -f 'short-lived-file-with-a-long-name-%g' 1 300))
    sync -f "$m"
    rm -rf "$m/new/gone"
    for i in $(seq 1 40); do setfattr -n "user.tmp-$i" -v "temporary value $i" "$m/etc/passwd"; done
    for i in $(seq 1 40); do setfattr -x "user.tmp-$i" "$m/etc/passwd"; done
    # A reflinked copy (shares the extents; logged with refcount and bmap intents).
    cp --reflink=always "$m/var/log/big.log" "$m/new/big-reflink.log" 2>/dev/null || true
    # File data to disk, metadata to the log (sync forces the log, writes nothing back).
    sync -f "$m"
}

# Sets and removes batches of extended attributes (fsync after each batch: one checkpoint
# each) until the log head is just before the physical end of the log, so the changes that
# follow wrap around it (cycle 1 -> 2). The churn stays in the log too: attribute blocks
# allocated, freed (cancelled buffers) and allocated again, in the same few blocks, which
# keeps the 64 MiB log compressible.
churn_to_log_end() {
    local m=$1 dev blocks
    dev=$(basename "$(findmnt -n -o SOURCE "$m")")
    blocks=$(( $(xfs_info "$m" | sed -n "s/^log .*blocks=\([0-9]*\),.*/\1/p") * 8 ))
    : > "$m/churn"
    python3 - "$m/churn" "/sys/fs/xfs/$dev/log/log_head_lsn" "$blocks" <<'PY'
import os, sys
path, head_file, blocks = sys.argv[1], sys.argv[2], int(sys.argv[3])
val = b"churn value " * 20
fd = os.open(path, os.O_RDONLY)
while True:
    cycle, block = map(int, open(head_file).read().split(":"))
    if cycle != 1 or block > blocks - 450:
        break
    n = 200 if block < blocks - 3000 else 10
    for j in range(n):
        os.setxattr(path, f"user.churn-{j}", val)
    os.fsync(fd)
    for j in range(n):
        os.removexattr(path, f"user.churn-{j}")
    os.fsync(fd)
PY
    rm "$m/churn"
    echo "churn: log head $(cat "/sys/fs/xfs/$dev/log/log_head_lsn") of $blocks blocks" >&2
}

# v5-torn: the v5 image with one byte of one of its last log records changed, as a torn write
# leaves it. The kernel drops that record (its CRC fails within the last 8 records) and
# replays the rest: its replay of a copy is the oracle, which must differ both from the
# intended tree (the torn record mattered) and from the tree without recovery.
make_torn() {
    local from=$1 name=$1-torn m=$work/mnt-torn back
    mkdir -p "$m"
    # The latest record whose loss shows (the last checkpoint may be only inode
    # inactivation): try the last 8 records, newest first.
    for back in 1 2 3 4 5 6 7 8; do
        cp --sparse=always "$work/$from.dirty" "$work/$name.dirty"
        python3 - "$work/$name.dirty" "$back" <<'PY'
import struct, sys
f = open(sys.argv[1], "r+b")
back = int(sys.argv[2])
sb = f.read(512)
bs, = struct.unpack(">I", sb[4:8])
agblocks, = struct.unpack(">I", sb[0x54:0x58])
agblklog = sb[0x7C]
logstart, = struct.unpack(">Q", sb[0x30:0x38])
start = ((logstart >> agblklog) * agblocks + (logstart & ((1 << agblklog) - 1))) * bs
def hblks(size):
    return (size + 32767) // 32768 if size > 32768 else 1
blk, recs, cycle = 0, [], None
while True:
    f.seek(start + blk * 512)
    h = f.read(512)
    magic, cyc, _, length = struct.unpack(">IIII", h[:16])
    size, = struct.unpack(">I", h[320:324])
    if magic != 0xFEEDBABE or (cycle is not None and cyc != cycle):
        break
    cycle = cyc
    recs.append((blk, length, size))
    blk += hblks(size) + (length + 511) // 512
blk, length, size = recs[-back]
at = start + (blk + hblks(size)) * 512 + 20
f.seek(at)
b = f.read(1)
f.seek(at)
f.write(bytes([b[0] ^ 0x5a]))
print(f"torn: record at log block {blk} ({length} bytes), byte {at:#x}", file=sys.stderr)
PY
        cp --sparse=always "$work/$name.dirty" "$work/$name.kernel"
        mount -o loop "$work/$name.kernel" "$m"
        listing "$m" "$work/$name.replayed"
        umount "$m"
        if ! cmp -s "$work/$name.replayed.find" "$work/$from.intended.find" ||
            ! cmp -s "$work/$name.replayed.sha256" "$work/$from.intended.sha256" ||
            ! cmp -s "$work/$name.replayed.xattrs" "$work/$from.intended.xattrs"; then
            break
        fi
        echo "$name: dropping record -$back changes nothing visible" >&2
        [ "$back" -lt 8 ] || { echo "$name: no torn record shows" >&2; exit 1; }
    done
    dmesg | grep -i "torn write" | tail -1 >&2 || true
    cp --sparse=always "$work/$name.dirty" "$work/$name.norec"
    mount -o loop,ro,norecovery "$work/$name.norec" "$m"
    listing "$m" "$work/$name.norecovery" tolerant
    umount "$m"
    if cmp -s "$work/$name.replayed.find" "$work/$name.norecovery.find"; then
        echo "$name: the replay of the torn log shows the unrecovered tree" >&2
        exit 1
    fi
    xfs_logprint -t "$work/$name.dirty" 2>&1 | zstd -q -19 > "$out/dirtylog-$name.logprint.zst" || true
    for k in find sha256 xattrs; do cp "$work/$name.replayed.$k" "$out/dirtylog-$name.$k"; done
    zstd -q -f -19 --long=27 "$work/$name.dirty" -o "$out/dirtylog-$name.img.zst"
    echo "$name: $(wc -l < "$out/dirtylog-$name.find") entries, $(du -h "$out/dirtylog-$name.img.zst" | cut -f1)"
}

make_variant() {
    local name=$1 mkfs_opts=$2 mount_opts=$3 churn=${4:-}
    local img=$work/$name.img m=$work/mnt-$name
    mkdir -p "$m"
    rm -f "$img"
    truncate -s 320M "$img"
    # shellcheck disable=SC2086
    mkfs.xfs -q -f $mkfs_opts "$img"
    if ! mount -o "loop$mount_opts" "$img" "$m" 2>/dev/null; then
        echo "$name: the kernel does not mount this filesystem; skipped" >&2
        return 0
    fi
    base_tree "$m"
    umount "$m"
    mount -o "loop$mount_opts" "$img" "$m"
    [ -z "$churn" ] || churn_to_log_end "$m"
    changes "$m"
    listing "$m" "$work/$name.intended"
    xfs_io -x -c 'shutdown -f' "$m"
    umount "$m"
    cp --sparse=always "$img" "$work/$name.dirty"
    # The un-replayed state (must differ from the intended one).
    cp --sparse=always "$img" "$work/$name.norec"
    mount -o loop,ro,norecovery "$work/$name.norec" "$m"
    listing "$m" "$work/$name.norecovery" tolerant
    umount "$m"
    # The kernel's replay.
    cp --sparse=always "$img" "$work/$name.kernel"
    mount -o "loop$mount_opts" "$work/$name.kernel" "$m"
    listing "$m" "$work/$name.replayed"
    umount "$m"
    for k in find sha256 xattrs; do
        if ! cmp -s "$work/$name.intended.$k" "$work/$name.replayed.$k"; then
            echo "$name: the kernel's replay differs from the intended tree ($k):" >&2
            diff "$work/$name.intended.$k" "$work/$name.replayed.$k" >&2 || true
            exit 1
        fi
    done
    if cmp -s "$work/$name.intended.find" "$work/$name.norecovery.find"; then
        echo "$name: the image without recovery already shows the new tree" >&2
        exit 1
    fi
    cmp -s "$img" "$work/$name.dirty" || { echo "$name: image changed" >&2; exit 1; }
    xfs_logprint -t "$work/$name.dirty" 2>&1 | zstd -q -19 > "$out/dirtylog-$name.logprint.zst" || true
    for k in find sha256 xattrs; do cp "$work/$name.replayed.$k" "$out/dirtylog-$name.$k"; done
    zstd -q -f -19 --long=27 "$work/$name.dirty" -o "$out/dirtylog-$name.img.zst"
    echo "$name: $(wc -l < "$out/dirtylog-$name.find") entries, $(du -h "$out/dirtylog-$name.img.zst" | cut -f1)"
}

make_variant v5 "" ""
make_torn v5
make_variant v5-sect4k "-s size=4096" ""
make_variant v5-su32k "-l su=32k" ",logbsize=256k"
make_variant v5-wrap "" "" churn
make_variant v4 "-m crc=0" ""
