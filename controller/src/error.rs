//! [`ControllerError`]: why the controller refused an operation, and the one place
//! where refusals map to Kafka error codes ([`ControllerError::kafka_error_code`]).
//! Messages are Kafka's where Kafka has one, so brokers can send them to clients as
//! `error_message`; the others name the input that was wrong.

use crate::config::ControllerConfigError;
use crate::ids::{InvalidTopicName, TopicId};
use crate::partitions::PartitionError;
use crate::placement::PlacementError;
use crate::reassignment::ReassignmentError;
use crate::registry::RegistryError;
use crate::store::StoreError;
use crate::topic_config::ConfigError;

/// Why an operation was refused. Each variant maps to one Kafka error code through
/// [`ControllerError::kafka_error_code`].
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("Topic '{name}' already exists.")]
    TopicAlreadyExists { name: String },
    #[error(transparent)]
    InvalidTopic {
        #[from]
        source: InvalidTopicName,
    },
    #[error("Topic '{name}' collides with existing topic: {existing}")]
    TopicCollision { name: String, existing: String },
    #[error("Topic '{name}' does not exist.")]
    UnknownTopic { name: String },
    #[error("Topic id {id} does not exist.")]
    UnknownTopicId { id: TopicId },
    #[error("Partition {partition} of topic '{topic}' does not exist.")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("{source}")]
    InvalidPartitions {
        name: String,
        #[source]
        source: PlacementError,
    },
    #[error("{}", not_increased_message(name, *current, *requested))]
    PartitionsNotIncreased {
        name: String,
        current: i32,
        requested: i32,
    },
    #[error("{}", replication_factor_message(source))]
    InvalidReplicationFactor {
        name: String,
        #[source]
        source: PlacementError,
    },
    #[error("{source}")]
    InvalidReplicaAssignment {
        name: String,
        #[source]
        source: PlacementError,
    },
    #[error(
        "All brokers specified in the manual partition assignment for partition {partition} are fenced or in controlled shutdown."
    )]
    AssignmentToUnavailableBrokers { name: String, partition: i32 },
    #[error(
        "Attempted to add {additional} additional partition(s), but only {given} assignment(s) were specified."
    )]
    AssignmentCountMismatch {
        name: String,
        additional: i32,
        given: usize,
    },
    #[error("A manual partition assignment was specified, but {field} was not set to -1.")]
    ManualAssignmentWithCount { name: String, field: &'static str },
    #[error("{source}")]
    InvalidConfig {
        name: String,
        #[source]
        source: ConfigError,
    },
    /// A broker's registration, heartbeat or epoch was refused.
    #[error(transparent)]
    Broker {
        #[from]
        source: RegistryError,
    },
    /// A partition change (AlterPartition, an election) was refused.
    #[error("{topic}-{partition}: {source}")]
    Partition {
        topic: String,
        partition: i32,
        #[source]
        source: PartitionError,
    },
    #[error("{topic}-{partition}: {source}")]
    Reassignment {
        topic: String,
        partition: i32,
        #[source]
        source: ReassignmentError,
    },
    #[error("producer ids are exhausted: {count} more after {next} would pass i64::MAX")]
    ProducerIdsExhausted { next: i64, count: u32 },
    #[error(transparent)]
    Config(#[from] ControllerConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An error a remote controller returned: its Kafka error code and message.
    /// A policy of whoever hosts the controller refuses the change, as Kafka's
    /// `CreateTopicPolicy` and `AlterConfigPolicy` do (the Kubernetes operator refuses
    /// Kafka admin changes to topics a Topic resource owns).
    #[error("{message}")]
    PolicyViolation { message: String },
    #[error("{message}")]
    Remote { code: i16, message: String },
}

const UNKNOWN_SERVER_ERROR: i16 = -1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_CONFIG: i16 = 40;
const NOT_CONTROLLER: i16 = 41;
const INVALID_REQUEST: i16 = 42;
const POLICY_VIOLATION: i16 = 44;
const FENCED_LEADER_EPOCH: i16 = 74;
const STALE_BROKER_EPOCH: i16 = 77;
const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
const ELECTION_NOT_NEEDED: i16 = 84;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
const INVALID_UPDATE_VERSION: i16 = 95;
const UNKNOWN_TOPIC_ID: i16 = 100;
const BROKER_ID_NOT_REGISTERED: i16 = 102;
const INCONSISTENT_CLUSTER_ID: i16 = 104;
const INELIGIBLE_REPLICA: i16 = 107;

impl ControllerError {
    /// The Kafka protocol error code for this error. The only place the mapping lives.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            ControllerError::UnknownTopic { .. } | ControllerError::UnknownPartition { .. } => {
                UNKNOWN_TOPIC_OR_PARTITION
            }
            ControllerError::InvalidTopic { .. } | ControllerError::TopicCollision { .. } => {
                INVALID_TOPIC_EXCEPTION
            }
            ControllerError::TopicAlreadyExists { .. } => TOPIC_ALREADY_EXISTS,
            ControllerError::InvalidPartitions { .. }
            | ControllerError::PartitionsNotIncreased { .. } => INVALID_PARTITIONS,
            ControllerError::InvalidReplicationFactor { .. } => INVALID_REPLICATION_FACTOR,
            ControllerError::InvalidReplicaAssignment { .. }
            | ControllerError::AssignmentToUnavailableBrokers { .. }
            | ControllerError::AssignmentCountMismatch { .. } => INVALID_REPLICA_ASSIGNMENT,
            ControllerError::InvalidConfig {
                source: ConfigError::DuplicateKey { .. },
                ..
            }
            | ControllerError::ManualAssignmentWithCount { .. } => INVALID_REQUEST,
            ControllerError::InvalidConfig { .. } => INVALID_CONFIG,
            ControllerError::UnknownTopicId { .. } => UNKNOWN_TOPIC_ID,
            ControllerError::Broker { source } => registry_code(source),
            ControllerError::Partition { source, .. } => partition_code(source),
            ControllerError::Reassignment { source, .. } => reassignment_code(source),
            // Kafka answers an exhausted id space with UNKNOWN_SERVER_ERROR too.
            ControllerError::ProducerIdsExhausted { .. }
            | ControllerError::Config(_)
            | ControllerError::Store(_) => UNKNOWN_SERVER_ERROR,
            ControllerError::PolicyViolation { .. } => POLICY_VIOLATION,
            ControllerError::Remote { code, .. } => *code,
        }
    }

    pub(crate) fn from_placement(name: &str, source: PlacementError) -> ControllerError {
        let name = name.to_owned();
        match source {
            PlacementError::InvalidPartitions { .. }
            | PlacementError::PartitionIndexOutOfRange { .. } => {
                ControllerError::InvalidPartitions { name, source }
            }
            PlacementError::NotEnoughBrokers { .. }
            | PlacementError::InvalidReplicationFactor { .. } => {
                ControllerError::InvalidReplicationFactor { name, source }
            }
            PlacementError::EmptyReplicaList { .. }
            | PlacementError::DuplicateReplica { .. }
            | PlacementError::UnknownBroker { .. }
            | PlacementError::InconsistentReplicationFactor { .. } => {
                ControllerError::InvalidReplicaAssignment { name, source }
            }
        }
    }

    pub(crate) fn invalid_config(name: &str, source: ConfigError) -> ControllerError {
        ControllerError::InvalidConfig {
            name: name.to_owned(),
            source,
        }
    }
}

