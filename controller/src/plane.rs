//! [`ControlPlane`]: everything a broker asks of the controller, wherever the controller
//! runs. Two implementations:
//! - [`crate::local::LocalControlPlane`]: the controller in this process (roles
//!   `broker,controller`, and the process that serves the gRPC control plane);
//! - [`crate::grpc::RemoteControlPlane`]: a controller across gRPC.
//!
//! The gRPC server ([`crate::grpc::ControlPlaneService`]) answers RPCs by calling a
//! `ControlPlane` (the local one), so the two sides share one set of request and reply
//! types, defined here.
//!
//! Errors are [`ControllerError`]s. Errors from a remote controller arrive as
//! [`ControllerError::Remote`], carrying the Kafka error code and message the controller
//! produced, so callers decide on [`ControllerError::kafka_error_code`], never on the variant.
//!
//! Mutations return the metadata version that committed them ([`Committed`]), so a
//! broker whose image arrives through the watch can wait until its image has caught up
//! before it answers the client (as a KRaft broker does after a forwarded request).

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use tokio::sync::watch;

use crate::controller::{ControllerError, CreateTopic};
use crate::ids::{BrokerId, TopicId};
use crate::metadata::{ClusterMetadata, PartitionState, TopicMetadata};
use crate::registry::{BrokerEpoch, RegisterBroker};
use crate::topic_config::ConfigOp;

/// A value and the metadata version whose commit produced it. A `validate_only`
/// request, or one that changed nothing, carries the current version.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed<T> {
    pub value: T,
    pub version: u64,
}

/// What a successful registration returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    pub broker_epoch: BrokerEpoch,
    /// `broker.session.timeout.ms`; heartbeat well within it (Kafka's brokers use
    /// `broker.heartbeat.interval.ms`, 2 s by default).
    pub session_timeout_ms: u64,
}

/// A broker's heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    pub broker: BrokerId,
    pub broker_epoch: BrokerEpoch,
}

/// The controller's answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatReply {
    /// Whether the broker is (still) fenced after this heartbeat. False after a valid
    /// heartbeat unless the broker is in controlled shutdown.
    pub fenced: bool,
}

/// One step of a controlled shutdown (Kafka's `ControlledShutdown`, KRaft's
/// heartbeat with `wantShutDown`): the controller marks the broker as shutting down,
/// moves leadership of every partition it leads to another ISR member and removes it
/// from every ISR where another member remains. The broker repeats the call until
/// `remaining_leaders` is 0 (or gives up after its timeout and stops anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlledShutdownReply {
    /// Partitions the broker still leads because no other ISR member could take over.
    pub remaining_leaders: u32,
}

/// An ISR change proposed by a partition's leader (Kafka's AlterPartition, KIP-497).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartition {
    pub broker: BrokerId,
    pub broker_epoch: BrokerEpoch,
    pub topic_id: TopicId,
    pub partition: i32,
    /// The leader epoch the leader holds; must equal the controller's.
    pub leader_epoch: i32,
    /// The partition epoch the proposal is based on; must equal the controller's.
    pub partition_epoch: i32,
    /// The proposed ISR; must contain the leader and only assigned replicas.
    pub new_isr: Vec<BrokerId>,
}

/// How ElectLeaders chooses (Kafka's `ElectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// Make the first replica leader if it is in the ISR and live.
    Preferred,
    /// Elect from the live ISR, or else from any live replica (data may be lost).
    Unclean,
}

/// A partition named by topic and index, as admin requests name them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionRef {
    pub topic: String,
    pub partition: i32,
}

/// The outcome of ElectLeaders for one partition. Kafka's codes: ELECTION_NOT_NEEDED
/// when the wanted leader already leads, PREFERRED_LEADER_NOT_AVAILABLE /
/// ELIGIBLE_LEADERS_NOT_AVAILABLE when nobody eligible is live,
/// UNKNOWN_TOPIC_OR_PARTITION.
#[derive(Debug)]
pub struct ElectionResult {
    pub partition: PartitionRef,
    pub result: Result<(), ControllerError>,
}

