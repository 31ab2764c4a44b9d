//! Third-party FAT images from /work/shared/corpus (see its INDEX.md), checked against their
//! answer sheets (rust-fatfs' create-test-img.sh contents, embedded-sdmmc's TEST.DAT sha256,
//! the DFTT DFXML md5 list) and against sleuthkit (`fls -r -p`, `istat`) where there is none.

use crate::corpus_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use corpus_support::{corpus_file, decompressed, fls, unzipped};
use guestctl_block::{BlockDevice, RawFile};
use guestctl_fs::fat::FatFs;
use guestctl_fs::{ErrorKind, FileType, Filesystem, NodeId, OpenOptions};
use md5::Md5;
use sha2::{Digest, Sha256};

fn open_dev(dev: Arc<dyn BlockDevice>) -> FatFs {
    FatFs::open(dev, &OpenOptions::default()).expect("FatFs::open")
}

fn open(img: &Path) -> FatFs {
    open_dev(Arc::new(RawFile::open(img).expect("open image")))
}

fn read_all(fs: &dyn Filesystem, node: NodeId) -> Vec<u8> {
    let size = fs.metadata(node).expect("metadata").size;
    let mut v = vec![0u8; size as usize];
    let mut off = 0;
    while off < v.len() {
        let n = fs
            .read_at(node, off as u64, &mut v[off..])
            .expect("read_at");
        assert!(n > 0, "short read");
        off += n;
    }
    v
}

/// path -> (type letter, node), everything reachable.
fn walk(fs: &dyn Filesystem) -> BTreeMap<Vec<u8>, (char, NodeId)> {
    let mut m = BTreeMap::new();
    let mut stack = vec![(Vec::new(), fs.root())];
    while let Some((prefix, dir)) = stack.pop() {
        for e in fs.read_dir(dir).expect("read_dir") {
            let mut p = prefix.clone();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(&e.name);
            if e.file_type == FileType::Directory {
                stack.push((p.clone(), e.node));
            }
            m.insert(p, (e.file_type.type_char(), e.node));
        }
    }
    m
}

