//! Shared helpers for integration tests: the corpus, decompression, hashing, qemu-img.
#![allow(dead_code)]

pub mod inspect_xml;

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use guestctl::BlockDevice;
use sha2::{Digest, Sha256};

/// `../shared/corpus`, or a loud failure: tests that need it must not silently pass.
pub fn corpus() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    assert!(
        p.join("INDEX.md").is_file(),
        "the shared corpus is missing: expected {} (clone ../shared beside the checkout)",
        p.display()
    );
    p
}

/// Copies `src` into `dir`, decompressing `.gz`/`.zst` (the suffix is dropped). Returns the path.
pub fn materialize(src: &Path, dir: &Path) -> PathBuf {
    let name = src
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let (out_name, kind) = if let Some(n) = name.strip_suffix(".gz") {
        (n.to_string(), "gz")
    } else if let Some(n) = name.strip_suffix(".zst") {
        (n.to_string(), "zst")
    } else {
        (name.clone(), "")
    };
    let dst = dir.join(&out_name);
    if dst.exists() {
        return dst;
    }
    let input =
        BufReader::new(File::open(src).unwrap_or_else(|e| panic!("{}: {e}", src.display())));
    let mut out = File::create(&dst).expect("create");
    match kind {
        "gz" => {
            std::io::copy(&mut flate2::read::GzDecoder::new(input), &mut out).expect("gunzip");
        }
        "zst" => {
            let st = Command::new("zstd")
                .args(["-d", "-q", "-f", "-o"])
                .arg(&dst)
                .arg(src)
                .status()
                .expect("zstd must be installed (scripts/test.sh installs it)");
            assert!(st.success());
        }
        _ => {
            let mut b = Vec::new();
            let mut input = input;
            input.read_to_end(&mut b).expect("read");
            out.write_all(&b).expect("write");
        }
    }
    dst
}

/// Every file of a corpus folder materialised into `dir` (backing chains need their siblings).
pub fn materialize_dir(src_dir: &Path, dir: &Path) {
    for e in std::fs::read_dir(src_dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_file() {
            materialize(&p, dir);
        }
    }
}

/// sha256 of a device's whole content, read in 4 MiB chunks.
pub fn sha256_device(dev: &dyn BlockDevice) -> String {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    let mut off = 0;
    while off < dev.size() {
        let n = (dev.size() - off).min(buf.len() as u64) as usize;
        dev.read_exact_at(off, &mut buf[..n]).expect("read");
        h.update(&buf[..n]);
        off += n as u64;
    }
    hex(&h.finalize())
}

/// sha256 of a file.
pub fn sha256_file(p: &Path) -> String {
    let mut h = Sha256::new();
    let mut f = File::open(p).expect("open");
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex(&h.finalize())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `qemu-img convert -O raw SRC` into a temp file of `dir`; panics if qemu-img is missing.
pub fn qemu_raw(src: &Path, dir: &Path) -> PathBuf {
    let out = dir.join(format!(
        "{}.qemu.raw",
        src.file_name().expect("name").to_string_lossy()
    ));
    // Run in the image's directory: qemu resolves external data-file names against the
    // working directory (backing names against the image's directory).
    let st = Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(src)
        .arg(&out)
        .current_dir(src.parent().expect("parent"))
        .status()
        .expect("qemu-img must be installed (scripts/test.sh installs qemu-utils)");
    assert!(st.success(), "qemu-img convert failed on {}", src.display());
    out
}

/// Asserts that every byte of `dev` equals the file `raw`, and that map() never calls a range
/// zero that is not.
pub fn assert_same_as_raw(dev: &dyn BlockDevice, raw: &Path, what: &str) {
    let expect = std::fs::read(raw).expect("read raw");
    assert_eq!(dev.size(), expect.len() as u64, "{what}: size");
    let mut got = vec![0u8; expect.len()];
    dev.read_exact_at(0, &mut got).expect("read");
    if got != expect {
        let first = got
            .iter()
            .zip(&expect)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!("{what}: content differs from qemu-img, first at byte {first:#x}");
    }
    let m = dev.map(0, dev.size()).expect("map");
    let mut pos = 0;
    for e in m.iter() {
        assert_eq!(e.offset, pos, "{what}: map not contiguous");
        if e.kind.reads_as_zero() {
            let r = &expect[e.offset as usize..e.end() as usize];
            assert!(
                r.iter().all(|&b| b == 0),
                "{what}: map says {:?} at {:#x}+{:#x} but data is non-zero",
                e.kind,
                e.offset,
                e.len
            );
        }
        pos = e.end();
    }
    assert_eq!(pos, dev.size(), "{what}: map does not cover the device");
    // Unaligned small reads agree too.
    for &(off, len) in &[(1u64, 1usize), (511, 3), (4095, 8193), (65535, 70000)] {
        if off + len as u64 <= dev.size() {
            let mut b = vec![0u8; len];
            dev.read_exact_at(off, &mut b).expect("small read");
            assert_eq!(
                &b[..],
                &expect[off as usize..off as usize + len],
                "{what}: read at {off}"
            );
        }
    }
}

/// Runs `cmd args` in `dir`; panics (with stderr) unless it succeeds.
pub fn run(cmd: &str, args: &[&str], dir: &Path) -> Output {
    let o = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} must be installed (scripts/test.sh installs it): {e}"));
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// `qemu-img ARGS` in `dir`.
pub fn qemu_img(args: &[&str], dir: &Path) -> Output {
    run("qemu-img", args, dir)
}

/// `qemu-io -f FMT -c CMD... IMAGE` in `dir`.
pub fn qemu_io(fmt: &str, image: &str, cmds: &[&str], dir: &Path) {
    let mut a = vec!["-f", fmt];
    for c in cmds {
        a.extend(["-c", c]);
    }
    a.push(image);
    run("qemu-io", &a, dir);
}

/// Writes a partition table on the image file `img` with `sfdisk` (its script syntax).
pub fn sfdisk(img: &Path, script: &str) {
    let mut c = Command::new("sfdisk")
        .args(["-q", "--no-reread", "--no-tell-kernel"])
        .arg(img)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("sfdisk (apt-get install fdisk)");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write the sfdisk script");
    assert!(
        c.wait().expect("wait").success(),
        "sfdisk failed on {script}"
    );
}
