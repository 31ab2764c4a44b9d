//! guestctl: look inside virtual-machine disk images and convert them, in process, read-only,
//! without root, a kernel mount, nbd or a VM.
//!
//! This crate is the public Rust API, a thin facade over the `guestctl-*` crates:
//! [`Guestfs`] is a libguestfs-style handle (`add_drive_ro`, `launch`, ...); the lower
//! layers are re-exported as [`block`], [`formats`], [`part`], [`fs`] and [`convert`].
//!
//! ```no_run
//! let mut g = guestctl::Guestfs::new();
//! g.add_drive_ro("disk.qcow2")?;
//! g.launch()?;
//! let dev = g.device(0)?;
//! let mut sector = [0u8; 512];
//! dev.read_exact_at(0, &mut sector)?;
//! # Ok::<(), guestctl::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use guestctl_block as block;
pub use guestctl_convert as convert;
pub use guestctl_export as export;
pub use guestctl_formats as formats;
pub use guestctl_fs as fs;
pub use guestctl_inspect as inspect;
pub use guestctl_part as part;

pub use guestctl_block::{BlockDevice, Error, ErrorKind, Result};
pub use guestctl_formats::{open_image, Format, Image, ImageInfo, OpenOptions};

/// A libguestfs-style handle: add drives, launch (open them in process), then query.
#[derive(Debug, Default)]
pub struct Guestfs {
    drives: Vec<(PathBuf, OpenOptions)>,
    images: Vec<Image>,
}

impl Guestfs {
    /// An empty handle.
    pub fn new() -> Self {
        Guestfs::default()
    }

    /// Adds a disk image, read-only, with the format detected from its magic bytes.
    pub fn add_drive_ro(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.add_drive_opts(path, OpenOptions::default())
    }

    /// Adds a disk image with explicit options (forced format, allowed backing prefixes).
    pub fn add_drive_opts(&mut self, path: impl AsRef<Path>, opts: OpenOptions) -> Result<()> {
        if !self.images.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "drives must be added before launch()",
            ));
        }
        self.drives.push((path.as_ref().to_path_buf(), opts));
        Ok(())
    }

    /// Opens every added drive. No VM is started: images are parsed in process.
    pub fn launch(&mut self) -> Result<()> {
        let mut images = Vec::with_capacity(self.drives.len());
        for (path, opts) in &self.drives {
            images.push(open_image(path, opts)?);
        }
        self.images = images;
        Ok(())
    }

    /// The `index`-th drive's virtual disk (after [`Guestfs::launch`]).
    pub fn device(&self, index: usize) -> Result<Arc<dyn BlockDevice>> {
        self.images.get(index).map(Image::device).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "no drive {index} (added {}, launched: {})",
                    self.drives.len(),
                    !self.images.is_empty()
                ),
            )
        })
    }

    /// What the `index`-th drive's header said.
    pub fn image_info(&self, index: usize) -> Result<&ImageInfo> {
        self.images
            .get(index)
            .map(Image::info)
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, format!("no drive {index}")))
    }
}

/// Every host file an image is made of (the image and its backing chain).
pub fn image_files(info: &ImageInfo) -> Vec<PathBuf> {
    info.chain()
        .into_iter()
        .map(|i| PathBuf::from(&i.filename))
        .collect()
}

/// One filesystem (or recognised container) on one device, as `guestctl filesystems` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FilesystemEntry {
    /// libguestfs-style device name: `/dev/sda1`, or `/dev/sda` for a whole-disk filesystem.
    pub device: String,
    /// `ext4`, `vfat`, `ntfs`, `swap`, ... (`unknown` when nothing was recognised).
    #[serde(rename = "type")]
    pub fs_type: String,
    /// Volume label ("" when none).
    pub label: String,
    /// UUID or serial ("" when none).
    pub uuid: String,
    /// Size of the device in bytes.
    pub size: u64,
    /// Partition type (MBR byte as `0x83`, or GPT type GUID).
    pub part_type: Option<String>,
    /// GPT partition name.
    pub part_name: Option<String>,
    /// Whether guestctl reads the files inside.
    pub readable: bool,
}

