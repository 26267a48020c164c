//! The consumer: every partition assigned from its high watermark (no group join, no
//! commits), reading this run's records and timing each from its send stamp to receipt.
//!
//! Readiness: the producers send one warm-up record to each partition after the consumer is
//! assigned; once it has seen one from every partition, its fetches are flowing and the
//! measured part of the run may begin.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::latency::Recorder;
use crate::stamp::{self, Clock, WARMUP};

const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConsumeError {
    #[error("creating a consumer")]
    Create(#[source] KafkaError),
    #[error("high watermark of {topic}-{partition}")]
    Watermark {
        topic: String,
        partition: i32,
        #[source]
        source: KafkaError,
    },
    #[error("assigning {topic}'s partitions")]
    Assign {
        topic: String,
        #[source]
        source: KafkaError,
    },
}

/// What the consumer reads.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) topic: String,
    pub(crate) partitions: i32,
    pub(crate) run_id: u64,
    pub(crate) clock: Clock,
    /// Once the producers are done, how long to wait for records still missing.
    pub(crate) patience: Duration,
}

/// Tells the consumer thread when to stop.
#[derive(Debug)]
pub(crate) struct Control {
    /// Records to read before stopping; u64::MAX until the producers know.
    target: AtomicU64,
    /// When the producers finished (ns on the run clock), 0 while they run.
    producers_done_ns: AtomicU64,
    /// Records sent before this (ns on the run clock) are left out of the latency.
    warmup_until_ns: AtomicU64,
    abort: AtomicBool,
}

impl Control {
    pub(crate) fn new() -> Arc<Control> {
        Arc::new(Control {
            target: AtomicU64::new(u64::MAX),
            producers_done_ns: AtomicU64::new(0),
            warmup_until_ns: AtomicU64::new(u64::MAX),
            abort: AtomicBool::new(false),
        })
    }

    /// The producers are done and `acked` records were acknowledged.
    pub(crate) fn producers_done(&self, acked: u64, now_ns: u64) {
        self.target.store(acked, Ordering::Release);
        self.producers_done_ns
            .store(now_ns.max(1), Ordering::Release);
    }

    /// The measured part has begun; records sent from `ns` on count for latency.
    pub(crate) fn set_warmup_until(&self, ns: u64) {
        self.warmup_until_ns.store(ns, Ordering::Release);
    }

    pub(crate) fn abort(&self) {
        self.abort.store(true, Ordering::Release);
    }
}

/// What the consumer read.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) records: u64,
    pub(crate) bytes: u64,
    pub(crate) first_ns: u64,
    pub(crate) last_ns: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) latency: Recorder,
}

/// A running consumer thread.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) ready: mpsc::Receiver<()>,
    pub(crate) thread: JoinHandle<Outcome>,
}

/// Assigns every partition at its current high watermark and starts reading on a thread.
pub(crate) fn start(
    config: &ClientConfig,
    plan: Plan,
    control: Arc<Control>,
) -> Result<Running, ConsumeError> {
    let consumer: BaseConsumer = config.create().map_err(ConsumeError::Create)?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..plan.partitions {
        let (_, high) = consumer
            .fetch_watermarks(&plan.topic, partition, WATERMARK_TIMEOUT)
            .map_err(|source| ConsumeError::Watermark {
                topic: plan.topic.clone(),
                partition,
                source,
            })?;
        assignment
            .add_partition_offset(&plan.topic, partition, Offset::Offset(high))
            .map_err(|source| ConsumeError::Assign {
                topic: plan.topic.clone(),
                source,
            })?;
    }
    consumer
        .assign(&assignment)
        .map_err(|source| ConsumeError::Assign {
            topic: plan.topic.clone(),
            source,
        })?;
    let (ready_tx, ready) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("consumer".into())
        .spawn(move || consume(&consumer, &plan, &control, ready_tx))
        .expect("spawn consumer thread");
    Ok(Running { ready, thread })
}

fn consume(
    consumer: &BaseConsumer,
    plan: &Plan,
    control: &Control,
    ready: mpsc::Sender<()>,
) -> Outcome {
    let mut out = Outcome {
        records: 0,
        bytes: 0,
        first_ns: 0,
        last_ns: 0,
        errors: 0,
        first_error: None,
        latency: Recorder::new(),
    };
    let mut warmed = vec![false; plan.partitions as usize];
    let mut unwarmed = warmed.len();
    loop {
        match consumer.poll(POLL) {
            Some(Ok(m)) => {
                let now = plan.clock.now_ns();
                let payload = m.payload().unwrap_or_default();
                match stamp::send_time(payload, plan.run_id) {
                    None => {}
                    Some(WARMUP) => {
                        if let Some(w) = warmed.get_mut(m.partition() as usize)
                            && !*w
                        {
                            *w = true;
                            unwarmed -= 1;
                            if unwarmed == 0 {
                                let _ = ready.send(());
                            }
                        }
                    }
                    Some(sent) => {
                        if out.records == 0 {
                            out.first_ns = now;
                        }
                        out.records += 1;
                        out.bytes += payload.len() as u64;
                        out.last_ns = now;
                        if sent >= control.warmup_until_ns.load(Ordering::Acquire) {
                            out.latency.record_ns(now.saturating_sub(sent));
                        }
                    }
                }
            }
            Some(Err(e)) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| e.to_string());
            }
            None => {}
        }
        if control.abort.load(Ordering::Acquire)
            || out.records >= control.target.load(Ordering::Acquire)
        {
            return out;
        }
        let done = control.producers_done_ns.load(Ordering::Acquire);
        if done > 0 {
            let quiet_since = done.max(out.last_ns);
            if plan.clock.now_ns().saturating_sub(quiet_since) > plan.patience.as_nanos() as u64 {
                return out;
            }
        }
    }
}
