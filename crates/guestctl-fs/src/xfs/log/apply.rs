//! Replay onto the overlay: pass 1 counts cancelled buffers, pass 2 applies buffer, inode
//! and icreate items in log order (`xlog_recover_commit_pass1/2` and the item handlers).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::head::Bounds;
use super::items::{
    self, ilog, item_type, BufFormat, Icreate, InodeFormat, BLF_CANCEL, BLF_CHUNK, BLF_DQUOT_BUF,
    BLF_INODE_BUF, INTENTS,
};
use super::record::{self, WalkError};
use super::trans::{Assembler, Item, Trans};
use super::{lsn_cmp, Endian, Log, LogGeometry, Recovered, BBSIZE};
use crate::bytes::{be16, be32, be64, le16};
use crate::xfs::csum;
use crate::{Error, Result};

/// The most overlay bytes held.
const MAX_OVERLAY_BYTES: u64 = 1 << 30;
const DINODE_MAGIC: u16 = 0x494e;
/// v3 inode core size; v1/v2 core size; v2 log dinode size (up to `di_next_unlinked`).
const CORE_V3: usize = 176;
const CORE_V2: usize = 100;
const LOG_DINODE_V2: usize = 96;
const NEXT_UNLINKED: usize = 96;
const DINODE_CRC: usize = 100;
const NULL_AGINO: u32 = u32::MAX;
const DIFLAG2_BIGTIME: u64 = 1 << 3;
const DIFLAG2_NREXT64: u64 = 1 << 4;
const DIFLAG2_METADIR: u64 = 1 << 5;
const S_IFMT: u16 = 0o170000;
const S_IFREG: u16 = 0o100000;
const S_IFDIR: u16 = 0o040000;
const FMT_LOCAL: u8 = 1;
const FMT_EXTENTS: u8 = 2;
const FMT_BTREE: u8 = 3;
const XFS_INODES_PER_CHUNK: u32 = 64;

/// Sectors patched by replay, read through.
struct Overlay<'a> {
    log: &'a Log<'a>,
    sectors: BTreeMap<u64, Box<[u8]>>,
}

impl Overlay<'_> {
    fn check(&self, daddr: u64, n: u64, what: &'static str, at: u64) -> Result<()> {
        let end = daddr.checked_add(n).and_then(|e| e.checked_mul(BBSIZE));
        if n == 0 || end.is_none_or(|e| e > self.log.geo.fs_bytes) {
            return Err(Error::corrupt(format!(
                "log item for {n} sectors at sector {daddr} outside the {}-byte filesystem",
                self.log.geo.fs_bytes
            ))
            .structure(what)
            .at(at));
        }
        Ok(())
    }

    /// `n` sectors from `daddr` as recovery sees them so far.
    fn read(&self, daddr: u64, n: u64) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; (n * BBSIZE) as usize];
        self.log
            .dev
            .read(daddr * BBSIZE, &mut buf)
            .map_err(|e| e.structure("xfs log replay target"))?;
        for (&s, data) in self.sectors.range(daddr..daddr + n) {
            let at = ((s - daddr) * BBSIZE) as usize;
            buf[at..at + BBSIZE as usize].copy_from_slice(data);
        }
        Ok(buf)
    }

    /// Stores sectors `first..end` (relative to `daddr`) of `buf`.
    fn write(&mut self, daddr: u64, buf: &[u8], first: u64, end: u64) -> Result<()> {
        for s in first..end {
            let at = (s * BBSIZE) as usize;
            let sector = &buf[at..at + BBSIZE as usize];
            match self.sectors.get_mut(&(daddr + s)) {
                Some(old) => old.copy_from_slice(sector),
                None => {
                    if (self.sectors.len() as u64 + 1) * BBSIZE > MAX_OVERLAY_BYTES {
                        return Err(Error::limit(format!(
                            "log replay would change more than {MAX_OVERLAY_BYTES} bytes"
                        ))
                        .structure("xfs log"));
                    }
                    self.sectors.insert(daddr + s, sector.into());
                }
            }
        }
        Ok(())
    }
}

/// Sector range `[first, end)` covering bytes `[off, off + len)`.
fn sectors_of(off: usize, len: usize) -> (u64, u64) {
    (
        off as u64 / BBSIZE,
        (off + len).div_ceil(BBSIZE as usize) as u64,
    )
}

