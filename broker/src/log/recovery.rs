//! Opening a partition log: listing its segments and, after a crash, recovering them.
//!
//! After a clean shutdown every segment is trusted as is (indexes are still checked when
//! first used). Otherwise the segment holding the recovery point and every later one are
//! scanned batch by batch (`scan`): the first torn or CRC-failing batch marks the end of the
//! log, the segment is cut there, any later segment is deleted, and the indexes of scanned
//! segments are rebuilt. Nothing before the last complete, valid batch is lost.
//!
//! Before the segments are listed, a cleaner swap a crash interrupted is finished (see
//! `cleaner::swap`): a committed `<base>.log.swap` replaces the segments its offsets cover and
//! gets rebuilt indexes; the cleaner's uncommitted `.cleaned` files are deleted with the other
//! leftovers.
//!
//! Then the producer state is rebuilt (Kafka's `rebuildProducerState`): snapshots past the
//! log end are deleted, the newest one that reads back is loaded (producers already expired
//! are dropped), and the batch headers after its offset are replayed from the segments. After
//! a clean shutdown that is the snapshot `close` wrote at the log end, and nothing is
//! replayed.
//!
//! Transaction indexes (`txn_index`) are rebuilt for every segment recovery re-scans, and
//! from the first segment whose index is torn or that a completed cleaner swap replaced:
//! their `.txnindex` files are deleted and an entry is re-added for each ABORT marker from
//! there on, found by replaying the producer state from a snapshot at or below the first of
//! them (the replay that rebuilds the state itself still starts at the newest snapshot). A cleanly shut down directory with no snapshot at all predates producer state:
//! as Kafka does on upgrade, it is taken to have no producers (rather than scanning every
//! segment) and empty snapshots are written at the last two segments and the log end.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use tracing::{info, warn};

use super::batch::{self, BatchHeader};
use super::cache::SegmentCache;
use super::checkpoint;
use super::cleaner;
use super::config::LogConfig;
use super::epoch::LeaderEpochCache;
use super::error::{IoContext, LogError, Result};
use super::index::OFFSET_ENTRY_SIZE;
use super::partition::{Log, jitter};
use super::producer_snapshots::{SNAPSHOT_SUFFIX, SnapshotFiles};
use super::producer_state::{
    CompletedTxn, DEFAULT_PRODUCER_ID_EXPIRATION_MS, ProducerBatch, ProducerState,
};
use super::scan;
use super::segment::{self, ActiveSegment, LOG_SUFFIX, SealedSegment, SegmentPaths};
use super::txn;
use super::txn_index;
use super::writeback::WriteBehind;
use crate::types::{LeaderEpoch, Offset};

/// How to open a log: the data directory's checkpoints and shutdown state for it.
#[derive(Clone, Copy, Debug)]
pub struct OpenOptions {
    /// Offset below which the log was fsynced (from `recovery-point-offset-checkpoint`).
    pub recovery_point: Offset,
    /// From `log-start-offset-checkpoint`.
    pub log_start_offset: Offset,
    /// Whether the data directory was shut down cleanly (the marker file was present).
    pub clean_shutdown: bool,
    pub now_ms: i64,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            recovery_point: Offset::ZERO,
            log_start_offset: Offset::ZERO,
            clean_shutdown: false,
            now_ms: super::now_ms(),
        }
    }
}

/// File name suffixes of leftovers from interrupted operations; removed on open (after any
/// committed cleaner swap was completed, so a `.swap` left here is not a segment's).
const LEFTOVER_SUFFIXES: &[&str] = &[".tmp", ".deleted", ".cleaned", ".swap"];

