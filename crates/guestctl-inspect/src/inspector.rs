//! Finding operating systems among opened filesystems and filling [`OsInfo`] for each.

use std::sync::Arc;

use guestctl_fs::mount::MountTree;
use guestctl_fs::{FileType, Filesystem};

use crate::linux::{self, FstabEntry, Release};
use crate::{elf, packages, sqlite, Application, FsRecord, OsInfo};

/// The most bytes read from one small configuration file.
const SMALL_FILE: u64 = linux::MAX_CONFIG_FILE as u64;
/// The most pacman package directories read.
const MAX_PACMAN_DIRS: usize = 100_000;

/// A filesystem (or unreadable container) on one device, offered to the inspector.
#[derive(Debug, Clone, Default)]
pub struct Candidate {
    /// libguestfs-style device name (`/dev/sda1`).
    pub device: String,
    /// The opened filesystem, when guestctl reads this type.
    pub fs: Option<Arc<dyn Filesystem>>,
    /// `ext4`, `vfat`, `swap`, ...
    pub fs_type: String,
    /// Volume label.
    pub label: String,
    /// Filesystem UUID / serial.
    pub uuid: String,
    /// GPT partition GUID (`PARTUUID=`), or the MBR form `DISKID-NN`.
    pub part_uuid: String,
    /// GPT partition name (`PARTLABEL=`).
    pub part_label: String,
    /// The disk's MBR signature (8 lower-case hex digits) or GPT disk GUID.
    pub disk_id: String,
    /// The partition's byte offset on its disk (Windows `MountedDevices` names MBR
    /// partitions by disk signature + offset).
    pub part_start: Option<u64>,
    /// The BSD disklabel letter (`a`, `d`, ...) of a partition found in a disklabel.
    pub bsd_partition: String,
    /// Set when something that may hold files is here and guestctl cannot read it (a
    /// filesystem type without a reader, an encrypted volume, an LVM volume of a kind not
    /// mapped, a filesystem that failed to open); `fs` is then `None`. Swap, LVM physical
    /// volumes and unrecognised content leave it `None`.
    pub unreadable: Option<Unreadable>,
}

/// Something found on the disks that guestctl cannot look into, so an operating system (or
/// part of one) there is not seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// What it is: `btrfs filesystem`, `crypto_LUKS encrypted volume`, `LVM2 logical volume`.
    pub what: String,
    /// Why it is not read: `guestctl cannot read it`, or the error opening it gave.
    pub why: String,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.why)
    }
}

/// The warning for an unreadable device that no operating system found mounts:
/// `/dev/sda4: btrfs filesystem: guestctl cannot read it, an operating system on it is not
/// inspected`.
pub fn unreadable_warning(device: &str, u: &Unreadable) -> String {
    format!("{device}: {u}, an operating system on it is not inspected")
}

/// What to collect.
#[derive(Debug, Clone)]
pub struct InspectOptions {
    /// List installed applications (the slowest part on big guests).
    pub applications: bool,
}

impl Default for InspectOptions {
    fn default() -> Self {
        InspectOptions { applications: true }
    }
}

/// Every operating system whose root filesystem is among `candidates`, in device order.
/// Each one's `warnings` name every unreadable candidate ([`Candidate::unreadable`]): the ones
/// its fstab mounts say so with their mountpoint, the others with [`unreadable_warning`].
pub fn inspect(candidates: &[Candidate], opts: &InspectOptions) -> Vec<OsInfo> {
    let mut out = find_roots(candidates, opts);
    for os in &mut out {
        for c in candidates {
            if os.mountpoints.values().any(|d| *d == c.device) {
                continue;
            }
            if let Some(u) = &c.unreadable {
                os.warnings.push(unreadable_warning(&c.device, u));
            }
        }
    }
    out
}

fn find_roots(candidates: &[Candidate], opts: &InspectOptions) -> Vec<OsInfo> {
    let mut out = Vec::new();
    for c in candidates {
        let Some(fs) = &c.fs else { continue };
        if let Some(kind) = bsd_root(fs.as_ref()) {
            out.push(inspect_bsd(c, fs.clone(), kind, candidates, opts));
        } else if is_linux_root(fs.as_ref()) {
            out.push(inspect_linux(c, fs.clone(), candidates, opts));
        } else if let Some(sysroot) = crate::windows_os::systemroot(fs.as_ref()) {
            out.push(crate::windows_os::inspect_windows(
                c,
                fs.clone(),
                &sysroot,
                candidates,
                opts,
            ));
        }
    }
    out
}

