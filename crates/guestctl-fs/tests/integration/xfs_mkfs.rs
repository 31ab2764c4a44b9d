//! The XFS reader against mkfs.xfs: filesystems populated at test time from a generated tree
//! through mkfs.xfs's prototype file (no root, no mount), v4 and v5, 512 B–64 KiB blocks,
//! 4–64 KiB directory blocks, 256 B–2 KiB inodes. Oracles: the source tree (`find -printf`
//! types, modes, owners, sizes, symlink targets; sha256 of every file), blkid's type/label/UUID,
//! and xfs_db (`inode N` → `core.format`, `core.size`, `core.nextents`, the directory forms).
//! Prototype files carry no xattrs, times or hard links; the committed fixtures cover those.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{assert_same, build_tree, oracle, run, walk, Rec};
use guestctl_block::{BlockDevice, RawFile};
use guestctl_fs::xfs::XfsFs;
use guestctl_fs::{FileType, Filesystem, OpenOptions};

/// A name the prototype file cannot carry (it is whitespace-separated).
fn unrepresentable(name: &[u8]) -> bool {
    name.iter().any(|c| c.is_ascii_whitespace()) || name == b"$"
}

/// Writes an `mkfs.xfs -p` prototype file for `root` (regular files, directories, symlinks,
/// fifos; names with whitespace left out); returns the relative paths it describes.
fn protofile(root: &Path, out: &Path) -> Vec<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::FileTypeExt;
    fn mode(m: &std::fs::Metadata, t: char) -> String {
        let p = m.mode();
        format!(
            "{t}{}{}{:03o}",
            if p & 0o4000 != 0 { 'u' } else { '-' },
            if p & 0o2000 != 0 { 'g' } else { '-' },
            p & 0o777
        )
    }
    fn walk_dir(
        dir: &Path,
        rel: &[u8],
        depth: usize,
        lines: &mut Vec<String>,
        paths: &mut Vec<Vec<u8>>,
    ) {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        for name in names {
            let nb = name.as_bytes();
            if unrepresentable(nb) {
                continue;
            }
            let p = dir.join(&name);
            let m = std::fs::symlink_metadata(&p).expect("lstat");
            let ft = m.file_type();
            let pad = " ".repeat(depth);
            let n = name.to_str().expect("utf8 name");
            let line = if ft.is_file() {
                format!(
                    "{pad}{n} {} {} {} {}",
                    mode(&m, '-'),
                    m.uid(),
                    m.gid(),
                    p.display()
                )
            } else if ft.is_dir() {
                format!("{pad}{n} {} {} {}", mode(&m, 'd'), m.uid(), m.gid())
            } else if ft.is_symlink() {
                let t = std::fs::read_link(&p).expect("readlink");
                let t = t.to_str().expect("utf8 target");
                // mkfs.xfs 6.1 writes remote (out-of-inode) symlinks on v5 without their block
                // header, so xfs_repair and we reject them: keep the targets inline here
                // (`remote_symlinks_from_mkfs_6_1_are_rejected_like_xfs_repair_does`).
                if t.chars().any(char::is_whitespace) || t.len() > 150 {
                    continue;
                }
                format!("{pad}{n} {} {} {} {t}", mode(&m, 'l'), m.uid(), m.gid())
            } else if ft.is_fifo() {
                format!("{pad}{n} {} {} {}", mode(&m, 'p'), m.uid(), m.gid())
            } else {
                continue;
            };
            lines.push(line);
            let mut r = rel.to_vec();
            if !r.is_empty() {
                r.push(b'/');
            }
            r.extend_from_slice(nb);
            paths.push(r.clone());
            if ft.is_dir() {
                walk_dir(&p, &r, depth + 1, lines, paths);
                lines.push(format!("{} $", " ".repeat(depth)));
            }
        }
    }
    let mut lines = vec!["/dev/null".to_string(), "0 0".into(), "d--755 0 0".into()];
    let mut paths = Vec::new();
    walk_dir(root, b"", 1, &mut lines, &mut paths);
    lines.push("$".into());
    std::fs::write(out, lines.join("\n") + "\n").expect("write proto");
    paths
}

fn mkfs(dir: &Path, name: &str, opts: &[&str], proto: &Path) -> PathBuf {
    let img = dir.join(name);
    let f = std::fs::File::create(&img).expect("create");
    f.set_len(if opts.contains(&"size=65536") {
        2 << 30
    } else {
        320 << 20
    })
    .expect("size");
    let mut args = vec!["-q", "-f", "-p", proto.to_str().expect("utf8")];
    args.extend_from_slice(opts);
    args.push(img.to_str().expect("utf8"));
    run("mkfs.xfs", &args);
    img
}

