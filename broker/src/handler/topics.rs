//! CreateTopics and DeleteTopics, committed through the controller; and topic auto-creation.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    TopicName as WireTopicName,
};
use kafka_protocol::protocol::StrBytes;
use tracing::info;
use weir_controller::{BrokerId, ControllerError, CreateTopic, TopicId, TopicRef};

use crate::broker::Broker;

/// Creates `name` with the broker's defaults (auto.create.topics.enable).
pub(super) async fn auto_create(broker: &Broker, name: &str) -> Result<(), ControllerError> {
    let request = CreateTopic {
        name: name.to_owned(),
        num_partitions: None,
        replication_factor: None,
        assignments: None,
        configs: BTreeMap::new(),
    };
    if let Some(topic) = broker.create_topic_if_absent(request).await? {
        info!(
            topic = name,
            partitions = topic.partitions.len(),
            "auto-created topic"
        );
    }
    Ok(())
}

pub(super) async fn create(broker: &Broker, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let validate_only = request.validate_only;
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let assignments = (!topic.assignments.is_empty()).then(|| {
            let mut by_partition: Vec<_> = topic
                .assignments
                .iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids
                            .iter()
                            .map(|b| BrokerId(b.0))
                            .collect::<Vec<_>>(),
                    )
                })
                .collect();
            by_partition.sort_by_key(|(p, _)| *p);
            by_partition.into_iter().map(|(_, ids)| ids).collect()
        });
        let configs = topic
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        let create = CreateTopic {
            name: name.clone(),
            num_partitions: (topic.num_partitions != -1).then_some(topic.num_partitions),
            replication_factor: (topic.replication_factor != -1)
                .then_some(topic.replication_factor),
            assignments,
            configs,
        };
        let created = broker.control.create_topic(create, validate_only).await;
        let result = CreatableTopicResult::default().with_name(topic.name.clone());
        results.push(match created {
            Ok(committed) => {
                let t = broker.applied(committed).await;
                if !validate_only {
                    info!(topic = %name, partitions = t.partitions.len(), "created topic");
                }
                result
                    .with_topic_id(t.id.0)
                    .with_num_partitions(t.partitions.len() as i32)
                    .with_replication_factor(
                        t.partitions.first().map_or(0, |p| p.replicas.len() as i16),
                    )
            }
            Err(e) => result
                .with_error_code(e.kafka_error_code())
                .with_error_message(Some(StrBytes::from_string(e.to_string())))
                .with_num_partitions(-1)
                .with_replication_factor(-1),
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub(super) async fn delete(
    broker: &Broker,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let targets: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let target = match &name {
            Some(n) => TopicRef::Name(n.clone()),
            None => TopicRef::Id(TopicId(id)),
        };
        let deleted = match broker.control.delete_topic(target).await {
            Ok(committed) => Ok(broker.applied(committed).await),
            Err(e) => Err(e),
        };
        let result = DeletableTopicResult::default()
            .with_name(
                name.clone()
                    .map(|n| WireTopicName(StrBytes::from_string(n))),
            )
            .with_topic_id(id);
        responses.push(match deleted {
            Ok(t) => {
                info!(topic = t.name.as_str(), "deleted topic");
                result
                    .with_name(Some(WireTopicName(StrBytes::from_string(
                        t.name.as_str().to_owned(),
                    ))))
                    .with_topic_id(t.id.0)
            }
            Err(e) => result
                .with_error_code(e.kafka_error_code())
                .with_error_message(Some(StrBytes::from_string(e.to_string()))),
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
