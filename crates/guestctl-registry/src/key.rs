//! Key nodes (`nk`) and subkey lists (`lf`, `lh`, `li`, `ri`).

use std::collections::HashSet;

use crate::name::{decode_name, names_equal, units_cmp};
use crate::value::Value;
use crate::{le_u16, le_u32, le_u64, limits, Error, Hive, Result, BASE_BLOCK_SIZE};

const KEY_COMP_NAME: u16 = 0x0020;
const KEY_HIVE_ENTRY: u16 = 0x0004;
/// Fixed part of a key node, before the name.
const NK_FIXED: usize = 76;
/// A cell offset meaning "none".
const NONE: u32 = 0xFFFF_FFFF;

/// One key of a hive: its node parsed, its lists read on demand.
#[derive(Debug, Clone)]
pub struct Key<'h> {
    hive: &'h Hive,
    offset: u32,
    name: String,
    /// The stored name as UTF-16 units (Latin-1 bytes widened), for ordering checks.
    units: Vec<u16>,
    flags: u16,
    last_written: u64,
    parent: u32,
    subkey_count: u32,
    subkey_list: u32,
    value_count: u32,
    value_list: u32,
    class_offset: u32,
    class_len: u16,
}

fn file_off(cell: u32) -> u64 {
    cell as u64 + BASE_BLOCK_SIZE as u64
}

