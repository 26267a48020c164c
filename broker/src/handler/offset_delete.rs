//! OffsetDelete (v0): removes a group's committed offsets for partitions it no longer
//! consumes (GROUP_SUBSCRIBED_TO_TOPIC while members still subscribe to the topic).

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::coordinator::group::{GroupId, TopicPartitions};

pub(super) fn handle(broker: &Broker, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let topics: Vec<TopicPartitions> = request
        .topics
        .iter()
        .map(|t| TopicPartitions {
            name: t.name.0.to_string(),
            partitions: t.partitions.iter().map(|p| p.partition_index).collect(),
        })
        .collect();
    let group = GroupId::from(request.group_id.as_str());
    match broker.groups.delete_offsets(broker, &group, &topics) {
        Err(error) => OffsetDeleteResponse::default().with_error_code(error.code()),
        Ok(result) => OffsetDeleteResponse::default()
            .with_error_code(result.error.map_or(0, |e| e.code()))
            .with_topics(
                result
                    .topics
                    .into_iter()
                    .map(|t| {
                        OffsetDeleteResponseTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.name)))
                            .with_partitions(
                                t.partitions
                                    .into_iter()
                                    .map(|p| {
                                        OffsetDeleteResponsePartition::default()
                                            .with_partition_index(p.partition)
                                            .with_error_code(p.error.map_or(0, |e| e.code()))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
    }
}
