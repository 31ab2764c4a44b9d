//! UFS1 and UFS2 — the BSD Fast File System of FreeBSD, NetBSD, OpenBSD and DragonFly —
//! read-only, in process.
//!
//! [`UfsFs::open`] finds the superblock where BSD looks for it (64 KiB, 8 KiB, 0, 256 KiB), in
//! either byte order, validates its geometry, and serves the [`Filesystem`] trait: inodes
//! located by cylinder group, files mapped through their direct, single, double and triple
//! indirect block pointers (holes read as zeros, fragments for the tail), 4.4BSD directories
//! (`d_type` + `d_namlen` entries in 512-byte chunks), short symlinks stored in the inode
//! (`fs_maxsymlinklen`) and long ones in blocks, device numbers, birth times (UFS2).
//!
//! A [`NodeId`] is the inode number; the root is inode 2. Every block address is checked
//! against the filesystem size before it is read, indirect blocks are cached (bounded), a
//! directory is at most [`MAX_DIR_BYTES`], and a bad inode or directory is an error for that
//! node only. Not read: UFS2 extended attributes (the `di_extb` area), the soft-updates
//! journal (SU+J: a filesystem not cleanly unmounted is read as it is, with a note),
//! snapshots, and the pre-4.4BSD UFS1 inode format.

mod disk;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use guestctl_block::BlockDevice;

pub use self::disk::{parse_dir, parse_inode, parse_superblock, Inode, Superblock};
use self::disk::{RawDirEntry, NDADDR, ROOT_INO, SUPERBLOCK_OFFSETS, SUPERBLOCK_SIZE};
use crate::{
    DirEntry, Error, ErrorKind, FileType, Filesystem, FsInfo, Metadata, NodeId, OpenOptions,
    Result, Timestamp, Xattr,
};

/// Where superblocks are looked for, in order.
pub fn disk_offsets() -> [u64; 4] {
    SUPERBLOCK_OFFSETS
}

/// The largest directory read (BSD directories of millions of entries are this size).
pub const MAX_DIR_BYTES: u64 = 256 << 20;
/// The longest symlink target read (`MAXPATHLEN` is 1024 on the BSDs).
pub const MAX_SYMLINK: u64 = 4096;
/// Indirect blocks kept in the cache (emptied when full).
const MAX_CACHED_INDIRECT: usize = 1024;

/// A UFS1/UFS2 filesystem opened read-only. `Send + Sync`.
#[derive(Debug)]
pub struct UfsFs {
    dev: Arc<dyn BlockDevice>,
    sb: Superblock,
    notes: Vec<String>,
    indirect: Mutex<HashMap<u64, Arc<Vec<u8>>>>,
}

fn corrupt(structure: &'static str, offset: u64, msg: impl Into<String>) -> Error {
    Error::corrupt(msg.into()).structure(structure).at(offset)
}

fn ts(t: disk::Time) -> Timestamp {
    Timestamp {
        secs: t.secs,
        nanos: t.nanos,
    }
}

fn file_type(mode: u16) -> FileType {
    FileType::from_mode(u32::from(mode))
}

