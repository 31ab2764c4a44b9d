//! Values (`vk`) and their data (inline, in a cell, or in big-data `db` segments).

use std::borrow::Cow;

use crate::name::{decode_name, decode_utf16_lossy};
use crate::{le_u16, le_u32, limits, Error, Hive, Result, BASE_BLOCK_SIZE};

const VALUE_COMP_NAME: u16 = 0x0001;
const VK_FIXED: usize = 20;
/// Largest data held by one cell; larger data uses a `db` record (hive version 1.4 and later).
const BIG_DATA_SEGMENT: usize = 16344;

/// Registry value types (`REG_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueType {
    /// `REG_NONE` (0).
    None,
    /// `REG_SZ` (1).
    Sz,
    /// `REG_EXPAND_SZ` (2).
    ExpandSz,
    /// `REG_BINARY` (3).
    Binary,
    /// `REG_DWORD` (4), little-endian.
    Dword,
    /// `REG_DWORD_BIG_ENDIAN` (5).
    DwordBigEndian,
    /// `REG_LINK` (6).
    Link,
    /// `REG_MULTI_SZ` (7).
    MultiSz,
    /// `REG_RESOURCE_LIST` (8).
    ResourceList,
    /// `REG_FULL_RESOURCE_DESCRIPTOR` (9).
    FullResourceDescriptor,
    /// `REG_RESOURCE_REQUIREMENTS_LIST` (10).
    ResourceRequirementsList,
    /// `REG_QWORD` (11), little-endian.
    Qword,
    /// Any other number.
    Other(u32),
}

impl From<u32> for ValueType {
    fn from(t: u32) -> Self {
        match t {
            0 => ValueType::None,
            1 => ValueType::Sz,
            2 => ValueType::ExpandSz,
            3 => ValueType::Binary,
            4 => ValueType::Dword,
            5 => ValueType::DwordBigEndian,
            6 => ValueType::Link,
            7 => ValueType::MultiSz,
            8 => ValueType::ResourceList,
            9 => ValueType::FullResourceDescriptor,
            10 => ValueType::ResourceRequirementsList,
            11 => ValueType::Qword,
            n => ValueType::Other(n),
        }
    }
}

/// Where a value's data lives.
#[derive(Debug, Clone, Copy)]
enum DataLoc {
    /// In the record's offset field (≤ 4 bytes).
    Inline([u8; 4], usize),
    /// In the cell at this offset (or in a `db` record there), this many bytes.
    Cell(u32, usize),
}

/// One value of a key. Its data is read from the hive when asked for.
#[derive(Debug, Clone)]
pub struct Value<'h> {
    hive: &'h Hive,
    offset: u32,
    name: String,
    data_type: u32,
    loc: DataLoc,
}

fn file_off(cell: u32) -> u64 {
    cell as u64 + BASE_BLOCK_SIZE as u64
}

impl<'h> Value<'h> {
    pub(crate) fn read(hive: &'h Hive, offset: u32) -> Result<Value<'h>> {
        let fo = file_off(offset);
        let c = hive.cell(offset, "vk")?;
        if c.len() < VK_FIXED {
            return Err(Error::corrupt(
                "vk",
                fo,
                format!("value record cell of {} bytes is too small", c.len()),
            ));
        }
        if &c[0..2] != b"vk" {
            return Err(Error::corrupt(
                "vk",
                fo,
                format!("signature {:02x?} is not \"vk\"", &c[0..2]),
            ));
        }
        let name_len = le_u16(c, 2).unwrap_or(0) as usize;
        let size = le_u32(c, 4).unwrap_or(0);
        let data_off = le_u32(c, 8).unwrap_or(0);
        let data_type = le_u32(c, 12).unwrap_or(0);
        let flags = le_u16(c, 16).unwrap_or(0);
        let name_bytes = c.get(VK_FIXED..VK_FIXED + name_len).ok_or_else(|| {
            Error::corrupt(
                "vk",
                fo,
                format!(
                    "value name of {name_len} bytes does not fit in its {}-byte cell",
                    c.len()
                ),
            )
        })?;
        let name = decode_name(name_bytes, flags & VALUE_COMP_NAME != 0);
        let loc = if size & 0x8000_0000 != 0 {
            let len = (size & 0x7FFF_FFFF) as usize;
            if len > 4 {
                return Err(Error::corrupt(
                    "vk",
                    fo,
                    format!("value {name:?}: {len} bytes of data cannot be stored in the record"),
                ));
            }
            DataLoc::Inline(data_off.to_le_bytes(), len)
        } else {
            let len = size as usize;
            if len > limits::MAX_VALUE_DATA {
                return Err(Error::limit(
                    "vk",
                    fo,
                    "value data size",
                    len as u64,
                    limits::MAX_VALUE_DATA as u64,
                ));
            }
            DataLoc::Cell(data_off, len)
        };
        Ok(Value {
            hive,
            offset,
            name,
            data_type,
            loc,
        })
    }

    /// The value's name; empty for the key's default value.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw `REG_*` type number.
    pub fn data_type(&self) -> u32 {
        self.data_type
    }

    /// The type as a [`ValueType`].
    pub fn value_type(&self) -> ValueType {
        ValueType::from(self.data_type)
    }

    /// The cell offset of the `vk` record (relative to the first hive bin).
    pub fn cell_offset(&self) -> u32 {
        self.offset
    }

    /// The data length stated by the record.
    pub fn data_len(&self) -> usize {
        match self.loc {
            DataLoc::Inline(_, n) | DataLoc::Cell(_, n) => n,
        }
    }

    /// The raw data bytes (borrowed from the hive unless they come from big-data segments).
    pub fn data(&self) -> Result<Cow<'h, [u8]>> {
        let (off, len) = match self.loc {
            DataLoc::Inline(b, n) => return Ok(Cow::Owned(b[..n].to_vec())),
            DataLoc::Cell(_, 0) => return Ok(Cow::Borrowed(&[])),
            DataLoc::Cell(off, len) => (off, len),
        };
        let fo = file_off(off);
        let c = self.hive.cell(off, "value data")?;
        if len > BIG_DATA_SEGMENT && self.hive.minor_version() > 3 && c.starts_with(b"db") {
            return self.big_data(off, c, len).map(Cow::Owned);
        }
        c.get(..len).map(Cow::Borrowed).ok_or_else(|| {
            Error::corrupt(
                "value data",
                fo,
                format!(
                    "value {:?}: {len} bytes of data do not fit in a {}-byte cell",
                    self.name,
                    c.len()
                ),
            )
        })
    }

