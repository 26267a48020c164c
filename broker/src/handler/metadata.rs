//! Metadata: brokers, cluster id, and topics with their partitions, leaders and ISR.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId as WireBrokerId, MetadataRequest, MetadataResponse, TopicName as WireTopicName,
};
use kafka_protocol::protocol::StrBytes;
use weir_controller::{ClusterMetadata, TopicMetadata, TopicName};

use super::topics::auto_create;
use crate::broker::Broker;

pub(super) async fn handle(
    broker: &Broker,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    // v0 has no way to say "all topics" but an empty list.
    let wanted: Option<Vec<(Option<String>, uuid::Uuid)>> = match request.topics {
        None => None,
        Some(list) if list.is_empty() && version == 0 => None,
        Some(list) => Some(
            list.into_iter()
                .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
                .collect(),
        ),
    };
    let allow_auto_create = version < 4 || request.allow_auto_topic_creation;
    if let Some(wanted) = &wanted
        && allow_auto_create
        && broker.config.auto_create_topics
    {
        for name in wanted.iter().filter_map(|(n, _)| n.as_deref()) {
            if !broker.metadata().topics.contains_key(name) {
                let _ = auto_create(broker, name).await;
            }
        }
    }
    let metadata = broker.metadata();
    let topics = match wanted {
        None => metadata
            .topics
            .values()
            .map(|t| topic_response(&metadata, t))
            .collect(),
        Some(wanted) => wanted
            .into_iter()
            .map(|(name, id)| {
                let found = match &name {
                    Some(n) => metadata.topics.get(n),
                    None => metadata.topics.values().find(|t| t.id.0 == id),
                };
                match found {
                    Some(t) => topic_response(&metadata, t),
                    None => {
                        let code = match &name {
                            Some(n) if TopicName::new(n).is_err() => {
                                ResponseError::InvalidTopicException.code()
                            }
                            Some(_) => ResponseError::UnknownTopicOrPartition.code(),
                            None => ResponseError::UnknownTopicId.code(),
                        };
                        MetadataResponseTopic::default()
                            .with_error_code(code)
                            .with_name(name.map(|n| WireTopicName(StrBytes::from_string(n))))
                            .with_topic_id(id)
                    }
                }
            })
            .collect(),
    };
    MetadataResponse::default()
        .with_brokers(brokers(&metadata))
        .with_cluster_id(Some(StrBytes::from_string(metadata.cluster_id.clone())))
        .with_controller_id(WireBrokerId(broker.config.node_id))
        .with_topics(topics)
}

/// The live (unfenced) brokers, as Kafka's metadata cache lists them.
fn brokers(metadata: &ClusterMetadata) -> Vec<MetadataResponseBroker> {
    metadata
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(WireBrokerId(b.id.0))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.clone().map(StrBytes::from_string))
        })
        .collect()
}

fn topic_response(metadata: &ClusterMetadata, topic: &TopicMetadata) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            let ids = |v: &[weir_controller::BrokerId]| {
                v.iter().map(|b| WireBrokerId(b.0)).collect::<Vec<_>>()
            };
            MetadataResponsePartition::default()
                .with_error_code(if p.leader.is_some() {
                    0
                } else {
                    ResponseError::LeaderNotAvailable.code()
                })
                .with_partition_index(p.partition)
                .with_leader_id(WireBrokerId(p.leader.map_or(-1, |l| l.0)))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_offline_replicas(
                    p.replicas
                        .iter()
                        .filter(|r| metadata.brokers.get(r).is_none_or(|b| b.fenced))
                        .map(|b| WireBrokerId(b.0))
                        .collect(),
                )
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(WireTopicName(StrBytes::from_string(
            topic.name.as_str().to_owned(),
        ))))
        .with_topic_id(topic.id.0)
        .with_is_internal(topic.name.is_internal())
        .with_partitions(partitions)
}
