#!/usr/bin/env python3
"""Populates a freshly made, mounted XFS file system with the fixture tree.

Used by scripts/make-xfs-fixtures.sh (run as root, on the host kernel or inside a user-mode
Linux kernel for V4 images). Deterministic: no randomness beyond a fixed-seed PRNG, every
time is set explicitly, the same operations run in the same order on every variant.

    gen-xfs-tree.py ROOT --blksize B --dirblk D [--reflink]
    gen-xfs-tree.py ROOT --dirtylog-base        (small base tree for the dirty-log image)
    gen-xfs-tree.py ROOT --dirtylog-changes     (the changes left only in the log)

Phases of the full tree:
  1. everything that needs no fragmented free space (dirs in short/block/leaf/node form,
     files, links, devices, xattrs, ACLs), plus the inodes phase 2 fills in;
  2. free space is fragmented (a spacer file fills the free space, every other block of it is
     punched out); then a fragmented dense file, a few-extent file and the btree-format
     directory (its entries are renamed in from a staging dir, so no inode is allocated while
     free space is a checkerboard); the spacer is removed;
  3. every inode gets its security.selinux label and its atime/mtime (post-order, so the
     directory times stay as set).

Only the kernel (through the system calls below) and the standard tools setfacl and cp
write to the file system.
"""
import argparse
import ctypes
import ctypes.util
import errno
import hashlib
import os
import random
import socket
import stat
import subprocess
import sys
from calendar import timegm

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2


def fallocate(fd, mode, off, length):
    if libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def content(tag, size):
    """Deterministic, compressible, position-dependent bytes: misplaced blocks show."""
    out = bytearray()
    i = 0
    while len(out) < size:
        out += b"%s line %07d offset %010d\n" % (tag.encode("utf-8", "surrogateescape"), i, len(out))
        i += 1
    return bytes(out[:size])


def when(y, mo, d, h=0, mi=0, s=0, ns=0):
    return timegm((y, mo, d, h, mi, s)) * 10**9 + ns


BASE_NS = when(2024, 2, 10)


def default_time(rel):
    """A per-path time on 2024-02-10 with a nanosecond part, from the path's hash."""
    h = int.from_bytes(hashlib.sha256(os.fsencode(rel)).digest()[:8], "big")
    return BASE_NS + (h % 86400) * 10**9 + (h >> 20) % 10**9


# Special times (path relative to ROOT -> ns since the epoch). The non-bigtime images clamp
# the ones past 2038-01-19T03:14:07Z; the oracle records what the kernel stored.
SPECIAL_TIMES = {
    "files/times/t-1901": when(1901, 12, 14, 0, 0, 0, 250000000),
    "files/times/t-1969": when(1969, 12, 31, 23, 59, 59, 500000000),
    "files/times/t-epoch": 0,
    "files/times/t-2038-01-19": when(2038, 1, 19, 3, 14, 7),
    "files/times/t-2038-01-20": when(2038, 1, 20, 0, 0, 0, 1),
    "files/times/t-2100": when(2100, 1, 1, 0, 0, 0, 999999999),
    "files/times/t-ns": when(2024, 2, 10, 12, 34, 56, 123456789),
}

LABELS = {  # security.selinux values, NUL-terminated like the kernel's own labels
    "dir": b"system_u:object_r:default_t:s0\0",
    "file": b"system_u:object_r:etc_t:s0\0",
    "link": b"system_u:object_r:bin_t:s0\0",
    "dev": b"system_u:object_r:device_t:s0\0",
}


