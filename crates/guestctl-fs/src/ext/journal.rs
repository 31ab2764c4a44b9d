//! JBD2 journal replay into an in-memory overlay (ext3/ext4 `needs_recovery`).
//!
//! The kernel (`fs/jbd2/recovery.c`) and e2fsck recover a dirty journal in three passes over
//! the log, starting at the superblock's `s_start` with the expected sequence `s_sequence`:
//!
//! 1. SCAN finds the end of the log: the first block that is not a descriptor, commit or revoke
//!    block of the expected sequence, or a commit block whose checksum fails. Only transactions
//!    whose commit block was found are replayed.
//! 2. REVOKE collects, for every revoked filesystem block, the newest revoking transaction.
//! 3. REPLAY writes each journalled block of a committed transaction to its home, unless a
//!    transaction at least as new revoked it. Later transactions override earlier ones.
//!
//! Nothing is written here: the result is a map from filesystem block to the journal block that
//! holds its newest committed copy, which the ext reader lays over the device. All on-disk
//! fields are big-endian; every count, offset and walk is bounded by the journal's size.

use std::collections::{BTreeMap, HashMap};

use crate::bytes::{be16, be32, be64};
use crate::{Error, ErrorKind, Result};

/// Where the journal's blocks come from (the journal inode, mapped by the ext reader).
pub trait JournalSource {
    /// Number of blocks in the journal (journal inode size / block size).
    fn blocks(&self) -> u64;
    /// The block size of the filesystem (and of the journal).
    fn block_size(&self) -> usize;
    /// Reads journal block `idx` (logical: 0 is the journal superblock) into `buf`
    /// (`buf.len() == block_size()`).
    fn read_block(&self, idx: u64, buf: &mut [u8]) -> Result<()>;
}

/// The newest committed copy of one filesystem block inside the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalCopy {
    /// Logical journal block holding the data.
    pub journal_block: u64,
    /// The first four bytes were escaped (they equal the JBD2 magic): restore them.
    pub escaped: bool,
}

/// The result of replaying a journal: which filesystem blocks read from where.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// Filesystem block number → its newest committed copy in the journal.
    pub blocks: BTreeMap<u64, JournalCopy>,
    /// Number of committed transactions replayed.
    pub transactions: u32,
    /// What a user should know (e.g. a torn last transaction ignored, fast-commit area skipped).
    pub notes: Vec<String>,
    /// Sequence number of the first transaction in the log (the superblock's `s_sequence`).
    pub first_sequence: u32,
    /// Number of revoke records that cancelled a journalled copy.
    pub revoke_hits: u64,
}

/// The JBD2 magic number, at the start of every journal metadata block.
pub const JBD2_MAGIC: u32 = 0xC03B_3998;

const BLOCKTYPE_DESCRIPTOR: u32 = 1;
const BLOCKTYPE_COMMIT: u32 = 2;
const BLOCKTYPE_SUPERBLOCK_V1: u32 = 3;
const BLOCKTYPE_SUPERBLOCK_V2: u32 = 4;
const BLOCKTYPE_REVOKE: u32 = 5;

const COMPAT_CHECKSUM: u32 = 0x1;

const INCOMPAT_REVOKE: u32 = 0x1;
const INCOMPAT_64BIT: u32 = 0x2;
const INCOMPAT_ASYNC_COMMIT: u32 = 0x4;
const INCOMPAT_CSUM_V2: u32 = 0x8;
const INCOMPAT_CSUM_V3: u32 = 0x10;
const INCOMPAT_FAST_COMMIT: u32 = 0x20;
const INCOMPAT_KNOWN: u32 = INCOMPAT_REVOKE
    | INCOMPAT_64BIT
    | INCOMPAT_ASYNC_COMMIT
    | INCOMPAT_CSUM_V2
    | INCOMPAT_CSUM_V3
    | INCOMPAT_FAST_COMMIT;

const FLAG_ESCAPE: u32 = 0x1;
const FLAG_SAME_UUID: u32 = 0x2;
const FLAG_LAST_TAG: u32 = 0x8;

/// `s_checksum_type` for crc32c (the only type csum v2/v3 use).
const CHECKSUM_TYPE_CRC32C: u8 = 4;
/// `h_chksum_type` of a v1 (`COMPAT_CHECKSUM`) commit block: crc32 (big-endian polynomial).
const COMMIT_CHKSUM_CRC32: u8 = 1;
const COMMIT_CHKSUM_CRC32_SIZE: u8 = 4;

/// Fast-commit blocks when the superblock says 0 (the kernel's default).
const DEFAULT_FAST_COMMIT_BLOCKS: u32 = 256;

const HEADER_SIZE: usize = 12;
/// `jbd2_journal_block_tail`: the checksum at the end of descriptor and revoke blocks.
const TAIL_SIZE: usize = 4;
/// `jbd2_journal_revoke_header_t`: header + `r_count`.
const REVOKE_HEADER_SIZE: usize = 16;
/// The part of the journal superblock covered by `s_checksum`.
const SUPERBLOCK_SIZE: usize = 1024;

const MIN_BLOCK_SIZE: usize = 1024;
const MAX_BLOCK_SIZE: usize = 65536;

/// The kernel's `crc32c(seed, data)`: no pre- or post-inversion.
fn crc32c_raw(seed: u32, data: &[u8]) -> u32 {
    !crc32c::crc32c_append(!seed, data)
}

const CRC32_BE_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// The kernel's `crc32_be(seed, data)` (MSB-first CRC-32, no inversions): the v1
/// `COMPAT_CHECKSUM` commit checksum.
fn crc32_be(seed: u32, data: &[u8]) -> u32 {
    data.iter().fold(seed, |crc, &b| {
        (crc << 8) ^ CRC32_BE_TABLE[(((crc >> 24) ^ u32::from(b)) & 0xFF) as usize]
    })
}

/// `tid_gt`: sequence numbers wrap, compare them as a signed difference.
fn tid_gt(x: u32, y: u32) -> bool {
    (x.wrapping_sub(y) as i32) > 0
}

/// The parsed journal superblock (the fields recovery uses).
#[derive(Debug, Clone)]
struct Superblock {
    block_size: u32,
    maxlen: u32,
    first: u32,
    sequence: u32,
    start: u32,
    errno: u32,
    compat: u32,
    incompat: u32,
    uuid: [u8; 16],
    checksum_type: u8,
    num_fc_blks: u32,
    checksum: u32,
}

fn sb_err(msg: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::corrupt(msg).structure("jbd2 superblock")
}

