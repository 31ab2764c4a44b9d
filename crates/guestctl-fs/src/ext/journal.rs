//! JBD2 journal replay into an in-memory overlay (ext3/ext4 `needs_recovery`).
//!
//! The three passes of the kernel's recovery, without writing anything:
//! 1. **scan** from `s_start` with `s_sequence` to the end of the log: a block that is not a
//!    descriptor, commit or revoke block of the expected sequence ends it, and so does a
//!    commit block whose checksum fails (csum v2/v3); the transaction without its commit is
//!    not replayed;
//! 2. **revoke**: every revoke record remembers the newest transaction that revoked a block;
//! 3. **replay**: each tagged block of each committed transaction becomes the newest copy of
//!    its filesystem block, unless revoked by the same or a later transaction. A data block
//!    whose tag checksum fails is skipped (and reported), as the kernel does.
//!
//! The log is circular between `s_first` and `s_maxlen` (less the fast-commit area, which is
//! not replayed). Every loop is bounded by the journal length. All fields are big-endian.

use std::collections::{BTreeMap, HashMap};

use super::csum::crc32c_raw;
use crate::{Error, Result};

/// The JBD2 magic number.
pub const MAGIC: u32 = 0xC03B_3998;

const DESCRIPTOR: u32 = 1;
const COMMIT: u32 = 2;
const SB_V1: u32 = 3;
const SB_V2: u32 = 4;
const REVOKE: u32 = 5;

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
}

