//! [`Guest`]: the handle for code that does not want libguestfs's shapes. One call opens a
//! guest's disks and mounts its tree as its fstab does; files are [`File`]s that implement
//! [`Read`] and [`Seek`]; walks are lazy iterators.
//!
//! ```
//! use std::io::Read;
//! let guest = guestctl::Guest::open("fixtures/demo.qcow2")?;
//! let os = guest.os().expect("one operating system");
//! assert_eq!(os.os_type, "linux");
//! let mut text = String::new();
//! guest.open_file("/etc/os-release")?.read_to_string(&mut text)?;
//! let etc = guest.walk("/etc")?.filter_map(Result::ok).count();
//! assert!(etc > 10);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use crate::fs::{self, walk, FileType, Filesystem, Metadata, NodeId};
use crate::{inspect, Error, ErrorKind, Guestfs, Result};

/// A guest opened and mounted: its disks launched, its tree built from its own mounts
/// (or its only filesystem when there is no operating system to inspect).
#[derive(Debug)]
pub struct Guest {
    g: Guestfs,
    tree: Arc<dyn Filesystem>,
    os: Option<inspect::OsInfo>,
}

impl Guest {
    /// Opens one disk image.
    pub fn open(path: impl AsRef<Path>) -> Result<Guest> {
        Guest::open_all([path])
    }

    /// Opens the disks of one guest (the first is `/dev/sda`).
    pub fn open_all<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Result<Guest> {
        let g = Guestfs::new()?;
        for p in paths {
            g.add_drive_ro(p)?;
        }
        g.launch()?;
        let mut notes = Vec::new();
        let (os, tree) = match g.mount_inspected(&mut notes)? {
            Some((os, tree)) => (Some(os), tree),
            None => (
                None,
                g.mount_default(&mut notes).map_err(|e| match e {
                    crate::DefaultMountError::Failed(e) => e,
                    e => Error::new(ErrorKind::NotFound, e.to_string()),
                })?,
            ),
        };
        // Devices left out of the tree (unreadable, not mountable) are said, never dropped.
        notes.sort();
        notes.dedup();
        for n in &notes {
            eprintln!("guestctl: note: {n}");
        }
        Ok(Guest { g, tree, os })
    }

    /// The operating system found (without its applications), if there was exactly one.
    pub fn os(&self) -> Option<&inspect::OsInfo> {
        self.os.as_ref()
    }

    /// Full inspection (applications included) of every operating system on the disks.
    pub fn inspect(&self) -> Result<Vec<inspect::OsInfo>> {
        self.g.inspect(
            &inspect::InspectOptions { applications: true },
            &mut Vec::new(),
        )
    }

    /// The libguestfs-style handle underneath (launched, nothing mounted through it).
    pub fn handle(&self) -> &Guestfs {
        &self.g
    }

    /// The mounted tree, for the [`fs::Filesystem`] calls.
    pub fn tree(&self) -> &Arc<dyn Filesystem> {
        &self.tree
    }

    fn resolve(&self, path: &str, follow: bool) -> Result<NodeId> {
        fs::resolve_path(self.tree.as_ref(), path.as_bytes(), follow)
            .map_err(|e| Error::from(e).with_path(path))
    }

    /// The metadata of `path` (symlinks followed).
    pub fn metadata(&self, path: &str) -> Result<Metadata> {
        let n = self.resolve(path, true)?;
        self.tree
            .metadata(n)
            .map_err(|e| Error::from(e).with_path(path))
    }

    /// Opens a regular file for reading.
    pub fn open_file(&self, path: &str) -> Result<File> {
        let node = self.resolve(path, true)?;
        let meta = self
            .tree
            .metadata(node)
            .map_err(|e| Error::from(e).with_path(path))?;
        if meta.file_type != FileType::Regular {
            return Err(Error::invalid("not a regular file").with_path(path));
        }
        Ok(File {
            fs: self.tree.clone(),
            node,
            size: meta.size,
            pos: 0,
            path: path.to_string(),
        })
    }

    /// A lazy depth-first walk below `dir` (entries in byte order, directories before their
    /// contents, the start itself not included). Loops in a damaged tree are entered once,
    /// depth and entry count are capped, and an unreadable directory is one `Err` item: the
    /// walk goes on with the rest.
    pub fn walk(&self, dir: &str) -> Result<Walk> {
        let node = self.resolve(dir, true)?;
        let meta = self
            .tree
            .metadata(node)
            .map_err(|e| Error::from(e).with_path(dir))?;
        if meta.file_type != FileType::Directory {
            return Err(Error::new(ErrorKind::NotADirectory, "not a directory").with_path(dir));
        }
        let base = dir.trim_end_matches('/').to_string();
        let mut visited = std::collections::HashSet::new();
        visited.insert(node);
        Ok(Walk {
            fs: self.tree.clone(),
            stack: vec![Pending::Dir(Vec::new(), node, 0)],
            base,
            visited,
            count: 0,
        })
    }
}

