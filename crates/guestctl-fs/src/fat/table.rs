//! The file allocation table: entry decoding (I/O-free) and a bounded chunk cache over the
//! device.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use guestctl_block::BlockDevice;

use super::bpb::{Bpb, FatKind};
use crate::{Error, Result};

/// Bytes per cached FAT chunk.
const CHUNK: u64 = 64 << 10;
/// Most chunks kept (64 MiB); the cache is emptied when full.
const MAX_CHUNKS: usize = 1024;

/// What a FAT entry says about the cluster after this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// The chain continues at this cluster (not yet checked for range).
    Cluster(u32),
    /// End of chain.
    End,
    /// The cluster is free (0): a chain must not run into it.
    Free,
    /// The cluster is marked bad.
    Bad,
}

/// Decodes entry `n` from `fat` bytes starting at the byte offset `base` of that entry's
/// encoding (FAT12: the two bytes holding it).
pub(crate) fn decode(kind: FatKind, n: u32, raw: u32) -> Next {
    let (v, bad, end) = match kind {
        FatKind::Fat12 => {
            let v = if n & 1 == 0 {
                raw & 0xFFF
            } else {
                (raw >> 4) & 0xFFF
            };
            (v, 0xFF7, 0xFF8)
        }
        FatKind::Fat16 => (raw & 0xFFFF, 0xFFF7, 0xFFF8),
        FatKind::Fat32 => (raw & 0x0FFF_FFFF, 0x0FFF_FFF7, 0x0FFF_FFF8),
    };
    match v {
        0 => Next::Free,
        v if v == bad => Next::Bad,
        v if v >= end => Next::End,
        v => Next::Cluster(v),
    }
}

/// Byte offset inside the FAT of entry `n`, and how many bytes encode it.
pub(crate) fn entry_pos(kind: FatKind, n: u32) -> (u64, usize) {
    let n = u64::from(n);
    match kind {
        FatKind::Fat12 => (n + n / 2, 2),
        FatKind::Fat16 => (n * 2, 2),
        FatKind::Fat32 => (n * 4, 4),
    }
}

/// Reads FAT entries through a bounded cache.
#[derive(Debug)]
pub(crate) struct Table {
    dev: Arc<dyn BlockDevice>,
    kind: FatKind,
    offset: u64,
    len: u64,
    cache: Mutex<HashMap<u64, Arc<[u8]>>>,
}

impl Table {
    pub fn new(dev: Arc<dyn BlockDevice>, bpb: &Bpb) -> Table {
        Table {
            dev,
            kind: bpb.kind,
            offset: bpb.fat_offset,
            len: bpb.fat_bytes,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn chunk(&self, idx: u64) -> Result<Arc<[u8]>> {
        if let Ok(c) = self.cache.lock() {
            if let Some(b) = c.get(&idx) {
                return Ok(b.clone());
            }
        }
        let start = idx * CHUNK;
        let len = CHUNK.min(self.len.saturating_sub(start)) as usize;
        let mut buf = vec![0u8; len];
        let at = self.offset + start;
        self.dev
            .read_exact_at(at, &mut buf)
            .map_err(|e| Error::from(e).structure("file allocation table").at(at))?;
        let buf: Arc<[u8]> = buf.into();
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= MAX_CHUNKS {
                c.clear();
            }
            c.insert(idx, buf.clone());
        }
        Ok(buf)
    }

    fn byte(&self, pos: u64) -> Result<u8> {
        let c = self.chunk(pos / CHUNK)?;
        c.get((pos % CHUNK) as usize).copied().ok_or_else(|| {
            Error::corrupt("FAT entry beyond the end of the FAT")
                .structure("file allocation table")
                .at(self.offset + pos)
        })
    }

    /// The entry for cluster `n`.
    pub fn next(&self, n: u32) -> Result<Next> {
        let (pos, width) = entry_pos(self.kind, n);
        if pos + width as u64 > self.len {
            return Err(Error::corrupt(format!("cluster {n} has no FAT entry"))
                .structure("file allocation table")
                .at(self.offset + pos));
        }
        let mut raw = 0u32;
        for i in 0..width {
            raw |= u32::from(self.byte(pos + i as u64)?) << (8 * i);
        }
        Ok(decode(self.kind, n, raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fat12_packing() {
        // Entries 2 = 0x003, 3 = 0xFFF packed as 03 F0 FF.
        let fat = [0xF8u8, 0xFF, 0xFF, 0x03, 0xF0, 0xFF];
        let get = |n: u32| {
            let (p, _) = entry_pos(FatKind::Fat12, n);
            let p = p as usize;
            decode(
                FatKind::Fat12,
                n,
                u32::from(fat[p]) | u32::from(fat[p + 1]) << 8,
            )
        };
        assert_eq!(get(2), Next::Cluster(3));
        assert_eq!(get(3), Next::End);
    }

    #[test]
    fn fat32_masks_top_bits_and_classifies() {
        assert_eq!(decode(FatKind::Fat32, 5, 0xF000_0007), Next::Cluster(7));
        assert_eq!(decode(FatKind::Fat32, 5, 0x0FFF_FFF7), Next::Bad);
        assert_eq!(decode(FatKind::Fat32, 5, 0x0FFF_FFFF), Next::End);
        assert_eq!(decode(FatKind::Fat16, 5, 0), Next::Free);
    }
}
