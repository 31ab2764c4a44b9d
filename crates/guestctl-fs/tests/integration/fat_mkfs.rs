//! FAT12/16/32 images made at test time with mkfs.fat and filled with mtools (no root, no
//! mounts), read through the Filesystem trait and compared with the source tree (`find
//! -printf`, sha256) and with what mtools/mattrib were told to store.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use guestctl_block::{BlockDevice, RawFile};
use guestctl_fs::fat::FatFs;
use guestctl_fs::{Filesystem, OpenOptions};

fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .env("TZ", "UTC")
        .env("LC_ALL", "C.UTF-8")
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {cmd}: {e} (install dosfstools and mtools: scripts/test.sh does)")
        });
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn put(root: &Path, rel: &str, data: &[u8], mtime: u64) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, data).expect("write");
    let f = std::fs::File::options().write(true).open(&p).expect("open");
    f.set_modified(UNIX_EPOCH + Duration::from_secs(mtime))
        .expect("mtime");
}

/// The source tree: cluster-edge sizes, a 3+ MiB file, long/unicode/case names, 8.3 lower
/// case names, a 1000-entry directory, deep nesting. All mtimes even (FAT keeps 2 s).
fn build_tree(root: &Path) {
    let mut t = 1_600_000_000u64;
    let mut next = || {
        t += 7202;
        t
    };
    for (i, size) in [
        0usize, 1, 511, 512, 513, 1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096, 4097, 65535,
        65536, 65537,
    ]
    .iter()
    .enumerate()
    {
        put(
            root,
            &format!("sizes/f{size}"),
            &common::noise(*size, i as u64 + 1),
            next(),
        );
    }
    put(
        root,
        "big/three-and-a-bit.bin",
        &common::noise(3 * 1024 * 1024 + 12345, 99),
        next(),
    );
    put(root, "A long file name with spaces.txt", b"long\n", next());
    put(
        root,
        "café ünïcødé 日本語.txt",
        "unicode\n".as_bytes(),
        next(),
    );
    put(root, "Straße.md", b"sharp s\n", next());
    put(root, "dir1/Readme.TXT", b"one\n", next());
    put(root, "dir2/README.txt", b"two\n", next());
    put(root, "lower.txt", b"lower\n", next());
    put(root, "UPPER.TXT", b"upper\n", next());
    put(root, "makefile", b"all:\n", next());
    put(root, "empty", b"", next());
    put(root, "readonly.txt", b"do not touch\n", next());
    for i in 0..1000 {
        put(
            root,
            &format!("many/entry-number-{i:04}.dat"),
            format!("{i}\n").as_bytes(),
            next(),
        );
    }
    let mut deep = String::from("deep");
    for i in 0..20 {
        deep.push_str(&format!("/level{i}"));
    }
    put(root, &format!("{deep}/leaf.txt"), b"leaf\n", next());
}

