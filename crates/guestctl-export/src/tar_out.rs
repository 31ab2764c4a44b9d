//! `tar-out`: a directory of a guest filesystem as a streaming GNU tar archive.
//!
//! Entry names are `./`, `./etc/`, `./etc/passwd` (as `tar -C DIR -cf - .` and virt-tar-out
//! write them); names over 100 bytes get a GNU long-name (`L`) or long-link (`K`) entry, so any
//! length and non-UTF-8 bytes survive. Owners, permission bits (with setuid/setgid/sticky),
//! mtimes (a PAX `mtime` record when there are nanoseconds or the time is negative), symlinks,
//! hard links (the second and later paths of an inode with more than one link become link
//! entries), character and block devices with their numbers and fifos are stored; sockets are
//! skipped (tar cannot store them). `xattrs`: PAX `SCHILY.xattr.NAME` records, as GNU tar's
//! `--xattrs` writes and reads them.
//!
//! Speed: small files are collected into batches (at most [`BATCH_BYTES`] of data or
//! [`BATCH_ENTRIES`] entries) whose contents, symlink targets and xattrs are read by rayon
//! workers and then written in walk order; larger files are streamed in [`CHUNK`]-sized pieces,
//! several read in parallel at a time. Memory stays bounded by those sizes.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use guestctl_fs::{resolve_path, FileType, Filesystem, NodeId, Xattr};
use rayon::prelude::*;

use crate::error::show;
use crate::owners::Owners;
use crate::walk::{guest_path, walk, Item, Visit, Visitor};
use crate::{Error, Excludes, Result, Sink, Summary};

/// Files up to this size are read whole into a batch; larger ones are streamed.
const SMALL_FILE: u64 = 1 << 20;
/// Most file data held by one batch.
pub const BATCH_BYTES: u64 = 32 << 20;
/// Most entries in one batch.
pub const BATCH_ENTRIES: usize = 4096;
/// Piece size for streaming large files.
pub const CHUNK: usize = 4 << 20;
/// Size of the output buffer in front of the compressor / file.
const OUT_BUF: usize = 1 << 20;

/// Compression of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Plain tar.
    #[default]
    None,
    /// gzip (level 6, like `gzip`).
    Gzip,
    /// zstd (level 3, like `zstd`).
    Zstd,
}

/// How to write the archive.
#[derive(Debug, Clone, Default)]
pub struct TarOptions {
    /// Compression.
    pub compression: Compression,
    /// Store only numeric uid/gid (no user/group names).
    pub numeric_owner: bool,
    /// Store extended attributes as PAX `SCHILY.xattr.*` records.
    pub xattrs: bool,
    /// Entries to leave out (excluded directories are not descended).
    pub excludes: Excludes,
}

/// Where the archive goes.
#[derive(Debug)]
pub enum TarOutput<'a, W: Write> {
    /// A file: written as `.NAME.XXXXXX.part` beside it and renamed when complete.
    Path(&'a Path),
    /// A stream (stdout), written as the walk goes.
    Writer(W),
}

