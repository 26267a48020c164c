//! [`GroupCoordinator`]: every classic group of one `__consumer_offsets` partition, the writes
//! in flight, and the timers.
//!
//! Invariants: `deadlines` holds exactly one entry per group with a pending timer, at that
//! group's earliest deadline (refreshed after every event that touches the group); every
//! token handed in is answered exactly once, in this call's effects or a later one's.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kafka_protocol::ResponseError;

use super::api::{
    DescribedMember, Effect, FetchedTopic, GroupDescription, HeartbeatParams, JoinGroupParams,
    JoinGroupResult, LeaveGroupParams, LeaveGroupResult, LeftMember, ListedGroup,
    OffsetCommitParams, OffsetCommitResult, OffsetDeleteResult, Outcome, Response, SyncGroupParams,
    SyncGroupResult, TopicPartitions, TxnOffsetCommitParams, coordinator_error_for_append,
};
use super::config::GroupConfig;
use super::ctx::{Ctx, PendingWrite, PendingWrites, Stats};
use super::ids::{GroupId, MemberId, PersistId, RequestToken};
use super::offsets::{OffsetAndMetadata, fetch_unknown_group};
use super::records;
use super::state::{Group, GroupState};
use crate::types::TopicPartition;

/// The classic group coordinator of one `__consumer_offsets` partition. See the
/// [module docs](super) for how a caller drives it.
#[derive(Debug)]
pub struct GroupCoordinator {
    config: GroupConfig,
    groups: BTreeMap<GroupId, Group>,
    writes: PendingWrites,
    stats: Stats,
    /// (deadline, group) for each group's earliest timer.
    deadlines: BTreeSet<(i64, GroupId)>,
    deadline_of: HashMap<GroupId, i64>,
    next_expiry_check: i64,
}