#[derive(Default)]
struct Stats {
    buffers: u64,
    inodes: u64,
    icreates: u64,
    cancelled: u64,
    newer: u64,
    quota: u64,
    owner_changes: u64,
    unknown: BTreeSet<u16>,
}

struct Replayer<'a> {
    geo: &'a LogGeometry,
    overlay: Overlay<'a>,
    /// (blkno, len) → cancel records not yet passed in pass 2.
    cancels: HashMap<(u64, u64), u64>,
    /// Intents without their done item: (name, id) → LSN.
    intents: BTreeMap<(&'static str, u64), u64>,
    stats: Stats,
    transactions: u64,
}

/// Runs both passes over `bounds`.
pub(super) fn replay(log: &Log<'_>, bounds: &Bounds) -> Result<Recovered> {
    let mut r = Replayer {
        geo: log.geo,
        overlay: Overlay {
            log,
            sectors: BTreeMap::new(),
        },
        cancels: HashMap::new(),
        intents: BTreeMap::new(),
        stats: Stats::default(),
        transactions: 0,
    };
    pass(log, bounds, &mut |t| r.pass1(&t))?;
    let open = pass(log, bounds, &mut |t| r.pass2(t))?;
    let mut notes = Vec::new();
    let s = &r.stats;
    notes.push(format!(
        "log replay: {} buffer, {} inode and {} inode-chunk items applied; {} cancelled and {} already newer on disk skipped",
        s.buffers, s.inodes, s.icreates, s.cancelled, s.newer
    ));
    if open > 0 {
        notes.push(format!(
            "{open} transactions at the head of the log never committed: not replayed"
        ));
    }
    if s.quota > 0 {
        notes.push(format!(
            "{} quota updates in the log were not replayed (quota files are not read)",
            s.quota
        ));
    }
    if s.owner_changes > 0 {
        notes.push(format!(
            "{} fork owner changes (from an extent swap) were not redone: those files' bmbt blocks keep the old owner (open with checksums off if they fail to read)",
            s.owner_changes
        ));
    }
    if !s.unknown.is_empty() {
        let t: Vec<String> = s.unknown.iter().map(|t| format!("{t:#06x}")).collect();
        notes.push(format!(
            "log items of unknown types {} were skipped",
            t.join(", ")
        ));
    }
    let mut unfinished: BTreeMap<&str, u64> = BTreeMap::new();
    for (name, _) in r.intents.keys() {
        *unfinished.entry(name).or_default() += 1;
    }
    for (name, n) in unfinished {
        let (_, _, _, what) = INTENTS
            .iter()
            .find(|(_, _, nm, _)| *nm == name)
            .expect("intent names come from the table");
        let effect = if items::CHANGES_FILES.contains(&name) {
            "the files it concerns read as the log left them, before that work"
        } else {
            "it only concerns free space and allocation metadata, which reading does not use"
        };
        notes.push(format!(
            "{n} unfinished {what} intents ({name}) in the log were not carried out: {effect}"
        ));
    }
    Ok(Recovered {
        sectors: r.overlay.sectors,
        transactions: r.transactions,
        notes,
    })
}

/// One walk over the log feeding committed transactions to `commit`: the number of
/// transactions left uncommitted.
fn pass(
    log: &Log<'_>,
    bounds: &Bounds,
    commit: &mut dyn FnMut(Trans) -> Result<()>,
) -> Result<usize> {
    let mut asm = Assembler::default();
    record::walk(log, bounds.tail, bounds.head, true, &mut |rec| {
        asm.record(log, rec, commit)
    })
    .map_err(|WalkError { error, .. }| error)?;
    Ok(asm.uncommitted())
}

fn item_err(item: &Item, what: &'static str, msg: impl Into<String>) -> Error {
    Error::corrupt(msg.into()).structure(what).at(item.offset)
}

