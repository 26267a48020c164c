//! The log cleaner (`cleanup.policy=compact`): what a pass keeps and drops, when a log is
//! cleaned at all, compressed and producer batches, crash safety of the segment swap, the
//! data directory's cleaner checkpoint, and a model-based property test.
//!
//! Batches are built with kafka-protocol's encoder and read back with its decoder, an
//! implementation independent of the broker's.

mod common;
#[path = "cleaner/model.rs"]
mod model;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use common::{NOW, batches_in, open, read_all};
use weir_broker::log::batch::BatchHeader;
use weir_broker::log::{
    CleanOutcome, CleanerOptions, Log, LogConfig, LogError, LogManager, ProducerError,
};
use weir_broker::types::{LeaderEpoch, Offset, TopicPartition};

/// One record as a producer sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Put {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    ts: i64,
}

fn kv(key: &str, value: &str, ts: i64) -> Put {
    Put {
        key: Some(key.into()),
        value: Some(value.into()),
        ts,
    }
}

fn tombstone(key: &str, ts: i64) -> Put {
    Put {
        key: Some(key.into()),
        value: None,
        ts,
    }
}

/// One producer batch of `puts`; `producer` is `(id, epoch, first sequence)`.
fn encode(puts: &[Put], codec: Compression, producer: Option<(i64, i16, i32)>) -> Vec<u8> {
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = puts
        .iter()
        .enumerate()
        .map(|(i, p)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // offset - sequence is constant, so the encoder keeps one batch.
            sequence: if pid < 0 {
                i as i32 - 1
            } else {
                seq + i as i32
            },
            timestamp: p.ts,
            key: p.key.clone().map(Bytes::from),
            value: p.value.clone().map(Bytes::from),
            headers: [(
                kafka_protocol::protocol::StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"v")),
            )]
            .into_iter()
            .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: codec,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).unwrap();
    buf.to_vec()
}

fn put(log: &mut Log, puts: &[Put]) -> Offset {
    put_with(log, puts, Compression::None)
}

fn put_with(log: &mut Log, puts: &[Put], codec: Compression) -> Offset {
    log.append_as_leader(&encode(puts, codec, None), LeaderEpoch(0), NOW)
        .expect("append")
        .info()
        .first_offset
}

fn compact(segment_bytes: u64, extra: &[(&str, &str)]) -> LogConfig {
    let segment_bytes = segment_bytes.to_string();
    let mut overrides = vec![
        ("segment.bytes", segment_bytes.as_str()),
        ("index.interval.bytes", "128"),
        ("cleanup.policy", "compact"),
        ("min.cleanable.dirty.ratio", "0"),
        ("retention.ms", "-1"),
    ];
    overrides.extend_from_slice(extra);
    LogConfig::from_overrides(overrides).unwrap()
}

/// Cleans `log` from `checkpoint` at `now`, with the high watermark at the log end.
fn clean(log: &mut Log, checkpoint: Option<Offset>, now: i64) -> CleanOutcome {
    log.set_high_watermark(log.log_end_offset());
    log.clean(checkpoint, now, &CleanerOptions::default())
        .expect("clean")
}

/// `(offset, key, value)` of every record readable from the log start; checks offsets
/// strictly increase.
type Stored = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

fn stored(log: &Log) -> Vec<Stored> {
    let mut bytes = Bytes::from(read_all(log, log.log_start_offset(), 1000));
    let out: Vec<Stored> = RecordBatchDecoder::decode_all(&mut bytes)
        .expect("kafka-protocol decodes the cleaned log")
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| {
            (
                r.offset,
                r.key.map(|k| k.to_vec()),
                r.value.map(|v| v.to_vec()),
            )
        })
        .collect();
    assert!(
        out.windows(2).all(|w| w[0].0 < w[1].0),
        "offsets strictly increase"
    );
    out
}

/// Key -> latest value, tombstones counting as absent.
fn live<'a>(
    records: impl IntoIterator<Item = (i64, &'a Option<Vec<u8>>, &'a Option<Vec<u8>>)>,
) -> BTreeMap<Vec<u8>, (i64, Vec<u8>)> {
    let mut latest: BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> = BTreeMap::new();
    for (offset, key, value) in records {
        if let Some(key) = key {
            latest.insert(key.clone(), (offset, value.clone()));
        }
    }
    latest
        .into_iter()
        .filter_map(|(k, (o, v))| Some((k, (o, v?))))
        .collect()
}

