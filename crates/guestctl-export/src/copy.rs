//! `copy-out`: guest files and trees into a host directory, like virt-copy-out.
//!
//! Safety rules (a guest filesystem is hostile input):
//! - host paths are the destination plus guest names that passed [`crate::walk`]'s checks
//!   (one component each, no `.`/`..`/`/`/NUL, no duplicates);
//! - a directory is descended only after `symlink_metadata` says the host path is a real
//!   directory (created by us or already there): never through a symlink;
//! - files, symlinks and fifos are created under a fresh `.NAME.XXXXXX.part` name with
//!   `O_CREAT|O_EXCL` semantics (which never follows a symlink), get their mode and times
//!   through the new file's descriptor (or without following links), and are renamed into
//!   place: without `force` with `RENAME_NOREPLACE`, so an existing host file is never
//!   replaced; with `force` the rename replaces a file or symlink (never writing through it);
//! - guest symlinks are recreated with the stored target and never followed; device nodes and
//!   sockets are skipped with a warning (creating them needs root); fifos are created.
//!
//! Directory modes and times are applied after their contents are written.

use std::fs::{File, Permissions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use guestctl_fs::{resolve_path, FileType, Filesystem, Metadata, NodeId, Timestamp};
use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps, CWD};

use crate::error::show;
use crate::walk::{bad_name, guest_path, walk, Item, Visit, Visitor};
use crate::{Error, Excludes, Result, Sink, Summary};

/// Buffer for copying file contents.
const BUF: usize = 1 << 20;

/// Options of [`copy_out`].
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Replace existing host files and symlinks (directories are merged into, never replaced).
    pub force: bool,
    /// Entries to leave out (excluded directories are not descended).
    pub excludes: Excludes,
}

/// Copies the guest path `path` (intermediate symlinks are resolved inside the guest; a final
/// symlink is copied as a symlink) into the existing host directory `dest`: a guest directory
/// `/etc` becomes `dest/etc`, a file `/etc/hosts` becomes `dest/hosts`, and `/` copies the
/// root's contents into `dest` itself. Per-entry failures go to `sink` and the copy goes on;
/// `Err` only when nothing can be started.
pub fn copy_out(
    fs: &dyn Filesystem,
    path: &str,
    dest: &Path,
    opts: &CopyOptions,
    sink: &mut Sink<'_>,
) -> Result<Summary> {
    let base = path.as_bytes();
    match std::fs::metadata(dest) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::InvalidInput(format!(
                "{}: the destination is not a directory",
                dest.display()
            )))
        }
        Err(e) => return Err(Error::host(dest, "cannot use the destination directory", e)),
    }
    let node = resolve_path(fs, base, false).map_err(|e| Error::guest(base, "cannot open", e))?;
    let meta = fs
        .metadata(node)
        .map_err(|e| Error::guest(base, "cannot read metadata", e))?;
    let name = base
        .rsplit(|&b| b == b'/')
        .find(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec);
    let top = match name {
        None => None,
        Some(n) if n == b".." => {
            // `/a/..`: resolved inside the guest; name the copy after nothing we can trust.
            return Err(Error::InvalidInput(format!(
                "{}: name the directory itself, not a path ending in ..",
                show(base)
            )));
        }
        Some(n) => {
            if let Some(why) = bad_name(&n) {
                return Err(Error::InvalidInput(format!("{}: {why}", show(base))));
            }
            Some(n)
        }
    };
    if top.is_none() && meta.file_type != FileType::Directory {
        return Err(Error::InvalidInput(format!(
            "{}: not a directory",
            show(base)
        )));
    }
    let mut v = CopyVisitor {
        fs,
        base,
        dest,
        top,
        opts,
        buf: vec![0u8; BUF],
    };
    let start = Item {
        rel: Vec::new(),
        node,
        meta,
    };
    walk(fs, base, start, &opts.excludes, sink, &mut v)?;
    Ok(sink.summary())
}

struct CopyVisitor<'a> {
    fs: &'a dyn Filesystem,
    base: &'a [u8],
    dest: &'a Path,
    /// The name the start node gets inside `dest` (none: `dest` itself is the start).
    top: Option<Vec<u8>>,
    opts: &'a CopyOptions,
    buf: Vec<u8>,
}

fn timespec(t: Option<Timestamp>) -> Timespec {
    match t {
        Some(t) => Timespec {
            tv_sec: t.secs,
            tv_nsec: i64::from(t.nanos),
        },
        None => Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
    }
}

fn timestamps(m: &Metadata) -> Timestamps {
    Timestamps {
        last_access: timespec(m.atime.or(m.mtime)),
        last_modification: timespec(m.mtime),
    }
}

