//! Requests on the wire: the client encodes the [`ControlPlane`](crate::ControlPlane)
//! arguments into protobuf messages (which cannot fail), the server decodes them back,
//! refusing what does not fit the Rust types with an [`InvalidMessage`] naming the field.
//!
//! Decoding checks the form of a request, not its sense: a negative broker id where a
//! broker names itself, a bad or nil UUID, a bad listener, an unknown enum value or a
//! missing required field is malformed. A value that is well-formed but wrong for the
//! cluster (an unknown broker in a replica assignment, a negative partition count, an
//! invalid topic name) goes to the controller, whose answer carries Kafka's own error
//! code for it, as a Kafka client expects.

use std::collections::BTreeSet;

use super::invalid::{self, InvalidMessage, broker_ids, own_broker_id, raw_broker_ids};
use super::pb;
use crate::controller::CreateTopic;
use crate::ids::BrokerId;
use crate::plane::{
    AlterPartition, ConfigChange, ElectionType, Heartbeat, PartitionRef, ReassignmentChange,
    TopicRef,
};
use crate::registry::{BrokerEpoch, Listener, RegisterBroker};
use crate::topic_config::ConfigOp;

/// CreatePartitions' arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CreatePartitionsArgs {
    pub(crate) topic: String,
    pub(crate) total_count: i32,
    pub(crate) assignments: Option<Vec<Vec<BrokerId>>>,
    pub(crate) validate_only: bool,
}

/// A broker naming itself and its epoch (ControlledShutdown, AllocateProducerIds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BrokerAndEpoch {
    pub(crate) broker: BrokerId,
    pub(crate) epoch: BrokerEpoch,
}

// ---- RegisterBroker -------------------------------------------------------

impl From<&RegisterBroker> for pb::RegisterBrokerRequest {
    fn from(request: &RegisterBroker) -> Self {
        pb::RegisterBrokerRequest {
            broker_id: request.id.0,
            incarnation_id: request.incarnation.to_string(),
            cluster_id: request.cluster_id.clone(),
            listeners: request.listeners.iter().map(pb::Listener::from).collect(),
            rack: request.rack.clone(),
        }
    }
}

pub(crate) fn register_broker(
    request: pb::RegisterBrokerRequest,
) -> Result<RegisterBroker, InvalidMessage> {
    let broker = own_broker_id("broker_id", request.broker_id)?;
    let incarnation = invalid::uuid("incarnation_id", &request.incarnation_id)?;
    if request.listeners.is_empty() {
        return Err(InvalidMessage::NoListeners { broker });
    }
    let mut names = BTreeSet::new();
    let mut listeners = Vec::with_capacity(request.listeners.len());
    for (i, listener) in request.listeners.into_iter().enumerate() {
        if !names.insert(listener.name.clone()) {
            return Err(InvalidMessage::DuplicateListener {
                broker,
                listener: listener.name,
            });
        }
        listeners.push(listener_at(broker, i, listener)?);
    }
    if request.rack.as_deref() == Some("") {
        return Err(InvalidMessage::EmptyRack { broker });
    }
    Ok(RegisterBroker {
        id: broker,
        incarnation,
        cluster_id: request.cluster_id,
        listeners,
        rack: request.rack,
    })
}

fn listener_at(
    broker: BrokerId,
    i: usize,
    listener: pb::Listener,
) -> Result<Listener, InvalidMessage> {
    if listener.name.is_empty() {
        return Err(InvalidMessage::EmptyListenerName { broker });
    }
    if listener.host.is_empty() {
        return Err(InvalidMessage::EmptyHost {
            broker,
            listener: listener.name,
        });
    }
    let port = u16::try_from(listener.port)
        .ok()
        .filter(|&port| port != 0)
        .ok_or_else(|| InvalidMessage::PortOutOfRange {
            field: format!("listeners[{i}].port"),
            port: listener.port,
            range: "1..=65535",
        })?;
    Ok(Listener::new(listener.name, listener.host, port))
}

// ---- Heartbeats, controlled shutdown, producer ids --------------------------

