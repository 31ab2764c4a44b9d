//! vmdk in every subformat qemu-img makes, plus hand-written descriptors, read against
//! `qemu-img convert -O raw`; hostile descriptors and headers give errors.

use crate::support;

use std::io::Read;
use std::path::Path;

use guestctl::block::ErrorKind;
use guestctl::{open_image, BlockDevice, OpenOptions};
use support::*;

/// Streams `dev` against qemu-img's raw export in 4 MiB chunks (works for multi-GiB disks).
fn check(dir: &Path, name: &str) {
    let p = dir.join(name);
    let img = open_image(&p, &OpenOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let dev = img.device();
    let raw = qemu_raw(&p, dir);
    if std::fs::metadata(&raw).expect("meta").len() < 256 << 20 {
        assert_same_as_raw(dev.as_ref(), &raw, name);
    } else {
        stream_compare(dev.as_ref(), &raw, name);
    }
    std::fs::remove_file(raw).expect("rm");
}

fn stream_compare(dev: &dyn BlockDevice, raw: &Path, name: &str) {
    let mut f = std::fs::File::open(raw).expect("open");
    assert_eq!(dev.size(), f.metadata().expect("m").len(), "{name}: size");
    let mut a = vec![0u8; 4 << 20];
    let mut b = vec![0u8; 4 << 20];
    let mut off = 0u64;
    while off < dev.size() {
        let n = (dev.size() - off).min(a.len() as u64) as usize;
        dev.read_exact_at(off, &mut a[..n]).expect("read");
        f.read_exact(&mut b[..n]).expect("read raw");
        assert!(
            a[..n] == b[..n],
            "{name}: differs from qemu-img in the chunk at {off:#x}"
        );
        off += n as u64;
    }
}

const WRITES: &[&str] = &[
    "write -P 0x11 0 4k",
    "write -P 0x22 70000 3000",
    "write -P 0x33 1M 1M",
    "write -P 0x44 3146240 1536",
];

fn content(d: &Path, name: &str, size: usize) {
    let mut x = 0x9876_5432u64;
    let v: Vec<u8> = (0..size)
        .map(|i| match (i >> 14) % 4 {
            0 => 0,
            1 => b"streamOptimized grains "[i % 23],
            _ => {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }
        })
        .collect();
    std::fs::write(d.join(name), v).expect("write");
}

#[test]
fn every_subformat() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // streamOptimized only takes sequential writes: it is made by convert in the next test.
    for sub in [
        "monolithicSparse",
        "monolithicFlat",
        "twoGbMaxExtentSparse",
        "twoGbMaxExtentFlat",
    ] {
        let name = format!("{sub}.vmdk");
        let opt = format!("subformat={sub}");
        run(
            "qemu-img",
            &["create", "-q", "-f", "vmdk", "-o", &opt, &name, "6M"],
            d,
        );
        qemu_io("vmdk", &name, WRITES, d);
        check(d, &name);
    }
    // Larger than 2 GiB: the twoGbMax subformats split into several extent files.
    for sub in ["twoGbMaxExtentSparse", "twoGbMaxExtentFlat"] {
        let name = format!("big-{sub}.vmdk");
        let opt = format!("subformat={sub}");
        run(
            "qemu-img",
            &["create", "-q", "-f", "vmdk", "-o", &opt, &name, "2304M"],
            d,
        );
        qemu_io(
            "vmdk",
            &name,
            &[
                "write -P 0x55 0 64k",
                "write -P 0x66 2147418112 131072",
                "write -P 0x77 2415853568 4096",
            ],
            d,
        );
        let img = open_image(d.join(&name), &OpenOptions::default()).expect("open");
        let extents = &img.info().format_specific.as_ref().expect("fs").data["extents"];
        assert!(
            extents.as_array().expect("array").len() >= 2,
            "{name}: {extents}"
        );
        check(d, &name);
    }
}