fn live_in_log(log: &Log) -> BTreeMap<Vec<u8>, (i64, Vec<u8>)> {
    let records = stored(log);
    live(records.iter().map(|(o, k, v)| (*o, k, v)))
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".log"))
        .collect();
    names.sort();
    names
}

fn active_bytes(log: &Log) -> Vec<u8> {
    let base = *log.segment_base_offsets().last().unwrap();
    fs::read(log.dir().join(format!("{:020}.log", base.0))).unwrap()
}

/// Keys `k0..k{keys}` overwritten round after round, one record per batch.
fn overwrite_rounds(log: &mut Log, keys: usize, rounds: usize, ts: i64) -> Vec<Put> {
    let mut puts = Vec::new();
    for round in 0..rounds {
        for k in 0..keys {
            let p = kv(&format!("k{k}"), &format!("v{round}-{k}"), ts);
            put(log, std::slice::from_ref(&p));
            puts.push(p);
        }
    }
    puts
}

#[test]
fn only_the_latest_record_per_key_remains_with_offsets_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact(1024, &[]), false);
    let appended = overwrite_rounds(&mut log, 10, 30, NOW);
    put(&mut log, &[kv("k0", "in the active segment", NOW)]);
    let segments_before = log.segment_count();
    assert!(segments_before > 10);
    let active_before = active_bytes(&log);
    let expected = live_in_log(&log);

    let outcome = clean(&mut log, None, NOW);
    assert!(outcome.cleaned);
    let active_base = *log.segment_base_offsets().last().unwrap();
    assert_eq!(
        outcome.next_dirty, active_base,
        "cleaned up to the active segment"
    );
    assert_eq!(
        active_bytes(&log),
        active_before,
        "the active segment is untouched"
    );
    assert_eq!(
        log.segment_count(),
        segments_before,
        "full segments are not merged (groups are sized by what they held before cleaning)"
    );
    assert_eq!(live_in_log(&log), expected);

    let records = stored(&log);
    let sealed: Vec<&Stored> = records
        .iter()
        .filter(|r| r.0 < active_base.as_i64())
        .collect();
    assert_eq!(
        sealed.len(),
        10,
        "one record per key below the active segment"
    );
    for (offset, key, value) in &sealed {
        let original = &appended[*offset as usize];
        assert_eq!(
            (key, value),
            (&original.key, &original.value),
            "offset {offset} still holds what was appended there"
        );
    }
    let stats = outcome.stats;
    assert_eq!(
        stats.records_read, active_base.0,
        "every sealed record was read"
    );
    assert_eq!(stats.records_removed, active_base.0 - 10);
    assert_eq!(stats.segments_cleaned, segments_before - 1);
    assert!(stats.bytes_written < stats.bytes_read);
    assert_eq!(log.log_end_offset(), Offset(301), "the log end never moves");

    // Reopening, cleanly or after a crash, reads the same.
    let before = stored(&log);
    log.close().unwrap();
    for clean_shutdown in [true, false] {
        let reopened = open(dir.path(), compact(1024, &[]), clean_shutdown);
        assert_eq!(
            stored(&reopened),
            before,
            "clean shutdown: {clean_shutdown}"
        );
    }
}

#[test]
fn a_second_pass_cleans_the_new_dirty_section_against_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact(1024, &[]), false);
    overwrite_rounds(&mut log, 10, 20, NOW);
    log.roll(NOW).unwrap();
    let first = clean(&mut log, None, NOW);
    // New values for half the keys: the clean section's old values for them must go.
    for k in 0..5 {
        put(&mut log, &[kv(&format!("k{k}"), "newer", NOW)]);
    }
    log.roll(NOW).unwrap();
    let expected = live_in_log(&log);
    let segments = log.segment_count();
    let second = clean(&mut log, Some(first.next_dirty), NOW);
    assert!(
        log.segment_count() < segments - 2,
        "segments the first pass shrank are merged"
    );
    assert_eq!(second.cleanable.first_dirty, first.next_dirty);
    assert!(second.cleaned);
    assert_eq!(second.stats.records_removed, 5);
    assert_eq!(live_in_log(&log), expected);
    assert_eq!(stored(&log).len(), 10);
}

