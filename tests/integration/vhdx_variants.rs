//! VHDX read against qemu: images qemu-img makes at test time in every subformat and block
//! size it offers (bytes equal to `qemu-img convert -O raw`), the corpus's Hyper-V images
//! (the oracle sha256 of ORACLE_qemu-img.tsv), a dirty-log fixture qemu-io left behind when it
//! was killed between writing a log entry and applying it (the oracle is qemu itself replaying
//! a copy opened read-write), and images qemu cannot make (4 KiB logical sectors, differencing
//! chains), which are built from qemu-made ones by the spec and checked by construction.

use crate::support;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use guestctl::block::ErrorKind;
use guestctl::block::ExtentKind;
use guestctl::{open_image, BlockDevice, OpenOptions};
use support::*;

/// A patterned raw disk of `size` bytes: random MiBs, text, zeros, holes.
pub fn content(path: &Path, size: u64) {
    let mut f = std::fs::File::create(path).expect("create");
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut block = vec![0u8; 1 << 20];
    let mut off = 0u64;
    let mut i = 0u64;
    while off < size {
        let n = (size - off).min(block.len() as u64) as usize;
        match i % 5 {
            // a hole (left unwritten)
            2 => {}
            // zeros written
            3 => {
                block.fill(0);
                f.seek(SeekFrom::Start(off)).expect("seek");
                f.write_all(&block[..n]).expect("write");
            }
            k => {
                for (j, b) in block.iter_mut().enumerate() {
                    *b = if k == 1 && j % 4096 < 2048 {
                        b"vhdx block text "[j % 16]
                    } else {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    };
                }
                f.seek(SeekFrom::Start(off)).expect("seek");
                f.write_all(&block[..n]).expect("write");
            }
        }
        off += n as u64;
        i += 1;
    }
    f.set_len(size).expect("size");
}

fn check(path: &Path, dir: &Path, what: &str) {
    let img = open_image(path, &OpenOptions::default()).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(img.info().format.name(), "vhdx");
    let raw = qemu_raw(path, dir);
    assert_same_as_raw(img.device().as_ref(), &raw, what);
    std::fs::remove_file(raw).expect("rm");
}

/// `qemu-img create -f vhdx -o OPTS NAME SIZE` in `d`.
pub fn create(d: &Path, opts: &str, name: &str, size: &str) {
    qemu_img(&["create", "-q", "-f", "vhdx", "-o", opts, name, size], d);
}

/// An odd size: not a multiple of any block size.
const SIZE: u64 = (21 << 20) + 3 * 512;

#[test]
fn every_subformat_and_block_size_matches_qemu() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    content(&d.join("src.raw"), SIZE);
    for sub in ["dynamic", "fixed"] {
        for bs in ["1M", "8M", "32M", "256M"] {
            for zero in ["on", "off"] {
                if sub == "dynamic" && zero == "off" {
                    // qemu: "Do not set to 'off' when using 'qemu-img convert' with
                    // subformat=dynamic" (holes would be read back as garbage).
                    continue;
                }
                let name = format!("{sub}-{bs}-{zero}.vhdx");
                let o =
                    format!("subformat={sub},block_size={bs},log_size=1M,block_state_zero={zero}");
                qemu_img(&["convert", "-O", "vhdx", "-o", &o, "src.raw", &name], d);
                check(&d.join(&name), d, &name);
            }
        }
    }
}

