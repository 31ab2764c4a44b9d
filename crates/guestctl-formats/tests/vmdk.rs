//! The vmdk reader against independent oracles: images made at test time by qemu-img/qemu-io
//! (and a few built byte by byte here, for layouts qemu-img does not write) are read in full
//! and compared with `qemu-img convert -O raw`; `map()` is checked against the oracle's bytes;
//! the corpus vmdk files are checked against the sha256 in ORACLE_qemu-img.tsv; hostile
//! inputs give errors that name the file, never panics.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use guestctl_block::{BlockDevice, ExtentKind, Mapping};
use guestctl_formats::{open_image, ErrorKind, Format, Image, OpenOptions};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// Helpers

fn run(cmd: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} must be installed (qemu-utils): {e}"))
}

fn ok(cmd: &str, args: &[&str], dir: &Path) {
    let o = run(cmd, args, dir);
    assert!(
        o.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn qemu_img(dir: &Path, args: &[&str]) {
    ok("qemu-img", args, dir)
}

fn create(dir: &Path, name: &str, size: &str, opts: &str) {
    let mut a = vec!["create", "-q", "-f", "vmdk"];
    if !opts.is_empty() {
        a.extend(["-o", opts]);
    }
    a.extend([name, size]);
    qemu_img(dir, &a)
}

fn qemu_io(dir: &Path, image: &str, cmds: &[&str]) {
    let mut a = vec!["-f", "vmdk"];
    for c in cmds {
        a.extend(["-c", c]);
    }
    a.push(image);
    ok("qemu-io", &a, dir)
}

/// `qemu-img convert -O raw` of `name` into a fresh file; returns its path.
fn qemu_raw(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(format!("{name}.oracle.raw"));
    let out_s = out.to_str().expect("utf-8 path");
    qemu_img(
        dir,
        &["convert", "-q", "-f", "vmdk", "-O", "raw", name, out_s],
    );
    out
}

fn open(p: &Path) -> Image {
    open_image(p, &OpenOptions::default()).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()))
}

fn open_err(p: &Path) -> guestctl_formats::Error {
    match open_image(p, &OpenOptions::default()) {
        Ok(_) => panic!("{} opened but must be refused", p.display()),
        Err(e) => e,
    }
}

/// Deterministic pseudo-random numbers (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Disk content with zero runs, text and noise, in 16 KiB stripes.
fn content(size: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng(seed | 1);
    let text = b"guestctl vmdk grains are read byte-exactly. ";
    (0..size)
        .map(|i| match (i >> 14) % 5 {
            0 | 3 => 0,
            1 => text[i % text.len()],
            _ => r.next() as u8,
        })
        .collect()
}

/// Reads the whole device in chunks of varying, unaligned sizes and compares each chunk with
/// the same bytes of the oracle file, streaming (fine for multi-GiB disks).
fn assert_reads_like(dev: &dyn BlockDevice, oracle: &Path, what: &str) {
    let mut f = std::fs::File::open(oracle).expect("oracle");
    let size = f.metadata().expect("meta").len();
    assert_eq!(
        dev.size(),
        size,
        "{what}: virtual size differs from qemu-img"
    );
    let chunks = [4 << 20, 65536 + 512, 777, 1 << 20, 3 * 65536 - 100, 4096];
    let mut a = vec![0u8; 4 << 20];
    let mut b = vec![0u8; 4 << 20];
    let (mut off, mut i) = (0u64, 0usize);
    while off < size {
        let n = (size - off).min(chunks[i % chunks.len()] as u64) as usize;
        i += 1;
        dev.read_exact_at(off, &mut a[..n])
            .unwrap_or_else(|e| panic!("{what}: read at {off:#x}: {e:#}"));
        f.read_exact(&mut b[..n]).expect("oracle read");
        if a[..n] != b[..n] {
            let k = (0..n).find(|&k| a[k] != b[k]).unwrap_or(0);
            panic!(
                "{what}: byte {:#x} is {:#04x}, qemu-img says {:#04x}",
                off + k as u64,
                a[k],
                b[k]
            );
        }
        off += n as u64;
    }
    // Reads at and past the end.
    let mut t = [0u8; 16];
    assert_eq!(dev.read_at(size, &mut t).expect("eof"), 0, "{what}");
    assert_eq!(dev.read_at(u64::MAX - 3, &mut t).expect("far"), 0, "{what}");
}

/// The mapping is sorted and gap-free over the whole disk, and every Zero/Unallocated byte is
/// zero in the oracle. Sub-range maps agree with the full map.
fn assert_map_consistent(dev: &dyn BlockDevice, oracle: &Path, what: &str) -> Mapping {
    let size = dev.size();
    let m = dev
        .map(0, u64::MAX)
        .unwrap_or_else(|e| panic!("{what}: map: {e:#}"));
    let mut pos = 0;
    for e in m.iter() {
        assert_eq!(e.offset, pos, "{what}: map has a gap or overlap: {m:?}");
        assert!(e.len > 0, "{what}: empty extent");
        pos = e.end();
    }
    assert_eq!(pos, size, "{what}: map does not cover the disk");
    let f = std::fs::File::open(oracle).expect("oracle");
    let mut buf = vec![0u8; 1 << 20];
    for e in m.iter().filter(|e| e.kind.reads_as_zero()) {
        let mut off = e.offset;
        while off < e.end() {
            let n = (e.end() - off).min(buf.len() as u64) as usize;
            std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf[..n], off).expect("oracle");
            assert!(
                buf[..n].iter().all(|&b| b == 0),
                "{what}: map says {:?} at {off:#x} but qemu-img reads data there",
                e.kind
            );
            off += n as u64;
        }
    }
    // Sub-ranges: the same kinds as the full map, clipped.
    let mut r = Rng(size ^ 0x5eed);
    for _ in 0..20 {
        let off = r.below(size);
        let len = r.below(size - off + 1).min(r.below(8 << 20) + 1);
        let sub = dev.map(off, len).expect("sub map");
        let mut want = Mapping::new();
        for e in m.iter() {
            let (s, t) = (e.offset.max(off), e.end().min(off + len));
            if s < t {
                want.push(s, t - s, e.kind);
            }
        }
        assert_eq!(sub, want, "{what}: map({off:#x}, {len:#x})");
    }
    m
}

/// Full check of an image in `dir` against qemu-img: bytes and map. Returns the image.
fn check(dir: &Path, name: &str) -> Image {
    let img = open(&dir.join(name));
    let oracle = qemu_raw(dir, name);
    assert_reads_like(img.device().as_ref(), &oracle, name);
    assert_map_consistent(img.device().as_ref(), &oracle, name);
    std::fs::remove_file(oracle).expect("rm oracle");
    img
}

