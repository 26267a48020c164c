use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use weir_controller::metadata::{BrokerInfo, ClusterMetadata, PartitionState, TopicMetadata};
use weir_controller::{BrokerId, Listener, TopicId, TopicName};

use super::*;

fn names() -> Names {
    Names::new("demo", "kafka")
}

fn pod(id: i32, revision: &str, ready: bool) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(names().pod(id)),
            labels: Some(BTreeMap::from([(
                REVISION_LABEL.to_owned(),
                revision.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        status: Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".to_owned(),
                status: if ready { "True" } else { "False" }.to_owned(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
        ..Pod::default()
    }
}

fn statefulset(revision: &str) -> StatefulSet {
    StatefulSet {
        status: Some(StatefulSetStatus {
            update_revision: Some(revision.to_owned()),
            ..StatefulSetStatus::default()
        }),
        ..StatefulSet::default()
    }
}

/// Three brokers registered; one partition on all three with `isr`.
fn metadata(isr: &[i32]) -> ClusterMetadata {
    let mut m = ClusterMetadata::empty("id", 3);
    for id in 0..3 {
        m.brokers.insert(
            BrokerId(id),
            BrokerInfo::new(
                BrokerId(id),
                None,
                vec![Listener::new("PLAINTEXT", "h", 9092)],
            ),
        );
    }
    let mut p = PartitionState::new(0, vec![BrokerId(0), BrokerId(1), BrokerId(2)]);
    p.isr = isr.iter().map(|b| BrokerId(*b)).collect();
    m.topics.insert(
        "t".into(),
        TopicMetadata {
            name: TopicName::new("t").unwrap(),
            id: TopicId::random(),
            partitions: vec![p],
            configs: BTreeMap::new(),
        },
    );
    m
}

fn now() -> Time {
    Time(Timestamp::from_second(1_000).unwrap())
}

fn condition<'a>(conditions: &'a [Condition], kind: &str) -> &'a Condition {
    conditions.iter().find(|c| c.type_ == kind).unwrap()
}

#[test]
fn a_healthy_current_cluster_is_ready_and_restarts_nobody() {
    let pods: Vec<Pod> = (0..3).map(|i| pod(i, "r2", true)).collect();
    let observed = observe(
        &names(),
        3,
        Some(&statefulset("r2")),
        &pods,
        Some(&metadata(&[0, 1, 2])),
    );
    assert!(observed.healthy());
    assert_eq!(observed.next_restart(), None);
    assert_eq!(observed.ready_brokers, 3);
    let conditions = observed.conditions(&[], Some(4), &now());
    assert_eq!(condition(&conditions, "Ready").status, "True");
    assert_eq!(condition(&conditions, "Progressing").status, "False");
    assert_eq!(condition(&conditions, "Degraded").status, "False");
    assert_eq!(condition(&conditions, "Ready").observed_generation, Some(4));
}

#[test]
fn a_new_revision_restarts_the_highest_ordinal_first_one_at_a_time() {
    let pods = vec![pod(0, "r1", true), pod(1, "r1", true), pod(2, "r1", true)];
    let observed = observe(
        &names(),
        3,
        Some(&statefulset("r2")),
        &pods,
        Some(&metadata(&[0, 1, 2])),
    );
    assert_eq!(observed.next_restart(), Some("demo-broker-2"));
    let conditions = observed.conditions(&[], Some(5), &now());
    assert_eq!(
        condition(&conditions, "Progressing").reason,
        "RollingRestart"
    );

    // Broker 2 restarted but is not back in the ISR yet: nobody else may go.
    let pods = vec![pod(0, "r1", true), pod(1, "r1", true), pod(2, "r2", true)];
    let observed = observe(
        &names(),
        3,
        Some(&statefulset("r2")),
        &pods,
        Some(&metadata(&[0, 1])),
    );
    assert!(!observed.brokers[2].in_sync);
    assert_eq!(observed.under_replicated_partitions, 1);
    assert_eq!(observed.next_restart(), None);
    let conditions = observed.conditions(&[], Some(5), &now());
    assert_eq!(
        condition(&conditions, "Degraded").reason,
        "UnderReplicatedPartitions"
    );
    assert_eq!(condition(&conditions, "Ready").status, "False");

    // Back in sync: the next one goes.
    let observed = observe(
        &names(),
        3,
        Some(&statefulset("r2")),
        &pods,
        Some(&metadata(&[0, 1, 2])),
    );
    assert_eq!(observed.next_restart(), Some("demo-broker-1"));
}

#[test]
fn a_pod_that_is_not_ready_blocks_restarts_and_readiness() {
    let pods = vec![pod(0, "r1", true), pod(1, "r1", false), pod(2, "r1", true)];
    let observed = observe(
        &names(),
        3,
        Some(&statefulset("r2")),
        &pods,
        Some(&metadata(&[0, 1, 2])),
    );
    assert_eq!(observed.next_restart(), None);
    let conditions = observed.conditions(&[], None, &now());
    assert_eq!(condition(&conditions, "Ready").reason, "BrokersNotReady");
}

#[test]
fn missing_pods_and_unregistered_brokers_are_not_ready() {
    let pods = vec![pod(0, "r1", true)];
    let mut m = metadata(&[0, 1, 2]);
    m.brokers.get_mut(&BrokerId(1)).unwrap().fenced = true;
    let observed = observe(&names(), 3, Some(&statefulset("r1")), &pods, Some(&m));
    assert_eq!(observed.ready_brokers, 1);
    assert!(!observed.brokers[1].registered);
    let conditions = observed.conditions(&[], None, &now());
    assert_eq!(
        condition(&conditions, "Progressing").reason,
        "BrokersStarting"
    );
}
