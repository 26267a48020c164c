//! Weir's controller: the Kubernetes-free cluster brain.
//!
//! This crate owns the cluster metadata (brokers, topics, partition replicas,
//! leaders, epochs, ISR and topic config overrides), the rules that change it
//! (Kafka's topic, partition and config checks, replica placement), and its
//! persistence through the [`MetadataStore`] trait. It knows nothing of
//! Kubernetes or of the broker; both depend on it.
//!
//! Modules, one concern each:
//! - [`ids`]: `BrokerId`, validated `TopicName`, `TopicId`;
//! - [`metadata`]: the metadata image types;
//! - [`topic_config`]: Kafka's topic configs, their defaults and validation;
//! - [`placement`]: replica placement and manual-assignment checks (pure);
//! - [`store`]: the `MetadataStore` trait, a JSON file store and a memory store;
//! - [`controller`]: the `Controller` that plans, persists and publishes changes;
//! - [`plane`]: the [`ControlPlane`] trait brokers call the controller through;
//! - [`registry`]: broker registration, broker epochs, sessions and fencing (pure);
//! - [`grpc`]: the gRPC control plane: the server over any [`ControlPlane`], the
//!   [`RemoteControlPlane`] client, and the metadata watch's versioned deltas.

pub mod controller;
pub mod grpc;
pub mod ids;
pub mod metadata;
pub mod placement;
pub mod plane;
pub mod registry;
pub mod store;
pub mod topic_config;

pub use controller::{ConfigOp, Controller, ControllerDefaults, ControllerError, CreateTopic};
pub use grpc::{ControlPlaneService, RemoteControlPlane};
pub use ids::{BrokerId, InvalidTopicName, TopicId, TopicName};
pub use metadata::{BrokerInfo, ClusterMetadata, PartitionState, TopicMetadata};
pub use placement::{PlacementError, assign_replicas, validate_assignment};
pub use plane::{
    AlterPartition, Committed, ConfigChange, ControlPlane, ControlledShutdownReply, ElectionResult,
    ElectionType, Heartbeat, HeartbeatReply, OngoingReassignment, PartitionRef, ReassignmentChange,
    Registered, TopicRef,
};
pub use registry::{BrokerEpoch, BrokerRegistrations, BrokerRegistry, RegistryError};
pub use store::{FileMetadataStore, MemoryMetadataStore, MetadataStore, StoreError};
pub use topic_config::{
    ConfigError, ConfigKind, InvalidValue, TOPIC_CONFIGS, TopicConfigDef, Validator,
    apply_config_ops, effective_value, topic_config_def, validate_topic_configs,
};
