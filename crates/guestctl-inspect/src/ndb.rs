//! A read-only reader of rpm's "ndb" package database, `Packages.db` (SUSE: SLES 15 SP3+,
//! openSUSE; `/usr/lib/sysimage/rpm` or `/var/lib/rpm`), from the file's bytes, without I/O.
//!
//! The format is rpm's own (its `lib/backend/ndb`), all integers little-endian, the file made
//! of 16-byte blocks:
//!
//! * a 32-byte header: magic `RpmP`, version 0, generation, the number of 4096-byte slot
//!   pages, the next package index;
//! * the slot pages right after: 16-byte slots (`Slot` magic, package index, first block,
//!   block count; a zero first block is a free slot), the first page's first two slots being
//!   the header;
//! * blobs after the slot pages, each `blkcnt` blocks: a 16-byte head (`BlbS`, package index,
//!   generation, blob length), the rpm header blob, zero padding, and a 12-byte tail (adler32
//!   of everything from the head to the padding, blob length again, `BlbE`).
//!
//! **Checked** as rpm checks when it reads a package: the header's magic and version, each
//! slot's magic, a non-zero index and block count, the blocks lying past the slot pages and
//! inside the file; the blob head's magic and package index, the block count matching the
//! blob length, the tail's length and magic. rpm verifies the adler32 only in
//! `rpmdb --verifydb`; a mismatch here is a warning and the blob is still returned (as rpm's
//! read path would). Beyond rpm: a bad slot or blob is a warning and the other packages are
//! still read (rpm fails the whole database on a bad slot), and slots whose blocks overlap an
//! earlier slot's are skipped (so the bytes returned never exceed the file's size).
//!
//! **Not read:** `Index.db` (rpm's indexes: not needed to list packages).

use std::fmt;

/// Why a `Packages.db` could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NdbError(pub String);

impl fmt::Display for NdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rpm ndb: {}", self.0)
    }
}

impl std::error::Error for NdbError {}

/// One package blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// rpm's package index (the header number).
    pub pkgidx: u32,
    /// The rpm header blob.
    pub blob: Vec<u8>,
}

/// Everything read from one `Packages.db`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    /// The database generation (bumped on every change).
    pub generation: u32,
    /// The packages, ordered by package index.
    pub packages: Vec<Package>,
    /// Damaged slots and blobs, each naming the slot or byte offset.
    pub warnings: Vec<String>,
}

const PKGDB_MAGIC: u32 = u32::from_le_bytes(*b"RpmP");
const SLOT_MAGIC: u32 = u32::from_le_bytes(*b"Slot");
const BLOBHEAD_MAGIC: u32 = u32::from_le_bytes(*b"BlbS");
const BLOBTAIL_MAGIC: u32 = u32::from_le_bytes(*b"BlbE");
const HEADER_SIZE: usize = 32;
const SLOT_SIZE: usize = 16;
const BLK_SIZE: usize = 16;
const PAGE_SIZE: usize = 4096;
const BLOBHEAD_SIZE: usize = 16;
const BLOBTAIL_SIZE: usize = 12;
/// The most warnings kept.
const MAX_WARNINGS: usize = 1000;

