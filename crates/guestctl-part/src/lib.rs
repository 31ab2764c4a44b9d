//! Partition tables for guestctl: MBR (primary, extended and logical partitions; protective
//! and hybrid) and GPT (header and entry CRCs checked, the backup header used and reported
//! when the primary is bad, any entry count or size within 16 MiB, 512- and 4096-byte
//! sectors probed). A disk without a table (a whole-disk filesystem) scans to no partitions.
//!
//! Names follow Linux and libguestfs: the first disk is `/dev/sda`, its partitions
//! `/dev/sda1`…, MBR logical partitions are numbered from 5 in chain order, and the
//! partitions of a BSD disklabel inside an MBR slice after them (as Linux numbers them).
//!
//! Hostile input: EBR chains are loop-checked and stop after [`MAX_LOGICAL`] partitions;
//! entries past the end of the disk are reported in `notes` and clipped when opened.
//! Parsers ([`mbr`], [`gpt`]) are pure functions over bytes.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bsd;
pub mod gpt;
pub mod lvm;
pub mod mbr;

use std::collections::HashSet;
use std::sync::Arc;

pub use guestctl_block::{BlockDevice, Error, ErrorKind, Result, Slice};

/// The most logical partitions followed in one EBR chain.
pub const MAX_LOGICAL: usize = 128;

/// Which kind of table a disk has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// MBR (msdos) table.
    Mbr,
    /// GUID partition table.
    Gpt,
    /// A BSD disklabel covering the whole disk ("dangerously dedicated", no MBR).
    Bsd,
}

impl Scheme {
    /// `mbr` or `gpt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Mbr => "mbr",
            Scheme::Gpt => "gpt",
            Scheme::Bsd => "bsd",
        }
    }
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Linux partition number (GPT: entry index + 1; MBR: slot + 1, logicals from 5).
    pub number: u32,
    /// Byte offset on the disk.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// The table it comes from.
    pub scheme: Scheme,
    /// MBR type byte.
    pub mbr_type: Option<u8>,
    /// BSD disklabel `p_fstype`, for a partition of a disklabel inside an MBR slice.
    pub bsd_fstype: Option<u8>,
    /// GPT type GUID.
    pub type_guid: Option<String>,
    /// GPT unique partition GUID.
    pub part_guid: Option<String>,
    /// GPT partition name.
    pub name: Option<String>,
    /// MBR boot flag.
    pub bootable: bool,
    /// An MBR logical partition (inside the extended one).
    pub logical: bool,
    /// The MBR extended container itself (holds no filesystem).
    pub extended: bool,
    /// A human name for the type (`Linux filesystem`, `FAT32`, ...).
    pub type_name: &'static str,
}

/// What a disk's partition table says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionTable {
    /// `None`: no partition table (the whole disk may hold a filesystem).
    pub scheme: Option<Scheme>,
    /// Logical sector size the table uses.
    pub sector_size: u32,
    /// MBR disk signature (8 hex digits) or GPT disk GUID.
    pub disk_id: Option<String>,
    /// The partitions, in number order.
    pub partitions: Vec<Partition>,
    /// What a user should know (backup GPT used, hybrid MBR, entries past the disk end...).
    pub notes: Vec<String>,
}

/// `/dev/sda`, `/dev/sdb`, … `/dev/sdz`, `/dev/sdaa`, … for the disk at `index` (0-based).
pub fn disk_name(index: usize) -> String {
    let mut n = index + 1;
    let mut letters = Vec::new();
    while n > 0 {
        n -= 1;
        letters.push(b'a' + (n % 26) as u8);
        n /= 26;
    }
    letters.reverse();
    format!("/dev/sd{}", String::from_utf8_lossy(&letters))
}

/// `/dev/sda1` for disk 0, partition 1.
pub fn partition_name(disk: usize, number: u32) -> String {
    format!("{}{number}", disk_name(disk))
}

/// Parses a libguestfs-style device name into (disk index, partition number or 0).
/// Accepts `/dev/sdX[N]`, `/dev/vdX[N]` and `/dev/hdX[N]`.
pub fn parse_device_name(name: &str) -> Option<(usize, u32)> {
    let rest = ["/dev/sd", "/dev/vd", "/dev/hd", "/dev/xvd"]
        .iter()
        .find_map(|p| name.strip_prefix(p))?;
    let letters: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
    if letters.is_empty() || letters.len() > 3 {
        return None;
    }
    let digits = &rest[letters.len()..];
    let mut idx = 0usize;
    for c in letters.bytes() {
        idx = idx * 26 + usize::from(c - b'a') + 1;
    }
    let part = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    Some((idx - 1, part))
}