#[test]
fn qemu_io_writes_over_a_created_image() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    create(d, "block_size=1M", "w.vhdx", "9M");
    qemu_io(
        "vhdx",
        "w.vhdx",
        &[
            "write -P 0x11 0 4k",
            "write -P 0x22 70000 3000",
            "write -P 0x33 1M 1M",
            "write -P 0x44 3146240 1536",
            "write -z 1M 64k",
            "write -P 0x55 8388096 512",
        ],
        d,
    );
    check(&d.join("w.vhdx"), d, "w.vhdx");
    // qemu's vhdx driver has no block-status: `qemu-img map` calls everything data, so its
    // map is no oracle for ours. Ours follows the BAT (checked against the bytes above):
    // blocks 0, 1, 3 and 7 hold data, the rest are ZERO blocks.
    let q: serde_json::Value =
        serde_json::from_slice(&qemu_img(&["map", "--output=json", "w.vhdx"], d).stdout)
            .expect("json");
    assert_eq!(q.as_array().map(Vec::len), Some(1), "{q}");
    assert_eq!(q[0]["data"], true);
    let img = open_image(d.join("w.vhdx"), &OpenOptions::default()).expect("open");
    let m = img.device().map(0, img.device().size()).expect("map");
    assert_eq!(m.bytes_of(ExtentKind::Data), 4 << 20, "{m:?}");
    assert_eq!(m.bytes_of(ExtentKind::Zero), 5 << 20, "{m:?}");
    // A created image that was never written: ZERO blocks (block_state_zero) or NOT_PRESENT.
    for z in ["on", "off"] {
        let n = format!("empty-{z}.vhdx");
        create(d, &format!("block_state_zero={z}"), &n, "3G");
        let img = open_image(d.join(&n), &OpenOptions::default()).expect("open");
        let m = img.device().map(0, 3 << 30).expect("map");
        let want = if z == "on" {
            ExtentKind::Zero
        } else {
            ExtentKind::Unallocated
        };
        assert_eq!(m.extents().len(), 1, "{n}: {m:?}");
        assert_eq!(m.extents()[0].kind, want, "{n}");
        assert_eq!(
            img.info().cluster_size,
            Some(16 << 20),
            "{n}: qemu's default for 3G"
        );
    }
}

/// More than one chunk: sector bitmap entries are interleaved in the BAT after every
/// chunk-ratio payload entries (4096 with 1 MiB blocks and 512-byte sectors).
#[test]
fn interleaved_bat_entries_past_the_first_chunk() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    create(d, "block_size=1M", "big.vhdx", "5G");
    let writes = [
        (0x11u8, 4095u64 << 20, 1u64 << 20),
        (0x22, 4096 << 20, 1 << 20),
        (0x33, (4097 << 20) + 512, 4096),
        (0x44, (5 << 30) - (1 << 20), 1 << 20),
    ];
    let cmds: Vec<String> = writes
        .iter()
        .map(|(p, o, l)| format!("write -P {p:#x} {o} {l}"))
        .collect();
    let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
    qemu_io("vhdx", "big.vhdx", &cmds, d);
    let img = open_image(d.join("big.vhdx"), &OpenOptions::default()).expect("open");
    let dev = img.device();
    let raw = qemu_raw(&d.join("big.vhdx"), d);
    let mut f = std::fs::File::open(&raw).expect("raw");
    for &(_, o, l) in &writes {
        let (o, l) = (o.saturating_sub(8192), l + 16384);
        let l = l.min(dev.size() - o);
        let mut a = vec![0u8; l as usize];
        let mut b = vec![0u8; l as usize];
        dev.read_exact_at(o, &mut a).expect("read");
        f.seek(SeekFrom::Start(o)).expect("seek");
        f.read_exact(&mut b).expect("read raw");
        assert!(a == b, "differs from qemu around {o:#x}");
    }
    let data = dev
        .map(0, dev.size())
        .expect("map")
        .bytes_of(ExtentKind::Data);
    assert_eq!(data, 4 << 20, "four 1 MiB blocks hold data");
}

