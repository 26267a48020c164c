//! [`Log`]: one partition's log — appends, reads, lookups, roll, truncation and flushing.
//!
//! Invariants:
//! - segments are ascending by base offset and never overlap; the last one is active;
//! - `log_start_offset <= high_watermark <= log_end_offset`;
//! - a batch is in the kernel (its `write(2)` returned) before its append returns, and the
//!   recovery point only moves past data that was fsynced;
//! - the producer state describes exactly the batches below the log end offset, and a
//!   producer batch the leader refuses or recognises as a duplicate writes nothing;
//! - `log_start_offset <= last_stable_offset <= high_watermark` (transactions: `txn`).
//!
//! Appends take `&mut self`; reads and lookups take `&self` and hand out [`LogSlice`]s that
//! own their file descriptor, so the bytes can be sent (sendfile) after a lock is released.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch::{self, BatchHeader, TimestampType};
use super::cache::SegmentCache;
use super::checkpoint;
use super::config::LogConfig;
use super::epoch::LeaderEpochCache;
use super::error::{LogError, Result};
use super::producer_snapshots::SnapshotFiles;
use super::producer_state::{
    AppendOrigin, ProducerBatch, ProducerState, TxnVerification, VerificationGuard,
};
use super::scan::MaxTimestamp;
use super::segment::{ActiveSegment, SealedSegment};
use super::txn::{self, MarkerRecord};
use super::txn_index;
use super::view::{SegmentView, TimestampOffset};
use super::writeback::{self, WriteBehind};
use crate::types::{LeaderEpoch, Offset};

/// What an append stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: Offset,
    pub last_offset: Offset,
    /// The largest timestamp in what was appended (the append time for LogAppendTime).
    pub max_timestamp: i64,
    /// The broker's append time when the topic uses LogAppendTime; `None` for CreateTime.
    pub log_append_time: Option<i64>,
    pub log_start_offset: Offset,
    pub batches: usize,
    pub bytes: usize,
}

/// What a leader append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The batch was written.
    Appended(AppendInfo),
    /// The batch repeats one of its producer's last batches, which the log already holds:
    /// nothing was written, and the info describes the original (its offsets, its timestamp,
    /// `batches` and `bytes` zero). A producer retrying is answered as the first time.
    Duplicate(AppendInfo),
}

impl AppendOutcome {
    /// The offsets to answer the producer with, whichever the outcome.
    pub fn info(self) -> AppendInfo {
        match self {
            AppendOutcome::Appended(info) | AppendOutcome::Duplicate(info) => info,
        }
    }

    pub fn is_duplicate(self) -> bool {
        matches!(self, AppendOutcome::Duplicate(_))
    }
}

/// A byte range of a segment file holding whole batches, ready to be sent as is.
#[derive(Clone, Debug)]
pub struct LogSlice {
    pub file: Arc<File>,
    pub position: u64,
    pub len: u64,
    /// Base offset of the first batch in the range (at or below the offset asked for).
    pub first_offset: Offset,
    /// The offset after the last batch in the range.
    pub next_offset: Offset,
}

impl LogSlice {
    /// Copies the range into memory (tests, tools; fetch sends it with sendfile instead).
    pub fn read_to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; self.len as usize];
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(buf)
    }
}

// Handlers on many tasks share a log behind a lock.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Log>();
    shared::<LogSlice>();
};

/// One partition's segment log. See the module docs.
#[derive(Debug)]
pub struct Log {
    pub(super) dir: PathBuf,
    pub(super) config: LogConfig,
    pub(super) cache: Arc<SegmentCache>,
    pub(super) sealed: VecDeque<SealedSegment>,
    pub(super) active: ActiveSegment,
    pub(super) log_start_offset: Offset,
    pub(super) high_watermark: Offset,
    pub(super) recovery_point: Offset,
    pub(super) epochs: LeaderEpochCache,
    pub(super) unflushed_messages: u64,
    pub(super) oldest_unflushed_ms: Option<i64>,
    pub(super) dir_dirty: bool,
    /// Whether any segment may have a transaction index: false only while none existed at
    /// open and none has been written since, which spares every read_committed fetch of a
    /// log without aborted transactions a failed `open(2)` per segment.
    pub(super) txn_indexed: bool,
    pub(super) roll_jitter_ms: i64,
    pub(super) write_behind: WriteBehind,
    pub(super) producers: ProducerState,
    pub(super) snapshots: SnapshotFiles,
    /// `producer.id.expiration.ms`
    pub(super) producer_id_expiration_ms: i64,
}

