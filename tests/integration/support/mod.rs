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
    run_command(Command::new(cmd).args(args).current_dir(dir), cmd, args)
}

/// Runs `c` (which is `cmd args`); panics (with stderr) unless it succeeds.
fn run_command(c: &mut Command, cmd: &str, args: &[&str]) -> Output {
    let o = c
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

/// A sparse file of `mib` MiB in `dir`, formatted by `cmd ARGS FILE` (mkfs.xfs, mkfs.btrfs,
/// mkfs.vfat, mkfs.ext4 ...). mkfs.xfs refuses filesystems under 300 MB unless it believes it
/// runs under xfstests: the variables it checks are set.
pub fn mkfs_file(dir: &Path, name: &str, mib: u64, cmd: &str, args: &[&str]) -> PathBuf {
    let f = dir.join(name);
    File::create(&f)
        .expect("create")
        .set_len(mib << 20)
        .expect("set_len");
    run_command(
        Command::new(cmd)
            .args(args)
            .arg(&f)
            .env("QA_CHECK_FS", "1")
            .env("TEST_DIR", "1")
            .env("TEST_DEV", "1")
            .current_dir(dir),
        cmd,
        args,
    );
    f
}

/// A LUKS1 volume of `mib` MiB in `dir` made by `cryptsetup luksFormat` on a file (fast
/// pbkdf2, passphrase `pw`): what guestctl finds and cannot read without a key.
pub fn luks_file(dir: &Path, name: &str, mib: u64) -> PathBuf {
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&key, b"pw").expect("key");
    let key = format!("--key-file={}", key.display());
    mkfs_file(
        dir,
        name,
        mib,
        "cryptsetup",
        &[
            "luksFormat",
            "-q",
            "--type",
            "luks1",
            "--pbkdf-force-iterations",
            "1000",
            &key,
        ],
    )
}

/// A GPT disk `name` in `dir` made by `sgdisk` on a sparse file: partition N (from 1) is
/// `parts[N-1]`'s file, copied in with `dd conv=notrunc`, with that sgdisk type code (`EF00`
/// ESP, `8300` Linux, `8309` LUKS, ...), each starting on a MiB boundary. No parts: an empty
/// table.
pub fn gpt_disk(dir: &Path, name: &str, parts: &[(&Path, &str)]) -> PathBuf {
    let mib = |p: &Path| std::fs::metadata(p).expect("part").len().div_ceil(1 << 20);
    let total: u64 = parts.iter().map(|(p, _)| mib(p)).sum::<u64>() + 2;
    let img = dir.join(name);
    File::create(&img)
        .expect("create")
        .set_len(total << 20)
        .expect("set_len");
    let mut args = vec!["-o".to_string()];
    let mut start = 1u64;
    for (i, (p, code)) in parts.iter().enumerate() {
        let n = i + 1;
        let end = ((start + mib(p)) << 11) - 1;
        args.push(format!("-n{n}:{}:{end}", start << 11));
        args.push(format!("-t{n}:{code}"));
        start += mib(p);
    }
    args.push(img.to_str().expect("utf8").to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("sgdisk", &args, dir);
    let mut start = 1u64;
    for (p, _) in parts {
        let seek = format!("seek={start}");
        let (i, o) = (
            format!("if={}", p.display()),
            format!("of={}", img.display()),
        );
        run(
            "dd",
            &[&i, &o, "bs=1M", &seek, "conv=notrunc,sparse", "status=none"],
            dir,
        );
        start += mib(p);
    }
    img
}

/// An mkfs.xfs prototype file (`mkfs.xfs -p`) describing the host tree `src`: directories,
/// regular files (their contents read from `src`) and symlinks, with their permission bits,
/// owned by root. Names must not contain white space.
pub fn xfs_proto(src: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    fn dir(p: &Path, out: &mut String) {
        let mut entries: Vec<_> = std::fs::read_dir(p)
            .expect("read_dir")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for e in entries {
            let name = e.file_name().expect("name").to_string_lossy().into_owned();
            assert!(!name.contains(char::is_whitespace), "{name:?}");
            let m = std::fs::symlink_metadata(&e).expect("stat");
            let mode = m.permissions().mode() & 0o777;
            if m.file_type().is_symlink() {
                let t = std::fs::read_link(&e).expect("readlink");
                out.push_str(&format!("{name} l--{mode:03o} 0 0 {}\n", t.display()));
            } else if m.is_dir() {
                out.push_str(&format!("{name} d--{mode:03o} 0 0\n"));
                dir(&e, out);
                out.push_str("$\n");
            } else {
                out.push_str(&format!("{name} ---{mode:03o} 0 0 {}\n", e.display()));
            }
        }
    }
    let mut out = String::from("/dev/null\n0 0\nd--755 0 0\n");
    dir(src, &mut out);
    out.push_str("$\n");
    out
}
