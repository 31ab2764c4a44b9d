//! Hives from ../shared/corpus checked against what their makers state:
//! - nt-hive `testdata/testhive`: every key and value that `offreg-testhive-writer.c` writes
//!   (listed in the test below, with the writer's values);
//! - regipy `NTUSER.DAT` (tests.py: header fields, root name and subkey count, the Run key,
//!   the recursive key/value/type counts), `SYSTEM` and `SYSTEM_WIN_10_1709` (validation
//!   tests: computer names with key time stamps, Select values, TimeZoneInformation values);
//! - dfwinreg `SYSTEM` (ComputerName IECOMPATVHD);
//! - libguestfs phony hives: every key and value of their `.reg` sources (hivexregedit
//!   format) must read back equal, and nothing else may be there.

// Tests: a panic with the error is the failure report.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::BTreeMap;

use common::{filetime_civil, hive, hive_xz, read};
use guestctl_registry::{walk, Hive, ValueType};

#[test]
fn nt_hive_testhive_matches_its_writer() {
    let h = hive("nt-hive/testdata/testhive");
    let root = h.root().unwrap();
    let names: Vec<String> = root
        .subkeys()
        .unwrap()
        .iter()
        .map(|k| k.name().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "big-data-test",
            "character-encoding-test",
            "data-test",
            "subkey-test",
            "subpath-test"
        ]
    );

    // _WriteBigDataTest: 16343 x 'A', 16344 x 'B' (one cell each), 16345 x 'C' (big data).
    let k = h.open("big-data-test").unwrap().unwrap();
    for (name, byte, len) in [("A", b'A', 16343), ("B", b'B', 16344), ("C", b'C', 16345)] {
        let v = k.value(name).unwrap().unwrap();
        assert_eq!(v.value_type(), ValueType::Binary);
        let d = v.data().unwrap();
        assert_eq!(d.len(), len, "{name}");
        assert!(d.iter().all(|&b| b == byte), "{name}");
    }

    // _WriteCharacterEncodingTest: äöü; one of Ａ/ａ (BMP case-insensitive); both Deseret
    // letters (outside the BMP, case-sensitive).
    let k = h.open("character-encoding-test").unwrap().unwrap();
    let subs = k.subkeys().unwrap();
    assert_eq!(
        subs.len(),
        4,
        "{:?}",
        subs.iter().map(|k| k.name()).collect::<Vec<_>>()
    );
    assert_eq!(
        h.open("character-encoding-test\\ÄÖÜ")
            .unwrap()
            .unwrap()
            .name(),
        "äöü"
    );
    let a1 = h
        .open("character-encoding-test\\\u{ff21}")
        .unwrap()
        .unwrap();
    let a2 = h
        .open("character-encoding-test\\\u{ff41}")
        .unwrap()
        .unwrap();
    assert_eq!(a1.cell_offset(), a2.cell_offset());
    let d1 = h
        .open("character-encoding-test\\\u{10410}")
        .unwrap()
        .unwrap();
    let d2 = h
        .open("character-encoding-test\\\u{10438}")
        .unwrap()
        .unwrap();
    assert_ne!(d1.cell_offset(), d2.cell_offset());
    assert_eq!(d1.name(), "\u{10410}");
    assert_eq!(d2.name(), "\u{10438}");

    // _WriteDataTest.
    let k = h.open("data-test").unwrap().unwrap();
    let v = |n: &str| k.value(n).unwrap().unwrap_or_else(|| panic!("value {n}"));
    assert_eq!(v("reg-sz").as_string().unwrap(), "sz-test");
    assert_eq!(
        v("reg-sz-with-terminating-nul").as_string().unwrap(),
        "sz-test"
    );
    assert_eq!(v("reg-expand-sz").value_type(), ValueType::ExpandSz);
    assert_eq!(v("reg-expand-sz").as_string().unwrap(), "sz-test");
    assert_eq!(
        v("reg-multi-sz").as_multi_string().unwrap(),
        ["multi-sz-test", "line2"]
    );
    let big = v("reg-multi-sz-big");
    // 8200 characters: more than one 16344-byte cell, so read through big-data segments.
    assert!(big.data_len() > 16344);
    assert_eq!(
        big.as_multi_string().unwrap(),
        ["0123456789".repeat(820), "0123456789".to_string()]
    );
    assert_eq!(v("dword").value_type(), ValueType::Dword);
    assert_eq!(v("dword").as_u32().unwrap(), 42);
    assert_eq!(
        v("dword-big-endian").value_type(),
        ValueType::DwordBigEndian
    );
    // The writer stored the little-endian bytes of 42 under the big-endian type, so read as
    // big-endian they are 42 << 24 (nt-hive's own test says the same).
    assert_eq!(v("dword-big-endian").as_u32().unwrap(), 42 << 24);
    assert_eq!(
        &*v("dword-big-endian").data().unwrap(),
        &42u32.to_le_bytes()
    );
    assert_eq!(v("qword").as_u64().unwrap(), u64::MAX);
    assert_eq!(&*v("binary").data().unwrap(), &[1, 2, 3, 4, 5]);
    assert!(v("binary").as_u32().is_err());
    assert!(k.value("no-such-value").unwrap().is_none());
    assert_eq!(k.values().unwrap().len(), 9);

    // _WriteSubkeyTest: Key0..Key511 with alternating K/k, found in any case.
    let k = h.open("subkey-test").unwrap().unwrap();
    let subs = k.subkeys().unwrap();
    assert_eq!(subs.len(), 512);
    let mut nums: Vec<u32> = subs
        .iter()
        .map(|s| {
            let n = s.name();
            let want = if n[3..].parse::<u32>().unwrap() % 2 == 0 {
                "Key"
            } else {
                "key"
            };
            assert_eq!(&n[..3], want);
            n[3..].parse().unwrap()
        })
        .collect();
    nums.sort_unstable();
    assert_eq!(nums, (0..512).collect::<Vec<_>>());
    for i in [0, 1, 255, 511] {
        assert!(h.open(&format!("SUBKEY-TEST\\KEY{i}")).unwrap().is_some());
        assert!(h.open(&format!("subkey-test\\key{i}")).unwrap().is_some());
    }
    assert!(h.open("subkey-test\\key512").unwrap().is_none());

    // _WriteSubpathTest.
    assert_eq!(
        h.open("subpath-test\\no-subkeys")
            .unwrap()
            .unwrap()
            .subkey_count(),
        0
    );
    assert!(h
        .open("subpath-test\\with-single-level-subkey\\subkey")
        .unwrap()
        .is_some());
    let deep = h
        .open("\\subpath-test\\with-two-levels-of-subkeys\\subkey1\\subkey2\\")
        .unwrap()
        .unwrap();
    assert_eq!(deep.name(), "subkey2");
    assert!(h
        .open("subpath-test\\with-two-levels-of-subkeys\\subkey2")
        .unwrap()
        .is_none());

    // The whole hive walks without errors: the root, 5 test keys, 4 + 512 + 3 + 1 + 2 below.
    let s = walk(&h, true, |_, _, _| {}).unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.keys, 1 + 5 + 4 + 512 + 3 + 1 + 2);
    assert_eq!(s.values, 3 + 9);
}

