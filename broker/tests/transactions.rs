//! Kafka transactions (issue 6) with real clients against real `weir-broker` processes:
//! librdkafka transactional producers and `read_committed` / `read_uncommitted` consumers,
//! a confluent-kafka copier process (`tests/python/txn_copier.py`) killed with SIGKILL,
//! and raw requests encoded by `kafka-protocol` for what no client sends on purpose.
//!
//! Broker settings the tests rely on, Kafka's names and meanings:
//! - `transaction.state.log.num.partitions` (50 by default): 5 here, so `__transaction_state`
//!   is created quickly; a transactional id's coordinator is the leader of its partition.
//! - `transaction.state.log.replication.factor` (3) and `transaction.state.log.min.isr` (2):
//!   1 and 1 on a standalone broker, 3 and 2 on the three-broker cluster.
//! - `transaction.abort.timed.out.transaction.cleanup.interval.ms` (10000): 500 where a test
//!   waits for the coordinator to abort a transaction past its `transaction.timeout.ms`.
//!
//! They are passed as `WEIR_*` environment variables ([`process::as_env`]) rather than
//! `--override`s: a broker without transactions refuses unknown `--override` keys and would
//! not start, where these tests should fail at the first transactional request. Each test ends
//! by asserting the brokers knew every one of them ([`assert_settings_applied`]).

mod cluster;
mod process;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cluster::{Cluster, eventually, partition_states};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ApiKey, ApiVersionsRequest, BrokerId, EndTxnRequest,
    FindCoordinatorRequest, InitProducerIdRequest, ListOffsetsRequest, ProduceRequest, ProducerId,
    TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use process::{BrokerProcess, as_env, free_port};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(60);
/// How long `init_transactions` may take: the first one creates `__transaction_state`.
const INIT_TIMEOUT: Duration = Duration::from_secs(30);
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// Transaction settings of a standalone broker (see the module comment).
const STANDALONE_TXN: &[&str] = &[
    "transaction.state.log.num.partitions=5",
    "transaction.state.log.replication.factor=1",
    "transaction.state.log.min.isr=1",
];

/// Transaction settings of the three-broker cluster.
const CLUSTER_TXN: &[&str] = &[
    "transaction.state.log.num.partitions=5",
    "transaction.state.log.replication.factor=3",
    "transaction.state.log.min.isr=2",
];

// Kafka error codes.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TXN_STATE: i16 = 48;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const PRODUCER_FENCED: i16 = 90;
const TRANSACTION_ABORTABLE: i16 = 120;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// A standalone broker (`broker,controller` roles) with `txn` settings in its environment.
fn standalone(dir: &Path, txn: &[&str]) -> BrokerProcess {
    BrokerProcess::start_with_env(
        &dir.join("data"),
        free_port(),
        &[
            "auto.create.topics.enable=false",
            "group.initial.rebalance.delay.ms=0",
        ],
        &as_env(txn),
    )
}

/// The brokers knew every `WEIR_*` setting the test gave them: none was skipped as unknown
/// (with a skipped key the test ran on the broker's defaults, not what it documents).
fn assert_settings_applied(brokers: &[&BrokerProcess]) {
    for b in brokers {
        let ignored = b.ignored_env_keys();
        assert!(
            ignored.is_empty(),
            "the broker on {} ignored settings the test relies on: {ignored:?}",
            b.bootstrap()
        );
    }
}

async fn create_topics(bootstrap: &str, topics: &[(&str, i32)], replicas: i32, min_isr: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions)| {
            NewTopic::new(name, *partitions, TopicReplication::Fixed(replicas))
                .set("min.insync.replicas", min_isr)
        })
        .collect();
    for result in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .expect("CreateTopics answered")
    {
        result.expect("topic created");
    }
}

fn txn_producer(bootstrap: &str, transactional_id: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .set("linger.ms", "5")
        .set("retry.backoff.ms", "100")
        .set("topic.metadata.refresh.interval.ms", "1000");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("transactional producer")
}

