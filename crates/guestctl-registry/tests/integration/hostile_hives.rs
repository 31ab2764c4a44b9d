//! Damaged hives: truncated and byte-mutated variants of real hives from ../shared/corpus, a
//! subkey list redirected into a cycle, and a 600-level key chain written by hivex's
//! `hivexregedit` (Debian `libhivex-bin`). Oracle: "no panic, no hang, a named error".

// Tests: a panic with the error is the failure report.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use common::{corpus, read};
use guestctl_registry::{limits, walk, Error, Hive};

fn open_and_walk(bytes: Vec<u8>) -> Option<usize> {
    let h = Hive::from_bytes(bytes).ok()?;
    let _ = h.open("Microsoft\\Windows\\CurrentVersion\\Uninstall");
    let s = walk(&h, true, |_, k, vals| {
        let _ = k.class_name();
        for v in vals {
            let _ = v.as_string();
            let _ = v.as_multi_string();
            let _ = v.as_u64();
        }
    })
    .ok()?;
    for e in &s.errors {
        let text = e.to_string();
        assert!(
            text.contains("offset 0x"),
            "error without an offset: {text}"
        );
    }
    Some(s.keys)
}

#[test]
fn mutated_and_truncated_hives_never_panic_or_hang() {
    let sources = [
        "nt-hive/testdata/testhive",
        "libguestfs/tests/guests/guest-aux/windows-software",
        "libguestfs/tests/guests/guest-aux/windows-system",
        "yarp/hives_for_tests/BigDataHive",
        "yarp/hives_for_tests/ManySubkeysHive",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let start = Instant::now();
    let mut variants = 0;
    for src in sources {
        let orig = read(src);
        assert!(
            open_and_walk(orig.clone()).is_some(),
            "{src} must walk intact"
        );
        // Truncations at cell-ish boundaries.
        for cut in [
            0,
            100,
            4095,
            4096,
            4100,
            4128,
            8191,
            8192,
            orig.len() / 2,
            orig.len() - 1,
        ] {
            let _ = open_and_walk(orig[..cut.min(orig.len())].to_vec());
            variants += 1;
        }
        // Byte mutations, biased toward the structures: each variant changes 1..8 places,
        // writing random bytes or extreme dwords.
        for _ in 0..150 {
            let mut b = orig.clone();
            let changes = 1 + next() % 8;
            for _ in 0..changes {
                let pos = if next() % 4 == 0 {
                    (next() % 4096) as usize
                } else {
                    4096 + (next() as usize % (b.len() - 4096))
                } & !3;
                let v: u32 = match next() % 5 {
                    0 => 0xFFFF_FFFF,
                    1 => 0x7FFF_FFFF,
                    2 => 0x8000_0000,
                    3 => (next() % 0x10000) as u32 & !7,
                    _ => next() as u32,
                };
                if pos + 4 <= b.len() {
                    b[pos..pos + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
            let t = Instant::now();
            let _ = open_and_walk(b);
            assert!(t.elapsed() < Duration::from_secs(5), "{src}: slow variant");
            variants += 1;
        }
    }
    assert_eq!(variants, 5 * 160);
    assert!(start.elapsed() < Duration::from_secs(120));
}

/// Writes `value` at `off` of `b`.
fn put_u32(b: &mut [u8], off: usize, value: u32) {
    b[off..off + 4].copy_from_slice(&value.to_le_bytes());
}

fn get_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

#[test]
fn redirected_subkey_lists_end_in_errors_not_loops() {
    let orig = read("libguestfs/tests/guests/guest-aux/windows-software");
    let h = Hive::from_bytes(orig.clone()).unwrap();
    let uninstall = h
        .open("Microsoft\\Windows\\CurrentVersion\\Uninstall")
        .unwrap()
        .unwrap();
    let test1 = uninstall.subkey("test1").unwrap().unwrap();
    let root = h.root().unwrap();
    let nk = |k: &guestctl_registry::Key<'_>| 4096 + k.cell_offset() as usize + 4;
    // test1 claims Uninstall's list as its own subkeys: the listed keys name another parent.
    let mut b = orig.clone();
    let list = get_u32(&b, nk(&uninstall) + 28);
    put_u32(&mut b, nk(&test1) + 20, 3);
    put_u32(&mut b, nk(&test1) + 28, list);
    let h2 = Hive::from_bytes(b).unwrap();
    let t1 = h2
        .open("Microsoft\\Windows\\CurrentVersion\\Uninstall\\test1")
        .unwrap()
        .unwrap();
    assert!(matches!(
        t1.subkeys(),
        Err(Error::Corrupt {
            structure: "nk",
            ..
        })
    ));
    let s = walk(&h2, true, |_, _, _| {}).unwrap();
    assert!(!s.errors.is_empty());
    // test1 names itself as its parent and lists the root's list, which holds keys whose
    // parent is the root: errors again; and the root listing itself through its own list is
    // caught by the walk's visited set.
    let mut b = orig;
    let root_list = get_u32(&b, nk(&root) + 28);
    put_u32(&mut b, nk(&test1) + 16, test1.cell_offset());
    put_u32(&mut b, nk(&test1) + 20, 1);
    put_u32(&mut b, nk(&test1) + 28, root_list);
    let h3 = Hive::from_bytes(b).unwrap();
    let s = walk(&h3, true, |_, _, _| {}).unwrap();
    assert!(!s.errors.is_empty());
    assert!(s.keys < 100);
}

#[test]
fn key_chain_deeper_than_the_limit() {
    let depth = limits::MAX_DEPTH + 88;
    let mut reg = String::new();
    let mut path = String::new();
    for i in 0..depth {
        path.push_str(&format!("\\k{i}"));
        reg.push_str(&format!("[{path}]\n\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    let hive = dir.path().join("deep");
    std::fs::write(
        &hive,
        std::fs::read(corpus("libguestfs/test-data/phony-guests/minimal-hive")).unwrap(),
    )
    .unwrap();
    let regf = dir.path().join("deep.reg");
    std::fs::write(&regf, reg).unwrap();
    let out = std::process::Command::new("hivexregedit")
        .arg("--merge")
        .arg(&hive)
        .arg(&regf)
        .output()
        .expect("run hivexregedit (apt-get install libhivex-bin)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h = Hive::from_bytes(std::fs::read(&hive).unwrap()).unwrap();
    // Within the limit: found.
    let ok: Vec<String> = (0..limits::MAX_DEPTH).map(|i| format!("k{i}")).collect();
    assert_eq!(
        h.open(&ok.join("\\")).unwrap().unwrap().name(),
        format!("k{}", limits::MAX_DEPTH - 1)
    );
    // Past it: a limit error, not a stack overflow.
    let deep: Vec<String> = (0..depth).map(|i| format!("k{i}")).collect();
    assert!(matches!(h.open(&deep.join("\\")), Err(Error::Limit { .. })));
    let s = walk(&h, false, |_, _, _| {}).unwrap();
    assert_eq!(s.keys, limits::MAX_DEPTH + 1);
    assert_eq!(s.errors.len(), 1);
    assert!(matches!(
        s.errors[0],
        Error::Limit {
            what: "key depth",
            ..
        }
    ));
}
