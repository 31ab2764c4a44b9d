//! `guestctl convert -O qcow2`: every output passes `qemu-img check` with no errors or leaks,
//! `qemu-img compare` says it equals its source, and our reader reads it back identically.

use crate::support;

use std::path::Path;
use std::process::Command;

use guestctl::{open_image, OpenOptions};
use support::*;

fn guestctl(args: &[&str], dir: &Path) {
    let o = Command::new(env!("CARGO_BIN_EXE_guestctl"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run guestctl");
    assert!(
        o.status.success(),
        "guestctl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn verify(dir: &Path, src: &str, out: &str) {
    let o = qemu_img(&["check", out], dir);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("No errors were found"), "{out}: {text}");
    qemu_img(&["compare", "-q", src, out], dir);
    let a = open_image(dir.join(src), &OpenOptions::default()).expect("src");
    let b = open_image(dir.join(out), &OpenOptions::default()).expect("out");
    assert!(
        b.info().backing.is_none(),
        "{out}: output must be flattened"
    );
    assert_eq!(
        sha256_device(a.device().as_ref()),
        sha256_device(b.device().as_ref()),
        "{out}"
    );
}

#[test]
fn qcow2_output_every_option() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let tarball = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/formats.tar.zst");
    run(
        "tar",
        &[
            "-I",
            "zstd",
            "--strip-components=1",
            "-xf",
            tarball.to_str().expect("utf8"),
            "-C",
            ".",
        ],
        d,
    );
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo.qcow2");
    std::fs::copy(demo, d.join("demo.qcow2")).expect("copy demo");
    let manifest = std::fs::read_to_string(d.join("MANIFEST.tsv")).expect("manifest");
    let mut sources: Vec<String> = manifest
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .map(str::to_string)
        .collect();
    sources.push("demo.qcow2".into());
    let variants: &[&[&str]] = &[
        &[],
        &["-c"],
        &["--compress=zstd"],
        &["--cluster-size", "512", "-c"],
        &["--cluster-size", "4096"],
        &[
            "--cluster-size",
            "2097152",
            "--compress=zstd",
            "--level",
            "9",
        ],
    ];
    let mut n = 0;
    for (i, src) in sources.iter().enumerate() {
        // Every source with the default options, and each variant on a rotating subset.
        for (j, v) in variants.iter().enumerate() {
            if j != 0 && (i + j) % 4 != 0 && src != "demo.qcow2" {
                continue;
            }
            let out = format!("out-{i}-{j}.qcow2");
            let mut args = vec![
                "convert",
                "--no-progress",
                src.as_str(),
                out.as_str(),
                "-O",
                "qcow2",
            ];
            args.extend_from_slice(v);
            guestctl(&args, d);
            verify(d, src, &out);
            std::fs::remove_file(d.join(&out)).expect("rm");
            n += 1;
        }
    }
    assert!(n >= 60, "only {n} conversions");
}

#[test]
fn qcow2_output_skips_zero_clusters_and_compresses() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    qemu_img(&["create", "-q", "-f", "qcow2", "src.qcow2", "1G"], d);
    qemu_io(
        "qcow2",
        "src.qcow2",
        &[
            "write -P 0x61 0 1M",
            "write -z 1M 1M",
            "write -P 0x62 900M 64k",
        ],
        d,
    );
    guestctl(&["convert", "src.qcow2", "plain.qcow2", "-O", "qcow2"], d);
    verify(d, "src.qcow2", "plain.qcow2");
    let len = std::fs::metadata(d.join("plain.qcow2")).expect("m").len();
    assert!(len < 2 << 20, "zero clusters were written: {len} bytes");
    guestctl(&["convert", "-c", "src.qcow2", "c.qcow2", "-O", "qcow2"], d);
    verify(d, "src.qcow2", "c.qcow2");
    let clen = std::fs::metadata(d.join("c.qcow2")).expect("m").len();
    assert!(
        clen < len,
        "compression did not shrink the image ({clen} >= {len})"
    );
    let info = open_image(d.join("c.qcow2"), &OpenOptions::default()).expect("open");
    assert_eq!(info.info().compression_type.as_deref(), Some("zlib"));
    guestctl(
        &[
            "convert",
            "--compress=zstd",
            "src.qcow2",
            "z.qcow2",
            "-O",
            "qcow2",
        ],
        d,
    );
    let info = open_image(d.join("z.qcow2"), &OpenOptions::default()).expect("open");
    assert_eq!(info.info().compression_type.as_deref(), Some("zstd"));
    verify(d, "src.qcow2", "z.qcow2");
}

