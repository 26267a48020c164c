//! Committed offsets of one group: OffsetCommit validation and staging, OffsetFetch,
//! OffsetDelete and retention. Transactional commits are in [`super::txn_offsets`].
//!
//! Invariants: a commit becomes visible (to OffsetFetch, expiry, metrics) only once its write
//! succeeded; until then its partitions are in `in_flight`, with the ids of the writes in flight
//! for them (never an empty list). Deleting an offset drops its in-flight writes and pending
//! transactional commits too, so a commit that was in flight when its offset was deleted is
//! acknowledged but not applied — its record precedes the tombstone in the log, so the log
//! agrees. Of two commits of one partition, the one later in the log wins (see
//! [`LogPosition`]), whichever lands or completes first.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::ResponseError;

use super::api::Response;
use super::api::{
    CommitTopic, FetchedPartition, FetchedTopic, OffsetCommitParams, OffsetCommitResult,
    OffsetDeleteResult, PartitionResult, TopicPartitions, TopicResult,
};
use super::ctx::{Ctx, PendingWrite};
use super::ids::{PersistId, RequestToken};
use super::records::{self, OffsetsRecord};
use super::state::{Group, GroupState};
use crate::types::TopicPartition;

/// A committed offset as stored in `__consumer_offsets` (OffsetCommitValue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    pub offset: i64,
    /// `None` is stored as -1.
    pub leader_epoch: Option<i32>,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only commits with an explicit retention (OffsetCommit v2-4) have one; they expire then
    /// instead of by the group's retention rule.
    pub expire_timestamp: Option<i64>,
}

/// Where a commit's record sits in the partition's log. Kafka keeps, of two commits of one
/// partition, the one whose batch is later in the log: a transactional commit whose
/// transaction ends after a later regular commit landed does not replace it. Every write since
/// loading is later than every loaded record, and writes reach the log in the order they are
/// emitted (so in [`PersistId`] order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum LogPosition {
    /// The n-th record replayed while loading.
    Loaded(u64),
    /// Written by this coordinator since it loaded.
    Written(PersistId),
}

/// A visible committed offset and where its record is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Committed {
    pub(super) offset: OffsetAndMetadata,
    pub(super) at: LogPosition,
}

/// A transactional commit waiting for its transaction to end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TxnOffset {
    pub(super) offset: OffsetAndMetadata,
    pub(super) at: LogPosition,
    /// In the log; `false` while its write is in flight (Kafka's "no appended batch offset").
    pub(super) stored: bool,
}

#[derive(Debug, Default)]
pub(super) struct OffsetStore {
    pub(super) committed: BTreeMap<TopicPartition, Committed>,
    /// Regular commits whose writes are in flight.
    pub(super) in_flight: HashMap<TopicPartition, Vec<PersistId>>,
    /// Transactional commits per producer id, until a marker ends the transaction.
    pub(super) transactions: BTreeMap<i64, BTreeMap<TopicPartition, TxnOffset>>,
}

impl OffsetStore {
    /// No offsets at all: none committed, in flight or in an open transaction (Kafka's
    /// `!hasOffsets`, which keeps a group with an open transaction from being deleted).
    pub(super) fn is_empty(&self) -> bool {
        self.committed.is_empty() && self.in_flight.is_empty() && self.transactions.is_empty()
    }

    /// Whether an open transaction commits `tp`.
    pub(super) fn in_transaction(&self, tp: &TopicPartition) -> bool {
        self.transactions.values().any(|t| t.contains_key(tp))
    }

    /// Whether a commit of `tp` is not settled yet: in flight, or in an open transaction
    /// (Kafka's `hasPendingOffsetCommitsForTopicPartition`).
    pub(super) fn is_pending(&self, tp: &TopicPartition) -> bool {
        self.in_flight.contains_key(tp) || self.in_transaction(tp)
    }

    /// Every partition with an offset: committed, in flight or in a transaction.
    pub(super) fn partitions(&self) -> Vec<TopicPartition> {
        let mut tps: Vec<TopicPartition> = self
            .committed
            .keys()
            .chain(self.in_flight.keys())
            .chain(self.transactions.values().flat_map(|t| t.keys()))
            .cloned()
            .collect();
        tps.sort();
        tps.dedup();
        tps
    }

    /// Makes `offset` the committed one unless the current one is later in the log.
    pub(super) fn commit(
        &mut self,
        tp: TopicPartition,
        offset: OffsetAndMetadata,
        at: LogPosition,
    ) {
        if self.committed.get(&tp).is_none_or(|c| c.at < at) {
            self.committed.insert(tp, Committed { offset, at });
        }
    }