impl Replayer<'_> {
    fn pass1(&mut self, t: &Trans) -> Result<()> {
        for item in t.items.iter().filter(|i| !i.regions.is_empty()) {
            if item_type(t.endian, item) == items::LI_BUF {
                let f = BufFormat::parse(t.endian, item)?;
                if f.flags & BLF_CANCEL != 0 {
                    *self.cancels.entry((f.blkno, u64::from(f.len))).or_default() += 1;
                }
            }
        }
        Ok(())
    }

    fn pass2(&mut self, t: Trans) -> Result<()> {
        self.transactions += 1;
        let e = t.endian;
        // The kernel's order (xlog_recover_reorder_trans): buffers and icreates, then
        // inodes and everything else, then inode buffers, then cancels (these two lists
        // built by pushing at the front).
        let mut first = Vec::new();
        let mut middle = Vec::new();
        let mut inode_bufs = Vec::new();
        let mut cancels = Vec::new();
        for item in t.items.iter().filter(|i| !i.regions.is_empty()) {
            match item_type(e, item) {
                items::LI_ICREATE => first.push(item),
                items::LI_BUF => {
                    let f = BufFormat::parse(e, item)?;
                    if f.flags & BLF_CANCEL != 0 {
                        cancels.insert(0, item);
                    } else if f.flags & BLF_INODE_BUF != 0 {
                        inode_bufs.insert(0, item);
                    } else {
                        first.push(item);
                    }
                }
                _ => middle.push(item),
            }
        }
        for item in first
            .into_iter()
            .chain(middle)
            .chain(inode_bufs)
            .chain(cancels)
        {
            self.apply(e, item, t.lsn)?;
        }
        Ok(())
    }

    fn apply(&mut self, e: Endian, item: &Item, lsn: u64) -> Result<()> {
        let ty = item_type(e, item);
        match ty {
            items::LI_BUF => self.buffer(e, item, lsn),
            items::LI_INODE => self.inode(e, item, lsn),
            items::LI_ICREATE => self.icreate(e, item),
            items::LI_DQUOT => {
                self.stats.quota += 1;
                Ok(())
            }
            items::LI_QUOTAOFF | items::LI_IUNLINK => Ok(()),
            _ => {
                if let Some(&(_, _, name, _)) = INTENTS.iter().find(|(i, _, _, _)| *i == ty) {
                    if let Some(id) = items::intent_id(e, item) {
                        self.intents.insert((name, id), lsn);
                    }
                } else if let Some(&(_, _, name, _)) = INTENTS.iter().find(|(_, d, _, _)| *d == ty)
                {
                    if let Some(id) = items::intent_id(e, item) {
                        self.intents.remove(&(name, id));
                    }
                } else {
                    self.stats.unknown.insert(ty);
                }
                Ok(())
            }
        }
    }

    fn is_cancelled(&self, blkno: u64, len: u64) -> bool {
        self.cancels.contains_key(&(blkno, len))
    }

    // ---- buffers --------------------------------------------------------------------------

    fn buffer(&mut self, e: Endian, item: &Item, lsn: u64) -> Result<()> {
        const WHAT: &str = "xfs log buffer item";
        let f = BufFormat::parse(e, item)?;
        let key = (f.blkno, u64::from(f.len));
        if f.flags & BLF_CANCEL != 0 {
            if let Some(n) = self.cancels.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.cancels.remove(&key);
                }
            }
            return Ok(());
        }
        if self.is_cancelled(key.0, key.1) {
            self.stats.cancelled += 1;
            return Ok(());
        }
        if f.flags & BLF_DQUOT_BUF != 0 {
            self.stats.quota += 1;
            return Ok(());
        }
        let n = u64::from(f.len);
        self.overlay.check(f.blkno, n, WHAT, item.offset)?;
        let mut buf = self.overlay.read(f.blkno, n)?;
        if self.geo.v5 {
            if let Some(blsn) = buf_lsn(&buf, self.geo) {
                if blsn != 0 && blsn != u64::MAX && lsn_cmp(blsn, lsn).is_ge() {
                    self.stats.newer += 1;
                    return Ok(());
                }
            }
        }
        let touched = if f.flags & BLF_INODE_BUF != 0 {
            self.inode_buffer(item, &f, &mut buf)?
        } else {
            regular_buffer(item, &f, &mut buf)?
        };
        for (a, b) in touched {
            self.overlay.write(f.blkno, &buf, a, b)?;
        }
        self.stats.buffers += 1;
        Ok(())
    }

    /// Only the `di_next_unlinked` fields of an inode buffer (`xlog_recover_do_inode_buffer`).
    fn inode_buffer(&self, item: &Item, f: &BufFormat, buf: &mut [u8]) -> Result<Vec<(u64, u64)>> {
        const WHAT: &str = "xfs log inode buffer item";
        let isize = self.geo.inode_size as usize;
        let runs = f.runs();
        let mut touched = Vec::new();
        let mut run = 0usize;
        let (mut reg_off, mut reg_len) = (0usize, 0usize);
        let mut index = 0usize;
        for i in 0..buf.len() / isize {
            let at = i * isize + NEXT_UNLINKED;
            while at >= reg_off + reg_len {
                let Some(&(bit, nbits)) = runs.get(run) else {
                    return Ok(touched);
                };
                run += 1;
                reg_off = bit * BLF_CHUNK;
                reg_len = nbits * BLF_CHUNK;
                index += 1;
            }
            if at < reg_off {
                continue;
            }
            let Some(src) = item
                .regions
                .get(index)
                .and_then(|r| r.get(at - reg_off..at - reg_off + 4))
            else {
                return Err(item_err(
                    item,
                    WHAT,
                    format!("logged region {index} does not hold inode {i}'s next-unlinked field"),
                ));
            };
            if src == [0; 4] {
                return Err(item_err(
                    item,
                    WHAT,
                    "a zero di_next_unlinked field logged for an inode buffer",
                ));
            }
            if at + 4 > buf.len() {
                return Err(item_err(item, WHAT, "logged field outside the buffer"));
            }
            buf[at..at + 4].copy_from_slice(src);
            if self.geo.v5 {
                let ino = &mut buf[i * isize..(i + 1) * isize];
                set_crc(ino);
            }
            touched.push(sectors_of(i * isize, isize));
        }
        Ok(touched)
    }

    // ---- inodes ---------------------------------------------------------------------------

    fn inode(&mut self, e: Endian, item: &Item, lsn: u64) -> Result<()> {
        const WHAT: &str = "xfs log inode item";
        let f = InodeFormat::parse(e, item)?;
        if self.is_cancelled(f.blkno, u64::from(f.len)) {
            self.stats.cancelled += 1;
            return Ok(());
        }
        let isize = self.geo.inode_size as usize;
        let err = |m: String| item_err(item, WHAT, format!("inode {}: {m}", f.ino));
        if f.fields & ilog::CORE == 0 || item.regions.len() < 2 {
            return Err(err("the item has no inode core".into()));
        }
        let buf_bytes = u64::from(f.len) * BBSIZE;
        if u64::from(f.boffset) + isize as u64 > buf_bytes {
            return Err(err(format!(
                "offset {} is outside its {buf_bytes}-byte buffer",
                f.boffset
            )));
        }
        let at = f.blkno * BBSIZE + u64::from(f.boffset);
        let daddr = at / BBSIZE;
        let within = (at % BBSIZE) as usize;
        let nsect = (within + isize).div_ceil(BBSIZE as usize) as u64;
        self.overlay.check(daddr, nsect, WHAT, item.offset)?;
        let mut sect = self.overlay.read(daddr, nsect)?;
        let dip = &mut sect[within..within + isize];
        if be16(dip, 0) != DINODE_MAGIC {
            return Err(err(format!(
                "the inode being replayed has magic {:#06x} on disk",
                be16(dip, 0)
            )));
        }
        let ld = &item.regions[1];
        let le = if le16(ld, 0) == DINODE_MAGIC {
            Endian::Little
        } else if be16(ld, 0) == DINODE_MAGIC {
            Endian::Big
        } else {
            return Err(err(format!(
                "logged inode core with magic {:#06x}",
                be16(ld, 0)
            )));
        };
        // Newer on disk than this transaction: leave it (v3 LSN; v2 flush counter).
        if dip[4] >= 3 {
            let dlsn = be64(dip, 112);
            if dlsn != 0 && dlsn != u64::MAX && lsn_cmp(dlsn, lsn).is_gt() {
                self.stats.newer += 1;
                return Ok(());
            }
        }
        if !self.geo.v5 {
            let (lf, df) = (le.u16(ld, 30), be16(dip, 30));
            if lf < df && !(df == u16::MAX && lf < u16::MAX >> 1) {
                self.stats.newer += 1;
                return Ok(());
            }
        }
        let version = ld[4];
        let need = if version >= 3 { CORE_V3 } else { LOG_DINODE_V2 };
        let max = if self.geo.v5 { CORE_V3 } else { LOG_DINODE_V2 };
        if ld.len() < need || ld.len() > max {
            return Err(err(format!(
                "logged core of {} bytes for a version {version} inode",
                ld.len()
            )));
        }
        check_log_dinode(le, ld, self.geo).map_err(err)?;
        log_dinode_to_disk(le, ld, dip, lsn);

        let core = if version >= 3 { CORE_V3 } else { CORE_V2 };
        if core > isize {
            return Err(err(format!(
                "a version {version} core in a {isize}-byte inode"
            )));
        }
        let lit = isize - core;
        let forkoff = usize::from(dip[82]) * 8;
        if forkoff > lit {
            return Err(err(format!(
                "attribute fork offset {forkoff} beyond the literal area"
            )));
        }
        if f.fields & ilog::DEV != 0 {
            dip[core..core + 4].copy_from_slice(&f.rdev.to_be_bytes());
        }
        if f.size > 2 {
            let dsize = if forkoff == 0 { lit } else { forkoff };
            let region = |i: usize| {
                item.regions
                    .get(i)
                    .ok_or_else(|| err(format!("logged region {i} is missing")))
            };
            match f.fields & ilog::DFORK {
                0 => {}
                ilog::DDATA | ilog::DEXT => {
                    let r = region(2)?;
                    if r.len() > lit {
                        return Err(err(format!(
                            "{}-byte data fork logged for a {lit}-byte literal area",
                            r.len()
                        )));
                    }
                    dip[core..core + r.len()].copy_from_slice(r);
                }
                ilog::DBROOT => {
                    let r = region(2)?;
                    bmbt_to_bmdr(r, &mut dip[core..core + dsize], self.geo.v5)
                        .map_err(|m| err(format!("data fork btree root: {m}")))?;
                }
                x => return Err(err(format!("data fork logged in several forms ({x:#x})"))),
            }
            if f.fields & ilog::AFORK != 0 {
                let r = region(if f.fields & ilog::DFORK != 0 { 3 } else { 2 })?;
                if forkoff == 0 {
                    return Err(err("attribute fork logged for an inode without one".into()));
                }
                let dst = &mut dip[core + forkoff..core + lit];
                match f.fields & ilog::AFORK {
                    ilog::ADATA | ilog::AEXT => {
                        if r.len() > dst.len() {
                            return Err(err(format!(
                                "{}-byte attribute fork logged for {} bytes",
                                r.len(),
                                dst.len()
                            )));
                        }
                        dst[..r.len()].copy_from_slice(r);
                    }
                    ilog::ABROOT => bmbt_to_bmdr(r, dst, self.geo.v5)
                        .map_err(|m| err(format!("attribute fork btree root: {m}")))?,
                    x => {
                        return Err(err(format!(
                            "attribute fork logged in several forms ({x:#x})"
                        )))
                    }
                }
            }
        }
        if f.fields & (ilog::DOWNER | ilog::AOWNER) != 0 {
            self.stats.owner_changes += 1;
        }
        if version >= 3 {
            set_crc(dip);
        }
        self.overlay.write(daddr, &sect, 0, nsect)?;
        self.stats.inodes += 1;
        Ok(())
    }

    // ---- icreate --------------------------------------------------------------------------

    fn icreate(&mut self, e: Endian, item: &Item) -> Result<()> {
        const WHAT: &str = "xfs log icreate item";
        let ic = Icreate::parse(e, item)?;
        let g = self.geo;
        let bs = u64::from(g.block_size);
        let isize = g.inode_size;
        let inopb = g.block_size / isize.max(1);
        let err = |m: String| item_err(item, WHAT, m);
        if ic.ag >= g.ag_count
            || ic.agbno == 0
            || ic.agbno >= g.ag_blocks
            || ic.isize != isize
            || ic.count == 0
            || ic.length == 0
            || ic.length >= g.ag_blocks
            || u64::from(ic.agbno) + u64::from(ic.length) > u64::from(g.ag_blocks)
            || ic.count > XFS_INODES_PER_CHUNK.max(inopb)
            || u64::from(ic.count) != u64::from(ic.length) * u64::from(inopb)
        {
            return Err(err(format!(
                "inode chunk of {} inodes ({} blocks, {}-byte inodes) at AG {} block {}",
                ic.count, ic.length, ic.isize, ic.ag, ic.agbno
            )));
        }
        let per_block = bs / BBSIZE;
        let daddr = (u64::from(ic.ag) * u64::from(g.ag_blocks) + u64::from(ic.agbno)) * per_block;
        let nsect = u64::from(ic.length) * per_block;
        if self
            .cancels
            .keys()
            .any(|&(b, l)| b < daddr + nsect && daddr < b + l)
        {
            self.stats.cancelled += 1;
            return Ok(());
        }
        self.overlay.check(daddr, nsect, WHAT, item.offset)?;
        let inopblog = inopb.trailing_zeros();
        let first_agino = u64::from(ic.agbno) << inopblog;
        let ino_base = u64::from(ic.ag) << (u32::from(g.ag_block_log) + inopblog);
        let isize = isize as usize;
        let mut buf = vec![0u8; (nsect * BBSIZE) as usize];
        for (i, ino) in buf.chunks_exact_mut(isize).enumerate() {
            ino[0..2].copy_from_slice(&DINODE_MAGIC.to_be_bytes());
            ino[4] = if g.v5 { 3 } else { 2 };
            ino[92..96].copy_from_slice(&ic.gen.to_be_bytes());
            ino[NEXT_UNLINKED..NEXT_UNLINKED + 4].copy_from_slice(&NULL_AGINO.to_be_bytes());
            if g.v5 && isize >= CORE_V3 {
                let number = ino_base | (first_agino + i as u64);
                ino[152..160].copy_from_slice(&number.to_be_bytes());
                ino[160..176].copy_from_slice(&g.meta_uuid);
                set_crc(ino);
            }
        }
        self.overlay.write(daddr, &buf, 0, nsect)?;
        self.stats.icreates += 1;
        Ok(())
    }
}