fn is_dir(fs: &dyn Filesystem, path: &str) -> bool {
    fs.resolve(path)
        .and_then(|n| fs.metadata(n))
        .map(|m| m.file_type == FileType::Directory)
        .unwrap_or(false)
}

/// Reads a whole (small) file; `None` when it is absent or not a regular file, and read
/// errors go to `warnings`.
pub(crate) fn read_file(
    fs: &dyn Filesystem,
    path: &str,
    max: u64,
    warnings: &mut Vec<String>,
) -> Option<Vec<u8>> {
    let node = fs.resolve(path).ok()?;
    let meta = match fs.metadata(node) {
        Ok(m) => m,
        Err(e) => {
            warnings.push(format!("{path}: {e}"));
            return None;
        }
    };
    if meta.file_type != FileType::Regular {
        return None;
    }
    if meta.size > max {
        warnings.push(format!(
            "{path}: {} bytes, more than the {max} read: ignored",
            meta.size
        ));
        return None;
    }
    let mut buf = vec![0u8; meta.size as usize];
    match fs.read_full_at(node, 0, &mut buf) {
        Ok(done) => {
            buf.truncate(done);
            Some(buf)
        }
        Err(e) => {
            warnings.push(format!("{path}: {e}"));
            None
        }
    }
}

/// Whether `fs` looks like the root of an operating system's tree, for choosing a filesystem
/// when inspection found no OS: a directory `/etc` and at least one of the directories `/usr`,
/// `/bin`, `/sbin`, `/lib` (an empty `/usr` mountpoint counts; symlinks are followed inside
/// the guest), or a Windows `/Windows` (or `/WINNT`) directory holding `System32`, in any
/// case. Every root [`inspect`] recognises is one. A separate `/boot`, `/home`, `/var` or
/// `/usr` filesystem, an EFI system partition and a data disk are not.
pub fn plausible_root(fs: &dyn Filesystem) -> bool {
    (is_dir(fs, "/etc")
        && ["/usr", "/bin", "/sbin", "/lib"]
            .iter()
            .any(|d| is_dir(fs, d)))
        || crate::windows_os::has_system32(fs)
}

fn is_linux_root(fs: &dyn Filesystem) -> bool {
    is_dir(fs, "/etc")
        && (fs.exists("/etc/fstab")
            || fs.exists("/etc/os-release")
            || fs.exists("/usr/lib/os-release"))
        && (is_dir(fs, "/bin") || is_dir(fs, "/usr/bin") || is_dir(fs, "/sbin"))
}

fn release(fs: &dyn Filesystem, warnings: &mut Vec<String>) -> Option<Release> {
    for p in ["/etc/os-release", "/usr/lib/os-release"] {
        if let Some(b) = read_file(fs, p, SMALL_FILE, warnings) {
            match linux::release_from_os_release(&b) {
                Some(mut r) => {
                    r.source = p.into();
                    // Debian's and CentOS's os-release give only the major version: like
                    // libguestfs, prefer their legacy release file then (debian_version
                    // "12.5" is both the version and virt-inspector's product name).
                    if matches!(r.distro.as_str(), "debian" | "centos")
                        && !r.version_id.contains('.')
                    {
                        let legacy = if r.distro == "debian" {
                            ("/etc/debian_version", "debian")
                        } else {
                            ("/etc/centos-release", "centos")
                        };
                        if let Some(v) = read_file(fs, legacy.0, SMALL_FILE, warnings) {
                            let d = linux::release_from_legacy(legacy.0, legacy.1, &v);
                            if d.major == r.major {
                                return Some(Release {
                                    build_id: r.build_id,
                                    ..d
                                });
                            }
                        }
                    }
                    return Some(r);
                }
                None => warnings.push(format!("{p}: no ID= line")),
            }
        }
    }
    if let Some(b) = read_file(fs, "/etc/lsb-release", SMALL_FILE, warnings) {
        if let Some(r) = linux::release_from_lsb_release(&b) {
            return Some(r);
        }
    }
    for (path, distro) in linux::LEGACY_RELEASE_FILES {
        if let Some(b) = read_file(fs, path, SMALL_FILE, warnings) {
            return Some(linux::release_from_legacy(path, distro, &b));
        }
    }
    None
}

