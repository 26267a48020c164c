//! The transaction coordinator's I/O: one [`TxnCoordinator`] per `__transaction_state`
//! partition this broker leads, the records it persists, the markers it sends and its timers.
//!
//! - **Shards.** Each led partition of `__transaction_state` is a shard holding the pure
//!   coordinator behind a mutex, *loading* (its records replayed on a blocking thread:
//!   requests get COORDINATOR_LOAD_IN_PROGRESS) and then *loaded*. The coordinator epoch is
//!   the partition's leader epoch when loading began, so markers a stale coordinator sends
//!   are fenced by the partitions (TRANSACTION_COORDINATOR_FENCED). A partition this broker
//!   stops leading, or leads again in a later epoch, is unloaded: parked requests get
//!   NOT_COORDINATOR; a later epoch loads afresh.
//! - **Persists** are written in the order the coordinator emitted them, under the shard's
//!   lock, and reported back only once the ISR has them (Kafka writes the transaction log
//!   with acks=all): a transition is never acted on — markers sent, a client answered — while
//!   a failover could still lose its record.
//! - **Markers.** A `WriteMarkers` effect starts a task ([`super::txn_markers`]) that writes
//!   the COMMIT or ABORT marker to every partition of the transaction, through the partition
//!   leaders, retrying until each has landed; then the coordinator completes the transaction.
//! - **Time.** [`TxnService::tick_all`] runs the coordinators' timers (timed-out transactions
//!   are aborted, idle ids expire) every `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
//! - **The topic.** `__transaction_state` is created on first use (FindCoordinator for a
//!   transactional id), compacted, `transaction.state.log.num.partitions` partitions.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::records::RecordBatchDecoder;
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use super::group::{GroupId, partition_for};
use super::txn::{
    AddOffsetsParams, AddPartitionsParams, Effect, EndTxnParams, InitProducerIdParams, ListedTxn,
    RequestToken, Response, TxnConfig, TxnCoordinator, TxnDescription,
};
use super::txn_markers::{MarkerJob, MarkerOutcome};
use crate::broker::{Broker, Partition};
use crate::kafka_error::log_error_code;
use crate::log::batch;
use crate::log::now_ms;
use crate::replication::{AckOutcome, LeaderAppendError};
use crate::types::Offset;

/// The internal topic holding the transaction coordinators' state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// How often the ticker task wakes; each shard's timers run at their own interval.
pub const TICK_INTERVAL: Duration = Duration::from_millis(100);

/// How long a transaction log write waits for the ISR before it is reported failed.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes read per step while loading a partition.
const LOAD_READ_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    #[error("reading a segment: {0}")]
    Io(#[from] std::io::Error),
    #[error("undecodable record batch at offset {offset}: {reason}")]
    Batch { offset: Offset, reason: String },
    #[error("record at offset {offset}: {source}")]
    Record {
        offset: i64,
        #[source]
        source: super::txn::RecordError,
    },
}

/// The partition of `__transaction_state` coordinating `transactional_id`: Kafka's
/// `abs(transactionalId.hashCode) % partitions`, the same hash groups use.
pub fn partition_for_transactional_id(transactional_id: &str, partitions: u32) -> u32 {
    partition_for(&GroupId::from(transactional_id), partitions)
}

/// One `__transaction_state` partition this broker coordinates.
#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) partition: u32,
    /// The partition's leader epoch when loading began.
    pub(crate) coordinator_epoch: i32,
    inner: Mutex<ShardInner>,
}

#[derive(Debug)]
struct ShardInner {
    log: Arc<Partition>,
    state: ShardState,
    waiters: HashMap<RequestToken, oneshot::Sender<Response>>,
    /// Persist and marker tasks; aborted when the shard is unloaded, so none outlives it
    /// (each holds the broker).
    tasks: Vec<tokio::task::AbortHandle>,
}

#[derive(Debug)]
enum ShardState {
    Loading,
    Loaded(Box<TxnCoordinator>),
    /// Loading failed or the shard was unloaded.
    Gone,
}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, ShardInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this shard still coordinates (loaded and not unloaded).
    pub(crate) fn is_current(&self) -> bool {
        matches!(self.lock().state, ShardState::Loaded(_))
    }
}

