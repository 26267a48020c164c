//! The broker lifecycle through the Controller: registration, heartbeats, session
//! expiry, new incarnations and controlled shutdown, with their effect on partitions,
//! their Kafka error codes, and what they write to the store.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{FlakyStore, cluster_at, join, registration};
use weir_controller::{
    BrokerEpoch, BrokerId, BrokerInfo, ClusterMetadata, Controller, CreateTopic, FileMetadataStore,
    Heartbeat, Listener, MemoryMetadataStore, MetadataStore, PartitionState,
};

const TIMEOUT: Duration = Duration::from_millis(9000);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn b(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().copied().map(BrokerId).collect()
}

fn epoch_of<S: MetadataStore>(c: &Controller<S>, id: i32) -> BrokerEpoch {
    c.metadata().brokers[&BrokerId(id)].epoch
}

fn heartbeat(id: i32, epoch: BrokerEpoch) -> Heartbeat {
    Heartbeat {
        broker: BrokerId(id),
        broker_epoch: epoch,
    }
}

fn partition<S: MetadataStore>(c: &Controller<S>, topic: &str, index: usize) -> PartitionState {
    c.metadata().topics[topic].partitions[index].clone()
}

/// A topic with the given replica lists (all brokers must be live).
async fn topic_with<S: MetadataStore>(c: &mut Controller<S>, name: &str, replicas: &[&[i32]]) {
    let request = CreateTopic {
        name: name.into(),
        assignments: Some(replicas.iter().map(|r| b(r)).collect()),
        ..CreateTopic::default()
    };
    c.create_topic(request, false).await.unwrap();
}

#[tokio::test]
async fn a_registered_broker_is_fenced_until_its_first_heartbeat() {
    let t0 = Instant::now();
    let mut c = Controller::open(MemoryMetadataStore::new(), t0)
        .await
        .unwrap();
    let request = registration(&c.metadata().cluster_id, 4, Some("r1"));
    let epoch = c.register_broker(request).await.unwrap();
    assert_eq!(epoch, BrokerEpoch(1));
    let broker = &c.metadata().brokers[&BrokerId(4)];
    assert!(broker.fenced);
    assert_eq!(
        (broker.listeners.as_slice(), broker.rack.as_deref()),
        (
            [Listener::new("PLAINTEXT", "broker-4", 9092)].as_slice(),
            Some("r1")
        )
    );
    assert_eq!(c.metadata().last_broker_epoch, epoch);
    assert_eq!(c.session_deadline(BrokerId(4)), None);

    let reply = c.broker_heartbeat(heartbeat(4, epoch), t0).await.unwrap();
    assert!(!reply.fenced);
    assert!(!c.metadata().brokers[&BrokerId(4)].fenced);
    assert_eq!(c.session_deadline(BrokerId(4)), Some(t0 + TIMEOUT));
}

#[tokio::test]
async fn registration_and_heartbeat_refusals_carry_kafkas_codes() {
    let t0 = Instant::now();
    let (mut c, _) = cluster_at(1, t0).await;
    let epoch = epoch_of(&c, 0);

    let err = c
        .register_broker(registration("another-cluster", 1, None))
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 104, "{err}");
    assert!(err.to_string().contains("'another-cluster'"), "{err}");

    let err = c
        .broker_heartbeat(heartbeat(7, epoch), t0)
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 102, "{err}");
    assert_eq!(err.to_string(), "broker 7 is not registered");

    let err = c
        .broker_heartbeat(heartbeat(0, BrokerEpoch(epoch.0 + 1)), t0)
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 77, "{err}");

    let mut no_listeners = registration(&c.metadata().cluster_id, 2, None);
    no_listeners.listeners.clear();
    let err = c.register_broker(no_listeners).await.unwrap_err();
    assert_eq!(err.kafka_error_code(), 42, "{err}");
    assert!(!c.metadata().brokers.contains_key(&BrokerId(2)));
}

