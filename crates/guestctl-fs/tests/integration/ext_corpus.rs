//! ext2/3/4 images from other projects' test suites (../shared/corpus, see its INDEX.md), read
//! through ExtFs and checked against those projects' own answer sheets:
//!
//! * ext4-view-rs `test_data/*.bin.zst`: the trees its `xtask` `fill*()` functions create and
//!   its `tests/integration/*.rs` check (restated here as expected trees);
//! * dissect.extfs `tests/data/*.bin.gz` and dissect.target `symlink_disk.ext4`: the facts
//!   their `test_ext4.py` / `test_filesystem.py` assert;
//! * DFTT #4 `ext3-img-kw-1.dd`: its DFXML file objects (sizes, inodes, byte runs) and the
//!   keyword table of its index.html;
//! * dfvfs `ext2.raw/.qcow2/.vmdk`: one tree through three containers, as dfvfs's ext/tsk
//!   tests describe it;
//! * sleuthkit's `fls -r -p` and `istat` as an independent oracle for names, inode numbers and
//!   inode metadata.
//!
//! The corpus is required: without it these tests fail (they never skip).

use crate::corpus_support;

use std::collections::BTreeMap;

use corpus_support::*;
use guestctl_fs::{ErrorKind, Filesystem, NodeId, OpenOptions};

const EXT4_VIEW: &str = "ext4-view-rs/test_data";

fn ext4_view_image(name: &str) -> std::path::PathBuf {
    decompressed(&format!("{EXT4_VIEW}/{name}.bin.zst"))
}

/// `/holes` of the ext4-view images (xtask `create_file_with_holes`, 1 KiB blocks): blocks
/// 0-1 hole, 2 = 0xa1, 3 = 0xa2, 4-5 hole, 6 = 0xa3, 7 = 0xa4, 8-9 hole.
fn holes_data() -> Vec<u8> {
    let mut v = vec![0u8; 10 * 1024];
    for (block, byte) in [(2, 0xa1), (3, 0xa2), (6, 0xa3), (7, 0xa4)] {
        v[block * 1024..(block + 1) * 1024].fill(byte);
    }
    v
}

/// `/big_file` of the ext2 image (xtask `gen_big_file`): `blocks` 1 KiB blocks, each zero but
/// for its index as a little-endian u32 in its first and its last four bytes.
fn big_file_data(blocks: u32) -> Vec<u8> {
    let mut v = vec![0u8; blocks as usize * 1024];
    for (i, b) in v.chunks_mut(1024).enumerate() {
        let le = (i as u32).to_le_bytes();
        b[..4].copy_from_slice(&le);
        b[1020..].copy_from_slice(&le);
    }
    v
}

/// 12 direct + 256 single-indirect + 256² double-indirect + 256×16 triple-indirect blocks.
const BIG_FILE_BLOCKS: u32 = 12 + 256 + 256 * 256 + 256 * 16;

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(data))
}

fn numbered_dir(want: &mut BTreeMap<Vec<u8>, Want>, dir: &str, count: u32) {
    want.insert(p(dir), Want::Dir);
    for i in 0..count {
        want.insert(p(&format!("{dir}/{i}")), Want::File(p(&i.to_string())));
    }
}

fn node(fs: &dyn Filesystem, path: &str) -> NodeId {
    fs.resolve(path)
        .unwrap_or_else(|e| panic!("resolve {path}: {e}"))
}

#[track_caller]
fn assert_err(r: guestctl_fs::Result<impl std::fmt::Debug>, kind: ErrorKind, what: &str) {
    match r {
        Ok(v) => panic!("{what}: want a {kind:?} error, got Ok({v:?})"),
        Err(e) => assert_eq!(e.kind(), kind, "{what}: {e}"),
    }
}

