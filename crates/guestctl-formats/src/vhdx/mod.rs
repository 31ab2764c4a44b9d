//! VHDX reader (Hyper-V's virtual hard disk v2): fixed, dynamic and differencing files, 512
//! and 4096-byte logical sectors, every payload block state, and logs replayed in memory.
//!
//! Open: the file identifier, the current header (the valid one with the higher sequence
//! number, CRC-32C checked), the log (replayed into an overlay when the header's LogGuid is
//! set, see [`log`]), the region table (the first copy, or the second when the first is
//! damaged), the metadata table and its items, and for a differencing file the parent
//! locator. The BAT is read on demand in 64 KiB pages through a bounded cache; sector bitmaps
//! (differencing files) likewise, per block. Every read of the BAT, the metadata and the
//! payload goes through the replayed overlay when there is one. Nothing is written.
//!
//! Block states: FULLY_PRESENT reads the file; ZERO, UNDEFINED and UNMAPPED (3, and the 0.95
//! draft's 5, as qemu) read zeros; NOT_PRESENT reads zeros, or the parent in a differencing
//! file; PARTIALLY_PRESENT (differencing only) reads the file where the chunk's sector bitmap
//! has a 1 bit and the parent elsewhere. `map()`: FULLY_PRESENT is data, ZERO is zero,
//! NOT_PRESENT/UNDEFINED/UNMAPPED are unallocated (in a differencing file NOT_PRESENT is the
//! parent's map and UNDEFINED/UNMAPPED are zero).
//!
//! Parents: `relative_path` (Windows separators accepted), then `absolute_win32_path` when it
//! is a path this host can name (a drive-letter path is not), each under the backing policy
//! ([`crate::backing`]) with the chain's depth and loop checks; `volume_path` is never usable
//! here. The parent must be a VHDX whose DataWriteGuid equals `parent_linkage` (or
//! `parent_linkage2`); otherwise the image opens but reads that fall through to the parent
//! fail (the parent changed after the child was made), as for vmdk's CID.
//!
//! Deliberate differences from qemu: qemu refuses a file whose log needs replay when opened
//! read-only, and refuses differencing files; we read both. qemu reads only the first region
//! table; we fall back to the second when the first is damaged. Limits: logs of at most
//! [`log::MAX_LOG_BYTES`], 32 MiB of cached BAT pages, 16 MiB of cached bitmaps.

pub mod layout;
mod log;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use guestctl_block::{clip, BlockDevice, Error, ErrorKind, ExtentKind, Mapping, Result};
use serde_json::json;

use crate::cache::{read_or_zero, ChunkCache, TableCache};
use crate::parent::{map_through, read_through, Parent};
use crate::{Ctx, Format, FormatSpecific, Image, ImageInfo};
use layout::{
    BlockState, Guid, Header, MetadataTable, Params, ParentLocator, Region, RegionTable,
    TableError, HEADER_LEN, HEADER_OFFSETS, HEADER_SECTION, REGION_TABLE_OFFSETS, TABLE_LEN,
};

pub use log::MAX_LOG_BYTES;

/// BAT entries per cached page (64 KiB).
const BAT_PAGE: u64 = 8192;
/// BAT pages cached (32 MiB).
const BAT_PAGES_CACHED: usize = 512;
/// Per-block sector bitmaps cached (at most 64 KiB each: 16 MiB).
const BITMAPS_CACHED: usize = 256;
/// Bytes of metadata item read at most (the parent locator; items are at most 1 MiB).
const MAX_LOCATOR_BYTES: u32 = 1 << 20;

/// What a run of guest bytes maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// In this file at this offset.
    Data(u64),
    /// Zeros (ZERO; UNDEFINED and UNMAPPED in a differencing file).
    Zero,
    /// Not allocated, read as zeros (no parent).
    Unalloc,
    /// Read from the parent.
    Parent,
}

/// An open VHDX image as a block device.
#[derive(Debug)]
pub struct Vhdx {
    path: PathBuf,
    /// The file, through the replayed log when there was one.
    file: Arc<dyn BlockDevice>,
    params: Params,
    bat: Region,
    /// File ranges no payload block may overlap (header section, log, regions).
    reserved: Vec<(u64, u64)>,
    bat_cache: TableCache<u64>,
    bitmaps: ChunkCache,
    parent: Option<Parent>,
}

