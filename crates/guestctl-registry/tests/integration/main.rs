//! The package's integration tests, as one binary (each test file used to link its own).

mod common;

mod hostile_hives;
mod upstream_hives;
mod yarp_hives;
