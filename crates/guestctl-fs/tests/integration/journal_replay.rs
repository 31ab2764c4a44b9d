//! JBD2 replay against e2fsprogs as the oracle.
//!
//! Each case makes an ext3/ext4 image with `mke2fs -d`, leaves a dirty journal in it with
//! debugfs's journal commands (committed transactions, an escaped block, an overriding copy, a
//! revoke and a torn last transaction), then compares two copies of the image block by block:
//! one with our overlay applied, one replayed by `e2fsck -E journal_only`. Only the ext4
//! superblock and the journal's own blocks may differ (e2fsck updates and resets those).
//!
//! The e2fsprogs tools are required: a missing tool or debugfs command fails the test with a
//! message, never skips it.

use std::path::{Path, PathBuf};
use std::process::Command;

use guestctl_fs::ext::journal::{read_copy, replay_bytes, JournalSource, MemJournal, JBD2_MAGIC};

fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("{name} (e2fsprogs >= 1.47) is required by this test; install e2fsprogs")
    })
}

/// Runs a tool, panicking with its output unless it exits with one of `ok_codes`.
fn run(name: &str, args: &[&str], ok_codes: &[i32]) -> String {
    let out = Command::new(tool(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {name}: {e}"));
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        ok_codes.contains(&code),
        "{name} {args:?} exited {code}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout + &stderr
}

fn debugfs(img: &Path, request: &str) -> String {
    run("debugfs", &["-R", request, path(img)], &[0])
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Deterministic filler so every journalled block differs from what is on disk.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

struct Case {
    name: &'static str,
    mkfs: &'static str,
    mkfs_args: &'static [&'static str],
    block_size: usize,
    /// Arguments of the first `journal_open`.
    open: &'static str,
    /// Words `dumpe2fs -h` must show on the "Journal features:" line once the journal is dirty.
    journal_features: &'static [&'static str],
    /// Words it must not show.
    journal_absent: &'static [&'static str],
    /// debugfs 1.47.0 computes the v1 (`journal_checksum`, crc32) commit checksum over the
    /// revoke block too, which the kernel and e2fsck's recovery do not: e2fsck reports
    /// "Journal transaction 3 was corrupt, replay was aborted" and so must we.
    revoke_txn_rejected: bool,
    /// Rotate the log inside the journal so that it wraps from its last block to `s_first`
    /// (debugfs always starts the log at block 1).
    wrap: bool,
}

