//! Hostile images: random bit flips in the metadata of real ext2/3/4 images. Whatever the
//! damage, opening and walking must end (no panic, no hang) with data or errors, and one bad
//! node must not hide the rest.

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use guestctl_block::{BlockDevice, MemoryDevice};
use guestctl_fs::{ext::ExtFs, FileType, Filesystem, NodeId, OpenOptions};

/// Walks everything reachable, reading at most 256 KiB per file; returns (nodes, errors).
fn walk_tolerant(fs: &ExtFs) -> (usize, usize) {
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
            let _ = fs.xattrs(e.node).map_err(|_| errors += 1);
            match fs.metadata(e.node) {
                Ok(m) if m.file_type == FileType::Directory => stack.push(e.node),
                Ok(m) if m.file_type == FileType::Symlink => {
                    let _ = fs.read_link(e.node).map_err(|_| errors += 1);
                }
                Ok(m) if m.file_type == FileType::Regular => {
                    let _ = fs.read_at(e.node, 0, &mut buf).map_err(|_| errors += 1);
                    let _ = fs.read_at(e.node, m.size.saturating_sub(100), &mut buf[..100]);
                }
                Ok(_) => {}
                Err(_) => errors += 1,
            }
            let mut p = b"/".to_vec();
            p.extend_from_slice(&e.name);
            let _ = guestctl_fs::resolve_path(fs, &p, true);
        }
    }
    let _ = fs.metadata(NodeId(u64::MAX));
    (nodes, errors)
}

fn flips(base: &[u8], region: usize, count: usize, seed: u64) -> Vec<u8> {
    let mut img = base.to_vec();
    let r = noise(count * 9, seed);
    for k in 0..count {
        let pos = u64::from_le_bytes(r[k * 9..k * 9 + 8].try_into().expect("8")) as usize
            % region.min(img.len());
        img[pos] ^= r[k * 9 + 8] | 1;
    }
    img
}

fn torture(kind: &str, opts: &[&str], iterations: u64) {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    build_tree(&src, 300);
    // Keep the image small so the metadata region is most of what gets hit.
    std::fs::remove_file(src.join("sizes/f3000000")).expect("rm");
    std::fs::remove_dir_all(src.join("sparse")).expect("rm");
    let img = mkfs(tmp.path(), "fs.img", kind, opts, &src, "8M");
    let base = std::fs::read(&img).expect("read");
    let clean = ExtFs::open(
        Arc::new(MemoryDevice::new(base.clone())),
        &OpenOptions::default(),
    )
    .expect("clean");
    let (clean_nodes, clean_errors) = walk_tolerant(&clean);
    assert!(
        clean_nodes > 300 && clean_errors == 0,
        "{clean_nodes} {clean_errors}"
    );
    let region = 1 << 20; // superblock, descriptors, bitmaps, inode tables, first directories
    let mut opened = 0;
    let mut partial = 0;
    for i in 0..iterations {
        let bad = flips(&base, region, 1 + (i % 16) as usize, i + 1);
        let dev: Arc<dyn BlockDevice> = Arc::new(MemoryDevice::new(bad));
        let t = Instant::now();
        for verify in [false, true] {
            let Ok(fs) = ExtFs::open(
                dev.clone(),
                &OpenOptions::default().verify_checksums(verify),
            ) else {
                continue;
            };
            opened += 1;
            let (nodes, errors) = walk_tolerant(&fs);
            if errors > 0 && nodes > clean_nodes / 2 {
                partial += 1;
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "iteration {i} took {:?}",
            t.elapsed()
        );
    }
    // Most damaged images still open; some of those have errors and still list most nodes.
    assert!(
        opened > iterations as usize / 2,
        "only {opened} of {iterations} opened"
    );
    eprintln!("{kind} {opts:?}: {opened} opened, {partial} partially readable with errors");
}

#[test]
fn bit_flips_ext4() {
    torture("ext4", &["-b", "1024"], 300);
}

#[test]
fn bit_flips_ext4_no_csum() {
    torture("ext4", &["-O", "^metadata_csum", "-b", "1024"], 300);
}

#[test]
fn bit_flips_ext2_block_maps() {
    torture("ext2", &["-b", "1024"], 300);
}

#[test]
fn bit_flips_ext4_inline() {
    torture("ext4", &["-O", "inline_data,^metadata_csum"], 200);
}
