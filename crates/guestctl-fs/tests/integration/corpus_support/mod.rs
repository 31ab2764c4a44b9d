//! Support for the third-party corpus tests (tests/ext_corpus.rs): find `../shared/corpus`
//! (failing loudly when it is missing), decompress upstream images at test time into the
//! target directory (each copy checked against the corpus SHA256SUMS), walk a filesystem
//! through the trait while recording per-node errors, and read sleuthkit's `fls`/`istat`.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use guestctl_block::{BlockDevice, RawFile};
use guestctl_fs::{ext::ExtFs, ErrorKind, FileType, Filesystem, NodeId, OpenOptions};
use md5::Md5;
use sha2::{Digest, Sha256};

/// The corpus folder: `$GUESTCTL_CORPUS`, else `shared/corpus` beside the project checkout.
/// Panics (never skips) when it is not there.
pub fn corpus_root() -> PathBuf {
    let root = match std::env::var_os("GUESTCTL_CORPUS") {
        Some(p) => PathBuf::from(p),
        // crates/guestctl-fs -> project root -> ../shared/corpus
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    };
    assert!(
        root.join("INDEX.md").is_file(),
        "the third-party test corpus is missing: expected {} (shared/corpus beside the project \
         checkout, or set GUESTCTL_CORPUS). The corpus tests fail rather than skip without it.",
        root.display()
    );
    root
}

/// A file of the corpus, by its path inside the corpus; panics when it is missing.
pub fn corpus_file(rel: &str) -> PathBuf {
    let p = corpus_root().join(rel);
    assert!(
        p.is_file(),
        "corpus file missing: {} (the corpus at {} is incomplete)",
        p.display(),
        corpus_root().display()
    );
    p
}

/// `SHA256SUMS` of the corpus: path inside the corpus (no `./`) -> hex digest.
fn sha256sums() -> &'static HashMap<String, String> {
    static SUMS: OnceLock<HashMap<String, String>> = OnceLock::new();
    SUMS.get_or_init(|| {
        let text = std::fs::read_to_string(corpus_file("SHA256SUMS")).expect("read SHA256SUMS");
        text.lines()
            .filter_map(|l| l.split_once("  "))
            .map(|(h, p)| (p.trim_start_matches("./").to_owned(), h.to_owned()))
            .collect()
    })
}

/// The hash SHA256SUMS gives for `rel` (panics when it gives none).
pub fn expected_sha256(rel: &str) -> &'static str {
    sha256sums()
        .get(rel)
        .unwrap_or_else(|| panic!("{rel} is not listed in the corpus SHA256SUMS"))
}

pub fn sha256_file(p: &Path) -> String {
    let mut f = std::fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    format!("{:x}", h.finalize())
}

fn scratch() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ext_corpus");
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

/// Serialises decompression and remembers the copies already checked in this process.
fn checked() -> &'static Mutex<HashSet<PathBuf>> {
    static C: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    C.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Makes (or reuses) the decompressed copy `rel_out` (a path inside the corpus, as SHA256SUMS
/// names it) with `produce(tmp_path)`, and checks it against SHA256SUMS.
fn materialise(rel_out: &str, produce: impl FnOnce(&Path)) -> PathBuf {
    let out = scratch().join(rel_out.replace('/', "__"));
    let want = expected_sha256(rel_out);
    let mut done = checked().lock().unwrap_or_else(|e| e.into_inner());
    if done.contains(&out) {
        return out;
    }
    if !(out.is_file() && sha256_file(&out) == want) {
        let tmp = out.with_extension(format!("tmp{}", std::process::id()));
        produce(&tmp);
        let got = sha256_file(&tmp);
        assert_eq!(
            got, want,
            "decompressed {rel_out} does not match the corpus SHA256SUMS"
        );
        std::fs::rename(&tmp, &out).expect("rename decompressed copy");
    }
    done.insert(out.clone());
    out
}

/// The decompressed copy of corpus file `rel` (`X.zst` or `X.gz`), made at test time in the
/// target directory (never in the repository) and checked against SHA256SUMS.
pub fn decompressed(rel: &str) -> PathBuf {
    let src = corpus_file(rel);
    let (rel_out, zst) = if let Some(s) = rel.strip_suffix(".zst") {
        (s, true)
    } else if let Some(s) = rel.strip_suffix(".gz") {
        (s, false)
    } else {
        panic!("{rel}: not a .zst or .gz file")
    };
    materialise(rel_out, |tmp| {
        let input = std::fs::File::open(&src).expect("open compressed");
        let mut output = std::fs::File::create(tmp).expect("create scratch file");
        if zst {
            zstd::stream::copy_decode(input, &mut output)
                .unwrap_or_else(|e| panic!("zstd -d {}: {e}", src.display()));
        } else {
            let mut dec = flate2::read::GzDecoder::new(input);
            std::io::copy(&mut dec, &mut output)
                .unwrap_or_else(|e| panic!("gunzip {}: {e}", src.display()));
        }
    })
}

/// Member `member` of corpus zip `zip_rel`, extracted with `unzip` as the `unz_<name>/` copy
/// that SHA256SUMS describes.
pub fn unzipped(zip_rel: &str, member: &str) -> PathBuf {
    let src = corpus_file(zip_rel);
    let stem = zip_rel.strip_suffix(".zip").expect(".zip");
    let (dir, name) = stem.rsplit_once('/').unwrap_or(("", stem));
    let rel_out = if dir.is_empty() {
        format!("unz_{name}/{member}")
    } else {
        format!("{dir}/unz_{name}/{member}")
    };
    materialise(&rel_out, |tmp| {
        let out = Command::new("unzip")
            .arg("-p")
            .arg(&src)
            .arg(member)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run unzip: {e} (apt-get install unzip; scripts/test.sh does)")
            });
        assert!(
            out.status.success(),
            "unzip -p {} {member} failed",
            src.display()
        );
        std::fs::write(tmp, out.stdout).expect("write scratch file");
    })
}

