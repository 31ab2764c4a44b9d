//! VHDX log replay, in memory.
//!
//! A VHDX file updates its metadata (BAT, metadata region, region table) through a circular
//! log of 4 KiB sectors: each log entry is a 64-byte header (`loge`), descriptors (`desc`:
//! one 4 KiB sector to write, whose first 8 and last 4 bytes are kept in the descriptor;
//! `zero`: a run of zeros) and the data sectors (`data`, with the entry's sequence number
//! split around their payload). When the current header's LogGuid is non-zero, entries with
//! that GUID may not have reached their final place yet and must be applied before anything
//! else is read. qemu refuses to open such a file read-only; we apply the log to an
//! [`Overlay`] of the file in memory and never write the image.
//!
//! Finding what to replay follows MS-VHDX 2.3.3: every 4 KiB position is tried as the start
//! of a sequence (consecutive valid entries, each with the next sequence number, back to back
//! in the circular log); a sequence counts only if its last entry's Tail names one of its
//! entries, and the active sequence is the one whose last entry has the highest sequence
//! number, from that Tail to its end. An entry is valid when its signature, length, LogGuid,
//! CRC-32C (over the whole entry), descriptors and data sectors all check. Before an entry is
//! applied the file must be at least its FlushedFileOffset long (shorter: the file lost data
//! after the log was written, an error); after it, the file is taken to be at least
//! LastFileOffset long (the extension reads as zeros).
//!
//! A log that holds no valid sequence is not replayed and the image is read as it is (qemu
//! does the same); the note says so. Limits: logs over [`MAX_LOG_BYTES`] are refused, and the
//! CRC work of the search is bounded by a multiple of the log size.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use guestctl_block::{clip, BlockDevice, Error, Result};

use super::layout::{checksum, Guid, Header};
use crate::bytes::{bytes16, le32, le64};
use crate::cache::read_or_zero;

/// Largest log replayed (its entries are kept in memory while open).
pub const MAX_LOG_BYTES: u32 = 64 << 20;
/// Log sector size.
const SECTOR: u64 = 4096;
/// Bytes of CRC the search may compute, per byte of log (valid logs need about 1).
const CRC_BUDGET_FACTOR: u64 = 8;

/// One log descriptor, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Desc {
    /// Write a 4 KiB sector at `at`: the data sector's payload with `lead` and `trail`.
    Data {
        at: u64,
        lead: [u8; 8],
        trail: [u8; 4],
    },
    /// Write `len` zero bytes at `at`.
    Zero { at: u64, len: u64 },
}

/// A valid log entry.
#[derive(Debug, Clone)]
struct Entry {
    len: u64,
    tail: u64,
    seq: u64,
    flushed: u64,
    last: u64,
    descs: Vec<Desc>,
    /// The data sectors' 4 KiB contents (rebuilt), in descriptor order.
    data: Vec<Arc<[u8]>>,
}

/// What the log search decided.
#[derive(Debug)]
pub(crate) struct Replay {
    /// The file with the log applied (None: nothing to apply).
    pub(crate) overlay: Option<Overlay>,
    /// What happened, for `info`.
    pub(crate) note: String,
    /// Entries applied.
    pub(crate) entries: usize,
}