/// Writes the guest directory `dir` (symlinks in the path are followed inside the guest) as a
/// tar archive. Per-entry failures go to `sink` and the archive is still completed; a fatal
/// error (the directory does not exist, the output cannot be written) removes the temporary
/// output and returns `Err`.
pub fn tar_out<W: Write + Send>(
    fs: &dyn Filesystem,
    dir: &str,
    out: TarOutput<'_, W>,
    opts: &TarOptions,
    sink: &mut Sink<'_>,
) -> Result<Summary> {
    let base = dir.as_bytes();
    let node =
        resolve_path(fs, base, true).map_err(|e| Error::guest(base, "cannot open directory", e))?;
    let meta = fs
        .metadata(node)
        .map_err(|e| Error::guest(base, "cannot read metadata", e))?;
    if meta.file_type != FileType::Directory {
        return Err(Error::InvalidInput(format!(
            "{}: not a directory (tar-out exports a directory)",
            show(base)
        )));
    }
    let start = Item {
        rel: Vec::new(),
        node,
        meta,
    };
    let owners = (!opts.numeric_owner).then(|| Owners::load(fs));
    match out {
        TarOutput::Writer(w) => {
            let label = PathBuf::from("<stdout>");
            let w = std::io::BufWriter::with_capacity(OUT_BUF, w);
            let mut w = write_archive(fs, base, start, w, opts, owners, sink, &label)?;
            w.flush()
                .map_err(|e| Error::host(&label, "cannot write the archive", e))?;
        }
        TarOutput::Path(path) => {
            let tmp = temp_output(path)?;
            let file = tmp
                .as_file()
                .try_clone()
                .map_err(|e| Error::host(tmp.path(), "cannot use the temporary output", e))?;
            let w = std::io::BufWriter::with_capacity(OUT_BUF, file);
            let w = write_archive(fs, base, start, w, opts, owners, sink, path)?;
            w.into_inner()
                .map_err(|e| Error::host(path, "cannot write the archive", e.into_error()))?;
            tmp.persist(path).map_err(|e| {
                Error::host(
                    path,
                    "cannot rename the finished archive into place",
                    e.error,
                )
            })?;
        }
    }
    Ok(sink.summary())
}

/// A temporary file beside `dst` (`.NAME.XXXXXX.part`), removed if dropped unfinished.
fn temp_output(dst: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // 0666 less the umask, like any file a command creates (tempfile's default is 0600).
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".part")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(|e| Error::host(dir, "cannot create the temporary output file", e))
}

/// The compressor in front of the output.
enum Enc<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::Encoder<'static, W>),
}

impl<W: Write> Write for Enc<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Enc::Plain(w) => w.write(buf),
            Enc::Gzip(w) => w.write(buf),
            Enc::Zstd(w) => w.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Enc::Plain(w) => w.write_all(buf),
            Enc::Gzip(w) => w.write_all(buf),
            Enc::Zstd(w) => w.write_all(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Enc::Plain(w) => w.flush(),
            Enc::Gzip(w) => w.flush(),
            Enc::Zstd(w) => w.flush(),
        }
    }
}

impl<W: Write> Enc<W> {
    fn new(w: W, c: Compression) -> std::io::Result<Self> {
        Ok(match c {
            Compression::None => Enc::Plain(w),
            Compression::Gzip => Enc::Gzip(flate2::write::GzEncoder::new(
                w,
                flate2::Compression::new(6),
            )),
            Compression::Zstd => {
                let mut e = zstd::Encoder::new(w, 3)?;
                // zstd's own worker threads: compression is the bottleneck of `tar-out
                // --compress zstd`, and reading is already parallel.
                let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
                if workers > 1 {
                    e.multithread(u32::try_from(workers).unwrap_or(1))?;
                }
                Enc::Zstd(e)
            }
        })
    }
    fn finish(self) -> std::io::Result<W> {
        match self {
            Enc::Plain(w) => Ok(w),
            Enc::Gzip(w) => w.finish(),
            Enc::Zstd(w) => w.finish(),
        }
    }
}

/// Bytes handed to the compressor thread at a time.
const PIPE_BUF: usize = 1 << 20;
/// Buffers in flight between the tar writer and the compressor thread.
const PIPE_DEPTH: usize = 4;

/// The tar stream's end of the pipe to the compressor thread.
struct Pipe {
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    buf: Vec<u8>,
}

impl Pipe {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(PIPE_BUF));
        match &self.tx {
            Some(tx) => tx.send(full).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the compressor stopped")
            }),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "pipe closed",
            )),
        }
    }
}