#[test]
fn regipy_ntuser() {
    let h = hive_xz("regipy/regipy_tests/data/NTUSER.DAT.xz");
    let b = h.base_block();
    // tests.py test_parse_header.
    assert_eq!(b.primary_sequence, 749);
    assert_eq!(b.secondary_sequence, 749);
    assert_eq!(b.last_written, 129_782_982_453_388_850);
    assert_eq!((b.major_version, b.minor_version), (1, 3));
    assert_eq!(b.root_cell_offset, 32);
    assert_eq!(b.hive_bins_data_size, 733_184);
    assert_eq!(b.checksum, 476_614_345);
    assert!(h.checksum_ok() && !h.dirty());
    // test_parse_root_key.
    let root = h.root().unwrap();
    assert_eq!(
        root.name(),
        "CMI-CreateHive{6A1C4018-979D-4291-A7DC-7AED1C75B67C}"
    );
    assert_eq!(root.subkey_count(), 11);
    assert_eq!(root.subkeys().unwrap().len(), 11);
    // test_find_keys_ntuser.
    let run = h
        .open("\\Software\\Microsoft\\Windows\\CurrentVersion\\Run")
        .unwrap()
        .unwrap();
    assert_eq!(run.name(), "Run");
    assert_eq!(run.last_written(), 129_779_615_948_377_168);
    let values = run.values().unwrap();
    assert_eq!(values[0].name(), "Sidebar");
    assert_eq!(values[0].value_type(), ValueType::ExpandSz);
    // test_recurse_ntuser: 1812 keys (regipy counts the root too), 4094 values, by type.
    let mut types: BTreeMap<u32, usize> = BTreeMap::new();
    let s = walk(&h, true, |_, _, vals| {
        for v in vals {
            *types.entry(v.data_type()).or_default() += 1;
        }
    })
    .unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.keys, 1812);
    assert_eq!(s.values, 4094);
    let expect: BTreeMap<u32, usize> = [
        (3, 531),
        (4, 1336),
        (2, 93),
        (7, 303),
        (0, 141),
        (11, 54),
        (1, 1636),
    ]
    .into();
    assert_eq!(types, expect);
}

