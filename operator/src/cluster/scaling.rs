//! How many brokers to run while `spec.brokers` changes (pure). Growing is immediate.
//! Shrinking first refuses to go below any topic's replication factor, then drains: the
//! leaving brokers (the highest ids, as the StatefulSet removes the highest ordinals)
//! keep running while reassignments move their replicas to the others, and the
//! StatefulSet shrinks only once no partition names them.

use std::collections::BTreeSet;

use weir_controller::BrokerId;
use weir_controller::balance;
use weir_controller::metadata::ClusterMetadata;
use weir_controller::plane::ReassignmentChange;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Run `spec.brokers` (the same or more than now).
    Steady,
    /// Keep the current brokers: the scale-down would go below a replication factor.
    Blocked { message: String },
    /// Keep the current brokers while these reassignments move replicas off `leaving`.
    Draining {
        leaving: BTreeSet<BrokerId>,
        changes: Vec<ReassignmentChange>,
        /// Partitions that still have a replica on a leaving broker.
        partitions_left: usize,
    },
    /// Nothing is left on `leaving`: shrink to `spec.brokers`.
    Shrink { leaving: BTreeSet<BrokerId> },
}

impl Scale {
    /// The brokers to render: `wanted`, or `current` while draining or blocked.
    pub fn brokers(&self, wanted: i32, current: i32) -> i32 {
        match self {
            Scale::Steady | Scale::Shrink { .. } => wanted,
            Scale::Blocked { .. } | Scale::Draining { .. } => current.max(wanted),
        }
    }
}

/// What to do to go from `current` brokers (the StatefulSet's replicas) to `wanted`.
pub fn decide(wanted: i32, current: i32, metadata: &ClusterMetadata) -> Scale {
    if wanted >= current {
        return Scale::Steady;
    }
    let wanted_count = usize::try_from(wanted).unwrap_or(0);
    let mut too_wide: Vec<String> = metadata
        .topics
        .values()
        .filter_map(|t| {
            let rf = t.partitions.iter().map(|p| p.replicas.len()).max()?;
            (rf > wanted_count).then(|| format!("topic \"{}\" has replication factor {rf}", t.name))
        })
        .collect();
    if !too_wide.is_empty() {
        let more = too_wide.len().saturating_sub(3);
        too_wide.truncate(3);
        let mut list = too_wide.join(", ");
        if more > 0 {
            list.push_str(&format!(" and {more} more"));
        }
        return Scale::Blocked {
            message: format!(
                "cannot scale down to {wanted} broker(s): {list} (lower the replication \
                 factor first, or keep at least as many brokers)"
            ),
        };
    }
    let leaving: BTreeSet<BrokerId> = (wanted..current).map(BrokerId).collect();
    let remaining: Vec<BrokerId> = (0..wanted).map(BrokerId).collect();
    let partitions_left = metadata
        .topics
        .values()
        .flat_map(|t| &t.partitions)
        .filter(|p| {
            p.replicas
                .iter()
                .chain(&p.adding_replicas)
                .any(|r| leaving.contains(r))
        })
        .count();
    if partitions_left == 0 {
        return Scale::Shrink { leaving };
    }
    Scale::Draining {
        changes: balance::drain(metadata, &leaving, &remaining),
        leaving,
        partitions_left,
    }
}

/// Whether a rebalance onto new brokers is due: rebalancing is on, and a broker of
/// `0..brokers` is not among those replicas were last spread over.
pub fn rebalance_due(on_scale_up: bool, brokers: i32, balanced: &[i32]) -> bool {
    on_scale_up && !balanced.is_empty() && (0..brokers).any(|b| !balanced.contains(&b))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use weir_controller::metadata::{PartitionState, TopicMetadata};
    use weir_controller::{TopicId, TopicName};

    use super::*;

    fn metadata(topics: &[(&str, &[&[i32]])]) -> ClusterMetadata {
        let mut m = ClusterMetadata::empty("c", 1);
        for (name, partitions) in topics {
            m.topics.insert(
                (*name).to_owned(),
                TopicMetadata {
                    name: TopicName::new(name).unwrap(),
                    id: TopicId::random(),
                    partitions: partitions
                        .iter()
                        .enumerate()
                        .map(|(i, r)| {
                            PartitionState::new(
                                i32::try_from(i).unwrap(),
                                r.iter().map(|b| BrokerId(*b)).collect(),
                            )
                        })
                        .collect(),
                    configs: BTreeMap::new(),
                },
            );
        }
        m
    }

    #[test]
    fn growing_or_keeping_the_size_is_steady() {
        let m = metadata(&[("orders", &[&[0, 1, 2]])]);
        assert_eq!(decide(4, 3, &m), Scale::Steady);
        assert_eq!(decide(3, 3, &m), Scale::Steady);
        assert_eq!(Scale::Steady.brokers(4, 3), 4);
    }

    #[test]
    fn shrinking_below_a_replication_factor_is_blocked_naming_the_topic() {
        let m = metadata(&[("orders", &[&[0, 1, 2]]), ("logs", &[&[0, 1]])]);
        let scale = decide(2, 3, &m);
        let Scale::Blocked { message } = &scale else {
            panic!("{scale:?}");
        };
        assert_eq!(
            message,
            "cannot scale down to 2 broker(s): topic \"orders\" has replication factor 3 \
             (lower the replication factor first, or keep at least as many brokers)"
        );
        assert_eq!(scale.brokers(2, 3), 3, "the StatefulSet keeps its size");
    }

    #[test]
    fn shrinking_drains_the_highest_ids_first_then_shrinks() {
        let m = metadata(&[("orders", &[&[0, 1, 3], &[1, 2, 0], &[3, 0, 2]])]);
        let scale = decide(3, 4, &m);
        let Scale::Draining {
            leaving,
            changes,
            partitions_left,
        } = &scale
        else {
            panic!("{scale:?}");
        };
        assert_eq!(leaving, &BTreeSet::from([BrokerId(3)]));
        assert_eq!(*partitions_left, 2);
        assert_eq!(changes.len(), 2);
        assert!(
            changes
                .iter()
                .all(|c| !c.target.as_ref().unwrap().contains(&BrokerId(3)))
        );
        assert_eq!(scale.brokers(3, 4), 4, "broker 3 runs until drained");
        let drained = metadata(&[("orders", &[&[0, 1, 2], &[1, 2, 0], &[1, 0, 2]])]);
        assert_eq!(
            decide(3, 4, &drained),
            Scale::Shrink {
                leaving: BTreeSet::from([BrokerId(3)])
            }
        );
    }

    #[test]
    fn a_rebalance_is_due_for_brokers_not_yet_balanced_over() {
        assert!(rebalance_due(true, 4, &[0, 1, 2]));
        assert!(!rebalance_due(false, 4, &[0, 1, 2]));
        assert!(!rebalance_due(true, 3, &[0, 1, 2]));
        assert!(
            !rebalance_due(true, 4, &[]),
            "a new cluster has nothing to move"
        );
    }
}