fn qemu_info(dir: &Path, name: &str) -> serde_json::Value {
    let o = run("qemu-img", &["info", "--output=json", name], dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("qemu-img info json")
}

fn sha256_of(dev: &dyn BlockDevice) -> String {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < dev.size() {
        let n = (dev.size() - off).min(buf.len() as u64) as usize;
        dev.read_exact_at(off, &mut buf[..n]).expect("read");
        h.update(&buf[..n]);
        off += n as u64;
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn patch(p: &Path, at: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .expect("open");
    std::os::unix::fs::FileExt::write_all_at(&f, bytes, at).expect("patch");
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("zlib");
    e.finish().expect("zlib")
}

// ---------------------------------------------------------------------------------------------
// A byte-level sparse extent builder, for layouts qemu-img does not write itself
// (footer-located grain directories, compressed grains without markers, odd GTEs).

#[derive(Clone)]
enum Grain {
    Data(Vec<u8>),
    /// GTE 1 (a zeroed grain when the header has the flag).
    Zeroed,
    /// A GTE with this raw value.
    Gte(u32),
}

struct SparseBuilder {
    capacity: u64,
    grain_sectors: u64,
    version: u32,
    zeroed_flag: bool,
    compressed: bool,
    markers: bool,
    gd_at_end: bool,
    descriptor: Option<String>,
    grains: BTreeMap<u64, Grain>,
}

impl SparseBuilder {
    fn new(capacity_sectors: u64) -> Self {
        SparseBuilder {
            capacity: capacity_sectors,
            grain_sectors: 128,
            version: 1,
            zeroed_flag: false,
            compressed: false,
            markers: false,
            gd_at_end: false,
            descriptor: None,
            grains: BTreeMap::new(),
        }
    }

    fn pad(v: &mut Vec<u8>) {
        v.resize(v.len().div_ceil(512) * 512, 0);
    }

    fn header(&self, gd: u64, overhead: u64, desc_sectors: u64) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[0..4].copy_from_slice(b"KDMV");
        h[4..8].copy_from_slice(&self.version.to_le_bytes());
        let mut flags = 1u32; // valid new-line detection
        if self.zeroed_flag {
            flags |= 1 << 2;
        }
        if self.compressed {
            flags |= 1 << 16;
        }
        if self.markers {
            flags |= 1 << 17;
        }
        h[8..12].copy_from_slice(&flags.to_le_bytes());
        h[12..20].copy_from_slice(&self.capacity.to_le_bytes());
        h[20..28].copy_from_slice(&self.grain_sectors.to_le_bytes());
        if desc_sectors > 0 {
            h[28..36].copy_from_slice(&1u64.to_le_bytes());
            h[36..44].copy_from_slice(&desc_sectors.to_le_bytes());
        }
        h[44..48].copy_from_slice(&512u32.to_le_bytes());
        h[56..64].copy_from_slice(&gd.to_le_bytes());
        h[64..72].copy_from_slice(&overhead.to_le_bytes());
        h[73..77].copy_from_slice(b"\n \r\n");
        if self.compressed {
            h[77..79].copy_from_slice(&1u16.to_le_bytes());
        }
        h
    }

    fn meta_marker(out: &mut Vec<u8>, sectors: u64, kind: u32) {
        let mut m = vec![0u8; 512];
        m[0..8].copy_from_slice(&sectors.to_le_bytes());
        m[12..16].copy_from_slice(&kind.to_le_bytes());
        out.extend(m);
    }

    fn build(&self) -> Vec<u8> {
        let grain = self.grain_sectors * 512;
        let mut out = vec![0u8; 512];
        let mut desc_sectors = 0;
        if let Some(d) = &self.descriptor {
            // Like qemu and VMware: 20 sectors from sector 1.
            out.extend_from_slice(d.as_bytes());
            out.resize(out.len().max(21 * 512), 0);
            Self::pad(&mut out);
            desc_sectors = out.len() as u64 / 512 - 1;
        }
        let overhead = out.len() as u64 / 512;
        let mut gtes: BTreeMap<u64, u32> = BTreeMap::new();
        for (&idx, g) in &self.grains {
            let gte = match g {
                Grain::Zeroed => 1,
                Grain::Gte(v) => *v,
                Grain::Data(data) => {
                    let sector = out.len() as u64 / 512;
                    if self.compressed {
                        let z = zlib(data);
                        if self.markers {
                            out.extend((idx * self.grain_sectors).to_le_bytes());
                            out.extend((z.len() as u32).to_le_bytes());
                        }
                        out.extend(z);
                    } else {
                        let mut d = data.clone();
                        d.resize(grain as usize, 0);
                        out.extend(d);
                    }
                    Self::pad(&mut out);
                    sector as u32
                }
            };
            gtes.insert(idx, gte);
        }
        let gd_entries = (self.capacity * 512).div_ceil(grain * 512);
        let mut gd = vec![0u32; gd_entries as usize];
        for (t, slot) in gd.iter_mut().enumerate() {
            let range = (t as u64 * 512)..((t as u64 + 1) * 512);
            if gtes.range(range.clone()).next().is_none() {
                continue;
            }
            if self.markers {
                Self::meta_marker(&mut out, 4, 1);
            }
            *slot = (out.len() / 512) as u32;
            for i in range {
                out.extend(gtes.get(&i).copied().unwrap_or(0).to_le_bytes());
            }
        }
        if self.markers {
            Self::meta_marker(&mut out, (gd_entries * 4).div_ceil(512), 2);
        }
        let gd_sector = out.len() as u64 / 512;
        for e in &gd {
            out.extend(e.to_le_bytes());
        }
        Self::pad(&mut out);
        let head_gd = if self.gd_at_end { u64::MAX } else { gd_sector };
        out[..512].copy_from_slice(&self.header(head_gd, overhead, desc_sectors));
        if self.gd_at_end {
            Self::meta_marker(&mut out, 1, 3);
            out.extend(self.header(gd_sector, overhead, desc_sectors));
        }
        if self.markers {
            out.extend([0u8; 512]); // end-of-stream marker
        }
        out
    }
}

fn embedded_desc(create_type: &str, extra: &str) -> String {
    format!(
        "# Disk DescriptorFile\nversion=1\nCID=1234abcd\nparentCID=ffffffff\n{extra}\
         createType=\"{create_type}\"\n\n# Extent description\nRW 1 SPARSE \"self.vmdk\"\n\n\
         # The Disk Data Base\n#DDB\n\nddb.adapterType = \"ide\"\n"
    )
}

// ---------------------------------------------------------------------------------------------
// Images made by qemu-img / qemu-io

const WRITES: &[&str] = &[
    "write -P 0x5a 1M 64k",
    "write -P 0x11 0 512",
    "write -P 0x22 70000 3000",
    "write -P 0x33 2M 1M",
    "write -P 0x44 3146240 1536",
    "write -P 0x66 4194304 131072",
];

#[test]
fn monolithic_sparse_versions_partial_and_last_grains() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // 5 MiB + 1.5 KiB: the last grain is partial; writes cover it.
    let size = "5244416";
    for (name, opts, version) in [
        ("default.vmdk", "", 1u32),
        ("hw4.vmdk", "hwversion=4", 1),
        ("zg.vmdk", "zeroed_grain=on", 2),
    ] {
        create(d, name, size, opts);
        let mut w = WRITES.to_vec();
        w.push("write -P 0x77 5242880 1536");
        qemu_io(d, name, &w);
        let bytes = std::fs::read(d.join(name)).expect("read");
        assert_eq!(&bytes[0..4], b"KDMV", "{name}");
        assert_eq!(bytes[4] as u32, version, "{name}: header version");
        let img = check(d, name);
        assert_eq!(img.info().format, Format::Vmdk);
        assert_eq!(img.info().virtual_size, 5_244_416);
        assert_eq!(img.info().cluster_size, Some(65536));
        assert_eq!(img.info().subformat.as_deref(), Some("monolithicSparse"));
        assert_eq!(img.info().compression_type, None);
        let m = img.device().map(0, u64::MAX).expect("map");
        assert!(m.bytes_of(ExtentKind::Unallocated) > 0, "{name}: {m:?}");
        assert!(m.bytes_of(ExtentKind::Data) >= 64 << 10, "{name}: {m:?}");
    }
    // Version 3 (ESXi 6.5 CBT): read-only in qemu, identical layout otherwise.
    std::fs::copy(d.join("default.vmdk"), d.join("v3.vmdk")).expect("copy");
    patch(&d.join("v3.vmdk"), 4, &3u32.to_le_bytes());
    check(d, "v3.vmdk");
    // A hint of what a truncated-metadata check looks like: overHead beyond the file.
    std::fs::copy(d.join("default.vmdk"), d.join("overhead.vmdk")).expect("copy");
    patch(&d.join("overhead.vmdk"), 64, &(1u64 << 40).to_le_bytes());
    let e = open_err(&d.join("overhead.vmdk"));
    assert!(e.to_string().contains("truncated"), "{e}");
    assert!(!run("qemu-img", &["info", "overhead.vmdk"], d)
        .status
        .success());
}

#[test]
fn zeroed_grains_read_zero_and_map_zero() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    create(d, "z.vmdk", "6M", "zeroed_grain=on");
    qemu_io(
        d,
        "z.vmdk",
        &["write -P 0x11 0 3M", "write -z 64k 128k", "write -z 4M 1M"],
    );
    let img = check(d, "z.vmdk");
    let m = img.device().map(0, 6 << 20).expect("map");
    let zero: Vec<_> = m.iter().filter(|e| e.kind == ExtentKind::Zero).collect();
    assert!(
        zero.iter()
            .any(|e| e.offset <= 64 << 10 && e.end() >= 192 << 10),
        "zeroed grains at 64k..192k must map as Zero: {m:?}"
    );
    // The GTEs really are 1 (qemu wrote zeroed grains, not data).
    let bytes = std::fs::read(d.join("z.vmdk")).expect("read");
    let gd = u64::from_le_bytes(bytes[56..64].try_into().expect("8")) as usize * 512;
    let gt = u32::from_le_bytes(bytes[gd..gd + 4].try_into().expect("4")) as usize * 512;
    assert_eq!(
        u32::from_le_bytes(bytes[gt + 4..gt + 8].try_into().expect("4")),
        1,
        "GTE of grain 1"
    );
}

