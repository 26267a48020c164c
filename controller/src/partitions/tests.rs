use std::collections::BTreeMap;

use super::*;
use crate::ids::{TopicId, TopicName};
use crate::metadata::Listener;
use crate::registry::BrokerEpoch;

fn ids(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().copied().map(BrokerId).collect()
}

/// Brokers 0..n, live unless listed as fenced or shutting down.
fn brokers(n: i32, fenced: &[i32], shutting_down: &[i32]) -> Brokers {
    (0..n)
        .map(|i| {
            let mut b = BrokerInfo::new(
                BrokerId(i),
                None,
                vec![Listener::new("PLAINTEXT", "h", 9092)],
            );
            b.epoch = BrokerEpoch(i64::from(i) + 1);
            b.incarnation = Some(uuid::Uuid::new_v4());
            b.fenced = fenced.contains(&i);
            b.in_controlled_shutdown = shutting_down.contains(&i);
            (BrokerId(i), b)
        })
        .collect()
}

fn partition(replicas: &[i32], isr: &[i32], leader: Option<i32>) -> PartitionState {
    PartitionState {
        isr: ids(isr),
        leader: leader.map(BrokerId),
        leader_epoch: 5,
        partition_epoch: 9,
        ..PartitionState::new(0, ids(replicas))
    }
}

fn alter(broker: i32, new_isr: &[i32]) -> AlterPartition {
    AlterPartition {
        broker: BrokerId(broker),
        broker_epoch: BrokerEpoch(i64::from(broker) + 1),
        topic_id: TopicId::random(),
        partition: 0,
        leader_epoch: 5,
        partition_epoch: 9,
        new_isr: ids(new_isr),
    }
}

#[test]
fn replica_status_follows_the_registration() {
    let b = brokers(3, &[1], &[2]);
    assert_eq!(replica_status(&b, BrokerId(0)), ReplicaStatus::Live);
    assert_eq!(replica_status(&b, BrokerId(1)), ReplicaStatus::Fenced);
    assert_eq!(replica_status(&b, BrokerId(2)), ReplicaStatus::ShuttingDown);
    assert_eq!(replica_status(&b, BrokerId(7)), ReplicaStatus::Unregistered);
    assert_eq!(
        live_brokers(&b).iter().map(|b| b.id).collect::<Vec<_>>(),
        ids(&[0])
    );
}

#[test]
fn new_partitions_keep_only_live_replicas_in_sync() {
    let b = brokers(3, &[0], &[]);
    let p = new_partition(4, ids(&[0, 1, 2]), &b).unwrap();
    assert_eq!(p.partition, 4);
    assert_eq!(p.replicas, ids(&[0, 1, 2]));
    assert_eq!(p.isr, ids(&[1, 2]));
    assert_eq!(p.leader, Some(BrokerId(1)));
    assert_eq!((p.leader_epoch, p.partition_epoch), (0, 0));
    assert_eq!(new_partition(0, ids(&[0]), &b), None);
}

#[test]
fn a_fenced_leader_hands_over_to_the_next_live_isr_member_in_replica_order() {
    let b = brokers(4, &[1], &[]);
    let p = partition(&[1, 3, 2], &[2, 1, 3], Some(1));
    let settled = settle(&p, &b, false);
    assert_eq!(settled.isr, ids(&[2, 3]));
    assert_eq!(
        settled.leader,
        Some(BrokerId(3)),
        "3 comes before 2 in the replicas"
    );
}

#[test]
fn a_fenced_follower_leaves_the_isr_and_the_leader_stays() {
    let b = brokers(3, &[2], &[]);
    let settled = settle(&partition(&[0, 1, 2], &[0, 1, 2], Some(1)), &b, false);
    assert_eq!(settled.isr, ids(&[0, 1]));
    assert_eq!(settled.leader, Some(BrokerId(1)));
}

