//! ext2, ext3 and ext4, read-only, with JBD2 journal replay in memory.

#[doc(hidden)]
pub mod journal;
