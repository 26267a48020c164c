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
//! From v13 topics are named by topic id (KIP-516), as in Kafka 4.1: an id the broker does
//! not know is UNKNOWN_TOPIC_ID for each of its partitions, and is never auto-created.
//!
//! v3+ requests carry exactly one batch per partition; anything else is INVALID_RECORD, and a
//! refused batch changes nothing stored. Batches of idempotent producers pass the log's
//! sequence checks: a retry of a batch the log already holds is answered with the original
//! offsets and stored nothing (it is not counted in the byte and message metrics either); a
//! fenced epoch is INVALID_PRODUCER_EPOCH and a sequence gap OUT_OF_ORDER_SEQUENCE_NUMBER.
//! Transactional batches need the request's `transactional_id`; without one the whole
//! request is TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as Kafka answers. A non-transactional
//! batch from a producer with a transaction open on the partition is INVALID_TXN_STATE.
//! Transactional batches of more than one producer in a request are
//! INVALID_PRODUCER_ID_MAPPING for the whole request, as Kafka answers.
//!
//! # Transaction verification (KIP-890 part 1)
//!
//! With `transaction.partition.verification.enable` (the default), a transactional batch
//! whose producer has no transaction open in the partition — the transaction's first write
//! there — is appended only once the transaction coordinator confirms that the partition is
//! in the producer's ongoing transaction ([`crate::coordinator::txn_verify`]; the request's
//! partitions needing it are asked about together). Without that check a zombie or a late
//! retry after an abort would open a transaction no marker ever closes, holding the
//! partition's last stable offset back for good. Partitions where the producer's transaction
//! is already open are not verified, as in Kafka. The verification's guard
//! (`log::producer_state`) makes sure a marker landing between the answer and the append is
//! not followed by a write that reopens the transaction (INVALID_TXN_STATE).
//!
//! The coordinator's answers reach the producer as Kafka's `ReplicaManager` and
//! `AddPartitionsToTxnManager` translate them:
//!
//! | coordinator says | producer gets |
//! |---|---|
//! | NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS, CONCURRENT_TRANSACTIONS, unreachable (NETWORK_EXCEPTION) | NOT_ENOUGH_REPLICAS (retriable, no metadata refresh) |
//! | TRANSACTION_ABORTABLE (not in the transaction) | INVALID_TXN_STATE for Produce v3–v10, TRANSACTION_ABORTABLE for v11+ |
//! | PRODUCER_FENCED | INVALID_PRODUCER_EPOCH |
//! | INVALID_PRODUCER_EPOCH, INVALID_PRODUCER_ID_MAPPING, INVALID_TXN_STATE, others | passed on |

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use super::topics::auto_create;
use crate::broker::{Broker, Partition};
use crate::coordinator::txn_verify::{self, VerifyTxn};
use crate::kafka_error::log_error_code;
use crate::log::batch::BatchHeader;
use crate::log::{AppendOutcome, TxnVerification, VerificationGuard};
use crate::replication::state::AppendRefusal;
use crate::replication::{AckOutcome, LeaderAppendError};
use crate::types::Offset;
use weir_controller::TopicId;

/// An acks=all write waiting for the ISR: where its answer goes and the offset the high
/// watermark must reach.
struct PendingAck {
    topic: usize,
    partition: usize,
    replica: Arc<Partition>,
    required: Offset,
}

