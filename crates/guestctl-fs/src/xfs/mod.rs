//! XFS (v4 and v5), read-only, in process, with the log replayed in memory.
//!
//! [`XfsFs::open`] reads the primary superblock (CRC verified on v5), checks the AG headers,
//! replays a dirty internal log into an overlay of sectors (the image is never written) and
//! then serves the [`Filesystem`] trait: inodes of every version, data and attribute forks in
//! local, extents and btree (bmbt) format, directories in all five forms (shortform, block,
//! leaf, node, btree) with hashed lookups and linear listings, inline and remote symlinks,
//! extended attributes in shortform, leaf and node form with remote values (XFS's on-disk
//! ACLs shown as `system.posix_acl_*`), holes, unwritten extents (zeros), shared (reflinked)
//! extents, `ftype`, `bigtime`, `nrext64`, sparse inode chunks and ASCII-CI names. v5
//! metadata CRCs, self-addresses, owners and UUIDs are checked unless turned off; structures
//! rebuilt by log recovery are trusted to the log's own record CRCs.
//!
//! Refused: unknown incompatible features, a filesystem still being made, a dirty external
//! log (readable as-is with replay turned off), and the contents of realtime files (their
//! data is on a device that is not here). Every count, size, depth and on-disk link is bounded.

mod attr;
mod bmap;
mod csum;
mod dir;
mod inode;
pub(crate) mod log;
#[doc(hidden)]
pub use self::log::fuzz_log;
mod sb;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use guestctl_block::BlockDevice;

use self::bmap::{BlockCheck, Extent, Node};
use self::dir::{DaBlock, DataKind, DirGeo, Expect, RawEntry};
use self::inode::{format, Fork, Inode, DINODE_CRC_OFF};
use self::sb::{incompat, Superblock, SB_READ};
use crate::bytes::be32;
use crate::cache::BlockCache;
use crate::{
    DirEntry, Error, ErrorKind, FileType, Filesystem, FsInfo, Metadata, NodeId, OpenOptions,
    Result, Xattr,
};

/// The longest symlink target XFS stores.
const MAX_SYMLINK: u64 = 1024;
/// The most data-block bytes of one directory read (the format allows 32 GiB).
const MAX_DIR_BYTES: u64 = 2 << 30;
/// The most entries returned for one directory.
const MAX_DIR_ENTRIES: usize = 4 << 20;
/// The most extents of one fork held in memory.
const MAX_EXTENTS: usize = 4 << 20;
/// The most bmbt blocks visited for one fork.
const MAX_BMBT_BLOCKS: usize = 1 << 20;
/// The most leaf blocks followed along a sibling chain.
const MAX_SIBLINGS: usize = 1 << 20;
/// The largest attribute value read.
const MAX_XATTR_VALUE: u32 = 1 << 20;
/// The most AG headers checked at open.
const MAX_AG_CHECK: u32 = 1 << 16;
/// Metadata block cache size.
const CACHE_BYTES: usize = 64 << 20;
/// Forks whose extent lists are kept, and the most extents kept in all.
const EXTENT_CACHE_FORKS: usize = 512;
const EXTENT_CACHE_EXTENTS: usize = 1 << 20;

/// v5 symlink block magic `XSLM` and header size.
const SYMLINK_MAGIC: u32 = 0x5853_4c4d;
const SYMLINK_HDR: usize = 56;

/// An XFS filesystem opened read-only. `Send + Sync`.
#[derive(Debug)]
pub struct XfsFs {
    dev: Arc<dyn BlockDevice>,
    sb: Superblock,
    bs: u64,
    geo: DirGeo,
    /// 512-byte sector → contents after log recovery.
    overlay: BTreeMap<u64, Box<[u8]>>,
    cache: BlockCache,
    /// Inode chunks by their first block.
    inode_chunks: ChunkPool,
    extents: Mutex<ExtentCache>,
    verify: bool,
    free: Option<u64>,
    notes: Vec<String>,
}

/// Inode chunks kept (a few MiB: a walk uses each chunk while it lists one directory).
const CHUNK_POOL: usize = 256;

/// Chunks by first block, and their keys in insertion order.
type PoolState = (HashMap<u64, Arc<Vec<u8>>>, std::collections::VecDeque<u64>);

/// A small FIFO of inode-chunk buffers. Evicted buffers nobody holds any more are reused for
/// the next read, so a long walk neither page-faults nor zeroes fresh memory per chunk.
#[derive(Debug)]
struct ChunkPool {
    cap: usize,
    inner: Mutex<PoolState>,
}

impl ChunkPool {
    fn new(cap: usize) -> ChunkPool {
        ChunkPool {
            cap,
            inner: Mutex::new((HashMap::new(), std::collections::VecDeque::new())),
        }
    }

    fn get(&self, first: u64) -> Option<Arc<Vec<u8>>> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.0.get(&first).cloned()
    }

    /// A buffer of `len` bytes to read a chunk into (its old contents are overwritten).
    fn buffer(&self, len: usize) -> Vec<u8> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while g.0.len() >= self.cap {
            let Some(k) = g.1.pop_front() else { break };
            if let Some(old) = g.0.remove(&k) {
                if let Ok(v) = Arc::try_unwrap(old) {
                    if v.len() == len {
                        return v;
                    }
                }
            }
        }
        vec![0u8; len]
    }

    fn insert(&self, first: u64, data: Arc<Vec<u8>>) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.0.insert(first, data).is_none() {
            g.1.push_back(first);
        }
    }
}

/// The validated extents of one fork.
type ForkMap = Arc<Vec<Extent>>;

#[derive(Debug, Default)]
struct ExtentCache {
    map: HashMap<(u64, bool), Arc<Vec<Extent>>>,
    total: usize,
}

fn corrupt_at(structure: &'static str, offset: u64, msg: impl Into<String>) -> Error {
    Error::corrupt(msg.into()).structure(structure).at(offset)
}

fn checksum_error(structure: &'static str, offset: u64, (stored, computed): (u32, u32)) -> Error {
    Error::new(
        ErrorKind::Checksum,
        format!("CRC {stored:#010x} does not match the computed {computed:#010x}"),
    )
    .structure(structure)
    .at(offset)
}

struct Dev<'a>(&'a dyn BlockDevice);

impl log::LogDevice for Dev<'_> {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.0
            .read_exact_at(offset, buf)
            .map_err(|e| Error::from(e).structure("xfs log").at(offset))
    }
}