    fn big_data(&self, off: u32, db: &[u8], len: usize) -> Result<Vec<u8>> {
        let fo = file_off(off);
        let count = le_u16(db, 2).unwrap_or(0) as usize;
        let list_off = le_u32(db, 4).ok_or_else(|| Error::corrupt("db", fo, "cell too small"))?;
        if count * BIG_DATA_SEGMENT < len {
            return Err(Error::corrupt(
                "db",
                fo,
                format!("{count} segments cannot hold {len} bytes of data"),
            ));
        }
        let list = self.hive.cell(list_off, "db segment list")?;
        if count * 4 > list.len() {
            return Err(Error::corrupt(
                "db segment list",
                file_off(list_off),
                format!("{count} segments do not fit in a {}-byte cell", list.len()),
            ));
        }
        let mut out = Vec::with_capacity(len);
        for i in 0..count {
            if out.len() >= len {
                break;
            }
            let seg_off = le_u32(list, i * 4).unwrap_or(u32::MAX);
            let seg = self.hive.cell(seg_off, "db segment")?;
            let want = (len - out.len()).min(BIG_DATA_SEGMENT);
            let part = seg.get(..want).ok_or_else(|| {
                Error::corrupt(
                    "db segment",
                    file_off(seg_off),
                    format!(
                        "segment of {} bytes is shorter than the {want} bytes it should hold",
                        seg.len()
                    ),
                )
            })?;
            out.extend_from_slice(part);
        }
        Ok(out)
    }

    fn type_err(&self, wanted: &'static str) -> Error {
        Error::Type {
            name: self.name.clone(),
            data_type: self.data_type,
            len: self.data_len(),
            wanted,
        }
    }

    /// A `REG_SZ` / `REG_EXPAND_SZ` (or `REG_LINK`) value as text: UTF-16LE up to the first
    /// NUL, an odd trailing byte ignored, unpaired surrogates replaced by U+FFFD.
    pub fn as_string(&self) -> Result<String> {
        match self.value_type() {
            ValueType::Sz | ValueType::ExpandSz | ValueType::Link => {}
            _ => return Err(self.type_err("a string")),
        }
        let d = self.data()?;
        let even = &d[..d.len() & !1];
        let end = even
            .chunks_exact(2)
            .position(|c| c == [0, 0])
            .map_or(even.len(), |i| i * 2);
        Ok(decode_utf16_lossy(&even[..end]))
    }

    /// A `REG_MULTI_SZ` value as its strings: split at NULs, stopping at the first empty
    /// string (the list terminator); an odd trailing byte is ignored.
    pub fn as_multi_string(&self) -> Result<Vec<String>> {
        if self.value_type() != ValueType::MultiSz {
            return Err(self.type_err("a multi-string"));
        }
        let d = self.data()?;
        let units: Vec<u16> = d
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let mut out = Vec::new();
        for part in units.split(|&u| u == 0) {
            if part.is_empty() {
                break;
            }
            out.push(
                char::decode_utf16(part.iter().copied())
                    .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
                    .collect(),
            );
        }
        Ok(out)
    }

    /// A `REG_DWORD` (little-endian) or `REG_DWORD_BIG_ENDIAN` value.
    pub fn as_u32(&self) -> Result<u32> {
        let be = match self.value_type() {
            ValueType::Dword => false,
            ValueType::DwordBigEndian => true,
            _ => return Err(self.type_err("a DWORD")),
        };
        let d = self.data()?;
        let b: [u8; 4] = d
            .get(..4)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| self.type_err("a DWORD"))?;
        Ok(if be {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    /// A `REG_QWORD` value (or a DWORD widened).
    pub fn as_u64(&self) -> Result<u64> {
        match self.value_type() {
            ValueType::Qword => {
                let d = self.data()?;
                let b: [u8; 8] = d
                    .get(..8)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| self.type_err("a QWORD"))?;
                Ok(u64::from_le_bytes(b))
            }
            ValueType::Dword | ValueType::DwordBigEndian => self.as_u32().map(u64::from),
            _ => Err(self.type_err("a QWORD")),
        }
    }
}