#[test]
fn stream_optimized_from_real_content() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    for (name, size, seed) in [("s.vmdk", 6 << 20, 7u64), ("odd.vmdk", (5 << 20) + 1536, 9)] {
        let raw = format!("{name}.src");
        std::fs::write(d.join(&raw), content(size, seed)).expect("write");
        qemu_img(
            d,
            &[
                "convert",
                "-q",
                "-O",
                "vmdk",
                "-o",
                "subformat=streamOptimized",
                &raw,
                name,
            ],
        );
        let img = check(d, name);
        assert_eq!(img.info().compression_type.as_deref(), Some("deflate"));
        assert_eq!(img.info().subformat.as_deref(), Some("streamOptimized"));
        assert_eq!(img.info().cluster_size, Some(65536));
        let ext = &img.info().format_specific.as_ref().expect("fs").data["extents"][0];
        assert_eq!(ext["compressed"], true);
        // Small sequential reads (the grain cache) and reads straddling grains.
        let src = std::fs::read(d.join(&raw)).expect("src");
        let dev = img.device();
        let mut off = 0usize;
        let mut b = vec![0u8; 1000];
        while off + 1000 <= (1 << 20) {
            dev.read_exact_at(off as u64, &mut b).expect("read");
            assert_eq!(&b[..], &src[off..off + 1000], "{name} at {off}");
            off += 1000;
        }
        let mut b = vec![0u8; 3 * 65536];
        dev.read_exact_at(65536 - 7, &mut b).expect("straddle");
        assert_eq!(&b[..], &src[65536 - 7..4 * 65536 - 7]);
        // The tail of the odd-sized disk: the last grain was compressed short.
        let tail = src.len() - 700;
        let mut b = vec![0u8; 700];
        dev.read_exact_at(tail as u64, &mut b).expect("tail");
        assert_eq!(&b[..], &src[tail..]);
    }
}

#[test]
fn flat_and_split_subformats() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    for sub in [
        "monolithicFlat",
        "twoGbMaxExtentSparse",
        "twoGbMaxExtentFlat",
    ] {
        let name = format!("{sub}.vmdk");
        create(d, &name, "6M", &format!("subformat={sub}"));
        qemu_io(d, &name, WRITES);
        let img = check(d, &name);
        assert_eq!(img.info().subformat.as_deref(), Some(sub));
        let m = img.device().map(0, u64::MAX).expect("map");
        if sub.ends_with("Flat") {
            assert_eq!(m.extents().len(), 1, "{sub}: flat maps as one Data run");
            assert_eq!(m.extents()[0].kind, ExtentKind::Data);
            assert_eq!(img.info().cluster_size, None);
        }
    }
    // Over 2 GiB: two sparse extent files, writes on both sides of the boundary.
    create(d, "big.vmdk", "2200M", "subformat=twoGbMaxExtentSparse");
    qemu_io(
        d,
        "big.vmdk",
        &[
            "write -P 0x55 0 64k",
            "write -P 0x66 2147418112 131072",
            "write -P 0x77 2306863104 4096",
        ],
    );
    let img = check(d, "big.vmdk");
    let ext = img.info().format_specific.as_ref().expect("fs").data["extents"]
        .as_array()
        .expect("array")
        .len();
    assert_eq!(ext, 2);
}

