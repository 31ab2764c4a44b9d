//! A `Read + Seek` view of a [`BlockDevice`] for the `ntfs` crate, which takes its reader per
//! call. One is made per operation; it keeps a 64 KiB read-ahead window because the crate
//! reads metadata in many small pieces.

use std::io::{self, Read, Seek, SeekFrom};

use guestctl_block::BlockDevice;

const READ_AHEAD: usize = 64 * 1024;

/// A positioned reader over a device (see the module docs).
pub(crate) struct DevReader<'d> {
    dev: &'d dyn BlockDevice,
    size: u64,
    pos: u64,
    window: Vec<u8>,
    window_off: u64,
    mft_runs: &'d [(u64, u64)],
}

impl<'d> DevReader<'d> {
    pub(crate) fn new(dev: &'d dyn BlockDevice, mft_runs: &'d [(u64, u64)]) -> Self {
        DevReader {
            dev,
            size: dev.size(),
            pos: 0,
            window: Vec::new(),
            window_off: 0,
            mft_runs,
        }
    }

    /// A read that starts inside a run of `$MFT` and goes past its end continues at the start
    /// of the next run: the `ntfs` crate reads a file record in one piece from where its first
    /// byte lies, which is wrong for a record split between two runs of a fragmented `$MFT`.
    /// Nothing else reads across the end of an `$MFT` run (the crate reads attribute values
    /// run by run). Returns false when the read is not such a read.
    fn stitched_read(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let Some(i) = self
            .mft_runs
            .iter()
            .position(|&(s, l)| self.pos >= s && self.pos < s + l)
        else {
            return Ok(false);
        };
        let (s, l) = self.mft_runs[i];
        if self.pos + buf.len() as u64 <= s + l {
            return Ok(false);
        }
        let mut done = 0usize;
        let mut at = self.pos;
        let mut run_end = s + l;
        let mut next = i + 1;
        while done < buf.len() {
            let n = usize::try_from(run_end - at)
                .unwrap_or(usize::MAX)
                .min(buf.len() - done);
            self.dev
                .read_exact_at(at, &mut buf[done..done + n])
                .map_err(io::Error::other)?;
            done += n;
            if done < buf.len() {
                let Some(&(ns, nl)) = self.mft_runs.get(next) else {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file record runs past the last run of $MFT",
                    ));
                };
                at = ns;
                run_end = ns + nl;
                next += 1;
            }
        }
        self.pos += buf.len() as u64;
        Ok(true)
    }
}

impl Read for DevReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let avail = usize::try_from(self.size - self.pos).unwrap_or(usize::MAX);
        let want = buf.len().min(avail);
        if !self.mft_runs.is_empty() && self.stitched_read(&mut buf[..want])? {
            return Ok(want);
        }
        if want >= READ_AHEAD {
            self.dev
                .read_exact_at(self.pos, &mut buf[..want])
                .map_err(io::Error::other)?;
            self.pos += want as u64;
            return Ok(want);
        }
        let in_window = self.pos >= self.window_off
            && self.pos + want as u64 <= self.window_off + self.window.len() as u64;
        if !in_window {
            let start = self.pos & !4095;
            let len =
                usize::try_from((self.size - start).min(READ_AHEAD as u64)).unwrap_or(READ_AHEAD);
            self.window.resize(len, 0);
            self.dev
                .read_exact_at(start, &mut self.window)
                .map_err(io::Error::other)?;
            self.window_off = start;
        }
        let from = (self.pos - self.window_off) as usize;
        let n = want.min(self.window.len() - from);
        buf[..n].copy_from_slice(&self.window[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for DevReader<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
        };
        match new {
            Some(n) => {
                self.pos = n;
                Ok(n)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )),
        }
    }
}
