//! Replication and failover with real clients against real processes: a controller and
//! three brokers on 127.0.0.1 (`cluster::Cluster`), topics with replication factor 3 and
//! `min.insync.replicas=2`, librdkafka producers and consumers.
//!
//! What every test checks at the end, besides its own scenario: each acknowledged record is
//! read back exactly once, in order per partition, and every replica's log holds the same
//! bytes as the leader's (no offset holds different records on different replicas).

mod cluster;
mod common;
mod process;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cluster::{Cluster, eventually, partition_states};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(60);

async fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(3));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("CreateTopics answered");
    for result in results {
        result.expect("topic created");
    }
}

/// Waits until every partition of `topic` has a leader and `isr_size` in-sync replicas.
fn wait_isr(bootstrap: &str, topic: &str, isr_size: usize) -> BTreeMap<i32, (i32, Vec<i32>)> {
    eventually(WAIT, || {
        partition_states(bootstrap, topic)
            .filter(|s| s.values().all(|(l, isr)| *l >= 0 && isr.len() == isr_size))
    })
    .unwrap_or_else(|| {
        panic!(
            "{topic}: ISR of {isr_size} not reached: {:?}",
            partition_states(bootstrap, topic)
        )
    })
}

fn producer(bootstrap: &str, acks: &str, idempotent: bool) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("enable.idempotence", idempotent.to_string())
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .set("retry.backoff.ms", "100")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .expect("producer")
}

fn send(producer: &FutureProducer, topic: &str, partition: i32, value: String) -> DeliveryFuture {
    producer
        .send_result(
            FutureRecord::<(), String>::to(topic)
                .partition(partition)
                .payload(&value),
        )
        .map_err(|(e, _)| e)
        .expect("queued")
}

/// Every record of `topic`'s partitions, read from the beginning to the end (a read past
/// the end would show duplicates), as `(offset, value)` per partition.
fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> BTreeMap<i32, Vec<(i64, String)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "replication-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_uncommitted")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut got: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    let mut idle_since = Instant::now();
    let deadline = Instant::now() + WAIT;
    while idle_since.elapsed() < Duration::from_secs(3) && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let value = String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap();
                let records = got.entry(m.partition()).or_default();
                // A consumer may deliver an offset again after a fetch-position reset; what
                // is stored at each offset is what counts.
                if records.last().is_none_or(|(last, _)| m.offset() > *last) {
                    records.push((m.offset(), value));
                }
                idle_since = Instant::now();
            }
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
    }
    got
}

/// The concatenated `.log` segments of `topic-partition` in a broker's data directory.
fn log_bytes(data_dir: &std::path::Path, topic: &str, partition: i32) -> Vec<u8> {
    let dir = data_dir.join(format!("{topic}-{partition}"));
    let mut segments: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect()
        })
        .unwrap_or_default();
    segments.sort();
    segments
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// Every replica of every partition holds the same bytes, once the followers caught up.
fn assert_replicas_identical(cluster: &Cluster, topic: &str, partitions: i32) {
    for p in 0..partitions {
        let logs = || -> Vec<Vec<u8>> {
            cluster
                .brokers
                .iter()
                .map(|b| log_bytes(&b.data_dir, topic, p))
                .collect()
        };
        let same = eventually(Duration::from_secs(30), || {
            let logs = logs();
            logs.iter().all(|l| l == &logs[0]).then_some(())
        });
        if same.is_none() {
            let sizes: Vec<usize> = logs().iter().map(Vec::len).collect();
            panic!("{topic}-{p}: the replicas' logs differ (bytes per broker: {sizes:?})");
        }
    }
}

/// What a producer stream saw: acknowledged records per partition as `(offset, value)`, and
/// the errors of records that failed for good.
#[derive(Debug, Default)]
struct Streamed {
    acked: BTreeMap<i32, Vec<(i64, String)>>,
    errors: Vec<String>,
}

/// A producer writing `s<i>` records round-robin over `partitions` until stopped, with up to
/// 200 records in flight.
struct Stream {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Streamed>,
}

