//! Helpers for `consumer_groups.rs`: librdkafka group members that record their rebalance
//! callbacks, polling with deadlines until assignments settle, a confluent-kafka member in a
//! child process (so it can die by SIGKILL without leaving), `/metrics` parsing, and raw
//! group requests encoded by `kafka-protocol` for exact error codes.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, FindCoordinatorRequest, GroupId as WireGroupId,
    OffsetCommitRequest, OffsetFetchRequest, TopicName as WireTopicName, offset_commit_request,
    offset_fetch_request,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::process::BrokerProcess;

/// The smallest session timeout the broker accepts by default (`group.min.session.timeout.ms`).
pub const SESSION_TIMEOUT: Duration = Duration::from_millis(6000);
/// Assignments must stay unchanged this long to count as settled: a broker that kept
/// rebalancing a group would show a change inside the window.
pub const SETTLE: Duration = Duration::from_millis(1000);

/// Every broker in these tests: no initial rebalance delay (Kafka's 3 s only waits for more
/// members of a new group), so the tests run at the pace of heartbeats.
pub const BROKER_SETTINGS: &[&str] = &[
    "group.initial.rebalance.delay.ms=0",
    "auto.create.topics.enable=false",
];

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// Runs an `rdkafka` admin future (they complete on librdkafka's own thread).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

pub fn admin(broker: &BrokerProcess) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .expect("admin client")
}

pub fn admin_options() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(Duration::from_secs(15)))
}

pub fn create_topic(broker: &BrokerProcess, name: &str, partitions: i32) {
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let created = block_on(admin(broker).create_topics(&[topic], &admin_options())).unwrap();
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
}

/// The value of record `i` of `partition`; records are keyed `k{partition}-{i}`.
pub fn value_of(topic: &str, partition: i32, i: i64) -> String {
    format!("{topic}-{partition}-{i}")
}

/// Produces `counts[p]` records to each partition `p` (values from [`value_of`]) and checks
/// that every partition's high watermark is then its count.
pub fn produce(broker: &BrokerProcess, topic: &str, counts: &[i64]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap();
    for (partition, &count) in counts.iter().enumerate() {
        let partition = partition as i32;
        for i in 0..count {
            let key = format!("k{partition}-{i}");
            let value = value_of(topic, partition, i);
            let mut record = BaseRecord::<str, str>::to(topic)
                .partition(partition)
                .key(&key)
                .payload(&value);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        producer.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => panic!("queueing a record: {e}"),
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    let watcher: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    for (partition, &count) in counts.iter().enumerate() {
        let (_, high) = watcher
            .fetch_watermarks(topic, partition as i32, Duration::from_secs(10))
            .unwrap();
        assert_eq!(high, count, "high watermark of {topic}-{partition}");
    }
}

/// One rebalance callback as librdkafka delivered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Assigned(BTreeSet<i32>),
    Revoked(BTreeSet<i32>),
    Failed(String),
}

/// Records rebalance callbacks and prints librdkafka's log lines with the member's name
/// (`WEIR_TEST_RDKAFKA_DEBUG=cgrp,protocol` adds librdkafka's debug contexts).
pub struct Recorder {
    name: String,
    changes: Arc<Mutex<Vec<Change>>>,
}

impl ClientContext for Recorder {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        eprintln!("[{}] librdkafka {level:?} {fac}: {log_message}", self.name);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("[{}] librdkafka error {error}: {reason}", self.name);
    }
}

fn partitions(tpl: &TopicPartitionList) -> BTreeSet<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

impl ConsumerContext for Recorder {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Revocations are recorded before librdkafka unassigns, as an application would
        // commit there; assignments after they took effect.
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked = partitions(tpl);
            eprintln!("[{}] revoked {revoked:?}", self.name);
            self.changes.lock().unwrap().push(Change::Revoked(revoked));
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let change = match rebalance {
            Rebalance::Assign(tpl) => Change::Assigned(partitions(tpl)),
            Rebalance::Revoke(_) => return,
            Rebalance::Error(e) => Change::Failed(e.to_string()),
        };
        eprintln!("[{}] {change:?}", self.name);
        self.changes.lock().unwrap().push(change);
    }
}

