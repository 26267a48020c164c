//! The context one event runs in: the time, the config, and where effects and parked writes
//! go. Group methods take a `Ctx` instead of reaching into the coordinator, so a group is
//! borrowed mutably next to the coordinator's other state.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::api::{
    Effect, JoinGroupResult, OffsetCommitResult, Protocol, Response, SyncGroupResult, TxnProducer,
};
use super::config::GroupConfig;
use super::ids::{GenerationId, GroupId, InstanceId, MemberId, PersistId, RequestToken};
use super::offsets::OffsetAndMetadata;
use super::records::OffsetsRecord;
use crate::types::TopicPartition;

/// Counters behind the coordinator's metrics.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Stats {
    /// Kafka's `group-completed-rebalance-count`: a leader's assignment was stored.
    pub(super) completed_rebalances: u64,
    /// Times a group entered PreparingRebalance.
    pub(super) started_rebalances: u64,
}

/// What to do when a [`Effect::Persist`] completes. Writes without a waiter (an Empty group's
/// metadata, tombstones) are not tracked: Kafka only logs their failure.
#[derive(Clone, Debug)]
pub(super) enum PendingWrite {
    /// The leader's SyncGroup: on success the generation's assignment is installed and the
    /// group becomes Stable.
    SyncAssignment {
        group: GroupId,
        generation: GenerationId,
        assignment: BTreeMap<MemberId, Bytes>,
    },
    /// A static member rejoined with a new member id and replaced its old one without a
    /// rebalance; its JoinGroup is answered once the new member id is stored.
    StaticReplace(StaticReplace),
    /// Offsets are visible to OffsetFetch, and the commit is acknowledged, only once stored.
    OffsetCommit {
        group: GroupId,
        token: RequestToken,
        offsets: Vec<(TopicPartition, OffsetAndMetadata)>,
        response: OffsetCommitResult,
    },
    /// A TxnOffsetCommit: once stored, the offsets are pending for the producer's
    /// transaction (not visible until it commits), and the request is answered.
    TxnOffsetCommit {
        group: GroupId,
        token: RequestToken,
        producer_id: i64,
        partitions: Vec<TopicPartition>,
        response: OffsetCommitResult,
    },
}

/// What is needed to answer a replaced static member's JoinGroup, or to undo the
/// replacement if its write fails.
#[derive(Clone, Debug)]
pub(super) struct StaticReplace {
    pub(super) group: GroupId,
    pub(super) token: RequestToken,
    pub(super) instance_id: InstanceId,
    pub(super) old_member_id: MemberId,
    pub(super) new_member_id: MemberId,
    pub(super) old_protocols: Vec<Protocol>,
    pub(super) old_rebalance_timeout_ms: i32,
    pub(super) old_session_timeout_ms: i32,
    /// The leader when the member was replaced; pre-v9 clients are told this one so a
    /// restarted static leader does not run an assignment a Stable group would ignore.
    pub(super) leader_before: MemberId,
    pub(super) supports_skip_assignment: bool,
}

#[derive(Debug, Default)]
pub(super) struct PendingWrites {
    next_id: u64,
    pub(super) waiting: HashMap<PersistId, PendingWrite>,
}

pub(super) struct Ctx<'a> {
    pub(super) now: i64,
    pub(super) config: &'a GroupConfig,
    pub(super) effects: &'a mut Vec<Effect>,
    pub(super) writes: &'a mut PendingWrites,
    pub(super) stats: &'a mut Stats,
}

impl Ctx<'_> {
    pub(super) fn respond(&mut self, token: RequestToken, response: Response) {
        self.effects.push(Effect::Respond { token, response });
    }

    pub(super) fn respond_join(&mut self, token: RequestToken, result: JoinGroupResult) {
        self.respond(token, Response::JoinGroup(result));
    }

    pub(super) fn respond_sync(&mut self, token: RequestToken, result: SyncGroupResult) {
        self.respond(token, Response::SyncGroup(result));
    }

    /// A parked request that the same member replaced with a newer one. Kafka drops the old
    /// request without an answer (its client gave up on it); answering REBALANCE_IN_PROGRESS
    /// keeps every token answered exactly once, and makes a client still waiting rejoin.
    pub(super) fn supersede_join(&mut self, token: RequestToken, member_id: &MemberId) {
        let result = JoinGroupResult::error(member_id.clone(), ResponseError::RebalanceInProgress);
        self.respond_join(token, result);
    }

    pub(super) fn supersede_sync(&mut self, token: RequestToken) {
        self.respond_sync(
            token,
            SyncGroupResult::error(ResponseError::RebalanceInProgress),
        );
    }

    /// Emits a write; `waiter` runs when [`super::GroupCoordinator::persisted`] reports it.
    pub(super) fn persist(
        &mut self,
        group: &GroupId,
        records: Vec<OffsetsRecord>,
        waiter: Option<PendingWrite>,
    ) -> PersistId {
        self.persist_as(group, records, None, waiter)
    }

    /// Emits a write, as `transaction`'s batch when given.
    pub(super) fn persist_as(
        &mut self,
        group: &GroupId,
        records: Vec<OffsetsRecord>,
        transaction: Option<TxnProducer>,
        waiter: Option<PendingWrite>,
    ) -> PersistId {
        let id = PersistId(self.writes.next_id);
        self.writes.next_id += 1;
        if let Some(waiter) = waiter {
            self.writes.waiting.insert(id, waiter);
        }
        self.effects.push(Effect::Persist {
            id,
            group: group.clone(),
            records,
            transaction,
        });
        id
    }

    /// Kafka's member ids: the client id (or the instance id of a static member), a dash and
    /// a random UUID. Randomness, not the clock, keeps ids unique across coordinator moves.
    pub(super) fn new_member_id(&self, prefix: &str) -> MemberId {
        MemberId(format!("{prefix}-{}", uuid::Uuid::new_v4()))
    }
}
