//! A qcow2 v3 writer: data clusters appended in guest order (zero/unallocated clusters are
//! never written, and batches start at the next data the source's map() shows, so empty
//! terabytes cost nothing), optional zlib or zstd compression done in parallel by rayon. Each
//! L2 table and refcount block is written as soon as it is complete, between the data
//! clusters, so memory stays bounded whatever the image size (the L1 and refcount tables,
//! capped at qemu's 32 and 8 MiB, one L2 table, a window of refcounts); the last refcount
//! blocks and the refcount table go at the end, and the header and L1 table are written last
//! at the front. The result needs no repair: `qemu-img check` finds no errors or leaks.

use std::cell::RefCell;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use guestctl_block::{is_zero, AlignedBuf, BlockDevice, Error, ErrorKind, ExtentKind, Result};
// The largest L1 table readers open: qemu's limit, which our reader shares.
use guestctl_formats::qcow2::header::MAX_L1_BYTES;
use rayon::prelude::*;

use crate::pipeline::Op;

/// Compression of written clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Raw deflate (qcow2 `compression_type=zlib`).
    Zlib,
    /// zstd (`compression_type=zstd`).
    Zstd,
}

/// Options for [`write_qcow2`].
#[derive(Debug, Clone)]
pub struct Qcow2Options {
    /// Cluster size in bytes (power of two, 512 B..=2 MiB).
    pub cluster_size: u64,
    /// Compress clusters (each one is stored plain when compression does not gain a sector).
    pub compression: Option<Compression>,
    /// Compression level (None: the codec's default).
    pub level: Option<i32>,
    /// Backing file name to record (as given; readers resolve a relative name against the
    /// image's directory). Only clusters that differ from the backing device passed to
    /// [`write_qcow2`] are written.
    pub backing_file: Option<String>,
    /// Backing format to record in the header extension (`raw`, `qcow2`, `vmdk`).
    pub backing_format: Option<String>,
}

impl Default for Qcow2Options {
    fn default() -> Self {
        Qcow2Options {
            cluster_size: 65536,
            compression: None,
            level: None,
            backing_file: None,
            backing_format: None,
        }
    }
}

/// Guest bytes handed to the workers at a time (two batches are in flight: one being read,
/// one being written). Small plain batches keep the data in the CPU caches between the read
/// and the write copies (4 MiB: ~20% less time than 32 MiB for a page-cache to page-cache
/// copy); compressed batches are larger to keep every worker busy between batches.
const BATCH_BYTES: u64 = 4 << 20;
const COMPRESSED_BATCH_BYTES: u64 = 16 << 20;

enum Cluster {
    /// Not allocated: reads as zero, or as the backing file where there is one.
    Skip,
    /// Reads as zero although the backing file has data there (v3 zero flag).
    Zero,
    /// Plain data, left in the batch buffer.
    Plain,
    Compressed(Vec<u8>),
}

