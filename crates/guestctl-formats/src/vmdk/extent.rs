//! Reading one hosted sparse extent: grain directory, cached grain tables, plain and
//! compressed grains, and the caches all extents of an image share.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use guestctl_block::{BlockDevice, Error, ExtentKind, Mapping, Result};

use super::sparse::{self, SparseHeader};
use crate::cache::{poisoned, read_or_zero, ChunkCache};
use crate::decompress::{decompress, Codec};
use crate::parent::{map_through, read_through};

/// Bytes of grain tables cached per image (all extents together).
const GT_CACHE_BYTES: usize = 32 << 20;
/// Bookkeeping bytes charged per cached table on top of its entries.
const GT_OVERHEAD: usize = 96;
/// Bytes of decompressed grains cached per image for reads smaller than a grain.
const GRAIN_CACHE_BYTES: u64 = 4 << 20;
/// Most decompressed grains cached.
const GRAIN_CACHE_MAX: u64 = 16;

/// Caches shared by every sparse extent of one image, so that an image of many extents
/// (up to [`super::descriptor::MAX_EXTENTS`]) still has one memory bound.
#[derive(Debug)]
pub(super) struct Caches {
    gts: GtCache,
    grains: ChunkCache,
}

impl Caches {
    /// Caches sized for an image whose largest compressed grain is `grain` bytes.
    pub(super) fn new(max_compressed_grain: u64) -> Self {
        let n = (GRAIN_CACHE_BYTES / max_compressed_grain.max(1)).clamp(1, GRAIN_CACHE_MAX);
        Caches {
            gts: GtCache::new(GT_CACHE_BYTES),
            grains: ChunkCache::new(n as usize),
        }
    }
}

/// A least-recently-used cache of grain tables with a byte budget: lookups and evictions in
/// O(log n), the lock never held during I/O.
#[derive(Debug)]
struct GtCache {
    inner: Mutex<GtInner>,
    budget: usize,
}

#[derive(Debug, Default)]
struct GtInner {
    tables: HashMap<u64, (Arc<[u32]>, u64)>,
    by_use: BTreeMap<u64, u64>,
    tick: u64,
    bytes: usize,
}

fn table_cost(t: &[u32]) -> usize {
    t.len() * 4 + GT_OVERHEAD
}

impl GtCache {
    fn new(budget: usize) -> Self {
        GtCache {
            inner: Mutex::new(GtInner::default()),
            budget,
        }
    }

    fn get(&self, key: u64) -> Result<Option<Arc<[u32]>>> {
        let mut g = self.inner.lock().map_err(|_| poisoned())?;
        let GtInner {
            tables,
            by_use,
            tick,
            ..
        } = &mut *g;
        Ok(tables.get_mut(&key).map(|(t, used)| {
            by_use.remove(used);
            *tick += 1;
            *used = *tick;
            by_use.insert(*tick, key);
            t.clone()
        }))
    }

    fn insert(&self, key: u64, table: Arc<[u32]>) -> Result<Arc<[u32]>> {
        if let Some(t) = self.get(key)? {
            // Another reader loaded it meanwhile.
            return Ok(t);
        }
        let mut g = self.inner.lock().map_err(|_| poisoned())?;
        g.tick += 1;
        let tick = g.tick;
        g.bytes += table_cost(&table);
        g.tables.insert(key, (table.clone(), tick));
        g.by_use.insert(tick, key);
        while g.bytes > self.budget && g.tables.len() > 1 {
            let Some((_, old)) = g.by_use.pop_first() else {
                break;
            };
            if let Some((t, _)) = g.tables.remove(&old) {
                g.bytes -= table_cost(&t);
            }
        }
        Ok(table)
    }
}

/// What a run of extent bytes is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Plain data at this byte offset of the extent file.
    Data(u64),
    /// A zeroed grain (GTE 1 with the zeroed-grain flag).
    Zero,
    /// Not allocated here (GTE 0 or no grain table): the parent's data, or zeros.
    Unalloc,
    /// A compressed grain whose GTE is this sector.
    Compressed(u32),
}

impl Kind {
    fn is_data(self) -> bool {
        matches!(self, Kind::Data(_) | Kind::Compressed(_))
    }
}

pub(super) use crate::parent::Parent;

/// One hosted sparse extent file.
#[derive(Debug)]
pub(super) struct SparseExtent {
    /// Distinguishes this extent's entries in the shared caches.
    id: u64,
    path: PathBuf,
    file: Arc<dyn BlockDevice>,
    pub(super) header: SparseHeader,
    gd: Box<[u32]>,
    /// Byte offset of the grain directory.
    gd_offset: u64,
}

