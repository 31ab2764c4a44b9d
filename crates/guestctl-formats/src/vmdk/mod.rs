//! VMware VMDK reader: hosted sparse extents (monolithicSparse, twoGbMaxExtentSparse, version
//! 1-3 headers, zeroed grains, streamOptimized with compressed grains, markers and a footer),
//! flat extents (monolithicFlat, twoGbMaxExtentFlat, vmfs), ZERO extents, multi-extent text
//! descriptors and `parentFileNameHint` delta chains.
//!
//! Reads are byte-exact with `qemu-img convert -O raw` for every image qemu opens, except where
//! noted below. Extent and parent names go through the same untrusted-name policy as backing
//! files ([`crate::backing`]); parents are opened with the depth and loop checks of the chain.
//!
//! Refused: COWD (vmfsSparse), seSparse and raw-device-mapping extents (unsupported, naming the
//! extent type), NOACCESS extents (unsupported: their data exists but must not be read, so
//! they are neither skipped nor read as zeros), parents that are not vmdk images, descriptors
//! over 1 MiB or with more than 4096 extents, and everything the header limits of [`sparse`]
//! exclude.
//!
//! Differences from qemu, on purpose:
//! - ZERO and RDONLY extents are read (qemu drops those descriptor lines, shifting later
//!   extents); unknown extent types are errors (qemu drops them too).
//! - A grain directory or grain table that lies (partly) past the end of its file is an error
//!   (qemu reads the missing bytes as zeros, i.e. unallocated). Grain *data* past the end of
//!   the file reads as zeros, as in qemu.
//! - Compressed grains without markers may hold up to two grains of compressed data (qemu
//!   passes only one grain's worth to zlib); a stream that inflates to more than a grain is
//!   cut at the grain (qemu fails).
//! - A standalone descriptor needs a `createType` (as in qemu) but any value is accepted
//!   (qemu accepts only the six descriptor-file types it knows).
//!
//! Like qemu: a SPARSE extent's size is the capacity in its header (the descriptor's sector
//! count is ignored); a sparse header with capacity 0 and a descriptor offset points at a
//! descriptor describing the real extents; reading from a parent whose `CID` is not the
//! delta's `parentCID` fails (the parent changed after the delta was made); zeroed grains
//! never read the parent; reads past a parent's end are zeros.

pub mod descriptor;
mod extent;
pub mod sparse;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use guestctl_block::{clip, BlockDevice, Error, ExtentKind, Mapping, RawFile, Result};
use serde_json::json;

use crate::cache::read_or_zero;
use crate::{Ctx, Format, FormatSpecific, Image, ImageInfo};
use descriptor::{Access, Descriptor, ExtentType};
use extent::{Caches, Parent, SparseExtent};
use sparse::SparseHeader;

/// Largest virtual disk accepted (all extents together): 64 TiB.
const MAX_DISK_BYTES: u64 = sparse::MAX_CAPACITY_SECTORS * 512;

#[derive(Debug)]
enum Backend {
    /// Raw bytes of `file` from byte `offset` (FLAT and VMFS extents).
    Flat {
        file: Arc<dyn BlockDevice>,
        offset: u64,
    },
    /// Reads as zeros.
    Zero,
    /// A hosted sparse extent.
    Sparse(Box<SparseExtent>),
}

#[derive(Debug)]
struct Extent {
    /// Guest byte offset of the first byte.
    start: u64,
    /// Bytes.
    len: u64,
    backend: Backend,
}

/// An open VMDK image: its extents in guest order, and its parent for delta disks.
#[derive(Debug)]
pub struct Vmdk {
    size: u64,
    extents: Vec<Extent>,
    parent: Option<Parent>,
    caches: Caches,
}

/// What `open` learned before building the device.
struct Layout {
    desc: Descriptor,
    extents: Vec<Extent>,
    /// JSON for `format-specific.data.extents`.
    extent_info: Vec<serde_json::Value>,
    /// Allocated bytes of extent files other than the image file itself.
    extra_allocated: u64,
}

