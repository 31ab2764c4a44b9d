//! VMware VMDK reader: hosted sparse extents (monolithicSparse, twoGbMaxExtentSparse,
//! streamOptimized with compressed grains and a footer grain directory), flat extents
//! (monolithicFlat, twoGbMaxExtentFlat, VMFS), ZERO extents, multi-extent descriptor files and
//! `parentFileNameHint` delta chains.
//!
//! Refused: COWD (vmfsSparse), seSparse and raw-device-mapping extents (unsupported), and
//! NOACCESS extents (qemu refuses them too). Extent file names follow the same untrusted-name
//! policy as backing files.

pub mod descriptor;
pub mod sparse;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use guestctl_block::{clip, BlockDevice, Error, ExtentKind, Mapping, RawFile, Result};
use serde_json::json;

use crate::cache::{read_or_zero, ChunkCache, TableCache};
use crate::decompress::{decompress, Codec};
use crate::{Ctx, Format, FormatSpecific, Image, ImageInfo};
use descriptor::{Access, Descriptor, ExtentType};
use sparse::SparseHeader;

/// Bytes of grain tables cached per image (shared out among its sparse extents).
const GT_CACHE_BYTES: usize = 32 << 20;
/// Bytes of grain directories one image may load in all: a descriptor naming the same large
/// sparse file thousands of times must not multiply memory.
const GD_BUDGET_BYTES: u64 = 256 << 20;
/// Decompressed grains kept for partial reads.
const GRAIN_CACHE: usize = 8;

/// What a run of extent bytes maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Data(u64),
    Zero,
    Unalloc,
    /// A compressed grain whose GTE points at this sector.
    Compressed(u64),
}

/// One hosted sparse extent file.
#[derive(Debug)]
struct SparseExtent {
    path: PathBuf,
    file: Arc<dyn BlockDevice>,
    header: SparseHeader,
    gd: Box<[u32]>,
    gd_offset: u64,
    gts: TableCache<u32>,
    grains: ChunkCache,
}

#[derive(Debug)]
enum Backend {
    Flat {
        file: Arc<dyn BlockDevice>,
        offset: u64,
    },
    Zero,
    Sparse(Box<SparseExtent>),
}

#[derive(Debug)]
struct Extent {
    start: u64,
    len: u64,
    backend: Backend,
}

/// An open VMDK image (all its extents, and its parent for delta disks).
#[derive(Debug)]
pub struct Vmdk {
    size: u64,
    extents: Vec<Extent>,
    parent: Option<Arc<dyn BlockDevice>>,
}

impl SparseExtent {
    /// Opens a sparse extent; its grain directory is charged to `budget` (bytes left), and
    /// it may cache `gt_cache_bytes` of grain tables.
    fn open(
        file: Arc<dyn BlockDevice>,
        path: &Path,
        budget: &mut u64,
        gt_cache_bytes: usize,
    ) -> Result<Self> {
        let err = |e: Error| e.path(path);
        let mut hb = [0u8; 512];
        file.read_exact_at(0, &mut hb).map_err(|e| {
            Error::corrupt("file is too short for a sparse header")
                .path(path)
                .structure("vmdk sparse header")
                .with_source(e)
        })?;
        let mut header = sparse::parse(&hb).map_err(err)?;
        if header.gd_offset == sparse::GD_AT_END {
            // streamOptimized: the real header (with the GD offset) is the footer, 1 KiB
            // before the end, behind a footer marker and followed by the end-of-stream marker.
            let size = file.size();
            if size < 1536 {
                return Err(Error::corrupt("no room for a footer")
                    .path(path)
                    .structure("vmdk footer"));
            }
            let at = size - 1024;
            let mut fb = [0u8; 512];
            file.read_exact_at(at, &mut fb)?;
            let footer =
                sparse::parse(&fb).map_err(|e| e.path(path).structure("vmdk footer").at(at))?;
            if footer.gd_offset == sparse::GD_AT_END {
                return Err(Error::corrupt("footer does not locate the grain directory")
                    .path(path)
                    .structure("vmdk footer")
                    .at(at));
            }
            if footer.capacity != header.capacity || footer.grain_sectors != header.grain_sectors {
                return Err(Error::corrupt("footer disagrees with the header")
                    .path(path)
                    .structure("vmdk footer")
                    .at(at));
            }
            header = footer;
        }
        let gd_offset = header
            .gd_offset
            .checked_mul(512)
            .ok_or_else(|| Error::corrupt("grain directory offset overflows").path(path))?;
        let n = header.gd_entries();
        let end = gd_offset.checked_add(n * 4);
        if end.is_none_or(|e| e > file.size()) {
            return Err(Error::corrupt(format!(
                "grain directory of {n} entries runs past the end of the file"
            ))
            .path(path)
            .structure("vmdk grain directory")
            .at(gd_offset));
        }
        if n * 4 > *budget {
            return Err(Error::refused(format!(
                "grain directories of this image need more than {} MiB",
                GD_BUDGET_BYTES >> 20
            ))
            .path(path)
            .structure("vmdk grain directory")
            .at(gd_offset));
        }
        *budget -= n * 4;
        let mut raw = vec![0u8; (n * 4) as usize];
        file.read_exact_at(gd_offset, &mut raw)?;
        let gd = raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let gt_bytes = header.gtes_per_gt as usize * 4;
        Ok(SparseExtent {
            path: path.to_path_buf(),
            file,
            gts: TableCache::new(gt_cache_bytes / gt_bytes),
            grains: ChunkCache::new(GRAIN_CACHE),
            header,
            gd,
            gd_offset,
        })
    }

