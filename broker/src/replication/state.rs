//! [`ReplicaState`]: one partition's replication state on this broker and the rules that move
//! it, as Kafka's `Partition` keeps them: the role (leader or follower), the leader and
//! partition epochs, and on a leader the ISR (with at most one AlterPartition in flight) and
//! what it has seen of each follower.
//!
//! A plain struct driven by events — metadata applied, a follower's fetch, a tick, the
//! controller's answer to an ISR change — with no I/O and no clock: callers pass the log's
//! offsets and the time in milliseconds.
//!
//! Invariants:
//! - epochs never go back: a partition state older than the one applied is ignored, and the
//!   same `(leader epoch, partition epoch)` again changes nothing;
//! - at most one ISR change is pending; while it is, the *maximal* ISR (the committed ISR plus
//!   a replica being added; for a shrink, the committed ISR) decides the high watermark and
//!   acks=all, so a change the controller refuses never lets either run ahead (KIP-497);
//! - the high watermark proposed never decreases and never passes the leader's log end.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use weir_controller::{BrokerId, BrokerInfo, PartitionState};

use crate::types::Offset;

/// Brokers that may join an ISR (Kafka's `isReplicaIsrEligible`): registered, not fenced and
/// not in controlled shutdown, with the broker epoch each registered with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EligibleBrokers(BTreeMap<BrokerId, i64>);

impl EligibleBrokers {
    pub fn from_metadata(brokers: &BTreeMap<BrokerId, BrokerInfo>) -> EligibleBrokers {
        EligibleBrokers(
            brokers
                .values()
                .filter(|b| !b.fenced && !b.in_controlled_shutdown)
                .map(|b| (b.id, b.epoch.0))
                .collect(),
        )
    }

    /// The registered epoch of an eligible broker.
    pub fn epoch(&self, broker: BrokerId) -> Option<i64> {
        self.0.get(&broker).copied()
    }
}

impl FromIterator<(BrokerId, i64)> for EligibleBrokers {
    fn from_iter<I: IntoIterator<Item = (BrokerId, i64)>>(iter: I) -> Self {
        EligibleBrokers(iter.into_iter().collect())
    }
}

/// What applying a partition state did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The same epochs again: nothing changed.
    Unchanged,
    /// Older than what was applied already: ignored.
    Stale,
    /// This broker leads in a new leader epoch. The log's epoch cache must record `epoch`
    /// starting at `start_offset` before anything else is appended (Kafka's
    /// `assignEpochStartOffset`), so followers asking about the new epoch learn where it starts.
    NewLeaderEpoch { epoch: i32, start_offset: Offset },
    /// Still the leader in the same epoch; replicas or ISR changed. `committed` is the pending
    /// ISR change when the new ISR is the one it proposed (the metadata arrived before the
    /// controller's answer).
    LeaderUpdated { committed: Option<IsrChange> },
    /// Follows `leader` (none: no leader, nothing to fetch) in a new leader epoch. The
    /// follower truncates by leader epoch before it fetches again.
    NewFollowerEpoch {
        leader: Option<BrokerId>,
        epoch: i32,
    },
    /// Still a follower in the same leader epoch; replicas changed.
    FollowerUpdated,
}

/// An ISR change the leader asks the controller to commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsrProposal {
    /// Tells this proposal's answer from a later one's.
    pub id: u64,
    pub change: IsrChange,
    pub leader_epoch: i32,
    /// The partition epoch the proposal is based on.
    pub partition_epoch: i32,
    pub new_isr: Vec<BrokerId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IsrChange {
    Expand(BrokerId),
    Shrink(Vec<BrokerId>),
}

/// What to do after the controller refused an ISR change (Kafka's
/// `handleAlterPartitionError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsrFailure {
    /// The controller did not apply it and the partition epoch is right: back to the
    /// committed ISR, free to propose again.
    Reset,
    /// Stale epochs or an unknown partition: stay pending until newer metadata arrives.
    AwaitMetadata,
    /// Anything else (the controller unreachable, say): send the same proposal again.
    Retry,
    /// Not the pending proposal (already answered, or the metadata moved on).
    Ignored,
}

/// A follower fetch as the leader records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerFetch {
    pub replica: BrokerId,
    /// The fetching broker's epoch (Fetch v15+), -1 when not sent.
    pub broker_epoch: i64,
    /// The fetch offset: the follower's log end offset.
    pub fetch_offset: Offset,
    /// The leader's log end offset when the fetch was read.
    pub leader_log_end: Offset,
    pub now_ms: i64,
}