/// A device: a whole disk or one of its partitions.
#[derive(Debug, Clone)]
pub struct DeviceEntry {
    /// `/dev/sda`, `/dev/sda1`, ...
    pub name: String,
    /// Its bytes.
    pub device: Arc<dyn BlockDevice>,
    /// The partition it is, if any.
    pub partition: Option<part::Partition>,
    /// The disk's identifier: MBR signature (8 hex digits) or GPT disk GUID.
    pub disk_id: Option<String>,
    /// An LVM2 logical volume (`/dev/VG/LV`) rather than a disk or partition.
    pub logical_volume: bool,
}

impl Guestfs {
    /// Every disk (as `/dev/sdX`) and every partition of it (as `/dev/sdXN`; MBR extended
    /// containers left out), after [`Guestfs::launch`]. Table notes (backup GPT used, ...) go
    /// to `notes`.
    pub fn devices(&self, notes: &mut Vec<String>) -> Result<Vec<DeviceEntry>> {
        let mut out = Vec::new();
        for (i, img) in self.images.iter().enumerate() {
            let disk = img.device();
            let name = part::disk_name(i);
            let table = part::scan(disk.as_ref()).map_err(|e| e.path(self.drives[i].0.clone()))?;
            notes.extend(table.notes.iter().map(|n| format!("{name}: {n}")));
            out.push(DeviceEntry {
                name: name.clone(),
                device: disk.clone(),
                partition: None,
                disk_id: table.disk_id.clone(),
                logical_volume: false,
            });
            for p in table.partitions.iter().filter(|p| !p.extended) {
                match part::open_partition(disk.clone(), p) {
                    Ok(slice) => out.push(DeviceEntry {
                        name: part::partition_name(i, p.number),
                        device: Arc::new(slice),
                        partition: Some(p.clone()),
                        disk_id: table.disk_id.clone(),
                        logical_volume: false,
                    }),
                    Err(e) => notes.push(format!("{name}{}: {e}", p.number)),
                }
            }
        }
        self.add_logical_volumes(&mut out, notes);
        Ok(out)
    }

    /// Appends the LVM2 logical volumes found on `devices` (partitions, and whole disks
    /// without a table) as `/dev/VG/LV`, like libguestfs. What cannot be opened (thin, raid,
    /// snapshot LVs, missing PVs) goes to `notes`.
    fn add_logical_volumes(&self, devices: &mut Vec<DeviceEntry>, notes: &mut Vec<String>) {
        let with_table: std::collections::HashSet<String> = devices
            .iter()
            .filter(|d| d.partition.is_some())
            .map(|d| d.name.trim_end_matches(char::is_numeric).to_string())
            .collect();
        let pvs: Vec<(String, Arc<dyn BlockDevice>)> = devices
            .iter()
            .filter(|d| d.partition.is_some() || !with_table.contains(&d.name))
            .map(|d| (d.name.clone(), d.device.clone()))
            .collect();
        let report = match part::lvm::scan_report(&pvs) {
            Ok(r) => r,
            Err(e) => {
                notes.push(format!("LVM: {e}"));
                return;
            }
        };
        for (dev, e) in report.problems {
            notes.push(format!("{dev}: LVM: {e}"));
        }
        for vg in report.groups {
            notes.extend(vg.notes.iter().map(|n| format!("LVM {}: {n}", vg.name())));
            for lv in vg.lvs.iter().filter(|l| l.visible()) {
                let name = format!("/dev/{}/{}", vg.name(), lv.name());
                match vg.open_lv(lv.name()) {
                    Ok(device) => devices.push(DeviceEntry {
                        name,
                        device,
                        partition: None,
                        disk_id: None,
                        logical_volume: true,
                    }),
                    Err(e) => notes.push(format!("{name}: {e}")),
                }
            }
        }
    }

