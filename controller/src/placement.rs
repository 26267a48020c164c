//! Replica placement: which brokers host the replicas of new partitions, and
//! the checks on assignments an administrator gives by hand. Pure functions.
//!
//! The algorithm is Kafka's classic `AdminUtils.assignReplicasToBrokers`:
//! brokers sorted by id (or, when every broker has a rack, interleaved rack by
//! rack), the first replica of partition `p` on broker `(p + start) % n`, the
//! others at a shift that grows by one every `n` partitions. (The shift counts
//! rounds from partition 0, so partitions added later continue the rotation a
//! topic was created with; Kafka counts from the first new partition.)
//! Without racks, any `n` consecutive partitions put exactly one leader and
//! `rf` replicas on every broker; with racks, no rack holds two replicas of a
//! partition while another rack holds none, and leaders still rotate over
//! every broker. When only some brokers have a rack, racks are ignored (Kafka's
//! "safe" rack-aware mode).
//!
//! Invariant of every assignment returned or accepted: no replica list is
//! empty, none names a broker twice, all have the same length, every broker
//! is one of those given.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::BrokerId;
use crate::metadata::BrokerInfo;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error(
        "The target replication factor of {replication_factor} cannot be reached because only {available} broker(s) are available (registered, unfenced and not in controlled shutdown)."
    )]
    NotEnoughBrokers {
        replication_factor: i16,
        available: usize,
    },
    #[error("Number of partitions was set to an invalid non-positive value: {partitions}.")]
    InvalidPartitions { partitions: i32 },
    #[error("Partition indices {first_partition}.. + {partitions} are out of range.")]
    PartitionIndexOutOfRange {
        first_partition: i32,
        partitions: i32,
    },
    #[error("Replication factor was set to an invalid non-positive value: {replication_factor}.")]
    InvalidReplicationFactor { replication_factor: i16 },
    #[error(
        "The manual partition assignment includes an empty replica list for partition {partition}."
    )]
    EmptyReplicaList { partition: i32 },
    #[error(
        "The manual partition assignment includes the broker {broker} more than once (partition {partition})."
    )]
    DuplicateReplica { partition: i32, broker: BrokerId },
    #[error(
        "The manual partition assignment includes broker {broker}, but no such broker is registered (partition {partition})."
    )]
    UnknownBroker { partition: i32, broker: BrokerId },
    #[error(
        "The manual partition assignment includes a partition with {replicas} replica(s), but this is not consistent with previous partitions, which have {expected} replica(s) (partition {partition})."
    )]
    InconsistentReplicationFactor {
        partition: i32,
        replicas: usize,
        expected: usize,
    },
}

/// Assign `partitions` new partitions (indices starting at `first_partition`) with
/// `replication_factor` replicas over `brokers`, spreading replicas over brokers and
/// racks (Kafka's rack-aware round-robin with a starting index and shift), leaders
/// balanced. `start` picks the broker of the first leader and the first shift;
/// Kafka draws it at random for a new topic. Element `i` of the result holds the
/// replicas of partition `first_partition + i`, the preferred leader first.
pub fn assign_replicas(
    brokers: &[BrokerInfo],
    first_partition: i32,
    partitions: i32,
    replication_factor: i16,
    start: usize,
) -> Result<Vec<Vec<BrokerId>>, PlacementError> {
    if partitions <= 0 {
        return Err(PlacementError::InvalidPartitions { partitions });
    }
    if replication_factor <= 0 {
        return Err(PlacementError::InvalidReplicationFactor { replication_factor });
    }
    let first = usize::try_from(first_partition)
        .ok()
        .filter(|_| first_partition.checked_add(partitions - 1).is_some());
    let Some(first) = first else {
        return Err(PlacementError::PartitionIndexOutOfRange {
            first_partition,
            partitions,
        });
    };
    let rf = usize::try_from(replication_factor).unwrap_or_default();
    let count = usize::try_from(partitions).unwrap_or_default();

    let mut sorted: Vec<&BrokerInfo> = brokers.iter().collect();
    sorted.sort_by_key(|b| b.id);
    sorted.dedup_by_key(|b| b.id);
    if rf > sorted.len() {
        return Err(PlacementError::NotEnoughBrokers {
            replication_factor,
            available: sorted.len(),
        });
    }

    let all_racked = sorted.iter().all(|b| b.rack.is_some());
    let placements = if all_racked {
        let racks: BTreeMap<BrokerId, &str> = sorted
            .iter()
            .map(|b| (b.id, b.rack.as_deref().unwrap_or_default()))
            .collect();
        rack_aware(&racks, first, count, rf, start)
    } else {
        let ids: Vec<BrokerId> = sorted.iter().map(|b| b.id).collect();
        rack_unaware(&ids, first, count, rf, start)
    };
    Ok(placements)
}

