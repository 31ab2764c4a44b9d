//! ext2, ext3 and ext4, read-only, in process, with JBD2 journal replay in memory.
//!
//! [`ExtFs::open`] reads the superblock and group descriptors (checksums verified unless
//! turned off), replays a dirty journal into an overlay of blocks (the image is never written)
//! and then serves the [`Filesystem`] trait. Block maps (direct to triple indirect), extent
//! trees of any depth, linear and htree directories (htree read linearly), inline data, fast
//! and slow symlinks, in-inode and block xattrs (and `ea_inode` values) are read.
//!
//! Refused per filesystem: `compression`, `dirdata`, external journal devices, unknown
//! incompatible features. Refused per file: encrypted contents and names. Everything read
//! from the image is bounded (groups, directory sizes, extent depth, symlink and xattr sizes).

mod csum;
mod dir;
mod extent;
mod inode;
#[doc(hidden)]
pub mod journal;
mod superblock;
mod xattr;

use std::collections::BTreeMap;
use std::sync::Arc;

use guestctl_block::BlockDevice;

use self::csum::{crc16, crc32c_raw};
use self::inode::{flags, inode_seed, verify_inode_csum, Inode};
use self::superblock::{
    compat, incompat, ro_compat, Superblock, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE,
};
use crate::bytes::{le16, le32};
use crate::cache::BlockCache;
use crate::{
    DirEntry, Error, ErrorKind, FileType, Filesystem, FsInfo, Metadata, NodeId, OpenOptions,
    Result, Xattr,
};

/// The longest symlink target accepted (Linux's `PATH_MAX`).
const MAX_SYMLINK: u64 = 4096;
/// The largest directory read (bytes); larger is treated as corrupt.
const MAX_DIR_SIZE: u64 = 1 << 30;
/// The most entries returned for one directory.
const MAX_DIR_ENTRIES: usize = 4 << 20;
/// The largest single xattr value read.
const MAX_XATTR_VALUE: u64 = 16 << 20;
/// The most extent-tree nodes visited for one mapping request.
const MAX_EXTENT_NODES: u32 = 1 << 20;
/// The most group descriptors loaded (16 Mi groups: 2 PiB at 4 KiB blocks).
const MAX_GROUPS: u64 = 1 << 24;
/// Metadata block cache size.
const CACHE_BYTES: usize = 64 << 20;

/// Block-group facts the reader needs.
#[derive(Debug, Clone, Copy)]
struct Group {
    inode_table: u64,
    /// Inodes at or beyond this index of the group are not initialised (read as unused).
    inodes_initialised: u32,
}

/// A run of logical blocks: physical start, or `None` for a hole / unwritten extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    lblk: u64,
    len: u64,
    pblk: Option<u64>,
}

/// An ext2/3/4 filesystem opened read-only. `Send + Sync`.
#[derive(Debug)]
pub struct ExtFs {
    dev: Arc<dyn BlockDevice>,
    sb: Superblock,
    bs: usize,
    groups: Vec<Group>,
    /// Filesystem block → (physical block holding its replayed copy, escaped).
    overlay: BTreeMap<u64, (u64, bool)>,
    cache: BlockCache,
    verify: bool,
    seed: u32,
    notes: Vec<String>,
}

fn corrupt_at(structure: &'static str, offset: u64, msg: impl Into<String>) -> Error {
    Error::corrupt(msg.into()).structure(structure).at(offset)
}

impl ExtFs {
    /// Opens the ext2/3/4 filesystem on `dev`.
    pub fn open(dev: Arc<dyn BlockDevice>, opts: &OpenOptions) -> Result<ExtFs> {
        let mut raw = vec![0u8; SUPERBLOCK_SIZE];
        dev.read_exact_at(SUPERBLOCK_OFFSET, &mut raw)
            .map_err(|e| {
                Error::from(e)
                    .structure("ext superblock")
                    .at(SUPERBLOCK_OFFSET)
            })?;
        let sb = Superblock::parse(&raw)?;
        let bs = sb.block_size() as usize;
        let mut fs = ExtFs {
            dev,
            seed: sb.csum_seed(),
            sb,
            bs,
            groups: Vec::new(),
            overlay: BTreeMap::new(),
            cache: BlockCache::new(CACHE_BYTES, bs),
            verify: opts.verify_checksums,
            notes: Vec::new(),
        };
        if let Some(names) = fs.sb.unknown_incompat() {
            return Err(Error::unsupported(format!(
                "ext filesystem uses incompatible features this reader does not support: {names}"
            ))
            .structure("ext superblock"));
        }
        if fs.verify {
            fs.sb.verify_checksum()?;
        }
        fs.load_groups()?;
        if fs.sb.has_incompat(incompat::RECOVER) {
            if !fs.sb.has_compat(compat::HAS_JOURNAL) {
                fs.notes
                    .push("needs_recovery is set but there is no journal: ignored".into());
            } else if opts.replay_journal {
                fs.replay()?;
            } else {
                fs.notes.push(
                    "the journal needs recovery but replay is turned off: the filesystem may read inconsistently"
                        .into(),
                );
            }
        }
        if fs.dev.size() < fs.sb.blocks_count.saturating_mul(bs as u64) {
            fs.notes.push(format!(
                "the device ({} bytes) is smaller than the filesystem ({} blocks of {bs}): reads past its end fail",
                fs.dev.size(),
                fs.sb.blocks_count
            ));
        }
        if !fs.verify && (fs.sb.has_metadata_csum() || fs.sb.has_gdt_csum()) {
            fs.notes.push("metadata checksums are not verified".into());
        }
        Ok(fs)
    }

