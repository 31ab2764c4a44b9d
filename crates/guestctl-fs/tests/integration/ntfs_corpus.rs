//! NTFS against third-party images and their answer sheets (shared/corpus): the ntfs crate's
//! testfs1 (its create-testfs1.sh, summarised in the corpus INDEX.md), and sleuthkit's `fls`
//! / `icat` for the DFTT image.

use crate::corpus_support;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use corpus_support::{corpus_file, decompressed};
use guestctl_block::{BlockDevice, RawFile};
use guestctl_fs::ntfs::NtfsFs;
use guestctl_fs::{FileType, Filesystem, NodeId, OpenOptions};
use md5::{Digest, Md5};

fn open(dev: Arc<dyn BlockDevice>) -> NtfsFs {
    NtfsFs::open(dev, &OpenOptions::default()).expect("open NTFS")
}

fn open_path(p: &std::path::Path) -> NtfsFs {
    open(Arc::new(RawFile::open(p).expect("open image")))
}

/// Every node below the root: path -> (type, size, md5 of contents for regular files, node).
fn walk(fs: &dyn Filesystem) -> BTreeMap<String, (FileType, u64, Option<String>, NodeId)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(String::new(), fs.root(), 0usize)];
    while let Some((path, dir, depth)) = stack.pop() {
        assert!(depth < 64, "directory depth");
        for e in fs
            .read_dir(dir)
            .unwrap_or_else(|e| panic!("read_dir {path}: {e}"))
        {
            let name = String::from_utf8(e.name.clone()).expect("utf8 name");
            let p = format!("{path}/{name}");
            let md = fs
                .metadata(e.node)
                .unwrap_or_else(|err| panic!("metadata {p}: {err}"));
            let sum = (md.file_type == FileType::Regular).then(|| md5_node(fs, e.node, md.size));
            if md.file_type == FileType::Directory {
                stack.push((p.clone(), e.node, depth + 1));
            }
            out.insert(p, (md.file_type, md.size, sum, e.node));
        }
    }
    out
}

fn read_node(fs: &dyn Filesystem, node: NodeId, size: u64) -> Vec<u8> {
    let mut data = vec![0u8; size as usize];
    let mut off = 0usize;
    while off < data.len() {
        let n = fs
            .read_at(node, off as u64, &mut data[off..])
            .expect("read");
        assert!(n > 0, "short read at {off} of {size}");
        off += n;
    }
    data
}

fn md5_node(fs: &dyn Filesystem, node: NodeId, size: u64) -> String {
    let data = read_node(fs, node, size);
    format!("{:x}", Md5::digest(&data))
}

