//! Read-only, in-process filesystem readers for guestctl, behind one [`Filesystem`] trait.
//!
//! Filesystems sit on a [`guestctl_block::BlockDevice`] (a whole disk or a partition slice) and
//! never write to it: a dirty ext3/ext4 journal is replayed into an in-memory overlay, exactly
//! as the kernel would see the filesystem after recovery, and the image stays untouched.
//!
//! Nodes are addressed by [`NodeId`] (the inode number on ext2/3/4). Every handle is
//! `Send + Sync`, so rayon workers share one `Arc<dyn Filesystem>`.
//!
//! Images come from strangers: every size, count, depth and on-disk link is bounded, and a
//! corrupt inode or directory is an error for that node only. What is refused (per filesystem:
//! ext compression, dirdata, external journals; per file: encrypted contents) is refused with
//! [`ErrorKind::Unsupported`], never returned wrong.
//!

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bytes;
mod cache;
mod error;
pub mod ext;
pub mod fat;
pub mod mount;
pub mod ntfs;
mod path;
pub mod probe;
pub mod ufs;
pub mod walk;
pub mod xfs;

use std::fmt::Debug;

pub use error::{Error, ErrorKind, Result};
pub use path::{resolve_path, MAX_SYMLINKS};

/// Identifies a node (file, directory, link, ...) inside one filesystem: the inode number on
/// ext2/3/4. Only meaningful for the filesystem that returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u64);

/// The type of a node, as `ls -l` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileType {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A UNIX socket.
    Socket,
    /// A type the directory entry or inode does not say (or says something invalid).
    Unknown,
}

impl FileType {
    /// The short name used in JSON output: `file`, `directory`, `symlink`, `chardev`,
    /// `blockdev`, `fifo`, `socket`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::Regular => "file",
            FileType::Directory => "directory",
            FileType::Symlink => "symlink",
            FileType::CharDevice => "chardev",
            FileType::BlockDevice => "blockdev",
            FileType::Fifo => "fifo",
            FileType::Socket => "socket",
            FileType::Unknown => "unknown",
        }
    }

    /// The type letter of `find -printf %y`: `f`, `d`, `l`, `c`, `b`, `p`, `s` (`?` when
    /// unknown). `ls -l` shows `-` for regular files instead.
    pub fn type_char(self) -> char {
        match self {
            FileType::Regular => 'f',
            FileType::Directory => 'd',
            FileType::Symlink => 'l',
            FileType::CharDevice => 'c',
            FileType::BlockDevice => 'b',
            FileType::Fifo => 'p',
            FileType::Socket => 's',
            FileType::Unknown => '?',
        }
    }

    /// The type from the `S_IFMT` bits of a POSIX mode.
    pub fn from_mode(mode: u32) -> FileType {
        match mode & 0o170000 {
            0o100000 => FileType::Regular,
            0o040000 => FileType::Directory,
            0o120000 => FileType::Symlink,
            0o020000 => FileType::CharDevice,
            0o060000 => FileType::BlockDevice,
            0o010000 => FileType::Fifo,
            0o140000 => FileType::Socket,
            _ => FileType::Unknown,
        }
    }
}

/// A point in time: seconds since the UNIX epoch (may be negative) and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub secs: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub nanos: u32,
}

/// What `stat` says about a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// The node's type.
    pub file_type: FileType,
    /// Size in bytes (for symlinks: the length of the target).
    pub size: u64,
    /// Permission bits (`0o7777`: setuid, setgid, sticky, rwx).
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Number of hard links.
    pub nlink: u32,
    /// Inode number (or the filesystem's equivalent).
    pub inode: u64,
    /// Last access.
    pub atime: Option<Timestamp>,
    /// Last content modification.
    pub mtime: Option<Timestamp>,
    /// Last status change.
    pub ctime: Option<Timestamp>,
    /// Creation ("birth") time, where the filesystem records it.
    pub crtime: Option<Timestamp>,
    /// Device number `(major, minor)` of character and block devices.
    pub rdev: Option<(u32, u32)>,
    /// Space allocated to the node, in bytes (as `st_blocks * 512`).
    pub allocated: u64,
}

impl Metadata {
    /// `S_IFMT` bits plus permission bits, as `st_mode`.
    pub fn st_mode(&self) -> u32 {
        let ifmt = match self.file_type {
            FileType::Regular => 0o100000,
            FileType::Directory => 0o040000,
            FileType::Symlink => 0o120000,
            FileType::CharDevice => 0o020000,
            FileType::BlockDevice => 0o060000,
            FileType::Fifo => 0o010000,
            FileType::Socket => 0o140000,
            FileType::Unknown => 0,
        };
        ifmt | (self.mode & 0o7777)
    }
}

