//! One cleaning pass over one log, from a snapshot of its sealed segments: deciding where to
//! clean ([`Log::cleanable`]), building the offset map and writing each group's `.cleaned`
//! segment ([`CleanTask`]). Nothing here needs the log after the snapshot is taken, so it can
//! run without the log's lock; only [`Log::swap_cleaned`] changes the log.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tracing::debug;

use super::offset_map::OffsetMap;
use super::records::{self, RecordView};
use super::{Cleanable, CleanerError, CleanerOptions, CleanerStats};
use crate::log::batch::{self, BatchHeader, HEADER_LEN, MAGIC_V2};
use crate::log::cache::SegmentKey;
use crate::log::checkpoint;
use crate::log::config::LogConfig;
use crate::log::error::IoContext;
use crate::log::partition::Log;
use crate::log::scan::{self, MaxTimestamp};
use crate::log::segment::{self, SealedSegment, SegmentPaths};
use crate::log::txn_index;
use crate::types::Offset;

/// Suffix of a cleaner's output before it is swapped in.
pub(super) const CLEANED_SUFFIX: &str = ".cleaned";

/// A sealed segment as the task sees it.
#[derive(Clone, Debug)]
struct Source {
    key: SegmentKey,
    base: Offset,
    end: Offset,
    size: u64,
    log: PathBuf,
    index_bytes: u64,
    time_index_bytes: u64,
    /// The segment's time (see the module docs of `cleaner`).
    time_ms: i64,
    modified: Option<SystemTime>,
}

impl Log {
    /// Where the cleaner stands on this log at `now_ms`, given the first dirty offset of the
    /// last pass (Kafka's `cleanableOffsets` and `LogToClean`). Reads only metadata, the
    /// segments' max timestamps and, when `max.compaction.lag.ms` could apply, the first batch
    /// header of each dirty segment.
    pub fn cleanable(
        &self,
        checkpoint: Option<Offset>,
        now_ms: i64,
    ) -> Result<Cleanable, CleanerError> {
        let (start, leo) = (self.log_start_offset, self.log_end_offset());
        let (first_dirty, checkpoint_reset) = match checkpoint {
            // Retention or DeleteRecords moved the start past it, or the log was truncated
            // below it: clean from the start (Kafka resets the same way).
            Some(c) if c < start || c > leo => (start, true),
            Some(c) => (c, false),
            None => (start, false),
        };
        let dirty = |s: &&SealedSegment| s.end > first_dirty;
        // Kafka cleans only below the last stable offset: an undecided transaction's records
        // must not be compacted away (nor shadow other records) before its marker is known.
        let mut uncleanable = self.active.base.min(self.last_stable_offset());
        let min_lag = self.config.min_compaction_lag_ms.max(0);
        if min_lag > 0 {
            for s in self.sealed.iter().filter(dirty) {
                let time = s.retention_timestamp(&self.cache, &self.config)?;
                if time > now_ms.saturating_sub(min_lag) {
                    uncleanable = uncleanable.min(s.base);
                    break;
                }
            }
        }
        let uncleanable = uncleanable.max(first_dirty);
        // Rounded down to the base of the segment holding it.
        let first_uncleanable = self
            .sealed
            .iter()
            .find(|s| s.end > uncleanable)
            .map_or(self.active.base, |s| s.base);
        let clean_bytes = self
            .sealed
            .iter()
            .filter(|s| s.base < first_dirty)
            .map(|s| s.size)
            .sum::<u64>()
            + if self.active.base < first_dirty {
                self.active.size
            } else {
                0
            };
        let cleanable_bytes = self
            .sealed
            .iter()
            .filter(|s| s.end > first_dirty && s.base < first_uncleanable)
            .map(|s| s.size)
            .sum();
        let max_lag = self.config.max_compaction_lag_ms.max(0);
        let clean_until = now_ms.saturating_sub(max_lag);
        let mut compaction_delay_ms = 0;
        if clean_until > 0 {
            let mut earliest = i64::MAX;
            for s in self.sealed.iter().filter(dirty) {
                if let Some(first) = first_batch_timestamp(&s.paths.log, s.size)?
                    && first > 0
                {
                    earliest = earliest.min(first);
                }
            }
            if earliest < clean_until {
                compaction_delay_ms = clean_until - earliest;
            }
        }
        Ok(Cleanable {
            first_dirty,
            checkpoint_reset,
            first_uncleanable,
            clean_bytes,
            cleanable_bytes,
            compaction_delay_ms,
            min_dirty_ratio: self.config.min_cleanable_dirty_ratio.get(),
        })
    }