fn guestctl_out(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_guestctl"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run guestctl")
}

/// `qemu-img check` clean and `qemu-img compare` identical, reading `out` through its backing.
fn verify_with_backing(dir: &Path, src: &str, out: &str, backing: &str, backing_fmt: &str) {
    let o = qemu_img(&["check", out], dir);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("No errors were found"), "{out}: {text}");
    qemu_img(&["compare", "-q", src, out], dir);
    let info = qemu_img(&["info", "--output=json", out], dir);
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).expect("json");
    assert_eq!(v["backing-filename"], backing, "{v}");
    assert_eq!(v["backing-filename-format"], backing_fmt, "{v}");
}

#[test]
fn qcow2_output_over_a_backing_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    qemu_img(&["create", "-q", "-f", "qcow2", "base.qcow2", "1G"], d);
    qemu_io(
        "qcow2",
        "base.qcow2",
        &[
            "write -P 0x61 0 4M",
            "write -P 0x62 100M 1M",
            "write -P 0x64 500M 64k",
        ],
        d,
    );
    // The source: the base with a few changes (a partial cluster, zeros over base data, new
    // data), flattened to raw so that nothing ties it to the base.
    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "base.qcow2",
            "-F",
            "qcow2",
            "ov.qcow2",
        ],
        d,
    );
    qemu_io(
        "qcow2",
        "ov.qcow2",
        &[
            "write -P 0x63 2M 4k",
            "write -z 100M 512k",
            "write -P 0x65 700M 128k",
        ],
        d,
    );
    qemu_img(&["convert", "-O", "raw", "ov.qcow2", "src.raw"], d);
    let o = guestctl_out(
        &[
            "convert",
            "src.raw",
            "out.qcow2",
            "-O",
            "qcow2",
            "--backing",
            "base.qcow2",
        ],
        d,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    verify_with_backing(d, "src.raw", "out.qcow2", "base.qcow2", "qcow2");
    let len = std::fs::metadata(d.join("out.qcow2")).expect("m").len();
    assert!(
        len < 2 << 20,
        "unchanged clusters were written: {len} bytes"
    );
    // Our reader agrees (through the backing file).
    let a = open_image(d.join("src.raw"), &OpenOptions::default()).expect("src");
    let b = open_image(d.join("out.qcow2"), &OpenOptions::default()).expect("out");
    assert_eq!(
        sha256_device(a.device().as_ref()),
        sha256_device(b.device().as_ref())
    );
    // A chain as the source, compressed, --verify, into a subdirectory: the name is recorded
    // as given and resolved against the output's directory.
    std::fs::create_dir(d.join("sub")).expect("mkdir");
    let o = guestctl_out(
        &[
            "convert",
            "ov.qcow2",
            "sub/out.qcow2",
            "-O",
            "qcow2",
            "-c",
            "--verify",
            "-B",
            "../base.qcow2",
        ],
        d,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    verify_with_backing(d, "src.raw", "sub/out.qcow2", "../base.qcow2", "qcow2");
    // A raw backing file that is smaller than the source.
    qemu_img(&["convert", "-O", "raw", "base.qcow2", "base.raw"], d);
    qemu_img(
        &["resize", "-q", "--shrink", "-f", "raw", "base.raw", "600M"],
        d,
    );
    let o = guestctl_out(
        &[
            "convert",
            "src.raw",
            "small.qcow2",
            "-O",
            "qcow2",
            "--backing",
            "base.raw",
        ],
        d,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    verify_with_backing(d, "src.raw", "small.qcow2", "base.raw", "raw");
    // A backing name that does not resolve from the output's directory is refused.
    let o = guestctl_out(
        &[
            "convert",
            "src.raw",
            "sub/bad.qcow2",
            "-O",
            "qcow2",
            "--backing",
            "base.qcow2",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("output's directory"), "{err}");
    assert!(!d.join("sub/bad.qcow2").exists());
    // The backing file itself can never be the destination; --flatten conflicts.
    let o = guestctl_out(
        &[
            "convert",
            "--force",
            "src.raw",
            "base.qcow2",
            "-O",
            "qcow2",
            "--backing",
            "base.qcow2",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(1));
    let o = guestctl_out(
        &[
            "convert",
            "src.raw",
            "f.qcow2",
            "-O",
            "qcow2",
            "--flatten",
            "-B",
            "base.qcow2",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(2));
    // --flatten spelled out is the default.
    let o = guestctl_out(
        &[
            "convert",
            "ov.qcow2",
            "flat.qcow2",
            "-O",
            "qcow2",
            "--flatten",
        ],
        d,
    );
    assert!(o.status.success());
    verify(d, "src.raw", "flat.qcow2");
}

/// A 24 MiB source of random, compressible and zero MiBs, so that small clusters give many L2
/// tables and refcount blocks, written out as they complete (interleaved with the data).
#[test]
fn qcow2_output_with_many_l2_tables_and_refcount_blocks() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let mut data = Vec::with_capacity(24 << 20);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for mib in 0..24u64 {
        for i in 0..(1u64 << 20) / 8 {
            let word = match mib % 3 {
                0 => {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                }
                1 => 0x6c6f_7265_6d20_6970 ^ (i / 512),
                _ => 0,
            };
            data.extend_from_slice(&word.to_le_bytes());
        }
    }
    std::fs::write(d.join("src.raw"), &data).expect("write");
    let variants: &[&[&str]] = &[
        &["--cluster-size", "4096"],
        &["--cluster-size", "4096", "-c"],
        &["--cluster-size", "512", "--compress=zstd"],
        &["--cluster-size", "1024", "-c", "--level", "1"],
    ];
    for (j, v) in variants.iter().enumerate() {
        let out = format!("out-{j}.qcow2");
        let mut args = vec![
            "convert",
            "--no-progress",
            "src.raw",
            out.as_str(),
            "-O",
            "qcow2",
        ];
        args.extend_from_slice(v);
        guestctl(&args, d);
        verify(d, "src.raw", &out);
    }
}

/// A 64 TiB disk with 4 MiB of data converts in a moment (batches start at the next data, so
/// unallocated space costs one map() per GiB), and a cluster size whose L1 table would pass
/// qemu's 32 MiB limit is refused up front.
#[test]
fn qcow2_output_of_a_huge_sparse_disk() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    qemu_img(&["create", "-q", "-f", "qcow2", "big.qcow2", "64T"], d);
    qemu_io(
        "qcow2",
        "big.qcow2",
        &[
            "write -P 0x61 0 1M",
            "write -P 0x62 17T 64k",
            "write -P 0x63 40000G 3M",
            "write -z 50T 1M",
            "write -P 0x64 65535G 64k",
        ],
        d,
    );
    let t = std::time::Instant::now();
    guestctl(&["convert", "big.qcow2", "out.qcow2", "-O", "qcow2"], d);
    assert!(t.elapsed().as_secs() < 30, "took {:?}", t.elapsed());
    let o = qemu_img(&["check", "out.qcow2"], d);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("No errors were found"), "{text}");
    assert!(text.contains("66/1073741824"), "{text}");
    qemu_img(&["compare", "-q", "big.qcow2", "out.qcow2"], d);
    let o = guestctl_out(
        &[
            "convert",
            "big.qcow2",
            "o512.qcow2",
            "-O",
            "qcow2",
            "--cluster-size",
            "512",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("L1 table") && err.contains("--cluster-size"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(d)
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("o512"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
