//! `guestctl filesystems`, `ls`, `cat`, `stat`: browse guest filesystems in process.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use guestctl::fs::{resolve_path, walk, FileType, Filesystem, Metadata, NodeId, Timestamp};
use guestctl::{DefaultMountError, Guestfs};

use super::ImageOpts;

/// Disks and which filesystem to use, shared by the file commands.
#[derive(Args, Debug)]
pub(crate) struct Disks {
    /// The disk image.
    image: PathBuf,
    /// More disks (the second is /dev/sdb, ...).
    #[arg(short = 'a', long = "add", value_name = "IMAGE")]
    add: Vec<PathBuf>,
    /// Mount DEV (as `guestctl filesystems` names it: /dev/sda1) at MOUNTPOINT (default /).
    /// Repeat to build the guest's tree: `-m /dev/sda2 -m /dev/sda1:/boot`. Default: when the
    /// disks hold one operating system, its own mounts from its /etc/fstab; otherwise the only
    /// readable filesystem there is, unless other devices are unreadable (btrfs, LUKS, ZFS,
    /// ...) and it does not look like a root (no /etc with /usr, /bin, /sbin or /lib, no
    /// /Windows/System32): then guestctl refuses to guess and lists what it found.
    #[arg(short = 'm', long = "mount", value_name = "DEV[:MOUNTPOINT]")]
    mount: Vec<String>,
    #[command(flatten)]
    image_opts: ImageOpts,
}

impl Disks {
    fn launch(&self) -> anyhow::Result<Guestfs> {
        let g = Guestfs::new()?;
        for p in std::iter::once(&self.image).chain(&self.add) {
            g.add_drive_with(p, self.image_opts.open_options())?;
        }
        g.launch()?;
        Ok(g)
    }

