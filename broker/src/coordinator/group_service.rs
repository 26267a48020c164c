//! The group coordinator's I/O: one [`GroupCoordinator`] per `__consumer_offsets` partition
//! this broker leads, the records it persists, its timers and its loading.
//!
//! - **Shards.** Each led partition of `__consumer_offsets` is a shard holding the pure
//!   coordinator behind a mutex. A shard is *loading* (its records being replayed on a
//!   blocking thread: requests get COORDINATOR_LOAD_IN_PROGRESS) and then *loaded*. A
//!   partition this broker stops leading is unloaded: parked requests get NOT_COORDINATOR.
//! - **Requests.** A parked request (JoinGroup, SyncGroup, OffsetCommit, TxnOffsetCommit)
//!   registers a oneshot under a fresh [`RequestToken`] before the coordinator sees it, then
//!   waits outside the lock.
//! - **Effects** run under the shard's lock, in order: a response completes its oneshot; a
//!   persist appends one batch to the partition and reports the outcome back at once, so
//!   records reach the log in the order the coordinator emitted them and a commit is answered
//!   only once its records are in the log. (With one replica, appended is committed; with
//!   replication the outcome must wait for the high watermark.)
//! - **Transactions.** A TxnOffsetCommit's records are appended as the producer's
//!   transactional batch (producer id and epoch, no sequence); its offsets stay pending until
//!   the WriteTxnMarkers handler, having appended the COMMIT or ABORT marker to the partition,
//!   calls [`GroupService::complete_transaction`]. Loading replays markers the same way.
//! - **Time.** [`GroupService::tick_all`] runs every shard's due timers; the broker calls it
//!   from a ticker task every [`TICK_INTERVAL`].
//! - **The topic.** `__consumer_offsets` is created on first use (FindCoordinator for a group),
//!   compacted, with `offsets.topic.num.partitions` partitions.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::records::RecordBatchDecoder;
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use super::group::batch::encode_batch;
use super::group::{
    CommitTopic, Effect, GroupConfig, GroupCoordinator, GroupId, GroupState, JoinGroupParams,
    JoinGroupResult, Loader, OffsetCommitParams, OffsetCommitResult, OffsetsRecord, RequestToken,
    Response, SyncGroupParams, SyncGroupResult, TxnOffsetCommitParams, TxnProducer, partition_for,
};
use crate::broker::{Broker, Partition};
use crate::kafka_error::log_error_code;
use crate::log::now_ms;
use crate::replication::{AckOutcome, LeaderAppend, LeaderAppendError};
use crate::types::Offset;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// How often due timers (session timeouts, rebalance deadlines, offset expiry) are checked.
pub const TICK_INTERVAL: Duration = Duration::from_millis(50);

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
        source: super::group::RecordError,
    },
}

/// One `__consumer_offsets` partition this broker coordinates.
#[derive(Debug)]
struct Shard {
    partition: u32,
    inner: Mutex<ShardInner>,
}

#[derive(Debug)]
struct ShardInner {
    log: Arc<Partition>,
    state: ShardState,
    waiters: HashMap<RequestToken, oneshot::Sender<Response>>,
    /// Transaction markers (producer id, commit) reported while loading, applied once loaded:
    /// the load may have read the log before the marker was appended. One it did read
    /// finds nothing left to complete (no later commit of that producer can be in the log:
    /// TxnOffsetCommit is refused until loaded).
    markers_while_loading: Vec<(i64, bool)>,
}

#[derive(Debug)]
enum ShardState {
    Loading,
    Loaded(Box<GroupCoordinator>),
    /// Loading failed (a record that does not decode); the partition is not served.
    Failed,
}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, ShardInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ShardInner {
    fn coordinator(&mut self) -> Result<&mut GroupCoordinator, ResponseError> {
        match &mut self.state {
            ShardState::Loaded(c) => Ok(c),
            ShardState::Loading => Err(ResponseError::CoordinatorLoadInProgress),
            ShardState::Failed => Err(ResponseError::CoordinatorNotAvailable),
        }
    }

    /// Executes effects in order; a persist's outcome may add more.
    fn run(&mut self, effects: Vec<Effect>, now: i64) {
        let mut queue = VecDeque::from(effects);
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Respond { token, response } => {
                    if let Some(tx) = self.waiters.remove(&token) {
                        // The client may have gone; its answer is then dropped.
                        let _ = tx.send(response);
                    }
                }
                Effect::Persist {
                    id,
                    group,
                    records,
                    transaction,
                } => {
                    let result = append(&self.log, &records, transaction, now);
                    if let Err(error) = result {
                        warn!(
                            group = group.as_str(),
                            ?error,
                            "writing to __consumer_offsets failed"
                        );
                    }
                    if let ShardState::Loaded(c) = &mut self.state {
                        queue.extend(c.persisted(id, result, now));
                    }
                }
            }
        }
    }
}