    /// Forgets `tp` (committed, in flight and in open transactions); whether anything existed.
    fn remove(&mut self, tp: &TopicPartition) -> bool {
        let in_flight = self.in_flight.remove(tp).is_some();
        let mut in_transaction = false;
        self.transactions.retain(|_, offsets| {
            in_transaction |= offsets.remove(tp).is_some();
            !offsets.is_empty()
        });
        let committed = self.committed.remove(tp).is_some();
        committed || in_flight || in_transaction
    }
}

/// `String.length()` in Java, which `offset.metadata.max.bytes` is compared against.
fn java_length(s: &str) -> usize {
    s.encode_utf16().count()
}

impl Group {
    /// Kafka's `validateOffsetCommit` for a non-transactional commit.
    fn validate_offset_commit(&self, p: &OffsetCommitParams) -> Result<(), ResponseError> {
        if p.generation_id.0 < 0 && self.state == GroupState::Empty {
            // Admin clients and `assign()` consumers commit outside group management.
            return Ok(());
        }
        if p.generation_id.0 >= 0 || !p.member_id.is_empty() || p.group_instance_id.is_some() {
            self.validate_member_generation(
                &p.member_id,
                p.group_instance_id.as_ref(),
                p.generation_id,
            )?;
        } else if self.state != GroupState::Empty {
            // Without member id and generation, only an Empty group accepts commits.
            return Err(ResponseError::UnknownMemberId);
        }
        if self.state == GroupState::CompletingRebalance {
            // The member knows the new generation but not its assignment yet.
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }

    pub(super) fn commit_offsets(
        &mut self,
        token: RequestToken,
        p: &OffsetCommitParams,
        ctx: &mut Ctx<'_>,
    ) {
        if let Err(error) = self.validate_offset_commit(p) {
            ctx.respond(
                token,
                Response::OffsetCommit(OffsetCommitResult::all(&p.topics, Some(error))),
            );
            return;
        }
        // A commit keeps a classic member's session alive.
        if matches!(
            self.state,
            GroupState::Stable | GroupState::PreparingRebalance
        ) && let Some(member) = self.members.get_mut(&p.member_id)
        {
            member.reschedule_session(ctx.now);
        }
        let expire_timestamp = (p.retention_time_ms != -1).then(|| ctx.now + p.retention_time_ms);
        let (response, offsets) = offsets_to_commit(&p.topics, ctx, expire_timestamp);
        if offsets.is_empty() {
            ctx.respond(token, Response::OffsetCommit(response));
            return;
        }
        let records: Vec<OffsetsRecord> = offsets
            .iter()
            .map(|(tp, offset)| records::offset_commit_record(&self.id, tp, offset))
            .collect();
        let tps: Vec<TopicPartition> = offsets.iter().map(|(tp, _)| tp.clone()).collect();
        let waiter = PendingWrite::OffsetCommit {
            group: self.id.clone(),
            token,
            offsets,
            response,
        };
        let id = ctx.persist(&self.id, records, Some(waiter));
        for tp in tps {
            self.offsets.in_flight.entry(tp).or_default().push(id);
        }
    }

    /// An OffsetCommit write completed: the offsets become visible unless deleted meanwhile,
    /// and the request is answered (with the append's error for every partition if it
    /// failed, as Kafka answers a failed commit).
    pub(super) fn on_commit_persisted(
        &mut self,
        id: PersistId,
        offsets: Vec<(TopicPartition, OffsetAndMetadata)>,
        response: OffsetCommitResult,
        result: Result<(), ResponseError>,
    ) -> OffsetCommitResult {
        for (tp, offset) in offsets {
            let Some(writes) = self.offsets.in_flight.get_mut(&tp) else {
                continue; // deleted while in flight
            };
            let Some(at) = writes.iter().position(|&w| w == id) else {
                continue; // deleted while in flight, and committed again since
            };
            writes.remove(at);
            if writes.is_empty() {
                self.offsets.in_flight.remove(&tp);
            }
            if result.is_ok() {
                self.offsets.commit(tp, offset, LogPosition::Written(id));
            }
        }
        match result {
            Ok(()) => response,
            Err(error) => response.with_error(super::api::coordinator_error_for_append(error)),
        }
    }

    /// OffsetFetch for `topics`, or for every committed partition when `None`. Partitions
    /// without a committed offset answer offset -1. With `require_stable` (OffsetFetch v7+),
    /// a partition whose commit is pending answers UNSTABLE_OFFSET_COMMIT (per partition, as
    /// Kafka's `getOffsets`), so the client retries; without it, the last committed offset.
    pub(super) fn fetch_offsets(
        &self,
        topics: Option<&[TopicPartitions]>,
        require_stable: bool,
    ) -> Vec<FetchedTopic> {
        let fetched = |tp: &TopicPartition| {
            if require_stable && self.offsets.is_pending(tp) {
                return FetchedPartition {
                    error: Some(ResponseError::UnstableOffsetCommit),
                    ..unknown_partition(tp.partition)
                };
            }
            match self.offsets.committed.get(tp) {
                Some(Committed { offset: o, .. }) => FetchedPartition {
                    partition: tp.partition,
                    offset: o.offset,
                    leader_epoch: o.leader_epoch.unwrap_or(-1),
                    metadata: o.metadata.clone(),
                    error: None,
                },
                None => unknown_partition(tp.partition),
            }
        };
        match topics {
            Some(topics) => topics
                .iter()
                .map(|topic| FetchedTopic {
                    name: topic.name.clone(),
                    partitions: topic
                        .partitions
                        .iter()
                        .map(|&p| fetched(&TopicPartition::new(topic.name.clone(), p)))
                        .collect(),
                })
                .collect(),
            None => {
                let mut out: Vec<FetchedTopic> = Vec::new();
                for tp in self.offsets.committed.keys() {
                    if out.last().is_none_or(|t| t.name != tp.topic) {
                        out.push(FetchedTopic {
                            name: tp.topic.clone(),
                            partitions: Vec::new(),
                        });
                    }
                    out.last_mut().expect("pushed").partitions.push(fetched(tp));
                }
                out
            }
        }
    }

    /// OffsetDelete: refused for a non-empty group that is not a consumer group; per topic,
    /// GROUP_SUBSCRIBED_TO_TOPIC while a member subscribes to it. Returns the tombstones.
    pub(super) fn delete_offsets(
        &mut self,
        topics: &[TopicPartitions],
    ) -> (OffsetDeleteResult, Vec<OffsetsRecord>) {
        if self.state != GroupState::Empty && !self.uses_consumer_protocol() {
            let result = OffsetDeleteResult {
                error: Some(ResponseError::NonEmptyGroup),
                topics: Vec::new(),
            };
            return (result, Vec::new());
        }
        let mut tombstones = Vec::new();
        let mut results = Vec::with_capacity(topics.len());
        for topic in topics {
            let subscribed = self.is_subscribed_to_topic(&topic.name);
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for &partition in &topic.partitions {
                let error = if subscribed {
                    Some(ResponseError::GroupSubscribedToTopic)
                } else {
                    let tp = TopicPartition::new(topic.name.clone(), partition);
                    if self.offsets.remove(&tp) {
                        tombstones.push(records::offset_tombstone(&self.id, &tp));
                    }
                    None
                };
                partitions.push(PartitionResult { partition, error });
            }
            results.push(TopicResult {
                name: topic.name.clone(),
                partitions,
            });
        }
        let result = OffsetDeleteResult {
            error: None,
            topics: results,
        };
        (result, tombstones)
    }

    /// Removes the offsets of a deleted topic (Kafka's `onPartitionsDeleted`); returns their
    /// tombstones.
    pub(super) fn delete_topic_offsets(&mut self, topic: &str) -> Vec<OffsetsRecord> {
        let mut tps = self.offsets.partitions();
        tps.retain(|tp| tp.topic == topic);
        for tp in &tps {
            self.offsets.remove(tp);
        }
        tps.iter()
            .map(|tp| records::offset_tombstone(&self.id, tp))
            .collect()
    }

    /// Removes every offset (DeleteGroups), open transactions' included; returns their
    /// tombstones (one per partition, as Kafka's newer coordinator writes them). A marker that
    /// ends such a transaction later finds nothing to complete.
    pub(super) fn delete_all_offsets(&mut self) -> Vec<OffsetsRecord> {
        let tps = self.offsets.partitions();
        self.offsets = OffsetStore::default();
        tps.iter()
            .map(|tp| records::offset_tombstone(&self.id, tp))
            .collect()
    }

    /// Removes offsets past retention (Kafka's `offsetExpirationCondition`, 2.1+ rules):
    /// - a group with a protocol type that is Empty: retention counts from when it became
    ///   Empty (or from the commit for groups stored without that timestamp);
    /// - a Stable consumer group: offsets of topics no member subscribes to, counted from the
    ///   commit;
    /// - a group without protocol type (standalone committers): counted from the commit;
    /// - any other group keeps its offsets.
    ///
    /// Commits with an explicit expire timestamp expire then. Offsets with a commit in flight
    /// or in an open transaction are kept (as Kafka's newer coordinator does), and pending
    /// transactional commits never expire. Returns the tombstones and whether the group is
    /// left without offsets.
    pub(super) fn expire_offsets(
        &mut self,
        now: i64,
        retention_ms: i64,
    ) -> (Vec<OffsetsRecord>, bool) {
        enum Base {
            StateTimestamp(Option<i64>),
            Commit,
        }
        let base = match &self.protocol_type {
            Some(_) if self.state == GroupState::Empty => {
                Some(Base::StateTimestamp(self.state_timestamp))
            }
            Some(_)
                if self.uses_consumer_protocol()
                    && self.subscribed_topics.is_some()
                    && self.state == GroupState::Stable =>
            {
                Some(Base::Commit)
            }
            Some(_) => None,
            None => Some(Base::Commit),
        };
        let Some(base) = base else {
            return (Vec::new(), self.offsets.is_empty());
        };
        let expired: Vec<TopicPartition> = self
            .offsets
            .committed
            .iter()
            .filter(|(tp, Committed { offset, .. })| {
                if self.is_subscribed_to_topic(&tp.topic) || self.offsets.is_pending(tp) {
                    return false;
                }
                match offset.expire_timestamp {
                    Some(expire) => now >= expire,
                    None => {
                        let since = match base {
                            Base::StateTimestamp(Some(ts)) => ts,
                            Base::StateTimestamp(None) | Base::Commit => offset.commit_timestamp,
                        };
                        now - since >= retention_ms
                    }
                }
            })
            .map(|(tp, _)| tp.clone())
            .collect();
        let tombstones = expired
            .iter()
            .map(|tp| {
                self.offsets.committed.remove(tp);
                records::offset_tombstone(&self.id, tp)
            })
            .collect();
        (tombstones, self.offsets.is_empty())
    }

    /// Committed offsets, for metrics.
    pub(super) fn committed(&self) -> impl Iterator<Item = (&TopicPartition, &OffsetAndMetadata)> {
        self.offsets.committed.iter().map(|(tp, c)| (tp, &c.offset))
    }
}

/// The per-partition results and the offsets to write for the partitions of `topics` a
/// commit accepts: all but those with metadata over `offset.metadata.max.bytes`
/// (OFFSET_METADATA_TOO_LARGE, as Kafka's `storeOffsets` refuses them).
pub(super) fn offsets_to_commit(
    topics: &[CommitTopic],
    ctx: &Ctx<'_>,
    expire_timestamp: Option<i64>,
) -> (OffsetCommitResult, Vec<(TopicPartition, OffsetAndMetadata)>) {
    let mut response = OffsetCommitResult { topics: Vec::new() };
    let mut offsets = Vec::new();
    for topic in topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in &topic.partitions {
            let metadata = partition.metadata.clone().unwrap_or_default();
            let error = if java_length(&metadata) > ctx.config.offset_metadata_max_bytes {
                Some(ResponseError::OffsetMetadataTooLarge)
            } else {
                offsets.push((
                    TopicPartition::new(topic.name.clone(), partition.partition),
                    OffsetAndMetadata {
                        offset: partition.offset,
                        leader_epoch: (partition.leader_epoch >= 0)
                            .then_some(partition.leader_epoch),
                        metadata,
                        commit_timestamp: ctx.now,
                        expire_timestamp,
                    },
                ));
                None
            };
            partitions.push(PartitionResult {
                partition: partition.partition,
                error,
            });
        }
        response.topics.push(TopicResult {
            name: topic.name.clone(),
            partitions,
        });
    }
    (response, offsets)
}

fn unknown_partition(partition: i32) -> FetchedPartition {
    FetchedPartition {
        partition,
        offset: -1,
        leader_epoch: -1,
        metadata: String::new(),
        error: None,
    }
}

/// OffsetFetch of a group this coordinator does not know: every named partition is -1.
pub(super) fn fetch_unknown_group(topics: Option<&[TopicPartitions]>) -> Vec<FetchedTopic> {
    topics
        .unwrap_or_default()
        .iter()
        .map(|topic| FetchedTopic {
            name: topic.name.clone(),
            partitions: topic
                .partitions
                .iter()
                .map(|&p| unknown_partition(p))
                .collect(),
        })
        .collect()
}
