//! Weir's controller: the Kubernetes-free cluster brain.
//!
//! This crate owns the cluster metadata (brokers and their liveness, topics,
//! partition replicas, leaders, epochs, ISR, reassignments and topic config
//! overrides), the rules that change it (Kafka's KRaft controller semantics: broker
//! registration and fencing, leader election from the ISR, AlterPartition,
//! reassignment, controlled shutdown, Kafka's topic, partition and config checks,
//! replica placement), and its persistence through the [`MetadataStore`] trait. The
//! rules are plain state machines driven by calls and by [`Controller::tick`], tested
//! without a network. It knows nothing of Kubernetes or of the broker; both depend
//! on it.
//!
//! Modules, one concern each:
//! - [`ids`]: `BrokerId`, validated `TopicName`, `TopicId`, `ListenerName`;
//! - [`metadata`]: the metadata image types;
//! - [`config`]: the controller's config keys and their defaults;
//! - [`topic_config`]: Kafka's topic configs, their defaults and validation;
//! - [`placement`]: replica placement and manual-assignment checks (pure);
//! - [`registry`]: broker registration, broker epochs, sessions and fencing (pure);
//! - [`partitions`]: leader election, ISR changes, fencing and draining (pure);
//! - [`reassignment`]: partition reassignment, KIP-455 (pure);
//! - [`store`]: the `MetadataStore` trait, a JSON file store and a memory store;
//! - [`error`]: `ControllerError` and its Kafka error codes;
//! - [`controller`]: the `Controller` that plans, persists and publishes changes;
//! - [`plane`]: the [`ControlPlane`] trait brokers call the controller through;
//! - [`local`]: [`LocalControlPlane`], the `ControlPlane` of the controller in this process;
//! - [`grpc`]: the gRPC control plane: the server over any [`ControlPlane`], the
//!   router that serves many clusters' controllers on one endpoint, the
//!   [`RemoteControlPlane`] client, and the metadata watch's versioned deltas.

pub mod balance;
pub mod config;
pub mod controller;
pub mod error;
pub mod grpc;
pub mod ids;
pub mod local;
pub mod metadata;
pub mod partitions;
pub mod placement;
pub mod plane;
pub mod reassignment;
pub mod registry;
pub mod store;
pub mod topic_config;

pub use config::{ControllerConfig, ControllerConfigError, ControllerDefaults};
pub use controller::{ConfigOp, Controller, CreateTopic, TickReport};
pub use error::ControllerError;
pub use grpc::{ControlPlaneService, RemoteControlPlane};
pub use ids::{BrokerId, InvalidTopicName, ListenerName, TopicId, TopicName};
pub use local::LocalControlPlane;
pub use metadata::{BrokerInfo, ClusterMetadata, Listener, PartitionState, TopicMetadata};
pub use partitions::{PartitionError, ReplicaStatus};
pub use placement::{PlacementError, assign_replicas, validate_assignment};
pub use plane::{
    AlterPartition, Committed, ConfigChange, ControlPlane, ControlledShutdownReply, ElectionResult,
    ElectionType, Heartbeat, HeartbeatReply, OngoingReassignment, PartitionRef, ReassignmentChange,
    Registered, TopicRef,
};
pub use reassignment::ReassignmentError;
pub use registry::{BrokerEpoch, RegisterBroker, RegistryError};
pub use store::{FileMetadataStore, MemoryMetadataStore, MetadataStore, StoreError};
pub use topic_config::{
    ConfigError, ConfigKind, InvalidValue, TOPIC_CONFIGS, TopicConfigDef, Validator,
    apply_config_ops, effective_value, topic_config_def, validate_topic_configs,
};