/// How long an answer waits for the group's records to reach the ISR.
const REPLICATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits until everything appended to the partition so far is replicated to the ISR (its
/// high watermark reaches the log end), as Kafka writes group records with acks=all. The
/// errors are Kafka's for a failed group write: COORDINATOR_NOT_AVAILABLE when the ISR does
/// not follow in time (the client retries), NOT_COORDINATOR when leadership moved.
async fn replicated(partition: &Partition) -> Result<(), ResponseError> {
    let end = partition
        .log
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .log_end_offset();
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

/// Appends `records` to the partition as one batch, as its leader: `transaction`'s
/// transactional batch when given.
fn append(
    partition: &Partition,
    records: &[OffsetsRecord],
    transaction: Option<TxnProducer>,
    now: i64,
) -> Result<(), ResponseError> {
    let batch =
        encode_batch(records, transaction, now).map_err(|_| ResponseError::UnknownServerError)?;
    match append_coordinator_batch(partition, &batch, now) {
        Ok(_) => Ok(()),
        // Leadership moved: the group is coordinated elsewhere now.
        Err(LeaderAppendError::Refused(_)) => Err(ResponseError::NotCoordinator),
        Err(LeaderAppendError::Log(e)) => Err(ResponseError::try_from_code(log_error_code(&e))
            .unwrap_or(ResponseError::UnknownServerError)),
    }
}

/// The one place group records enter the log: as the coordinator (Kafka's
/// `AppendOrigin.COORDINATOR`), so a TxnOffsetCommit's transactional batch, which carries no
/// sequence, passes the producer epoch checks without sequence checks. As the leader with
/// acks=1: the high watermark moves as far as the ISR allows.
fn append_coordinator_batch(
    partition: &Partition,
    batch: &[u8],
    now: i64,
) -> Result<LeaderAppend, LeaderAppendError> {
    partition
        .replica
        .append_as_coordinator(&partition.log, batch, now)
}

/// Replays a partition's records, from its log start to its log end. This broker leads the
/// partition, so its whole log is what the followers converge to; the high watermark of a
/// new leader can lag behind records the previous leader had already committed.
fn load(
    partition: &Partition,
    config: GroupConfig,
    now: i64,
) -> Result<GroupCoordinator, LoadError> {
    let log = partition.log.read().unwrap_or_else(|p| p.into_inner());
    let end = log.log_end_offset();
    let mut next = log.log_start_offset();
    let mut loader = Loader::new();
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
                // Records below `next` belong to a batch the previous read already covered.
                if record.offset < next.as_i64() {
                    continue;
                }
                loader
                    .replay_record(&record)
                    .map_err(|source| LoadError::Record {
                        offset: record.offset,
                        source,
                    })?;
            }
        }
        next = slice.next_offset;
    }
    Ok(loader.finish(config, now))
}

/// Every shard's coordinator and the requests parked on them.
#[derive(Debug)]
pub struct GroupService {
    config: GroupConfig,
    shards: Mutex<BTreeMap<u32, Arc<Shard>>>,
    tokens: AtomicU64,
    /// Rebalances already added to the metrics counter, per shard.
    counted_rebalances: Mutex<HashMap<u32, u64>>,
}

impl GroupService {
    pub fn new(config: GroupConfig) -> GroupService {
        GroupService {
            config,
            shards: Mutex::new(BTreeMap::new()),
            tokens: AtomicU64::new(0),
            counted_rebalances: Mutex::new(HashMap::new()),
        }
    }

    fn shards(&self) -> MutexGuard<'_, BTreeMap<u32, Arc<Shard>>> {
        self.shards.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The shard of `group`, or the error a request for it gets here.
    fn shard_for(&self, broker: &Broker, group: &GroupId) -> Result<Arc<Shard>, ResponseError> {
        if group.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let metadata = broker.metadata();
        let Some(topic) = metadata.topic(OFFSETS_TOPIC) else {
            return Err(ResponseError::CoordinatorNotAvailable);
        };
        let partition = partition_for(group, topic.partitions.len() as u32);
        self.shards()
            .get(&partition)
            .cloned()
            .ok_or(ResponseError::NotCoordinator)
    }

