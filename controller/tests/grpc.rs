//! The control plane over a real socket: a `ControlPlaneService` over the in-memory
//! `FakePlane` on 127.0.0.1:0, called through `RemoteControlPlane` (and, for malformed
//! requests, through the raw generated client).

mod grpc_support;

use std::collections::BTreeMap;
use std::time::Duration;

use grpc_support::*;
use tonic::Code;
use weir_controller::grpc::pb::control_plane_client::ControlPlaneClient;
use weir_controller::grpc::{KAFKA_ERROR_CODE_KEY, pb};
use weir_controller::registry::{Listener, RegisterBroker};
use weir_controller::{
    AlterPartition, BrokerEpoch, BrokerId, ConfigChange, ConfigOp, ControlPlane, ControllerError,
    CreateTopic, ElectionType, Heartbeat, OngoingReassignment, PartitionRef, ReassignmentChange,
    TopicRef,
};

fn registration(id: i32, cluster_id: &str) -> RegisterBroker {
    RegisterBroker {
        id: BrokerId(id),
        incarnation: uuid::Uuid::new_v4(),
        cluster_id: cluster_id.into(),
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092 + u16::try_from(id).unwrap(),
        }],
        rack: Some(format!("r{id}")),
    }
}

/// Registers brokers 0..count and heartbeats each once; returns their epochs.
async fn register_brokers(plane: &impl ControlPlane, count: i32) -> Vec<BrokerEpoch> {
    let mut epochs = Vec::new();
    for id in 0..count {
        let registered = plane
            .register_broker(registration(id, CLUSTER))
            .await
            .unwrap();
        plane
            .broker_heartbeat(Heartbeat {
                broker: BrokerId(id),
                broker_epoch: registered.broker_epoch,
            })
            .await
            .unwrap();
        epochs.push(registered.broker_epoch);
    }
    epochs
}

fn topic(name: &str, partitions: i32, rf: i16) -> CreateTopic {
    CreateTopic {
        name: name.into(),
        num_partitions: Some(partitions),
        replication_factor: Some(rf),
        assignments: None,
        configs: BTreeMap::new(),
    }
}

fn at(topic: &str, partition: i32) -> PartitionRef {
    PartitionRef {
        topic: topic.into(),
        partition,
    }
}

/// The error's Kafka code and message, or a panic naming what came instead.
fn remote<T: std::fmt::Debug>(result: Result<T, ControllerError>) -> (i16, String) {
    match result {
        Err(ControllerError::Remote { code, message }) => (code, message),
        other => panic!("expected a remote error, got {other:?}"),
    }
}