    /// Notes from opening (journal replayed, checksums off, ...).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    // ---- block access -------------------------------------------------------------------

    fn blocks_count(&self) -> u64 {
        self.sb.blocks_count
    }

    /// Reads `buf.len()` bytes at byte `offset` of the filesystem, with replayed journal
    /// blocks patched in.
    fn read_bytes(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.dev.read_exact_at(offset, buf)?;
        if self.overlay.is_empty() || buf.is_empty() {
            return Ok(());
        }
        let bs = self.bs as u64;
        let first = offset / bs;
        let last = (offset + buf.len() as u64 - 1) / bs;
        let mut block = vec![0u8; self.bs];
        for (&b, &(phys, escaped)) in self.overlay.range(first..=last) {
            self.dev.read_exact_at(phys * bs, &mut block)?;
            if escaped {
                block[..4].copy_from_slice(&journal::JBD2_MAGIC.to_be_bytes());
            }
            let bstart = b * bs;
            let from = bstart.max(offset);
            let to = (bstart + bs).min(offset + buf.len() as u64);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&block[(from - bstart) as usize..(to - bstart) as usize]);
        }
        Ok(())
    }

    /// A metadata block, through the cache.
    fn block(&self, blk: u64, structure: &'static str) -> Result<Arc<[u8]>> {
        if blk >= self.blocks_count() {
            return Err(corrupt_at(
                structure,
                blk.saturating_mul(self.bs as u64),
                format!(
                    "block {blk} is beyond the end of the filesystem ({} blocks)",
                    self.blocks_count()
                ),
            ));
        }
        if let Some(b) = self.cache.get(blk) {
            return Ok(b);
        }
        let mut v = vec![0u8; self.bs];
        self.read_bytes(blk * self.bs as u64, &mut v)
            .map_err(|e| e.structure(structure).at(blk * self.bs as u64))?;
        let a: Arc<[u8]> = Arc::from(v);
        self.cache.insert(blk, a.clone());
        Ok(a)
    }

    // ---- group descriptors --------------------------------------------------------------

    fn desc_offset(&self, g: u64) -> u64 {
        let ds = self.sb.desc_size() as u64;
        let bs = self.bs as u64;
        let dpb = bs / ds;
        let first = u64::from(self.sb.first_data_block);
        // The superblock's own block: 1 with 1 KiB blocks (even when bigalloc makes the first
        // data block 0), else 0.
        let sb_block = SUPERBLOCK_OFFSET / bs;
        let block = if !self.sb.has_incompat(incompat::META_BG)
            || g / dpb < u64::from(self.sb.first_meta_bg)
        {
            sb_block + 1 + g / dpb
        } else {
            let mg_first = (g / dpb) * dpb;
            let mut has_super = u64::from(self.sb.group_has_super(mg_first));
            if bs == 1024 && mg_first == 0 && first == 0 {
                has_super += 1;
            }
            first + mg_first * u64::from(self.sb.blocks_per_group) + has_super
        };
        block * bs + (g % dpb) * ds
    }

    fn load_groups(&mut self) -> Result<()> {
        let mut count = self.sb.group_count();
        let dev_blocks = self.dev.size() / self.bs as u64;
        let dev_groups = dev_blocks.div_ceil(u64::from(self.sb.blocks_per_group)) + 1;
        if count > dev_groups {
            self.notes.push(format!(
                "the superblock claims {count} block groups; only {dev_groups} fit on the device"
            ));
            count = dev_groups;
        }
        if count > MAX_GROUPS {
            return Err(Error::limit(format!("{count} block groups")).structure("ext superblock"));
        }
        let ds = self.sb.desc_size();
        let itable_blocks = (u64::from(self.sb.inodes_per_group) * u64::from(self.sb.inode_size))
            .div_ceil(self.bs as u64);
        let csum_ok = self.sb.has_metadata_csum() || self.sb.has_gdt_csum();
        let mut groups = Vec::with_capacity(count as usize);
        let mut cur: Option<(u64, Vec<u8>)> = None;
        for g in 0..count {
            let off = self.desc_offset(g);
            let blk = off / self.bs as u64;
            if cur.as_ref().map(|c| c.0) != Some(blk) {
                let mut b = vec![0u8; self.bs];
                self.read_bytes(blk * self.bs as u64, &mut b)
                    .map_err(|e| e.structure("ext group descriptor table").at(off))?;
                cur = Some((blk, b));
            }
            let block = &cur.as_ref().expect("just filled").1;
            let in_block = (off % self.bs as u64) as usize;
            let d = &block[in_block..in_block + ds];
            if self.verify {
                self.verify_desc(g, d, off)?;
            }
            let hi = |o: usize| {
                if ds >= 64 {
                    u64::from(le32(d, o)) << 32
                } else {
                    0
                }
            };
            let inode_table = u64::from(le32(d, 0x8)) | hi(0x28);
            let bg_flags = le16(d, 0x12);
            let unused = u32::from(le16(d, 0x1C))
                | if ds >= 64 {
                    u32::from(le16(d, 0x32)) << 16
                } else {
                    0
                };
            let ipg = self.sb.inodes_per_group;
            let inodes_initialised = if !csum_ok {
                ipg
            } else if bg_flags & 0x1 != 0 {
                0
            } else {
                ipg.saturating_sub(unused)
            };
            if inode_table == 0 || inode_table.saturating_add(itable_blocks) > self.sb.blocks_count
            {
                // Kept: inodes of this group fail when read, the others stay readable.
                groups.push(Group {
                    inode_table: u64::MAX,
                    inodes_initialised: 0,
                });
                self.notes.push(format!(
                    "block group {g}: inode table at block {inode_table} is outside the filesystem"
                ));
                continue;
            }
            groups.push(Group {
                inode_table,
                inodes_initialised,
            });
        }
        self.groups = groups;
        Ok(())
    }

    fn verify_desc(&self, g: u64, d: &[u8], off: u64) -> Result<()> {
        let stored = le16(d, 0x1E);
        let g32 = (g as u32).to_le_bytes();
        let computed = if self.sb.has_metadata_csum() {
            let mut c = crc32c_raw(self.seed, &g32);
            c = crc32c_raw(c, &d[..0x1E]);
            c = crc32c_raw(c, &[0, 0]);
            if d.len() > 0x20 {
                c = crc32c_raw(c, &d[0x20..]);
            }
            (c & 0xFFFF) as u16
        } else if self.sb.has_gdt_csum() {
            let mut c = crc16(!0, &self.sb.uuid);
            c = crc16(c, &g32);
            c = crc16(c, &d[..0x1E]);
            if d.len() > 0x20 {
                c = crc16(c, &d[0x20..]);
            }
            c
        } else {
            return Ok(());
        };
        if computed != stored {
            return Err(Error::new(
                ErrorKind::Checksum,
                format!("group {g} descriptor checksum {stored:#06x} does not match the computed {computed:#06x}"),
            )
            .structure("ext group descriptor")
            .at(off));
        }
        Ok(())
    }

    // ---- journal -------------------------------------------------------------------------

    fn replay(&mut self) -> Result<()> {
        let jino = u64::from(self.sb.journal_inum);
        if jino == 0 {
            return Err(Error::unsupported(
                "the journal is on an external device (needs_recovery without a journal inode)",
            )
            .structure("ext superblock"));
        }
        let ji = self.inode(jino).map_err(|e| e.structure("journal inode"))?;
        let jblocks = ji.size / self.bs as u64;
        let runs = self.map(&ji, 0, jblocks)?;
        let src = JournalDev {
            fs: self,
            runs: &runs,
            blocks: jblocks,
        };
        let replay = journal::replay(&src, self.sb.blocks_count)
            .map_err(|e| e.inode(jino).structure("jbd2 journal"))?;
        let Some(replay) = replay else {
            self.notes
                .push("needs_recovery is set but the journal is empty".into());
            return Ok(());
        };
        let mut overlay = BTreeMap::new();
        for (fs_block, copy) in &replay.blocks {
            let phys = src.phys(copy.journal_block)?;
            overlay.insert(*fs_block, (phys, copy.escaped));
        }
        self.notes.push(format!(
            "journal replayed in memory: {} transactions, {} blocks",
            replay.transactions,
            overlay.len()
        ));
        self.notes.extend(replay.notes.iter().cloned());
        if self.sb.has_compat(compat::FAST_COMMIT) {
            self.notes.push(
                "fast_commit is enabled: fast-commit records (after the last full commit) are not replayed"
                    .into(),
            );
        }
        self.overlay = overlay;
        // Metadata seen so far may be stale: start again from the replayed superblock.
        self.cache = BlockCache::new(CACHE_BYTES, self.bs);
        let mut raw = vec![0u8; SUPERBLOCK_SIZE];
        self.read_bytes(SUPERBLOCK_OFFSET, &mut raw)?;
        let sb = Superblock::parse(&raw).map_err(|e| e.structure("replayed ext superblock"))?;
        if sb.block_size() as usize != self.bs {
            return Err(
                Error::corrupt("the journal changes the block size").structure("jbd2 journal")
            );
        }
        if self.verify {
            // The kernel recomputes the superblock checksum when it writes it back.
            sb.verify_checksum().or_else(|e| {
                if e.kind() == ErrorKind::Checksum {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
        }
        self.seed = sb.csum_seed();
        self.sb = sb;
        self.load_groups()
    }

    // ---- inodes --------------------------------------------------------------------------

    fn inode(&self, ino: u64) -> Result<Inode> {
        if ino == 0 || ino > u64::from(self.sb.inodes_count) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("inode {ino} does not exist (1..={})", self.sb.inodes_count),
            )
            .inode(ino));
        }
        let ipg = u64::from(self.sb.inodes_per_group);
        let g = (ino - 1) / ipg;
        let idx = (ino - 1) % ipg;
        let Some(group) = self.groups.get(g as usize) else {
            return Err(Error::corrupt(format!(
                "inode {ino} is in block group {g}, beyond the device"
            ))
            .inode(ino));
        };
        if group.inode_table == u64::MAX {
            return Err(
                Error::corrupt(format!("the inode table of block group {g} is invalid")).inode(ino),
            );
        }
        if idx >= u64::from(group.inodes_initialised) {
            return Err(Error::corrupt(format!(
                "inode {ino} is in the uninitialised part of block group {g} (not in use)"
            ))
            .inode(ino));
        }
        let isz = u64::from(self.sb.inode_size);
        let byte = group.inode_table * self.bs as u64 + idx * isz;
        let blk = byte / self.bs as u64;
        let block = self.block(blk, "inode table").map_err(|e| e.inode(ino))?;
        let o = (byte % self.bs as u64) as usize;
        let raw = &block[o..o + isz as usize];
        if self.verify && self.sb.has_metadata_csum() {
            if let Err((stored, computed)) = verify_inode_csum(self.seed, ino, raw) {
                return Err(Error::new(
                    ErrorKind::Checksum,
                    format!("inode checksum {stored:#010x} does not match the computed {computed:#010x}"),
                )
                .structure("inode")
                .at(byte)
                .inode(ino));
            }
        }
        let huge = self.sb.feature_ro_compat & ro_compat::HUGE_FILE != 0;
        let inode = Inode::parse(ino, raw, huge, self.bs as u32)
            .map_err(|m| corrupt_at("inode", byte, m).inode(ino))?;
        if inode.mode == 0 && inode.links == 0 {
            return Err(corrupt_at("inode", byte, "inode is not in use").inode(ino));
        }
        Ok(inode)
    }

    fn node_inode(&self, node: NodeId) -> Result<Inode> {
        self.inode(node.0)
    }

    // ---- block mapping ---------------------------------------------------------------------

    /// Maps logical blocks `[lblk, lblk + count)` of `ino` to runs (holes included).
    fn map(&self, ino: &Inode, lblk: u64, count: u64) -> Result<Vec<Run>> {
        let mut runs = Vec::new();
        if count == 0 {
            return Ok(runs);
        }
        if ino.has_flag(flags::EXTENTS) {
            let mut exts = Vec::new();
            let mut budget = MAX_EXTENT_NODES;
            let seed = inode_seed(self.seed, ino.ino, ino.generation);
            self.walk_extents(
                ino,
                &ino.i_block,
                None,
                lblk,
                lblk + count,
                seed,
                &mut exts,
                &mut budget,
            )?;
            let mut next = lblk;
            for e in exts {
                let s = u64::from(e.lblk).max(lblk);
                let end = (u64::from(e.lblk) + u64::from(e.len)).min(lblk + count);
                if end <= s {
                    continue;
                }
                if s > next {
                    runs.push(Run {
                        lblk: next,
                        len: s - next,
                        pblk: None,
                    });
                }
                let pblk = e.pblk + (s - u64::from(e.lblk));
                if pblk + (end - s) > self.blocks_count() {
                    return Err(Error::corrupt(format!(
                        "extent maps to blocks {pblk}..{} beyond the filesystem",
                        pblk + (end - s)
                    ))
                    .structure("extent")
                    .inode(ino.ino));
                }
                runs.push(Run {
                    lblk: s,
                    len: end - s,
                    pblk: (!e.uninit).then_some(pblk),
                });
                next = end;
            }
            if next < lblk + count {
                runs.push(Run {
                    lblk: next,
                    len: lblk + count - next,
                    pblk: None,
                });
            }
        } else {
            self.map_indirect(ino, lblk, count, &mut runs)?;
        }
        Ok(runs)
    }

    #[allow(clippy::too_many_arguments)]
    fn walk_extents(
        &self,
        ino: &Inode,
        node: &[u8],
        expect_depth: Option<u16>,
        from: u64,
        to: u64,
        seed: u32,
        out: &mut Vec<extent::Extent>,
        budget: &mut u32,
    ) -> Result<()> {
        *budget = budget.checked_sub(1).ok_or_else(|| {
            Error::limit("extent tree has too many nodes")
                .structure("extent tree")
                .inode(ino.ino)
        })?;
        let (h, parsed) = extent::parse(node).map_err(|m| {
            Error::corrupt(m)
                .structure("extent tree node")
                .inode(ino.ino)
        })?;
        if let Some(d) = expect_depth {
            if h.depth != d {
                return Err(Error::corrupt(format!(
                    "extent node depth {} where {d} was expected",
                    h.depth
                ))
                .structure("extent tree node")
                .inode(ino.ino));
            }
        }
        match parsed {
            extent::Node::Leaf(v) => {
                out.extend(v.into_iter().filter(|e| {
                    u64::from(e.lblk) < to && u64::from(e.lblk) + u64::from(e.len) > from
                }));
            }
            extent::Node::Index(v) => {
                for (i, &(start, child)) in v.iter().enumerate() {
                    let end = v.get(i + 1).map_or(u64::MAX, |n| u64::from(n.0));
                    if u64::from(start) >= to || end <= from {
                        continue;
                    }
                    let block = self
                        .block(child, "extent tree block")
                        .map_err(|e| e.inode(ino.ino))?;
                    let boff = child * self.bs as u64;
                    if self.verify && self.sb.has_metadata_csum() {
                        let (ch, _) = extent::parse(&block)
                            .map_err(|m| corrupt_at("extent tree block", boff, m).inode(ino.ino))?;
                        if let Some(t) = extent::tail_offset(&ch, block.len()) {
                            let stored = le32(&block, t);
                            let computed = crc32c_raw(seed, &block[..t]);
                            if stored != computed {
                                return Err(Error::new(
                                    ErrorKind::Checksum,
                                    format!("extent block checksum {stored:#010x} does not match the computed {computed:#010x}"),
                                )
                                .structure("extent tree block")
                                .at(boff)
                                .inode(ino.ino));
                            }
                        }
                    }
                    self.walk_extents(ino, &block, Some(h.depth - 1), from, to, seed, out, budget)
                        .map_err(|e| e.at(boff))?;
                }
            }
        }
        Ok(())
    }

    fn map_indirect(&self, ino: &Inode, lblk: u64, count: u64, runs: &mut Vec<Run>) -> Result<()> {
        let apb = (self.bs / 4) as u64;
        let mut leaf: Option<(u64, Arc<[u8]>)> = None;
        let push = |runs: &mut Vec<Run>, l: u64, p: Option<u64>| {
            if let Some(last) = runs.last_mut() {
                let contiguous = match (last.pblk, p) {
                    (None, None) => true,
                    (Some(a), Some(b)) => a + last.len == b,
                    _ => false,
                };
                if contiguous && last.lblk + last.len == l {
                    last.len += 1;
                    return;
                }
            }
            runs.push(Run {
                lblk: l,
                len: 1,
                pblk: p,
            });
        };
        let ptr = |b: &[u8], i: u64| u64::from(le32(b, (i * 4) as usize));
        let end = lblk + count;
        let mut l = lblk;
        while l < end {
            // Resolve the leaf (the block holding the pointer for `l`) and its index range.
            let (base, span, leaf_blk): (u64, u64, Option<u64>) = if l < 12 {
                let p = ptr(&ino.i_block, l);
                push(runs, l, self.check_ptr(p, ino)?);
                l += 1;
                continue;
            } else if l < 12 + apb {
                (12, apb, Some(ptr(&ino.i_block, 12)))
            } else if l < 12 + apb + apb * apb {
                let rel = l - 12 - apb;
                let dind = self.check_ptr(ptr(&ino.i_block, 13), ino)?;
                let lb = match dind {
                    None => None,
                    Some(d) => Some(ptr(&self.block(d, "indirect block")?, rel / apb)),
                };
                (12 + apb + (rel / apb) * apb, apb, lb)
            } else if l < 12 + apb + apb * apb + apb * apb * apb {
                let rel = l - 12 - apb - apb * apb;
                let tind = self.check_ptr(ptr(&ino.i_block, 14), ino)?;
                let lb = match tind {
                    None => None,
                    Some(t) => {
                        let d = ptr(&self.block(t, "indirect block")?, rel / (apb * apb));
                        match self.check_ptr(d, ino)? {
                            None => None,
                            Some(d) => {
                                Some(ptr(&self.block(d, "indirect block")?, (rel / apb) % apb))
                            }
                        }
                    }
                };
                (12 + apb + apb * apb + (rel / apb) * apb, apb, lb)
            } else {
                // Beyond what a block map can address: a hole.
                push(runs, l, None);
                runs.last_mut().expect("just pushed").len += end - l - 1;
                break;
            };
            let stop = (base + span).min(end);
            match self.check_ptr(leaf_blk.unwrap_or(0), ino)? {
                None => {
                    for x in l..stop {
                        push(runs, x, None);
                    }
                }
                Some(lb) => {
                    let data = match &leaf {
                        Some((b, d)) if *b == lb => d.clone(),
                        _ => {
                            let d = self
                                .block(lb, "indirect block")
                                .map_err(|e| e.inode(ino.ino))?;
                            leaf = Some((lb, d.clone()));
                            d
                        }
                    };
                    for x in l..stop {
                        let p = ptr(&data, x - base);
                        push(runs, x, self.check_ptr(p, ino)?);
                    }
                }
            }
            l = stop;
        }
        Ok(())
    }

    fn check_ptr(&self, p: u64, ino: &Inode) -> Result<Option<u64>> {
        if p == 0 {
            Ok(None)
        } else if p >= self.blocks_count() {
            Err(
                Error::corrupt(format!("block pointer {p} is beyond the filesystem"))
                    .structure("block map")
                    .inode(ino.ino),
            )
        } else {
            Ok(Some(p))
        }
    }

    // ---- contents ------------------------------------------------------------------------

    /// The bytes of an inline-data inode (`i_block` then the `system.data` xattr).
    fn inline_data(&self, ino: &Inode) -> Result<Vec<u8>> {
        let mut data = ino.i_block.to_vec();
        for e in self.raw_xattrs(ino)? {
            if e.index == 7 && e.name == b"data" {
                if let xattr::Value::Inline(v) = e.value {
                    data.extend_from_slice(&v);
                }
            }
        }
        Ok(data)
    }

    fn read_inode_at(&self, ino: &Inode, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if ino.has_flag(flags::ENCRYPT) {
            return Err(Error::unsupported("file contents are encrypted (fscrypt)").inode(ino.ino));
        }
        if offset >= ino.size || buf.is_empty() {
            return Ok(0);
        }
        let len = (buf.len() as u64).min(ino.size - offset) as usize;
        let buf = &mut buf[..len];
        if ino.has_flag(flags::INLINE_DATA) {
            let data = self.inline_data(ino)?;
            let start = offset as usize;
            let avail = data.len().saturating_sub(start).min(len);
            buf[..avail]
                .copy_from_slice(&data[start.min(data.len())..start.min(data.len()) + avail]);
            buf[avail..].fill(0);
            return Ok(len);
        }
        let bs = self.bs as u64;
        let first = offset / bs;
        let last = (offset + len as u64 - 1) / bs;
        let runs = self.map(ino, first, last - first + 1)?;
        for r in runs {
            let rstart = (r.lblk * bs).max(offset);
            let rend = ((r.lblk + r.len) * bs).min(offset + len as u64);
            if rend <= rstart {
                continue;
            }
            let dst = &mut buf[(rstart - offset) as usize..(rend - offset) as usize];
            match r.pblk {
                None => dst.fill(0),
                Some(p) => {
                    let dev_off = p * bs + (rstart - r.lblk * bs);
                    self.read_bytes(dev_off, dst)
                        .map_err(|e| e.structure("file data").at(dev_off).inode(ino.ino))?;
                }
            }
        }
        Ok(len)
    }

    // ---- directories -----------------------------------------------------------------------

    fn dir_entries(&self, ino: &Inode) -> Result<Vec<DirEntry>> {
        if ino.file_type() != FileType::Directory {
            return Err(Error::new(ErrorKind::NotADirectory, "not a directory").inode(ino.ino));
        }
        if ino.has_flag(flags::ENCRYPT) {
            return Err(
                Error::unsupported("directory names are encrypted (fscrypt)").inode(ino.ino),
            );
        }
        let has_ft = self.sb.has_incompat(incompat::FILETYPE);
        let max_ino = u64::from(self.sb.inodes_count);
        let mut out = Vec::new();
        if ino.has_flag(flags::INLINE_DATA) {
            let data = self.inline_data(ino)?;
            // The first four bytes are the parent's inode number, then entries.
            let mut regions = vec![&data[4..inode::I_BLOCK_LEN]];
            if data.len() > inode::I_BLOCK_LEN {
                regions.push(&data[inode::I_BLOCK_LEN..]);
            }
            for r in regions {
                dir::parse_entries(r, self.bs, has_ft, max_ino, &mut out).map_err(|(o, m)| {
                    Error::corrupt(format!("{m} (at byte {o} of the inline directory)"))
                        .structure("inline directory")
                        .inode(ino.ino)
                })?;
            }
            return Ok(out);
        }
        if ino.size > MAX_DIR_SIZE {
            return Err(Error::limit(format!("directory of {} bytes", ino.size)).inode(ino.ino));
        }
        let bs = self.bs as u64;
        let nblocks = ino.size.div_ceil(bs);
        let csum = self.verify && self.sb.has_metadata_csum();
        let seed = inode_seed(self.seed, ino.ino, ino.generation);
        let indexed = ino.has_flag(flags::INDEX);
        for r in self.map(ino, 0, nblocks)? {
            let Some(p0) = r.pblk else { continue };
            for i in 0..r.len {
                let pblk = p0 + i;
                let lblk = r.lblk + i;
                let block = self
                    .block(pblk, "directory block")
                    .map_err(|e| e.inode(ino.ino))?;
                let boff = pblk * bs;
                let dx = (indexed && lblk == 0) || dir::is_dx_node(&block, self.bs);
                let tail = dir::tail_checksum(&block);
                if csum && !dx {
                    let Some(stored) = tail else {
                        return Err(Error::new(
                            ErrorKind::Checksum,
                            "directory block has no checksum tail although metadata_csum is on",
                        )
                        .structure("directory block")
                        .at(boff)
                        .inode(ino.ino));
                    };
                    let computed = crc32c_raw(seed, &block[..self.bs - dir::TAIL_LEN]);
                    if computed != stored {
                        return Err(Error::new(
                            ErrorKind::Checksum,
                            format!("directory block checksum {stored:#010x} does not match the computed {computed:#010x}"),
                        )
                        .structure("directory block")
                        .at(boff)
                        .inode(ino.ino));
                    }
                }
                // The checksum tail is itself a valid empty entry (inode 0, rec_len 12), and an
                // htree root's `..` entry spans the whole block: parse every block whole.
                dir::parse_entries(&block, self.bs, has_ft, max_ino, &mut out).map_err(
                    |(o, m)| corrupt_at("directory entry", boff + o as u64, m).inode(ino.ino),
                )?;
                if out.len() > MAX_DIR_ENTRIES {
                    return Err(Error::limit(format!(
                        "directory has more than {MAX_DIR_ENTRIES} entries"
                    ))
                    .structure("directory")
                    .inode(ino.ino));
                }
            }
        }
        Ok(out)
    }

    // ---- xattrs ----------------------------------------------------------------------------

    fn raw_xattrs(&self, ino: &Inode) -> Result<Vec<xattr::Entry>> {
        let mut out = Vec::new();
        if let Some(a) = ino.xattr_area {
            if le32(&ino.raw, a) == xattr::MAGIC {
                let e =
                    xattr::parse(&ino.raw, a + 4, a + 4, MAX_XATTR_VALUE).map_err(|(o, m)| {
                        Error::corrupt(format!("{m} (at byte {o} of the inode)"))
                            .structure("in-inode xattrs")
                            .inode(ino.ino)
                    })?;
                out.extend(e);
            }
        }
        if ino.file_acl != 0 {
            let blk = ino.file_acl;
            let boff = blk.saturating_mul(self.bs as u64);
            let block = self
                .block(blk, "xattr block")
                .map_err(|e| e.inode(ino.ino))?;
            let magic = le32(&block, 0);
            if magic != xattr::MAGIC {
                return Err(
                    corrupt_at("xattr block", boff, format!("magic {magic:#010x}")).inode(ino.ino),
                );
            }
            if self.verify && self.sb.has_metadata_csum() {
                let stored = le32(&block, 0x10);
                let mut c = crc32c_raw(self.seed, &blk.to_le_bytes());
                c = crc32c_raw(c, &block[..0x10]);
                c = crc32c_raw(c, &[0; 4]);
                c = crc32c_raw(c, &block[0x14..]);
                if c != stored {
                    return Err(Error::new(
                        ErrorKind::Checksum,
                        format!("xattr block checksum {stored:#010x} does not match the computed {c:#010x}"),
                    )
                    .structure("xattr block")
                    .at(boff)
                    .inode(ino.ino));
                }
            }
            let e = xattr::parse(&block, xattr::BLOCK_HEADER, 0, MAX_XATTR_VALUE)
                .map_err(|(o, m)| corrupt_at("xattr block", boff + o as u64, m).inode(ino.ino))?;
            out.extend(e);
        }
        Ok(out)
    }

    fn ea_inode_value(&self, owner: u64, vino: u64, size: u64) -> Result<Vec<u8>> {
        let vi = self.inode(vino).map_err(|e| e.inode(owner))?;
        if !vi.has_flag(flags::EA_INODE) || vi.size < size {
            return Err(Error::corrupt(format!(
                "xattr value inode {vino} is not a matching ea_inode"
            ))
            .structure("xattr")
            .inode(owner));
        }
        let mut v = vec![0u8; size as usize];
        let n = self.read_inode_at(&vi, 0, &mut v)?;
        v.truncate(n);
        Ok(v)
    }

    fn symlink_target(&self, ino: &Inode) -> Result<Vec<u8>> {
        if ino.file_type() != FileType::Symlink {
            return Err(Error::new(ErrorKind::InvalidInput, "not a symbolic link").inode(ino.ino));
        }
        if ino.has_flag(flags::ENCRYPT) {
            return Err(Error::unsupported("symlink target is encrypted (fscrypt)").inode(ino.ino));
        }
        if ino.size > MAX_SYMLINK {
            return Err(
                Error::corrupt(format!("symlink target of {} bytes", ino.size))
                    .structure("symlink")
                    .inode(ino.ino),
            );
        }
        let size = ino.size as usize;
        if ino.has_flag(flags::INLINE_DATA) {
            let d = self.inline_data(ino)?;
            return Ok(d[..size.min(d.len())].to_vec());
        }
        let fast = if self.sb.has_incompat(incompat::EA_INODE) {
            size < inode::I_BLOCK_LEN
        } else {
            let ea_blocks = if ino.file_acl != 0 {
                (self.bs / 512) as u64
            } else {
                0
            };
            ino.blocks_512.saturating_sub(ea_blocks) == 0
        };
        if fast {
            if size > inode::I_BLOCK_LEN {
                return Err(Error::corrupt(format!("fast symlink of {size} bytes"))
                    .structure("symlink")
                    .inode(ino.ino));
            }
            return Ok(ino.i_block[..size].to_vec());
        }
        let mut v = vec![0u8; size];
        let n = self.read_inode_at(ino, 0, &mut v)?;
        v.truncate(n);
        Ok(v)
    }
}