#[test]
fn keyless_records_are_dropped() {
    // Compacted topics refuse keyless records; these got in while the topic only deleted.
    let dir = tempfile::tempdir().unwrap();
    let mut delete_only = compact(4096, &[]);
    delete_only.cleanup_policy.compact = false;
    let mut log = open(dir.path(), delete_only, false);
    let keyless = Put {
        key: None,
        value: Some(b"no key".to_vec()),
        ts: NOW,
    };
    put(&mut log, &[keyless.clone(), kv("a", "1", NOW), keyless]);
    log.set_config(compact(4096, &[]));
    put(&mut log, &[kv("b", "2", NOW)]);
    log.roll(NOW).unwrap();
    let outcome = clean(&mut log, None, NOW);
    assert_eq!(outcome.stats.records_removed, 2);
    let records = stored(&log);
    assert_eq!(
        records.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1, 3],
        "the keyed records keep their offsets"
    );
}

/// Values and tombstones for `t0..t4` plus unique filler keys at `NOW`, then more filler at
/// `NOW + 10 s`, `+ 20 s` and `+ 30 s`, each phase in its own segments and cleaned after it.
/// Returns the tombstones left after each pass.
fn tombstones_left_per_pass(delete_retention_ms: &str) -> Vec<usize> {
    let dir = tempfile::tempdir().unwrap();
    let config = compact(1024, &[("delete.retention.ms", delete_retention_ms)]);
    let mut log = open(dir.path(), config, false);
    let mut checkpoint = None;
    let mut left = Vec::new();
    for phase in 0..4 {
        let ts = NOW + 10_000 * phase;
        if phase == 0 {
            for t in 0..5 {
                put(&mut log, &[kv(&format!("t{t}"), "doomed", ts)]);
                put(&mut log, &[tombstone(&format!("t{t}"), ts)]);
            }
        }
        for f in 0..40 {
            put(&mut log, &[kv(&format!("filler-{phase}-{f}"), "x", ts)]);
        }
        log.roll(ts).unwrap();
        let outcome = clean(&mut log, checkpoint, ts);
        assert!(outcome.cleaned);
        checkpoint = Some(outcome.next_dirty);
        let records = stored(&log);
        let tombstones = records
            .iter()
            .filter(|(_, k, v)| v.is_none() && k.as_ref().is_some_and(|k| k[0] == b't'))
            .count();
        left.push(tombstones);
        assert!(
            records
                .iter()
                .all(|(_, _, v)| v.as_deref() != Some(b"doomed")),
            "values behind a tombstone go in the first pass"
        );
        assert_eq!(records.len(), 40 * (phase as usize + 1) + tombstones);
    }
    left
}

#[test]
fn tombstones_stay_until_their_segment_is_older_than_the_delete_horizon() {
    // Pass p's horizon is the last clean segment's time less delete.retention.ms: none for the
    // first pass (everything is dirty), then NOW + 10 s * (p - 1) - retention. The tombstones'
    // segment (time NOW) drops them once that horizon is at or past NOW.
    assert_eq!(tombstones_left_per_pass("5000"), vec![5, 5, 0, 0]);
    assert_eq!(tombstones_left_per_pass("10000"), vec![5, 5, 0, 0]);
    assert_eq!(tombstones_left_per_pass("15000"), vec![5, 5, 5, 0]);
    assert_eq!(tombstones_left_per_pass("86400000"), vec![5, 5, 5, 5]);
}

