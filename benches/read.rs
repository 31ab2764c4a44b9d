//! Criterion bench: single-threaded sequential read throughput of qcow2 (plain, zlib, zstd)
//! and vmdk (streamOptimized) images made by qemu-img from the same 64 MiB content.
//! The side-by-side comparison with qemu-img itself is `scripts/bench-read.sh`.
#![allow(missing_docs)] // criterion's macros generate undocumented functions

use std::path::Path;
use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use guestctl::{open_image, BlockDevice, OpenOptions};

const SIZE: usize = 64 << 20;

/// Content with the texture of a real disk: text-like runs, random runs and zeros.
fn content() -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let words = b"the quick brown fox jumps over the lazy dog lorem ipsum dolor sit amet ";
    (0..SIZE)
        .map(|i| match (i >> 16) % 4 {
            0 => 0,
            1 => words[i % words.len()],
            _ => {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as u8
            }
        })
        .collect()
}

fn qemu_img(args: &[&str], dir: &Path) {
    let ok = Command::new("qemu-img")
        .args(args)
        .current_dir(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "qemu-img {args:?} failed (is qemu-utils installed?)");
}

fn bench_reads(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("content.raw"), content()).expect("write");
    let images = [
        (
            "qcow2-plain",
            vec!["convert", "-O", "qcow2", "content.raw", "plain.qcow2"],
            "plain.qcow2",
        ),
        (
            "qcow2-zlib",
            vec!["convert", "-c", "-O", "qcow2", "content.raw", "zlib.qcow2"],
            "zlib.qcow2",
        ),
        (
            "qcow2-zstd",
            vec![
                "convert",
                "-c",
                "-O",
                "qcow2",
                "-o",
                "compression_type=zstd",
                "content.raw",
                "zstd.qcow2",
            ],
            "zstd.qcow2",
        ),
        (
            "vmdk-stream",
            vec![
                "convert",
                "-O",
                "vmdk",
                "-o",
                "subformat=streamOptimized",
                "content.raw",
                "s.vmdk",
            ],
            "s.vmdk",
        ),
    ];
    let mut g = c.benchmark_group("sequential-read");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.sample_size(10);
    for (name, args, file) in images {
        qemu_img(&args, dir.path());
        let img = open_image(dir.path().join(file), &OpenOptions::default()).expect("open");
        let dev = img.device();
        let mut buf = guestctl::block::AlignedBuf::new(1 << 20);
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut off = 0u64;
                while off < dev.size() {
                    let n = (dev.size() - off).min(buf.len() as u64) as usize;
                    dev.read_exact_at(off, &mut buf[..n]).expect("read");
                    off += n as u64;
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_reads);
criterion_main!(benches);
