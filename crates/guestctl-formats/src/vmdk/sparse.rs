//! The hosted sparse extent ("KDMV") header, the streamOptimized footer and grain markers,
//! parsed from byte slices. I/O-free.
//!
//! Layout (little-endian, one 512-byte sector; Virtual Disk Format 1.1/5.0 §"Hosted Sparse
//! Extent Header"): magic @0, version u32 @4, flags u32 @8, capacity u64 @12 (sectors),
//! grainSize u64 @20 (sectors), descriptorOffset u64 @28, descriptorSize u64 @36,
//! numGTEsPerGT u32 @44, rgdOffset u64 @48, gdOffset u64 @56, overHead u64 @64,
//! uncleanShutdown u8 @72, the four line-end check characters @73..77, compressAlgorithm u16
//! @77.
//!
//! Limits, and where they come from:
//! - grainSize: the spec says a power of two greater than 8 sectors; qemu only caps it at
//!   0x200000 sectors (1 GiB) and accepts any value. We require a power of two (spec) from 1
//!   sector up to qemu's 1 GiB for plain grains, and at most [`MAX_COMPRESSED_GRAIN_SECTORS`]
//!   (16 MiB) when grains are compressed, because each compressed read inflates a whole grain
//!   into memory. Every real image (VMware, qemu-img) uses 128 sectors (64 KiB).
//! - numGTEsPerGT: the spec fixes it at 512; qemu accepts 1..=512 ("L2 table size too big"
//!   above). We accept 1..=512 like qemu.
//! - capacity: at most [`MAX_CAPACITY_SECTORS`] (64 TiB); the grain directory at most
//!   [`MAX_GD_ENTRIES`] entries (a 64 MiB table; qemu's limit is 32 Mi entries).
//! - Compression is decided by `compressAlgorithm == 1` (deflate), as qemu does; flag bit 16
//!   is not consulted. Other non-zero algorithms are refused as unsupported (qemu would read
//!   such grains as plain data).

use guestctl_block::{Error, Result};

use crate::bytes::{le32, le64};

/// "KDMV": the hosted sparse extent magic, as the bytes on disk.
pub const MAGIC: &[u8; 4] = b"KDMV";
/// "COWD": the ESX vmfsSparse magic (not read).
pub const COWD_MAGIC: &[u8; 4] = b"COWD";
/// gdOffset value meaning "the grain directory is located by the footer".
pub const GD_AT_END: u64 = u64::MAX;
/// Bytes of a sparse header (one sector).
pub const HEADER_LEN: usize = 512;
/// Bytes at the end of a streamOptimized file holding footer marker, footer and end-of-stream
/// marker.
pub const FOOTER_TAIL_LEN: usize = 1536;
/// Largest grain accepted, in sectors (qemu's limit: 1 GiB).
pub const MAX_GRAIN_SECTORS: u64 = 0x20_0000;
/// Largest compressed grain accepted, in sectors (16 MiB).
pub const MAX_COMPRESSED_GRAIN_SECTORS: u64 = 1 << 15;
/// Largest numGTEsPerGT accepted (the spec's fixed value; qemu's maximum).
pub const MAX_GTES_PER_GT: u32 = 512;
/// Largest capacity accepted, in sectors (64 TiB).
pub const MAX_CAPACITY_SECTORS: u64 = 1 << 37;
/// Largest grain directory accepted, in entries (a 64 MiB table).
pub const MAX_GD_ENTRIES: u64 = 1 << 24;
/// Grain directory entries one image may load over all its extents (256 MiB), so that a
/// descriptor naming one big sparse file many times cannot multiply memory.
pub const MAX_IMAGE_GD_ENTRIES: u64 = 1 << 26;
/// Largest embedded descriptor accepted, in bytes.
pub const MAX_EMBEDDED_DESCRIPTOR_BYTES: u64 = super::descriptor::MAX_DESCRIPTOR_BYTES;
/// Bytes of a grain marker before the compressed data: lba u64, size u32.
pub const GRAIN_MARKER_LEN: usize = 12;

