//! A bounded, sharded cache of metadata blocks (inode tables, extent and index blocks,
//! directory blocks) shared by all threads. Eviction is approximate (an arbitrary entry of the
//! full shard goes), which is enough to bound memory without bookkeeping on every hit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;

#[derive(Debug)]
pub(crate) struct BlockCache<V = Arc<[u8]>> {
    shards: Vec<Mutex<HashMap<u64, V>>>,
    per_shard: usize,
}

impl<V: Clone> BlockCache<V> {
    /// A cache holding about `bytes` of `block_size` blocks.
    pub(crate) fn new(bytes: usize, block_size: usize) -> Self {
        let per_shard = (bytes / block_size.max(1) / SHARDS).max(8);
        BlockCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard,
        }
    }

    fn shard(&self, blk: u64) -> &Mutex<HashMap<u64, V>> {
        // Neighbouring blocks land in different shards.
        &self.shards[(blk as usize).wrapping_mul(0x9E37_79B9) >> 4 & (SHARDS - 1)]
    }

    pub(crate) fn get(&self, blk: u64) -> Option<V> {
        let s = self.shard(blk).lock().unwrap_or_else(|p| p.into_inner());
        s.get(&blk).cloned()
    }

    pub(crate) fn insert(&self, blk: u64, data: V) {
        let mut s = self.shard(blk).lock().unwrap_or_else(|p| p.into_inner());
        if s.len() >= self.per_shard {
            if let Some(&k) = s.keys().next() {
                s.remove(&k);
            }
        }
        s.insert(blk, data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded() {
        let c = BlockCache::new(16 * 8 * 1024, 1024);
        for b in 0..10_000u64 {
            c.insert(b, Arc::from(vec![0u8; 4]));
        }
        let total: usize = c
            .shards
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum();
        assert!(total <= 16 * 8, "{total}");
        c.insert(5, Arc::from(vec![1u8; 4]));
        assert_eq!(c.get(5).as_deref(), Some(&[1u8, 1, 1, 1][..]));
    }
}
