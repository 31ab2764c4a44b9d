//! Hostile input: crafted corruptions and bit-flipped variants of real images must give errors,
//! never panics or hangs; backing-file policy refusals name the image and the backing name.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use guestctl::block::ErrorKind;
use guestctl::{open_image, BlockDevice, OpenOptions};
use support::{qemu_img, qemu_io};

/// Small seed images of every kind, made with qemu-img.
fn seeds(dir: &Path) -> Vec<PathBuf> {
    let rand: Vec<u8> = {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..(1 << 20))
            .map(|i| {
                if (i / 65536) % 3 == 0 {
                    0
                } else {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 56) as u8 & if i % 7 == 0 { 0xff } else { 0x0f }
                }
            })
            .collect()
    };
    std::fs::write(dir.join("content.raw"), &rand).expect("write");
    let mut out = Vec::new();
    let mut mk = |name: &str, args: &[&str]| {
        let mut a = args.to_vec();
        a.push(name);
        qemu_img(&a, dir);
        out.push(dir.join(name));
    };
    mk(
        "c512.qcow2",
        &[
            "convert",
            "-q",
            "-O",
            "qcow2",
            "-o",
            "cluster_size=512",
            "content.raw",
        ],
    );
    mk(
        "zlib.qcow2",
        &[
            "convert",
            "-q",
            "-c",
            "-O",
            "qcow2",
            "-o",
            "cluster_size=4096",
            "content.raw",
        ],
    );
    mk(
        "zstd.qcow2",
        &[
            "convert",
            "-q",
            "-c",
            "-O",
            "qcow2",
            "-o",
            "cluster_size=4096,compression_type=zstd",
            "content.raw",
        ],
    );
    mk(
        "v2.qcow2",
        &[
            "convert",
            "-q",
            "-O",
            "qcow2",
            "-o",
            "compat=0.10,cluster_size=4096",
            "content.raw",
        ],
    );
    mk(
        "extl2.qcow2",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "extended_l2=on,cluster_size=16384",
            "-b",
            "c512.qcow2",
            "-F",
            "qcow2",
        ],
    );
    qemu_io(
        "qcow2",
        "extl2.qcow2",
        &["write -P 0x11 1536 1024", "write -z 40k 8k"],
        dir,
    );
    mk(
        "sparse.vmdk",
        &[
            "convert",
            "-q",
            "-O",
            "vmdk",
            "-o",
            "subformat=monolithicSparse",
            "content.raw",
        ],
    );
    mk(
        "stream.vmdk",
        &[
            "convert",
            "-q",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            "content.raw",
        ],
    );
    // And the committed fixtures (their backing and extent files land beside them).
    let tarball = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/formats.tar.zst");
    let st = Command::new("tar")
        .args(["-I", "zstd", "--strip-components=1", "-xf"])
        .arg(&tarball)
        .arg("-C")
        .arg(dir)
        .status()
        .expect("tar and zstd must be installed");
    assert!(st.success());
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("manifest");
    for line in manifest.lines().skip(1) {
        let name = line.split('\t').next().expect("name");
        let p = dir.join(name);
        if std::fs::metadata(&p)
            .map(|m| m.len() <= 4 << 20)
            .unwrap_or(false)
        {
            out.push(p);
        }
    }
    out
}

/// Opens and reads an image in a thread; fails the test if that takes more than 20 s.
fn survive(path: &Path) -> Option<guestctl::block::Error> {
    let p = path.to_path_buf();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| exercise(&p));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ok(r)) => r.err(),
        Ok(Err(_)) => panic!("panic while reading {}", path.display()),
        Err(_) => panic!("hang (> 20 s) while reading {}", path.display()),
    }
}

fn exercise(p: &Path) -> guestctl::block::Result<()> {
    let opts = OpenOptions::default();
    let img = open_image(p, &opts)?;
    let d = img.device();
    let span = d.size().min(64 << 20);
    let m = d.map(0, span)?;
    let mut buf = vec![0u8; 1 << 20];
    for e in m.iter().take(256) {
        let n = e.len.min(buf.len() as u64) as usize;
        d.read_exact_at(e.offset, &mut buf[..n])?;
    }
    let mut off = 0;
    while off < span {
        let n = (span - off).min(buf.len() as u64) as usize;
        d.read_exact_at(off, &mut buf[..n])?;
        off += n as u64;
    }
    Ok(())
}

