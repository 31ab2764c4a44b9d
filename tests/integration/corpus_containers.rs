//! Every container image of ../shared/corpus/ORACLE_qemu-img.tsv: the formats we read give
//! exactly qemu-img's raw content (sha256), the others are refused with "unsupported format".
//! Read: qcow2, vmdk, vpc (VHD), vdi.

use crate::support;

use std::path::Path;

use guestctl::block::ErrorKind;
use guestctl::{open_image, OpenOptions};
use support::*;

struct Row {
    path: String,
    format: String,
    size: u64,
    sha256: String,
}

fn oracle() -> Vec<Row> {
    let text = std::fs::read_to_string(corpus().join("ORACLE_qemu-img.tsv")).expect("oracle");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Row {
                path: f[0].trim_start_matches("./").to_string(),
                format: f.get(1).copied().unwrap_or("").to_string(),
                size: f.get(2).and_then(|s| s.parse().ok()).unwrap_or(0),
                sha256: f.get(3).copied().unwrap_or("").to_string(),
            }
        })
        .collect()
}

/// The qemu-img formats guestctl reads.
fn read_by_us(format: &str) -> bool {
    matches!(format, "qcow2" | "vmdk" | "vpc" | "vdi" | "vhdx")
}

/// Materialises the entry (and its siblings, for chains and data files) into `dir`.
fn fetch(row: &Row, dir: &Path) -> std::path::PathBuf {
    let src = corpus().join(&row.path);
    let parent = src.parent().expect("parent");
    let gz = src.with_file_name(format!(
        "{}.gz",
        src.file_name().expect("n").to_string_lossy()
    ));
    if gz.is_file() {
        // Chains and data files reference siblings by name.
        materialize_dir(parent, dir);
        dir.join(src.file_name().expect("n"))
    } else {
        assert!(src.is_file(), "corpus file missing: {}", src.display());
        src
    }
}

#[test]
fn supported_containers_match_qemu_img() {
    let rows = oracle();
    let mut checked = 0;
    for row in rows.iter().filter(|r| read_by_us(&r.format)) {
        let dir = tempfile::tempdir().expect("tmp");
        let p = fetch(row, dir.path());
        let img =
            open_image(&p, &OpenOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", row.path));
        assert_eq!(img.info().format.name(), row.format, "{}", row.path);
        assert_eq!(img.device().size(), row.size, "{}", row.path);
        assert_eq!(
            sha256_device(img.device().as_ref()),
            row.sha256,
            "{}",
            row.path
        );
        checked += 1;
    }
    assert!(checked >= 18, "only {checked} containers checked");
}

#[test]
fn unsupported_containers_are_refused_cleanly() {
    let rows = oracle();
    let mut checked = 0;
    for row in rows
        .iter()
        // qemu probes a fixed VHD as raw ("raw-only"); guestctl reads it as vpc (vhd_vdi.rs).
        .filter(|r| {
            !read_by_us(&r.format)
                && !r.path.ends_with("fixed.vhd")
                && !r.path.ends_with(".vhdx")
                && !r.path.ends_with(".avhdx")
        })
    {
        let dir = tempfile::tempdir().expect("tmp");
        let p = fetch(row, dir.path());
        let e = open_image(&p, &OpenOptions::default())
            .expect_err(&format!("{} must be refused", row.path));
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{}: {e}", row.path);
        assert!(
            e.to_string().contains("unsupported format"),
            "{}: {e}",
            row.path
        );
        checked += 1;
    }
    // Parallels bundles and Apple ASIF, which qemu-img's table leaves out.
    let disk = corpus().join("dissect.hypervisor/tests/_data/disk");
    for rel in ["hdd/expanding.hdd/DiskDescriptor.xml", "asif/basic.asif.gz"] {
        let dir = tempfile::tempdir().expect("tmp");
        let p = materialize(&disk.join(rel), dir.path());
        let e = open_image(&p, &OpenOptions::default()).expect_err(rel);
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{rel}: {e}");
        checked += 1;
    }
    let dir = tempfile::tempdir().expect("tmp");
    for e in std::fs::read_dir(disk.join("hdd/expanding.hdd")).expect("ls") {
        let p = e.expect("e").path();
        if p.to_string_lossy().ends_with(".hds.gz") {
            let p = materialize(&p, dir.path());
            let e = open_image(&p, &OpenOptions::default()).expect_err("parallels");
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
            checked += 1;
        }
    }
    // With vpc, vdi and vhdx read, what is left: qcow v1, parallels, qed, sesparse, ...
    assert!(checked >= 5, "only {checked} refusals checked");
}

#[test]
fn snapshot_image_reads_active_layer() {
    // snapshot.qcow2 has two internal snapshots; the active L1 is what qemu-img converts.
    let rows = oracle();
    let row = rows
        .iter()
        .find(|r| r.path.ends_with("snapshot.qcow2"))
        .expect("row");
    let dir = tempfile::tempdir().expect("tmp");
    let img = open_image(fetch(row, dir.path()), &OpenOptions::default()).expect("open");
    let fs = img.info().format_specific.as_ref().expect("fs");
    assert_eq!(fs.data["snapshots"], 2);
}

/// Every supported container converted by `guestctl convert` to raw (whose sha256 must be the
/// oracle's), to zstd-compressed qcow2 and to streamOptimized vmdk (`qemu-img check` clean,
/// `qemu-img compare` identical to that raw output).
#[test]
fn converted_containers_match_qemu_img() {
    let rows = oracle();
    let gc = env!("CARGO_BIN_EXE_guestctl");
    let mut checked = 0;
    for row in rows.iter().filter(|r| read_by_us(&r.format)) {
        let dir = tempfile::tempdir().expect("tmp");
        let p = fetch(row, dir.path());
        let d = dir.path();
        let out = |name: &str, args: &[&str]| {
            let o = std::process::Command::new(gc)
                .arg("convert")
                .arg("--no-progress")
                .arg(&p)
                .arg(d.join(name))
                .args(args)
                .output()
                .expect("guestctl");
            assert!(
                o.status.success(),
                "{} -> {name}: {}",
                row.path,
                String::from_utf8_lossy(&o.stderr)
            );
            d.join(name).to_str().expect("utf8").to_string()
        };
        let raw = out("out.raw", &["-O", "raw"]);
        assert_eq!(
            sha256_file(Path::new(&raw)),
            row.sha256,
            "{} as raw",
            row.path
        );
        let q = out("out.qcow2", &["-O", "qcow2", "--compress=zstd"]);
        let c = qemu_img(&["check", &q], d);
        assert!(
            String::from_utf8_lossy(&c.stdout).contains("No errors were found"),
            "{}: {}",
            row.path,
            String::from_utf8_lossy(&c.stdout)
        );
        qemu_img(&["compare", "-q", "-f", "raw", "-F", "qcow2", &raw, &q], d);
        let v = out(
            "out.vmdk",
            &["-O", "vmdk", "--subformat", "streamOptimized"],
        );
        qemu_img(&["compare", "-q", "-f", "raw", "-F", "vmdk", &raw, &v], d);
        checked += 1;
    }
    assert!(checked >= 18, "only {checked} containers converted");
}