#[test]
fn the_last_isr_member_stays_when_fenced_and_the_partition_has_no_leader() {
    let b = brokers(3, &[0], &[]);
    let settled = settle(&partition(&[0, 1, 2], &[0], Some(0)), &b, false);
    assert_eq!(settled.isr, ids(&[0]), "unavailable, not lossy");
    assert_eq!(settled.leader, None);
}

#[test]
fn unclean_election_picks_a_live_replica_and_makes_it_the_whole_isr() {
    let b = brokers(3, &[0, 1], &[]);
    let settled = settle(&partition(&[0, 1, 2], &[0], Some(0)), &b, true);
    assert_eq!(settled.leader, Some(BrokerId(2)));
    assert_eq!(settled.isr, ids(&[2]));
    let nobody = brokers(3, &[0, 1, 2], &[]);
    let settled = settle(&partition(&[0, 1, 2], &[0], Some(0)), &nobody, true);
    assert_eq!((settled.leader, settled.isr), (None, ids(&[0])));
}

#[test]
fn an_unfenced_last_isr_member_leads_again() {
    let b = brokers(3, &[], &[]);
    let settled = settle(&partition(&[1, 0, 2], &[0], None), &b, false);
    assert_eq!(settled.leader, Some(BrokerId(0)));
    assert_eq!(settled.isr, ids(&[0]));
}

#[test]
fn a_broker_in_controlled_shutdown_hands_over_where_another_isr_member_is_live() {
    let b = brokers(3, &[], &[0]);
    let settled = settle(&partition(&[0, 1, 2], &[0, 1], Some(0)), &b, false);
    assert_eq!(settled.leader, Some(BrokerId(1)));
    assert_eq!(settled.isr, ids(&[1]));
}

#[test]
fn a_broker_in_controlled_shutdown_keeps_leading_as_the_last_isr_member() {
    let b = brokers(3, &[], &[0]);
    let p = partition(&[0, 1, 2], &[0], Some(0));
    assert_eq!(settle(&p, &b, true), p, "not even an unclean election");
}

#[test]
fn a_shutting_down_member_outranks_a_fenced_one() {
    let b = brokers(3, &[1], &[0]);
    let settled = settle(&partition(&[0, 1, 2], &[1, 0], Some(0)), &b, false);
    assert_eq!(settled.isr, ids(&[0]));
    assert_eq!(settled.leader, Some(BrokerId(0)));
}

#[test]
fn settling_a_healthy_partition_changes_nothing() {
    let b = brokers(3, &[], &[]);
    let p = partition(&[0, 1, 2], &[0, 1, 2], Some(2));
    assert_eq!(settle(&p, &b, true), p);
}

