//! Inode fields mkfs -d cannot produce (nanoseconds, the epoch bits of extra timestamps,
//! creation time, 32-bit uid/gid, device numbers), written with `debugfs -w`, and
//! metadata_csum mismatches made by editing a copy of an image: reported as checksum errors
//! naming the structure, readable with verification off.

use crate::common;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use common::*;
use guestctl_block::{BlockDevice, RawFile};
use guestctl_fs::{ext::ExtFs, ErrorKind, FileType, Filesystem, OpenOptions, Timestamp};

fn debugfs_w(img: &Path, cmds: &[&str]) {
    let script = img.with_extension("cmds");
    std::fs::write(&script, cmds.join("\n") + "\n").expect("script");
    run(
        "debugfs",
        &[
            "-w",
            "-f",
            script.to_str().expect("u"),
            img.to_str().expect("u"),
        ],
    );
}

fn debugfs_r(img: &Path, cmd: &str) -> String {
    run("debugfs", &["-R", cmd, img.to_str().expect("u")])
}

fn small_image(dir: &Path, opts: &[&str]) -> std::path::PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("d")).expect("mkdir");
    std::fs::write(src.join("a"), b"alpha\n").expect("w");
    for i in 0..40 {
        std::fs::write(src.join(format!("d/file-{i:03}")), b"x").expect("w");
    }
    mkfs(dir, "fs.img", "ext4", opts, &src, "16M")
}

#[test]
fn extra_timestamps_ids_and_devices() {
    let tmp = tempfile::tempdir().expect("tmp");
    let img = small_image(tmp.path(), &[]);
    debugfs_w(
        &img,
        &[
            "sif /a mtime @981173106",
            // nanoseconds 123, epoch bits 1: 2^32 seconds later (year 2137)
            "sif /a mtime_extra 0x1ED",
            "sif /a atime @-100",
            "sif /a atime_extra 0",
            "sif /a ctime @0",
            "sif /a ctime_extra 0xEE6B27FC",
            "sif /a crtime @1000000000",
            "sif /a crtime_extra 0x8",
            "sif /a uid 70000",
            "sif /a gid 80001",
            "mknod cdev c 259 300",
            "mknod bdev b 8 1",
            "mknod pipe p",
        ],
    );
    let fs = open(&img);
    let a = fs.metadata(fs.resolve("/a").expect("a")).expect("md");
    assert_eq!(
        a.mtime,
        Some(Timestamp {
            secs: 981_173_106 + (1 << 32),
            nanos: 123
        })
    );
    assert_eq!(
        a.atime,
        Some(Timestamp {
            secs: -100,
            nanos: 0
        })
    );
    // 0xEE6B27FC >> 2 = 999_999_999 nanoseconds, epoch bits 0.
    assert_eq!(
        a.ctime,
        Some(Timestamp {
            secs: 0,
            nanos: 999_999_999
        })
    );
    assert_eq!(
        a.crtime,
        Some(Timestamp {
            secs: 1_000_000_000,
            nanos: 2
        })
    );
    assert_eq!((a.uid, a.gid), (70_000, 80_001));
    // debugfs's own view of the device numbers is the oracle.
    let stat = debugfs_r(&img, "stat /cdev");
    assert!(
        stat.contains("Device major/minor number: 259:300"),
        "{stat}"
    );
    let c = fs.metadata(fs.resolve("/cdev").expect("cdev")).expect("md");
    assert_eq!(
        (c.file_type, c.rdev),
        (FileType::CharDevice, Some((259, 300)))
    );
    let b = fs.metadata(fs.resolve("/bdev").expect("bdev")).expect("md");
    assert_eq!((b.file_type, b.rdev), (FileType::BlockDevice, Some((8, 1))));
    let p = fs.metadata(fs.resolve("/pipe").expect("pipe")).expect("md");
    assert_eq!((p.file_type, p.rdev), (FileType::Fifo, None));
    // Inode numbers agree with debugfs.
    let ls = debugfs_r(&img, "ls -l /");
    let a_ino = ls
        .lines()
        .find(|l| l.trim_end().ends_with(" a"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("inode of /a in debugfs ls");
    assert_eq!(a.inode, a_ino);
}

/// Byte offset of inode `path` in the image, from `debugfs imap`.
fn inode_offset(img: &Path, path: &str, block_size: u64, inode_size: u64) -> u64 {
    let out = debugfs_r(img, &format!("imap {path}"));
    // "Inode 12 is part of block group 0\n\tlocated at block 1059, offset 0x0b00"
    let blk: u64 = out
        .split("located at block ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("imap: {out}"));
    let off = out
        .split("offset 0x")
        .nth(1)
        .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
        .unwrap_or_else(|| panic!("imap: {out}"));
    let _ = inode_size;
    blk * block_size + off
}

fn first_block(img: &Path, path: &str) -> u64 {
    let out = debugfs_r(img, &format!("blocks {path}"));
    out.split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("blocks: {out}"))
}

fn flip(img: &Path, offset: u64) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(img)
        .expect("open");
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).expect("read");
    b[0] ^= 0x10;
    f.write_all_at(&b, offset).expect("write");
}