/// Reads `len` bytes at `off` of `file`, naming `what` in errors; the range must lie in the file.
fn read_struct(
    file: &dyn BlockDevice,
    path: &Path,
    off: u64,
    len: usize,
    what: &'static str,
) -> Result<Vec<u8>> {
    if off.checked_add(len as u64).is_none_or(|e| e > file.size()) {
        return Err(Error::corrupt(format!(
            "{len} bytes at {off:#x} run past the end of the file ({} bytes)",
            file.size()
        ))
        .path(path)
        .structure(what)
        .at(off));
    }
    let mut b = vec![0u8; len];
    file.read_exact_at(off, &mut b)
        .map_err(|e| e.path(path).structure(what).at(off))?;
    Ok(b)
}

fn table_error(e: TableError, path: &Path, what: &'static str, at: u64) -> Error {
    match e {
        TableError::Corrupt(m) => Error::corrupt(m),
        TableError::Unsupported(m) => Error::unsupported(m),
    }
    .path(path)
    .structure(what)
    .at(at)
}

/// Everything `open` learned before the parent is opened.
struct Opened {
    header: Header,
    header_index: usize,
    file: Arc<dyn BlockDevice>,
    regions: RegionTable,
    region_note: Option<String>,
    params: Params,
    locator: Option<ParentLocator>,
    log_note: Option<String>,
    log_entries: usize,
}