pub fn open_ext(img: &Path, opts: &OpenOptions) -> Result<ExtFs, Box<guestctl_fs::Error>> {
    let dev: Arc<dyn BlockDevice> = Arc::new(RawFile::open(img).expect("open image file"));
    ExtFs::open(dev, opts).map_err(Box::new)
}

pub fn open_default(img: &Path) -> ExtFs {
    open_ext(img, &OpenOptions::default()).unwrap_or_else(|e| panic!("open {}: {e}", img.display()))
}

/// Opens any container (raw, qcow2, vmdk) through guestctl-formats, then the ext filesystem.
pub fn open_container(img: &Path) -> ExtFs {
    let image = guestctl_formats::open_image(img, &guestctl_formats::OpenOptions::default())
        .unwrap_or_else(|e| panic!("open_image {}: {e}", img.display()));
    ExtFs::open(image.device(), &OpenOptions::default())
        .unwrap_or_else(|e| panic!("ExtFs::open on {}: {e}", img.display()))
}

pub fn kind_char(t: FileType) -> char {
    t.type_char()
}

/// File contents as read through the trait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// The bytes themselves when the file is at most [`KEEP_BYTES`] long.
    pub bytes: Option<Vec<u8>>,
    pub len: u64,
    pub sha256: String,
    pub md5: String,
}

pub const KEEP_BYTES: u64 = 64 * 1024;

/// Reads a whole file through `read_at` in odd-sized chunks (so reads straddle blocks).
pub fn read_all(
    fs: &dyn Filesystem,
    node: NodeId,
    size: u64,
) -> Result<Content, Box<guestctl_fs::Error>> {
    let mut sha = Sha256::new();
    let mut md5 = Md5::new();
    let mut kept = (size <= KEEP_BYTES).then(Vec::new);
    let mut buf = vec![0u8; 1_000_003];
    let mut off = 0u64;
    loop {
        let n = fs.read_at(node, off, &mut buf).map_err(Box::new)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        md5.update(&buf[..n]);
        if let Some(k) = kept.as_mut() {
            k.extend_from_slice(&buf[..n]);
        }
        off += n as u64;
        assert!(off <= size, "inode {}: read past the size {size}", node.0);
    }
    Ok(Content {
        bytes: kept,
        len: off,
        sha256: format!("{:x}", sha.finalize()),
        md5: format!("{:x}", md5.finalize()),
    })
}

/// One node as our reader sees it; errors are kept, not raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub ino: u64,
    /// Type from the inode ([`kind_char`]).
    pub kind: char,
    /// Type from the directory entry ('?' when the entry does not say).
    pub entry_kind: char,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub allocated: u64,
    pub mtime: Option<guestctl_fs::Timestamp>,
    pub target: Option<Result<Vec<u8>, ErrorKind>>,
    pub content: Option<Result<Content, ErrorKind>>,
    /// For directories whose listing failed: why.
    pub list_error: Option<ErrorKind>,
}

