//! Segments: the one active segment a log appends to, and the sealed ones before it.
//!
//! A segment is three files named by its base offset, zero-padded to 20 digits:
//! `<base>.log` (batches as on the wire), `<base>.index` and `<base>.timeindex` (see `index`),
//! and a fourth when an aborted transaction completed in it: `<base>.txnindex` (`txn_index`),
//! deleted and renamed with the others.
//! The active segment keeps its `.log` open for appends and its indexes preallocated and
//! mapped read-write. Sealing appends the final time index entry and trims both indexes.
//! A sealed segment is only metadata until read; its files are opened through the
//! broker-wide [`SegmentCache`], and an index that fails its structural check is rebuilt
//! from the `.log` right then.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use tracing::warn;

use super::batch::BatchHeader;
use super::cache::{SealedHandles, SegmentCache, SegmentKey};
use super::checkpoint;
use super::config::LogConfig;
use super::error::{IoContext, LogError, Result};
use super::index::{self, IndexWriter, OFFSET_ENTRY_SIZE, TIME_ENTRY_SIZE};
use super::mmap;
use super::scan::{self, IndexBuilder, MaxTimestamp, ScanResult};
use super::view::SegmentView;
use crate::types::Offset;

pub(crate) const LOG_SUFFIX: &str = ".log";
pub(crate) const INDEX_SUFFIX: &str = ".index";
pub(crate) const TIME_INDEX_SUFFIX: &str = ".timeindex";
pub(crate) const TXN_INDEX_SUFFIX: &str = ".txnindex";

/// The file paths of the segment based at `base` in `dir`.
#[derive(Clone, Debug)]
pub(crate) struct SegmentPaths {
    pub(crate) log: PathBuf,
    pub(crate) index: PathBuf,
    pub(crate) time_index: PathBuf,
    /// May not exist: created with the segment's first aborted transaction.
    pub(crate) txn_index: PathBuf,
}

impl SegmentPaths {
    pub(crate) fn new(dir: &Path, base: Offset) -> SegmentPaths {
        let stem = format!("{:020}", base.0);
        SegmentPaths {
            log: dir.join(format!("{stem}{LOG_SUFFIX}")),
            index: dir.join(format!("{stem}{INDEX_SUFFIX}")),
            time_index: dir.join(format!("{stem}{TIME_INDEX_SUFFIX}")),
            txn_index: dir.join(format!("{stem}{TXN_INDEX_SUFFIX}")),
        }
    }

    /// The same three paths with `suffix` appended (`<base>.log.cleaned`, …), as the cleaner
    /// names its output while it is not yet part of the log.
    pub(crate) fn suffixed(&self, suffix: &str) -> SegmentPaths {
        let with = |path: &Path| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        SegmentPaths {
            log: with(&self.log),
            index: with(&self.index),
            time_index: with(&self.time_index),
            txn_index: with(&self.txn_index),
        }
    }

    /// Renames the files to `to`'s names: the indexes first (the transaction index only if
    /// it exists) and the `.log` last, so the `.log` appearing under its new name is the step
    /// that commits the rename (recovery treats index files without their `.log` as leftovers).
    pub(crate) fn rename_to(&self, to: &SegmentPaths) -> Result<()> {
        if self.txn_index.exists() {
            fs::rename(&self.txn_index, &to.txn_index).at(&self.txn_index)?;
        }
        for (from, to) in [
            (&self.index, &to.index),
            (&self.time_index, &to.time_index),
            (&self.log, &to.log),
        ] {
            fs::rename(from, to).at(from)?;
        }
        Ok(())
    }

    pub(crate) fn delete(&self) -> Result<()> {
        for path in [&self.log, &self.index, &self.time_index, &self.txn_index] {
            match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e).at(path),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Parses a segment file name such as `00000000000000001234.log` into its base offset.
pub(crate) fn parse_base_offset(file_name: &str, suffix: &str) -> Option<Offset> {
    let stem = file_name.strip_suffix(suffix)?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok().map(Offset))
        .flatten()
}

pub(crate) fn max_index_entries(config: &LogConfig) -> usize {
    (config.segment_index_bytes / OFFSET_ENTRY_SIZE).max(2)
}

/// The segment being appended to.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub(crate) base: Offset,
    pub(crate) paths: SegmentPaths,
    log: Arc<File>,
    pub(crate) size: u64,
    /// The offset after the last batch.
    pub(crate) next_offset: Offset,
    offset_index: IndexWriter,
    time_index: IndexWriter,
    builder: IndexBuilder,
    first_batch_timestamp: Option<i64>,
    created_ms: i64,
}