    pub(crate) fn filesystem(&self) -> anyhow::Result<Arc<dyn Filesystem>> {
        let g = self.launch()?;
        if !self.mount.is_empty() {
            let mounts: Vec<(String, String)> = self
                .mount
                .iter()
                .map(|m| match m.split_once(':') {
                    Some((dev, mp)) => (dev.to_string(), mp.to_string()),
                    None => (m.clone(), "/".to_string()),
                })
                .collect();
            return g
                .mount_tree(&mounts)
                .with_context(|| format!("cannot mount {}", self.mount.join(" ")));
        }
        let mut notes = Vec::new();
        let tree = g.mount_default(&mut notes);
        for n in &notes {
            eprintln!("guestctl: note: {n}");
        }
        match tree {
            Ok(tree) => Ok(tree),
            Err(e @ DefaultMountError::Ambiguous { .. }) => {
                bail!("{e}; choose with -m DEV[:MOUNTPOINT] (repeatable)")
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[derive(Args, Debug)]
pub struct FilesystemsArgs {
    /// The disk image.
    image: PathBuf,
    /// More disks.
    #[arg(short = 'a', long = "add", value_name = "IMAGE")]
    add: Vec<PathBuf>,
    /// JSON output: an array of {device, type, label, uuid, size, part_type, part_name, readable}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    image_opts: ImageOpts,
}

pub fn filesystems(a: FilesystemsArgs) -> anyhow::Result<()> {
    let d = Disks {
        image: a.image,
        add: a.add,
        mount: Vec::new(),
        image_opts: a.image_opts,
    };
    let g = d.launch()?;
    let mut notes = Vec::new();
    let list = g.filesystems(&mut notes)?;
    for n in &notes {
        eprintln!("guestctl: note: {n}");
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
    } else {
        for f in list {
            writeln!(
                out,
                "{:<12} {:<12} {:<10} {:>14} {:<38} {}",
                f.device,
                f.fs_type,
                if f.readable { "readable" } else { "unreadable" },
                f.size,
                f.uuid,
                f.label
            )?;
        }
    }
    Ok(())
}

fn time(t: Option<Timestamp>) -> serde_json::Value {
    match t {
        Some(t) if t.nanos == 0 => serde_json::json!(t.secs),
        Some(t) => serde_json::json!(t.secs as f64 + f64::from(t.nanos) / 1e9),
        None => serde_json::Value::Null,
    }
}

fn record(fs: &dyn Filesystem, path: &str, node: NodeId, m: &Metadata) -> serde_json::Value {
    let target = (m.file_type == FileType::Symlink)
        .then(|| {
            fs.read_link(node)
                .ok()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
        })
        .flatten();
    serde_json::json!({
        "path": path, "type": m.file_type.as_str(), "size": m.size, "mode": format!("{:04o}", m.mode),
        "uid": m.uid, "gid": m.gid, "mtime": time(m.mtime), "nlink": m.nlink, "inode": m.inode,
        "target": target,
    })
}

fn mode_string(m: &Metadata) -> String {
    let t = match m.file_type {
        FileType::Regular | FileType::Unknown => '-',
        other => other.type_char(),
    };
    let mut s = String::from(t);
    for shift in [6, 3, 0] {
        let b = (m.mode >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

#[derive(Args, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    disks: Disks,
    /// Directory (or file) inside the guest.
    #[arg(default_value = "/")]
    path: String,
    /// Long listing: mode, links, owner, size, mtime.
    #[arg(short = 'l', long)]
    long: bool,
    /// Recurse; never stops at a bad directory (its error is printed, the walk goes on).
    #[arg(short = 'R', long)]
    recursive: bool,
    /// JSON lines: {path, type, size, mode, uid, gid, mtime, nlink, inode, target}.
    #[arg(long)]
    json: bool,
}

struct LsVisitor<'a, W: Write> {
    fs: &'a dyn Filesystem,
    a: &'a LsArgs,
    base: String,
    out: W,
    failed: bool,
}

impl<W: Write> walk::Visitor for LsVisitor<'_, W> {
    type Error = std::io::Error;

    fn entry(&mut self, item: &walk::Item) -> std::io::Result<walk::Visit> {
        if item.rel.is_empty() {
            return Ok(walk::Visit::Descend);
        }
        let name = String::from_utf8_lossy(&item.rel);
        let mut path = String::with_capacity(self.base.len() + 1 + name.len());
        path.push_str(&self.base);
        path.push('/');
        path.push_str(&name);
        let m = &item.meta;
        let shown = if self.a.recursive {
            &path
        } else {
            path.rsplit('/').next().unwrap_or(&path)
        };
        if self.a.json {
            serde_json::to_writer(&mut self.out, &record(self.fs, &path, item.node, m))?;
            self.out.write_all(b"\n")?;
        } else if self.a.long {
            let tgt = if m.file_type == FileType::Symlink {
                self.fs
                    .read_link(item.node)
                    .map(|t| format!(" -> {}", String::from_utf8_lossy(&t)))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            let mt = m.mtime.map_or(0, |t| t.secs);
            writeln!(
                self.out,
                "{} {:>3} {:>5} {:>5} {:>12} {:>11} {shown}{tgt}",
                mode_string(m),
                m.nlink,
                m.uid,
                m.gid,
                m.size,
                mt,
            )?;
        } else {
            self.out.write_all(shown.as_bytes())?;
            self.out.write_all(b"\n")?;
        }
        Ok(if self.a.recursive {
            walk::Visit::Descend
        } else {
            walk::Visit::Skip
        })
    }

    fn problem(&mut self, p: walk::Problem) -> std::io::Result<()> {
        self.out.flush()?;
        eprintln!("guestctl: {}", p.line(&self.base));
        self.failed = true;
        Ok(())
    }
}

/// The walk's start: `node` with its metadata.
fn start_item(fs: &dyn Filesystem, node: NodeId) -> anyhow::Result<walk::Item> {
    Ok(walk::Item {
        rel: Vec::new(),
        node,
        meta: fs.metadata(node)?,
    })
}

pub fn ls(a: LsArgs) -> anyhow::Result<()> {
    let fs = a.disks.filesystem()?;
    let fs = fs.as_ref();
    let start = resolve_path(fs, a.path.as_bytes(), true)?;
    let item = start_item(fs, start)?;
    if item.meta.file_type != FileType::Directory {
        // Listing a file names the file, like ls.
        fs.read_dir(start)?;
    }
    let mut v = LsVisitor {
        fs,
        a: &a,
        base: a.path.trim_end_matches('/').to_string(),
        out: std::io::BufWriter::new(std::io::stdout().lock()),
        failed: false,
    };
    walk::walk(fs, item, &|_| true, &walk::WalkOptions::default(), &mut v)?;
    v.out.flush()?;
    if v.failed {
        bail!("some entries could not be read (see above)");
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct CatArgs {
    #[command(flatten)]
    disks: Disks,
    /// File inside the guest (symlinks are followed inside the guest).
    path: String,
}

pub fn cat(a: CatArgs) -> anyhow::Result<()> {
    let fs = a.disks.filesystem()?;
    let node = fs.resolve(&a.path)?;
    let size = fs.metadata(node)?.size;
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 << 10];
    let mut off = 0;
    while off < size {
        let n = fs.read_at(node, off, &mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        off += n as u64;
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct StatArgs {
    #[command(flatten)]
    disks: Disks,
    /// Path inside the guest (a final symlink is not followed, like `stat`).
    path: String,
    /// JSON: {path, type, size, mode, uid, gid, mtime, nlink, inode, target, atime, ctime, crtime, rdev, allocated}.
    #[arg(long)]
    json: bool,
}

pub fn stat(a: StatArgs) -> anyhow::Result<()> {
    let fs = a.disks.filesystem()?;
    let node = resolve_path(fs.as_ref(), a.path.as_bytes(), false)?;
    let m = fs.metadata(node)?;
    let mut r = record(fs.as_ref(), &a.path, node, &m);
    r["atime"] = time(m.atime);
    r["ctime"] = time(m.ctime);
    r["crtime"] = time(m.crtime);
    r["rdev"] = m.rdev.map_or(serde_json::Value::Null, |(ma, mi)| {
        serde_json::json!([ma, mi])
    });
    r["allocated"] = serde_json::json!(m.allocated);
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &r)?;
        writeln!(out)?;
    } else if let serde_json::Value::Object(map) = r {
        for (k, v) in map {
            writeln!(out, "{k:>9}: {v}")?;
        }
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum HashType {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

#[derive(Args, Debug)]
pub struct ChecksumArgs {
    #[command(flatten)]
    disks: Disks,
    /// File (or, with -R, directory) inside the guest.
    path: String,
    /// Hash algorithm.
    #[arg(short = 't', long = "type", value_enum, default_value = "sha256")]
    kind: HashType,
    /// Every regular file under the directory, printed as `HASH  ./relative/path` like
    /// `cd DIR && find . -type f -exec sha256sum {} +` on the host, so the two can be diffed.
    #[arg(short = 'R', long)]
    recursive: bool,
}

fn hash_node(
    fs: &dyn Filesystem,
    node: NodeId,
    size: u64,
    kind: HashType,
) -> anyhow::Result<String> {
    use sha2::Digest;
    fn run<D: Digest>(fs: &dyn Filesystem, node: NodeId, size: u64) -> anyhow::Result<String> {
        let mut d = D::new();
        let mut buf = vec![0u8; 64 << 10];
        let mut off = 0;
        while off < size {
            let n = fs.read_at(node, off, &mut buf)?;
            if n == 0 {
                break;
            }
            d.update(&buf[..n]);
            off += n as u64;
        }
        Ok(d.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }
    match kind {
        HashType::Md5 => run::<md5::Md5>(fs, node, size),
        HashType::Sha1 => run::<sha1::Sha1>(fs, node, size),
        HashType::Sha256 => run::<sha2::Sha256>(fs, node, size),
        HashType::Sha512 => run::<sha2::Sha512>(fs, node, size),
    }
}

pub fn checksum(a: ChecksumArgs) -> anyhow::Result<()> {
    let fs = a.disks.filesystem()?;
    let fs = fs.as_ref();
    let start = resolve_path(fs, a.path.as_bytes(), true)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if !a.recursive {
        let m = fs.metadata(start)?;
        if m.file_type != FileType::Regular {
            bail!("{}: not a regular file (use -R for a directory)", a.path);
        }
        writeln!(out, "{}  {}", hash_node(fs, start, m.size, a.kind)?, a.path)?;
        return Ok(out.flush()?);
    }
    struct Sums<'a, W: Write> {
        fs: &'a dyn Filesystem,
        kind: HashType,
        out: W,
        failed: bool,
    }
    impl<W: Write> walk::Visitor for Sums<'_, W> {
        type Error = anyhow::Error;
        fn entry(&mut self, item: &walk::Item) -> anyhow::Result<walk::Visit> {
            if item.meta.file_type == FileType::Regular {
                let path = format!("./{}", String::from_utf8_lossy(&item.rel));
                match hash_node(self.fs, item.node, item.meta.size, self.kind) {
                    Ok(h) => writeln!(self.out, "{h}  {path}")?,
                    Err(err) => {
                        self.out.flush()?;
                        eprintln!("guestctl: {path}: {err:#}");
                        self.failed = true;
                    }
                }
            }
            Ok(walk::Visit::Descend)
        }
        fn problem(&mut self, p: walk::Problem) -> anyhow::Result<()> {
            self.out.flush()?;
            eprintln!("guestctl: {}", p.line("."));
            self.failed = true;
            Ok(())
        }
    }
    let mut v = Sums {
        fs,
        kind: a.kind,
        out,
        failed: false,
    };
    walk::walk(
        fs,
        start_item(fs, start)?,
        &|_| true,
        &walk::WalkOptions::default(),
        &mut v,
    )?;
    let (mut out, failed) = (v.out, v.failed);
    out.flush()?;
    if failed {
        bail!("some files could not be read (see above)");
    }
    Ok(())
}
