//! Partition reassignment (KIP-455), as pure functions over [`PartitionState`].
//!
//! A reassignment to `target` first widens the replica set: `replicas` becomes the
//! target followed by the current replicas not in it, `adding_replicas` the target
//! replicas that are new, `removing_replicas` the current ones not in the target. The
//! new replicas catch up and their leader adds them to the ISR; once every target
//! replica is in the ISR the reassignment completes ([`complete_if_ready`], run by
//! [`crate::partitions::settle`] after every change): `replicas` becomes the target,
//! the ISR loses the removed replicas, and a leader being removed hands over to the
//! first in-sync target replica. So a partition never has fewer in-sync replicas than
//! the target asks for at the moment the old ones go.
//!
//! Replacing an ongoing reassignment starts from the widened replica set, as KRaft
//! does; replicas the new target keeps from the old one's additions stay "adding", so
//! completion still waits for every target replica. Cancelling reverts to the
//! replicas before the reassignment and drops the adding replicas from the ISR; when
//! only adding replicas are in sync, that is an unclean election, refused unless the
//! topic enables `unclean.leader.election.enable`.

use crate::ids::BrokerId;
use crate::metadata::{BrokerInfo, PartitionState};
use crate::partitions::Brokers;
use crate::placement::{self, PlacementError};
use crate::plane::{OngoingReassignment, PartitionRef};

/// Why a reassignment change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassignmentError {
    #[error("No partition reassignment is in progress.")]
    NoReassignmentInProgress,
    #[error("{source}")]
    InvalidTarget {
        #[source]
        source: PlacementError,
    },
    #[error(
        "Unable to revert the partition assignment because it would require an unclean leader election."
    )]
    UncleanRevert,
}

/// Checks a target replica list as Kafka checks a manual assignment: not empty, every
/// broker registered (fenced ones included), none twice.
pub fn validate_target(
    brokers: &Brokers,
    partition: i32,
    target: &[BrokerId],
) -> Result<(), ReassignmentError> {
    let registered: Vec<BrokerInfo> = brokers.values().cloned().collect();
    placement::validate_assignment(&registered, partition, &[target.to_vec()], None)
        .map_err(|source| ReassignmentError::InvalidTarget { source })
}

/// The partition with a reassignment to `target` (validated) begun or replaced; to be
/// settled, which completes it at once when every target replica is already in sync.
/// Replacing an ongoing reassignment keeps every replica it widened to until the new
/// target completes: `removing` is the widened set minus the target, and `adding` is
/// counted from the replicas before any reassignment, so a replica the old target was
/// adding and the new one keeps is still awaited.
pub fn start(partition: &PartitionState, target: &[BrokerId]) -> PartitionState {
    let current = &partition.replicas;
    let original: Vec<BrokerId> = current
        .iter()
        .copied()
        .filter(|b| !partition.adding_replicas.contains(b))
        .collect();
    let removing: Vec<BrokerId> = current
        .iter()
        .copied()
        .filter(|b| !target.contains(b))
        .collect();
    let adding: Vec<BrokerId> = target
        .iter()
        .copied()
        .filter(|b| !original.contains(b))
        .collect();
    let mut replicas = target.to_vec();
    replicas.extend(&removing);
    PartitionState {
        replicas,
        adding_replicas: adding,
        removing_replicas: removing,
        ..partition.clone()
    }
}

/// The partition with its ongoing reassignment reverted; to be settled.
pub fn cancel(
    partition: &PartitionState,
    unclean_allowed: bool,
) -> Result<PartitionState, ReassignmentError> {
    if !partition.is_reassigning() {
        return Err(ReassignmentError::NoReassignmentInProgress);
    }
    let adding = &partition.adding_replicas;
    let replicas: Vec<BrokerId> = partition
        .replicas
        .iter()
        .copied()
        .filter(|b| !adding.contains(b))
        .collect();
    let mut isr: Vec<BrokerId> = partition
        .isr
        .iter()
        .copied()
        .filter(|b| !adding.contains(b))
        .collect();
    if isr.is_empty() {
        if !unclean_allowed {
            return Err(ReassignmentError::UncleanRevert);
        }
        isr.extend(replicas.first());
    }
    if isr.is_empty() {
        // Only a partition whose replicas were all being added could get here, and
        // none is ever created that way.
        return Err(ReassignmentError::UncleanRevert);
    }
    Ok(PartitionState {
        replicas,
        isr,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
        ..partition.clone()
    })
}

