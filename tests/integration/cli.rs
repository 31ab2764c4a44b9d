//! The `guestctl` binary: info and convert against qemu-img, exit codes, output safety.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};

use support::*;

fn guestctl(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guestctl"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run guestctl")
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("json")
}

#[test]
fn info_json_agrees_with_qemu_img() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "cluster_size=4096",
            "base.qcow2",
            "10M",
        ],
        d,
    );
    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "compression_type=zstd,extended_l2=on,lazy_refcounts=on",
            "-b",
            "base.qcow2",
            "-F",
            "qcow2",
            "top.qcow2",
            "20M",
        ],
        d,
    );
    let ours = json(&guestctl(&["info", "--json", "top.qcow2"], d));
    let theirs = json(&qemu_img(
        &["info", "--output=json", "--backing-chain", "top.qcow2"],
        d,
    ));
    let theirs = &theirs[0];
    for key in [
        "virtual-size",
        "cluster-size",
        "format",
        "dirty-flag",
        "backing-filename",
        "backing-filename-format",
    ] {
        assert_eq!(ours[key], theirs[key], "key {key}");
    }
    for key in [
        "compat",
        "compression-type",
        "lazy-refcounts",
        "refcount-bits",
        "corrupt",
        "extended-l2",
    ] {
        assert_eq!(
            ours["format-specific"]["data"][key], theirs["format-specific"]["data"][key],
            "format-specific {key}"
        );
    }
    assert_eq!(ours["backing-image"]["cluster-size"], 4096);
    assert_eq!(ours["backing-image"]["virtual-size"], 10 << 20);
    // Human output names the chain.
    let text = guestctl(&["info", "top.qcow2"], d);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("backing file: base.qcow2") && text.contains("file format: qcow2"),
        "{text}"
    );
}

#[test]
fn convert_raw_matches_qemu_img_and_is_sparse() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    qemu_img(&["create", "-q", "-f", "qcow2", "base.qcow2", "64M"], d);
    qemu_io(
        "qcow2",
        "base.qcow2",
        &["write -P 0x11 0 3M", "write -P 0x22 40M 1M"],
        d,
    );
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
            "top.qcow2",
            "80M",
        ],
        d,
    );
    qemu_io(
        "qcow2",
        "top.qcow2",
        &[
            "write -P 0x33 1M 64k",
            "write -z 40M 512k",
            "write -P 0x44 70M 4k",
        ],
        d,
    );
    let o = guestctl(&["convert", "top.qcow2", "out.raw", "-O", "raw"], d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let q = qemu_raw(&d.join("top.qcow2"), d);
    assert_eq!(sha256_file(&d.join("out.raw")), sha256_file(&q));
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(d.join("out.raw")).expect("meta");
    assert_eq!(m.len(), 80 << 20);
    assert!(
        m.blocks() * 512 < 8 << 20,
        "output not sparse: {} bytes allocated",
        m.blocks() * 512
    );
    // Existing destination refused, --force overwrites, no temp files left.
    let o = guestctl(&["convert", "top.qcow2", "out.raw", "-O", "raw"], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    let o = guestctl(
        &[
            "convert",
            "--force",
            "-j",
            "1",
            "top.qcow2",
            "out.raw",
            "-O",
            "raw",
            "--sync",
        ],
        d,
    );
    assert!(o.status.success());
    assert_eq!(sha256_file(&d.join("out.raw")), sha256_file(&q));
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn convert_refuses_its_own_source_chain() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    qemu_img(&["create", "-q", "-f", "qcow2", "base.qcow2", "1M"], d);
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
            "top.qcow2",
        ],
        d,
    );
    let before = std::fs::read(d.join("base.qcow2")).expect("read");
    for dst in ["top.qcow2", "base.qcow2", "./base.qcow2"] {
        let o = guestctl(&["convert", "--force", "top.qcow2", dst, "-O", "raw"], d);
        assert_eq!(o.status.code(), Some(1), "{dst}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("source"),
            "{dst}"
        );
    }
    assert_eq!(std::fs::read(d.join("base.qcow2")).expect("read"), before);
}

