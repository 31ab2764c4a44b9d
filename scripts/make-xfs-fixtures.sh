#!/usr/bin/env bash
# Makes fixtures/xfs/: small XFS file-system images (NAME.img.zst, zstd -19 --long) and, for
# each, oracles recorded from the MOUNTED file system by standard tools (never by guestctl):
#
#   NAME.find    find . -printf '%y %m %U %G %n %s %T@ %p -> %l\n' | LC_ALL=C sort
#   NAME.sha256  sha256sum of every regular file ("HASH  ./path"), sorted by path
#   NAME.xattrs  getfattr -h -d -m - -e hex --absolute-names of every inode (sorted by path;
#                the attributes of one inode sorted by name), hex values
#   NAME.xfs_db  xfs_db -r -c "sb 0" -c print, then for each interesting inode a line
#                "## inode N PATH" followed by xfs_db -r -c "inode N" -c print
#   NAME.info    mkfs options, xfs_info, what the tree generator made, and the table of
#                on-disk forms checked with xfs_db (scripts/xfs-check-forms.py): the script
#                fails if an image lacks a form it must have
# fixtures/README.md (section "XFS") documents the formats and the tree.
#
# The tree comes from scripts/gen-xfs-tree.py (deterministic). V5 images are populated through
# the host kernel (loop device). This host kernel has no CONFIG_XFS_SUPPORT_V4, so the V4
# images are populated through the XFS driver of a user-mode Linux kernel (Debian's
# user-mode-linux package, with its own libc6, both fetched with apt-get download from Debian
# unstable into /var/tmp/guestctl-uml; nothing is installed on the system): it boots with
# the host's / as its root (hostfs), the image as /dev/ubda, and runs this script's
# "__populate" step, the same code the host runs for V5. Set UML_ALWAYS=1 to use it for V5 too.
#
# Dirty-log images (v5-dirtylog, v4-dirtylog): a base tree is written and cleanly unmounted;
# then, on a new mount, changes are made and fsynced (data in place, metadata only in the
# log), the oracles of that live tree are recorded as NAME.intended.{find,sha256,xattrs},
# `xfs_io -x -c 'shutdown -f'` forces the log and stops all metadata writeback, and the file
# system is unmounted. That image is the fixture. A copy is then mounted (the kernel replays
# the log) and gives NAME.{find,sha256,xattrs}; the script fails unless both agree, unless
# `xfs_repair -n` reports the dirty log on the fixture, and unless xfs_db (which ignores the
# log) does not see the new directory. NAME.info holds that evidence and xfs_logprint -t.
#
# Usage: sudo scripts/make-xfs-fixtures.sh [VARIANT...]     (default: all)
# Needs root (losetup, mount), xfsprogs, attr (getfattr), acl (setfacl), zstd, python3,
# coreutils/findutils; apt-get (for the user-mode kernel, V4 only). Not run by the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=$repo/fixtures/xfs
# mkfs.xfs refuses file systems under 300 MB unless it believes it runs under fstests.
export TEST_DIR=/tmp TEST_DEV=/dev/null QA_CHECK_FS=1
export LC_ALL=C TZ=UTC
PY=$(python3 -c 'import sys; print(sys.executable)')
UML_DIR=/var/tmp/guestctl-uml   # 21 characters: $UML_DIR/ld.so must be 27, see ensure_uml
die() { echo "make-xfs-fixtures: $*" >&2; exit 1; }

# Every variant: name | image size | block size | dir block size | reflink | kernel | mkfs options
VARIANTS=(
  "v5-4k|64m|4096|4096|1|host|"
  "v5-1k|64m|1024|4096|1|host|-b size=1024"
  "v5-64k|128m|65536|65536|1|host|-b size=65536 -d agcount=2"
  "v5-dir64k|96m|4096|65536|1|host|-n size=65536"
  "v5-nrext64|64m|4096|4096|1|host|-i nrext64=1"
  "v5-nobigtime|64m|4096|4096|1|host|-m bigtime=0,inobtcount=0"
  "v4-4k|64m|4096|4096|0|uml|-m crc=0"
  "v4-512|64m|512|4096|0|uml|-m crc=0 -b size=512"
  "v4-noftype|64m|4096|4096|0|uml|-m crc=0 -n ftype=0"
  "v5-dirtylog|64m|4096|4096|0|host|"
  "v4-dirtylog|64m|4096|4096|0|uml|-m crc=0"
)

