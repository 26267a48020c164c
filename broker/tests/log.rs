//! Behaviour of one partition log: what it writes, reads, rolls, truncates and deletes.

mod common;

use std::fs;
use std::path::Path;

use common::{
    NOW, Rec, append, batch, batches_in, decode, open, read_all, sized_batch, small_config,
};
use weir_broker::log::batch::BatchHeader;
use weir_broker::log::{LogConfig, LogError};
use weir_broker::types::{LeaderEpoch, Offset};

fn segment_files(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}

/// The offset index Kafka would write for a segment: an entry (last offset, position) for
/// each batch that starts more than `interval` bytes after the previous entry's batch.
fn expected_index(batches: &[(usize, BatchHeader)], base: u64, interval: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut since = 0u64;
    for (pos, h) in batches {
        if since > interval {
            out.extend_from_slice(&((h.last_offset() as u64 - base) as u32).to_be_bytes());
            out.extend_from_slice(&(*pos as u32).to_be_bytes());
            since = 0;
        }
        since += h.total_size() as u64;
    }
    out
}

#[test]
fn appended_batches_read_back_and_decode_with_kafka_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), false);
    let mut expected = Vec::new();
    for i in 0..40u8 {
        let recs: Vec<Rec> = (0..=i % 5)
            .map(|j| Rec::new(vec![i; 10 + j as usize], NOW + i as i64))
            .collect();
        let info = append(&mut log, &batch(&recs));
        assert_eq!(info.first_offset, Offset(expected.len() as u64));
        assert_eq!(
            info.last_offset.0 - info.first_offset.0 + 1,
            recs.len() as u64
        );
        assert_eq!(info.log_append_time, None);
        expected.extend(recs);
    }
    assert_eq!(log.log_end_offset(), Offset(expected.len() as u64));
    assert!(log.segment_count() > 1, "small segments roll");
    let decoded = decode(&read_all(&log, Offset::ZERO, 1000));
    assert_eq!(decoded.len(), expected.len());
    for (i, ((offset, ts, value), rec)) in decoded.iter().zip(&expected).enumerate() {
        assert_eq!(*offset, i as i64);
        assert_eq!(*ts, rec.timestamp);
        assert_eq!(value, &rec.value);
    }
}

#[test]
fn segment_files_and_indexes_are_in_kafkas_format() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), false);
    for i in 0..60 {
        append(
            &mut log,
            &sized_batch(3, 40 + i % 7, NOW + i as i64, i as u8),
        );
    }
    let logs = segment_files(dir.path(), ".log");
    assert!(logs.len() >= 3);
    let bases: Vec<u64> = log.segment_base_offsets().iter().map(|o| o.0).collect();
    let names: Vec<String> = bases.iter().map(|b| format!("{b:020}.log")).collect();
    assert_eq!(logs, names);
    assert_eq!(logs[0], "00000000000000000000.log");
    for (i, base) in bases.iter().enumerate() {
        let stem = dir.path().join(format!("{base:020}"));
        let batches = batches_in(&stem.with_extension("log"));
        assert_eq!(
            batches[0].1.base_offset as u64, *base,
            "segment named by its base offset"
        );
        assert!(batches.iter().all(|(_, h)| h.partition_leader_epoch == 0));
        let index = fs::read(stem.with_extension("index")).unwrap();
        let want = expected_index(&batches, *base, 256);
        if i + 1 < bases.len() {
            assert_eq!(
                index, want,
                "sealed index of {base} trimmed to Kafka's entries"
            );
            let times = fs::read(stem.with_extension("timeindex")).unwrap();
            assert_eq!(times.len() % 12, 0);
            let last = &times[times.len() - 12..];
            let max_ts = batches.iter().map(|(_, h)| h.max_timestamp).max().unwrap();
            assert_eq!(
                i64::from_be_bytes(last[..8].try_into().unwrap()),
                max_ts,
                "sealed time index ends with the max"
            );
        } else {
            assert_eq!(index.len(), 4096, "active index is preallocated");
            assert_eq!(&index[..want.len()], &want[..]);
            assert!(index[want.len()..].iter().all(|&b| b == 0));
        }
    }
}