impl From<&Heartbeat> for pb::BrokerHeartbeatRequest {
    fn from(heartbeat: &Heartbeat) -> Self {
        pb::BrokerHeartbeatRequest {
            broker_id: heartbeat.broker.0,
            broker_epoch: heartbeat.broker_epoch.0,
        }
    }
}

pub(crate) fn heartbeat(request: &pb::BrokerHeartbeatRequest) -> Result<Heartbeat, InvalidMessage> {
    Ok(Heartbeat {
        broker: own_broker_id("broker_id", request.broker_id)?,
        broker_epoch: BrokerEpoch(request.broker_epoch),
    })
}

pub(crate) fn controlled_shutdown(
    request: &pb::ControlledShutdownRequest,
) -> Result<BrokerAndEpoch, InvalidMessage> {
    Ok(BrokerAndEpoch {
        broker: own_broker_id("broker_id", request.broker_id)?,
        epoch: BrokerEpoch(request.broker_epoch),
    })
}

pub(crate) fn allocate_producer_ids(
    request: &pb::AllocateProducerIdsRequest,
) -> Result<(BrokerAndEpoch, u32), InvalidMessage> {
    let broker = BrokerAndEpoch {
        broker: own_broker_id("broker_id", request.broker_id)?,
        epoch: BrokerEpoch(request.broker_epoch),
    };
    Ok((broker, request.count))
}

// ---- Topics -----------------------------------------------------------------

fn encode_assignments(assignments: Option<&Vec<Vec<BrokerId>>>) -> Option<pb::ReplicaAssignment> {
    assignments.map(|partitions| pb::ReplicaAssignment {
        partitions: partitions
            .iter()
            .map(|replicas| pb::ReplicaList {
                replicas: raw_broker_ids(replicas),
            })
            .collect(),
    })
}

fn decode_assignments(assignments: Option<pb::ReplicaAssignment>) -> Option<Vec<Vec<BrokerId>>> {
    assignments.map(|assignment| {
        assignment
            .partitions
            .iter()
            .map(|list| broker_ids(&list.replicas))
            .collect()
    })
}

pub(crate) fn encode_create_topic(
    request: &CreateTopic,
    validate_only: bool,
) -> pb::CreateTopicRequest {
    pb::CreateTopicRequest {
        name: request.name.clone(),
        num_partitions: request.num_partitions,
        replication_factor: request.replication_factor.map(i32::from),
        assignments: encode_assignments(request.assignments.as_ref()),
        configs: request.configs.clone(),
        validate_only,
    }
}

pub(crate) fn create_topic(
    request: pb::CreateTopicRequest,
) -> Result<(CreateTopic, bool), InvalidMessage> {
    let replication_factor = request
        .replication_factor
        .map(|value| {
            i16::try_from(value).map_err(|_| InvalidMessage::ReplicationFactorOutOfRange { value })
        })
        .transpose()?;
    let topic = CreateTopic {
        name: request.name,
        num_partitions: request.num_partitions,
        replication_factor,
        assignments: decode_assignments(request.assignments),
        configs: request.configs,
    };
    Ok((topic, request.validate_only))
}

impl From<&TopicRef> for pb::DeleteTopicRequest {
    fn from(topic: &TopicRef) -> Self {
        let topic = match topic {
            TopicRef::Name(name) => pb::delete_topic_request::Topic::Name(name.clone()),
            TopicRef::Id(id) => pb::delete_topic_request::Topic::Id(id.0.to_string()),
        };
        pb::DeleteTopicRequest { topic: Some(topic) }
    }
}

pub(crate) fn delete_topic(request: pb::DeleteTopicRequest) -> Result<TopicRef, InvalidMessage> {
    match invalid::required("topic", request.topic)? {
        pb::delete_topic_request::Topic::Name(name) => Ok(TopicRef::Name(name)),
        pb::delete_topic_request::Topic::Id(id) => invalid::topic_id("id", &id).map(TopicRef::Id),
    }
}

pub(crate) fn encode_create_partitions(args: &CreatePartitionsArgs) -> pb::CreatePartitionsRequest {
    pb::CreatePartitionsRequest {
        topic: args.topic.clone(),
        total_count: args.total_count,
        assignments: encode_assignments(args.assignments.as_ref()),
        validate_only: args.validate_only,
    }
}

