//! The `Topic` custom resource: one Kafka topic of a [`Cluster`](super::Cluster).
//!
//! The spec is what the user asks for; the status is the controller's view, written by
//! the Kubernetes metadata store: the topic id and, per partition, the replicas, leader,
//! epochs and ISR. Schema rules the API server enforces (CEL `x-kubernetes-validations`):
//! - `partitions` may only grow (Kafka cannot remove partitions);
//! - `replicationFactor` is 1..=[`MAX_REPLICATION_FACTOR`];
//! - `topicName` is a valid Kafka topic name (1..=249 of `[a-zA-Z0-9._-]`, not `.`/`..`)
//!   and, like the cluster reference, cannot change after creation;
//! - `config` keys are Kafka topic configs Weir knows (the controller's
//!   [`TOPIC_CONFIGS`](weir_controller::TOPIC_CONFIGS)); an unknown key is refused by name.

// `KubeSchema` copies each struct, `pub` and without our attributes, into a function-local
// schema type, which trips this lint at the struct; everything here is re-exported.
#![allow(unreachable_pub)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema;

/// Kafka allows more, but a replica per broker beyond this is never what anyone meant.
pub const MAX_REPLICATION_FACTOR: i32 = 16;
/// Kafka's `num.partitions` has no ceiling; this one keeps a typo from creating a
/// million partitions.
pub const MAX_PARTITIONS: i32 = 100_000;

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "weir.dev",
    version = "v1alpha1",
    kind = "Topic",
    namespaced,
    status = "TopicStatus",
    category = "weir",
    shortname = "wtopic",
    doc = "A Kafka topic of a Weir Cluster in the same namespace.",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.cluster"}"#,
    printcolumn = r#"{"name":"Topic","type":"string","jsonPath":".status.topicName","priority":1}"#,
    printcolumn = r#"{"name":"Partitions","type":"integer","jsonPath":".spec.partitions"}"#,
    printcolumn = r#"{"name":"RF","type":"integer","jsonPath":".spec.replicationFactor"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("has(self.spec.topicName) || self.metadata.name.size() <= 249").message("metadata.name is longer than a Kafka topic name may be (249); set spec.topicName"),
    validation = Rule::new("has(self.spec.topicName) == has(oldSelf.spec.topicName)").message("spec.topicName cannot be added or removed after creation")
)]
#[serde(rename_all = "camelCase")]
pub struct TopicSpec {
    /// The `Cluster` (in this namespace) the topic lives in. Cannot change.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.cluster cannot change; create a new Topic instead"))]
    #[schemars(length(min = 1, max = 63))]
    pub cluster: String,

    /// The Kafka topic name, when it differs from `metadata.name` (Kafka names may use `_`
    /// and capitals, Kubernetes names may not). Cannot change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.topicName cannot change; create a new Topic instead"))]
    #[x_kube(validation = Rule::new("self.matches('^[a-zA-Z0-9._-]+$') && self != '.' && self != '..'").message("spec.topicName must be 1 to 249 of the characters a-z A-Z 0-9 . _ - and not '.' or '..'"))]
    #[schemars(length(min = 1, max = 249))]
    pub topic_name: Option<String>,

    /// The number of partitions. May only grow.
    #[x_kube(validation = Rule::new("self >= oldSelf").message("spec.partitions may only grow: Kafka cannot remove partitions"))]
    #[schemars(range(min = 1, max = MAX_PARTITIONS))]
    pub partitions: i32,

    /// Replicas per partition (1 to 16), at most the number of brokers.
    #[schemars(range(min = 1, max = MAX_REPLICATION_FACTOR))]
    pub replication_factor: i32,

    /// Topic config overrides, with Kafka's key names (`retention.ms`, `cleanup.policy`, …).
    /// Unknown keys are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "schema::topic_config")]
    pub config: BTreeMap<String, String>,

    /// What deleting this resource does to the Kafka topic: `Delete` (the default) deletes
    /// it and its data; `Retain` leaves the topic in the cluster.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Delete,
    Retain,
}

/// What the controller has committed for the topic. Written by the operator only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (the topic exists as specified) and `Degraded` (a partition is offline or
    /// under-replicated), kstatus style.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The Kafka topic name (spec.topicName or metadata.name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    /// Kafka's topic id (a UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    /// The committed topic configs (the overrides in effect).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Per partition: replicas, leader, epochs and ISR, as the controller committed them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionStatus>,
    /// The controller metadata version that last wrote this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_version: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartitionStatus {
    pub partition: i32,
    /// The leader's broker id; absent while the partition is offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<i32>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// During a reassignment: the replicas being added and removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
}

impl Topic {
    /// The Kafka topic name: `spec.topicName`, else `metadata.name`.
    pub fn topic_name(&self) -> &str {
        self.spec
            .topic_name
            .as_deref()
            .or(self.metadata.name.as_deref())
            .unwrap_or_default()
    }
}