/// Reads and replays the log of `file` described by `h` (whose LogGuid is non-zero).
pub(crate) fn replay(file: Arc<dyn BlockDevice>, h: &Header, path: &Path) -> Result<Replay> {
    let err = |msg: String| {
        Error::corrupt(msg)
            .path(path)
            .structure("vhdx log")
            .at(h.log_offset)
    };
    if h.log_length == 0 {
        return Ok(Replay {
            overlay: None,
            note: "the header names a log GUID but the log is empty: nothing to replay".into(),
            entries: 0,
        });
    }
    if h.log_length > MAX_LOG_BYTES {
        return Err(Error::unsupported(format!(
            "the log to replay is {} bytes; guestctl replays logs of up to {MAX_LOG_BYTES} bytes",
            h.log_length
        ))
        .path(path)
        .structure("vhdx header"));
    }
    let mut log = vec![0u8; h.log_length as usize];
    file.read_exact_at(h.log_offset, &mut log)
        .map_err(|e| e.path(path).structure("vhdx log").at(h.log_offset))?;
    let Some(active) = find_active(&log, h.log_guid) else {
        return Ok(Replay {
            overlay: None,
            note: format!(
                "the log (GUID {}) holds no valid entry sequence: nothing replayed, the file is \
                 read as it is (as qemu does)",
                h.log_guid
            ),
            entries: 0,
        });
    };
    let mut ov = Overlay::new(file.clone());
    let n = active.len();
    for e in active {
        if e.flushed > ov.size {
            return Err(err(format!(
                "log entry {} needs the file to be at least {} bytes (FlushedFileOffset) but it \
                 has {}: data written before the log entry is missing",
                e.seq, e.flushed, ov.size
            )));
        }
        let mut data = e.data.iter();
        for d in &e.descs {
            match d {
                Desc::Data { at, .. } => {
                    let Some(sector) = data.next() else {
                        return Err(err("log entry lost a data sector".into()));
                    };
                    ov.insert(*at, at + SECTOR, Src::Data(sector.clone(), 0));
                }
                Desc::Zero { at, len } => ov.insert(*at, at + len, Src::Zero),
            }
        }
        ov.size = ov.size.max(e.last);
    }
    Ok(Replay {
        overlay: Some(ov),
        note: format!(
            "replayed {n} log entr{} (GUID {}) in memory",
            if n == 1 { "y" } else { "ies" },
            h.log_guid
        ),
        entries: n,
    })
}

/// The bytes of the circular log `log` from `pos`, `len` of them, wrapping at its end.
fn wrapped(log: &[u8], pos: u64, len: u64) -> Vec<u8> {
    let l = log.len() as u64;
    let mut out = Vec::with_capacity(len as usize);
    let mut p = pos % l;
    let mut left = len;
    while left > 0 {
        let n = (l - p).min(left);
        out.extend_from_slice(&log[p as usize..(p + n) as usize]);
        left -= n;
        p = 0;
    }
    out
}

/// Parses and validates the entry at `pos` of `log` (cheap header checks first, then the
/// checksum over the entry, charged to `budget`). Without `keep`, the descriptors and data
/// sectors are checked but not kept (the search only needs to know which entries are valid).
fn parse_entry(log: &[u8], pos: u64, guid: Guid, budget: &mut u64, keep: bool) -> Option<Entry> {
    let l = log.len() as u64;
    let h = log.get(pos as usize..pos as usize + 64)?;
    if &h[0..4] != b"loge" {
        return None;
    }
    let len = u64::from(le32(h, 8));
    let tail = u64::from(le32(h, 12));
    let seq = le64(h, 16);
    let count = u64::from(le32(h, 24));
    if len == 0 || len % SECTOR != 0 || len > l || tail % SECTOR != 0 || tail >= l || seq == 0 {
        return None;
    }
    if Guid(bytes16(h, 32)) != guid {
        return None;
    }
    // The first sector holds the header and 126 descriptors, the next ones 128 each.
    let desc_sectors = (count + 2).div_ceil(128);
    if desc_sectors * SECTOR > len {
        return None;
    }
    *budget = budget.checked_sub(len)?;
    let b = wrapped(log, pos, len);
    if le32(&b, 4) != checksum(&b, 4) {
        return None;
    }
    let mut descs = Vec::with_capacity(if keep { count as usize } else { 0 });
    let mut data = Vec::new();
    let mut next_data = desc_sectors * SECTOR;
    for i in 0..count as usize {
        let d = &b[64 + 32 * i..96 + 32 * i];
        let at = le64(d, 16);
        if le64(d, 24) != seq || at % SECTOR != 0 {
            return None;
        }
        match &d[0..4] {
            b"zero" => {
                let n = le64(d, 8);
                if n % SECTOR != 0 || at.checked_add(n).is_none() {
                    return None;
                }
                if keep {
                    descs.push(Desc::Zero { at, len: n });
                }
            }
            b"desc" => {
                at.checked_add(SECTOR)?;
                let s = b.get(next_data as usize..(next_data + SECTOR) as usize)?;
                let sseq = u64::from(le32(s, 4)) << 32 | u64::from(le32(s, 4092));
                if &s[0..4] != b"data" || sseq != seq {
                    return None;
                }
                if keep {
                    let mut lead = [0u8; 8];
                    lead.copy_from_slice(&d[8..16]);
                    let mut trail = [0u8; 4];
                    trail.copy_from_slice(&d[4..8]);
                    let mut sector = vec![0u8; SECTOR as usize];
                    sector[..8].copy_from_slice(&lead);
                    sector[8..4092].copy_from_slice(&s[8..4092]);
                    sector[4092..].copy_from_slice(&trail);
                    data.push(Arc::from(sector));
                    descs.push(Desc::Data { at, lead, trail });
                }
                next_data += SECTOR;
            }
            _ => return None,
        }
    }
    Some(Entry {
        len,
        tail,
        seq,
        flushed: le64(h, 48),
        last: le64(h, 56),
        descs,
        data,
    })
}

