//! Hostile FAT images: random bit flips in real FAT12/16/32 images made with mkfs.fat and
//! mtools, and hand-made damage (a cluster chain loop, a chain leaving the volume, a
//! directory that contains itself, a 4 GiB file on a tiny volume, a broken directory).
//! Whatever the damage, opening and walking must end quickly, without a panic, with data or
//! errors, and one bad directory must not hide the rest.

use crate::common;

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use guestctl_block::{BlockDevice, MemoryDevice};
use guestctl_fs::fat::FatFs;
use guestctl_fs::{ErrorKind, FileType, Filesystem, NodeId, OpenOptions};

fn tool(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .env("TZ", "UTC")
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e} (install dosfstools and mtools)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small volume: LOOP.BIN (3+ clusters) first, a subdirectory SUB with files, BAD (a
/// directory), long names, a 40 KiB file.
fn image(dir: &Path, bits: &str, kib: &str) -> Vec<u8> {
    let src = dir.join(format!("src{bits}"));
    std::fs::create_dir_all(src.join("SUB")).expect("mkdir");
    std::fs::create_dir_all(src.join("BAD")).expect("mkdir");
    std::fs::write(src.join("LOOP.BIN"), common::noise(5000, 1)).expect("w");
    std::fs::write(src.join("SUB/X.TXT"), b"x\n").expect("w");
    std::fs::write(
        src.join("SUB/a long name in sub.txt"),
        common::noise(3000, 2),
    )
    .expect("w");
    std::fs::write(src.join("BAD/Y.TXT"), b"y\n").expect("w");
    std::fs::write(src.join("Forty kilobytes.bin"), common::noise(40_000, 3)).expect("w");
    for i in 0..40 {
        std::fs::write(src.join(format!("many file {i}.txt")), format!("{i}\n")).expect("w");
    }
    let img = dir.join(format!("fat{bits}.img"));
    let _ = std::fs::remove_file(&img);
    let at = img.to_str().expect("utf8");
    tool("mkfs.fat", &["-C", "-F", bits, "-s", "1", at, kib]);
    let s = |p: &str| src.join(p).to_str().expect("utf8").to_string();
    tool("mcopy", &["-i", at, &s("LOOP.BIN"), "::/"]);
    let rest = [s("SUB"), s("BAD"), s("Forty kilobytes.bin")];
    let mut args = vec!["-s", "-i", at];
    args.extend(rest.iter().map(String::as_str));
    args.push("::/");
    tool("mcopy", &args);
    for i in 0..40 {
        tool(
            "mcopy",
            &["-i", at, &s(&format!("many file {i}.txt")), "::/"],
        );
    }
    std::fs::read(&img).expect("read image")
}

fn open(img: &[u8]) -> guestctl_fs::Result<FatFs> {
    let dev: Arc<dyn BlockDevice> = Arc::new(MemoryDevice::new(img.to_vec()));
    FatFs::open(dev, &OpenOptions::default())
}

/// Walks everything reachable (reads of up to 256 KiB per file); returns (nodes, errors).
fn walk_tolerant(fs: &FatFs) -> (usize, usize) {
    let mut seen = HashSet::new();
    let mut stack = vec![fs.root()];
    let (mut nodes, mut errors) = (0usize, 0usize);
    let mut buf = vec![0u8; 256 << 10];
    while let Some(dir) = stack.pop() {
        if !seen.insert(dir) || nodes > 50_000 {
            continue;
        }
        let entries = match fs.read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                let _ = e.to_string();
                errors += 1;
                continue;
            }
        };
        for e in entries {
            nodes += 1;
            match fs.metadata(e.node) {
                Ok(m) if m.file_type == FileType::Directory => stack.push(e.node),
                Ok(m) => {
                    let _ = fs.read_at(e.node, 0, &mut buf).map_err(|_| errors += 1);
                    let _ = fs.read_at(e.node, m.size.saturating_sub(100), &mut buf[..100]);
                }
                Err(_) => errors += 1,
            }
            // Lookups scan the directory: only the first entries, or a 65536-entry garbage
            // directory costs 65536 scans of 2 MiB.
            if nodes % 500 < 20 {
                let _ = fs.lookup(dir, &e.name.to_ascii_uppercase());
            }
        }
    }
    let _ = fs.metadata(NodeId(u64::MAX));
    let _ = fs.metadata(NodeId(3));
    (nodes, errors)
}