#[test]
fn info_agrees_with_qemu_img() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    create(d, "sparse.vmdk", "4M", "");
    qemu_io(d, "sparse.vmdk", &["write -P 1 0 128k"]);
    create(d, "split.vmdk", "4M", "subformat=twoGbMaxExtentSparse");
    qemu_io(d, "split.vmdk", &["write -P 1 1M 64k"]);
    create(d, "flat.vmdk", "4M", "subformat=monolithicFlat");
    std::fs::write(d.join("s.src"), content(2 << 20, 3)).expect("w");
    qemu_img(
        d,
        &[
            "convert",
            "-q",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            "s.src",
            "stream.vmdk",
        ],
    );
    qemu_img(
        d,
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-b",
            "sparse.vmdk",
            "-F",
            "vmdk",
            "delta.vmdk",
        ],
    );
    for name in [
        "sparse.vmdk",
        "split.vmdk",
        "flat.vmdk",
        "stream.vmdk",
        "delta.vmdk",
    ] {
        let ours = serde_json::to_value(open(&d.join(name)).info()).expect("json");
        let theirs = qemu_info(d, name);
        for key in ["virtual-size", "cluster-size", "format", "actual-size"] {
            assert_eq!(ours.get(key), theirs.get(key), "{name}: {key}");
        }
        let (o, t) = (
            &ours["format-specific"]["data"],
            &theirs["format-specific"]["data"],
        );
        assert_eq!(ours["format-specific"]["type"], "vmdk");
        for key in ["cid", "parent-cid", "create-type"] {
            assert_eq!(o[key], t[key], "{name}: format-specific {key}");
        }
        let (oe, te) = (
            o["extents"].as_array().expect("ours"),
            t["extents"].as_array().expect("theirs"),
        );
        assert_eq!(oe.len(), te.len(), "{name}: extents");
        for (a, b) in oe.iter().zip(te) {
            for key in ["virtual-size", "cluster-size", "compressed"] {
                assert_eq!(a.get(key), b.get(key), "{name}: extent {key}");
            }
            // qemu leaves the format of a lone sparse file empty.
            if b["format"] != "" {
                assert_eq!(a["format"], b["format"], "{name}: extent format");
            }
            let file = b["filename"].as_str().expect("filename");
            assert!(
                a["filename"].as_str().expect("ours").ends_with(file),
                "{name}: {a} vs {b}"
            );
        }
        if name == "delta.vmdk" {
            assert_eq!(ours["backing-filename"], theirs["backing-filename"]);
            assert_eq!(ours["backing-filename-format"], "vmdk");
            assert_eq!(ours["backing-image"]["virtual-size"], 4 << 20);
        }
    }
    // uncleanShutdown is the dirty flag.
    std::fs::copy(d.join("sparse.vmdk"), d.join("dirty.vmdk")).expect("copy");
    patch(&d.join("dirty.vmdk"), 72, &[1]);
    assert!(open(&d.join("dirty.vmdk")).info().dirty);
    assert!(!open(&d.join("sparse.vmdk")).info().dirty);
}

#[test]
fn delta_chains() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let delta = |parent: &str, name: &str, size: Option<&str>, opts: &str| {
        let mut a = vec!["create", "-q", "-f", "vmdk", "-b", parent, "-F", "vmdk"];
        if !opts.is_empty() {
            a.extend(["-o", opts]);
        }
        a.push(name);
        if let Some(s) = size {
            a.push(s);
        }
        qemu_img(d, &a);
    };
    create(d, "base.vmdk", "6M", "");
    qemu_io(
        d,
        "base.vmdk",
        &["write -P 0x01 0 4M", "write -P 0x09 5M 64k"],
    );
    delta("base.vmdk", "delta.vmdk", None, "");
    qemu_io(
        d,
        "delta.vmdk",
        &["write -P 0x02 1M 64k", "write -P 0x03 70000 100"],
    );
    delta("delta.vmdk", "delta2.vmdk", None, "");
    qemu_io(d, "delta2.vmdk", &["write -P 0x04 5M 4k"]);
    let img = check(d, "delta2.vmdk");
    let info = img.info();
    assert_eq!(info.chain().len(), 3);
    assert_eq!(info.backing_filename.as_deref(), Some("delta.vmdk"));
    assert!(info
        .full_backing_filename
        .as_deref()
        .is_some_and(|f| f.ends_with("delta.vmdk")));
    // The map defers to the parents: base data is Data in the top image, never Unallocated.
    let m = img.device().map(0, 4 << 20).expect("map");
    assert_eq!(m.bytes_of(ExtentKind::Data), 4 << 20, "{m:?}");

    // Without following parents, unallocated grains read as zeros and map Unallocated.
    let lone = open_image(
        d.join("delta2.vmdk"),
        &OpenOptions {
            follow_backing: false,
            ..OpenOptions::default()
        },
    )
    .expect("lone");
    assert!(lone.info().backing.is_none());
    let mut b = vec![0xffu8; 4096];
    lone.device().read_exact_at(0, &mut b).expect("read");
    assert!(b.iter().all(|&x| x == 0));
    let m = lone.device().map(0, u64::MAX).expect("map");
    assert_eq!(m.bytes_of(ExtentKind::Data), 64 << 10, "one grain: {m:?}");

    // A child larger than its parent: past the parent's end reads zeros.
    delta("base.vmdk", "bigger.vmdk", Some("9M"), "");
    qemu_io(d, "bigger.vmdk", &["write -P 0x05 8M 4k"]);
    check(d, "bigger.vmdk");

    // Zeroed grains in a delta hide the parent's data.
    delta("base.vmdk", "zdelta.vmdk", None, "zeroed_grain=on");
    qemu_io(
        d,
        "zdelta.vmdk",
        &["write -z 1M 128k", "write -P 0x06 3M 4k"],
    );
    let img = check(d, "zdelta.vmdk");
    let mut b = vec![0xffu8; 128 << 10];
    img.device().read_exact_at(1 << 20, &mut b).expect("read");
    assert!(b.iter().all(|&x| x == 0), "zeroed grain read the parent");

    // A delta over a streamOptimized parent.
    std::fs::write(d.join("s.src"), content(4 << 20, 11)).expect("w");
    qemu_img(
        d,
        &[
            "convert",
            "-q",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            "s.src",
            "sbase.vmdk",
        ],
    );
    delta("sbase.vmdk", "sdelta.vmdk", None, "");
    qemu_io(d, "sdelta.vmdk", &["write -P 0x07 100000 200000"]);
    check(d, "sdelta.vmdk");

    // Writing to a parent after the delta was made changes its CID: qemu refuses to read the
    // delta's unallocated grains, and so do we; allocated grains still read.
    delta("base.vmdk", "stale.vmdk", None, "");
    qemu_io(d, "stale.vmdk", &["write -P 0x08 0 64k"]);
    qemu_io(d, "base.vmdk", &["write -P 0x0a 2M 4k"]);
    let o = run(
        "qemu-img",
        &["convert", "-O", "raw", "stale.vmdk", "stale.raw"],
        d,
    );
    assert!(!o.status.success(), "qemu-img reads a stale delta");
    let img = open(&d.join("stale.vmdk"));
    let mut b = vec![0u8; 64 << 10];
    img.device()
        .read_exact_at(0, &mut b)
        .expect("allocated grain");
    assert!(b.iter().all(|&x| x == 8));
    let e = img
        .device()
        .read_exact_at(2 << 20, &mut b)
        .expect_err("stale parent");
    assert!(e.to_string().contains("parentCID"), "{e}");
    assert_eq!(e.kind(), ErrorKind::Corrupt);

    // Parent loops are refused.
    std::fs::write(
        d.join("loop.vmdk"),
        "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=1\ncreateType=\"monolithicFlat\"\n\
         parentFileNameHint=\"loop.vmdk\"\nRW 1 ZERO\n",
    )
    .expect("w");
    assert_eq!(open_err(&d.join("loop.vmdk")).kind(), ErrorKind::Refused);
    // A parent that is not vmdk is refused (qemu opens vmdk parents as vmdk only).
    std::fs::write(d.join("raw.img"), vec![1u8; 4096]).expect("w");
    std::fs::write(
        d.join("rawparent.vmdk"),
        "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=1\ncreateType=\"monolithicFlat\"\n\
         parentFileNameHint=\"raw.img\"\nRW 8 ZERO\n",
    )
    .expect("w");
    let e = open_err(&d.join("rawparent.vmdk"));
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
}

// ---------------------------------------------------------------------------------------------
// Hand-written descriptors and hand-built sparse files

