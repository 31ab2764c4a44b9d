//! Image conversion for guestctl.
//!
//! Outputs: raw (exact, sparse), qcow2, vmdk, VHD (fixed, dynamic), VHDX (dynamic, fixed) and
//! VDI (dynamic, static).
//!
//! The raw export: the plan comes from [`BlockDevice::map`] (zero and
//! unallocated ranges are never read), data chunks are read, zero-detected and written in
//! parallel with rayon (positional writes, so no ordering is needed), and the output is
//! written under a temporary name in the destination directory and renamed only when complete
//! (and synced, with [`RawOptions::sync`]). An interrupted conversion never leaves a file under
//! the final name. Buffers are page aligned: that alone makes page-cache copies ~30% cheaper.
//!
//! Refused: an existing destination without `force`, a destination that is one of the
//! source's files.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use guestctl_block::{is_zero, AlignedBuf, BlockDevice, Error, ErrorKind, ExtentKind, Result};
use rayon::prelude::*;

mod blockw;
mod pipeline;
mod qcow2w;
mod vdiw;
mod vhdw;
mod vhdxw;
mod vmdkw;
pub use qcow2w::{Compression, Qcow2Options};
pub use vdiw::{VdiOptions, VdiSubformat};
pub use vhdw::{VhdOptions, VhdSubformat};
pub use vhdxw::{default_block_size as vhdx_default_block_size, VhdxOptions, VhdxSubformat};
pub use vmdkw::{VmdkOptions, VmdkSubformat};

/// Bytes one worker reads and writes at a time.
pub const CHUNK: u64 = 4 << 20;
/// Guest bytes planned (mapped) at a time, bounding the plan's memory.
pub const WINDOW: u64 = 1 << 30;

/// Options for [`convert_to_raw`].
#[derive(Debug, Clone, Default)]
pub struct RawOptions {
    /// Overwrite an existing destination.
    pub force: bool,
    /// Allocate every byte (no holes), like `qemu-img convert -S 0 -o preallocation=full`.
    pub preallocate: bool,
    /// Worker threads (0: rayon's default, one per core).
    pub threads: usize,
    /// `fdatasync` the output before renaming it into place (crash-safe, but waits for the
    /// disk; qemu-img's convert does not sync by default either).
    pub sync: bool,
    /// Host files the source is made of (its backing chain, extents); the destination may not
    /// be one of them.
    pub source_files: Vec<PathBuf>,
}

/// What a conversion did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Guest bytes of the source.
    pub size: u64,
    /// Bytes read from the source (data extents).
    pub read: u64,
    /// Bytes written to the destination.
    pub written: u64,
    /// Bytes left as holes (zero/unallocated extents and zero chunks).
    pub skipped: u64,
}

/// Refuses `dst` when it exists (unless `force`) or is one of `source_files`.
pub fn check_destination(dst: &Path, force: bool, source_files: &[PathBuf]) -> Result<()> {
    let dst_canon = canonical_target(dst)?;
    for s in source_files {
        if s.canonicalize().map(|c| c == dst_canon).unwrap_or(false) {
            return Err(Error::refused(format!(
                "destination is the source image or a file it is made of ({})",
                s.display()
            ))
            .path(dst));
        }
    }
    if dst.exists() && !force {
        return Err(Error::refused("destination exists; use --force to overwrite").path(dst));
    }
    Ok(())
}

/// The canonical path `dst` will have (its parent canonicalised, the name kept).
fn canonical_target(dst: &Path) -> Result<PathBuf> {
    if let Ok(c) = dst.canonicalize() {
        return Ok(c);
    }
    let parent = parent_dir(dst);
    let name = dst.file_name().ok_or_else(|| {
        Error::new(ErrorKind::InvalidInput, "destination has no file name").path(dst)
    })?;
    let p = parent
        .canonicalize()
        .map_err(|e| Error::io(e, "destination directory does not exist").path(dst))?;
    Ok(p.join(name))
}

