//! XFS log recovery in memory: the kernel's replay (`fs/xfs/xfs_log_recover.c`), done onto an
//! overlay of sectors instead of the device.
//!
//! Contract with the reader (`xfs/mod.rs`):
//! - [`recover`] gets the log's place and the geometry ([`LogGeometry`]) and a way to read
//!   the device ([`LogDevice`]). It never writes anything.
//! - It finds the log head and tail, verifies record CRCs, reassembles committed transactions
//!   from tail to head, honours cancelled buffers, and applies buffer items, inode items (log
//!   dinode converted to the on-disk big-endian dinode) and icreate items onto an overlay of
//!   512-byte sectors ([`Recovered::sectors`]). Later items apply on top of earlier ones
//!   (reading through the overlay).
//! - It does not recompute the CRCs of replayed buffers: the reader skips CRC checks of
//!   structures that touch replayed sectors (the log records' own CRCs covered them).
//!   Replayed and initialised inodes do get their CRC recomputed, as the kernel does.
//! - A clean log (the last record is an unmount record, or head == tail) gives
//!   [`LogState::Clean`].
//!
//! Extensions of the first contract: [`LogGeometry`] also carries the AG geometry
//! (`ag_blocks`, `ag_count`, `ag_block_log`, for icreate items) and `logv2`; [`is_dirty`]
//! finds head and tail only (for opening with replay turned off, where a damaged log must
//! not stop the open).
//!
//! How it works (`head` → `record` → `trans` → `items` → `apply`):
//! 1. **Head and tail** (`head.rs`): every 512-byte basic block of the log starts with the
//!    cycle number it was last written in (a record header holds it in its second word). The
//!    head is found as the kernel does: a binary search for the cycle-number discontinuity,
//!    verified by scanning back over the most that can have been in flight (8 records of up
//!    to 256 KiB), then backed up to the start of a partially written record. The last record
//!    before the head gives the tail (`h_tail_lsn`). An unmount record right before the head
//!    means a clean log. Otherwise the last 8 records are CRC-checked: a bad one is a torn
//!    write, and the head moves back to it (the tail is then taken from the record before).
//!    The whole range tail → head is CRC-checked next; a bad record within 8 records' space
//!    ahead of the head means the tail was overwritten by a torn write, and the tail moves
//!    forward past it. Any other bad CRC is an error on v5 (a note on v4, as the kernel only
//!    warns there).
//! 2. **Records** (`record.rs`): v1/v2 headers, extended headers for records over 32 KiB,
//!    wrapping around the physical end of the log; the first word of each basic block is
//!    restored from `h_cycle_data`/`xh_cycle_data` after the CRC check (crc32c over the
//!    header, the extended headers the data needs, then the data as written).
//! 3. **Transactions** (`trans.rs`): op headers are grouped by transaction id; regions split
//!    across ops and records (`CONTINUE`/`WAS_CONT`) are joined; only transactions whose
//!    commit op is in the log are replayed, in commit order, each with the LSN of the record
//!    that started it.
//! 4. **Items** (`items.rs`, `apply.rs`), in two passes like the kernel: pass 1 counts
//!    cancelled buffers (`XFS_BLF_CANCEL`), pass 2 applies, with each transaction's items in
//!    the kernel's order (buffers and icreates, then inodes and the rest, then inode buffers,
//!    then cancels):
//!    - buffers: each logged 128-byte chunk copied onto the buffer read through the overlay,
//!      unless cancelled (a buffer is cancelled until the last cancel record for it has been
//!      passed). On v5 a buffer whose on-disk metadata LSN is at least the transaction's is
//!      left alone; the LSN is found by magic for the kernel's list: free-space, inode,
//!      rmap and refcount btrees (short form), bmbt (long form), AGF, AGFL, AGI, superblock,
//!      symlink blocks, directory block/data/free blocks, and directory leaf and da node
//!      blocks (`da3_blkinfo`). Inode buffers only get their `di_next_unlinked` fields.
//!      Quota buffers are not replayed (the kernel skips them too unless quotas are
//!      mounted, and quota files are not read here);
//!    - inodes: the log dinode is in the byte order of the machine that wrote it (found from
//!      `di_magic`); it is converted field by field to the big-endian on-disk core (both
//!      timestamp encodings, both extent-counter layouts, v3 fields such as the creation
//!      time, self number and UUID taken from the log; `di_next_unlinked` kept from disk;
//!      `di_lsn` set to the transaction's LSN). Then `ILOG_DEV`, the data fork (`DDATA`,
//!      `DEXT`, or `DBROOT` converted from the in-memory bmbt block to the on-disk `bmdr`
//!      form) and the attribute fork at `di_forkoff * 8`. v5 inodes newer than the
//!      transaction and v4 inodes with a newer flush counter are left alone;
//!    - icreate (v5 inode chunks logged logically): the chunk's inodes are initialised
//!      (zeroed, magic, version, generation, `di_next_unlinked`, v3 number and UUID),
//!      unless any of the chunk was cancelled.
//! 5. **Not replayed** (noted in [`Recovered::notes`] when the log has them): intents the
//!    log does not show finished. Extent-freeing, rmap and refcount intents (EFI, RUI, CUI)
//!    only change free space and reverse maps, which reading ignores. Block-mapping (BUI),
//!    mapping-exchange (XMI) and attribute (ATTRI) intents would change files: the
//!    affected files read as the log left them, before the intent's work. Fork owner
//!    changes (`ILOG_DOWNER`/`AOWNER`, from a swapext) are not redone either: the bmbt
//!    blocks keep the old owner. Dquot and quotaoff items are not replayed. The kernel's
//!    post-replay processing of unlinked inodes (freeing inodes that were open but
//!    unlinked) is not needed: those inodes are in no directory, so they cannot be reached.
//!
//! Everything is bounded: the log size (the superblock caps it at 2 GiB), record sizes
//! (256 KiB), op counts (by the record length), regions per item, transactions in flight,
//! bytes held in open transactions and the overlay (1 GiB each), and the walks over the log
//! (the CRC check of the last 8 records, the CRC check tail → head, repeated at most 16
//! times while an overwritten tail moves forward, then pass 1 and pass 2). Header searches
//! read in chunks and never go round the log more than once. A damaged record or item is an
//! error naming the structure and the device byte offset; an unknown item type is a note.

