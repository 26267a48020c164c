//! Transactional requests no well-behaved client sends, raw on the wire: each gets Kafka's
//! error, and afterwards transactions still work and read back correctly.

use super::*;

pub(super) fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_owned()))
}

pub(super) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// The `(min, max)` versions the broker advertises for `api`, if any.
fn advertised(broker: &BrokerProcess, api: ApiKey) -> Option<(i16, i16)> {
    let response = broker.call(3, &ApiVersionsRequest::default());
    response
        .api_keys
        .iter()
        .find(|k| k.api_key == api as i16)
        .map(|k| (k.min_version, k.max_version))
}

/// The highest advertised version of `api` up to `at_most`.
pub(super) fn version_up_to(broker: &BrokerProcess, api: ApiKey, at_most: i16) -> i16 {
    let (min, max) = advertised(broker, api)
        .unwrap_or_else(|| panic!("the broker does not advertise {api:?} in ApiVersions"));
    assert!(
        min <= at_most,
        "{api:?}: the broker advertises v{min}..v{max}, the test sends up to v{at_most}"
    );
    max.min(at_most)
}

/// InitProducerId for `id`, retried while the coordinator is loading or ending a previous
/// transaction: `(producer id, epoch)`.
pub(super) fn init_raw(broker: &BrokerProcess, id: &str) -> (i64, i16) {
    let version = version_up_to(broker, ApiKey::InitProducerId, 4);
    let mut last = None;
    eventually(WAIT, || {
        let r = broker.call(
            version,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(txn_id(id)))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        );
        let retriable = [
            COORDINATOR_LOAD_IN_PROGRESS,
            COORDINATOR_NOT_AVAILABLE,
            NOT_COORDINATOR,
            CONCURRENT_TRANSACTIONS,
        ];
        last = Some(r.error_code);
        match r.error_code {
            0 => Some((r.producer_id.0, r.producer_epoch)),
            code if retriable.contains(&code) => None,
            code => panic!("InitProducerId({id}): error {code}"),
        }
    })
    .unwrap_or_else(|| panic!("InitProducerId({id}) kept failing with {last:?}"))
}

pub(super) fn end_txn(
    broker: &BrokerProcess,
    version: i16,
    id: &str,
    producer: (i64, i16),
    commit: bool,
) -> i16 {
    broker
        .call(
            version,
            &EndTxnRequest::default()
                .with_transactional_id(txn_id(id))
                .with_producer_id(ProducerId(producer.0))
                .with_producer_epoch(producer.1)
                .with_committed(commit),
        )
        .error_code
}

/// AddPartitionsToTxn (v3 or below): the error code of each `(topic, partition)`.
pub(super) fn add_partitions(
    broker: &BrokerProcess,
    id: &str,
    producer: (i64, i16),
    partitions: &[(&str, &[i32])],
) -> BTreeMap<(String, i32), i16> {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    let version = version_up_to(broker, ApiKey::AddPartitionsToTxn, 3);
    let response = broker.call(
        version,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(txn_id(id))
            .with_v3_and_below_producer_id(ProducerId(producer.0))
            .with_v3_and_below_producer_epoch(producer.1)
            .with_v3_and_below_topics(
                partitions
                    .iter()
                    .map(|(t, ps)| {
                        AddPartitionsToTxnTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(ps.to_vec())
                    })
                    .collect(),
            ),
    );
    response
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition.iter().map(|p| {
                (
                    (t.name.0.to_string(), p.partition_index),
                    p.partition_error_code,
                )
            })
        })
        .collect()
}