/// Copies the logged 128-byte chunks onto the buffer (`xlog_recover_do_reg_buffer`): region
/// `i` holds the `i`-th run of set bits of the bitmap, or the first part of it (a run can be
/// split across regions). Returns the sector ranges changed.
fn regular_buffer(item: &Item, f: &BufFormat, buf: &mut [u8]) -> Result<Vec<(u64, u64)>> {
    const WHAT: &str = "xfs log buffer item";
    let nbits = f.map.len() * 32;
    let set = |b: usize| (f.map[b / 32] >> (b % 32)) & 1 != 0;
    let mut touched = Vec::new();
    let mut bit = 0usize;
    let mut index = 1usize;
    loop {
        while bit < nbits && !set(bit) {
            bit += 1;
        }
        if bit >= nbits {
            break;
        }
        let mut run = 0;
        while bit + run < nbits && set(bit + run) {
            run += 1;
        }
        let Some(r) = item.regions.get(index) else {
            return Err(item_err(
                item,
                WHAT,
                format!(
                    "buffer at sector {} has dirty chunks past its {} logged regions",
                    f.blkno,
                    item.regions.len() - 1
                ),
            ));
        };
        let n = run.min(r.len() / BLF_CHUNK);
        if n == 0 {
            return Err(item_err(
                item,
                WHAT,
                format!(
                    "logged region {index} of {} bytes is shorter than a chunk",
                    r.len()
                ),
            ));
        }
        let off = bit * BLF_CHUNK;
        let len = n * BLF_CHUNK;
        if off + len > buf.len() {
            return Err(item_err(
                item,
                WHAT,
                format!(
                    "logged chunk at byte {off} is outside the {}-byte buffer at sector {}",
                    buf.len(),
                    f.blkno
                ),
            ));
        }
        buf[off..off + len].copy_from_slice(&r[..len]);
        touched.push(sectors_of(off, len));
        index += 1;
        bit += n;
    }
    Ok(touched)
}

