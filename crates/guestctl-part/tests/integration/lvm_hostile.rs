//! Hostile LVM2 input: bit flips in the fixture's labels, metadata area headers and metadata
//! text (with and without the checksums repaired), hand-built PVs whose metadata wraps the
//! circular buffer or whose extents point past the device, and metadata texts that break
//! every rule. The oracle is "no panic, no hang (each case < 5 s), a named error or a refusal";
//! where a hand-built PV is readable its bytes are compared with what the test put there.

use crate::lvm_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use guestctl_block::{BlockDevice, ErrorKind, MemoryDevice};
use guestctl_part::lvm::{self, label};
use lvm_common::*;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn devices(parts: &[Vec<u8>]) -> Vec<(String, Arc<dyn BlockDevice>)> {
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let d: Arc<dyn BlockDevice> = Arc::new(MemoryDevice::new(p.clone()));
            (format!("/dev/sda{}", i + 1), d)
        })
        .collect()
}

/// Scans and reads every LV that opens; panics if that takes 5 s or more. Returns (VGs found,
/// problems reported).
fn exercise(parts: &[Vec<u8>], what: &str) -> (usize, usize) {
    let t = Instant::now();
    let devs = devices(parts);
    let mut outcome = (0, 0);
    if let Ok(r) = lvm::scan_report(&devs) {
        outcome = (r.groups.len(), r.problems.len());
        for (_, e) in &r.problems {
            assert!(e.structure_name().is_some(), "{what}: unnamed error {e}");
        }
        for vg in &r.groups {
            for lv in &vg.lvs {
                if let Ok(d) = vg.open_lv(lv.name()) {
                    let _ = d.read_exact_at(0, &mut vec![0u8; d.size().min(4 << 20) as usize]);
                    let _ = d.map(0, d.size());
                }
            }
        }
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "{what}: took {:?}",
        t.elapsed()
    );
    outcome
}

fn fixture_parts() -> Vec<Vec<u8>> {
    let disk = fixture_bytes();
    partitions(disk)
        .iter()
        .map(|(_, d)| read_all(d.as_ref()))
        .collect()
}

/// Offset of the metadata area and its header of a fixture PV.
fn mda_of(pv: &[u8]) -> (usize, label::MdaHeader) {
    let l = label::parse_label(&pv[..2048]).expect("label").expect("PV");
    let at = l.metadata_areas[0].offset as usize;
    (at, label::parse_mda_header(&pv[at..at + 512]).expect("mda"))
}

fn fix_mda_crc(pv: &mut [u8], at: usize) {
    let c = label::lvm_crc(label::INITIAL_CRC, &pv[at + 4..at + 512]);
    pv[at..at + 4].copy_from_slice(&c.to_le_bytes());
}

#[test]
fn bit_flips_in_labels_headers_and_text() {
    let parts = fixture_parts();
    let (at, hdr) = mda_of(&parts[0]);
    let loc = hdr.locations[0];
    let text_at = at + loc.offset as usize;
    let regions = [
        (0usize, 2048usize),          // label sectors
        (at, 512),                    // mda header
        (text_at, loc.size as usize), // metadata text
    ];
    let mut rng = Rng(0x4c56_4d32_0001);
    let (mut clean, mut problems) = (0, 0);
    for i in 0..600 {
        let mut p = parts.clone();
        let which = rng.below(2);
        let (start, len) = regions[rng.below(regions.len())];
        for _ in 0..1 + rng.below(4) {
            let at = start + rng.below(len);
            p[which][at] ^= 1 << rng.below(8);
        }
        let (g, e) = exercise(&p, &format!("flip {i}"));
        clean += usize::from(g == 1 && e == 0);
        problems += usize::from(e > 0);
    }
    // The flips must have been seen (CRCs) and some must have been harmless (padding).
    assert!(
        problems > 300 && clean > 0,
        "{problems} problems, {clean} clean"
    );
}

