//! Swapping a cleaned segment into the log crash-safely (Kafka's `replaceSegments`), and
//! finishing a swap a crash interrupted (Kafka's swap-file handling when a log loads).
//!
//! The steps, and what a crash after each leaves for the next open:
//!
//! | step | files | on open |
//! |---|---|---|
//! | write output | `<base>.{log,index,timeindex}.cleaned`, fsynced | `.cleaned` deleted: the log is as before |
//! | 1. rename `.cleaned` → `.swap` (indexes first, `.log` last), fsync dir | `<base>.log.swap` = committed | see below |
//! | 2. delete the replaced segments | some or all of them gone | see below |
//! | 3. rename `.swap` → final names (indexes first, `.log` last), fsync dir | the cleaned segment | nothing to do |
//!
//! An index `.swap` file is always deleted at open (indexes are rebuilt). That includes the
//! transaction index (`<base>.txnindex.swap`, present when the group had aborted
//! transactions): the replaced segments' `.txnindex` files go with them, and the log's opening
//! rebuilds the transaction indexes from the swapped-in segment on by replaying its markers. A `<base>.log.swap`
//! is the committed output of a group: it replaces every segment whose base offset lies in
//! `[base, next)`, where `next` is the offset after its last batch (at least `base + 1`) —
//! Kafka's rule of replacing whatever the swap segment's range overlaps. So that this range
//! covers the whole group, the cleaner keeps the last batch of a group's last segment even when
//! all its records go (as an empty batch; Kafka keeps only the last batch of a whole pass):
//! then `next` is past every replaced segment's base. The swap's records are exactly what the
//! group kept, so after the replacement the log holds every record that was the latest for its
//! key. (Were a replaced segment to hold no batch at all, it could survive a crash in step 2;
//! it would hold nothing to read.)

use std::fs;
use std::path::Path;

use tracing::{info, warn};

use super::task::CleanedGroup;
use super::{CleanerError, CleanerStats};
use crate::log::checkpoint;
use crate::log::config::LogConfig;
use crate::log::error::{IoContext, Result};
use crate::log::partition::Log;
use crate::log::scan;
use crate::log::segment::{self, LOG_SUFFIX, SealedSegment, SegmentPaths};
use crate::types::Offset;

pub(super) const SWAP_SUFFIX: &str = ".swap";

/// Where a swap stops early (tests simulate crashes with it).
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SwapStep {
    /// After the `.cleaned` files were renamed to `.swap`.
    Renamed,
    /// After the replaced segments were deleted.
    Deleted,
}

impl Log {
    /// Replaces the segments `group` was cleaned from with it: the short step of a pass that
    /// needs `&mut self` (renames and unlinks, no data copied). Returns `None`, deleting the
    /// group's files, when those segments are no longer all in the log (retention, DeleteRecords
    /// or a truncation removed one meanwhile).
    pub fn swap_cleaned(
        &mut self,
        group: CleanedGroup,
    ) -> std::result::Result<Option<CleanerStats>, CleanerError> {
        self.swap_cleaned_until(group, None)
    }

    pub(super) fn swap_cleaned_until(
        &mut self,
        mut group: CleanedGroup,
        stop: Option<SwapStep>,
    ) -> std::result::Result<Option<CleanerStats>, CleanerError> {
        let Some(at) = self.position_of(&group) else {
            info!(dir = %self.dir.display(), base = %group.base, "segments changed while cleaning; discarding the cleaned segment");
            return Ok(None);
        };
        let count = group.sources.len();
        let swap = group.paths.suffixed(SWAP_SUFFIX);
        group.cleaned.rename_to(&swap)?;
        group.pending = false;
        checkpoint::sync_dir(&self.dir)?;
        if stop == Some(SwapStep::Renamed) {
            return Ok(None);
        }
        for replaced in self.sealed.range(at..at + count) {
            // Readers holding a slice keep their descriptor; the cache must not hand out the
            // old files again.
            self.cache.remove(replaced.key);
            replaced.paths.delete()?;
        }
        if stop == Some(SwapStep::Deleted) {
            return Ok(None);
        }
        swap.rename_to(&group.paths)?;
        checkpoint::sync_dir(&self.dir)?;
        let cleaned = SealedSegment::new(group.paths.clone(), group.base, group.end, group.size);
        cleaned.set_max_timestamp(group.max_timestamp);
        self.sealed.drain(at..at + count);
        self.sealed.insert(at, cleaned);
        Ok(Some(group.stats))
    }

    /// Where `group`'s source segments sit in `self.sealed`, if they are all still there, in
    /// order and unchanged.
    fn position_of(&self, group: &CleanedGroup) -> Option<usize> {
        let (first_key, _) = *group.sources.first()?;
        let at = self.sealed.iter().position(|s| s.key == first_key)?;
        let same = self
            .sealed
            .range(at..)
            .map(|s| s.key)
            .take(group.sources.len())
            .eq(group.sources.iter().map(|&(key, _)| key));
        let end = self.sealed.get(at + group.sources.len() - 1)?.end;
        (same && end == group.end).then_some(at)
    }
}

