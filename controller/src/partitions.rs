//! The partition state machine: who leads each partition and who is in its ISR, as
//! brokers come, go and drain, as leaders propose ISR changes (AlterPartition) and as
//! administrators elect leaders. Pure functions over [`PartitionState`] and the broker
//! map; the controller plans with them and then commits.
//!
//! The rules are KRaft's (`PartitionChangeBuilder`, `ReplicationControlManager`):
//! - A broker is *live* when it is registered, unfenced and not in controlled
//!   shutdown. Only live brokers are elected leader or join an ISR.
//! - [`settle`] brings a partition in line with its brokers after any change:
//!   1. non-live members leave the ISR where a live one remains (where none does, a
//!      broker in controlled shutdown outranks a fenced one). The ISR is never
//!      emptied: when its last member is fenced it stays, and the partition has no
//!      leader: unavailable, not lossy;
//!   2. a reassignment completes once its target replicas are all in the ISR (see
//!      [`crate::reassignment`]);
//!   3. the leader stays while it is in the ISR and unfenced; otherwise the first
//!      live ISR member in replica order leads; with none, a topic with
//!      `unclean.leader.election.enable` elects the first live replica and makes it
//!      the whole ISR, and any other topic has no leader.
//!
//!   A broker in controlled shutdown so keeps leading exactly the partitions where it
//!   is the last ISR member, and reports them as remaining (as the ZooKeeper-era
//!   controller; KRaft leaves them leaderless). A fenced broker leads nothing.
//! - Epochs are not touched while planning: [`stamp_epochs`] sets them once per
//!   commit by comparing each partition with its committed predecessor, so the leader
//!   epoch grows (by one) exactly when the leader changed, and the partition epoch
//!   exactly when the leader, the ISR or the replica sets changed.

use std::collections::BTreeMap;
use std::fmt;

use crate::ids::BrokerId;
use crate::metadata::{BrokerInfo, ClusterMetadata, PartitionState, TopicMetadata};
use crate::plane::{AlterPartition, PartitionRef};
use crate::reassignment;
use crate::topic_config;

/// Brokers by id, as in [`ClusterMetadata::brokers`].
pub type Brokers = BTreeMap<BrokerId, BrokerInfo>;

const UNCLEAN_LEADER_ELECTION: &str = "unclean.leader.election.enable";

/// What a broker may do for a partition, from its registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReplicaStatus {
    /// Registered, unfenced, not in controlled shutdown: may lead and join ISRs.
    Live,
    /// Unfenced but in controlled shutdown: keeps what it has only as a last resort.
    ShuttingDown,
    Fenced,
    /// No registration (a replica naming a broker the cluster does not know).
    Unregistered,
}

impl fmt::Display for ReplicaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplicaStatus::Live => "live",
            ReplicaStatus::ShuttingDown => "in controlled shutdown",
            ReplicaStatus::Fenced => "fenced",
            ReplicaStatus::Unregistered => "not registered",
        })
    }
}

pub fn replica_status(brokers: &Brokers, id: BrokerId) -> ReplicaStatus {
    match brokers.get(&id) {
        None => ReplicaStatus::Unregistered,
        Some(b) if b.fenced => ReplicaStatus::Fenced,
        Some(b) if b.in_controlled_shutdown => ReplicaStatus::ShuttingDown,
        Some(_) => ReplicaStatus::Live,
    }
}

fn is_live(brokers: &Brokers, id: BrokerId) -> bool {
    replica_status(brokers, id) == ReplicaStatus::Live
}

/// How strongly an ISR member holds on: lower ranks push higher ones out.
fn rank(status: ReplicaStatus) -> u8 {
    match status {
        ReplicaStatus::Live => 0,
        ReplicaStatus::ShuttingDown => 1,
        ReplicaStatus::Fenced | ReplicaStatus::Unregistered => 2,
    }
}

/// Brokers that may host new replicas (live ones), in id order.
pub fn live_brokers(brokers: &Brokers) -> Vec<BrokerInfo> {
    brokers.values().filter(|b| b.is_live()).cloned().collect()
}

/// Whether the topic's overrides enable unclean leader election (default false).
pub fn unclean_election_enabled(topic: &TopicMetadata) -> bool {
    topic_config::effective_value(&topic.configs, UNCLEAN_LEADER_ELECTION)
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
}