impl ActiveSegment {
    /// A new, empty segment; any files left at these paths are discarded.
    pub(crate) fn create(
        dir: &Path,
        base: Offset,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<ActiveSegment> {
        let paths = SegmentPaths::new(dir, base);
        let log = open_log_for_append(&paths.log, true)?;
        // The indexes are recreated by `assemble`; the transaction index only on demand.
        super::txn_index::delete(&paths.txn_index)?;
        Self::assemble(paths, base, log, config, now_ms, None)
    }

    /// Reopens a segment after a scan, keeping only its valid bytes (crash recovery).
    pub(crate) fn from_scan(
        dir: &Path,
        base: Offset,
        config: &LogConfig,
        now_ms: i64,
        scanned: ScanResult,
    ) -> Result<ActiveSegment> {
        let paths = SegmentPaths::new(dir, base);
        let log = open_log_for_append(&paths.log, false)?;
        cut_log(&log, &paths.log, scanned.valid_bytes)?;
        Self::assemble(paths, base, log, config, now_ms, Some(scanned))
    }

    /// Reopens a segment whose files are trusted (clean shutdown, or below the recovery
    /// point); indexes that fail their structural check are rebuilt from the log.
    pub(crate) fn open_existing(
        dir: &Path,
        base: Offset,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<ActiveSegment> {
        let paths = SegmentPaths::new(dir, base);
        let log = open_log_for_append(&paths.log, false)?;
        let size = log.metadata().at(&paths.log)?.len();
        let offsets = read_index_file(&paths.index)?;
        let times = read_index_file(&paths.time_index)?;
        let sound = match (&offsets, &times) {
            (Some(o), Some(t)) => {
                index::check_offset_index(o, size, u64::from(u32::MAX)).is_ok()
                    && index::check_time_index(t, u64::from(u32::MAX)).is_ok()
            }
            _ => false,
        };
        if !sound {
            warn!(segment = %paths.log.display(), "index missing or corrupt; rebuilding from the log");
            return Self::rebuilt(paths, base, log, config, now_ms);
        }
        let (offsets, times) = (offsets.unwrap_or_default(), times.unwrap_or_default());
        let max_entries = max_index_entries(config);
        let offset_index = IndexWriter::open(
            &paths.index,
            OFFSET_ENTRY_SIZE,
            offsets.len() / OFFSET_ENTRY_SIZE,
            max_entries * OFFSET_ENTRY_SIZE,
            false,
        )
        .at(&paths.index)?;
        let time_index = IndexWriter::open(
            &paths.time_index,
            TIME_ENTRY_SIZE,
            times.len() / TIME_ENTRY_SIZE,
            config.segment_index_bytes,
            false,
        )
        .at(&paths.time_index)?;
        let mut builder = IndexBuilder::new(base, config.index_interval_bytes);
        if let Some(last) = index::last_time_entry(&times) {
            builder.last_time_entry = last.timestamp;
            builder.max_timestamp = MaxTimestamp {
                timestamp: last.timestamp,
                offset: base + u64::from(last.relative_offset),
            };
        }
        let log = Arc::new(log);
        let mut segment = ActiveSegment {
            base,
            paths,
            log,
            size,
            next_offset: base,
            offset_index,
            time_index,
            builder,
            first_batch_timestamp: None,
            created_ms: now_ms,
        };
        // The structural check cannot tell an index that points at the wrong bytes; finding
        // the end through it can. Then the index is rebuilt like a missing one.
        let probe = segment.view().next_offset().and_then(|next| {
            let first = segment.view().batch_at(0)?.map(|b| b.header.max_timestamp);
            Ok((next, first))
        });
        match probe {
            Ok((next, first)) => {
                segment.next_offset = next;
                segment.first_batch_timestamp = first;
                Ok(segment)
            }
            Err(LogError::CorruptIndex { .. } | LogError::CorruptSegment { .. }) => {
                warn!(segment = %segment.paths.log.display(), "index disagrees with the log; rebuilding");
                let ActiveSegment {
                    paths,
                    log,
                    offset_index,
                    time_index,
                    ..
                } = segment;
                drop((offset_index, time_index));
                let log = Arc::try_unwrap(log).expect("sole owner while opening");
                Self::rebuilt(paths, base, log, config, now_ms)
            }
            Err(e) => Err(e),
        }
    }

    /// Scans the log file, cuts anything invalid at its end and rebuilds the indexes.
    fn rebuilt(
        paths: SegmentPaths,
        base: Offset,
        log: File,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<ActiveSegment> {
        let scanned = scan::scan_segment(
            &paths.log,
            base,
            None,
            config.index_interval_bytes,
            max_index_entries(config),
        )?;
        cut_log(&log, &paths.log, scanned.valid_bytes)?;
        Self::assemble(paths, base, log, config, now_ms, Some(scanned))
    }

    fn assemble(
        paths: SegmentPaths,
        base: Offset,
        log: File,
        config: &LogConfig,
        now_ms: i64,
        scanned: Option<ScanResult>,
    ) -> Result<ActiveSegment> {
        let max_entries = max_index_entries(config);
        let mut offset_index = IndexWriter::open(
            &paths.index,
            OFFSET_ENTRY_SIZE,
            0,
            max_entries * OFFSET_ENTRY_SIZE,
            true,
        )
        .at(&paths.index)?;
        let mut time_index = IndexWriter::open(
            &paths.time_index,
            TIME_ENTRY_SIZE,
            0,
            config.segment_index_bytes,
            true,
        )
        .at(&paths.time_index)?;
        let mut segment_builder = IndexBuilder::new(base, config.index_interval_bytes);
        let (mut size, mut next_offset, mut first_batch_timestamp) = (0, base, None);
        if let Some(mut scanned) = scanned {
            for entry in scanned.offset_index.chunks_exact(OFFSET_ENTRY_SIZE) {
                offset_index.push(entry);
            }
            // Like Kafka's recovery, close the rebuilt time index with the max timestamp.
            if let Some(last) = scanned.builder.time_entry() {
                scanned.time_index.extend_from_slice(&last.encode());
            }
            for entry in scanned.time_index.chunks_exact(TIME_ENTRY_SIZE) {
                if time_index.len() + 1 < time_index.max_entries() {
                    time_index.push(entry);
                }
            }
            scanned.builder.bytes_since_entry = 0;
            segment_builder = scanned.builder;
            size = scanned.valid_bytes;
            next_offset = scanned.next_offset;
            first_batch_timestamp = scanned.first_batch_timestamp;
        }
        Ok(ActiveSegment {
            base,
            paths,
            log: Arc::new(log),
            size,
            next_offset,
            offset_index,
            time_index,
            builder: segment_builder,
            first_batch_timestamp,
            created_ms: now_ms,
        })
    }

    pub(crate) fn view(&self) -> SegmentView<'_> {
        SegmentView {
            base: self.base,
            end: self.next_offset,
            log: &self.log,
            path: &self.paths.log,
            size: self.size,
            offset_index: self.offset_index.entries(),
            time_index: self.time_index.entries(),
        }
    }

    pub(crate) fn max_timestamp(&self) -> MaxTimestamp {
        self.builder.max_timestamp
    }

    /// Kafka's `shouldRoll`: would appending `incoming_size` bytes whose max timestamp is
    /// `incoming_max_timestamp` and last offset `incoming_last` need a new segment first?
    pub(crate) fn should_roll(
        &self,
        config: &LogConfig,
        incoming_size: u64,
        incoming_max_timestamp: i64,
        incoming_last: Offset,
        now_ms: i64,
        jitter_ms: i64,
    ) -> bool {
        let full = self.size + incoming_size > config.segment_bytes;
        let waited = match self.first_batch_timestamp {
            Some(first) if first >= 0 => incoming_max_timestamp.saturating_sub(first),
            _ => now_ms.saturating_sub(self.created_ms),
        };
        let aged = self.size > 0 && waited > config.segment_ms - jitter_ms;
        // One time index slot stays free for the entry written when the segment seals.
        let index_full = self.offset_index.is_full()
            || self.time_index.len() + 1 >= self.time_index.max_entries();
        let overflow = incoming_last.0.saturating_sub(self.base.0) > i32::MAX as u64;
        full || aged || index_full || overflow
    }

    pub(crate) fn file(&self) -> &Arc<File> {
        &self.log
    }

    /// Appends batches that sit back to back in `parts` (written with one `writev`), whose
    /// headers are `batches` in order.
    pub(crate) fn append(&mut self, parts: &[&[u8]], batches: &[BatchHeader]) -> Result<()> {
        write_all_vectored(&self.log, parts).at(&self.paths.log)?;
        let mut position = self.size;
        for header in batches {
            let update = self.builder.on_batch(position, header);
            if let Some(entry) = update.offset_entry
                && !self.offset_index.is_full()
            {
                self.offset_index.push(&entry.encode());
            }
            if let Some(entry) = update.time_entry
                && self.time_index.len() + 1 < self.time_index.max_entries()
            {
                self.time_index.push(&entry.encode());
            }
            self.first_batch_timestamp
                .get_or_insert(header.max_timestamp);
            position += header.total_size() as u64;
            self.next_offset = Offset(header.last_offset() as u64 + 1);
        }
        self.size = position;
        Ok(())
    }

    /// Removes every batch whose last offset is at least `target` (the whole batch holding
    /// `target` goes). Returns the new next offset.
    pub(crate) fn truncate_to(&mut self, target: Offset, now_ms: i64) -> Result<Offset> {
        let Some(cut) = self.view().find(target)? else {
            return Ok(self.next_offset);
        };
        cut_log(&self.log, &self.paths.log, cut.position)?;
        self.size = cut.position;
        self.next_offset = Offset(cut.header.base_offset as u64);
        let offsets = self.offset_index.entries();
        let keep_offsets = (0..offsets.len() / OFFSET_ENTRY_SIZE)
            .take_while(|&i| u64::from(index::offset_entry(offsets, i).position) < cut.position)
            .count();
        self.offset_index.truncate_entries(keep_offsets);
        let times = self.time_index.entries();
        let keep_times = (0..times.len() / TIME_ENTRY_SIZE)
            .take_while(|&i| {
                self.base + u64::from(index::time_entry(times, i).relative_offset)
                    < self.next_offset
            })
            .count();
        self.time_index.truncate_entries(keep_times);
        // Recompute the max timestamp: the last time entry covers everything up to its batch;
        // scan the batches after the last offset entry for the rest.
        let mut builder = IndexBuilder::new(self.base, self.builder.interval);
        if let Some(last) = index::last_time_entry(self.time_index.entries()) {
            builder.last_time_entry = last.timestamp;
            builder.max_timestamp = MaxTimestamp {
                timestamp: last.timestamp,
                offset: self.base + u64::from(last.relative_offset),
            };
        }
        let mut position = index::lookup_position(self.offset_index.entries(), u64::MAX)
            .map_or(0, |e| u64::from(e.position));
        while let Some(batch) = self.view().batch_at(position)? {
            if batch.header.max_timestamp > builder.max_timestamp.timestamp {
                builder.max_timestamp = MaxTimestamp {
                    timestamp: batch.header.max_timestamp,
                    offset: Offset(batch.header.last_offset() as u64),
                };
            }
            position += batch.header.total_size() as u64;
        }
        self.builder = builder;
        if self.size == 0 {
            self.first_batch_timestamp = None;
            self.created_ms = now_ms;
        }
        Ok(self.next_offset)
    }

    /// fsyncs the log and the indexes.
    pub(crate) fn flush(&self) -> Result<()> {
        self.log.sync_data().at(&self.paths.log)?;
        self.offset_index.flush().at(&self.paths.index)?;
        self.time_index.flush().at(&self.paths.time_index)?;
        super::txn_index::sync(&self.paths.txn_index)
    }

    /// Seals the segment: final time index entry, indexes trimmed to their entries.
    pub(crate) fn seal(mut self) -> Result<SealedSegment> {
        if let Some(entry) = self.builder.time_entry()
            && self.time_index.len() < self.time_index.max_entries()
        {
            self.time_index.push(&entry.encode());
        }
        let max_timestamp = self.builder.max_timestamp;
        let ActiveSegment {
            base,
            paths,
            size,
            next_offset,
            offset_index,
            time_index,
            ..
        } = self;
        offset_index.trim().at(&paths.index)?;
        time_index.trim().at(&paths.time_index)?;
        let sealed = SealedSegment::new(paths, base, next_offset, size);
        let _ = sealed.max_timestamp.set(max_timestamp);
        Ok(sealed)
    }
}

fn open_log_for_append(path: &Path, fresh: bool) -> Result<File> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(fresh)
        .open(path)
        .at(path)?;
    // Appends go to the end; the cursor is kept there (we never use O_APPEND because
    // truncation must be able to move the end back).
    std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0)).at(path)?;
    Ok(file)
}