/// Walks the whole tree (including lost+found) through the trait. Every path is relative
/// to the root, components joined with '/'.
pub fn walk(fs: &dyn Filesystem) -> BTreeMap<Vec<u8>, Seen> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(Vec::new(), fs.root())];
    let mut dirs = 0usize;
    while let Some((prefix, dir)) = stack.pop() {
        dirs += 1;
        assert!(dirs < 1_000_000, "directory walk does not end");
        let entries = match fs.read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                if let Some(s) = out.get_mut(&prefix) {
                    let s: &mut Seen = s;
                    s.list_error = Some(e.kind());
                    continue;
                }
                panic!("read_dir of the root: {e}");
            }
        };
        for e in entries {
            let mut path = prefix.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&e.name);
            let md = fs.metadata(e.node).unwrap_or_else(|err| {
                panic!("metadata of {}: {err}", String::from_utf8_lossy(&path))
            });
            let kind = kind_char(md.file_type);
            let seen = Seen {
                ino: e.node.0,
                kind,
                entry_kind: kind_char(e.file_type),
                size: md.size,
                mode: md.mode,
                uid: md.uid,
                gid: md.gid,
                nlink: md.nlink,
                allocated: md.allocated,
                mtime: md.mtime,
                target: (kind == 'l').then(|| fs.read_link(e.node).map_err(|x| x.kind())),
                content: (kind == 'f').then(|| read_all(fs, e.node, md.size).map_err(|x| x.kind())),
                list_error: None,
            };
            if kind == 'd' {
                stack.push((path.clone(), e.node));
            }
            assert!(
                out.insert(path.clone(), seen).is_none(),
                "{} listed twice",
                String::from_utf8_lossy(&path)
            );
        }
    }
    out
}

/// What the upstream answer sheet says a path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// A directory (its entries are listed separately).
    Dir,
    /// A directory whose listing must be refused as [`ErrorKind::Unsupported`] (encrypted).
    RefusedDir,
    /// A regular file with exactly these bytes.
    File(Vec<u8>),
    /// A regular file of this size and sha256 (big files).
    FileSha(u64, String),
    /// A symlink with this target.
    Link(Vec<u8>),
}

