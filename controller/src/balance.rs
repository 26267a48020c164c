//! Replica movement plans for changing the set of brokers, as reassignments the
//! controller then carries out (new replicas catch up, join the ISR, the old ones leave):
//!
//! - [`drain`]: every replica on leaving brokers moves to a remaining broker — what a
//!   scale-down must finish before the leaving brokers stop (Redpanda's decommission).
//! - [`balance`]: the fewest moves that bring every broker's replica count within one of
//!   the others' — what a scale-up does so new brokers take their share (Strimzi's
//!   auto-rebalance on adding brokers, Cruise Control's replica distribution goal).
//!
//! Both are pure and deterministic: topics and partitions in name order, ties broken by
//! broker id. A partition already reassigning is left alone (its reassignment finishes
//! first). A replica never lands on a broker that already holds one of the partition's,
//! and a moved replica takes the place of the one it replaces in the replica list, so
//! the preferred leader stays where it was unless the leader itself moves.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::BrokerId;
use crate::metadata::ClusterMetadata;
use crate::plane::{PartitionRef, ReassignmentChange};

/// Replicas per broker over every partition (target replicas of reassigning ones), with
/// every broker of `brokers` present.
fn load(metadata: &ClusterMetadata, brokers: &[BrokerId]) -> BTreeMap<BrokerId, usize> {
    let mut load: BTreeMap<BrokerId, usize> = brokers.iter().map(|b| (*b, 0)).collect();
    for topic in metadata.topics.values() {
        for partition in &topic.partitions {
            for replica in target(partition) {
                *load.entry(replica).or_default() += 1;
            }
        }
    }
    load
}

/// The replicas a partition ends up with (without those a reassignment removes).
fn target(partition: &crate::metadata::PartitionState) -> Vec<BrokerId> {
    partition
        .replicas
        .iter()
        .copied()
        .filter(|r| !partition.removing_replicas.contains(r))
        .collect()
}

/// Moves every replica off `leaving` onto the least loaded of `remaining` (that does not
/// hold the partition yet). Partitions that cannot be drained (fewer remaining brokers
/// than their replication factor) are skipped; callers refuse such a scale-down first.
pub fn drain(
    metadata: &ClusterMetadata,
    leaving: &BTreeSet<BrokerId>,
    remaining: &[BrokerId],
) -> Vec<ReassignmentChange> {
    let mut load = load(metadata, remaining);
    load.retain(|b, _| remaining.contains(b));
    let mut changes = Vec::new();
    for topic in metadata.topics.values() {
        for partition in &topic.partitions {
            if partition.is_reassigning() || !partition.replicas.iter().any(|r| leaving.contains(r))
            {
                continue;
            }
            let mut replicas = partition.replicas.clone();
            let mut possible = true;
            for slot in 0..replicas.len() {
                if !leaving.contains(&replicas[slot]) {
                    continue;
                }
                let Some(to) = load
                    .iter()
                    .filter(|(b, _)| !replicas.contains(b))
                    .min_by_key(|(b, n)| (**n, **b))
                    .map(|(b, _)| *b)
                else {
                    possible = false;
                    break;
                };
                replicas[slot] = to;
                *load.entry(to).or_default() += 1;
            }
            if possible {
                changes.push(ReassignmentChange {
                    partition: PartitionRef {
                        topic: topic.name.to_string(),
                        partition: partition.partition,
                    },
                    target: Some(replicas),
                });
            }
        }
    }
    changes
}