/// Why a partition change was refused. Each variant carries the values compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error(
        "leader epoch {requested} is newer than the controller's {current}; this controller may not be the active one"
    )]
    LeaderEpochAhead { requested: i32, current: i32 },
    #[error(
        "partition epoch {requested} is newer than the controller's {current}; this controller may not be the active one"
    )]
    PartitionEpochAhead { requested: i32, current: i32 },
    #[error("leader epoch {requested} is older than the current leader epoch {current}")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    #[error("broker {broker} is not the leader (the leader is {})", show_leader(*leader))]
    NotLeader {
        broker: BrokerId,
        leader: Option<BrokerId>,
    },
    #[error("partition epoch {requested} is older than the current partition epoch {current}")]
    StalePartitionEpoch { requested: i32, current: i32 },
    #[error("the proposed ISR names broker {broker}, which is not a replica")]
    NotAReplica { broker: BrokerId },
    #[error("the proposed ISR names broker {broker} more than once")]
    DuplicateIsrMember { broker: BrokerId },
    #[error(
        "the proposed ISR {} does not include the leader {leader}",
        show_brokers(isr)
    )]
    LeaderNotInIsr {
        leader: BrokerId,
        isr: Vec<BrokerId>,
    },
    #[error("the proposed ISR names broker {broker}, which is {status}")]
    IneligibleReplica {
        broker: BrokerId,
        status: ReplicaStatus,
    },
    #[error("Leader election not needed for topic partition.")]
    ElectionNotNeeded,
    #[error("the preferred leader {preferred} is not live or not in the ISR")]
    PreferredLeaderNotAvailable { preferred: BrokerId },
    #[error("no live replica can lead")]
    EligibleLeadersNotAvailable,
}

fn show_leader(leader: Option<BrokerId>) -> String {
    leader.map_or_else(|| "none".to_owned(), |l| l.to_string())
}

/// `[1, 2, 3]`.
pub(crate) fn show_brokers(brokers: &[BrokerId]) -> String {
    let ids: Vec<String> = brokers.iter().map(BrokerId::to_string).collect();
    format!("[{}]", ids.join(", "))
}

/// A new partition over `replicas`: the live ones form the ISR, the first of them
/// leads (KRaft's `createTopic`). `None` when no replica is live.
pub fn new_partition(
    partition: i32,
    replicas: Vec<BrokerId>,
    brokers: &Brokers,
) -> Option<PartitionState> {
    let isr: Vec<BrokerId> = replicas
        .iter()
        .copied()
        .filter(|&b| is_live(brokers, b))
        .collect();
    let leader = *isr.first()?;
    Some(PartitionState {
        leader: Some(leader),
        isr,
        ..PartitionState::new(partition, replicas)
    })
}

/// The partition after applying the rules in the module docs; epochs untouched.
pub fn settle(partition: &PartitionState, brokers: &Brokers, unclean: bool) -> PartitionState {
    let mut next = partition.clone();
    next.isr = available_isr(&partition.isr, brokers);
    reassignment::complete_if_ready(&mut next);
    elect_if_needed(&mut next, brokers, unclean);
    next
}

/// Settles every partition of every topic (see [`settle`]).
pub fn settle_all(metadata: &mut ClusterMetadata) {
    let brokers = &metadata.brokers;
    for topic in metadata.topics.values_mut() {
        let unclean = unclean_election_enabled(topic);
        for partition in &mut topic.partitions {
            *partition = settle(partition, brokers, unclean);
        }
    }
}

/// Whether [`settle_all`] could change anything that the settling done with every
/// change has not: only reassignments (which complete once their replicas are in sync)
/// and leaderless partitions (a topic may have enabled unclean election since) wait on
/// it. Lets a periodic tick skip copying the image.
pub fn may_need_settling(metadata: &ClusterMetadata) -> bool {
    metadata
        .topics
        .values()
        .flat_map(|t| &t.partitions)
        .any(|p| p.is_reassigning() || p.leader.is_none())
}

/// The ISR members of the best standing present (live, else shutting down, else all).
fn available_isr(isr: &[BrokerId], brokers: &Brokers) -> Vec<BrokerId> {
    let rank_of = |b: &BrokerId| rank(replica_status(brokers, *b));
    let best = isr.iter().map(rank_of).min();
    isr.iter()
        .copied()
        .filter(|b| Some(rank_of(b)) == best)
        .collect()
}

fn elect_if_needed(partition: &mut PartitionState, brokers: &Brokers, unclean: bool) {
    let keeps = partition.leader.is_some_and(|leader| {
        partition.isr.contains(&leader)
            && matches!(
                replica_status(brokers, leader),
                ReplicaStatus::Live | ReplicaStatus::ShuttingDown
            )
    });
    if keeps {
        return;
    }
    partition.leader = first_live_in_isr(partition, brokers, None);
    if partition.leader.is_none() && unclean {
        elect_unclean_leader(partition, brokers);
    }
}

