//! guestctl: look inside virtual-machine disk images and convert them, in process, read-only,
//! without root, a kernel mount, nbd or a VM.
//!
//! [`Guestfs`] is libguestfs's handle with libguestfs's names (guestfs(3)): add drives,
//! launch, inspect, mount, read. Launch parses the images in process and builds one device
//! model (disks, partitions, LVM, what is on each) that every later call shares. [`Guest`]
//! is the same for code that does not want libguestfs's shapes. The lower layers are
//! re-exported as [`block`], [`formats`], [`part`], [`fs`], [`inspect`], [`registry`],
//! [`export`] and [`convert`].
//!
//! ```
//! let g = guestctl::Guestfs::new()?;
//! g.add_drive_ro("fixtures/demo.qcow2")?;
//! g.launch()?;
//! let roots = g.inspect_os()?;
//! assert_eq!(roots.len(), 1);
//! for (mp, dev) in g.inspect_get_mountpoints(&roots[0])? {
//!     g.mount_ro(&dev, &mp)?;
//! }
//! assert!(g.cat("/etc/os-release")?.contains("ID="));
//! # Ok::<(), guestctl::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::PathBuf;

pub use guestctl_block as block;
pub use guestctl_convert as convert;
pub use guestctl_export as export;
pub use guestctl_formats as formats;
pub use guestctl_fs as fs;
pub use guestctl_inspect as inspect;
pub use guestctl_part as part;
pub use guestctl_registry as registry;

pub mod api;
mod error;
mod guest;
mod handle;
mod model;

pub use api::{Application2, Partition, Stat, StatNS, StatVFS, XAttr};
pub use error::{Error, ErrorKind, Result};
pub use guest::{File, Guest, WalkEntry};
pub use guestctl_block::BlockDevice;
pub use guestctl_formats::{open_image, Format, Image, ImageInfo, OpenOptions};
pub use handle::{DefaultMountError, Guestfs, Inspection};
pub use model::{DeviceEntry, FilesystemEntry};

/// Every host file an image is made of (the image and its backing chain).
pub fn image_files(info: &ImageInfo) -> Vec<PathBuf> {
    info.chain()
        .into_iter()
        .map(|i| PathBuf::from(&i.filename))
        .collect()
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