/// The journal inode seen as a [`journal::JournalSource`].
struct JournalDev<'a> {
    fs: &'a ExtFs,
    runs: &'a [Run],
    blocks: u64,
}

impl JournalDev<'_> {
    fn phys(&self, idx: u64) -> Result<u64> {
        let i = self.runs.partition_point(|r| r.lblk + r.len <= idx);
        match self.runs.get(i) {
            Some(r) if r.lblk <= idx => r.pblk.map(|p| p + (idx - r.lblk)).ok_or_else(|| {
                Error::corrupt(format!("journal block {idx} is a hole")).structure("journal inode")
            }),
            _ => Err(Error::corrupt(format!("journal block {idx} is not mapped"))
                .structure("journal inode")),
        }
    }
}

impl journal::JournalSource for JournalDev<'_> {
    fn blocks(&self) -> u64 {
        self.blocks
    }
    fn block_size(&self) -> usize {
        self.fs.bs
    }
    fn read_block(&self, idx: u64, buf: &mut [u8]) -> Result<()> {
        let p = self.phys(idx)?;
        self.fs
            .dev
            .read_exact_at(p * self.fs.bs as u64, buf)
            .map_err(|e| {
                Error::from(e)
                    .structure("jbd2 journal block")
                    .at(p * self.fs.bs as u64)
            })
    }
}

