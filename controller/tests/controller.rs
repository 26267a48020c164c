//! Controller behaviour through the public API: topic operations, their Kafka
//! error codes, validate_only, commits through the store, and reopening.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::{FlakyStore, cluster_at, join};
use weir_controller::{
    BrokerId, ConfigOp, Controller, ControllerConfig, ControllerDefaults, ControllerError,
    CreateTopic, FileMetadataStore, MemoryMetadataStore, MetadataStore, StoreError, TopicId,
};

fn topic(name: &str) -> CreateTopic {
    CreateTopic {
        name: name.into(),
        ..CreateTopic::default()
    }
}

fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// One registered, unfenced broker (0).
async fn single_node() -> (Controller<MemoryMetadataStore>, MemoryMetadataStore) {
    cluster_at(1, Instant::now()).await
}

async fn cluster_of(n: i32) -> (Controller<MemoryMetadataStore>, MemoryMetadataStore) {
    cluster_at(n, Instant::now()).await
}

#[tokio::test]
async fn opening_an_empty_store_creates_a_cluster_without_brokers() {
    let store = MemoryMetadataStore::new();
    let controller = Controller::open(store.clone(), Instant::now())
        .await
        .unwrap();
    let metadata = controller.metadata();
    assert_eq!(metadata.cluster_id.len(), 22);
    assert_eq!(metadata.version, 1);
    assert!(
        metadata.brokers.is_empty(),
        "brokers appear only by registering"
    );
    assert_eq!(store.load().await.unwrap().as_ref(), Some(metadata));
}

#[tokio::test]
async fn reopening_keeps_the_cluster_id_and_writes_nothing() {
    let (controller, store) = single_node().await;
    let before = controller.metadata().clone();
    drop(controller);

    let same = Controller::open(store.clone(), Instant::now())
        .await
        .unwrap();
    assert_eq!(same.metadata(), &before);
    assert_eq!(store.load().await.unwrap().as_ref(), Some(&before));
}

#[tokio::test]
async fn invalid_config_is_refused_at_open() {
    let config = ControllerConfig {
        broker_session_timeout_ms: 0,
        ..ControllerConfig::default()
    };
    let err = Controller::open_with_config(MemoryMetadataStore::new(), config, Instant::now())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("broker.session.timeout.ms"),
        "{err}"
    );
}

#[tokio::test]
async fn create_topic_uses_the_defaults_and_the_first_replica_leads() {
    let store = MemoryMetadataStore::new();
    let config = ControllerConfig {
        defaults: ControllerDefaults {
            num_partitions: 3,
            replication_factor: 1,
        },
        ..ControllerConfig::default()
    };
    let now = Instant::now();
    let mut controller = Controller::open_with_config(store.clone(), config, now)
        .await
        .unwrap();
    join(&mut controller, 0, now).await;
    let version = controller.metadata().version;

    let created = controller
        .create_topic(topic("orders"), false)
        .await
        .unwrap();
    assert_eq!(created.name.as_str(), "orders");
    assert!(!created.id.0.is_nil());
    assert_eq!(created.partitions.len(), 3);
    for (i, p) in (0..).zip(&created.partitions) {
        assert_eq!(p.partition, i);
        assert_eq!(p.replicas, vec![BrokerId(0)]);
        assert_eq!(p.isr, p.replicas);
        assert_eq!(p.leader, Some(BrokerId(0)));
        assert_eq!((p.leader_epoch, p.partition_epoch), (0, 0));
    }
    assert_eq!(controller.metadata().topic("orders"), Some(&created));
    assert_eq!(controller.metadata().version, version + 1);
    assert_eq!(
        store.load().await.unwrap().unwrap().topic("orders"),
        Some(&created)
    );
}