    /// Hands a request to the coordinator of `group` and waits for its parked answer.
    async fn call(
        &self,
        broker: &Broker,
        group: &GroupId,
        f: impl FnOnce(&mut GroupCoordinator, RequestToken, i64) -> Vec<Effect>,
    ) -> Result<Response, ResponseError> {
        let shard = self.shard_for(broker, group)?;
        let token = RequestToken(self.tokens.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        let partition = {
            let mut inner = shard.lock();
            let now = now_ms();
            let effects = f(inner.coordinator()?, token, now);
            inner.waiters.insert(token, tx);
            inner.run(effects, now);
            Arc::clone(&inner.log)
        };
        // A dropped sender means the shard was unloaded (its waiters dropped).
        let response = rx.await.map_err(|_| ResponseError::NotCoordinator)?;
        replicated(&partition).await?;
        Ok(response)
    }

    /// Runs `f` on the coordinator of `group` (requests answered at once).
    fn with_coordinator<T>(
        &self,
        broker: &Broker,
        group: &GroupId,
        f: impl FnOnce(&mut GroupCoordinator, i64) -> (T, Vec<Effect>),
    ) -> Result<T, ResponseError> {
        let shard = self.shard_for(broker, group)?;
        let mut inner = shard.lock();
        let now = now_ms();
        let (value, effects) = f(inner.coordinator()?, now);
        inner.run(effects, now);
        Ok(value)
    }

    pub async fn join_group(&self, broker: &Broker, p: JoinGroupParams) -> JoinGroupResult {
        let member = p.member_id.clone();
        let group = p.group_id.clone();
        match self
            .call(broker, &group, |c, token, now| c.join_group(token, p, now))
            .await
        {
            Ok(Response::JoinGroup(result)) => result,
            Ok(other) => unexpected(
                other,
                JoinGroupResult::error(member, ResponseError::UnknownServerError),
            ),
            Err(error) => JoinGroupResult::error(member, error),
        }
    }

    pub async fn sync_group(&self, broker: &Broker, p: SyncGroupParams) -> SyncGroupResult {
        let group = p.group_id.clone();
        match self
            .call(broker, &group, |c, token, now| c.sync_group(token, p, now))
            .await
        {
            Ok(Response::SyncGroup(result)) => result,
            Ok(other) => unexpected(
                other,
                SyncGroupResult::error(ResponseError::UnknownServerError),
            ),
            Err(error) => SyncGroupResult::error(error),
        }
    }

    /// OffsetCommit. Partitions of topics that do not exist are refused per partition with
    /// UNKNOWN_TOPIC_OR_PARTITION before the coordinator sees the request, as Kafka does.
    pub async fn commit_offsets(
        &self,
        broker: &Broker,
        mut p: OffsetCommitParams,
    ) -> OffsetCommitResult {
        let unknown = take_unknown_partitions(broker, &mut p.topics);
        let (group, topics) = (p.group_id.clone(), p.topics.clone());
        self.commit(broker, &group, topics, unknown, |c, token, now| {
            c.commit_offsets(token, p, now)
        })
        .await
    }

    /// TxnOffsetCommit: answered once the producer's transactional batch is in the log (and
    /// replicated); the offsets become visible when [`GroupService::complete_transaction`]
    /// reports the transaction's COMMIT marker. Unknown partitions are refused per partition
    /// with UNKNOWN_TOPIC_OR_PARTITION, as Kafka does.
    pub async fn commit_transactional_offsets(
        &self,
        broker: &Broker,
        mut p: TxnOffsetCommitParams,
    ) -> OffsetCommitResult {
        let unknown = take_unknown_partitions(broker, &mut p.topics);
        let (group, topics) = (p.group_id.clone(), p.topics.clone());
        self.commit(broker, &group, topics, unknown, |c, token, now| {
            c.commit_transactional_offsets(token, p, now)
        })
        .await
    }

    /// A commit of `topics` (known partitions) by `f`, with `unknown` answered
    /// UNKNOWN_TOPIC_OR_PARTITION.
    async fn commit(
        &self,
        broker: &Broker,
        group: &GroupId,
        topics: Vec<CommitTopic>,
        unknown: Vec<CommitTopic>,
        f: impl FnOnce(&mut GroupCoordinator, RequestToken, i64) -> Vec<Effect>,
    ) -> OffsetCommitResult {
        let mut result = if topics.is_empty() {
            OffsetCommitResult { topics: Vec::new() }
        } else {
            match self.call(broker, group, f).await {
                Ok(Response::OffsetCommit(result) | Response::TxnOffsetCommit(result)) => result,
                Ok(other) => unexpected(
                    other,
                    OffsetCommitResult::all(&topics, Some(ResponseError::UnknownServerError)),
                ),
                Err(error) => OffsetCommitResult::all(&topics, Some(error)),
            }
        };
        if !unknown.is_empty() {
            let refused =
                OffsetCommitResult::all(&unknown, Some(ResponseError::UnknownTopicOrPartition));
            result.topics.extend(refused.topics);
        }
        result
    }

    /// A COMMIT (`commit`) or ABORT marker of `producer_id` has been appended to
    /// `__consumer_offsets` partition `offsets_partition`, which this broker leads: the
    /// transactional offset commits of that producer in the partition's groups become visible
    /// or are dropped (Kafka's `GroupCoordinator.scheduleHandleTxnCompletion`). Nothing is
    /// written. While the partition loads, the marker is applied once loaded; a partition not
    /// coordinated here is left alone (whoever loads it replays the marker from the log).
    pub fn complete_transaction(&self, offsets_partition: u32, producer_id: i64, commit: bool) {
        let Some(shard) = self.shards().get(&offsets_partition).cloned() else {
            debug!(
                partition = offsets_partition,
                producer_id,
                "transaction marker for a __consumer_offsets partition not coordinated here"
            );
            return;
        };
        let mut inner = shard.lock();
        let now = now_ms();
        let effects = match &mut inner.state {
            ShardState::Loaded(c) => c.complete_transaction(producer_id, commit, now),
            ShardState::Loading => {
                inner.markers_while_loading.push((producer_id, commit));
                return;
            }
            ShardState::Failed => return,
        };
        inner.run(effects, now);
    }

    pub fn heartbeat(
        &self,
        broker: &Broker,
        p: &super::group::HeartbeatParams,
    ) -> Option<ResponseError> {
        self.with_coordinator(broker, &p.group_id, |c, now| {
            (c.heartbeat(p, now), Vec::new())
        })
        .unwrap_or_else(Some)
    }

    pub fn leave_group(
        &self,
        broker: &Broker,
        p: &super::group::LeaveGroupParams,
    ) -> super::group::LeaveGroupResult {
        self.with_coordinator(broker, &p.group_id, |c, now| {
            let outcome = c.leave_group(p, now);
            (outcome.response, outcome.effects)
        })
        .unwrap_or_else(|error| super::group::LeaveGroupResult {
            error: Some(error),
            members: Vec::new(),
        })
    }

    /// OffsetFetch of one group; `require_stable` (v7+) answers UNSTABLE_OFFSET_COMMIT for
    /// partitions with a pending commit.
    pub fn fetch_offsets(
        &self,
        broker: &Broker,
        group: &GroupId,
        topics: Option<&[super::group::TopicPartitions]>,
        require_stable: bool,
    ) -> Result<Vec<super::group::FetchedTopic>, ResponseError> {
        self.with_coordinator(broker, group, |c, _| {
            (c.fetch_offsets(group, topics, require_stable), Vec::new())
        })
    }

    pub fn delete_offsets(
        &self,
        broker: &Broker,
        group: &GroupId,
        topics: &[super::group::TopicPartitions],
    ) -> Result<super::group::OffsetDeleteResult, ResponseError> {
        self.with_coordinator(broker, group, |c, now| {
            let outcome = c.delete_offsets(group, topics, now);
            (outcome.response, outcome.effects)
        })
    }

    pub fn describe_group(
        &self,
        broker: &Broker,
        group: &GroupId,
    ) -> Result<Option<super::group::GroupDescription>, ResponseError> {
        self.with_coordinator(broker, group, |c, _| (c.describe_group(group), Vec::new()))
    }

    /// DeleteGroups of one group.
    pub fn delete_group(&self, broker: &Broker, group: &GroupId) -> Option<ResponseError> {
        self.with_coordinator(broker, group, |c, now| {
            let outcome = c.delete_groups(std::slice::from_ref(group), now);
            let error = outcome.response.into_iter().next().and_then(|(_, e)| e);
            (error, outcome.effects)
        })
        .unwrap_or_else(Some)
    }

    /// ListGroups over every shard. The error is COORDINATOR_LOAD_IN_PROGRESS while a shard
    /// loads (Kafka answers the same, with the groups it has).
    pub fn list_groups(
        &self,
        states: &[String],
        types: &[String],
    ) -> (Option<ResponseError>, Vec<super::group::ListedGroup>) {
        let shards: Vec<Arc<Shard>> = self.shards().values().cloned().collect();
        let mut error = None;
        let mut groups = Vec::new();
        for shard in shards {
            let mut inner = shard.lock();
            match inner.coordinator() {
                Ok(c) => groups.extend(c.list_groups(states, types)),
                Err(e) => error = Some(e),
            }
        }
        (error, groups)
    }

    /// Whether the coordinator of `group` is here, for FindCoordinator: `Ok` while loading too
    /// (requests then get COORDINATOR_LOAD_IN_PROGRESS and retry in place).
    pub fn coordinates(&self, broker: &Broker, group: &GroupId) -> Result<(), ResponseError> {
        self.shard_for(broker, group).map(|_| ())
    }

    /// Starts or stops coordinating the `__consumer_offsets` partitions this broker leads.
    /// Call after every change of the partitions served.
    pub fn sync(self: &Arc<Self>, led: Vec<Arc<Partition>>) {
        let led: HashMap<u32, Arc<Partition>> = led
            .into_iter()
            .filter(|p| p.tp.topic == OFFSETS_TOPIC && p.tp.partition >= 0)
            .map(|p| (p.tp.partition as u32, p))
            .collect();
        let mut shards = self.shards();
        let gone: Vec<u32> = shards
            .keys()
            .copied()
            .filter(|p| !led.contains_key(p))
            .collect();
        for partition in gone {
            if let Some(shard) = shards.remove(&partition) {
                let mut inner = shard.lock();
                let state = std::mem::replace(&mut inner.state, ShardState::Failed);
                if let ShardState::Loaded(c) = state {
                    let effects = c.unload(now_ms());
                    inner.run(effects, now_ms());
                }
                inner.waiters.clear();
                info!(
                    partition,
                    "stopped coordinating groups of __consumer_offsets partition"
                );
            }
        }
        for (partition, log) in led {
            if let Some(shard) = shards.get(&partition) {
                // Same log; the leader epoch may have moved.
                shard.lock().log = log;
                continue;
            }
            let shard = Arc::new(Shard {
                partition,
                inner: Mutex::new(ShardInner {
                    log: log.clone(),
                    state: ShardState::Loading,
                    waiters: HashMap::new(),
                    markers_while_loading: Vec::new(),
                }),
            });
            shards.insert(partition, shard.clone());
            let config = self.config.clone();
            let task = move || {
                let started = std::time::Instant::now();
                let loaded = load(&log, config, now_ms());
                let mut inner = shard.lock();
                let markers = std::mem::take(&mut inner.markers_while_loading);
                inner.state = match loaded {
                    Ok(mut c) => {
                        debug!(
                            partition = shard.partition,
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "loaded groups of __consumer_offsets partition"
                        );
                        let now = now_ms();
                        for (producer_id, commit) in markers {
                            let effects = c.complete_transaction(producer_id, commit, now);
                            debug_assert!(effects.is_empty(), "completing writes nothing");
                        }
                        ShardState::Loaded(Box::new(c))
                    }
                    Err(e) => {
                        error!(partition = shard.partition, error = %e, "loading __consumer_offsets partition failed; its groups are not served");
                        ShardState::Failed
                    }
                };
            };
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn_blocking(task);
                }
                Err(_) => task(),
            }
        }
    }

    /// Removes every group's committed offsets of a deleted topic.
    pub fn topic_deleted(&self, topic: &str) {
        let shards: Vec<Arc<Shard>> = self.shards().values().cloned().collect();
        let now = now_ms();
        for shard in shards {
            let mut inner = shard.lock();
            let Ok(c) = inner.coordinator() else { continue };
            let effects = c.delete_topic_offsets(topic, now);
            inner.run(effects, now);
        }
    }

    /// Fires every loaded shard's due timers.
    pub fn tick_all(&self) {
        let shards: Vec<Arc<Shard>> = self.shards().values().cloned().collect();
        let now = now_ms();
        for shard in shards {
            let mut inner = shard.lock();
            let effects = match inner.coordinator() {
                Ok(c) if c.next_deadline() <= now => c.tick(now),
                _ => continue,
            };
            inner.run(effects, now);
        }
    }

    /// Refreshes the group gauges: groups per state, rebalances, and each committed
    /// partition's lag behind the high watermark.
    pub fn update_metrics(&self, broker: &Broker) {
        let shards: Vec<Arc<Shard>> = self.shards().values().cloned().collect();
        let mut states: BTreeMap<&'static str, i64> = [
            GroupState::Empty,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Stable,
        ]
        .into_iter()
        .map(|s| (state_label(s), 0))
        .collect();
        let mut lags = Vec::new();
        let mut counted = self
            .counted_rebalances
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for shard in shards {
            let mut inner = shard.lock();
            let Ok(c) = inner.coordinator() else { continue };
            for (state, n) in c.group_counts() {
                *states.entry(state_label(state)).or_default() += n as i64;
            }
            let total = c.started_rebalances();
            let seen = counted.entry(shard.partition).or_default();
            broker
                .metrics
                .group_rebalances
                .inc_by(total.saturating_sub(*seen));
            *seen = total;
            for (group, tp, committed) in c.committed_offsets() {
                lags.push((group.as_str().to_owned(), tp.clone(), committed.offset));
            }
        }
        for (state, n) in states {
            broker.metrics.groups.with_label_values(&[state]).set(n);
        }
        broker.metrics.group_lag.reset();
        for (group, tp, committed) in lags {
            let Some(partition) = broker.partition(&tp.topic, tp.partition) else {
                continue;
            };
            let hw = partition
                .log
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .high_watermark()
                .as_i64();
            broker
                .metrics
                .group_lag
                .with_label_values(&[&group, &tp.topic, &tp.partition.to_string()])
                .set((hw - committed).max(0));
        }
    }
}