#[tokio::test]
async fn only_durable_changes_write_the_store() {
    let t0 = Instant::now();
    let store = FlakyStore::default();
    let mut c = Controller::open(store.clone(), t0).await.unwrap();
    let request = registration(&c.metadata().cluster_id, 1, None);
    let saves = store.saves();

    let epoch = c.register_broker(request.clone()).await.unwrap();
    assert_eq!(store.saves(), saves + 1, "a new incarnation is durable");
    assert_eq!(c.register_broker(request.clone()).await.unwrap(), epoch);
    assert_eq!(
        store.saves(),
        saves + 1,
        "an identical retry writes nothing"
    );

    c.broker_heartbeat(heartbeat(1, epoch), t0).await.unwrap();
    assert_eq!(store.saves(), saves + 2, "unfencing is durable");
    for i in 1..=5 {
        c.broker_heartbeat(heartbeat(1, epoch), t0 + ms(i * 1000))
            .await
            .unwrap();
    }
    assert_eq!(
        store.saves(),
        saves + 2,
        "extending a session writes nothing"
    );
    assert_eq!(
        c.session_deadline(BrokerId(1)),
        Some(t0 + ms(5000) + TIMEOUT)
    );

    let mut moved = request;
    moved.listeners[0].port = 19092;
    assert_eq!(c.register_broker(moved).await.unwrap(), epoch);
    assert_eq!(
        store.saves(),
        saves + 3,
        "a retry with a new endpoint is durable"
    );
    assert_eq!(
        c.metadata().brokers[&BrokerId(1)].listeners,
        [Listener::new("PLAINTEXT", "broker-1", 19092)]
    );
    assert!(
        !c.metadata().brokers[&BrokerId(1)].fenced,
        "a retry keeps the session"
    );

    let report = c.tick(t0 + ms(5000)).await.unwrap();
    assert!(report.fenced.is_empty());
    assert_eq!(
        store.saves(),
        saves + 3,
        "a tick with nothing to do writes nothing"
    );
}

#[tokio::test]
async fn an_expired_leader_hands_over_to_the_next_in_sync_replica() {
    let t0 = Instant::now();
    let (mut c, _) = cluster_at(3, t0).await;
    topic_with(&mut c, "t", &[&[0, 1, 2]]).await;
    // Brokers 1 and 2 keep heartbeating; 0 goes silent.
    for id in [1, 2] {
        c.broker_heartbeat(heartbeat(id, epoch_of(&c, id)), t0 + ms(5000))
            .await
            .unwrap();
    }
    let report = c.tick(t0 + ms(8999)).await.unwrap();
    assert!(report.fenced.is_empty());

    let report = c.tick(t0 + TIMEOUT).await.unwrap();
    assert_eq!(report.fenced, b(&[0]));
    assert!(c.metadata().brokers[&BrokerId(0)].fenced);
    let p = partition(&c, "t", 0);
    assert_eq!(p.leader, Some(BrokerId(1)));
    assert_eq!(p.isr, b(&[1, 2]));
    assert_eq!((p.leader_epoch, p.partition_epoch), (1, 1));
    assert_eq!(c.session_deadline(BrokerId(0)), None);

    // The broker comes back: unfenced, but it rejoins the ISR only through its leader.
    let reply = c
        .broker_heartbeat(heartbeat(0, epoch_of(&c, 0)), t0 + ms(10_000))
        .await
        .unwrap();
    assert!(!reply.fenced);
    assert_eq!(partition(&c, "t", 0), p);
}

