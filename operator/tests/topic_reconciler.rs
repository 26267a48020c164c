//! The Topic reconciler against the API server double, with the Cluster's controller
//! hosted in the test: create, grow, reconfigure and delete (finalizer, deletionPolicy);
//! a Topic whose Cluster is gone lets go of its finalizer.

mod common;

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use uuid::Uuid;
use weir_controller::metadata::TopicMetadata;
use weir_controller::registry::RegisterBroker;
use weir_controller::{BrokerId, ControlPlane, Heartbeat, Listener};
use weir_operator::cluster::reconcile::reconcile as reconcile_cluster;
use weir_operator::crd::{Cluster, Topic};
use weir_operator::hosting::HostedPlane;
use weir_operator::topic::reconcile::{FINALIZER, reconcile};

use common::{NAMESPACE, api_server, context, eventually};

async fn cluster_with_brokers(
    client: &kube::Client,
    ctx: &Arc<weir_operator::context::Context>,
) -> HostedPlane {
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), NAMESPACE);
    let cluster: Cluster = serde_json::from_value(json!({
        "apiVersion": "weir.dev/v1alpha1", "kind": "Cluster",
        "metadata": {"name": "demo", "namespace": NAMESPACE},
        "spec": {"brokers": 3, "storage": {"size": "1Gi"}},
    }))
    .unwrap();
    let created = clusters
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap();
    reconcile_cluster(Arc::new(created), ctx.clone())
        .await
        .unwrap();
    let plane = ctx.hosting.get(NAMESPACE, "demo").unwrap();
    let cluster_id = plane
        .controller()
        .lock()
        .await
        .metadata()
        .cluster_id
        .clone();
    for id in 0..3 {
        let registered = plane
            .register_broker(RegisterBroker {
                id: BrokerId(id),
                incarnation: Uuid::new_v4(),
                cluster_id: cluster_id.clone(),
                listeners: vec![Listener {
                    name: "PLAINTEXT".into(),
                    host: format!("b{id}"),
                    port: 9092,
                }],
                rack: None,
            })
            .await
            .unwrap();
        plane
            .broker_heartbeat(Heartbeat {
                broker: BrokerId(id),
                broker_epoch: registered.broker_epoch,
            })
            .await
            .unwrap();
    }
    plane
}

/// The topic as the hosted controller committed it.
async fn committed(plane: &HostedPlane, name: &str) -> Option<TopicMetadata> {
    plane
        .controller()
        .lock()
        .await
        .metadata()
        .topic(name)
        .cloned()
}

fn orders(partitions: i32) -> Topic {
    serde_json::from_value(json!({
        "apiVersion": "weir.dev/v1alpha1", "kind": "Topic",
        "metadata": {"name": "orders", "namespace": NAMESPACE},
        "spec": {"cluster": "demo", "partitions": partitions, "replicationFactor": 2, "config": {"retention.ms": "60000"}},
    }))
    .unwrap()
}

/// Reconciles the current object until `done` holds for it.
async fn reconcile_until(
    topics: &Api<Topic>,
    ctx: &Arc<weir_operator::context::Context>,
    done: impl Fn(&Topic) -> bool,
) -> Topic {
    eventually(Duration::from_secs(10), || async {
        let topic = topics.get_opt("orders").await.unwrap()?;
        if done(&topic) {
            return Some(topic);
        }
        reconcile(Arc::new(topic), ctx.clone()).await.unwrap();
        None
    })
    .await
}