fn check(case: &Case) {
    let bs = case.block_size;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let content = d.join("content");
    std::fs::create_dir_all(content.join("etc")).expect("mkdir");
    std::fs::write(content.join("a.txt"), "hello\n").expect("write");
    std::fs::write(content.join("etc/big.bin"), noise(7, 200_000)).expect("write");

    // 1. The filesystem.
    let img = d.join("fs.img");
    let mut args = vec!["-q", "-F", "-b"];
    let bs_s = bs.to_string();
    args.push(&bs_s);
    args.extend_from_slice(case.mkfs_args);
    args.extend_from_slice(&["-d", path(&content), path(&img), "64M"]);
    run(case.mkfs, &args, &[0]);
    let fs_blocks = (64 << 20) / bs as u64;
    let original = std::fs::read(&img).expect("read image");
    assert_eq!(original.len() as u64, fs_blocks * bs as u64);

    // 2. The transactions. debugfs's journal_write reads the blocks from a file, in order.
    let help = debugfs(&img, "help");
    for cmd in ["journal_open", "journal_write", "journal_close"] {
        assert!(
            help.contains(cmd),
            "debugfs lacks `{cmd}` (e2fsprogs >= 1.43 needed):\n{help}"
        );
    }
    let a_block: u64 = debugfs(&img, "bmap /a.txt 0")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next()
        .expect("bmap /a.txt 0 printed a block number");
    let t = fs_blocks / 2 + 10;
    let blocks = |seed: u64, n: usize, magic_at: &[usize]| {
        let mut v = noise(seed, n * bs);
        for &i in magic_at {
            v[i * bs..i * bs + 4].copy_from_slice(&JBD2_MAGIC.to_be_bytes());
        }
        v
    };
    let d1 = blocks(1, 3, &[1]); // t, t+1 (escaped), t+2
    let d2 = blocks(2, 2, &[0]); // t+1 (escaped again), t+3
    let mut d3 = blocks(3, 2, &[]); // a.txt's block, t+4
    d3[..bs].fill(0);
    d3[..6].copy_from_slice(b"HELLO\n");
    let d4 = blocks(4, 2, &[]); // t+5, t+3: never committed
    for (name, data) in [("d1", &d1), ("d2", &d2), ("d3", &d3), ("d4", &d4)] {
        std::fs::write(d.join(name), data).expect("write data");
    }
    let f = |n: &str| d.join(n).to_str().expect("utf-8").to_owned();
    // journal_close + journal_open between transactions: debugfs 1.47.0 otherwise places the
    // next transaction over the commit block of one that has a revoke block (csum v3).
    let script = format!(
        "jo {open}\n\
         jw -b {t},{t1},{t2} {d1}\n\
         jc\njo\n\
         jw -b {t1},{t3} {d2}\n\
         jc\njo\n\
         jw -b {a_block},{t4} -r {t} {d3}\n\
         jc\njo\n\
         jw -b {t5},{t3} -c {d4}\n\
         jc\n",
        open = case.open,
        t1 = t + 1,
        t2 = t + 2,
        t3 = t + 3,
        t4 = t + 4,
        t5 = t + 5,
        d1 = f("d1"),
        d2 = f("d2"),
        d3 = f("d3"),
        d4 = f("d4"),
    );
    std::fs::write(d.join("cmds"), &script).expect("write script");
    let out = run("debugfs", &["-w", "-f", &f("cmds"), path(&img)], &[0]);
    assert!(
        !out.contains("Unknown") && !out.contains("rror"),
        "debugfs complained:\n{out}"
    );
    let header = run("dumpe2fs", &["-h", path(&img)], &[0]);
    assert!(
        header.contains("needs_recovery"),
        "debugfs left no dirty journal:\n{header}"
    );
    let features = header
        .lines()
        .find(|l| l.starts_with("Journal features:"))
        .unwrap_or_default();
    for want in case.journal_features {
        assert!(
            features.split_whitespace().any(|w| w == *want),
            "{}: journal should have {want}: {features}",
            case.name
        );
    }
    for absent in case.journal_absent {
        assert!(
            !features.split_whitespace().any(|w| w == *absent),
            "{}: journal should not have {absent}: {features}",
            case.name
        );
    }

    if case.wrap {
        rotate_log(&img, bs);
    }
    let dirty = std::fs::read(&img).expect("read dirty image");

    // 3. Our replay of the journal inode's bytes.
    let journal = dump_journal(&img);
    assert!(!journal.is_empty(), "debugfs dumped an empty journal");
    let replay = replay_bytes(&journal, fs_blocks)
        .unwrap_or_else(|e| panic!("{}: replay failed: {e}", case.name))
        .unwrap_or_else(|| panic!("{}: journal reported clean", case.name));
    let keys: Vec<u64> = replay.blocks.keys().copied().collect();
    let mut expect = if case.revoke_txn_rejected {
        vec![t, t + 1, t + 2, t + 3]
    } else {
        vec![t + 1, t + 2, t + 3, t + 4, a_block]
    };
    expect.sort_unstable();
    assert_eq!(keys, expect, "{}: replayed blocks ({replay:?})", case.name);
    let (transactions, note) = if case.revoke_txn_rejected {
        (2, "fails its checksum")
    } else {
        (3, "never committed")
    };
    assert_eq!(replay.transactions, transactions, "{}", case.name);
    assert!(
        replay.blocks[&(t + 1)].escaped,
        "{}: escape flag",
        case.name
    );
    assert!(
        replay.notes.iter().any(|n| n.contains(note)),
        "{}: notes should say {note:?}: {:?}",
        case.name,
        replay.notes
    );

    let ours = apply(&dirty, &journal, &replay);
    assert_ne!(ours, dirty, "the overlay changed nothing");
    let at = |b: u64| range(b, bs);
    assert_eq!(&ours[at(t + 1)], &d2[..bs], "newest copy of t+1, unescaped");
    assert_eq!(
        &ours[at(t + 3)],
        &d2[bs..],
        "t+3 from the committed transaction"
    );
    if !case.revoke_txn_rejected {
        assert_eq!(&ours[at(t)], &original[at(t)], "revoked block untouched");
    }

    // 4. The oracle: e2fsck replays the journal and does nothing else.
    let differ = differs_from_e2fsck(&img, &dirty, &ours, journal.len(), bs);
    assert!(
        differ.is_empty(),
        "{}: blocks differ from e2fsck's replay: {differ:?} (overlay {keys:?})",
        case.name
    );

    // 5. What a reader sees: the journalled file contents.
    let ours_path = d.join("ours.img");
    std::fs::write(&ours_path, &ours).expect("write ours");
    let cat = Command::new(tool("debugfs"))
        .args(["-R", "cat /a.txt", path(&ours_path)])
        .output()
        .expect("debugfs cat");
    let want = if case.revoke_txn_rejected {
        "hello\n"
    } else {
        "HELLO\n"
    };
    assert_eq!(String::from_utf8_lossy(&cat.stdout), want, "{}", case.name);
}