#[test]
fn alter_partition_checks_run_in_kafkas_order() {
    let b = brokers(4, &[3], &[]);
    let p = partition(&[0, 1, 2, 3], &[0, 1], Some(0));
    let with = |f: fn(&mut AlterPartition)| {
        let mut request = alter(0, &[0, 1, 2]);
        f(&mut request);
        propose_isr(&p, &b, &request).unwrap_err()
    };
    assert_eq!(
        with(|r| {
            r.leader_epoch = 6;
            r.broker = BrokerId(1);
        }),
        PartitionError::LeaderEpochAhead {
            requested: 6,
            current: 5
        }
    );
    assert_eq!(
        with(|r| r.partition_epoch = 10),
        PartitionError::PartitionEpochAhead {
            requested: 10,
            current: 9
        }
    );
    assert_eq!(
        with(|r| {
            r.leader_epoch = 4;
            r.broker = BrokerId(1);
        }),
        PartitionError::FencedLeaderEpoch {
            requested: 4,
            current: 5
        }
    );
    assert_eq!(
        with(|r| {
            r.broker = BrokerId(1);
            r.partition_epoch = 8;
        }),
        PartitionError::NotLeader {
            broker: BrokerId(1),
            leader: Some(BrokerId(0))
        }
    );
    assert_eq!(
        with(|r| {
            r.partition_epoch = 8;
            r.new_isr = ids(&[0, 7]);
        }),
        PartitionError::StalePartitionEpoch {
            requested: 8,
            current: 9
        }
    );
    assert_eq!(
        with(|r| r.new_isr = ids(&[0, 7])),
        PartitionError::NotAReplica {
            broker: BrokerId(7)
        }
    );
    assert_eq!(
        with(|r| r.new_isr = ids(&[0, 1, 1])),
        PartitionError::DuplicateIsrMember {
            broker: BrokerId(1)
        }
    );
    assert_eq!(
        with(|r| r.new_isr = ids(&[1, 3])),
        PartitionError::LeaderNotInIsr {
            leader: BrokerId(0),
            isr: ids(&[1, 3])
        }
    );
    assert_eq!(
        with(|r| r.new_isr = ids(&[0, 3])),
        PartitionError::IneligibleReplica {
            broker: BrokerId(3),
            status: ReplicaStatus::Fenced
        }
    );
    let accepted = propose_isr(&p, &b, &alter(0, &[0, 1, 2])).unwrap();
    assert_eq!(accepted.isr, ids(&[0, 1, 2]));
    assert_eq!((accepted.leader_epoch, accepted.partition_epoch), (5, 9));
}

#[test]
fn alter_partition_messages_name_the_values() {
    let err = PartitionError::LeaderNotInIsr {
        leader: BrokerId(0),
        isr: ids(&[1, 3]),
    };
    assert_eq!(
        err.to_string(),
        "the proposed ISR [1, 3] does not include the leader 0"
    );
    let err = PartitionError::IneligibleReplica {
        broker: BrokerId(2),
        status: ReplicaStatus::ShuttingDown,
    };
    assert_eq!(
        err.to_string(),
        "the proposed ISR names broker 2, which is in controlled shutdown"
    );
    let err = PartitionError::NotLeader {
        broker: BrokerId(1),
        leader: None,
    };
    assert_eq!(
        err.to_string(),
        "broker 1 is not the leader (the leader is none)"
    );
}

#[test]
fn a_draining_leader_may_add_a_follower_that_then_takes_over() {
    let b = brokers(3, &[], &[0]);
    let p = partition(&[0, 1, 2], &[0], Some(0));
    let accepted = propose_isr(&p, &b, &alter(0, &[0, 1, 2]));
    assert!(accepted.is_ok(), "{accepted:?}");
    let proposed = propose_isr(&p, &b, &alter(0, &[0, 1])).unwrap();
    let settled = settle(&proposed, &b, false);
    assert_eq!(settled.leader, Some(BrokerId(1)));
    assert_eq!(settled.isr, ids(&[1]));
}

#[test]
fn a_shutting_down_follower_may_not_join_the_isr() {
    let b = brokers(3, &[], &[2]);
    let p = partition(&[0, 1, 2], &[0, 1], Some(0));
    assert_eq!(
        propose_isr(&p, &b, &alter(0, &[0, 1, 2])),
        Err(PartitionError::IneligibleReplica {
            broker: BrokerId(2),
            status: ReplicaStatus::ShuttingDown
        })
    );
}

#[test]
fn preferred_election_moves_leadership_to_the_first_replica() {
    let b = brokers(3, &[], &[]);
    let p = partition(&[0, 1, 2], &[0, 1, 2], Some(1));
    let elected = elect_preferred(&p, &b).unwrap();
    assert_eq!(elected.leader, Some(BrokerId(0)));
    assert_eq!(
        elect_preferred(&elected, &b),
        Err(PartitionError::ElectionNotNeeded)
    );
}

