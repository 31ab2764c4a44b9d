//! A VMDK writer: hosted sparse extents ("KDMV", Virtual Disk Format 5.0), one file with the
//! descriptor embedded.
//!
//! - `monolithicSparse` (version 1, what `qemu-img create -f vmdk` makes): header, embedded
//!   descriptor, redundant grain directory and tables, grain directory and tables, then the
//!   grains (64 KiB, stored plain) appended in guest order. Every grain table is reserved up
//!   front (as qemu does); tables whose grains are all zero are never written and stay holes
//!   in the file. Zero grains are not allocated (GTE 0).
//! - `streamOptimized` (version 3, the OVF/OVA format): header with `gdOffset = -1`, the
//!   embedded descriptor, then for each grain table's span the compressed grains, each after a
//!   grain marker (lba, size) and padded to a sector, followed by a grain-table marker and the
//!   table; then the grain-directory marker and directory, the footer marker and footer (the
//!   header again with the real `gdOffset`) and the end-of-stream marker. Grains are zlib
//!   streams (RFC 1950, `compressAlgorithm = 1`), always whole grains, compressed by rayon
//!   workers; the caller's thread writes them in guest order.
//!
//! Both are checked against `qemu-img check`/`compare` and our own reader in
//! `tests/convert_vmdk.rs`.

use std::fs::File;
use std::path::Path;

use flate2::Compress;
use guestctl_block::{is_zero, BlockDevice, Error, ErrorKind, ExtentKind, Result};
use rayon::prelude::*;

use crate::pipeline::Op;

/// Which kind of VMDK to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VmdkSubformat {
    /// One sparse extent with plain grains and a redundant grain directory (qemu's default).
    #[default]
    MonolithicSparse,
    /// One sparse extent with deflate-compressed grains, markers and a footer (OVF/OVA).
    StreamOptimized,
}

/// Options for [`write_vmdk`].
#[derive(Debug, Clone, Default)]
pub struct VmdkOptions {
    /// The subformat.
    pub subformat: VmdkSubformat,
    /// zlib level for streamOptimized grains (0-9; None: 6, zlib's default like qemu's).
    pub level: Option<i32>,
}

const SECTOR: u64 = 512;
/// Grain size in sectors (64 KiB, as every VMware and qemu image uses).
const GRAIN_SECTORS: u64 = 128;
const GRAIN: u64 = GRAIN_SECTORS * SECTOR;
/// Grain table entries per table (fixed by the spec).
const GTES: u64 = 512;
/// Sectors of one grain table.
const GT_SECTORS: u64 = GTES * 4 / SECTOR;

/// Grains handed to the workers at a time: a power of two dividing [`GTES`], at least
/// `min_grains` and eight per worker thread. Small batches (4 MiB plain) keep the data in the
/// CPU caches between the read and the write copies.
fn batch_grains(min_grains: u64) -> u64 {
    let per_threads = (8 * rayon::current_num_threads() as u64).next_power_of_two();
    min_grains.max(per_threads).min(GTES)
}
/// Embedded descriptor position and size, in sectors (qemu's layout).
const DESC_OFFSET: u64 = 1;
const DESC_SECTORS: u64 = 20;
const GD_AT_END: u64 = u64::MAX;

const FLAG_NL_DETECT: u32 = 1;
const FLAG_RGD: u32 = 1 << 1;
const FLAG_COMPRESSED: u32 = 1 << 16;
const FLAG_MARKERS: u32 = 1 << 17;

const MARKER_EOS: u32 = 0;
const MARKER_GT: u32 = 1;
const MARKER_GD: u32 = 2;
const MARKER_FOOTER: u32 = 3;

struct Header {
    version: u32,
    flags: u32,
    capacity: u64,
    rgd: u64,
    gd: u64,
    overhead: u64,
    compressed: bool,
}

impl Header {
    fn bytes(&self) -> Vec<u8> {
        let mut h = vec![0u8; SECTOR as usize];
        h[0..4].copy_from_slice(b"KDMV");
        h[4..8].copy_from_slice(&self.version.to_le_bytes());
        h[8..12].copy_from_slice(&self.flags.to_le_bytes());
        h[12..20].copy_from_slice(&self.capacity.to_le_bytes());
        h[20..28].copy_from_slice(&GRAIN_SECTORS.to_le_bytes());
        h[28..36].copy_from_slice(&DESC_OFFSET.to_le_bytes());
        h[36..44].copy_from_slice(&DESC_SECTORS.to_le_bytes());
        h[44..48].copy_from_slice(&(GTES as u32).to_le_bytes());
        h[48..56].copy_from_slice(&self.rgd.to_le_bytes());
        h[56..64].copy_from_slice(&self.gd.to_le_bytes());
        h[64..72].copy_from_slice(&self.overhead.to_le_bytes());
        h[72] = 0; // uncleanShutdown
        h[73..77].copy_from_slice(b"\n \r\n");
        h[77..79].copy_from_slice(&u16::from(self.compressed).to_le_bytes());
        h
    }
}