impl Log {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Applies a topic config change; segment and index sizes apply from the next segment.
    pub fn set_config(&mut self, config: LogConfig) {
        self.roll_jitter_ms = jitter(&config);
        self.config = config;
    }

    pub fn log_start_offset(&self) -> Offset {
        self.log_start_offset
    }

    /// The log end offset (LEO): the offset the next appended record gets.
    pub fn log_end_offset(&self) -> Offset {
        self.active.next_offset
    }

    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    /// Sets the high watermark, clamped to `[log start, log end]` as Kafka does.
    pub fn set_high_watermark(&mut self, offset: Offset) {
        self.high_watermark = offset.clamp(self.log_start_offset, self.log_end_offset());
        self.producers.on_high_watermark(self.high_watermark);
    }

    /// Everything below this offset has been fsynced.
    pub fn recovery_point(&self) -> Offset {
        self.recovery_point
    }

    pub fn leader_epochs(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    /// The idempotent producers of this partition and their last batches.
    pub fn producer_state(&self) -> &ProducerState {
        &self.producers
    }

    /// Sets `producer.id.expiration.ms` (a broker-wide setting in Kafka).
    pub fn set_producer_id_expiration_ms(&mut self, ms: i64) {
        self.producer_id_expiration_ms = ms;
    }

    /// Forgets producers idle for `producer.id.expiration.ms`. Returns how many.
    pub fn remove_expired_producers(&mut self, now_ms: i64) -> usize {
        self.producers
            .remove_expired(now_ms, self.producer_id_expiration_ms)
    }

    /// Records in the leader epoch cache that `epoch` starts at `start_offset`. A new leader
    /// does this before its first append (Kafka's `assignEpochStartOffset`), so followers
    /// asking where its epoch starts get an answer before it has written anything.
    pub fn assign_epoch_start_offset(
        &mut self,
        epoch: LeaderEpoch,
        start_offset: Offset,
    ) -> Result<()> {
        self.epochs.assign(epoch, start_offset)
    }

    /// OffsetsForLeaderEpoch on this log (see [`LeaderEpochCache::end_offset_for`]).
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    pub fn segment_count(&self) -> usize {
        self.sealed.len() + 1
    }

    /// Bytes in all segment `.log` files.
    pub fn size_bytes(&self) -> u64 {
        self.sealed.iter().map(|s| s.size).sum::<u64>() + self.active.size
    }

    /// Base offsets of all segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<Offset> {
        self.sealed
            .iter()
            .map(|s| s.base)
            .chain([self.active.base])
            .collect()
    }