/// A record a member read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub value: String,
}

/// A librdkafka group member subscribed to one topic.
pub struct Member {
    pub name: String,
    pub consumer: BaseConsumer<Recorder>,
    changes: Arc<Mutex<Vec<Change>>>,
    pub read: Vec<Read>,
    pub errors: Vec<KafkaError>,
    /// `group.instance.id` is set: leaving must look like a crash or restart (no unsubscribe).
    is_static: bool,
}

/// The configuration of every member: manual commits, Kafka's smallest session timeout,
/// fast heartbeats, and a bounded rebalance timeout (librdkafka sends
/// `max.poll.interval.ms` as JoinGroup's rebalance timeout; Kafka's 5 minutes would let one
/// stuck member hold a rebalance past every test deadline).
pub fn member_config(broker: &BrokerProcess, group: &str, name: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", group)
        .set("client.id", name)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            SESSION_TIMEOUT.as_millis().to_string(),
        )
        .set("heartbeat.interval.ms", "500")
        .set("max.poll.interval.ms", "20000")
        .set("partition.assignment.strategy", "range")
        .set("fetch.wait.max.ms", "100");
    if let Ok(debug) = std::env::var("WEIR_TEST_RDKAFKA_DEBUG") {
        config.set("debug", debug);
    }
    config
}

impl Member {
    /// A member of `group` named `name` subscribed to `topic`, with `extra` settings.
    pub fn join(
        broker: &BrokerProcess,
        group: &str,
        name: &str,
        topic: &str,
        extra: &[(&str, &str)],
    ) -> Member {
        let mut config = member_config(broker, group, name);
        for (k, v) in extra {
            config.set(*k, *v);
        }
        Member::subscribe(config, name, topic)
    }

    pub fn subscribe(config: ClientConfig, name: &str, topic: &str) -> Member {
        let changes = Arc::new(Mutex::new(Vec::new()));
        let consumer: BaseConsumer<Recorder> = config
            .create_with_context(Recorder {
                name: name.to_owned(),
                changes: Arc::clone(&changes),
            })
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        Member {
            name: name.to_owned(),
            consumer,
            changes,
            read: Vec::new(),
            errors: Vec::new(),
            is_static: config.get("group.instance.id").is_some(),
        }
    }

    /// Unsubscribes and serves the revocation, so that dropping the consumer has nothing left
    /// to revoke: librdkafka can wait forever in `rd_kafka_assign` when a revocation is served
    /// while the consumer closes (confluentinc/librdkafka#4884), which rust-rdkafka's drop
    /// does. Not for static members: unsubscribing would make them leave the group, which a
    /// static member's close does not do.
    fn release(&mut self) {
        if self.is_static {
            return;
        }
        self.consumer.unsubscribe();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            let _ = self.consumer.poll(Duration::from_millis(50));
            if self.consumer.assignment().map_or(true, |a| a.count() == 0) {
                break;
            }
        }
    }

    /// Serves callbacks and reads what is there: waits up to `timeout` for the first event,
    /// then drains without waiting.
    pub fn poll(&mut self, timeout: Duration) {
        let mut wait = timeout;
        for _ in 0..1000 {
            match self.consumer.poll(wait) {
                None => return,
                Some(Ok(m)) => self.read.push(Read {
                    partition: m.partition(),
                    offset: m.offset(),
                    value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                }),
                Some(Err(e)) => {
                    eprintln!("[{}] consumer error: {e}", self.name);
                    self.errors.push(e);
                }
            }
            wait = Duration::ZERO;
        }
    }

    /// The partitions librdkafka currently has assigned.
    pub fn owned(&self) -> BTreeSet<i32> {
        partitions(&self.consumer.assignment().expect("assignment"))
    }

    /// Rebalance callbacks so far, without empty ones (librdkafka reports empty incremental
    /// assignments during cooperative rebalances).
    pub fn changes(&self) -> Vec<Change> {
        self.changes
            .lock()
            .unwrap()
            .iter()
            .filter(|c| match c {
                Change::Assigned(p) | Change::Revoked(p) => !p.is_empty(),
                Change::Failed(_) => true,
            })
            .cloned()
            .collect()
    }

    pub fn forget_changes(&self) {
        self.changes.lock().unwrap().clear();
    }

    pub fn describe(&self) -> String {
        format!(
            "{}: owns {:?}; callbacks {:?}; errors {:?}; read {} records",
            self.name,
            self.owned(),
            self.changes(),
            self.errors,
            self.read.len()
        )
    }
}

