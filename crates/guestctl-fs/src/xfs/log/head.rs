//! Finding the head and the tail of the log (`xlog_find_tail` and what it calls): the cycle
//! number discontinuity, partial records at the head, the unmount record, torn writes.

use super::record::{self, Header, WalkError, CYCLE_SIZE, MAX_RECORD};
use super::{lsn_str, Log, BBSIZE};
use crate::{Error, ErrorKind, Result};

/// Most log buffers in flight at once (`XLOG_MAX_ICLOGS`): the span that can be torn.
const MAX_ICLOGS: u64 = 8;
/// `XLOG_OP_HEADER` flag of the unmount record.
const UNMOUNT_TRANS: u8 = 0x20;

/// The active part of a dirty log.
#[derive(Debug)]
pub(super) struct Bounds {
    /// Log block of the oldest record to replay.
    pub tail: u64,
    /// Log block after the newest good record.
    pub head: u64,
    /// Torn writes trimmed, tail moved, ...
    pub notes: Vec<String>,
}

pub(super) enum Found {
    Clean,
    Dirty(Bounds),
}

fn bad(log: &Log<'_>, blk: u64, msg: impl Into<String>) -> Error {
    Error::corrupt(msg.into())
        .structure("xfs log")
        .at(log.offset_of(blk))
}

/// Blocks scanned back from a head estimate for blocks of the old cycle
/// (`XLOG_TOTAL_REC_SHIFT`: every log buffer in flight at its largest).
fn total_rec_blocks(log: &Log<'_>) -> u64 {
    let rec = if log.geo.logv2 {
        u64::from(MAX_RECORD)
    } else {
        u64::from(CYCLE_SIZE)
    };
    (MAX_ICLOGS * rec / BBSIZE).min(log.blocks)
}

/// Blocks of the largest record (`XLOG_REC_SHIFT`).
fn rec_blocks(log: &Log<'_>) -> u64 {
    if log.geo.logv2 {
        u64::from(MAX_RECORD) / BBSIZE
    } else {
        u64::from(CYCLE_SIZE) / BBSIZE
    }
}

/// The first block of `[first, last]` stamped with `cycle`, by bisection, given that
/// `last` has it and `first` does not (`xlog_find_cycle_start`; approximate on a damaged
/// log, which the scans after it correct).
fn cycle_start(log: &Log<'_>, mut first: u64, mut last: u64, cycle: u32) -> Result<u64> {
    let mut mid = first + (last - first) / 2;
    while mid != first && mid != last {
        if log.cycle(mid)? == cycle {
            last = mid;
        } else {
            first = mid;
        }
        mid = first + (last - first) / 2;
    }
    Ok(last)
}

/// The first block of `[start, start + n)` stamped with `cycle` (`xlog_find_verify_cycle`).
fn find_cycle(log: &Log<'_>, start: u64, n: u64, cycle: u32) -> Result<Option<u64>> {
    const CHUNK: u64 = 2048;
    let mut i = 0;
    while i < n {
        let count = CHUNK.min(n - i);
        let buf = log.read(start + i, count)?;
        for (j, b) in buf.chunks_exact(BBSIZE as usize).enumerate() {
            if super::cycle_of(b) == cycle {
                return Ok(Some(start + i + j as u64));
            }
        }
        i += count;
    }
    Ok(None)
}

/// Visits the record headers of log blocks `[lo, hi)`, from the top down when `back`, until
/// `f` returns `true`; whether it did.
fn headers(
    log: &Log<'_>,
    lo: u64,
    hi: u64,
    back: bool,
    f: &mut dyn FnMut(u64, Header) -> Result<bool>,
) -> Result<bool> {
    const CHUNK: u64 = 512;
    let hi = hi.min(log.blocks);
    let mut left = hi.saturating_sub(lo);
    while left > 0 {
        let n = CHUNK.min(left);
        let from = if back { lo + left - n } else { hi - left };
        let buf = log.read(from, n)?;
        let order: Box<dyn Iterator<Item = u64>> = if back {
            Box::new((0..n).rev())
        } else {
            Box::new(0..n)
        };
        for j in order {
            let b = &buf[(j * BBSIZE) as usize..((j + 1) * BBSIZE) as usize];
            if let Some(h) = Header::parse(b) {
                if f(from + j, h)? {
                    return Ok(true);
                }
            }
        }
        left -= n;
    }
    Ok(false)
}

/// Scans back from `*last - 1` to `start` for a record header and moves `*last` back to it
/// when `*last` is in the middle of that record (`xlog_find_verify_log_record`). `extra`
/// counts blocks of the record already seen past the physical end. `Ok(false)` when the
/// scan reached block 0 (with `start == 0`) without a header: the caller looks at the end
/// of the log.
fn back_up_to_record(log: &Log<'_>, start: u64, last: &mut u64, extra: u64) -> Result<bool> {
    let end = *last;
    let found = headers(log, start, end, true, &mut |i, h| {
        check_uuid(log, i, &h)?;
        let xhdrs = if log.geo.logv2 {
            u64::from(h.size.div_ceil(CYCLE_SIZE))
        } else {
            1
        };
        if end - i + extra != h.bblks() + xhdrs {
            *last = i;
        }
        Ok(true)
    })?;
    if found || start == 0 {
        return Ok(found);
    }
    Err(bad(
        log,
        start,
        "log inconsistent: no record header before the head",
    ))
}