pub(crate) fn open(
    file: Arc<dyn BlockDevice>,
    path: &Path,
    allocated: u64,
    ctx: &Ctx<'_>,
) -> Result<Image> {
    let size = file.size();
    let mut head = vec![0u8; size.min(sparse::HEADER_LEN as u64) as usize];
    file.read_exact_at(0, &mut head).map_err(|e| e.path(path))?;
    let layout = if head.starts_with(sparse::MAGIC) || head.starts_with(sparse::COWD_MAGIC) {
        match sparse::capacity_and_descriptor(&head) {
            // qemu: a sparse header of capacity 0 with a descriptor describes other extents.
            Some((0, d)) if d != 0 => {
                let at = d.saturating_mul(512);
                let desc = read_descriptor(file.as_ref(), path, at, false)?;
                descriptor_layout(desc, path, ctx)?
            }
            _ => monolithic_layout(file.clone(), path)?,
        }
    } else {
        let desc = read_descriptor(file.as_ref(), path, 0, true)?;
        descriptor_layout(desc, path, ctx)?
    };
    let Layout {
        desc,
        extents,
        extent_info,
        extra_allocated,
    } = layout;
    let disk_size = extents.last().map_or(0, |e| e.start + e.len);

    let parent_img = match (&desc.parent_hint, desc.has_parent() && ctx.follow_backing()) {
        (Some(hint), true) => {
            let img = ctx.open_backing(path, hint, None)?;
            if img.info().format != Format::Vmdk {
                return Err(Error::unsupported(format!(
                    "parent {hint:?} is a {} image; a vmdk delta's parent must be vmdk",
                    img.info().format
                ))
                .path(path)
                .structure("vmdk descriptor"));
            }
            Some(img)
        }
        _ => None,
    };
    let parent = parent_img.as_ref().map(|p| {
        let parent_cid = p
            .info()
            .format_specific
            .as_ref()
            .and_then(|f| f.data.get("cid"))
            .and_then(serde_json::Value::as_u64);
        let refuse = match (desc.parent_cid, parent_cid) {
            (Some(want), Some(have)) if u64::from(want) == have => None,
            (want, have) => Some(format!(
                "parentCID {} does not match the CID {} of parent {:?}: the parent changed \
                 after this delta was made, so unallocated grains cannot be read from it",
                want.map_or("(none)".into(), |c| format!("{c:08x}")),
                have.map_or("(none)".into(), |c| format!("{c:08x}")),
                p.info().filename
            )),
        };
        Parent {
            refuse,
            ..Parent::new(p.device(), path.to_path_buf(), "vmdk descriptor")
        }
    });

    let sparse_headers: Vec<&SparseHeader> = extents
        .iter()
        .filter_map(|e| match &e.backend {
            Backend::Sparse(s) => Some(&s.header),
            _ => None,
        })
        .collect();
    let compressed = sparse_headers.iter().any(|h| h.compressed());
    let max_compressed_grain = sparse_headers
        .iter()
        .filter(|h| h.compressed())
        .map(|h| h.grain_bytes())
        .max()
        .unwrap_or(0);

    let mut info = ImageInfo::new(
        path,
        Format::Vmdk,
        disk_size,
        allocated.saturating_add(extra_allocated),
    );
    info.cluster_size = sparse_headers.first().map(|h| h.grain_bytes());
    info.dirty = sparse_headers.iter().any(|h| h.unclean_shutdown);
    if compressed {
        info.compression_type = Some("deflate".into());
    }
    info.subformat = desc.create_type.clone().or_else(|| {
        (!sparse_headers.is_empty()).then(|| {
            if compressed {
                "streamOptimized".to_string()
            } else {
                "monolithicSparse".to_string()
            }
        })
    });
    if desc.has_parent() {
        info.backing_filename = desc.parent_hint.clone();
        info.backing_format = Some("vmdk".into());
    }
    if let Some(p) = &parent_img {
        info.full_backing_filename = Some(p.info().filename.clone());
        info.backing = Some(Box::new(p.info().clone()));
    }
    let mut data = BTreeMap::new();
    if let Some(cid) = desc.cid {
        data.insert("cid".into(), json!(cid));
    }
    if let Some(pc) = desc.parent_cid {
        data.insert("parent-cid".into(), json!(pc));
    }
    if let Some(ct) = &info.subformat {
        data.insert("create-type".into(), json!(ct));
    }
    data.insert("extents".into(), json!(extent_info));
    info.format_specific = Some(FormatSpecific {
        kind: "vmdk".into(),
        data,
    });
    Ok(Image {
        device: Arc::new(Vmdk {
            size: disk_size,
            extents,
            parent,
            caches: Caches::new(max_compressed_grain),
        }),
        info,
    })
}

