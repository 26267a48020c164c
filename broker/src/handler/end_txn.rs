//! EndTxn (v0-5): commits or aborts the producer's transaction (two-phase: the coordinator
//! persists PrepareCommit/PrepareAbort and answers, then writes the markers and completes).
//! From v5 the client takes part in KIP-890's epoch bump: the coordinator bumps the epoch
//! when the transaction ends and answers the new one, so a late EndTxn of this transaction
//! cannot end the next. PRODUCER_FENCED is answered INVALID_PRODUCER_EPOCH below v2.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use crate::broker::Broker;
use crate::coordinator::txn::EndTxnParams;

pub(super) async fn handle(
    broker: &Broker,
    request: EndTxnRequest,
    version: i16,
) -> EndTxnResponse {
    let params = EndTxnParams {
        transactional_id: request.transactional_id.0.to_string(),
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        commit: request.committed,
        epoch_bump: version >= 5,
    };
    // An epoch-bumping EndTxn may exhaust the epoch and need a new producer id.
    let fresh = if params.epoch_bump {
        match super::init_producer_id::fresh_producer_id(broker).await {
            Ok(id) => Some(id),
            Err(code) => {
                return EndTxnResponse::default()
                    .with_error_code(code)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1);
            }
        }
    } else {
        None
    };
    match broker.transactions.end_txn(broker, params, fresh).await {
        Ok((producer_id, epoch)) => EndTxnResponse::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch),
        Err(error) => {
            let code = match error {
                ResponseError::ProducerFenced if version < 2 => {
                    ResponseError::InvalidProducerEpoch.code()
                }
                other => other.code(),
            };
            EndTxnResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }
    }
}
