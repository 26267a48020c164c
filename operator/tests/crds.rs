//! The CRDs: the checked-in YAML matches the Rust types, every example parses into them,
//! and the schema's CEL rules refuse what they should, checked with kube's CEL evaluator
//! (the same rules the API server runs).

use std::path::{Path, PathBuf};

use kube::CustomResourceExt;
use kube::core::cel::Validator;
use serde_json::{Value, json};
use weir_operator::crd::{Cluster, Topic};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn crds_match_the_rust_types() {
    if let Err(e) = weir_operator::crdgen::check(&repo_root()) {
        panic!("{e}");
    }
}

#[test]
fn every_example_parses_into_the_rust_types() {
    let mut parsed = 0;
    for entry in std::fs::read_dir(repo_root().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let kind = value["kind"].as_str().unwrap_or_default().to_owned();
            let schema_errors = match kind.as_str() {
                "Cluster" => {
                    let cluster: Cluster = serde_json::from_value(value.clone())
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    assert!(cluster.spec.brokers > 0);
                    validate::<Cluster>(&value, None)
                }
                "Topic" => {
                    let topic: Topic = serde_json::from_value(value.clone())
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    assert!(topic.spec.partitions > 0);
                    validate::<Topic>(&value, None)
                }
                other => panic!("{}: unexpected kind {other:?}", path.display()),
            };
            assert_eq!(schema_errors, Vec::<String>::new(), "{}", path.display());
            parsed += 1;
        }
    }
    assert!(parsed >= 3, "examples/ should hold a Cluster and Topics");
}

/// The messages of the CEL rules `object` breaks (as an update of `old` when given).
fn validate<K: CustomResourceExt>(object: &Value, old: Option<&Value>) -> Vec<String> {
    let crd = K::crd();
    let schema = serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .unwrap(),
    )
    .unwrap();
    match Validator::new().validate(&schema, object, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

fn topic(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "weir.dev/v1alpha1", "kind": "Topic", "metadata": {"name": name}, "spec": spec})
}

fn cluster(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "weir.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": name}, "spec": spec})
}

#[test]
fn topic_partitions_may_only_grow() {
    let old = topic(
        "t",
        json!({"cluster": "c", "partitions": 6, "replicationFactor": 3}),
    );
    let grown = topic(
        "t",
        json!({"cluster": "c", "partitions": 8, "replicationFactor": 3}),
    );
    let shrunk = topic(
        "t",
        json!({"cluster": "c", "partitions": 4, "replicationFactor": 3}),
    );
    assert_eq!(validate::<Topic>(&grown, Some(&old)), Vec::<String>::new());
    let errors = validate::<Topic>(&shrunk, Some(&old));
    assert!(
        errors.iter().any(|m| m.contains("may only grow")),
        "{errors:?}"
    );
}

#[test]
fn topic_refuses_unknown_config_keys_by_name() {
    let bad = topic(
        "t",
        json!({"cluster": "c", "partitions": 1, "replicationFactor": 1,
               "config": {"retention.ms": "1000", "retention.msec": "5"}}),
    );
    let errors = validate::<Topic>(&bad, None);
    assert!(
        errors
            .iter()
            .any(|m| m.contains("retention.msec") && !m.contains("'retention.ms'")),
        "{errors:?}"
    );
}

#[test]
fn topic_name_and_cluster_cannot_change() {
    let old = topic(
        "t",
        json!({"cluster": "c", "topicName": "T_1", "partitions": 1, "replicationFactor": 1}),
    );
    let renamed = topic(
        "t",
        json!({"cluster": "c", "topicName": "T_2", "partitions": 1, "replicationFactor": 1}),
    );
    let moved = topic(
        "t",
        json!({"cluster": "d", "topicName": "T_1", "partitions": 1, "replicationFactor": 1}),
    );
    let dropped = topic(
        "t",
        json!({"cluster": "c", "partitions": 1, "replicationFactor": 1}),
    );
    assert!(
        validate::<Topic>(&renamed, Some(&old))
            .iter()
            .any(|m| m.contains("topicName cannot change"))
    );
    assert!(
        validate::<Topic>(&moved, Some(&old))
            .iter()
            .any(|m| m.contains("cluster cannot change"))
    );
    assert!(
        validate::<Topic>(&dropped, Some(&old))
            .iter()
            .any(|m| m.contains("added or removed"))
    );
}

#[test]
fn topic_name_must_be_a_kafka_name() {
    let bad = topic(
        "t",
        json!({"cluster": "c", "topicName": "no spaces", "partitions": 1, "replicationFactor": 1}),
    );
    let dots = topic(
        "t",
        json!({"cluster": "c", "topicName": "..", "partitions": 1, "replicationFactor": 1}),
    );
    let good = topic(
        "t",
        json!({"cluster": "c", "topicName": "Orders_v2.eu-1", "partitions": 1, "replicationFactor": 1}),
    );
    assert!(!validate::<Topic>(&bad, None).is_empty());
    assert!(!validate::<Topic>(&dots, None).is_empty());
    assert_eq!(validate::<Topic>(&good, None), Vec::<String>::new());
}

#[test]
fn cluster_schema_refuses_long_names_operator_keys_and_bad_listeners() {
    let spec = json!({"brokers": 3, "storage": {"size": "1Gi"}});
    assert_eq!(
        validate::<Cluster>(&cluster("demo", spec.clone()), None),
        Vec::<String>::new()
    );
    let long = cluster(&"a".repeat(41), spec);
    assert!(
        validate::<Cluster>(&long, None)
            .iter()
            .any(|m| m.contains("at most 40"))
    );

    let managed = cluster(
        "demo",
        json!({"brokers": 1, "storage": {"size": "1Gi"},
        "config": {"node.id": "3", "num.partitions": "4"}}),
    );
    let errors = validate::<Cluster>(&managed, None);
    assert!(
        errors
            .iter()
            .any(|m| m.contains("node.id") && !m.contains("num.partitions")),
        "{errors:?}"
    );

    let lb = cluster(
        "demo",
        json!({"brokers": 1, "storage": {"size": "1Gi"},
        "listeners": {"external": {"type": "LoadBalancer", "advertisedHost": "kafka.example.com"}}}),
    );
    assert!(
        validate::<Cluster>(&lb, None)
            .iter()
            .any(|m| m.contains("{id}"))
    );
    let node_port = cluster(
        "demo",
        json!({"brokers": 1, "storage": {"size": "1Gi"},
        "listeners": {"external": {"type": "NodePort", "advertisedHost": "node.example.com"}}}),
    );
    assert!(
        validate::<Cluster>(&node_port, None)
            .iter()
            .any(|m| m.contains("nodePortBase"))
    );

    let rack = cluster(
        "demo",
        json!({"brokers": 1, "storage": {"size": "1Gi"},
        "rack": {"topologyKey": "kubernetes.io/hostname"}}),
    );
    assert!(
        validate::<Cluster>(&rack, None)
            .iter()
            .any(|m| m.contains("topologyKey"))
    );
}