/// The metadata LSN of a v5 buffer by its magic, for the kernel's list of self-describing
/// blocks (`xlog_recover_get_buf_lsn`); `None` for others (always replayed) and for blocks
/// of another filesystem.
fn buf_lsn(b: &[u8], g: &LogGeometry) -> Option<u64> {
    const SHORT_BTREES: [u32; 8] = [
        0x4142_3342, // AB3B
        0x4142_3343, // AB3C
        0x4142_5442, // ABTB
        0x4142_5443, // ABTC
        0x524d_4233, // RMB3
        0x5233_4643, // R3FC
        0x4941_4233, // IAB3
        0x4941_4254, // IABT
    ];
    let magic = be32(b, 0);
    // (LSN offset, UUID offset) of the 32-bit magics.
    let at = if SHORT_BTREES.contains(&magic) {
        Some((24, 32))
    } else {
        match magic {
            0x424d_4133 | 0x424d_4150 => Some((32, 40)), // BMA3, BMAP
            0x5841_4746 => Some((208, 64)),              // XAGF
            0x5841_464c => Some((24, 8)),                // XAFL
            0x5841_4749 => Some((320, 296)),             // XAGI
            0x5853_4c4d => Some((48, 16)),               // XSLM
            0x5844_4233 | 0x5844_4433 | 0x5844_4633 => Some((16, 24)), // XDB3, XDD3, XDF3
            0x5841_524d => return None,                  // XARM: written synchronously
            0x5846_5342 => {
                // The superblock: meta_uuid when the feature is on.
                let uuid_at = if be32(b, 216) & 0x4 != 0 { 248 } else { 32 };
                Some((240, uuid_at))
            }
            _ => None,
        }
    };
    if let Some((lsn, uuid)) = at {
        return (b.get(uuid..uuid + 16)? == g.meta_uuid).then(|| be64(b, lsn));
    }
    // da blocks: dir3 leaf1/leafn, da3 node (the kernel compares these with sb_uuid).
    match be16(b, 8) {
        0x3df1 | 0x3dff | 0x3ebe => (b.get(32..48)? == g.uuid).then(|| be64(b, 24)),
        _ => None,
    }
}

