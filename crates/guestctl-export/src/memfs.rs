//! An in-memory [`Filesystem`] for unit tests: hostile names, duplicates, injected errors.

use guestctl_fs::{
    DirEntry, Error, FileType, Filesystem, FsInfo, Metadata, NodeId, Result, Timestamp, Xattr,
};

#[derive(Debug, Clone)]
pub(crate) enum Body {
    Dir(Vec<(Vec<u8>, u64)>),
    File(Vec<u8>),
    Link(Vec<u8>),
    Other,
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub meta: Metadata,
    pub body: Body,
    pub fail: bool,
}

/// Node 1 is the root directory.
#[derive(Debug, Clone)]
pub(crate) struct MemFs {
    pub nodes: Vec<Node>,
}

fn meta(t: FileType, mode: u32, size: u64, ino: u64) -> Metadata {
    let ts = Some(Timestamp {
        secs: 1_600_000_000,
        nanos: 250_000_000,
    });
    Metadata {
        file_type: t,
        size,
        mode,
        uid: 1000,
        gid: 1000,
        nlink: 1,
        inode: ino,
        atime: ts,
        mtime: ts,
        ctime: ts,
        crtime: None,
        rdev: None,
        allocated: 0,
    }
}

impl MemFs {
    pub fn new() -> Self {
        let mut fs = MemFs { nodes: Vec::new() };
        // Index 0 unused so ids equal indexes and the root is 1.
        fs.nodes.push(Node {
            meta: meta(FileType::Unknown, 0, 0, 0),
            body: Body::Other,
            fail: false,
        });
        fs.nodes.push(Node {
            meta: meta(FileType::Directory, 0o755, 0, 1),
            body: Body::Dir(Vec::new()),
            fail: false,
        });
        fs
    }

    fn add(&mut self, parent: u64, name: &[u8], t: FileType, mode: u32, body: Body) -> u64 {
        let id = self.nodes.len() as u64;
        let size = match &body {
            Body::File(d) => d.len() as u64,
            Body::Link(t) => t.len() as u64,
            _ => 0,
        };
        self.nodes.push(Node {
            meta: meta(t, mode, size, id),
            body,
            fail: false,
        });
        self.link(parent, name, id);
        id
    }

    pub fn link(&mut self, parent: u64, name: &[u8], id: u64) {
        if let Body::Dir(v) = &mut self.nodes[parent as usize].body {
            v.push((name.to_vec(), id));
        }
    }

    pub fn dir(&mut self, parent: u64, name: &[u8]) -> u64 {
        self.add(
            parent,
            name,
            FileType::Directory,
            0o755,
            Body::Dir(Vec::new()),
        )
    }

    pub fn file(&mut self, parent: u64, name: &[u8], data: &[u8]) -> u64 {
        self.add(
            parent,
            name,
            FileType::Regular,
            0o644,
            Body::File(data.to_vec()),
        )
    }

    pub fn symlink(&mut self, parent: u64, name: &[u8], target: &[u8]) -> u64 {
        self.add(
            parent,
            name,
            FileType::Symlink,
            0o777,
            Body::Link(target.to_vec()),
        )
    }

    pub fn special(&mut self, parent: u64, name: &[u8], t: FileType) -> u64 {
        let id = self.add(parent, name, t, 0o640, Body::Other);
        self.nodes[id as usize].meta.rdev = Some((8, 1));
        id
    }

    pub fn fail(&mut self, id: u64) {
        self.nodes[id as usize].fail = true;
    }

    fn node(&self, id: NodeId) -> Result<&Node> {
        self.nodes
            .get(id.0 as usize)
            .filter(|_| id.0 != 0)
            .ok_or_else(|| Error::corrupt("no such node"))
    }
}

impl Filesystem for MemFs {
    fn info(&self) -> FsInfo {
        FsInfo::default()
    }
    fn root(&self) -> NodeId {
        NodeId(1)
    }
    fn metadata(&self, node: NodeId) -> Result<Metadata> {
        Ok(self.node(node)?.meta.clone())
    }
    fn read_dir(&self, dir: NodeId) -> Result<Vec<DirEntry>> {
        let n = self.node(dir)?;
        if n.fail {
            return Err(Error::corrupt("injected directory error").inode(dir.0));
        }
        match &n.body {
            Body::Dir(v) => Ok(v
                .iter()
                .map(|(name, id)| DirEntry {
                    name: name.clone(),
                    node: NodeId(*id),
                    file_type: FileType::Unknown,
                })
                .collect()),
            _ => Err(Error::new(
                guestctl_fs::ErrorKind::NotADirectory,
                "not a directory",
            )),
        }
    }
    fn read_at(&self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let n = self.node(node)?;
        if n.fail {
            return Err(Error::corrupt("injected read error").inode(node.0));
        }
        match &n.body {
            Body::File(d) => {
                let off = usize::try_from(offset).unwrap_or(usize::MAX).min(d.len());
                let len = buf.len().min(d.len() - off);
                buf[..len].copy_from_slice(&d[off..off + len]);
                Ok(len)
            }
            _ => Err(Error::new(
                guestctl_fs::ErrorKind::IsADirectory,
                "not a file",
            )),
        }
    }
    fn read_link(&self, node: NodeId) -> Result<Vec<u8>> {
        match &self.node(node)?.body {
            Body::Link(t) => Ok(t.clone()),
            _ => Err(Error::new(
                guestctl_fs::ErrorKind::InvalidInput,
                "not a link",
            )),
        }
    }
    fn xattrs(&self, node: NodeId) -> Result<Vec<Xattr>> {
        self.node(node)?;
        Ok(vec![Xattr {
            name: b"user.test".to_vec(),
            value: b"v\x00\xff".to_vec(),
        }])
    }
}
