//! Linux and BSD facts from files of the root filesystem: release files, host name, fstab.
//! Pure functions over the files' bytes.

use std::collections::BTreeMap;

/// The most bytes of a configuration file we parse (release files, fstab, hostname, ...).
pub const MAX_CONFIG_FILE: usize = 1 << 20;
/// The most fstab lines we use.
pub const MAX_FSTAB_ENTRIES: usize = 1024;

/// What the release files say about the distribution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Release {
    /// libguestfs distro name (`debian`, `rhel`, `archlinux`, ...), `unknown` when none.
    pub distro: String,
    /// Human product name.
    pub product_name: String,
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// os-release `BUILD_ID`, when present.
    pub build_id: String,
    /// os-release `VERSION_ID` (or the legacy file's version), as written.
    pub version_id: String,
    /// The file it came from.
    pub source: String,
}

/// Parses a shell-style `KEY=value` file (os-release, lsb-release, sysconfig): quotes and
/// backslash escapes removed, comments and malformed lines ignored.
pub fn parse_kv(bytes: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_CONFIG_FILE)]);
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        out.insert(k.to_string(), unquote(v.trim()));
    }
    out
}

fn unquote(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => out.push(c),
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            (None, '#') if out.is_empty() || out.ends_with(' ') => break,
            (_, c) => out.push(c),
        }
    }
    out.trim_end().to_string()
}

/// `"12.4"` → (12, 4); `"7"` → (7, 0); `"10.10"` → (10, 10); `"rolling"` → (0, 0). Leading
/// non-digits are skipped (`"v3.18"`).
pub fn parse_version(s: &str) -> (u32, u32) {
    let s = s.trim_start_matches(|c: char| !c.is_ascii_digit());
    let mut parts = s.split(|c: char| !c.is_ascii_digit());
    let num = |p: Option<&str>| p.and_then(|p| p.parse::<u32>().ok()).unwrap_or(0);
    let major = num(parts.next());
    let minor = num(parts.next());
    (major, minor)
}

/// Maps an os-release `ID` to libguestfs's distro name.
pub fn distro_from_os_release_id(id: &str) -> Option<&'static str> {
    Some(match id {
        "alpine" => "alpinelinux",
        "altlinux" => "altlinux",
        "arch" | "archarm" => "archlinux",
        "almalinux" => "almalinux",
        "centos" => "centos",
        "coreos" | "fedora-coreos" | "flatcar" => "coreos",
        "debian" => "debian",
        "fedora" => "fedora",
        "frugalware" => "frugalware",
        "gentoo" => "gentoo",
        "kali" => "kalilinux",
        "kylin" => "kylin",
        "linuxmint" => "linuxmint",
        "mageia" => "mageia",
        "manjaro" | "manjaro-arm" => "manjaro",
        "neokylin" => "neokylin",
        "nixos" => "nixos",
        "openEuler" | "openeuler" => "openeuler",
        "opensuse" | "opensuse-leap" | "opensuse-tumbleweed" | "opensuse-microos" => "opensuse",
        "ol" => "oraclelinux",
        "pld" => "pldlinux",
        "rhel" => "rhel",
        "rocky" => "rocky",
        "sles" | "sled" | "sles_sap" => "sles",
        "slackware" => "slackware",
        "ubuntu" => "ubuntu",
        "void" => "voidlinux",
        "amzn" => "amazonlinux",
        "photon" => "photon",
        "clear-linux-os" => "clearlinux",
        "cirros" => "cirros",
        "buildroot" => "buildroot",
        "scientific" => "scientificlinux",
        "virtuozzo" => "virtuozzo",
        "freebsd" => "freebsd",
        _ => return None,
    })
}