/// Makes an image: mkfs.fat with `opts`, a fragmenting pass (filler files written, every
/// other one deleted, the tree copied into the holes, the rest deleted), `mattrib +r`.
fn make_image(dir: &Path, name: &str, opts: &[&str], kib: u32, src: &Path) -> PathBuf {
    let img = dir.join(name);
    let _ = std::fs::remove_file(&img);
    let mut args: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
    args.extend(["-n", "GUESTCTL", "-i", "1234ABCD", "-C"].map(String::from));
    args.push(img.to_str().expect("utf8").into());
    args.push(kib.to_string());
    tool(
        "mkfs.fat",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let at = img.to_str().expect("utf8");
    let fill = dir.join(format!("{name}.filler"));
    std::fs::create_dir_all(&fill).expect("filler");
    let mut fillers = Vec::new();
    for i in 0..24 {
        let p = fill.join(format!("FILL{i:02}.BIN"));
        std::fs::write(&p, common::noise(5000 + 3000 * (i % 3), 500 + i as u64)).expect("w");
        tool("mcopy", &["-i", at, p.to_str().expect("p"), "::/"]);
        fillers.push(format!("::/FILL{i:02}.BIN"));
    }
    for f in fillers.iter().step_by(2) {
        tool("mdel", &["-i", at, f]);
    }
    // FAT32 keeps a "next free cluster" hint in its FSInfo sector, which makes mtools
    // allocate after the last filler instead of in the holes: mark it unknown (0xFFFFFFFF,
    // as the spec allows) so allocation starts from cluster 2 again.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&img)
            .expect("open");
        let mut boot = [0u8; 512];
        f.read_exact_at(&mut boot, 0).expect("boot");
        if &boot[82..87] == b"FAT32" {
            let bps = u64::from(u16::from_le_bytes([boot[11], boot[12]]));
            let fsinfo = u64::from(u16::from_le_bytes([boot[48], boot[49]]));
            f.write_all_at(&[0xFF; 4], fsinfo * bps + 492)
                .expect("fsinfo");
        }
    }
    // The big file goes first, into the holes: fragmented whatever the host's readdir order.
    tool("mmd", &["-i", at, "::/big"]);
    let big = src.join("big/three-and-a-bit.bin");
    tool(
        "mcopy",
        &["-m", "-i", at, big.to_str().expect("p"), "::/big/"],
    );
    let mut cp = vec!["-s".to_string(), "-m".into(), "-i".into(), at.into()];
    for e in std::fs::read_dir(src).expect("src") {
        let e = e.expect("e");
        if e.file_name() != "big" {
            cp.push(e.path().to_str().expect("utf8").into());
        }
    }
    cp.push("::/".into());
    tool("mcopy", &cp.iter().map(String::as_str).collect::<Vec<_>>());
    for f in fillers.iter().skip(1).step_by(2) {
        tool("mdel", &["-i", at, f]);
    }
    tool("mattrib", &["-i", at, "+r", "::/readonly.txt"]);
    img
}

fn open(img: &Path) -> FatFs {
    let dev: Arc<dyn BlockDevice> = Arc::new(RawFile::open(img).expect("open image"));
    FatFs::open(dev, &OpenOptions::default()).expect("FatFs::open")
}