/// Finishes the swaps a crash interrupted in `dir` (see the module docs), before its segments
/// are listed. Index `.swap` files are deleted; `.cleaned` files are left to the listing, which
/// deletes them. Returns the base of the first segment swapped in, whose transaction index
/// (and those of the later segments) the log's opening rebuilds.
pub(in crate::log) fn complete_interrupted_swaps(
    dir: &Path,
    config: &LogConfig,
) -> Result<Option<Offset>> {
    let log_swap = format!("{LOG_SUFFIX}{SWAP_SUFFIX}");
    let mut swaps = Vec::new();
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(SWAP_SUFFIX) {
            if let Some(base) = segment::parse_base_offset(stem, LOG_SUFFIX) {
                swaps.push(base);
            } else {
                fs::remove_file(entry.path()).at(&entry.path())?;
            }
        } else if let Some(base) = segment::parse_base_offset(name, LOG_SUFFIX) {
            bases.push(base);
        }
    }
    if swaps.is_empty() {
        return Ok(None);
    }
    swaps.sort_unstable();
    let first = swaps.first().copied();
    for base in swaps {
        let paths = SegmentPaths::new(dir, base);
        let swap_log = dir.join(format!("{:020}{log_swap}", base.0));
        let scanned = scan::scan_segment(
            &swap_log,
            base,
            None,
            config.index_interval_bytes,
            segment::max_index_entries(config),
        )?;
        if scanned.stopped_early {
            // Written and fsynced before it was renamed, so this is damage after the fact;
            // the recovery scan that follows deals with it as with any segment.
            warn!(segment = %swap_log.display(), valid_bytes = scanned.valid_bytes, "swap segment has unreadable bytes");
        }
        let upper = scanned.next_offset.max(base + 1);
        let replaced: Vec<Offset> = bases
            .iter()
            .copied()
            .filter(|&b| b >= base && b < upper)
            .collect();
        for &old in &replaced {
            SegmentPaths::new(dir, old).delete()?;
        }
        bases.retain(|b| !replaced.contains(b));
        fs::rename(&swap_log, &paths.log).at(&swap_log)?;
        segment::write_index_files(&paths, scanned)?;
        bases.push(base);
        info!(segment = %paths.log.display(), replaced = replaced.len(), "completed an interrupted cleaner swap");
    }
    checkpoint::sync_dir(dir)?;
    Ok(first)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::log::cache::SegmentCache;
    use crate::log::cleaner::CleanerOptions;
    use crate::log::recovery::OpenOptions;
    use bytes::Bytes;
    use kafka_protocol::records::RecordBatchDecoder;

    const NOW: i64 = 1_700_000_000_000;

    fn keyed(key: &str, value: Option<&str>) -> Vec<u8> {
        let record = (
            Some(Bytes::copy_from_slice(key.as_bytes())),
            value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
        );
        crate::log::batch::encode_plain_batch([record], NOW)
            .unwrap()
            .to_vec()
    }

    fn config() -> LogConfig {
        LogConfig::from_overrides([
            ("segment.bytes", "2000"),
            ("cleanup.policy", "compact"),
            ("min.cleanable.dirty.ratio", "0"),
        ])
        .unwrap()
    }

    fn open(dir: &Path, clean_shutdown: bool) -> Log {
        let options = OpenOptions {
            clean_shutdown,
            now_ms: NOW,
            ..OpenOptions::default()
        };
        Log::open(dir, config(), options, Arc::new(SegmentCache::new(8))).unwrap()
    }

    /// `key -> value` of the latest record per key, reading the whole log.
    fn latest(log: &Log) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        let mut next = log.log_start_offset();
        let mut last = -1;
        while let Some(slice) = log.read(next, 1 << 20, None).unwrap() {
            let mut bytes = Bytes::from(slice.read_to_vec().unwrap());
            for set in RecordBatchDecoder::decode_all(&mut bytes).unwrap() {
                for r in set.records {
                    assert!(r.offset > last, "offsets strictly increase");
                    last = r.offset;
                    let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
                    out.insert(key, String::from_utf8(r.value.unwrap().to_vec()).unwrap());
                }
            }
            next = slice.next_offset;
        }
        out
    }

    #[test]
    fn a_swap_interrupted_at_any_step_completes_or_vanishes_on_open() {
        for stop in [None, Some(SwapStep::Renamed), Some(SwapStep::Deleted)] {
            let dir = tempfile::tempdir().unwrap();
            let mut log = open(dir.path(), false);
            for i in 0..60 {
                let key = format!("k{}", i % 7);
                let batch = keyed(&key, Some(&format!("v{i}")));
                log.append_as_leader(&batch, crate::types::LeaderEpoch(0), NOW)
                    .unwrap();
                if i % 5 == 4 {
                    // Small segments, so that a group merges several.
                    log.roll(NOW).unwrap();
                }
            }
            log.roll(NOW).unwrap();
            log.set_high_watermark(log.log_end_offset());
            let expected = latest(&log);
            let segments_before = log.segment_count();
            let cleanable = log.cleanable(None, NOW).unwrap();
            let mut task = log
                .start_cleaning(&cleanable, NOW, &CleanerOptions::default())
                .unwrap();
            let group = task.prepare_next().unwrap().expect("a group");
            assert!(
                group.source_base_offsets().len() > 1,
                "small segments are merged"
            );
            let swapped = log.swap_cleaned_until(group, stop).unwrap();
            assert_eq!(swapped.is_some(), stop.is_none());
            drop(task);
            drop(log);
            let reopened = open(dir.path(), false);
            assert_eq!(latest(&reopened), expected, "{stop:?}");
            assert!(
                reopened.segment_count() < segments_before,
                "{stop:?}: the swap completed"
            );
            let leftovers = fs::read_dir(dir.path())
                .unwrap()
                .filter_map(|e| e.unwrap().file_name().into_string().ok())
                .filter(|n| n.ends_with(".swap") || n.ends_with(".cleaned"))
                .count();
            assert_eq!(leftovers, 0, "{stop:?}");
        }
    }

    /// A transactional batch of one keyed record from producer 9, sequence `seq`.
    fn transactional(key: &str, seq: i32) -> Vec<u8> {
        use kafka_protocol::records::{
            Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let record = Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: 9,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: seq,
            timestamp: NOW,
            key: Some(Bytes::copy_from_slice(key.as_bytes())),
            value: Some(Bytes::from_static(b"aborted")),
            headers: Default::default(),
        };
        let mut buf = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, [record].iter(), &options).unwrap();
        buf.to_vec()
    }

    #[test]
    fn after_an_interrupted_swap_every_aborted_record_left_is_covered_by_the_aborted_list() {
        use crate::log::{ControlType, TxnMarker};
        let epoch = crate::types::LeaderEpoch(0);
        let abort = TxnMarker {
            producer_id: 9,
            producer_epoch: 0,
            coordinator_epoch: 0,
            control: ControlType::Abort,
        };
        for stop in [None, Some(SwapStep::Renamed), Some(SwapStep::Deleted)] {
            let dir = tempfile::tempdir().unwrap();
            let mut log = open(dir.path(), false);
            for i in 0..40 {
                let key = format!("k{}", i % 7);
                log.append_as_leader(&keyed(&key, Some(&format!("v{i}"))), epoch, NOW)
                    .unwrap();
                if i % 10 == 3 {
                    log.append_as_leader(&transactional(&key, i / 10), epoch, NOW)
                        .unwrap();
                    log.append_marker(&abort, epoch, NOW).unwrap();
                }
                if i % 5 == 4 {
                    log.roll(NOW).unwrap();
                }
            }
            log.roll(NOW).unwrap();
            log.set_high_watermark(log.log_end_offset());
            let leo = log.log_end_offset();
            let aborted = log.aborted_transactions(Offset::ZERO, leo).unwrap();
            assert_eq!(aborted.len(), 4);
            let cleanable = log.cleanable(None, NOW).unwrap();
            let mut task = log
                .start_cleaning(&cleanable, NOW, &CleanerOptions::default())
                .unwrap();
            let group = task.prepare_next().unwrap().expect("a group");
            log.flush().unwrap();
            log.swap_cleaned_until(group, stop).unwrap();
            drop(task);
            drop(log);
            // A crash after everything was flushed: recovery scans nothing; the swap completion
            // rebuilds the transaction indexes from the swapped-in segment on.
            let options = OpenOptions {
                clean_shutdown: false,
                recovery_point: leo,
                now_ms: NOW,
                ..OpenOptions::default()
            };
            let reopened = Log::open(
                dir.path(),
                config(),
                options,
                Arc::new(SegmentCache::new(8)),
            )
            .unwrap();
            let listed = reopened.aborted_transactions(Offset::ZERO, leo).unwrap();
            // Producer 9's records still in the log (the cleaner removed the aborted ones it
            // reached), and its markers.
            let (mut left, mut markers) = (Vec::new(), 0);
            let mut next = reopened.log_start_offset();
            while let Some(slice) = reopened.read(next, 1 << 20, None).unwrap() {
                let mut bytes = Bytes::from(slice.read_to_vec().unwrap());
                for set in RecordBatchDecoder::decode_all(&mut bytes).unwrap() {
                    for r in set.records.iter().filter(|r| r.producer_id == 9) {
                        if r.control {
                            markers += 1;
                        } else {
                            left.push(r.offset);
                        }
                    }
                }
                next = slice.next_offset;
            }
            assert_eq!(markers, 4, "{stop:?}: markers are kept");
            assert!(
                !left.is_empty(),
                "{stop:?}: later transactions were not cleaned"
            );
            for offset in left {
                assert!(
                    listed
                        .iter()
                        .any(|a| a.first_offset.as_i64() <= offset
                            && offset < a.last_offset.as_i64()),
                    "{stop:?}: aborted record at {offset} is not listed in {listed:?}"
                );
            }
            assert!(listed.iter().all(|a| aborted.contains(a)), "{stop:?}");
        }
    }
}
