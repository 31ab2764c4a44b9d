//! Transactions from op headers (`xlog_op_header`, big-endian): ops grouped by transaction
//! id, regions joined across ops and records, items made of regions
//! (`xlog_recover_add_to_trans`, `xlog_recover_add_to_cont_trans`).

use std::collections::HashMap;

use super::record::Record;
use super::{Endian, Log};
use crate::bytes::be32;
use crate::{Error, Result};

/// Op header flags.
const START_TRANS: u8 = 0x01;
const COMMIT_TRANS: u8 = 0x02;
const CONTINUE_TRANS: u8 = 0x04;
const WAS_CONT_TRANS: u8 = 0x08;
const END_TRANS: u8 = 0x10;
const UNMOUNT_TRANS: u8 = 0x20;
/// Client ids.
const CLIENT_TRANSACTION: u8 = 0x69;
const CLIENT_LOG: u8 = 0xaa;
const OP_HEADER: usize = 12;
/// `XFS_TRANS_HEADER_MAGIC` (`TRAN`, host order).
const TRANS_MAGIC: u32 = 0x5452_414e;
const TRANS_HEADER: usize = 16;
/// `XLOG_MAX_REGIONS_IN_ITEM`.
pub(super) const MAX_REGIONS: usize = 64 * 1024 / 128 / 2 + 1;
/// Transactions open at once (the kernel has at most a few checkpoints in flight).
const MAX_OPEN: usize = 4096;
/// Bytes held by open transactions.
pub(super) const MAX_PENDING_BYTES: usize = 1 << 30;

/// One log item: its regions (`ri_buf`), the first being the item's format structure.
#[derive(Debug)]
pub(super) struct Item {
    /// Regions expected (the format's size field).
    pub total: usize,
    pub regions: Vec<Vec<u8>>,
    /// Device byte offset where the item's first region starts (for messages).
    pub offset: u64,
}

/// A committed transaction.
#[derive(Debug)]
pub(super) struct Trans {
    /// LSN of the record holding the start op.
    pub lsn: u64,
    /// Byte order of the host-order structures.
    pub endian: Endian,
    pub items: Vec<Item>,
    /// Bytes held (for the memory cap).
    bytes: usize,
    header: [u8; TRANS_HEADER],
    /// Bytes of the transaction header seen; the first item exists once it is whole.
    header_len: usize,
}

/// Builds transactions from the records of a walk.
#[derive(Default)]
pub(super) struct Assembler {
    open: HashMap<u32, Trans>,
    bytes: usize,
}

fn bad(at: u64, msg: impl Into<String>) -> Error {
    Error::corrupt(msg.into()).structure("xfs log op").at(at)
}

impl Assembler {
    /// Transactions started and never committed (dropped at the end of the log).
    pub(super) fn uncommitted(&self) -> usize {
        self.open.len()
    }

