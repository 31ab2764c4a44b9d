//! The batch pipeline shared by the qcow2 and vmdk writers: batch `k + 1` is read (and
//! zero-checked, compressed) by the rayon workers while the writes planned for batch `k` go
//! out, so reading and writing overlap instead of taking turns. Two page-aligned batch
//! buffers alternate; the writes of a batch are planned (host offsets allocated, in guest
//! order) on the caller's thread between the two.

use guestctl_block::{AlignedBuf, Result};

/// One planned write.
pub(crate) enum Op {
    /// Bytes `from..to` of the batch buffer the plan was made for, at host offset `at`.
    Run { from: usize, to: usize, at: u64 },
    /// Owned bytes (compressed data, metadata) at host offset `.1`.
    Bytes(Vec<u8>, u64),
}

/// Positional writer: bytes at an offset.
pub(crate) type Write<'a> = &'a (dyn Fn(&[u8], u64) -> Result<()> + Sync);

fn apply(ops: &[Op], buf: &[u8], wr: Write<'_>) -> Result<()> {
    for op in ops {
        match op {
            Op::Run { from, to, at } => wr(&buf[*from..*to], *at)?,
            Op::Bytes(b, at) => wr(b, *at)?,
        }
    }
    Ok(())
}

/// Runs the batches `next` hands out, in order: `read(b, buf)` fills the batch buffer
/// (`buf_len` bytes) in parallel and returns what it found, `plan(b, found)` turns that into
/// writes (serially, in batch order), which are applied while the next batch is read.
pub(crate) fn run<B: Copy + Send, T: Send>(
    next: &mut dyn FnMut() -> Result<Option<B>>,
    buf_len: usize,
    read: &(dyn Fn(B, &mut [u8]) -> Result<T> + Sync),
    plan: &mut dyn FnMut(B, T) -> Result<Vec<Op>>,
    wr: Write<'_>,
) -> Result<()> {
    let mut bufs = [AlignedBuf::new(buf_len), AlignedBuf::new(buf_len)];
    let mut pending: Vec<Op> = Vec::new();
    let mut k = 0usize;
    while let Some(b) = next()? {
        let [b0, b1] = &mut bufs;
        let (cur, prev): (&mut [u8], &[u8]) = if k % 2 == 0 { (b0, b1) } else { (b1, b0) };
        let ops = std::mem::take(&mut pending);
        let (written, found) = rayon::join(|| apply(&ops, prev, wr), move || read(b, cur));
        written?;
        pending = plan(b, found?)?;
        k += 1;
    }
    // The last batch read went into buffer (k - 1) % 2.
    apply(&pending, &bufs[(k + 1) % 2], wr)
}

/// Batches `0..n`, for [`run`].
pub(crate) fn counter(n: u64) -> impl FnMut() -> Result<Option<u64>> {
    let mut k = 0u64;
    move || {
        let b = (k < n).then_some(k);
        k += 1;
        Ok(b)
    }
}