/// The logical sector size qemu cannot make (it refuses to open it too): a qemu-made image
/// whose metadata item says 4096. With fewer blocks than a chunk the BAT layout is the same,
/// so the guest bytes must be those of the 512-byte original. Verified by construction only.
#[test]
fn four_kib_logical_sectors() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    small_vhdx(d, 12 << 20);
    let p = d.join("s.vhdx");
    let before = open_image(&p, &OpenOptions::default()).expect("open");
    let want = sha256_device(before.device().as_ref());
    patch_metadata_u32(&p, layout_guid_logical(), 4096);
    let img = open_image(&p, &OpenOptions::default()).expect("open 4k");
    let fs = img.info().format_specific.as_ref().expect("fs");
    assert_eq!(fs.data["logical-sector-size"], 4096);
    assert_eq!(sha256_device(img.device().as_ref()), want);
}

/// `d/s.vhdx`: patterned content of `size` bytes converted by qemu-img with 1 MiB blocks.
fn small_vhdx(d: &Path, size: u64) {
    content(&d.join("src.raw"), size);
    qemu_img(
        &[
            "convert",
            "-O",
            "vhdx",
            "-o",
            "block_size=1M",
            "src.raw",
            "s.vhdx",
        ],
        d,
    );
}

fn layout_guid_logical() -> guestctl::formats::vhdx::layout::Guid {
    guestctl::formats::vhdx::layout::LOGICAL_SECTOR_SIZE
}

/// The metadata region's offset and its table entries `(guid, offset, length)`.
pub fn metadata_entries(p: &Path) -> (u64, Vec<([u8; 16], u32, u32)>) {
    let b = std::fs::read(p).expect("read");
    let rt = &b[192 << 10..256 << 10];
    let n = u32::from_le_bytes(rt[8..12].try_into().expect("n")) as usize;
    let md = (0..n)
        .map(|i| &rt[16 + 32 * i..48 + 32 * i])
        .find(|e| e[..16] == guestctl::formats::vhdx::layout::METADATA_REGION.0)
        .map(|e| u64::from_le_bytes(e[16..24].try_into().expect("off")))
        .expect("metadata region");
    let t = &b[md as usize..md as usize + 65536];
    let n = u16::from_le_bytes([t[10], t[11]]) as usize;
    let v = (0..n)
        .map(|i| {
            let e = &t[32 + 32 * i..64 + 32 * i];
            let mut g = [0u8; 16];
            g.copy_from_slice(&e[..16]);
            (
                g,
                u32::from_le_bytes(e[16..20].try_into().expect("o")),
                u32::from_le_bytes(e[20..24].try_into().expect("l")),
            )
        })
        .collect();
    (md, v)
}

fn patch_metadata_u32(p: &Path, item: guestctl::formats::vhdx::layout::Guid, v: u32) {
    let (md, entries) = metadata_entries(p);
    let (_, off, _) = entries
        .iter()
        .find(|e| e.0 == item.0)
        .copied()
        .expect("item");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .expect("open");
    f.seek(SeekFrom::Start(md + u64::from(off))).expect("seek");
    f.write_all(&v.to_le_bytes()).expect("write");
}