/// One partition's entry in AlterPartitionReassignments: `Some(replicas)` starts
/// (or replaces) a reassignment, `None` cancels the ongoing one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassignmentChange {
    pub partition: PartitionRef,
    pub target: Option<Vec<BrokerId>>,
}

/// An ongoing reassignment (ListPartitionReassignments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub partition: PartitionRef,
    /// The union of old and target replicas while the reassignment runs.
    pub replicas: Vec<BrokerId>,
    pub adding: Vec<BrokerId>,
    pub removing: Vec<BrokerId>,
}

/// How a topic's config overrides change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// IncrementalAlterConfigs: Set, Delete, Append, Subtract.
    Incremental(Vec<ConfigOp>),
    /// Legacy AlterConfigs: these overrides replace all others.
    Replace(BTreeMap<String, String>),
}

/// Which topic a DeleteTopics entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicRef {
    Name(String),
    Id(TopicId),
}

/// What brokers ask of the controller. Every method is one request; none holds state
/// between calls except the controller's own.
#[async_trait::async_trait]
pub trait ControlPlane: Send + Sync + 'static {
    /// The committed metadata image, following every change, starting at the current
    /// one. For a remote controller the images arrive through the metadata watch and
    /// lag the controller's; the receiver keeps working across reconnects.
    async fn watch_metadata(
        &self,
    ) -> Result<watch::Receiver<Arc<ClusterMetadata>>, ControllerError>;

    /// Registers a broker incarnation (see [`crate::registry`] for the rules) and
    /// returns its epoch. The broker stays fenced until its first heartbeat.
    async fn register_broker(&self, request: RegisterBroker)
    -> Result<Registered, ControllerError>;

    async fn broker_heartbeat(&self, request: Heartbeat)
    -> Result<HeartbeatReply, ControllerError>;

    /// One step of a controlled shutdown; see [`ControlledShutdownReply`].
    async fn controlled_shutdown(
        &self,
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
    ) -> Result<ControlledShutdownReply, ControllerError>;

    async fn create_topic(
        &self,
        request: CreateTopic,
        validate_only: bool,
    ) -> Result<Committed<TopicMetadata>, ControllerError>;

    /// Returns the deleted topic as it was.
    async fn delete_topic(
        &self,
        topic: TopicRef,
    ) -> Result<Committed<TopicMetadata>, ControllerError>;

    async fn create_partitions(
        &self,
        topic: &str,
        total_count: i32,
        assignments: Option<Vec<Vec<BrokerId>>>,
        validate_only: bool,
    ) -> Result<Committed<TopicMetadata>, ControllerError>;

    async fn alter_topic_configs(
        &self,
        topic: &str,
        change: ConfigChange,
        validate_only: bool,
    ) -> Result<Committed<TopicMetadata>, ControllerError>;

    /// A block of `count` producer ids for the broker's InitProducerId.
    async fn allocate_producer_ids(
        &self,
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
        count: u32,
    ) -> Result<Range<i64>, ControllerError>;

    /// Commits an ISR change and returns the partition as committed (with its new
    /// partition epoch).
    async fn alter_partition(
        &self,
        request: AlterPartition,
    ) -> Result<Committed<PartitionState>, ControllerError>;

    /// `partitions: None` means every partition (Kafka's null topic list).
    async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<PartitionRef>>,
    ) -> Result<Vec<ElectionResult>, ControllerError>;

    async fn alter_reassignments(
        &self,
        changes: Vec<ReassignmentChange>,
    ) -> Result<Vec<(PartitionRef, Result<(), ControllerError>)>, ControllerError>;

    /// `partitions: None` lists every ongoing reassignment.
    async fn list_reassignments(
        &self,
        partitions: Option<Vec<PartitionRef>>,
    ) -> Result<Vec<OngoingReassignment>, ControllerError>;
}
