//! A plain file (or block device node) as a [`BlockDevice`].

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{clip, BlockDevice, Error, ExtentKind, Mapping, Result};

/// A read-only file read with `pread`; holes (`SEEK_HOLE`) map as [`ExtentKind::Zero`].
#[derive(Debug)]
pub struct RawFile {
    file: File,
    path: PathBuf,
    size: u64,
}

impl RawFile {
    /// Opens `path` read-only. The size is taken once, at open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(e, "cannot open").path(path))?;
        Self::from_file(file, path)
    }

    /// Wraps an already opened file; `path` is used in error messages.
    pub fn from_file(file: File, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let meta = file
            .metadata()
            .map_err(|e| Error::io(e, "cannot stat").path(path))?;
        let size = if meta.file_type().is_file() {
            meta.len()
        } else {
            // Block devices report 0 in metadata; ask the end of the file instead.
            rustix::fs::seek(&file, rustix::fs::SeekFrom::End(0))
                .map_err(|e| Error::io(e.into(), "cannot find the size").path(path))?
        };
        Ok(RawFile {
            file,
            path: path.to_path_buf(),
            size,
        })
    }

    /// The file's path as given at open.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes actually allocated on the host file system.
    pub fn allocated_bytes(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        self.file.metadata().map(|m| m.blocks() * 512).unwrap_or(0)
    }
}

impl BlockDevice for RawFile {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let (offset, n) = clip(offset, buf.len() as u64, self.size);
        let buf = &mut buf[..n as usize];
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(k) => done += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(Error::io(e, "read failed")
                        .path(&self.path)
                        .at(offset + done as u64))
                }
            }
        }
        Ok(done)
    }

    fn map(&self, offset: u64, len: u64) -> Result<Mapping> {
        use rustix::fs::{seek, SeekFrom};
        let (offset, len) = clip(offset, len, self.size);
        let end = offset + len;
        let mut m = Mapping::new();
        let mut pos = offset;
        while pos < end {
            // Find the next data at or after pos; ENXIO means only a hole remains.
            let data = match seek(&self.file, SeekFrom::Data(pos)) {
                Ok(d) => d.min(end),
                Err(rustix::io::Errno::NXIO) => end,
                // File systems without SEEK_DATA: everything is data.
                Err(_) => {
                    m.push(pos, end - pos, ExtentKind::Data);
                    return Ok(m);
                }
            };
            m.push(pos, data - pos, ExtentKind::Zero);
            if data >= end {
                break;
            }
            let hole = match seek(&self.file, SeekFrom::Hole(data)) {
                Ok(h) => h.min(end),
                Err(_) => end,
            };
            // A racing writer could make SEEK_HOLE go backwards; never loop forever.
            let hole = hole.max(data + 1).min(end);
            m.push(data, hole - data, ExtentKind::Data);
            pos = hole;
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn sparse_file_maps_holes_as_zero() {
        let mut f = tempfile::NamedTempFile::new().expect("tmp");
        f.as_file().set_len(4 << 20).expect("len");
        f.as_file().write_at(&[7u8; 4096], 1 << 20).expect("write");
        f.flush().expect("flush");
        let dev = RawFile::open(f.path()).expect("open");
        assert_eq!(dev.size(), 4 << 20);
        let m = dev.map(0, u64::MAX).expect("map");
        assert!(m.bytes_of(ExtentKind::Data) >= 4096);
        assert!(m.bytes_of(ExtentKind::Zero) > 0);
        let mut b = [0u8; 8];
        dev.read_exact_at((1 << 20) + 8, &mut b).expect("read");
        assert_eq!(b, [7u8; 8]);
        assert_eq!(dev.read_at(4 << 20, &mut b).expect("eof"), 0);
    }

    #[test]
    fn open_missing_names_path() {
        let e = RawFile::open("/nonexistent/x.img").expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/x.img"));
    }
}