/// A metadata marker sector: numSectors, size 0, type.
fn marker(sectors: u64, kind: u32) -> [u8; SECTOR as usize] {
    let mut m = [0u8; SECTOR as usize];
    m[0..8].copy_from_slice(&sectors.to_le_bytes());
    m[12..16].copy_from_slice(&kind.to_le_bytes());
    m
}

/// The embedded descriptor, padded to [`DESC_SECTORS`]. `name` is the final file name: it
/// is informational for a monolithic file (readers use the file itself), so characters that
/// would break the quoted field are replaced.
fn descriptor(capacity: u64, name: &str, create_type: &str) -> Result<Vec<u8>> {
    let name: String = name
        .chars()
        .map(|c| if c == '"' || c.is_control() { '_' } else { c })
        .collect();
    // A content-free, reproducible CID (FNV-1a of size and name); anything but ffffffff works.
    let mut cid: u32 = 0x811c_9dc5;
    for b in capacity.to_le_bytes().iter().chain(name.as_bytes()) {
        cid = (cid ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    if cid == u32::MAX {
        cid = 1;
    }
    let cylinders = (capacity / (16 * 63)).min(16383);
    let text = format!(
        "# Disk DescriptorFile\nversion=1\nCID={cid:08x}\nparentCID=ffffffff\n\
         createType=\"{create_type}\"\n\n# Extent description\nRW {capacity} SPARSE \"{name}\"\n\n\
         # The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\n\
         ddb.geometry.cylinders = \"{cylinders}\"\nddb.geometry.heads = \"16\"\n\
         ddb.geometry.sectors = \"63\"\nddb.adapterType = \"ide\"\n"
    );
    let mut b = text.into_bytes();
    if b.len() as u64 > DESC_SECTORS * SECTOR {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "vmdk descriptor does not fit its 10 KiB area (file name too long?)",
        ));
    }
    b.resize((DESC_SECTORS * SECTOR) as usize, 0);
    Ok(b)
}

/// Which grains of `[first, first + n) * GRAIN` may hold data, from the source's map.
fn grains_with_data(src: &dyn BlockDevice, first: u64, n: u64) -> Result<Vec<bool>> {
    let size = src.size();
    let start = first * GRAIN;
    let len = (n * GRAIN).min(size - start);
    let map = src.map(start, len)?;
    let mut has = vec![false; n as usize];
    // Clamped: a map that strays outside the range asked for must not panic.
    for x in map
        .iter()
        .filter(|x| x.kind == ExtentKind::Data && x.len > 0)
    {
        let g0 = x.offset.saturating_sub(start) / GRAIN;
        let g1 = ((x.end() - 1).saturating_sub(start) / GRAIN).min(n - 1);
        if g0 <= g1 {
            has[g0 as usize..=g1 as usize].fill(true);
        }
    }
    Ok(has)
}

/// Writes `src` as a single-file VMDK to the already created `out`. `name` is the file name
/// recorded in the descriptor (the final one, not the temporary one).
pub fn write_vmdk(
    src: &dyn BlockDevice,
    out: &File,
    out_path: &Path,
    name: &str,
    opts: &VmdkOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let capacity = src.size().div_ceil(SECTOR);
    match opts.subformat {
        VmdkSubformat::MonolithicSparse => {
            write_sparse(src, out, out_path, name, capacity, progress)
        }
        VmdkSubformat::StreamOptimized => {
            let level = match opts.level {
                None => 6,
                Some(l @ 0..=9) => l as u32,
                Some(l) => {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!("zlib level {l} is not in 0..=9"),
                    ))
                }
            };
            write_stream(src, out, out_path, name, capacity, level, progress)
        }
    }
}

/// A grain offset as a GTE (sectors, 32 bits).
fn gte(byte_offset: u64) -> Result<u32> {
    u32::try_from(byte_offset / SECTOR).map_err(|_| {
        Error::unsupported(
            "the vmdk output would exceed 2 TiB, the most 32-bit grain tables address",
        )
    })
}

fn gt_bytes(gt: &[u32]) -> Vec<u8> {
    gt.iter().flat_map(|e| e.to_le_bytes()).collect()
}

