//! Replication and failover with real clients against real processes: a controller and
//! three brokers on 127.0.0.1 (`cluster::Cluster`), topics with replication factor 3 and
//! `min.insync.replicas=2`, librdkafka producers and consumers.
//!
//! What every test checks at the end, besides its own scenario: each acknowledged record is
//! read back exactly once, in order per partition, and every replica's log holds the same
//! bytes as the leader's (no offset holds different records on different replicas).

mod cluster;
mod process;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cluster::{Cluster, eventually};
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

/// `(leader, isr)` of every partition of `topic`, from a broker's Metadata answer.
fn partition_states(bootstrap: &str, topic: &str) -> Option<BTreeMap<i32, (i32, Vec<i32>)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .ok()?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let t = metadata.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() || t.partitions().is_empty() {
        return None;
    }
    Some(
        t.partitions()
            .iter()
            .map(|p| (p.id(), (p.leader(), p.isr().to_vec())))
            .collect(),
    )
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
                got.entry(m.partition())
                    .or_default()
                    .push((m.offset(), value));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_replicates_to_every_replica_and_survives_the_leaders_kill() {
    let mut cluster = Cluster::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "replicated", 3, &[("min.insync.replicas", "2")]).await;
    let before = wait_isr(&bootstrap, "replicated", 3);

    let producer = producer(&bootstrap, "all", true);
    let mut acked: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    let mut pending = Vec::new();
    for i in 0..3000 {
        let p = i % 3;
        pending.push((
            p,
            format!("r{i:05}"),
            send(&producer, "replicated", p, format!("r{i:05}")),
        ));
    }
    for (p, value, delivery) in pending.drain(..) {
        let offset = delivery
            .await
            .unwrap()
            .map_err(|(e, _)| e)
            .expect("acked")
            .offset;
        acked.entry(p).or_default().push((offset, value));
    }

    // kill -9 the leader of partition 0; a new leader is elected from the ISR.
    let old_leader = before[&0].0;
    cluster.broker(old_leader).kill9();
    let after = eventually(WAIT, || {
        partition_states(&cluster.bootstrap(), "replicated")
            .filter(|s| s[&0].0 >= 0 && s[&0].0 != old_leader)
    })
    .unwrap_or_else(|| panic!("no new leader for partition 0\n{}", cluster.logs()));
    assert!(
        before[&0].1.contains(&after[&0].0),
        "the new leader was in the ISR"
    );

    for i in 3000..4000 {
        let p = i % 3;
        pending.push((
            p,
            format!("r{i:05}"),
            send(&producer, "replicated", p, format!("r{i:05}")),
        ));
    }
    for (p, value, delivery) in pending.drain(..) {
        let offset = delivery
            .await
            .unwrap()
            .map_err(|(e, _)| e)
            .expect("acked")
            .offset;
        acked.entry(p).or_default().push((offset, value));
    }

    cluster.broker(old_leader).restart();
    wait_isr(&bootstrap, "replicated", 3);
    let read = read_all(&bootstrap, "replicated", 3);
    for (p, records) in &acked {
        let mut want = records.clone();
        want.sort();
        assert_eq!(
            read.get(p),
            Some(&want),
            "partition {p}: acked records read back exactly once, in order"
        );
    }
    assert_replicas_identical(&cluster, "replicated", 3);
}
