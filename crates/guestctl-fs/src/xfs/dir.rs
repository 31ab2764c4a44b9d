//! Version 2/3 directories, I/O-free: the shortform directory in the inode, the data blocks
//! of block/leaf/node/btree directories (entries, unused regions, the block form's tail and
//! leaf), the hashed leaf blocks (`LEAF1`, `LEAFN`), da-btree node blocks, and the name
//! hash that orders them. Entries point at inode numbers; `.` and `..` are left out.

use crate::bytes::{be16, be32, be64};

/// Data blocks are at directory byte offsets below this; leaf blocks start here.
pub(crate) const LEAF_OFFSET: u64 = 1 << 35;
/// Free-index blocks start here.
pub(crate) const FREE_OFFSET: u64 = 1 << 36;

pub(crate) const XD2B: u32 = 0x5844_3242;
pub(crate) const XD2D: u32 = 0x5844_3244;
pub(crate) const XDB3: u32 = 0x5844_4233;
pub(crate) const XDD3: u32 = 0x5844_4433;
pub(crate) const LEAF1: u16 = 0xd2f1;
pub(crate) const LEAFN: u16 = 0xd2ff;
pub(crate) const NODE: u16 = 0xfebe;
pub(crate) const LEAF1_V3: u16 = 0x3df1;
pub(crate) const LEAFN_V3: u16 = 0x3dff;
pub(crate) const NODE_V3: u16 = 0x3ebe;
/// The deepest da-btree (directories and attributes).
pub(crate) const MAX_DA_DEPTH: u16 = 5;

/// What the directory code needs to know of the filesystem.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DirGeo {
    /// v5 headers (CRC, owner, self-address).
    pub v5: bool,
    /// Entries carry a file-type byte.
    pub ftype: bool,
    /// Directory block size in bytes.
    pub blksize: usize,
    /// ASCII case-insensitive names.
    pub asciici: bool,
}

impl DirGeo {
    /// Size of a data/block header.
    pub(crate) fn data_hdr(&self) -> usize {
        if self.v5 {
            64
        } else {
            16
        }
    }
    /// Size of a leaf/node header.
    pub(crate) fn da_hdr(&self) -> usize {
        if self.v5 {
            64
        } else {
            16
        }
    }
}

/// One directory entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawEntry {
    pub name: Vec<u8>,
    pub ino: u64,
    /// XFS file type (0 unknown, 1 reg, 2 dir, 3 chr, 4 blk, 5 fifo, 6 sock, 7 symlink).
    pub ftype: u8,
}

/// The self-describing fields a v5 block must have.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect<'a> {
    pub daddr: u64,
    pub owner: u64,
    pub uuid: &'a [u8; 16],
}

/// Checks a v5 header's self address, UUID and owner at the given offsets.
pub(crate) fn check_self(
    b: &[u8],
    blkno_off: usize,
    uuid_off: usize,
    owner_off: usize,
    want: &Expect<'_>,
) -> Result<(), String> {
    if b.len() < owner_off + 8 || b.len() < uuid_off + 16 {
        return Err("block too small for its header".into());
    }
    if be64(b, blkno_off) != want.daddr {
        return Err(format!(
            "block says it is at sector {}, read from sector {}",
            be64(b, blkno_off),
            want.daddr
        ));
    }
    if &b[uuid_off..uuid_off + 16] != want.uuid {
        return Err("UUID is not the filesystem's".into());
    }
    if be64(b, owner_off) != want.owner {
        return Err(format!("owner is inode {}", be64(b, owner_off)));
    }
    Ok(())
}

/// The da-btree name hash (`xfs_da_hashname`), or the ASCII-CI one when `ci`.
pub(crate) fn hashname(name: &[u8], ci: bool) -> u32 {
    if ci {
        return name.iter().fold(0u32, |h, &c| {
            u32::from(c.to_ascii_lowercase()) ^ h.rotate_left(7)
        });
    }
    let mut hash = 0u32;
    let mut chunks = name.chunks_exact(4);
    for c in &mut chunks {
        hash = (u32::from(c[0]) << 21)
            ^ (u32::from(c[1]) << 14)
            ^ (u32::from(c[2]) << 7)
            ^ u32::from(c[3])
            ^ hash.rotate_left(28);
    }
    match *chunks.remainder() {
        [a, b, c] => {
            (u32::from(a) << 14) ^ (u32::from(b) << 7) ^ u32::from(c) ^ hash.rotate_left(21)
        }
        [a, b] => (u32::from(a) << 7) ^ u32::from(b) ^ hash.rotate_left(14),
        [a] => u32::from(a) ^ hash.rotate_left(7),
        _ => hash,
    }
}