fn read(dev: &dyn BlockDevice, offset: u64, len: usize, what: &'static str) -> Result<Vec<u8>> {
    let mut b = vec![0u8; len];
    dev.read_exact_at(offset, &mut b)
        .map_err(|e| e.structure(what).at(offset))?;
    Ok(b)
}

/// Whether a first sector is a filesystem boot sector rather than an MBR.
fn is_fs_boot_sector(s: &[u8]) -> bool {
    s.len() >= 512
        && (&s[3..11] == b"NTFS    "
            || &s[3..11] == b"EXFAT   "
            || &s[0x36..0x3B] == b"FAT12"
            || &s[0x36..0x3B] == b"FAT16"
            || &s[0x52..0x57] == b"FAT32")
}

/// Reads the partition table of `dev`.
pub fn scan(dev: &dyn BlockDevice) -> Result<PartitionTable> {
    let size = dev.size();
    if size < 512 {
        return Ok(PartitionTable {
            sector_size: 512,
            ..Default::default()
        });
    }
    let s0 = read(dev, 0, 512, "MBR")?;
    let mbr = mbr::parse(&s0);
    let protective = matches!(&mbr, Ok(v) if v.iter().any(|e| e.kind == 0xEE));
    // GPT: behind a protective MBR, or (reported) with no valid MBR at all.
    if protective || mbr.is_err() || matches!(&mbr, Ok(v) if v.is_empty()) {
        if let Some(mut t) = scan_gpt(dev, protective)? {
            if let Ok(v) = &mbr {
                if v.iter().any(|e| e.kind != 0xEE) {
                    t.notes
                        .push("hybrid MBR: the MBR also lists partitions; the GPT is used".into());
                }
            }
            return Ok(t);
        }
        if protective {
            return Err(Error::corrupt(
                "protective MBR (type 0xee) but neither the primary nor the backup GPT is valid",
            )
            .structure("GPT"));
        }
    }
    let entries = match mbr {
        Ok(v) if !is_fs_boot_sector(&s0) => v,
        _ => {
            if size >= 1024 {
                if let Ok(label) = bsd::parse(&read(dev, 512, 512, "BSD disklabel")?, false) {
                    return Ok(dedicated_bsd(dev, label));
                }
            }
            return Ok(PartitionTable {
                sector_size: 512,
                ..Default::default()
            });
        }
    };
    scan_mbr(dev, &s0, entries)
}

