//! Dirty journals made with debugfs (`jo`/`jw`/`jc`: committed, revoked and uncommitted
//! transactions, with and without journal checksums) against e2fsck's replay as the oracle:
//! our overlay applied to a copy must equal e2fsck's replayed copy block for block (except
//! the superblock and the journal itself, which e2fsck rewrites), and ExtFs must read the
//! replayed state without ever writing the image.

use crate::common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use guestctl_block::{BlockDevice, RawFile};
use guestctl_fs::ext::journal::replay_bytes;
use guestctl_fs::ext::ExtFs;
use guestctl_fs::{Filesystem, OpenOptions};
use sha2::{Digest, Sha256};

fn debugfs_r(img: &Path, cmd: &str) -> String {
    run("debugfs", &["-R", cmd, img.to_str().expect("u")])
}

fn numbers(s: &str) -> Vec<u64> {
    s.split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

fn field(img: &Path, name: &str) -> u64 {
    let out = run("dumpe2fs", &["-h", img.to_str().expect("u")]);
    out.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .map(|v| v.trim_start_matches(':').trim().to_string())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("dumpe2fs has no {name}"))
}

struct Dirty {
    _tmp: tempfile::TempDir,
    img: std::path::PathBuf,
    bs: u64,
    file_block: u64,
    free: u64,
}

/// An image whose journal holds: T1 = new contents for /a's data block; T2 = two free blocks
/// X, X+1; T3 = revoke X; T4 = X+2 (uncommitted). debugfs's `jw` needs whole-block files.
fn dirty(mkfs_kind: &str, mkfs_opts: &[&str], jo: &str) -> Dirty {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("d")).expect("mkdir");
    std::fs::write(src.join("a"), b"hello\n").expect("w");
    for i in 0..50 {
        std::fs::write(src.join(format!("d/f{i}")), format!("{i}\n")).expect("w");
    }
    let img = mkfs(tmp.path(), "fs.img", mkfs_kind, mkfs_opts, &src, "32M");
    let bs = field(&img, "Block size");
    let blocks = field(&img, "Block count");
    let file_block = numbers(&debugfs_r(&img, "blocks /a"))[0];
    let free = blocks - 20;
    let mut d1 = b"NEWDATA\n".to_vec();
    d1.resize(bs as usize, 0);
    let d2 = noise(2 * bs as usize, 5);
    let d3 = noise(bs as usize, 6);
    let p = |n: &str| tmp.path().join(n);
    std::fs::write(p("d1"), &d1).expect("w");
    std::fs::write(p("d2"), &d2).expect("w");
    std::fs::write(p("d3"), &d3).expect("w");
    let script = format!(
        "jo {jo}\njw -b {file_block} {}\njw -b {},{} {}\njw -r {free} /dev/null\njw -b {} -c {}\njc\n",
        p("d1").display(),
        free,
        free + 1,
        p("d2").display(),
        free + 2,
        p("d3").display()
    );
    std::fs::write(p("cmds"), script).expect("w");
    run(
        "debugfs",
        &[
            "-w",
            "-f",
            p("cmds").to_str().expect("u"),
            img.to_str().expect("u"),
        ],
    );
    let features = run("dumpe2fs", &["-h", img.to_str().expect("u")]);
    assert!(
        features.contains("needs_recovery"),
        "debugfs left no dirty journal:\n{features}"
    );
    Dirty {
        _tmp: tmp,
        img,
        bs,
        file_block,
        free,
    }
}

