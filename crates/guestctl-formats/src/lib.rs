//! In-process readers for virtual-machine disk images: raw, qcow2 (v2/v3), vmdk, VHD (qemu's
//! `vpc`), VHDX (with its log replayed in memory) and VDI, with backing chains, each exposed as
//! a [`guestctl_block::BlockDevice`].
//!
//! [`open_image`] is the one factory: it detects the format by magic bytes (never by file
//! extension), applies the backing-file policy of [`backing`], and bounds everything it reads
//! from the image before allocating or looping.
//!
//! Refused: encrypted images, formats we recognise but do not read (qcow v1,
//! parallels, ...: an "unsupported format" error, never a silent raw read), backing chains
//! deeper than [`MAX_CHAIN_DEPTH`] or with loops, and backing/extent names outside the policy.
//! Nothing here ever writes to an image.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backing;
mod blocktable;
mod bytes;
mod cache;
mod decompress;
mod detect;
mod parent;
pub mod qcow2;
pub mod vdi;
pub mod vhd;
pub mod vhdx;
pub mod vmdk;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use detect::{detect, Detected, Format, HEAD_LEN, TAIL_LEN};
use guestctl_block::RawFile;
pub use guestctl_block::{BlockDevice, Error, ErrorKind, Result};
use serde::Serialize;

/// Longest backing chain followed (the top image counts as depth 0).
pub const MAX_CHAIN_DEPTH: usize = 16;

/// How to open an image.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Skip detection and read the top image as this format.
    pub format: Option<Format>,
    /// Path prefixes under which absolute or out-of-directory backing/extent/data-file names
    /// may be followed.
    pub allow_backing: Vec<PathBuf>,
    /// Open backing files at all (false: unallocated ranges read as zeros, like `-U`-less
    /// inspection of a lone overlay).
    pub follow_backing: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            format: None,
            allow_backing: Vec::new(),
            follow_backing: true,
        }
    }
}

/// What `guestctl info` reports about one image of a chain. Keys follow
/// `qemu-img info --output=json` where they overlap.
#[derive(Debug, Clone, Serialize)]
pub struct ImageInfo {
    /// The image path as opened.
    pub filename: String,
    /// The detected (or forced) format.
    pub format: Format,
    /// Guest-visible size in bytes.
    #[serde(rename = "virtual-size")]
    pub virtual_size: u64,
    /// Bytes allocated on the host for this image (and its extent or data files).
    #[serde(rename = "actual-size")]
    pub actual_size: u64,
    /// Cluster (qcow2) or grain (vmdk) size in bytes.
    #[serde(rename = "cluster-size", skip_serializing_if = "Option::is_none")]
    pub cluster_size: Option<u64>,
    /// The image was not closed cleanly (qcow2 dirty bit, vmdk uncleanShutdown).
    #[serde(rename = "dirty-flag")]
    pub dirty: bool,
    /// The image carries the qcow2 "corrupt" bit.
    pub corrupt: bool,
    /// Compression used by compressed clusters/grains (`zlib`, `zstd`, `deflate`).
    #[serde(rename = "compression-type", skip_serializing_if = "Option::is_none")]
    pub compression_type: Option<String>,
    /// Sub-format (qcow2 `compat` level, vmdk `createType`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subformat: Option<String>,
    /// The backing name exactly as stored in the image.
    #[serde(rename = "backing-filename", skip_serializing_if = "Option::is_none")]
    pub backing_filename: Option<String>,
    /// The backing file's resolved host path (when it was followed).
    #[serde(
        rename = "full-backing-filename",
        skip_serializing_if = "Option::is_none"
    )]
    pub full_backing_filename: Option<String>,
    /// The backing format stored in the image, if any.
    #[serde(
        rename = "backing-filename-format",
        skip_serializing_if = "Option::is_none"
    )]
    pub backing_format: Option<String>,
    /// Format-specific details (qcow2 features, vmdk extents), as `{type, data}`.
    #[serde(rename = "format-specific", skip_serializing_if = "Option::is_none")]
    pub format_specific: Option<FormatSpecific>,
    /// The next image of the chain.
    #[serde(rename = "backing-image", skip_serializing_if = "Option::is_none")]
    pub backing: Option<Box<ImageInfo>>,
}