pub fn p(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Compares the walk with the expected tree: same set of paths, and each node as described.
/// Returns the differences as readable lines.
pub fn diff_tree(seen: &BTreeMap<Vec<u8>, Seen>, want: &BTreeMap<Vec<u8>, Want>) -> Vec<String> {
    let mut diffs = Vec::new();
    let show = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
    for (k, w) in want {
        let Some(s) = seen.get(k) else {
            diffs.push(format!("missing: /{}", show(k)));
            continue;
        };
        if s.entry_kind != '?' && s.entry_kind != s.kind {
            diffs.push(format!(
                "/{}: entry says {:?}, inode says {:?}",
                show(k),
                s.entry_kind,
                s.kind
            ));
        }
        let problem = match w {
            Want::Dir if s.kind != 'd' => Some(format!("want a directory, got kind {:?}", s.kind)),
            Want::Dir => s
                .list_error
                .map(|e| format!("directory listing failed: {e:?}")),
            Want::RefusedDir if s.kind != 'd' => {
                Some(format!("want a directory, got kind {:?}", s.kind))
            }
            Want::RefusedDir => (s.list_error != Some(ErrorKind::Unsupported)).then(|| {
                format!(
                    "want the listing refused as Unsupported, got {:?}",
                    s.list_error
                )
            }),
            Want::File(bytes) => match &s.content {
                None => Some(format!("want a regular file, got kind {:?}", s.kind)),
                Some(Err(e)) => Some(format!("read failed: {e:?}")),
                Some(Ok(_)) if s.size != bytes.len() as u64 => {
                    Some(format!("size {} want {}", s.size, bytes.len()))
                }
                Some(Ok(c)) if c.bytes.as_deref() != Some(bytes.as_slice()) => Some(format!(
                    "contents differ: got {:?} want {:?}",
                    c.bytes
                        .as_ref()
                        .map(|b| String::from_utf8_lossy(&b[..b.len().min(64)]).into_owned()),
                    String::from_utf8_lossy(&bytes[..bytes.len().min(64)])
                )),
                _ => None,
            },
            Want::FileSha(len, sha) => match &s.content {
                None => Some(format!("want a regular file, got kind {:?}", s.kind)),
                Some(Err(e)) => Some(format!("read failed: {e:?}")),
                Some(Ok(c)) if s.size != *len || c.len != *len || &c.sha256 != sha => {
                    Some(format!(
                        "size {} (read {}) sha256 {} want size {len} sha256 {sha}",
                        s.size, c.len, c.sha256
                    ))
                }
                _ => None,
            },
            Want::Link(t) => match &s.target {
                None => Some(format!("want a symlink, got kind {:?}", s.kind)),
                Some(Err(e)) => Some(format!("read_link failed: {e:?}")),
                Some(Ok(got)) if got != t || s.size != t.len() as u64 => Some(format!(
                    "target {:?} (size {}) want {:?}",
                    String::from_utf8_lossy(got),
                    s.size,
                    String::from_utf8_lossy(t)
                )),
                _ => None,
            },
        };
        if let Some(pr) = problem {
            diffs.push(format!("/{}: {pr}", show(k)));
        }
    }
    for k in seen.keys() {
        if !want.contains_key(k) {
            diffs.push(format!("extra: /{}", show(k)));
        }
    }
    diffs
}

#[track_caller]
pub fn assert_tree(seen: &BTreeMap<Vec<u8>, Seen>, want: &BTreeMap<Vec<u8>, Want>, what: &str) {
    let d = diff_tree(seen, want);
    assert!(
        d.is_empty(),
        "{what}: {} differences:\n{}",
        d.len(),
        d[..d.len().min(30)].join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// sleuthkit

fn run_tsk(tool: &str, args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let out = Command::new(tool)
        .args(args)
        .env("TZ", "UTC")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {tool}: {e} (apt-get install sleuthkit; scripts/test.sh does)")
        });
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// One allocated name as `fls -r -p` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlsEntry {
    /// Meta (inode) type, in [`kind_char`] letters.
    pub kind: char,
    pub ino: u64,
}

fn tsk_kind(c: u8) -> char {
    match c {
        b'r' => 'f',
        b'd' => 'd',
        b'l' => 'l',
        b'c' => 'c',
        b'b' => 'b',
        b'p' => 'p',
        b'h' => 's',
        _ => '?',
    }
}

/// `fls -r -p`: allocated names only (deleted `*` entries and the virtual `$OrphanFiles`
/// tree are left out, as our reader shows neither).
pub fn fls(img: &Path) -> BTreeMap<Vec<u8>, FlsEntry> {
    let out = run_tsk("fls", &["-r".as_ref(), "-p".as_ref(), img.as_os_str()]);
    let mut m = BTreeMap::new();
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let tab = line
            .iter()
            .position(|&b| b == b'\t')
            .expect("fls line has a tab");
        let (head, name) = (&line[..tab], &line[tab + 1..]);
        let head = String::from_utf8_lossy(head);
        if head.contains('*') || name.starts_with(b"$OrphanFiles") {
            continue;
        }
        let (types, ino) = head.split_once(' ').expect("fls type and inode");
        let ino = ino.trim().trim_end_matches(':');
        let ino = ino.split('-').next().expect("inode").trim();
        let meta = types.as_bytes().get(2).copied().unwrap_or(b'-');
        m.insert(
            name.to_vec(),
            FlsEntry {
                kind: tsk_kind(meta),
                ino: ino.parse().expect("inode number"),
            },
        );
    }
    m
}

/// What `istat` says about an inode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Istat {
    pub allocated: bool,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (0o7777).
    pub mode: u32,
    pub size: u64,
    pub nlink: u32,
    /// Accessed / File Modified / Inode Modified / File Created, as (secs, nanos); nanos is
    /// `None` where istat prints whole seconds.
    pub atime: Option<(i64, Option<u32>)>,
    pub mtime: Option<(i64, Option<u32>)>,
    pub ctime: Option<(i64, Option<u32>)>,
    pub crtime: Option<(i64, Option<u32>)>,
}

