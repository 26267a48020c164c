//! Idempotent producers at the log level: duplicates, refusals, and producer state that
//! survives a clean close, a crash (snapshot + replay) and truncation.

mod common;

use std::fs;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use common::{NOW, Rec, batch, decode, open, read_all};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use weir_broker::log::producer_state::ProducerEntry;
use weir_broker::log::{
    AppendInfo, AppendOutcome, Log, LogConfig, LogError, OpenOptions, ProducerError, SegmentCache,
};
use weir_broker::types::{LeaderEpoch, Offset};

const PID: i64 = 4000;

/// A batch of `count` records from producer `pid` in `epoch`, sequences from `first_seq`.
fn idempotent(pid: i64, epoch: i16, first_seq: i32, count: usize) -> Vec<u8> {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: first_seq.wrapping_add(i as i32),
            timestamp: NOW + i as i64,
            key: None,
            value: Some(Bytes::from(format!(
                "{pid}/{epoch}/{}",
                first_seq + i as i32
            ))),
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

fn leader_append(log: &mut Log, bytes: &[u8]) -> Result<AppendOutcome, LogError> {
    log.append_as_leader(bytes, LeaderEpoch(0), NOW)
}

fn appended(log: &mut Log, bytes: &[u8]) -> AppendInfo {
    match leader_append(log, bytes).expect("append") {
        AppendOutcome::Appended(info) => info,
        other => panic!("expected an append, got {other:?}"),
    }
}

fn small_segments() -> LogConfig {
    LogConfig::from_overrides([
        ("segment.bytes", "600"),
        ("index.interval.bytes", "100"),
        ("retention.ms", "-1"),
    ])
    .unwrap()
}

fn snapshot_files(dir: &Path) -> Vec<u64> {
    let mut offsets: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".snapshot")?.parse().ok()
        })
        .collect();
    offsets.sort_unstable();
    offsets
}

fn entry(log: &Log, pid: i64) -> ProducerEntry {
    log.producer_state()
        .get(pid)
        .expect("producer known")
        .clone()
}

/// `(first seq, last seq, first offset, last offset)` of each retained batch.
fn retained(entry: &ProducerEntry) -> Vec<(i32, i32, u64, u64)> {
    entry
        .batches()
        .map(|b| {
            (
                b.first_seq(),
                b.last_seq,
                b.first_offset().0,
                b.last_offset.0,
            )
        })
        .collect()
}

#[test]
fn a_retried_batch_writes_nothing_and_answers_with_the_original_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    let mut originals = Vec::new();
    for i in 0..6 {
        // Plain batches in between, so offsets and sequences differ.
        appended(&mut log, &batch(&[Rec::new(format!("plain {i}"), NOW)]));
        let bytes = idempotent(PID, 0, i * 3, 3);
        originals.push((bytes.clone(), appended(&mut log, &bytes)));
    }
    let leo = log.log_end_offset();
    let size = log.size_bytes();
    let contents = read_all(&log, Offset::ZERO, 1 << 20);

    for (bytes, original) in &originals[1..] {
        let outcome = leader_append(&mut log, bytes).unwrap();
        let AppendOutcome::Duplicate(info) = outcome else {
            panic!("a retry is a duplicate: {outcome:?}");
        };
        assert_eq!(info.first_offset, original.first_offset);
        assert_eq!(info.last_offset, original.last_offset);
        assert_eq!(info.max_timestamp, original.max_timestamp);
        assert_eq!((info.batches, info.bytes), (0, 0));
    }
    assert_eq!(log.log_end_offset(), leo, "nothing appended");
    assert_eq!(log.size_bytes(), size);
    assert_eq!(read_all(&log, Offset::ZERO, 1 << 20), contents);
    // The oldest of six is no longer remembered: Kafka calls it out of order.
    assert!(matches!(
        leader_append(&mut log, &originals[0].0),
        Err(LogError::Producer(ProducerError::OutOfOrderSequence { .. }))
    ));
    assert_eq!(log.log_end_offset(), leo);
}

#[test]
fn duplicates_on_a_log_append_time_topic_carry_the_original_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::from_overrides([("message.timestamp.type", "LogAppendTime")]).unwrap();
    let mut log = open(dir.path(), config, false);
    let bytes = idempotent(PID, 0, 0, 2);
    let first = log.append_as_leader(&bytes, LeaderEpoch(0), NOW).unwrap();
    let retry = log
        .append_as_leader(&bytes, LeaderEpoch(0), NOW + 5000)
        .unwrap();
    assert!(retry.is_duplicate());
    assert_eq!(retry.info().log_append_time, Some(NOW));
    assert_eq!(retry.info().first_offset, first.info().first_offset);
}