fn write_sparse(
    src: &dyn BlockDevice,
    out: &File,
    out_path: &Path,
    name: &str,
    capacity: u64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let wr = crate::writer(out, out_path);
    let size = src.size();
    let grains = capacity.div_ceil(GRAIN_SECTORS);
    let gt_count = grains.div_ceil(GTES).max(1);
    let gd_sectors = (gt_count * 4).div_ceil(SECTOR);
    let rgd = DESC_OFFSET + DESC_SECTORS;
    let rgt0 = rgd + gd_sectors;
    let gd = rgt0 + gt_count * GT_SECTORS;
    let gt0 = gd + gd_sectors;
    let overhead = (gt0 + gt_count * GT_SECTORS).div_ceil(GRAIN_SECTORS) * GRAIN_SECTORS;
    gte(overhead * SECTOR)?;
    let header = Header {
        version: 1,
        flags: FLAG_NL_DETECT | FLAG_RGD,
        capacity,
        rgd,
        gd,
        overhead,
        compressed: false,
    };
    // Both directories point at every (reserved) table.
    let dir = |base: u64| -> Vec<u8> {
        let mut v: Vec<u8> = (0..gt_count)
            .flat_map(|i| ((base + i * GT_SECTORS) as u32).to_le_bytes())
            .collect();
        v.resize((gd_sectors * SECTOR) as usize, 0);
        v
    };
    let mut next = overhead * SECTOR;
    let per = batch_grains(64);
    let read = |k: u64, buf: &mut [u8]| -> Result<Vec<Result<bool>>> {
        let first = k * per;
        let n = per.min(grains - first);
        let has = grains_with_data(src, first, n)?;
        Ok(buf[..(n * GRAIN) as usize]
            .par_chunks_mut(GRAIN as usize)
            .enumerate()
            .map(|(i, chunk)| {
                if !has[i] {
                    return Ok(false);
                }
                let o = (first + i as u64) * GRAIN;
                let len = GRAIN.min(size - o) as usize;
                src.read_exact_at(o, &mut chunk[..len])?;
                chunk[len..].fill(0);
                Ok(!is_zero(chunk))
            })
            .collect())
    };
    // The grain table being filled, and whether it has any entry.
    let mut gt = vec![0u32; GTES as usize];
    let mut gt_used = false;
    let mut plan = |k: u64, keep: Vec<Result<bool>>| -> Result<Vec<Op>> {
        let n = keep.len();
        let first = k * per;
        let (t, base) = (first / GTES, (first % GTES) as usize);
        let mut ops = Vec::new();
        let mut run: Option<(usize, u64)> = None;
        let flush = |ops: &mut Vec<Op>, run: &mut Option<(usize, u64)>, upto: usize| {
            if let Some((i0, at)) = run.take() {
                ops.push(Op::Run {
                    from: i0 * GRAIN as usize,
                    to: upto * GRAIN as usize,
                    at,
                });
            }
        };
        for (i, k) in keep.into_iter().enumerate() {
            if !k? {
                flush(&mut ops, &mut run, i);
                continue;
            }
            gt[base + i] = gte(next)?;
            gte(next + GRAIN - SECTOR)?;
            gt_used = true;
            if run.is_none() {
                run = Some((i, next));
            }
            next += GRAIN;
        }
        flush(&mut ops, &mut run, n);
        // A table is written (both copies) once its last batch is planned.
        let table_done = (first + n as u64) % GTES == 0 || first + n as u64 == grains;
        if table_done {
            if gt_used {
                let b = gt_bytes(&gt);
                ops.push(Op::Bytes(b.clone(), (gt0 + t * GT_SECTORS) * SECTOR));
                ops.push(Op::Bytes(b, (rgt0 + t * GT_SECTORS) * SECTOR));
            }
            gt.fill(0);
            gt_used = false;
        }
        progress(n as u64 * GRAIN);
        Ok(ops)
    };
    crate::pipeline::run(
        &mut crate::pipeline::counter(grains.div_ceil(per)),
        (per * GRAIN) as usize,
        &read,
        &mut plan,
        &wr,
    )?;
    out.set_len(next)
        .map_err(|e| crate::write_error(e, "cannot size the output", out_path, None))?;
    wr(&dir(gt0), gd * SECTOR)?;
    wr(&dir(rgt0), rgd * SECTOR)?;
    wr(
        &descriptor(capacity, name, "monolithicSparse")?,
        DESC_OFFSET * SECTOR,
    )?;
    wr(&header.bytes(), 0)?;
    Ok(())
}

