//! Sequential scans of a segment's `.log` file: recovery after a crash and index rebuilds.
//!
//! A scan reads batch after batch from position 0, checks each one (framing, magic v2,
//! CRC-32C, offsets inside the segment and ascending) and stops at the first that fails: that
//! position is where the valid data ends. While scanning it builds the offset and time index
//! entries exactly as appends would have (see `index`), so a rebuilt index equals the lost one
//! as far as Kafka's rules determine it.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::batch::{self, BatchHeader, HEADER_LEN};
use super::error::{IoContext, Result};
use super::index::{OffsetEntry, TimeEntry};
use crate::types::Offset;

/// The largest timestamp of a segment and the last offset of the batch that carried it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MaxTimestamp {
    pub(crate) timestamp: i64,
    pub(crate) offset: Offset,
}

impl MaxTimestamp {
    pub(crate) const NONE: MaxTimestamp = MaxTimestamp {
        timestamp: -1,
        offset: Offset(0),
    };
}

/// Incremental index building with Kafka's rules, shared by appends and scans.
#[derive(Debug)]
pub(crate) struct IndexBuilder {
    pub(crate) base: Offset,
    pub(crate) interval: u64,
    pub(crate) bytes_since_entry: u64,
    pub(crate) max_timestamp: MaxTimestamp,
    pub(crate) last_time_entry: i64,
}

/// What one batch adds to the indexes.
#[derive(Debug, Default)]
pub(crate) struct IndexUpdate {
    pub(crate) offset_entry: Option<OffsetEntry>,
    pub(crate) time_entry: Option<TimeEntry>,
}

impl IndexBuilder {
    pub(crate) fn new(base: Offset, interval: u64) -> IndexBuilder {
        IndexBuilder {
            base,
            interval,
            bytes_since_entry: 0,
            max_timestamp: MaxTimestamp::NONE,
            last_time_entry: -1,
        }
    }

    /// Accounts for the batch `header` stored at `position`.
    pub(crate) fn on_batch(&mut self, position: u64, header: &BatchHeader) -> IndexUpdate {
        let last = header.last_offset() as u64;
        if header.max_timestamp > self.max_timestamp.timestamp {
            self.max_timestamp = MaxTimestamp {
                timestamp: header.max_timestamp,
                offset: Offset(last),
            };
        }
        let mut update = IndexUpdate::default();
        if self.bytes_since_entry > self.interval {
            update.offset_entry = Some(OffsetEntry {
                relative_offset: (last - self.base.0) as u32,
                position: position as u32,
            });
            update.time_entry = self.time_entry();
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += header.total_size() as u64;
        update
    }

    /// The time index entry for the max timestamp so far, if it is larger than the last one
    /// (`TimeIndex.maybeAppend`). Marks it written.
    pub(crate) fn time_entry(&mut self) -> Option<TimeEntry> {
        let max = self.max_timestamp;
        (max.timestamp > self.last_time_entry).then(|| {
            self.last_time_entry = max.timestamp;
            TimeEntry {
                timestamp: max.timestamp,
                relative_offset: (max.offset.0 - self.base.0) as u32,
            }
        })
    }
}

/// The result of scanning one segment.
#[derive(Debug)]
pub(crate) struct ScanResult {
    /// Bytes from the start that hold whole, valid batches.
    pub(crate) valid_bytes: u64,
    /// Offset after the last valid batch (the base offset when there is none).
    pub(crate) next_offset: Offset,
    pub(crate) offset_index: Vec<u8>,
    pub(crate) time_index: Vec<u8>,
    pub(crate) builder: IndexBuilder,
    /// The first valid batch's max timestamp (rolling by `segment.ms` is measured from it).
    pub(crate) first_batch_timestamp: Option<i64>,
    /// `(partition leader epoch, base offset)` of each batch that starts a newer epoch.
    pub(crate) epoch_starts: Vec<(i32, Offset)>,
    /// Whether the scan stopped before the end of the file.
    pub(crate) stopped_early: bool,
}

/// Scans the segment `path` whose base offset is `base`, checking every batch, and stopping
/// at `end_offset` (exclusive) if given. `max_index_entries` bounds the offset index as the
/// preallocated file would.
pub(crate) fn scan_segment(
    path: &Path,
    base: Offset,
    end_offset: Option<Offset>,
    index_interval: u64,
    max_index_entries: usize,
) -> Result<ScanResult> {
    let file = File::open(path).at(path)?;
    let size = file.metadata().at(path)?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut builder = IndexBuilder::new(base, index_interval);
    let mut offset_index = Vec::new();
    let mut time_index = Vec::new();
    let mut epoch_starts: Vec<(i32, Offset)> = Vec::new();
    let mut first_batch_timestamp = None;
    let mut position = 0u64;
    let mut next_offset = base;
    let mut buf = vec![0u8; HEADER_LEN];
    let max_relative = end_offset.map_or(u64::from(u32::MAX), |end| end.0.saturating_sub(base.0));

    let stopped_early = loop {
        if position == size {
            break false;
        }
        if size - position < HEADER_LEN as u64 {
            break true;
        }
        buf.resize(HEADER_LEN, 0);
        if reader.read_exact(&mut buf).is_err() {
            break true;
        }
        let Ok(header) = BatchHeader::parse(&buf) else {
            break true;
        };
        let total = header.total_size() as u64;
        if header.magic != batch::MAGIC_V2 || total > size - position {
            break true;
        }
        buf.resize(total as usize, 0);
        if reader.read_exact(&mut buf[HEADER_LEN..]).is_err() {
            break true;
        }
        let Ok(checked) = batch::check_batch(&buf) else {
            break true;
        };
        let header = checked.header;
        let ordered = header.base_offset >= next_offset.as_i64()
            && header.last_offset() >= header.base_offset
            && ((header.last_offset() - base.as_i64()) as u64) < max_relative;
        if !ordered {
            break true;
        }
        let update = builder.on_batch(position, &header);
        if let Some(entry) = update.offset_entry
            && offset_index.len() / 8 < max_index_entries
        {
            offset_index.extend_from_slice(&entry.encode());
            if let Some(t) = update.time_entry {
                time_index.extend_from_slice(&t.encode());
            }
        }
        first_batch_timestamp.get_or_insert(header.max_timestamp);
        let epoch = header.partition_leader_epoch;
        if epoch >= 0 && epoch_starts.last().is_none_or(|&(e, _)| epoch > e) {
            epoch_starts.push((epoch, Offset(header.base_offset as u64)));
        }
        next_offset = Offset(header.last_offset() as u64 + 1);
        position += total;
    };
    Ok(ScanResult {
        valid_bytes: position,
        next_offset,
        offset_index,
        time_index,
        builder,
        first_batch_timestamp,
        epoch_starts,
        stopped_early,
    })
}
