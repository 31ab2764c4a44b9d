//! The block layer of guestctl: a virtual disk seen as a [`BlockDevice`].
//!
//! Every image format reader, partition and filesystem sits on this trait. Reads are
//! positional and take `&self`, so rayon workers share one `Arc<dyn BlockDevice>` without
//! seeking or locking around data I/O. [`BlockDevice::map`] tells which ranges hold data,
//! read as zero, or are unallocated, which is what makes sparse copies and zero skipping fast.
//!
//! This crate refuses nothing by itself: it has no notion of image formats. It never writes.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod mapping;
mod raw;

use std::fmt::Debug;
use std::sync::Arc;

pub use error::{Error, ErrorKind, Result};
pub use mapping::{Extent, ExtentKind, Mapping};
pub use raw::RawFile;

/// A read-only virtual disk with positional reads.
pub trait BlockDevice: Send + Sync + Debug {
    /// Guest-visible size in bytes.
    fn size(&self) -> u64;

    /// Reads up to `buf.len()` bytes at `offset`. Returns the number of bytes read, which is
    /// smaller than `buf.len()` only at the end of the device (0 at or past the end).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize>;

    /// Fills `buf` from `offset`, or fails with [`ErrorKind::OutOfRange`] if the device ends first.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let n = self.read_at(offset + done as u64, &mut buf[done..])?;
            if n == 0 {
                return Err(Error::new(
                    ErrorKind::OutOfRange,
                    format!(
                        "read of {} bytes at offset {offset:#x} runs past the end of the device ({} bytes)",
                        buf.len(),
                        self.size()
                    ),
                ));
            }
            done += n;
        }
        Ok(())
    }

    /// Describes `[offset, offset + len)` (clipped to the device size) as extents.
    ///
    /// The default says everything is data; formats override it with what their tables know.
    fn map(&self, offset: u64, len: u64) -> Result<Mapping> {
        let (offset, len) = clip(offset, len, self.size());
        Ok(Mapping::single(offset, len, ExtentKind::Data))
    }
}

/// Clips `[offset, offset + len)` to a device of `size` bytes.
pub fn clip(offset: u64, len: u64, size: u64) -> (u64, u64) {
    let offset = offset.min(size);
    (offset, len.min(size - offset))
}

impl<T: BlockDevice + ?Sized> BlockDevice for Arc<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        (**self).read_at(offset, buf)
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_exact_at(offset, buf)
    }
    fn map(&self, offset: u64, len: u64) -> Result<Mapping> {
        (**self).map(offset, len)
    }
}

impl<T: BlockDevice + ?Sized> BlockDevice for Box<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        (**self).read_at(offset, buf)
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_exact_at(offset, buf)
    }
    fn map(&self, offset: u64, len: u64) -> Result<Mapping> {
        (**self).map(offset, len)
    }
}

/// A window `[start, start + len)` of another device, e.g. a partition.
#[derive(Debug, Clone)]
pub struct Slice {
    inner: Arc<dyn BlockDevice>,
    start: u64,
    len: u64,
}

impl Slice {
    /// A view of `len` bytes of `inner` from `start`; fails if the window leaves the device.
    pub fn new(inner: Arc<dyn BlockDevice>, start: u64, len: u64) -> Result<Self> {
        match start.checked_add(len) {
            Some(end) if end <= inner.size() => Ok(Slice { inner, start, len }),
            _ => Err(Error::new(
                ErrorKind::OutOfRange,
                format!(
                    "slice of {len} bytes at offset {start:#x} does not fit a device of {} bytes",
                    inner.size()
                ),
            )),
        }
    }
    /// Where the slice starts on the inner device.
    pub fn start(&self) -> u64 {
        self.start
    }
}

impl BlockDevice for Slice {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let (offset, n) = clip(offset, buf.len() as u64, self.len);
        if n == 0 {
            return Ok(0);
        }
        self.inner
            .read_at(self.start + offset, &mut buf[..n as usize])
    }
    fn map(&self, offset: u64, len: u64) -> Result<Mapping> {
        let (offset, len) = clip(offset, len, self.len);
        Ok(self
            .inner
            .map(self.start + offset, len)?
            .shifted_down(self.start))
    }
}

/// Another device followed by zeros up to `size` (a fixed VHD whose footer claims more
/// than its file holds; an output rounded up to a whole MiB).
#[derive(Debug, Clone)]
pub struct ZeroExtended {
    inner: Arc<dyn BlockDevice>,
    size: u64,
}

impl ZeroExtended {
    /// `inner`'s bytes, then zeros up to `size` (at least `inner`'s size).
    pub fn new(inner: Arc<dyn BlockDevice>, size: u64) -> Self {
        let size = size.max(inner.size());
        ZeroExtended { inner, size }
    }
}

