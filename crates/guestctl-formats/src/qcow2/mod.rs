//! qcow2 (v2 and v3) reader: every cluster size from 512 B to 2 MiB, zero clusters, zlib and
//! zstd compressed clusters, extended L2 entries (sub-clusters), external data files and backing
//! chains. Internal snapshots are ignored (the active L1 table is read). Encrypted images are
//! refused.
//!
//! The L1 table is loaded at open (bounded by [`header::MAX_L1_BYTES`]); L2 tables are read on
//! demand into a bounded cache. Table look-ups happen under a short lock; data reads happen
//! outside it, coalesced over host-contiguous clusters.

pub mod header;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use guestctl_block::{clip, BlockDevice, Error, ExtentKind, Mapping, RawFile, Result};
use serde_json::json;

use crate::cache::{read_or_zero, ChunkCache, TableCache};
use crate::decompress::{decompress, Codec};
use crate::parent::{map_through, read_through, Parent};
use crate::{Ctx, Format, FormatSpecific, Image, ImageInfo};
pub use header::{Compression, Header};

/// Host-offset bits of L1 and standard L2 entries.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const L2E_COMPRESSED: u64 = 1 << 62;
const L2E_COPIED: u64 = 1 << 63;
const L2E_ZERO: u64 = 1;
/// Bytes of L2 tables the cache keeps at most (at least [`MIN_CACHED_TABLES`] tables).
const L2_CACHE_BYTES: u64 = 32 << 20;
const MIN_CACHED_TABLES: usize = 16;
const MAX_CACHED_TABLES: usize = 4096;
/// Decompressed clusters kept for reads smaller than a cluster.
const COMPRESSED_CACHE: usize = 8;
/// Whole compressed clusters decompressed from one read of their host span at most.
const MAX_RUN_CLUSTERS: usize = 64;
/// Host bytes one such read spans at most.
const MAX_RUN_SPAN: u64 = 2 << 20;
/// Unused host bytes allowed between the compressed clusters of one read.
const RUN_GAP: u64 = 4096;
/// A thread keeps its compressed-input buffer when it is at most this big.
const MAX_SPAN_BUF: usize = 4 << 20;

thread_local! {
    /// Compressed input of [`Qcow2::read_compressed_run`], reused.
    static SPAN_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// What a run of guest bytes maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Host data at this offset (in the data file when there is one).
    Data(u64),
    /// Reads as zeros.
    Zero,
    /// Not allocated here: backing file or zeros.
    Unalloc,
    /// One compressed cluster with this L2 descriptor.
    Compressed(u64),
}

/// An open qcow2 image as a block device.
#[derive(Debug)]
pub struct Qcow2 {
    path: PathBuf,
    file: Arc<dyn BlockDevice>,
    data_file: Option<RawFile>,
    header: Header,
    l1: Box<[u64]>,
    l2_cache: TableCache<u64>,
    zcache: ChunkCache,
    backing: Option<Parent>,
}

pub(crate) fn open(
    file: Arc<dyn BlockDevice>,
    path: &Path,
    allocated: u64,
    ctx: &Ctx<'_>,
) -> Result<Image> {
    let (q, backing) = Qcow2::open_file(file, path, ctx)?;
    let mut info = q.info(allocated);
    if let Some(b) = backing {
        info.full_backing_filename = Some(b.filename.clone());
        info.backing = Some(Box::new(b));
    }
    Ok(Image {
        device: Arc::new(q),
        info,
    })
}