impl XfsFs {
    /// Opens the XFS filesystem on `dev`.
    pub fn open(dev: Arc<dyn BlockDevice>, opts: &OpenOptions) -> Result<XfsFs> {
        let mut raw = vec![0u8; SB_READ];
        dev.read_exact_at(0, &mut raw)
            .map_err(|e| Error::from(e).structure("xfs superblock").at(0))?;
        let sb = Superblock::parse(&raw)?;
        if opts.verify_checksums && sb.has_crc() {
            let mut sector = vec![0u8; usize::from(sb.sectsize)];
            dev.read_exact_at(0, &mut sector)
                .map_err(|e| Error::from(e).structure("xfs superblock").at(0))?;
            sb.verify_crc(&sector)?;
        }
        if let Some(names) = sb.unknown_incompat() {
            return Err(Error::unsupported(format!(
                "XFS filesystem uses incompatible features this reader does not support: {names}"
            ))
            .structure("xfs superblock"));
        }
        if sb.inprogress != 0 {
            return Err(Error::unsupported(
                "the XFS filesystem is still being made (sb_inprogress is set)",
            )
            .structure("xfs superblock"));
        }
        let bs = u64::from(sb.block_size);
        let geo = DirGeo {
            v5: sb.has_crc(),
            ftype: sb.has_ftype(),
            blksize: sb.dir_block_size() as usize,
            asciici: sb.has_asciici(),
        };
        let mut fs = XfsFs {
            dev,
            bs,
            geo,
            overlay: BTreeMap::new(),
            cache: BlockCache::new(CACHE_BYTES, bs as usize),
            inode_chunks: ChunkPool::new(CHUNK_POOL),
            extents: Mutex::new(ExtentCache::default()),
            verify: opts.verify_checksums,
            free: None,
            notes: Vec::new(),
            sb,
        };
        fs.recover_log(opts.replay_journal)?;
        if fs.sb.has_incompat(incompat::NEEDSREPAIR) {
            fs.notes
                .push("the filesystem is marked as needing xfs_repair".into());
        }
        if fs.sb.rblocks > 0 {
            fs.notes.push(
                "the filesystem has a realtime subvolume: files stored on it cannot be read".into(),
            );
        }
        let fs_bytes = fs.sb.dblocks.saturating_mul(bs);
        if fs.dev.size() < fs_bytes {
            fs.notes.push(format!(
                "the device ({} bytes) is smaller than the filesystem ({fs_bytes} bytes): reads past its end fail",
                fs.dev.size()
            ));
        }
        fs.check_ags();
        if !fs.verify && fs.sb.has_crc() {
            fs.notes.push("metadata checksums are not verified".into());
        }
        Ok(fs)
    }