#[test]
fn rolls_on_size_time_and_full_index() {
    // Size: each ~1.1 KiB batch fills a 2 KiB segment after one batch.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig::from_overrides([("segment.bytes", "2048")]).unwrap(),
        false,
    );
    for i in 0..5 {
        append(&mut log, &sized_batch(1, 1100, NOW, i));
    }
    assert_eq!(
        log.segment_base_offsets(),
        (0..5).map(Offset).collect::<Vec<_>>()
    );

    // Time: measured from the first batch's timestamp to the incoming batch's.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig::from_overrides([("segment.ms", "1000")]).unwrap(),
        false,
    );
    append(&mut log, &sized_batch(1, 10, NOW, 0));
    append(&mut log, &sized_batch(1, 10, NOW + 1000, 0));
    assert_eq!(log.segment_count(), 1, "exactly segment.ms does not roll");
    append(&mut log, &sized_batch(1, 10, NOW + 1001, 0));
    assert_eq!(log.segment_base_offsets(), vec![Offset(0), Offset(2)]);

    // Full index: room for two offset entries, an entry per batch after the first.
    let dir = tempfile::tempdir().unwrap();
    let config =
        LogConfig::from_overrides([("segment.index.bytes", "24"), ("index.interval.bytes", "0")])
            .unwrap();
    let mut log = open(dir.path(), config, false);
    for i in 0..7 {
        append(&mut log, &sized_batch(1, 10, NOW + i, 0));
    }
    // Time index: 24 bytes = 2 slots, one kept for the seal entry, so 1 usable (+ first batch).
    assert!(log.segment_count() >= 3, "{:?}", log.segment_base_offsets());
    assert_eq!(decode(&read_all(&log, Offset::ZERO, 100)).len(), 7);
}

#[test]
fn log_append_time_stamps_the_broker_clock_and_keeps_the_crc_valid() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::from_overrides([("message.timestamp.type", "LogAppendTime")]).unwrap();
    let mut log = open(dir.path(), config, false);
    let info = log
        .append_as_leader(&sized_batch(3, 10, 5, 0), LeaderEpoch(2), NOW)
        .unwrap()
        .info();
    assert_eq!(info.log_append_time, Some(NOW));
    assert_eq!(info.max_timestamp, NOW);
    let bytes = read_all(&log, Offset::ZERO, 1 << 20);
    let h = weir_broker::log::batch::check_batch(&bytes).unwrap().header;
    assert_eq!(h.max_timestamp, NOW);
    assert_eq!(h.partition_leader_epoch, 2);
    assert_eq!(
        log.offset_for_timestamp(NOW).unwrap().map(|t| t.offset),
        Some(Offset(0))
    );
    assert_eq!(
        log.offset_for_timestamp(6)
            .unwrap()
            .map(|t| (t.offset, t.timestamp)),
        Some((Offset(0), NOW))
    );
}

#[test]
fn bad_batches_are_refused_and_leave_the_log_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::from_overrides([("max.message.bytes", "1000")]).unwrap();
    let mut log = open(dir.path(), config, false);
    append(&mut log, &sized_batch(2, 10, NOW, 0));
    let size = log.size_bytes();
    let big = sized_batch(1, 1000, NOW, 0);
    assert!(matches!(
        log.append_as_leader(&big, LeaderEpoch(0), NOW),
        Err(LogError::MessageTooLarge { max: 1000, .. })
    ));
    let mut corrupt = sized_batch(2, 10, NOW, 0);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(matches!(
        log.append_as_leader(&corrupt, LeaderEpoch(0), NOW),
        Err(LogError::InvalidBatch(_))
    ));
    let mut v1 = sized_batch(2, 10, NOW, 0);
    v1[16] = 1;
    let err = log.append_as_leader(&v1, LeaderEpoch(0), NOW).unwrap_err();
    assert!(err.to_string().contains("magic"), "{err}");
    assert_eq!(log.size_bytes(), size);
    assert_eq!(log.log_end_offset(), Offset(2));

    let dir = tempfile::tempdir().unwrap();
    let config =
        LogConfig::from_overrides([("segment.bytes", "100"), ("max.message.bytes", "100000")])
            .unwrap();
    let mut log = open(dir.path(), config, false);
    assert!(matches!(
        log.append_as_leader(&sized_batch(1, 200, NOW, 0), LeaderEpoch(0), NOW),
        Err(LogError::RecordListTooLarge { .. })
    ));
}

