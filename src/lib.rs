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

/// A device found and not opened: an LVM2 logical volume of a kind guestctl does not map
/// (thin, raid, snapshot) or whose physical volumes are missing (so it is not among
/// [`Guestfs::devices`]), or a physical volume whose LVM metadata cannot be read.
#[derive(Debug, Clone)]
struct Unopened {
    name: String,
    /// The logical volume's size (`None` for a physical volume, listed with its own size).
    size: Option<u64>,
    unreadable: inspect::Unreadable,
}

/// What [`Guestfs::devices`] found: the devices, and the ones that cannot be opened.
struct Scan {
    devices: Vec<DeviceEntry>,
    unopened: Vec<Unopened>,
}

impl Guestfs {
    /// Every disk (as `/dev/sdX`) and every partition of it (as `/dev/sdXN`; MBR extended
    /// containers left out), after [`Guestfs::launch`]. Table notes (backup GPT used, ...) go
    /// to `notes`.
    pub fn devices(&self, notes: &mut Vec<String>) -> Result<Vec<DeviceEntry>> {
        Ok(self.scan(notes)?.devices)
    }

    fn scan(&self, notes: &mut Vec<String>) -> Result<Scan> {
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
        let unopened = self.add_logical_volumes(&mut out, notes);
        Ok(Scan {
            devices: out,
            unopened,
        })
    }

    /// Appends the LVM2 logical volumes found on `devices` (partitions, and whole disks
    /// without a table) as `/dev/VG/LV`, like libguestfs. What cannot be opened (thin, raid,
    /// snapshot LVs, missing PVs, unreadable PV metadata) goes to `notes` and is returned.
    fn add_logical_volumes(
        &self,
        devices: &mut Vec<DeviceEntry>,
        notes: &mut Vec<String>,
    ) -> Vec<Unopened> {
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
                return Vec::new();
            }
        };
        let mut unopened = Vec::new();
        for (dev, e) in report.problems {
            notes.push(format!("{dev}: LVM: {e}"));
            unopened.push(Unopened {
                name: dev,
                size: None,
                unreadable: inspect::Unreadable {
                    what: fs::probe::describe("LVM2_member"),
                    why: format!("its LVM metadata cannot be read: {e}"),
                },
            });
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
                    Err(e) => {
                        notes.push(format!("{name}: {e}"));
                        unopened.push(Unopened {
                            name,
                            size: Some(lv.size),
                            unreadable: inspect::Unreadable {
                                what: "LVM2 logical volume".into(),
                                why: format!("guestctl cannot open it: {e}"),
                            },
                        });
                    }
                }
            }
        }
        unopened
    }

    /// The filesystems on every device (whole disks only when they have no partition table).
    pub fn list_filesystems(&self, notes: &mut Vec<String>) -> Result<Vec<FilesystemEntry>> {
        Ok(filesystems_of(&self.devices(notes)?))
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
        open_filesystem(d)
    }
}

/// The filesystems on `devices` (whole disks only when they have no partition table).
fn filesystems_of(devices: &[DeviceEntry]) -> Vec<FilesystemEntry> {
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
            device: d.name.clone(),
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
            part_name: d.partition.as_ref().and_then(|p| p.name.clone()),
            readable,
        });
    }
    out
}