impl Stream {
    fn start(bootstrap: &str, topic: &str, partitions: i32, acks: &str) -> Stream {
        let producer = producer(bootstrap, acks, true);
        let stop = Arc::new(AtomicBool::new(false));
        let topic = topic.to_owned();
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut out = Streamed::default();
            let mut in_flight: VecDeque<(i32, String, DeliveryFuture)> = VecDeque::new();
            let mut i = 0u64;
            loop {
                while !flag.load(Ordering::Relaxed) && in_flight.len() < 200 {
                    let p = i32::try_from(i % u64::try_from(partitions).unwrap()).unwrap();
                    let value = format!("s{i:08}");
                    in_flight.push_back((p, value.clone(), send(&producer, &topic, p, value)));
                    i += 1;
                }
                let Some((p, value, delivery)) = in_flight.pop_front() else {
                    break;
                };
                match delivery.await {
                    Ok(Ok(d)) => {
                        out.acked.entry(p).or_default().push((d.offset, value));
                    }
                    Ok(Err((e, _))) => out.errors.push(format!("{value}: {e}")),
                    Err(_) => out.errors.push(format!("{value}: cancelled")),
                }
                if !flag.load(Ordering::Relaxed) && i.is_multiple_of(50) {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            out
        });
        Stream { stop, task }
    }

    async fn finish(self) -> Streamed {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("stream task")
    }
}

/// Every acknowledged record is in `read` at its offset, no value is read twice, and each
/// partition's values come in the order they were sent.
fn assert_exactly_once(
    acked: &BTreeMap<i32, Vec<(i64, String)>>,
    read: &BTreeMap<i32, Vec<(i64, String)>>,
) {
    for (p, records) in acked {
        let got = read.get(p).cloned().unwrap_or_default();
        let by_offset: BTreeMap<i64, &String> = got.iter().map(|(o, v)| (*o, v)).collect();
        for (offset, value) in records {
            assert_eq!(
                by_offset.get(offset).copied(),
                Some(value),
                "partition {p}: acked {value} at {offset} is not read back there"
            );
        }
        let mut seen: BTreeMap<&String, i64> = BTreeMap::new();
        for (offset, v) in &got {
            if let Some(first) = seen.insert(v, *offset) {
                panic!("partition {p}: {v} stored twice, at offsets {first} and {offset}");
            }
        }
        for pair in got.windows(2) {
            assert!(
                pair[0].1 < pair[1].1,
                "partition {p}: {:?} before {:?}",
                pair[0],
                pair[1]
            );
        }
    }
}