#[test]
fn compacted_topics_refuse_records_without_a_key_even_compressed() {
    use kafka_protocol::records::Compression;
    let keyed = |key: Option<&str>| Rec {
        key: key.map(|k| k.as_bytes().to_vec()),
        value: Some(b"v".to_vec()),
        timestamp: NOW,
    };
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::from_overrides([("cleanup.policy", "compact")]).unwrap();
    let mut log = open(dir.path(), config, false);
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let mixed = common::batch_with(&[keyed(Some("a")), keyed(None)], compression);
        let err = log
            .append_as_leader(&mixed, LeaderEpoch(0), NOW)
            .unwrap_err();
        assert!(err.to_string().contains("no key"), "{compression:?}: {err}");
        assert_eq!(log.log_end_offset(), Offset::ZERO, "nothing stored");
    }
    append(&mut log, &batch(&[keyed(Some("a")), keyed(Some("b"))]));
    assert_eq!(log.log_end_offset(), Offset(2));
    // A topic that only deletes takes keyless records.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), false);
    append(&mut log, &batch(&[keyed(None)]));
    assert_eq!(log.log_end_offset(), Offset(1));
}

#[test]
fn reads_are_bounded_by_max_bytes_upper_offset_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), false);
    let sizes: Vec<usize> = (0..10)
        .map(|i| sized_batch(2, 100 + i * 10, NOW, 0).len())
        .collect();
    for i in 0..10 {
        append(&mut log, &sized_batch(2, 100 + i * 10, NOW, 0));
    }
    // Offset 3 is inside the second batch; the read starts at that batch.
    let s = log
        .read(Offset(3), sizes[1] + sizes[2] + 5, None)
        .unwrap()
        .unwrap();
    assert_eq!(s.first_offset, Offset(2));
    assert_eq!(
        s.next_offset,
        Offset(6),
        "the batch after the range starts at 6"
    );
    assert_eq!(s.len as usize, sizes[1] + sizes[2], "whole batches only");
    let s = log.read(Offset(3), 1, None).unwrap().unwrap();
    assert_eq!(s.len as usize, sizes[1], "at least one whole batch");
    let s = log
        .read(Offset(0), 1 << 20, Some(Offset(6)))
        .unwrap()
        .unwrap();
    assert_eq!(
        s.len as usize,
        sizes[..3].iter().sum::<usize>(),
        "upper bound excludes offset 6 on"
    );
    let s = log
        .read(Offset(0), 1 << 20, Some(Offset(5)))
        .unwrap()
        .unwrap();
    assert_eq!(
        s.len as usize,
        sizes[..2].iter().sum::<usize>(),
        "a batch straddling the bound is held back"
    );
    assert!(
        log.read(Offset(6), 1 << 20, Some(Offset(6)))
            .unwrap()
            .is_none()
    );
    assert!(
        log.read(Offset(20), 100, None).unwrap().is_none(),
        "reading at the log end is empty"
    );
    assert!(matches!(
        log.read(Offset(21), 100, None),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn reopening_keeps_contents_after_clean_and_unclean_shutdown() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), small_config(), false);
        for i in 0..50 {
            append(
                &mut log,
                &sized_batch(1 + i % 3, 30, NOW + i as i64, i as u8),
            );
        }
        let before = read_all(&log, Offset::ZERO, 500);
        let leo = log.log_end_offset();
        let segments = log.segment_base_offsets();
        if clean {
            log.close().unwrap();
        } else {
            drop(log);
        }
        let mut log = open(dir.path(), small_config(), clean);
        assert_eq!(log.log_end_offset(), leo);
        assert_eq!(log.segment_base_offsets(), segments);
        assert_eq!(read_all(&log, Offset::ZERO, 500), before);
        let info = append(&mut log, &sized_batch(1, 10, NOW + 100, 0));
        assert_eq!(info.first_offset, leo);
        assert_eq!(
            log.offset_for_timestamp(NOW + 100)
                .unwrap()
                .map(|t| t.offset),
            Some(leo)
        );
    }
}

#[test]
fn follower_appends_keep_the_leaders_offsets_and_epochs() {
    let leader_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path(), small_config(), false);
    for (i, epoch) in [0, 0, 1, 1, 1, 3, 3].into_iter().enumerate() {
        leader
            .append_as_leader(&sized_batch(2, 100, NOW, i as u8), LeaderEpoch(epoch), NOW)
            .unwrap();
    }
    let all = read_all(&leader, Offset::ZERO, 1 << 20);
    let follower_dir = tempfile::tempdir().unwrap();
    let mut follower = open(follower_dir.path(), small_config(), false);
    // Replicate in two fetches, the first ending with a partial batch (ignored).
    let cut = all.len() / 2;
    let first = follower
        .append_as_follower(&all[..cut], NOW)
        .unwrap()
        .unwrap();
    assert_eq!(first.first_offset, Offset(0));
    let resume = follower.log_end_offset();
    let rest = leader
        .read(resume, 1 << 20, None)
        .unwrap()
        .unwrap()
        .read_to_vec()
        .unwrap();
    follower.append_as_follower(&rest, NOW).unwrap();
    assert_eq!(read_all(&follower, Offset::ZERO, 1 << 20), all);
    assert_eq!(
        follower.leader_epochs().entries(),
        leader.leader_epochs().entries()
    );
    let pairs: Vec<(i32, u64)> = follower
        .leader_epochs()
        .entries()
        .iter()
        .map(|e| (e.epoch.0, e.start_offset.0))
        .collect();
    assert_eq!(pairs, vec![(0, 0), (1, 4), (3, 10)]);
    // Replaying a batch already held is refused.
    assert!(matches!(
        follower.append_as_follower(&rest, NOW),
        Err(LogError::UnexpectedAppendOffset { .. })
    ));
}

