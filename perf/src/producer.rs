//! One producer instance per thread: stamped records at a target rate (or as fast as the
//! client queue takes them), with delivery reports counted as they arrive.
//!
//! A record's send time is taken when librdkafka accepts it into its queue; when the queue is
//! full the producer waits (serving delivery reports) and stamps the record afresh, so time
//! spent blocked on a full queue is back-pressure, not latency.

use std::error::Error as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use crate::latency::Recorder;
use crate::stamp::{self, Clock, WARMUP};

/// How long a producer may take to get every record acknowledged once it stops sending.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);
/// How long InitProducerId and a commit may take.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);
/// A producer sleeps (serving delivery reports) only when this far ahead of its schedule.
const MIN_SLEEP: Duration = Duration::from_millis(1);

#[derive(Debug, thiserror::Error)]
pub(crate) enum ProduceError {
    #[error("creating a producer")]
    Create(#[source] KafkaError),
    #[error("sending a record")]
    Send(#[source] KafkaError),
    #[error("warm-up records to topic {topic} were not acknowledged: {reason}")]
    WarmUp { topic: String, reason: String },
    #[error("{step} failed")]
    Transaction {
        step: &'static str,
        #[source]
        source: KafkaError,
    },
}

fn txn_step(step: &'static str) -> impl FnOnce(KafkaError) -> ProduceError {
    move |source| ProduceError::Transaction { step, source }
}

/// What to produce: the share of one producer.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) topic: String,
    pub(crate) record_size: usize,
    pub(crate) run_id: u64,
    pub(crate) clock: Clock,
    /// Records to send, or None to send until `until_ns`.
    pub(crate) records: Option<u64>,
    pub(crate) until_ns: u64,
    /// Records per second for this producer, or None for no limit.
    pub(crate) rate: Option<f64>,
    /// Commit a transaction after every this many records (None: not transactional).
    pub(crate) transaction_size: Option<u64>,
}

/// What one producer did.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) sent: u64,
    pub(crate) acked: u64,
    pub(crate) acked_bytes: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) last_ack_ns: u64,
    pub(crate) ack_latency: Recorder,
}

#[derive(Debug)]
struct Acks {
    acked: u64,
    acked_bytes: u64,
    warmup_acked: u64,
    errors: u64,
    first_error: Option<String>,
    last_ack_ns: u64,
    latency: Recorder,
}

/// Counts delivery reports; runs on the thread that polls the producer.
#[derive(Debug)]
pub(crate) struct Context {
    /// The producer has a `transactional.id`.
    transactional: bool,
    clock: Clock,
    run_id: u64,
    /// Records sent before this (ns on the run clock) are left out of the latency.
    warmup_until_ns: AtomicU64,
    acks: Mutex<Acks>,
}

impl Context {
    /// The measured part has begun; records sent from `ns` on count for latency.
    pub(crate) fn set_warmup_until(&self, ns: u64) {
        self.warmup_until_ns.store(ns, Ordering::Release);
    }
}

impl ClientContext for Context {}