#[test]
fn a_log_below_the_dirty_ratio_is_not_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let config = compact(1024, &[("min.cleanable.dirty.ratio", "0.5")]);
    let mut log = open(dir.path(), config, false);
    for k in 0..60 {
        put(&mut log, &[kv(&format!("k{k}"), "first", NOW)]);
    }
    log.roll(NOW).unwrap();
    let first = clean(&mut log, None, NOW);
    assert!(first.cleaned, "a fresh log is all dirty");
    let checkpoint = Some(first.next_dirty);

    // A few overwrites: dirty bytes are a small share of the log.
    for k in 0..10 {
        put(&mut log, &[kv(&format!("k{k}"), "second", NOW)]);
    }
    log.roll(NOW).unwrap();
    let files = segment_files(dir.path());
    let below = clean(&mut log, checkpoint, NOW);
    assert!(below.cleanable.dirty_ratio() < 0.5 && below.cleanable.dirty_ratio() > 0.0);
    assert!(!below.cleaned);
    assert_eq!(below.next_dirty, first.next_dirty, "the checkpoint stays");
    assert_eq!(segment_files(dir.path()), files, "nothing was rewritten");

    for _ in 0..2 {
        for k in 0..60 {
            put(&mut log, &[kv(&format!("k{k}"), "third", NOW)]);
        }
    }
    log.roll(NOW).unwrap();
    let above = clean(&mut log, checkpoint, NOW);
    assert!(above.cleanable.dirty_ratio() > 0.5);
    assert!(above.cleaned);
    let records = stored(&log);
    assert_eq!(records.len(), 60);
    assert!(
        records
            .iter()
            .all(|(_, _, v)| v.as_deref() == Some(b"third"))
    );
}

#[test]
fn min_compaction_lag_keeps_young_segments_dirty() {
    let dir = tempfile::tempdir().unwrap();
    let config = compact(1024, &[("min.compaction.lag.ms", "60000")]);
    let mut log = open(dir.path(), config, false);
    overwrite_rounds(&mut log, 5, 10, NOW - 120_000);
    log.roll(NOW).unwrap();
    let young_base = log.log_end_offset();
    overwrite_rounds(&mut log, 5, 10, NOW - 10_000);
    log.roll(NOW).unwrap();
    let outcome = clean(&mut log, None, NOW);
    assert!(outcome.cleaned);
    assert_eq!(outcome.cleanable.first_uncleanable, young_base);
    assert_eq!(outcome.next_dirty, young_base);
    let records = stored(&log);
    let old = records.iter().filter(|r| r.0 < young_base.as_i64()).count();
    let young = records.len() - old;
    assert_eq!(old, 5, "the old segments were compacted");
    assert_eq!(young, 50, "the young ones were not");

    // An hour later they are old enough.
    let later = clean(&mut log, Some(outcome.next_dirty), NOW + 3_600_000);
    assert!(later.cleaned);
    assert_eq!(stored(&log).len(), 5);
}

#[test]
fn max_compaction_lag_forces_a_pass_whatever_the_ratio() {
    let dir = tempfile::tempdir().unwrap();
    // A ratio of 1 is never exceeded: only the max lag can start a pass.
    let config = compact(
        1024,
        &[
            ("min.cleanable.dirty.ratio", "1"),
            ("max.compaction.lag.ms", "60000"),
        ],
    );
    let mut log = open(dir.path(), config, false);
    overwrite_rounds(&mut log, 5, 10, NOW - 10_000);
    log.roll(NOW).unwrap();
    let early = clean(&mut log, None, NOW);
    assert_eq!(early.cleanable.compaction_delay_ms, 0);
    assert!(!early.cleaned);
    let late = clean(&mut log, None, NOW + 60_000);
    assert_eq!(late.cleanable.compaction_delay_ms, 10_000);
    assert!(late.cleaned);
    assert_eq!(stored(&log).len(), 5);
}

#[test]
fn nothing_at_or_above_the_high_watermark_is_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact(1024, &[]), false);
    overwrite_rounds(&mut log, 5, 40, NOW);
    log.roll(NOW).unwrap();
    let bases = log.segment_base_offsets();
    let hw = Offset(bases[3].0 + 1);
    log.set_high_watermark(hw);
    let outcome = log.clean(None, NOW, &CleanerOptions::default()).unwrap();
    assert_eq!(
        outcome.cleanable.first_uncleanable, bases[3],
        "rounded down to a segment"
    );
    let records = stored(&log);
    assert!(records.iter().filter(|r| r.0 >= bases[3].as_i64()).count() > 100);
}