#[test]
fn text_mutations_with_checksums_repaired() {
    let parts = fixture_parts();
    let mut rng = Rng(0x4c56_4d32_0002);
    let (mut parsed, mut rejected) = (0, 0);
    let tokens: [&[u8]; 12] = [
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b"=",
        b"-1",
        b"99999999999999999999",
        b"\\",
        b"\0",
        b"18446744073709551615",
        b"9223372036854775807",
    ];
    for i in 0..400 {
        let mut p = parts.clone();
        let which = rng.below(2);
        let (at, hdr) = mda_of(&p[which]);
        let loc = hdr.locations[0];
        let t0 = at + loc.offset as usize;
        let n = loc.size as usize;
        for _ in 0..1 + rng.below(3) {
            let pos = t0 + rng.below(n);
            if rng.below(2) == 0 {
                p[which][pos] = rng.next() as u8;
            } else {
                // Overwrite with a token, staying inside the text.
                let tok = tokens[rng.below(tokens.len())];
                let room = (t0 + n - pos).min(tok.len());
                p[which][pos..pos + room].copy_from_slice(&tok[..room]);
            }
        }
        let c = label::lvm_crc(label::INITIAL_CRC, &p[which][t0..t0 + n]);
        p[which][at + 40 + 16..at + 40 + 20].copy_from_slice(&c.to_le_bytes());
        fix_mda_crc(&mut p[which], at);
        let (g, e) = exercise(&p, &format!("text mutation {i}"));
        parsed += usize::from(g == 1 && e == 0);
        rejected += usize::from(e > 0);
    }
    // Repaired checksums let the mutations reach the parser: both outcomes must occur.
    assert!(
        parsed > 20 && rejected > 100,
        "{parsed} parsed, {rejected} rejected"
    );
}

// ---- hand-built PVs ----

const EXT_SECTORS: u64 = 8; // 4 KiB extents
const PE_START: u64 = 64; // sectors: 32 KiB

/// A PV of `size` bytes: label in sector 1, a metadata area of `mda_size` bytes at 4096 whose
/// text sits at `text_off` in it (wrapping after the end of the buffer).
fn make_pv(uuid: &str, size: usize, mda_size: usize, text_off: usize, text: &str) -> Vec<u8> {
    assert_eq!(uuid.len(), 32);
    let mut d = vec![0u8; size];
    let l = 512;
    d[l..l + 8].copy_from_slice(b"LABELONE");
    d[l + 8..l + 16].copy_from_slice(&1u64.to_le_bytes());
    d[l + 20..l + 24].copy_from_slice(&32u32.to_le_bytes());
    d[l + 24..l + 32].copy_from_slice(b"LVM2 001");
    let h = l + 32;
    d[h..h + 32].copy_from_slice(uuid.as_bytes());
    d[h + 32..h + 40].copy_from_slice(&(size as u64).to_le_bytes());
    let put = |d: &mut Vec<u8>, at: usize, a: u64, b: u64| {
        d[at..at + 8].copy_from_slice(&a.to_le_bytes());
        d[at + 8..at + 16].copy_from_slice(&b.to_le_bytes());
    };
    put(&mut d, h + 40, PE_START * 512, 0); // data area
    put(&mut d, h + 56, 0, 0);
    put(&mut d, h + 72, 4096, mda_size as u64); // metadata area
    put(&mut d, h + 88, 0, 0);
    let c = label::lvm_crc(label::INITIAL_CRC, &d[l + 20..l + 512]);
    d[l + 16..l + 20].copy_from_slice(&c.to_le_bytes());
    // mda header
    let m = 4096;
    d[m + 4..m + 20].copy_from_slice(label::MDA_MAGIC);
    d[m + 20..m + 24].copy_from_slice(&1u32.to_le_bytes());
    put(&mut d, m + 24, 4096, mda_size as u64);
    let tb = text.as_bytes();
    put(&mut d, m + 40, text_off as u64, tb.len() as u64);
    let c = label::lvm_crc(label::INITIAL_CRC, tb);
    d[m + 56..m + 60].copy_from_slice(&c.to_le_bytes());
    for (i, &b) in tb.iter().enumerate() {
        let mut o = text_off + i;
        if o >= mda_size {
            o = o - mda_size + 512;
        }
        d[m + o] = b;
    }
    fix_mda_crc(&mut d, m);
    d
}

const UUID_A: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const UUID_B: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
fn dashed(u: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}-{}-{}",
        &u[..6],
        &u[6..10],
        &u[10..14],
        &u[14..18],
        &u[18..22],
        &u[22..26],
        &u[26..]
    )
}