impl Log {
    /// Opens (creating if needed) the log in `dir`, recovering it if the shutdown was not clean.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        options: OpenOptions,
        cache: Arc<SegmentCache>,
    ) -> Result<Log> {
        fs::create_dir_all(dir).at(dir)?;
        let swapped = cleaner::complete_interrupted_swaps(dir, &config)?;
        let (bases, snapshots) = list_segments(dir)?;
        let now = options.now_ms;
        let max_entries = (config.segment_index_bytes / OFFSET_ENTRY_SIZE).max(2);
        let mut epochs = LeaderEpochCache::load(dir)?;
        let mut sealed = VecDeque::new();
        let mut active = None;

        // Segments from this index on are scanned (unflushed ones after a crash).
        let first_unflushed = if options.clean_shutdown {
            bases.len()
        } else {
            bases
                .partition_point(|&b| b <= options.recovery_point)
                .saturating_sub(1)
        };
        // Transaction indexes from this offset on are rebuilt (see the module docs).
        let mut reindex_from = swapped;
        if let Some(&first) = bases.get(first_unflushed) {
            reindex_from = Some(reindex_from.map_or(first, |r| r.min(first)));
        }
        for &base in &bases[..first_unflushed] {
            let path = SegmentPaths::new(dir, base).txn_index;
            if txn_index::is_damaged(&path)? {
                warn!(index = %path.display(), "transaction index torn or corrupt; rebuilding");
                reindex_from = Some(reindex_from.map_or(base, |r| r.min(base)));
                break;
            }
        }
        let mut i = 0;
        while i < bases.len() {
            let base = bases[i];
            let next = bases.get(i + 1).copied();
            let paths = SegmentPaths::new(dir, base);
            if i < first_unflushed {
                match next {
                    Some(end) => {
                        let size = fs::metadata(&paths.log).at(&paths.log)?.len();
                        sealed.push_back(SealedSegment::new(paths, base, end, size));
                    }
                    None => active = Some(ActiveSegment::open_existing(dir, base, &config, now)?),
                }
                i += 1;
                continue;
            }
            let scanned = scan::scan_segment(
                &paths.log,
                base,
                next,
                config.index_interval_bytes,
                max_entries,
            )?;
            for &(epoch, start) in &scanned.epoch_starts {
                if epochs.latest().is_none_or(|l| epoch > l.epoch.0) {
                    epochs.assign(LeaderEpoch(epoch), start)?;
                }
            }
            if scanned.stopped_early {
                warn!(segment = %paths.log.display(), valid_bytes = scanned.valid_bytes, "truncating torn or corrupt tail");
                for &later in &bases[i + 1..] {
                    SegmentPaths::new(dir, later).delete()?;
                }
                active = Some(ActiveSegment::from_scan(dir, base, &config, now, scanned)?);
                break;
            }
            match next {
                Some(end) => {
                    let segment = SealedSegment::new(paths, base, end, scanned.valid_bytes);
                    segment.write_indexes(scanned)?;
                    sealed.push_back(segment);
                }
                None => active = Some(ActiveSegment::from_scan(dir, base, &config, now, scanned)?),
            }
            i += 1;
        }
        if first_unflushed < bases.len() {
            info!(dir = %dir.display(), segments = bases.len() - first_unflushed, "recovered unflushed segments");
        }
        let active = match active {
            Some(active) => active,
            None => ActiveSegment::create(dir, options.log_start_offset, &config, now)?,
        };
        let first_base = sealed
            .front()
            .map_or(active.base, |s: &SealedSegment| s.base);
        let mut log = Log {
            dir: dir.to_path_buf(),
            roll_jitter_ms: jitter(&config),
            config,
            cache,
            sealed,
            active,
            log_start_offset: options.log_start_offset.max(first_base),
            high_watermark: Offset::ZERO,
            recovery_point: Offset::ZERO,
            epochs,
            unflushed_messages: 0,
            oldest_unflushed_ms: None,
            dir_dirty: false,
            txn_indexed: false,
            write_behind: WriteBehind::default(),
            producers: ProducerState::new(Offset::ZERO),
            snapshots: SnapshotFiles::new(dir, snapshots),
            producer_id_expiration_ms: DEFAULT_PRODUCER_ID_EXPIRATION_MS,
        };
        log.txn_indexed = log
            .sealed
            .iter()
            .map(|s| &s.paths.txn_index)
            .chain([&log.active.paths.txn_index])
            .any(|path| path.exists());
        let leo = log.log_end_offset();
        if leo < log.log_start_offset {
            // Everything below the checkpointed log start was deleted; start empty there.
            log.truncate_fully_and_start_at(log.log_start_offset, now)?;
        }
        log.recovery_point = if options.clean_shutdown {
            leo
        } else {
            options.recovery_point.min(leo)
        };
        log.high_watermark = log.log_start_offset;
        log.epochs.truncate_from_end(log.log_end_offset())?;
        log.epochs.truncate_from_start(log.log_start_offset)?;
        if options.clean_shutdown && log.snapshots.is_empty() && reindex_from.is_none() {
            log.assume_no_producers()?;
        } else {
            log.rebuild_producer_state_reindexing(now, reindex_from)?;
        }
        Ok(log)
    }

    /// Kafka's upgrade path: empty producer state, with snapshots at the bases of the last two
    /// segments and at the log end so that neither a later recovery nor a truncation into
    /// those segments scans the whole log.
    fn assume_no_producers(&mut self) -> Result<()> {
        let leo = self.log_end_offset();
        let previous = self.sealed.back().map(|s| s.base);
        for offset in previous.into_iter().chain([self.active.base, leo]) {
            self.dir_dirty |= self.snapshots.write(&ProducerState::new(offset))?;
        }
        self.producers = ProducerState::new(leo);
        Ok(())
    }

    /// Rebuilds the producer state up to the log end: the newest readable snapshot at or below
    /// it (and at or above the log start; an older one could need batches already deleted),
    /// or an empty state at the log start, then the batches after that replayed.
    pub(super) fn rebuild_producer_state(&mut self, now_ms: i64) -> Result<()> {
        self.rebuild_producer_state_reindexing(now_ms, None)
    }

    /// [`Log::rebuild_producer_state`], also rebuilding the transaction indexes of the
    /// segments based at or after `reindex_from` (a segment base): their files are deleted
    /// and every ABORT marker from there on is indexed again. The state itself is rebuilt
    /// from the newest snapshot as usual; when that snapshot lies past `reindex_from`, the
    /// markers before it are found by a second replay from an older snapshot (or the log
    /// start) into a scratch state.
    pub(super) fn rebuild_producer_state_reindexing(
        &mut self,
        now_ms: i64,
        reindex_from: Option<Offset>,
    ) -> Result<()> {
        let leo = self.log_end_offset();
        self.dir_dirty |= self.snapshots.delete_above(leo)?;
        let mut state = self.load_snapshot(now_ms, leo)?;
        let from = state.end_offset();
        let mut aborted = Vec::new();
        if let Some(reindex_from) = reindex_from {
            let doomed = self
                .sealed
                .iter()
                .map(|s| (s.base, &s.paths.txn_index))
                .chain([(self.active.base, &self.active.paths.txn_index)])
                .filter(|&(base, _)| base >= reindex_from);
            for (_, path) in doomed {
                txn_index::delete(path)?;
            }
            self.dir_dirty = true;
            if reindex_from < from {
                let mut scratch = self.load_snapshot(now_ms, reindex_from.min(leo))?;
                let scratch_from = scratch.end_offset();
                self.replay_producer_batches(&mut scratch, scratch_from, from, |path, done| {
                    if done.last_offset >= reindex_from {
                        aborted.push((path.to_path_buf(), done));
                    }
                })?;
            }
        }
        if from < leo {
            self.replay_producer_batches(&mut state, from, leo, |path, done| {
                if reindex_from.is_some_and(|r| done.last_offset >= r) {
                    aborted.push((path.to_path_buf(), done));
                }
            })?;
            info!(dir = %self.dir.display(), %from, to = %leo, producers = state.len(), "rebuilt producer state from the log");
        }
        state.set_end_offset(leo);
        state.on_high_watermark(self.high_watermark);
        self.producers = state;
        for (path, completed) in aborted {
            self.index_completed_txn(&completed, &path)?;
        }
        Ok(())
    }

    /// The newest readable snapshot in `[log start, max]`, or an empty state at the log
    /// start (an older snapshot could need batches already deleted), without the producers
    /// already expired (as Kafka loads them).
    fn load_snapshot(&mut self, now_ms: i64, max: Offset) -> Result<ProducerState> {
        // Markers below the log start matter to no fetch: a state from there on will do.
        let max = max.max(self.log_start_offset);
        let (loaded, deleted) = self.snapshots.load_latest(self.log_start_offset, max)?;
        self.dir_dirty |= deleted;
        let mut state = loaded.unwrap_or_else(|| ProducerState::new(self.log_start_offset));
        state.remove_expired(now_ms, self.producer_id_expiration_ms);
        Ok(state)
    }

    /// Applies the producer batches of `[from, to)` to `state`, reading only batch headers
    /// (and the record of each control batch). `completed` gets each transaction a marker
    /// completed, with the transaction index path of the segment holding the marker.
    fn replay_producer_batches(
        &self,
        state: &mut ProducerState,
        from: Offset,
        to: Offset,
        mut completed: impl FnMut(&Path, CompletedTxn),
    ) -> Result<()> {
        let sealed = self
            .sealed
            .iter()
            .map(|s| (s.base, s.end, &s.paths, s.size));
        let active = (
            self.active.base,
            self.active.next_offset,
            &self.active.paths,
            self.active.size,
        );
        for (base, end, paths, size) in sealed.chain([active]) {
            if end <= from {
                continue;
            }
            if base >= to {
                break;
            }
            for_each_header(&paths.log, size, |header, file, position| {
                if header.base_offset >= to.as_i64() {
                    return Ok(false);
                }
                if header.last_offset() < from.as_i64() {
                    return Ok(true);
                }
                let Some(batch) = ProducerBatch::from_header(header) else {
                    return Ok(true);
                };
                if !header.is_control() {
                    state.apply(&batch);
                    return Ok(true);
                }
                let mut whole = vec![0u8; header.total_size()];
                file.read_exact_at(&mut whole, position).at(&paths.log)?;
                match txn::parse_marker(&whole) {
                    Some(marker) => {
                        if let Some(done) = state.apply_marker(
                            batch.producer_id,
                            batch.epoch,
                            marker.coordinator_epoch,
                            marker.control,
                            batch.first_offset,
                            batch.max_timestamp,
                        ) {
                            completed(&paths.txn_index, done);
                        }
                    }
                    None => state.apply(&batch),
                }
                Ok(true)
            })?;
        }
        Ok(())
    }
}