impl UfsFs {
    /// Opens the UFS filesystem on `dev`.
    pub fn open(dev: Arc<dyn BlockDevice>, opts: &OpenOptions) -> Result<UfsFs> {
        let _ = opts; // UFS has no metadata checksums we verify and no journal we replay.
        let mut tried = Vec::new();
        let mut found = None;
        for at in SUPERBLOCK_OFFSETS {
            if at + SUPERBLOCK_SIZE as u64 > dev.size() {
                continue;
            }
            let mut b = vec![0u8; SUPERBLOCK_SIZE];
            dev.read_exact_at(at, &mut b)
                .map_err(|e| Error::from(e).structure("UFS superblock").at(at))?;
            match parse_superblock(&b, at) {
                Ok(sb) => {
                    found = Some(sb);
                    break;
                }
                Err(why) => tried.push(format!("at {at}: {why}")),
            }
        }
        let Some(sb) = found else {
            return Err(corrupt(
                "UFS superblock",
                0,
                format!("no valid UFS superblock ({})", tried.join("; ")),
            ));
        };
        let mut notes = Vec::new();
        let bytes = sb.size_frags.saturating_mul(u64::from(sb.fsize));
        if dev.size() < bytes {
            notes.push(format!(
                "the device ({} bytes) is smaller than the filesystem ({bytes} bytes): reads past its end fail",
                dev.size()
            ));
        }
        if !sb.clean {
            notes.push(
                "the filesystem was not cleanly unmounted (fsck was due): it is read as it is on disk"
                    .into(),
            );
        }
        if sb.flags & 0x08 != 0 {
            notes.push("soft updates journal (SU+J) present: not replayed".into());
        }
        let fs = UfsFs {
            dev,
            sb,
            notes,
            indirect: Mutex::new(HashMap::new()),
        };
        let root = fs.inode(ROOT_INO)?;
        if file_type(root.mode) != FileType::Directory {
            return Err(corrupt(
                "UFS root inode",
                fs.sb.inode_offset(ROOT_INO),
                "inode 2 (the root) is not a directory",
            ));
        }
        Ok(fs)
    }