fn registry_code(error: &RegistryError) -> i16 {
    match error {
        RegistryError::ClusterIdMismatch { .. } => INCONSISTENT_CLUSTER_ID,
        RegistryError::UnknownBroker { .. } => BROKER_ID_NOT_REGISTERED,
        RegistryError::StaleBrokerEpoch { .. } => STALE_BROKER_EPOCH,
        RegistryError::NoListeners { .. } | RegistryError::DuplicateListener { .. } => {
            INVALID_REQUEST
        }
    }
}

/// Kafka's codes for AlterPartition (`validateAlterPartitionData`) and ElectLeaders.
fn partition_code(error: &PartitionError) -> i16 {
    match error {
        // A newer epoch than the controller's means this controller is behind: Kafka
        // tells the leader to find the active controller.
        PartitionError::LeaderEpochAhead { .. } | PartitionError::PartitionEpochAhead { .. } => {
            NOT_CONTROLLER
        }
        PartitionError::FencedLeaderEpoch { .. } => FENCED_LEADER_EPOCH,
        PartitionError::NotLeader { .. }
        | PartitionError::NotAReplica { .. }
        | PartitionError::DuplicateIsrMember { .. }
        | PartitionError::LeaderNotInIsr { .. } => INVALID_REQUEST,
        PartitionError::StalePartitionEpoch { .. } => INVALID_UPDATE_VERSION,
        PartitionError::IneligibleReplica { .. } => INELIGIBLE_REPLICA,
        PartitionError::ElectionNotNeeded => ELECTION_NOT_NEEDED,
        PartitionError::PreferredLeaderNotAvailable { .. } => PREFERRED_LEADER_NOT_AVAILABLE,
        PartitionError::EligibleLeadersNotAvailable => ELIGIBLE_LEADERS_NOT_AVAILABLE,
    }
}

