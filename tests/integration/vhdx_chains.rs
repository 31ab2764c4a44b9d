//! Differencing VHDX chains. Neither qemu (it refuses differencing files) nor any tool here
//! makes them, so they are built by the spec from qemu-made dynamic images: the file
//! parameters get HasParent, the metadata table a parent locator (UTF-16 key/value pairs),
//! the BAT NOT_PRESENT entries (read the parent), PARTIALLY_PRESENT entries and a sector
//! bitmap block. The expected bytes are computed from the same plan, sector by sector:
//! verified against the spec only (and against qemu for every non-differencing piece).

use crate::support;
use crate::vhdx_variants::{content, create, metadata_entries};

use std::path::Path;

use guestctl::block::ErrorKind;
use guestctl::formats::vhdx::layout::{self, Guid};
use guestctl::{open_image, BlockDevice, OpenOptions};
use support::*;

const MIB: usize = 1 << 20;
/// Disk size: 8 blocks of 1 MiB.
const DISK: usize = 8 * MIB;

/// What each block of a child is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum B {
    /// In the child (FULLY_PRESENT).
    Full,
    /// Read from the parent (NOT_PRESENT).
    Parent,
    /// Zeros (ZERO).
    Zero,
    /// PARTIALLY_PRESENT: sectors whose index % 3 == 0 are the child's.
    Partial,
}