fn parent_dir(p: &Path) -> &Path {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
}

/// Writes the guest-visible bytes of `src` to a raw file `dst`, sparse unless asked otherwise.
/// `progress` is called with the number of guest bytes just finished (from worker threads).
pub fn convert_to_raw(
    src: &dyn BlockDevice,
    dst: &Path,
    opts: &RawOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Stats> {
    check_destination(dst, opts.force, &opts.source_files)?;
    let tmp = temp_output(dst)?;
    let size = src.size();
    tmp.as_file()
        .set_len(size)
        .map_err(|e| write_error(e, "cannot size the output file", dst, None))?;
    let pool = pool(opts.threads)?;
    // Errors name the destination: the temporary file is gone when they are reported.
    let (read, written) =
        pool.install(|| raw_into(src, tmp.as_file(), dst, opts.preallocate, progress))?;
    finish(tmp, dst, opts.sync)?;
    Ok(Stats {
        size,
        read,
        written,
        skipped: size - written,
    })
}

/// Writes the guest bytes of `src` at the same offsets of `out` (already sized), leaving zero
/// ranges unwritten unless `preallocate`. Returns the bytes read and written.
///
/// Workers of the current rayon pool read (and decompress) chunks into buffers from a small
/// pool; one writer thread writes them out. Buffered writes to one file serialise on its
/// inode lock, so workers writing themselves waited for each other (and for a preempted lock
/// holder) instead of decompressing. The pool bounds memory: what is neither being filled
/// nor written waits in the channel.
pub(crate) fn raw_into(
    src: &dyn BlockDevice,
    out: &File,
    out_path: &Path,
    preallocate: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(u64, u64)> {
    let size = src.size();
    let read = AtomicU64::new(0);
    let written = AtomicU64::new(0);
    let bufs = BufPool::new(rayon::current_num_threads() + 2);
    let (tx, rx) = std::sync::mpsc::sync_channel::<(AlignedBuf, u64, usize)>(bufs.cap);
    let (bufs_w, written_w) = (&bufs, &written);
    let writes = move || -> Result<()> {
        let _close = CloseOnDrop(bufs_w);
        for (buf, off, len) in rx {
            let r = write_all_at(out, &buf[..len], off, out_path);
            bufs_w.put(buf);
            r?;
            written_w.fetch_add(len as u64, Ordering::Relaxed);
        }
        Ok(())
    };
    let reads = |tx: std::sync::mpsc::SyncSender<(AlignedBuf, u64, usize)>| -> Result<()> {
        let mut start = 0u64;
        while start < size {
            let wlen = WINDOW.min(size - start);
            let mapping = src.map(start, wlen)?;
            let mut chunks = Vec::new();
            for e in mapping.iter() {
                if e.kind != ExtentKind::Data && !preallocate {
                    progress(e.len);
                    continue;
                }
                let mut o = e.offset;
                while o < e.end() {
                    // Align chunk ends to CHUNK boundaries so reads stay cluster aligned.
                    let n = (CHUNK - o % CHUNK).min(e.end() - o);
                    chunks.push((o, n, e.kind));
                    o += n;
                }
            }
            chunks
                .par_iter()
                .try_for_each(|&(off, len, kind)| -> Result<()> {
                    let mut buf = bufs.take()?;
                    let b = &mut buf[..len as usize];
                    if kind == ExtentKind::Data {
                        src.read_exact_at(off, b)?;
                        read.fetch_add(len, Ordering::Relaxed);
                    } else {
                        b.fill(0);
                    }
                    if preallocate || !is_zero(b) {
                        tx.send((buf, off, len as usize))
                            .map_err(|_| Error::new(ErrorKind::Io, "the output writer stopped"))?;
                    } else {
                        bufs.put(buf);
                    }
                    progress(len);
                    Ok(())
                })?;
            start += wlen;
        }
        Ok(())
    };
    std::thread::scope(|s| -> Result<()> {
        let writer = s.spawn(writes);
        // `tx` is dropped when the reads end, which ends the writer's loop.
        let r = reads(tx);
        let w = writer
            .join()
            .map_err(|_| Error::new(ErrorKind::Io, "the output writer thread panicked"))?;
        // A write error is the cause when the readers then found the writer gone.
        w.and(r)
    })?;
    Ok((read.into_inner(), written.into_inner()))
}

/// At most `cap` chunk buffers, handed out and given back; `take` waits while all are out.
struct BufPool {
    cap: usize,
    state: std::sync::Mutex<(Vec<AlignedBuf>, usize, bool)>,
    ready: std::sync::Condvar,
}

impl BufPool {
    fn new(cap: usize) -> Self {
        BufPool {
            cap,
            state: std::sync::Mutex::new((Vec::new(), 0, false)),
            ready: std::sync::Condvar::new(),
        }
    }

    /// A free buffer (allocated while fewer than `cap` exist), or an error once closed.
    fn take(&self) -> Result<AlignedBuf> {
        let poisoned = || Error::new(ErrorKind::Io, "a conversion thread panicked");
        let mut st = self.state.lock().map_err(|_| poisoned())?;
        loop {
            let (free, made, closed) = &mut *st;
            if *closed {
                return Err(Error::new(ErrorKind::Io, "the output writer stopped"));
            }
            if let Some(b) = free.pop() {
                return Ok(b);
            }
            if *made < self.cap {
                *made += 1;
                drop(st);
                return Ok(AlignedBuf::new(CHUNK as usize));
            }
            st = self.ready.wait(st).map_err(|_| poisoned())?;
        }
    }

    fn put(&self, b: AlignedBuf) {
        if let Ok(mut st) = self.state.lock() {
            st.0.push(b);
        }
        self.ready.notify_one();
    }

    /// No more buffers: waiting and later `take`s fail (the writer is gone).
    fn close(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.2 = true;
        }
        self.ready.notify_all();
    }
}

/// Closes the pool when the writer ends, however it ends.
struct CloseOnDrop<'a>(&'a BufPool);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A temporary file beside `dst` (`.NAME.XXXX.part`), removed if dropped unfinished.
fn temp_output(dst: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = parent_dir(dst);
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
        .map_err(|e| Error::io(e, "cannot create the temporary output file").path(dir))
}

