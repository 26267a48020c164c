//! Committed fixtures: a golden partition directory pins the bytes the log writes (segment,
//! offset index, time index, leader epoch checkpoint), and a torn copy of it — the last
//! batch half-written and the active index still preallocated, as a crash leaves them —
//! pins recovery. Both hold the (empty) producer state snapshots the log writes on roll and
//! on close. Regenerate the golden files with `WEIR_BLESS=1` after an intended change (run the
//! tests one at a time, `--test-threads=1`: the torn copy is made from the golden one).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{Rec, batch, decode, open, read_all};
use weir_broker::log::LogConfig;
use weir_broker::types::{LeaderEpoch, Offset};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn config() -> LogConfig {
    LogConfig::from_overrides([
        ("segment.bytes", "1024"),
        ("index.interval.bytes", "100"),
        ("segment.index.bytes", "120"),
    ])
    .unwrap()
}

/// The deterministic history behind the golden files: 12 batches over two leader epochs.
fn write_golden(dir: &Path) {
    let mut log = open(dir, config(), false);
    for i in 0..12i64 {
        let recs: Vec<Rec> = (0..1 + i % 3)
            .map(|j| Rec {
                key: Some(format!("key-{i}-{j}").into_bytes()),
                value: Some(format!("value {i}.{j} of the golden log").into_bytes()),
                timestamp: 1_600_000_000_000 + i * 1000 + j,
            })
            .collect();
        log.append_as_leader(&batch(&recs), LeaderEpoch(if i < 7 { 3 } else { 5 }), 0)
            .unwrap();
    }
    log.close().unwrap();
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_log_writes_the_golden_bytes() {
    let dir = tempfile::tempdir().unwrap();
    write_golden(dir.path());
    let golden = fixture("golden");
    if std::env::var_os("WEIR_BLESS").is_some() {
        let _ = fs::remove_dir_all(&golden);
        fs::create_dir_all(&golden).unwrap();
        for (name, bytes) in files(dir.path()) {
            fs::write(golden.join(name), bytes).unwrap();
        }
    }
    let want = files(&golden);
    let got = files(dir.path());
    let names = |f: &[(String, Vec<u8>)]| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&got), names(&want));
    for ((name, got), (_, want)) in got.iter().zip(&want) {
        assert!(got == want, "{name} differs from the golden file");
    }
    assert!(names(&want).contains(&"00000000000000000000.index".to_owned()));
}

#[test]
fn the_golden_directory_reads_back_after_a_clean_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files(&fixture("golden")) {
        fs::write(dir.path().join(name), bytes).unwrap();
    }
    let log = open(dir.path(), config(), true);
    let records = decode(&read_all(&log, Offset::ZERO, 1 << 20));
    assert_eq!(records.len(), 24);
    assert_eq!(
        records[23].2.as_deref(),
        Some(&b"value 11.2 of the golden log"[..])
    );
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(3)),
        Some((LeaderEpoch(3), Offset(13)))
    );
}

#[test]
fn the_torn_fixture_recovers_to_the_last_whole_batch() {
    let torn = fixture("torn");
    if std::env::var_os("WEIR_BLESS").is_some() {
        let _ = fs::remove_dir_all(&torn);
        fs::create_dir_all(&torn).unwrap();
        for (name, bytes) in files(&fixture("golden")) {
            fs::write(torn.join(name), bytes).unwrap();
        }
        // Tear the active segment's last batch and leave its index as a crash would:
        // preallocated with zeros.
        let mut active: Vec<PathBuf> = fs::read_dir(&torn)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        active.sort();
        let active = active.pop().unwrap();
        let bytes = fs::read(&active).unwrap();
        fs::write(&active, &bytes[..bytes.len() - 20]).unwrap();
        let index = active.with_extension("index");
        let mut idx = fs::read(&index).unwrap();
        idx.resize(120, 0);
        fs::write(&index, idx).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files(&torn) {
        fs::write(dir.path().join(name), bytes).unwrap();
    }
    let log = open(dir.path(), config(), false);
    // The last batch (offsets 21..23) is torn: the log ends before it.
    assert_eq!(log.log_end_offset(), Offset(21));
    // The producer state snapshot `close` wrote at 24 is past the new end and goes; the one
    // the roll wrote at 13 stays.
    assert!(!dir.path().join("00000000000000000024.snapshot").exists());
    assert!(dir.path().join("00000000000000000013.snapshot").exists());
    assert_eq!(log.producer_state().end_offset(), Offset(21));
    let records = decode(&read_all(&log, Offset::ZERO, 1 << 20));
    assert_eq!(records.len(), 21);
    assert_eq!(
        records[20].2.as_deref(),
        Some(&b"value 10.1 of the golden log"[..])
    );
}