    /// Notes from opening (log replayed, checksums off, damaged AG headers, ...).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    fn recover_log(&mut self, replay: bool) -> Result<()> {
        if self.sb.logstart == 0 {
            if replay {
                return Err(Error::unsupported(
                    "the XFS log is on an external device, which is not here; open with log replay turned off to read the filesystem as it is on disk",
                )
                .structure("xfs superblock"));
            }
            self.notes.push(
                "the log is on an external device: read without recovery, the filesystem may be inconsistent"
                    .into(),
            );
            return Ok(());
        }
        let start = self
            .sb
            .fsb_to_linear(self.sb.logstart)
            .map(|l| l * self.bs)
            .ok_or_else(|| {
                corrupt_at(
                    "xfs superblock",
                    0,
                    format!(
                        "log start block {} is outside the filesystem",
                        self.sb.logstart
                    ),
                )
            })?;
        let geo = log::LogGeometry {
            start,
            len: u64::from(self.sb.logblocks) * self.bs,
            sector_size: if self.sb.logsectsize == 0 {
                512
            } else {
                u32::from(self.sb.logsectsize)
            },
            block_size: self.sb.block_size,
            stripe_unit: self.sb.logsunit,
            v5: self.sb.has_crc(),
            logv2: self.sb.has_crc() || self.sb.versionnum & sb::version::LOGV2 != 0,
            uuid: self.sb.uuid,
            meta_uuid: *self.sb.meta_uuid(),
            inode_size: u32::from(self.sb.inodesize),
            fs_bytes: self.sb.dblocks.saturating_mul(self.bs),
            ag_blocks: self.sb.agblocks,
            ag_count: self.sb.agcount,
            ag_block_log: self.sb.agblklog,
        };
        if !replay {
            // A damaged log must not stop reading the filesystem as it is on disk.
            match log::is_dirty(&Dev(self.dev.as_ref()), &geo) {
                Ok(false) => {}
                Ok(true) => self.notes.push(
                    "the log needs recovery but replay is turned off: the filesystem may read inconsistently"
                        .into(),
                ),
                Err(e) => self.notes.push(format!(
                    "the log could not be read ({e}); replay is turned off: the filesystem may read inconsistently"
                )),
            }
            return Ok(());
        }
        let state =
            log::recover(&Dev(self.dev.as_ref()), &geo).map_err(|e| e.structure("xfs log"))?;
        let rec = match state {
            log::LogState::Clean => return Ok(()),
            log::LogState::Dirty(r) => r,
        };
        self.notes.push(format!(
            "log replayed in memory: {} transactions, {} sectors",
            rec.transactions,
            rec.sectors.len()
        ));
        self.notes.extend(rec.notes);
        self.overlay = rec.sectors;
        self.cache = BlockCache::new(CACHE_BYTES, self.bs as usize);
        self.inode_chunks = ChunkPool::new(CHUNK_POOL);
        let mut raw = vec![0u8; SB_READ];
        self.read_bytes(0, &mut raw)?;
        let sb = Superblock::parse(&raw).map_err(|e| e.structure("replayed xfs superblock"))?;
        if sb.block_size != self.sb.block_size
            || sb.agblocks != self.sb.agblocks
            || sb.inodesize != self.sb.inodesize
        {
            return Err(
                Error::corrupt("log recovery changes the filesystem geometry").structure("xfs log"),
            );
        }
        self.sb = sb;
        Ok(())
    }

    /// Checks every AG's AGF and AGI (magic, sequence number, CRC); damage is noted, not
    /// fatal (files elsewhere stay readable). Sums the free space.
    fn check_ags(&mut self) {
        let ss = u64::from(self.sb.sectsize);
        let mut free = 0u64;
        let mut bad = Vec::new();
        let n = self.sb.agcount.min(MAX_AG_CHECK);
        for ag in 0..n {
            let base = u64::from(ag) * u64::from(self.sb.agblocks) * self.bs;
            for (what, at, magic, crc_off) in [
                ("AGF", base + ss, 0x5841_4746u32, 216usize),
                ("AGI", base + 2 * ss, 0x5841_4749, 312),
            ] {
                let mut b = vec![0u8; ss as usize];
                let res = self
                    .read_bytes(at, &mut b)
                    .map_err(|e| e.to_string())
                    .and_then(|()| {
                        if be32(&b, 0) != magic {
                            return Err(format!("bad magic {:#010x}", be32(&b, 0)));
                        }
                        if be32(&b, 8) != ag {
                            return Err(format!("sequence number {}", be32(&b, 8)));
                        }
                        if self.verify && self.sb.has_crc() && !self.replayed(at, b.len()) {
                            csum::verify(&b, crc_off).map_err(|(s, c)| {
                                format!("CRC {s:#010x} does not match the computed {c:#010x}")
                            })?;
                        }
                        Ok(())
                    });
                match res {
                    Ok(()) if what == "AGF" => {
                        free += u64::from(be32(&b, 52)) + u64::from(be32(&b, 48));
                    }
                    Ok(()) => {}
                    Err(e) => bad.push(format!("AG {ag} {what} at offset {at:#x}: {e}")),
                }
            }
        }
        if bad.is_empty() && n == self.sb.agcount {
            self.free = Some(free.saturating_mul(self.bs));
        } else {
            self.free = Some(self.sb.fdblocks.saturating_mul(self.bs));
        }
        for b in bad.into_iter().take(8) {
            self.notes
                .push(format!("damaged allocation group header: {b}"));
        }
    }

    // ---- device access --------------------------------------------------------------------

    /// Reads device bytes with replayed log sectors patched in.
    fn read_bytes(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.dev.read_exact_at(offset, buf)?;
        if self.overlay.is_empty() || buf.is_empty() {
            return Ok(());
        }
        let first = offset / 512;
        let last = (offset + buf.len() as u64 - 1) / 512;
        for (&s, data) in self.overlay.range(first..=last) {
            let sstart = s * 512;
            let from = sstart.max(offset);
            let to = (sstart + 512).min(offset + buf.len() as u64);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&data[(from - sstart) as usize..(to - sstart) as usize]);
        }
        Ok(())
    }

    /// Whether any byte of `[offset, offset + len)` came from log recovery.
    fn replayed(&self, offset: u64, len: usize) -> bool {
        if self.overlay.is_empty() || len == 0 {
            return false;
        }
        let first = offset / 512;
        let last = (offset + len as u64 - 1) / 512;
        self.overlay.range(first..=last).next().is_some()
    }

    /// Whether to check the CRC of a structure at `[offset, offset + len)`.
    fn check_crc(&self, offset: u64, len: usize) -> bool {
        self.verify && self.geo.v5 && !self.replayed(offset, len)
    }

    /// A metadata block by its linear number, through the cache.
    fn block(&self, lin: u64, structure: &'static str) -> Result<Arc<[u8]>> {
        if lin >= self.sb.dblocks {
            return Err(corrupt_at(
                structure,
                lin.saturating_mul(self.bs),
                format!(
                    "block {lin} is beyond the end of the filesystem ({} blocks)",
                    self.sb.dblocks
                ),
            ));
        }
        if let Some(b) = self.cache.get(lin) {
            return Ok(b);
        }
        let mut v = vec![0u8; self.bs as usize];
        self.read_bytes(lin * self.bs, &mut v)
            .map_err(|e| e.structure(structure).at(lin * self.bs))?;
        let a: Arc<[u8]> = Arc::from(v);
        self.cache.insert(lin, a.clone());
        Ok(a)
    }

    fn linear(&self, fsb: u64, structure: &'static str) -> Result<u64> {
        self.sb.fsb_to_linear(fsb).ok_or_else(|| {
            Error::corrupt(format!("block {fsb:#x} is outside the filesystem")).structure(structure)
        })
    }

    // ---- inodes ---------------------------------------------------------------------------

    fn inode(&self, ino: u64) -> Result<Inode> {
        let off = self.sb.inode_offset(ino).ok_or_else(|| {
            Error::corrupt(format!(
                "inode number {ino} cannot exist on this filesystem"
            ))
            .structure("xfs inode")
            .inode(ino)
        })?;
        let isz = usize::from(self.sb.inodesize);
        let (buf, at) = self.inode_bytes(off).map_err(|e| e.inode(ino))?;
        if self.check_crc(off, isz) {
            let raw = buf.get(at..at + isz).unwrap_or_default();
            csum::verify(raw, DINODE_CRC_OFF)
                .map_err(|c| checksum_error("xfs inode", off, c).inode(ino))?;
        }
        let i = Inode::parse(&buf, at, isz, ino, off, self.geo.v5, self.sb.meta_uuid())?;
        if i.mode == 0 {
            return Err(Error::corrupt("inode is not in use (mode 0)")
                .structure("xfs inode")
                .inode(ino)
                .at(off));
        }
        Ok(i)
    }

    /// The buffer holding the inode at device byte `off`, and where in it the inode starts:
    /// the whole 64-inode chunk around it, read in one request and cached as one buffer (a
    /// walk reads the neighbours next). Chunks are located by block arithmetic only, so a
    /// misaligned or sparse chunk just means other blocks are read along; they are cached by
    /// position and never misattributed.
    fn inode_bytes(&self, off: u64) -> Result<(Arc<Vec<u8>>, usize)> {
        let lin = off / self.bs;
        let chunk = (64 * u64::from(self.sb.inodesize) / self.bs).max(1);
        let agb = u64::from(self.sb.agblocks);
        let ag_start = lin / agb * agb;
        let first = ag_start + (lin - ag_start) / chunk * chunk;
        let end = (first + chunk)
            .min(ag_start + agb)
            .min(self.sb.dblocks)
            .max(lin + 1);
        let at = ((lin - first) * self.bs + off % self.bs) as usize;
        if let Some(b) = self.inode_chunks.get(first) {
            if b.len() as u64 == (end - first) * self.bs {
                return Ok((b, at));
            }
        }
        if lin >= self.sb.dblocks {
            return Err(corrupt_at(
                "xfs inode",
                off,
                format!("block {lin} is beyond the end of the filesystem"),
            ));
        }
        let mut buf = self.inode_chunks.buffer(((end - first) * self.bs) as usize);
        match self.read_bytes(first * self.bs, &mut buf) {
            Ok(()) => {
                let a = Arc::new(buf);
                self.inode_chunks.insert(first, a.clone());
                Ok((a, at))
            }
            // The chunk runs past a short device: read only the inode's own block.
            Err(_) => Ok((
                Arc::new(self.block(lin, "xfs inode")?.to_vec()),
                (off % self.bs) as usize,
            )),
        }
    }

    fn node_inode(&self, node: NodeId) -> Result<Inode> {
        if node.0 == 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "inode 0 does not exist",
            ));
        }
        self.inode(node.0)
    }

    // ---- forks ----------------------------------------------------------------------------

    /// The extents of `fork` of `ino`, validated (sorted, in the filesystem), cached.
    fn fork_map(&self, ino: &Inode, fork: Fork) -> Result<Arc<Vec<Extent>>> {
        let key = (ino.ino, fork == Fork::Attr);
        if let Ok(c) = self.extents.lock() {
            if let Some(e) = c.map.get(&key) {
                return Ok(e.clone());
            }
        }
        let (bytes, fmt, n) = ino.fork(fork);
        let ext = match fmt {
            format::EXTENTS => bmap::fork_extents(bytes, n).ok_or_else(|| {
                Error::corrupt(format!(
                    "{n} extents do not fit the {}-byte {}",
                    bytes.len(),
                    fork.name()
                ))
                .structure("xfs inode")
                .inode(ino.ino)
                .at(ino.offset)
            })?,
            format::BTREE => self.walk_bmbt(ino, fork, bytes)?,
            f => {
                return Err(
                    Error::corrupt(format!("{} in format {f} has no extents", fork.name()))
                        .structure("xfs inode")
                        .inode(ino.ino)
                        .at(ino.offset),
                )
            }
        };
        if let Err(i) = bmap::check_sorted(&ext) {
            return Err(Error::corrupt(format!(
                "{} extent {i} overlaps or is out of order",
                fork.name()
            ))
            .structure("xfs extent map")
            .inode(ino.ino));
        }
        for (i, e) in ext.iter().enumerate() {
            let agbno = e.start & ((1u64 << self.sb.agblklog) - 1);
            if self.sb.fsb_to_linear(e.start).is_none()
                || agbno + e.len > u64::from(self.sb.agblocks)
            {
                return Err(Error::corrupt(format!(
                    "{} extent {i} (block {:#x}, {} blocks) is outside the filesystem",
                    fork.name(),
                    e.start,
                    e.len
                ))
                .structure("xfs extent map")
                .inode(ino.ino));
            }
        }
        let ext = Arc::new(ext);
        if let Ok(mut c) = self.extents.lock() {
            if c.map.len() >= EXTENT_CACHE_FORKS || c.total + ext.len() > EXTENT_CACHE_EXTENTS {
                c.map.clear();
                c.total = 0;
            }
            if ext.len() <= EXTENT_CACHE_EXTENTS {
                c.total += ext.len();
                c.map.insert(key, ext.clone());
            }
        }
        Ok(ext)
    }

    /// All leaf records of a btree-format fork, left to right.
    fn walk_bmbt(&self, ino: &Inode, fork: Fork, root: &[u8]) -> Result<Vec<Extent>> {
        let err = |msg: String| Error::corrupt(msg).structure("xfs bmbt").inode(ino.ino);
        let (level, ptrs) = match bmap::parse_root(root) {
            Ok(Node::Interior { level, ptrs, .. }) => (level, ptrs),
            Ok(Node::Leaf(_)) => return Err(err("leaf in the inode".into())),
            Err(m) => return Err(err(format!("{} root: {m}", fork.name())).at(ino.offset)),
        };
        let mut out = Vec::new();
        let mut stack: Vec<(u16, u64)> = ptrs.iter().rev().map(|&p| (level - 1, p)).collect();
        let mut visited = 0usize;
        while let Some((lvl, fsb)) = stack.pop() {
            visited += 1;
            if visited > MAX_BMBT_BLOCKS {
                return Err(
                    Error::limit(format!("more than {MAX_BMBT_BLOCKS} bmbt blocks"))
                        .structure("xfs bmbt")
                        .inode(ino.ino),
                );
            }
            let lin = self.linear(fsb, "xfs bmbt").map_err(|e| e.inode(ino.ino))?;
            let off = lin * self.bs;
            let b = self.block(lin, "xfs bmbt").map_err(|e| e.inode(ino.ino))?;
            if self.check_crc(off, b.len()) {
                csum::verify(&b, bmap::LBLOCK_CRC_OFF)
                    .map_err(|c| checksum_error("xfs bmbt block", off, c).inode(ino.ino))?;
            }
            let want = BlockCheck {
                crc: self.geo.v5,
                level: lvl,
                owner: ino.ino,
                daddr: off / 512,
                uuid: self.sb.meta_uuid(),
            };
            match bmap::parse_block(&b, &want) {
                Ok(Node::Leaf(recs)) => {
                    if out.len() + recs.len() > MAX_EXTENTS {
                        return Err(Error::limit(format!(
                            "more than {MAX_EXTENTS} extents in one fork"
                        ))
                        .structure("xfs bmbt")
                        .inode(ino.ino));
                    }
                    out.extend(recs);
                }
                Ok(Node::Interior { level, ptrs, .. }) => {
                    stack.extend(ptrs.iter().rev().map(|&p| (level - 1, p)));
                }
                Err(m) => return Err(err(m).structure("xfs bmbt block").at(off)),
            }
        }
        Ok(out)
    }

    /// Reads fork blocks `[lblk, lblk + count)` into one buffer; `None` if any is not mapped.
    fn read_fork_blocks(
        &self,
        ext: &[Extent],
        lblk: u64,
        count: u64,
        structure: &'static str,
    ) -> Result<Option<(Vec<u8>, u64)>> {
        let mut out = vec![0u8; (count * self.bs) as usize];
        let mut first_daddr = 0;
        let mut b = lblk;
        while b < lblk + count {
            let i = ext.partition_point(|e| e.off + e.len <= b);
            let Some(e) = ext.get(i).filter(|e| e.off <= b) else {
                return Ok(None);
            };
            let n = (e.off + e.len - b).min(lblk + count - b);
            let lin = self.linear(e.start + (b - e.off), structure)?;
            if b == lblk {
                first_daddr = lin * self.bs / 512;
            }
            let at = ((b - lblk) * self.bs) as usize;
            let dst = &mut out[at..at + (n * self.bs) as usize];
            if n == 1 {
                dst.copy_from_slice(&self.block(lin, structure)?);
            } else {
                self.read_bytes(lin * self.bs, dst)
                    .map_err(|e| e.structure(structure).at(lin * self.bs))?;
            }
            b += n;
        }
        Ok(Some((out, first_daddr)))
    }

    // ---- file data ------------------------------------------------------------------------

    fn read_file(&self, ino: &Inode, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if offset >= ino.size {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(ino.size - offset) as usize;
        let buf = &mut buf[..n];
        if ino.is_realtime() {
            return Err(Error::unsupported(
                "the file's data is on the realtime device, which is not here",
            )
            .inode(ino.ino));
        }
        if ino.format != format::EXTENTS && ino.format != format::BTREE {
            return Err(Error::corrupt(format!(
                "regular file with data fork format {}",
                ino.format
            ))
            .structure("xfs inode")
            .inode(ino.ino));
        }
        let ext = self.fork_map(ino, Fork::Data)?;
        let bs = self.bs;
        let end = offset + n as u64;
        let mut pos = offset;
        let mut i = ext.partition_point(|e| (e.off + e.len) * bs <= pos);
        while pos < end {
            let Some(e) = ext.get(i) else {
                buf[(pos - offset) as usize..].fill(0);
                break;
            };
            let e_start = e.off * bs;
            if e_start >= end {
                buf[(pos - offset) as usize..].fill(0);
                break;
            }
            if e_start > pos {
                buf[(pos - offset) as usize..(e_start - offset) as usize].fill(0);
                pos = e_start;
            }
            let e_end = ((e.off + e.len) * bs).min(end);
            let dst = &mut buf[(pos - offset) as usize..(e_end - offset) as usize];
            if e.unwritten {
                dst.fill(0);
            } else {
                let lin = self.linear(e.start, "xfs extent map")?;
                let phys = lin * bs + (pos - e_start);
                self.read_bytes(phys, dst)
                    .map_err(|err| err.inode(ino.ino).at(phys))?;
            }
            pos = e_end;
            i += 1;
        }
        Ok(n)
    }

    // ---- directories ----------------------------------------------------------------------

    fn dir_fsbs(&self) -> u64 {
        1u64 << self.sb.dirblklog
    }

    /// Reads directory block `lblk` (in filesystem blocks) and checks its CRC.
    fn dir_block(
        &self,
        ino: &Inode,
        ext: &[Extent],
        lblk: u64,
        crc_off: usize,
        structure: &'static str,
    ) -> Result<(Vec<u8>, u64)> {
        let Some((b, daddr)) = self
            .read_fork_blocks(ext, lblk, self.dir_fsbs(), structure)
            .map_err(|e| e.inode(ino.ino))?
        else {
            return Err(
                Error::corrupt(format!("directory block {lblk} is not mapped"))
                    .structure(structure)
                    .inode(ino.ino),
            );
        };
        if self.check_crc(daddr * 512, b.len()) {
            csum::verify(&b, crc_off)
                .map_err(|c| checksum_error(structure, daddr * 512, c).inode(ino.ino))?;
        }
        Ok((b, daddr))
    }

    fn expect(&self, daddr: u64, owner: u64) -> Expect<'_> {
        Expect {
            daddr,
            owner,
            uuid: self.sb.meta_uuid(),
        }
    }

    /// The first filesystem block of every data block of a directory.
    fn data_block_starts(&self, ext: &[Extent]) -> Result<BTreeSet<u64>> {
        let leaf = dir::LEAF_OFFSET / self.bs;
        let step = self.dir_fsbs();
        let mut starts = BTreeSet::new();
        for e in ext {
            if e.off >= leaf {
                break;
            }
            let end = (e.off + e.len).min(leaf);
            let mut b = e.off / step * step;
            while b < end {
                starts.insert(b);
                if starts.len() as u64 * step * self.bs > MAX_DIR_BYTES {
                    return Err(Error::limit(format!(
                        "directory with more than {MAX_DIR_BYTES} bytes of data blocks"
                    )));
                }
                b += step;
            }
        }
        Ok(starts)
    }

    fn dir_entries(&self, ino: &Inode) -> Result<Vec<RawEntry>> {
        if ino.file_type() != FileType::Directory {
            return Err(Error::new(ErrorKind::NotADirectory, "not a directory").inode(ino.ino));
        }
        match ino.format {
            format::LOCAL => dir::parse_shortform(ino.data_fork(), ino.size, self.geo.ftype)
                .map(|(_, e)| e)
                .map_err(|m| {
                    Error::corrupt(m)
                        .structure("xfs shortform directory")
                        .inode(ino.ino)
                        .at(ino.offset)
                }),
            format::EXTENTS | format::BTREE => {
                let ext = self.fork_map(ino, Fork::Data)?;
                let mut out = Vec::new();
                for lblk in self.data_block_starts(&ext).map_err(|e| e.inode(ino.ino))? {
                    let (b, daddr) =
                        self.dir_block(ino, &ext, lblk, 4, "xfs directory data block")?;
                    let bad = |m: String| {
                        Error::corrupt(m)
                            .structure("xfs directory data block")
                            .inode(ino.ino)
                            .at(daddr * 512)
                    };
                    let kind = dir::data_kind(&b, &self.geo, Some(&self.expect(daddr, ino.ino)))
                        .map_err(bad)?;
                    let entries = dir::parse_data_block(&b, &self.geo, kind).map_err(bad)?;
                    if out.len() + entries.len() > MAX_DIR_ENTRIES {
                        return Err(Error::limit(format!(
                            "directory with more than {MAX_DIR_ENTRIES} entries"
                        ))
                        .inode(ino.ino));
                    }
                    out.extend(entries.into_iter().map(|(_, e)| e));
                }
                Ok(out)
            }
            f => Err(
                Error::corrupt(format!("directory with data fork format {f}"))
                    .structure("xfs inode")
                    .inode(ino.ino)
                    .at(ino.offset),
            ),
        }
    }

    /// Looks `name` up through the directory's hash index; `Err` when the index is damaged
    /// (the caller then scans the data blocks).
    fn hashed_lookup(&self, ino: &Inode, ext: &[Extent], name: &[u8]) -> Result<Option<u64>> {
        let h = dir::hashname(name, self.geo.asciici);
        let bad = |m: String, s: &'static str, at: u64| {
            Error::corrupt(m).structure(s).inode(ino.ino).at(at)
        };
        let leaf_lblk = dir::LEAF_OFFSET / self.bs;
        let addrs: Vec<u32> = if ino.size == self.geo.blksize as u64
            && !ext.iter().any(|e| e.off + e.len > self.dir_fsbs())
        {
            let (b, daddr) = self.dir_block(ino, ext, 0, 4, "xfs directory block")?;
            let kind = dir::data_kind(&b, &self.geo, Some(&self.expect(daddr, ino.ino)))
                .map_err(|m| bad(m, "xfs directory block", daddr * 512))?;
            if kind != DataKind::Block {
                return Err(bad(
                    "single-block directory without a block header".into(),
                    "xfs directory block",
                    daddr * 512,
                ));
            }
            let leaf = dir::block_leaf(&b, &self.geo)
                .map_err(|m| bad(m, "xfs directory block", daddr * 512))?;
            let i = dir::lower_bound(&leaf, h);
            leaf[i..]
                .iter()
                .take_while(|e| e.0 == h)
                .map(|e| e.1)
                .collect()
        } else {
            let mut blk = leaf_lblk;
            let mut depth = 0u16;
            let mut prev_level = u16::MAX;
            let mut hops = 0usize;
            let mut found = Vec::new();
            loop {
                let (b, daddr) = self.dir_block(ino, ext, blk, 12, "xfs directory leaf")?;
                let parsed = dir::parse_da(&b, &self.geo, Some(&self.expect(daddr, ino.ino)))
                    .map_err(|m| bad(m, "xfs directory leaf", daddr * 512))?;
                match parsed {
                    DaBlock::Node { level, entries } => {
                        depth += 1;
                        if level >= prev_level || depth > dir::MAX_DA_DEPTH || !found.is_empty() {
                            return Err(bad(
                                format!("node at level {level} below level {prev_level}"),
                                "xfs directory node",
                                daddr * 512,
                            ));
                        }
                        prev_level = level;
                        let i = dir::lower_bound(&entries, h);
                        let Some(&(_, child)) = entries.get(i) else {
                            return Ok(None);
                        };
                        blk = u64::from(child);
                    }
                    DaBlock::Leaf { entries, forw } => {
                        let i = dir::lower_bound(&entries, h);
                        found.extend(entries[i..].iter().take_while(|e| e.0 == h).map(|e| e.1));
                        let runs_on = entries.last().is_some_and(|e| e.0 == h);
                        if !runs_on || forw == 0 {
                            break;
                        }
                        hops += 1;
                        if hops > MAX_SIBLINGS {
                            return Err(
                                Error::limit("directory leaf chain too long").inode(ino.ino)
                            );
                        }
                        blk = u64::from(forw);
                    }
                }
                if blk < leaf_lblk || blk >= dir::FREE_OFFSET / self.bs {
                    return Err(bad(
                        format!("index points at block {blk}, outside the leaf area"),
                        "xfs directory leaf",
                        daddr * 512,
                    ));
                }
            }
            found
        };
        let blk_bytes = self.geo.blksize as u64;
        for a in addrs {
            if a == 0 {
                continue; // stale entry
            }
            let byte = u64::from(a) * 8;
            let db = byte / blk_bytes;
            let pos = (byte % blk_bytes) as usize;
            let lblk = db * self.dir_fsbs();
            let (b, daddr) = self.dir_block(ino, ext, lblk, 4, "xfs directory data block")?;
            let kind = dir::data_kind(&b, &self.geo, Some(&self.expect(daddr, ino.ino)))
                .map_err(|m| bad(m, "xfs directory data block", daddr * 512))?;
            if let Some(e) = dir::entry_at(&b, pos, &self.geo, kind)
                .map_err(|m| bad(m, "xfs directory data block", daddr * 512))?
            {
                if dir::names_equal(&e.name, name, self.geo.asciici) {
                    return Ok(Some(e.ino));
                }
            }
        }
        Ok(None)
    }

    fn dir_lookup(&self, ino: &Inode, name: &[u8]) -> Result<Option<u64>> {
        if ino.file_type() != FileType::Directory {
            return Err(Error::new(ErrorKind::NotADirectory, "not a directory").inode(ino.ino));
        }
        if ino.format == format::EXTENTS || ino.format == format::BTREE {
            let ext = self.fork_map(ino, Fork::Data)?;
            if let Ok(found) = self.hashed_lookup(ino, &ext, name) {
                return Ok(found);
            }
        }
        Ok(self
            .dir_entries(ino)?
            .into_iter()
            .find(|e| dir::names_equal(&e.name, name, self.geo.asciici))
            .map(|e| e.ino))
    }

    // ---- symlinks -------------------------------------------------------------------------

    fn symlink_target(&self, ino: &Inode) -> Result<Vec<u8>> {
        if ino.file_type() != FileType::Symlink {
            return Err(Error::new(ErrorKind::InvalidInput, "not a symbolic link").inode(ino.ino));
        }
        if ino.size == 0 || ino.size > MAX_SYMLINK {
            return Err(Error::corrupt(format!("symlink of {} bytes", ino.size))
                .structure("xfs inode")
                .inode(ino.ino));
        }
        let size = ino.size as usize;
        if ino.format == format::LOCAL {
            return ino
                .data_fork()
                .get(..size)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| {
                    Error::corrupt("inline symlink longer than its fork")
                        .structure("xfs inode")
                        .inode(ino.ino)
                });
        }
        let ext = self.fork_map(ino, Fork::Data)?;
        // v5: every extent of the target is one buffer with one header (and one CRC) in
        // front of its share of the target; v4: the bare target.
        let hdr = if self.geo.v5 { SYMLINK_HDR } else { 0 };
        let nblocks = (size + hdr).div_ceil(self.bs as usize) as u64;
        let mut out = Vec::with_capacity(size);
        let mut lb = 0u64;
        while lb < nblocks && out.len() < size {
            let i = ext.partition_point(|e| e.off + e.len <= lb);
            let Some(e) = ext.get(i).filter(|e| e.off <= lb) else {
                return Err(Error::corrupt(format!("symlink block {lb} is not mapped"))
                    .structure("xfs symlink block")
                    .inode(ino.ino));
            };
            let n = (e.off + e.len - lb).min(nblocks - lb);
            let Some((b, daddr)) = self.read_fork_blocks(&ext, lb, n, "xfs symlink block")? else {
                return Err(Error::corrupt(format!("symlink block {lb} is not mapped"))
                    .structure("xfs symlink block")
                    .inode(ino.ino));
            };
            let want = (size - out.len()).min(b.len() - hdr);
            if self.geo.v5 {
                let bad = |m: String| {
                    Error::corrupt(m)
                        .structure("xfs symlink block")
                        .inode(ino.ino)
                        .at(daddr * 512)
                };
                if self.check_crc(daddr * 512, b.len()) {
                    csum::verify(&b, 12)
                        .map_err(|c| checksum_error("xfs symlink block", daddr * 512, c))?;
                }
                if be32(&b, 0) != SYMLINK_MAGIC {
                    return Err(bad(format!("bad magic {:#010x}", be32(&b, 0))));
                }
                if be32(&b, 4) as usize != out.len() || be32(&b, 8) as usize != want {
                    return Err(bad(format!(
                        "block holds bytes {}+{}, expected {}+{want}",
                        be32(&b, 4),
                        be32(&b, 8),
                        out.len()
                    )));
                }
                dir::check_self(&b, 40, 16, 32, &self.expect(daddr, ino.ino)).map_err(bad)?;
            }
            out.extend_from_slice(&b[hdr..hdr + want]);
            lb += n;
        }
        Ok(out)
    }

    // ---- extended attributes --------------------------------------------------------------

    fn raw_attrs(&self, ino: &Inode) -> Result<(Vec<attr::RawAttr>, Option<ForkMap>)> {
        if !ino.has_attr_fork() {
            return Ok((Vec::new(), None));
        }
        let bad = |m: String, s: &'static str, at: u64| {
            Error::corrupt(m).structure(s).inode(ino.ino).at(at)
        };
        match ino.aformat {
            format::LOCAL => attr::parse_shortform(ino.attr_fork())
                .map(|a| (a, None))
                .map_err(|m| bad(m, "xfs shortform attributes", ino.offset)),
            format::EXTENTS | format::BTREE => {
                let ext = self.fork_map(ino, Fork::Attr)?;
                if ext.is_empty() {
                    return Ok((Vec::new(), Some(ext)));
                }
                let mut blk = 0u64;
                let mut prev_level = u16::MAX;
                let mut out = Vec::new();
                let mut hops = 0usize;
                loop {
                    let Some((b, daddr)) =
                        self.read_fork_blocks(&ext, blk, 1, "xfs attribute block")?
                    else {
                        return Err(bad(
                            format!("attribute block {blk} is not mapped"),
                            "xfs attribute block",
                            ino.offset,
                        ));
                    };
                    let at = daddr * 512;
                    if self.check_crc(at, b.len()) {
                        csum::verify(&b, 12).map_err(|c| {
                            checksum_error("xfs attribute block", at, c).inode(ino.ino)
                        })?;
                    }
                    if self.geo.v5 {
                        dir::check_self(&b, 16, 32, 48, &self.expect(daddr, ino.ino))
                            .map_err(|m| bad(m, "xfs attribute block", at))?;
                    }
                    if attr::is_leaf(&b, self.geo.v5) {
                        let (attrs, forw) = attr::parse_leaf(&b, self.geo.v5)
                            .map_err(|m| bad(m, "xfs attribute leaf", at))?;
                        out.extend(attrs);
                        if forw == 0 {
                            break;
                        }
                        hops += 1;
                        if hops > MAX_SIBLINGS || out.len() > MAX_DIR_ENTRIES {
                            return Err(
                                Error::limit("attribute leaf chain too long").inode(ino.ino)
                            );
                        }
                        blk = u64::from(forw);
                        prev_level = 0;
                        continue;
                    }
                    if prev_level == 0 {
                        return Err(bad(
                            "attribute leaf chain leads to a non-leaf block".into(),
                            "xfs attribute leaf",
                            at,
                        ));
                    }
                    // A node: descend to the leftmost leaf.
                    match dir::parse_da(&b, &self.geo, None) {
                        Ok(DaBlock::Node { level, entries }) if level < prev_level => {
                            prev_level = level;
                            let Some(&(_, child)) = entries.first() else {
                                return Ok((out, Some(ext)));
                            };
                            blk = u64::from(child);
                        }
                        Ok(_) => {
                            return Err(bad(
                                "attribute node levels do not decrease".into(),
                                "xfs attribute node",
                                at,
                            ))
                        }
                        Err(m) => return Err(bad(m, "xfs attribute node", at)),
                    }
                }
                Ok((out, Some(ext)))
            }
            f => Err(bad(
                format!("attribute fork in format {f}"),
                "xfs inode",
                ino.offset,
            )),
        }
    }

    fn remote_value(&self, ino: &Inode, ext: &[Extent], blk: u32, len: u32) -> Result<Vec<u8>> {
        if len > MAX_XATTR_VALUE {
            return Err(Error::limit(format!("attribute value of {len} bytes")).inode(ino.ino));
        }
        let n = attr::remote_blocks(len, self.bs as usize, self.geo.v5);
        let mut out = Vec::with_capacity(len as usize);
        for i in 0..n {
            let lb = u64::from(blk) + i;
            let Some((b, daddr)) =
                self.read_fork_blocks(ext, lb, 1, "xfs remote attribute value")?
            else {
                return Err(
                    Error::corrupt(format!("attribute value block {lb} is not mapped"))
                        .structure("xfs remote attribute value")
                        .inode(ino.ino),
                );
            };
            let want = (len as usize - out.len()).min(if self.geo.v5 {
                b.len() - attr::RMT_HDR
            } else {
                b.len()
            });
            if self.geo.v5 {
                let at = daddr * 512;
                let bad = |m: String| {
                    Error::corrupt(m)
                        .structure("xfs remote attribute value")
                        .inode(ino.ino)
                        .at(at)
                };
                if self.check_crc(at, b.len()) {
                    csum::verify(&b, 12)
                        .map_err(|c| checksum_error("xfs remote attribute value", at, c))?;
                }
                if be32(&b, 0) != attr::RMT_MAGIC {
                    return Err(bad(format!("bad magic {:#010x}", be32(&b, 0))));
                }
                if be32(&b, 4) as usize != out.len() || be32(&b, 8) as usize != want {
                    return Err(bad(format!(
                        "block holds bytes {}+{}, expected {}+{want}",
                        be32(&b, 4),
                        be32(&b, 8),
                        out.len()
                    )));
                }
                dir::check_self(&b, 40, 16, 32, &self.expect(daddr, ino.ino)).map_err(bad)?;
                out.extend_from_slice(&b[attr::RMT_HDR..attr::RMT_HDR + want]);
            } else {
                out.extend_from_slice(&b[..want]);
            }
        }
        Ok(out)
    }
}