impl ShardInner {
    /// Runs `task` on the runtime this is called from, as one of the shard's tasks. Persists
    /// and markers are only started from a runtime (requests, the ticker, loading tasks);
    /// without one the task is dropped with an error logged rather than a panic.
    fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.retain(|t| !t.is_finished());
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => self.tasks.push(handle.spawn(task).abort_handle()),
            Err(_) => error!("no async runtime to run a transaction coordinator task on"),
        }
    }

    fn coordinator(&mut self) -> Result<&mut TxnCoordinator, ResponseError> {
        match &mut self.state {
            ShardState::Loaded(c) => Ok(c),
            ShardState::Loading => Err(ResponseError::CoordinatorLoadInProgress),
            ShardState::Gone => Err(ResponseError::NotCoordinator),
        }
    }
}

/// Every shard's coordinator, the requests parked on them and the counters for metrics.
#[derive(Debug)]
pub struct TxnService {
    config: TxnConfig,
    abort_interval_ms: i64,
    shards: Mutex<BTreeMap<u32, Arc<Shard>>>,
    tokens: AtomicU64,
    last_tick_ms: AtomicI64,
    /// The broker, for the tasks that outlive a request (persists, markers).
    broker: OnceLock<Weak<Broker>>,
    /// Completed commits and aborts already added to the metrics counters, per shard.
    counted: Mutex<HashMap<u32, (u64, u64)>>,
    /// Connections to other brokers for marker requests.
    pub(crate) channels: super::txn_markers::Channels,
}

impl TxnService {
    pub fn new(config: TxnConfig, abort_interval_ms: i64) -> TxnService {
        TxnService {
            config,
            abort_interval_ms,
            shards: Mutex::new(BTreeMap::new()),
            tokens: AtomicU64::new(0),
            last_tick_ms: AtomicI64::new(0),
            broker: OnceLock::new(),
            counted: Mutex::new(HashMap::new()),
            channels: super::txn_markers::Channels::default(),
        }
    }

    /// Gives the service its broker (once, right after the broker is built).
    pub fn set_broker(&self, broker: Weak<Broker>) {
        let _ = self.broker.set(broker);
    }

    fn broker(&self) -> Option<Arc<Broker>> {
        self.broker.get().and_then(Weak::upgrade)
    }

