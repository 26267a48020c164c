//! Transactions at the partition-log level: the last stable offset, markers, the aborted
//! transaction index (`.txnindex`) and their survival of close, crash, truncation,
//! replication and retention.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use common::{NOW, open};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use weir_broker::kafka_error::log_error_code;
use weir_broker::log::{
    AbortedTxn, AppendInfo, AppendOutcome, ControlType, Log, LogConfig, LogError, ProducerError,
    TxnMarker,
};
use weir_broker::types::{LeaderEpoch, Offset};

const P1: i64 = 1000;
const P2: i64 = 2000;
const P3: i64 = 3000;

/// A batch of `count` records from `pid`; `transactional` sets the attribute.
fn producer_batch(
    pid: i64,
    epoch: i16,
    first_seq: i32,
    count: usize,
    transactional: bool,
) -> Vec<u8> {
    keyed_batch(pid, epoch, first_seq, count, transactional, "k")
}

/// [`producer_batch`] with keys `<prefix>0`, `<prefix>1`, `<prefix>2`, `<prefix>0`, …
fn keyed_batch(
    pid: i64,
    epoch: i16,
    first_seq: i32,
    count: usize,
    transactional: bool,
    prefix: &str,
) -> Vec<u8> {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: first_seq + i as i32,
            timestamp: NOW,
            key: Some(Bytes::from(format!("{prefix}{}", i % 3))),
            value: Some(Bytes::from(format!("{pid}/{}", first_seq + i as i32))),
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
    buf.to_vec()
}

/// A transactional batch, appended; returns its info.
fn txn(log: &mut Log, pid: i64, first_seq: i32, count: usize) -> AppendInfo {
    match log
        .append_as_leader(
            &producer_batch(pid, 0, first_seq, count, true),
            LeaderEpoch(0),
            NOW,
        )
        .expect("transactional append")
    {
        AppendOutcome::Appended(info) => info,
        other => panic!("expected an append, got {other:?}"),
    }
}

fn marker(pid: i64, control: ControlType) -> TxnMarker {
    TxnMarker {
        producer_id: pid,
        producer_epoch: 0,
        coordinator_epoch: 0,
        control,
    }
}

fn end_txn(log: &mut Log, pid: i64, control: ControlType) -> Offset {
    log.append_marker(&marker(pid, control), LeaderEpoch(0), NOW)
        .expect("marker")
        .first_offset
}

/// Moves the high watermark to the log end, as a sole replica does after each append.
fn replicate(log: &mut Log) {
    let leo = log.log_end_offset();
    log.set_high_watermark(leo);
}

fn aborted(pid: i64, first: u64, last: u64, lso: u64) -> AbortedTxn {
    AbortedTxn {
        producer_id: pid,
        first_offset: Offset(first),
        last_offset: Offset(last),
        last_stable_offset: Offset(lso),
    }
}

fn all_aborted(log: &Log) -> Vec<AbortedTxn> {
    log.aborted_transactions(log.log_start_offset(), log.log_end_offset())
        .unwrap()
}

fn ongoing(log: &Log) -> Vec<(i64, Offset)> {
    log.producer_state().ongoing_transactions().collect()
}

fn txn_indexes(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txnindex"))
        .collect();
    found.sort();
    found
}

fn config(segment_bytes: &str) -> LogConfig {
    LogConfig::from_overrides([
        ("segment.bytes", segment_bytes),
        ("index.interval.bytes", "100"),
        ("retention.ms", "-1"),
    ])
    .unwrap()
}

