//! The record batches the group coordinator writes to and reads from `__consumer_offsets`.
//!
//! - Group records go out as one uncompressed magic-v2 batch per write. The coordinator's own
//!   records (group metadata, regular commits, tombstones) are a plain batch without a producer
//!   id; a TxnOffsetCommit's records are the transactional producer's batch (see
//!   [`encode_batch`]), so the partition's producer state and transaction markers govern them.
//! - Transaction markers are control records whose key is an i16 version and an i16 type
//!   (Kafka's `ControlRecordType`: 0 ABORT, 1 COMMIT); [`marker_type`] reads it.

use bytes::Bytes;

use super::api::TxnProducer;
use super::records::OffsetsRecord;
use crate::log::batch::{self, BatchError};

/// Encodes group records as one uncompressed batch. Without `transaction` it is the broker's
/// own plain batch (no producer id); with it, the producer's transactional batch as Kafka's
/// `GroupMetadataManager.generateOffsetRecords` builds it: its producer id and epoch, the
/// transactional attribute, base sequence -1 (`NO_SEQUENCE`; the coordinator's writes are
/// not sequenced, the epoch fences).
pub(crate) fn encode_batch(
    records: &[OffsetsRecord],
    transaction: Option<TxnProducer>,
    now: i64,
) -> Result<Bytes, BatchError> {
    batch::encode_coordinator_batch(
        records
            .iter()
            .map(|r| (Some(r.key.clone()), r.value.clone())),
        now,
        transaction.map(|t| (t.producer_id, t.producer_epoch)),
    )
}