/// A worker thread's compressor, reused for every cluster: a fresh deflate state or zstd
/// context per 64 KiB cluster costs as much as compressing it.
enum Encoder {
    Zlib(flate2::Compress),
    Zstd(zstd::bulk::Compressor<'static>),
}

thread_local! {
    static ENCODER: RefCell<Option<(Compression, i32, Encoder)>> = const { RefCell::new(None) };
}

/// `data` compressed, when that saves at least one sector.
fn compress(c: Compression, level: Option<i32>, data: &[u8]) -> Option<Vec<u8>> {
    let lvl = match c {
        Compression::Zlib => level.unwrap_or(6).clamp(0, 9),
        Compression::Zstd => level.unwrap_or(3),
    };
    let cap = data.len().checked_sub(512)?;
    // A panic inside the codec (a library bug) must not take the conversion down: the
    // cluster is stored plain instead, and the worker's encoder is rebuilt.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| encode(c, lvl, cap, data)));
    r.unwrap_or_else(|_| {
        ENCODER.with(|slot| slot.borrow_mut().take());
        None
    })
}

fn encode(c: Compression, lvl: i32, cap: usize, data: &[u8]) -> Option<Vec<u8>> {
    ENCODER.with(|slot| {
        let mut slot = slot.borrow_mut();
        if !matches!(&*slot, Some((k, l, _)) if *k == c && *l == lvl) {
            let enc = match c {
                Compression::Zlib => Encoder::Zlib(flate2::Compress::new(
                    flate2::Compression::new(lvl as u32),
                    false,
                )),
                Compression::Zstd => Encoder::Zstd(zstd::bulk::Compressor::new(lvl).ok()?),
            };
            *slot = Some((c, lvl, enc));
        }
        let (_, _, enc) = slot.as_mut()?;
        let out = match enc {
            Encoder::Zlib(z) => {
                let mut out = Vec::new();
                if !crate::deflate_onto(z, data, &mut out, cap).ok()? {
                    return None;
                }
                out
            }
            Encoder::Zstd(z) => {
                let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
                z.compress_to_buffer(data, &mut out).ok()?;
                out
            }
        };
        (out.len() <= cap).then_some(out)
    })
}

/// A table of big-endian 64-bit entries (L1, L2) as bytes.
fn table_bytes(t: &[u64]) -> Vec<u8> {
    t.iter().flat_map(|e| e.to_be_bytes()).collect()
}

/// The first cluster in `[from, to)` holding data in `dev`'s map, if any.
fn first_data(dev: &dyn BlockDevice, from: u64, to: u64, cs: u64) -> Result<Option<u64>> {
    let start = from * cs;
    if start >= dev.size() {
        return Ok(None);
    }
    let len = (to * cs).min(dev.size()) - start;
    Ok(dev
        .map(start, len)?
        .iter()
        .find(|x| x.kind == ExtentKind::Data && x.len > 0)
        .map(|x| x.offset.max(start) / cs))
}

/// Which clusters of `[first, first + has.len()) * cs` hold data in `dev`'s map (ranges past
/// the device's end hold none).
fn mark_data(dev: &dyn BlockDevice, first: u64, cs: u64, has: &mut [bool]) -> Result<()> {
    let start = first * cs;
    if start >= dev.size() {
        return Ok(());
    }
    let len = (has.len() as u64 * cs).min(dev.size() - start);
    let map = dev.map(start, len)?;
    // Clamped: a map that strays outside the range asked for must not panic.
    let n = has.len() as u64;
    for x in map
        .iter()
        .filter(|x| x.kind == ExtentKind::Data && x.len > 0)
    {
        let c0 = x.offset.saturating_sub(start) / cs;
        let c1 = ((x.end() - 1).saturating_sub(start) / cs).min(n.saturating_sub(1));
        if c0 <= c1 && n > 0 {
            has[c0 as usize..=c1 as usize].fill(true);
        }
    }
    Ok(())
}

/// qemu refuses to open images whose refcount table is larger.
const MAX_REFTABLE_BYTES: u64 = 8 << 20;

/// Host cluster allocation in file order. L2 tables and refcount blocks are written out as
/// soon as they are complete, so the writer's memory is bounded whatever the image size: the
/// L1 and refcount tables (both capped by the format), one L2 table and a short window of
/// refcounts.
struct Alloc {
    cs: u64,
    /// First unused host byte (cluster aligned).
    next: u64,
    /// Where the next compressed cluster is packed (0: start a new host cluster).
    cpos: u64,
    /// Refcounts per refcount block (16-bit entries).
    per_block: u64,
    /// First refcount block not yet written; `win[i]` counts host cluster
    /// `win_block * per_block + i`.
    win_block: u64,
    win: Vec<u16>,
    /// Host offsets of the refcount blocks written so far (the refcount table).
    reftable: Vec<u64>,
}

impl Alloc {
    fn new(cs: u64, first_free: u64) -> Result<Alloc> {
        let mut a = Alloc {
            cs,
            next: first_free,
            cpos: 0,
            per_block: cs / 2,
            win_block: 0,
            win: Vec::new(),
            reftable: Vec::new(),
        };
        for c in 0..first_free / cs {
            a.inc(c)?;
        }
        Ok(a)
    }

