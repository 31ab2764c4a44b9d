//! Operating-system inspection for guestctl: what virt-inspector reports, read in process.
//!
//! Inspection works on filesystems already opened (any [`guestctl_fs::Filesystem`]): each
//! candidate root is recognised by marker files, then release files, hostname, architecture
//! (ELF/PE headers), fstab and installed packages are read. Everything that cannot be read is
//! a `warning` in the result, never an abort: a guest is a stranger's disk.
//!
//! The parsers are I/O-free functions over bytes (`linux`, `packages`, `elf`, `windows`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bdb;
pub mod bsd;
pub mod elf;
mod inspector;
pub mod linux;
pub mod ndb;
pub mod packages;
pub mod sqlite;
pub mod windows;
mod windows_os;

use std::collections::BTreeMap;

use serde::Serialize;

pub use inspector::{
    inspect, plausible_root, unreadable_warning, Candidate, InspectOptions, Unreadable,
};

/// One installed application, with virt-inspector's `<application>` fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Application {
    /// Package name (`openssh-server`) or, on Windows, the Uninstall key name.
    pub name: String,
    /// Human name (Windows `DisplayName`), empty when none.
    pub display_name: String,
    /// Epoch (0 when none).
    pub epoch: u32,
    /// Version without epoch and release.
    pub version: String,
    /// Release (rpm) or Debian revision, empty when none.
    pub release: String,
    /// Architecture (`amd64`, `x86_64`, `noarch`), empty when none.
    pub arch: String,
    /// Windows `InstallLocation`.
    pub install_path: String,
    /// Windows `Publisher`.
    pub publisher: String,
    /// The source package it was built from (deb `Source`, rpm source rpm name).
    pub source_package: String,
    /// Homepage / `URLInfoAbout`.
    pub url: String,
    /// One-line summary.
    pub summary: String,
    /// Longer description.
    pub description: String,
}

/// A filesystem seen by inspection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FsRecord {
    /// libguestfs-style device (`/dev/sda1`).
    pub device: String,
    /// `ext4`, `vfat`, `ntfs`, `swap`, ...
    #[serde(rename = "type")]
    pub fs_type: String,
    /// Volume label.
    pub label: String,
    /// UUID or serial.
    pub uuid: String,
}

/// One operating system found on the disks, with virt-inspector's field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OsInfo {
    /// The device holding the root filesystem (`/dev/sda2`).
    pub root: String,
    /// `linux`, `windows`, `freebsd`, `netbsd`, `openbsd`, `hurd`, `unknown`.
    #[serde(rename = "type")]
    pub os_type: String,
    /// `debian`, `ubuntu`, `fedora`, `rhel`, `windows`, ... (`unknown` when not recognised).
    pub distro: String,
    /// Human product name (`Debian GNU/Linux 12 (bookworm)`, `Windows 7 Enterprise`).
    pub product_name: String,
    /// `Client`, `Server`, ... (Windows), empty elsewhere.
    pub product_variant: String,
    /// Major version number.
    pub major_version: u32,
    /// Minor version number.
    pub minor_version: u32,
    /// `x86_64`, `i386`, `aarch64`, `armv7l`, `ppc64le`, `s390x`, `riscv64`, ...
    pub arch: String,
    /// Host name.
    pub hostname: String,
    /// `deb`, `rpm`, `apk`, `pacman`, `ebuild`, ... (empty when unknown).
    pub package_format: String,
    /// `apt`, `dnf`, `yum`, `zypper`, `apk`, `pacman`, `portage`, ... (empty when unknown).
    pub package_management: String,
    /// libosinfo short id (`debian12`, `win7`, `fedora39`, `rocky9`): libguestfs's rules;
    /// `unknown` for a Linux root without a version.
    pub osinfo: String,
    /// Windows `%SystemRoot%` inside the guest (`/Windows`).
    pub windows_systemroot: String,
    /// Windows current control set (`ControlSet001`).
    pub windows_current_control_set: String,
    /// Mountpoint → device, from fstab (Linux/BSD) or the root alone.
    pub mountpoints: BTreeMap<String, String>,
    /// Filesystems belonging to this OS.
    pub filesystems: Vec<FsRecord>,
    /// Windows drive letter → device.
    pub drive_mappings: BTreeMap<String, String>,
    /// Installed applications (empty with `--no-applications`).
    pub applications: Vec<Application>,
    /// Kernels installed (`/boot/vmlinuz-*` versions, `/lib/modules/*`).
    pub kernels: Vec<String>,
    /// `systemd`, `sysvinit`, `openrc`, `upstart`, ... (empty when unknown).
    pub init_system: String,
    /// Windows build number, or os-release `BUILD_ID`.
    pub build_id: String,
    /// Time zone (`Europe/Paris`), empty when unknown.
    pub timezone: String,
    /// `/etc/machine-id` (Linux) or the Windows `MachineGuid`.
    pub machine_id: String,
    /// What could not be read, and why.
    pub warnings: Vec<String>,
}
