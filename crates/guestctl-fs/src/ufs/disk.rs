//! UFS on-disk structures parsed from bytes (no I/O): the superblock, UFS1 and UFS2 inodes and
//! directory blocks. Offsets follow the BSD `struct fs`, `struct ufs1_dinode`,
//! `struct ufs2_dinode` and `struct direct`; either byte order is accepted (the superblock's
//! magic says which).

/// UFS1 superblock magic (`FS_UFS1_MAGIC`).
pub const UFS1_MAGIC: u32 = 0x0001_1954;
/// UFS2 superblock magic (`FS_UFS2_MAGIC`).
pub const UFS2_MAGIC: u32 = 0x1954_0119;
/// Where superblocks are looked for, in the order BSD tries them (`SBLOCKSEARCH`).
pub const SUPERBLOCK_OFFSETS: [u64; 4] = [65536, 8192, 0, 262_144];
/// Bytes of the superblock we parse (`SBLOCKSIZE`).
pub const SUPERBLOCK_SIZE: usize = 8192;
/// The root directory's inode number (`UFS_ROOTINO`).
pub const ROOT_INO: u64 = 2;
/// Directory blocks are made of chunks entries never cross (`DIRBLKSIZ`).
pub const DIRBLKSIZ: usize = 512;
/// Direct block pointers in an inode (`UFS_NDADDR`).
pub const NDADDR: usize = 12;
/// Indirect block pointers in an inode (`UFS_NIADDR`).
pub const NIADDR: usize = 3;

/// Byte order of one filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endian {
    /// Big-endian (a filesystem from a sparc64/powerpc machine, or `makefs -B be`).
    pub big: bool,
}

impl Endian {
    /// `u16` at `off`.
    pub fn u16(self, b: &[u8], off: usize) -> u16 {
        let x = [b[off], b[off + 1]];
        if self.big {
            u16::from_be_bytes(x)
        } else {
            u16::from_le_bytes(x)
        }
    }
    /// `u32` at `off`.
    pub fn u32(self, b: &[u8], off: usize) -> u32 {
        let x = [b[off], b[off + 1], b[off + 2], b[off + 3]];
        if self.big {
            u32::from_be_bytes(x)
        } else {
            u32::from_le_bytes(x)
        }
    }
    /// `u64` at `off`.
    pub fn u64(self, b: &[u8], off: usize) -> u64 {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[off..off + 8]);
        if self.big {
            u64::from_be_bytes(x)
        } else {
            u64::from_le_bytes(x)
        }
    }
}

/// The fields of `struct fs` the reader needs, validated so every size and count is sane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// Byte order.
    pub endian: Endian,
    /// UFS2 (64-bit block pointers, 256-byte inodes) rather than UFS1.
    pub ufs2: bool,
    /// Block size in bytes (`fs_bsize`, 4096..=65536).
    pub bsize: u32,
    /// Fragment size in bytes (`fs_fsize`); block addresses count fragments.
    pub fsize: u32,
    /// Fragments per block (`fs_frag`: 1, 2, 4 or 8).
    pub frag: u32,
    /// Cylinder groups (`fs_ncg`).
    pub ncg: u32,
    /// Inodes per cylinder group (`fs_ipg`).
    pub ipg: u32,
    /// Fragments per cylinder group (`fs_fpg`).
    pub fpg: u32,
    /// Offset of the inode blocks in a cylinder group, in fragments (`fs_iblkno`).
    pub iblkno: u32,
    /// UFS1 cylinder-group rotation (`fs_old_cgoffset`, `fs_old_cgmask`).
    pub cgoffset: u32,
    /// See [`Superblock::cgoffset`].
    pub cgmask: u32,
    /// Filesystem size in fragments (`fs_size`, or `fs_old_size` for UFS1).
    pub size_frags: u64,
    /// Free fragments (`fs_cstotal`: free blocks × frag + free fragments).
    pub free_frags: u64,
    /// Symlinks shorter than this are stored in the inode (`fs_maxsymlinklen`).
    pub maxsymlinklen: u32,
    /// Volume name (`fs_volname`), NUL-trimmed.
    pub volname: Vec<u8>,
    /// `fs_id`.
    pub id: [u32; 2],
    /// `fs_clean` (0: not cleanly unmounted).
    pub clean: bool,
    /// `fs_flags` (soft updates, SU+J, ACLs, ...).
    pub flags: u32,
}