fn tsk(tool: &str, args: &[String]) -> Vec<u8> {
    let out = Command::new(tool)
        .args(args)
        .env("TZ", "UTC")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {tool}: {e} (apt-get install sleuthkit; scripts/test.sh does)")
        });
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Compares our walk with `fls -r -p` (allocated names, metafiles and `$Extend` left out as
/// we hide them) and every regular file and named stream with `icat`'s bytes (md5).
/// `sector_off` is the partition start in 512-byte sectors. Returns the files compared.
fn compare_with_tsk(img: &std::path::Path, sector_off: u64, fs: &NtfsFs) -> usize {
    let tree = walk(fs);
    let base = vec![
        "-f".to_string(),
        "ntfs".to_string(),
        "-o".to_string(),
        sector_off.to_string(),
        img.display().to_string(),
    ];
    let mut fls_args = vec!["-r".to_string(), "-p".to_string()];
    fls_args.extend(base.iter().cloned());
    let out = tsk("fls", &fls_args);
    let mut want_names = 0;
    let mut compared = 0;
    for line in String::from_utf8_lossy(&out).lines() {
        let Some((head, name)) = line.split_once('\t') else {
            continue;
        };
        if head.contains('*') {
            continue;
        }
        let (types, addr) = head.split_once(' ').expect("fls type and address");
        let addr = addr.trim().trim_end_matches(':').to_string();
        // The metafiles (records below 16, which we hide, and $Extend's) and sleuthkit's
        // virtual $OrphanFiles; user names starting with '$' ($RECYCLE.BIN) are compared.
        let rec: u64 = addr
            .split('-')
            .next()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        if name.starts_with('$')
            && (rec < 16 || name.starts_with("$Extend") || name.starts_with("$OrphanFiles"))
        {
            continue;
        }
        let path = format!("/{name}");
        if let Some((file, stream)) = path.rsplit_once(':') {
            // A named stream: lookup("file:stream") must read what icat reads.
            let (parent, leaf) = file.rsplit_once('/').expect("slash");
            let dir = if parent.is_empty() {
                fs.root()
            } else {
                tree[parent].3
            };
            let node = fs
                .lookup(dir, format!("{leaf}:{stream}").as_bytes())
                .expect("lookup stream")
                .unwrap_or_else(|| panic!("stream {path} not found"));
            let md = fs.metadata(node).expect("stream metadata");
            let mut a = base.clone();
            a.push(addr.clone());
            let want = tsk("icat", &a);
            assert_eq!(md.size, want.len() as u64, "{path}: stream size");
            assert_eq!(
                read_node(fs, node, md.size),
                want,
                "{path}: stream contents"
            );
            let listed = fs
                .streams(NodeId(node.0 & ((1 << 48) - 1)))
                .expect("streams");
            assert!(
                listed.iter().any(|s| s.name == stream.as_bytes()),
                "{path} not listed by streams()"
            );
            compared += 1;
            continue;
        }
        want_names += 1;
        let (ty, size, sum, node) = tree
            .get(&path)
            .unwrap_or_else(|| panic!("{path} listed by fls is missing from our walk"))
            .clone();
        let ino: u64 = addr
            .split('-')
            .next()
            .expect("inode")
            .parse()
            .expect("inode number");
        assert_eq!(node.0, ino, "{path}: MFT record");
        match types.as_bytes().get(2) {
            Some(b'd') => assert_eq!(ty, FileType::Directory, "{path}: type"),
            Some(b'r') => {
                assert_eq!(ty, FileType::Regular, "{path}: type");
                let mut a = base.clone();
                a.push(ino.to_string());
                let want = tsk("icat", &a);
                assert_eq!(size, want.len() as u64, "{path}: size");
                assert_eq!(
                    sum.as_deref(),
                    Some(format!("{:x}", Md5::digest(&want)).as_str()),
                    "{path}: md5"
                );
                compared += 1;
            }
            _ => {}
        }
    }
    assert_eq!(
        tree.len(),
        want_names,
        "we list names fls does not: {:?}",
        tree.keys().collect::<Vec<_>>()
    );
    compared
}

#[test]
fn testfs1_matches_create_script_blkid_and_sleuthkit() {
    let img = corpus_file("ntfs/testdata/testfs1");
    let fs = open_path(&img);
    let info = fs.info();
    assert_eq!(info.fs_type, "ntfs");
    assert_eq!(info.label, "mylabel");
    assert_eq!(info.block_size, 512);
    // blkid prints the serial as 16 upper-case hex digits.
    let blkid = Command::new("blkid")
        .args(["-o", "value", "-s", "UUID"])
        .arg(&img)
        .output();
    if let Ok(out) = blkid {
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), info.uuid);
        }
    }
    assert_eq!(info.uuid, "6F462FC17DF91EB8");
    let tree = walk(&fs);
    // create-testfs1.sh: the files and many_subdirs/1..512.
    let missing: Vec<u32> = (1..=512)
        .filter(|n| !tree.contains_key(&format!("/many_subdirs/{n}")))
        .collect();
    assert!(
        missing.is_empty(),
        "missing {missing:?}; notes {:?}",
        fs.info().notes
    );
    for n in 1..=512 {
        assert_eq!(tree[&format!("/many_subdirs/{n}")].0, FileType::Directory);
    }
    assert_eq!(tree["/empty-file"].1, 0);
    let f = tree["/file-with-12345"].3;
    assert_eq!(read_node(&fs, f, tree["/file-with-12345"].1), b"12345");
    assert_eq!(tree["/1000-bytes-file"].1, 1000);
    let (_, size, _, sparse) = tree["/sparse-file"].clone();
    let data = read_node(&fs, sparse, size);
    assert!(
        data[..5].iter().any(|&b| b != 0),
        "sparse-file has data at 0"
    );
    assert!(
        data[500_000..500_005].iter().any(|&b| b != 0),
        "sparse-file has data at 500000"
    );
    assert!(
        data[10_000..490_000].iter().all(|&b| b == 0),
        "the hole reads as zeros"
    );
    // Case-insensitive lookup through $UpCase, and the metafiles stay hidden.
    assert_eq!(
        fs.lookup(fs.root(), b"MANY_SUBDIRS").expect("lookup"),
        Some(tree["/many_subdirs"].3)
    );
    assert_eq!(
        fs.lookup(fs.root(), b"File-With-12345").expect("lookup"),
        Some(f)
    );
    assert!(!tree.keys().any(|k| k.starts_with("/$")));
    assert_eq!(
        fs.resolve("/many_subdirs/512").expect("resolve"),
        tree["/many_subdirs/512"].3
    );
    let md = fs.metadata(fs.root()).expect("root");
    assert_eq!((md.mode, md.uid, md.gid), (0o777, 0, 0));
    // empty-file: mtime 2021-01-01 13:37 per the script (istat prints it too).
    let md = fs.metadata(tree["/empty-file"].3).expect("md");
    let mtime = md.mtime.expect("mtime").secs;
    let istat = String::from_utf8_lossy(&tsk(
        "istat",
        &[
            img.display().to_string(),
            tree["/empty-file"].3 .0.to_string(),
        ],
    ))
    .to_string();
    // The script ran in UTC+1: istat prints 12:37 UTC.
    assert!(
        istat.contains("File Modified:\t2021-01-01 12:37:00.000000000 (UTC)"),
        "istat: {istat}"
    );
    assert_eq!(mtime, 1_609_504_620, "mtime");
    assert_eq!(compare_with_tsk(&img, 0, &fs), 4);
}

