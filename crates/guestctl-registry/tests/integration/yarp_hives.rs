//! yarp's malformed and edge-case hives (../shared/corpus/yarp/hives_for_tests).
//!
//! Every file (logs and empty files included) is opened and, when it opens, walked with all
//! value data read: no panic, under 5 s each. Hives that yarp's `test_cases.py` reads without
//! complaint must walk without a single error; hives it rejects (`WalkException`,
//! `ParseException`, truncated) must give errors here too. Specific statements of
//! `test_cases.py` are checked one by one below (the test each comes from is named).
//!
//! Deliberate difference: `BadBaseBlockHive` (bad checksum, minor version 1) is read with
//! the current cell format and walks completely; yarp refuses its cells until the log is
//! applied.

// Tests: a panic with the error is the failure report.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{corpus, filetime_civil};
use guestctl_registry::{walk, Hive, ValueType};

fn yarp(rel: &str) -> Hive {
    let p = corpus(&format!("yarp/hives_for_tests/{rel}"));
    Hive::from_bytes(std::fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Hives yarp (or its file names) says are broken: their walk must report errors.
const BROKEN: &[&str] = &[
    "BadListHive",              // test_bad_list: WalkException
    "BadSubkeyHive",            // test_bad_subkey: WalkException
    "DuplicateSubkeysHive",     // test_duplicate_subkeys: WalkException
    "InvalidParentHive",        // test_invalid_parent: WalkException
    "WrongOrderHive",           // test_wrong_order: WalkException (twice)
    "TruncatedNameHive",        // test_truncated_name: ParseException
    "TruncatedHive",            // test_truncated: needs RegistryHiveTruncated
    "TruncatedDirtyHive",       // truncated, as its name says
    "DeletedDataHiveTruncated", // truncated, as its name says
];

/// Files that are not primary hive files: opening must fail with an error.
const NOT_HIVES: &[&str] = &[
    "InvalidParentFragment", // a hive bin without a base block
    "TruncatedHiveBin",      // 1024 bytes
    "OldLogWithRemnantData", // a transaction log
];

#[test]
fn every_yarp_file_opens_and_walks_within_bounds() {
    let dir = corpus("yarp/hives_for_tests");
    let mut all = Vec::new();
    files(&dir, &mut all);
    all.sort();
    assert!(
        all.len() >= 81,
        "expected yarp's 81+ files, found {}",
        all.len()
    );
    let mut walked = 0;
    for p in &all {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let rel = p.strip_prefix(&dir).unwrap().to_string_lossy().to_string();
        let t = Instant::now();
        let bytes = std::fs::read(p).unwrap();
        let opened = Hive::from_bytes(bytes);
        let is_log = name.to_ascii_uppercase().contains(".LOG");
        match opened {
            Err(e) => {
                assert!(
                    is_log
                        || NOT_HIVES.contains(&name.as_str())
                        || p.metadata().unwrap().len() == 0,
                    "{rel}: unexpected open error: {e}"
                );
                // Errors name the structure and an offset.
                assert!(e.to_string().contains("offset 0x"), "{rel}: {e}");
            }
            Ok(h) => {
                assert!(!is_log, "{rel}: a log file opened as a hive");
                assert!(!NOT_HIVES.contains(&name.as_str()), "{rel}: opened");
                let s = walk(&h, true, |_, _, vals| {
                    for v in vals {
                        let _ = v.as_string();
                        let _ = v.as_multi_string();
                        let _ = v.as_u64();
                    }
                })
                .unwrap_or_else(|e| panic!("{rel}: root unreadable: {e}"));
                if BROKEN.contains(&name.as_str()) {
                    assert!(
                        !s.errors.is_empty(),
                        "{rel}: broken hive walked without errors"
                    );
                } else {
                    assert!(s.errors.is_empty(), "{rel}: {:?}", s.errors);
                }
                walked += 1;
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{rel}: took {:?}",
            t.elapsed()
        );
    }
    assert!(walked >= 45, "only {walked} hives walked");
}

#[test]
fn empty_hive() {
    // test_empty: no subkeys, last written 2017-03-04 16:37:31.
    let h = yarp("EmptyHive");
    let root = h.root().unwrap();
    assert_eq!(root.subkey_count(), 0);
    assert!(root.subkeys().unwrap().is_empty());
    assert_eq!(filetime_civil(h.last_written()), (2017, 3, 4, 16, 37, 31));
}

#[test]
fn big_data() {
    // test_bigdata: default value 16345 x '1', "V" 81725 x '2', both big data.
    let h = yarp("BigDataHive");
    let k = h.open("key_with_bigdata").unwrap().unwrap();
    assert_eq!(k.value_count(), 2);
    let d = k.value("").unwrap().unwrap().data().unwrap().into_owned();
    assert_eq!(d.len(), 16345);
    assert!(d.iter().all(|&b| b == b'1'));
    let d = k.value("V").unwrap().unwrap().data().unwrap().into_owned();
    assert_eq!(d.len(), 81725);
    assert!(d.iter().all(|&b| b == b'2'));
    assert!(k.value("doesnt_exist").unwrap().is_none());
}

#[test]
fn many_subkeys() {
    // test_many_subkeys: 5000 subkeys named 1..=5000 through an ri list; lookups in any case.
    let h = yarp("ManySubkeysHive");
    let k = h.open("key_with_many_subkeys").unwrap().unwrap();
    assert_eq!(k.subkey_count(), 5000);
    let subs = k.subkeys().unwrap();
    assert_eq!(subs.len(), 5000);
    for s in &subs {
        let n: u32 = s.name().parse().unwrap();
        assert!((1..=5000).contains(&n));
    }
    let off = 4096 + k.cell_offset() as usize;
    let list = u32::from_le_bytes(h.bytes()[off + 4 + 28..off + 4 + 32].try_into().unwrap());
    let l = 4096 + list as usize;
    assert_eq!(&h.bytes()[l + 4..l + 6], b"ri");
    for p in [
        "key_with_MAny_subkeys\\2119\\find_me",
        "\\key_with_maNY_sUBkeys\\2119\\Find_me",
        "key_with_many_subkeys\\2119\\find_me",
    ] {
        assert_eq!(h.open(p).unwrap().unwrap().name(), "find_me", "{p}");
    }
    assert!(h.open("key_with_many_subkeys\\3000").unwrap().is_some());
    assert!(h
        .open("key_with_many_subkeys\\3000\\doesnt_exist")
        .unwrap()
        .is_none());
    assert!(h
        .open("key_with_many_subkeys\\doesnt_exist\\doesnt_exist")
        .unwrap()
        .is_none());
}

#[test]
fn garbage_after_the_bins() {
    // test_garbage: one hive bin, 4096 bytes of bins.
    let h = yarp("GarbageHive");
    assert_eq!(h.effective_bins_size(), 4096);
    assert_eq!(h.bin_count(), 1);
}

#[test]
fn duplicate_subkeys_are_an_error() {
    // test_duplicate_subkeys.
    let h = yarp("DuplicateSubkeysHive");
    let k = h
        .root()
        .unwrap()
        .subkey("key_with_many_subkeys")
        .unwrap()
        .unwrap();
    assert!(k.subkeys().is_err());
}

#[test]
fn dirty_hives_read_as_they_are() {
    // test_dirty_new1 (before recovery).
    let h = yarp("NewDirtyHive1/NewDirtyHive");
    assert!(h.dirty());
    let k1 = h.open("Key1").unwrap().unwrap();
    assert!(h.open("Key2\\Key2_1").unwrap().is_some());
    assert!(h.open("Key2\\Key2_2").unwrap().is_some());
    assert!(h.open("Key2\\Key2_2\\doesnt_exist").unwrap().is_none());
    let v = k1.value("").unwrap().unwrap();
    assert_eq!(v.data_len(), 6001 * 2);
    assert_eq!(v.as_string().unwrap(), "1".repeat(6000));
    let v = h
        .open("KEY2")
        .unwrap()
        .unwrap()
        .value("v")
        .unwrap()
        .unwrap();
    assert_eq!(v.data_len(), 9 * 2);
    assert_eq!(
        h.open("key2")
            .unwrap()
            .unwrap()
            .value("V")
            .unwrap()
            .unwrap()
            .as_string()
            .unwrap(),
        "testTEST"
    );
    // ... and the hive Windows 10 recovered from it (test_dirty_new1, after recovery).
    let r = yarp("NewDirtyHive1/RecoveredHive_Windows10");
    assert!(!r.dirty());
    assert!(r.open("Key1").unwrap().is_none());
    assert!(r.open("Key2\\Key2_1").unwrap().is_none());
    for p in ["Key3", "Key3\\Key3_1", "Key3\\Key3_2", "key3\\key3_3"] {
        assert!(r.open(p).unwrap().is_some(), "{p}");
    }
    let v = r.open("Key3").unwrap().unwrap().value("").unwrap().unwrap();
    assert_eq!(v.as_string().unwrap(), "1".repeat(1440));
    // test_dirty_new2: the base block checksum is valid.
    assert!(yarp("NewDirtyHive2/NewDirtyHive").checksum_ok());
    // test_dirty_old (before recovery) and the Windows 7 recovered hive.
    let h = yarp("OldDirtyHive/OldDirtyHive");
    assert!(h.dirty());
    assert!(h.open("\\key_with_many_subkeys\\1").unwrap().is_some());
    assert!(h
        .open("key_with_many_subkeys\\5000\\find_me_in_log")
        .unwrap()
        .is_none());
    assert!(h
        .open("key_with_many_subkeys\\4500")
        .unwrap()
        .unwrap()
        .value("v")
        .unwrap()
        .is_none());
    let r = yarp("OldDirtyHive/RecoveredHive_Windows7");
    assert!(r
        .open("key_with_many_subkeys\\5000\\find_me_in_log")
        .unwrap()
        .is_some());
    let v = r
        .open("key_with_many_subkeys\\4500")
        .unwrap()
        .unwrap()
        .value("V")
        .unwrap()
        .unwrap();
    assert_eq!(v.as_multi_string().unwrap(), ["a", "bb", "ccc"]);
    // test_bad_baseblock: the base block checksum is bad (so the hive counts as dirty).
    let b = yarp("BadBaseBlockHive/BadBaseBlockHive");
    assert!(!b.checksum_ok() && b.dirty());
}

#[test]
fn unicode_and_latin1_names() {
    // test_unicode.
    let h = yarp("UnicodeHive");
    let k = h.open("ПриВет\\КлюЧ").unwrap().unwrap();
    assert_eq!(k.name(), "Ключ");
    assert_eq!(h.open("\\ПриВет\\КлюЧ").unwrap().unwrap().name(), "Ключ");
    assert_eq!(h.open("привет").unwrap().unwrap().name(), "Привет");
    assert_eq!(h.open("\\привеТ").unwrap().unwrap().name(), "Привет");
    // test_extended_ascii: compressed (Latin-1) key and value names.
    let h = yarp("ExtendedASCIIHive");
    let k = h.open("ëigenaardig").unwrap().unwrap();
    assert_ne!(k.flags() & 0x20, 0);
    assert_eq!(k.name(), "ëigenaardig");
    assert_eq!(
        k.value("ëigenaardig")
            .unwrap()
            .unwrap()
            .as_string()
            .unwrap(),
        "ëigenaardig"
    );
}

fn root_names(rel: &str) -> Vec<String> {
    yarp(rel)
        .root()
        .unwrap()
        .subkeys()
        .unwrap()
        .iter()
        .map(|k| k.name().to_string())
        .collect()
}

#[test]
fn upcase_and_surrogate_pairs() {
    // test_upcase.
    assert_eq!(root_names("UpcaseHive"), ["ss1", "SS3", "ß2"]);
    // b"\x01\xd8\x00\xdc" in UTF-16LE: the pair D801 DC00 = U+10400.
    assert_eq!(root_names("PairHive"), ["ss1", "SS3", "\u{10400}"]);
    assert_eq!(root_names("TruncatedPairHive"), ["ss1", "SS3", "\u{fffd}"]);
    assert!(yarp("TruncatedPairHive")
        .open("\u{fffd}")
        .unwrap()
        .is_some());
    assert_eq!(
        root_names("TruncatedPairHive2"),
        ["key1", "key2", "key3", "key\u{fffd}", "key\u{fffd}"]
    );
    assert!(yarp("TruncatedPairHive2")
        .open("key\u{fffd}")
        .unwrap()
        .is_some());
}

#[test]
fn broken_subkey_structures_are_errors() {
    // test_invalid_parent, test_bad_list, test_bad_subkey: walking two levels fails.
    for rel in ["InvalidParentHive", "BadListHive", "BadSubkeyHive"] {
        let h = yarp(rel);
        let failed = h
            .root()
            .unwrap()
            .subkeys()
            .map(|subs| subs.iter().any(|k| k.subkeys().is_err()))
            .unwrap_or(true);
        assert!(failed, "{rel}");
    }
    // test_wrong_order: both keys' lists fail; the lossy form still lists the keys.
    let h = yarp("WrongOrderHive");
    for k in ["1", "2"] {
        let key = h.open(k).unwrap().unwrap();
        assert!(key.subkeys().is_err(), "{k}");
        let (keys, errors) = key.subkeys_lossy();
        assert!(!errors.is_empty() && !keys.is_empty(), "{k}");
    }
    // test_truncated_name.
    assert!(yarp("TruncatedNameHive").root().unwrap().subkeys().is_err());
}

#[test]
fn odd_names_and_values() {
    // test_bogus_keynames.
    let h = yarp("BogusKeyNamesHive");
    for k in h.root().unwrap().subkeys().unwrap() {
        assert!(
            k.name() == "testnew\r\nne" || k.name() == "testnu\0l",
            "{:?}",
            k.name()
        );
    }
    assert!(h.open("testnew\r\nne").unwrap().is_some());
    assert!(h.open("testnu\0l").unwrap().is_some());
    // test_new_flags.
    let h = yarp("NewFlagsHive");
    assert!(h.open("1").unwrap().is_some() && h.open("1\\2").unwrap().is_some());
    // test_multisz.
    let h = yarp("MultiSzHive");
    let k = h.open("key").unwrap().unwrap();
    assert!(k.value("").unwrap().is_none());
    assert!(k
        .value("1")
        .unwrap()
        .unwrap()
        .as_multi_string()
        .unwrap()
        .is_empty());
    assert_eq!(
        k.value("2").unwrap().unwrap().as_multi_string().unwrap(),
        ["привет", "как дела?"]
    );
    // test_strings.
    let h = yarp("StringValuesHive");
    let k = h.open("key").unwrap().unwrap();
    assert_eq!(
        k.value("").unwrap().unwrap().as_string().unwrap(),
        "test тест"
    );
    let v1 = k.value("1").unwrap().unwrap();
    assert_eq!(&*v1.data().unwrap(), b"test");
    assert_ne!(v1.value_type(), ValueType::Sz);
    assert_eq!(
        k.value("2").unwrap().unwrap().as_string().unwrap(),
        "test тест"
    );
    assert_eq!(
        k.value("3").unwrap().unwrap().as_string().unwrap(),
        "test тест "
    );
}

#[test]
fn effective_and_truncated_sizes() {
    // test_effective_hbins_data_size: 487424 bytes of bins, not what the base block says.
    let h = yarp("EffectiveSizeHive");
    assert_eq!(h.effective_bins_size(), 487_424);
    assert_ne!(h.base_block().hive_bins_data_size, 487_424);
    // test_truncated: the bins the file has are readable, the rest is an error.
    let h = yarp("TruncatedHive");
    assert!(h.truncated());
    let s = walk(&h, false, |_, _, _| {}).unwrap();
    assert!(!s.errors.is_empty());
}