#[test]
fn compressed_batches_are_cleaned_and_recompressed_with_their_codec() {
    for (codec, id) in [
        (Compression::Gzip, 1),
        (Compression::Snappy, 2),
        (Compression::Lz4, 3),
        (Compression::Zstd, 4),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), compact(4096, &[]), false);
        let mut appended = Vec::new();
        // Batch i writes keys k(i)..k(i+4) mod 8: later batches supersede some of each.
        for i in 0..40 {
            let puts: Vec<Put> = (0..5)
                .map(|j| kv(&format!("k{}", (i + j) % 8), &format!("{i}-{j}"), NOW + i))
                .collect();
            put_with(&mut log, &puts, codec);
            appended.extend(puts);
        }
        log.roll(NOW).unwrap();
        let expected = live(
            appended
                .iter()
                .enumerate()
                .map(|(o, p)| (o as i64, &p.key, &p.value)),
        );
        let outcome = clean(&mut log, None, NOW);
        assert!(outcome.stats.records_removed > 0, "{codec:?}");
        assert_eq!(live_in_log(&log), expected, "{codec:?}");
        let bases = log.segment_base_offsets();
        let mut partial = 0;
        for base in &bases[..bases.len() - 1] {
            for (_, h) in batches_in(&dir.path().join(format!("{:020}.log", base.0))) {
                if h.records_count > 0 {
                    assert_eq!(h.attributes & 7, id, "{codec:?}: the batch's own codec");
                }
                assert_eq!(h.last_offset_delta, 4, "{codec:?}: offset range kept");
                if h.records_count > 0 && h.records_count < 5 {
                    partial += 1;
                }
            }
        }
        assert!(partial > 0, "{codec:?}: some batches kept some records");
    }
}

#[test]
fn a_batch_that_keeps_every_record_is_copied_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact(1024, &[]), false);
    let unique = put_with(
        &mut log,
        &[kv("u1", "one", NOW), kv("u2", "two", NOW)],
        Compression::Gzip,
    );
    let before = log
        .read(unique, 1, None)
        .unwrap()
        .unwrap()
        .read_to_vec()
        .unwrap();
    overwrite_rounds(&mut log, 5, 20, NOW);
    log.roll(NOW).unwrap();
    clean(&mut log, None, NOW);
    let after = log
        .read(unique, 1, None)
        .unwrap()
        .unwrap()
        .read_to_vec()
        .unwrap();
    assert_eq!(after, before);
}