#[test]
fn bit_flipped_images_never_panic_or_hang() {
    let dir = tempfile::tempdir().expect("tmp");
    let seeds = seeds(dir.path());
    let mut rng = 0x1234_5678_9abc_def1u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut errors, mut total) = (0, 0);
    for seed in &seeds {
        let bytes = std::fs::read(seed).expect("seed");
        for i in 0..40 {
            let mut v = bytes.clone();
            let flips = 1 + next() % 8;
            for _ in 0..flips {
                // Half the flips land in the first 4 KiB, where headers and tables live.
                let span = if next() % 2 == 0 {
                    v.len().min(4096)
                } else {
                    v.len()
                };
                let at = (next() % span as u64) as usize;
                v[at] ^= 1 << (next() % 8);
            }
            // Keep backing references working: write next to the originals.
            let name = format!(
                "flip-{i}-{}",
                seed.file_name().expect("n").to_string_lossy()
            );
            let p = dir.path().join(name);
            std::fs::write(&p, &v).expect("write");
            if survive(&p).is_some() {
                errors += 1;
            }
            total += 1;
            std::fs::remove_file(&p).expect("rm");
        }
    }
    eprintln!("{total} bit-flipped images, {errors} gave errors (the rest read)");
    assert!(
        errors > 0,
        "bit flips never produced an error: the test is not reaching the parsers"
    );
}

#[test]
fn truncated_images_give_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    for seed in seeds(dir.path()) {
        let bytes = std::fs::read(&seed).expect("seed");
        for cut in [
            0usize,
            3,
            64,
            100,
            511,
            600,
            4096,
            bytes.len() / 2,
            bytes.len() - 1,
        ] {
            let p = dir.path().join("cut.img");
            std::fs::write(&p, &bytes[..cut.min(bytes.len())]).expect("write");
            let _ = survive(&p);
        }
    }
}

fn patch(path: &Path, off: usize, bytes: &[u8]) {
    let mut v = std::fs::read(path).expect("read");
    v[off..off + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, v).expect("write");
}

#[test]
fn crafted_qcow2_corruptions_are_named() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    qemu_img(&["create", "-q", "-f", "qcow2", "a.qcow2", "16M"], d);
    qemu_io("qcow2", "a.qcow2", &["write -P 1 0 64k"], d);
    let a = d.join("a.qcow2");
    let bytes = std::fs::read(&a).expect("read");
    let l1_off = u64::from_be_bytes(bytes[40..48].try_into().expect("8")) as usize;

    // L1 entry pointing past the end of the file.
    let p = d.join("l2-past-eof.qcow2");
    std::fs::copy(&a, &p).expect("cp");
    patch(
        &p,
        l1_off,
        &(0x8000_0000_0000_0000u64 | (1 << 40)).to_be_bytes(),
    );
    let e = exercise(&p).expect_err("must fail");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    let s = e.to_string();
    assert!(
        s.contains("l2-past-eof.qcow2") && s.contains("L2 table"),
        "{s}"
    );

    // Huge L1 size.
    let p = d.join("huge-l1.qcow2");
    std::fs::copy(&a, &p).expect("cp");
    patch(&p, 36, &u32::MAX.to_be_bytes());
    let e = exercise(&p).expect_err("must fail");
    assert!(e.to_string().contains("L1 table"), "{e}");

    // Unaligned data cluster offset in the L2 table.
    let l2_off = u64::from_be_bytes(bytes[l1_off..l1_off + 8].try_into().expect("8"))
        & 0x00ff_ffff_ffff_fe00;
    let p = d.join("unaligned.qcow2");
    std::fs::copy(&a, &p).expect("cp");
    patch(
        &p,
        l2_off as usize,
        &(0x8000_0000_0001_0200u64).to_be_bytes(),
    );
    let e = exercise(&p).expect_err("must fail");
    assert!(e.to_string().contains("not cluster aligned"), "{e}");

    // Encryption is refused.
    let p = d.join("enc.qcow2");
    std::fs::copy(&a, &p).expect("cp");
    patch(&p, 32, &1u32.to_be_bytes());
    let e = exercise(&p).expect_err("must fail");
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    assert!(e.to_string().contains("encrypted"), "{e}");
}

/// Writes a backing file name into a qcow2 made by qemu-img (no backing format), in place.
fn set_backing(path: &Path, name: &str) {
    let st = Command::new("qemu-img")
        .args(["rebase", "-u", "-f", "qcow2", "-b", name, "-F", "qcow2"])
        .arg(path)
        .status()
        .expect("qemu-img");
    assert!(st.success());
}