/// P1: data 0..=1, P2: data 2..=3, P1 aborts at 4, P3: data 5, P2 commits at 6, P3 data 7,
/// P3 aborts at 8. Checks the LSO and the aborted list at every step.
fn interleaved(log: &mut Log) {
    assert_eq!(log.last_stable_offset(), Offset(0));
    txn(log, P1, 0, 2);
    replicate(log);
    assert_eq!(log.high_watermark(), Offset(2));
    assert_eq!(
        log.last_stable_offset(),
        Offset(0),
        "P1's transaction is open"
    );
    txn(log, P2, 0, 2);
    replicate(log);
    assert_eq!(log.last_stable_offset(), Offset(0));
    assert_eq!(end_txn(log, P1, ControlType::Abort), Offset(4));
    assert_eq!(
        log.last_stable_offset(),
        Offset(0),
        "the abort marker is not below the high watermark yet"
    );
    replicate(log);
    assert_eq!(log.last_stable_offset(), Offset(2), "P2 still open");
    assert_eq!(all_aborted(log), vec![aborted(P1, 0, 4, 2)]);
    txn(log, P3, 0, 1);
    replicate(log);
    assert_eq!(end_txn(log, P2, ControlType::Commit), Offset(6));
    replicate(log);
    assert_eq!(log.last_stable_offset(), Offset(5), "P3 open from 5");
    txn(log, P3, 1, 1);
    assert_eq!(end_txn(log, P3, ControlType::Abort), Offset(8));
    replicate(log);
    assert_eq!(log.last_stable_offset(), Offset(9));
    assert_eq!(
        all_aborted(log),
        vec![aborted(P1, 0, 4, 2), aborted(P3, 5, 8, 9)]
    );
    assert!(ongoing(log).is_empty());
}

#[test]
fn commit_abort_and_interleaved_producers_move_the_lso_and_the_aborted_list() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config("1048576"), false);
    interleaved(&mut log);
    // A fetch is told only of aborts overlapping its range.
    assert_eq!(
        log.aborted_transactions(Offset(5), Offset(6)).unwrap(),
        vec![aborted(P3, 5, 8, 9)]
    );
    assert_eq!(
        log.aborted_transactions(Offset(0), Offset(2)).unwrap(),
        vec![aborted(P1, 0, 4, 2)]
    );
    assert!(
        log.aborted_transactions(Offset(9), Offset(9))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn read_committed_reads_stop_at_the_lso() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config("1048576"), false);
    common::append(&mut log, &common::batch(&[common::Rec::new("plain", NOW)]));
    txn(&mut log, P1, 0, 2);
    replicate(&mut log);
    let lso = log.last_stable_offset();
    assert_eq!(lso, Offset(1));
    let slice = log.read(Offset(0), 1 << 20, Some(lso)).unwrap().unwrap();
    assert_eq!(slice.next_offset, Offset(1));
    assert!(log.read(Offset(1), 1 << 20, Some(lso)).unwrap().is_none());
}

#[test]
fn a_clean_close_and_reopen_keep_the_lso_the_aborted_list_and_open_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config("300"), false);
    interleaved(&mut log);
    txn(&mut log, P1, 2, 1); // P1 opens another transaction at 9
    replicate(&mut log);
    let (lso, list, open_txns) = (log.last_stable_offset(), all_aborted(&log), ongoing(&log));
    assert_eq!(lso, Offset(9));
    assert_eq!(open_txns, vec![(P1, Offset(9))]);
    assert!(log.segment_count() > 1, "markers spread over segments");
    let hw = log.high_watermark();
    log.close().unwrap();
    let mut log = open(dir.path(), config("300"), true);
    log.set_high_watermark(hw);
    assert_eq!(log.last_stable_offset(), lso);
    assert_eq!(all_aborted(&log), list);
    assert_eq!(ongoing(&log), open_txns);
    // The reopened state still refuses a non-transactional write from P1.
    let err = log
        .append_as_leader(&producer_batch(P1, 0, 3, 1, false), LeaderEpoch(0), NOW)
        .unwrap_err();
    assert!(matches!(
        err,
        LogError::Producer(ProducerError::InvalidTxnState {
            producer_id: P1,
            ..
        })
    ));
}

#[test]
fn a_crash_reopen_rebuilds_missing_transaction_indexes_from_the_markers() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config("300"), false);
    interleaved(&mut log);
    let hw = log.high_watermark();
    let list = all_aborted(&log);
    let indexes = txn_indexes(dir.path());
    assert!(!indexes.is_empty());
    drop(log); // no clean close
    for path in &indexes {
        fs::remove_file(path).unwrap();
    }
    let mut log = open(dir.path(), config("300"), false);
    log.set_high_watermark(hw);
    assert_eq!(all_aborted(&log), list);
    assert_eq!(txn_indexes(dir.path()), indexes);
    assert_eq!(log.last_stable_offset(), Offset(9));
}

