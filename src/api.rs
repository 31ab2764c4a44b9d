//! libguestfs's calls on [`Guestfs`], with libguestfs's names, argument order and meaning
//! (guestfs(3) is the reference), in Rust types:
//!
//! - inspection: [`Guestfs::inspect_os`], [`Guestfs::inspect_get_roots`], every
//!   `inspect_get_*` virt-inspector prints, [`Guestfs::inspect_list_applications2`];
//! - devices: [`Guestfs::list_devices`], [`Guestfs::list_partitions`],
//!   [`Guestfs::list_filesystems`], [`Guestfs::lvs`], [`Guestfs::vgs`], [`Guestfs::pvs`],
//!   `vfs_*`, [`Guestfs::blkid`], `part_*`, [`Guestfs::blockdev_getsize64`],
//!   [`Guestfs::pread_device`], `disk_*`;
//! - mounts: [`Guestfs::mount_ro`], [`Guestfs::mount`], [`Guestfs::mount_options`],
//!   [`Guestfs::umount`], [`Guestfs::umount_all`], [`Guestfs::mounts`],
//!   [`Guestfs::mountpoints`];
//! - files: `cat`, `read_file`, `read_lines`, `head`/`tail`, `pread`, `download`, `ls`,
//!   `ll`, `find`, `stat`/`lstat`(`ns`), `is_*`, `exists`, `filesize`, `readlink`,
//!   `realpath`, `getxattrs`, `du`, `statvfs`, `df`, `checksum`, `checksums_out`,
//!   `tar_out`, `tgz_out`, `copy_out`, `glob_expand`, `grep`, `file`,
//!   `file_architecture`, `is_zero`, `is_zero_device`;
//! - Windows registry hives: `hivex_*` over [`crate::registry`].
//!
//! Guest paths are absolute and resolved inside the mounted tree: symlinks are followed
//! inside the guest, `..` never leaves its root. Everything is read-only: the drives are
//! never written.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::fs::{self, walk, FileType, Filesystem, Metadata, NodeId};
use crate::handle::Mounted;
use crate::model::{self, canonical_device_name};
use crate::{inspect, Error, ErrorKind, Guestfs, Result};

/// Largest file `cat`, `read_file`, `read_lines`, `grep` and `hivex_open` read into memory.
pub const MAX_READ: u64 = 1 << 30;
/// Chunk size of streaming reads (download, checksum, is_zero).
const CHUNK: usize = 1 << 20;

/// `stat` results with nanoseconds (`guestfs_statns`, libguestfs's `StatNS` fields).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct StatNS {
    pub st_dev: i64,
    pub st_ino: i64,
    pub st_mode: i64,
    pub st_nlink: i64,
    pub st_uid: i64,
    pub st_gid: i64,
    pub st_rdev: i64,
    pub st_size: i64,
    pub st_blksize: i64,
    pub st_blocks: i64,
    pub st_atime_sec: i64,
    pub st_atime_nsec: i64,
    pub st_mtime_sec: i64,
    pub st_mtime_nsec: i64,
    pub st_ctime_sec: i64,
    pub st_ctime_nsec: i64,
    pub st_spare1: i64,
    pub st_spare2: i64,
    pub st_spare3: i64,
    pub st_spare4: i64,
    pub st_spare5: i64,
    pub st_spare6: i64,
}

/// `stat` results in whole seconds (`guestfs_stat`, libguestfs's deprecated `Stat`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct Stat {
    pub dev: i64,
    pub ino: i64,
    pub mode: i64,
    pub nlink: i64,
    pub uid: i64,
    pub gid: i64,
    pub rdev: i64,
    pub size: i64,
    pub blksize: i64,
    pub blocks: i64,
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
}

/// `guestfs_statvfs` results. Inode counts the reader does not keep are `-1`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct StatVFS {
    pub bsize: i64,
    pub frsize: i64,
    pub blocks: i64,
    pub bfree: i64,
    pub bavail: i64,
    pub files: i64,
    pub ffree: i64,
    pub favail: i64,
    pub fsid: i64,
    pub flag: i64,
    pub namemax: i64,
}

/// One extended attribute (`guestfs_getxattrs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XAttr {
    /// Full name (`security.selinux`, `user.x`).
    pub attrname: String,
    /// The value's bytes.
    pub attrval: Vec<u8>,
}

/// One partition (`guestfs_part_list`). `part_end` is the last byte, inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Partition {
    pub part_num: i32,
    pub part_start: i64,
    pub part_end: i64,
    pub part_size: i64,
}

/// One installed application (`guestfs_inspect_list_applications2`), libguestfs's field
/// names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct Application2 {
    pub app2_name: String,
    pub app2_display_name: String,
    pub app2_epoch: i32,
    pub app2_version: String,
    pub app2_release: String,
    pub app2_arch: String,
    pub app2_install_path: String,
    pub app2_trans_path: String,
    pub app2_publisher: String,
    pub app2_url: String,
    pub app2_source_package: String,
    pub app2_summary: String,
    pub app2_description: String,
    pub app2_spare1: String,
    pub app2_spare2: String,
    pub app2_spare3: String,
    pub app2_spare4: String,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn absolute(path: &str) -> Result<()> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(Error::invalid("path must start with a / character").with_path(path))
    }
}

fn count_arg(what: &str, n: i64) -> Result<u64> {
    u64::try_from(n).map_err(|_| Error::invalid(format!("{what} must be >= 0 (got {n})")))
}

/// glibc's `makedev`.
fn makedev(major: u32, minor: u32) -> i64 {
    let (ma, mi) = (major as u64, minor as u64);
    (((ma & 0xffff_f000) << 32) | ((ma & 0xfff) << 8) | ((mi & 0xffff_ff00) << 12) | (mi & 0xff))
        as i64
}

// ---- inspection ----------------------------------------------------------------------

impl Guestfs {
    fn os(&self, root: &str) -> Result<inspect::OsInfo> {
        let m = self.model()?;
        let canon = canonical_device_name(root);
        m.oses(false)
            .iter()
            .find(|o| o.root == canon)
            .cloned()
            .ok_or_else(|| {
                Error::not_found("not an inspected root device: call inspect_os() first")
                    .with_device(root)
            })
    }

    /// Finds the operating systems on the added drives and returns their root devices
    /// (`guestfs_inspect_os`). An error when none is found and some device cannot be read
    /// (an operating system there would be unseen); an empty list means every device was
    /// looked into.
    pub fn inspect_os(&self) -> Result<Vec<String>> {
        self.trace("inspect_os", format_args!(""));
        let m = self.model()?;
        let oses = m.oses(false);
        let found = crate::Inspection {
            oses: Vec::new(),
            unreadable: m.unreadable(),
        };
        if oses.is_empty() {
            found.into_oses()?;
        } else {
            // What cannot be read may hide part of a guest: say so, as inspect does.
            for w in found.warnings() {
                eprintln!("guestctl: warning: {w}");
            }
        }
        Ok(oses.iter().map(|o| o.root.clone()).collect())
    }

    /// The roots found by [`Guestfs::inspect_os`] (`guestfs_inspect_get_roots`).
    pub fn inspect_get_roots(&self) -> Result<Vec<String>> {
        let m = self.model()?;
        Ok(m.oses(false).iter().map(|o| o.root.clone()).collect())
    }

    /// Everything inspection found about `root` (the rich record behind the `inspect_get_*`
    /// calls), applications included.
    pub fn inspect_get_osinfo_full(&self, root: &str) -> Result<inspect::OsInfo> {
        let m = self.model()?;
        let canon = canonical_device_name(root);
        m.oses(true)
            .iter()
            .find(|o| o.root == canon)
            .cloned()
            .ok_or_else(|| Error::not_found("not an inspected root device").with_device(root))
    }

    /// `linux`, `windows`, `freebsd`, ... (`guestfs_inspect_get_type`).
    pub fn inspect_get_type(&self, root: &str) -> Result<String> {
        Ok(self.os(root)?.os_type)
    }
    /// `debian`, `rhel`, `windows`, ... (`guestfs_inspect_get_distro`).
    pub fn inspect_get_distro(&self, root: &str) -> Result<String> {
        Ok(self.os(root)?.distro)
    }
    /// The product name (`guestfs_inspect_get_product_name`).
    pub fn inspect_get_product_name(&self, root: &str) -> Result<String> {
        Ok(self.os(root)?.product_name)
    }
    /// `Server`, `Client`, ... (`guestfs_inspect_get_product_variant`).
    pub fn inspect_get_product_variant(&self, root: &str) -> Result<String> {
        Ok(self.os(root)?.product_variant)
    }
    /// Major version (`guestfs_inspect_get_major_version`).
    pub fn inspect_get_major_version(&self, root: &str) -> Result<i32> {
        Ok(self.os(root)?.major_version as i32)
    }
    /// Minor version (`guestfs_inspect_get_minor_version`).
    pub fn inspect_get_minor_version(&self, root: &str) -> Result<i32> {
        Ok(self.os(root)?.minor_version as i32)
    }
    /// `x86_64`, `aarch64`, ... (`guestfs_inspect_get_arch`).
    pub fn inspect_get_arch(&self, root: &str) -> Result<String> {
        Ok(self.os(root)?.arch)
    }
    /// The hostname (`guestfs_inspect_get_hostname`).
    pub fn inspect_get_hostname(&self, root: &str) -> Result<String> {
        Ok(self.os(root)?.hostname)
    }
    /// `rpm`, `deb`, ... (`guestfs_inspect_get_package_format`).
    pub fn inspect_get_package_format(&self, root: &str) -> Result<String> {
        Ok(self.os(root)?.package_format)
    }
    /// `dnf`, `apt`, ... (`guestfs_inspect_get_package_management`).
    pub fn inspect_get_package_management(&self, root: &str) -> Result<String> {
        Ok(self.os(root)?.package_management)
    }
    /// The osinfo short id (`guestfs_inspect_get_osinfo`).
    pub fn inspect_get_osinfo(&self, root: &str) -> Result<String> {
        Ok(self.os(root)?.osinfo)
    }
    /// `installed` (`guestfs_inspect_get_format`): guestctl inspects installed disks.
    pub fn inspect_get_format(&self, root: &str) -> Result<String> {
        self.os(root)?;
        Ok("installed".into())
    }
    /// The build id (`guestfs_inspect_get_build_id`).
    pub fn inspect_get_build_id(&self, root: &str) -> Result<String> {
        Ok(self.os(root)?.build_id)
    }
    /// Mountpoint → device, from the guest's fstab or drive letters
    /// (`guestfs_inspect_get_mountpoints`). Iteration order is parents first (`/` before
    /// `/boot` before `/boot/efi`).
    pub fn inspect_get_mountpoints(&self, root: &str) -> Result<BTreeMap<String, String>> {
        Ok(self.os(root)?.mountpoints)
    }
    /// Every filesystem of the operating system (`guestfs_inspect_get_filesystems`).
    pub fn inspect_get_filesystems(&self, root: &str) -> Result<Vec<String>> {
        Ok(self
            .os(root)?
            .filesystems
            .into_iter()
            .map(|f| f.device)
            .collect())
    }
    /// Windows drive letter → device (`guestfs_inspect_get_drive_mappings`).
    pub fn inspect_get_drive_mappings(&self, root: &str) -> Result<BTreeMap<String, String>> {
        Ok(self.os(root)?.drive_mappings)
    }

