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
pub use guestctl_formats as formats;
pub use guestctl_fs as fs;
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
            });
            for p in table.partitions.iter().filter(|p| !p.extended) {
                match part::open_partition(disk.clone(), p) {
                    Ok(slice) => out.push(DeviceEntry {
                        name: part::partition_name(i, p.number),
                        device: Arc::new(slice),
                        partition: Some(p.clone()),
                    }),
                    Err(e) => notes.push(format!("{name}{}: {e}", p.number)),
                }
            }
        }
        Ok(out)
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
            if d.partition.is_none() && probe.is_none() {
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
                part_type: d
                    .partition
                    .as_ref()
                    .map(|p| match (&p.type_guid, p.mbr_type) {
                        (Some(g), _) => g.clone(),
                        (None, Some(t)) => format!("0x{t:02x}"),
                        _ => String::new(),
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
        match fs::probe::probe(d.device.as_ref()) {
            Some(p) if p.fs_type.starts_with("ext") => Ok(Arc::new(fs::ext::ExtFs::open(
                d.device,
                &fs::OpenOptions::default(),
            )?)),
            Some(p) if p.fs_type == "ntfs" => Ok(Arc::new(fs::ntfs::NtfsFs::open(
                d.device,
                &fs::OpenOptions::default(),
            )?)),
            Some(p) => Err(fs::Error::unsupported(format!(
                "{device} holds {}, which guestctl cannot read yet",
                p.fs_type
            ))),
            None => Err(fs::Error::unsupported(format!(
                "{device}: no filesystem recognised"
            ))),
        }
    }
}