#[test]
fn failed_convert_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    qemu_img(&["create", "-q", "-f", "qcow2", "a.qcow2", "16M"], d);
    qemu_io(
        "qcow2",
        "a.qcow2",
        &["write -P 1 0 1M", "write -P 2 8M 1M"],
        d,
    );
    // Corrupt the L2 entry of the cluster at 8 MiB: the failure comes mid-way.
    let mut b = std::fs::read(d.join("a.qcow2")).expect("read");
    let l1 = u64::from_be_bytes(b[40..48].try_into().expect("8")) as usize;
    let l2 =
        (u64::from_be_bytes(b[l1..l1 + 8].try_into().expect("8")) & 0x00ff_ffff_ffff_fe00) as usize;
    let e = l2 + 8 * 128; // 8 MiB / 64 KiB
    b[e..e + 8].copy_from_slice(&0x8000_0000_0000_1200u64.to_be_bytes());
    std::fs::write(d.join("a.qcow2"), b).expect("write");
    let o = guestctl(&["convert", "a.qcow2", "out.raw", "-O", "raw"], d);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("a.qcow2") && err.contains("offset"), "{err}");
    let names: Vec<String> = std::fs::read_dir(d)
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["a.qcow2".to_string()], "leftovers: {names:?}");
}

#[test]
fn killed_convert_leaves_no_destination() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // Big enough to take a moment: 256 MiB of data.
    qemu_img(&["create", "-q", "-f", "qcow2", "big.qcow2", "256M"], d);
    qemu_io("qcow2", "big.qcow2", &["write -P 7 0 256M"], d);
    let mut child = Command::new(env!("CARGO_BIN_EXE_guestctl"))
        .args([
            "convert",
            "-j",
            "1",
            "--sync",
            "big.qcow2",
            "out.raw",
            "-O",
            "raw",
        ])
        .current_dir(d)
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(50));
    child.kill().expect("kill");
    let _ = child.wait();
    assert!(!d.join("out.raw").exists(), "a killed convert left out.raw");
}

#[test]
fn exit_codes_and_error_lines() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let o = guestctl(&["info", "missing.qcow2"], d);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("guestctl: error: missing.qcow2: cannot open"),
        "{err}"
    );
    assert!(err.contains("caused by:"), "{err}");
    assert_eq!(guestctl(&["info"], d).status.code(), Some(2));
    assert_eq!(guestctl(&["frobnicate"], d).status.code(), Some(2));
    assert_eq!(
        guestctl(&["info", "--format", "qed", "x"], d).status.code(),
        Some(2)
    );
    std::fs::write(d.join("v.qed"), {
        let mut v = vec![0u8; 4096];
        v[..4].copy_from_slice(b"QED\0");
        v
    })
    .expect("write");
    let o = guestctl(&["info", "v.qed"], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unsupported format qed"));
    // A VHD cookie with a footer that does not add up: a named checksum error.
    std::fs::write(d.join("v.vhd"), {
        let mut v = vec![0u8; 4096];
        v[..8].copy_from_slice(b"conectix");
        v
    })
    .expect("write");
    let o = guestctl(&["info", "v.vhd"], d);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("vhd footer at offset 0x0: checksum"), "{err}");
    // -f raw overrides detection.
    let o = guestctl(&["info", "--json", "-f", "raw", "v.vhd"], d);
    assert_eq!(json(&o)["format"], "raw");
    let help = guestctl(&["--help"], d);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Exit status"));
}