fn vg_text(seqno: u64, pvs: &[(&str, u64)], lvs: &str) -> String {
    let mut s = format!(
        "# Generated by a test\n\ntv {{\nid = \"VGVGVG-VGVG-VGVG-VGVG-VGVG-VGVG-VGVGVG\"\nseqno = {seqno}\nformat = \"lvm2\"\nstatus = [\"RESIZEABLE\", \"READ\", \"WRITE\"]\nflags = []\nextent_size = {EXT_SECTORS}\nmax_lv = 0\nmax_pv = 0\nmetadata_copies = 0\n\nphysical_volumes {{\n"
    );
    for (i, (uuid, pe_count)) in pvs.iter().enumerate() {
        s += &format!(
            "pv{i} {{\nid = \"{}\"\ndevice = \"/dev/x{i}\"\nstatus = [\"ALLOCATABLE\"]\nflags = []\ndev_size = 2048\npe_start = {PE_START}\npe_count = {pe_count}\n}}\n",
            dashed(uuid)
        );
    }
    s += "}\n\nlogical_volumes {\n";
    s += lvs;
    s += "}\n}\ncontents = \"Text Format Volume Group\"\nversion = 1\ndescription = \"\"\ncreation_host = \"test\"\ncreation_time = 1700000000\n";
    s
}

fn linear_lv(name: &str, segs: &[(u64, u64, &str, u64)]) -> String {
    let mut s = format!(
        "{name} {{\nid = \"LVLVLV-LVLV-LVLV-LVLV-LVLV-LVLV-LVLVLV\"\nstatus = [\"READ\", \"WRITE\", \"VISIBLE\"]\nflags = []\nsegment_count = {}\n",
        segs.len()
    );
    for (i, (start, count, pv, pe)) in segs.iter().enumerate() {
        s += &format!(
            "segment{} {{\nstart_extent = {start}\nextent_count = {count}\ntype = \"striped\"\nstripe_count = 1 # linear\nstripes = [\n\"{pv}\", {pe}\n]\n}}\n",
            i + 1
        );
    }
    s += "}\n";
    s
}

/// Fills the data area of a PV with a pattern naming (uuid, extent).
fn fill_extents(pv: &mut [u8], tag: u8) {
    let start = (PE_START * 512) as usize;
    for (i, b) in pv[start..].iter_mut().enumerate() {
        *b = tag ^ (i / 4096) as u8 ^ (i % 251) as u8;
    }
}

#[test]
fn metadata_wrapping_the_circular_buffer() {
    let lvs = linear_lv("w", &[(0, 2, "pv0", 3), (2, 1, "pv0", 0)]);
    let text = vg_text(3, &[(UUID_A, 200)], &lvs);
    let mda = 8192;
    for text_off in [
        512,
        mda - 100,
        mda - 1,
        mda - text.len() + 1,
        mda - text.len(),
    ] {
        let mut pv = make_pv(UUID_A, 1 << 20, mda, text_off, &text);
        fill_extents(&mut pv, 0x5a);
        let vgs = lvm::scan(&devices(&[pv.clone()])).unwrap_or_else(|e| panic!("{text_off}: {e}"));
        let vg = &vgs[0];
        assert_eq!(vg.name(), "tv");
        let d = vg.open_lv("w").expect("open");
        assert_eq!(d.size(), 3 * 4096);
        let got = read_all(d.as_ref());
        let base = (PE_START * 512) as usize;
        let mut want = pv[base + 3 * 4096..base + 5 * 4096].to_vec();
        want.extend_from_slice(&pv[base..base + 4096]);
        assert!(got == want, "text at {text_off}: wrong bytes");
    }
    // A location bigger than its buffer, or starting inside the header, is an error.
    let pv = make_pv(UUID_A, 1 << 20, 8192, 512, &text);
    let mut bad = pv.clone();
    bad[4096 + 40..4096 + 48].copy_from_slice(&100u64.to_le_bytes());
    fix_mda_crc(&mut bad, 4096);
    let e = lvm::scan(&devices(&[bad])).expect_err("offset inside header");
    assert!(e.to_string().contains("LVM2 metadata text"), "{e}");
    let mut bad = pv;
    bad[4096 + 48..4096 + 56].copy_from_slice(&(8192u64).to_le_bytes());
    fix_mda_crc(&mut bad, 4096);
    let e = lvm::scan(&devices(&[bad])).expect_err("size > ring");
    assert!(e.to_string().contains("larger than its"), "{e}");
}