/// The first replica (in replica order, after `skip` if given) that is live and in sync.
fn first_live_in_isr(
    partition: &PartitionState,
    brokers: &Brokers,
    skip: Option<BrokerId>,
) -> Option<BrokerId> {
    partition
        .replicas
        .iter()
        .copied()
        .filter(|&b| Some(b) != skip)
        .find(|&b| partition.isr.contains(&b) && is_live(brokers, b))
}

/// Makes the first live replica leader and sole ISR member; false when none is live.
fn elect_unclean_leader(partition: &mut PartitionState, brokers: &Brokers) -> bool {
    let Some(leader) = partition
        .replicas
        .iter()
        .copied()
        .find(|&b| is_live(brokers, b))
    else {
        return false;
    };
    partition.leader = Some(leader);
    partition.isr = vec![leader];
    true
}

/// Checks an AlterPartition request against the partition, in Kafka's order
/// (`ReplicationControlManager.validateAlterPartitionData`; the broker epoch and the
/// topic and partition are checked before), and returns the partition with the
/// proposed ISR, to be [`settle`]d. A leader in controlled shutdown may propose an ISR
/// holding itself, so that a follower that caught up can join and take over.
pub fn propose_isr(
    partition: &PartitionState,
    brokers: &Brokers,
    request: &AlterPartition,
) -> Result<PartitionState, PartitionError> {
    check_epochs(partition, request)?;
    let isr = &request.new_isr;
    let mut seen = Vec::with_capacity(isr.len());
    for &broker in isr {
        if !partition.replicas.contains(&broker) {
            return Err(PartitionError::NotAReplica { broker });
        }
        if seen.contains(&broker) {
            return Err(PartitionError::DuplicateIsrMember { broker });
        }
        seen.push(broker);
    }
    if !isr.contains(&request.broker) {
        return Err(PartitionError::LeaderNotInIsr {
            leader: request.broker,
            isr: isr.clone(),
        });
    }
    for &broker in isr {
        let status = replica_status(brokers, broker);
        let draining_leader = broker == request.broker && status == ReplicaStatus::ShuttingDown;
        if status != ReplicaStatus::Live && !draining_leader {
            return Err(PartitionError::IneligibleReplica { broker, status });
        }
    }
    Ok(PartitionState {
        isr: isr.clone(),
        ..partition.clone()
    })
}

fn check_epochs(
    partition: &PartitionState,
    request: &AlterPartition,
) -> Result<(), PartitionError> {
    let (leader_epoch, partition_epoch) = (partition.leader_epoch, partition.partition_epoch);
    if request.leader_epoch > leader_epoch {
        return Err(PartitionError::LeaderEpochAhead {
            requested: request.leader_epoch,
            current: leader_epoch,
        });
    }
    if request.partition_epoch > partition_epoch {
        return Err(PartitionError::PartitionEpochAhead {
            requested: request.partition_epoch,
            current: partition_epoch,
        });
    }
    if request.leader_epoch < leader_epoch {
        return Err(PartitionError::FencedLeaderEpoch {
            requested: request.leader_epoch,
            current: leader_epoch,
        });
    }
    if partition.leader != Some(request.broker) {
        return Err(PartitionError::NotLeader {
            broker: request.broker,
            leader: partition.leader,
        });
    }
    if request.partition_epoch < partition_epoch {
        return Err(PartitionError::StalePartitionEpoch {
            requested: request.partition_epoch,
            current: partition_epoch,
        });
    }
    Ok(())
}

/// A preferred-replica election (ElectLeaders PREFERRED, KRaft's
/// `electPreferredLeader`): the first replica leads if it is live and in sync; a
/// leaderless partition takes any live ISR member instead.
pub fn elect_preferred(
    partition: &PartitionState,
    brokers: &Brokers,
) -> Result<PartitionState, PartitionError> {
    let Some(&preferred) = partition.replicas.first() else {
        return Err(PartitionError::EligibleLeadersNotAvailable);
    };
    if partition.leader == Some(preferred) {
        return Err(PartitionError::ElectionNotNeeded);
    }
    let mut next = partition.clone();
    if partition.isr.contains(&preferred) && is_live(brokers, preferred) {
        next.leader = Some(preferred);
        return Ok(next);
    }
    let current_ok = partition
        .leader
        .is_some_and(|l| partition.isr.contains(&l) && is_live(brokers, l));
    match first_live_in_isr(partition, brokers, Some(preferred)) {
        Some(other) if !current_ok => {
            next.leader = Some(other);
            Ok(next)
        }
        _ => Err(PartitionError::PreferredLeaderNotAvailable { preferred }),
    }
}

