//! The custom resources, group `weir.dev`, version `v1alpha1`, category `weir`:
//! [`Cluster`] and [`Topic`]. Their CRD YAML (`crds/`, `charts/weir/crds/`) is generated
//! from these types by `weir-operator crdgen` ([`crate::crdgen`]); a test fails when the
//! checked-in YAML drifts.

mod cluster;
mod conditions;
pub mod schema;
mod topic;

pub use cluster::{
    BrokerStatus, Cluster, ClusterSpec, ClusterStatus, ControllerState, ExternalListener,
    ExternalType, Listeners, MAX_BROKERS, PodOverrides, PullPolicy, RACK_TOPOLOGY_KEYS, Rack,
    RetentionPolicy, Storage, StorageRetention,
};
pub use conditions::{ConditionType, set_condition};
pub use topic::{
    DeletionPolicy, MAX_PARTITIONS, MAX_REPLICATION_FACTOR, PartitionStatus, Topic, TopicSpec,
    TopicStatus,
};

/// The API group of Weir's resources.
pub const GROUP: &str = "weir.dev";
/// The API version of Weir's resources.
pub const VERSION: &str = "v1alpha1";
