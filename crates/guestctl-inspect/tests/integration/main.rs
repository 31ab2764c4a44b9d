//! The package's integration tests, as one binary (each test file used to link its own).

mod rpmdb;
mod windows_hives;
mod windows_hivex;