#[tokio::test]
async fn create_topic_places_replicas_over_all_registered_brokers() {
    let (mut controller, _) = cluster_of(3).await;
    let req = CreateTopic {
        num_partitions: Some(6),
        replication_factor: Some(3),
        ..topic("orders")
    };
    let created = controller.create_topic(req, false).await.unwrap();
    let mut leaders = BTreeMap::new();
    for p in &created.partitions {
        let mut replicas = p.replicas.clone();
        replicas.sort();
        assert_eq!(replicas, vec![BrokerId(0), BrokerId(1), BrokerId(2)]);
        assert_eq!(p.leader, Some(p.replicas[0]));
        *leaders.entry(p.replicas[0]).or_insert(0) += 1;
    }
    assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
}

#[tokio::test]
async fn create_topic_with_a_manual_assignment_keeps_it() {
    let (mut controller, _) = cluster_of(3).await;
    let assignment = vec![
        vec![BrokerId(2), BrokerId(0)],
        vec![BrokerId(1), BrokerId(2)],
    ];
    let req = CreateTopic {
        assignments: Some(assignment.clone()),
        ..topic("manual")
    };
    let created = controller.create_topic(req, false).await.unwrap();
    let got: Vec<Vec<BrokerId>> = created
        .partitions
        .iter()
        .map(|p| p.replicas.clone())
        .collect();
    assert_eq!(got, assignment);
    assert_eq!(created.partitions[0].leader, Some(BrokerId(2)));
}

#[tokio::test]
async fn create_topic_keeps_valid_config_overrides() {
    let (mut controller, _) = single_node().await;
    let req = CreateTopic {
        configs: configs(&[("cleanup.policy", "compact")]),
        ..topic("compacted")
    };
    let created = controller.create_topic(req, false).await.unwrap();
    assert_eq!(created.configs, configs(&[("cleanup.policy", "compact")]));
}

#[tokio::test]
async fn create_topic_refusals_carry_kafkas_error_codes() {
    let (mut controller, _) = single_node().await;
    controller.create_topic(topic("a.b"), false).await.unwrap();
    let version = controller.metadata().version;

    let one_broker_assignment =
        |brokers: Vec<i32>| Some(vec![brokers.into_iter().map(BrokerId).collect()]);
    let cases: Vec<(CreateTopic, i16)> = vec![
        (topic("a.b"), 36),
        (topic("a_b"), 17),
        (topic(""), 17),
        (topic("bad name"), 17),
        (topic(".."), 17),
        (
            CreateTopic {
                num_partitions: Some(0),
                ..topic("t")
            },
            37,
        ),
        (
            CreateTopic {
                num_partitions: Some(-2),
                ..topic("t")
            },
            37,
        ),
        (
            CreateTopic {
                replication_factor: Some(0),
                ..topic("t")
            },
            38,
        ),
        (
            CreateTopic {
                replication_factor: Some(2),
                ..topic("t")
            },
            38,
        ),
        (
            CreateTopic {
                assignments: one_broker_assignment(vec![7]),
                ..topic("t")
            },
            39,
        ),
        (
            CreateTopic {
                assignments: one_broker_assignment(vec![0, 0]),
                ..topic("t")
            },
            39,
        ),
        (
            CreateTopic {
                assignments: Some(vec![vec![]]),
                ..topic("t")
            },
            39,
        ),
        (
            CreateTopic {
                configs: configs(&[("retention.ms", "-2")]),
                ..topic("t")
            },
            40,
        ),
        (
            CreateTopic {
                configs: configs(&[("no.such.config", "1")]),
                ..topic("t")
            },
            40,
        ),
        (
            CreateTopic {
                assignments: one_broker_assignment(vec![0]),
                num_partitions: Some(1),
                ..topic("t")
            },
            42,
        ),
        (
            CreateTopic {
                assignments: one_broker_assignment(vec![0]),
                replication_factor: Some(1),
                ..topic("t")
            },
            42,
        ),
    ];
    for (req, code) in cases {
        let shown = format!("{req:?}");
        let err = controller.create_topic(req, false).await.unwrap_err();
        assert_eq!(err.kafka_error_code(), code, "{shown}: {err}");
    }
    assert_eq!(controller.metadata().topics.len(), 1);
    assert_eq!(controller.metadata().version, version);
}

