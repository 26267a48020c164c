//! Whole transactions: commit, abort, fencing, timeouts, expiry, epoch exhaustion.

use super::*;

#[test]
fn new_id_gets_the_fresh_producer_id_at_epoch_zero_after_the_empty_record_is_written() {
    let mut c = coordinator(TxnConfig::default());
    let out = c.init_producer_id(tok(1), init_params("tx"), PID, 10);
    assert!(out.used_fresh_producer_id);
    assert!(
        response_for(&out.effects, tok(1)).is_none(),
        "answered only after the write"
    );
    let (persist, value) = the_persist(&out.effects);
    let value = value.unwrap();
    assert_eq!((value.producer_id, value.producer_epoch), (PID, 0));
    assert_eq!(value.state, TxnState::Empty);
    assert_eq!(value.transaction_timeout_ms, TIMEOUT);
    assert_eq!(value.start_timestamp_ms, -1);
    let effects = c.persisted(persist, Ok(()), 10);
    assert_eq!(
        response_for(&effects, tok(1)),
        Some(&Response::InitProducerId(Ok((PID, 0))))
    );
}

#[test]
fn existing_id_gets_its_epoch_bumped_without_taking_a_fresh_id() {
    let mut c = coordinator(TxnConfig::default());
    assert_eq!(init_ok(&mut c, "tx", PID, 0), (PID, 0));
    let out = c.init_producer_id(tok(2), init_params("tx"), PID + 1, 5);
    assert!(!out.used_fresh_producer_id);
    let (persist, _) = the_persist(&out.effects);
    let effects = c.persisted(persist, Ok(()), 5);
    assert_eq!(
        response_for(&effects, tok(2)),
        Some(&Response::InitProducerId(Ok((PID, 1))))
    );
}

#[test]
fn commit_cycle_writes_prepare_answers_sends_markers_then_writes_complete() {
    let mut c = coordinator(config_tv0());
    let (pid, epoch) = init_ok(&mut c, "tx", PID, 0);
    add_ok(&mut c, "tx", pid, epoch, &[tp("a", 0), tp("b", 1)], 100);
    assert_eq!(c.open_transactions(), 1);

    let out = c.end_txn(tok(3), end_params("tx", pid, epoch, true, false), None, 200);
    assert!(response_for(&out.effects, tok(3)).is_none());
    let (prepare, value) = the_persist(&out.effects);
    let value = value.unwrap();
    assert_eq!(value.state, TxnState::PrepareCommit);
    assert_eq!(value.partitions, [tp("a", 0), tp("b", 1)].into());
    assert_eq!(value.start_timestamp_ms, 100);

    let effects = c.persisted(prepare, Ok(()), 210);
    assert_eq!(
        effects,
        vec![
            Effect::Respond {
                token: tok(3),
                response: Response::EndTxn(Ok((pid, epoch)))
            },
            Effect::WriteMarkers {
                transactional_id: "tx".to_owned(),
                producer_id: pid,
                producer_epoch: epoch,
                coordinator_epoch: COORDINATOR_EPOCH,
                commit: true,
                partitions: vec![tp("a", 0), tp("b", 1)],
            }
        ]
    );
    assert_eq!(c.counters(), (0, 0));

    let effects = c.markers_written("tx", pid, epoch, 300);
    let (complete, value) = the_persist(&effects);
    let value = value.unwrap();
    assert_eq!(value.state, TxnState::CompleteCommit);
    assert!(value.partitions.is_empty());
    assert!(c.persisted(complete, Ok(()), 310).is_empty());
    assert_eq!(c.metadata("tx").unwrap().state, TxnState::CompleteCommit);
    assert_eq!(c.counters(), (1, 0));
    assert_eq!(c.open_transactions(), 0);
}