/// Header flags.
pub mod flags {
    /// Valid new-line detection characters are present.
    pub const NL_DETECT: u32 = 1 << 0;
    /// A redundant grain directory exists (ignored when reading).
    pub const REDUNDANT_GD: u32 = 1 << 1;
    /// GTE value 1 means "zeroed grain" (version 2 and later).
    pub const ZEROED_GTE: u32 = 1 << 2;
    /// Grains are compressed (informational: `compressAlgorithm` decides).
    pub const COMPRESSED: u32 = 1 << 16;
    /// Grains and metadata carry markers (streamOptimized).
    pub const MARKERS: u32 = 1 << 17;
}

/// Marker types of a streamOptimized file (the `type` field of a metadata marker).
pub mod marker {
    /// End of stream.
    pub const END_OF_STREAM: u32 = 0;
    /// A grain table follows.
    pub const GRAIN_TABLE: u32 = 1;
    /// A grain directory follows.
    pub const GRAIN_DIRECTORY: u32 = 2;
    /// The footer follows.
    pub const FOOTER: u32 = 3;
}

/// `compressAlgorithm` value for deflate (zlib-framed).
pub const COMPRESSION_DEFLATE: u16 = 1;

/// A parsed and validated sparse header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseHeader {
    /// 1, 2 or 3.
    pub version: u32,
    /// Feature flags (see [`flags`]).
    pub flags: u32,
    /// Extent capacity in sectors.
    pub capacity: u64,
    /// Grain size in sectors.
    pub grain_sectors: u64,
    /// Embedded descriptor: start sector (0: none).
    pub descriptor_offset: u64,
    /// Embedded descriptor: sectors.
    pub descriptor_size: u64,
    /// Grain table entries per grain table.
    pub gtes_per_gt: u32,
    /// Redundant grain directory sector (not used for reading).
    pub rgd_offset: u64,
    /// Grain directory sector, or [`GD_AT_END`].
    pub gd_offset: u64,
    /// Sectors of metadata before the first grain; the file must be at least this long.
    pub overhead: u64,
    /// Not closed cleanly.
    pub unclean_shutdown: bool,
    /// 0 none, 1 deflate.
    pub compress_algorithm: u16,
}

impl SparseHeader {
    /// Grain size in bytes.
    pub fn grain_bytes(&self) -> u64 {
        self.grain_sectors * 512
    }
    /// Guest bytes one grain table covers.
    pub fn gt_coverage(&self) -> u64 {
        self.grain_bytes() * u64::from(self.gtes_per_gt)
    }
    /// Bytes of one grain table.
    pub fn gt_bytes(&self) -> u64 {
        u64::from(self.gtes_per_gt) * 4
    }
    /// Extent size in bytes.
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity * 512
    }
    /// Entries the grain directory has.
    pub fn gd_entries(&self) -> u64 {
        self.capacity_bytes().div_ceil(self.gt_coverage())
    }
    /// Grains are deflate-compressed (decided by `compressAlgorithm`, like qemu).
    pub fn compressed(&self) -> bool {
        self.compress_algorithm == COMPRESSION_DEFLATE
    }
    /// Grains carry markers.
    pub fn markers(&self) -> bool {
        self.flags & flags::MARKERS != 0
    }
    /// GTE 1 means a zeroed grain.
    pub fn zeroed_gte(&self) -> bool {
        self.flags & flags::ZEROED_GTE != 0
    }
    /// The grain directory is found through the footer.
    pub fn gd_at_end(&self) -> bool {
        self.gd_offset == GD_AT_END
    }
}

/// The raw `capacity` and `descriptorOffset` of a header, read before any validation.
///
/// qemu treats a header with capacity 0 and a descriptor offset as a pointer to a descriptor
/// that describes the real extents; this lets the caller do the same.
pub fn capacity_and_descriptor(b: &[u8]) -> Option<(u64, u64)> {
    if b.len() < HEADER_LEN || &b[0..4] != MAGIC {
        return None;
    }
    Some((le64(b, 12), le64(b, 28)))
}

/// Parses and validates a sparse header from at least 512 bytes at file offset 0.
/// `gd_offset` may be [`GD_AT_END`]; the caller then reads the footer with [`parse_footer`].
pub fn parse(b: &[u8]) -> Result<SparseHeader> {
    parse_at(b, 0, "vmdk sparse header")
}