    /// Takes the snapshot a pass works from: the sealed segments below the first uncleanable
    /// offset, the config, and each idempotent producer's last batch. Cheap; holds no file open.
    pub fn start_cleaning(
        &self,
        cleanable: &Cleanable,
        now_ms: i64,
        options: &CleanerOptions,
    ) -> Result<CleanTask, CleanerError> {
        let mut sources = Vec::new();
        for s in self
            .sealed
            .iter()
            .take_while(|s| s.base < cleanable.first_uncleanable)
        {
            let size_of = |path: &Path| fs::metadata(path).map_or(0, |m| m.len());
            sources.push(Source {
                key: s.key,
                base: s.base,
                end: s.end,
                size: s.size,
                log: s.paths.log.clone(),
                index_bytes: size_of(&s.paths.index),
                time_index_bytes: size_of(&s.paths.time_index),
                time_ms: s.retention_timestamp(&self.cache, &self.config)?,
                modified: fs::metadata(&s.paths.log).and_then(|m| m.modified()).ok(),
            });
        }
        // Kafka's legacy delete horizon: the last clean segment's time less the retention.
        let delete_horizon_ms = sources
            .iter()
            .rev()
            .find(|s| s.base < cleanable.first_dirty)
            .map_or(i64::MIN, |s| {
                s.time_ms.saturating_sub(self.config.delete_retention_ms)
            });
        let producer_last_offsets = self
            .producers
            .producer_ids()
            .filter_map(|pid| {
                let last = self.producers.get(pid)?.batches().last()?.last_offset;
                Some((pid, last))
            })
            .collect();
        // Everything below the first uncleanable offset is below the LSO, so every transaction
        // there is decided: aborted if the transaction indexes say so, committed otherwise.
        let mut aborted: HashMap<i64, Vec<(Offset, Offset)>> = HashMap::new();
        for txn in self.aborted_transactions(self.log_start_offset, cleanable.first_uncleanable)? {
            aborted
                .entry(txn.producer_id)
                .or_default()
                .push((txn.first_offset, txn.last_offset));
        }
        for ranges in aborted.values_mut() {
            ranges.sort_unstable();
        }
        debug!(dir = %self.dir.display(), first_dirty = %cleanable.first_dirty, first_uncleanable = %cleanable.first_uncleanable, now_ms, "starting a cleaning pass");
        Ok(CleanTask {
            dir: self.dir.clone(),
            config: self.config.clone(),
            sources,
            first_dirty: cleanable.first_dirty,
            first_uncleanable: cleanable.first_uncleanable,
            delete_horizon_ms,
            producer_last_offsets,
            aborted,
            budget: options.dedupe_buffer_bytes,
            map: None,
            groups: VecDeque::new(),
        })
    }
}

