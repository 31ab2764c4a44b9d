//! UFS1/UFS2 images made by NetBSD's `makefs -t ffs` (Debian package makefs) from a generated
//! tree, in both byte orders and several block/fragment sizes, read through the Filesystem
//! trait and compared with the source tree (`find -printf`, sha256); blkid's type and UUID;
//! sleuthkit's `fls`/`icat` on the UFS1 images (it does not open makefs's UFS2, whose
//! superblock sits at 8 KiB); and bit-flipped images walked without a panic.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use guestctl_block::{BlockDevice, MemoryDevice, RawFile};
use guestctl_fs::ufs::UfsFs;
use guestctl_fs::{FileType, Filesystem, OpenOptions};

fn makefs(dir: &Path, name: &str, opts: &[&str], src: &Path) -> PathBuf {
    let img = dir.join(name);
    let mut args: Vec<&str> = vec!["-t", "ffs"];
    args.extend_from_slice(opts);
    args.extend_from_slice(&[img.to_str().expect("utf8"), src.to_str().expect("utf8")]);
    run("makefs", &args);
    img
}

fn open(img: &Path) -> UfsFs {
    let dev: Arc<dyn BlockDevice> = Arc::new(RawFile::open(img).expect("open image"));
    UfsFs::open(dev, &OpenOptions::default())
        .unwrap_or_else(|e| panic!("open {}: {e}", img.display()))
}

/// What of the source tree UFS keeps: everything but xattrs/ACLs (makefs copies none) and
/// the nanoseconds of times (this makefs stores whole seconds, even for UFS2).
fn expected(src: &Path) -> std::collections::BTreeMap<Vec<u8>, Rec> {
    oracle(src, false)
}

#[test]
fn makefs_images_match_the_source_tree() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src");
    build_tree(&src, 3000);
    let variants: &[(&str, &[&str], bool)] = &[
        ("ufs2-le", &["-o", "version=2"], true),
        ("ufs2-be", &["-B", "be", "-o", "version=2"], true),
        ("ufs2-4k", &["-o", "version=2,bsize=4096,fsize=512"], true),
        (
            "ufs2-64k",
            &["-o", "version=2,bsize=65536,fsize=8192"],
            true,
        ),
        ("ufs1-le", &["-o", "version=1"], false),
        (
            "ufs1-be",
            &["-B", "be", "-o", "version=1,bsize=16384,fsize=2048"],
            false,
        ),
        ("ufs1-4k", &["-o", "version=1,bsize=4096,fsize=512"], false),
    ];
    for (name, opts, ufs2) in variants {
        let img = makefs(dir.path(), name, opts, &src);
        let fs = open(&img);
        let info = fs.info();
        assert_eq!(info.fs_type, "ufs");
        assert_eq!(fs.superblock().ufs2, *ufs2, "{name}");
        // blkid agrees on the type and the UUID (fs_id).
        let blkid = run("blkid", &["-o", "export", img.to_str().expect("utf8")]);
        assert!(blkid.contains("TYPE=ufs"), "{name}: {blkid}");
        assert!(
            blkid.contains(&format!("UUID={}", info.uuid)),
            "{name}: {blkid} vs {}",
            info.uuid
        );
        let probe = guestctl_fs::probe::probe(&RawFile::open(&img).expect("img")).expect("probe");
        assert_eq!(
            (probe.fs_type.as_str(), probe.uuid.as_str()),
            ("ufs", info.uuid.as_str())
        );
        let ours = walk(&fs, false);
        let want = expected(&src);
        assert_same(&ours, &want, name);
        // Path resolution through the guest's own symlinks.
        let f = fs
            .resolve("/links/abs-dir/f4096")
            .expect("resolve via symlink");
        assert_eq!(fs.metadata(f).expect("md").size, 4096);
        assert_eq!(
            fs.resolve("/links/loop1").expect_err("loop").kind(),
            guestctl_fs::ErrorKind::SymlinkLoop
        );
        assert_eq!(
            fs.lookup(fs.root(), b"FIFO").expect("lookup"),
            None,
            "UFS names are case-sensitive"
        );
        let fifo = fs.resolve("/fifo").expect("fifo");
        assert_eq!(fs.metadata(fifo).expect("md").file_type, FileType::Fifo);
        let md = fs.metadata(fs.root()).expect("root");
        assert_eq!(md.file_type, FileType::Directory);
        if !ufs2 {
            compare_with_sleuthkit(&img, &fs);
        }
    }
}