#[tokio::test]
async fn the_last_isr_member_stays_when_fenced_and_leads_again_when_back() {
    let t0 = Instant::now();
    let (mut c, _) = cluster_at(2, t0).await;
    topic_with(&mut c, "t", &[&[0, 1]]).await;
    let shrink = weir_controller::AlterPartition {
        broker: BrokerId(0),
        broker_epoch: epoch_of(&c, 0),
        topic_id: c.metadata().topics["t"].id,
        partition: 0,
        leader_epoch: 0,
        partition_epoch: 0,
        new_isr: b(&[0]),
    };
    c.alter_partition(shrink).await.unwrap();
    c.broker_heartbeat(heartbeat(1, epoch_of(&c, 1)), t0 + ms(5000))
        .await
        .unwrap();

    assert_eq!(c.tick(t0 + TIMEOUT).await.unwrap().fenced, b(&[0]));
    let offline = partition(&c, "t", 0);
    assert_eq!(offline.leader, None, "unavailable rather than lossy");
    assert_eq!(offline.isr, b(&[0]));
    assert_eq!(offline.leader_epoch, 1);

    c.broker_heartbeat(heartbeat(0, epoch_of(&c, 0)), t0 + ms(12_000))
        .await
        .unwrap();
    let back = partition(&c, "t", 0);
    assert_eq!(back.leader, Some(BrokerId(0)));
    assert_eq!(back.isr, b(&[0]));
    assert_eq!(back.leader_epoch, 2);
    assert_eq!(back.partition_epoch, offline.partition_epoch + 1);
}

#[tokio::test]
async fn unclean_topics_elect_a_live_out_of_sync_replica_when_the_isr_is_gone() {
    let t0 = Instant::now();
    let (mut c, _) = cluster_at(2, t0).await;
    let request = CreateTopic {
        name: "lossy".into(),
        assignments: Some(vec![b(&[0, 1])]),
        configs: BTreeMap::from([("unclean.leader.election.enable".into(), "true".into())]),
        ..CreateTopic::default()
    };
    c.create_topic(request, false).await.unwrap();
    let shrink = weir_controller::AlterPartition {
        broker: BrokerId(0),
        broker_epoch: epoch_of(&c, 0),
        topic_id: c.metadata().topics["lossy"].id,
        partition: 0,
        leader_epoch: 0,
        partition_epoch: 0,
        new_isr: b(&[0]),
    };
    c.alter_partition(shrink).await.unwrap();
    c.broker_heartbeat(heartbeat(1, epoch_of(&c, 1)), t0 + ms(5000))
        .await
        .unwrap();
    c.tick(t0 + TIMEOUT).await.unwrap();
    let p = partition(&c, "lossy", 0);
    assert_eq!(p.leader, Some(BrokerId(1)));
    assert_eq!(p.isr, b(&[1]));
}

#[tokio::test]
async fn a_new_incarnation_fences_the_old_one_and_its_leaderships() {
    let t0 = Instant::now();
    let (mut c, _) = cluster_at(2, t0).await;
    topic_with(&mut c, "t", &[&[0, 1], &[1, 0]]).await;
    let old = epoch_of(&c, 0);

    let request = registration(&c.metadata().cluster_id, 0, None);
    let new = c.register_broker(request).await.unwrap();
    assert!(new > old && new > epoch_of(&c, 1));
    assert!(c.metadata().brokers[&BrokerId(0)].fenced);
    assert_eq!(c.session_deadline(BrokerId(0)), None);
    for i in 0..2 {
        let p = partition(&c, "t", i);
        assert_eq!(p.leader, Some(BrokerId(1)));
        assert_eq!(p.isr, b(&[1]));
    }
    let err = c.broker_heartbeat(heartbeat(0, old), t0).await.unwrap_err();
    assert_eq!(err.kafka_error_code(), 77);
    c.broker_heartbeat(heartbeat(0, new), t0).await.unwrap();
    assert!(!c.metadata().brokers[&BrokerId(0)].fenced);
}

