//! The real `weir-broker` binary with an open transaction in a partition: read_committed
//! Fetch and ListOffsets stop at the last stable offset, read_uncommitted ones at the high
//! watermark, and every Fetch reports the real LSO.

mod process;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, ListOffsetsRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use process::BrokerProcess;

const TOPIC: &str = "txn-fetch";

fn batch(pid: i64, count: usize, transactional: bool) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: if pid < 0 { -1 } else { 0 },
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder takes the base sequence from the first record and starts a new batch
            // where `offset - sequence` changes.
            sequence: if pid < 0 { i as i32 - 1 } else { i as i32 },
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(format!("{pid}/{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

fn produce(broker: &BrokerProcess, records: Bytes) -> (i16, i64) {
    // Transactional records need the request's transactional id (no coordinator checks it;
    // this test writes below the coordinator, as a zombie producer could).
    let request = ProduceRequest::default()
        .with_transactional_id(Some(StrBytes::from_static_str("txn-log-fetch").into()))
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let response = broker.call(9, &request);
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// `(high watermark, last stable offset, offsets returned, aborted list present)`.
fn fetch(broker: &BrokerProcess, isolation_level: i8) -> (i64, i64, Vec<i64>, bool) {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation_level)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(-1)
                        .with_last_fetched_epoch(-1)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response = broker.call(12, &request);
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let mut offsets = Vec::new();
    if let Some(records) = &p.records {
        let mut bytes = records.clone();
        while !bytes.is_empty() {
            let decoded = RecordBatchDecoder::decode(&mut bytes).unwrap();
            offsets.extend(decoded.records.iter().map(|r| r.offset));
        }
    }
    (
        p.high_watermark,
        p.last_stable_offset,
        offsets,
        p.aborted_transactions.is_some(),
    )
}

fn latest(broker: &BrokerProcess, isolation_level: i8) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation_level)
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_current_leader_epoch(-1)
                        .with_timestamp(-1),
                ]),
        ]);
    let response = broker.call(5, &request);
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.offset
}

#[test]
fn read_committed_fetch_and_list_offsets_stop_at_the_last_stable_offset() {
    let dir = tempfile::tempdir().unwrap();
    // The transaction below is opened by raw records no coordinator knows of: the partition's
    // side of transactions is what is tested, so KIP-890's verification is off.
    let broker = BrokerProcess::start(
        &dir.path().join("data"),
        &[
            "num.partitions=1",
            "transaction.partition.verification.enable=false",
        ],
    );
    assert_eq!(produce(&broker, batch(-1, 2, false)), (0, 0));
    // A transaction opens at offset 2 and stays open.
    assert_eq!(produce(&broker, batch(77, 3, true)), (0, 2));
    assert_eq!(produce(&broker, batch(-1, 1, false)), (0, 5));

    let (hw, lso, offsets, aborted_listed) = fetch(&broker, 0);
    assert_eq!((hw, lso), (6, 2), "read_uncommitted sees the real LSO too");
    assert_eq!(offsets, vec![0, 1, 2, 3, 4, 5]);
    assert!(!aborted_listed, "read_uncommitted gets no aborted list");

    let (hw, lso, offsets, aborted_listed) = fetch(&broker, 1);
    assert_eq!((hw, lso), (6, 2));
    assert_eq!(offsets, vec![0, 1], "read_committed stops at the LSO");
    assert!(
        aborted_listed,
        "read_committed gets an (empty) aborted list"
    );

    assert_eq!(latest(&broker, 0), 6);
    assert_eq!(latest(&broker, 1), 2);
}
