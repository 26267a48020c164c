//! Reads and lookups over one segment, active or sealed.
//!
//! Lookup by offset: the largest index entry at or below the target gives a batch start
//! (checked against the batch found there), then batch headers are scanned forward to the
//! first batch whose last offset reaches the target. The scan is short: at most
//! `index.interval.bytes` plus one batch.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use super::batch::{BatchHeader, HEADER_LEN, MAGIC_V2, TimestampType};
use super::error::{IoContext, LogError, Result};
use super::index;
use super::scan::MaxTimestamp;
use crate::types::Offset;

/// A timestamp, the offset of the record that carries it, and that batch's leader epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: Offset,
    pub leader_epoch: i32,
}

/// Borrowed read access to one segment.
#[derive(Debug)]
pub(crate) struct SegmentView<'a> {
    pub(crate) base: Offset,
    /// The offset after the segment's last batch (exclusive).
    pub(crate) end: Offset,
    pub(crate) log: &'a Arc<File>,
    pub(crate) path: &'a Path,
    pub(crate) size: u64,
    pub(crate) offset_index: &'a [u8],
    pub(crate) time_index: &'a [u8],
}

/// A batch located in a segment file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Located {
    pub(crate) position: u64,
    pub(crate) header: BatchHeader,
}

impl Located {
    fn end(&self) -> u64 {
        self.position + self.header.total_size() as u64
    }
}