#[test]
fn dftt_7_undel_ntfs_allocated_files_match_icat() {
    let img = corpus_support::unzipped(
        "sleuthkit_test_data/from_brian/7-undel-ntfs.zip",
        "7-undel-ntfs/7-ntfs-undel.dd",
    );
    let fs = open_path(&img);
    let n = compare_with_tsk(&img, 0, &fs);
    assert!(n > 0);
}

fn partitions(img: &std::path::Path) -> (Arc<dyn BlockDevice>, Vec<guestctl_part::Partition>) {
    let disk: Arc<dyn BlockDevice> = Arc::new(RawFile::open(img).expect("open disk"));
    let table = guestctl_part::scan(disk.as_ref()).expect("partition table");
    (
        disk,
        table
            .partitions
            .into_iter()
            .filter(|p| !p.extended)
            .collect(),
    )
}

#[test]
fn dftt_10_ntfs_disk_partitions_and_part3_match_icat() {
    let img = corpus_support::unzipped(
        "sleuthkit_test_data/from_brian/10b-ntfs-autodetect.zip",
        "10-ntfs-autodetect/10-ntfs-disk.dd",
    );
    let (disk, parts) = partitions(&img);
    // The disk image holds partitions 1 and 2 (mmls agrees); part3 is a separate image.
    assert_eq!(parts.len(), 2, "{parts:#?}");
    // sleuthkit's oracle reads the separate partN.dd copies (fls does not detect partition
    // 1 inside the disk image); our reader reads the slices of the disk.
    for (i, p) in parts.iter().enumerate() {
        let slice = guestctl_part::open_partition(disk.clone(), p).expect("slice");
        let fs = open(Arc::new(slice));
        let part = corpus_support::unzipped(
            "sleuthkit_test_data/from_brian/10b-ntfs-autodetect.zip",
            &format!("10-ntfs-autodetect/10-ntfs-part{}.dd", i + 1),
        );
        compare_with_tsk(&part, 0, &fs);
    }
    let p3 = corpus_support::unzipped(
        "sleuthkit_test_data/from_brian/10b-ntfs-autodetect.zip",
        "10-ntfs-autodetect/10-ntfs-part3.dd",
    );
    compare_with_tsk(&p3, 0, &open_path(&p3));
}