#[test]
fn preferred_election_needs_the_preferred_replica_live_and_in_sync() {
    let out_of_sync = partition(&[0, 1, 2], &[1, 2], Some(1));
    assert_eq!(
        elect_preferred(&out_of_sync, &brokers(3, &[], &[])),
        Err(PartitionError::PreferredLeaderNotAvailable {
            preferred: BrokerId(0)
        })
    );
    let draining = partition(&[0, 1, 2], &[0, 1, 2], Some(1));
    assert_eq!(
        elect_preferred(&draining, &brokers(3, &[], &[0])),
        Err(PartitionError::PreferredLeaderNotAvailable {
            preferred: BrokerId(0)
        })
    );
}

#[test]
fn preferred_election_of_a_leaderless_partition_takes_another_live_isr_member() {
    let b = brokers(3, &[0], &[]);
    let p = partition(&[0, 1, 2], &[0, 2], None);
    assert_eq!(elect_preferred(&p, &b).unwrap().leader, Some(BrokerId(2)));
}

#[test]
fn unclean_election_only_for_leaderless_partitions() {
    let b = brokers(3, &[0], &[]);
    assert_eq!(
        elect_unclean(&partition(&[0, 1], &[0, 1], Some(1)), &b),
        Err(PartitionError::ElectionNotNeeded)
    );
    let elected = elect_unclean(&partition(&[0, 1, 2], &[0], None), &b).unwrap();
    assert_eq!(elected.leader, Some(BrokerId(1)));
    assert_eq!(elected.isr, ids(&[1]));
    let clean = elect_unclean(&partition(&[0, 1, 2], &[0, 2], None), &b).unwrap();
    assert_eq!(clean.leader, Some(BrokerId(2)));
    assert_eq!(clean.isr, ids(&[0, 2]), "a clean choice keeps the ISR");
    assert_eq!(
        elect_unclean(&partition(&[0], &[0], None), &b),
        Err(PartitionError::EligibleLeadersNotAvailable)
    );
}

fn metadata_with(partitions: Vec<PartitionState>, brokers: Brokers) -> ClusterMetadata {
    let topic = TopicMetadata {
        name: TopicName::new("t").unwrap(),
        id: TopicId::random(),
        partitions,
        configs: BTreeMap::new(),
    };
    ClusterMetadata {
        cluster_id: "c".into(),
        version: 1,
        brokers,
        topics: BTreeMap::from([("t".to_owned(), topic)]),
        next_producer_id: 0,
        last_broker_epoch: BrokerEpoch(3),
    }
}

fn numbered(mut partitions: Vec<PartitionState>) -> Vec<PartitionState> {
    for (i, p) in (0..).zip(&mut partitions) {
        p.partition = i;
    }
    partitions
}

#[test]
fn rebalancing_moves_leaders_back_to_brokers_above_the_imbalance_threshold() {
    // Broker 0 prefers 4 partitions, leads 2 of them (50 % imbalance); broker 1
    // prefers 1 and leads it.
    let partitions = numbered(vec![
        partition(&[0, 1], &[0, 1], Some(0)),
        partition(&[0, 1], &[0, 1], Some(0)),
        partition(&[0, 1], &[0, 1], Some(1)),
        partition(&[0, 1], &[1], Some(1)),
        partition(&[1, 0], &[0, 1], Some(1)),
    ]);
    let mut metadata = metadata_with(partitions, brokers(2, &[], &[]));
    let moved = rebalance_leaders(&mut metadata, 10);
    assert_eq!(
        moved,
        vec![PartitionRef {
            topic: "t".into(),
            partition: 2
        }],
        "partition 3's preferred replica is not in sync"
    );
    let leaders: Vec<Option<BrokerId>> = metadata.topics["t"]
        .partitions
        .iter()
        .map(|p| p.leader)
        .collect();
    assert_eq!(
        leaders,
        vec![
            Some(BrokerId(0)),
            Some(BrokerId(0)),
            Some(BrokerId(0)),
            Some(BrokerId(1)),
            Some(BrokerId(1))
        ]
    );
}