fn open_structures(file: Arc<dyn BlockDevice>, path: &Path) -> Result<Opened> {
    let size = file.size();
    let ident = read_struct(file.as_ref(), path, 0, 8, "vhdx file identifier")?;
    if ident != layout::SIGNATURE {
        return Err(Error::corrupt("no \"vhdxfile\" signature")
            .path(path)
            .structure("vhdx file identifier")
            .at(0));
    }
    let mut hs = [None, None];
    for (i, &off) in HEADER_OFFSETS.iter().enumerate() {
        if off + HEADER_LEN as u64 <= size {
            let b = read_struct(file.as_ref(), path, off, HEADER_LEN, "vhdx header")?;
            hs[i] = layout::parse_header(&b);
        }
    }
    let (header_index, header) = layout::current_header(hs).map_err(|m| {
        Error::corrupt(m)
            .path(path)
            .structure("vhdx header")
            .at(HEADER_OFFSETS[0])
    })?;
    let hdr_at = HEADER_OFFSETS[header_index];
    layout::check_header(&header, size).map_err(|m| {
        Error::corrupt(m)
            .path(path)
            .structure("vhdx header")
            .at(hdr_at)
    })?;

    // The log comes first: everything after the headers may be in it.
    let (file, log_note, log_entries) = if header.log_guid.is_zero() {
        (file, None, 0)
    } else {
        let r = log::replay(file.clone(), &header, path)?;
        let f: Arc<dyn BlockDevice> = match r.overlay {
            Some(o) => Arc::new(o),
            None => file,
        };
        (f, Some(r.note), r.entries)
    };

    let log_range = (
        header.log_offset,
        header.log_offset + u64::from(header.log_length),
    );
    let mut first_err = None;
    let mut regions = None;
    let mut region_note = None;
    for (i, &off) in REGION_TABLE_OFFSETS.iter().enumerate() {
        let b = read_struct(file.as_ref(), path, off, TABLE_LEN, "vhdx region table")?;
        match layout::parse_region_table(&b, log_range) {
            Ok(t) => {
                if i == 1 {
                    region_note = first_err.as_ref().map(|e: &Error| {
                        format!("the first region table is damaged ({e}); the second copy was used")
                    });
                }
                regions = Some(t);
                break;
            }
            Err(e @ TableError::Unsupported(_)) => {
                return Err(table_error(e, path, "vhdx region table", off))
            }
            Err(e) => {
                if first_err.is_none() {
                    first_err = Some(table_error(e, path, "vhdx region table", off));
                }
            }
        }
    }
    let regions = match (regions, first_err) {
        (Some(r), _) => r,
        (None, Some(e)) => return Err(e),
        (None, None) => {
            return Err(Error::corrupt("no region table")
                .path(path)
                .structure("vhdx region table"))
        }
    };

    let md = regions.metadata;
    let mb = read_struct(
        file.as_ref(),
        path,
        md.offset,
        TABLE_LEN,
        "vhdx metadata table",
    )?;
    let table = layout::parse_metadata_table(&mb, md.length)
        .map_err(|e| table_error(e, path, "vhdx metadata table", md.offset))?;
    let item = |it: Option<layout::Item>, name: &'static str, min: u32| -> Result<Vec<u8>> {
        let it = it.ok_or_else(|| {
            Error::corrupt(format!("the required metadata item {name} is missing"))
                .path(path)
                .structure("vhdx metadata table")
                .at(md.offset)
        })?;
        if it.length < min {
            return Err(Error::corrupt(format!(
                "metadata item {name} has {} bytes, fewer than its {min}",
                it.length
            ))
            .path(path)
            .structure("vhdx metadata")
            .at(md.offset + u64::from(it.offset)));
        }
        let len = it.length.min(MAX_LOCATOR_BYTES) as usize;
        read_struct(
            file.as_ref(),
            path,
            md.offset + u64::from(it.offset),
            len,
            "vhdx metadata",
        )
    };
    let MetadataTable {
        file_parameters,
        virtual_disk_size,
        page83,
        logical_sector_size,
        physical_sector_size,
        parent_locator,
    } = table;
    let params = layout::parse_params(
        &item(file_parameters, "file parameters", 8)?,
        &item(virtual_disk_size, "virtual disk size", 8)?,
        &item(logical_sector_size, "logical sector size", 4)?,
        &item(physical_sector_size, "physical sector size", 4)?,
        &item(page83, "page 83 data", 16)?,
    )
    .map_err(|m| {
        Error::corrupt(m)
            .path(path)
            .structure("vhdx metadata")
            .at(md.offset)
    })?;
    let locator = if params.has_parent {
        let b = item(parent_locator, "parent locator", 20)?;
        Some(
            layout::parse_parent_locator(&b)
                .map_err(|e| table_error(e, path, "vhdx parent locator", md.offset))?,
        )
    } else {
        None
    };
    let need = params.bat_entries().saturating_mul(8);
    if need > u64::from(regions.bat.length) {
        return Err(Error::corrupt(format!(
            "the BAT region ({} bytes) is too small for the {} entries of a {}-byte disk with \
             {}-byte blocks",
            regions.bat.length,
            params.bat_entries(),
            params.disk_size,
            params.block_size
        ))
        .path(path)
        .structure("vhdx region table")
        .at(REGION_TABLE_OFFSETS[0]));
    }
    if regions.bat.offset.saturating_add(need) > file.size() {
        return Err(Error::corrupt(format!(
            "the BAT ({need} bytes used at {:#x}) runs past the end of the file ({} bytes)",
            regions.bat.offset,
            file.size()
        ))
        .path(path)
        .structure("vhdx BAT")
        .at(regions.bat.offset));
    }
    Ok(Opened {
        header,
        header_index,
        file,
        regions,
        region_note,
        params,
        locator,
        log_note,
        log_entries,
    })
}

pub(crate) fn open(
    file: Arc<dyn BlockDevice>,
    path: &Path,
    allocated: u64,
    ctx: &Ctx<'_>,
) -> Result<Image> {
    let o = open_structures(file, path)?;
    let (parent, parent_info, parent_name) = match (&o.locator, ctx.follow_backing()) {
        (Some(loc), true) => {
            let (img, name) = open_parent(loc, path, ctx)?;
            let p = check_linkage(loc, &img, path);
            (Some(p), Some(img.info().clone()), Some(name))
        }
        _ => (None, None, None),
    };
    let mut info = info(&o, path, allocated);
    if let Some(pi) = parent_info {
        info.full_backing_filename = Some(pi.filename.clone());
        info.backing = Some(Box::new(pi));
    }
    if let (Some(n), Some(fs)) = (parent_name, info.format_specific.as_mut()) {
        fs.data.insert("parent-locator-used".into(), json!(n));
    }
    let h = &o.header;
    let reserved = vec![
        (0, HEADER_SECTION),
        (h.log_offset, h.log_offset + u64::from(h.log_length)),
        (o.regions.bat.offset, o.regions.bat.end()),
        (o.regions.metadata.offset, o.regions.metadata.end()),
    ];
    let bitmap_bytes = u64::from(o.params.block_size / o.params.logical_sector / 8);
    Ok(Image {
        device: Arc::new(Vhdx {
            path: path.to_path_buf(),
            file: o.file,
            params: o.params,
            bat: o.regions.bat,
            reserved,
            bat_cache: TableCache::new(BAT_PAGES_CACHED),
            bitmaps: ChunkCache::new(
                ((16u64 << 20) / bitmap_bytes.max(1)).clamp(1, BITMAPS_CACHED as u64) as usize,
            ),
            parent,
        }),
        info,
    })
}