/// One entry of a directory (never `.` or `..`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The name as stored (raw bytes: guest names need not be UTF-8).
    pub name: Vec<u8>,
    /// The node the entry points at.
    pub node: NodeId,
    /// The type recorded in the entry ([`FileType::Unknown`] when the filesystem does not
    /// record types in entries; ask [`Filesystem::metadata`] then).
    pub file_type: FileType,
}

/// One extended attribute, with its full name (`user.foo`, `security.selinux`,
/// `system.posix_acl_access`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xattr {
    /// Full name with namespace prefix.
    pub name: Vec<u8>,
    /// The value as `getfattr` shows it (POSIX ACLs in the kernel's `posix_acl_xattr` form).
    pub value: Vec<u8>,
}

/// One named data stream of a file (an NTFS alternate data stream). The unnamed default
/// stream is the file's content and is not listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream's name (`Zone.Identifier`, ...).
    pub name: Vec<u8>,
    /// Its size in bytes.
    pub size: u64,
}

/// Facts about a whole filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FsInfo {
    /// `ext2`, `ext3`, `ext4`, `vfat`, `ntfs`, ...
    pub fs_type: String,
    /// Volume label (may be empty).
    pub label: String,
    /// UUID or serial as `blkid` prints it (may be empty).
    pub uuid: String,
    /// Block (cluster) size in bytes.
    pub block_size: u32,
    /// Total size in bytes.
    pub size: u64,
    /// Free bytes, where known.
    pub free: Option<u64>,
    /// What happened while opening that a user should know (journal replayed, checksums
    /// ignored, unknown features, ...).
    pub notes: Vec<String>,
}

/// How to open a filesystem.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Verify metadata checksums (default true). When false, mismatches are ignored.
    pub verify_checksums: bool,
    /// Replay a dirty journal into memory (default true). When false the filesystem is read
    /// as it is on disk, which may be inconsistent.
    pub replay_journal: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            verify_checksums: true,
            replay_journal: true,
        }
    }
}

impl OpenOptions {
    /// Sets [`OpenOptions::verify_checksums`].
    #[must_use]
    pub fn verify_checksums(mut self, on: bool) -> Self {
        self.verify_checksums = on;
        self
    }
    /// Sets [`OpenOptions::replay_journal`].
    #[must_use]
    pub fn replay_journal(mut self, on: bool) -> Self {
        self.replay_journal = on;
        self
    }
}

/// A read-only filesystem. Implementations are `Send + Sync`: share one handle between threads.
pub trait Filesystem: Send + Sync + Debug {
    /// Facts about the filesystem (type, label, UUID, sizes, notes from opening).
    fn info(&self) -> FsInfo;

    /// The root directory.
    fn root(&self) -> NodeId;

    /// What `stat` says about `node`.
    fn metadata(&self, node: NodeId) -> Result<Metadata>;

    /// The entries of directory `dir`, without `.` and `..`, in on-disk order.
    fn read_dir(&self, dir: NodeId) -> Result<Vec<DirEntry>>;

    /// Finds `name` in directory `dir`. The default scans [`Filesystem::read_dir`]
    /// (filesystems with case-insensitive names override it). Filesystems with named streams
    /// (NTFS) also resolve `name:stream` to a node whose [`Filesystem::read_at`] and
    /// [`Filesystem::metadata`] are those of the stream.
    fn lookup(&self, dir: NodeId, name: &[u8]) -> Result<Option<NodeId>> {
        Ok(self
            .read_dir(dir)?
            .into_iter()
            .find(|e| e.name == name)
            .map(|e| e.node))
    }

    /// Reads file contents at `offset` into `buf`; returns the bytes read (short only at the
    /// end of the file). Holes read as zeros.
    fn read_at(&self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize>;

    /// Fills `buf` from `offset` of the file as far as the file goes (several
    /// [`Filesystem::read_at`] calls if need be); returns the bytes read, short only at the
    /// end of the file.
    fn read_full_at(&self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.read_at(node, offset + done as u64, &mut buf[done..])? {
                0 => break,
                n => done += n,
            }
        }
        Ok(done)
    }