#[test]
fn fenced_epochs_and_sequence_gaps_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    appended(&mut log, &idempotent(PID, 2, 0, 2));
    let size = log.size_bytes();
    let refused = |log: &mut Log, bytes: Vec<u8>| -> ProducerError {
        match leader_append(log, &bytes) {
            Err(LogError::Producer(e)) => e,
            other => panic!("expected a producer error, got {other:?}"),
        }
    };
    assert!(matches!(
        refused(&mut log, idempotent(PID, 1, 2, 1)),
        ProducerError::InvalidProducerEpoch {
            epoch: 1,
            current_epoch: 2,
            ..
        }
    ));
    assert!(matches!(
        refused(&mut log, idempotent(PID, 2, 3, 1)),
        ProducerError::OutOfOrderSequence {
            first_seq: 3,
            last_seq: 1,
            ..
        }
    ));
    assert!(matches!(
        refused(&mut log, idempotent(PID, 2, 1, 2)),
        ProducerError::OutOfOrderSequence {
            first_seq: 1,
            last_seq: 1,
            ..
        }
    ));
    assert!(matches!(
        refused(&mut log, idempotent(PID, 3, 1, 1)),
        ProducerError::NewEpochNotAtZero {
            epoch: 3,
            first_seq: 1,
            ..
        }
    ));
    assert_eq!(log.size_bytes(), size, "refusals write nothing");
    assert_eq!(log.log_end_offset(), Offset(2));
    appended(&mut log, &idempotent(PID, 2, 2, 1));
    appended(&mut log, &idempotent(PID, 3, 0, 1));
    assert_eq!(entry(&log, PID).epoch, 3);
}

#[test]
fn producer_state_survives_a_clean_close_from_its_snapshot_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    for i in 0..4 {
        appended(&mut log, &idempotent(PID, 1, i * 2, 2));
        appended(&mut log, &idempotent(PID + 1, 0, i, 1));
    }
    let before = log.producer_state().clone();
    let leo = log.log_end_offset();
    log.close().unwrap();
    assert!(
        snapshot_files(dir.path()).contains(&leo.0),
        "close snapshots the log end"
    );

    let mut log = open(dir.path(), small_segments(), true);
    let after = log.producer_state();
    assert_eq!(after.end_offset(), leo);
    assert_eq!(after.producer_ids().collect::<Vec<_>>(), vec![PID, PID + 1]);
    for pid in [PID, PID + 1] {
        let (was, is) = (before.get(pid).unwrap(), after.get(pid).unwrap());
        assert_eq!(
            (is.epoch, is.last_seq(), is.last_timestamp),
            (was.epoch, was.last_seq(), was.last_timestamp)
        );
        // Kafka's snapshot keeps each producer's last batch.
        assert_eq!(retained(is), retained(was)[retained(was).len() - 1..]);
    }
    let retry = leader_append(&mut log, &idempotent(PID, 1, 6, 2)).unwrap();
    assert!(retry.is_duplicate(), "the last batch is still recognised");
    assert!(matches!(
        leader_append(&mut log, &idempotent(PID, 1, 9, 1)),
        Err(LogError::Producer(ProducerError::OutOfOrderSequence {
            last_seq: 7,
            ..
        }))
    ));
    assert!(matches!(
        leader_append(&mut log, &idempotent(PID, 0, 0, 1)),
        Err(LogError::Producer(ProducerError::InvalidProducerEpoch {
            current_epoch: 1,
            ..
        }))
    ));
    appended(&mut log, &idempotent(PID, 1, 8, 1));
}

/// Appends 24 batches from two producers over several small segments; returns the state.
fn history(log: &mut Log) -> Vec<(Offset, weir_broker::log::ProducerState)> {
    let mut states = vec![(log.log_end_offset(), log.producer_state().clone())];
    for i in 0..12 {
        appended(log, &idempotent(PID, 0, i * 2, 2));
        appended(log, &batch(&[Rec::new(format!("plain {i}"), NOW)]));
        appended(log, &idempotent(PID + 1, (i / 5) as i16, (i % 5) * 3, 3));
        states.push((log.log_end_offset(), log.producer_state().clone()));
    }
    states
}

