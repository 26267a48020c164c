//! Partition changes through the Controller: AlterPartition, reassignments,
//! ElectLeaders and automatic leader rebalancing, with Kafka's error codes.

mod common;

use std::time::{Duration, Instant};

use common::{cluster_at, join};
use weir_controller::{
    AlterPartition, BrokerEpoch, BrokerId, Controller, ControllerConfig, CreateTopic, ElectionType,
    Heartbeat, MemoryMetadataStore, MetadataStore, PartitionRef, PartitionState,
    ReassignmentChange, TopicId,
};

const TIMEOUT: Duration = Duration::from_millis(9000);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn b(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().copied().map(BrokerId).collect()
}

fn at(topic: &str, partition: i32) -> PartitionRef {
    PartitionRef {
        topic: topic.into(),
        partition,
    }
}

fn epoch_of<S: MetadataStore>(c: &Controller<S>, id: i32) -> BrokerEpoch {
    c.metadata().brokers[&BrokerId(id)].epoch
}

fn partition<S: MetadataStore>(c: &Controller<S>, topic: &str, index: usize) -> PartitionState {
    c.metadata().topics[topic].partitions[index].clone()
}

async fn topic_with<S: MetadataStore>(c: &mut Controller<S>, name: &str, replicas: &[&[i32]]) {
    let request = CreateTopic {
        name: name.into(),
        assignments: Some(replicas.iter().map(|r| b(r)).collect()),
        ..CreateTopic::default()
    };
    c.create_topic(request, false).await.unwrap();
}

/// An AlterPartition from the partition's current leader, based on its current epochs.
fn alter_from_leader<S: MetadataStore>(
    c: &Controller<S>,
    topic: &str,
    index: i32,
    new_isr: &[i32],
) -> AlterPartition {
    let p = partition(c, topic, usize::try_from(index).unwrap());
    let leader = p.leader.unwrap();
    AlterPartition {
        broker: leader,
        broker_epoch: epoch_of(c, leader.0),
        topic_id: c.metadata().topics[topic].id,
        partition: index,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: b(new_isr),
    }
}

async fn three_brokers() -> Controller<MemoryMetadataStore> {
    let (mut c, _) = cluster_at(3, Instant::now()).await;
    topic_with(&mut c, "t", &[&[0, 1, 2]]).await;
    c
}

#[tokio::test]
async fn alter_partition_commits_the_isr_and_bumps_the_partition_epoch() {
    let mut c = three_brokers().await;
    let mut updates = c.subscribe();
    updates.mark_unchanged();
    let committed = c
        .alter_partition(alter_from_leader(&c, "t", 0, &[0, 2]))
        .await
        .unwrap();
    assert_eq!(committed.isr, b(&[0, 2]));
    assert_eq!(committed.leader, Some(BrokerId(0)));
    assert_eq!((committed.leader_epoch, committed.partition_epoch), (0, 1));
    assert_eq!(partition(&c, "t", 0), committed);
    assert!(updates.has_changed().unwrap());

    let grown = c
        .alter_partition(alter_from_leader(&c, "t", 0, &[0, 2, 1]))
        .await
        .unwrap();
    assert_eq!(grown.isr, b(&[0, 2, 1]));
    assert_eq!(grown.partition_epoch, 2);

    let version = c.metadata().version;
    let same = c
        .alter_partition(alter_from_leader(&c, "t", 0, &[0, 2, 1]))
        .await
        .unwrap();
    assert_eq!(same, grown);
    assert_eq!(c.metadata().version, version, "no change, no commit");
}

#[tokio::test]
async fn alter_partition_refusals_carry_kafkas_codes_in_kafkas_order() {
    let mut c = three_brokers().await;
    let valid = alter_from_leader(&c, "t", 0, &[0, 1]);
    let cases: Vec<(AlterPartition, i16)> = vec![
        // The broker epoch is checked before anything else.
        (
            AlterPartition {
                broker_epoch: BrokerEpoch(99),
                topic_id: TopicId::random(),
                ..valid.clone()
            },
            77,
        ),
        (
            AlterPartition {
                broker: BrokerId(9),
                ..valid.clone()
            },
            102,
        ),
        (
            AlterPartition {
                topic_id: TopicId::random(),
                partition: 5,
                ..valid.clone()
            },
            100,
        ),
        (
            AlterPartition {
                partition: 5,
                ..valid.clone()
            },
            3,
        ),
        (
            AlterPartition {
                leader_epoch: 1,
                ..valid.clone()
            },
            41,
        ),
        (
            AlterPartition {
                leader_epoch: -1,
                ..valid.clone()
            },
            74,
        ),
        (
            AlterPartition {
                broker: BrokerId(1),
                broker_epoch: epoch_of(&c, 1),
                new_isr: b(&[1]),
                ..valid.clone()
            },
            42,
        ),
        (
            AlterPartition {
                partition_epoch: -1,
                ..valid.clone()
            },
            95,
        ),
        (
            AlterPartition {
                new_isr: b(&[0, 5]),
                ..valid.clone()
            },
            42,
        ),
        (
            AlterPartition {
                new_isr: b(&[1, 2]),
                ..valid.clone()
            },
            42,
        ),
    ];
    for (request, code) in cases {
        let shown = format!("{request:?}");
        let err = c.alter_partition(request).await.unwrap_err();
        assert_eq!(err.kafka_error_code(), code, "{shown}: {err}");
    }
    assert_eq!(partition(&c, "t", 0).isr, b(&[0, 1, 2]));
}