/// Our walk equals sleuthkit's `fls -r -p` (allocated names; its virtual `$MBR`, `$FAT1`,
/// `$FAT2` files and the volume label entry left out), type by type, and `istat` sizes.
fn same_as_fls(img: &Path, fs: &FatFs) -> usize {
    let tsk: BTreeMap<Vec<u8>, char> = fls(img)
        .into_iter()
        .filter(|(n, _)| {
            let s = String::from_utf8_lossy(n);
            !matches!(s.as_ref(), "$MBR" | "$FAT1" | "$FAT2")
                && !s.ends_with("(Volume Label Entry)")
        })
        .map(|(n, e)| (n, if e.kind == 'd' { 'd' } else { 'f' }))
        .collect();
    let ours: BTreeMap<Vec<u8>, char> = walk(fs).into_iter().map(|(p, (k, _))| (p, k)).collect();
    let show = |m: &BTreeMap<Vec<u8>, char>| {
        m.iter()
            .map(|(p, k)| format!("{k} {}", String::from_utf8_lossy(p)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        show(&ours),
        show(&tsk),
        "{}: names/types differ from fls",
        img.display()
    );
    tsk.len()
}

#[test]
fn rust_fatfs_images_match_create_test_img_sh() {
    for (name, bits) in [("fat12.img", 12), ("fat16.img", 16)] {
        let img = corpus_file(&format!("rust-fatfs/resources/{name}"));
        let fs = open(&img);
        let info = fs.info();
        assert_eq!(info.label, "Test!", "{name}");
        assert_eq!(info.uuid, "1234-5678", "{name}");
        let long = read_all(&fs, fs.resolve("/long.txt").expect("long.txt"));
        assert_eq!(long, b"Rust is cool!\n".repeat(1000), "{name} long.txt");
        for p in [
            "/short.txt",
            "/very/long/path/test.txt",
            "/very-long-dir-name/very-long-file-name.txt",
        ] {
            let n = fs.resolve(p).unwrap_or_else(|e| panic!("{name}{p}: {e}"));
            assert_eq!(fs.metadata(n).expect("md").file_type, FileType::Regular);
        }
        let n = same_as_fls(&img, &fs);
        assert!(n >= 7, "{name}: {n} entries");
        eprintln!("rust-fatfs {name} (FAT{bits}): {n} entries agree with fls");
    }
}

#[test]
fn embedded_sdmmc_fat16_and_fat32_partitions() {
    let img = decompressed("embedded-sdmmc-rs/tests/disk.img.gz");
    let disk: Arc<dyn BlockDevice> = Arc::new(RawFile::open(&img).expect("open"));
    let table = guestctl_part::scan(disk.as_ref()).expect("scan");
    assert_eq!(table.partitions.len(), 2, "{table:?}");
    let mut seen_test_dat = 0;
    for p in &table.partitions {
        let slice = guestctl_part::open_partition(disk.clone(), p).expect("open partition");
        let fs = open_dev(Arc::new(slice));
        let tree = walk(&fs);
        assert!(!tree.is_empty(), "partition {} lists nothing", p.number);
        // mtools' recursive bare listing of the same partition is the name oracle.
        let at = format!("{}@@{}", img.display(), p.start);
        let out = std::process::Command::new("mdir")
            .args(["-/", "-b", "-i", &at, "::/"])
            .env("MTOOLS_SKIP_CHECK", "1")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("cannot run mdir (install mtools)");
        let mut want: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("::/"))
            .map(|l| l.trim_end_matches('/').to_string())
            .collect();
        // mdir -b leaves out hidden directories themselves (not their contents): add parents.
        let parents: Vec<String> = want
            .iter()
            .filter_map(|w| w.rsplit_once('/').map(|(d, _)| d.to_string()))
            .collect();
        want.extend(parents);
        want.sort();
        want.dedup();
        let mut ours: Vec<String> = tree
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        ours.sort();
        assert_eq!(
            ours, want,
            "partition {}: names differ from mdir -/ -b",
            p.number
        );
        // tests/utils/mod.rs: TEST.DAT's sha256 starts 59e3468e.
        if let Some((_, node)) = tree.get(b"TEST/TEST.DAT".as_slice()) {
            let d = format!("{:x}", Sha256::digest(read_all(&fs, *node)));
            assert!(d.starts_with("59e3468e"), "TEST.DAT sha256 {d}");
            seen_test_dat += 1;
        }
        // Every file reads to its full size.
        for (path, (k, node)) in &tree {
            if *k == 'f' {
                let size = fs.metadata(*node).expect("md").size as usize;
                assert_eq!(
                    read_all(&fs, *node).len(),
                    size,
                    "{}",
                    String::from_utf8_lossy(path)
                );
            }
        }
    }
    assert_eq!(seen_test_dat, 2, "TEST.DAT on both volumes");
}

/// The regular-file objects of a DFXML file: name -> (allocated, md5 when given). Virtual
/// sleuthkit files (`$MBR`, `$FAT1`, ...) and the volume label entry are left out.
fn dfxml_files(xml: &str) -> BTreeMap<String, (bool, Option<String>)> {
    let mut m = BTreeMap::new();
    for obj in xml.split("<fileobject").skip(1) {
        let tag = |t: &str| {
            let s = obj.find(&format!("<{t}>"))?;
            let s = s + t.len() + 2;
            let e = s + obj[s..].find(&format!("</{t}>"))?;
            Some(obj[s..e].trim().to_string())
        };
        let Some(name) = tag("filename") else {
            continue;
        };
        if name.starts_with('$')
            || name.ends_with("(Volume Label Entry)")
            || !obj.contains("<name_type>r</name_type>")
        {
            continue;
        }
        let alloc = obj.contains("<alloc_name>1</alloc_name>");
        let md5 = obj
            .split("<hashdigest type='md5'>")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .map(|h| h.trim().to_lowercase());
        m.insert(name, (alloc, md5));
    }
    m
}

#[test]
fn dftt_6_undel_fat_deleted_files_stay_hidden_allocated_ones_match() {
    let img = unzipped(
        "sleuthkit_test_data/from_brian/6-undel-fat.zip",
        "6-undel-fat/6-fat-undel.dd",
    );
    let xml = std::fs::read_to_string(corpus_file(
        "sleuthkit_test_data/from_brian/6-fat-undel.dd.xml",
    ))
    .expect("xml");
    let files = dfxml_files(&xml);
    assert!(files.len() >= 5, "DFXML lists {} files", files.len());
    let fs = open(&img);
    let tree = walk(&fs);
    let (mut deleted, mut allocated) = (0, 0);
    for (name, (alloc, md5)) in &files {
        let ours = tree.get(name.as_bytes());
        if !alloc {
            // Deleted names (sleuthkit shows them recovered, e.g. `_rag1.dat`) are not listed.
            assert!(ours.is_none(), "{name} is deleted but listed");
            deleted += 1;
            continue;
        }
        let (_, node) = ours.unwrap_or_else(|| panic!("{name}: allocated in the DFXML, missing"));
        if let Some(md5) = md5 {
            assert_eq!(
                &format!("{:x}", Md5::digest(read_all(&fs, *node))),
                md5,
                "{name}"
            );
        }
        allocated += 1;
    }
    eprintln!("6-undel-fat: {deleted} deleted files hidden, {allocated} allocated match");
    assert!(deleted > 0);
    same_as_fls(&img, &fs);
}

#[test]
fn dftt_fat_images_match_fls() {
    for (zip, member) in [
        ("2-kwsrch-fat", "2-kwsrch-fat/fat-img-kw.dd"),
        ("5-fat-daylight", "5-fat-daylight/daylight.dd"),
        ("9-fat-label", "9-fat-label/9-fat-label.dd"),
    ] {
        let img = unzipped(&format!("sleuthkit_test_data/from_brian/{zip}.zip"), member);
        let fs = open(&img);
        let n = same_as_fls(&img, &fs);
        eprintln!(
            "{zip}: {n} entries agree with fls, label {:?}",
            fs.info().label
        );
    }
    let img = corpus_file("sleuthkit/test/data/fat_dst_test.dd");
    let fs = open(&img);
    same_as_fls(&img, &fs);
}

#[test]
fn dftt_ext_part_test_2_six_fat16_partitions() {
    let img = unzipped(
        "sleuthkit_test_data/from_brian/1-extend-part.zip",
        "1-extend-part/ext-part-test-2.dd",
    );
    let disk: Arc<dyn BlockDevice> = Arc::new(RawFile::open(&img).expect("open"));
    let table = guestctl_part::scan(disk.as_ref()).expect("scan");
    let mut opened = 0;
    for p in &table.partitions {
        let Ok(slice) = guestctl_part::open_partition(disk.clone(), p) else {
            continue;
        };
        let dev: Arc<dyn BlockDevice> = Arc::new(slice);
        if let Ok(fs) = FatFs::open(dev, &OpenOptions::default()) {
            walk(&fs);
            opened += 1;
        }
    }
    assert_eq!(opened, 6, "six FAT16 partitions open and list");
}

#[test]
fn dissect_exfat_is_unsupported() {
    let img = corpus_file("dissect.fat/tests/data/exfat.bin");
    let dev: Arc<dyn BlockDevice> = Arc::new(RawFile::open(&img).expect("open"));
    let e = FatFs::open(dev, &OpenOptions::default()).expect_err("exFAT");
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("exFAT is not supported yet"), "{e}");
}
