//! Golden objects: what a Cluster builds, compared with YAML under `golden/` (regenerate
//! with `WEIR_BLESS=1 cargo test -p weir-operator golden`, then review the diff), and the
//! properties that matter asserted one by one.

use std::path::PathBuf;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::json;

use super::*;
use crate::cluster::validate::{ClusterDefaults, InvalidSpec, validate};
use crate::crd::Cluster;

fn defaults() -> ClusterDefaults {
    ClusterDefaults {
        broker_image: "ghcr.io/weir-dev/weir-broker:0.1.0".to_owned(),
        controller_address: "weir-operator-controller.weir-system.svc:9093".to_owned(),
    }
}

fn owner() -> OwnerReference {
    OwnerReference {
        api_version: "weir.dev/v1alpha1".to_owned(),
        kind: "Cluster".to_owned(),
        name: "demo".to_owned(),
        uid: "4a2f8e1c-0000-4000-8000-000000000001".to_owned(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn cluster(spec: serde_json::Value) -> Cluster {
    serde_json::from_value(json!({
        "apiVersion": "weir.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": "demo", "namespace": "kafka", "uid": owner().uid, "generation": 1},
        "spec": spec,
    }))
    .unwrap()
}

fn three_brokers() -> Cluster {
    cluster(json!({
        "brokers": 3,
        "storage": {"size": "10Gi", "storageClassName": "fast"},
        "config": {"min.insync.replicas": "2", "default.replication.factor": "3"},
    }))
}

fn build_ok(cluster: &Cluster) -> ClusterObjects {
    build(&validate(cluster, &defaults()).unwrap(), &owner())
}

fn golden(name: &str, objects: &ClusterObjects) {
    let rendered: String = objects
        .in_apply_order()
        .iter()
        .map(|o| format!("---\n{}", serde_yaml::to_string(&o.object).unwrap()))
        .collect();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/cluster/build/golden")
        .join(format!("{name}.yaml"));
    if std::env::var_os("WEIR_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &rendered).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with WEIR_BLESS=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == rendered,
        "{} differs from what the build produces; review and rerun with WEIR_BLESS=1:\n{rendered}",
        path.display()
    );
}

#[test]
fn golden_three_broker_cluster() {
    golden("three-brokers", &build_ok(&three_brokers()));
}

#[test]
fn golden_cluster_with_external_listener_rack_and_overrides() {
    let objects = build_ok(&cluster(json!({
        "brokers": 2,
        "image": "registry.example.com/weir-broker:dev",
        "imagePullPolicy": "Always",
        "storage": {"size": "100Gi", "retention": {"whenDeleted": "Delete", "whenScaled": "Retain"}},
        "listeners": {"external": {"type": "NodePort", "advertisedHost": "node.example.com", "nodePortBase": 31000}},
        "rack": {"topologyKey": "topology.kubernetes.io/zone"},
        "template": {
            "labels": {"team": "payments"},
            "annotations": {"prometheus.io/scrape": "true"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "kafka", "effect": "NoSchedule"}],
            "priorityClassName": "high",
            "terminationGracePeriodSeconds": 300
        }
    })));
    golden("external-rack-overrides", &objects);
}

#[test]
fn every_object_is_owned_by_the_cluster_and_labelled() {
    let objects = build_ok(&three_brokers());
    for object in objects.in_apply_order() {
        let meta = &object.object.metadata;
        assert_eq!(
            meta.owner_references.as_deref(),
            Some(&[owner()][..]),
            "{:?}",
            meta.name
        );
        assert_eq!(meta.namespace.as_deref(), Some("kafka"));
        assert_eq!(meta.labels.as_ref().unwrap()[CLUSTER_LABEL], "demo");
    }
    let last = objects.in_apply_order().pop().unwrap();
    assert_eq!(last.resource.kind, "StatefulSet");
}

#[test]
fn each_broker_gets_its_own_config_file_with_its_identity() {
    let objects = build_ok(&three_brokers());
    let data = objects.config_map.data.unwrap();
    assert_eq!(data.len(), 3);
    let broker_1 = &data["demo-broker-1.properties"];
    assert!(broker_1.contains("\nnode.id=1\n"), "{broker_1}");
    assert!(broker_1.contains(
        "\nadvertised.listeners=PLAINTEXT://demo-broker-1.demo-brokers.kafka.svc:9092\n"
    ));
    assert!(broker_1.contains(
        "\ncontroller.quorum.bootstrap.servers=weir-operator-controller.weir-system.svc:9093\n"
    ));
    assert!(broker_1.contains("\nmin.insync.replicas=2\n"));
    let sts = objects.statefulset.spec.unwrap();
    let container = &sts.template.spec.unwrap().containers[0];
    assert_eq!(
        container.args.as_deref().unwrap(),
        ["--config", "/etc/weir/$(POD_NAME).properties"]
    );
}

#[test]
fn a_config_change_is_a_new_pod_template_revision() {
    let hash = |c: &Cluster| {
        let sts = build_ok(c).statefulset;
        sts.spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()[CONFIG_HASH_ANNOTATION]
            .clone()
    };
    let before = three_brokers();
    let mut after = before.clone();
    after
        .spec
        .config
        .insert("num.partitions".into(), "6".into());
    assert_ne!(hash(&before), hash(&after));
    assert_eq!(
        hash(&before),
        hash(&three_brokers()),
        "the hash is deterministic"
    );
    let mut scaled = before.clone();
    scaled.spec.brokers = 5;
    assert_eq!(
        hash(&before),
        hash(&scaled),
        "scaling restarts no existing broker"
    );
}

#[test]
fn statefulset_is_updated_on_delete_with_retention_and_probes() {
    let sts = build_ok(&three_brokers()).statefulset.spec.unwrap();
    assert_eq!(sts.replicas, Some(3));
    assert_eq!(
        sts.update_strategy.unwrap().type_.as_deref(),
        Some("OnDelete")
    );
    let retention = sts.persistent_volume_claim_retention_policy.unwrap();
    assert_eq!(retention.when_deleted.as_deref(), Some("Retain"));
    assert_eq!(retention.when_scaled.as_deref(), Some("Delete"));
    let pod = sts.template.spec.unwrap();
    assert_eq!(pod.termination_grace_period_seconds, Some(120));
    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
    let container = &pod.containers[0];
    let readiness = container
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(readiness.path.as_deref(), Some("/readyz"));
    let claim = &sts.volume_claim_templates.unwrap()[0];
    let requests = claim
        .spec
        .as_ref()
        .unwrap()
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref()
        .unwrap();
    assert_eq!(requests["storage"].0, "10Gi");
}

#[test]
fn external_node_ports_are_one_service_per_broker() {
    let objects = build_ok(&cluster(json!({
        "brokers": 3,
        "storage": {"size": "1Gi"},
        "listeners": {"external": {"type": "NodePort", "advertisedHost": "nodes.example.com", "nodePortBase": 31000}},
    })));
    assert_eq!(objects.external_services.len(), 3);
    let service = objects.external_services[2].spec.as_ref().unwrap();
    assert_eq!(service.ports.as_ref().unwrap()[0].node_port, Some(31002));
    assert_eq!(
        service.selector.as_ref().unwrap()["statefulset.kubernetes.io/pod-name"],
        "demo-broker-2"
    );
    let config = &objects.config_map.data.unwrap()["demo-broker-2.properties"];
    assert!(
        config.contains(",EXTERNAL://nodes.example.com:31002\n"),
        "{config}"
    );
}

#[test]
fn invalid_specs_name_what_is_wrong() {
    let bad_value = cluster(json!({"brokers": 1, "storage": {"size": "1Gi"},
        "config": {"num.partitions": "many"}}));
    let err = validate(&bad_value, &defaults()).unwrap_err();
    assert_eq!(err.reason(), "InvalidBrokerConfig");
    assert!(err.to_string().contains("num.partitions"), "{err}");

    let rf = cluster(json!({"brokers": 2, "storage": {"size": "1Gi"},
        "config": {"default.replication.factor": "3"}}));
    let err = validate(&rf, &defaults()).unwrap_err();
    assert!(
        matches!(
            err,
            InvalidSpec::ReplicationAboveBrokers {
                value: 3,
                brokers: 2,
                ..
            }
        ),
        "{err}"
    );

    let managed =
        cluster(json!({"brokers": 1, "storage": {"size": "1Gi"}, "config": {"log.dirs": "/x"}}));
    assert!(matches!(
        validate(&managed, &defaults()),
        Err(InvalidSpec::ManagedKey { .. })
    ));

    let size = cluster(json!({"brokers": 1, "storage": {"size": "lots"}}));
    assert_eq!(
        validate(&size, &defaults()).unwrap_err().reason(),
        "InvalidStorage"
    );

    let cross = cluster(json!({"brokers": 1, "storage": {"size": "1Gi"},
        "config": {"broker.heartbeat.interval.ms": "20000"}}));
    let err = validate(&cross, &defaults()).unwrap_err();
    assert!(
        err.to_string().contains("broker.heartbeat.interval.ms"),
        "{err}"
    );
}

#[test]
fn the_default_image_applies_unless_the_spec_names_one() {
    let valid = validate(&three_brokers(), &defaults()).unwrap();
    assert_eq!(valid.image, defaults().broker_image);
    let mut named = three_brokers();
    named.spec.image = Some("example/weir:1".into());
    assert_eq!(
        validate(&named, &defaults()).unwrap().image,
        "example/weir:1"
    );
}