/// Cuts the `.log` file at `len` and moves the write cursor there, so the next append
/// continues at the cut instead of leaving a hole.
fn cut_log(mut file: &File, path: &Path, len: u64) -> Result<()> {
    file.set_len(len).at(path)?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(len)).at(path)?;
    Ok(())
}

/// Writes the offset and time index files a scan built to `paths` (atomically each), the time
/// index closed with the final entry for the max timestamp as a sealed segment's is. Returns
/// that max timestamp.
pub(crate) fn write_index_files(
    paths: &SegmentPaths,
    mut scanned: ScanResult,
) -> Result<MaxTimestamp> {
    if let Some(last) = scanned.builder.time_entry() {
        scanned.time_index.extend_from_slice(&last.encode());
    }
    checkpoint::write_atomic(&paths.index, &scanned.offset_index)?;
    checkpoint::write_atomic(&paths.time_index, &scanned.time_index)?;
    Ok(scanned.builder.max_timestamp)
}

fn read_index_file(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).at(path),
    }
}

/// `write_all` over several buffers, one `writev` in the common case.
fn write_all_vectored(mut file: &File, parts: &[&[u8]]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "short write")),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// An immutable segment; its files are opened on demand through the [`SegmentCache`].
#[derive(Debug)]
pub(crate) struct SealedSegment {
    pub(crate) base: Offset,
    /// The offset after the segment's last batch: the next segment's base offset.
    pub(crate) end: Offset,
    pub(crate) size: u64,
    pub(crate) paths: SegmentPaths,
    pub(crate) key: SegmentKey,
    max_timestamp: OnceLock<MaxTimestamp>,
    /// Serialises opening (and possibly rebuilding) this segment's files.
    open_lock: Mutex<()>,
}

