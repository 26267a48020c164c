//! Record batch framing (magic v2), as it is on the wire and in `.log` files.
//!
//! ```text
//! offset  size  field
//!      0     8  baseOffset            rewritten by the log on append (not covered by the CRC)
//!      8     4  batchLength           bytes after this field
//!     12     4  partitionLeaderEpoch  rewritten by the log on append (not covered by the CRC)
//!     16     1  magic                 must be 2
//!     17     4  crc                   CRC-32C of bytes 21..end
//!     21     2  attributes            bits 0-2 compression, 3 timestamp type, 4 transactional,
//!                                     5 control, 6 delete horizon
//!     23     4  lastOffsetDelta
//!     27     8  baseTimestamp
//!     35     8  maxTimestamp          rewritten for LogAppendTime (then the CRC is re-stamped)
//!     43     8  producerId
//!     51     2  producerEpoch
//!     53     4  baseSequence
//!     57     4  recordsCount
//!     61     -  records (possibly compressed)
//! ```
//! All integers are big-endian. The log never rewrites the records section: offsets are
//! assigned by rewriting `baseOffset` only, so a compressed batch is stored exactly as received.

use thiserror::Error;

/// Bytes before `batchLength`'s payload: base offset (8) + batch length (4).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed v2 batch header, up to and including `recordsCount`.
pub const HEADER_LEN: usize = 61;
/// The only message format this broker stores.
pub const MAGIC_V2: i8 = 2;

const BATCH_LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORDS_COUNT_AT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;

/// Why a batch was refused. Every variant means "do not store these bytes".
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("record batch truncated: needs {needed} bytes, only {available} present")]
    Truncated { needed: usize, available: usize },
    #[error("batch length field says {declared} bytes but {actual} bytes were sent")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("batch length {length} is smaller than the v2 header")]
    LengthTooSmall { length: i32 },
    #[error("unsupported record batch magic {magic}; only magic v2 is accepted")]
    UnsupportedMagic { magic: i8 },
    #[error("record batch CRC-32C mismatch: header says {stored:#010x}, computed {computed:#010x}")]
    CorruptCrc { stored: u32, computed: u32 },
    #[error("unknown compression codec id {codec} in batch attributes")]
    UnknownCompression { codec: i16 },
    #[error("invalid record count {count} for lastOffsetDelta {last_offset_delta}")]
    InvalidRecordCount { count: i32, last_offset_delta: i32 },
    #[error("record {index} of the batch is malformed: {reason}")]
    RecordFraming { index: i32, reason: &'static str },
    #[error("clients may not write control batches")]
    ControlBatchFromClient,
    #[error("a producer's batch must have base offset 0, not {base_offset}")]
    NonZeroBaseOffset { base_offset: i64 },
    #[error("producers may not set the LogAppendTime timestamp type")]
    LogAppendTimeFromClient,
    #[error("record at offset delta {offset_delta} has no key; compacted topics need one")]
    MissingKeyOnCompactedTopic { offset_delta: i64 },
    #[error("record batch does not decode: {reason}")]
    Undecodable { reason: String },
    #[error("batch has producer id {producer_id} but invalid base sequence {base_sequence}")]
    InvalidSequence {
        producer_id: i64,
        base_sequence: i32,
    },
}

/// Compression codec from the batch attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// Whose clock the batch's timestamps are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The decoded fixed header of a v2 record batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

impl BatchHeader {
    /// Decodes the fixed header from at least [`HEADER_LEN`] bytes. Checks nothing beyond the
    /// header's own size and the batch length's lower bound.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        }
        let header = BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, BATCH_LENGTH_AT),
            partition_leader_epoch: be_i32(buf, LEADER_EPOCH_AT),
            magic: buf[MAGIC_AT] as i8,
            crc: u32::from_be_bytes(buf[CRC_AT..CRC_AT + 4].try_into().expect("4 bytes")),
            attributes: be_i16(buf, ATTRIBUTES_AT),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_AT),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_AT),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_AT),
            producer_id: be_i64(buf, PRODUCER_ID_AT),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_AT),
            base_sequence: be_i32(buf, BASE_SEQUENCE_AT),
            records_count: be_i32(buf, RECORDS_COUNT_AT),
        };
        if (header.batch_length as i64) < (HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(BatchError::LengthTooSmall {
                length: header.batch_length,
            });
        }
        Ok(header)
    }

    /// Size of the whole batch including the 12-byte log overhead.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn compression(&self) -> Result<Compression, BatchError> {
        match self.attributes & COMPRESSION_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            codec => Err(BatchError::UnknownCompression { codec }),
        }
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// A batch whose framing and CRC have been checked.
#[derive(Clone, Copy, Debug)]
pub struct CheckedBatch {
    pub header: BatchHeader,
}

