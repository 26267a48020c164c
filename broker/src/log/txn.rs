//! Transactions on the partition log: writing COMMIT / ABORT markers, the coordinators' own
//! transactional appends, the last stable offset (LSO) and the aborted transactions a
//! read_committed fetch is told of.
//!
//! The producer state (`producer_state`) tracks which transactions are open; this module
//! turns its completions into `.txnindex` entries (`txn_index`) and answers the questions a
//! fetch asks. Invariants:
//! - `log_start_offset <= last_stable_offset() <= high_watermark`;
//! - every ABORT marker that completed a transaction with data has exactly one entry, in the
//!   transaction index of the segment holding the marker.
//!
//! # Control batch format
//!
//! A marker is a one-record, uncompressed v2 batch with the transactional and control
//! attributes, the producer's id and epoch, base sequence -1, and Kafka's
//! `EndTransactionMarker` record (integers big-endian):
//!
//! ```text
//! key:   version i16 (0), type i16 (0 = ABORT, 1 = COMMIT)
//! value: version i16 (0), coordinatorEpoch i32
//! ```

use super::batch::{self, BatchHeader, HEADER_LEN, MAGIC_V2};
use super::error::Result;
use super::partition::{AppendInfo, AppendOutcome, Log};
use super::producer_state::{AppendOrigin, CompletedTxn, ProducerBatch};
use super::txn_index::{self, AbortedTxn};
use crate::types::{LeaderEpoch, Offset};

/// Kafka's `ControlRecordType` of a transaction marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlType {
    /// Type 0.
    Abort,
    /// Type 1.
    Commit,
}

impl ControlType {
    fn code(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        }
    }

    fn from_code(code: i16) -> Option<ControlType> {
        match code {
            0 => Some(ControlType::Abort),
            1 => Some(ControlType::Commit),
            _ => None,
        }
    }
}

/// A transaction marker to write for one producer (what WriteTxnMarkers carries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub control: ControlType,
}

/// The marker record of a stored control batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MarkerRecord {
    pub(crate) control: ControlType,
    pub(crate) coordinator_epoch: i32,
}

const TRANSACTIONAL_AND_CONTROL: i16 = (1 << 4) | (1 << 5);
const MARKER_KEY_LEN: usize = 4;
const MARKER_VALUE_LEN: usize = 6;