    /// Feeds the ops of one record; `commit` gets every transaction whose commit op it holds.
    pub(super) fn record(
        &mut self,
        log: &Log<'_>,
        rec: &Record,
        commit: &mut dyn FnMut(Trans) -> Result<()>,
    ) -> Result<()> {
        let end = (rec.hdr.len as usize).min(rec.data.len());
        let mut dp = 0usize;
        let mut ops = rec.hdr.num_logops;
        let endian = rec.hdr.endian();
        if rec.hdr.uuid != log.geo.uuid {
            return Err(Error::corrupt(
                "a dirty log record belongs to another filesystem (UUID mismatch)",
            )
            .structure("xfs log record")
            .at(log.offset_of(rec.blk)));
        }
        while dp < end && ops > 0 {
            let at = rec.data_offset(log, dp);
            if dp + OP_HEADER > end {
                return Err(bad(at, "op header runs past the end of the record"));
            }
            let oh = &rec.data[dp..dp + OP_HEADER];
            let tid = be32(oh, 0);
            let len = be32(oh, 4) as usize;
            let client = oh[8];
            let flags = oh[9];
            dp += OP_HEADER;
            if client != CLIENT_TRANSACTION && client != CLIENT_LOG {
                return Err(bad(at, format!("op of unknown client {client:#04x}")));
            }
            if len > end - dp {
                return Err(bad(
                    at,
                    format!("op of {len} bytes runs past the end of the record"),
                ));
            }
            let payload = &rec.data[dp..dp + len];
            let data_at = rec.data_offset(log, dp);
            dp += len;
            ops -= 1;
            self.op(
                tid,
                flags,
                payload,
                rec.hdr.lsn,
                endian,
                at,
                data_at,
                commit,
            )?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn op(
        &mut self,
        tid: u32,
        flags: u8,
        payload: &[u8],
        lsn: u64,
        endian: Option<Endian>,
        at: u64,
        data_at: u64,
        commit: &mut dyn FnMut(Trans) -> Result<()>,
    ) -> Result<()> {
        if !self.open.contains_key(&tid) {
            // Ops of transactions that started before the tail are skipped.
            if flags & START_TRANS == 0 {
                return Ok(());
            }
            let Some(endian) = endian else {
                return Err(Error::corrupt(
                    "the dirty log was written in an unknown format (h_fmt)",
                )
                .structure("xfs log record")
                .at(at));
            };
            if self.open.len() >= MAX_OPEN {
                return Err(Error::limit(format!(
                    "more than {MAX_OPEN} transactions open in the log"
                ))
                .structure("xfs log")
                .at(at));
            }
            self.open.insert(
                tid,
                Trans {
                    lsn,
                    endian,
                    items: Vec::new(),
                    bytes: 0,
                    header: [0; TRANS_HEADER],
                    header_len: 0,
                },
            );
            return Ok(());
        }
        let mut f = flags & !END_TRANS;
        if f & WAS_CONT_TRANS != 0 {
            f &= !CONTINUE_TRANS;
        }
        match f {
            0 | CONTINUE_TRANS => self.add(tid, payload, data_at),
            WAS_CONT_TRANS => self.add_cont(tid, payload, data_at),
            COMMIT_TRANS => {
                let t = self.take(tid);
                commit(t)
            }
            UNMOUNT_TRANS => {
                self.take(tid);
                Ok(())
            }
            _ => {
                self.take(tid);
                Err(bad(
                    at,
                    format!("op flags {flags:#04x} for open transaction {tid:#010x}"),
                ))
            }
        }
    }

    fn take(&mut self, tid: u32) -> Trans {
        let t = self
            .open
            .remove(&tid)
            .expect("callers check the transaction is open");
        self.bytes -= t.bytes;
        t
    }

    fn charge(&mut self, tid: u32, n: usize, at: u64) -> Result<()> {
        if self.bytes + n > MAX_PENDING_BYTES {
            return Err(Error::limit(format!(
                "open log transactions hold more than {MAX_PENDING_BYTES} bytes"
            ))
            .structure("xfs log")
            .at(at));
        }
        self.bytes += n;
        if let Some(t) = self.open.get_mut(&tid) {
            t.bytes += n;
        }
        Ok(())
    }

    /// A new region (or the first part of one).
    fn add(&mut self, tid: u32, dp: &[u8], at: u64) -> Result<()> {
        if dp.is_empty() {
            return Ok(());
        }
        self.charge(tid, dp.len(), at)?;
        let t = self.open.get_mut(&tid).expect("checked by the caller");
        if t.header_len < TRANS_HEADER && t.items.is_empty() {
            if t.header_len != 0 {
                return Err(bad(at, "transaction header continued without WAS_CONT"));
            }
            if t.endian.u32(dp, 0) != TRANS_MAGIC {
                return Err(bad(
                    at,
                    format!(
                        "transaction {tid:#010x} does not start with a transaction header (magic {:#010x})",
                        t.endian.u32(dp, 0)
                    ),
                ));
            }
            if dp.len() > TRANS_HEADER {
                return Err(bad(at, format!("transaction header of {} bytes", dp.len())));
            }
            t.header[..dp.len()].copy_from_slice(dp);
            t.header_len = dp.len();
            if dp.len() == TRANS_HEADER {
                t.items.push(Item {
                    total: 0,
                    regions: Vec::new(),
                    offset: at,
                });
            }
            return Ok(());
        }
        let need_new = t
            .items
            .last()
            .is_none_or(|i| i.total != 0 && i.total == i.regions.len());
        if need_new {
            t.items.push(Item {
                total: 0,
                regions: Vec::new(),
                offset: at,
            });
        }
        let item = t.items.last_mut().expect("pushed above");
        if item.total == 0 {
            if dp.len() < 4 {
                return Err(bad(at, format!("log item format of {} bytes", dp.len())));
            }
            let total = usize::from(t.endian.u16(dp, 2));
            if total == 0 || total > MAX_REGIONS {
                return Err(bad(
                    at,
                    format!("log item with {total} regions (1 to {MAX_REGIONS} expected)"),
                ));
            }
            item.total = total;
            item.offset = at;
        }
        item.regions.push(dp.to_vec());
        Ok(())
    }

    /// The rest of a region split across ops.
    fn add_cont(&mut self, tid: u32, dp: &[u8], at: u64) -> Result<()> {
        self.charge(tid, dp.len(), at)?;
        let t = self.open.get_mut(&tid).expect("checked by the caller");
        if t.items.is_empty() {
            // The rest of a split transaction header.
            let have = t.header_len;
            if have + dp.len() != TRANS_HEADER {
                return Err(bad(
                    at,
                    format!(
                        "transaction header continued with {} bytes after {have}",
                        dp.len()
                    ),
                ));
            }
            t.header[have..].copy_from_slice(dp);
            t.header_len = TRANS_HEADER;
            if t.endian.u32(&t.header, 0) != TRANS_MAGIC {
                return Err(bad(at, "transaction header with a bad magic"));
            }
            t.items.push(Item {
                total: 0,
                regions: Vec::new(),
                offset: at,
            });
            return Ok(());
        }
        let item = t.items.last_mut().expect("not empty");
        let Some(last) = item.regions.last_mut() else {
            return Err(bad(at, "continued region without a region to continue"));
        };
        last.extend_from_slice(dp);
        Ok(())
    }
}
