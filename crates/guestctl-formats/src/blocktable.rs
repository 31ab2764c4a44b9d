//! Images made of equal blocks found through one table of 32-bit entries: VHD's block
//! allocation table (BAT) and VDI's block map. One reader serves both: the format modules
//! parse and bound their headers, load the table, and hand it over with a [`Layout`] that
//! says how an entry becomes a host offset.
//!
//! Blocks are unallocated (read from the parent, or zeros), zero (VDI's discarded blocks:
//! zeros, never the parent) or data. A differencing VHD's blocks carry a sector bitmap: set
//! sectors are this image's data, clear ones read from the parent. Table look-ups need no
//! lock (the table is immutable); bitmaps go through a bounded cache; data reads go straight
//! to the file, consecutive blocks with consecutive host offsets in one `pread`.

use std::path::PathBuf;
use std::sync::Arc;

use guestctl_block::{clip, BlockDevice, Error, ExtentKind, Mapping, Result};

use crate::cache::{read_or_zero, TableCache};
use crate::parent::{map_through, read_through, Parent};

/// Most table entries an image may have (a 256 MiB table; at VDI's 1 MiB blocks, 64 TiB).
pub(crate) const MAX_ENTRIES: u64 = 1 << 26;
/// Bytes of sector bitmaps kept in the cache.
const BITMAP_CACHE_BYTES: u64 = 32 << 20;

/// The entry value of an unallocated block (both formats).
pub(crate) const UNALLOCATED: u32 = 0xffff_ffff;
/// VDI's entry for a block that reads as zeros ("discarded").
pub(crate) const VDI_ZERO: u32 = 0xffff_fffe;

/// How table entries locate blocks.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Layout {
    /// VHD: an entry is the sector of the block's bitmap; the data follows the bitmap.
    /// With `bitmaps` (differencing disks) the bitmap decides, sector by sector, between this
    /// block and the parent; without (dynamic disks, as qemu reads them) the whole block is
    /// data.
    Vhd {
        /// Bytes of each block's sector bitmap (a whole number of sectors).
        bitmap_bytes: u64,
        /// Honour the bitmaps.
        bitmaps: bool,
    },
    /// VDI: an entry is a block index into the data area, each block `extra` bytes of
    /// service data followed by the block.
    Vdi {
        /// Byte offset of the data area.
        data_offset: u64,
        /// `cbBlockExtra`.
        extra: u64,
    },
}

/// What an entry says about its block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Host offset of the block's first data byte; for VHD with bitmaps, also the bitmap's.
    Data {
        data: u64,
        bitmap: Option<u64>,
    },
    Zero,
    Unallocated,
}

/// What a run of guest bytes maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Data(u64),
    Zero,
    Unalloc,
}

/// A block-table image as a block device.
#[derive(Debug)]
pub(crate) struct BlockTable {
    path: PathBuf,
    file: Arc<dyn BlockDevice>,
    size: u64,
    block_bits: u32,
    entries: Box<[u32]>,
    layout: Layout,
    /// Where the table lies in the file (for errors).
    table_offset: u64,
    /// `"vhd BAT"` or `"vdi block map"`.
    structure: &'static str,
    bitmaps: TableCache<u8>,
    parent: Option<Parent>,
}