    fn shards(&self) -> MutexGuard<'_, BTreeMap<u32, Arc<Shard>>> {
        self.shards.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The shard coordinating `transactional_id`, or the error a request for it gets here.
    fn shard_for(
        &self,
        broker: &Broker,
        transactional_id: &str,
    ) -> Result<Arc<Shard>, ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let metadata = broker.metadata();
        // As Kafka: a transactional id this broker does not coordinate (there may be no
        // coordinator at all yet) is NOT_COORDINATOR; the client looks it up again.
        let Some(topic) = metadata.topic(TRANSACTION_STATE_TOPIC) else {
            return Err(ResponseError::NotCoordinator);
        };
        let partition =
            partition_for_transactional_id(transactional_id, topic.partitions.len() as u32);
        self.shards()
            .get(&partition)
            .cloned()
            .ok_or(ResponseError::NotCoordinator)
    }

    /// Hands a request to the coordinator of `transactional_id` and waits for its answer.
    async fn call(
        &self,
        broker: &Broker,
        transactional_id: &str,
        f: impl FnOnce(&mut TxnCoordinator, RequestToken, i64) -> Vec<Effect>,
    ) -> Result<Response, ResponseError> {
        let shard = self.shard_for(broker, transactional_id)?;
        let token = RequestToken(self.tokens.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = shard.lock();
            let now = now_ms();
            let effects = f(inner.coordinator()?, token, now);
            inner.waiters.insert(token, tx);
            self.run(&shard, &mut inner, effects, now);
        }
        // A dropped sender means the shard was unloaded (its waiters dropped).
        rx.await.map_err(|_| ResponseError::NotCoordinator)
    }

    /// Executes effects in order, under the shard's lock.
    fn run(&self, shard: &Arc<Shard>, inner: &mut ShardInner, effects: Vec<Effect>, now: i64) {
        let mut queue = VecDeque::from(effects);
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Respond { token, response } => {
                    if let Some(tx) = inner.waiters.remove(&token) {
                        // The client may have gone; its answer is then dropped.
                        let _ = tx.send(response);
                    }
                }
                Effect::Persist {
                    id,
                    transactional_id,
                    key,
                    value,
                } => match append(&inner.log, key, value, now) {
                    Ok(end) => {
                        let partition = Arc::clone(&inner.log);
                        let shard = Arc::clone(shard);
                        let Some(broker) = self.broker() else {
                            continue;
                        };
                        inner.spawn(async move {
                            let result = replicated(&partition, end).await;
                            if let Err(error) = result {
                                warn!(
                                    transactional_id,
                                    ?error,
                                    "a __transaction_state write did not reach the ISR"
                                );
                            }
                            let service = &broker.transactions;
                            let mut inner = shard.lock();
                            let now = now_ms();
                            let Ok(c) = inner.coordinator() else { return };
                            let effects = c.persisted(id, result, now);
                            service.run(&shard, &mut inner, effects, now);
                        });
                    }
                    Err(error) => {
                        warn!(
                            transactional_id,
                            ?error,
                            "writing to __transaction_state failed"
                        );
                        if let ShardState::Loaded(c) = &mut inner.state {
                            queue.extend(c.persisted(id, Err(error), now));
                        }
                    }
                },
                Effect::WriteMarkers {
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    coordinator_epoch,
                    commit,
                    partitions,
                } => {
                    let Some(broker) = self.broker() else {
                        continue;
                    };
                    let job = MarkerJob {
                        transactional_id,
                        producer_id,
                        producer_epoch,
                        coordinator_epoch,
                        commit,
                        partitions,
                    };
                    let shard = Arc::clone(shard);
                    inner.spawn(async move {
                        let outcome = super::txn_markers::send(&broker, &shard, &job).await;
                        let service = &broker.transactions;
                        let mut inner = shard.lock();
                        let now = now_ms();
                        let Ok(c) = inner.coordinator() else { return };
                        match outcome {
                            MarkerOutcome::Written => {
                                let effects = c.markers_written(
                                    &job.transactional_id,
                                    job.producer_id,
                                    job.producer_epoch,
                                    now,
                                );
                                service.run(&shard, &mut inner, effects, now);
                            }
                            MarkerOutcome::Abandoned => warn!(
                                transactional_id = job.transactional_id,
                                "stopped sending transaction markers: this coordinator is stale"
                            ),
                        }
                    });
                }
            }
        }
    }

    /// InitProducerId with a transactional id. `fresh_producer_id` is an unused id from this
    /// broker's block, used when the coordinator needs a new one.
    pub async fn init_producer_id(
        &self,
        broker: &Broker,
        p: InitProducerIdParams,
        fresh_producer_id: i64,
    ) -> Result<(i64, i16), ResponseError> {
        let id = p.transactional_id.clone();
        match self
            .call(broker, &id, |c, token, now| {
                c.init_producer_id(token, p, fresh_producer_id, now).effects
            })
            .await?
        {
            Response::InitProducerId(result) => result,
            other => unexpected(other),
        }
    }

    /// AddPartitionsToTxn for partitions that exist.
    pub async fn add_partitions(
        &self,
        broker: &Broker,
        p: AddPartitionsParams,
    ) -> Result<Vec<((String, i32), Option<ResponseError>)>, ResponseError> {
        let id = p.transactional_id.clone();
        match self
            .call(broker, &id, |c, token, now| c.add_partitions(token, p, now))
            .await?
        {
            Response::AddPartitions(results) => Ok(results),
            other => unexpected(other),
        }
    }

    pub async fn add_offsets(
        &self,
        broker: &Broker,
        p: AddOffsetsParams,
    ) -> Result<(), ResponseError> {
        let id = p.transactional_id.clone();
        match self
            .call(broker, &id, |c, token, now| c.add_offsets(token, p, now))
            .await?
        {
            Response::AddOffsets(None) => Ok(()),
            Response::AddOffsets(Some(error)) => Err(error),
            other => unexpected(other),
        }
    }

    /// EndTxn. `fresh_producer_id` is needed only for an epoch-bumping (v5+) EndTxn, whose
    /// bump may exhaust the epoch.
    pub async fn end_txn(
        &self,
        broker: &Broker,
        p: EndTxnParams,
        fresh_producer_id: Option<i64>,
    ) -> Result<(i64, i16), ResponseError> {
        let id = p.transactional_id.clone();
        match self
            .call(broker, &id, |c, token, now| {
                c.end_txn(token, p, fresh_producer_id, now).effects
            })
            .await?
        {
            Response::EndTxn(result) => result,
            other => unexpected(other),
        }
    }

    /// DescribeTransactions for one id.
    pub fn describe(
        &self,
        broker: &Broker,
        transactional_id: &str,
    ) -> Result<TxnDescription, ResponseError> {
        let shard = self.shard_for(broker, transactional_id)?;
        let mut inner = shard.lock();
        inner.coordinator()?.describe(transactional_id, now_ms())
    }

    /// ListTransactions over every loaded shard: the error (COORDINATOR_LOAD_IN_PROGRESS when
    /// a shard is still loading, as Kafka answers), the transactions, and the state filters
    /// that name no state.
    pub fn list(
        &self,
        states: &[String],
        producer_ids: &[i64],
        min_duration_ms: i64,
    ) -> (Option<ResponseError>, Vec<ListedTxn>, Vec<String>) {
        let shards: Vec<Arc<Shard>> = self.shards().values().cloned().collect();
        let now = now_ms();
        let mut error = None;
        let mut listed = Vec::new();
        let mut unknown_states = states
            .iter()
            .filter(|s| super::txn::TxnState::from_name(s).is_none())
            .cloned()
            .collect::<Vec<_>>();
        for shard in shards {
            let mut inner = shard.lock();
            let result = inner
                .coordinator()
                .and_then(|c| c.list(states, producer_ids, min_duration_ms, now));
            match result {
                Ok(found) => {
                    listed.extend(found.transactions);
                    unknown_states = found.unknown_state_filters;
                }
                Err(e) => error = Some(e),
            }
        }
        (error, listed, unknown_states)
    }

    /// Starts or stops coordinating the `__transaction_state` partitions this broker leads.
    /// Call after every change of the partitions served.
    pub fn sync(self: &Arc<Self>, led: Vec<Arc<Partition>>) {
        let led: HashMap<u32, Arc<Partition>> = led
            .into_iter()
            .filter(|p| p.tp.topic == TRANSACTION_STATE_TOPIC && p.tp.partition >= 0)
            .map(|p| (p.tp.partition as u32, p))
            .collect();
        let mut shards = self.shards();
        let stale: Vec<u32> = shards
            .iter()
            .filter(|(p, shard)| {
                led.get(p).is_none_or(|log| {
                    !Arc::ptr_eq(log, &shard.lock().log)
                        || log.replica.leader_epoch() != shard.coordinator_epoch
                })
            })
            .map(|(p, _)| *p)
            .collect();
        for partition in stale {
            if let Some(shard) = shards.remove(&partition) {
                let mut inner = shard.lock();
                let state = std::mem::replace(&mut inner.state, ShardState::Gone);
                if let ShardState::Loaded(c) = state {
                    let effects = c.unload();
                    self.run(&shard, &mut inner, effects, now_ms());
                }
                inner.waiters.clear();
                for task in inner.tasks.drain(..) {
                    task.abort();
                }
                info!(
                    partition,
                    "stopped coordinating transactions of __transaction_state partition"
                );
            }
        }
        for (partition, log) in led {
            if shards.contains_key(&partition) {
                continue;
            }
            let coordinator_epoch = log.replica.leader_epoch();
            let shard = Arc::new(Shard {
                partition,
                coordinator_epoch,
                inner: Mutex::new(ShardInner {
                    log: log.clone(),
                    state: ShardState::Loading,
                    waiters: HashMap::new(),
                    tasks: Vec::new(),
                }),
            });
            shards.insert(partition, shard.clone());
            let config = self.config.clone();
            let service = Arc::clone(self);
            let task = move || {
                let started = std::time::Instant::now();
                let mut coordinator = TxnCoordinator::new(partition, coordinator_epoch, config);
                let loaded = load(&log, &mut coordinator);
                let mut inner = shard.lock();
                if !matches!(inner.state, ShardState::Loading) {
                    return; // unloaded meanwhile
                }
                match loaded {
                    Ok(()) => {
                        let now = now_ms();
                        let effects = coordinator.finish_loading(now);
                        inner.state = ShardState::Loaded(Box::new(coordinator));
                        info!(
                            partition,
                            coordinator_epoch,
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "loaded transactions of __transaction_state partition"
                        );
                        service.run(&shard, &mut inner, effects, now);
                    }
                    Err(e) => {
                        error!(partition, error = %e, "loading __transaction_state partition failed; its transactional ids are not served");
                        inner.state = ShardState::Gone;
                    }
                }
            };
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn_blocking(task);
                }
                Err(_) => task(),
            }
        }
    }

    /// Runs every loaded shard's timers, once per abort-check interval.
    pub fn tick_all(&self) {
        let now = now_ms();
        let last = self.last_tick_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < self.abort_interval_ms {
            return;
        }
        self.last_tick_ms.store(now, Ordering::Relaxed);
        let shards: Vec<Arc<Shard>> = self.shards().values().cloned().collect();
        for shard in shards {
            let mut inner = shard.lock();
            let effects = match inner.coordinator() {
                Ok(c) if c.next_deadline().is_some_and(|d| d <= now) => c.tick(now),
                _ => continue,
            };
            self.run(&shard, &mut inner, effects, now);
        }
    }

    /// Refreshes the transaction gauges and counters.
    pub fn update_metrics(&self, broker: &Broker) {
        let shards: Vec<Arc<Shard>> = self.shards().values().cloned().collect();
        let mut open = 0i64;
        let mut counted = self.counted.lock().unwrap_or_else(|p| p.into_inner());
        for shard in shards {
            let mut inner = shard.lock();
            let Ok(c) = inner.coordinator() else { continue };
            open += c.open_transactions() as i64;
            let (commits, aborts) = c.counters();
            let seen = counted.entry(shard.partition).or_default();
            broker
                .metrics
                .transactions_completed
                .with_label_values(&["commit"])
                .inc_by(commits.saturating_sub(seen.0));
            broker
                .metrics
                .transactions_completed
                .with_label_values(&["abort"])
                .inc_by(aborts.saturating_sub(seen.1));
            *seen = (commits, aborts);
        }
        broker.metrics.open_transactions.set(open);
    }
}