#[test]
fn a_crash_that_tears_the_last_marker_reopens_its_transaction_and_drops_its_index_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config("1048576"), false);
    interleaved(&mut log);
    drop(log);
    let segment = dir.path().join("00000000000000000000.log");
    let len = fs::metadata(&segment).unwrap().len();
    // Tear the last batch (P3's abort marker at 8).
    fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let mut log = open(dir.path(), config("1048576"), false);
    assert_eq!(log.log_end_offset(), Offset(8));
    replicate(&mut log);
    assert_eq!(all_aborted(&log), vec![aborted(P1, 0, 4, 2)]);
    assert_eq!(ongoing(&log), vec![(P3, Offset(5))]);
    assert_eq!(log.last_stable_offset(), Offset(5));
}

#[test]
fn a_torn_transaction_index_is_repaired_on_a_clean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config("1048576"), false);
    interleaved(&mut log);
    let list = all_aborted(&log);
    log.close().unwrap();
    let index = dir.path().join("00000000000000000000.txnindex");
    let mut bytes = fs::read(&index).unwrap();
    assert_eq!(bytes.len(), 2 * 34);
    bytes.truncate(34 + 10);
    fs::write(&index, &bytes).unwrap();
    let log = open(dir.path(), config("1048576"), true);
    assert_eq!(all_aborted(&log), list);
    assert_eq!(fs::metadata(&index).unwrap().len(), 2 * 34);
}

#[test]
fn truncation_inside_a_transaction_keeps_it_open_and_before_it_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config("300"), false);
    interleaved(&mut log);
    // Cut P3's abort marker (8): P3's transaction from 5 is open again, its entry gone.
    log.truncate_to(Offset(8), NOW).unwrap();
    replicate(&mut log);
    assert_eq!(all_aborted(&log), vec![aborted(P1, 0, 4, 2)]);
    assert_eq!(ongoing(&log), vec![(P3, Offset(5))]);
    assert_eq!(log.last_stable_offset(), Offset(5));
    // Cut before P1's abort and P2's data: P1 is open from 0, P2's transaction is gone.
    log.truncate_to(Offset(2), NOW).unwrap();
    replicate(&mut log);
    assert!(all_aborted(&log).is_empty());
    assert!(txn_indexes(dir.path()).is_empty());
    assert_eq!(ongoing(&log), vec![(P1, Offset(0))]);
    assert_eq!(log.last_stable_offset(), Offset(0));
    // Cut before everything: no transaction left.
    log.truncate_to(Offset(0), NOW).unwrap();
    assert!(ongoing(&log).is_empty());
    assert_eq!(log.last_stable_offset(), Offset(0));
}

#[test]
fn restarting_the_log_empty_at_its_own_base_forgets_its_aborted_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config("1048576"), false);
    interleaved(&mut log);
    assert_eq!(txn_indexes(dir.path()).len(), 1);
    log.truncate_fully_and_start_at(Offset(0), NOW).unwrap();
    assert!(txn_indexes(dir.path()).is_empty());
    assert!(
        log.aborted_transactions(Offset(0), Offset(100))
            .unwrap()
            .is_empty()
    );
    assert!(ongoing(&log).is_empty());
}

#[test]
fn markers_with_a_stale_producer_or_coordinator_epoch_are_fenced_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config("1048576"), false);
    log.append_as_leader(&producer_batch(P1, 3, 0, 1, true), LeaderEpoch(0), NOW)
        .unwrap();
    let mut m = TxnMarker {
        producer_id: P1,
        producer_epoch: 3,
        coordinator_epoch: 5,
        control: ControlType::Commit,
    };
    log.append_marker(&m, LeaderEpoch(0), NOW).unwrap();
    let leo = log.log_end_offset();
    m.producer_epoch = 2;
    let stale_epoch = log.append_marker(&m, LeaderEpoch(0), NOW).unwrap_err();
    assert_eq!(log_error_code(&stale_epoch), 47); // INVALID_PRODUCER_EPOCH
    m.producer_epoch = 3;
    m.coordinator_epoch = 4;
    let zombie = log.append_marker(&m, LeaderEpoch(0), NOW).unwrap_err();
    assert_eq!(log_error_code(&zombie), 52); // TRANSACTION_COORDINATOR_FENCED
    assert_eq!(log.log_end_offset(), leo, "refused markers write nothing");
    // A marker with the bumped epoch (KIP-890) is accepted and moves the producer's epoch.
    m.producer_epoch = 4;
    m.coordinator_epoch = 5;
    log.append_marker(&m, LeaderEpoch(0), NOW).unwrap();
    assert_eq!(log.producer_state().get(P1).unwrap().epoch, 4);
    assert_eq!(log.producer_state().get(P1).unwrap().coordinator_epoch, 5);
}