#[test]
fn sleuthkit_imageformat_mmls_1_two_partitions_match_icat() {
    let img = decompressed("sleuthkit/test/data/imageformat_mmls_1.raw.zst");
    let (disk, parts) = partitions(&img);
    assert_eq!(parts.len(), 2);
    let mut total = 0;
    for p in &parts {
        let slice = guestctl_part::open_partition(disk.clone(), p).expect("slice");
        let fs = open(Arc::new(slice));
        total += compare_with_tsk(&img, p.start / 512, &fs);
    }
    eprintln!("imageformat_mmls_1: {total} files compared with icat");
    assert!(total > 0);
}

#[test]
fn dfvfs_windows_volume_qcow2_has_system32_config() {
    let path = corpus_file("dfvfs/test_data/windows_volume.qcow2");
    let image = guestctl_formats::open_image(&path, &guestctl_formats::OpenOptions::default())
        .expect("open qcow2");
    let fs = open(image.device());
    let node = fs
        .resolve("/Windows/System32/config")
        .expect("resolve config");
    assert_eq!(
        fs.metadata(node).expect("md").file_type,
        FileType::Directory
    );
    // Case-insensitive, like Windows.
    assert_eq!(
        fs.resolve("/WINDOWS/system32/CONFIG").expect("resolve"),
        node
    );
    walk(&fs);
}

/// dissect.ntfs's `ntfs.bin` volume against the assertions of its `tests/test_ntfs.py`: volume
/// name, cluster size, a resident and a non-resident file (record numbers, sizes, contents),
/// a directory's listing, and a file used as a directory.
#[test]
fn dissect_ntfs_volume_matches_its_test_ntfs_py() {
    let img = decompressed("dissect.ntfs/tests/_data/ntfs.bin.gz");
    let fs = open_path(&img);
    let info = fs.info();
    assert_eq!(info.fs_type, "ntfs");
    assert_eq!(info.label, "New Volume");
    assert_eq!(info.block_size, 4096);
    let small = fs.resolve("/File.txt").expect("File.txt");
    assert_eq!(small.0, 41, "File.txt is MFT record 41");
    let md = fs.metadata(small).expect("md");
    assert_eq!((md.file_type, md.size), (FileType::Regular, 13));
    assert_eq!(read_node(&fs, small, 13), b"Contents here");
    let large = fs.resolve("/Large.txt").expect("Large.txt");
    assert_eq!(large.0, 44, "Large.txt is MFT record 44");
    let md = fs.metadata(large).expect("md");
    assert_eq!((md.file_type, md.size), (FileType::Regular, 2_097_152));
    assert!(read_node(&fs, large, md.size).iter().all(|&b| b == b'A'));
    let err = fs
        .resolve("/Large.txt/Something")
        .expect_err("not a directory");
    assert_eq!(err.kind(), guestctl_fs::ErrorKind::NotADirectory, "{err}");
    let dir = fs.resolve("/Directory").expect("Directory");
    assert_eq!(fs.metadata(dir).expect("md").file_type, FileType::Directory);
    let names: Vec<String> = fs
        .read_dir(dir)
        .expect("read_dir")
        .into_iter()
        .map(|e| String::from_utf8(e.name).expect("utf8"))
        .collect();
    assert_eq!(names, ["File 1.txt", "File 2.txt"]);
    assert_eq!(
        fs.lookup(dir, b"File 1.txt").expect("lookup"),
        Some(fs.resolve("/Directory/File 1.txt").expect("resolve"))
    );
    // sleuthkit agrees on every allocated file.
    assert!(compare_with_tsk(&img, 0, &fs) >= 4);
}
