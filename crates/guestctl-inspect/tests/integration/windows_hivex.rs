//! Windows facts from hives written at test time by an independent writer, hivex's
//! `hivexregedit --merge` (Debian package `libhivex-bin`), on top of libguestfs's empty
//! `minimal-hive` from ../shared/corpus: a Windows 11 client (ProductName still says
//! Windows 10, build 22631 + UBR), a Windows Server 2022, `Select\Current` = 2 with only
//! `ComputerName` (no Tcpip host name), GPT (`DMIO:ID:`) and MBR drive mappings,
//! `MachineGuid`, and `WOW6432Node` applications.
//!
//! Missing `hivexregedit` or corpus files fail the tests.

// Tests: a panic with the error is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use guestctl_inspect::windows::{windows_facts, DriveTarget};

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

/// A hive made by `hivexregedit --merge` of `reg` into a copy of the empty minimal hive.
fn hivex_hive(reg: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let hive = dir.path().join("hive");
    let regf = dir.path().join("in.reg");
    std::fs::write(
        &hive,
        std::fs::read(corpus("libguestfs/test-data/phony-guests/minimal-hive")).unwrap(),
    )
    .unwrap();
    // hivexregedit wants a blank line before each section.
    std::fs::write(&regf, reg.replace("\n[", "\n\n[")).unwrap();
    let out = Command::new("hivexregedit")
        .arg("--merge")
        .arg(&hive)
        .arg(&regf)
        .output()
        .expect("run hivexregedit (apt-get install libhivex-bin)");
    assert!(
        out.status.success(),
        "hivexregedit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&hive).unwrap()
}

/// `hex(3):` bytes of a value.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(",")
}

const WIN11_SOFTWARE: &str = r#"
[\Microsoft]
[\Microsoft\Cryptography]
"MachineGuid"=str(1):"5f3c2b1a-0d9e-4c8b-a7f6-112233445566"
[\Microsoft\Windows NT]
[\Microsoft\Windows NT\CurrentVersion]
"ProductName"=str(1):"Windows 10 Pro"
"CurrentMajorVersionNumber"=dword:0000000a
"CurrentMinorVersionNumber"=dword:00000000
"CurrentVersion"=str(1):"6.3"
"CurrentBuildNumber"=str(1):"22631"
"UBR"=dword:00000b2d
"EditionID"=str(1):"Professional"
"InstallationType"=str(1):"Client"
[\Microsoft\Windows]
[\Microsoft\Windows\CurrentVersion]
[\Microsoft\Windows\CurrentVersion\Uninstall]
[\Microsoft\Windows\CurrentVersion\Uninstall\{B2C3}]
"DisplayName"=str(1):"Zeta 64-bit"
"DisplayVersion"=str(1):"2.0"
[\WOW6432Node]
[\WOW6432Node\Microsoft]
[\WOW6432Node\Microsoft\Windows]
[\WOW6432Node\Microsoft\Windows\CurrentVersion]
[\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall]
[\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\Alpha]
"DisplayName"=str(1):"Alpha 32-bit"
"Publisher"=str(1):"Alpha Corp"
"#;

#[test]
fn windows_11_client_from_hivex_hives() {
    // EFI system partition type GUID as a unique GUID: C12A7328-F81F-11D2-BA4B-00A0C93EC93B,
    // stored mixed-endian as GPT stores it.
    let guid = [
        0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9,
        0x3b,
    ];
    let mut dmio = b"DMIO:ID:".to_vec();
    dmio.extend_from_slice(&guid);
    let mut mbr = 0xdead_beefu32.to_le_bytes().to_vec();
    mbr.extend_from_slice(&(1_048_576u64).to_le_bytes());
    let system = format!(
        r#"
[\Select]
"Current"=dword:00000002
[\MountedDevices]
"\\DosDevices\\C:"=hex(3):{}
"\\DosDevices\\D:"=hex(3):{}
"\\??\\Volume{{abc}}"=hex(3):{}
[\ControlSet001]
[\ControlSet002]
[\ControlSet002\Control]
[\ControlSet002\Control\ComputerName]
[\ControlSet002\Control\ComputerName\ComputerName]
"ComputerName"=str(1):"ELEVEN-PC"
[\ControlSet002\Control\TimeZoneInformation]
"TimeZoneKeyName"=str(1):"W. Europe Standard Time"
"StandardName"=str(1):"@tzres.dll,-322"
"#,
        hex(&dmio),
        hex(&mbr),
        hex(&mbr)
    );
    let f = windows_facts(&hivex_hive(WIN11_SOFTWARE), &hivex_hive(&system));
    assert_eq!(f.product_name, "Windows 11 Pro");
    assert_eq!((f.major_version, f.minor_version), (10, 0));
    assert_eq!(f.build_id, "22631");
    assert_eq!(f.ubr, Some(2861));
    assert_eq!(f.edition_id, "Professional");
    assert_eq!(f.product_variant, "Client");
    assert_eq!(f.osinfo, "win11");
    assert_eq!(f.machine_guid, "5f3c2b1a-0d9e-4c8b-a7f6-112233445566");
    assert_eq!(f.current_control_set, "ControlSet002");
    assert_eq!(f.hostname, "ELEVEN-PC");
    assert_eq!(f.timezone, "W. Europe Standard Time");
    assert_eq!(
        f.drive_mappings,
        vec![
            (
                "C".to_string(),
                DriveTarget::Gpt {
                    partition_guid: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B".into()
                }
            ),
            (
                "D".to_string(),
                DriveTarget::Mbr {
                    disk_signature: 0xdead_beef,
                    offset: 1_048_576
                }
            ),
        ]
    );
    let apps: Vec<(&str, &str, &str)> = f
        .applications
        .iter()
        .map(|a| {
            (
                a.name.as_str(),
                a.display_name.as_str(),
                a.publisher.as_str(),
            )
        })
        .collect();
    assert_eq!(
        apps,
        [
            ("Alpha", "Alpha 32-bit", "Alpha Corp"),
            ("{B2C3}", "Zeta 64-bit", "")
        ]
    );
}

#[test]
fn windows_server_2022_from_hivex_hives() {
    let software = r#"
[\Microsoft]
[\Microsoft\Windows NT]
[\Microsoft\Windows NT\CurrentVersion]
"ProductName"=str(1):"Windows Server 2022 Standard"
"CurrentMajorVersionNumber"=dword:0000000a
"CurrentMinorVersionNumber"=dword:00000000
"CurrentBuildNumber"=str(1):"20348"
"InstallationType"=str(1):"Server"
"#;
    let system = r#"
[\Select]
"Current"=dword:00000001
[\ControlSet001]
[\ControlSet001\Services]
[\ControlSet001\Services\Tcpip]
[\ControlSet001\Services\Tcpip\Parameters]
"Hostname"=str(1):"srv2022"
[\ControlSet001\Control]
[\ControlSet001\Control\ComputerName]
[\ControlSet001\Control\ComputerName\ComputerName]
"ComputerName"=str(1):"SRV2022"
"#;
    let f = windows_facts(&hivex_hive(software), &hivex_hive(system));
    assert_eq!(f.product_name, "Windows Server 2022 Standard");
    assert_eq!(f.osinfo, "win2k22");
    assert_eq!(f.product_variant, "Server");
    // The Tcpip host name wins over ComputerName, like virt-inspector.
    assert_eq!(f.hostname, "srv2022");
    assert!(f.applications.is_empty());
    assert!(f.warnings.iter().any(|w| w.contains("TimeZoneInformation")));
}
