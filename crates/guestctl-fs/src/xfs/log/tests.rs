//! Unit tests of the I/O-free parts over logs written here: a small writer lays records out
//! as the kernel does (cycle words moved into the headers, extended headers, CRCs, wrap),
//! and recovery runs against a memory device.

use super::record::{restore_cycle_data, CYCLE_SIZE};
use super::*;

const UUID: [u8; 16] = *b"0123456789abcdef";
const LOG_START: u64 = 1 << 20;
const LOG_BLOCKS: u64 = 2048;
const DISK: usize = 4 << 20;
const BUF_TYPE: u16 = 0x123c;
const INODE_TYPE: u16 = 0x123b;

struct Disk(Vec<u8>);

impl LogDevice for Disk {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let o = offset as usize;
        let src = self
            .0
            .get(o..o + buf.len())
            .ok_or_else(|| Error::corrupt("read past the test disk"))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

fn geo(v5: bool) -> LogGeometry {
    LogGeometry {
        start: LOG_START,
        len: LOG_BLOCKS * BBSIZE,
        sector_size: 512,
        block_size: 4096,
        stripe_unit: 0,
        v5,
        logv2: true,
        uuid: UUID,
        meta_uuid: UUID,
        inode_size: 512,
        fs_bytes: DISK as u64,
        ag_blocks: 256,
        ag_count: 4,
        ag_block_log: 8,
    }
}

/// Writes records into the log area of a test disk.
struct Writer {
    disk: Vec<u8>,
    cycle: u32,
    /// Next log block.
    pos: u64,
    tail_lsn: u64,
    h_size: u32,
    big_endian: bool,
    prev: u64,
}

fn op(tid: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&tid.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.push(0x69);
    v.push(flags);
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    v
}

impl Writer {
    fn new() -> Writer {
        Writer {
            disk: vec![0u8; DISK],
            cycle: 1,
            pos: 0,
            tail_lsn: 1 << 32,
            h_size: 32768,
            big_endian: false,
            prev: u64::MAX,
        }
    }

    fn h16(&self, v: u16) -> [u8; 2] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    fn h32(&self, v: u32) -> [u8; 4] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    fn h64(&self, v: u64) -> [u8; 8] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    fn lsn(&self) -> u64 {
        (u64::from(self.cycle) << 32) | self.pos
    }

    fn put_block(&mut self, blk: u64, b: &[u8]) {
        let at = (LOG_START + (blk % LOG_BLOCKS) * BBSIZE) as usize;
        self.disk[at..at + 512].copy_from_slice(b);
    }

