//! Model-based test of the cleaner: random keyed appends (any codec, tombstones included),
//! rolls, cleaning passes (with small offset maps and varying delete retention) and reopens,
//! checked after every step against the key -> latest value the appends imply.

use std::collections::BTreeSet;

use kafka_protocol::records::Compression;
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use super::common::{NOW, open};
use super::{Put, active_bytes, compact, live, put_with, stored};
use weir_broker::log::CleanerOptions;

#[derive(Clone, Debug)]
enum Op {
    /// One batch: `(key, value)` pairs, `None` a tombstone.
    Append {
        recs: Vec<(u8, Option<u8>)>,
        codec: u8,
    },
    Roll,
    /// A pass `advance_ms` after the last operation, with a map budget of `map_keys` keys.
    Clean {
        advance_ms: i64,
        map_keys: usize,
    },
    Reopen {
        clean_shutdown: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let rec = (0u8..12, prop::option::weighted(0.8, any::<u8>()));
    prop_oneof![
        6 => (prop::collection::vec(rec, 1..6), 0u8..5)
            .prop_map(|(recs, codec)| Op::Append { recs, codec }),
        1 => Just(Op::Roll),
        2 => (0i64..20_000, 1usize..20)
            .prop_map(|(advance_ms, map_keys)| Op::Clean { advance_ms, map_keys }),
        1 => any::<bool>().prop_map(|clean_shutdown| Op::Reopen { clean_shutdown }),
    ]
}

fn run_model(ops: Vec<Op>, delete_retention_ms: i64) -> TestCaseResult {
    let dir = tempfile::tempdir().unwrap();
    let retention = delete_retention_ms.to_string();
    let config = compact(700, &[("delete.retention.ms", retention.as_str())]);
    let mut log = Some(open(dir.path(), config.clone(), false));
    let mut appended: Vec<Put> = Vec::new();
    let mut checkpoint = None;
    let mut now = NOW;
    for op in ops {
        let l = log.as_mut().unwrap();
        match op {
            Op::Append { recs, codec } => {
                now += 10;
                let puts: Vec<Put> = recs
                    .iter()
                    .map(|&(k, v)| Put {
                        key: Some(vec![b'k', k]),
                        value: v.map(|v| vec![v; 1 + v as usize % 40]),
                        ts: now,
                    })
                    .collect();
                let codec = [
                    Compression::None,
                    Compression::Gzip,
                    Compression::Snappy,
                    Compression::Lz4,
                    Compression::Zstd,
                ][codec as usize];
                let first = put_with(l, &puts, codec);
                prop_assert_eq!(first.0 as usize, appended.len());
                appended.extend(puts);
            }
            Op::Roll => l.roll(now).unwrap(),
            Op::Clean {
                advance_ms,
                map_keys,
            } => {
                now += advance_ms;
                let active = active_bytes(l);
                l.set_high_watermark(l.log_end_offset());
                let options = CleanerOptions {
                    dedupe_buffer_bytes: map_keys * 52,
                };
                let outcome = l.clean(checkpoint, now, &options).unwrap();
                prop_assert_eq!(active_bytes(l), active, "the active segment is untouched");
                if outcome.cleaned {
                    checkpoint = Some(outcome.next_dirty);
                    // Below the new checkpoint every key appears at most once.
                    let records = stored(l);
                    let mut seen = BTreeSet::new();
                    for (o, k, _) in &records {
                        if *o < outcome.next_dirty.as_i64() {
                            prop_assert!(seen.insert(k.clone()), "key {:?} twice", k);
                        }
                    }
                }
            }
            Op::Reopen { clean_shutdown } => {
                let l = log.take().unwrap();
                if clean_shutdown {
                    l.close().unwrap();
                } else {
                    drop(l);
                }
                log = Some(open(dir.path(), config.clone(), clean_shutdown));
            }
        }
        let l = log.as_ref().unwrap();
        let records = stored(l);
        for (offset, key, value) in &records {
            let original = &appended[*offset as usize];
            prop_assert_eq!((key, value), (&original.key, &original.value));
        }
        let expected = live(
            appended
                .iter()
                .enumerate()
                .map(|(o, p)| (o as i64, &p.key, &p.value)),
        );
        prop_assert_eq!(live(records.iter().map(|(o, k, v)| (*o, k, v))), expected);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn cleaning_keeps_what_a_key_value_model_keeps(
        ops in prop::collection::vec(op(), 1..60),
        delete_retention_ms in prop_oneof![Just(0i64), Just(5_000), Just(86_400_000)],
    ) {
        run_model(ops, delete_retention_ms)?;
    }
}
