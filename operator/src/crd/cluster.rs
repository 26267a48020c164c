//! The `Cluster` custom resource: a set of Weir brokers run as a StatefulSet, with the
//! controller hosted by the operator.
//!
//! Schema rules the API server enforces (CEL `x-kubernetes-validations`): `brokers` is
//! 1..=[`MAX_BROKERS`]; `metadata.name` is short enough for the names derived from it
//! (pods `<name>-broker-<n>`, Services, at most 63 characters); `config` keys are broker
//! keys the broker knows and the operator does not manage itself; a rack topology key is
//! one the pod can see. The rest (config values, resource quantities) is checked by the
//! reconciler's validate step, which reports `Ready=False` with the reason.

// `KubeSchema` copies each struct, `pub` and without our attributes, into a function-local
// schema type, which trips this lint at the struct; everything here is re-exported.
#![allow(unreachable_pub)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema;

/// A StatefulSet this large is a different product.
pub const MAX_BROKERS: i32 = 64;

/// Node labels a pod can read through the downward API (Kubernetes copies them onto pods
/// with the `PodTopologyLabelsAdmission` plugin), so a broker can learn its rack.
pub const RACK_TOPOLOGY_KEYS: &[&str] = &[
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
];

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "weir.dev",
    version = "v1alpha1",
    kind = "Cluster",
    namespaced,
    status = "ClusterStatus",
    category = "weir",
    shortname = "wcluster",
    doc = "A Weir cluster: Kafka-compatible brokers run as a StatefulSet, with the controller hosted by the operator.",
    printcolumn = r#"{"name":"Brokers","type":"integer","jsonPath":".spec.brokers"}"#,
    printcolumn = r#"{"name":"Ready Brokers","type":"integer","jsonPath":".status.readyBrokers"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Under-Replicated","type":"integer","jsonPath":".status.underReplicatedPartitions","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("self.metadata.name.size() <= 40").message("metadata.name may be at most 40 characters: pod, Service and PVC names are derived from it")
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// The number of brokers (StatefulSet replicas), 1 to 64. Broker ids are the pod
    /// ordinals 0..brokers-1.
    #[schemars(range(min = 1, max = MAX_BROKERS))]
    pub brokers: i32,

    /// The broker image. Defaults to the image of this operator's release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// `Always`, `IfNotPresent` or `Never`; Kubernetes' default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,

    /// Each broker's data volume.
    pub storage: Storage,

    /// The broker container's resource requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Broker config with Kafka's key names (`num.partitions`, `min.insync.replicas`, …),
    /// parsed and validated by the broker's own config code. Keys the operator sets for
    /// each pod (`node.id`, listeners, `log.dirs`, …) are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "schema::broker_config")]
    pub config: BTreeMap<String, String>,

    /// Listeners. The internal listener (9092, advertised as each pod's DNS name on the
    /// headless Service) always exists.
    #[serde(default, skip_serializing_if = "Listeners::is_default")]
    pub listeners: Listeners,

    /// Rack awareness: each broker's `broker.rack` is its node's value of this label, and
    /// replicas are spread across racks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<Rack>,

    /// Overrides for the broker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodOverrides>,

    /// Moving replicas when brokers are added. (Removing brokers always moves their
    /// replicas off first: the StatefulSet shrinks only once they hold none, and never
    /// below a topic's replication factor.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<Rebalance>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rebalance {
    /// After a scale-up, once the new brokers are registered and every broker is in
    /// sync, reassign replicas so each broker holds an even share (the fewest moves that
    /// leave replica counts within one of each other; followers move before leaders).
    #[serde(default)]
    pub on_scale_up: bool,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// The size of each broker's volume, e.g. `100Gi`.
    pub size: Quantity,
    /// The StorageClass; the cluster's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// What happens to the volumes when the Cluster is deleted or scaled down.
    #[serde(default)]
    pub retention: StorageRetention,
}

/// The StatefulSet's `persistentVolumeClaimRetentionPolicy`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageRetention {
    /// `Retain` (the default: data outlives a deleted Cluster) or `Delete`.
    #[serde(default)]
    pub when_deleted: RetentionPolicy,
    /// `Retain` or `Delete` (the default: a scaled-down broker's replicas were already
    /// drained off it).
    #[serde(default = "RetentionPolicy::delete")]
    pub when_scaled: RetentionPolicy,
}