#[test]
fn an_idempotent_producers_last_batch_survives_empty_and_keeps_its_state() {
    const PID: i64 = 7_000;
    const OTHER: i64 = 7_001;
    let dir = tempfile::tempdir().unwrap();
    let config = compact(1024, &[]);
    let mut log = open(dir.path(), config.clone(), false);
    let append = |log: &mut Log, bytes: &[u8]| {
        log.append_as_leader(bytes, LeaderEpoch(0), NOW)
            .map(|o| o.info().first_offset)
    };
    let a = [kv("a", "1", NOW), kv("b", "1", NOW)];
    // OTHER's first batch is superseded and not its last: it goes entirely.
    let other_first = append(&mut log, &encode(&a, Compression::Lz4, Some((OTHER, 0, 0)))).unwrap();
    let other_last = append(&mut log, &encode(&a, Compression::Lz4, Some((OTHER, 0, 2)))).unwrap();
    let last = append(&mut log, &encode(&a, Compression::Zstd, Some((PID, 3, 10)))).unwrap();
    overwrite_rounds(&mut log, 3, 20, NOW);
    put(&mut log, &[kv("a", "2", NOW), kv("b", "2", NOW)]);
    log.roll(NOW).unwrap();
    clean(&mut log, None, NOW);

    let headers: Vec<BatchHeader> = log
        .segment_base_offsets()
        .iter()
        .flat_map(|base| batches_in(&dir.path().join(format!("{:020}.log", base.0))))
        .map(|(_, h)| h)
        .collect();
    let at = |offset: Offset| {
        headers
            .iter()
            .find(|h| h.base_offset == offset.as_i64())
            .copied()
    };
    assert_eq!(at(other_first), None);
    for (offset, pid, epoch, seq) in [(other_last, OTHER, 0, 2), (last, PID, 3, 10)] {
        let h = at(offset).expect("the producer's last batch is kept");
        assert_eq!(h.records_count, 0);
        assert_eq!(
            (
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                h.last_offset_delta
            ),
            (pid, epoch, seq, 1)
        );
        assert_eq!(h.attributes & 7, 0, "an empty batch is uncompressed");
    }
    assert!(stored(&log).iter().all(|(o, _, _)| *o > last.as_i64()));

    // A crash with no snapshot: the state is replayed from the cleaned log.
    let leo = log.log_end_offset();
    drop(log);
    for entry in fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "snapshot") {
            fs::remove_file(path).unwrap();
        }
    }
    let mut log = open(dir.path(), config, false);
    assert_eq!(log.log_end_offset(), leo);
    let state = log
        .producer_state()
        .get(PID)
        .expect("producer kept")
        .clone();
    assert_eq!((state.epoch, state.last_seq()), (3, 11));
    assert_eq!(
        state.batches().last().map(|b| b.last_offset),
        Some(last + 1)
    );
    let gap = append(&mut log, &encode(&a, Compression::None, Some((PID, 3, 13))));
    assert!(matches!(
        gap,
        Err(LogError::Producer(ProducerError::OutOfOrderSequence { .. }))
    ));
    let pid_last =
        append(&mut log, &encode(&a, Compression::None, Some((PID, 3, 12)))).expect("in sequence");

    // Once OTHER writes again, its empty batch no longer carries its state and goes.
    append(
        &mut log,
        &encode(&a, Compression::None, Some((OTHER, 0, 4))),
    )
    .unwrap();
    overwrite_rounds(&mut log, 3, 10, NOW);
    log.roll(NOW).unwrap();
    clean(&mut log, None, NOW);
    let remaining: Vec<i64> = log
        .segment_base_offsets()
        .iter()
        .flat_map(|base| batches_in(&dir.path().join(format!("{:020}.log", base.0))))
        .map(|(_, h)| h.base_offset)
        .collect();
    assert!(!remaining.contains(&other_last.as_i64()));
    assert!(
        remaining.contains(&pid_last.as_i64()) && !remaining.contains(&last.as_i64()),
        "PID's new last batch stays, its old one goes"
    );
}

#[test]
fn readers_holding_a_slice_keep_reading_after_the_swap() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact(1024, &[]), false);
    overwrite_rounds(&mut log, 4, 40, NOW);
    log.roll(NOW).unwrap();
    let slice = log.read(Offset::ZERO, 4096, None).unwrap().unwrap();
    let before = slice.read_to_vec().unwrap();
    let outcome = clean(&mut log, None, NOW);
    assert!(outcome.stats.segments_cleaned > 0);
    // The cleaned segment took the file name; the slice still reads the replaced file.
    assert_eq!(slice.read_to_vec().unwrap(), before);
    // New reads see the cleaned segment.
    assert_eq!(stored(&log).len(), 4);
}

/// How a crash during the swap left the directory. See `cleaner::swap`'s table.
#[derive(Clone, Copy, Debug)]
enum Crash {
    /// Output written, nothing renamed.
    Written,
    /// The indexes renamed to `.swap`, the `.log` not yet.
    IndexesSwapped,
    /// All renamed to `.swap`.
    Swapped,
    /// Also the first replaced segment deleted.
    FirstDeleted,
    /// All replaced segments deleted.
    AllDeleted,
    /// The indexes renamed to their final names, the `.log` still `.swap`.
    IndexesFinal,
}