/// The transaction marker a control record's key names (Kafka's `ControlRecordType`: an i16
/// version, then an i16 type: 0 ABORT, 1 COMMIT). `None` for other control records.
pub(crate) fn marker_type(key: Option<&[u8]>) -> Option<bool> {
    match key? {
        [_, _, 0, 0, ..] => Some(false),
        [_, _, 0, 1, ..] => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::ResponseError;
    use kafka_protocol::records::RecordBatchDecoder;

    use super::*;
    use crate::coordinator::group::{GroupConfig, GroupId, Loader, TopicPartitions};

    #[test]
    fn persisted_batches_pass_the_logs_client_batch_checks() {
        let records = vec![
            OffsetsRecord {
                key: Bytes::from_static(b"key-1"),
                value: Some(Bytes::from_static(b"value")),
            },
            OffsetsRecord {
                key: Bytes::from_static(b"key-2"),
                value: None,
            },
        ];
        let batch = encode_batch(&records, None, 1_700_000_000_000).unwrap();
        crate::log::batch::validate_client_batch(&batch).unwrap();
        let decoded = RecordBatchDecoder::decode_all(&mut batch.clone()).unwrap();
        assert_eq!(decoded.len(), 1, "one batch");
        let first = &decoded[0].records[0];
        assert_eq!((first.producer_id, first.sequence), (-1, -1));
        assert_eq!(
            decoded[0].records[1].value, None,
            "the tombstone stays null"
        );
    }

    #[test]
    fn transactional_batches_carry_the_producer_the_transactional_flag_and_no_sequence() {
        let records = vec![
            OffsetsRecord {
                key: Bytes::from_static(b"key-1"),
                value: Some(Bytes::from_static(b"value-1")),
            },
            OffsetsRecord {
                key: Bytes::from_static(b"key-2"),
                value: Some(Bytes::from_static(b"value-2")),
            },
        ];
        let producer = TxnProducer {
            producer_id: 4242,
            producer_epoch: 9,
        };
        let batch = encode_batch(&records, Some(producer), 1_700_000_000_000).unwrap();
        crate::log::batch::validate_coordinator_batch(&batch)
            .expect("the log accepts it as a coordinator's batch");
        assert!(
            crate::log::batch::validate_client_batch(&batch).is_err(),
            "a client's transactional batch without sequences is refused"
        );
        let decoded = RecordBatchDecoder::decode_all(&mut batch.clone()).unwrap();
        assert_eq!(decoded.len(), 1, "one batch");
        assert_eq!(decoded[0].records.len(), 2);
        for record in &decoded[0].records {
            assert!(record.transactional, "transactional attribute set");
            assert!(!record.control, "a data batch, not a marker");
            assert_eq!((record.producer_id, record.producer_epoch), (4242, 9));
        }
        assert_eq!(
            decoded[0].records[0].sequence, -1,
            "base sequence NO_SEQUENCE"
        );
        assert_eq!(
            decoded[0].records[1].key.as_deref(),
            Some(&b"key-2"[..]),
            "records in order"
        );
        // The transactional bit (attributes bit 4) is set in the stored header, as the log
        // side reads it: attributes are the i16 at byte 21 of a v2 batch.
        let attributes = i16::from_be_bytes([batch[21], batch[22]]);
        assert_eq!(attributes & 0x10, 0x10);
        assert_eq!(attributes & 0x20, 0, "control bit clear");
        let base_sequence = i32::from_be_bytes(batch[53..57].try_into().unwrap());
        assert_eq!(base_sequence, -1);
        let producer_id = i64::from_be_bytes(batch[43..51].try_into().unwrap());
        assert_eq!(producer_id, 4242);
    }

    #[test]
    fn control_record_keys_name_commit_and_abort_markers() {
        assert_eq!(marker_type(Some(&[0, 0, 0, 1])), Some(true));
        assert_eq!(marker_type(Some(&[0, 0, 0, 0])), Some(false));
        assert_eq!(
            marker_type(Some(&[0, 0, 0, 2])),
            None,
            "not a transaction marker"
        );
        assert_eq!(marker_type(Some(&[0, 0])), None, "too short");
        assert_eq!(marker_type(None), None);
    }

    #[test]
    fn loading_a_log_replays_transactional_batches_and_their_markers() {
        use crate::coordinator::group::records::{
            OffsetCommitValue, RecordKey, encode_key, encode_offset_commit_value,
        };
        use kafka_protocol::records::{
            Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let key = |partition| {
            encode_key(&RecordKey::OffsetCommit {
                group: "g".to_owned(),
                topic: "t".to_owned(),
                partition,
            })
        };
        let value = |offset| {
            let value = OffsetCommitValue {
                offset,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: 1,
                expire_timestamp: -1,
            };
            encode_offset_commit_value(&value, 3)
        };
        let txn = |pid| {
            Some(TxnProducer {
                producer_id: pid,
                producer_epoch: 0,
            })
        };
        let offsets = |partition, offset| {
            vec![OffsetsRecord {
                key: key(partition),
                value: Some(value(offset)),
            }]
        };
        let marker = |pid: i64, commit: bool| {
            let record = Record {
                transactional: true,
                control: true,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: pid,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: 0,
                sequence: -1,
                timestamp: 1,
                key: Some(Bytes::from_static(if commit {
                    &[0, 0, 0, 1]
                } else {
                    &[0, 0, 0, 0]
                })),
                value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
                headers: Default::default(),
            };
            let mut buf = bytes::BytesMut::new();
            let options = RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            };
            RecordBatchEncoder::encode(&mut buf, [record].iter(), &options).unwrap();
            buf.freeze()
        };
        // p1 commits t-0 = 10; p2 aborts t-1 = 20; p3 leaves t-2 = 30 open.
        let mut log = Vec::new();
        log.extend_from_slice(&encode_batch(&offsets(0, 10), txn(1), 1).unwrap());
        log.extend_from_slice(&encode_batch(&offsets(1, 20), txn(2), 1).unwrap());
        log.extend_from_slice(&encode_batch(&offsets(2, 30), txn(3), 1).unwrap());
        log.extend_from_slice(&marker(1, true));
        log.extend_from_slice(&marker(2, false));
        let mut loader = Loader::new();
        for batch in RecordBatchDecoder::decode_all(&mut Bytes::from(log)).unwrap() {
            for record in &batch.records {
                loader.replay_record(record).unwrap();
            }
        }
        let c = loader.finish(GroupConfig::default(), 1);
        let topics = [TopicPartitions {
            name: "t".to_owned(),
            partitions: vec![0, 1, 2],
        }];
        let fetched: Vec<(i64, Option<ResponseError>)> =
            c.fetch_offsets(&GroupId::from("g"), Some(&topics), true)[0]
                .partitions
                .iter()
                .map(|p| (p.offset, p.error))
                .collect();
        assert_eq!(
            fetched,
            [
                (10, None),
                (-1, None),
                (-1, Some(ResponseError::UnstableOffsetCommit))
            ]
        );
    }
}