#[tokio::test]
async fn controlled_shutdown_moves_leaderships_and_reports_what_it_cannot_move() {
    let t0 = Instant::now();
    let (mut c, _) = cluster_at(3, t0).await;
    topic_with(&mut c, "t", &[&[0, 1, 2], &[0, 2, 1], &[1, 0, 2]]).await;
    topic_with(&mut c, "solo", &[&[0]]).await;
    let epoch = epoch_of(&c, 0);

    let reply = c.controlled_shutdown(BrokerId(0), epoch).await.unwrap();
    assert_eq!(reply.remaining_leaders, 1, "solo-0 has no other replica");
    assert!(c.metadata().brokers[&BrokerId(0)].in_controlled_shutdown);
    let leaders: Vec<Option<BrokerId>> = (0..3).map(|i| partition(&c, "t", i).leader).collect();
    assert_eq!(
        leaders,
        vec![Some(BrokerId(1)), Some(BrokerId(2)), Some(BrokerId(1))]
    );
    for i in 0..3 {
        assert!(!partition(&c, "t", i).isr.contains(&BrokerId(0)));
    }
    let solo = partition(&c, "solo", 0);
    assert_eq!((solo.leader, solo.isr), (Some(BrokerId(0)), b(&[0])));

    // A heartbeat keeps the session but does not make the broker eligible again.
    let reply = c
        .broker_heartbeat(heartbeat(0, epoch), t0 + ms(1000))
        .await
        .unwrap();
    assert!(reply.fenced);
    assert!(!c.metadata().brokers[&BrokerId(0)].fenced);
    let version = c.metadata().version;
    let again = c.controlled_shutdown(BrokerId(0), epoch).await.unwrap();
    assert_eq!(again.remaining_leaders, 1);
    assert_eq!(
        c.metadata().version,
        version,
        "a repeated step changes nothing"
    );

    let err = c
        .controlled_shutdown(BrokerId(0), BrokerEpoch(epoch.0 - 1))
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 77);
    let err = c.controlled_shutdown(BrokerId(9), epoch).await.unwrap_err();
    assert_eq!(err.kafka_error_code(), 102);
}

#[tokio::test]
async fn a_draining_leader_adds_a_caught_up_follower_which_takes_over() {
    let t0 = Instant::now();
    let (mut c, _) = cluster_at(2, t0).await;
    topic_with(&mut c, "t", &[&[0, 1]]).await;
    let topic_id = c.metadata().topics["t"].id;
    let alter = |epoch, isr: &[i32], p: &PartitionState| weir_controller::AlterPartition {
        broker: BrokerId(0),
        broker_epoch: epoch,
        topic_id,
        partition: 0,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: b(isr),
    };
    let epoch = epoch_of(&c, 0);
    c.alter_partition(alter(epoch, &[0], &partition(&c, "t", 0)))
        .await
        .unwrap();
    assert_eq!(
        c.controlled_shutdown(BrokerId(0), epoch)
            .await
            .unwrap()
            .remaining_leaders,
        1
    );

    let committed = c
        .alter_partition(alter(epoch, &[0, 1], &partition(&c, "t", 0)))
        .await
        .unwrap();
    assert_eq!(
        committed.leader,
        Some(BrokerId(1)),
        "Kafka: NEW_LEADER_ELECTED"
    );
    assert_eq!(committed.isr, b(&[1]));
    assert_eq!(
        c.controlled_shutdown(BrokerId(0), epoch)
            .await
            .unwrap()
            .remaining_leaders,
        0
    );
}

#[tokio::test]
async fn a_failed_commit_leaves_brokers_and_sessions_as_they_were() {
    let t0 = Instant::now();
    let store = FlakyStore::default();
    let mut c = Controller::open(store.clone(), t0).await.unwrap();
    join(&mut c, 0, t0).await;
    let request = registration(&c.metadata().cluster_id, 1, None);
    let epoch = c.register_broker(request).await.unwrap();

    store.set_failing(true);
    assert!(c.broker_heartbeat(heartbeat(1, epoch), t0).await.is_err());
    assert!(c.metadata().brokers[&BrokerId(1)].fenced);
    assert_eq!(
        c.session_deadline(BrokerId(1)),
        None,
        "no session while fenced"
    );

    assert!(c.tick(t0 + TIMEOUT).await.is_err());
    assert!(!c.metadata().brokers[&BrokerId(0)].fenced);
    store.set_failing(false);
    let report = c.tick(t0 + TIMEOUT).await.unwrap();
    assert_eq!(report.fenced, b(&[0]), "the expiry is retried");
    assert!(c.metadata().brokers[&BrokerId(0)].fenced);
}

