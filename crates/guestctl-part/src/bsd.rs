//! BSD disklabels (`struct disklabel`, `DISKMAGIC`): the partition table FreeBSD, NetBSD and
//! OpenBSD keep in sector 1 of their MBR slice (or of a whole "dedicated" disk). Pure
//! functions over bytes.

/// `DISKMAGIC`, at the start of the label and again as `d_magic2`.
pub const DISKMAGIC: u32 = 0x8256_4557;
/// The most partitions a label may declare (FreeBSD's `MAXPARTITIONS` is 8, NetBSD 16 or 22,
/// OpenBSD 16).
pub const MAX_PARTITIONS: usize = 22;
/// Offset of the label within its sector (`LABELOFFSET` on x86).
pub const LABEL_OFFSET: usize = 0;

/// One partition of a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Index in the label (0 is `a`, 2 is `c`, the whole slice by convention).
    pub index: usize,
    /// First sector (absolute on NetBSD/OpenBSD; FreeBSD may store it relative to the slice).
    pub offset: u64,
    /// Sectors.
    pub sectors: u64,
    /// `p_fstype` (`FS_BSDFFS` 7, `FS_SWAP` 1, ...).
    pub fstype: u8,
}

/// A parsed label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// `d_secsize`.
    pub sector_size: u32,
    /// Used partitions (`p_size > 0` and `p_fstype != FS_UNUSED`).
    pub entries: Vec<Entry>,
    /// Whether `d_checksum` matched.
    pub checksum_ok: bool,
}

fn u16le(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32le(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// A human name for a `p_fstype`.
pub fn fstype_name(t: u8) -> &'static str {
    match t {
        1 => "BSD swap",
        7 => "4.2BSD",
        8 => "MSDOS",
        9 => "4.4LFS",
        11 => "HPFS",
        12 => "ISO9660",
        13 => "BSD boot",
        17 => "ext2fs",
        18 => "NTFS",
        21 => "ccd",
        22 => "jfs2",
        24 => "Apple UFS",
        27 => "ZFS",
        _ => "BSD partition",
    }
}

/// Parses the label in `sector` (at least 512 bytes, the label at [`LABEL_OFFSET`]).
/// `openbsd` reads OpenBSD's 48-bit sizes and offsets (`p_offseth`/`p_sizeh` in place of
/// `p_fsize`).
pub fn parse(sector: &[u8], openbsd: bool) -> Result<Label, String> {
    let b = sector
        .get(LABEL_OFFSET..)
        .filter(|b| b.len() >= 148)
        .ok_or("sector too short for a disklabel")?;
    if u32le(b, 0) != DISKMAGIC || u32le(b, 132) != DISKMAGIC {
        return Err("no disklabel magic".into());
    }
    let n = usize::from(u16le(b, 138));
    if n == 0 || n > MAX_PARTITIONS {
        return Err(format!(
            "disklabel declares {n} partitions (1..={MAX_PARTITIONS})"
        ));
    }
    let end = 148 + 16 * n;
    if b.len() < end {
        return Err("disklabel partition table runs past its sector".into());
    }
    let sector_size = u32le(b, 40);
    // d_checksum: the XOR of the label's 16-bit words (with the checksum itself as 0).
    let mut x = 0u16;
    for i in (0..end).step_by(2) {
        if i != 136 {
            x ^= u16le(b, i);
        }
    }
    let checksum_ok = x == u16le(b, 136);
    let mut entries = Vec::new();
    for i in 0..n {
        let p = &b[148 + 16 * i..148 + 16 * (i + 1)];
        let mut sectors = u64::from(u32le(p, 0));
        let mut offset = u64::from(u32le(p, 4));
        if openbsd {
            offset |= u64::from(u16le(p, 8)) << 32;
            sectors |= u64::from(u16le(p, 10)) << 32;
        }
        let fstype = p[12];
        if sectors == 0 || fstype == 0 {
            continue;
        }
        entries.push(Entry {
            index: i,
            offset,
            sectors,
            fstype,
        });
    }
    Ok(Label {
        sector_size,
        entries,
        checksum_ok,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(parts: &[(u32, u32, u8)]) -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[0..4].copy_from_slice(&DISKMAGIC.to_le_bytes());
        b[132..136].copy_from_slice(&DISKMAGIC.to_le_bytes());
        b[40..44].copy_from_slice(&512u32.to_le_bytes());
        b[138..140].copy_from_slice(&(parts.len() as u16).to_le_bytes());
        for (i, &(size, off, t)) in parts.iter().enumerate() {
            let o = 148 + 16 * i;
            b[o..o + 4].copy_from_slice(&size.to_le_bytes());
            b[o + 4..o + 8].copy_from_slice(&off.to_le_bytes());
            b[o + 12] = t;
        }
        let end = 148 + 16 * parts.len();
        let mut x = 0u16;
        for i in (0..end).step_by(2) {
            x ^= u16::from_le_bytes([b[i], b[i + 1]]);
        }
        b[136..138].copy_from_slice(&x.to_le_bytes());
        b
    }

    #[test]
    fn parses_and_checks() {
        let b = label(&[(100, 16, 7), (50, 116, 1), (166, 0, 0), (0, 0, 0)]);
        let l = parse(&b, false).expect("label");
        assert!(l.checksum_ok);
        assert_eq!(l.entries.len(), 2);
        assert_eq!((l.entries[1].index, l.entries[1].offset), (1, 116));
        let mut bad = b.clone();
        bad[148] ^= 1;
        assert!(!parse(&bad, false).expect("label").checksum_ok);
        let mut many = b.clone();
        many[138..140].copy_from_slice(&400u16.to_le_bytes());
        assert!(parse(&many, false).is_err());
        assert!(parse(&b[..100], false).is_err());
        assert!(parse(&[0u8; 512], false).is_err());
    }
}