impl<'h> Key<'h> {
    /// Reads the key node at `offset` (relative to the first hive bin).
    pub(crate) fn read(hive: &'h Hive, offset: u32) -> Result<Key<'h>> {
        let c = hive.cell(offset, "nk")?;
        let fo = file_off(offset);
        if c.len() < NK_FIXED {
            return Err(Error::corrupt(
                "nk",
                fo,
                format!("key node cell of {} bytes is too small", c.len()),
            ));
        }
        if &c[0..2] != b"nk" {
            return Err(Error::corrupt(
                "nk",
                fo,
                format!("signature {:02x?} is not \"nk\"", &c[0..2]),
            ));
        }
        let u32at = |at| le_u32(c, at).unwrap_or(NONE);
        let flags = le_u16(c, 2).unwrap_or(0);
        let name_len = le_u16(c, 72).unwrap_or(0) as usize;
        let name_bytes = c.get(NK_FIXED..NK_FIXED + name_len).ok_or_else(|| {
            Error::corrupt(
                "nk",
                fo,
                format!(
                    "key name of {name_len} bytes does not fit in its {}-byte cell",
                    c.len()
                ),
            )
        })?;
        let compressed = flags & KEY_COMP_NAME != 0;
        let units = if compressed {
            name_bytes.iter().map(|&b| u16::from(b)).collect()
        } else {
            name_bytes
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c.get(1).copied().unwrap_or(0)]))
                .collect()
        };
        Ok(Key {
            hive,
            offset,
            name: decode_name(name_bytes, compressed),
            units,
            flags,
            last_written: le_u64(c, 4).unwrap_or(0),
            parent: u32at(16),
            subkey_count: u32at(20),
            subkey_list: u32at(28),
            value_count: u32at(36),
            value_list: u32at(40),
            class_offset: u32at(48),
            class_len: le_u16(c, 74).unwrap_or(0),
        })
    }

    /// The key's name (the root key's name is whatever the hive stores, often `ROOT` or a
    /// path such as `CsiTool-CreateHive-{...}`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Last written time (FILETIME: 100 ns units since 1601-01-01 UTC).
    pub fn last_written(&self) -> u64 {
        self.last_written
    }

    /// The cell offset of this key node (relative to the first hive bin).
    pub fn cell_offset(&self) -> u32 {
        self.offset
    }

    /// The byte offset of this key node in the hive file.
    pub fn file_offset(&self) -> u64 {
        file_off(self.offset)
    }

    /// The raw `nk` flags.
    pub fn flags(&self) -> u16 {
        self.flags
    }

    /// True for the hive's root key (`KEY_HIVE_ENTRY`).
    pub fn is_root(&self) -> bool {
        self.flags & KEY_HIVE_ENTRY != 0
    }

    /// The number of subkeys the node declares (stable ones).
    pub fn subkey_count(&self) -> u32 {
        self.subkey_count
    }

    /// The number of values the node declares.
    pub fn value_count(&self) -> u32 {
        self.value_count
    }

    /// The parent's cell offset as stored in the node.
    pub fn parent_offset(&self) -> u32 {
        self.parent
    }

    /// The class name (UTF-16LE), `None` when the key has none.
    pub fn class_name(&self) -> Result<Option<String>> {
        if self.class_offset == NONE || self.class_len == 0 {
            return Ok(None);
        }
        let c = self.hive.cell(self.class_offset, "class name")?;
        let b = c.get(..self.class_len as usize).ok_or_else(|| {
            Error::corrupt(
                "class name",
                file_off(self.class_offset),
                format!(
                    "class name of {} bytes does not fit in its {}-byte cell",
                    self.class_len,
                    c.len()
                ),
            )
        })?;
        Ok(Some(crate::name::decode_utf16_lossy(b)))
    }

    /// The cell offsets of the subkey nodes, in list order, following `ri` index roots.
    /// Fails on the first structural error of the lists.
    pub fn subkey_offsets(&self) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        if self.subkey_count == 0 || self.subkey_list == NONE {
            return Ok(out);
        }
        let mut seen = HashSet::new();
        read_list(self.hive, self.subkey_list, 0, &mut seen, &mut out)?;
        Ok(out)
    }

    /// The subkeys, in list order. Fails on the first error: a damaged list, an unreadable
    /// subkey node, a subkey whose parent field does not point back here, or a list that is
    /// not sorted (which Windows' own lookups rely on).
    pub fn subkeys(&self) -> Result<Vec<Key<'h>>> {
        let (keys, errors) = self.subkeys_lossy();
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(keys),
        }
    }

    /// The subkeys that could be read, and the errors met on the way: one bad subkey (or a
    /// sorting error) does not hide the others. When the list itself cannot be read the
    /// result is empty with that error.
    pub fn subkeys_lossy(&self) -> (Vec<Key<'h>>, Vec<Error>) {
        let offsets = match self.subkey_offsets() {
            Ok(o) => o,
            Err(e) => return (Vec::new(), vec![e]),
        };
        let mut keys: Vec<Key<'h>> = Vec::with_capacity(offsets.len());
        let mut errors = Vec::new();
        for off in offsets {
            match Key::read(self.hive, off) {
                Ok(k) => {
                    if k.parent != self.offset {
                        errors.push(Error::corrupt(
                            "nk",
                            file_off(off),
                            format!(
                                "subkey {:?} names parent {:#x}, but it is listed by the key at {:#x}",
                                k.name,
                                file_off(k.parent),
                                self.file_offset()
                            ),
                        ));
                        continue;
                    }
                    if let Some(prev) = keys.last() {
                        if units_cmp(&prev.units, &k.units) != std::cmp::Ordering::Less {
                            errors.push(Error::corrupt(
                                "subkey list",
                                file_off(self.subkey_list),
                                format!(
                                    "subkeys not in order: {:?} comes after {:?}",
                                    k.name, prev.name
                                ),
                            ));
                        }
                    }
                    keys.push(k);
                }
                Err(e) => errors.push(e),
            }
        }
        (keys, errors)
    }

    /// The subkey called `name` (case-insensitive), `Ok(None)` when there is none.
    ///
    /// Lookups scan the list (they do not trust its order) and skip unreadable entries; an
    /// error is returned only when the list itself cannot be read.
    pub fn subkey(&self, name: &str) -> Result<Option<Key<'h>>> {
        for off in self.subkey_offsets()? {
            if let Ok(k) = Key::read(self.hive, off) {
                if names_equal(&k.name, name) {
                    return Ok(Some(k));
                }
            }
        }
        Ok(None)
    }

    /// The cell offsets of the value records, in list order.
    pub fn value_offsets(&self) -> Result<Vec<u32>> {
        if self.value_count == 0 || self.value_list == NONE {
            return Ok(Vec::new());
        }
        let n = self.value_count as usize;
        let fo = file_off(self.value_list);
        if n > limits::MAX_VALUES {
            return Err(Error::limit(
                "value list",
                fo,
                "value count",
                n as u64,
                limits::MAX_VALUES as u64,
            ));
        }
        let c = self.hive.cell(self.value_list, "value list")?;
        if n * 4 > c.len() {
            return Err(Error::corrupt(
                "value list",
                fo,
                format!("{n} values do not fit in a {}-byte cell", c.len()),
            ));
        }
        Ok((0..n).filter_map(|i| le_u32(c, i * 4)).collect())
    }

    /// The values, in list order (data is read when asked for). Fails on the first error.
    pub fn values(&self) -> Result<Vec<Value<'h>>> {
        let (v, errors) = self.values_lossy();
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(v),
        }
    }

    /// The values that could be read, and the errors met on the way.
    pub fn values_lossy(&self) -> (Vec<Value<'h>>, Vec<Error>) {
        let offsets = match self.value_offsets() {
            Ok(o) => o,
            Err(e) => return (Vec::new(), vec![e]),
        };
        let mut out = Vec::with_capacity(offsets.len());
        let mut errors = Vec::new();
        for off in offsets {
            match Value::read(self.hive, off) {
                Ok(v) => out.push(v),
                Err(e) => errors.push(e),
            }
        }
        (out, errors)
    }

    /// The value called `name` (case-insensitive; `""` is the default value), `Ok(None)`
    /// when there is none. Unreadable value records are skipped.
    pub fn value(&self, name: &str) -> Result<Option<Value<'h>>> {
        for off in self.value_offsets()? {
            if let Ok(v) = Value::read(self.hive, off) {
                if names_equal(v.name(), name) {
                    return Ok(Some(v));
                }
            }
        }
        Ok(None)
    }
}