/// One grain compressed into a grain record (marker, zlib data, padding to a sector); None
/// for a zero grain.
fn grain_record(z: &mut Compress, lba: u64, data: &[u8]) -> Result<Vec<u8>> {
    let mut rec = Vec::new();
    rec.extend_from_slice(&lba.to_le_bytes());
    rec.extend_from_slice(&[0u8; 4]);
    crate::deflate_onto(z, data, &mut rec, usize::MAX)?;
    let clen = (rec.len() - 12) as u32;
    rec[8..12].copy_from_slice(&clen.to_le_bytes());
    rec.resize(rec.len().div_ceil(SECTOR as usize) * SECTOR as usize, 0);
    Ok(rec)
}

fn write_stream(
    src: &dyn BlockDevice,
    out: &File,
    out_path: &Path,
    name: &str,
    capacity: u64,
    level: u32,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let wr = crate::writer(out, out_path);
    let size = src.size();
    let grains = capacity.div_ceil(GRAIN_SECTORS);
    let gt_count = grains.div_ceil(GTES).max(1);
    let gd_sectors = (gt_count * 4).div_ceil(SECTOR);
    let overhead = GRAIN_SECTORS; // header and descriptor; grains start at 64 KiB
    let mut header = Header {
        version: 3,
        flags: FLAG_NL_DETECT | FLAG_COMPRESSED | FLAG_MARKERS,
        capacity,
        rgd: 0,
        gd: GD_AT_END,
        overhead,
        compressed: true,
    };
    wr(&header.bytes(), 0)?;
    wr(
        &descriptor(capacity, name, "streamOptimized")?,
        DESC_OFFSET * SECTOR,
    )?;
    let mut gd = vec![0u32; gt_count as usize];
    let mut next = overhead * SECTOR;
    let per = batch_grains(256);
    let read = |k: u64, buf: &mut [u8]| -> Result<Vec<Result<Option<Vec<u8>>>>> {
        let first = k * per;
        let n = per.min(grains - first);
        let has = grains_with_data(src, first, n)?;
        Ok(buf[..(n * GRAIN) as usize]
            .par_chunks_mut(GRAIN as usize)
            .enumerate()
            .map_init(
                || Compress::new(flate2::Compression::new(level), true),
                |z, (i, chunk)| {
                    if !has[i] {
                        return Ok(None);
                    }
                    let o = (first + i as u64) * GRAIN;
                    let len = GRAIN.min(size - o) as usize;
                    src.read_exact_at(o, &mut chunk[..len])?;
                    chunk[len..].fill(0);
                    if is_zero(chunk) {
                        return Ok(None);
                    }
                    grain_record(z, o / SECTOR, chunk).map(Some)
                },
            )
            .collect())
    };
    // The grain table being filled: it follows the last of its grains in the stream.
    let mut gt = vec![0u32; GTES as usize];
    let mut plan = |k: u64, records: Vec<Result<Option<Vec<u8>>>>| -> Result<Vec<Op>> {
        let n = records.len() as u64;
        let first = k * per;
        let (t, base) = (first / GTES, (first % GTES) as usize);
        let mut pending: Vec<u8> = Vec::new();
        for (i, r) in records.into_iter().enumerate() {
            if let Some(rec) = r? {
                gt[base + i] = gte(next + pending.len() as u64)?;
                pending.extend_from_slice(&rec);
            }
        }
        let table_done = (first + n) % GTES == 0 || first + n == grains;
        if table_done {
            if gt.iter().any(|&e| e != 0) {
                pending.extend_from_slice(&marker(GT_SECTORS, MARKER_GT));
                gd[t as usize] = gte(next + pending.len() as u64)?;
                pending.extend_from_slice(&gt_bytes(&gt));
            }
            gt.fill(0);
        }
        let at = next;
        next += pending.len() as u64;
        progress(n * GRAIN);
        Ok(if pending.is_empty() {
            Vec::new()
        } else {
            vec![Op::Bytes(pending, at)]
        })
    };
    crate::pipeline::run(
        &mut crate::pipeline::counter(grains.div_ceil(per)),
        (per * GRAIN) as usize,
        &read,
        &mut plan,
        &wr,
    )?;
    // Grain directory, footer, end of stream.
    let mut tail = marker(gd_sectors, MARKER_GD).to_vec();
    let gd_at = next / SECTOR + 1;
    gte(next + (1 + gd_sectors) * SECTOR)?;
    let mut gdb = gt_bytes(&gd);
    gdb.resize((gd_sectors * SECTOR) as usize, 0);
    tail.extend_from_slice(&gdb);
    tail.extend_from_slice(&marker(1, MARKER_FOOTER));
    header.gd = gd_at;
    tail.extend_from_slice(&header.bytes());
    tail.extend_from_slice(&marker(0, MARKER_EOS));
    wr(&tail, next)?;
    Ok(())
}
