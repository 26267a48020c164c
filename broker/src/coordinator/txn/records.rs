//! The `__transaction_state` record formats, byte-compatible with Kafka's
//! (`transaction-coordinator/src/main/resources/common/message/TransactionLog{Key,Value}.json`).
//!
//! Keys and values start with their schema version as a big-endian `int16`, followed by the
//! fields of that version. Version 0 values use classic encodings (`int16`-length strings,
//! `int32`-count arrays, -1 for null); version 1 is "flexible": compact lengths (an unsigned
//! varint of length + 1, 0 for null) and tagged fields at the end of every struct.
//!
//! ```text
//! key   v0  TransactionLogKey    transactionalId: string
//!           (other key versions are skipped on load, as Kafka skips them)
//! value v0  TransactionLogValue  producerId int64, producerEpoch int16,
//!                                transactionTimeoutMs int32, transactionStatus int8,
//!                                transactionPartitions [topic string, partitionIds [int32]]?,
//!                                transactionLastUpdateTimestampMs int64,
//!                                transactionStartTimestampMs int64
//! value v1  as v0, flexible, with tagged fields 0 previousProducerId int64 (default -1),
//!           1 nextProducerId int64 (default -1), 2 clientTransactionVersion int16 (default 0)
//! ```
//!
//! Kafka writes value version 0 while the cluster's `transaction.version` is 0 and version 1
//! from `transaction.version` 1 on (see [`TransactionVersion::log_value_version`]). Tagged
//! fields are written only when they differ from their default, as Kafka's generated code
//! does. An Empty transaction is written with null partitions. A null value (tombstone)
//! removes the transactional id.

use std::collections::BTreeSet;

use bytes::Bytes;
use thiserror::Error;

use crate::coordinator::codec::{CodecError, Reader, Writer};

use super::metadata::{TransactionVersion, TxnState};

/// The only key version Kafka defines.
const KEY_VERSION: i16 = 0;
const TAG_PREVIOUS_PRODUCER_ID: u64 = 0;
const TAG_NEXT_PRODUCER_ID: u64 = 1;
const TAG_CLIENT_TRANSACTION_VERSION: u64 = 2;

/// The decoded value of a `__transaction_state` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnLogValue {
    pub producer_id: i64,
    /// -1 when absent (version 0, or the default).
    pub previous_producer_id: i64,
    /// -1 when absent.
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub transaction_timeout_ms: i32,
    pub state: TxnState,
    /// Kafka writes null for Empty; decoded null is an empty set.
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_timestamp_ms: i64,
    /// -1 when no transaction has started.
    pub start_timestamp_ms: i64,
    pub client_transaction_version: TransactionVersion,
}

/// Why a transaction log record could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("transaction log value has unknown transaction status {status}")]
    UnknownStatus { status: i8 },
}

/// The key of `transactional_id`'s records.
pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut w = Writer::new(false);
    w.i16(KEY_VERSION);
    w.string(transactional_id);
    w.finish()
}

/// The transactional id of a key; `None` for key versions Kafka does not define (Kafka logs
/// and skips them while loading).
pub fn decode_key(bytes: &[u8]) -> Result<Option<String>, RecordError> {
    let mut r = Reader::new(bytes, "transaction log key", false);
    let version = r.i16()?;
    if version != KEY_VERSION {
        return Ok(None);
    }
    // Bytes after the last field are ignored, as Kafka's generated readers ignore them.
    Ok(Some(r.string()?))
}