#[test]
fn abort_cycle_ends_in_complete_abort_and_counts_an_abort() {
    let mut c = coordinator(config_tv0());
    let (pid, epoch) = init_ok(&mut c, "tx", PID, 0);
    add_ok(&mut c, "tx", pid, epoch, &[tp("a", 0)], 100);
    let (answer, markers) = end_prepared(&mut c, end_params("tx", pid, epoch, false, false), 200);
    assert_eq!(answer, Ok((pid, epoch)));
    assert!(matches!(
        markers,
        Effect::WriteMarkers { commit: false, .. }
    ));
    complete(&mut c, &markers, 300);
    assert_eq!(c.metadata("tx").unwrap().state, TxnState::CompleteAbort);
    assert_eq!(c.counters(), (0, 1));

    // The next transaction starts from CompleteAbort with a new start time.
    add_ok(&mut c, "tx", pid, epoch, &[tp("b", 0)], 400);
    let m = c.metadata("tx").unwrap();
    assert_eq!(m.txn_start_timestamp, 400);
    assert_eq!(m.topic_partitions, [tp("b", 0)].into());
}

#[test]
fn tv1_retry_of_a_completed_end_txn_is_answered_ok_without_a_write() {
    let mut c = coordinator(config_tv0());
    let (pid, epoch) = init_ok(&mut c, "tx", PID, 0);
    add_ok(&mut c, "tx", pid, epoch, &[tp("a", 0)], 100);
    let (_, markers) = end_prepared(&mut c, end_params("tx", pid, epoch, true, false), 200);
    complete(&mut c, &markers, 300);
    let out = c.end_txn(tok(4), end_params("tx", pid, epoch, true, false), None, 400);
    assert_eq!(out.effects.len(), 1);
    assert_eq!(
        response_for(&out.effects, tok(4)),
        Some(&Response::EndTxn(Ok((pid, epoch))))
    );
}

#[test]
fn tv2_end_txn_bumps_the_epoch_in_markers_and_answer_and_fences_a_late_end_txn() {
    let mut c = coordinator(TxnConfig::default());
    let (pid, epoch) = init_ok(&mut c, "tx", PID, 0);
    add_ok(&mut c, "tx", pid, epoch, &[tp("a", 0)], 100);
    let (answer, markers) = end_prepared(&mut c, end_params("tx", pid, epoch, true, true), 200);
    assert_eq!(answer, Ok((pid, epoch + 1)));
    assert!(matches!(
        markers,
        Effect::WriteMarkers { producer_epoch, .. } if producer_epoch == epoch + 1
    ));
    complete(&mut c, &markers, 300);
    let m = c.metadata("tx").unwrap();
    assert_eq!(
        (m.producer_epoch, m.client_transaction_version),
        (epoch + 1, TransactionVersion::TV_2)
    );

    // A retry of the same EndTxn (old epoch) is answered OK with the bumped epoch.
    let out = c.end_txn(tok(5), end_params("tx", pid, epoch, true, true), None, 310);
    assert_eq!(
        response_for(&out.effects, tok(5)),
        Some(&Response::EndTxn(Ok((pid, epoch + 1))))
    );
    assert!(!has_persist(&out.effects));

    // The next transaction runs at the new epoch; an EndTxn from the previous one is fenced.
    add_ok(&mut c, "tx", pid, epoch + 1, &[tp("a", 0)], 400);
    let out = c.end_txn(tok(6), end_params("tx", pid, epoch, false, true), None, 410);
    assert_eq!(
        response_for(&out.effects, tok(6)),
        Some(&Response::EndTxn(Err(ResponseError::ProducerFenced)))
    );
    assert!(!has_persist(&out.effects));
    assert_eq!(c.metadata("tx").unwrap().state, TxnState::Ongoing);
}