fn arch(fs: &dyn Filesystem) -> Option<&'static str> {
    for p in [
        "/bin/sh",
        "/bin/ls",
        "/usr/bin/ls",
        "/bin/bash",
        "/usr/bin/env",
        "/sbin/init",
        "/bin/busybox",
    ] {
        let Ok(node) = fs.resolve(p) else { continue };
        let mut head = [0u8; 64];
        if let Ok(n) = fs.read_at(node, 0, &mut head) {
            if let Some(a) = elf::elf_arch(&head[..n]) {
                return Some(a);
            }
        }
    }
    None
}

fn hostname(fs: &dyn Filesystem, warnings: &mut Vec<String>) -> String {
    for (p, sysconfig) in [
        ("/etc/hostname", false),
        ("/etc/HOSTNAME", false),
        ("/etc/sysconfig/network", true),
    ] {
        if let Some(b) = read_file(fs, p, SMALL_FILE, warnings) {
            if let Some(h) = linux::parse_hostname(&b, sysconfig) {
                return h;
            }
        }
    }
    String::new()
}

/// Which candidate an fstab device spec names, or why none.
/// On a BSD root (`bsd`), BSD device names are tried first (`/dev/gpt/x` is a GPT label
/// there, not LVM volume `x` of group `gpt`).
fn resolve_spec<'a>(
    spec: &str,
    candidates: &'a [Candidate],
    bsd: bool,
) -> Result<&'a Candidate, String> {
    let by = |f: fn(&Candidate) -> &str, v: &str, ci: bool| {
        candidates.iter().find(|c| {
            let x = f(c);
            !x.is_empty()
                && if ci {
                    x.eq_ignore_ascii_case(v)
                } else {
                    x == v
                }
        })
    };
    let (kind, value) = if let Some(v) = spec.strip_prefix("UUID=") {
        ("uuid", v)
    } else if let Some(v) = spec.strip_prefix("LABEL=") {
        ("label", v)
    } else if let Some(v) = spec.strip_prefix("PARTUUID=") {
        ("partuuid", v)
    } else if let Some(v) = spec.strip_prefix("PARTLABEL=") {
        ("partlabel", v)
    } else if let Some(v) = spec.strip_prefix("/dev/disk/by-uuid/") {
        ("uuid", v)
    } else if let Some(v) = spec.strip_prefix("/dev/disk/by-label/") {
        ("label", v)
    } else if let Some(v) = spec.strip_prefix("/dev/disk/by-partuuid/") {
        ("partuuid", v)
    } else if let Some(v) = spec.strip_prefix("/dev/disk/by-partlabel/") {
        ("partlabel", v)
    } else {
        ("dev", spec)
    };
    let value = value.trim_matches('"');
    let found = match kind {
        "uuid" => by(|c| &c.uuid, value, true),
        "label" => by(|c| &c.label, value, false),
        "partuuid" => by(|c| &c.part_uuid, value, true),
        "partlabel" => by(|c| &c.part_label, value, false),
        _ => match (bsd, crate::bsd::parse_device(value)) {
            (true, Some(b)) => bsd_candidate(&b, candidates),
            (_, b) => match (guest_dev_to_ours(value), b) {
                (Some(d), _) => candidates.iter().find(|c| c.device == d),
                (None, Some(b)) => bsd_candidate(&b, candidates),
                (None, None) => {
                    return Err(format!(
                        "{spec}: device names like this (md RAID, crypt, multipath) are not mapped"
                    ))
                }
            },
        },
    };
    found.ok_or_else(|| format!("{spec}: no such filesystem on these disks"))
}

/// `/dev/vda2`, `/dev/xvdb1`, `/dev/hda1`, `/dev/sdc` → our `/dev/sdX[N]` (libguestfs does the
/// same: disks are named by their order, whatever the guest's driver called them).
/// `/dev/nvme0n1p2` → `/dev/sda2`.
pub(crate) fn guest_dev_to_ours(dev: &str) -> Option<String> {
    // LVM: `/dev/mapper/VG-LV` and `/dev/VG/LV` are both our `/dev/VG/LV`.
    if let Some((vg, lv)) = dev
        .strip_prefix("/dev/mapper/")
        .and_then(guestctl_part::lvm::parse_mapper_name)
        .or_else(|| guestctl_part::lvm::parse_lv_path(dev))
    {
        return Some(format!("/dev/{vg}/{lv}"));
    }
    let rest = dev.strip_prefix("/dev/")?;
    if let Some(n) = rest.strip_prefix("nvme") {
        // nvme<ctrl>n<ns>[p<part>]
        let (ctrl, rest) = n.split_once('n')?;
        let _ctrl: u32 = ctrl.parse().ok()?;
        let (ns, part) = match rest.split_once('p') {
            Some((ns, p)) => (ns, p),
            None => (rest, ""),
        };
        let ns: u32 = ns.parse().ok()?;
        let letter = char::from(b'a' + u8::try_from(ns.checked_sub(1)?).ok().filter(|&x| x < 26)?);
        return Some(format!("/dev/sd{letter}{part}"));
    }
    let tail = ["xvd", "sd", "vd", "hd"]
        .iter()
        .find_map(|p| rest.strip_prefix(p))?;
    let letters: String = tail.chars().take_while(char::is_ascii_lowercase).collect();
    let digits = &tail[letters.len()..];
    if letters.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("/dev/sd{letters}{digits}"))
}