    fn windows_field(&self, root: &str, what: &str, v: String) -> Result<String> {
        if v.is_empty() {
            return Err(Error::not_found(format!("not available: {what}")).with_device(root));
        }
        Ok(v)
    }
    /// `/Windows` (`guestfs_inspect_get_windows_systemroot`).
    pub fn inspect_get_windows_systemroot(&self, root: &str) -> Result<String> {
        let os = self.os(root)?;
        self.windows_field(root, "windows_systemroot", os.windows_systemroot)
    }
    /// `ControlSet001` (`guestfs_inspect_get_windows_current_control_set`).
    pub fn inspect_get_windows_current_control_set(&self, root: &str) -> Result<String> {
        let os = self.os(root)?;
        self.windows_field(
            root,
            "windows_current_control_set",
            os.windows_current_control_set,
        )
    }
    fn windows_hive(&self, root: &str, name: &str) -> Result<String> {
        let os = self.os(root)?;
        let sr = self.windows_field(root, "windows_systemroot", os.windows_systemroot)?;
        let path = format!("{sr}/System32/config/{name}");
        let m = self.model()?;
        let found = m
            .candidates()
            .iter()
            .find(|c| c.device == os.root)
            .and_then(|c| c.fs.as_ref())
            .is_some_and(|f| f.exists(&path));
        if !found {
            return Err(Error::not_found(format!("no {name} hive")).with_path(path));
        }
        Ok(path)
    }
    /// Path of the SOFTWARE hive (`guestfs_inspect_get_windows_software_hive`).
    pub fn inspect_get_windows_software_hive(&self, root: &str) -> Result<String> {
        self.windows_hive(root, "SOFTWARE")
    }
    /// Path of the SYSTEM hive (`guestfs_inspect_get_windows_system_hive`).
    pub fn inspect_get_windows_system_hive(&self, root: &str) -> Result<String> {
        self.windows_hive(root, "SYSTEM")
    }

    /// The installed applications (`guestfs_inspect_list_applications2`): RPM, dpkg, apk,
    /// pacman, BSD packages, Windows uninstall keys.
    pub fn inspect_list_applications2(&self, root: &str) -> Result<Vec<Application2>> {
        let os = self.inspect_get_osinfo_full(root)?;
        Ok(os
            .applications
            .into_iter()
            .map(|a| Application2 {
                app2_name: a.name,
                app2_display_name: a.display_name,
                app2_epoch: a.epoch as i32,
                app2_version: a.version,
                app2_release: a.release,
                app2_arch: a.arch,
                app2_install_path: a.install_path,
                app2_trans_path: String::new(),
                app2_publisher: a.publisher,
                app2_url: a.url,
                app2_source_package: a.source_package,
                app2_summary: a.summary,
                app2_description: a.description,
                ..Application2::default()
            })
            .collect())
    }
}

// ---- devices ---------------------------------------------------------------------------

impl Guestfs {
    /// The disks, `/dev/sda`, `/dev/sdb`, ... (`guestfs_list_devices`).
    pub fn list_devices(&self) -> Result<Vec<String>> {
        let m = self.model()?;
        Ok(m.devices
            .iter()
            .filter(|d| d.partition.is_none() && !d.logical_volume)
            .map(|d| d.name.clone())
            .collect())
    }

    /// Every partition, `/dev/sda1`, ... (`guestfs_list_partitions`; MBR extended
    /// containers left out).
    pub fn list_partitions(&self) -> Result<Vec<String>> {
        let m = self.model()?;
        Ok(m.devices
            .iter()
            .filter(|d| d.partition.is_some())
            .map(|d| d.name.clone())
            .collect())
    }

    /// Device → filesystem type for every device that can hold one
    /// (`guestfs_list_filesystems`): `unknown` where nothing is recognised, `swap` for swap;
    /// LVM physical volumes are left out (their logical volumes are listed).
    pub fn list_filesystems(&self) -> Result<BTreeMap<String, String>> {
        let m = self.model()?;
        Ok(m.entries
            .iter()
            .filter(|e| e.fs_type != "LVM2_member")
            .map(|e| (e.device.clone(), e.fs_type.clone()))
            .collect())
    }

    /// Logical volumes as `/dev/VG/LV` (`guestfs_lvs`).
    pub fn lvs(&self) -> Result<Vec<String>> {
        let m = self.model()?;
        Ok(m.vgs.iter().flat_map(|(_, l)| l.iter().cloned()).collect())
    }

    /// Volume group names (`guestfs_vgs`).
    pub fn vgs(&self) -> Result<Vec<String>> {
        let m = self.model()?;
        Ok(m.vgs.iter().map(|(v, _)| v.clone()).collect())
    }

    /// Devices carrying LVM2 physical volumes (`guestfs_pvs`).
    pub fn pvs(&self) -> Result<Vec<String>> {
        Ok(self.model()?.pvs.clone())
    }

    fn probe_of(&self, device: &str) -> Result<crate::FilesystemEntry> {
        let m = self.model()?;
        m.device(device)?;
        m.entry(device).cloned().ok_or_else(|| {
            Error::not_found("no filesystem found (the device holds a partition table)")
                .with_device(device)
        })
    }

    /// The filesystem type on `mountable` (`guestfs_vfs_type`): `ext4`, `xfs`, `vfat`,
    /// `ntfs`, `swap`, `LVM2_member`, ...; `""` when nothing is recognised.
    pub fn vfs_type(&self, mountable: &str) -> Result<String> {
        let e = self.probe_of(mountable)?;
        Ok(if e.fs_type == "unknown" {
            String::new()
        } else {
            e.fs_type
        })
    }

    /// The filesystem UUID (`guestfs_vfs_uuid`), `""` when none.
    pub fn vfs_uuid(&self, mountable: &str) -> Result<String> {
        Ok(self.probe_of(mountable)?.uuid)
    }

    /// The filesystem label (`guestfs_vfs_label`), `""` when none.
    pub fn vfs_label(&self, mountable: &str) -> Result<String> {
        Ok(self.probe_of(mountable)?.label)
    }

    /// blkid's tags for `device` (`guestfs_blkid`): `TYPE`, `UUID`, `LABEL`, and for
    /// partitions `PART_ENTRY_SCHEME`, `PART_ENTRY_NUMBER`, `PART_ENTRY_OFFSET`,
    /// `PART_ENTRY_SIZE` (in sectors), `PART_ENTRY_TYPE`, `PART_ENTRY_UUID`,
    /// `PART_ENTRY_NAME`.
    pub fn blkid(&self, device: &str) -> Result<BTreeMap<String, String>> {
        let m = self.model()?;
        let d = m.device(device)?;
        let mut out = BTreeMap::new();
        if let Some(e) = m.entry(device) {
            if e.fs_type != "unknown" {
                out.insert("TYPE".into(), e.fs_type.clone());
            }
            if !e.uuid.is_empty() {
                out.insert("UUID".into(), e.uuid.clone());
            }
            if !e.label.is_empty() {
                out.insert("LABEL".into(), e.label.clone());
            }
        }
        if let Some(p) = &d.partition {
            let scheme = d
                .disk
                .and_then(|i| m.disks.get(i))
                .and_then(|k| k.scheme)
                .unwrap_or("");
            out.insert("PART_ENTRY_SCHEME".into(), dos_name(scheme).into());
            out.insert("PART_ENTRY_NUMBER".into(), p.number.to_string());
            out.insert("PART_ENTRY_OFFSET".into(), (p.start / 512).to_string());
            out.insert("PART_ENTRY_SIZE".into(), (p.size / 512).to_string());
            let t = model::part_type_string(p);
            if !t.is_empty() {
                out.insert("PART_ENTRY_TYPE".into(), t.to_ascii_lowercase());
            }
            if let Some(g) = &p.part_guid {
                out.insert("PART_ENTRY_UUID".into(), g.to_ascii_lowercase());
            }
            if let Some(n) = &p.name {
                out.insert("PART_ENTRY_NAME".into(), n.clone());
            }
        }
        Ok(out)
    }

