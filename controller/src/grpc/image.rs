//! The metadata image on the wire: conversions between [`ClusterMetadata`] (and its
//! parts, and [`MetadataDelta`]) and their protobuf messages.
//!
//! Encoding cannot fail. Decoding checks what the Rust types demand (UUIDs, valid
//! topic names, ports within `u16`, each topic and broker once) and nothing more:
//! the controller keeps the image's other invariants, and a watcher trusts it for them.

use std::collections::BTreeMap;

use super::delta::{DeletedTopic, MetadataDelta};
use super::invalid::{self, InvalidMessage, broker_ids, raw_broker_ids};
use super::pb;
use crate::ids::{BrokerId, TopicName};
use crate::metadata::{
    BrokerInfo, ClusterMetadata, LEGACY_LISTENER_NAME, Listener, PartitionState, TopicMetadata,
};
use crate::registry::BrokerEpoch;

impl From<&PartitionState> for pb::PartitionState {
    fn from(state: &PartitionState) -> Self {
        pb::PartitionState {
            partition: state.partition,
            replicas: raw_broker_ids(&state.replicas),
            isr: raw_broker_ids(&state.isr),
            leader: state.leader.map(|leader| leader.0),
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            adding_replicas: raw_broker_ids(&state.adding_replicas),
            removing_replicas: raw_broker_ids(&state.removing_replicas),
        }
    }
}

impl From<&pb::PartitionState> for PartitionState {
    fn from(state: &pb::PartitionState) -> Self {
        PartitionState {
            partition: state.partition,
            replicas: broker_ids(&state.replicas),
            isr: broker_ids(&state.isr),
            leader: state.leader.map(BrokerId),
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            adding_replicas: broker_ids(&state.adding_replicas),
            removing_replicas: broker_ids(&state.removing_replicas),
        }
    }
}

impl From<&TopicMetadata> for pb::Topic {
    fn from(topic: &TopicMetadata) -> Self {
        pb::Topic {
            id: topic.id.0.to_string(),
            name: topic.name.as_str().to_owned(),
            configs: topic.configs.clone(),
            partitions: topic
                .partitions
                .iter()
                .map(pb::PartitionState::from)
                .collect(),
        }
    }
}

impl TryFrom<pb::Topic> for TopicMetadata {
    type Error = InvalidMessage;

    fn try_from(topic: pb::Topic) -> Result<Self, Self::Error> {
        let name = TopicName::new(&topic.name).map_err(|source| InvalidMessage::TopicName {
            field: "name".into(),
            source,
        })?;
        Ok(TopicMetadata {
            name,
            id: invalid::topic_id("id", &topic.id)?,
            partitions: topic.partitions.iter().map(PartitionState::from).collect(),
            configs: topic.configs,
        })
    }
}

impl From<&BrokerInfo> for pb::Broker {
    fn from(broker: &BrokerInfo) -> Self {
        let first = broker.listeners.first();
        pb::Broker {
            id: broker.id.0,
            rack: broker.rack.clone(),
            host: first.map(|l| l.host.clone()).unwrap_or_default(),
            port: first.map_or(0, |l| u32::from(l.port)),
            epoch: broker.epoch.0,
            incarnation_id: broker.incarnation.map(|id| id.to_string()),
            fenced: broker.fenced,
            in_controlled_shutdown: broker.in_controlled_shutdown,
            listeners: broker.listeners.iter().map(pb::Listener::from).collect(),
        }
    }
}

impl From<&Listener> for pb::Listener {
    fn from(listener: &Listener) -> Self {
        pb::Listener {
            name: listener.name.to_string(),
            host: listener.host.clone(),
            port: u32::from(listener.port),
        }
    }
}

impl TryFrom<pb::Broker> for BrokerInfo {
    type Error = InvalidMessage;

    fn try_from(broker: pb::Broker) -> Result<Self, Self::Error> {
        let port = |field: String, port: u32| {
            u16::try_from(port).map_err(|_| InvalidMessage::PortOutOfRange {
                field,
                port,
                range: "0..=65535",
            })
        };
        let listeners = if broker.listeners.is_empty() && !broker.host.is_empty() {
            // From a controller that predates `listeners`.
            vec![Listener::new(
                LEGACY_LISTENER_NAME,
                broker.host,
                port("port".into(), broker.port)?,
            )]
        } else {
            broker
                .listeners
                .into_iter()
                .enumerate()
                .map(|(i, l)| {
                    let port = port(format!("listeners[{i}].port"), l.port)?;
                    Ok(Listener::new(l.name, l.host, port))
                })
                .collect::<Result<_, InvalidMessage>>()?
        };
        let incarnation = broker
            .incarnation_id
            .as_deref()
            .map(|id| invalid::uuid("incarnation_id", id))
            .transpose()?;
        Ok(BrokerInfo {
            id: BrokerId(broker.id),
            rack: broker.rack,
            listeners,
            epoch: BrokerEpoch(broker.epoch),
            incarnation,
            fenced: broker.fenced,
            in_controlled_shutdown: broker.in_controlled_shutdown,
        })
    }
}