#[tokio::test]
async fn create_topic_messages_are_kafkas() {
    let (mut controller, _) = single_node().await;
    controller.create_topic(topic("a.b"), false).await.unwrap();
    let message = |r: Result<_, ControllerError>| r.unwrap_err().to_string();

    assert_eq!(
        message(controller.create_topic(topic("a.b"), false).await),
        "Topic 'a.b' already exists."
    );
    assert_eq!(
        message(controller.create_topic(topic("a_b"), false).await),
        "Topic 'a_b' collides with existing topic: a.b"
    );
    assert_eq!(
        message(controller.create_topic(topic("x y"), false).await),
        "Topic name is invalid: 'x y' contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'"
    );
    let req = CreateTopic {
        replication_factor: Some(3),
        ..topic("t")
    };
    assert_eq!(
        message(controller.create_topic(req, false).await),
        "Unable to replicate the partition 3 time(s): The target replication factor of 3 cannot be reached because only 1 broker(s) are available (registered, unfenced and not in controlled shutdown)."
    );
    let req = CreateTopic {
        configs: configs(&[("segment.ms", "0")]),
        ..topic("t")
    };
    assert_eq!(
        message(controller.create_topic(req, false).await),
        "Invalid value 0 for configuration segment.ms: Value must be at least 1"
    );
}

#[tokio::test]
async fn validate_only_checks_everything_and_changes_nothing() {
    let (mut controller, store) = single_node().await;
    controller
        .create_topic(topic("orders"), false)
        .await
        .unwrap();
    let before = controller.metadata().clone();
    let mut updates = controller.subscribe();
    updates.mark_unchanged();

    let planned = controller
        .create_topic(topic("planned"), true)
        .await
        .unwrap();
    assert_eq!(planned.partitions.len(), 1);
    let err = controller
        .create_topic(topic("orders"), true)
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 36);

    let grown = controller
        .create_partitions("orders", 4, None, true)
        .await
        .unwrap();
    assert_eq!(grown.partitions.len(), 4);
    let err = controller
        .create_partitions("orders", 1, None, true)
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 37);

    let altered = controller
        .alter_topic_configs(
            "orders",
            vec![ConfigOp::Set("retention.ms".into(), "1".into())],
            true,
        )
        .await
        .unwrap();
    assert_eq!(altered.configs, configs(&[("retention.ms", "1")]));
    let err = controller
        .alter_topic_configs(
            "orders",
            vec![ConfigOp::Set("retention.ms".into(), "x".into())],
            true,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 40);

    assert_eq!(controller.metadata(), &before);
    assert_eq!(store.load().await.unwrap().as_ref(), Some(&before));
    assert!(!updates.has_changed().unwrap());
}

#[tokio::test]
async fn delete_topic_by_name_and_by_id() {
    let (mut controller, _) = single_node().await;
    let version = controller.metadata().version;
    let orders = controller
        .create_topic(topic("orders"), false)
        .await
        .unwrap();
    let audit = controller
        .create_topic(topic("audit"), false)
        .await
        .unwrap();

    let deleted = controller.delete_topic("orders").await.unwrap();
    assert_eq!(deleted, orders);
    let deleted = controller.delete_topic_by_id(audit.id).await.unwrap();
    assert_eq!(deleted, audit);
    assert!(controller.metadata().topics.is_empty());
    assert_eq!(controller.metadata().version, version + 4);

    let err = controller.delete_topic("orders").await.unwrap_err();
    assert_eq!(err.kafka_error_code(), 3);
    let err = controller.delete_topic_by_id(audit.id).await.unwrap_err();
    assert!(matches!(err, ControllerError::UnknownTopicId { id } if id == audit.id));
    assert_eq!(err.kafka_error_code(), 100);
    let err = controller
        .delete_topic_by_id(TopicId(uuid::Uuid::nil()))
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 100);
}