/// Checks framing, magic and CRC of the batch at the start of `buf`. `buf` may hold more
/// bytes after the batch; the caller decides whether that is allowed.
pub fn check_batch(buf: &[u8]) -> Result<CheckedBatch, BatchError> {
    let header = BatchHeader::parse(buf)?;
    if header.magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic {
            magic: header.magic,
        });
    }
    let total = header.total_size();
    if buf.len() < total {
        return Err(BatchError::Truncated {
            needed: total,
            available: buf.len(),
        });
    }
    // One pass over the covered bytes. (crc32c's `crc32c_combine` would let a re-stamp skip
    // the body, but its matrix method costs ~15x a pass over a 16 KiB batch.)
    let computed = crc32c::crc32c(&buf[ATTRIBUTES_AT..total]);
    if computed != header.crc {
        return Err(BatchError::CorruptCrc {
            stored: header.crc,
            computed,
        });
    }
    Ok(CheckedBatch { header })
}

/// Full validation of a batch a producer sent: exactly one batch filling `buf`, correct
/// framing and CRC, a consistent record count, no control batch, and (uncompressed batches)
/// records whose lengths and offset deltas add up.
pub fn validate_client_batch(buf: &[u8]) -> Result<CheckedBatch, BatchError> {
    validate_leader_batch(buf, false)
}

/// [`validate_client_batch`] for the broker's own coordinators, whose transactional batches
/// carry a producer id without sequence numbers (Kafka's `AppendOrigin.COORDINATOR`).
pub fn validate_coordinator_batch(buf: &[u8]) -> Result<CheckedBatch, BatchError> {
    validate_leader_batch(buf, true)
}