    /// The filesystems on every device (whole disks only when they have no partition table).
    pub fn list_filesystems(&self, notes: &mut Vec<String>) -> Result<Vec<FilesystemEntry>> {
        let devices = self.devices(notes)?;
        let partitioned: std::collections::HashSet<String> = devices
            .iter()
            .filter_map(|d| {
                d.partition
                    .as_ref()
                    .map(|_| d.name.trim_end_matches(char::is_numeric).to_string())
            })
            .collect();
        let mut out = Vec::new();
        for d in devices {
            if d.partition.is_none() && partitioned.contains(&d.name) {
                continue;
            }
            let probe = fs::probe::probe(d.device.as_ref());
            if d.partition.is_none() && !d.logical_volume && probe.is_none() {
                continue;
            }
            let (fs_type, label, uuid, readable) = match probe {
                Some(p) => (p.fs_type, p.label, p.uuid, p.readable),
                None => ("unknown".into(), String::new(), String::new(), false),
            };
            out.push(FilesystemEntry {
                device: d.name,
                fs_type,
                label,
                uuid,
                size: d.device.size(),
                part_type: d.partition.as_ref().map(|p| {
                    match (&p.type_guid, p.mbr_type, p.bsd_fstype) {
                        (Some(g), _, _) => g.clone(),
                        (None, Some(t), _) => format!("0x{t:02x}"),
                        (None, None, Some(t)) => format!("bsd:{t}"),
                        _ => String::new(),
                    }
                }),
                part_name: d.partition.and_then(|p| p.name),
                readable,
            });
        }
        Ok(out)
    }

    /// Opens the filesystem on `device` (`/dev/sda1`, or `/dev/sda` for a whole disk)
    /// read-only, in process.
    pub fn mount_ro(
        &self,
        device: &str,
    ) -> std::result::Result<Arc<dyn fs::Filesystem>, fs::Error> {
        let mut notes = Vec::new();
        let devices = self.devices(&mut notes)?;
        let Some(d) = devices.into_iter().find(|d| d.name == device) else {
            return Err(fs::Error::new(
                fs::ErrorKind::NotFound,
                format!("no device {device}"),
            ));
        };
        fs::open(d.device, &fs::OpenOptions::default()).map_err(|e| {
            if e.kind() == fs::ErrorKind::Unsupported && e.structure_name().is_none() {
                fs::Error::unsupported(format!("{device}: {}", e.message()))
            } else {
                e
            }
        })
    }
}

impl Guestfs {
    /// Opens several filesystems as the guest would mount them, as one tree:
    /// `mounts` pairs a device (`/dev/sda2`) with its mountpoint (`/`, `/boot`, ...). Exactly
    /// one must be `/`; the others are mounted parents first, whatever the order given, and
    /// each mountpoint must be a directory of the tree by then (like `mount(8)`).
    pub fn mount_tree(
        &self,
        mounts: &[(String, String)],
    ) -> std::result::Result<Arc<dyn fs::Filesystem>, fs::Error> {
        let depth = |mp: &str| mp.split('/').filter(|c| !c.is_empty()).count();
        let mut sorted: Vec<&(String, String)> = mounts.iter().collect();
        sorted.sort_by_key(|(_, mp)| depth(mp));
        let Some(((root_dev, root_mp), rest)) = sorted.split_first().map(|(r, o)| (*r, o)) else {
            return Err(fs::Error::new(
                fs::ErrorKind::InvalidInput,
                "nothing to mount",
            ));
        };
        if depth(root_mp) != 0 {
            return Err(fs::Error::new(
                fs::ErrorKind::InvalidInput,
                format!("no filesystem mounted on / (the first is {root_dev} on {root_mp})"),
            ));
        }
        let root = self.mount_ro(root_dev)?;
        if rest.is_empty() {
            return Ok(root);
        }
        let mut tree = fs::mount::MountTree::new(root);
        for (dev, mp) in rest {
            if depth(mp) == 0 {
                return Err(fs::Error::new(
                    fs::ErrorKind::InvalidInput,
                    format!("both {root_dev} and {dev} are mounted on /"),
                ));
            }
            let f = self.mount_ro(dev)?;
            tree.mount(mp, f).map_err(|e| {
                fs::Error::new(e.kind(), format!("cannot mount {dev} on {mp}")).with_source(e)
            })?;
        }
        Ok(Arc::new(tree))
    }
}