#[test]
fn a_crash_rebuilds_the_state_from_the_last_snapshot_and_the_log_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    let states = history(&mut log);
    assert!(log.segment_count() > 3, "rolled");
    let last_roll = log.segment_base_offsets().last().unwrap().0;
    assert_eq!(
        snapshot_files(dir.path()).last(),
        Some(&last_roll),
        "a snapshot per roll"
    );
    // A crash: no close, so no snapshot at the log end.
    drop(log);

    let log = open(dir.path(), small_segments(), false);
    let (_, before) = states.last().unwrap();
    for pid in [PID, PID + 1] {
        let (was, is) = (before.get(pid).unwrap(), entry(&log, pid));
        assert_eq!((is.epoch, is.last_seq()), (was.epoch, was.last_seq()));
        // Everything after the snapshot is replayed, the snapshot gives the batch before.
        let was = retained(was);
        let is = retained(&is);
        let after_snapshot = was.iter().filter(|b| b.2 >= last_roll).count();
        let expected = &was[was.len() - was.len().min(after_snapshot + 1)..];
        assert_eq!(
            is, expected,
            "the batches after the snapshot and the one before it"
        );
    }
    drop(log);

    // Without any snapshot the whole log is replayed and the state is exactly as before.
    for offset in snapshot_files(dir.path()) {
        fs::remove_file(dir.path().join(format!("{offset:020}.snapshot"))).unwrap();
    }
    let log = open(dir.path(), small_segments(), false);
    assert_eq!(log.producer_state(), before);
}

#[test]
fn a_torn_tail_is_forgotten_by_the_producer_state_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    history(&mut log);
    let last = appended(&mut log, &idempotent(PID, 0, 24, 2));
    let active = dir.path().join(format!(
        "{:020}.log",
        log.segment_base_offsets().last().unwrap().0
    ));
    log.close().unwrap();
    assert!(snapshot_files(dir.path()).contains(&(last.last_offset.0 + 1)));
    let len = fs::metadata(&active).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(len - 7)
        .unwrap();

    let mut log = open(dir.path(), small_segments(), false);
    assert_eq!(log.log_end_offset(), last.first_offset);
    assert!(
        snapshot_files(dir.path())
            .iter()
            .all(|&s| s <= last.first_offset.0),
        "the snapshot past the new log end is gone"
    );
    assert_eq!(entry(&log, PID).last_seq(), 23);
    // The producer's retry is appended again, not mistaken for a duplicate.
    let again = appended(&mut log, &idempotent(PID, 0, 24, 2));
    assert_eq!(again.first_offset, last.first_offset);
}

#[test]
fn truncation_rebuilds_the_state_of_what_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    let states = history(&mut log);
    log.close().unwrap();
    let mut log = open(dir.path(), small_segments(), true);
    // Cut back to every earlier step of the history, newest first.
    for (cut, expected) in states.iter().rev().skip(1) {
        log.truncate_to(*cut, NOW).unwrap();
        assert_eq!(log.log_end_offset(), *cut);
        assert!(snapshot_files(dir.path()).iter().all(|&s| s <= cut.0));
        let state = log.producer_state();
        assert_eq!(state.end_offset(), *cut);
        assert_eq!(
            state.producer_ids().collect::<Vec<_>>(),
            expected.producer_ids().collect::<Vec<_>>(),
            "cut at {cut}"
        );
        for pid in expected.producer_ids() {
            let (was, is) = (expected.get(pid).unwrap(), state.get(pid).unwrap());
            assert_eq!(
                (is.epoch, is.last_seq()),
                (was.epoch, was.last_seq()),
                "cut at {cut}"
            );
            assert!(retained(was).ends_with(&retained(is)), "cut at {cut}");
            assert!(!retained(is).is_empty());
        }
    }
    assert!(log.producer_state().is_empty());
    // The producer's batches come back as a new leader would send them.
    appended(&mut log, &idempotent(PID, 0, 0, 2));
    assert!(
        leader_append(&mut log, &idempotent(PID, 0, 0, 2))
            .unwrap()
            .is_duplicate()
    );
}

#[test]
fn truncating_past_an_epoch_bump_restores_the_older_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    for i in 0..5 {
        appended(&mut log, &idempotent(PID, 0, i * 2, 2));
    }
    let cut = log.log_end_offset();
    appended(&mut log, &idempotent(PID, 1, 0, 2));
    assert_eq!(entry(&log, PID).epoch, 1);
    log.truncate_to(cut, NOW).unwrap();
    let restored = entry(&log, PID);
    assert_eq!((restored.epoch, restored.last_seq()), (0, 9));
    assert!(
        leader_append(&mut log, &idempotent(PID, 0, 8, 2))
            .unwrap()
            .is_duplicate()
    );
}