impl GroupCoordinator {
    /// An empty coordinator, as for a partition with no records.
    pub fn new(config: GroupConfig, now: i64) -> Self {
        GroupCoordinator {
            next_expiry_check: now + config.offsets_retention_check_interval_ms,
            config,
            groups: BTreeMap::new(),
            writes: PendingWrites::default(),
            stats: Stats::default(),
            deadlines: BTreeSet::new(),
            deadline_of: HashMap::new(),
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Runs `f` on group `id` with a context, then refreshes the group's deadline.
    fn on_group<R>(
        &mut self,
        id: &GroupId,
        now: i64,
        effects: &mut Vec<Effect>,
        f: impl FnOnce(&mut Group, &mut Ctx<'_>) -> R,
    ) -> Option<R> {
        let group = self.groups.get_mut(id)?;
        let mut ctx = Ctx {
            now,
            config: &self.config,
            effects,
            writes: &mut self.writes,
            stats: &mut self.stats,
        };
        let result = f(group, &mut ctx);
        self.refresh_deadline(id);
        Some(result)
    }

    fn refresh_deadline(&mut self, id: &GroupId) {
        if let Some(old) = self.deadline_of.remove(id) {
            self.deadlines.remove(&(old, id.clone()));
        }
        if let Some(deadline) = self.groups.get(id).and_then(Group::next_deadline) {
            self.deadlines.insert((deadline, id.clone()));
            self.deadline_of.insert(id.clone(), deadline);
        }
    }

    fn remove_group(&mut self, id: &GroupId) {
        self.groups.remove(id);
        self.refresh_deadline(id);
    }

    pub(super) fn insert_loaded(&mut self, group: Group, now: i64) {
        let id = group.id.clone();
        let over_capacity = group.members.len() > self.config.max_size;
        self.groups.insert(id.clone(), group);
        let mut effects = Vec::new();
        if over_capacity {
            // The max size may have shrunk since the group was stored: rebalance so members
            // can commit before the excess ones are pushed out.
            self.on_group(&id, now, &mut effects, |group, ctx| {
                group.prepare_rebalance(ctx, "loaded group is over group.max.size");
            });
        }
        self.refresh_deadline(&id);
        debug_assert!(effects.is_empty(), "a loaded group has no parked requests");
    }

    /// JoinGroup. The response comes in an effect naming `token`, now or once the join phase
    /// completes.
    pub fn join_group(&mut self, token: RequestToken, p: JoinGroupParams, now: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        let refuse = |effects: &mut Vec<Effect>, error| {
            let result = JoinGroupResult::error(p.member_id.clone(), error);
            effects.push(Effect::Respond {
                token,
                response: Response::JoinGroup(result),
            });
        };
        if p.group_id.is_empty() {
            refuse(&mut effects, ResponseError::InvalidGroupId);
            return effects;
        }
        if p.session_timeout_ms < self.config.min_session_timeout_ms
            || p.session_timeout_ms > self.config.max_session_timeout_ms
        {
            refuse(&mut effects, ResponseError::InvalidSessionTimeout);
            return effects;
        }
        if !self.groups.contains_key(&p.group_id) {
            // Only a member without an id may create a group.
            if !p.member_id.is_empty() {
                refuse(&mut effects, ResponseError::UnknownMemberId);
                return effects;
            }
            self.groups
                .insert(p.group_id.clone(), Group::new(p.group_id.clone(), now));
        }
        let group_id = p.group_id.clone();
        self.on_group(&group_id, now, &mut effects, |group, ctx| {
            group.join(token, &p, ctx);
        });
        effects
    }

    /// SyncGroup. Followers' responses are parked until the leader's assignment is stored.
    pub fn sync_group(&mut self, token: RequestToken, p: SyncGroupParams, now: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        let error = if p.group_id.is_empty() {
            Some(ResponseError::InvalidGroupId)
        } else if !self.groups.contains_key(&p.group_id) {
            Some(ResponseError::UnknownMemberId)
        } else {
            None
        };
        if let Some(error) = error {
            effects.push(Effect::Respond {
                token,
                response: Response::SyncGroup(SyncGroupResult::error(error)),
            });
            return effects;
        }
        let group_id = p.group_id.clone();
        self.on_group(&group_id, now, &mut effects, |group, ctx| {
            group.sync(token, &p, ctx);
        });
        effects
    }

    /// Heartbeat: never parked and never affects other requests.
    pub fn heartbeat(&mut self, p: &HeartbeatParams, now: i64) -> Option<ResponseError> {
        if p.group_id.is_empty() {
            return Some(ResponseError::InvalidGroupId);
        }
        let mut effects = Vec::new();
        let error = self
            .on_group(&p.group_id, now, &mut effects, |group, ctx| {
                group.heartbeat(p, ctx)
            })
            .unwrap_or(Some(ResponseError::UnknownMemberId));
        debug_assert!(effects.is_empty());
        error
    }

    /// LeaveGroup. May complete other members' parked JoinGroups.
    pub fn leave_group(&mut self, p: &LeaveGroupParams, now: i64) -> Outcome<LeaveGroupResult> {
        let mut effects = Vec::new();
        if p.group_id.is_empty() {
            let response = LeaveGroupResult {
                error: Some(ResponseError::InvalidGroupId),
                members: Vec::new(),
            };
            return Outcome { response, effects };
        }
        let response = self
            .on_group(&p.group_id, now, &mut effects, |group, ctx| {
                group.leave(p, ctx)
            })
            .unwrap_or_else(|| LeaveGroupResult {
                error: None,
                members: p
                    .members
                    .iter()
                    .map(|m| LeftMember {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        error: Some(ResponseError::UnknownMemberId),
                    })
                    .collect(),
            });
        Outcome { response, effects }
    }

    /// OffsetCommit. Answered once the offsets are stored (or at once if refused).
    pub fn commit_offsets(
        &mut self,
        token: RequestToken,
        p: OffsetCommitParams,
        now: i64,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        if !self.groups.contains_key(&p.group_id) {
            if p.generation_id.0 >= 0 {
                let error = if p.api_version >= 9 {
                    ResponseError::GroupIdNotFound
                } else {
                    ResponseError::IllegalGeneration
                };
                effects.push(Effect::Respond {
                    token,
                    response: Response::OffsetCommit(OffsetCommitResult::all(
                        &p.topics,
                        Some(error),
                    )),
                });
                return effects;
            }
            // A "simple" group: offsets only, no membership.
            self.groups
                .insert(p.group_id.clone(), Group::new(p.group_id.clone(), now));
        }
        let group_id = p.group_id.clone();
        self.on_group(&group_id, now, &mut effects, |group, ctx| {
            group.commit_offsets(token, &p, ctx);
        });
        effects
    }

    /// TxnOffsetCommit. A group that does not exist is created Empty (a transactional
    /// producer need not be a member). Answered once the producer's transactional batch is
    /// stored; the offsets stay invisible until [`GroupCoordinator::complete_transaction`]
    /// commits them.
    pub fn commit_transactional_offsets(
        &mut self,
        token: RequestToken,
        p: TxnOffsetCommitParams,
        now: i64,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        if !self.groups.contains_key(&p.group_id) {
            self.groups
                .insert(p.group_id.clone(), Group::new(p.group_id.clone(), now));
        }
        let group_id = p.group_id.clone();
        self.on_group(&group_id, now, &mut effects, |group, ctx| {
            group.commit_txn_offsets(token, &p, ctx);
        });
        effects
    }

    /// A COMMIT (`commit`) or ABORT transaction marker of `producer_id` was appended to this
    /// coordinator's partition: every group's pending transactional commits of that producer
    /// become visible (each unless a regular commit of the partition is later in the log) or
    /// are dropped. Writes nothing: the marker is the record. Markers of producers without
    /// pending commits here (the usual case for data partitions' transactions) change nothing.
    pub fn complete_transaction(
        &mut self,
        producer_id: i64,
        commit: bool,
        now: i64,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        // Every group is looked at: a marker per transaction and coordinator partition is rare
        // next to commits, and an index by producer would be one more thing to keep in step.
        let ids: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|(_, g)| g.open_transactions().any(|p| p == producer_id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.on_group(&id, now, &mut effects, |group, _| {
                group.complete_transaction(producer_id, commit);
            });
        }
        effects
    }

    /// OffsetFetch of one group: the named partitions, or every committed one when `topics`
    /// is `None`. Commits still being written, and transactional commits whose transaction
    /// has not committed, are not visible; with `require_stable` (OffsetFetch v7+) their
    /// partitions answer UNSTABLE_OFFSET_COMMIT instead of the last committed offset.
    pub fn fetch_offsets(
        &self,
        group: &GroupId,
        topics: Option<&[TopicPartitions]>,
        require_stable: bool,
    ) -> Vec<FetchedTopic> {
        match self.groups.get(group) {
            Some(group) => group.fetch_offsets(topics, require_stable),
            None => fetch_unknown_group(topics),
        }
    }

    /// OffsetDelete. Answered at once; the tombstones are written without waiting (Kafka's
    /// original coordinator did the same).
    pub fn delete_offsets(
        &mut self,
        group_id: &GroupId,
        topics: &[TopicPartitions],
        now: i64,
    ) -> Outcome<OffsetDeleteResult> {
        let mut effects = Vec::new();
        let response = self
            .on_group(group_id, now, &mut effects, |group, ctx| {
                let (result, tombstones) = group.delete_offsets(topics);
                if !tombstones.is_empty() {
                    ctx.persist(group_id, tombstones, None);
                }
                result
            })
            .unwrap_or(OffsetDeleteResult {
                error: Some(ResponseError::GroupIdNotFound),
                topics: Vec::new(),
            });
        Outcome { response, effects }
    }

    /// DeleteGroups: only Empty groups can be deleted; their offsets and metadata are
    /// tombstoned. Answered at once, like OffsetDelete.
    pub fn delete_groups(
        &mut self,
        group_ids: &[GroupId],
        now: i64,
    ) -> Outcome<Vec<(GroupId, Option<ResponseError>)>> {
        let mut effects = Vec::new();
        let mut results = Vec::with_capacity(group_ids.len());
        for id in group_ids {
            let error = match self.groups.get(id).map(|g| g.state) {
                None | Some(GroupState::Dead) => Some(ResponseError::GroupIdNotFound),
                Some(GroupState::Empty) => {
                    self.on_group(id, now, &mut effects, |group, ctx| {
                        let mut tombstones = group.delete_all_offsets();
                        tombstones.push(records::group_tombstone(id));
                        ctx.persist(id, tombstones, None);
                    });
                    self.remove_group(id);
                    None
                }
                Some(_) => Some(ResponseError::NonEmptyGroup),
            };
            results.push((id.clone(), error));
        }
        Outcome {
            response: results,
            effects,
        }
    }

    /// DescribeGroups of one group; `None` if this coordinator does not know it (Kafka then
    /// describes it as Dead, with GROUP_ID_NOT_FOUND from DescribeGroups v6).
    pub fn describe_group(&self, id: &GroupId) -> Option<GroupDescription> {
        let group = self.groups.get(id)?;
        let stable = group.state == GroupState::Stable;
        let protocol = group.protocol_name.clone().unwrap_or_default();
        Some(GroupDescription {
            group_id: id.clone(),
            state: group.state,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol_data: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: group
                .members
                .values()
                .map(|m| DescribedMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Default::default()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Default::default()
                    },
                })
                .collect(),
        })
    }

    /// ListGroups. `states` (case-insensitive state names) and `types` (group types; all of
    /// these are "classic") filter when non-empty.
    pub fn list_groups(&self, states: &[String], types: &[String]) -> Vec<ListedGroup> {
        let states: Vec<String> = states.iter().map(|s| s.trim().to_lowercase()).collect();
        if !types.is_empty()
            && !types
                .iter()
                .any(|t| t.trim().eq_ignore_ascii_case("classic"))
        {
            return Vec::new();
        }
        self.groups
            .values()
            .filter(|g| states.is_empty() || states.contains(&g.state.name().to_lowercase()))
            .map(|g| ListedGroup {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect()
    }

    /// Reports the outcome of an [`Effect::Persist`]: `Err` carries the Kafka error the
    /// append failed with (NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS, KAFKA_STORAGE_ERROR…);
    /// parked requests get Kafka's mapping of it.
    pub fn persisted(
        &mut self,
        id: PersistId,
        result: Result<(), ResponseError>,
        now: i64,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(write) = self.writes.waiting.remove(&id) else {
            if let Err(error) = result {
                tracing::warn!(persist = %id, ?error, "a __consumer_offsets write nobody waits for failed");
            }
            return effects;
        };
        match write {
            PendingWrite::SyncAssignment {
                group,
                generation,
                assignment,
            } => {
                self.on_group(&group, now, &mut effects, |g, ctx| {
                    g.on_assignment_persisted(generation, &assignment, result, ctx);
                });
            }
            PendingWrite::StaticReplace(write) => {
                let group = write.group.clone();
                let handled = self.on_group(&group, now, &mut effects, |g, ctx| {
                    g.on_static_replace_persisted(write, result, ctx);
                });
                debug_assert!(handled.is_some(), "groups with members are never deleted");
            }
            PendingWrite::OffsetCommit {
                group,
                token,
                offsets,
                response,
            } => {
                let response = match self.groups.get_mut(&group) {
                    Some(g) => g.on_commit_persisted(id, offsets, response, result),
                    // Deleted while the write was in flight: its tombstones follow the commit
                    // in the log, so nothing is applied, but the write itself succeeded.
                    None => match result {
                        Ok(()) => response,
                        Err(error) => response.with_error(coordinator_error_for_append(error)),
                    },
                };
                effects.push(Effect::Respond {
                    token,
                    response: Response::OffsetCommit(response),
                });
            }
            PendingWrite::TxnOffsetCommit {
                group,
                token,
                producer_id,
                partitions,
                response,
            } => {
                let response = match self.groups.get_mut(&group) {
                    Some(g) => {
                        g.on_txn_commit_persisted(id, producer_id, &partitions, response, result)
                    }
                    None => match result {
                        Ok(()) => response,
                        Err(error) => response.with_error(coordinator_error_for_append(error)),
                    },
                };
                effects.push(Effect::Respond {
                    token,
                    response: Response::TxnOffsetCommit(response),
                });
            }
        }
        effects
    }

    /// The earliest time [`GroupCoordinator::tick`] has something to do.
    pub fn next_deadline(&self) -> i64 {
        let groups = self.deadlines.first().map(|(deadline, _)| *deadline);
        groups.map_or(self.next_expiry_check, |d| d.min(self.next_expiry_check))
    }

    /// Fires the timers due at `now`: session timeouts, join and sync deadlines, pending
    /// members, and the periodic offset expiry.
    pub fn tick(&mut self, now: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        let due: Vec<GroupId> = self
            .deadlines
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .map(|(_, id)| id.clone())
            .collect();
        for id in due {
            self.on_group(&id, now, &mut effects, |group, ctx| group.tick(ctx));
        }
        if now >= self.next_expiry_check {
            self.expire_offsets(now, &mut effects);
            self.next_expiry_check = now + self.config.offsets_retention_check_interval_ms;
        }
        effects
    }

    fn expire_offsets(&mut self, now: i64, effects: &mut Vec<Effect>) {
        let retention = self.config.offsets_retention_ms;
        let ids: Vec<GroupId> = self.groups.keys().cloned().collect();
        for id in ids {
            let deleted = self
                .on_group(&id, now, effects, |group, ctx| {
                    let (mut tombstones, no_offsets) = group.expire_offsets(now, retention);
                    let delete = no_offsets && group.state == GroupState::Empty;
                    if delete {
                        tombstones.push(records::group_tombstone(&group.id));
                    }
                    if !tombstones.is_empty() {
                        ctx.persist(&group.id, tombstones, None);
                    }
                    delete
                })
                .unwrap_or(false);
            if deleted {
                tracing::info!(group = %id, "group is Empty and has no offsets left; deleted");
                self.remove_group(&id);
            }
        }
    }

    /// This broker is no longer the coordinator of the partition: every parked request is
    /// answered NOT_COORDINATOR and the coordinator is dropped. Writes still in flight need
    /// no report.
    pub fn unload(mut self, now: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        let ids: Vec<GroupId> = self.groups.keys().cloned().collect();
        for id in ids {
            self.on_group(&id, now, &mut effects, |group, ctx| group.unload(ctx));
        }
        for write in self.writes.waiting.into_values() {
            let (token, response) = match write {
                PendingWrite::OffsetCommit {
                    token, response, ..
                } => (
                    token,
                    Response::OffsetCommit(response.with_error(ResponseError::NotCoordinator)),
                ),
                PendingWrite::TxnOffsetCommit {
                    token, response, ..
                } => (
                    token,
                    Response::TxnOffsetCommit(response.with_error(ResponseError::NotCoordinator)),
                ),
                PendingWrite::SyncAssignment { .. } | PendingWrite::StaticReplace(_) => continue,
            };
            effects.push(Effect::Respond { token, response });
        }
        effects
    }

    /// Forgets every group's offsets of a deleted topic and writes their tombstones, as
    /// Kafka's coordinator does when partitions are deleted.
    pub fn delete_topic_offsets(&mut self, topic: &str, now: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        let ids: Vec<GroupId> = self.groups.keys().cloned().collect();
        for id in ids {
            self.on_group(&id, now, &mut effects, |group, ctx| {
                let tombstones = group.delete_topic_offsets(topic);
                if !tombstones.is_empty() {
                    ctx.persist(&id, tombstones, None);
                }
            });
        }
        effects
    }

    /// Groups per state, for gauges.
    pub fn group_counts(&self) -> BTreeMap<GroupState, usize> {
        let mut counts = BTreeMap::new();
        for group in self.groups.values() {
            *counts.entry(group.state).or_default() += 1;
        }
        counts
    }

    /// Kafka's `group-completed-rebalance-count`: assignments stored since this coordinator
    /// was created.
    pub fn completed_rebalances(&self) -> u64 {
        self.stats.completed_rebalances
    }

    /// Times a group entered PreparingRebalance since this coordinator was created.
    pub fn started_rebalances(&self) -> u64 {
        self.stats.started_rebalances
    }

    /// Every committed offset, for per-partition lag gauges.
    pub fn committed_offsets(
        &self,
    ) -> impl Iterator<Item = (&GroupId, &TopicPartition, &OffsetAndMetadata)> {
        self.groups
            .values()
            .flat_map(|g| g.committed().map(move |(tp, o)| (&g.id, tp, o)))
    }

    /// The group's state, if this coordinator knows it.
    pub fn group_state(&self, id: &GroupId) -> Option<GroupState> {
        self.groups.get(id).map(|g| g.state)
    }

    /// The group's generation and leader, if this coordinator knows it.
    pub fn group_generation(
        &self,
        id: &GroupId,
    ) -> Option<(super::GenerationId, Option<MemberId>)> {
        self.groups
            .get(id)
            .map(|g| (g.generation, g.leader.clone()))
    }
}
