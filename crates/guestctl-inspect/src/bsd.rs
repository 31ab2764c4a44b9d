//! FreeBSD, NetBSD and OpenBSD facts from their configuration files: pure functions over
//! bytes. Which files libguestfs reads is followed (`/etc/motd` for FreeBSD and OpenBSD
//! versions, `/etc/release` for NetBSD, `/etc/rc.conf` and `/etc/myname` for hostnames);
//! FreeBSD's own `/bin/freebsd-version` and `/etc/os-release` are preferred when present.

use crate::linux::parse_version;

/// A BSD release as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BsdRelease {
    /// `FreeBSD 13.2-RELEASE-p4`, `NetBSD 9.3`, ...
    pub product_name: String,
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

/// `NAME X.Y...` found in the first line of `bytes` (motd, release): the product name is
/// that line up to the version's end (as libguestfs keeps the whole first line, so do we).
pub fn release_from_banner(bytes: &[u8], name: &str) -> Option<BsdRelease> {
    let line = first_line(bytes);
    let at = line.find(&format!("{name} "))?;
    let ver = line[at + name.len() + 1..].split_whitespace().next()?;
    if !ver.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let (major, minor) = parse_version(ver);
    Some(BsdRelease {
        product_name: line.trim_end_matches(':').to_string(),
        major,
        minor,
    })
}

/// `USERLAND_VERSION="13.2-RELEASE-p4"` of FreeBSD's `/bin/freebsd-version` (a shell script).
pub fn freebsd_userland_version(script: &[u8]) -> Option<String> {
    String::from_utf8_lossy(script).lines().find_map(|l| {
        let v = l.trim().strip_prefix("USERLAND_VERSION=")?;
        let v = v.trim_matches(|c| c == '"' || c == '\'');
        (!v.is_empty() && !v.contains('$')).then(|| v.to_string())
    })
}

/// The last `hostname="..."` assignment of an `rc.conf`.
pub fn rc_conf_hostname(bytes: &[u8]) -> Option<String> {
    let mut found = None;
    for l in String::from_utf8_lossy(bytes).lines() {
        let l = l.trim();
        if let Some(v) = l.strip_prefix("hostname=") {
            let v = v.split('#').next().unwrap_or("").trim();
            let v = v.trim_matches(|c| c == '"' || c == '\'');
            if !v.is_empty() {
                found = Some(v.to_string());
            }
        }
    }
    found
}

/// `/etc/myname` (NetBSD, OpenBSD): its first line that is not a comment.
pub fn myname(bytes: &[u8]) -> Option<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
}

/// What a BSD fstab device names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BsdDevice {
    /// GPT partition `part` of disk `disk` (`/dev/ada0p2`, `/dev/vtbd1p3`).
    Gpt {
        /// Disk index (driver unit number).
        disk: usize,
        /// Partition number.
        part: u32,
    },
    /// A disklabel partition: FreeBSD `/dev/ada0s1a` (slice 1) or NetBSD/OpenBSD `/dev/wd0a`.
    Label {
        /// Disk index.
        disk: usize,
        /// MBR slice, where named.
        slice: Option<u32>,
        /// The partition letter.
        letter: char,
    },
    /// A whole MBR slice (`/dev/ada0s1`).
    Slice {
        /// Disk index.
        disk: usize,
        /// MBR slice number.
        slice: u32,
    },
    /// `/dev/gpt/NAME`: the GPT partition label.
    GptName(String),
    /// `/dev/ufs/NAME` or `/dev/label/NAME`: the filesystem's volume name.
    FsLabel(String),
    /// `/dev/ufsid/ID`: the UFS id (our UUID for UFS).
    UfsId(String),
    /// `/dev/gptid/GUID`: the GPT partition GUID.
    GptId(String),
}

/// Disk drivers of the BSDs whose unit numbers are disk order.
const DRIVERS: [&str; 10] = [
    "ada", "vtbd", "nvd", "nda", "da", "ad", "wd", "sd", "xbd", "ld",
];

/// Parses a BSD device name from an fstab.
pub fn parse_device(dev: &str) -> Option<BsdDevice> {
    let rest = dev.strip_prefix("/dev/")?;
    for (prefix, mk) in [
        ("gpt/", BsdDevice::GptName as fn(String) -> BsdDevice),
        ("ufs/", BsdDevice::FsLabel),
        ("label/", BsdDevice::FsLabel),
        ("ufsid/", BsdDevice::UfsId),
        ("gptid/", BsdDevice::GptId),
    ] {
        if let Some(v) = rest.strip_prefix(prefix) {
            return (!v.is_empty()).then(|| mk(v.to_string()));
        }
    }
    let driver = DRIVERS.iter().find(|d| {
        rest.strip_prefix(*d)
            .is_some_and(|t| t.starts_with(|c: char| c.is_ascii_digit()))
    })?;
    let tail = &rest[driver.len()..];
    let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
    let disk: usize = digits.parse().ok()?;
    let tail = &tail[digits.len()..];
    let num = |s: &str| -> Option<(u32, String)> {
        let d: String = s.chars().take_while(char::is_ascii_digit).collect();
        Some((d.parse().ok()?, s[d.len()..].to_string()))
    };
    if let Some(p) = tail.strip_prefix('p') {
        let (part, rest) = num(p)?;
        return rest.is_empty().then_some(BsdDevice::Gpt { disk, part });
    }
    if let Some(s) = tail.strip_prefix('s') {
        let (slice, rest) = num(s)?;
        return match rest.as_bytes() {
            [] => Some(BsdDevice::Slice { disk, slice }),
            [l @ b'a'..=b'p'] => Some(BsdDevice::Label {
                disk,
                slice: Some(slice),
                letter: char::from(*l),
            }),
            _ => None,
        };
    }
    match tail.as_bytes() {
        [l @ b'a'..=b'p'] => Some(BsdDevice::Label {
            disk,
            slice: None,
            letter: char::from(*l),
        }),
        _ => None,
    }
}

