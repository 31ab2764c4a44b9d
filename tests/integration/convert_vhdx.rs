//! `guestctl convert -O vhdx` checked by qemu: `qemu-img check` finds no errors, `qemu-img
//! compare` finds the source's bytes, `qemu-img info` reads the sizes we meant, and our own
//! reader reads it back.

use crate::convert_vmdk::{convert_ok, guestctl};
use crate::support;
use crate::vhdx_variants::content;

use std::path::Path;
use std::process::Command;

use guestctl::{open_image, BlockDevice, OpenOptions};
use support::*;

fn qemu_info(name: &str, dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&qemu_img(&["info", "--output=json", name], dir).stdout).expect("json")
}

#[test]
fn vhdx_output_passes_qemu_check_and_compare() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let size = (37 << 20) + 1536;
    content(&d.join("src.raw"), size);
    // A qcow2 source too (its map has zero and unallocated clusters).
    qemu_img(&["convert", "-O", "qcow2", "src.raw", "src.qcow2"], d);
    qemu_io(
        "qcow2",
        "src.qcow2",
        &["write -z 4M 3M", "discard 9M 1M"],
        d,
    );
    for (src, sub, bs) in [
        ("src.raw", "dynamic", None),
        ("src.raw", "fixed", None),
        ("src.qcow2", "dynamic", Some("1M")),
        ("src.qcow2", "fixed", Some("2M")),
        ("src.raw", "dynamic", Some("32M")),
        ("src.raw", "dynamic", Some("256M")),
    ] {
        let out = format!("{src}-{sub}-{}.vhdx", bs.unwrap_or("default"));
        let mut args = vec!["convert", "-O", "vhdx", "--subformat", sub, src, &out];
        if let Some(b) = bs {
            args.extend(["--block-size", b]);
        }
        convert_ok(&args, d);
        let chk = Command::new("qemu-img")
            .args(["check", &out])
            .current_dir(d)
            .output()
            .expect("qemu-img");
        assert!(
            chk.status.success() && String::from_utf8_lossy(&chk.stdout).contains("No errors"),
            "{out}: {}{}",
            String::from_utf8_lossy(&chk.stdout),
            String::from_utf8_lossy(&chk.stderr)
        );
        qemu_img(
            &[
                "compare",
                "-f",
                if src.ends_with("qcow2") {
                    "qcow2"
                } else {
                    "raw"
                },
                "-F",
                "vhdx",
                src,
                &out,
            ],
            d,
        );
        let info = qemu_info(&out, d);
        assert_eq!(info["format"], "vhdx", "{out}");
        assert_eq!(info["virtual-size"], size, "{out}");
        let want_bs = match bs {
            Some("1M") => 1 << 20,
            Some("2M") => 2 << 20,
            Some("32M") => 32 << 20,
            Some("256M") => 256 << 20,
            _ => 8 << 20,
        };
        assert_eq!(info["cluster-size"], want_bs, "{out}");
        // Our reader agrees, and the subformat is what we asked for.
        let img = open_image(d.join(&out), &OpenOptions::default()).expect("open");
        assert_eq!(img.info().subformat.as_deref(), Some(sub));
        let raw = qemu_raw(&d.join(&out), d);
        assert_same_as_raw(img.device().as_ref(), &raw, &out);
        std::fs::remove_file(raw).expect("rm");
    }
}

#[test]
fn dynamic_output_is_sparse_and_odd_sizes_are_padded() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // 2 GiB + 100 bytes, data in two places only.
    qemu_img(&["create", "-f", "qcow2", "s.qcow2", "2147483748"], d);
    qemu_io(
        "qcow2",
        "s.qcow2",
        &["write -P 0x61 100M 1M", "write -P 0x62 2147483000 748"],
        d,
    );
    convert_ok(
        &["convert", "-O", "vhdx", "--verify", "s.qcow2", "s.vhdx"],
        d,
    );
    let len = std::fs::metadata(d.join("s.vhdx")).expect("meta").len();
    // 4 MiB of structures and three 16 MiB blocks (qemu's block size for 2 GiB): block 6,
    // and blocks 127 and 128, which the last write straddles.
    assert_eq!(len, (4 + 3 * 16) << 20, "{len} bytes");
    let info = qemu_info("s.vhdx", d);
    assert_eq!(info["virtual-size"], 2147483648u64 + 512);
    assert_eq!(info["cluster-size"], 16 << 20);
    let img = open_image(d.join("s.vhdx"), &OpenOptions::default()).expect("open");
    let m = img.device().map(0, img.device().size()).expect("map");
    // Block 128 holds the disk's last 512 bytes (the source's 100, padded to a sector).
    assert_eq!(
        m.bytes_of(guestctl::block::ExtentKind::Data),
        (32 << 20) + 512
    );
    let mut b = vec![0u8; 748];
    img.device()
        .read_exact_at(2147483000, &mut b)
        .expect("read");
    assert!(b.iter().all(|&x| x == 0x62));
}

#[test]
fn vhdx_to_vhdx_and_refusals() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    content(&d.join("src.raw"), 9 << 20);
    qemu_img(&["convert", "-O", "vhdx", "src.raw", "q.vhdx"], d);
    convert_ok(&["convert", "-O", "vhdx", "q.vhdx", "g.vhdx"], d);
    qemu_img(&["compare", "q.vhdx", "g.vhdx"], d);
    // The output may not be the input.
    let o = guestctl(&["convert", "-O", "vhdx", "--force", "q.vhdx", "q.vhdx"], d);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("source"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for bad in [
        &[
            "convert",
            "-O",
            "vhdx",
            "--block-size",
            "3M",
            "src.raw",
            "x.vhdx",
        ][..],
        &[
            "convert",
            "-O",
            "vhdx",
            "--subformat",
            "streamOptimized",
            "src.raw",
            "x.vhdx",
        ],
        &[
            "convert",
            "-O",
            "vmdk",
            "--subformat",
            "fixed",
            "src.raw",
            "x.vmdk",
        ],
        &[
            "convert",
            "-O",
            "qcow2",
            "--block-size",
            "1M",
            "src.raw",
            "x.qcow2",
        ],
        &["convert", "-O", "vhdx", "-c", "src.raw", "x.vhdx"],
    ] {
        let o = guestctl(bad, d);
        assert!(!o.status.success(), "{bad:?} must be refused");
    }
    assert!(!d.join("x.vhdx").exists());
}