/// Geometry read straight from the boot sector (independent of the reader under test).
struct Geo {
    fat32: bool,
    fat_off: usize,
    cluster: usize,
    data_off: usize,
}

fn geo(img: &[u8]) -> Geo {
    let le16 = |o: usize| usize::from(u16::from_le_bytes([img[o], img[o + 1]]));
    let bps = le16(11);
    let fat16 = le16(22);
    let fatsz = if fat16 != 0 {
        fat16
    } else {
        u32::from_le_bytes(img[36..40].try_into().expect("4")) as usize
    };
    let root_bytes = (le16(17) * 32).div_ceil(bps) * bps;
    let fat_off = le16(14) * bps;
    Geo {
        fat32: fat16 == 0,
        fat_off,
        cluster: bps * usize::from(img[13]),
        data_off: fat_off + usize::from(img[16]) * fatsz * bps + root_bytes,
    }
}

/// Sets FAT entry `n` (FAT16/32) in the first FAT copy (the one read).
fn set_fat(img: &mut [u8], g: &Geo, n: usize, v: u32) {
    if g.fat32 {
        img[g.fat_off + 4 * n..g.fat_off + 4 * n + 4].copy_from_slice(&v.to_le_bytes());
    } else {
        img[g.fat_off + 2 * n..g.fat_off + 2 * n + 2].copy_from_slice(&(v as u16).to_le_bytes());
    }
}

/// The device offset of the 8.3 entry named `name11` (first match, 32-byte aligned).
fn find_entry(img: &[u8], g: &Geo, name11: &[u8; 11]) -> usize {
    (g.fat_off..img.len() - 32)
        .step_by(32)
        .find(|&o| &img[o..o + 11] == name11)
        .unwrap_or_else(|| panic!("no entry {}", String::from_utf8_lossy(name11)))
}

fn first_cluster(img: &[u8], entry: usize) -> usize {
    let lo = usize::from(u16::from_le_bytes([img[entry + 26], img[entry + 27]]));
    let hi = usize::from(u16::from_le_bytes([img[entry + 20], img[entry + 21]]));
    (hi << 16) | lo
}

fn flips(base: &[u8], region: usize, count: usize, seed: u64) -> Vec<u8> {
    let mut img = base.to_vec();
    let r = common::noise(count * 9, seed);
    for k in 0..count {
        let pos = u64::from_le_bytes(r[k * 9..k * 9 + 8].try_into().expect("8")) as usize
            % region.min(img.len());
        img[pos] ^= r[k * 9 + 8] | 1;
    }
    img
}

fn torture(bits: &str, kib: &str, iterations: u64) {
    let tmp = tempfile::tempdir().expect("tmp");
    let base = image(tmp.path(), bits, kib);
    let clean = open(&base).expect("clean image opens");
    let (n, e) = walk_tolerant(&clean);
    assert_eq!(e, 0, "clean FAT{bits} image walks without errors");
    assert!(n >= 45, "clean walk sees {n} nodes");
    // Metadata lives before the data area plus the first directory clusters.
    let g = geo(&base);
    let region = g.data_off + 64 * g.cluster;
    let (mut opened, mut worst) = (0, Duration::ZERO);
    for seed in 0..iterations {
        for (what, count, reg) in [
            ("meta", 4, region),
            ("boot", 2, 512),
            ("all", 16, base.len()),
        ] {
            let img = flips(&base, reg, count, seed * 7 + count as u64);
            let t = Instant::now();
            if let Ok(fs) = open(&img) {
                opened += 1;
                walk_tolerant(&fs);
            }
            let el = t.elapsed();
            worst = worst.max(el);
            assert!(
                el < Duration::from_secs(10),
                "FAT{bits} seed {seed} ({what}) took {el:?}"
            );
        }
    }
    eprintln!(
        "FAT{bits}: {} mutated images, {opened} opened, slowest {worst:?}",
        iterations * 3
    );
    assert!(opened > 0);
}

#[test]
fn bit_flips_fat12() {
    torture("12", "1440", 120);
}

#[test]
fn bit_flips_fat16() {
    torture("16", "8000", 120);
}

#[test]
fn bit_flips_fat32() {
    torture("32", "34000", 60);
}