impl Default for StorageRetention {
    fn default() -> StorageRetention {
        StorageRetention {
            when_deleted: RetentionPolicy::Retain,
            when_scaled: RetentionPolicy::Delete,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RetentionPolicy {
    #[default]
    Retain,
    Delete,
}

impl RetentionPolicy {
    fn delete() -> RetentionPolicy {
        RetentionPolicy::Delete
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RetentionPolicy::Retain => "Retain",
            RetentionPolicy::Delete => "Delete",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Listeners {
    /// An external listener per broker, for clients outside the Kubernetes cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalListener>,
}

impl Listeners {
    fn is_default(&self) -> bool {
        *self == Listeners::default()
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type != 'NodePort' || has(self.nodePortBase)").message("a NodePort listener needs nodePortBase: the advertised port of broker n is nodePortBase + n"))]
#[x_kube(validation = Rule::new("self.type != 'LoadBalancer' || self.advertisedHost.contains('{id}')").message("a LoadBalancer listener's advertisedHost must contain {id}: each broker has its own load balancer"))]
pub struct ExternalListener {
    /// How each broker is exposed: one `NodePort` or `LoadBalancer` Service per broker.
    #[serde(rename = "type")]
    pub kind: ExternalType,
    /// The host external clients reach broker `n` at; `{id}` is replaced by `n`. For
    /// `NodePort`, an address that reaches the nodes (all brokers may share it: their ports
    /// differ); for `LoadBalancer`, a DNS name per broker (pointed at its load balancer).
    #[schemars(length(min = 1, max = 253))]
    pub advertised_host: String,
    /// `LoadBalancer` only: the port clients connect to (9095 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// `NodePort` only: broker `n` gets node port `nodePortBase + n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub node_port_base: Option<i32>,
    /// Annotations for the per-broker Services (cloud load balancer settings).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ExternalType {
    NodePort,
    LoadBalancer,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Rack {
    /// The node label whose value is the broker's rack: `topology.kubernetes.io/zone` or
    /// `topology.kubernetes.io/region` (the labels Kubernetes copies onto pods).
    #[x_kube(validation = Rule::new("self in ['topology.kubernetes.io/zone', 'topology.kubernetes.io/region']").message("rack.topologyKey must be topology.kubernetes.io/zone or topology.kubernetes.io/region: only these node labels reach a pod"))]
    pub topology_key: String,
}

/// Pod template overrides for the broker pods.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Replaces the default affinity (a preference to spread brokers over nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Seconds a broker gets to stop after SIGTERM; long enough for controlled shutdown
    /// (leadership moved away) and a clean log close. 120 by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 3600))]
    pub termination_grace_period_seconds: Option<i64>,
}

/// What the operator observes about the cluster. Written by the operator only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` and `Degraded`, kstatus style, with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Brokers whose pod is ready.
    #[serde(default)]
    pub ready_brokers: i32,
    /// Per broker: its pod, whether it is ready, and whether it is in every ISR it belongs to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brokers: Vec<BrokerStatus>,
    /// Where brokers reach the controller (gRPC), hosted by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_endpoint: Option<String>,
    /// The in-cluster bootstrap address for Kafka clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,
    /// Partitions whose ISR is smaller than their replica set.
    #[serde(default)]
    pub under_replicated_partitions: i32,
    /// The Kafka cluster id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// The brokers replicas were last spread over (set when the cluster first runs, after
    /// a rebalance and after a scale-down): a scale-up is a broker not listed here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub balanced_brokers: Vec<i32>,
    /// The controller's cluster-wide metadata (broker registrations, producer-id blocks),
    /// kept here by the Kubernetes metadata store; topics live in `Topic.status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ControllerState>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    pub id: i32,
    pub pod: String,
    pub ready: bool,
    /// In the ISR of every partition it replicates.
    pub in_sync: bool,
    /// Registered with the controller and not fenced.
    #[serde(default)]
    pub registered: bool,
}

/// The controller's cluster-wide state, as the Kubernetes metadata store persists it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControllerState {
    /// The metadata image version (Kafka's metadata offset, in spirit); every commit
    /// bumps it, and every save checks it (optimistic concurrency).
    pub version: i64,
    pub next_producer_id: i64,
    pub last_broker_epoch: i64,
    /// Registered brokers, each as the controller's own JSON of it (id, listeners, rack,
    /// broker epoch, incarnation, fencing), so the store never lags the controller's type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::opaque_objects")]
    pub brokers: Vec<serde_json::Value>,
}