/// Parses the last [`FOOTER_TAIL_LEN`] bytes of a streamOptimized file, found at file offset
/// `at`: footer marker, footer (a sparse header) and end-of-stream marker, checked as qemu
/// does. The footer must locate the grain directory.
pub fn parse_footer(tail: &[u8], at: u64) -> Result<SparseHeader> {
    const S: &str = "vmdk footer";
    let bad = |msg: &str, off: u64| Error::corrupt(msg.to_string()).structure(S).at(off);
    if tail.len() < FOOTER_TAIL_LEN {
        return Err(bad("file is too short for a footer", at));
    }
    // Footer marker: val u64 (sectors of metadata), size u32 == 0, type u32 == FOOTER.
    if le32(tail, 8) != 0 || le32(tail, 12) != marker::FOOTER {
        return Err(bad(
            "no footer marker 1536 bytes before the end of the file",
            at,
        ));
    }
    // End-of-stream marker: all of val, size and type zero.
    if le64(tail, 1024) != 0 || le32(tail, 1032) != 0 || le32(tail, 1036) != marker::END_OF_STREAM {
        return Err(bad(
            "no end-of-stream marker in the last sector of the file",
            at + 1024,
        ));
    }
    let h = parse_at(&tail[512..1024], at + 512, S)?;
    if h.gd_at_end() {
        return Err(bad(
            "footer does not locate the grain directory (gdOffset is still -1)",
            at + 512 + 56,
        ));
    }
    Ok(h)
}

/// A grain marker: the guest sector the grain holds and the compressed byte count.
pub fn parse_grain_marker(b: &[u8; GRAIN_MARKER_LEN]) -> (u64, u32) {
    (le64(b, 0), le32(b, 8))
}

/// Decodes a little-endian u32 table (grain directory or grain table).
pub fn decode_table(raw: &[u8]) -> Box<[u32]> {
    raw.chunks_exact(4).map(|c| le32(c, 0)).collect()
}

