//! Committed offsets of one group: OffsetCommit validation and staging, OffsetFetch,
//! OffsetDelete and retention.
//!
//! Invariants: a commit becomes visible (to OffsetFetch, expiry, metrics) only once its write
//! succeeded; until then its partitions are in `pending`, with the ids of the writes in flight
//! for them (never an empty list). Deleting an offset drops its pending writes too, so a commit
//! that was in flight when its offset was deleted is acknowledged but not applied — its record
//! precedes the tombstone in the log, so the log agrees.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::ResponseError;

use super::api::Response;
use super::api::{
    FetchedPartition, FetchedTopic, OffsetCommitParams, OffsetCommitResult, OffsetDeleteResult,
    PartitionResult, TopicPartitions, TopicResult,
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

#[derive(Debug, Default)]
pub(super) struct OffsetStore {
    pub(super) committed: BTreeMap<TopicPartition, OffsetAndMetadata>,
    pub(super) pending: HashMap<TopicPartition, Vec<PersistId>>,
}

impl OffsetStore {
    pub(super) fn is_empty(&self) -> bool {
        self.committed.is_empty() && self.pending.is_empty()
    }

    /// Forgets `tp` (committed and in flight); whether a committed offset existed.
    fn remove(&mut self, tp: &TopicPartition) -> bool {
        self.pending.remove(tp);
        self.committed.remove(tp).is_some()
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
            self.validate_member(&p.member_id, p.group_instance_id.as_ref())?;
            if p.generation_id != self.generation {
                return Err(ResponseError::IllegalGeneration);
            }
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
        let mut response = OffsetCommitResult { topics: Vec::new() };
        let mut offsets = Vec::new();
        for topic in &p.topics {
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
            self.offsets.pending.entry(tp).or_default().push(id);
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
            let Some(writes) = self.offsets.pending.get_mut(&tp) else {
                continue; // deleted while in flight
            };
            let Some(at) = writes.iter().position(|&w| w == id) else {
                continue; // deleted while in flight, and committed again since
            };
            writes.remove(at);
            if writes.is_empty() {
                self.offsets.pending.remove(&tp);
            }
            // Writes complete in log order, so a later commit of `tp` still in flight will
            // overwrite this one when it lands.
            if result.is_ok() {
                self.offsets.committed.insert(tp, offset);
            }
        }
        match result {
            Ok(()) => response,
            Err(error) => response.with_error(super::api::coordinator_error_for_append(error)),
        }
    }

    /// OffsetFetch for `topics`, or for every committed partition when `None`. Partitions
    /// without a committed offset answer offset -1.
    pub(super) fn fetch_offsets(&self, topics: Option<&[TopicPartitions]>) -> Vec<FetchedTopic> {
        let fetched = |tp: &TopicPartition| match self.offsets.committed.get(tp) {
            Some(o) => FetchedPartition {
                partition: tp.partition,
                offset: o.offset,
                leader_epoch: o.leader_epoch.unwrap_or(-1),
                metadata: o.metadata.clone(),
            },
            None => unknown_partition(tp.partition),
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
                    let in_flight = self.offsets.pending.contains_key(&tp);
                    if self.offsets.remove(&tp) || in_flight {
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
        let mut tps: Vec<TopicPartition> = self
            .offsets
            .committed
            .keys()
            .chain(self.offsets.pending.keys())
            .filter(|tp| tp.topic == topic)
            .cloned()
            .collect();
        tps.sort();
        tps.dedup();
        for tp in &tps {
            self.offsets.remove(tp);
        }
        tps.iter()
            .map(|tp| records::offset_tombstone(&self.id, tp))
            .collect()
    }

    /// Removes every offset (DeleteGroups); returns their tombstones.
    pub(super) fn delete_all_offsets(&mut self) -> Vec<OffsetsRecord> {
        let mut tps: Vec<TopicPartition> = self.offsets.committed.keys().cloned().collect();
        tps.extend(
            self.offsets
                .pending
                .keys()
                .filter(|tp| !self.offsets.committed.contains_key(*tp))
                .cloned(),
        );
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
    /// are kept. Returns the tombstones and whether the group is left without offsets.
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
            .filter(|(tp, offset)| {
                if self.is_subscribed_to_topic(&tp.topic) || self.offsets.pending.contains_key(*tp)
                {
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
        self.offsets.committed.iter()
    }
}

fn unknown_partition(partition: i32) -> FetchedPartition {
    FetchedPartition {
        partition,
        offset: -1,
        leader_epoch: -1,
        metadata: String::new(),
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