/// Syncs (if asked) and renames the finished temporary file to `dst`.
fn finish(tmp: tempfile::NamedTempFile, dst: &Path, sync: bool) -> Result<()> {
    if sync {
        tmp.as_file()
            .sync_data()
            .map_err(|e| Error::io(e, "cannot flush the output file").path(dst))?;
    }
    persist(tmp, dst)
}

/// Renames the finished temporary file to `dst`. An existing `dst` (allowed by `force`) is
/// unlinked first: renaming over it makes ext4 flush the new file to disk right away
/// (`auto_da_alloc`), which tripled the time of a 1 GiB conversion from the page cache. The
/// old file stays until the new one is complete; a crash between the two steps leaves no file
/// under the final name, never a partial one.
fn persist(tmp: tempfile::NamedTempFile, dst: &Path) -> Result<()> {
    if dst.symlink_metadata().is_ok_and(|m| m.is_file()) {
        std::fs::remove_file(dst)
            .map_err(|e| Error::io(e, "cannot remove the existing destination").path(dst))?;
    }
    tmp.persist(dst).map_err(|e| {
        Error::io(e.error, "cannot rename the finished output into place").path(dst)
    })?;
    Ok(())
}

/// Writes `src` as a qcow2 v3 image `dst` (flattened: no backing file), under the same
/// temporary-name and destination rules as [`convert_to_raw`].
pub fn convert_to_qcow2(
    src: &dyn BlockDevice,
    dst: &Path,
    opts: &RawOptions,
    qopts: &Qcow2Options,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    if qopts.backing_file.is_some() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "a backing file name needs the backing device: use convert_to_qcow2_over",
        ));
    }
    write_qcow2_file(src, None, dst, opts, qopts, progress)
}

