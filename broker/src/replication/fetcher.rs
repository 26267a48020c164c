//! The follower's fetcher (Kafka's `ReplicaFetcherThread`): one task per leader broker,
//! fetching every partition this broker follows from that leader in one Fetch request.
//!
//! Each partition goes through:
//! - **truncating** — on a new leader epoch (and when added): OffsetsForLeaderEpoch for the
//!   latest epoch of the local log, then truncation as `truncation::truncation_for` decides,
//!   repeated until the leader and follower agree on an epoch (KIP-101/279);
//! - **fetching** — Fetch with the replica id, the current leader epoch and the log end as the
//!   fetch offset; batches are appended as the leader wrote them, the follower's high
//!   watermark is the leader's (up to its own log end);
//! - **fenced** — the leader says our epoch is old: nothing more until the metadata brings a
//!   newer one (the assignment then changes and the partition truncates again).
//!
//! Other partition errors delay that partition by `replica.fetch.backoff.ms`; a connection
//! error drops the connection and backs off. OFFSET_OUT_OF_RANGE asks the leader for its log
//! end and start (ListOffsets as a replica) and truncates or restarts the log as
//! `truncation::out_of_range` decides. The assignment (which partitions, in which epoch, from
//! which endpoint) arrives through a watch channel from the `ReplicaManager`; the task ends
//! when the channel closes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId as WireBrokerId, FetchRequest, FetchResponse, ListOffsetsRequest,
    OffsetForLeaderEpochRequest, TopicName as WireTopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};
use weir_controller::{BrokerId, TopicId};

use super::ReplicationConfig;
use super::client::{ClientError, LeaderConnection};
use super::partition::FollowerLogError;
use super::truncation::{EpochEndOffset, OutOfRange, out_of_range, truncation_for};
use crate::broker::Partition;
use crate::log::now_ms;
use crate::metrics::Metrics;
use crate::types::{Offset, TopicPartition};

/// The Fetch versions this fetcher speaks (the broker serves 4-16).
const FETCH_VERSIONS: (i16, i16) = (4, 16);
const OFFSET_FOR_LEADER_EPOCH_VERSIONS: (i16, i16) = (2, 4);
const LIST_OFFSETS_VERSIONS: (i16, i16) = (1, 8);
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

/// A partition to fetch from the leader in `leader_epoch`.
#[derive(Clone, Debug)]
pub(crate) struct FetchTarget {
    pub(crate) partition: Weak<Partition>,
    pub(crate) leader_epoch: i32,
}

/// Everything one fetcher fetches, and from where.
#[derive(Clone, Debug, Default)]
pub(crate) struct Assignment {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) partitions: BTreeMap<TopicPartition, FetchTarget>,
}

/// What a fetcher task needs besides its assignment.
#[derive(Debug)]
pub(crate) struct FetcherContext {
    pub(crate) me: BrokerId,
    pub(crate) leader: BrokerId,
    pub(crate) config: ReplicationConfig,
    /// This broker's epoch, sent in Fetch v15+ (-1 until registered).
    pub(crate) broker_epoch: Arc<AtomicI64>,
    pub(crate) metrics: Metrics,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Truncating,
    Fetching,
    Fenced,
}

#[derive(Debug)]
struct Followed {
    target: FetchTarget,
    phase: Phase,
    delayed_until: Option<Instant>,
}

impl Followed {
    fn ready(&self, phase: Phase, now: Instant) -> bool {
        self.phase == phase && self.delayed_until.is_none_or(|t| t <= now)
    }
}

/// What one step of the loop did.
enum Step {
    Worked,
    /// Nothing to do until this time (or an assignment change).
    Idle(Option<Instant>),
    /// The connection failed; back off.
    Failed,
}

struct Fetcher {
    ctx: FetcherContext,
    host: String,
    port: u16,
    partitions: BTreeMap<TopicPartition, Followed>,
    connection: Option<LeaderConnection>,
    /// Whether the last connection attempt failed (repeats are logged at debug).
    failing: bool,
}

