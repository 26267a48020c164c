//! The Topic reconciler's plan: what the controller must do to make the committed topic
//! match a `Topic` spec. Pure: given the spec, the committed topic (if any) and the live
//! brokers, it returns the steps in the order they must run.

use std::collections::{BTreeMap, BTreeSet};

use weir_controller::metadata::TopicMetadata;
use weir_controller::{BrokerId, CreateTopic};

use crate::crd::TopicSpec;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Create(CreateTopic),
    /// CreatePartitions up to this total.
    AddPartitions {
        total: i32,
    },
    /// Replace the config overrides with these (AlterConfigs semantics).
    SetConfig(BTreeMap<String, String>),
    /// Reassign partitions to change the replication factor: (partition, new replicas).
    Reassign(Vec<(i32, Vec<BrokerId>)>),
}

/// Why the spec cannot be reached by any step.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unreachable {
    #[error(
        "spec.partitions is {wanted} but the topic has {committed}; Kafka cannot remove partitions"
    )]
    FewerPartitions { wanted: i32, committed: i32 },
    #[error("spec.replicationFactor is {wanted} but only {brokers} broker(s) are registered")]
    NotEnoughBrokers { wanted: i32, brokers: usize },
}

impl Unreachable {
    pub fn reason(&self) -> &'static str {
        match self {
            Unreachable::FewerPartitions { .. } => "PartitionsCannotShrink",
            Unreachable::NotEnoughBrokers { .. } => "NotEnoughBrokers",
        }
    }
}

/// The steps from `committed` to `spec`, or why there are none that get there. An empty
/// plan means the topic is as specified (a reassignment in flight counts as done: the
/// controller completes it).
pub fn plan(
    name: &str,
    spec: &TopicSpec,
    committed: Option<&TopicMetadata>,
    brokers: &[BrokerId],
) -> Result<Vec<Step>, Unreachable> {
    let Some(topic) = committed else {
        return Ok(vec![Step::Create(CreateTopic {
            name: name.to_owned(),
            num_partitions: Some(spec.partitions),
            replication_factor: Some(i16::try_from(spec.replication_factor).unwrap_or(i16::MAX)),
            assignments: None,
            configs: spec.config.clone(),
        })]);
    };
    let mut steps = Vec::new();
    let committed_partitions = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
    if spec.partitions < committed_partitions {
        return Err(Unreachable::FewerPartitions {
            wanted: spec.partitions,
            committed: committed_partitions,
        });
    }
    if topic.configs != spec.config {
        steps.push(Step::SetConfig(spec.config.clone()));
    }
    let wanted_rf = usize::try_from(spec.replication_factor).unwrap_or(0);
    let reassigning = topic.partitions.iter().any(|p| p.is_reassigning());
    if topic.replication_factor() != wanted_rf && !reassigning {
        if brokers.len() < wanted_rf {
            return Err(Unreachable::NotEnoughBrokers {
                wanted: spec.replication_factor,
                brokers: brokers.len(),
            });
        }
        steps.push(Step::Reassign(change_replication_factor(
            topic, wanted_rf, brokers,
        )));
    }
    if spec.partitions > committed_partitions {
        steps.push(Step::AddPartitions {
            total: spec.partitions,
        });
    }
    Ok(steps)
}