/// What the coordinator answers for `transactional_id` on the wire, for failure messages: the
/// FindCoordinator (key type transaction) and InitProducerId error codes.
fn coordinator_diagnosis(broker: &BrokerProcess, transactional_id: &str) -> String {
    let find = broker.try_call(
        1,
        &FindCoordinatorRequest::default()
            .with_key_type(KEY_TYPE_TRANSACTION)
            .with_key(StrBytes::from_string(transactional_id.to_owned())),
    );
    let init = broker.try_call(
        1,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_string(
                transactional_id.to_owned(),
            ))))
            .with_transaction_timeout_ms(60_000),
    );
    format!(
        "FindCoordinator(transaction, {transactional_id}) on {}: {:?}; InitProducerId: {:?}",
        broker.bootstrap(),
        find.map(|r| (
            r.error_code,
            r.error_message.map(|m| m.to_string()),
            r.node_id.0
        )),
        init.map(|r| (r.error_code, r.producer_id.0, r.producer_epoch)),
    )
}

/// `init_transactions`, failing with what the broker answers on the wire when it cannot.
fn init(producer: &FutureProducer, broker: &BrokerProcess, transactional_id: &str) {
    if let Err(e) = producer.init_transactions(INIT_TIMEOUT) {
        panic!(
            "init_transactions for {transactional_id} failed: {e}\n{}",
            coordinator_diagnosis(broker, transactional_id)
        );
    }
}

/// Sends `(topic, partition, value)` records and waits for each acknowledgement: the
/// `(partition, offset)` of each, or its error.
async fn send_all(
    producer: &FutureProducer,
    records: &[(String, i32, String)],
) -> Vec<Result<(i32, i64), KafkaError>> {
    let futures: Vec<_> = records
        .iter()
        .map(|(topic, partition, value)| {
            producer
                .send_result(
                    FutureRecord::<str, str>::to(topic)
                        .partition(*partition)
                        .key(value)
                        .payload(value),
                )
                .map_err(|(e, _)| e)
                .expect("queued")
        })
        .collect();
    let mut out = Vec::new();
    for f in futures {
        out.push(match f.await {
            Ok(Ok(d)) => Ok((d.partition, d.offset)),
            Ok(Err((e, _))) => Err(e),
            Err(_) => Err(KafkaError::Canceled),
        });
    }
    out
}

/// Sends records that must all be acknowledged.
async fn send_acked(producer: &FutureProducer, records: &[(String, i32, String)]) {
    for (r, result) in records.iter().zip(send_all(producer, records).await) {
        if let Err(e) = result {
            panic!("{r:?} not acknowledged: {e}");
        }
    }
}

/// `count` records `{prefix}-{topic}-{partition}-{i}` to every partition of every topic.
fn records(prefix: &str, topics: &[(&str, i32)], count: usize) -> Vec<(String, i32, String)> {
    let mut out = Vec::new();
    for (topic, partitions) in topics {
        for p in 0..*partitions {
            for i in 0..count {
                out.push((topic.to_string(), p, format!("{prefix}-{topic}-{p}-{i:04}")));
            }
        }
    }
    out
}

type Tp = (String, i32);

/// A consumer assigned to partitions from the beginning that keeps what it read, per
/// partition as `(offset, value)`. A record delivered again at an offset already read (after
/// a fetch-position reset) is not kept twice: what is stored at each offset is what counts.
struct Reader {
    consumer: BaseConsumer,
    read: BTreeMap<Tp, Vec<(i64, String)>>,
}

impl Reader {
    fn new(bootstrap: &str, isolation: &str, partitions: &[(&str, i32)]) -> Reader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("txn-reader-{isolation}"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", isolation)
            .set("fetch.wait.max.ms", "100")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for (topic, count) in partitions {
            for p in 0..*count {
                tpl.add_partition_offset(topic, p, Offset::Beginning)
                    .unwrap();
            }
        }
        consumer.assign(&tpl).unwrap();
        Reader {
            consumer,
            read: BTreeMap::new(),
        }
    }

    fn poll_once(&mut self) {
        match self.consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                let records = self
                    .read
                    .entry((m.topic().to_owned(), m.partition()))
                    .or_default();
                if records.last().is_none_or(|(last, _)| m.offset() > *last) {
                    records.push((m.offset(), value));
                }
            }
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
    }

    /// Polls for `period`: a window in which records that must not come would come.
    fn poll_for(&mut self, period: Duration) {
        let until = Instant::now() + period;
        while Instant::now() < until {
            self.poll_once();
        }
    }

    /// Polls until `done`, for up to [`WAIT`]; whether it got there.
    fn poll_until(&mut self, done: impl Fn(&Reader) -> bool) -> bool {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            if Instant::now() > deadline {
                return false;
            }
            self.poll_once();
        }
        true
    }

    fn values(&self) -> BTreeSet<String> {
        self.read
            .values()
            .flat_map(|r| r.iter().map(|(_, v)| v.clone()))
            .collect()
    }

    fn count(&self) -> usize {
        self.read.values().map(Vec::len).sum()
    }
}

