//! The crate's one error type.

/// What went wrong while reading a hive.
///
/// Every variant that comes from the hive's bytes names the on-disk structure and the byte
/// offset of that structure **in the hive file** (cell offsets are relative to the first hive
/// bin; they are reported here plus 4096, so they can be looked up with a hex dump).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes do not form a valid structure.
    #[error("{structure} at offset {offset:#x}: {reason} (corrupt hive)")]
    Corrupt {
        /// The structure being read (`base block`, `nk`, `lf list`, ...).
        structure: &'static str,
        /// Byte offset of the structure in the hive file.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A size, count, depth or amount of work read from the hive is larger than this crate
    /// accepts.
    #[error("{structure} at offset {offset:#x}: {what} is {found}, limit is {limit}")]
    Limit {
        /// The structure being read.
        structure: &'static str,
        /// Byte offset of the structure in the hive file.
        offset: u64,
        /// The quantity that was bounded.
        what: &'static str,
        /// The value found (or reached).
        found: u64,
        /// The largest value accepted.
        limit: u64,
    },
    /// A value was asked for as a type it does not have (e.g. `as_u32` on a `REG_SZ`).
    #[error("value {name:?}: type {data_type:#x} ({len} bytes) cannot be read as {wanted}")]
    Type {
        /// The value's name (empty for the default value).
        name: String,
        /// Its `REG_*` type.
        data_type: u32,
        /// Its data length.
        len: usize,
        /// What the caller asked for.
        wanted: &'static str,
    },
}

impl Error {
    pub(crate) fn corrupt(structure: &'static str, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            structure,
            offset,
            reason: reason.into(),
        }
    }

    pub(crate) fn limit(
        structure: &'static str,
        offset: u64,
        what: &'static str,
        found: u64,
        limit: u64,
    ) -> Self {
        Error::Limit {
            structure,
            offset,
            what,
            found,
            limit,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
