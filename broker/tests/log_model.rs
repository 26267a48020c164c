//! Model-based tests of the partition log: random sequences of appends, reads, rolls,
//! reopens (clean and after a simulated crash), DeleteRecords and truncations, checked
//! against a brute-force in-memory model of the batches the log should hold.
//!
//! The model is a list of the batches physically present in the log, each with its offsets,
//! the exact bytes the log must store (the appended bytes with the base offset and partition
//! leader epoch rewritten, plus the LogAppendTime stamp when the topic uses it) and the
//! records it carries. Everything a read returns is compared byte for byte with the model
//! and decoded with kafka-protocol's decoder, an implementation independent of ours.

mod common;

use std::path::Path;
use std::sync::Arc;

use kafka_protocol::records::Compression;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{TestCaseError, TestCaseResult};
use tempfile::TempDir;

use common::{NOW, Rec, batch_with, decode, small_config};
use weir_broker::log::batch::BatchHeader;
use weir_broker::log::{Log, LogConfig, LogError, OpenOptions, SegmentCache};
use weir_broker::types::{LeaderEpoch, Offset};

/// `segment.bytes` of [`small_config`].
const SEGMENT_BYTES: usize = 4096;
/// The leader epoch every append is made in.
const EPOCH: i32 = 0;

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

/// One record as generated: value length (or a null value) and timestamp. The value bytes are
/// derived from the batch seed, so a failing case prints compactly.
#[derive(Clone, Debug)]
struct RecSpec {
    len: usize,
    null: bool,
    ts: i64,
}

#[derive(Clone, Copy, Debug)]
enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    fn compression(self) -> Compression {
        match self {
            Codec::None => Compression::None,
            Codec::Gzip => Compression::Gzip,
            Codec::Snappy => Compression::Snappy,
            Codec::Lz4 => Compression::Lz4,
            Codec::Zstd => Compression::Zstd,
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Append {
        recs: Vec<RecSpec>,
        seed: u64,
        codec: Codec,
    },
    /// `read(at, max_bytes, upper)`. `at` is picked in `[log start, LEO]`, or anywhere in
    /// `[0, LEO + 2]` when `anywhere`; `upper` anywhere in `[0, LEO + 2]`.
    Read {
        at: Index,
        anywhere: bool,
        max_bytes: usize,
        upper: Option<Index>,
    },
    Roll,
    Flush,
    /// Drop the log and open it again: after `close()` when `clean`, otherwise as after a
    /// crash (no close). After a crash the recovery point passed in is either zero or the
    /// log's recovery point before the crash (as the checkpoint file would hold), and with
    /// `tear` the last batch was only partly written (its `.log` file is cut inside it) if
    /// it was neither flushed nor below the high watermark.
    Reopen {
        clean: bool,
        checkpointed_recovery_point: bool,
        tear: Option<Index>,
    },
    /// `set_high_watermark(hw)` with `hw` anywhere in `[0, LEO + 2]` (it is clamped), then
    /// `delete_records(to)` with `to` in `[0, hw]`, or just above the high watermark.
    DeleteRecords {
        hw: Index,
        to: Index,
        beyond_hw: bool,
    },
    /// `truncate_to(to)` with `to` anywhere in `[0, LEO + 1]`.
    Truncate {
        to: Index,
    },
}

fn codec() -> impl Strategy<Value = Codec> {
    prop_oneof![
        8 => Just(Codec::None),
        1 => Just(Codec::Gzip),
        1 => Just(Codec::Snappy),
        1 => Just(Codec::Lz4),
        1 => Just(Codec::Zstd),
    ]
}

/// Timestamps around [`NOW`]; sometimes far apart (over `segment.ms`, 7 days), which rolls
/// segments by time; now and then -1 (no timestamp).
fn wide_timestamp() -> BoxedStrategy<i64> {
    const DAY: i64 = 24 * 60 * 60 * 1000;
    prop_oneof![
        40 => (NOW - 5_000)..(NOW + 5_000),
        10 => (NOW - 10 * DAY)..(NOW + 10 * DAY),
        1 => Just(-1i64),
    ]
    .boxed()
}

/// Small timestamps with many ties, not monotonic; now and then -1 (no timestamp).
fn narrow_timestamp() -> BoxedStrategy<i64> {
    prop_oneof![40 => 0i64..300, 1 => Just(-1i64)].boxed()
}

fn append_op(ts: BoxedStrategy<i64>) -> impl Strategy<Value = Op> {
    // Often small batches (many per segment, several per index interval), sometimes big
    // ones (a few per segment, some too big for a segment).
    let len = prop_oneof![2 => 0usize..16, 1 => 0usize..300];
    let rec =
        (len, prop::bool::weighted(0.05), ts).prop_map(|(len, null, ts)| RecSpec { len, null, ts });
    let count = prop_oneof![1 => 1usize..4, 1 => 1usize..20];
    (count, any::<u64>(), codec())
        .prop_flat_map(move |(count, seed, codec)| {
            (
                prop::collection::vec(rec.clone(), count),
                Just(seed),
                Just(codec),
            )
        })
        .prop_map(|(recs, seed, codec)| Op::Append { recs, seed, codec })
}

fn read_op() -> impl Strategy<Value = Op> {
    let max_bytes = prop_oneof![
        Just(1usize),
        1usize..600,
        600usize..6_000,
        Just(1usize << 20),
    ];
    (
        any::<Index>(),
        prop::bool::weighted(0.15),
        max_bytes,
        prop::option::weighted(0.3, any::<Index>()),
    )
        .prop_map(|(at, anywhere, max_bytes, upper)| Op::Read {
            at,
            anywhere,
            max_bytes,
            upper,
        })
}

fn reopen_op() -> impl Strategy<Value = Op> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::option::weighted(0.4, any::<Index>()),
    )
        .prop_map(|(clean, checkpointed_recovery_point, tear)| Op::Reopen {
            clean,
            checkpointed_recovery_point,
            tear: if clean { None } else { tear },
        })
}

