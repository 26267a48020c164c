//! DescribeProducers (v0): the active producers of partitions this broker leads — id,
//! epoch, last sequence and timestamp, the coordinator epoch of the last marker, and the
//! first offset of an open transaction (-1 if none) — as Kafka's `ProducerStateManager` keeps
//! them. A partition led elsewhere is NOT_LEADER_OR_FOLLOWER, an unknown one
//! UNKNOWN_TOPIC_OR_PARTITION.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use crate::broker::Broker;

pub(super) fn handle(
    broker: &Broker,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let partitions = topic
                .partition_indexes
                .into_iter()
                .map(|index| {
                    let response = PartitionResponse::default().with_partition_index(index);
                    let Some(partition) = broker
                        .partition(&name, index)
                        .filter(|p| p.replica.is_leader())
                    else {
                        return response
                            .with_error_code(super::not_served_error(broker, &name, index));
                    };
                    let log = partition.log.read().unwrap_or_else(|p| p.into_inner());
                    let state = log.producer_state();
                    let producers = state
                        .producer_ids()
                        .filter_map(|id| state.get(id).map(|entry| (id, entry)))
                        .map(|(id, entry)| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(id))
                                .with_producer_epoch(i32::from(entry.epoch))
                                .with_last_sequence(entry.last_seq())
                                .with_last_timestamp(entry.last_timestamp)
                                .with_coordinator_epoch(entry.coordinator_epoch)
                                .with_current_txn_start_offset(
                                    entry.current_txn_first_offset.map_or(-1, |o| o.as_i64()),
                                )
                        })
                        .collect();
                    response.with_active_producers(producers)
                })
                .collect();
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