/// Removes the partitions of `topics` that do not exist (unknown topic, or partition index out
/// of range) and returns them, for UNKNOWN_TOPIC_OR_PARTITION; topics left without partitions
/// are dropped.
fn take_unknown_partitions(
    broker: &Broker,
    topics: &mut Vec<super::group::CommitTopic>,
) -> Vec<super::group::CommitTopic> {
    let metadata = broker.metadata();
    let mut unknown = Vec::new();
    for topic in topics.iter_mut() {
        let partitions = metadata
            .topic(&topic.name)
            .map_or(0, |t| t.partitions.len() as i32);
        let (known, missing): (Vec<_>, Vec<_>) = topic
            .partitions
            .drain(..)
            .partition(|part| (0..partitions).contains(&part.partition));
        topic.partitions = known;
        if !missing.is_empty() {
            unknown.push(super::group::CommitTopic {
                name: topic.name.clone(),
                partitions: missing,
            });
        }
    }
    topics.retain(|t| !t.partitions.is_empty());
    unknown
}

fn state_label(state: GroupState) -> &'static str {
    state.name()
}

/// A parked request answered with another request's kind: a coordinator bug, logged.
fn unexpected<T>(response: Response, fallback: T) -> T {
    error!(
        ?response,
        "group coordinator answered a request with the wrong response kind"
    );
    fallback
}

