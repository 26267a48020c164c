//! Compaction end to end: the real `weir-broker` binary cleans `cleanup.policy=compact` topics
//! from its housekeeping task, and librdkafka (the `rdkafka` crate) reads back exactly what a
//! compacted log must hold.
//!
//! Every test keeps a model of what the broker acknowledged, `(partition, offset) → record`,
//! and waits (polling, with a deadline) until the cleaner has caught up: its checkpoint
//! (`cleaner-offset-checkpoint`, the first dirty offset) reached the active segment's base. The
//! log is then fully determined by the model: below that offset, each key's latest record
//! there (tombstones too until they expire); from it on, everything produced.
//!
//! Record timestamps are set by the producer, a synthetic second apart per round of writes, so
//! that `segment.ms` (which compares record timestamps) rolls exactly one segment per round
//! without waiting for the wall clock; they lie in the past, which CreateTime allows.

mod process;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use process::BrokerProcess;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders, Timestamp};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use weir_broker::log::batch::BatchHeader;

/// Distinct keys written.
const KEYS: usize = 240;
/// Random writes per round.
const PER_ROUND: usize = 100;
/// Synthetic time between two rounds' timestamps; more than `SEGMENT_MS`, so every round's
/// first append to a partition rolls its segment.
const ROUND_MS: i64 = 1_000;
const SEGMENT_MS: &str = "500";
/// The round that writes a tombstone for every deleted key; they are not written again.
const DELETE_ROUND: usize = 8;
/// How long any one condition is waited for.
const PATIENCE: Duration = Duration::from_secs(30);

fn deleted(key: usize) -> bool {
    key.is_multiple_of(8)
}

/// One record, as produced and as read back.
#[derive(Clone, PartialEq, Eq)]
struct Rec {
    key: Vec<u8>,
    /// `None`: a tombstone.
    value: Option<Vec<u8>>,
    timestamp: i64,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

impl std::fmt::Debug for Rec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        f.debug_struct("Rec")
            .field("key", &text(&self.key))
            .field("value", &self.value.as_deref().map(text))
            .field("timestamp", &self.timestamp)
            .field("headers", &self.headers)
            .finish()
    }
}

/// What the broker acknowledged: partition → offset → (round, record).
#[derive(Default)]
struct Model {
    logs: BTreeMap<i32, BTreeMap<i64, (usize, Rec)>>,
}

impl Model {
    fn log(&self, partition: i32) -> &BTreeMap<i64, (usize, Rec)> {
        &self.logs[&partition]
    }

    fn produced(&self) -> usize {
        self.logs.values().map(BTreeMap::len).sum()
    }

    fn tombstones(&self) -> usize {
        self.logs
            .values()
            .flat_map(BTreeMap::values)
            .filter(|(_, r)| r.value.is_none())
            .count()
    }

    /// The first offset of the partition's last round: where its active segment starts.
    fn last_round_start(&self, partition: i32) -> i64 {
        let log = self.log(partition);
        let (_, (last_round, _)) = log.last_key_value().expect("partition written");
        log.iter()
            .find(|(_, (round, _))| round == last_round)
            .map(|(offset, _)| *offset)
            .expect("its own round")
    }

    /// What a log cleaned up to `clean_end` holds: below it, each key's latest record there,
    /// except tombstones below `tombstones_from`; from it on, every record.
    fn expected(&self, partition: i32, clean_end: i64, tombstones_from: i64) -> Vec<(i64, Rec)> {
        let log = self.log(partition);
        let mut latest = HashMap::new();
        for (offset, (_, rec)) in log.range(..clean_end) {
            latest.insert(&rec.key, *offset);
        }
        log.iter()
            .filter(|(offset, (_, rec))| {
                **offset >= clean_end
                    || (latest[&rec.key] == **offset
                        && (rec.value.is_some() || **offset >= tombstones_from))
            })
            .map(|(offset, (_, rec))| (*offset, rec.clone()))
            .collect()
    }
}

/// xorshift64*: a fixed, dependency-free sequence of writes.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