mod apply;
mod head;
mod items;
mod record;
mod trans;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::{Error, Result};

/// Where the log is and what recovery needs to know of the filesystem.
#[derive(Debug, Clone)]
pub(crate) struct LogGeometry {
    /// Byte offset of the (internal) log on the device.
    pub start: u64,
    /// Length of the log in bytes.
    pub len: u64,
    /// The log's sector size (`sb_logsectsize`, 512 when zero).
    pub sector_size: u32,
    /// Filesystem block size.
    pub block_size: u32,
    /// Log stripe unit in bytes (`sb_logsunit`; 0 or 1 when none).
    pub stripe_unit: u32,
    /// v5 (CRC) filesystem.
    pub v5: bool,
    /// Version 2 log (always on v5; `XFS_SB_VERSION_LOGV2BIT` on v4).
    pub logv2: bool,
    /// `sb_uuid` (log record headers carry it).
    pub uuid: [u8; 16],
    /// The UUID stamped in v5 metadata.
    pub meta_uuid: [u8; 16],
    /// Inode size in bytes.
    pub inode_size: u32,
    /// Size of the filesystem in bytes (nothing is replayed beyond it).
    pub fs_bytes: u64,
    /// Blocks per allocation group (`sb_agblocks`).
    pub ag_blocks: u32,
    /// Number of allocation groups.
    pub ag_count: u32,
    /// `sb_agblklog`: bits of an AG block number inside inode and block numbers.
    pub ag_block_log: u8,
}

/// Reads the filesystem's device (absolute byte offsets).
pub(crate) trait LogDevice {
    /// Fills `buf` from `offset`.
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
}

