//! The crate's one error type and the non-fatal [`Problem`]s reported during a walk.

use std::path::PathBuf;

/// Result alias for this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An export failure. Displays as one line naming the guest path (or host path) and what was
/// being done; the cause is the [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the guest filesystem failed.
    #[error("{path}: {what}")]
    Guest {
        /// Guest path (absolute).
        path: String,
        /// What was being done.
        what: &'static str,
        /// The filesystem error.
        #[source]
        source: guestctl_fs::Error,
    },
    /// A host file operation failed.
    #[error("{}: {what}", path.display())]
    Host {
        /// Host path.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An entry was skipped on purpose (hostile name, duplicate, device node, ...).
    #[error("{path}: {why}")]
    Skipped {
        /// Guest path (as far as it can be shown).
        path: String,
        /// Why it was skipped.
        why: String,
    },
    /// A host file is in the way and `--force` was not given (or cannot replace it).
    #[error("{}: {why}", path.display())]
    Refused {
        /// Host path.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// Arguments that make no sense (an empty exclude pattern, a destination that is not a
    /// directory, ...).
    #[error("{0}")]
    InvalidInput(String),
}

impl Error {
    pub(crate) fn guest(path: &[u8], what: &'static str, source: guestctl_fs::Error) -> Self {
        Error::Guest {
            path: show(path),
            what,
            source,
        }
    }

    pub(crate) fn host(
        path: impl Into<PathBuf>,
        what: impl Into<String>,
        source: std::io::Error,
    ) -> Self {
        Error::Host {
            path: path.into(),
            what: what.into(),
            source,
        }
    }

    pub(crate) fn skipped(path: &[u8], why: impl Into<String>) -> Self {
        Error::Skipped {
            path: show(path),
            why: why.into(),
        }
    }
}

/// A guest path for messages: lossy UTF-8, control characters escaped so a hostile name
/// cannot rewrite the terminal.
pub(crate) fn show(path: &[u8]) -> String {
    let s = String::from_utf8_lossy(path);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// How bad a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Something could not be read or written: the export is incomplete.
    Error,
    /// An entry was skipped by design (a device node in copy-out, ...).
    Warning,
}

/// A failure that did not stop the walk.
#[derive(Debug)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// What happened.
    pub error: Error,
}