impl BlockDevice for ZeroExtended {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let (offset, n) = clip(offset, buf.len() as u64, self.size);
        let buf = &mut buf[..n as usize];
        let (_, inside) = clip(offset, n, self.inner.size());
        let (head, tail) = buf.split_at_mut(inside as usize);
        if !head.is_empty() {
            self.inner.read_exact_at(offset, head)?;
        }
        tail.fill(0);
        Ok(n as usize)
    }
    fn map(&self, offset: u64, len: u64) -> Result<Mapping> {
        let (offset, len) = clip(offset, len, self.size);
        let (io, il) = clip(offset, len, self.inner.size());
        let mut m = self.inner.map(io, il)?;
        m.push(offset + il, len - il, ExtentKind::Zero);
        Ok(m)
    }
}

/// A device held in memory: for tests, fuzzing and small synthetic disks.
#[derive(Debug, Clone, Default)]
pub struct MemoryDevice {
    data: Arc<[u8]>,
}

impl MemoryDevice {
    /// Wraps bytes as a device.
    pub fn new(data: impl Into<Arc<[u8]>>) -> Self {
        MemoryDevice { data: data.into() }
    }
}

impl BlockDevice for MemoryDevice {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let (offset, n) = clip(offset, buf.len() as u64, self.size());
        let (offset, n) = (offset as usize, n as usize);
        buf[..n].copy_from_slice(&self.data[offset..offset + n]);
        Ok(n)
    }
}

/// A heap buffer whose start is aligned to 4 KiB. Page-aligned buffers make the kernel's
/// copies to and from the page cache markedly faster than malloc's 16-byte-offset blocks.
#[derive(Debug, Clone)]
pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// Alignment of the buffer start.
    pub const ALIGN: usize = 4096;

    /// A zeroed buffer of `len` bytes.
    pub fn new(len: usize) -> Self {
        let storage = vec![0u8; len + Self::ALIGN];
        let misalign = storage.as_ptr() as usize % Self::ALIGN;
        let start = (Self::ALIGN - misalign) % Self::ALIGN;
        AlignedBuf {
            storage,
            start,
            len,
        }
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// Returns true if every byte of `buf` is zero (fast path on 16-byte words).
pub fn is_zero(buf: &[u8]) -> bool {
    let (chunks, rest) = buf.split_at(buf.len() - buf.len() % 16);
    chunks
        .chunks_exact(16)
        .all(|c| u128::from_ne_bytes(c.try_into().unwrap_or([1; 16])) == 0)
        && rest.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_reads_and_clips() {
        let dev: Arc<dyn BlockDevice> = Arc::new(MemoryDevice::new((0u8..100).collect::<Vec<_>>()));
        let s = Slice::new(dev.clone(), 10, 20).expect("fits");
        let mut buf = [0u8; 30];
        assert_eq!(s.read_at(15, &mut buf).expect("read"), 5);
        assert_eq!(&buf[..5], &[25, 26, 27, 28, 29]);
        assert!(s.read_exact_at(15, &mut buf).is_err());
        assert!(Slice::new(dev, 90, 20).is_err());
        let m = s.map(0, 100).expect("map");
        assert_eq!(
            m.extents(),
            &[Extent {
                offset: 0,
                len: 20,
                kind: ExtentKind::Data
            }]
        );
    }

    #[test]
    fn zero_extended_reads_zeros_past_the_inner_device() {
        let dev: Arc<dyn BlockDevice> = Arc::new(MemoryDevice::new(vec![7u8; 10]));
        let z = ZeroExtended::new(dev, 16);
        let mut b = [1u8; 20];
        assert_eq!(z.read_at(8, &mut b).expect("read"), 8);
        assert_eq!(&b[..8], &[7, 7, 0, 0, 0, 0, 0, 0]);
        let m = z.map(0, 100).expect("map");
        assert_eq!(m.bytes_of(ExtentKind::Data), 10);
        assert_eq!(m.bytes_of(ExtentKind::Zero), 6);
    }

    #[test]
    fn aligned_buffer_is_aligned() {
        for len in [0, 1, 4096, 1 << 20] {
            let b = AlignedBuf::new(len);
            assert_eq!(b.len(), len);
            assert_eq!(b.as_ptr() as usize % AlignedBuf::ALIGN, 0);
        }
    }

    #[test]
    fn zero_detect() {
        assert!(is_zero(&[0u8; 37]));
        let mut v = vec![0u8; 37];
        v[36] = 1;
        assert!(!is_zero(&v));
        v[36] = 0;
        v[3] = 1;
        assert!(!is_zero(&v));
        assert!(is_zero(&[]));
    }
}
