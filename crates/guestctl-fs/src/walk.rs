//! The one bounded tree walk behind every recursive command (`ls -R`, `checksum -R`,
//! `copy-out`, `tar-out`, ...): depth-first, entries of a directory in byte order of their
//! names, directories before their contents and left after them.
//!
//! Bounded and loop-proof: a directory already visited (a corrupt tree can link one twice, or
//! into its own parent) is reported and not entered again; nesting stops at
//! [`WalkOptions::max_depth`], the walk at [`WalkOptions::max_entries`]. Names that cannot be
//! one path component and later duplicates are reported and skipped. Nothing a damaged
//! directory does stops the walk of the rest: every problem goes to [`Visitor::problem`].
//!
//! The walk runs on the calling thread. Reading listings ahead on worker threads was
//! measured (a 34k-entry XFS tree, warm and cold page cache, 2 cores) and was slower both
//! ways: the per-directory hand-offs cost more than the parallel inode reads saved.

use std::collections::HashSet;

use crate::{DirEntry, Error, FileType, Filesystem, Metadata, NodeId};

/// Limits of a walk.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// Deepest directory nesting walked below the start.
    pub max_depth: usize,
    /// Most entries one walk visits; past it the walk stops with a [`Problem::TooMany`].
    pub max_entries: u64,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            max_depth: 1024,
            max_entries: 1 << 26,
        }
    }
}

/// One node reached by the walk.
#[derive(Debug, Clone)]
pub struct Item {
    /// Path relative to the start, components joined by `/`; empty for the start itself.
    pub rel: Vec<u8>,
    /// The node.
    pub node: NodeId,
    /// Its metadata.
    pub meta: Metadata,
}

/// What to do after visiting a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    /// Walk its entries.
    Descend,
    /// Do not.
    Skip,
}

/// Something the walk could not follow; the walk goes on.
#[derive(Debug)]
#[non_exhaustive]
pub enum Problem {
    /// The directory at `rel` could not be listed.
    ReadDir {
        /// Its path.
        rel: Vec<u8>,
        /// Why.
        error: Error,
    },
    /// The metadata of `rel` could not be read (the entry is left out).
    Metadata {
        /// Its path.
        rel: Vec<u8>,
        /// Why.
        error: Error,
    },
    /// An entry whose name cannot be one path component (empty, `.`/`..`, `/`, NUL).
    BadName {
        /// The directory's path.
        dir: Vec<u8>,
        /// The raw name.
        name: Vec<u8>,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A second entry with the same name in one directory.
    Duplicate {
        /// Its path.
        rel: Vec<u8>,
    },
    /// A directory reached a second time (a loop in a corrupt tree): not entered again.
    Loop {
        /// Its path.
        rel: Vec<u8>,
    },
    /// A directory deeper than [`WalkOptions::max_depth`]: not entered.
    TooDeep {
        /// Its path.
        rel: Vec<u8>,
    },
    /// The walk stopped after [`WalkOptions::max_entries`] entries.
    TooMany {
        /// The first entry not visited.
        rel: Vec<u8>,
    },
}

impl Problem {
    /// The problem as one line for a user (`BASE/rel: skipped: ...`), paths shown under
    /// `base`, the walk's start as the user named it.
    pub fn line(&self, base: &str) -> String {
        let at = |rel: &[u8]| {
            let r = String::from_utf8_lossy(rel);
            match (base.is_empty(), r.is_empty()) {
                (_, true) if base.is_empty() => "/".to_string(),
                (_, true) => base.to_string(),
                _ => format!("{base}/{r}"),
            }
        };
        match self {
            Problem::ReadDir { rel, error } => format!("{}: {error}", at(rel)),
            Problem::Metadata { rel, error } => format!("{}: {error}", at(rel)),
            Problem::BadName { dir, name, why } => {
                format!(
                    "{}/{}: skipped: {why}",
                    at(dir),
                    String::from_utf8_lossy(name).escape_debug()
                )
            }
            Problem::Duplicate { rel } => format!(
                "{}: skipped: a second entry with the same name in this directory",
                at(rel)
            ),
            Problem::Loop { rel } => format!(
                "{}: skipped: directory already visited (corrupt filesystem: directory loop)",
                at(rel)
            ),
            Problem::TooDeep { rel } => format!("{}: not descended: too deep", at(rel)),
            Problem::TooMany { rel } => format!("{}: walk stopped: too many entries", at(rel)),
        }
    }
}

/// What the walk calls, in walk order. An `Err` stops the walk and is returned.
pub trait Visitor {
    /// The visitor's error.
    type Error;
    /// Every node in pre-order, the start first. Directories are entered on
    /// [`Visit::Descend`].
    fn entry(&mut self, item: &Item) -> Result<Visit, Self::Error>;
    /// After an entered directory's entries.
    fn leave(&mut self, item: &Item) -> Result<(), Self::Error> {
        let _ = item;
        Ok(())
    }
    /// Something was skipped or could not be read.
    fn problem(&mut self, problem: Problem) -> Result<(), Self::Error>;
}

/// Why `name` cannot be a single path component, if it cannot.
pub fn bad_name(name: &[u8]) -> Option<&'static str> {
    match name {
        b"" => Some("empty name"),
        b"." | b".." => Some("name is . or .."),
        n if n.contains(&b'/') => Some("name contains '/'"),
        n if n.contains(&0) => Some("name contains a NUL byte"),
        _ => None,
    }
}

fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(rel.len() + 1 + name.len());
    p.extend_from_slice(rel);
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// A directory's entries, sorted, checked and with their metadata, plus what went wrong.
#[derive(Debug, Default)]
struct Listing {
    items: Vec<Item>,
    problems: Vec<Problem>,
}

/// Lists directory `dir` (at `rel`, relative to a walk's start) as [`walk`] does: entries
/// sorted by name, with their metadata; bad and duplicate names, unreadable metadata and an
/// unreadable directory are returned as problems. For walkers that drive themselves (lazy
/// iterators) and must keep the same rules.
pub fn list_dir(fs: &dyn Filesystem, dir: NodeId, rel: &[u8]) -> (Vec<Item>, Vec<Problem>) {
    let l = list(fs, dir, rel, &|_| true);
    (l.items, l.problems)
}

/// Lists directory `dir` (at `rel`): entries sorted by name, bad and duplicate names and
/// those `keep` rejects left out, metadata read for the rest.
fn list(fs: &dyn Filesystem, dir: NodeId, rel: &[u8], keep: &dyn Fn(&[u8]) -> bool) -> Listing {
    let mut out = Listing::default();
    let mut entries: Vec<DirEntry> = match fs.read_dir(dir) {
        Ok(e) => e,
        Err(error) => {
            out.problems.push(Problem::ReadDir {
                rel: rel.to_vec(),
                error,
            });
            return out;
        }
    };
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let mut seen: HashSet<&[u8]> = HashSet::with_capacity(entries.len());
    let mut ok = Vec::with_capacity(entries.len());
    for e in &entries {
        if let Some(why) = bad_name(&e.name) {
            out.problems.push(Problem::BadName {
                dir: rel.to_vec(),
                name: e.name.clone(),
                why,
            });
            continue;
        }
        let child = join(rel, &e.name);
        if !seen.insert(&e.name) {
            out.problems.push(Problem::Duplicate { rel: child });
            continue;
        }
        if keep(&child) {
            ok.push((child, e.node));
        }
    }
    out.items.reserve(ok.len());
    for (rel, node) in ok {
        match fs.metadata(node) {
            Ok(meta) => out.items.push(Item { rel, node, meta }),
            Err(error) => out.problems.push(Problem::Metadata { rel, error }),
        }
    }
    out
}

struct Frame {
    item: Item,
    entries: std::vec::IntoIter<Item>,
}