/// `xlog_header_check_mount`: the record belongs to this filesystem (IRIX wrote no UUID).
fn check_uuid(log: &Log<'_>, blk: u64, h: &Header) -> Result<()> {
    if h.uuid != [0; 16] && h.uuid != log.geo.uuid {
        return Err(bad(
            log,
            blk,
            "the log record belongs to another filesystem (UUID mismatch)",
        ));
    }
    Ok(())
}

/// A partly zeroed log (never wrapped since mkfs zeroed it): `Some(head)`, the block after
/// the last record; `None` when every block was written (`xlog_find_zeroed`).
fn find_zeroed(log: &Log<'_>) -> Result<Option<u64>> {
    let first_cycle = log.cycle(0)?;
    if first_cycle == 0 {
        return Ok(Some(0));
    }
    let last = log.blocks - 1;
    if log.cycle(last)? != 0 {
        return Ok(None);
    }
    if first_cycle != 1 {
        return Err(bad(
            log,
            0,
            format!("log inconsistent or not a log (first block in cycle {first_cycle}, last block zeroed)"),
        ));
    }
    let mut last_blk = cycle_start(log, 0, last, 0)?;
    let scan = total_rec_blocks(log).min(last_blk);
    let start = last_blk - scan;
    if let Some(b) = find_cycle(log, start, scan, 0)? {
        last_blk = b;
    }
    if !back_up_to_record(log, start, &mut last_blk, 0)? {
        return Err(bad(log, 0, "log inconsistent: no record header"));
    }
    Ok(Some(last_blk))
}

/// The head: the block after the last completely written record (`xlog_find_head`).
fn find_head(log: &Log<'_>) -> Result<u64> {
    if let Some(b) = find_zeroed(log)? {
        return Ok(b);
    }
    let n = log.blocks;
    let first_half = log.cycle(0)?;
    let last_half = log.cycle(n - 1)?;
    let (mut head, stop) = if first_half == last_half {
        // One cycle everywhere: the head is where a hole of the previous cycle starts, or
        // at the end (n, the same as block 0).
        (n, last_half.wrapping_sub(1))
    } else {
        (cycle_start(log, 0, n - 1, last_half)?, last_half)
    };
    // Scan back over what can have been in flight for blocks of the cycle that ends here.
    let scan = total_rec_blocks(log);
    let mut done = false;
    if head >= scan {
        if let Some(b) = find_cycle(log, head - scan, scan, stop)? {
            head = b;
        }
    } else {
        if let Some(b) = find_cycle(log, n - (scan - head), scan - head, stop.wrapping_sub(1))? {
            head = b;
            done = true;
        }
        if !done {
            if let Some(b) = find_cycle(log, 0, head, stop)? {
                head = b;
            }
        }
    }
    // The head must not be inside a record.
    let scan = rec_blocks(log);
    if head >= scan {
        if !back_up_to_record(log, head - scan, &mut head, 0)? {
            return Err(bad(log, head, "log inconsistent: no record header"));
        }
    } else if !back_up_to_record(log, 0, &mut head, 0)? {
        let mut new = n;
        if !back_up_to_record(log, n - (scan - head).min(n), &mut new, head)? {
            return Err(bad(log, head, "log inconsistent: no record header"));
        }
        if new != n {
            head = new;
        }
    }
    Ok(if head == n { 0 } else { head })
}

/// Up to `count` record headers found walking back from `head` (exclusive) towards `tail`,
/// wrapping at the physical start (`xlog_rseek_logrec_hdr`); returns the last one found
/// (the oldest) with its block, and how many.
fn rseek(
    log: &Log<'_>,
    head: u64,
    tail: u64,
    count: usize,
) -> Result<(usize, Option<(u64, Header)>)> {
    let mut found = 0;
    let mut last = None;
    let mut ranges = vec![(if head > tail { tail } else { 0 }, head)];
    if tail >= head {
        ranges.push((tail, log.blocks));
    }
    for (lo, hi) in ranges {
        let done = headers(log, lo, hi, true, &mut |blk, h| {
            last = Some((blk, h));
            found += 1;
            Ok(found == count)
        })?;
        if done {
            break;
        }
    }
    Ok((found, last))
}