#[test]
fn a_non_transactional_batch_during_an_open_transaction_is_invalid_txn_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config("1048576"), false);
    txn(&mut log, P1, 0, 2);
    let leo = log.log_end_offset();
    let err = log
        .append_as_leader(&producer_batch(P1, 0, 2, 1, false), LeaderEpoch(0), NOW)
        .unwrap_err();
    assert_eq!(log_error_code(&err), 48); // INVALID_TXN_STATE
    assert_eq!(log.log_end_offset(), leo);
    end_txn(&mut log, P1, ControlType::Commit);
    log.append_as_leader(&producer_batch(P1, 0, 2, 1, false), LeaderEpoch(0), NOW)
        .expect("allowed once the transaction is over");
}

#[test]
fn coordinator_appends_without_sequences_open_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config("1048576"), false);
    let no_seq = producer_batch(P1, 0, -1, 1, true);
    log.append_as_coordinator(&no_seq, LeaderEpoch(0), NOW)
        .unwrap();
    log.append_as_coordinator(&no_seq, LeaderEpoch(0), NOW)
        .unwrap();
    assert_eq!(log.log_end_offset(), Offset(2));
    assert_eq!(ongoing(&log), vec![(P1, Offset(0))]);
    let stale = producer_batch(P1, -1, -1, 1, true);
    assert!(
        log.append_as_coordinator(&stale, LeaderEpoch(0), NOW)
            .is_err()
    );
}

#[test]
fn a_follower_replicating_markers_has_the_leaders_lso_and_aborted_list() {
    let dir = tempfile::tempdir().unwrap();
    let mut leader = open(&dir.path().join("leader"), config("300"), false);
    interleaved(&mut leader);
    txn(&mut leader, P1, 2, 1);
    replicate(&mut leader);
    let mut follower = open(&dir.path().join("follower"), config("300"), false);
    let bytes = common::read_all(&leader, Offset(0), 1 << 20);
    follower.append_as_follower(&bytes, NOW).unwrap();
    replicate(&mut follower);
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(follower.last_stable_offset(), leader.last_stable_offset());
    assert_eq!(all_aborted(&follower), all_aborted(&leader));
    assert_eq!(ongoing(&follower), vec![(P1, Offset(9))]);
    // Leadership moves: the follower can now write P1's marker, with the index entry.
    let at = follower
        .append_marker(&marker(P1, ControlType::Abort), LeaderEpoch(1), NOW)
        .unwrap()
        .first_offset;
    replicate(&mut follower);
    assert_eq!(
        all_aborted(&follower).last(),
        Some(&aborted(P1, 9, at.0, at.0 + 1))
    );
}

#[test]
fn retention_deletes_a_segments_transaction_index_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config("300"), false);
    interleaved(&mut log);
    log.roll(NOW).unwrap();
    replicate(&mut log);
    let before = txn_indexes(dir.path());
    assert!(!before.is_empty());
    log.delete_records(log.log_end_offset()).unwrap();
    log.apply_retention(NOW).unwrap();
    assert!(
        txn_indexes(dir.path()).is_empty(),
        "{:?}",
        txn_indexes(dir.path())
    );
    assert!(all_aborted(&log).is_empty());
}

fn compacted() -> LogConfig {
    LogConfig::from_overrides([
        ("segment.bytes", "400"),
        ("index.interval.bytes", "128"),
        ("cleanup.policy", "compact"),
        ("min.cleanable.dirty.ratio", "0"),
        ("retention.ms", "-1"),
    ])
    .unwrap()
}