fn open(img: &Path) -> XfsFs {
    let dev: Arc<dyn BlockDevice> = Arc::new(RawFile::open(img).expect("open image"));
    XfsFs::open(dev, &OpenOptions::default())
        .unwrap_or_else(|e| panic!("open {}: {e}", img.display()))
}

/// What a prototype-populated filesystem must hold: the tree without times, link counts or
/// the sticky bit (prototype files carry none of them).
fn normalise(m: &mut BTreeMap<Vec<u8>, Rec>) {
    for r in m.values_mut() {
        r.mtime = (0, 0);
        r.nlink = None;
        r.mode &= 0o6777;
    }
}

/// `xfs_db -r -c "inode N" -c print` fields, by name.
fn xfs_db_inode(img: &Path, ino: u64) -> BTreeMap<String, String> {
    let out = run(
        "xfs_db",
        &[
            "-r",
            "-c",
            &format!("inode {ino}"),
            "-c",
            "print",
            img.to_str().expect("utf8"),
        ],
    );
    out.lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The form of directory `ino` as xfs_db sees it: `shortform`, `block`, `leaf`, `node` or
/// `btree` (a node directory whose data fork is a bmbt).
fn xfs_db_dir_form(img: &Path, ino: u64, block_size: u64) -> &'static str {
    let core = xfs_db_inode(img, ino);
    if core["core.format"].contains("local") {
        return "shortform";
    }
    let first = run(
        "xfs_db",
        &[
            "-r",
            "-c",
            &format!("inode {ino}"),
            "-c",
            "dblock 0",
            "-c",
            "print",
            img.to_str().expect("utf8"),
        ],
    );
    if first.contains("bhdr.") {
        return "block";
    }
    let leaf = run(
        "xfs_db",
        &[
            "-r",
            "-c",
            &format!("inode {ino}"),
            "-c",
            &format!("dblock {}", (1u64 << 35) / block_size),
            "-c",
            "print",
            img.to_str().expect("utf8"),
        ],
    );
    if leaf.contains("lhdr.") {
        "leaf"
    } else if leaf.contains("nhdr.") && core["core.format"].contains("btree") {
        "btree"
    } else if leaf.contains("nhdr.") {
        "node"
    } else {
        panic!("directory inode {ino}: xfs_db shows neither a leaf nor a node: {leaf}")
    }
}