fn info(o: &Opened, path: &Path, allocated: u64) -> ImageInfo {
    let p = &o.params;
    let mut info = ImageInfo::new(path, Format::Vhdx, p.disk_size, allocated);
    info.cluster_size = Some(u64::from(p.block_size));
    let sub = if p.has_parent {
        "differencing"
    } else if p.leave_allocated {
        "fixed"
    } else {
        "dynamic"
    };
    info.subformat = Some(sub.into());
    info.dirty = o.log_entries > 0;
    let mut data = BTreeMap::new();
    data.insert("subformat".into(), json!(sub));
    data.insert("block-size".into(), json!(p.block_size));
    data.insert("logical-sector-size".into(), json!(p.logical_sector));
    data.insert("physical-sector-size".into(), json!(p.physical_sector));
    data.insert("page83-id".into(), json!(p.page83.to_string()));
    data.insert(
        "data-write-guid".into(),
        json!(o.header.data_write_guid.to_string()),
    );
    data.insert(
        "file-write-guid".into(),
        json!(o.header.file_write_guid.to_string()),
    );
    data.insert("header-sequence".into(), json!(o.header.sequence));
    data.insert("current-header".into(), json!(o.header_index + 1));
    data.insert("log-size".into(), json!(o.header.log_length));
    data.insert("log-replayed-entries".into(), json!(o.log_entries));
    if let Some(n) = &o.log_note {
        data.insert("log".into(), json!(n));
    }
    if let Some(n) = &o.region_note {
        data.insert("region-table".into(), json!(n));
    }
    if let Some(loc) = &o.locator {
        let kv: serde_json::Map<String, serde_json::Value> = loc
            .entries
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        data.insert("parent-locator".into(), serde_json::Value::Object(kv));
        info.backing_filename = loc
            .get("relative_path")
            .or_else(|| loc.get("absolute_win32_path"))
            .map(str::to_string);
        info.backing_format = Some("vhdx".into());
    }
    info.format_specific = Some(FormatSpecific {
        kind: "vhdx".into(),
        data,
    });
    info
}

/// A locator path in a form this host can open: Windows separators become `/`; drive-letter
/// and volume paths cannot be named here (None).
fn host_name(value: &str) -> Option<String> {
    let b = value.as_bytes();
    if b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic() {
        return None;
    }
    if value.starts_with("\\\\?\\") || value.starts_with("\\\\.\\") {
        return None;
    }
    Some(value.replace('\\', "/"))
}

/// Opens the parent named by the locator; returns it and the locator key that found it.
fn open_parent(loc: &ParentLocator, path: &Path, ctx: &Ctx<'_>) -> Result<(Image, String)> {
    let mut tried = Vec::new();
    let mut refusal = None;
    for key in ["relative_path", "volume_path", "absolute_win32_path"] {
        let Some(value) = loc.get(key) else {
            continue;
        };
        let Some(name) = host_name(value) else {
            tried.push(format!(
                "{key} {value:?} (a Windows drive or volume path: not usable on this host)"
            ));
            continue;
        };
        match ctx.resolve(path, &name, "parent") {
            Ok(p) if p.is_file() => {
                let img = ctx.open_backing(path, &name, None)?;
                if img.info().format != Format::Vhdx {
                    return Err(Error::unsupported(format!(
                        "parent {value:?} is a {} image; a VHDX differencing file's parent must \
                         be VHDX",
                        img.info().format
                    ))
                    .path(path)
                    .structure("vhdx parent locator"));
                }
                return Ok((img, key.to_string()));
            }
            Ok(p) => tried.push(format!("{key} {value:?} ({} does not exist)", p.display())),
            Err(e) => {
                tried.push(format!("{key} {value:?} ({})", e.message()));
                refusal.get_or_insert(e);
            }
        }
    }
    let what = if tried.is_empty() {
        "the parent locator names no path".to_string()
    } else {
        tried.join("; ")
    };
    let kind = if refusal.is_some() {
        ErrorKind::Refused
    } else {
        ErrorKind::Io
    };
    Err(Error::new(
        kind,
        format!("cannot find the parent of this differencing VHDX: tried {what}"),
    )
    .path(path)
    .structure("vhdx parent locator"))
}

