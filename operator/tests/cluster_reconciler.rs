//! The Cluster reconciler against the API server double: apply → owned objects with the
//! right owner; a config change → a new pod-template revision; an invalid spec →
//! Ready=False with the reason; delete → everything it owned is gone.

mod common;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use weir_operator::cluster::build::CONFIG_HASH_ANNOTATION;
use weir_operator::cluster::reconcile::reconcile;
use weir_operator::context::Context;
use weir_operator::crd::Cluster;

use common::{NAMESPACE, api_server, context};

fn demo() -> Cluster {
    serde_json::from_value(json!({
        "apiVersion": "weir.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": "demo", "namespace": NAMESPACE},
        "spec": {"brokers": 3, "storage": {"size": "1Gi"}, "config": {"min.insync.replicas": "2"}},
    }))
    .unwrap()
}

fn condition(cluster: &Cluster, kind: &str) -> (String, String, String) {
    let c = cluster
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == kind))
        .unwrap_or_else(|| panic!("no {kind} condition in {:?}", cluster.status));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

/// Creates `cluster` and runs one reconcile of it.
async fn create_and_reconcile(clusters: &Api<Cluster>, ctx: &Arc<Context>, cluster: Cluster) {
    let created = clusters
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap();
    reconcile(Arc::new(created), ctx.clone()).await.unwrap();
}

async fn config_hash(statefulsets: &Api<StatefulSet>) -> String {
    let sts = statefulsets.get("demo-broker").await.unwrap();
    sts.spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap()[CONFIG_HASH_ANNOTATION]
        .clone()
}

#[tokio::test]
async fn applying_a_cluster_creates_its_objects_owned_by_it_and_reports_status() {
    let server = api_server().await;
    let client = server.client();
    let ctx = context(client.clone());
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), NAMESPACE);
    let created = clusters
        .create(&PostParams::default(), &demo())
        .await
        .unwrap();
    let uid = created.uid().unwrap();

    reconcile(Arc::new(created), ctx.clone()).await.unwrap();

    let sts: StatefulSet = Api::namespaced(client.clone(), NAMESPACE)
        .get("demo-broker")
        .await
        .unwrap();
    let owner = &sts.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Cluster", uid.as_str(), Some(true))
    );
    assert_eq!(sts.spec.as_ref().unwrap().replicas, Some(3));
    let cm: ConfigMap = Api::namespaced(client.clone(), NAMESPACE)
        .get("demo-broker-config")
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap().len(), 3);
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    for name in ["demo-brokers", "demo-bootstrap"] {
        let service = services.get(name).await.unwrap();
        assert_eq!(service.owner_references()[0].uid, uid);
    }
    let _: PodDisruptionBudget = Api::namespaced(client.clone(), NAMESPACE)
        .get("demo-broker")
        .await
        .unwrap();
    let _: ServiceAccount = Api::namespaced(client.clone(), NAMESPACE)
        .get("demo-broker")
        .await
        .unwrap();
    // Written by server-side apply, as the operator's field manager.
    assert!(
        sts.managed_fields()
            .iter()
            .any(|m| m.manager.as_deref() == Some("weir-operator")
                && m.operation.as_deref() == Some("Apply"))
    );

    let cluster = clusters.get("demo").await.unwrap();
    let status = cluster.status.clone().unwrap();
    assert_eq!(status.observed_generation, cluster.metadata.generation);
    assert_eq!(
        status.bootstrap_servers.as_deref(),
        Some("demo-bootstrap.kafka.svc:9092")
    );
    assert_eq!(status.ready_brokers, 0);
    assert_eq!(condition(&cluster, "Ready").1, "BrokersNotReady");
    assert_eq!(condition(&cluster, "Progressing").0, "True");
    // The hosted controller stored its first image in the Cluster's status.
    assert!(status.metadata.is_some_and(|m| m.version >= 1));
    assert!(status.cluster_id.is_some_and(|id| id.len() == 22));
    assert!(ctx.hosting.get(NAMESPACE, "demo").is_some());
    server.stop().await;
}

