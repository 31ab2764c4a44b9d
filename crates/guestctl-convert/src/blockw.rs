//! The block writer shared by the dynamic VHD and VDI writers: the guest disk cut into equal
//! blocks, each either all zeros (left unallocated, never read when the source's map says
//! so) or written whole behind a per-block prefix (VHD's sector bitmap; nothing for VDI).
//! Batches of blocks are read and zero-checked by rayon workers in pieces of [`PIECE`] while
//! the previous batch is written ([`crate::pipeline`]); host offsets are handed out in guest
//! order, so the file is written front to back. The caller records where each block went.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use guestctl_block::{is_zero, BlockDevice, ExtentKind, Result};
use rayon::prelude::*;

use crate::pipeline::Op;

/// Bytes one worker reads and zero-checks at a time.
const PIECE: u64 = 256 << 10;
/// Guest bytes per batch (at least one block).
const BATCH: u64 = 4 << 20;

/// Where blocks go in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Non-zero blocks are appended from the start offset, in guest order; zero blocks get
    /// no room (dynamic images).
    Appended,
    /// Block `i` has its room at `start + i * (prefix + block)` whether zero or not; zero
    /// blocks are left as holes (static VDI).
    Fixed,
}

/// Writes the blocks of `src` (zero-padded to whole blocks) into `out` from host offset
/// `start`. `slot(i, host)` is called in guest order for each block that got room (`host`:
/// where its prefix starts). Returns the end of the last block written or reserved.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_blocks(
    src: &dyn BlockDevice,
    out: &File,
    out_path: &Path,
    block: u64,
    prefix: &[u8],
    start: u64,
    placement: Placement,
    slot: &mut dyn FnMut(u64, u64) -> Result<()>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    let size = src.size();
    let blocks = size.div_ceil(block);
    let per = (BATCH / block).max(1);
    let stride = prefix.len() as u64 + block;
    let piece = PIECE.min(block);
    // Which pieces of batch `k` hold data: read and zero-checked in parallel.
    let read = |k: u64, buf: &mut [u8]| -> Result<Vec<bool>> {
        let first = k * per;
        let n = per.min(blocks - first);
        let base = first * block;
        let len = (n * block).min(size - base);
        let map = src.map(base, len)?;
        let data: Vec<(u64, u64)> = map
            .iter()
            .filter(|e| e.kind == ExtentKind::Data)
            .map(|e| (e.offset, e.end()))
            .collect();
        buf[..(n * block) as usize]
            .par_chunks_mut(piece as usize)
            .enumerate()
            .map(|(i, chunk)| -> Result<bool> {
                let o = base + i as u64 * piece;
                let end = o + piece;
                if o >= size || !data.iter().any(|&(a, b)| a < end && b > o) {
                    chunk.fill(0);
                    return Ok(false);
                }
                let n = (size - o).min(piece) as usize;
                src.read_exact_at(o, &mut chunk[..n])?;
                chunk[n..].fill(0);
                Ok(!is_zero(chunk))
            })
            .collect()
    };
    let pieces_per_block = (block / piece) as usize;
    let mut next = start;
    let mut plan = |k: u64, nonzero: Vec<bool>| -> Result<Vec<Op>> {
        let first = k * per;
        let mut ops = Vec::new();
        for (j, p) in nonzero.chunks(pieces_per_block).enumerate() {
            let b = first + j as u64;
            let data = p.iter().any(|&x| x);
            let host = match placement {
                Placement::Appended if !data => continue,
                Placement::Appended => {
                    let h = next;
                    next += stride;
                    h
                }
                Placement::Fixed => {
                    let h = start + b * stride;
                    next = h + stride;
                    h
                }
            };
            slot(b, host)?;
            if data {
                if !prefix.is_empty() {
                    ops.push(Op::Bytes(prefix.to_vec(), host));
                }
                let from = j * block as usize;
                ops.push(Op::Run {
                    from,
                    to: from + block as usize,
                    at: host + prefix.len() as u64,
                });
            }
        }
        progress(
            ((first + nonzero.len().div_ceil(pieces_per_block) as u64) * block).min(size)
                - first * block,
        );
        Ok(ops)
    };
    let wr = |buf: &[u8], off: u64| {
        out.write_all_at(buf, off)
            .map_err(|e| crate::write_error(e, "write failed", out_path, Some(off)))
    };
    crate::pipeline::run(
        &mut crate::pipeline::counter(blocks.div_ceil(per)),
        (per * block) as usize,
        &read,
        &mut plan,
        &wr,
    )?;
    Ok(next)
}

/// A random-looking 16-byte id (image UUIDs): the process's random hasher keys, the time and
/// a counter, with the version-4 and variant bits set.
pub(crate) fn new_uuid() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut out = [0u8; 16];
    for (i, half) in out.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(now);
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_usize(i);
        h.write_u32(std::process::id());
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    out[6] = (out[6] & 0x0f) | 0x40;
    out[8] = (out[8] & 0x3f) | 0x80;
    out
}