# The inodes whose xfs_db dump goes into NAME.xfs_db and whose form is checked.
TARGETS="dirs/sf dirs/block dirs/leaf dirs/node-small dirs/node dirs/btree files/empty files/tiny
files/multi-extent files/fragmented files/punched files/sparse-start files/sparse-middle
files/sparse-end files/prealloc files/prealloc-past-eof files/beyond-4g files/reflink-src
files/reflink-copy files/reflink-cow files/hardlink-a links/relative links/long-600
links/long-1024 dev/null-char dev/sda-block dev/fifo dev/socket xattrs/shortform
xattrs/leaf xattrs/node-small xattrs/node xattrs/node-btree-fork xattrs/remote xattrs/acl-file xattrs/acl-dir"
DIRTY_TARGETS="keep keep/file-01 new-dir new-dir/new-file-00 new-dir/big"

# ---- steps that also run inside the user-mode kernel ----------------------------------------

# oracles MNT PREFIX: the three tree oracles of the tree mounted at MNT.
oracles() {
  local mnt=$1 o=$2
  (cd "$mnt" && find . -printf '%y %m %U %G %n %s %T@ %p -> %l\n' | sort -t ' ' -k 8) > "$o.find"
  (cd "$mnt" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum) > "$o.sha256"
  # getfattr lists an inode's attributes in on-disk order: sort them by name within each
  # "# file:" block so the file does not depend on the attr form.
  (cd "$mnt" && find . -print0 | sort -z | xargs -0 -r getfattr -h -d -m - -e hex --absolute-names) |
    "$PY" -c '
import sys
blocks = sys.stdin.buffer.read().split(b"\n\n")
out = []
for b in blocks:
    lines = b.strip(b"\n").split(b"\n")
    if lines and lines[0]:
        out.append(b"\n".join(lines[:1] + sorted(lines[1:])) + b"\n")
sys.stdout.buffer.write(b"\n".join(out))' > "$o.xattrs"
}

# inode_list MNT PREFIX PATHS...: "inode path" lines for the paths that exist.
inode_list() {
  local mnt=$1 o=$2; shift 2
  (cd "$mnt" && for p in "$@"; do if [ -e "$p" ] || [ -L "$p" ]; then stat -c '%i %n' "$p"; fi; done) > "$o.inodes"
}

# __populate DEV MNT PREFIX BLKSIZE DIRBLK REFLINK: the full tree.
populate() {
  local dev=$1 mnt=$2 o=$3 bs=$4 dirblk=$5 reflink=$6
  mkdir -p "$mnt"
  mount -t xfs "$dev" "$mnt"
  "$PY" "$repo/scripts/gen-xfs-tree.py" "$mnt" --blksize "$bs" --dirblk "$dirblk" \
    $([ "$reflink" = 1 ] && echo --reflink) > "$o.summary"
  umount "$mnt"
  # a fresh read-only mount: what the oracles see comes from the disk, not from caches
  mount -t xfs -o ro "$dev" "$mnt"
  oracles "$mnt" "$o"
  # shellcheck disable=SC2086
  inode_list "$mnt" "$o" $TARGETS
  umount "$mnt"
}

# __dirtylog DEV MNT PREFIX: base tree, clean unmount, changes that stay in the log, shutdown.
dirtylog() {
  local dev=$1 mnt=$2 o=$3
  mkdir -p "$mnt"
  mount -t xfs "$dev" "$mnt"
  "$PY" "$repo/scripts/gen-xfs-tree.py" "$mnt" --dirtylog-base
  umount "$mnt"                       # clean: the base tree is written back, the log is clean
  mount -t xfs -o noatime "$dev" "$mnt"   # noatime: reading for the oracles changes nothing
  "$PY" "$repo/scripts/gen-xfs-tree.py" "$mnt" --dirtylog-changes
  oracles "$mnt" "$o.intended"
  # shellcheck disable=SC2086
  inode_list "$mnt" "$o" $DIRTY_TARGETS
  xfs_io -x -c 'shutdown -f' "$mnt"   # force the log to disk, then stop: no metadata writeback
  umount "$mnt"
}