fn system_time(t: Timestamp) -> Option<SystemTime> {
    let base = if t.secs >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(t.secs.unsigned_abs()))?
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(t.secs.unsigned_abs()))?
    };
    base.checked_add(Duration::from_nanos(u64::from(t.nanos)))
}

impl CopyVisitor<'_> {
    /// The host path of a walk item (`None` for the start when it is `dest` itself).
    fn host(&self, rel: &[u8]) -> PathBuf {
        let mut p = self.dest.to_path_buf();
        if let Some(t) = &self.top {
            p.push(std::ffi::OsStr::from_bytes(t));
        }
        if !rel.is_empty() {
            p.push(std::ffi::OsStr::from_bytes(rel));
        }
        p
    }

    fn gpath(&self, rel: &[u8]) -> Vec<u8> {
        guest_path(self.base, rel)
    }

    /// Whether the final name is free (or may be replaced).
    fn may_create(&self, host: &Path) -> std::result::Result<(), Error> {
        match std::fs::symlink_metadata(host) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::host(host, "cannot check the destination", e)),
            Ok(m) if m.is_dir() => Err(Error::Refused {
                path: host.to_path_buf(),
                why: "a directory is in the way (not replaced)".into(),
            }),
            Ok(_) if self.opts.force => Ok(()),
            Ok(_) => Err(Error::Refused {
                path: host.to_path_buf(),
                why: "exists (use --force to replace it)".into(),
            }),
        }
    }

    /// Renames the finished temporary into place (never replacing without `force`).
    fn place<F>(
        &self,
        tmp: tempfile::NamedTempFile<F>,
        host: &Path,
    ) -> std::result::Result<(), Error> {
        let r = if self.opts.force {
            tmp.persist(host).map(drop)
        } else {
            tmp.persist_noclobber(host).map(drop)
        };
        r.map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Refused {
                    path: host.to_path_buf(),
                    why: "exists (use --force to replace it)".into(),
                }
            } else {
                Error::host(host, "cannot rename into place", e.error)
            }
        })
    }

    fn parent_and_name(host: &Path) -> (&Path, String) {
        let parent = host.parent().unwrap_or(Path::new("."));
        let name = host
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (parent, name)
    }

    fn copy_file(
        &mut self,
        node: NodeId,
        m: &Metadata,
        host: &Path,
        rel: &[u8],
        sink: &mut Sink<'_>,
    ) -> std::result::Result<(), Error> {
        self.may_create(host)?;
        let (parent, name) = Self::parent_and_name(host);
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".part")
            .tempfile_in(parent)
            .map_err(|e| Error::host(parent, "cannot create a temporary file", e))?;
        let size = m.size;
        let mut off = 0u64;
        let mut holes = false;
        while off < size {
            let want = (size - off).min(self.buf.len() as u64) as usize;
            let n = self
                .fs
                .read_at(node, off, &mut self.buf[..want])
                .map_err(|e| Error::guest(&self.gpath(rel), "cannot read file", e))?;
            if n == 0 {
                return Err(Error::guest(
                    &self.gpath(rel),
                    "cannot read file",
                    guestctl_fs::Error::corrupt(format!("file ended after {off} of {size} bytes")),
                ));
            }
            let chunk = &self.buf[..n];
            let f = tmp.as_file_mut();
            if chunk.iter().all(|&b| b == 0) {
                // Keep holes: seek over zeros, the final set_len fixes the size.
                f.seek(SeekFrom::Current(n as i64))
                    .map_err(|e| Error::host(host, "cannot write", e))?;
                holes = true;
            } else {
                f.write_all(chunk)
                    .map_err(|e| Error::host(host, "cannot write", e))?;
            }
            off += n as u64;
            sink.bytes(n as u64);
        }
        let f = tmp.as_file();
        if holes {
            f.set_len(size)
                .map_err(|e| Error::host(host, "cannot write", e))?;
        }
        finish_fd(f, m, host)?;
        self.place(tmp, host)
    }

    fn copy_symlink(
        &self,
        node: NodeId,
        m: &Metadata,
        host: &Path,
        rel: &[u8],
    ) -> std::result::Result<(), Error> {
        let target = self
            .fs
            .read_link(node)
            .map_err(|e| Error::guest(&self.gpath(rel), "cannot read symlink", e))?;
        if target.is_empty() || target.contains(&0) {
            return Err(Error::skipped(
                &self.gpath(rel),
                "symlink skipped: empty target or target with a NUL byte",
            ));
        }
        self.may_create(host)?;
        let (parent, name) = Self::parent_and_name(host);
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".part")
            .make_in(parent, |p| {
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), p)
            })
            .map_err(|e| Error::host(parent, "cannot create a symlink", e))?;
        rustix::fs::utimensat(CWD, tmp.path(), &timestamps(m), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::host(host, "cannot set the symlink's times", e.into()))?;
        self.place(tmp, host)
    }

    fn copy_fifo(&self, m: &Metadata, host: &Path) -> std::result::Result<(), Error> {
        self.may_create(host)?;
        let (parent, name) = Self::parent_and_name(host);
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".part")
            .make_in(parent, |p| {
                rustix::fs::mknodat(
                    CWD,
                    p,
                    rustix::fs::FileType::Fifo,
                    Mode::from_raw_mode(0o600),
                    0,
                )
                .map_err(std::io::Error::from)
            })
            .map_err(|e| Error::host(parent, "cannot create a fifo", e))?;
        // Opening a fifo would block: chmod/utimens by name. The name is our fresh fifo in a
        // checked directory; utimensat does not follow links.
        rustix::fs::chmodat(
            CWD,
            tmp.path(),
            Mode::from_raw_mode(m.mode & 0o7777),
            AtFlags::empty(),
        )
        .map_err(|e| Error::host(host, "cannot set the fifo's mode", e.into()))?;
        rustix::fs::utimensat(CWD, tmp.path(), &timestamps(m), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::host(host, "cannot set the fifo's times", e.into()))?;
        self.place(tmp, host)
    }

    /// Creates (or checks) the directory for `rel`; `Ok(false)`: do not descend.
    fn make_dir(&self, host: &Path) -> std::result::Result<(), Error> {
        match std::fs::create_dir(host) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::host(host, "cannot create directory", e)),
        }
        // Whatever is there now must be a real directory: never descend through a symlink.
        match std::fs::symlink_metadata(host) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(Error::Refused {
                path: host.to_path_buf(),
                why: "exists and is not a directory (not descended, not replaced)".into(),
            }),
            Err(e) => Err(Error::host(host, "cannot check the new directory", e)),
        }
    }
}