/// The release described by an os-release file.
pub fn release_from_os_release(bytes: &[u8]) -> Option<Release> {
    let kv = parse_kv(bytes);
    let id = kv.get("ID")?;
    let distro = distro_from_os_release_id(id)
        .map(str::to_string)
        .or_else(|| {
            // An unknown ID: fall back on the first known ID_LIKE, as a "-based" family.
            kv.get("ID_LIKE").and_then(|like| {
                like.split_whitespace()
                    .find_map(distro_from_os_release_id)
                    .map(|d| match d {
                        "rhel" | "fedora" | "centos" => "redhat-based".to_string(),
                        "suse" | "opensuse" | "sles" => "suse-based".to_string(),
                        other => other.to_string(),
                    })
            })
        })
        .unwrap_or_else(|| "unknown".to_string());
    let version_id = kv.get("VERSION_ID").cloned().unwrap_or_default();
    let (major, minor) = parse_version(&version_id);
    let product_name = kv
        .get("PRETTY_NAME")
        .or_else(|| kv.get("NAME"))
        .cloned()
        .unwrap_or_default();
    Some(Release {
        distro,
        product_name,
        major,
        minor,
        build_id: kv.get("BUILD_ID").cloned().unwrap_or_default(),
        version_id,
        source: "/etc/os-release".into(),
    })
}

/// The release described by `/etc/lsb-release` (Ubuntu, Mint, ...).
pub fn release_from_lsb_release(bytes: &[u8]) -> Option<Release> {
    let kv = parse_kv(bytes);
    let id = kv.get("DISTRIB_ID")?;
    let distro = match id.to_ascii_lowercase().as_str() {
        "ubuntu" => "ubuntu",
        "linuxmint" => "linuxmint",
        "kali" => "kalilinux",
        "debian" => "debian",
        "mandrivalinux" => "mandriva",
        "mageia" => "mageia",
        "manjarolinux" => "manjaro",
        _ => return None,
    };
    let version_id = kv.get("DISTRIB_RELEASE").cloned().unwrap_or_default();
    let (major, minor) = parse_version(&version_id);
    Some(Release {
        distro: distro.into(),
        product_name: kv.get("DISTRIB_DESCRIPTION").cloned().unwrap_or_default(),
        major,
        minor,
        build_id: String::new(),
        version_id,
        source: "/etc/lsb-release".into(),
    })
}

/// The legacy release files, most specific first: `(path, distro)`. The distro `redhat` is
/// refined from the file's text (RHEL, CentOS, Fedora, Scientific, ...).
pub const LEGACY_RELEASE_FILES: &[(&str, &str)] = &[
    ("/etc/rocky-release", "rocky"),
    ("/etc/almalinux-release", "almalinux"),
    ("/etc/oracle-release", "oraclelinux"),
    ("/etc/centos-release", "centos"),
    ("/etc/fedora-release", "fedora"),
    ("/etc/redhat-release", "redhat"),
    ("/etc/altlinux-release", "altlinux"),
    ("/etc/SuSE-release", "opensuse"),
    ("/etc/mageia-release", "mageia"),
    ("/etc/mandriva-release", "mandriva"),
    ("/etc/debian_version", "debian"),
    ("/etc/arch-release", "archlinux"),
    ("/etc/gentoo-release", "gentoo"),
    ("/etc/alpine-release", "alpinelinux"),
    ("/etc/slackware-version", "slackware"),
    ("/etc/frugalware-release", "frugalware"),
    ("/etc/pld-release", "pldlinux"),
    ("/etc/void-release", "voidlinux"),
    ("/etc/ttylinux-target", "ttylinux"),
    ("/etc/meego-release", "meego"),
];