/// Runs a fetcher until its assignment channel closes.
pub(crate) async fn run(ctx: FetcherContext, mut assignment: watch::Receiver<Assignment>) {
    let backoff = Duration::from_millis(ctx.config.fetch_backoff_ms);
    let mut fetcher = Fetcher {
        ctx,
        host: String::new(),
        port: 0,
        partitions: BTreeMap::new(),
        connection: None,
        failing: false,
    };
    fetcher.reassign(&assignment.borrow_and_update());
    loop {
        let wake = match fetcher.step().await {
            Step::Worked => None,
            Step::Idle(until) => Some(until),
            Step::Failed => Some(Some(Instant::now() + backoff)),
        };
        if let Some(until) = wake {
            let sleep = async {
                match until {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = assignment.changed() => if changed.is_err() { break },
                () = sleep => {}
            }
        }
        match assignment.has_changed() {
            Err(_) => break,
            Ok(true) => fetcher.reassign(&assignment.borrow_and_update()),
            Ok(false) => {}
        }
    }
    let tps: Vec<TopicPartition> = fetcher.partitions.keys().cloned().collect();
    for tp in tps {
        fetcher.forget(&tp);
    }
    debug!(leader = %fetcher.ctx.leader, "replica fetcher stopped");
}

impl Fetcher {
    fn reassign(&mut self, assignment: &Assignment) {
        if (self.host.as_str(), self.port) != (assignment.host.as_str(), assignment.port) {
            self.host.clone_from(&assignment.host);
            self.port = assignment.port;
            self.connection = None;
        }
        let gone: Vec<TopicPartition> = self
            .partitions
            .keys()
            .filter(|tp| !assignment.partitions.contains_key(*tp))
            .cloned()
            .collect();
        for tp in gone {
            self.forget(&tp);
        }
        for (tp, target) in &assignment.partitions {
            let same = self.partitions.get(tp).is_some_and(|f| {
                f.target.leader_epoch == target.leader_epoch
                    && Weak::ptr_eq(&f.target.partition, &target.partition)
            });
            if !same {
                info!(partition = %tp, leader = %self.ctx.leader, epoch = target.leader_epoch, "following partition; truncating by leader epoch first");
                self.partitions.insert(
                    tp.clone(),
                    Followed {
                        target: target.clone(),
                        phase: Phase::Truncating,
                        delayed_until: None,
                    },
                );
            }
        }
    }

    fn forget(&mut self, tp: &TopicPartition) {
        self.partitions.remove(tp);
        let _ = self
            .ctx
            .metrics
            .replication_lag
            .remove_label_values(&[&tp.topic, &tp.partition.to_string()]);
    }

    fn delay(&mut self, tp: &TopicPartition) {
        let until = Instant::now() + Duration::from_millis(self.ctx.config.fetch_backoff_ms);
        if let Some(f) = self.partitions.get_mut(tp) {
            f.delayed_until = Some(until);
        }
    }

    fn set_phase(&mut self, tp: &TopicPartition, phase: Phase) {
        if let Some(f) = self.partitions.get_mut(tp) {
            f.phase = phase;
            f.delayed_until = None;
        }
    }

    /// The partition behind `tp`, dropped from the fetcher when it is gone.
    fn partition(&mut self, tp: &TopicPartition) -> Option<(Arc<Partition>, i32)> {
        let f = self.partitions.get(tp)?;
        let epoch = f.target.leader_epoch;
        match f.target.partition.upgrade() {
            Some(p) => Some((p, epoch)),
            None => {
                self.forget(tp);
                None
            }
        }
    }

    fn ready(&self, phase: Phase) -> Vec<TopicPartition> {
        let now = Instant::now();
        self.partitions
            .iter()
            .filter(|(_, f)| f.ready(phase, now))
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    async fn step(&mut self) -> Step {
        if self.partitions.is_empty() {
            return Step::Idle(None);
        }
        let truncating = self.ready(Phase::Truncating);
        let fetching = self.ready(Phase::Fetching);
        if truncating.is_empty() && fetching.is_empty() {
            let next = self
                .partitions
                .values()
                .filter_map(|f| f.delayed_until)
                .min();
            return Step::Idle(next);
        }
        let mut connection = match self.connection.take() {
            Some(c) => c,
            None => match self.connect().await {
                Some(c) => c,
                None => return Step::Failed,
            },
        };
        let result = if truncating.is_empty() {
            self.fetch_round(&mut connection, fetching).await
        } else {
            self.truncate_round(&mut connection, truncating).await
        };
        match result {
            Ok(()) => {
                self.connection = Some(connection);
                Step::Worked
            }
            Err(e) => {
                warn!(leader = %self.ctx.leader, error = %e, "fetching from the leader failed; reconnecting after replica.fetch.backoff.ms");
                Step::Failed
            }
        }
    }

    async fn connect(&mut self) -> Option<LeaderConnection> {
        let client_id = format!("weir-replica-{}-from-{}", self.ctx.me, self.ctx.leader);
        let timeout = Duration::from_millis(self.ctx.config.socket_timeout_ms);
        match LeaderConnection::connect(&self.host, self.port, client_id, timeout).await {
            Ok(c) => {
                if std::mem::take(&mut self.failing) {
                    info!(leader = %self.ctx.leader, addr = c.addr(), "connected to the leader again");
                }
                Some(c)
            }
            Err(e) => {
                if std::mem::replace(&mut self.failing, true) {
                    debug!(leader = %self.ctx.leader, error = %e, "still cannot connect to the leader");
                } else {
                    warn!(leader = %self.ctx.leader, error = %e, "cannot connect to the leader; retrying every replica.fetch.backoff.ms");
                }
                None
            }
        }
    }

    /// One OffsetsForLeaderEpoch round for partitions that must truncate before fetching.
    async fn truncate_round(
        &mut self,
        connection: &mut LeaderConnection,
        ready: Vec<TopicPartition>,
    ) -> Result<(), ClientError> {
        let mut topics: BTreeMap<String, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
        let mut asked = BTreeSet::new();
        for tp in ready {
            let Some((partition, epoch)) = self.partition(&tp) else {
                continue;
            };
            let (latest, hw) = {
                let log = partition.log.read().unwrap_or_else(|p| p.into_inner());
                (log.leader_epochs().latest(), log.high_watermark())
            };
            let Some(latest) = latest else {
                // No epochs in the local log (empty, or written before epochs existed): Kafka
                // truncates such a replica to its high watermark.
                self.truncated(&tp, &partition, epoch, hw, true);
                continue;
            };
            topics.entry(tp.topic.clone()).or_default().push(
                OffsetForLeaderPartition::default()
                    .with_partition(tp.partition)
                    .with_current_leader_epoch(epoch)
                    .with_leader_epoch(latest.epoch.0),
            );
            asked.insert(tp);
        }
        if asked.is_empty() {
            return Ok(());
        }
        let (min, max) = OFFSET_FOR_LEADER_EPOCH_VERSIONS;
        let version = connection.version(ApiKey::OffsetForLeaderEpoch, min, max)?;
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(WireBrokerId(self.ctx.me.0))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        OffsetForLeaderTopic::default()
                            .with_topic(WireTopicName(StrBytes::from_string(name)))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let response = connection.send(version, &request).await?;
        for topic in response.topics {
            for p in topic.partitions {
                let tp = TopicPartition::new(topic.topic.0.to_string(), p.partition);
                if !asked.remove(&tp) {
                    continue;
                }
                if p.error_code != 0 {
                    self.partition_error(&tp, p.error_code, "OffsetsForLeaderEpoch");
                    continue;
                }
                let Some((partition, epoch)) = self.partition(&tp) else {
                    continue;
                };
                let answer = EpochEndOffset {
                    leader_epoch: p.leader_epoch,
                    end_offset: p.end_offset,
                };
                let truncation = {
                    let log = partition.log.read().unwrap_or_else(|p| p.into_inner());
                    truncation_for(
                        answer,
                        |e| log.end_offset_for_epoch(e),
                        log.log_end_offset(),
                        log.high_watermark(),
                    )
                };
                debug!(partition = %tp, ?answer, ?truncation, "leader answered OffsetsForLeaderEpoch");
                self.truncated(
                    &tp,
                    &partition,
                    epoch,
                    truncation.offset,
                    truncation.completed,
                );
            }
        }
        for tp in asked {
            debug!(partition = %tp, "leader left the partition out of its OffsetsForLeaderEpoch answer");
            self.delay(&tp);
        }
        Ok(())
    }

    /// Truncates to `offset`; fetching starts once `completed`.
    fn truncated(
        &mut self,
        tp: &TopicPartition,
        partition: &Partition,
        epoch: i32,
        offset: Offset,
        completed: bool,
    ) {
        match partition
            .replica
            .truncate_as_follower(&partition.log, epoch, offset, now_ms())
        {
            Ok(_) if completed => self.set_phase(tp, Phase::Fetching),
            Ok(_) => {}
            Err(e) => self.follower_log_error(tp, &e),
        }
    }

    fn follower_log_error(&mut self, tp: &TopicPartition, e: &FollowerLogError) {
        match e {
            // The metadata moved on; the next assignment drops or re-adds the partition.
            FollowerLogError::NotFollower { .. } => {
                debug!(partition = %tp, error = %e, "partition no longer followed in this epoch");
                self.set_phase(tp, Phase::Fenced);
            }
            FollowerLogError::Log(_) => {
                error!(partition = %tp, error = %e, "writing the follower's log failed");
                self.delay(tp);
            }
        }
    }

    /// A partition-level error from the leader: FENCED_LEADER_EPOCH waits for newer metadata,
    /// anything else (NOT_LEADER_OR_FOLLOWER, UNKNOWN_LEADER_EPOCH, ...) is retried after the
    /// backoff.
    fn partition_error(&mut self, tp: &TopicPartition, code: i16, api: &'static str) {
        if code == ResponseError::FencedLeaderEpoch.code() {
            info!(partition = %tp, api, "the leader has a newer leader epoch; waiting for the metadata to catch up");
            self.set_phase(tp, Phase::Fenced);
        } else {
            debug!(partition = %tp, api, code, "leader refused the partition; retrying after replica.fetch.backoff.ms");
            self.delay(tp);
        }
    }

    /// One Fetch for every partition ready to fetch.
    async fn fetch_round(
        &mut self,
        connection: &mut LeaderConnection,
        ready: Vec<TopicPartition>,
    ) -> Result<(), ClientError> {
        let (min, max) = FETCH_VERSIONS;
        let mut version = connection.version(ApiKey::Fetch, min, max)?;
        let mut sent: BTreeMap<TopicPartition, (TopicId, i32)> = BTreeMap::new();
        let mut topics: BTreeMap<String, (TopicId, Vec<FetchPartition>)> = BTreeMap::new();
        for tp in ready {
            let Some((partition, epoch)) = self.partition(&tp) else {
                continue;
            };
            let (log_end, log_start) = {
                let log = partition.log.read().unwrap_or_else(|p| p.into_inner());
                (log.log_end_offset(), log.log_start_offset())
            };
            let topic_id = partition.replica.topic_id();
            if topic_id.0.is_nil() {
                // Topics without an id can only be named (Fetch v12 and below).
                version = version.min(12);
            }
            topics
                .entry(tp.topic.clone())
                .or_insert_with(|| (topic_id, Vec::new()))
                .1
                .push(
                    FetchPartition::default()
                        .with_partition(tp.partition)
                        .with_current_leader_epoch(epoch)
                        .with_fetch_offset(log_end.as_i64())
                        .with_log_start_offset(log_start.as_i64())
                        .with_partition_max_bytes(self.ctx.config.fetch_max_bytes),
                );
            sent.insert(tp, (topic_id, epoch));
        }
        if sent.is_empty() {
            return Ok(());
        }
        let request = self.fetch_request(version, topics);
        let response = connection.send(version, &request).await?;
        let out_of_range = self.apply_fetch_response(version, response, &mut sent);
        for tp in sent.into_keys() {
            // Left out of the response (the leader's size limits): fetched again next round.
            debug!(partition = %tp, "no data for partition in this fetch response");
        }
        if !out_of_range.is_empty() {
            self.handle_out_of_range(connection, out_of_range).await?;
        }
        Ok(())
    }

    fn fetch_request(
        &self,
        version: i16,
        topics: BTreeMap<String, (TopicId, Vec<FetchPartition>)>,
    ) -> FetchRequest {
        let me = WireBrokerId(self.ctx.me.0);
        let config = &self.ctx.config;
        let mut request = FetchRequest::default()
            .with_max_wait_ms(config.fetch_wait_max_ms)
            .with_min_bytes(config.fetch_min_bytes)
            .with_max_bytes(config.fetch_response_max_bytes)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, (id, partitions))| {
                        FetchTopic::default()
                            .with_topic(WireTopicName(StrBytes::from_string(name)))
                            .with_topic_id(id.0)
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        if version >= 15 {
            request.replica_state = ReplicaState::default()
                .with_replica_id(me)
                .with_replica_epoch(self.ctx.broker_epoch.load(Ordering::Relaxed));
        } else {
            request.replica_id = me;
        }
        request
    }

    /// Applies each partition of a fetch response; returns the partitions out of range.
    fn apply_fetch_response(
        &mut self,
        version: i16,
        response: FetchResponse,
        sent: &mut BTreeMap<TopicPartition, (TopicId, i32)>,
    ) -> Vec<TopicPartition> {
        let mut out_of_range = Vec::new();
        if response.error_code != 0 {
            warn!(leader = %self.ctx.leader, code = response.error_code, "leader refused the whole fetch");
            for tp in std::mem::take(sent).into_keys() {
                self.delay(&tp);
            }
            return out_of_range;
        }
        for topic in response.responses {
            let name = if version >= 13 {
                sent.iter()
                    .find(|(_, (id, _))| id.0 == topic.topic_id)
                    .map(|(tp, _)| tp.topic.clone())
            } else {
                Some(topic.topic.0.to_string())
            };
            let Some(name) = name else {
                continue;
            };
            for p in topic.partitions {
                let tp = TopicPartition::new(name.clone(), p.partition_index);
                let Some((_, epoch)) = sent.remove(&tp) else {
                    continue;
                };
                let current = self
                    .partitions
                    .get(&tp)
                    .is_some_and(|f| f.phase == Phase::Fetching && f.target.leader_epoch == epoch);
                if !current {
                    continue;
                }
                if p.error_code == ResponseError::OffsetOutOfRange.code() {
                    out_of_range.push(tp);
                } else if p.error_code != 0 {
                    self.partition_error(&tp, p.error_code, "Fetch");
                } else {
                    let records = p.records.as_deref().unwrap_or_default();
                    self.append(&tp, epoch, records, p.high_watermark, p.log_start_offset);
                }
            }
        }
        out_of_range
    }

    fn append(
        &mut self,
        tp: &TopicPartition,
        epoch: i32,
        records: &[u8],
        leader_hw: i64,
        leader_log_start: i64,
    ) {
        let Some((partition, _)) = self.partition(tp) else {
            return;
        };
        let appended = partition.replica.append_as_follower(
            &partition.log,
            epoch,
            records,
            leader_hw,
            leader_log_start,
            now_ms(),
        );
        match appended {
            Ok(appended) => {
                let lag = (leader_hw - appended.log_end.as_i64()).max(0);
                self.ctx
                    .metrics
                    .replication_lag
                    .with_label_values(&[&tp.topic, &tp.partition.to_string()])
                    .set(lag);
            }
            Err(e) => self.follower_log_error(tp, &e),
        }
    }

    /// OFFSET_OUT_OF_RANGE: asks the leader for its log end and start, then truncates or
    /// restarts the log (Kafka's `fetchOffsetAndTruncate`).
    async fn handle_out_of_range(
        &mut self,
        connection: &mut LeaderConnection,
        partitions: Vec<TopicPartition>,
    ) -> Result<(), ClientError> {
        let ends = self.list_offsets(connection, &partitions, LATEST).await?;
        let starts = self.list_offsets(connection, &partitions, EARLIEST).await?;
        for tp in partitions {
            let (Some(end), Some(start)) = (ends.get(&tp), starts.get(&tp)) else {
                continue;
            };
            let (end, start) = match (end, start) {
                (Ok(end), Ok(start)) => (*end, *start),
                (Err(code), _) | (_, Err(code)) => {
                    self.partition_error(&tp, *code, "ListOffsets");
                    continue;
                }
            };
            let Some((partition, epoch)) = self.partition(&tp) else {
                continue;
            };
            let log_end = partition
                .log
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .log_end_offset();
            let result = match out_of_range(end, start, log_end) {
                OutOfRange::TruncateTo(offset) => {
                    warn!(partition = %tp, %log_end, leader_log_end = %offset, "follower is ahead of the leader (an unclean election?); truncating to the leader's log end");
                    partition
                        .replica
                        .truncate_as_follower(&partition.log, epoch, offset, now_ms())
                        .map(|_| ())
                }
                OutOfRange::StartAt(offset) => partition.replica.restart_as_follower_at(
                    &partition.log,
                    epoch,
                    offset,
                    now_ms(),
                ),
                OutOfRange::Resume => Ok(()),
            };
            if let Err(e) = result {
                self.follower_log_error(&tp, &e);
            }
        }
        Ok(())
    }

    /// ListOffsets as a replica (so "latest" is the leader's log end): per partition, the
    /// offset or the error code.
    async fn list_offsets(
        &mut self,
        connection: &mut LeaderConnection,
        partitions: &[TopicPartition],
        timestamp: i64,
    ) -> Result<BTreeMap<TopicPartition, Result<Offset, i16>>, ClientError> {
        let (min, max) = LIST_OFFSETS_VERSIONS;
        let version = connection.version(ApiKey::ListOffsets, min, max)?;
        let mut topics: BTreeMap<String, Vec<ListOffsetsPartition>> = BTreeMap::new();
        for tp in partitions {
            let epoch = self
                .partitions
                .get(tp)
                .map_or(-1, |f| f.target.leader_epoch);
            topics.entry(tp.topic.clone()).or_default().push(
                ListOffsetsPartition::default()
                    .with_partition_index(tp.partition)
                    .with_current_leader_epoch(epoch)
                    .with_timestamp(timestamp),
            );
        }
        let request = ListOffsetsRequest::default()
            .with_replica_id(WireBrokerId(self.ctx.me.0))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        ListOffsetsTopic::default()
                            .with_name(WireTopicName(StrBytes::from_string(name)))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let response = connection.send(version, &request).await?;
        let mut offsets = BTreeMap::new();
        for topic in response.topics {
            for p in topic.partitions {
                let tp = TopicPartition::new(topic.name.0.to_string(), p.partition_index);
                let offset = match Offset::from_i64(p.offset) {
                    Some(offset) if p.error_code == 0 => Ok(offset),
                    _ if p.error_code != 0 => Err(p.error_code),
                    _ => Err(ResponseError::UnknownServerError.code()),
                };
                offsets.insert(tp, offset);
            }
        }
        Ok(offsets)
    }
}