impl Superblock {
    fn parse(b: &[u8]) -> Result<Self> {
        if b.len() < SUPERBLOCK_SIZE {
            return Err(sb_err(format!(
                "journal superblock needs {SUPERBLOCK_SIZE} bytes, have {}",
                b.len()
            )));
        }
        let magic = be32(b, 0);
        if magic != JBD2_MAGIC {
            return Err(sb_err(format!("bad magic {magic:#010x}")));
        }
        let blocktype = be32(b, 4);
        let v2 = match blocktype {
            BLOCKTYPE_SUPERBLOCK_V1 => false,
            BLOCKTYPE_SUPERBLOCK_V2 => true,
            t => {
                return Err(sb_err(format!(
                    "block type {t} is not a journal superblock"
                )))
            }
        };
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[0x30..0x40]);
        // A v1 superblock has no feature fields: the kernel treats them as zero.
        let feature = |off| if v2 { be32(b, off) } else { 0 };
        Ok(Superblock {
            block_size: be32(b, 0x0C),
            maxlen: be32(b, 0x10),
            first: be32(b, 0x14),
            sequence: be32(b, 0x18),
            start: be32(b, 0x1C),
            errno: be32(b, 0x20),
            compat: feature(0x24),
            incompat: feature(0x28),
            uuid,
            checksum_type: if v2 { b[0x50] } else { 0 },
            num_fc_blks: feature(0x54),
            checksum: be32(b, 0xFC),
        })
    }
}

/// Everything the passes need to know about the log's layout.
#[derive(Debug, Clone)]
struct Geometry {
    bs: usize,
    /// First block of the log area (`s_first`).
    first: u64,
    /// One past the last block of the log area (`s_maxlen`, minus the fast-commit area).
    last: u64,
    tag_bytes: usize,
    is64: bool,
    csum_v2or3: bool,
    csum_v3: bool,
    /// v1 `COMPAT_CHECKSUM`: crc32_be over descriptor and data blocks in the commit block.
    csum_v1: bool,
    /// `crc32c(~0, uuid)`, the seed of every v2/v3 checksum.
    seed: u32,
}

impl Geometry {
    fn len(&self) -> u64 {
        self.last - self.first
    }

    /// The log is circular: the block after `last - 1` is `first`.
    fn wrap(&self, b: u64) -> u64 {
        if b >= self.last {
            self.first + (b - self.first) % self.len()
        } else {
            b
        }
    }

    /// The usable bytes of a descriptor block (the tail checksum excluded).
    fn descriptor_space(&self) -> usize {
        if self.csum_v2or3 {
            self.bs - TAIL_SIZE
        } else {
            self.bs
        }
    }

    /// Descriptor and revoke blocks: crc32c over the block with the tail checksum zeroed.
    fn tail_csum_ok(&self, block: &[u8]) -> bool {
        if !self.csum_v2or3 {
            return true;
        }
        let tail = self.bs - TAIL_SIZE;
        let stored = be32(block, tail);
        let crc = crc32c_raw(self.seed, &block[..tail]);
        crc32c_raw(crc, &[0u8; TAIL_SIZE]) == stored
    }

    /// Commit blocks: crc32c over the block with `h_chksum[0]` (offset 16) zeroed.
    fn commit_csum_ok(&self, block: &[u8]) -> bool {
        if !self.csum_v2or3 {
            return true;
        }
        let stored = be32(block, 16);
        let mut crc = crc32c_raw(self.seed, &block[..16]);
        crc = crc32c_raw(crc, &[0u8; 4]);
        crc = crc32c_raw(crc, &block[20..self.bs]);
        crc == stored
    }

    /// Data blocks: crc32c(seed, be32 sequence, data), all 32 bits in a v3 tag, the low 16 in
    /// a v2 tag.
    fn data_csum_ok(&self, tag_csum: u32, sequence: u32, data: &[u8]) -> bool {
        if !self.csum_v2or3 {
            return true;
        }
        let crc = crc32c_raw(crc32c_raw(self.seed, &sequence.to_be_bytes()), data);
        if self.csum_v3 {
            crc == tag_csum
        } else {
            (crc & 0xFFFF) == (tag_csum & 0xFFFF)
        }
    }
}

/// One block tag of a descriptor, with the journal block its data occupies.
#[derive(Debug, Clone, Copy)]
struct Tag {
    fs_block: u64,
    journal_block: u64,
    flags: u32,
    checksum: u32,
}

/// A committed transaction, as the scan pass found it.
#[derive(Debug, Default)]
struct Transaction {
    sequence: u32,
    tags: Vec<Tag>,
    revoke_blocks: Vec<u64>,
}

/// Parses the tags of a descriptor block (`count_tags` / the replay loop in the kernel);
/// `journal_block` is left 0 for the caller to fill in.
fn parse_tags(g: &Geometry, block: &[u8]) -> Vec<Tag> {
    let space = g.descriptor_space();
    let mut tags = Vec::new();
    let mut off = HEADER_SIZE;
    while off + g.tag_bytes <= space {
        let low = u64::from(be32(block, off));
        let (flags, checksum, high) = if g.csum_v3 {
            (
                be32(block, off + 4),
                be32(block, off + 12),
                be32(block, off + 8),
            )
        } else {
            (
                u32::from(be16(block, off + 6)),
                u32::from(be16(block, off + 4)),
                be32(block, off + 8),
            )
        };
        let fs_block = if g.is64 {
            low | (u64::from(high) << 32)
        } else {
            low
        };
        tags.push(Tag {
            fs_block,
            journal_block: 0,
            flags,
            checksum,
        });
        off += g.tag_bytes;
        if flags & FLAG_SAME_UUID == 0 {
            off += 16;
        }
        if flags & FLAG_LAST_TAG != 0 {
            break;
        }
    }
    tags
}

fn read(src: &dyn JournalSource, idx: u64, buf: &mut [u8], what: &'static str) -> Result<()> {
    src.read_block(idx, buf)
        .map_err(|e| e.structure(format!("jbd2 {what} (journal block {idx})")))
}

/// Replays the journal read through `src`. `fs_blocks` is the filesystem's block count
/// (targets at or beyond it are corrupt). Returns `None` when the journal is clean.
pub fn replay(src: &dyn JournalSource, fs_blocks: u64) -> Result<Option<Replay>> {
    let bs = src.block_size();
    if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&bs) || !bs.is_power_of_two() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("journal block size {bs} is not a power of two in 1024..=65536"),
        ));
    }
    let mut buf = vec![0u8; bs];
    if src.blocks() == 0 {
        return Err(sb_err("the journal has no blocks"));
    }
    read(src, 0, &mut buf, "superblock")?;
    let sb = Superblock::parse(&buf)?;
    if sb.start == 0 {
        return Ok(None);
    }
    let g = geometry(&sb, &buf, bs, src.blocks())?;
    let mut replay = Replay {
        first_sequence: sb.sequence,
        ..Replay::default()
    };
    if sb.errno != 0 {
        replay.notes.push(format!(
            "the journal was aborted (errno {}): the filesystem should be checked",
            sb.errno as i32
        ));
    }

    let txns = scan(src, &g, &sb, &mut buf, &mut replay.notes)?;
    let revoked = scan_revokes(src, &g, &txns, &mut buf)?;
    apply_transactions(src, &g, &txns, &revoked, fs_blocks, &mut buf, &mut replay)?;

    if sb.incompat & INCOMPAT_FAST_COMMIT != 0 {
        fast_commit_note(src, &g, &sb, &mut buf, &mut replay.notes)?;
    }
    Ok(Some(replay))
}

