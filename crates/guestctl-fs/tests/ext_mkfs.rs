//! ext2/3/4 images made by mkfs -d from a generated tree, read back through ExtFs and compared
//! with the tree itself (find -printf, sha256 of every file).

mod common;

use common::*;
use guestctl_fs::Filesystem;

/// mkfs -d (e2fsprogs 1.47) stores whole seconds only, so times compare to the second here;
/// nanosecond and epoch-bit decoding is checked against debugfs in ext_debugfs.rs.
fn check(kind: &str, opts: &[&str], _nanos: bool) {
    check_sized(kind, opts, "128M")
}

fn check_sized(kind: &str, opts: &[&str], size: &str) {
    let nanos = false;
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    build_tree(&src, 3000);
    let mut want = oracle(&src, nanos);
    if opts.contains(&"inline_data") {
        // e2fsprogs 1.47.0's mkfs -d with inline_data records the size of a file that ends in
        // a hole as the end of its last written block (debugfs stat shows 41944064 for this
        // 41955328-byte file): the image itself is wrong there, so the file is not compared.
        want.remove(b"sparse/holes.bin".as_slice());
    }
    let img = mkfs(tmp.path(), "fs.img", kind, opts, &src, size);
    let fs = open(&img);
    let mut ours = walk(&fs, nanos);
    if opts.contains(&"inline_data") {
        ours.remove(b"sparse/holes.bin".as_slice());
    }
    assert_same(&ours, &want, &format!("mkfs.{kind} {opts:?}"));
    let want_x = oracle_xattrs(&src);
    assert!(want_x.len() >= 4, "the tree has xattrs: {want_x:?}");
    let ours_x = our_xattrs(&fs, want.keys().cloned());
    assert_eq!(ours_x, want_x, "xattrs of mkfs.{kind} {opts:?}");
    let info = fs.info();
    assert!(info.notes.is_empty(), "{:?}", info.notes);
}

#[test]
fn ext4_default_4k() {
    check("ext4", &[], true);
}

#[test]
fn ext4_1k_blocks() {
    check("ext4", &["-b", "1024"], true);
}

#[test]
fn ext2_block_maps() {
    check("ext2", &[], false);
}

#[test]
fn ext2_1k_no_filetype() {
    check("ext2", &["-b", "1024", "-O", "^filetype"], false);
}

#[test]
fn ext3_4k() {
    check("ext3", &[], true);
}

#[test]
fn ext4_no_csum_no_64bit() {
    check("ext4", &["-O", "^metadata_csum,^64bit"], true);
}

#[test]
fn ext4_inline_data() {
    check("ext4", &["-O", "inline_data"], true);
}

#[test]
fn ext4_meta_bg() {
    check("ext4", &["-O", "meta_bg,^resize_inode"], true);
}

#[test]
fn ext4_small_inodes() {
    check("ext4", &["-I", "128"], false);
}

#[test]
fn ext4_64k_blocks() {
    check_sized("ext4", &["-b", "65536"], "512M");
}

#[test]
fn ext4_bigalloc() {
    check("ext4", &["-O", "bigalloc", "-C", "16384"], true);
}
