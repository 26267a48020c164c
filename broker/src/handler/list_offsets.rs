//! ListOffsets: earliest, latest, by timestamp and max timestamp.
//!
//! Consumers only see offsets below the high watermark: "latest" is the high watermark and a
//! timestamp lookup whose answer lies at or beyond it finds nothing, as in Kafka.

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

pub(super) fn handle(broker: &Broker, request: ListOffsetsRequest) -> ListOffsetsResponse {
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
                        return out.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if let Some(code) =
                        super::leader_epoch_error(p.current_leader_epoch, partition.leader_epoch)
                    {
                        return out.with_error_code(code);
                    }
                    let log = partition.log.read().unwrap_or_else(|e| e.into_inner());
                    let hw = log.high_watermark();
                    let found = match p.timestamp {
                        LATEST => Ok(Some((-1, hw.as_i64(), partition.leader_epoch))),
                        EARLIEST | EARLIEST_LOCAL => Ok(Some((
                            -1,
                            log.log_start_offset().as_i64(),
                            partition.leader_epoch,
                        ))),
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
                            if p.timestamp < 0 || offset < hw.as_i64() =>
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