/// A lone sparse file (monolithicSparse, streamOptimized): one extent, this file; its
/// embedded descriptor only carries metadata (CID, parent).
fn monolithic_layout(file: Arc<dyn BlockDevice>, path: &Path) -> Result<Layout> {
    let mut budget = sparse::MAX_IMAGE_GD_ENTRIES;
    let sp = SparseExtent::open(file.clone(), path, 0, &mut budget)?;
    let desc = embedded_descriptor(file.as_ref(), &sp.header, path)?;
    let len = sp.size();
    Ok(Layout {
        desc,
        extent_info: vec![extent_json(Some(path), "SPARSE", len, Some(&sp.header))],
        extents: vec![Extent {
            start: 0,
            len,
            backend: Backend::Sparse(Box::new(sp)),
        }],
        extra_allocated: 0,
    })
}

/// The keys of the descriptor embedded in a sparse file (extent lines are ignored).
fn embedded_descriptor(
    file: &dyn BlockDevice,
    h: &SparseHeader,
    path: &Path,
) -> Result<Descriptor> {
    if h.descriptor_offset == 0 || h.descriptor_size == 0 {
        return Ok(Descriptor::default());
    }
    // descriptor_size * 512 <= 1 MiB (checked by sparse::parse).
    let len = h.descriptor_size * 512;
    let at = h.descriptor_offset.checked_mul(512);
    let Some(at) = at.filter(|a| a.checked_add(len).is_some_and(|e| e <= file.size())) else {
        return Err(Error::corrupt(format!(
            "embedded descriptor at sector {} ({} sectors) runs past the end of the file",
            h.descriptor_offset, h.descriptor_size
        ))
        .path(path)
        .structure("vmdk sparse header")
        .at(28));
    };
    let mut raw = vec![0u8; len as usize];
    file.read_exact_at(at, &mut raw)
        .map_err(|e| e.path(path).structure("vmdk descriptor").at(at))?;
    Ok(descriptor::parse_keys(&String::from_utf8_lossy(&raw)))
}

/// Reads and parses a text descriptor starting at byte `at` of `file`, up to the end of the
/// file (`whole`: the file is the descriptor and may not exceed 1 MiB) or 1 MiB.
fn read_descriptor(
    file: &dyn BlockDevice,
    path: &Path,
    at: u64,
    whole: bool,
) -> Result<Descriptor> {
    let size = file.size();
    let max = descriptor::MAX_DESCRIPTOR_BYTES;
    if at >= size {
        return Err(if whole {
            Error::corrupt("an empty file is not a VMDK descriptor")
                .path(path)
                .structure("vmdk descriptor")
        } else {
            Error::corrupt("descriptor offset is past the end of the file")
                .path(path)
                .structure("vmdk sparse header")
                .at(28)
        });
    }
    let avail = size - at;
    if whole && avail > max {
        return Err(Error::corrupt(format!(
            "descriptor file of {size} bytes is larger than {max} bytes"
        ))
        .path(path)
        .structure("vmdk descriptor"));
    }
    let mut raw = vec![0u8; avail.min(max) as usize];
    file.read_exact_at(at, &mut raw).map_err(|e| e.path(path))?;
    let desc =
        descriptor::parse(&String::from_utf8_lossy(&raw)).map_err(|e| e.path(path).at(at))?;
    if desc.create_type.is_none() {
        return Err(Error::corrupt(
            "not a VMDK descriptor: no createType (and no KDMV sparse header)",
        )
        .path(path)
        .structure("vmdk descriptor")
        .at(at));
    }
    Ok(desc)
}