/// The parent, refused for reads unless its DataWriteGuid is the child's parent_linkage.
fn check_linkage(loc: &ParentLocator, img: &Image, path: &Path) -> Parent {
    let have = img
        .info()
        .format_specific
        .as_ref()
        .and_then(|f| f.data.get("data-write-guid"))
        .and_then(serde_json::Value::as_str)
        .and_then(Guid::parse);
    let wants: Vec<Guid> = ["parent_linkage", "parent_linkage2"]
        .iter()
        .filter_map(|k| loc.get(k).and_then(Guid::parse))
        .filter(|g| !g.is_zero())
        .collect();
    let mut p = Parent::new(img.device(), path.to_path_buf(), "vhdx parent locator");
    let ok = have.is_some_and(|h| wants.contains(&h));
    if !ok {
        p.refuse = Some(format!(
            "the parent {:?} has DataWriteGuid {} but this differencing file expects \
             parent_linkage {}: the parent changed after the child was made, so data cannot \
             be read through it",
            img.info().filename,
            have.map_or("(none)".into(), |g| g.to_string()),
            loc.get("parent_linkage").unwrap_or("(none)")
        ));
    }
    p
}

impl Vhdx {
    fn corrupt(&self, what: &'static str, msg: String, at: u64) -> Error {
        Error::corrupt(msg).path(&self.path).structure(what).at(at)
    }

    /// The BAT entry at index `i` (< bat_entries).
    fn bat_entry(&self, i: u64) -> Result<u64> {
        let page = i / BAT_PAGE;
        let t = self.bat_cache.get_or_load(page, || {
            let first = page * BAT_PAGE;
            let n = BAT_PAGE.min(self.params.bat_entries().saturating_sub(first));
            let at = self.bat.offset + first * 8;
            let raw = read_struct(
                self.file.as_ref(),
                &self.path,
                at,
                (n * 8) as usize,
                "vhdx BAT",
            )?;
            Ok(raw
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect())
        })?;
        t.get((i % BAT_PAGE) as usize).copied().ok_or_else(|| {
            self.corrupt(
                "vhdx BAT",
                format!("entry {i} is past the BAT"),
                self.bat.offset,
            )
        })
    }

    /// The file offset of a present block, checked against the reserved ranges.
    fn block_offset(&self, entry: u64, idx: u64) -> Result<u64> {
        let off = layout::entry_offset(entry);
        let Some(end) = off.checked_add(u64::from(self.params.block_size)) else {
            return Err(self.corrupt(
                "vhdx BAT",
                format!("payload block offset {off:#x} overflows"),
                self.bat.offset + idx * 8,
            ));
        };
        if let Some(r) = self.reserved.iter().find(|r| off < r.1 && r.0 < end) {
            return Err(self.corrupt(
                "vhdx BAT",
                format!(
                    "payload block at file offset {off:#x} overlaps file structures at \
                     {:#x}..{:#x}",
                    r.0, r.1
                ),
                self.bat.offset + idx * 8,
            ));
        }
        Ok(off)
    }

