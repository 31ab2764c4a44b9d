//! The qcow2 header and its extensions, parsed from bytes (qemu docs/interop/qcow2.rst).
//! I/O-free: [`parse`] takes the first cluster of the file.

use guestctl_block::{Error, Result};

use crate::bytes::{be32, be64};

/// Magic at offset 0.
pub const MAGIC: &[u8; 4] = b"QFI\xfb";
/// Smallest and largest cluster_bits qcow2 allows (512 B .. 2 MiB).
pub const MIN_CLUSTER_BITS: u32 = 9;
/// See [`MIN_CLUSTER_BITS`].
pub const MAX_CLUSTER_BITS: u32 = 21;
/// Largest L1 table we load (qemu's own cap is 32 MiB).
pub const MAX_L1_BYTES: u64 = 32 << 20;
/// Header extensions we walk at most.
pub const MAX_EXTENSIONS: usize = 1024;
/// Longest backing file name (qemu: 1023).
pub const MAX_BACKING_NAME: u32 = 1023;

/// Incompatible feature bits.
pub mod incompat {
    /// Refcounts may be inconsistent (image not closed cleanly).
    pub const DIRTY: u64 = 1 << 0;
    /// The image is known to be corrupt.
    pub const CORRUPT: u64 = 1 << 1;
    /// Guest data lives in an external data file.
    pub const DATA_FILE: u64 = 1 << 2;
    /// `compression_type` field is valid and non-zlib.
    pub const COMPRESSION: u64 = 1 << 3;
    /// L2 entries are 128 bits with sub-cluster bitmaps.
    pub const EXTL2: u64 = 1 << 4;
    /// Every bit we understand.
    pub const KNOWN: u64 = DIRTY | CORRUPT | DATA_FILE | COMPRESSION | EXTL2;
}

/// Autoclear bit: the external data file is a valid raw image.
pub const AUTOCLEAR_DATA_FILE_RAW: u64 = 1 << 1;
/// Compatible bit: lazy refcounts.
pub const COMPAT_LAZY_REFCOUNTS: u64 = 1 << 0;

/// Compression of compressed clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Raw deflate.
    Zlib,
    /// zstd.
    Zstd,
}

impl Compression {
    /// qemu's name.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zlib => "zlib",
            Compression::Zstd => "zstd",
        }
    }
}

/// A parsed, validated qcow2 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// 2 or 3.
    pub version: u32,
    /// log2 of the cluster size.
    pub cluster_bits: u32,
    /// Guest size in bytes.
    pub size: u64,
    /// 0 = none; anything else means encrypted.
    pub crypt_method: u32,
    /// Entries in the active L1 table.
    pub l1_size: u32,
    /// Host offset of the active L1 table.
    pub l1_table_offset: u64,
    /// Host offset of the refcount table.
    pub refcount_table_offset: u64,
    /// Clusters of the refcount table.
    pub refcount_table_clusters: u32,
    /// Internal snapshots.
    pub nb_snapshots: u32,
    /// Host offset of the snapshot table.
    pub snapshots_offset: u64,
    /// Incompatible feature bits.
    pub incompatible_features: u64,
    /// Compatible feature bits.
    pub compatible_features: u64,
    /// Autoclear feature bits.
    pub autoclear_features: u64,
    /// log2 of refcount bits.
    pub refcount_order: u32,
    /// Header length in bytes.
    pub header_length: u32,
    /// Compressed-cluster codec.
    pub compression: Compression,
    /// Backing file name as stored.
    pub backing_file: Option<String>,
    /// Backing format extension.
    pub backing_format: Option<String>,
    /// External data file name extension.
    pub data_file: Option<String>,
    /// A full-disk-encryption header extension is present.
    pub has_crypto_ext: bool,
    /// A bitmaps extension is present.
    pub has_bitmaps_ext: bool,
}