/// One round's writes, `(key, tombstone)`: `PER_ROUND` to random keys (one in ten a
/// tombstone, so some keys are deleted and written again later), and from `DELETE_ROUND` on
/// none to the deleted keys, which that round deletes for good.
fn writes_of_round(rng: &mut Rng, round: usize) -> Vec<(usize, bool)> {
    let mut writes = Vec::with_capacity(PER_ROUND + KEYS);
    while writes.len() < PER_ROUND {
        let key = rng.below(KEYS);
        if round >= DELETE_ROUND && deleted(key) {
            continue;
        }
        writes.push((key, rng.below(10) == 0));
    }
    if round == DELETE_ROUND {
        writes.extend((0..KEYS).filter(|&k| deleted(k)).map(|k| (k, true)));
    }
    writes
}

fn key_of(key: usize) -> Vec<u8> {
    format!("key-{key:04}").into_bytes()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

fn producer(bootstrap: &str, compression: &str, idempotent: bool) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("compression.type", compression)
        .set("enable.idempotence", idempotent.to_string())
        .set("linger.ms", "5")
        .set("acks", "all")
        .set("message.timeout.ms", "20000")
        .create()
        .expect("producer")
}

/// Writes one round, records are partitioned by key; waits for every acknowledgement and
/// adds each record at its acknowledged offset to the model.
async fn produce_round(
    producer: &FutureProducer,
    topic: &str,
    t0: i64,
    round: usize,
    rng: &mut Rng,
    model: &mut Model,
) {
    let mut pending = Vec::new();
    for (i, (key, tombstone)) in writes_of_round(rng, round).into_iter().enumerate() {
        let rec = Rec {
            key: key_of(key),
            value: (!tombstone)
                .then(|| format!("{key}/{round}/{i};").repeat(1 + i % 7).into_bytes()),
            timestamp: t0 + round as i64 * ROUND_MS + i as i64,
            headers: if i.is_multiple_of(3) {
                vec![("round".to_owned(), Some(round.to_string().into_bytes()))]
            } else {
                vec![]
            },
        };
        let mut headers = OwnedHeaders::new();
        for (k, v) in &rec.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut record = FutureRecord::<Vec<u8>, Vec<u8>>::to(topic)
            .key(&rec.key)
            .timestamp(rec.timestamp)
            .headers(headers);
        if let Some(v) = &rec.value {
            record = record.payload(v);
        }
        let future = producer
            .send_result(record)
            .map_err(|(e, _)| e)
            .expect("queued");
        pending.push((future, rec));
    }
    for (future, rec) in pending {
        let delivery = future
            .await
            .expect("not cancelled")
            .map_err(|(e, _)| e)
            .expect("delivered");
        let earlier = model
            .logs
            .entry(delivery.partition)
            .or_default()
            .insert(delivery.offset, (round, rec));
        assert!(
            earlier.is_none(),
            "offset {} of partition {} acknowledged twice",
            delivery.offset,
            delivery.partition
        );
    }
}

/// Produces `rounds`, pausing between them so that cleaning passes run while appends go on.
async fn produce_rounds(
    producer: &FutureProducer,
    topic: &str,
    t0: i64,
    rounds: std::ops::Range<usize>,
    rng: &mut Rng,
    model: &mut Model,
    pause: Duration,
) {
    for round in rounds {
        produce_round(producer, topic, t0, round, rng, model).await;
        tokio::time::sleep(pause).await;
    }
}

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(15)));
    let created = admin.create_topics(&[new], &options).await.unwrap();
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
}

/// The broker with a cleaner that looks every 200 ms.
fn start_broker(data_dir: &Path) -> BrokerProcess {
    BrokerProcess::start(
        data_dir,
        &[
            "auto.create.topics.enable=false",
            "log.retention.check.interval.ms=200",
        ],
    )
}

/// The `cleaner-offset-checkpoint` entries of `topic`: partition → first dirty offset.
fn cleaner_checkpoints(data_dir: &Path, topic: &str) -> BTreeMap<i32, i64> {
    let text =
        std::fs::read_to_string(data_dir.join("cleaner-offset-checkpoint")).unwrap_or_default();
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            match fields[..] {
                [t, p, o] if t == topic => Some((p.parse().unwrap(), o.parse().unwrap())),
                _ => None,
            }
        })
        .collect()
}