/// The leader of `partition` once it is someone other than `not`, and the time it took.
fn new_leader(cluster: &Cluster, topic: &str, partition: i32, not: i32) -> i32 {
    eventually(WAIT, || {
        partition_states(&cluster.bootstrap(), topic)
            .and_then(|s| s.get(&partition).map(|(l, _)| *l))
            .filter(|l| *l >= 0 && *l != not)
    })
    .unwrap_or_else(|| panic!("no new leader for {topic}-{partition}\n{}", cluster.logs()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_the_leader_five_times_during_an_acks_all_stream_and_lose_nothing() {
    let mut cluster = Cluster::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "chase", 2, &[("min.insync.replicas", "2")]).await;
    wait_isr(&bootstrap, "chase", 3);
    let stream = Stream::start(&bootstrap, "chase", 2, "all");
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A second producer, connected and idle, sends one record at each kill: the time until
    // it is acknowledged is what a client sees of the failover.
    let probe = producer(&bootstrap, "all", true);
    send(&probe, "chase", 0, "probe-warmup".into())
        .await
        .unwrap()
        .map_err(|(e, _)| e)
        .expect("probe warm");
    for round in 0..5 {
        let leader = partition_states(&bootstrap, "chase").unwrap()[&0].0;
        let killed_at = Instant::now();
        cluster.broker(leader).kill9();
        let probed = send(&probe, "chase", 0, format!("probe-{round}"));
        let next = new_leader(&cluster, "chase", 0, leader);
        let elected = killed_at.elapsed();
        probed
            .await
            .unwrap()
            .map_err(|(e, _)| e)
            .expect("probe acked");
        eprintln!(
            "round {round}: killed {leader}; new leader {next} in metadata after {elected:?}; first produce acked by it after {:?}",
            killed_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.broker(leader).restart();
        wait_isr(&bootstrap, "chase", 3);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let streamed = stream.finish().await;
    let total: usize = streamed.acked.values().map(Vec::len).sum();
    assert!(
        total > 1000,
        "the stream kept going: {total} acked, errors {:?}",
        streamed.errors
    );
    let mut read = read_all(&bootstrap, "chase", 2);
    // The probe's records are not part of the stream.
    for records in read.values_mut() {
        records.retain(|(_, v)| !v.starts_with("probe-"));
    }
    assert_exactly_once(&streamed.acked, &read);
    assert_replicas_identical(&cluster, "chase", 2);
}

/// Produces one batch to `topic-partition` through `broker` (Produce v9): the error code.
fn produce_raw(broker: &process::BrokerProcess, topic: &str, partition: i32, acks: i16) -> i16 {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(bytes::Bytes::from(common::batch(&[
                            common::Rec::new("v", weir_broker::log::now_ms()),
                        ])))),
                ]),
        ]);
    let response = broker.call(9, &request);
    let p = &response.responses[0].partition_responses[0];
    if p.error_code != 0 {
        eprintln!(
            "produce to {topic}-{partition}: {} {:?}",
            p.error_code, p.error_message
        );
    }
    p.error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_in_sync_replica_acks_all_is_refused_and_nothing_is_appended() {
    let mut cluster = Cluster::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "min-isr", 1, &[("min.insync.replicas", "2")]).await;
    let states = wait_isr(&bootstrap, "min-isr", 3);
    let leader = states[&0].0;
    let leader_index = usize::try_from(leader - 1).unwrap();
    assert_eq!(
        produce_raw(&cluster.brokers[leader_index], "min-isr", 0, -1),
        0
    );
    for follower in [1, 2, 3].into_iter().filter(|b| *b != leader) {
        cluster.broker(follower).kill9();
    }
    eventually(WAIT, || {
        partition_states(&cluster.brokers[leader_index].bootstrap(), "min-isr")
            .filter(|s| s[&0].1 == vec![leader])
    })
    .unwrap_or_else(|| panic!("ISR shrinks to the leader\n{}", cluster.logs()));
    let before = log_bytes(&cluster.brokers[leader_index].data_dir, "min-isr", 0).len();
    // NOT_ENOUGH_REPLICAS (19), checked before appending: the log is unchanged.
    assert_eq!(
        produce_raw(&cluster.brokers[leader_index], "min-isr", 0, -1),
        19
    );
    assert_eq!(
        log_bytes(&cluster.brokers[leader_index].data_dir, "min-isr", 0).len(),
        before
    );
    // acks=1 still works with one replica (min.insync.replicas binds acks=all only).
    assert_eq!(
        produce_raw(&cluster.brokers[leader_index], "min-isr", 0, 1),
        0
    );
    for follower in [1, 2, 3].into_iter().filter(|b| *b != leader) {
        cluster.broker(follower).restart();
    }
    wait_isr(&bootstrap, "min-isr", 3);
    assert_eq!(
        produce_raw(&cluster.brokers[leader_index], "min-isr", 0, -1),
        0
    );
    assert_replicas_identical(&cluster, "min-isr", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_unclean_election_an_out_of_sync_replica_never_leads() {
    let mut cluster = Cluster::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "clean", 1, &[("min.insync.replicas", "1")]).await;
    let states = wait_isr(&bootstrap, "clean", 3);
    let leader = states[&0].0;
    let leader_index = usize::try_from(leader - 1).unwrap();
    let followers: Vec<i32> = [1, 2, 3].into_iter().filter(|b| *b != leader).collect();
    for f in &followers {
        cluster.broker(*f).kill9();
    }
    eventually(WAIT, || {
        partition_states(&cluster.brokers[leader_index].bootstrap(), "clean")
            .filter(|s| s[&0].1 == vec![leader])
    })
    .expect("ISR shrinks to the leader");
    // Records only the leader holds, committed with an ISR of one.
    for _ in 0..5 {
        assert_eq!(
            produce_raw(&cluster.brokers[leader_index], "clean", 0, -1),
            0
        );
    }
    let committed = log_bytes(&cluster.brokers[leader_index].data_dir, "clean", 0);
    cluster.broker(leader).kill9();
    cluster.broker(followers[0]).restart();
    // The only live replica is out of sync: the partition has no leader, and stays so.
    let via = usize::try_from(followers[0] - 1).unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let s = partition_states(&cluster.brokers[via].bootstrap(), "clean").expect("metadata");
    assert_eq!(s[&0].0, -1, "no leader without an in-sync replica: {s:?}");
    assert_eq!(
        s[&0].1,
        vec![leader],
        "the ISR keeps the last in-sync replica"
    );
    // The last in-sync replica returns and leads; nothing it held is lost.
    cluster.broker(leader).restart();
    let back = eventually(WAIT, || {
        partition_states(&cluster.bootstrap(), "clean").filter(|s| s[&0].0 == leader)
    });
    assert!(
        back.is_some(),
        "the old leader leads again\n{}",
        cluster.logs()
    );
    cluster.broker(followers[1]).restart();
    wait_isr(&bootstrap, "clean", 3);
    let now = log_bytes(&cluster.brokers[leader_index].data_dir, "clean", 0);
    assert!(now.starts_with(&committed), "the committed records survive");
    assert_replicas_identical(&cluster, "clean", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_session_steps_down_without_overlapping_offsets() {
    let mut cluster = Cluster::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "paused", 1, &[("min.insync.replicas", "2")]).await;
    let leader = wait_isr(&bootstrap, "paused", 3)[&0].0;
    let stream = Stream::start(&bootstrap, "paused", 1, "all");
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.broker(leader).signal("STOP");
    let next = new_leader(&cluster, "paused", 0, leader);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.broker(leader).signal("CONT");
    eprintln!("paused leader {leader}; new leader {next}");
    wait_isr(&bootstrap, "paused", 3);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let streamed = stream.finish().await;
    let states = partition_states(&bootstrap, "paused").unwrap();
    assert_ne!(states[&0].0, leader, "the paused leader stepped down");
    let read = read_all(&bootstrap, "paused", 1);
    assert_exactly_once(&streamed.acked, &read);
    assert_replicas_identical(&cluster, "paused", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_a_leader_moves_leadership_and_producers_see_only_retriable_errors() {
    let mut cluster = Cluster::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "rolling", 3, &[("min.insync.replicas", "2")]).await;
    let leader = wait_isr(&bootstrap, "rolling", 3)[&0].0;
    let stream = Stream::start(&bootstrap, "rolling", 3, "all");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(cluster.broker(leader).stop(), "clean exit");
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.broker(leader).restart();
    wait_isr(&bootstrap, "rolling", 3);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let streamed = stream.finish().await;
    assert!(
        streamed.errors.is_empty(),
        "no record failed: {:?}",
        streamed.errors
    );
    let read = read_all(&bootstrap, "rolling", 3);
    assert_exactly_once(&streamed.acked, &read);
    assert_replicas_identical(&cluster, "rolling", 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_follower_then_a_killed_leader_loses_no_acked_record() {
    let mut cluster = Cluster::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "epochs", 1, &[("min.insync.replicas", "2")]).await;
    let leader = wait_isr(&bootstrap, "epochs", 3)[&0].0;
    let follower = [1, 2, 3].into_iter().find(|b| *b != leader).unwrap();
    let stream = Stream::start(&bootstrap, "epochs", 1, "all");
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.broker(follower).kill9();
    cluster.broker(follower).restart();
    cluster.broker(leader).kill9();
    new_leader(&cluster, "epochs", 0, leader);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.broker(leader).restart();
    wait_isr(&bootstrap, "epochs", 3);
    let streamed = stream.finish().await;
    let read = read_all(&bootstrap, "epochs", 1);
    assert_exactly_once(&streamed.acked, &read);
    assert_replicas_identical(&cluster, "epochs", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_1_divergent_tail_is_truncated_when_the_old_leader_returns() {
    // A long session so that pausing the followers does not fence them.
    let mut cluster = Cluster::start_with(3, &[], &["broker.session.timeout.ms=20000"]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "diverge", 1, &[("min.insync.replicas", "1")]).await;
    let leader = wait_isr(&bootstrap, "diverge", 3)[&0].0;
    let leader_index = usize::try_from(leader - 1).unwrap();
    for _ in 0..5 {
        assert_eq!(
            produce_raw(&cluster.brokers[leader_index], "diverge", 0, -1),
            0
        );
    }
    // What a consumer can read now is below the HW: it must survive.
    let committed = read_all(&bootstrap, "diverge", 1);
    let followers: Vec<i32> = [1, 2, 3].into_iter().filter(|b| *b != leader).collect();
    for f in &followers {
        cluster.broker(*f).signal("STOP");
    }
    // acks=1 records only the leader holds: the divergent tail.
    for _ in 0..5 {
        assert_eq!(
            produce_raw(&cluster.brokers[leader_index], "diverge", 0, 1),
            0
        );
    }
    cluster.broker(leader).kill9();
    for f in &followers {
        cluster.broker(*f).signal("CONT");
    }
    let next = new_leader(&cluster, "diverge", 0, leader);
    let next_index = usize::try_from(next - 1).unwrap();
    for _ in 0..3 {
        // The new leader may apply the image that makes it leader a moment after another
        // broker showed it; NOT_LEADER_OR_FOLLOWER (6) until then, which clients retry.
        let code = eventually(Duration::from_secs(10), || {
            let code = produce_raw(&cluster.brokers[next_index], "diverge", 0, -1);
            (code != 6).then_some(code)
        });
        assert_eq!(code, Some(0));
    }
    cluster.broker(leader).restart();
    wait_isr(&bootstrap, "diverge", 3);
    assert_replicas_identical(&cluster, "diverge", 1);
    let read = read_all(&bootstrap, "diverge", 1);
    for (offset, value) in &committed[&0] {
        assert!(
            read[&0].contains(&(*offset, value.clone())),
            "read below the HW before the failover: {offset} {value}"
        );
    }
    assert!(
        cluster.brokers[leader_index].log().contains("truncat"),
        "the old leader truncated its tail\n{}",
        cluster.brokers[leader_index].log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reassigning_partitions_to_a_new_broker_while_producing_loses_nothing() {
    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    use kafka_protocol::messages::{
        AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;

    let started = Instant::now();
    let cluster = Cluster::start(4, &[]);
    let bootstrap = cluster.bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let topic = NewTopic::new(
        "moving",
        2,
        TopicReplication::Variable(&[&[1, 2, 3], &[2, 3, 1]]),
    )
    .set("min.insync.replicas", "2");
    for r in admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .unwrap()
    {
        r.expect("created");
    }
    wait_isr(&bootstrap, "moving", 3);
    let stream = Stream::start(&bootstrap, "moving", 2, "all");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let target = |ids: &[i32]| Some(ids.iter().map(|&b| BrokerId(b)).collect());
    let response = cluster.brokers[3].call(
        0,
        &AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![
                ReassignableTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("moving")))
                    .with_partitions(vec![
                        ReassignablePartition::default()
                            .with_partition_index(0)
                            .with_replicas(target(&[4, 2, 3])),
                        ReassignablePartition::default()
                            .with_partition_index(1)
                            .with_replicas(target(&[2, 3, 4])),
                    ]),
            ]),
    );
    assert!(
        response.responses[0]
            .partitions
            .iter()
            .all(|p| p.error_code == 0),
        "{response:?}"
    );
    // Until it completes, the ISR never drops below three.
    let deadline = Instant::now() + WAIT;
    loop {
        let states = partition_states(&bootstrap, "moving").unwrap();
        for (p, (_, isr)) in &states {
            assert!(
                isr.len() >= 3,
                "partition {p} ISR {isr:?} during the reassignment"
            );
        }
        let listed = cluster.brokers[0].call(0, &ListPartitionReassignmentsRequest::default());
        if listed.topics.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reassignment did not complete\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("reassignment complete after {:?}", started.elapsed());
    let states = wait_isr(&bootstrap, "moving", 3);
    assert!(
        !states[&0].1.contains(&1),
        "broker 1 left partition 0: {states:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let streamed = stream.finish().await;
    eprintln!(
        "stream drained after {:?}: {} errors, first {:?}",
        started.elapsed(),
        streamed.errors.len(),
        streamed.errors.first()
    );
    assert!(
        streamed.errors.is_empty(),
        "no record failed during the reassignment: {:?}",
        streamed.errors.first()
    );
    let read = read_all(&bootstrap, "moving", 2);
    assert_exactly_once(&streamed.acked, &read);
    let moved = cluster.brokers[0].data_dir.join("moving-0");
    assert!(
        eventually(WAIT, || (!moved.exists()).then_some(())).is_some(),
        "broker 1 deleted the replica it no longer holds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_group_keeps_its_committed_offsets_across_a_coordinator_failover() {
    use kafka_protocol::messages::FindCoordinatorRequest;
    use kafka_protocol::protocol::StrBytes;
    use rdkafka::consumer::CommitMode;

    let mut cluster = Cluster::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "grouped", 2, &[("min.insync.replicas", "2")]).await;
    wait_isr(&bootstrap, "grouped", 3);
    let group = "failover-group";
    let coordinator = |cluster: &Cluster| {
        let response = cluster
            .brokers
            .iter()
            .find(|b| b.is_running())
            .unwrap()
            .call(
                1,
                &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str(group)),
            );
        (response.error_code == 0).then_some(response.node_id.0)
    };
    let first = eventually(WAIT, || coordinator(&cluster)).expect("a coordinator");
    let consumer = |bootstrap: &str| -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap()
    };
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("grouped", 0, Offset::Offset(17))
        .unwrap();
    offsets
        .add_partition_offset("grouped", 1, Offset::Offset(42))
        .unwrap();
    let c = consumer(&bootstrap);
    eventually(WAIT, || c.commit(&offsets, CommitMode::Sync).ok()).expect("offsets committed");
    drop(c);
    wait_isr(&bootstrap, "__consumer_offsets", 3);
    cluster.broker(first).kill9();
    let second = eventually(WAIT, || coordinator(&cluster).filter(|c| *c != first))
        .unwrap_or_else(|| panic!("a new coordinator\n{}", cluster.logs()));
    eprintln!("coordinator moved from {first} to {second}");
    let survivors: Vec<String> = cluster
        .brokers
        .iter()
        .filter(|b| b.is_running())
        .map(process::BrokerProcess::bootstrap)
        .collect();
    let c = consumer(&survivors.join(","));
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition("grouped", 0);
    wanted.add_partition("grouped", 1);
    let committed = eventually(WAIT, || {
        c.committed_offsets(wanted.clone(), Duration::from_secs(5))
            .ok()
    })
    .expect("OffsetFetch answered");
    let got: Vec<(i32, Offset)> = committed
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect();
    assert_eq!(
        got,
        vec![(0, Offset::Offset(17)), (1, Offset::Offset(42))],
        "{}",
        cluster
            .logs()
            .lines()
            .filter(|l| l.contains("group")
                || l.contains("coordinator")
                || l.contains("__consumer_offsets-")
                || l.starts_with("---"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