#[tokio::test]
async fn recreated_topic_gets_a_new_id() {
    let (mut controller, _) = single_node().await;
    let first = controller
        .create_topic(topic("orders"), false)
        .await
        .unwrap();
    controller.delete_topic("orders").await.unwrap();
    let second = controller
        .create_topic(topic("orders"), false)
        .await
        .unwrap();
    assert_ne!(first.id, second.id);
}

#[tokio::test]
async fn internal_topics_can_be_deleted_as_in_kafka() {
    // Kafka's controller deletes any topic; only the old ZooKeeper-era CLI refused
    // internal ones. The coordinators re-create them on demand.
    let (mut controller, _) = single_node().await;
    controller
        .create_topic(topic("__consumer_offsets"), false)
        .await
        .unwrap();
    controller.delete_topic("__consumer_offsets").await.unwrap();
    assert!(controller.metadata().topic("__consumer_offsets").is_none());
}

#[tokio::test]
async fn create_partitions_adds_partitions_led_by_their_first_replica() {
    let (mut controller, _) = cluster_of(3).await;
    let req = CreateTopic {
        num_partitions: Some(2),
        replication_factor: Some(2),
        ..topic("orders")
    };
    let created = controller.create_topic(req, false).await.unwrap();

    let grown = controller
        .create_partitions("orders", 5, None, false)
        .await
        .unwrap();
    assert_eq!(grown.id, created.id);
    assert_eq!(grown.partitions[..2], created.partitions[..]);
    for (i, p) in (0..).zip(&grown.partitions) {
        assert_eq!(p.partition, i);
        assert_eq!(p.replicas.len(), 2);
        assert_ne!(p.replicas[0], p.replicas[1]);
        assert_eq!(p.leader, Some(p.replicas[0]));
        assert_eq!(p.isr, p.replicas);
    }
    assert_eq!(controller.metadata().topic("orders"), Some(&grown));

    let manual = vec![vec![BrokerId(1), BrokerId(0)]];
    let grown = controller
        .create_partitions("orders", 6, Some(manual), false)
        .await
        .unwrap();
    assert_eq!(grown.partitions[5].replicas, vec![BrokerId(1), BrokerId(0)]);
}

#[tokio::test]
async fn create_partitions_refusals_carry_kafkas_codes_and_messages() {
    let (mut controller, _) = single_node().await;
    let req = CreateTopic {
        num_partitions: Some(3),
        ..topic("orders")
    };
    controller.create_topic(req, false).await.unwrap();

    let err = controller
        .create_partitions("orders", 2, None, false)
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 37);
    assert_eq!(
        err.to_string(),
        "The topic orders currently has 3 partition(s); 2 would not be an increase."
    );
    let err = controller
        .create_partitions("orders", 3, None, false)
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 37);
    assert_eq!(err.to_string(), "Topic already has 3 partition(s).");

    let err = controller
        .create_partitions("nope", 5, None, false)
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 3);

    let err = controller
        .create_partitions("orders", 5, Some(vec![vec![BrokerId(0)]]), false)
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 39);
    assert_eq!(
        err.to_string(),
        "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified."
    );
    let err = controller
        .create_partitions("orders", 4, Some(vec![vec![BrokerId(9)]]), false)
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 39);
    let err = controller
        .create_partitions(
            "orders",
            4,
            Some(vec![vec![BrokerId(0), BrokerId(0)]]),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 39);
    assert_eq!(
        controller
            .metadata()
            .topic("orders")
            .unwrap()
            .partitions
            .len(),
        3
    );
}