#[test]
fn tv2_end_txn_on_an_exhausted_epoch_moves_the_producer_to_the_fresh_id() {
    // Load an id whose epoch is exhausted, in an ongoing transaction.
    let ongoing = TxnLogValue {
        producer_id: PID,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch: i16::MAX - 1,
        transaction_timeout_ms: TIMEOUT,
        state: TxnState::Ongoing,
        partitions: [tp("a", 0)].into(),
        last_update_timestamp_ms: 0,
        start_timestamp_ms: 0,
        client_transaction_version: TransactionVersion::TV_0,
    };
    let mut c = TxnCoordinator::new(7, COORDINATOR_EPOCH, TxnConfig::default());
    c.replay(
        &records::encode_key("tx"),
        Some(&records::encode_value(&ongoing, 1)),
    )
    .unwrap();
    assert!(c.finish_loading(0).is_empty());

    let epoch = i16::MAX - 1;
    let out = c.end_txn(
        tok(1),
        end_params("tx", PID, epoch, true, true),
        Some(PID + 50),
        10,
    );
    assert!(out.used_fresh_producer_id);
    let (prepare, value) = the_persist(&out.effects);
    assert_eq!(value.unwrap().next_producer_id, PID + 50);
    let effects = c.persisted(prepare, Ok(()), 10);
    assert_eq!(
        response_for(&effects, tok(1)),
        Some(&Response::EndTxn(Ok((PID + 50, 0))))
    );
    // Markers go out under the old id, whose partitions hold the transaction.
    let markers = effects
        .iter()
        .find(|e| matches!(e, Effect::WriteMarkers { .. }))
        .unwrap();
    assert!(matches!(
        markers,
        Effect::WriteMarkers {
            producer_id: PID,
            producer_epoch: i16::MAX,
            ..
        }
    ));
    complete(&mut c, markers, 20);
    let m = c.metadata("tx").unwrap();
    assert_eq!(
        (m.producer_id, m.producer_epoch, m.previous_producer_id),
        (PID + 50, 0, PID)
    );

    // A retry with the old id and epoch is recognised as a retry across the overflow.
    let out = c.end_txn(
        tok(2),
        end_params("tx", PID, epoch, true, true),
        Some(PID + 51),
        30,
    );
    assert!(!out.used_fresh_producer_id);
    assert_eq!(
        response_for(&out.effects, tok(2)),
        Some(&Response::EndTxn(Ok((PID + 50, 0))))
    );
    // The producer goes on with the new id.
    add_ok(&mut c, "tx", PID + 50, 0, &[tp("a", 0)], 40);
}

#[test]
fn tv2_end_txn_needing_a_new_id_without_one_at_hand_answers_load_in_progress() {
    let ongoing = TxnLogValue {
        producer_id: PID,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch: i16::MAX - 1,
        transaction_timeout_ms: TIMEOUT,
        state: TxnState::Ongoing,
        partitions: [tp("a", 0)].into(),
        last_update_timestamp_ms: 0,
        start_timestamp_ms: 0,
        client_transaction_version: TransactionVersion::TV_0,
    };
    let mut c = TxnCoordinator::new(7, COORDINATOR_EPOCH, TxnConfig::default());
    c.replay(
        &records::encode_key("tx"),
        Some(&records::encode_value(&ongoing, 1)),
    )
    .unwrap();
    c.finish_loading(0);
    let out = c.end_txn(
        tok(1),
        end_params("tx", PID, i16::MAX - 1, true, true),
        None,
        10,
    );
    assert_eq!(
        response_for(&out.effects, tok(1)),
        Some(&Response::EndTxn(Err(
            ResponseError::CoordinatorLoadInProgress
        )))
    );
    assert!(!out.used_fresh_producer_id);
    assert_eq!(c.metadata("tx").unwrap().pending_state, None);
}

