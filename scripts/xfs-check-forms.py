#!/usr/bin/env python3
"""Checks, with xfs_db only, that an XFS fixture image really has each on-disk form.

    xfs-check-forms.py IMG INODES [--reflink]

INODES: lines "inode-number path" (from `stat -c '%i %n'` on the mounted tree). For each
path with an expectation below, reads `xfs_db -r -c "inode N" -c print` and the magic of
the directory/attribute blocks, prints one line per inode (the .info file's "forms" table)
and exits 1 if any expectation fails.

How a form is told (magics from the XFS on-disk format; v4 / v5 values):
  data fork format    core.format 0 dev, 1 local, 2 extents, 3 btree
  block directory     dblock 0 magic XD2B 0x58443242 / XDB3 0x58444233
  leaf directory      block at 32 GiB (XFS_DIR2_LEAF_OFFSET) magic leaf1 0xd2f1 / 0x3df1
  node directory      block at 32 GiB magic da node 0xfebe / 0x3ebe (or leafn 0xd2ff / 0x3dff),
                      plus a free-index block at 64 GiB, magic XD2F 0x58443246 / XDF3 0x58444633
  attr shortform      core.aformat 1
  attr leaf / node    ablock 0 magic 0xfbee / 0x3bee (leaf), 0xfebe / 0x3ebe (da node)
  remote attr value   a leaf entry with a valueblk field
  unwritten extent    xfs_db bmap line with "flag 1"
  reflinked           v3.reflink = 1 (di_flags2)
"""
import re
import subprocess
import sys

BLOCK = {0x58443242, 0x58444233}
DATA = {0x58443244, 0x58444433}
LEAF1 = {0xD2F1, 0x3DF1}
LEAFN = {0xD2FF, 0x3DFF}
DANODE = {0xFEBE, 0x3EBE}
FREE = {0x58443246, 0x58444633}
ALEAF = {0xFBEE, 0x3BEE}

# path -> checks; each check is (description, predicate over the facts dict)
EXPECT = {
    "dirs/sf": [("shortform dir", lambda f: f["format"] == "local")],
    "dirs/block": [("block dir, extents", lambda f: f["dirform"] == "block" and f["format"] == "extents")],
    "dirs/leaf": [("leaf dir, extents", lambda f: f["dirform"] == "leaf" and f["format"] == "extents")],
    "dirs/node": [("node dir", lambda f: f["dirform"].startswith("node"))],
    # (a 256-byte V4 inode holds too few extents for any node directory)
    "dirs/node-small": [("node dir, extents", lambda f: f["dirform"].startswith("node") and (f["format"] == "extents" or f["isize"] < 512))],
    "dirs/btree": [("node dir, btree data fork", lambda f: f["dirform"].startswith("node") and f["format"] == "btree")],
    "files/fragmented": [("btree data fork", lambda f: f["format"] == "btree")],
    "files/punched": [("btree data fork with holes", lambda f: f["format"] == "btree" and f["holes"])],
    "files/multi-extent": [("several extents, extents format", lambda f: f["format"] == "extents" and f["nextents"] >= 2)],
    "files/sparse-start": [("hole at start", lambda f: f["first_offset"] > 0)],
    "files/sparse-middle": [("hole in the middle", lambda f: f["holes"])],
    "files/prealloc": [("unwritten extent", lambda f: f["unwritten"])],
    "files/prealloc-past-eof": [("extent past EOF", lambda f: f["nblocks_mapped"] * f["bs"] > f["size"])],
    "files/beyond-4g": [("block past 4 GiB", lambda f: f["last_offset"] * f["bs"] >= 4 << 30)],
    "files/empty": [("no extents", lambda f: f["nextents"] == 0)],
    "links/relative": [("inline symlink", lambda f: f["format"] == "local")],
    "links/long-600": [("remote symlink", lambda f: f["format"] == "extents")],
    "links/long-1024": [("remote symlink", lambda f: f["format"] == "extents")],
    "dev/null-char": [("device inode", lambda f: f["format"] == "dev")],
    "dev/fifo": [("device inode", lambda f: f["format"] == "dev")],
    "xattrs/shortform": [("shortform attrs", lambda f: f["aformat"] == "local")],
    "xattrs/leaf": [("leaf attrs", lambda f: f["attrform"] == "leaf")],
    "xattrs/node": [("node attrs", lambda f: f["attrform"] == "node")],
    "xattrs/node-small": [("node attrs, extents attr fork", lambda f: f["attrform"] == "node" and f["aformat"] == "extents")],
    "xattrs/node-btree-fork": [("node attrs, btree attr fork", lambda f: f["attrform"] == "node" and f["aformat"] == "btree")],
    "xattrs/remote": [("leaf attrs with remote values", lambda f: f["attrform"] == "leaf" and f["remote_values"] >= 1)],
}
REFLINK = {
    "files/reflink-copy": [("reflink flag", lambda f: f["reflink"])],
    "files/reflink-src": [("reflink flag", lambda f: f["reflink"])],
}


def db(img, *cmds):
    args = ["xfs_db", "-r"]
    for c in cmds:
        args += ["-c", c]
    return subprocess.run(args + [img], check=True, capture_output=True, text=True).stdout