/// Why a follower fetch cannot be recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FollowerFetchError {
    #[error("this broker does not lead the partition")]
    NotLeader,
    #[error("broker {0} is not a replica of the partition")]
    UnknownReplica(BrokerId),
    #[error("fetch from broker {replica} carries broker epoch {sent}, older than {seen}")]
    StaleBrokerEpoch {
        replica: BrokerId,
        sent: i64,
        seen: i64,
    },
}

/// What recording a follower fetch changed on the leader.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FollowerFetchOutcome {
    /// The new high watermark, when it moved.
    pub high_watermark: Option<Offset>,
    /// An ISR expansion to send to the controller.
    pub proposal: Option<IsrProposal>,
}

/// Why an acks=all append is refused before it is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppendRefusal {
    #[error("this broker does not lead the partition")]
    NotLeader,
    #[error(
        "the ISR has {isr} replica(s), fewer than min.insync.replicas ({required}) an acks=all write needs"
    )]
    NotEnoughReplicas { isr: usize, required: usize },
}

/// Where an acks=all write stands (Kafka's `checkEnoughReplicasReachOffset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckProgress {
    /// The high watermark has not reached the write yet.
    Waiting,
    /// Replicated to the ISR.
    Done,
    /// The high watermark passed the write, but with fewer in-sync replicas than
    /// min.insync.replicas.
    NotEnoughReplicasAfterAppend,
    /// This broker no longer leads the partition.
    NotLeader,
}

/// The role of this broker for the partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Leader,
    /// Follows the leader, if the partition has one.
    Follower(Option<BrokerId>),
}

/// What the leader knows of one follower (Kafka's `Replica` state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FollowerProgress {
    /// The follower's log end offset as of its last fetch; `None` until it fetched from this
    /// leader.
    log_end: Option<Offset>,
    /// The leader's log end offset at the follower's previous fetch.
    last_fetch_leader_log_end: Option<Offset>,
    last_fetch_ms: i64,
    /// When the follower last reached the leader's log end (as of a fetch); 0 for never.
    last_caught_up_ms: i64,
    /// The broker epoch of its last fetch (-1 when the fetch carried none).
    broker_epoch: Option<i64>,
}

impl FollowerProgress {
    fn new() -> FollowerProgress {
        FollowerProgress {
            log_end: None,
            last_fetch_leader_log_end: None,
            last_fetch_ms: 0,
            last_caught_up_ms: 0,
            broker_epoch: None,
        }
    }

    /// Kafka's `resetReplicaState` for a new leader epoch. A broker that was not leading
    /// forgets what it knew; in-sync followers count as caught up now, the rest as never.
    fn reset(&mut self, now_ms: i64, leader_log_end: Offset, new_leader: bool, in_sync: bool) {
        let caught_up = if in_sync { now_ms } else { 0 };
        if new_leader {
            *self = FollowerProgress {
                last_caught_up_ms: caught_up,
                ..FollowerProgress::new()
            };
        } else {
            self.last_fetch_leader_log_end = Some(leader_log_end);
            self.last_fetch_ms = caught_up;
            self.last_caught_up_ms = caught_up;
        }
    }

    /// Kafka's `updateFetchStateOrThrow`: a fetch at or past the leader's log end means caught
    /// up now; one at or past the leader's log end of the previous fetch means caught up as of
    /// that previous fetch.
    fn record(&mut self, fetch: &FollowerFetch) {
        if fetch.fetch_offset >= fetch.leader_log_end {
            self.last_caught_up_ms = self.last_caught_up_ms.max(fetch.now_ms);
        } else if self
            .last_fetch_leader_log_end
            .is_none_or(|previous| fetch.fetch_offset >= previous)
        {
            self.last_caught_up_ms = self.last_caught_up_ms.max(self.last_fetch_ms);
        }
        self.log_end = Some(fetch.fetch_offset);
        self.last_fetch_leader_log_end = Some(fetch.leader_log_end);
        self.last_fetch_ms = fetch.now_ms;
        self.broker_epoch = Some(fetch.broker_epoch);
    }

    /// Kafka's `isCaughtUp`: at the leader's log end, or caught up within the lag limit.
    fn is_caught_up(&self, leader_log_end: Offset, now_ms: i64, lag_time_max_ms: i64) -> bool {
        self.log_end == Some(leader_log_end)
            || now_ms.saturating_sub(self.last_caught_up_ms) <= lag_time_max_ms
    }
}

