//! Finding a Windows root among the filesystems and filling [`OsInfo`] from its registry.

use std::sync::Arc;

use guestctl_fs::{FileType, Filesystem};

use crate::inspector::{read_file, Candidate, InspectOptions};
use crate::windows::{pe_arch, windows_facts, DriveTarget};
use crate::{FsRecord, OsInfo};

/// The largest hive read (SOFTWARE hives of long-lived servers reach a few hundred MiB).
const MAX_HIVE: u64 = 1 << 30;

/// The directory's name as stored, found case-insensitively among `dir`'s entries.
fn find_entry(
    fs: &dyn Filesystem,
    dir: guestctl_fs::NodeId,
    name: &str,
) -> Option<(String, guestctl_fs::NodeId)> {
    let entries = fs.read_dir(dir).ok()?;
    entries
        .into_iter()
        .find(|e| String::from_utf8_lossy(&e.name).eq_ignore_ascii_case(name))
        .map(|e| (String::from_utf8_lossy(&e.name).into_owned(), e.node))
}

/// Whether `/Windows` or `/WINNT` (any case) holds a `System32` directory.
pub(crate) fn has_system32(fs: &dyn Filesystem) -> bool {
    ["Windows", "WINNT"].iter().any(|name| {
        find_entry(fs, fs.root(), name)
            .and_then(|(_, node)| find_entry(fs, node, "System32"))
            .and_then(|(_, sys32)| fs.metadata(sys32).ok())
            .is_some_and(|m| m.file_type == FileType::Directory)
    })
}

/// `/Windows` or `/WINNT` (as spelled on disk) when it holds `System32/config`.
pub(crate) fn systemroot(fs: &dyn Filesystem) -> Option<String> {
    for name in ["Windows", "WINNT"] {
        let Some((stored, node)) = find_entry(fs, fs.root(), name) else {
            continue;
        };
        let Some((_, sys32)) = find_entry(fs, node, "System32") else {
            continue;
        };
        if let Some((_, config)) = find_entry(fs, sys32, "config") {
            if fs
                .metadata(config)
                .map(|m| m.file_type == FileType::Directory)
                .unwrap_or(false)
            {
                return Some(format!("/{stored}"));
            }
        }
    }
    None
}

/// The first `n` bytes of a file (the PE headers of an executable are near its start).
fn read_head(fs: &dyn Filesystem, path: &str, n: usize) -> Option<Vec<u8>> {
    let node = fs.resolve(path).ok()?;
    let mut buf = vec![0u8; n];
    let done = fs.read_full_at(node, 0, &mut buf).ok()?;
    buf.truncate(done);
    Some(buf)
}

/// The device a `MountedDevices` target names.
fn device_for(target: &DriveTarget, candidates: &[Candidate]) -> Option<String> {
    match target {
        DriveTarget::Mbr {
            disk_signature,
            offset,
        } => {
            let id = format!("{disk_signature:08x}");
            candidates
                .iter()
                .find(|c| c.disk_id == id && c.part_start == Some(*offset))
                .map(|c| c.device.clone())
        }
        DriveTarget::Gpt { partition_guid } => candidates
            .iter()
            .find(|c| c.part_uuid.eq_ignore_ascii_case(partition_guid))
            .map(|c| c.device.clone()),
        DriveTarget::Other => None,
    }
}

pub(crate) fn inspect_windows(
    root: &Candidate,
    fs: Arc<dyn Filesystem>,
    sysroot: &str,
    candidates: &[Candidate],
    opts: &InspectOptions,
) -> OsInfo {
    let mut w = Vec::new();
    let mut os = OsInfo {
        root: root.device.clone(),
        os_type: "windows".into(),
        distro: "windows".into(),
        windows_systemroot: sysroot.to_string(),
        ..OsInfo::default()
    };
    os.mountpoints.insert("/".into(), root.device.clone());
    os.filesystems.push(FsRecord {
        device: root.device.clone(),
        fs_type: root.fs_type.clone(),
        label: root.label.clone(),
        uuid: root.uuid.clone(),
    });
    let f = fs.as_ref();
    let hive = |name: &str, w: &mut Vec<String>| {
        let path = format!("{sysroot}/System32/config/{name}");
        let data = read_file(f, &path, MAX_HIVE, w);
        if data.is_none() {
            w.push(format!("{path}: not found"));
        }
        data.unwrap_or_default()
    };
    let software = hive("SOFTWARE", &mut w);
    let system = hive("SYSTEM", &mut w);
    let facts = windows_facts(&software, &system);
    os.product_name = facts.product_name;
    os.product_variant = facts.product_variant;
    os.major_version = facts.major_version;
    os.minor_version = facts.minor_version;
    os.build_id = match facts.ubr {
        Some(ubr) if !facts.build_id.is_empty() => format!("{}.{ubr}", facts.build_id),
        _ => facts.build_id,
    };
    os.osinfo = facts.osinfo;
    os.hostname = facts.hostname;
    os.windows_current_control_set = facts.current_control_set;
    os.timezone = facts.timezone;
    os.machine_id = facts.machine_guid;
    for (letter, target) in &facts.drive_mappings {
        match device_for(target, candidates) {
            Some(dev) => {
                os.drive_mappings.insert(letter.clone(), dev);
            }
            None if *target == DriveTarget::Other => {}
            None => w.push(format!(
                "drive {letter}: {target:?} matches no partition of these disks"
            )),
        }
    }
    if opts.applications {
        os.applications = facts.applications;
    }
    w.extend(facts.warnings);
    let cmd = format!("{sysroot}/System32/cmd.exe");
    match read_head(f, &cmd, 64 << 10).as_deref().and_then(pe_arch) {
        Some(a) => os.arch = a.into(),
        None => w.push(format!(
            "architecture: {cmd} missing or not a PE executable"
        )),
    }
    os.warnings = w;
    os
}
