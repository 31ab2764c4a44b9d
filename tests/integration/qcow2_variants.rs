//! qcow2 in every variant qemu-img makes, read byte for byte against `qemu-img convert -O raw`,
//! with map() checked against the data. Images are made at test time by qemu-img/qemu-io.

use crate::support;

use std::path::Path;

use guestctl::{open_image, OpenOptions};
use support::*;

/// A write pattern touching partial clusters, whole clusters, zeroing and discards.
const WRITES: &[&str] = &[
    "write -P 0x11 0 4k",
    "write -P 0x22 5000 3000",
    "write -P 0x33 1M 1M",
    "write -P 0x44 3146240 1536",
    "write -z 1114112 128k",
    "discard 1572864 64k",
    "write -P 0x55 6290944 512",
];

fn check(dir: &Path, name: &str) {
    let p = dir.join(name);
    let img = open_image(&p, &OpenOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let raw = qemu_raw(&p, dir);
    assert_same_as_raw(img.device().as_ref(), &raw, name);
    std::fs::remove_file(raw).expect("rm");
}

#[test]
fn every_cluster_size_and_version() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    for (name, opts) in [
        ("c512.qcow2", "cluster_size=512"),
        ("c4k.qcow2", "cluster_size=4096"),
        ("c64k.qcow2", "cluster_size=65536"),
        ("c2m.qcow2", "cluster_size=2097152"),
        ("v2.qcow2", "compat=0.10"),
        ("v2-c512.qcow2", "compat=0.10,cluster_size=512"),
        ("refcount1.qcow2", "refcount_bits=1"),
        ("lazy.qcow2", "lazy_refcounts=on"),
        ("prealloc.qcow2", "preallocation=metadata"),
    ] {
        qemu_img(&["create", "-q", "-f", "qcow2", "-o", opts, name, "6M"], d);
        qemu_io("qcow2", name, WRITES, d);
        check(d, name);
    }
}

#[test]
fn odd_sizes() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    for (name, size) in [
        ("odd1.qcow2", "5243392"),
        ("odd2.qcow2", "1050112"),
        ("tiny.qcow2", "512"),
    ] {
        qemu_img(&["create", "-q", "-f", "qcow2", name, size], d);
        qemu_io("qcow2", name, &["write -P 0x66 0 512"], d);
        let sz: u64 = size.parse().expect("n");
        if sz > 4096 {
            let last = format!("write -P 0x77 {} 512", sz - 512);
            qemu_io("qcow2", name, &[last.as_str()], d);
        }
        check(d, name);
    }
}

fn content(d: &Path) {
    // Mixed content: compressible text, incompressible bytes, zeros.
    let mut v = Vec::with_capacity(6 << 20);
    let mut x = 0x1234_5678u64;
    for i in 0..(6usize << 20) {
        v.push(match (i >> 15) % 3 {
            0 => b"guestctl reads qcow2 "[i % 21],
            1 => {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }
            _ => 0,
        });
    }
    std::fs::write(d.join("content.raw"), v).expect("write");
}

#[test]
fn compressed_zlib_and_zstd() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    content(d);
    for (name, opts) in [
        ("zlib-64k.qcow2", "compression_type=zlib"),
        ("zlib-4k.qcow2", "compression_type=zlib,cluster_size=4096"),
        ("zlib-512.qcow2", "compression_type=zlib,cluster_size=512"),
        ("zlib-2m.qcow2", "compression_type=zlib,cluster_size=2M"),
        ("zstd-64k.qcow2", "compression_type=zstd"),
        ("zstd-4k.qcow2", "compression_type=zstd,cluster_size=4096"),
        ("zstd-2m.qcow2", "compression_type=zstd,cluster_size=2M"),
        ("v2-zlib.qcow2", "compat=0.10"),
    ] {
        qemu_img(
            &[
                "convert",
                "-q",
                "-c",
                "-O",
                "qcow2",
                "-o",
                opts,
                "content.raw",
                name,
            ],
            d,
        );
        check(d, name);
        // Compressed clusters overwritten in part: mixed compressed and plain clusters.
        qemu_io(
            "qcow2",
            name,
            &["write -P 0x99 100k 10k", "write -z 2M 64k"],
            d,
        );
        check(d, name);
    }
}