    fn disk_of(&self, device: &str) -> Result<(Arc<model::Model>, usize)> {
        let m = self.model()?;
        let d = m.device(device)?;
        match (d.partition.is_none(), d.disk) {
            (true, Some(i)) => Ok((m.clone(), i)),
            _ => {
                Err(Error::invalid("not a whole disk (expected /dev/sda, ...)").with_device(device))
            }
        }
    }

    fn partitions_of(&self, device: &str) -> Result<Vec<crate::part::Partition>> {
        let (m, i) = self.disk_of(device)?;
        if m.disks[i].scheme.is_none() {
            return Err(Error::invalid("the disk has no partition table").with_device(device));
        }
        Ok(m.devices
            .iter()
            .filter(|d| d.disk == Some(i))
            .filter_map(|d| d.partition.clone())
            .collect())
    }

    fn partition(&self, device: &str, partnum: i32) -> Result<crate::part::Partition> {
        self.partitions_of(device)?
            .into_iter()
            .find(|p| p.number as i64 == partnum as i64)
            .ok_or_else(|| Error::not_found(format!("no partition {partnum}")).with_device(device))
    }

    /// The disk's partitions with byte offsets (`guestfs_part_list`).
    pub fn part_list(&self, device: &str) -> Result<Vec<Partition>> {
        Ok(self
            .partitions_of(device)?
            .into_iter()
            .map(|p| Partition {
                part_num: p.number as i32,
                part_start: p.start as i64,
                part_end: (p.start + p.size) as i64 - 1,
                part_size: p.size as i64,
            })
            .collect())
    }

    /// `msdos`, `gpt` or `bsd` (`guestfs_part_get_parttype`).
    pub fn part_get_parttype(&self, device: &str) -> Result<String> {
        let (m, i) = self.disk_of(device)?;
        m.disks[i]
            .scheme
            .map(str::to_string)
            .ok_or_else(|| Error::invalid("the disk has no partition table").with_device(device))
    }

    /// The MBR type byte of a partition (`guestfs_part_get_mbr_id`).
    pub fn part_get_mbr_id(&self, device: &str, partnum: i32) -> Result<i32> {
        let p = self.partition(device, partnum)?;
        p.mbr_type
            .map(i32::from)
            .ok_or_else(|| Error::invalid("not an MBR partition").with_device(device))
    }

    /// The GPT type GUID, upper case (`guestfs_part_get_gpt_type`).
    pub fn part_get_gpt_type(&self, device: &str, partnum: i32) -> Result<String> {
        let p = self.partition(device, partnum)?;
        p.type_guid
            .map(|g| g.to_ascii_uppercase())
            .ok_or_else(|| Error::invalid("not a GPT partition").with_device(device))
    }

    /// The GPT partition GUID, upper case (`guestfs_part_get_gpt_guid`).
    pub fn part_get_gpt_guid(&self, device: &str, partnum: i32) -> Result<String> {
        let p = self.partition(device, partnum)?;
        p.part_guid
            .map(|g| g.to_ascii_uppercase())
            .ok_or_else(|| Error::invalid("not a GPT partition").with_device(device))
    }

    /// The GPT partition name (`guestfs_part_get_name`).
    pub fn part_get_name(&self, device: &str, partnum: i32) -> Result<String> {
        let p = self.partition(device, partnum)?;
        Ok(p.name.unwrap_or_default())
    }

    /// `/dev/sda1` → `/dev/sda` (`guestfs_part_to_dev`).
    pub fn part_to_dev(&self, partition: &str) -> Result<String> {
        let m = self.model()?;
        let d = m.device(partition)?;
        match (&d.partition, d.disk) {
            (Some(_), Some(i)) => Ok(crate::part::disk_name(i)),
            _ => Err(Error::invalid("not a partition").with_device(partition)),
        }
    }

    /// `/dev/sda1` → 1 (`guestfs_part_to_partnum`).
    pub fn part_to_partnum(&self, partition: &str) -> Result<i32> {
        let m = self.model()?;
        let d = m.device(partition)?;
        d.partition
            .as_ref()
            .map(|p| p.number as i32)
            .ok_or_else(|| Error::invalid("not a partition").with_device(partition))
    }

    /// Size of a device in bytes (`guestfs_blockdev_getsize64`).
    pub fn blockdev_getsize64(&self, device: &str) -> Result<i64> {
        let m = self.model()?;
        Ok(m.device(device)?.device.size() as i64)
    }

    /// `count` bytes of a device from `offset` (`guestfs_pread_device`); shorter at the end.
    pub fn pread_device(&self, device: &str, count: i32, offset: i64) -> Result<Vec<u8>> {
        let m = self.model()?;
        let d = m.device(device)?;
        let count = count_arg("count", count as i64)?.min(crate::api::MAX_READ);
        let offset = count_arg("offset", offset)?;
        let size = d.device.size();
        let n = count.min(size.saturating_sub(offset));
        let mut buf = vec![0u8; n as usize];
        d.device
            .read_exact_at(offset, &mut buf)
            .map_err(|e| Error::from(e).with_device(device))?;
        Ok(buf)
    }

    /// Whether a whole device reads as zeros (`guestfs_is_zero_device`); holes and zero
    /// ranges of the image are not read.
    pub fn is_zero_device(&self, device: &str) -> Result<bool> {
        let m = self.model()?;
        let d = m.device(device)?;
        let dev = d.device.clone();
        let size = dev.size();
        let mut buf = vec![0u8; CHUNK];
        let mut off = 0u64;
        while off < size {
            let len = (size - off).min(64 << 20);
            let map = dev
                .map(off, len)
                .map_err(|e| Error::from(e).with_device(device))?;
            for ext in map.iter().filter(|e| !e.kind.reads_as_zero()) {
                let mut o = ext.offset;
                while o < ext.end() {
                    let n = (ext.end() - o).min(CHUNK as u64) as usize;
                    dev.read_exact_at(o, &mut buf[..n])
                        .map_err(|e| Error::from(e).with_device(device))?;
                    if buf[..n].iter().any(|&b| b != 0) {
                        return Ok(false);
                    }
                    o += n as u64;
                }
            }
            off += len;
        }
        Ok(true)
    }

    fn image_info_of(&self, filename: &Path) -> Result<crate::ImageInfo> {
        let img = crate::formats::open_image(
            filename,
            &crate::formats::OpenOptions {
                follow_backing: false,
                ..Default::default()
            },
        )?;
        Ok(img.info().clone())
    }

    /// The format of an image file as qemu-img names it (`guestfs_disk_format`): `raw`,
    /// `qcow2`, `vmdk`, `vpc`, `vdi`, `vhdx`. Needs no launch.
    pub fn disk_format(&self, filename: impl AsRef<Path>) -> Result<String> {
        Ok(self
            .image_info_of(filename.as_ref())?
            .format
            .name()
            .to_string())
    }

    /// The virtual size of an image file in bytes (`guestfs_disk_virtual_size`).
    pub fn disk_virtual_size(&self, filename: impl AsRef<Path>) -> Result<i64> {
        Ok(self.image_info_of(filename.as_ref())?.virtual_size as i64)
    }

    /// Whether an image file has a backing file (`guestfs_disk_has_backing_file`).
    pub fn disk_has_backing_file(&self, filename: impl AsRef<Path>) -> Result<bool> {
        Ok(self
            .image_info_of(filename.as_ref())?
            .backing_filename
            .is_some())
    }
}

fn dos_name(scheme: &str) -> &str {
    match scheme {
        "msdos" => "dos",
        s => s,
    }
}

// ---- mounts ----------------------------------------------------------------------------

impl Guestfs {
    fn mount_with(&self, mountable: &str, mountpoint: &str, replay: bool) -> Result<()> {
        self.trace("mount", format_args!("{mountable:?} {mountpoint:?}"));
        absolute(mountpoint)?;
        let m = self.model()?;
        let device = m.device(mountable)?.name.clone();
        let f = m
            .open_fs(&device, replay)
            .map_err(|e| Error::from(e).with_device(mountable))?;
        let mut st = self.state();
        let is_root = model::mount_depth(mountpoint) == 0;
        let has_root = st
            .mounts
            .iter()
            .any(|x| model::mount_depth(&x.mountpoint) == 0);
        if is_root && has_root {
            return Err(Error::state(
                "a filesystem is already mounted on /: umount_all() first",
            ));
        }
        if !is_root && !has_root {
            return Err(Error::state(format!(
                "cannot mount on {mountpoint}: mount the root filesystem on / first"
            )));
        }
        let mut mounts = st.mounts.clone();
        mounts.push(Mounted {
            mountpoint: mountpoint.to_string(),
            device: device.clone(),
            fs: f,
        });
        let tree = build(&mounts).map_err(|e| Error::from(e).with_device(mountable))?;
        st.mounts = mounts;
        st.tree = Some(tree);
        drop(st);
        self.verbose(format_args!("mounted {device} on {mountpoint} (read-only)"));
        Ok(())
    }

    /// Mounts `mountable` on `mountpoint` read-only (`guestfs_mount_ro`). The first mount
    /// must be on `/`; later ones on directories of the tree as it is (parents first).
    pub fn mount_ro(&self, mountable: &str, mountpoint: &str) -> Result<()> {
        self.mount_with(mountable, mountpoint, true)
    }