impl Write for Pipe {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(PIPE_BUF - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= PIPE_BUF {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes the archive to `w`, compressed as asked. Compression runs on its own thread fed
/// through a bounded channel, so it overlaps reading the guest and building the stream (like
/// `tar | zstd`).
#[allow(clippy::too_many_arguments)]
fn write_archive<W: Write + Send>(
    fs: &dyn Filesystem,
    base: &[u8],
    start: Item,
    w: W,
    opts: &TarOptions,
    owners: Option<Owners>,
    sink: &mut Sink<'_>,
    label: &Path,
) -> Result<W> {
    let c = opts.compression;
    if c == Compression::None {
        return build(fs, base, start, w, opts, owners, sink, label);
    }
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(PIPE_DEPTH);
        let compressor = s.spawn(move || -> std::io::Result<W> {
            let mut enc = Enc::new(w, c)?;
            for buf in rx {
                enc.write_all(&buf)?;
            }
            enc.finish()
        });
        let pipe = Pipe {
            tx: Some(tx),
            buf: Vec::with_capacity(PIPE_BUF),
        };
        let built = build(fs, base, start, pipe, opts, owners, sink, label).and_then(|mut p| {
            p.send()
                .map_err(|e| Error::host(label, "cannot write the archive", e))?;
            p.tx = None;
            Ok(())
        });
        // Whether `built` failed or not, its pipe end is dropped now: the thread ends.
        let joined = compressor.join();
        match (built, joined) {
            (_, Ok(Err(e))) => Err(Error::host(label, "cannot write the compressed archive", e)),
            (_, Err(_)) => Err(Error::host(
                label,
                "the compressor thread failed",
                std::io::Error::other("panicked"),
            )),
            (Err(e), Ok(Ok(_))) => Err(e),
            (Ok(()), Ok(Ok(w))) => Ok(w),
        }
    })
}

/// Walks and writes the tar stream into `o`; returns `o` after the end-of-archive blocks.
#[allow(clippy::too_many_arguments)]
fn build<O: Write>(
    fs: &dyn Filesystem,
    base: &[u8],
    start: Item,
    o: O,
    opts: &TarOptions,
    owners: Option<Owners>,
    sink: &mut Sink<'_>,
    label: &Path,
) -> Result<O> {
    let mut v = TarVisitor {
        fs,
        base,
        opts,
        owners,
        label,
        builder: tar::Builder::new(o),
        claimed: HashMap::new(),
        failed_inodes: HashSet::new(),
        batch: Vec::new(),
        batch_bytes: 0,
        chunks: Vec::new(),
    };
    walk(fs, base, start, &opts.excludes, sink, &mut v)?;
    v.flush(sink)?;
    v.builder
        .into_inner()
        .map_err(|e| Error::host(label, "cannot write the archive", e))
}

/// How an entry's body is produced.
#[derive(Debug)]
enum Body {
    /// No data (directory, device, fifo, ...).
    None,
    /// A small regular file: read in the batch.
    Small,
    /// A second path of an inode: a hard-link entry to this name.
    HardLink(Vec<u8>),
    /// A symlink: its target is read in the batch.
    Symlink,
}

struct Pending {
    item: Item,
    /// Archive name (`./...`).
    name: Vec<u8>,
    body: Body,
}

/// What the rayon workers read for one pending entry.
#[derive(Default)]
struct Loaded {
    data: Option<guestctl_fs::Result<Vec<u8>>>,
    target: Option<guestctl_fs::Result<Vec<u8>>>,
    xattrs: Option<guestctl_fs::Result<Vec<Xattr>>>,
}

struct TarVisitor<'a, W: Write> {
    fs: &'a dyn Filesystem,
    base: &'a [u8],
    opts: &'a TarOptions,
    owners: Option<Owners>,
    label: &'a Path,
    builder: tar::Builder<W>,
    /// node → first archive name, for hard links. Keyed by node id, not inode number: in a
    /// tree of several mounted filesystems, inode numbers repeat across them; node ids don't.
    claimed: HashMap<NodeId, Vec<u8>>,
    /// Nodes whose first path could not be stored.
    failed_inodes: HashSet<NodeId>,
    batch: Vec<Pending>,
    batch_bytes: u64,
    /// Reused buffers for streaming large files.
    chunks: Vec<Vec<u8>>,
}