fn delete_records_op() -> impl Strategy<Value = Op> {
    (any::<Index>(), any::<Index>(), prop::bool::weighted(0.15))
        .prop_map(|(hw, to, beyond_hw)| Op::DeleteRecords { hw, to, beyond_hw })
}

fn truncate_op() -> impl Strategy<Value = Op> {
    any::<Index>().prop_map(|to| Op::Truncate { to })
}

/// Everything, reads included (test 1).
fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => append_op(wide_timestamp()),
        8 => read_op(),
        1 => Just(Op::Roll),
        1 => Just(Op::Flush),
        2 => reopen_op(),
        2 => delete_records_op(),
        2 => truncate_op(),
    ]
}

/// Mostly appends of small, unordered timestamps, with the operations that change what the
/// time lookups see (test 2).
fn timestamp_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        16 => append_op(narrow_timestamp()),
        1 => Just(Op::Roll),
        1 => reopen_op(),
        1 => delete_records_op(),
        1 => truncate_op(),
    ]
}

/// Appends with the occasional roll, reopen or DeleteRecords (test 3).
fn layout_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => append_op(wide_timestamp()),
        1 => Just(Op::Roll),
        1 => reopen_op(),
        1 => delete_records_op(),
    ]
}

/// `lo + idx` in `[lo, hi]`.
fn pick(idx: &Index, lo: u64, hi: u64) -> u64 {
    assert!(lo <= hi);
    lo + idx.index((hi - lo + 1) as usize) as u64
}

fn value_bytes(seed: u64, i: usize, len: usize) -> Vec<u8> {
    // xorshift over a 16-letter alphabet: compressible, but not trivially.
    let mut x = (seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b"abcdefghijklmnop"[(x % 16) as usize]
        })
        .collect()
}

