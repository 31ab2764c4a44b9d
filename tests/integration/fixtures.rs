//! The committed fixtures (made by scripts/make-fixtures.sh with qemu-img): every image reads
//! to the raw sha256 recorded in formats/MANIFEST.tsv, which qemu-img also reproduces now.

use crate::support;

use std::path::Path;
use std::process::Command;

use guestctl::{open_image, OpenOptions};
use support::*;

fn extract(dir: &Path) -> std::path::PathBuf {
    let tarball = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/formats.tar.zst");
    let st = Command::new("tar")
        .args(["-I", "zstd", "-xf"])
        .arg(&tarball)
        .arg("-C")
        .arg(dir)
        .status()
        .expect("tar and zstd must be installed");
    assert!(st.success(), "cannot extract {}", tarball.display());
    dir.join("formats")
}

#[test]
fn every_fixture_matches_its_manifest_and_qemu_img() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = extract(dir.path());
    let manifest = std::fs::read_to_string(f.join("MANIFEST.tsv")).expect("manifest");
    let mut n = 0;
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (name, format, size, sha) = (cols[0], cols[1], cols[2], cols[3]);
        let img = open_image(f.join(name), &OpenOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(img.info().format.name(), format, "{name}");
        assert_eq!(img.device().size().to_string(), size, "{name}");
        assert_eq!(
            sha256_device(img.device().as_ref()),
            sha,
            "{name}: differs from MANIFEST"
        );
        let raw = qemu_raw(&f.join(name), dir.path());
        assert_eq!(
            sha256_file(&raw),
            sha,
            "{name}: qemu-img no longer agrees with MANIFEST"
        );
        assert_same_as_raw(img.device().as_ref(), &raw, name);
        std::fs::remove_file(raw).expect("rm");
        n += 1;
    }
    assert!(n >= 20, "only {n} fixtures");
}

#[test]
fn demo_image_is_a_gpt_disk_with_ext4() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo.qcow2");
    let img = open_image(&p, &OpenOptions::default()).expect("demo");
    let d = img.device();
    assert_eq!(d.size(), 64 << 20);
    let mut b = [0u8; 8];
    d.read_exact_at(512, &mut b).expect("gpt");
    assert_eq!(&b, b"EFI PART");
    let mut m = [0u8; 2];
    d.read_exact_at(2048 * 512 + 1024 + 56, &mut m)
        .expect("ext4 magic");
    assert_eq!(u16::from_le_bytes(m), 0xEF53);
    assert_eq!(img.info().compression_type.as_deref(), Some("zlib"));
    let dir = tempfile::tempdir().expect("tmp");
    let raw = qemu_raw(&p, dir.path());
    assert_same_as_raw(d.as_ref(), &raw, "demo.qcow2");
}