#[test]
fn stream_optimized_and_compressed_content() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    content(d, "content.raw", 6 << 20);
    run(
        "qemu-img",
        &[
            "convert",
            "-q",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            "content.raw",
            "s.vmdk",
        ],
        d,
    );
    check(d, "s.vmdk");
    let img = open_image(d.join("s.vmdk"), &OpenOptions::default()).expect("open");
    assert_eq!(img.info().compression_type.as_deref(), Some("deflate"));
    assert_eq!(img.info().subformat.as_deref(), Some("streamOptimized"));
    // An odd size: the last grain is partial.
    content(d, "odd.raw", (5 << 20) + 1536);
    run(
        "qemu-img",
        &[
            "convert",
            "-q",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            "odd.raw",
            "odd.vmdk",
        ],
        d,
    );
    check(d, "odd.vmdk");
    run(
        "qemu-img",
        &["convert", "-q", "-O", "vmdk", "odd.raw", "odd-sparse.vmdk"],
        d,
    );
    check(d, "odd-sparse.vmdk");
    // Compressed-grain partial reads use the grain cache.
    let dev = img.device();
    let mut a = vec![0u8; 3000];
    dev.read_exact_at(70_001, &mut a).expect("read");
    let raw = std::fs::read(d.join("content.raw")).expect("raw");
    assert_eq!(&a[..], &raw[70_001..73_001]);
}

#[test]
fn zeroed_grains_and_versions() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "zeroed_grain=on",
            "z.vmdk",
            "6M",
        ],
        d,
    );
    qemu_io(
        "vmdk",
        "z.vmdk",
        &["write -P 0x11 0 2M", "write -z 64k 128k", "write -z 4M 1M"],
        d,
    );
    check(d, "z.vmdk");
    let img = open_image(d.join("z.vmdk"), &OpenOptions::default()).expect("open");
    let m = img.device().map(0, 6 << 20).expect("map");
    assert!(
        m.bytes_of(guestctl::block::ExtentKind::Zero) >= 128 << 10,
        "{m:?}"
    );
    for hw in ["4", "6"] {
        let name = format!("hw{hw}.vmdk");
        let opt = format!("hwversion={hw}");
        run(
            "qemu-img",
            &["create", "-q", "-f", "vmdk", "-o", &opt, &name, "2M"],
            d,
        );
        qemu_io("vmdk", &name, &["write -P 0x21 512 1k"], d);
        check(d, &name);
    }
}

#[test]
fn delta_chains() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    run(
        "qemu-img",
        &["create", "-q", "-f", "vmdk", "base.vmdk", "6M"],
        d,
    );
    qemu_io("vmdk", "base.vmdk", &["write -P 0x01 0 6M"], d);
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-b",
            "base.vmdk",
            "-F",
            "vmdk",
            "delta.vmdk",
        ],
        d,
    );
    qemu_io(
        "vmdk",
        "delta.vmdk",
        &["write -P 0x02 1M 64k", "write -P 0x03 70000 100"],
        d,
    );
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-b",
            "delta.vmdk",
            "-F",
            "vmdk",
            "delta2.vmdk",
        ],
        d,
    );
    qemu_io("vmdk", "delta2.vmdk", &["write -P 0x04 5M 4k"], d);
    check(d, "delta2.vmdk");
    let img = open_image(d.join("delta2.vmdk"), &OpenOptions::default()).expect("open");
    assert_eq!(img.info().chain().len(), 3);
    assert_eq!(img.info().backing_filename.as_deref(), Some("delta.vmdk"));
    // A vmdk delta over a qcow2 is not something qemu makes; a qcow2 over a vmdk is tested in
    // qcow2_variants.
}

