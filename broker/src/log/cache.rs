//! A broker-wide, bounded cache of open sealed segments.
//!
//! A sealed segment costs nothing until it is read: its `.log` descriptor and index mappings
//! are opened on first use and kept here, least recently used first out. The bound applies
//! across every partition of the broker, so a partition with 10,000 sealed segments (or a
//! broker with 10,000 partitions) does not hold 30,000 descriptors and mappings. A reader
//! holds an `Arc` while it reads; eviction only drops the cache's reference.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use memmap2::Mmap;

/// The open files of one sealed segment.
#[derive(Debug)]
pub(crate) struct SealedHandles {
    pub(crate) log: Arc<File>,
    pub(crate) offset_index: Mmap,
    pub(crate) time_index: Mmap,
}

/// Identifies one sealed segment instance in the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SegmentKey(u64);

impl SegmentKey {
    pub(crate) fn next() -> SegmentKey {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        SegmentKey(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

#[derive(Debug)]
struct Inner {
    entries: HashMap<SegmentKey, (Arc<SealedHandles>, u64)>,
    clock: u64,
}

/// See the module docs. `capacity` is the number of sealed segments kept open.
#[derive(Debug)]
pub struct SegmentCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl SegmentCache {
    /// The default bound: 1,024 open sealed segments (3 descriptors/mappings each).
    pub const DEFAULT_CAPACITY: usize = 1024;

    pub fn new(capacity: usize) -> SegmentCache {
        SegmentCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                clock: 0,
            }),
        }
    }

    /// How many sealed segments are open right now.
    pub fn open_segments(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn get(&self, key: SegmentKey) -> Option<Arc<SealedHandles>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        inner.entries.get_mut(&key).map(|(handles, used)| {
            *used = now;
            handles.clone()
        })
    }

    /// Caches `handles` for `key`, evicting the least recently used segments over capacity.
    pub(crate) fn insert(&self, key: SegmentKey, handles: Arc<SealedHandles>) {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        inner.entries.insert(key, (handles, now));
        while inner.entries.len() > self.capacity {
            let oldest = inner
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k)
                .expect("non-empty");
            inner.entries.remove(&oldest);
        }
    }

    /// Drops a segment's handles (it is being deleted, truncated or reopened for writing).
    pub(crate) fn remove(&self, key: SegmentKey) {
        self.lock().entries.remove(&key);
    }
}

impl Default for SegmentCache {
    fn default() -> Self {
        SegmentCache::new(Self::DEFAULT_CAPACITY)
    }
}