fn qemu_vhdx(dir: &Path, name: &str, seed: u64) -> Vec<u8> {
    let raw = dir.join(format!("{name}.raw"));
    content(&raw, DISK as u64);
    // Make the content depend on the seed (content() is fixed): xor every byte.
    let mut b = std::fs::read(&raw).expect("read");
    for (i, x) in b.iter_mut().enumerate() {
        *x ^= (seed as u8).wrapping_add((i / 512) as u8);
    }
    std::fs::write(&raw, &b).expect("write");
    let out = format!("{name}.tmp.vhdx");
    qemu_img(
        &[
            "convert",
            "-O",
            "vhdx",
            "-o",
            "block_size=1M,subformat=fixed,block_state_zero=off",
            &format!("{name}.raw"),
            &out,
        ],
        dir,
    );
    std::fs::read(dir.join(out)).expect("read")
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Rewrites both headers with DataWriteGuid `g` (and a fresh checksum).
fn set_data_write_guid(img: &mut [u8], g: Guid) {
    for h in [64usize << 10, 128 << 10] {
        img[h + 32..h + 48].copy_from_slice(&g.0);
        img[h + 4..h + 8].fill(0);
        let c = layout::checksum(&img[h..h + 4096], 4);
        img[h + 4..h + 8].copy_from_slice(&c.to_le_bytes());
    }
}

fn locator(kv: &[(&str, &str)]) -> Vec<u8> {
    let mut b = vec![0u8; 20 + 12 * kv.len()];
    b[..16].copy_from_slice(&layout::PARENT_TYPE_VHDX.0);
    b[18..20].copy_from_slice(&(kv.len() as u16).to_le_bytes());
    for (i, (k, v)) in kv.iter().enumerate() {
        let ku: Vec<u8> = k.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let vu: Vec<u8> = v.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let ko = b.len();
        b.extend_from_slice(&ku);
        let vo = b.len();
        b.extend_from_slice(&vu);
        let e = 20 + 12 * i;
        b[e..e + 4].copy_from_slice(&(ko as u32).to_le_bytes());
        b[e + 4..e + 8].copy_from_slice(&(vo as u32).to_le_bytes());
        b[e + 8..e + 10].copy_from_slice(&(ku.len() as u16).to_le_bytes());
        b[e + 10..e + 12].copy_from_slice(&(vu.len() as u16).to_le_bytes());
    }
    b
}

/// Turns the fixed qemu-made `img` (in `tmp`) into a differencing file with `plan` and the
/// locator `kv`, writes it to `dir/name`, and returns the child's own guest bytes.
fn make_child(
    dir: &Path,
    name: &str,
    mut img: Vec<u8>,
    plan: &[B],
    kv: &[(&str, &str)],
) -> Vec<u8> {
    let tmp = dir.join("child.tmp.vhdx");
    std::fs::write(&tmp, &img).expect("write");
    let own = {
        let i = open_image(&tmp, &OpenOptions::default()).expect("open");
        let mut v = vec![0u8; DISK];
        i.device().read_exact_at(0, &mut v).expect("read");
        v
    };
    let (md, entries) = metadata_entries(&tmp);
    let md = md as usize;
    let fp = entries
        .iter()
        .find(|e| e.0 == layout::FILE_PARAMETERS.0)
        .expect("file parameters")
        .1 as usize;
    img[md + fp + 4] |= 2; // HasParent
                           // The parent locator item after the existing ones, and its table entry.
    let loc = locator(kv);
    let at = 0x1_1000usize;
    img[md + at..md + at + loc.len()].copy_from_slice(&loc);
    let n = entries.len();
    let e = md + 32 + 32 * n;
    img[e..e + 16].copy_from_slice(&layout::PARENT_LOCATOR.0);
    img[e + 16..e + 20].copy_from_slice(&(at as u32).to_le_bytes());
    img[e + 20..e + 24].copy_from_slice(&(loc.len() as u32).to_le_bytes());
    img[e + 24..e + 28].copy_from_slice(&4u32.to_le_bytes());
    img[md + 10..md + 12].copy_from_slice(&((n + 1) as u16).to_le_bytes());
    // BAT (qemu puts it at 2 MiB): states per plan; a sector bitmap block at the end.
    let bat = 2 * MIB;
    let sb_at = img.len().div_ceil(MIB) * MIB;
    img.resize(sb_at + MIB, 0);
    for (blk, kind) in plan.iter().enumerate() {
        let e = bat + 8 * blk;
        let cur = u64::from_le_bytes(img[e..e + 8].try_into().expect("8"));
        let off = layout::entry_offset(cur);
        let v = match kind {
            B::Full => off | 6,
            B::Parent => 0,
            B::Zero => 2,
            B::Partial => {
                // 2048 sectors per block: bits set for sectors % 3 == 0.
                for s in 0..2048usize {
                    if s % 3 == 0 {
                        let bit = blk * 2048 + s;
                        img[sb_at + bit / 8] |= 1 << (bit % 8);
                    }
                }
                off | 7
            }
        };
        put_u64(&mut img, e, v);
    }
    // Chunk ratio 4096: the sector bitmap entry of chunk 0 is entry 4096.
    put_u64(&mut img, bat + 8 * 4096, sb_at as u64 | 6);
    std::fs::write(dir.join(name), &img).expect("write child");
    own
}

/// The bytes a reader must see: the child's where it has them, else the parent's.
fn expected(own: &[u8], parent: &[u8], plan: &[B]) -> Vec<u8> {
    let mut v = vec![0u8; DISK];
    for (blk, kind) in plan.iter().enumerate() {
        for s in 0..2048usize {
            let o = blk * MIB + s * 512;
            let src = match kind {
                B::Full => &own[o..o + 512],
                B::Parent => &parent[o..o + 512],
                B::Zero => continue,
                B::Partial if s % 3 == 0 => &own[o..o + 512],
                B::Partial => &parent[o..o + 512],
            };
            v[o..o + 512].copy_from_slice(src);
        }
    }
    v
}

fn read_all(dev: &dyn BlockDevice) -> Vec<u8> {
    let mut v = vec![0u8; dev.size() as usize];
    dev.read_exact_at(0, &mut v).expect("read");
    v
}

const PLAN: [B; 8] = [
    B::Full,
    B::Parent,
    B::Partial,
    B::Zero,
    B::Parent,
    B::Partial,
    B::Full,
    B::Parent,
];

/// `d/base.vhdx`, a parent whose DataWriteGuid is returned.
fn make_base(d: &Path) -> Guid {
    let g = Guid::parse("{12345678-9abc-4def-8123-456789abcdef}").expect("guid");
    let mut base = qemu_vhdx(d, "base", 1);
    set_data_write_guid(&mut base, g);
    std::fs::write(d.join("base.vhdx"), &base).expect("write");
    g
}

fn linkage_of(g: Guid) -> String {
    format!("{{{g}}}")
}

#[test]
fn differencing_chain_reads_child_then_parent() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let g = make_base(d);
    let parent = read_all(
        open_image(d.join("base.vhdx"), &OpenOptions::default())
            .expect("base")
            .device()
            .as_ref(),
    );
    let link = linkage_of(g);
    let kv = [
        ("parent_linkage", link.as_str()),
        ("relative_path", ".\\base.vhdx"),
        ("absolute_win32_path", "C:\\vms\\base.vhdx"),
        (
            "volume_path",
            "\\\\?\\Volume{0eba351e-5634-46d6-a8cf-4ddc2d6ac0b9}\\vms\\base.vhdx",
        ),
    ];
    let own = make_child(d, "child.avhdx", qemu_vhdx(d, "c", 2), &PLAN, &kv);
    let img = open_image(d.join("child.avhdx"), &OpenOptions::default()).expect("child");
    let want = expected(&own, &parent, &PLAN);
    assert!(read_all(img.device().as_ref()) == want, "chain bytes");
    let info = img.info();
    assert_eq!(info.subformat.as_deref(), Some("differencing"));
    assert_eq!(info.backing_filename.as_deref(), Some(".\\base.vhdx"));
    assert_eq!(info.chain().len(), 2);
    // The map: the parent is fully allocated (fixed), so everything but the ZERO block is data.
    let m = img.device().map(0, DISK as u64).expect("map");
    assert_eq!(m.bytes_of(guestctl::block::ExtentKind::Zero), MIB as u64);
    let raw = d.join("want.raw");
    std::fs::write(&raw, &want).expect("write");
    assert_same_as_raw(img.device().as_ref(), &raw, "child.avhdx");
    // Unaligned reads across partial blocks.
    let mut b = vec![0u8; 3 * MIB + 777];
    img.device()
        .read_exact_at(2 * MIB as u64 - 300, &mut b)
        .expect("read");
    assert!(b[..] == want[2 * MIB - 300..5 * MIB + 477]);

    // A grandchild over the child: depth 2.
    let plan2 = [
        B::Parent,
        B::Full,
        B::Parent,
        B::Partial,
        B::Parent,
        B::Parent,
        B::Zero,
        B::Full,
    ];
    let cg = Guid::parse("{aaaaaaaa-9abc-4def-8123-456789abcdef}").expect("guid");
    let mut child = std::fs::read(d.join("child.avhdx")).expect("read");
    set_data_write_guid(&mut child, cg);
    std::fs::write(d.join("child.avhdx"), &child).expect("write");
    let cl = linkage_of(cg);
    let own2 = make_child(
        d,
        "grand.avhdx",
        qemu_vhdx(d, "g", 3),
        &plan2,
        &[("relative_path", "child.avhdx"), ("parent_linkage", &cl)],
    );
    let img = open_image(d.join("grand.avhdx"), &OpenOptions::default()).expect("grandchild");
    assert_eq!(img.info().chain().len(), 3);
    assert!(read_all(img.device().as_ref()) == expected(&own2, &want, &plan2));

    // `guestctl convert` flattens the chain; qemu reads the result.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_guestctl"))
        .args(["convert", "-O", "qcow2", "grand.avhdx", "flat.qcow2"])
        .current_dir(d)
        .output()
        .expect("guestctl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let flat = qemu_raw(&d.join("flat.qcow2"), d);
    // No member of the chain may be the output, even with --force.
    for member in ["base.vhdx", "child.avhdx", "grand.avhdx"] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_guestctl"))
            .args(["convert", "-O", "vhdx", "--force", "grand.avhdx", member])
            .current_dir(d)
            .output()
            .expect("guestctl");
        assert!(!o.status.success(), "{member} overwritten");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("source"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(std::fs::read(flat).expect("read") == expected(&own2, &want, &plan2));
}

#[test]
fn parent_checks() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let g = make_base(d);
    let other = linkage_of(Guid::parse("{00000000-9abc-4def-8123-456789abcdef}").expect("g"));
    let good = linkage_of(g);
    let src = qemu_vhdx(d, "c", 2);

    // The parent changed (DataWriteGuid differs): opens, but reads through it fail.
    make_child(
        d,
        "stale.avhdx",
        src.clone(),
        &PLAN,
        &[("relative_path", "base.vhdx"), ("parent_linkage", &other)],
    );
    let img = open_image(d.join("stale.avhdx"), &OpenOptions::default()).expect("opens");
    let mut b = vec![0u8; 4096];
    img.device()
        .read_exact_at(0, &mut b)
        .expect("a child block reads");
    let e = img
        .device()
        .read_exact_at(MIB as u64, &mut b)
        .expect_err("parent block");
    assert!(e.to_string().contains("DataWriteGuid"), "{e}");
    // parent_linkage2 is accepted too.
    make_child(
        d,
        "link2.avhdx",
        src.clone(),
        &PLAN,
        &[
            ("relative_path", "base.vhdx"),
            ("parent_linkage", &other),
            ("parent_linkage2", &good),
        ],
    );
    let img = open_image(d.join("link2.avhdx"), &OpenOptions::default()).expect("opens");
    img.device()
        .read_exact_at(MIB as u64, &mut b)
        .expect("linkage2");

    // Missing parent: the error names what was tried.
    make_child(
        d,
        "orphan.avhdx",
        src.clone(),
        &PLAN,
        &[
            ("relative_path", ".\\gone.vhdx"),
            ("parent_linkage", &good),
            ("absolute_win32_path", "D:\\gone.vhdx"),
        ],
    );
    let e = open_image(d.join("orphan.avhdx"), &OpenOptions::default()).expect_err("missing");
    let m = e.to_string();
    assert!(
        m.contains("gone.vhdx") && m.contains("relative_path") && m.contains("absolute_win32_path"),
        "{m}"
    );

    // A parent outside the child's directory: refused unless allowed.
    std::fs::create_dir(d.join("sub")).expect("mkdir");
    make_child(
        d,
        "sub/up.avhdx",
        src.clone(),
        &PLAN,
        &[
            ("relative_path", "..\\base.vhdx"),
            ("parent_linkage", &good),
        ],
    );
    let e = open_image(d.join("sub/up.avhdx"), &OpenOptions::default()).expect_err("outside");
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    let allowed = OpenOptions {
        allow_backing: vec![d.to_path_buf()],
        ..OpenOptions::default()
    };
    open_image(d.join("sub/up.avhdx"), &allowed).expect("allowed");

    // A loop: a child naming itself.
    make_child(
        d,
        "self.avhdx",
        src.clone(),
        &PLAN,
        &[("relative_path", "self.avhdx"), ("parent_linkage", &good)],
    );
    let e = open_image(d.join("self.avhdx"), &OpenOptions::default()).expect_err("loop");
    assert!(
        e.to_string().contains("loop") || format!("{:?}", e).contains("loop"),
        "{e}"
    );

    // A parent that is not VHDX.
    std::fs::write(d.join("plain.raw"), vec![0u8; DISK]).expect("write");
    make_child(
        d,
        "rawparent.avhdx",
        src,
        &PLAN,
        &[("relative_path", "plain.raw"), ("parent_linkage", &good)],
    );
    let e = open_image(d.join("rawparent.avhdx"), &OpenOptions::default()).expect_err("raw");
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
}

/// The corpus's real Hyper-V checkpoint (PARTIALLY_PRESENT blocks with a sector bitmap,
/// a parent locator with Windows paths) over a parent made here with the child's
/// parent_linkage, read against an independent reader: the sha256 printed by
/// scripts/vhdx-hyperv-chain-oracle.sh, where dissect.hypervisor reads the same chain (the
/// recipe of the parent is the same in both).
#[test]
fn hyperv_child_over_a_made_parent_matches_dissect() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let child = materialize(
        &corpus().join("dissect.hypervisor/tests/_data/disk/vhdx/differencing.avhdx.gz"),
        d,
    );
    let pname = "Generation 1_49C4BAF3-4B25-4406-8C4B-D39E65C32385.avhdx";
    create(d, "block_size=2M", pname, "8G");
    qemu_io(
        "vhdx",
        pname,
        &[
            "write -P 0x11 0 16M",
            "write -P 0x22 512M 4M",
            "write -P 0x33 2054M 8M",
            "write -P 0x44 7000M 64M",
        ],
        d,
    );
    let mut p = std::fs::read(d.join(pname)).expect("read");
    set_data_write_guid(
        &mut p,
        Guid::parse("ff34003b-11ed-4cf8-a166-b2be05e20b80").expect("guid"),
    );
    std::fs::write(d.join(pname), &p).expect("write");
    let img = open_image(&child, &OpenOptions::default()).expect("chain");
    assert_eq!(img.info().chain().len(), 2);
    let dev = img.device();
    // The ranges the oracle hashes: the child's present blocks and the parent's writes.
    let raw = std::fs::read(&child).expect("child");
    let (bs, cr) = (2u64 << 20, 2048usize);
    let mut ranges: Vec<(u64, u64)> = (0..4098usize)
        .filter(|i| (i + 1) % (cr + 1) != 0)
        .filter(|i| {
            let e = u64::from_le_bytes(
                raw[0x30_0000 + 8 * i..0x30_0008 + 8 * i]
                    .try_into()
                    .expect("8"),
            );
            matches!(e & 7, 6 | 7)
        })
        .map(|i| ((i - i / (cr + 1)) as u64 * bs, bs))
        .collect();
    ranges.extend([
        (0, 16 << 20),
        (512 << 20, 4 << 20),
        (2054 << 20, 8 << 20),
        (7000 << 20, 64 << 20),
    ]);
    ranges.sort_unstable();
    ranges.dedup();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 20];
    for &(off, n) in &ranges {
        dev.read_exact_at(off, &mut buf[..n as usize])
            .expect("read");
        h.update(&buf[..n as usize]);
    }
    let got: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(ranges.len(), 36);
    assert_eq!(
        got,
        "127b654ea9e2249a8e0e65bf19e61a461eb7d320bc78d7cf3debeb84937152cd"
    );
}