/// Creates `__consumer_offsets` if it does not exist: `offsets.topic.num.partitions`
/// partitions, compacted, with `offsets.topic.replication.factor` replicas or as many as
/// there are live brokers. Returns whether this call created it.
pub async fn create_offsets_topic(
    broker: &Broker,
) -> Result<bool, weir_controller::ControllerError> {
    if broker.metadata().topic(OFFSETS_TOPIC).is_some() {
        return Ok(false);
    }
    let brokers = broker
        .metadata()
        .brokers
        .values()
        .filter(|b| b.is_live())
        .count()
        .max(1);
    let wanted = broker.config.offsets_topic_replication_factor;
    let replication = wanted.min(i16::try_from(brokers).unwrap_or(i16::MAX));
    if replication < wanted {
        warn!(
            offsets.topic.replication.factor = wanted,
            brokers, "creating __consumer_offsets with fewer replicas than configured"
        );
    }
    let configs = BTreeMap::from([
        ("cleanup.policy".to_owned(), "compact".to_owned()),
        ("compression.type".to_owned(), "producer".to_owned()),
        (
            "segment.bytes".to_owned(),
            broker.config.offsets_topic_segment_bytes.to_string(),
        ),
    ]);
    let request = weir_controller::CreateTopic {
        name: OFFSETS_TOPIC.to_owned(),
        num_partitions: Some(broker.config.offsets_topic_num_partitions),
        replication_factor: Some(replication),
        assignments: None,
        configs,
    };
    let created = broker.create_topic_if_absent(request).await?.is_some();
    if created {
        info!(
            partitions = broker.config.offsets_topic_num_partitions,
            replication, "created __consumer_offsets"
        );
    }
    Ok(created)
}