/// Opens the extents a descriptor lists, resolving names relative to `path`'s directory.
fn descriptor_layout(desc: Descriptor, path: &Path, ctx: &Ctx<'_>) -> Result<Layout> {
    const DESC: &str = "vmdk descriptor";
    let mut extents = Vec::with_capacity(desc.extents.len());
    let mut extent_info = Vec::with_capacity(desc.extents.len());
    // Each extent file is opened once, and counted once towards the allocated size.
    let mut files: HashMap<PathBuf, Arc<RawFile>> = HashMap::new();
    let me = path.canonicalize().ok();
    let mut counted: HashSet<PathBuf> = me.into_iter().collect();
    let mut extra_allocated = 0u64;
    let mut gd_budget = sparse::MAX_IMAGE_GD_ENTRIES;
    let mut start = 0u64;
    for (i, line) in desc.extents.iter().enumerate() {
        let kind = line.kind.name();
        if line.access == Access::NoAccess {
            return Err(Error::unsupported(format!(
                "extent {i} ({kind}) is NOACCESS; such extents are refused, not read as zeros"
            ))
            .path(path)
            .structure(DESC));
        }
        let sectors_to_bytes = |s: u64, what: &str| {
            s.checked_mul(512).ok_or_else(|| {
                Error::corrupt(format!("extent {i}: {what} of {s} sectors overflows"))
                    .path(path)
                    .structure(DESC)
            })
        };
        let mut open_file = |name: &str| -> Result<(PathBuf, Arc<RawFile>)> {
            let p = ctx.resolve(path, name, "extent file")?;
            if let Some(f) = files.get(&p) {
                return Ok((p, f.clone()));
            }
            let f = Arc::new(RawFile::open(&p).map_err(|e| {
                Error::new(e.kind(), format!("cannot open extent file {name:?}"))
                    .path(path)
                    .structure(DESC)
                    .with_source(e)
            })?);
            if counted.insert(p.clone()) {
                extra_allocated = extra_allocated.saturating_add(f.allocated_bytes());
            }
            files.insert(p.clone(), f.clone());
            Ok((p, f))
        };
        let name = line.file.as_deref().unwrap_or_default();
        let (len, backend) = match line.kind {
            ExtentType::Zero => {
                let len = sectors_to_bytes(line.sectors, "size")?;
                extent_info.push(extent_json(None, kind, len, None));
                (len, Backend::Zero)
            }
            ExtentType::Flat | ExtentType::Vmfs => {
                let len = sectors_to_bytes(line.sectors, "size")?;
                let offset = sectors_to_bytes(line.offset, "offset")?;
                if offset.checked_add(len).is_none() {
                    return Err(
                        Error::corrupt(format!("extent {i}: offset plus size overflows"))
                            .path(path)
                            .structure(DESC),
                    );
                }
                let (p, f) = open_file(name)?;
                extent_info.push(extent_json(Some(&p), kind, len, None));
                (len, Backend::Flat { file: f, offset })
            }
            ExtentType::Sparse => {
                let (p, f) = open_file(name)?;
                let sp = SparseExtent::open(f, &p, i as u64, &mut gd_budget)?;
                // Like qemu: the header's capacity, not the descriptor's count, sizes it.
                let len = sp.size();
                extent_info.push(extent_json(Some(&p), kind, len, Some(&sp.header)));
                (len, Backend::Sparse(Box::new(sp)))
            }
            ExtentType::VmfsSparse | ExtentType::SeSparse | ExtentType::VmfsRdm => {
                return Err(Error::unsupported(format!(
                    "vmdk {kind} extents are not read (extent {i}, {name:?})"
                ))
                .path(path)
                .structure(DESC))
            }
        };
        let end = start
            .checked_add(len)
            .filter(|&e| e <= MAX_DISK_BYTES)
            .ok_or_else(|| {
                Error::corrupt(format!(
                    "extent {i} makes the disk larger than {MAX_DISK_BYTES} bytes (64 TiB)"
                ))
                .path(path)
                .structure(DESC)
            })?;
        extents.push(Extent {
            start,
            len,
            backend,
        });
        start = end;
    }
    Ok(Layout {
        desc,
        extents,
        extent_info,
        extra_allocated,
    })
}