/// The candidate a BSD device name means: GPT partitions and MBR slices by number on the
/// disk of that unit number, disklabel partitions by letter (within the named slice), and the
/// `/dev/gpt`, `/dev/ufs`, `/dev/label`, `/dev/ufsid`, `/dev/gptid` aliases by their value.
fn bsd_candidate<'a>(
    d: &crate::bsd::BsdDevice,
    candidates: &'a [Candidate],
) -> Option<&'a Candidate> {
    use crate::bsd::BsdDevice;
    let on_disk = |disk: usize| {
        let name = guestctl_part::disk_name(disk);
        candidates.iter().filter(move |c| {
            c.device
                .strip_prefix(&name)
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
    };
    match d {
        BsdDevice::Gpt { disk, part } | BsdDevice::Slice { disk, slice: part } => {
            let want = format!("{}{part}", guestctl_part::disk_name(*disk));
            candidates.iter().find(|c| c.device == want)
        }
        BsdDevice::Label {
            disk,
            slice,
            letter,
        } => {
            let letter = letter.to_string();
            let slice_start = slice.and_then(|s| {
                let want = format!("{}{s}", guestctl_part::disk_name(*disk));
                candidates
                    .iter()
                    .find(|c| c.device == want)
                    .and_then(|c| c.part_start)
            });
            on_disk(*disk)
                .filter(|c| c.bsd_partition == letter)
                .filter(|c| match (slice_start, c.part_start) {
                    (Some(s), Some(p)) => p >= s,
                    _ => true,
                })
                .min_by_key(|c| c.part_start.unwrap_or(0))
        }
        BsdDevice::GptName(n) => candidates.iter().find(|c| c.part_label == *n),
        BsdDevice::FsLabel(n) => candidates.iter().find(|c| c.label == *n),
        BsdDevice::UfsId(n) => candidates.iter().find(|c| c.uuid.eq_ignore_ascii_case(n)),
        BsdDevice::GptId(n) => candidates
            .iter()
            .find(|c| c.part_uuid.eq_ignore_ascii_case(n)),
    }
}

/// Which BSD a root filesystem holds, by libguestfs's marker files.
fn bsd_root(fs: &dyn Filesystem) -> Option<&'static str> {
    if !is_dir(fs, "/etc") || !is_dir(fs, "/bin") || !fs.exists("/etc/fstab") {
        return None;
    }
    if fs.exists("/etc/freebsd-update.conf") {
        Some("freebsd")
    } else if fs.exists("/netbsd") && fs.exists("/etc/release") {
        Some("netbsd")
    } else if fs.exists("/bsd") && fs.exists("/etc/motd") {
        Some("openbsd")
    } else {
        None
    }
}