#[tokio::test]
async fn alter_topic_configs_applies_incremental_ops() {
    let (mut controller, _) = single_node().await;
    let req = CreateTopic {
        configs: configs(&[("segment.ms", "60000")]),
        ..topic("orders")
    };
    controller.create_topic(req, false).await.unwrap();
    let created_at = controller.metadata().version;

    let altered = controller
        .alter_topic_configs(
            "orders",
            vec![
                ConfigOp::Set("retention.ms".into(), "1000".into()),
                ConfigOp::Delete("segment.ms".into()),
                ConfigOp::Append("cleanup.policy".into(), "compact".into()),
            ],
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        altered.configs,
        configs(&[
            ("cleanup.policy", "delete,compact"),
            ("retention.ms", "1000")
        ])
    );
    assert_eq!(controller.metadata().topic("orders"), Some(&altered));
    assert_eq!(controller.metadata().version, created_at + 1);

    let altered = controller
        .alter_topic_configs(
            "orders",
            vec![ConfigOp::Subtract("cleanup.policy".into(), "delete".into())],
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        altered.configs.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
}

#[tokio::test]
async fn altering_configs_to_what_they_are_commits_nothing() {
    let (mut controller, _) = single_node().await;
    let req = CreateTopic {
        configs: configs(&[("retention.ms", "1000")]),
        ..topic("orders")
    };
    controller.create_topic(req, false).await.unwrap();
    let version = controller.metadata().version;
    controller
        .alter_topic_configs(
            "orders",
            vec![ConfigOp::Set("retention.ms".into(), "1000".into())],
            false,
        )
        .await
        .unwrap();
    controller
        .alter_topic_configs("orders", vec![ConfigOp::Delete("segment.ms".into())], false)
        .await
        .unwrap();
    assert_eq!(controller.metadata().version, version);
}

#[tokio::test]
async fn alter_topic_configs_refusals_carry_kafkas_codes() {
    let (mut controller, _) = single_node().await;
    controller
        .create_topic(topic("orders"), false)
        .await
        .unwrap();
    let set = |k: &str, v: &str| ConfigOp::Set(k.into(), v.into());

    let cases: Vec<(&str, Vec<ConfigOp>, i16)> = vec![
        ("nope", vec![set("retention.ms", "1")], 3),
        ("orders", vec![set("retention.ms", "soon")], 40),
        ("orders", vec![set("bogus", "1")], 40),
        (
            "orders",
            vec![ConfigOp::Append("retention.ms".into(), "1".into())],
            40,
        ),
        (
            "orders",
            vec![
                set("min.compaction.lag.ms", "10"),
                set("max.compaction.lag.ms", "5"),
            ],
            40,
        ),
        (
            "orders",
            vec![
                set("retention.ms", "1"),
                ConfigOp::Delete("retention.ms".into()),
            ],
            42,
        ),
    ];
    for (name, ops, code) in cases {
        let shown = format!("{name} {ops:?}");
        let err = controller
            .alter_topic_configs(name, ops, false)
            .await
            .unwrap_err();
        assert_eq!(err.kafka_error_code(), code, "{shown}: {err}");
    }
    assert!(
        controller
            .metadata()
            .topic("orders")
            .unwrap()
            .configs
            .is_empty()
    );
}

#[tokio::test]
async fn replace_topic_configs_swaps_all_overrides() {
    let (mut controller, _) = single_node().await;
    let req = CreateTopic {
        configs: configs(&[("segment.ms", "60000")]),
        ..topic("orders")
    };
    controller.create_topic(req, false).await.unwrap();

    let replaced = controller
        .replace_topic_configs("orders", configs(&[("retention.ms", "5")]), false)
        .await
        .unwrap();
    assert_eq!(replaced.configs, configs(&[("retention.ms", "5")]));
    let err = controller
        .replace_topic_configs("orders", configs(&[("retention.ms", "-5")]), false)
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 40);
    assert!(err.to_string().contains("retention.ms"), "{err}");
    assert_eq!(controller.metadata().topic("orders"), Some(&replaced));
}

