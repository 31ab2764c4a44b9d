//! The one error type of the filesystem layer: a kind plus the context a user needs to find the
//! problem (guest path, inode, on-disk structure, byte offset on the device) and the cause.

use std::borrow::Cow;
use std::fmt;

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading the underlying block device failed.
    Io,
    /// The filesystem contradicts its own format.
    Corrupt,
    /// A metadata checksum does not match (only when checksums are verified).
    Checksum,
    /// A valid filesystem (or file) uses a feature guestctl does not read.
    Unsupported,
    /// A path component does not exist.
    NotFound,
    /// A path component or node used as a directory is not one.
    NotADirectory,
    /// File contents were asked of a directory.
    IsADirectory,
    /// Too many symbolic links while resolving a path (or a link cycle).
    SymlinkLoop,
    /// A bound guestctl sets on hostile input was exceeded (sizes, counts, depths).
    Limit,
    /// A caller passed arguments that make no sense (e.g. a node id that is not an inode).
    InvalidInput,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Io => "I/O error",
            ErrorKind::Corrupt => "corrupt filesystem",
            ErrorKind::Checksum => "checksum mismatch",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::NotFound => "not found",
            ErrorKind::NotADirectory => "not a directory",
            ErrorKind::IsADirectory => "is a directory",
            ErrorKind::SymlinkLoop => "too many levels of symbolic links",
            ErrorKind::Limit => "limit exceeded",
            ErrorKind::InvalidInput => "invalid input",
        }
    }
}

/// An error from reading a filesystem.
///
/// Displays as one line: `PATH: inode N: STRUCTURE at offset 0x..: MESSAGE (kind)`, with the
/// parts that are known. The cause (a block-layer error, say) is the
/// [`std::error::Error::source`].
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
    guest_path: Option<String>,
    inode: Option<u64>,
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
            guest_path: None,
            inode: None,
            structure: None,
            offset: None,
            source: None,
        }
    }
    /// The filesystem contradicts its format.
    pub fn corrupt(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Corrupt, message)
    }
    /// A feature that is not read.
    pub fn unsupported(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    /// A bound on hostile input was exceeded.
    pub fn limit(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Limit, message)
    }
    /// Names the guest path (kept if already set).
    #[must_use]
    pub fn guest_path(mut self, path: impl Into<String>) -> Self {
        if self.guest_path.is_none() {
            self.guest_path = Some(path.into());
        }
        self
    }
    /// Names the inode / node (kept if already set).
    #[must_use]
    pub fn inode(mut self, inode: u64) -> Self {
        if self.inode.is_none() {
            self.inode = Some(inode);
        }
        self
    }
    /// Names the on-disk structure (kept if already set).
    #[must_use]
    pub fn structure(mut self, structure: impl Into<Cow<'static, str>>) -> Self {
        if self.structure.is_none() {
            self.structure = Some(structure.into());
        }
        self
    }
    /// The byte offset on the device of the structure (kept if already set).
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
    /// The message without context.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The guest path, when known.
    pub fn path_in_guest(&self) -> Option<&str> {
        self.guest_path.as_deref()
    }
    /// The inode number, when known.
    pub fn inode_number(&self) -> Option<u64> {
        self.inode
    }
    /// The on-disk structure, when known.
    pub fn structure_name(&self) -> Option<&str> {
        self.structure.as_deref()
    }
    /// The byte offset on the device, when known.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }
}

impl From<guestctl_block::Error> for Error {
    fn from(e: guestctl_block::Error) -> Self {
        use guestctl_block::ErrorKind as B;
        let kind = match e.kind() {
            B::Corrupt => ErrorKind::Corrupt,
            B::Unsupported | B::Refused => ErrorKind::Unsupported,
            B::OutOfRange => ErrorKind::Corrupt,
            B::InvalidInput => ErrorKind::InvalidInput,
            _ => ErrorKind::Io,
        };
        let offset = e.offset();
        let mut err = Error::new(kind, "reading the device failed").with_source(e);
        err.offset = offset;
        err
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.guest_path {
            write!(f, "{p}: ")?;
        }
        if let Some(i) = self.inode {
            write!(f, "inode {i}: ")?;
        }
        match (&self.structure, self.offset) {
            (Some(s), Some(o)) => write!(f, "{s} at offset {o:#x}: ")?,
            (Some(s), None) => write!(f, "{s}: ")?,
            (None, Some(o)) => write!(f, "at offset {o:#x}: ")?,
            (None, None) => {}
        }
        write!(f, "{}", self.message)?;
        if matches!(
            self.kind,
            ErrorKind::Corrupt | ErrorKind::Checksum | ErrorKind::Limit
        ) {
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
    fn display_has_all_context() {
        let e = Error::corrupt("extent header magic is 0x0000")
            .structure("extent tree node")
            .at(0x4400)
            .inode(12)
            .guest_path("/etc/passwd");
        assert_eq!(
            e.to_string(),
            "/etc/passwd: inode 12: extent tree node at offset 0x4400: extent header magic is 0x0000 (corrupt filesystem)"
        );
    }

    #[test]
    fn kind_as_str_covers_all() {
        assert_eq!(
            ErrorKind::SymlinkLoop.as_str(),
            "too many levels of symbolic links"
        );
    }
}
