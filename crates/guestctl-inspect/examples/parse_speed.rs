//! Times each inspection parser on one input file (to find slow paths found by fuzzing).
//! Usage: cargo run --release -p guestctl-inspect --example parse_speed FILE
use guestctl_inspect::{linux, packages, sqlite};
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("usage: parse_speed FILE");
    let data = std::fs::read(path).expect("read");
    let mut w = Vec::new();
    let t = |name: &str, f: &mut dyn FnMut()| {
        let s = Instant::now();
        f();
        println!("{name:<12} {:?}", s.elapsed());
    };
    t("sqlite", &mut || {
        drop(sqlite::read_table(&data, "Packages"))
    });
    t("rpm", &mut || drop(packages::parse_rpm_header(&data)));
    t("bdb", &mut || {
        drop(packages::rpmdb_bdb("bdb", &data, &mut w))
    });
    t("ndb", &mut || {
        drop(packages::rpmdb_ndb("ndb", &data, &mut w))
    });
    t("dpkg", &mut || {
        drop(packages::parse_dpkg_status(&data, &mut w))
    });
    t("apk", &mut || {
        drop(packages::parse_apk_installed(&data, &mut w))
    });
    t("legacy", &mut || {
        for (p, d) in linux::LEGACY_RELEASE_FILES {
            drop(linux::release_from_legacy(p, d, &data));
        }
    });
    t("fstab", &mut || drop(linux::parse_fstab(&data, &mut w)));
    t("os-release", &mut || {
        drop(linux::release_from_os_release(&data))
    });
}