#[test]
fn backing_policy_refuses_and_names() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    std::fs::create_dir(d.join("images")).expect("mkdir");
    let img = d.join("images");
    qemu_img(&["create", "-q", "-f", "qcow2", "base.qcow2", "1M"], d);
    qemu_img(&["create", "-q", "-f", "qcow2", "top.qcow2", "1M"], &img);
    let top = img.join("top.qcow2");
    for (name, needle) in [
        ("../base.qcow2", "outside the image's directory"),
        ("json:{\"file.filename\":\"/etc/passwd\"}", "protocol"),
        ("nbd:127.0.0.1:10809", "protocol"),
        ("http://example.invalid/x.qcow2", "protocol"),
    ] {
        set_backing(&top, name);
        let e = open_image(&top, &OpenOptions::default()).expect_err(name);
        assert_eq!(e.kind(), ErrorKind::Refused, "{name}: {e}");
        let s = e.to_string();
        assert!(s.contains("top.qcow2") && s.contains(needle), "{name}: {s}");
    }
    // Absolute path: refused, then allowed with a prefix.
    let abs = d.join("base.qcow2").display().to_string();
    set_backing(&top, &abs);
    let e = open_image(&top, &OpenOptions::default()).expect_err("abs");
    assert!(e.to_string().contains("absolute"), "{e}");
    let opts = OpenOptions {
        allow_backing: vec![d.to_path_buf()],
        ..OpenOptions::default()
    };
    let ok = open_image(&top, &opts).expect("allowed");
    assert_eq!(ok.info().chain().len(), 2);
    // Not following backing files at all.
    let lone = OpenOptions {
        follow_backing: false,
        ..OpenOptions::default()
    };
    assert_eq!(
        open_image(&top, &lone).expect("lone").info().chain().len(),
        1
    );
}

#[test]
fn backing_loops_and_deep_chains_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    qemu_img(&["create", "-q", "-f", "qcow2", "a.qcow2", "1M"], d);
    qemu_img(&["create", "-q", "-f", "qcow2", "b.qcow2", "1M"], d);
    set_backing(&d.join("a.qcow2"), "b.qcow2");
    set_backing(&d.join("b.qcow2"), "a.qcow2");
    let e = open_image(d.join("a.qcow2"), &OpenOptions::default()).expect_err("loop");
    let chain: Vec<String> =
        std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .map(|e| e.to_string())
            .collect();
    assert!(chain.iter().any(|s| s.contains("loop")), "{chain:?}");

    // Self loop.
    set_backing(&d.join("a.qcow2"), "a.qcow2");
    assert!(open_image(d.join("a.qcow2"), &OpenOptions::default()).is_err());

    // A chain of 18 images: deeper than 16.
    qemu_img(&["create", "-q", "-f", "qcow2", "l0.qcow2", "1M"], d);
    for i in 1..18 {
        let prev = format!("l{}.qcow2", i - 1);
        qemu_img(
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-b",
                &prev,
                "-F",
                "qcow2",
                &format!("l{i}.qcow2"),
            ],
            d,
        );
    }
    let e = open_image(d.join("l17.qcow2"), &OpenOptions::default()).expect_err("deep");
    let chain: Vec<String> =
        std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .map(|e| e.to_string())
            .collect();
    assert!(
        chain.iter().any(|s| s.contains("deeper than 16")),
        "{chain:?}"
    );
    // 16 deep is fine.
    assert!(open_image(d.join("l15.qcow2"), &OpenOptions::default()).is_ok());
}

#[test]
fn raw_device_reads_are_bounded() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("x.raw");
    std::fs::write(&p, vec![1u8; 1000]).expect("w");
    let img = open_image(&p, &OpenOptions::default()).expect("raw");
    let d = img.device();
    let mut b = [0u8; 10];
    assert_eq!(d.read_at(995, &mut b).expect("r"), 5);
    assert_eq!(d.read_at(5000, &mut b).expect("r"), 0);
    assert!(d.read_exact_at(995, &mut b).is_err());
}

/// Every file of ../shared/corpus, as stored (compressed files included), goes through
/// open_image and a bounded full read: whatever it is, no panic and no hang.
#[test]
fn every_corpus_file_survives_open_and_read() {
    let root = support::corpus();
    let mut stack = vec![root.clone()];
    let (mut files, mut opened) = (0, 0);
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() {
                files += 1;
                if survive(&p).is_none() {
                    opened += 1;
                }
            }
        }
    }
    eprintln!("{files} corpus files, {opened} opened and read fully (the rest refused cleanly)");
    assert!(files > 100, "corpus looks incomplete: {files} files");
}
