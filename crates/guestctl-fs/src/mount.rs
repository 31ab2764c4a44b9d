//! Several filesystems seen as one tree, the way a guest mounts them: a root filesystem plus
//! others mounted on its directories (`/boot`, `/home`, `/boot/efi`, ...).
//!
//! [`MountTree`] is itself a [`Filesystem`], so every command and the path resolver work on it
//! unchanged; `..` from a mounted root goes back to the directory it covers because
//! [`resolve_path`] keeps a stack of the directories it walked.
//!
//! Node ids of the tree carry the mount's index in their top 8 bits and the inner filesystem's
//! node id below. Inner ids that use those bits themselves (NTFS stream nodes) are given an
//! interned id instead (bounded, [`MAX_INTERNED`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::{
    resolve_path, DirEntry, Error, FileType, Filesystem, FsInfo, Metadata, NodeId, Result,
    StreamInfo, Xattr,
};

/// The most filesystems one tree holds.
pub const MAX_MOUNTS: usize = 254;
/// The most inner node ids that needed an interned id (they use the top 8 bits).
pub const MAX_INTERNED: usize = 1 << 24;

const SHIFT: u32 = 56;
const INNER_MASK: u64 = (1 << SHIFT) - 1;
const INTERNED_TAG: u64 = 0xFF;

/// One filesystem of a [`MountTree`].
#[derive(Debug, Clone)]
pub struct Mount {
    /// Where it is mounted (`/`, `/boot`, ...), as given.
    pub mountpoint: String,
    /// The filesystem.
    pub fs: Arc<dyn Filesystem>,
}

#[derive(Debug, Default)]
struct Interned {
    ids: HashMap<(usize, NodeId), u64>,
    nodes: Vec<(usize, NodeId)>,
}

/// A root filesystem with others mounted on its directories; see the module docs.
#[derive(Debug)]
pub struct MountTree {
    mounts: Vec<Mount>,
    /// (mount index, directory node inside it) → index of the mount that covers it.
    covers: HashMap<(usize, NodeId), usize>,
    interned: RwLock<Interned>,
}

impl MountTree {
    /// A tree holding only `root`, mounted at `/`.
    pub fn new(root: Arc<dyn Filesystem>) -> MountTree {
        MountTree {
            mounts: vec![Mount {
                mountpoint: "/".into(),
                fs: root,
            }],
            covers: HashMap::new(),
            interned: RwLock::new(Interned::default()),
        }
    }

    /// Mounts `fs` on the directory `mountpoint` of the tree as it is now (symlinks in the
    /// path are followed inside the guest, as the guest's own mount would). Mount parents
    /// before children (`/boot` before `/boot/efi`). A later mount on the same point hides
    /// the earlier one, like on Linux.
    pub fn mount(&mut self, mountpoint: &str, fs: Arc<dyn Filesystem>) -> Result<()> {
        if self.mounts.len() >= MAX_MOUNTS {
            return Err(Error::limit(format!("more than {MAX_MOUNTS} mounts")));
        }
        if !mountpoint.starts_with('/') {
            return Err(Error::new(
                crate::ErrorKind::InvalidInput,
                format!("mountpoint '{mountpoint}' is not an absolute path"),
            ));
        }
        let node = resolve_path(self, mountpoint.as_bytes(), true)
            .map_err(|e| e.structure("mountpoint"))?;
        if self.metadata(node)?.file_type != FileType::Directory {
            return Err(Error::new(
                crate::ErrorKind::NotADirectory,
                format!("mountpoint '{mountpoint}' is not a directory"),
            ));
        }
        let (m, inner) = self.decode(node)?;
        if m == 0 && inner == self.mounts[0].fs.root() {
            return Err(Error::new(
                crate::ErrorKind::InvalidInput,
                "'/' is the root filesystem's; mount others below it",
            ));
        }
        // `node` may be a mounted root itself (mounting over a mountpoint): the new mount then
        // covers that root.
        let index = self.mounts.len();
        self.covers.insert((m, inner), index);
        self.mounts.push(Mount {
            mountpoint: mountpoint.to_string(),
            fs,
        });
        Ok(())
    }

    /// The filesystems, root first.
    pub fn mounts(&self) -> &[Mount] {
        &self.mounts
    }

    fn encode(&self, m: usize, inner: NodeId) -> Result<NodeId> {
        if inner.0 >> SHIFT == 0 {
            return Ok(NodeId(((m as u64) << SHIFT) | inner.0));
        }
        if let Ok(t) = self.interned.read() {
            if let Some(&id) = t.ids.get(&(m, inner)) {
                return Ok(NodeId((INTERNED_TAG << SHIFT) | id));
            }
        }
        let mut t = self
            .interned
            .write()
            .map_err(|_| Error::new(crate::ErrorKind::InvalidInput, "mount tree lock poisoned"))?;
        if let Some(&id) = t.ids.get(&(m, inner)) {
            return Ok(NodeId((INTERNED_TAG << SHIFT) | id));
        }
        if t.nodes.len() >= MAX_INTERNED {
            return Err(Error::limit(format!(
                "more than {MAX_INTERNED} nodes with wide ids in one mount tree"
            )));
        }
        let id = t.nodes.len() as u64;
        t.nodes.push((m, inner));
        t.ids.insert((m, inner), id);
        Ok(NodeId((INTERNED_TAG << SHIFT) | id))
    }

