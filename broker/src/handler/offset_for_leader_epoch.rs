//! OffsetForLeaderEpoch (v2-4): for each partition, the largest leader epoch at or below the
//! one asked for and the offset where it ends (the log end for the current epoch), from the
//! log's leader epoch cache, as Kafka's leader answers it.
//!
//! Followers ask it before fetching from a new leader, to truncate a divergent tail; consumers
//! ask it to detect truncation after a leader change (KIP-320). Only the leader answers
//! (Kafka's `fetchOnlyFromLeader = true`, whatever `replica_id` (v3+) says): a stale
//! `current_leader_epoch` is FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH, a follower
//! NOT_LEADER_OR_FOLLOWER. An epoch the log knows nothing of is answered with
//! UNDEFINED_EPOCH (-1) and UNDEFINED_EPOCH_OFFSET (-1) and no error.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::broker::Broker;
use crate::types::LeaderEpoch;

pub(super) fn handle(
    broker: &Broker,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.topic.0.to_string();
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let out = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(partition) = broker.partition(&name, p.partition) else {
                        return out.with_error_code(super::not_served_error(
                            broker,
                            &name,
                            p.partition,
                        ));
                    };
                    let current = partition.replica.leader_epoch();
                    if let Some(code) = super::leader_epoch_error(p.current_leader_epoch, current) {
                        return out.with_error_code(code);
                    }
                    if !partition.replica.is_leader() {
                        return out.with_error_code(ResponseError::NotLeaderOrFollower.code());
                    }
                    let log = partition.log.read().unwrap_or_else(|e| e.into_inner());
                    match log.end_offset_for_epoch(LeaderEpoch(p.leader_epoch)) {
                        Some((epoch, end)) => {
                            out.with_leader_epoch(epoch.0).with_end_offset(end.as_i64())
                        }
                        None => out,
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