fn le32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// rpm's adler32 (zlib's), from 1.
pub fn adler32(bytes: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 is the most bytes summed before `b` could overflow a u32.
    for chunk in bytes.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// A used slot (u32 fields: a hostile file may hold millions).
struct Slot {
    slotno: u32,
    pkgidx: u32,
    blkoff: u32,
    blkcnt: u32,
}

impl Slot {
    fn off(&self) -> usize {
        self.blkoff as usize
    }
    fn cnt(&self) -> usize {
        self.blkcnt as usize
    }
}

/// Reads every package blob of an ndb `Packages.db`.
///
/// Fails only when the file is not one (magic, version, slot pages past the end); damage in
/// slots and blobs is in [`Contents::warnings`].
pub fn read(data: &[u8]) -> Result<Contents, NdbError> {
    let e = |m: String| NdbError(m);
    if data.len() < HEADER_SIZE {
        return Err(e(format!(
            "{} bytes: shorter than the {HEADER_SIZE}-byte header",
            data.len()
        )));
    }
    let h = |at: usize| le32(data, at).unwrap_or(0);
    if h(0) != PKGDB_MAGIC {
        return Err(e(format!("offset 0: magic {:#010x} is not \"RpmP\"", h(0))));
    }
    if h(4) != 0 {
        return Err(e(format!("offset 4: version {} (only 0 exists)", h(4))));
    }
    let generation = h(8);
    let slotnpages = h(12) as usize;
    let mut warnings = Vec::new();
    if data.len() % BLK_SIZE != 0 {
        // rpm refuses such a file; the whole blocks are still readable.
        warnings.push(format!(
            "the file's {} bytes are not whole {BLK_SIZE}-byte blocks (truncated?)",
            data.len()
        ));
    }
    let slot_bytes = slotnpages
        .checked_mul(PAGE_SIZE)
        .filter(|&n| n > 0 && n <= data.len())
        .ok_or_else(|| {
            e(format!(
                "offset 12: {slotnpages} slot pages do not fit the {}-byte file",
                data.len()
            ))
        })?;
    let fileblks = data.len() / BLK_SIZE;
    let minblkoff = slot_bytes / BLK_SIZE;
    let mut slots = Vec::new();
    for slotno in HEADER_SIZE / SLOT_SIZE..slot_bytes / SLOT_SIZE {
        let at = slotno * SLOT_SIZE;
        let f = |o: usize| le32(data, at + o).unwrap_or(0);
        if f(0) != SLOT_MAGIC {
            warn(
                &mut warnings,
                format!("slot {slotno} (offset {at}): no \"Slot\" magic"),
            );
            continue;
        }
        let (pkgidx, blkoff, blkcnt) = (f(4), f(8), f(12));
        if blkoff == 0 {
            continue; // free
        }
        if pkgidx == 0 || blkcnt == 0 || (blkoff as usize) < minblkoff {
            warn(
                &mut warnings,
                format!(
                    "slot {slotno} (offset {at}): package {pkgidx} at block {blkoff} \
                     (+{blkcnt}): a bad entry"
                ),
            );
            continue;
        }
        if u64::from(blkoff) + u64::from(blkcnt) > fileblks as u64 {
            warn(
                &mut warnings,
                format!(
                    "slot {slotno} (offset {at}): package {pkgidx}'s blocks {blkoff}+{blkcnt} \
                     pass the file's end (block {fileblks}): truncated"
                ),
            );
            continue;
        }
        slots.push(Slot {
            // slot_bytes <= data.len(): the slot number fits as the file's offsets do.
            slotno: u32::try_from(slotno).unwrap_or(u32::MAX),
            pkgidx,
            blkoff,
            blkcnt,
        });
    }
    // Overlapping blobs: keep the first by block offset.
    slots.sort_by_key(|s| (s.blkoff, s.slotno));
    let mut packages: Vec<Package> = Vec::with_capacity(slots.len());
    let mut end = 0usize;
    for s in &slots {
        if s.off() < end {
            warn(
                &mut warnings,
                format!(
                    "slot {}: package {}'s blocks {}+{} overlap another package's",
                    s.slotno, s.pkgidx, s.blkoff, s.blkcnt
                ),
            );
            continue;
        }
        end = s.off() + s.cnt();
        match blob(data, s) {
            Ok((b, adler_ok)) => {
                if !adler_ok {
                    warn(
                        &mut warnings,
                        format!(
                            "package {} (offset {}): adler32 mismatch (rpm --verifydb \
                             would fail; the blob is read anyway, as rpm does)",
                            s.pkgidx,
                            s.off() * BLK_SIZE
                        ),
                    );
                }
                packages.push(Package {
                    pkgidx: s.pkgidx,
                    blob: b,
                });
            }
            Err(m) => warn(
                &mut warnings,
                format!(
                    "package {} (slot {}, offset {}): {m}",
                    s.pkgidx,
                    s.slotno,
                    s.off() * BLK_SIZE
                ),
            ),
        }
    }
    packages.sort_by_key(|p| p.pkgidx);
    let mut dup_warnings = Vec::new();
    packages.dedup_by(|later, first| {
        let same = later.pkgidx == first.pkgidx;
        if same {
            dup_warnings.push(format!(
                "package {} is in two slots: the second is ignored",
                later.pkgidx
            ));
        }
        same
    });
    for w in dup_warnings {
        warn(&mut warnings, w);
    }
    Ok(Contents {
        generation,
        packages,
        warnings,
    })
}

fn warn(w: &mut Vec<String>, m: String) {
    if w.len() < MAX_WARNINGS {
        w.push(m);
    }
}

/// One slot's blob (checked as rpm checks it) and whether its adler32 matches.
fn blob(data: &[u8], s: &Slot) -> Result<(Vec<u8>, bool), String> {
    let start = s.off() * BLK_SIZE;
    let bytes = &data[start..start + s.cnt() * BLK_SIZE];
    if bytes.len() < BLOBHEAD_SIZE + BLOBTAIL_SIZE {
        return Err(format!("{} blocks cannot hold a blob", s.blkcnt));
    }
    let f = |o: usize| le32(bytes, o).unwrap_or(0);
    if f(0) != BLOBHEAD_MAGIC {
        return Err(format!("no \"BlbS\" magic (found {:#010x})", f(0)));
    }
    if f(4) != s.pkgidx {
        return Err(format!("the blob says it is package {}", f(4)));
    }
    let bloblen = f(12) as usize;
    let want = (BLOBHEAD_SIZE + bloblen + BLOBTAIL_SIZE).div_ceil(BLK_SIZE);
    if want != s.cnt() {
        return Err(format!(
            "a {bloblen}-byte blob needs {want} blocks, the slot says {}",
            s.blkcnt
        ));
    }
    let tail = bytes.len() - BLOBTAIL_SIZE;
    if f(tail + 4) as usize != bloblen {
        return Err(format!(
            "the tail's blob length {} differs from the head's {bloblen}",
            f(tail + 4)
        ));
    }
    if f(tail + 8) != BLOBTAIL_MAGIC {
        return Err("no \"BlbE\" tail magic".into());
    }
    let adler_ok = adler32(&bytes[..tail]) == f(tail);
    Ok((
        bytes[BLOBHEAD_SIZE..BLOBHEAD_SIZE + bloblen].to_vec(),
        adler_ok,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler32_known_values() {
        // zlib's: adler32("Wikipedia") = 0x11E60398.
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(adler32(b""), 1);
        let big = vec![0xffu8; 100_000];
        // Against the plain definition.
        let (mut a, mut b) = (1u64, 0u64);
        for &x in &big {
            a = (a + u64::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!(adler32(&big), ((b << 16) | a) as u32);
    }

    #[test]
    fn refuses_non_ndb() {
        assert!(read(b"").is_err());
        assert!(read(&[0u8; 4096]).is_err());
        let mut h = vec![0u8; 4096];
        h[..4].copy_from_slice(b"RpmP");
        h[12] = 2; // two slot pages in a one-page file
        assert!(read(&h).is_err());
        h[12] = 1;
        h[4] = 1;
        assert!(read(&h).expect_err("refused").0.contains("version"));
        h[4] = 0;
        // A page of slots without magic: a warning per slot, no package.
        let c = read(&h).expect("header ok");
        assert!(c.packages.is_empty());
        assert_eq!(c.warnings.len(), 254);
    }
}
