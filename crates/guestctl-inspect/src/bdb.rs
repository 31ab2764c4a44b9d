//! A read-only reader of Berkeley DB database files (the rpmdb `Packages` of RHEL/CentOS 5–8
//! and Amazon Linux 2): every (key, value) pair, from the file's bytes, without I/O.
//!
//! Written from the documented on-disk layout (Berkeley DB's `db_page.h` structure
//! descriptions): the metadata page (page 0: magic, version, page size, byte order, last page,
//! and for hash the bucket count and the `spares` table mapping buckets to pages), bucket
//! chains of hash pages (`P_HASH`, `P_HASH_UNSORTED`) whose index holds key/data item pairs,
//! and the item kinds `H_KEYDATA` (on the page), `H_OFFPAGE` (a chain of `P_OVERFLOW` pages),
//! `H_DUPLICATE` (on-page duplicate set) and `H_OFFDUP` (an off-page duplicate tree).
//!
//! **Read:** hash databases, either byte order (found by the magic number), page sizes
//! 512–65536, with or without page checksums (the checksums themselves are not verified);
//! btree databases by descent from the root; on- and off-page duplicates and overflow items in
//! both. Hash and btree versions 7–10 are accepted (the page layouts read here did not change
//! in them); tested are hash 8 (Berkeley DB 4.3, CentOS 5), hash 9 and btree 9 (4.6–5.3).
//! **Refused** (an error saying so): encrypted databases, compressed btrees, recno, queue and
//! heap databases, and Berkeley DB 5.3 external "blob" items (`H_BLOB`, one warning each).
//!
//! Hostile input: every page number is checked against the file, every item offset and
//! length against its page, every page is read at most once (so no chain or tree can loop),
//! and the bytes returned are bounded by the file's size. A damaged page or item becomes a
//! warning naming the page and byte offset, and the other items are still returned.

use std::fmt;

/// Why a database could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BdbError(pub String);

impl fmt::Display for BdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "berkeley db: {}", self.0)
    }
}

impl std::error::Error for BdbError {}

type Result<T> = std::result::Result<T, BdbError>;

fn err<T>(m: impl Into<String>) -> Result<T> {
    Err(BdbError(m.into()))
}

/// The byte order of a database file's integers (the writer's native order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// Written on a little-endian machine (x86, most aarch64/ppc64le).
    Little,
    /// Written on a big-endian machine (s390x, ppc64, sparc).
    Big,
}

impl ByteOrder {
    /// Decodes a 4-byte integer in this order (`None` unless `b` is 4 bytes long).
    pub fn u32(self, b: &[u8]) -> Option<u32> {
        let a: [u8; 4] = b.try_into().ok()?;
        Some(match self {
            ByteOrder::Little => u32::from_le_bytes(a),
            ByteOrder::Big => u32::from_be_bytes(a),
        })
    }

    fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            ByteOrder::Little => u16::from_le_bytes(b),
            ByteOrder::Big => u16::from_be_bytes(b),
        }
    }
}

/// The access method of a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessMethod {
    /// Extended linear hashing (what rpm uses).
    Hash,
    /// B+tree.
    Btree,
}

/// Everything read from one database file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    /// Hash or btree.
    pub method: AccessMethod,
    /// The file's byte order.
    pub byte_order: ByteOrder,
    /// Page size in bytes.
    pub page_size: u32,
    /// The access method's on-disk version (hash 9 / btree 9 for Berkeley DB 4.6–5.3).
    pub version: u32,
    /// Every (key, value) pair found, in page order (a key with duplicates appears once per
    /// value).
    pub pairs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Damaged pages and items that were skipped, each naming the page and byte offset.
    pub warnings: Vec<String>,
}

const HASH_MAGIC: u32 = 0x0006_1561;
const BTREE_MAGIC: u32 = 0x0005_3162;
const QUEUE_MAGIC: u32 = 0x0004_2253;
const HEAP_MAGIC: u32 = 0x0007_4582;