fn scan_mbr(dev: &dyn BlockDevice, s0: &[u8], entries: Vec<mbr::Entry>) -> Result<PartitionTable> {
    const SS: u64 = 512;
    let disk_sectors = dev.size() / SS;
    let mut t = PartitionTable {
        scheme: Some(Scheme::Mbr),
        sector_size: SS as u32,
        disk_id: Some(format!(
            "{:08x}",
            u32::from_le_bytes([s0[440], s0[441], s0[442], s0[443]])
        )),
        ..Default::default()
    };
    let check_end = |t: &mut PartitionTable, n: u32, start: u64, sectors: u64| {
        if start + sectors > disk_sectors {
            t.notes.push(format!(
                "partition {n} (sectors {start}..{}) extends past the end of the disk ({disk_sectors} sectors)",
                start + sectors
            ));
        }
    };
    let mut extended = None;
    for e in &entries {
        let n = e.slot as u32 + 1;
        check_end(&mut t, n, e.start, e.sectors);
        if e.is_extended() {
            if extended.is_none() {
                extended = Some(e.start);
            } else {
                t.notes.push(format!(
                    "partition {n}: a second extended partition is ignored"
                ));
            }
        }
        t.partitions.push(Partition {
            number: n,
            start: e.start * SS,
            size: e.sectors * SS,
            scheme: Scheme::Mbr,
            mbr_type: Some(e.kind),
            bsd_fstype: None,
            type_guid: None,
            part_guid: None,
            name: None,
            bootable: e.bootable,
            logical: false,
            extended: e.is_extended(),
            type_name: mbr::type_name(e.kind),
        });
    }
    if let Some(base) = extended {
        let mut next = Some(base);
        let mut seen = HashSet::new();
        let mut number = 5u32;
        while let Some(ebr) = next.take() {
            if !seen.insert(ebr) {
                t.notes.push(format!(
                    "extended partition chain loops back to sector {ebr}: stopped"
                ));
                break;
            }
            if seen.len() > MAX_LOGICAL {
                t.notes.push(format!(
                    "more than {MAX_LOGICAL} logical partitions: stopped"
                ));
                break;
            }
            if ebr >= disk_sectors {
                t.notes.push(format!(
                    "extended boot record at sector {ebr} is past the end of the disk"
                ));
                break;
            }
            let s = read(dev, ebr * SS, 512, "extended boot record")?;
            let es = match mbr::parse(&s) {
                Ok(v) => v,
                Err(e) => {
                    t.notes.push(format!(
                        "extended boot record at sector {ebr} is invalid ({e:?}): chain stopped"
                    ));
                    break;
                }
            };
            for e in es {
                if e.is_extended() {
                    if next.is_none() {
                        next = Some(base + e.start);
                    }
                    continue;
                }
                let start = ebr + e.start;
                check_end(&mut t, number, start, e.sectors);
                t.partitions.push(Partition {
                    number,
                    start: start * SS,
                    size: e.sectors * SS,
                    scheme: Scheme::Mbr,
                    mbr_type: Some(e.kind),
                    bsd_fstype: None,
                    type_guid: None,
                    part_guid: None,
                    name: None,
                    bootable: e.bootable,
                    logical: true,
                    extended: false,
                    type_name: mbr::type_name(e.kind),
                });
                number += 1;
            }
        }
    }
    // BSD disklabels inside FreeBSD (0xa5), OpenBSD (0xa6) and NetBSD (0xa9) slices: their
    // partitions are numbered after the logical ones, as Linux does.
    let mut number = 5 + t.partitions.iter().filter(|p| p.logical).count() as u32;
    for e in entries
        .iter()
        .filter(|e| matches!(e.kind, 0xA5 | 0xA6 | 0xA9))
    {
        if e.start + 1 >= disk_sectors || e.sectors < 2 {
            continue;
        }
        let s = read(dev, (e.start + 1) * SS, 512, "BSD disklabel")?;
        let label = match bsd::parse(&s, e.kind == 0xA6) {
            Ok(l) => l,
            Err(why) => {
                t.notes.push(format!(
                    "partition {}: BSD slice without a readable disklabel ({why})",
                    e.slot + 1
                ));
                continue;
            }
        };
        if !label.checksum_ok {
            t.notes.push(format!(
                "partition {}: the BSD disklabel checksum does not match (read anyway)",
                e.slot + 1
            ));
        }
        for p in label.entries {
            let mut start = p.offset;
            // FreeBSD labels may count from the slice rather than the disk.
            if e.kind == 0xA5 && start < e.start {
                start += e.start;
            }
            if start == e.start && p.sectors == e.sectors {
                continue; // the whole slice ('c'): it is the MBR partition already
            }
            if start < e.start || start + p.sectors > e.start + e.sectors {
                if p.offset != 0 {
                    t.notes.push(format!(
                        "partition {}: disklabel partition {} (sectors {start}..{}) lies outside the slice: ignored",
                        e.slot + 1,
                        char::from(b'a' + p.index as u8),
                        start + p.sectors
                    ));
                }
                continue;
            }
            t.partitions.push(Partition {
                number,
                start: start * SS,
                size: p.sectors * SS,
                scheme: Scheme::Mbr,
                mbr_type: None,
                bsd_fstype: Some(p.fstype),
                type_guid: None,
                part_guid: None,
                name: Some(char::from(b'a' + p.index as u8).to_string()),
                bootable: false,
                logical: false,
                extended: false,
                type_name: bsd::fstype_name(p.fstype),
            });
            number += 1;
        }
    }
    Ok(t)
}