impl SparseExtent {
    /// Opens the sparse extent in `file` (named `path` in errors). `id` must be unique among
    /// the extents sharing one [`Caches`] (at most 2^12). `gd_budget` is the number of grain
    /// directory entries the image may still load; this extent's are taken from it.
    pub(super) fn open(
        file: Arc<dyn BlockDevice>,
        path: &Path,
        id: u64,
        gd_budget: &mut u64,
    ) -> Result<Self> {
        const HDR: &str = "vmdk sparse header";
        let size = file.size();
        let mut hb = [0u8; sparse::HEADER_LEN];
        if size < hb.len() as u64 {
            return Err(Error::corrupt(format!(
                "file of {size} bytes is too short for a sparse header (512 bytes)"
            ))
            .path(path)
            .structure(HDR)
            .at(0));
        }
        file.read_exact_at(0, &mut hb).map_err(|e| e.path(path))?;
        if &hb[0..4] == sparse::COWD_MAGIC {
            return Err(Error::unsupported(
                "COWD (ESX vmfsSparse) extents are not read; only hosted sparse (KDMV) ones are",
            )
            .path(path)
            .structure(HDR)
            .at(0));
        }
        let mut header = sparse::parse(&hb).map_err(|e| e.path(path))?;
        if header.gd_at_end() {
            // streamOptimized written in one pass: the footer, 1 KiB before the end (between
            // a footer marker and the end-of-stream marker), holds the real gdOffset and
            // takes precedence over the header.
            let tail_len = sparse::FOOTER_TAIL_LEN as u64;
            if size < tail_len + 512 {
                return Err(
                    Error::corrupt("gdOffset is -1 but the file has no room for a footer")
                        .path(path)
                        .structure(HDR)
                        .at(56),
                );
            }
            let at = size - tail_len;
            let mut tail = vec![0u8; sparse::FOOTER_TAIL_LEN];
            file.read_exact_at(at, &mut tail)
                .map_err(|e| e.path(path))?;
            header = sparse::parse_footer(&tail, at).map_err(|e| e.path(path))?;
        }
        // qemu: "File truncated, expecting at least N bytes".
        if header.overhead > size.div_ceil(512) {
            return Err(Error::corrupt(format!(
                "file is truncated: overHead is {} sectors but the file has {size} bytes",
                header.overhead
            ))
            .path(path)
            .structure(HDR)
            .at(64));
        }
        let n = header.gd_entries();
        *gd_budget = gd_budget.checked_sub(n).ok_or_else(|| {
            Error::refused(format!(
                "grain directories of this image's extents exceed {} entries ({} MiB) in all",
                sparse::MAX_IMAGE_GD_ENTRIES,
                (sparse::MAX_IMAGE_GD_ENTRIES * 4) >> 20
            ))
            .path(path)
            .structure("vmdk grain directory")
            .at(header.gd_offset.saturating_mul(512))
        })?;
        // Checked by sparse::parse: gd_offset * 512 does not overflow, n * 4 <= 64 MiB.
        let gd_offset = header.gd_offset * 512;
        let gd_bytes = n * 4;
        if gd_offset.checked_add(gd_bytes).is_none_or(|e| e > size) {
            return Err(Error::corrupt(format!(
                "grain directory of {n} entries runs past the end of the file ({size} bytes)"
            ))
            .path(path)
            .structure("vmdk grain directory")
            .at(gd_offset));
        }
        let mut raw = vec![0u8; gd_bytes as usize];
        file.read_exact_at(gd_offset, &mut raw)
            .map_err(|e| e.path(path))?;
        Ok(SparseExtent {
            id,
            path: path.to_path_buf(),
            file,
            gd: sparse::decode_table(&raw),
            header,
            gd_offset,
        })
    }

    /// Extent size in bytes (the header's capacity, as qemu uses it).
    pub(super) fn size(&self) -> u64 {
        self.header.capacity_bytes()
    }

    fn corrupt(&self, what: &'static str, msg: String, off: u64) -> Error {
        Error::corrupt(msg).path(&self.path).structure(what).at(off)
    }

    fn grain_table(&self, caches: &Caches, gd_idx: u64) -> Result<Option<Arc<[u32]>>> {
        let entry_at = self.gd_offset + gd_idx * 4;
        let Some(&sector) = usize::try_from(gd_idx).ok().and_then(|i| self.gd.get(i)) else {
            return Err(self.corrupt(
                "vmdk grain directory",
                format!("no entry {gd_idx} (the directory has {})", self.gd.len()),
                entry_at,
            ));
        };
        if sector == 0 {
            return Ok(None);
        }
        let off = u64::from(sector) * 512;
        // off < 2^41 and id < 2^12: the key is unique per extent and table.
        let key = (self.id << 44) | off;
        if let Some(t) = caches.gts.get(key)? {
            return Ok(Some(t));
        }
        let n = self.header.gt_bytes();
        if off.checked_add(n).is_none_or(|e| e > self.file.size()) {
            return Err(self.corrupt(
                "vmdk grain directory",
                format!(
                    "entry {gd_idx} points at a grain table at {off:#x}, past the end of the file"
                ),
                entry_at,
            ));
        }
        let mut raw = vec![0u8; n as usize];
        self.file
            .read_exact_at(off, &mut raw)
            .map_err(|e| e.path(&self.path).structure("vmdk grain table").at(off))?;
        let table: Arc<[u32]> = sparse::decode_table(&raw).into();
        caches.gts.insert(key, table).map(Some)
    }

