//! The package's integration tests, as one binary (each test file used to link its own).

mod lvm_common;

mod fuzz_regressions;
mod lvm_fixture;
mod lvm_hostile;
mod lvm_text;
mod part_corpus;
mod part_tools;