/// A whole-disk BSD disklabel: partitions numbered by their letter (`a` = 1, `e` = 5), as
/// the BSD tools and dissect.volume number them; the raw `c` partition (the whole disk) is
/// skipped.
fn dedicated_bsd(dev: &dyn BlockDevice, label: bsd::Label) -> PartitionTable {
    const SS: u64 = 512;
    let disk_sectors = dev.size() / SS;
    let mut t = PartitionTable {
        scheme: Some(Scheme::Bsd),
        sector_size: SS as u32,
        ..Default::default()
    };
    if !label.checksum_ok {
        t.notes
            .push("the BSD disklabel checksum does not match (read anyway)".into());
    }
    for p in label.entries {
        let letter = char::from(b'a' + p.index as u8);
        if p.offset == 0 && p.sectors >= disk_sectors {
            continue;
        }
        if p.offset + p.sectors > disk_sectors {
            t.notes.push(format!(
                "disklabel partition {letter} (sectors {}..{}) extends past the end of the disk",
                p.offset,
                p.offset + p.sectors
            ));
        }
        t.partitions.push(Partition {
            number: p.index as u32 + 1,
            start: p.offset * SS,
            size: p.sectors * SS,
            scheme: Scheme::Bsd,
            mbr_type: None,
            bsd_fstype: Some(p.fstype),
            type_guid: None,
            part_guid: None,
            name: Some(letter.to_string()),
            bootable: false,
            logical: false,
            extended: false,
            type_name: bsd::fstype_name(p.fstype),
        });
    }
    t
}

fn scan_gpt(dev: &dyn BlockDevice, protective: bool) -> Result<Option<PartitionTable>> {
    let size = dev.size();
    let mut problems = Vec::new();
    for ss in [512u64, 4096] {
        if size < ss * 3 {
            continue;
        }
        let last = size / ss - 1;
        let primary = read(dev, ss, ss as usize, "GPT header")?;
        if &primary[..8] != gpt::SIGNATURE && ss == 4096 && problems.is_empty() {
            continue;
        }
        let mut tried = Vec::new();
        match try_gpt(dev, ss, 1, &primary) {
            Ok((hdr, entries)) => {
                return Ok(Some(gpt_table(ss, hdr, entries, Vec::new(), protective)));
            }
            Err(e) => tried.push(format!("primary GPT at LBA 1 ({ss}-byte sectors): {e}")),
        }
        // The backup: at the alternate LBA the primary names (if it parsed), else the last LBA.
        let mut alts = vec![last];
        if let Ok(h) = gpt::parse_header(&primary) {
            if h.alternate_lba != last && h.alternate_lba > 1 && h.alternate_lba <= last {
                alts.insert(0, h.alternate_lba);
            }
        }
        for alt in alts {
            let b = read(dev, alt * ss, ss as usize, "backup GPT header")?;
            if &b[..8] != gpt::SIGNATURE {
                tried.push(format!("no backup GPT header at LBA {alt}"));
                continue;
            }
            match try_gpt(dev, ss, alt, &b) {
                Ok((hdr, entries)) => {
                    let mut notes = tried.clone();
                    notes.push(format!(
                        "the primary GPT is bad; the backup at LBA {alt} is used"
                    ));
                    return Ok(Some(gpt_table(ss, hdr, entries, notes, protective)));
                }
                Err(e) => tried.push(format!("backup GPT at LBA {alt}: {e}")),
            }
        }
        if &primary[..8] == gpt::SIGNATURE {
            // Last resort: a primary whose header is sound but whose entry array fails its
            // CRC (and no usable backup) is read anyway, and the mismatch reported.
            if let Ok(hdr) = gpt::parse_header(&primary) {
                if hdr.my_lba == 1 {
                    if let Ok(entries) = lenient_entries(dev, ss, &hdr) {
                        let mut notes = tried;
                        notes.push(
                            "the GPT entry array fails its CRC32 and there is no valid backup: entries read anyway"
                                .into(),
                        );
                        return Ok(Some(gpt_table(ss, hdr, entries, notes, protective)));
                    }
                }
            }
            problems.extend(tried);
        }
    }
    if !problems.is_empty() && protective {
        return Err(Error::corrupt(problems.join("; ")).structure("GPT"));
    }
    Ok(None)
}