fn inspect_bsd(
    root: &Candidate,
    fs: Arc<dyn Filesystem>,
    kind: &'static str,
    candidates: &[Candidate],
    opts: &InspectOptions,
) -> OsInfo {
    use crate::bsd;
    let mut os = OsInfo {
        root: root.device.clone(),
        os_type: kind.into(),
        distro: kind.into(),
        ..OsInfo::default()
    };
    let mut w = Vec::new();
    let tree = mount_fstab(root, fs, candidates, &mut os, &mut w);
    let t: &dyn Filesystem = &tree;
    let name = match kind {
        "freebsd" => "FreeBSD",
        "netbsd" => "NetBSD",
        _ => "OpenBSD",
    };
    let mut rel = None;
    if kind == "freebsd" {
        if let Some(r) = read_file(t, "/etc/os-release", SMALL_FILE, &mut w)
            .and_then(|b| linux::release_from_os_release(&b))
        {
            rel = Some(bsd::BsdRelease {
                product_name: r.product_name,
                major: r.major,
                minor: r.minor,
            });
        } else if let Some(v) = read_file(t, "/bin/freebsd-version", SMALL_FILE, &mut w)
            .and_then(|b| bsd::freebsd_userland_version(&b))
        {
            let (major, minor) = linux::parse_version(&v);
            rel = Some(bsd::BsdRelease {
                product_name: format!("FreeBSD {v}"),
                major,
                minor,
            });
        }
    }
    let banner = if kind == "netbsd" {
        "/etc/release"
    } else {
        "/etc/motd"
    };
    if rel.is_none() {
        rel = read_file(t, banner, SMALL_FILE, &mut w)
            .and_then(|b| bsd::release_from_banner(&b, name));
    }
    match rel {
        Some(r) => {
            os.product_name = r.product_name;
            os.major_version = r.major;
            os.minor_version = r.minor;
        }
        None => w.push(format!(
            "no {name} version found (freebsd-version, os-release, {banner})"
        )),
    }
    os.osinfo = bsd::osinfo(kind, os.major_version, os.minor_version);
    match arch(t) {
        Some(a) => os.arch = a.into(),
        None => w.push("architecture: no ELF binary found in /bin".into()),
    }
    os.hostname = if kind == "freebsd" {
        read_file(t, "/etc/rc.conf", SMALL_FILE, &mut w).and_then(|b| bsd::rc_conf_hostname(&b))
    } else {
        read_file(t, "/etc/myname", SMALL_FILE, &mut w).and_then(|b| bsd::myname(&b))
    }
    .unwrap_or_default();
    os.timezone = timezone(t, &mut w);
    if os.timezone.is_empty() {
        // FreeBSD's tzsetup records the zone's name here.
        if let Some(z) = read_file(t, "/var/db/zoneinfo", 4096, &mut w)
            .and_then(|b| linux::parse_timezone_file(&b))
        {
            os.timezone = z;
        }
    }
    os.init_system = "bsdinit".into();
    os.kernels = ["/boot/kernel/kernel", "/netbsd", "/bsd"]
        .iter()
        .filter(|k| t.exists(k))
        .map(|k| k.to_string())
        .collect();
    let (pf, pm) = match kind {
        "freebsd" => ("pkg", "pkg"),
        "netbsd" => ("pkgsrc", "pkgin"),
        _ => ("pkg_add", "pkg_add"),
    };
    os.package_format = pf.into();
    os.package_management = pm.into();
    if opts.applications {
        os.applications = match kind {
            "freebsd" => freebsd_pkg(t, &mut w),
            "netbsd" => pkg_dirs(t, &["/usr/pkg/pkgdb", "/var/db/pkg"], &mut w),
            _ => pkg_dirs(t, &["/var/db/pkg"], &mut w),
        };
    }
    os.warnings = w;
    os
}