/// The max timestamp of the first batch of a segment file, if it has one.
fn first_batch_timestamp(path: &Path, size: u64) -> Result<Option<i64>, CleanerError> {
    if size < HEADER_LEN as u64 {
        return Ok(None);
    }
    let mut head = [0u8; HEADER_LEN];
    match File::open(path).and_then(|mut f| f.read_exact(&mut head)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(CleanerError::SegmentGone {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(e).at(path).map_err(CleanerError::from),
    }
    Ok(BatchHeader::parse(&head).ok().map(|h| h.max_timestamp))
}

/// One cleaning pass over one log. See the module docs; [`Log::start_cleaning`] makes one.
#[derive(Debug)]
pub struct CleanTask {
    dir: PathBuf,
    config: LogConfig,
    /// Every sealed segment below the first uncleanable offset, oldest first.
    sources: Vec<Source>,
    first_dirty: Offset,
    first_uncleanable: Offset,
    delete_horizon_ms: i64,
    producer_last_offsets: HashMap<i64, Offset>,
    /// Aborted transactions with data below the first uncleanable offset: producer id ->
    /// (first offset, marker offset), ascending.
    aborted: HashMap<i64, Vec<(Offset, Offset)>>,
    budget: usize,
    map: Option<OffsetMap>,
    /// Groups of `sources` still to clean.
    groups: VecDeque<Range<usize>>,
}

impl CleanTask {
    pub fn first_dirty_offset(&self) -> Offset {
        self.first_dirty
    }

    pub fn first_uncleanable_offset(&self) -> Offset {
        self.first_uncleanable
    }

    /// Where the next pass starts once this one completes: the end of what the offset map
    /// covers. `None` until the map is built (by the first [`CleanTask::prepare_next`]).
    pub fn next_dirty_offset(&self) -> Option<Offset> {
        let map = self.map.as_ref()?;
        Some(
            map.latest()
                .map_or(self.first_dirty, |l| (l + 1).max(self.first_dirty)),
        )
    }

    /// Writes the next group's cleaned segment (`<base>.log.cleaned` and its indexes, fsynced)
    /// and returns it for [`Log::swap_cleaned`]; `None` when every group is done. The first
    /// call builds the offset map. Needs no access to the log.
    pub fn prepare_next(&mut self) -> Result<Option<CleanedGroup>, CleanerError> {
        if self.map.is_none() {
            self.build_offset_map()?;
        }
        let Some(range) = self.groups.pop_front() else {
            return Ok(None);
        };
        self.clean_group(range).map(Some)
    }

    /// Maps the dirty section and plans the groups (Kafka's `buildOffsetMap` and
    /// `groupSegmentsBySize`).
    fn build_offset_map(&mut self) -> Result<(), CleanerError> {
        let mut map = OffsetMap::new(self.budget);
        let first_dirty = self.first_dirty;
        'segments: for source in self.sources.iter().filter(|s| s.end > first_dirty) {
            let mut reader = BatchReader::open(source)?;
            while let Some(batch) = reader.next(|h| {
                h.last_offset() >= first_dirty.as_i64() && !h.is_control() && !self.is_aborted(h)
            })? {
                let last = Offset(batch.header.last_offset() as u64);
                let Some(bytes) = batch.bytes else {
                    if last >= first_dirty {
                        // A marker or an aborted transaction's batch: its records are left out
                        // of the map and shadow nothing.
                        map.cover_up_to(last);
                    }
                    continue;
                };
                let section = records::records_section(&bytes, compression(&batch.header))
                    .map_err(records::codec_error(&source.log, batch.position))?;
                let parsed = parse(&section, &batch.header, &source.log, batch.position)?;
                let keyed = || {
                    parsed.iter().filter_map(|r| {
                        let offset = offset_of(&batch.header, r);
                        (offset >= first_dirty).then_some((r.key?, offset))
                    })
                };
                // The first batch is mapped whatever the budget, so every pass progresses.
                if map.latest().is_some() && !map.fits(keyed().map(|(k, _)| k)) {
                    debug!(dir = %self.dir.display(), keys = map.len(), "offset map full");
                    break 'segments;
                }
                for (key, offset) in keyed() {
                    map.put(key, offset);
                }
                map.cover_up_to(last);
            }
            // Offsets between the last batch and the next segment hold nothing to map.
            map.cover_up_to(Offset(source.end.min(self.first_uncleanable).0 - 1));
        }
        let mapped_any = map.latest().is_some();
        self.map = Some(map);
        if !mapped_any {
            // No dirty batch: rewriting would keep everything.
            return Ok(());
        }
        let end = self.next_dirty_offset().unwrap_or(first_dirty);
        let count = self.sources.iter().take_while(|s| s.base < end).count();
        self.groups = group_by_size(
            &self.sources[..count],
            self.config.segment_bytes,
            self.config.segment_index_bytes as u64,
        )
        .into();
        Ok(())
    }

    /// Writes the cleaned segment of `sources[range]`.
    fn clean_group(&self, range: Range<usize>) -> Result<CleanedGroup, CleanerError> {
        let group = &self.sources[range];
        let (first, last) = (&group[0], &group[group.len() - 1]);
        let paths = SegmentPaths::new(&self.dir, first.base);
        let mut out = CleanedGroup {
            base: first.base,
            end: last.end,
            sources: group.iter().map(|s| (s.key, s.base)).collect(),
            cleaned: paths.suffixed(CLEANED_SUFFIX),
            paths,
            size: 0,
            max_timestamp: MaxTimestamp::NONE,
            stats: CleanerStats {
                segments_cleaned: group.len(),
                segments_written: 1,
                ..CleanerStats::default()
            },
            pending: true,
        };
        let file = File::create(&out.cleaned.log).at(&out.cleaned.log)?;
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        for (i, source) in group.iter().enumerate() {
            self.clean_into(source, i + 1 == group.len(), &mut writer, &mut out)?;
        }
        let file = writer
            .into_inner()
            .map_err(|e| e.into_error())
            .at(&out.cleaned.log)?;
        if let Some(modified) = last.modified {
            // As Kafka: the cleaned segment looks as old as the newest one it replaces.
            file.set_modified(modified).at(&out.cleaned.log)?;
        }
        file.sync_all().at(&out.cleaned.log)?;
        drop(file);
        // The group's aborted transactions move to the cleaned segment with their markers.
        let mut aborted = Vec::new();
        for source in group {
            let path = SegmentPaths::new(&self.dir, source.base).txn_index;
            for entry in txn_index::read(&path)? {
                aborted.extend_from_slice(&entry.encode());
            }
        }
        if !aborted.is_empty() {
            checkpoint::write_atomic(&out.cleaned.txn_index, &aborted)?;
        }
        // The indexes are rebuilt from the output, which also proves it reads back whole.
        let scanned = scan::scan_segment(
            &out.cleaned.log,
            out.base,
            Some(out.end),
            self.config.index_interval_bytes,
            segment::max_index_entries(&self.config),
        )?;
        if scanned.stopped_early || scanned.valid_bytes != out.size {
            return Err(CleanerError::BadOutput {
                path: out.cleaned.log.clone(),
                valid: scanned.valid_bytes,
                size: out.size,
            });
        }
        out.max_timestamp = segment::write_index_files(&out.cleaned, scanned)?;
        out.stats.bytes_written = out.size;
        Ok(out)
    }

    /// Appends what `source` keeps to `writer` (Kafka's `cleanInto`). `closes_group`: the
    /// source is the group's last, whose last batch is kept even if emptied (see `swap`).
    fn clean_into(
        &self,
        source: &Source,
        closes_group: bool,
        writer: &mut impl Write,
        out: &mut CleanedGroup,
    ) -> Result<(), CleanerError> {
        let map = self.map.as_ref().expect("map built first");
        let retain_deletes = source.time_ms > self.delete_horizon_ms;
        let mut reader = BatchReader::open(source)?;
        out.stats.bytes_read += source.size;
        let mut write = |bytes: &[u8], out: &mut CleanedGroup| {
            out.size += bytes.len() as u64;
            writer.write_all(bytes).at(&out.cleaned.log)
        };
        while let Some(batch) = reader.next(|_| true)? {
            let header = batch.header;
            let bytes = batch.bytes.expect("asked for every body");
            if header.is_control() {
                // Markers stay (see the module docs).
                write(&bytes, out)?;
                continue;
            }
            let section = records::records_section(&bytes, compression(&header))
                .map_err(records::codec_error(&source.log, batch.position))?;
            let parsed = parse(&section, &header, &source.log, batch.position)?;
            let aborted = self.is_aborted(&header);
            let kept: Vec<RecordView<'_>> = parsed
                .iter()
                .copied()
                .filter(|r| !aborted && keep(map, r, offset_of(&header, r), retain_deletes))
                .collect();
            out.stats.records_read += parsed.len() as u64;
            out.stats.records_removed += (parsed.len() - kept.len()) as u64;
            out.stats.tombstones_removed += parsed.iter().filter(|r| !r.has_value).count() as u64
                - kept.iter().filter(|r| !r.has_value).count() as u64;
            if !kept.is_empty() && kept.len() == parsed.len() {
                write(&bytes, out)?;
            } else if !kept.is_empty() {
                let rebuilt = records::rebuild_batch(&bytes, &header, &kept)
                    .map_err(records::codec_error(&source.log, batch.position))?;
                write(&rebuilt, out)?;
            } else if self.retain_empty(&header) || (closes_group && reader.position == source.size)
            {
                write(&records::empty_batch(&bytes, &header), out)?;
            }
        }
        Ok(())
    }

    /// Whether `header` is a batch of an aborted transaction (whose records all go).
    fn is_aborted(&self, header: &BatchHeader) -> bool {
        if !header.is_transactional() || header.is_control() {
            return false;
        }
        let Some(ranges) = self.aborted.get(&header.producer_id) else {
            return false;
        };
        let base = Offset(header.base_offset.max(0) as u64);
        // The last transaction starting at or before the batch, if the batch is before its marker.
        let i = ranges.partition_point(|&(first, _)| first <= base);
        i > 0 && base < ranges[i - 1].1
    }

    /// Kafka's `RETAIN_EMPTY`: a batch kept, empty, when all its records go.
    fn retain_empty(&self, header: &BatchHeader) -> bool {
        let last = Offset(header.last_offset() as u64);
        let producers_last = header.has_producer_id()
            && self.producer_last_offsets.get(&header.producer_id) == Some(&last);
        // The round's last batch keeps the end of the cleaned range visible in the log.
        producers_last || last + 1 == self.first_uncleanable
    }
}

/// Kafka's `shouldRetainRecord`.
fn keep(map: &OffsetMap, record: &RecordView<'_>, offset: Offset, retain_deletes: bool) -> bool {
    if map.latest().is_none_or(|latest| offset > latest) {
        return true;
    }
    let Some(key) = record.key else {
        // Compacted topics refuse keyless records; any that got in (the topic was not always
        // compacted) cannot be the latest for a key, so they go.
        return false;
    };
    let newest = map.get(key).is_none_or(|latest| offset >= latest);
    newest && (record.has_value || retain_deletes)
}

fn offset_of(header: &BatchHeader, record: &RecordView<'_>) -> Offset {
    Offset((header.base_offset + i64::from(record.offset_delta)) as u64)
}

fn compression(header: &BatchHeader) -> batch::Compression {
    // `check_batch` passed, but it does not check the codec; an unknown one is refused by the
    // producer path, so a stored batch has a known codec. Treat anything else as uncompressed
    // and let the record walk fail on it.
    header.compression().unwrap_or(batch::Compression::None)
}

fn parse<'a>(
    section: &'a [u8],
    header: &BatchHeader,
    path: &Path,
    position: u64,
) -> Result<Vec<RecordView<'a>>, CleanerError> {
    records::parse_records(section, header.records_count).map_err(|reason| {
        CleanerError::RecordFraming {
            path: path.to_path_buf(),
            position,
            reason,
        }
    })
}