fn validate_leader_batch(buf: &[u8], coordinator: bool) -> Result<CheckedBatch, BatchError> {
    let checked = check_batch(buf)?;
    let header = checked.header;
    if header.total_size() != buf.len() {
        return Err(BatchError::LengthMismatch {
            declared: header.total_size(),
            actual: buf.len(),
        });
    }
    let compression = header.compression()?;
    if header.records_count <= 0
        || header.last_offset_delta < 0
        || header.last_offset_delta as i64 + 1 != header.records_count as i64
    {
        return Err(BatchError::InvalidRecordCount {
            count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    if header.base_offset != 0 {
        return Err(BatchError::NonZeroBaseOffset {
            base_offset: header.base_offset,
        });
    }
    if header.is_control() {
        return Err(BatchError::ControlBatchFromClient);
    }
    if header.timestamp_type() == TimestampType::LogAppendTime {
        return Err(BatchError::LogAppendTimeFromClient);
    }
    if header.has_producer_id() && header.base_sequence < 0 && !coordinator {
        return Err(BatchError::InvalidSequence {
            producer_id: header.producer_id,
            base_sequence: header.base_sequence,
        });
    }
    if compression == Compression::None {
        check_record_framing(&buf[HEADER_LEN..], header.records_count)?;
    }
    Ok(checked)
}

/// Walks uncompressed records: each record's length prefix must land exactly on the next
/// record, the last one exactly at the end, and offset deltas must count up from zero.
fn check_record_framing(records: &[u8], count: i32) -> Result<(), BatchError> {
    let mut pos = 0usize;
    for index in 0..count {
        let len = read_varint(records, &mut pos).ok_or(BatchError::RecordFraming {
            index,
            reason: "bad length varint",
        })?;
        // attributes (1) + timestamp delta (>=1) + offset delta (>=1) + key len (>=1)
        // + value len (>=1) + header count (>=1)
        if len < 6 {
            return Err(BatchError::RecordFraming {
                index,
                reason: "record length too small",
            });
        }
        let end = pos
            .checked_add(len as usize)
            .filter(|&end| end <= records.len())
            .ok_or(BatchError::RecordFraming {
                index,
                reason: "record runs past the batch",
            })?;
        let mut p = pos + 1; // attributes
        read_varlong(&records[..end], &mut p).ok_or(BatchError::RecordFraming {
            index,
            reason: "bad timestamp delta",
        })?;
        let delta = read_varint(&records[..end], &mut p).ok_or(BatchError::RecordFraming {
            index,
            reason: "bad offset delta",
        })?;
        if delta != index {
            return Err(BatchError::RecordFraming {
                index,
                reason: "offset deltas are not sequential",
            });
        }
        pos = end;
    }
    if pos != records.len() {
        return Err(BatchError::RecordFraming {
            index: count,
            reason: "bytes left after the last record",
        });
    }
    Ok(())
}

/// Kafka's zig-zag varint (`ByteUtils.readVarint`).
fn read_varint(buf: &[u8], pos: &mut usize) -> Option<i32> {
    let raw = read_unsigned_varint(buf, pos, 5)?;
    let raw = u32::try_from(raw).ok()?;
    Some(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Kafka's zig-zag varlong (`ByteUtils.readVarlong`).
fn read_varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let raw = read_unsigned_varint(buf, pos, 10)?;
    Some(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

fn read_unsigned_varint(buf: &[u8], pos: &mut usize, max_bytes: usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..max_bytes {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

impl CheckedBatch {
    /// The header as the log stores it: offsets from `base_offset`, the leader's epoch, and for
    /// LogAppendTime topics the timestamp type bit and max timestamp set to `append_time` with
    /// the CRC re-stamped. The records section is untouched.
    pub fn restamped_header(
        &self,
        original: &[u8],
        base_offset: i64,
        leader_epoch: i32,
        log_append_time: Option<i64>,
    ) -> [u8; HEADER_LEN] {
        let mut head: [u8; HEADER_LEN] = original[..HEADER_LEN].try_into().expect("header");
        head[0..8].copy_from_slice(&base_offset.to_be_bytes());
        head[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&leader_epoch.to_be_bytes());
        if let Some(time) = log_append_time {
            let attributes = self.header.attributes | TIMESTAMP_TYPE_BIT;
            head[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
            head[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&time.to_be_bytes());
            let head_crc = crc32c::crc32c(&head[ATTRIBUTES_AT..HEADER_LEN]);
            let crc =
                crc32c::crc32c_append(head_crc, &original[HEADER_LEN..self.header.total_size()]);
            head[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        }
        head
    }
}

/// Checks that every record of a (possibly compressed) batch has a key, as Kafka's
/// `LogValidator` does for topics with `cleanup.policy=compact`: the cleaner keeps records
/// by key, so a keyless one could never be retained meaningfully.
pub fn check_keys(batch: &[u8]) -> Result<(), BatchError> {
    let mut bytes = bytes::Bytes::copy_from_slice(batch);
    let decoded = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).map_err(|e| {
        BatchError::Undecodable {
            reason: e.to_string(),
        }
    })?;
    let base = decoded.records.first().map_or(0, |r| r.offset);
    match decoded.records.iter().find(|r| r.key.is_none()) {
        Some(record) => Err(BatchError::MissingKeyOnCompactedTopic {
            offset_delta: record.offset - base,
        }),
        None => Ok(()),
    }
}

/// Encodes records (key, value-or-tombstone) as one uncompressed batch without a producer id,
/// base offset 0 and one timestamp: how the broker writes its own records (group metadata,
/// committed offsets) through the same leader append as a producer's batch.
pub fn encode_plain_batch(
    records: impl IntoIterator<Item = (Option<bytes::Bytes>, Option<bytes::Bytes>)>,
    timestamp: i64,
) -> Result<bytes::Bytes, BatchError> {
    encode_coordinator_batch(records, timestamp, None)
}

/// [`encode_plain_batch`], or with `transaction` (producer id, epoch) a producer's
/// transactional batch as Kafka's group coordinator writes a TxnOffsetCommit: that producer
/// id and epoch, the transactional attribute and base sequence -1 (`NO_SEQUENCE`: a
/// coordinator's writes are fenced by the epoch, not sequenced).
pub fn encode_coordinator_batch(
    records: impl IntoIterator<Item = (Option<bytes::Bytes>, Option<bytes::Bytes>)>,
    timestamp: i64,
    transaction: Option<(i64, i16)>,
) -> Result<bytes::Bytes, BatchError> {
    let (producer_id, producer_epoch) = transaction.unwrap_or((-1, -1));
    use kafka_protocol::records::{
        Compression as Codec, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType as Ts,
    };
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: transaction.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: Ts::Creation,
            offset: i as i64,
            // The encoder takes the base sequence from the first record and splits batches
            // where `offset - sequence` changes: this keeps one batch with base sequence -1.
            sequence: i as i32 - 1,
            timestamp,
            key,
            value,
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Codec::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).map_err(|e| {
        BatchError::Undecodable {
            reason: e.to_string(),
        }
    })?;
    Ok(buf.freeze())
}
