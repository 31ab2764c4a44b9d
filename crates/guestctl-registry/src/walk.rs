//! A bounded walk over every key and value of a hive.

use std::collections::HashSet;
use std::rc::Rc;

use crate::{limits, Error, Hive, Key, Result, Value};

/// What [`walk`] saw.
#[derive(Debug, Default)]
pub struct WalkStats {
    /// Keys visited (the root included).
    pub keys: usize,
    /// Values visited.
    pub values: usize,
    /// Bytes of value data read.
    pub data_bytes: u64,
    /// Every error met; the walk goes on past each one.
    pub errors: Vec<Error>,
}

/// Visits every key reachable from the root, depth first in list order, calling `visit` with
/// the key's path (names joined by `\`, empty for the root), the key and its readable values.
/// With `read_data`, each value's data is read too (errors are collected, the data dropped).
///
/// Bounded for hostile hives: a key node reached twice is visited once (cycles, shared lists),
/// depth ≤ [`limits::MAX_DEPTH`], and the total work (list entries followed, data bytes read)
/// is proportional to the hive's size — an honest hive never comes near it. Fails only when
/// the root cannot be read; everything else lands in [`WalkStats::errors`].
pub fn walk(
    hive: &Hive,
    read_data: bool,
    mut visit: impl FnMut(&str, &Key<'_>, &[Value<'_>]),
) -> Result<WalkStats> {
    let root = hive.root()?;
    let size = hive.bytes().len() as u64;
    let entry_budget = size / 2 + 65_536;
    let data_budget = size.saturating_mul(4) + limits::MAX_VALUE_DATA as u64;
    let mut entries = 0u64;
    let mut stats = WalkStats::default();
    let mut seen = HashSet::new();
    seen.insert(root.cell_offset());
    // Each entry holds its parent's path, shared: memory stays proportional to the entries.
    let mut stack: Vec<(Key<'_>, Option<Rc<str>>, usize)> = vec![(root, None, 0)];
    while let Some((key, parent, depth)) = stack.pop() {
        let path: Rc<str> = match parent {
            None => Rc::from(""),
            Some(p) if p.is_empty() => Rc::from(key.name()),
            Some(p) => Rc::from(format!("{p}\\{}", key.name())),
        };
        stats.keys += 1;
        let (values, errs) = key.values_lossy();
        stats.errors.extend(errs);
        entries += key.value_count().min(limits::MAX_VALUES as u32) as u64;
        if read_data {
            for v in &values {
                let n = v.data_len() as u64;
                if stats.data_bytes + n > data_budget {
                    stats.errors.push(Error::limit(
                        "value data",
                        v.cell_offset() as u64 + crate::BASE_BLOCK_SIZE as u64,
                        "value data read by the walk",
                        stats.data_bytes + n,
                        data_budget,
                    ));
                    return Ok(stats);
                }
                match v.data() {
                    Ok(d) => stats.data_bytes += d.len() as u64,
                    Err(e) => stats.errors.push(e),
                }
            }
        }
        stats.values += values.len();
        visit(&path, &key, &values);
        drop(values);
        let (subkeys, errs) = key.subkeys_lossy();
        stats.errors.extend(errs);
        entries += subkeys.len() as u64;
        if entries > entry_budget {
            stats.errors.push(Error::limit(
                "hive",
                key.file_offset(),
                "list entries followed by the walk",
                entries,
                entry_budget,
            ));
            return Ok(stats);
        }
        if subkeys.is_empty() {
            continue;
        }
        if depth + 1 > limits::MAX_DEPTH {
            stats.errors.push(Error::limit(
                "nk",
                key.file_offset(),
                "key depth",
                depth as u64 + 1,
                limits::MAX_DEPTH as u64,
            ));
            continue;
        }
        // Reverse so that popping visits the subkeys in list order.
        for sk in subkeys.into_iter().rev() {
            if !seen.insert(sk.cell_offset()) {
                stats.errors.push(Error::corrupt(
                    "nk",
                    sk.file_offset(),
                    "key node reached twice (cycle or shared subkey)",
                ));
                continue;
            }
            stack.push((sk, Some(Rc::clone(&path)), depth + 1));
        }
    }
    Ok(stats)
}