/// Base offsets of a partition's segments, oldest first; the last is the active one.
fn segment_bases(data_dir: &Path, topic: &str, partition: i32) -> Vec<i64> {
    let dir = data_dir.join(format!("{topic}-{partition}"));
    let mut bases: Vec<i64> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| {
                    let name = e.ok()?.file_name().into_string().ok()?;
                    name.strip_suffix(".log")?.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default();
    bases.sort_unstable();
    bases
}

/// The value of `weir_log_cleaner_total{kind}`; 0 before the first cleaning round reports.
fn cleaner_counter(broker: &BrokerProcess, kind: &str) -> u64 {
    let (code, body) = broker.http_get("/metrics").expect("/metrics answers");
    assert_eq!(code, 200, "{body}");
    let prefix = format!("weir_log_cleaner_total{{kind=\"{kind}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse::<f64>().expect("a number") as u64)
}

/// Waits until every partition of `topic` is cleaned up to its active segment, which starts
/// at its last round, and the cleaner has reported removing records; returns the
/// checkpoints.
async fn wait_until_cleaned(
    broker: &BrokerProcess,
    topic: &str,
    model: &Model,
) -> BTreeMap<i32, i64> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let checkpoints = cleaner_checkpoints(&broker.data_dir, topic);
        let actives: BTreeMap<i32, i64> = model
            .logs
            .keys()
            .map(|&p| {
                let bases = segment_bases(&broker.data_dir, topic, p);
                (p, bases.last().copied().unwrap_or(-1))
            })
            .collect();
        let expected_actives: BTreeMap<i32, i64> = model
            .logs
            .keys()
            .map(|&p| (p, model.last_round_start(p)))
            .collect();
        let removed = cleaner_counter(broker, "records_removed");
        if checkpoints == actives && actives == expected_actives && removed > 0 {
            return checkpoints;
        }
        assert!(
            Instant::now() < deadline,
            "not cleaned in {PATIENCE:?}: checkpoints {checkpoints:?}, active segments \
             {actives:?} (each round rolls one, so expected at {expected_actives:?}), \
             records_removed {removed}; broker log:\n{}",
            broker.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn record_of(m: &BorrowedMessage<'_>) -> Rec {
    let timestamp = m.timestamp();
    assert!(
        matches!(timestamp, Timestamp::CreateTime(_)),
        "offset {}: {timestamp:?}",
        m.offset()
    );
    Rec {
        key: m.key().expect("every record has a key").to_vec(),
        value: m.payload().map(<[u8]>::to_vec),
        timestamp: timestamp.to_millis().expect("a timestamp"),
        headers: m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// A consumer for assign and offset lookups only (librdkafka still wants a `group.id`).
fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "compaction-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("check.crcs", "true")
        .create()
        .expect("consumer")
}

/// Reads a partition by assign from `from` until it has read an offset at or past
/// `end - 1` (`end`: the high watermark to read everything, `from + 1` for the first record).
fn read_back(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    from: Offset,
    end: i64,
) -> Vec<(i64, Rec)> {
    let consumer = consumer(bootstrap);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, from).unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got: Vec<(i64, Rec)> = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while got.last().map_or(end > 0, |(offset, _)| offset + 1 < end) {
        assert!(
            Instant::now() < deadline,
            "partition {partition}: read from {from:?} up to {:?} of {end} in {PATIENCE:?}",
            got.last().map(|(offset, _)| offset)
        );
        match consumer.poll(Duration::from_millis(200)) {
            None | Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => panic!("consuming partition {partition}: {e}"),
            Some(Ok(m)) => {
                assert_eq!(m.partition(), partition);
                if let Some((last, _)) = got.last() {
                    assert!(
                        m.offset() > *last,
                        "partition {partition}: offset {} read after {last}",
                        m.offset()
                    );
                }
                got.push((m.offset(), record_of(&m)));
            }
        }
    }
    got
}

/// Reads every partition back and checks it is exactly what the model says a log cleaned
/// up to `checkpoints` holds, with tombstones kept from `tombstones_from` on (0: all kept);
/// also the watermarks and timestamp lookups. Returns what was read.
fn verify(
    broker: &BrokerProcess,
    topic: &str,
    model: &Model,
    checkpoints: &BTreeMap<i32, i64>,
    tombstones_from: &BTreeMap<i32, i64>,
) -> BTreeMap<i32, Vec<(i64, Rec)>> {
    let bootstrap = broker.bootstrap();
    let lookups = consumer(&bootstrap);
    let mut views = BTreeMap::new();
    for (&p, log) in &model.logs {
        let clean_end = checkpoints[&p];
        let tombstones_from = tombstones_from.get(&p).copied().unwrap_or(0);
        let end = log.last_key_value().map(|(o, _)| o + 1).unwrap();
        let watermarks = lookups
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        assert_eq!(
            watermarks,
            (0, end),
            "partition {p}: compaction moves neither the log start nor the end"
        );
        let got = read_back(&bootstrap, topic, p, Offset::Beginning, end);

        for (offset, rec) in &got {
            let (_, produced) = log
                .get(offset)
                .unwrap_or_else(|| panic!("partition {p}: offset {offset} was never produced"));
            assert_eq!(rec, produced, "partition {p} offset {offset}");
        }
        // What was read is a subset of the model in offset order, so comparing the offsets
        // compares everything.
        let got_offsets: BTreeSet<i64> = got.iter().map(|(o, _)| *o).collect();
        let expected: BTreeSet<i64> = model
            .expected(p, clean_end, tombstones_from)
            .into_iter()
            .map(|(o, _)| o)
            .collect();
        let first_ten = |offsets: std::collections::btree_set::Difference<'_, i64>| {
            offsets
                .take(10)
                .map(|o| (*o, log[o].1.clone()))
                .collect::<Vec<_>>()
        };
        assert!(
            got_offsets == expected,
            "partition {p} cleaned up to {clean_end}, tombstones kept from {tombstones_from}: \
             {} records read that should be gone, the first {:?}; {} missing, the first {:?}",
            got_offsets.difference(&expected).count(),
            first_ten(got_offsets.difference(&expected)),
            expected.difference(&got_offsets).count(),
            first_ten(expected.difference(&got_offsets)),
        );
        // Reading from an offset compaction removed starts at the next record kept.
        let removed: Vec<i64> = log
            .keys()
            .filter(|o| !got_offsets.contains(o))
            .copied()
            .collect();
        for &from in [
            removed.first(),
            removed.get(removed.len() / 2),
            removed.last(),
        ]
        .into_iter()
        .flatten()
        {
            let next_kept = got_offsets.range(from..).next().copied();
            let first_read = read_back(&bootstrap, topic, p, Offset::Offset(from), from + 1)
                .first()
                .map(|(o, _)| *o);
            assert_eq!(
                first_read, next_kept,
                "partition {p}: the first record read from removed offset {from}"
            );
        }
        assert!(
            got.len() < log.len(),
            "partition {p}: {} records read of {} produced",
            got.len(),
            log.len()
        );

        let mut latest: BTreeMap<&[u8], (i64, &Rec)> = BTreeMap::new();
        for (offset, (_, rec)) in log {
            latest.insert(&rec.key, (*offset, rec));
        }
        let mut last_read: BTreeMap<&[u8], &Rec> = BTreeMap::new();
        let mut count: BTreeMap<&[u8], usize> = BTreeMap::new();
        for (_, rec) in &got {
            last_read.insert(&rec.key, rec);
            *count.entry(&rec.key).or_default() += 1;
        }
        for (key, (offset, rec)) in &latest {
            let name = String::from_utf8_lossy(key);
            if rec.value.is_none() && *offset < tombstones_from {
                assert!(
                    !last_read.contains_key(key),
                    "partition {p}: deleted {name} is still there; its tombstone at {offset} \
                     expired"
                );
                continue;
            }
            assert_eq!(
                last_read.get(key).copied(),
                Some(*rec),
                "partition {p}: the last record of {name} is its latest, at {offset}"
            );
            if *offset < clean_end {
                assert_eq!(
                    count.get(key),
                    Some(&1),
                    "partition {p}: {name}, latest at {offset} in the cleaned segments"
                );
            }
        }

        // ListOffsets by timestamp finds the first record still there at or after it, also
        // for timestamps of records that were removed.
        let ordered = log
            .values()
            .zip(log.values().skip(1))
            .all(|((_, a), (_, b))| a.timestamp <= b.timestamp);
        assert!(
            ordered,
            "partition {p}: timestamps follow offsets as produced"
        );
        for (_, (_, probe)) in log.iter().step_by(97).chain(log.last_key_value()) {
            let wanted = got
                .iter()
                .find(|(_, rec)| rec.timestamp >= probe.timestamp)
                .map(|(offset, _)| *offset);
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, p, Offset::Offset(probe.timestamp))
                .unwrap();
            let found = lookups
                .offsets_for_times(tpl, Duration::from_secs(10))
                .unwrap();
            let found = found.elements_for_topic(topic)[0].offset();
            assert_eq!(
                found,
                Offset::Offset(wanted.expect("the last record is read")),
                "partition {p}: offset for timestamp {}",
                probe.timestamp
            );
        }
        views.insert(p, got);
    }
    views
}

/// Walks the stored batches of the segments below `clean_end` (the cleaned ones): each
/// compressed or empty batch's codec, and whether some `codec` batch lost records (fewer
/// records than offsets), i.e. was rebuilt and re-compressed by the cleaner.
fn cleaned_batches(data_dir: &Path, topic: &str, partition: i32, clean_end: i64) -> CleanedBatches {
    let mut out = CleanedBatches::default();
    let dir = data_dir.join(format!("{topic}-{partition}"));
    for base in segment_bases(data_dir, topic, partition) {
        if base >= clean_end {
            continue;
        }
        let bytes = std::fs::read(dir.join(format!("{base:020}.log"))).unwrap();
        let mut at = 0;
        while at < bytes.len() {
            let header = BatchHeader::parse(&bytes[at..]).unwrap();
            let codec = format!("{:?}", header.compression().unwrap());
            if header.records_count == 0 {
                out.empty += 1;
            } else {
                if header.records_count < header.last_offset_delta + 1 {
                    *out.rebuilt.entry(codec.clone()).or_default() += 1;
                }
                out.codecs.insert(codec);
            }
            at += header.total_size();
        }
    }
    out
}

#[derive(Debug, Default)]
struct CleanedBatches {
    /// Codecs of batches with records.
    codecs: BTreeSet<String>,
    /// Batches that lost records, by codec.
    rebuilt: BTreeMap<String, usize>,
    empty: usize,
}

fn assert_no_cleaner_failure(broker: &BrokerProcess) {
    let log = broker.log();
    assert!(
        !log.contains("cleaning failed") && !log.contains("log cleaner failed"),
        "{log}"
    );
    assert_eq!(cleaner_counter(broker, "logs_failed"), 0);
}

fn tombstones_read(views: &BTreeMap<i32, Vec<(i64, Rec)>>) -> usize {
    views
        .values()
        .flatten()
        .filter(|(_, r)| r.value.is_none())
        .count()
}

fn records_read(views: &BTreeMap<i32, Vec<(i64, Rec)>>) -> usize {
    views.values().map(Vec::len).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topic_keeps_the_latest_value_per_key_and_its_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(&dir.path().join("data"));
    let topic = "compacted";
    create_topic(
        &broker.bootstrap(),
        topic,
        3,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", SEGMENT_MS),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "3600000"),
        ],
    )
    .await;
    // An idempotent producer: the cleaner also keeps each producer's last batch, emptied.
    let producer = producer(&broker.bootstrap(), "lz4", true);
    let mut model = Model::default();
    let t0 = now_ms() - 10 * 60 * 1000;
    let mut rng = Rng(0x5eed_0001);
    produce_rounds(
        &producer,
        topic,
        t0,
        0..20,
        &mut rng,
        &mut model,
        Duration::from_millis(50),
    )
    .await;
    assert_eq!(model.logs.len(), 3, "every partition written");

    let checkpoints = wait_until_cleaned(&broker, topic, &model).await;
    let views = verify(&broker, topic, &model, &checkpoints, &BTreeMap::new());
    assert_eq!(
        cleaner_checkpoints(&broker.data_dir, topic),
        checkpoints,
        "the cleaner stays put while nothing is produced"
    );

    // Every tombstone that is a key's latest is kept (delete.retention.ms is an hour).
    let deleted_keys_read = views
        .values()
        .flatten()
        .filter(|(_, r)| r.value.is_none() && deleted(key_index(&r.key)))
        .count();
    assert_eq!(deleted_keys_read, (0..KEYS).filter(|&k| deleted(k)).count());

    // The metrics count exactly what went: no retention runs on a compact-only topic.
    assert_eq!(
        cleaner_counter(&broker, "records_removed") as usize,
        model.produced() - records_read(&views)
    );
    assert_eq!(
        cleaner_counter(&broker, "tombstones_removed") as usize,
        model.tombstones() - tombstones_read(&views)
    );
    assert!(cleaner_counter(&broker, "segments_cleaned") > 0);
    assert_no_cleaner_failure(&broker);

    for (&p, &clean_end) in &checkpoints {
        let batches = cleaned_batches(&broker.data_dir, topic, p, clean_end);
        assert!(
            batches.codecs.contains("Lz4") && batches.rebuilt.get("Lz4").is_some_and(|&n| n > 0),
            "partition {p}: cleaned batches {batches:?}"
        );
        assert!(
            batches
                .codecs
                .is_subset(&BTreeSet::from(["Lz4".into(), "None".into()])),
            "partition {p}: cleaned batches {batches:?}"
        );
    }
}