impl From<&ClusterMetadata> for pb::MetadataImage {
    fn from(image: &ClusterMetadata) -> Self {
        pb::MetadataImage {
            cluster_id: image.cluster_id.clone(),
            version: image.version,
            brokers: image.brokers.values().map(pb::Broker::from).collect(),
            topics: image.topics.values().map(pb::Topic::from).collect(),
            next_producer_id: image.next_producer_id,
            last_broker_epoch: image.last_broker_epoch.0,
        }
    }
}

impl TryFrom<pb::MetadataImage> for ClusterMetadata {
    type Error = InvalidMessage;

    fn try_from(image: pb::MetadataImage) -> Result<Self, Self::Error> {
        let mut brokers = BTreeMap::new();
        for (i, broker) in decode_brokers("brokers", image.brokers)?
            .into_iter()
            .enumerate()
        {
            let id = broker.id;
            if brokers.insert(id, broker).is_some() {
                return Err(InvalidMessage::DuplicateBroker {
                    field: format!("brokers[{i}]"),
                    broker: id,
                });
            }
        }
        let mut topics = BTreeMap::new();
        for (i, topic) in decode_topics("topics", image.topics)?
            .into_iter()
            .enumerate()
        {
            let name = topic.name.as_str().to_owned();
            if topics.insert(name.clone(), topic).is_some() {
                return Err(InvalidMessage::DuplicateTopic {
                    field: format!("topics[{i}]"),
                    name,
                });
            }
        }
        Ok(ClusterMetadata {
            cluster_id: image.cluster_id,
            version: image.version,
            brokers,
            topics,
            next_producer_id: image.next_producer_id,
            last_broker_epoch: BrokerEpoch(image.last_broker_epoch),
        })
    }
}

impl From<&MetadataDelta> for pb::MetadataDelta {
    fn from(delta: &MetadataDelta) -> Self {
        pb::MetadataDelta {
            from_version: delta.from_version,
            to_version: delta.to_version,
            upserted_topics: delta.upserted_topics.iter().map(pb::Topic::from).collect(),
            deleted_topics: delta
                .deleted_topics
                .iter()
                .map(|deleted| pb::DeletedTopic {
                    name: deleted.name.clone(),
                    id: deleted.id.0.to_string(),
                })
                .collect(),
            upserted_brokers: delta
                .upserted_brokers
                .iter()
                .map(pb::Broker::from)
                .collect(),
            removed_brokers: raw_broker_ids(&delta.removed_brokers),
            cluster_id: delta.cluster_id.clone(),
            next_producer_id: delta.next_producer_id,
            last_broker_epoch: delta.last_broker_epoch.map(|epoch| epoch.0),
        }
    }
}

impl TryFrom<pb::MetadataDelta> for MetadataDelta {
    type Error = InvalidMessage;

    fn try_from(delta: pb::MetadataDelta) -> Result<Self, Self::Error> {
        let deleted_topics = delta
            .deleted_topics
            .into_iter()
            .enumerate()
            .map(|(i, deleted)| {
                Ok(DeletedTopic {
                    id: invalid::topic_id("id", &deleted.id)
                        .map_err(|err| err.at(&format!("deleted_topics[{i}]")))?,
                    name: deleted.name,
                })
            })
            .collect::<Result<_, InvalidMessage>>()?;
        Ok(MetadataDelta {
            from_version: delta.from_version,
            to_version: delta.to_version,
            deleted_topics,
            upserted_topics: decode_topics("upserted_topics", delta.upserted_topics)?,
            removed_brokers: broker_ids(&delta.removed_brokers),
            upserted_brokers: decode_brokers("upserted_brokers", delta.upserted_brokers)?,
            cluster_id: delta.cluster_id,
            next_producer_id: delta.next_producer_id,
            last_broker_epoch: delta.last_broker_epoch.map(BrokerEpoch),
        })
    }
}

/// Decodes a topic a reply requires, naming `field` when it is missing or malformed.
pub(crate) fn required_topic(
    field: &str,
    topic: Option<pb::Topic>,
) -> Result<TopicMetadata, InvalidMessage> {
    TopicMetadata::try_from(invalid::required(field, topic)?).map_err(|err| err.at(field))
}

fn decode_topics(
    field: &str,
    topics: Vec<pb::Topic>,
) -> Result<Vec<TopicMetadata>, InvalidMessage> {
    topics
        .into_iter()
        .enumerate()
        .map(|(i, topic)| {
            TopicMetadata::try_from(topic).map_err(|err| err.at(&format!("{field}[{i}]")))
        })
        .collect()
}

fn decode_brokers(
    field: &str,
    brokers: Vec<pb::Broker>,
) -> Result<Vec<BrokerInfo>, InvalidMessage> {
    brokers
        .into_iter()
        .enumerate()
        .map(|(i, broker)| {
            BrokerInfo::try_from(broker).map_err(|err| err.at(&format!("{field}[{i}]")))
        })
        .collect()
}