    fn inc(&mut self, host_cluster: u64) -> Result<()> {
        let i = (host_cluster - self.win_block * self.per_block) as usize;
        if i >= self.win.len() {
            self.win.resize(i + 1, 0);
        }
        self.win[i] = self.win[i].checked_add(1).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "qcow2 refcount overflow (internal)",
            )
        })?;
        Ok(())
    }

    /// One whole host cluster (plain data or metadata); ends any compressed packing.
    fn cluster(&mut self) -> Result<u64> {
        let at = self.next;
        self.next += self.cs;
        self.cpos = 0;
        self.inc(at / self.cs)?;
        Ok(at)
    }

    /// `len` bytes of compressed data, packed back to back and sector aligned, crossing host
    /// clusters like qemu; every host cluster touched counts one reference.
    fn compressed(&mut self, len: u64) -> Result<u64> {
        if self.cpos == 0 {
            self.cpos = self.next;
        }
        let at = self.cpos;
        for hc in at / self.cs..=(at + len - 1) / self.cs {
            self.inc(hc)?;
        }
        self.cpos = (at + len).div_ceil(512) * 512;
        self.next = self.next.max(self.cpos.div_ceil(self.cs) * self.cs);
        Ok(at)
    }

    /// Writes the refcount blocks that nothing can change any more: those wholly below the
    /// host cluster the next allocation may touch.
    fn complete_blocks(&mut self, ops: &mut Vec<Op>) -> Result<()> {
        loop {
            let low = if self.cpos != 0 { self.cpos } else { self.next } / self.cs;
            if (self.win_block + 1) * self.per_block > low {
                return Ok(());
            }
            // The block's own cluster lies past `low`, in a later block.
            let at = self.cluster()?;
            let n = self.per_block as usize;
            if self.win.len() < n {
                self.win.resize(n, 0);
            }
            let block: Vec<u8> = self.win.drain(..n).flat_map(|r| r.to_be_bytes()).collect();
            ops.push(Op::Bytes(block, at));
            self.reftable.push(at);
            self.win_block += 1;
            self.check_reftable(self.reftable.len() as u64)?;
        }
    }

    fn check_reftable(&self, blocks: u64) -> Result<()> {
        if blocks * 8 > MAX_REFTABLE_BYTES {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the refcount table would exceed qemu's {} MiB limit with {}-byte clusters; use a larger --cluster-size",
                    MAX_REFTABLE_BYTES >> 20,
                    self.cs
                ),
            ));
        }
        Ok(())
    }

    /// Allocates and writes the last refcount blocks and the refcount table, which count
    /// themselves too. Returns (table offset, table clusters, file end).
    fn finish(mut self, wr: crate::pipeline::Write<'_>) -> Result<(u64, u64, u64)> {
        let (cs, pb) = (self.cs, self.per_block);
        let base = self.next / cs;
        let (mut rb, mut rt) = (1u64, 1u64);
        loop {
            let blocks = (base + rb + rt).div_ceil(pb);
            let (nrb, nrt) = (blocks - self.win_block, (blocks * 8).div_ceil(cs));
            if nrb <= rb && nrt <= rt {
                break;
            }
            (rb, rt) = (nrb.max(rb), nrt.max(rt));
        }
        self.check_reftable(self.win_block + rb)?;
        let first = self.next;
        for _ in 0..rb + rt {
            self.cluster()?;
        }
        self.win.resize((rb * pb) as usize, 0);
        for (b, counts) in self.win.chunks(pb as usize).enumerate() {
            let at = first + b as u64 * cs;
            let block: Vec<u8> = counts.iter().flat_map(|r| r.to_be_bytes()).collect();
            wr(&block, at)?;
            self.reftable.push(at);
        }
        let mut table = vec![0u8; (rt * cs) as usize];
        for (i, at) in self.reftable.iter().enumerate() {
            table[i * 8..i * 8 + 8].copy_from_slice(&at.to_be_bytes());
        }
        let rt_at = first + rb * cs;
        wr(&table, rt_at)?;
        Ok((rt_at, rt, self.next))
    }
}