/// Walks from `start` (its `rel` is normally empty), calling `visitor` for each node in walk
/// order. `keep` decides, by relative path, which entries are walked at all (excludes).
pub fn walk<V: Visitor>(
    fs: &dyn Filesystem,
    start: Item,
    keep: &dyn Fn(&[u8]) -> bool,
    opts: &WalkOptions,
    visitor: &mut V,
) -> Result<(), V::Error> {
    let mut visited: HashSet<NodeId> = HashSet::new();
    let mut count: u64 = 1;
    let mut stack: Vec<Frame> = Vec::new();
    let enter = |item: Item, visitor: &mut V, stack: &mut Vec<Frame>| -> Result<(), V::Error> {
        let l = list(fs, item.node, &item.rel, keep);
        for p in l.problems {
            visitor.problem(p)?;
        }
        stack.push(Frame {
            item,
            entries: l.items.into_iter(),
        });
        Ok(())
    };
    let is_dir = start.meta.file_type == FileType::Directory;
    if visitor.entry(&start)? == Visit::Descend && is_dir {
        visited.insert(start.node);
        enter(start, visitor, &mut stack)?;
    }
    while let Some(top) = stack.last_mut() {
        let Some(item) = top.entries.next() else {
            if let Some(done) = stack.pop() {
                visitor.leave(&done.item)?;
            }
            continue;
        };
        count += 1;
        if count > opts.max_entries {
            visitor.problem(Problem::TooMany { rel: item.rel })?;
            while let Some(done) = stack.pop() {
                visitor.leave(&done.item)?;
            }
            break;
        }
        let is_dir = item.meta.file_type == FileType::Directory;
        if is_dir && visited.contains(&item.node) {
            visitor.problem(Problem::Loop { rel: item.rel })?;
            continue;
        }
        if visitor.entry(&item)? == Visit::Descend && is_dir {
            if stack.len() >= opts.max_depth {
                visitor.problem(Problem::TooDeep {
                    rel: item.rel.clone(),
                })?;
                visitor.leave(&item)?;
                continue;
            }
            visited.insert(item.node);
            enter(item, visitor, &mut stack)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FsInfo, Result, Xattr};

    /// A tree of `n` directories each holding a file and the next directory, the last one
    /// linking back to the first (a loop), plus names that cannot be components.
    #[derive(Debug)]
    struct Loopy {
        n: u64,
    }

    fn md(dir: bool, ino: u64) -> Metadata {
        Metadata {
            file_type: if dir {
                FileType::Directory
            } else {
                FileType::Regular
            },
            size: 0,
            mode: 0o755,
            uid: 0,
            gid: 0,
            nlink: 1,
            inode: ino,
            atime: None,
            mtime: None,
            ctime: None,
            crtime: None,
            rdev: None,
            allocated: 0,
        }
    }

    impl Filesystem for Loopy {
        fn info(&self) -> FsInfo {
            FsInfo::default()
        }
        fn root(&self) -> NodeId {
            NodeId(1)
        }
        fn metadata(&self, node: NodeId) -> Result<Metadata> {
            if node.0 == 999 {
                return Err(Error::corrupt("bad inode"));
            }
            Ok(md(node.0 < 1000, node.0))
        }
        fn read_dir(&self, dir: NodeId) -> Result<Vec<DirEntry>> {
            let d = dir.0;
            let next = if d >= self.n { 1 } else { d + 1 };
            let e = |name: &[u8], node: u64| DirEntry {
                name: name.to_vec(),
                node: NodeId(node),
                file_type: FileType::Unknown,
            };
            let mut v = vec![e(b"sub", next), e(b"file", 1000 + d), e(b"file", 2000 + d)];
            if d == 1 {
                v.push(e(b"a/b", 3000));
                v.push(e(b"..", 1));
                v.push(e(b"broken", 999));
            }
            Ok(v)
        }
        fn read_at(&self, _: NodeId, _: u64, _: &mut [u8]) -> Result<usize> {
            Ok(0)
        }
        fn read_link(&self, _: NodeId) -> Result<Vec<u8>> {
            Ok(Vec::new())
        }
        fn xattrs(&self, _: NodeId) -> Result<Vec<Xattr>> {
            Ok(Vec::new())
        }
    }

    #[derive(Default)]
    struct Record {
        seen: Vec<String>,
        problems: Vec<String>,
    }

    impl Visitor for Record {
        type Error = ();
        fn entry(&mut self, item: &Item) -> std::result::Result<Visit, ()> {
            self.seen
                .push(String::from_utf8_lossy(&item.rel).into_owned());
            Ok(Visit::Descend)
        }
        fn problem(&mut self, p: Problem) -> std::result::Result<(), ()> {
            self.problems.push(
                format!("{p:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap_or("")
                    .to_string(),
            );
            Ok(())
        }
    }

    fn run(max_depth: usize) -> Record {
        let fs = Loopy { n: 50 };
        let start = Item {
            rel: Vec::new(),
            node: fs.root(),
            meta: md(true, 1),
        };
        let mut r = Record::default();
        let opts = WalkOptions {
            max_depth,
            ..WalkOptions::default()
        };
        walk(&fs, start, &|_| true, &opts, &mut r).expect("walk");
        r
    }

    #[test]
    fn loops_end_and_problems_are_reported_in_order() {
        let r = run(1024);
        // The root, 49 directories below it and 50 files; the link back to the root is a
        // loop, reported once.
        assert_eq!(r.seen.len(), 1 + 49 + 50);
        assert_eq!(r.seen[1], "file");
        assert_eq!(r.seen[2], "sub");
        assert!(r.problems.contains(&"Loop".to_string()), "{:?}", r.problems);
        assert!(r.problems.contains(&"Duplicate".to_string()));
        assert!(r.problems.contains(&"Metadata".to_string()));
        assert_eq!(r.problems.iter().filter(|p| *p == "BadName").count(), 2);
    }

    #[test]
    fn depth_is_bounded() {
        let r = run(10);
        assert!(
            r.problems.contains(&"TooDeep".to_string()),
            "{:?}",
            r.problems
        );
        assert!(r.seen.len() < 30);
    }
}