/// The tree of `test_disk1.bin` as xtask `fill()` makes it (ext4, 1 KiB blocks, encrypt).
fn disk1_expected() -> BTreeMap<Vec<u8>, Want> {
    let mut w = BTreeMap::new();
    w.insert(p("lost+found"), Want::Dir);
    w.insert(p("empty_file"), Want::File(vec![]));
    w.insert(p("empty_dir"), Want::Dir);
    w.insert(p("small_file"), Want::File(p("hello, world!")));
    w.insert(p("owner_file"), Want::File(vec![]));
    w.insert(p("dir1"), Want::Dir);
    w.insert(p("dir1/dir2"), Want::Dir);
    w.insert(p("sym_simple"), Want::Link(p("small_file")));
    w.insert(p("sym_59"), Want::Link(vec![b'a'; 59]));
    w.insert(p("sym_60"), Want::Link(vec![b'a'; 60]));
    w.insert(p("dir1/dir2/sym_abs"), Want::Link(p("/small_file")));
    w.insert(p("dir1/dir2/sym_abs_dir"), Want::Link(p("/dir1")));
    w.insert(p("dir1/dir2/sym_rel"), Want::Link(p("../../small_file")));
    w.insert(p("dir1/dir2/sym_rel_dir"), Want::Link(p("../../dir1")));
    w.insert(p("sym_long"), Want::Link(p(&"/..".repeat(341))));
    w.insert(p("sym_loop_a"), Want::Link(p("sym_loop_b")));
    w.insert(p("sym_loop_b"), Want::Link(p("sym_loop_a")));
    numbered_dir(&mut w, "medium_dir", 1_000);
    numbered_dir(&mut w, "big_dir", 10_000);
    w.insert(p("holes"), Want::File(holes_data()));
    // `fscrypt setup` makes /.fscrypt/{policies,protectors}; `fscrypt encrypt` then adds one
    // policy and one protector file (named by key hashes: checked by kind below).
    w.insert(p(".fscrypt"), Want::Dir);
    w.insert(p(".fscrypt/policies"), Want::Dir);
    w.insert(p(".fscrypt/protectors"), Want::Dir);
    w.insert(p("encrypted_dir"), Want::RefusedDir);
    w
}

#[test]
fn ext4_view_disk1_tree() {
    let img = ext4_view_image("test_disk1");
    let fs = open_default(&img);
    let mut seen = walk(&fs);

    // The two fscrypt metadata files: exactly one regular file in each folder.
    for dir in [".fscrypt/policies/", ".fscrypt/protectors/"] {
        let inside: Vec<Vec<u8>> = seen
            .keys()
            .filter(|k| k.starts_with(dir.as_bytes()))
            .cloned()
            .collect();
        assert_eq!(inside.len(), 1, "{dir}: {inside:?}");
        let s = seen.remove(&inside[0]).expect("entry");
        assert_eq!(s.kind, 'f', "{dir}");
        assert!(matches!(s.content, Some(Ok(_))), "{dir}: {:?}", s.content);
    }
    let info = fs.info();
    assert_eq!(info.label, "ext4-view testfs");
    assert_eq!(info.fs_type, "ext4");
    assert_eq!(info.block_size, 1024);
    assert_eq!(info.size, 64 << 20);

    // tests/integration/ext4.rs test_metadata*, test_symlink_metadata.
    let md = |p: &str| fs.metadata(fs.resolve(p).expect(p)).expect(p);
    assert_eq!(md("/small_file").mode, 0o644);
    assert_eq!(md("/small_file").size, 13);
    let owner = md("/owner_file");
    assert_eq!((owner.uid, owner.gid), (123, 456));
    let sym = fs
        .metadata(seen_node(&seen, "sym_simple"))
        .expect("sym_simple");
    assert_eq!(sym.mode, 0o777);

    // Holes are not allocated: 4 data blocks of 1 KiB in a 10 KiB file.
    assert_eq!(
        seen[b"holes".as_slice()].allocated,
        4 * 1024,
        "/holes allocated bytes"
    );

    // Last, so that the checks above run even when the tree differs.
    assert_tree(&seen, &disk1_expected(), "test_disk1.bin vs xtask fill()");
}

fn seen_node(seen: &BTreeMap<Vec<u8>, Seen>, path: &str) -> NodeId {
    NodeId(
        seen.get(path.as_bytes())
            .unwrap_or_else(|| panic!("{path} not walked"))
            .ino,
    )
}

