//! Produce: append each partition's batch as the leader; acks 0, 1 and all.
//!
//! One broker holds the only replica, so acks=all completes when the leader has appended
//! (the high watermark moves with the log end). v3+ requests carry exactly one batch per
//! partition; anything else is INVALID_RECORD, and a refused batch changes nothing stored.
//! Batches of idempotent producers pass the log's sequence checks: a retry of a batch the log
//! already holds is answered with the original offsets and stored nothing (it is not counted
//! in the byte and message metrics either); a fenced epoch is INVALID_PRODUCER_EPOCH and a
//! sequence gap OUT_OF_ORDER_SEQUENCE_NUMBER.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use super::topics::auto_create;
use crate::broker::Broker;
use crate::kafka_error::log_error_code;
use crate::log::AppendOutcome;
use crate::types::LeaderEpoch;

pub(super) async fn handle(broker: &Broker, request: ProduceRequest) -> Option<ProduceResponse> {
    let acks = request.acks;
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name = topic.name.0.to_string();
        if !broker.metadata().topics.contains_key(&name) && broker.config.auto_create_topics {
            let _ = auto_create(broker, &name).await;
        }
        let partitions = topic
            .partition_data
            .into_iter()
            .map(|p| {
                let mut out = PartitionProduceResponse::default()
                    .with_index(p.index)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1);
                if !matches!(acks, -1..=1) {
                    return out.with_error_code(ResponseError::InvalidRequiredAcks.code());
                }
                let Some(partition) = broker.partition(&name, p.index) else {
                    return out.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                };
                let records = p.records.unwrap_or_default();
                let mut log = partition.log.write().unwrap_or_else(|e| e.into_inner());
                match log.append_as_leader(
                    &records,
                    LeaderEpoch(partition.leader_epoch),
                    crate::log::now_ms(),
                ) {
                    Ok(outcome) => {
                        let info = outcome.info();
                        if let AppendOutcome::Appended(_) = outcome {
                            let leo = log.log_end_offset();
                            log.set_high_watermark(leo);
                            drop(log);
                            broker
                                .metrics
                                .bytes_in
                                .with_label_values(&[&name])
                                .inc_by(records.len() as u64);
                            broker
                                .metrics
                                .messages_in
                                .with_label_values(&[&name])
                                .inc_by(info.last_offset.0 - info.first_offset.0 + 1);
                            broker.notify_appended();
                        } else {
                            debug!(topic = %name, partition = p.index, offset = %info.first_offset, "duplicate producer batch answered with its original offsets");
                        }
                        out.base_offset = info.first_offset.as_i64();
                        out.log_append_time_ms = info.log_append_time.unwrap_or(-1);
                        out.log_start_offset = info.log_start_offset.as_i64();
                        out
                    }
                    Err(e) => {
                        debug!(topic = %name, partition = p.index, error = %e, "produce refused");
                        out.error_message = Some(StrBytes::from_string(e.to_string()));
                        out.with_error_code(log_error_code(&e))
                    }
                }
            })
            .collect();
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions),
        );
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}