    /// Mounts like [`Guestfs::mount_ro`] (`guestfs_mount`): drives are read-only in
    /// process, so the mount is too and write calls fail.
    pub fn mount(&self, mountable: &str, mountpoint: &str) -> Result<()> {
        self.mount_with(mountable, mountpoint, true)
    }

    /// Mounts with mount(8) options (`guestfs_mount_options`). Options that change nothing
    /// for a read-only in-process mount (`ro`, `noatime`, `relatime`, `nodev`, `nosuid`,
    /// `noexec`, `defaults`) are accepted; `norecovery`/`noload` read the filesystem without
    /// replaying its journal or log; anything else (`rw`, `subvol=`, ...) is refused.
    pub fn mount_options(&self, options: &str, mountable: &str, mountpoint: &str) -> Result<()> {
        let mut replay = true;
        for o in options.split(',').filter(|o| !o.is_empty()) {
            match o {
                "ro" | "noatime" | "relatime" | "nodiratime" | "nodev" | "nosuid" | "noexec"
                | "defaults" => {}
                "norecovery" | "noload" => replay = false,
                "rw" => {
                    return Err(Error::unsupported(
                        "mount option rw: guestctl mounts read-only (writes need the appliance)",
                    ))
                }
                other => {
                    return Err(Error::unsupported(format!(
                        "mount option {other:?} is not supported"
                    )))
                }
            }
        }
        self.mount_with(mountable, mountpoint, replay)
    }

    /// Mounts after checking the filesystem type (`guestfs_mount_vfs`).
    pub fn mount_vfs(
        &self,
        options: &str,
        vfstype: &str,
        mountable: &str,
        mountpoint: &str,
    ) -> Result<()> {
        let t = self.vfs_type(mountable)?;
        if !vfstype.is_empty()
            && t != vfstype
            && !(vfstype.starts_with("ext") && t.starts_with("ext"))
        {
            return Err(
                Error::invalid(format!("the filesystem is {t}, not {vfstype}"))
                    .with_device(mountable),
            );
        }
        self.mount_options(options, mountable, mountpoint)
    }

    /// Unmounts the filesystem mounted on `pathordevice` (a mountpoint or a device), and
    /// what is mounted below it (`guestfs_umount`).
    pub fn umount(&self, pathordevice: &str) -> Result<()> {
        let canon = canonical_device_name(pathordevice);
        let mut st = self.state();
        let Some(target) = st
            .mounts
            .iter()
            .rev()
            .find(|x| x.mountpoint == pathordevice || x.device == canon)
            .map(|x| x.mountpoint.clone())
        else {
            return Err(Error::not_found("not mounted").with_path(pathordevice));
        };
        let below = |mp: &str| {
            mp == target
                || target == "/"
                || mp
                    .strip_prefix(target.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        };
        let mounts: Vec<Mounted> = st
            .mounts
            .iter()
            .filter(|x| !below(&x.mountpoint))
            .cloned()
            .collect();
        st.tree = if mounts.is_empty() {
            None
        } else {
            Some(build(&mounts)?)
        };
        st.mounts = mounts;
        Ok(())
    }

    /// Unmounts everything (`guestfs_umount_all`).
    pub fn umount_all(&self) -> Result<()> {
        let mut st = self.state();
        st.mounts.clear();
        st.tree = None;
        Ok(())
    }

    /// The mounted devices, in mount order (`guestfs_mounts`).
    pub fn mounts(&self) -> Result<Vec<String>> {
        Ok(self
            .state()
            .mounts
            .iter()
            .map(|x| x.device.clone())
            .collect())
    }

    /// Device → mountpoint of every mount (`guestfs_mountpoints`).
    pub fn mountpoints(&self) -> Result<BTreeMap<String, String>> {
        Ok(self
            .state()
            .mounts
            .iter()
            .map(|x| (x.device.clone(), x.mountpoint.clone()))
            .collect())
    }

    /// The mounted tree (after `mount_ro` on `/`).
    pub fn tree(&self) -> Result<Arc<dyn Filesystem>> {
        self.state().tree.clone().ok_or_else(|| {
            Error::state("no filesystem is mounted on /: call mount_ro(device, \"/\") first")
        })
    }
}

fn build(mounts: &[Mounted]) -> std::result::Result<Arc<dyn Filesystem>, fs::Error> {
    let root = mounts
        .iter()
        .find(|x| model::mount_depth(&x.mountpoint) == 0)
        .map(|x| x.fs.clone())
        .ok_or_else(|| fs::Error::new(fs::ErrorKind::InvalidInput, "nothing mounted on /"))?;
    let others: Vec<(String, String, Arc<dyn Filesystem>)> = mounts
        .iter()
        .filter(|x| model::mount_depth(&x.mountpoint) != 0)
        .map(|x| (x.mountpoint.clone(), x.device.clone(), x.fs.clone()))
        .collect();
    model::build_tree(root, &others, true, &mut Vec::new())
}

// ---- files -----------------------------------------------------------------------------

/// What a walk of the API found that it had to skip, printed as warnings.
struct Warn<'a> {
    call: &'a str,
    base: &'a str,
}

impl Warn<'_> {
    fn problem(&self, p: &walk::Problem) {
        eprintln!("guestctl: warning: {}: {}", self.call, p.line(self.base));
    }
}

struct Collect<'a, F: FnMut(&walk::Item)> {
    f: F,
    warn: Warn<'a>,
}

impl<F: FnMut(&walk::Item)> walk::Visitor for Collect<'_, F> {
    type Error = std::convert::Infallible;
    fn entry(&mut self, item: &walk::Item) -> std::result::Result<walk::Visit, Self::Error> {
        (self.f)(item);
        Ok(walk::Visit::Descend)
    }
    fn problem(&mut self, p: walk::Problem) -> std::result::Result<(), Self::Error> {
        self.warn.problem(&p);
        Ok(())
    }
}