#[test]
fn extended_l2_subclusters() {
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
            "6M",
        ],
        d,
    );
    qemu_io("qcow2", "base.qcow2", &["write -P 0xbb 0 6M"], d);
    for (name, opts) in [
        ("ext16k.qcow2", "extended_l2=on,cluster_size=16384"),
        ("ext32k.qcow2", "extended_l2=on,cluster_size=32768"),
        ("ext64k.qcow2", "extended_l2=on,cluster_size=65536"),
        ("ext2m.qcow2", "extended_l2=on,cluster_size=2M"),
        ("ext-zstd.qcow2", "extended_l2=on,compression_type=zstd"),
    ] {
        // Over a backing file, so unallocated sub-clusters must read from it.
        qemu_img(
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-o",
                opts,
                "-b",
                "base.qcow2",
                "-F",
                "qcow2",
                name,
            ],
            d,
        );
        qemu_io("qcow2", name, WRITES, d);
        qemu_io(
            "qcow2",
            name,
            &[
                "write -P 0xcc 2098176 1k",
                "write -z 2105344 2k",
                "write -z -u 4M 64k",
            ],
            d,
        );
        check(d, name);
    }
    // Without a backing file, and compressed with extended L2.
    content(d);
    qemu_img(
        &[
            "convert",
            "-q",
            "-c",
            "-O",
            "qcow2",
            "-o",
            "extended_l2=on",
            "content.raw",
            "ext-c.qcow2",
        ],
        d,
    );
    check(d, "ext-c.qcow2");
}

#[test]
fn external_data_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    for (name, opts) in [
        ("df.qcow2", "data_file=df.bin"),
        ("dfraw.qcow2", "data_file=dfraw.bin,data_file_raw=on"),
    ] {
        qemu_img(&["create", "-q", "-f", "qcow2", "-o", opts, name, "6M"], d);
        qemu_io("qcow2", name, WRITES, d);
        check(d, name);
    }
    // A data file outside the image's directory is refused like a backing file.
    let sub = d.join("sub");
    std::fs::create_dir(&sub).expect("mkdir");
    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "data_file=../escape.bin",
            "sub/x.qcow2",
            "1M",
        ],
        d,
    );
    let e = open_image(sub.join("x.qcow2"), &OpenOptions::default()).expect_err("escape");
    assert!(e.to_string().contains("data file"), "{e}");
}

#[test]
fn backing_chains_of_every_format() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // raw <- qcow2 <- qcow2 (top larger than its backing)
    run("truncate", &["-s", "3M", "base.raw"], d);
    qemu_io("raw", "base.raw", &["write -P 0x01 0 3M"], d);
    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "base.raw",
            "-F",
            "raw",
            "mid.qcow2",
            "4M",
        ],
        d,
    );
    qemu_io(
        "qcow2",
        "mid.qcow2",
        &["write -P 0x02 1M 64k", "write -z 2M 4k"],
        d,
    );
    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "mid.qcow2",
            "-F",
            "qcow2",
            "top.qcow2",
            "6M",
        ],
        d,
    );
    qemu_io(
        "qcow2",
        "top.qcow2",
        &["write -P 0x03 1081344 64k", "write -P 0x04 5M 4k"],
        d,
    );
    check(d, "top.qcow2");
    check(d, "mid.qcow2");
    // qcow2 over vmdk
    qemu_img(&["create", "-q", "-f", "vmdk", "base.vmdk", "4M"], d);
    qemu_io("vmdk", "base.vmdk", &["write -P 0x05 0 1M"], d);
    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "base.vmdk",
            "-F",
            "vmdk",
            "onvmdk.qcow2",
        ],
        d,
    );
    qemu_io("qcow2", "onvmdk.qcow2", &["write -P 0x06 512k 4k"], d);
    check(d, "onvmdk.qcow2");
    // Backing format not stored: detected by magic bytes.
    // qemu-img 10 always stores one, so rename the backing-format extension to an unknown
    // (ignored) type.
    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "top.qcow2",
            "-F",
            "qcow2",
            "nofmt.qcow2",
        ],
        d,
    );
    let mut b = std::fs::read(d.join("nofmt.qcow2")).expect("read");
    let at = b[..4096]
        .windows(4)
        .position(|w| w == [0xe2, 0x79, 0x2a, 0xca])
        .expect("backing format extension");
    b[at..at + 4].copy_from_slice(b"zzzz");
    std::fs::write(d.join("nofmt.qcow2"), b).expect("write");
    let i = open_image(d.join("nofmt.qcow2"), &OpenOptions::default()).expect("open");
    assert_eq!(i.info().chain().len(), 4);
    assert!(i.info().backing_format.is_none());
    let top = open_image(d.join("top.qcow2"), &OpenOptions::default()).expect("top");
    assert_eq!(
        sha256_device(i.device().as_ref()),
        sha256_device(top.device().as_ref())
    );
}

#[test]
fn dirty_and_corrupt_bits_are_reported() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    qemu_img(&["create", "-q", "-f", "qcow2", "d.qcow2", "1M"], d);
    qemu_io("qcow2", "d.qcow2", &["write -P 1 0 4k"], d);
    let mut b = std::fs::read(d.join("d.qcow2")).expect("read");
    b[79] |= 0b11; // incompatible_features: dirty | corrupt
    std::fs::write(d.join("d.qcow2"), b).expect("write");
    let i = open_image(d.join("d.qcow2"), &OpenOptions::default()).expect("open");
    assert!(i.info().dirty && i.info().corrupt);
    let mut buf = [0u8; 4096];
    i.device().read_exact_at(0, &mut buf).expect("read");
    assert!(buf.iter().all(|&x| x == 1));
}