    fn size(&self) -> u64 {
        self.header.capacity * 512
    }

    fn corrupt(&self, what: &'static str, msg: String, off: u64) -> Error {
        Error::corrupt(msg).path(&self.path).structure(what).at(off)
    }

    fn grain_table(&self, gd_idx: usize) -> Result<Option<Arc<[u32]>>> {
        let sector = u64::from(self.gd[gd_idx]);
        if sector == 0 {
            return Ok(None);
        }
        let n = self.header.gtes_per_gt as u64;
        let off = sector * 512;
        self.gts
            .get_or_load(off, || {
                if off.checked_add(n * 4).is_none_or(|e| e > self.file.size()) {
                    return Err(self.corrupt(
                        "vmdk grain directory",
                        format!("entry {gd_idx} points past the end of the file"),
                        self.gd_offset + gd_idx as u64 * 4,
                    ));
                }
                let mut raw = vec![0u8; (n * 4) as usize];
                self.file.read_exact_at(off, &mut raw)?;
                Ok(raw
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect())
            })
            .map(Some)
    }

    fn classify(&self, gte: u32) -> Kind {
        match gte {
            0 => Kind::Unalloc,
            1 if self.header.zeroed_gte() => Kind::Zero,
            s if self.header.compressed() => Kind::Compressed(u64::from(s)),
            s => Kind::Data(u64::from(s) * 512),
        }
    }

    /// What extent offset `off` maps to, for how many bytes (≤ max, ≥ 1).
    fn lookup(&self, off: u64, max: u64) -> Result<(Kind, u64)> {
        let grain = self.header.grain_bytes();
        let cover = self.header.gt_coverage();
        let gd_idx = (off / cover) as usize;
        let max = max.min(cover - off % cover);
        let Some(gt) = self.grain_table(gd_idx)? else {
            return Ok((Kind::Unalloc, max));
        };
        let first = ((off % cover) / grain) as usize;
        let skip = off % grain;
        let kind = match self.classify(gt[first]) {
            Kind::Data(h) => Kind::Data(h + skip),
            k => k,
        };
        let mut len = grain - skip;
        if let Kind::Compressed(_) = kind {
            return Ok((kind, len.min(max)));
        }
        let mut i = first + 1;
        while len < max && i < gt.len() {
            let same = match (kind, self.classify(gt[i])) {
                (Kind::Data(a), Kind::Data(b)) => b == a + len,
                (Kind::Zero, Kind::Zero) | (Kind::Unalloc, Kind::Unalloc) => true,
                _ => false,
            };
            if !same {
                break;
            }
            len += grain;
            i += 1;
        }
        Ok((kind, len.min(max)))
    }