/// Names equal as the directory compares them.
pub(crate) fn names_equal(a: &[u8], b: &[u8], ci: bool) -> bool {
    if ci {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

/// Parses a shortform directory (the data fork of a local-format directory of `size` bytes).
/// Returns the parent inode and the entries.
pub(crate) fn parse_shortform(
    fork: &[u8],
    size: u64,
    ftype: bool,
) -> Result<(u64, Vec<RawEntry>), String> {
    let len = usize::try_from(size).map_err(|_| "size too large")?;
    if len > fork.len() {
        return Err(format!(
            "shortform directory of {len} bytes in a {}-byte fork",
            fork.len()
        ));
    }
    let b = &fork[..len];
    if b.len() < 6 {
        return Err(format!("shortform directory of {len} bytes"));
    }
    let count = usize::from(b[0]);
    let wide = b[1] != 0;
    let isz = if wide { 8 } else { 4 };
    let ino_at = |at: usize| {
        if wide {
            be64(b, at)
        } else {
            u64::from(be32(b, at))
        }
    };
    if b.len() < 2 + isz {
        return Err("shortform header truncated".into());
    }
    let parent = ino_at(2);
    let mut pos = 2 + isz;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let namelen = usize::from(*b.get(pos).ok_or(format!("entry {i} past the end"))?);
        let need = 1 + 2 + namelen + usize::from(ftype) + isz;
        if namelen == 0 || pos + need > b.len() {
            return Err(format!("entry {i} at byte {pos} runs past the end"));
        }
        let name = b[pos + 3..pos + 3 + namelen].to_vec();
        let ft = if ftype { b[pos + 3 + namelen] } else { 0 };
        let ino = ino_at(pos + 3 + namelen + usize::from(ftype));
        pos += need;
        if !is_dot(&name) {
            out.push(RawEntry {
                name,
                ino,
                ftype: ft,
            });
        }
    }
    Ok((parent, out))
}

/// Size of a data entry with an `n`-byte name.
pub(crate) fn entsize(n: usize, ftype: bool) -> usize {
    (8 + 1 + n + usize::from(ftype) + 2).div_ceil(8) * 8
}

/// Decodes the data entry at `pos` of a data block whose entries end at `end`.
/// `Ok(None)`: an unused region (its length is returned in the error-free `skip`).
fn entry(
    b: &[u8],
    pos: usize,
    end: usize,
    ftype: bool,
) -> Result<(Option<RawEntry>, usize), String> {
    if pos + 8 > end {
        return Err(format!(
            "entry at byte {pos} runs past the data area ({end})"
        ));
    }
    if be16(b, pos) == 0xffff {
        let len = usize::from(be16(b, pos + 2));
        if len < 8 || len % 8 != 0 || pos + len > end {
            return Err(format!("unused region of {len} bytes at byte {pos}"));
        }
        return Ok((None, len));
    }
    let Some(&namelen) = b.get(pos + 8).filter(|_| pos + 16 <= end) else {
        return Err(format!(
            "entry at byte {pos} runs past the data area ({end})"
        ));
    };
    let namelen = usize::from(namelen);
    let size = entsize(namelen, ftype);
    if namelen == 0 || pos + size > end {
        return Err(format!(
            "entry of {namelen}-byte name at byte {pos} runs past the data area"
        ));
    }
    let name = b[pos + 9..pos + 9 + namelen].to_vec();
    let ft = if ftype { b[pos + 9 + namelen] } else { 0 };
    Ok((
        Some(RawEntry {
            name,
            ino: be64(b, pos),
            ftype: ft,
        }),
        size,
    ))
}

/// The kind of a directory data block, from its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataKind {
    /// Single-block directory (data + leaf + tail).
    Block,
    /// A data block of a multi-block directory.
    Data,
}

/// Magic and header checks of a data block; returns its kind. v5 self-description is
/// checked against `want` when given.
pub(crate) fn data_kind(
    b: &[u8],
    geo: &DirGeo,
    want: Option<&Expect<'_>>,
) -> Result<DataKind, String> {
    if b.len() != geo.blksize || b.len() < geo.data_hdr() + 8 {
        return Err(format!("directory block of {} bytes", b.len()));
    }
    let magic = be32(b, 0);
    let kind = match (geo.v5, magic) {
        (false, XD2B) | (true, XDB3) => DataKind::Block,
        (false, XD2D) | (true, XDD3) => DataKind::Data,
        _ => return Err(format!("bad directory data block magic {magic:#010x}")),
    };
    if let (true, Some(w)) = (geo.v5, want) {
        check_self(b, 8, 24, 40, w)?;
    }
    Ok(kind)
}

