//! guestctl: look inside virtual-machine disk images and convert them, in process, read-only,
//! without root, a kernel mount, nbd or a VM.
//!
//! This crate is the public Rust API, a thin facade over the `guestctl-*` crates:
//! [`Guestfs`] is a libguestfs-style handle (`add_drive_ro`, `launch`, ...); the lower
//! layers are re-exported as [`block`], [`formats`], [`fs`] and [`convert`].
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
