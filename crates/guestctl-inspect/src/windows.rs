//! Windows facts from the `SOFTWARE` and `SYSTEM` registry hives, as virt-inspector reports
//! them, plus the architecture of a PE executable.
//!
//! Pure functions over bytes, tolerant: every missing or odd value becomes a string in
//! [`WindowsFacts::warnings`], never an error.
//!
//! Conventions (where virt-inspector leaves a choice):
//! - `build_id` is `CurrentBuildNumber` as stored (`"22631"`), like virt-inspector; the
//!   update build revision (`UBR`) is reported separately in [`WindowsFacts::ubr`].
//! - Windows 11 still stores `ProductName` = `Windows 10 ...`; when the build is ≥ 22000 on a
//!   client, `Windows 10` in the product name is replaced by `Windows 11` (what users and
//!   `winver` show) and the osinfo id is `win11`.
//! - `osinfo` follows libosinfo's short ids: 6.1 client `win7`, server `win2k8r2`; 6.2
//!   `win8`/`win2k12`; 6.3 `win8.1`/`win2k12r2`; 10.0 client `win10`/`win11` (build ≥ 22000),
//!   server `win2k16`, `win2k19` (build ≥ 17763), `win2k22` (≥ 20348), `win2k25` (≥ 26100).
//!   A server is recognised by `InstallationType` (`Server`, `Server Core`) or, without it,
//!   by `Server` in `ProductName`.
//! - Applications are sorted by key name, then display name (virt-inspector's XML order).

use std::collections::HashSet;

use guestctl_registry::{Hive, Key};

use crate::Application;

/// Most applications read from one Uninstall key (more are reported as a warning).
const MAX_APPLICATIONS: usize = 65_536;

/// What a drive letter points at, as stored in `SYSTEM\MountedDevices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriveTarget {
    /// An MBR partition: the disk signature and the partition's byte offset on the disk.
    Mbr {
        /// The MBR disk signature (bytes 440..444 of the disk, little-endian).
        disk_signature: u32,
        /// The partition's start, in bytes.
        offset: u64,
    },
    /// A GPT partition, by its unique partition GUID.
    Gpt {
        /// Upper case, dashed, in GPT's mixed-endian reading (as `guestctl-part` prints it).
        partition_guid: String,
    },
    /// Anything else (volume GUID paths, removable media, unknown layouts).
    Other,
}

/// Facts read from the Windows hives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowsFacts {
    /// `ProductName` (with `Windows 10` → `Windows 11` on Windows 11, see the module docs).
    pub product_name: String,
    /// `InstallationType` (`Client`, `Server`, `Server Core`), empty when missing.
    pub product_variant: String,
    /// `EditionID` (`Professional`, `ServerStandard`, ...).
    pub edition_id: String,
    /// Major version (`CurrentMajorVersionNumber`, or from `CurrentVersion`).
    pub major_version: u32,
    /// Minor version.
    pub minor_version: u32,
    /// `CurrentBuildNumber` as stored, empty when missing.
    pub build_id: String,
    /// The update build revision (`UBR`), when present.
    pub ubr: Option<u32>,
    /// libosinfo short id (`win7`, `win11`, `win2k22`), empty when unknown.
    pub osinfo: String,
    /// Host name (`Tcpip\Parameters\Hostname`, else `ComputerName`).
    pub hostname: String,
    /// `ControlSet001`-style name of the current control set.
    pub current_control_set: String,
    /// Time zone key name (`Eastern Standard Time`) or, on old systems, `StandardName`.
    pub timezone: String,
    /// `SOFTWARE\Microsoft\Cryptography\MachineGuid`.
    pub machine_guid: String,
    /// Drive letter (`C`) → target, sorted by letter.
    pub drive_mappings: Vec<(String, DriveTarget)>,
    /// Installed applications (both Uninstall keys), sorted.
    pub applications: Vec<Application>,
    /// What could not be read, and why.
    pub warnings: Vec<String>,
}