    /// Appends a batch as a producer sent it, as the partition leader in `leader_epoch`.
    ///
    /// Checks the batch (framing, CRC, magic v2, record count, size limits, and for an
    /// idempotent producer its epoch and sequence), gives it the next offsets by rewriting its
    /// header, stamps the epoch (and the append time for LogAppendTime topics), and writes it.
    /// The records section is stored as received. A retry of one of the producer's last
    /// batches writes nothing and returns [`AppendOutcome::Duplicate`].
    pub fn append_as_leader(
        &mut self,
        batch: &[u8],
        leader_epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<AppendOutcome> {
        self.append_verified(batch, leader_epoch, now_ms, TxnVerification::Off)
    }

    /// [`Self::append_as_leader`] with transaction verification (KIP-890): a transactional
    /// batch that would open its producer's transaction is refused
    /// ([`super::ProducerError::NotVerified`]) unless `verification` carries the guard of the
    /// producer's verification in progress (see `producer_state`).
    pub fn append_verified(
        &mut self,
        batch: &[u8],
        leader_epoch: LeaderEpoch,
        now_ms: i64,
        verification: TxnVerification,
    ) -> Result<AppendOutcome> {
        self.append_checked(
            batch,
            leader_epoch,
            now_ms,
            AppendOrigin::Client,
            verification,
        )
    }

    /// Starts (or joins) the verification of `producer_id`'s first transactional write to
    /// this partition; `None` when its transaction is already open here.
    pub fn start_txn_verification(
        &mut self,
        producer_id: i64,
        now_ms: i64,
    ) -> Option<VerificationGuard> {
        self.producers.start_verification(producer_id, now_ms)
    }

    /// A leader append for `origin` (the producer checks differ; see `producer_state`).
    pub(super) fn append_from(
        &mut self,
        batch: &[u8],
        leader_epoch: LeaderEpoch,
        now_ms: i64,
        origin: AppendOrigin,
    ) -> Result<AppendOutcome> {
        self.append_checked(batch, leader_epoch, now_ms, origin, TxnVerification::Off)
    }

    fn append_checked(
        &mut self,
        batch: &[u8],
        leader_epoch: LeaderEpoch,
        now_ms: i64,
        origin: AppendOrigin,
        verification: TxnVerification,
    ) -> Result<AppendOutcome> {
        if batch.len() > self.config.max_message_bytes {
            return Err(LogError::MessageTooLarge {
                size: batch.len(),
                max: self.config.max_message_bytes,
            });
        }
        if batch.len() as u64 > self.config.segment_bytes {
            return Err(LogError::RecordListTooLarge {
                size: batch.len(),
                max: self.config.segment_bytes,
            });
        }
        let checked = match origin {
            AppendOrigin::Client => batch::validate_client_batch(batch)?,
            AppendOrigin::Coordinator => batch::validate_coordinator_batch(batch)?,
        };
        if self.config.cleanup_policy.compact {
            batch::check_keys(batch)?;
        }
        let log_append_time = self.config.message_timestamp_type == TimestampType::LogAppendTime;
        let incoming = ProducerBatch::from_header(&checked.header);
        // A retry of a written batch is a duplicate before it is unverified, as in Kafka.
        let duplicate = match &incoming {
            Some(incoming) => self.producers.check_leader_append(incoming, origin)?,
            None => None,
        };
        if let Some(incoming) = &incoming
            && duplicate.is_none()
        {
            self.producers.check_verification(incoming, verification)?;
        }
        if let Some(original) = duplicate {
            return Ok(AppendOutcome::Duplicate(AppendInfo {
                first_offset: original.first_offset(),
                last_offset: original.last_offset,
                max_timestamp: original.timestamp,
                log_append_time: log_append_time.then_some(original.timestamp),
                log_start_offset: self.log_start_offset,
                batches: 0,
                bytes: 0,
            }));
        }
        let first = self.log_end_offset();
        let append_time = log_append_time.then_some(now_ms);
        let head = checked.restamped_header(batch, first.as_i64(), leader_epoch.0, append_time);
        let stored = BatchHeader::parse(&head)?;
        let last = Offset(stored.last_offset() as u64);
        if self.active.should_roll(
            &self.config,
            batch.len() as u64,
            stored.max_timestamp,
            last,
            now_ms,
            self.roll_jitter_ms,
        ) {
            self.roll_at(first, now_ms)?;
        }
        self.epochs.assign(leader_epoch, first)?;
        self.active
            .append(&[&head, &batch[batch::HEADER_LEN..]], &[stored])?;
        self.update_producers(&[(stored, None)])?;
        self.after_append(u64::from(stored.records_count as u32), now_ms)?;
        Ok(AppendOutcome::Appended(AppendInfo {
            first_offset: first,
            last_offset: last,
            max_timestamp: stored.max_timestamp,
            log_append_time: append_time,
            log_start_offset: self.log_start_offset,
            batches: 1,
            bytes: batch.len(),
        }))
    }

    /// Appends batches replicated from the leader, offsets already assigned. A partial batch
    /// at the end of `records` (as a fetch response may carry) is ignored. Returns `None`
    /// when `records` holds no whole batch.
    pub fn append_as_follower(
        &mut self,
        records: &[u8],
        now_ms: i64,
    ) -> Result<Option<AppendInfo>> {
        let mut batches: Vec<(usize, BatchHeader)> = Vec::new();
        let mut position = 0usize;
        while records.len() - position >= batch::HEADER_LEN {
            let header = BatchHeader::parse(&records[position..])?;
            if header.total_size() > records.len() - position {
                break;
            }
            let header = batch::check_batch(&records[position..])?.header;
            let expected = batches
                .last()
                .map_or(self.log_end_offset().as_i64(), |(_, h)| h.last_offset() + 1);
            if header.base_offset < expected || header.last_offset() < header.base_offset {
                return Err(LogError::UnexpectedAppendOffset {
                    base_offset: header.base_offset,
                    log_end: self.log_end_offset(),
                });
            }
            batches.push((position, header));
            position += header.total_size();
        }
        let (Some(&(_, first)), Some(&(_, last))) = (batches.first(), batches.last()) else {
            return Ok(None);
        };
        // Write runs of batches that fit the active segment with one write each.
        let mut run_start = 0usize;
        while run_start < batches.len() {
            let (start_pos, head) = batches[run_start];
            if self.active.should_roll(
                &self.config,
                head.total_size() as u64,
                head.max_timestamp,
                Offset(head.last_offset() as u64),
                now_ms,
                self.roll_jitter_ms,
            ) {
                self.roll_at(Offset(head.base_offset as u64), now_ms)?;
            }
            let mut run_end = run_start + 1;
            let mut run_bytes = head.total_size() as u64;
            while let Some(&(_, next)) = batches.get(run_end) {
                let grown = run_bytes + next.total_size() as u64;
                let base = self.active.base.0;
                let fits = self.active.size + grown <= self.config.segment_bytes
                    && (next.last_offset() as u64).saturating_sub(base) <= i32::MAX as u64;
                if !fits {
                    break;
                }
                run_bytes = grown;
                run_end += 1;
            }
            for (_, h) in &batches[run_start..run_end] {
                if h.partition_leader_epoch >= 0
                    && self
                        .epochs
                        .latest()
                        .is_none_or(|l| h.partition_leader_epoch > l.epoch.0)
                {
                    self.epochs.assign(
                        LeaderEpoch(h.partition_leader_epoch),
                        Offset(h.base_offset as u64),
                    )?;
                }
            }
            let headers: Vec<BatchHeader> = batches[run_start..run_end]
                .iter()
                .map(|(_, h)| *h)
                .collect();
            let markers: Vec<(BatchHeader, Option<MarkerRecord>)> = batches[run_start..run_end]
                .iter()
                .map(|&(pos, h)| {
                    let marker = h.is_control().then(|| txn::parse_marker(&records[pos..]));
                    (h, marker.flatten())
                })
                .collect();
            let bytes = &records[start_pos..start_pos + run_bytes as usize];
            self.active.append(&[bytes], &headers)?;
            // Before the next roll, whose snapshot must include this run.
            self.update_producers(&markers)?;
            run_start = run_end;
        }
        let count = (last.last_offset() - first.base_offset + 1) as u64;
        self.after_append(count, now_ms)?;
        Ok(Some(AppendInfo {
            first_offset: Offset(first.base_offset as u64),
            last_offset: Offset(last.last_offset() as u64),
            max_timestamp: batches
                .iter()
                .map(|(_, h)| h.max_timestamp)
                .max()
                .unwrap_or(-1),
            log_append_time: None,
            log_start_offset: self.log_start_offset,
            batches: batches.len(),
            bytes: position,
        }))
    }

    pub(super) fn after_append(&mut self, messages: u64, now_ms: i64) -> Result<()> {
        self.unflushed_messages += messages;
        self.oldest_unflushed_ms.get_or_insert(now_ms);
        writeback::submit(self.write_behind.after_append(
            self.config.page_cache,
            self.active.file(),
            self.active.size,
        ));
        if self.unflushed_messages >= self.config.flush_messages {
            self.flush()?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at the log end offset (if the active
    /// segment holds anything).
    pub fn roll(&mut self, now_ms: i64) -> Result<()> {
        let leo = self.log_end_offset();
        self.roll_at(leo, now_ms)
    }

    /// Starts a new active segment at `base` (the next batch's base offset), with a producer
    /// state snapshot at `base` as Kafka takes one on every roll.
    pub(super) fn roll_at(&mut self, base: Offset, now_ms: i64) -> Result<()> {
        if self.active.size == 0 && self.active.base == base {
            return Ok(());
        }
        // Nothing lies between the log end and `base`, so the state reaches `base` too.
        self.producers.set_end_offset(base);
        self.dir_dirty |= self.snapshots.write(&self.producers)?;
        if self.active.size == 0 {
            // An empty active segment is replaced rather than sealed (Kafka does the same).
            let fresh = ActiveSegment::create(&self.dir, base, &self.config, now_ms)?;
            let old = std::mem::replace(&mut self.active, fresh);
            old.paths.delete()?;
        } else {
            let fresh = ActiveSegment::create(&self.dir, base, &self.config, now_ms)?;
            let old = std::mem::replace(&mut self.active, fresh);
            self.sealed.push_back(old.seal()?);
        }
        self.dir_dirty = true;
        self.roll_jitter_ms = jitter(&self.config);
        Ok(())
    }

    /// Reads whole batches from `start`: at most `max_bytes` (but at least the first batch)
    /// and only below `upper` (exclusive; the high watermark or last stable offset for
    /// consumers, the log end offset when `None`). `None` when there is nothing to return.
    pub fn read(
        &self,
        start: Offset,
        max_bytes: usize,
        upper: Option<Offset>,
    ) -> Result<Option<LogSlice>> {
        let leo = self.log_end_offset();
        if start < self.log_start_offset || start > leo {
            return Err(LogError::OffsetOutOfRange {
                offset: start,
                log_start: self.log_start_offset,
                log_end: leo,
            });
        }
        let upper = upper.map_or(leo, |u| u.min(leo));
        if start >= upper {
            return Ok(None);
        }
        let first_sealed = self.sealed.partition_point(|s| s.end <= start);
        for segment in self.sealed.range(first_sealed..) {
            if segment.base >= upper {
                return Ok(None);
            }
            let found = segment.with_view(&self.cache, &self.config, |view| {
                slice_of(view, start, max_bytes, upper)
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        slice_of(&self.active.view(), start, max_bytes, upper)
    }

    /// Runs `f` over each segment's view, oldest first, until it returns `Some`.
    fn find_in_segments<T>(
        &self,
        f: impl Fn(&SegmentView<'_>, MaxTimestamp) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        for segment in &self.sealed {
            let max = segment.max_timestamp(&self.cache, &self.config)?;
            if let Some(found) =
                segment.with_view(&self.cache, &self.config, |view| f(view, max))?
            {
                return Ok(Some(found));
            }
        }
        f(&self.active.view(), self.active.max_timestamp())
    }

    /// ListOffsets by timestamp: the first record at or after the log start offset whose
    /// timestamp is at least `target`; `None` when no record is that late.
    pub fn offset_for_timestamp(&self, target: i64) -> Result<Option<TimestampOffset>> {
        let start = self.log_start_offset;
        self.find_in_segments(|view, max| {
            if max.timestamp < target {
                return Ok(None);
            }
            view.find_by_timestamp(target, start)
        })
    }

    /// ListOffsets MAX_TIMESTAMP: the first record carrying the log's largest timestamp.
    pub fn max_timestamp_offset(&self) -> Result<Option<TimestampOffset>> {
        let mut best: Option<(usize, MaxTimestamp)> = None;
        for (i, segment) in self.sealed.iter().enumerate() {
            let max = segment.max_timestamp(&self.cache, &self.config)?;
            if max.timestamp >= 0 && best.is_none_or(|(_, b)| max.timestamp > b.timestamp) {
                best = Some((i, max));
            }
        }
        let active = self.active.max_timestamp();
        if active.timestamp >= 0 && best.is_none_or(|(_, b)| active.timestamp > b.timestamp) {
            return self.active.view().find_max_timestamp(active);
        }
        let Some((i, max)) = best else {
            return Ok(None);
        };
        let segment = &self.sealed[i];
        let handles = segment.handles(&self.cache, &self.config)?;
        segment.view(&handles).find_max_timestamp(max)
    }

    /// Removes every record at or after `target` (a follower cutting a divergent tail); the
    /// whole batch holding `target` goes. The log end offset becomes the end of what is left.
    ///
    /// The producer state is rebuilt for what is left: from the newest snapshot at or below
    /// the new end, replaying the batches after it.
    pub fn truncate_to(&mut self, target: Offset, now_ms: i64) -> Result<()> {
        if target >= self.log_end_offset() {
            return Ok(());
        }
        // Snapshots past the cut describe batches about to go: delete them first, so a crash
        // midway cannot leave one behind.
        self.dir_dirty |= self.snapshots.delete_above(target)?;
        let had_producers = !self.producers.is_empty();
        let first_base = self.sealed.front().map_or(self.active.base, |s| s.base);
        if target < first_base {
            return self.truncate_fully_and_start_at(target, now_ms);
        }
        if self.active.base > target {
            let holder = self.sealed.partition_point(|s| s.base <= target) - 1;
            for segment in self.sealed.drain(holder + 1..) {
                self.cache.remove(segment.key);
                segment.paths.delete()?;
            }
            let reopened = self.sealed.pop_back().expect("segment holding target");
            self.cache.remove(reopened.key);
            let active =
                ActiveSegment::open_existing(&self.dir, reopened.base, &self.config, now_ms)?;
            let old = std::mem::replace(&mut self.active, active);
            old.paths.delete()?;
        }
        let leo = self.active.truncate_to(target, now_ms)?;
        // Aborted transactions whose marker went go from the index too.
        self.dir_dirty |= txn_index::truncate(&self.active.paths.txn_index, leo)?;
        self.log_start_offset = self.log_start_offset.min(leo);
        self.high_watermark = self.high_watermark.min(leo);
        self.recovery_point = self.recovery_point.min(leo);
        self.epochs.truncate_from_end(leo)?;
        self.dir_dirty = true;
        if had_producers {
            self.rebuild_producer_state(now_ms)?;
        } else {
            // Cutting a log with no producers cannot bring one back (Kafka's shortcut too).
            self.dir_dirty |= self.snapshots.delete_above(leo)?;
            self.producers = ProducerState::new(leo);
        }
        Ok(())
    }

    /// Deletes everything and restarts the log empty at `offset`.
    pub fn truncate_fully_and_start_at(&mut self, offset: Offset, now_ms: i64) -> Result<()> {
        for segment in self.sealed.drain(..) {
            self.cache.remove(segment.key);
            segment.paths.delete()?;
        }
        let fresh = ActiveSegment::create(&self.dir, offset, &self.config, now_ms)?;
        let old = std::mem::replace(&mut self.active, fresh);
        if old.base != offset {
            old.paths.delete()?;
        }
        self.log_start_offset = offset;
        self.high_watermark = offset;
        self.recovery_point = offset;
        self.epochs.truncate_from_end(Offset::ZERO)?;
        self.snapshots.delete_all()?;
        self.producers = ProducerState::new(offset);
        self.dir_dirty = true;
        Ok(())
    }

    /// fsyncs everything appended so far and moves the recovery point to the log end.
    pub fn flush(&mut self) -> Result<()> {
        for segment in self
            .sealed
            .iter()
            .rev()
            .take_while(|s| s.end > self.recovery_point)
        {
            segment.flush()?;
        }
        self.active.flush()?;
        self.snapshots.sync()?;
        if self.dir_dirty {
            checkpoint::sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        self.recovery_point = self.log_end_offset();
        self.unflushed_messages = 0;
        self.oldest_unflushed_ms = None;
        Ok(())
    }

    /// Flushes when the oldest unflushed append is `flush.ms` old. Returns whether it did.
    pub fn flush_if_due(&mut self, now_ms: i64) -> Result<bool> {
        match self.oldest_unflushed_ms {
            Some(oldest) if now_ms.saturating_sub(oldest) >= self.config.flush_ms => {
                self.flush()?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Clean close: a producer state snapshot at the log end, flush, write the active
    /// segment's final time index entry and trim its indexes, so a clean reopen trusts the
    /// files without scanning and loads the producer state without replaying.
    pub fn close(mut self) -> Result<()> {
        self.dir_dirty |= self.snapshots.write(&self.producers)?;
        self.flush()?;
        let Log { active, .. } = self;
        let sealed = active.seal()?;
        sealed.flush()
    }
}

fn slice_of(
    view: &SegmentView<'_>,
    start: Offset,
    max_bytes: usize,
    upper: Offset,
) -> Result<Option<LogSlice>> {
    Ok(view
        .read_range(start, max_bytes as u64, upper)?
        .map(|(first, len, next_offset)| LogSlice {
            file: view.log.clone(),
            position: first.position,
            len,
            first_offset: Offset(first.header.base_offset as u64),
            next_offset,
        }))
}

/// A random roll jitter in `[0, min(segment.jitter.ms, segment.ms))`, as Kafka draws it.
pub(super) fn jitter(config: &LogConfig) -> i64 {
    let bound = config.segment_jitter_ms.min(config.segment_ms);
    if bound <= 0 {
        return 0;
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as i64);
    seed % bound
}