/// Writes `src` as a qcow2 v3 image to the already created `out` (positional writes).
/// With `base`, only clusters whose bytes differ from `base` are stored (a cluster that reads
/// as zero over base data gets the zero flag); the caller records the backing name in
/// `opts`. `progress` gets guest bytes done.
pub fn write_qcow2(
    src: &dyn BlockDevice,
    base: Option<&dyn BlockDevice>,
    out: &File,
    out_path: &Path,
    opts: &Qcow2Options,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let cs = opts.cluster_size;
    if !cs.is_power_of_two() || !(512..=2 << 20).contains(&cs) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("cluster size {cs} is not a power of two from 512 to 2097152"),
        ));
    }
    let bits = cs.trailing_zeros();
    let size = src.size();
    // Refuse a header that cannot fit before doing any work.
    header(opts, bits, size, 0, 0, 0, 0)?;
    let l2_entries = cs / 8;
    let per_l1 = l2_entries * cs;
    let l1_size = size.div_ceil(per_l1).max(1);
    if l1_size * 8 > MAX_L1_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "a {size}-byte disk needs an L1 table over qemu's {} MiB limit with {cs}-byte clusters; use a larger --cluster-size",
                MAX_L1_BYTES >> 20
            ),
        ));
    }
    let l1_clusters = (l1_size * 8).div_ceil(cs);
    let wr = |buf: &[u8], off: u64| {
        out.write_all_at(buf, off)
            .map_err(|e| crate::write_error(e, "write failed", out_path, Some(off)))
    };
    // Cluster 0: header; then the L1 table; data, L2 tables and refcount blocks follow in
    // allocation order.
    let mut alloc = Alloc::new(cs, (1 + l1_clusters) * cs)?;
    let mut l1: Vec<u64> = vec![0; l1_size as usize];
    // The L2 table being filled (guest order: once a later one starts, it is complete).
    let mut l2: Option<(u64, Vec<u64>)> = None;
    let n_clusters = size.div_ceil(cs);
    let batch_bytes = if opts.compression.is_some() {
        COMPRESSED_BATCH_BYTES
    } else {
        BATCH_BYTES
    };
    // At least eight clusters per worker thread, whatever the cluster size.
    let per_batch = (batch_bytes / cs).max(8 * rayon::current_num_threads() as u64);
    // Batches start at the next cluster holding data (in the source or the backing device),
    // so unallocated space costs one map() per GiB, not a batch per few MiB.
    let mut pos = 0u64;
    let window = (crate::WINDOW / cs).max(per_batch);
    let data_in = |from: u64, to: u64| -> Result<Option<u64>> {
        let found = first_data(src, from, to, cs)?;
        Ok(match base {
            Some(b) => match (found, first_data(b, from, to, cs)?) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            },
            None => found,
        })
    };
    let mut next_batch = || -> Result<Option<(u64, u64)>> {
        while pos < n_clusters {
            let end = (pos + window).min(n_clusters);
            // One batch's span first: on allocated disks that is where the data is, and the
            // map of a whole window per batch would cost more than the batch's own map.
            let near = (pos + per_batch).min(end);
            let found = match data_in(pos, near)? {
                Some(d) => Some(d),
                None if near < end => data_in(near, end)?,
                None => None,
            };
            match found {
                Some(d) => {
                    let d = d.clamp(pos, end - 1);
                    progress((d - pos) * cs);
                    let last = (d + per_batch).min(n_clusters);
                    pos = last;
                    return Ok(Some((d, last)));
                }
                None => {
                    progress((end - pos) * cs);
                    pos = end;
                }
            }
        }
        Ok(None)
    };
    // Workers read into disjoint clusters of the batch buffer; plain runs are written
    // straight from it.
    let read = |(first, last): (u64, u64), buf: &mut [u8]| -> Result<Vec<Result<Cluster>>> {
        // One pass over each map marks the clusters that hold any data.
        let mut has_data = vec![false; (last - first) as usize];
        mark_data(src, first, cs, &mut has_data)?;
        let mut base_data = vec![false; if base.is_some() { has_data.len() } else { 0 }];
        if let Some(b) = base {
            mark_data(b, first, cs, &mut base_data)?;
        }
        let area = &mut buf[..((last - first) * cs) as usize];
        Ok(area
            .par_chunks_mut(cs as usize)
            .enumerate()
            .map_init(
                || base.map(|_| AlignedBuf::new(cs as usize)),
                |bbuf, (i, chunk)| {
                    let c = first + i as u64;
                    let in_base = base_data.get(i).copied().unwrap_or(false);
                    if !has_data[i] && !in_base {
                        return Ok(Cluster::Skip);
                    }
                    let o = c * cs;
                    if has_data[i] {
                        let n = cs.min(size - o) as usize;
                        src.read_exact_at(o, &mut chunk[..n])?;
                        chunk[n..].fill(0);
                    } else {
                        chunk.fill(0);
                    }
                    let zero = is_zero(chunk);
                    if let (Some(b), Some(bb), true) = (base, bbuf.as_mut(), in_base) {
                        let n = cs.min(b.size() - o) as usize;
                        b.read_exact_at(o, &mut bb[..n])?;
                        bb[n..].fill(0);
                        if bb[..] == chunk[..] {
                            return Ok(Cluster::Skip);
                        }
                        if zero {
                            return Ok(Cluster::Zero);
                        }
                    } else if zero {
                        return Ok(Cluster::Skip);
                    }
                    Ok(
                        match opts
                            .compression
                            .and_then(|k| compress(k, opts.level, chunk))
                        {
                            Some(z) => Cluster::Compressed(z),
                            None => Cluster::Plain,
                        },
                    )
                },
            )
            .collect())
    };
    // Allocation in guest order; consecutive plain clusters go out as one write.
    let mut plan = |(first, last): (u64, u64), results: Vec<Result<Cluster>>| -> Result<Vec<Op>> {
        let mut ops = Vec::new();
        let mut run: Option<(usize, u64)> = None; // (first index in batch, host offset)
        let flush = |ops: &mut Vec<Op>, run: &mut Option<(usize, u64)>, upto: usize| {
            if let Some((i0, at)) = run.take() {
                ops.push(Op::Run {
                    from: i0 * cs as usize,
                    to: upto * cs as usize,
                    at,
                });
            }
        };
        for (i, r) in results.into_iter().enumerate() {
            let c = first + i as u64;
            let (l1i, l2i) = (c * cs / per_l1, ((c * cs % per_l1) / cs) as usize);
            let cluster = r?;
            if matches!(cluster, Cluster::Skip) {
                flush(&mut ops, &mut run, i);
                continue;
            }
            if l2.as_ref().is_some_and(|(j, _)| *j != l1i) {
                flush(&mut ops, &mut run, i);
                if let Some((j, t)) = l2.take() {
                    let at = alloc.cluster()?;
                    ops.push(Op::Bytes(table_bytes(&t), at));
                    l1[j as usize] = at | (1 << 63);
                }
            }
            let entry = match cluster {
                // (Skip went on to the next cluster above.)
                Cluster::Skip | Cluster::Zero => {
                    flush(&mut ops, &mut run, i);
                    1
                }
                Cluster::Plain => {
                    let at = alloc.cluster()?;
                    match run {
                        Some((i0, at0)) if at0 + (i - i0) as u64 * cs == at => {}
                        _ => {
                            flush(&mut ops, &mut run, i);
                            run = Some((i, at));
                        }
                    }
                    at | (1 << 63)
                }
                Cluster::Compressed(z) => {
                    flush(&mut ops, &mut run, i);
                    let len = z.len() as u64;
                    let at = alloc.compressed(len)?;
                    ops.push(Op::Bytes(z, at));
                    let x = 62 - (bits - 8);
                    let sectors = (at + len - 1) / 512 - at / 512 + 1;
                    (1 << 62) | ((sectors - 1) << x) | at
                }
            };
            l2.get_or_insert_with(|| (l1i, vec![0; l2_entries as usize]))
                .1[l2i] = entry;
        }
        flush(&mut ops, &mut run, (last - first) as usize);
        alloc.complete_blocks(&mut ops)?;
        progress((last - first) * cs);
        Ok(ops)
    };
    crate::pipeline::run(
        &mut next_batch,
        (per_batch * cs) as usize,
        &read,
        &mut plan,
        &wr,
    )?;
    if let Some((j, t)) = l2.take() {
        let at = alloc.cluster()?;
        wr(&table_bytes(&t), at)?;
        l1[j as usize] = at | (1 << 63);
    }
    let (rt_at, rt, end) = alloc.finish(&wr)?;
    out.set_len(end)
        .map_err(|e| crate::write_error(e, "cannot size the output", out_path, None))?;
    // L1 table and header last.
    wr(&table_bytes(&l1), cs)?;
    wr(&header(opts, bits, size, l1_size, cs, rt_at, rt)?, 0)?;
    Ok(())
}