const P_HASH_UNSORTED: u8 = 2;
const P_IBTREE: u8 = 3;
const P_IRECNO: u8 = 4;
const P_LBTREE: u8 = 5;
const P_LRECNO: u8 = 6;
const P_OVERFLOW: u8 = 7;
const P_HASHMETA: u8 = 8;
const P_BTREEMETA: u8 = 9;
const P_LDUP: u8 = 12;
const P_HASH: u8 = 13;

const H_KEYDATA: u8 = 1;
const H_DUPLICATE: u8 = 2;
const H_OFFPAGE: u8 = 3;
const H_OFFDUP: u8 = 4;
const H_BLOB: u8 = 5;

const B_KEYDATA: u8 = 1;
const B_DUPLICATE: u8 = 2;
const B_OVERFLOW: u8 = 3;
const B_BLOB: u8 = 4;
const B_DELETE: u8 = 0x80;

/// The generic page header's size; page checksums add 6 bytes (2 of padding, 4 of sum).
const PAGE_HEADER: usize = 26;
const PAGE_HEADER_CHKSUM: usize = 32;
/// The metadata fields read (the metadata page is at least this long).
const META_SIZE: usize = 512;
const DBMETA_CHKSUM: u8 = 0x01;
const BTM_RECNO: u32 = 0x002;
const BTM_COMPRESS: u32 = 0x080;
/// Hash `spares` entries (one per doubling of the table).
const NCACHED: usize = 32;
/// Btree levels are one byte.
const MAX_DEPTH: usize = 255;
/// What one pair costs the output budget beyond its bytes (two `Vec`s).
const PAIR_COST: usize = 64;
/// The most warnings kept (the rest are counted in the last one).
const MAX_WARNINGS: usize = 1000;

/// Reads every (key, value) pair of a hash or btree database file.
///
/// Fails only when the file is not a database this reader handles (bad magic, encrypted,
/// another access method, an impossible page size); damage inside is in
/// [`Contents::warnings`].
pub fn read(data: &[u8]) -> Result<Contents> {
    if data.len() < META_SIZE {
        return err(format!(
            "{} bytes: shorter than a metadata page ({META_SIZE} bytes)",
            data.len()
        ));
    }
    let at = |o: usize| [data[o], data[o + 1], data[o + 2], data[o + 3]];
    let magic_le = u32::from_le_bytes(at(12));
    let magic_be = u32::from_be_bytes(at(12));
    let (order, magic) = if [HASH_MAGIC, BTREE_MAGIC, QUEUE_MAGIC, HEAP_MAGIC].contains(&magic_le) {
        (ByteOrder::Little, magic_le)
    } else if [HASH_MAGIC, BTREE_MAGIC, QUEUE_MAGIC, HEAP_MAGIC].contains(&magic_be) {
        (ByteOrder::Big, magic_be)
    } else {
        return err(format!(
            "page 0 offset 12: magic {magic_le:#010x} is not a Berkeley DB hash or btree magic"
        ));
    };
    let u32_at = |o: usize| match order {
        ByteOrder::Little => u32::from_le_bytes(at(o)),
        ByteOrder::Big => u32::from_be_bytes(at(o)),
    };
    let (method, want_type) = match magic {
        HASH_MAGIC => (AccessMethod::Hash, P_HASHMETA),
        BTREE_MAGIC => (AccessMethod::Btree, P_BTREEMETA),
        QUEUE_MAGIC => return err("a queue database: not read (only hash and btree are)"),
        _ => return err("a heap database: not read (only hash and btree are)"),
    };
    let version = u32_at(16);
    if !(7..=10).contains(&version) {
        return err(format!(
            "page 0 offset 16: {method:?} version {version} is not supported (7 to 10 are)"
        ));
    }
    let page_size = u32_at(20);
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return err(format!(
            "page 0 offset 20: page size {page_size} is not a power of two from 512 to 65536"
        ));
    }
    if data[24] != 0 {
        return err(format!(
            "page 0 offset 24: encrypted (algorithm {}): not read",
            data[24]
        ));
    }
    if data[25] != want_type {
        return err(format!(
            "page 0 offset 25: page type {} is not the {method:?} metadata type {want_type}",
            data[25]
        ));
    }
    let psize = page_size as usize;
    let overhead = if data[26] & DBMETA_CHKSUM != 0 {
        PAGE_HEADER_CHKSUM
    } else {
        PAGE_HEADER
    };
    let last_pgno = u32_at(32);
    let npages = data.len() / psize;
    let mut warnings = Vec::new();
    if u64::from(last_pgno) + 1 > npages as u64 {
        warnings.push(format!(
            "page 0 offset 32: the last page is {last_pgno} but the file holds {npages} \
             whole {psize}-byte pages (truncated)"
        ));
    }
    let mut db = Db {
        data,
        psize,
        overhead,
        order,
        npages,
        used: vec![false; npages],
        // Keys, values and pairs: at most about 3 times the file (each page is read once).
        budget: data.len().saturating_mul(3).saturating_add(1 << 20),
        pairs: Vec::new(),
        warnings,
        dropped: 0,
    };
    if npages > 0 {
        db.used[0] = true;
    }
    match method {
        AccessMethod::Hash => {
            let max_bucket = u32_at(72);
            if u64::from(max_bucket) >= npages as u64 {
                return err(format!(
                    "page 0 offset 72: {} buckets but only {npages} pages in the file",
                    u64::from(max_bucket) + 1
                ));
            }
            let mut spares = [0u32; NCACHED];
            for (i, s) in spares.iter_mut().enumerate() {
                *s = u32_at(96 + 4 * i);
            }
            db.hash(max_bucket, &spares);
        }
        AccessMethod::Btree => {
            let flags = u32_at(48);
            if flags & BTM_COMPRESS != 0 {
                return err("page 0 offset 48: a compressed btree: not read");
            }
            if flags & BTM_RECNO != 0 {
                return err("page 0 offset 48: a recno database: not read");
            }
            let root = u32_at(88);
            db.btree_main(root);
        }
    }
    if db.dropped > 0 {
        db.warnings
            .push(format!("… and {} more warnings", db.dropped));
    }
    Ok(Contents {
        method,
        byte_order: order,
        page_size,
        version,
        pairs: db.pairs,
        warnings: db.warnings,
    })
}