/// A pkg directory name `name-version` (NetBSD pkgsrc, OpenBSD packages) split at its last
/// hyphen.
pub fn split_pkg_dir(name: &str) -> Option<(String, String)> {
    let (n, v) = name.rsplit_once('-')?;
    (!n.is_empty() && v.starts_with(|c: char| c.is_ascii_digit()))
        .then(|| (n.to_string(), v.to_string()))
}

/// libosinfo short ids: `freebsd13.2`, `netbsd9.3`, `openbsd7.3`.
pub fn osinfo(distro: &str, major: u32, minor: u32) -> String {
    if major == 0 {
        return String::new();
    }
    format!("{distro}{major}.{minor}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banners() {
        let r = release_from_banner(
            b"FreeBSD 12.1-RELEASE (GENERIC) #0 r354233: Fri Nov  1 00:00:00 UTC 2019\n\nWelcome",
            "FreeBSD",
        )
        .expect("freebsd");
        assert_eq!((r.major, r.minor), (12, 1));
        let r = release_from_banner(
            b"NetBSD 9.3 (GENERIC) #0: Thu Aug  4 15:30:37 UTC 2022\n",
            "NetBSD",
        )
        .expect("netbsd");
        assert_eq!((r.major, r.minor), (9, 3));
        assert!(release_from_banner(b"Welcome to FreeBSD!\n", "FreeBSD").is_none());
        assert!(release_from_banner(b"", "OpenBSD").is_none());
    }

    #[test]
    fn freebsd_version_script() {
        let s = b"#!/bin/sh\nset -e\nUSERLAND_VERSION=\"13.2-RELEASE-p4\"\n: ${ROOT:=}\n";
        assert_eq!(
            freebsd_userland_version(s).as_deref(),
            Some("13.2-RELEASE-p4")
        );
        assert_eq!(freebsd_userland_version(b"USERLAND_VERSION=$X\n"), None);
    }

    #[test]
    fn hostnames() {
        assert_eq!(
            rc_conf_hostname(b"hostname=\"a\"\nsshd_enable=YES\nhostname=\"b.example\" # x\n")
                .as_deref(),
            Some("b.example")
        );
        assert_eq!(
            myname(b"# c\nbsd.example\n").as_deref(),
            Some("bsd.example")
        );
    }

    #[test]
    fn devices() {
        assert_eq!(
            parse_device("/dev/ada0p2"),
            Some(BsdDevice::Gpt { disk: 0, part: 2 })
        );
        assert_eq!(
            parse_device("/dev/vtbd1p3"),
            Some(BsdDevice::Gpt { disk: 1, part: 3 })
        );
        assert_eq!(
            parse_device("/dev/ada0s1a"),
            Some(BsdDevice::Label {
                disk: 0,
                slice: Some(1),
                letter: 'a'
            })
        );
        assert_eq!(
            parse_device("/dev/da2s3"),
            Some(BsdDevice::Slice { disk: 2, slice: 3 })
        );
        assert_eq!(
            parse_device("/dev/wd0e"),
            Some(BsdDevice::Label {
                disk: 0,
                slice: None,
                letter: 'e'
            })
        );
        assert_eq!(
            parse_device("/dev/gpt/rootfs"),
            Some(BsdDevice::GptName("rootfs".into()))
        );
        assert_eq!(
            parse_device("/dev/ufs/ROOT"),
            Some(BsdDevice::FsLabel("ROOT".into()))
        );
        assert_eq!(parse_device("/dev/sda1"), None, "a Linux name");
        assert_eq!(parse_device("/dev/ada0x"), None);
        assert_eq!(parse_device("/dev/gpt/"), None);
    }

    #[test]
    fn pkg_dirs() {
        assert_eq!(
            split_pkg_dir("bash-5.2.15"),
            Some(("bash".into(), "5.2.15".into()))
        );
        assert_eq!(
            split_pkg_dir("py311-setuptools-63.1.0"),
            Some(("py311-setuptools".into(), "63.1.0".into()))
        );
        assert_eq!(split_pkg_dir("noversion"), None);
    }
}
