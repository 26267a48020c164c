//! DeleteRecords: moves partitions' log start offsets (low watermarks) up, deleting the
//! segments wholly below them.
//!
//! Per partition, as Kafka's `Partition.deleteRecordsOnLeader`: an internal topic is refused
//! (INVALID_TOPIC_EXCEPTION), a partition whose `cleanup.policy` lacks `delete` is refused
//! (POLICY_VIOLATION), offset -1 means the high watermark, and an offset that is negative
//! otherwise or beyond the high watermark is OFFSET_OUT_OF_RANGE. An offset below the current
//! log start offset changes nothing. The answer is the low watermark after the deletion; with
//! one replica there is no follower to wait for.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use tracing::info;
use weir_controller::TopicName;

use crate::broker::Broker;
use crate::kafka_error::log_error_code;
use crate::log::Log;
use crate::types::Offset;

/// `DeleteRecordsRequest.HIGH_WATERMARK`.
const HIGH_WATERMARK: i64 = -1;

pub(super) fn handle(broker: &Broker, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let internal = TopicName::new(&name).is_ok_and(|t| t.is_internal());
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    if internal {
                        return result
                            .with_error_code(ResponseError::InvalidTopicException.code());
                    }
                    let Some(partition) = broker.partition(&name, p.partition_index) else {
                        return result.with_error_code(super::not_served_error(
                            broker,
                            &name,
                            p.partition_index,
                        ));
                    };
                    // Only the leader moves the log start; followers follow it.
                    if !partition.replica.is_leader() {
                        return result
                            .with_error_code(ResponseError::NotLeaderOrFollower.code());
                    }
                    let mut log = partition.log.write().unwrap_or_else(|e| e.into_inner());
                    match delete(&mut log, p.offset) {
                        Ok(low) => {
                            info!(partition = %partition.tp, low_watermark = low, "deleted records");
                            result.with_low_watermark(low)
                        }
                        Err(code) => result.with_error_code(code),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Deletes records of one partition below `offset` (a wire offset); the new low watermark,
/// or the Kafka error code.
fn delete(log: &mut Log, offset: i64) -> Result<i64, i16> {
    if !log.config().cleanup_policy.delete {
        return Err(ResponseError::PolicyViolation.code());
    }
    let target = if offset == HIGH_WATERMARK {
        log.high_watermark()
    } else {
        Offset::from_i64(offset).ok_or(ResponseError::OffsetOutOfRange.code())?
    };
    log.delete_records(target)
        .map(Offset::as_i64)
        .map_err(|e| log_error_code(&e))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::log::{LogConfig, OpenOptions, SegmentCache};

    fn open(dir: &std::path::Path, config: LogConfig) -> Log {
        Log::open(
            dir,
            config,
            OpenOptions::default(),
            Arc::new(SegmentCache::new(4)),
        )
        .unwrap()
    }

    #[test]
    fn sentinel_negative_and_beyond_high_watermark_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        assert_eq!(delete(&mut log, HIGH_WATERMARK), Ok(0));
        assert_eq!(delete(&mut log, 0), Ok(0));
        let out_of_range = Err(ResponseError::OffsetOutOfRange.code());
        assert_eq!(delete(&mut log, -2), out_of_range);
        assert_eq!(delete(&mut log, 1), out_of_range);
    }

    #[test]
    fn a_compacted_only_log_refuses_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig::from_overrides([("cleanup.policy", "compact")]).unwrap();
        let mut log = open(dir.path(), config);
        assert_eq!(
            delete(&mut log, HIGH_WATERMARK),
            Err(ResponseError::PolicyViolation.code())
        );
    }
}