pub fn istat(img: &Path, ino: u64) -> Istat {
    let out = run_tsk("istat", &[img.as_os_str(), ino.to_string().as_ref()]);
    let text = String::from_utf8_lossy(&out);
    let mut r = Istat::default();
    for line in text.lines() {
        if line == "Allocated" {
            r.allocated = true;
        } else if let Some(v) = line.strip_prefix("uid / gid: ") {
            let (u, g) = v.split_once(" / ").expect("uid / gid");
            r.uid = u.trim().parse().expect("uid");
            r.gid = g.trim().parse().expect("gid");
        } else if let Some(v) = line.strip_prefix("mode: ") {
            r.mode = perm_bits(v.trim());
        } else if let Some(v) = line.strip_prefix("size: ") {
            r.size = v.trim().parse().expect("size");
        } else if let Some(v) = line.strip_prefix("num of links: ") {
            r.nlink = v.trim().parse().expect("links");
        } else if let Some(v) = line.strip_prefix("Accessed:\t") {
            r.atime = Some(parse_tsk_time(v));
        } else if let Some(v) = line.strip_prefix("File Modified:\t") {
            r.mtime = Some(parse_tsk_time(v));
        } else if let Some(v) = line.strip_prefix("Inode Modified:\t") {
            r.ctime = Some(parse_tsk_time(v));
        } else if let Some(v) = line.strip_prefix("File Created:\t") {
            r.crtime = Some(parse_tsk_time(v));
        }
    }
    r
}

/// `rrw-r-sr-t` (type letter + 9 permission letters) to permission bits.
fn perm_bits(s: &str) -> u32 {
    let c: Vec<char> = s.chars().skip(1).collect();
    assert_eq!(c.len(), 9, "istat mode {s:?}");
    let mut m = 0;
    for (i, ch) in c.iter().enumerate() {
        let bit = 1 << (8 - i);
        match (i % 3, ch) {
            (_, '-') => {}
            (0, 'r') | (1, 'w') | (2, 'x') => m |= bit,
            (2, 's') | (2, 't') => m |= bit | special(i),
            (2, 'S') | (2, 'T') => m |= special(i),
            _ => panic!("istat mode {s:?}"),
        }
    }
    m
}

fn special(i: usize) -> u32 {
    match i {
        2 => 0o4000,
        5 => 0o2000,
        _ => 0o1000,
    }
}

/// `2003-11-23 20:06:28(.123456789) (UTC)` -> (secs, nanos when printed).
pub fn parse_tsk_time(s: &str) -> (i64, Option<u32>) {
    let s = s.trim().trim_end_matches("(UTC)").trim();
    let (date, time) = s.split_once(' ').expect("date and time");
    match time.split_once('.') {
        Some((hms, frac)) => {
            let nanos: u32 = format!("{frac:0<9}")[..9].parse().expect("nanos");
            (civil_secs(date, hms), Some(nanos))
        }
        None => (civil_secs(date, time), None),
    }
}

/// `YYYY-MM-DD`, `HH:MM:SS` (UTC) -> seconds since the epoch.
pub fn civil_secs(date: &str, hms: &str) -> i64 {
    let d: Vec<i64> = date.split('-').map(|x| x.parse().expect("date")).collect();
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().expect("time")).collect();
    let (y, m, day) = (d[0], d[1], d[2]);
    // Days from civil (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]
}

/// Compares our metadata of every walked node with `istat` of its inode.
///
/// sleuthkit decodes the extra (nanosecond, creation-time) inode fields on ext4 only, while
/// the kernel (and debugfs) also use them on ext2/ext3 images with 256-byte inodes. So the
/// nanoseconds are compared where istat prints them, and the creation time where istat
/// shows one.
pub fn istat_diffs(img: &Path, seen: &BTreeMap<Vec<u8>, Seen>, fs: &dyn Filesystem) -> Vec<String> {
    let mut diffs = Vec::new();
    for (path, s) in seen {
        let want = istat(img, s.ino);
        let md = fs.metadata(NodeId(s.ino)).expect("metadata");
        let like = |t: Option<guestctl_fs::Timestamp>, w: Option<(i64, Option<u32>)>| {
            t.map(|t| (t.secs, w.and_then(|w| w.1).map(|_| t.nanos)))
        };
        let got = Istat {
            allocated: true,
            uid: md.uid,
            gid: md.gid,
            mode: md.mode,
            size: md.size,
            nlink: md.nlink,
            atime: like(md.atime, want.atime),
            mtime: like(md.mtime, want.mtime),
            ctime: like(md.ctime, want.ctime),
            crtime: if want.crtime.is_some() {
                like(md.crtime, want.crtime)
            } else {
                None
            },
        };
        if got != want {
            diffs.push(format!(
                "/{} (inode {}):\n   ours  {got:?}\n   istat {want:?}",
                String::from_utf8_lossy(path),
                s.ino
            ));
        }
    }
    diffs
}
