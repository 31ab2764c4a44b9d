//! Windows facts against upstream answer sheets in ../shared/corpus:
//! - libguestfs's phony `windows-software`/`windows-system` hives against guestfs-tools'
//!   `inspector/expected-windows.img.xml` (the fields that come from the hives);
//! - regipy's real Windows 7 `SYSTEM` against regipy's validation tests (host name, control
//!   set, time zone key name with garbage after its NUL);
//! - dfwinreg's `SYSTEM` (ComputerName IECOMPATVHD);
//! - `pe_arch` on libguestfs's `test-data/binaries/bin-win32.exe` / `bin-win64.exe`.
//!
//! A missing corpus file fails the test.

// Tests: a panic with the error is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use guestctl_inspect::windows::{pe_arch, windows_facts, DriveTarget};

fn corpus(rel: &str) -> PathBuf {
    let base = std::env::var_os("GUESTCTL_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
        });
    let p = base.join(rel);
    assert!(
        p.exists(),
        "corpus file missing: {} (set GUESTCTL_CORPUS)",
        p.display()
    );
    p
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(corpus(rel)).expect("read corpus file")
}

fn read_xz(rel: &str) -> Vec<u8> {
    let out = Command::new("xz")
        .arg("-dc")
        .arg(corpus(rel))
        .output()
        .expect("run xz -dc (install xz-utils)");
    assert!(out.status.success(), "xz -dc {rel} failed");
    out.stdout
}

/// The text of `<tag>...</tag>` occurrences in the expected XML, in order.
fn xml_all(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let j = after.find(&close).expect("closing tag");
        out.push(after[..j].to_string());
        rest = &after[j..];
    }
    out
}

#[test]
fn phony_hives_match_virt_inspector_expected_xml() {
    let xml = String::from_utf8(read("guestfs-tools/inspector/expected-windows.img.xml")).unwrap();
    let f = windows_facts(
        &read("libguestfs/tests/guests/guest-aux/windows-software"),
        &read("libguestfs/tests/guests/guest-aux/windows-system"),
    );
    let one = |tag: &str| xml_all(&xml, tag).into_iter().next().expect(tag);
    assert_eq!(f.product_name, one("product_name"));
    assert_eq!(f.product_variant, one("product_variant"));
    assert_eq!(f.major_version.to_string(), one("major_version"));
    assert_eq!(f.minor_version.to_string(), one("minor_version"));
    assert_eq!(f.hostname, one("hostname"));
    assert_eq!(f.current_control_set, one("windows_current_control_set"));
    assert_eq!(f.osinfo, one("osinfo"));
    // The XML maps C: to /dev/sda2; the hive holds the MBR target that the caller resolves
    // (signature "1234" = 0x34333231, partition at 256 MiB in the phony disk).
    assert_eq!(xml.matches("<drive_mapping ").count(), 1);
    assert!(xml.contains("<drive_mapping name=\"C\">"));
    assert_eq!(f.drive_mappings.len(), 1);
    assert_eq!(f.drive_mappings[0].0, "C");
    assert_eq!(
        f.drive_mappings[0].1,
        DriveTarget::Mbr {
            disk_signature: 0x3433_3231,
            offset: 0x1000_0000
        }
    );

    // Applications, field by field, in the XML's order.
    let apps_xml = xml_all(&xml, "application");
    assert_eq!(f.applications.len(), apps_xml.len());
    for (app, ax) in f.applications.iter().zip(&apps_xml) {
        let field = |tag: &str| xml_all(ax, tag).into_iter().next().unwrap_or_default();
        assert_eq!(app.name, field("name"));
        assert_eq!(app.display_name, field("display_name"));
        assert_eq!(app.version, field("version"));
        assert_eq!(app.url, field("url"));
        assert_eq!(app.description, field("description"));
        assert_eq!(app.install_path, field("install_path"));
        assert_eq!(app.publisher, field("publisher"));
    }
    assert!(f.machine_guid.is_empty());
}

#[test]
fn regipy_system_hive() {
    let sys = read_xz("regipy/regipy_tests/data/SYSTEM.xz");
    let f = windows_facts(&[], &sys);
    // host_domain_name_plugin_validation.py: hostname WKS-WIN732BITA (Tcpip\Parameters).
    assert_eq!(f.hostname, "WKS-WIN732BITA");
    assert_eq!(f.current_control_set, "ControlSet001");
    // timezone_data_validation.py: TimeZoneKeyName is UTF-16 "Eastern Standard Time",
    // a NUL, then garbage bytes.
    assert_eq!(f.timezone, "Eastern Standard Time");
    // mounted_devices_plugin_validation.py: a \DosDevices\C: entry.
    assert!(
        f.drive_mappings.iter().any(|(l, _)| l == "C"),
        "{:?}",
        f.drive_mappings
    );
    // The SOFTWARE hive was empty: a warning, not a panic.
    assert!(f.warnings.iter().any(|w| w.starts_with("SOFTWARE hive")));
}

#[test]
fn regipy_win10_system_hive() {
    // active_control_set_validation.py: Select\Current = 1.
    let f = windows_facts(
        &[],
        &read_xz("regipy/regipy_tests/data/SYSTEM_WIN_10_1709.xz"),
    );
    assert_eq!(f.current_control_set, "ControlSet001");
    // corpus INDEX.md (regipy computer-name tests): DESKTOP-2KGM189.
    assert_eq!(f.hostname.to_uppercase(), "DESKTOP-2KGM189");
}

#[test]
fn dfwinreg_system_hive() {
    let f = windows_facts(&[], &read("dfwinreg/test_data/SYSTEM"));
    assert_eq!(f.hostname.to_uppercase(), "IECOMPATVHD");
}

#[test]
fn pe_arch_of_libguestfs_binaries() {
    assert_eq!(
        pe_arch(&read("libguestfs/test-data/binaries/bin-win32.exe")),
        Some("i386")
    );
    assert_eq!(
        pe_arch(&read("libguestfs/test-data/binaries/bin-win64.exe")),
        Some("x86_64")
    );
    assert_eq!(
        pe_arch(&read("libguestfs/test-data/binaries/bin-x86_64-dynamic")),
        None
    );
}

#[test]
fn garbage_gives_warnings_not_panics() {
    let f = windows_facts(b"regf", &[0u8; 5000]);
    assert!(f.warnings.len() >= 2);
    assert!(f.product_name.is_empty() && f.hostname.is_empty());
}