fn computer_name(h: &Hive, cs: &str) -> (String, u64) {
    let k = h
        .open(&format!("{cs}\\Control\\ComputerName\\ComputerName"))
        .unwrap()
        .unwrap();
    let name = k
        .value("ComputerName")
        .unwrap()
        .unwrap()
        .as_string()
        .unwrap();
    (name, k.last_written())
}

#[test]
fn regipy_system() {
    let h = hive_xz("regipy/regipy_tests/data/SYSTEM.xz");
    // computer_name_plugin_validation.py: both control sets, with the key time stamps
    // 2010-11-10T17:18:08.718750 and 2010-11-10T18:17:36.968750.
    let (n1, t1) = computer_name(&h, "ControlSet001");
    let (n2, t2) = computer_name(&h, "ControlSet002");
    assert_eq!(n1, "WKS-WIN732BITA");
    assert_eq!(n2, "WIN-V5T3CSP8U4H");
    assert_eq!(filetime_civil(t1), (2010, 11, 10, 17, 18, 8));
    assert_eq!(t1 % 10_000_000, 7_187_500);
    assert_eq!(filetime_civil(t2), (2010, 11, 10, 18, 17, 36));
    assert_eq!(t2 % 10_000_000, 9_687_500);
    // host_domain_name_plugin_validation.py.
    let tcpip = h
        .open("ControlSet001\\Services\\Tcpip\\Parameters")
        .unwrap()
        .unwrap();
    assert_eq!(
        tcpip
            .value("Hostname")
            .unwrap()
            .unwrap()
            .as_string()
            .unwrap(),
        "WKS-WIN732BITA"
    );
    assert_eq!(
        tcpip.value("Domain").unwrap().unwrap().as_string().unwrap(),
        "shieldbase.local"
    );
    // timezone_data_validation.py / timezone_data2_validation.py.
    let tz = h
        .open("ControlSet001\\Control\\TimeZoneInformation")
        .unwrap()
        .unwrap();
    let val = |n: &str| tz.value(n).unwrap().unwrap();
    assert_eq!(val("Bias").as_u32().unwrap(), 300);
    assert_eq!(val("DaylightBias").as_u32().unwrap(), 4_294_967_236);
    assert_eq!(val("StandardBias").as_u32().unwrap(), 0);
    assert_eq!(val("ActiveTimeBias").as_u32().unwrap(), 240);
    assert_eq!(val("DynamicDaylightTimeDisabled").as_u32().unwrap(), 0);
    assert_eq!(val("StandardName").as_string().unwrap(), "@tzres.dll,-112");
    assert_eq!(val("DaylightName").as_string().unwrap(), "@tzres.dll,-111");
    assert_eq!(
        hex(&val("StandardStart").data().unwrap()),
        "00000b00010002000000000000000000"
    );
    assert_eq!(
        hex(&val("DaylightStart").data().unwrap()),
        "00000300020002000000000000000000"
    );
    // regipy shows the first 128 bytes; the record declares 256 (and its cell holds them).
    let key_name = val("TimeZoneKeyName");
    assert_eq!(key_name.data_len(), 256);
    assert_eq!(
        hex(&key_name.data().unwrap()[..128]),
        concat!(
            "4500610073007400650072006e0020005300740061006e00640061007200640020",
            "00540069006d00650000001963747614060136f408f101000000000000000000000",
            "00000000000940af101a80af10102000000040bf101000000007c0bf10100000000",
            "c80bf1010000000000000000d007f10110df0900d8717476d007f101"
        )
    );
    assert_eq!(key_name.as_string().unwrap(), "Eastern Standard Time");
    // processor_architecture_validation.py.
    let env = h
        .open("ControlSet002\\Control\\Session Manager\\Environment")
        .unwrap()
        .unwrap();
    let s = |n: &str| env.value(n).unwrap().unwrap().as_string().unwrap();
    assert_eq!(s("PROCESSOR_ARCHITECTURE"), "x86");
    assert_eq!(
        s("PROCESSOR_IDENTIFIER"),
        "x86 Family 16 Model 8 Stepping 0, AuthenticAMD"
    );
    assert_eq!(s("PROCESSOR_REVISION"), "0800");
    // mounted_devices_plugin_validation.py: 11 entries, one of them \DosDevices\C:.
    let md = h.open("MountedDevices").unwrap().unwrap();
    let names: Vec<String> = md
        .values()
        .unwrap()
        .iter()
        .map(|v| v.name().to_string())
        .collect();
    assert_eq!(names.len(), 11);
    assert!(names.iter().any(|n| n == "\\DosDevices\\C:"));
    let s = walk(&h, true, |_, _, _| {}).unwrap();
    assert!(
        s.errors.is_empty(),
        "{:?}",
        &s.errors[..s.errors.len().min(3)]
    );
}

