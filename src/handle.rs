//! [`Guestfs`]: the handle. Drives are added, [`Guestfs::launch`] opens them in process and
//! builds the device model once ([`crate::model`]), and every call after that shares it.
//! The libguestfs-named calls are in [`crate::api`]; this module holds the handle's state,
//! the mounts and the calls the CLI is built on.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::model::{self, Model};
use crate::{block::BlockDevice, formats, fs, inspect, Error, Result};

/// Where a drive's bytes come from.
#[derive(Debug, Clone)]
enum Source {
    /// An image file, opened with these options at launch.
    File(formats::OpenOptions),
    /// A ready device (the caller opened it).
    Device(Arc<dyn BlockDevice>),
}

#[derive(Debug, Clone)]
struct Drive {
    path: PathBuf,
    source: Source,
}

/// One mount of the API's tree.
#[derive(Debug, Clone)]
pub(crate) struct Mounted {
    pub(crate) mountpoint: String,
    pub(crate) device: String,
    pub(crate) fs: Arc<dyn fs::Filesystem>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    drives: Vec<Drive>,
    pub(crate) model: Option<Arc<Model>>,
    pub(crate) mounts: Vec<Mounted>,
    /// The tree over `mounts`, rebuilt by each mount/umount.
    pub(crate) tree: Option<Arc<dyn fs::Filesystem>>,
    pub(crate) hive: Option<Arc<crate::registry::Hive>>,
    pub(crate) verbose: bool,
    pub(crate) trace: bool,
    closed: bool,
}

/// A libguestfs-style handle: add drives, [`launch`](Guestfs::launch) (the images are
/// opened and scanned in process; no VM is started), then inspect, mount and read.
///
/// Every call takes `&self` (the state is behind a lock), so one handle can be shared by
/// threads; the calls with libguestfs's names are listed in [`crate::api`].
///
/// ```
/// let g = guestctl::Guestfs::new()?;
/// g.add_drive_ro("fixtures/demo.qcow2")?;
/// g.launch()?;
/// for root in g.inspect_os()? {
///     for (mp, dev) in g.inspect_get_mountpoints(&root)? {
///         g.mount_ro(&dev, &mp)?;
///     }
///     println!("{}", g.cat("/etc/hostname")?);
/// }
/// g.umount_all()?;
/// g.shutdown()?;
/// # Ok::<(), guestctl::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Guestfs {
    state: Mutex<State>,
}