impl Guestfs {
    /// Finds the operating systems on the added disks, like libguestfs's `inspect_os` +
    /// `inspect_get_*` (virt-inspector's fields). Filesystems that cannot be opened are
    /// skipped (their reason goes to `notes`); what cannot be read inside a guest is in each
    /// result's `warnings`.
    pub fn inspect_os(
        &self,
        opts: &inspect::InspectOptions,
        notes: &mut Vec<String>,
    ) -> Result<Vec<inspect::OsInfo>> {
        let candidates = self.inspect_candidates(notes)?;
        Ok(inspect::inspect(&candidates, opts))
    }

    /// Every filesystem as the inspector sees it: opened when readable, with the partition's
    /// identifiers for fstab's `PARTUUID=`/`PARTLABEL=`.
    pub fn inspect_candidates(&self, notes: &mut Vec<String>) -> Result<Vec<inspect::Candidate>> {
        let devices = self.devices(notes)?;
        let list = self.list_filesystems(notes)?;
        let mut out = Vec::with_capacity(list.len());
        for f in list {
            let dev = devices.iter().find(|d| d.name == f.device);
            let (part_uuid, part_label) =
                match dev.and_then(|d| d.partition.as_ref().map(|p| (d, p))) {
                    Some((d, p)) => match (&p.part_guid, &d.disk_id) {
                        (Some(g), _) => (g.clone(), p.name.clone().unwrap_or_default()),
                        (None, Some(id)) => (
                            format!("{}-{:02}", id.to_ascii_lowercase(), p.number),
                            String::new(),
                        ),
                        (None, None) => (String::new(), String::new()),
                    },
                    None => (String::new(), String::new()),
                };
            let fs = if f.readable {
                match self.mount_ro(&f.device) {
                    Ok(fs) => Some(fs),
                    Err(e) => {
                        notes.push(format!("{}: {e}", f.device));
                        None
                    }
                }
            } else {
                None
            };
            out.push(inspect::Candidate {
                device: f.device,
                fs,
                fs_type: f.fs_type,
                label: f.label,
                uuid: f.uuid,
                part_uuid,
                part_label,
                disk_id: dev
                    .and_then(|d| d.disk_id.clone())
                    .unwrap_or_default()
                    .to_ascii_lowercase(),
                part_start: dev.and_then(|d| d.partition.as_ref().map(|p| p.start)),
                bsd_partition: dev
                    .and_then(|d| d.partition.as_ref())
                    .filter(|p| p.bsd_fstype.is_some())
                    .and_then(|p| p.name.clone())
                    .unwrap_or_default(),
            });
        }
        Ok(out)
    }
}

impl Guestfs {
    /// The guest's own tree, as its `/etc/fstab` mounts it, when the disks hold exactly one
    /// operating system: its root with every fstab filesystem guestctl reads mounted on it
    /// (what libguestfs users get with `-i`). `Ok(None)` when there is no OS or several.
    pub fn mount_inspected(
        &self,
        notes: &mut Vec<String>,
    ) -> Result<Option<(inspect::OsInfo, Arc<dyn fs::Filesystem>)>> {
        let candidates = self.inspect_candidates(notes)?;
        let mut oses = inspect::inspect(
            &candidates,
            &inspect::InspectOptions {
                applications: false,
            },
        );
        if oses.len() != 1 {
            return Ok(None);
        }
        let os = oses.remove(0);
        let opened = |dev: &str| {
            candidates
                .iter()
                .find(|c| c.device == dev)
                .and_then(|c| c.fs.clone())
        };
        let Some(root) = opened(&os.root) else {
            return Ok(None);
        };
        let mut mounts: Vec<(&String, &String)> = os
            .mountpoints
            .iter()
            .filter(|(mp, _)| mp.as_str() != "/")
            .collect();
        mounts.sort_by_key(|(mp, _)| mp.split('/').filter(|c| !c.is_empty()).count());
        if mounts.is_empty() {
            return Ok(Some((os, root)));
        }
        let mut tree = fs::mount::MountTree::new(root);
        for (mp, dev) in mounts {
            match opened(dev) {
                Some(f) => {
                    if let Err(e) = tree.mount(mp, f) {
                        notes.push(format!("cannot mount {dev} on {mp}: {e}"));
                    }
                }
                None => notes.push(format!("{dev} on {mp}: not readable, left out")),
            }
        }
        Ok(Some((os, Arc::new(tree))))
    }
}