#[tokio::test]
async fn alter_partition_refuses_fenced_and_shutting_down_replicas() {
    let t0 = Instant::now();
    let (mut c, _) = cluster_at(4, t0).await;
    topic_with(&mut c, "t", &[&[0, 1, 2, 3]]).await;
    c.alter_partition(alter_from_leader(&c, "t", 0, &[0]))
        .await
        .unwrap();
    c.controlled_shutdown(BrokerId(2), epoch_of(&c, 2))
        .await
        .unwrap();
    for id in [0, 1, 2] {
        let heartbeat = Heartbeat {
            broker: BrokerId(id),
            broker_epoch: epoch_of(&c, id),
        };
        c.broker_heartbeat(heartbeat, t0 + ms(5000)).await.unwrap();
    }
    assert_eq!(c.tick(t0 + TIMEOUT).await.unwrap().fenced, b(&[3]));

    for (isr, broker) in [(&[0, 3][..], 3), (&[0, 2][..], 2)] {
        let err = c
            .alter_partition(alter_from_leader(&c, "t", 0, isr))
            .await
            .unwrap_err();
        assert_eq!(err.kafka_error_code(), 107, "{err}");
        assert!(
            err.to_string().contains(&format!("broker {broker}")),
            "{err}"
        );
    }
    let ok = c
        .alter_partition(alter_from_leader(&c, "t", 0, &[0, 1]))
        .await
        .unwrap();
    assert_eq!(ok.isr, b(&[0, 1]));
}

#[tokio::test]
async fn a_reassignment_adds_replicas_and_completes_once_they_are_in_sync() {
    let (mut c, _) = cluster_at(5, Instant::now()).await;
    topic_with(&mut c, "t", &[&[0, 1, 2]]).await;
    let results = c
        .alter_reassignments(vec![ReassignmentChange {
            partition: at("t", 0),
            target: Some(b(&[3, 1, 4])),
        }])
        .await
        .unwrap();
    assert!(results[0].1.is_ok(), "{results:?}");
    let moving = partition(&c, "t", 0);
    assert_eq!(moving.replicas, b(&[3, 1, 4, 0, 2]));
    assert_eq!(moving.adding_replicas, b(&[3, 4]));
    assert_eq!(moving.removing_replicas, b(&[0, 2]));
    assert_eq!(
        moving.isr,
        b(&[0, 1, 2]),
        "nothing leaves before the new ones are in sync"
    );
    assert_eq!(moving.partition_epoch, 1);
    let listed = c.list_reassignments(None);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].adding, b(&[3, 4]));
    assert_eq!(
        c.list_reassignments(Some(vec![at("t", 0), at("x", 0)])),
        listed
    );

    c.alter_partition(alter_from_leader(&c, "t", 0, &[0, 1, 2, 3]))
        .await
        .unwrap();
    assert!(partition(&c, "t", 0).is_reassigning());
    let done = c
        .alter_partition(alter_from_leader(&c, "t", 0, &[0, 1, 2, 3, 4]))
        .await
        .unwrap();
    assert!(!done.is_reassigning());
    assert_eq!(done.replicas, b(&[3, 1, 4]));
    assert_eq!(done.isr, b(&[1, 3, 4]));
    assert_eq!(
        done.leader,
        Some(BrokerId(3)),
        "the removed leader handed over"
    );
    assert_eq!(done.leader_epoch, 1);
    assert!(c.list_reassignments(None).is_empty());
}

#[tokio::test]
async fn a_reassignment_within_the_isr_completes_at_once() {
    let mut c = three_brokers().await;
    c.alter_reassignments(vec![ReassignmentChange {
        partition: at("t", 0),
        target: Some(b(&[2, 0])),
    }])
    .await
    .unwrap();
    let p = partition(&c, "t", 0);
    assert_eq!(p.replicas, b(&[2, 0]));
    assert_eq!(p.isr, b(&[0, 2]));
    assert_eq!(p.leader, Some(BrokerId(0)));
    assert!(!p.is_reassigning());
}

