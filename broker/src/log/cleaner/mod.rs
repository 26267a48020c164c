//! The log cleaner: compaction for `cleanup.policy=compact` (and `compact,delete`), as Kafka's
//! `LogCleaner` does it.
//!
//! ```text
//!  log start          first dirty offset         first uncleanable       active segment
//!  |---- clean section ----|------ dirty section ------|-------- not yet --------|-----
//!                          (cleaner-offset-checkpoint)
//! ```
//!
//! A pass over one log:
//! 1. **Where** ([`Log::cleanable`], Kafka's `cleanableOffsets`): the dirty section starts at
//!    the checkpointed first dirty offset (the log start when there is none, or when it lies
//!    outside the log) and ends at the first uncleanable offset: the active segment, the last
//!    stable offset (as Kafka), and the first segment whose newest record is
//!    younger than `min.compaction.lag.ms` — rounded down to a segment base.
//! 2. **Whether**: dirty bytes / (clean + dirty bytes) must be more than
//!    `min.cleanable.dirty.ratio` (strictly, as Kafka compares), unless a dirty segment's first
//!    batch is older than `max.compaction.lag.ms`, which forces a pass.
//! 3. **Offset map** ([`CleanTask`]): key → offset of its latest record in the dirty section
//!    (`offset_map`), as far as the memory budget reaches; the new first dirty offset is the
//!    end of what it covers.
//! 4. **Rewrite**: the segments from the log's first through the end of the mapped range are
//!    grouped (consecutive segments whose sizes sum to at most `segment.bytes` and whose
//!    indexes fit `segment.index.bytes`, Kafka's `groupSegmentsBySize`), and each group is
//!    rewritten as one segment keeping a record if it is past the map, or its key is not in the
//!    map, or its offset is at least the map's for its key. Records without a key are dropped.
//!    Offsets never change: a batch that loses records keeps its base offset and last offset
//!    delta (so its offset range and its producer's sequence range are intact); a batch that
//!    loses none is copied byte for byte; a compressed batch is re-compressed with its own
//!    codec (`records`).
//! 5. **Swap** ([`Log::swap_cleaned`], `swap`): Kafka's crash-safe replacement of the group's
//!    segments by the `.cleaned` output, under `&mut Log` only for renames and deletes.
//!
//! Batches that survive even when all their records go (Kafka's `RETAIN_EMPTY`): the last
//! batch of each idempotent producer still in the producer state (so its last sequence
//! survives a rebuild of the producer state from the log), the batch ending exactly at the
//! first uncleanable offset, and the last batch of each group (so that a swap interrupted by a
//! crash knows which segments it replaces; see `swap`).
//!
//! **Transactions**: nothing at or above the last stable offset is cleaned, so every
//! transaction in the cleaned range is decided. The records of aborted transactions (known
//! from the transaction indexes) are left out of the offset map and removed, as Kafka does;
//! committed transactional records are compacted like any other. Control batches (markers)
//! are always kept: Kafka also removes a marker once its transaction's data is gone and
//! `delete.retention.ms` passed, which this cleaner does not do yet (markers are small, but
//! they accumulate until retention deletes their segment). The transaction indexes of a
//! group's segments are concatenated into the cleaned segment's
//! (`<base>.txnindex.cleaned`, swapped with the rest).
//!
//! **Tombstones** (records with a null value) follow Kafka's legacy (pre-KIP-534) rule: the
//! delete horizon is the time of the last segment of the clean section minus
//! `delete.retention.ms`, and a source segment drops its tombstones (when they are the latest
//! for their key) only if its time is at or below that horizon. A first pass, which has no
//! clean section, keeps every tombstone. A segment's **time** here is its largest record
//! timestamp, or the `.log` file's modification time when no batch carries a timestamp —
//! the same time `retention.ms` uses (`SealedSegment::retention_timestamp`); it is also what
//! `min.compaction.lag.ms` compares. `max.compaction.lag.ms` compares a segment's first batch
//! timestamp, as Kafka's does. A cleaned segment's `.log` gets the modification time of the
//! last segment it replaces, as Kafka's does.
//!
//! Invariants: the active segment and anything at or above the first uncleanable offset are
//! never read or written; every record that is the latest for its key in the log stays; the
//! offsets of kept records never change, so reads from the log start still see strictly
//! increasing offsets.

mod offset_map;
mod records;
mod swap;
mod task;

use std::ops::AddAssign;
use std::path::PathBuf;

use thiserror::Error;

use super::error::LogError;
use super::partition::Log;
use crate::types::Offset;

pub(super) use swap::complete_interrupted_swaps;
pub use task::{CleanTask, CleanedGroup};

/// Why cleaning a log failed. The log itself is untouched unless the error came from the swap
/// step; reopening the log then completes or discards the swap (see `swap`).
#[derive(Debug, Error)]
pub enum CleanerError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("segment {path} holds an unreadable batch at position {position}")]
    CorruptBatch { path: PathBuf, position: u64 },
    #[error("records of the batch at position {position} of {path} are malformed: {reason}")]
    RecordFraming {
        path: PathBuf,
        position: u64,
        reason: &'static str,
    },
    #[error(
        "cannot decompress or re-compress the batch at position {position} of {path}: {source}"
    )]
    Codec {
        path: PathBuf,
        position: u64,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A segment being cleaned was deleted meanwhile (retention, truncation): the pass is
    /// abandoned, nothing was replaced.
    #[error("segment {path} went away while it was being cleaned")]
    SegmentGone { path: PathBuf },
    #[error("cleaned segment {path} does not read back: {valid} valid bytes of {size}")]
    BadOutput {
        path: PathBuf,
        valid: u64,
        size: u64,
    },
}