/// `value` in the given schema version (0 or 1).
pub fn encode_value(value: &TxnLogValue, version: i16) -> Bytes {
    let flexible = version >= 1;
    let mut w = Writer::new(flexible);
    w.i16(version);
    w.i64(value.producer_id);
    w.i16(value.producer_epoch);
    w.i32(value.transaction_timeout_ms);
    w.i8(value.state.id());
    if value.state == TxnState::Empty {
        w.length(None, true);
    } else {
        let topics = group_by_topic(&value.partitions);
        w.array_len(topics.len());
        for (topic, partitions) in topics {
            w.string(topic);
            w.array_len(partitions.len());
            for p in partitions {
                w.i32(p);
            }
            w.tagged_fields();
        }
    }
    w.i64(value.last_update_timestamp_ms);
    w.i64(value.start_timestamp_ms);
    if flexible {
        let mut tagged: Vec<(u64, Vec<u8>)> = Vec::new();
        if value.previous_producer_id != -1 {
            tagged.push((
                TAG_PREVIOUS_PRODUCER_ID,
                value.previous_producer_id.to_be_bytes().to_vec(),
            ));
        }
        if value.next_producer_id != -1 {
            tagged.push((
                TAG_NEXT_PRODUCER_ID,
                value.next_producer_id.to_be_bytes().to_vec(),
            ));
        }
        if value.client_transaction_version.0 != 0 {
            tagged.push((
                TAG_CLIENT_TRANSACTION_VERSION,
                value.client_transaction_version.0.to_be_bytes().to_vec(),
            ));
        }
        w.varint(tagged.len() as u64);
        for (tag, data) in tagged {
            w.varint(tag);
            w.varint(data.len() as u64);
            w.raw(&data);
        }
    }
    w.finish()
}

/// A value of either schema version.
pub fn decode_value(bytes: &[u8]) -> Result<TxnLogValue, RecordError> {
    const WHAT: &str = "transaction log value";
    let version = Reader::new(bytes, WHAT, false).i16()?;
    if !(0..=1).contains(&version) {
        return Err(CodecError::UnsupportedVersion {
            what: WHAT,
            version,
        }
        .into());
    }
    let flexible = version >= 1;
    let mut r = Reader::new(bytes, WHAT, flexible);
    r.i16()?; // the version, read above
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let transaction_timeout_ms = r.i32()?;
    let status = r.take(1)?[0] as i8;
    let state = TxnState::from_id(status).ok_or(RecordError::UnknownStatus { status })?;
    let mut partitions = BTreeSet::new();
    if let Some(topics) = r.length(true)? {
        for _ in 0..topics {
            let topic = r.string()?;
            let count = r.array_len()?;
            for _ in 0..count {
                partitions.insert((topic.clone(), r.i32()?));
            }
            r.skip_tagged_fields()?;
        }
    }
    let last_update_timestamp_ms = r.i64()?;
    let start_timestamp_ms = r.i64()?;
    let mut value = TxnLogValue {
        producer_id,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch,
        transaction_timeout_ms,
        state,
        // Kafka ignores whatever an Empty record lists.
        partitions: if state == TxnState::Empty {
            BTreeSet::new()
        } else {
            partitions
        },
        last_update_timestamp_ms,
        start_timestamp_ms,
        client_transaction_version: TransactionVersion::TV_0,
    };
    if flexible {
        let count = r.varint()?;
        for _ in 0..count {
            let tag = r.varint()?;
            let size = r.varint()? as usize;
            let at = r.position();
            let data = r.take(size)?;
            let mut field = Reader::new(data, WHAT, false);
            let wrong_size = || CodecError::InvalidLength {
                what: WHAT,
                at,
                length: size as i64,
            };
            match tag {
                TAG_PREVIOUS_PRODUCER_ID => {
                    value.previous_producer_id = field.i64().map_err(|_| wrong_size())?
                }
                TAG_NEXT_PRODUCER_ID => {
                    value.next_producer_id = field.i64().map_err(|_| wrong_size())?
                }
                TAG_CLIENT_TRANSACTION_VERSION => {
                    value.client_transaction_version =
                        TransactionVersion(field.i16().map_err(|_| wrong_size())?)
                }
                // Unknown tags are skipped, as Kafka's generated readers keep them aside.
                _ => {}
            }
        }
    }
    Ok(value)
}

fn group_by_topic(partitions: &BTreeSet<(String, i32)>) -> Vec<(&str, Vec<i32>)> {
    let mut out: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, p) in partitions {
        match out.last_mut() {
            Some((last, ps)) if *last == topic.as_str() => ps.push(*p),
            _ => out.push((topic, vec![*p])),
        }
    }
    out
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