/// Checks a hand-made assignment for partitions `first_partition..`: non-empty
/// replica lists of distinct, known brokers, all of one length (`replication_factor`
/// if given, else the first list's).
pub fn validate_assignment(
    brokers: &[BrokerInfo],
    first_partition: i32,
    assignment: &[Vec<BrokerId>],
    replication_factor: Option<usize>,
) -> Result<(), PlacementError> {
    let known: BTreeSet<BrokerId> = brokers.iter().map(|b| b.id).collect();
    let mut expected = replication_factor;
    for (partition, replicas) in (first_partition..).zip(assignment) {
        if replicas.is_empty() {
            return Err(PlacementError::EmptyReplicaList { partition });
        }
        let mut seen = BTreeSet::new();
        for &broker in replicas {
            if !known.contains(&broker) {
                return Err(PlacementError::UnknownBroker { partition, broker });
            }
            if !seen.insert(broker) {
                return Err(PlacementError::DuplicateReplica { partition, broker });
            }
        }
        let expected = *expected.get_or_insert(replicas.len());
        if replicas.len() != expected {
            return Err(PlacementError::InconsistentReplicationFactor {
                partition,
                replicas: replicas.len(),
                expected,
            });
        }
    }
    Ok(())
}

/// Index of replica `j + 1` (0-based `j` among the followers) of a partition whose
/// leader is at `first`: never `first` itself, and distinct for distinct `j < n - 1`.
fn follower_index(first: usize, shift: usize, j: usize, n: usize) -> usize {
    let offset = 1 + (shift + j) % (n - 1);
    (first + offset) % n
}

fn rack_unaware(
    brokers: &[BrokerId],
    first_partition: usize,
    count: usize,
    rf: usize,
    start: usize,
) -> Vec<Vec<BrokerId>> {
    let n = brokers.len();
    let start = start % n;
    (first_partition..first_partition + count)
        .map(|partition| {
            let leader = (partition + start) % n;
            let mut replicas = vec![brokers[leader]];
            if n > 1 {
                let shift = replica_shift(start, partition, n);
                replicas.extend((0..rf - 1).map(|j| brokers[follower_index(leader, shift, j, n)]));
            }
            replicas
        })
        .collect()
}

fn rack_aware(
    racks: &BTreeMap<BrokerId, &str>,
    first_partition: usize,
    count: usize,
    rf: usize,
    start: usize,
) -> Vec<Vec<BrokerId>> {
    let arranged = rack_alternated(racks);
    let n = arranged.len();
    let num_racks = racks.values().collect::<BTreeSet<_>>().len();
    let start = start % n;
    (first_partition..first_partition + count)
        .map(|partition| {
            let leader = (partition + start) % n;
            let mut replicas = vec![arranged[leader]];
            if n == 1 {
                return replicas;
            }
            let shift = (replica_shift(start, partition, n) * num_racks) % (n - 1);
            let mut racks_used = BTreeSet::from([racks[&arranged[leader]]]);
            let mut j = 0;
            while replicas.len() < rf {
                // Terminates: as j runs over n - 1 consecutive values the candidate
                // visits every broker but the leader, and while rf <= n some broker
                // is unused and, if any rack is unused, sits in an unused rack.
                let candidate = arranged[follower_index(leader, shift, j, n)];
                let rack = racks[&candidate];
                j += 1;
                let rack_ok = !racks_used.contains(rack) || racks_used.len() == num_racks;
                if rack_ok && !replicas.contains(&candidate) {
                    replicas.push(candidate);
                    racks_used.insert(rack);
                }
            }
            replicas
        })
        .collect()
}

/// The follower shift for `partition`: `start`, plus one for every full round of
/// `n` partitions before it, taken modulo `n - 1` (all `follower_index` uses).
fn replica_shift(start: usize, partition: usize, n: usize) -> usize {
    (start + partition / n) % (n - 1)
}

