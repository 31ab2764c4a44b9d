//! The one error type of the [`crate::Guestfs`] API: a kind, the device or guest path it is
//! about, a message, and the cause chain (`std::error::Error::source`) down to the layer that
//! failed (image format, partition table, filesystem structure, host I/O).

use std::fmt;

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The handle is not in the state the call needs (not launched, nothing mounted, drives
    /// added after launch, no hive open).
    State,
    /// A bad argument: not an absolute path, an unknown checksum type, a negative count.
    InvalidInput,
    /// No such device, file, root or hive node.
    NotFound,
    /// A path component (or the argument) is not a directory.
    NotADirectory,
    /// A directory where a file was expected.
    IsADirectory,
    /// Something guestctl does not read or do (a filesystem type, a mount option, a write).
    Unsupported,
    /// Damaged on-disk data (image, partition table, filesystem, hive), or a checksum mismatch.
    Corrupt,
    /// A limit was reached (symlink loop, size cap).
    Limit,
    /// Host I/O failed.
    Io,
}

impl ErrorKind {
    /// A short lower-case name (`not found`, `corrupt`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::State => "wrong state",
            ErrorKind::InvalidInput => "invalid argument",
            ErrorKind::NotFound => "not found",
            ErrorKind::NotADirectory => "not a directory",
            ErrorKind::IsADirectory => "is a directory",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Limit => "limit reached",
            ErrorKind::Io => "I/O error",
        }
    }
}

/// A failure of a [`crate::Guestfs`] call: `Display` is one line (`/dev/sda1: /etc/x: no
/// entry 'x'`); the layers below are its [`std::error::Error::source`] chain.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    device: Option<String>,
    path: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            device: None,
            path: None,
            source: None,
        }
    }

    /// A [`ErrorKind::State`] error.
    pub fn state(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::State, message)
    }

    /// A [`ErrorKind::InvalidInput`] error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, message)
    }

    /// A [`ErrorKind::Unsupported`] error.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unsupported, message)
    }

    /// A [`ErrorKind::NotFound`] error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, message)
    }

    /// Names the device (`/dev/sda1`) the error is about.
    #[must_use]
    pub fn with_device(mut self, device: impl Into<String>) -> Self {
        self.device = Some(device.into());
        self
    }

    /// Names the guest path (`/etc/fstab`) the error is about, unless one is already named.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        if self.path.is_none() {
            self.path = Some(path.into());
        }
        self
    }

    /// Attaches the lower-level cause.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without device or path.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The device the error is about, if any.
    pub fn device(&self) -> Option<&str> {
        self.device.as_deref()
    }

    /// The guest path the error is about, if any.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.device {
            write!(f, "{d}: ")?;
        }
        if let Some(p) = &self.path {
            write!(f, "{p}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<crate::fs::Error> for Error {
    fn from(e: crate::fs::Error) -> Self {
        use crate::fs::ErrorKind as K;
        let kind = match e.kind() {
            K::Io => ErrorKind::Io,
            K::Corrupt | K::Checksum => ErrorKind::Corrupt,
            K::Unsupported => ErrorKind::Unsupported,
            K::NotFound => ErrorKind::NotFound,
            K::NotADirectory => ErrorKind::NotADirectory,
            K::IsADirectory => ErrorKind::IsADirectory,
            K::SymlinkLoop | K::Limit => ErrorKind::Limit,
            K::InvalidInput => ErrorKind::InvalidInput,
            _ => ErrorKind::Io,
        };
        let path = e.path_in_guest().map(str::to_string);
        let mut out = Error::new(kind, e.to_string());
        out.path = path;
        // The message already carries the path; keep it once.
        out.message = match &out.path {
            Some(p) => out
                .message
                .strip_prefix(&format!("{p}: "))
                .map(str::to_string)
                .unwrap_or_else(|| out.message.clone()),
            None => out.message,
        };
        if std::error::Error::source(&e).is_some() {
            out.source = Some(Box::new(SourceText(chain_text(&e))));
        }
        out
    }
}

impl From<crate::block::Error> for Error {
    fn from(e: crate::block::Error) -> Self {
        use crate::block::ErrorKind as K;
        let kind = match e.kind() {
            K::Io => ErrorKind::Io,
            K::Corrupt => ErrorKind::Corrupt,
            K::Unsupported | K::Refused => ErrorKind::Unsupported,
            K::OutOfRange | K::InvalidInput => ErrorKind::InvalidInput,
            _ => ErrorKind::Io,
        };
        wrap(kind, &e)
    }
}

impl From<crate::export::Error> for Error {
    fn from(e: crate::export::Error) -> Self {
        wrap(ErrorKind::Io, &e)
    }
}

impl From<crate::registry::Error> for Error {
    fn from(e: crate::registry::Error) -> Self {
        wrap(ErrorKind::Corrupt, &e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::Io,
        };
        Error::new(kind, e.to_string())
    }
}

/// `e`'s own text as the message, the text of its causes as the source.
fn wrap(kind: ErrorKind, e: &dyn std::error::Error) -> Error {
    let mut out = Error::new(kind, e.to_string());
    if e.source().is_some() {
        out.source = Some(Box::new(SourceText(chain_text(e))));
    }
    out
}

/// The text of an error's causes (below it), joined by `: `.
fn chain_text(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

/// The causes of a lower layer's error, kept as one line of text (its own text is the
/// message already, so the chain does not repeat it).
#[derive(Debug)]
struct SourceText(String);

impl fmt::Display for SourceText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SourceText {}
