//! Metadata: brokers, cluster id, and topics with their partitions, leaders and ISR.
//!
//! Endpoints are those of the listener the request arrived on, as Kafka's
//! `KRaftMetadataCache` gives them: a broker without that listener is left out of the
//! broker list and counts as an offline replica, and a partition whose leader lacks it has
//! no leader in the answer (LISTENER_NOT_FOUND from v6, LEADER_NOT_AVAILABLE before).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId as WireBrokerId, MetadataRequest, MetadataResponse, TopicName as WireTopicName,
};
use kafka_protocol::protocol::StrBytes;
use weir_controller::{ClusterMetadata, ListenerName, TopicMetadata, TopicName};

use super::topics::auto_create;
use crate::broker::Broker;

pub(super) async fn handle(
    broker: &Broker,
    request: MetadataRequest,
    version: i16,
    listener: &ListenerName,
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
            .map(|t| topic_response(&metadata, t, listener, version))
            .collect(),
        Some(wanted) => wanted
            .into_iter()
            .map(|(name, id)| {
                let found = match &name {
                    Some(n) => metadata.topics.get(n),
                    None => metadata.topics.values().find(|t| t.id.0 == id),
                };
                match found {
                    Some(t) => topic_response(&metadata, t, listener, version),
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
        .with_brokers(brokers(&metadata, listener))
        .with_cluster_id(Some(StrBytes::from_string(metadata.cluster_id.clone())))
        .with_controller_id(WireBrokerId(broker.config.node_id))
        .with_topics(topics)
}

/// The live (unfenced) brokers with an endpoint on `listener`, as Kafka's metadata cache
/// lists them (`getAliveBrokerNodes(listenerName)`).
fn brokers(metadata: &ClusterMetadata, listener: &ListenerName) -> Vec<MetadataResponseBroker> {
    metadata
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let endpoint = b.listener(listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(WireBrokerId(b.id.0))
                    .with_host(StrBytes::from_string(endpoint.host.clone()))
                    .with_port(i32::from(endpoint.port))
                    .with_rack(b.rack.clone().map(StrBytes::from_string)),
            )
        })
        .collect()
}

fn topic_response(
    metadata: &ClusterMetadata,
    topic: &TopicMetadata,
    listener: &ListenerName,
    version: i16,
) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            let ids = |v: &[weir_controller::BrokerId]| {
                v.iter().map(|b| WireBrokerId(b.0)).collect::<Vec<_>>()
            };
            let leader = p.leader.and_then(|id| metadata.brokers.get(&id));
            let (error, leader_id) = match leader {
                Some(b) if b.listener(listener).is_some() => (None, b.id.0),
                // Kafka tells a listener missing on the leader apart from v6 on.
                Some(_) if version >= 6 => (Some(ResponseError::ListenerNotFound), -1),
                _ => (Some(ResponseError::LeaderNotAvailable), -1),
            };
            MetadataResponsePartition::default()
                .with_error_code(error.map_or(0, |e| e.code()))
                .with_partition_index(p.partition)
                .with_leader_id(WireBrokerId(leader_id))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_offline_replicas(
                    p.replicas
                        .iter()
                        .filter(|r| {
                            metadata
                                .brokers
                                .get(r)
                                .is_none_or(|b| b.fenced || b.listener(listener).is_none())
                        })
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use weir_controller::{BrokerId, BrokerInfo, Listener, PartitionState, TopicId};

    use super::*;

    /// Brokers 1 and 2 with INTERNAL and EXTERNAL listeners, broker 3 with INTERNAL only;
    /// topic `t` with partition 0 led by 1 and partition 1 led by 3, replicas on all three.
    fn cluster() -> (ClusterMetadata, TopicMetadata) {
        let mut metadata = ClusterMetadata::empty("c", 1);
        for id in 1..=3 {
            let mut listeners = vec![Listener::new("INTERNAL", format!("pod-{id}.svc"), 9092)];
            if id < 3 {
                listeners.push(Listener::new(
                    "EXTERNAL",
                    "kafka.example.com",
                    31000 + id as u16,
                ));
            }
            metadata
                .brokers
                .insert(BrokerId(id), BrokerInfo::new(BrokerId(id), None, listeners));
        }
        let replicas = |leader: i32| {
            let mut r = vec![BrokerId(leader)];
            r.extend((1..=3).filter(|&b| b != leader).map(BrokerId));
            r
        };
        let topic = TopicMetadata {
            name: TopicName::new("t").unwrap(),
            id: TopicId::random(),
            partitions: vec![
                PartitionState::new(0, replicas(1)),
                PartitionState::new(1, replicas(3)),
            ],
            configs: BTreeMap::new(),
        };
        (metadata, topic)
    }

    fn endpoints(brokers: &[MetadataResponseBroker]) -> Vec<(i32, String, i32)> {
        brokers
            .iter()
            .map(|b| (b.node_id.0, b.host.to_string(), b.port))
            .collect()
    }

    #[test]
    fn brokers_are_listed_with_the_endpoint_of_the_requests_listener() {
        let (metadata, _) = cluster();
        assert_eq!(
            endpoints(&brokers(&metadata, &"EXTERNAL".into())),
            [
                (1, "kafka.example.com".to_owned(), 31001),
                (2, "kafka.example.com".to_owned(), 31002)
            ]
        );
        assert_eq!(
            endpoints(&brokers(&metadata, &"INTERNAL".into())),
            [
                (1, "pod-1.svc".to_owned(), 9092),
                (2, "pod-2.svc".to_owned(), 9092),
                (3, "pod-3.svc".to_owned(), 9092)
            ]
        );
        assert!(brokers(&metadata, &"PLAINTEXT".into()).is_empty());
    }

    #[test]
    fn a_leader_without_the_listener_leaves_its_partition_leaderless() {
        let (metadata, topic) = cluster();
        let external = ListenerName::new("EXTERNAL");
        for (version, code) in [
            (12, ResponseError::ListenerNotFound),
            (5, ResponseError::LeaderNotAvailable),
        ] {
            let answer = topic_response(&metadata, &topic, &external, version);
            let (led, unreachable) = (&answer.partitions[0], &answer.partitions[1]);
            assert_eq!((led.error_code, led.leader_id.0), (0, 1), "v{version}");
            assert_eq!(
                (unreachable.error_code, unreachable.leader_id.0),
                (code.code(), -1),
                "v{version}"
            );
            // Replicas and ISR stay whole; the broker without the listener is offline.
            assert_eq!(unreachable.replica_nodes.len(), 3);
            assert_eq!(unreachable.isr_nodes.len(), 3);
            assert_eq!(
                unreachable.offline_replicas,
                [WireBrokerId(3)],
                "v{version}"
            );
        }
        let internal = topic_response(&metadata, &topic, &"INTERNAL".into(), 12);
        assert!(
            internal
                .partitions
                .iter()
                .all(|p| p.error_code == 0 && p.offline_replicas.is_empty())
        );
        assert_eq!(internal.partitions[1].leader_id.0, 3);
    }
}