#[test]
fn hand_written_descriptor_with_flat_zero_sparse_and_vmfs() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let part1 = content(1 << 20, 21);
    std::fs::write(d.join("part one.bin"), &part1).expect("w");
    create(d, "part3.vmdk", "2M", "");
    qemu_io(
        d,
        "part3.vmdk",
        &["write -P 0x5a 4096 8192", "write -P 0x5b 1M 1"],
    );
    // Every descriptor that qemu reads as an oracle has a comment line before its extents:
    // qemu's sscanf skips newlines, so an extent line after a blank line is added twice.
    // RW FLAT / VMFS / SPARSE only: qemu is the oracle. The SPARSE line claims 100 sectors;
    // the sparse header's 2 MiB capacity is what counts (as in qemu).
    let head = "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n\
                createType=\"monolithicFlat\"\n\n# Extent description\n";
    std::fs::write(
        d.join("multi.vmdk"),
        format!(
            "{head}RW 2048 FLAT \"part one.bin\" 0\nRW 512 FLAT \"part one.bin\" 100\n\
             RW 100 SPARSE \"part3.vmdk\"\nRW 64 VMFS \"part one.bin\"\n"
        ),
    )
    .expect("w");
    let img = check(d, "multi.vmdk");
    assert_eq!(
        img.device().size(),
        (1 << 20) + (256 << 10) + (2 << 20) + 32768
    );
    // Two sparse extents in one descriptor (their grain tables share one cache).
    std::fs::write(
        d.join("two.vmdk"),
        format!("{head}RW 4096 SPARSE \"part3.vmdk\"\nRW 4096 SPARSE \"part3.vmdk\"\n"),
    )
    .expect("w");
    check(d, "two.vmdk");

    // ZERO and RDONLY extents (qemu drops those lines): the oracle is the source bytes.
    std::fs::write(
        d.join("zero.vmdk"),
        format!(
            "{head}RW 2048 FLAT \"part one.bin\" 0\nRW 1024 ZERO\n\
             RDONLY 512 FLAT \"part one.bin\" 100\nRW 4096 SPARSE \"part3.vmdk\"\n"
        ),
    )
    .expect("w");
    let part3 = qemu_raw(d, "part3.vmdk");
    let mut expect = part1.clone();
    expect.extend(std::iter::repeat_n(0u8, 512 << 10));
    expect.extend_from_slice(&part1[100 * 512..100 * 512 + (256 << 10)]);
    expect.extend(std::fs::read(&part3).expect("part3"));
    std::fs::write(d.join("zero.expected"), &expect).expect("w");
    let img = open(&d.join("zero.vmdk"));
    let dev = img.device();
    assert_reads_like(dev.as_ref(), &d.join("zero.expected"), "zero.vmdk");
    let m = assert_map_consistent(dev.as_ref(), &d.join("zero.expected"), "zero.vmdk");
    assert_eq!(
        m.extents()[1],
        guestctl_block::Extent {
            offset: 1 << 20,
            len: 512 << 10,
            kind: ExtentKind::Zero
        }
    );
    let formats: Vec<_> = img.info().format_specific.as_ref().expect("fs").data["extents"]
        .as_array()
        .expect("extents")
        .iter()
        .map(|e| e["format"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(formats, ["FLAT", "ZERO", "FLAT", "SPARSE"]);
    // The same extent file named twice counts once towards the allocated size.
    let alloc = |p: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(d.join(p)).expect("meta").blocks() * 512
    };
    assert_eq!(
        img.info().actual_size,
        alloc("zero.vmdk") + alloc("part one.bin") + alloc("part3.vmdk")
    );
}

#[test]
fn hand_built_stream_optimized_with_footer_and_unmarked_compression() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // 40 grains + 3 sectors: the last grain holds 1536 bytes and is compressed short.
    let capacity = 40 * 128 + 3;
    let src = content(capacity as usize * 512, 5);
    let grain = 65536usize;
    let mut b = SparseBuilder::new(capacity);
    b.version = 3;
    b.compressed = true;
    b.markers = true;
    b.gd_at_end = true;
    b.descriptor = Some(embedded_desc("streamOptimized", ""));
    for g in 0..=40u64 {
        let s = g as usize * grain;
        let data = &src[s..(s + grain).min(src.len())];
        // Zero grains are left out, as VMware does.
        if data.iter().any(|&x| x != 0) {
            b.grains.insert(g, Grain::Data(data.to_vec()));
        }
    }
    std::fs::write(d.join("footer.vmdk"), b.build()).expect("w");
    let img = check(d, "footer.vmdk");
    assert_eq!(img.info().subformat.as_deref(), Some("streamOptimized"));
    assert_eq!(
        img.info().format_specific.as_ref().expect("fs").data["cid"],
        0x1234_abcd
    );
    // Compare with the source too (qemu and we could share a misunderstanding).
    let mut all = vec![0u8; src.len()];
    img.device().read_exact_at(0, &mut all).expect("read");
    assert!(all == src, "footer.vmdk differs from its source");

    // Compressed grains without markers (GD located by the header).
    b.markers = false;
    b.gd_at_end = false;
    b.version = 1;
    std::fs::write(d.join("nomarker.vmdk"), b.build()).expect("w");
    check(d, "nomarker.vmdk");

    // A footer whose markers are wrong is refused, as by qemu.
    let mut bytes = std::fs::read(d.join("footer.vmdk")).expect("r");
    let n = bytes.len();
    bytes[n - 1536 + 12] = 9; // footer marker type
    std::fs::write(d.join("badfooter.vmdk"), &bytes).expect("w");
    let e = open_err(&d.join("badfooter.vmdk"));
    assert_eq!(e.structure_name(), Some("vmdk footer"), "{e}");
    assert_eq!(e.offset(), Some((n - 1536) as u64));
    assert!(!run("qemu-img", &["info", "badfooter.vmdk"], d)
        .status
        .success());

    // A grain marker claiming more than two grains of compressed data: an error on read,
    // naming the marker's offset.
    let mut bytes = std::fs::read(d.join("footer.vmdk")).expect("r");
    let first_grain = 512 * 21; // header + 20 descriptor sectors
    bytes[first_grain + 8..first_grain + 12].copy_from_slice(&(1u32 << 30).to_le_bytes());
    std::fs::write(d.join("badmarker.vmdk"), &bytes).expect("w");
    let img = open(&d.join("badmarker.vmdk"));
    let first_data = (0..=40u64)
        .find(|g| b.grains.contains_key(g))
        .expect("a data grain");
    let mut buf = vec![0u8; 512];
    let e = img
        .device()
        .read_exact_at(first_data * grain as u64, &mut buf)
        .expect_err("marker");
    assert_eq!(e.structure_name(), Some("vmdk grain marker"), "{e}");
    assert_eq!(e.offset(), Some(first_grain as u64));
    assert!(e.file().is_some_and(|f| f.ends_with("badmarker.vmdk")));
}