fn fold_case(name: &[u8]) -> Option<String> {
    std::str::from_utf8(name).ok().map(str::to_lowercase)
}

impl Filesystem for ExtFs {
    fn info(&self) -> FsInfo {
        let sb = &self.sb;
        let fs_type = fs_type(sb);
        FsInfo {
            fs_type: fs_type.into(),
            label: sb.label(),
            uuid: sb.uuid_string(),
            block_size: self.bs as u32,
            size: sb.blocks_count.saturating_mul(self.bs as u64),
            free: Some(sb.free_blocks.saturating_mul(self.bs as u64)),
            notes: self.notes.clone(),
        }
    }

    fn root(&self) -> NodeId {
        NodeId(2)
    }

    fn metadata(&self, node: NodeId) -> Result<Metadata> {
        let i = self.node_inode(node)?;
        let ft = i.file_type();
        Ok(Metadata {
            file_type: ft,
            size: i.size,
            mode: u32::from(i.mode) & 0o7777,
            uid: i.uid,
            gid: i.gid,
            nlink: u32::from(i.links),
            inode: i.ino,
            atime: Some(i.atime),
            mtime: Some(i.mtime),
            ctime: Some(i.ctime),
            crtime: i.crtime,
            rdev: matches!(ft, FileType::CharDevice | FileType::BlockDevice).then(|| i.rdev()),
            allocated: i.blocks_512.saturating_mul(512),
        })
    }

