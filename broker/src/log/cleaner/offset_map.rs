//! The offset map: for each key of the dirty section, the offset of its latest record.
//!
//! Kafka's `SkimpyOffsetMap` stores a 16-byte MD5 of each key in a fixed buffer and accepts
//! the (tiny) risk that two keys collide and a live record is dropped. This map stores the
//! keys themselves, so a record is only ever dropped for a newer record with the same key; the
//! memory bound is kept by charging each entry its key length plus [`ENTRY_OVERHEAD`] against
//! a budget (`CleanerOptions::dedupe_buffer_bytes`, Kafka's `log.cleaner.dedupe.buffer.size`).
//!
//! Invariant: `latest` is the last offset the map fully covers — every keyed record in
//! `[first dirty, latest]` is accounted for — and is `None` until a batch has been mapped.

use std::collections::HashMap;

use crate::types::Offset;

/// What one entry costs besides its key bytes: the offset, the key's allocation header, and
/// the hash table's slot and control bytes (an estimate; the budget is a bound, not a count).
pub(super) const ENTRY_OVERHEAD: usize = 48;

#[derive(Debug, Default)]
pub(super) struct OffsetMap {
    entries: HashMap<Box<[u8]>, Offset>,
    bytes: usize,
    budget: usize,
    latest: Option<Offset>,
}

impl OffsetMap {
    pub(super) fn new(budget: usize) -> OffsetMap {
        OffsetMap {
            budget,
            ..OffsetMap::default()
        }
    }

    /// Whether `keys` (one batch's keys) can be added within the budget. A batch is mapped
    /// whole or not at all, so that `latest` can stay at batch boundaries.
    pub(super) fn fits<'a>(&self, keys: impl Iterator<Item = &'a [u8]>) -> bool {
        let extra: usize = keys
            .filter(|k| !self.entries.contains_key(*k))
            .map(|k| k.len() + ENTRY_OVERHEAD)
            .sum();
        self.bytes + extra <= self.budget
    }

    /// Records `offset` as the latest for `key` (offsets are fed in ascending order).
    pub(super) fn put(&mut self, key: &[u8], offset: Offset) {
        if let Some(existing) = self.entries.get_mut(key) {
            *existing = offset;
        } else {
            self.bytes += key.len() + ENTRY_OVERHEAD;
            self.entries.insert(key.into(), offset);
        }
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<Offset> {
        self.entries.get(key).copied()
    }

    /// Marks everything up to `offset` as covered.
    pub(super) fn cover_up_to(&mut self, offset: Offset) {
        if self.latest.is_none_or(|l| offset > l) {
            self.latest = Some(offset);
        }
    }

    pub(super) fn latest(&self) -> Option<Offset> {
        self.latest
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_offsets_replace_earlier_and_the_budget_counts_new_keys_only() {
        let mut map = OffsetMap::new(2 * (1 + ENTRY_OVERHEAD));
        assert!(map.fits([&b"a"[..], b"b"].into_iter()));
        assert!(!map.fits([&b"a"[..], b"b", b"c"].into_iter()));
        map.put(b"a", Offset(1));
        map.put(b"b", Offset(2));
        map.put(b"a", Offset(3));
        assert_eq!(map.get(b"a"), Some(Offset(3)));
        assert_eq!(map.len(), 2);
        assert!(
            map.fits([&b"a"[..], b"b"].into_iter()),
            "known keys cost nothing"
        );
        assert!(!map.fits([&b"c"[..]].into_iter()));
        assert_eq!(map.latest(), None);
        map.cover_up_to(Offset(9));
        map.cover_up_to(Offset(4));
        assert_eq!(map.latest(), Some(Offset(9)));
    }
}
