//! Deleting old data: retention by time and size, and DeleteRecords.
//!
//! Only whole sealed segments are deleted, oldest first, and only segments wholly below the
//! high watermark (data not yet replicated is never deleted). Passes run in Kafka's order —
//! log start offset breach, then `retention.bytes`, then `retention.ms` — each stopping at the
//! first segment it keeps. Time and size retention apply only with `cleanup.policy=delete`.
//! Files are unlinked at once: readers holding a [`super::LogSlice`] keep their descriptor.
//!
//! The same passes retire producer state: producers idle for `producer.id.expiration.ms` are
//! forgotten, and snapshots no recovery or truncation would start from are deleted. Kept, as
//! in Kafka's `deleteSnapshotsAfterRecoveryPointCheckpoint`: every snapshot at or above the
//! base of the segment before the active one, and at or above the base of the segment holding
//! the recovery point (a crash recovery may cut the log anywhere above it), as long as it is
//! not below the log start; and in any case the newest two.

use super::error::{LogError, Result};
use super::partition::Log;
use crate::types::Offset;

/// What a retention pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
}

impl Log {
    /// Runs the retention passes at `now_ms`, then retires idle producers and old snapshots.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<RetentionOutcome> {
        let mut outcome = RetentionOutcome::default();
        let start = self.log_start_offset;
        self.delete_oldest_while(&mut outcome, |_, segment| Ok(segment.end <= start))?;
        if self.config.cleanup_policy.delete {
            let limit = self.config.retention_bytes;
            if limit >= 0 && self.size_bytes() >= limit as u64 {
                let mut excess = self.size_bytes() - limit as u64;
                self.delete_oldest_while(&mut outcome, |_, segment| {
                    let delete = excess >= segment.size;
                    if delete {
                        excess -= segment.size;
                    }
                    Ok(delete)
                })?;
            }
            let retention_ms = self.config.retention_ms;
            if retention_ms >= 0 {
                self.delete_oldest_while(&mut outcome, |log, segment| {
                    let newest = segment.retention_timestamp(&log.cache, &log.config)?;
                    Ok(now_ms.saturating_sub(newest) > retention_ms)
                })?;
            }
        }
        self.remove_expired_producers(now_ms);
        self.delete_old_snapshots()?;
        Ok(outcome)
    }

    /// Deletes the snapshots that the module docs say are no longer needed.
    fn delete_old_snapshots(&mut self) -> Result<()> {
        // Base of the segment holding `offset` (the first segment's for offsets below it).
        let holder = |offset: Offset| {
            if offset >= self.active.base || self.sealed.is_empty() {
                return self.active.base;
            }
            let i = self.sealed.partition_point(|s| s.base <= offset);
            self.sealed[i.saturating_sub(1)].base
        };
        let previous = self.sealed.back().map_or(self.active.base, |s| s.base);
        let keep_from = previous
            .min(holder(self.recovery_point))
            .max(self.log_start_offset);
        self.dir_dirty |= self.snapshots.delete_below(keep_from, 2)?;
        Ok(())
    }

    fn delete_oldest_while(
        &mut self,
        outcome: &mut RetentionOutcome,
        mut deletable: impl FnMut(&Log, &super::segment::SealedSegment) -> Result<bool>,
    ) -> Result<()> {
        while let Some(segment) = self.sealed.front() {
            if segment.end > self.high_watermark || !deletable(self, segment)? {
                break;
            }
            let segment = self.sealed.pop_front().expect("front exists");
            self.cache.remove(segment.key);
            segment.paths.delete()?;
            outcome.segments_deleted += 1;
            outcome.bytes_deleted += segment.size;
            let first = self.sealed.front().map_or(self.active.base, |s| s.base);
            if first > self.log_start_offset {
                self.log_start_offset = first;
                self.epochs.truncate_from_start(first)?;
            }
        }
        Ok(())
    }

    /// DeleteRecords: moves the log start offset up to `offset` (at most the high watermark)
    /// and deletes the sealed segments wholly below it. Returns the new log start offset.
    pub fn delete_records(&mut self, offset: Offset) -> Result<Offset> {
        if offset > self.high_watermark {
            return Err(LogError::OffsetBeyondHighWatermark {
                offset,
                high_watermark: self.high_watermark,
            });
        }
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
            self.epochs.truncate_from_start(offset)?;
            let mut outcome = RetentionOutcome::default();
            self.delete_oldest_while(&mut outcome, |_, segment| Ok(segment.end <= offset))?;
            self.delete_old_snapshots()?;
        }
        Ok(self.log_start_offset)
    }
}