/// Writes `src` as a qcow2 v3 image `dst` over the backing device `base`: only clusters
/// whose bytes differ from `base` are stored, and `qopts.backing_file` (required) and
/// `qopts.backing_format` are recorded. `dst` read with its backing file equals `src`
/// when `qopts.backing_file`, resolved against `dst`'s directory, is `base`.
pub fn convert_to_qcow2_over(
    src: &dyn BlockDevice,
    base: &dyn BlockDevice,
    dst: &Path,
    opts: &RawOptions,
    qopts: &Qcow2Options,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    if qopts.backing_file.is_none() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "writing over a backing device needs its name (Qcow2Options::backing_file)",
        ));
    }
    write_qcow2_file(src, Some(base), dst, opts, qopts, progress)
}

fn write_qcow2_file(
    src: &dyn BlockDevice,
    base: Option<&dyn BlockDevice>,
    dst: &Path,
    opts: &RawOptions,
    qopts: &Qcow2Options,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    refuse_preallocation(opts, "qcow2")?;
    check_destination(dst, opts.force, &opts.source_files)?;
    let tmp = temp_output(dst)?;
    let pool = pool(opts.threads)?;
    // Errors name the destination: the temporary file is gone when they are reported.
    let path = dst.to_path_buf();
    pool.install(|| qcow2w::write_qcow2(src, base, tmp.as_file(), &path, qopts, progress))?;
    finish(tmp, dst, opts.sync)
}

/// Writes `src` as a single-file VMDK `dst` (monolithicSparse or streamOptimized, see
/// [`VmdkOptions`]), under the same temporary-name and destination rules as
/// [`convert_to_raw`]. The descriptor names the final file, not the temporary one.
pub fn convert_to_vmdk(
    src: &dyn BlockDevice,
    dst: &Path,
    opts: &RawOptions,
    vopts: &VmdkOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    refuse_preallocation(opts, "vmdk")?;
    check_destination(dst, opts.force, &opts.source_files)?;
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = temp_output(dst)?;
    let pool = pool(opts.threads)?;
    let path = dst.to_path_buf();
    pool.install(|| vmdkw::write_vmdk(src, tmp.as_file(), &path, &name, vopts, progress))?;
    finish(tmp, dst, opts.sync)
}

/// Writes `src` as a VHD `dst` (fixed or dynamic, see [`VhdOptions`]), under the same
/// temporary-name and destination rules as [`convert_to_raw`]. A source whose size is not a
/// whole number of sectors is padded with zeros (as qemu does).
pub fn convert_to_vhd(
    src: &dyn BlockDevice,
    dst: &Path,
    opts: &RawOptions,
    vopts: &VhdOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    refuse_preallocation(opts, "vhd")?;
    check_destination(dst, opts.force, &opts.source_files)?;
    let tmp = temp_output(dst)?;
    let pool = pool(opts.threads)?;
    pool.install(|| vhdw::write_vhd(src, tmp.as_file(), dst, vopts, progress))?;
    finish(tmp, dst, opts.sync)
}

/// Writes `src` as a VDI `dst` (dynamic or static, see [`VdiOptions`]), under the same
/// temporary-name and destination rules as [`convert_to_raw`]. A source whose size is not a
/// whole number of sectors is padded with zeros.
pub fn convert_to_vdi(
    src: &dyn BlockDevice,
    dst: &Path,
    opts: &RawOptions,
    vopts: &VdiOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    refuse_preallocation(opts, "vdi")?;
    check_destination(dst, opts.force, &opts.source_files)?;
    let tmp = temp_output(dst)?;
    let pool = pool(opts.threads)?;
    pool.install(|| vdiw::write_vdi(src, tmp.as_file(), dst, vopts, progress))?;
    finish(tmp, dst, opts.sync)
}

