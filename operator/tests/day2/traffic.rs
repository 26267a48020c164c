//! Real client traffic during an operation: an acks=all idempotent producer sending a
//! steady stream of records (librdkafka retries through leader changes on its own, as
//! an application's producer does), and a consumer that reads a topic back to its high
//! watermarks to check that every acknowledged record is there, byte for byte.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};

/// What librdkafka reported while the traffic ran, besides the deliveries.
#[derive(Default)]
struct Seen {
    /// Client-level errors (`error` callback): disconnects, all brokers down, ...
    errors: Mutex<Vec<String>>,
    /// Warnings and worse it logged (retriable request errors show up here).
    warnings: Mutex<Vec<String>>,
    /// Produce requests it retried, summed over brokers (from its statistics).
    retries: AtomicU64,
}

struct Context(Arc<Seen>);

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            let mut warnings = self.0.warnings.lock().unwrap();
            warnings.push(format!("{fac}: {log_message}"));
        }
    }

    fn stats(&self, statistics: Statistics) {
        let retries: u64 = statistics.brokers.values().map(|b| b.txretries).sum();
        self.0.retries.fetch_max(retries, Ordering::Relaxed);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0
            .errors
            .lock()
            .unwrap()
            .push(format!("{error}: {reason}"));
    }
}

/// What a [`Traffic`] run produced.
#[derive(Debug, Default)]
pub(crate) struct Produced {
    /// Every acknowledged record: (partition, offset) → value.
    pub(crate) acked: BTreeMap<(i32, i64), String>,
    /// Records whose delivery failed (not acknowledged), with the error.
    pub(crate) failed: Vec<String>,
    pub(crate) client_errors: Vec<String>,
    pub(crate) warnings: Vec<String>,
    pub(crate) retries: u64,
    /// The longest time a record waited for its acknowledgement.
    pub(crate) slowest_ack: Duration,
}

/// A producer sending `rate` records per second to a topic until stopped.
pub(crate) struct Traffic {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Produced>,
}

impl Traffic {
    pub(crate) fn start(bootstrap: &str, topic: &str, rate: u32) -> Traffic {
        let seen = Arc::new(Seen::default());
        let producer: FutureProducer<Context> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            // Long enough to ride out any operation: a record is either acknowledged
            // or reported failed, never silently dropped.
            .set("message.timeout.ms", "180000")
            .set("statistics.interval.ms", "500")
            .create_with_context(Context(seen.clone()))
            .expect("a producer");
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let topic = topic.to_owned();
        let task = {
            let stop = stop.clone();
            let acked = acked.clone();
            tokio::spawn(async move {
                let produced = Arc::new(Mutex::new(Produced::default()));
                let mut deliveries = Vec::new();
                let mut every = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    every.tick().await;
                    let value = format!("record {i}");
                    let key = format!("key-{i}");
                    i += 1;
                    let sent = Instant::now();
                    let delivery = match producer
                        .send_result(FutureRecord::to(&topic).key(&key).payload(&value))
                    {
                        Ok(delivery) => delivery,
                        Err((e, _)) => {
                            produced
                                .lock()
                                .unwrap()
                                .failed
                                .push(format!("{value}: {e}"));
                            continue;
                        }
                    };
                    let produced = produced.clone();
                    let acked = acked.clone();
                    deliveries.push(tokio::spawn(async move {
                        let outcome = delivery.await;
                        let mut produced = produced.lock().unwrap();
                        match outcome {
                            Ok(Ok(delivered)) => {
                                produced
                                    .acked
                                    .insert((delivered.partition, delivered.offset), value);
                                produced.slowest_ack = produced.slowest_ack.max(sent.elapsed());
                                acked.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(Err((e, _))) => produced.failed.push(format!("{value}: {e}")),
                            Err(_) => produced.failed.push(format!("{value}: cancelled")),
                        }
                    }));
                }
                for delivery in deliveries {
                    let _ = delivery.await;
                }
                let _ = tokio::task::block_in_place(|| producer.flush(Duration::from_secs(30)));
                drop(producer);
                let mut produced = std::mem::take(&mut *produced.lock().unwrap());
                produced.client_errors = seen.errors.lock().unwrap().clone();
                produced.warnings = seen.warnings.lock().unwrap().clone();
                produced.retries = seen.retries.load(Ordering::Relaxed);
                produced
            })
        };
        Traffic { stop, acked, task }
    }