#[test]
fn truncate_to_cuts_whole_batches_and_forgets_later_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), false);
    for i in 0..30 {
        log.append_as_leader(
            &sized_batch(3, 50, NOW + i, i as u8),
            LeaderEpoch(i as i32 / 10),
            NOW,
        )
        .unwrap();
    }
    let before = read_all(&log, Offset::ZERO, 1 << 20);
    log.set_high_watermark(Offset(90));
    // 31 is inside batch [30, 32]: the whole batch goes.
    log.truncate_to(Offset(31), NOW).unwrap();
    assert_eq!(log.log_end_offset(), Offset(30));
    assert_eq!(log.high_watermark(), Offset(30));
    let after = read_all(&log, Offset::ZERO, 1 << 20);
    assert_eq!(after, before[..after.len()]);
    assert_eq!(decode(&after).len(), 30);
    let pairs: Vec<(i32, u64)> = log
        .leader_epochs()
        .entries()
        .iter()
        .map(|e| (e.epoch.0, e.start_offset.0))
        .collect();
    assert_eq!(
        pairs,
        vec![(0, 0), (1, 30)]
            .into_iter()
            .filter(|p| p.1 < 30)
            .collect::<Vec<_>>()
    );
    // The log continues at the new end, and the result survives a reopen.
    let info = append(&mut log, &sized_batch(1, 5, NOW, 0));
    assert_eq!(info.first_offset, Offset(30));
    let contents = read_all(&log, Offset::ZERO, 1 << 20);
    drop(log);
    let log = open(dir.path(), small_config(), false);
    assert_eq!(read_all(&log, Offset::ZERO, 1 << 20), contents);

    let mut log = log;
    log.truncate_to(Offset(0), NOW).unwrap();
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (Offset(0), Offset(0))
    );
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn delete_records_moves_the_log_start_and_drops_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), false);
    for i in 0..40 {
        append(&mut log, &sized_batch(2, 100, NOW, i));
    }
    let segments_before = log.segment_count();
    assert!(matches!(
        log.delete_records(Offset(10)),
        Err(LogError::OffsetBeyondHighWatermark { .. })
    ));
    log.set_high_watermark(Offset(80));
    let second_base = log.segment_base_offsets()[1];
    assert_eq!(
        log.delete_records(second_base + 1).unwrap(),
        second_base + 1
    );
    assert_eq!(log.segment_count(), segments_before - 1);
    assert!(matches!(
        log.read(second_base, 100, None),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let first = log.read(second_base + 1, 1, None).unwrap().unwrap();
    assert_eq!(
        first.first_offset, second_base,
        "the batch holding the log start is still served whole"
    );
    assert_eq!(
        log.delete_records(Offset(3)).unwrap(),
        second_base + 1,
        "never moves back"
    );
    log.close().unwrap();
    let log = common::open_with(dir.path(), small_config(), true, Offset(0), second_base + 1);
    assert_eq!(log.log_start_offset(), second_base + 1);
}

#[test]
fn retention_by_time_deletes_only_old_sealed_segments_below_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        LogConfig::from_overrides([("segment.bytes", "1024"), ("retention.ms", "10000")]).unwrap();
    let mut log = open(dir.path(), config, false);
    for i in 0..20 {
        // Timestamps 0..19 s after NOW; one ~600-byte batch per segment.
        append(&mut log, &sized_batch(1, 500, NOW + i * 1000, 0));
    }
    assert_eq!(log.segment_count(), 20);
    let now = NOW + 25_000;
    assert_eq!(
        log.apply_retention(now).unwrap().segments_deleted,
        0,
        "nothing below the high watermark yet"
    );
    log.set_high_watermark(Offset(10));
    let out = log.apply_retention(now).unwrap();
    assert_eq!(out.segments_deleted, 10, "limited by the high watermark");
    log.set_high_watermark(Offset(20));
    let out = log.apply_retention(now).unwrap();
    // Segments with max timestamp older than now - 10 s: timestamps up to 14 s are (25-14 > 10).
    assert_eq!(out.segments_deleted, 5);
    assert_eq!(log.log_start_offset(), Offset(15));
    assert_eq!(log.segment_base_offsets().first(), Some(&Offset(15)));
    assert_eq!(
        log.apply_retention(now + 1_000_000)
            .unwrap()
            .segments_deleted,
        4,
        "never the active segment"
    );
}