#[test]
fn hand_built_gtes_and_descriptor_pointer_header() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // Version 2 with zeroed grains, a grain pointing past the end of the file (qemu reads
    // zeros) and plain grains.
    let mut b = SparseBuilder::new(8 * 128);
    b.version = 2;
    b.zeroed_flag = true;
    b.descriptor = Some(embedded_desc("monolithicSparse", ""));
    b.grains.insert(0, Grain::Data(vec![0xab; 65536]));
    b.grains.insert(1, Grain::Zeroed);
    b.grains.insert(2, Grain::Data(content(65536, 8)));
    b.grains.insert(4, Grain::Gte(0x00ff_ff00));
    b.grains.insert(7, Grain::Data(vec![0xcd; 1000]));
    std::fs::write(d.join("gtes.vmdk"), b.build()).expect("w");
    let img = check(d, "gtes.vmdk");
    let m = img.device().map(0, u64::MAX).expect("map");
    let kind_at = |off: u64| {
        m.iter()
            .find(|e| e.offset <= off && off < e.end())
            .expect("covered")
            .kind
    };
    assert_eq!(kind_at(0), ExtentKind::Data);
    assert_eq!(kind_at(65536), ExtentKind::Zero);
    assert_eq!(kind_at(3 * 65536), ExtentKind::Unallocated);
    // Without the flag, GTE 1 is a grain at sector 1 (the descriptor): qemu agrees.
    b.zeroed_flag = false;
    std::fs::write(d.join("noflag.vmdk"), b.build()).expect("w");
    check(d, "noflag.vmdk");

    // qemu: a KDMV header with capacity 0 and a descriptor offset points at a descriptor of
    // the real extents.
    std::fs::write(d.join("data.bin"), content(1 << 20, 4)).expect("w");
    let desc = "# Disk DescriptorFile\nversion=1\nCID=abc\nparentCID=ffffffff\n\
                createType=\"monolithicFlat\"\n\n# Extent description\nRW 2048 FLAT \"data.bin\" 0\n";
    let mut ptr = vec![0u8; 1024];
    ptr[0..4].copy_from_slice(b"KDMV");
    ptr[4..8].copy_from_slice(&1u32.to_le_bytes());
    ptr[28..36].copy_from_slice(&1u64.to_le_bytes());
    ptr[36..44].copy_from_slice(&1u64.to_le_bytes());
    ptr[512..512 + desc.len()].copy_from_slice(desc.as_bytes());
    std::fs::write(d.join("pointer.vmdk"), ptr).expect("w");
    let img = check(d, "pointer.vmdk");
    assert_eq!(img.device().size(), 1 << 20);
}

#[test]
fn concurrent_readers_agree() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let src = content(8 << 20, 13);
    std::fs::write(d.join("c.src"), &src).expect("w");
    qemu_img(
        d,
        &[
            "convert",
            "-q",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            "c.src",
            "c.vmdk",
        ],
    );
    let dev = open(&d.join("c.vmdk")).device();
    let src = Arc::new(src);
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let (dev, src) = (dev.clone(), src.clone());
            std::thread::spawn(move || {
                let mut r = Rng(t * 7919 + 1);
                let mut buf = vec![0u8; 300_000];
                for _ in 0..200 {
                    let len = r.below(buf.len() as u64) as usize + 1;
                    let off = r.below(src.len() as u64 - len as u64) as usize;
                    dev.read_exact_at(off as u64, &mut buf[..len])
                        .expect("read");
                    assert!(buf[..len] == src[off..off + len], "thread {t} at {off}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("reader thread");
    }
}

// ---------------------------------------------------------------------------------------------
// Corpus

fn corpus() -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus"
    ));
    assert!(
        p.join("ORACLE_qemu-img.tsv").is_file(),
        "the shared corpus is missing at {} (with ORACLE_qemu-img.tsv): these tests need it",
        p.display()
    );
    p
}

#[test]
fn corpus_vmdk_files_match_the_qemu_oracle() {
    let root = corpus();
    let tsv = std::fs::read_to_string(root.join("ORACLE_qemu-img.tsv")).expect("oracle tsv");
    let oracle: BTreeMap<&str, (u64, &str)> = tsv
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some((*f.first()?, (f.get(2)?.parse().ok()?, *f.get(3)?)))
        })
        .collect();
    for rel in [
        "dfvfs/test_data/ext2.vmdk",
        "dfvfs/test_data/image.vmdk",
        "sleuthkit/test/data/image.vmdk",
    ] {
        let (size, sha) = oracle
            .get(format!("./{rel}").as_str())
            .unwrap_or_else(|| panic!("{rel} is not in ORACLE_qemu-img.tsv"));
        let p = root.join(rel);
        assert!(p.is_file(), "corpus file {} is missing", p.display());
        let img = open(&p);
        assert_eq!(img.info().format, Format::Vmdk, "{rel}");
        assert_eq!(img.device().size(), *size, "{rel}: virtual size");
        assert_eq!(
            sha256_of(img.device().as_ref()),
            *sha,
            "{rel}: sha256 of the disk"
        );
        let m = img.device().map(0, u64::MAX).expect("map");
        assert_eq!(m.extents().last().map(|e| e.end()), Some(*size), "{rel}");
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile input

fn assert_named(e: &guestctl_formats::Error, file: &str) {
    assert!(
        e.file().is_some_and(|f| f.ends_with(file)),
        "error must name {file}: {e}"
    );
}

#[test]
fn hostile_descriptors_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    std::fs::write(d.join("ok.bin"), vec![7u8; 4096]).expect("w");
    let head = "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\n\
                createType=\"monolithicFlat\"\n";
    let write = |name: &str, body: &str| {
        std::fs::write(d.join(name), format!("{head}{body}")).expect("w");
        d.join(name)
    };
    let cases: &[(&str, String, ErrorKind, &str)] = &[
        (
            "up.vmdk",
            "RW 8 FLAT \"../x\" 0\n".into(),
            ErrorKind::Refused,
            "outside",
        ),
        (
            "abs.vmdk",
            "RW 8 FLAT \"/etc/passwd\" 0\n".into(),
            ErrorKind::Refused,
            "absolute",
        ),
        (
            "proto.vmdk",
            "RW 8 FLAT \"nbd:localhost:10809\" 0\n".into(),
            ErrorKind::Refused,
            "protocol",
        ),
        (
            "many.vmdk",
            "RW 1 ZERO\n".repeat(100_000),
            ErrorKind::Corrupt,
            "4096 extents",
        ),
        (
            "huge.vmdk",
            "RW 18446744073709551615 ZERO\n".into(),
            ErrorKind::Corrupt,
            "overflows",
        ),
        (
            "sum.vmdk",
            "RW 137438953472 ZERO\nRW 1 ZERO\n".into(),
            ErrorKind::Corrupt,
            "64 TiB",
        ),
        (
            "offset.vmdk",
            "RW 8 FLAT \"ok.bin\" 36028797018963967\n".into(),
            ErrorKind::Corrupt,
            "overflows",
        ),
        (
            "cowd.vmdk",
            "RW 8 VMFSSPARSE \"ok.bin\"\n".into(),
            ErrorKind::Unsupported,
            "VMFSSPARSE",
        ),
        (
            "se.vmdk",
            "RW 8 SESPARSE \"ok.bin\"\n".into(),
            ErrorKind::Unsupported,
            "SESPARSE",
        ),
        (
            "rdm.vmdk",
            "RW 8 VMFSRDM \"ok.bin\"\n".into(),
            ErrorKind::Unsupported,
            "VMFSRDM",
        ),
        (
            "noaccess.vmdk",
            "NOACCESS 8 FLAT \"ok.bin\" 0\n".into(),
            ErrorKind::Unsupported,
            "NOACCESS",
        ),
        (
            "unknown.vmdk",
            "RW 8 FANCY \"ok.bin\"\n".into(),
            ErrorKind::Corrupt,
            "FANCY",
        ),
        (
            "missing.vmdk",
            "RW 8 FLAT \"nothere.bin\" 0\n".into(),
            ErrorKind::Io,
            "nothere.bin",
        ),
        (
            "escape-parent.vmdk",
            "parentFileNameHint=\"../../etc/base.vmdk\"\nRW 1 ZERO\n".into(),
            ErrorKind::Refused,
            "outside",
        ),
        (
            "sparse-is-text.vmdk",
            format!(
                "RW 8 SPARSE \"sparse-is-text.vmdk\"\n#{}\n",
                "pad".repeat(200)
            ),
            ErrorKind::Corrupt,
            "KDMV",
        ),
    ];
    for (name, body, kind, needle) in cases {
        let e = open_err(&write(name, body));
        assert_eq!(e.kind(), *kind, "{name}: {e}");
        assert!(format!("{e:#}").contains(needle), "{name}: {e}");
        assert!(e.file().is_some(), "{name}: no file in {e}");
    }
    // No createType: not a descriptor.
    std::fs::write(
        d.join("nocreate.vmdk"),
        "# Disk DescriptorFile\nRW 8 ZERO\n",
    )
    .expect("w");
    let e = open_err(&d.join("nocreate.vmdk"));
    assert!(e.to_string().contains("createType"), "{e}");
    // Over 1 MiB.
    let big = format!("{head}#{}\n", "x".repeat(1 << 20));
    std::fs::write(d.join("big.vmdk"), big).expect("w");
    assert!(open_err(&d.join("big.vmdk")).to_string().contains("larger"));
    // A FLAT extent naming the descriptor itself reads the descriptor's bytes (harmless), and
    // past the end of the extent file reads zeros.
    let p = write("selfflat.vmdk", "RW 4 FLAT \"selfflat.vmdk\" 0\n");
    let img = open(&p);
    let mut b = vec![0u8; 2048];
    img.device().read_exact_at(0, &mut b).expect("read");
    assert!(b.starts_with(b"# Disk"));
    assert!(b[1024..].iter().all(|&x| x == 0));
}