/// The kernel's sanity checks of a logged core (`xlog_recover_inode_commit_pass2`).
fn check_log_dinode(e: Endian, ld: &[u8], g: &LogGeometry) -> std::result::Result<(), String> {
    let mode = e.u16(ld, 2);
    let format = ld[5];
    let version = ld[4];
    if mode & S_IFMT == S_IFREG && format != FMT_EXTENTS && format != FMT_BTREE {
        return Err(format!("regular file with data fork format {format}"));
    }
    if mode & S_IFMT == S_IFDIR && !matches!(format, FMT_LOCAL | FMT_EXTENTS | FMT_BTREE) {
        return Err(format!("directory with data fork format {format}"));
    }
    let flags2 = if version >= 3 { e.u64(ld, 120) } else { 0 };
    let (nextents, anextents) = if flags2 & DIFLAG2_NREXT64 != 0 {
        if e.u16(ld, 80) != 0 {
            return Err("large extent counters with nonzero padding".into());
        }
        (e.u64(ld, 24), u64::from(e.u32(ld, 76)))
    } else {
        if version >= 3 && e.u64(ld, 24) != 0 {
            return Err("nonzero di_v3_pad".into());
        }
        (u64::from(e.u32(ld, 76)), u64::from(e.u16(ld, 80)))
    };
    let nblocks = e.u64(ld, 64);
    if nextents.saturating_add(anextents) > nblocks {
        return Err(format!(
            "{nextents} + {anextents} extents for {nblocks} blocks"
        ));
    }
    if u32::from(ld[82]) * 8 > g.inode_size {
        return Err(format!("fork offset {}", ld[82]));
    }
    Ok(())
}

