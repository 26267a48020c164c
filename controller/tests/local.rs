//! The ControlPlane of the controller in this process: every trait method through
//! LocalControlPlane, committed versions, the metadata watch, and tick on a paused
//! clock.

mod common;

use std::time::Duration;

use common::registration;
use weir_controller::{
    AlterPartition, BrokerId, ConfigChange, ConfigOp, ControlPlane, Controller, CreateTopic,
    ElectionType, Heartbeat, LocalControlPlane, MemoryMetadataStore, PartitionRef,
    ReassignmentChange, TopicRef,
};

async fn plane() -> LocalControlPlane<MemoryMetadataStore> {
    let now = tokio::time::Instant::now().into_std();
    let controller = Controller::open(MemoryMetadataStore::new(), now)
        .await
        .unwrap();
    LocalControlPlane::new(controller)
}

async fn cluster_id(plane: &LocalControlPlane<MemoryMetadataStore>) -> String {
    plane
        .controller()
        .lock()
        .await
        .metadata()
        .cluster_id
        .clone()
}

/// Registers and unfences broker `id`; returns its epoch.
async fn join(
    plane: &LocalControlPlane<MemoryMetadataStore>,
    id: i32,
) -> weir_controller::BrokerEpoch {
    let registered = plane
        .register_broker(registration(&cluster_id(plane).await, id, None))
        .await
        .unwrap();
    assert_eq!(registered.session_timeout_ms, 9000);
    let reply = plane
        .broker_heartbeat(Heartbeat {
            broker: BrokerId(id),
            broker_epoch: registered.broker_epoch,
        })
        .await
        .unwrap();
    assert!(!reply.fenced);
    registered.broker_epoch
}

#[tokio::test(start_paused = true)]
async fn brokers_join_and_are_fenced_when_they_stop_heartbeating() {
    let plane = plane().await;
    let mut watch = plane.watch_metadata().await.unwrap();
    watch.mark_unchanged();
    let e0 = join(&plane, 0).await;
    let e1 = join(&plane, 1).await;
    assert!(watch.has_changed().unwrap());
    assert_eq!(watch.borrow_and_update().brokers.len(), 2);

    tokio::time::advance(Duration::from_millis(5000)).await;
    let hb = Heartbeat {
        broker: BrokerId(1),
        broker_epoch: e1,
    };
    plane.broker_heartbeat(hb).await.unwrap();
    assert!(plane.tick().await.unwrap().fenced.is_empty());

    tokio::time::advance(Duration::from_millis(4000)).await;
    let report = plane.tick().await.unwrap();
    assert_eq!(report.fenced, vec![BrokerId(0)]);
    assert!(watch.borrow_and_update().brokers[&BrokerId(0)].fenced);

    let hb = Heartbeat {
        broker: BrokerId(0),
        broker_epoch: e0,
    };
    assert!(!plane.broker_heartbeat(hb).await.unwrap().fenced);
}

#[tokio::test(start_paused = true)]
async fn mutations_return_the_version_that_committed_them() {
    let plane = plane().await;
    let epoch = join(&plane, 0).await;
    let create = CreateTopic {
        name: "orders".into(),
        num_partitions: Some(2),
        ..CreateTopic::default()
    };
    let planned = plane.create_topic(create.clone(), true).await.unwrap();
    let version = plane.controller().lock().await.metadata().version;
    assert_eq!(
        planned.version, version,
        "validate_only carries the current version"
    );
    let created = plane.create_topic(create, false).await.unwrap();
    assert_eq!(created.version, version + 1);
    let watch = plane.watch_metadata().await.unwrap();
    assert_eq!(watch.borrow().version, created.version);
    assert!(watch.borrow().topic("orders").is_some());

    let grown = plane
        .create_partitions("orders", 3, None, false)
        .await
        .unwrap();
    assert_eq!(
        (grown.version, grown.value.partitions.len()),
        (version + 2, 3)
    );
    let change = ConfigChange::Incremental(vec![ConfigOp::Set("retention.ms".into(), "1".into())]);
    let altered = plane
        .alter_topic_configs("orders", change, false)
        .await
        .unwrap();
    assert_eq!(altered.version, version + 3);
    let replaced = plane
        .alter_topic_configs("orders", ConfigChange::Replace(Default::default()), false)
        .await
        .unwrap();
    assert!(replaced.value.configs.is_empty());

    let ids = plane
        .allocate_producer_ids(BrokerId(0), epoch, 100)
        .await
        .unwrap();
    assert_eq!(ids, 0..100);

    let p = replaced.value.partitions[0].clone();
    let alter = AlterPartition {
        broker: BrokerId(0),
        broker_epoch: epoch,
        topic_id: replaced.value.id,
        partition: 0,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: vec![BrokerId(0)],
    };
    let unchanged = plane.alter_partition(alter).await.unwrap();
    assert_eq!(unchanged.value, p);

    let deleted = plane
        .delete_topic(TopicRef::Id(replaced.value.id))
        .await
        .unwrap();
    assert_eq!(deleted.value.name.as_str(), "orders");
    let err = plane
        .delete_topic(TopicRef::Name("orders".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 3);
}

#[tokio::test(start_paused = true)]
async fn admin_partition_operations_go_through_the_plane() {
    let plane = plane().await;
    let e0 = join(&plane, 0).await;
    join(&plane, 1).await;
    let create = CreateTopic {
        name: "t".into(),
        assignments: Some(vec![vec![BrokerId(0)]]),
        ..CreateTopic::default()
    };
    plane.create_topic(create, false).await.unwrap();
    let at = PartitionRef {
        topic: "t".into(),
        partition: 0,
    };
    let results = plane
        .alter_reassignments(vec![ReassignmentChange {
            partition: at.clone(),
            target: Some(vec![BrokerId(1), BrokerId(0)]),
        }])
        .await
        .unwrap();
    assert!(results[0].1.is_ok());
    let ongoing = plane.list_reassignments(None).await.unwrap();
    assert_eq!(ongoing.len(), 1);
    assert_eq!(ongoing[0].adding, vec![BrokerId(1)]);

    let elections = plane
        .elect_leaders(ElectionType::Preferred, Some(vec![at]))
        .await
        .unwrap();
    let err = elections[0].result.as_ref().unwrap_err();
    assert_eq!(err.kafka_error_code(), 80, "1 is not in sync yet: {err}");

    let drained = plane.controlled_shutdown(BrokerId(0), e0).await.unwrap();
    assert_eq!(drained.remaining_leaders, 1);
}
