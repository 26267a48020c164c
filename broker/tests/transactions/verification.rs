//! KIP-890 part 1 on the wire: a transactional Produce to a partition the coordinator does not
//! know to be in the producer's ongoing transaction is refused and leaves no hanging
//! transaction (the partition's last stable offset equals its high watermark), unless
//! `transaction.partition.verification.enable=false`.

use kafka_protocol::messages::ProduceResponse;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};

use super::bad_requests::{
    add_partitions, end_txn, init_raw, topic_name, transactional_batch, txn_id, version_up_to,
};
use super::*;

const NOT_ENOUGH_REPLICAS: i16 = 19;

/// A transactional Produce of `values` to `topic-0` (acks=all): (error code, base offset).
pub(super) fn produce(
    broker: &BrokerProcess,
    version: i16,
    id: &str,
    producer: (i64, i16),
    topic: &str,
    values: &[&str],
) -> (i16, i64) {
    let response: ProduceResponse = broker.call(
        version,
        &ProduceRequest::default()
            .with_transactional_id(Some(txn_id(id)))
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(transactional_batch(producer, values))),
                    ]),
            ]),
    );
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// InitProducerId for `id` once FindCoordinator has created `__transaction_state` and
/// the coordinator answers.
pub(super) fn init_with_coordinator(broker: &BrokerProcess, id: &str) -> (i64, i16) {
    let coordinator = eventually(Duration::from_secs(30), || {
        let r = broker.call(
            1,
            &FindCoordinatorRequest::default()
                .with_key_type(KEY_TYPE_TRANSACTION)
                .with_key(StrBytes::from_string(id.to_owned())),
        );
        (r.error_code == 0).then_some(r.node_id.0)
    });
    assert!(
        coordinator.is_some(),
        "no transaction coordinator: {}",
        coordinator_diagnosis(broker, id)
    );
    init_raw(broker, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_produce_to_a_partition_not_in_the_transaction_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let broker = standalone(dir.path(), STANDALONE_TXN);
    let bootstrap = broker.bootstrap();
    create_topics(&bootstrap, &[("verified", 1), ("late", 1)], 1, "1").await;
    let id = "verify-txn";
    let producer = init_with_coordinator(&broker, id);

    // Without AddPartitionsToTxn: the coordinator's TRANSACTION_ABORTABLE is INVALID_TXN_STATE
    // for Produce before v11, and passed as it is from v11 on.
    let old = version_up_to(&broker, ApiKey::Produce, 9);
    assert_eq!(
        produce(&broker, old, id, producer, "verified", &["zombie"]).0,
        INVALID_TXN_STATE,
        "Produce v{old} to a partition not in the transaction"
    );
    let new = version_up_to(&broker, ApiKey::Produce, 12);
    if new >= 11 {
        assert_eq!(
            produce(&broker, new, id, producer, "verified", &["zombie"]).0,
            TRANSACTION_ABORTABLE,
            "Produce v{new} to a partition not in the transaction"
        );
    }
    assert_eq!(
        hw_and_lso(&broker, "verified", 0),
        (0, 0),
        "nothing written, no transaction opened"
    );

    // Added to the transaction: the same write is accepted and opens it.
    assert_eq!(
        add_partitions(&broker, id, producer, &[("verified", &[0]), ("late", &[0])]),
        BTreeMap::from([(("late".to_owned(), 0), 0), (("verified".to_owned(), 0), 0)])
    );
    assert_eq!(
        produce(&broker, old, id, producer, "verified", &["a", "b", "c"]),
        (0, 0)
    );
    assert_eq!(
        hw_and_lso(&broker, "verified", 0),
        (3, 0),
        "the transaction is open"
    );

    // Aborted; then a late write of that transaction to a partition it never wrote to is
    // refused, where it used to open a transaction no marker would ever close.
    let end_version = version_up_to(&broker, ApiKey::EndTxn, 4);
    let ended = eventually(WAIT, || {
        let code = end_txn(&broker, end_version, id, producer, false);
        (code != CONCURRENT_TRANSACTIONS).then_some(code)
    });
    assert_eq!(ended, Some(0), "EndTxn(abort)");
    let settled = eventually(WAIT, || {
        let (hw, lso) = hw_and_lso(&broker, "verified", 0);
        (hw == lso).then_some(hw)
    });
    assert_eq!(settled, Some(4), "the ABORT marker at 3, the LSO after it");
    assert_eq!(
        hw_and_lso(&broker, "late", 0).0,
        1,
        "late-0 has its ABORT marker"
    );
    // While the coordinator completes the abort it answers CONCURRENT_TRANSACTIONS, which
    // the producer gets as the retriable NOT_ENOUGH_REPLICAS (nothing written either way).
    let code = eventually(WAIT, || {
        let (code, _) = produce(&broker, old, id, producer, "late", &["late-retry"]);
        (code != NOT_ENOUGH_REPLICAS).then_some(code)
    });
    assert_eq!(
        code,
        Some(INVALID_TXN_STATE),
        "a late write after the abort"
    );
    assert_eq!(
        hw_and_lso(&broker, "late", 0),
        (1, 1),
        "late-0: no hanging transaction"
    );
    assert_settings_applied(&[&broker]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_verification_disabled_an_unverified_transactional_produce_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let settings: Vec<&str> = STANDALONE_TXN
        .iter()
        .copied()
        .chain(["transaction.partition.verification.enable=false"])
        .collect();
    let broker = standalone(dir.path(), &settings);
    create_topics(&broker.bootstrap(), &[("unverified", 1)], 1, "1").await;
    let id = "unverified-txn";
    let producer = init_with_coordinator(&broker, id);
    let version = version_up_to(&broker, ApiKey::Produce, 9);
    assert_eq!(
        produce(&broker, version, id, producer, "unverified", &["x", "y"]),
        (0, 0),
        "the pre-KIP-890 behaviour"
    );
    assert_eq!(
        hw_and_lso(&broker, "unverified", 0),
        (2, 0),
        "the write opened a transaction the coordinator does not know of"
    );
    assert_settings_applied(&[&broker]);
}