/// `ceil(log2(n))`: the hash table doubling that bucket `n - 1` belongs to.
fn log2_ceil(n: u64) -> usize {
    let mut i = 0;
    while (1u64 << i) < n && i < 63 {
        i += 1;
    }
    i
}

/// A damage report: the page, the byte offset in the file, and what is wrong.
struct Damage {
    pgno: u32,
    offset: usize,
    what: String,
}

type Step<T> = std::result::Result<T, Damage>;

struct Db<'a> {
    data: &'a [u8],
    psize: usize,
    overhead: usize,
    order: ByteOrder,
    npages: usize,
    /// Pages already visited: each may be read once.
    used: Vec<bool>,
    /// Bytes that may still be returned.
    budget: usize,
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    warnings: Vec<String>,
    dropped: usize,
}

/// One page, borrowed from the file.
#[derive(Clone, Copy)]
struct Page<'a> {
    pgno: u32,
    bytes: &'a [u8],
    /// The file offset of `bytes[0]`.
    base: usize,
    order: ByteOrder,
    overhead: usize,
}

impl<'a> Page<'a> {
    fn damage(&self, at: usize, what: impl Into<String>) -> Damage {
        Damage {
            pgno: self.pgno,
            offset: self.base + at,
            what: what.into(),
        }
    }
    fn u16(&self, at: usize) -> Step<usize> {
        match self.bytes.get(at..at + 2) {
            Some(s) => Ok(usize::from(self.order.u16([s[0], s[1]]))),
            None => Err(self.damage(at, "a 2-byte field past the page's end")),
        }
    }
    fn u32(&self, at: usize) -> Step<u32> {
        self.bytes
            .get(at..at + 4)
            .and_then(|s| self.order.u32(s))
            .ok_or_else(|| self.damage(at, "a 4-byte field past the page's end"))
    }
    fn next(&self) -> u32 {
        self.u32(16).unwrap_or(0)
    }
    fn entries(&self) -> usize {
        self.u16(20).unwrap_or(0)
    }
    fn hf_offset(&self) -> usize {
        self.u16(22).unwrap_or(0)
    }
    fn level(&self) -> u8 {
        self.bytes[24]
    }
    fn kind(&self) -> u8 {
        self.bytes[25]
    }
    fn is_zero(&self) -> bool {
        self.bytes[..PAGE_HEADER].iter().all(|&b| b == 0)
    }
    /// The offset of item `i` from the page index, checked to lie past the index.
    fn item_offset(&self, i: usize) -> Step<usize> {
        let at = self.overhead + 2 * i;
        let o = self.u16(at)?;
        let index_end = self.overhead + 2 * self.entries();
        if o < index_end || o >= self.bytes.len() {
            return Err(self.damage(
                at,
                format!(
                    "item {i} at offset {o} is outside the page's data area ({index_end}..{})",
                    self.bytes.len()
                ),
            ));
        }
        Ok(o)
    }
    /// A hash item: from its offset to the previous item's (or the page's end).
    fn hash_item(&self, i: usize) -> Step<(usize, &'a [u8])> {
        let o = self.item_offset(i)?;
        let end = if i == 0 {
            self.bytes.len()
        } else {
            self.item_offset(i - 1)?
        };
        if end <= o {
            return Err(self.damage(
                self.overhead + 2 * i,
                format!(
                    "item {i} at offset {o} does not lie below item {} ({end})",
                    i.max(1) - 1
                ),
            ));
        }
        Ok((o, &self.bytes[o..end]))
    }
}