    fn decode(&self, node: NodeId) -> Result<(usize, NodeId)> {
        let top = node.0 >> SHIFT;
        let low = node.0 & INNER_MASK;
        if top == INTERNED_TAG {
            let t = self.interned.read().map_err(|_| {
                Error::new(crate::ErrorKind::InvalidInput, "mount tree lock poisoned")
            })?;
            return usize::try_from(low)
                .ok()
                .and_then(|i| t.nodes.get(i).copied())
                .ok_or_else(|| {
                    Error::new(
                        crate::ErrorKind::InvalidInput,
                        format!("no node {node:?} in this tree"),
                    )
                });
        }
        let m = top as usize;
        if m >= self.mounts.len() {
            return Err(Error::new(
                crate::ErrorKind::InvalidInput,
                format!("no node {node:?} in this tree"),
            ));
        }
        Ok((m, NodeId(low)))
    }

    /// Follows mounts: a covered directory becomes the root of what is mounted on it.
    fn cross(&self, mut m: usize, mut inner: NodeId) -> (usize, NodeId) {
        // Each step goes to a later mount, so this ends within the mount count.
        for _ in 0..=self.mounts.len() {
            match self.covers.get(&(m, inner)) {
                Some(&k) => {
                    m = k;
                    inner = self.mounts[k].fs.root();
                }
                None => break,
            }
        }
        (m, inner)
    }

    fn fs(&self, node: NodeId) -> Result<(&dyn Filesystem, NodeId)> {
        let (m, inner) = self.decode(node)?;
        Ok((self.mounts[m].fs.as_ref(), inner))
    }
}

impl Filesystem for MountTree {
    fn info(&self) -> FsInfo {
        self.mounts[0].fs.info()
    }

    fn root(&self) -> NodeId {
        let (m, inner) = self.cross(0, self.mounts[0].fs.root());
        self.encode(m, inner).unwrap_or(NodeId(0))
    }

    fn metadata(&self, node: NodeId) -> Result<Metadata> {
        let (fs, inner) = self.fs(node)?;
        fs.metadata(inner)
    }

