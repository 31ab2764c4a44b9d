//! A VHDX writer: dynamic (blocks allocated in guest order, all-zero blocks left in the
//! PAYLOAD_BLOCK_ZERO state, like `qemu-img convert -O vhdx`) or fixed (every block allocated,
//! LeaveBlockAllocated set; zero ranges stay holes in the host file).
//!
//! Layout, as qemu's: the 1 MiB header section (file identifier, two headers, two region
//! tables), a 1 MiB log (empty: LogGuid zero), the BAT at 2 MiB, the 1 MiB metadata region
//! after it, then the payload blocks, each 1 MiB aligned. 512-byte logical and 4 KiB
//! physical sectors; a source whose size is not a multiple of 512 is padded with zeros (the
//! format needs whole sectors). The default block size is qemu's choice for the disk size
//! (8 MiB up to 1 GiB, 16 MiB up to 100 GiB, 32 MiB up to 32 TiB, 64 MiB beyond).
//!
//! The source is read in 4 MiB chunks by rayon workers (two batches in flight, see
//! [`crate::pipeline`]); a block gets its file offset when its first non-zero chunk is
//! planned, and zero chunks are never written, so memory is two batches plus the BAT
//! (8 bytes per block) whatever the block size. The BAT, metadata, region tables and headers
//! are written last. Structures are built with the constants and checksum of
//! [`guestctl_formats::vhdx::layout`], the reader's own definitions.

use std::collections::hash_map::RandomState;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;

use guestctl_block::{is_zero, BlockDevice, Error, ErrorKind, ExtentKind, Result};
use guestctl_formats::vhdx::layout::{
    self, Guid, Header, Params, BAT_REGION, FILE_PARAMETERS, HEADER_OFFSETS, LOGICAL_SECTOR_SIZE,
    MAX_BLOCK_SIZE, MAX_DISK_SIZE, METADATA_REGION, MIB, MIN_BLOCK_SIZE, PAGE83_DATA,
    PHYSICAL_SECTOR_SIZE, REGION_TABLE_OFFSETS, TABLE_LEN, VIRTUAL_DISK_SIZE,
};
use rayon::prelude::*;

use crate::pipeline::Op;

/// Which kind of VHDX to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VhdxSubformat {
    /// Blocks allocated as needed (qemu's default).
    #[default]
    Dynamic,
    /// Every block allocated up front.
    Fixed,
}

/// Options for [`write_vhdx`].
#[derive(Debug, Clone, Copy, Default)]
pub struct VhdxOptions {
    /// The subformat.
    pub subformat: VhdxSubformat,
    /// Payload block size in bytes (a power of two, 1..=256 MiB); None: qemu's default for
    /// the disk size.
    pub block_size: Option<u64>,
}

const SECTOR: u64 = 512;
const LOG_OFFSET: u64 = MIB;
const LOG_LEN: u64 = MIB;
const BAT_OFFSET: u64 = 2 * MIB;
/// Bytes read and zero-checked by one worker at a time.
const CHUNK: u64 = 4 << 20;

/// qemu's block size for a disk of `size` bytes.
pub fn default_block_size(size: u64) -> u64 {
    match size {
        s if s > 32 << 40 => 64 << 20,
        s if s > 100 << 30 => 32 << 20,
        s if s > 1 << 30 => 16 << 20,
        _ => 8 << 20,
    }
}