impl Superblock {
    /// Bytes of one on-disk inode.
    pub fn inode_size(&self) -> u64 {
        if self.ufs2 {
            256
        } else {
            128
        }
    }
    /// Block pointers per indirect block (`fs_nindir`).
    pub fn nindir(&self) -> u64 {
        u64::from(self.bsize) / if self.ufs2 { 8 } else { 4 }
    }
    /// Inodes per block (`fs_inopb`).
    pub fn inopb(&self) -> u64 {
        u64::from(self.bsize) / self.inode_size()
    }
    /// Number of inodes.
    pub fn inodes(&self) -> u64 {
        u64::from(self.ncg) * u64::from(self.ipg)
    }
    /// Byte offset of inode `ino` on the device (`ino_to_fsba`, `ino_to_fsbo`).
    pub fn inode_offset(&self, ino: u64) -> u64 {
        let ipg = u64::from(self.ipg);
        let cg = ino / ipg;
        let idx = ino % ipg;
        let mut cgstart = cg * u64::from(self.fpg);
        if !self.ufs2 {
            cgstart += u64::from(self.cgoffset) * (cg & !u64::from(self.cgmask));
        }
        let frag = cgstart + u64::from(self.iblkno) + (idx / self.inopb()) * u64::from(self.frag);
        frag * u64::from(self.fsize) + (idx % self.inopb()) * self.inode_size()
    }
}

/// Why a superblock candidate was rejected.
pub type SbError = String;

/// Parses the superblock in `b` (at least [`SUPERBLOCK_SIZE`] bytes would be read from
/// `at`; only the first 1376 are needed). `at` is where it was found (UFS2 records it).
pub fn parse_superblock(b: &[u8], at: u64) -> Result<Superblock, SbError> {
    if b.len() < 1376 {
        return Err("superblock too short".into());
    }
    let (endian, magic) = {
        let le = Endian { big: false };
        let be = Endian { big: true };
        let m = le.u32(b, 1372);
        if m == UFS1_MAGIC || m == UFS2_MAGIC {
            (le, m)
        } else {
            let m = be.u32(b, 1372);
            if m == UFS1_MAGIC || m == UFS2_MAGIC {
                (be, m)
            } else {
                return Err("no UFS magic".into());
            }
        }
    };
    let e = endian;
    let ufs2 = magic == UFS2_MAGIC;
    let bsize = e.u32(b, 48);
    let fsize = e.u32(b, 52);
    let frag = e.u32(b, 56);
    if !bsize.is_power_of_two() || !(4096..=65536).contains(&bsize) {
        return Err(format!(
            "block size {bsize} is not a power of two in 4096..=65536"
        ));
    }
    if !fsize.is_power_of_two() || fsize < 512 || fsize > bsize || bsize / fsize != frag {
        return Err(format!(
            "fragment size {fsize} with {frag} fragments per {bsize}-byte block is inconsistent"
        ));
    }
    if frag > 8 {
        return Err(format!("{frag} fragments per block (at most 8)"));
    }
    let ncg = e.u32(b, 44);
    let ipg = e.u32(b, 184);
    let fpg = e.u32(b, 188);
    let iblkno = e.u32(b, 16);
    let inode_size: u64 = if ufs2 { 256 } else { 128 };
    let inopb = u64::from(bsize) / inode_size;
    if ncg == 0 || ipg == 0 || fpg == 0 {
        return Err(format!(
            "{ncg} cylinder groups of {ipg} inodes and {fpg} fragments"
        ));
    }
    if u64::from(ipg) % inopb != 0 {
        return Err(format!(
            "{ipg} inodes per group is not a whole number of blocks"
        ));
    }
    if u64::from(iblkno) + u64::from(ipg) / inopb * u64::from(frag) > u64::from(fpg) {
        return Err(format!(
            "inode blocks (from fragment {iblkno}) do not fit in a {fpg}-fragment cylinder group"
        ));
    }
    let size_frags = if ufs2 {
        e.u64(b, 1080)
    } else {
        u64::from(e.u32(b, 36))
    };
    // Every group but the last is whole; the groups must cover the filesystem.
    let span = u64::from(ncg) * u64::from(fpg);
    if size_frags == 0 || span < size_frags || span - size_frags >= u64::from(fpg) + 4096 {
        return Err(format!(
            "{ncg} cylinder groups of {fpg} fragments do not match a size of {size_frags} fragments"
        ));
    }
    if u64::from(ncg) * u64::from(ipg) > u64::from(u32::MAX) {
        return Err("more than 2^32 inodes".into());
    }
    if ufs2 {
        let loc = e.u64(b, 1000);
        if loc != 0 && loc != at {
            return Err(format!("UFS2 superblock at {at} says it lives at {loc}"));
        }
    }
    let (nbfree, nffree) = if ufs2 {
        (e.u64(b, 1008 + 8), e.u64(b, 1008 + 24))
    } else {
        (u64::from(e.u32(b, 196)), u64::from(e.u32(b, 204)))
    };
    let maxsymlinklen = e.u32(b, 1320);
    let inodefmt = e.u32(b, 1324);
    if !ufs2 && inodefmt != 2 {
        return Err(format!(
            "UFS1 inode format {inodefmt}: only the 4.4BSD format (2) is read"
        ));
    }
    let volname = {
        let v = &b[680..712];
        let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
        v[..end].to_vec()
    };
    Ok(Superblock {
        endian,
        ufs2,
        bsize,
        fsize,
        frag,
        ncg,
        ipg,
        fpg,
        iblkno,
        cgoffset: e.u32(b, 24),
        cgmask: e.u32(b, 28),
        size_frags,
        free_frags: nbfree
            .saturating_mul(u64::from(frag))
            .saturating_add(nffree)
            .min(size_frags),
        maxsymlinklen: if maxsymlinklen <= if ufs2 { 120 } else { 60 } {
            maxsymlinklen
        } else {
            0
        },
        volname,
        id: [e.u32(b, 144), e.u32(b, 148)],
        clean: b[209] != 0,
        flags: e.u32(b, 1312),
    })
}