impl Qcow2 {
    fn info(&self, allocated: u64) -> ImageInfo {
        let h = &self.header;
        let mut info = ImageInfo::new(
            &self.path,
            Format::Qcow2,
            h.size,
            // Like qemu-img: the image file only, not its data file.
            allocated,
        );
        info.cluster_size = Some(h.cluster_size());
        info.dirty = h.incompatible_features & header::incompat::DIRTY != 0;
        info.corrupt = h.incompatible_features & header::incompat::CORRUPT != 0;
        info.compression_type = Some(h.compression.name().to_string());
        info.subformat = Some(h.compat().to_string());
        info.backing_filename = h.backing_file.clone();
        info.backing_format = h.backing_format.clone();
        let mut data = std::collections::BTreeMap::new();
        data.insert("compat".into(), json!(h.compat()));
        data.insert("compression-type".into(), json!(h.compression.name()));
        data.insert(
            "lazy-refcounts".into(),
            json!(h.compatible_features & header::COMPAT_LAZY_REFCOUNTS != 0),
        );
        data.insert("refcount-bits".into(), json!(1u64 << h.refcount_order));
        data.insert("corrupt".into(), json!(info.corrupt));
        data.insert("extended-l2".into(), json!(h.extended_l2()));
        data.insert("snapshots".into(), json!(h.nb_snapshots));
        if let Some(df) = &h.data_file {
            data.insert("data-file".into(), json!(df));
            data.insert(
                "data-file-raw".into(),
                json!(h.autoclear_features & header::AUTOCLEAR_DATA_FILE_RAW != 0),
            );
        }
        info.format_specific = Some(FormatSpecific {
            kind: "qcow2".into(),
            data,
        });
        info
    }