#[tokio::test]
async fn every_commit_bumps_the_version_by_one_and_is_published() {
    let (mut controller, _) = single_node().await;
    let mut updates = controller.subscribe();
    let v = controller.metadata().version;
    assert_eq!(updates.borrow_and_update().version, v);

    controller
        .create_topic(topic("orders"), false)
        .await
        .unwrap();
    assert!(updates.has_changed().unwrap());
    let seen = updates.borrow_and_update().clone();
    assert_eq!(seen.version, v + 1);
    assert!(seen.topic("orders").is_some());

    controller
        .create_partitions("orders", 2, None, false)
        .await
        .unwrap();
    assert_eq!(updates.borrow_and_update().version, v + 2);
    controller
        .alter_topic_configs(
            "orders",
            vec![ConfigOp::Set("retention.ms".into(), "1".into())],
            false,
        )
        .await
        .unwrap();
    assert_eq!(updates.borrow_and_update().version, v + 3);
    controller.delete_topic("orders").await.unwrap();
    let seen = updates.borrow_and_update().clone();
    assert_eq!(seen.version, v + 4);
    assert_eq!(*seen, *controller.metadata());
}

#[tokio::test]
async fn a_failed_save_changes_nothing() {
    let store = FlakyStore::default();
    let mut controller = Controller::open(store.clone(), Instant::now())
        .await
        .unwrap();
    join(&mut controller, 0, Instant::now()).await;
    controller
        .create_topic(topic("orders"), false)
        .await
        .unwrap();
    let before = controller.metadata().clone();
    let mut updates = controller.subscribe();
    updates.mark_unchanged();

    store.set_failing(true);
    let err = controller
        .create_topic(topic("audit"), false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ControllerError::Store(StoreError::Io { .. })),
        "{err:?}"
    );
    assert_eq!(err.kafka_error_code(), -1);
    assert!(controller.delete_topic("orders").await.is_err());
    assert!(
        controller
            .create_partitions("orders", 3, None, false)
            .await
            .is_err()
    );

    assert_eq!(controller.metadata(), &before);
    assert!(!updates.has_changed().unwrap());

    store.set_failing(false);
    controller
        .create_topic(topic("audit"), false)
        .await
        .unwrap();
    assert_eq!(controller.metadata().version, before.version + 1);
}

#[tokio::test]
async fn a_concurrent_writer_is_detected_and_nothing_changes() {
    let (mut controller, store) = single_node().await;
    let v = controller.metadata().version;
    // Another controller commits behind this one's back.
    let mut other = Controller::open(store.clone(), Instant::now())
        .await
        .unwrap();
    other.create_topic(topic("theirs"), false).await.unwrap();

    let err = controller
        .create_topic(topic("mine"), false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ControllerError::Store(StoreError::Conflict {
                expected: Some(e),
                found: Some(f)
            }) if e == v && f == v + 1
        ),
        "{err:?}"
    );
    assert!(controller.metadata().topic("mine").is_none());
    assert!(store.load().await.unwrap().unwrap().topic("mine").is_none());
}

#[tokio::test]
async fn controller_reopened_from_a_file_store_sees_the_same_topics_and_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.json");
    let now = Instant::now();
    let mut controller = Controller::open(FileMetadataStore::new(path.clone()), now)
        .await
        .unwrap();
    join(&mut controller, 0, now).await;
    let req = CreateTopic {
        num_partitions: Some(3),
        configs: configs(&[("cleanup.policy", "compact")]),
        ..topic("orders")
    };
    controller.create_topic(req, false).await.unwrap();
    controller
        .create_topic(topic("audit"), false)
        .await
        .unwrap();
    controller
        .create_partitions("audit", 2, None, false)
        .await
        .unwrap();
    let before = controller.metadata().clone();
    drop(controller);

    let reopened = Controller::open(FileMetadataStore::new(path), now)
        .await
        .unwrap();
    assert_eq!(reopened.metadata(), &before);
    assert_eq!(
        reopened.metadata().topic("orders").map(|t| t.id),
        before.topic("orders").map(|t| t.id)
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
}