/// The last lines of the broker's log, for failure messages.
pub fn log_tail(broker: &BrokerProcess) -> String {
    let log = broker.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Polls every member in turn until `done` holds; panics after `within` with each member's
/// state and the broker's log. Returns how long it took.
pub fn poll_until(
    broker: &BrokerProcess,
    members: &mut [Member],
    within: Duration,
    what: &str,
    mut done: impl FnMut(&[Member]) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        for m in members.iter_mut() {
            m.poll(Duration::from_millis(20));
        }
        if done(members) {
            return start.elapsed();
        }
        if start.elapsed() > within {
            let states: Vec<String> = members.iter().map(Member::describe).collect();
            panic!(
                "{what}: not within {within:?}\n  {}\n--- broker log (tail):\n{}",
                states.join("\n  "),
                log_tail(broker)
            );
        }
    }
}

/// Whether `owned` splits partitions `0..partitions`: each share non-empty, none overlapping,
/// together all of them.
pub fn is_split(owned: &[BTreeSet<i32>], partitions: i32) -> bool {
    let total: usize = owned.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<i32> = owned.iter().flatten().copied().collect();
    owned.iter().all(|o| !o.is_empty())
        && total == partitions as usize
        && union == (0..partitions).collect()
}

/// Polls until the shares `view` returns split `0..partitions` and stay unchanged for
/// [`SETTLE`]; returns the shares and how long it took until they first split.
pub fn settle(
    broker: &BrokerProcess,
    members: &mut [Member],
    partitions: i32,
    within: Duration,
    mut view: impl FnMut(&[Member]) -> Vec<BTreeSet<i32>>,
) -> (Vec<BTreeSet<i32>>, Duration) {
    let start = Instant::now();
    let mut since: Option<(Instant, Vec<BTreeSet<i32>>)> = None;
    let mut last = Vec::new();
    poll_until(
        broker,
        members,
        within,
        &format!("settling a split of {partitions} partitions"),
        |members| {
            let now = view(members);
            if !is_split(&now, partitions) {
                since = None;
            } else if since.as_ref().is_none_or(|(_, shares)| *shares != now) {
                since = Some((Instant::now(), now.clone()));
            }
            last = now;
            since.as_ref().is_some_and(|(t, _)| t.elapsed() >= SETTLE)
        },
    );
    let (first_split, _) = since.expect("settled");
    (last, first_split.duration_since(start))
}

/// Each member's [`Member::owned`].
pub fn owned_by(members: &[Member]) -> Vec<BTreeSet<i32>> {
    members.iter().map(Member::owned).collect()
}

/// The committed offset of each of `partitions` of `topic` for the member's group
/// (OffsetFetch); `None` where nothing is committed.
pub fn committed(
    consumer: &BaseConsumer<impl ConsumerContext>,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, Option<i64>> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let fetched = consumer
        .committed_offsets(tpl, Duration::from_secs(20))
        .expect("OffsetFetch");
    fetched
        .elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            (e.partition(), offset)
        })
        .collect()
}

/// Commits `offsets` (partition → next offset to read) synchronously.
pub fn commit(consumer: &BaseConsumer<impl ConsumerContext>, topic: &str, offsets: &[(i32, i64)]) {
    let mut tpl = TopicPartitionList::new();
    for &(p, o) in offsets {
        tpl.add_partition_offset(topic, p, Offset::Offset(o))
            .unwrap();
    }
    consumer
        .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
        .unwrap_or_else(|e| panic!("committing {offsets:?}: {e}"));
}