/// qemu-img's `format-specific` object.
#[derive(Debug, Clone, Serialize)]
pub struct FormatSpecific {
    /// The format name.
    #[serde(rename = "type")]
    pub kind: String,
    /// Free-form details.
    pub data: BTreeMap<String, serde_json::Value>,
}

impl ImageInfo {
    fn new(path: &Path, format: Format, virtual_size: u64, actual_size: u64) -> Self {
        ImageInfo {
            filename: path.display().to_string(),
            format,
            virtual_size,
            actual_size,
            cluster_size: None,
            dirty: false,
            corrupt: false,
            compression_type: None,
            subformat: None,
            backing_filename: None,
            full_backing_filename: None,
            backing_format: None,
            format_specific: None,
            backing: None,
        }
    }

    /// The chain from this image down to its last backing file.
    pub fn chain(&self) -> Vec<&ImageInfo> {
        let mut out = vec![self];
        let mut cur = self;
        while let Some(b) = cur.backing.as_deref() {
            out.push(b);
            cur = b;
        }
        out
    }
}

/// An opened image: the guest-visible device and what we learned while opening it.
#[derive(Debug, Clone)]
pub struct Image {
    device: Arc<dyn BlockDevice>,
    info: ImageInfo,
}

impl Image {
    /// The virtual disk.
    pub fn device(&self) -> Arc<dyn BlockDevice> {
        self.device.clone()
    }
    /// What the image header said.
    pub fn info(&self) -> &ImageInfo {
        &self.info
    }
}

/// Opens an image file read-only, detecting its format and following its backing chain under
/// the policy of [`backing::resolve`].
pub fn open_image(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Image> {
    let ctx = Ctx {
        opts,
        chain: Vec::new(),
    };
    ctx.open(path.as_ref(), opts.format)
}

/// Opens an image whose container bytes come from `dev` instead of a file (for fuzzing and
/// for images nested in other images). `name` is used in messages and to resolve backing and
/// extent names, under the same policy as [`open_image`].
pub fn open_image_device(
    dev: Arc<dyn BlockDevice>,
    name: &Path,
    opts: &OpenOptions,
) -> Result<Image> {
    let ctx = Ctx {
        opts,
        chain: Vec::new(),
    };
    ctx.open_device(dev, name, opts.format, 0)
}

/// Detects the format of a file without opening it as an image.
pub fn detect_file(path: impl AsRef<Path>) -> Result<Detected> {
    let file = RawFile::open(path.as_ref())?;
    detect_device(&file)
}

fn detect_device(file: &dyn BlockDevice) -> Result<Detected> {
    let size = file.size();
    let mut head = vec![0u8; (HEAD_LEN as u64).min(size) as usize];
    file.read_exact_at(0, &mut head)?;
    let tail_len = (TAIL_LEN as u64).min(size);
    let mut tail = vec![0u8; tail_len as usize];
    file.read_exact_at(size - tail_len, &mut tail)?;
    Ok(detect(&head, &tail))
}

/// Opening context: the options and the chain of images above the one being opened.
#[derive(Debug, Clone)]
pub(crate) struct Ctx<'a> {
    opts: &'a OpenOptions,
    chain: Vec<PathBuf>,
}