#[test]
fn corpus_hyperv_images_match_the_oracle() {
    let corpus = corpus();
    let oracle = std::fs::read_to_string(corpus.join("ORACLE_qemu-img.tsv")).expect("oracle");
    let disk = corpus.join("dissect.hypervisor/tests/_data/disk/vhdx");
    let dir = tempfile::tempdir().expect("tmp");
    let mut n = 0;
    for name in ["fixed.vhdx", "dynamic.vhdx"] {
        let row = oracle
            .lines()
            .find(|l| l.contains(&format!("vhdx/{name}\t")))
            .expect("oracle row");
        let f: Vec<&str> = row.split('\t').collect();
        let p = materialize(&disk.join(format!("{name}.gz")), dir.path());
        let img = open_image(&p, &OpenOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(f[1], "vhdx");
        assert_eq!(img.device().size().to_string(), f[2], "{name}");
        assert_eq!(sha256_device(img.device().as_ref()), f[3], "{name}");
        let i = img.info();
        assert_eq!(
            i.cluster_size,
            Some(if name == "fixed.vhdx" {
                2 << 20
            } else {
                32 << 20
            })
        );
        // dissect.hypervisor's test: the disk id (page 83 data).
        let id = &i.format_specific.as_ref().expect("fs").data["page83-id"];
        let want = if name == "fixed.vhdx" {
            "4a49d245-db0a-4634-9818-9f93db5ba6c1"
        } else {
            "788015f0-5e93-4bd2-a5de-b0cd8459db11"
        };
        assert_eq!(id, want, "{name}");
        n += 1;
    }
    // A Hyper-V differencing disk whose parent is not in the corpus: a clear error naming it.
    let p = materialize(&disk.join("differencing.avhdx.gz"), dir.path());
    let e = open_image(&p, &OpenOptions::default()).expect_err("parent missing");
    let msg = e.to_string();
    assert!(
        msg.contains("Generation 1_49C4BAF3-4B25-4406-8C4B-D39E65C32385.avhdx")
            && msg.contains("relative_path")
            && msg.contains("parent"),
        "{msg}"
    );
    // Without following parents it opens, and its info names the parent.
    let img = open_image(
        &p,
        &OpenOptions {
            follow_backing: false,
            ..OpenOptions::default()
        },
    )
    .expect("open without parent");
    assert_eq!(img.info().subformat.as_deref(), Some("differencing"));
    assert!(img
        .info()
        .backing_filename
        .as_deref()
        .is_some_and(|b| b.ends_with(".avhdx")));
    assert!(img.device().map(0, img.device().size()).is_ok());
    assert_eq!(n, 2);
}

/// Where the test fixtures live.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vhdx")
}

/// Damaged copies of a small qemu-made image: truncated anywhere, or with bytes flipped in
/// each structure, they open with an error or read without panicking.
#[test]
fn damaged_images_fail_cleanly() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    small_vhdx(d, 3 << 20);
    let good = std::fs::read(d.join("s.vhdx")).expect("read");
    let try_open = |bytes: &[u8], what: &str| {
        let p = d.join("bad.vhdx");
        std::fs::write(&p, bytes).expect("write");
        if let Ok(img) = open_image(&p, &OpenOptions::default()) {
            let dev = img.device();
            let mut b = vec![0u8; 1 << 20];
            let _ = dev.map(0, dev.size());
            let _ = dev.read_at(0, &mut b);
        } else {
            let e = open_image(&p, &OpenOptions::default()).expect_err(what);
            assert!(e.to_string().contains("bad.vhdx"), "{what}: {e}");
        }
    };
    for cut in [
        0usize,
        7,
        4096,
        65536 + 100,
        200 << 10,
        (1 << 20) + 5,
        3 << 20,
        good.len() - 1,
    ] {
        try_open(&good[..cut.min(good.len())], &format!("cut at {cut}"));
    }
    let (md, _) = metadata_entries(&d.join("s.vhdx"));
    let bat = 2u64 << 20; // qemu's layout: the BAT at 2 MiB
    for at in [
        0u64,
        (64 << 10) + 8,
        (128 << 10) + 70,
        (192 << 10) + 20,
        (256 << 10) + 20,
        md + 10,
        md + 32 + 16,
        md + 65536,
        md + 65536 + 8,
        bat,
        bat + 7,
    ] {
        for bit in [0u8, 3, 7] {
            let mut b = good.clone();
            b[at as usize] ^= 1 << bit;
            try_open(&b, &format!("flip at {at:#x}"));
        }
    }
    // Both headers damaged: a corrupt-image error naming the header.
    let mut b = good.clone();
    b[(64 << 10) + 9] ^= 1;
    b[(128 << 10) + 9] ^= 1;
    std::fs::write(d.join("bad.vhdx"), &b).expect("write");
    let e = open_image(d.join("bad.vhdx"), &OpenOptions::default()).expect_err("headers");
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(e.to_string().contains("vhdx header"), "{e}");
    // The first region table damaged: the second copy is used.
    let mut b = good;
    b[(192 << 10) + 20] ^= 1;
    std::fs::write(d.join("bad.vhdx"), &b).expect("write");
    let img = open_image(d.join("bad.vhdx"), &OpenOptions::default()).expect("second table");
    let fs = img.info().format_specific.as_ref().expect("fs");
    assert!(fs.data.contains_key("region-table"));
}