#[test]
fn hand_written_descriptor_with_flat_zero_and_sparse() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    content(d, "part1.bin", 1 << 20);
    run(
        "qemu-img",
        &["create", "-q", "-f", "vmdk", "part3.vmdk", "2M"],
        d,
    );
    qemu_io("vmdk", "part3.vmdk", &["write -P 0x5a 4096 8192"], d);
    // qemu's oracle: RW FLAT and SPARSE lines (qemu skips ZERO and non-RW lines entirely).
    // The "# Extent description" line matters: qemu 10 reads the first extent line twice when
    // it directly follows a blank line (a qemu quirk; guestctl follows the VMDK spec).
    let desc = "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n\
createType=\"monolithicFlat\"\n\n# Extent description\nRW 2048 FLAT \"part1.bin\" 0\nRW 512 FLAT \"part1.bin\" 100\n\
RW 4096 SPARSE \"part3.vmdk\"\n";
    std::fs::write(d.join("multi.vmdk"), desc).expect("write");
    check(d, "multi.vmdk");
    // With ZERO and RDONLY extents the oracle is the source bytes themselves:
    // part1.bin (1 MiB), 512 KiB of zeros, part1.bin from sector 100 (256 KiB), part3's data.
    let desc = "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n\
createType=\"monolithicFlat\"\n\nRW 2048 FLAT \"part1.bin\" 0\nRW 1024 ZERO\n\
RDONLY 512 FLAT \"part1.bin\" 100\nRW 4096 SPARSE \"part3.vmdk\"\n";
    std::fs::write(d.join("zero.vmdk"), desc).expect("write");
    let part1 = std::fs::read(d.join("part1.bin")).expect("part1");
    let part3 = std::fs::read(qemu_raw(&d.join("part3.vmdk"), d)).expect("part3");
    let mut expect = part1.clone();
    expect.extend(std::iter::repeat_n(0u8, 512 << 10));
    expect.extend_from_slice(&part1[100 * 512..100 * 512 + (256 << 10)]);
    expect.extend_from_slice(&part3);
    std::fs::write(d.join("zero.expected"), &expect).expect("write");
    let img = open_image(d.join("zero.vmdk"), &OpenOptions::default()).expect("open");
    assert_same_as_raw(img.device().as_ref(), &d.join("zero.expected"), "zero.vmdk");
    let m = img.device().map(0, img.device().size()).expect("map");
    assert_eq!(m.extents()[1].kind, guestctl::block::ExtentKind::Zero);
    assert_eq!(m.extents()[1].len, 512 << 10);
}

fn refused(d: &Path, name: &str, text: &str) -> guestctl::block::Error {
    std::fs::write(d.join(name), text).expect("write");
    open_image(d.join(name), &OpenOptions::default()).expect_err(name)
}

#[test]
fn hostile_descriptors() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let head = "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\n";
    let e = refused(d, "up.vmdk", &format!("{head}RW 10 FLAT \"../x\" 0\n"));
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    let e = refused(
        d,
        "abs.vmdk",
        &format!("{head}RW 10 FLAT \"/etc/passwd\" 0\n"),
    );
    assert!(e.to_string().contains("absolute"), "{e}");
    let e = refused(
        d,
        "many.vmdk",
        &format!("{head}{}", "RW 1 ZERO\n".repeat(100_000)),
    );
    assert!(
        e.to_string().contains("extents") || e.to_string().contains("larger"),
        "{e}"
    );
    let e = refused(
        d,
        "huge.vmdk",
        &format!("{head}RW 18446744073709551615 ZERO\n"),
    );
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    let e = refused(d, "cowd.vmdk", &format!("{head}RW 10 VMFSSPARSE \"x\"\n"));
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    let e = refused(d, "noaccess.vmdk", &format!("{head}NOACCESS 10 ZERO\n"));
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    let e = refused(
        d,
        "missing.vmdk",
        &format!("{head}RW 10 FLAT \"nothere.bin\" 0\n"),
    );
    assert!(e.to_string().contains("nothere.bin"), "{e}");
    // A SPARSE extent that is itself a descriptor: refused, not recursed into.
    let e = refused(
        d,
        "selfsparse.vmdk",
        &format!("{head}RW 10 SPARSE \"selfsparse.vmdk\"\n"),
    );
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    // A FLAT extent pointing at the descriptor itself reads the descriptor's bytes (harmless).
    std::fs::write(
        d.join("selfflat.vmdk"),
        format!("{head}RW 1 FLAT \"selfflat.vmdk\" 0\n"),
    )
    .expect("w");
    let img = open_image(d.join("selfflat.vmdk"), &OpenOptions::default()).expect("self flat");
    let mut b = [0u8; 512];
    img.device().read_exact_at(0, &mut b).expect("read");
    assert!(b.starts_with(b"# Disk"));
    // A parent hint that escapes the directory.
    let e = refused(
        d,
        "escape-parent.vmdk",
        &format!("{head}parentCID=1\nparentFileNameHint=\"../../etc/base.vmdk\"\nRW 1 ZERO\n"),
    );
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
}