/// `xfs_log_dinode_to_disk`: the host-order log core onto the big-endian on-disk core,
/// leaving `di_next_unlinked` (and the CRC) as they are on disk.
fn log_dinode_to_disk(e: Endian, ld: &[u8], d: &mut [u8], lsn: u64) {
    let p16 = |d: &mut [u8], at: usize, v: u16| d[at..at + 2].copy_from_slice(&v.to_be_bytes());
    let p32 = |d: &mut [u8], at: usize, v: u32| d[at..at + 4].copy_from_slice(&v.to_be_bytes());
    let p64 = |d: &mut [u8], at: usize, v: u64| d[at..at + 8].copy_from_slice(&v.to_be_bytes());
    let version = ld[4];
    let v3 = version >= 3;
    let flags2 = if v3 { e.u64(ld, 120) } else { 0 };
    let bigtime = v3 && flags2 & DIFLAG2_BIGTIME != 0;
    let nrext64 = v3 && flags2 & DIFLAG2_NREXT64 != 0;
    let ts = |d: &mut [u8], at: usize| {
        if bigtime {
            p64(d, at, e.u64(ld, at));
        } else {
            p32(d, at, e.u32(ld, at));
            p32(d, at + 4, e.u32(ld, at + 4));
        }
    };
    p16(d, 0, e.u16(ld, 0));
    p16(d, 2, e.u16(ld, 2));
    d[4] = ld[4];
    d[5] = ld[5];
    let metatype = if v3 && flags2 & DIFLAG2_METADIR != 0 {
        e.u16(ld, 6)
    } else {
        0
    };
    p16(d, 6, metatype);
    for at in [8, 12, 16] {
        p32(d, at, e.u32(ld, at));
    }
    p16(d, 20, e.u16(ld, 20));
    p16(d, 22, e.u16(ld, 22));
    for at in [32, 40, 48] {
        ts(d, at);
    }
    p64(d, 56, e.u64(ld, 56));
    p64(d, 64, e.u64(ld, 64));
    p32(d, 72, e.u32(ld, 72));
    if nrext64 {
        p64(d, 24, e.u64(ld, 24));
    }
    p32(d, 76, e.u32(ld, 76));
    p16(d, 80, e.u16(ld, 80));
    d[82] = ld[82];
    d[83] = ld[83];
    p32(d, 84, e.u32(ld, 84));
    p16(d, 88, e.u16(ld, 88));
    p16(d, 90, e.u16(ld, 90));
    p32(d, 92, e.u32(ld, 92));
    if v3 {
        p64(d, 104, e.u64(ld, 104));
        p64(d, 112, lsn);
        p64(d, 120, flags2);
        p32(d, 128, e.u32(ld, 128));
        d[132..144].fill(0);
        ts(d, 144);
        p64(d, 152, e.u64(ld, 152));
        d[160..176].copy_from_slice(&ld[160..176]);
        if !nrext64 {
            p64(d, 24, 0);
        }
    } else {
        // The flush counter restarts, as the kernel resets it when replaying.
        d[24..30].fill(0);
        p16(d, 30, 0);
    }
}