/// One sample from `/metrics`: the metric's name and labels.
pub fn metric(broker: &BrokerProcess, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let (code, body) = broker.http_get("/metrics")?;
    assert_eq!(code, 200, "/metrics answered {code}");
    let want: BTreeMap<&str, &str> = labels.iter().copied().collect();
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric_name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if metric_name != name {
                return None;
            }
            let got: BTreeMap<&str, &str> = labels
                .split(',')
                .filter(|kv| !kv.is_empty())
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k, v.trim_matches('"')))
                })
                .collect();
            (got == want).then(|| value.parse().ok()).flatten()
        })
}

/// A confluent-kafka group member in a `python3 test_groups.py … member` child process: it
/// prints `assigned: …` on every change, and dies by SIGKILL (here or on drop), so it never
/// sends LeaveGroup.
pub struct PythonMember {
    child: Child,
    pub assigned: Arc<Mutex<BTreeSet<i32>>>,
    pub output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// What a `test_groups.py … committer` member reported on stdout, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// `read: P OFFSET VALUE`: the member processed a record.
    Read(Read),
    /// `committing: P=O,…`: a synchronous commit of these offsets is under way.
    Committing(BTreeMap<i32, i64>),
    /// `committed: P=O,…`: the broker acknowledged the commit.
    Committed(BTreeMap<i32, i64>),
}

fn parse_offsets(list: &str) -> Option<BTreeMap<i32, i64>> {
    list.split(',')
        .map(|po| {
            let (p, o) = po.split_once('=')?;
            Some((p.parse().ok()?, o.parse().ok()?))
        })
        .collect()
}

fn parse_report(line: &str) -> Option<Report> {
    if let Some(read) = line.strip_prefix("read: ") {
        let mut fields = read.splitn(3, ' ');
        return Some(Report::Read(Read {
            partition: fields.next()?.parse().ok()?,
            offset: fields.next()?.parse().ok()?,
            value: fields.next()?.to_owned(),
        }));
    }
    if let Some(list) = line.strip_prefix("committing: ") {
        return parse_offsets(list).map(Report::Committing);
    }
    line.strip_prefix("committed: ")
        .and_then(parse_offsets)
        .map(Report::Committed)
}

impl PythonMember {
    /// `test_groups.py BOOTSTRAP member TOPIC GROUP`: a member that only holds partitions.
    pub fn start(broker: &BrokerProcess, topic: &str, group: &str) -> PythonMember {
        PythonMember::spawn(broker, &["member", topic, group])
    }

    /// `test_groups.py BOOTSTRAP committer TOPIC GROUP EVERY PAUSE_MS`: a member that reads
    /// a record every `pause` and commits synchronously after every `every` records,
    /// reporting each (see [`PythonMember::reports`]).
    pub fn start_committer(
        broker: &BrokerProcess,
        topic: &str,
        group: &str,
        every: usize,
        pause: Duration,
    ) -> PythonMember {
        let every = every.to_string();
        let pause = pause.as_millis().to_string();
        PythonMember::spawn(broker, &["committer", topic, group, &every, &pause])
    }