/// Appends the node offsets of the list at `offset` to `out`.
fn read_list(
    hive: &Hive,
    offset: u32,
    ri_depth: usize,
    seen: &mut HashSet<u32>,
    out: &mut Vec<u32>,
) -> Result<()> {
    let fo = file_off(offset);
    if !seen.insert(offset) {
        return Err(Error::corrupt(
            "subkey list",
            fo,
            "the list is referenced twice (cycle through index roots)",
        ));
    }
    let c = hive.cell(offset, "subkey list")?;
    if c.len() < 4 {
        return Err(Error::corrupt("subkey list", fo, "cell too small"));
    }
    let count = le_u16(c, 2).unwrap_or(0) as usize;
    let sig = [c[0], c[1]];
    let (structure, stride): (&'static str, usize) = match &sig {
        b"lf" => ("lf list", 8),
        b"lh" => ("lh list", 8),
        b"li" => ("li list", 4),
        b"ri" => ("ri list", 4),
        _ => {
            return Err(Error::corrupt(
                "subkey list",
                fo,
                format!("unknown list signature {sig:02x?}"),
            ))
        }
    };
    if 4 + count * stride > c.len() {
        return Err(Error::corrupt(
            structure,
            fo,
            format!("{count} elements do not fit in a {}-byte cell", c.len()),
        ));
    }
    if &sig == b"ri" {
        if ri_depth >= limits::MAX_RI_DEPTH {
            return Err(Error::limit(
                structure,
                fo,
                "index root nesting",
                ri_depth as u64 + 1,
                limits::MAX_RI_DEPTH as u64,
            ));
        }
        for i in 0..count {
            let sub = le_u32(c, 4 + i * 4).unwrap_or(NONE);
            read_list(hive, sub, ri_depth + 1, seen, out)?;
        }
        return Ok(());
    }
    if out.len() + count > limits::MAX_SUBKEYS {
        return Err(Error::limit(
            structure,
            fo,
            "subkey count",
            (out.len() + count) as u64,
            limits::MAX_SUBKEYS as u64,
        ));
    }
    for i in 0..count {
        if let Some(o) = le_u32(c, 4 + i * stride) {
            out.push(o);
        }
    }
    Ok(())
}
