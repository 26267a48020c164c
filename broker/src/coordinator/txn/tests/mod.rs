//! Drives [`TxnCoordinator`] through its public API with fake persist and marker outcomes.

mod cycles;
mod errors;
mod loading;

use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::*;

const COORDINATOR_EPOCH: i32 = 3;
const TIMEOUT: i32 = 60_000;
const PID: i64 = 1000;

fn config_tv0() -> TxnConfig {
    TxnConfig {
        transaction_version: TransactionVersion::TV_0,
        ..TxnConfig::default()
    }
}

/// A loaded coordinator with nothing in it.
fn coordinator(config: TxnConfig) -> TxnCoordinator {
    let mut c = TxnCoordinator::new(7, COORDINATOR_EPOCH, config);
    assert!(c.finish_loading(0).is_empty());
    c
}

fn tok(n: u64) -> RequestToken {
    RequestToken(n)
}

fn tp(topic: &str, partition: i32) -> (String, i32) {
    (topic.to_owned(), partition)
}

fn init_params(id: &str) -> InitProducerIdParams {
    InitProducerIdParams {
        transactional_id: id.to_owned(),
        transaction_timeout_ms: TIMEOUT,
        producer_id: -1,
        producer_epoch: -1,
    }
}

fn add_params(id: &str, pid: i64, epoch: i16, partitions: &[(String, i32)]) -> AddPartitionsParams {
    AddPartitionsParams {
        transactional_id: id.to_owned(),
        producer_id: pid,
        producer_epoch: epoch,
        partitions: partitions.to_vec(),
        verify_only: false,
    }
}

fn end_params(id: &str, pid: i64, epoch: i16, commit: bool, epoch_bump: bool) -> EndTxnParams {
    EndTxnParams {
        transactional_id: id.to_owned(),
        producer_id: pid,
        producer_epoch: epoch,
        commit,
        epoch_bump,
    }
}

/// The single `Persist` among `effects`, with its record decoded.
fn the_persist(effects: &[Effect]) -> (PersistId, Option<TxnLogValue>) {
    let persists: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Persist { id, key, value, .. } => Some((*id, key.clone(), value.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(persists.len(), 1, "expected one Persist in {effects:?}");
    let (id, key, value): (PersistId, Bytes, Option<Bytes>) = persists.into_iter().next().unwrap();
    assert!(records::decode_key(&key).unwrap().is_some());
    (id, value.map(|v| records::decode_value(&v).unwrap()))
}

fn response_for(effects: &[Effect], token: RequestToken) -> Option<&Response> {
    let mut found = effects.iter().filter_map(|e| match e {
        Effect::Respond { token: t, response } if *t == token => Some(response),
        _ => None,
    });
    let first = found.next();
    assert!(found.next().is_none(), "token {token:?} answered twice");
    first
}

fn has_persist(effects: &[Effect]) -> bool {
    effects.iter().any(|e| matches!(e, Effect::Persist { .. }))
}

/// InitProducerId for a new id, written successfully: (pid, epoch).
fn init_ok(c: &mut TxnCoordinator, id: &str, fresh: i64, now: i64) -> (i64, i16) {
    let out = c.init_producer_id(tok(900), init_params(id), fresh, now);
    let (pid, _) = the_persist(&out.effects);
    let effects = c.persisted(pid, Ok(()), now);
    match response_for(&effects, tok(900)) {
        Some(Response::InitProducerId(Ok(answer))) => *answer,
        other => panic!("InitProducerId answered {other:?}"),
    }
}

/// AddPartitionsToTxn, written successfully.
fn add_ok(
    c: &mut TxnCoordinator,
    id: &str,
    pid: i64,
    epoch: i16,
    partitions: &[(String, i32)],
    now: i64,
) {
    let effects = c.add_partitions(tok(901), add_params(id, pid, epoch, partitions), now);
    let (persist, _) = the_persist(&effects);
    let effects = c.persisted(persist, Ok(()), now);
    let expected =
        Response::AddPartitions(partitions.iter().map(|tp| (tp.clone(), None)).collect());
    assert_eq!(response_for(&effects, tok(901)), Some(&expected));
}

/// EndTxn through Prepare*, answered: returns the answer and the marker effect.
fn end_prepared(
    c: &mut TxnCoordinator,
    p: EndTxnParams,
    now: i64,
) -> (Result<(i64, i16), ResponseError>, Effect) {
    let out = c.end_txn(tok(902), p, None, now);
    let (persist, _) = the_persist(&out.effects);
    let effects = c.persisted(persist, Ok(()), now);
    let answer = match response_for(&effects, tok(902)) {
        Some(Response::EndTxn(answer)) => *answer,
        other => panic!("EndTxn answered {other:?}"),
    };
    let markers = effects
        .iter()
        .find(|e| matches!(e, Effect::WriteMarkers { .. }))
        .cloned()
        .expect("markers");
    (answer, markers)
}

/// Markers landed and the completion written.
fn complete(c: &mut TxnCoordinator, markers: &Effect, now: i64) {
    let Effect::WriteMarkers {
        transactional_id,
        producer_id,
        producer_epoch,
        ..
    } = markers
    else {
        panic!("not markers: {markers:?}");
    };
    let effects = c.markers_written(transactional_id, *producer_id, *producer_epoch, now);
    let (persist, _) = the_persist(&effects);
    assert!(c.persisted(persist, Ok(()), now).is_empty());
}