/// A transactional batch of `values` from `producer`, sequence numbers from 0.
pub(super) fn transactional_batch(producer: (i64, i16), values: &[&str]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.0,
            producer_epoch: producer.1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(v.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode");
    buf.freeze()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_transactional_requests_get_kafkas_errors() {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };

    let dir = tempfile::tempdir().unwrap();
    let broker = standalone(dir.path(), STANDALONE_TXN);
    let bootstrap = broker.bootstrap();
    let topics = [("raw", 2)];
    create_topics(&bootstrap, &topics, 1, "1").await;
    let id = "raw-txn";

    let coordinator = eventually(Duration::from_secs(30), || {
        let r = broker.call(
            1,
            &FindCoordinatorRequest::default()
                .with_key_type(KEY_TYPE_TRANSACTION)
                .with_key(StrBytes::from_static_str("raw-txn")),
        );
        (r.error_code == 0).then_some(r.node_id.0)
    });
    assert!(
        coordinator.is_some(),
        "no transaction coordinator: {}",
        coordinator_diagnosis(&broker, id)
    );
    let first = init_raw(&broker, id);
    let current = init_raw(&broker, id);
    assert_eq!(
        (current.0, current.1),
        (first.0, first.1 + 1),
        "a second InitProducerId keeps the producer id and bumps the epoch"
    );

    // EndTxn for a transactional id the coordinator never saw.
    let end_version = version_up_to(&broker, ApiKey::EndTxn, 4);
    assert_eq!(
        end_txn(
            &broker,
            end_version,
            "never-initialized",
            (first.0, 0),
            true
        ),
        INVALID_PRODUCER_ID_MAPPING,
        "EndTxn v{end_version} for an unknown transactional id"
    );
    // EndTxn from the fenced (older) epoch: PRODUCER_FENCED from v2 on (KIP-588), before it
    // INVALID_PRODUCER_EPOCH.
    let fenced = if end_version >= 2 {
        PRODUCER_FENCED
    } else {
        INVALID_PRODUCER_EPOCH
    };
    assert_eq!(
        end_txn(&broker, end_version, id, first, true),
        fenced,
        "EndTxn v{end_version} with a fenced epoch"
    );
    if advertised(&broker, ApiKey::EndTxn).is_some_and(|(min, _)| min <= 1) {
        assert_eq!(
            end_txn(&broker, 1, id, first, true),
            INVALID_PRODUCER_EPOCH,
            "EndTxn v1 with a fenced epoch"
        );
    }

    // AddPartitionsToTxn naming a topic and a partition that do not exist: those are
    // UNKNOWN_TOPIC_OR_PARTITION, the rest OPERATION_NOT_ATTEMPTED, and nothing is added.
    let results = add_partitions(
        &broker,
        id,
        current,
        &[("raw", &[0, 7]), ("no-such-topic", &[0])],
    );
    assert_eq!(
        results,
        BTreeMap::from([
            (("raw".to_owned(), 0), OPERATION_NOT_ATTEMPTED),
            (("raw".to_owned(), 7), UNKNOWN_TOPIC_OR_PARTITION),
            (("no-such-topic".to_owned(), 0), UNKNOWN_TOPIC_OR_PARTITION),
        ]),
        "AddPartitionsToTxn with unknown partitions"
    );
    assert_eq!(
        add_partitions(&broker, id, current, &[("raw", &[0])]),
        BTreeMap::from([(("raw".to_owned(), 0), 0)]),
        "AddPartitionsToTxn for an existing partition"
    );

    // Transactional records in raw-0, then a COMMIT marker from the fenced epoch.
    let produce_version = version_up_to(&broker, ApiKey::Produce, 9);
    let produced = broker.call(
        produce_version,
        &ProduceRequest::default()
            .with_transactional_id(Some(txn_id(id)))
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name("raw"))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(transactional_batch(
                                current,
                                &["bad-0", "bad-1", "bad-2"],
                            ))),
                    ]),
            ]),
    );
    let p = &produced.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0), "{p:?}");
    assert_eq!(hw_and_lso(&broker, "raw", 0), (3, 0));
    let markers_version = version_up_to(&broker, ApiKey::WriteTxnMarkers, 1);
    let markers = broker.call(
        markers_version,
        &WriteTxnMarkersRequest::default().with_markers(vec![
            WritableTxnMarker::default()
                .with_producer_id(ProducerId(first.0))
                .with_producer_epoch(first.1)
                .with_transaction_result(true)
                .with_coordinator_epoch(0)
                .with_topics(vec![
                    WritableTxnMarkerTopic::default()
                        .with_name(topic_name("raw"))
                        .with_partition_indexes(vec![0]),
                ]),
        ]),
    );
    let marker_errors: Vec<(i32, i16)> = markers
        .markers
        .iter()
        .flat_map(|m| m.topics.iter())
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.error_code))
        .collect();
    assert_eq!(
        marker_errors,
        vec![(0, INVALID_PRODUCER_EPOCH)],
        "WriteTxnMarkers with a stale producer epoch"
    );
    assert_eq!(
        hw_and_lso(&broker, "raw", 0),
        (3, 0),
        "the stale marker neither appended nor ended the transaction"
    );

    // The transaction is still the coordinator's to end: abort it.
    let end = eventually(WAIT, || {
        let code = end_txn(&broker, end_version, id, current, false);
        (code != CONCURRENT_TRANSACTIONS).then_some(code)
    });
    assert_eq!(end, Some(0), "EndTxn(abort) by the current epoch");
    let settled = eventually(WAIT, || {
        let (hw, lso) = hw_and_lso(&broker, "raw", 0);
        (hw == lso).then_some(hw)
    });
    assert_eq!(
        settled,
        Some(4),
        "an ABORT marker at 3 and the LSO after it"
    );

    // Nothing is corrupted: the id re-initializes, and a client's transaction commits and
    // reads back alone.
    let again = init_raw(&broker, id);
    assert_eq!(again.0, current.0);
    assert!(again.1 > current.1, "{again:?} after {current:?}");
    let producer = txn_producer(&bootstrap, "raw-good", &[]);
    init(&producer, &broker, "raw-good");
    let good = records("good", &topics, 4);
    producer.begin_transaction().unwrap();
    send_acked(&producer, &good).await;
    producer.commit_transaction(TXN_TIMEOUT).expect("commit");
    let mut committed = Reader::new(&bootstrap, "read_committed", &topics);
    assert!(committed.poll_until(|r| r.count() >= good.len()));
    committed.poll_for(Duration::from_secs(1));
    let want: BTreeSet<String> = good.iter().map(|(_, _, v)| v.clone()).collect();
    assert_eq!(
        committed.values(),
        want,
        "read_committed reads the good transaction only"
    );
    assert_eq!(
        committed.read[&("raw".to_owned(), 0)]
            .iter()
            .map(|(o, _)| *o)
            .collect::<Vec<_>>(),
        vec![4, 5, 6, 7],
        "raw-0: the good records after the aborted ones and their marker"
    );
    assert_settings_applied(&[&broker]);
}