    /// One record holding `ops` (op header + payload each); returns its first block.
    fn record(&mut self, ops: &[Vec<u8>]) -> u64 {
        let mut data: Vec<u8> = ops.concat();
        let len = data.len() as u32;
        data.resize(data.len().div_ceil(512) * 512, 0);
        let hblks = if self.h_size > CYCLE_SIZE {
            self.h_size.div_ceil(CYCLE_SIZE) as usize
        } else {
            1
        };
        let mut head = vec![0u8; hblks * 512];
        let blk = self.pos;
        let lsn = self.lsn();
        head[0..4].copy_from_slice(&0xFEED_BABEu32.to_be_bytes());
        head[4..8].copy_from_slice(&self.cycle.to_be_bytes());
        head[8..12].copy_from_slice(&2u32.to_be_bytes());
        head[12..16].copy_from_slice(&len.to_be_bytes());
        head[16..24].copy_from_slice(&lsn.to_be_bytes());
        head[24..32].copy_from_slice(&self.tail_lsn.to_be_bytes());
        head[36..40].copy_from_slice(&(self.prev as u32).to_be_bytes());
        head[40..44].copy_from_slice(&(ops.len() as u32).to_be_bytes());
        head[300..304].copy_from_slice(&(if self.big_endian { 2u32 } else { 1 }).to_be_bytes());
        head[304..320].copy_from_slice(&UUID);
        head[320..324].copy_from_slice(&self.h_size.to_be_bytes());
        for s in 1..hblks {
            head[s * 512..s * 512 + 4].copy_from_slice(&self.cycle.to_be_bytes());
        }
        // Move each data block's first word into the cycle data; stamp the cycle.
        for i in 0..data.len() / 512 {
            let (s, k) = (i / 64, i % 64);
            assert!(s < hblks, "record too big for its headers");
            let at = if s == 0 {
                44 + 4 * k
            } else {
                s * 512 + 4 + 4 * k
            };
            let w: [u8; 4] = data[i * 512..i * 512 + 4].try_into().expect("4");
            head[at..at + 4].copy_from_slice(&w);
            data[i * 512..i * 512 + 4].copy_from_slice(&self.cycle.to_be_bytes());
        }
        // Blocks past the physical end carry the next cycle (`xlog_split_iclog`), before the
        // CRC is computed.
        for i in 0..hblks + data.len() / 512 {
            if blk + i as u64 >= LOG_BLOCKS {
                let b = if i < hblks {
                    &mut head[i * 512..i * 512 + 4]
                } else {
                    &mut data[(i - hblks) * 512..(i - hblks) * 512 + 4]
                };
                let mut c = u32::from_be_bytes(b[..4].try_into().expect("4")) + 1;
                if c == 0xFEED_BABE {
                    c += 1;
                }
                b.copy_from_slice(&c.to_be_bytes());
            }
        }
        let mut c = crc32c::crc32c(&head[..32]);
        c = crc32c::crc32c_append(c, &[0; 4]);
        c = crc32c::crc32c_append(c, &head[36..328]);
        for s in 1..(len.div_ceil(CYCLE_SIZE) as usize) {
            c = crc32c::crc32c_append(c, &head[s * 512..s * 512 + 260]);
        }
        c = crc32c::crc32c_append(c, &data[..len as usize]);
        head[32..36].copy_from_slice(&c.to_le_bytes());
        for (i, b) in head.chunks(512).chain(data.chunks(512)).enumerate() {
            let b = b.to_vec();
            self.put_block(blk + i as u64, &b);
        }
        let total = (hblks + data.len() / 512) as u64;
        self.prev = blk;
        self.pos += total;
        if self.pos >= LOG_BLOCKS {
            self.pos -= LOG_BLOCKS;
            self.cycle += 1;
        }
        blk
    }

    /// Stamps every block with the current cycle, as a log written all the way round in
    /// it looks (records of that pass, long replayed).
    fn fill_old_cycle(&mut self) {
        for b in 0..LOG_BLOCKS {
            let mut blk = [0u8; 512];
            blk[0..4].copy_from_slice(&self.cycle.to_be_bytes());
            self.put_block(b, &blk);
        }
    }

    fn trans_header(&self, tid: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&self.h32(0x5452_414e));
        v.extend_from_slice(&self.h32(40));
        v.extend_from_slice(&self.h32(tid));
        v.extend_from_slice(&self.h32(1));
        v
    }

    /// Buffer item: format region + data regions for `chunks` (chunk index, 128 bytes).
    fn buf_item(
        &self,
        blkno: u64,
        len: u16,
        flags: u16,
        chunks: &[(usize, Vec<u8>)],
    ) -> Vec<Vec<u8>> {
        let mut map = [0u32; 17];
        for (c, d) in chunks {
            for k in 0..d.len() / 128 {
                map[(c + k) / 32] |= 1 << ((c + k) % 32);
            }
        }
        let words = 17;
        let mut f = Vec::new();
        f.extend_from_slice(&self.h16(BUF_TYPE));
        f.extend_from_slice(&self.h16(1 + chunks.len() as u16));
        f.extend_from_slice(&self.h16(flags));
        f.extend_from_slice(&self.h16(len));
        f.extend_from_slice(&self.h64(blkno));
        f.extend_from_slice(&self.h32(words));
        for w in map {
            f.extend_from_slice(&self.h32(w));
        }
        let mut v = vec![f];
        v.extend(chunks.iter().map(|(_, d)| d.clone()));
        v
    }

    /// A whole transaction in one record: start, header, the regions, commit.
    fn trans(&mut self, tid: u32, regions: &[Vec<u8>]) -> u64 {
        let mut ops = vec![op(tid, 0x01, &[]), op(tid, 0, &self.trans_header(tid))];
        ops.extend(regions.iter().map(|r| op(tid, 0, r)));
        ops.push(op(tid, 0x02, &[]));
        self.record(&ops)
    }

