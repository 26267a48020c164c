//! ListTransactions (v0-1): the transactions of the `__transaction_state` partitions this
//! broker coordinates, filtered by state, producer id and (v1) how long they have been open.
//! State filters that name no state are echoed in `unknown_state_filters`, as Kafka does.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

pub(super) fn handle(
    broker: &Broker,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let states: Vec<String> = request
        .state_filters
        .iter()
        .map(|s| s.to_string())
        .collect();
    let producer_ids: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let (error, listed, unknown) =
        broker
            .transactions
            .list(&states, &producer_ids, request.duration_filter);
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown.into_iter().map(StrBytes::from_string).collect())
        .with_error_code(error.map_or(0, |e| e.code()))
        .with_transaction_states(
            listed
                .into_iter()
                .map(|t| {
                    TransactionState::default()
                        .with_transactional_id(TransactionalId(StrBytes::from_string(
                            t.transactional_id,
                        )))
                        .with_producer_id(ProducerId(t.producer_id))
                        .with_transaction_state(StrBytes::from_static_str(t.state))
                })
                .collect(),
        )
}