    fn open_file(
        file: Arc<dyn BlockDevice>,
        path: &Path,
        ctx: &Ctx<'_>,
    ) -> Result<(Qcow2, Option<ImageInfo>)> {
        let file_size = file.size();
        let ctxerr = |e: Error| e.path(path);
        let mut fixed = vec![0u8; header::FIXED_LEN.min(file_size as usize)];
        file.read_exact_at(0, &mut fixed)?;
        // Read the whole first cluster (extensions, backing name) when the header allows.
        let first = if fixed.len() >= 24 && &fixed[0..4] == header::MAGIC {
            let bits = u32::from_be_bytes([fixed[20], fixed[21], fixed[22], fixed[23]]);
            let cs = if (header::MIN_CLUSTER_BITS..=header::MAX_CLUSTER_BITS).contains(&bits) {
                1u64 << bits
            } else {
                header::FIXED_LEN as u64
            };
            let mut b = vec![0u8; cs.min(file_size) as usize];
            file.read_exact_at(0, &mut b)?;
            b
        } else {
            fixed
        };
        let h = header::parse(&first, file_size).map_err(ctxerr)?;
        if h.crypt_method != 0 || h.has_crypto_ext {
            return Err(Error::refused(format!(
                "encrypted qcow2 images are not read (crypt_method {})",
                h.crypt_method
            ))
            .path(path)
            .structure("qcow2 header")
            .at(32));
        }
        // L1 table (bounded by the header parser).
        let mut raw = vec![0u8; h.l1_size as usize * 8];
        file.read_exact_at(h.l1_table_offset, &mut raw)
            .map_err(|e| {
                e.path(path)
                    .structure("qcow2 L1 table")
                    .at(h.l1_table_offset)
            })?;
        let l1: Box<[u64]> = raw
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        let data_file = match &h.data_file {
            Some(name) => {
                let p = ctx.resolve(path, name, "data file")?;
                Some(RawFile::open(&p).map_err(|e| {
                    Error::new(e.kind(), format!("cannot open data file {name:?}"))
                        .path(path)
                        .with_source(e)
                })?)
            }
            None => None,
        };
        let (backing, backing_info) = match (&h.backing_file, ctx.follow_backing()) {
            (Some(name), true) => {
                let fmt = match &h.backing_format {
                    Some(f) => Some(Format::from_name(f).ok_or_else(|| {
                        Error::unsupported(format!("backing format {f:?}")).path(path)
                    })?),
                    None => None,
                };
                let img = ctx.open_backing(path, name, fmt)?;
                (
                    Some(Parent::new(
                        img.device(),
                        path.to_path_buf(),
                        "qcow2 header",
                    )),
                    Some(img.info().clone()),
                )
            }
            _ => (None, None),
        };
        let cap = ((L2_CACHE_BYTES / h.cluster_size()) as usize)
            .clamp(MIN_CACHED_TABLES, MAX_CACHED_TABLES);
        Ok((
            Qcow2 {
                path: path.to_path_buf(),
                file,
                data_file,
                header: h,
                l1,
                l2_cache: TableCache::new(cap),
                zcache: ChunkCache::new(COMPRESSED_CACHE),
                backing,
            },
            backing_info,
        ))
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    fn corrupt(&self, what: &'static str, msg: String, off: u64) -> Error {
        Error::corrupt(msg).path(&self.path).structure(what).at(off)
    }

    fn l2_table(&self, l2_off: u64) -> Result<Arc<[u64]>> {
        self.l2_cache.get_or_load(l2_off, || {
            let cs = self.header.cluster_size();
            if l2_off % cs != 0 {
                return Err(self.corrupt(
                    "qcow2 L1 table",
                    format!("L2 table offset {l2_off:#x} is not cluster aligned"),
                    self.header.l1_table_offset,
                ));
            }
            if l2_off.checked_add(cs).is_none_or(|e| e > self.file.size()) {
                return Err(self.corrupt(
                    "qcow2 L2 table",
                    "L2 table lies past the end of the file".into(),
                    l2_off,
                ));
            }
            let mut raw = vec![0u8; cs as usize];
            self.file.read_exact_at(l2_off, &mut raw)?;
            Ok(raw
                .chunks_exact(8)
                .map(|c| u64::from_be_bytes(c.try_into().unwrap_or([0; 8])))
                .collect())
        })
    }

    /// Classifies the allocation unit `unit` (cluster, or sub-cluster with extended L2) of
    /// the table `t`; `idx` is the L2 entry index.
    fn classify(&self, t: &[u64], idx: usize, sub: u32, l2_off: u64) -> Result<Kind> {
        let ext = self.header.extended_l2();
        let stride = if ext { 2 } else { 1 };
        let e = t[idx * stride];
        let entry_off = l2_off + (idx * stride * 8) as u64;
        if e & L2E_COMPRESSED != 0 {
            if self.data_file.is_some() {
                return Err(self.corrupt(
                    "qcow2 L2 table",
                    "compressed cluster in an image with an external data file".into(),
                    entry_off,
                ));
            }
            return Ok(Kind::Compressed(e));
        }
        let host = e & OFFSET_MASK;
        let has_host = host != 0 || (self.data_file.is_some() && e & L2E_COPIED != 0);
        if has_host && host % self.header.cluster_size() != 0 {
            return Err(self.corrupt(
                "qcow2 L2 table",
                format!("data cluster offset {host:#x} is not cluster aligned"),
                entry_off,
            ));
        }
        if !ext {
            if e & L2E_ZERO != 0 {
                return Ok(Kind::Zero);
            }
            return Ok(if has_host {
                Kind::Data(host)
            } else {
                Kind::Unalloc
            });
        }
        let bitmap = t[idx * 2 + 1];
        let alloc = bitmap >> sub & 1 != 0;
        let zero = bitmap >> (32 + sub) & 1 != 0;
        match (alloc, zero) {
            (true, true) => Err(self.corrupt(
                "qcow2 L2 table",
                format!("sub-cluster {sub} is marked both allocated and zero"),
                entry_off,
            )),
            (true, false) if !has_host => Err(self.corrupt(
                "qcow2 L2 table",
                format!("sub-cluster {sub} is allocated in an unallocated cluster"),
                entry_off,
            )),
            (true, false) => Ok(Kind::Data(
                host + (u64::from(sub) << (self.header.cluster_bits - 5)),
            )),
            (false, true) => Ok(Kind::Zero),
            (false, false) => Ok(Kind::Unalloc),
        }
    }

    /// What `guest` maps to, and for how many bytes (at most `max`, at least 1).
    fn lookup(&self, guest: u64, max: u64) -> Result<(Kind, u64)> {
        let h = &self.header;
        let unit_bits = if h.extended_l2() {
            h.cluster_bits - 5
        } else {
            h.cluster_bits
        };
        let unit = 1u64 << unit_bits;
        let per_l1 = h.bytes_per_l1_entry();
        let l1_idx = (guest / per_l1) as usize;
        let table_end = (l1_idx as u64 + 1) * per_l1;
        let max = max.min(table_end - guest);
        let l1e = self.l1.get(l1_idx).copied().unwrap_or(0);
        let l2_off = l1e & OFFSET_MASK;
        if l2_off == 0 {
            return Ok((Kind::Unalloc, max));
        }
        let t = self.l2_table(l2_off)?;
        let units_per_cluster = 1u64 << (h.cluster_bits - unit_bits);
        let unit_at = |u: u64| -> Result<Kind> {
            let idx = (u / units_per_cluster) as usize;
            self.classify(&t, idx, (u % units_per_cluster) as u32, l2_off)
        };
        let in_table = guest % per_l1;
        let first_unit = in_table >> unit_bits;
        let first = unit_at(first_unit)?;
        let skip = in_table & (unit - 1);
        let kind = match first {
            Kind::Data(host) => Kind::Data(host + skip),
            k => k,
        };
        let mut len = unit - skip;
        if let Kind::Compressed(_) = kind {
            return Ok((kind, len.min(max)));
        }
        let mut u = first_unit + 1;
        while len < max && u < (per_l1 >> unit_bits) {
            let next = unit_at(u)?;
            let same = match (kind, next) {
                (Kind::Data(a), Kind::Data(b)) => b == a + len,
                (Kind::Zero, Kind::Zero) | (Kind::Unalloc, Kind::Unalloc) => true,
                _ => false,
            };
            if !same {
                break;
            }
            len += unit;
            u += 1;
        }
        Ok((kind, len.min(max)))
    }

    /// Where the compressed bytes of the cluster with L2 descriptor `desc` lie in the image
    /// file: (host offset, length), the length clipped to the end of the file.
    fn compressed_extent(&self, desc: u64) -> Result<(u64, u64)> {
        let x = 62 - (self.header.cluster_bits - 8);
        let host = desc & ((1u64 << x) - 1);
        let sectors = ((desc & !L2E_COMPRESSED & !L2E_COPIED) >> x) + 1;
        let csize = (sectors * 512).saturating_sub(host & 511);
        let n = csize.min(self.file.size().saturating_sub(host));
        if n == 0 {
            return Err(self.corrupt(
                "qcow2 compressed cluster",
                "compressed data lies past the end of the file".into(),
                host,
            ));
        }
        Ok((host, n))
    }

    /// Decompresses the cluster with L2 descriptor `desc` into `out` (one cluster).
    fn read_compressed(&self, desc: u64, out: &mut [u8]) -> Result<()> {
        self.read_compressed_run(&[desc], out)
    }

    /// Decompresses the clusters with descriptors `descs` into `out` (one cluster each, in
    /// order), their compressed bytes read with one positional read of the host span they
    /// lie in: qemu packs compressed clusters back to back, so a run of guest clusters is a
    /// run of host bytes, and one read instead of one per cluster also lets the kernel read
    /// ahead in big requests when the image is not in the page cache.
    fn read_compressed_run(&self, descs: &[u64], out: &mut [u8]) -> Result<()> {
        let cs = self.header.cluster_size() as usize;
        let mut extents = Vec::with_capacity(descs.len());
        let (mut lo, mut hi) = (u64::MAX, 0u64);
        for &d in descs {
            let (host, n) = self.compressed_extent(d)?;
            lo = lo.min(host);
            hi = hi.max(host + n);
            extents.push((host, n));
        }
        // The input buffer is reused per thread; taken out (not borrowed) so that a nested
        // read on this thread finds an empty one instead of a busy one.
        let mut input = SPAN_BUF.with(|b| std::mem::take(&mut *b.borrow_mut()));
        let span = (hi - lo) as usize;
        if input.len() < span {
            input.resize(span, 0);
        }
        let r = self
            .file
            .read_exact_at(lo, &mut input[..span])
            .and_then(|()| {
                extents
                    .iter()
                    .zip(out.chunks_exact_mut(cs))
                    .try_for_each(|(&(host, n), o)| {
                        let at = (host - lo) as usize;
                        self.inflate_cluster(host, &input[at..at + n as usize], o)
                    })
            });
        if input.len() <= MAX_SPAN_BUF {
            SPAN_BUF.with(|b| *b.borrow_mut() = input);
        }
        r
    }

    /// Decompresses one cluster's compressed bytes (read from `host`) into all of `out`.
    fn inflate_cluster(&self, host: u64, input: &[u8], out: &mut [u8]) -> Result<()> {
        let codec = match self.header.compression {
            Compression::Zlib => Codec::RawDeflate,
            Compression::Zstd => Codec::Zstd,
        };
        let got = decompress(codec, input, out).map_err(|e| {
            e.path(&self.path)
                .structure("qcow2 compressed cluster")
                .at(host)
        })?;
        if got != out.len() {
            return Err(self.corrupt(
                "qcow2 compressed cluster",
                format!("decompresses to {got} bytes instead of {}", out.len()),
                host,
            ));
        }
        Ok(())
    }

    /// The descriptors of the whole compressed clusters from guest offset `pos` (cluster
    /// aligned, its descriptor `first`) on, within `len` bytes, whose compressed bytes lie
    /// close together (each at most [`RUN_GAP`] bytes past the span so far, the span at most
    /// [`MAX_RUN_SPAN`] bytes): the clusters one [`Qcow2::read_compressed_run`] can read.
    fn compressed_run(&self, pos: u64, first: u64, len: u64) -> Result<Vec<u64>> {
        let cs = self.header.cluster_size();
        let mut descs = vec![first];
        let (lo, mut hi) = match self.compressed_extent(first) {
            Ok((h, n)) => (h, h + n),
            // Reported by the read of that cluster alone.
            Err(_) => return Ok(descs),
        };
        let mut g = pos + cs;
        while g + cs <= pos + len && descs.len() < MAX_RUN_CLUSTERS {
            let Ok((Kind::Compressed(d), l)) = self.lookup(g, cs) else {
                break;
            };
            let Ok((h, n)) = self.compressed_extent(d) else {
                break;
            };
            if l != cs || h < lo || h > hi + RUN_GAP || (hi.max(h + n) - lo) > MAX_RUN_SPAN {
                break;
            }
            hi = hi.max(h + n);
            descs.push(d);
            g += cs;
        }
        Ok(descs)
    }

    fn compressed_into(&self, desc: u64, skip: usize, buf: &mut [u8]) -> Result<()> {
        let cs = self.header.cluster_size() as usize;
        if skip == 0 && buf.len() == cs {
            return self.read_compressed(desc, buf);
        }
        let cluster = self.zcache.get_or_load(desc, || {
            let mut v = vec![0u8; cs];
            self.read_compressed(desc, &mut v)?;
            Ok(v)
        })?;
        buf.copy_from_slice(&cluster[skip..skip + buf.len()]);
        Ok(())
    }
}

impl BlockDevice for Qcow2 {
    fn size(&self) -> u64 {
        self.header.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let (offset, total) = clip(offset, buf.len() as u64, self.header.size);
        let mut done = 0u64;
        while done < total {
            let pos = offset + done;
            let (kind, len) = self.lookup(pos, total - done)?;
            let cs = self.header.cluster_size();
            if let Kind::Compressed(desc) = kind {
                if pos % cs == 0 && len == cs && total - done >= 2 * cs {
                    let descs = self.compressed_run(pos, desc, total - done)?;
                    let n = descs.len() as u64 * cs;
                    self.read_compressed_run(&descs, &mut buf[done as usize..(done + n) as usize])?;
                    done += n;
                    continue;
                }
            }
            let out = &mut buf[done as usize..(done + len) as usize];
            match kind {
                Kind::Data(host) => {
                    let src: &dyn BlockDevice = match &self.data_file {
                        Some(d) => d,
                        None => self.file.as_ref(),
                    };
                    read_or_zero(src, host, out)?;
                }
                Kind::Zero => out.fill(0),
                Kind::Unalloc => read_through(self.backing.as_ref(), pos, out)?,
                Kind::Compressed(desc) => {
                    self.compressed_into(desc, (pos % cs) as usize, out)?;
                }
            }
            done += len;
        }
        Ok(total as usize)
    }

    fn map(&self, offset: u64, len: u64) -> Result<Mapping> {
        let (offset, total) = clip(offset, len, self.header.size);
        let mut m = Mapping::new();
        let mut done = 0u64;
        while done < total {
            let pos = offset + done;
            let (kind, len) = self.lookup(pos, total - done)?;
            match kind {
                Kind::Data(_) | Kind::Compressed(_) => m.push(pos, len, ExtentKind::Data),
                Kind::Zero => m.push(pos, len, ExtentKind::Zero),
                Kind::Unalloc => map_through(self.backing.as_ref(), pos, len, &mut m)?,
            }
            done += len;
        }
        Ok(m)
    }
}