#[test]
fn a_crash_at_each_step_of_the_swap_reopens_consistently() {
    let stem = |dir: &Path, base: Offset, ext: &str| dir.join(format!("{:020}.{ext}", base.0));
    for crash in [
        Crash::Written,
        Crash::IndexesSwapped,
        Crash::Swapped,
        Crash::FirstDeleted,
        Crash::AllDeleted,
        Crash::IndexesFinal,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let config = compact(2048, &[]);
        let mut log = open(d, config.clone(), false);
        for round in 0..12 {
            overwrite_rounds(&mut log, 6, 1, NOW + round);
            // Small segments, so that the group merges several.
            log.roll(NOW).unwrap();
        }
        log.set_high_watermark(log.log_end_offset());
        let expected = live_in_log(&log);
        let segments = log.segment_count();
        let cleanable = log.cleanable(None, NOW).unwrap();
        let mut task = log
            .start_cleaning(&cleanable, NOW, &CleanerOptions::default())
            .unwrap();
        let group = task.prepare_next().unwrap().expect("a group");
        let (base, sources) = (group.base_offset(), group.source_base_offsets());
        assert!(sources.len() > 2);
        // The process dies here: the group's files stay as they are.
        std::mem::forget(group);
        drop((task, log));
        // Renames the group's files from one suffix to another ("" is the final name).
        let rename = |from: &str, to: &str, log_too: bool| {
            for ext in ["index", "timeindex", "log"] {
                if ext == "log" && !log_too {
                    continue;
                }
                let name = |suffix: &str| stem(d, base, &format!("{ext}{suffix}"));
                fs::rename(name(from), name(to)).unwrap();
            }
        };
        let delete = |bases: &[Offset]| {
            for &b in bases {
                for ext in ["log", "index", "timeindex"] {
                    fs::remove_file(stem(d, b, ext)).unwrap();
                }
            }
        };
        match crash {
            Crash::Written => {}
            Crash::IndexesSwapped => rename(".cleaned", ".swap", false),
            Crash::Swapped => rename(".cleaned", ".swap", true),
            Crash::FirstDeleted => {
                rename(".cleaned", ".swap", true);
                delete(&sources[..1]);
            }
            Crash::AllDeleted => {
                rename(".cleaned", ".swap", true);
                delete(&sources);
            }
            Crash::IndexesFinal => {
                rename(".cleaned", ".swap", true);
                delete(&sources);
                rename(".swap", "", false);
            }
        }

        let log = open(d, config, false);
        assert_eq!(live_in_log(&log), expected, "{crash:?}");
        let replaced = !matches!(crash, Crash::Written | Crash::IndexesSwapped);
        assert_eq!(
            log.segment_count(),
            if replaced {
                segments - sources.len() + 1
            } else {
                segments
            },
            "{crash:?}"
        );
        let leftovers: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".swap") || n.ends_with(".cleaned"))
            .collect();
        assert!(leftovers.is_empty(), "{crash:?}: {leftovers:?}");
        // The rebuilt indexes serve lookups: every offset reads from its own batch.
        for (offset, _, _) in stored(&log) {
            let slice = log.read(Offset(offset as u64), 1, None).unwrap().unwrap();
            assert!(slice.first_offset.as_i64() <= offset && slice.next_offset.as_i64() > offset);
        }
    }
}