# __replay DEV MNT PREFIX: mount a copy of the dirty image (log recovery), oracles.
replay() {
  local dev=$1 mnt=$2 o=$3
  mkdir -p "$mnt"
  mount -t xfs "$dev" "$mnt"
  dmesg 2>/dev/null | grep -i 'xfs.*recover' | tail -5 > "$o.recovery" || true
  umount "$mnt"
  mount -t xfs -o ro "$dev" "$mnt"
  oracles "$mnt" "$o"
  umount "$mnt"
}

case "${1:-}" in
  __populate) shift; populate "$@"; exit 0 ;;
  __dirtylog) shift; dirtylog "$@"; exit 0 ;;
  __replay) shift; replay "$@"; exit 0 ;;
esac

# ---- host side ------------------------------------------------------------------------------

[ "$(id -u)" = 0 ] || die "run as root (losetup, mount)"
for t in mkfs.xfs xfs_db xfs_io xfs_repair xfs_info xfs_logprint getfattr setfacl zstd losetup sha256sum; do
  command -v "$t" >/dev/null || die "$t missing"
done

work=$(mktemp -d /var/tmp/make-xfs-fixtures.XXXXXX)
loops=()
mnt=$work/mnt
cleanup() {
  mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The user-mode kernel: Debian unstable's user-mode-linux (V4 support built in) with
# unstable's libc6 (it needs a newer glibc than the host's). Both are unpacked into $UML_DIR;
# the kernel's ELF interpreter path is rewritten (same length) to $UML_DIR/ld.so.
ensure_uml() {
  [ -x "$UML_DIR/linux.uml" ] && return
  command -v apt-get >/dev/null || die "apt-get missing (needed to fetch user-mode-linux for V4)"
  local a=$UML_DIR/apt
  rm -rf "$UML_DIR"; mkdir -p "$a/lists/partial" "$a/archives/partial" "$UML_DIR/pkg"
  echo 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main' > "$a/sources.list"
  local o=(-o "Dir::Etc::sourcelist=$a/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$a/lists"
           -o "Dir::Cache::archives=$a/archives" -o Debug::NoLocking=1)
  apt-get "${o[@]}" -qq update
  (cd "$UML_DIR/pkg" && apt-get "${o[@]}" -qq download user-mode-linux libc6:amd64 2>&1 | grep -v unsandboxed || true)
  for d in "$UML_DIR"/pkg/*.deb; do dpkg -x "$d" "$UML_DIR/root"; done
  mkdir -p "$UML_DIR/lib"
  cp -a "$UML_DIR"/root/usr/lib/x86_64-linux-gnu/. "$UML_DIR/lib/"
  cp "$UML_DIR/root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" "$UML_DIR/ld.so"
  "$PY" - "$UML_DIR" <<'PY'
import sys
d = sys.argv[1]
b = open(d + "/root/usr/bin/linux.uml", "rb").read()
old, new = b"/lib64/ld-linux-x86-64.so.2\0", (d + "/ld.so\0").encode()
assert len(old) == len(new) and b.count(old) == 1, "interpreter path"
open(d + "/linux.uml", "wb").write(b.replace(old, new))
PY
  chmod +x "$UML_DIR/linux.uml"
  rm -rf "$UML_DIR/root" "$a"
  strings "$UML_DIR/linux.uml" | grep '^CONFIG_XFS_SUPPORT_V4=y' >/dev/null || { rm -rf "$UML_DIR"; die "the user-mode kernel lacks XFS V4 support"; }
}

# run_uml IMG STEP ARGS...: boot the user-mode kernel on IMG (/dev/ubda) and run this
# script's STEP inside it; its output is in $work/uml.log.
run_uml() {
  local img=$1; shift
  ensure_uml
  rm -f "$work/uml.rc"
  {
    echo '#!/bin/sh'
    echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C TZ=UTC'
    echo 'mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t tmpfs tmp /tmp'
    printf 'bash %q' "$repo/scripts/make-xfs-fixtures.sh"; printf ' %q' "$@"
    printf ' > %q 2>&1; echo $? > %q\n' "$work/uml.log" "$work/uml.rc"
    echo 'exec poweroff -f'
  } > "$work/uml-init.sh"
  chmod +x "$work/uml-init.sh"
  env LD_LIBRARY_PATH="$UML_DIR/lib" TMPDIR=/dev/shm "$UML_DIR/linux.uml" mem=1024M \
    "ubd0=$img" root=/dev/root rootfstype=hostfs rootflags=/ rw \
    "init=$work/uml-init.sh" con=null con0=null,fd:1 </dev/null > "$work/uml-console.log" 2>&1 || true
  if [ "$(cat "$work/uml.rc" 2>/dev/null)" != 0 ]; then
    tail -20 "$work/uml-console.log" >&2; cat "$work/uml.log" >&2 2>/dev/null
    die "step $1 failed in the user-mode kernel"
  fi
}

# step KERNEL IMG STEP ARGS...: run a step on the host (through a loop device) or in UML.
step() {
  local kernel=$1 img=$2 s=$3; shift 3
  if [ "$kernel" = uml ] || [ -n "${UML_ALWAYS:-}" ]; then
    run_uml "$img" "$s" /dev/ubda "$@"
  else
    local l; l=$(losetup -f --show "$img"); loops+=("$l")
    bash "$repo/scripts/make-xfs-fixtures.sh" "$s" "$l" "$@"
    losetup -d "$l"
    loops=("${loops[@]:0:${#loops[@]}-1}")   # never detach it again: the number may be reused
  fi
}

# A fixed UUID per variant (stable images and oracles across runs).
uuid_for() { printf '%s' "$1" | sha256sum | sed -E 's/^(.{8})(.{4}).(.{3}).(.{3})(.{12}).*/\1-\2-4\3-8\4-\5/'; }

# dump_xfs_db IMG INODES OUT: the superblock and each listed inode, as xfs_db prints them.
dump_xfs_db() {
  local img=$1 inodes=$2 o=$3
  { echo "## xfs_db -r -c 'sb 0' -c print"
    xfs_db -r -c "sb 0" -c print "$img"
    while read -r ino path; do
      echo; echo "## inode $ino $path"
      xfs_db -r -c "inode $ino" -c print "$img"
    done < "$inodes"
  } > "$o"
}

finish() {  # finish NAME IMG: compress, copy the oracles
  local name=$1 img=$2
  zstd -q -19 --long=27 -T2 -f "$img" -o "$out/$name.img.zst"
  # the tree oracles are megabytes of very repetitive text: committed zstd-compressed
  for f in find sha256 xattrs intended.find intended.sha256 intended.xattrs; do
    [ -f "$work/$name.$f" ] && zstd -q -19 -f "$work/$name.$f" -o "$out/$name.$f.zst"
  done
  return 0
}

make_variant() {
  local name=$1 size=$2 bs=$3 dirblk=$4 reflink=$5 kernel=$6 opts=$7
  local img=$work/$name.img o=$work/$name
  echo "== $name ($kernel kernel; mkfs.xfs $opts)"
  rm -f "$img"; truncate -s "$size" "$img"
  # shellcheck disable=SC2086
  mkfs.xfs -q -f -m uuid="$(uuid_for "$name")" $opts "$img" 2>&1 | grep -v 'V4 filesystems are deprecated' || true
  step "$kernel" "$img" __populate "$mnt" "$o" "$bs" "$dirblk" "$reflink"
  xfs_repair -n "$img" > "$o.repair" 2>&1 || { cat "$o.repair"; die "$name: xfs_repair -n is not clean"; }
  local forms_ok=0
  "$PY" scripts/xfs-check-forms.py "$img" "$o.inodes" $([ "$reflink" = 1 ] && echo --reflink) > "$o.forms" || forms_ok=1
  cat "$o.forms"
  dump_xfs_db "$img" "$o.inodes" "$out/$name.xfs_db"
  { echo "# $name: mkfs.xfs -m uuid=$(uuid_for "$name") $opts  (image $size, sparse)"
    echo "# populated through the $([ "$kernel" = uml ] || [ -n "${UML_ALWAYS:-}" ] && echo "user-mode Linux $(uname_uml)" || echo "host Linux $(uname -r)") XFS driver by scripts/gen-xfs-tree.py --blksize $bs --dirblk $dirblk$([ "$reflink" = 1 ] && echo ' --reflink')"
    echo; echo "## xfs_info"; xfs_info "$img" | sed "s|$img|$name.img|"
    echo; echo "## generator"; cat "$o.summary"
    echo; echo "## on-disk forms (scripts/xfs-check-forms.py, xfs_db only)"; cat "$o.forms"
    echo; echo "## xfs_repair -n"; cat "$o.repair"
  } > "$out/$name.info"
  [ "$forms_ok" = 0 ] || die "$name: a form is missing (see above)"
  finish "$name" "$img"
}

uname_uml() { strings "$UML_DIR/linux.uml" | awk '/^Linux version [0-9]/ && !v {v=$3} END {print v}'; }

make_dirtylog() {
  local name=$1 size=$2 kernel=$6 opts=$7
  local img=$work/$name.img o=$work/$name
  echo "== $name ($kernel kernel; mkfs.xfs $opts)"
  rm -f "$img"; truncate -s "$size" "$img"
  # shellcheck disable=SC2086
  mkfs.xfs -q -f -m uuid="$(uuid_for "$name")" $opts "$img" 2>&1 | grep -v 'V4 filesystems are deprecated' || true
  step "$kernel" "$img" __dirtylog "$mnt" "$o"
  # Evidence that the image needs log recovery: xfs_repair -n, xfs_logprint, xfs_db.
  local rc=0; xfs_repair -n "$img" > "$o.repair" 2>&1 || rc=$?
  grep -qi 'log' "$o.repair" && [ "$rc" != 0 ] || { cat "$o.repair"; die "$name: xfs_repair -n does not report a dirty log"; }
  xfs_logprint -t "$img" > "$o.logprint" 2>&1 || true
  local seen; seen=$(xfs_db -r -c 'path /new-dir' "$img" 2>&1 || true)
  echo "$seen" | grep -q 'not found\|No such' || die "$name: xfs_db sees /new-dir without log replay: $seen"
  dump_xfs_db "$img" <(grep -v ' new-dir' "$o.inodes") "$out/$name.xfs_db"
  cp --sparse=always "$img" "$work/$name.replay.img"
  step "$kernel" "$work/$name.replay.img" __replay "$mnt" "$o"
  xfs_repair -n "$work/$name.replay.img" > "$o.replay-repair" 2>&1 || { cat "$o.replay-repair"; die "$name: replayed copy not clean"; }
  local same=yes
  for f in find sha256 xattrs; do cmp -s "$o.$f" "$o.intended.$f" || { same=no; diff "$o.intended.$f" "$o.$f" | head -20; }; done
  [ "$same" = yes ] || die "$name: the kernel's log replay differs from the intended tree"
  { echo "# $name: mkfs.xfs -m uuid=$(uuid_for "$name") $opts  (image $size, sparse)"
    echo "# dirty log: gen-xfs-tree.py --dirtylog-base, clean umount; mount -o noatime,"
    echo "# gen-xfs-tree.py --dirtylog-changes (all fsynced), xfs_io -x -c 'shutdown -f', umount."
    echo "# The committed image is the one right after that umount (never mounted again)."
    echo "# $name.intended.* = oracles of the live tree before the shutdown;"
    echo "# $name.{find,sha256,xattrs} = oracles after the kernel's log recovery on a copy: identical."
    echo; echo "## xfs_info"; xfs_info "$img" | sed "s|$img|$name.img|"
    echo; echo "## xfs_db -r -c 'path /new-dir' (xfs_db ignores the log: the new directory is not there)"; echo "$seen"
    echo; echo "## xfs_repair -n (exit $rc)"; cat "$o.repair"
    echo; echo "## inodes (numbers from the live mount; the new-dir ones exist only after replay)"; cat "$o.inodes"
    echo; echo "## xfs_logprint -t"; cat "$o.logprint"
  } > "$out/$name.info"
  finish "$name" "$img"
}

mkdir -p "$out"
want=("$@")
for v in "${VARIANTS[@]}"; do
  IFS='|' read -r name size bs dirblk reflink kernel opts <<< "$v"
  if [ ${#want[@]} -gt 0 ] && ! printf '%s\n' "${want[@]}" | grep -qx "$name"; then continue; fi
  case $name in
    *dirtylog) make_dirtylog "$name" "$size" "$bs" "$dirblk" "$reflink" "$kernel" "$opts" ;;
    *) make_variant "$name" "$size" "$bs" "$dirblk" "$reflink" "$kernel" "$opts" ;;
  esac
done
echo "== sizes"
(cd "$out" && ls -l | awk 'NR>1 {printf "%10d  %s\n", $5, $9}'; du -sh .)