fn mode_chars(m: &Metadata) -> String {
    let mut s = String::with_capacity(10);
    s.push(match m.file_type {
        FileType::Regular | FileType::Unknown => '-',
        other => other.type_char(),
    });
    let bits = m.mode;
    for (shift, special, lower, upper) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let p = (bits >> shift) & 7;
        s.push(if p & 4 != 0 { 'r' } else { '-' });
        s.push(if p & 2 != 0 { 'w' } else { '-' });
        let x = p & 1 != 0;
        s.push(match (bits & special != 0, x) {
            (true, true) => lower,
            (true, false) => upper,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// `2024-05-01 13:45` (UTC) for `ll`.
fn long_iso(t: Option<fs::Timestamp>) -> String {
    let Some(t) = t else {
        return "????-??-?? ??:??".into();
    };
    let days = t.secs.div_euclid(86_400);
    let rem = t.secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// POSIX `cksum` CRC (polynomial 0x04C11DB7, length appended, complemented).
#[derive(Default)]
struct Cksum {
    crc: u32,
    len: u64,
}

impl Cksum {
    fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.byte(b);
        }
        self.len += data.len() as u64;
    }
    fn byte(&mut self, b: u8) {
        self.crc ^= (b as u32) << 24;
        for _ in 0..8 {
            self.crc = if self.crc & 0x8000_0000 != 0 {
                (self.crc << 1) ^ 0x04C1_1DB7
            } else {
                self.crc << 1
            };
        }
    }
    fn finish(mut self) -> u32 {
        let mut n = self.len;
        while n != 0 {
            self.byte(n as u8);
            n >>= 8;
        }
        !self.crc
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Guestfs {
    /// The mounted tree and the node `path` names (symlinks followed when `follow`).
    fn node(&self, path: &str, follow: bool) -> Result<(Arc<dyn Filesystem>, NodeId)> {
        absolute(path)?;
        let tree = self.tree()?;
        let node = fs::resolve_path(tree.as_ref(), path.as_bytes(), follow)
            .map_err(|e| Error::from(e).with_path(path))?;
        Ok((tree, node))
    }

    fn meta(&self, path: &str, follow: bool) -> Result<(Arc<dyn Filesystem>, NodeId, Metadata)> {
        let (t, n) = self.node(path, follow)?;
        let m = t.metadata(n).map_err(|e| Error::from(e).with_path(path))?;
        Ok((t, n, m))
    }

    fn regular(&self, path: &str) -> Result<(Arc<dyn Filesystem>, NodeId, Metadata)> {
        let (t, n, m) = self.meta(path, true)?;
        match m.file_type {
            FileType::Regular => Ok((t, n, m)),
            FileType::Directory => {
                Err(Error::new(ErrorKind::IsADirectory, "is a directory").with_path(path))
            }
            _ => Err(Error::invalid("not a regular file").with_path(path)),
        }
    }

    /// The whole file as bytes (`guestfs_read_file`); at most [`MAX_READ`] bytes.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        self.trace("read_file", format_args!("{path:?}"));
        let (t, n, _) = self.regular(path)?;
        t.read_to_end(n, MAX_READ)
            .map_err(|e| Error::from(e).with_path(path))
    }

    /// The whole file as text (`guestfs_cat`); bytes that are not UTF-8 are replaced with
    /// U+FFFD (use [`Guestfs::read_file`] for binary files).
    pub fn cat(&self, path: &str) -> Result<String> {
        self.trace("cat", format_args!("{path:?}"));
        let b = self.read_file(path)?;
        Ok(match String::from_utf8(b) {
            Ok(s) => s,
            Err(e) => lossy(e.as_bytes()),
        })
    }

    /// The file's lines, without their `\n` or `\r\n` (`guestfs_read_lines`).
    pub fn read_lines(&self, path: &str) -> Result<Vec<String>> {
        let text = self.cat(path)?;
        Ok(split_lines(&text))
    }

    /// The first 10 lines (`guestfs_head`).
    pub fn head(&self, path: &str) -> Result<Vec<String>> {
        self.head_n(10, path)
    }

    /// The first `nrlines` lines; a negative `nrlines` gives all but the last `-nrlines`
    /// (`guestfs_head_n`).
    pub fn head_n(&self, nrlines: i32, path: &str) -> Result<Vec<String>> {
        let mut lines = self.read_lines(path)?;
        let n = nrlines.unsigned_abs() as usize;
        if nrlines >= 0 {
            lines.truncate(n);
        } else {
            lines.truncate(lines.len().saturating_sub(n));
        }
        Ok(lines)
    }

    /// The last 10 lines (`guestfs_tail`).
    pub fn tail(&self, path: &str) -> Result<Vec<String>> {
        self.tail_n(10, path)
    }

    /// The last `nrlines` lines; a negative `nrlines` gives the lines from line `-nrlines`
    /// on (1-based) (`guestfs_tail_n`).
    pub fn tail_n(&self, nrlines: i32, path: &str) -> Result<Vec<String>> {
        let lines = self.read_lines(path)?;
        let n = nrlines.unsigned_abs() as usize;
        let skip = if nrlines >= 0 {
            lines.len().saturating_sub(n)
        } else {
            n.saturating_sub(1).min(lines.len())
        };
        Ok(lines[skip..].to_vec())
    }

    /// `count` bytes from `offset` (`guestfs_pread`); fewer at the end of the file.
    pub fn pread(&self, path: &str, count: i32, offset: i64) -> Result<Vec<u8>> {
        let (t, n, m) = self.regular(path)?;
        let count = count_arg("count", count as i64)?;
        let offset = count_arg("offset", offset)?;
        let len = count.min(m.size.saturating_sub(offset));
        let mut buf = vec![0u8; len as usize];
        let got = t
            .read_full_at(n, offset, &mut buf)
            .map_err(|e| Error::from(e).with_path(path))?;
        buf.truncate(got);
        Ok(buf)
    }

    fn stream(
        &self,
        path: &str,
        offset: u64,
        size: Option<u64>,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let (t, n, m) = self.regular(path)?;
        let end = size.map_or(m.size, |s| offset.saturating_add(s).min(m.size));
        let mut buf = vec![0u8; CHUNK];
        let mut off = offset;
        while off < end {
            let want = ((end - off) as usize).min(CHUNK);
            let got = t
                .read_full_at(n, off, &mut buf[..want])
                .map_err(|e| Error::from(e).with_path(path))?;
            if got == 0 {
                break;
            }
            sink(&buf[..got])?;
            off += got as u64;
        }
        Ok(())
    }

    /// Copies a guest file to a host file (`guestfs_download`): written under a temporary
    /// name beside `filename` and renamed when complete.
    pub fn download(&self, remotefilename: &str, filename: impl AsRef<Path>) -> Result<()> {
        self.download_range(remotefilename, filename.as_ref(), 0, None)
    }

    /// Copies `size` bytes from `offset` of a guest file to a host file
    /// (`guestfs_download_offset`).
    pub fn download_offset(
        &self,
        remotefilename: &str,
        filename: impl AsRef<Path>,
        offset: i64,
        size: i64,
    ) -> Result<()> {
        let offset = count_arg("offset", offset)?;
        let size = count_arg("size", size)?;
        self.download_range(remotefilename, filename.as_ref(), offset, Some(size))
    }

    fn download_range(
        &self,
        remote: &str,
        local: &Path,
        offset: u64,
        size: Option<u64>,
    ) -> Result<()> {
        self.trace("download", format_args!("{remote:?} {local:?}"));
        let tmp = temp_beside(local)?;
        let mut w = std::io::BufWriter::new(tmp.as_file());
        self.stream(remote, offset, size, &mut |b| {
            w.write_all(b)
                .map_err(|e| host_error(local, "cannot write", e))
        })?;
        w.flush()
            .map_err(|e| host_error(local, "cannot write", e))?;
        drop(w);
        persist(tmp, local)
    }

    /// The names in a directory, sorted, without `.` and `..` (`guestfs_ls`).
    pub fn ls(&self, directory: &str) -> Result<Vec<String>> {
        self.trace("ls", format_args!("{directory:?}"));
        let (t, n, m) = self.meta(directory, true)?;
        if m.file_type != FileType::Directory {
            return Err(
                Error::new(ErrorKind::NotADirectory, "not a directory").with_path(directory)
            );
        }
        let mut names: Vec<String> = t
            .read_dir(n)
            .map_err(|e| Error::from(e).with_path(directory))?
            .into_iter()
            .filter(|e| walk::bad_name(&e.name).is_none())
            .map(|e| lossy(&e.name))
            .collect();
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    /// A long listing of a directory, one line per entry like `ls -la --time-style=long-iso`
    /// (`guestfs_ll`; numeric owners, times in UTC).
    pub fn ll(&self, directory: &str) -> Result<String> {
        let (t, _, _) = self.meta(directory, true)?;
        let mut out = String::new();
        for name in self.ls(directory)? {
            let p = format!("{}/{name}", directory.trim_end_matches('/'));
            let (_, node, m) = self.meta(&p, false)?;
            let size = match m.rdev {
                Some((ma, mi)) => format!("{ma}, {mi}"),
                None => m.size.to_string(),
            };
            let mut line = format!(
                "{} {:>3} {:>5} {:>5} {:>10} {} {name}",
                mode_chars(&m),
                m.nlink,
                m.uid,
                m.gid,
                size,
                long_iso(m.mtime)
            );
            if m.file_type == FileType::Symlink {
                if let Ok(target) = t.read_link(node) {
                    line.push_str(&format!(" -> {}", lossy(&target)));
                }
            }
            out.push_str(&line);
            out.push('\n');
        }
        Ok(out)
    }

    fn walk_from(
        &self,
        call: &str,
        directory: &str,
        f: &mut dyn FnMut(&walk::Item),
    ) -> Result<Arc<dyn Filesystem>> {
        let (t, n, m) = self.meta(directory, true)?;
        let start = walk::Item {
            rel: Vec::new(),
            node: n,
            meta: m,
        };
        let mut v = Collect {
            f,
            warn: Warn {
                call,
                base: directory,
            },
        };
        let Ok(()) = walk::walk(
            t.as_ref(),
            start,
            &|_| true,
            &walk::WalkOptions::default(),
            &mut v,
        );
        Ok(t)
    }

    /// Every name below `directory`, relative to it, sorted (`guestfs_find`): `["a", "b",
    /// "b/c"]`. Entries that cannot be read are reported as warnings on stderr and left out.
    pub fn find(&self, directory: &str) -> Result<Vec<String>> {
        self.trace("find", format_args!("{directory:?}"));
        let mut out = Vec::new();
        self.walk_from("find", directory, &mut |item| {
            if !item.rel.is_empty() {
                out.push(lossy(&item.rel));
            }
        })?;
        out.sort_unstable();
        Ok(out)
    }

    /// Disk space used by `path` and everything below it, in KiB (`guestfs_du`).
    pub fn du(&self, path: &str) -> Result<i64> {
        let mut total = 0u64;
        self.walk_from("du", path, &mut |item| total += item.meta.allocated)?;
        Ok((total / 1024) as i64)
    }

    fn statns_of(&self, path: &str, follow: bool) -> Result<StatNS> {
        let (t, _, m) = self.meta(path, follow)?;
        let ts = |x: Option<fs::Timestamp>| x.map_or((0, 0), |t| (t.secs, t.nanos as i64));
        let (a, an) = ts(m.atime);
        let (mt, mn) = ts(m.mtime);
        let (c, cn) = ts(m.ctime);
        Ok(StatNS {
            st_dev: self.mount_index(path) as i64,
            st_ino: m.inode as i64,
            st_mode: m.st_mode() as i64,
            st_nlink: m.nlink as i64,
            st_uid: m.uid as i64,
            st_gid: m.gid as i64,
            st_rdev: m.rdev.map_or(0, |(ma, mi)| makedev(ma, mi)),
            st_size: m.size as i64,
            st_blksize: t.info().block_size.max(512) as i64,
            st_blocks: (m.allocated / 512) as i64,
            st_atime_sec: a,
            st_atime_nsec: an,
            st_mtime_sec: mt,
            st_mtime_nsec: mn,
            st_ctime_sec: c,
            st_ctime_nsec: cn,
            ..StatNS::default()
        })
    }

    /// The mount `path` is in (its index in mount order, root 0), by mountpoint prefix.
    fn mount_index(&self, path: &str) -> usize {
        let st = self.state();
        let mut best = (0usize, 0usize);
        for (i, x) in st.mounts.iter().enumerate() {
            let mp = x.mountpoint.trim_end_matches('/');
            let inside = mp.is_empty()
                || path == mp
                || path.strip_prefix(mp).is_some_and(|r| r.starts_with('/'));
            if inside && mp.len() >= best.1 {
                best = (i, mp.len());
            }
        }
        best.0
    }

    /// `stat(2)` of `path`, symlinks followed (`guestfs_statns`). `st_dev` is the index of
    /// the mount the path is on.
    pub fn statns(&self, path: &str) -> Result<StatNS> {
        self.statns_of(path, true)
    }

    /// `lstat(2)`: a final symlink is described itself (`guestfs_lstatns`).
    pub fn lstatns(&self, path: &str) -> Result<StatNS> {
        self.statns_of(path, false)
    }

    /// `stat(2)` in whole seconds (`guestfs_stat`).
    pub fn stat(&self, path: &str) -> Result<Stat> {
        Ok(to_stat(self.statns(path)?))
    }

    /// `lstat(2)` in whole seconds (`guestfs_lstat`).
    pub fn lstat(&self, path: &str) -> Result<Stat> {
        Ok(to_stat(self.lstatns(path)?))
    }

    fn type_is(&self, path: &str, follow: bool, t: FileType) -> Result<bool> {
        match self.meta(path, follow) {
            Ok((_, _, m)) => Ok(m.file_type == t),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether `path` is a regular file, symlinks followed (`guestfs_is_file`).
    pub fn is_file(&self, path: &str) -> Result<bool> {
        self.type_is(path, true, FileType::Regular)
    }
    /// Whether `path` is a directory, symlinks followed (`guestfs_is_dir`).
    pub fn is_dir(&self, path: &str) -> Result<bool> {
        self.type_is(path, true, FileType::Directory)
    }
    /// Whether `path` is a symbolic link (`guestfs_is_symlink`).
    pub fn is_symlink(&self, path: &str) -> Result<bool> {
        self.type_is(path, false, FileType::Symlink)
    }
    /// Whether `path` is a character device (`guestfs_is_chardev`).
    pub fn is_chardev(&self, path: &str) -> Result<bool> {
        self.type_is(path, true, FileType::CharDevice)
    }
    /// Whether `path` is a block device (`guestfs_is_blockdev`).
    pub fn is_blockdev(&self, path: &str) -> Result<bool> {
        self.type_is(path, true, FileType::BlockDevice)
    }

    /// Whether `path` exists (`guestfs_exists`; a dangling symlink does not).
    pub fn exists(&self, path: &str) -> Result<bool> {
        match self.node(path, true) {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Size of a file in bytes (`guestfs_filesize`).
    pub fn filesize(&self, path: &str) -> Result<i64> {
        Ok(self.meta(path, true)?.2.size as i64)
    }

    /// The target of a symbolic link, as stored (`guestfs_readlink`).
    pub fn readlink(&self, path: &str) -> Result<String> {
        let (t, n, m) = self.meta(path, false)?;
        if m.file_type != FileType::Symlink {
            return Err(Error::invalid("not a symbolic link").with_path(path));
        }
        Ok(lossy(
            &t.read_link(n).map_err(|e| Error::from(e).with_path(path))?,
        ))
    }

    /// The canonical absolute path: symlinks, `.` and `..` resolved inside the guest
    /// (`guestfs_realpath`).
    pub fn realpath(&self, path: &str) -> Result<String> {
        absolute(path)?;
        let tree = self.tree()?;
        let mut todo: std::collections::VecDeque<String> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_string)
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut links = 0u32;
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                done.pop();
                continue;
            }
            let cur = format!(
                "/{}",
                done.iter()
                    .chain([&c])
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("/")
            );
            let node = fs::resolve_path(tree.as_ref(), cur.as_bytes(), false)
                .map_err(|e| Error::from(e).with_path(path))?;
            let m = tree
                .metadata(node)
                .map_err(|e| Error::from(e).with_path(path))?;
            if m.file_type == FileType::Symlink {
                links += 1;
                if links > 40 {
                    return Err(
                        Error::new(ErrorKind::Limit, "too many symbolic links").with_path(path)
                    );
                }
                let target = lossy(
                    &tree
                        .read_link(node)
                        .map_err(|e| Error::from(e).with_path(path))?,
                );
                if target.starts_with('/') {
                    done.clear();
                }
                for (i, t) in target
                    .split('/')
                    .filter(|c| !c.is_empty() && *c != ".")
                    .enumerate()
                {
                    todo.insert(i, t.to_string());
                }
            } else {
                done.push(c);
            }
        }
        Ok(format!("/{}", done.join("/")))
    }

    fn xattrs_of(&self, path: &str, follow: bool) -> Result<Vec<XAttr>> {
        let (t, n, _) = self.meta(path, follow)?;
        Ok(t.xattrs(n)
            .map_err(|e| Error::from(e).with_path(path))?
            .into_iter()
            .map(|x| XAttr {
                attrname: lossy(&x.name),
                attrval: x.value,
            })
            .collect())
    }

    /// Extended attributes, symlinks followed (`guestfs_getxattrs`).
    pub fn getxattrs(&self, path: &str) -> Result<Vec<XAttr>> {
        self.xattrs_of(path, true)
    }

    /// Extended attributes of a symlink itself (`guestfs_lgetxattrs`).
    pub fn lgetxattrs(&self, path: &str) -> Result<Vec<XAttr>> {
        self.xattrs_of(path, false)
    }

    /// One extended attribute's value (`guestfs_getxattr`).
    pub fn getxattr(&self, path: &str, name: &str) -> Result<Vec<u8>> {
        self.getxattrs(path)?
            .into_iter()
            .find(|x| x.attrname == name)
            .map(|x| x.attrval)
            .ok_or_else(|| {
                Error::not_found(format!("no extended attribute {name}")).with_path(path)
            })
    }

    /// Filesystem statistics of the mount `path` is on (`guestfs_statvfs`); inode counts
    /// are `-1` (not kept by the readers), `flag` is `ST_RDONLY`.
    pub fn statvfs(&self, path: &str) -> Result<StatVFS> {
        self.meta(path, true)?;
        let i = self.mount_index(path);
        let f = self
            .state()
            .mounts
            .get(i)
            .map(|x| x.fs.clone())
            .ok_or_else(|| Error::state("nothing mounted"))?;
        Ok(statvfs_of(&f.info()))
    }

    /// A `df`-style table of the mounts (`guestfs_df`), sizes in 1K blocks.
    pub fn df(&self) -> Result<String> {
        let mounts = self.state().mounts.clone();
        let mut out = String::from(
            "Filesystem                1K-blocks       Used  Available Use% Mounted on\n",
        );
        for x in mounts {
            let info = x.fs.info();
            let total = info.size / 1024;
            let (used, avail, pct) = match info.free {
                Some(free) => {
                    let used = total.saturating_sub(free / 1024);
                    let pct = if total == 0 {
                        0
                    } else {
                        (used * 100).div_ceil(total)
                    };
                    (
                        used.to_string(),
                        (free / 1024).to_string(),
                        format!("{pct}%"),
                    )
                }
                None => ("-".into(), "-".into(), "-".into()),
            };
            out.push_str(&format!(
                "{:<24} {:>10} {:>10} {:>10} {:>4} {}\n",
                x.device, total, used, avail, pct, x.mountpoint
            ));
        }
        Ok(out)
    }

    /// The checksum of a file (`guestfs_checksum`): `csumtype` is `crc` (POSIX `cksum`,
    /// decimal), `md5`, `sha1`, `sha224`, `sha256`, `sha384` or `sha512` (lower-case hex).
    pub fn checksum(&self, csumtype: &str, path: &str) -> Result<String> {
        self.trace("checksum", format_args!("{csumtype:?} {path:?}"));
        let t = csumtype.to_ascii_lowercase();
        fn digest<D: sha2::Digest>(g: &Guestfs, path: &str) -> Result<String> {
            let mut d = D::new();
            g.stream(path, 0, None, &mut |b| {
                d.update(b);
                Ok(())
            })?;
            Ok(hex(&d.finalize()))
        }
        match t.as_str() {
            "crc" => {
                let mut c = Cksum::default();
                self.stream(path, 0, None, &mut |b| {
                    c.update(b);
                    Ok(())
                })?;
                Ok(c.finish().to_string())
            }
            "md5" => digest::<md5::Md5>(self, path),
            "sha1" => digest::<sha1::Sha1>(self, path),
            "sha224" => digest::<sha2::Sha224>(self, path),
            "sha256" => digest::<sha2::Sha256>(self, path),
            "sha384" => digest::<sha2::Sha384>(self, path),
            "sha512" => digest::<sha2::Sha512>(self, path),
            _ => Err(Error::invalid(format!(
                "unknown checksum type {csumtype:?} (crc, md5, sha1, sha224, sha256, sha384, sha512)"
            ))),
        }
    }

    /// Checksums of every regular file below `directory` into the host file `sumsfile`, as
    /// `HASH  ./path` lines like `find . -type f | xargs sha256sum` (`guestfs_checksums_out`).
    pub fn checksums_out(
        &self,
        csumtype: &str,
        directory: &str,
        sumsfile: impl AsRef<Path>,
    ) -> Result<()> {
        let sumsfile = sumsfile.as_ref();
        let mut files = Vec::new();
        self.walk_from("checksums_out", directory, &mut |item| {
            if item.meta.file_type == FileType::Regular {
                files.push(lossy(&item.rel));
            }
        })?;
        let tmp = temp_beside(sumsfile)?;
        let mut w = std::io::BufWriter::new(tmp.as_file());
        for rel in files {
            let p = format!("{}/{rel}", directory.trim_end_matches('/'));
            let sum = self.checksum(csumtype, &p)?;
            writeln!(w, "{sum}  ./{rel}").map_err(|e| host_error(sumsfile, "cannot write", e))?;
        }
        w.flush()
            .map_err(|e| host_error(sumsfile, "cannot write", e))?;
        drop(w);
        persist(tmp, sumsfile)
    }

    /// A tar archive of `directory` into the host file `tarfile` (`guestfs_tar_out`).
    pub fn tar_out(&self, directory: &str, tarfile: impl AsRef<Path>) -> Result<()> {
        self.tar_out_opts(directory, tarfile, None)
    }

    /// [`Guestfs::tar_out`] compressed (`guestfs_tar_out_opts`): `compress` is `gzip` or
    /// `zstd` (`None`: plain tar). Owners are stored by name and number. Written under a
    /// temporary name and renamed when complete; when some entries could not be read the
    /// archive holds the rest and the call fails naming how many are missing (each is
    /// printed as a warning).
    pub fn tar_out_opts(
        &self,
        directory: &str,
        tarfile: impl AsRef<Path>,
        compress: Option<&str>,
    ) -> Result<()> {
        use crate::export::{Compression, TarOptions, TarOutput};
        self.trace(
            "tar_out",
            format_args!("{directory:?} {:?}", tarfile.as_ref()),
        );
        absolute(directory)?;
        let compression = match compress {
            None | Some("") | Some("none") => Compression::None,
            Some("gzip") => Compression::Gzip,
            Some("zstd") => Compression::Zstd,
            Some(other) => {
                return Err(Error::unsupported(format!(
                    "compression {other:?} is not supported (gzip or zstd)"
                )))
            }
        };
        let tree = self.tree()?;
        let opts = TarOptions {
            compression,
            ..TarOptions::default()
        };
        let mut problem = |p: crate::export::Problem| {
            eprintln!("guestctl: warning: tar_out: {}", p.error);
        };
        let mut sink = crate::export::Sink::new(&mut problem);
        let summary = crate::export::tar_out(
            tree.as_ref(),
            directory,
            TarOutput::<std::io::Sink>::Path(tarfile.as_ref()),
            &opts,
            &mut sink,
        )?;
        incomplete("tar_out", summary)
    }

    /// A gzip-compressed tar archive (`guestfs_tgz_out`).
    pub fn tgz_out(&self, directory: &str, tarball: impl AsRef<Path>) -> Result<()> {
        self.tar_out_opts(directory, tarball, Some("gzip"))
    }

    /// Copies a guest file or directory (recursively) into the existing host directory
    /// `localdir` (`guestfs_copy_out`); nothing is written outside it.
    pub fn copy_out(&self, remote: &str, localdir: impl AsRef<Path>) -> Result<()> {
        absolute(remote)?;
        let tree = self.tree()?;
        let mut problem = |p: crate::export::Problem| {
            eprintln!("guestctl: warning: copy_out: {}", p.error);
        };
        let mut sink = crate::export::Sink::new(&mut problem);
        let summary = crate::export::copy_out(
            tree.as_ref(),
            remote,
            localdir.as_ref(),
            &crate::export::CopyOptions::default(),
            &mut sink,
        )?;
        incomplete("copy_out", summary)
    }

    /// The paths matching a shell glob (`*`, `?`, `[...]` in any component), sorted;
    /// directories end in `/` (`guestfs_glob_expand`). Names starting with `.` match only a
    /// component that starts with `.`.
    pub fn glob_expand(&self, pattern: &str) -> Result<Vec<String>> {
        absolute(pattern)?;
        let tree = self.tree()?;
        let comps: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
        let mut current: Vec<String> = vec![String::new()];
        for (i, comp) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            let mut next = Vec::new();
            let wild = comp.contains(['*', '?', '[']);
            for base in &current {
                let dir = if base.is_empty() {
                    "/".to_string()
                } else {
                    base.clone()
                };
                if !wild {
                    let p = format!("{base}/{comp}");
                    if fs::resolve_path(tree.as_ref(), p.as_bytes(), false).is_ok() {
                        next.push(p);
                    }
                    continue;
                }
                let listed = fs::resolve_path(tree.as_ref(), dir.as_bytes(), true)
                    .and_then(|node| tree.read_dir(node));
                let entries = match listed {
                    Ok(e) => e,
                    Err(e) if e.kind() == fs::ErrorKind::NotFound => continue,
                    Err(e) => {
                        eprintln!("guestctl: warning: glob_expand: {dir}: {e}");
                        continue;
                    }
                };
                let m = crate::export::Exclude::new(comp.as_bytes())?;
                for e in entries {
                    if walk::bad_name(&e.name).is_some()
                        || (e.name.starts_with(b".") && !comp.starts_with('.'))
                    {
                        continue;
                    }
                    if m.matches(&e.name) {
                        next.push(format!("{base}/{}", lossy(&e.name)));
                    }
                }
            }
            if !last {
                // Only directories can hold the next component.
                next.retain(|p| {
                    fs::resolve_path(tree.as_ref(), p.as_bytes(), true)
                        .and_then(|n| tree.metadata(n))
                        .is_ok_and(|m| m.file_type == FileType::Directory)
                });
            }
            next.sort_unstable();
            next.dedup();
            current = next;
            if current.len() > 1 << 20 {
                return Err(Error::new(ErrorKind::Limit, "more than 1048576 matches"));
            }
        }
        if comps.is_empty() {
            return Ok(vec!["/".into()]);
        }
        Ok(current
            .into_iter()
            .map(|p| {
                let dir = fs::resolve_path(tree.as_ref(), p.as_bytes(), true)
                    .and_then(|n| tree.metadata(n))
                    .is_ok_and(|m| m.file_type == FileType::Directory);
                if dir {
                    format!("{p}/")
                } else {
                    p
                }
            })
            .collect())
    }

    /// The lines of a file matching a regular expression (Rust `regex` syntax, close to
    /// `grep -E`) (`guestfs_grep`).
    pub fn grep(&self, regex: &str, path: &str) -> Result<Vec<String>> {
        let re = regex::bytes::Regex::new(regex)
            .map_err(|e| Error::invalid(format!("bad regular expression: {e}")))?;
        let data = self.read_file(path)?;
        let body = data.strip_suffix(b"\n").unwrap_or(&data);
        if data.is_empty() {
            return Ok(Vec::new());
        }
        Ok(body
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| re.is_match(l))
            .map(lossy)
            .collect())
    }

    /// What a file is, in the words of `file(1)` for the common cases (`guestfs_file`):
    /// `directory`, `symbolic link`, `empty`, `ELF 64-bit LSB executable, x86-64`,
    /// `gzip compressed data`, `ASCII text`, `UTF-8 Unicode text`, `data`, ...
    pub fn file(&self, path: &str) -> Result<String> {
        let (t, n, m) = self.meta(path, false)?;
        let kind = match m.file_type {
            FileType::Directory => "directory",
            FileType::Symlink => "symbolic link",
            FileType::CharDevice => "character special",
            FileType::BlockDevice => "block special",
            FileType::Fifo => "fifo (named pipe)",
            FileType::Socket => "socket",
            FileType::Regular => "",
            _ => "unknown",
        };
        if !kind.is_empty() {
            return Ok(kind.into());
        }
        if m.size == 0 {
            return Ok("empty".into());
        }
        let mut head = vec![0u8; 4096.min(m.size as usize)];
        let got = t
            .read_full_at(n, 0, &mut head)
            .map_err(|e| Error::from(e).with_path(path))?;
        head.truncate(got);
        Ok(describe_bytes(&head))
    }

    /// The architecture of an ELF binary (`guestfs_file_architecture`): `x86_64`, `i386`,
    /// `aarch64`, ...
    pub fn file_architecture(&self, filename: &str) -> Result<String> {
        let head = self.pread(filename, 64, 0)?;
        inspect::elf::elf_arch(&head)
            .map(str::to_string)
            .ok_or_else(|| {
                Error::unsupported("not an ELF binary of a known architecture").with_path(filename)
            })
    }

    /// Whether a file holds only zero bytes (`guestfs_is_zero`).
    pub fn is_zero(&self, path: &str) -> Result<bool> {
        let (t, n, m) = self.regular(path)?;
        let mut buf = vec![0u8; CHUNK];
        let mut off = 0u64;
        while off < m.size {
            let want = ((m.size - off) as usize).min(CHUNK);
            let got = t
                .read_full_at(n, off, &mut buf[..want])
                .map_err(|e| Error::from(e).with_path(path))?;
            if got == 0 {
                break;
            }
            if buf[..got].iter().any(|&b| b != 0) {
                return Ok(false);
            }
            off += got as u64;
        }
        Ok(true)
    }
}

fn split_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect();
    if text.ends_with('\n') || text.is_empty() {
        lines.pop();
    }
    lines
}

fn to_stat(s: StatNS) -> Stat {
    Stat {
        dev: s.st_dev,
        ino: s.st_ino,
        mode: s.st_mode,
        nlink: s.st_nlink,
        uid: s.st_uid,
        gid: s.st_gid,
        rdev: s.st_rdev,
        size: s.st_size,
        blksize: s.st_blksize,
        blocks: s.st_blocks,
        atime: s.st_atime_sec,
        mtime: s.st_mtime_sec,
        ctime: s.st_ctime_sec,
    }
}

fn statvfs_of(info: &fs::FsInfo) -> StatVFS {
    let bsize = info.block_size.max(512) as i64;
    let blocks = info.size as i64 / bsize;
    let bfree = info.free.map_or(-1, |f| f as i64 / bsize);
    StatVFS {
        bsize,
        frsize: bsize,
        blocks,
        bfree,
        bavail: bfree,
        files: -1,
        ffree: -1,
        favail: -1,
        fsid: 0,
        flag: 1,
        namemax: 255,
    }
}

fn describe_bytes(b: &[u8]) -> String {
    if b.starts_with(b"\x7fELF") && b.len() >= 20 {
        let class = match b[4] {
            1 => "32-bit",
            2 => "64-bit",
            _ => "invalid class",
        };
        let le = b[5] == 1;
        let endian = if le { "LSB" } else { "MSB" };
        let et = if le {
            u16::from_le_bytes([b[16], b[17]])
        } else {
            u16::from_be_bytes([b[16], b[17]])
        };
        let kind = match et {
            1 => "relocatable",
            2 => "executable",
            3 => "shared object",
            4 => "core file",
            _ => "unknown type",
        };
        let arch = inspect::elf::elf_arch(b).unwrap_or("unknown arch");
        return format!("ELF {class} {endian} {kind}, {}", arch.replace('_', "-"));
    }
    let magic: &[(&[u8], &str)] = &[
        (b"\x1f\x8b", "gzip compressed data"),
        (b"\xfd7zXZ\0", "XZ compressed data"),
        (b"\x28\xb5\x2f\xfd", "Zstandard compressed data"),
        (b"BZh", "bzip2 compressed data"),
        (b"PK\x03\x04", "Zip archive data"),
        (b"MZ", "MS-DOS executable"),
        (b"regf", "MS Windows registry file"),
        (b"\x89PNG", "PNG image data"),
        (b"\xff\xd8\xff", "JPEG image data"),
        (b"%PDF", "PDF document"),
        (b"#!", "script, text executable"),
    ];
    for (m, what) in magic {
        if b.starts_with(m) {
            return (*what).into();
        }
    }
    if b.len() > 262 && &b[257..262] == b"ustar" {
        return "POSIX tar archive".into();
    }
    if b.iter()
        .all(|&c| c == b'\n' || c == b'\t' || c == b'\r' || (0x20..0x7f).contains(&c))
    {
        return "ASCII text".into();
    }
    // A UTF-8 sequence may be cut at the end of the sample.
    let valid = match std::str::from_utf8(b) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && e.valid_up_to() + 4 > b.len(),
    };
    if valid
        && !b
            .iter()
            .any(|&c| c < 0x09 || (0x0e..0x20).contains(&c) && c != 0x1b)
    {
        return "UTF-8 Unicode text".into();
    }
    "data".into()
}

fn incomplete(call: &str, s: crate::export::Summary) -> Result<()> {
    if s.errors > 0 {
        return Err(Error::new(
            ErrorKind::Io,
            format!(
                "{call}: {} entries could not be read and are missing (see the warnings); \
                 the rest was written",
                s.errors
            ),
        ));
    }
    Ok(())
}

fn host_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Io, format!("{}: {what}: {e}", path.display()))
}