#[tokio::test]
async fn placement_uses_live_brokers_only() {
    let t0 = Instant::now();
    let (mut c, _) = cluster_at(3, t0).await;
    let epoch = epoch_of(&c, 2);
    c.controlled_shutdown(BrokerId(2), epoch).await.unwrap();

    let request = CreateTopic {
        name: "t".into(),
        num_partitions: Some(4),
        replication_factor: Some(2),
        ..CreateTopic::default()
    };
    let created = c.create_topic(request, false).await.unwrap();
    for p in &created.partitions {
        assert!(!p.replicas.contains(&BrokerId(2)), "{p:?}");
    }
    let too_many = CreateTopic {
        name: "u".into(),
        replication_factor: Some(3),
        ..CreateTopic::default()
    };
    let err = c.create_topic(too_many, false).await.unwrap_err();
    assert_eq!(err.kafka_error_code(), 38);
    assert!(
        err.to_string().contains("only 2 broker(s) are available"),
        "{err}"
    );

    let grown = c.create_partitions("t", 6, None, false).await.unwrap();
    for p in &grown.partitions {
        assert!(!p.replicas.contains(&BrokerId(2)), "{p:?}");
    }
}

#[tokio::test]
async fn manual_assignments_may_name_unavailable_brokers_outside_the_isr() {
    let t0 = Instant::now();
    let (mut c, _) = cluster_at(3, t0).await;
    c.controlled_shutdown(BrokerId(0), epoch_of(&c, 0))
        .await
        .unwrap();
    topic_with(&mut c, "t", &[&[0, 1, 2]]).await;
    let p = partition(&c, "t", 0);
    assert_eq!(p.replicas, b(&[0, 1, 2]));
    assert_eq!(p.isr, b(&[1, 2]));
    assert_eq!(p.leader, Some(BrokerId(1)));

    let request = CreateTopic {
        name: "u".into(),
        assignments: Some(vec![b(&[0])]),
        ..CreateTopic::default()
    };
    let err = c.create_topic(request, false).await.unwrap_err();
    assert_eq!(err.kafka_error_code(), 39);
    assert_eq!(
        err.to_string(),
        "All brokers specified in the manual partition assignment for partition 0 are fenced or in controlled shutdown."
    );
}

#[tokio::test]
async fn a_restart_keeps_broker_and_leader_epochs_monotonic_and_sessions_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.json");
    let t0 = Instant::now();
    let mut c = Controller::open(FileMetadataStore::new(path.clone()), t0)
        .await
        .unwrap();
    for id in 0..3 {
        join(&mut c, id, t0).await;
    }
    topic_with(&mut c, "t", &[&[0, 1, 2]]).await;
    c.controlled_shutdown(BrokerId(0), epoch_of(&c, 0))
        .await
        .unwrap();
    let before = c.metadata().clone();
    assert_eq!(before.last_broker_epoch, BrokerEpoch(3));
    assert_eq!(before.topics["t"].partitions[0].leader_epoch, 1);
    drop(c);

    // Restarted a minute later: every unfenced broker gets a fresh session.
    let t1 = t0 + ms(60_000);
    let mut c = Controller::open(FileMetadataStore::new(path.clone()), t1)
        .await
        .unwrap();
    assert_eq!(c.metadata(), &before);
    assert_eq!(c.session_deadline(BrokerId(1)), Some(t1 + TIMEOUT));
    assert!(c.tick(t1 + ms(1)).await.unwrap().fenced.is_empty());

    let epoch = join(&mut c, 0, t1).await;
    assert_eq!(epoch, BrokerEpoch(4), "never an epoch handed out before");
    drop(c);
    let mut c = Controller::open(FileMetadataStore::new(path), t1)
        .await
        .unwrap();
    let epoch = join(&mut c, 1, t1).await;
    assert_eq!(epoch, BrokerEpoch(5));
    let p = partition(&c, "t", 0);
    assert!(p.leader_epoch > 1, "{p:?}");
}

