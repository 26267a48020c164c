//! DescribeTransactions (v0): the coordinator's state of each transactional id asked for
//! (Kafka's state names, timeout, start time, producer id and epoch, partitions). An id this
//! broker does not coordinate is NOT_COORDINATOR, an unknown one TRANSACTIONAL_ID_NOT_FOUND.

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

pub(super) fn handle(
    broker: &Broker,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = request
        .transactional_ids
        .into_iter()
        .map(|id| {
            let state = TransactionState::default().with_transactional_id(id.clone());
            match broker.transactions.describe(broker, id.0.as_str()) {
                Ok(d) => state
                    .with_transaction_state(StrBytes::from_static_str(d.state))
                    .with_transaction_timeout_ms(d.transaction_timeout_ms)
                    .with_transaction_start_time_ms(d.transaction_start_time_ms)
                    .with_producer_id(ProducerId(d.producer_id))
                    .with_producer_epoch(d.producer_epoch)
                    .with_topics(
                        d.topics
                            .into_iter()
                            .map(|(name, partitions)| {
                                TopicData::default()
                                    .with_topic(TopicName(StrBytes::from_string(name)))
                                    .with_partitions(partitions)
                            })
                            .collect(),
                    ),
                Err(error) => state
                    .with_error_code(error.code())
                    .with_transaction_state(StrBytes::from_static_str(""))
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
                    .with_transaction_timeout_ms(-1)
                    .with_transaction_start_time_ms(-1),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