/// What replay produced.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// 512-byte sector number on the device → its contents after recovery (512 bytes).
    pub sectors: BTreeMap<u64, Box<[u8]>>,
    /// Committed transactions replayed.
    pub transactions: u64,
    /// What a user should know (torn records dropped, intents not replayed, ...).
    pub notes: Vec<String>,
}

/// The state of the log.
#[derive(Debug)]
pub(crate) enum LogState {
    /// Nothing to replay.
    Clean,
    /// Replayed in memory.
    Dirty(Recovered),
}

/// 512-byte basic block.
pub(super) const BBSIZE: u64 = 512;
/// The largest log the superblock can describe (`XFS_MAX_LOG_BYTES`).
const MAX_LOG_BYTES: u64 = 2 << 30;
/// The smallest log handled (the kernel's minimum is far larger: 64 MiB from mkfs).
const MIN_LOG_BLOCKS: u64 = 1024;

/// Recovers the log described by `geo` from `dev`.
pub(crate) fn recover(dev: &dyn LogDevice, geo: &LogGeometry) -> Result<LogState> {
    let log = Log::new(dev, geo)?;
    let bounds = match head::find(&log)? {
        head::Found::Clean => return Ok(LogState::Clean),
        head::Found::Dirty(b) => b,
    };
    let mut rec = apply::replay(&log, &bounds)?;
    let mut notes = bounds.notes;
    notes.append(&mut rec.notes);
    rec.notes = notes;
    Ok(LogState::Dirty(rec))
}

/// Whether the log needs recovery (head and tail only, nothing replayed).
pub(crate) fn is_dirty(dev: &dyn LogDevice, geo: &LogGeometry) -> Result<bool> {
    let log = Log::new(dev, geo)?;
    Ok(matches!(head::find(&log)?, head::Found::Dirty(_)))
}

/// The byte order of the machine that wrote a log (`h_fmt`): host-order structures (item
/// formats, log dinodes, transaction headers) are read with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endian {
    Little,
    Big,
}

impl Endian {
    pub(super) fn u16(self, b: &[u8], off: usize) -> u16 {
        match self {
            Endian::Little => crate::bytes::le16(b, off),
            Endian::Big => crate::bytes::be16(b, off),
        }
    }

    pub(super) fn u32(self, b: &[u8], off: usize) -> u32 {
        match self {
            Endian::Little => crate::bytes::le32(b, off),
            Endian::Big => crate::bytes::be32(b, off),
        }
    }

    pub(super) fn u64(self, b: &[u8], off: usize) -> u64 {
        match self {
            Endian::Little => crate::bytes::le64(b, off),
            Endian::Big => crate::bytes::be64(b, off),
        }
    }
}

/// The log: a circular array of basic blocks on the device.
pub(super) struct Log<'a> {
    dev: &'a dyn LogDevice,
    pub(super) geo: &'a LogGeometry,
    /// Size in basic blocks.
    pub(super) blocks: u64,
}

