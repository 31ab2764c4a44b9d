//! Log records (`xlog_rec_header`, big-endian): header and extended headers, CRC, the cycle
//! data restored into the data, and walks over the records between two log blocks.

use super::{Endian, Log, BBSIZE};
use crate::bytes::{be32, be64, le32};
use crate::{Error, ErrorKind, Result};

/// `XLOG_HEADER_MAGIC_NUM`.
pub(super) const MAGIC: u32 = 0xFEED_BABE;
/// Data bytes whose cycle words one header sector holds (`XLOG_HEADER_CYCLE_SIZE`).
pub(super) const CYCLE_SIZE: u32 = 32 * 1024;
/// Cycle-data slots per header sector.
const SLOTS: usize = (CYCLE_SIZE as u64 / BBSIZE) as usize;
/// The largest in-core log buffer (`XLOG_MAX_RECORD_BSIZE`).
pub(super) const MAX_RECORD: u32 = 256 * 1024;

const H_VERSION: usize = 8;
const H_LEN: usize = 12;
const H_LSN: usize = 16;
const H_TAIL_LSN: usize = 24;
const H_CRC: usize = 32;
const H_NUM_LOGOPS: usize = 40;
const H_CYCLE_DATA: usize = 44;
const H_FMT: usize = 300;
const H_UUID: usize = 304;
const H_SIZE: usize = 320;
/// Header bytes covered by the CRC (`XLOG_REC_SIZE`, up to `h_pad0`), and the i386 size.
const CRC_SIZES: [usize; 2] = [328, 324];
/// Extended header bytes covered by the CRC (`XLOG_REC_EXT_SIZE`).
const EXT_CRC_SIZE: usize = 4 + 4 * SLOTS;

/// `h_fmt` values.
const FMT_LINUX_LE: u32 = 1;
const FMT_LINUX_BE: u32 = 2;
const FMT_IRIX_BE: u32 = 3;

/// The fields of a record header.
#[derive(Debug, Clone)]
pub(super) struct Header {
    pub version: u32,
    pub len: u32,
    pub lsn: u64,
    pub tail_lsn: u64,
    pub crc: u32,
    pub num_logops: u32,
    pub fmt: u32,
    pub uuid: [u8; 16],
    pub size: u32,
}

impl Header {
    /// Parses the first sector of a header (`None` when it is not one).
    pub(super) fn parse(b: &[u8]) -> Option<Header> {
        if b.len() < BBSIZE as usize || be32(b, 0) != MAGIC {
            return None;
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[H_UUID..H_UUID + 16]);
        Some(Header {
            version: be32(b, H_VERSION),
            len: be32(b, H_LEN),
            lsn: be64(b, H_LSN),
            tail_lsn: be64(b, H_TAIL_LSN),
            crc: le32(b, H_CRC),
            num_logops: be32(b, H_NUM_LOGOPS),
            fmt: be32(b, H_FMT),
            uuid,
            size: be32(b, H_SIZE),
        })
    }

    /// Header sectors of this record: one, or one per 32 KiB of `h_size` on v2 logs
    /// (`xlog_rec_ext_header`s follow the first).
    pub(super) fn hblks(&self, logv2: bool) -> u64 {
        if logv2 && self.version & 2 != 0 && self.size > CYCLE_SIZE {
            u64::from(self.size.div_ceil(CYCLE_SIZE))
        } else {
            1
        }
    }

    /// Basic blocks of record data.
    pub(super) fn bblks(&self) -> u64 {
        u64::from(self.len).div_ceil(BBSIZE)
    }

    /// The byte order of the host that wrote the record.
    pub(super) fn endian(&self) -> Option<Endian> {
        match self.fmt {
            FMT_LINUX_LE => Some(Endian::Little),
            FMT_LINUX_BE | FMT_IRIX_BE => Some(Endian::Big),
            _ => None,
        }
    }
}