/// The fewest replica moves among `brokers` that leave every broker's replica count
/// within one of every other's, moving followers before leaders.
pub fn balance(metadata: &ClusterMetadata, brokers: &[BrokerId]) -> Vec<ReassignmentChange> {
    let mut load = load(metadata, brokers);
    load.retain(|b, _| brokers.contains(b));
    // (topic, partition) → planned replicas, for partitions that may move.
    let mut plans: BTreeMap<(String, i32), (Vec<BrokerId>, bool)> = BTreeMap::new();
    for topic in metadata.topics.values() {
        for partition in &topic.partitions {
            if !partition.is_reassigning() {
                plans.insert(
                    (topic.name.to_string(), partition.partition),
                    (partition.replicas.clone(), false),
                );
            }
        }
    }
    while let Some((&most, &high)) = load
        .iter()
        .max_by_key(|(b, n)| (**n, std::cmp::Reverse(**b)))
    {
        let Some((&least, &low)) = load.iter().min_by_key(|(b, n)| (**n, **b)) else {
            break;
        };
        if high <= low + 1 {
            break;
        }
        // A partition on `most` and not on `least`, not moved yet: a follower if any.
        let candidate = [false, true].into_iter().find_map(|leader_ok| {
            plans.iter().find_map(|(key, (replicas, moved))| {
                let slot = replicas.iter().position(|r| *r == most)?;
                let ok = !*moved && !replicas.contains(&least) && (leader_ok || slot != 0);
                ok.then(|| (key.clone(), slot))
            })
        });
        let Some((key, slot)) = candidate else {
            break;
        };
        let (replicas, moved) = plans.get_mut(&key).expect("a planned partition");
        replicas[slot] = least;
        *moved = true;
        *load.get_mut(&most).expect("a loaded broker") -= 1;
        *load.get_mut(&least).expect("a loaded broker") += 1;
    }
    plans
        .into_iter()
        .filter(|(_, (_, moved))| *moved)
        .map(|((topic, partition), (replicas, _))| ReassignmentChange {
            partition: PartitionRef { topic, partition },
            target: Some(replicas),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{TopicId, TopicName};
    use crate::metadata::{PartitionState, TopicMetadata};

    fn ids(list: &[i32]) -> Vec<BrokerId> {
        list.iter().map(|i| BrokerId(*i)).collect()
    }

    /// One topic `t` whose partitions have these replicas.
    fn metadata(partitions: &[&[i32]]) -> ClusterMetadata {
        let mut metadata = ClusterMetadata::empty("test", 1);
        let topic = TopicMetadata {
            name: TopicName::new("t").unwrap(),
            id: TopicId::random(),
            partitions: partitions
                .iter()
                .enumerate()
                .map(|(i, r)| PartitionState::new(i32::try_from(i).unwrap(), ids(r)))
                .collect(),
            configs: BTreeMap::new(),
        };
        metadata.topics.insert("t".into(), topic);
        metadata
    }

    fn apply(metadata: &mut ClusterMetadata, changes: &[ReassignmentChange]) {
        for change in changes {
            let topic = metadata.topics.get_mut(&change.partition.topic).unwrap();
            let p = usize::try_from(change.partition.partition).unwrap();
            topic.partitions[p].replicas = change.target.clone().unwrap();
        }
    }

    fn counts(metadata: &ClusterMetadata) -> BTreeMap<BrokerId, usize> {
        load(metadata, &[])
    }

    #[test]
    fn draining_moves_every_replica_off_the_leaving_brokers_evenly() {
        let mut m = metadata(&[&[0, 1, 3], &[3, 2, 0], &[1, 2, 3], &[0, 1, 2]]);
        let changes = drain(&m, &BTreeSet::from([BrokerId(3)]), &ids(&[0, 1, 2]));
        assert_eq!(
            changes.len(),
            3,
            "only partitions on broker 3 move: {changes:?}"
        );
        // The replacement takes broker 3's place: partition 1's preferred leader moves.
        apply(&mut m, &changes);
        for p in &m.topics["t"].partitions {
            assert!(!p.replicas.contains(&BrokerId(3)), "{p:?}");
            let distinct: BTreeSet<_> = p.replicas.iter().collect();
            assert_eq!(distinct.len(), 3, "no broker twice: {p:?}");
        }
        let counts = counts(&m);
        assert_eq!(counts.values().copied().collect::<Vec<_>>(), [4, 4, 4]);
    }

    #[test]
    fn a_partition_that_cannot_be_drained_is_left_and_reassigning_ones_wait() {
        let mut m = metadata(&[&[0, 1, 2], &[2, 0]]);
        m.topics.get_mut("t").unwrap().partitions[1].adding_replicas = vec![BrokerId(0)];
        let changes = drain(&m, &BTreeSet::from([BrokerId(2)]), &ids(&[0, 1]));
        assert_eq!(
            changes,
            Vec::new(),
            "RF 3 on two brokers, and a reassigning one"
        );
    }

    #[test]
    fn balancing_onto_a_new_broker_moves_the_fewest_followers() {
        // 12 partitions × RF 3 on brokers 0-2; broker 3 is new: 9 replicas move to it.
        let rows: Vec<Vec<i32>> = (0..12)
            .map(|i| (0..3).map(|r| (i + r) % 3).collect())
            .collect();
        let rows: Vec<&[i32]> = rows.iter().map(Vec::as_slice).collect();
        let mut m = metadata(&rows);
        let before = m.clone();
        let changes = balance(&m, &ids(&[0, 1, 2, 3]));
        assert_eq!(changes.len(), 9, "{changes:?}");
        apply(&mut m, &changes);
        assert_eq!(
            counts(&m).values().copied().collect::<Vec<_>>(),
            [9, 9, 9, 9]
        );
        for (old, new) in before.topics["t"]
            .partitions
            .iter()
            .zip(&m.topics["t"].partitions)
        {
            assert_eq!(old.replicas[0], new.replicas[0], "leaders stay: {new:?}");
            let distinct: BTreeSet<_> = new.replicas.iter().collect();
            assert_eq!(distinct.len(), 3);
        }
        assert_eq!(balance(&m, &ids(&[0, 1, 2, 3])), Vec::new(), "balanced");
        assert_eq!(
            changes,
            balance(&before, &ids(&[0, 1, 2, 3])),
            "deterministic"
        );
    }
}