impl Header {
    /// Cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }
    /// L2 entries are 128-bit with subcluster bitmaps.
    pub fn extended_l2(&self) -> bool {
        self.incompatible_features & incompat::EXTL2 != 0
    }
    /// Bytes per L2 entry.
    pub fn l2_entry_size(&self) -> u64 {
        if self.extended_l2() {
            16
        } else {
            8
        }
    }
    /// log2 of L2 entries per table.
    pub fn l2_bits(&self) -> u32 {
        self.cluster_bits - if self.extended_l2() { 4 } else { 3 }
    }
    /// Guest bytes one L1 entry covers.
    pub fn bytes_per_l1_entry(&self) -> u64 {
        1u64 << (self.cluster_bits + self.l2_bits())
    }
    /// The compat level qemu prints (`0.10` for v2, `1.1` for v3).
    pub fn compat(&self) -> &'static str {
        if self.version == 2 {
            "0.10"
        } else {
            "1.1"
        }
    }
}

/// Bytes [`parse`] needs to see at least: enough for the fixed v3 header.
pub const FIXED_LEN: usize = 112;

/// Parses and validates the header from `buf`, which holds the start of the file: at least
/// [`FIXED_LEN`] bytes and ideally the whole first cluster (extensions and the backing name
/// live there). `file_size` bounds the table offsets.
pub fn parse(buf: &[u8], file_size: u64) -> Result<Header> {
    let bad = |msg: String, off: u64| Err(Error::corrupt(msg).structure("qcow2 header").at(off));
    if buf.len() < 72 {
        return bad(
            format!("file is too short for a qcow2 header ({} bytes)", buf.len()),
            0,
        );
    }
    if &buf[0..4] != MAGIC {
        return bad("bad magic".into(), 0);
    }
    let version = be32(buf, 4);
    if version != 2 && version != 3 {
        return Err(Error::unsupported(format!("qcow2 version {version}"))
            .structure("qcow2 header")
            .at(4));
    }
    let cluster_bits = be32(buf, 20);
    if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&cluster_bits) {
        return bad(format!("cluster_bits {cluster_bits} outside 9..=21"), 20);
    }
    let cluster_size = 1u64 << cluster_bits;
    let mut h = Header {
        version,
        cluster_bits,
        size: be64(buf, 24),
        crypt_method: be32(buf, 32),
        l1_size: be32(buf, 36),
        l1_table_offset: be64(buf, 40),
        refcount_table_offset: be64(buf, 48),
        refcount_table_clusters: be32(buf, 56),
        nb_snapshots: be32(buf, 60),
        snapshots_offset: be64(buf, 64),
        incompatible_features: 0,
        compatible_features: 0,
        autoclear_features: 0,
        refcount_order: 4,
        header_length: 72,
        compression: Compression::Zlib,
        backing_file: None,
        backing_format: None,
        data_file: None,
        has_crypto_ext: false,
        has_bitmaps_ext: false,
    };
    if version == 3 {
        if buf.len() < 104 {
            return bad("file is too short for a qcow2 v3 header".into(), 0);
        }
        h.incompatible_features = be64(buf, 72);
        h.compatible_features = be64(buf, 80);
        h.autoclear_features = be64(buf, 88);
        h.refcount_order = be32(buf, 96);
        h.header_length = be32(buf, 100);
        if h.header_length < 104 || h.header_length % 8 != 0 {
            return bad(format!("header_length {} is invalid", h.header_length), 100);
        }
        if u64::from(h.header_length) > cluster_size {
            return bad(
                format!("header_length {} exceeds the cluster size", h.header_length),
                100,
            );
        }
        if h.refcount_order > 6 {
            return bad(format!("refcount_order {} > 6", h.refcount_order), 96);
        }
        if h.header_length > 104 {
            if buf.len() < 105 {
                return bad("header cut short".into(), 104);
            }
            h.compression = match buf[104] {
                0 => Compression::Zlib,
                1 => Compression::Zstd,
                other => {
                    return Err(
                        Error::unsupported(format!("qcow2 compression type {other}"))
                            .structure("qcow2 header")
                            .at(104),
                    )
                }
            };
        }
        let has_flag = h.incompatible_features & incompat::COMPRESSION != 0;
        if has_flag != (h.compression != Compression::Zlib) {
            return bad(
                "compression_type and its incompatible feature bit disagree".into(),
                72,
            );
        }
        let unknown = h.incompatible_features & !incompat::KNOWN;
        if unknown != 0 {
            return Err(Error::unsupported(format!(
                "unknown incompatible feature bits {unknown:#x}"
            ))
            .structure("qcow2 header")
            .at(72));
        }
        if h.extended_l2() && cluster_bits < 14 {
            return bad(
                "extended L2 entries need clusters of at least 16 KiB".into(),
                72,
            );
        }
    }
    // Table sizes and offsets.
    let needed_l1 = h.size.div_ceil(h.bytes_per_l1_entry());
    if u64::from(h.l1_size) < needed_l1 {
        return bad(
            format!(
                "L1 table of {} entries is too small for {} bytes",
                h.l1_size, h.size
            ),
            36,
        );
    }
    if u64::from(h.l1_size) * 8 > MAX_L1_BYTES {
        return bad(
            format!("L1 table of {} entries is too large", h.l1_size),
            36,
        );
    }
    if h.l1_size > 0 {
        if h.l1_table_offset % cluster_size != 0 {
            return bad(
                format!(
                    "L1 table offset {:#x} is not cluster aligned",
                    h.l1_table_offset
                ),
                40,
            );
        }
        match h.l1_table_offset.checked_add(u64::from(h.l1_size) * 8) {
            Some(end) if end <= file_size => {}
            _ => {
                return bad(
                    format!(
                        "L1 table at {:#x} runs past the end of the file ({file_size} bytes)",
                        h.l1_table_offset
                    ),
                    40,
                )
            }
        }
    }
    // Backing file name.
    let bf_off = be64(buf, 8);
    let bf_size = be32(buf, 16);
    if bf_off != 0 {
        if bf_size > MAX_BACKING_NAME {
            return bad(
                format!("backing file name of {bf_size} bytes is too long"),
                16,
            );
        }
        let end = bf_off
            .checked_add(u64::from(bf_size))
            .filter(|&e| e <= cluster_size);
        let Some(end) = end else {
            return bad(
                "backing file name is not inside the first cluster".into(),
                8,
            );
        };
        if end as usize > buf.len() {
            return bad("backing file name runs past the end of the file".into(), 8);
        }
        let name = &buf[bf_off as usize..end as usize];
        h.backing_file = Some(String::from_utf8(name.to_vec()).map_err(|_| {
            Error::corrupt("backing file name is not UTF-8")
                .structure("qcow2 header")
                .at(bf_off)
        })?);
    }
    parse_extensions(buf, &mut h, bf_off, cluster_size)?;
    if h.incompatible_features & incompat::DATA_FILE != 0 && h.data_file.is_none() {
        return Err(
            Error::unsupported("image uses an external data file but does not name it")
                .structure("qcow2 header")
                .at(72),
        );
    }
    Ok(h)
}