    fn spawn(broker: &BrokerProcess, args: &[&str]) -> PythonMember {
        let mut child = groups_script_command(broker, args).spawn().expect(
            "python3 with broker/tests/python/requirements.txt installed \
                 (python3 -m pip install -r broker/tests/python/requirements.txt)",
        );
        let assigned = Arc::new(Mutex::new(BTreeSet::new()));
        let output = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut readers = Vec::new();
        for (stream, parse) in [
            (Box::new(stdout) as Box<dyn std::io::Read + Send>, true),
            (Box::new(stderr), false),
        ] {
            let assigned = Arc::clone(&assigned);
            let output = Arc::clone(&output);
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    if parse && let Some(list) = line.strip_prefix("assigned: ") {
                        *assigned.lock().unwrap() =
                            list.split(',').filter_map(|p| p.parse().ok()).collect();
                    }
                    let mut out = output.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
            }));
        }
        PythonMember {
            child,
            assigned,
            output,
            readers,
        }
    }

    /// The member's reports so far (stdout lines of the committer mode), in order.
    pub fn reports(&self) -> Vec<Report> {
        self.output().lines().filter_map(parse_report).collect()
    }

    /// After [`PythonMember::kill9`]: waits until everything the member wrote before it died
    /// has been read (its pipes close when it dies).
    pub fn drain(&mut self) {
        assert!(
            self.exited(),
            "drain() waits for a dead member's last output"
        );
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
    }

    pub fn owned(&self) -> BTreeSet<i32> {
        self.assigned.lock().unwrap().clone()
    }

    pub fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// SIGKILL: the member vanishes without a LeaveGroup.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.release();
    }
}