/// New replica lists with `rf` replicas each: shrinking drops replicas from the end of
/// the list (the leader, first, is kept); growing adds the brokers that hold the fewest
/// replicas of this topic, lowest id first on ties.
fn change_replication_factor(
    topic: &TopicMetadata,
    rf: usize,
    brokers: &[BrokerId],
) -> Vec<(i32, Vec<BrokerId>)> {
    let mut load: BTreeMap<BrokerId, usize> = brokers.iter().map(|b| (*b, 0)).collect();
    for p in &topic.partitions {
        for r in &p.replicas {
            *load.entry(*r).or_default() += 1;
        }
    }
    topic
        .partitions
        .iter()
        .map(|p| {
            let mut replicas = p.replicas.clone();
            while replicas.len() > rf {
                if let Some(removed) = replicas.pop() {
                    *load.entry(removed).or_default() -= 1;
                }
            }
            while replicas.len() < rf {
                let present: BTreeSet<BrokerId> = replicas.iter().copied().collect();
                let Some(next) = brokers
                    .iter()
                    .filter(|b| !present.contains(b))
                    .min_by_key(|b| (load.get(b).copied().unwrap_or(0), **b))
                    .copied()
                else {
                    break;
                };
                *load.entry(next).or_default() += 1;
                replicas.push(next);
            }
            (p.partition, replicas)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_controller::metadata::PartitionState;
    use weir_controller::{TopicId, TopicName};

    fn spec(partitions: i32, rf: i32, config: &[(&str, &str)]) -> TopicSpec {
        TopicSpec {
            cluster: "c".into(),
            topic_name: None,
            partitions,
            replication_factor: rf,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            deletion_policy: Default::default(),
        }
    }

    fn committed(replicas: &[&[i32]], config: &[(&str, &str)]) -> TopicMetadata {
        TopicMetadata {
            name: TopicName::new("t").unwrap(),
            id: TopicId::random(),
            partitions: replicas
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    PartitionState::new(i as i32, r.iter().map(|b| BrokerId(*b)).collect())
                })
                .collect(),
            configs: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn brokers(n: i32) -> Vec<BrokerId> {
        (0..n).map(BrokerId).collect()
    }

    #[test]
    fn a_missing_topic_is_created_as_specified() {
        let steps = plan(
            "t",
            &spec(3, 2, &[("retention.ms", "1")]),
            None,
            &brokers(3),
        )
        .unwrap();
        let [Step::Create(create)] = &steps[..] else {
            panic!("{steps:?}")
        };
        assert_eq!(create.num_partitions, Some(3));
        assert_eq!(create.replication_factor, Some(2));
        assert_eq!(create.configs["retention.ms"], "1");
    }

    #[test]
    fn a_matching_topic_needs_nothing() {
        let topic = committed(&[&[0, 1], &[1, 2]], &[("cleanup.policy", "compact")]);
        let s = spec(2, 2, &[("cleanup.policy", "compact")]);
        assert_eq!(plan("t", &s, Some(&topic), &brokers(3)), Ok(vec![]));
    }

    #[test]
    fn config_then_partitions_are_changed() {
        let topic = committed(&[&[0]], &[("retention.ms", "1")]);
        let steps = plan("t", &spec(4, 1, &[]), Some(&topic), &brokers(1)).unwrap();
        assert_eq!(
            steps,
            vec![
                Step::SetConfig(BTreeMap::new()),
                Step::AddPartitions { total: 4 }
            ]
        );
    }

    #[test]
    fn partitions_never_shrink() {
        let topic = committed(&[&[0], &[0], &[0]], &[]);
        let err = plan("t", &spec(2, 1, &[]), Some(&topic), &brokers(1)).unwrap_err();
        assert_eq!(err.reason(), "PartitionsCannotShrink");
    }

    #[test]
    fn replication_factor_grows_onto_the_least_loaded_brokers_and_shrinks_from_the_tail() {
        let topic = committed(&[&[0], &[1], &[0]], &[]);
        let steps = plan("t", &spec(3, 2, &[]), Some(&topic), &brokers(3)).unwrap();
        let [Step::Reassign(targets)] = &steps[..] else {
            panic!("{steps:?}")
        };
        let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
        assert_eq!(
            targets,
            &vec![(0, ids(&[0, 2])), (1, ids(&[1, 2])), (2, ids(&[0, 1]))]
        );
        let wide = committed(&[&[2, 0, 1]], &[]);
        let steps = plan("t", &spec(1, 2, &[]), Some(&wide), &brokers(3)).unwrap();
        assert_eq!(
            steps,
            vec![Step::Reassign(vec![(0, vec![BrokerId(2), BrokerId(0)])])]
        );
        let err = plan("t", &spec(1, 4, &[]), Some(&wide), &brokers(3)).unwrap_err();
        assert_eq!(err.reason(), "NotEnoughBrokers");
    }
}
