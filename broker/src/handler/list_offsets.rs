//! ListOffsets: earliest, latest, by timestamp and max timestamp.
//!
//! Consumers only see offsets below the high watermark: "latest" is the high watermark and a
//! timestamp lookup whose answer lies at or beyond it finds nothing, as in Kafka. A replica
//! (`replica_id` >= 0, a follower handling OFFSET_OUT_OF_RANGE) sees the whole log: "latest" is
//! the log end offset. Only the leader answers, except for the debugging replica id -2; a
//! new leader whose high watermark is still below the start of its epoch answers consumers'
//! "latest" and timestamp lookups with OFFSET_NOT_AVAILABLE (KIP-207), as Kafka does.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::broker::Broker;
use crate::kafka_error::log_error_code;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
/// Kafka's `DEBUGGING_REPLICA_ID`: may read from a follower.
const DEBUGGING_REPLICA_ID: i32 = -2;

pub(super) fn handle(broker: &Broker, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let replica_id = request.replica_id.0;
    let from_client = replica_id < 0 && replica_id != DEBUGGING_REPLICA_ID;
    let read_committed = request.isolation_level == 1;
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let out = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let Some(partition) = broker.partition(&name, p.partition_index) else {
                        return out.with_error_code(super::not_served_error(
                            broker,
                            &name,
                            p.partition_index,
                        ));
                    };
                    let leader_epoch = partition.replica.leader_epoch();
                    if let Some(code) =
                        super::leader_epoch_error(p.current_leader_epoch, leader_epoch)
                    {
                        return out.with_error_code(code);
                    }
                    if replica_id != DEBUGGING_REPLICA_ID && !partition.replica.is_leader() {
                        return out.with_error_code(ResponseError::NotLeaderOrFollower.code());
                    }
                    let epoch_start = if from_client && p.timestamp != EARLIEST {
                        partition.replica.epoch_start_offset()
                    } else {
                        None
                    };
                    let log = partition.log.read().unwrap_or_else(|e| e.into_inner());
                    let hw = log.high_watermark();
                    if epoch_start.is_some_and(|start| start > hw) && p.timestamp != EARLIEST_LOCAL
                    {
                        return out.with_error_code(ResponseError::OffsetNotAvailable.code());
                    }
                    // What the requester may see: read_committed consumers up to the last
                    // stable offset, other consumers up to the high watermark, replicas the
                    // whole log.
                    let visible = if from_client && read_committed {
                        log.last_stable_offset()
                    } else if from_client {
                        hw
                    } else {
                        log.log_end_offset()
                    };
                    let found = match p.timestamp {
                        LATEST => Ok(Some((-1, visible.as_i64(), leader_epoch))),
                        EARLIEST | EARLIEST_LOCAL => {
                            Ok(Some((-1, log.log_start_offset().as_i64(), leader_epoch)))
                        }
                        MAX_TIMESTAMP => log
                            .max_timestamp_offset()
                            .map(|t| t.map(|t| (t.timestamp, t.offset.as_i64(), t.leader_epoch))),
                        ts if ts >= 0 => log
                            .offset_for_timestamp(ts)
                            .map(|t| t.map(|t| (t.timestamp, t.offset.as_i64(), t.leader_epoch))),
                        _ => return out.with_error_code(ResponseError::InvalidRequest.code()),
                    };
                    match found {
                        Ok(Some((ts, offset, epoch)))
                            if p.timestamp < 0 || offset < visible.as_i64() =>
                        {
                            out.with_timestamp(ts)
                                .with_offset(offset)
                                .with_leader_epoch(epoch)
                        }
                        Ok(_) => out,
                        Err(e) => out.with_error_code(log_error_code(&e)),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