impl Ctx<'_> {
    fn open(&self, path: &Path, format: Option<Format>) -> Result<Image> {
        let file = RawFile::open(path)?;
        let allocated = file.allocated_bytes();
        self.open_device(Arc::new(file), path, format, allocated)
    }

    fn open_device(
        &self,
        file: Arc<dyn BlockDevice>,
        path: &Path,
        format: Option<Format>,
        allocated: u64,
    ) -> Result<Image> {
        let format = match format {
            Some(f) => f,
            None => match detect_device(file.as_ref())? {
                Detected::Supported(f) => f,
                Detected::Unsupported(name) => {
                    return Err(Error::unsupported(format!(
                    "unsupported format {name}: guestctl reads raw, qcow2, vmdk, vpc (VHD), vhdx and vdi"
                ))
                    .path(path))
                }
            },
        };
        match format {
            Format::Raw => {
                let info = ImageInfo::new(path, Format::Raw, file.size(), allocated);
                Ok(Image { device: file, info })
            }
            Format::Qcow2 => qcow2::open(file, path, allocated, self),
            Format::Vmdk => vmdk::open(file, path, allocated, self),
            Format::Vpc => vhd::open(file, path, allocated, self),
            Format::Vdi => vdi::open(file, path, allocated, self),
            Format::Vhdx => vhdx::open(file, path, allocated, self),
        }
    }

    /// Resolves a name stored in `image` (backing, extent or data file) under the policy.
    pub(crate) fn resolve(&self, image: &Path, name: &str, what: &str) -> Result<PathBuf> {
        backing::resolve(image, name, what, &self.opts.allow_backing)
    }

    /// True when backing files are to be opened.
    pub(crate) fn follow_backing(&self) -> bool {
        self.opts.follow_backing
    }

    /// Opens the backing file `name` of `image`: policy, depth and loop checks, then detection
    /// (or `format` when the image states it).
    pub(crate) fn open_backing(
        &self,
        image: &Path,
        name: &str,
        format: Option<Format>,
    ) -> Result<Image> {
        let resolved = self.resolve(image, name, "backing file")?;
        let me = image
            .canonicalize()
            .map_err(|e| Error::io(e, "cannot resolve the image path").path(image))?;
        let mut chain = self.chain.clone();
        chain.push(me);
        if chain.len() > MAX_CHAIN_DEPTH {
            return Err(Error::refused(format!(
                "backing chain is deeper than {MAX_CHAIN_DEPTH} images (at backing file {name:?})"
            ))
            .path(image));
        }
        if chain.contains(&resolved) {
            return Err(Error::refused(format!(
                "backing file {name:?} makes a loop in the backing chain ({})",
                resolved.display()
            ))
            .path(image));
        }
        let child = Ctx {
            opts: self.opts,
            chain,
        };
        child.open(&resolved, format).map_err(|e| {
            Error::new(e.kind(), format!("cannot open backing file {name:?}"))
                .path(image)
                .with_source(e)
        })
    }
}

/// The fuzz harness's body, shared by `fuzz/` and the regression tests that replay its crashes:
/// open `data` as an image of `format` from memory (no backing files), map the first 256 MiB,
/// and read where the map says data, plus a few odd reads. Errors are the expected outcome;
/// panics, hangs and unbounded allocation are the bugs being looked for.
#[doc(hidden)]
pub fn fuzz_open_and_read(format: Format, data: &[u8]) {
    let opts = OpenOptions {
        format: Some(format),
        follow_backing: false,
        ..OpenOptions::default()
    };
    let dev = Arc::new(guestctl_block::MemoryDevice::new(data.to_vec()));
    let Ok(img) = open_image_device(dev, Path::new("/nonexistent/fuzz.img"), &opts) else {
        return;
    };
    let d = img.device();
    let mut buf = vec![0u8; 1 << 20];
    if let Ok(m) = d.map(0, d.size().min(256 << 20)) {
        for e in m.iter().take(64) {
            let n = e.len.min(buf.len() as u64) as usize;
            let _ = d.read_exact_at(e.offset, &mut buf[..n]);
        }
    }
    let _ = d.read_at(0, &mut buf[..4096]);
    let _ = d.read_at(d.size().saturating_sub(777), &mut buf[..1000]);
    let _ = d.read_at(d.size() / 2 + 1, &mut buf[..3]);
}

/// The `vhdx` fuzz target's body: [`vhdx::fuzz_expand`] the input, then
/// [`fuzz_open_and_read`] it as a VHDX.
#[doc(hidden)]
pub fn fuzz_vhdx(data: &[u8]) {
    fuzz_open_and_read(Format::Vhdx, &vhdx::fuzz_expand(data));
}