    fn read_dir(&self, dir: NodeId) -> Result<Vec<DirEntry>> {
        let i = self.node_inode(dir)?;
        self.dir_entries(&i)
    }

    fn lookup(&self, dir: NodeId, name: &[u8]) -> Result<Option<NodeId>> {
        let i = self.node_inode(dir)?;
        let entries = self.dir_entries(&i)?;
        if let Some(e) = entries.iter().find(|e| e.name == name) {
            return Ok(Some(e.node));
        }
        if i.has_flag(flags::CASEFOLD) && self.sb.has_incompat(incompat::CASEFOLD) {
            if let Some(want) = fold_case(name) {
                return Ok(entries
                    .iter()
                    .find(|e| fold_case(&e.name).as_deref() == Some(want.as_str()))
                    .map(|e| e.node));
            }
        }
        Ok(None)
    }

    fn read_at(&self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let i = self.node_inode(node)?;
        match i.file_type() {
            FileType::Directory => {
                Err(Error::new(ErrorKind::IsADirectory, "is a directory").inode(node.0))
            }
            FileType::Regular => self.read_inode_at(&i, offset, buf),
            _ => Ok(0),
        }
    }

    fn read_link(&self, node: NodeId) -> Result<Vec<u8>> {
        let i = self.node_inode(node)?;
        self.symlink_target(&i)
    }

