//! The one error type of the I/O layer: a kind, the context (image path, on-disk structure,
//! byte offset, what went wrong) and an optional source.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The operating system refused or failed an I/O call.
    Io,
    /// The image contradicts its own format (bad magic, offsets out of range, bad tables).
    Corrupt,
    /// A valid image uses a feature or format guestctl does not read.
    Unsupported,
    /// guestctl refused on purpose (backing-file policy, encryption, limits).
    Refused,
    /// A read or map outside the device.
    OutOfRange,
    /// A caller passed arguments that make no sense.
    InvalidInput,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Io => "I/O error",
            ErrorKind::Corrupt => "corrupt image",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Refused => "refused",
            ErrorKind::OutOfRange => "out of range",
            ErrorKind::InvalidInput => "invalid input",
        }
    }
}

/// An error from reading or interpreting a disk image.
///
/// Displays as one line, `PATH: STRUCTURE at offset N: MESSAGE`, with the parts that are known;
/// the underlying cause (if any) is available through [`std::error::Error::source`].
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
    path: Option<PathBuf>,
    structure: Option<Cow<'static, str>>,
    offset: Option<u64>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Result alias for this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a human message.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            message: message.into(),
            path: None,
            structure: None,
            offset: None,
            source: None,
        }
    }
    /// The image contradicts its format.
    pub fn corrupt(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Corrupt, message)
    }
    /// A feature or format that is not read.
    pub fn unsupported(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    /// Refused by policy.
    pub fn refused(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Refused, message)
    }
    /// An operating-system I/O failure while doing `what`.
    pub fn io(source: std::io::Error, what: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Io, what).with_source(source)
    }
    /// Names the image file the error is about (kept if already set).
    #[must_use]
    pub fn path(mut self, path: impl AsRef<Path>) -> Self {
        if self.path.is_none() {
            self.path = Some(path.as_ref().to_path_buf());
        }
        self
    }
    /// Names the on-disk structure the error is about (kept if already set).
    #[must_use]
    pub fn structure(mut self, structure: impl Into<Cow<'static, str>>) -> Self {
        if self.structure.is_none() {
            self.structure = Some(structure.into());
        }
        self
    }
    /// The byte offset (in the file named by [`Error::path`]) of the structure (kept if set).
    #[must_use]
    pub fn at(mut self, offset: u64) -> Self {
        if self.offset.is_none() {
            self.offset = Some(offset);
        }
        self
    }
    /// Attaches an underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// The image file, when known.
    pub fn file(&self) -> Option<&Path> {
        self.path.as_deref()
    }
    /// The on-disk structure, when known.
    pub fn structure_name(&self) -> Option<&str> {
        self.structure.as_deref()
    }
    /// The byte offset, when known.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }
    /// The message without context.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.path {
            write!(f, "{}: ", p.display())?;
        }
        match (&self.structure, self.offset) {
            (Some(s), Some(o)) => write!(f, "{s} at offset {o:#x}: ")?,
            (Some(s), None) => write!(f, "{s}: ")?,
            (None, Some(o)) => write!(f, "at offset {o:#x}: ")?,
            (None, None) => {}
        }
        write!(f, "{}", self.message)?;
        if self.kind == ErrorKind::Corrupt {
            write!(f, " ({})", self.kind.as_str())?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_structure_offset() {
        let e = Error::corrupt("entry points past end of file")
            .structure("qcow2 L2 table")
            .at(0x30000)
            .path("disk.qcow2");
        assert_eq!(
            e.to_string(),
            "disk.qcow2: qcow2 L2 table at offset 0x30000: entry points past end of file (corrupt image)"
        );
        assert_eq!(e.kind(), ErrorKind::Corrupt);
    }

    #[test]
    fn first_context_wins() {
        let e = Error::corrupt("x")
            .path("inner.vmdk")
            .path("outer.vmdk")
            .at(1)
            .at(2);
        assert_eq!(e.file(), Some(Path::new("inner.vmdk")));
        assert_eq!(e.offset(), Some(1));
    }
}