    /// The sector bitmap bytes of payload block `block` (PARTIALLY_PRESENT).
    fn block_bitmap(&self, block: u64) -> Result<Arc<[u8]>> {
        self.bitmaps.get_or_load(block, || {
            let p = &self.params;
            let cr = p.chunk_ratio();
            let (chunk, in_chunk) = (block / cr, block % cr);
            let si = p.bitmap_index(chunk);
            let e = self.bat_entry(si)?;
            if e & 7 != layout::SB_BLOCK_PRESENT {
                return Err(self.corrupt(
                    "vhdx BAT",
                    format!(
                        "block {block} is partially present but the sector bitmap of its chunk \
                         is not (state {})",
                        e & 7
                    ),
                    self.bat.offset + si * 8,
                ));
            }
            let bm = layout::entry_offset(e);
            let sectors_per_block = u64::from(p.block_size / p.logical_sector);
            let len = sectors_per_block / 8;
            let at = bm + in_chunk * len;
            let mut b = vec![0u8; len as usize];
            read_or_zero(self.file.as_ref(), at, &mut b)?;
            Ok(b)
        })
    }

    /// Calls `f(kind, guest offset, bytes)` for the runs of `[offset, offset + total)`.
    fn runs(
        &self,
        offset: u64,
        total: u64,
        mut f: impl FnMut(Kind, u64, u64) -> Result<()>,
    ) -> Result<()> {
        let mut done = 0u64;
        while done < total {
            let (kind, len) = self.lookup(offset + done, total - done)?;
            f(kind, offset + done, len)?;
            done += len;
        }
        Ok(())
    }

    /// What `guest` maps to and for how many bytes (at most `max`, at least 1).
    fn lookup(&self, guest: u64, max: u64) -> Result<(Kind, u64)> {
        let p = &self.params;
        let bs = u64::from(p.block_size);
        let diff = p.has_parent;
        let one = |block: u64, within: u64| -> Result<(Kind, u64)> {
            let idx = p.payload_index(block);
            let e = self.bat_entry(idx)?;
            let left = bs - within;
            Ok(match BlockState::of(e) {
                BlockState::FullyPresent => (Kind::Data(self.block_offset(e, idx)? + within), left),
                BlockState::Zero => (Kind::Zero, left),
                BlockState::Undefined | BlockState::Unmapped if diff => (Kind::Zero, left),
                BlockState::Undefined | BlockState::Unmapped => (Kind::Unalloc, left),
                BlockState::NotPresent if diff => (Kind::Parent, left),
                BlockState::NotPresent => (Kind::Unalloc, left),
                BlockState::PartiallyPresent if diff => {
                    let off = self.block_offset(e, idx)?;
                    let bm = self.block_bitmap(block)?;
                    let ls = u64::from(p.logical_sector);
                    let s0 = within / ls;
                    let bit = |s: u64| bm[(s / 8) as usize] >> (s % 8) & 1 == 1;
                    let present = bit(s0);
                    let spb = bs / ls;
                    let mut s = s0 + 1;
                    while s < spb && bit(s) == present && (s - s0) * ls < max {
                        s += 1;
                    }
                    let len = s * ls - within;
                    if present {
                        (Kind::Data(off + within), len)
                    } else {
                        (Kind::Parent, len)
                    }
                }
                BlockState::PartiallyPresent => {
                    return Err(self.corrupt(
                        "vhdx BAT",
                        format!("block {block} is PARTIALLY_PRESENT in a file without a parent"),
                        self.bat.offset + idx * 8,
                    ))
                }
                BlockState::Reserved(s) => {
                    return Err(self.corrupt(
                        "vhdx BAT",
                        format!("block {block} has the reserved state {s}"),
                        self.bat.offset + idx * 8,
                    ))
                }
            })
        };
        let (kind, mut len) = one(guest / bs, guest % bs)?;
        // Whole following blocks of the same kind (and contiguous in the file) join the run.
        while len < max && (guest + len) % bs == 0 {
            let block = (guest + len) / bs;
            if block >= p.data_blocks() {
                break;
            }
            let (next, l) = one(block, 0)?;
            let same = match (kind, next) {
                (Kind::Data(a), Kind::Data(b)) => a.checked_add(len) == Some(b),
                (a, b) => a == b,
            };
            if !same {
                break;
            }
            len += l;
        }
        Ok((kind, len.min(max)))
    }
}