/// A random version-4 GUID (std's per-process random hash keys; no crypto needed).
fn random_guid() -> Guid {
    let s = RandomState::new();
    let mut b = [0u8; 16];
    for (i, half) in b.chunks_exact_mut(8).enumerate() {
        let mut h = s.build_hasher();
        h.write_usize(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    b[7] = (b[7] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Guid(b)
}

/// The region table (both copies are the same).
fn region_table(bat_len: u64, md_off: u64) -> Vec<u8> {
    let mut b = vec![0u8; TABLE_LEN];
    b[0..4].copy_from_slice(b"regi");
    b[8..12].copy_from_slice(&2u32.to_le_bytes());
    for (i, (g, off, len)) in [
        (BAT_REGION, BAT_OFFSET, bat_len),
        (METADATA_REGION, md_off, MIB),
    ]
    .into_iter()
    .enumerate()
    {
        let e = &mut b[16 + 32 * i..48 + 32 * i];
        e[..16].copy_from_slice(&g.0);
        e[16..24].copy_from_slice(&off.to_le_bytes());
        e[24..28].copy_from_slice(&(len as u32).to_le_bytes());
        e[28..32].copy_from_slice(&1u32.to_le_bytes()); // required
    }
    let c = layout::checksum(&b, 4);
    b[4..8].copy_from_slice(&c.to_le_bytes());
    b
}

/// The metadata region's first 64 KiB (table) and its items after it.
fn metadata(p: &Params) -> Vec<u8> {
    let mut items: Vec<(Guid, Vec<u8>, u32)> = Vec::new();
    let flags = u32::from(p.leave_allocated);
    let mut fp = p.block_size.to_le_bytes().to_vec();
    fp.extend_from_slice(&flags.to_le_bytes());
    // flags: bit 2 IsRequired, bit 1 IsVirtualDisk.
    items.push((FILE_PARAMETERS, fp, 4));
    items.push((VIRTUAL_DISK_SIZE, p.disk_size.to_le_bytes().to_vec(), 6));
    items.push((PAGE83_DATA, p.page83.0.to_vec(), 6));
    items.push((
        LOGICAL_SECTOR_SIZE,
        p.logical_sector.to_le_bytes().to_vec(),
        6,
    ));
    items.push((
        PHYSICAL_SECTOR_SIZE,
        p.physical_sector.to_le_bytes().to_vec(),
        6,
    ));
    let mut b = vec![0u8; TABLE_LEN];
    b[0..8].copy_from_slice(b"metadata");
    b[10..12].copy_from_slice(&(items.len() as u16).to_le_bytes());
    let mut off = TABLE_LEN as u32;
    for (i, (g, v, bits)) in items.iter().enumerate() {
        let e = &mut b[32 + 32 * i..64 + 32 * i];
        e[..16].copy_from_slice(&g.0);
        e[16..20].copy_from_slice(&off.to_le_bytes());
        e[20..24].copy_from_slice(&(v.len() as u32).to_le_bytes());
        e[24..28].copy_from_slice(&bits.to_le_bytes());
        off += v.len() as u32;
    }
    for (_, v, _) in &items {
        b.extend_from_slice(v);
    }
    b
}

/// The file identifier block's first bytes: signature and creator.
fn identifier() -> Vec<u8> {
    let mut b = layout::SIGNATURE.to_vec();
    let creator = concat!("guestctl ", env!("CARGO_PKG_VERSION"));
    b.extend(creator.encode_utf16().flat_map(u16::to_le_bytes));
    b
}

/// Writes `src` as a VHDX to the already created `out`.
pub fn write_vhdx(
    src: &dyn BlockDevice,
    out: &File,
    out_path: &Path,
    opts: &VhdxOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let size = src.size();
    let disk_size = size.div_ceil(SECTOR) * SECTOR;
    if disk_size > MAX_DISK_SIZE {
        return Err(Error::unsupported(format!(
            "a VHDX holds at most 64 TiB; the source has {size} bytes"
        )));
    }
    let bs = opts
        .block_size
        .unwrap_or_else(|| default_block_size(disk_size));
    if !bs.is_power_of_two()
        || !(u64::from(MIN_BLOCK_SIZE)..=u64::from(MAX_BLOCK_SIZE)).contains(&bs)
    {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("vhdx block size {bs} is not a power of two from 1 MiB to 256 MiB"),
        ));
    }
    let fixed = opts.subformat == VhdxSubformat::Fixed;
    let p = Params {
        block_size: bs as u32,
        leave_allocated: fixed,
        has_parent: false,
        disk_size,
        logical_sector: SECTOR as u32,
        physical_sector: 4096,
        page83: random_guid(),
    };
    let blocks = p.data_blocks();
    let entries = p.bat_entries();
    let bat_len = (entries * 8).div_ceil(MIB).max(1) * MIB;
    let md_off = BAT_OFFSET + bat_len;
    let data_start = md_off + MIB;
    let wr = crate::writer(out, out_path);
    let mut bat = vec![0u64; entries as usize];
    let state_zero = 2u64;
    let state_full = 6u64;

    // Chunks of at most CHUNK bytes that never cross a block boundary.
    let chunk = CHUNK.min(bs);
    let chunks_total = disk_size.div_ceil(chunk);
    let per = (2 * rayon::current_num_threads() as u64).max(8);
    let read = |k: u64, buf: &mut [u8]| -> Result<Vec<Result<bool>>> {
        let first = k * per;
        let n = per.min(chunks_total - first);
        let start = first * chunk;
        let span = (n * chunk).min(size.saturating_sub(start));
        let map = if span > 0 {
            src.map(start, span)?
        } else {
            guestctl_block::Mapping::new()
        };
        let has_data = |o: u64, e: u64| {
            map.iter()
                .any(|x| x.kind == ExtentKind::Data && x.offset < e && o < x.end())
        };
        Ok(buf[..(n * chunk) as usize]
            .par_chunks_mut(chunk as usize)
            .enumerate()
            .map(|(i, c)| {
                let o = start + i as u64 * chunk;
                let len = chunk.min(size.saturating_sub(o)) as usize;
                if len == 0 || !has_data(o, o + len as u64) {
                    return Ok(false);
                }
                src.read_exact_at(o, &mut c[..len])?;
                c[len..].fill(0);
                Ok(!is_zero(c))
            })
            .collect())
    };
    let mut next = data_start;
    let mut plan = |k: u64, keep: Vec<Result<bool>>| -> Result<Vec<Op>> {
        let first = k * per;
        let n = keep.len() as u64;
        let mut ops = Vec::new();
        for (i, nonzero) in keep.into_iter().enumerate() {
            let g = (first + i as u64) * chunk;
            let block = g / bs;
            let idx = p.payload_index(block) as usize;
            let nonzero = nonzero?;
            if fixed {
                bat[idx] = (data_start + block * bs) | state_full;
            } else if bat[idx] & 7 != state_full && nonzero {
                bat[idx] = next | state_full;
                next += bs;
            } else if bat[idx] == 0 {
                bat[idx] = state_zero;
            }
            if nonzero {
                let at = layout::entry_offset(bat[idx]) + g % bs;
                let from = i * chunk as usize;
                ops.push(Op::Run {
                    from,
                    to: from + chunk as usize,
                    at,
                });
            }
        }
        progress(n * chunk);
        Ok(ops)
    };
    crate::pipeline::run(
        &mut crate::pipeline::counter(chunks_total.div_ceil(per)),
        (per * chunk) as usize,
        &read,
        &mut plan,
        &wr,
    )?;
    let end = if fixed {
        data_start + blocks * bs
    } else {
        next
    };
    out.set_len(end)
        .map_err(|e| crate::write_error(e, "cannot size the output", out_path, None))?;
    let mut batb: Vec<u8> = bat.iter().flat_map(|e| e.to_le_bytes()).collect();
    batb.resize(bat_len as usize, 0);
    wr(&batb, BAT_OFFSET)?;
    wr(&metadata(&p), md_off)?;
    let rt = region_table(bat_len, md_off);
    for off in REGION_TABLE_OFFSETS {
        wr(&rt, off)?;
    }
    let file_guid = random_guid();
    let data_guid = random_guid();
    for (i, off) in HEADER_OFFSETS.into_iter().enumerate() {
        let h = Header {
            sequence: 1 + i as u64,
            file_write_guid: file_guid,
            data_write_guid: data_guid,
            log_guid: Guid::ZERO,
            log_version: 0,
            version: 1,
            log_length: LOG_LEN as u32,
            log_offset: LOG_OFFSET,
        };
        wr(&h.to_bytes(), off)?;
    }
    wr(&identifier(), 0)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_default_block_sizes() {
        assert_eq!(default_block_size(100 << 20), 8 << 20);
        assert_eq!(default_block_size(1 << 30), 8 << 20);
        assert_eq!(default_block_size(2 << 30), 16 << 20);
        assert_eq!(default_block_size(200 << 30), 32 << 20);
        assert_eq!(default_block_size(33 << 40), 64 << 20);
    }

    #[test]
    fn guids_differ_and_are_v4() {
        let (a, b) = (random_guid(), random_guid());
        assert_ne!(a, b);
        assert_eq!(a.0[7] >> 4, 4);
    }
}