#[test]
fn ext4_view_disk1_paths() {
    let img = ext4_view_image("test_disk1");
    let fs = open_default(&img);
    let small = node(&fs, "/small_file");
    let dir1 = node(&fs, "/dir1");
    let root = fs.root();
    // tests/integration/ext4.rs test_canonicalize / test_read_link.
    assert_eq!(node(&fs, "/"), root);
    assert_eq!(node(&fs, "/.."), root);
    for p in [
        "/dir1",
        "/dir1/",
        "/dir1/.",
        "/dir1/./",
        "/dir1/../dir1",
        "/dir1/../dir1/",
    ] {
        assert_eq!(node(&fs, p), dir1, "{p}");
    }
    for p in ["/dir1/dir2/sym_abs", "/dir1/dir2/sym_rel", "/sym_simple"] {
        assert_eq!(node(&fs, p), small, "{p}");
    }
    for p in [
        "/dir1/dir2/sym_abs_dir",
        "/dir1/dir2/sym_abs_dir/",
        "/dir1/dir2/sym_rel_dir",
        "/dir1/dir2/sym_rel_dir/",
    ] {
        assert_eq!(node(&fs, p), dir1, "{p}");
    }
    // Symlinks before the last component are followed, then `..` is taken from the target.
    assert_eq!(node(&fs, "/dir1/dir2/sym_abs_dir/../sym_simple"), small);
    let via = guestctl_fs::resolve_path(&fs, b"/dir1/dir2/sym_abs_dir/../sym_simple", false)
        .expect("nofollow");
    assert_eq!(fs.read_link(via).expect("read_link"), b"small_file");
    // "/.." 341 times is the root.
    assert_eq!(node(&fs, "/sym_long"), root);
    assert_err(
        fs.resolve("/sym_loop_a"),
        ErrorKind::SymlinkLoop,
        "/sym_loop_a",
    );
    assert_err(
        fs.resolve("/does_not_exist"),
        ErrorKind::NotFound,
        "/does_not_exist",
    );
    assert_err(
        fs.resolve("/small_file/invalid"),
        ErrorKind::NotADirectory,
        "/small_file/invalid",
    );
    assert_err(
        fs.read_at(node(&fs, "/empty_dir"), 0, &mut [0u8; 8]),
        ErrorKind::IsADirectory,
        "read a dir",
    );

    // Reads at offsets (tests/integration/file.rs test_file_seek_first_block).
    let mut buf = [0u8; 5];
    assert_eq!(fs.read_at(small, 7, &mut buf).expect("read"), 5);
    assert_eq!(&buf, b"world");
    assert_eq!(fs.read_at(small, 1000, &mut buf).expect("read past end"), 0);

    // htree lookups by name (test_htree: every name of both directories).
    for (dir, count) in [("/medium_dir", 1_000u32), ("/big_dir", 10_000)] {
        let d = node(&fs, dir);
        for i in (0..count).rev() {
            let name = i.to_string();
            let n = fs
                .lookup(d, name.as_bytes())
                .unwrap_or_else(|e| panic!("lookup {dir}/{name}: {e}"))
                .unwrap_or_else(|| panic!("{dir}/{name} not found by lookup"));
            let mut got = vec![0u8; 8];
            let len = fs.read_at(n, 0, &mut got).expect("read");
            assert_eq!(&got[..len], name.as_bytes(), "{dir}/{name}");
        }
        assert_eq!(fs.lookup(d, b"10000").expect("lookup"), None, "{dir}/10000");
    }
}

/// The encrypted directory: names and contents must be refused, never returned as ciphertext.
#[test]
fn ext4_view_disk1_encrypted_refused() {
    let img = ext4_view_image("test_disk1");
    let fs = open_default(&img);
    let dir = node(&fs, "/encrypted_dir");
    assert_err(
        fs.read_dir(dir),
        ErrorKind::Unsupported,
        "read_dir /encrypted_dir",
    );
    assert_err(
        fs.lookup(dir, b"file"),
        ErrorKind::Unsupported,
        "lookup /encrypted_dir/file",
    );
    assert_err(
        fs.resolve("/encrypted_dir/file"),
        ErrorKind::Unsupported,
        "resolve /encrypted_dir/file",
    );

    // The one file inside (`encrypted!`, 10 bytes): its inode number comes from fls, which
    // lists the encrypted name. Its contents must be refused too.
    let listed = fls(&img);
    let inside: Vec<_> = listed
        .iter()
        .filter(|(k, _)| k.starts_with(b"encrypted_dir/"))
        .collect();
    assert_eq!(
        inside.len(),
        1,
        "fls lists one entry in encrypted_dir: {inside:?}"
    );
    let ino = NodeId(inside[0].1.ino);
    let md = fs.metadata(ino).expect("metadata of the encrypted file");
    assert_eq!(md.file_type, guestctl_fs::FileType::Regular);
    assert_eq!(md.size, b"encrypted!".len() as u64);
    let mut buf = [0u8; 64];
    assert_err(
        fs.read_at(ino, 0, &mut buf),
        ErrorKind::Unsupported,
        "read_at of the encrypted file",
    );
}