/// A parked request answered with another request's kind: a coordinator bug, logged.
fn unexpected<T>(response: Response) -> Result<T, ResponseError> {
    error!(
        ?response,
        "transaction coordinator answered a request with the wrong response kind"
    );
    Err(ResponseError::UnknownServerError)
}

/// Appends one record to the partition as its leader; returns the offset the high
/// watermark must reach for the record to be replicated.
fn append(
    partition: &Partition,
    key: Bytes,
    value: Option<Bytes>,
    now: i64,
) -> Result<Offset, ResponseError> {
    let batch = batch::encode_plain_batch([(Some(key), value)], now)
        .map_err(|_| ResponseError::UnknownServerError)?;
    match partition
        .replica
        .append_as_leader(&partition.log, &batch, 1, now)
    {
        Ok(appended) => Ok(appended.outcome.info().last_offset + 1),
        // Leadership moved: the transactional ids are coordinated elsewhere now.
        Err(LeaderAppendError::Refused(_)) => Err(ResponseError::NotCoordinator),
        Err(LeaderAppendError::Log(e)) => Err(ResponseError::try_from_code(log_error_code(&e))
            .unwrap_or(ResponseError::UnknownServerError)),
    }
}

/// Waits until the high watermark reaches `end`. The errors are Kafka's for a failed
/// transaction log write (`TransactionStateManager.appendTransactionToLog`): NOT_COORDINATOR
/// when leadership moved, COORDINATOR_NOT_AVAILABLE when the ISR did not follow in time.
async fn replicated(partition: &Partition, end: Offset) -> Result<(), ResponseError> {
    let deadline = tokio::time::Instant::now() + REPLICATION_TIMEOUT;
    match partition
        .replica
        .await_acks(&partition.log, end, deadline)
        .await
    {
        AckOutcome::Replicated => Ok(()),
        AckOutcome::NotLeader => Err(ResponseError::NotCoordinator),
        AckOutcome::NotEnoughReplicasAfterAppend | AckOutcome::TimedOut => {
            Err(ResponseError::CoordinatorNotAvailable)
        }
    }
}