#[tokio::test]
async fn producer_id_blocks_are_disjoint_ascending_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.json");
    let now = Instant::now();
    let mut controller = Controller::open(FileMetadataStore::new(path.clone()), now)
        .await
        .unwrap();
    let epoch = join(&mut controller, 0, now).await;
    let b0 = BrokerId(0);
    let mut updates = controller.subscribe();
    updates.mark_unchanged();
    assert_eq!(
        controller
            .allocate_producer_ids(b0, epoch, 1000)
            .await
            .unwrap(),
        0..1000
    );
    assert!(updates.has_changed().unwrap(), "an allocation is a commit");
    assert_eq!(
        controller
            .allocate_producer_ids(b0, epoch, 10)
            .await
            .unwrap(),
        1000..1010
    );
    let version = controller.metadata().version;
    assert_eq!(
        controller
            .allocate_producer_ids(b0, epoch, 0)
            .await
            .unwrap(),
        1010..1010
    );
    assert_eq!(controller.metadata().version, version, "nothing to commit");
    drop(controller);

    // A restarted controller never hands out an id twice.
    let mut reopened = Controller::open(FileMetadataStore::new(path), now)
        .await
        .unwrap();
    assert_eq!(reopened.metadata().next_producer_id, 1010);
    assert_eq!(
        reopened
            .allocate_producer_ids(b0, epoch, 1000)
            .await
            .unwrap(),
        1010..2010
    );
}

#[tokio::test]
async fn producer_ids_go_only_to_a_broker_with_its_current_epoch() {
    let now = Instant::now();
    let (mut controller, _) = cluster_at(1, now).await;
    let old = controller.metadata().brokers[&BrokerId(0)].epoch;
    let new = join(&mut controller, 0, now).await;
    let err = controller
        .allocate_producer_ids(BrokerId(0), old, 10)
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 77, "{err}");
    let err = controller
        .allocate_producer_ids(BrokerId(5), new, 10)
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 102, "{err}");
    assert_eq!(controller.metadata().next_producer_id, 0);
    assert_eq!(
        controller
            .allocate_producer_ids(BrokerId(0), new, 10)
            .await
            .unwrap(),
        0..10
    );
}

#[tokio::test]
async fn a_producer_id_block_whose_save_failed_is_not_allocated() {
    let store = FlakyStore::default();
    let now = Instant::now();
    let mut controller = Controller::open(store.clone(), now).await.unwrap();
    let epoch = join(&mut controller, 0, now).await;
    let b0 = BrokerId(0);
    assert_eq!(
        controller
            .allocate_producer_ids(b0, epoch, 5)
            .await
            .unwrap(),
        0..5
    );
    store.set_failing(true);
    let err = controller
        .allocate_producer_ids(b0, epoch, 5)
        .await
        .unwrap_err();
    assert!(matches!(err, ControllerError::Store(_)), "{err:?}");
    assert_eq!(controller.metadata().next_producer_id, 5);
    store.set_failing(false);
    assert_eq!(
        controller
            .allocate_producer_ids(b0, epoch, 5)
            .await
            .unwrap(),
        5..10
    );
    assert_eq!(
        store.inner.load().await.unwrap().unwrap().next_producer_id,
        10,
        "persisted"
    );
}

#[tokio::test]
async fn producer_ids_past_i64_max_are_refused() {
    let now = Instant::now();
    let (controller, store) = cluster_at(1, now).await;
    let epoch = controller.metadata().brokers[&BrokerId(0)].epoch;
    let mut nearly_full = controller.metadata().clone();
    drop(controller);
    let version = nearly_full.version;
    nearly_full.next_producer_id = i64::MAX - 10;
    nearly_full.version += 1;
    store.save(&nearly_full, Some(version)).await.unwrap();

    let mut controller = Controller::open(store, now).await.unwrap();
    let b0 = BrokerId(0);
    assert_eq!(
        controller
            .allocate_producer_ids(b0, epoch, 10)
            .await
            .unwrap(),
        i64::MAX - 10..i64::MAX
    );
    let err = controller
        .allocate_producer_ids(b0, epoch, 1)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ControllerError::ProducerIdsExhausted { next, count: 1 } if next == i64::MAX),
        "{err:?}"
    );
    assert_eq!(err.kafka_error_code(), -1);
}