#[test]
fn extents_past_the_pv_are_refused() {
    // pe_count claims more extents than the device has; the LV uses the phantom ones.
    let lvs = linear_lv("far", &[(0, 4, "pv0", 250)]) + &linear_lv("near", &[(0, 1, "pv0", 0)]);
    let text = vg_text(1, &[(UUID_A, 1000)], &lvs);
    let pv = make_pv(UUID_A, 1 << 20, 8192, 512, &text);
    let vgs = lvm::scan(&devices(&[pv])).expect("scan");
    let why = vgs[0]
        .lv("far")
        .expect("far")
        .unreadable
        .clone()
        .expect("refused");
    assert!(why.contains("past its device"), "{why}");
    assert!(vgs[0].open_lv("near").is_ok());
    // Extents past pe_count.
    let lvs = linear_lv("far", &[(0, 4, "pv0", 9)]);
    let text = vg_text(1, &[(UUID_A, 10)], &lvs);
    let vgs = lvm::scan(&devices(&[make_pv(UUID_A, 1 << 20, 8192, 512, &text)])).expect("scan");
    let why = vgs[0]
        .lv("far")
        .expect("far")
        .unreadable
        .clone()
        .expect("refused");
    assert!(why.contains("past the 10 extents"), "{why}");
    // Overflowing extent numbers.
    let lvs = linear_lv(
        "huge",
        &[(0, 9223372036854775807, "pv0", 9223372036854775807)],
    );
    let text = vg_text(1, &[(UUID_A, 10)], &lvs);
    let vgs = lvm::scan(&devices(&[make_pv(UUID_A, 1 << 20, 8192, 512, &text)])).expect("scan");
    assert!(vgs[0].lv("huge").expect("huge").unreadable.is_some());
    assert!(vgs[0].open_lv("huge").is_err());
}

#[test]
fn broken_segment_lists() {
    for (lvs, want) in [
        (
            linear_lv("gap", &[(0, 1, "pv0", 0), (2, 1, "pv0", 1)]),
            "does not follow",
        ),
        (
            linear_lv("overlap", &[(0, 2, "pv0", 0), (1, 1, "pv0", 5)]),
            "does not follow",
        ),
        (linear_lv("empty", &[(0, 0, "pv0", 0)]), "no extents"),
        (linear_lv("ghost", &[(0, 1, "pv7", 0)]), "unknown PV pv7"),
    ] {
        let text = vg_text(1, &[(UUID_A, 100)], &lvs);
        let vgs = lvm::scan(&devices(&[make_pv(UUID_A, 1 << 20, 8192, 512, &text)])).expect("scan");
        let lv = &vgs[0].lvs[0];
        let why = lv.unreadable.as_deref().expect("refused");
        assert!(why.contains(want), "{}: {why}", lv.name());
    }
    // Stripe count that does not match the stripes array, or does not divide the extents.
    for (seg, want) in [
        ("type = \"striped\"\nstripe_count = 2\nstripe_size = 8\nstripes = [\"pv0\", 0]", "stripe_count 2"),
        ("type = \"striped\"\nstripe_count = 2\nstripe_size = 0\nstripes = [\"pv0\", 0, \"pv0\", 9]", "stripe_size 0"),
        ("type = \"striped\"\nstripe_count = 1\nstripes = [0, \"pv0\"]", "pairs"),
    ] {
        let lvs = format!("s {{\nid = \"x\"\nstatus = [\"VISIBLE\"]\nsegment1 {{\nstart_extent = 0\nextent_count = 3\n{seg}\n}}\n}}\n");
        let text = vg_text(1, &[(UUID_A, 100)], &lvs);
        let e = lvm::scan(&devices(&[make_pv(UUID_A, 1 << 20, 8192, 512, &text)]))
            .expect_err("bad segment");
        assert!(e.to_string().contains(want), "{e}");
        assert!(e.offset().is_some(), "{e}");
    }
    let lvs = "s {\nid = \"x\"\nstatus = [\"VISIBLE\"]\nsegment1 {\nstart_extent = 0\nextent_count = 3\ntype = \"striped\"\nstripe_count = 2\nstripe_size = 8\nstripes = [\"pv0\", 0, \"pv0\", 9]\n}\n}\n";
    let text = vg_text(1, &[(UUID_A, 100)], lvs);
    let vgs = lvm::scan(&devices(&[make_pv(UUID_A, 1 << 20, 8192, 512, &text)])).expect("scan");
    assert!(vgs[0].lvs[0]
        .unreadable
        .as_deref()
        .expect("refused")
        .contains("cannot be split"));
    // A stripe size (3 KiB) that does not divide the stripe length (2 extents = 8 KiB).
    let lvs = "s {\nid = \"x\"\nstatus = [\"VISIBLE\"]\nsegment1 {\nstart_extent = 0\nextent_count = 4\ntype = \"striped\"\nstripe_count = 2\nstripe_size = 6\nstripes = [\"pv0\", 0, \"pv0\", 9]\n}\n}\n";
    let text = vg_text(1, &[(UUID_A, 100)], lvs);
    let vgs = lvm::scan(&devices(&[make_pv(UUID_A, 1 << 20, 8192, 512, &text)])).expect("scan");
    let why = vgs[0].lvs[0].unreadable.as_deref().expect("refused");
    assert!(why.contains("not a multiple"), "{why}");
}