fn be32(b: &[u8], o: usize) -> u32 {
    match b.get(o..o + 4) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

fn corrupt(msg: impl Into<String>, block: u64, bs: usize) -> Error {
    Error::corrupt(msg.into())
        .structure("jbd2 journal")
        .at(block.saturating_mul(bs as u64))
}

/// The journal superblock fields recovery needs.
struct Sb {
    bs: usize,
    first: u64,
    /// One past the last block of the circular log (fast-commit area excluded).
    last: u64,
    sequence: u32,
    start: u64,
    incompat: u32,
    seed: u32,
}

impl Sb {
    fn csum(&self) -> bool {
        self.incompat & (INCOMPAT_CSUM_V2 | INCOMPAT_CSUM_V3) != 0
    }
    fn tag_bytes(&self) -> usize {
        if self.incompat & INCOMPAT_CSUM_V3 != 0 {
            return 16;
        }
        let mut sz = 12;
        if self.incompat & INCOMPAT_CSUM_V2 != 0 {
            sz += 2;
        }
        if self.incompat & INCOMPAT_64BIT == 0 {
            sz -= 4;
        }
        sz
    }
    fn wrap(&self, b: u64) -> u64 {
        if b >= self.last {
            b - (self.last - self.first)
        } else {
            b
        }
    }
    /// A descriptor or revoke block's tail checksum holds (or checksums are off).
    fn tail_ok(&self, block: &[u8]) -> bool {
        if !self.csum() {
            return true;
        }
        let t = self.bs - 4;
        let mut c = crc32c_raw(self.seed, &block[..t]);
        c = crc32c_raw(c, &[0; 4]);
        c == be32(block, t)
    }
}

fn parse_sb(b: &[u8], src_blocks: u64, src_bs: usize) -> Result<Option<Sb>> {
    let bad = |m: String| corrupt(m, 0, src_bs).structure("jbd2 superblock");
    if be32(b, 0) != MAGIC {
        return Err(bad(format!("bad magic {:#010x}", be32(b, 0))));
    }
    let kind = be32(b, 4);
    if kind != SB_V1 && kind != SB_V2 {
        return Err(bad(format!(
            "block type {kind} is not a journal superblock"
        )));
    }
    let bs = be32(b, 0xC) as usize;
    if bs != src_bs {
        return Err(bad(format!(
            "journal block size {bs} differs from the filesystem's {src_bs}"
        )));
    }
    let maxlen = u64::from(be32(b, 0x10));
    let first = u64::from(be32(b, 0x14));
    let sequence = be32(b, 0x18);
    let start = u64::from(be32(b, 0x1C));
    if maxlen > src_blocks || maxlen < 2 || first == 0 || first >= maxlen {
        return Err(bad(format!(
            "log bounds first={first} maxlen={maxlen} for a journal of {src_blocks} blocks"
        )));
    }
    let incompat = if kind == SB_V2 { be32(b, 0x28) } else { 0 };
    if incompat & !INCOMPAT_KNOWN != 0 {
        return Err(Error::unsupported(format!(
            "journal uses unknown incompatible features {:#x}",
            incompat & !INCOMPAT_KNOWN
        ))
        .structure("jbd2 superblock"));
    }
    let mut last = maxlen;
    if incompat & INCOMPAT_FAST_COMMIT != 0 {
        let fc = match u64::from(be32(b, 0x54)) {
            0 => 256,
            n => n,
        };
        if fc >= maxlen - first {
            return Err(bad(format!(
                "fast-commit area of {fc} blocks leaves no log"
            )));
        }
        last = maxlen - fc;
    }
    if start == 0 {
        return Ok(None);
    }
    if start < first || start >= last {
        return Err(bad(format!("log start {start} outside {first}..{last}")));
    }
    Ok(Some(Sb {
        bs,
        first,
        last,
        sequence,
        start,
        incompat,
        seed: crc32c_raw(!0, &b[0x30..0x40]),
    }))
}

/// One tag of a descriptor block.
struct Tag {
    fs_block: u64,
    flags: u32,
    csum: u32,
}

fn parse_tags(sb: &Sb, block: &[u8]) -> Vec<Tag> {
    let tb = sb.tag_bytes();
    let end = sb.bs - if sb.csum() { 4 } else { 0 };
    let mut off = 12;
    let mut tags = Vec::new();
    while off + tb <= end {
        let lo = u64::from(be32(block, off));
        let (flags, hi, csum) = if sb.incompat & INCOMPAT_CSUM_V3 != 0 {
            (
                be32(block, off + 4),
                be32(block, off + 8),
                be32(block, off + 12),
            )
        } else {
            let csum = u32::from(u16::from_be_bytes([block[off + 4], block[off + 5]]));
            let flags = u32::from(u16::from_be_bytes([block[off + 6], block[off + 7]]));
            let hi = if sb.incompat & INCOMPAT_64BIT != 0 {
                be32(block, off + 8)
            } else {
                0
            };
            (flags, hi, csum)
        };
        let hi = if sb.incompat & INCOMPAT_64BIT != 0 {
            hi
        } else {
            0
        };
        tags.push(Tag {
            fs_block: lo | (u64::from(hi) << 32),
            flags,
            csum,
        });
        off += tb;
        if flags & FLAG_SAME_UUID == 0 {
            off += 16;
        }
        if flags & FLAG_LAST_TAG != 0 {
            break;
        }
    }
    tags
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Pass {
    Scan,
    Revoke,
    Replay,
}

/// Replays the journal read through `src`. `fs_blocks` is the filesystem's block count
/// (targets at or beyond it are corrupt). Returns `None` when the journal is clean.
pub fn replay(src: &dyn JournalSource, fs_blocks: u64) -> Result<Option<Replay>> {
    let bs = src.block_size();
    if !(1024..=65536).contains(&bs) {
        return Err(Error::corrupt(format!("journal block size {bs}")).structure("jbd2 journal"));
    }
    let mut buf = vec![0u8; bs];
    src.read_block(0, &mut buf)?;
    let Some(sb) = parse_sb(&buf, src.blocks(), bs)? else {
        return Ok(None);
    };
    let mut out = Replay::default();
    if sb.incompat & INCOMPAT_FAST_COMMIT != 0 {
        out.notes
            .push("journal has a fast-commit area: its records are not replayed".into());
    }
    let mut end = sb.sequence;
    let mut revoked: HashMap<u64, u32> = HashMap::new();
    for pass in [Pass::Scan, Pass::Revoke, Pass::Replay] {
        let mut seq = sb.sequence;
        let mut at = sb.start;
        // A log can hold no more blocks than the journal has.
        let mut budget = sb.last - sb.first + 1;
        loop {
            if pass != Pass::Scan && seq == end {
                break;
            }
            budget = match budget.checked_sub(1) {
                Some(b) => b,
                None => {
                    if pass == Pass::Scan {
                        out.notes
                            .push("journal log wraps onto itself: scan stopped".into());
                    }
                    break;
                }
            };
            let here = at;
            src.read_block(here, &mut buf)?;
            at = sb.wrap(at + 1);
            if be32(&buf, 0) != MAGIC || be32(&buf, 8) != seq {
                break;
            }
            match be32(&buf, 4) {
                DESCRIPTOR => {
                    if !sb.tail_ok(&buf) {
                        if pass == Pass::Scan {
                            out.notes.push(format!(
                                "descriptor block {here} of transaction {seq} fails its checksum: the log ends there"
                            ));
                        }
                        break;
                    }
                    let tags = parse_tags(&sb, &buf);
                    for t in tags {
                        let data_at = at;
                        at = sb.wrap(at + 1);
                        if pass != Pass::Replay {
                            continue;
                        }
                        if t.fs_block >= fs_blocks {
                            return Err(corrupt(
                                format!(
                                    "transaction {seq} logs filesystem block {} beyond the filesystem ({fs_blocks} blocks)",
                                    t.fs_block
                                ),
                                here,
                                bs,
                            ));
                        }
                        if let Some(&r) = revoked.get(&t.fs_block) {
                            if !tid_gt(seq, r) {
                                continue;
                            }
                        }
                        if sb.csum() {
                            let mut data = vec![0u8; bs];
                            src.read_block(data_at, &mut data)?;
                            let c = crc32c_raw(crc32c_raw(sb.seed, &seq.to_be_bytes()), &data);
                            let ok = if sb.incompat & INCOMPAT_CSUM_V3 != 0 {
                                c == t.csum
                            } else {
                                (c & 0xFFFF) == t.csum
                            };
                            if !ok {
                                out.notes.push(format!(
                                    "journal block {data_at} (filesystem block {}) fails its checksum: not replayed",
                                    t.fs_block
                                ));
                                continue;
                            }
                        }
                        out.blocks.insert(
                            t.fs_block,
                            JournalCopy {
                                journal_block: data_at,
                                escaped: t.flags & FLAG_ESCAPE != 0,
                            },
                        );
                    }
                }
                COMMIT => {
                    if pass == Pass::Scan && sb.csum() {
                        let provided = be32(&buf, 16);
                        let mut b = buf.clone();
                        b[16..20].fill(0);
                        if crc32c_raw(sb.seed, &b) != provided {
                            out.notes.push(format!(
                                "commit block of transaction {seq} fails its checksum: the log ends before it"
                            ));
                            break;
                        }
                    }
                    seq = seq.wrapping_add(1);
                }
                REVOKE => {
                    if !sb.tail_ok(&buf) {
                        if pass == Pass::Revoke {
                            out.notes
                                .push(format!("revoke block {here} fails its checksum: ignored"));
                        }
                        continue;
                    }
                    if pass == Pass::Revoke {
                        let rec = if sb.incompat & INCOMPAT_64BIT != 0 {
                            8
                        } else {
                            4
                        };
                        let used = (be32(&buf, 12) as usize).min(bs);
                        let mut off = 16;
                        while off + rec <= used {
                            let b = if rec == 8 {
                                (u64::from(be32(&buf, off)) << 32) | u64::from(be32(&buf, off + 4))
                            } else {
                                u64::from(be32(&buf, off))
                            };
                            let e = revoked.entry(b).or_insert(seq);
                            if tid_gt(seq, *e) {
                                *e = seq;
                            }
                            off += rec;
                        }
                    }
                }
                _ => break,
            }
        }
        if pass == Pass::Scan {
            end = seq;
        }
    }
    out.transactions = end.wrapping_sub(sb.sequence);
    Ok(Some(out))
}

/// `a` is a later transaction than `b` (sequence numbers wrap).
fn tid_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

struct Bytes<'a> {
    data: &'a [u8],
    bs: usize,
}

impl JournalSource for Bytes<'_> {
    fn blocks(&self) -> u64 {
        (self.data.len() / self.bs) as u64
    }
    fn block_size(&self) -> usize {
        self.bs
    }
    fn read_block(&self, idx: u64, buf: &mut [u8]) -> Result<()> {
        let start = (idx as usize).checked_mul(self.bs);
        match start.and_then(|s| self.data.get(s..s + self.bs)) {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(
                Error::corrupt(format!("journal block {idx} is past its end"))
                    .structure("jbd2 journal"),
            ),
        }
    }
}