fn fence_scenario(config: TxnConfig, expected_new_epoch: i16, abort_marker_epoch: i16) {
    let mut c = coordinator(config);
    let (pid, epoch) = init_ok(&mut c, "tx", PID, 0);
    add_ok(&mut c, "tx", pid, epoch, &[tp("a", 0)], 100);

    // A second producer instance starts: the first one's transaction is aborted at a bumped
    // epoch and the newcomer is told to retry.
    let out = c.init_producer_id(tok(7), init_params("tx"), PID + 1, 200);
    assert!(!out.used_fresh_producer_id);
    assert!(response_for(&out.effects, tok(7)).is_none());
    let (prepare, value) = the_persist(&out.effects);
    let value = value.unwrap();
    assert_eq!(value.state, TxnState::PrepareAbort);
    assert_eq!(value.producer_epoch, abort_marker_epoch);
    let effects = c.persisted(prepare, Ok(()), 210);
    assert_eq!(
        response_for(&effects, tok(7)),
        Some(&Response::InitProducerId(Err(
            ResponseError::ConcurrentTransactions
        )))
    );
    let markers = effects
        .iter()
        .find(|e| matches!(e, Effect::WriteMarkers { .. }))
        .unwrap()
        .clone();
    assert!(matches!(
        markers,
        Effect::WriteMarkers { commit: false, producer_epoch, .. } if producer_epoch == abort_marker_epoch
    ));

    // The old producer is fenced from now on.
    let effects = c.add_partitions(tok(8), add_params("tx", pid, epoch, &[tp("b", 0)]), 220);
    assert_eq!(
        response_for(&effects, tok(8)),
        Some(&Response::AddPartitions(vec![(
            tp("b", 0),
            Some(ResponseError::ProducerFenced)
        )]))
    );
    // The retry waits for the abort to complete…
    let out = c.init_producer_id(tok(9), init_params("tx"), PID + 1, 230);
    assert_eq!(
        response_for(&out.effects, tok(9)),
        Some(&Response::InitProducerId(Err(
            ResponseError::ConcurrentTransactions
        )))
    );
    complete(&mut c, &markers, 240);
    assert_eq!(c.counters(), (0, 1));
    // …then succeeds with a further bump.
    assert_eq!(
        init_ok(&mut c, "tx", PID + 1, 250),
        (pid, expected_new_epoch)
    );
    let effects = c.add_partitions(tok(10), add_params("tx", pid, epoch, &[tp("b", 0)]), 260);
    assert!(matches!(
        response_for(&effects, tok(10)),
        Some(Response::AddPartitions(r)) if r[0].1 == Some(ResponseError::ProducerFenced)
    ));
}

#[test]
fn second_init_fences_an_ongoing_transaction_then_succeeds_at_epoch_plus_two_in_tv0() {
    fence_scenario(config_tv0(), 2, 1);
}

#[test]
fn second_init_fences_an_ongoing_transaction_then_succeeds_at_epoch_plus_three_in_tv2() {
    // Kafka's TV2 abort bumps once more on top of the fence.
    fence_scenario(TxnConfig::default(), 3, 2);
}

#[test]
fn a_failed_fence_write_keeps_its_bumped_epoch_and_the_next_fence_does_not_bump_again() {
    let mut c = coordinator(config_tv0());
    let (pid, epoch) = init_ok(&mut c, "tx", PID, 0);
    add_ok(&mut c, "tx", pid, epoch, &[tp("a", 0)], 100);
    let out = c.init_producer_id(tok(1), init_params("tx"), PID + 1, 200);
    let (prepare, _) = the_persist(&out.effects);
    let effects = c.persisted(prepare, Err(ResponseError::NotEnoughReplicas), 210);
    assert_eq!(
        response_for(&effects, tok(1)),
        Some(&Response::InitProducerId(Err(
            ResponseError::CoordinatorNotAvailable
        )))
    );
    let m = c.metadata("tx").unwrap();
    assert_eq!(
        (m.state, m.producer_epoch, m.pending_state),
        (TxnState::Ongoing, epoch + 1, None)
    );
    assert!(m.has_failed_epoch_fence);

    let out = c.init_producer_id(tok(2), init_params("tx"), PID + 1, 300);
    let (_, value) = the_persist(&out.effects);
    assert_eq!(value.unwrap().producer_epoch, epoch + 1, "not bumped twice");
}

