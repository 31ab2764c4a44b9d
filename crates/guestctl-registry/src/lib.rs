//! Read-only parser for Windows NT registry hive files ("regf": `SYSTEM`, `SOFTWARE`,
//! `NTUSER.DAT`, ...).
//!
//! Written from the public "Windows registry file format specification" (Maxim Suhanov). The
//! whole hive is held in memory ([`Hive::from_bytes`]); every structure is parsed from
//! explicit little-endian offsets on demand, so opening is cheap and a damaged key only fails
//! the calls that touch it.
//!
//! Supported: the base block (signature, sequence numbers → [`Hive::dirty`], hive-bins data
//! size, checksum), hive bins and cells, key nodes (`nk`, compressed Latin-1 or UTF-16LE
//! names, class names), subkey lists (`lf`, `lh`, `li`, `ri`), values (`vk`, data stored in the
//! offset field, in a cell, or in big-data `db` segments), case-insensitive lookups
//! ([`Hive::open`], [`Key::subkey`], [`Key::value`]).
//!
//! Refused or ignored: transaction logs (`.LOG1`/`.LOG2`: a dirty hive is read as it is, with
//! [`Hive::dirty`] set), security cells (`sk`), deleted-data recovery, Windows 9x `CREG` files.
//!
//! Hostile input: the hive comes from a stranger's disk. Every cell must lie inside one hive
//! bin; counts and sizes are bounded ([`limits`]); list walks detect cycles; a subkey whose
//! parent field does not point back at its parent is an error for that subkey only
//! ([`Key::subkeys_lossy`] goes on with the others). No input panics.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod key;
mod name;
mod value;
mod walk;

pub use error::{Error, Result};
pub use key::Key;
pub use name::{names_equal, upcase_utf16};
pub use value::{Value, ValueType};
pub use walk::{walk, WalkStats};

/// The bounds this crate applies to values read from a hive.
pub mod limits {
    /// Deepest key path followed ([`crate::walk`] and [`crate::Hive::open`]).
    pub const MAX_DEPTH: usize = 512;
    /// Most subkeys collected for one key (all its lists together).
    pub const MAX_SUBKEYS: usize = 1 << 20;
    /// Most values in one key's value list.
    pub const MAX_VALUES: usize = 1 << 20;
    /// Largest value data read.
    pub const MAX_VALUE_DATA: usize = 16 << 20;
    /// Deepest nesting of `ri` index roots.
    pub const MAX_RI_DEPTH: usize = 8;
    /// Largest hive accepted by [`crate::Hive::from_bytes`] (4 GiB is the format's own limit).
    pub const MAX_HIVE_SIZE: usize = 1 << 32;
}

/// The size of the base block; cell offsets are relative to its end.
pub const BASE_BLOCK_SIZE: usize = 4096;

const HBIN_ALIGN: usize = 4096;

pub(crate) fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

pub(crate) fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

pub(crate) fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

/// The fields of the base block (the first 4096 bytes of a hive file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseBlock {
    /// Primary sequence number (offset 4).
    pub primary_sequence: u32,
    /// Secondary sequence number (offset 8); differs from the primary one in a dirty hive.
    pub secondary_sequence: u32,
    /// Last written time stamp, a FILETIME (offset 12).
    pub last_written: u64,
    /// Major format version (offset 20), 1.
    pub major_version: u32,
    /// Minor format version (offset 24), 3 to 6.
    pub minor_version: u32,
    /// File type (offset 28): 0 primary file, 1/2/6 log files.
    pub file_type: u32,
    /// Cell offset of the root key (offset 36), relative to the first hive bin.
    pub root_cell_offset: u32,
    /// Hive bins data size declared at offset 40.
    pub hive_bins_data_size: u32,
    /// Checksum stored at offset 508.
    pub checksum: u32,
    /// Checksum computed over bytes 0..508 (XOR of the 127 little-endian dwords, 0 → 1,
    /// 0xFFFFFFFF → 0xFFFFFFFE).
    pub computed_checksum: u32,
}