    fn unmount(&mut self) {
        let mut p = Vec::new();
        p.extend_from_slice(&self.h16(0x556e));
        p.extend_from_slice(&[0; 6]);
        self.record(&[op(0xdead, 0x20, &p)]);
    }
}

fn chunk(seed: u8) -> Vec<u8> {
    (0..128u32)
        .map(|i| (i as u8).wrapping_mul(7) ^ seed)
        .collect()
}

fn replay(w: &Writer, v5: bool) -> Result<LogState> {
    recover(&Disk(w.disk.clone()), &geo(v5))
}

fn recovered(w: &Writer) -> Recovered {
    match replay(w, true).expect("recover") {
        LogState::Dirty(r) => r,
        LogState::Clean => panic!("log reads as clean"),
    }
}

fn sector(r: &Recovered, s: u64) -> &[u8] {
    r.sectors.get(&s).map(|b| &b[..]).expect("sector replayed")
}

#[test]
fn cycle_data_is_restored() {
    let mut head = vec![0u8; 1024];
    let mut data = vec![0xAAu8; 512 * 70];
    for i in 0..70 {
        let at = if i < 64 {
            44 + 4 * i
        } else {
            512 + 4 + 4 * (i - 64)
        };
        head[at..at + 4].copy_from_slice(&(i as u32 + 1000).to_be_bytes());
    }
    restore_cycle_data(&head, &mut data, 2).expect("restore");
    for i in 0..70 {
        assert_eq!(
            &data[i * 512..i * 512 + 4],
            &(i as u32 + 1000).to_be_bytes()
        );
        assert_eq!(data[i * 512 + 4], 0xAA);
    }
    // Past 64 blocks with a single header sector: no slot.
    assert!(restore_cycle_data(&head, &mut data, 1).is_err());
}

#[test]
fn buffer_replay_with_cycle_words_and_clean_unmount() {
    let mut w = Writer::new();
    // Chunks whose first words the writer moves into the header.
    let regions = w.buf_item(
        100,
        8,
        0,
        &[(0, chunk(1)), (5, [chunk(2), chunk(3)].concat())],
    );
    w.trans(7, &regions);
    let r = recovered(&w);
    assert_eq!(r.transactions, 1);
    assert_eq!(&sector(&r, 100)[..128], &chunk(1)[..]);
    assert_eq!(&sector(&r, 101)[128..256], &chunk(2)[..]);
    assert_eq!(&sector(&r, 101)[256..384], &chunk(3)[..]);
    assert!(!r.sectors.contains_key(&102), "untouched sectors stay out");
    // A clean unmount record after it: nothing to replay.
    w.tail_lsn = w.lsn();
    w.unmount();
    assert!(matches!(replay(&w, true).expect("clean"), LogState::Clean));
}

#[test]
fn zeroed_log_is_clean() {
    let w = Writer::new();
    assert!(matches!(replay(&w, true).expect("zero"), LogState::Clean));
}

#[test]
fn uncommitted_transaction_is_not_replayed() {
    let mut w = Writer::new();
    let regions = w.buf_item(100, 8, 0, &[(0, chunk(1))]);
    w.trans(1, &regions);
    let r2 = w.buf_item(200, 8, 0, &[(0, chunk(9))]);
    let mut ops = vec![op(2, 0x01, &[]), op(2, 0, &w.trans_header(2))];
    ops.extend(r2.iter().map(|r| op(2, 0, r)));
    w.record(&ops);
    let r = recovered(&w);
    assert_eq!(r.transactions, 1);
    assert!(r.sectors.contains_key(&100) && !r.sectors.contains_key(&200));
    assert!(
        r.notes.iter().any(|n| n.contains("never committed")),
        "{:?}",
        r.notes
    );
}