/// Parses a header whose first byte is at file offset `base`; errors carry absolute offsets.
fn parse_at(b: &[u8], base: u64, what: &'static str) -> Result<SparseHeader> {
    let bad = |msg: String, off: u64| Err(Error::corrupt(msg).structure(what).at(base + off));
    if b.len() < HEADER_LEN {
        return bad(
            format!(
                "{} bytes is too short for a sparse header (512 bytes)",
                b.len()
            ),
            0,
        );
    }
    if &b[0..4] != MAGIC {
        return bad("bad magic (expected KDMV)".into(), 0);
    }
    let h = SparseHeader {
        version: le32(b, 4),
        flags: le32(b, 8),
        capacity: le64(b, 12),
        grain_sectors: le64(b, 20),
        descriptor_offset: le64(b, 28),
        descriptor_size: le64(b, 36),
        gtes_per_gt: le32(b, 44),
        rgd_offset: le64(b, 48),
        gd_offset: le64(b, 56),
        overhead: le64(b, 64),
        unclean_shutdown: b[72] != 0,
        compress_algorithm: u16::from_le_bytes([b[77], b[78]]),
    };
    if !(1..=3).contains(&h.version) {
        return Err(Error::unsupported(format!(
            "vmdk sparse extent version {} (1, 2 and 3 are read)",
            h.version
        ))
        .structure(what)
        .at(base + 4));
    }
    if h.grain_sectors == 0
        || !h.grain_sectors.is_power_of_two()
        || h.grain_sectors > MAX_GRAIN_SECTORS
    {
        return bad(
            format!(
                "grain size of {} sectors is invalid (a power of two up to {MAX_GRAIN_SECTORS})",
                h.grain_sectors
            ),
            20,
        );
    }
    if h.gtes_per_gt == 0 || h.gtes_per_gt > MAX_GTES_PER_GT {
        return bad(
            format!(
                "{} grain table entries per table (1..={MAX_GTES_PER_GT} allowed)",
                h.gtes_per_gt
            ),
            44,
        );
    }
    if h.capacity > MAX_CAPACITY_SECTORS {
        return bad(
            format!(
                "capacity of {} sectors is larger than {MAX_CAPACITY_SECTORS} (64 TiB)",
                h.capacity
            ),
            12,
        );
    }
    if h.gd_entries() > MAX_GD_ENTRIES {
        return bad(
            format!(
                "grain directory of {} entries is larger than {MAX_GD_ENTRIES}",
                h.gd_entries()
            ),
            12,
        );
    }
    if !h.gd_at_end() && h.gd_offset.checked_mul(512).is_none() {
        return bad(format!("gdOffset {} overflows", h.gd_offset), 56);
    }
    match h.compress_algorithm {
        0 => {}
        COMPRESSION_DEFLATE if h.grain_sectors > MAX_COMPRESSED_GRAIN_SECTORS => {
            return Err(Error::unsupported(format!(
                "compressed grains of {} sectors (at most {MAX_COMPRESSED_GRAIN_SECTORS} are read)",
                h.grain_sectors
            ))
            .structure(what)
            .at(base + 20))
        }
        COMPRESSION_DEFLATE => {}
        other => {
            return Err(Error::unsupported(format!(
                "vmdk compression algorithm {other} (only 1, deflate, is read)"
            ))
            .structure(what)
            .at(base + 77))
        }
    }
    if h.descriptor_size.saturating_mul(512) > MAX_EMBEDDED_DESCRIPTOR_BYTES {
        return bad(
            format!(
                "embedded descriptor of {} sectors is larger than {MAX_EMBEDDED_DESCRIPTOR_BYTES} bytes",
                h.descriptor_size
            ),
            36,
        );
    }
    Ok(h)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use guestctl_block::ErrorKind;

    pub(crate) fn header(capacity: u64, grain: u64) -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[0..4].copy_from_slice(MAGIC);
        b[4..8].copy_from_slice(&1u32.to_le_bytes());
        b[12..20].copy_from_slice(&capacity.to_le_bytes());
        b[20..28].copy_from_slice(&grain.to_le_bytes());
        b[44..48].copy_from_slice(&512u32.to_le_bytes());
        b[56..64].copy_from_slice(&21u64.to_le_bytes());
        b
    }

    fn set(b: &mut [u8], off: usize, v: &[u8]) {
        b[off..off + v.len()].copy_from_slice(v);
    }

    #[test]
    fn parses_fields() {
        let mut b = header(2048, 128);
        set(&mut b, 4, &2u32.to_le_bytes());
        set(
            &mut b,
            8,
            &(flags::ZEROED_GTE | flags::MARKERS).to_le_bytes(),
        );
        set(&mut b, 28, &1u64.to_le_bytes());
        set(&mut b, 36, &20u64.to_le_bytes());
        set(&mut b, 48, &7u64.to_le_bytes());
        set(&mut b, 64, &128u64.to_le_bytes());
        b[72] = 1;
        set(&mut b, 77, &1u16.to_le_bytes());
        let h = parse(&b).expect("ok");
        assert_eq!(h.version, 2);
        assert_eq!(h.grain_bytes(), 65536);
        assert_eq!(h.gt_coverage(), 32 << 20);
        assert_eq!(h.gd_entries(), 1);
        assert_eq!(h.descriptor_offset, 1);
        assert_eq!(h.descriptor_size, 20);
        assert_eq!(h.rgd_offset, 7);
        assert_eq!(h.gd_offset, 21);
        assert_eq!(h.overhead, 128);
        assert!(h.unclean_shutdown && h.zeroed_gte() && h.markers() && h.compressed());
    }

    #[test]
    fn compression_follows_the_algorithm_not_the_flag() {
        let mut b = header(2048, 128);
        set(&mut b, 8, &flags::COMPRESSED.to_le_bytes());
        assert!(!parse(&b).expect("flag alone").compressed());
        let mut b = header(2048, 128);
        set(&mut b, 77, &1u16.to_le_bytes());
        assert!(parse(&b).expect("algorithm alone").compressed());
        set(&mut b, 77, &2u16.to_le_bytes());
        let e = parse(&b).expect_err("algorithm 2");
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert_eq!(e.offset(), Some(77));
    }

    #[test]
    fn rejects_bad_values_with_their_offset() {
        let off = |b: &[u8]| parse(b).expect_err("bad").offset();
        assert_eq!(off(&header(2048, 0)), Some(20));
        assert_eq!(off(&header(2048, 3)), Some(20));
        assert_eq!(off(&header(2048, MAX_GRAIN_SECTORS * 2)), Some(20));
        assert!(parse(&header(2048, MAX_GRAIN_SECTORS)).is_ok());
        assert_eq!(off(&header(u64::MAX, 128)), Some(12));
        assert_eq!(off(&header(1 << 37, 1)), Some(12), "gd too large");
        let mut b = header(2048, 128);
        set(&mut b, 44, &100_000u32.to_le_bytes());
        assert_eq!(off(&b), Some(44));
        set(&mut b, 44, &0u32.to_le_bytes());
        assert_eq!(off(&b), Some(44));
        let mut b = header(2048, 128);
        set(&mut b, 4, &4u32.to_le_bytes());
        assert_eq!(parse(&b).expect_err("v4").kind(), ErrorKind::Unsupported);
        set(&mut b, 4, &0u32.to_le_bytes());
        assert!(parse(&b).is_err());
        let mut b = header(2048, 128);
        set(&mut b, 36, &u64::MAX.to_le_bytes());
        assert_eq!(off(&b), Some(36));
        let mut b = header(2048, 128);
        set(&mut b, 56, &(u64::MAX - 1).to_le_bytes());
        assert_eq!(off(&b), Some(56));
        let mut b = header(2048, MAX_COMPRESSED_GRAIN_SECTORS * 2);
        set(&mut b, 77, &1u16.to_le_bytes());
        assert_eq!(parse(&b).expect_err("big").kind(), ErrorKind::Unsupported);
        let mut b = header(2048, 128);
        b[0] = b'X';
        assert_eq!(off(&b), Some(0));
        assert!(parse(&b[..100]).is_err());
        assert!(parse(&[]).is_err());
    }

    fn footer_tail(gd: u64) -> Vec<u8> {
        let mut t = vec![0u8; FOOTER_TAIL_LEN];
        set(&mut t, 0, &1u64.to_le_bytes());
        set(&mut t, 12, &marker::FOOTER.to_le_bytes());
        let mut h = header(2048, 128);
        set(&mut h, 56, &gd.to_le_bytes());
        set(&mut t, 512, &h);
        t
    }

    #[test]
    fn footer_checks_markers() {
        let h = parse_footer(&footer_tail(40), 10_000).expect("ok");
        assert_eq!(h.gd_offset, 40);
        let e = parse_footer(&footer_tail(GD_AT_END), 10_000).expect_err("still at end");
        assert_eq!(e.offset(), Some(10_000 + 512 + 56));
        let mut t = footer_tail(40);
        set(&mut t, 12, &1u32.to_le_bytes());
        let e = parse_footer(&t, 10_000).expect_err("footer marker type");
        assert_eq!(e.offset(), Some(10_000));
        let mut t = footer_tail(40);
        t[1030] = 1;
        let e = parse_footer(&t, 10_000).expect_err("eos");
        assert_eq!(e.offset(), Some(11_024));
        let mut t = footer_tail(40);
        t[512] = 0;
        let e = parse_footer(&t, 10_000).expect_err("magic");
        assert_eq!(e.structure_name(), Some("vmdk footer"));
        assert_eq!(e.offset(), Some(10_512));
        assert!(parse_footer(&t[..100], 0).is_err());
    }

    #[test]
    fn markers_and_tables() {
        let mut m = [0u8; GRAIN_MARKER_LEN];
        set(&mut m, 0, &77u64.to_le_bytes());
        set(&mut m, 8, &1234u32.to_le_bytes());
        assert_eq!(parse_grain_marker(&m), (77, 1234));
        assert_eq!(&*decode_table(&[1, 0, 0, 0, 2, 1, 0, 0, 9]), &[1, 258]);
        assert_eq!(capacity_and_descriptor(&header(5, 128)), Some((5, 0)));
        assert_eq!(capacity_and_descriptor(b"KDMV"), None);
    }
}