impl SegmentView<'_> {
    fn corrupt(&self, position: u64) -> LogError {
        LogError::CorruptSegment {
            path: self.path.to_path_buf(),
            position,
        }
    }

    /// The batch starting at `position`, or `None` at the end of the segment.
    pub(crate) fn batch_at(&self, position: u64) -> Result<Option<Located>> {
        if position >= self.size {
            return Ok(None);
        }
        if self.size - position < HEADER_LEN as u64 {
            return Err(self.corrupt(position));
        }
        let mut buf = [0u8; HEADER_LEN];
        self.log.read_exact_at(&mut buf, position).at(self.path)?;
        let header = BatchHeader::parse(&buf).map_err(|_| self.corrupt(position))?;
        if header.magic != MAGIC_V2 || header.total_size() as u64 > self.size - position {
            return Err(self.corrupt(position));
        }
        Ok(Some(Located { position, header }))
    }

    /// A batch start the index vouches for at or before `target`, checked against the log.
    fn indexed_start(&self, target: Offset) -> Result<u64> {
        let Some(entry) =
            index::lookup_offset(self.offset_index, target.0.saturating_sub(self.base.0))
        else {
            return Ok(0);
        };
        let position = u64::from(entry.position);
        let expected = self.base.0 + u64::from(entry.relative_offset);
        match self.batch_at(position) {
            Ok(Some(b)) if b.header.last_offset() as u64 == expected => Ok(position),
            _ => Err(LogError::CorruptIndex {
                path: self.path.to_path_buf(),
                position,
            }),
        }
    }

    /// The first batch whose last offset is at least `target`.
    pub(crate) fn find(&self, target: Offset) -> Result<Option<Located>> {
        let mut position = self.indexed_start(target)?;
        while let Some(batch) = self.batch_at(position)? {
            if batch.header.last_offset() as u64 >= target.0 {
                return Ok(Some(batch));
            }
            position = batch.end();
        }
        Ok(None)
    }

    /// The largest batch boundary in `[from, limit]`, given that `from` is one.
    /// Also returns the offset after the last batch in range: the base offset of the first
    /// batch left out, or the segment's end.
    fn boundary_before(&self, from: u64, limit: u64) -> Result<(u64, Offset)> {
        if limit >= self.size {
            // A segment holds whole batches only: its end is a boundary (a tail fetch).
            return Ok((self.size, self.end));
        }
        let mut position = from;
        if let Some(entry) = index::lookup_position(self.offset_index, limit) {
            position = position.max(u64::from(entry.position));
        }
        while let Some(batch) = self.batch_at(position)? {
            if batch.end() > limit {
                return Ok((position, Offset(batch.header.base_offset as u64)));
            }
            position = batch.end();
        }
        Ok((position, self.end))
    }

    /// The byte range of whole batches starting with the one holding `start`: at most
    /// `max_bytes` but never less than that first batch, and only batches below `upper`.
    pub(crate) fn read_range(
        &self,
        start: Offset,
        max_bytes: u64,
        upper: Offset,
    ) -> Result<Option<(Located, u64, Offset)>> {
        let Some(first) = self.find(start)? else {
            return Ok(None);
        };
        if first.header.base_offset as u64 >= upper.0 {
            return Ok(None);
        }
        let upper_position = if upper >= self.end {
            self.size
        } else {
            self.find(upper)?.map_or(self.size, |b| b.position)
        };
        if first.end() > upper_position {
            return Ok(None);
        }
        let limit = upper_position.min(first.position.saturating_add(max_bytes).max(first.end()));
        let (end, next) = self.boundary_before(first.end(), limit)?;
        Ok(Some((first, end - first.position, next)))
    }

    pub(crate) fn read_batch(&self, batch: &Located) -> Result<Bytes> {
        let mut buf = vec![0u8; batch.header.total_size()];
        self.log
            .read_exact_at(&mut buf, batch.position)
            .at(self.path)?;
        Ok(Bytes::from(buf))
    }

    /// The first record with offset at least `min_offset` satisfying `accept(timestamp)`,
    /// decoding the batch (any compression) with `kafka-protocol`.
    fn first_record_where(
        &self,
        batch: &Located,
        min_offset: Offset,
        accept: impl Fn(i64) -> bool,
    ) -> Result<Option<TimestampOffset>> {
        let mut bytes = self.read_batch(batch)?;
        let set =
            RecordBatchDecoder::decode(&mut bytes).map_err(|_| self.corrupt(batch.position))?;
        let log_append_time = batch.header.timestamp_type() == TimestampType::LogAppendTime;
        Ok(set.records.iter().find_map(|record| {
            // With LogAppendTime every record carries the batch's (append) timestamp.
            let timestamp = if log_append_time {
                batch.header.max_timestamp
            } else {
                record.timestamp
            };
            (record.offset >= min_offset.as_i64() && accept(timestamp)).then_some(TimestampOffset {
                timestamp,
                offset: Offset(record.offset as u64),
                leader_epoch: batch.header.partition_leader_epoch,
            })
        }))
    }

    /// ListOffsets by timestamp within this segment: the first record at or after
    /// `min_offset` whose timestamp is at least `target` (Kafka's `findOffsetByTimestamp`).
    pub(crate) fn find_by_timestamp(
        &self,
        target: i64,
        min_offset: Offset,
    ) -> Result<Option<TimestampOffset>> {
        let from = index::lookup_time(self.time_index, target)
            .map_or(self.base, |e| self.base + u64::from(e.relative_offset))
            .max(min_offset);
        let mut position = self.indexed_start(from)?;
        while let Some(batch) = self.batch_at(position)? {
            if batch.header.max_timestamp >= target
                && let Some(found) =
                    self.first_record_where(&batch, min_offset, |ts| ts >= target)?
            {
                return Ok(Some(found));
            }
            position = batch.end();
        }
        Ok(None)
    }

    /// The first record carrying the segment's max timestamp (ListOffsets MAX_TIMESTAMP).
    pub(crate) fn find_max_timestamp(&self, max: MaxTimestamp) -> Result<Option<TimestampOffset>> {
        let mut position = self.indexed_start(max.offset)?;
        while let Some(batch) = self.batch_at(position)? {
            if batch.header.max_timestamp == max.timestamp {
                return self.first_record_where(&batch, Offset::ZERO, |ts| ts == max.timestamp);
            }
            position = batch.end();
        }
        Ok(None)
    }

    /// The offset after the last batch, scanning from the last index entry.
    pub(crate) fn next_offset(&self) -> Result<Offset> {
        let mut position = match index::lookup_position(self.offset_index, u64::MAX) {
            Some(last) => self.indexed_start(self.base + u64::from(last.relative_offset))?,
            None => 0,
        };
        let mut next = self.base;
        while let Some(batch) = self.batch_at(position)? {
            next = Offset(batch.header.last_offset() as u64 + 1);
            position = batch.end();
        }
        Ok(next)
    }
}