/// `(high watermark, last stable offset)` of `topic-partition` from `leader`: ListOffsets
/// for the latest offset with `read_uncommitted` and with `read_committed`.
fn hw_and_lso(leader: &BrokerProcess, topic: &str, partition: i32) -> (i64, i64) {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let latest = |isolation: i8| {
        let response = leader.call(
            7,
            &ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(isolation)
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                        .with_partitions(vec![
                            ListOffsetsPartition::default()
                                .with_partition_index(partition)
                                .with_timestamp(-1),
                        ]),
                ]),
        );
        let p = &response.topics[0].partitions[0];
        assert_eq!(p.error_code, 0, "ListOffsets {topic}-{partition}: {p:?}");
        p.offset
    };
    (latest(0), latest(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_transaction_across_three_topics_is_visible_to_read_committed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = standalone(dir.path(), STANDALONE_TXN);
    let bootstrap = broker.bootstrap();
    let topics = [("tx-a", 3), ("tx-b", 3), ("tx-c", 3)];
    create_topics(&bootstrap, &topics, 1, "1").await;
    let per_partition = 20;

    let producer = txn_producer(&bootstrap, "three-topics", &[]);
    init(&producer, &broker, "three-topics");
    let committed = records("c", &topics, per_partition);
    producer.begin_transaction().unwrap();
    send_acked(&producer, &committed).await;
    producer.commit_transaction(TXN_TIMEOUT).expect("commit");

    let mut committed_reader = Reader::new(&bootstrap, "read_committed", &topics);
    let all = committed.len();
    assert!(
        committed_reader.poll_until(|r| r.count() >= all),
        "read_committed read {} of {all} committed records",
        committed_reader.count()
    );

    let aborted = records("a", &topics, per_partition);
    producer.begin_transaction().unwrap();
    send_acked(&producer, &aborted).await;
    producer.abort_transaction(TXN_TIMEOUT).expect("abort");
    // One more committed record per partition, behind the aborted ones: reading it proves the
    // read_committed consumer got past the aborted records and their ABORT marker.
    let after = records("s", &topics, 1);
    producer.begin_transaction().unwrap();
    send_acked(&producer, &after).await;
    producer.commit_transaction(TXN_TIMEOUT).expect("commit");

    assert!(
        committed_reader.poll_until(|r| r.count() >= all + after.len()),
        "read_committed did not get past the aborted transaction: read {:?}",
        committed_reader.read
    );
    committed_reader.poll_for(Duration::from_secs(1));
    let want: BTreeSet<String> = committed
        .iter()
        .chain(&after)
        .map(|(_, _, v)| v.clone())
        .collect();
    assert_eq!(
        committed_reader.values(),
        want,
        "read_committed reads exactly the committed records"
    );
    for (tp, read) in &committed_reader.read {
        assert!(
            read.windows(2).all(|w| w[0].1 < w[1].1),
            "{tp:?} out of order"
        );
    }

    // Per partition: committed 0..20, COMMIT marker at 20, aborted 21..41, ABORT marker at 41,
    // the last record at 42 and its COMMIT marker at 43.
    let n = i64::try_from(per_partition).unwrap();
    for (topic, partitions) in topics {
        for p in 0..partitions {
            let (hw, lso) = hw_and_lso(&broker, topic, p);
            assert_eq!(
                (hw, lso),
                (2 * n + 4, 2 * n + 4),
                "{topic}-{p}: high watermark and LSO after three ended transactions"
            );
        }
    }
    let mut uncommitted = Reader::new(&bootstrap, "read_uncommitted", &topics);
    let everything = all * 2 + after.len();
    assert!(
        uncommitted.poll_until(|r| r.count() >= everything),
        "read_uncommitted read {} of {everything}",
        uncommitted.count()
    );
    uncommitted.poll_for(Duration::from_secs(1));
    for (topic, partitions) in topics {
        for p in 0..partitions {
            let got = &uncommitted.read[&(topic.to_owned(), p)];
            let want: Vec<(i64, String)> = (0..n)
                .map(|i| (i, format!("c-{topic}-{p}-{i:04}")))
                .chain((0..n).map(|i| (n + 1 + i, format!("a-{topic}-{p}-{i:04}"))))
                .chain([(2 * n + 2, format!("s-{topic}-{p}-0000"))])
                .collect();
            assert_eq!(
                got, &want,
                "{topic}-{p}: read_uncommitted sees both transactions, the markers' offsets \
                 skipped"
            );
        }
    }
    assert_settings_applied(&[&broker]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_consumer_never_sees_an_open_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let broker = standalone(dir.path(), STANDALONE_TXN);
    let bootstrap = broker.bootstrap();
    let topics = [("open", 2)];
    create_topics(&bootstrap, &topics, 1, "1").await;

    let producer = txn_producer(&bootstrap, "open-txn", &[]);
    init(&producer, &broker, "open-txn");
    let first = records("first", &topics, 5);
    producer.begin_transaction().unwrap();
    send_acked(&producer, &first).await;
    producer.commit_transaction(TXN_TIMEOUT).expect("commit");

    let open = records("open", &topics, 10);
    producer.begin_transaction().unwrap();
    send_acked(&producer, &open).await;
    // Acknowledged and not committed: the LSO stays at the open transaction's first offset
    // (after 5 records and a COMMIT marker), the high watermark after its records.
    for p in 0..2 {
        assert_eq!(
            hw_and_lso(&broker, "open", p),
            (16, 6),
            "open-{p}: high watermark and LSO with a transaction open"
        );
    }
    let mut uncommitted = Reader::new(&bootstrap, "read_uncommitted", &topics);
    assert!(
        uncommitted.poll_until(|r| r.count() >= 30),
        "read_uncommitted sees acknowledged records of the open transaction: {:?}",
        uncommitted.read
    );
    let mut committed = Reader::new(&bootstrap, "read_committed", &topics);
    assert!(committed.poll_until(|r| r.count() >= 10));
    committed.poll_for(Duration::from_secs(3));
    let want_first: BTreeSet<String> = first.iter().map(|(_, _, v)| v.clone()).collect();
    assert_eq!(
        committed.values(),
        want_first,
        "read_committed reads nothing of the open transaction"
    );

    producer.commit_transaction(TXN_TIMEOUT).expect("commit");
    assert!(
        committed.poll_until(|r| r.count() >= 30),
        "read_committed reads the transaction once committed: {:?}",
        committed.read
    );
    committed.poll_for(Duration::from_secs(1));
    assert_eq!(committed.values(), uncommitted.values());
    for p in 0..2 {
        assert_eq!(hw_and_lso(&broker, "open", p), (17, 17));
    }
    assert_settings_applied(&[&broker]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_producer_with_same_transactional_id_fences_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let broker = standalone(dir.path(), STANDALONE_TXN);
    let bootstrap = broker.bootstrap();
    let topics = [("fence", 2)];
    create_topics(&bootstrap, &topics, 1, "1").await;
    let rec = |p: i32, v: &str| vec![("fence".to_owned(), p, v.to_owned())];

    let zombie = txn_producer(&bootstrap, "fenced-id", &[]);
    init(&zombie, &broker, "fenced-id");
    zombie.begin_transaction().unwrap();
    send_acked(&zombie, &rec(0, "zombie-before")).await;

    let successor = txn_producer(&bootstrap, "fenced-id", &[]);
    init(&successor, &broker, "fenced-id");
    // The successor's InitProducerId aborted the zombie's open transaction.
    let ended = eventually(WAIT, || {
        let (hw, lso) = hw_and_lso(&broker, "fence", 0);
        (hw == 2 && lso == 2).then_some(())
    });
    assert!(
        ended.is_some(),
        "fence-0 (high watermark, LSO) after the fence: {:?}, expected (2, 2): the record and \
         an ABORT marker",
        hw_and_lso(&broker, "fence", 0)
    );

    // After the fence: a new partition (AddPartitionsToTxn) and one already in the
    // transaction (Produce with the old epoch).
    let late = [rec(1, "zombie-after-new"), rec(0, "zombie-after-old")].concat();
    let results = send_all(&zombie, &late).await;
    for (r, result) in late.iter().zip(&results) {
        assert!(
            result.is_err(),
            "{r:?} sent by the fenced producer was acknowledged: {result:?}"
        );
    }
    let commit = zombie.commit_transaction(TXN_TIMEOUT);
    assert!(commit.is_err(), "the fenced producer committed");
    let fatal = zombie.client().fatal_error();
    let fenced_codes = [
        RDKafkaErrorCode::Fenced,
        RDKafkaErrorCode::ProducerFenced,
        RDKafkaErrorCode::InvalidProducerEpoch,
    ];
    assert!(
        fatal
            .as_ref()
            .is_some_and(|(c, _)| fenced_codes.contains(c)),
        "the fenced producer has a fatal fenced error: {fatal:?}; commit said {commit:?}; \
         deliveries {results:?}"
    );

    successor.begin_transaction().unwrap();
    let theirs = [rec(0, "successor-0"), rec(1, "successor-1")].concat();
    send_acked(&successor, &theirs).await;
    successor.commit_transaction(TXN_TIMEOUT).expect("commit");

    let mut committed = Reader::new(&bootstrap, "read_committed", &topics);
    assert!(committed.poll_until(|r| r.count() >= 2));
    committed.poll_for(Duration::from_secs(1));
    assert_eq!(
        committed.values(),
        BTreeSet::from(["successor-0".to_owned(), "successor-1".to_owned()]),
        "read_committed reads the successor's records and none of the fenced producer's"
    );
    let mut uncommitted = Reader::new(&bootstrap, "read_uncommitted", &topics);
    assert!(uncommitted.poll_until(|r| r.count() >= 3));
    uncommitted.poll_for(Duration::from_secs(1));
    assert_eq!(
        uncommitted.values(),
        BTreeSet::from([
            "zombie-before".to_owned(),
            "successor-0".to_owned(),
            "successor-1".to_owned()
        ]),
        "the log holds nothing the fenced producer sent after the fence"
    );
    assert_settings_applied(&[&broker]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_left_open_past_its_timeout_is_aborted_and_lso_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let settings = [
        STANDALONE_TXN,
        &["transaction.abort.timed.out.transaction.cleanup.interval.ms=500"],
    ]
    .concat();
    let broker = standalone(dir.path(), &settings);
    let bootstrap = broker.bootstrap();
    let topics = [("abandoned", 1)];
    create_topics(&bootstrap, &topics, 1, "1").await;

    let producer = txn_producer(
        &bootstrap,
        "abandoned-txn",
        &[
            ("transaction.timeout.ms", "2000"),
            ("socket.timeout.ms", "1500"),
        ],
    );
    init(&producer, &broker, "abandoned-txn");
    producer.begin_transaction().unwrap();
    send_acked(&producer, &records("left-open", &topics, 5)).await;
    assert_eq!(hw_and_lso(&broker, "abandoned", 0), (5, 0));
    // The producer stays alive and idle: only the coordinator can end the transaction.
    let aborted = eventually(WAIT, || {
        let (hw, lso) = hw_and_lso(&broker, "abandoned", 0);
        (lso == hw).then_some((hw, lso))
    });
    assert_eq!(
        aborted,
        Some((6, 6)),
        "the coordinator aborts the transaction after transaction.timeout.ms (an ABORT marker \
         at 5) and the LSO reaches the high watermark; now {:?}",
        hw_and_lso(&broker, "abandoned", 0)
    );

    let plain: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    send_acked(&plain, &[("abandoned".to_owned(), 0, "after".to_owned())]).await;
    let mut committed = Reader::new(&bootstrap, "read_committed", &topics);
    assert!(committed.poll_until(|r| r.count() >= 1));
    committed.poll_for(Duration::from_secs(1));
    assert_eq!(
        committed.read.get(&("abandoned".to_owned(), 0)),
        Some(&vec![(6, "after".to_owned())]),
        "read_committed reads past the aborted records and none of them"
    );
    let late = producer.commit_transaction(TXN_TIMEOUT);
    assert!(
        late.is_err(),
        "committing a transaction the coordinator aborted must fail"
    );
    assert_eq!(hw_and_lso(&broker, "abandoned", 0), (7, 7));
    assert_settings_applied(&[&broker]);
}

#[path = "transactions/bad_requests.rs"]
mod bad_requests;
#[path = "transactions/epoch_bump.rs"]
mod epoch_bump;
#[path = "transactions/exactly_once.rs"]
mod exactly_once;
#[path = "transactions/verification.rs"]
mod verification;
