//! Small bounded caches shared by the format readers: metadata tables keyed by their host
//! offset (least recently used evicted) and recently decompressed clusters/grains.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use guestctl_block::{Error, ErrorKind, Result};

/// A bounded map from table offset to a decoded table, evicting the least recently used.
#[derive(Debug)]
pub(crate) struct TableCache<T> {
    inner: Mutex<TableInner<T>>,
}

#[derive(Debug)]
struct TableInner<T> {
    tables: HashMap<u64, (Arc<[T]>, u64)>,
    tick: u64,
    cap: usize,
}

impl<T> TableCache<T> {
    /// A cache holding at most `cap` tables (at least 1).
    pub(crate) fn new(cap: usize) -> Self {
        TableCache {
            inner: Mutex::new(TableInner {
                tables: HashMap::new(),
                tick: 0,
                cap: cap.max(1),
            }),
        }
    }

    /// The cached table at `off`, or `load()`ed and cached. The lock is not held while loading.
    pub(crate) fn get_or_load(
        &self,
        off: u64,
        load: impl FnOnce() -> Result<Arc<[T]>>,
    ) -> Result<Arc<[T]>> {
        {
            let mut c = self.inner.lock().map_err(|_| poisoned())?;
            c.tick += 1;
            let tick = c.tick;
            if let Some((t, used)) = c.tables.get_mut(&off) {
                *used = tick;
                return Ok(t.clone());
            }
        }
        let table = load()?;
        let mut c = self.inner.lock().map_err(|_| poisoned())?;
        if c.tables.len() >= c.cap {
            if let Some(old) = c
                .tables
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k)
            {
                c.tables.remove(&old);
            }
        }
        c.tick += 1;
        let tick = c.tick;
        c.tables.insert(off, (table.clone(), tick));
        Ok(table)
    }
}

/// The last few decompressed clusters, for reads smaller than a cluster.
#[derive(Debug)]
pub(crate) struct ChunkCache {
    inner: Mutex<VecDeque<(u64, Arc<[u8]>)>>,
    cap: usize,
}

impl ChunkCache {
    /// A cache of at most `cap` chunks.
    pub(crate) fn new(cap: usize) -> Self {
        ChunkCache {
            inner: Mutex::new(VecDeque::new()),
            cap: cap.max(1),
        }
    }

    /// The chunk keyed `key`, or `load()`ed and cached.
    pub(crate) fn get_or_load(
        &self,
        key: u64,
        load: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Arc<[u8]>> {
        if let Some(c) = self
            .inner
            .lock()
            .map_err(|_| poisoned())?
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, c)| c.clone())
        {
            return Ok(c);
        }
        let c: Arc<[u8]> = load()?.into();
        let mut q = self.inner.lock().map_err(|_| poisoned())?;
        if q.len() >= self.cap {
            q.pop_front();
        }
        q.push_back((key, c.clone()));
        Ok(c)
    }
}

/// The error for a mutex poisoned by a panicking reader thread.
pub(crate) fn poisoned() -> Error {
    Error::new(ErrorKind::Io, "a reader thread panicked (lock poisoned)")
}

/// Reads from `dev` into `buf`, zero-filling what lies past its end (as qemu does for data
/// past the end of an image file).
pub(crate) fn read_or_zero(
    dev: &dyn guestctl_block::BlockDevice,
    offset: u64,
    buf: &mut [u8],
) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = dev.read_at(offset + done as u64, &mut buf[done..])?;
        if n == 0 {
            break;
        }
        done += n;
    }
    buf[done..].fill(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_cache_evicts_least_recent() {
        let c: TableCache<u64> = TableCache::new(2);
        let t = |v: u64| move || -> Result<Arc<[u64]>> { Ok(vec![v].into()) };
        c.get_or_load(1, t(1)).expect("1");
        c.get_or_load(2, t(2)).expect("2");
        c.get_or_load(1, t(99)).expect("hit");
        c.get_or_load(3, t(3)).expect("3"); // evicts 2
        assert_eq!(c.get_or_load(1, t(99)).expect("1")[0], 1);
        assert_eq!(c.get_or_load(2, t(22)).expect("2")[0], 22);
    }
}