fn open_hive(name: &str, bytes: &[u8], warnings: &mut Vec<String>) -> Option<Hive> {
    match Hive::from_bytes(bytes.to_vec()) {
        Ok(h) => {
            if h.dirty() {
                warnings.push(format!(
                    "{name} hive is dirty (transaction logs not replayed): read as it is"
                ));
            }
            Some(h)
        }
        Err(e) => {
            warnings.push(format!("{name} hive: {e}"));
            None
        }
    }
}

fn open_key<'h>(hive: &'h Hive, hname: &str, path: &str, w: &mut Vec<String>) -> Option<Key<'h>> {
    match hive.open(path) {
        Ok(Some(k)) => Some(k),
        Ok(None) => {
            w.push(format!("{hname}\\{path}: key not found"));
            None
        }
        Err(e) => {
            w.push(format!("{hname}\\{path}: {e}"));
            None
        }
    }
}

/// A string value (REG_SZ/EXPAND_SZ); `None` when missing (a warning if `warn_missing`) or
/// of another type (a warning).
fn string_value(
    key: &Key<'_>,
    ctx: &str,
    name: &str,
    warn_missing: bool,
    w: &mut Vec<String>,
) -> Option<String> {
    match key.value(name) {
        Ok(Some(v)) => match v.as_string() {
            Ok(s) => Some(s),
            Err(e) => {
                w.push(format!("{ctx}: {e}"));
                None
            }
        },
        Ok(None) => {
            if warn_missing {
                w.push(format!("{ctx}: value {name:?} not found"));
            }
            None
        }
        Err(e) => {
            w.push(format!("{ctx}: {e}"));
            None
        }
    }
}

