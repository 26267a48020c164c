//! The Kubernetes metadata store against the API server double: the image round-trips
//! through Cluster and Topic status; of two writers saving from the same version one
//! wins and the other gets a conflict, reloads and retries; topics made through the
//! Kafka API get Topic resources of their own, and lose them when deleted.

mod common;

use kube::ResourceExt as _;
use kube::api::{Api, PostParams};
use serde_json::json;
use weir_controller::metadata::{BrokerInfo, ClusterMetadata, PartitionState, TopicMetadata};
use weir_controller::{BrokerId, Listener, MetadataStore, StoreError, TopicId, TopicName};
use weir_operator::crd::{Cluster, Topic};
use weir_operator::kube_store::{KubeStore, ORIGIN_LABEL, resource_name_for};

use common::{NAMESPACE, api_server};

async fn create_cluster(client: &kube::Client) -> Cluster {
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), NAMESPACE);
    let cluster: Cluster = serde_json::from_value(json!({
        "apiVersion": "weir.dev/v1alpha1", "kind": "Cluster",
        "metadata": {"name": "demo", "namespace": NAMESPACE},
        "spec": {"brokers": 3, "storage": {"size": "1Gi"}},
    }))
    .unwrap();
    clusters
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap()
}

fn topic(name: &str, partitions: i32, config: &[(&str, &str)]) -> TopicMetadata {
    TopicMetadata {
        name: TopicName::new(name).unwrap(),
        id: TopicId::random(),
        partitions: (0..partitions)
            .map(|p| PartitionState::new(p, vec![BrokerId(p % 3), BrokerId((p + 1) % 3)]))
            .collect(),
        configs: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn image(version: u64) -> ClusterMetadata {
    let mut m = ClusterMetadata::empty("Y2x1c3Rlci1pZC0wMDAwMQ", version);
    m.next_producer_id = 5000;
    for id in 0..3 {
        m.brokers.insert(
            BrokerId(id),
            BrokerInfo::new(
                BrokerId(id),
                Some(format!("rack-{id}")),
                vec![Listener::new("PLAINTEXT", format!("b{id}"), 9092)],
            ),
        );
    }
    m
}

#[tokio::test]
async fn an_image_round_trips_through_cluster_and_topic_status() {
    let server = api_server().await;
    let client = server.client();
    create_cluster(&client).await;
    let store = KubeStore::new(client.clone(), NAMESPACE, "demo");
    assert_eq!(
        store.load().await.unwrap(),
        None,
        "a new Cluster has no metadata"
    );

    let mut first = image(1);
    first.topics.insert(
        "orders".into(),
        topic("orders", 3, &[("retention.ms", "1000")]),
    );
    first.topics.insert(
        "__consumer_offsets".into(),
        topic("__consumer_offsets", 2, &[("cleanup.policy", "compact")]),
    );
    store.save(&first, None).await.unwrap();

    let fresh = KubeStore::new(client.clone(), NAMESPACE, "demo");
    assert_eq!(fresh.load().await.unwrap(), Some(first.clone()));

    // Topics without a resource got one each, owned by the Cluster and labelled.
    let topics: Api<Topic> = Api::namespaced(client.clone(), NAMESPACE);
    let offsets = topics
        .get(&resource_name_for("__consumer_offsets"))
        .await
        .unwrap();
    assert_eq!(offsets.labels()[ORIGIN_LABEL], "kafka-api");
    assert_eq!(
        offsets.spec.topic_name.as_deref(),
        Some("__consumer_offsets")
    );
    assert_eq!(offsets.spec.partitions, 2);
    assert_eq!(offsets.owner_references()[0].kind, "Cluster");
    let orders = topics.get("orders").await.unwrap();
    let status = orders.status.unwrap();
    assert_eq!(status.partitions.len(), 3);
    assert_eq!(status.partitions[1].replicas, vec![1, 2]);
    assert_eq!(status.config["retention.ms"], "1000");

    // A change: a config key removed, a partition's ISR shrunk, a topic deleted.
    let mut second = first.clone();
    second.version = 2;
    let orders = second.topics.get_mut("orders").unwrap();
    orders.configs.clear();
    orders.partitions[0].isr = vec![BrokerId(0)];
    second.topics.remove("__consumer_offsets");
    store.save(&second, Some(1)).await.unwrap();
    assert_eq!(
        KubeStore::new(client.clone(), NAMESPACE, "demo")
            .load()
            .await
            .unwrap(),
        Some(second)
    );
    assert!(
        topics
            .get_opt(&resource_name_for("__consumer_offsets"))
            .await
            .unwrap()
            .is_none()
    );
    let orders = topics.get("orders").await.unwrap().status.unwrap();
    assert!(orders.config.is_empty(), "{:?}", orders.config);
    assert_eq!(orders.partitions[0].isr, vec![0]);
    server.stop().await;
}

#[tokio::test]
async fn a_kafka_api_topics_spec_follows_what_kafka_clients_changed() {
    let server = api_server().await;
    let client = server.client();
    create_cluster(&client).await;
    let store = KubeStore::new(client.clone(), NAMESPACE, "demo");
    let mut first = image(1);
    first.topics.insert(
        "events".into(),
        topic("events", 2, &[("retention.ms", "1000")]),
    );
    store.save(&first, None).await.unwrap();

    // A Kafka client adds a partition and swaps a config.
    let mut second = first.clone();
    second.version = 2;
    let events = second.topics.get_mut("events").unwrap();
    events
        .partitions
        .push(PartitionState::new(2, vec![BrokerId(2), BrokerId(0)]));
    events.configs = [("cleanup.policy".to_owned(), "compact".to_owned())].into();
    store.save(&second, Some(1)).await.unwrap();

    let topics: Api<Topic> = Api::namespaced(client.clone(), NAMESPACE);
    let spec = topics.get("events").await.unwrap().spec;
    assert_eq!(spec.partitions, 3);
    assert_eq!(spec.replication_factor, 2);
    assert_eq!(spec.config, second.topics["events"].configs);
    server.stop().await;
}

#[tokio::test]
async fn of_two_writers_one_wins_and_the_other_retries_from_a_reload() {
    let server = api_server().await;
    let client = server.client();
    create_cluster(&client).await;
    let a = KubeStore::new(client.clone(), NAMESPACE, "demo");
    let b = KubeStore::new(client.clone(), NAMESPACE, "demo");
    a.save(&image(1), None).await.unwrap();
    let seen_by_a = a.load().await.unwrap().unwrap();
    let seen_by_b = b.load().await.unwrap().unwrap();

    let mut from_a = seen_by_a.clone();
    from_a.version = 2;
    from_a.next_producer_id = 6000;
    let mut from_b = seen_by_b.clone();
    from_b.version = 2;
    from_b.next_producer_id = 7000;
    let (ra, rb) = tokio::join!(a.save(&from_a, Some(1)), b.save(&from_b, Some(1)));
    let (winner, loser) = match (&ra, &rb) {
        (Ok(()), Err(_)) => (&from_a, rb),
        (Err(_), Ok(())) => (&from_b, ra),
        other => panic!("exactly one save must win: {other:?}"),
    };
    assert!(
        matches!(
            loser,
            Err(StoreError::Conflict {
                expected: Some(1),
                found: Some(2)
            })
        ),
        "{loser:?}"
    );

    // The loser reloads and retries on top of the winner's image.
    let reloaded = b.load().await.unwrap().unwrap();
    assert_eq!(&reloaded, winner);
    let mut retry = reloaded.clone();
    retry.version = 3;
    retry.next_producer_id += 1000;
    b.save(&retry, Some(2)).await.unwrap();
    assert_eq!(a.load().await.unwrap(), Some(retry));
    server.stop().await;
}

#[tokio::test]
async fn a_saved_first_image_is_never_overwritten_by_another_first_save() {
    let server = api_server().await;
    let client = server.client();
    create_cluster(&client).await;
    let a = KubeStore::new(client.clone(), NAMESPACE, "demo");
    let b = KubeStore::new(client.clone(), NAMESPACE, "demo");
    a.save(&image(1), None).await.unwrap();
    let err = b.save(&image(1), None).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: None,
                found: Some(1)
            }
        ),
        "{err:?}"
    );
    server.stop().await;
}

#[test]
fn kafka_names_map_to_kubernetes_names_without_collisions() {
    assert_eq!(resource_name_for("orders"), "orders");
    assert_eq!(resource_name_for("orders.v2"), "orders.v2");
    let offsets = resource_name_for("__consumer_offsets");
    assert!(offsets.starts_with("consumer-offsets-"), "{offsets}");
    assert_ne!(resource_name_for("My_Topic"), resource_name_for("my-topic"));
    assert_ne!(resource_name_for("My_Topic"), resource_name_for("my_topic"));
    let long = resource_name_for(&"A".repeat(249));
    assert!(long.len() <= 253);
}