#[test]
fn regions_split_across_ops_and_records() {
    let mut w = Writer::new();
    let big: Vec<u8> = (0..2048u32).map(|i| (i * 31 % 251) as u8).collect();
    let regions = w.buf_item(300, 8, 0, &[(4, big.clone())]);
    let th = w.trans_header(5);
    // Record 1: start, the header split in two ops, the format, the first 1000 data bytes.
    w.record(&[
        op(5, 0x01, &[]),
        op(5, 0x04, &th[..6]),
        op(5, 0x08 | 0x10, &th[6..]),
        op(5, 0, &regions[0]),
        op(5, 0x04, &big[..1000]),
    ]);
    // Record 2: the rest, continued, then the commit.
    w.record(&[
        op(5, 0x08, &big[1000..1500]),
        op(5, 0x08 | 0x10, &big[1500..]),
        op(5, 0x02, &[]),
    ]);
    let r = recovered(&w);
    let mut got = Vec::new();
    for s in 301..305 {
        got.extend_from_slice(sector(&r, s));
    }
    assert_eq!(&got[..2048], &big[..]);
    assert!(!r.sectors.contains_key(&300));
}

#[test]
fn records_wrap_around_the_end_of_the_log() {
    for (h_size, kib) in [(32768u32, 24u32), (262_144, 40)] {
        let mut w = Writer::new();
        w.h_size = h_size;
        w.cycle = 2;
        w.fill_old_cycle();
        // Start two blocks before the end: the (possibly multi-sector) header or the data
        // crosses the physical end.
        w.pos = LOG_BLOCKS - 2;
        w.tail_lsn = w.lsn();
        let data: Vec<u8> = (0..kib * 1024).map(|i| (i % 253) as u8).collect();
        let regions = w.buf_item(1000, 128, 0, &[(0, data.clone())]);
        let blk = w.trans(9, &regions);
        assert_eq!(blk, LOG_BLOCKS - 2);
        assert!(w.pos < 200 && w.cycle == 3, "the record wrapped");
        let r = recovered(&w);
        let mut got = Vec::new();
        for s in 1000..1000 + u64::from(kib) * 2 {
            got.extend_from_slice(sector(&r, s));
        }
        assert_eq!(got, data, "h_size {h_size}");
    }
}

#[test]
fn big_records_use_extended_headers() {
    let mut w = Writer::new();
    w.h_size = 262_144;
    let data: Vec<u8> = (0..150 * 1024u32).map(|i| (i * 13 % 241) as u8).collect();
    let regions = w.buf_item(2000, 128, 0, &[(0, data[..65536].to_vec())]);
    let regions2 = w.buf_item(3000, 128, 0, &[(0, data[65536..131072].to_vec())]);
    let mut all = regions;
    all.extend(regions2);
    w.trans(3, &all);
    let r = recovered(&w);
    for (base, part) in [(2000u64, &data[..65536]), (3000, &data[65536..131072])] {
        let mut got = Vec::new();
        for s in base..base + 128 {
            got.extend_from_slice(sector(&r, s));
        }
        assert_eq!(&got[..], part);
    }
}

#[test]
fn torn_head_is_dropped_elsewhere_an_error() {
    let mut w = Writer::new();
    let mut last = 0;
    for t in 0..10u32 {
        let regions = w.buf_item(100 + 8 * u64::from(t), 8, 0, &[(0, chunk(t as u8))]);
        last = w.trans(t + 1, &regions);
    }
    let good = w.disk.clone();
    // Damage the last record's data: a torn write, dropped with a note.
    let at = (LOG_START + (last + 1) * BBSIZE) as usize + 40;
    w.disk[at] ^= 0xFF;
    let r = recovered(&w);
    assert_eq!(r.transactions, 9);
    assert!(!r.sectors.contains_key(&(100 + 8 * 9)));
    assert!(
        r.notes.iter().any(|n| n.contains("torn log write")),
        "{:?}",
        r.notes
    );
    // Damage the first record instead: more than 8 records before the head, an error.
    w.disk = good;
    let at = (LOG_START + BBSIZE) as usize + 40;
    w.disk[at] ^= 0xFF;
    let e = replay(&w, true).expect_err("bad CRC in the middle");
    assert!(e.to_string().contains("CRC"), "{e}");
}