def magics(text):
    return [int(m, 16) for m in re.findall(r"^\S*magic = (0x[0-9a-f]+)", text, re.M)]


def facts(img, ino, bs, isize):
    out = db(img, "inode %d" % ino, "print")
    field = lambda n: re.search(r"^core\.%s = (.*)$" % re.escape(n), out, re.M).group(1)
    f = {"bs": bs, "isize": isize}
    f["format"] = re.search(r"\((\w+)\)", field("format")).group(1)
    f["aformat"] = re.search(r"\((\w+)\)", field("aformat")).group(1)
    f["nextents"] = int(re.search(r"^core\.(?:nextents|nextents64) = (\d+)", out, re.M).group(1))
    f["naextents"] = int(re.search(r"^core\.(?:naextents|naextents32) = (\d+)", out, re.M).group(1))
    f["size"] = int(field("size"))
    f["mode"] = field("mode")
    m = re.search(r"^v3\.reflink = (\d)", out, re.M)
    f["reflink"] = bool(m and m.group(1) == "1")
    bmap = db(img, "inode %d" % ino, "bmap -d") if f["format"] in ("extents", "btree") else ""
    ext = [tuple(int(x) for x in m) for m in
           re.findall(r"data offset (\d+) startblock \d+ \([^)]*\) count (\d+) flag (\d)", bmap)]
    f["unwritten"] = any(e[2] == 1 for e in ext)
    f["first_offset"] = ext[0][0] if ext else 0
    f["last_offset"] = ext[-1][0] + ext[-1][1] - 1 if ext else 0
    f["nblocks_mapped"] = sum(e[1] for e in ext)
    f["holes"] = any(a[0] + a[1] != b[0] for a, b in zip(ext, ext[1:]))
    f["dirform"] = "-"
    if re.match(r"04\d{4}$", f["mode"]):  # S_IFDIR
        if f["format"] == "local":
            f["dirform"] = "shortform"
        else:
            b0 = magics(db(img, "inode %d" % ino, "dblock 0", "print"))
            leaf = magics(db(img, "inode %d" % ino, "dblock %d" % ((1 << 35) // bs), "print"))
            free = magics(db(img, "inode %d" % ino, "dblock %d" % ((1 << 36) // bs), "print"))
            if b0 and b0[0] in BLOCK:
                f["dirform"] = "block"
            elif leaf and leaf[0] in LEAF1:
                f["dirform"] = "leaf"
            elif leaf and leaf[0] in DANODE and free and free[0] in FREE:
                f["dirform"] = "node"
            elif leaf and leaf[0] in LEAFN and free and free[0] in FREE:
                f["dirform"] = "node(one leafn)"
            else:
                f["dirform"] = "unknown(%s)" % ",".join(hex(x) for x in b0 + leaf + free)
    f["attrform"] = "-"
    f["remote_values"] = 0
    if f["aformat"] == "local":
        f["attrform"] = "shortform"
    elif f["aformat"] in ("extents", "btree"):
        a0 = db(img, "inode %d" % ino, "ablock 0", "print")
        m = magics(a0)
        f["attrform"] = "leaf" if m and m[0] in ALEAF else "node" if m and m[0] in DANODE else "unknown"
        f["remote_values"] = len(re.findall(r"valueblk = ", a0))
    return f


def main():
    img, inodes = sys.argv[1], sys.argv[2]
    reflink = "--reflink" in sys.argv
    sb = db(img, "sb 0", "print")
    bs = int(re.search(r"^blocksize = (\d+)", sb, re.M).group(1))
    isize = int(re.search(r"^inodesize = (\d+)", sb, re.M).group(1))
    expect = dict(EXPECT, **(REFLINK if reflink else {}))
    bad = 0
    print("%-24s %8s %-8s %-8s %5s %6s %-15s %-9s %s" % ("path", "inode", "format", "aformat", "next", "naext", "dir form", "attr form", "checks"))
    for line in open(inodes):
        ino, path = line.split(" ", 1)
        path = path.rstrip("\n")
        if path.startswith("./"):
            path = path[2:]
        f = facts(img, int(ino), bs, isize)
        res = []
        for desc, pred in expect.get(path, []):
            ok = pred(f)
            bad += not ok
            res.append(("OK " if ok else "FAILED ") + desc)
        extra = []
        if f["unwritten"]:
            extra.append("unwritten")
        if f["holes"]:
            extra.append("holes")
        if f["remote_values"]:
            extra.append("%d remote values" % f["remote_values"])
        if f["reflink"]:
            extra.append("reflink")
        print("%-24s %8s %-8s %-8s %5d %6d %-15s %-9s %s" % (path, ino, f["format"], f["aformat"], f["nextents"], f["naextents"],
                                                  f["dirform"], f["attrform"], "; ".join(res + extra)))
    listed = {l.split(" ", 1)[1].rstrip("\n") for l in open(inodes)}
    missing = set(expect) - {p[2:] if p.startswith("./") else p for p in listed}
    for m in sorted(missing):
        print("FAILED: no inode listed for %s" % m)
        bad += 1
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