#[test]
fn regipy_win10_select() {
    // active_control_set_validation.py.
    let h = hive_xz("regipy/regipy_tests/data/SYSTEM_WIN_10_1709.xz");
    let sel = h.open("Select").unwrap().unwrap();
    for (n, want) in [
        ("Current", 1),
        ("Default", 1),
        ("Failed", 0),
        ("LastKnownGood", 1),
    ] {
        assert_eq!(
            sel.value(n).unwrap().unwrap().as_u32().unwrap(),
            want,
            "{n}"
        );
    }
    let (name, _) = computer_name(&h, "ControlSet001");
    assert_eq!(name, "DESKTOP-2KGM189");
}

#[test]
fn dfwinreg_system_computer_name() {
    let h = hive("dfwinreg/test_data/SYSTEM");
    let cur = h
        .open("Select")
        .unwrap()
        .unwrap()
        .value("Current")
        .unwrap()
        .unwrap();
    let cs = format!("ControlSet{:03}", cur.as_u32().unwrap());
    let (name, _) = computer_name(&h, &cs);
    assert_eq!(name, "IECOMPATVHD");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One value of a hivexregedit `.reg` file.
#[derive(Debug)]
enum RegData {
    Str(u32, String),
    Dword(u32),
    Hex(u32, Vec<u8>),
}

fn unquote(s: &str) -> (String, &str) {
    assert!(s.starts_with('"'), "{s}");
    let mut out = String::new();
    let mut it = s[1..].char_indices();
    while let Some((i, c)) = it.next() {
        match c {
            '\\' => out.push(it.next().expect("escape").1),
            '"' => return (out, &s[i + 2..]),
            c => out.push(c),
        }
    }
    panic!("unterminated string {s}");
}

/// Parses a hivexregedit export: `[HKEY_LOCAL_MACHINE\HIVE\path]` sections and
/// `"name"=str(N):"text"`, `dword:XXXXXXXX`, `hex(N):aa,bb` values.
fn parse_reg(text: &str, prefix: &str) -> BTreeMap<String, Vec<(String, RegData)>> {
    let mut keys: BTreeMap<String, Vec<(String, RegData)>> = BTreeMap::new();
    let mut cur = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(sec) = line.strip_prefix('[') {
            let sec = sec.strip_suffix(']').expect("section");
            cur = sec
                .strip_prefix(prefix)
                .expect("hive prefix")
                .trim_start_matches('\\')
                .to_string();
            keys.entry(cur.clone()).or_default();
            continue;
        }
        let (name, rest) = if let Some(r) = line.strip_prefix("@=") {
            (String::new(), r)
        } else {
            let (n, r) = unquote(line);
            (n, r.strip_prefix('=').expect("="))
        };
        let data = if let Some(h) = rest.strip_prefix("dword:") {
            RegData::Dword(u32::from_str_radix(h, 16).unwrap())
        } else if let Some(r) = rest.strip_prefix("str(") {
            let (t, r) = r.split_once("):").unwrap();
            RegData::Str(t.parse().unwrap(), unquote(r).0)
        } else if let Some(r) = rest.strip_prefix("hex(") {
            let (t, r) = r.split_once("):").unwrap();
            let bytes = r
                .split(',')
                .filter(|x| !x.is_empty())
                .map(|x| u8::from_str_radix(x.trim(), 16).unwrap())
                .collect();
            RegData::Hex(t.parse().unwrap(), bytes)
        } else {
            panic!("unknown value syntax: {line}");
        };
        keys.get_mut(&cur)
            .expect("value before any section")
            .push((name, data));
    }
    keys
}