#[test]
fn cancelled_buffers_are_skipped_until_the_last_cancel() {
    let mut w = Writer::new();
    let a = w.buf_item(500, 8, 0, &[(0, chunk(1))]);
    w.trans(1, &a);
    let cancel = w.buf_item(500, 8, 1 << 1, &[]);
    w.trans(2, &cancel);
    // Reused after the cancel: replayed.
    let b = w.buf_item(500, 8, 0, &[(1, chunk(2))]);
    w.trans(3, &b);
    let r = recovered(&w);
    let s = sector(&r, 500);
    assert_eq!(&s[..128], &[0u8; 128][..], "the cancelled change");
    assert_eq!(&s[128..256], &chunk(2)[..], "the change after the cancel");
}

/// A big-endian host's log, and a little-endian one: the same inode.
#[test]
fn inode_items_in_both_byte_orders() {
    for big in [false, true] {
        let mut w = Writer::new();
        w.big_endian = big;
        // The inode on disk: v3, 512 bytes, at sector 64 + 1 (offset 512 in its buffer).
        let ino_at = 65 * 512;
        w.disk[ino_at..ino_at + 2].copy_from_slice(&0x494eu16.to_be_bytes());
        w.disk[ino_at + 4] = 3;
        w.disk[ino_at + 96..ino_at + 100].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        // Log dinode in host order.
        let mut ld = vec![0u8; 176];
        ld[0..2].copy_from_slice(&w.h16(0x494e));
        ld[2..4].copy_from_slice(&w.h16(0o100644));
        ld[4] = 3;
        ld[5] = 2; // extents
        ld[8..12].copy_from_slice(&w.h32(1000));
        ld[16..20].copy_from_slice(&w.h32(1));
        ld[32..36].copy_from_slice(&w.h32(1_700_000_000)); // legacy atime seconds
        ld[36..40].copy_from_slice(&w.h32(5));
        ld[56..64].copy_from_slice(&w.h64(4096));
        ld[64..72].copy_from_slice(&w.h64(1));
        ld[76..80].copy_from_slice(&w.h32(1));
        ld[152..160].copy_from_slice(&w.h64(129));
        ld[160..176].copy_from_slice(&UUID);
        let mut f = vec![0u8; 56];
        f[0..2].copy_from_slice(&w.h16(INODE_TYPE));
        f[2..4].copy_from_slice(&w.h16(3));
        f[4..8].copy_from_slice(&w.h32(0x1 | 0x4)); // core + extents
        f[10..12].copy_from_slice(&w.h16(16));
        f[16..24].copy_from_slice(&w.h64(129));
        f[40..48].copy_from_slice(&w.h64(64));
        f[48..52].copy_from_slice(&w.h32(16));
        f[52..56].copy_from_slice(&w.h32(512));
        let ext = vec![0x11u8; 16];
        w.trans(4, &[f, ld, ext.clone()]);
        let r = recovered(&w);
        let s = sector(&r, 65);
        assert_eq!(
            &s[2..4],
            &0o100644u16.to_be_bytes(),
            "big-endian host {big}"
        );
        assert_eq!(&s[8..12], &1000u32.to_be_bytes());
        assert_eq!(&s[32..36], &1_700_000_000u32.to_be_bytes());
        assert_eq!(&s[36..40], &5u32.to_be_bytes());
        assert_eq!(&s[56..64], &4096u64.to_be_bytes());
        assert_eq!(
            &s[96..100],
            &0x1234_5678u32.to_be_bytes(),
            "di_next_unlinked kept"
        );
        assert_eq!(&s[152..160], &129u64.to_be_bytes());
        assert_eq!(&s[176..192], &ext[..], "the data fork after the core");
        assert!(crate::xfs::csum::verify(s, 100).is_ok(), "CRC recomputed");
    }
}

#[test]
fn bmbt_root_is_converted_to_the_on_disk_form() {
    // In-memory root: v5 long header (72 bytes), room for 2 records, 1 in use.
    let mut src = vec![0u8; 72 + 32];
    src[0..4].copy_from_slice(&0x424d_4133u32.to_be_bytes());
    src[4..6].copy_from_slice(&1u16.to_be_bytes());
    src[6..8].copy_from_slice(&1u16.to_be_bytes());
    src[72..80].copy_from_slice(&7u64.to_be_bytes()); // key
    src[88..96].copy_from_slice(&0xABCDu64.to_be_bytes()); // ptr after 2 keys
    let mut dst = vec![0xEEu8; 4 + 16 * 5];
    super::apply::bmbt_to_bmdr(&src, &mut dst, true).expect("convert");
    assert_eq!(&dst[0..4], &[0, 1, 0, 1]);
    assert_eq!(&dst[4..12], &7u64.to_be_bytes());
    assert_eq!(&dst[4 + 5 * 8..4 + 6 * 8], &0xABCDu64.to_be_bytes());
    // More keys than fit the fork: refused.
    src[6..8].copy_from_slice(&3u16.to_be_bytes());
    assert!(super::apply::bmbt_to_bmdr(&src, &mut dst, true).is_err());
}