/// Writes `src` as a VHDX `dst` (dynamic or fixed, see [`VhdxOptions`]), under the same
/// temporary-name and destination rules as [`convert_to_raw`].
pub fn convert_to_vhdx(
    src: &dyn BlockDevice,
    dst: &Path,
    opts: &RawOptions,
    xopts: &VhdxOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    refuse_preallocation(opts, "vhdx")?;
    check_destination(dst, opts.force, &opts.source_files)?;
    let tmp = temp_output(dst)?;
    let pool = pool(opts.threads)?;
    let path = dst.to_path_buf();
    pool.install(|| vhdxw::write_vhdx(src, tmp.as_file(), &path, xopts, progress))?;
    finish(tmp, dst, opts.sync)
}

/// Preallocation is implemented for raw output only; other formats refuse it rather than
/// silently writing a sparse image.
fn refuse_preallocation(opts: &RawOptions, format: &str) -> Result<()> {
    if opts.preallocate {
        return Err(Error::unsupported(format!(
            "--preallocate is supported for raw output only, not {format} \
             (guestctl writes {format} images sparse: zero clusters are never allocated)"
        )));
    }
    Ok(())
}

fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::new(ErrorKind::Io, "cannot start worker threads").with_source(e))
}

/// Compares two devices byte for byte (in parallel 4 MiB chunks), skipping ranges both
/// maps say read as zero. Returns the first differing offset, if any.
pub fn first_difference(a: &dyn BlockDevice, b: &dyn BlockDevice) -> Result<Option<u64>> {
    if a.size() != b.size() {
        return Ok(Some(a.size().min(b.size())));
    }
    let size = a.size();
    let mut start = 0u64;
    while start < size {
        let wlen = WINDOW.min(size - start);
        let (ma, mb) = (a.map(start, wlen)?, b.map(start, wlen)?);
        let zero_in = |m: &guestctl_block::Mapping, o: u64, e: u64| {
            m.iter()
                .filter(|x| x.kind.reads_as_zero())
                .any(|x| x.offset <= o && x.end() >= e)
        };
        let chunks: Vec<u64> = (start..start + wlen).step_by(CHUNK as usize).collect();
        let diffs: Vec<Option<u64>> = chunks
            .par_iter()
            .map_init(
                || {
                    (
                        AlignedBuf::new(CHUNK as usize),
                        AlignedBuf::new(CHUNK as usize),
                    )
                },
                |(ba, bb), &o| -> Result<Option<u64>> {
                    let n = CHUNK.min(start + wlen - o);
                    if zero_in(&ma, o, o + n) && zero_in(&mb, o, o + n) {
                        return Ok(None);
                    }
                    let (x, y) = (&mut ba[..n as usize], &mut bb[..n as usize]);
                    a.read_exact_at(o, x)?;
                    b.read_exact_at(o, y)?;
                    Ok(x.iter()
                        .zip(y.iter())
                        .position(|(p, q)| p != q)
                        .map(|i| o + i as u64))
                },
            )
            .collect::<Result<_>>()?;
        if let Some(d) = diffs.into_iter().flatten().min() {
            return Ok(Some(d));
        }
        start += wlen;
    }
    Ok(None)
}

/// Positional writes to the output `out` (named `path` in errors), for the format writers.
pub(crate) fn writer<'a>(out: &'a File, path: &'a Path) -> impl Fn(&[u8], u64) -> Result<()> + 'a {
    move |buf, off| {
        out.write_all_at(buf, off)
            .map_err(|e| write_error(e, "write failed", path, Some(off)))
    }
}

fn write_all_at(f: &File, buf: &[u8], off: u64, path: &Path) -> Result<()> {
    f.write_all_at(buf, off)
        .map_err(|e| write_error(e, "write failed", path, Some(off)))
}