#[test]
fn ext4_view_ext2_tree() {
    let img = ext4_view_image("test_disk_ext2");
    let fs = open_default(&img);
    let big = big_file_data(BIG_FILE_BLOCKS);
    let mut want = BTreeMap::new();
    want.insert(p("lost+found"), Want::Dir);
    want.insert(p("small_file"), Want::File(p("hello, world!")));
    want.insert(
        p("big_file"),
        Want::FileSha(big.len() as u64, sha256_hex(&big)),
    );
    want.insert(p("holes"), Want::File(holes_data()));
    let seen = walk(&fs);
    assert_tree(&seen, &want, "test_disk_ext2.bin vs xtask fill_ext2()");
    assert_eq!(fs.info().fs_type, "ext2");

    // Block map: data blocks plus 1 single-, 1+256 double- and 1+1+16 triple-indirect blocks.
    let big_node = seen_node(&seen, "big_file");
    let map_blocks = 1 + (1 + 256) + (1 + 1 + 16);
    assert_eq!(
        seen[b"big_file".as_slice()].allocated,
        u64::from(BIG_FILE_BLOCKS + map_blocks) * 1024,
        "big_file allocated bytes"
    );
    assert_eq!(
        seen[b"holes".as_slice()].allocated,
        4 * 1024,
        "holes allocated bytes"
    );

    // Reads inside and across blocks (test_file_seek_multiple_blocks), at each map level.
    let le = |off: u64| {
        let mut b = [0u8; 4];
        assert_eq!(fs.read_at(big_node, off, &mut b).expect("read"), 4);
        u32::from_le_bytes(b)
    };
    assert_eq!(le(1024), 1);
    assert_eq!(le(2048), 2);
    assert_eq!(le(2044), 1);
    for block in [
        11u32,
        12,
        267,
        268,
        268 + 65535,
        268 + 65536,
        BIG_FILE_BLOCKS - 1,
    ] {
        assert_eq!(
            le(u64::from(block) * 1024),
            block,
            "first word of block {block}"
        );
        assert_eq!(
            le(u64::from(block) * 1024 + 1020),
            block,
            "last word of block {block}"
        );
    }
    let mut b = [0u8; 2048];
    let off = u64::from(BIG_FILE_BLOCKS) * 1024 - 1024;
    assert_eq!(
        fs.read_at(big_node, off, &mut b).expect("read at the end"),
        1024
    );
}

#[test]
fn ext4_view_ext3_tree() {
    let img = ext4_view_image("test_disk_ext3");
    let fs = open_default(&img);
    let mut want = BTreeMap::new();
    want.insert(p("lost+found"), Want::Dir);
    numbered_dir(&mut want, "medium_dir", 1_000);
    let seen = walk(&fs);
    assert_tree(&seen, &want, "test_disk_ext3.bin vs xtask fill_ext3()");
    let info = fs.info();
    assert_eq!(info.label, "ext4-view testfs");
    assert_eq!(info.fs_type, "ext3");
    // TEA-hashed htree, 128-byte inodes: every name found by lookup (test_tea_htree).
    let d = node(&fs, "/medium_dir");
    for i in 0..1_000u32 {
        let n = fs.lookup(d, i.to_string().as_bytes()).expect("lookup");
        assert_eq!(
            n.map(|n| n.0),
            Some(seen_node(&seen, &format!("medium_dir/{i}")).0),
            "medium_dir/{i}"
        );
    }
}

/// After journal recovery the root holds `lost+found` and the empty directories `dir0` to
/// `dir772`: xtask `create_with_journal()` made dir0..dir999 and cut the writes off; which of
/// them reached a committed transaction was read from e2fsck 1.47's recovery of a copy (its
/// `ls /` afterwards), and the upstream test (src/journal.rs) checks `/dir500`.
#[test]
fn ext4_view_journal_replayed() {
    let img = ext4_view_image("test_disk_4k_block_journal");
    let fs = open_ext(&img, &OpenOptions::default())
        .unwrap_or_else(|e| panic!("open with journal replay: {e}"));
    node(&fs, "/dir500");
    let mut want = BTreeMap::new();
    want.insert(p("lost+found"), Want::Dir);
    for i in 0..=772 {
        want.insert(p(&format!("dir{i}")), Want::Dir);
    }
    assert_tree(
        &walk(&fs),
        &want,
        "test_disk_4k_block_journal.bin after recovery",
    );
    assert!(
        !fs.info().notes.is_empty(),
        "a replayed journal is worth a note"
    );
}

/// Without replay the image is read as it is on disk: the directories exist only in the
/// journal (upstream: with the journal cleared, /dir500 does not exist).
#[test]
fn ext4_view_journal_not_replayed() {
    let img = ext4_view_image("test_disk_4k_block_journal");
    let fs = open_ext(&img, &OpenOptions::default().replay_journal(false))
        .unwrap_or_else(|e| panic!("open without replay: {e}"));
    assert_err(
        fs.resolve("/dir500"),
        ErrorKind::NotFound,
        "/dir500 without replay",
    );
    let names: Vec<Vec<u8>> = fs
        .read_dir(fs.root())
        .expect("root")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec![p("lost+found")]);
}

// ---------------------------------------------------------------------------------------------
// dissect