    /// The parsed superblock.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// Reads inode `ino`.
    pub fn inode(&self, ino: u64) -> Result<Inode> {
        if ino < ROOT_INO || ino >= self.sb.inodes() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("inode {ino} is outside 2..{}", self.sb.inodes()),
            )
            .inode(ino));
        }
        let at = self.sb.inode_offset(ino);
        let mut b = vec![0u8; self.sb.inode_size() as usize];
        self.dev
            .read_exact_at(at, &mut b)
            .map_err(|e| Error::from(e).structure("UFS inode").at(at).inode(ino))?;
        let i = parse_inode(&self.sb, &b);
        if i.mode == 0 {
            return Err(corrupt("UFS inode", at, "inode is not in use (mode 0)").inode(ino));
        }
        Ok(i)
    }

    fn frag_offset(&self, addr: u64, what: &'static str, ino: u64) -> Result<u64> {
        if addr >= self.sb.size_frags {
            return Err(corrupt(
                what,
                self.sb.inode_offset(ino),
                format!(
                    "block address {addr} is past the end of the filesystem ({} fragments)",
                    self.sb.size_frags
                ),
            )
            .inode(ino));
        }
        Ok(addr * u64::from(self.sb.fsize))
    }

    /// Entry `index` of the indirect block at fragment `addr`.
    fn indirect_entry(&self, addr: u64, index: u64, ino: u64) -> Result<u64> {
        let cached = self
            .indirect
            .lock()
            .map_err(|_| Error::new(ErrorKind::Io, "indirect block cache poisoned"))?
            .get(&addr)
            .cloned();
        let block = match cached {
            Some(b) => b,
            None => {
                let at = self.frag_offset(addr, "UFS indirect block", ino)?;
                let mut b = vec![0u8; self.sb.bsize as usize];
                self.dev.read_exact_at(at, &mut b).map_err(|e| {
                    Error::from(e)
                        .structure("UFS indirect block")
                        .at(at)
                        .inode(ino)
                })?;
                let b = Arc::new(b);
                let mut c = self
                    .indirect
                    .lock()
                    .map_err(|_| Error::new(ErrorKind::Io, "indirect block cache poisoned"))?;
                if c.len() >= MAX_CACHED_INDIRECT {
                    c.clear();
                }
                c.insert(addr, b.clone());
                b
            }
        };
        let e = self.sb.endian;
        let i = index as usize;
        Ok(if self.sb.ufs2 {
            e.u64(&block, i * 8)
        } else {
            u64::from(e.u32(&block, i * 4))
        })
    }

    /// The fragment address of logical block `lbn` of `inode` (0: a hole).
    fn block_addr(&self, inode: &Inode, ino: u64, lbn: u64) -> Result<u64> {
        if lbn < NDADDR as u64 {
            return Ok(inode.db[lbn as usize]);
        }
        let n = self.sb.nindir();
        let mut rest = lbn - NDADDR as u64;
        let mut span = n; // blocks addressed by one pointer at this level
        for (level, &top) in inode.ib.iter().enumerate() {
            if rest < span {
                let mut addr = top;
                let mut per = span / n; // blocks below each entry of the current block
                for _ in 0..=level {
                    if addr == 0 {
                        return Ok(0);
                    }
                    addr = self.indirect_entry(addr, rest / per, ino)?;
                    rest %= per;
                    per /= n;
                    if per == 0 {
                        per = 1;
                    }
                }
                return Ok(addr);
            }
            rest -= span;
            span = span.saturating_mul(n);
        }
        Err(corrupt(
            "UFS inode",
            self.sb.inode_offset(ino),
            format!("logical block {lbn} is beyond what triple indirection addresses"),
        )
        .inode(ino))
    }

    /// Reads `buf.len()` bytes of `inode` at `offset` (within its size).
    fn read_inode_data(&self, inode: &Inode, ino: u64, offset: u64, buf: &mut [u8]) -> Result<()> {
        let bs = u64::from(self.sb.bsize);
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let lbn = pos / bs;
            let within = pos % bs;
            let n = ((bs - within) as usize).min(buf.len() - done);
            let addr = self.block_addr(inode, ino, lbn)?;
            let mut n = n;
            if addr != 0 {
                // Coalesce the following blocks while they are contiguous on disk.
                let frag = u64::from(self.sb.frag);
                let mut next = lbn + 1;
                while done + n < buf.len()
                    && n < (8 << 20)
                    && self.block_addr(inode, ino, next)? == addr + (next - lbn) * frag
                {
                    n = (n + bs as usize).min(buf.len() - done);
                    next += 1;
                }
            }
            let out = &mut buf[done..done + n];
            if addr == 0 {
                out.fill(0);
            } else {
                let at = self.frag_offset(addr, "UFS data block", ino)? + within;
                self.dev
                    .read_exact_at(at, out)
                    .map_err(|e| Error::from(e).structure("UFS data block").at(at).inode(ino))?;
            }
            done += n;
        }
        Ok(())
    }

    fn dir_entries(&self, ino: u64) -> Result<Vec<RawDirEntry>> {
        let inode = self.inode(ino)?;
        if file_type(inode.mode) != FileType::Directory {
            return Err(Error::new(ErrorKind::NotADirectory, "not a directory").inode(ino));
        }
        if inode.size > MAX_DIR_BYTES {
            return Err(Error::limit(format!(
                "directory of {} bytes (at most {MAX_DIR_BYTES} are read)",
                inode.size
            ))
            .inode(ino));
        }
        let mut data = vec![0u8; inode.size as usize];
        self.read_inode_data(&inode, ino, 0, &mut data)?;
        parse_dir(self.sb.endian, &data).map_err(|(off, why)| {
            Error::corrupt(why)
                .structure("UFS directory")
                .inode(ino)
                .at(off as u64)
        })
    }

    /// Whether a symlink's target is stored in the inode itself.
    fn short_symlink(&self, inode: &Inode) -> bool {
        let max = u64::from(self.sb.maxsymlinklen);
        (max > 0 && inode.size < max) || (max == 0 && inode.blocks == 0)
    }
}

impl Filesystem for UfsFs {
    fn info(&self) -> FsInfo {
        let fsize = u64::from(self.sb.fsize);
        FsInfo {
            fs_type: "ufs".into(),
            label: String::from_utf8_lossy(&self.sb.volname).into_owned(),
            uuid: format!("{:08x}{:08x}", self.sb.id[0], self.sb.id[1]),
            block_size: self.sb.bsize,
            size: self.sb.size_frags * fsize,
            free: Some(self.sb.free_frags * fsize),
            notes: self.notes.clone(),
        }
    }

    fn root(&self) -> NodeId {
        NodeId(ROOT_INO)
    }