#[tokio::test]
async fn brokers_register_heartbeat_and_shut_down_over_grpc() {
    let plane = FakePlane::new();
    let server = Server::start(plane.clone()).await;
    let client = client(&[server.endpoint()]).await;

    let mut request = registration(1, CLUSTER);
    request
        .listeners
        .push(Listener::new("EXTERNAL", "kafka-1.example.com", 31000));
    let registered = client.register_broker(request.clone()).await.unwrap();
    assert_eq!(registered.broker_epoch, BrokerEpoch(1));
    assert_eq!(registered.session_timeout_ms, SESSION_TIMEOUT_MS);
    let retried = client.register_broker(request.clone()).await.unwrap();
    assert_eq!(retried, registered);
    assert!(plane.image().brokers[&BrokerId(1)].fenced);

    let heartbeat = Heartbeat {
        broker: BrokerId(1),
        broker_epoch: registered.broker_epoch,
    };
    let reply = client.broker_heartbeat(heartbeat).await.unwrap();
    assert!(!reply.fenced);
    let broker = plane.image().brokers[&BrokerId(1)].clone();
    assert_eq!(broker.rack.as_deref(), Some("r1"));
    assert_eq!(
        broker.listeners,
        [
            Listener::new("PLAINTEXT", "127.0.0.1", 9093),
            Listener::new("EXTERNAL", "kafka-1.example.com", 31000),
        ]
    );
    assert_eq!(broker.incarnation, Some(request.incarnation));

    let shutdown = client
        .controlled_shutdown(BrokerId(1), registered.broker_epoch)
        .await
        .unwrap();
    assert_eq!(shutdown.remaining_leaders, 0);
    assert!(client.broker_heartbeat(heartbeat).await.unwrap().fenced);

    assert_eq!(
        plane.calls(),
        vec![
            Call::RegisterBroker(request.clone()),
            Call::RegisterBroker(request),
            Call::BrokerHeartbeat(heartbeat),
            Call::ControlledShutdown(BrokerId(1), registered.broker_epoch),
            Call::BrokerHeartbeat(heartbeat),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn topic_operations_round_trip_their_requests_and_replies() {
    let plane = FakePlane::new();
    let server = Server::start(plane.clone()).await;
    let client = client(&[server.endpoint()]).await;
    register_brokers(&client, 3).await;

    let mut orders = topic("orders", 2, 3);
    orders.configs.insert("retention.ms".into(), "1000".into());
    let checked = client.create_topic(orders.clone(), true).await.unwrap();
    assert_eq!(checked.version, plane.image().version);
    assert!(plane.image().topics.is_empty());

    let created = client.create_topic(orders.clone(), false).await.unwrap();
    let image = plane.image();
    assert_eq!(created.version, image.version);
    assert_eq!(created.value, image.topics["orders"]);
    assert_eq!(created.value.partitions.len(), 2);
    assert_eq!(created.value.replication_factor(), 3);

    let manual = CreateTopic {
        assignments: Some(vec![vec![BrokerId(2), BrokerId(0)]]),
        num_partitions: None,
        replication_factor: None,
        ..topic("manual", 0, 0)
    };
    let created_manual = client.create_topic(manual.clone(), false).await.unwrap();
    assert_eq!(
        created_manual.value.partitions[0].replicas,
        vec![BrokerId(2), BrokerId(0)]
    );
    assert_eq!(created_manual.value.partitions[0].leader, Some(BrokerId(2)));

    let grown = client
        .create_partitions(
            "orders",
            4,
            Some(vec![vec![BrokerId(1)], vec![BrokerId(2)]]),
            false,
        )
        .await
        .unwrap();
    assert_eq!(grown.value, plane.image().topics["orders"]);
    assert_eq!(grown.value.partitions[3].replicas, vec![BrokerId(2)]);

    let ops = vec![
        ConfigOp::Set("cleanup.policy".into(), "compact".into()),
        ConfigOp::Delete("retention.ms".into()),
    ];
    let altered = client
        .alter_topic_configs("orders", ConfigChange::Incremental(ops.clone()), false)
        .await
        .unwrap();
    assert_eq!(
        altered.value.configs,
        BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())])
    );
    let replacement = BTreeMap::from([("segment.bytes".to_string(), "1048576".to_string())]);
    let replaced = client
        .alter_topic_configs("orders", ConfigChange::Replace(replacement.clone()), false)
        .await
        .unwrap();
    assert_eq!(replaced.value.configs, replacement);
    assert_eq!(replaced.version, plane.image().version);

    let deleted = client
        .delete_topic(TopicRef::Id(created_manual.value.id))
        .await
        .unwrap();
    assert_eq!(deleted.value, created_manual.value);
    let deleted = client
        .delete_topic(TopicRef::Name("orders".into()))
        .await
        .unwrap();
    assert_eq!(deleted.value, replaced.value);
    assert!(plane.image().topics.is_empty());

    assert_eq!(
        plane.calls()[6..],
        [
            Call::CreateTopic(orders.clone(), true),
            Call::CreateTopic(orders, false),
            Call::CreateTopic(manual, false),
            Call::CreatePartitions(
                "orders".into(),
                4,
                Some(vec![vec![BrokerId(1)], vec![BrokerId(2)]]),
                false
            ),
            Call::AlterTopicConfigs("orders".into(), ConfigChange::Incremental(ops), false),
            Call::AlterTopicConfigs("orders".into(), ConfigChange::Replace(replacement), false),
            Call::DeleteTopic(TopicRef::Id(created_manual.value.id)),
            Call::DeleteTopic(TopicRef::Name("orders".into())),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn partition_operations_round_trip_their_requests_and_replies() {
    let plane = FakePlane::new();
    let server = Server::start(plane.clone()).await;
    let client = client(&[server.endpoint()]).await;
    let epochs = register_brokers(&client, 3).await;
    let created = client
        .create_topic(topic("t", 2, 3), false)
        .await
        .unwrap()
        .value;

    let ids = client
        .allocate_producer_ids(BrokerId(0), epochs[0], 1000)
        .await
        .unwrap();
    assert_eq!(ids, 0..1000);
    let ids = client
        .allocate_producer_ids(BrokerId(1), epochs[1], 10)
        .await
        .unwrap();
    assert_eq!(ids, 1000..1010);

    let shrink = AlterPartition {
        broker: BrokerId(0),
        broker_epoch: epochs[0],
        topic_id: created.id,
        partition: 0,
        leader_epoch: 0,
        partition_epoch: 0,
        new_isr: vec![BrokerId(0), BrokerId(1)],
    };
    let committed = client.alter_partition(shrink.clone()).await.unwrap();
    assert_eq!(committed.value.isr, vec![BrokerId(0), BrokerId(1)]);
    assert_eq!(committed.value.partition_epoch, 1);
    assert_eq!(committed.value, plane.image().topics["t"].partitions[0]);
    assert_eq!(committed.version, plane.image().version);

    // Partition 1 is led by broker 1; make broker 2 its leader through a
    // reassignment, then elect it back.
    let to_two = ReassignmentChange {
        partition: at("t", 1),
        target: Some(vec![BrokerId(2), BrokerId(1)]),
    };
    let results = client
        .alter_reassignments(vec![to_two.clone()])
        .await
        .unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].0, at("t", 1));
    assert!(results[0].1.is_ok(), "{results:?}");
    let ongoing = client.list_reassignments(None).await.unwrap();
    assert_eq!(
        ongoing,
        vec![OngoingReassignment {
            partition: at("t", 1),
            replicas: vec![BrokerId(2), BrokerId(1), BrokerId(0)],
            adding: vec![],
            removing: vec![BrokerId(0)],
        }]
    );
    let listed = client
        .list_reassignments(Some(vec![at("t", 0)]))
        .await
        .unwrap();
    assert!(listed.is_empty(), "{listed:?}");

    let elected = client
        .elect_leaders(ElectionType::Preferred, Some(vec![at("t", 1)]))
        .await
        .unwrap();
    assert_eq!(elected.len(), 1);
    assert_eq!(elected[0].partition, at("t", 1));
    assert!(elected[0].result.is_ok(), "{elected:?}");
    assert_eq!(
        plane.image().topics["t"].partitions[1].leader,
        Some(BrokerId(2))
    );

    let cancel = ReassignmentChange {
        partition: at("t", 1),
        target: None,
    };
    let results = client
        .alter_reassignments(vec![cancel.clone()])
        .await
        .unwrap();
    assert!(results[0].1.is_ok(), "{results:?}");
    assert!(client.list_reassignments(None).await.unwrap().is_empty());

    assert_eq!(
        plane.calls()[7..],
        [
            Call::AllocateProducerIds(BrokerId(0), epochs[0], 1000),
            Call::AllocateProducerIds(BrokerId(1), epochs[1], 10),
            Call::AlterPartition(shrink),
            Call::AlterReassignments(vec![to_two]),
            Call::ListReassignments(None),
            Call::ListReassignments(Some(vec![at("t", 0)])),
            Call::ElectLeaders(ElectionType::Preferred, Some(vec![at("t", 1)])),
            Call::AlterReassignments(vec![cancel]),
            Call::ListReassignments(None),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn controller_errors_keep_their_kafka_codes_and_messages() {
    let plane = FakePlane::new();
    let server = Server::start(plane.clone()).await;
    let client = client(&[server.endpoint()]).await;
    let epochs = register_brokers(&client, 2).await;
    let created = client
        .create_topic(topic("t", 1, 2), false)
        .await
        .unwrap()
        .value;

    let (code, message) = remote(client.register_broker(registration(5, "other")).await);
    assert_eq!(code, INCONSISTENT_CLUSTER_ID);
    assert_eq!(message, "cluster id 'other' is not this cluster's");
    let unknown = Heartbeat {
        broker: BrokerId(9),
        broker_epoch: BrokerEpoch(1),
    };
    let (code, message) = remote(client.broker_heartbeat(unknown).await);
    assert_eq!(
        (code, message.as_str()),
        (BROKER_ID_NOT_REGISTERED, "broker 9 is not registered")
    );
    let (code, _) = remote(
        client
            .controlled_shutdown(BrokerId(0), BrokerEpoch(99))
            .await,
    );
    assert_eq!(code, STALE_BROKER_EPOCH);
    let (code, _) = remote(
        client
            .allocate_producer_ids(BrokerId(1), BrokerEpoch(99), 1)
            .await,
    );
    assert_eq!(code, STALE_BROKER_EPOCH);

    // Real `ControllerError` variants arrive with the code and message they had.
    let err = client
        .create_topic(topic("t", 1, 1), false)
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 36);
    assert_eq!(err.to_string(), "Topic 't' already exists.");
    let err = client
        .create_topic(topic("bad/name", 1, 1), true)
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 17);
    assert!(err.to_string().contains("bad/name"), "{err}");
    let (code, _) = remote(client.create_topic(topic("big", 1, 7), false).await);
    assert_eq!(code, INVALID_REPLICATION_FACTOR);
    let err = client
        .delete_topic(TopicRef::Name("nope".into()))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kafka_error_code(), err.to_string()),
        (3, "Topic 'nope' does not exist.".into())
    );
    let missing = weir_controller::TopicId(uuid::Uuid::from_u128(42));
    let err = client
        .delete_topic(TopicRef::Id(missing))
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 100);
    let err = client
        .create_partitions("t", 1, None, false)
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 37);
    let change = ConfigChange::Replace(BTreeMap::new());
    let err = client
        .alter_topic_configs("nope", change, false)
        .await
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 3);

    let stale = AlterPartition {
        broker: BrokerId(0),
        broker_epoch: epochs[0],
        topic_id: created.id,
        partition: 0,
        leader_epoch: 3,
        partition_epoch: 0,
        new_isr: vec![BrokerId(0)],
    };
    let (code, message) = remote(client.alter_partition(stale.clone()).await);
    assert_eq!(
        (code, message.as_str()),
        (FENCED_LEADER_EPOCH, "The leader epoch is fenced.")
    );
    let stale = AlterPartition {
        leader_epoch: 0,
        partition_epoch: 5,
        ..stale
    };
    assert_eq!(
        remote(client.alter_partition(stale).await).0,
        INVALID_UPDATE_VERSION
    );

    // Per-partition failures come back per partition, the request succeeding.
    let results = client
        .elect_leaders(
            ElectionType::Preferred,
            Some(vec![at("t", 0), at("gone", 0)]),
        )
        .await
        .unwrap();
    let codes: Vec<Option<i16>> = results
        .iter()
        .map(|r| {
            r.result
                .as_ref()
                .err()
                .map(ControllerError::kafka_error_code)
        })
        .collect();
    assert_eq!(
        codes,
        vec![Some(ELECTION_NOT_NEEDED), Some(UNKNOWN_TOPIC_OR_PARTITION)]
    );
    assert_eq!(
        results[0].result.as_ref().unwrap_err().to_string(),
        "Leader election not needed for topic partition."
    );
    let cancel = ReassignmentChange {
        partition: at("t", 0),
        target: None,
    };
    let results = client.alter_reassignments(vec![cancel]).await.unwrap();
    assert_eq!(
        results[0]
            .1
            .as_ref()
            .map_err(ControllerError::kafka_error_code),
        Err(NO_REASSIGNMENT_IN_PROGRESS)
    );
    server.stop().await;
}

