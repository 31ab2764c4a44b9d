//! The image below another in a chain (qcow2 backing file, vmdk/VHD/VDI parent): where the
//! ranges an image does not allocate are read from. One type for every format, so "read
//! through, zeros past the parent's end, refuse when the parent no longer matches" is written
//! once.

use std::path::PathBuf;
use std::sync::Arc;

use guestctl_block::{clip, BlockDevice, Error, ExtentKind, Mapping, Result};

use crate::cache::read_or_zero;

/// A parent (backing) image.
#[derive(Debug)]
pub(crate) struct Parent {
    /// The parent's virtual disk.
    pub(crate) dev: Arc<dyn BlockDevice>,
    /// Why data must not be read from it: the parent's identity (vmdk `CID`, VHD unique id,
    /// VDI modification UUID) differs from what the child recorded, i.e. the parent changed
    /// after the child was made. Reads that would fall through fail with this message; the
    /// image still opens (so `info` can show both).
    pub(crate) refuse: Option<String>,
    /// The child's path, for the error.
    pub(crate) child: PathBuf,
    /// The child's structure that names the parent, for the error.
    pub(crate) structure: &'static str,
}

impl Parent {
    /// A parent that may be read from.
    pub(crate) fn new(dev: Arc<dyn BlockDevice>, child: PathBuf, structure: &'static str) -> Self {
        Parent {
            dev,
            refuse: None,
            child,
            structure,
        }
    }

    /// Guest bytes at `off` from the parent; zeros past its end.
    pub(crate) fn read(&self, off: u64, out: &mut [u8]) -> Result<()> {
        if let Some(why) = &self.refuse {
            return Err(Error::corrupt(why.clone())
                .path(&self.child)
                .structure(self.structure));
        }
        read_or_zero(self.dev.as_ref(), off, out)
    }
}

/// Fills `out` with the guest bytes at `off` of `parent`, or zeros without one.
pub(crate) fn read_through(parent: Option<&Parent>, off: u64, out: &mut [u8]) -> Result<()> {
    match parent {
        Some(p) => p.read(off, out),
        None => {
            out.fill(0);
            Ok(())
        }
    }
}

/// Appends the mapping of `[off, off + len)`, a range the child does not allocate: the
/// parent's map (zeros past its end), or unallocated without a parent.
pub(crate) fn map_through(
    parent: Option<&Parent>,
    off: u64,
    len: u64,
    m: &mut Mapping,
) -> Result<()> {
    match parent {
        Some(p) => {
            let (po, pl) = clip(off, len, p.dev.size());
            m.extend(p.dev.map(po, pl)?);
            m.push(off + pl, len - pl, ExtentKind::Zero);
        }
        None => m.push(off, len, ExtentKind::Unallocated),
    }
    Ok(())
}