/// Completes the partition's reassignment if every target replica is in the ISR:
/// replicas become the target, the ISR loses the removed replicas. Returns whether it
/// completed. The leader is left alone; settling elects a new one if it was removed.
pub fn complete_if_ready(partition: &mut PartitionState) -> bool {
    if !partition.is_reassigning() {
        return false;
    }
    let removing = &partition.removing_replicas;
    let target: Vec<BrokerId> = partition
        .replicas
        .iter()
        .copied()
        .filter(|b| !removing.contains(b))
        .collect();
    let isr: Vec<BrokerId> = partition
        .isr
        .iter()
        .copied()
        .filter(|b| !removing.contains(b))
        .collect();
    if target.is_empty() || isr.is_empty() || !target.iter().all(|b| isr.contains(b)) {
        return false;
    }
    partition.replicas = target;
    partition.isr = isr;
    partition.adding_replicas.clear();
    partition.removing_replicas.clear();
    true
}

/// The partition's ongoing reassignment, if any (ListPartitionReassignments).
pub fn ongoing(topic: &str, partition: &PartitionState) -> Option<OngoingReassignment> {
    partition.is_reassigning().then(|| OngoingReassignment {
        partition: PartitionRef {
            topic: topic.to_owned(),
            partition: partition.partition,
        },
        replicas: partition.replicas.clone(),
        adding: partition.adding_replicas.clone(),
        removing: partition.removing_replicas.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Listener;
    use crate::partitions::settle;

    fn ids(ids: &[i32]) -> Vec<BrokerId> {
        ids.iter().copied().map(BrokerId).collect()
    }

    fn live(ids_: &[i32]) -> Brokers {
        ids_.iter()
            .map(|&i| {
                let mut b = BrokerInfo::new(
                    BrokerId(i),
                    None,
                    vec![Listener::new("PLAINTEXT", "h", 9092)],
                );
                b.incarnation = Some(uuid::Uuid::new_v4());
                (BrokerId(i), b)
            })
            .collect()
    }

    fn partition(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionState {
        PartitionState {
            isr: ids(isr),
            leader: Some(BrokerId(leader)),
            ..PartitionState::new(0, ids(replicas))
        }
    }

    #[test]
    fn start_widens_the_replicas_target_first() {
        let p = partition(&[1, 2, 3], &[1, 2, 3], 1);
        let started = start(&p, &ids(&[4, 2, 5]));
        assert_eq!(started.replicas, ids(&[4, 2, 5, 1, 3]));
        assert_eq!(started.adding_replicas, ids(&[4, 5]));
        assert_eq!(started.removing_replicas, ids(&[1, 3]));
        assert_eq!(started.isr, p.isr, "the ISR is not touched");
        assert_eq!(started.leader, p.leader);
    }

    #[test]
    fn a_replaced_reassignment_still_waits_for_the_replicas_it_keeps_adding() {
        let brokers = live(&[1, 2, 3, 4]);
        let first = start(&partition(&[3], &[3], 3), &ids(&[2, 3]));
        assert_eq!(first.adding_replicas, ids(&[2]));
        // 3 fell out of the ISR meanwhile; 2 is in sync.
        let mut waiting = first;
        waiting.isr = ids(&[2]);
        waiting.leader = Some(BrokerId(2));
        let replaced = settle(&start(&waiting, &ids(&[3, 2])), &brokers, false);
        assert_eq!(replaced.replicas, ids(&[3, 2]));
        assert_eq!(replaced.adding_replicas, ids(&[2]));
        assert!(replaced.is_reassigning(), "3 is not in sync");

        let widened = start(&partition(&[1, 2], &[1, 2], 1), &ids(&[3, 4]));
        let back = start(&widened, &ids(&[1, 2]));
        assert_eq!(back.replicas, ids(&[1, 2, 3, 4]));
        assert_eq!(back.adding_replicas, ids(&[]));
        assert_eq!(back.removing_replicas, ids(&[3, 4]));
        let done = settle(&back, &brokers, false);
        assert_eq!(done.replicas, ids(&[1, 2]));
        assert!(!done.is_reassigning());
    }

    #[test]
    fn completion_waits_for_every_target_replica_in_the_isr() {
        let brokers = live(&[1, 2, 3, 4, 5]);
        let p = start(&partition(&[1, 2, 3], &[1, 2, 3], 1), &ids(&[4, 2, 5]));
        let mut waiting = settle(&p, &brokers, false);
        assert!(waiting.is_reassigning());
        assert_eq!(waiting.isr, ids(&[1, 2, 3]));

        waiting.isr = ids(&[1, 2, 3, 4]);
        let still = settle(&waiting, &brokers, false);
        assert!(still.is_reassigning(), "5 is not in sync yet");

        waiting.isr = ids(&[1, 2, 3, 4, 5]);
        let done = settle(&waiting, &brokers, false);
        assert!(!done.is_reassigning());
        assert_eq!(done.replicas, ids(&[4, 2, 5]));
        assert_eq!(done.isr, ids(&[2, 4, 5]));
        assert_eq!(
            done.leader,
            Some(BrokerId(4)),
            "the removed leader hands over to the first in-sync target replica"
        );
    }

    #[test]
    fn a_kept_leader_stays_when_the_reassignment_completes() {
        let brokers = live(&[1, 2, 3]);
        let p = start(&partition(&[1, 2], &[1, 2], 2), &ids(&[1, 2, 3]));
        let mut p = settle(&p, &brokers, false);
        p.isr = ids(&[1, 2, 3]);
        let done = settle(&p, &brokers, false);
        assert_eq!(done.replicas, ids(&[1, 2, 3]));
        assert_eq!(done.leader, Some(BrokerId(2)));
    }

    #[test]
    fn a_reorder_or_shrink_within_the_isr_completes_at_once() {
        let brokers = live(&[1, 2, 3]);
        let p = partition(&[1, 2, 3], &[1, 2, 3], 1);
        let reordered = settle(&start(&p, &ids(&[3, 1, 2])), &brokers, false);
        assert_eq!(reordered.replicas, ids(&[3, 1, 2]));
        assert!(!reordered.is_reassigning());
        let shrunk = settle(&start(&p, &ids(&[2, 3])), &brokers, false);
        assert_eq!(shrunk.replicas, ids(&[2, 3]));
        assert_eq!(shrunk.isr, ids(&[2, 3]));
        assert_eq!(shrunk.leader, Some(BrokerId(2)));
    }

    #[test]
    fn cancel_reverts_to_the_old_replicas() {
        let brokers = live(&[1, 2, 3, 4]);
        let mut p = start(&partition(&[1, 2], &[1, 2], 1), &ids(&[3, 4]));
        p.isr = ids(&[1, 2, 3]);
        let reverted = settle(&cancel(&p, false).unwrap(), &brokers, false);
        assert_eq!(reverted.replicas, ids(&[1, 2]));
        assert_eq!(reverted.isr, ids(&[1, 2]));
        assert!(!reverted.is_reassigning());
        assert_eq!(reverted.leader, Some(BrokerId(1)));
    }

    #[test]
    fn cancel_without_a_reassignment_is_refused() {
        let p = partition(&[1, 2], &[1, 2], 1);
        assert_eq!(
            cancel(&p, true),
            Err(ReassignmentError::NoReassignmentInProgress)
        );
    }

    #[test]
    fn cancel_that_needs_an_unclean_election_needs_the_topic_to_allow_it() {
        // Only adding replicas are in sync: the old ones fell out meanwhile.
        let mut p = start(&partition(&[1], &[1], 1), &ids(&[2]));
        p.isr = ids(&[2]);
        p.leader = Some(BrokerId(2));
        assert_eq!(cancel(&p, false), Err(ReassignmentError::UncleanRevert));
        let reverted = cancel(&p, true).unwrap();
        assert_eq!(reverted.replicas, ids(&[1]));
        assert_eq!(reverted.isr, ids(&[1]));
    }

    #[test]
    fn targets_are_checked_like_manual_assignments() {
        let brokers = live(&[1, 2]);
        let err = |target: &[i32]| validate_target(&brokers, 7, &ids(target)).unwrap_err();
        assert!(matches!(
            err(&[]),
            ReassignmentError::InvalidTarget {
                source: PlacementError::EmptyReplicaList { partition: 7 }
            }
        ));
        assert!(matches!(
            err(&[1, 9]),
            ReassignmentError::InvalidTarget {
                source: PlacementError::UnknownBroker {
                    broker: BrokerId(9),
                    ..
                }
            }
        ));
        assert!(matches!(
            err(&[2, 2]),
            ReassignmentError::InvalidTarget {
                source: PlacementError::DuplicateReplica {
                    broker: BrokerId(2),
                    ..
                }
            }
        ));
        assert_eq!(validate_target(&brokers, 7, &ids(&[2, 1])), Ok(()));
    }

    #[test]
    fn ongoing_lists_only_reassigning_partitions() {
        let p = partition(&[1, 2], &[1, 2], 1);
        assert_eq!(ongoing("t", &p), None);
        let started = start(&p, &ids(&[3]));
        let listed = ongoing("t", &started).unwrap();
        assert_eq!(listed.partition.topic, "t");
        assert_eq!(listed.replicas, ids(&[3, 1, 2]));
        assert_eq!(listed.adding, ids(&[3]));
        assert_eq!(listed.removing, ids(&[1, 2]));
    }
}
