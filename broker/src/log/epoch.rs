//! The leader epoch cache: for each leader epoch, the first offset written in it.
//!
//! Persisted per partition as `leader-epoch-checkpoint` (see `checkpoint`). Replication uses it
//! to answer OffsetsForLeaderEpoch and to truncate a follower's divergent tail by epoch.
//! Invariant: entries are strictly ascending in both epoch and start offset.

use std::path::PathBuf;

use super::checkpoint;
use super::error::Result;
use crate::types::{LeaderEpoch, Offset};

/// One `(epoch, start offset)` pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: LeaderEpoch,
    pub start_offset: Offset,
}

#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    pub(crate) const FILE_NAME: &'static str = "leader-epoch-checkpoint";

    /// Loads the cache from the partition directory's checkpoint (empty when absent).
    pub(crate) fn load(dir: &std::path::Path) -> Result<LeaderEpochCache> {
        let path = dir.join(Self::FILE_NAME);
        let mut cache = LeaderEpochCache {
            path,
            entries: Vec::new(),
        };
        for (epoch, start_offset) in checkpoint::read_epochs(&cache.path)? {
            // Keep the invariant even if the file was written by something less careful.
            cache.insert(EpochEntry {
                epoch: LeaderEpoch(epoch),
                start_offset,
            });
        }
        Ok(cache)
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records that `epoch` started at `start_offset`. Like Kafka, an entry that is not newer
    /// than the latest is ignored unless it moves the latest epoch's start back; entries it
    /// contradicts (same or later epoch, or same or later start) are dropped first.
    pub(crate) fn assign(&mut self, epoch: LeaderEpoch, start_offset: Offset) -> Result<()> {
        if epoch.0 < 0 {
            return Ok(());
        }
        let needed = match self.latest() {
            None => true,
            Some(latest) => epoch != latest.epoch || start_offset < latest.start_offset,
        };
        if needed {
            self.insert(EpochEntry {
                epoch,
                start_offset,
            });
            self.persist()?;
        }
        Ok(())
    }

    fn insert(&mut self, entry: EpochEntry) {
        self.entries
            .retain(|e| e.epoch < entry.epoch && e.start_offset < entry.start_offset);
        self.entries.push(entry);
    }

    /// OffsetsForLeaderEpoch: the largest epoch at most `requested` and the offset where the
    /// epoch after it starts (the log end offset for the latest epoch). `None` when the
    /// requested epoch is later than any known, or the cache is empty.
    pub fn end_offset_for(
        &self,
        requested: LeaderEpoch,
        log_end_offset: Offset,
    ) -> Option<(LeaderEpoch, Offset)> {
        let latest = self.latest()?;
        if requested.0 < 0 {
            return None;
        }
        if requested == latest.epoch {
            return Some((latest.epoch, log_end_offset));
        }
        let higher = self.entries.iter().find(|e| e.epoch > requested)?;
        let floor = self.entries.iter().rev().find(|e| e.epoch <= requested);
        Some(match floor {
            Some(floor) => (floor.epoch, higher.start_offset),
            // Older than anything we know: the requester's epoch ends where our first begins.
            None => (requested, higher.start_offset),
        })
    }

    /// The epoch in force at `offset`, if the cache covers it.
    pub fn epoch_for_offset(&self, offset: Offset) -> Option<LeaderEpoch> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.start_offset <= offset)
            .map(|e| e.epoch)
    }

    /// Drops entries starting at or after `end_offset` (the log was truncated there).
    pub(crate) fn truncate_from_end(&mut self, end_offset: Offset) -> Result<()> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// Forgets epochs wholly before `start_offset` (the log start advanced); the epoch in force
    /// there now starts at `start_offset`.
    pub(crate) fn truncate_from_start(&mut self, start_offset: Offset) -> Result<()> {
        let Some(keep_from) = self
            .entries
            .iter()
            .rposition(|e| e.start_offset <= start_offset)
        else {
            return Ok(());
        };
        if keep_from == 0 && self.entries[0].start_offset == start_offset {
            return Ok(());
        }
        self.entries.drain(..keep_from);
        self.entries[0].start_offset = start_offset;
        self.persist()
    }

    fn persist(&self) -> Result<()> {
        let pairs: Vec<(i32, Offset)> = self
            .entries
            .iter()
            .map(|e| (e.epoch.0, e.start_offset))
            .collect();
        checkpoint::write_epochs(&self.path, &pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_with(entries: &[(i32, u64)]) -> (tempfile::TempDir, LeaderEpochCache) {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::load(dir.path()).unwrap();
        for &(e, o) in entries {
            cache.assign(LeaderEpoch(e), Offset(o)).unwrap();
        }
        (dir, cache)
    }

    fn pairs(cache: &LeaderEpochCache) -> Vec<(i32, u64)> {
        cache
            .entries()
            .iter()
            .map(|e| (e.epoch.0, e.start_offset.0))
            .collect()
    }

    #[test]
    fn assign_keeps_first_offset_per_epoch_and_persists() {
        let (dir, cache) = cache_with(&[(0, 0), (0, 5), (2, 10), (2, 12), (4, 20)]);
        assert_eq!(pairs(&cache), vec![(0, 0), (2, 10), (4, 20)]);
        let text = std::fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap();
        assert_eq!(text, "0\n3\n0 0\n2 10\n4 20\n");
        let reloaded = LeaderEpochCache::load(dir.path()).unwrap();
        assert_eq!(pairs(&reloaded), pairs(&cache));
    }

    #[test]
    fn assign_drops_contradicted_entries() {
        // A new epoch starting before the latest start supersedes everything at or after it.
        let (_dir, cache) = cache_with(&[(0, 0), (2, 10), (4, 20), (5, 15)]);
        assert_eq!(pairs(&cache), vec![(0, 0), (2, 10), (5, 15)]);
        // An older epoch than the latest is taken as a rewrite of history from its offset.
        let (_dir, cache) = cache_with(&[(0, 0), (2, 10), (4, 20), (3, 25)]);
        assert_eq!(pairs(&cache), vec![(0, 0), (2, 10), (3, 25)]);
    }

    #[test]
    fn end_offset_for_matches_kafka() {
        let (_dir, cache) = cache_with(&[(1, 0), (3, 10), (5, 20)]);
        let leo = Offset(30);
        let q = |e| cache.end_offset_for(LeaderEpoch(e), leo);
        assert_eq!(q(5), Some((LeaderEpoch(5), Offset(30))));
        assert_eq!(q(3), Some((LeaderEpoch(3), Offset(20))));
        assert_eq!(q(4), Some((LeaderEpoch(3), Offset(20))));
        assert_eq!(q(2), Some((LeaderEpoch(1), Offset(10))));
        assert_eq!(q(0), Some((LeaderEpoch(0), Offset(0))));
        assert_eq!(q(6), None);
        assert_eq!(q(-1), None);
        let (_dir, empty) = cache_with(&[]);
        assert_eq!(empty.end_offset_for(LeaderEpoch(0), leo), None);
    }

    #[test]
    fn truncation_from_both_ends() {
        let (_dir, mut cache) = cache_with(&[(1, 0), (3, 10), (5, 20)]);
        cache.truncate_from_end(Offset(20)).unwrap();
        assert_eq!(pairs(&cache), vec![(1, 0), (3, 10)]);
        cache.truncate_from_start(Offset(12)).unwrap();
        assert_eq!(pairs(&cache), vec![(3, 12)]);
        cache.truncate_from_start(Offset(5)).unwrap();
        assert_eq!(pairs(&cache), vec![(3, 12)]);
        assert_eq!(cache.epoch_for_offset(Offset(11)), None);
        assert_eq!(cache.epoch_for_offset(Offset(13)), Some(LeaderEpoch(3)));
    }
}