#[tokio::test]
async fn reassignment_refusals_carry_kafkas_codes() {
    let mut c = three_brokers().await;
    let change = |topic: &str, partition: i32, target: Option<&[i32]>| ReassignmentChange {
        partition: at(topic, partition),
        target: target.map(b),
    };
    let results = c
        .alter_reassignments(vec![
            change("t", 0, Some(&[])),
            change("t", 0, Some(&[0, 7])),
            change("t", 0, Some(&[1, 1])),
            change("t", 0, None),
            change("t", 4, Some(&[0])),
            change("nope", 0, Some(&[0])),
            change("t", 0, Some(&[1, 2, 0])),
        ])
        .await
        .unwrap();
    let codes: Vec<i16> = results
        .iter()
        .map(|(_, r)| r.as_ref().map_or_else(|e| e.kafka_error_code(), |()| 0))
        .collect();
    assert_eq!(codes, vec![39, 39, 39, 85, 3, 3, 0]);
    let message = results[3].1.as_ref().unwrap_err().to_string();
    assert_eq!(message, "t-0: No partition reassignment is in progress.");
    assert_eq!(partition(&c, "t", 0).replicas, b(&[1, 2, 0]));
}

#[tokio::test]
async fn a_cancelled_reassignment_reverts_to_the_old_replicas() {
    let (mut c, _) = cluster_at(4, Instant::now()).await;
    topic_with(&mut c, "t", &[&[0, 1]]).await;
    let start = ReassignmentChange {
        partition: at("t", 0),
        target: Some(b(&[2, 3])),
    };
    c.alter_reassignments(vec![start]).await.unwrap();
    c.alter_partition(alter_from_leader(&c, "t", 0, &[0, 1, 2]))
        .await
        .unwrap();
    let cancel = ReassignmentChange {
        partition: at("t", 0),
        target: None,
    };
    let results = c.alter_reassignments(vec![cancel]).await.unwrap();
    assert!(results[0].1.is_ok());
    let p = partition(&c, "t", 0);
    assert_eq!(p.replicas, b(&[0, 1]));
    assert_eq!(p.isr, b(&[0, 1]));
    assert!(!p.is_reassigning());
}

#[tokio::test]
async fn preferred_election_restores_the_first_replica_after_a_failover() {
    let t0 = Instant::now();
    let (mut c, _) = cluster_at(2, t0).await;
    topic_with(&mut c, "t", &[&[0, 1], &[1, 0]]).await;
    let new = join(&mut c, 0, t0).await; // a restart moves leadership of t-0 to 1
    assert_eq!(partition(&c, "t", 0).leader, Some(BrokerId(1)));
    c.alter_partition(alter_from_leader(&c, "t", 0, &[1, 0]))
        .await
        .unwrap();
    assert_eq!(epoch_of(&c, 0), new);

    let results = c
        .elect_leaders(
            ElectionType::Preferred,
            Some(vec![at("t", 0), at("t", 1), at("t", 9)]),
        )
        .await
        .unwrap();
    let codes: Vec<i16> = results
        .iter()
        .map(|r| {
            r.result
                .as_ref()
                .map_or_else(|e| e.kafka_error_code(), |()| 0)
        })
        .collect();
    assert_eq!(codes, vec![0, 84, 3]);
    let p = partition(&c, "t", 0);
    assert_eq!(p.leader, Some(BrokerId(0)));
    assert_eq!(p.leader_epoch, 2);

    let all = c
        .elect_leaders(ElectionType::Preferred, None)
        .await
        .unwrap();
    assert!(
        all.is_empty(),
        "ELECTION_NOT_NEEDED is left out for all partitions: {all:?}"
    );
}

#[tokio::test]
async fn preferred_election_needs_the_preferred_replica_in_sync() {
    let mut c = three_brokers().await;
    let moved = ReassignmentChange {
        partition: at("t", 0),
        target: Some(b(&[1, 0, 2])),
    };
    c.alter_reassignments(vec![moved]).await.unwrap();
    c.alter_partition(alter_from_leader(&c, "t", 0, &[0, 2]))
        .await
        .unwrap();
    let results = c
        .elect_leaders(ElectionType::Preferred, Some(vec![at("t", 0)]))
        .await
        .unwrap();
    let err = results[0].result.as_ref().unwrap_err();
    assert_eq!(err.kafka_error_code(), 80, "{err}");
}