fn dword_value(key: &Key<'_>, ctx: &str, name: &str, w: &mut Vec<String>) -> Option<u32> {
    match key.value(name) {
        Ok(Some(v)) => match v.as_u32() {
            Ok(n) => Some(n),
            Err(e) => {
                w.push(format!("{ctx}: {e}"));
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            w.push(format!("{ctx}: {e}"));
            None
        }
    }
}

/// Reads the Windows facts from the `SOFTWARE` and `SYSTEM` hive files.
pub fn windows_facts(software: &[u8], system: &[u8]) -> WindowsFacts {
    let mut f = WindowsFacts::default();
    let mut w = Vec::new();
    if let Some(sw) = open_hive("SOFTWARE", software, &mut w) {
        software_facts(&sw, &mut f, &mut w);
    }
    if let Some(sys) = open_hive("SYSTEM", system, &mut w) {
        system_facts(&sys, &mut f, &mut w);
    }
    f.osinfo = osinfo_id(&f);
    if f.osinfo == "win11" {
        f.product_name = f.product_name.replacen("Windows 10", "Windows 11", 1);
    }
    f.warnings = w;
    f
}

fn software_facts(hive: &Hive, f: &mut WindowsFacts, w: &mut Vec<String>) {
    const CV: &str = "Microsoft\\Windows NT\\CurrentVersion";
    if let Some(cv) = open_key(hive, "SOFTWARE", CV, w) {
        let ctx = format!("SOFTWARE\\{CV}");
        f.product_name = string_value(&cv, &ctx, "ProductName", true, w).unwrap_or_default();
        f.product_variant =
            string_value(&cv, &ctx, "InstallationType", true, w).unwrap_or_default();
        f.edition_id = string_value(&cv, &ctx, "EditionID", false, w).unwrap_or_default();
        let major = dword_value(&cv, &ctx, "CurrentMajorVersionNumber", w);
        let minor = dword_value(&cv, &ctx, "CurrentMinorVersionNumber", w);
        match (major, minor) {
            (Some(a), Some(b)) => {
                f.major_version = a;
                f.minor_version = b;
            }
            _ => {
                if let Some(s) = string_value(&cv, &ctx, "CurrentVersion", true, w) {
                    match parse_version(&s) {
                        Some((a, b)) => {
                            f.major_version = a;
                            f.minor_version = b;
                        }
                        None => w.push(format!("{ctx}: CurrentVersion {s:?} is not MAJOR.MINOR")),
                    }
                }
            }
        }
        f.build_id = string_value(&cv, &ctx, "CurrentBuildNumber", false, w)
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        f.ubr = dword_value(&cv, &ctx, "UBR", w);
    }
    if let Ok(Some(k)) = hive.open("Microsoft\\Cryptography") {
        f.machine_guid = string_value(
            &k,
            "SOFTWARE\\Microsoft\\Cryptography",
            "MachineGuid",
            true,
            w,
        )
        .unwrap_or_default();
    }
    let mut apps = Vec::new();
    let mut seen_nodes = HashSet::new();
    // Value-list entries the application scan may read: an honest hive stores each entry
    // once (4 bytes), so a quarter of the file is more than enough.
    let mut budget = hive.bytes().len() as u64 / 4 + 65_536;
    for path in [
        "Microsoft\\Windows\\CurrentVersion\\Uninstall",
        "WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall",
    ] {
        match hive.open(path) {
            Ok(Some(k)) => applications(&k, path, &mut seen_nodes, &mut budget, &mut apps, w),
            Ok(None) => {}
            Err(e) => w.push(format!("SOFTWARE\\{path}: {e}")),
        }
    }
    apps.sort_by(|a, b| {
        (a.name.to_lowercase(), &a.display_name).cmp(&(b.name.to_lowercase(), &b.display_name))
    });
    f.applications = apps;
}

fn applications(
    uninstall: &Key<'_>,
    path: &str,
    seen: &mut HashSet<u32>,
    budget: &mut u64,
    out: &mut Vec<Application>,
    w: &mut Vec<String>,
) {
    let (subkeys, errors) = uninstall.subkeys_lossy();
    for e in errors.iter().take(16) {
        w.push(format!("SOFTWARE\\{path}: {e}"));
    }
    if subkeys.len() > MAX_APPLICATIONS {
        w.push(format!(
            "SOFTWARE\\{path}: {} applications, only the first {MAX_APPLICATIONS} are read",
            subkeys.len()
        ));
    }
    let mut duplicates = 0usize;
    for k in subkeys.into_iter().take(MAX_APPLICATIONS) {
        // A key node listed twice (here or in the other Uninstall key) is read once, and the
        // value entries read are bounded by the hive's size: a hostile hive cannot multiply
        // the work by sharing lists.
        if !seen.insert(k.cell_offset()) {
            duplicates += 1;
            continue;
        }
        let cost = u64::from(k.value_count());
        if cost > *budget {
            w.push(format!(
                "SOFTWARE\\{path}: value lists larger than the hive could hold honestly, applications from {:?} on skipped",
                k.name()
            ));
            break;
        }
        *budget -= cost;
        let ctx = format!("SOFTWARE\\{path}\\{}", k.name());
        let (values, errors) = k.values_lossy();
        if let Some(e) = errors.first() {
            w.push(format!("{ctx}: {e}"));
        }
        let mut app = Application {
            name: k.name().to_string(),
            ..Application::default()
        };
        for v in &values {
            let field = match v.name().to_ascii_lowercase().as_str() {
                "displayname" => &mut app.display_name,
                "displayversion" => &mut app.version,
                "publisher" => &mut app.publisher,
                "installlocation" => &mut app.install_path,
                "urlinfoabout" => &mut app.url,
                "comments" => &mut app.description,
                _ => continue,
            };
            match v.as_string() {
                Ok(s) => *field = s,
                Err(e) => w.push(format!("{ctx}: {e}")),
            }
        }
        out.push(app);
    }
    if duplicates > 0 {
        w.push(format!(
            "SOFTWARE\\{path}: {duplicates} application keys listed more than once, read once"
        ));
    }
}

fn parse_version(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn system_facts(hive: &Hive, f: &mut WindowsFacts, w: &mut Vec<String>) {
    let current = open_key(hive, "SYSTEM", "Select", w)
        .and_then(|k| dword_value(&k, "SYSTEM\\Select", "Current", w));
    let ccs = match current {
        Some(n) if (1..=999).contains(&n) => format!("ControlSet{n:03}"),
        other => {
            w.push(format!(
                "SYSTEM\\Select\\Current is {other:?}: using ControlSet001"
            ));
            "ControlSet001".to_string()
        }
    };
    f.current_control_set = ccs.clone();
    let tcpip = format!("{ccs}\\Services\\Tcpip\\Parameters");
    let hostname = match hive.open(&tcpip) {
        Ok(Some(k)) => string_value(&k, &format!("SYSTEM\\{tcpip}"), "Hostname", false, w),
        Ok(None) => None,
        Err(e) => {
            w.push(format!("SYSTEM\\{tcpip}: {e}"));
            None
        }
    };
    f.hostname = match hostname.filter(|h| !h.is_empty()) {
        Some(h) => h,
        None => {
            let cn = format!("{ccs}\\Control\\ComputerName\\ComputerName");
            open_key(hive, "SYSTEM", &cn, w)
                .and_then(|k| string_value(&k, &format!("SYSTEM\\{cn}"), "ComputerName", true, w))
                .unwrap_or_default()
        }
    };
    let tz = format!("{ccs}\\Control\\TimeZoneInformation");
    if let Ok(Some(k)) = hive.open(&tz) {
        let ctx = format!("SYSTEM\\{tz}");
        f.timezone = string_value(&k, &ctx, "TimeZoneKeyName", false, w)
            .filter(|s| !s.is_empty())
            .or_else(|| string_value(&k, &ctx, "StandardName", true, w))
            .unwrap_or_default();
    } else {
        w.push(format!("SYSTEM\\{tz}: key not found"));
    }
    if let Some(md) = open_key(hive, "SYSTEM", "MountedDevices", w) {
        let (values, errors) = md.values_lossy();
        if let Some(e) = errors.first() {
            w.push(format!("SYSTEM\\MountedDevices: {e}"));
        }
        for v in values {
            let name = v.name();
            let Some(rest) = name.strip_prefix("\\DosDevices\\") else {
                continue;
            };
            let mut chars = rest.chars();
            let (Some(letter), Some(':'), None) = (chars.next(), chars.next(), chars.next()) else {
                continue;
            };
            if !letter.is_ascii_alphabetic() {
                continue;
            }
            match v.data() {
                Ok(d) => f
                    .drive_mappings
                    .push((letter.to_ascii_uppercase().to_string(), drive_target(&d))),
                Err(e) => w.push(format!("SYSTEM\\MountedDevices\\{name}: {e}")),
            }
        }
        f.drive_mappings.sort_by(|a, b| a.0.cmp(&b.0));
        f.drive_mappings.dedup_by(|a, b| a.0 == b.0);
    }
}

/// Decodes a `MountedDevices` value: 12 bytes = MBR disk signature (u32 LE) + partition byte
/// offset (u64 LE); `DMIO:ID:` + 16 bytes = GPT unique partition GUID; anything else is
/// [`DriveTarget::Other`].
pub fn drive_target(data: &[u8]) -> DriveTarget {
    if data.len() == 12 {
        let sig = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        let mut o = [0u8; 8];
        o.copy_from_slice(&data[4..12]);
        return DriveTarget::Mbr {
            disk_signature: sig,
            offset: u64::from_le_bytes(o),
        };
    }
    if data.len() == 24 && data.starts_with(b"DMIO:ID:") {
        let g = &data[8..24];
        return DriveTarget::Gpt {
            partition_guid: format!(
                "{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
                g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]
            ),
        };
    }
    DriveTarget::Other
}

fn osinfo_id(f: &WindowsFacts) -> String {
    let build: u32 = f.build_id.parse().unwrap_or(0);
    let server = if f.product_variant.is_empty() {
        f.product_name.contains("Server")
    } else {
        f.product_variant.starts_with("Server")
    };
    let id = match (f.major_version, f.minor_version, server) {
        (5, 1, _) => "winxp",
        (5, 2, false) => "winxp",
        (5, 2, true) => "win2k3",
        (6, 0, false) => "winvista",
        (6, 0, true) => "win2k8",
        (6, 1, false) => "win7",
        (6, 1, true) => "win2k8r2",
        (6, 2, false) => "win8",
        (6, 2, true) => "win2k12",
        (6, 3, false) => "win8.1",
        (6, 3, true) => "win2k12r2",
        (10, 0, false) if build >= 22000 => "win11",
        (10, 0, false) => "win10",
        (10, 0, true) if build >= 26100 => "win2k25",
        (10, 0, true) if build >= 20348 => "win2k22",
        (10, 0, true) if build >= 17763 => "win2k19",
        (10, 0, true) => "win2k16",
        _ => "",
    };
    id.to_string()
}

/// The architecture of a PE executable (`cmd.exe`), named as libguestfs does: `i386`,
/// `x86_64`, `aarch64`, `arm`. `None` when `bytes` is not a PE file or the machine is another.
pub fn pe_arch(bytes: &[u8]) -> Option<&'static str> {
    if bytes.get(..2)? != b"MZ" {
        return None;
    }
    let lfanew = u32::from_le_bytes(bytes.get(0x3c..0x40)?.try_into().ok()?) as usize;
    let sig = bytes.get(lfanew..lfanew.checked_add(6)?)?;
    if &sig[..4] != b"PE\0\0" {
        return None;
    }
    match u16::from_le_bytes([sig[4], sig[5]]) {
        0x014c => Some("i386"),
        0x8664 => Some("x86_64"),
        0xaa64 => Some("aarch64"),
        0x01c0 | 0x01c2 | 0x01c4 => Some("arm"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drive_targets() {
        let mbr = [0x31, 0x32, 0x33, 0x34, 0, 0, 0, 0x10, 0, 0, 0, 0];
        assert_eq!(
            drive_target(&mbr),
            DriveTarget::Mbr {
                disk_signature: 0x3433_3231,
                offset: 0x1000_0000
            }
        );
        let mut gpt = b"DMIO:ID:".to_vec();
        gpt.extend_from_slice(&[
            0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
            0xc9, 0x3b,
        ]);
        assert_eq!(
            drive_target(&gpt),
            DriveTarget::Gpt {
                partition_guid: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B".into()
            }
        );
        // Device paths are stored as UTF-16 text: longer than 12 bytes.
        let path: Vec<u8> = "\\??\\USBSTOR#Disk&Ven_X"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(drive_target(&path), DriveTarget::Other);
    }

    #[test]
    fn osinfo_ids() {
        let mk = |maj, min, var: &str, build: &str| WindowsFacts {
            major_version: maj,
            minor_version: min,
            product_variant: var.into(),
            build_id: build.into(),
            ..WindowsFacts::default()
        };
        assert_eq!(osinfo_id(&mk(6, 1, "Client", "7601")), "win7");
        assert_eq!(osinfo_id(&mk(6, 1, "Server", "7601")), "win2k8r2");
        assert_eq!(osinfo_id(&mk(10, 0, "Client", "19045")), "win10");
        assert_eq!(osinfo_id(&mk(10, 0, "Client", "22631")), "win11");
        assert_eq!(osinfo_id(&mk(10, 0, "Server Core", "20348")), "win2k22");
        assert_eq!(osinfo_id(&mk(10, 0, "Server", "17763")), "win2k19");
        assert_eq!(osinfo_id(&mk(10, 0, "Server", "14393")), "win2k16");
        assert_eq!(osinfo_id(&mk(6, 3, "Client", "9600")), "win8.1");
    }

    #[test]
    fn pe_arch_rejects_garbage() {
        assert_eq!(pe_arch(b""), None);
        assert_eq!(pe_arch(b"MZ"), None);
        let mut b = vec![0u8; 0x40];
        b[..2].copy_from_slice(b"MZ");
        b[0x3c..0x40].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(pe_arch(&b), None);
    }
}