fn check_against_e2fsck(d: &Dirty) {
    let dir = d.img.parent().expect("dir");
    let blocks = field(&d.img, "Block count");
    let journal = dir.join("journal.bin");
    debugfs_r(&d.img, &format!("dump <8> {}", journal.display()));
    let jbytes = std::fs::read(&journal).expect("journal dump");
    let r = replay_bytes(&jbytes, blocks)
        .expect("replay")
        .expect("dirty");
    assert_eq!(r.transactions, 3, "{:?}", r.notes);
    assert!(r.blocks.contains_key(&d.file_block));
    assert!(r.blocks.contains_key(&(d.free + 1)));
    assert!(!r.blocks.contains_key(&d.free), "revoked block replayed");
    assert!(
        !r.blocks.contains_key(&(d.free + 2)),
        "uncommitted block replayed"
    );

    // Ours: the overlay applied to a copy.
    let ours = dir.join("ours.img");
    std::fs::copy(&d.img, &ours).expect("copy");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&ours)
            .expect("open");
        let bs = d.bs as usize;
        for (fsb, c) in &r.blocks {
            let mut b =
                jbytes[c.journal_block as usize * bs..(c.journal_block as usize + 1) * bs].to_vec();
            if c.escaped {
                b[..4].copy_from_slice(&0xC03B_3998u32.to_be_bytes());
            }
            f.write_all_at(&b, fsb * d.bs).expect("write");
        }
    }
    // The oracle: e2fsck replays the journal only.
    let theirs = dir.join("e2fsck.img");
    std::fs::copy(&d.img, &theirs).expect("copy");
    let st = std::process::Command::new("e2fsck")
        .args(["-y", "-E", "journal_only"])
        .arg(&theirs)
        .output()
        .expect("e2fsck");
    assert!(
        st.status.code().unwrap_or(8) <= 1,
        "e2fsck: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let skip: std::collections::HashSet<u64> = numbers(&debugfs_r(&d.img, "blocks <8>"))
        .into_iter()
        .chain([1024 / d.bs])
        .collect();
    let a = std::fs::read(&ours).expect("read");
    let b = std::fs::read(&theirs).expect("read");
    assert_eq!(a.len(), b.len());
    let bs = d.bs as usize;
    let differ: Vec<u64> = (0..a.len() / bs)
        .filter(|&i| a[i * bs..(i + 1) * bs] != b[i * bs..(i + 1) * bs])
        .map(|i| i as u64)
        .filter(|i| !skip.contains(i))
        .collect();
    assert!(
        differ.is_empty(),
        "blocks differing from e2fsck's replay: {differ:?}"
    );
    // And the replay changed something (the test can fail).
    assert_ne!(std::fs::read(&d.img).expect("read"), b);
}

fn sha(p: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(p).expect("read")))
}

fn check_reader(d: &Dirty) {
    let before = sha(&d.img);
    let dev: Arc<dyn BlockDevice> = Arc::new(RawFile::open(&d.img).expect("open"));
    let fs = ExtFs::open(dev.clone(), &OpenOptions::default()).expect("open dirty fs");
    let mut buf = [0u8; 16];
    let a = fs.resolve("/a").expect("a");
    let n = fs.read_at(a, 0, &mut buf).expect("read");
    assert_eq!(
        &buf[..n],
        b"NEWDAT",
        "the journal's copy of /a's block is read"
    );
    assert!(
        fs.info()
            .notes
            .iter()
            .any(|n| n.contains("journal replayed")),
        "{:?}",
        fs.info().notes
    );
    assert_eq!(
        fs.read_dir(fs.resolve("/d").expect("d")).expect("d").len(),
        50
    );
    let raw = ExtFs::open(dev, &OpenOptions::default().replay_journal(false))
        .expect("open without replay");
    let n = raw
        .read_at(raw.resolve("/a").expect("a"), 0, &mut buf)
        .expect("read");
    assert_eq!(&buf[..n], b"hello\n");
    assert!(raw
        .info()
        .notes
        .iter()
        .any(|n| n.contains("replay is turned off")));
    assert_eq!(sha(&d.img), before, "the image was modified");
}

#[test]
fn ext4_4k_journal_no_checksums() {
    let d = dirty("ext4", &["-b", "4096"], "");
    check_against_e2fsck(&d);
    check_reader(&d);
}

#[test]
fn ext4_journal_csum_v3() {
    let d = dirty("ext4", &["-b", "4096"], "-c -v 3");
    let h = run("dumpe2fs", &["-h", d.img.to_str().expect("u")]);
    assert!(h.contains("journal_checksum_v3"), "{h}");
    check_against_e2fsck(&d);
    check_reader(&d);
}

#[test]
fn ext4_journal_csum_v2() {
    let d = dirty("ext4", &["-b", "4096"], "-c -v 2");
    check_against_e2fsck(&d);
    check_reader(&d);
}

#[test]
fn ext3_1k_journal() {
    let d = dirty("ext3", &["-b", "1024"], "");
    check_against_e2fsck(&d);
    check_reader(&d);
}