impl SealedSegment {
    pub(crate) fn new(paths: SegmentPaths, base: Offset, end: Offset, size: u64) -> SealedSegment {
        SealedSegment {
            base,
            end,
            size,
            paths,
            key: SegmentKey::next(),
            max_timestamp: OnceLock::new(),
            open_lock: Mutex::new(()),
        }
    }

    /// The segment's open files, from the cache or opened now.
    pub(crate) fn handles(
        &self,
        cache: &SegmentCache,
        config: &LogConfig,
    ) -> Result<Arc<SealedHandles>> {
        if let Some(handles) = cache.get(self.key) {
            return Ok(handles);
        }
        let _guard = self.open_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(handles) = cache.get(self.key) {
            return Ok(handles);
        }
        let handles = Arc::new(self.open(config)?);
        cache.insert(self.key, handles.clone());
        Ok(handles)
    }

    /// Runs `f` on the segment's view; if the index turns out to disagree with the log, the
    /// indexes are rebuilt and `f` runs once more. Rebuilt files replace the old ones by
    /// rename, so readers still holding the old mappings are unaffected.
    pub(crate) fn with_view<T>(
        &self,
        cache: &SegmentCache,
        config: &LogConfig,
        f: impl Fn(&SegmentView<'_>) -> Result<T>,
    ) -> Result<T> {
        let handles = self.handles(cache, config)?;
        match f(&self.view(&handles)) {
            Err(LogError::CorruptIndex { .. }) => {
                warn!(segment = %self.paths.log.display(), "index disagrees with the log; rebuilding");
                drop(handles);
                {
                    let _guard = self.open_lock.lock().unwrap_or_else(|p| p.into_inner());
                    cache.remove(self.key);
                    self.rebuild_indexes(config)?;
                }
                let handles = self.handles(cache, config)?;
                f(&self.view(&handles))
            }
            other => other,
        }
    }

    fn open(&self, config: &LogConfig) -> Result<SealedHandles> {
        let log = File::open(&self.paths.log).at(&self.paths.log)?;
        let span = self.end - self.base;
        let mapped = |path: &Path| -> Result<Option<memmap2::Mmap>> {
            match File::open(path) {
                Ok(file) => Ok(Some(mmap::map(&file).at(path)?)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).at(path),
            }
        };
        if let (Some(offsets), Some(times)) =
            (mapped(&self.paths.index)?, mapped(&self.paths.time_index)?)
        {
            let defect = index::check_offset_index(&offsets, self.size, span)
                .and_then(|()| index::check_time_index(&times, span));
            match defect {
                Ok(()) => {
                    return Ok(SealedHandles {
                        log: Arc::new(log),
                        offset_index: offsets,
                        time_index: times,
                    });
                }
                Err(defect) => {
                    warn!(segment = %self.paths.log.display(), %defect, "rebuilding index")
                }
            }
        } else {
            warn!(segment = %self.paths.log.display(), "index missing; rebuilding");
        }
        self.rebuild_indexes(config)?;
        let offsets = mapped(&self.paths.index)?.expect("just written");
        let times = mapped(&self.paths.time_index)?.expect("just written");
        Ok(SealedHandles {
            log: Arc::new(log),
            offset_index: offsets,
            time_index: times,
        })
    }

    /// Rewrites both index files from the `.log` (atomically; no mapping of them exists).
    pub(crate) fn rebuild_indexes(&self, config: &LogConfig) -> Result<()> {
        let scanned = scan::scan_segment(
            &self.paths.log,
            self.base,
            Some(self.end),
            config.index_interval_bytes,
            max_index_entries(config),
        )?;
        if scanned.valid_bytes < self.size {
            warn!(segment = %self.paths.log.display(), valid = scanned.valid_bytes, size = self.size, "sealed segment has unreadable bytes after a valid prefix");
        }
        self.write_indexes(scanned)
    }

    /// Writes the indexes a scan of this segment built, closed with the final time entry.
    pub(crate) fn write_indexes(&self, scanned: ScanResult) -> Result<()> {
        let max = write_index_files(&self.paths, scanned)?;
        let _ = self.max_timestamp.set(max);
        Ok(())
    }

    /// Records the segment's largest timestamp when its writer already knows it (a sealed
    /// segment built by the cleaner), sparing a read of the time index.
    pub(crate) fn set_max_timestamp(&self, max: MaxTimestamp) {
        let _ = self.max_timestamp.set(max);
    }

    pub(crate) fn view<'a>(&'a self, handles: &'a SealedHandles) -> SegmentView<'a> {
        SegmentView {
            base: self.base,
            end: self.end,
            log: &handles.log,
            path: &self.paths.log,
            size: self.size,
            offset_index: &handles.offset_index,
            time_index: &handles.time_index,
        }
    }

    /// The largest timestamp in the segment (the sealed time index's last entry).
    pub(crate) fn max_timestamp(
        &self,
        cache: &SegmentCache,
        config: &LogConfig,
    ) -> Result<MaxTimestamp> {
        if let Some(max) = self.max_timestamp.get() {
            return Ok(*max);
        }
        let handles = self.handles(cache, config)?;
        let max = index::last_time_entry(&handles.time_index).map_or(MaxTimestamp::NONE, |e| {
            MaxTimestamp {
                timestamp: e.timestamp,
                offset: self.base + u64::from(e.relative_offset),
            }
        });
        Ok(*self.max_timestamp.get_or_init(|| max))
    }

    /// The timestamp retention compares with `retention.ms`: the max timestamp, or the file's
    /// modification time when no batch has a timestamp (as Kafka does).
    pub(crate) fn retention_timestamp(
        &self,
        cache: &SegmentCache,
        config: &LogConfig,
    ) -> Result<i64> {
        let max = self.max_timestamp(cache, config)?;
        if max.timestamp >= 0 {
            return Ok(max.timestamp);
        }
        let modified = fs::metadata(&self.paths.log)
            .and_then(|m| m.modified())
            .at(&self.paths.log)?;
        Ok(modified
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64))
    }

    /// fsyncs the segment's files (after a roll).
    pub(crate) fn flush(&self) -> Result<()> {
        for path in [&self.paths.log, &self.paths.index, &self.paths.time_index] {
            File::open(path).and_then(|f| f.sync_all()).at(path)?;
        }
        super::txn_index::sync(&self.paths.txn_index)
    }
}