/// A time: seconds and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    /// Seconds since the epoch.
    pub secs: i64,
    /// Nanoseconds (clamped below 10^9).
    pub nanos: u32,
}

/// An inode (either version), as the reader needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    /// `di_mode`: `IFMT` and permission bits.
    pub mode: u16,
    /// `di_nlink`.
    pub nlink: u16,
    /// `di_uid`, `di_gid`.
    pub uid: u32,
    /// See [`Inode::uid`].
    pub gid: u32,
    /// `di_size`.
    pub size: u64,
    /// `di_blocks` (512-byte units).
    pub blocks: u64,
    /// Times; UFS1 has no birth time.
    pub atime: Time,
    /// See [`Inode::atime`].
    pub mtime: Time,
    /// See [`Inode::atime`].
    pub ctime: Time,
    /// See [`Inode::atime`].
    pub birthtime: Option<Time>,
    /// `di_flags` (chflags).
    pub flags: u32,
    /// Direct block addresses (fragments).
    pub db: [u64; NDADDR],
    /// Indirect block addresses (fragments).
    pub ib: [u64; NIADDR],
    /// The raw pointer area (a short symlink's target lives there).
    pub inline: Vec<u8>,
    /// `di_extsize` (UFS2 extended attribute area), 0 for UFS1.
    pub extsize: u32,
}

fn time(secs: i64, nanos: u32) -> Time {
    Time {
        secs,
        nanos: nanos.min(999_999_999),
    }
}

