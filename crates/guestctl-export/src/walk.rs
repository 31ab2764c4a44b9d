//! copy-out's and tar-out's use of the one bounded walk (`guestctl_fs::walk`): the walk's
//! problems go to the [`Sink`] as errors, excludes decide what is walked at all, and a
//! visitor's error stops the walk.
//!
//! Entries of a directory are visited in name order (byte order), directories before their
//! contents and left after them. Names that cannot be one path component, later duplicates,
//! excluded entries, directories already visited (a corrupt tree can link one twice) and
//! anything past [`MAX_DEPTH`] are skipped; errors go to the [`Sink`] and the walk goes on.

use guestctl_fs::walk::{self as fswalk, Problem, WalkOptions};
use guestctl_fs::Filesystem;

use crate::error::show;
use crate::{Error, Excludes, Result, Sink};

pub(crate) use guestctl_fs::walk::{bad_name, Item, Visit};

/// Deepest directory nesting walked below the starting directory.
pub const MAX_DEPTH: usize = 1024;
/// Most entries one walk visits; past it the walk stops with an error.
pub const MAX_ENTRIES: u64 = 1 << 26;

/// What the walk calls; an `Err` is fatal and stops the walk.
pub(crate) trait Visitor {
    /// Called for every node in pre-order (the start first).
    fn entry(&mut self, item: &Item, sink: &mut Sink<'_>) -> Result<Visit>;
    /// Called after a descended directory's entries.
    fn leave(&mut self, item: &Item, sink: &mut Sink<'_>) -> Result<()>;
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

/// The walk's problem as the export's error, naming the guest path.
fn problem_error(base: &[u8], p: Problem) -> Error {
    match p {
        Problem::ReadDir { rel, error } => {
            Error::guest(&guest_path(base, &rel), "cannot read directory", error)
        }
        Problem::Metadata { rel, error } => {
            Error::guest(&guest_path(base, &rel), "cannot read metadata", error)
        }
        Problem::BadName { dir, name, why } => {
            let mut shown = guest_path(base, &dir);
            shown.push(b'/');
            shown.extend_from_slice(&show(&name).into_bytes());
            Error::skipped(&shown, format!("skipped: {why}"))
        }
        Problem::Duplicate { rel } => Error::skipped(
            &guest_path(base, &rel),
            "skipped: a second entry with the same name in this directory",
        ),
        Problem::Loop { rel } => Error::skipped(
            &guest_path(base, &rel),
            "skipped: directory already visited (corrupt filesystem: directory loop)",
        ),
        Problem::TooDeep { rel } => Error::skipped(
            &guest_path(base, &rel),
            format!("not descended: deeper than {MAX_DEPTH} directories"),
        ),
        Problem::TooMany { rel } => Error::skipped(
            &guest_path(base, &rel),
            format!("walk stopped: more than {MAX_ENTRIES} entries"),
        ),
        other => Error::skipped(&guest_path(base, b""), format!("{other:?}")),
    }
}

struct Adapter<'a, 'b, 's> {
    base: &'a [u8],
    sink: &'a mut Sink<'s>,
    visitor: &'b mut dyn Visitor,
}

impl fswalk::Visitor for Adapter<'_, '_, '_> {
    type Error = Error;
    fn entry(&mut self, item: &Item) -> Result<Visit> {
        self.visitor.entry(item, self.sink)
    }
    fn leave(&mut self, item: &Item) -> Result<()> {
        self.visitor.leave(item, self.sink)
    }
    fn problem(&mut self, p: Problem) -> Result<()> {
        self.sink.error(problem_error(self.base, p));
        Ok(())
    }
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
    let opts = WalkOptions {
        max_depth: MAX_DEPTH,
        max_entries: MAX_ENTRIES,
    };
    let mut a = Adapter {
        base,
        sink,
        visitor,
    };
    fswalk::walk(fs, start, &|rel| !excludes.matches(rel), &opts, &mut a)
}