/// One record read from the log, its data's cycle words restored.
pub(super) struct Record {
    /// Log block of the header.
    pub blk: u64,
    pub hdr: Header,
    pub hblks: u64,
    /// `bblks * 512` bytes; the first `hdr.len` are the record.
    pub data: Vec<u8>,
    /// The CRC matches (or is zero: mkfs and old kernels wrote none).
    pub crc_ok: bool,
}

impl Record {
    /// The device byte offset of byte `at` of the record's data.
    pub(super) fn data_offset(&self, log: &Log<'_>, at: usize) -> u64 {
        let at = at as u64;
        log.offset_of(self.blk + self.hblks + at / BBSIZE) + at % BBSIZE
    }

    /// Log blocks the record takes (header and data).
    pub(super) fn blocks(&self) -> u64 {
        self.hblks + self.hdr.bblks()
    }
}

fn bad(log: &Log<'_>, blk: u64, msg: impl Into<String>) -> Error {
    Error::corrupt(msg.into())
        .structure("xfs log record")
        .at(log.offset_of(blk))
}

/// Reads and checks the record whose header is at log block `blk` (`xlog_valid_rec_header`
/// and more: the version, length, header size and data must fit).
pub(super) fn read(log: &Log<'_>, blk: u64) -> Result<Record> {
    let first = log.read(blk, 1)?;
    let Some(hdr) = Header::parse(&first) else {
        return Err(bad(
            log,
            blk,
            format!("no record header (magic {:#010x})", be32(&first, 0)),
        ));
    };
    if hdr.version == 0 || hdr.version & !3 != 0 {
        return Err(bad(
            log,
            blk,
            format!("unknown log version {}", hdr.version),
        ));
    }
    if hdr.len == 0 || hdr.len > MAX_RECORD {
        return Err(bad(
            log,
            blk,
            format!("record of {} bytes (1 to {MAX_RECORD} expected)", hdr.len),
        ));
    }
    let logv2 = log.geo.logv2;
    if logv2 && hdr.version & 2 != 0 {
        if hdr.size > MAX_RECORD {
            return Err(bad(log, blk, format!("log buffer size {} bytes", hdr.size)));
        }
        // mkfs's unmount record may be longer than its h_size, up to the log stripe unit
        // (the kernel allows it).
        let mkfs_quirk = hdr.num_logops == 1 && hdr.len <= log.geo.stripe_unit.max(CYCLE_SIZE);
        if hdr.len > hdr.size && !mkfs_quirk {
            return Err(bad(
                log,
                blk,
                format!(
                    "record of {} bytes in a {}-byte log buffer",
                    hdr.len, hdr.size
                ),
            ));
        }
    }
    let hblks = hdr.hblks(logv2);
    let bblks = hdr.bblks();
    if hblks + bblks > log.blocks {
        return Err(bad(log, blk, "record larger than the log"));
    }
    let head = if hblks > 1 {
        log.read(blk, hblks)?
    } else {
        first
    };
    let mut data = log.read(blk + hblks, bblks)?;
    let crc_ok = hdr.crc == 0 || crc_candidates(&head, &data, &hdr).contains(&hdr.crc);
    restore_cycle_data(&head, &mut data, hblks).map_err(|m| bad(log, blk, m))?;
    Ok(Record {
        blk,
        hdr,
        hblks,
        data,
        crc_ok,
    })
}

/// The record CRCs for both header sizes the kernel accepts: crc32c over the header (its
/// CRC field zeroed), the extended headers the data needs, then the data as written.
fn crc_candidates(head: &[u8], data: &[u8], hdr: &Header) -> Vec<u32> {
    let len = (hdr.len as usize).min(data.len());
    let xheads = (hdr.len.div_ceil(CYCLE_SIZE) as usize).min(head.len() / BBSIZE as usize);
    CRC_SIZES
        .iter()
        .map(|&size| {
            let mut c = crc32c::crc32c(&head[..H_CRC]);
            c = crc32c::crc32c_append(c, &[0; 4]);
            c = crc32c::crc32c_append(c, &head[H_CRC + 4..size]);
            for i in 1..xheads {
                let at = i * BBSIZE as usize;
                c = crc32c::crc32c_append(c, &head[at..at + EXT_CRC_SIZE]);
            }
            crc32c::crc32c_append(c, &data[..len])
        })
        .collect()
}