/// The ISR as a leader holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Isr {
    Committed(Vec<BrokerId>),
    Pending {
        committed: Vec<BrokerId>,
        proposal: IsrProposal,
    },
}

impl Isr {
    fn committed(&self) -> &[BrokerId] {
        match self {
            Isr::Committed(isr) | Isr::Pending { committed: isr, .. } => isr,
        }
    }

    /// The larger of the committed and the proposed ISR: an expansion counts its new member
    /// at once; a shrink counts only once committed.
    fn maximal_contains(&self, broker: BrokerId) -> bool {
        match self {
            Isr::Pending {
                proposal:
                    IsrProposal {
                        change: IsrChange::Expand(added),
                        ..
                    },
                ..
            } if *added == broker => true,
            _ => self.committed().contains(&broker),
        }
    }

    fn maximal_len(&self) -> usize {
        match self {
            Isr::Pending {
                committed,
                proposal:
                    IsrProposal {
                        change: IsrChange::Expand(added),
                        ..
                    },
            } if !committed.contains(added) => committed.len() + 1,
            _ => self.committed().len(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Leadership {
    isr: Isr,
    /// The leader's log end offset when its epoch began: a follower joins the ISR only once
    /// it has everything of the previous epochs.
    epoch_start_offset: Offset,
    followers: BTreeMap<BrokerId, FollowerProgress>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum RoleState {
    Leader(Leadership),
    Follower { leader: Option<BrokerId> },
}

/// One partition's replication state on this broker. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaState {
    me: BrokerId,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<BrokerId>,
    /// Replicas a reassignment is removing; they do not count towards the replication factor.
    removing: Vec<BrokerId>,
    role: RoleState,
    eligible: EligibleBrokers,
    /// `replica.lag.time.max.ms`
    lag_time_max_ms: i64,
    /// The topic's `min.insync.replicas`.
    min_insync_replicas: usize,
    next_proposal: u64,
}

impl ReplicaState {
    /// A replica that has applied no metadata yet: a follower of nobody, below every epoch.
    pub fn new(me: BrokerId, lag_time_max_ms: i64) -> ReplicaState {
        ReplicaState {
            me,
            leader_epoch: -1,
            partition_epoch: -1,
            replicas: Vec::new(),
            removing: Vec::new(),
            role: RoleState::Follower { leader: None },
            eligible: EligibleBrokers::default(),
            lag_time_max_ms,
            min_insync_replicas: 1,
            next_proposal: 0,
        }
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    pub fn role(&self) -> Role {
        match &self.role {
            RoleState::Leader(_) => Role::Leader,
            RoleState::Follower { leader } => Role::Follower(*leader),
        }
    }

    pub fn replicas(&self) -> &[BrokerId] {
        &self.replicas
    }

    /// The committed ISR as the leader knows it; empty on a follower (Kafka's followers keep
    /// none).
    pub fn isr(&self) -> &[BrokerId] {
        match &self.role {
            RoleState::Leader(lead) => lead.isr.committed(),
            RoleState::Follower { .. } => &[],
        }
    }

    /// The ISR change waiting for the controller, if any.
    pub fn pending_proposal(&self) -> Option<&IsrProposal> {
        match &self.role {
            RoleState::Leader(Leadership {
                isr: Isr::Pending { proposal, .. },
                ..
            }) => Some(proposal),
            _ => None,
        }
    }

    /// The offset where the current leader epoch began, on a leader.
    pub fn epoch_start_offset(&self) -> Option<Offset> {
        match &self.role {
            RoleState::Leader(lead) => Some(lead.epoch_start_offset),
            RoleState::Follower { .. } => None,
        }
    }

    /// Whether `broker` is another replica this leader tracks.
    pub fn is_follower(&self, broker: BrokerId) -> bool {
        matches!(&self.role, RoleState::Leader(lead) if lead.followers.contains_key(&broker))
    }

    pub fn set_lag_time_max_ms(&mut self, ms: i64) {
        self.lag_time_max_ms = ms;
    }

    pub fn set_min_insync_replicas(&mut self, n: usize) {
        self.min_insync_replicas = n.max(1);
    }

    pub fn set_eligible_brokers(&mut self, eligible: EligibleBrokers) {
        self.eligible = eligible;
    }

    /// Kafka's effective min ISR: `min.insync.replicas`, but never more than the replicas.
    fn effective_min_isr(&self) -> usize {
        self.min_insync_replicas.min(self.replicas.len().max(1))
    }

    /// A leader whose assigned replicas are fewer than its replication factor wants.
    pub fn is_under_replicated(&self) -> bool {
        match &self.role {
            RoleState::Leader(lead) => {
                let factor = self.replicas.len() - self.removing.len().min(self.replicas.len());
                lead.isr.committed().len() < factor
            }
            RoleState::Follower { .. } => false,
        }
    }

    /// Applies the partition's state from the metadata (Kafka's `makeLeader` /
    /// `makeFollower`). `leader_log_end` is the local log end offset, `now_ms` the time.
    pub fn apply(
        &mut self,
        partition: &PartitionState,
        leader_log_end: Offset,
        now_ms: i64,
    ) -> Transition {
        if partition.partition_epoch < self.partition_epoch
            || partition.leader_epoch < self.leader_epoch
        {
            return Transition::Stale;
        }
        if partition.partition_epoch == self.partition_epoch
            && partition.leader_epoch == self.leader_epoch
        {
            return Transition::Unchanged;
        }
        let new_epoch = partition.leader_epoch > self.leader_epoch;
        self.replicas = partition.replicas.clone();
        self.removing = partition.removing_replicas.clone();
        self.leader_epoch = partition.leader_epoch;
        self.partition_epoch = partition.partition_epoch;
        if partition.leader == Some(self.me) {
            self.make_leader(partition, new_epoch, leader_log_end, now_ms)
        } else {
            let was_leader = matches!(self.role, RoleState::Leader(_));
            self.role = RoleState::Follower {
                leader: partition.leader,
            };
            if new_epoch || was_leader {
                Transition::NewFollowerEpoch {
                    leader: partition.leader,
                    epoch: partition.leader_epoch,
                }
            } else {
                Transition::FollowerUpdated
            }
        }
    }

    fn make_leader(
        &mut self,
        partition: &PartitionState,
        new_epoch: bool,
        leader_log_end: Offset,
        now_ms: i64,
    ) -> Transition {
        let previous = std::mem::replace(&mut self.role, RoleState::Follower { leader: None });
        let (was_leader, mut followers, epoch_start, pending) = match previous {
            RoleState::Leader(lead) => {
                let pending = match lead.isr {
                    Isr::Pending { proposal, .. } => Some(proposal),
                    Isr::Committed(_) => None,
                };
                (true, lead.followers, lead.epoch_start_offset, pending)
            }
            RoleState::Follower { .. } => (false, BTreeMap::new(), leader_log_end, None),
        };
        followers.retain(|id, _| partition.replicas.contains(id));
        for &id in partition.replicas.iter().filter(|&&id| id != self.me) {
            followers.entry(id).or_insert_with(FollowerProgress::new);
        }
        // A broker that becomes leader without a new epoch (which a consistent controller
        // never publishes) is still treated as starting one, so its followers restart clean.
        let starts_epoch = new_epoch || !was_leader;
        if starts_epoch {
            for (id, follower) in &mut followers {
                let in_sync = partition.isr.contains(id);
                follower.reset(now_ms, leader_log_end, !was_leader, in_sync);
            }
        }
        self.role = RoleState::Leader(Leadership {
            isr: Isr::Committed(partition.isr.clone()),
            epoch_start_offset: if starts_epoch {
                leader_log_end
            } else {
                epoch_start
            },
            followers,
        });
        if starts_epoch {
            Transition::NewLeaderEpoch {
                epoch: partition.leader_epoch,
                start_offset: leader_log_end,
            }
        } else {
            let same_set = |a: &[BrokerId], b: &[BrokerId]| {
                a.len() == b.len() && a.iter().all(|id| b.contains(id))
            };
            let committed = pending
                .filter(|p| same_set(&p.new_isr, &partition.isr))
                .map(|p| p.change);
            Transition::LeaderUpdated { committed }
        }
    }

    fn is_eligible(&self, broker: BrokerId, follower: &FollowerProgress) -> bool {
        let Some(registered) = self.eligible.epoch(broker) else {
            return false;
        };
        match follower.broker_epoch {
            Some(-1) => true,
            Some(sent) => sent == registered,
            None => false,
        }
    }

    /// The high watermark the leader may move to (Kafka's `maybeIncrementLeaderHW`): the
    /// smallest log end offset among the leader, the maximal ISR, and followers that are
    /// caught up and eligible though not in the ISR yet (so a follower catching up under load
    /// can reach the high watermark and rejoin). `None` when such a replica has not fetched
    /// from this leader yet, or this broker does not lead.
    fn high_watermark_bound(&self, leader_log_end: Offset, now_ms: i64) -> Option<Offset> {
        let RoleState::Leader(lead) = &self.role else {
            return None;
        };
        let mut bound = leader_log_end;
        for (&id, follower) in &lead.followers {
            let holds = lead.isr.maximal_contains(id)
                || (follower.is_caught_up(leader_log_end, now_ms, self.lag_time_max_ms)
                    && self.is_eligible(id, follower));
            if holds {
                bound = bound.min(follower.log_end?);
            }
        }
        Some(bound)
    }

    /// The new high watermark when it can move past `current_hw`.
    pub fn advance_high_watermark(
        &self,
        leader_log_end: Offset,
        current_hw: Offset,
        now_ms: i64,
    ) -> Option<Offset> {
        self.high_watermark_bound(leader_log_end, now_ms)
            .filter(|&hw| hw > current_hw)
    }

    /// Records a follower's fetch on the leader: its progress, then an ISR expansion if it
    /// caught up, then the high watermark if its log end moved.
    pub fn follower_fetched(
        &mut self,
        fetch: FollowerFetch,
        current_hw: Offset,
    ) -> Result<FollowerFetchOutcome, FollowerFetchError> {
        let RoleState::Leader(lead) = &mut self.role else {
            return Err(FollowerFetchError::NotLeader);
        };
        let follower = lead
            .followers
            .get_mut(&fetch.replica)
            .ok_or(FollowerFetchError::UnknownReplica(fetch.replica))?;
        if let Some(seen) = follower.broker_epoch
            && fetch.broker_epoch != -1
            && seen > fetch.broker_epoch
        {
            return Err(FollowerFetchError::StaleBrokerEpoch {
                replica: fetch.replica,
                sent: fetch.broker_epoch,
                seen,
            });
        }
        let previous_log_end = follower.log_end;
        follower.record(&fetch);
        let moved = previous_log_end != follower.log_end;
        let proposal = self.maybe_expand_isr(fetch.replica, current_hw);
        let high_watermark = if moved {
            self.advance_high_watermark(fetch.leader_log_end, current_hw, fetch.now_ms)
        } else {
            None
        };
        Ok(FollowerFetchOutcome {
            high_watermark,
            proposal,
        })
    }

    /// Kafka's `maybeExpandIsr`: a follower outside the ISR that is eligible and has reached
    /// both the high watermark and the start of the leader's epoch is proposed for the ISR.
    fn maybe_expand_isr(&mut self, replica: BrokerId, current_hw: Offset) -> Option<IsrProposal> {
        let RoleState::Leader(lead) = &self.role else {
            return None;
        };
        let Isr::Committed(committed) = &lead.isr else {
            return None;
        };
        let follower = lead.followers.get(&replica)?;
        let log_end = follower.log_end?;
        let joins = !committed.contains(&replica)
            && self.is_eligible(replica, follower)
            && log_end >= current_hw
            && log_end >= lead.epoch_start_offset;
        if !joins {
            return None;
        }
        let mut new_isr = committed.clone();
        new_isr.push(replica);
        Some(self.propose(IsrChange::Expand(replica), new_isr))
    }

    /// Kafka's `maybeShrinkIsr`, run periodically on a leader: followers in the ISR that have
    /// not caught up within `replica.lag.time.max.ms` are proposed for removal.
    pub fn maybe_shrink_isr(&mut self, leader_log_end: Offset, now_ms: i64) -> Option<IsrProposal> {
        let RoleState::Leader(lead) = &self.role else {
            return None;
        };
        let Isr::Committed(committed) = &lead.isr else {
            return None;
        };
        let out_of_sync: Vec<BrokerId> = committed
            .iter()
            .copied()
            .filter(|&id| id != self.me)
            .filter(|id| {
                lead.followers
                    .get(id)
                    .is_none_or(|f| !f.is_caught_up(leader_log_end, now_ms, self.lag_time_max_ms))
            })
            .collect();
        if out_of_sync.is_empty() {
            return None;
        }
        let new_isr = committed
            .iter()
            .copied()
            .filter(|id| !out_of_sync.contains(id))
            .collect();
        Some(self.propose(IsrChange::Shrink(out_of_sync), new_isr))
    }

    /// Makes `change` the pending ISR change.
    fn propose(&mut self, change: IsrChange, new_isr: Vec<BrokerId>) -> IsrProposal {
        self.next_proposal += 1;
        let proposal = IsrProposal {
            id: self.next_proposal,
            change,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            new_isr,
        };
        if let RoleState::Leader(lead) = &mut self.role {
            let committed = lead.isr.committed().to_vec();
            lead.isr = Isr::Pending {
                committed,
                proposal: proposal.clone(),
            };
        }
        proposal
    }

    /// The controller committed proposal `id`: `committed` is the partition as it now stands.
    /// Returns the change that took effect, or `None` when the answer no longer applies
    /// (another proposal or newer metadata came first, or it names another leader epoch).
    pub fn isr_committed(&mut self, id: u64, committed: &PartitionState) -> Option<IsrChange> {
        let RoleState::Leader(lead) = &mut self.role else {
            return None;
        };
        let Isr::Pending { proposal, .. } = &lead.isr else {
            return None;
        };
        if proposal.id != id
            || committed.leader_epoch != self.leader_epoch
            || committed.partition_epoch < self.partition_epoch
        {
            return None;
        }
        let change = proposal.change.clone();
        lead.isr = Isr::Committed(committed.isr.clone());
        // The commit may also have finished a reassignment (the controller completes one in
        // the same commit as the ISR change that brings its last replica in sync). Then the
        // replica set changed as well, which only the metadata image applies in full (the
        // followers of removed replicas go); keeping the old partition epoch makes sure that
        // image is not taken for one already applied.
        if committed.replicas == self.replicas && committed.removing_replicas == self.removing {
            self.partition_epoch = committed.partition_epoch;
        }
        Some(change)
    }

    /// The controller refused proposal `id` with Kafka error `code`.
    pub fn isr_failed(&mut self, id: u64, code: i16) -> IsrFailure {
        let RoleState::Leader(lead) = &mut self.role else {
            return IsrFailure::Ignored;
        };
        let Isr::Pending {
            committed,
            proposal,
        } = &lead.isr
        else {
            return IsrFailure::Ignored;
        };
        if proposal.id != id {
            return IsrFailure::Ignored;
        }
        let reset = [
            ResponseError::OperationNotAttempted.code(),
            ResponseError::IneligibleReplica.code(),
        ];
        let await_metadata = [
            ResponseError::UnknownTopicOrPartition.code(),
            ResponseError::UnknownTopicId.code(),
            ResponseError::FencedLeaderEpoch.code(),
            ResponseError::InvalidUpdateVersion.code(),
            ResponseError::InvalidRequest.code(),
            ResponseError::NewLeaderElected.code(),
        ];
        if reset.contains(&code) {
            lead.isr = Isr::Committed(committed.clone());
            IsrFailure::Reset
        } else if await_metadata.contains(&code) {
            IsrFailure::AwaitMetadata
        } else {
            IsrFailure::Retry
        }
    }

    /// Checks an append before it is written (Kafka's `appendRecordsToLeader`): only the
    /// leader appends, and an acks=all write needs a committed ISR of at least
    /// `min.insync.replicas` (capped at the replica count).
    pub fn check_append(&self, acks_all: bool) -> Result<(), AppendRefusal> {
        let RoleState::Leader(lead) = &self.role else {
            return Err(AppendRefusal::NotLeader);
        };
        let isr = lead.isr.committed().len();
        let required = self.effective_min_isr();
        if acks_all && isr < required {
            return Err(AppendRefusal::NotEnoughReplicas { isr, required });
        }
        Ok(())
    }

    /// Whether an acks=all write ending before `required_offset` (its last offset + 1) is
    /// replicated, given the current high watermark.
    pub fn ack_progress(&self, required_offset: Offset, high_watermark: Offset) -> AckProgress {
        let RoleState::Leader(lead) = &self.role else {
            return AckProgress::NotLeader;
        };
        if high_watermark < required_offset {
            AckProgress::Waiting
        } else if lead.isr.maximal_len() < self.effective_min_isr() {
            AckProgress::NotEnoughReplicasAfterAppend
        } else {
            AckProgress::Done
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