/// A temporary file beside `dest` (`.NAME.XXXXXX.part`), removed unless persisted.
fn temp_beside(dest: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".part")
        .tempfile_in(dir)
        .map_err(|e| host_error(dest, "cannot create a temporary file beside it", e))
}

fn persist(tmp: tempfile::NamedTempFile, dest: &Path) -> Result<()> {
    tmp.persist(dest)
        .map(|_| ())
        .map_err(|e| host_error(dest, "cannot rename the finished file into place", e.error))
}

// ---- hivex -----------------------------------------------------------------------------

impl Guestfs {
    fn hive(&self) -> Result<Arc<crate::registry::Hive>> {
        self.state()
            .hive
            .clone()
            .ok_or_else(|| Error::state("no hive is open: call hivex_open first"))
    }

    /// Opens a Windows registry hive file of the mounted tree (`guestfs_hivex_open`,
    /// read-only); node and value handles are cell offsets.
    pub fn hivex_open(&self, filename: &str) -> Result<()> {
        let data = self.read_file(filename)?;
        let hive = crate::registry::Hive::from_bytes(data)
            .map_err(|e| Error::from(e).with_path(filename))?;
        self.state().hive = Some(Arc::new(hive));
        Ok(())
    }

    /// Closes the hive (`guestfs_hivex_close`).
    pub fn hivex_close(&self) -> Result<()> {
        self.state().hive = None;
        Ok(())
    }