/// An unclean election (ElectLeaders UNCLEAN) for a leaderless partition: a live ISR
/// member if there is one, else the first live replica with ISR = {it}.
pub fn elect_unclean(
    partition: &PartitionState,
    brokers: &Brokers,
) -> Result<PartitionState, PartitionError> {
    if partition.leader.is_some() {
        return Err(PartitionError::ElectionNotNeeded);
    }
    let mut next = partition.clone();
    if let Some(leader) = first_live_in_isr(partition, brokers, None) {
        next.leader = Some(leader);
        return Ok(next);
    }
    if elect_unclean_leader(&mut next, brokers) {
        Ok(next)
    } else {
        Err(PartitionError::EligibleLeadersNotAvailable)
    }
}

/// Automatic leader rebalancing (`auto.leader.rebalance.enable`), as the ZooKeeper-era
/// controller: for every broker whose share of preferred partitions led by another
/// broker exceeds `percentage`, those partitions whose preferred replica is live and in
/// sync, and which are not being reassigned, move back to it. Returns the partitions
/// moved. (KRaft ignores `leader.imbalance.per.broker.percentage` and moves every
/// imbalanced partition.)
pub fn rebalance_leaders(metadata: &mut ClusterMetadata, percentage: u32) -> Vec<PartitionRef> {
    let over = overloaded_preferred_brokers(metadata, percentage);
    let brokers = &metadata.brokers;
    let mut moved = Vec::new();
    for topic in metadata.topics.values_mut() {
        for partition in &mut topic.partitions {
            let Some(preferred) = partition.replicas.first().copied() else {
                continue;
            };
            let due = over.contains(&preferred)
                && partition.leader != Some(preferred)
                && !partition.is_reassigning();
            if due && partition.isr.contains(&preferred) && is_live(brokers, preferred) {
                partition.leader = Some(preferred);
                moved.push(PartitionRef {
                    topic: topic.name.as_str().to_owned(),
                    partition: partition.partition,
                });
            }
        }
    }
    moved
}

/// Brokers whose preferred partitions are led elsewhere more than `percentage` % of
/// the time.
fn overloaded_preferred_brokers(metadata: &ClusterMetadata, percentage: u32) -> Vec<BrokerId> {
    // broker -> (preferred partitions, of which led by another broker)
    let mut counts: BTreeMap<BrokerId, (u64, u64)> = BTreeMap::new();
    let partitions = metadata.topics.values().flat_map(|t| &t.partitions);
    for partition in partitions {
        if let Some(&preferred) = partition.replicas.first() {
            let entry = counts.entry(preferred).or_default();
            entry.0 += 1;
            if partition.leader != Some(preferred) {
                entry.1 += 1;
            }
        }
    }
    counts
        .into_iter()
        .filter(|&(_, (total, imbalanced))| imbalanced * 100 > u64::from(percentage) * total)
        .map(|(broker, _)| broker)
        .collect()
}

/// Sets `next`'s epochs from its committed predecessor (see the module docs).
pub fn stamp_epochs(committed: &PartitionState, next: &mut PartitionState) {
    let leader_changed = next.leader != committed.leader;
    let changed = leader_changed
        || next.isr != committed.isr
        || next.replicas != committed.replicas
        || next.adding_replicas != committed.adding_replicas
        || next.removing_replicas != committed.removing_replicas;
    // Saturating: 2^31 leader changes of one partition do not happen.
    next.leader_epoch = if leader_changed {
        committed.leader_epoch.saturating_add(1)
    } else {
        committed.leader_epoch
    };
    next.partition_epoch = if changed {
        committed.partition_epoch.saturating_add(1)
    } else {
        committed.partition_epoch
    };
}

/// [`stamp_epochs`] for every partition of `next` that exists in `committed` (same
/// topic id, same index); new topics and partitions keep the epochs they were made with.
pub fn stamp_all_epochs(committed: &ClusterMetadata, next: &mut ClusterMetadata) {
    for (name, topic) in &mut next.topics {
        let Some(before) = committed.topics.get(name).filter(|t| t.id == topic.id) else {
            continue;
        };
        for (partition, old) in topic.partitions.iter_mut().zip(&before.partitions) {
            stamp_epochs(old, partition);
        }
    }
}

#[cfg(test)]
mod tests;