/// Sends one malformed request and returns the refusal's Kafka code and message.
async fn refusal<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
) -> (String, String) {
    let status = result.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let code = status
        .metadata()
        .get(KAFKA_ERROR_CODE_KEY)
        .unwrap()
        .to_str()
        .unwrap();
    (code.to_owned(), status.message().to_owned())
}

fn raw_registration() -> pb::RegisterBrokerRequest {
    pb::RegisterBrokerRequest {
        broker_id: 1,
        incarnation_id: uuid::Uuid::new_v4().to_string(),
        cluster_id: CLUSTER.into(),
        listeners: vec![pb::Listener {
            name: "PLAINTEXT".into(),
            host: "h".into(),
            port: 9092,
        }],
        rack: None,
    }
}

#[tokio::test]
async fn malformed_requests_are_invalid_argument_naming_the_field() {
    let plane = FakePlane::new();
    let server = Server::start(plane.clone()).await;
    let mut raw = ControlPlaneClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    let listener = |name: &str, host: &str, port: u32| pb::Listener {
        name: name.into(),
        host: host.into(),
        port,
    };
    let registrations = [
        (
            pb::RegisterBrokerRequest {
                broker_id: -1,
                ..raw_registration()
            },
            "broker_id -1 is negative",
        ),
        (
            pb::RegisterBrokerRequest {
                incarnation_id: "x".into(),
                ..raw_registration()
            },
            "incarnation_id 'x' is not a UUID",
        ),
        (
            pb::RegisterBrokerRequest {
                incarnation_id: uuid::Uuid::nil().to_string(),
                ..raw_registration()
            },
            "incarnation_id must not be the nil UUID",
        ),
        (
            pb::RegisterBrokerRequest {
                listeners: vec![],
                ..raw_registration()
            },
            "broker 1 registered without listeners",
        ),
        (
            pb::RegisterBrokerRequest {
                listeners: vec![listener("", "h", 1)],
                ..raw_registration()
            },
            "broker 1 has a listener with an empty name",
        ),
        (
            pb::RegisterBrokerRequest {
                listeners: vec![listener("A", "h", 1), listener("A", "h", 2)],
                ..raw_registration()
            },
            "broker 1 has listener 'A' more than once",
        ),
        (
            pb::RegisterBrokerRequest {
                listeners: vec![listener("A", "", 1)],
                ..raw_registration()
            },
            "listener 'A' of broker 1 has an empty host",
        ),
        (
            pb::RegisterBrokerRequest {
                listeners: vec![listener("A", "h", 1), listener("B", "h", 65_536)],
                ..raw_registration()
            },
            "listeners[1].port is 65536, outside 1..=65535",
        ),
        (
            pb::RegisterBrokerRequest {
                listeners: vec![listener("A", "h", 0)],
                ..raw_registration()
            },
            "listeners[0].port is 0, outside 1..=65535",
        ),
        (
            pb::RegisterBrokerRequest {
                rack: Some(String::new()),
                ..raw_registration()
            },
            "broker 1 sent an empty rack",
        ),
    ];
    for (request, expected) in registrations {
        let (code, message) = refusal(raw.register_broker(request).await).await;
        assert_eq!(code, "42");
        assert!(message.starts_with(expected), "{message} vs {expected}");
    }

    let heartbeat = pb::BrokerHeartbeatRequest {
        broker_id: -2,
        broker_epoch: 1,
    };
    assert_eq!(
        refusal(raw.broker_heartbeat(heartbeat).await).await.1,
        "broker_id -2 is negative"
    );
    let shutdown = pb::ControlledShutdownRequest {
        broker_id: -3,
        broker_epoch: 1,
    };
    assert_eq!(
        refusal(raw.controlled_shutdown(shutdown).await).await.1,
        "broker_id -3 is negative"
    );
    let ids = pb::AllocateProducerIdsRequest {
        broker_id: -4,
        broker_epoch: 1,
        count: 1,
    };
    assert_eq!(
        refusal(raw.allocate_producer_ids(ids).await).await.1,
        "broker_id -4 is negative"
    );

    let create = pb::CreateTopicRequest {
        name: "t".into(),
        replication_factor: Some(40_000),
        ..Default::default()
    };
    assert_eq!(
        refusal(raw.create_topic(create).await).await.1,
        "replication_factor 40000 is outside -32768..=32767"
    );
    let delete = pb::DeleteTopicRequest { topic: None };
    assert_eq!(
        refusal(raw.delete_topic(delete).await).await.1,
        "topic is required"
    );
    let delete = pb::DeleteTopicRequest {
        topic: Some(pb::delete_topic_request::Topic::Id("nope".into())),
    };
    assert_eq!(
        refusal(raw.delete_topic(delete).await).await.1,
        "id 'nope' is not a UUID"
    );

    let alter = pb::AlterTopicConfigsRequest {
        topic: "t".into(),
        change: None,
        validate_only: false,
    };
    assert_eq!(
        refusal(raw.alter_topic_configs(alter).await).await.1,
        "change is required"
    );
    let ops = |op: pb::ConfigOpType, value: Option<&str>| pb::AlterTopicConfigsRequest {
        topic: "t".into(),
        change: Some(pb::alter_topic_configs_request::Change::Incremental(
            pb::IncrementalConfigChange {
                ops: vec![
                    pb::ConfigOp {
                        op: pb::ConfigOpType::Delete.into(),
                        key: "a".into(),
                        value: None,
                    },
                    pb::ConfigOp {
                        op: op.into(),
                        key: "retention.ms".into(),
                        value: value.map(Into::into),
                    },
                ],
            },
        )),
        validate_only: false,
    };
    assert_eq!(
        refusal(
            raw.alter_topic_configs(ops(pb::ConfigOpType::Set, None))
                .await
        )
        .await
        .1,
        "incremental.ops[1].value is required for SET of config 'retention.ms'"
    );
    assert_eq!(
        refusal(
            raw.alter_topic_configs(ops(pb::ConfigOpType::Unspecified, Some("1")))
                .await
        )
        .await
        .1,
        "incremental.ops[1].op 0 is not a known config op type"
    );

    let alter = pb::AlterPartitionRequest {
        broker_id: 1,
        topic_id: uuid::Uuid::new_v4().to_string(),
        new_isr: vec![1, -1],
        ..Default::default()
    };
    assert_eq!(
        refusal(raw.alter_partition(alter.clone()).await).await.1,
        "new_isr[1] -1 is negative"
    );
    let alter = pb::AlterPartitionRequest {
        topic_id: "zz".into(),
        new_isr: vec![1],
        ..alter
    };
    assert_eq!(
        refusal(raw.alter_partition(alter.clone()).await).await.1,
        "topic_id 'zz' is not a UUID"
    );
    let alter = pb::AlterPartitionRequest {
        topic_id: uuid::Uuid::nil().to_string(),
        ..alter
    };
    assert_eq!(
        refusal(raw.alter_partition(alter).await).await.1,
        "topic_id must not be the nil UUID"
    );

    let elect = pb::ElectLeadersRequest {
        election_type: 7,
        partitions: None,
    };
    assert_eq!(
        refusal(raw.elect_leaders(elect).await).await.1,
        "election_type 7 is not a known election type"
    );
    let elect = pb::ElectLeadersRequest {
        election_type: 0,
        partitions: None,
    };
    assert_eq!(
        refusal(raw.elect_leaders(elect).await).await.1,
        "election_type 0 is not a known election type"
    );

    let reassign = pb::AlterReassignmentsRequest {
        changes: vec![
            pb::ReassignmentChange {
                partition: Some(pb::PartitionRef {
                    topic: "t".into(),
                    partition: 0,
                }),
                target: None,
            },
            pb::ReassignmentChange {
                partition: None,
                target: None,
            },
        ],
    };
    assert_eq!(
        refusal(raw.alter_reassignments(reassign).await).await.1,
        "changes[1].partition is required"
    );

    assert_eq!(
        plane.calls(),
        vec![],
        "no malformed request reaches the plane"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_unreachable_controller_is_request_timed_out_naming_its_address() {
    let endpoint = dead_endpoint().await;
    let client = client(std::slice::from_ref(&endpoint)).await;
    let (code, message) = remote(client.create_topic(topic("t", 1, 1), false).await);
    assert_eq!(code, 7);
    assert!(
        message.starts_with(&format!(
            "the controller at http://{endpoint} is unreachable"
        )),
        "{message}"
    );
    assert!(message.contains("refused"), "the cause is kept: {message}");
}

#[tokio::test]
async fn the_next_endpoint_is_tried_after_one_fails() {
    let plane = FakePlane::new();
    let server = Server::start(plane.clone()).await;
    let client = client(&[dead_endpoint().await, server.endpoint()]).await;
    let (code, _) = remote(client.register_broker(registration(1, CLUSTER)).await);
    assert_eq!(code, 7);
    let registered = client
        .register_broker(registration(1, CLUSTER))
        .await
        .unwrap();
    assert_eq!(registered.broker_epoch, BrokerEpoch(1));
    server.stop().await;
}

#[tokio::test]
async fn malformed_endpoints_are_refused_up_front() {
    use weir_controller::grpc::{ClientOptions, EndpointError, RemoteControlPlane};
    let none = RemoteControlPlane::connect(vec![], ClientOptions::default()).await;
    assert!(matches!(none, Err(EndpointError::NoEndpoints)), "{none:?}");
    let bad =
        RemoteControlPlane::connect(vec!["http://a b:1".into()], ClientOptions::default()).await;
    assert!(
        matches!(&bad, Err(EndpointError::Invalid { endpoint, .. }) if endpoint == "http://a b:1"),
        "{bad:?}"
    );
}

#[tokio::test]
async fn a_slow_controller_times_out_with_request_timed_out() {
    // A listener that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let options = weir_controller::grpc::ClientOptions {
        request_timeout: Duration::from_millis(300),
        ..fast_options()
    };
    let client =
        weir_controller::grpc::RemoteControlPlane::connect(vec![endpoint.clone()], options)
            .await
            .unwrap();
    let (code, message) = remote(client.list_reassignments(None).await);
    assert_eq!(code, 7);
    assert_eq!(
        message,
        format!(
            "the controller at http://{endpoint} did not answer ListReassignments within 300 ms"
        )
    );
    hold.abort();
}
