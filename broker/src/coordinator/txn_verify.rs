//! Transaction verification, the partition leader's side (KIP-890 part 1, Kafka's
//! `AddPartitionsToTxnManager`): before a transactional produce opens a transaction in a
//! partition, the leader asks the transactional id's coordinator whether the partition is in
//! the producer's ongoing transaction — a local call when this broker is the coordinator,
//! else one batched AddPartitionsToTxn v4 `verify_only` request to the coordinator's broker.
//!
//! Every partition gets `None` (in the transaction) or the coordinator's error as it came
//! (TRANSACTION_ABORTABLE when not in the transaction, PRODUCER_FENCED, NOT_COORDINATOR…);
//! the Produce handler translates them for the producer. A coordinator that cannot be found
//! is COORDINATOR_NOT_AVAILABLE and one that cannot be reached NETWORK_EXCEPTION, as Kafka's
//! manager answers; a top-level CLUSTER_AUTHORIZATION_FAILED is INVALID_TXN_STATE, as there.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ProducerId, TopicName,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use super::txn::AddPartitionsParams;
use super::txn_service::{TRANSACTION_STATE_TOPIC, partition_for_transactional_id};
use crate::broker::Broker;

/// How long connecting to the coordinator and its answer may take (Kafka's manager uses
/// `request.timeout.ms`, 30 s by default).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The producer whose partitions are verified.
#[derive(Clone, Debug)]
pub(crate) struct VerifyTxn {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// Asks `txn`'s coordinator about `partitions`; one answer per partition, in order.
pub(crate) async fn verify(
    broker: &Broker,
    txn: &VerifyTxn,
    partitions: Vec<(String, i32)>,
) -> Vec<((String, i32), Option<ResponseError>)> {
    let all = |partitions: Vec<(String, i32)>, error: ResponseError| {
        partitions.into_iter().map(|tp| (tp, Some(error))).collect()
    };
    let coordinator = {
        let metadata = broker.metadata();
        metadata.topic(TRANSACTION_STATE_TOPIC).and_then(|topic| {
            let shard = partition_for_transactional_id(
                &txn.transactional_id,
                topic.partitions.len() as u32,
            );
            topic.partitions.get(shard as usize).and_then(|p| p.leader)
        })
    };
    let Some(coordinator) = coordinator else {
        return all(partitions, ResponseError::CoordinatorNotAvailable);
    };
    if coordinator.0 == broker.config.node_id {
        let params = AddPartitionsParams {
            transactional_id: txn.transactional_id.clone(),
            producer_id: txn.producer_id,
            producer_epoch: txn.producer_epoch,
            partitions: partitions.clone(),
            verify_only: true,
        };
        return match broker.transactions.add_partitions(broker, params).await {
            Ok(results) => answers(partitions, results),
            Err(error) => all(partitions, error),
        };
    }
    match remote(broker, coordinator.0, txn, &partitions).await {
        Ok(results) => answers(partitions, results),
        Err(error) => all(partitions, error),
    }
}

/// Lines the coordinator's answers up with the asked partitions; one it did not answer for
/// is unverified (retriable).
fn answers(
    partitions: Vec<(String, i32)>,
    results: Vec<((String, i32), Option<ResponseError>)>,
) -> Vec<((String, i32), Option<ResponseError>)> {
    let results: BTreeMap<(String, i32), Option<ResponseError>> = results.into_iter().collect();
    partitions
        .into_iter()
        .map(|tp| {
            let answer = results
                .get(&tp)
                .copied()
                .unwrap_or(Some(ResponseError::NetworkException));
            (tp, answer)
        })
        .collect()
}

/// One AddPartitionsToTxn v4 `verify_only` request to broker `coordinator`.
async fn remote(
    broker: &Broker,
    coordinator: i32,
    txn: &VerifyTxn,
    partitions: &[(String, i32)],
) -> Result<Vec<((String, i32), Option<ResponseError>)>, ResponseError> {
    let channels = &broker.transactions.channels;
    let Some(mut connection) = channels.take(broker, coordinator, "txn-verification").await else {
        return Err(ResponseError::NetworkException);
    };
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        topics.entry(topic).or_default().push(*partition);
    }
    let transaction = AddPartitionsToTxnTransaction::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(
            txn.transactional_id.clone(),
        )))
        .with_producer_id(ProducerId(txn.producer_id))
        .with_producer_epoch(txn.producer_epoch)
        .with_verify_only(true)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, indexes)| {
                    AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(StrBytes::from_string(name.to_owned())))
                        .with_partitions(indexes)
                })
                .collect(),
        );
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![transaction]);
    let sent = match connection.version(ApiKey::AddPartitionsToTxn, 4, 5) {
        Ok(version) => {
            tokio::time::timeout(REQUEST_TIMEOUT, connection.send(version, &request)).await
        }
        Err(e) => Ok(Err(e)),
    };
    let response: AddPartitionsToTxnResponse = match sent {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            debug!(coordinator, error = %e, "AddPartitionsToTxn (verify only) failed");
            return Err(ResponseError::NetworkException);
        }
        Err(_) => {
            debug!(coordinator, "AddPartitionsToTxn (verify only) timed out");
            return Err(ResponseError::NetworkException);
        }
    };
    channels.put(coordinator, connection).await;
    if let Some(error) = ResponseError::try_from_code(response.error_code) {
        return Err(match error {
            ResponseError::ClusterAuthorizationFailed => ResponseError::InvalidTxnState,
            other => other,
        });
    }
    let mut results = Vec::with_capacity(partitions.len());
    for result in response.results_by_transaction {
        for topic in result.topic_results {
            for p in topic.results_by_partition {
                results.push((
                    (topic.name.0.to_string(), p.partition_index),
                    ResponseError::try_from_code(p.partition_error_code),
                ));
            }
        }
    }
    Ok(results)
}