#[test]
fn retention_by_size_keeps_the_newest_segments_within_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let one = sized_batch(1, 500, NOW, 0).len() as u64;
    let config = LogConfig::from_overrides([
        ("segment.bytes", "1024"),
        ("retention.bytes", &(one * 5).to_string()),
        ("retention.ms", "-1"),
    ])
    .unwrap();
    let mut log = open(dir.path(), config, false);
    for _ in 0..12 {
        append(&mut log, &sized_batch(1, 500, NOW, 0));
    }
    log.set_high_watermark(Offset(12));
    let out = log.apply_retention(NOW).unwrap();
    assert_eq!(out.segments_deleted, 7);
    assert_eq!(out.bytes_deleted, 7 * one);
    assert_eq!(log.size_bytes(), 5 * one);
    assert_eq!(log.log_start_offset(), Offset(7));

    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::from_overrides([
        ("segment.bytes", "1024"),
        ("retention.bytes", "1"),
        ("cleanup.policy", "compact"),
    ])
    .unwrap();
    let mut log = open(dir.path(), config, false);
    for i in 0..4 {
        let keyed = Rec {
            key: Some(format!("k{i}").into_bytes()),
            value: Some(vec![0; 500]),
            timestamp: NOW,
        };
        append(&mut log, &batch(&[keyed]));
    }
    log.set_high_watermark(Offset(4));
    assert_eq!(
        log.apply_retention(NOW).unwrap().segments_deleted,
        0,
        "compact-only topics keep data"
    );
}

#[test]
fn timestamp_lookups_find_the_first_record_at_or_after_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), false);
    let timestamps = [100, 300, 200, 500, 400, 900, 700, 800];
    for chunk in timestamps.chunks(2) {
        let recs: Vec<Rec> = chunk.iter().map(|&t| Rec::new(vec![1; 700], t)).collect();
        append(&mut log, &batch(&recs));
    }
    assert!(log.segment_count() > 1);
    let find = |t| {
        log.offset_for_timestamp(t)
            .unwrap()
            .map(|r| (r.offset.0, r.timestamp))
    };
    assert_eq!(find(0), Some((0, 100)));
    assert_eq!(find(250), Some((1, 300)));
    assert_eq!(find(450), Some((3, 500)));
    assert_eq!(find(850), Some((5, 900)));
    assert_eq!(find(901), None);
    let max = log.max_timestamp_offset().unwrap().unwrap();
    assert_eq!((max.offset, max.timestamp), (Offset(5), 900));
}

#[test]
fn the_leader_epoch_checkpoint_is_kafkas_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), false);
    for (i, epoch) in [0, 2, 2, 5].into_iter().enumerate() {
        log.append_as_leader(&sized_batch(2, 10, NOW, i as u8), LeaderEpoch(epoch), NOW)
            .unwrap();
    }
    let text = fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap();
    assert_eq!(text, "0\n3\n0 0\n2 2\n5 6\n");
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(2)),
        Some((LeaderEpoch(2), Offset(6)))
    );
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(5)),
        Some((LeaderEpoch(5), Offset(8)))
    );
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(3)),
        Some((LeaderEpoch(2), Offset(6)))
    );
}

#[test]
fn flush_policy_moves_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        LogConfig::from_overrides([("flush.messages", "5"), ("flush.ms", "1000")]).unwrap();
    let mut log = open(dir.path(), config, false);
    append(&mut log, &sized_batch(3, 10, NOW, 0));
    assert_eq!(log.recovery_point(), Offset(0));
    append(&mut log, &sized_batch(3, 10, NOW, 0));
    assert_eq!(log.recovery_point(), Offset(6), "flush.messages reached");
    append(&mut log, &sized_batch(1, 10, NOW, 0));
    assert!(!log.flush_if_due(NOW + 999).unwrap());
    assert!(log.flush_if_due(NOW + 1000).unwrap());
    assert_eq!(log.recovery_point(), Offset(7));
}