/// Opens the filesystem on `d` read-only ([`fs::open`]), naming the device when the type is
/// not read.
fn open_filesystem(d: DeviceEntry) -> std::result::Result<Arc<dyn fs::Filesystem>, fs::Error> {
    let device = &d.name;
    fs::open(d.device, &fs::OpenOptions::default()).map_err(|e| {
        if e.kind() == fs::ErrorKind::Unsupported && e.structure_name().is_none() {
            fs::Error::unsupported(format!("{device}: {}", e.message()))
        } else {
            e
        }
    })
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

/// What [`Guestfs::inspect_disks`] found: the operating systems, and every device guestctl
/// found and cannot read, where an operating system (or part of one) may be unseen.
#[derive(Debug, Clone, Default)]
pub struct Inspection {
    /// The operating systems, in device order. Each one's `warnings` also name the unreadable
    /// devices.
    pub oses: Vec<inspect::OsInfo>,
    /// Each device found and not read, with what it is and why, in device order.
    pub unreadable: Vec<(String, inspect::Unreadable)>,
}

impl Inspection {
    /// One warning per unreadable device, worded as in the operating systems' `warnings`:
    /// `/dev/sda4: btrfs filesystem: guestctl cannot read it, an operating system on it is not
    /// inspected`.
    pub fn warnings(&self) -> Vec<String> {
        self.unreadable
            .iter()
            .map(|(dev, u)| inspect::unreadable_warning(dev, u))
            .collect()
    }

    /// The operating systems. An error when none was found but some device could not be
    /// read, since one may be there unseen (virt-inspector fails whenever it finds no
    /// operating system); an empty list means every device was looked into.
    pub fn into_oses(self) -> Result<Vec<inspect::OsInfo>> {
        if self.oses.is_empty() && !self.unreadable.is_empty() {
            let list: Vec<String> = self
                .unreadable
                .iter()
                .map(|(dev, u)| format!("{dev} ({})", u.what))
                .collect();
            return Err(Error::unsupported(format!(
                "no operating system found, but guestctl cannot read {}: an operating system \
                 there is not seen",
                list.join(", ")
            )));
        }
        Ok(self.oses)
    }
}

impl Guestfs {
    /// Finds the operating systems on the added disks, like libguestfs's `inspect_os` +
    /// `inspect_get_*` (virt-inspector's fields). What cannot be read inside a guest, and
    /// every device guestctl cannot read, is in each result's `warnings`. Fails when no
    /// operating system is found but some device cannot be read ([`Inspection::into_oses`]);
    /// [`Guestfs::inspect_disks`] gives both parts instead.
    pub fn inspect_os(
        &self,
        opts: &inspect::InspectOptions,
        notes: &mut Vec<String>,
    ) -> Result<Vec<inspect::OsInfo>> {
        self.inspect_disks(opts, notes)?.into_oses()
    }

    /// The operating systems on the added disks and the devices guestctl cannot read.
    pub fn inspect_disks(
        &self,
        opts: &inspect::InspectOptions,
        notes: &mut Vec<String>,
    ) -> Result<Inspection> {
        let candidates = self.inspect_candidates(notes)?;
        Ok(Inspection {
            oses: inspect::inspect(&candidates, opts),
            unreadable: unreadable_of(&candidates),
        })
    }

    /// Every filesystem as the inspector sees it: opened when readable, with the partition's
    /// identifiers for fstab's `PARTUUID=`/`PARTLABEL=`, and [`inspect::Candidate::unreadable`]
    /// set on what cannot be read (logical volumes that cannot be opened are candidates too).
    pub fn inspect_candidates(&self, notes: &mut Vec<String>) -> Result<Vec<inspect::Candidate>> {
        let scan = self.scan(notes)?;
        let entries = filesystems_of(&scan.devices);
        Ok(candidates_of(&scan, &entries))
    }
}

/// The inspector's candidates: one per entry of `entries` (same order), then one per
/// device of `scan.unopened` that is not among them.
fn candidates_of(scan: &Scan, entries: &[FilesystemEntry]) -> Vec<inspect::Candidate> {
    let mut out = Vec::with_capacity(entries.len() + scan.unopened.len());
    for f in entries {
        let dev = scan.devices.iter().find(|d| d.name == f.device);
        let (part_uuid, part_label) = match dev.and_then(|d| d.partition.as_ref().map(|p| (d, p))) {
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
        let unreadable = |why: String| inspect::Unreadable {
            what: fs::probe::describe(&f.fs_type),
            why,
        };
        let (fs, unreadable) = match dev {
            Some(d) if f.readable => match open_filesystem(d.clone()) {
                Ok(fs) => (Some(fs), None),
                Err(e) => (None, Some(unreadable(format!("cannot be opened: {e}")))),
            },
            _ if fs::probe::hides_files(&f.fs_type, f.readable) && f.fs_type != "unknown" => {
                (None, Some(unreadable("guestctl cannot read it".into())))
            }
            _ => (None, None),
        };
        let unreadable = unreadable.or_else(|| {
            scan.unopened
                .iter()
                .find(|u| u.name == f.device)
                .map(|u| u.unreadable.clone())
        });
        out.push(inspect::Candidate {
            device: f.device.clone(),
            fs,
            fs_type: f.fs_type.clone(),
            label: f.label.clone(),
            uuid: f.uuid.clone(),
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
            unreadable,
        });
    }
    for u in unopened_alone(scan, entries) {
        out.push(inspect::Candidate {
            device: u.name.clone(),
            fs_type: "unknown".into(),
            unreadable: Some(u.unreadable.clone()),
            ..inspect::Candidate::default()
        });
    }
    out
}

/// The devices of `scan.unopened` that are not among `entries` (logical volumes).
fn unopened_alone<'a>(
    scan: &'a Scan,
    entries: &'a [FilesystemEntry],
) -> impl Iterator<Item = &'a Unopened> {
    scan.unopened
        .iter()
        .filter(|u| !entries.iter().any(|f| f.device == u.name))
}

