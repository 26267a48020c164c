//! 7. Deleting a Topic resource deletes the Kafka topic (`deletionPolicy: Delete`) or
//!    keeps it (`Retain`); deleting the Cluster takes everything it owns with it — pods,
//!    StatefulSet, Services, config, Topic resources — keeps the brokers' volumes as
//!    `storage.retention.whenDeleted: Retain` says, and leaves no finalizer hanging
//!    (`kubectl delete` returns).

use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;

use crate::common::brokers::kafka_topics;
use crate::env::{CLUSTER, Env, NS, report, wait_for};
use crate::traffic::{Traffic, check_no_loss, read_all};

/// Names of the objects of a kind left in the namespace.
async fn left(env: &Env, group: &str, version: &str, kind: &str, plural: &str) -> Vec<String> {
    let resource = ApiResource {
        group: group.to_owned(),
        version: version.to_owned(),
        api_version: if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), NS, &resource);
    api.list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter_map(|o| o.metadata.name)
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_topics_and_the_cluster_cleans_up_per_policy() {
    let (env, bootstrap) = Env::serving().await;
    for topic in ["orders", "customer_profiles"] {
        let traffic = Traffic::start(&bootstrap, topic, 200);
        traffic.wait_flowing(100, Duration::from_secs(30)).await;
        let produced = traffic.stop().await;
        let partitions = if topic == "orders" { 12 } else { 6 };
        let read = tokio::task::block_in_place(|| read_all(&bootstrap, topic, partitions));
        check_no_loss(topic, &produced, &read);
    }

    // deletionPolicy: Delete → the Kafka topic goes, then the resource.
    let started = Instant::now();
    env.kubectl(&["delete", "topic", "orders", "-n", NS, "--timeout=60s"]);
    wait_for(
        "orders gone from Kafka",
        Duration::from_secs(30),
        || async {
            let topics = kafka_topics(&bootstrap)?;
            (!topics.contains("orders")).then_some(())
        },
    )
    .await;
    report(format!(
        "kubectl delete topic orders → gone from Kafka: {:.1?}",
        started.elapsed()
    ));

    // deletionPolicy: Retain → the resource goes, the Kafka topic and its data stay.
    env.kubectl(&[
        "delete",
        "topic",
        "customer-profiles",
        "-n",
        NS,
        "--timeout=60s",
    ]);
    let topics = kafka_topics(&bootstrap).expect("Metadata");
    assert!(topics.contains("customer_profiles"), "{topics:?}");
    let read = tokio::task::block_in_place(|| read_all(&bootstrap, "customer_profiles", 6));
    assert!(!read.is_empty(), "the retained topic keeps its records");

    // Deleting the Cluster: everything it owns goes; the PVCs stay (whenDeleted: Retain).
    let pvcs_before = left(
        &env,
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
    )
    .await;
    assert_eq!(pvcs_before.len(), 3, "{pvcs_before:?}");
    let started = Instant::now();
    env.kubectl(&["delete", "cluster", CLUSTER, "-n", NS, "--timeout=60s"]);
    let kinds = [
        ("", "v1", "Pod", "pods"),
        ("apps", "v1", "StatefulSet", "statefulsets"),
        ("", "v1", "Service", "services"),
        ("", "v1", "ConfigMap", "configmaps"),
        ("", "v1", "ServiceAccount", "serviceaccounts"),
        (
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
        ),
        ("weir.dev", "v1alpha1", "Topic", "topics"),
        ("weir.dev", "v1alpha1", "Cluster", "clusters"),
    ];
    wait_for(
        "everything the Cluster owned is gone",
        Duration::from_secs(60),
        || async {
            for (group, version, kind, plural) in kinds {
                if !left(&env, group, version, kind, plural).await.is_empty() {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    report(format!(
        "kubectl delete cluster demo → pods, StatefulSet, Services, config and Topics gone: \
         {:.1?}",
        started.elapsed()
    ));
    let pvcs_after = left(
        &env,
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
    )
    .await;
    assert_eq!(
        pvcs_after, pvcs_before,
        "whenDeleted: Retain keeps the volumes"
    );
    for claim in &pvcs_after {
        let dir = env.kubelet().volume_dir(NS, claim);
        assert!(dir.is_dir(), "{} kept", dir.display());
    }
    env.stop().await;
}