class Tree:
    def __init__(self, root, blksize, dirblk, reflink):
        self.root = root
        self.bs = blksize
        self.dirblk = dirblk
        self.reflink = reflink
        self.rng = random.Random(20240210)
        self.summary = []

    def p(self, rel):
        return os.path.join(self.root, rel)

    def note(self, s):
        self.summary.append(s)

    def mkdir(self, rel, mode=0o755):
        os.mkdir(self.p(rel))
        os.chmod(self.p(rel), mode)

    def write(self, rel, data, mode=0o644):
        with open(self.p(rel), "wb") as f:
            f.write(data)
        os.chmod(self.p(rel), mode)

    # ---- phase 1 -------------------------------------------------------------------------
    def dirs(self):
        self.mkdir("dirs")
        big = self.dirblk > 4096
        counts = {"sf": 3, "block": 30, "leaf": 3000 if big else 300,
                  "node-small": 8500 if big else 700, "node": 9000 if big else 3000}
        # With 64 KiB directory blocks the node dirs need > 8,180 entries: there most of
        # them are hard links to 16 files of dirs/node-targets (fewer inodes, smaller images).
        if big:
            self.mkdir("dirs/node-targets")
            for k in range(16):
                self.write("dirs/node-targets/t-%02d" % k, b"")
        # The entries are made in a staging directory, then (after a sync) hard-linked into
        # place (subdirectories renamed), so the directory's own blocks are allocated while
        # nothing else allocates and nothing is freed near them: few extents.
        self.mkdir("stage")
        for d, n in counts.items():
            self.mkdir("dirs/" + d)
            names = []
            for i in range(n):
                name = "%s-%05d" % (d, i)
                if i % 97 == 0:  # a few non-empty files and subdirs among them
                    self.write("stage/" + name, content(name, 100 + i))
                elif i % 101 == 1:
                    name += ".d"
                    self.mkdir("stage/" + name)
                elif big and d.startswith("node"):
                    os.link(self.p("dirs/node-targets/t-%02d" % (i % 16)), self.p("stage/" + name))
                else:
                    open(self.p("stage/" + name), "wb").close()
                names.append(name)
            os.sync()
            for name in names:
                if name.endswith(".d"):
                    os.rename(self.p("stage/" + name), self.p("dirs/%s/%s" % (d, name)))
                else:
                    os.link(self.p("stage/" + name), self.p("dirs/%s/%s" % (d, name)))
            for name in names:
                if not name.endswith(".d"):
                    os.unlink(self.p("stage/" + name))
            self.note("dir dirs/%s: %d entries" % (d, n))
        os.rmdir(self.p("stage"))
        # The btree directory: linked into in phase 2 (fragmented free space). Its entries
        # (long names, 200..255 bytes) are hard links to 16 files of dirs/btree-targets, so
        # no inode is allocated then, and the images stay small.
        self.mkdir("dirs/btree")
        self.mkdir("dirs/btree-targets")
        for k in range(16):
            self.write("dirs/btree-targets/target-%02d" % k, content("btree-target-%02d" % k, 10 + k))
        self.btree_names = []
        n = 10000 if big else 5000
        filler = "-long-directory-entry-name-for-the-btree-form-directory" * 5
        for i in range(n):
            name = ("%05d" % i) + filler[: 195 + (i * 7) % 56]
            assert len(name) <= 255
            self.btree_names.append(name)
        self.note("dir dirs/btree: %d entries, names of 200..255 bytes, hard links to the 16 "
                  "files of dirs/btree-targets" % n)

    def files(self):
        self.mkdir("files")
        bs = self.bs
        open(self.p("files/empty"), "wb").close()
        self.write("files/tiny", b"hello, xfs\n")
        self.write("files/one-block", content("one-block", bs))
        self.write("files/odd-size", content("odd-size", 3 * bs + 17))
        # sparse files: hole at the start / middle / end (sizes in blocks)
        with open(self.p("files/sparse-start"), "wb") as f:
            f.seek(64 * bs)
            f.write(content("sparse-start", 2 * bs))
        with open(self.p("files/sparse-middle"), "wb") as f:
            f.write(content("sparse-middle-a", 2 * bs))
            f.seek(66 * bs)
            f.write(content("sparse-middle-b", bs + 100))
        with open(self.p("files/sparse-end"), "wb") as f:
            f.write(content("sparse-end", 2 * bs))
            f.truncate(100 * bs)
        # a file with data past the 4 GiB offset (blocks at 0 and 5 GiB)
        with open(self.p("files/beyond-4g"), "wb") as f:
            f.write(content("beyond-4g-a", 4096))
            f.seek(5 << 30)
            f.write(content("beyond-4g-b", 4096))
        # preallocated-but-unwritten: 4 MiB of unwritten extents, 4 KiB written at 1 MiB
        subprocess.run(["xfs_io", "-f", "-c", "falloc 0 4m", "-c", "pwrite -q -S 0x5a 1m 4k",
                        self.p("files/prealloc")], check=True)
        # beyond EOF: allocated past the size (falloc -k), only the first block has data
        self.write("files/prealloc-past-eof", content("prealloc-past-eof", 1000))
        subprocess.run(["xfs_io", "-c", "falloc -k 0 1m", self.p("files/prealloc-past-eof")], check=True)
        # a contiguous file turned into a btree (bmbt) data fork by punching every other block
        nblk = 64
        self.write("files/punched", content("punched", nblk * bs))
        fd = os.open(self.p("files/punched"), os.O_RDWR)
        for b in range(1, nblk, 2):
            fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, b * bs, bs)
        os.fsync(fd)
        os.close(fd)
        # filled in phase 2 (their inodes are allocated now)
        open(self.p("files/fragmented"), "wb").close()
        open(self.p("files/multi-extent"), "wb").close()
        # reflinked copies (shared extents) and a copy of which one block was rewritten (CoW)
        self.write("files/reflink-src", content("reflink-src", 16 * bs))
        cp = ["cp", "--reflink=always"] if self.reflink else ["cp"]
        subprocess.run(cp + [self.p("files/reflink-src"), self.p("files/reflink-copy")], check=True)
        subprocess.run(cp + [self.p("files/reflink-src"), self.p("files/reflink-cow")], check=True)
        with open(self.p("files/reflink-cow"), "r+b") as f:
            f.seek(5 * bs)
            f.write(content("reflink-cow-overwrite", bs))
        # hard links: 3 names in 2 directories
        self.write("files/hardlink-a", content("hardlink", 5000))
        os.link(self.p("files/hardlink-a"), self.p("files/hardlink-b"))
        # modes and owners
        self.mkdir("files/modes")
        for name, mode, uid, gid in [
            ("setuid", 0o4755, 0, 0), ("setgid", 0o2755, 0, 0), ("all-bits", 0o7777, 0, 0),
            ("none", 0o000, 0, 0), ("user-1000", 0o640, 1000, 1000), ("nobody", 0o600, 65534, 65534),
            ("uid-big", 0o644, 4000000000, 3000000000), ("group-only", 0o070, 0, 100),
        ]:
            self.write("files/modes/" + name, content(name, 10 + len(name)))
            os.chown(self.p("files/modes/" + name), uid, gid)
            os.chmod(self.p("files/modes/" + name), mode)
        self.mkdir("files/modes/sticky-dir", 0o1777)
        self.mkdir("files/modes/setgid-dir", 0o2775)
        os.chown(self.p("files/modes/setgid-dir"), 1000, 100)
        self.mkdir("files/times")
        for rel in SPECIAL_TIMES:
            self.write(rel, content(rel, 20))

    def names(self):
        self.mkdir("names")
        names = [b"a", b"Z" * 255, b"\xff\xfe-latin1-caf\xe9", b"bad-utf8-\xc3\x28-\xa0\xa1",
                 "ünïcødé-日本語-😀".encode(), b"with space", b"-dash", b".hidden",
                 b"sh'q\"uote*?[x]", b"tab\there", ("é" * 127).encode()]  # 254 bytes of 2-byte chars
        for n in names:
            path = os.path.join(os.fsencode(self.p("names")), n)
            with open(path, "wb") as f:
                f.write(b"name: " + n + b"\n")
        os.link(os.path.join(os.fsencode(self.p("names")), b"a"),
                os.path.join(os.fsencode(self.p("files")), b"hardlink-c-to-names-a"))
        # hard link across directories: files/hardlink-a has 3 names
        os.link(self.p("files/hardlink-a"), self.p("names/hardlink-of-files-hardlink-a"))

    def links(self):
        self.mkdir("links")
        os.symlink("../files/tiny", self.p("links/relative"))
        os.symlink("/etc/passwd", self.p("links/absolute"))
        os.symlink("does/not/exist", self.p("links/dangling"))
        os.symlink("x", self.p("links/one-char"))
        os.symlink("sub/../../files/../files/tiny", self.p("links/dotdot"))
        os.symlink("../links/loop-b", self.p("links/loop-a"))
        os.symlink("../links/loop-a", self.p("links/loop-b"))
        os.symlink("../dirs", self.p("links/to-dir"))
        # long (remote) targets: 600 bytes and the maximum, 1024 bytes
        long_t = "/".join("component%03d" % i for i in range(60))[:600]
        os.symlink(long_t, self.p("links/long-600"))
        max_t = ("../" * 300 + "files/tiny")[:1024]
        os.symlink(max_t, self.p("links/long-1024"))
        os.symlink("ünïcødé-target-日本語", self.p("links/utf8-target"))

    def devices(self):
        self.mkdir("dev")
        os.mknod(self.p("dev/null-char"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(self.p("dev/sda-block"), 0o660 | stat.S_IFBLK, os.makedev(8, 0))
        os.mknod(self.p("dev/big-major"), 0o600 | stat.S_IFCHR, os.makedev(259, 262143))
        os.mkfifo(self.p("dev/fifo"), 0o644)
        here = os.getcwd()
        os.chdir(self.p("dev"))  # AF_UNIX paths are limited to 108 bytes: bind relative
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind("socket")
        s.close()
        os.chdir(here)
        os.chmod(self.p("dev/socket"), 0o755)

    def xattrs(self):
        self.mkdir("xattrs")
        x = lambda rel, name, val: os.setxattr(self.p(rel), name, val, follow_symlinks=False)
        self.write("xattrs/none", b"no xattr but the label\n")
        # shortform: the label plus 2 small ones
        self.write("xattrs/shortform", b"shortform xattrs\n")
        x("xattrs/shortform", "user.one", b"1")
        x("xattrs/shortform", "trusted.two", b"two")
        # leaf: one attr block (fewer on small blocks, so they still fit one block)
        nleaf = min(50, max(6, (self.bs - 200) // 45))
        self.write("xattrs/leaf", b"leaf xattrs\n")
        for i in range(nleaf):
            x("xattrs/leaf", "user.leaf-%03d" % i, b"value-%03d" % i)
        self.note("xattrs/leaf: %d user.* attrs" % nleaf)
        # node: many attrs -> a dabtree over several leaf blocks
        # Listing all names of an inode (listxattr, getfattr) is limited to 64 KiB of names,
        # so on 64 KiB blocks the attr blocks are filled with 2 KiB values, not more names.
        big = self.bs > 4096
        pad = 2048 if big else 0
        self.aval = lambda tag, i: (b"value-%05d-" % i) + bytes([65 + i % 26]) * pad
        per_leaf = self.bs // (pad + 40)
        nnode = 10 * per_leaf if big else 2000
        self.nbtree = 30 * per_leaf if big else 2000
        os.sync()  # no delayed-allocation writeback among the attr blocks: extents form
        self.write("xattrs/node", b"node xattrs\n")
        for i in range(nnode):
            ns = "trusted" if i % 10 == 9 else "user"
            x("xattrs/node", "%s.node-attribute-%05d" % (ns, i), self.aval("node", i))
        self.note("xattrs/node: %d user.*/trusted.* attrs (values of %d bytes)" % (nnode, 10 + pad))
        # node form with few leaves: attr fork still in extents form
        nsmall = 3 * per_leaf
        self.write("xattrs/node-small", b"node xattrs, few leaves\n")
        for i in range(nsmall):
            x("xattrs/node-small", "user.small-node-%05d" % i, self.aval("node-small", i))
        self.note("xattrs/node-small: %d user.* attrs" % nsmall)
        # remote values: larger than one block; 65536 bytes is the largest value Linux allows
        self.write("xattrs/remote", b"remote xattr values\n")
        x("xattrs/remote", "user.big", content("xattr-big", 5000))
        x("xattrs/remote", "user.max", content("xattr-max", 65536))
        x("xattrs/remote", "user.small", b"s")
        # odd values: binary, empty, 255-byte name
        self.write("xattrs/odd", b"odd xattrs\n")
        x("xattrs/odd", "user.binary", bytes([0, 1, 2, 255, 254, 0, 10, 13]))
        x("xattrs/odd", "user.empty", b"")
        x("xattrs/odd", "user." + "n" * 250, b"long name")
        x("xattrs/odd", "trusted.ünïcødé", "värde".encode())
        # a directory with xattrs too
        self.mkdir("xattrs/dir-with-xattrs")
        x("xattrs/dir-with-xattrs", "user.dir", b"on a directory")
        # ACLs (system.posix_acl_access / system.posix_acl_default) with setfacl
        self.write("xattrs/acl-file", b"acl file\n", 0o640)
        subprocess.run(["setfacl", "-m", "u:1000:rw-,u:2000:r--,g:100:r--,g:2001:rwx,m::rwx,o::---",
                        self.p("xattrs/acl-file")], check=True)
        self.mkdir("xattrs/acl-dir", 0o750)
        subprocess.run(["setfacl", "-m", "u:1000:rwx,g:100:r-x", "-d", "-m", "u::rwx,u:1000:rwx,g::r-x,g:100:r-x,m::rwx,o::---",
                        self.p("xattrs/acl-dir")], check=True)
        self.write("xattrs/acl-dir/inherited", b"inherits the default ACL\n")
        self.mkdir("xattrs/acl-dir/subdir")

    # ---- phase 2 -------------------------------------------------------------------------
    def fragment(self):
        bs = self.bs
        spacer = self.p("spacer")
        # Release the reserve pool (a count, not a place: without this its blocks stay free and
        # contiguous, and multi-block requests such as 64 KiB directory blocks are served from
        # them instead of from the holes). Not persistent: the next mount sets it again.
        subprocess.run(["xfs_io", "-x", "-c", "resblks 0", self.root], check=True, stdout=subprocess.DEVNULL)
        fd = os.open(spacer, os.O_RDWR | os.O_CREAT, 0o600)
        off = 0
        # fill (nearly) all free space with unwritten extents: big steps, then single blocks
        for step in (1 << 20, bs):
            while True:
                try:
                    fallocate(fd, 0, off, step)
                    off += step
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
        # punch every other block: free space becomes one-block holes
        for b in range(0, off // bs, 2):
            fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, b * bs, bs)
        os.fsync(fd)
        os.close(fd)
        self.note("free space fragmented: spacer of %d blocks, every other block punched" % (off // bs))
        # A dense fragmented file: allocated one block at a time (each lands in the hole
        # nearest to the previous one), so every block is its own extent -> btree data fork.
        # Then a few-extent file (extents format, several extents, no holes).
        for rel, nblk in (("files/fragmented", 64), ("files/multi-extent", 4)):
            size = nblk * bs - 123
            with open(self.p(rel), "r+b") as f:
                for b in range(nblk):
                    fallocate(f.fileno(), FALLOC_FL_KEEP_SIZE, b * bs, bs)
                f.write(content(rel, size))
                os.fsync(f.fileno())
        # many xattrs added while free space is fragmented: node form, attr fork in btree form
        self.write("xattrs/node-btree-fork", b"node xattrs, attr fork in btree format\n")
        for i in range(self.nbtree):
            os.setxattr(self.p("xattrs/node-btree-fork"), "user.fragmented-attribute-%05d" % i,
                        self.aval("node-btree-fork", i))
        self.note("xattrs/node-btree-fork: %d user.* attrs" % self.nbtree)
        # the btree directory: its blocks land in the holes
        for i, name in enumerate(self.btree_names):
            os.link(self.p("dirs/btree-targets/target-%02d" % (i % 16)), self.p("dirs/btree/" + name))
        os.unlink(spacer)

    # ---- phase 3 -------------------------------------------------------------------------
    def label_and_time(self):
        # post-order (children before their directory: setting times changes no parent),
        # names sorted, so a hard-linked inode always gets the times of the same name
        def walk(d):
            for name in sorted(os.listdir(d)):
                path = os.path.join(d, name)
                if stat.S_ISDIR(os.lstat(path).st_mode):
                    walk(path)
                self._finish(path)
        walk(self.root)
        self._finish(self.root)

    def _finish(self, path):
        rel = os.path.relpath(path, self.root)
        st = os.lstat(path)
        kind = ("dir" if stat.S_ISDIR(st.st_mode) else "link" if stat.S_ISLNK(st.st_mode)
                else "file" if stat.S_ISREG(st.st_mode) else "dev")
        os.setxattr(path, "security.selinux", LABELS[kind], follow_symlinks=False)
        t = SPECIAL_TIMES.get(rel, default_time(rel))
        os.utime(path, ns=(t, t), follow_symlinks=False)

    def build(self):
        self.dirs()
        self.files()
        self.names()
        self.links()
        self.devices()
        self.xattrs()
        os.sync()
        self.fragment()
        self.label_and_time()
        os.sync()


def dirtylog_base(root):
    """The part of the dirty-log image that is on disk (written back before the crash)."""
    t = Tree(root, 4096, 4096, False)
    t.mkdir("keep")
    for i in range(20):
        t.write("keep/file-%02d" % i, content("keep-%02d" % i, 100 * i + 1))
    t.write("keep/to-be-renamed", b"renamed later\n")
    t.write("keep/to-be-unlinked", b"unlinked later\n")
    t.write("keep/to-be-rewritten", content("rewrite-old", 8192))
    t.mkdir("keep/dir-to-remove")
    t.write("keep/dir-to-remove/x", b"x\n")
    os.setxattr(t.p("keep/file-01"), "user.old", b"old value")
    t.label_and_time()


def dirtylog_changes(root):
    """Changes that only reach the log: every file is fsynced (data on disk, metadata in the
    log), then the caller shuts the file system down with a log flush."""
    t = Tree(root, 4096, 4096, False)

    def fs(rel):  # fsync: data to its blocks, the metadata change into the log
        fd = os.open(t.p(rel), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)

    t.mkdir("new-dir")
    for i in range(40):  # enough entries for a block-form directory
        t.write("new-dir/new-file-%02d" % i, content("new-%02d" % i, 50 * i + 1))
        fs("new-dir/new-file-%02d" % i)
    t.write("new-dir/big", content("new-big", 300000))
    fs("new-dir/big")
    os.rename(t.p("keep/to-be-renamed"), t.p("new-dir/renamed"))
    os.unlink(t.p("keep/to-be-unlinked"))
    os.unlink(t.p("keep/dir-to-remove/x"))
    os.rmdir(t.p("keep/dir-to-remove"))
    with open(t.p("keep/to-be-rewritten"), "r+b") as f:
        f.write(content("rewrite-new", 4096))
        f.truncate(6000)
        os.fsync(f.fileno())
    os.setxattr(t.p("keep/file-01"), "user.old", b"new value")
    os.setxattr(t.p("keep/file-02"), "user.added", b"added after the sync")
    for i in range(30):
        os.setxattr(t.p("new-dir/new-file-00"), "user.attr-%02d" % i, b"v%02d" % i)
    os.symlink("../keep/file-03", t.p("new-dir/link"))
    os.link(t.p("keep/file-04"), t.p("new-dir/hardlink-to-file-04"))
    os.chmod(t.p("keep/file-05"), 0o600)
    os.chown(t.p("keep/file-06"), 1234, 5678)
    t.label_and_time()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames + ["."]:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p) and (os.path.isdir(p) or os.path.isfile(p)):
                fd = os.open(p, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--blksize", type=int, default=4096)
    ap.add_argument("--dirblk", type=int, default=4096)
    ap.add_argument("--reflink", action="store_true")
    ap.add_argument("--dirtylog-base", action="store_true")
    ap.add_argument("--dirtylog-changes", action="store_true")
    a = ap.parse_args()
    os.umask(0)
    if a.dirtylog_base:
        dirtylog_base(a.root)
        return
    if a.dirtylog_changes:
        dirtylog_changes(a.root)
        return
    t = Tree(a.root, a.blksize, a.dirblk, a.reflink)
    t.build()
    for s in t.summary:
        print(s)


if __name__ == "__main__":
    main()
