//! The package's integration tests, as one binary (each test file used to link its own).

mod common;
mod corpus_support;

mod ext_corpus;
mod ext_debugfs;
mod ext_hostile;
mod ext_journal;
mod ext_mkfs;
mod fat_corpus;
mod fat_hostile;
mod fat_mkfs;
mod fuzz_regressions;
mod journal_replay;
mod ntfs_corpus;
mod ntfs_fixture;
mod ntfs_hostile;
mod ufs_makefs;
mod xfs_fixtures;
mod xfs_log;
mod xfs_mkfs;