/// Replays a journal given as bytes (its block size read from its superblock). For tests
/// and fuzzing.
#[doc(hidden)]
pub fn replay_bytes(journal: &[u8], fs_blocks: u64) -> Result<Option<Replay>> {
    let bs = be32(journal, 0xC) as usize;
    if !(1024..=65536).contains(&bs) || !bs.is_power_of_two() || journal.len() < bs {
        return Err(Error::corrupt(format!("journal block size {bs}")).structure("jbd2 superblock"));
    }
    replay(&Bytes { data: journal, bs }, fs_blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BS: usize = 1024;

    struct J {
        data: Vec<u8>,
        incompat: u32,
    }

    impl J {
        fn new(blocks: usize, incompat: u32, seq: u32, start: u32) -> J {
            let mut data = vec![0u8; blocks * BS];
            let s = &mut data[..BS];
            s[0..4].copy_from_slice(&MAGIC.to_be_bytes());
            s[4..8].copy_from_slice(&SB_V2.to_be_bytes());
            s[0xC..0x10].copy_from_slice(&(BS as u32).to_be_bytes());
            s[0x10..0x14].copy_from_slice(&(blocks as u32).to_be_bytes());
            s[0x14..0x18].copy_from_slice(&1u32.to_be_bytes());
            s[0x18..0x1C].copy_from_slice(&seq.to_be_bytes());
            s[0x1C..0x20].copy_from_slice(&start.to_be_bytes());
            s[0x28..0x2C].copy_from_slice(&incompat.to_be_bytes());
            s[0x30..0x40].copy_from_slice(&[7u8; 16]);
            J { data, incompat }
        }
        fn seed(&self) -> u32 {
            crc32c_raw(!0, &[7u8; 16])
        }
        fn csum(&self) -> bool {
            self.incompat & (INCOMPAT_CSUM_V2 | INCOMPAT_CSUM_V3) != 0
        }
        fn block(&mut self, i: usize) -> &mut [u8] {
            &mut self.data[i * BS..(i + 1) * BS]
        }
        fn header(&mut self, i: usize, kind: u32, seq: u32) {
            let b = self.block(i);
            b.fill(0);
            b[0..4].copy_from_slice(&MAGIC.to_be_bytes());
            b[4..8].copy_from_slice(&kind.to_be_bytes());
            b[8..12].copy_from_slice(&seq.to_be_bytes());
        }
        fn tail(&mut self, i: usize) {
            if self.csum() {
                let seed = self.seed();
                let b = self.block(i);
                let c = crc32c_raw(seed, &b[..BS - 4]);
                let c = crc32c_raw(c, &[0; 4]);
                b[BS - 4..].copy_from_slice(&c.to_be_bytes());
            }
        }
        /// Descriptor at `i` for `(fs block, data fill byte, flags)`, data after it.
        fn txn(&mut self, i: usize, seq: u32, blocks: &[(u64, u8, u32)]) -> usize {
            self.header(i, DESCRIPTOR, seq);
            let tb = Sb {
                bs: BS,
                first: 1,
                last: 2,
                sequence: 0,
                start: 1,
                incompat: self.incompat,
                seed: 0,
            }
            .tag_bytes();
            let seed = self.seed();
            let v3 = self.incompat & INCOMPAT_CSUM_V3 != 0;
            let mut off = 12;
            for (k, &(fsb, fill, flags)) in blocks.iter().enumerate() {
                let mut flags = flags | FLAG_SAME_UUID;
                if k + 1 == blocks.len() {
                    flags |= FLAG_LAST_TAG;
                }
                let data_csum = crc32c_raw(crc32c_raw(seed, &seq.to_be_bytes()), &[fill; BS]);
                let b = self.block(i);
                b[off..off + 4].copy_from_slice(&(fsb as u32).to_be_bytes());
                if v3 {
                    b[off + 4..off + 8].copy_from_slice(&flags.to_be_bytes());
                    b[off + 8..off + 12].copy_from_slice(&((fsb >> 32) as u32).to_be_bytes());
                    b[off + 12..off + 16].copy_from_slice(&data_csum.to_be_bytes());
                } else {
                    b[off + 4..off + 6].copy_from_slice(&(data_csum as u16).to_be_bytes());
                    b[off + 6..off + 8].copy_from_slice(&(flags as u16).to_be_bytes());
                    if tb >= 12 {
                        b[off + 8..off + 12].copy_from_slice(&((fsb >> 32) as u32).to_be_bytes());
                    }
                }
                off += tb;
            }
            self.tail(i);
            for (k, &(_, fill, _)) in blocks.iter().enumerate() {
                self.block(i + 1 + k).fill(fill);
            }
            i + 1 + blocks.len()
        }
        fn commit(&mut self, i: usize, seq: u32) -> usize {
            self.header(i, COMMIT, seq);
            if self.csum() {
                let seed = self.seed();
                let b = self.block(i);
                let c = crc32c_raw(seed, b);
                b[16..20].copy_from_slice(&c.to_be_bytes());
            }
            i + 1
        }
        fn revoke(&mut self, i: usize, seq: u32, blocks: &[u64]) -> usize {
            self.header(i, REVOKE, seq);
            let wide = self.incompat & INCOMPAT_64BIT != 0;
            let rec = if wide { 8 } else { 4 };
            let b = self.block(i);
            for (k, &x) in blocks.iter().enumerate() {
                let o = 16 + k * rec;
                if wide {
                    b[o..o + 8].copy_from_slice(&x.to_be_bytes());
                } else {
                    b[o..o + 4].copy_from_slice(&(x as u32).to_be_bytes());
                }
            }
            let used = (16 + blocks.len() * rec) as u32;
            b[12..16].copy_from_slice(&used.to_be_bytes());
            self.tail(i);
            i + 1
        }
        fn run(&self) -> Replay {
            replay_bytes(&self.data, 1 << 40)
                .expect("replay")
                .expect("dirty")
        }
    }

    fn copy(r: &Replay, fsb: u64) -> Option<u64> {
        r.blocks.get(&fsb).map(|c| c.journal_block)
    }

    #[test]
    fn clean_journal_is_none() {
        let j = J::new(64, 0, 5, 0);
        assert!(replay_bytes(&j.data, 100).expect("ok").is_none());
    }

    #[test]
    fn later_transactions_override_and_uncommitted_are_ignored() {
        for incompat in [
            0,
            INCOMPAT_64BIT,
            INCOMPAT_CSUM_V2 | INCOMPAT_64BIT,
            INCOMPAT_CSUM_V3,
            INCOMPAT_CSUM_V3 | INCOMPAT_64BIT,
        ] {
            let mut j = J::new(64, incompat | INCOMPAT_REVOKE, 10, 1);
            let n = j.txn(1, 10, &[(100, 0xAA, 0), (101, 0xBB, 0)]);
            let n = j.commit(n, 10);
            let n = j.txn(n, 11, &[(100, 0xCC, 0)]);
            let n = j.commit(n, 11);
            // Transaction 12 has no commit block.
            j.txn(n, 12, &[(102, 0xDD, 0)]);
            let r = j.run();
            assert_eq!(r.transactions, 2, "incompat {incompat:#x}");
            assert_eq!(copy(&r, 100), Some(6), "incompat {incompat:#x}");
            assert_eq!(copy(&r, 101), Some(3));
            assert_eq!(copy(&r, 102), None);
        }
    }

    #[test]
    fn revoke_cancels_earlier_copies_only() {
        let mut j = J::new(64, INCOMPAT_REVOKE | INCOMPAT_CSUM_V3, 1, 1);
        let n = j.txn(1, 1, &[(50, 1, 0), (51, 2, 0)]);
        let n = j.commit(n, 1);
        let n = j.revoke(n, 2, &[50]);
        let n = j.commit(n, 2);
        let n = j.txn(n, 3, &[(50, 3, 0)]);
        j.commit(n, 3);
        let r = j.run();
        assert_eq!(r.transactions, 3);
        // 50 revoked in 2: the copy from 1 is dropped, the one from 3 kept.
        assert_eq!(copy(&r, 50), Some(8));
        assert_eq!(copy(&r, 51), Some(3));
        let mut j = J::new(64, INCOMPAT_REVOKE, 1, 1);
        let n = j.txn(1, 1, &[(50, 1, 0)]);
        let n = j.commit(n, 1);
        let n = j.revoke(n, 2, &[50]);
        j.commit(n, 2);
        assert_eq!(copy(&j.run(), 50), None);
    }

    #[test]
    fn escaped_blocks_and_wrap_around() {
        let mut j = J::new(16, 0, 7, 13);
        // Descriptor at 13, data at 14, 15, then wraps to 1; commit at 2.
        let n = j.txn(13, 7, &[(20, 1, FLAG_ESCAPE), (21, 2, 0)]);
        assert_eq!(n, 16);
        j.header(1, 0, 0);
        j.block(1).fill(3); // the third data block after wrapping is not part of this txn
        let _ = j.commit(1, 7);
        let r = j.run();
        assert_eq!(r.transactions, 1);
        assert_eq!(
            r.blocks[&20],
            JournalCopy {
                journal_block: 14,
                escaped: true
            }
        );
        assert_eq!(copy(&r, 21), Some(15));
    }

    #[test]
    fn bad_commit_checksum_ends_the_log() {
        let mut j = J::new(64, INCOMPAT_CSUM_V3, 1, 1);
        let n = j.txn(1, 1, &[(5, 1, 0)]);
        let n = j.commit(n, 1);
        let n = j.txn(n, 2, &[(6, 2, 0)]);
        let c = j.commit(n, 2);
        j.block(c - 1)[40] ^= 1;
        let r = j.run();
        assert_eq!(r.transactions, 1);
        assert_eq!(copy(&r, 6), None);
        assert!(r.notes.iter().any(|n| n.contains("checksum")));
    }

    #[test]
    fn bad_data_checksum_skips_the_block() {
        let mut j = J::new(64, INCOMPAT_CSUM_V3, 1, 1);
        let n = j.txn(1, 1, &[(5, 1, 0), (6, 2, 0)]);
        j.commit(n, 1);
        j.block(3)[0] ^= 1;
        let r = j.run();
        assert_eq!(copy(&r, 5), Some(2));
        assert_eq!(copy(&r, 6), None);
    }

    #[test]
    fn garbage_never_panics() {
        assert!(replay_bytes(&[], 10).is_err());
        assert!(replay_bytes(&[0u8; 4096], 10).is_err());
        let mut j = J::new(8, INCOMPAT_64BIT, 1, 1);
        j.txn(1, 1, &[(5, 1, 0)]);
        j.commit(3, 1);
        // Out-of-range target block.
        assert!(replay_bytes(&j.data, 4).is_err());
        // Truncated journal (maxlen larger than the data).
        assert!(replay_bytes(&j.data[..4 * BS], 100).is_err());
        let mut x = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut d = j.data.clone();
            for _ in 0..8 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let p = (x as usize) % d.len();
                d[p] ^= (x >> 8) as u8;
            }
            let _ = replay_bytes(&d, 1 << 20);
        }
    }
}