impl<'a> Log<'a> {
    fn new(dev: &'a dyn LogDevice, geo: &'a LogGeometry) -> Result<Log<'a>> {
        if geo.len > MAX_LOG_BYTES || geo.len % BBSIZE != 0 || geo.len / BBSIZE < MIN_LOG_BLOCKS {
            return Err(Error::corrupt(format!(
                "a log of {} bytes (512-byte multiples from {} bytes to 2 GiB expected)",
                geo.len,
                MIN_LOG_BLOCKS * BBSIZE
            ))
            .structure("xfs log")
            .at(geo.start));
        }
        let pow2 = |v: u32, lo: u32, hi: u32| (lo..=hi).contains(&v) && v.is_power_of_two();
        if !pow2(geo.sector_size, 512, 32768)
            || !pow2(geo.block_size, 512, 65536)
            || !pow2(geo.inode_size, 256, geo.block_size.min(2048))
            || geo.ag_block_log > 31
        {
            return Err(Error::corrupt(format!(
                "log geometry: {}-byte log sectors, {}-byte blocks, {}-byte inodes, AG block log {}",
                geo.sector_size, geo.block_size, geo.inode_size, geo.ag_block_log
            ))
            .structure("xfs log")
            .at(geo.start));
        }
        if geo.start.checked_add(geo.len).is_none() {
            return Err(Error::corrupt("the log ends past 2^64").structure("xfs log"));
        }
        Ok(Log {
            dev,
            geo,
            blocks: geo.len / BBSIZE,
        })
    }

    /// The device byte offset of log block `blk` (taken modulo the log size).
    pub(super) fn offset_of(&self, blk: u64) -> u64 {
        self.geo.start + (blk % self.blocks) * BBSIZE
    }

    /// Reads `n` blocks from log block `blk`, wrapping around the physical end.
    pub(super) fn read(&self, blk: u64, n: u64) -> Result<Vec<u8>> {
        if n > self.blocks {
            return Err(Error::corrupt(format!(
                "a read of {n} blocks from a log of {} blocks",
                self.blocks
            ))
            .structure("xfs log")
            .at(self.offset_of(blk)));
        }
        let blk = blk % self.blocks;
        let mut buf = vec![0u8; (n * BBSIZE) as usize];
        let first = n.min(self.blocks - blk);
        let (a, b) = buf.split_at_mut((first * BBSIZE) as usize);
        self.dev.read(self.offset_of(blk), a)?;
        if !b.is_empty() {
            self.dev.read(self.geo.start, b)?;
        }
        Ok(buf)
    }

    /// The cycle number a block was last written in (`xlog_get_cycle`).
    pub(super) fn cycle(&self, blk: u64) -> Result<u32> {
        let b = self.read(blk, 1)?;
        Ok(cycle_of(&b))
    }
}

/// The cycle number stamped at the start of a basic block.
pub(super) fn cycle_of(b: &[u8]) -> u32 {
    if crate::bytes::be32(b, 0) == record::MAGIC {
        crate::bytes::be32(b, 4)
    } else {
        crate::bytes::be32(b, 0)
    }
}

/// LSN order (`XFS_LSN_CMP`: the cycle, then the block).
pub(super) fn lsn_cmp(a: u64, b: u64) -> std::cmp::Ordering {
    ((a >> 32) as u32, a as u32).cmp(&((b >> 32) as u32, b as u32))
}

/// Human form of an LSN, as xfs_logprint writes it.
pub(super) fn lsn_str(lsn: u64) -> String {
    format!("{}/{}", lsn >> 32, lsn as u32)
}

struct SliceDev<'a>(&'a [u8]);

impl LogDevice for SliceDev<'_> {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        buf.fill(0);
        let start = offset.min(self.0.len() as u64) as usize;
        let end = offset
            .saturating_add(buf.len() as u64)
            .min(self.0.len() as u64) as usize;
        buf[..end - start].copy_from_slice(&self.0[start..end]);
        Ok(())
    }
}

/// Fuzzing entry point: `data` is a log (its first record header names the UUID), on a
/// 64 MiB device where reads outside `data` are zeros; recovered as v5 and as v4, as it is
/// and with every record's CRC made to match (so mutations reach the code behind the CRC
/// check). Never panics or hangs on any input.
#[doc(hidden)]
pub fn fuzz_log(data: &[u8]) {
    fuzz_one(data);
    let mut fixed = data.to_vec();
    record::fix_crcs(&mut fixed, true);
    if fixed != data {
        fuzz_one(&fixed);
    }
}

fn fuzz_one(data: &[u8]) {
    let len = (data.len() as u64 / BBSIZE * BBSIZE).max(MIN_LOG_BLOCKS * BBSIZE);
    let mut uuid = [0u8; 16];
    if let Some(u) = data.get(304..320) {
        uuid.copy_from_slice(u);
    }
    for v5 in [true, false] {
        let geo = LogGeometry {
            start: 0,
            len,
            sector_size: 512,
            block_size: 4096,
            stripe_unit: 0,
            v5,
            logv2: true,
            uuid,
            meta_uuid: uuid,
            inode_size: 512,
            fs_bytes: 64 << 20,
            ag_blocks: 4096,
            ag_count: 4,
            ag_block_log: 12,
        };
        let _ = recover(&SliceDev(data), &geo);
    }
}