/// Where the entries of a data block end (the block form keeps its leaf and tail after them).
fn data_end(b: &[u8], geo: &DirGeo, kind: DataKind) -> Result<usize, String> {
    match kind {
        DataKind::Data => Ok(b.len()),
        DataKind::Block => {
            let count = be32(b, b.len() - 8) as usize;
            let leaf = count
                .checked_mul(8)
                .and_then(|l| l.checked_add(8))
                .filter(|&l| l <= b.len() - geo.data_hdr())
                .ok_or(format!("block tail claims {count} leaf entries"))?;
            Ok(b.len() - leaf)
        }
    }
}

/// All live entries of a data block (block form or data form), in on-disk order, with
/// each entry's byte offset in the block.
pub(crate) fn parse_data_block(
    b: &[u8],
    geo: &DirGeo,
    kind: DataKind,
) -> Result<Vec<(usize, RawEntry)>, String> {
    let end = data_end(b, geo, kind)?;
    let mut pos = geo.data_hdr();
    let mut out = Vec::new();
    while pos < end {
        let (e, len) = entry(b, pos, end, geo.ftype)?;
        if let Some(e) = e {
            if !is_dot(&e.name) {
                out.push((pos, e));
            }
        }
        pos += len;
    }
    Ok(out)
}

/// The entry at byte `pos` of a data block (for hash lookups), `None` if it is unused.
pub(crate) fn entry_at(
    b: &[u8],
    pos: usize,
    geo: &DirGeo,
    kind: DataKind,
) -> Result<Option<RawEntry>, String> {
    let end = data_end(b, geo, kind)?;
    if pos < geo.data_hdr() || pos % 8 != 0 {
        return Err(format!("hash leaf points at byte {pos} of a data block"));
    }
    Ok(entry(b, pos, end, geo.ftype)?.0)
}

/// The `(hash, address)` leaf entries of a single-block directory.
pub(crate) fn block_leaf(b: &[u8], geo: &DirGeo) -> Result<Vec<(u32, u32)>, String> {
    let end = data_end(b, geo, DataKind::Block)?;
    let count = be32(b, b.len() - 8) as usize;
    Ok((0..count)
        .map(|i| (be32(b, end + i * 8), be32(b, end + i * 8 + 4)))
        .collect())
}

/// A da-btree block of a directory or an attribute fork.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DaBlock {
    /// Interior node: `(hashval, child block)`, hashval the largest hash below the child.
    Node {
        level: u16,
        entries: Vec<(u32, u32)>,
    },
    /// Directory hash leaf: `(hashval, address)`, and the next leaf to the right.
    Leaf { entries: Vec<(u32, u32)>, forw: u32 },
}

/// Parses a directory leaf (`LEAF1`/`LEAFN`) or node block.
pub(crate) fn parse_da(
    b: &[u8],
    geo: &DirGeo,
    want: Option<&Expect<'_>>,
) -> Result<DaBlock, String> {
    let hdr = geo.da_hdr();
    if b.len() < hdr + 8 {
        return Err(format!("block of {} bytes", b.len()));
    }
    let magic = be16(b, 8);
    if let (true, Some(w)) = (geo.v5, want) {
        check_self(b, 16, 32, 48, w)?;
    }
    // The counts follow the block info: 12 bytes on v4, 56 on v5.
    let info = if geo.v5 { 56 } else { 12 };
    let count = usize::from(be16(b, info));
    let forw = be32(b, 0);
    let (node, leaf1) = match (geo.v5, magic) {
        (false, NODE) | (true, NODE_V3) => (true, false),
        (false, LEAF1) | (true, LEAF1_V3) => (false, true),
        (false, LEAFN) | (true, LEAFN_V3) => (false, false),
        _ => return Err(format!("bad leaf/node magic {magic:#06x}")),
    };
    let room = if leaf1 {
        // The single leaf ends with its bests array and a 4-byte count.
        let bestcount = be32(b, b.len() - 4) as usize;
        let tail = bestcount
            .checked_mul(2)
            .and_then(|t| t.checked_add(4))
            .filter(|&t| t <= b.len() - hdr)
            .ok_or(format!("leaf tail claims {bestcount} bests"))?;
        (b.len() - hdr - tail) / 8
    } else {
        (b.len() - hdr) / 8
    };
    if count > room {
        return Err(format!("{count} entries (room for {room})"));
    }
    let entries = (0..count)
        .map(|i| (be32(b, hdr + i * 8), be32(b, hdr + i * 8 + 4)))
        .collect();
    if node {
        let level = be16(b, info + 2);
        if level == 0 || level > MAX_DA_DEPTH {
            return Err(format!("node at level {level}"));
        }
        Ok(DaBlock::Node { level, entries })
    } else {
        Ok(DaBlock::Leaf { entries, forw })
    }
}