fn try_open(img: &Path, verify: bool) -> guestctl_fs::Result<ExtFs> {
    let dev: Arc<dyn BlockDevice> = Arc::new(RawFile::open(img).expect("open"));
    ExtFs::open(dev, &OpenOptions::default().verify_checksums(verify))
}

#[test]
fn checksum_mismatches_are_reported_and_can_be_ignored() {
    let tmp = tempfile::tempdir().expect("tmp");
    let img = small_image(tmp.path(), &["-b", "4096"]);
    let bs = 4096;

    // An inode: flip a bit of /a's size.
    let bad_inode = tmp.path().join("inode.img");
    std::fs::copy(&img, &bad_inode).expect("copy");
    let off = inode_offset(&img, "/a", bs, 256);
    flip(&bad_inode, off + 4);
    let fs = try_open(&bad_inode, true).expect("opens: only one inode is bad");
    let a = fs.resolve("/a").expect_err("bad inode");
    assert_eq!(a.kind(), ErrorKind::Checksum, "{a}");
    assert_eq!(a.inode_number(), Some(12), "{a}");
    assert_eq!(a.offset(), Some(off), "{a}");
    assert!(fs.resolve("/d/file-001").is_ok(), "the rest stays readable");
    let fs = try_open(&bad_inode, false).expect("open");
    assert_eq!(
        fs.metadata(fs.resolve("/a").expect("a")).expect("md").size,
        6 ^ 0x10
    );

    // A directory block: flip a byte inside a name.
    let bad_dir = tmp.path().join("dir.img");
    std::fs::copy(&img, &bad_dir).expect("copy");
    let dblk = first_block(&img, "/d");
    flip(&bad_dir, dblk * bs + 40);
    let fs = try_open(&bad_dir, true).expect("open");
    let e = fs
        .read_dir(fs.resolve("/d").expect("d"))
        .expect_err("bad dir block");
    assert_eq!(e.kind(), ErrorKind::Checksum, "{e}");
    assert_eq!(e.offset(), Some(dblk * bs), "{e}");
    assert!(e.to_string().contains("directory block"), "{e}");
    let fs = try_open(&bad_dir, false).expect("open");
    assert_eq!(
        fs.read_dir(fs.resolve("/d").expect("d"))
            .expect("dir")
            .len(),
        40
    );

    // A group descriptor: flip its free-blocks count.
    let bad_gd = tmp.path().join("gd.img");
    std::fs::copy(&img, &bad_gd).expect("copy");
    flip(&bad_gd, bs + 0xC);
    let e = try_open(&bad_gd, true).expect_err("bad descriptor");
    assert_eq!(e.kind(), ErrorKind::Checksum, "{e}");
    assert_eq!(e.offset(), Some(bs), "{e}");
    let fs = try_open(&bad_gd, false).expect("opens without verification");
    assert!(fs.info().notes.iter().any(|n| n.contains("not verified")));
    assert!(fs.resolve("/a").is_ok());

    // The superblock: flip the mount count.
    let bad_sb = tmp.path().join("sb.img");
    std::fs::copy(&img, &bad_sb).expect("copy");
    flip(&bad_sb, 1024 + 0x34);
    let e = try_open(&bad_sb, true).expect_err("bad superblock");
    assert_eq!(e.kind(), ErrorKind::Checksum, "{e}");
    assert!(try_open(&bad_sb, false).is_ok());
}

#[test]
fn symlink_loops_and_guest_root_confinement() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("etc")).expect("mkdir");
    std::fs::write(src.join("etc/hostname"), b"guest\n").expect("w");
    std::os::unix::fs::symlink("../../../../etc", src.join("escape")).expect("ln");
    std::os::unix::fs::symlink("/etc/hostname", src.join("abs")).expect("ln");
    std::os::unix::fs::symlink("self", src.join("self")).expect("ln");
    let img = mkfs(tmp.path(), "fs.img", "ext4", &[], &src, "8M");
    let fs = open(&img);
    let read = |p: &str| {
        let n = fs.resolve(p).expect(p);
        let mut b = vec![0u8; 64];
        let k = fs.read_at(n, 0, &mut b).expect("read");
        b.truncate(k);
        b
    };
    // `..` above the guest root stays at the guest root: never the host's /etc.
    assert_eq!(read("/escape/hostname"), b"guest\n");
    assert_eq!(read("/abs"), b"guest\n");
    assert_eq!(read("/etc/../etc/./hostname"), b"guest\n");
    let e = fs.resolve("/self").expect_err("loop");
    assert_eq!(e.kind(), ErrorKind::SymlinkLoop, "{e}");
    let e = fs.resolve("/etc/hostname/x").expect_err("not a dir");
    assert_eq!(e.kind(), ErrorKind::NotADirectory, "{e}");
    let e = fs.resolve("/nope").expect_err("missing");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(e.path_in_guest(), Some("/nope"));
    let link = guestctl_fs::resolve_path(&fs, b"/abs", false).expect("lstat");
    assert_eq!(fs.metadata(link).expect("md").file_type, FileType::Symlink);
}