#[test]
fn dissect_extfs_ext4_bin() {
    let img = decompressed("dissect.extfs/tests/data/ext4.bin.gz");
    let fs = open_default(&img);
    let info = fs.info();
    assert_eq!(info.fs_type, "ext4");
    assert_eq!(info.size, 2048 * 1024, "block_count 2048 of 1 KiB");
    assert_eq!(info.uuid, "ab98e08e-e2da-4bc9-bfc6-1ac5eafb1001");
    assert_eq!(info.label, "");

    let root = fs.metadata(fs.root()).expect("root");
    assert_eq!(root.size, 1024);
    assert_eq!(root.file_type, guestctl_fs::FileType::Directory);
    let mut names: Vec<Vec<u8>> = fs
        .read_dir(fs.root())
        .expect("root")
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    assert_eq!(names, vec![p("lost+found"), p("test_file"), p("xattr_cap")]);

    let f = node(&fs, "/test_file");
    let md = fs.metadata(f).expect("test_file");
    assert_eq!(md.size, 26);
    assert_eq!(md.file_type, guestctl_fs::FileType::Regular);
    let c = read_all(&fs, f, md.size).expect("read test_file");
    assert_eq!(
        c.bytes.as_deref(),
        Some(b"dissect test file in ext4\n".as_slice())
    );
    // 2018-05-29 08:57:58 UTC, no nanoseconds (128-byte inodes).
    let atime = md.atime.expect("atime");
    assert_eq!((atime.secs, atime.nanos), (1_527_584_278, 0));

    let mut xattrs = fs.xattrs(node(&fs, "/xattr_cap")).expect("xattrs");
    xattrs.sort_by(|a, b| a.name.cmp(&b.name));
    let got: Vec<(String, Vec<u8>)> = xattrs
        .into_iter()
        .map(|x| (String::from_utf8_lossy(&x.name).into_owned(), x.value))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "security.capability".to_owned(),
                b"\x01\x00\x00\x02\x00\x04@\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                    .to_vec()
            ),
            (
                "security.selinux".to_owned(),
                b"unconfined_u:object_r:unlabeled_t:s0\x00".to_vec()
            ),
        ]
    );
}

#[test]
fn dissect_extfs_symlink_bin() {
    let img = decompressed("dissect.extfs/tests/data/ext4_symlink_test.bin.gz");
    let fs = open_default(&img);
    let link = guestctl_fs::resolve_path(&fs, b"/path/to/dir/with/file.ext", false)
        .expect("the link itself");
    assert_eq!(
        fs.read_link(link).expect("read_link"),
        b"../../../../other/path/source/to/my/file.ext"
    );
    // Following it goes through a second link (other/path/source/to -> ../target/to).
    let target = node(&fs, "/path/to/dir/with/file.ext");
    assert_eq!(target, node(&fs, "/other/path/target/to/my/file.ext"));
    assert_eq!(
        fs.metadata(target).expect("target").file_type,
        guestctl_fs::FileType::Regular
    );
}

/// dissect.target test_recursive_symlink_dev: /path/to/symlink/target -> ../target and
/// /path/to/target -> symlink/target loop for ever.
#[test]
fn dissect_target_symlink_loop() {
    let img = corpus_file("dissect.target/tests/_data/filesystems/symlink_disk.ext4");
    let fs = open_default(&img);
    assert_err(
        fs.resolve("/path/to/symlink/target/"),
        ErrorKind::SymlinkLoop,
        "/path/to/symlink/target/",
    );
    assert_err(
        fs.resolve("/path/to/target"),
        ErrorKind::SymlinkLoop,
        "/path/to/target",
    );
    let nofollow = |p: &str| guestctl_fs::resolve_path(&fs, p.as_bytes(), false).expect(p);
    assert_eq!(
        fs.read_link(nofollow("/path/to/symlink/target"))
            .expect("link"),
        b"../target"
    );
    assert_eq!(
        fs.read_link(nofollow("/path/to/target")).expect("link"),
        b"symlink/target"
    );
}

// ---------------------------------------------------------------------------------------------
// DFTT #4 (ext3 keyword search)

const DFTT_ZIP: &str = "sleuthkit_test_data/from_brian/4-kwsrch-ext3.zip";

/// One `<fileobject>` of a DFXML file.
#[derive(Debug)]
struct FileObject {
    name: String,
    name_type: String,
    size: u64,
    allocated: bool,
    inode: u64,
    mode: u32,
    nlink: u32,
    uid: u32,
    gid: u32,
    mtime: Option<i64>,
    md5: Option<String>,
    /// (file_offset, img_offset, len) of the data runs.
    runs: Vec<(u64, u64, u64)>,
}

fn xml_tag<'a>(block: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = block.find(&open)? + open.len();
    let end = block[start..].find(&format!("</{tag}>"))? + start;
    Some(&block[start..end])
}

fn xml_attr(s: &str, attr: &str) -> u64 {
    let key = format!("{attr}='");
    let start = s.find(&key).unwrap_or_else(|| panic!("{attr} in {s}")) + key.len();
    let end = s[start..].find('\'').expect("closing quote") + start;
    s[start..end].parse().expect("number")
}