/// FreeBSD pkg(8)'s SQLite database, `packages` table.
fn freebsd_pkg(fs: &dyn Filesystem, w: &mut Vec<String>) -> Vec<Application> {
    let p = "/var/db/pkg/local.sqlite";
    if !fs.exists(p) {
        w.push(format!("applications: {p} not found"));
        return Vec::new();
    }
    let Some(db) = read_file(fs, p, packages::MAX_DB_FILE as u64, w) else {
        return Vec::new();
    };
    let (cols, rows) = match sqlite::read_table_with_columns(&db, "packages") {
        Ok(x) => x,
        Err(e) => {
            w.push(format!("applications: {p}: {e}"));
            return Vec::new();
        }
    };
    let col = |name: &str| cols.iter().position(|c| c.eq_ignore_ascii_case(name));
    let (Some(ni), Some(vi)) = (col("name"), col("version")) else {
        w.push(format!(
            "applications: {p}: the packages table has no name/version columns"
        ));
        return Vec::new();
    };
    let text = |row: &[sqlite::Value], i: Option<usize>| -> String {
        match i.and_then(|i| row.get(i)) {
            Some(sqlite::Value::Text(t)) => t.clone(),
            _ => String::new(),
        }
    };
    let (ci, di, ai, wi) = (col("comment"), col("desc"), col("arch"), col("www"));
    let mut out: Vec<Application> = rows
        .iter()
        .map(|(_, r)| Application {
            name: text(r, Some(ni)),
            version: text(r, Some(vi)),
            summary: text(r, ci),
            description: text(r, di),
            arch: text(r, ai),
            url: text(r, wi),
            ..Application::default()
        })
        .filter(|a| !a.name.is_empty())
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// pkgsrc / OpenBSD package directories (`NAME-VERSION/` with `+COMMENT` and `+DESC`).
fn pkg_dirs(fs: &dyn Filesystem, roots: &[&str], w: &mut Vec<String>) -> Vec<Application> {
    for root in roots {
        let Ok(dir) = fs.resolve(root) else { continue };
        let entries = match fs.read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                w.push(format!("applications: {root}: {e}"));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for e in entries.iter().take(MAX_PACMAN_DIRS) {
            let name = String::from_utf8_lossy(&e.name).into_owned();
            let Some((n, v)) = crate::bsd::split_pkg_dir(&name) else {
                continue;
            };
            let first = |f: &str, w: &mut Vec<String>| {
                read_file(fs, &format!("{root}/{name}/{f}"), SMALL_FILE, w)
                    .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                    .unwrap_or_default()
            };
            out.push(Application {
                name: n,
                version: v,
                summary: first("+COMMENT", w),
                description: first("+DESC", w),
                ..Application::default()
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        return out;
    }
    w.push(format!(
        "applications: no package database ({})",
        roots.join(", ")
    ));
    Vec::new()
}

fn fs_record(c: &Candidate) -> FsRecord {
    FsRecord {
        device: c.device.clone(),
        fs_type: c.fs_type.clone(),
        label: c.label.clone(),
        uuid: c.uuid.clone(),
    }
}

/// The root with the filesystems its `/etc/fstab` names mounted on it (parents first), so
/// `/usr`, `/var`, `/boot` are seen whole; fills `mountpoints` and `filesystems`.
fn mount_fstab(
    root: &Candidate,
    fs: Arc<dyn Filesystem>,
    candidates: &[Candidate],
    os: &mut OsInfo,
    w: &mut Vec<String>,
) -> MountTree {
    os.mountpoints.insert("/".into(), root.device.clone());
    os.filesystems.push(fs_record(root));
    // fstab first: the other filesystems are mounted so /usr, /var, /boot are seen whole.
    let fstab: Vec<FstabEntry> = read_file(fs.as_ref(), "/etc/fstab", SMALL_FILE, w)
        .map(|b| linux::parse_fstab(&b, w))
        .unwrap_or_default();
    let bsd = os.os_type != "linux";
    let mut tree = MountTree::new(fs.clone());
    let mut to_mount: Vec<(&FstabEntry, &Candidate)> = Vec::new();
    for e in &fstab {
        let is_swap = e.vfstype == "swap";
        let mountable = e.file.starts_with('/') && !is_swap;
        if !mountable && !is_swap {
            continue;
        }
        if matches!(
            e.vfstype.as_str(),
            "proc"
                | "sysfs"
                | "tmpfs"
                | "devpts"
                | "devtmpfs"
                | "nfs"
                | "nfs4"
                | "cifs"
                | "cgroup"
                | "cgroup2"
                | "securityfs"
                | "debugfs"
                | "none"
                | "bind"
                | "9p"
                | "virtiofs"
                | "fuse"
                | "overlay"
                | "squashfs"
                | "procfs"
                | "fdescfs"
                | "linprocfs"
                | "linsysfs"
                | "nullfs"
                | "mfs"
                | "kernfs"
                | "ptyfs"
        ) || e.options.split(',').any(|o| o == "bind")
        {
            continue;
        }
        match resolve_spec(&e.spec, candidates, bsd) {
            Ok(c) => {
                if !os.filesystems.iter().any(|f| f.device == c.device) {
                    os.filesystems.push(fs_record(c));
                }
                if mountable && e.file != "/" {
                    os.mountpoints.insert(e.file.clone(), c.device.clone());
                    to_mount.push((e, c));
                }
            }
            Err(why) => w.push(format!("/etc/fstab: {} on {}: {why}", e.spec, e.file)),
        }
    }
    to_mount.sort_by_key(|(e, _)| e.file.split('/').filter(|c| !c.is_empty()).count());
    for (e, c) in to_mount {
        match &c.fs {
            Some(f) => {
                if let Err(err) = tree.mount(&e.file, f.clone()) {
                    w.push(format!("cannot mount {} on {}: {err}", c.device, e.file));
                }
            }
            None => w.push(match &c.unreadable {
                Some(u) => format!(
                    "{}: {u}, the files under {} are not inspected",
                    c.device, e.file
                ),
                None => format!(
                    "{} ({}) on {}: guestctl cannot read this filesystem type",
                    c.device, c.fs_type, e.file
                ),
            }),
        }
    }
    tree
}

fn inspect_linux(
    root: &Candidate,
    fs: Arc<dyn Filesystem>,
    candidates: &[Candidate],
    opts: &InspectOptions,
) -> OsInfo {
    let mut os = OsInfo {
        root: root.device.clone(),
        os_type: "linux".into(),
        distro: "unknown".into(),
        ..OsInfo::default()
    };
    let mut w = Vec::new();
    let tree = mount_fstab(root, fs, candidates, &mut os, &mut w);
    let t: &dyn Filesystem = &tree;

    if let Some(r) = release(t, &mut w) {
        os.distro = r.distro;
        os.product_name = r.product_name;
        os.major_version = r.major;
        os.minor_version = r.minor;
        os.build_id = r.build_id;
    } else {
        w.push("no release file recognised (os-release, lsb-release, legacy files)".into());
    }
    os.osinfo = linux::osinfo(&os.distro, os.major_version, os.minor_version);
    let (pf, pm) = linux::package_format_and_management(&os.distro, os.major_version);
    os.package_format = pf.into();
    os.package_management = pm.into();
    match arch(t) {
        Some(a) => os.arch = a.into(),
        None => w.push("architecture: no ELF binary found in /bin, /usr/bin".into()),
    }
    os.hostname = hostname(t, &mut w);
    os.machine_id = read_file(t, "/etc/machine-id", 4096, &mut w)
        .and_then(|b| linux::parse_hostname(&b, false))
        .unwrap_or_default();
    os.timezone = timezone(t, &mut w);
    os.init_system = init_system(t);
    os.kernels = kernels(t);
    if opts.applications {
        os.applications = applications(t, pf, &mut w);
    }
    os.warnings = w;
    os
}

fn timezone(fs: &dyn Filesystem, w: &mut Vec<String>) -> String {
    if let Some(b) = read_file(fs, "/etc/timezone", SMALL_FILE, w) {
        if let Some(z) = linux::parse_timezone_file(&b) {
            return z;
        }
    }
    if let Ok(node) = guestctl_fs::resolve_path(fs, b"/etc/localtime", false) {
        if let Ok(target) = fs.read_link(node) {
            if let Some(z) = linux::timezone_from_localtime_target(&target) {
                return z;
            }
        }
    }
    if let Some(b) = read_file(fs, "/etc/sysconfig/clock", SMALL_FILE, w) {
        if let Some(z) = linux::parse_timezone_file(&b) {
            return z;
        }
    }
    String::new()
}

fn init_system(fs: &dyn Filesystem) -> String {
    if let Ok(node) = guestctl_fs::resolve_path(fs, b"/sbin/init", false) {
        if let Ok(t) = fs.read_link(node) {
            let t = String::from_utf8_lossy(&t);
            if t.contains("systemd") {
                return "systemd".into();
            }
            if t.contains("busybox") {
                return "busybox".into();
            }
            if t.contains("upstart") {
                return "upstart".into();
            }
        }
    }
    if fs.exists("/sbin/openrc") || fs.exists("/sbin/openrc-init") {
        return "openrc".into();
    }
    if fs.exists("/sbin/upstart") || is_dir(fs, "/etc/init") && fs.exists("/sbin/initctl") {
        return "upstart".into();
    }
    if fs.exists("/lib/systemd/systemd") || fs.exists("/usr/lib/systemd/systemd") {
        return "systemd".into();
    }
    if fs.exists("/sbin/init") {
        return "sysvinit".into();
    }
    String::new()
}

fn kernels(fs: &dyn Filesystem) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    for (dir, from_boot) in [
        ("/boot", true),
        ("/lib/modules", false),
        ("/usr/lib/modules", false),
    ] {
        let Ok(node) = fs.resolve(dir) else { continue };
        let Ok(entries) = fs.read_dir(node) else {
            continue;
        };
        for e in entries.iter().take(10_000) {
            let name = String::from_utf8_lossy(&e.name);
            if from_boot {
                if let Some(v) = linux::kernel_from_boot_name(&name) {
                    out.insert(v);
                }
            } else if name.starts_with(|c: char| c.is_ascii_digit()) {
                out.insert(name.into_owned());
            }
        }
    }
    out.into_iter().collect()
}

fn applications(fs: &dyn Filesystem, format: &str, w: &mut Vec<String>) -> Vec<Application> {
    let max = packages::MAX_DB_FILE as u64;
    match format {
        "deb" => read_file(fs, "/var/lib/dpkg/status", max, w)
            .map(|b| packages::parse_dpkg_status(&b, w))
            .unwrap_or_else(|| {
                w.push("applications: /var/lib/dpkg/status not found".into());
                Vec::new()
            }),
        "apk" => read_file(fs, "/lib/apk/db/installed", max, w)
            .map(|b| packages::parse_apk_installed(&b, w))
            .unwrap_or_else(|| {
                w.push("applications: /lib/apk/db/installed not found".into());
                Vec::new()
            }),
        "pacman" => pacman(fs, w),
        "rpm" => rpm(fs, w),
        "" => Vec::new(),
        other => {
            w.push(format!("applications: {other} databases are not read yet"));
            Vec::new()
        }
    }
}

fn pacman(fs: &dyn Filesystem, w: &mut Vec<String>) -> Vec<Application> {
    let Ok(dir) = fs.resolve("/var/lib/pacman/local") else {
        w.push("applications: /var/lib/pacman/local not found".into());
        return Vec::new();
    };
    let entries = match fs.read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            w.push(format!("applications: /var/lib/pacman/local: {e}"));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for e in entries.iter().take(MAX_PACMAN_DIRS) {
        let name = String::from_utf8_lossy(&e.name);
        let path = format!("/var/lib/pacman/local/{name}/desc");
        if let Some(b) = read_file(fs, &path, SMALL_FILE, w) {
            match packages::parse_pacman_desc(&b) {
                Some(a) => out.push(a),
                None => w.push(format!("{path}: no %NAME%")),
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The rpm databases, in the order looked for: the sqlite rpmdb (Fedora 33+, RHEL 9), the
/// Berkeley DB `Packages` (RHEL/CentOS 5–8, Amazon Linux 2) and the ndb `Packages.db` (SUSE).
const RPMDBS: [(&str, RpmDb); 5] = [
    ("/var/lib/rpm/rpmdb.sqlite", RpmDb::Sqlite),
    ("/usr/lib/sysimage/rpm/rpmdb.sqlite", RpmDb::Sqlite),
    ("/var/lib/rpm/Packages", RpmDb::Bdb),
    ("/var/lib/rpm/Packages.db", RpmDb::Ndb),
    ("/usr/lib/sysimage/rpm/Packages.db", RpmDb::Ndb),
];

#[derive(Clone, Copy)]
enum RpmDb {
    Sqlite,
    Bdb,
    Ndb,
}

fn rpm(fs: &dyn Filesystem, w: &mut Vec<String>) -> Vec<Application> {
    let Some(&(p, kind)) = RPMDBS.iter().find(|(p, _)| fs.exists(p)) else {
        w.push("applications: no rpm database found".into());
        return Vec::new();
    };
    if let RpmDb::Sqlite = kind {
        let wal = format!("{p}-wal");
        if let Ok(m) = fs.resolve(&wal).and_then(|n| fs.metadata(n)) {
            if m.size > 0 {
                w.push(format!(
                    "applications: {wal} holds {} bytes not yet checkpointed into the \
                     database; they are not applied",
                    m.size
                ));
            }
        }
    }
    let Some(db) = read_file(fs, p, packages::MAX_DB_FILE as u64, w) else {
        return Vec::new();
    };
    let read = match kind {
        RpmDb::Sqlite => packages::rpmdb_sqlite(p, &db, w).map_err(|e| e.to_string()),
        RpmDb::Bdb => packages::rpmdb_bdb(p, &db, w).map_err(|e| e.to_string()),
        RpmDb::Ndb => packages::rpmdb_ndb(p, &db, w).map_err(|e| e.to_string()),
    };
    read.unwrap_or_else(|e| {
        w.push(format!("applications: {p}: {e}"));
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        assert_eq!(guest_dev_to_ours("/dev/vda2").as_deref(), Some("/dev/sda2"));
        assert_eq!(guest_dev_to_ours("/dev/xvdb").as_deref(), Some("/dev/sdb"));
        assert_eq!(guest_dev_to_ours("/dev/hda1").as_deref(), Some("/dev/sda1"));
        assert_eq!(
            guest_dev_to_ours("/dev/nvme0n1p3").as_deref(),
            Some("/dev/sda3")
        );
        assert_eq!(
            guest_dev_to_ours("/dev/mapper/vg-root").as_deref(),
            Some("/dev/vg/root")
        );
        assert_eq!(
            guest_dev_to_ours("/dev/mapper/my--vg-my--root").as_deref(),
            Some("/dev/my-vg/my-root")
        );
        assert_eq!(
            guest_dev_to_ours("/dev/rhel/root").as_deref(),
            Some("/dev/rhel/root")
        );
        assert_eq!(guest_dev_to_ours("/dev/md0"), None);
        assert_eq!(guest_dev_to_ours("/dev/sda1x"), None);
    }
}