fn file_type_of(ftype: u8) -> FileType {
    match ftype {
        1 => FileType::Regular,
        2 => FileType::Directory,
        3 => FileType::CharDevice,
        4 => FileType::BlockDevice,
        5 => FileType::Fifo,
        6 => FileType::Socket,
        7 => FileType::Symlink,
        _ => FileType::Unknown,
    }
}

impl Filesystem for XfsFs {
    fn info(&self) -> FsInfo {
        FsInfo {
            fs_type: "xfs".into(),
            label: self.sb.label(),
            uuid: self.sb.uuid_string(),
            block_size: self.sb.block_size,
            size: self.sb.dblocks.saturating_mul(self.bs),
            free: self.free,
            notes: self.notes.clone(),
        }
    }

    fn root(&self) -> NodeId {
        NodeId(self.sb.rootino)
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
            nlink: i.nlink,
            inode: i.ino,
            atime: Some(i.atime),
            mtime: Some(i.mtime),
            ctime: Some(i.ctime),
            crtime: i.crtime,
            rdev: matches!(ft, FileType::CharDevice | FileType::BlockDevice).then(|| i.rdev()),
            allocated: i.nblocks.saturating_mul(self.bs),
        })
    }

    fn read_dir(&self, dir: NodeId) -> Result<Vec<DirEntry>> {
        let i = self.node_inode(dir)?;
        Ok(self
            .dir_entries(&i)?
            .into_iter()
            .map(|e| DirEntry {
                name: e.name,
                node: NodeId(e.ino),
                file_type: file_type_of(e.ftype),
            })
            .collect())
    }

    fn lookup(&self, dir: NodeId, name: &[u8]) -> Result<Option<NodeId>> {
        let i = self.node_inode(dir)?;
        Ok(self.dir_lookup(&i, name)?.map(NodeId))
    }

    fn read_at(&self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let i = self.node_inode(node)?;
        match i.file_type() {
            FileType::Directory => {
                Err(Error::new(ErrorKind::IsADirectory, "is a directory").inode(node.0))
            }
            FileType::Regular => self.read_file(&i, offset, buf),
            _ => Ok(0),
        }
    }

    fn read_link(&self, node: NodeId) -> Result<Vec<u8>> {
        let i = self.node_inode(node)?;
        self.symlink_target(&i)
    }

    fn xattrs(&self, node: NodeId) -> Result<Vec<Xattr>> {
        let i = self.node_inode(node)?;
        let (raw, ext) = self.raw_attrs(&i)?;
        let mut out = Vec::with_capacity(raw.len());
        for a in raw.into_iter().filter(attr::RawAttr::visible) {
            let (name, acl) = a.full_name();
            let mut value = match &a.value {
                attr::Value::Inline(v) => v.clone(),
                &attr::Value::Remote { blk, len } => {
                    let Some(ext) = ext.as_deref() else {
                        return Err(Error::corrupt(
                            "remote attribute value without an attribute fork map",
                        )
                        .inode(i.ino));
                    };
                    self.remote_value(&i, ext, blk, len)?
                }
            };
            if acl {
                // The kernel lists an ACL twice to root: as the POSIX ACL and under its raw
                // XFS name.
                if let Some(v) = attr::acl_to_xattr(&value) {
                    let mut raw_name = b"trusted.".to_vec();
                    raw_name.extend_from_slice(&a.name);
                    out.push(Xattr {
                        name: raw_name,
                        value: std::mem::replace(&mut value, v),
                    });
                }
            }
            out.push(Xattr { name, value });
        }
        Ok(out)
    }
}