/// Validates the superblock of a dirty journal and derives the log's layout.
fn geometry(sb: &Superblock, raw: &[u8], bs: usize, src_blocks: u64) -> Result<Geometry> {
    if sb.block_size as usize != bs {
        return Err(sb_err(format!(
            "journal block size {} differs from the filesystem's {bs}",
            sb.block_size
        )));
    }
    let unknown = sb.incompat & !INCOMPAT_KNOWN;
    if unknown != 0 {
        return Err(Error::unsupported(format!(
            "journal has unknown incompatible features {unknown:#x}"
        ))
        .structure("jbd2 superblock"));
    }
    let csum_v2 = sb.incompat & INCOMPAT_CSUM_V2 != 0;
    let csum_v3 = sb.incompat & INCOMPAT_CSUM_V3 != 0;
    if csum_v2 && csum_v3 {
        return Err(sb_err("journal sets both checksum v2 and v3"));
    }
    let csum_v2or3 = csum_v2 || csum_v3;
    let mut seed = 0;
    if csum_v2or3 {
        if sb.checksum_type != CHECKSUM_TYPE_CRC32C {
            return Err(sb_err(format!(
                "unknown journal checksum type {}",
                sb.checksum_type
            )));
        }
        let crc = crc32c_raw(!0, &raw[..0xFC]);
        let crc = crc32c_raw(crc, &[0u8; 4]);
        let crc = crc32c_raw(crc, &raw[0x100..SUPERBLOCK_SIZE]);
        if crc != sb.checksum {
            return Err(Error::new(
                ErrorKind::Checksum,
                format!(
                    "journal superblock checksum {:#010x} does not match {crc:#010x}",
                    sb.checksum
                ),
            )
            .structure("jbd2 superblock"));
        }
        seed = crc32c_raw(!0, &sb.uuid);
    }
    let maxlen = u64::from(sb.maxlen);
    if maxlen > src_blocks {
        return Err(sb_err(format!(
            "journal claims {maxlen} blocks but its file has {src_blocks}"
        )));
    }
    let mut last = maxlen;
    if sb.incompat & INCOMPAT_FAST_COMMIT != 0 {
        let fc = if sb.num_fc_blks == 0 {
            DEFAULT_FAST_COMMIT_BLOCKS
        } else {
            sb.num_fc_blks
        };
        last = last.saturating_sub(u64::from(fc));
    }
    let first = u64::from(sb.first);
    if first == 0 || first >= last {
        return Err(sb_err(format!(
            "journal log area {first}..{last} is empty or overlaps the superblock"
        )));
    }
    let start = u64::from(sb.start);
    if start < first || start >= last {
        return Err(sb_err(format!(
            "journal start block {start} is outside the log area {first}..{last}"
        )));
    }
    let is64 = sb.incompat & INCOMPAT_64BIT != 0;
    let tag_bytes = if csum_v3 {
        16
    } else {
        8 + if csum_v2 { 2 } else { 0 } + if is64 { 4 } else { 0 }
    };
    Ok(Geometry {
        bs,
        first,
        last,
        tag_bytes,
        is64,
        csum_v2or3,
        csum_v3,
        csum_v1: sb.compat & COMPAT_CHECKSUM != 0,
        seed,
    })
}

/// PASS_SCAN: walks the log and returns its committed transactions in order.
fn scan(
    src: &dyn JournalSource,
    g: &Geometry,
    sb: &Superblock,
    buf: &mut [u8],
    notes: &mut Vec<String>,
) -> Result<Vec<Transaction>> {
    let mut data = vec![0u8; g.bs];
    let mut txns = Vec::new();
    let mut cur = Transaction {
        sequence: sb.sequence,
        ..Transaction::default()
    };
    let mut pos = u64::from(sb.start);
    // Blocks of the log consumed so far: one pass can never cover more than the whole log.
    let mut walked: u64 = 0;
    let mut need_check_commit_time = false;
    let mut last_commit_time: u64 = 0;
    let mut crc32_sum: u32 = !0;

    loop {
        if walked >= g.len() {
            // Back at s_start: that block belongs to the first transaction.
            break;
        }
        let here = pos;
        read(src, here, buf, "log block")?;
        pos = g.wrap(pos + 1);
        walked += 1;
        if be32(buf, 0) != JBD2_MAGIC || be32(buf, 8) != cur.sequence {
            break;
        }
        match be32(buf, 4) {
            BLOCKTYPE_DESCRIPTOR => {
                if !g.tail_csum_ok(buf) {
                    // Possibly a stale block from an older use of the log: the commit block's
                    // time decides (below).
                    need_check_commit_time = true;
                }
                let mut tags = parse_tags(g, buf);
                walked += tags.len() as u64;
                if walked > g.len() {
                    return Err(Error::corrupt(format!(
                        "transaction {} describes more blocks than the journal holds",
                        cur.sequence
                    ))
                    .structure(format!("jbd2 descriptor block (journal block {here})")));
                }
                let sum_data = g.csum_v1 && !need_check_commit_time;
                if sum_data {
                    crc32_sum = crc32_be(crc32_sum, buf);
                }
                for tag in &mut tags {
                    tag.journal_block = pos;
                    if sum_data {
                        read(src, pos, &mut data, "data block")?;
                        crc32_sum = crc32_be(crc32_sum, &data);
                    }
                    pos = g.wrap(pos + 1);
                }
                cur.tags.extend(tags);
            }
            BLOCKTYPE_COMMIT => {
                let seq = cur.sequence;
                let commit_time = be64(buf, 48);
                if need_check_commit_time {
                    if commit_time >= last_commit_time {
                        return Err(Error::new(
                            ErrorKind::Checksum,
                            format!(
                                "transaction {seq} has a descriptor or revoke block whose \
                                 checksum does not match"
                            ),
                        )
                        .structure(format!("jbd2 commit block (journal block {here})")));
                    }
                    notes.push(format!(
                        "journal: transaction {seq} has a bad block checksum and an older \
                         commit time: stale data, end of log"
                    ));
                    break;
                }
                let mut bad = false;
                if g.csum_v1 {
                    let found = be32(buf, 16);
                    let (kind, size) = (buf[12], buf[13]);
                    let ok = (crc32_sum == found
                        && kind == COMMIT_CHKSUM_CRC32
                        && size == COMMIT_CHKSUM_CRC32_SIZE)
                        || (kind == 0 && size == 0 && found == 0);
                    bad = !ok;
                    crc32_sum = !0;
                }
                if !bad && !g.commit_csum_ok(buf) {
                    bad = true;
                }
                if bad {
                    notes.push(format!(
                        "journal: commit block of transaction {seq} (journal block {here}) \
                         fails its checksum: the transaction and any after it are not replayed"
                    ));
                    cur.tags.clear();
                    cur.revoke_blocks.clear();
                    break;
                }
                last_commit_time = commit_time;
                let next = Transaction {
                    sequence: seq.wrapping_add(1),
                    ..Transaction::default()
                };
                txns.push(std::mem::replace(&mut cur, next));
            }
            BLOCKTYPE_REVOKE => {
                if !g.tail_csum_ok(buf) {
                    need_check_commit_time = true;
                }
                cur.revoke_blocks.push(here);
            }
            _ => break,
        }
    }
    if !cur.tags.is_empty() || !cur.revoke_blocks.is_empty() {
        notes.push(format!(
            "journal: transaction {} was never committed ({} blocks): ignored",
            cur.sequence,
            cur.tags.len()
        ));
    }
    Ok(txns)
}