    /// Fills all of `buf` from `offset`; a file that ends first is a [`ErrorKind::Corrupt`]
    /// error (its metadata promised more).
    fn read_exact_at(&self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<()> {
        let n = self.read_full_at(node, offset, buf)?;
        if n < buf.len() {
            return Err(Error::corrupt(format!(
                "the file ends at byte {} (wanted {} bytes from {offset})",
                offset + n as u64,
                buf.len()
            ))
            .inode(node.0));
        }
        Ok(())
    }

    /// The whole contents of a regular file of at most `cap` bytes ([`ErrorKind::Limit`]
    /// beyond).
    fn read_to_end(&self, node: NodeId, cap: u64) -> Result<Vec<u8>> {
        let size = self.metadata(node)?.size;
        if size > cap {
            return Err(Error::limit(format!(
                "the file has {size} bytes, more than the {cap} read"
            ))
            .inode(node.0));
        }
        let mut buf = vec![0u8; size as usize];
        let n = self.read_full_at(node, 0, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Whether `path` resolves (symlinks followed inside the guest).
    fn exists(&self, path: &str) -> bool {
        self.resolve(path).is_ok()
    }

    /// The target of a symbolic link, as stored.
    fn read_link(&self, node: NodeId) -> Result<Vec<u8>>;

    /// The extended attributes of `node`.
    fn xattrs(&self, node: NodeId) -> Result<Vec<Xattr>>;

    /// The named data streams of `node` (NTFS alternate data streams); empty where the
    /// filesystem has none.
    fn streams(&self, node: NodeId) -> Result<Vec<StreamInfo>> {
        let _ = node;
        Ok(Vec::new())
    }

    /// Resolves an absolute guest path (symlinks followed inside the guest, against the guest
    /// root, at most [`MAX_SYMLINKS`] of them) to a node. The last component is followed too.
    fn resolve(&self, path: &str) -> Result<NodeId> {
        resolve_path(self, path.as_bytes(), true)
    }
}

/// Opens the filesystem on `dev` read-only with the reader its superblock calls for (the
/// one factory behind every command): ext2/3/4, vfat, ntfs, ufs, xfs. Anything else that
/// [`probe::probe`] recognises is [`ErrorKind::Unsupported`], naming the type.
pub fn open(
    dev: std::sync::Arc<dyn guestctl_block::BlockDevice>,
    opts: &OpenOptions,
) -> Result<std::sync::Arc<dyn Filesystem>> {
    use std::sync::Arc;
    match probe::probe(dev.as_ref()) {
        Some(p) if p.fs_type.starts_with("ext") => Ok(Arc::new(ext::ExtFs::open(dev, opts)?)),
        Some(p) if p.fs_type == "vfat" => Ok(Arc::new(fat::FatFs::open(dev, opts)?)),
        Some(p) if p.fs_type == "ntfs" => Ok(Arc::new(ntfs::NtfsFs::open(dev, opts)?)),
        Some(p) if p.fs_type == "ufs" => Ok(Arc::new(ufs::UfsFs::open(dev, opts)?)),
        Some(p) if p.fs_type == "xfs" => Ok(Arc::new(xfs::XfsFs::open(dev, opts)?)),
        Some(p) => Err(Error::unsupported(format!(
            "{} filesystem, which guestctl cannot read yet",
            p.fs_type
        ))),
        None => Err(Error::unsupported("no filesystem recognised")),
    }
}

/// The walk behind every reader's `fuzz_walk` entry point: `info`, then up to 2000 entries of
/// the tree with `lookup`, `metadata`, `xattrs`, `read_link` and reads at both ends of each
/// file, each directory once, then a path with `..`. Errors are ignored; a panic or a hang
/// is the bug the fuzz targets and hostile tests look for.
#[doc(hidden)]
pub fn fuzz_walk_tree(fs: &dyn Filesystem) {
    let _ = fs.info();
    let mut stack = vec![fs.root()];
    let mut seen = std::collections::HashSet::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut budget = 2000u32;
    while let Some(dir) = stack.pop() {
        if !seen.insert(dir) {
            continue;
        }
        let _ = fs.metadata(dir);
        let Ok(entries) = fs.read_dir(dir) else {
            continue;
        };
        for e in entries {
            budget = match budget.checked_sub(1) {
                Some(b) => b,
                None => return,
            };
            let _ = fs.xattrs(e.node);
            let _ = fs.lookup(dir, &e.name);
            match fs.metadata(e.node) {
                Ok(m) if m.file_type == FileType::Directory => stack.push(e.node),
                Ok(m) if m.file_type == FileType::Symlink => {
                    let _ = fs.read_link(e.node);
                }
                Ok(m) => {
                    let _ = fs.read_at(e.node, 0, &mut buf);
                    let _ = fs.read_at(e.node, m.size.saturating_sub(10), &mut buf[..10]);
                }
                Err(_) => {}
            }
        }
    }
    let _ = resolve_path(fs, b"/a/B/../c", true);
}
