//! The package's integration tests, as one binary (each test file used to link its own).

mod support;

mod api;
mod cli;
mod cli_export;
mod cli_files;
mod convert_qcow2;
mod convert_safety;
mod convert_vhdx;
mod convert_vmdk;
mod corpus_containers;
mod fixtures;
mod fuzz_regressions;
mod hostile;
mod inspect_bsd;
mod inspect_linux;
mod inspect_rhel;
mod inspect_windows;
mod qcow2_variants;
mod vhd_vdi;
mod vhdx_chains;
mod vhdx_variants;
mod vmdk_variants;