fn key_index(key: &[u8]) -> usize {
    std::str::from_utf8(key)
        .ok()
        .and_then(|k| k.strip_prefix("key-"))
        .and_then(|k| k.parse().ok())
        .expect("a key this test wrote")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_expire_after_delete_retention_ms() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(&dir.path().join("data"));
    let topic = "expiring";
    create_topic(
        &broker.bootstrap(),
        topic,
        2,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", SEGMENT_MS),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "0"),
        ],
    )
    .await;
    let producer = producer(&broker.bootstrap(), "zstd", false);
    let mut model = Model::default();
    let t0 = now_ms() - 10 * 60 * 1000;
    let mut rng = Rng(0x5eed_0002);
    produce_rounds(
        &producer,
        topic,
        t0,
        0..16,
        &mut rng,
        &mut model,
        Duration::from_millis(50),
    )
    .await;
    let first = wait_until_cleaned(&broker, topic, &model).await;

    // A pass drops a tombstone only once it lies in the clean section, below the last clean
    // segment's time less delete.retention.ms (Kafka's delete horizon); one more round makes
    // the next pass see everything up to `first` as clean.
    produce_round(&producer, topic, t0, 16, &mut rng, &mut model).await;
    let checkpoints = wait_until_cleaned(&broker, topic, &model).await;
    let views = verify(&broker, topic, &model, &checkpoints, &first);

    let keys_read: BTreeSet<usize> = views
        .values()
        .flatten()
        .map(|(_, r)| key_index(&r.key))
        .collect();
    let deleted_read: Vec<&usize> = keys_read.iter().filter(|&&k| deleted(k)).collect();
    assert!(
        deleted_read.is_empty(),
        "deleted keys still read: {deleted_read:?}"
    );
    // Live keys are those whose latest record is a value; each is still read.
    let mut latest: BTreeMap<usize, bool> = BTreeMap::new();
    for (_, rec) in model.logs.values().flat_map(BTreeMap::values) {
        latest.insert(key_index(&rec.key), rec.value.is_some());
    }
    let live: BTreeSet<usize> = latest
        .iter()
        .filter(|(_, live)| **live)
        .map(|(k, _)| *k)
        .collect();
    assert!(live.len() > KEYS / 2, "{live:?}");
    let missing: Vec<&usize> = live.difference(&keys_read).collect();
    assert!(missing.is_empty(), "live keys not read: {missing:?}");
    assert_eq!(
        cleaner_counter(&broker, "records_removed") as usize,
        model.produced() - records_read(&views)
    );
    assert_eq!(
        cleaner_counter(&broker, "tombstones_removed") as usize,
        model.tombstones() - tombstones_read(&views)
    );
    assert!(
        tombstones_read(&views) < model.tombstones(),
        "tombstones were removed"
    );
    // Tombstones of the segment that was dirty in the last pass are younger than its delete
    // horizon: they stay, cleaned, until a later pass sees them in the clean section.
    let young_tombstones = views
        .iter()
        .flat_map(|(p, v)| v.iter().map(move |(o, r)| (*p, *o, r)))
        .filter(|(p, o, r)| r.value.is_none() && (first[p]..checkpoints[p]).contains(o))
        .count();
    assert!(
        young_tombstones > 0,
        "no tombstone kept below the checkpoint"
    );
    assert_no_cleaner_failure(&broker);
    for (&p, &clean_end) in &checkpoints {
        let batches = cleaned_batches(&broker.data_dir, topic, p, clean_end);
        assert!(
            batches.rebuilt.get("Zstd").is_some_and(|&n| n > 0),
            "partition {p}: cleaned batches {batches:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_survives_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = start_broker(&dir.path().join("data"));
    let topic = "restarted";
    create_topic(
        &broker.bootstrap(),
        topic,
        2,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", SEGMENT_MS),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "3600000"),
        ],
    )
    .await;
    let mut model = Model::default();
    let t0 = now_ms() - 10 * 60 * 1000;
    let mut rng = Rng(0x5eed_0003);
    let pause = Duration::from_millis(50);
    let producer_before = producer(&broker.bootstrap(), "snappy", false);
    produce_rounds(
        &producer_before,
        topic,
        t0,
        0..16,
        &mut rng,
        &mut model,
        pause,
    )
    .await;
    drop(producer_before);
    let checkpoints = wait_until_cleaned(&broker, topic, &model).await;
    let views = verify(&broker, topic, &model, &checkpoints, &BTreeMap::new());
    let segments = |broker: &BrokerProcess| {
        model
            .logs
            .keys()
            .map(|&p| (p, segment_bases(&broker.data_dir, topic, p)))
            .collect::<BTreeMap<_, _>>()
    };
    let segments_before = segments(&broker);

    assert!(
        broker.stop(),
        "clean shutdown exits 0; log:\n{}",
        broker.log()
    );
    assert!(broker.log().contains("clean shutdown complete"));
    broker.restart();
    assert_eq!(
        verify(&broker, topic, &model, &checkpoints, &BTreeMap::new()),
        views,
        "after a clean restart"
    );
    assert_eq!(cleaner_checkpoints(&broker.data_dir, topic), checkpoints);
    assert_eq!(segments(&broker), segments_before);

    broker.kill9();
    broker.restart();
    assert_eq!(
        verify(&broker, topic, &model, &checkpoints, &BTreeMap::new()),
        views,
        "after kill -9"
    );
    assert_eq!(cleaner_checkpoints(&broker.data_dir, topic), checkpoints);
    assert_eq!(segments(&broker), segments_before);

    // A crash at some point of a stretch where cleaning passes run between appends (where
    // exactly is left to chance), then more rounds: the log is still exactly the cleaned
    // model.
    let producer_during = producer(&broker.bootstrap(), "snappy", false);
    produce_rounds(
        &producer_during,
        topic,
        t0,
        16..24,
        &mut rng,
        &mut model,
        Duration::from_millis(120),
    )
    .await;
    broker.kill9();
    drop(producer_during);
    broker.restart();
    let producer_after = producer(&broker.bootstrap(), "snappy", false);
    produce_rounds(
        &producer_after,
        topic,
        t0,
        24..28,
        &mut rng,
        &mut model,
        pause,
    )
    .await;
    let checkpoints = wait_until_cleaned(&broker, topic, &model).await;
    verify(&broker, topic, &model, &checkpoints, &BTreeMap::new());
    assert_no_cleaner_failure(&broker);
    for (&p, &clean_end) in &checkpoints {
        let batches = cleaned_batches(&broker.data_dir, topic, p, clean_end);
        assert!(
            batches.rebuilt.get("Snappy").is_some_and(|&n| n > 0),
            "partition {p}: cleaned batches {batches:?}"
        );
    }
}