/// The release described by one legacy file (see [`LEGACY_RELEASE_FILES`]).
pub fn release_from_legacy(path: &str, distro: &str, bytes: &[u8]) -> Release {
    // Release files are a line or a few: 64 KiB is plenty.
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64 << 10)]);
    let first = text.lines().next().unwrap_or("").trim().to_string();
    let mut distro = distro.to_string();
    if distro == "redhat" {
        let l = first.to_ascii_lowercase();
        distro = if l.contains("centos") {
            "centos"
        } else if l.contains("fedora") {
            "fedora"
        } else if l.contains("scientific") {
            "scientificlinux"
        } else if l.contains("rocky") {
            "rocky"
        } else if l.contains("alma") {
            "almalinux"
        } else if l.contains("oracle") {
            "oraclelinux"
        } else if l.contains("red hat enterprise") {
            "rhel"
        } else {
            "redhat-based"
        }
        .to_string();
    }
    let (version_id, product_name) = match distro.as_str() {
        // These files hold only a version (debian: "12.4" or "bookworm/sid").
        "debian" | "alpinelinux" | "voidlinux" => (first.clone(), first.clone()),
        // SuSE-release: first line is the name, then VERSION = / PATCHLEVEL = lines.
        "opensuse" => {
            let kv: BTreeMap<String, String> = text
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            let v = match (kv.get("VERSION"), kv.get("PATCHLEVEL")) {
                (Some(v), Some(p)) => format!("{v}.{p}"),
                (Some(v), None) => v.clone(),
                _ => String::new(),
            };
            if first.starts_with("SUSE Linux Enterprise") {
                distro = "sles".into();
            }
            (v, first.clone())
        }
        // "Arch Linux" has no version; the file may be empty.
        "archlinux" | "gentoo" | "ttylinux" => {
            let v = if distro == "gentoo" {
                first.rsplit(' ').next().unwrap_or_default().to_string()
            } else {
                String::new()
            };
            (v, first.clone())
        }
        _ => {
            // "Fedora release 38 (Thirty Eight)", "CentOS Linux release 7.9.2009 (Core)",
            // "Slackware 15.0", "Mageia release 9 (Official) for x86_64".
            let v = first
                .split_whitespace()
                .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
                .unwrap_or_default()
                .to_string();
            (v, first.clone())
        }
    };
    let (major, minor) = parse_version(&version_id);
    Release {
        distro,
        product_name,
        major,
        minor,
        build_id: String::new(),
        version_id,
        source: path.to_string(),
    }
}

/// The libosinfo short id for a Linux release, by libguestfs's rules
/// (`guestfs_inspect_get_osinfo`): `centos7.0`/`centos6.10`/`centos8`, `rocky9`, `circle8`,
/// `debian12`, `fedora39`, `mageia9`, `sles15sp5`/`sles12`, `ubuntu22.04`, `archlinux`,
/// `alt10.1`, otherwise `{distro}{major}.{minor}` (`rhel9.4`, `almalinux9.3`,
/// `oraclelinux9.3`, `amazonlinux2023.0`), and `unknown` when no version is known.
pub fn osinfo(distro: &str, major: u32, minor: u32) -> String {
    match distro {
        "centos" if major >= 8 => return format!("centos{major}"),
        "centos" if major == 7 => return "centos7.0".into(),
        "centos" if major == 6 => return format!("centos6.{minor}"),
        "circle" | "rocky" if major >= 8 => return format!("{distro}{major}"),
        "debian" if major >= 4 => return format!("debian{major}"),
        "fedora" | "mageia" => return format!("{distro}{major}"),
        "sles" if minor == 0 => return format!("sles{major}"),
        "sles" => return format!("sles{major}sp{minor}"),
        "ubuntu" => return format!("ubuntu{major}.{minor:02}"),
        "archlinux" | "gentoo" | "voidlinux" => return distro.to_string(),
        "altlinux" if major >= 8 => return format!("alt{major}.{minor}"),
        _ => {}
    }
    if distro != "unknown" && !distro.is_empty() && (major > 0 || minor > 0) {
        format!("{distro}{major}.{minor}")
    } else {
        "unknown".into()
    }
}

/// The package format and manager libguestfs reports for a distro.
pub fn package_format_and_management(distro: &str, major: u32) -> (&'static str, &'static str) {
    match distro {
        "debian" | "ubuntu" | "linuxmint" | "kalilinux" | "kylin" => ("deb", "apt"),
        "fedora" => ("rpm", "dnf"),
        "rhel" | "centos" | "rocky" | "almalinux" | "oraclelinux" | "scientificlinux"
        | "redhat-based" | "amazonlinux" | "openeuler" | "virtuozzo" => {
            if major >= 8 || distro == "openeuler" {
                ("rpm", "dnf")
            } else {
                ("rpm", "yum")
            }
        }
        "opensuse" | "sles" | "suse-based" => ("rpm", "zypper"),
        "mageia" | "mandriva" | "openmandriva" => ("rpm", "urpmi"),
        "altlinux" => ("rpm", "apt"),
        "archlinux" | "manjaro" | "frugalware" => ("pacman", "pacman"),
        "alpinelinux" => ("apk", "apk"),
        "gentoo" => ("ebuild", "portage"),
        "voidlinux" => ("xbps", "xbps"),
        "photon" => ("rpm", "tdnf"),
        _ => ("", ""),
    }
}