    /// Inflates the compressed grain whose GTE is `sector` into `out` (one grain).
    fn read_compressed(&self, sector: u64, out: &mut [u8]) -> Result<()> {
        let at = sector * 512;
        let grain = self.header.grain_bytes();
        let file_size = self.file.size();
        let (data_at, len) = if self.header.markers() {
            let mut m = [0u8; 12];
            self.file.read_exact_at(at, &mut m).map_err(|e| {
                self.corrupt(
                    "vmdk grain marker",
                    "grain marker past the end of the file".into(),
                    at,
                )
                .with_source(e)
            })?;
            let size = u64::from(u32::from_le_bytes([m[8], m[9], m[10], m[11]]));
            if size == 0 || size > 2 * grain + 4096 {
                return Err(self.corrupt(
                    "vmdk grain marker",
                    format!("compressed grain of {size} bytes is invalid"),
                    at,
                ));
            }
            (at + 12, size)
        } else {
            (at, (2 * grain).min(file_size.saturating_sub(at)))
        };
        if data_at.checked_add(len).is_none_or(|e| e > file_size) || len == 0 {
            return Err(self.corrupt(
                "vmdk compressed grain",
                "compressed grain runs past the end of the file".into(),
                at,
            ));
        }
        let mut input = vec![0u8; len as usize];
        self.file.read_exact_at(data_at, &mut input)?;
        let got = decompress(Codec::Zlib, &input, out)
            .map_err(|e| e.path(&self.path).structure("vmdk compressed grain").at(at))?;
        // The last grain of a disk may be compressed short; the rest reads as zeros.
        out[got..].fill(0);
        Ok(())
    }

    fn read(
        &self,
        off: u64,
        buf: &mut [u8],
        parent: Option<(&dyn BlockDevice, u64)>,
    ) -> Result<()> {
        let grain = self.header.grain_bytes();
        let mut done = 0u64;
        let total = buf.len() as u64;
        while done < total {
            let pos = off + done;
            let (kind, len) = self.lookup(pos, total - done)?;
            let out = &mut buf[done as usize..(done + len) as usize];
            match kind {
                Kind::Data(host) => read_or_zero(self.file.as_ref(), host, out)?,
                Kind::Zero => out.fill(0),
                Kind::Unalloc => match parent {
                    Some((p, base)) => read_or_zero(p, base + pos, out)?,
                    None => out.fill(0),
                },
                Kind::Compressed(sector) => {
                    let skip = (pos % grain) as usize;
                    if skip == 0 && out.len() as u64 == grain {
                        self.read_compressed(sector, out)?;
                    } else {
                        let g = self.grains.get_or_load(sector, || {
                            let mut v = vec![0u8; grain as usize];
                            self.read_compressed(sector, &mut v)?;
                            Ok(v)
                        })?;
                        out.copy_from_slice(&g[skip..skip + out.len()]);
                    }
                }
            }
            done += len;
        }
        Ok(())
    }

    /// Maps extent offsets; `base` is the extent's guest start (for the parent).
    fn map(
        &self,
        off: u64,
        len: u64,
        base: u64,
        parent: Option<&dyn BlockDevice>,
        m: &mut Mapping,
    ) -> Result<()> {
        let mut done = 0;
        while done < len {
            let pos = off + done;
            let (kind, n) = self.lookup(pos, len - done)?;
            let g = base + pos;
            match kind {
                Kind::Data(_) | Kind::Compressed(_) => m.push(g, n, ExtentKind::Data),
                Kind::Zero => m.push(g, n, ExtentKind::Zero),
                Kind::Unalloc => match parent {
                    Some(p) => {
                        let (po, pl) = clip(g, n, p.size());
                        m.extend(p.map(po, pl)?);
                        m.push(g + pl, n - pl, ExtentKind::Zero);
                    }
                    None => m.push(g, n, ExtentKind::Unallocated),
                },
            }
            done += n;
        }
        Ok(())
    }
}