#[test]
fn newest_metadata_copy_wins() {
    // Two PVs of one VG; B carries a newer copy that adds an LV on B.
    let old = vg_text(
        5,
        &[(UUID_A, 100), (UUID_B, 100)],
        &linear_lv("one", &[(0, 2, "pv0", 0)]),
    );
    let new = vg_text(
        6,
        &[(UUID_A, 100), (UUID_B, 100)],
        &(linear_lv("one", &[(0, 2, "pv0", 0)]) + &linear_lv("two", &[(0, 2, "pv1", 4)])),
    );
    let mut a = make_pv(UUID_A, 1 << 20, 8192, 512, &old);
    let mut b = make_pv(UUID_B, 1 << 20, 8192, 700, &new);
    fill_extents(&mut a, 1);
    fill_extents(&mut b, 2);
    for order in [[a.clone(), b.clone()], [b.clone(), a.clone()]] {
        let vgs = lvm::scan(&devices(&order)).expect("scan");
        assert_eq!(vgs.len(), 1);
        assert_eq!(vgs[0].meta.seqno, 6);
        assert!(
            vgs[0].notes.iter().any(|n| n.contains("older")),
            "{:?}",
            vgs[0].notes
        );
        let d = vgs[0].open_lv("two").expect("two");
        let base = (PE_START * 512) as usize + 4 * 4096;
        assert!(read_all(d.as_ref()) == b[base..base + 2 * 4096]);
    }
}

#[test]
fn limits() {
    // Nesting deeper than 32 is refused, 32 is fine.
    let deep = |n: usize| "a {".repeat(n) + &"}".repeat(n);
    assert!(lvm::text::parse(deep(32).as_bytes()).is_ok());
    let e = lvm::text::parse(deep(33).as_bytes()).expect_err("too deep");
    assert!(e.to_string().contains("deeper than 32"), "{e}");
    assert!(lvm::text::parse(deep(100_000).as_bytes()).is_err());
    // Text over 1 MiB is refused before parsing.
    let big = vec![b' '; (1 << 20) + 1];
    assert_eq!(
        lvm::text::parse(&big).expect_err("big").kind(),
        ErrorKind::Refused
    );
    // A raw location claiming more than 1 MiB is refused before reading.
    let loc = label::RawLocation {
        offset: 512,
        size: (1 << 20) + 1,
        checksum: 0,
        ignored: false,
    };
    assert_eq!(
        label::text_ranges(1 << 30, &loc).expect_err("big").kind(),
        ErrorKind::Refused
    );
    // More than 1024 LVs.
    let mut lvs = String::new();
    for i in 0..1025 {
        lvs += &format!("l{i} {{ id = \"x\" status = [] }}\n");
    }
    let text = vg_text(1, &[(UUID_A, 100)], &lvs);
    let e = lvm::scan(&devices(&[make_pv(UUID_A, 1 << 20, 1 << 17, 512, &text)]))
        .expect_err("too many LVs");
    assert!(
        e.to_string().contains("more than 1024 logical volumes"),
        "{e}"
    );
    // An mda header past the device end, and a label CRC mismatch, are named errors.
    let mut pv = make_pv(
        UUID_A,
        1 << 20,
        8192,
        512,
        &vg_text(1, &[(UUID_A, 100)], ""),
    );
    pv.truncate(4096 + 100);
    let e = lvm::scan(&devices(&[pv])).expect_err("short");
    assert_eq!(e.structure_name(), Some("LVM2 metadata area header"));
    assert_eq!(e.offset(), Some(4096));
    let mut pv = make_pv(
        UUID_A,
        1 << 20,
        8192,
        512,
        &vg_text(1, &[(UUID_A, 100)], ""),
    );
    pv[512 + 100] ^= 1;
    let e = lvm::scan(&devices(&[pv])).expect_err("crc");
    assert_eq!(e.structure_name(), Some("LVM2 label"));
    assert_eq!(e.offset(), Some(512));
    assert!(e.to_string().contains("checksum"), "{e}");
}

#[test]
fn not_lvm_scans_to_nothing() {
    let vgs = lvm::scan(&devices(&[vec![0u8; 4096], vec![], vec![0xff; 100]])).expect("scan");
    assert!(vgs.is_empty());
}