/// Settings of the cleaner itself (broker-wide in Kafka).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanerOptions {
    /// Memory for one pass's offset map (Kafka's `log.cleaner.dedupe.buffer.size`). A dirty
    /// section with more distinct keys is cleaned over several passes.
    pub dedupe_buffer_bytes: usize,
}

impl Default for CleanerOptions {
    fn default() -> Self {
        CleanerOptions {
            dedupe_buffer_bytes: 128 * 1024 * 1024,
        }
    }
}

/// What cleaning did, for metrics. Sums over groups, logs and passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanerStats {
    /// Logs a pass completed on.
    pub logs_cleaned: usize,
    /// Logs whose pass failed (the manager logs the error and carries on).
    pub logs_failed: usize,
    /// Segments replaced by cleaned ones.
    pub segments_cleaned: usize,
    /// Cleaned segments written (one per group).
    pub segments_written: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Records read while rewriting (control batches not counted).
    pub records_read: u64,
    /// Records dropped: superseded, keyless, or expired tombstones.
    pub records_removed: u64,
    /// Of `records_removed`, those that were tombstones.
    pub tombstones_removed: u64,
}

impl AddAssign for CleanerStats {
    fn add_assign(&mut self, o: CleanerStats) {
        self.logs_cleaned += o.logs_cleaned;
        self.logs_failed += o.logs_failed;
        self.segments_cleaned += o.segments_cleaned;
        self.segments_written += o.segments_written;
        self.bytes_read += o.bytes_read;
        self.bytes_written += o.bytes_written;
        self.records_read += o.records_read;
        self.records_removed += o.records_removed;
        self.tombstones_removed += o.tombstones_removed;
    }
}

/// Where the cleaner stands on one log (Kafka's `LogToClean`). See the module docs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cleanable {
    /// Where the dirty section starts.
    pub first_dirty: Offset,
    /// Whether the checkpoint given was out of range and `first_dirty` was reset to the log
    /// start (the caller should store the new value).
    pub checkpoint_reset: bool,
    /// Where the dirty section ends (exclusive): a segment base, at most the active one's.
    pub first_uncleanable: Offset,
    /// Bytes of the segments below the first dirty offset.
    pub clean_bytes: u64,
    /// Bytes of the segments in the dirty section.
    pub cleanable_bytes: u64,
    /// How far past `max.compaction.lag.ms` the oldest dirty segment is (0: not past it).
    pub compaction_delay_ms: i64,
    /// `min.cleanable.dirty.ratio` of the log.
    pub min_dirty_ratio: f64,
}

impl Cleanable {
    /// Dirty bytes over all bytes up to the first uncleanable offset.
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.cleanable_bytes;
        if total == 0 {
            0.0
        } else {
            self.cleanable_bytes as f64 / total as f64
        }
    }

    /// Kafka's test for picking a log: forced by the max lag, or dirty enough.
    pub fn should_clean(&self) -> bool {
        self.cleanable_bytes > 0
            && (self.compaction_delay_ms > 0 || self.dirty_ratio() > self.min_dirty_ratio)
    }
}

/// What [`Log::clean`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CleanOutcome {
    pub cleanable: Cleanable,
    /// Whether a pass ran (the log was dirty enough and nothing interfered).
    pub cleaned: bool,
    /// The checkpoint to keep: where the next pass's dirty section starts.
    pub next_dirty: Offset,
    pub stats: CleanerStats,
}

impl Log {
    /// Runs one whole pass if the log is dirty enough (all steps under `&mut self`; see
    /// [`crate::log::LogManager::clean`] for the split that holds the lock only to swap).
    /// `checkpoint` is the first dirty offset from the last pass, if any.
    pub fn clean(
        &mut self,
        checkpoint: Option<Offset>,
        now_ms: i64,
        options: &CleanerOptions,
    ) -> Result<CleanOutcome, CleanerError> {
        let cleanable = self.cleanable(checkpoint, now_ms)?;
        let mut outcome = CleanOutcome {
            cleanable,
            cleaned: false,
            next_dirty: cleanable.first_dirty,
            stats: CleanerStats::default(),
        };
        if !cleanable.should_clean() {
            return Ok(outcome);
        }
        let mut task = self.start_cleaning(&cleanable, now_ms, options)?;
        while let Some(group) = task.prepare_next()? {
            // Nothing else can change the log while `&mut self` is held, so no swap aborts.
            if let Some(stats) = self.swap_cleaned(group)? {
                outcome.stats += stats;
            }
        }
        outcome.cleaned = true;
        outcome.stats.logs_cleaned = 1;
        outcome.next_dirty = task.next_dirty_offset().unwrap_or(cleanable.first_dirty);
        Ok(outcome)
    }
}