/// Kafka's `groupSegmentsBySize`: consecutive segments whose `.log` sizes sum to at most
/// `max_bytes`, whose index sizes each sum to at most `max_index_bytes`, and whose offsets
/// stay within `i32::MAX` of the group's base (the index's relative offsets).
fn group_by_size(sources: &[Source], max_bytes: u64, max_index_bytes: u64) -> Vec<Range<usize>> {
    let mut groups = Vec::new();
    let mut i = 0;
    while i < sources.len() {
        let start = i;
        let (mut size, mut index, mut time_index) = (
            sources[i].size,
            sources[i].index_bytes,
            sources[i].time_index_bytes,
        );
        i += 1;
        while let Some(next) = sources.get(i) {
            let fits = size + next.size <= max_bytes
                && index + next.index_bytes <= max_index_bytes
                && time_index + next.time_index_bytes <= max_index_bytes
                && (next.size == 0 || next.end.0 - 1 - sources[start].base.0 <= i32::MAX as u64);
            if !fits {
                break;
            }
            size += next.size;
            index += next.index_bytes;
            time_index += next.time_index_bytes;
            i += 1;
        }
        groups.push(start..i);
    }
    groups
}

/// A group's cleaned segment, written and fsynced as `<base>.log.cleaned` (and indexes), not
/// yet part of the log. Dropping it without [`Log::swap_cleaned`] deletes the files.
#[derive(Debug)]
pub struct CleanedGroup {
    pub(super) base: Offset,
    /// The end of the last segment replaced: the cleaned segment's end.
    pub(super) end: Offset,
    /// The segments it replaces, oldest first.
    pub(super) sources: Vec<(SegmentKey, Offset)>,
    pub(super) paths: SegmentPaths,
    pub(super) cleaned: SegmentPaths,
    pub(super) size: u64,
    pub(super) max_timestamp: MaxTimestamp,
    pub(super) stats: CleanerStats,
    /// Whether the `.cleaned` files are still this value's to delete.
    pub(super) pending: bool,
}