    fn node_offset(h: i64) -> Result<u32> {
        u32::try_from(h).map_err(|_| Error::invalid(format!("bad hive handle {h}")))
    }

    /// The root node (`guestfs_hivex_root`).
    pub fn hivex_root(&self) -> Result<i64> {
        let h = self.hive()?;
        Ok(h.root()?.cell_offset() as i64)
    }

    /// A node's name (`guestfs_hivex_node_name`).
    pub fn hivex_node_name(&self, nodeh: i64) -> Result<String> {
        let h = self.hive()?;
        Ok(h.key_at(Self::node_offset(nodeh)?)?.name().to_string())
    }

    /// A node's subkeys (`guestfs_hivex_node_children`).
    pub fn hivex_node_children(&self, nodeh: i64) -> Result<Vec<i64>> {
        let h = self.hive()?;
        let k = h.key_at(Self::node_offset(nodeh)?)?;
        Ok(k.subkeys()?
            .iter()
            .map(|c| c.cell_offset() as i64)
            .collect())
    }

    /// The subkey named `name` (case-insensitive), or 0 (`guestfs_hivex_node_get_child`).
    pub fn hivex_node_get_child(&self, nodeh: i64, name: &str) -> Result<i64> {
        let h = self.hive()?;
        let k = h.key_at(Self::node_offset(nodeh)?)?;
        Ok(k.subkey(name)?.map_or(0, |c| c.cell_offset() as i64))
    }