#[test]
fn hostile_sparse_headers() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    run(
        "qemu-img",
        &["create", "-q", "-f", "vmdk", "a.vmdk", "4M"],
        d,
    );
    qemu_io("vmdk", "a.vmdk", &["write -P 1 0 64k"], d);
    let orig = std::fs::read(d.join("a.vmdk")).expect("read");
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut v = orig.clone();
    v[56..64].copy_from_slice(&(1u64 << 40).to_le_bytes()); // GD past EOF
    cases.push(("gd-past-eof", v));
    let mut v = orig.clone();
    v[12..20].copy_from_slice(&u64::MAX.to_le_bytes()); // capacity
    cases.push(("huge-capacity", v));
    let mut v = orig.clone();
    v[20..28].copy_from_slice(&3u64.to_le_bytes()); // grain size not a power of two
    cases.push(("bad-grain", v));
    let mut v = orig.clone();
    v[44..48].copy_from_slice(&u32::MAX.to_le_bytes());
    cases.push(("bad-gtes", v));
    let mut v = orig.clone();
    v.truncate(300);
    cases.push(("truncated", v));
    for (name, bytes) in cases {
        let p = d.join(format!("{name}.vmdk"));
        std::fs::write(&p, bytes).expect("write");
        let e = open_image(&p, &OpenOptions::default()).expect_err(name);
        let s = e.to_string();
        assert!(
            s.contains(&format!("{name}.vmdk")) && s.contains("vmdk"),
            "{name}: {s}"
        );
    }
    // A grain directory entry pointing past the end: an error on read, naming the structure.
    let h = &orig;
    let gd = u64::from_le_bytes(h[56..64].try_into().expect("8")) as usize * 512;
    let mut v = orig.clone();
    v[gd..gd + 4].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
    std::fs::write(d.join("gte.vmdk"), v).expect("write");
    let img = open_image(d.join("gte.vmdk"), &OpenOptions::default()).expect("opens");
    let mut b = vec![0u8; 65536];
    let e = img
        .device()
        .read_exact_at(0, &mut b)
        .expect_err("bad GD entry");
    assert!(e.to_string().contains("grain directory"), "{e}");
}

#[test]
fn grain_directory_memory_is_budgeted_per_image() {
    // One sparse file with the largest grain directory allowed (16M entries, 64 MiB, all
    // holes), named by a descriptor again and again: loading stops at the image's budget.
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let mut h = vec![0u8; 512];
    h[0..4].copy_from_slice(b"KDMV");
    h[4..8].copy_from_slice(&1u32.to_le_bytes());
    h[12..20].copy_from_slice(&(1u64 << 24).to_le_bytes()); // capacity (sectors)
    h[20..28].copy_from_slice(&1u64.to_le_bytes()); // grain: 1 sector
    h[44..48].copy_from_slice(&1u32.to_le_bytes()); // 1 GTE per GT
    h[56..64].copy_from_slice(&1u64.to_le_bytes()); // GD at sector 1
    let f = std::fs::File::create(d.join("x.vmdk")).expect("create");
    std::io::Write::write_all(&mut &f, &h).expect("write");
    f.set_len(512 + (64 << 20)).expect("len");
    let lines = "RW 16777216 SPARSE \"x.vmdk\"\n".repeat(64);
    let desc = format!("# Disk DescriptorFile\nversion=1\ncreateType=\"twoGbMaxExtentSparse\"\n\n# Extent description\n{lines}");
    std::fs::write(d.join("many.vmdk"), desc).expect("write");
    let e = open_image(d.join("many.vmdk"), &OpenOptions::default()).expect_err("budget");
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    assert!(e.to_string().contains("grain directories"), "{e}");
    // One of them alone is fine.
    let one = "# Disk DescriptorFile\nversion=1\ncreateType=\"twoGbMaxExtentSparse\"\n\n# Extent description\nRW 16777216 SPARSE \"x.vmdk\"\n";
    std::fs::write(d.join("one.vmdk"), one).expect("write");
    let img = open_image(d.join("one.vmdk"), &OpenOptions::default()).expect("one");
    assert_eq!(img.device().size(), 8 << 30);
}