pub(crate) fn create_partitions(request: pb::CreatePartitionsRequest) -> CreatePartitionsArgs {
    CreatePartitionsArgs {
        topic: request.topic,
        total_count: request.total_count,
        assignments: decode_assignments(request.assignments),
        validate_only: request.validate_only,
    }
}

// ---- Topic configs ------------------------------------------------------------

impl From<&ConfigOp> for pb::ConfigOp {
    fn from(op: &ConfigOp) -> Self {
        let (kind, key, value) = match op {
            ConfigOp::Set(key, value) => (pb::ConfigOpType::Set, key, Some(value)),
            ConfigOp::Delete(key) => (pb::ConfigOpType::Delete, key, None),
            ConfigOp::Append(key, value) => (pb::ConfigOpType::Append, key, Some(value)),
            ConfigOp::Subtract(key, value) => (pb::ConfigOpType::Subtract, key, Some(value)),
        };
        pb::ConfigOp {
            op: kind.into(),
            key: key.clone(),
            value: value.cloned(),
        }
    }
}

fn config_op(i: usize, op: pb::ConfigOp) -> Result<ConfigOp, InvalidMessage> {
    let value = |name: &'static str| {
        op.value
            .clone()
            .ok_or_else(|| InvalidMessage::MissingConfigValue {
                field: format!("ops[{i}].value"),
                op: name,
                key: op.key.clone(),
            })
    };
    let key = op.key.clone();
    match pb::ConfigOpType::try_from(op.op) {
        Ok(pb::ConfigOpType::Set) => Ok(ConfigOp::Set(key, value("SET")?)),
        Ok(pb::ConfigOpType::Append) => Ok(ConfigOp::Append(key, value("APPEND")?)),
        Ok(pb::ConfigOpType::Subtract) => Ok(ConfigOp::Subtract(key, value("SUBTRACT")?)),
        Ok(pb::ConfigOpType::Delete) => Ok(ConfigOp::Delete(key)),
        Ok(pb::ConfigOpType::Unspecified) | Err(_) => Err(InvalidMessage::UnknownEnumValue {
            field: format!("ops[{i}].op"),
            value: op.op,
            what: "config op type",
        }),
    }
}

pub(crate) fn encode_alter_topic_configs(
    topic: &str,
    change: &ConfigChange,
    validate_only: bool,
) -> pb::AlterTopicConfigsRequest {
    let change = match change {
        ConfigChange::Incremental(ops) => {
            pb::alter_topic_configs_request::Change::Incremental(pb::IncrementalConfigChange {
                ops: ops.iter().map(pb::ConfigOp::from).collect(),
            })
        }
        ConfigChange::Replace(configs) => {
            pb::alter_topic_configs_request::Change::Replace(pb::ReplaceConfigs {
                configs: configs.clone(),
            })
        }
    };
    pb::AlterTopicConfigsRequest {
        topic: topic.to_owned(),
        change: Some(change),
        validate_only,
    }
}

pub(crate) fn alter_topic_configs(
    request: pb::AlterTopicConfigsRequest,
) -> Result<(String, ConfigChange, bool), InvalidMessage> {
    let change = match invalid::required("change", request.change)? {
        pb::alter_topic_configs_request::Change::Incremental(change) => ConfigChange::Incremental(
            change
                .ops
                .into_iter()
                .enumerate()
                .map(|(i, op)| config_op(i, op))
                .collect::<Result<_, _>>()
                .map_err(|err| err.at("incremental"))?,
        ),
        pb::alter_topic_configs_request::Change::Replace(replace) => {
            ConfigChange::Replace(replace.configs)
        }
    };
    Ok((request.topic, change, request.validate_only))
}

// ---- AlterPartition -----------------------------------------------------------

impl From<&AlterPartition> for pb::AlterPartitionRequest {
    fn from(request: &AlterPartition) -> Self {
        pb::AlterPartitionRequest {
            broker_id: request.broker.0,
            broker_epoch: request.broker_epoch.0,
            topic_id: request.topic_id.0.to_string(),
            partition: request.partition,
            leader_epoch: request.leader_epoch,
            partition_epoch: request.partition_epoch,
            new_isr: raw_broker_ids(&request.new_isr),
        }
    }
}