#[test]
fn hostile_sparse_headers_and_tables() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    create(d, "a.vmdk", "4M", "");
    qemu_io(d, "a.vmdk", &["write -P 1 0 64k", "write -P 2 3M 64k"]);
    let orig = std::fs::read(d.join("a.vmdk")).expect("read");
    let gd = u64::from_le_bytes(orig[56..64].try_into().expect("8")) as usize * 512;
    let with = |at: usize, v: &[u8]| {
        let mut x = orig.clone();
        x[at..at + v.len()].copy_from_slice(v);
        x
    };
    let cases: Vec<(&str, Vec<u8>, &str, Option<u64>)> = vec![
        (
            "gd-past-eof",
            with(56, &(1u64 << 40).to_le_bytes()),
            "vmdk grain directory",
            Some(1 << 49),
        ),
        (
            "huge-capacity",
            with(12, &u64::MAX.to_le_bytes()),
            "vmdk sparse header",
            Some(12),
        ),
        (
            "capacity-2-50",
            with(12, &(1u64 << 41).to_le_bytes()),
            "vmdk sparse header",
            Some(12),
        ),
        (
            "bad-grain",
            with(20, &3u64.to_le_bytes()),
            "vmdk sparse header",
            Some(20),
        ),
        (
            "huge-grain",
            with(20, &(1u64 << 40).to_le_bytes()),
            "vmdk sparse header",
            Some(20),
        ),
        (
            "bad-gtes",
            with(44, &u32::MAX.to_le_bytes()),
            "vmdk sparse header",
            Some(44),
        ),
        (
            "zero-gtes",
            with(44, &0u32.to_le_bytes()),
            "vmdk sparse header",
            Some(44),
        ),
        (
            "version-9",
            with(4, &9u32.to_le_bytes()),
            "vmdk sparse header",
            Some(4),
        ),
        (
            "descriptor-size",
            with(36, &u64::MAX.to_le_bytes()),
            "vmdk sparse header",
            Some(36),
        ),
        (
            "descriptor-offset",
            with(28, &(1u64 << 50).to_le_bytes()),
            "vmdk sparse header",
            Some(28),
        ),
        (
            "algorithm",
            with(77, &7u16.to_le_bytes()),
            "vmdk sparse header",
            Some(77),
        ),
        (
            "no-footer",
            with(56, &u64::MAX.to_le_bytes()),
            "vmdk footer",
            None,
        ),
        (
            "truncated-300",
            orig[..300].to_vec(),
            "vmdk sparse header",
            Some(0),
        ),
    ];
    for (name, bytes, structure, offset) in cases {
        let file = format!("{name}.vmdk");
        std::fs::write(d.join(&file), bytes).expect("write");
        let e = open_err(&d.join(&file));
        assert_named(&e, &file);
        assert_eq!(e.structure_name(), Some(structure), "{name}: {e}");
        if offset.is_some() {
            assert_eq!(e.offset(), offset, "{name}: {e}");
        }
    }
    // Tiny files forced to be read as vmdk, and COWD (ESX vmfsSparse) files.
    let forced = OpenOptions {
        format: Some(Format::Vmdk),
        ..OpenOptions::default()
    };
    let mut cowd = b"COWD".to_vec();
    cowd.resize(2048, 0);
    for (name, bytes) in [
        ("empty.vmdk", &b""[..]),
        ("three.vmdk", b"KDM"),
        ("magic.vmdk", b"KDMV"),
        ("cowd.vmdk", &cowd),
    ] {
        std::fs::write(d.join(name), bytes).expect("w");
        let e = open_image(d.join(name), &forced).expect_err(name);
        assert_named(&e, name);
        if name == "cowd.vmdk" {
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
            assert!(e.to_string().contains("COWD"), "{e}");
        }
    }
    std::fs::write(
        d.join("cowd-extent.vmdk"),
        "# Disk DescriptorFile\nversion=1\ncreateType=\"vmfsSparse\"\n# Extents\n\
         RW 4 SPARSE \"cowd.vmdk\"\n",
    )
    .expect("w");
    let e = open_err(&d.join("cowd-extent.vmdk"));
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert_named(&e, "cowd.vmdk");
    // A grain directory entry pointing past the end: an error on read, naming the entry.
    std::fs::write(d.join("gde.vmdk"), with(gd, &0x00ff_ffffu32.to_le_bytes())).expect("w");
    let img = open(&d.join("gde.vmdk"));
    let mut b = vec![0u8; 65536];
    let e = img
        .device()
        .read_exact_at(0, &mut b)
        .expect_err("bad GD entry");
    assert_named(&e, "gde.vmdk");
    assert_eq!(e.structure_name(), Some("vmdk grain directory"));
    assert_eq!(e.offset(), Some(gd as u64));
    assert!(img.device().map(0, u64::MAX).is_err());
    // A descriptor whose SPARSE line is far larger than the file's capacity (this used to
    // index past the grain directory): the header's capacity wins, as in qemu.
    std::fs::write(
        d.join("claims.vmdk"),
        "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\n\
         createType=\"twoGbMaxExtentSparse\"\n\n# Extent description\nRW 200000 SPARSE \"a.vmdk\"\n\
         RW 8 FLAT \"a.vmdk\" 0\n",
    )
    .expect("w");
    let img = check(d, "claims.vmdk");
    assert_eq!(img.device().size(), (4 << 20) + 4096);
}