#[tokio::test]
async fn unclean_election_revives_a_partition_whose_isr_is_gone() {
    let t0 = Instant::now();
    let (mut c, _) = cluster_at(2, t0).await;
    topic_with(&mut c, "t", &[&[0, 1]]).await;
    c.alter_partition(alter_from_leader(&c, "t", 0, &[0]))
        .await
        .unwrap();
    let heartbeat = Heartbeat {
        broker: BrokerId(1),
        broker_epoch: epoch_of(&c, 1),
    };
    c.broker_heartbeat(heartbeat, t0 + ms(5000)).await.unwrap();
    c.tick(t0 + TIMEOUT).await.unwrap();
    assert_eq!(partition(&c, "t", 0).leader, None);

    let results = c
        .elect_leaders(ElectionType::Preferred, Some(vec![at("t", 0)]))
        .await
        .unwrap();
    assert_eq!(
        results[0].result.as_ref().unwrap_err().kafka_error_code(),
        80
    );
    let results = c.elect_leaders(ElectionType::Unclean, None).await.unwrap();
    assert_eq!(results.len(), 1);
    assert!(results[0].result.is_ok(), "{results:?}");
    let p = partition(&c, "t", 0);
    assert_eq!((p.leader, p.isr.clone()), (Some(BrokerId(1)), b(&[1])));

    let results = c
        .elect_leaders(ElectionType::Unclean, Some(vec![at("t", 0)]))
        .await
        .unwrap();
    assert_eq!(
        results[0].result.as_ref().unwrap_err().kafka_error_code(),
        84
    );
}

#[tokio::test]
async fn unclean_election_without_a_live_replica_is_refused() {
    let t0 = Instant::now();
    let (mut c, _) = cluster_at(1, t0).await;
    topic_with(&mut c, "t", &[&[0]]).await;
    c.tick(t0 + TIMEOUT).await.unwrap();
    let results = c
        .elect_leaders(ElectionType::Unclean, Some(vec![at("t", 0)]))
        .await
        .unwrap();
    assert_eq!(
        results[0].result.as_ref().unwrap_err().kafka_error_code(),
        83
    );
}

/// Brokers 0 and 1, both preferring two partitions; broker 0 restarted, so broker 1
/// leads everything and 0 is back in every ISR.
async fn imbalanced(config: ControllerConfig, t0: Instant) -> Controller<MemoryMetadataStore> {
    let mut c = Controller::open_with_config(MemoryMetadataStore::new(), config, t0)
        .await
        .unwrap();
    join(&mut c, 0, t0).await;
    join(&mut c, 1, t0).await;
    topic_with(&mut c, "t", &[&[0, 1], &[0, 1], &[1, 0], &[1, 0]]).await;
    join(&mut c, 0, t0).await;
    for i in 0..2 {
        c.alter_partition(alter_from_leader(&c, "t", i, &[1, 0]))
            .await
            .unwrap();
    }
    c
}

fn leaders<S: MetadataStore>(c: &Controller<S>) -> Vec<Option<BrokerId>> {
    c.metadata().topics["t"]
        .partitions
        .iter()
        .map(|p| p.leader)
        .collect()
}

#[tokio::test]
async fn tick_rebalances_leaders_every_check_interval() {
    let t0 = Instant::now();
    let config = ControllerConfig {
        leader_imbalance_check_interval_seconds: 30,
        broker_session_timeout_ms: 60_000,
        ..ControllerConfig::default()
    };
    let mut c = imbalanced(config, t0).await;
    assert_eq!(leaders(&c)[..2], [Some(BrokerId(1)), Some(BrokerId(1))]);

    let early = c.tick(t0 + ms(29_999)).await.unwrap();
    assert!(early.leaders_rebalanced.is_empty());
    let report = c.tick(t0 + ms(30_000)).await.unwrap();
    assert_eq!(report.leaders_rebalanced, vec![at("t", 0), at("t", 1)]);
    assert_eq!(leaders(&c), [0, 0, 1, 1].map(|i| Some(BrokerId(i))));
}

#[tokio::test]
async fn tick_leaves_leaders_alone_when_rebalancing_is_off() {
    let t0 = Instant::now();
    let config = ControllerConfig {
        auto_leader_rebalance_enable: false,
        leader_imbalance_check_interval_seconds: 1,
        broker_session_timeout_ms: 60_000,
        ..ControllerConfig::default()
    };
    let mut c = imbalanced(config, t0).await;
    let report = c.tick(t0 + ms(5000)).await.unwrap();
    assert!(report.leaders_rebalanced.is_empty());
    assert_eq!(leaders(&c)[..2], [Some(BrokerId(1)), Some(BrokerId(1))]);
}