/// The dirty-log fixtures (scripts/make-vhdx-dirtylog-fixture.sh): qemu-io was killed after
/// writing the log entry of a BAT update and before applying it. Our read-only replay must
/// give the bytes of qemu's own replay (recorded by the script, and done again here on a copy).
#[test]
fn dirty_log_is_replayed_in_memory_like_qemu() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    for (name, replayed) in [("dirty-log.vhdx", 1u64), ("dirty-log-torn.vhdx", 0)] {
        let p = materialize(&fixtures().join(format!("{name}.zst")), d);
        let before = std::fs::read(&p).expect("read");
        let want = std::fs::read_to_string(fixtures().join(format!("{name}.sha256")))
            .expect("oracle")
            .trim()
            .to_string();
        let img = open_image(&p, &OpenOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sha256_device(img.device().as_ref()), want, "{name}");
        let fs = img.info().format_specific.as_ref().expect("fs");
        assert_eq!(fs.data["log-replayed-entries"], replayed, "{name}");
        assert!(fs.data.contains_key("log"), "{name}: a note on the log");
        assert_eq!(img.info().dirty, replayed > 0, "{name}");
        // The map stays truthful after replay.
        let raw = d.join(format!("{name}.raw"));
        std::fs::write(&raw, {
            let mut v = vec![0u8; img.device().size() as usize];
            img.device().read_exact_at(0, &mut v).expect("read");
            v
        })
        .expect("write");
        assert_same_as_raw(img.device().as_ref(), &raw, name);
        // The image itself was not touched.
        assert!(
            std::fs::read(&p).expect("read") == before,
            "{name} was modified"
        );
        // qemu, today: read-only it refuses the dirty one; a copy opened read-write replays.
        let copy = d.join(format!("copy-{name}"));
        std::fs::copy(&p, &copy).expect("copy");
        let ro = std::process::Command::new("qemu-img")
            .args(["info"])
            .arg(&p)
            .output()
            .expect("qemu-img");
        assert_eq!(
            ro.status.success(),
            replayed == 0,
            "{name}: qemu read-only open"
        );
        qemu_io("vhdx", &copy.display().to_string(), &["quit"], d);
        let out = qemu_raw(&copy, d);
        assert_eq!(sha256_file(&out), want, "{name}: qemu's replay today");
    }
}

/// Hyper-V's own logs (the corpus images were closed cleanly, so their LogGuid is zero): with
/// the header pointed at the log's GUID, the active sequence (from the newest entry's Tail)
/// is found and replayed; the entries were applied already, so the bytes do not change —
/// and qemu, replaying a copy, agrees.
#[test]
fn hyperv_log_sequences_replay_idempotently() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let disk = corpus().join("dissect.hypervisor/tests/_data/disk/vhdx");
    for name in ["fixed.vhdx", "dynamic.vhdx"] {
        let p = materialize(&disk.join(format!("{name}.gz")), d);
        let clean = sha256_device(
            open_image(&p, &OpenOptions::default())
                .expect("open")
                .device()
                .as_ref(),
        );
        // The log's GUID, from its first entry.
        let mut b = std::fs::read(&p).expect("read");
        let log = 1usize << 20;
        assert_eq!(
            &b[log..log + 4],
            b"loge",
            "{name}: a log entry at the log's start"
        );
        let guid: [u8; 16] = b[log + 32..log + 48].try_into().expect("guid");
        for h in [64usize << 10, 128 << 10] {
            b[h + 48..h + 64].copy_from_slice(&guid);
            b[h + 4..h + 8].fill(0);
            let c = guestctl::formats::vhdx::layout::checksum(&b[h..h + 4096], 4);
            b[h + 4..h + 8].copy_from_slice(&c.to_le_bytes());
        }
        let dirty = d.join(format!("dirty-{name}"));
        std::fs::write(&dirty, &b).expect("write");
        let img = open_image(&dirty, &OpenOptions::default()).expect("open dirty");
        let fs = img.info().format_specific.as_ref().expect("fs");
        assert!(
            fs.data["log-replayed-entries"].as_u64().expect("n") >= 1,
            "{name}"
        );
        assert_eq!(sha256_device(img.device().as_ref()), clean, "{name}");
        qemu_io("vhdx", &dirty.display().to_string(), &["quit"], d);
        assert_eq!(sha256_file(&qemu_raw(&dirty, d)), clean, "{name}: qemu");
    }
}