/// Deflates all of `data` with `z` (reset first) onto the end of `out`, which grows as
/// needed: room for the worst case (stored blocks) is reserved up front because zlib-rs 0.6
/// panics when a stored block does not fit the output space. Gives up with `Ok(false)` once
/// more than `limit` bytes were added (output the caller would not use).
pub(crate) fn deflate_onto(
    z: &mut flate2::Compress,
    data: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<bool> {
    z.reset();
    let start = out.len();
    out.reserve(data.len() + data.len() / 8 + 1024);
    loop {
        let consumed = z.total_in() as usize;
        let st = z
            .compress_vec(&data[consumed..], out, flate2::FlushCompress::Finish)
            .map_err(|e| Error::new(ErrorKind::Io, "zlib compression failed").with_source(e))?;
        if st == flate2::Status::StreamEnd {
            return Ok(true);
        }
        if out.len() - start > limit {
            return Ok(false);
        }
        out.reserve(data.len() / 4 + 64);
    }
}

/// An output I/O error, spelled out when the output grew past the file-size limit.
pub(crate) fn write_error(
    e: std::io::Error,
    what: &'static str,
    path: &Path,
    off: Option<u64>,
) -> Error {
    let what = if e.kind() == std::io::ErrorKind::FileTooLarge {
        match what {
            "write failed" => {
                "write failed: the output would exceed the file-size limit (ulimit -f) or the \
                 file system's largest file"
            }
            _ => {
                "cannot size the output: it would exceed the file-size limit (ulimit -f) or \
                 the file system's largest file"
            }
        }
    } else {
        what
    };
    let err = Error::io(e, what).path(path);
    match off {
        Some(o) => err.at(o),
        None => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guestctl_block::MemoryDevice;

    #[test]
    fn raw_export_is_exact_and_sparse() {
        let mut data = vec![0u8; 9 << 20];
        data[5 << 20..(5 << 20) + 100].fill(9);
        data[(9 << 20) - 1] = 1;
        let dev = MemoryDevice::new(data.clone());
        let dir = tempfile::tempdir().expect("tmp");
        let dst = dir.path().join("out.raw");
        let st = convert_to_raw(&dev, &dst, &RawOptions::default(), &|_| {}).expect("convert");
        assert_eq!(std::fs::read(&dst).expect("read"), data);
        assert_eq!(st.written, CHUNK + (1 << 20)); // chunks 4M..8M and 8M..9M
                                                   // No leftovers, and refusing to overwrite.
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
        assert!(convert_to_raw(&dev, &dst, &RawOptions::default(), &|_| {}).is_err());
    }

    #[test]
    fn first_difference_finds_the_first_differing_byte() {
        let a = vec![0u8; 9 << 20];
        let mut b = a.clone();
        assert_eq!(
            first_difference(&MemoryDevice::new(a.clone()), &MemoryDevice::new(b.clone()))
                .expect("cmp"),
            None
        );
        b[(5 << 20) + 3] = 1;
        b[(8 << 20) + 7] = 1;
        let d =
            first_difference(&MemoryDevice::new(a.clone()), &MemoryDevice::new(b)).expect("cmp");
        assert_eq!(d, Some((5 << 20) + 3));
        let shorter = MemoryDevice::new(vec![0u8; 100]);
        assert_eq!(
            first_difference(&MemoryDevice::new(a), &shorter).expect("cmp"),
            Some(100)
        );
    }

    #[test]
    fn refuses_source_as_destination() {
        let dir = tempfile::tempdir().expect("tmp");
        let src = dir.path().join("a.img");
        std::fs::write(&src, [0u8; 512]).expect("write");
        let e = check_destination(&src, true, std::slice::from_ref(&src)).expect_err("same");
        assert!(e.to_string().contains("source"), "{e}");
    }
}
