//! XFS log recovery against real dirty logs: the images made by
//! scripts/make-xfs-dirtylog-fixtures.sh (the kernel's XFS, shut down with its metadata only
//! in the log), whose oracles are the tree the script created and the kernel's own replay of
//! a copy (the script checked both agree). Replayed in memory, the whole tree must match:
//! types, modes, owners, sizes, symlink targets, file contents and xattrs. Without replay it
//! must not (so this cannot pass without recovery), and the image is never written.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use guestctl_block::{BlockDevice, RawFile};
use guestctl_fs::xfs::XfsFs;
use guestctl_fs::{FileType, Filesystem, NodeId, OpenOptions};
use sha2::{Digest, Sha256};

const VARIANTS: &[&str] = &["v5", "v5-sect4k", "v5-su32k", "v5-wrap", "v5-torn"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/xfs")
}

fn image(name: &str) -> Vec<u8> {
    let p = fixtures().join(format!("dirtylog-{name}.img.zst"));
    zstd::decode_all(std::fs::File::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .expect("zstd -d")
}

fn oracle_file(name: &str, ext: &str) -> String {
    let p = fixtures().join(format!("dirtylog-{name}.{ext}"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// What the fixture script's `find -printf '%y %m %U %G %s %p -> %l'`, `sha256sum` and
/// `getfattr` say, computed through the Filesystem trait.
#[derive(Default, Debug)]
struct Tree {
    find: Vec<String>,
    sha256: BTreeMap<String, String>,
    xattrs: BTreeMap<String, Vec<(String, String)>>,
}

fn type_char(t: FileType) -> char {
    match t {
        FileType::Regular => 'f',
        FileType::Directory => 'd',
        FileType::Symlink => 'l',
        FileType::Fifo => 'p',
        FileType::Socket => 's',
        FileType::CharDevice => 'c',
        FileType::BlockDevice => 'b',
        _ => 'U',
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn read_all(fs: &dyn Filesystem, node: NodeId, size: u64) -> guestctl_fs::Result<Vec<u8>> {
    let mut data = vec![0u8; size as usize];
    let mut off = 0;
    while off < data.len() {
        let end = (off + 70_000).min(data.len());
        let n = fs.read_at(node, off as u64, &mut data[off..end])?;
        assert!(n > 0, "short read at {off}");
        off += n;
    }
    Ok(data)
}

fn walk(fs: &dyn Filesystem) -> guestctl_fs::Result<Tree> {
    let mut t = Tree::default();
    let mut stack = vec![(".".to_string(), fs.root())];
    while let Some((path, node)) = stack.pop() {
        let md = fs.metadata(node)?;
        let target = if md.file_type == FileType::Symlink {
            String::from_utf8_lossy(&fs.read_link(node)?).into_owned()
        } else {
            String::new()
        };
        t.find.push(format!(
            "{} {:o} {} {} {} {path} -> {target}",
            type_char(md.file_type),
            md.mode,
            md.uid,
            md.gid,
            md.size
        ));
        let mut xa: Vec<(String, String)> = fs
            .xattrs(node)?
            .into_iter()
            .map(|x| (String::from_utf8_lossy(&x.name).into_owned(), hex(&x.value)))
            .collect();
        if !xa.is_empty() {
            xa.sort();
            t.xattrs.insert(path.clone(), xa);
        }
        match md.file_type {
            FileType::Regular => {
                let data = read_all(fs, node, md.size)?;
                t.sha256
                    .insert(path.clone(), format!("{:x}", Sha256::digest(&data)));
            }
            FileType::Directory => {
                for e in fs.read_dir(node)? {
                    if e.name == b"." || e.name == b".." {
                        continue;
                    }
                    let name = String::from_utf8_lossy(&e.name).into_owned();
                    stack.push((format!("{path}/{name}"), e.node));
                }
            }
            _ => {}
        }
    }
    t.find.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(t)
}

fn oracle(name: &str) -> Tree {
    let mut t = Tree {
        find: oracle_file(name, "find")
            .lines()
            .map(str::to_owned)
            .collect(),
        ..Tree::default()
    };
    for l in oracle_file(name, "sha256").lines() {
        let (h, p) = l.split_once("  ").expect("sha256sum line");
        t.sha256.insert(p.to_owned(), h.to_owned());
    }
    let mut cur = None;
    for l in oracle_file(name, "xattrs").lines() {
        if let Some(p) = l.strip_prefix("# file: ") {
            let p = if p == "." || p.starts_with("./") {
                p.to_owned()
            } else {
                format!("./{p}")
            };
            cur = Some(p);
        } else if let (Some(c), Some((k, v))) = (&cur, l.split_once('=')) {
            let v = v.strip_prefix("0x").unwrap_or(v).trim_matches('"');
            t.xattrs
                .entry(c.clone())
                .or_default()
                .push((k.to_owned(), v.to_owned()));
        }
    }
    for v in t.xattrs.values_mut() {
        v.sort();
    }
    t
}

fn diff_lines(ours: &[String], want: &[String]) -> Vec<String> {
    let o: std::collections::BTreeSet<_> = ours.iter().collect();
    let w: std::collections::BTreeSet<_> = want.iter().collect();
    let mut d: Vec<String> = w.difference(&o).map(|l| format!("missing: {l}")).collect();
    d.extend(o.difference(&w).map(|l| format!("extra:   {l}")));
    d
}

fn assert_tree(ours: &Tree, want: &Tree, what: &str) {
    let d = diff_lines(&ours.find, &want.find);
    assert!(
        d.is_empty(),
        "{what}: {} listing differences:\n{}",
        d.len(),
        d[..d.len().min(30)].join("\n")
    );
    for (p, h) in &want.sha256 {
        assert_eq!(ours.sha256.get(p), Some(h), "{what}: contents of {p}");
    }
    assert_eq!(
        ours.sha256.len(),
        want.sha256.len(),
        "{what}: regular files"
    );
    assert_eq!(ours.xattrs, want.xattrs, "{what}: xattrs");
}

fn open_file(path: &Path, opts: &OpenOptions) -> guestctl_fs::Result<XfsFs> {
    let dev: Arc<dyn BlockDevice> = Arc::new(RawFile::open(path).expect("open image"));
    XfsFs::open(dev, opts)
}

fn file_sha(path: &Path) -> String {
    format!(
        "{:x}",
        Sha256::digest(std::fs::read(path).expect("read image"))
    )
}

fn check_variant(name: &str) -> Vec<String> {
    let tmp = tempfile::tempdir().expect("tmp");
    let img = tmp.path().join("dirty.img");
    std::fs::File::create(&img)
        .and_then(|mut f| f.write_all(&image(name)))
        .expect("write image");
    let before = file_sha(&img);
    let want = oracle(name);

    for verify in [true, false] {
        let fs = open_file(&img, &OpenOptions::default().verify_checksums(verify))
            .unwrap_or_else(|e| panic!("{name}: open with replay: {e}"));
        let notes = fs.info().notes;
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("log replayed in memory")),
            "{name}: {notes:?}"
        );
        let ours = walk(&fs).unwrap_or_else(|e| panic!("{name}: walk: {e} (notes {notes:?})"));
        assert_tree(
            &ours,
            &want,
            &format!("{name} (replayed, checksums {verify})"),
        );
    }

    // Without replay: the open works (the log is only looked at) and the tree differs.
    let fs = open_file(&img, &OpenOptions::default().replay_journal(false))
        .unwrap_or_else(|e| panic!("{name}: open without replay: {e}"));
    assert!(
        fs.info()
            .notes
            .iter()
            .any(|n| n.contains("needs recovery but replay is turned off")),
        "{name}: {:?}",
        fs.info().notes
    );
    if let Ok(t) = walk(&fs) {
        assert!(
            !diff_lines(&t.find, &want.find).is_empty() || t.sha256 != want.sha256,
            "{name}: the tree without replay already matches: the fixture tests nothing"
        );
    }
    drop(fs);
    assert_eq!(file_sha(&img), before, "{name}: the image was written");
    open_file(&img, &OpenOptions::default())
        .expect("open")
        .info()
        .notes
}

#[test]
fn dirtylog_v5() {
    let notes = check_variant("v5");
    assert!(!notes.iter().any(|n| n.contains("torn")), "{notes:?}");
}

#[test]
fn dirtylog_v5_sect4k() {
    check_variant("v5-sect4k");
}

#[test]
fn dirtylog_v5_su32k_extended_headers() {
    check_variant("v5-su32k");
}

#[test]
fn dirtylog_v5_wrapped_log() {
    check_variant("v5-wrap");
}

/// The v5 image with one of its last records damaged (a torn write): the kernel dropped it
/// and everything after it, so the oracle is an older tree than the intended one.
#[test]
fn dirtylog_v5_torn_head() {
    let notes = check_variant("v5-torn");
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("torn log write at the head")),
        "{notes:?}"
    );
}

#[test]
fn all_fixtures_listed() {
    let mut found: Vec<String> = std::fs::read_dir(fixtures())
        .expect("fixtures/xfs")
        .filter_map(|e| {
            let n = e.expect("entry").file_name().into_string().expect("utf8");
            n.strip_prefix("dirtylog-")?
                .strip_suffix(".img.zst")
                .map(str::to_owned)
        })
        .collect();
    found.sort();
    let mut want: Vec<String> = VARIANTS.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(found, want);
}

/// The byte offset of the internal log (`sb_logstart` from the superblock).
fn log_offset(img: &[u8]) -> u64 {
    let be32 = |o: usize| u32::from_be_bytes(img[o..o + 4].try_into().expect("4"));
    let be64 = |o: usize| u64::from_be_bytes(img[o..o + 8].try_into().expect("8"));
    let bs = u64::from(be32(4));
    let agblocks = u64::from(be32(0x54));
    let agblklog = u32::from(img[0x7C]);
    let logstart = be64(0x30);
    ((logstart >> agblklog) * agblocks + (logstart & ((1 << agblklog) - 1))) * bs
}

/// A shared image with one damaged sector laid over it (no 320 MB copy per case).
#[derive(Debug)]
struct Patched {
    base: Arc<Vec<u8>>,
    sector: u64,
    data: Vec<u8>,
}

impl BlockDevice for Patched {
    fn size(&self) -> u64 {
        self.base.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> guestctl_block::Result<usize> {
        let start = (offset as usize).min(self.base.len());
        let n = buf.len().min(self.base.len() - start);
        buf[..n].copy_from_slice(&self.base[start..start + n]);
        let s = self.sector * 512;
        let (from, to) = (offset.max(s), (offset + n as u64).min(s + 512));
        if from < to {
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&self.data[(from - s) as usize..(to - s) as usize]);
        }
        Ok(n)
    }
}

/// Bit flips all over the log area of a dirty image: errors or notes, never a panic or a
/// hang, and whatever opens can be walked.
#[test]
fn hostile_log_bit_flips() {
    let img = Arc::new(image("v5"));
    let start = log_offset(&img);
    let opts = [
        OpenOptions::default(),
        OpenOptions::default().verify_checksums(false),
    ];
    // The active part of this log is its first ~600 blocks: flip inside it densely, and
    // some way past it.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut opened = 0;
    for i in 0..400u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let span = if i % 4 == 3 { 4 << 20 } else { 330 * 1024 };
        let off = start + x % span;
        let s = off / 512;
        let mut data = img[(s * 512) as usize..(s * 512 + 512) as usize].to_vec();
        data[(off % 512) as usize] ^= 1 << (x >> 61);
        if i % 5 == 0 {
            // Also a whole zeroed sector now and then.
            data.fill(0);
        }
        let dev: Arc<dyn BlockDevice> = Arc::new(Patched {
            base: img.clone(),
            sector: s,
            data,
        });
        for o in &opts {
            if let Ok(fs) = XfsFs::open(dev.clone(), o) {
                opened += 1;
                let _ = walk(&fs);
            }
        }
    }
    assert!(opened > 0, "no damaged image opened at all");
}

/// The I/O-free entry point on raw logs: the fixture's log, cut and damaged.
#[test]
fn fuzz_log_entry_point() {
    let img = image("v5-su32k");
    let start = log_offset(&img) as usize;
    let log = &img[start..start + (1 << 20)];
    guestctl_fs::xfs::fuzz_log(log);
    guestctl_fs::xfs::fuzz_log(&log[..700 * 512]);
    guestctl_fs::xfs::fuzz_log(&log[..1000]);
    guestctl_fs::xfs::fuzz_log(&[]);
    let mut m = log.to_vec();
    for i in (0..m.len()).step_by(4099) {
        m[i] ^= 0x55;
    }
    guestctl_fs::xfs::fuzz_log(&m);
}