/// Parses one inode of `sb`'s version from `b` (128 or 256 bytes).
pub fn parse_inode(sb: &Superblock, b: &[u8]) -> Inode {
    let e = sb.endian;
    if sb.ufs2 {
        let mut db = [0u64; NDADDR];
        let mut ib = [0u64; NIADDR];
        for (i, d) in db.iter_mut().enumerate() {
            *d = e.u64(b, 112 + 8 * i);
        }
        for (i, d) in ib.iter_mut().enumerate() {
            *d = e.u64(b, 208 + 8 * i);
        }
        Inode {
            mode: e.u16(b, 0),
            nlink: e.u16(b, 2),
            uid: e.u32(b, 4),
            gid: e.u32(b, 8),
            size: e.u64(b, 16),
            blocks: e.u64(b, 24),
            atime: time(e.u64(b, 32) as i64, e.u32(b, 68)),
            mtime: time(e.u64(b, 40) as i64, e.u32(b, 64)),
            ctime: time(e.u64(b, 48) as i64, e.u32(b, 72)),
            birthtime: Some(time(e.u64(b, 56) as i64, e.u32(b, 76))),
            flags: e.u32(b, 88),
            db,
            ib,
            inline: b[112..232].to_vec(),
            extsize: e.u32(b, 92),
        }
    } else {
        let mut db = [0u64; NDADDR];
        let mut ib = [0u64; NIADDR];
        for (i, d) in db.iter_mut().enumerate() {
            *d = u64::from(e.u32(b, 40 + 4 * i));
        }
        for (i, d) in ib.iter_mut().enumerate() {
            *d = u64::from(e.u32(b, 88 + 4 * i));
        }
        Inode {
            mode: e.u16(b, 0),
            nlink: e.u16(b, 2),
            uid: e.u32(b, 112),
            gid: e.u32(b, 116),
            size: e.u64(b, 8),
            blocks: u64::from(e.u32(b, 104)),
            atime: time(i64::from(e.u32(b, 16) as i32), e.u32(b, 20)),
            mtime: time(i64::from(e.u32(b, 24) as i32), e.u32(b, 28)),
            ctime: time(i64::from(e.u32(b, 32) as i32), e.u32(b, 36)),
            birthtime: None,
            flags: e.u32(b, 100),
            db,
            ib,
            inline: b[40..100].to_vec(),
            extsize: 0,
        }
    }
}

/// One directory entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDirEntry {
    /// `d_ino`.
    pub ino: u32,
    /// `d_type` (`DT_*`).
    pub dtype: u8,
    /// The name.
    pub name: Vec<u8>,
}