/// Replays a partition's records, from its log start to its log end, into `coordinator`.
fn load(partition: &Partition, coordinator: &mut TxnCoordinator) -> Result<(), LoadError> {
    let log = partition.log.read().unwrap_or_else(|p| p.into_inner());
    let end = log.log_end_offset();
    let mut next = log.log_start_offset();
    while next < end {
        let Some(slice) = log.read(next, LOAD_READ_BYTES, Some(end))? else {
            break;
        };
        let mut bytes = Bytes::from(slice.read_to_vec()?);
        let batches = RecordBatchDecoder::decode_all(&mut bytes).map_err(|e| LoadError::Batch {
            offset: slice.first_offset,
            reason: e.to_string(),
        })?;
        for batch in batches {
            for record in batch.records {
                if record.control || record.offset < next.as_i64() {
                    continue;
                }
                let Some(key) = record.key.as_deref() else {
                    continue;
                };
                coordinator
                    .replay(key, record.value.as_deref())
                    .map_err(|source| LoadError::Record {
                        offset: record.offset,
                        source,
                    })?;
            }
        }
        next = slice.next_offset;
    }
    debug!(partition = %partition.tp, end = %end, "replayed __transaction_state partition");
    Ok(())
}

/// Creates `__transaction_state` if it does not exist: `transaction.state.log.num.partitions`
/// partitions, compacted, `min.insync.replicas` from `transaction.state.log.min.isr`, with
/// `transaction.state.log.replication.factor` replicas or as many as there are live brokers.
/// Returns whether this call created it.
pub async fn create_transaction_state_topic(
    broker: &Broker,
) -> Result<bool, weir_controller::ControllerError> {
    let settings = &broker.config.transactions;
    let brokers = broker
        .metadata()
        .brokers
        .values()
        .filter(|b| b.is_live())
        .count()
        .max(1);
    let wanted = settings.state_log_replication_factor;
    let replication = wanted.min(i16::try_from(brokers).unwrap_or(i16::MAX));
    if replication < wanted {
        warn!(
            transaction.state.log.replication.factor = wanted,
            brokers, "creating __transaction_state with fewer replicas than configured"
        );
    }
    let min_isr = settings
        .state_log_min_isr
        .min(i32::from(replication))
        .max(1);
    let configs = BTreeMap::from([
        ("cleanup.policy".to_owned(), "compact".to_owned()),
        ("compression.type".to_owned(), "uncompressed".to_owned()),
        ("min.insync.replicas".to_owned(), min_isr.to_string()),
        (
            "segment.bytes".to_owned(),
            settings.state_log_segment_bytes.to_string(),
        ),
    ]);
    let request = weir_controller::CreateTopic {
        name: TRANSACTION_STATE_TOPIC.to_owned(),
        num_partitions: Some(settings.state_log_num_partitions),
        replication_factor: Some(replication),
        assignments: None,
        configs,
    };
    let created = broker.create_topic_if_absent(request).await?.is_some();
    if created {
        info!(
            partitions = settings.state_log_num_partitions,
            replication, min_isr, "created __transaction_state"
        );
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactional_ids_hash_like_kafka() {
        // Java: "ab".hashCode() == 3105; Kafka's Utils.abs keeps it.
        assert_eq!(partition_for_transactional_id("ab", 50), 3105 % 50);
        assert_eq!(partition_for_transactional_id("ab", 7), 3105 % 7);
    }
}