impl<'a> Db<'a> {
    fn warn(&mut self, d: Damage) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(format!(
                "page {} (file offset {}): {}",
                d.pgno, d.offset, d.what
            ));
        } else {
            self.dropped += 1;
        }
    }

    /// Page `pgno`, marking it used; a page read twice, past the file, or numbered wrongly is
    /// damage (reported against `from`, the page and offset that referred to it).
    fn claim(&mut self, pgno: u32, from: (u32, usize)) -> Step<Page<'a>> {
        let bad = |what: String| Damage {
            pgno: from.0,
            offset: from.1,
            what,
        };
        let i = pgno as usize;
        if pgno == 0 || i >= self.npages {
            return Err(bad(format!(
                "refers to page {pgno}, outside pages 1..{} of the file",
                self.npages
            )));
        }
        if self.used[i] {
            return Err(bad(format!(
                "refers to page {pgno}, which was already read (a loop or a shared page)"
            )));
        }
        self.used[i] = true;
        let base = i * self.psize;
        let page = Page {
            pgno,
            bytes: &self.data[base..base + self.psize],
            base,
            order: self.order,
            overhead: self.overhead,
        };
        if page.is_zero() {
            return Ok(page);
        }
        let stored = page.u32(8)?;
        if stored != pgno {
            return Err(page.damage(8, format!("the page says it is page {stored}")));
        }
        let n = page.entries();
        if page.kind() != P_OVERFLOW && page.overhead + 2 * n > self.psize {
            return Err(page.damage(20, format!("{n} index entries do not fit the page")));
        }
        Ok(page)
    }

    fn spend(&mut self, n: usize, page: &Page, at: usize) -> Step<()> {
        if n > self.budget {
            return Err(page.damage(
                at,
                format!("{n} more bytes exceed what the file's size allows"),
            ));
        }
        self.budget -= n;
        Ok(())
    }

    /// Adds a pair, charging its key (a copy: duplicates share one) and its bookkeeping to
    /// the budget, so that even empty items cannot pile up past the file's size.
    fn push(&mut self, key: &[u8], value: Vec<u8>, page: &Page, at: usize) -> Step<()> {
        self.spend(key.len() + PAIR_COST, page, at)?;
        self.pairs.push((key.to_vec(), value));
        Ok(())
    }

    /// An overflow item of `tlen` bytes starting at page `first`.
    fn overflow(&mut self, first: u32, tlen: u32, from: &Page, at: usize) -> Step<Vec<u8>> {
        let tlen = tlen as usize;
        let room = self.psize - self.overhead;
        if tlen.div_ceil(room) > self.npages {
            return Err(from.damage(
                at,
                format!("an overflow item of {tlen} bytes is larger than the file"),
            ));
        }
        self.spend(tlen, from, at)?;
        let mut out = Vec::with_capacity(tlen);
        let mut pgno = first;
        let mut referrer = (from.pgno, from.base + at);
        while out.len() < tlen {
            if pgno == 0 {
                return Err(Damage {
                    pgno: referrer.0,
                    offset: referrer.1,
                    what: format!(
                        "the overflow chain from page {first} ends after {} of {tlen} bytes",
                        out.len()
                    ),
                });
            }
            let page = self.claim(pgno, referrer)?;
            if page.kind() != P_OVERFLOW {
                return Err(page.damage(
                    25,
                    format!(
                        "page type {} in the overflow chain from page {first}",
                        page.kind()
                    ),
                ));
            }
            let n = page.hf_offset();
            if n == 0 || n > room || n > tlen - out.len() {
                return Err(page.damage(
                    22,
                    format!(
                        "{n} bytes on this overflow page (room {room}, {} of the item left)",
                        tlen - out.len()
                    ),
                ));
            }
            out.extend_from_slice(&page.bytes[self.overhead..self.overhead + n]);
            referrer = (page.pgno, page.base + 16);
            pgno = page.next();
        }
        Ok(out)
    }

    // ---- hash ----

    fn hash(&mut self, max_bucket: u32, spares: &[u32; NCACHED]) {
        for bucket in 0..=max_bucket {
            let b = u64::from(bucket);
            let spare = spares[log2_ceil(b + 1).min(NCACHED - 1)];
            let pgno = b + u64::from(spare);
            let Ok(pgno) = u32::try_from(pgno) else {
                self.warn(Damage {
                    pgno: 0,
                    offset: 96,
                    what: format!("bucket {bucket} maps to page {pgno}, past any file"),
                });
                continue;
            };
            // The bucket's first page is referred to by the metadata's spares table.
            let mut referrer = (0u32, 96 + 4 * log2_ceil(b + 1).min(NCACHED - 1));
            let mut next = pgno;
            loop {
                let page = match self.claim(next, referrer) {
                    Ok(p) => p,
                    Err(d) => {
                        self.warn(d);
                        break;
                    }
                };
                if page.is_zero() {
                    break; // a bucket page never written: empty
                }
                if page.kind() != P_HASH && page.kind() != P_HASH_UNSORTED {
                    self.warn(page.damage(
                        25,
                        format!("page type {} in the chain of bucket {bucket}", page.kind()),
                    ));
                    break;
                }
                self.hash_page(&page);
                referrer = (page.pgno, page.base + 16);
                next = page.next();
                if next == 0 {
                    break;
                }
            }
        }
    }

    fn hash_page(&mut self, page: &Page<'a>) {
        let n = page.entries();
        if n % 2 != 0 {
            self.warn(page.damage(20, format!("{n} index entries: not key/data pairs")));
        }
        for pair in 0..n / 2 {
            if let Err(d) = self.hash_pair(page, 2 * pair) {
                self.warn(d);
            }
        }
    }

    fn hash_pair(&mut self, page: &Page<'a>, k: usize) -> Step<()> {
        let (ko, key_item) = page.hash_item(k)?;
        let key = match key_item[0] {
            H_KEYDATA => {
                self.spend(key_item.len() - 1, page, ko)?;
                key_item[1..].to_vec()
            }
            H_OFFPAGE => {
                let (pgno, tlen) = offpage(page, ko, key_item)?;
                self.overflow(pgno, tlen, page, ko)?
            }
            t => return Err(page.damage(ko, format!("key item of type {t}"))),
        };
        let (vo, item) = page.hash_item(k + 1)?;
        match item[0] {
            H_KEYDATA => {
                self.spend(item.len() - 1, page, vo)?;
                self.push(&key, item[1..].to_vec(), page, vo)?;
            }
            H_OFFPAGE => {
                let (pgno, tlen) = offpage(page, vo, item)?;
                let v = self.overflow(pgno, tlen, page, vo)?;
                self.push(&key, v, page, vo)?;
            }
            H_DUPLICATE => {
                // len, bytes, len — repeated.
                let mut at = 1;
                while at < item.len() {
                    let here = vo + at;
                    let len = page.u16(here)?;
                    let end = at + 2 + len + 2;
                    if end > item.len() || page.u16(vo + at + 2 + len)? != len {
                        return Err(page.damage(
                            here,
                            format!(
                                "a {len}-byte duplicate overruns its {}-byte set",
                                item.len()
                            ),
                        ));
                    }
                    self.spend(len, page, here)?;
                    let v = item[at + 2..at + 2 + len].to_vec();
                    self.push(&key, v, page, here)?;
                    at = end;
                }
            }
            H_OFFDUP => {
                if item.len() < 8 {
                    return Err(page.damage(vo, "an off-page duplicate item under 8 bytes"));
                }
                let root = page.u32(vo + 4)?;
                let mut values = Vec::new();
                self.dup_tree(root, (page.pgno, page.base + vo), 0, &mut values)?;
                for v in values {
                    self.push(&key, v, page, vo)?;
                }
            }
            H_BLOB => {
                return Err(page.damage(vo, "an external blob item: not read"));
            }
            t => return Err(page.damage(vo, format!("data item of type {t}"))),
        }
        Ok(())
    }

    // ---- btree ----

    fn btree_main(&mut self, root: u32) {
        let mut values = Vec::new();
        if let Err(d) = self.btree(root, (0, 88), 0, false, &mut values) {
            self.warn(d);
        }
    }

    /// Walks a btree from `pgno`: the main tree (pairs) or, with `dup`, an off-page duplicate
    /// tree whose values are collected into `values`.
    fn btree(
        &mut self,
        pgno: u32,
        from: (u32, usize),
        depth: usize,
        dup: bool,
        values: &mut Vec<Vec<u8>>,
    ) -> Step<()> {
        if depth > MAX_DEPTH {
            return Err(Damage {
                pgno: from.0,
                offset: from.1,
                what: format!("the tree is deeper than {MAX_DEPTH} levels"),
            });
        }
        let page = self.claim(pgno, from)?;
        if page.is_zero() {
            return Ok(());
        }
        let n = page.entries();
        match page.kind() {
            P_IBTREE | P_IRECNO => {
                if page.level() <= 1 {
                    return Err(page.damage(24, "an internal page at leaf level"));
                }
                for i in 0..n {
                    let step = page.item_offset(i).and_then(|o| {
                        // BINTERNAL: len u16, type u8, pad u8, pgno u32, nrecs u32, data.
                        // RINTERNAL: pgno u32, nrecs u32.
                        let at = if page.kind() == P_IBTREE { o + 4 } else { o };
                        Ok((page.u32(at)?, at))
                    });
                    match step {
                        Ok((child, at)) => {
                            if let Err(d) = self.btree(
                                child,
                                (page.pgno, page.base + at),
                                depth + 1,
                                dup,
                                values,
                            ) {
                                self.warn(d);
                            }
                        }
                        Err(d) => self.warn(d),
                    }
                }
            }
            P_LBTREE if !dup => {
                if n % 2 != 0 {
                    self.warn(page.damage(20, format!("{n} index entries: not key/data pairs")));
                }
                for pair in 0..n / 2 {
                    if let Err(d) = self.btree_pair(&page, 2 * pair) {
                        self.warn(d);
                    }
                }
            }
            P_LDUP | P_LRECNO if dup => {
                for i in 0..n {
                    match self.btree_item(&page, i) {
                        Ok(Some(v)) => values.push(v),
                        Ok(None) => {}
                        Err(d) => self.warn(d),
                    }
                }
            }
            t => {
                return Err(page.damage(
                    25,
                    format!(
                        "page type {t} in a {}",
                        if dup { "duplicate tree" } else { "btree" }
                    ),
                ))
            }
        }
        Ok(())
    }

    /// A btree leaf item (`BKEYDATA` or `BOVERFLOW`); `None` when deleted.
    fn btree_item(&mut self, page: &Page<'a>, i: usize) -> Step<Option<Vec<u8>>> {
        let o = page.item_offset(i)?;
        let len = page.u16(o)?;
        let ty = *page
            .bytes
            .get(o + 2)
            .ok_or_else(|| page.damage(o, "an item past the page's end"))?;
        if ty & B_DELETE != 0 {
            return Ok(None);
        }
        match ty {
            B_KEYDATA => {
                let bytes = page.bytes.get(o + 3..o + 3 + len).ok_or_else(|| {
                    page.damage(o, format!("a {len}-byte item overruns the page"))
                })?;
                self.spend(len, page, o)?;
                Ok(Some(bytes.to_vec()))
            }
            B_OVERFLOW => {
                let pgno = page.u32(o + 4)?;
                let tlen = page.u32(o + 8)?;
                self.overflow(pgno, tlen, page, o).map(Some)
            }
            B_BLOB => Err(page.damage(o, "an external blob item: not read")),
            t => Err(page.damage(o, format!("item of type {t}"))),
        }
    }

    fn btree_pair(&mut self, page: &Page<'a>, k: usize) -> Step<()> {
        // The key of on-page duplicates is shared; a deleted key or data is skipped.
        let Some(key) = self.btree_item(page, k)? else {
            return Ok(());
        };
        let vo = page.item_offset(k + 1)?;
        let ty = *page
            .bytes
            .get(vo + 2)
            .ok_or_else(|| page.damage(vo, "an item past the page's end"))?;
        if ty == B_DUPLICATE {
            let root = page.u32(vo + 4)?;
            let mut values = Vec::new();
            self.dup_tree(root, (page.pgno, page.base + vo), 0, &mut values)?;
            for v in values {
                self.push(&key, v, page, vo)?;
            }
        } else if let Some(v) = self.btree_item(page, k + 1)? {
            self.push(&key, v, page, vo)?;
        }
        Ok(())
    }

    fn dup_tree(
        &mut self,
        root: u32,
        from: (u32, usize),
        depth: usize,
        values: &mut Vec<Vec<u8>>,
    ) -> Step<()> {
        self.btree(root, from, depth, true, values)
    }
}