/// `xfs_bmbt_to_bmdr`: a logged in-memory btree root (a long-format block header, keys,
/// and pointers after the most keys the logged size holds) to the on-disk root in the fork
/// (level, count, keys, pointers after the most keys the fork holds).
pub(super) fn bmbt_to_bmdr(
    src: &[u8],
    dst: &mut [u8],
    v5: bool,
) -> std::result::Result<(), String> {
    let hdr = if v5 { 72 } else { 24 };
    if src.len() < hdr + 16 || dst.len() < 4 + 16 {
        return Err(format!(
            "{}-byte logged root for a {}-byte fork",
            src.len(),
            dst.len()
        ));
    }
    let magic = be32(src, 0);
    if magic != 0x424d_4133 && magic != 0x424d_4150 {
        return Err(format!("logged root with magic {magic:#010x}"));
    }
    let level = be16(src, 4);
    let n = usize::from(be16(src, 6));
    let src_max = (src.len() - hdr) / 16;
    let dst_max = (dst.len() - 4) / 16;
    if level == 0 || n == 0 || n > src_max || n > dst_max {
        return Err(format!(
            "level {level} root with {n} keys (room for {src_max} logged, {dst_max} in the fork)"
        ));
    }
    dst[0..4].copy_from_slice(&src[4..8]);
    dst[4..4 + 8 * n].copy_from_slice(&src[hdr..hdr + 8 * n]);
    let sp = hdr + 8 * src_max;
    let dp = 4 + 8 * dst_max;
    dst[dp..dp + 8 * n].copy_from_slice(&src[sp..sp + 8 * n]);
    Ok(())
}

/// Recomputes a v3 inode's CRC.
fn set_crc(ino: &mut [u8]) {
    if ino.len() >= CORE_V3 {
        let c = csum::compute(ino, DINODE_CRC);
        ino[DINODE_CRC..DINODE_CRC + 4].copy_from_slice(&c.to_le_bytes());
    }
}