/// PASS_REVOKE: revoked filesystem block → the newest sequence that revoked it.
fn scan_revokes(
    src: &dyn JournalSource,
    g: &Geometry,
    txns: &[Transaction],
    buf: &mut [u8],
) -> Result<HashMap<u64, u32>> {
    let mut revoked: HashMap<u64, u32> = HashMap::new();
    let record = if g.is64 { 8 } else { 4 };
    for t in txns {
        for &blk in &t.revoke_blocks {
            read(src, blk, buf, "revoke block")?;
            let count = be32(buf, 12) as usize;
            if count > g.descriptor_space() {
                return Err(Error::corrupt(format!(
                    "revoke block uses {count} bytes of a {}-byte block",
                    g.bs
                ))
                .structure(format!("jbd2 revoke block (journal block {blk})")));
            }
            let mut off = REVOKE_HEADER_SIZE;
            while off + record <= count {
                let b = if g.is64 {
                    be64(buf, off)
                } else {
                    u64::from(be32(buf, off))
                };
                off += record;
                let e = revoked.entry(b).or_insert(t.sequence);
                if tid_gt(t.sequence, *e) {
                    *e = t.sequence;
                }
            }
        }
    }
    Ok(revoked)
}

/// PASS_REPLAY: lays every unrevoked, intact tag of the committed transactions over `replay`.
fn apply_transactions(
    src: &dyn JournalSource,
    g: &Geometry,
    txns: &[Transaction],
    revoked: &HashMap<u64, u32>,
    fs_blocks: u64,
    buf: &mut [u8],
    replay: &mut Replay,
) -> Result<()> {
    for t in txns {
        for tag in &t.tags {
            if let Some(&rseq) = revoked.get(&tag.fs_block) {
                if !tid_gt(t.sequence, rseq) {
                    replay.revoke_hits += 1;
                    continue;
                }
            }
            if g.csum_v2or3 {
                read(src, tag.journal_block, buf, "data block")?;
                if !g.data_csum_ok(tag.checksum, t.sequence, buf) {
                    replay.notes.push(format!(
                        "journal: copy of block {} in transaction {} (journal block {}) fails \
                         its checksum: not replayed",
                        tag.fs_block, t.sequence, tag.journal_block
                    ));
                    continue;
                }
            }
            if tag.fs_block >= fs_blocks {
                return Err(Error::corrupt(format!(
                    "transaction {} journals block {} of a {fs_blocks}-block filesystem",
                    t.sequence, tag.fs_block
                ))
                .structure("jbd2 descriptor block"));
            }
            replay.blocks.insert(
                tag.fs_block,
                JournalCopy {
                    journal_block: tag.journal_block,
                    escaped: tag.flags & FLAG_ESCAPE != 0,
                },
            );
        }
        replay.transactions += 1;
    }
    Ok(())
}

/// Fast commits are replayed by ext4 itself (inode-level), not block by block: say so.
fn fast_commit_note(
    src: &dyn JournalSource,
    g: &Geometry,
    sb: &Superblock,
    buf: &mut [u8],
    notes: &mut Vec<String>,
) -> Result<()> {
    let fc_blocks = u64::from(sb.maxlen) - g.last;
    // The kernel's first fast-commit block is j_last + 1.
    let fc_first = g.last + 1;
    let mut head = String::new();
    if fc_first < u64::from(sb.maxlen) {
        read(src, fc_first, buf, "fast-commit block")?;
        // ext4_fc_tl: le16 tag (EXT4_FC_TAG_HEAD = 9), le16 len; ext4_fc_head: le32 features,
        // le32 tid.
        if u16::from_le_bytes([buf[0], buf[1]]) == 9 {
            let tid = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
            head = format!(" (it holds fast commits for transaction {tid})");
        }
    }
    notes.push(format!(
        "journal: the fast-commit area ({fc_blocks} blocks){head} is not replayed; changes \
         made by fast commits after the last full commit are missing"
    ));
    Ok(())
}

/// Reads the journalled copy `copy` into `buf` (one block), restoring an escaped magic.
pub fn read_copy(src: &dyn JournalSource, copy: &JournalCopy, buf: &mut [u8]) -> Result<()> {
    read(src, copy.journal_block, buf, "data block")?;
    if copy.escaped {
        if let Some(head) = buf.get_mut(..4) {
            head.copy_from_slice(&JBD2_MAGIC.to_be_bytes());
        }
    }
    Ok(())
}

/// A [`JournalSource`] over a journal held in memory (tests, fuzzing): the block size comes
/// from the journal superblock.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct MemJournal<'a> {
    data: &'a [u8],
    bs: usize,
}

impl<'a> MemJournal<'a> {
    /// Wraps `data`, a whole journal starting with its superblock.
    pub fn new(data: &'a [u8]) -> Result<Self> {
        if data.len() < SUPERBLOCK_SIZE {
            return Err(sb_err(format!(
                "a journal of {} bytes cannot hold its superblock",
                data.len()
            )));
        }
        let bs = be32(data, 0x0C) as usize;
        if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&bs) || !bs.is_power_of_two() {
            return Err(sb_err(format!("journal block size {bs} is invalid")));
        }
        Ok(MemJournal { data, bs })
    }
}