#[test]
fn tick_aborts_a_transaction_open_past_its_timeout_and_fences_its_producer() {
    let mut c = coordinator(config_tv0());
    let (pid, epoch) = init_ok(&mut c, "tx", PID, 0);
    add_ok(&mut c, "tx", pid, epoch, &[tp("a", 0)], 1_000);
    assert_eq!(c.next_deadline(), Some(1_000 + i64::from(TIMEOUT) + 1));
    assert!(
        c.tick(1_000 + i64::from(TIMEOUT)).is_empty(),
        "not yet: Kafka aborts after start + timeout"
    );

    let now = 1_000 + i64::from(TIMEOUT) + 1;
    let effects = c.tick(now);
    let (prepare, value) = the_persist(&effects);
    let value = value.unwrap();
    assert_eq!(
        (value.state, value.producer_epoch),
        (TxnState::PrepareAbort, epoch + 1)
    );
    assert!(
        effects.iter().all(|e| matches!(e, Effect::Persist { .. })),
        "nobody to answer"
    );
    let effects = c.persisted(prepare, Ok(()), now);
    assert_eq!(effects.len(), 1);
    assert!(matches!(
        &effects[0],
        Effect::WriteMarkers { commit: false, producer_epoch, .. } if *producer_epoch == epoch + 1
    ));
    complete(&mut c, &effects[0], now);
    assert_eq!(c.metadata("tx").unwrap().state, TxnState::CompleteAbort);

    // The timed-out producer's EndTxn is fenced.
    let out = c.end_txn(
        tok(1),
        end_params("tx", pid, epoch, true, false),
        None,
        now + 1,
    );
    assert_eq!(
        response_for(&out.effects, tok(1)),
        Some(&Response::EndTxn(Err(ResponseError::ProducerFenced)))
    );
}

#[test]
fn idle_ids_expire_with_a_tombstone_on_the_cleanup_interval() {
    let config = TxnConfig {
        transactional_id_expiration_ms: 1_000,
        remove_expired_transactional_id_cleanup_interval_ms: 500,
        ..TxnConfig::default()
    };
    let mut c = coordinator(config);
    init_ok(&mut c, "idle", PID, 0);
    init_ok(&mut c, "busy", PID + 1, 0);
    add_ok(&mut c, "busy", PID + 1, 0, &[tp("a", 0)], 0);
    // Ongoing transactions never expire; the timeout aborts them instead.
    let effects = c.tick(1_000);
    let (tombstone, value) = the_persist(&effects);
    assert_eq!(value, None);
    assert!(matches!(
        &effects[0],
        Effect::Persist { transactional_id, .. } if transactional_id == "idle"
    ));
    assert_eq!(
        c.metadata("idle").unwrap().pending_state,
        Some(TxnState::Dead)
    );
    assert!(c.persisted(tombstone, Ok(()), 1_001).is_empty());
    assert!(c.metadata("idle").is_none());
    assert!(c.metadata("busy").is_some());
    assert_eq!(c.next_deadline(), Some(1_500));
}

#[test]
fn a_failed_tombstone_keeps_the_id() {
    let config = TxnConfig {
        transactional_id_expiration_ms: 10,
        remove_expired_transactional_id_cleanup_interval_ms: 10,
        ..TxnConfig::default()
    };
    let mut c = coordinator(config);
    init_ok(&mut c, "tx", PID, 0);
    let (tombstone, _) = the_persist(&c.tick(100));
    c.persisted(tombstone, Err(ResponseError::NotLeaderOrFollower), 101);
    let m = c.metadata("tx").unwrap();
    assert_eq!((m.state, m.pending_state), (TxnState::Empty, None));
}