/// Up to `count` record headers walking forward from `tail` (inclusive) towards `head`
/// (inclusive), wrapping (`xlog_seek_logrec_hdr`): the last one found.
fn seek(log: &Log<'_>, head: u64, tail: u64, count: usize) -> Result<Option<u64>> {
    let mut found = 0;
    let mut last = None;
    let mut ranges = vec![(tail, if head > tail { head + 1 } else { log.blocks })];
    if tail > head {
        ranges.push((0, head));
    }
    for (lo, hi) in ranges {
        let done = headers(log, lo, hi, false, &mut |blk, _| {
            last = Some(blk);
            found += 1;
            Ok(found == count)
        })?;
        if done {
            break;
        }
    }
    Ok(last)
}

/// The block part of a record's tail LSN.
fn tail_block(log: &Log<'_>, rblk: u64, h: &Header) -> Result<u64> {
    let b = u64::from(h.tail_lsn as u32);
    if b >= log.blocks {
        return Err(bad(
            log,
            rblk,
            format!(
                "tail LSN {} is beyond the end of the log",
                lsn_str(h.tail_lsn)
            ),
        ));
    }
    Ok(b)
}

/// Whether the record at `rblk` is an unmount record ending at `head` (`xlog_check_unmount_rec`).
fn is_unmount(log: &Log<'_>, head: u64, rblk: u64, h: &Header) -> Result<bool> {
    let hblks = h.hblks(log.geo.logv2);
    let after = (rblk + hblks + h.bblks()) % log.blocks;
    if head != after || h.num_logops != 1 {
        return Ok(false);
    }
    let op = log.read(rblk + hblks, 1)?;
    Ok(op[9] & UNMOUNT_TRANS != 0)
}

/// CRC-checks the records from `from` to `head`: the block of the first bad one.
/// Only damage counts: a failed read stops everything.
fn first_bad_crc(log: &Log<'_>, from: u64, head: u64) -> Result<Option<(u64, Error)>> {
    match record::walk(log, from, head, true, &mut |_| Ok(())) {
        Ok(()) => Ok(None),
        Err(WalkError { blk, error })
            if matches!(error.kind(), ErrorKind::Corrupt | ErrorKind::Checksum) =>
        {
            Ok(Some((blk, error)))
        }
        Err(WalkError { error, .. }) => Err(error),
    }
}

/// Head and tail, with torn writes at the head trimmed (`xlog_find_tail`,
/// `xlog_verify_head`, `xlog_verify_tail`).
pub(super) fn find(log: &Log<'_>) -> Result<Found> {
    let mut head = find_head(log)?;
    if head == 0 && log.cycle(0)? == 0 {
        // A zeroed log: nothing was ever written (mkfs always writes an unmount record).
        return Ok(Found::Clean);
    }
    let (_, last) = rseek(log, head, head, 1)?;
    let Some((mut rblk, mut rhead)) = last else {
        return Err(bad(log, head, "no log record header found"));
    };
    let mut notes = Vec::new();
    let mut tail = tail_block(log, rblk, &rhead)?;
    if is_unmount(log, head, rblk, &rhead)? {
        return Ok(Found::Clean);
    }

    // Torn writes: CRC-check the last records that can have been in flight.
    let (_, oldest) = rseek(log, head, tail, MAX_ICLOGS as usize)?;
    let from = oldest.map_or(rblk, |(b, _)| b);
    if let Some((first_bad, err)) = first_bad_crc(log, from, head)? {
        let (found, prev) = rseek(log, first_bad, tail, 1)?;
        let Some((pblk, ph)) = prev.filter(|_| found == 1) else {
            return Err(err);
        };
        notes.push(format!(
            "torn log write at the head: the records from log block {first_bad} on were dropped ({})",
            err.message()
        ));
        head = first_bad;
        rblk = pblk;
        rhead = ph;
        tail = tail_block(log, rblk, &rhead)?;
        if head == tail || is_unmount(log, head, rblk, &rhead)? {
            return Ok(Found::Clean);
        }
    }

    // The tail must point at a record; a torn write may have overwritten it.
    if let Some(t) = seek(log, head, tail, 1)? {
        tail = t;
    }
    let hsize = u64::from(rhead.size.clamp(CYCLE_SIZE, MAX_RECORD));
    let orig_tail = tail;
    let mut rounds = 0u64;
    while let Some((first_bad, err)) = first_bad_crc(log, tail, head)? {
        rounds += 1;
        let ahead = record::distance(log, head, first_bad);
        if ahead > MAX_ICLOGS * hsize / BBSIZE || rounds > MAX_ICLOGS * 2 {
            return Err(err);
        }
        match seek(log, head, first_bad, 2)? {
            Some(next) if next != first_bad => tail = next,
            _ => return Err(err),
        }
    }
    if tail != orig_tail {
        notes.push(format!(
            "the log tail at block {orig_tail} was overwritten by a torn write; replay starts at block {tail}"
        ));
    }
    if head == tail {
        return Ok(Found::Clean);
    }
    notes.insert(
        0,
        format!(
            "log head at block {head} (last record LSN {}), tail at block {tail}",
            lsn_str(rhead.lsn)
        ),
    );
    Ok(Found::Dirty(Bounds { tail, head, notes }))
}