#[tokio::test]
async fn a_config_change_is_a_new_revision_and_scaling_is_not() {
    let server = api_server().await;
    let client = server.client();
    let ctx = context(client.clone());
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), NAMESPACE);
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), NAMESPACE);
    create_and_reconcile(&clusters, &ctx, demo()).await;
    let first = config_hash(&statefulsets).await;

    let patch = json!({"spec": {"config": {"min.insync.replicas": "2", "num.partitions": "6"}}});
    let changed = clusters
        .patch("demo", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    reconcile(Arc::new(changed), ctx.clone()).await.unwrap();
    let second = config_hash(&statefulsets).await;
    assert_ne!(
        first, second,
        "a config change must change the pod template"
    );
    let cm: ConfigMap = Api::namespaced(client.clone(), NAMESPACE)
        .get("demo-broker-config")
        .await
        .unwrap();
    assert!(cm.data.unwrap()["demo-broker-0.properties"].contains("\nnum.partitions=6\n"));

    let scaled = clusters
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"brokers": 4}})),
        )
        .await
        .unwrap();
    reconcile(Arc::new(scaled), ctx.clone()).await.unwrap();
    assert_eq!(
        config_hash(&statefulsets).await,
        second,
        "scaling restarts no broker"
    );
    assert_eq!(
        statefulsets
            .get("demo-broker")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(4)
    );
    server.stop().await;
}

#[tokio::test]
async fn an_invalid_spec_is_reported_and_changes_nothing() {
    let server = api_server().await;
    let client = server.client();
    let ctx = context(client.clone());
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), NAMESPACE);
    let mut bad = demo();
    bad.spec
        .config
        .insert("default.replication.factor".into(), "5".into());
    let created = clusters.create(&PostParams::default(), &bad).await.unwrap();
    reconcile(Arc::new(created), ctx.clone()).await.unwrap();

    let cluster = clusters.get("demo").await.unwrap();
    let (status, reason, message) = condition(&cluster, "Ready");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ReplicationFactorAboveBrokers")
    );
    assert!(message.contains("default.replication.factor"), "{message}");
    assert_eq!(condition(&cluster, "Degraded").0, "True");
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), NAMESPACE);
    assert!(statefulsets.get_opt("demo-broker").await.unwrap().is_none());
    // A Warning event says why.
    let events = server.objects("events.k8s.io", "events");
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "ReplicationFactorAboveBrokers" && e["type"] == "Warning"),
        "{events:?}"
    );

    // Fixing the spec builds the cluster.
    let fixed = clusters
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"config": {"default.replication.factor": "3"}}})),
        )
        .await
        .unwrap();
    reconcile(Arc::new(fixed), ctx.clone()).await.unwrap();
    assert!(statefulsets.get_opt("demo-broker").await.unwrap().is_some());
    server.stop().await;
}

#[tokio::test]
async fn deleting_a_cluster_removes_what_it_owned() {
    let server = api_server().await;
    let client = server.client();
    let ctx = context(client.clone());
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), NAMESPACE);
    create_and_reconcile(&clusters, &ctx, demo()).await;
    assert!(!server.objects("apps", "statefulsets").is_empty());

    clusters
        .delete("demo", &DeleteParams::default())
        .await
        .unwrap();
    assert!(clusters.get_opt("demo").await.unwrap().is_none());
    for (group, plural) in [
        ("apps", "statefulsets"),
        ("", "configmaps"),
        ("", "services"),
        ("policy", "poddisruptionbudgets"),
        ("", "serviceaccounts"),
    ] {
        let left: Vec<_> = server
            .objects(group, plural)
            .into_iter()
            .filter(|o| o["metadata"]["namespace"] == NAMESPACE)
            .collect();
        assert!(left.is_empty(), "{plural} left behind: {left:?}");
    }
    server.stop().await;
}