pub(super) async fn handle(
    broker: &Broker,
    mut request: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    // Topics named by an id this broker does not know (v13+), by index in the request.
    let unknown_ids = if version >= 13 {
        name_topics_by_id(broker, &mut request)
    } else {
        BTreeSet::new()
    };
    let producers = transactional_producers(&request);
    if request.transactional_id.is_none() && !producers.is_empty() {
        // Kafka refuses the whole request before looking at a partition.
        debug!("transactional records without a transactional id refused");
        return (acks != 0)
            .then(|| refuse_all(request, ResponseError::TransactionalIdAuthorizationFailed));
    }
    if producers.len() > 1 {
        debug!("transactional records of more than one producer refused");
        return (acks != 0).then(|| refuse_all(request, ResponseError::InvalidProducerIdMapping));
    }
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    for (index, topic) in request.topic_data.iter().enumerate() {
        let name = topic.name.0.as_str();
        if !unknown_ids.contains(&index)
            && !broker.metadata().topics.contains_key(name)
            && broker.config.auto_create_topics
        {
            let _ = auto_create(broker, name).await;
        }
    }
    let verification = match (&request.transactional_id, producers.first()) {
        (Some(id), Some(&(producer_id, producer_epoch)))
            if broker.config.transactions.partition_verification_enable
                && matches!(acks, -1..=1) =>
        {
            let txn = VerifyTxn {
                transactional_id: id.0.to_string(),
                producer_id,
                producer_epoch,
            };
            Some(verify(broker, &request, &txn, version).await)
        }
        _ => None,
    };
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let mut pending = Vec::new();
    for topic in request.topic_data {
        let name = topic.name.0.to_string();
        let topic_index = responses.len();
        let unknown_id = unknown_ids.contains(&topic_index);
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
                if unknown_id {
                    return out.with_error_code(ResponseError::UnknownTopicId.code());
                }
                let Some(partition) = broker.partition(&name, p.index) else {
                    return out.with_error_code(super::not_served_error(broker, &name, p.index));
                };
                let txn_verification = match &verification {
                    None => TxnVerification::Off,
                    Some(verified) => match verified.get(&(name.clone(), p.index)) {
                        Some(Err(code)) => {
                            debug!(topic = %name, partition = p.index, code, "transactional produce not verified");
                            return out.with_error_code(*code).with_error_message(Some(
                                StrBytes::from_static_str(
                                    "Unable to verify the partition has been added to the transaction",
                                ),
                            ));
                        }
                        Some(Ok(guard)) => TxnVerification::Required(Some(*guard)),
                        None => TxnVerification::Required(None),
                    },
                };
                let records = p.records.unwrap_or_default();
                let started = std::time::Instant::now();
                let appended = partition.replica.append_verified(
                    &partition.log,
                    &records,
                    acks,
                    crate::log::now_ms(),
                    txn_verification,
                );
                match appended {
                    Ok(appended) => {
                        let info = appended.outcome.info();
                        if let AppendOutcome::Appended(_) = appended.outcome {
                            broker
                                .metrics
                                .produce_append
                                .observe(started.elapsed().as_secs_f64());
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
                .with_topic_id(topic.topic_id)
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

/// The (producer id, epoch) of every transactional batch in the request (v3+ requests carry
/// one batch per partition; its header is at the same place in every batch).
fn transactional_producers(request: &ProduceRequest) -> Vec<(i64, i16)> {
    request
        .topic_data
        .iter()
        .flat_map(|t| t.partition_data.iter())
        .filter_map(|p| p.records.as_deref())
        .filter_map(|records| BatchHeader::parse(records).ok())
        .filter(|h| h.is_transactional())
        .map(|h| (h.producer_id, h.producer_epoch))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Per partition with a transactional batch that opens its producer's transaction here:
/// the guard to append with, or the error code the producer gets. Partitions not in the map
/// need no verification (their transaction is open, or they are not served here).
type Verified = HashMap<(String, i32), Result<VerificationGuard, i16>>;

/// Starts the verification of every partition where the request's transactional batch would
/// open the producer's transaction, and asks the coordinator about them in one go.
async fn verify(
    broker: &Broker,
    request: &ProduceRequest,
    txn: &VerifyTxn,
    version: i16,
) -> Verified {
    let now = crate::log::now_ms();
    let mut guards = HashMap::new();
    for topic in &request.topic_data {
        let name = topic.name.0.as_str();
        for p in &topic.partition_data {
            let transactional = p
                .records
                .as_deref()
                .and_then(|r| BatchHeader::parse(r).ok())
                .is_some_and(|h| h.is_transactional());
            if !transactional {
                continue;
            }
            // Elsewhere the append answers NOT_LEADER_OR_FOLLOWER; no need to ask.
            let Some(partition) = broker
                .partition(name, p.index)
                .filter(|partition| partition.replica.is_leader())
            else {
                continue;
            };
            let guard = partition
                .log
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .start_txn_verification(txn.producer_id, now);
            if let Some(guard) = guard {
                guards.insert((name.to_owned(), p.index), guard);
            }
        }
    }
    if guards.is_empty() {
        return Verified::new();
    }
    let partitions: Vec<(String, i32)> = guards.keys().cloned().collect();
    let answers = txn_verify::verify(broker, txn, partitions).await;
    answers
        .into_iter()
        .map(|(tp, error)| {
            let result = match error {
                None => Ok(guards[&tp]),
                Some(error) => Err(verification_error(error, version).code()),
            };
            (tp, result)
        })
        .collect()
}

/// What a producer is told when the coordinator did not verify its partition (see the
/// module docs).
fn verification_error(error: ResponseError, version: i16) -> ResponseError {
    match error {
        // Retriable for every producer, and no metadata refresh: Kafka's choice.
        ResponseError::NotCoordinator
        | ResponseError::CoordinatorNotAvailable
        | ResponseError::CoordinatorLoadInProgress
        | ResponseError::ConcurrentTransactions
        | ResponseError::NetworkException => ResponseError::NotEnoughReplicas,
        // Produce v11 (KIP-890 part 2's clients) knows TRANSACTION_ABORTABLE.
        ResponseError::TransactionAbortable if version <= 10 => ResponseError::InvalidTxnState,
        ResponseError::ProducerFenced => ResponseError::InvalidProducerEpoch,
        other => other,
    }
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
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partitions)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

/// Fills in the name of each topic a v13+ request names by id; returns the indexes of the
/// topics whose id is unknown (their name stays empty).
fn name_topics_by_id(broker: &Broker, request: &mut ProduceRequest) -> BTreeSet<usize> {
    let metadata = broker.metadata();
    let mut unknown = BTreeSet::new();
    for (index, topic) in request.topic_data.iter_mut().enumerate() {
        match metadata.topic_by_id(TopicId(topic.topic_id)) {
            Some(known) => {
                topic.name = TopicName(StrBytes::from_string(known.name.as_str().to_owned()))
            }
            None => {
                unknown.insert(index);
            }
        }
    }
    unknown
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_answers_reach_the_producer_as_kafka_translates_them() {
        for busy in [
            ResponseError::NotCoordinator,
            ResponseError::CoordinatorNotAvailable,
            ResponseError::CoordinatorLoadInProgress,
            ResponseError::ConcurrentTransactions,
            ResponseError::NetworkException,
        ] {
            for version in [3, 10, 11, 12] {
                assert_eq!(
                    verification_error(busy, version),
                    ResponseError::NotEnoughReplicas,
                    "{busy:?} v{version}"
                );
            }
        }
        assert_eq!(
            verification_error(ResponseError::TransactionAbortable, 10),
            ResponseError::InvalidTxnState
        );
        assert_eq!(
            verification_error(ResponseError::TransactionAbortable, 11),
            ResponseError::TransactionAbortable
        );
        assert_eq!(
            verification_error(ResponseError::ProducerFenced, 12),
            ResponseError::InvalidProducerEpoch
        );
        for passed in [
            ResponseError::InvalidProducerEpoch,
            ResponseError::InvalidProducerIdMapping,
            ResponseError::InvalidTxnState,
        ] {
            assert_eq!(verification_error(passed, 9), passed);
        }
    }
}