    /// A node's parent (`guestfs_hivex_node_parent`).
    pub fn hivex_node_parent(&self, nodeh: i64) -> Result<i64> {
        let h = self.hive()?;
        Ok(h.key_at(Self::node_offset(nodeh)?)?.parent_offset() as i64)
    }

    /// A node's values (`guestfs_hivex_node_values`).
    pub fn hivex_node_values(&self, nodeh: i64) -> Result<Vec<i64>> {
        let h = self.hive()?;
        let k = h.key_at(Self::node_offset(nodeh)?)?;
        Ok(k.values()?.iter().map(|v| v.cell_offset() as i64).collect())
    }

    /// The value named `key` (`""`: the default value), or 0
    /// (`guestfs_hivex_node_get_value`).
    pub fn hivex_node_get_value(&self, nodeh: i64, key: &str) -> Result<i64> {
        let h = self.hive()?;
        let k = h.key_at(Self::node_offset(nodeh)?)?;
        Ok(k.value(key)?.map_or(0, |v| v.cell_offset() as i64))
    }

    /// A value's name (`guestfs_hivex_value_key`).
    pub fn hivex_value_key(&self, valueh: i64) -> Result<String> {
        let h = self.hive()?;
        Ok(h.value_at(Self::node_offset(valueh)?)?.name().to_string())
    }

    /// A value's type (`REG_SZ` = 1, `REG_DWORD` = 4, ...) (`guestfs_hivex_value_type`).
    pub fn hivex_value_type(&self, valueh: i64) -> Result<i64> {
        let h = self.hive()?;
        Ok(h.value_at(Self::node_offset(valueh)?)?.data_type() as i64)
    }

    /// A value's raw bytes (`guestfs_hivex_value_value`).
    pub fn hivex_value_value(&self, valueh: i64) -> Result<Vec<u8>> {
        let h = self.hive()?;
        Ok(h.value_at(Self::node_offset(valueh)?)?.data()?.into_owned())
    }

    /// A string value (`REG_SZ`, `REG_EXPAND_SZ`) decoded from UTF-16
    /// (`guestfs_hivex_value_string`).
    pub fn hivex_value_string(&self, valueh: i64) -> Result<String> {
        let h = self.hive()?;
        Ok(h.value_at(Self::node_offset(valueh)?)?.as_string()?)
    }

    /// Same as [`Guestfs::hivex_value_string`] (`guestfs_hivex_value_utf8`).
    pub fn hivex_value_utf8(&self, valueh: i64) -> Result<String> {
        self.hivex_value_string(valueh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cksum_matches_posix() {
        // `printf 'hello\n' | cksum` → 3015617425 6
        let mut c = Cksum::default();
        c.update(b"hello\n");
        assert_eq!(c.finish(), 3_015_617_425);
        // Empty input: `cksum < /dev/null` → 4294967295 0
        assert_eq!(Cksum::default().finish(), 4_294_967_295);
    }

    #[test]
    fn lines_split_like_libguestfs() {
        assert_eq!(split_lines("a\nb\r\n"), vec!["a", "b"]);
        assert_eq!(split_lines("a\nb"), vec!["a", "b"]);
        assert!(split_lines("").is_empty());
        assert_eq!(split_lines("\n"), vec![""]);
    }

    #[test]
    fn dates_in_long_iso() {
        let t = |s| Some(fs::Timestamp { secs: s, nanos: 0 });
        assert_eq!(long_iso(t(0)), "1970-01-01 00:00");
        assert_eq!(long_iso(t(951_782_400)), "2000-02-29 00:00");
        assert_eq!(long_iso(t(-1)), "1969-12-31 23:59");
    }

    #[test]
    fn modes_like_ls() {
        let m = |t, mode| Metadata {
            file_type: t,
            size: 0,
            mode,
            uid: 0,
            gid: 0,
            nlink: 1,
            inode: 1,
            atime: None,
            mtime: None,
            ctime: None,
            crtime: None,
            rdev: None,
            allocated: 0,
        };
        assert_eq!(mode_chars(&m(FileType::Directory, 0o1777)), "drwxrwxrwt");
        assert_eq!(mode_chars(&m(FileType::Regular, 0o4755)), "-rwsr-xr-x");
        assert_eq!(mode_chars(&m(FileType::Regular, 0o2644)), "-rw-r-Sr--");
    }

    #[test]
    fn file_kinds() {
        assert_eq!(describe_bytes(b"hello\n"), "ASCII text");
        assert_eq!(
            describe_bytes("h\u{e9}llo\n".as_bytes()),
            "UTF-8 Unicode text"
        );
        assert_eq!(describe_bytes(b"\x1f\x8b\x08\0"), "gzip compressed data");
        assert_eq!(describe_bytes(&[0, 1, 2, 3, 0xff]), "data");
    }
}