fn check(img: &Path, src: &Path, want_bits: &str) {
    // mkfs.fat's own word on the FAT width, and mtools' on the label.
    let fsck = tool("fsck.fat", &["-n", "-v", img.to_str().expect("p")]);
    assert!(
        fsck.contains(want_bits),
        "{img:?} is not {want_bits}: {fsck}"
    );
    let fs = open(img);
    let info = fs.info();
    assert_eq!(info.fs_type, "vfat");
    assert_eq!(info.label, "GUESTCTL");
    assert_eq!(info.uuid, "1234-ABCD");
    let want = common::oracle(src, false);
    let ours = common::walk(&fs, false);
    let mut diffs = Vec::new();
    for (p, w) in &want {
        let name = String::from_utf8_lossy(p);
        let Some(o) = ours.get(p) else {
            diffs.push(format!("{name}: missing"));
            continue;
        };
        if o.kind != w.kind || o.size != w.size || o.sha256 != w.sha256 {
            diffs.push(format!(
                "{name}: kind/size/sha256 {:?}/{:?} want {:?}/{:?}",
                o.kind, o.size, w.kind, w.size
            ));
        }
        if w.kind == 'f' && o.mtime.0 != w.mtime.0 {
            diffs.push(format!("{name}: mtime {} want {}", o.mtime.0, w.mtime.0));
        }
        let mode = if p == b"readonly.txt" { 0o555 } else { 0o755 };
        if o.mode != mode || o.uid != 0 || o.gid != 0 {
            diffs.push(format!(
                "{name}: mode {:o} uid {} gid {}",
                o.mode, o.uid, o.gid
            ));
        }
    }
    for p in ours.keys().filter(|p| !want.contains_key(*p)) {
        diffs.push(format!("{}: extra", String::from_utf8_lossy(p)));
    }
    assert!(
        diffs.is_empty(),
        "{img:?}: {} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    assert!(want.len() > 1050, "tree too small: {}", want.len());

    // Case-insensitive lookup on long names, like vfat.
    let n = fs
        .resolve("/DIR1/readme.txt")
        .expect("case-insensitive lookup");
    let mut buf = [0u8; 16];
    let k = fs.read_at(n, 0, &mut buf).expect("read");
    assert_eq!(&buf[..k], b"one\n");
    assert_eq!(
        fs.resolve("/dir2/ReadMe.TXT").expect("lookup"),
        fs.resolve("/dir2/README.txt").expect("lookup")
    );
    // Every 8.3 alias that mtools reports (`mdir -a`-style listing of the root) resolves.
    let listing = tool("mdir", &["-i", img.to_str().expect("p"), "::/"]);
    let mut aliases = 0;
    for line in listing.lines() {
        // "ALONGF~1 TXT         5 2020-09-13  12:26  A long file name with spaces.txt"
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() >= 2 && cols[0].contains('~') {
            let ext = if cols[1].chars().all(|c| c.is_ascii_digit()) || cols[1] == "<DIR>" {
                String::new()
            } else {
                format!(".{}", cols[1])
            };
            let short = format!("/{}{ext}", cols[0]);
            let long_name = line.split("  ").last().unwrap_or_default().trim();
            let a = fs
                .resolve(&short)
                .unwrap_or_else(|e| panic!("8.3 alias {short}: {e}"));
            let b = fs.resolve(&format!("/{long_name}")).expect("long name");
            assert_eq!(a, b, "{short} vs {long_name}");
            aliases += 1;
        }
    }
    assert!(
        aliases >= 2,
        "no 8.3 aliases found in mdir output:\n{listing}"
    );

    // Positional reads in the middle of the big (fragmented) file agree with the source.
    let big = std::fs::read(src.join("big/three-and-a-bit.bin")).expect("src");
    let node = fs.resolve("/big/three-and-a-bit.bin").expect("big");
    for off in [0usize, 1, 4095, 4096, 1_000_003, big.len() - 10] {
        let mut b = vec![0u8; 70_000];
        let k = fs.read_at(node, off as u64, &mut b).expect("read_at");
        assert_eq!(k, (big.len() - off).min(70_000));
        assert_eq!(&b[..k], &big[off..off + k], "read_at {off}");
    }
}

fn fragments(img: &Path) -> usize {
    // sleuthkit's istat lists the sectors of the big file: count the discontinuities.
    let fls = tool("fls", &["-r", "-p", img.to_str().expect("p")]);
    let line = fls
        .lines()
        .find(|l| l.ends_with("big/three-and-a-bit.bin"))
        .expect("fls lists the big file");
    let ino = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.trim_end_matches(':').split('-').next())
        .expect("inode")
        .to_string();
    let ist = tool("istat", &[img.to_str().expect("p"), &ino]);
    let sectors: Vec<u64> = ist
        .split("Sectors:")
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    sectors.windows(2).filter(|w| w[1] != w[0] + 1).count() + 1
}

#[test]
fn fat12_fat16_fat32_match_the_source_tree() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    build_tree(&src);
    let cases: [(&str, &[&str], u32, &str); 5] = [
        (
            "fat12.img",
            &["-F", "12", "-s", "4"],
            8000,
            "12 bit entries",
        ),
        (
            "fat16.img",
            &["-F", "16", "-s", "2"],
            16_000,
            "16 bit entries",
        ),
        (
            "fat32.img",
            &["-F", "32", "-s", "1"],
            40_000,
            "32 bit entries",
        ),
        (
            "fat32-4k.img",
            &["-F", "32", "-S", "4096", "-s", "1"],
            300_000,
            "32 bit entries",
        ),
        (
            "fat16-4k.img",
            &["-F", "16", "-S", "4096", "-s", "1"],
            60_000,
            "16 bit entries",
        ),
    ];
    let mut report = BTreeMap::new();
    for (name, opts, kib, bits) in cases {
        let img = make_image(tmp.path(), name, opts, kib, &src);
        check(&img, &src, bits);
        report.insert(name, fragments(&img));
    }
    // The filler pass must really have fragmented the big file (else the test proves less).
    eprintln!("runs of the big file per image (istat): {report:?}");
    for name in [
        "fat12.img",
        "fat16.img",
        "fat32.img",
        "fat32-4k.img",
        "fat16-4k.img",
    ] {
        let n = report[name];
        assert!(n > 1, "{name}: big file is not fragmented ({n} run)");
    }
}
