//! Produce: append each partition's batch as the leader; acks 0, 1 and all.
//!
//! Only the partition's leader appends; elsewhere a partition that exists is
//! NOT_LEADER_OR_FOLLOWER (the client refreshes its metadata). acks=1 is answered once the
//! leader has appended, acks=0 not at all. acks=all first needs `min.insync.replicas` in the
//! ISR (NOT_ENOUGH_REPLICAS, nothing written), then waits until the high watermark passes the
//! batch, up to the request's `timeout_ms` (REQUEST_TIMED_OUT); if the ISR has fallen below
//! `min.insync.replicas` by then the answer is NOT_ENOUGH_REPLICAS_AFTER_APPEND (the records
//! stay written), as Kafka's delayed produce answers. A single-replica partition's high
//! watermark is its log end, so its acks=all is answered right after the append.
//!
//! v3+ requests carry exactly one batch per partition; anything else is INVALID_RECORD, and a
//! refused batch changes nothing stored. Batches of idempotent producers pass the log's
//! sequence checks: a retry of a batch the log already holds is answered with the original
//! offsets and stored nothing (it is not counted in the byte and message metrics either); a
//! fenced epoch is INVALID_PRODUCER_EPOCH and a sequence gap OUT_OF_ORDER_SEQUENCE_NUMBER.
//! Transactional batches need the request's `transactional_id`; without one the whole
//! request is TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as Kafka answers. A non-transactional
//! batch from a producer with a transaction open on the partition is INVALID_TXN_STATE.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use super::topics::auto_create;
use crate::broker::{Broker, Partition};
use crate::kafka_error::log_error_code;
use crate::log::AppendOutcome;
use crate::replication::state::AppendRefusal;
use crate::replication::{AckOutcome, LeaderAppendError};
use crate::types::Offset;

/// An acks=all write waiting for the ISR: where its answer goes and the offset the high
/// watermark must reach.
struct PendingAck {
    topic: usize,
    partition: usize,
    replica: Arc<Partition>,
    required: Offset,
}

pub(super) async fn handle(broker: &Broker, request: ProduceRequest) -> Option<ProduceResponse> {
    let acks = request.acks;
    if request.transactional_id.is_none() && has_transactional_records(&request) {
        // Kafka refuses the whole request before looking at a partition.
        debug!("transactional records without a transactional id refused");
        return (acks != 0)
            .then(|| refuse_all(request, ResponseError::TransactionalIdAuthorizationFailed));
    }
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let mut pending = Vec::new();
    for topic in request.topic_data {
        let name = topic.name.0.to_string();
        if !broker.metadata().topics.contains_key(&name) && broker.config.auto_create_topics {
            let _ = auto_create(broker, &name).await;
        }
        let topic_index = responses.len();
        let partitions = topic
            .partition_data
            .into_iter()
            .enumerate()
            .map(|(partition_index, p)| {
                let out = PartitionProduceResponse::default()
                    .with_index(p.index)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1);
                if !matches!(acks, -1..=1) {
                    return out.with_error_code(ResponseError::InvalidRequiredAcks.code());
                }
                let Some(partition) = broker.partition(&name, p.index) else {
                    return out.with_error_code(super::not_served_error(broker, &name, p.index));
                };
                let records = p.records.unwrap_or_default();
                let appended = partition.replica.append_as_leader(
                    &partition.log,
                    &records,
                    acks,
                    crate::log::now_ms(),
                );
                match appended {
                    Ok(appended) => {
                        let info = appended.outcome.info();
                        if let AppendOutcome::Appended(_) = appended.outcome {
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
                        if appended.acks_pending {
                            pending.push(PendingAck {
                                topic: topic_index,
                                partition: partition_index,
                                replica: partition.clone(),
                                required: info.last_offset + 1,
                            });
                        }
                        let mut out = out;
                        out.base_offset = info.first_offset.as_i64();
                        out.log_append_time_ms = info.log_append_time.unwrap_or(-1);
                        out.log_start_offset = info.log_start_offset.as_i64();
                        out
                    }
                    Err(e) => refused(&name, p.index, out, e),
                }
            })
            .collect();
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions),
        );
    }
    // Every acks=all write waits against the same deadline, as one delayed produce does.
    for ack in pending {
        let code = match ack
            .replica
            .replica
            .await_acks(&ack.replica.log, ack.required, deadline)
            .await
        {
            AckOutcome::Replicated => continue,
            AckOutcome::NotEnoughReplicasAfterAppend => {
                ResponseError::NotEnoughReplicasAfterAppend.code()
            }
            AckOutcome::NotLeader => ResponseError::NotLeaderOrFollower.code(),
            AckOutcome::TimedOut => ResponseError::RequestTimedOut.code(),
        };
        debug!(partition = %ack.replica.tp, required = %ack.required, code, "acks=all write not replicated");
        responses[ack.topic].partition_responses[ack.partition].error_code = code;
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

/// Whether any partition's records are a transactional batch (v3+ requests carry one batch
/// per partition; its attributes are at the same place in every batch).
fn has_transactional_records(request: &ProduceRequest) -> bool {
    request
        .topic_data
        .iter()
        .flat_map(|t| t.partition_data.iter())
        .filter_map(|p| p.records.as_deref())
        .any(|records| {
            crate::log::batch::BatchHeader::parse(records).is_ok_and(|h| h.is_transactional())
        })
}

/// The same error for every partition of the request.
fn refuse_all(request: ProduceRequest, error: ResponseError) -> ProduceResponse {
    let responses = request
        .topic_data
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partition_data
                .iter()
                .map(|p| {
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(error.code())
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1)
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

/// The answer for a batch the leader did not append.
fn refused(
    topic: &str,
    partition: i32,
    mut out: PartitionProduceResponse,
    error: LeaderAppendError,
) -> PartitionProduceResponse {
    debug!(topic, partition, %error, "produce refused");
    let code = match &error {
        LeaderAppendError::Refused(AppendRefusal::NotLeader) => {
            ResponseError::NotLeaderOrFollower.code()
        }
        LeaderAppendError::Refused(AppendRefusal::NotEnoughReplicas { .. }) => {
            ResponseError::NotEnoughReplicas.code()
        }
        LeaderAppendError::Log(e) => log_error_code(e),
    };
    out.error_message = Some(StrBytes::from_string(error.to_string()));
    out.with_error_code(code)
}