fn extent_json(
    path: Option<&Path>,
    kind: &str,
    len: u64,
    h: Option<&SparseHeader>,
) -> serde_json::Value {
    let mut v = json!({"format": kind, "virtual-size": len});
    if let Some(p) = path {
        v["filename"] = json!(p.display().to_string());
    }
    if let Some(h) = h {
        v["cluster-size"] = json!(h.grain_bytes());
        if h.compressed() {
            v["compressed"] = json!(true);
        }
    }
    v
}

impl Vmdk {
    /// Index of the extent holding guest offset `off` (< size), skipping empty extents.
    fn extent_at(&self, off: u64) -> usize {
        self.extents.partition_point(|e| e.start + e.len <= off)
    }

    /// Calls `f(extent, offset inside it, guest offset, bytes)` for each piece of
    /// `[offset, offset + total)` (already clipped to the disk).
    fn for_each_piece(
        &self,
        offset: u64,
        total: u64,
        mut f: impl FnMut(&Extent, u64, u64, u64) -> Result<()>,
    ) -> Result<()> {
        let mut done = 0u64;
        while done < total {
            let pos = offset + done;
            let Some(e) = self.extents.get(self.extent_at(pos)) else {
                break;
            };
            let inner = pos - e.start;
            let n = (e.len - inner).min(total - done);
            f(e, inner, pos, n)?;
            done += n;
        }
        Ok(())
    }
}

impl BlockDevice for Vmdk {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let (offset, total) = clip(offset, buf.len() as u64, self.size);
        self.for_each_piece(offset, total, |e, inner, pos, n| {
            let at = (pos - offset) as usize;
            let out = &mut buf[at..at + n as usize];
            match &e.backend {
                Backend::Zero => out.fill(0),
                // offset + len was checked at open, so offset + inner cannot overflow.
                Backend::Flat { file, offset } => read_or_zero(file.as_ref(), offset + inner, out)?,
                Backend::Sparse(s) => {
                    s.read(&self.caches, inner, out, e.start, self.parent.as_ref())?
                }
            }
            Ok(())
        })?;
        Ok(total as usize)
    }

    fn map(&self, offset: u64, len: u64) -> Result<Mapping> {
        let (offset, total) = clip(offset, len, self.size);
        let mut m = Mapping::new();
        self.for_each_piece(offset, total, |e, inner, pos, n| {
            match &e.backend {
                Backend::Zero => m.push(pos, n, ExtentKind::Zero),
                Backend::Flat { .. } => m.push(pos, n, ExtentKind::Data),
                Backend::Sparse(s) => s.map(
                    &self.caches,
                    inner,
                    n,
                    e.start,
                    self.parent.as_ref(),
                    &mut m,
                )?,
            }
            Ok(())
        })?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmdk_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Vmdk>();
    }

    #[test]
    fn extent_json_follows_qemu_keys() {
        let mut h = sparse::parse(&sparse::tests::header(2048, 128)).expect("header");
        let v = extent_json(Some(Path::new("/x/a.vmdk")), "SPARSE", 1 << 20, Some(&h));
        assert_eq!(v["cluster-size"], 65536);
        assert!(v.get("compressed").is_none());
        h.compress_algorithm = 1;
        let v = extent_json(None, "ZERO", 512, Some(&h));
        assert_eq!(v["compressed"], true);
        assert!(v.get("filename").is_none());
    }
}