fn dump_journal(img: &Path) -> Vec<u8> {
    let out = img.with_extension("journal");
    debugfs(img, &format!("dump <8> {}", path(&out)));
    let journal = std::fs::read(&out).expect("read journal");
    assert!(!journal.is_empty(), "debugfs dumped an empty journal");
    journal
}

/// Logical journal block → its home, from the BLOCKS / EXTENTS lines of `stat <8>`
/// (`(0-11):786-797, (IND):798, (12-267):799-1054, ...`; index blocks skipped).
fn journal_map(img: &Path) -> Vec<u64> {
    let stat = debugfs(img, "stat <8>");
    let mut map = Vec::new();
    for entry in stat.split([',', '\n', ' ']).filter(|e| e.starts_with('(')) {
        let Some((label, phys)) = entry[1..].split_once("):") else {
            continue;
        };
        let parse = |r: &str| -> Option<(u64, u64)> {
            match r.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => r.parse().ok().map(|a| (a, a)),
            }
        };
        let (Some((l0, l1)), Some((p0, p1))) = (parse(label), parse(phys)) else {
            continue; // (IND), (DIND), (ETB0) ...
        };
        assert_eq!(l1 - l0, p1 - p0, "odd stat entry {entry}");
        assert_eq!(l0, map.len() as u64, "journal has a hole at {l0}: {stat}");
        map.extend(p0..=p1);
    }
    map
}