fn dfxml_time(s: &str) -> i64 {
    let s = s.trim_end_matches('Z');
    let (date, hms) = s.split_once('T').expect("DFXML time");
    civil_secs(date, hms)
}

fn parse_dfxml(xml: &str) -> Vec<FileObject> {
    let num = |b: &str, t: &str| -> u64 {
        xml_tag(b, t)
            .unwrap_or_else(|| panic!("<{t}> in {b}"))
            .parse()
            .expect(t)
    };
    xml.split("<fileobject>")
        .skip(1)
        .map(|b| {
            let b = &b[..b.find("</fileobject>").expect("</fileobject>")];
            let runs = b
                .find("<byte_runs facet='data'>")
                .map(|s| {
                    let sect = &b[s..];
                    let sect = &sect[..sect.find("</byte_runs>").expect("</byte_runs>")];
                    sect.split("<byte_run ")
                        .skip(1)
                        .map(|r| {
                            (
                                xml_attr(r, "file_offset"),
                                xml_attr(r, "img_offset"),
                                xml_attr(r, "len"),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let md5 = b.find("<hashdigest type='md5'>").map(|s| {
                let v = &b[s + "<hashdigest type='md5'>".len()..];
                v[..v.find('<').expect("md5 end")].trim().to_lowercase()
            });
            FileObject {
                name: xml_tag(b, "filename").expect("filename").to_owned(),
                name_type: xml_tag(b, "name_type").unwrap_or("").to_owned(),
                size: num(b, "filesize"),
                allocated: num(b, "alloc_inode") == 1 && num(b, "alloc_name") == 1,
                inode: num(b, "inode"),
                mode: num(b, "mode") as u32,
                nlink: num(b, "nlink") as u32,
                uid: num(b, "uid") as u32,
                gid: num(b, "gid") as u32,
                mtime: xml_tag(b, "mtime").map(dfxml_time),
                md5,
                runs,
            }
        })
        .collect()
}

#[test]
fn dftt_ext3_keyword_image() {
    use md5::Digest;
    let img = unzipped(DFTT_ZIP, "4-kwsrch-ext3/ext3-img-kw-1.dd");
    let xml_path = unzipped(DFTT_ZIP, "4-kwsrch-ext3/ext3-img-kw-1.dd.xml");
    let raw = std::fs::read(&img).expect("read image");
    // index.html: "The MD5 of the image is 30e7f792cc853e34e17335b243605d3a".
    assert_eq!(
        format!("{:x}", md5::Md5::digest(&raw)),
        "30e7f792cc853e34e17335b243605d3a"
    );

    let objects = parse_dfxml(&std::fs::read_to_string(xml_path).expect("read DFXML"));
    let fs = open_default(&img);
    let seen = walk(&fs);

    // Every allocated name of the DFXML (but `.`, `..` and the virtual $OrphanFiles) is ours,
    // and nothing else.
    let listed: BTreeMap<Vec<u8>, &FileObject> = objects
        .iter()
        .filter(|o| o.allocated && o.name_type != "V")
        .filter(|o| !o.name.split('/').any(|c| c == "." || c == ".."))
        .map(|o| (p(&o.name), o))
        .collect();
    assert_eq!(
        seen.keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect::<Vec<_>>(),
        listed
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect::<Vec<_>>(),
        "allocated names"
    );

    let mut regular = 0;
    for (path, o) in &listed {
        let s = &seen[path];
        let what = &o.name;
        assert_eq!(s.ino, o.inode, "{what}: inode");
        assert_eq!(s.mode, o.mode & 0o7777, "{what}: mode");
        assert_eq!(
            (s.uid, s.gid, s.nlink),
            (o.uid, o.gid, o.nlink),
            "{what}: uid/gid/nlink"
        );
        assert_eq!(s.mtime.map(|t| t.secs), o.mtime, "{what}: mtime");
        if o.name_type != "r" {
            continue;
        }
        regular += 1;
        // The DFXML carries empty md5 elements for this image, so the expected md5 is taken
        // from the image bytes at the file's data runs (holes as zeros), truncated to its size.
        let mut data = vec![0u8; o.size as usize];
        for &(foff, ioff, len) in &o.runs {
            let end = (foff + len).min(o.size);
            if foff < end {
                data[foff as usize..end as usize]
                    .copy_from_slice(&raw[ioff as usize..(ioff + end - foff) as usize]);
            }
        }
        let want_md5 = o
            .md5
            .clone()
            .unwrap_or_else(|| format!("{:x}", md5::Md5::digest(&data)));
        let c = s.content.clone().expect("regular").expect("read");
        assert_eq!((s.size, c.len), (o.size, o.size), "{what}: size");
        assert_eq!(c.md5, want_md5, "{what}: md5");
    }
    assert_eq!(regular, 3, "file1, file2, first");

    // index.html keyword table: "first" in /file1 at 181, "second" split over the two
    // fragments of /file2 (block 1209 offset 1021), "slacker" only in file1's slack space,
    // "third" only in the deleted /file3.
    let file = |n: &str| {
        seen[n.as_bytes()]
            .content
            .clone()
            .expect("file")
            .expect("read")
            .bytes
            .expect("bytes")
    };
    let (file1, file2) = (file("file1"), file("file2"));
    assert_eq!(&file1[181..186], b"first");
    assert_eq!(&file2[1021..1027], b"second");
    let has = |d: &[u8], w: &[u8]| d.windows(w.len()).any(|x| x == w);
    assert!(
        !has(&file1, b"slacker"),
        "file1 slack space leaked into its contents"
    );
    assert!(
        !seen.contains_key(b"file3".as_slice()),
        "deleted /file3 listed"
    );
}

// ---------------------------------------------------------------------------------------------
// dfvfs

#[test]
fn dfvfs_ext2_in_three_containers() {
    let raw = decompressed("dfvfs/test_data/ext2.raw.gz");
    let qcow2 = corpus_file("dfvfs/test_data/ext2.qcow2");
    let vmdk = corpus_file("dfvfs/test_data/ext2.vmdk");
    let fs_raw = open_container(&raw);
    let seen = walk(&fs_raw);
    for other in [&qcow2, &vmdk] {
        let fs = open_container(other);
        let s = walk(&fs);
        assert_eq!(s, seen, "{} differs from ext2.raw", other.display());
        assert_eq!(fs.info(), fs_raw.info(), "{}", other.display());
    }

    // end_to_end/ext2.E01.paths (less / and the virtual $OrphanFiles) and .hashes (sha256).
    let paths = std::fs::read_to_string(corpus_file("dfvfs/test_data/end_to_end/ext2.E01.paths"))
        .expect("paths");
    let want_paths: Vec<String> = paths
        .lines()
        .filter(|l| *l != "/" && !l.starts_with("/$OrphanFiles"))
        .map(|l| l.trim_start_matches('/').to_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let got_paths: Vec<String> = seen
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert_eq!(got_paths, want_paths, "ext2.E01.paths");
    let hashes = std::fs::read_to_string(corpus_file("dfvfs/test_data/end_to_end/ext2.E01.hashes"))
        .expect("hashes");
    for line in hashes.lines() {
        let (sha, path) = line.split_once('\t').expect("hash<TAB>path");
        let s = &seen[path.trim_start_matches('/').as_bytes()];
        assert_eq!(
            s.content.clone().expect("file").expect("read").sha256,
            sha,
            "{path}"
        );
    }

    let fs = &fs_raw;
    // tests/vfs/ext_file_entry.py, tests/file_io/ext_file_io.py, tests/vfs/tsk_file_entry.py.
    assert_eq!(seen_node(&seen, "a_directory").0, 12);
    assert_eq!(seen_node(&seen, "a_directory/a_file").0, 13);
    assert_eq!(seen_node(&seen, "passwords.txt").0, 14);
    assert_eq!(seen_node(&seen, "a_directory/another_file").0, 15);
    assert_eq!(seen_node(&seen, "a_link").0, 16);
    assert_eq!(fs.read_dir(fs.root()).expect("root").len(), 4);
    assert_eq!(fs.read_dir(NodeId(12)).expect("a_directory").len(), 2);

    let pw = seen[b"passwords.txt".as_slice()]
        .content
        .clone()
        .expect("file")
        .expect("read");
    assert_eq!(pw.len, 116);
    assert_eq!(
        pw.bytes.as_deref(),
        Some(
            b"place,user,password\nbank,joesmith,superrich\nalarm system,-,1234\n\
              treasure chest,-,1111\nuber secret laire,admin,admin\n"
                .as_slice()
        )
    );

    let another = NodeId(15);
    let md = fs.metadata(another).expect("another_file");
    assert_eq!(md.st_mode(), 0o100664);
    assert_eq!(
        (md.uid, md.gid, md.nlink, md.size, md.inode),
        (1000, 1000, 1, 22, 15)
    );
    assert!(md.atime.is_some() && md.mtime.is_some() && md.ctime.is_some());
    assert_eq!(
        md.crtime, None,
        "ext2 (128-byte inodes) has no creation time"
    );
    let at = |off: u64, len: usize| {
        let mut b = vec![0u8; len];
        let n = fs.read_at(another, off, &mut b).expect("read");
        b.truncate(n);
        b
    };
    assert_eq!(at(10, 5), b"other");
    assert_eq!(at(22 - 10, 5), b"her f");
    assert_eq!(at(22 - 10 + 5 + 2, 2), b"e.");
    assert_eq!(at(300, 2), b"");

    // The link resolves to another_file.
    assert_eq!(node(fs, "/a_link"), another);

    // a_file carries user.myxattr (and security.selinux: two attributes).
    let xattrs = fs.xattrs(NodeId(13)).expect("xattrs");
    assert_eq!(xattrs.len(), 2, "{xattrs:?}");
    let my = xattrs
        .iter()
        .find(|x| x.name == b"user.myxattr")
        .expect("user.myxattr");
    assert_eq!(my.value, b"My extended attribute");
    assert_eq!(fs.info().label, "ext2_test");
}

// ---------------------------------------------------------------------------------------------
// sleuthkit as an oracle

/// Every image readable without journal replay: our walk and `fls -r -p` agree on every
/// allocated name, its inode number and its type. Entries inside directories we refuse
/// (the encrypted one) are the only ones fls may list beyond ours.
#[test]
fn fls_agrees_on_names_and_inodes() {
    let images = [
        ext4_view_image("test_disk1"),
        ext4_view_image("test_disk_ext2"),
        ext4_view_image("test_disk_ext3"),
        decompressed("dissect.extfs/tests/data/ext4.bin.gz"),
        decompressed("dissect.extfs/tests/data/ext4_symlink_test.bin.gz"),
        corpus_file("dissect.target/tests/_data/filesystems/symlink_disk.ext4"),
        unzipped(DFTT_ZIP, "4-kwsrch-ext3/ext3-img-kw-1.dd"),
        decompressed("dfvfs/test_data/ext2.raw.gz"),
    ];
    let mut failures = Vec::new();
    for img in &images {
        let fs = open_default(img);
        let seen = walk(&fs);
        // Only listings refused as Unsupported (encrypted) excuse fls's extra entries; a
        // directory we fail to read for any other reason shows up as missing entries.
        let refused: Vec<Vec<u8>> = seen
            .iter()
            .filter(|(_, s)| s.list_error == Some(ErrorKind::Unsupported))
            .map(|(k, _)| {
                let mut k = k.clone();
                k.push(b'/');
                k
            })
            .collect();
        let mut oracle = fls(img);
        oracle.retain(|k, _| !refused.iter().any(|r| k.starts_with(r)));
        let ours: BTreeMap<Vec<u8>, FlsEntry> = seen
            .iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    FlsEntry {
                        kind: s.kind,
                        ino: s.ino,
                    },
                )
            })
            .collect();
        if ours != oracle {
            let show = |k: &Vec<u8>| String::from_utf8_lossy(k).into_owned();
            let mut d: Vec<String> = Vec::new();
            for (k, v) in &oracle {
                match ours.get(k) {
                    None => d.push(format!("  missing {} {v:?}", show(k))),
                    Some(o) if o != v => d.push(format!("  {}: ours {o:?} fls {v:?}", show(k))),
                    _ => {}
                }
            }
            d.extend(
                ours.keys()
                    .filter(|k| !oracle.contains_key(*k))
                    .map(|k| format!("  extra {}", show(k))),
            );
            d.truncate(20);
            failures.push(format!("{}:\n{}", img.display(), d.join("\n")));
        }
    }
    assert!(
        failures.is_empty(),
        "fls disagrees:\n{}",
        failures.join("\n")
    );
}

/// `istat` of every node of the small images (and of the top of test_disk1): uid, gid, mode,
/// size, links and the four timestamps (with nanoseconds where the inode has them).
#[test]
fn istat_agrees_on_metadata() {
    let images = [
        decompressed("dissect.extfs/tests/data/ext4.bin.gz"),
        decompressed("dissect.extfs/tests/data/ext4_symlink_test.bin.gz"),
        corpus_file("dissect.target/tests/_data/filesystems/symlink_disk.ext4"),
        unzipped(DFTT_ZIP, "4-kwsrch-ext3/ext3-img-kw-1.dd"),
        decompressed("dfvfs/test_data/ext2.raw.gz"),
        ext4_view_image("test_disk_ext2"),
        ext4_view_image("test_disk1"),
    ];
    let mut failures = Vec::new();
    for img in &images {
        let fs = open_default(img);
        let mut seen = walk(&fs);
        seen.retain(|k, _| !k.starts_with(b"big_dir/") && !k.starts_with(b"medium_dir/"));
        let d = istat_diffs(img, &seen, &fs);
        if !d.is_empty() {
            failures.push(format!(
                "{}:\n{}",
                img.display(),
                d[..d.len().min(10)].join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "istat disagrees:\n{}",
        failures.join("\n")
    );
}