fn parse_extensions(buf: &[u8], h: &mut Header, bf_off: u64, cluster_size: u64) -> Result<()> {
    let start = if h.version == 2 {
        72
    } else {
        h.header_length as u64
    };
    // Extensions end at the backing name (if any) or at the end of the first cluster.
    let limit = if bf_off != 0 { bf_off } else { cluster_size }.min(buf.len() as u64);
    let mut off = start;
    for _ in 0..MAX_EXTENSIONS {
        if off + 8 > limit {
            return Ok(());
        }
        let o = off as usize;
        let typ = be32(buf, o);
        let len = u64::from(be32(buf, o + 4));
        if typ == 0 {
            return Ok(());
        }
        let data_start = off + 8;
        let data_end = match data_start.checked_add(len) {
            Some(e) if e <= limit => e,
            _ => {
                return Err(Error::corrupt(format!(
                    "header extension {typ:#010x} of {len} bytes runs past its area"
                ))
                .structure("qcow2 header extension")
                .at(off))
            }
        };
        let data = &buf[data_start as usize..data_end as usize];
        let text = |what: &str| {
            String::from_utf8(data.to_vec()).map_err(|_| {
                Error::corrupt(format!("{what} is not UTF-8"))
                    .structure("qcow2 header extension")
                    .at(off)
            })
        };
        match typ {
            0xe279_2aca => h.backing_format = Some(text("backing format")?),
            0x4441_5441 => h.data_file = Some(text("data file name")?),
            0x0537_be77 => h.has_crypto_ext = true,
            0x2385_2875 => h.has_bitmaps_ext = true,
            _ => {} // feature name table and unknown extensions are ignored
        }
        off = data_end.div_ceil(8) * 8;
    }
    Err(
        Error::corrupt(format!("more than {MAX_EXTENSIONS} header extensions"))
            .structure("qcow2 header extension")
            .at(start),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal valid v3 header for a `size`-byte disk with 64 KiB clusters, L1 at 0x30000.
    pub(crate) fn v3(size: u64) -> Vec<u8> {
        let mut b = vec![0u8; 65536];
        b[0..4].copy_from_slice(MAGIC);
        b[4..8].copy_from_slice(&3u32.to_be_bytes());
        b[20..24].copy_from_slice(&16u32.to_be_bytes());
        b[24..32].copy_from_slice(&size.to_be_bytes());
        let l1 = size.div_ceil(1 << 29).max(1) as u32;
        b[36..40].copy_from_slice(&l1.to_be_bytes());
        b[40..48].copy_from_slice(&0x30000u64.to_be_bytes());
        b[96..100].copy_from_slice(&4u32.to_be_bytes());
        b[100..104].copy_from_slice(&112u32.to_be_bytes());
        b
    }

    #[test]
    fn parses_minimal_v3() {
        let h = parse(&v3(1 << 30), 1 << 20).expect("valid");
        assert_eq!(h.cluster_size(), 65536);
        assert_eq!(h.size, 1 << 30);
        assert_eq!(h.l1_size, 2);
        assert_eq!(h.compression, Compression::Zlib);
    }

    #[test]
    fn rejects_bad_values() {
        let mut b = v3(1 << 30);
        b[20..24].copy_from_slice(&30u32.to_be_bytes());
        assert!(parse(&b, 1 << 20).is_err());

        let mut b = v3(1 << 30);
        b[36..40].copy_from_slice(&1u32.to_be_bytes()); // too small for 1 GiB
        assert!(parse(&b, 1 << 20).is_err());

        let mut b = v3(1 << 30);
        b[36..40].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse(&b, u64::MAX).is_err());

        let mut b = v3(1 << 30);
        b[72..80].copy_from_slice(&(1u64 << 40).to_be_bytes());
        let e = parse(&b, 1 << 20).expect_err("unknown bit");
        assert!(e.to_string().contains("unknown incompatible"), "{e}");

        let b = v3(1 << 30);
        assert!(parse(&b, 0x30000).is_err(), "L1 past EOF");
        assert!(parse(&b[..50], 1 << 20).is_err());

        let mut b = v3(u64::MAX);
        b[36..40].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse(&b, u64::MAX).is_err());
    }

    #[test]
    fn extensions_and_backing_name() {
        let mut b = v3(1 << 20);
        // backing format extension at 112
        b[112..116].copy_from_slice(&0xe279_2acau32.to_be_bytes());
        b[116..120].copy_from_slice(&5u32.to_be_bytes());
        b[120..125].copy_from_slice(b"qcow2");
        // end marker at 128, name at 256
        b[256..264].copy_from_slice(b"base.img");
        b[8..16].copy_from_slice(&256u64.to_be_bytes());
        b[16..20].copy_from_slice(&8u32.to_be_bytes());
        let h = parse(&b, 1 << 20).expect("valid");
        assert_eq!(h.backing_format.as_deref(), Some("qcow2"));
        assert_eq!(h.backing_file.as_deref(), Some("base.img"));
        // an extension longer than its area
        b[116..120].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse(&b, 1 << 20).is_err());
    }
}