impl BaseBlock {
    /// Parses a base block; fails when `bytes` is shorter than 4096 bytes or does not start
    /// with `regf`.
    pub fn parse(bytes: &[u8]) -> Result<BaseBlock> {
        if bytes.len() < BASE_BLOCK_SIZE {
            return Err(Error::corrupt(
                "base block",
                0,
                format!(
                    "the file is {} bytes, shorter than the 4096-byte base block",
                    bytes.len()
                ),
            ));
        }
        if &bytes[0..4] != b"regf" {
            return Err(Error::corrupt(
                "base block",
                0,
                "no \"regf\" signature (not a registry hive)",
            ));
        }
        let u = |at| le_u32(bytes, at).unwrap_or(0);
        let mut x = 0u32;
        for i in 0..127 {
            x ^= u(i * 4);
        }
        let computed_checksum = match x {
            0 => 1,
            0xFFFF_FFFF => 0xFFFF_FFFE,
            v => v,
        };
        Ok(BaseBlock {
            primary_sequence: u(4),
            secondary_sequence: u(8),
            last_written: le_u64(bytes, 12).unwrap_or(0),
            major_version: u(20),
            minor_version: u(24),
            file_type: u(28),
            root_cell_offset: u(36),
            hive_bins_data_size: u(40),
            checksum: u(508),
            computed_checksum,
        })
    }

    /// Whether the stored checksum matches the computed one.
    pub fn checksum_ok(&self) -> bool {
        self.checksum == self.computed_checksum
    }
}

/// A registry hive held in memory.
#[derive(Debug, Clone)]
pub struct Hive {
    data: Vec<u8>,
    base: BaseBlock,
    /// End of the usable hive-bins area, relative to the first hive bin.
    bins_end: usize,
    /// (start, end) of each hive bin, relative to the first hive bin, sorted.
    bins: Vec<(u32, u32)>,
}

impl Hive {
    /// Parses the base block and indexes the hive bins.
    ///
    /// Checks: `regf` signature, major version 1, primary file type, hive bins that chain
    /// contiguously (`hbin` signature, offset field, size a multiple of 4096). The bins are
    /// followed as far as they are valid and present in `bytes`: a truncated hive opens with
    /// the bins it has ([`Hive::truncated`]), and a reference past them fails where it is
    /// followed. A bad checksum or unequal sequence numbers are reported
    /// ([`Hive::checksum_ok`], [`Hive::dirty`]), not refused: without the logs the primary
    /// file is all there is.
    pub fn from_bytes(data: Vec<u8>) -> Result<Hive> {
        if data.len() > limits::MAX_HIVE_SIZE {
            return Err(Error::limit(
                "hive",
                0,
                "file size",
                data.len() as u64,
                limits::MAX_HIVE_SIZE as u64,
            ));
        }
        let base = BaseBlock::parse(&data)?;
        if base.major_version != 1 {
            return Err(Error::corrupt(
                "base block",
                20,
                format!("unsupported major version {}", base.major_version),
            ));
        }
        if base.file_type != 0 {
            return Err(Error::corrupt(
                "base block",
                28,
                format!(
                    "file type {} is a transaction log, not a primary hive file",
                    base.file_type
                ),
            ));
        }
        let area = &data[BASE_BLOCK_SIZE..];
        let declared = base.hive_bins_data_size as usize;
        // A base block with a bad checksum cannot be trusted for the size: follow the bins
        // the file holds instead.
        let limit = if base.checksum_ok() && declared % HBIN_ALIGN == 0 && declared != 0 {
            declared.min(area.len())
        } else {
            area.len()
        };
        let mut bins = Vec::new();
        let mut pos = 0usize;
        while pos + 32 <= limit {
            if &area[pos..pos + 4] != b"hbin" {
                break;
            }
            let off = le_u32(area, pos + 4).unwrap_or(u32::MAX) as usize;
            let size = le_u32(area, pos + 8).unwrap_or(0) as usize;
            if off != pos || size == 0 || size % HBIN_ALIGN != 0 || size > limit - pos {
                break;
            }
            bins.push((pos as u32, (pos + size) as u32));
            pos += size;
        }
        if bins.is_empty() {
            return Err(Error::corrupt(
                "hive bin",
                BASE_BLOCK_SIZE as u64,
                "no valid hive bin after the base block",
            ));
        }
        Ok(Hive {
            bins_end: pos,
            bins,
            base,
            data,
        })
    }

    /// The parsed base block.
    pub fn base_block(&self) -> &BaseBlock {
        &self.base
    }

    /// True when the primary and secondary sequence numbers differ or the base block
    /// checksum is wrong: the hive was not written out completely and its transaction logs
    /// (not read here) hold newer data. The hive is read as it is.
    pub fn dirty(&self) -> bool {
        self.base.primary_sequence != self.base.secondary_sequence || !self.base.checksum_ok()
    }

