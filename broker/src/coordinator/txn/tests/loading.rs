//! Loading, unloading, DescribeTransactions and ListTransactions.

use super::*;
use crate::coordinator::codec::CodecError;

/// Every record a coordinator persisted, in order, as (key, value) for replay.
fn written(effects: &[Effect]) -> Vec<(Bytes, Option<Bytes>)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Persist { key, value, .. } => Some((key.clone(), value.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn replaying_a_prepared_commit_resumes_it_with_markers_at_the_new_coordinator_epoch() {
    let mut c = coordinator(config_tv0());
    let mut log = Vec::new();
    let out = c.init_producer_id(tok(1), init_params("tx"), PID, 0);
    log.extend(written(&out.effects));
    c.persisted(the_persist(&out.effects).0, Ok(()), 0);
    let effects = c.add_partitions(
        tok(2),
        add_params("tx", PID, 0, &[tp("a", 0), tp("b", 3)]),
        10,
    );
    log.extend(written(&effects));
    c.persisted(the_persist(&effects).0, Ok(()), 10);
    let out = c.end_txn(tok(3), end_params("tx", PID, 0, true, false), None, 20);
    log.extend(written(&out.effects));
    c.persisted(the_persist(&out.effects).0, Ok(()), 20);
    // The leader dies with the markers out.
    let unloaded = c.unload();
    assert!(unloaded.is_empty(), "nobody was waiting: {unloaded:?}");

    let mut next = TxnCoordinator::new(7, COORDINATOR_EPOCH + 1, config_tv0());
    for (key, value) in &log {
        next.replay(key, value.as_deref()).unwrap();
    }
    let probe = next.add_partitions(tok(4), add_params("tx", PID, 0, &[tp("a", 0)]), 25);
    assert_eq!(
        response_for(&probe, tok(4)),
        Some(&Response::AddPartitions(vec![(
            tp("a", 0),
            Some(ResponseError::CoordinatorLoadInProgress)
        )]))
    );
    let effects = next.finish_loading(30);
    assert_eq!(
        effects,
        vec![Effect::WriteMarkers {
            transactional_id: "tx".to_owned(),
            producer_id: PID,
            producer_epoch: 0,
            coordinator_epoch: COORDINATOR_EPOCH + 1,
            commit: true,
            partitions: vec![tp("a", 0), tp("b", 3)],
        }]
    );
    assert_eq!(next.open_transactions(), 1);
    complete(&mut next, &effects[0], 40);
    assert_eq!(next.metadata("tx").unwrap().state, TxnState::CompleteCommit);
    assert_eq!(next.counters(), (1, 0));
}

#[test]
fn replaying_a_prepared_abort_resumes_an_abort() {
    let value = TxnLogValue {
        producer_id: PID,
        previous_producer_id: PID,
        next_producer_id: -1,
        producer_epoch: 4,
        transaction_timeout_ms: TIMEOUT,
        state: TxnState::PrepareAbort,
        partitions: [tp("a", 0)].into(),
        last_update_timestamp_ms: 5,
        start_timestamp_ms: 1,
        client_transaction_version: TransactionVersion::TV_2,
    };
    let mut c = TxnCoordinator::new(7, 9, TxnConfig::default());
    c.replay(
        &records::encode_key("tx"),
        Some(&records::encode_value(&value, 1)),
    )
    .unwrap();
    let effects = c.finish_loading(10);
    assert!(matches!(
        effects.as_slice(),
        [Effect::WriteMarkers {
            commit: false,
            producer_epoch: 4,
            coordinator_epoch: 9,
            ..
        }]
    ));
}

#[test]
fn replay_applies_the_last_record_per_id_and_tombstones_remove_ids() {
    let mut c = TxnCoordinator::new(7, 1, TxnConfig::default());
    let record = |state, epoch| TxnLogValue {
        producer_id: PID,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch: epoch,
        transaction_timeout_ms: TIMEOUT,
        state,
        partitions: Default::default(),
        last_update_timestamp_ms: 0,
        start_timestamp_ms: -1,
        client_transaction_version: TransactionVersion::TV_0,
    };
    let key = records::encode_key("a");
    c.replay(
        &key,
        Some(&records::encode_value(&record(TxnState::Empty, 0), 0)),
    )
    .unwrap();
    c.replay(
        &key,
        Some(&records::encode_value(&record(TxnState::Empty, 1), 1)),
    )
    .unwrap();
    let gone = records::encode_key("gone");
    c.replay(
        &gone,
        Some(&records::encode_value(&record(TxnState::Empty, 0), 0)),
    )
    .unwrap();
    c.replay(&gone, None).unwrap();
    // A key version Kafka does not define is skipped.
    c.replay(&[0, 5, 0, 1, b'x'], Some(b"whatever")).unwrap();
    assert_eq!(
        c.replay(&key, Some(&[0, 0, 1])),
        Err(RecordError::Codec(CodecError::Truncated {
            what: "transaction log value",
            at: 2,
            needed: 8
        }))
    );
    assert!(c.finish_loading(0).is_empty());
    assert_eq!(c.metadata("a").unwrap().producer_epoch, 1);
    assert_eq!(
        c.metadata("a").unwrap().last_producer_epoch,
        -1,
        "not stored in the log"
    );
    assert!(c.metadata("gone").is_none());
    assert!(c.metadata("x").is_none());
}

#[test]
fn requests_while_loading_are_answered_load_in_progress() {
    let mut c = TxnCoordinator::new(7, 1, TxnConfig::default());
    let out = c.init_producer_id(tok(1), init_params("tx"), PID, 0);
    assert_eq!(
        out.effects,
        vec![Effect::Respond {
            token: tok(1),
            response: Response::InitProducerId(Err(ResponseError::CoordinatorLoadInProgress))
        }]
    );
    assert!(!out.used_fresh_producer_id);
    let out = c.end_txn(tok(2), end_params("tx", PID, 0, true, false), Some(PID), 0);
    assert!(matches!(
        response_for(&out.effects, tok(2)),
        Some(Response::EndTxn(Err(
            ResponseError::CoordinatorLoadInProgress
        )))
    ));
    assert_eq!(
        c.describe("tx", 0),
        Err(ResponseError::CoordinatorLoadInProgress)
    );
    assert_eq!(
        c.list(&[], &[], -1, 0),
        Err(ResponseError::CoordinatorLoadInProgress)
    );
    assert!(c.tick(i64::MAX).is_empty());
    assert_eq!(c.next_deadline(), None);
}

#[test]
fn unload_answers_every_waiting_request_not_coordinator() {
    let mut c = coordinator(config_tv0());
    let (pid, epoch) = init_ok(&mut c, "a", PID, 0);
    init_ok(&mut c, "b", PID + 1, 0);
    c.add_partitions(tok(1), add_params("a", pid, epoch, &[tp("t", 0)]), 10);
    c.init_producer_id(tok(2), init_params("b"), PID + 2, 10);
    c.init_producer_id(tok(3), init_params("c"), PID + 3, 10);
    let effects = c.unload();
    assert_eq!(effects.len(), 3);
    assert_eq!(
        response_for(&effects, tok(1)),
        Some(&Response::AddPartitions(vec![(
            tp("t", 0),
            Some(ResponseError::NotCoordinator)
        )]))
    );
    for token in [tok(2), tok(3)] {
        assert_eq!(
            response_for(&effects, token),
            Some(&Response::InitProducerId(Err(
                ResponseError::NotCoordinator
            )))
        );
    }
}

#[test]
fn describe_shows_kafkas_fields_and_unknown_ids_are_not_found() {
    let mut c = coordinator(TxnConfig::default());
    let (pid, epoch) = init_ok(&mut c, "tx", PID, 0);
    add_ok(
        &mut c,
        "tx",
        pid,
        epoch,
        &[tp("b", 1), tp("a", 2), tp("a", 0)],
        50,
    );
    assert_eq!(
        c.describe("tx", 60),
        Ok(TxnDescription {
            transactional_id: "tx".to_owned(),
            state: "Ongoing",
            transaction_timeout_ms: TIMEOUT,
            transaction_start_time_ms: 50,
            producer_id: pid,
            producer_epoch: epoch,
            topics: vec![("a".to_owned(), vec![0, 2]), ("b".to_owned(), vec![1])],
        })
    );
    assert_eq!(
        c.describe("nobody", 60),
        Err(ResponseError::TransactionalIdNotFound)
    );
    assert_eq!(c.describe("", 60), Err(ResponseError::InvalidRequest));
    init_ok(&mut c, "idle", PID + 1, 0);
    let idle = c.describe("idle", 60).unwrap();
    assert_eq!((idle.state, idle.transaction_start_time_ms), ("Empty", -1));
    assert!(idle.topics.is_empty());
}

#[test]
fn list_filters_by_state_producer_id_and_duration_and_reports_unknown_states() {
    let mut c = coordinator(TxnConfig::default());
    let (pid, epoch) = init_ok(&mut c, "old", PID, 0);
    add_ok(&mut c, "old", pid, epoch, &[tp("a", 0)], 1_000);
    let (pid2, epoch2) = init_ok(&mut c, "new", PID + 1, 0);
    add_ok(&mut c, "new", pid2, epoch2, &[tp("a", 0)], 9_000);
    init_ok(&mut c, "idle", PID + 2, 0);
    let names = |listed: ListedTxns| -> Vec<String> {
        listed
            .transactions
            .into_iter()
            .map(|t| t.transactional_id)
            .collect()
    };

    let all = c.list(&[], &[], -1, 10_000).unwrap();
    assert_eq!(all.transactions.len(), 3);
    assert!(all.transactions.contains(&ListedTxn {
        transactional_id: "idle".to_owned(),
        producer_id: PID + 2,
        state: "Empty"
    }));
    let ongoing = c.list(&["Ongoing".to_owned()], &[], -1, 10_000).unwrap();
    assert_eq!(names(ongoing), ["new", "old"]);
    assert_eq!(names(c.list(&[], &[PID + 1], -1, 10_000).unwrap()), ["new"]);
    // Running longer than 5 s: "old" (9 s) but not "new" (1 s); "idle" has no start time and
    // passes Kafka's test.
    assert_eq!(
        names(c.list(&[], &[], 5_000, 10_000).unwrap()),
        ["idle", "old"]
    );
    let unknown = c
        .list(&["Ongoing".to_owned(), "Bogus".to_owned()], &[], -1, 10_000)
        .unwrap();
    assert_eq!(unknown.unknown_state_filters, ["Bogus"]);
    assert_eq!(unknown.transactions.len(), 2);
    let only_bogus = c.list(&["Bogus".to_owned()], &[], -1, 10_000).unwrap();
    assert!(
        only_bogus.transactions.is_empty(),
        "an unknown state matches nothing"
    );
}