/// Whole compressed clusters are read a run at a time (one read of their host span): runs in
/// rising host order (qemu-img convert -c), clusters written compressed later in falling
/// order past the converted data (qemu-io write -c, which only writes unallocated clusters:
/// each one lands after the others in the file, so runs break), plain and zero clusters
/// between them, and L2 table boundaries (512-byte clusters: 64 per table); every read of a
/// sweep of offsets and lengths equals qemu's raw export.
#[test]
fn compressed_runs_in_any_host_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    content(d);
    for (name, cs) in [
        ("r512.qcow2", 512u64),
        ("r4k.qcow2", 4096),
        ("r64k.qcow2", 65536),
    ] {
        let opt = format!("cluster_size={cs}");
        qemu_img(
            &[
                "convert",
                "-q",
                "-c",
                "-O",
                "qcow2",
                "-o",
                &opt,
                "content.raw",
                name,
            ],
            d,
        );
        qemu_img(&["resize", "-q", name, "12M"], d);
        let at = 6u64 << 20;
        let mut cmds: Vec<String> = (0..40u64)
            .rev()
            .map(|k| format!("write -c -P {} {} {cs}", k + 1, at + k * cs))
            .collect();
        // In order after those: a rising run again.
        cmds.extend((40..60u64).map(|k| format!("write -c -P {} {} {cs}", k + 1, at + k * cs)));
        cmds.push(format!("write -P 0xee {} {cs}", at + 7 * cs));
        cmds.push(format!("write -z {} {}", at + 20 * cs, 2 * cs));
        cmds.push(format!("write -P 0xdd {} {cs}", 3 * cs));
        let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
        qemu_io("qcow2", name, &cmds, d);
        check(d, name);
        let img = open_image(d.join(name), &OpenOptions::default()).expect("open");
        let dev = img.device();
        let raw = qemu_raw(&d.join(name), d);
        let expect = std::fs::read(&raw).expect("raw");
        let size = expect.len() as u64;
        let mut off = 0u64;
        let mut k = 0u64;
        while off < size {
            let len = [cs * 3, cs * 2 + 1, cs * 70 + 5, 1 << 20, cs - 1][(k % 5) as usize]
                .min(size - off);
            let mut b = vec![0u8; len as usize];
            dev.read_exact_at(off, &mut b).expect("read");
            assert!(
                b[..] == expect[off as usize..(off + len) as usize],
                "{name}: read of {len} at {off:#x}"
            );
            off += cs * 5 + [0, 1, cs / 2, 333][(k % 4) as usize];
            k += 1;
        }
        std::fs::remove_file(raw).expect("rm");
    }
}

/// A compressed cluster whose data lies past the end of the file, in the middle of a run:
/// reading the run is the named error, the clusters before it still read.
#[test]
fn compressed_cluster_past_the_end_inside_a_run() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    content(d);
    qemu_img(
        &[
            "convert",
            "-q",
            "-c",
            "-O",
            "qcow2",
            "content.raw",
            "z.qcow2",
        ],
        d,
    );
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(d.join("z.qcow2"))
        .expect("open");
    let be = |at: u64| {
        let mut b = [0u8; 8];
        f.read_exact_at(&mut b, at).expect("read");
        u64::from_be_bytes(b)
    };
    let l2 = be(be(40)) & 0x00ff_ffff_ffff_fe00;
    // Guest cluster 2 (bytes 128K..192K: text, stored compressed) points past the end.
    let desc = be(l2 + 16);
    assert!(desc & (1 << 62) != 0, "cluster 2 is not compressed");
    let len = f.metadata().expect("meta").len();
    let host_bits = (1u64 << 54) - 1; // 64 KiB clusters: 62 - (16 - 8)
    let patched = (desc & !host_bits) | (len + (1 << 20));
    f.write_all_at(&patched.to_be_bytes(), l2 + 16)
        .expect("patch");
    drop(f);
    let img = open_image(d.join("z.qcow2"), &OpenOptions::default()).expect("open");
    let dev = img.device();
    let mut b = vec![0u8; 1 << 20];
    let e = dev.read_exact_at(0, &mut b).expect_err("past the end");
    assert!(e.to_string().contains("past the end of the file"), "{e}");
    let mut first = vec![0u8; 128 << 10];
    dev.read_exact_at(0, &mut first).expect("clusters 0 and 1");
    let raw = std::fs::read(d.join("content.raw")).expect("raw");
    assert!(first[..] == raw[..128 << 10]);
}
