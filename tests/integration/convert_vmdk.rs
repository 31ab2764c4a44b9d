//! `guestctl convert -O vmdk`: monolithicSparse and streamOptimized outputs pass
//! `qemu-img check`, `qemu-img compare` says they equal their source, `qemu-img info` reports
//! the subformat, and our own reader reads them back identically.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};

use guestctl::{open_image, OpenOptions};
use support::*;

pub(crate) fn guestctl(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guestctl"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run guestctl")
}

pub(crate) fn convert_ok(args: &[&str], dir: &Path) {
    let o = guestctl(args, dir);
    assert!(
        o.status.success(),
        "guestctl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// qemu-img check clean, qemu-img compare identical, the create type qemu reports, and our
/// reader's bytes equal to the source's.
fn verify(dir: &Path, src: &str, out: &str, create_type: &str) {
    let o = qemu_img(&["check", out], dir);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("No errors were found"), "{out}: {text}");
    qemu_img(&["compare", "-q", src, out], dir);
    let info = qemu_img(&["info", "--output=json", out], dir);
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).expect("json");
    assert_eq!(v["format"], "vmdk", "{out}: {v}");
    assert_eq!(
        v["format-specific"]["data"]["create-type"], create_type,
        "{out}: {v}"
    );
    let a = open_image(dir.join(src), &OpenOptions::default()).expect("src");
    let b = open_image(dir.join(out), &OpenOptions::default()).expect("out");
    assert_eq!(
        sha256_device(a.device().as_ref()),
        sha256_device(b.device().as_ref()),
        "{out}"
    );
}

#[test]
fn vmdk_output_of_every_fixture() {
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
    let manifest = std::fs::read_to_string(d.join("MANIFEST.tsv")).expect("manifest");
    let sources: Vec<String> = manifest
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .map(str::to_string)
        .collect();
    let mut n = 0;
    for (i, src) in sources.iter().enumerate() {
        // qemu pads images to whole sectors; those sizes cannot round-trip byte-exact.
        let size = open_image(d.join(src), &OpenOptions::default())
            .expect("open")
            .device()
            .size();
        if size % 512 != 0 {
            continue;
        }
        for (sub, ct) in [
            ("monolithicSparse", "monolithicSparse"),
            ("streamOptimized", "streamOptimized"),
        ] {
            let out = format!("out-{i}.vmdk");
            convert_ok(
                &[
                    "convert",
                    "--no-progress",
                    src,
                    &out,
                    "-O",
                    "vmdk",
                    "--subformat",
                    sub,
                ],
                d,
            );
            verify(d, src, &out, ct);
            std::fs::remove_file(d.join(&out)).expect("rm");
            n += 1;
        }
    }
    assert!(n >= 40, "only {n} conversions");
}

#[test]
fn vmdk_output_sparse_stream_and_odd_sizes() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // 100 MiB + 3 sectors: a partial last grain and a partial last grain table; data at the
    // start, straddling a grain-table boundary (32 MiB), incompressible data (compressed
    // grains bigger than a grain), a zero run (qcow2 zero clusters) and the last sector.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(d.join("src.raw")).expect("create");
        f.set_len(104_859_136).expect("len");
        f.write_all_at(&[0x61; 2 << 20], 0).expect("w");
        f.write_all_at(&[0x62; 1000], 33_554_000).expect("w");
        let noise: Vec<u8> = (0..(1u32 << 20))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        f.write_all_at(&noise, 60 << 20).expect("w");
        f.write_all_at(&[0x63; 512], 104_858_624).expect("w");
    }
    qemu_img(&["convert", "-O", "qcow2", "src.raw", "src.qcow2"], d);
    qemu_io("qcow2", "src.qcow2", &["write -z 1M 1M"], d);
    for (sub, ct) in [
        ("monolithicSparse", "monolithicSparse"),
        ("streamOptimized", "streamOptimized"),
    ] {
        let out = format!("{ct}.vmdk");
        convert_ok(
            &[
                "convert",
                "src.qcow2",
                &out,
                "-O",
                "vmdk",
                "--subformat",
                sub,
            ],
            d,
        );
        verify(d, "src.qcow2", &out, ct);
        let len = std::fs::metadata(d.join(&out)).expect("m").len();
        assert!(
            len < 6 << 20,
            "{out}: zero grains were written ({len} bytes)"
        );
        // qemu-img reads it back to raw identically as well.
        qemu_img(&["convert", "-O", "raw", &out, &format!("{ct}.raw")], d);
        qemu_img(&["compare", "-q", "src.qcow2", &format!("{ct}.raw")], d);
    }
    // The default subformat is monolithicSparse; -c means streamOptimized.
    convert_ok(&["convert", "src.qcow2", "default.vmdk", "-O", "vmdk"], d);
    verify(d, "src.qcow2", "default.vmdk", "monolithicSparse");
    convert_ok(
        &[
            "convert",
            "-c",
            "--level",
            "1",
            "src.qcow2",
            "c.vmdk",
            "-O",
            "vmdk",
        ],
        d,
    );
    verify(d, "src.qcow2", "c.vmdk", "streamOptimized");
    // A source that is not a whole number of sectors is padded with zeros, as qemu does;
    // --verify knows that.
    std::fs::write(d.join("odd.raw"), [0x5au8; 1000]).expect("write");
    for sub in ["monolithicSparse", "streamOptimized"] {
        let out = format!("odd-{sub}.vmdk");
        convert_ok(
            &[
                "convert",
                "--verify",
                "odd.raw",
                &out,
                "-O",
                "vmdk",
                "--subformat",
                sub,
            ],
            d,
        );
        qemu_img(&["compare", "-q", "odd.raw", &out], d);
        let o = qemu_img(&["check", &out], d);
        assert!(String::from_utf8_lossy(&o.stdout).contains("No errors were found"));
    }
    // A streamOptimized source converts back through us to every format.
    convert_ok(&["convert", "c.vmdk", "back.qcow2", "-O", "qcow2"], d);
    qemu_img(&["compare", "-q", "src.qcow2", "back.qcow2"], d);
}

#[test]
fn vmdk_output_refuses_what_it_cannot_do() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    qemu_img(&["create", "-q", "-f", "qcow2", "src.qcow2", "8M"], d);
    for args in [
        &["--preallocate"][..],
        &["--compress=zstd"],
        &["--cluster-size", "4096"],
        &["--subformat", "monolithicSparse", "-c"],
    ] {
        let mut a = vec!["convert", "src.qcow2", "o.vmdk", "-O", "vmdk"];
        a.extend_from_slice(args);
        let o = guestctl(&a, d);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(!d.join("o.vmdk").exists(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.starts_with("guestctl: error: "), "{args:?}: {err}");
    }
    let o = guestctl(
        &[
            "convert",
            "src.qcow2",
            "o.qcow2",
            "-O",
            "qcow2",
            "--preallocate",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--preallocate"));
    assert!(!d.join("o.qcow2").exists());
}