/// `(base offset, producer id, transactional, control, records)` of every batch readable
/// from the log start.
fn batches(log: &Log) -> Vec<(i64, i64, bool, bool, i32)> {
    let bytes = common::read_all(log, log.log_start_offset(), 1 << 20);
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = weir_broker::log::batch::BatchHeader::parse(&bytes[pos..]).unwrap();
        out.push((
            h.base_offset,
            h.producer_id,
            h.is_transactional(),
            h.is_control(),
            h.records_count,
        ));
        pos += h.total_size();
    }
    out
}

#[test]
fn the_cleaner_removes_aborted_records_keeps_markers_and_the_index_and_stops_at_the_lso() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compacted(), false);
    // Keys k0..k2 written over and over without transactions, an aborted transaction (P1) and
    // a committed one (P2) on the same keys, then more plain overwrites.
    let plain = |log: &mut Log, seq: i32| {
        log.append_as_leader(&producer_batch(P3, 0, seq, 3, false), LeaderEpoch(0), NOW)
            .unwrap();
    };
    for round in 0..4 {
        plain(&mut log, round * 3);
    }
    // The aborted transaction writes keys nothing else writes: only the abort removes them.
    let aborted_at = log
        .append_as_leader(
            &keyed_batch(P1, 0, 0, 3, true, "only-aborted-"),
            LeaderEpoch(0),
            NOW,
        )
        .unwrap()
        .info()
        .first_offset;
    end_txn(&mut log, P1, ControlType::Abort);
    let committed_at = txn(&mut log, P2, 0, 3).first_offset;
    end_txn(&mut log, P2, ControlType::Commit);
    for round in 4..8 {
        plain(&mut log, round * 3);
    }
    // P1 opens another transaction: nothing from its first offset on may be cleaned.
    let open_at = txn(&mut log, P1, 3, 3).first_offset;
    plain(&mut log, 24);
    log.roll(NOW).unwrap();
    replicate(&mut log);
    assert_eq!(log.last_stable_offset(), open_at);
    let before = batches(&log);
    let aborted_before = all_aborted(&log);
    assert_eq!(aborted_before.len(), 1);
    let cleanable = log.cleanable(None, NOW).unwrap();
    assert!(
        cleanable.first_uncleanable <= open_at,
        "{:?} must stop at the LSO {open_at}",
        cleanable.first_uncleanable
    );
    let outcome = log
        .clean(None, NOW, &weir_broker::log::CleanerOptions::default())
        .unwrap();
    assert!(outcome.cleaned);
    assert!(
        outcome.stats.records_removed > 0,
        "overwrites were compacted"
    );
    let after = batches(&log);
    let markers = |b: &[(i64, i64, bool, bool, i32)]| -> Vec<_> {
        b.iter().copied().filter(|b| b.3).collect()
    };
    assert_eq!(markers(&after), markers(&before), "markers kept");
    let aborted_records: i32 = after
        .iter()
        .filter(|b| b.0 == aborted_at.as_i64())
        .map(|b| b.4)
        .sum();
    assert_eq!(
        aborted_records, 0,
        "the aborted transaction's records are gone"
    );
    let committed_records: i32 = after
        .iter()
        .filter(|b| b.0 == committed_at.as_i64())
        .map(|b| b.4)
        .sum();
    assert_eq!(
        committed_records, 0,
        "the committed transaction's records were overwritten later and compacted away"
    );
    let open_txn = |b: &[(i64, i64, bool, bool, i32)]| -> Vec<_> {
        b.iter()
            .copied()
            .filter(|b| b.0 >= open_at.as_i64())
            .collect()
    };
    assert_eq!(
        open_txn(&after),
        open_txn(&before),
        "nothing at or past the LSO changed"
    );
    assert_eq!(
        all_aborted(&log),
        aborted_before,
        "the index moved with the cleaned segment"
    );
    // And it survives a reopen (the cleaned segment's index is a file like any other).
    let hw = log.high_watermark();
    log.close().unwrap();
    let mut log = open(dir.path(), compacted(), true);
    log.set_high_watermark(hw);
    assert_eq!(all_aborted(&log), aborted_before);
    assert_eq!(log.last_stable_offset(), open_at);
}