impl XfsFs {
    /// Looks `name` up in directory `dir` through its hash index only (no fallback to a scan
    /// of the data blocks): for tests that must see the index work.
    #[doc(hidden)]
    pub fn lookup_hashed(&self, dir: NodeId, name: &[u8]) -> Result<Option<NodeId>> {
        let i = self.node_inode(dir)?;
        if i.format == format::LOCAL {
            return self.lookup(dir, name);
        }
        let ext = self.fork_map(&i, Fork::Data)?;
        Ok(self.hashed_lookup(&i, &ext, name)?.map(NodeId))
    }
}

/// `(label, uuid)` of an XFS superblock (its first 512 bytes), as blkid prints them, without
/// opening the filesystem; `None` when it is not a valid one.
pub fn superblock_info(raw: &[u8]) -> Option<(String, String)> {
    let sb = Superblock::parse(raw).ok()?;
    Some((sb.label(), sb.uuid_string()))
}

/// A zero-filled device of `size` bytes with some 512-byte sectors set: XFS images are at
/// least 300 MB, their metadata a few hundred KiB, so fuzz inputs list only those sectors.
#[derive(Debug)]
struct SparseDevice {
    size: u64,
    sectors: BTreeMap<u64, Vec<u8>>,
}

impl SparseDevice {
    /// Decodes `[u32 LE size in sectors] ([u32 LE sector] [u16 LE count] [count * 512 bytes])*`
    /// (the last run may be short; size capped at 4 GiB, runs at 128 sectors).
    fn decode(data: &[u8]) -> SparseDevice {
        let size = u64::from(crate::bytes::le32(data, 0)).min(8 << 20) * 512;
        let mut sectors = BTreeMap::new();
        let mut pos = 4;
        while pos + 6 <= data.len() {
            let at = u64::from(crate::bytes::le32(data, pos));
            let n = usize::from(crate::bytes::le16(data, pos + 4)).min(128);
            pos += 6;
            for i in 0..n as u64 {
                if pos >= data.len() {
                    break;
                }
                let end = (pos + 512).min(data.len());
                let mut s = data[pos..end].to_vec();
                s.resize(512, 0);
                sectors.insert(at + i, s);
                pos = end;
            }
        }
        SparseDevice { size, sectors }
    }
}