/// Mode and times through the file's own descriptor.
fn finish_fd(f: &File, m: &Metadata, host: &Path) -> std::result::Result<(), Error> {
    f.set_permissions(Permissions::from_mode(m.mode & 0o7777))
        .map_err(|e| Error::host(host, "cannot set the mode", e))?;
    let mut times = std::fs::FileTimes::new();
    if let Some(t) = m.mtime.and_then(system_time) {
        times = times.set_modified(t);
    }
    if let Some(t) = m.atime.or(m.mtime).and_then(system_time) {
        times = times.set_accessed(t);
    }
    f.set_times(times)
        .map_err(|e| Error::host(host, "cannot set the times", e))
}

impl Visitor for CopyVisitor<'_> {
    fn entry(&mut self, item: &Item, sink: &mut Sink<'_>) -> Result<Visit> {
        let host = self.host(&item.rel);
        let m = &item.meta;
        let r = match m.file_type {
            FileType::Directory => {
                if item.rel.is_empty() && self.top.is_none() {
                    // `dest` itself: it exists and the caller chose it.
                    return Ok(Visit::Descend);
                }
                match self.make_dir(&host) {
                    Ok(()) => {
                        sink.entry();
                        return Ok(Visit::Descend);
                    }
                    Err(e) => Err(e),
                }
            }
            FileType::Regular => self.copy_file(item.node, m, &host, &item.rel, sink),
            FileType::Symlink => self.copy_symlink(item.node, m, &host, &item.rel),
            FileType::Fifo => self.copy_fifo(m, &host),
            FileType::CharDevice | FileType::BlockDevice | FileType::Socket => {
                sink.warning(Error::skipped(
                    &self.gpath(&item.rel),
                    format!(
                        "{} skipped (copy-out does not create device nodes or sockets)",
                        m.file_type.as_str()
                    ),
                ));
                return Ok(Visit::Skip);
            }
            _ => Err(Error::skipped(
                &self.gpath(&item.rel),
                "skipped: unknown file type",
            )),
        };
        match r {
            Ok(()) => sink.entry(),
            Err(e) => sink.error(e),
        }
        Ok(Visit::Skip)
    }

    fn leave(&mut self, item: &Item, sink: &mut Sink<'_>) -> Result<()> {
        if item.rel.is_empty() && self.top.is_none() {
            return Ok(());
        }
        let host = self.host(&item.rel);
        let r = rustix::fs::open(
            &host,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .and_then(|fd| {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(item.meta.mode & 0o7777))?;
            rustix::fs::futimens(&fd, &timestamps(&item.meta))
        });
        if let Err(e) = r {
            sink.error(Error::host(
                host,
                "cannot set the directory's mode and times",
                e.into(),
            ));
        }
        Ok(())
    }
}
