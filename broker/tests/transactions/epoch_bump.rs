//! KIP-890 part 2's epoch bump on the wire: an EndTxn v5 client gets its epoch bumped by every
//! commit and abort, so an EndTxn of a finished transaction arriving late cannot end the
//! next one. (librdkafka sends EndTxn v0-1 and Java clients v5 only with transaction
//! version 2, so this is driven with raw requests.)

use super::bad_requests::{add_partitions, version_up_to};
use super::verification::{init_with_coordinator, produce};
use super::*;

/// AddPartitionsToTxn for `topic-0`, retried while the previous transaction completes.
fn add_partition(broker: &BrokerProcess, id: &str, producer: (i64, i16), topic: &str) {
    let mut last = None;
    let added = eventually(WAIT, || {
        let code = add_partitions(broker, id, producer, &[(topic, &[0])])[&(topic.to_owned(), 0)];
        last = Some(code);
        match code {
            0 => Some(()),
            CONCURRENT_TRANSACTIONS => None,
            other => panic!("AddPartitionsToTxn({id}, {producer:?}): error {other}"),
        }
    });
    assert!(
        added.is_some(),
        "AddPartitionsToTxn kept failing with {last:?}"
    );
}

/// EndTxn v5: (error code, producer id, epoch), retried as clients retry while the
/// coordinator answers CONCURRENT_TRANSACTIONS (an earlier change of the id still being
/// written).
fn end_txn_v5(
    broker: &BrokerProcess,
    id: &str,
    producer: (i64, i16),
    commit: bool,
) -> (i16, i64, i16) {
    let answer = eventually(WAIT, || {
        let r = broker.call(
            5,
            &EndTxnRequest::default()
                .with_transactional_id(super::bad_requests::txn_id(id))
                .with_producer_id(ProducerId(producer.0))
                .with_producer_epoch(producer.1)
                .with_committed(commit),
        );
        (r.error_code != CONCURRENT_TRANSACTIONS).then_some((
            r.error_code,
            r.producer_id.0,
            r.producer_epoch,
        ))
    });
    answer.expect("EndTxn kept answering CONCURRENT_TRANSACTIONS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_end_txn_of_a_finished_transaction_cannot_end_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let broker = standalone(dir.path(), STANDALONE_TXN);
    create_topics(&broker.bootstrap(), &[("bump", 1)], 1, "1").await;
    assert_eq!(
        version_up_to(&broker, ApiKey::EndTxn, 5),
        5,
        "EndTxn v5 is advertised"
    );
    let id = "bump-txn";
    let (pid, epoch) = init_with_coordinator(&broker, id);
    let produce_version = version_up_to(&broker, ApiKey::Produce, 9);

    // The first transaction commits at `epoch`; the answer carries `epoch + 1`.
    add_partition(&broker, id, (pid, epoch), "bump");
    assert_eq!(
        produce(&broker, produce_version, id, (pid, epoch), "bump", &["one"]).0,
        0
    );
    assert_eq!(
        end_txn_v5(&broker, id, (pid, epoch), true),
        (0, pid, epoch + 1)
    );
    // A retry of that EndTxn is answered as the first time, with nothing written.
    assert_eq!(
        end_txn_v5(&broker, id, (pid, epoch), true),
        (0, pid, epoch + 1)
    );

    // The second transaction runs at `epoch + 1`. A late EndTxn (abort) of the first one,
    // at `epoch`, is fenced and leaves it open.
    let next = (pid, epoch + 1);
    add_partition(&broker, id, next, "bump");
    assert_eq!(
        produce(&broker, produce_version, id, next, "bump", &["two"]).0,
        0
    );
    let (code, _, _) = end_txn_v5(&broker, id, (pid, epoch), false);
    assert_eq!(
        code, PRODUCER_FENCED,
        "a late EndTxn from the previous transaction"
    );
    let (hw, lso) = hw_and_lso(&broker, "bump", 0);
    assert!(
        lso < hw,
        "the second transaction is still open: HW {hw}, LSO {lso}"
    );

    // Its own EndTxn commits it and bumps the epoch again; everything is stable.
    assert_eq!(end_txn_v5(&broker, id, next, true), (0, pid, epoch + 2));
    let stable = eventually(WAIT, || {
        let (hw, lso) = hw_and_lso(&broker, "bump", 0);
        (hw == lso).then_some(hw)
    });
    // one, COMMIT, two, COMMIT.
    assert_eq!(stable, Some(4), "both transactions committed");
}
