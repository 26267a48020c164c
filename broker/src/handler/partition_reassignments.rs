//! AlterPartitionReassignments (v0-1) and ListPartitionReassignments (v0), forwarded to the
//! controller (`kafka-reassign-partitions.sh`, `AdminClient.alterPartitionReassignments`).
//!
//! A reassignment (KIP-455) adds the target replicas, waits until they are in the ISR, moves
//! leadership if needed, then drops the old replicas; a null replica list cancels it. From v1
//! a request may forbid changing the replication factor (KIP-860): a target of another size
//! is then refused with INVALID_REPLICATION_FACTOR, as Kafka does.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    BrokerId as WireBrokerId, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tracing::info;
use weir_controller::{BrokerId, PartitionRef, ReassignmentChange};

use crate::broker::Broker;

pub(super) async fn alter(
    broker: &Broker,
    request: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    let allow_rf_change = version < 1 || request.allow_replication_factor_change;
    let metadata = broker.metadata();
    let mut refused: Vec<(PartitionRef, i16, String)> = Vec::new();
    let mut changes = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        for p in topic.partitions {
            let partition = PartitionRef {
                topic: name.clone(),
                partition: p.partition_index,
            };
            let target: Option<Vec<BrokerId>> = p
                .replicas
                .map(|r| r.into_iter().map(|b| BrokerId(b.0)).collect());
            let current_rf = metadata
                .topic(&name)
                .map(weir_controller::TopicMetadata::replication_factor);
            if let (false, Some(target), Some(current)) = (allow_rf_change, &target, current_rf)
                && target.len() != current
            {
                refused.push((
                    partition,
                    ResponseError::InvalidReplicationFactor.code(),
                    format!(
                        "The replication factor is changed from {current} to {} but allowReplicationFactorChange is false",
                        target.len()
                    ),
                ));
                continue;
            }
            changes.push(ReassignmentChange { partition, target });
        }
    }
    let response = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_rf_change);
    let outcomes = match broker.control.alter_reassignments(changes).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            return response
                .with_error_code(e.kafka_error_code())
                .with_error_message(Some(StrBytes::from_string(e.to_string())));
        }
    };
    let mut topics: Vec<ReassignableTopicResponse> = Vec::new();
    let results = outcomes
        .into_iter()
        .map(|(partition, result)| match result {
            Ok(()) => {
                info!(topic = %partition.topic, partition = partition.partition, "reassignment changed");
                (partition, 0, None)
            }
            Err(e) => (partition, e.kafka_error_code(), Some(e.to_string())),
        })
        .chain(refused.into_iter().map(|(p, code, m)| (p, code, Some(m))));
    for (partition, code, message) in results {
        let entry = ReassignablePartitionResponse::default()
            .with_partition_index(partition.partition)
            .with_error_code(code)
            .with_error_message(message.map(StrBytes::from_string));
        match topics
            .iter_mut()
            .find(|t| t.name.0.as_str() == partition.topic)
        {
            Some(topic) => topic.partitions.push(entry),
            None => topics.push(
                ReassignableTopicResponse::default()
                    .with_name(TopicName(StrBytes::from_string(partition.topic)))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    response.with_responses(topics)
}

pub(super) async fn list(
    broker: &Broker,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let wanted = request.topics.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let topic = t.name.0.to_string();
                t.partition_indexes
                    .into_iter()
                    .map(move |partition| PartitionRef {
                        topic: topic.clone(),
                        partition,
                    })
            })
            .collect::<Vec<_>>()
    });
    let ongoing = match broker.control.list_reassignments(wanted).await {
        Ok(ongoing) => ongoing,
        Err(e) => {
            return ListPartitionReassignmentsResponse::default()
                .with_error_code(e.kafka_error_code())
                .with_error_message(Some(StrBytes::from_string(e.to_string())));
        }
    };
    let ids = |v: &[BrokerId]| v.iter().map(|b| WireBrokerId(b.0)).collect::<Vec<_>>();
    let mut topics: Vec<OngoingTopicReassignment> = Vec::new();
    for r in ongoing {
        let entry = OngoingPartitionReassignment::default()
            .with_partition_index(r.partition.partition)
            .with_replicas(ids(&r.replicas))
            .with_adding_replicas(ids(&r.adding))
            .with_removing_replicas(ids(&r.removing));
        match topics
            .iter_mut()
            .find(|t| t.name.0.as_str() == r.partition.topic)
        {
            Some(topic) => topic.partitions.push(entry),
            None => topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(r.partition.topic)))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