fn ready(topic: &Topic) -> bool {
    topic.status.as_ref().is_some_and(|s| {
        s.observed_generation == topic.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

#[tokio::test]
async fn a_topic_is_created_grown_reconfigured_and_deleted() {
    let server = api_server().await;
    let client = server.client();
    let ctx = context(client.clone());
    let plane = cluster_with_brokers(&client, &ctx).await;
    let topics: Api<Topic> = Api::namespaced(client.clone(), NAMESPACE);
    topics
        .create(&PostParams::default(), &orders(3))
        .await
        .unwrap();

    let topic = reconcile_until(&topics, &ctx, ready).await;
    assert!(topic.finalizers().iter().any(|f| f == FINALIZER));
    let status = topic.status.unwrap();
    let degraded = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .unwrap();
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("False", "AsExpected")
    );
    assert_eq!(status.partitions.len(), 3);
    assert!(
        status
            .partitions
            .iter()
            .all(|p| p.replicas.len() == 2 && p.leader.is_some())
    );
    assert!(status.topic_id.is_some());
    assert_eq!(status.config["retention.ms"], "60000");
    assert_eq!(
        committed(&plane, "orders").await.unwrap().partitions.len(),
        3
    );

    // Grow and reconfigure.
    let patch = json!({"spec": {"partitions": 5, "config": {"cleanup.policy": "compact", "retention.ms": null}}});
    topics
        .patch("orders", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let topic = reconcile_until(&topics, &ctx, ready).await;
    let status = topic.status.unwrap();
    assert_eq!(status.partitions.len(), 5);
    assert_eq!(
        status.config.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
    assert!(
        !status.config.contains_key("retention.ms"),
        "removed overrides go: {:?}",
        status.config
    );

    // Delete: the topic goes, then the resource.
    topics
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    let still = topics.get("orders").await.unwrap();
    assert!(
        still.metadata.deletion_timestamp.is_some(),
        "the finalizer holds the resource"
    );
    reconcile(Arc::new(still), ctx.clone()).await.unwrap();
    eventually(Duration::from_secs(5), || async {
        topics
            .get_opt("orders")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(committed(&plane, "orders").await.is_none());
    server.stop().await;
}

#[tokio::test]
async fn retain_keeps_the_kafka_topic() {
    let server = api_server().await;
    let client = server.client();
    let ctx = context(client.clone());
    let plane = cluster_with_brokers(&client, &ctx).await;
    let topics: Api<Topic> = Api::namespaced(client.clone(), NAMESPACE);
    let mut topic = orders(1);
    topic.spec.deletion_policy = weir_operator::crd::DeletionPolicy::Retain;
    topics.create(&PostParams::default(), &topic).await.unwrap();
    reconcile_until(&topics, &ctx, ready).await;
    topics
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    let deleting = topics.get("orders").await.unwrap();
    reconcile(Arc::new(deleting), ctx.clone()).await.unwrap();
    assert!(topics.get_opt("orders").await.unwrap().is_none());
    assert!(committed(&plane, "orders").await.is_some());
    server.stop().await;
}

#[tokio::test]
async fn an_impossible_spec_is_reported_not_retried_blindly() {
    let server = api_server().await;
    let client = server.client();
    let ctx = context(client.clone());
    cluster_with_brokers(&client, &ctx).await;
    let topics: Api<Topic> = Api::namespaced(client.clone(), NAMESPACE);
    let mut topic = orders(1);
    topic.spec.replication_factor = 5;
    topics.create(&PostParams::default(), &topic).await.unwrap();
    let topic = reconcile_until(&topics, &ctx, |t| {
        t.status.as_ref().is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.type_ == "Ready" && c.status == "False" && c.reason == "ControllerRefused"
            })
        })
    })
    .await;
    let message = &topic.status.unwrap().conditions[0].message;
    assert!(
        message.to_lowercase().contains("replication factor"),
        "{message}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_topic_whose_cluster_is_gone_releases_its_finalizer() {
    let server = api_server().await;
    let client = server.client();
    let ctx = context(client.clone());
    let topics: Api<Topic> = Api::namespaced(client.clone(), NAMESPACE);
    topics
        .create(&PostParams::default(), &orders(1))
        .await
        .unwrap();
    let topic = reconcile_until(&topics, &ctx, |t| {
        !t.finalizers().is_empty() && t.status.is_some()
    })
    .await;
    let reason = &topic.status.unwrap().conditions[0].reason;
    assert_eq!(reason, "ClusterNotFound");
    topics
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    let deleting = topics.get("orders").await.unwrap();
    reconcile(Arc::new(deleting), ctx.clone()).await.unwrap();
    assert!(
        topics.get_opt("orders").await.unwrap().is_none(),
        "namespace deletion must never hang on it"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_topic_made_through_the_kafka_api_is_left_to_it() {
    let server = api_server().await;
    let client = server.client();
    let ctx = context(client.clone());
    let plane = cluster_with_brokers(&client, &ctx).await;
    // As a Kafka client's CreateTopics and then IncrementalAlterConfigs would.
    let create = weir_controller::CreateTopic {
        name: "payments".into(),
        num_partitions: Some(3),
        replication_factor: Some(2),
        ..Default::default()
    };
    plane.create_topic(create, false).await.unwrap();
    let topics: Api<Topic> = Api::namespaced(client.clone(), NAMESPACE);
    let mirrored = eventually(Duration::from_secs(5), || async {
        topics.get_opt("payments").await.unwrap()
    })
    .await;
    assert_eq!(mirrored.labels()["weir.dev/origin"], "kafka-api");
    let change = weir_controller::ConfigChange::Replace(
        [("retention.ms".to_owned(), "5000".to_owned())].into(),
    );
    plane
        .alter_topic_configs("payments", change, false)
        .await
        .unwrap();
    let spec = topics.get("payments").await.unwrap().spec;
    assert_eq!(
        spec.config["retention.ms"], "5000",
        "the spec follows Kafka"
    );

    // Reconciling does not revert what the Kafka client did.
    let current = topics.get("payments").await.unwrap();
    reconcile(Arc::new(current), ctx.clone()).await.unwrap();
    let committed = committed(&plane, "payments").await.unwrap();
    assert_eq!(committed.configs["retention.ms"], "5000");
    assert_eq!(committed.partitions.len(), 3);
    server.stop().await;
}