#[test]
fn icreate_initialises_the_chunk() {
    let mut w = Writer::new();
    let mut ic = vec![0u8; 28];
    ic[0..2].copy_from_slice(&w.h16(0x123f));
    ic[2..4].copy_from_slice(&w.h16(1));
    for (at, v) in [(4, 1u32), (8, 16), (12, 64), (16, 512), (20, 8), (24, 77)] {
        ic[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }
    w.trans(1, &[ic]);
    let r = recovered(&w);
    // AG 1 block 16: (256 + 16) * 8 sectors.
    let base = (256 + 16) * 8;
    for i in [0u64, 63] {
        let s = sector(&r, base + i);
        assert_eq!(&s[0..2], &0x494eu16.to_be_bytes());
        assert_eq!(s[4], 3);
        assert_eq!(&s[92..96], &77u32.to_be_bytes());
        assert_eq!(&s[96..100], &u32::MAX.to_be_bytes());
        let ino = (1u64 << (8 + 3)) | ((16 << 3) + i);
        assert_eq!(&s[152..160], &ino.to_be_bytes());
        assert!(crate::xfs::csum::verify(s, 100).is_ok());
    }
}

#[test]
fn v5_buffer_newer_on_disk_is_left_alone() {
    let mut w = Writer::new();
    // An AGI on disk stamped with an LSN from the future of this log.
    let at = 8 * 512;
    w.disk[at..at + 4].copy_from_slice(&0x5841_4749u32.to_be_bytes());
    w.disk[at + 296..at + 312].copy_from_slice(&UUID);
    w.disk[at + 320..at + 328].copy_from_slice(&((5u64 << 32) | 9).to_be_bytes());
    let regions = w.buf_item(8, 1, 0, &[(1, chunk(4))]);
    w.trans(1, &regions);
    let r = recovered(&w);
    assert!(!r.sectors.contains_key(&8));
    assert!(
        r.notes.iter().any(|n| n.contains("1 already newer")),
        "{:?}",
        r.notes
    );
    // On v4 there is no such check.
    let LogState::Dirty(r) = replay(&w, false).expect("v4") else {
        panic!("clean");
    };
    assert!(r.sectors.contains_key(&8));
}

#[test]
fn unknown_items_and_unfinished_intents_are_noted() {
    let mut w = Writer::new();
    let mut odd = vec![0u8; 16];
    odd[0..2].copy_from_slice(&w.h16(0x1299));
    odd[2..4].copy_from_slice(&w.h16(1));
    let mut bui = vec![0u8; 48];
    bui[0..2].copy_from_slice(&w.h16(0x1244));
    bui[2..4].copy_from_slice(&w.h16(1));
    bui[8..16].copy_from_slice(&w.h64(42));
    let mut efi = bui.clone();
    efi[0..2].copy_from_slice(&w.h16(0x1236));
    let mut efd = efi.clone();
    efd[0..2].copy_from_slice(&w.h16(0x1237));
    w.trans(1, &[odd, bui, efi, efd]);
    let r = recovered(&w);
    let notes = r.notes.join("\n");
    assert!(notes.contains("unknown types 0x1299"), "{notes}");
    assert!(notes.contains("(BUI)"), "{notes}");
    assert!(!notes.contains("(EFI)"), "the EFI has its EFD: {notes}");
}

/// Damaged and hostile logs: errors, never panics or hangs.
#[test]
fn hostile_logs() {
    let mut w = Writer::new();
    let regions = w.buf_item(100, 8, 0, &[(0, chunk(1))]);
    w.trans(1, &regions);
    let base = w.disk.clone();
    const H: usize = LOG_START as usize;
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Damage)> = vec![
        (
            "huge h_len",
            Box::new(|d| d[H + 12..H + 16].copy_from_slice(&u32::MAX.to_be_bytes())),
        ),
        ("zero h_len", Box::new(|d| d[H + 12..H + 16].fill(0))),
        (
            "huge h_size",
            Box::new(|d| d[H + 320..H + 324].copy_from_slice(&(64u32 << 20).to_be_bytes())),
        ),
        (
            "many ops",
            Box::new(|d| d[H + 40..H + 44].copy_from_slice(&u32::MAX.to_be_bytes())),
        ),
        (
            "bad version",
            Box::new(|d| d[H + 8..H + 12].copy_from_slice(&7u32.to_be_bytes())),
        ),
        (
            "tail beyond the log",
            Box::new(|d| d[H + 24..H + 32].copy_from_slice(&((1u64 << 32) | 99_999).to_be_bytes())),
        ),
        ("other uuid", Box::new(|d| d[H + 304] ^= 1)),
        ("no format", Box::new(|d| d[H + 300..H + 304].fill(0))),
    ];
    for (what, f) in cases {
        let mut d = base.clone();
        f(&mut d);
        // Re-stamp nothing: the CRC no longer matches either; both must be handled.
        let _ = recover(&Disk(d), &geo(true))
            .map(|_| ())
            .map_err(|e| e.to_string());
        let _ = what;
    }
    // Random logs.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..40 {
        let mut d = base.clone();
        for _ in 0..(round * 7 + 1) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = H + (x % (8 * 512)) as usize;
            d[at] = (x >> 56) as u8;
        }
        let _ = recover(&Disk(d), &geo(round % 2 == 0));
    }
    // Every block a record header of the same cycle, claiming huge records.
    let mut d = vec![0u8; DISK];
    for b in 0..LOG_BLOCKS as usize {
        let at = H + b * 512;
        d[at..at + 4].copy_from_slice(&0xFEED_BABEu32.to_be_bytes());
        d[at + 4..at + 8].copy_from_slice(&1u32.to_be_bytes());
        d[at + 8..at + 12].copy_from_slice(&2u32.to_be_bytes());
        d[at + 12..at + 16].copy_from_slice(&(200 * 1024u32).to_be_bytes());
        d[at + 304..at + 320].copy_from_slice(&UUID);
        d[at + 320..at + 324].copy_from_slice(&(256 * 1024u32).to_be_bytes());
    }
    assert!(recover(&Disk(d), &geo(true)).is_err());
    // A log too small, too big, unaligned.
    for len in [0, 512, 1000 * 512 + 1, 3 << 30] {
        let mut g = geo(true);
        g.len = len;
        assert!(recover(&Disk(base.clone()), &g).is_err());
    }
}