#[test]
fn init_on_an_exhausted_epoch_rotates_to_the_fresh_id_and_a_kip360_retry_gets_the_same_answer() {
    let empty = TxnLogValue {
        producer_id: PID,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch: i16::MAX - 1,
        transaction_timeout_ms: TIMEOUT,
        state: TxnState::CompleteCommit,
        partitions: Default::default(),
        last_update_timestamp_ms: 0,
        start_timestamp_ms: 0,
        client_transaction_version: TransactionVersion::TV_0,
    };
    let mut c = TxnCoordinator::new(7, COORDINATOR_EPOCH, TxnConfig::default());
    c.replay(
        &records::encode_key("tx"),
        Some(&records::encode_value(&empty, 1)),
    )
    .unwrap();
    c.finish_loading(0);
    let params = InitProducerIdParams {
        producer_id: PID,
        producer_epoch: i16::MAX - 1,
        ..init_params("tx")
    };
    let out = c.init_producer_id(tok(1), params.clone(), PID + 7, 10);
    assert!(out.used_fresh_producer_id);
    let (persist, value) = the_persist(&out.effects);
    let value = value.unwrap();
    assert_eq!(
        (
            value.producer_id,
            value.producer_epoch,
            value.previous_producer_id
        ),
        (PID + 7, 0, PID)
    );
    let effects = c.persisted(persist, Ok(()), 10);
    assert_eq!(
        response_for(&effects, tok(1)),
        Some(&Response::InitProducerId(Ok((PID + 7, 0))))
    );
    // The producer never got the answer and retries with its old id and epoch.
    let out = c.init_producer_id(tok(2), params, PID + 8, 20);
    assert!(!out.used_fresh_producer_id);
    let (persist, _) = the_persist(&out.effects);
    let effects = c.persisted(persist, Ok(()), 20);
    assert_eq!(
        response_for(&effects, tok(2)),
        Some(&Response::InitProducerId(Ok((PID + 7, 0))))
    );
}

#[test]
fn kip360_recovery_with_the_current_epoch_bumps_and_a_retry_is_idempotent() {
    let mut c = coordinator(TxnConfig::default());
    init_ok(&mut c, "tx", PID, 0);
    let params = InitProducerIdParams {
        producer_id: PID,
        producer_epoch: 0,
        ..init_params("tx")
    };
    for (token, now) in [(1, 10), (2, 20)] {
        let out = c.init_producer_id(tok(token), params.clone(), PID + 1, now);
        let (persist, _) = the_persist(&out.effects);
        let effects = c.persisted(persist, Ok(()), now);
        assert_eq!(
            response_for(&effects, tok(token)),
            Some(&Response::InitProducerId(Ok((PID, 1)))),
            "attempt {token}"
        );
    }
}

#[test]
fn add_offsets_adds_the_groups_consumer_offsets_partition() {
    let mut c = coordinator(TxnConfig::default());
    let (pid, epoch) = init_ok(&mut c, "tx", PID, 0);
    let p = AddOffsetsParams {
        transactional_id: "tx".to_owned(),
        producer_id: pid,
        producer_epoch: epoch,
        offsets_partition: 17,
    };
    let effects = c.add_offsets(tok(1), p.clone(), 10);
    let (persist, value) = the_persist(&effects);
    assert_eq!(
        value.unwrap().partitions,
        [tp("__consumer_offsets", 17)].into()
    );
    let effects = c.persisted(persist, Ok(()), 10);
    assert_eq!(
        response_for(&effects, tok(1)),
        Some(&Response::AddOffsets(None))
    );
    // Adding it again needs no write.
    let effects = c.add_offsets(tok(2), p, 20);
    assert_eq!(
        effects,
        vec![Effect::Respond {
            token: tok(2),
            response: Response::AddOffsets(None)
        }]
    );
}

#[test]
fn partitions_already_in_the_transaction_are_answered_at_once_without_a_write() {
    let mut c = coordinator(TxnConfig::default());
    let (pid, epoch) = init_ok(&mut c, "tx", PID, 0);
    add_ok(&mut c, "tx", pid, epoch, &[tp("a", 0), tp("a", 1)], 10);
    let effects = c.add_partitions(tok(1), add_params("tx", pid, epoch, &[tp("a", 1)]), 20);
    assert_eq!(
        effects,
        vec![Effect::Respond {
            token: tok(1),
            response: Response::AddPartitions(vec![(tp("a", 1), None)])
        }]
    );
    // Adding more keeps the start time of the transaction.
    add_ok(&mut c, "tx", pid, epoch, &[tp("b", 0)], 30);
    assert_eq!(c.metadata("tx").unwrap().txn_start_timestamp, 10);
}
