//! Third-party partition tables from ../shared/corpus, checked against their upstream answer
//! sheets: dissect.volume's tests/disk/test_{mbr,gpt}.py assertions and DFTT test 1's
//! index.html table (ext-part-test-2.dd, a non-standard extended chain).
//!
//! Two conventions differ from dissect and are restated here: dissect sizes a GPT partition
//! as `(last_lba - first_lba) * sector`, one sector less than the inclusive range sfdisk and
//! the UEFI spec give (tests/part_tools.rs checks ours against sfdisk), so its sizes + one
//! sector are expected; and dissect lists the MBR's entries (the 0xEE one too) beside the GPT
//! ones, so its counts are the GPT entries plus the MBR entries.

use std::path::PathBuf;

use guestctl_block::{MemoryDevice, RawFile};
use guestctl_part::{scan, PartitionTable, Scheme};

fn corpus() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    assert!(
        p.join("INDEX.md").exists(),
        "../shared/corpus is missing beside the checkout: these tests need it"
    );
    p
}

fn dissect(name: &str) -> PartitionTable {
    let p = corpus().join("dissect.volume/tests/_data/disk").join(name);
    let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    scan(&MemoryDevice::new(data)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// (number, byte offset, byte size)
fn layout(t: &PartitionTable) -> Vec<(u32, u64, u64)> {
    t.partitions
        .iter()
        .map(|p| (p.number, p.start, p.size))
        .collect()
}

#[test]
fn dissect_mbr() {
    let t = dissect("mbr.bin");
    assert_eq!(t.scheme, Some(Scheme::Mbr));
    assert_eq!(
        layout(&t),
        vec![(1, 0x100000, 0x1F400000), (2, 0x1F500000, 0xEE0A00000)]
    );
    assert!(t.partitions.iter().all(|p| p.mbr_type == Some(7)));
    // The sample is only the first sector: the partitions lie past its end, and we say so.
    assert!(!t.notes.is_empty());
}

#[test]
fn dissect_gpt() {
    let t = dissect("gpt.bin");
    assert_eq!(t.scheme, Some(Scheme::Gpt));
    assert_eq!(t.sector_size, 512);
    assert_eq!(t.partitions.len(), 2); // dissect: 3 = 2 GPT + the protective MBR entry
    let p = &t.partitions[0];
    assert_eq!((p.number, p.start, p.size), (1, 20480, 0xC7FFE00 + 512));
    assert_eq!(
        p.type_guid.as_deref(),
        Some("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
    );
    assert_eq!(
        p.part_guid.as_deref(),
        Some("27D920BC-E414-45E0-9503-2606DE7A1056")
    );
    assert_eq!(p.name.as_deref(), Some("EFI System Partition"));
    let p = &t.partitions[1];
    assert_eq!(
        (p.number, p.start, p.size),
        (2, 0xC900000, 0x7465FFE00 + 512)
    );
    assert_eq!(
        p.type_guid.as_deref(),
        Some("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")
    );
    assert_eq!(
        p.part_guid.as_deref(),
        Some("A14CECF3-B364-4D6D-A540-E245E6DF9D11")
    );
    assert_eq!(p.name.as_deref(), Some(""));
    assert_eq!(p.type_name, "Microsoft basic data");
}

#[test]
fn dissect_gpt_invalid_header_is_an_error() {
    // dissect's test_gpt_invalid: the protective MBR followed by zeros.
    let p = corpus().join("dissect.volume/tests/_data/disk/gpt.bin");
    let mut data = std::fs::read(p).expect("read")[..512].to_vec();
    data.resize(512 + 896, 0);
    assert!(scan(&MemoryDevice::new(data)).is_err());
}

#[test]
fn dissect_gpt_hybrid_uses_the_gpt() {
    let t = dissect("gpt_hybrid.bin");
    assert_eq!(t.scheme, Some(Scheme::Gpt));
    assert_eq!(
        layout(&t),
        vec![
            (1, 0x100000, 0x80000 + 512),
            (2, 0x4400, 0xFBA00 + 512),
            (3, 0x180200, 0x7BA00 + 512)
        ]
    );
    assert_eq!(
        t.partitions[0].part_guid.as_deref(),
        Some("44EEA528-8489-4BBC-A480-56BD208CD233")
    );
    assert_eq!(
        t.partitions[2].part_guid.as_deref(),
        Some("B6AA0017-3ABB-4C2B-B00C-5189E66D9896")
    );
    assert!(t
        .partitions
        .iter()
        .all(|p| p.name.as_deref() == Some("Linux filesystem")));
    assert!(
        t.notes.iter().any(|n| n.contains("hybrid")),
        "{:?}",
        t.notes
    );
}

#[test]
fn dissect_gpt_4k_sectors_are_probed() {
    let t = dissect("gpt_4k.bin");
    assert_eq!(t.scheme, Some(Scheme::Gpt));
    assert_eq!(t.sector_size, 4096);
    assert_eq!(
        layout(&t),
        vec![
            (1, 0x100000, 0x100000 + 4096),
            (2, 0x300000, 0x100000 + 4096),
            (3, 0x500000, 0xB5A000 + 4096)
        ]
    );
    assert_eq!(
        t.partitions[1].part_guid.as_deref(),
        Some("C6F4AD42-4652-448D-89D7-7CFA7710ABE7")
    );
}

#[test]
fn dissect_gpt_esxi_numbers_follow_entry_slots() {
    let t = dissect("gpt_esxi.bin");
    assert_eq!(
        layout(&t),
        vec![
            (1, 0x8000, 0x63FFE00 + 512),
            (5, 0x6600000, 0xFFEFFE00 + 512),
            (6, 0x106600000, 0xFFEFFE00 + 512),
            (7, 0x206600000, 0x1DF99FFE00 + 512),
            (8, 0x2000100000, 0x37FEFBC00 + 512),
        ]
    );
    let names: Vec<_> = t
        .partitions
        .iter()
        .map(|p| p.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        ["BOOT", "BOOTBANK1", "BOOTBANK2", "OSDATA", "datastore1"]
    );
    assert_eq!(t.partitions[4].type_name, "VMware VMFS");
}

#[test]
fn dissect_gpt_name_padded_with_ff() {
    // This sample's entry array does not match its CRC32 (names were patched) and it has no
    // backup: the entries are read anyway, and the mismatch is reported.
    let t = dissect("gpt_no_name_xff.bin");
    assert!(t.notes.iter().any(|n| n.contains("CRC32")), "{:?}", t.notes);
    assert_eq!(t.partitions.len(), 1);
    assert_eq!(t.partitions[0].name.as_deref(), Some(""));
}

#[test]
fn dftt_extended_partition_chain() {
    let zip = corpus().join("sleuthkit_test_data/from_brian/1-extend-part.zip");
    let tmp = tempfile::tempdir().expect("tmp");
    let st = std::process::Command::new("unzip")
        .args(["-q", "-o"])
        .arg(&zip)
        .arg("-d")
        .arg(tmp.path())
        .status()
        .expect("unzip (apt-get install unzip)");
    assert!(st.success());
    let img = tmp.path().join("1-extend-part/ext-part-test-2.dd");
    let t = scan(&RawFile::open(&img).expect("open")).expect("scan");
    // index.html: start and length in sectors of every entry, with the Linux numbering.
    let want: Vec<(u32, u64, u64, u8)> = vec![
        (1, 63, 52353, 0x04),
        (2, 52416, 52416, 0x04),
        (3, 104832, 52416, 0x04),
        (4, 157248, 155232, 0x05),
        (5, 157311, 52353, 0x04),
        (6, 209727, 52353, 0x04),
        (7, 262143, 50337, 0x06),
    ];
    let got: Vec<(u32, u64, u64, u8)> = t
        .partitions
        .iter()
        .map(|p| {
            (
                p.number,
                p.start / 512,
                p.size / 512,
                p.mbr_type.unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert!(t.partitions[3].extended);
    assert!(t.partitions[4..].iter().all(|p| p.logical));
    assert!(t.notes.is_empty(), "{:?}", t.notes);
}

/// dissect.volume's `bsd.bin` (a whole-disk disklabel, no MBR) against its test_bsd.py:
/// partitions 1, 2 and 5 (`a`, `b`, `e`) at 0x800/0xC00/0x1000, 512 bytes each, types 7
/// (4.2BSD), 1 (swap), 27 (ZFS), filled with 0x01/0x02/0x05.
#[test]
fn dissect_bsd_disklabel() {
    let p = corpus().join("dissect.volume/tests/_data/disk/bsd.bin");
    let data = std::fs::read(&p).expect("bsd.bin");
    let dev: std::sync::Arc<dyn guestctl_block::BlockDevice> =
        std::sync::Arc::new(MemoryDevice::new(data));
    let t = scan(dev.as_ref()).expect("scan");
    assert_eq!(t.scheme, Some(Scheme::Bsd));
    assert_eq!(
        layout(&t),
        vec![(1, 0x800, 0x200), (2, 0xC00, 0x200), (5, 0x1000, 0x200)]
    );
    let types: Vec<Option<u8>> = t.partitions.iter().map(|p| p.bsd_fstype).collect();
    assert_eq!(types, [Some(7), Some(1), Some(27)]);
    for p in &t.partitions {
        let s = guestctl_part::open_partition(dev.clone(), p).expect("open");
        let mut b = vec![0u8; 512];
        guestctl_block::BlockDevice::read_exact_at(&s, 0, &mut b).expect("read");
        assert!(
            b.iter().all(|&x| x == p.number as u8),
            "partition {}",
            p.number
        );
    }
}