#[test]
fn too_many_open_transactions_is_a_limit() {
    let mut w = Writer::new();
    // 5000 transactions started in a few records, none committed.
    let mut tid = 1;
    for _ in 0..5 {
        let ops: Vec<Vec<u8>> = (0..1000)
            .map(|_| {
                tid += 1;
                op(tid, 0x01, &[])
            })
            .collect();
        w.record(&ops);
    }
    let e = replay(&w, true).expect_err("limit");
    assert_eq!(e.kind(), crate::ErrorKind::Limit, "{e}");
}

#[test]
fn fuzzing_fix_up_makes_crcs_match() {
    let mut w = Writer::new();
    let regions = w.buf_item(100, 8, 0, &[(0, chunk(1))]);
    let blk = w.trans(1, &regions);
    // Change a data byte of the chunk: the CRC fails, then matches after the fix-up.
    let at = (LOG_START + (blk + 1) * BBSIZE) as usize + 200;
    w.disk[at] ^= 0x01;
    assert!(
        matches!(replay(&w, true), Ok(LogState::Clean)),
        "a lone damaged record is a torn write: nothing left to replay"
    );
    let log = &mut w.disk[LOG_START as usize..(LOG_START + LOG_BLOCKS * BBSIZE) as usize];
    super::record::fix_crcs(log, true);
    let r = recovered(&w);
    assert_eq!(r.transactions, 1);
}