/// Parses the directory entries of `data` (whole [`DIRBLKSIZ`] chunks; a short tail is
/// ignored). Empty slots (`d_ino == 0`) are skipped; `.` and `..` are returned like the rest.
/// A malformed entry is an error naming its byte offset within `data`.
pub fn parse_dir(e: Endian, data: &[u8]) -> Result<Vec<RawDirEntry>, (usize, String)> {
    let mut out = Vec::new();
    for (c, chunk) in data.chunks_exact(DIRBLKSIZ).enumerate() {
        let mut off = 0usize;
        while off < DIRBLKSIZ {
            let at = c * DIRBLKSIZ + off;
            if DIRBLKSIZ - off < 8 {
                return Err((at, "directory entry header crosses a 512-byte chunk".into()));
            }
            let ino = e.u32(chunk, off);
            let reclen = usize::from(e.u16(chunk, off + 4));
            let dtype = chunk[off + 6];
            let namlen = usize::from(chunk[off + 7]);
            if reclen < 8 || reclen % 4 != 0 || off + reclen > DIRBLKSIZ {
                return Err((at, format!("directory entry length {reclen} is invalid")));
            }
            if ino != 0 {
                if 8 + namlen > reclen {
                    return Err((
                        at,
                        format!("name of {namlen} bytes does not fit a {reclen}-byte entry"),
                    ));
                }
                let name = &chunk[off + 8..off + 8 + namlen];
                if namlen == 0 || name.contains(&0) || name.contains(&b'/') {
                    return Err((at, "directory entry with an empty or invalid name".into()));
                }
                out.push(RawDirEntry {
                    ino,
                    dtype,
                    name: name.to_vec(),
                });
            }
            off += reclen;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb_bytes(ufs2: bool) -> Vec<u8> {
        let mut b = vec![0u8; SUPERBLOCK_SIZE];
        let put =
            |b: &mut Vec<u8>, off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
        put(&mut b, 48, 32768);
        put(&mut b, 52, 4096);
        put(&mut b, 56, 8);
        put(&mut b, 44, 4);
        put(&mut b, 184, 1024);
        put(&mut b, 188, 16384);
        put(&mut b, 16, 40);
        put(&mut b, 1324, 2);
        put(&mut b, 1320, if ufs2 { 120 } else { 60 });
        if ufs2 {
            b[1080..1088].copy_from_slice(&60000u64.to_le_bytes());
            b[1000..1008].copy_from_slice(&65536u64.to_le_bytes());
            put(&mut b, 1372, UFS2_MAGIC);
        } else {
            put(&mut b, 36, 60000);
            put(&mut b, 1372, UFS1_MAGIC);
        }
        b
    }

    #[test]
    fn superblock_is_validated() {
        let sb = parse_superblock(&sb_bytes(true), 65536).expect("ufs2");
        assert!(sb.ufs2);
        assert_eq!(sb.nindir(), 4096);
        assert_eq!(sb.inopb(), 128);
        // Inode 2 of group 0: iblkno 40 fragments of 4096 bytes, 256 bytes per inode.
        assert_eq!(sb.inode_offset(2), 40 * 4096 + 512);
        assert_eq!(sb.inode_offset(1024), 16384 * 4096 + 40 * 4096);
        assert!(
            parse_superblock(&sb_bytes(true), 8192).is_err(),
            "wrong location"
        );
        let sb1 = parse_superblock(&sb_bytes(false), 8192).expect("ufs1");
        assert!(!sb1.ufs2);
        for (off, v) in [
            (48usize, 3000u32),
            (52, 8192 * 8),
            (44, 0),
            (184, 1000),
            (188, 10),
        ] {
            let mut b = sb_bytes(true);
            b[off..off + 4].copy_from_slice(&v.to_le_bytes());
            assert!(parse_superblock(&b, 65536).is_err(), "field at {off} = {v}");
        }
        let mut b = sb_bytes(false);
        b[1324..1328].copy_from_slice(&1u32.to_le_bytes());
        assert!(parse_superblock(&b, 8192).is_err(), "old inode format");
        assert!(parse_superblock(&[0u8; 100], 0).is_err());
    }

    #[test]
    fn big_endian_superblock() {
        let le = sb_bytes(false);
        let mut be = le.clone();
        for off in [48usize, 52, 56, 44, 184, 188, 16, 1324, 1320, 36, 1372] {
            let v = u32::from_le_bytes([le[off], le[off + 1], le[off + 2], le[off + 3]]);
            be[off..off + 4].copy_from_slice(&v.to_be_bytes());
        }
        let sb = parse_superblock(&be, 8192).expect("be");
        assert!(sb.endian.big);
        assert_eq!(sb.bsize, 32768);
    }

    #[test]
    fn directory_chunks() {
        let e = Endian { big: false };
        let mut d = vec![0u8; 1024];
        let mut put = |off: usize, ino: u32, reclen: u16, t: u8, name: &[u8]| {
            d[off..off + 4].copy_from_slice(&ino.to_le_bytes());
            d[off + 4..off + 6].copy_from_slice(&reclen.to_le_bytes());
            d[off + 6] = t;
            d[off + 7] = name.len() as u8;
            d[off + 8..off + 8 + name.len()].copy_from_slice(name);
        };
        put(0, 2, 12, 4, b".");
        put(12, 0, 20, 0, b"");
        put(32, 5, 480, 8, b"file");
        put(512, 6, 512, 10, b"link");
        let v = parse_dir(e, &d).expect("dir");
        let names: Vec<&[u8]> = v.iter().map(|x| x.name.as_slice()).collect();
        assert_eq!(names, [&b"."[..], b"file", b"link"]);
        let mut bad = d.clone();
        bad[516..518].copy_from_slice(&600u16.to_le_bytes());
        assert_eq!(parse_dir(e, &bad).expect_err("crosses").0, 512);
        let mut bad = d.clone();
        bad[32 + 7] = 255;
        bad[32 + 4..32 + 6].copy_from_slice(&12u16.to_le_bytes());
        assert!(parse_dir(e, &bad).is_err());
    }
}
