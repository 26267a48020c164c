//! AddPartitionsToTxn (v0-4): a transactional producer adds partitions to its open
//! transaction before writing to them.
//!
//! v0-3 come from clients and carry one transaction; v4 is the batched form brokers use
//! (each transaction may be `verify_only`, KIP-890's check that a partition is already in
//! the transaction). As Kafka's `handleAddPartitionsToTxnRequest`: if any partition does not
//! exist, nothing is added — those partitions get UNKNOWN_TOPIC_OR_PARTITION and the rest
//! OPERATION_NOT_ATTEMPTED. PRODUCER_FENCED is answered INVALID_PRODUCER_EPOCH below v2.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::coordinator::txn::AddPartitionsParams;

pub(super) async fn handle(
    broker: &Broker,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if version < 4 {
        let transaction = AddPartitionsToTxnTransaction::default()
            .with_transactional_id(request.v3_and_below_transactional_id)
            .with_producer_id(request.v3_and_below_producer_id)
            .with_producer_epoch(request.v3_and_below_producer_epoch)
            .with_topics(request.v3_and_below_topics);
        let result = add(broker, transaction, version).await;
        return AddPartitionsToTxnResponse::default()
            .with_results_by_topic_v3_and_below(result.topic_results);
    }
    let mut results = Vec::with_capacity(request.transactions.len());
    for transaction in request.transactions {
        results.push(add(broker, transaction, version).await);
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

async fn add(
    broker: &Broker,
    transaction: AddPartitionsToTxnTransaction,
    version: i16,
) -> AddPartitionsToTxnResult {
    let transactional_id = transaction.transactional_id.clone();
    let partitions = flatten(&transaction.topics);
    let metadata = broker.metadata();
    let exists = |(topic, partition): &(String, i32)| {
        metadata
            .topic(topic)
            .is_some_and(|t| *partition >= 0 && (*partition as usize) < t.partitions.len())
    };
    let codes: Vec<((String, i32), i16)> = if partitions.iter().all(exists) {
        let params = AddPartitionsParams {
            transactional_id: transactional_id.0.to_string(),
            producer_id: transaction.producer_id.0,
            producer_epoch: transaction.producer_epoch,
            partitions: partitions.clone(),
            verify_only: transaction.verify_only,
        };
        match broker.transactions.add_partitions(broker, params).await {
            Ok(results) => results
                .into_iter()
                .map(|(tp, error)| (tp, error.map_or(0, |e| code(e, version))))
                .collect(),
            Err(error) => partitions
                .into_iter()
                .map(|tp| (tp, code(error, version)))
                .collect(),
        }
    } else {
        partitions
            .into_iter()
            .map(|tp| {
                let code = if exists(&tp) {
                    ResponseError::OperationNotAttempted.code()
                } else {
                    ResponseError::UnknownTopicOrPartition.code()
                };
                (tp, code)
            })
            .collect()
    };
    result(transactional_id, codes)
}

fn code(error: ResponseError, version: i16) -> i16 {
    match error {
        ResponseError::ProducerFenced if version < 2 => ResponseError::InvalidProducerEpoch.code(),
        other => other.code(),
    }
}

fn flatten(topics: &[AddPartitionsToTxnTopic]) -> Vec<(String, i32)> {
    let mut partitions: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| (t.name.0.to_string(), p)))
        .collect();
    partitions.sort();
    partitions.dedup();
    partitions
}

fn result(
    transactional_id: TransactionalId,
    codes: Vec<((String, i32), i16)>,
) -> AddPartitionsToTxnResult {
    let mut by_topic: BTreeMap<String, Vec<AddPartitionsToTxnPartitionResult>> = BTreeMap::new();
    for ((topic, partition), code) in codes {
        by_topic.entry(topic).or_default().push(
            AddPartitionsToTxnPartitionResult::default()
                .with_partition_index(partition)
                .with_partition_error_code(code),
        );
    }
    AddPartitionsToTxnResult::default()
        .with_transactional_id(transactional_id)
        .with_topic_results(
            by_topic
                .into_iter()
                .map(|(name, partitions)| {
                    AddPartitionsToTxnTopicResult::default()
                        .with_name(TopicName(StrBytes::from_string(name)))
                        .with_results_by_partition(partitions)
                })
                .collect(),
        )
}