/// The active sequence of `log` for `guid`, oldest entry first (None: no valid sequence).
fn find_active(log: &[u8], guid: Guid) -> Option<Vec<Entry>> {
    let starts = active_positions(log, guid)?;
    // The entries found valid are read again, this time keeping their contents.
    let mut budget = log.len() as u64;
    starts
        .into_iter()
        .map(|p| parse_entry(log, p, guid, &mut budget, true))
        .collect()
}

/// Where the entries of the active sequence start.
fn active_positions(log: &[u8], guid: Guid) -> Option<Vec<u64>> {
    let l = log.len() as u64;
    let mut budget = l.saturating_mul(CRC_BUDGET_FACTOR).saturating_add(1 << 20);
    let mut memo: BTreeMap<u64, Option<Entry>> = BTreeMap::new();
    let mut entry_at = |pos: u64, budget: &mut u64| -> Option<Entry> {
        memo.entry(pos)
            .or_insert_with(|| parse_entry(log, pos, guid, budget, false))
            .clone()
    };
    // (start positions, head sequence number) of the best sequence so far.
    let mut best: Option<(Vec<u64>, u64)> = None;
    let mut pos = 0u64;
    while pos < l {
        let Some(first) = entry_at(pos, &mut budget) else {
            pos += SECTOR;
            continue;
        };
        let mut starts = vec![pos];
        let mut span = first.len;
        let mut chain = vec![first];
        loop {
            let last = chain.last()?;
            let next = (starts.last()? + last.len) % l;
            let Some(e) = entry_at(next, &mut budget) else {
                break;
            };
            if e.seq != last.seq.wrapping_add(1) || span + e.len > l {
                break;
            }
            span += e.len;
            starts.push(next);
            chain.push(e);
        }
        // Valid only if the head's Tail names an entry of the sequence: the rest of the
        // active sequence was overwritten otherwise.
        let head = chain.last()?;
        if let Some(k) = starts.iter().position(|&s| s == head.tail) {
            if best.as_ref().is_none_or(|(_, seq)| head.seq > *seq) {
                best = Some((starts[k..].to_vec(), head.seq));
            }
        }
        // Continue after the sequence (its inner positions start no other sequence).
        let end = starts.first()? + span;
        pos = if end > pos { end.min(l) } else { pos + SECTOR };
    }
    best.map(|(starts, _)| starts)
}