#[tokio::test]
async fn brokers_written_before_registration_existed_still_load() {
    let store = MemoryMetadataStore::new();
    let legacy = BrokerInfo::new(
        BrokerId(0),
        None,
        vec![Listener::new("PLAINTEXT", "127.0.0.1", 9092)],
    );
    let metadata: ClusterMetadata = serde_json::from_str(
        r#"{"cluster_id":"MkU3OEVBNTcwNTJENDM2Qk","version":3,"brokers":{"0":{"id":0,"rack":null,"host":"127.0.0.1","port":9092}},"topics":{}}"#,
    )
    .unwrap();
    assert_eq!(metadata.brokers[&BrokerId(0)], legacy);
    store.save(&metadata, None).await.unwrap();

    let t0 = Instant::now();
    let mut c = Controller::open(store, t0).await.unwrap();
    assert_eq!(c.session_deadline(BrokerId(0)), Some(t0 + TIMEOUT));
    let err = c
        .broker_heartbeat(heartbeat(0, BrokerEpoch(0)), t0)
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 102, "it must register first");
    let epoch = join(&mut c, 0, t0).await;
    assert_eq!(epoch, BrokerEpoch(1));
    assert!(c.metadata().brokers[&BrokerId(0)].incarnation.is_some());
}

#[tokio::test]
async fn a_cluster_file_from_before_listeners_loads_and_registration_keeps_every_listener() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("__cluster_metadata.json");
    // Written by a controller that kept one endpoint per broker.
    std::fs::write(
        &path,
        r#"{"format":1,"metadata":{"cluster_id":"MkU3OEVBNTcwNTJENDM2Qk","version":5,"brokers":{
            "1":{"id":1,"rack":"r1","host":"pod-1.weir.svc","port":9092,"epoch":3,
                 "incarnation":"6f1c2e0b-8f7e-4c1a-9d2b-3c4d5e6f7a8b","fenced":false,
                 "in_controlled_shutdown":false}},
           "topics":{},"next_producer_id":1000,"last_broker_epoch":3}}"#,
    )
    .unwrap();
    let t0 = Instant::now();
    let mut c = Controller::open(FileMetadataStore::new(path.clone()), t0)
        .await
        .unwrap();
    let old = &c.metadata().brokers[&BrokerId(1)];
    assert_eq!(
        old.listeners,
        [Listener::new("PLAINTEXT", "pod-1.weir.svc", 9092)]
    );
    assert_eq!(
        (old.epoch, old.rack.as_deref()),
        (BrokerEpoch(3), Some("r1"))
    );
    assert!(!old.fenced);

    let mut request = registration(&c.metadata().cluster_id, 1, Some("r1"));
    request.listeners = vec![
        Listener::new("INTERNAL", "pod-1.weir.svc", 9092),
        Listener::new("EXTERNAL", "kafka-1.example.com", 31000),
    ];
    let epoch = c.register_broker(request.clone()).await.unwrap();
    assert_eq!(epoch, BrokerEpoch(4));
    drop(c);

    // The file now holds both listeners, in the new format, and reads back.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("kafka-1.example.com") && text.contains(r#""format": 2"#),
        "{text}"
    );
    let reopened = Controller::open(FileMetadataStore::new(path), t0)
        .await
        .unwrap();
    assert_eq!(
        reopened.metadata().brokers[&BrokerId(1)].listeners,
        request.listeners
    );
}