pub(crate) fn open(
    file: Arc<dyn BlockDevice>,
    path: &Path,
    allocated: u64,
    ctx: &Ctx<'_>,
) -> Result<Image> {
    let mut magic = [0u8; 4];
    file.read_exact_at(0, &mut magic)?;
    let mut actual = allocated;
    let mut extent_info = Vec::new();
    let mut budget = GD_BUDGET_BYTES;
    let (desc, extents) = if &magic == sparse::MAGIC {
        // A lone sparse file (monolithicSparse, streamOptimized): its embedded descriptor
        // only carries metadata; the one extent is this file.
        let sp = SparseExtent::open(file.clone(), path, &mut budget, GT_CACHE_BYTES)?;
        let desc = embedded_descriptor(&sp, path)?;
        let len = sp.size();
        extent_info.push(extent_json(path, "SPARSE", len, Some(&sp.header)));
        (
            desc,
            vec![Extent {
                start: 0,
                len,
                backend: Backend::Sparse(Box::new(sp)),
            }],
        )
    } else {
        let size = file.size();
        if size > descriptor::MAX_DESCRIPTOR_BYTES {
            return Err(Error::corrupt(format!(
                "descriptor file of {size} bytes is larger than {} bytes",
                descriptor::MAX_DESCRIPTOR_BYTES
            ))
            .path(path)
            .structure("vmdk descriptor"));
        }
        let mut raw = vec![0u8; size as usize];
        file.read_exact_at(0, &mut raw)?;
        let text = String::from_utf8_lossy(&raw);
        let desc = descriptor::parse(&text).map_err(|e| e.path(path))?;
        let mut extents = Vec::with_capacity(desc.extents.len());
        let sparse_count = desc
            .extents
            .iter()
            .filter(|e| e.kind == ExtentType::Sparse)
            .count()
            .max(1);
        let gt_share = GT_CACHE_BYTES / sparse_count;
        let mut start = 0u64;
        for (i, line) in desc.extents.iter().enumerate() {
            let len = line
                .sectors
                .checked_mul(512)
                .filter(|l| {
                    start
                        .checked_add(*l)
                        .is_some_and(|e| e <= sparse::MAX_CAPACITY_SECTORS * 512)
                })
                .ok_or_else(|| {
                    Error::corrupt(format!("extent {i} makes the disk larger than 64 TiB"))
                        .path(path)
                        .structure("vmdk descriptor")
                })?;
            if line.access == Access::NoAccess {
                return Err(Error::unsupported(format!("extent {i} is NOACCESS")).path(path));
            }
            let backend = match line.kind {
                ExtentType::Zero => {
                    extent_info.push(json!({"format": "ZERO", "virtual-size": len}));
                    Backend::Zero
                }
                ExtentType::Flat | ExtentType::Vmfs | ExtentType::Sparse => {
                    let name = line.file.as_deref().unwrap_or_default();
                    let p = ctx.resolve(path, name, "extent file")?;
                    let f = RawFile::open(&p).map_err(|e| {
                        Error::new(e.kind(), format!("cannot open extent file {name:?}"))
                            .path(path)
                            .with_source(e)
                    })?;
                    actual += f.allocated_bytes();
                    let f: Arc<dyn BlockDevice> = Arc::new(f);
                    if line.kind == ExtentType::Sparse {
                        let sp = SparseExtent::open(f, &p, &mut budget, gt_share)?;
                        extent_info.push(extent_json(&p, "SPARSE", len, Some(&sp.header)));
                        Backend::Sparse(Box::new(sp))
                    } else {
                        extent_info.push(extent_json(&p, line.kind.name(), len, None));
                        Backend::Flat {
                            file: f,
                            offset: line.offset.checked_mul(512).ok_or_else(|| {
                                Error::corrupt(format!("extent {i} offset overflows")).path(path)
                            })?,
                        }
                    }
                }
                other => {
                    return Err(Error::unsupported(format!(
                        "vmdk {} extents are not read (extent {i})",
                        other.name()
                    ))
                    .path(path))
                }
            };
            extents.push(Extent {
                start,
                len,
                backend,
            });
            start += len;
        }
        (desc, extents)
    };
    let size = extents.last().map_or(0, |e| e.start + e.len);
    let parent = match (&desc.parent_hint, desc.has_parent() && ctx.follow_backing()) {
        (Some(hint), true) => Some(ctx.open_backing(path, hint, None)?),
        _ => None,
    };
    let mut info = ImageInfo::new(path, Format::Vmdk, size, actual);
    let first_sparse = extents.iter().find_map(|e| match &e.backend {
        Backend::Sparse(s) => Some(&s.header),
        _ => None,
    });
    if let Some(h) = first_sparse {
        info.cluster_size = Some(h.grain_bytes());
        info.dirty = h.unclean_shutdown;
        if h.compressed() {
            info.compression_type = Some("deflate".into());
        }
    }
    info.subformat = desc.create_type.clone();
    if desc.has_parent() {
        info.backing_filename = desc.parent_hint.clone();
    }
    if let Some(p) = &parent {
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
    if let Some(ct) = &desc.create_type {
        data.insert("create-type".into(), json!(ct));
    }
    data.insert("extents".into(), json!(extent_info));
    info.format_specific = Some(FormatSpecific {
        kind: "vmdk".into(),
        data,
    });
    Ok(Image {
        device: Arc::new(Vmdk {
            size,
            extents,
            parent: parent.map(|p| p.device()),
        }),
        info,
    })
}

fn extent_json(path: &Path, kind: &str, len: u64, h: Option<&SparseHeader>) -> serde_json::Value {
    let mut v =
        json!({"filename": path.display().to_string(), "format": kind, "virtual-size": len});
    if let Some(h) = h {
        v["cluster-size"] = json!(h.grain_bytes());
        v["compressed"] = json!(h.compressed());
    }
    v
}

fn embedded_descriptor(sp: &SparseExtent, path: &Path) -> Result<Descriptor> {
    let h = &sp.header;
    if h.descriptor_offset == 0 || h.descriptor_size == 0 {
        return Ok(Descriptor::default());
    }
    let at = h.descriptor_offset.saturating_mul(512);
    let len = h.descriptor_size * 512;
    if at.checked_add(len).is_none_or(|e| e > sp.file.size()) {
        return Err(
            Error::corrupt("embedded descriptor runs past the end of the file")
                .path(path)
                .structure("vmdk descriptor")
                .at(at),
        );
    }
    let mut raw = vec![0u8; len as usize];
    sp.file.read_exact_at(at, &mut raw)?;
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    descriptor::parse(&String::from_utf8_lossy(&raw[..end])).map_err(|e| e.path(path).at(at))
}

impl Vmdk {
    /// Index of the extent holding guest offset `off` (which must be < size).
    fn extent_at(&self, off: u64) -> usize {
        self.extents.partition_point(|e| e.start + e.len <= off)
    }
}

impl BlockDevice for Vmdk {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let (offset, total) = clip(offset, buf.len() as u64, self.size);
        let mut done = 0u64;
        while done < total {
            let pos = offset + done;
            let i = self.extent_at(pos);
            let Some(e) = self.extents.get(i) else { break };
            let inner = pos - e.start;
            let n = (e.len - inner).min(total - done);
            let out = &mut buf[done as usize..(done + n) as usize];
            match &e.backend {
                Backend::Zero => out.fill(0),
                Backend::Flat { file, offset } => {
                    read_or_zero(file.as_ref(), offset.saturating_add(inner), out)?
                }
                Backend::Sparse(s) => {
                    let parent = self.parent.as_deref().map(|p| (p, e.start));
                    s.read(inner, out, parent)?
                }
            }
            done += n;
        }
        Ok(total as usize)
    }

    fn map(&self, offset: u64, len: u64) -> Result<Mapping> {
        let (offset, total) = clip(offset, len, self.size);
        let mut m = Mapping::new();
        let mut done = 0u64;
        while done < total {
            let pos = offset + done;
            let i = self.extent_at(pos);
            let Some(e) = self.extents.get(i) else { break };
            let inner = pos - e.start;
            let n = (e.len - inner).min(total - done);
            match &e.backend {
                Backend::Zero => m.push(pos, n, ExtentKind::Zero),
                Backend::Flat { .. } => m.push(pos, n, ExtentKind::Data),
                Backend::Sparse(s) => {
                    // Reads past a sparse extent's own capacity (descriptor says more) are zero.
                    let cap = s.size().saturating_sub(inner).min(n);
                    s.map(inner, cap, e.start, self.parent.as_deref(), &mut m)?;
                    m.push(pos + cap, n - cap, ExtentKind::Zero);
                }
            }
            done += n;
        }
        Ok(m)
    }
}