impl JournalSource for MemJournal<'_> {
    fn blocks(&self) -> u64 {
        (self.data.len() / self.bs) as u64
    }
    fn block_size(&self) -> usize {
        self.bs
    }
    fn read_block(&self, idx: u64, buf: &mut [u8]) -> Result<()> {
        let src = usize::try_from(idx)
            .ok()
            .and_then(|i| i.checked_mul(self.bs))
            .and_then(|start| self.data.get(start..start.checked_add(self.bs)?));
        match (src, buf.len() == self.bs) {
            (Some(s), true) => {
                buf.copy_from_slice(s);
                Ok(())
            }
            (None, _) => Err(Error::corrupt(format!(
                "journal block {idx} is beyond the journal's {} blocks",
                self.blocks()
            ))),
            (Some(_), false) => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("buffer of {} bytes for a {}-byte block", buf.len(), self.bs),
            )),
        }
    }
}

/// Replays a journal held in memory (`journal` = the journal inode's bytes).
#[doc(hidden)]
pub fn replay_bytes(journal: &[u8], fs_blocks: u64) -> Result<Option<Replay>> {
    replay(&MemJournal::new(journal)?, fs_blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds journals block by block, as jbd2's commit code lays them out.
    struct Builder {
        bs: usize,
        maxlen: u64,
        first: u64,
        blocks: Vec<Vec<u8>>,
        compat: u32,
        incompat: u32,
        uuid: [u8; 16],
        start: u64,
        sequence: u32,
        /// Where the next log block goes, and the sequence of the next transaction.
        pos: u64,
        next_seq: u32,
        seed: u32,
        commit_time: u64,
        num_fc: u32,
    }

    const UUID: [u8; 16] = *b"guestctl-journal";

    impl Builder {
        fn new(bs: usize, maxlen: u64, compat: u32, incompat: u32) -> Self {
            Builder {
                bs,
                maxlen,
                first: 1,
                blocks: vec![vec![0u8; bs]; maxlen as usize],
                compat,
                incompat,
                uuid: UUID,
                start: 1,
                sequence: 1,
                pos: 1,
                next_seq: 1,
                seed: crc32c_raw(!0, &UUID),
                commit_time: 1_700_000_000,
                num_fc: 0,
            }
        }

        /// Starts the log at `pos` with sequence `seq`.
        fn start_at(mut self, pos: u64, seq: u32) -> Self {
            self.start = pos;
            self.pos = pos;
            self.sequence = seq;
            self.next_seq = seq;
            self
        }

        fn v2or3(&self) -> bool {
            self.incompat & (INCOMPAT_CSUM_V2 | INCOMPAT_CSUM_V3) != 0
        }

        fn geometry(&self) -> Geometry {
            let sb = self.superblock_bytes();
            let sb = Superblock::parse(&sb).expect("test superblock");
            geometry(&sb, &self.superblock_bytes(), self.bs, self.maxlen).expect("geometry")
        }

        fn header(&self, block: &mut [u8], kind: u32, seq: u32) {
            block[0..4].copy_from_slice(&JBD2_MAGIC.to_be_bytes());
            block[4..8].copy_from_slice(&kind.to_be_bytes());
            block[8..12].copy_from_slice(&seq.to_be_bytes());
        }

        fn put(&mut self, block: Vec<u8>) -> u64 {
            let at = self.pos;
            self.blocks[at as usize] = block;
            self.pos += 1;
            if self.pos >= self.maxlen {
                self.pos = self.first;
            }
            at
        }

        fn set_tail(&self, block: &mut [u8]) {
            if self.v2or3() {
                let tail = self.bs - 4;
                block[tail..].fill(0);
                let crc = crc32c_raw(self.seed, block);
                block[tail..].copy_from_slice(&crc.to_be_bytes());
            }
        }

        /// Writes one transaction: descriptor + data, revoke block, commit block (if `commit`).
        fn txn(&mut self, writes: &[(u64, Vec<u8>)], revokes: &[u64], commit: bool) -> u32 {
            let seq = self.next_seq;
            self.next_seq = self.next_seq.wrapping_add(1);
            let g = self.geometry();
            let mut v1_sum: u32 = !0;
            if !writes.is_empty() {
                let mut desc = vec![0u8; self.bs];
                self.header(&mut desc, BLOCKTYPE_DESCRIPTOR, seq);
                let mut off = HEADER_SIZE;
                let mut data_blocks = Vec::new();
                for (i, (fs_block, data)) in writes.iter().enumerate() {
                    let mut data = data.clone();
                    let mut flags = if i == 0 { 0 } else { FLAG_SAME_UUID };
                    if be32(&data, 0) == JBD2_MAGIC {
                        flags |= FLAG_ESCAPE;
                        data[0..4].fill(0);
                    }
                    if i + 1 == writes.len() {
                        flags |= FLAG_LAST_TAG;
                    }
                    let csum = crc32c_raw(crc32c_raw(self.seed, &seq.to_be_bytes()), &data);
                    let t = &mut desc[off..off + g.tag_bytes];
                    t[0..4].copy_from_slice(&(*fs_block as u32).to_be_bytes());
                    if g.csum_v3 {
                        t[4..8].copy_from_slice(&flags.to_be_bytes());
                        t[8..12].copy_from_slice(&((*fs_block >> 32) as u32).to_be_bytes());
                        t[12..16].copy_from_slice(&csum.to_be_bytes());
                    } else {
                        if g.csum_v2or3 {
                            t[4..6].copy_from_slice(&(csum as u16).to_be_bytes());
                        }
                        t[6..8].copy_from_slice(&(flags as u16).to_be_bytes());
                        if g.is64 {
                            t[8..12].copy_from_slice(&((*fs_block >> 32) as u32).to_be_bytes());
                        }
                    }
                    off += g.tag_bytes;
                    if i == 0 {
                        desc[off..off + 16].copy_from_slice(&self.uuid);
                        off += 16;
                    }
                    data_blocks.push(data);
                }
                self.set_tail(&mut desc);
                v1_sum = crc32_be(v1_sum, &desc);
                self.put(desc);
                for d in data_blocks {
                    v1_sum = crc32_be(v1_sum, &d);
                    self.put(d);
                }
            }
            if !revokes.is_empty() {
                let mut rb = vec![0u8; self.bs];
                self.header(&mut rb, BLOCKTYPE_REVOKE, seq);
                let mut off = REVOKE_HEADER_SIZE;
                for &r in revokes {
                    if g.is64 {
                        rb[off..off + 8].copy_from_slice(&r.to_be_bytes());
                        off += 8;
                    } else {
                        rb[off..off + 4].copy_from_slice(&(r as u32).to_be_bytes());
                        off += 4;
                    }
                }
                rb[12..16].copy_from_slice(&(off as u32).to_be_bytes());
                self.set_tail(&mut rb);
                self.put(rb);
            }
            if commit {
                let mut c = vec![0u8; self.bs];
                self.header(&mut c, BLOCKTYPE_COMMIT, seq);
                self.commit_time += 1;
                c[48..56].copy_from_slice(&self.commit_time.to_be_bytes());
                if g.csum_v1 {
                    c[12] = COMMIT_CHKSUM_CRC32;
                    c[13] = COMMIT_CHKSUM_CRC32_SIZE;
                    c[16..20].copy_from_slice(&v1_sum.to_be_bytes());
                } else if self.v2or3() {
                    c[12] = CHECKSUM_TYPE_CRC32C;
                    let crc = crc32c_raw(self.seed, &c);
                    c[16..20].copy_from_slice(&crc.to_be_bytes());
                }
                self.put(c);
            }
            seq
        }

        fn superblock_bytes(&self) -> Vec<u8> {
            let mut b = vec![0u8; self.bs];
            b[0..4].copy_from_slice(&JBD2_MAGIC.to_be_bytes());
            b[4..8].copy_from_slice(&BLOCKTYPE_SUPERBLOCK_V2.to_be_bytes());
            b[0x0C..0x10].copy_from_slice(&(self.bs as u32).to_be_bytes());
            b[0x10..0x14].copy_from_slice(&(self.maxlen as u32).to_be_bytes());
            b[0x14..0x18].copy_from_slice(&(self.first as u32).to_be_bytes());
            b[0x18..0x1C].copy_from_slice(&self.sequence.to_be_bytes());
            b[0x1C..0x20].copy_from_slice(&(self.start as u32).to_be_bytes());
            b[0x24..0x28].copy_from_slice(&self.compat.to_be_bytes());
            b[0x28..0x2C].copy_from_slice(&self.incompat.to_be_bytes());
            b[0x30..0x40].copy_from_slice(&self.uuid);
            b[0x54..0x58].copy_from_slice(&self.num_fc.to_be_bytes());
            if self.v2or3() {
                b[0x50] = CHECKSUM_TYPE_CRC32C;
                let crc = crc32c_raw(!0, &b[..SUPERBLOCK_SIZE]);
                b[0xFC..0x100].copy_from_slice(&crc.to_be_bytes());
            }
            b
        }

        fn bytes(&self) -> Vec<u8> {
            let mut out = self.blocks.concat();
            out[..self.bs].copy_from_slice(&self.superblock_bytes());
            out
        }
    }

    fn block(bs: usize, fill: u8) -> Vec<u8> {
        vec![fill; bs]
    }

    /// The replayed content of `fs_block`, or None when the journal has no copy.
    fn content(journal: &[u8], r: &Replay, fs_block: u64) -> Option<Vec<u8>> {
        let src = MemJournal::new(journal).expect("journal");
        let copy = r.blocks.get(&fs_block)?;
        let mut buf = vec![0u8; src.block_size()];
        read_copy(&src, copy, &mut buf).expect("read copy");
        Some(buf)
    }

    fn run(journal: &[u8], fs_blocks: u64) -> Replay {
        replay_bytes(journal, fs_blocks)
            .expect("replay")
            .expect("journal is dirty")
    }

    const R64: u32 = INCOMPAT_REVOKE | INCOMPAT_64BIT;

    #[test]
    fn clean_journal_is_none() {
        let b = Builder::new(1024, 64, 0, R64).start_at(0, 5);
        assert!(replay_bytes(&b.bytes(), 1000).expect("replay").is_none());
    }

    #[test]
    fn plain_transaction() {
        let mut b = Builder::new(1024, 64, 0, INCOMPAT_REVOKE);
        b.txn(
            &[(10, block(1024, 0xAA)), (11, block(1024, 0xBB))],
            &[],
            true,
        );
        let j = b.bytes();
        let r = run(&j, 100);
        assert_eq!(r.transactions, 1);
        assert_eq!(r.blocks.len(), 2);
        assert_eq!(
            r.blocks[&10],
            JournalCopy {
                journal_block: 2,
                escaped: false
            }
        );
        assert_eq!(content(&j, &r, 11), Some(block(1024, 0xBB)));
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn second_transaction_overrides_first() {
        let mut b = Builder::new(4096, 32, 0, R64);
        b.txn(&[(7, block(4096, 1)), (8, block(4096, 2))], &[], true);
        b.txn(&[(7, block(4096, 3))], &[], true);
        let j = b.bytes();
        let r = run(&j, 100);
        assert_eq!(r.transactions, 2);
        assert_eq!(content(&j, &r, 7), Some(block(4096, 3)));
        assert_eq!(content(&j, &r, 8), Some(block(4096, 2)));
    }

    #[test]
    fn revoke_cancels_earlier_copies_only() {
        let mut b = Builder::new(1024, 64, 0, R64);
        b.txn(&[(20, block(1024, 1)), (21, block(1024, 2))], &[], true);
        b.txn(&[(22, block(1024, 3))], &[20, 22], true);
        b.txn(&[(22, block(1024, 4))], &[], true);
        let j = b.bytes();
        let r = run(&j, 100);
        assert_eq!(r.transactions, 3);
        assert!(
            !r.blocks.contains_key(&20),
            "revoked by a later transaction"
        );
        assert_eq!(content(&j, &r, 21), Some(block(1024, 2)));
        // Revoked by its own transaction, then journalled again by a newer one.
        assert_eq!(content(&j, &r, 22), Some(block(1024, 4)));
        assert_eq!(r.revoke_hits, 2);
    }

    #[test]
    fn revoke_in_uncommitted_transaction_is_ignored() {
        let mut b = Builder::new(1024, 64, 0, R64);
        b.txn(&[(20, block(1024, 1))], &[], true);
        b.txn(&[], &[20], false);
        let j = b.bytes();
        let r = run(&j, 100);
        assert_eq!(content(&j, &r, 20), Some(block(1024, 1)));
        assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
    }

    #[test]
    fn escaped_block_is_restored() {
        let mut b = Builder::new(1024, 64, 0, R64);
        let mut data = block(1024, 0x55);
        data[0..4].copy_from_slice(&JBD2_MAGIC.to_be_bytes());
        b.txn(&[(5, data.clone())], &[], true);
        let j = b.bytes();
        let r = run(&j, 100);
        assert!(r.blocks[&5].escaped);
        assert_eq!(be32(&j, 2 * 1024), 0, "stored escaped in the journal");
        assert_eq!(content(&j, &r, 5), Some(data));
    }

    #[test]
    fn uncommitted_last_transaction_is_ignored() {
        let mut b = Builder::new(1024, 64, 0, R64);
        b.txn(&[(30, block(1024, 1))], &[], true);
        b.txn(&[(30, block(1024, 2)), (31, block(1024, 2))], &[], false);
        let j = b.bytes();
        let r = run(&j, 100);
        assert_eq!(r.transactions, 1);
        assert_eq!(content(&j, &r, 30), Some(block(1024, 1)));
        assert!(!r.blocks.contains_key(&31));
        assert!(r.notes[0].contains("never committed"), "{:?}", r.notes);
    }

    #[test]
    fn log_wraps_around() {
        // 16 blocks, log area 1..16; start at 13 so the second transaction wraps.
        let mut b = Builder::new(1024, 16, 0, R64).start_at(13, 100);
        b.txn(&[(40, block(1024, 1))], &[], true); // 13, 14, 15
        b.txn(&[(41, block(1024, 2)), (42, block(1024, 3))], &[40], true); // 1..=4 after wrap
        let j = b.bytes();
        let r = run(&j, 100);
        assert_eq!(r.transactions, 2);
        assert_eq!(r.blocks[&41].journal_block, 2);
        assert!(!r.blocks.contains_key(&40));
        assert_eq!(content(&j, &r, 42), Some(block(1024, 3)));

        // A descriptor whose data wraps in the middle.
        let mut b = Builder::new(1024, 16, 0, R64).start_at(14, 7);
        b.txn(&[(50, block(1024, 5)), (51, block(1024, 6))], &[], true); // 14, 15, 1, 2
        let j = b.bytes();
        let r = run(&j, 100);
        assert_eq!(r.blocks[&50].journal_block, 15);
        assert_eq!(r.blocks[&51].journal_block, 1);
        assert_eq!(content(&j, &r, 51), Some(block(1024, 6)));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut b = Builder::new(1024, 64, 0, R64).start_at(1, u32::MAX);
        b.txn(&[(9, block(1024, 1)), (10, block(1024, 1))], &[], true); // seq 0xffffffff
        b.txn(&[(9, block(1024, 2))], &[10], true); // seq 0
        let j = b.bytes();
        let r = run(&j, 100);
        assert_eq!(r.transactions, 2);
        assert_eq!(content(&j, &r, 9), Some(block(1024, 2)));
        assert!(
            !r.blocks.contains_key(&10),
            "revoke at seq 0 is newer than 0xffffffff"
        );
    }

    #[test]
    fn tags_64bit() {
        let big = (1u64 << 33) + 17;
        for incompat in [R64, R64 | INCOMPAT_CSUM_V3, R64 | INCOMPAT_CSUM_V2] {
            let mut b = Builder::new(1024, 64, 0, incompat);
            b.txn(
                &[(big, block(1024, 9)), (3, block(1024, 8))],
                &[big + 1],
                true,
            );
            b.txn(&[(big + 1, block(1024, 7))], &[], true);
            let j = b.bytes();
            let r = run(&j, 1 << 40);
            assert_eq!(content(&j, &r, big), Some(block(1024, 9)), "{incompat:#x}");
            assert_eq!(content(&j, &r, 3), Some(block(1024, 8)));
            assert_eq!(content(&j, &r, big + 1), Some(block(1024, 7)));
            // The same journal read as 32-bit would be a different journal: the high word
            // must matter.
            let err = replay_bytes(&j, 1 << 32);
            assert!(err.is_err(), "target beyond the filesystem must be corrupt");
        }
    }

    #[test]
    fn tags_32bit_ignore_high_word() {
        let mut b = Builder::new(1024, 64, 0, INCOMPAT_REVOKE);
        b.txn(&[(12, block(1024, 1))], &[], true);
        let j = b.bytes();
        let r = run(&j, 13);
        assert_eq!(r.blocks.keys().copied().collect::<Vec<_>>(), vec![12]);
    }

    #[test]
    fn csum_v3_good() {
        let mut b = Builder::new(4096, 32, 0, R64 | INCOMPAT_CSUM_V3);
        b.txn(&[(5, block(4096, 1))], &[], true);
        b.txn(&[(6, block(4096, 2))], &[5], true);
        let j = b.bytes();
        let r = run(&j, 100);
        assert_eq!(r.transactions, 2);
        assert_eq!(r.blocks.keys().copied().collect::<Vec<_>>(), vec![6]);
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn csum_v3_bad_commit_ends_the_log() {
        let mut b = Builder::new(4096, 32, 0, R64 | INCOMPAT_CSUM_V3);
        b.txn(&[(5, block(4096, 1))], &[], true); // blocks 1, 2, 3
        b.txn(&[(5, block(4096, 2)), (6, block(4096, 2))], &[], true); // 4, 5, 6, 7
        b.txn(&[(7, block(4096, 3))], &[], true); // 8, 9, 10
        let mut j = b.bytes();
        j[7 * 4096 + 100] ^= 1; // corrupt the second commit block
        let r = run(&j, 100);
        assert_eq!(r.transactions, 1);
        assert_eq!(content(&j, &r, 5), Some(block(4096, 1)));
        assert!(!r.blocks.contains_key(&6));
        assert!(!r.blocks.contains_key(&7), "nothing after a bad commit");
        assert!(
            r.notes.iter().any(|n| n.contains("commit block")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn csum_v3_bad_data_block_is_skipped() {
        let mut b = Builder::new(4096, 32, 0, R64 | INCOMPAT_CSUM_V3);
        b.txn(&[(5, block(4096, 1))], &[], true); // 1, 2, 3
        b.txn(&[(5, block(4096, 2)), (6, block(4096, 2))], &[], true); // 4, 5, 6, 7
        let mut j = b.bytes();
        j[5 * 4096 + 9] ^= 0x80; // the second copy of block 5
        let r = run(&j, 100);
        assert_eq!(r.transactions, 2);
        assert_eq!(content(&j, &r, 5), Some(block(4096, 1)), "older copy stays");
        assert_eq!(content(&j, &r, 6), Some(block(4096, 2)));
        assert!(
            r.notes.iter().any(|n| n.contains("block 5")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn csum_v3_bad_descriptor_fails_recovery() {
        let mut b = Builder::new(4096, 32, 0, R64 | INCOMPAT_CSUM_V3);
        b.txn(&[(5, block(4096, 1))], &[], true);
        let mut j = b.bytes();
        j[4096 + 2000] ^= 1;
        let e = replay_bytes(&j, 100).expect_err("bad descriptor with a newer commit");
        assert_eq!(e.kind(), ErrorKind::Checksum);
    }

    #[test]
    fn csum_v3_bad_superblock_checksum() {
        let mut b = Builder::new(1024, 32, 0, R64 | INCOMPAT_CSUM_V3);
        b.txn(&[(5, block(1024, 1))], &[], true);
        let mut j = b.bytes();
        j[0x40] ^= 1;
        let e = replay_bytes(&j, 100).expect_err("bad superblock checksum");
        assert_eq!(e.kind(), ErrorKind::Checksum);
    }

    #[test]
    fn csum_v2_bad_data_block_is_skipped() {
        let mut b = Builder::new(1024, 32, 0, INCOMPAT_REVOKE | INCOMPAT_CSUM_V2);
        b.txn(&[(5, block(1024, 1)), (6, block(1024, 1))], &[], true); // 1, 2, 3, 4
        let mut j = b.bytes();
        j[3 * 1024] ^= 1;
        let r = run(&j, 100);
        assert_eq!(r.blocks.keys().copied().collect::<Vec<_>>(), vec![5]);
    }

    #[test]
    fn csum_v1_commit_checksum() {
        let mut b = Builder::new(1024, 32, COMPAT_CHECKSUM, INCOMPAT_REVOKE);
        b.txn(&[(5, block(1024, 1))], &[], true); // 1, 2, 3
        b.txn(&[(6, block(1024, 2))], &[], true); // 4, 5, 6
        let j = b.bytes();
        assert_eq!(run(&j, 100).transactions, 2);
        let mut bad = j.clone();
        bad[5 * 1024 + 1] ^= 1; // data of the second transaction
        let r = run(&bad, 100);
        assert_eq!(r.transactions, 1);
        assert_eq!(r.blocks.keys().copied().collect::<Vec<_>>(), vec![5]);
    }

    #[test]
    fn target_beyond_filesystem_is_corrupt() {
        let mut b = Builder::new(1024, 32, 0, R64);
        b.txn(&[(100, block(1024, 1))], &[], true);
        let e = replay_bytes(&b.bytes(), 100).expect_err("block 100 of 100");
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(replay_bytes(&b.bytes(), 101).is_ok());
    }

    #[test]
    fn fast_commit_area_is_noted_and_excluded_from_the_log() {
        let mut b = Builder::new(1024, 64, 0, R64 | INCOMPAT_FAST_COMMIT);
        // 64 blocks, 256 default fast-commit blocks would leave no log: set 16.
        b.num_fc = 16;
        b.txn(&[(5, block(1024, 1))], &[], true);
        let mut j = b.bytes();
        let r = run(&j, 100);
        assert_eq!(r.transactions, 1);
        assert!(
            r.notes.iter().any(|n| n.contains("fast-commit")),
            "{:?}",
            r.notes
        );
        // The log area ends at 48: a start there is outside it.
        j[0x1C..0x20].copy_from_slice(&50u32.to_be_bytes());
        assert!(replay_bytes(&j, 100).is_err());
    }

    #[test]
    fn descriptor_claiming_more_than_the_log_is_corrupt() {
        // 8-block journal, 1 KiB blocks: a descriptor with 100 SAME_UUID tags.
        let mut j = Builder::new(1024, 8, 0, INCOMPAT_REVOKE).bytes();
        let d = &mut j[1024..2048];
        d[0..4].copy_from_slice(&JBD2_MAGIC.to_be_bytes());
        d[4..8].copy_from_slice(&BLOCKTYPE_DESCRIPTOR.to_be_bytes());
        d[8..12].copy_from_slice(&1u32.to_be_bytes());
        for i in 0..100 {
            d[12 + i * 8 + 6..12 + i * 8 + 8]
                .copy_from_slice(&(FLAG_SAME_UUID as u16).to_be_bytes());
        }
        let e = replay_bytes(&j, 100).expect_err("overlong descriptor");
        assert_eq!(e.kind(), ErrorKind::Corrupt);
    }

    #[test]
    fn full_circle_stops() {
        // The log is exactly full of committed (empty) transactions: one circle, then stop.
        let mut b = Builder::new(1024, 16, 0, R64).start_at(1, 1);
        for _ in 0..15 {
            b.txn(&[], &[], true);
        }
        let j = b.bytes();
        let r = run(&j, 100);
        assert_eq!(r.transactions, 15);
    }

    #[test]
    fn garbage_and_truncation_never_panic() {
        let mut b = Builder::new(1024, 32, 0, R64 | INCOMPAT_CSUM_V3);
        let mut magic = block(1024, 3);
        magic[0..4].copy_from_slice(&JBD2_MAGIC.to_be_bytes());
        b.txn(&[(5, block(1024, 1)), (6, magic)], &[7], true);
        b.txn(&[(7, block(1024, 2))], &[5], true);
        b.txn(&[(8, block(1024, 2))], &[], false);
        let good = b.bytes();
        let mut plain = Builder::new(1024, 32, COMPAT_CHECKSUM, INCOMPAT_REVOKE);
        plain.txn(&[(5, block(1024, 1)), (6, block(1024, 1))], &[7], true);
        plain.txn(&[(7, block(1024, 2))], &[5], true);
        let plain = plain.bytes();

        for j in [&good, &plain] {
            for len in (0..j.len()).step_by(97).chain([1023, 1024, 1025, 2048]) {
                let _ = replay_bytes(&j[..len], 100);
            }
            let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            for _ in 0..3000 {
                let mut m = j.clone();
                for _ in 0..(next() % 8 + 1) {
                    // Mostly the metadata blocks and the superblock's fields.
                    let at = if next() % 2 == 0 {
                        (next() % 0x60) as usize
                    } else {
                        (next() as usize) % m.len()
                    };
                    m[at] = next() as u8;
                }
                if let Ok(Some(r)) = replay_bytes(&m, 100) {
                    assert!(r.blocks.len() as u64 <= 32);
                    assert!(r.blocks.keys().all(|&b| b < 100));
                }
            }
        }
        // Pure noise.
        for n in [0usize, 1, 12, 1024, 4096] {
            let _ = replay_bytes(&vec![0xFF; n], u64::MAX);
            let _ = replay_bytes(&vec![0; n], 0);
        }
    }

    #[test]
    fn crc_helpers_match_known_values() {
        // crc32c("123456789") = 0xE3069283 with the usual inversions.
        assert_eq!(!crc32c_raw(!0, b"123456789"), 0xE306_9283);
        // CRC-32/MPEG-2 (MSB first, init ~0, no final xor) of "123456789" = 0x0376E6E7.
        assert_eq!(crc32_be(!0, b"123456789"), 0x0376_E6E7);
        assert!(tid_gt(0, u32::MAX));
        assert!(!tid_gt(u32::MAX, 0));
    }
}