fn hand_made(bits: &str, kib: &str) {
    let tmp = tempfile::tempdir().expect("tmp");
    let base = image(tmp.path(), bits, kib);
    let g = geo(&base);
    let loop_e = find_entry(&base, &g, b"LOOP    BIN");
    let c0 = first_cluster(&base, loop_e);
    assert!(c0 >= 2);

    // 1. A cluster chain loop: the second cluster links back to the first.
    let mut img = base.clone();
    set_fat(&mut img, &g, c0 + 1, c0 as u32);
    let fs = open(&img).expect("open");
    let node = fs.resolve("/LOOP.BIN").expect("resolve");
    let mut buf = vec![0u8; 8192];
    let t = Instant::now();
    let e = fs
        .read_at(node, 0, &mut buf)
        .expect_err("a looping chain is an error");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    let (_, errors) = walk_tolerant(&fs);
    assert!(errors >= 1);
    assert!(fs.resolve("/SUB/X.TXT").is_ok(), "the rest still reads");

    // 2. A chain pointing past the end of the volume.
    let mut img = base.clone();
    let past = if g.fat32 { 0x0FFF_FF00 } else { 0xFFF0 };
    set_fat(&mut img, &g, c0, past);
    let fs = open(&img).expect("open");
    let node = fs.resolve("/LOOP.BIN").expect("resolve");
    let e = fs
        .read_at(node, 0, &mut buf)
        .expect_err("chain past the end");
    assert!(e.to_string().contains("not a data cluster"), "{e}");

    // 3. A directory that contains itself: X.TXT in SUB becomes a directory at SUB's cluster.
    let mut img = base.clone();
    let sub = find_entry(&img, &g, b"SUB        ");
    let sub_c = first_cluster(&img, sub);
    let x = find_entry(&img, &g, b"X       TXT");
    img[x + 11] = 0x10;
    img[x + 26..x + 28].copy_from_slice(&(sub_c as u16).to_le_bytes());
    img[x + 20..x + 22].copy_from_slice(&((sub_c >> 16) as u16).to_le_bytes());
    let fs = open(&img).expect("open");
    let x_node = fs.resolve("/SUB/X.TXT").expect("resolve");
    let inner = fs.read_dir(x_node).expect("read_dir");
    assert!(
        inner.iter().any(|e| e.node == x_node),
        "the self-containing directory lists itself with the same node id (cycles detectable)"
    );
    let t = Instant::now();
    walk_tolerant(&fs);
    assert!(t.elapsed() < Duration::from_secs(5));

    // 4. A 4 GiB - 1 byte file on a tiny volume: the size is shown, reads past the chain fail.
    let mut img = base.clone();
    img[loop_e + 28..loop_e + 32].copy_from_slice(&u32::MAX.to_le_bytes());
    let fs = open(&img).expect("open");
    let node = fs.resolve("/loop.bin").expect("resolve");
    assert_eq!(
        fs.metadata(node).expect("metadata").size,
        u64::from(u32::MAX)
    );
    let t = Instant::now();
    let n = fs
        .read_at(node, 0, &mut buf[..4096])
        .expect("the first cluster reads");
    assert_eq!(&buf[..n], &common::noise(5000, 1)[..n]);
    let e = fs
        .read_at(node, 1 << 31, &mut buf)
        .expect_err("past the chain");
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(t.elapsed() < Duration::from_secs(5));

    // 5. A broken directory (its cluster marked free in the FAT) does not hide the rest.
    let mut img = base.clone();
    let bad = find_entry(&img, &g, b"BAD        ");
    // Its chain continues into cluster 3000, which is free (both volumes use ~100 clusters).
    let bad_c = first_cluster(&img, bad);
    set_fat(&mut img, &g, bad_c, 3000);
    let fs = open(&img).expect("open");
    let bad_node = fs.resolve("/BAD").expect("resolve");
    assert!(fs.read_dir(bad_node).is_err(), "BAD is unreadable");
    let (nodes, errors) = walk_tolerant(&fs);
    assert!(errors >= 1);
    assert!(nodes >= 44, "the rest is listed: {nodes} nodes");
    assert!(fs.resolve("/SUB/a long name in sub.txt").is_ok());
}

#[test]
fn hand_made_damage_fat16() {
    hand_made("16", "8000");
}

#[test]
fn hand_made_damage_fat32() {
    hand_made("32", "34000");
}

#[test]
fn exfat_boot_sector_is_unsupported() {
    let mut img = vec![0u8; 1 << 20];
    img[3..11].copy_from_slice(b"EXFAT   ");
    img[510] = 0x55;
    img[511] = 0xAA;
    let e = open(&img).expect_err("exFAT");
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("exFAT is not supported yet"), "{e}");
}