    /// Whether the base block checksum is right.
    pub fn checksum_ok(&self) -> bool {
        self.base.checksum_ok()
    }

    /// The size of the hive bins that could be used (valid, contiguous, present in the file).
    pub fn effective_bins_size(&self) -> usize {
        self.bins_end
    }

    /// True when the base block declares more hive bins than the file holds valid ones.
    pub fn truncated(&self) -> bool {
        self.base.checksum_ok() && (self.base.hive_bins_data_size as usize) > self.bins_end
    }

    /// The number of hive bins indexed.
    pub fn bin_count(&self) -> usize {
        self.bins.len()
    }

    /// The last written time of the hive (FILETIME: 100 ns units since 1601-01-01 UTC).
    pub fn last_written(&self) -> u64 {
        self.base.last_written
    }

    /// The minor format version (3 = Windows NT 4 and later, 5 = XP and later, 6 = 10+).
    pub fn minor_version(&self) -> u32 {
        self.base.minor_version
    }

    /// The whole file as given to [`Hive::from_bytes`].
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// The root key.
    pub fn root(&self) -> Result<Key<'_>> {
        Key::read(self, self.base.root_cell_offset)
    }

    /// The key whose cell is at `offset` (relative to the first hive bin, as
    /// [`Key::cell_offset`] gives it): how handles to keys are kept by callers.
    pub fn key_at(&self, offset: u32) -> Result<Key<'_>> {
        Key::read(self, offset)
    }

    /// The value whose cell is at `offset` ([`Value::cell_offset`]).
    pub fn value_at(&self, offset: u32) -> Result<Value<'_>> {
        Value::read(self, offset)
    }

    /// Opens a key by path: components separated by `\`, compared case-insensitively
    /// ([`names_equal`]); leading, trailing and doubled separators are ignored, so `""` and
    /// `"\\"` open the root. `Ok(None)` when a component does not exist.
    pub fn open(&self, path: &str) -> Result<Option<Key<'_>>> {
        let mut key = self.root()?;
        for (depth, comp) in path.split('\\').filter(|c| !c.is_empty()).enumerate() {
            if depth >= limits::MAX_DEPTH {
                return Err(Error::limit(
                    "key path",
                    key.file_offset(),
                    "path depth",
                    depth as u64 + 1,
                    limits::MAX_DEPTH as u64,
                ));
            }
            match key.subkey(comp)? {
                Some(k) => key = k,
                None => return Ok(None),
            }
        }
        Ok(Some(key))
    }

    /// Returns the payload of the allocated cell at `offset` (relative to the first hive bin):
    /// the bytes after the 4-byte size field, up to the cell's end.
    pub(crate) fn cell(&self, offset: u32, structure: &'static str) -> Result<&[u8]> {
        let file_off = offset as u64 + BASE_BLOCK_SIZE as u64;
        let off = offset as usize;
        if off % 8 != 0 {
            return Err(Error::corrupt(
                structure,
                file_off,
                "cell offset is not a multiple of 8",
            ));
        }
        let bin = match self.bins.binary_search_by(|&(s, e)| {
            if (e as usize) <= off {
                std::cmp::Ordering::Less
            } else if (s as usize) > off {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        }) {
            Ok(i) => self.bins[i],
            Err(_) => {
                return Err(Error::corrupt(
                    structure,
                    file_off,
                    format!(
                        "cell offset lies outside the hive bins ({:#x} bytes)",
                        self.bins_end
                    ),
                ))
            }
        };
        if off < bin.0 as usize + 32 {
            return Err(Error::corrupt(
                structure,
                file_off,
                "cell offset points into a hive bin header",
            ));
        }
        let area = &self.data[BASE_BLOCK_SIZE..BASE_BLOCK_SIZE + self.bins_end];
        let raw = le_u32(area, off)
            .ok_or_else(|| Error::corrupt(structure, file_off, "cell size field out of range"))?
            as i32;
        if raw >= 0 {
            return Err(Error::corrupt(
                structure,
                file_off,
                format!("cell is not allocated (size field {raw})"),
            ));
        }
        let size = raw.unsigned_abs() as usize;
        if size < 8 || size % 8 != 0 {
            return Err(Error::corrupt(
                structure,
                file_off,
                format!("bad cell size {size}"),
            ));
        }
        if off + size > bin.1 as usize {
            return Err(Error::corrupt(
                structure,
                file_off,
                format!("cell of {size} bytes runs past the end of its hive bin"),
            ));
        }
        Ok(&area[off + 4..off + size])
    }
}