/// The header, its extensions and the backing file name: all of cluster 0.
fn header(
    opts: &Qcow2Options,
    bits: u32,
    size: u64,
    l1_size: u64,
    l1_at: u64,
    rt_at: u64,
    rt: u64,
) -> Result<Vec<u8>> {
    let mut h = vec![0u8; 112];
    h[0..4].copy_from_slice(b"QFI\xfb");
    h[4..8].copy_from_slice(&3u32.to_be_bytes());
    h[20..24].copy_from_slice(&bits.to_be_bytes());
    h[24..32].copy_from_slice(&size.to_be_bytes());
    h[36..40].copy_from_slice(&(l1_size as u32).to_be_bytes());
    h[40..48].copy_from_slice(&l1_at.to_be_bytes());
    h[48..56].copy_from_slice(&rt_at.to_be_bytes());
    h[56..60].copy_from_slice(&(rt as u32).to_be_bytes());
    let zstd = opts.compression == Some(Compression::Zstd);
    h[72..80].copy_from_slice(&(if zstd { 1u64 << 3 } else { 0 }).to_be_bytes());
    h[96..100].copy_from_slice(&4u32.to_be_bytes());
    h[100..104].copy_from_slice(&112u32.to_be_bytes());
    h[104] = u8::from(zstd);
    if let Some(f) = &opts.backing_format {
        // Backing format name extension, padded to 8 bytes.
        h.extend_from_slice(&0xE279_2ACAu32.to_be_bytes());
        h.extend_from_slice(&(f.len() as u32).to_be_bytes());
        h.extend_from_slice(f.as_bytes());
        h.resize(h.len().div_ceil(8) * 8, 0);
    }
    h.extend_from_slice(&[0u8; 8]); // end of header extensions
    if let Some(name) = &opts.backing_file {
        if name.is_empty() || name.len() > 1023 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "backing file name must be 1 to 1023 bytes",
            ));
        }
        let at = h.len() as u64;
        h[8..16].copy_from_slice(&at.to_be_bytes());
        h[16..20].copy_from_slice(&(name.len() as u32).to_be_bytes());
        h.extend_from_slice(name.as_bytes());
    }
    if h.len() as u64 > 1 << bits {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "the header and backing file name do not fit in one cluster; use a larger --cluster-size",
        ));
    }
    Ok(h)
}