#[test]
fn follower_appends_rebuild_the_leaders_state_without_checks() {
    let dir = tempfile::tempdir().unwrap();
    let mut leader = open(&dir.path().join("leader"), small_segments(), false);
    history(&mut leader);
    let bytes = read_all(&leader, Offset::ZERO, 1 << 20);
    let mut follower = open(&dir.path().join("follower"), small_segments(), false);
    let mut pos = 0;
    // Replicate in a few fetch-sized pieces of whole batches.
    while pos < bytes.len() {
        let mut end = pos;
        while end < bytes.len() && end - pos < 700 {
            let h = weir_broker::log::batch::BatchHeader::parse(&bytes[end..]).unwrap();
            end += h.total_size();
        }
        follower.append_as_follower(&bytes[pos..end], NOW).unwrap();
        pos = end;
    }
    assert_eq!(follower.producer_state(), leader.producer_state());
    assert_eq!(
        decode(&read_all(&follower, Offset::ZERO, 1 << 20)).len(),
        72
    );
}

#[test]
fn retention_deletes_old_snapshots_but_keeps_the_newest_two() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    history(&mut log);
    for i in 0..20 {
        appended(&mut log, &batch(&[Rec::new(format!("more {i}"), NOW)]));
    }
    let bases: Vec<u64> = log.segment_base_offsets().iter().map(|o| o.0).collect();
    assert!(bases.len() > 6);
    assert_eq!(
        snapshot_files(dir.path()),
        bases[1..].to_vec(),
        "one per roll"
    );
    log.flush().unwrap(); // the recovery point reaches the log end
    log.set_high_watermark(log.log_end_offset());
    log.apply_retention(NOW).unwrap();
    let kept = snapshot_files(dir.path());
    assert_eq!(
        kept,
        bases[bases.len() - 2..].to_vec(),
        "the last two segments' snapshots"
    );

    // Moving the log start past everything but the active segment keeps the newest two.
    let active = *log.segment_base_offsets().last().unwrap();
    log.delete_records(active).unwrap();
    assert_eq!(snapshot_files(dir.path()), kept);
    // A later roll and retention pass leave only snapshots at or above the log start.
    log.roll(NOW).unwrap();
    log.apply_retention(NOW).unwrap();
    assert!(snapshot_files(dir.path()).iter().all(|&s| s >= active.0));
}

#[test]
fn idle_producers_expire_in_retention_and_are_not_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    log.set_producer_id_expiration_ms(60_000);
    appended(&mut log, &idempotent(PID, 0, 0, 1));
    log.apply_retention(NOW + 59_000).unwrap();
    assert!(log.producer_state().get(PID).is_some());
    log.close().unwrap();

    // Loading skips producers idle for the default day.
    let options = OpenOptions {
        clean_shutdown: true,
        now_ms: NOW + 86_400_001,
        ..OpenOptions::default()
    };
    let cache = std::sync::Arc::new(SegmentCache::new(4));
    let reopened = Log::open(dir.path(), small_segments(), options, cache).unwrap();
    assert!(reopened.producer_state().is_empty());
    drop(reopened);

    let mut log = open(dir.path(), small_segments(), true);
    log.set_producer_id_expiration_ms(60_000);
    assert!(log.producer_state().get(PID).is_some());
    log.apply_retention(NOW + 60_001).unwrap();
    assert!(log.producer_state().is_empty());
    // Unknown again, the producer may continue at any sequence.
    appended(&mut log, &idempotent(PID, 0, 50, 1));
}

#[test]
fn a_cleanly_shut_down_directory_without_snapshots_is_taken_to_have_no_producers() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    for i in 0..20 {
        appended(&mut log, &batch(&[Rec::new(format!("plain {i}"), NOW)]));
    }
    let bases: Vec<u64> = log.segment_base_offsets().iter().map(|o| o.0).collect();
    let leo = log.log_end_offset();
    log.close().unwrap();
    for offset in snapshot_files(dir.path()) {
        fs::remove_file(dir.path().join(format!("{offset:020}.snapshot"))).unwrap();
    }
    let log = open(dir.path(), small_segments(), true);
    assert!(log.producer_state().is_empty());
    assert_eq!(
        snapshot_files(dir.path()),
        vec![bases[bases.len() - 2], bases[bases.len() - 1], leo.0],
        "as Kafka: the last two segments and the log end"
    );
}