#[test]
fn truncated_images_never_panic() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    create(d, "t.vmdk", "4M", "");
    qemu_io(d, "t.vmdk", &["write -P 3 0 256k", "write -P 4 3M 64k"]);
    std::fs::write(d.join("s.src"), content(4 << 20, 17)).expect("w");
    qemu_img(
        d,
        &[
            "convert",
            "-q",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            "s.src",
            "s.vmdk",
        ],
    );
    for src in ["t.vmdk", "s.vmdk"] {
        let orig = std::fs::read(d.join(src)).expect("read");
        let mut cuts: Vec<usize> = vec![0, 3, 4, 100, 511, 512, 513, 1024, 10_752, 11_264];
        let mut r = Rng(orig.len() as u64);
        cuts.extend((0..40).map(|_| r.below(orig.len() as u64) as usize));
        for cut in cuts {
            let p = d.join(format!("cut-{cut}-{src}"));
            std::fs::write(&p, &orig[..cut.min(orig.len())]).expect("w");
            let _ = exercise(&p);
            std::fs::remove_file(&p).expect("rm");
        }
    }
}

/// Opens, maps and reads an image that may be corrupt; only errors are acceptable. Returns
/// whether it opened.
fn exercise(p: &Path) -> bool {
    let opts = OpenOptions {
        follow_backing: false,
        ..OpenOptions::default()
    };
    let Ok(img) = open_image(p, &opts) else {
        return false;
    };
    let dev = img.device();
    let mut buf = vec![0u8; 1 << 20];
    if let Ok(m) = dev.map(0, dev.size().min(64 << 20)) {
        for e in m.iter().take(32) {
            let n = e.len.min(buf.len() as u64) as usize;
            let _ = dev.read_exact_at(e.offset, &mut buf[..n]);
        }
    }
    let _ = dev.read_at(0, &mut buf);
    let _ = dev.read_at(dev.size().saturating_sub(777), &mut buf[..1000]);
    let _ = dev.read_at(dev.size() / 2, &mut buf[..70_000]);
    true
}

#[test]
fn mutated_images_never_panic() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    create(d, "m.vmdk", "2M", "zeroed_grain=on");
    qemu_io(
        d,
        "m.vmdk",
        &[
            "write -P 3 0 128k",
            "write -z 512k 64k",
            "write -P 4 1M 64k",
        ],
    );
    std::fs::write(d.join("s.src"), content(1 << 20, 19)).expect("w");
    qemu_img(
        d,
        &[
            "convert",
            "-q",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            "s.src",
            "s.vmdk",
        ],
    );
    let mut b = SparseBuilder::new(16 * 128 + 5);
    b.compressed = true;
    b.markers = true;
    b.gd_at_end = true;
    for g in [0u64, 3, 9, 16] {
        b.grains.insert(g, Grain::Data(content(65536, g + 1)));
    }
    std::fs::write(d.join("f.vmdk"), b.build()).expect("w");
    // GUESTCTL_VMDK_MUTATIONS=N runs a longer campaign (N per image, seed from
    // GUESTCTL_VMDK_SEED).
    let rounds: usize = std::env::var("GUESTCTL_VMDK_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let seed: u64 = std::env::var("GUESTCTL_VMDK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x00c0_ffee);
    let mut r = Rng(seed | 1);
    for src in ["m.vmdk", "s.vmdk", "f.vmdk"] {
        let orig = std::fs::read(d.join(src)).expect("read");
        let mut opened = 0;
        for i in 0..rounds {
            let mut v = orig.clone();
            let flips = 1 + r.below(4);
            for _ in 0..flips {
                // Mostly metadata: header fields, the first 64 KiB (descriptor, grain
                // directory and tables of a qemu sparse file), the first bytes of sectors
                // (grain and table markers), the footer; sometimes anywhere.
                let len = v.len() as u64;
                let at = match r.below(5) {
                    0 => r.below(80),
                    1 => r.below(len.min(64 << 10)),
                    2 => (r.below(len / 512) * 512 + r.below(16)).min(len - 4),
                    3 => len - 4 - r.below(2048.min(len - 4)),
                    _ => r.below(len - 4),
                } as usize;
                let word: u32 = match r.below(5) {
                    0 => u32::MAX,
                    1 => 0,
                    2 => 1,
                    3 => r.below(1 << 20) as u32,
                    _ => r.next() as u32,
                };
                // A whole little-endian word or a single byte of it.
                let n = if r.below(2) == 0 { 4 } else { 1 };
                v[at..at + n].copy_from_slice(&word.to_le_bytes()[..n]);
            }
            let p = d.join(format!("mut-{i}-{src}"));
            std::fs::write(&p, &v).expect("w");
            match std::panic::catch_unwind(|| exercise(&p)) {
                Ok(o) => opened += usize::from(o),
                Err(_) => panic!(
                    "{src} mutation {i} (seed {seed}) panicked (kept at {})",
                    p.display()
                ),
            }
            std::fs::remove_file(&p).expect("rm");
        }
        eprintln!("{src}: {opened} of {rounds} mutations opened");
        // Many flips land in data or slack: the reading paths run, not just open.
        assert!(
            opened >= rounds / 8,
            "{src}: only {opened} mutations opened"
        );
    }
}

#[test]
fn many_extents_of_one_big_sparse_file_stay_bounded() {
    // One sparse file with the largest grain directory one extent may have (16 Mi entries,
    // all holes), named many times: the image's grain-directory budget refuses it.
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let mut h = vec![0u8; 512];
    h[0..4].copy_from_slice(b"KDMV");
    h[4..8].copy_from_slice(&1u32.to_le_bytes());
    h[12..20].copy_from_slice(&(1u64 << 24).to_le_bytes());
    h[20..28].copy_from_slice(&1u64.to_le_bytes());
    h[44..48].copy_from_slice(&1u32.to_le_bytes());
    h[56..64].copy_from_slice(&1u64.to_le_bytes());
    let f = std::fs::File::create(d.join("x.vmdk")).expect("create");
    std::os::unix::fs::FileExt::write_all_at(&f, &h, 0).expect("w");
    f.set_len(512 + (64 << 20)).expect("len");
    let desc = format!(
        "# Disk DescriptorFile\nversion=1\ncreateType=\"twoGbMaxExtentSparse\"\n{}",
        "RW 16777216 SPARSE \"x.vmdk\"\n".repeat(4096)
    );
    std::fs::write(d.join("many.vmdk"), desc).expect("w");
    let e = open_err(&d.join("many.vmdk"));
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    assert!(e.to_string().contains("grain directories"), "{e}");
    assert_named(&e, "x.vmdk");
}