/// The index of the first `(hash, _)` entry whose hash is `>= h` (entries are sorted).
pub(crate) fn lower_bound(entries: &[(u32, u32)], h: u32) -> usize {
    entries.partition_point(|e| e.0 < h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_known_values() {
        // Values printed by xfs_db's `hash` command (xfsprogs 6.1).
        for (name, h) in [
            (&b"lost+found"[..], 0x021a_a60c),
            (b"a", 0x61),
            (b"ab", 0x30e2),
            (b"abc", 0x0018_7163),
            (b"abcd", 0x0c38_b1e4),
            (b"abcde", 0x1c58_f263),
            (b"hello.txt", 0x9d16_8f12),
            (b"file_with_a_long_name_0123", 0xdca1_e06a),
        ] {
            assert_eq!(
                hashname(name, false),
                h,
                "{}",
                String::from_utf8_lossy(name)
            );
        }
        assert_eq!(hashname(b"", false), 0);
        assert_eq!(hashname(b"A", true), hashname(b"a", true));
    }

    fn geo(v5: bool, ftype: bool) -> DirGeo {
        DirGeo {
            v5,
            ftype,
            blksize: 4096,
            asciici: false,
        }
    }

    fn put_entry(b: &mut [u8], pos: usize, ino: u64, name: &[u8], ft: Option<u8>) -> usize {
        b[pos..pos + 8].copy_from_slice(&ino.to_be_bytes());
        b[pos + 8] = name.len() as u8;
        b[pos + 9..pos + 9 + name.len()].copy_from_slice(name);
        if let Some(f) = ft {
            b[pos + 9 + name.len()] = f;
        }
        let sz = entsize(name.len(), ft.is_some());
        b[pos + sz - 2..pos + sz].copy_from_slice(&(pos as u16).to_be_bytes());
        sz
    }

    #[test]
    fn data_block_entries_and_unused() {
        let g = geo(false, true);
        let mut b = vec![0u8; 4096];
        b[0..4].copy_from_slice(&XD2D.to_be_bytes());
        let mut pos = 16;
        pos += put_entry(&mut b, pos, 128, b".", Some(2));
        pos += put_entry(&mut b, pos, 128, b"..", Some(2));
        pos += put_entry(&mut b, pos, 131, b"hello", Some(1));
        // the rest unused
        b[pos..pos + 2].copy_from_slice(&0xffffu16.to_be_bytes());
        b[pos + 2..pos + 4].copy_from_slice(&((4096 - pos) as u16).to_be_bytes());
        let k = data_kind(&b, &g, None).expect("kind");
        assert_eq!(k, DataKind::Data);
        let e = parse_data_block(&b, &g, k).expect("entries");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].1.name, b"hello");
        assert_eq!(e[0].1.ino, 131);
        assert_eq!(e[0].1.ftype, 1);
        // a zero-length unused region is corrupt, not an endless loop
        b[pos + 2..pos + 4].copy_from_slice(&0u16.to_be_bytes());
        assert!(parse_data_block(&b, &g, k).is_err());
    }

    #[test]
    fn entry_at_the_very_end_of_a_block_is_an_error() {
        // Found by the xfs fuzz target: an entry starting 8 bytes before the end of the data
        // area read its name length past the block.
        let g = geo(false, true);
        let mut b = vec![0u8; 4096];
        b[0..4].copy_from_slice(&XD2D.to_be_bytes());
        b[16..18].copy_from_slice(&0xffffu16.to_be_bytes());
        b[18..20].copy_from_slice(&((4096 - 16 - 8) as u16).to_be_bytes());
        // bytes 4088..4096: an entry (not an unused tag) with no room for its name length
        b[4088] = 1;
        assert!(parse_data_block(&b, &g, DataKind::Data).is_err());
        assert!(entry_at(&b, 4088, &g, DataKind::Data).is_err());
    }

    #[test]
    fn shortform() {
        // count 2, i8count 0, parent 128, "a" -> 200 (reg), "bb" -> 201 (dir)
        let mut f = vec![2u8, 0, 0, 0, 0, 128];
        f.extend_from_slice(&[1, 0, 0x30, b'a', 1, 0, 0, 0, 200]);
        f.extend_from_slice(&[2, 0, 0x40, b'b', b'b', 2, 0, 0, 0, 201]);
        let n = f.len() as u64;
        f.resize(300, 0);
        let (p, e) = parse_shortform(&f, n, true).expect("sf");
        assert_eq!(p, 128);
        assert_eq!(e[1].name, b"bb");
        assert_eq!(e[1].ino, 201);
        assert!(parse_shortform(&f, n - 1, true).is_err());
        assert!(parse_shortform(&f, 400, true).is_err());
    }
}
