//! Test support: build source trees, make ext images with mkfs -d, read the oracle (find,
//! sha256sum, getfattr) and walk an image through the Filesystem trait.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use guestctl_block::{BlockDevice, RawFile};
use guestctl_fs::{ext::ExtFs, FileType, Filesystem, NodeId, OpenOptions};
use sha2::{Digest, Sha256};

pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e} (install it: scripts/test.sh does)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn is_root() -> bool {
    run("id", &["-u"]).trim() == "0"
}

fn write(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, data).expect("write");
}

/// Deterministic pseudo-random bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A tree exercising what ext stores: sizes around block boundaries, sparse files, short,
/// 59/60/61-byte and long symlinks, hard links, unicode names, a large (htree) directory,
/// deep nesting, fifos, xattrs, odd modes and nanosecond mtimes.
pub fn build_tree(root: &Path, big_dir_entries: usize) {
    use std::os::unix::fs::{symlink, PermissionsExt};
    std::fs::create_dir_all(root).expect("root");
    for (i, size) in [
        0usize, 1, 59, 60, 61, 1023, 1024, 1025, 4095, 4096, 4097, 65536, 200_000, 3_000_000,
    ]
    .iter()
    .enumerate()
    {
        write(
            &root.join(format!("sizes/f{size}")),
            &noise(*size, i as u64 + 1),
        );
    }
    // Sparse: data at 0, a hole, data at 5 MiB and at 40 MiB (needs indirect blocks on ext2).
    {
        use std::os::unix::fs::FileExt;
        let p = root.join("sparse/holes.bin");
        std::fs::create_dir_all(p.parent().expect("p")).expect("mkdir");
        let f = std::fs::File::create(&p).expect("create");
        f.write_all_at(&noise(5000, 7), 0).expect("w");
        f.write_all_at(&noise(9000, 8), 5 << 20).expect("w");
        f.write_all_at(&noise(100, 9), 40 << 20).expect("w");
        f.set_len((40 << 20) + 4096 * 3).expect("len");
        let f2 = std::fs::File::create(root.join("sparse/all-hole.bin")).expect("create");
        f2.set_len(10 << 20).expect("len");
    }
    std::fs::create_dir_all(root.join("links")).expect("links");
    symlink("../sizes/f1", root.join("links/short")).expect("ln");
    for n in [59usize, 60, 61, 300, 1000] {
        let mut t = String::from("/");
        while t.len() < n {
            t.push_str("abcdefghij/");
        }
        t.truncate(n);
        symlink(&t, root.join(format!("links/len{n}"))).expect("ln");
    }
    symlink("/etc/nonexistent", root.join("links/dangling")).expect("ln");
    symlink("loop2", root.join("links/loop1")).expect("ln");
    symlink("loop1", root.join("links/loop2")).expect("ln");
    symlink("/sizes", root.join("links/abs-dir")).expect("ln");
    std::fs::hard_link(root.join("sizes/f4096"), root.join("links/hard-f4096")).expect("hard");
    write(&root.join("unicode/héllo wörld ☃.txt"), b"snow\n");
    write(&root.join("unicode/日本語/ファイル"), b"nihongo\n");
    for i in 0..big_dir_entries {
        write(
            &root.join(format!("big/entry-with-a-longish-name-{i:06}")),
            format!("{i}\n").as_bytes(),
        );
    }
    let mut deep = root.join("deep");
    for i in 0..20 {
        deep = deep.join(format!("d{i}"));
    }
    write(&deep.join("bottom.txt"), b"bottom\n");
    run("mkfifo", &[root.join("fifo").to_str().expect("utf8")]);
    write(&root.join("modes/setuid"), b"x");
    std::fs::set_permissions(
        root.join("modes/setuid"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .expect("chmod");
    write(&root.join("modes/private"), b"x");
    std::fs::set_permissions(
        root.join("modes/private"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    std::fs::create_dir_all(root.join("modes/sticky")).expect("mkdir");
    std::fs::set_permissions(
        root.join("modes/sticky"),
        std::fs::Permissions::from_mode(0o1777),
    )
    .expect("chmod");
    write(&root.join("xattr/small"), b"x");
    run(
        "setfattr",
        &[
            "-n",
            "user.comment",
            "-v",
            "hello",
            root.join("xattr/small").to_str().expect("u"),
        ],
    );
    run(
        "setfattr",
        &[
            "-n",
            "user.empty",
            root.join("xattr/small").to_str().expect("u"),
        ],
    );
    write(&root.join("xattr/big"), b"y");
    let big = "v".repeat(700);
    run(
        "setfattr",
        &[
            "-n",
            "user.big",
            "-v",
            &big,
            root.join("xattr/big").to_str().expect("u"),
        ],
    );
    write(&root.join("xattr/acl"), b"z");
    run(
        "setfacl",
        &[
            "-m",
            "u:1000:r,g:2000:rw",
            root.join("xattr/acl").to_str().expect("u"),
        ],
    );
    std::fs::create_dir_all(root.join("xattr/acldir")).expect("mkdir");
    run(
        "setfacl",
        &[
            "-d",
            "-m",
            "u:1000:rx",
            root.join("xattr/acldir").to_str().expect("u"),
        ],
    );
    run(
        "touch",
        &[
            "-h",
            "-d",
            "2001-02-03 04:05:06.123456789",
            root.join("sizes/f1").to_str().expect("u"),
        ],
    );
    run(
        "touch",
        &[
            "-h",
            "-d",
            "1965-01-01 00:00:00",
            root.join("sizes/f0").to_str().expect("u"),
        ],
    );
    if is_root() {
        std::os::unix::fs::lchown(root.join("sizes/f59"), Some(70_000), Some(80_000))
            .expect("chown");
        std::os::unix::fs::lchown(root.join("sizes/f60"), Some(1000), Some(1000)).expect("chown");
    }
}

/// One node as both sides describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub kind: char,
    pub size: Option<u64>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: Option<u32>,
    pub mtime: (i64, u32),
    pub target: Option<Vec<u8>>,
    pub sha256: Option<String>,
}

/// The oracle: `find -printf` and `sha256sum` over the source tree.
pub fn oracle(root: &Path, nanos: bool) -> BTreeMap<Vec<u8>, Rec> {
    let out = Command::new("find")
        .arg(root)
        .args([
            "-mindepth",
            "1",
            "-printf",
            "%P\\0%y\\0%s\\0%m\\0%U\\0%G\\0%n\\0%T@\\0%l\\0",
        ])
        .output()
        .expect("find");
    assert!(out.status.success());
    let fields: Vec<&[u8]> = out.stdout.split(|&b| b == 0).collect();
    let mut m = BTreeMap::new();
    for r in fields.chunks(9) {
        if r.len() < 9 {
            continue;
        }
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let kind = s(r[1]).chars().next().expect("kind");
        let t = s(r[7]);
        let (secs, frac) = t.split_once('.').unwrap_or((&t, "0"));
        let mut secs: i64 = secs.parse().expect("secs");
        let mut ns: u32 = format!("{frac:0<9}")[..9].parse().expect("ns");
        if t.starts_with('-') && ns != 0 {
            // find prints -1.5 as "-1.5000000000": seconds and fraction both negative.
            secs -= 1;
            ns = 1_000_000_000 - ns;
        }
        let path = r[0].to_vec();
        let full = root.join(std::ffi::OsStr::from_encoded_bytes_checked(&path));
        let sha256 = (kind == 'f').then(|| {
            let data = std::fs::read(&full).expect("read");
            format!("{:x}", Sha256::digest(&data))
        });
        m.insert(
            path,
            Rec {
                kind,
                size: matches!(kind, 'f' | 'l').then(|| s(r[2]).parse().expect("size")),
                mode: u32::from_str_radix(&s(r[3]), 8).expect("mode"),
                uid: s(r[4]).parse().expect("uid"),
                gid: s(r[5]).parse().expect("gid"),
                nlink: (kind != 'd').then(|| s(r[6]).parse().expect("nlink")),
                mtime: (secs, if nanos { ns } else { 0 }),
                target: (kind == 'l').then(|| r[8].to_vec()),
                sha256,
            },
        );
    }
    m
}

trait OsStrExt2 {
    fn from_encoded_bytes_checked(b: &[u8]) -> &std::ffi::OsStr;
}
impl OsStrExt2 for std::ffi::OsStr {
    fn from_encoded_bytes_checked(b: &[u8]) -> &std::ffi::OsStr {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::OsStr::from_bytes(b)
    }
}

pub fn kind_char(t: FileType) -> char {
    t.type_char()
}

pub fn sha256_node(fs: &dyn Filesystem, node: NodeId, size: u64) -> String {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < size {
        let n = fs.read_at(node, off, &mut buf).expect("read_at");
        assert!(n > 0, "short read at {off} of {size}");
        h.update(&buf[..n]);
        off += n as u64;
    }
    format!("{:x}", h.finalize())
}

/// Walks the whole filesystem through the trait (skipping lost+found).
pub fn walk(fs: &dyn Filesystem, nanos: bool) -> BTreeMap<Vec<u8>, Rec> {
    let mut m = BTreeMap::new();
    let mut stack = vec![(Vec::new(), fs.root())];
    while let Some((prefix, dir)) = stack.pop() {
        for e in fs.read_dir(dir).expect("read_dir") {
            if prefix.is_empty() && e.name == b"lost+found" {
                continue;
            }
            let mut path = prefix.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&e.name);
            let md = fs.metadata(e.node).expect("metadata");
            let kind = kind_char(md.file_type);
            if e.file_type != FileType::Unknown {
                assert_eq!(
                    e.file_type,
                    md.file_type,
                    "entry type of {}",
                    String::from_utf8_lossy(&path)
                );
            }
            let mtime = md.mtime.expect("mtime");
            let rec = Rec {
                kind,
                size: matches!(kind, 'f' | 'l').then_some(md.size),
                mode: md.mode,
                uid: md.uid,
                gid: md.gid,
                nlink: (kind != 'd').then_some(md.nlink),
                mtime: (mtime.secs, if nanos { mtime.nanos } else { 0 }),
                target: (kind == 'l').then(|| fs.read_link(e.node).expect("read_link")),
                sha256: (kind == 'f').then(|| sha256_node(fs, e.node, md.size)),
            };
            if kind == 'd' {
                stack.push((path.clone(), e.node));
            }
            m.insert(path, rec);
        }
    }
    m
}

/// Makes an image of `size` with `mkfs.<kind> -d src` and extra options.
pub fn mkfs(dir: &Path, name: &str, kind: &str, opts: &[&str], src: &Path, size: &str) -> PathBuf {
    let img = dir.join(name);
    let mut args: Vec<&str> = vec!["-q", "-F"];
    args.extend_from_slice(opts);
    args.extend_from_slice(&[
        "-d",
        src.to_str().expect("utf8"),
        img.to_str().expect("utf8"),
        size,
    ]);
    run(&format!("mkfs.{kind}"), &args);
    img
}

pub fn open(img: &Path) -> ExtFs {
    open_with(img, &OpenOptions::default())
}

pub fn open_with(img: &Path, opts: &OpenOptions) -> ExtFs {
    let dev: Arc<dyn BlockDevice> = Arc::new(RawFile::open(img).expect("open image"));
    ExtFs::open(dev, opts).unwrap_or_else(|e| panic!("open {}: {e}", img.display()))
}

/// Compares walk and oracle with a readable diff.
pub fn assert_same(ours: &BTreeMap<Vec<u8>, Rec>, want: &BTreeMap<Vec<u8>, Rec>, what: &str) {
    let mut diffs = Vec::new();
    for (k, v) in want {
        match ours.get(k) {
            None => diffs.push(format!("missing: {}", String::from_utf8_lossy(k))),
            Some(o) if o != v => diffs.push(format!(
                "{}:\n   ours {o:?}\n   want {v:?}",
                String::from_utf8_lossy(k)
            )),
            _ => {}
        }
    }
    for k in ours.keys() {
        if !want.contains_key(k) {
            diffs.push(format!("extra: {}", String::from_utf8_lossy(k)));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} differences:\n{}",
        diffs.len(),
        diffs[..diffs.len().min(20)].join("\n")
    );
}

/// Path → sorted (name, value) pairs.
pub type XattrMap = BTreeMap<Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>>;

/// The oracle for xattrs: `getfattr -R -d -m - -e hex` over the source tree, path → sorted
/// (name, value) pairs.
pub fn oracle_xattrs(root: &Path) -> XattrMap {
    let out = Command::new("getfattr")
        .args(["-R", "-h", "-d", "-m", "-", "-e", "hex", "--absolute-names"])
        .arg(root)
        .output()
        .expect("getfattr (apt-get install attr)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let prefix = format!("{}/", root.display());
    let mut m: XattrMap = BTreeMap::new();
    let mut cur: Option<Vec<u8>> = None;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("# file: ") {
            cur = p.strip_prefix(&prefix).map(|s| s.as_bytes().to_vec());
        } else if let (Some(c), Some((k, v))) = (&cur, line.split_once('=')) {
            let hex = v.strip_prefix("0x").unwrap_or("");
            let bytes = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
                .collect();
            m.entry(c.clone())
                .or_default()
                .push((k.as_bytes().to_vec(), bytes));
        } else if let (Some(c), false) = (&cur, line.is_empty()) {
            // A name without a value (getfattr prints empty values as `name=""`... or bare).
            m.entry(c.clone())
                .or_default()
                .push((line.as_bytes().to_vec(), Vec::new()));
        }
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

/// Our xattrs for every path of `paths`, in the same shape as [`oracle_xattrs`] (paths with
/// no attributes left out).
pub fn our_xattrs(fs: &dyn Filesystem, paths: impl Iterator<Item = Vec<u8>>) -> XattrMap {
    let mut m = BTreeMap::new();
    for p in paths {
        let mut full = b"/".to_vec();
        full.extend_from_slice(&p);
        let node = guestctl_fs::resolve_path(fs, &full, false).expect("resolve");
        let mut v: Vec<(Vec<u8>, Vec<u8>)> = fs
            .xattrs(node)
            .expect("xattrs")
            .into_iter()
            .map(|x| (x.name, x.value))
            .collect();
        if !v.is_empty() {
            v.sort();
            m.insert(p, v);
        }
    }
    m
}