/// Rewrites the CRC of every record header found in `log` that fits in it (for fuzzing:
/// mutated records then get past the CRC check to the code behind it).
pub(super) fn fix_crcs(log: &mut [u8], logv2: bool) {
    let bb = BBSIZE as usize;
    for blk in 0..log.len() / bb {
        let Some(hdr) = Header::parse(&log[blk * bb..]) else {
            continue;
        };
        let hblks = hdr.hblks(logv2) as usize;
        let start = (blk + hblks) * bb;
        let Some(end) = start.checked_add(hdr.bblks() as usize * bb) else {
            continue;
        };
        if hdr.len > MAX_RECORD || end > log.len() {
            continue;
        }
        let (head, data) = log.split_at_mut(start);
        let head = &mut head[blk * bb..];
        let crc = crc_candidates(head, &data[..end - start], &hdr)[0];
        head[H_CRC..H_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Puts back the first word of every data block (`xlog_unpack_data`): the writer moved it
/// into the header's `h_cycle_data` (blocks 0..63) and the extended headers' `xh_cycle_data`
/// (64 more each) to stamp the cycle number there.
pub(super) fn restore_cycle_data(
    head: &[u8],
    data: &mut [u8],
    hblks: u64,
) -> std::result::Result<(), String> {
    let blocks = data.len() / BBSIZE as usize;
    for i in 0..blocks {
        let (sector, slot) = (i / SLOTS, i % SLOTS);
        if sector as u64 >= hblks {
            return Err(format!(
                "block {i} of the record data has no cycle-data slot ({hblks} header sectors)"
            ));
        }
        let at = if sector == 0 {
            H_CYCLE_DATA + 4 * slot
        } else {
            sector * BBSIZE as usize + 4 + 4 * slot
        };
        let d = i * BBSIZE as usize;
        data[d..d + 4].copy_from_slice(&head[at..at + 4]);
    }
    Ok(())
}

/// Distance from log block `from` forward to `to`, wrapping.
pub(super) fn distance(log: &Log<'_>, from: u64, to: u64) -> u64 {
    (to + log.blocks - from) % log.blocks
}

/// Why a walk stopped early.
pub(super) struct WalkError {
    /// Log block of the record that failed.
    pub blk: u64,
    pub error: Error,
}

/// Visits the records from log block `tail` up to `head` in order, wrapping. A record that
/// fails to read or that `visit` rejects stops the walk. `check_crc` makes a CRC mismatch
/// stop it too.
pub(super) fn walk(
    log: &Log<'_>,
    tail: u64,
    head: u64,
    check_crc: bool,
    visit: &mut dyn FnMut(&Record) -> Result<()>,
) -> std::result::Result<(), WalkError> {
    let total = distance(log, tail, head);
    let mut done = 0u64;
    while done < total {
        let blk = (tail + done) % log.blocks;
        let fail = |error: Error| WalkError { blk, error };
        let rec = read(log, blk).map_err(fail)?;
        if done + rec.blocks() > total {
            return Err(fail(bad(
                log,
                blk,
                "the record runs past the head of the log",
            )));
        }
        if check_crc && !rec.crc_ok {
            return Err(fail(
                Error::new(
                    ErrorKind::Checksum,
                    format!("log record CRC {:#010x} does not match", rec.hdr.crc),
                )
                .structure("xfs log record")
                .at(log.offset_of(blk)),
            ));
        }
        visit(&rec).map_err(fail)?;
        done += rec.blocks();
    }
    Ok(())
}