fn check_against_reg(hive_rel: &str, reg_rel: &str, prefix: &str) {
    let h = hive(hive_rel);
    let text = String::from_utf8(read(reg_rel)).unwrap();
    let keys = parse_reg(&text, prefix);
    assert!(!keys.is_empty());
    let mut checked = 0;
    for (path, values) in &keys {
        let k = h
            .open(path)
            .unwrap()
            .unwrap_or_else(|| panic!("{hive_rel}: key {path} missing"));
        assert_eq!(k.values().unwrap().len(), values.len(), "{path}");
        for (name, want) in values {
            let v = k
                .value(name)
                .unwrap()
                .unwrap_or_else(|| panic!("{path}: {name}"));
            match want {
                RegData::Str(t, s) => {
                    assert_eq!(v.data_type(), *t, "{path}\\{name}");
                    assert_eq!(&v.as_string().unwrap(), s, "{path}\\{name}");
                }
                RegData::Dword(n) => {
                    assert_eq!(v.value_type(), ValueType::Dword, "{path}\\{name}");
                    assert_eq!(v.as_u32().unwrap(), *n, "{path}\\{name}");
                }
                RegData::Hex(t, b) => {
                    assert_eq!(v.data_type(), *t, "{path}\\{name}");
                    assert_eq!(&*v.data().unwrap(), &b[..], "{path}\\{name}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 0);
    // Nothing but what the .reg lists (plus the root and the parents it implies).
    let mut seen = Vec::new();
    let s = walk(&h, true, |p, _, _| seen.push(p.to_string())).unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    for p in seen.iter().filter(|p| !p.is_empty()) {
        assert!(
            keys.keys().any(|k| k.eq_ignore_ascii_case(p)
                || k.to_ascii_lowercase()
                    .starts_with(&format!("{}\\", p.to_ascii_lowercase()))),
            "{hive_rel}: key {p} is not in {reg_rel}"
        );
    }
}

#[test]
fn libguestfs_phony_software_matches_its_reg_source() {
    check_against_reg(
        "libguestfs/tests/guests/guest-aux/windows-software",
        "libguestfs/tests/guests/guest-aux/windows-software.reg",
        "HKEY_LOCAL_MACHINE\\SOFTWARE",
    );
}

#[test]
fn libguestfs_phony_system_matches_its_reg_source() {
    check_against_reg(
        "libguestfs/tests/guests/guest-aux/windows-system",
        "libguestfs/tests/guests/guest-aux/windows-system.reg",
        "HKEY_LOCAL_MACHINE\\SYSTEM",
    );
}

#[test]
fn libguestfs_minimal_hive_is_an_empty_root() {
    let h = hive("libguestfs/test-data/phony-guests/minimal-hive");
    let root = h.root().unwrap();
    assert!(root.subkeys().unwrap().is_empty());
    assert!(root.values().unwrap().is_empty());
}