#[test]
fn rebalancing_leaves_brokers_within_the_threshold_and_reassignments_alone() {
    let partitions = numbered(vec![
        partition(&[0, 1], &[0, 1], Some(1)),
        partition(&[0, 1], &[0, 1], Some(0)),
    ]);
    let mut metadata = metadata_with(partitions.clone(), brokers(2, &[], &[]));
    assert_eq!(rebalance_leaders(&mut metadata, 50), vec![], "exactly 50 %");
    let mut reassigning = partitions;
    reassigning[0].adding_replicas = ids(&[2]);
    reassigning[0].replicas.push(BrokerId(2));
    let mut metadata = metadata_with(reassigning, brokers(3, &[], &[]));
    assert_eq!(rebalance_leaders(&mut metadata, 10), vec![]);
}

#[test]
fn epochs_follow_the_changes() {
    let old = partition(&[0, 1, 2], &[0, 1, 2], Some(0));
    let mut same = old.clone();
    stamp_epochs(&old, &mut same);
    assert_eq!((same.leader_epoch, same.partition_epoch), (5, 9));

    let mut shrunk = PartitionState {
        isr: ids(&[0, 1]),
        ..old.clone()
    };
    stamp_epochs(&old, &mut shrunk);
    assert_eq!((shrunk.leader_epoch, shrunk.partition_epoch), (5, 10));

    let mut moved = PartitionState {
        leader: Some(BrokerId(1)),
        leader_epoch: 0,
        partition_epoch: 0,
        ..old.clone()
    };
    stamp_epochs(&old, &mut moved);
    assert_eq!((moved.leader_epoch, moved.partition_epoch), (6, 10));

    let mut gone = PartitionState {
        leader: None,
        ..old.clone()
    };
    stamp_epochs(&old, &mut gone);
    assert_eq!((gone.leader_epoch, gone.partition_epoch), (6, 10));
}

#[test]
fn stamping_skips_new_and_recreated_topics() {
    let committed = metadata_with(vec![partition(&[0], &[0], Some(0))], brokers(1, &[], &[]));
    let mut next = committed.clone();
    next.topics.get_mut("t").unwrap().partitions[0].leader = None;
    stamp_all_epochs(&committed, &mut next);
    assert_eq!(next.topics["t"].partitions[0].leader_epoch, 6);

    let mut recreated = committed.clone();
    let topic = recreated.topics.get_mut("t").unwrap();
    topic.id = TopicId::random();
    topic.partitions = vec![PartitionState::new(0, ids(&[0]))];
    stamp_all_epochs(&committed, &mut recreated);
    assert_eq!(recreated.topics["t"].partitions[0].leader_epoch, 0);
}

#[test]
fn unclean_election_follows_the_topic_config() {
    let mut topic = TopicMetadata {
        name: TopicName::new("t").unwrap(),
        id: TopicId::random(),
        partitions: vec![],
        configs: BTreeMap::new(),
    };
    assert!(!unclean_election_enabled(&topic));
    topic
        .configs
        .insert(UNCLEAN_LEADER_ELECTION.into(), " TRUE ".into());
    assert!(unclean_election_enabled(&topic));
}

#[test]
fn only_reassignments_and_leaderless_partitions_wait_for_a_tick() {
    let healthy = metadata_with(
        vec![partition(&[0, 1], &[0, 1], Some(0))],
        brokers(2, &[], &[]),
    );
    assert!(!may_need_settling(&healthy));
    let leaderless = metadata_with(vec![partition(&[0, 1], &[0], None)], brokers(2, &[0], &[]));
    assert!(may_need_settling(&leaderless));
    let mut moving = partition(&[2, 0, 1], &[0, 1], Some(0));
    moving.adding_replicas = ids(&[2]);
    moving.removing_replicas = ids(&[1]);
    assert!(may_need_settling(&metadata_with(
        vec![moving],
        brokers(3, &[], &[])
    )));
}