/// Walks the batch headers of the first `size` bytes of the segment file `path` (already
/// recovered), reading 61 bytes per batch, until `f` returns false. `f` also gets the open
/// file and the batch's position, to read more of it.
fn for_each_header(
    path: &Path,
    size: u64,
    mut f: impl FnMut(&BatchHeader, &File, u64) -> Result<bool>,
) -> Result<()> {
    let file = File::open(path).at(path)?;
    let mut buf = [0u8; batch::HEADER_LEN];
    let mut position = 0u64;
    while position < size {
        let corrupt = || LogError::CorruptSegment {
            path: path.to_path_buf(),
            position,
        };
        file.read_exact_at(&mut buf, position)
            .map_err(|_| corrupt())?;
        let header = BatchHeader::parse(&buf).map_err(|_| corrupt())?;
        if !f(&header, &file, position)? {
            break;
        }
        position += header.total_size() as u64;
    }
    Ok(())
}

/// Base offsets of the segments in `dir`, ascending, and the offsets of the producer state
/// snapshots; removes leftovers and orphan indexes.
fn list_segments(dir: &Path) -> Result<(Vec<Offset>, Vec<Offset>)> {
    let mut bases = Vec::new();
    let mut indexes = Vec::new();
    let mut snapshots = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if LEFTOVER_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            fs::remove_file(entry.path()).at(&entry.path())?;
        } else if let Some(base) = segment::parse_base_offset(name, LOG_SUFFIX) {
            bases.push(base);
        } else if let Some(offset) = segment::parse_base_offset(name, SNAPSHOT_SUFFIX) {
            snapshots.push(offset);
        } else if let Some(base) = segment::parse_base_offset(name, segment::INDEX_SUFFIX)
            .or_else(|| segment::parse_base_offset(name, segment::TIME_INDEX_SUFFIX))
            .or_else(|| segment::parse_base_offset(name, segment::TXN_INDEX_SUFFIX))
        {
            indexes.push((base, entry.path()));
        }
    }
    bases.sort_unstable();
    for (base, path) in indexes {
        if bases.binary_search(&base).is_err() {
            fs::remove_file(&path).at(&path)?;
        }
    }
    if !bases.is_empty() {
        checkpoint::sync_dir(dir)?;
    }
    Ok((bases, snapshots))
}
