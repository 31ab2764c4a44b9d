//! Extracting files from a guest filesystem: `copy-out` into a host directory and `tar-out`
//! as a streaming tar archive.
//!
//! Both walk any [`guestctl_fs::Filesystem`] (ext2/3/4, FAT, NTFS, ...) with the trait only,
//! never re-resolving paths, and never stop at one bad node: each failure becomes a
//! [`Problem`] naming the guest path and its cause, handed to the caller's sink, and the walk
//! goes on. Walks are bounded ([`MAX_DEPTH`] directory levels, [`MAX_ENTRIES`] entries) and
//! skip directories they have already visited, so a corrupt tree cannot loop.
//!
//! What is refused, on purpose:
//! - names that cannot be a single path component (empty, `.`, `..`, containing `/` or NUL)
//!   and later duplicates of a name in one directory are skipped and reported;
//! - `copy-out` writes only below its destination directory: every file, symlink and fifo is
//!   created under a fresh temporary name (`O_EXCL`, so never through a symlink) inside a
//!   directory it created or checked with `symlink_metadata`, then renamed into place; guest
//!   symlinks are recreated with their stored target and never followed; device nodes and
//!   sockets are skipped with a warning (creating them needs root);
//! - `tar-out` writes its archive under a temporary name beside the output and renames it only
//!   when complete; on a fatal error the temporary file is removed.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod copy;
mod error;
mod exclude;
mod owners;
mod tar_out;
mod walk;

#[cfg(test)]
mod memfs;

pub use copy::{copy_out, CopyOptions};
pub use error::{Error, Problem, Result, Severity};
pub use exclude::{Exclude, Excludes};
pub use tar_out::{tar_out, Compression, TarOptions, TarOutput};
pub use walk::{MAX_DEPTH, MAX_ENTRIES};

/// What an export did: counts for a summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Entries written (directories, files, links, ...).
    pub entries: u64,
    /// File content bytes written.
    pub bytes: u64,
    /// Problems reported as errors (the export is incomplete).
    pub errors: u64,
    /// Problems reported as warnings (an entry deliberately skipped).
    pub warnings: u64,
}

/// Where problems and progress go while an export runs.
pub struct Sink<'a> {
    problem: &'a mut dyn FnMut(Problem),
    progress: Option<&'a (dyn Fn(u64) + Sync)>,
    summary: Summary,
}

impl<'a> Sink<'a> {
    /// A sink that hands every problem to `problem` as it happens.
    pub fn new(problem: &'a mut dyn FnMut(Problem)) -> Self {
        Sink {
            problem,
            progress: None,
            summary: Summary::default(),
        }
    }

    /// Also calls `progress` with the number of content bytes written after each piece.
    #[must_use]
    pub fn with_progress(mut self, progress: &'a (dyn Fn(u64) + Sync)) -> Self {
        self.progress = Some(progress);
        self
    }

    pub(crate) fn error(&mut self, error: Error) {
        self.summary.errors += 1;
        (self.problem)(Problem {
            severity: Severity::Error,
            error,
        });
    }

    pub(crate) fn warning(&mut self, error: Error) {
        self.summary.warnings += 1;
        (self.problem)(Problem {
            severity: Severity::Warning,
            error,
        });
    }

    pub(crate) fn bytes(&mut self, n: u64) {
        self.summary.bytes += n;
        if let Some(p) = self.progress {
            p(n);
        }
    }

    pub(crate) fn entry(&mut self) {
        self.summary.entries += 1;
    }

    /// Reports a fatal error of one export as an error problem (to go on with the next).
    pub fn report(&mut self, error: Error) {
        self.error(error);
    }

    /// The counts so far.
    pub fn summary(&self) -> Summary {
        self.summary
    }
}

impl std::fmt::Debug for Sink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