/// The page number and total length of an `H_OFFPAGE` item.
fn offpage(page: &Page, at: usize, item: &[u8]) -> Step<(u32, u32)> {
    if item.len() < 12 {
        return Err(page.damage(at, format!("an overflow reference of {} bytes", item.len())));
    }
    Ok((page.u32(at + 4)?, page.u32(at + 8)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2() {
        assert_eq!(log2_ceil(1), 0);
        assert_eq!(log2_ceil(2), 1);
        assert_eq!(log2_ceil(3), 2);
        assert_eq!(log2_ceil(4), 2);
        assert_eq!(log2_ceil(5), 3);
    }

    #[test]
    fn refuses_what_it_does_not_read() {
        assert!(read(&[]).is_err());
        assert!(read(&[0u8; 4096]).is_err());
        let mut m = vec![0u8; 4096];
        m[12..16].copy_from_slice(&QUEUE_MAGIC.to_le_bytes());
        assert!(read(&m).expect_err("refused").0.contains("queue"));
        m[12..16].copy_from_slice(&HASH_MAGIC.to_be_bytes());
        m[16..20].copy_from_slice(&9u32.to_be_bytes());
        m[20..24].copy_from_slice(&4096u32.to_be_bytes());
        m[25] = P_HASHMETA;
        m[24] = 1;
        assert!(read(&m).expect_err("refused").0.contains("encrypted"));
        m[24] = 0;
        // One page, one bucket (0) mapped to page 0 + spares[0] = 0: refused as page 0.
        let c = read(&m).expect("empty hash db");
        assert_eq!(c.byte_order, ByteOrder::Big);
        assert!(c.pairs.is_empty());
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    }
}