    fn read_dir(&self, dir: NodeId) -> Result<Vec<DirEntry>> {
        let (m, inner) = self.decode(dir)?;
        let entries = self.mounts[m].fs.read_dir(inner)?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let (k, child) = self.cross(m, e.node);
            out.push(DirEntry {
                node: self.encode(k, child)?,
                file_type: if k == m {
                    e.file_type
                } else {
                    FileType::Directory
                },
                name: e.name,
            });
        }
        Ok(out)
    }

    fn lookup(&self, dir: NodeId, name: &[u8]) -> Result<Option<NodeId>> {
        let (m, inner) = self.decode(dir)?;
        match self.mounts[m].fs.lookup(inner, name)? {
            Some(child) => {
                let (k, child) = self.cross(m, child);
                Ok(Some(self.encode(k, child)?))
            }
            None => Ok(None),
        }
    }

    fn read_at(&self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let (fs, inner) = self.fs(node)?;
        fs.read_at(inner, offset, buf)
    }

    fn read_link(&self, node: NodeId) -> Result<Vec<u8>> {
        let (fs, inner) = self.fs(node)?;
        fs.read_link(inner)
    }

    fn xattrs(&self, node: NodeId) -> Result<Vec<Xattr>> {
        let (fs, inner) = self.fs(node)?;
        fs.xattrs(inner)
    }

    fn streams(&self, node: NodeId) -> Result<Vec<StreamInfo>> {
        let (fs, inner) = self.fs(node)?;
        fs.streams(inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    /// A tiny in-memory filesystem: node 1 is the root; `(parent, name, node, type, data)`.
    #[derive(Debug)]
    struct MemFs {
        label: &'static str,
        nodes: Vec<(u64, &'static str, u64, FileType, &'static [u8])>,
    }

    impl MemFs {
        fn node(&self, n: NodeId) -> Result<&(u64, &'static str, u64, FileType, &'static [u8])> {
            self.nodes
                .iter()
                .find(|e| e.2 == n.0)
                .ok_or_else(|| Error::new(ErrorKind::NotFound, "no node"))
        }
    }

    impl Filesystem for MemFs {
        fn info(&self) -> FsInfo {
            FsInfo {
                label: self.label.into(),
                ..FsInfo::default()
            }
        }
        fn root(&self) -> NodeId {
            NodeId(1)
        }
        fn metadata(&self, node: NodeId) -> Result<Metadata> {
            let (file_type, size) = if node.0 == 1 {
                (FileType::Directory, 0)
            } else {
                let e = self.node(node)?;
                (e.3, e.4.len() as u64)
            };
            Ok(Metadata {
                file_type,
                size,
                mode: 0o755,
                uid: 0,
                gid: 0,
                nlink: 1,
                inode: node.0,
                atime: None,
                mtime: None,
                ctime: None,
                crtime: None,
                rdev: None,
                allocated: 0,
            })
        }
        fn read_dir(&self, dir: NodeId) -> Result<Vec<DirEntry>> {
            Ok(self
                .nodes
                .iter()
                .filter(|e| e.0 == dir.0)
                .map(|e| DirEntry {
                    name: e.1.as_bytes().to_vec(),
                    node: NodeId(e.2),
                    file_type: e.3,
                })
                .collect())
        }
        fn read_at(&self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize> {
            let data = self.node(node)?.4;
            let start = (offset as usize).min(data.len());
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            Ok(n)
        }
        fn read_link(&self, node: NodeId) -> Result<Vec<u8>> {
            Ok(self.node(node)?.4.to_vec())
        }
        fn xattrs(&self, _: NodeId) -> Result<Vec<Xattr>> {
            Ok(Vec::new())
        }
    }

    fn read(t: &MountTree, path: &str) -> Result<Vec<u8>> {
        let n = t.resolve(path)?;
        let mut buf = vec![0; 64];
        let len = t.read_at(n, 0, &mut buf)?;
        buf.truncate(len);
        Ok(buf)
    }

    fn tree() -> MountTree {
        let root = MemFs {
            label: "root",
            nodes: vec![
                (1, "boot", 2, FileType::Directory, b""),
                (2, "hidden", 3, FileType::Regular, b"covered by the boot fs"),
                (1, "etc", 4, FileType::Directory, b""),
                (4, "hostname", 5, FileType::Regular, b"guest"),
                (1, "efi-link", 6, FileType::Symlink, b"/boot/efi"),
            ],
        };
        let boot = MemFs {
            label: "boot",
            nodes: vec![
                (1, "vmlinuz", 7, FileType::Regular, b"kernel"),
                (1, "efi", 8, FileType::Directory, b""),
                // Ids with the top bits set must still work (interned).
                (1, "wide", u64::MAX - 1, FileType::Regular, b"wide id"),
            ],
        };
        let efi = MemFs {
            label: "efi",
            nodes: vec![(1, "BOOTX64.EFI", 9, FileType::Regular, b"shim")],
        };
        let mut t = MountTree::new(Arc::new(root));
        t.mount("/boot", Arc::new(boot)).expect("mount /boot");
        t.mount("/boot/efi", Arc::new(efi))
            .expect("mount /boot/efi");
        t
    }

    #[test]
    fn paths_cross_mounts_both_ways() -> Result<()> {
        let t = tree();
        assert_eq!(read(&t, "/etc/hostname")?, b"guest");
        assert_eq!(read(&t, "/boot/vmlinuz")?, b"kernel");
        assert_eq!(read(&t, "/boot/efi/BOOTX64.EFI")?, b"shim");
        assert_eq!(read(&t, "/efi-link/BOOTX64.EFI")?, b"shim");
        assert_eq!(read(&t, "/boot/efi/../../etc/hostname")?, b"guest");
        assert_eq!(read(&t, "/boot/wide")?, b"wide id");
        // What the mount covers is hidden, as on Linux.
        assert_eq!(
            t.resolve("/boot/hidden").map_err(|e| e.kind()),
            Err(ErrorKind::NotFound)
        );
        Ok(())
    }

    #[test]
    fn read_dir_shows_mounted_roots() -> Result<()> {
        let t = tree();
        let root = t.read_dir(t.root())?;
        let boot = root.iter().find(|e| e.name == b"boot").expect("boot entry");
        assert_eq!(boot.node, t.resolve("/boot")?);
        let names: Vec<_> = t.read_dir(boot.node)?.into_iter().map(|e| e.name).collect();
        assert_eq!(names, [&b"vmlinuz"[..], b"efi", b"wide"]);
        Ok(())
    }

    #[test]
    fn bad_mountpoints_are_refused() {
        let mut t = tree();
        let other = || {
            Arc::new(MemFs {
                label: "x",
                nodes: vec![],
            })
        };
        assert_eq!(
            t.mount("/nope", other()).map_err(|e| e.kind()),
            Err(ErrorKind::NotFound)
        );
        assert_eq!(
            t.mount("/etc/hostname", other()).map_err(|e| e.kind()),
            Err(ErrorKind::NotADirectory)
        );
        assert!(t.mount("relative", other()).is_err());
        assert!(t.mount("/", other()).is_err());
        assert!(t.decode(NodeId(200 << SHIFT)).is_err());
    }
}