pub(crate) fn alter_partition(
    request: &pb::AlterPartitionRequest,
) -> Result<AlterPartition, InvalidMessage> {
    let new_isr = request
        .new_isr
        .iter()
        .enumerate()
        .map(|(i, &id)| own_broker_id(&format!("new_isr[{i}]"), id))
        .collect::<Result<_, _>>()?;
    Ok(AlterPartition {
        broker: own_broker_id("broker_id", request.broker_id)?,
        broker_epoch: BrokerEpoch(request.broker_epoch),
        topic_id: invalid::topic_id("topic_id", &request.topic_id)?,
        partition: request.partition,
        leader_epoch: request.leader_epoch,
        partition_epoch: request.partition_epoch,
        new_isr,
    })
}

// ---- Elections and reassignments ----------------------------------------------

impl From<&PartitionRef> for pb::PartitionRef {
    fn from(partition: &PartitionRef) -> Self {
        pb::PartitionRef {
            topic: partition.topic.clone(),
            partition: partition.partition,
        }
    }
}

impl From<pb::PartitionRef> for PartitionRef {
    fn from(partition: pb::PartitionRef) -> Self {
        PartitionRef {
            topic: partition.topic,
            partition: partition.partition,
        }
    }
}

pub(crate) fn encode_partition_list(
    partitions: Option<&Vec<PartitionRef>>,
) -> Option<pb::PartitionList> {
    partitions.map(|partitions| pb::PartitionList {
        partitions: partitions.iter().map(pb::PartitionRef::from).collect(),
    })
}

fn decode_partition_list(partitions: Option<pb::PartitionList>) -> Option<Vec<PartitionRef>> {
    partitions.map(|list| {
        list.partitions
            .into_iter()
            .map(PartitionRef::from)
            .collect()
    })
}

pub(crate) fn encode_elect_leaders(
    election: ElectionType,
    partitions: Option<&Vec<PartitionRef>>,
) -> pb::ElectLeadersRequest {
    let election_type = match election {
        ElectionType::Preferred => pb::ElectionType::Preferred,
        ElectionType::Unclean => pb::ElectionType::Unclean,
    };
    pb::ElectLeadersRequest {
        election_type: election_type.into(),
        partitions: encode_partition_list(partitions),
    }
}

pub(crate) fn elect_leaders(
    request: pb::ElectLeadersRequest,
) -> Result<(ElectionType, Option<Vec<PartitionRef>>), InvalidMessage> {
    let election = match pb::ElectionType::try_from(request.election_type) {
        Ok(pb::ElectionType::Preferred) => ElectionType::Preferred,
        Ok(pb::ElectionType::Unclean) => ElectionType::Unclean,
        Ok(pb::ElectionType::Unspecified) | Err(_) => {
            return Err(InvalidMessage::UnknownEnumValue {
                field: "election_type".into(),
                value: request.election_type,
                what: "election type",
            });
        }
    };
    Ok((election, decode_partition_list(request.partitions)))
}

impl From<&ReassignmentChange> for pb::ReassignmentChange {
    fn from(change: &ReassignmentChange) -> Self {
        pb::ReassignmentChange {
            partition: Some(pb::PartitionRef::from(&change.partition)),
            target: change.target.as_ref().map(|replicas| pb::ReplicaList {
                replicas: raw_broker_ids(replicas),
            }),
        }
    }
}

pub(crate) fn alter_reassignments(
    request: pb::AlterReassignmentsRequest,
) -> Result<Vec<ReassignmentChange>, InvalidMessage> {
    request
        .changes
        .into_iter()
        .enumerate()
        .map(|(i, change)| {
            let partition =
                invalid::required(&format!("changes[{i}].partition"), change.partition)?;
            Ok(ReassignmentChange {
                partition: PartitionRef::from(partition),
                target: change.target.map(|list| broker_ids(&list.replicas)),
            })
        })
        .collect()
}

pub(crate) fn list_reassignments(
    request: pb::ListReassignmentsRequest,
) -> Option<Vec<PartitionRef>> {
    decode_partition_list(request.partitions)
}