/// Reads the `n` 32-bit entries of a table at byte `at` of `file` (big-endian for VHD,
/// little-endian for VDI), after checking that they lie inside the file. `n` is bounded by
/// the caller ([`MAX_ENTRIES`]). A table past the end is blamed on the header field that
/// placed it (`header`: structure and offset).
pub(crate) fn load_entries(
    file: &dyn BlockDevice,
    path: &std::path::Path,
    at: u64,
    n: u64,
    big_endian: bool,
    structure: &'static str,
    header: (&'static str, u64),
) -> Result<Box<[u32]>> {
    if at.checked_add(n * 4).is_none_or(|e| e > file.size()) {
        return Err(Error::corrupt(format!(
            "{structure} at {at:#x} ({n} entries) runs past the end of the file"
        ))
        .path(path)
        .structure(header.0)
        .at(header.1));
    }
    let mut raw = vec![0u8; (n * 4) as usize];
    file.read_exact_at(at, &mut raw)
        .map_err(|e| e.path(path).structure(structure).at(at))?;
    Ok(decode_entries(&raw, big_endian))
}

fn decode_entries(raw: &[u8], big_endian: bool) -> Box<[u32]> {
    raw.chunks_exact(4)
        .map(|c| {
            let a = [c[0], c[1], c[2], c[3]];
            if big_endian {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        })
        .collect()
}

impl BlockTable {
    /// A reader over `entries`. The caller has bounded `size <= entries.len() << block_bits`,
    /// `block_bits` (9..=28) and the entry count ([`MAX_ENTRIES`]); `check` below bounds
    /// every entry.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        path: PathBuf,
        file: Arc<dyn BlockDevice>,
        size: u64,
        block_bits: u32,
        entries: Box<[u32]>,
        layout: Layout,
        table_offset: u64,
        structure: &'static str,
    ) -> Result<Self> {
        let bitmap_bytes = match layout {
            Layout::Vhd { bitmap_bytes, .. } => bitmap_bytes.max(1),
            Layout::Vdi { .. } => 1,
        };
        let t = BlockTable {
            path,
            file,
            size,
            block_bits,
            entries,
            layout,
            table_offset,
            structure,
            bitmaps: TableCache::new(
                ((BITMAP_CACHE_BYTES / bitmap_bytes) as usize).clamp(16, 4096),
            ),
            parent: None,
        };
        t.check()?;
        Ok(t)
    }

    /// Sets the parent (differencing images).
    pub(crate) fn with_parent(mut self, parent: Option<Parent>) -> Self {
        self.parent = parent;
        self
    }

    /// The block size in bytes.
    pub(crate) fn block_size(&self) -> u64 {
        1 << self.block_bits
    }

    /// Blocks that hold data in this image (not counting the parent's).
    pub(crate) fn allocated_blocks(&self) -> u64 {
        self.entries
            .iter()
            .filter(|&&e| matches!(self.slot_of(e), Some(Slot::Data { .. })))
            .count() as u64
    }

    fn corrupt(&self, msg: String, index: u64) -> Error {
        Error::corrupt(msg)
            .path(&self.path)
            .structure(self.structure)
            .at(self.table_offset + index * 4)
    }

    /// The slot of an entry value, None when the value is out of range (checked at open).
    fn slot_of(&self, e: u32) -> Option<Slot> {
        let bs = self.block_size();
        match self.layout {
            _ if e == UNALLOCATED => Some(Slot::Unallocated),
            Layout::Vdi { .. } if e == VDI_ZERO => Some(Slot::Zero),
            // Entries past the block count are read where they point (qemu and VirtualBox
            // do: compacted images hold such blocks), zeros past the end of the file.
            Layout::Vdi { data_offset, extra } => {
                let at = data_offset.checked_add(u64::from(e) * (bs + extra) + extra)?;
                Some(Slot::Data {
                    data: at,
                    bitmap: None,
                })
            }
            Layout::Vhd {
                bitmap_bytes,
                bitmaps,
            } => {
                let at = u64::from(e) * 512;
                Some(Slot::Data {
                    data: at + bitmap_bytes,
                    bitmap: bitmaps.then_some(at),
                })
            }
        }
    }

    /// Every entry is unallocated, zero or a block at an addressable offset; VHD blocks
    /// (bitmap + data) must end within the file (qemu refuses such truncated images too);
    /// VDI data past the end of the file reads as zeros, as in qemu.
    fn check(&self) -> Result<()> {
        let file_size = self.file.size();
        let bs = self.block_size();
        for (i, &e) in self.entries.iter().enumerate() {
            let i = i as u64;
            match self.slot_of(e) {
                None => {
                    return Err(self.corrupt(
                        format!("entry {i} ({e:#x}) points past any addressable offset"),
                        i,
                    ))
                }
                Some(Slot::Data { data, .. }) => {
                    if let Layout::Vhd { .. } = self.layout {
                        if data + bs > file_size {
                            return Err(self.corrupt(
                                format!(
                                    "block {i} at sector {e} ends at byte {:#x}, past the end of \
                                     the file ({file_size:#x} bytes): the image is truncated",
                                    data + bs
                                ),
                                i,
                            ));
                        }
                    }
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn bitmap(&self, at: u64, index: u64) -> Result<Arc<[u8]>> {
        let Layout::Vhd { bitmap_bytes, .. } = self.layout else {
            return Ok(Arc::from(Vec::new()));
        };
        self.bitmaps.get_or_load(at, || {
            let mut b = vec![0u8; bitmap_bytes as usize];
            self.file.read_exact_at(at, &mut b).map_err(|e| {
                Error::corrupt(format!("sector bitmap of block {index} cannot be read"))
                    .path(&self.path)
                    .structure("vhd sector bitmap")
                    .at(at)
                    .with_source(e)
            })?;
            Ok(b.into())
        })
    }

    /// What guest offset `pos` (< size) maps to, and for how many bytes (1..=max).
    fn lookup(&self, pos: u64, max: u64) -> Result<(Kind, u64)> {
        let bs = self.block_size();
        let index = pos >> self.block_bits;
        let within = pos & (bs - 1);
        let slot = match self.entries.get(index as usize) {
            Some(&e) => self.slot_of(e).unwrap_or(Slot::Unallocated),
            None => Slot::Unallocated,
        };
        let in_block = (bs - within).min(max);
        let kind = match slot {
            Slot::Data {
                data,
                bitmap: Some(at),
            } => {
                // Runs of equal bits, from pos's sector to the end of the request or block.
                let map = self.bitmap(at, index)?;
                let bit = |s: u64| {
                    map.get((s / 8) as usize)
                        .is_some_and(|b| b & (0x80 >> (s % 8)) != 0)
                };
                let first = within / 512;
                let set = bit(first);
                let mut s = first + 1;
                let last = (within + in_block).div_ceil(512);
                while s < last && bit(s) == set {
                    s += 1;
                }
                let len = (s * 512).min(within + in_block) - within;
                let kind = if set {
                    Kind::Data(data + within)
                } else {
                    Kind::Unalloc
                };
                return Ok((kind, len));
            }
            Slot::Data { data, bitmap: None } => Kind::Data(data + within),
            Slot::Zero => Kind::Zero,
            Slot::Unallocated => Kind::Unalloc,
        };
        // Extend over following blocks of the same kind (host-contiguous for data).
        let mut len = in_block;
        let mut next = index + 1;
        while len < max {
            let Some(&e) = self.entries.get(next as usize) else {
                // Past the table (the last partial block): unallocated.
                if kind == Kind::Unalloc {
                    len = max;
                }
                break;
            };
            let same = match (kind, self.slot_of(e).unwrap_or(Slot::Unallocated)) {
                (Kind::Data(h), Slot::Data { data, bitmap: None }) => data == h + len,
                (Kind::Zero, Slot::Zero) | (Kind::Unalloc, Slot::Unallocated) => true,
                _ => false,
            };
            if !same {
                break;
            }
            len = (len + bs).min(max);
            next += 1;
        }
        Ok((kind, len))
    }
}

impl BlockDevice for BlockTable {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let (offset, total) = clip(offset, buf.len() as u64, self.size);
        let mut done = 0u64;
        while done < total {
            let pos = offset + done;
            let (kind, len) = self.lookup(pos, total - done)?;
            let out = &mut buf[done as usize..(done + len) as usize];
            match kind {
                Kind::Data(host) => {
                    read_or_zero(self.file.as_ref(), host, out).map_err(|e| e.path(&self.path))?
                }
                Kind::Zero => out.fill(0),
                Kind::Unalloc => read_through(self.parent.as_ref(), pos, out)?,
            }
            done += len;
        }
        Ok(total as usize)
    }

    fn map(&self, offset: u64, len: u64) -> Result<Mapping> {
        let (offset, total) = clip(offset, len, self.size);
        let mut m = Mapping::new();
        let mut done = 0u64;
        while done < total {
            let pos = offset + done;
            let (kind, len) = self.lookup(pos, total - done)?;
            match kind {
                Kind::Data(host) => self.map_data(pos, host, len, &mut m)?,
                Kind::Zero => m.push(pos, len, ExtentKind::Zero),
                Kind::Unalloc => map_through(self.parent.as_ref(), pos, len, &mut m)?,
            }
            done += len;
        }
        Ok(m)
    }
}

impl BlockTable {
    /// Appends guest `[pos, pos + len)`, stored at host `host`, as the file's own map says:
    /// holes in the file (a static VDI's unwritten blocks, a sparse copy) and bytes past
    /// its end read as zeros, so they are not read at all (qemu asks the file too).
    fn map_data(&self, pos: u64, host: u64, len: u64, m: &mut Mapping) -> Result<()> {
        let (fo, fl) = clip(host, len, self.file.size());
        if fl > 0 {
            for e in self.file.map(fo, fl)?.iter() {
                let kind = match e.kind {
                    ExtentKind::Data => ExtentKind::Data,
                    _ => ExtentKind::Zero,
                };
                m.push(pos + (e.offset - host), e.len, kind);
            }
        }
        m.push(pos + fl, len - fl, ExtentKind::Zero);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guestctl_block::MemoryDevice;

    fn vdi(entries: Vec<u32>, data: Vec<u8>, size: u64) -> Result<BlockTable> {
        BlockTable::new(
            PathBuf::from("t.vdi"),
            Arc::new(MemoryDevice::new(data)),
            size,
            12,
            entries.into(),
            Layout::Vdi {
                data_offset: 0,
                extra: 0,
            },
            0,
            "vdi block map",
        )
    }

    #[test]
    fn vdi_blocks_zero_and_holes() {
        let mut data = vec![1u8; 4096];
        data.extend(vec![2u8; 4096]);
        // Block 0 → data block 1, block 1 zero, block 2 unallocated, block 3 → data block 0.
        let t = vdi(vec![1, VDI_ZERO, UNALLOCATED, 0], data, 4 * 4096 - 100).expect("open");
        let mut b = vec![9u8; 4 * 4096];
        assert_eq!(t.read_at(0, &mut b).expect("read"), 4 * 4096 - 100);
        assert!(b[..4096].iter().all(|&x| x == 2));
        assert!(b[4096..3 * 4096].iter().all(|&x| x == 0));
        assert!(b[3 * 4096..4 * 4096 - 100].iter().all(|&x| x == 1));
        let m = t.map(0, u64::MAX).expect("map");
        let kinds: Vec<_> = m.iter().map(|e| (e.offset, e.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (0, ExtentKind::Data),
                (4096, ExtentKind::Zero),
                (8192, ExtentKind::Unallocated),
                (12288, ExtentKind::Data)
            ]
        );
        assert_eq!(t.allocated_blocks(), 2);
    }

    #[test]
    fn entries_past_the_block_count_read_where_they_point() {
        // Entry 1 names data block 2 of a 2-block image (a compacted VDI can): read there;
        // block 3 lies past the end of the file: zeros.
        let mut data = vec![1u8; 8192];
        data.extend(vec![6u8; 4096]);
        let t = vdi(vec![0, 2], data.clone(), 8192).expect("open");
        let mut b = vec![0u8; 8192];
        t.read_exact_at(0, &mut b).expect("read");
        assert!(b[4096..].iter().all(|&x| x == 6));
        let t = vdi(vec![3, 0], data, 8192).expect("open");
        t.read_exact_at(0, &mut b).expect("read");
        assert!(b[..4096].iter().all(|&x| x == 0));
    }

    #[test]
    fn truncated_vhd_block_is_named() {
        let e = BlockTable::new(
            PathBuf::from("t.vhd"),
            Arc::new(MemoryDevice::new(vec![0u8; 8192])),
            8192,
            12,
            vec![0, 8].into(),
            Layout::Vhd {
                bitmap_bytes: 512,
                bitmaps: false,
            },
            0x600,
            "vhd BAT",
        )
        .expect_err("truncated");
        let s = e.to_string();
        assert!(
            s.contains("t.vhd: vhd BAT at offset 0x604: block 1 at sector 8"),
            "{s}"
        );
    }

    #[test]
    fn contiguous_blocks_coalesce() {
        let t = vdi(vec![0, 1, 2], vec![5u8; 3 * 4096], 3 * 4096).expect("open");
        assert_eq!(
            t.lookup(100, 1 << 20).expect("l"),
            (Kind::Data(100), 3 * 4096 - 100)
        );
    }

    #[test]
    fn vhd_bitmaps_split_blocks_between_child_and_parent() {
        // One 4 KiB block at sector 1: bitmap sector, then data of 0xcc; sectors 0-1 and 5
        // set, the rest from the parent (0xaa).
        let mut file = vec![0u8; 512];
        let mut bitmap = vec![0u8; 512];
        bitmap[0] = 0b1100_0100;
        file.extend(bitmap);
        file.extend(vec![0xccu8; 4096]);
        let parent = Arc::new(MemoryDevice::new(vec![0xaau8; 4096]));
        let t = BlockTable::new(
            PathBuf::from("d.vhd"),
            Arc::new(MemoryDevice::new(file)),
            8192,
            12,
            vec![1, UNALLOCATED].into(),
            Layout::Vhd {
                bitmap_bytes: 512,
                bitmaps: true,
            },
            0,
            "vhd BAT",
        )
        .expect("open")
        .with_parent(Some(Parent::new(parent, PathBuf::from("d.vhd"), "vhd")));
        let mut b = vec![0u8; 8192];
        t.read_exact_at(0, &mut b).expect("read");
        let expect: Vec<u8> = (0..8192)
            .map(|i| match i / 512 {
                0 | 1 | 5 => 0xcc,
                s if s < 8 => 0xaa,
                _ => 0, // past the parent's end
            })
            .collect();
        assert_eq!(b, expect);
        let m = t.map(0, 8192).expect("map");
        let kinds: Vec<_> = m.iter().map(|e| (e.offset, e.len, e.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (0, 4096, ExtentKind::Data), // parent data merges with the child's
                (4096, 4096, ExtentKind::Zero)
            ]
        );
        // A read starting mid-sector inside a parent run.
        let mut s = [0u8; 600];
        t.read_exact_at(1100, &mut s).expect("read");
        assert!(s.iter().all(|&x| x == 0xaa));
        let mut s = [0u8; 1200];
        t.read_exact_at(2000, &mut s).expect("read");
        assert!(s[..560].iter().all(|&x| x == 0xaa) && s[560..1072].iter().all(|&x| x == 0xcc));
    }
}