    /// Records acknowledged so far.
    pub(crate) fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Waits until `more` further records are acknowledged (traffic is flowing).
    pub(crate) async fn wait_flowing(&self, more: u64, within: Duration) {
        let target = self.acked() + more;
        crate::env::wait_for(
            &format!("{more} more records acknowledged"),
            within,
            || async { (self.acked() >= target).then_some(()) },
        )
        .await;
    }

    /// Stops sending and waits for every outstanding record's outcome.
    pub(crate) async fn stop(self) -> Produced {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the producer task")
    }
}

/// Reads `topic`'s partitions from the beginning to their high watermarks.
pub(crate) fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> BTreeMap<(i32, i64), String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "day2-verifier")
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer");
    let mut ends = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .expect("watermarks");
        ends.insert(partition, high);
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut read = BTreeMap::new();
    let mut done: BTreeMap<i32, bool> = ends.iter().map(|(p, high)| (*p, *high == 0)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.values().any(|d| !d) {
        assert!(
            Instant::now() < deadline,
            "reading {topic} back: stuck below the high watermarks {ends:?} (done {done:?})"
        );
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.expect("consuming");
        let value = message
            .payload()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        read.insert((message.partition(), message.offset()), value);
        if message.offset() + 1 >= ends[&message.partition()] {
            done.insert(message.partition(), true);
        }
    }
    read
}

/// Acknowledged records not read back as acknowledged (missing or different).
pub(crate) fn lost(produced: &Produced, read: &BTreeMap<(i32, i64), String>) -> Vec<String> {
    produced
        .acked
        .iter()
        .filter(|(at, value)| read.get(at) != Some(value))
        .map(|((p, o), v)| format!("{v} at {p}/{o} (read {:?})", read.get(&(*p, *o))))
        .collect()
}

/// Sends one record with a short timeout: `Ok` once it is acknowledged.
pub(crate) async fn produce_one(bootstrap: &str, topic: &str) -> Result<(), String> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "2000")
        .create()
        .map_err(|e| e.to_string())?;
    producer
        .send(
            FutureRecord::to(topic).key("probe").payload("probe"),
            Duration::from_secs(2),
        )
        .await
        .map(|_| ())
        .map_err(|(e, _)| e.to_string())
}

/// Prints a run's figures and fails on any record not acknowledged or lost.
pub(crate) fn check_no_loss(what: &str, produced: &Produced, read: &BTreeMap<(i32, i64), String>) {
    let lost = lost(produced, read);
    crate::env::report(format!(
        "{what}: {} records acknowledged, {} failed, {} lost; {} produce retries, {} client \
         errors, {} warnings; slowest acknowledgement {:.1?}",
        produced.acked.len(),
        produced.failed.len(),
        lost.len(),
        produced.retries,
        produced.client_errors.len(),
        produced.warnings.len(),
        produced.slowest_ack,
    ));
    for error in produced.client_errors.iter().take(10) {
        crate::env::report(format!("  client error: {error}"));
    }
    for warning in produced.warnings.iter().take(10) {
        crate::env::report(format!("  warning: {warning}"));
    }
    assert!(
        produced.failed.is_empty(),
        "{what}: deliveries failed: {:?}",
        &produced.failed[..produced.failed.len().min(10)]
    );
    assert!(
        lost.is_empty(),
        "{what}: acknowledged records lost: {:?}",
        &lost[..lost.len().min(10)]
    );
    assert!(
        !produced.acked.is_empty(),
        "{what}: nothing was acknowledged"
    );
}