fn reassignment_code(error: &ReassignmentError) -> i16 {
    match error {
        ReassignmentError::NoReassignmentInProgress => NO_REASSIGNMENT_IN_PROGRESS,
        ReassignmentError::InvalidTarget { .. } | ReassignmentError::UncleanRevert => {
            INVALID_REPLICA_ASSIGNMENT
        }
    }
}

fn not_increased_message(name: &str, current: i32, requested: i32) -> String {
    if current == requested {
        format!("Topic already has {current} partition(s).")
    } else {
        format!(
            "The topic {name} currently has {current} partition(s); {requested} would not be an increase."
        )
    }
}

fn replication_factor_message(source: &PlacementError) -> String {
    match source {
        PlacementError::NotEnoughBrokers {
            replication_factor, ..
        } => {
            format!("Unable to replicate the partition {replication_factor} time(s): {source}")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::BrokerId;
    use crate::partitions::ReplicaStatus;
    use crate::registry::BrokerEpoch;

    fn code(error: ControllerError) -> i16 {
        error.kafka_error_code()
    }

    fn partition(source: PartitionError) -> ControllerError {
        ControllerError::Partition {
            topic: "t".into(),
            partition: 0,
            source,
        }
    }

    #[test]
    fn a_policy_violation_is_kafkas_with_the_policys_message() {
        let error = ControllerError::PolicyViolation {
            message: "managed elsewhere".into(),
        };
        assert_eq!(error.kafka_error_code(), 44);
        assert_eq!(error.to_string(), "managed elsewhere");
    }

    #[test]
    fn broker_errors_carry_kafkas_codes() {
        let broker = BrokerId(1);
        let cases = [
            (
                RegistryError::ClusterIdMismatch {
                    broker,
                    requested: "a".into(),
                    expected: "b".into(),
                },
                104,
            ),
            (RegistryError::UnknownBroker { broker }, 102),
            (
                RegistryError::StaleBrokerEpoch {
                    broker,
                    requested: BrokerEpoch(1),
                    current: BrokerEpoch(2),
                },
                77,
            ),
            (RegistryError::NoListeners { broker }, 42),
            (
                RegistryError::DuplicateListener {
                    broker,
                    listener: "INTERNAL".into(),
                },
                42,
            ),
        ];
        for (source, expected) in cases {
            assert_eq!(code(source.into()), expected);
        }
    }

    #[test]
    fn partition_errors_carry_kafkas_codes() {
        let broker = BrokerId(1);
        let (requested, current) = (1, 2);
        let cases = [
            (PartitionError::LeaderEpochAhead { requested, current }, 41),
            (
                PartitionError::PartitionEpochAhead { requested, current },
                41,
            ),
            (PartitionError::FencedLeaderEpoch { requested, current }, 74),
            (
                PartitionError::NotLeader {
                    broker,
                    leader: None,
                },
                42,
            ),
            (
                PartitionError::StalePartitionEpoch { requested, current },
                95,
            ),
            (PartitionError::NotAReplica { broker }, 42),
            (PartitionError::DuplicateIsrMember { broker }, 42),
            (
                PartitionError::LeaderNotInIsr {
                    leader: broker,
                    isr: vec![],
                },
                42,
            ),
            (
                PartitionError::IneligibleReplica {
                    broker,
                    status: ReplicaStatus::Fenced,
                },
                107,
            ),
            (PartitionError::ElectionNotNeeded, 84),
            (
                PartitionError::PreferredLeaderNotAvailable { preferred: broker },
                80,
            ),
            (PartitionError::EligibleLeadersNotAvailable, 83),
        ];
        for (source, expected) in cases {
            let shown = source.to_string();
            assert_eq!(code(partition(source)), expected, "{shown}");
        }
        assert_eq!(
            partition(PartitionError::ElectionNotNeeded).to_string(),
            "t-0: Leader election not needed for topic partition."
        );
    }

    #[test]
    fn reassignment_errors_carry_kafkas_codes() {
        let reassignment = |source| ControllerError::Reassignment {
            topic: "t".into(),
            partition: 0,
            source,
        };
        assert_eq!(
            code(reassignment(ReassignmentError::NoReassignmentInProgress)),
            85
        );
        assert_eq!(code(reassignment(ReassignmentError::UncleanRevert)), 39);
        let invalid = ReassignmentError::InvalidTarget {
            source: PlacementError::EmptyReplicaList { partition: 0 },
        };
        assert_eq!(code(reassignment(invalid)), 39);
        let unknown = ControllerError::UnknownPartition {
            topic: "t".into(),
            partition: 9,
        };
        assert_eq!(
            unknown.to_string(),
            "Partition 9 of topic 't' does not exist."
        );
        assert_eq!(code(unknown), 3);
    }
}