impl ProducerContext for Context {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let now = self.clock.now_ns();
        let mut acks = self.acks.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(m) => {
                let payload = m.payload().unwrap_or_default();
                let Some(sent) = stamp::send_time(payload, self.run_id) else {
                    return;
                };
                if sent == WARMUP {
                    acks.warmup_acked += 1;
                    return;
                }
                acks.acked += 1;
                acks.acked_bytes += payload.len() as u64;
                acks.last_ack_ns = acks.last_ack_ns.max(now);
                if sent >= self.warmup_until_ns.load(Ordering::Acquire) {
                    acks.latency.record_ns(now.saturating_sub(sent));
                }
            }
            Err((e, _)) => {
                acks.errors += 1;
                acks.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// A producer with its delivery counters.
pub(crate) type PerfProducer = BaseProducer<Context>;

/// Creates a producer; a transactional one (`transaction_size` set) is initialised
/// (InitProducerId) before it is returned.
pub(crate) fn create(
    config: &ClientConfig,
    clock: Clock,
    run_id: u64,
    transaction_size: Option<u64>,
) -> Result<PerfProducer, ProduceError> {
    let producer: PerfProducer = config
        .create_with_context(Context {
            transactional: transaction_size.is_some(),
            clock,
            run_id,
            warmup_until_ns: AtomicU64::new(u64::MAX),
            acks: Mutex::new(Acks {
                acked: 0,
                acked_bytes: 0,
                warmup_acked: 0,
                errors: 0,
                first_error: None,
                last_ack_ns: 0,
                latency: Recorder::new(),
            }),
        })
        .map_err(ProduceError::Create)?;
    if transaction_size.is_some() {
        producer
            .init_transactions(TRANSACTION_TIMEOUT)
            .map_err(txn_step("init_transactions"))?;
    }
    Ok(producer)
}

/// Sends one warm-up record to every partition and waits for their acknowledgements, so
/// connections and metadata are in place before the clock starts, and the consumer can
/// tell when it is fetching from every partition.
pub(crate) fn warm_up(
    producer: &PerfProducer,
    topic: &str,
    partitions: i32,
    record_size: usize,
    run_id: u64,
) -> Result<(), ProduceError> {
    let mut value = stamp::new_value(record_size, run_id);
    stamp::set_send_time(&mut value, WARMUP);
    let transactional = producer.client().context().transactional;
    if transactional {
        producer
            .begin_transaction()
            .map_err(txn_step("begin_transaction"))?;
    }
    for partition in 0..partitions {
        while !try_send(producer, topic, Some(partition), &value)? {
            producer.poll(Duration::from_millis(1));
        }
    }
    let flushed = if transactional {
        commit(producer)
    } else {
        producer.flush(FLUSH_TIMEOUT).map_err(ProduceError::Send)
    };
    let acks = producer
        .context()
        .acks
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    match (flushed, &acks.first_error) {
        (_, Some(e)) => Err(ProduceError::WarmUp {
            topic: topic.to_owned(),
            reason: e.clone(),
        }),
        (Err(e), None) => Err(ProduceError::WarmUp {
            topic: topic.to_owned(),
            reason: format!(
                "{e}: {}",
                e.source().map(ToString::to_string).unwrap_or_default()
            ),
        }),
        (Ok(()), None) if acks.warmup_acked < partitions as u64 => Err(ProduceError::WarmUp {
            topic: topic.to_owned(),
            reason: format!("{} of {partitions} acknowledged", acks.warmup_acked),
        }),
        (Ok(()), None) => Ok(()),
    }
}

/// Produces the plan's records, then waits for every acknowledgement.
pub(crate) fn run(producer: &PerfProducer, plan: &Plan) -> Result<Outcome, ProduceError> {
    let mut value = stamp::new_value(plan.record_size, plan.run_id);
    let start_ns = plan.clock.now_ns();
    let interval_ns = plan.rate.map(|r| 1e9 / r);
    let mut sent: u64 = 0;
    let mut in_transaction: u64 = 0;
    loop {
        if let Some(size) = plan.transaction_size
            && in_transaction == size
        {
            commit(producer)?;
            in_transaction = 0;
        }
        if let Some(n) = plan.records {
            if sent >= n {
                break;
            }
        } else if plan.clock.now_ns() >= plan.until_ns {
            break;
        }
        if plan.transaction_size.is_some() && in_transaction == 0 {
            producer
                .begin_transaction()
                .map_err(txn_step("begin_transaction"))?;
        }
        if let Some(interval) = interval_ns {
            let due = start_ns + (sent as f64 * interval) as u64;
            let now = plan.clock.now_ns();
            if due > now + MIN_SLEEP.as_nanos() as u64 {
                producer.poll(Duration::from_nanos(due - now));
            }
        }
        loop {
            stamp::set_send_time(&mut value, plan.clock.now_ns());
            if try_send(producer, &plan.topic, None, &value)? {
                break;
            }
            producer.poll(Duration::from_millis(1));
        }
        sent += 1;
        in_transaction += 1;
        producer.poll(Duration::ZERO);
    }
    let flushed = if plan.transaction_size.is_some() && in_transaction > 0 {
        commit(producer)
    } else {
        producer.flush(FLUSH_TIMEOUT).map_err(ProduceError::Send)
    };
    let mut acks = producer
        .context()
        .acks
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Err(e) = flushed {
        acks.first_error.get_or_insert_with(|| e.to_string());
    }
    Ok(Outcome {
        sent,
        acked: acks.acked,
        acked_bytes: acks.acked_bytes,
        errors: acks.errors + sent.saturating_sub(acks.acked + acks.errors),
        first_error: acks.first_error.clone(),
        last_ack_ns: acks.last_ack_ns,
        ack_latency: acks.latency.clone(),
    })
}

/// Commits the open transaction. The records are drained first by polling in short steps:
/// the client's own flush (and `commit_transaction`, which flushes) polls in 100 ms slices
/// that each run to the end, so every commit would cost at least 100 ms of idle waiting.
fn commit(producer: &PerfProducer) -> Result<(), ProduceError> {
    let deadline = std::time::Instant::now() + FLUSH_TIMEOUT;
    while producer.in_flight_count() > 0 && std::time::Instant::now() < deadline {
        producer.poll(Duration::from_millis(1));
    }
    producer
        .commit_transaction(TRANSACTION_TIMEOUT)
        .map_err(txn_step("commit_transaction"))
}

/// Offers one record to the client (which copies it): false when its queue is full.
fn try_send(
    producer: &PerfProducer,
    topic: &str,
    partition: Option<i32>,
    value: &[u8],
) -> Result<bool, ProduceError> {
    let mut record = BaseRecord::<(), [u8], ()>::to(topic).payload(value);
    if let Some(p) = partition {
        record = record.partition(p);
    }
    match producer.send(record) {
        Ok(()) => Ok(true),
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => Ok(false),
        Err((e, _)) => Err(ProduceError::Send(e)),
    }
}