#[test]
fn batch_convert_goes_on_after_failures() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    qemu_img(&["create", "-q", "-f", "qcow2", "a.qcow2", "64M"], d);
    qemu_io("qcow2", "a.qcow2", &["write -P 1 1M 1M"], d);
    qemu_img(&["create", "-q", "-f", "vmdk", "b.vmdk", "32M"], d);
    qemu_io("vmdk", "b.vmdk", &["write -P 2 0 64k"], d);
    std::fs::write(d.join("bad.qcow2"), b"QFI\xfbgarbage").expect("write");
    std::fs::create_dir(d.join("out")).expect("mkdir");
    let o = guestctl(
        &[
            "convert",
            "--batch",
            "a.qcow2",
            "bad.qcow2",
            "b.vmdk",
            "-O",
            "qcow2",
            "--out-dir",
            "out",
            "--json",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json summary");
    assert_eq!(v["converted"], 2, "{v}");
    assert_eq!(v["failed"], 1, "{v}");
    assert_eq!(v["results"][1]["ok"], false, "{v}");
    assert_eq!(v["results"][2]["destination"], "out/b.qcow2", "{v}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.qcow2") && err.contains("1 of 3"), "{err}");
    qemu_img(&["compare", "-q", "a.qcow2", "out/a.qcow2"], d);
    qemu_img(&["compare", "-q", "b.vmdk", "out/b.qcow2"], d);
    let mut names: Vec<String> = std::fs::read_dir(d.join("out"))
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a.qcow2", "b.qcow2"], "leftovers: {names:?}");
    // Text summary; everything succeeds into vmdk.
    let o = guestctl(
        &[
            "convert",
            "--batch",
            "a.qcow2",
            "b.vmdk",
            "-O",
            "vmdk",
            "--out-dir",
            "out",
        ],
        d,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("2 converted, 0 failed"), "{text}");
    qemu_img(&["compare", "-q", "b.vmdk", "out/b.vmdk"], d);
    // Usage errors: three paths without --batch, --out-dir without --batch.
    let o = guestctl(&["convert", "a.qcow2", "b.vmdk", "c", "-O", "raw"], d);
    assert_eq!(o.status.code(), Some(2));
    let o = guestctl(
        &[
            "convert",
            "a.qcow2",
            "x.raw",
            "-O",
            "raw",
            "--out-dir",
            "out",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(2));
}

/// Raw output of compressed qcow2 (zlib and zstd, a run of compressed clusters much longer
/// than a chunk, plain and zero clusters between): identical to the source by `qemu-img
/// compare`, with the same holes as qemu-img's own raw export (allocated blocks within a
/// few clusters), at any thread count (one writer, several readers).
#[test]
fn convert_compressed_qcow2_to_raw_is_exact_and_sparse() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // 24 MiB: 12 MiB of text (compressible), 4 MiB of zeros, 4 MiB of noise, 4 MiB of text.
    let mut v = Vec::with_capacity(24 << 20);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in 0..(24usize << 20) {
        v.push(match i >> 20 {
            12..=15 => 0,
            16..=19 => {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }
            _ => b"a guest's /usr/share/doc, say "[i % 30] ^ ((i >> 12) as u8 & 3),
        });
    }
    std::fs::write(d.join("src.raw"), &v).expect("write");
    for ty in ["zlib", "zstd"] {
        let src = format!("{ty}.qcow2");
        let opt = format!("compression_type={ty}");
        qemu_img(
            &[
                "convert", "-q", "-c", "-O", "qcow2", "-o", &opt, "src.raw", &src,
            ],
            d,
        );
        qemu_img(&["convert", "-q", "-O", "raw", &src, "q.raw"], d);
        let want = std::fs::metadata(d.join("q.raw")).expect("q").blocks();
        for j in ["1", "2", "4"] {
            let o = guestctl(
                &["convert", "-j", j, &src, "out.raw", "-O", "raw", "--force"],
                d,
            );
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            qemu_img(&["compare", "-q", &src, "out.raw"], d);
            let got = std::fs::metadata(d.join("out.raw")).expect("out").blocks();
            // 512-byte blocks; a chunk's zeros are written when the chunk has data.
            assert!(
                got <= want + 8192 && got + 8192 >= want,
                "{ty} -j {j}: {got} blocks allocated, qemu-img {want}"
            );
            assert!(
                got * 512 < 21 << 20,
                "{ty} -j {j}: the zeros are not a hole"
            );
        }
    }
}

/// `info` (text and JSON) into a pipe whose reader is gone before anything is written: the
/// write fails with EPIPE and guestctl ends quietly, exit 0 (it used to panic in println!).
#[test]
fn info_into_a_closed_pipe_ends_quietly() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo.qcow2");
    for json in [false, true] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_guestctl"));
        cmd.arg("info");
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd
            .arg(&demo)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "json={json}: {:?}", out.status);
        assert!(
            out.stderr.is_empty(),
            "json={json}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