impl BlockDevice for Vhdx {
    fn size(&self) -> u64 {
        self.params.disk_size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let (offset, total) = clip(offset, buf.len() as u64, self.params.disk_size);
        self.runs(offset, total, |kind, pos, len| {
            let at = (pos - offset) as usize;
            let out = &mut buf[at..at + len as usize];
            match kind {
                Kind::Data(host) => read_or_zero(self.file.as_ref(), host, out),
                Kind::Zero | Kind::Unalloc => {
                    out.fill(0);
                    Ok(())
                }
                Kind::Parent => read_through(self.parent.as_ref(), pos, out),
            }
        })?;
        Ok(total as usize)
    }

    fn map(&self, offset: u64, len: u64) -> Result<Mapping> {
        let (offset, total) = clip(offset, len, self.params.disk_size);
        let mut m = Mapping::new();
        self.runs(offset, total, |kind, pos, len| {
            match kind {
                Kind::Data(_) => m.push(pos, len, ExtentKind::Data),
                Kind::Zero => m.push(pos, len, ExtentKind::Zero),
                Kind::Unalloc => m.push(pos, len, ExtentKind::Unallocated),
                Kind::Parent => map_through(self.parent.as_ref(), pos, len, &mut m)?,
            }
            Ok(())
        })?;
        Ok(m)
    }
}

/// The fuzz target's input decoder, shared with the regression tests: a VHDX is megabytes
/// of mostly zeros, so the input is a sparse description of one, and the checksums the
/// fuzzer cannot compute are optionally fixed up so the mutations reach the metadata, BAT
/// and log code behind them.
///
/// Layout: flags (bit 0: fix both headers' CRC-32C, bit 1: both region tables', bit 2: the
/// log entries' of the current header's log), the file size in 64 KiB units (u16, at most
/// 16 MiB), then patches `(offset: u32, len: u16, bytes)` applied in order (clipped).
#[doc(hidden)]
pub fn fuzz_expand(data: &[u8]) -> Vec<u8> {
    let flags = data.first().copied().unwrap_or(0);
    let units = data
        .get(1..3)
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
    let size = (usize::from(units) << 16).min(16 << 20);
    let mut img = vec![0u8; size];
    let mut p = 3usize;
    while let Some(h) = data.get(p..p + 6) {
        let off = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let len = usize::from(u16::from_le_bytes([h[4], h[5]]));
        let bytes = data
            .get(p + 6..(p + 6 + len).min(data.len()))
            .unwrap_or(&[]);
        if off < size {
            let n = bytes.len().min(size - off);
            img[off..off + n].copy_from_slice(&bytes[..n]);
        }
        p += 6 + len;
    }
    let fix = |img: &mut [u8], at: usize, len: usize| {
        if let Some(b) = img.get_mut(at..at + len) {
            let c = layout::checksum(b, 4);
            b[4..8].copy_from_slice(&c.to_le_bytes());
        }
    };
    if flags & 1 != 0 {
        for off in HEADER_OFFSETS {
            fix(&mut img, off as usize, HEADER_LEN);
        }
    }
    if flags & 2 != 0 {
        for off in REGION_TABLE_OFFSETS {
            fix(&mut img, off as usize, TABLE_LEN);
        }
    }
    if flags & 4 != 0 {
        let hs = HEADER_OFFSETS.map(|o| {
            img.get(o as usize..o as usize + HEADER_LEN)
                .and_then(layout::parse_header)
        });
        if let Ok((_, h)) = layout::current_header(hs) {
            let start = h.log_offset.min(size as u64) as usize;
            let end =
                (h.log_offset.saturating_add(u64::from(h.log_length))).min(size as u64) as usize;
            let mut pos = start;
            while pos + 64 <= end {
                if &img[pos..pos + 4] == b"loge" {
                    let len = u32::from_le_bytes([
                        img[pos + 8],
                        img[pos + 9],
                        img[pos + 10],
                        img[pos + 11],
                    ]) as usize;
                    if len >= 64 && pos + len <= end {
                        fix(&mut img, pos, len);
                    }
                }
                pos += 4096;
            }
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(host_name(".\\a b.avhdx").as_deref(), Some("./a b.avhdx"));
        assert_eq!(host_name("C:\\x\\y.vhdx"), None);
        assert_eq!(host_name("\\\\?\\Volume{1}\\y.vhdx"), None);
        assert_eq!(host_name("sub/p.vhdx").as_deref(), Some("sub/p.vhdx"));
    }
}
