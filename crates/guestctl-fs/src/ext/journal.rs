//! JBD2 journal replay into an in-memory overlay (ext3/ext4 `needs_recovery`).
//!
//! STUB: interface only; the replay itself is being written.

use std::collections::BTreeMap;

use crate::{Error, Result};

/// Where the journal's blocks come from (the journal inode, mapped by the ext reader).
pub trait JournalSource {
    /// Number of blocks in the journal (journal inode size / block size).
    fn blocks(&self) -> u64;
    /// The block size of the filesystem (and of the journal).
    fn block_size(&self) -> usize;
    /// Reads journal block `idx` (logical: 0 is the journal superblock) into `buf`
    /// (`buf.len() == block_size()`).
    fn read_block(&self, idx: u64, buf: &mut [u8]) -> Result<()>;
}

/// The newest committed copy of one filesystem block inside the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalCopy {
    /// Logical journal block holding the data.
    pub journal_block: u64,
    /// The first four bytes were escaped (they equal the JBD2 magic): restore them.
    pub escaped: bool,
}

/// The result of replaying a journal: which filesystem blocks read from where.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// Filesystem block number → its newest committed copy in the journal.
    pub blocks: BTreeMap<u64, JournalCopy>,
    /// Number of committed transactions replayed.
    pub transactions: u32,
    /// What a user should know (e.g. a torn last transaction ignored, fast-commit area skipped).
    pub notes: Vec<String>,
}

/// Replays the journal read through `src`. `fs_blocks` is the filesystem's block count
/// (targets at or beyond it are corrupt). Returns `None` when the journal is clean.
pub fn replay(_src: &dyn JournalSource, _fs_blocks: u64) -> Result<Option<Replay>> {
    Err(Error::unsupported("journal replay is not implemented yet"))
}