/// The control batch for `marker` at `base_offset` (see the module docs).
pub(crate) fn encode_marker_batch(
    marker: &TxnMarker,
    base_offset: Offset,
    leader_epoch: LeaderEpoch,
    timestamp: i64,
) -> Vec<u8> {
    let mut record = vec![
        0, // attributes
        0, // timestamp delta (varint 0)
        0, // offset delta (varint 0)
        (MARKER_KEY_LEN as u8) << 1,
    ];
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&marker.control.code().to_be_bytes());
    record.push((MARKER_VALUE_LEN as u8) << 1);
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    record.push(0); // no headers
    let mut out = Vec::with_capacity(HEADER_LEN + 1 + record.len());
    out.extend_from_slice(&base_offset.as_i64().to_be_bytes());
    let batch_length = (HEADER_LEN - batch::LOG_OVERHEAD + 1 + record.len()) as i32;
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&leader_epoch.0.to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&[0; 4]); // CRC, filled below
    out.extend_from_slice(&TRANSACTIONAL_AND_CONTROL.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&marker.producer_id.to_be_bytes());
    out.extend_from_slice(&marker.producer_epoch.to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    out.extend_from_slice(&1i32.to_be_bytes()); // records count
    out.push((record.len() as u8) << 1); // record length, zigzag varint (< 64)
    out.extend_from_slice(&record);
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Reads a zigzag varint at `*pos`.
fn varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut raw = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

/// The marker record of the control batch `batch` (the whole batch, header included); `None`
/// when the batch is not a control batch, has no record (the cleaner emptied it), or its
/// record is not an `EndTransactionMarker`.
pub(crate) fn parse_marker(batch: &[u8]) -> Option<MarkerRecord> {
    let header = BatchHeader::parse(batch).ok()?;
    if !header.is_control() || header.records_count < 1 {
        return None;
    }
    let records = batch.get(HEADER_LEN..header.total_size())?;
    let mut pos = 0;
    varint(records, &mut pos)?; // record length
    pos += 1; // attributes
    varint(records, &mut pos)?; // timestamp delta
    varint(records, &mut pos)?; // offset delta
    let key_len = usize::try_from(varint(records, &mut pos)?).ok()?;
    let key = records.get(pos..pos + key_len)?;
    pos += key_len;
    let value_len = usize::try_from(varint(records, &mut pos)?).ok()?;
    let value = records.get(pos..pos + value_len)?;
    if key.len() < 4 || value.len() < 6 {
        return None;
    }
    let control = ControlType::from_code(i16::from_be_bytes([key[2], key[3]]))?;
    let coordinator_epoch = i32::from_be_bytes(value[2..6].try_into().ok()?);
    Some(MarkerRecord {
        control,
        coordinator_epoch,
    })
}

impl Log {
    /// Writes a COMMIT or ABORT marker for `marker.producer_id` as the leader in
    /// `leader_epoch`, completing the producer's open transaction here if it has one (a
    /// marker for a producer with none is still written, as Kafka does). Refused when the
    /// marker's producer epoch is older than the producer's (INVALID_PRODUCER_EPOCH) or its
    /// coordinator epoch older than the last one seen (TRANSACTION_COORDINATOR_FENCED).
    pub fn append_marker(
        &mut self,
        marker: &TxnMarker,
        leader_epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        self.producers.check_marker(
            marker.producer_id,
            marker.producer_epoch,
            marker.coordinator_epoch,
        )?;
        let first = self.log_end_offset();
        let bytes = encode_marker_batch(marker, first, leader_epoch, now_ms);
        let header = BatchHeader::parse(&bytes)?;
        if self.active.should_roll(
            &self.config,
            bytes.len() as u64,
            header.max_timestamp,
            first,
            now_ms,
            self.roll_jitter_ms,
        ) {
            self.roll_at(first, now_ms)?;
        }
        self.epochs.assign(leader_epoch, first)?;
        self.active.append(&[&bytes], &[header])?;
        let record = MarkerRecord {
            control: marker.control,
            coordinator_epoch: marker.coordinator_epoch,
        };
        self.update_producers(&[(header, Some(record))])?;
        self.after_append(1, now_ms)?;
        Ok(AppendInfo {
            first_offset: first,
            last_offset: first,
            max_timestamp: now_ms,
            log_append_time: None,
            log_start_offset: self.log_start_offset,
            batches: 1,
            bytes: bytes.len(),
        })
    }

    /// Like [`Log::append_as_leader`], for the group and transaction coordinators' own writes
    /// (Kafka's `AppendOrigin.COORDINATOR`): a transactional batch without sequence numbers
    /// is accepted without sequence checks (epoch checks still apply, and it opens a
    /// transaction for its producer).
    pub fn append_as_coordinator(
        &mut self,
        batch: &[u8],
        leader_epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<AppendOutcome> {
        self.append_from(batch, leader_epoch, now_ms, AppendOrigin::Coordinator)
    }

    /// The last stable offset: the first offset of the earliest transaction not yet decided
    /// (or whose marker the high watermark has not passed), but at most the high watermark and
    /// at least the log start offset. read_committed consumers read below it.
    pub fn last_stable_offset(&self) -> Offset {
        let hw = self.high_watermark;
        match self.producers.first_unstable_offset() {
            Some(first) => first.max(self.log_start_offset).min(hw),
            None => hw,
        }
    }

    /// The aborted transactions a read_committed fetch from `start` whose data ends before
    /// `upper` must be told of: those whose marker is at or after `start` and whose first
    /// offset is below `upper` (Kafka's `collectAbortedTransactions`), from the transaction
    /// indexes of the segment holding `start` and the later ones.
    pub fn aborted_transactions(&self, start: Offset, upper: Offset) -> Result<Vec<AbortedTxn>> {
        let mut found = Vec::new();
        if !self.txn_indexed {
            return Ok(found);
        }
        let first_sealed = self.sealed.partition_point(|s| s.end <= start);
        let paths = self
            .sealed
            .range(first_sealed..)
            .map(|s| &s.paths.txn_index)
            .chain([&self.active.paths.txn_index]);
        for path in paths {
            let (mut entries, complete) = txn_index::collect(&txn_index::read(path)?, start, upper);
            found.append(&mut entries);
            if complete {
                break;
            }
        }
        Ok(found)
    }

    /// Records a transaction a marker completed: an aborted one gets an entry in the
    /// transaction index at `path` (the segment holding the marker).
    pub(super) fn index_completed_txn(
        &mut self,
        completed: &CompletedTxn,
        path: &std::path::Path,
    ) -> Result<()> {
        if completed.aborted {
            let entry = AbortedTxn {
                producer_id: completed.producer_id,
                first_offset: completed.first_offset,
                last_offset: completed.last_offset,
                last_stable_offset: completed.last_stable_offset,
            };
            self.txn_indexed = true;
            self.dir_dirty |= txn_index::append(path, &entry)?;
        }
        Ok(())
    }

    /// Adds batches just written to the active segment to the producer state, which then
    /// reaches the log end. Markers complete transactions; aborted ones are indexed.
    pub(super) fn update_producers(
        &mut self,
        written: &[(BatchHeader, Option<MarkerRecord>)],
    ) -> Result<()> {
        for (header, marker) in written {
            let Some(batch) = ProducerBatch::from_header(header) else {
                continue;
            };
            match marker {
                Some(marker) if batch.control => {
                    let completed = self.producers.apply_marker(
                        batch.producer_id,
                        batch.epoch,
                        marker.coordinator_epoch,
                        marker.control,
                        batch.first_offset,
                        batch.max_timestamp,
                    );
                    if let Some(completed) = completed {
                        let path = self.active.paths.txn_index.clone();
                        self.index_completed_txn(&completed, &path)?;
                    }
                }
                _ => self.producers.apply(&batch),
            }
        }
        self.producers.set_end_offset(self.log_end_offset());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_batch_is_kafkas_end_transaction_marker_and_parses_back() {
        let marker = TxnMarker {
            producer_id: 77,
            producer_epoch: 3,
            coordinator_epoch: 5,
            control: ControlType::Commit,
        };
        let bytes = encode_marker_batch(&marker, Offset(42), LeaderEpoch(2), 1_000);
        let header = batch::check_batch(&bytes).expect("framing and CRC").header;
        assert_eq!(header.total_size(), bytes.len());
        assert!(header.is_control() && header.is_transactional());
        assert_eq!(
            (
                header.base_offset,
                header.partition_leader_epoch,
                header.records_count
            ),
            (42, 2, 1)
        );
        assert_eq!((header.producer_id, header.producer_epoch), (77, 3));
        assert_eq!(header.base_sequence, -1);
        // An independent decoder reads Kafka's EndTransactionMarker record.
        let mut buf = bytes::Bytes::from(bytes.clone());
        let decoded = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
        let record = &decoded.records[0];
        assert!(record.control && record.transactional);
        assert_eq!(record.offset, 42);
        assert_eq!(record.key.as_deref(), Some(&[0u8, 0, 0, 1][..]));
        assert_eq!(record.value.as_deref(), Some(&[0u8, 0, 0, 0, 0, 5][..]));
        assert_eq!(
            parse_marker(&bytes),
            Some(MarkerRecord {
                control: ControlType::Commit,
                coordinator_epoch: 5,
            })
        );
        let abort = encode_marker_batch(
            &TxnMarker {
                control: ControlType::Abort,
                ..marker
            },
            Offset(0),
            LeaderEpoch(0),
            0,
        );
        assert_eq!(
            parse_marker(&abort).map(|m| m.control),
            Some(ControlType::Abort)
        );
    }
}