impl Drop for PythonMember {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `python3 test_groups.py BOOTSTRAP args…`, unbuffered, with stdout and stderr piped.
fn groups_script_command(broker: &BrokerProcess, args: &[&str]) -> Command {
    let mut command = Command::new("python3");
    command
        .arg("test_groups.py")
        .arg(broker.bootstrap())
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python"))
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `python3 test_groups.py BOOTSTRAP args…` to completion (60 s at most); its success
/// and its output.
pub fn python_groups_script(broker: &BrokerProcess, args: &[&str]) -> (bool, String) {
    let mut child = groups_script_command(broker, args)
        .spawn()
        .expect("python3");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let err_reader =
        std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let out_reader =
        std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = format!(
        "{}{}",
        out_reader.join().unwrap(),
        err_reader.join().unwrap()
    );
    (status.is_some_and(|s| s.success()), output)
}

// ---- raw requests -------------------------------------------------------------------------

/// Kafka's retriable coordinator errors: the client looks the coordinator up again or waits
/// for `__consumer_offsets` to load, then retries.
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const NOT_COORDINATOR: i16 = 16;

fn retriable(code: i16) -> bool {
    matches!(
        code,
        COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR
    )
}

/// The highest version of `api` the broker advertises, capped at `preferred`; panics if the
/// broker does not serve `api` at that version or below.
pub fn version(broker: &BrokerProcess, api: ApiKey, preferred: i16) -> i16 {
    let response = broker.call(2, &ApiVersionsRequest::default());
    let range = response
        .api_keys
        .iter()
        .find(|k| k.api_key == api as i16)
        .map(|k| (k.min_version, k.max_version))
        .unwrap_or_else(|| panic!("ApiVersions does not list {api:?}"));
    assert!(
        range.0 <= preferred,
        "{api:?}: the broker serves {range:?}, the test speaks up to v{preferred}"
    );
    range.1.min(preferred)
}

/// FindCoordinator for `group` until it names a coordinator (the first lookup creates
/// `__consumer_offsets`).
pub fn find_coordinator(broker: &BrokerProcess, group: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = broker.call(
            3,
            &FindCoordinatorRequest::default()
                .with_key(s(group))
                .with_key_type(0),
        );
        if response.error_code == 0 {
            return;
        }
        assert!(
            retriable(response.error_code) && Instant::now() < deadline,
            "FindCoordinator({group}) answered {} {:?}",
            response.error_code,
            response.error_message
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One partition of a raw commit: (partition, offset, metadata).
pub type RawCommit = (i32, i64, Option<String>);

/// OffsetCommit from outside group management (generation -1, no member id, as admin tools
/// and `assign()` consumers commit), retried while the coordinator is not ready; the error
/// code for each (topic, partition).
pub fn raw_commit(
    broker: &BrokerProcess,
    group: &str,
    topics: &[(&str, Vec<RawCommit>)],
) -> BTreeMap<(String, i32), i16> {
    find_coordinator(broker, group);
    let version = version(broker, ApiKey::OffsetCommit, 8);
    let request = OffsetCommitRequest::default()
        .with_group_id(WireGroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_retention_time_ms(-1)
        .with_topics(
            topics
                .iter()
                .map(|(name, partitions)| {
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(WireTopicName(s(name)))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|(p, o, m)| {
                                    offset_commit_request::OffsetCommitRequestPartition::default()
                                        .with_partition_index(*p)
                                        .with_committed_offset(*o)
                                        .with_committed_leader_epoch(-1)
                                        .with_committed_metadata(m.as_deref().map(s))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = broker.call(version, &request);
        let codes: BTreeMap<(String, i32), i16> = response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| ((t.name.0.to_string(), p.partition_index), p.error_code))
            })
            .collect();
        if !codes.values().any(|c| retriable(*c)) || Instant::now() > deadline {
            return codes;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// OffsetFetch of `partitions` of `topic` for `group`: partition → (offset, metadata,
/// error code).
pub fn raw_fetch(
    broker: &BrokerProcess,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> BTreeMap<i32, (i64, Option<String>, i16)> {
    find_coordinator(broker, group);
    let version = version(broker, ApiKey::OffsetFetch, 7);
    let request = OffsetFetchRequest::default()
        .with_group_id(WireGroupId(s(group)))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(WireTopicName(s(topic)))
                .with_partition_indexes(partitions.to_vec()),
        ]));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = broker.call(version, &request);
        if !retriable(response.error_code) || Instant::now() > deadline {
            assert_eq!(response.error_code, 0, "OffsetFetch({group}) failed");
            return response
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| {
                    (
                        p.partition_index,
                        (
                            p.committed_offset,
                            p.metadata.as_ref().map(|m| m.to_string()),
                            p.error_code,
                        ),
                    )
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// JoinGroup as a new member (no member id) with `protocols` of `protocol_type`, retried
/// while the coordinator is not ready; the error code.
pub fn raw_join(
    broker: &BrokerProcess,
    group: &str,
    protocol_type: &str,
    protocols: &[&str],
) -> i16 {
    use kafka_protocol::messages::{JoinGroupRequest, join_group_request};
    find_coordinator(broker, group);
    let version = version(broker, ApiKey::JoinGroup, 5);
    let request = JoinGroupRequest::default()
        .with_group_id(WireGroupId(s(group)))
        .with_session_timeout_ms(SESSION_TIMEOUT.as_millis() as i32)
        .with_rebalance_timeout_ms(SESSION_TIMEOUT.as_millis() as i32)
        .with_member_id(s(""))
        .with_protocol_type(s(protocol_type))
        .with_protocols(
            protocols
                .iter()
                .map(|name| {
                    join_group_request::JoinGroupRequestProtocol::default()
                        .with_name(s(name))
                        .with_metadata(bytes::Bytes::from_static(b"\0\0\0\0\0\0\0\0\0\0"))
                })
                .collect(),
        );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = broker.call(version, &request);
        if !retriable(response.error_code) || Instant::now() > deadline {
            return response.error_code;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sum of every series of the metric `name` on `/metrics` (0 when it has none).
pub fn metric_sum(broker: &BrokerProcess, name: &str) -> f64 {
    let (code, body) = broker.http_get("/metrics").expect("/metrics");
    assert_eq!(code, 200, "/metrics answered {code}");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| series.split('{').next() == Some(name))
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum()
}

/// Polls every member for `period` (callbacks that are due arrive, and records that should
/// not come would).
pub fn poll_for(members: &mut [Member], period: Duration) {
    let start = Instant::now();
    while start.elapsed() < period {
        for m in members.iter_mut() {
            m.poll(Duration::from_millis(20));
        }
    }
}

/// A consumer of `group` that never subscribes: it reads the group's offsets (OffsetFetch)
/// without joining.
pub fn offsets_reader(broker: &BrokerProcess, group: &str) -> BaseConsumer {
    member_config(broker, group, "offsets-reader")
        .create()
        .expect("consumer")
}