/// Where overlay bytes come from.
#[derive(Debug, Clone)]
enum Src {
    /// Zeros.
    Zero,
    /// A rebuilt 4 KiB sector, from byte `.1` of it.
    Data(Arc<[u8]>, u64),
}

/// The file seen with a log applied: intervals of replayed bytes over the file's own.
#[derive(Debug)]
pub(crate) struct Overlay {
    file: Arc<dyn BlockDevice>,
    /// start → (end, source); intervals do not overlap.
    map: BTreeMap<u64, (u64, Src)>,
    /// The file's size after replay (at least LastFileOffset; beyond the file reads zeros).
    size: u64,
}

impl Overlay {
    fn new(file: Arc<dyn BlockDevice>) -> Self {
        let size = file.size();
        Overlay {
            file,
            map: BTreeMap::new(),
            size,
        }
    }

    /// Replaces `[s, e)` with `src` (later writes win).
    fn insert(&mut self, s: u64, e: u64, src: Src) {
        if s >= e {
            return;
        }
        // Cut the intervals overlapping [s, e), keeping their parts outside it.
        let over: Vec<u64> = self
            .map
            .range(..e)
            .rev()
            .take_while(|(_, (end, _))| *end > s)
            .map(|(k, _)| *k)
            .collect();
        for k in over {
            if let Some((end, old)) = self.map.remove(&k) {
                if k < s {
                    self.map.insert(k, (s, old.clone()));
                }
                if end > e {
                    let rest = match old {
                        Src::Zero => Src::Zero,
                        Src::Data(b, skip) => Src::Data(b, skip + (e - k)),
                    };
                    self.map.insert(e, (end, rest));
                }
            }
        }
        self.map.insert(s, (e, src));
        self.size = self.size.max(e);
    }

    /// Number of replayed intervals (for tests).
    #[cfg(test)]
    fn intervals(&self) -> usize {
        self.map.len()
    }
}

impl BlockDevice for Overlay {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let (offset, n) = clip(offset, buf.len() as u64, self.size);
        let buf = &mut buf[..n as usize];
        read_or_zero(self.file.as_ref(), offset, buf)?;
        let end = offset + n;
        // Intervals starting before `end` whose end is past `offset`.
        let first = self
            .map
            .range(..=offset)
            .next_back()
            .map_or(offset, |(k, _)| *k);
        for (&s, (e, src)) in self.map.range(first..end) {
            if *e <= offset {
                continue;
            }
            let (a, b) = (s.max(offset), (*e).min(end));
            let out = &mut buf[(a - offset) as usize..(b - offset) as usize];
            match src {
                Src::Zero => out.fill(0),
                Src::Data(d, skip) => {
                    let from = (skip + (a - s)) as usize;
                    out.copy_from_slice(&d[from..from + out.len()]);
                }
            }
        }
        Ok(n as usize)
    }
}

/// Builds log entries for tests (and the crafted-log tests of the integration suite): the
/// bytes of one entry with `descs` (data sectors given in full).
#[cfg(test)]
pub(crate) mod build {
    use super::*;

    /// A descriptor to build: a data sector or a zero run.
    pub(crate) enum D<'a> {
        Data(u64, &'a [u8]),
        Zero(u64, u64),
    }

