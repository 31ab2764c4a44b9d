//! The inspection parsers over arbitrary bytes: the rpmdb in its three formats (SQLite tables,
//! Berkeley DB hash/btree files, ndb `Packages.db`), rpm headers, dpkg status, apk and pacman
//! databases, os-release / lsb / legacy release files, fstab, ELF. Seeds: scripts/fuzz-seeds.sh
//! (fuzz/corpus/inspect_parsers).
#![no_main]

use guestctl_inspect::{bsd, elf, linux, packages, sqlite};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rows) = sqlite::read_table(data, "Packages") {
        for (_, cols) in rows {
            for c in cols {
                if let sqlite::Value::Blob(b) = c {
                    let _ = packages::parse_rpm_header(&b);
                }
            }
        }
    }
    let _ = packages::parse_rpm_header(data);
    let mut w = Vec::new();
    // Each parses every header blob it finds.
    let _ = packages::rpmdb_bdb("fuzz", data, &mut w);
    let _ = packages::rpmdb_ndb("fuzz", data, &mut w);
    let _ = packages::parse_dpkg_status(data, &mut w);
    let _ = packages::parse_apk_installed(data, &mut w);
    let _ = packages::parse_pacman_desc(data);
    let _ = linux::release_from_os_release(data);
    let _ = linux::release_from_lsb_release(data);
    for (path, distro) in linux::LEGACY_RELEASE_FILES {
        let _ = linux::release_from_legacy(path, distro, data);
    }
    let _ = linux::parse_fstab(data, &mut w);
    let _ = linux::parse_hostname(data, true);
    let _ = linux::parse_timezone_file(data);
    let _ = elf::elf_arch(data);
    let _ = sqlite::read_table_with_columns(data, "packages");
    let text = String::from_utf8_lossy(data);
    let _ = sqlite::column_names(&text);
    let _ = bsd::parse_device(&text);
    let _ = bsd::split_pkg_dir(&text);
    let _ = bsd::release_from_banner(data, "FreeBSD");
    let _ = bsd::freebsd_userland_version(data);
    let _ = bsd::rc_conf_hostname(data);
    let _ = bsd::myname(data);
});