    fn classify(&self, gte: u32) -> Kind {
        match gte {
            0 => Kind::Unalloc,
            1 if self.header.zeroed_gte() => Kind::Zero,
            s if self.header.compressed() => Kind::Compressed(s),
            s => Kind::Data(u64::from(s) * 512),
        }
    }

    /// What extent offset `off` (< size) maps to, for how many bytes (1..=max, within one
    /// grain table). Plain grains whose data is contiguous in the file are merged into one
    /// run; with `any_data` (for `map`), every allocated grain is merged with the next.
    pub(super) fn lookup(
        &self,
        caches: &Caches,
        off: u64,
        max: u64,
        any_data: bool,
    ) -> Result<(Kind, u64)> {
        let grain = self.header.grain_bytes();
        let cover = self.header.gt_coverage();
        let max = max
            .min(cover - off % cover)
            .min(self.size().saturating_sub(off));
        let Some(gt) = self.grain_table(caches, off / cover)? else {
            return Ok((Kind::Unalloc, max));
        };
        let first = ((off % cover) / grain) as usize;
        let skip = off % grain;
        let Some(&gte) = gt.get(first) else {
            return Ok((Kind::Unalloc, max));
        };
        let kind = match self.classify(gte) {
            Kind::Data(h) => Kind::Data(h + skip),
            k => k,
        };
        let mut len = grain - skip;
        if matches!(kind, Kind::Compressed(_)) && !any_data {
            return Ok((kind, len.min(max)));
        }
        for &next in gt.iter().skip(first + 1) {
            if len >= max {
                break;
            }
            let same = match (kind, self.classify(next)) {
                (Kind::Data(a), Kind::Data(b)) => any_data || a.checked_add(len) == Some(b),
                (a, b) if any_data && a.is_data() && b.is_data() => true,
                (Kind::Zero, Kind::Zero) | (Kind::Unalloc, Kind::Unalloc) => true,
                _ => false,
            };
            if !same {
                break;
            }
            len += grain;
        }
        Ok((kind, len.min(max)))
    }

    /// Inflates the compressed grain whose GTE is `sector` into `out` (one grain); returns
    /// the bytes produced.
    fn inflate(&self, sector: u32, out: &mut [u8]) -> Result<usize> {
        let at = u64::from(sector) * 512;
        let grain = self.header.grain_bytes();
        let file_size = self.file.size();
        let (data_at, len) = if self.header.markers() {
            let mut m = [0u8; sparse::GRAIN_MARKER_LEN];
            if at.saturating_add(m.len() as u64) > file_size {
                return Err(self.corrupt(
                    "vmdk grain marker",
                    "grain marker past the end of the file".into(),
                    at,
                ));
            }
            self.file
                .read_exact_at(at, &mut m)
                .map_err(|e| e.path(&self.path).at(at))?;
            let (_lba, size) = sparse::parse_grain_marker(&m);
            // qemu's bound: the compressed data fits in two grains.
            if size == 0 || u64::from(size) > 2 * grain {
                return Err(self.corrupt(
                    "vmdk grain marker",
                    format!(
                        "grain marker says {size} compressed bytes (1..={} allowed)",
                        2 * grain
                    ),
                    at,
                ));
            }
            (at + sparse::GRAIN_MARKER_LEN as u64, u64::from(size))
        } else {
            // No marker: the stream ends by itself; read at most two grains of it.
            (at, (2 * grain).min(file_size.saturating_sub(at)))
        };
        if len == 0 || data_at.checked_add(len).is_none_or(|e| e > file_size) {
            return Err(self.corrupt(
                "vmdk compressed grain",
                "compressed grain runs past the end of the file".into(),
                at,
            ));
        }
        let mut input = vec![0u8; len as usize];
        self.file
            .read_exact_at(data_at, &mut input)
            .map_err(|e| e.path(&self.path).at(data_at))?;
        decompress(Codec::Zlib, &input, out)
            .map_err(|e| e.path(&self.path).structure("vmdk compressed grain").at(at))
    }

