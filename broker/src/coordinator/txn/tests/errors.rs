//! Every refusal, with Kafka's error code, and write failures.

use super::*;

fn init_error(c: &mut TxnCoordinator, p: InitProducerIdParams) -> ResponseError {
    let out = c.init_producer_id(tok(50), p, PID + 99, 1_000);
    assert!(
        !has_persist(&out.effects),
        "refused without a write: {:?}",
        out.effects
    );
    match response_for(&out.effects, tok(50)) {
        Some(Response::InitProducerId(Err(error))) => *error,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn add_error(c: &mut TxnCoordinator, p: AddPartitionsParams) -> ResponseError {
    let partitions = p.partitions.clone();
    let effects = c.add_partitions(tok(51), p, 1_000);
    assert!(!has_persist(&effects));
    let Some(Response::AddPartitions(results)) = response_for(&effects, tok(51)) else {
        panic!("no AddPartitions answer in {effects:?}");
    };
    assert_eq!(
        results.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
        partitions
    );
    let error = results[0].1.expect("an error");
    assert!(
        results.iter().all(|r| r.1 == Some(error)),
        "one error for all: {results:?}"
    );
    error
}

fn end_error(c: &mut TxnCoordinator, p: EndTxnParams) -> ResponseError {
    let out = c.end_txn(tok(52), p, None, 1_000);
    assert!(!has_persist(&out.effects));
    match response_for(&out.effects, tok(52)) {
        Some(Response::EndTxn(Err(error))) => *error,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn init_refuses_timeouts_outside_one_to_the_maximum() {
    let mut c = coordinator(TxnConfig::default());
    for timeout in [0, -1, 900_001] {
        let p = InitProducerIdParams {
            transaction_timeout_ms: timeout,
            ..init_params("tx")
        };
        assert_eq!(
            init_error(&mut c, p),
            ResponseError::InvalidTransactionTimeout
        );
    }
    assert!(c.metadata("tx").is_none());
    let p = InitProducerIdParams {
        transaction_timeout_ms: 900_000,
        ..init_params("tx")
    };
    let out = c.init_producer_id(tok(1), p, PID, 0);
    assert!(has_persist(&out.effects));
}

#[test]
fn init_refuses_half_given_kip360_fields_and_empty_ids() {
    let mut c = coordinator(TxnConfig::default());
    let p = InitProducerIdParams {
        producer_id: PID,
        ..init_params("tx")
    };
    assert_eq!(init_error(&mut c, p), ResponseError::InvalidRequest);
    assert_eq!(
        init_error(&mut c, init_params("")),
        ResponseError::InvalidRequest
    );
}

#[test]
fn init_with_a_stale_or_unknown_kip360_producer_is_fenced() {
    let mut c = coordinator(TxnConfig::default());
    init_ok(&mut c, "tx", PID, 0);
    init_ok(&mut c, "tx", PID, 0); // epoch 1, last epoch -1
    init_ok(&mut c, "tx", PID, 0); // epoch 2
    let stale = InitProducerIdParams {
        producer_id: PID,
        producer_epoch: 0,
        ..init_params("tx")
    };
    assert_eq!(init_error(&mut c, stale), ResponseError::ProducerFenced);
    // Kafka answers PRODUCER_FENCED (not INVALID_PRODUCER_ID_MAPPING) for a producer id it
    // does not know here.
    let unknown = InitProducerIdParams {
        producer_id: 5,
        producer_epoch: 0,
        ..init_params("tx")
    };
    assert_eq!(init_error(&mut c, unknown), ResponseError::ProducerFenced);
}

#[test]
fn init_while_a_write_is_pending_or_a_transaction_is_prepared_is_concurrent() {
    let mut c = coordinator(config_tv0());
    let (pid, epoch) = init_ok(&mut c, "tx", PID, 0);
    let effects = c.add_partitions(tok(1), add_params("tx", pid, epoch, &[tp("a", 0)]), 10);
    assert_eq!(
        init_error(&mut c, init_params("tx")),
        ResponseError::ConcurrentTransactions
    );
    let (persist, _) = the_persist(&effects);
    c.persisted(persist, Ok(()), 10);
    let (_, markers) = end_prepared(&mut c, end_params("tx", pid, epoch, true, false), 20);
    assert_eq!(
        init_error(&mut c, init_params("tx")),
        ResponseError::ConcurrentTransactions
    );
    complete(&mut c, &markers, 30);
    assert_eq!(init_ok(&mut c, "tx", PID, 40), (pid, epoch + 1));
}

#[test]
fn add_partitions_refusals_have_kafkas_codes() {
    let mut c = coordinator(config_tv0());
    let a0 = [tp("a", 0), tp("a", 1)];
    assert_eq!(
        add_error(&mut c, add_params("nobody", PID, 0, &a0)),
        ResponseError::InvalidProducerIdMapping
    );
    let (pid, epoch) = init_ok(&mut c, "tx", PID, 0);
    assert_eq!(
        add_error(&mut c, add_params("tx", pid + 1, epoch, &a0)),
        ResponseError::InvalidProducerIdMapping
    );
    assert_eq!(
        add_error(&mut c, add_params("tx", pid, epoch + 1, &a0)),
        ResponseError::ProducerFenced
    );
    assert_eq!(
        add_error(&mut c, add_params("", pid, epoch, &a0)),
        ResponseError::InvalidRequest
    );
    // A write in flight.
    let effects = c.add_partitions(tok(1), add_params("tx", pid, epoch, &a0), 10);
    assert_eq!(
        add_error(&mut c, add_params("tx", pid, epoch, &[tp("b", 0)])),
        ResponseError::ConcurrentTransactions
    );
    let (persist, _) = the_persist(&effects);
    c.persisted(persist, Ok(()), 10);
    // Prepared, markers in flight.
    let (_, markers) = end_prepared(&mut c, end_params("tx", pid, epoch, true, false), 20);
    assert_eq!(
        add_error(&mut c, add_params("tx", pid, epoch, &[tp("b", 0)])),
        ResponseError::ConcurrentTransactions
    );
    complete(&mut c, &markers, 30);
    add_ok(&mut c, "tx", pid, epoch, &[tp("b", 0)], 40);
}

#[test]
fn end_txn_refusals_have_kafkas_codes() {
    let mut c = coordinator(config_tv0());
    assert_eq!(
        end_error(&mut c, end_params("nobody", PID, 0, true, false)),
        ResponseError::InvalidProducerIdMapping
    );
    let (pid, epoch) = init_ok(&mut c, "tx", PID, 0);
    assert_eq!(
        end_error(&mut c, end_params("tx", pid, epoch, true, false)),
        ResponseError::InvalidTxnState,
        "commit with no transaction"
    );
    assert_eq!(
        end_error(&mut c, end_params("tx", pid, epoch, false, false)),
        ResponseError::InvalidTxnState,
        "abort with no transaction"
    );
    add_ok(&mut c, "tx", pid, epoch, &[tp("a", 0)], 10);
    assert_eq!(
        end_error(&mut c, end_params("tx", pid + 1, epoch, true, false)),
        ResponseError::InvalidProducerIdMapping
    );
    assert_eq!(
        end_error(&mut c, end_params("tx", pid, epoch + 1, true, false)),
        ResponseError::ProducerFenced,
        "TV1 wants exactly the current epoch"
    );
    assert_eq!(
        end_error(&mut c, end_params("", pid, epoch, true, false)),
        ResponseError::InvalidRequest
    );
    let (_, markers) = end_prepared(&mut c, end_params("tx", pid, epoch, true, false), 20);
    // While the markers are out the completion is pending: retries wait.
    assert_eq!(
        end_error(&mut c, end_params("tx", pid, epoch, true, false)),
        ResponseError::ConcurrentTransactions
    );
    complete(&mut c, &markers, 30);
    assert_eq!(
        end_error(&mut c, end_params("tx", pid, epoch, false, false)),
        ResponseError::InvalidTxnState,
        "abort after a commit"
    );
}

#[test]
fn end_txn_against_a_prepared_transaction_without_pending_write_checks_the_outcome() {
    let mut c = coordinator(config_tv0());
    let (pid, epoch) = init_ok(&mut c, "tx", PID, 0);
    add_ok(&mut c, "tx", pid, epoch, &[tp("a", 0)], 10);
    let (_, markers) = end_prepared(&mut c, end_params("tx", pid, epoch, true, false), 20);
    // The completion cannot be written and the coordinator is about to move: the transaction
    // stays PrepareCommit with nothing pending.
    let Effect::WriteMarkers {
        producer_id,
        producer_epoch,
        ..
    } = markers
    else {
        unreachable!()
    };
    let (persist, _) = the_persist(&c.markers_written("tx", producer_id, producer_epoch, 30));
    assert!(
        c.persisted(persist, Err(ResponseError::NotLeaderOrFollower), 31)
            .is_empty()
    );
    let m = c.metadata("tx").unwrap();
    assert_eq!((m.state, m.pending_state), (TxnState::PrepareCommit, None));
    assert_eq!(
        end_error(&mut c, end_params("tx", pid, epoch, true, false)),
        ResponseError::ConcurrentTransactions
    );
    assert_eq!(
        end_error(&mut c, end_params("tx", pid, epoch, false, false)),
        ResponseError::InvalidTxnState
    );
}

#[test]
fn a_failed_add_partitions_write_reverts_and_answers_the_mapped_error() {
    for (append_error, answered) in [
        (
            ResponseError::NotLeaderOrFollower,
            ResponseError::NotCoordinator,
        ),
        (
            ResponseError::RequestTimedOut,
            ResponseError::CoordinatorNotAvailable,
        ),
        (
            ResponseError::NotEnoughReplicas,
            ResponseError::CoordinatorNotAvailable,
        ),
        (
            ResponseError::MessageTooLarge,
            ResponseError::UnknownServerError,
        ),
    ] {
        let mut c = coordinator(TxnConfig::default());
        let (pid, epoch) = init_ok(&mut c, "tx", PID, 0);
        let effects = c.add_partitions(tok(1), add_params("tx", pid, epoch, &[tp("a", 0)]), 10);
        let (persist, _) = the_persist(&effects);
        let effects = c.persisted(persist, Err(append_error), 11);
        assert_eq!(
            response_for(&effects, tok(1)),
            Some(&Response::AddPartitions(vec![(tp("a", 0), Some(answered))])),
            "{append_error:?}"
        );
        let m = c.metadata("tx").unwrap();
        assert_eq!((m.state, m.pending_state), (TxnState::Empty, None));
        assert!(m.topic_partitions.is_empty());
        // The client's retry goes through.
        add_ok(&mut c, "tx", pid, epoch, &[tp("a", 0)], 20);
    }
}

#[test]
fn a_failed_prepare_write_reverts_to_ongoing() {
    let mut c = coordinator(TxnConfig::default());
    let (pid, epoch) = init_ok(&mut c, "tx", PID, 0);
    add_ok(&mut c, "tx", pid, epoch, &[tp("a", 0)], 10);
    let out = c.end_txn(tok(1), end_params("tx", pid, epoch, true, true), None, 20);
    let (persist, _) = the_persist(&out.effects);
    let effects = c.persisted(persist, Err(ResponseError::KafkaStorageError), 21);
    assert_eq!(
        effects,
        vec![Effect::Respond {
            token: tok(1),
            response: Response::EndTxn(Err(ResponseError::NotCoordinator))
        }]
    );
    let m = c.metadata("tx").unwrap();
    assert_eq!(
        (m.state, m.producer_epoch, m.pending_state),
        (TxnState::Ongoing, epoch, None)
    );
}

#[test]
fn a_failed_init_write_for_a_new_id_answers_the_error() {
    let mut c = coordinator(TxnConfig::default());
    let out = c.init_producer_id(tok(1), init_params("tx"), PID, 0);
    let (persist, _) = the_persist(&out.effects);
    let effects = c.persisted(persist, Err(ResponseError::NotEnoughReplicas), 1);
    assert_eq!(
        response_for(&effects, tok(1)),
        Some(&Response::InitProducerId(Err(
            ResponseError::CoordinatorNotAvailable
        )))
    );
    // As in Kafka the id stays cached, without an epoch, and the retry gets epoch 0.
    assert_eq!(c.metadata("tx").unwrap().producer_epoch, -1);
    let out = c.init_producer_id(tok(2), init_params("tx"), PID + 1, 2);
    assert!(!out.used_fresh_producer_id);
    let (persist, _) = the_persist(&out.effects);
    assert_eq!(
        response_for(&c.persisted(persist, Ok(()), 3), tok(2)),
        Some(&Response::InitProducerId(Ok((PID, 0))))
    );
}

#[test]
fn a_completion_that_cannot_be_written_now_is_retried_from_tick() {
    let mut c = coordinator(TxnConfig::default());
    let (pid, epoch) = init_ok(&mut c, "tx", PID, 0);
    add_ok(&mut c, "tx", pid, epoch, &[tp("a", 0)], 10);
    let (_, markers) = end_prepared(&mut c, end_params("tx", pid, epoch, false, true), 20);
    let Effect::WriteMarkers {
        producer_id,
        producer_epoch,
        ..
    } = markers
    else {
        unreachable!()
    };
    let (persist, _) = the_persist(&c.markers_written("tx", producer_id, producer_epoch, 30));
    assert!(
        c.persisted(persist, Err(ResponseError::NotEnoughReplicas), 40)
            .is_empty()
    );
    assert_eq!(
        c.metadata("tx").unwrap().pending_state,
        Some(TxnState::CompleteAbort)
    );
    assert_eq!(c.next_deadline(), Some(140));
    assert!(c.tick(139).is_empty());
    let (retry, value) = the_persist(&c.tick(140));
    assert_eq!(value.unwrap().state, TxnState::CompleteAbort);
    c.persisted(retry, Ok(()), 141);
    assert_eq!(c.metadata("tx").unwrap().state, TxnState::CompleteAbort);
    assert_eq!(c.counters(), (0, 1));
}

#[test]
fn stale_marker_and_persist_reports_are_ignored() {
    let mut c = coordinator(config_tv0());
    let (pid, epoch) = init_ok(&mut c, "tx", PID, 0);
    add_ok(&mut c, "tx", pid, epoch, &[tp("a", 0)], 10);
    assert!(
        c.markers_written("tx", pid, epoch, 11).is_empty(),
        "no markers out"
    );
    let (_, markers) = end_prepared(&mut c, end_params("tx", pid, epoch, true, false), 20);
    assert!(
        c.markers_written("tx", pid, epoch + 1, 21).is_empty(),
        "wrong epoch"
    );
    assert!(c.markers_written("other", pid, epoch, 21).is_empty());
    complete(&mut c, &markers, 30);
    assert!(
        c.markers_written("tx", pid, epoch, 31).is_empty(),
        "already complete"
    );
}

#[test]
fn verify_only_says_per_partition_whether_it_is_in_the_transaction() {
    let mut c = coordinator(TxnConfig::default());
    let (pid, epoch) = init_ok(&mut c, "tx", PID, 0);
    add_ok(&mut c, "tx", pid, epoch, &[tp("a", 0)], 10);
    let verify = |pid, epoch| AddPartitionsParams {
        verify_only: true,
        ..add_params("tx", pid, epoch, &[tp("a", 0), tp("a", 1)])
    };
    let effects = c.add_partitions(tok(1), verify(pid, epoch), 20);
    assert_eq!(
        effects,
        vec![Effect::Respond {
            token: tok(1),
            response: Response::AddPartitions(vec![
                (tp("a", 0), None),
                (tp("a", 1), Some(ResponseError::TransactionAbortable)),
            ])
        }]
    );
    assert_eq!(
        add_error(&mut c, verify(pid, epoch + 1)),
        ResponseError::ProducerFenced
    );
    assert_eq!(
        add_error(&mut c, verify(pid + 1, epoch)),
        ResponseError::InvalidProducerIdMapping
    );
    let mut unknown = verify(pid, epoch);
    unknown.transactional_id = "nobody".to_owned();
    assert_eq!(
        add_error(&mut c, unknown),
        ResponseError::InvalidProducerIdMapping
    );
    assert_eq!(
        c.metadata("tx").unwrap().topic_partitions,
        [tp("a", 0)].into(),
        "nothing added"
    );
    let (answer, _) = end_prepared(&mut c, end_params("tx", pid, epoch, true, false), 30);
    assert_eq!(answer, Ok((pid, epoch)));
    assert_eq!(
        add_error(&mut c, verify(pid, epoch)),
        ResponseError::ConcurrentTransactions
    );
}

#[test]
fn init_needing_a_new_producer_id_without_one_at_hand_answers_load_in_progress() {
    let mut c = coordinator(TxnConfig::default());
    let out = c.init_producer_id(tok(1), init_params("tx"), -1, 0);
    assert!(!out.used_fresh_producer_id);
    assert_eq!(
        out.effects,
        vec![Effect::Respond {
            token: tok(1),
            response: Response::InitProducerId(Err(ResponseError::CoordinatorLoadInProgress))
        }]
    );
    assert!(c.metadata("tx").is_none(), "nothing cached");
    // An existing id needs no new producer id.
    init_ok(&mut c, "tx", PID, 0);
    let out = c.init_producer_id(tok(2), init_params("tx"), -1, 1);
    assert!(has_persist(&out.effects));
}
