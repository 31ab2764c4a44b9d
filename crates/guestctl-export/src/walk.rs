//! The bounded depth-first walk shared by copy-out and tar-out.
//!
//! Entries of a directory are visited in name order (byte order), directories before their
//! contents and left after them. Names that cannot be one path component, later duplicates,
//! excluded entries, directories already visited (a corrupt tree can link one twice) and
//! anything past [`MAX_DEPTH`] are skipped; errors go to the [`Sink`] and the walk goes on.

use std::collections::HashSet;

use guestctl_fs::{DirEntry, FileType, Filesystem, Metadata, NodeId};
use rayon::prelude::*;

use crate::error::show;
use crate::{Error, Excludes, Result, Sink};

/// Deepest directory nesting walked below the starting directory.
pub const MAX_DEPTH: usize = 1024;
/// Most entries one walk visits; past it the walk stops with an error.
pub const MAX_ENTRIES: u64 = 1 << 26;

/// Directories with at least this many entries have their metadata read in parallel.
const PAR_METADATA: usize = 32;

/// One node reached by the walk.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// Path relative to the starting node, components joined by `/`; empty for the start.
    pub rel: Vec<u8>,
    /// The node.
    pub node: NodeId,
    /// Its metadata.
    pub meta: Metadata,
}

/// What to do after visiting a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visit {
    /// Walk its entries.
    Descend,
    /// Do not.
    Skip,
}

/// What the walk calls; an `Err` is fatal and stops the walk.
pub(crate) trait Visitor {
    /// Called for every node in pre-order (the start first).
    fn entry(&mut self, item: &Item, sink: &mut Sink<'_>) -> Result<Visit>;
    /// Called after a descended directory's entries.
    fn leave(&mut self, item: &Item, sink: &mut Sink<'_>) -> Result<()>;
}

/// Why `name` cannot be a single path component, if it cannot.
pub(crate) fn bad_name(name: &[u8]) -> Option<&'static str> {
    match name {
        b"" => Some("empty name"),
        b"." | b".." => Some("name is . or .."),
        n if n.contains(&b'/') => Some("name contains '/'"),
        n if n.contains(&0) => Some("name contains a NUL byte"),
        _ => None,
    }
}

/// `base` + `/` + `rel`, for messages (base is the guest path the walk started at).
pub(crate) fn guest_path(base: &[u8], rel: &[u8]) -> Vec<u8> {
    let mut p = base.to_vec();
    if !rel.is_empty() {
        if p.last() != Some(&b'/') {
            p.push(b'/');
        }
        p.extend_from_slice(rel);
    }
    p
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

struct Frame {
    item: Item,
    entries: std::vec::IntoIter<Item>,
}

/// Reads, checks and sorts the entries of one directory into items.
fn children(
    fs: &dyn Filesystem,
    base: &[u8],
    dir: &Item,
    excludes: &Excludes,
    sink: &mut Sink<'_>,
) -> Vec<Item> {
    let mut entries: Vec<DirEntry> = match fs.read_dir(dir.node) {
        Ok(e) => e,
        Err(e) => {
            sink.error(Error::guest(
                &guest_path(base, &dir.rel),
                "cannot read directory",
                e,
            ));
            return Vec::new();
        }
    };
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut keep = Vec::with_capacity(entries.len());
    for e in entries {
        if let Some(why) = bad_name(&e.name) {
            let mut shown = guest_path(base, &dir.rel);
            shown.push(b'/');
            shown.extend_from_slice(&show(&e.name).into_bytes());
            sink.error(Error::skipped(&shown, format!("skipped: {why}")));
            continue;
        }
        let rel = join(&dir.rel, &e.name);
        if !seen.insert(e.name.clone()) {
            sink.error(Error::skipped(
                &guest_path(base, &rel),
                "skipped: a second entry with the same name in this directory",
            ));
            continue;
        }
        if excludes.matches(&rel) {
            continue;
        }
        keep.push((rel, e.node));
    }
    let metas: Vec<guestctl_fs::Result<Metadata>> = if keep.len() >= PAR_METADATA {
        keep.par_iter().map(|(_, n)| fs.metadata(*n)).collect()
    } else {
        keep.iter().map(|(_, n)| fs.metadata(*n)).collect()
    };
    let mut items = Vec::with_capacity(keep.len());
    for ((rel, node), m) in keep.into_iter().zip(metas) {
        match m {
            Ok(meta) => items.push(Item { rel, node, meta }),
            Err(e) => sink.error(Error::guest(
                &guest_path(base, &rel),
                "cannot read metadata",
                e,
            )),
        }
    }
    items
}

/// Walks from `start` (whose path in the guest is `base`), calling `visitor` for each node.
pub(crate) fn walk(
    fs: &dyn Filesystem,
    base: &[u8],
    start: Item,
    excludes: &Excludes,
    sink: &mut Sink<'_>,
    visitor: &mut dyn Visitor,
) -> Result<()> {
    let mut visited: HashSet<NodeId> = HashSet::new();
    let mut count: u64 = 1;
    let mut stack: Vec<Frame> = Vec::new();
    let descend = visitor.entry(&start, sink)?;
    if start.meta.file_type == FileType::Directory && descend == Visit::Descend {
        visited.insert(start.node);
        let entries = children(fs, base, &start, excludes, sink).into_iter();
        stack.push(Frame {
            item: start,
            entries,
        });
    }
    while let Some(top) = stack.last_mut() {
        let Some(item) = top.entries.next() else {
            if let Some(done) = stack.pop() {
                visitor.leave(&done.item, sink)?;
            }
            continue;
        };
        count += 1;
        if count > MAX_ENTRIES {
            sink.error(Error::skipped(
                &guest_path(base, &item.rel),
                format!("walk stopped: more than {MAX_ENTRIES} entries"),
            ));
            // Leave every open directory so modes and times are still applied.
            while let Some(done) = stack.pop() {
                visitor.leave(&done.item, sink)?;
            }
            break;
        }
        let is_dir = item.meta.file_type == FileType::Directory;
        if is_dir && visited.contains(&item.node) {
            sink.error(Error::skipped(
                &guest_path(base, &item.rel),
                "skipped: directory already visited (corrupt filesystem: directory loop)",
            ));
            continue;
        }
        if visitor.entry(&item, sink)? == Visit::Descend && is_dir {
            if stack.len() >= MAX_DEPTH {
                sink.error(Error::skipped(
                    &guest_path(base, &item.rel),
                    format!("not descended: deeper than {MAX_DEPTH} directories"),
                ));
                visitor.leave(&item, sink)?;
                continue;
            }
            visited.insert(item.node);
            let entries = children(fs, base, &item, excludes, sink).into_iter();
            stack.push(Frame { item, entries });
        }
    }
    Ok(())
}
