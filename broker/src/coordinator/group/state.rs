//! One classic group: its state, generation, protocol, leader, members and timers, and the
//! membership primitives the rebalance protocol ([`super::membership`]) is built from.
//!
//! Invariants:
//! - `static_members` maps each static member's instance id to its current member id, and
//!   every member with an instance id is in it.
//! - `leader` is a member of the group, or `None` exactly when the group has no members.
//! - `protocol_type` is set by the first member to join and every member has that type.
//! - `pending_members` (MEMBER_ID_REQUIRED issued, not yet joined) are never in `members`.
//! - `join_timer` is set only in PreparingRebalance, `sync_timer` only in
//!   CompletingRebalance or Stable.
//! - Dead is never stored: Kafka's Dead marks a group being removed while other threads may
//!   still hold it; here the single owner removes the group instead.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::api::{JoinGroupResult, JoinedMember, SyncGroupResult};
use super::ctx::Ctx;
use super::ids::{GenerationId, GroupId, InstanceId, MemberId};
use super::member::Member;
use super::offsets::OffsetStore;
use super::records::{self, GroupMetadataValue, MemberMetadataValue};

/// Kafka's protocol type of consumer groups, whose metadata the coordinator can read.
pub(super) const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupState {
    /// No members; the group may still hold committed offsets.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    Stable,
    /// The state DescribeGroups reports for a group that does not exist.
    Dead,
}

impl GroupState {
    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// The states PreparingRebalance may be entered from.
    pub(super) fn can_rebalance(self) -> bool {
        matches!(
            self,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        )
    }
}

/// The join phase's deadline: the initial delay of an Empty group's first rebalance, or the
/// rebalance timeout after which members that did not rejoin are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum JoinTimer {
    Initial {
        deadline: i64,
        delay_ms: i64,
        remaining_ms: i64,
    },
    Rebalance {
        deadline: i64,
    },
}

impl JoinTimer {
    fn deadline(self) -> i64 {
        match self {
            JoinTimer::Initial { deadline, .. } | JoinTimer::Rebalance { deadline } => deadline,
        }
    }
}

/// Members that got their JoinGroup response must send SyncGroup before this deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SyncTimer {
    pub(super) deadline: i64,
    pub(super) generation: GenerationId,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    PendingMember(MemberId),
    Session(MemberId),
    Join,
    Sync,
}

#[derive(Debug)]
pub(super) struct Group {
    pub(super) id: GroupId,
    pub(super) state: GroupState,
    pub(super) previous_state: GroupState,
    /// When the group entered its state; drives offset expiry of Empty groups. `None` for
    /// groups loaded from GroupMetadataValue v0/v1, which did not store it.
    pub(super) state_timestamp: Option<i64>,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol_name: Option<String>,
    pub(super) generation: GenerationId,
    pub(super) leader: Option<MemberId>,
    pub(super) members: BTreeMap<MemberId, Member>,
    pub(super) static_members: HashMap<InstanceId, MemberId>,
    /// Member id → deadline by which it must join.
    pub(super) pending_members: BTreeMap<MemberId, i64>,
    /// Members that got this generation's JoinGroup response but have not sent SyncGroup.
    pub(super) pending_sync: BTreeSet<MemberId>,
    /// A member joined during an initial rebalance, which extends the initial delay.
    pub(super) new_member_added: bool,
    pub(super) join_timer: Option<JoinTimer>,
    pub(super) sync_timer: Option<SyncTimer>,
    /// For consumer groups: the union of the members' subscriptions, `None` when unknown.
    pub(super) subscribed_topics: Option<BTreeSet<String>>,
    pub(super) offsets: OffsetStore,
}

impl Group {
    pub(super) fn new(id: GroupId, now: i64) -> Group {
        Group {
            id,
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            state_timestamp: Some(now),
            protocol_type: None,
            protocol_name: None,
            generation: GenerationId(0),
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            new_member_added: false,
            join_timer: None,
            sync_timer: None,
            subscribed_topics: None,
            offsets: OffsetStore::default(),
        }
    }

    pub(super) fn transition(&mut self, to: GroupState, now: i64) {
        debug_assert!(
            match to {
                GroupState::PreparingRebalance => self.state.can_rebalance(),
                GroupState::CompletingRebalance => self.state == GroupState::PreparingRebalance,
                GroupState::Stable => self.state == GroupState::CompletingRebalance,
                GroupState::Empty => self.state == GroupState::PreparingRebalance,
                GroupState::Dead => true,
            },
            "group {} cannot move from {:?} to {to:?}",
            self.id,
            self.state
        );
        self.previous_state = self.state;
        self.state = to;
        self.state_timestamp = Some(now);
    }

    pub(super) fn is_leader(&self, member_id: &MemberId) -> bool {
        self.leader.as_ref() == Some(member_id)
    }