/// Every block of the journal inode (data and index blocks).
fn journal_blocks(img: &Path) -> Vec<u64> {
    debugfs(img, "blocks <8>")
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// Rotates the log area of the image's journal so that the log starts two blocks before its
/// end and wraps to `s_first`, and writes the journal back in place. Positions are not covered
/// by any journal checksum; the superblock's is recomputed.
fn rotate_log(img: &Path, bs: usize) {
    let be32 = |b: &[u8], o: usize| u32::from_be_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let journal = dump_journal(img);
    let (maxlen, first, start) = (
        be32(&journal, 0x10) as u64,
        be32(&journal, 0x14) as u64,
        be32(&journal, 0x1C) as u64,
    );
    let len = maxlen - first;
    let k = len - 2;
    let moved = |p: u64| first + (p - first + k) % len;
    let mut rotated = journal.clone();
    for p in first..maxlen {
        rotated[range(moved(p), bs)].copy_from_slice(&journal[range(p, bs)]);
    }
    rotated[0x1C..0x20].copy_from_slice(&(moved(start) as u32).to_be_bytes());
    if be32(&journal, 0x28) & (0x8 | 0x10) != 0 {
        rotated[0xFC..0x100].fill(0);
        let csum = !crc32c::crc32c(&rotated[..1024]);
        rotated[0xFC..0x100].copy_from_slice(&csum.to_be_bytes());
    }
    let map = journal_map(img);
    assert_eq!(
        map.len(),
        journal.len() / bs,
        "stat <8> maps the whole journal"
    );
    let mut image = std::fs::read(img).expect("read image");
    for (i, &home) in map.iter().take(journal.len() / bs).enumerate() {
        image[range(home, bs)].copy_from_slice(&rotated[range(i as u64, bs)]);
    }
    std::fs::write(img, &image).expect("write image");
    assert!(
        dump_journal(img) == rotated,
        "journal written back in the wrong place"
    );
    let logdump = debugfs(img, "logdump");
    assert!(
        logdump.contains(&format!("Journal starts at block {}", maxlen - 2)),
        "{logdump}"
    );
}

fn range(block: u64, bs: usize) -> std::ops::Range<usize> {
    block as usize * bs..(block as usize + 1) * bs
}

/// `original` with every journalled copy of `replay` written over it.
fn apply(original: &[u8], journal: &[u8], replay: &guestctl_fs::ext::journal::Replay) -> Vec<u8> {
    let src = MemJournal::new(journal).expect("journal");
    let bs = src.block_size();
    let mut ours = original.to_vec();
    let mut buf = vec![0u8; bs];
    for (&fs_block, copy) in &replay.blocks {
        read_copy(&src, copy, &mut buf).expect("read copy");
        ours[range(fs_block, bs)].copy_from_slice(&buf);
    }
    ours
}

/// Replays a copy of `img` with `e2fsck -E journal_only` and returns the blocks where it
/// differs from `ours`, leaving out the ext4 superblock (bytes 1024..2048) and the journal
/// inode's blocks, which e2fsck updates and resets.
fn differs_from_e2fsck(
    img: &Path,
    original: &[u8],
    ours: &[u8],
    journal_len: usize,
    bs: usize,
) -> Vec<u64> {
    let theirs_path = img.with_extension("e2fsck.img");
    std::fs::copy(img, &theirs_path).expect("copy image");
    run(
        "e2fsck",
        &["-y", "-E", "journal_only", path(&theirs_path)],
        &[0, 1],
    );
    let theirs = std::fs::read(&theirs_path).expect("read replayed image");
    assert_eq!(theirs.len(), ours.len());
    assert_ne!(theirs, original, "e2fsck replayed nothing");
    let after = run("dumpe2fs", &["-h", path(&theirs_path)], &[0]);
    assert!(
        !after.contains("needs_recovery"),
        "e2fsck -E journal_only left the journal dirty"
    );
    let mut skip = journal_blocks(img);
    assert!(
        skip.len() >= journal_len / bs,
        "blocks <8> listed {} blocks for a {journal_len}-byte journal",
        skip.len(),
    );
    skip.push(1024 / bs as u64);
    skip.sort_unstable();
    (0..(ours.len() / bs) as u64)
        .filter(|&b| skip.binary_search(&b).is_err() && ours[range(b, bs)] != theirs[range(b, bs)])
        .collect()
}

/// A data block whose csum v3 tag checksum fails is skipped, as e2fsck does ("JBD2: Invalid
/// checksum recovering data block"), and the rest of its transaction is replayed.
#[test]
fn ext4_csum_v3_bad_data_block_is_skipped_like_e2fsck() {
    let bs = 4096;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let img = d.join("fs.img");
    run(
        "mkfs.ext4",
        &["-q", "-F", "-b", "4096", path(&img), "64M"],
        &[0],
    );
    std::fs::write(d.join("data"), noise(11, 2 * bs)).expect("write data");
    let data = d.join("data");
    let script = format!(
        "jo -c -v 3\njw -b 3000 {data}\njc\njo\njw -b 3001,3002 {data}\njc\n",
        data = path(&data)
    );
    std::fs::write(d.join("cmds"), script).expect("write script");
    run(
        "debugfs",
        &["-w", "-f", path(&d.join("cmds")), path(&img)],
        &[0],
    );
    // Log: 1 descriptor, 2 data (3000), 3 commit, 4 descriptor, 5 data (3001), 6 data (3002).
    let logdump = debugfs(&img, "logdump");
    assert!(
        logdump.contains("type 1 (descriptor block) at block 4")
            && logdump.contains("type 2 (commit block) at block 7"),
        "unexpected journal layout:\n{logdump}"
    );
    let home: u64 = debugfs(&img, "bmap <8> 6")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next()
        .expect("bmap <8> 6 printed a block number");
    let mut image = std::fs::read(&img).expect("read image");
    image[home as usize * bs + 100] ^= 1;
    std::fs::write(&img, &image).expect("write image");

    let journal = dump_journal(&img);
    let replay = replay_bytes(&journal, (image.len() / bs) as u64)
        .expect("replay")
        .expect("dirty");
    assert_eq!(
        replay.blocks.keys().copied().collect::<Vec<_>>(),
        [3000, 3001]
    );
    assert_eq!(replay.transactions, 2);
    assert!(
        replay.notes.iter().any(|n| n.contains("block 3002")),
        "{:?}",
        replay.notes
    );
    let ours = apply(&image, &journal, &replay);
    let differ = differs_from_e2fsck(&img, &image, &ours, journal.len(), bs);
    assert!(
        differ.is_empty(),
        "blocks differ from e2fsck's replay: {differ:?}"
    );
}

#[test]
fn ext4_4k_metadata_csum_journal_csum_v3() {
    check(&Case {
        name: "ext4 4k csum v3",
        mkfs: "mkfs.ext4",
        mkfs_args: &[],
        block_size: 4096,
        open: "-c -v 3",
        journal_features: &["journal_64bit", "journal_checksum_v3"],
        journal_absent: &[],
        revoke_txn_rejected: false,
        wrap: false,
    });
}

#[test]
fn ext4_1k_metadata_csum_journal_csum_v2() {
    check(&Case {
        name: "ext4 1k csum v2",
        mkfs: "mkfs.ext4",
        mkfs_args: &[],
        block_size: 1024,
        open: "-c -v 2",
        journal_features: &["journal_64bit", "journal_checksum_v2"],
        journal_absent: &[],
        revoke_txn_rejected: false,
        wrap: false,
    });
}

#[test]
fn ext4_4k_without_checksums() {
    check(&Case {
        name: "ext4 4k no csum",
        mkfs: "mkfs.ext4",
        mkfs_args: &["-O", "^metadata_csum"],
        block_size: 4096,
        open: "",
        journal_features: &["journal_incompat_revoke", "journal_64bit"],
        journal_absent: &[
            "journal_checksum",
            "journal_checksum_v2",
            "journal_checksum_v3",
        ],
        revoke_txn_rejected: false,
        wrap: false,
    });
}

#[test]
fn ext3_1k_32bit_tags() {
    check(&Case {
        name: "ext3 1k",
        mkfs: "mkfs.ext3",
        mkfs_args: &[],
        block_size: 1024,
        open: "",
        journal_features: &["journal_incompat_revoke"],
        journal_absent: &["journal_64bit", "journal_checksum"],
        revoke_txn_rejected: false,
        wrap: false,
    });
}

#[test]
fn ext3_1k_journal_checksum_v1() {
    check(&Case {
        name: "ext3 1k csum v1",
        mkfs: "mkfs.ext3",
        mkfs_args: &[],
        block_size: 1024,
        open: "-c",
        journal_features: &["journal_checksum", "journal_incompat_revoke"],
        journal_absent: &[
            "journal_64bit",
            "journal_checksum_v2",
            "journal_checksum_v3",
        ],
        revoke_txn_rejected: true,
        wrap: false,
    });
}

#[test]
fn ext4_4k_csum_v3_log_wraps() {
    check(&Case {
        name: "ext4 4k csum v3 wrapped",
        mkfs: "mkfs.ext4",
        mkfs_args: &[],
        block_size: 4096,
        open: "-c -v 3",
        journal_features: &["journal_64bit", "journal_checksum_v3"],
        journal_absent: &[],
        revoke_txn_rejected: false,
        wrap: true,
    });
}

#[test]
fn ext3_1k_log_wraps() {
    check(&Case {
        name: "ext3 1k wrapped",
        mkfs: "mkfs.ext3",
        mkfs_args: &[],
        block_size: 1024,
        open: "",
        journal_features: &["journal_incompat_revoke"],
        journal_absent: &["journal_64bit", "journal_checksum"],
        revoke_txn_rejected: false,
        wrap: true,
    });
}