    fn metadata(&self, node: NodeId) -> Result<Metadata> {
        let i = self.inode(node.0)?;
        let ft = file_type(i.mode);
        let rdev = matches!(ft, FileType::CharDevice | FileType::BlockDevice).then(|| {
            // The device number lives in the first block pointer (32 bits).
            let x = i.db[0] as u32;
            ((x >> 8) & 0xfff, (x & 0xff) | ((x >> 12) & 0xfff00))
        });
        Ok(Metadata {
            file_type: ft,
            size: if rdev.is_some() { 0 } else { i.size },
            mode: u32::from(i.mode) & 0o7777,
            uid: i.uid,
            gid: i.gid,
            nlink: u32::from(i.nlink),
            inode: node.0,
            atime: Some(ts(i.atime)),
            mtime: Some(ts(i.mtime)),
            ctime: Some(ts(i.ctime)),
            crtime: i.birthtime.map(ts),
            rdev,
            allocated: i.blocks.saturating_mul(512),
        })
    }

    fn read_dir(&self, dir: NodeId) -> Result<Vec<DirEntry>> {
        let max = self.sb.inodes();
        let mut out = Vec::new();
        for e in self.dir_entries(dir.0)? {
            if e.name == b"." || e.name == b".." || e.dtype == 14 {
                continue; // 14: DT_WHT, a union-mount whiteout
            }
            if u64::from(e.ino) < ROOT_INO || u64::from(e.ino) >= max {
                return Err(corrupt(
                    "UFS directory",
                    0,
                    format!(
                        "entry {:?} names inode {}, outside 2..{max}",
                        String::from_utf8_lossy(&e.name),
                        e.ino
                    ),
                )
                .inode(dir.0));
            }
            let file_type = match e.dtype {
                1 => FileType::Fifo,
                2 => FileType::CharDevice,
                4 => FileType::Directory,
                6 => FileType::BlockDevice,
                8 => FileType::Regular,
                10 => FileType::Symlink,
                12 => FileType::Socket,
                _ => FileType::Unknown,
            };
            out.push(DirEntry {
                name: e.name,
                node: NodeId(u64::from(e.ino)),
                file_type,
            });
        }
        Ok(out)
    }

    fn read_at(&self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let i = self.inode(node.0)?;
        match file_type(i.mode) {
            FileType::Directory => {
                return Err(Error::new(ErrorKind::IsADirectory, "is a directory").inode(node.0))
            }
            FileType::Regular => {}
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "only regular files have contents to read",
                )
                .inode(node.0))
            }
        }
        if offset >= i.size || buf.is_empty() {
            return Ok(0);
        }
        let n = (i.size - offset).min(buf.len() as u64) as usize;
        self.read_inode_data(&i, node.0, offset, &mut buf[..n])?;
        Ok(n)
    }

    fn read_link(&self, node: NodeId) -> Result<Vec<u8>> {
        let i = self.inode(node.0)?;
        if file_type(i.mode) != FileType::Symlink {
            return Err(Error::new(ErrorKind::InvalidInput, "not a symbolic link").inode(node.0));
        }
        if i.size > MAX_SYMLINK {
            return Err(Error::limit(format!(
                "symlink target of {} bytes (at most {MAX_SYMLINK})",
                i.size
            ))
            .inode(node.0));
        }
        if self.short_symlink(&i) {
            let n = (i.size as usize).min(i.inline.len());
            return Ok(i.inline[..n].to_vec());
        }
        let mut t = vec![0u8; i.size as usize];
        self.read_inode_data(&i, node.0, 0, &mut t)?;
        Ok(t)
    }

    fn xattrs(&self, node: NodeId) -> Result<Vec<Xattr>> {
        let _ = node;
        Ok(Vec::new())
    }
}

/// Fuzzing entry point: opens `data` as a UFS image and walks it with bounded effort. Never
/// panics on any input; that is what the fuzz target and the hostile tests check.
#[doc(hidden)]
pub fn fuzz_walk(data: &[u8]) {
    let dev: Arc<dyn BlockDevice> = Arc::new(guestctl_block::MemoryDevice::new(data.to_vec()));
    if let Ok(fs) = UfsFs::open(dev, &OpenOptions::default()) {
        crate::fuzz_walk_tree(&fs);
    }
}
