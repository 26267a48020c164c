//! The `weir-broker` binary's `dump-log` tool on files the log wrote.

mod common;

use std::process::Command;

use common::{NOW, Rec, append, batch, open, small_config};
use weir_broker::types::Offset;

#[test]
fn dump_log_prints_batches_records_and_index_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), false);
    append(
        &mut log,
        &batch(&[
            Rec::new("hello", NOW),
            Rec::new("world", NOW + 1),
            Rec::new("!", NOW + 2),
        ]),
    );
    for i in 0..30 {
        append(&mut log, &common::sized_batch(2, 100, NOW + 10 + i, 0));
    }
    let sealed = log.segment_base_offsets()[0];
    assert_eq!(sealed, Offset(0));
    log.close().unwrap();
    let seg = |ext: &str| {
        dir.path()
            .join(format!("{:020}.{ext}", 0))
            .display()
            .to_string()
    };
    let out = Command::new(env!("CARGO_BIN_EXE_weir-broker"))
        .args(["dump-log", "--print-data-log", "--files"])
        .arg(format!(
            "{},{},{}",
            seg("log"),
            seg("index"),
            seg("timeindex")
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("baseOffset: 0 lastOffset: 2 count: 3"),
        "{text}"
    );
    assert!(text.contains(&format!("CreateTime: {}", NOW + 2)), "{text}");
    assert!(
        text.contains("| offset: 1 ") && text.contains("payload: world"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("offset: ") && l.contains("position: ")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("timestamp: ")), "{text}");

    let bad = Command::new(env!("CARGO_BIN_EXE_weir-broker"))
        .args([
            "dump-log",
            "--files",
            "/nonexistent/00000000000000000000.log",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent"));
}