fn unreadable_of(candidates: &[inspect::Candidate]) -> Vec<(String, inspect::Unreadable)> {
    candidates
        .iter()
        .filter_map(|c| c.unreadable.clone().map(|u| (c.device.clone(), u)))
        .collect()
}

/// Why [`Guestfs::mount_default`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DefaultMountError {
    /// Which filesystem is the guest's root cannot be told, and guestctl does not guess: the
    /// caller must choose ([`Guestfs::mount_tree`]).
    #[error("{reason}; found: {}", .found.join("; "))]
    Ambiguous {
        /// Why: `no operating system found, /dev/sda1 is not a root filesystem and guestctl
        /// cannot read /dev/sda2, /dev/sda3: refusing to guess`.
        reason: String,
        /// Every device found, one line each: `/dev/sda2 (btrfs, label "boot", 64 MiB):
        /// unreadable, guestctl cannot read it`.
        found: Vec<String>,
    },
    /// Reading the disks or opening a filesystem failed.
    #[error(transparent)]
    Fs(#[from] fs::Error),
}

impl From<Error> for DefaultMountError {
    fn from(e: Error) -> Self {
        DefaultMountError::Fs(e.into())
    }
}

impl Guestfs {
    /// The tree the file commands use when not told which filesystems to mount:
    ///
    /// - one operating system: its tree, as [`Guestfs::mount_inspected`] builds it;
    /// - otherwise the only filesystem guestctl reads, when nothing else on the disks is
    ///   unreadable or when it is a plausible root ([`inspect::plausible_root`]: `/etc` with
    ///   `/usr`, `/bin`, `/sbin` or `/lib`, or `/Windows/System32`);
    /// - otherwise [`DefaultMountError::Ambiguous`], listing every device: no readable
    ///   filesystem, several, several operating systems, or a lone filesystem that is not a
    ///   root (an empty EFI system partition, a `/boot`) beside unreadable ones (where the
    ///   real root is likely to be).
    ///
    /// Unreadable devices left out of the tree are named in `notes`.
    pub fn mount_default(
        &self,
        notes: &mut Vec<String>,
    ) -> std::result::Result<Arc<dyn fs::Filesystem>, DefaultMountError> {
        let scan = self.scan(notes)?;
        let entries = filesystems_of(&scan.devices);
        let candidates = candidates_of(&scan, &entries);
        let oses = inspect::inspect(
            &candidates,
            &inspect::InspectOptions {
                applications: false,
            },
        );
        let left_out = |used: &dyn Fn(&str) -> bool, notes: &mut Vec<String>| {
            for c in candidates.iter().filter(|c| !used(&c.device)) {
                if let Some(u) = &c.unreadable {
                    notes.push(format!("{}: {u}, left out", c.device));
                }
            }
        };
        if let [os] = oses.as_slice() {
            if let Some(tree) = tree_of(os, &candidates, notes) {
                left_out(&|d| os.mountpoints.values().any(|m| m == d), notes);
                return Ok(tree);
            }
        }
        let readable: Vec<&inspect::Candidate> =
            candidates.iter().filter(|c| c.fs.is_some()).collect();
        let unreadable: Vec<&str> = candidates
            .iter()
            .filter(|c| c.unreadable.is_some())
            .map(|c| c.device.as_str())
            .collect();
        let reason = match readable.as_slice() {
            _ if oses.len() > 1 => format!(
                "{} operating systems found (roots {})",
                oses.len(),
                oses.iter()
                    .map(|o| o.root.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            [] => "no operating system found and no filesystem guestctl can read".into(),
            [one] => match &one.fs {
                Some(fs) if unreadable.is_empty() || inspect::plausible_root(fs.as_ref()) => {
                    left_out(&|d| d == one.device, notes);
                    return Ok(fs.clone());
                }
                _ => format!(
                    "no operating system found, {} is not a root filesystem and guestctl \
                     cannot read {}: refusing to guess",
                    one.device,
                    unreadable.join(", ")
                ),
            },
            many => format!(
                "no operating system found and {} filesystems guestctl reads",
                many.len()
            ),
        };
        let reason = match (readable.len(), unreadable.as_slice()) {
            (0 | 1, _) | (_, []) => reason,
            (_, u) => format!("{reason}, and guestctl cannot read {}", u.join(", ")),
        };
        let mut found: Vec<String> = entries
            .iter()
            .zip(&candidates)
            .map(|(f, c)| describe_found(&f.device, &f.fs_type, &f.label, Some(f.size), c))
            .collect();
        found.extend(
            unopened_alone(&scan, &entries)
                .zip(&candidates[entries.len()..])
                .map(|(u, c)| describe_found(&u.name, &u.unreadable.what, "", u.size, c)),
        );
        Err(DefaultMountError::Ambiguous { reason, found })
    }

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
        Ok(tree_of(&os, &candidates, notes).map(|tree| (os, tree)))
    }
}

/// `/dev/sda2 (btrfs, label "boot", 64 MiB): unreadable, guestctl cannot read it`, for
/// [`DefaultMountError::Ambiguous`].
fn describe_found(
    device: &str,
    kind: &str,
    label: &str,
    size: Option<u64>,
    c: &inspect::Candidate,
) -> String {
    let mut head = kind.to_string();
    if !label.is_empty() {
        head.push_str(&format!(", label {label:?}"));
    }
    if let Some(n) = size {
        head.push_str(&format!(", {}", human_size(n)));
    }
    let status = match (&c.fs, &c.unreadable) {
        (Some(fs), _) if inspect::plausible_root(fs.as_ref()) => "readable".to_string(),
        (Some(_), _) => "readable, not a root filesystem".to_string(),
        (None, Some(u)) => format!("unreadable, {}", u.why),
        (None, None) => match kind {
            "swap" => "swap, no files".to_string(),
            "LVM2_member" => "LVM2 physical volume, its logical volumes are listed".to_string(),
            "unknown" => "nothing recognised".to_string(),
            _ => "not read".to_string(),
        },
    };
    format!("{device} ({head}): {status}")
}

/// `os`'s tree: its root with the fstab filesystems guestctl reads mounted on it (parents
/// first); what cannot be mounted goes to `notes`. `None` when the root is not opened.
fn tree_of(
    os: &inspect::OsInfo,
    candidates: &[inspect::Candidate],
    notes: &mut Vec<String>,
) -> Option<Arc<dyn fs::Filesystem>> {
    let find = |dev: &str| candidates.iter().find(|c| c.device == dev);
    let root = find(&os.root).and_then(|c| c.fs.clone())?;
    let mut mounts: Vec<(&String, &String)> = os
        .mountpoints
        .iter()
        .filter(|(mp, _)| mp.as_str() != "/")
        .collect();
    mounts.sort_by_key(|(mp, _)| mp.split('/').filter(|c| !c.is_empty()).count());
    if mounts.is_empty() {
        return Some(root);
    }
    let mut tree = fs::mount::MountTree::new(root);
    for (mp, dev) in mounts {
        match find(dev).map(|c| (&c.fs, &c.unreadable)) {
            Some((Some(f), _)) => {
                if let Err(e) = tree.mount(mp, f.clone()) {
                    notes.push(format!("cannot mount {dev} on {mp}: {e}"));
                }
            }
            Some((None, Some(u))) => notes.push(format!("{dev} on {mp}: {u}, left out")),
            _ => notes.push(format!("{dev} on {mp}: not readable, left out")),
        }
    }
    Some(Arc::new(tree))
}

/// A size as `qemu-img` prints it: `512 B`, `64 MiB`, `1.5 GiB`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.3} {}", UNITS[u]).replace(".000 ", " ")
    }
}