#[test]
fn prototype_images_match_the_source_tree() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    build_tree(&src, 3000);
    // Directories of every size: shortform, block, leaf and node forms.
    for n in [3usize, 40, 200, 1500] {
        for i in 0..n {
            let p = src.join(format!("dirs/d{n}/a-name-of-some-length-{i:05}"));
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, format!("{i}")).expect("write");
        }
    }
    let proto = tmp.path().join("proto");
    let paths = protofile(&src, &proto);
    let mut want = oracle(&src, false);
    want.retain(|k, _| paths.contains(k));
    normalise(&mut want);
    assert!(want.len() > 4000, "{} paths", want.len());

    let variants: &[(&str, &[&str])] = &[
        ("v5-4k", &[]),
        ("v5-1k", &["-b", "size=1024"]),
        ("v5-64k", &["-b", "size=65536"]),
        ("v5-dir16k", &["-n", "size=16384"]),
        ("v5-isize2k", &["-i", "size=2048"]),
        ("v5-nrext64", &["-i", "nrext64=1"]),
        ("v4-4k", &["-m", "crc=0"]),
        ("v4-512", &["-m", "crc=0", "-b", "size=512"]),
        (
            "v4-noftype-isize256",
            &["-m", "crc=0", "-n", "ftype=0", "-i", "size=256"],
        ),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (name, opts) in variants {
        let img = mkfs(tmp.path(), &format!("{name}.img"), opts, &proto);
        let fs = open(&img);
        let mut ours = walk(&fs, false);
        ours.remove(b"lost+found".as_slice());
        normalise(&mut ours);
        assert_same(&ours, &want, name);

        // Every entry through the hash index, and a name that is not there.
        let mut stack = vec![fs.root()];
        let mut dirs = 0;
        while let Some(d) = stack.pop() {
            dirs += 1;
            for e in fs.read_dir(d).expect("read_dir") {
                assert_eq!(
                    fs.lookup_hashed(d, &e.name).expect("hashed lookup"),
                    Some(e.node),
                    "{name}: {}",
                    String::from_utf8_lossy(&e.name)
                );
                if fs.metadata(e.node).expect("md").file_type == FileType::Directory {
                    stack.push(e.node);
                }
            }
            assert_eq!(fs.lookup_hashed(d, b"not-here").expect("lookup"), None);
        }
        assert!(dirs > 30);

        // blkid's view of the filesystem.
        let blkid = run(
            "blkid",
            &["-p", "-o", "export", img.to_str().expect("utf8")],
        );
        let info = fs.info();
        assert!(blkid.contains("TYPE=xfs"), "{blkid}");
        assert!(
            blkid.contains(&format!("UUID={}", info.uuid)),
            "{name}: {blkid} vs {}",
            info.uuid
        );

        // xfs_db's view of the big directories and a multi-extent file.
        let mut forms = BTreeMap::new();
        for p in [
            "dirs/d3",
            "dirs/d40",
            "dirs/d200",
            "dirs/d1500",
            "big",
            "sizes/f3000000",
            "sparse/holes.bin",
        ] {
            let node = fs.resolve(&format!("/{p}")).expect("resolve");
            let md = fs.metadata(node).expect("md");
            let db = xfs_db_inode(&img, md.inode);
            assert_eq!(db["core.size"], md.size.to_string(), "{name} {p} size");
            assert_eq!(
                db["core.nlinkv2"]
                    .parse::<u32>()
                    .or_else(|_| db["core.nlinkv1"].parse())
                    .ok(),
                Some(md.nlink),
                "{name} {p} nlink"
            );
            if md.file_type == FileType::Directory {
                forms.insert(
                    p,
                    xfs_db_dir_form(&img, md.inode, u64::from(info.block_size)),
                );
            } else {
                assert!(
                    db["core.format"].contains("extents") || db["core.format"].contains("btree")
                );
            }
        }
        // With 4 KiB blocks the sizes give shortform, block, leaf, then node (or btree when
        // the directory's extents overflow the inode).
        if *name == "v5-4k" || *name == "v4-4k" {
            assert_eq!(
                [forms["dirs/d3"], forms["dirs/d40"], forms["dirs/d200"]],
                ["shortform", "block", "leaf"],
                "{name}"
            );
            assert!(
                matches!(forms["dirs/d1500"], "node" | "btree"),
                "{name}: {forms:?}"
            );
        }
        seen.extend(forms.values().copied());
        eprintln!(
            "{name}: {} nodes, {dirs} directories, forms {forms:?}",
            ours.len()
        );
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["block", "btree", "leaf", "node", "shortform"],
        "all five directory forms were read"
    );
}

#[test]
fn remote_symlinks_from_mkfs_6_1_are_rejected_like_xfs_repair_does() {
    let tmp = tempfile::tempdir().expect("tmp");
    let target = "abcd".repeat(100);
    let proto = tmp.path().join("proto");
    std::fs::write(
        &proto,
        format!(
            "/dev/null\n0 0\nd--755 0 0\n long l--777 0 0 {target}\n short l--777 0 0 abc\n$\n"
        ),
    )
    .expect("proto");
    for (name, opts, broken) in [("v5", &[][..], true), ("v4", &["-m", "crc=0"][..], false)] {
        let img = mkfs(tmp.path(), &format!("{name}.img"), opts, &proto);
        let repair = std::process::Command::new("xfs_repair")
            .args(["-n", img.to_str().expect("utf8")])
            .output()
            .expect("xfs_repair");
        let text = String::from_utf8_lossy(&repair.stderr).into_owned()
            + &String::from_utf8_lossy(&repair.stdout);
        assert_eq!(
            text.contains("Bad symlink buffer CRC"),
            broken,
            "{name}: {text}"
        );
        let fs = open(&img);
        let long = fs.resolve_path_nofollow("/long");
        let got = fs.read_link(long);
        if broken {
            let e = got.expect_err("a headerless v5 symlink block must be refused");
            assert_eq!(e.kind(), guestctl_fs::ErrorKind::Checksum, "{e}");
        } else {
            assert_eq!(got.expect("v4 remote symlink"), target.as_bytes());
        }
        let short = fs.resolve_path_nofollow("/short");
        assert_eq!(fs.read_link(short).expect("inline symlink"), b"abc");
    }
}

trait NoFollow {
    fn resolve_path_nofollow(&self, p: &str) -> guestctl_fs::NodeId;
}

impl NoFollow for XfsFs {
    fn resolve_path_nofollow(&self, p: &str) -> guestctl_fs::NodeId {
        guestctl_fs::resolve_path(self, p.as_bytes(), false).expect("resolve")
    }
}