fn try_gpt(
    dev: &dyn BlockDevice,
    ss: u64,
    lba: u64,
    sector: &[u8],
) -> std::result::Result<(gpt::Header, Vec<gpt::Entry>), String> {
    let hdr = gpt::parse_header(sector)?;
    if hdr.my_lba != lba {
        return Err(format!(
            "header says it is at LBA {}, found at {lba}",
            hdr.my_lba
        ));
    }
    let off = hdr
        .entries_lba
        .checked_mul(ss)
        .ok_or("entry array LBA overflows")?;
    if off.saturating_add(hdr.array_len()) > dev.size() {
        return Err(format!(
            "entry array at LBA {} runs past the end of the disk",
            hdr.entries_lba
        ));
    }
    let mut array = vec![0u8; hdr.array_len() as usize];
    dev.read_exact_at(off, &mut array)
        .map_err(|e| e.to_string())?;
    let entries = gpt::parse_entries(&hdr, &array)?;
    Ok((hdr, entries))
}

fn lenient_entries(
    dev: &dyn BlockDevice,
    ss: u64,
    hdr: &gpt::Header,
) -> std::result::Result<Vec<gpt::Entry>, String> {
    let off = hdr
        .entries_lba
        .checked_mul(ss)
        .ok_or("entry array LBA overflows")?;
    if off.saturating_add(hdr.array_len()) > dev.size() {
        return Err("entry array runs past the end of the disk".into());
    }
    let mut array = vec![0u8; hdr.array_len() as usize];
    dev.read_exact_at(off, &mut array)
        .map_err(|e| e.to_string())?;
    let mut h = hdr.clone();
    h.entries_crc = crc32fast::hash(&array);
    gpt::parse_entries(&h, &array)
}

fn gpt_table(
    ss: u64,
    hdr: gpt::Header,
    entries: Vec<gpt::Entry>,
    mut notes: Vec<String>,
    protective: bool,
) -> PartitionTable {
    if !protective {
        notes.push("GPT found without a protective MBR".into());
    }
    let partitions = entries
        .into_iter()
        .map(|e| {
            let tg = gpt::guid_string(&e.type_guid);
            if e.last_lba > hdr.last_usable || e.first_lba < hdr.first_usable {
                notes.push(format!(
                    "partition {} (LBA {}..={}) lies outside the usable area",
                    e.index + 1,
                    e.first_lba,
                    e.last_lba
                ));
            }
            Partition {
                number: e.index + 1,
                start: e.first_lba.saturating_mul(ss),
                size: (e.last_lba - e.first_lba)
                    .saturating_add(1)
                    .saturating_mul(ss),
                scheme: Scheme::Gpt,
                mbr_type: None,
                bsd_fstype: None,
                type_name: gpt::type_name(&tg),
                type_guid: Some(tg),
                part_guid: Some(gpt::guid_string(&e.part_guid)),
                name: Some(e.name),
                bootable: e.attributes & 0x4 != 0,
                logical: false,
                extended: false,
            }
        })
        .collect();
    PartitionTable {
        scheme: Some(Scheme::Gpt),
        sector_size: ss as u32,
        disk_id: Some(gpt::guid_string(&hdr.disk_guid)),
        partitions,
        notes,
    }
}

/// The partition as a block device of its own (clipped to the disk).
pub fn open_partition(disk: Arc<dyn BlockDevice>, p: &Partition) -> Result<Slice> {
    let size = disk.size();
    if p.start >= size {
        return Err(Error::corrupt(format!(
            "partition {} starts at byte {} beyond the end of the disk ({size} bytes)",
            p.number, p.start
        ))
        .structure("partition table"));
    }
    let len = p.size.min(size - p.start);
    Slice::new(disk, p.start, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(disk_name(0), "/dev/sda");
        assert_eq!(disk_name(25), "/dev/sdz");
        assert_eq!(disk_name(26), "/dev/sdaa");
        assert_eq!(partition_name(1, 2), "/dev/sdb2");
        assert_eq!(parse_device_name("/dev/sdb2"), Some((1, 2)));
        assert_eq!(parse_device_name("/dev/vda"), Some((0, 0)));
        assert_eq!(parse_device_name("/dev/sdaa1"), Some((26, 1)));
        assert_eq!(parse_device_name("/dev/nvme0n1"), None);
    }

    #[test]
    fn empty_and_tiny_disks() {
        let d = guestctl_block::MemoryDevice::new(vec![0u8; 100]);
        assert_eq!(scan(&d).expect("scan").scheme, None);
        let d = guestctl_block::MemoryDevice::new(vec![0u8; 1 << 20]);
        assert_eq!(scan(&d).expect("scan").scheme, None);
    }
}