/// `fls -r -p` names and inode numbers, and `icat` contents of the regular files.
fn compare_with_sleuthkit(img: &Path, fs: &UfsFs) {
    let listing = run(
        "fls",
        &["-r", "-p", "-f", "ufs1", img.to_str().expect("utf8")],
    );
    let mut n = 0;
    for line in listing.lines() {
        let Some((head, name)) = line.split_once('\t') else {
            continue;
        };
        if head.contains('*') || head.starts_with("V/V") || name.starts_with("lost+found") {
            continue;
        }
        let (types, addr) = head.split_once(' ').expect("type and address");
        let ino: u64 = addr.trim().trim_end_matches(':').parse().expect("inode");
        let node = guestctl_fs::resolve_path(fs, name.as_bytes(), false)
            .unwrap_or_else(|e| panic!("{name} listed by fls: {e}"));
        assert_eq!(node.0, ino, "{name}: inode");
        if types.starts_with("r/r") && n < 200 {
            let want = std::process::Command::new("icat")
                .args(["-f", "ufs1", img.to_str().expect("utf8"), &ino.to_string()])
                .output()
                .expect("icat")
                .stdout;
            let size = fs.metadata(node).expect("md").size;
            let mut got = vec![0u8; size as usize];
            let mut off = 0;
            while off < got.len() {
                let r = fs.read_at(node, off as u64, &mut got[off..]).expect("read");
                assert!(r > 0);
                off += r;
            }
            assert!(got == want, "{name}: contents differ from icat");
            n += 1;
        }
    }
    assert!(n > 20, "only {n} files compared with icat");
}

/// Bit flips over the metadata of a small UFS2 and UFS1 image: open and walk never panic or
/// hang, whatever they return.
#[test]
fn bit_flipped_ufs_images_never_panic() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("d/e")).expect("mkdir");
    for i in 0..40 {
        std::fs::write(src.join(format!("d/f{i}")), noise(i * 3000, i as u64)).expect("w");
    }
    std::fs::write(src.join("d/e/big"), noise(300_000, 99)).expect("w");
    std::os::unix::fs::symlink("../d/f1", src.join("d/e/l")).expect("ln");
    for (name, v) in [("h2", "version=2"), ("h1", "version=1")] {
        let img = makefs(
            dir.path(),
            name,
            &["-s", "4m", "-o", &format!("{v},bsize=4096,fsize=512")],
            &src,
        );
        let data = std::fs::read(&img).expect("read");
        let mut x = 0x1234_5678_9abc_def0u64;
        for round in 0..300 {
            let mut d = data.clone();
            // Flip bits in the first 160 KiB (superblock, cylinder group, inodes, dirs).
            for _ in 0..(1 + round % 8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x as usize) % d.len().min(160 << 10);
                d[at] ^= 1 << (x >> 60 & 7);
            }
            let t = std::time::Instant::now();
            guestctl_fs::ufs::fuzz_walk(&d);
            assert!(
                t.elapsed().as_secs() < 10,
                "{name} round {round} took {:?}",
                t.elapsed()
            );
        }
        // And the unflipped image opens and walks.
        let fs =
            UfsFs::open(Arc::new(MemoryDevice::new(data)), &OpenOptions::default()).expect("open");
        assert_eq!(fs.read_dir(fs.root()).expect("root").len(), 1);
    }
}