fn records_of(recs: &[RecSpec], seed: u64) -> Vec<Rec> {
    recs.iter()
        .enumerate()
        .map(|(i, r)| Rec {
            key: None,
            value: (!r.null).then(|| value_bytes(seed, i, r.len)),
            timestamp: r.ts,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// A batch as the log must store it.
#[derive(Debug)]
struct Stored {
    base: u64,
    last: u64,
    bytes: Vec<u8>,
    /// `(timestamp, value)` of each record, offsets `base..=last`.
    records: Vec<(i64, Option<Vec<u8>>)>,
}

#[derive(Debug, Default)]
struct Model {
    /// The batches physically present, ascending.
    batches: Vec<Stored>,
    leo: u64,
    log_start: u64,
    hw: u64,
}

impl Model {
    /// Index of the batch holding `offset` (the first whose last offset reaches it).
    fn holder(&self, offset: u64) -> Option<usize> {
        let i = self.batches.partition_point(|b| b.last < offset);
        (i < self.batches.len()).then_some(i)
    }

    /// Every record at or after `from`, in offset order: `(offset, timestamp, value)`.
    fn records_from(&self, from: u64) -> impl Iterator<Item = (u64, i64, &Option<Vec<u8>>)> {
        self.batches
            .iter()
            .flat_map(|b| {
                b.records
                    .iter()
                    .enumerate()
                    .map(move |(i, (ts, v))| (b.base + i as u64, *ts, v))
            })
            .filter(move |&(o, _, _)| o >= from)
    }
}

/// The bytes the log stores for `appended` given offsets from `base`: base offset and
/// partition leader epoch rewritten; for LogAppendTime also the timestamp type bit, the max
/// timestamp and (as those are under it) the CRC.
fn expected_stored(appended: &[u8], base: u64, append_time: Option<i64>) -> Vec<u8> {
    let mut b = appended.to_vec();
    b[0..8].copy_from_slice(&(base as i64).to_be_bytes());
    b[12..16].copy_from_slice(&EPOCH.to_be_bytes());
    if let Some(time) = append_time {
        let attributes = i16::from_be_bytes([b[21], b[22]]) | (1 << 3);
        b[21..23].copy_from_slice(&attributes.to_be_bytes());
        b[35..43].copy_from_slice(&time.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    b
}

/// `(base, last, size)` of each batch in `bytes`, which must hold whole batches.
fn batches_in(bytes: &[u8]) -> Result<Vec<(u64, u64, usize)>, TestCaseError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = BatchHeader::parse(&bytes[pos..])
            .map_err(|e| TestCaseError::fail(format!("unparsable batch at {pos}: {e}")))?;
        prop_assert!(
            pos + h.total_size() <= bytes.len(),
            "partial batch at {} in a slice of {} bytes",
            pos,
            bytes.len()
        );
        out.push((h.base_offset as u64, h.last_offset() as u64, h.total_size()));
        pos += h.total_size();
    }
    Ok(out)
}

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

// ---------------------------------------------------------------------------------------------
// The harness: a log, its directory, and the model it must agree with
// ---------------------------------------------------------------------------------------------

struct Harness {
    dir: TempDir,
    config: LogConfig,
    /// Shared across reopens and small, so sealed segments are evicted and reopened.
    cache: Arc<SegmentCache>,
    log: Option<Log>,
    model: Model,
    append_time: bool,
}

fn open_log(
    dir: &Path,
    config: &LogConfig,
    cache: &Arc<SegmentCache>,
    recovery_point: u64,
    log_start_offset: u64,
    clean: bool,
) -> Result<Log, TestCaseError> {
    Log::open(
        dir,
        config.clone(),
        OpenOptions {
            recovery_point: Offset(recovery_point),
            log_start_offset: Offset(log_start_offset),
            clean_shutdown: clean,
            now_ms: NOW,
        },
        cache.clone(),
    )
    .map_err(|e| fail(format!("Log::open (clean = {clean}) failed: {e}")))
}

impl Harness {
    fn new(append_time: bool) -> Result<Harness, TestCaseError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = small_config();
        if append_time {
            config
                .set("message.timestamp.type", "LogAppendTime")
                .expect("config");
        }
        let cache = Arc::new(SegmentCache::new(3));
        let log = open_log(dir.path(), &config, &cache, 0, 0, false)?;
        Ok(Harness {
            dir,
            config,
            cache,
            log: Some(log),
            model: Model::default(),
            append_time,
        })
    }

    fn log(&self) -> &Log {
        self.log.as_ref().expect("log is open")
    }

    fn log_mut(&mut self) -> &mut Log {
        self.log.as_mut().expect("log is open")
    }

    fn apply(&mut self, op: &Op) -> TestCaseResult {
        match op {
            Op::Append { recs, seed, codec } => self.append(recs, *seed, *codec)?,
            Op::Read {
                at,
                anywhere,
                max_bytes,
                upper,
            } => {
                let m = &self.model;
                let start = if *anywhere {
                    pick(at, 0, m.leo + 2)
                } else {
                    pick(at, m.log_start, m.leo)
                };
                let upper = upper.as_ref().map(|u| pick(u, 0, m.leo + 2));
                self.check_read(start, *max_bytes, upper)?;
            }
            Op::Roll => self
                .log_mut()
                .roll(NOW)
                .map_err(|e| fail(format!("roll: {e}")))?,
            Op::Flush => {
                self.log_mut()
                    .flush()
                    .map_err(|e| fail(format!("flush: {e}")))?;
                prop_assert_eq!(self.log().recovery_point(), Offset(self.model.leo));
            }
            Op::Reopen {
                clean,
                checkpointed_recovery_point,
                tear,
            } => self.reopen(*clean, *checkpointed_recovery_point, tear.as_ref())?,
            Op::DeleteRecords { hw, to, beyond_hw } => {
                let m = &mut self.model;
                let hw_target = pick(hw, 0, m.leo + 2);
                let log = self.log.as_mut().expect("log is open");
                log.set_high_watermark(Offset(hw_target));
                m.hw = hw_target.clamp(m.log_start, m.leo);
                prop_assert_eq!(log.high_watermark(), Offset(m.hw), "clamped high watermark");
                let to = if *beyond_hw {
                    m.hw + 1 + to.index(3) as u64
                } else {
                    pick(to, 0, m.hw)
                };
                let result = log.delete_records(Offset(to));
                if to > m.hw {
                    prop_assert!(
                        matches!(result, Err(LogError::OffsetBeyondHighWatermark { .. })),
                        "delete_records({}) above high watermark {}: {:?}",
                        to,
                        m.hw,
                        result
                    );
                } else {
                    let new_start =
                        result.map_err(|e| fail(format!("delete_records({to}): {e}")))?;
                    m.log_start = m.log_start.max(to);
                    prop_assert_eq!(new_start, Offset(m.log_start), "delete_records({})", to);
                }
            }
            Op::Truncate { to } => {
                let m = &mut self.model;
                let target = pick(to, 0, m.leo + 1);
                // Segments deleted by DeleteRecords are below the first physical base.
                let first_base = self.log.as_ref().expect("open").segment_base_offsets()[0].0;
                self.log
                    .as_mut()
                    .expect("open")
                    .truncate_to(Offset(target), NOW)
                    .map_err(|e| fail(format!("truncate_to({target}): {e}")))?;
                if target >= m.leo {
                    // Nothing to do.
                } else if target < first_base {
                    // Nothing left to keep: the log restarts empty at the target.
                    m.batches.clear();
                    m.leo = target;
                    m.log_start = target;
                    m.hw = target;
                } else {
                    let i = m.holder(target).expect("a batch holds an offset below LEO");
                    m.leo = m.batches[i].base;
                    m.batches.truncate(i);
                    m.log_start = m.log_start.min(m.leo);
                    m.hw = m.hw.min(m.leo);
                }
            }
        }
        self.check_state()
    }

    fn append(&mut self, recs: &[RecSpec], seed: u64, codec: Codec) -> TestCaseResult {
        let records = records_of(recs, seed);
        let bytes = batch_with(&records, codec.compression());
        let result = self
            .log_mut()
            .append_as_leader(&bytes, LeaderEpoch(EPOCH), NOW);
        let m = &mut self.model;
        if bytes.len() > SEGMENT_BYTES {
            prop_assert!(
                matches!(result, Err(LogError::RecordListTooLarge { .. })),
                "a {}-byte batch is larger than a segment: {:?}",
                bytes.len(),
                result
            );
            return Ok(());
        }
        let outcome = result.map_err(|e| fail(format!("append of {} bytes: {e}", bytes.len())))?;
        prop_assert!(
            !outcome.is_duplicate(),
            "batches without a producer id are never duplicates"
        );
        let info = outcome.info();
        let n = records.len() as u64;
        prop_assert_eq!(info.first_offset, Offset(m.leo), "first offset");
        prop_assert_eq!(info.last_offset, Offset(m.leo + n - 1), "last offset");
        prop_assert_eq!(info.log_start_offset, Offset(m.log_start));
        prop_assert_eq!(info.batches, 1);
        prop_assert_eq!(info.bytes, bytes.len());
        let append_time = self.append_time.then_some(NOW);
        prop_assert_eq!(info.log_append_time, append_time);
        let max_ts = records.iter().map(|r| r.timestamp).max().expect("records");
        prop_assert_eq!(info.max_timestamp, append_time.unwrap_or(max_ts));
        m.batches.push(Stored {
            base: m.leo,
            last: m.leo + n - 1,
            bytes: expected_stored(&bytes, m.leo, append_time),
            records: records
                .into_iter()
                .map(|r| (r.timestamp, r.value))
                .collect(),
        });
        m.leo += n;
        Ok(())
    }

    fn reopen(
        &mut self,
        clean: bool,
        checkpointed_recovery_point: bool,
        tear: Option<&Index>,
    ) -> TestCaseResult {
        let log = self.log.take().expect("log is open");
        let before_rp = log.recovery_point().0;
        let active_base = log.segment_base_offsets().last().expect("active segment").0;
        let recovery_point = if clean {
            log.close().map_err(|e| fail(format!("close: {e}")))?;
            self.model.leo
        } else {
            // A crash: nothing is flushed or closed; the process just goes away.
            drop(log);
            if let Some(tear) = tear {
                self.tear_last_batch(tear, active_base, before_rp)?;
            }
            if checkpointed_recovery_point {
                before_rp
            } else {
                0
            }
        };
        let log = open_log(
            self.dir.path(),
            &self.config,
            &self.cache,
            recovery_point,
            self.model.log_start,
            clean,
        )?;
        self.log = Some(log);
        // Nothing was lost: every write(2) returned before the crash, so the page cache has it.
        self.model.hw = self.model.log_start;
        self.check_state()?;
        self.check_read_all(4096)
    }

    /// Cuts the active segment's `.log` file inside its last batch, as a crash during that
    /// batch's write could, if the batch was not flushed and not below the high watermark
    /// (committed data is never torn). Recovery must drop exactly that batch.
    fn tear_last_batch(
        &mut self,
        tear: &Index,
        active_base: u64,
        recovery_point: u64,
    ) -> TestCaseResult {
        let m = &mut self.model;
        let Some(last) = m.batches.last() else {
            return Ok(());
        };
        if last.base < active_base || last.base < recovery_point || last.base < m.hw {
            return Ok(());
        }
        let position: usize = m
            .batches
            .iter()
            .filter(|b| b.base >= active_base && b.base < last.base)
            .map(|b| b.bytes.len())
            .sum();
        let path = self.dir.path().join(format!("{active_base:020}.log"));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| fail(format!("opening {}: {e}", path.display())))?;
        let len = file.metadata().map_err(|e| fail(e.to_string()))?.len();
        prop_assert_eq!(
            len,
            (position + last.bytes.len()) as u64,
            "size of {}",
            path.display()
        );
        let cut = position + tear.index(last.bytes.len());
        file.set_len(cut as u64)
            .map_err(|e| fail(format!("cutting {}: {e}", path.display())))?;
        m.leo = last.base;
        m.batches.pop();
        Ok(())
    }

    /// LEO, log start, high watermark, and the segment layout against the model. Drops model
    /// batches of segments that DeleteRecords removed (all below the log start offset).
    fn check_state(&mut self) -> TestCaseResult {
        let log = self.log.as_ref().expect("log is open");
        let m = &mut self.model;
        prop_assert_eq!(log.log_end_offset(), Offset(m.leo), "log end offset");
        prop_assert_eq!(
            log.log_start_offset(),
            Offset(m.log_start),
            "log start offset"
        );
        prop_assert_eq!(log.high_watermark(), Offset(m.hw), "high watermark");
        let bases: Vec<u64> = log.segment_base_offsets().iter().map(|o| o.0).collect();
        prop_assert!(
            bases.windows(2).all(|w| w[0] < w[1]),
            "segment bases not ascending: {:?}",
            bases
        );
        let first = bases[0];
        prop_assert!(
            first <= m.log_start,
            "first segment {} starts above the log start {}",
            first,
            m.log_start
        );
        let gone = m.batches.partition_point(|b| b.base < first);
        if let Some(b) = m.batches[..gone].last() {
            prop_assert!(
                b.last < first,
                "first segment base {} splits batch {}..={}",
                first,
                b.base,
                b.last
            );
            prop_assert!(
                b.last < m.log_start,
                "deleted batch {}..={} at/after log start",
                b.base,
                b.last
            );
        }
        m.batches.drain(..gone);
        // No segment splits a batch, and none is larger than segment.bytes.
        for (k, &base) in bases.iter().enumerate() {
            let end = bases.get(k + 1).copied().unwrap_or(u64::MAX);
            prop_assert!(
                base == m.leo || m.batches.iter().any(|b| b.base == base),
                "segment base {} is not a batch boundary (LEO {}, segments {:?})",
                base,
                m.leo,
                bases
            );
            let size: usize = m
                .batches
                .iter()
                .filter(|b| b.base >= base && b.base < end)
                .map(|b| b.bytes.len())
                .sum();
            prop_assert!(
                size <= SEGMENT_BYTES,
                "segment {} holds {} bytes",
                base,
                size
            );
        }
        let total: usize = m.batches.iter().map(|b| b.bytes.len()).sum();
        prop_assert_eq!(log.size_bytes(), total as u64, "bytes in all segments");
        Ok(())
    }

    /// One read against the model. Below the log start or above LEO: `OffsetOutOfRange`.
    /// Otherwise the whole stored batches from the one holding `start`, all below the bound
    /// (`upper` capped at LEO; a batch straddling it is excluded, and nothing is returned if
    /// the first one straddles it), within one segment, at most `max_bytes` unless it is
    /// the single first batch, and maximal: the next batch is past the bound, would not fit,
    /// starts the next segment, or does not exist. `None` at LEO or when `start >= bound`.
    fn check_read(&self, start: u64, max_bytes: usize, upper: Option<u64>) -> TestCaseResult {
        let log = self.log();
        let m = &self.model;
        let what = format!(
            "read({start}, {max_bytes}, {upper:?}) [log {}..{}]",
            m.log_start, m.leo
        );
        let got = log.read(Offset(start), max_bytes, upper.map(Offset));
        if start < m.log_start || start > m.leo {
            prop_assert!(
                matches!(got, Err(LogError::OffsetOutOfRange { .. })),
                "{}: expected OffsetOutOfRange, got {:?}",
                what,
                got
            );
            return Ok(());
        }
        let got = got.map_err(|e| fail(format!("{what}: {e}")))?;
        let bound = upper.map_or(m.leo, |u| u.min(m.leo));
        let expected: Option<std::ops::Range<usize>> = match m.holder(start) {
            None => None,
            Some(_) if start >= bound => None,
            Some(i) if m.batches[i].last >= bound => None,
            Some(i) => {
                let bases = log.segment_base_offsets();
                let mut total = m.batches[i].bytes.len();
                let mut j = i + 1;
                while let Some(next) = m.batches.get(j) {
                    let fits = next.last < bound
                        && total + next.bytes.len() <= max_bytes
                        && !bases.contains(&Offset(next.base));
                    if !fits {
                        break;
                    }
                    total += next.bytes.len();
                    j += 1;
                }
                Some(i..j)
            }
        };
        let Some(range) = expected else {
            prop_assert!(
                got.is_none(),
                "{}: expected nothing, got {:?}",
                what,
                got.map(|s| (s.first_offset, s.len))
            );
            return Ok(());
        };
        let want: Vec<(u64, u64, usize)> = m.batches[range.clone()]
            .iter()
            .map(|b| (b.base, b.last, b.bytes.len()))
            .collect();
        let Some(slice) = got else {
            return Err(fail(format!(
                "{what}: expected batches {want:?}, got nothing"
            )));
        };
        let bytes = slice
            .read_to_vec()
            .map_err(|e| fail(format!("{what}: reading the slice: {e}")))?;
        let got_batches = batches_in(&bytes)?;
        prop_assert_eq!(&got_batches, &want, "{}: batches returned", what);
        prop_assert_eq!(
            slice.first_offset,
            Offset(want[0].0),
            "{}: slice first offset",
            what
        );
        let expected_bytes: Vec<u8> = m.batches[range.clone()]
            .iter()
            .flat_map(|b| b.bytes.iter().copied())
            .collect();
        prop_assert!(
            bytes == expected_bytes,
            "{}: stored bytes differ from the model",
            what
        );
        // An independent decoder reads what we appended, at the offsets we were given.
        let decoded = decode(&bytes);
        let want_records: Vec<(i64, i64, Option<Vec<u8>>)> = m.batches[range]
            .iter()
            .flat_map(|b| {
                b.records
                    .iter()
                    .enumerate()
                    .map(move |(i, (ts, v))| ((b.base + i as u64) as i64, *ts, v.clone()))
            })
            .collect();
        prop_assert!(decoded == want_records, "{}: decoded records differ", what);
        Ok(())
    }

    /// Everything from the log start, read in `max_bytes` steps, equals the model.
    fn check_read_all(&self, max_bytes: usize) -> TestCaseResult {
        let log = self.log();
        let m = &self.model;
        let mut out = Vec::new();
        let mut next = m.log_start;
        loop {
            let slice = log
                .read(Offset(next), max_bytes, None)
                .map_err(|e| fail(format!("read({next}) while reading everything: {e}")))?;
            let Some(slice) = slice else { break };
            let bytes = slice.read_to_vec().map_err(|e| fail(e.to_string()))?;
            let batches = batches_in(&bytes)?;
            prop_assert!(!batches.is_empty(), "empty slice at {}", next);
            next = batches.last().expect("non-empty").1 + 1;
            out.extend_from_slice(&bytes);
        }
        prop_assert_eq!(
            next.max(m.log_start),
            m.leo.max(m.log_start),
            "reading everything stopped early"
        );
        let from = m.holder(m.log_start).unwrap_or(m.batches.len());
        let want: Vec<u8> = m.batches[from..]
            .iter()
            .flat_map(|b| b.bytes.iter().copied())
            .collect();
        prop_assert!(
            out == want,
            "reading everything from {} differs from the model",
            m.log_start
        );
        Ok(())
    }

    /// `read(o, 1, None)` at every offset in `[log start, LEO)` returns exactly the batch
    /// holding `o`.
    fn check_every_offset(&self) -> TestCaseResult {
        let log = self.log();
        let m = &self.model;
        for o in m.log_start..m.leo {
            let slice = log
                .read(Offset(o), 1, None)
                .map_err(|e| fail(format!("read({o}, 1): {e}")))?
                .ok_or_else(|| {
                    fail(format!("read({o}, 1) returned nothing below LEO {}", m.leo))
                })?;
            let bytes = slice.read_to_vec().map_err(|e| fail(e.to_string()))?;
            let batches = batches_in(&bytes)?;
            prop_assert_eq!(batches.len(), 1, "read({}, 1) returned {:?}", o, batches);
            let (base, last, _) = batches[0];
            prop_assert!(
                base <= o && o <= last,
                "read({}, 1) returned batch {}..={}",
                o,
                base,
                last
            );
            prop_assert_eq!(slice.first_offset, Offset(base));
            let want = &m.batches[m.holder(o).expect("holder")];
            prop_assert!(
                bytes == want.bytes,
                "read({}, 1): bytes differ from the model",
                o
            );
        }
        Ok(())
    }

    /// ListOffsets by timestamp and MAX_TIMESTAMP against brute force.
    /// Negative targets are protocol sentinels (latest, earliest, max) that never reach the
    /// log, so only targets from 0 are asked; records without a timestamp (-1) never match.
    fn check_timestamps(&self, targets: &[i64]) -> TestCaseResult {
        let log = self.log();
        let m = &self.model;
        // With LogAppendTime every record carries the append time.
        let append_time = self.append_time;
        let timeline = |from: u64| {
            m.records_from(from)
                .map(move |(o, ts, _)| (o, if append_time { NOW } else { ts }))
        };
        let mut targets = targets.to_vec();
        for (_, ts) in timeline(0) {
            targets.extend([ts - 1, ts, ts + 1]);
        }
        targets.retain(|&t| t >= 0);
        targets.sort_unstable();
        targets.dedup();
        for &t in &targets {
            let got = log
                .offset_for_timestamp(t)
                .map_err(|e| fail(format!("offset_for_timestamp({t}): {e}")))?
                .map(|r| (r.offset.0, r.timestamp, r.leader_epoch));
            let want = timeline(m.log_start)
                .find(|&(_, ts)| ts >= t)
                .map(|(o, ts)| (o, ts, EPOCH));
            prop_assert_eq!(
                got,
                want,
                "offset_for_timestamp({}) [log {}..{}]",
                t,
                m.log_start,
                m.leo
            );
        }
        // MAX_TIMESTAMP looks at every record still stored (as Kafka does, segments are not
        // filtered by the log start offset); none when no record has a timestamp.
        let got = log
            .max_timestamp_offset()
            .map_err(|e| fail(format!("max_timestamp_offset: {e}")))?
            .map(|r| (r.offset.0, r.timestamp));
        let mut want: Option<(u64, i64)> = None;
        for (o, ts) in timeline(0) {
            if ts >= 0 && want.is_none_or(|(_, best)| ts > best) {
                want = Some((o, ts));
            }
        }
        prop_assert_eq!(
            got,
            want,
            "max_timestamp_offset [log {}..{}]",
            m.log_start,
            m.leo
        );
        Ok(())
    }
}

/// `cases` per test, unless `PROPTEST_CASES` asks for more (a longer soak run).
fn config(cases: u32) -> ProptestConfig {
    let defaults = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            defaults.cases
        } else {
            cases
        },
        // Do not write proptest-regressions files into the source tree.
        failure_persistence: None,
        ..defaults
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Random operations, every read checked against the model.
    #[test]
    fn reads_match_a_brute_force_model(
        append_time in prop::bool::weighted(0.2),
        ops in prop::collection::vec(any_op(), 1..120),
    ) {
        let mut h = Harness::new(append_time)?;
        for op in &ops {
            h.apply(op)?;
        }
        h.check_read_all(1)?;
        h.check_read_all(1 << 20)?;
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Time lookups over unordered timestamps, against brute force.
    #[test]
    fn timestamp_lookup_matches_brute_force(
        append_time in prop::bool::weighted(0.15),
        ops in prop::collection::vec(timestamp_op(), 1..100),
        targets in prop::collection::vec(0i64..320, 0..20),
    ) {
        let mut h = Harness::new(append_time)?;
        for op in &ops {
            h.apply(op)?;
            if matches!(op, Op::Reopen { .. } | Op::Truncate { .. } | Op::DeleteRecords { .. }) {
                h.check_timestamps(&targets)?;
            }
        }
        h.check_timestamps(&targets)?;
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// A one-byte read at every offset finds the batch holding it, across many segments and
    /// index entries (and after reopens, with trimmed or rebuilt indexes).
    #[test]
    fn offset_lookup_at_every_offset(
        ops in prop::collection::vec(layout_op(), 10..160),
    ) {
        let mut h = Harness::new(false)?;
        for op in &ops {
            h.apply(op)?;
        }
        h.check_every_offset()?;
        h.reopen(false, false, None)?;
        h.check_every_offset()?;
    }
}