/// `guestctl info --json` against `qemu-img info --output=json` on the keys both print.
#[test]
fn info_json_matches_qemu_img() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    content(&d.join("src.raw"), SIZE);
    for (name, o) in [
        ("d.vhdx", "subformat=dynamic"),
        ("f.vhdx", "subformat=fixed,block_size=1M"),
        ("b.vhdx", "block_size=32M"),
    ] {
        qemu_img(&["convert", "-O", "vhdx", "-o", o, "src.raw", name], d);
        let q: serde_json::Value =
            serde_json::from_slice(&qemu_img(&["info", "--output=json", name], d).stdout)
                .expect("qemu json");
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_guestctl"))
            .args(["info", "--json"])
            .arg(d.join(name))
            .output()
            .expect("guestctl");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let g: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        for k in [
            "format",
            "virtual-size",
            "cluster-size",
            "actual-size",
            "dirty-flag",
        ] {
            assert_eq!(g[k], q[k], "{name}: {k}");
        }
        let want = if name == "f.vhdx" { "fixed" } else { "dynamic" };
        assert_eq!(g["format-specific"]["data"]["subformat"], want);
    }
}

/// `guestctl inspect` on a Debian-like guest (GPT, ext4 root with dpkg status) converted to
/// VHDX by qemu-img, dynamic and fixed: the same answers as on the raw disk.
#[test]
fn inspect_debian_like_guest_in_vhdx() {
    use crate::inspect_linux::{build_disk, host_elf, inspect_json, write, Part};
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let root = d.join("root");
    host_elf(&root);
    write(&root, "etc/debian_version", b"12.5\n");
    write(
        &root,
        "etc/os-release",
        b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
          VERSION_ID=\"12\"\nID=debian\n",
    );
    write(&root, "etc/hostname", b"vhdx-guest\n");
    write(&root, "etc/fstab", b"LABEL=root / ext4 defaults 0 1\n");
    let status = std::fs::read(corpus().join("libguestfs/test-data/phony-guests/debian-packages"))
        .expect("debian-packages");
    write(&root, "var/lib/dpkg/status", &status);
    let img = build_disk(
        d,
        "gpt",
        &[Part {
            mib: 40,
            src: &root,
            mkfs: &["-L", "root"],
            extra: "",
        }],
    );
    let want = inspect_json(&img);
    assert_eq!(want["distro"], "debian");
    assert_eq!(want["hostname"], "vhdx-guest");
    for o in ["subformat=dynamic", "subformat=fixed,block_size=1M"] {
        let out = d.join("guest.vhdx");
        let _ = std::fs::remove_file(&out);
        qemu_img(
            &[
                "convert",
                "-O",
                "vhdx",
                "-o",
                o,
                img.to_str().expect("u"),
                "guest.vhdx",
            ],
            d,
        );
        assert_eq!(inspect_json(&out), want, "{o}");
    }
}