    pub(super) fn num_awaiting_join(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.awaiting_join.is_some())
            .count()
    }

    pub(super) fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.num_awaiting_join() && self.pending_members.is_empty()
    }

    /// The longest rebalance timeout of any member: how long a join phase may take.
    pub(super) fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    pub(super) fn add_member(&mut self, member: Member) {
        if let Some(instance_id) = &member.instance_id {
            self.static_members
                .insert(instance_id.clone(), member.id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        self.pending_members.remove(&member.id);
        self.members.insert(member.id.clone(), member);
    }

    /// Removes a member (or a pending member). A parked JoinGroup is answered
    /// UNKNOWN_MEMBER_ID so the client rejoins if it is still alive, as Kafka does; a parked
    /// SyncGroup (never parked by Kafka's removal paths) gets the same so no token is lost.
    pub(super) fn remove_member(&mut self, member_id: &MemberId, ctx: &mut Ctx<'_>) {
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
        let Some(member) = self.members.remove(member_id) else {
            return;
        };
        if let Some(token) = member.awaiting_join {
            let result =
                JoinGroupResult::error(MemberId::default(), ResponseError::UnknownMemberId);
            ctx.respond_join(token, result);
        }
        if let Some(token) = member.awaiting_sync {
            ctx.respond_sync(
                token,
                SyncGroupResult::error(ResponseError::UnknownMemberId),
            );
        }
        if let Some(instance_id) = &member.instance_id {
            self.static_members.remove(instance_id);
        }
        if self.is_leader(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
    }

    /// Gives a static member a new member id. Requests parked under the old id are fenced.
    pub(super) fn replace_static_member(
        &mut self,
        instance_id: &InstanceId,
        old_id: &MemberId,
        new_id: &MemberId,
        ctx: &mut Ctx<'_>,
    ) {
        let Some(mut member) = self.members.remove(old_id) else {
            return;
        };
        if let Some(token) = member.awaiting_join.take() {
            let result = JoinGroupResult::error(old_id.clone(), ResponseError::FencedInstanceId);
            ctx.respond_join(token, result);
        }
        if let Some(token) = member.awaiting_sync.take() {
            ctx.respond_sync(
                token,
                SyncGroupResult::error(ResponseError::FencedInstanceId),
            );
        }
        member.id = new_id.clone();
        self.members.insert(new_id.clone(), member);
        if self.is_leader(old_id) {
            self.leader = Some(new_id.clone());
        }
        // Kafka leaves the old id in the pending-sync set, so a replacement between the
        // leader's and this member's SyncGroup would later "expire" the old id and force a
        // rebalance; the new id inherits the obligation instead.
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        self.static_members
            .insert(instance_id.clone(), new_id.clone());
    }

    /// Kafka's `validateMember`: the instance id, if given, must map to `member_id`
    /// (FENCED_INSTANCE_ID if it maps to another, UNKNOWN_MEMBER_ID if to none), and the member
    /// must exist.
    pub(super) fn validate_member(
        &self,
        member_id: &MemberId,
        instance_id: Option<&InstanceId>,
    ) -> Result<(), ResponseError> {
        if let Some(instance_id) = instance_id {
            match self.static_members.get(instance_id) {
                None => return Err(ResponseError::UnknownMemberId),
                Some(current) if current != member_id => {
                    return Err(ResponseError::FencedInstanceId);
                }
                Some(_) => {}
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(ResponseError::UnknownMemberId)
        }
    }

    /// [`Self::validate_member`], then the generation must be the group's
    /// (ILLEGAL_GENERATION): how an offset commit that names its member is checked.
    pub(super) fn validate_member_generation(
        &self,
        member_id: &MemberId,
        instance_id: Option<&InstanceId>,
        generation: GenerationId,
    ) -> Result<(), ResponseError> {
        self.validate_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    fn protocol_support(&self, protocol: &str) -> usize {
        self.members
            .values()
            .filter(|m| m.supports(protocol))
            .count()
    }

    /// Whether a member of `protocol_type` supporting `protocols` may join: an Empty group
    /// takes any non-empty type and protocol list; otherwise the type must match and one of
    /// the protocols must be supported by every current member.
    pub(super) fn supports_protocols<'a>(
        &self,
        protocol_type: &str,
        mut protocols: impl Iterator<Item = &'a str>,
    ) -> bool {
        if self.state == GroupState::Empty {
            return !protocol_type.is_empty() && protocols.next().is_some();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.any(|p| self.protocol_support(p) == self.members.len())
    }

    /// Kafka's `selectProtocol`: among the protocols every member supports, each member votes
    /// for its most preferred one and the most votes win. Ties (arbitrary in Kafka) go to the
    /// protocol voted for first in member id order.
    pub(super) fn select_protocol(&self) -> Option<String> {
        let candidates: BTreeSet<&str> = self
            .members
            .values()
            .flat_map(|m| m.protocols.iter().map(|p| p.name.as_str()))
            .filter(|name| self.protocol_support(name) == self.members.len())
            .collect();
        let mut votes: Vec<(&str, usize)> = Vec::new();
        for member in self.members.values() {
            let Some(vote) = member.vote(&candidates) else {
                continue;
            };
            match votes.iter_mut().find(|(name, _)| *name == vote) {
                Some((_, count)) => *count += 1,
                None => votes.push((vote, 1)),
            }
        }
        let best = votes.iter().map(|&(_, count)| count).max()?;
        votes
            .iter()
            .find(|&&(_, count)| count == best)
            .map(|&(name, _)| name.to_owned())
    }

    pub(super) fn uses_consumer_protocol(&self) -> bool {
        self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE)
    }

    /// Kafka's `computeSubscribedTopics`: known only for consumer groups — empty without
    /// members, else the union of the members' subscriptions, `None` if one is unreadable.
    /// Subscriptions are read as version 0, the prefix of every later version.
    pub(super) fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if !self.uses_consumer_protocol() {
            return None;
        }
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for member in self.members.values() {
            topics.extend(records::subscription_topics(&member.metadata(protocol))?);
        }
        Some(topics)
    }

    /// Whether OffsetDelete and expiry must spare `topic`. When the subscriptions are unknown,
    /// consumer groups count as subscribed, other groups as not.
    pub(super) fn is_subscribed_to_topic(&self, topic: &str) -> bool {
        match &self.subscribed_topics {
            Some(topics) => topics.contains(topic),
            None => self.uses_consumer_protocol(),
        }
    }

    /// Every member's metadata for the selected protocol, for the leader's JoinGroup response.
    pub(super) fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }

    /// The JoinGroup response of the current generation for `member_id`.
    pub(super) fn join_result(&self, member_id: &MemberId, with_members: bool) -> JoinGroupResult {
        JoinGroupResult {
            error: None,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment: false,
            member_id: member_id.clone(),
            members: if with_members {
                self.joined_members()
            } else {
                Vec::new()
            },
        }
    }

    /// The GroupMetadataValue Kafka writes for the group with `assignment` (members missing
    /// from it get an empty assignment).
    pub(super) fn metadata_value(
        &self,
        assignment: &BTreeMap<MemberId, Bytes>,
    ) -> GroupMetadataValue {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation.0,
            protocol: self.protocol_name.clone(),
            leader: self.leader.as_ref().map(|l| l.0.clone()),
            current_state_timestamp: self.state_timestamp.unwrap_or(-1),
            members: self
                .members
                .values()
                .map(|m| MemberMetadataValue {
                    member_id: m.id.0.clone(),
                    group_instance_id: m.instance_id.as_ref().map(|i| i.0.clone()),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout_ms,
                    session_timeout: m.session_timeout_ms,
                    subscription: m.metadata(protocol),
                    assignment: assignment.get(&m.id).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// The members' current assignments.
    pub(super) fn current_assignment(&self) -> BTreeMap<MemberId, Bytes> {
        self.members
            .values()
            .map(|m| (m.id.clone(), m.assignment.clone()))
            .collect()
    }

    pub(super) fn timer_deadline(&self, timer: &Timer) -> Option<i64> {
        match timer {
            Timer::PendingMember(id) => self.pending_members.get(id).copied(),
            Timer::Session(id) => self.members.get(id).and_then(|m| m.session_deadline),
            Timer::Join => self.join_timer.map(JoinTimer::deadline),
            Timer::Sync => self.sync_timer.map(|t| t.deadline),
        }
    }

    fn timers(&self) -> impl Iterator<Item = (i64, Timer)> + '_ {
        let pending = self
            .pending_members
            .iter()
            .map(|(id, &deadline)| (deadline, Timer::PendingMember(id.clone())));
        let sessions = self.members.values().filter_map(|m| {
            m.session_deadline
                .map(|d| (d, Timer::Session(m.id.clone())))
        });
        let join = self.join_timer.map(|t| (t.deadline(), Timer::Join));
        let sync = self.sync_timer.map(|t| (t.deadline, Timer::Sync));
        pending.chain(sessions).chain(join).chain(sync)
    }

    pub(super) fn next_deadline(&self) -> Option<i64> {
        // Without `timers()`: this runs after every event and need not clone member ids.
        let pending = self.pending_members.values().copied();
        let sessions = self.members.values().filter_map(|m| m.session_deadline);
        let join = self.join_timer.map(JoinTimer::deadline);
        let sync = self.sync_timer.map(|t| t.deadline);
        pending.chain(sessions).chain(join).chain(sync).min()
    }

    /// Timers due at `now`, earliest first.
    pub(super) fn due_timers(&self, now: i64) -> Vec<(i64, Timer)> {
        let mut due: Vec<(i64, Timer)> = self.timers().filter(|(d, _)| *d <= now).collect();
        due.sort();
        due
    }
}