impl CleanedGroup {
    /// The base offset of the cleaned segment: the first replaced segment's.
    pub fn base_offset(&self) -> Offset {
        self.base
    }

    /// The base offsets of the segments it replaces.
    pub fn source_base_offsets(&self) -> Vec<Offset> {
        self.sources.iter().map(|&(_, base)| base).collect()
    }

    /// Bytes of the cleaned `.log`.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn stats(&self) -> CleanerStats {
        self.stats
    }
}

impl Drop for CleanedGroup {
    fn drop(&mut self) {
        if self.pending {
            // Best effort: a leftover `.cleaned` file is deleted at the next open anyway.
            let _ = self.cleaned.delete();
        }
    }
}

/// A batch read from a source segment: its position, header, and the whole batch (CRC
/// checked) when it was asked for.
#[derive(Debug)]
struct ReadBatch {
    position: u64,
    header: BatchHeader,
    bytes: Option<Vec<u8>>,
}

/// Sequential reads of a segment's batches, up to the size the log knows it to have.
#[derive(Debug)]
struct BatchReader<'a> {
    source: &'a Source,
    file: BufReader<File>,
    position: u64,
}

impl<'a> BatchReader<'a> {
    fn open(source: &'a Source) -> Result<BatchReader<'a>, CleanerError> {
        let file = match File::open(&source.log) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CleanerError::SegmentGone {
                    path: source.log.clone(),
                });
            }
            Err(e) => return Err(e).at(&source.log).map_err(CleanerError::from),
        };
        Ok(BatchReader {
            source,
            file: BufReader::with_capacity(1 << 20, file),
            position: 0,
        })
    }

    fn corrupt(&self) -> CleanerError {
        CleanerError::CorruptBatch {
            path: self.source.log.clone(),
            position: self.position,
        }
    }

    /// The next batch; its body is read (and checked) only if `want_body` says so.
    fn next(
        &mut self,
        want_body: impl Fn(&BatchHeader) -> bool,
    ) -> Result<Option<ReadBatch>, CleanerError> {
        let remaining = self.source.size.saturating_sub(self.position);
        if remaining == 0 {
            return Ok(None);
        }
        let mut head = [0u8; HEADER_LEN];
        if remaining < HEADER_LEN as u64 || self.file.read_exact(&mut head).is_err() {
            return Err(self.corrupt());
        }
        let header = BatchHeader::parse(&head).map_err(|_| self.corrupt())?;
        let total = header.total_size() as u64;
        let inside = header.base_offset >= self.source.base.as_i64()
            && header.last_offset() < self.source.end.as_i64()
            && header.last_offset() >= header.base_offset;
        if header.magic != MAGIC_V2 || total > remaining || !inside {
            return Err(self.corrupt());
        }
        let position = self.position;
        let bytes = if want_body(&header) {
            let mut bytes = vec![0u8; total as usize];
            bytes[..HEADER_LEN].copy_from_slice(&head);
            self.file
                .read_exact(&mut bytes[HEADER_LEN..])
                .map_err(|_| self.corrupt())?;
            batch::check_batch(&bytes).map_err(|_| self.corrupt())?;
            Some(bytes)
        } else {
            self.file
                .seek_relative((total - HEADER_LEN as u64) as i64)
                .at(&self.source.log)?;
            None
        };
        self.position += total;
        Ok(Some(ReadBatch {
            position,
            header,
            bytes,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(base: u64, end: u64, size: u64, index: u64) -> Source {
        Source {
            key: SegmentKey::next(),
            base: Offset(base),
            end: Offset(end),
            size,
            log: PathBuf::new(),
            index_bytes: index,
            time_index_bytes: index / 8 * 12,
            time_ms: 0,
            modified: None,
        }
    }

    #[test]
    fn groups_fill_up_to_segment_bytes_and_index_bytes() {
        let s = [
            source(0, 10, 400, 8),
            source(10, 20, 500, 8),
            source(20, 30, 200, 8),
            source(30, 40, 900, 8),
            source(40, 50, 0, 0),
        ];
        assert_eq!(group_by_size(&s, 1000, 1 << 20), vec![0..2, 2..3, 3..5]);
        assert_eq!(
            group_by_size(&s, 10_000, 24),
            vec![0..2, 2..5],
            "the time index (12 bytes an entry) limits first; an empty one adds nothing"
        );
        assert_eq!(group_by_size(&s, 1, 1), vec![0..1, 1..2, 2..3, 3..4, 4..5]);
        let far = [
            source(0, 10, 1, 0),
            source(10, 1 << 31, 1, 0),
            source(1 << 31, (1 << 31) + 5, 1, 0),
        ];
        assert_eq!(
            group_by_size(&far, 100, 100),
            vec![0..2, 2..3],
            "relative offsets must fit an i32"
        );
    }
}