impl BlockDevice for SparseDevice {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> guestctl_block::Result<usize> {
        if offset >= self.size {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(self.size - offset) as usize;
        let buf = &mut buf[..n];
        buf.fill(0);
        if n == 0 {
            return Ok(0);
        }
        let first = offset / 512;
        let last = (offset + n as u64 - 1) / 512;
        for (&s, d) in self.sectors.range(first..=last) {
            let start = s * 512;
            let from = start.max(offset);
            let to = (start + 512).min(offset + n as u64);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&d[(from - start) as usize..(to - start) as usize]);
        }
        Ok(n)
    }
}

/// Fuzzing entry point: `data` lists the sectors of an XFS image ([`SparseDevice`]'s
/// encoding); opens it (with and without checksums, with and without log replay) and walks
/// it with bounded effort. Never panics on any input.
#[doc(hidden)]
pub fn fuzz_walk(data: &[u8]) {
    let dev: Arc<dyn BlockDevice> = Arc::new(SparseDevice::decode(data));
    for (verify, replay) in [(false, true), (true, true), (false, false)] {
        if let Ok(fs) = XfsFs::open(
            dev.clone(),
            &OpenOptions::default()
                .verify_checksums(verify)
                .replay_journal(replay),
        ) {
            crate::fuzz_walk_tree(&fs);
        }
    }
}

/// Encodes an image as a [`fuzz_walk`] input (its non-zero sectors), for seeds.
#[doc(hidden)]
pub fn fuzz_encode(image: &[u8]) -> Vec<u8> {
    let sectors = image.len() / 512;
    let mut out = (sectors.min(u32::MAX as usize) as u32)
        .to_le_bytes()
        .to_vec();
    let mut s = 0;
    while s < sectors {
        if image[s * 512..(s + 1) * 512].iter().all(|&b| b == 0) {
            s += 1;
            continue;
        }
        let mut n = 1;
        while n < 128
            && s + n < sectors
            && !image[(s + n) * 512..(s + n + 1) * 512]
                .iter()
                .all(|&b| b == 0)
        {
            n += 1;
        }
        out.extend_from_slice(&(s as u32).to_le_bytes());
        out.extend_from_slice(&(n as u16).to_le_bytes());
        out.extend_from_slice(&image[s * 512..(s + n) * 512]);
        s += n;
    }
    out
}