    /// Copies `out.len()` bytes from `skip` into the compressed grain at `sector`. Like qemu,
    /// reading bytes the grain's data does not cover is an error (only the last grain of a
    /// disk may be compressed short, and reads never go past the disk's end).
    fn read_compressed(
        &self,
        caches: &Caches,
        sector: u32,
        skip: usize,
        out: &mut [u8],
    ) -> Result<()> {
        let grain = self.header.grain_bytes() as usize;
        let want = skip + out.len();
        let short = |got: usize| {
            self.corrupt(
                "vmdk compressed grain",
                format!("grain inflates to {got} bytes; bytes {skip}..{want} were read"),
                u64::from(sector) * 512,
            )
        };
        if skip == 0 && out.len() == grain {
            // A whole grain: inflate straight into the caller's buffer.
            let got = self.inflate(sector, out)?;
            return if got == grain {
                Ok(())
            } else {
                Err(short(got))
            };
        }
        let key = (self.id << 32) | u64::from(sector);
        let g = caches.grains.get_or_load(key, || {
            let mut v = vec![0u8; grain];
            let got = self.inflate(sector, &mut v)?;
            v.truncate(got);
            Ok(v)
        })?;
        match g.get(skip..skip + out.len()) {
            Some(src) => {
                out.copy_from_slice(src);
                Ok(())
            }
            None => Err(short(g.len())),
        }
    }

    /// Reads extent bytes `[off, off + buf.len())` (within the extent); unallocated grains come
    /// from `parent` at guest offset `base + off`, or are zeros.
    pub(super) fn read(
        &self,
        caches: &Caches,
        off: u64,
        buf: &mut [u8],
        base: u64,
        parent: Option<&Parent>,
    ) -> Result<()> {
        let grain = self.header.grain_bytes();
        let total = buf.len() as u64;
        let mut done = 0u64;
        while done < total {
            let pos = off + done;
            let (kind, len) = self.lookup(caches, pos, total - done, false)?;
            if len == 0 {
                // Past the extent's capacity (callers clip; never loop on it).
                buf[done as usize..].fill(0);
                break;
            }
            let out = &mut buf[done as usize..(done + len) as usize];
            match kind {
                // Like qemu, data past the end of the file reads as zeros.
                Kind::Data(host) => {
                    read_or_zero(self.file.as_ref(), host, out).map_err(|e| e.path(&self.path))?
                }
                Kind::Zero => out.fill(0),
                Kind::Unalloc => read_through(parent, base + pos, out)?,
                Kind::Compressed(sector) => {
                    self.read_compressed(caches, sector, (pos % grain) as usize, out)?
                }
            }
            done += len;
        }
        Ok(())
    }

    /// Appends the mapping of extent bytes `[off, off + len)` (guest offsets: `base + off`).
    pub(super) fn map(
        &self,
        caches: &Caches,
        off: u64,
        len: u64,
        base: u64,
        parent: Option<&Parent>,
        m: &mut Mapping,
    ) -> Result<()> {
        let mut done = 0;
        while done < len {
            let pos = off + done;
            let (kind, n) = self.lookup(caches, pos, len - done, true)?;
            let g = base + pos;
            if n == 0 {
                m.push(g, len - done, ExtentKind::Zero);
                break;
            }
            match kind {
                Kind::Data(_) | Kind::Compressed(_) => m.push(g, n, ExtentKind::Data),
                Kind::Zero => m.push(g, n, ExtentKind::Zero),
                Kind::Unalloc => map_through(parent, g, n, m)?,
            }
            done += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gt_cache_is_lru_within_its_budget() {
        let c = GtCache::new(3 * table_cost(&[0u32; 4]));
        let t = |v: u32| -> Arc<[u32]> { vec![v; 4].into() };
        c.insert(1, t(1)).expect("1");
        c.insert(2, t(2)).expect("2");
        c.insert(3, t(3)).expect("3");
        assert!(c.get(1).expect("get").is_some()); // 2 is now the least recent
        c.insert(4, t(4)).expect("4");
        assert!(c.get(2).expect("get").is_none());
        assert_eq!(c.get(1).expect("get").expect("kept")[0], 1);
        assert_eq!(c.get(4).expect("get").expect("kept")[0], 4);
        // Inserting a key already present keeps the first table.
        assert_eq!(c.insert(4, t(9)).expect("again")[0], 4);
        let g = c.inner.lock().expect("lock");
        assert_eq!(g.tables.len(), g.by_use.len());
        assert!(g.bytes <= 3 * table_cost(&[0u32; 4]));
    }

    #[test]
    fn one_oversized_table_is_still_cached() {
        let c = GtCache::new(10);
        c.insert(7, vec![1u32; 512].into()).expect("big");
        assert!(c.get(7).expect("get").is_some());
        c.insert(8, vec![2u32; 512].into()).expect("big");
        assert!(c.get(7).expect("get").is_none());
        assert!(c.get(8).expect("get").is_some());
    }
}