/// Brokers interleaved by rack: the first broker of each rack (racks sorted),
/// then the second of each, and so on, so neighbours sit in different racks.
fn rack_alternated(racks: &BTreeMap<BrokerId, &str>) -> Vec<BrokerId> {
    let mut by_rack: BTreeMap<&str, Vec<BrokerId>> = BTreeMap::new();
    for (&broker, &rack) in racks {
        by_rack.entry(rack).or_default().push(broker);
    }
    let deepest = by_rack.values().map(Vec::len).max().unwrap_or_default();
    (0..deepest)
        .flat_map(|depth| {
            by_rack
                .values()
                .filter_map(move |brokers| brokers.get(depth).copied())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Listener;

    fn brokers(n: i32, racks: Option<usize>) -> Vec<BrokerInfo> {
        (0..n)
            .map(|i| {
                BrokerInfo::new(
                    BrokerId(i),
                    racks.map(|r| format!("rack-{}", usize::try_from(i).unwrap() % r)),
                    vec![Listener::new("PLAINTEXT", "127.0.0.1", 9092)],
                )
            })
            .collect()
    }

    fn rack_of(brokers: &[BrokerInfo], id: BrokerId) -> String {
        brokers
            .iter()
            .find(|b| b.id == id)
            .and_then(|b| b.rack.clone())
            .unwrap()
    }

    /// Checks the invariants and returns (leaders per broker, replicas per broker).
    fn counts(
        brokers: &[BrokerInfo],
        assignment: &[Vec<BrokerId>],
        rf: usize,
    ) -> (BTreeMap<BrokerId, usize>, BTreeMap<BrokerId, usize>) {
        let mut leaders: BTreeMap<BrokerId, usize> = brokers.iter().map(|b| (b.id, 0)).collect();
        let mut replicas = leaders.clone();
        for partition in assignment {
            assert_eq!(partition.len(), rf, "{assignment:?}");
            let distinct: BTreeSet<_> = partition.iter().collect();
            assert_eq!(distinct.len(), rf, "broker twice in {partition:?}");
            *leaders.get_mut(&partition[0]).unwrap() += 1;
            for b in partition {
                *replicas.get_mut(b).unwrap() += 1;
            }
        }
        (leaders, replicas)
    }

    fn all_equal(counts: &BTreeMap<BrokerId, usize>, value: usize) -> bool {
        counts.values().all(|&c| c == value)
    }

    #[test]
    fn three_brokers_without_racks_share_leaders_and_replicas_evenly() {
        let brokers = brokers(3, None);
        for start in 0..3 {
            let assignment = assign_replicas(&brokers, 0, 6, 3, start).unwrap();
            let (leaders, replicas) = counts(&brokers, &assignment, 3);
            assert!(all_equal(&leaders, 2), "start {start}: {leaders:?}");
            assert!(all_equal(&replicas, 6), "start {start}: {replicas:?}");
        }
    }

    #[test]
    fn six_brokers_without_racks_share_leaders_and_replicas_evenly() {
        let brokers = brokers(6, None);
        for start in [0, 1, 5, 17] {
            let assignment = assign_replicas(&brokers, 0, 12, 2, start).unwrap();
            let (leaders, replicas) = counts(&brokers, &assignment, 2);
            assert!(all_equal(&leaders, 2), "start {start}: {leaders:?}");
            assert!(all_equal(&replicas, 4), "start {start}: {replicas:?}");
        }
    }

    #[test]
    fn follower_sets_vary_across_rounds() {
        // The shift changes every n partitions, so partition p and p + n do not get
        // the same followers; otherwise losing two brokers would take out the same
        // partitions again and again.
        let brokers = brokers(6, None);
        let assignment = assign_replicas(&brokers, 0, 12, 3, 0).unwrap();
        assert_eq!(assignment[0][0], assignment[6][0]);
        assert_ne!(assignment[0][1..], assignment[6][1..]);
    }

    #[test]
    fn six_brokers_in_three_racks_put_each_replica_in_another_rack() {
        let brokers = brokers(6, Some(3));
        for start in [0, 2, 4, 9] {
            let assignment = assign_replicas(&brokers, 0, 12, 3, start).unwrap();
            let (leaders, replicas) = counts(&brokers, &assignment, 3);
            assert!(all_equal(&leaders, 2), "start {start}: {leaders:?}");
            assert!(all_equal(&replicas, 6), "start {start}: {replicas:?}");
            for partition in &assignment {
                let racks: BTreeSet<String> =
                    partition.iter().map(|b| rack_of(&brokers, *b)).collect();
                assert_eq!(racks.len(), 3, "{partition:?}");
            }
        }
    }

    #[test]
    fn three_brokers_in_three_racks_use_every_rack() {
        let brokers = brokers(3, Some(3));
        let assignment = assign_replicas(&brokers, 0, 6, 3, 1).unwrap();
        let (leaders, replicas) = counts(&brokers, &assignment, 3);
        assert!(all_equal(&leaders, 2), "{leaders:?}");
        assert!(all_equal(&replicas, 6), "{replicas:?}");
    }

    #[test]
    fn more_replicas_than_racks_fill_every_rack_before_repeating_one() {
        let brokers = brokers(6, Some(2));
        let assignment = assign_replicas(&brokers, 0, 12, 3, 0).unwrap();
        counts(&brokers, &assignment, 3);
        for partition in &assignment {
            let racks: BTreeSet<String> = partition.iter().map(|b| rack_of(&brokers, *b)).collect();
            assert_eq!(racks.len(), 2, "{partition:?}");
        }
    }

    #[test]
    fn racks_alternate_in_the_broker_order() {
        let brokers = brokers(6, Some(3));
        let racks: BTreeMap<BrokerId, &str> = brokers
            .iter()
            .map(|b| (b.id, b.rack.as_deref().unwrap()))
            .collect();
        let order: Vec<i32> = rack_alternated(&racks).into_iter().map(|b| b.0).collect();
        assert_eq!(order, vec![0, 1, 2, 3, 4, 5]);
        let uneven: BTreeMap<BrokerId, &str> = [
            (BrokerId(0), "a"),
            (BrokerId(1), "a"),
            (BrokerId(2), "a"),
            (BrokerId(3), "b"),
        ]
        .into_iter()
        .collect();
        let order: Vec<i32> = rack_alternated(&uneven).into_iter().map(|b| b.0).collect();
        assert_eq!(order, vec![0, 3, 1, 2]);
    }

    #[test]
    fn brokers_with_partial_rack_information_are_placed_without_racks() {
        let mut brokers = brokers(3, Some(3));
        brokers[1].rack = None;
        let assignment = assign_replicas(&brokers, 0, 3, 2, 0).unwrap();
        let (leaders, _) = counts(&brokers, &assignment, 2);
        assert!(all_equal(&leaders, 1), "{leaders:?}");
    }

    #[test]
    fn new_partitions_continue_the_rotation() {
        let brokers = brokers(3, None);
        let whole = assign_replicas(&brokers, 0, 6, 2, 1).unwrap();
        let tail = assign_replicas(&brokers, 4, 2, 2, 1).unwrap();
        assert_eq!(tail, whole[4..]);
    }

    #[test]
    fn unsorted_input_gives_the_same_placement() {
        let mut shuffled = brokers(3, None);
        shuffled.reverse();
        assert_eq!(
            assign_replicas(&shuffled, 0, 3, 2, 0).unwrap(),
            assign_replicas(&brokers(3, None), 0, 3, 2, 0).unwrap()
        );
    }

    #[test]
    fn single_broker_hosts_everything() {
        let brokers = brokers(1, None);
        let assignment = assign_replicas(&brokers, 0, 4, 1, 7).unwrap();
        assert_eq!(assignment, vec![vec![BrokerId(0)]; 4]);
    }

    #[test]
    fn impossible_requests_are_refused() {
        let three = brokers(3, None);
        assert_eq!(
            assign_replicas(&three, 0, 1, 4, 0),
            Err(PlacementError::NotEnoughBrokers {
                replication_factor: 4,
                available: 3
            })
        );
        assert_eq!(
            assign_replicas(&[], 0, 1, 1, 0),
            Err(PlacementError::NotEnoughBrokers {
                replication_factor: 1,
                available: 0
            })
        );
        assert_eq!(
            assign_replicas(&three, 0, 0, 1, 0),
            Err(PlacementError::InvalidPartitions { partitions: 0 })
        );
        assert_eq!(
            assign_replicas(&three, 0, 1, 0, 0),
            Err(PlacementError::InvalidReplicationFactor {
                replication_factor: 0
            })
        );
        assert_eq!(
            assign_replicas(&three, i32::MAX, 2, 1, 0),
            Err(PlacementError::PartitionIndexOutOfRange {
                first_partition: i32::MAX,
                partitions: 2
            })
        );
        assert_eq!(
            assign_replicas(&three, -1, 2, 1, 0),
            Err(PlacementError::PartitionIndexOutOfRange {
                first_partition: -1,
                partitions: 2
            })
        );
    }

    #[test]
    fn manual_assignments_are_checked() {
        let three = brokers(3, None);
        let b = BrokerId;
        assert_eq!(
            validate_assignment(&three, 0, &[vec![b(0), b(1)], vec![b(2), b(0)]], None),
            Ok(())
        );
        assert_eq!(
            validate_assignment(&three, 0, &[vec![b(0)], vec![]], None),
            Err(PlacementError::EmptyReplicaList { partition: 1 })
        );
        assert_eq!(
            validate_assignment(&three, 5, &[vec![b(1), b(1)]], None),
            Err(PlacementError::DuplicateReplica {
                partition: 5,
                broker: b(1)
            })
        );
        assert_eq!(
            validate_assignment(&three, 0, &[vec![b(9)]], None),
            Err(PlacementError::UnknownBroker {
                partition: 0,
                broker: b(9)
            })
        );
        assert_eq!(
            validate_assignment(&three, 0, &[vec![b(0), b(1)], vec![b(2)]], None),
            Err(PlacementError::InconsistentReplicationFactor {
                partition: 1,
                replicas: 1,
                expected: 2
            })
        );
        assert_eq!(
            validate_assignment(&three, 2, &[vec![b(0)]], Some(2)),
            Err(PlacementError::InconsistentReplicationFactor {
                partition: 2,
                replicas: 1,
                expected: 2
            })
        );
    }
}
