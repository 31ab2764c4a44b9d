//! Shared helpers: locating ../shared/corpus (or $GUESTCTL_CORPUS) and decompressing `.xz`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use guestctl_registry::Hive;

pub fn corpus(rel: &str) -> PathBuf {
    let base = std::env::var_os("GUESTCTL_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
        });
    let p = base.join(rel);
    assert!(
        p.exists(),
        "corpus file missing: {} (set GUESTCTL_CORPUS to the shared corpus)",
        p.display()
    );
    p
}

pub fn read(rel: &str) -> Vec<u8> {
    std::fs::read(corpus(rel)).expect("read corpus file")
}

/// Decompresses a `.xz` file of the corpus in memory with `xz -dc`.
pub fn read_xz(rel: &str) -> Vec<u8> {
    let out = Command::new("xz")
        .arg("-dc")
        .arg(corpus(rel))
        .output()
        .expect("run xz -dc (install xz-utils)");
    assert!(out.status.success(), "xz -dc {rel} failed");
    out.stdout
}

pub fn hive(rel: &str) -> Hive {
    Hive::from_bytes(read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

pub fn hive_xz(rel: &str) -> Hive {
    Hive::from_bytes(read_xz(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// FILETIME → (year, month, day, hour, minute, second) UTC.
pub fn filetime_civil(ft: u64) -> (i64, u32, u32, u32, u32, u32) {
    let secs = (ft / 10_000_000) as i64 - 11_644_473_600;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 { y + 1 } else { y },
        m,
        d,
        (rem / 3600) as u32,
        (rem / 60 % 60) as u32,
        (rem % 60) as u32,
    )
}