    fn xattrs(&self, node: NodeId) -> Result<Vec<Xattr>> {
        let i = self.node_inode(node)?;
        let mut out = Vec::new();
        for e in self.raw_xattrs(&i)? {
            if e.index == 7 && e.name == b"data" {
                continue; // inline data, not an attribute users see
            }
            let mut value = match e.value {
                xattr::Value::Inline(v) => v,
                xattr::Value::Inode(vino, size) => self.ea_inode_value(node.0, vino, size)?,
            };
            if e.index == 2 || e.index == 3 {
                if let Some(v) = xattr::acl_to_xattr(&value) {
                    value = v;
                }
            }
            out.push(Xattr {
                name: xattr::full_name(e.index, &e.name),
                value,
            });
        }
        Ok(out)
    }
}

/// `(type, label, uuid)` of an ext superblock (1024 bytes), as blkid names them, without
/// opening the filesystem.
pub fn superblock_info(raw: &[u8]) -> Result<(String, String, String)> {
    let sb = Superblock::parse(raw)?;
    Ok((fs_type(&sb).to_string(), sb.label(), sb.uuid_string()))
}

fn fs_type(sb: &Superblock) -> &'static str {
    let ext3_incompat = incompat::FILETYPE | incompat::RECOVER | incompat::META_BG;
    let ext3_ro = ro_compat::SPARSE_SUPER | 0x2 | 0x4;
    if sb.feature_incompat & !ext3_incompat != 0 || sb.feature_ro_compat & !ext3_ro != 0 {
        "ext4"
    } else if sb.has_compat(compat::HAS_JOURNAL) {
        "ext3"
    } else {
        "ext2"
    }
}

/// Fuzzing entry point: opens `data` as an ext image (checksums not verified, so damaged
/// metadata reaches the parsers) and walks it with bounded effort. Never panics on any input;
/// that is what the fuzz target and its regression tests check.
#[doc(hidden)]
pub fn fuzz_walk(data: &[u8]) {
    let dev: Arc<dyn BlockDevice> = Arc::new(guestctl_block::MemoryDevice::new(data.to_vec()));
    for verify in [false, true] {
        if let Ok(fs) = ExtFs::open(
            dev.clone(),
            &OpenOptions::default().verify_checksums(verify),
        ) {
            crate::fuzz_walk_tree(&fs);
        }
    }
}
