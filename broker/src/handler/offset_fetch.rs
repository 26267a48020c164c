//! OffsetFetch (v1-9): one group before v8, a batch of groups from v8. `topics = null`
//! (v2+) asks for every committed partition of the group. A partition without a commit
//! answers offset -1. A group-level error (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS,
//! INVALID_GROUP_ID) goes in the group's error code from v2 on, and in every partition's
//! before that, as Kafka answers. With `require_stable` (v7+) a partition whose commit is
//! pending (a transaction not yet ended) answers UNSTABLE_OFFSET_COMMIT, and the consumer
//! retries; otherwise the last committed offset is returned.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::coordinator::group::{FetchedTopic, GroupId, TopicPartitions};

pub(super) fn handle(
    broker: &Broker,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let require_stable = version >= 7 && request.require_stable;
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                let topics = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| TopicPartitions {
                            name: t.name.0.to_string(),
                            partitions: t.partition_indexes,
                        })
                        .collect::<Vec<_>>()
                });
                let (error, fetched) = fetch(
                    broker,
                    g.group_id.as_str(),
                    topics.as_deref(),
                    require_stable,
                );
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(error.map_or(0, |e| e.code()))
                    .with_topics(
                        fetched
                            .into_iter()
                            .map(|t| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(StrBytes::from_string(t.name)))
                                    .with_partitions(
                                        t.partitions
                                            .into_iter()
                                            .map(|p| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p.partition)
                                                    .with_committed_offset(p.offset)
                                                    .with_committed_leader_epoch(p.leader_epoch)
                                                    .with_metadata(Some(StrBytes::from_string(
                                                        p.metadata,
                                                    )))
                                                    .with_error_code(
                                                        p.error.map_or(0, |e| e.code()),
                                                    )
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| TopicPartitions {
                name: t.name.0.to_string(),
                partitions: t.partition_indexes,
            })
            .collect::<Vec<_>>()
    });
    let (error, fetched) = fetch(
        broker,
        request.group_id.as_str(),
        topics.as_deref(),
        require_stable,
    );
    // Before v2 there is no group-level error: each requested partition carries it.
    let fetched = match (error, version < 2, &topics) {
        (Some(_), true, Some(requested)) => requested
            .iter()
            .map(|t| FetchedTopic {
                name: t.name.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|&partition| crate::coordinator::group::FetchedPartition {
                        partition,
                        offset: -1,
                        leader_epoch: -1,
                        metadata: String::new(),
                        error: None,
                    })
                    .collect(),
            })
            .collect(),
        _ => fetched,
    };
    let partition_error = if version < 2 { error } else { None };
    OffsetFetchResponse::default()
        .with_error_code(if version >= 2 {
            error.map_or(0, |e| e.code())
        } else {
            0
        })
        .with_topics(
            fetched
                .into_iter()
                .map(|t| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t.name)))
                        .with_partitions(
                            t.partitions
                                .into_iter()
                                .map(|p| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p.partition)
                                        .with_committed_offset(p.offset)
                                        .with_committed_leader_epoch(p.leader_epoch)
                                        .with_metadata(Some(StrBytes::from_string(p.metadata)))
                                        .with_error_code(
                                            partition_error.or(p.error).map_or(0, |e| e.code()),
                                        )
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

fn fetch(
    broker: &Broker,
    group: &str,
    topics: Option<&[TopicPartitions]>,
    require_stable: bool,
) -> (Option<ResponseError>, Vec<FetchedTopic>) {
    match broker
        .groups
        .fetch_offsets(broker, &GroupId::from(group), topics, require_stable)
    {
        Ok(fetched) => (None, fetched),
        Err(error) => (Some(error), Vec::new()),
    }
}