#[test]
fn the_manager_cleans_compacted_logs_and_keeps_their_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let compacted = TopicPartition::new("table", 0);
    let deleting = TopicPartition::new("events", 0);
    let config_for = |tp: &TopicPartition| {
        if tp.topic == "table" {
            compact(1024, &[])
        } else {
            LogConfig::from_overrides([("segment.bytes", "1024")]).unwrap()
        }
    };
    let mut manager = LogManager::open(dir.path(), 16, config_for).unwrap();
    for tp in [&compacted, &deleting] {
        let shared = manager.get_or_create(tp, config_for(tp)).unwrap();
        let mut log = shared.write().unwrap();
        overwrite_rounds(&mut log, 5, 20, NOW);
        log.roll(NOW).unwrap();
        let leo = log.log_end_offset();
        log.set_high_watermark(leo);
    }
    let stats = manager.clean(NOW).unwrap();
    assert_eq!((stats.logs_cleaned, stats.logs_failed), (1, 0));
    assert_eq!(stats.records_removed, 95);
    let checkpoint = manager.cleaner_checkpoint(&compacted).unwrap();
    assert_eq!(checkpoint, Offset(100));
    assert_eq!(manager.cleaner_checkpoint(&deleting), None);
    assert_eq!(
        fs::read_to_string(dir.path().join("cleaner-offset-checkpoint")).unwrap(),
        "0\n1\ntable 0 100\n"
    );
    let events = manager.get(&deleting).unwrap();
    assert_eq!(
        stored(&events.read().unwrap()).len(),
        100,
        "delete policy: untouched"
    );

    // Nothing new: the next pass finds nothing to do.
    assert_eq!(manager.clean(NOW).unwrap().logs_cleaned, 0);
    manager
        .truncate_cleaner_checkpoint(&compacted, Offset(40))
        .unwrap();
    assert_eq!(manager.cleaner_checkpoint(&compacted), Some(Offset(40)));
    manager
        .truncate_cleaner_checkpoint(&compacted, Offset(90))
        .unwrap();
    assert_eq!(manager.cleaner_checkpoint(&compacted), Some(Offset(40)));
    drop(events);
    manager.shutdown().unwrap();

    // Reloaded at open; deleting the partition drops it.
    let mut manager = LogManager::open(dir.path(), 16, config_for).unwrap();
    assert_eq!(manager.cleaner_checkpoint(&compacted), Some(Offset(40)));
    manager.delete(&compacted).unwrap();
    assert_eq!(manager.cleaner_checkpoint(&compacted), None);
    assert_eq!(
        fs::read_to_string(dir.path().join("cleaner-offset-checkpoint")).unwrap(),
        "0\n0\n"
    );
}

#[test]
fn compact_delete_logs_get_retention_first_and_a_checkpoint_below_the_start_resets() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("both", 0);
    let config = compact(
        1024,
        &[
            ("cleanup.policy", "compact,delete"),
            ("retention.ms", "60000"),
        ],
    );
    let mut manager = LogManager::open(dir.path(), 16, |_| LogConfig::default()).unwrap();
    let shared = manager.get_or_create(&tp, config).unwrap();
    let append_rounds = |ts: i64| {
        let mut log = shared.write().unwrap();
        overwrite_rounds(&mut log, 5, 20, ts);
        log.roll(ts).unwrap();
        let leo = log.log_end_offset();
        log.set_high_watermark(leo);
    };
    append_rounds(NOW - 120_000);
    assert_eq!(manager.clean(NOW - 110_000).unwrap().logs_cleaned, 1);
    let checkpoint = manager.cleaner_checkpoint(&tp).unwrap();
    append_rounds(NOW);
    // As if the log had been truncated to 3 and grown again.
    manager.truncate_cleaner_checkpoint(&tp, Offset(3)).unwrap();
    // Retention removes the old (cleaned) segments, then the checkpoint is below the start.
    let retention = manager.tick(NOW).unwrap();
    assert!(retention.segments_deleted > 0);
    let start = shared.read().unwrap().log_start_offset();
    assert!(start > Offset(3));
    let stats = manager.clean(NOW).unwrap();
    assert_eq!(stats.logs_failed, 0);
    let after = manager.cleaner_checkpoint(&tp).unwrap();
    assert!(after >= start && after >= checkpoint, "{after} {start}");
}

#[test]
fn a_small_offset_map_cleans_the_dirty_section_over_several_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact(1024, &[]), false);
    overwrite_rounds(&mut log, 30, 4, NOW);
    log.roll(NOW).unwrap();
    log.set_high_watermark(log.log_end_offset());
    let expected = live_in_log(&log);
    // Room for about ten keys per pass.
    let options = CleanerOptions {
        dedupe_buffer_bytes: 10 * 52,
    };
    let mut checkpoint = None;
    let mut passes = 0;
    loop {
        assert!(passes < 100, "cleaning converges");
        let outcome = log.clean(checkpoint, NOW, &options).unwrap();
        if !outcome.cleaned {
            break;
        }
        assert!(
            Some(outcome.next_dirty) > checkpoint,
            "every pass progresses"
        );
        checkpoint = Some(outcome.next_dirty);
        passes += 1;
        assert_eq!(live_in_log(&log), expected, "after pass {passes}");
    }
    assert!(passes > 3, "{passes}");
    assert_eq!(checkpoint, Some(log.log_end_offset()));
    assert_eq!(stored(&log).len(), 30);
}