impl Guestfs {
    /// A new handle with no drives (`guestfs_create`).
    pub fn new() -> Result<Self> {
        Ok(Guestfs::default())
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-changed in a way that
        // matters for reading: take it anyway.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Prints what each call does to stderr when on (`guestfs_set_verbose`).
    pub fn set_verbose(&self, verbose: bool) -> Result<()> {
        self.state().verbose = verbose;
        Ok(())
    }

    /// Whether verbose messages are on.
    pub fn get_verbose(&self) -> Result<bool> {
        Ok(self.state().verbose)
    }

    /// Prints each API call and its result to stderr when on (`guestfs_set_trace`).
    pub fn set_trace(&self, trace: bool) -> Result<()> {
        self.state().trace = trace;
        Ok(())
    }

    /// Whether call tracing is on.
    pub fn get_trace(&self) -> Result<bool> {
        Ok(self.state().trace)
    }

    pub(crate) fn trace(&self, call: &str, args: std::fmt::Arguments<'_>) {
        if self.state().trace {
            eprintln!("libguestfs: trace: {call} {args}");
        }
    }

    pub(crate) fn verbose(&self, msg: std::fmt::Arguments<'_>) {
        if self.state().verbose {
            eprintln!("guestctl: {msg}");
        }
    }

    /// Adds a disk image read-only, its format detected from its magic bytes
    /// (`guestfs_add_drive_ro`).
    pub fn add_drive_ro(&self, filename: impl AsRef<Path>) -> Result<()> {
        self.add_drive_opts(filename, None, true)
    }

    /// Adds a disk image (`guestfs_add_drive_opts`): `format` forces the format (`raw`,
    /// `qcow2`, `vmdk`, `vpc`, `vdi`, `vhdx`; `None` detects it by magic). Drives are always
    /// opened read-only in process; `readonly: false` is accepted (a libguestfs program
    /// passes it for drives it only reads) and any later write call fails, since writes
    /// need the appliance.
    pub fn add_drive_opts(
        &self,
        filename: impl AsRef<Path>,
        format: Option<&str>,
        readonly: bool,
    ) -> Result<()> {
        let _ = readonly;
        let mut opts = formats::OpenOptions::default();
        if let Some(f) = format {
            opts.format = Some(formats::Format::from_name(f).ok_or_else(|| {
                Error::invalid(format!(
                    "unknown format {f:?} (expected raw, qcow2, vmdk, vpc, vdi or vhdx)"
                ))
            })?);
        }
        self.add_drive_with(filename, opts)
    }

    /// Adds a disk image with every open option (forced format, backing policy).
    pub fn add_drive_with(
        &self,
        filename: impl AsRef<Path>,
        opts: formats::OpenOptions,
    ) -> Result<()> {
        let path = filename.as_ref().to_path_buf();
        self.trace("add_drive", format_args!("{:?}", path));
        self.push_drive(Drive {
            path,
            source: Source::File(opts),
        })
    }

    /// Adds a device the caller opened (an image nested in another, a network device, a
    /// test double); `name` is used in messages.
    pub fn add_device(&self, name: impl AsRef<Path>, device: Arc<dyn BlockDevice>) -> Result<()> {
        self.push_drive(Drive {
            path: name.as_ref().to_path_buf(),
            source: Source::Device(device),
        })
    }

    fn push_drive(&self, d: Drive) -> Result<()> {
        let mut st = self.state();
        if st.closed {
            return Err(Error::state("the handle is shut down"));
        }
        if st.model.is_some() {
            return Err(Error::state("drives must be added before launch()"));
        }
        if st.drives.len() >= 26 * 27 {
            return Err(Error::invalid("too many drives"));
        }
        st.drives.push(d);
        Ok(())
    }

    /// Opens every added drive and scans partitions, LVM and filesystems once
    /// (`guestfs_launch`). No VM is started: images are parsed in process.
    pub fn launch(&self) -> Result<()> {
        let drives = {
            let st = self.state();
            if st.closed {
                return Err(Error::state("the handle is shut down"));
            }
            if st.model.is_some() {
                return Err(Error::state("the handle is already launched"));
            }
            if st.drives.is_empty() {
                return Err(Error::state("no drives added: add_drive_ro before launch"));
            }
            st.drives.clone()
        };
        let mut opened = Vec::with_capacity(drives.len());
        for d in drives {
            match d.source {
                Source::File(opts) => {
                    let img = formats::open_image(&d.path, &opts)?;
                    opened.push((d.path, img.device(), Some(img.info().clone())));
                }
                Source::Device(dev) => opened.push((d.path, dev, None)),
            }
        }
        let model = Model::build(opened)?;
        for n in &model.notes {
            self.verbose(format_args!("note: {n}"));
        }
        self.state().model = Some(Arc::new(model));
        Ok(())
    }

    /// Unmounts everything and closes the drives (`guestfs_shutdown`); the handle cannot be
    /// launched again.
    pub fn shutdown(&self) -> Result<()> {
        let mut st = self.state();
        st.mounts.clear();
        st.tree = None;
        st.hive = None;
        st.model = None;
        st.closed = true;
        Ok(())
    }

    /// Closes the handle (`guestfs_close`; dropping it does the same).
    pub fn close(self) -> Result<()> {
        self.shutdown()
    }

    /// The model built by launch.
    pub(crate) fn model(&self) -> Result<Arc<Model>> {
        self.state()
            .model
            .clone()
            .ok_or_else(|| Error::state("the handle is not launched: call launch() first"))
    }

    /// The `index`-th drive's virtual disk (after [`Guestfs::launch`]).
    pub fn device(&self, index: usize) -> Result<Arc<dyn BlockDevice>> {
        let m = self.model()?;
        m.disks
            .get(index)
            .map(|d| d.device.clone())
            .ok_or_else(|| Error::not_found(format!("no drive {index} ({} added)", m.disks.len())))
    }

    /// What the `index`-th drive's header said (`None` for a drive added as a device).
    pub fn image_info(&self, index: usize) -> Result<Option<formats::ImageInfo>> {
        let m = self.model()?;
        m.disks
            .get(index)
            .map(|d| d.info.clone())
            .ok_or_else(|| Error::not_found(format!("no drive {index}")))
    }

    /// Every disk (as `/dev/sdX`), every partition (as `/dev/sdXN`; MBR extended containers
    /// left out) and every logical volume (`/dev/VG/LV`). Scanning notes go to `notes`.
    pub fn devices(&self, notes: &mut Vec<String>) -> Result<Vec<model::DeviceEntry>> {
        let m = self.model()?;
        notes.extend(m.notes.iter().cloned());
        Ok(m.devices.clone())
    }

    /// The filesystems on every device (whole disks only when they have no partition
    /// table), with their probe results, as `guestctl filesystems` lists them.
    pub fn filesystems(&self, notes: &mut Vec<String>) -> Result<Vec<model::FilesystemEntry>> {
        let m = self.model()?;
        notes.extend(m.notes.iter().cloned());
        Ok(m.entries.clone())
    }

    /// The filesystem on `device` (`/dev/sda1`, or `/dev/sda` for a whole disk), opened
    /// read-only in process (once per handle: later calls share it).
    pub fn open_filesystem(&self, device: &str) -> Result<Arc<dyn fs::Filesystem>> {
        let m = self.model()?;
        m.open_fs(device, true)
            .map_err(|e| Error::from(e).with_device(device))
    }

    /// Opens several filesystems as the guest would mount them, as one tree: `mounts` pairs
    /// a device (`/dev/sda2`) with its mountpoint (`/`, `/boot`, ...). Exactly one must be
    /// `/`; the others are mounted parents first, whatever the order given, and each
    /// mountpoint must be a directory of the tree by then (like `mount(8)`).
    pub fn mount_tree(&self, mounts: &[(String, String)]) -> Result<Arc<dyn fs::Filesystem>> {
        let m = self.model()?;
        let roots: Vec<&(String, String)> = mounts
            .iter()
            .filter(|(_, mp)| model::mount_depth(mp) == 0)
            .collect();
        let (root_dev, _) = match roots.as_slice() {
            [] if mounts.is_empty() => return Err(Error::invalid("nothing to mount")),
            [] => {
                return Err(Error::invalid(format!(
                    "no filesystem mounted on / (the first is {} on {})",
                    mounts[0].0, mounts[0].1
                )))
            }
            [one] => *one,
            [a, b, ..] => {
                return Err(Error::invalid(format!(
                    "both {} and {} are mounted on /",
                    a.0, b.0
                )))
            }
        };
        let root = m
            .open_fs(root_dev, true)
            .map_err(|e| Error::from(e).with_device(root_dev.clone()))?;
        let mut others = Vec::new();
        for (dev, mp) in mounts.iter().filter(|(_, mp)| model::mount_depth(mp) != 0) {
            let f = m
                .open_fs(dev, true)
                .map_err(|e| Error::from(e).with_device(dev.clone()))?;
            others.push((mp.clone(), dev.clone(), f));
        }
        model::build_tree(root, &others, true, &mut Vec::new()).map_err(Error::from)
    }

    /// Every filesystem as the inspector sees it: opened when readable, with the
    /// partition's identifiers for fstab's `PARTUUID=`/`PARTLABEL=`, and
    /// [`inspect::Candidate::unreadable`] set on what cannot be read.
    pub fn inspect_candidates(&self, notes: &mut Vec<String>) -> Result<Vec<inspect::Candidate>> {
        let m = self.model()?;
        notes.extend(m.notes.iter().cloned());
        Ok(m.candidates().to_vec())
    }

    /// The operating systems on the added disks and the devices guestctl cannot read
    /// (computed once per handle and options).
    pub fn inspect_disks(
        &self,
        opts: &inspect::InspectOptions,
        notes: &mut Vec<String>,
    ) -> Result<Inspection> {
        let m = self.model()?;
        notes.extend(m.notes.iter().cloned());
        Ok(Inspection {
            oses: m.oses(opts.applications).to_vec(),
            unreadable: m.unreadable(),
        })
    }

    /// The full inspection results (virt-inspector's fields), failing when no operating
    /// system is found but some device cannot be read ([`Inspection::into_oses`]).
    pub fn inspect(
        &self,
        opts: &inspect::InspectOptions,
        notes: &mut Vec<String>,
    ) -> Result<Vec<inspect::OsInfo>> {
        self.inspect_disks(opts, notes)?.into_oses()
    }

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
        let m = self.model()?;
        notes.extend(m.notes.iter().cloned());
        let candidates = m.candidates();
        let oses = m.oses(false);
        let left_out = |used: &dyn Fn(&str) -> bool, notes: &mut Vec<String>| {
            for c in candidates.iter().filter(|c| !used(&c.device)) {
                if let Some(u) = &c.unreadable {
                    notes.push(format!("{}: {u}, left out", c.device));
                }
            }
        };
        if let [os] = oses {
            if let Some(tree) = model::tree_of(os, candidates, notes) {
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
        let mut found: Vec<String> = m
            .entries
            .iter()
            .zip(candidates)
            .map(|(f, c)| describe_found(&f.device, &f.fs_type, &f.label, Some(f.size), c))
            .collect();
        found.extend(
            m.unopened_alone()
                .zip(&candidates[m.entries.len()..])
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
        let m = self.model()?;
        notes.extend(m.notes.iter().cloned());
        let [os] = m.oses(false) else {
            return Ok(None);
        };
        Ok(model::tree_of(os, m.candidates(), notes).map(|tree| (os.clone(), tree)))
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
    Failed(#[from] Error),
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
        head.push_str(&format!(", {}", crate::human_size(n)));
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