    /// One entry: `tail`, `seq`, file offsets, descriptors.
    pub(crate) fn entry(
        guid: Guid,
        seq: u64,
        tail: u64,
        flushed: u64,
        last: u64,
        descs: &[D<'_>],
    ) -> Vec<u8> {
        let count = descs.len() as u64;
        let desc_sectors = (count + 2).div_ceil(128);
        let data_n = descs.iter().filter(|d| matches!(d, D::Data(..))).count() as u64;
        let len = (desc_sectors + data_n) * SECTOR;
        let mut b = vec![0u8; len as usize];
        b[0..4].copy_from_slice(b"loge");
        b[8..12].copy_from_slice(&(len as u32).to_le_bytes());
        b[12..16].copy_from_slice(&(tail as u32).to_le_bytes());
        b[16..24].copy_from_slice(&seq.to_le_bytes());
        b[24..28].copy_from_slice(&(count as u32).to_le_bytes());
        b[32..48].copy_from_slice(&guid.0);
        b[48..56].copy_from_slice(&flushed.to_le_bytes());
        b[56..64].copy_from_slice(&last.to_le_bytes());
        let mut ds = desc_sectors * SECTOR;
        for (i, d) in descs.iter().enumerate() {
            let o = 64 + 32 * i;
            match d {
                D::Zero(at, n) => {
                    b[o..o + 4].copy_from_slice(b"zero");
                    b[o + 8..o + 16].copy_from_slice(&n.to_le_bytes());
                    b[o + 16..o + 24].copy_from_slice(&at.to_le_bytes());
                }
                D::Data(at, sector) => {
                    b[o..o + 4].copy_from_slice(b"desc");
                    b[o + 4..o + 8].copy_from_slice(&sector[4092..4096]);
                    b[o + 8..o + 16].copy_from_slice(&sector[..8]);
                    b[o + 16..o + 24].copy_from_slice(&at.to_le_bytes());
                    let s = ds as usize;
                    b[s..s + 4].copy_from_slice(b"data");
                    b[s + 4..s + 8].copy_from_slice(&((seq >> 32) as u32).to_le_bytes());
                    b[s + 8..s + 4092].copy_from_slice(&sector[8..4092]);
                    b[s + 4092..s + 4096].copy_from_slice(&(seq as u32).to_le_bytes());
                    ds += SECTOR;
                }
            }
            b[o + 24..o + 32].copy_from_slice(&seq.to_le_bytes());
        }
        let c = checksum(&b, 4);
        b[4..8].copy_from_slice(&c.to_le_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::build::{entry, D};
    use super::*;
    use guestctl_block::MemoryDevice;

    const G: Guid = Guid([7; 16]);

    fn log_with(entries: &[(u64, Vec<u8>)], len: usize) -> Vec<u8> {
        let mut log = vec![0u8; len];
        for (at, e) in entries {
            for (i, b) in e.iter().enumerate() {
                let p = (*at as usize + i) % len;
                log[p] = *b;
            }
        }
        log
    }

    #[test]
    fn active_sequence_starts_at_the_heads_tail() {
        let s = vec![0xabu8; 4096];
        let e1 = entry(G, 10, 0, 0, 0, &[D::Data(0x1000, &s)]);
        let e2 = entry(G, 11, 0x2000, 0, 0, &[D::Zero(0x2000, 0x3000)]);
        let e3 = entry(G, 12, 0x2000, 0, 0, &[D::Data(0x5000, &s)]);
        let log = log_with(&[(0, e1), (0x2000, e2), (0x3000, e3)], 1 << 20);
        let a = find_active(&log, G).expect("active");
        // e1 precedes the tail: already applied, not replayed.
        assert_eq!(a.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![11, 12]);
        // Another GUID's entries are not ours.
        assert!(find_active(&log, Guid([8; 16])).is_none());
    }

    #[test]
    fn a_torn_entry_ends_the_sequence_and_a_lost_tail_voids_it() {
        let s = vec![1u8; 4096];
        let e1 = entry(G, 5, 0, 0, 0, &[D::Data(0x1000, &s)]);
        let mut e2 = entry(G, 6, 0, 0, 0, &[D::Data(0x1000, &s)]);
        e2[5000] ^= 1; // CRC no longer matches
        let log = log_with(&[(0, e1.clone()), (0x2000, e2)], 1 << 20);
        let a = find_active(&log, G).expect("active");
        assert_eq!(a.len(), 1);
        // Head whose tail names a position outside the sequence: not valid.
        let e = entry(G, 9, 0x8000, 0, 0, &[]);
        let log = log_with(&[(0x4000, e)], 1 << 20);
        assert!(find_active(&log, G).is_none());
    }

    #[test]
    fn entries_wrap_around_the_end_of_the_log() {
        let s: Vec<u8> = (0..4096).map(|i| i as u8).collect();
        let len = 1usize << 20;
        let at = len as u64 - 4096;
        let e = entry(G, 3, at, 0, 0, &[D::Data(0x3000, &s)]);
        let log = log_with(&[(at, e)], len);
        let a = find_active(&log, G).expect("wrapped entry");
        assert_eq!(&a[0].data[0][..], &s[..]);
    }

    #[test]
    fn replay_overlays_data_and_zeros_and_extends_the_file() {
        let mut file = vec![0x11u8; 3 << 20];
        let h = Header {
            sequence: 1,
            file_write_guid: Guid::ZERO,
            data_write_guid: Guid::ZERO,
            log_guid: G,
            log_version: 0,
            version: 1,
            log_length: 1 << 20,
            log_offset: 1 << 20,
        };
        let s = vec![0x5au8; 4096];
        let e1 = entry(
            G,
            1,
            0,
            3 << 20,
            4 << 20,
            &[D::Data(0x20_0000, &s), D::Zero(0x20_0800 & !0xfff, 0x2000)],
        );
        file[1 << 20..(1 << 20) + e1.len()].copy_from_slice(&e1);
        let dev: Arc<dyn BlockDevice> = Arc::new(MemoryDevice::new(file.clone()));
        let r = replay(dev, &h, Path::new("x.vhdx")).expect("replay");
        let ov = r.overlay.expect("overlay");
        assert_eq!(ov.size(), 4 << 20);
        let mut b = vec![0u8; 0x4000];
        ov.read_exact_at(0x1f_f000, &mut b).expect("read");
        assert!(b[..0x1000].iter().all(|&x| x == 0x11));
        // The zero run replaced the data sector written before it, in order.
        assert!(b[0x1000..0x3000].iter().all(|&x| x == 0));
        assert!(b[0x3000..].iter().all(|&x| x == 0x11));
        let mut tail = vec![1u8; 4096];
        ov.read_exact_at((4 << 20) - 4096, &mut tail)
            .expect("past the file");
        assert!(tail.iter().all(|&x| x == 0));
        assert_eq!(ov.intervals(), 1);

        // A file shorter than FlushedFileOffset lost data: an error.
        let e = entry(G, 1, 0, 8 << 20, 8 << 20, &[]);
        file[1 << 20..(1 << 20) + e.len()].copy_from_slice(&e);
        let dev: Arc<dyn BlockDevice> = Arc::new(MemoryDevice::new(file));
        let err = replay(dev, &h, Path::new("x.vhdx")).expect_err("truncated");
        assert!(err.to_string().contains("FlushedFileOffset"), "{err}");
    }

    #[test]
    fn overlay_intervals_split() {
        let dev: Arc<dyn BlockDevice> = Arc::new(MemoryDevice::new(vec![9u8; 64 << 10]));
        let mut ov = Overlay::new(dev);
        let d: Arc<[u8]> = (0..4096).map(|i| (i % 251) as u8).collect();
        ov.insert(0x1000, 0x2000, Src::Data(d.clone(), 0));
        ov.insert(0x1800, 0x1900, Src::Zero);
        ov.insert(0x0, 0x1100, Src::Zero);
        let mut b = vec![0u8; 0x3000];
        ov.read_exact_at(0, &mut b).expect("read");
        assert!(b[..0x1100].iter().all(|&x| x == 0));
        assert_eq!(&b[0x1100..0x1800], &d[0x100..0x800]);
        assert!(b[0x1800..0x1900].iter().all(|&x| x == 0));
        assert_eq!(&b[0x1900..0x2000], &d[0x900..]);
        assert!(b[0x2000..].iter().all(|&x| x == 9));
    }
}