fn archive_name(rel: &[u8], dir: bool) -> Vec<u8> {
    let mut n = Vec::with_capacity(rel.len() + 3);
    n.extend_from_slice(b"./");
    n.extend_from_slice(rel);
    if dir && !rel.is_empty() {
        n.push(b'/');
    }
    n
}

/// Reads `buf.len()` bytes at `off` (short only at the end of the file).
fn read_full(
    fs: &dyn Filesystem,
    node: NodeId,
    off: u64,
    buf: &mut [u8],
) -> guestctl_fs::Result<usize> {
    fs.read_full_at(node, off, buf)
}

fn read_small(fs: &dyn Filesystem, node: NodeId, size: u64) -> guestctl_fs::Result<Vec<u8>> {
    // size <= SMALL_FILE, checked by the caller.
    let mut buf = vec![0u8; size as usize];
    let n = read_full(fs, node, 0, &mut buf)?;
    if n < buf.len() {
        return Err(guestctl_fs::Error::corrupt(format!(
            "file ended after {n} of {size} bytes"
        )));
    }
    Ok(buf)
}

/// One PAX record: `LEN KEY=VALUE\n`, LEN counting itself.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    loop {
        let total = rest + len.to_string().len();
        if total == len {
            break;
        }
        len = total;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

impl<W: Write> TarVisitor<'_, W> {
    fn io(&self, e: std::io::Error) -> Error {
        Error::host(self.label, "cannot write the archive", e)
    }

    /// A GNU `L`/`K` entry carrying a long name.
    fn long_entry(&mut self, kind: u8, data: &[u8]) -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64 + 1);
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_cksum();
        let mut body = Vec::with_capacity(data.len() + 1);
        body.extend_from_slice(data);
        body.push(0);
        self.builder
            .append(&h, body.as_slice())
            .map_err(|e| self.io(e))
    }

    /// Writes the extended headers for `p` and returns its main header (without checksum).
    fn header(
        &mut self,
        p: &Pending,
        size: u64,
        link: Option<&[u8]>,
        xattrs: &[Xattr],
        sink: &mut Sink<'_>,
    ) -> Result<tar::Header> {
        let m = &p.item.meta;
        let mut pax = Vec::new();
        let (secs, nanos) = m.mtime.map_or((0, 0), |t| (t.secs, t.nanos));
        if nanos != 0 || secs < 0 {
            let v = if nanos != 0 {
                let sign = if secs < 0 && nanos != 0 { "-" } else { "" };
                // secs.nanos with floor semantics: -1.5 s is secs=-2, nanos=5e8.
                let (s, n) = if secs < 0 {
                    (-(secs + 1), 1_000_000_000 - nanos)
                } else {
                    (secs, nanos)
                };
                format!("{sign}{s}.{n:09}")
            } else {
                secs.to_string()
            };
            pax_record(&mut pax, b"mtime", v.as_bytes());
        }
        for x in xattrs {
            if x.name.is_empty() || x.name.contains(&b'=') || x.name.contains(&0) {
                sink.error(Error::skipped(
                    &guest_path(self.base, &p.item.rel),
                    format!("xattr {} not stored: unusable name", show(&x.name)),
                ));
                continue;
            }
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(&x.name);
            pax_record(&mut pax, &key, &x.value);
        }
        if !pax.is_empty() {
            let mut h = tar::Header::new_gnu();
            let base = p
                .name
                .rsplit(|&b| b == b'/')
                .find(|c| !c.is_empty())
                .unwrap_or(b".");
            let mut n = b"./PaxHeaders/".to_vec();
            n.extend_from_slice(&base[..base.len().min(100 - n.len())]);
            h.as_old_mut().name[..n.len()].copy_from_slice(&n);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(pax.len() as u64);
            h.set_entry_type(tar::EntryType::XHeader);
            h.set_cksum();
            self.builder
                .append(&h, pax.as_slice())
                .map_err(|e| self.io(e))?;
        }
        if p.name.len() > 100 {
            self.long_entry(b'L', &p.name)?;
        }
        if let Some(l) = link.filter(|l| l.len() > 100) {
            self.long_entry(b'K', l)?;
        }
        let mut h = tar::Header::new_gnu();
        let n = p.name.len().min(100);
        h.as_old_mut().name[..n].copy_from_slice(&p.name[..n]);
        if let Some(l) = link {
            let n = l.len().min(100);
            h.as_old_mut().linkname[..n].copy_from_slice(&l[..n]);
        }
        h.set_mode(m.mode & 0o7777);
        h.set_uid(u64::from(m.uid));
        h.set_gid(u64::from(m.gid));
        h.set_mtime(u64::try_from(secs).unwrap_or(0));
        h.set_size(size);
        if let Some(o) = &self.owners {
            if let Some(g) = h.as_gnu_mut() {
                if let Some(u) = o.user(m.uid) {
                    g.uname[..u.len()].copy_from_slice(u);
                }
                if let Some(n) = o.group(m.gid) {
                    g.gname[..n.len()].copy_from_slice(n);
                }
            }
        }
        Ok(h)
    }

    /// Reads everything the batch needs in parallel, then writes it in order.
    fn flush(&mut self, sink: &mut Sink<'_>) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let fs = self.fs;
        let want_x = self.opts.xattrs;
        let loaded: Vec<Loaded> = batch
            .par_iter()
            .map(|p| {
                let mut l = Loaded::default();
                match p.body {
                    Body::Small => l.data = Some(read_small(fs, p.item.node, p.item.meta.size)),
                    Body::Symlink => l.target = Some(fs.read_link(p.item.node)),
                    Body::None | Body::HardLink(_) => {}
                }
                if want_x {
                    l.xattrs = Some(fs.xattrs(p.item.node));
                }
                l
            })
            .collect();
        for (p, l) in batch.iter().zip(loaded) {
            self.write_one(p, l, sink)?;
        }
        Ok(())
    }

    fn take_xattrs(
        &self,
        p: &Pending,
        x: Option<guestctl_fs::Result<Vec<Xattr>>>,
        sink: &mut Sink<'_>,
    ) -> Vec<Xattr> {
        match x {
            Some(Ok(x)) => x,
            Some(Err(e)) => {
                sink.error(Error::guest(
                    &guest_path(self.base, &p.item.rel),
                    "cannot read extended attributes",
                    e,
                ));
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    fn fail(
        &mut self,
        p: &Pending,
        what: &'static str,
        e: guestctl_fs::Error,
        sink: &mut Sink<'_>,
    ) {
        if p.item.meta.nlink > 1 {
            self.failed_inodes.insert(p.item.node);
        }
        sink.error(Error::guest(&guest_path(self.base, &p.item.rel), what, e));
    }

    fn write_one(&mut self, p: &Pending, l: Loaded, sink: &mut Sink<'_>) -> Result<()> {
        let xattrs = self.take_xattrs(p, l.xattrs, sink);
        let m = &p.item.meta;
        match &p.body {
            Body::Small => {
                let data = match l.data {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => {
                        self.fail(p, "cannot read file", e, sink);
                        return Ok(());
                    }
                    None => Vec::new(),
                };
                let mut h = self.header(p, data.len() as u64, None, &xattrs, sink)?;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_cksum();
                self.builder
                    .append(&h, data.as_slice())
                    .map_err(|e| self.io(e))?;
                sink.bytes(data.len() as u64);
            }
            Body::HardLink(target) => {
                if self.failed_inodes.contains(&p.item.node) {
                    sink.error(Error::skipped(
                        &guest_path(self.base, &p.item.rel),
                        "hard link not stored: its first path could not be read",
                    ));
                    return Ok(());
                }
                let mut h = self.header(p, 0, Some(target), &xattrs, sink)?;
                h.set_entry_type(tar::EntryType::Link);
                h.set_cksum();
                self.builder
                    .append(&h, std::io::empty())
                    .map_err(|e| self.io(e))?;
            }
            Body::Symlink => {
                let target = match l.target {
                    Some(Ok(t)) => t,
                    Some(Err(e)) => {
                        self.fail(p, "cannot read symlink", e, sink);
                        return Ok(());
                    }
                    None => Vec::new(),
                };
                if target.contains(&0) {
                    self.fail(
                        p,
                        "symlink not stored",
                        guestctl_fs::Error::corrupt("target contains a NUL byte"),
                        sink,
                    );
                    return Ok(());
                }
                let mut h = self.header(p, 0, Some(&target), &xattrs, sink)?;
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_cksum();
                self.builder
                    .append(&h, std::io::empty())
                    .map_err(|e| self.io(e))?;
            }
            Body::None => {
                let mut h = self.header(p, 0, None, &xattrs, sink)?;
                let t = match m.file_type {
                    FileType::Directory => tar::EntryType::Directory,
                    FileType::CharDevice => tar::EntryType::Char,
                    FileType::BlockDevice => tar::EntryType::Block,
                    FileType::Fifo => tar::EntryType::Fifo,
                    _ => tar::EntryType::Regular,
                };
                h.set_entry_type(t);
                if let Some((major, minor)) = m.rdev {
                    if matches!(m.file_type, FileType::CharDevice | FileType::BlockDevice) {
                        let r = h
                            .set_device_major(major)
                            .and_then(|()| h.set_device_minor(minor));
                        if let Err(e) = r {
                            sink.error(Error::host(
                                self.label,
                                format!("{}: device number not stored", show(&p.name)),
                                e,
                            ));
                        }
                    }
                }
                h.set_cksum();
                self.builder
                    .append(&h, std::io::empty())
                    .map_err(|e| self.io(e))?;
            }
        }
        sink.entry();
        Ok(())
    }

    /// Streams a large regular file: header, then pieces read in parallel, then padding.
    fn stream(&mut self, p: &Pending, sink: &mut Sink<'_>) -> Result<()> {
        let xattrs = if self.opts.xattrs {
            self.take_xattrs(p, Some(self.fs.xattrs(p.item.node)), sink)
        } else {
            Vec::new()
        };
        let size = p.item.meta.size;
        let mut h = self.header(p, size, None, &xattrs, sink)?;
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        let par = rayon::current_num_threads().clamp(2, 8) * 2;
        if self.chunks.len() < par {
            self.chunks.resize_with(par, || vec![0u8; CHUNK]);
        }
        let fs = self.fs;
        let node = p.item.node;
        let mut chunks = std::mem::take(&mut self.chunks);
        let w = self.builder.get_mut();
        let r = (|| -> Result<Option<guestctl_fs::Error>> {
            w.write_all(h.as_bytes())
                .map_err(|e| Error::host(self.label, "cannot write the archive", e))?;
            let mut off = 0u64;
            let mut first_err = None;
            while off < size {
                let n_chunks = (size - off).div_ceil(CHUNK as u64).min(par as u64) as usize;
                let results: Vec<(usize, Option<guestctl_fs::Error>)> = chunks[..n_chunks]
                    .par_iter_mut()
                    .enumerate()
                    .map(|(i, buf)| {
                        let o = off + (i * CHUNK) as u64;
                        let want = (size - o).min(CHUNK as u64) as usize;
                        match read_full(fs, node, o, &mut buf[..want]) {
                            Ok(n) if n == want => (want, None),
                            Ok(n) => {
                                buf[n..want].fill(0);
                                (
                                    want,
                                    Some(guestctl_fs::Error::corrupt(format!(
                                        "file ended at byte {} of {size}; padded with zeros",
                                        o + n as u64
                                    ))),
                                )
                            }
                            Err(e) => {
                                buf[..want].fill(0);
                                (want, Some(e))
                            }
                        }
                    })
                    .collect();
                for (buf, (want, err)) in chunks.iter().zip(results) {
                    w.write_all(&buf[..want])
                        .map_err(|e| Error::host(self.label, "cannot write the archive", e))?;
                    off += want as u64;
                    if first_err.is_none() {
                        first_err = err;
                    }
                }
            }
            let pad = (512 - (size % 512) as usize) % 512;
            w.write_all(&[0u8; 512][..pad])
                .map_err(|e| Error::host(self.label, "cannot write the archive", e))?;
            Ok(first_err)
        })();
        self.chunks = chunks;
        if let Some(e) = r? {
            sink.error(Error::guest(
                &guest_path(self.base, &p.item.rel),
                "cannot read file (the archived copy is zero-filled from there)",
                e,
            ));
        }
        sink.bytes(size);
        sink.entry();
        Ok(())
    }
}

impl<W: Write> Visitor for TarVisitor<'_, W> {
    fn entry(&mut self, item: &Item, sink: &mut Sink<'_>) -> Result<Visit> {
        let m = &item.meta;
        let is_dir = m.file_type == FileType::Directory;
        let name = archive_name(&item.rel, is_dir);
        let mut body = match m.file_type {
            FileType::Regular => Body::Small,
            FileType::Symlink => Body::Symlink,
            FileType::Directory | FileType::CharDevice | FileType::BlockDevice | FileType::Fifo => {
                Body::None
            }
            FileType::Socket => {
                sink.warning(Error::skipped(
                    &guest_path(self.base, &item.rel),
                    "socket ignored (tar cannot store sockets)",
                ));
                return Ok(Visit::Skip);
            }
            _ => {
                sink.error(Error::skipped(
                    &guest_path(self.base, &item.rel),
                    "skipped: unknown file type",
                ));
                return Ok(Visit::Skip);
            }
        };
        if !is_dir && m.nlink > 1 {
            if let Some(first) = self.claimed.get(&item.node) {
                body = Body::HardLink(first.clone());
            } else {
                self.claimed.insert(item.node, name.clone());
            }
        }
        let big = matches!(body, Body::Small) && m.size > SMALL_FILE;
        let p = Pending {
            item: item.clone(),
            name,
            body,
        };
        if big {
            self.flush(sink)?;
            self.stream(&p, sink)?;
        } else {
            if matches!(p.body, Body::Small) {
                self.batch_bytes += m.size;
            }
            self.batch.push(p);
            if self.batch_bytes >= BATCH_BYTES || self.batch.len() >= BATCH_ENTRIES {
                self.flush(sink)?;
            }
        }
        Ok(Visit::Descend)
    }

    fn leave(&mut self, _item: &Item, _sink: &mut Sink<'_>) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        let mut v = Vec::new();
        pax_record(&mut v, b"mtime", b"1.5");
        assert_eq!(v, b"13 mtime=1.5\n");
        let mut v = Vec::new();
        pax_record(&mut v, b"k", &[b'x'; 93]);
        // 1 + 93 + 3 = 97 bytes + "100" would be 100 bytes? 97 + 2 digits = 99.
        assert_eq!(v.len(), 99);
        assert!(v.starts_with(b"99 "));
        let mut v = Vec::new();
        pax_record(&mut v, b"k", &[b'x'; 94]);
        assert_eq!(v.len(), 101);
        assert!(v.starts_with(b"101 "));
    }

    #[test]
    fn names_look_like_gnu_tar() {
        assert_eq!(archive_name(b"", true), b"./");
        assert_eq!(archive_name(b"etc", true), b"./etc/");
        assert_eq!(archive_name(b"etc/passwd", false), b"./etc/passwd");
    }
}