/// A guest file open for reading; `Read` and `Seek` over positional reads.
#[derive(Debug)]
pub struct File {
    fs: Arc<dyn Filesystem>,
    node: NodeId,
    size: u64,
    pos: u64,
    path: String,
}

impl File {
    /// The file's size in bytes.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
}

impl Read for File {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let want = ((self.size - self.pos) as usize).min(buf.len());
        let n = self
            .fs
            .read_at(self.node, self.pos, &mut buf[..want])
            .map_err(|e| std::io::Error::other(format!("{}: {e}", self.path)))?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for File {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let new = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(n) => {
                self.pos = n;
                Ok(n)
            }
            None => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            )),
        }
    }
}

/// One entry of a [`Guest::walk`].
#[derive(Debug, Clone)]
pub struct WalkEntry {
    /// Absolute guest path.
    pub path: String,
    /// Its metadata (not following a final symlink).
    pub metadata: Metadata,
}

enum Pending {
    /// A directory to list: its path relative to the start, node, depth.
    Dir(Vec<u8>, NodeId, usize),
    Entry(WalkEntry),
    /// An entry whose metadata cannot be read.
    Failed(Error),
}

/// The iterator of [`Guest::walk`].
pub struct Walk {
    fs: Arc<dyn Filesystem>,
    stack: Vec<Pending>,
    /// The start as given, without a trailing `/`.
    base: String,
    visited: std::collections::HashSet<NodeId>,
    count: u64,
}

impl std::fmt::Debug for Walk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Walk")
            .field("pending", &self.stack.len())
            .finish_non_exhaustive()
    }
}

/// Deepest nesting and most entries one [`Walk`] visits.
const WALK_MAX_DEPTH: usize = 1024;
const WALK_MAX_ENTRIES: u64 = 1 << 26;

impl Walk {
    /// A walk problem as an error naming the path.
    fn problem(&self, p: walk::Problem) -> Error {
        let base = self.base.as_str();
        match p {
            walk::Problem::ReadDir { rel, error } | walk::Problem::Metadata { rel, error } => {
                let path = format!("{base}/{}", String::from_utf8_lossy(&rel));
                Error::from(error).with_path(path)
            }
            p @ (walk::Problem::TooDeep { .. } | walk::Problem::TooMany { .. }) => {
                Error::new(ErrorKind::Limit, p.line(base))
            }
            p => Error::new(ErrorKind::Corrupt, p.line(base)),
        }
    }
}

impl Iterator for Walk {
    type Item = Result<WalkEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.stack.pop()? {
                Pending::Entry(e) => {
                    self.count += 1;
                    if self.count > WALK_MAX_ENTRIES {
                        self.stack.clear();
                        return Some(Err(Error::new(
                            ErrorKind::Limit,
                            format!("more than {WALK_MAX_ENTRIES} entries: the walk stops"),
                        )
                        .with_path(e.path)));
                    }
                    return Some(Ok(e));
                }
                Pending::Failed(e) => return Some(Err(e)),
                Pending::Dir(rel, node, depth) => {
                    // The same listing rules as every other walk (sorted, bad and
                    // duplicate names reported); each problem is one `Err` item.
                    let (items, problems) = walk::list_dir(self.fs.as_ref(), node, &rel);
                    for item in items.into_iter().rev() {
                        let path = format!("{}/{}", self.base, String::from_utf8_lossy(&item.rel));
                        if item.meta.file_type == FileType::Directory {
                            let problem = if depth >= WALK_MAX_DEPTH {
                                Some(walk::Problem::TooDeep {
                                    rel: item.rel.clone(),
                                })
                            } else if !self.visited.insert(item.node) {
                                Some(walk::Problem::Loop {
                                    rel: item.rel.clone(),
                                })
                            } else {
                                None
                            };
                            match problem {
                                Some(p) => self.stack.push(Pending::Failed(self.problem(p))),
                                None => self.stack.push(Pending::Dir(
                                    item.rel.clone(),
                                    item.node,
                                    depth + 1,
                                )),
                            }
                        }
                        self.stack.push(Pending::Entry(WalkEntry {
                            path,
                            metadata: item.meta,
                        }));
                    }
                    for p in problems.into_iter().rev() {
                        let e = self.problem(p);
                        self.stack.push(Pending::Failed(e));
                    }
                }
            }
        }
    }
}