/// The host name in `/etc/hostname`, `/etc/HOSTNAME` (first word of the first non-comment
/// line) or, with `is_sysconfig`, the `HOSTNAME=` of `/etc/sysconfig/network`.
pub fn parse_hostname(bytes: &[u8], is_sysconfig: bool) -> Option<String> {
    if is_sysconfig {
        return parse_kv(bytes)
            .get("HOSTNAME")
            .cloned()
            .filter(|h| !h.is_empty());
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_CONFIG_FILE)]);
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().next())
        .map(|h| h.chars().take(255).collect())
}

/// One line of `/etc/fstab`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstabEntry {
    /// The device spec: `UUID=...`, `LABEL=...`, `/dev/sda1`, ...
    pub spec: String,
    /// The mountpoint.
    pub file: String,
    /// The filesystem type.
    pub vfstype: String,
    /// Mount options.
    pub options: String,
}

/// Parses fstab: comments and malformed lines skipped (reported in `warnings`), octal escapes
/// (`\040`) decoded, at most [`MAX_FSTAB_ENTRIES`] entries.
pub fn parse_fstab(bytes: &[u8], warnings: &mut Vec<String>) -> Vec<FstabEntry> {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_CONFIG_FILE)]);
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 2 {
            warnings.push(format!("/etc/fstab line {}: malformed: {line:?}", n + 1));
            continue;
        }
        if out.len() >= MAX_FSTAB_ENTRIES {
            warnings.push(format!(
                "/etc/fstab: more than {MAX_FSTAB_ENTRIES} entries, the rest ignored"
            ));
            break;
        }
        out.push(FstabEntry {
            spec: unescape_octal(f[0]),
            file: unescape_octal(f[1]),
            vfstype: f.get(2).copied().unwrap_or("auto").to_string(),
            options: f.get(3).copied().unwrap_or("defaults").to_string(),
        });
    }
    out
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push((v & 0xff) as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The time zone from `/etc/timezone` (Debian) or the `ZONE=` of `/etc/sysconfig/clock`.
pub fn parse_timezone_file(bytes: &[u8]) -> Option<String> {
    let kv = parse_kv(bytes);
    if let Some(z) = kv.get("ZONE").or_else(|| kv.get("TIMEZONE")) {
        return Some(z.clone()).filter(|z| !z.is_empty());
    }
    parse_hostname(bytes, false)
}

/// The time zone named by an `/etc/localtime` symlink target
/// (`/usr/share/zoneinfo/Europe/Paris` → `Europe/Paris`).
pub fn timezone_from_localtime_target(target: &[u8]) -> Option<String> {
    let t = String::from_utf8_lossy(target);
    let (_, zone) = t.split_once("zoneinfo/")?;
    let zone = zone
        .strip_prefix("posix/")
        .or_else(|| zone.strip_prefix("right/"))
        .unwrap_or(zone);
    Some(zone.to_string()).filter(|z| !z.is_empty())
}

/// The kernel version in a `/boot` file name (`vmlinuz-6.1.0-13-amd64` → `6.1.0-13-amd64`).
pub fn kernel_from_boot_name(name: &str) -> Option<String> {
    for prefix in ["vmlinuz-", "vmlinux-", "kernel-", "bzImage-"] {
        if let Some(v) = name.strip_prefix(prefix) {
            if v.starts_with(|c: char| c.is_ascii_digit()) {
                return Some(v.to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_quoting_and_versions() {
        let r = release_from_os_release(
            b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
              VERSION_ID=\"12\"\nID=debian\n# comment\nbogus line\n",
        )
        .expect("release");
        assert_eq!(r.distro, "debian");
        assert_eq!(r.product_name, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!((r.major, r.minor), (12, 0));
        let r = release_from_os_release(b"ID='rocky'\nVERSION_ID=9.3\nPRETTY_NAME='Rocky \\'x\\''")
            .expect("release");
        assert_eq!((r.distro.as_str(), r.major, r.minor), ("rocky", 9, 3));
        let r = release_from_os_release(b"ID=mydistro\nID_LIKE=\"rhel centos fedora\"\n")
            .expect("release");
        assert_eq!(r.distro, "redhat-based");
        assert!(release_from_os_release(b"NAME=x\n").is_none());
        assert_eq!(parse_version("v3.18.4"), (3, 18));
        assert_eq!(parse_version("rolling"), (0, 0));
    }

    #[test]
    fn legacy_files() {
        let r = release_from_legacy(
            "/etc/redhat-release",
            "redhat",
            b"CentOS Linux release 7.9.2009 (Core)\n",
        );
        assert_eq!((r.distro.as_str(), r.major, r.minor), ("centos", 7, 9));
        let r = release_from_legacy(
            "/etc/redhat-release",
            "redhat",
            b"Red Hat Enterprise Linux Server release 6.10 (Santiago)\n",
        );
        assert_eq!((r.distro.as_str(), r.major, r.minor), ("rhel", 6, 10));
        let r = release_from_legacy("/etc/debian_version", "debian", b"5.0.1\n");
        assert_eq!((r.product_name.as_str(), r.major, r.minor), ("5.0.1", 5, 0));
        let r = release_from_legacy(
            "/etc/SuSE-release",
            "opensuse",
            b"SUSE Linux Enterprise Server 11 (x86_64)\nVERSION = 11\nPATCHLEVEL = 4\n",
        );
        assert_eq!((r.distro.as_str(), r.major, r.minor), ("sles", 11, 4));
        assert_eq!(osinfo("sles", 11, 4), "sles11sp4");
        assert_eq!(osinfo("ubuntu", 10, 10), "ubuntu10.10");
        assert_eq!(osinfo("ubuntu", 22, 4), "ubuntu22.04");
        assert_eq!(osinfo("debian", 5, 0), "debian5");
        assert_eq!(osinfo("rhel", 9, 2), "rhel9.2");
        // The RHEL family as libguestfs names it.
        assert_eq!(osinfo("rocky", 9, 3), "rocky9");
        assert_eq!(osinfo("almalinux", 9, 3), "almalinux9.3");
        assert_eq!(osinfo("oraclelinux", 8, 9), "oraclelinux8.9");
        assert_eq!(osinfo("centos", 7, 9), "centos7.0");
        assert_eq!(osinfo("centos", 6, 10), "centos6.10");
        assert_eq!(osinfo("centos", 9, 0), "centos9");
        assert_eq!(osinfo("amazonlinux", 2023, 0), "amazonlinux2023.0");
        assert_eq!(osinfo("amazonlinux", 2, 0), "amazonlinux2.0");
        assert_eq!(osinfo("linuxmint", 21, 2), "linuxmint21.2");
        assert_eq!(osinfo("sles", 15, 0), "sles15");
        assert_eq!(osinfo("unknown", 0, 0), "unknown");
        assert_eq!(osinfo("rhel", 0, 0), "unknown");
    }

    #[test]
    fn fstab_and_hostname() {
        let mut w = Vec::new();
        let f = parse_fstab(
            b"# /etc/fstab\nUUID=abcd / ext4 errors=remount-ro 0 1\nLABEL=My\\040Boot /boot ext2 defaults 0 2\n\
              justone\n/dev/vda3 none swap sw 0 0\n",
            &mut w,
        );
        assert_eq!(f.len(), 3);
        assert_eq!(f[1].spec, "LABEL=My Boot");
        assert_eq!(f[2].vfstype, "swap");
        assert_eq!(w.len(), 1);
        assert_eq!(
            parse_hostname(b"# c\n  web01.example.com  \n", false).as_deref(),
            Some("web01.example.com")
        );
        assert_eq!(
            parse_hostname(b"NETWORKING=yes\nHOSTNAME=rhel6.test\n", true).as_deref(),
            Some("rhel6.test")
        );
        assert_eq!(
            timezone_from_localtime_target(b"../usr/share/zoneinfo/Europe/Paris").as_deref(),
            Some("Europe/Paris")
        );
        assert_eq!(
            kernel_from_boot_name("vmlinuz-6.1.0-13-amd64").as_deref(),
            Some("6.1.0-13-amd64")
        );
    }
}
