//! InitProducerId: producer ids from a block the controller allocated to this broker.
//!
//! - No transactional id, no producer id (`-1`/`-1`): the next id of the block, epoch 0. An
//!   exhausted block is replaced by a new one from [`weir_controller::Controller`], committed
//!   before any of its ids is handed out, so no id is ever given twice (ids of a block left
//!   over at shutdown are skipped).
//! - No transactional id, v3+ with the producer's current id and epoch (KIP-360): the same id
//!   with the epoch bumped, which fences the producer's older in-flight batches on every
//!   partition (a new epoch starts at sequence 0); once the epoch is exhausted
//!   (`>= i16::MAX - 1`, Kafka's `isEpochExhausted`) a new id with epoch 0. The id must be one
//!   this cluster handed out, else INVALID_REQUEST. (Kafka's own broker gives non-transactional
//!   requests a new id whatever they carry; Java clients bump idempotent epochs locally and
//!   librdkafka sends no id, so both behave the same with either answer.)
//! - Only one of producer id and epoch set: INVALID_REQUEST, as Kafka.
//! - A transactional id: the transaction coordinator of that id answers (it must be this
//!   broker: NOT_COORDINATOR otherwise). It bumps the id's epoch, fencing older instances, and
//!   first aborts a transaction the previous instance left open (CONCURRENT_TRANSACTIONS
//!   until that is done; the client retries). An empty transactional id is INVALID_REQUEST.
//!   PRODUCER_FENCED is answered INVALID_PRODUCER_EPOCH below v4, as Kafka does for clients
//!   that predate the code.

use std::ops::Range;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
use tracing::{debug, info};

use crate::broker::Broker;
use crate::coordinator::txn::InitProducerIdParams;
use crate::kafka_error::controller_error_code;

/// Producer ids asked of the controller at a time (Kafka's `PRODUCER_ID_BLOCK_SIZE`).
pub(crate) const PRODUCER_ID_BLOCK_SIZE: u32 = 1000;

/// The ids of this broker's current block not yet handed out.
#[derive(Debug, Default)]
pub(crate) struct ProducerIdBlock {
    unused: Range<i64>,
}

/// What to answer a request without a transactional id.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// This producer id and epoch.
    Grant { producer_id: i64, epoch: i16 },
    /// The block is used up: refill it, then decide again.
    Refill,
    /// An error code.
    Refuse(i16),
}

impl ProducerIdBlock {
    /// Replaces the (used up) block with freshly allocated ids.
    fn refill(&mut self, ids: Range<i64>) {
        self.unused = ids;
    }

    /// Whether `id` was handed out by this cluster: below the controller's allocation mark
    /// `allocated_below` and not among this block's unused ids.
    fn was_handed_out(&self, id: i64, allocated_below: i64) -> bool {
        (0..allocated_below).contains(&id) && !self.unused.contains(&id)
    }

    /// The answer to a non-transactional request carrying `producer_id` and `epoch` (`-1` when
    /// absent). Takes an id from the block when it grants a new one.
    fn decide(&mut self, producer_id: i64, epoch: i16, allocated_below: i64) -> Decision {
        match (producer_id, epoch) {
            (-1, -1) => {}
            (-1, _) | (_, -1) => return Decision::Refuse(ResponseError::InvalidRequest.code()),
            _ if epoch < 0 || !self.was_handed_out(producer_id, allocated_below) => {
                return Decision::Refuse(ResponseError::InvalidRequest.code());
            }
            _ if epoch < i16::MAX - 1 => {
                return Decision::Grant {
                    producer_id,
                    epoch: epoch + 1,
                };
            }
            _ => {} // epoch exhausted: a new id
        }
        match self.unused.next() {
            Some(producer_id) => Decision::Grant {
                producer_id,
                epoch: 0,
            },
            None => Decision::Refill,
        }
    }
}

pub(super) async fn handle(
    broker: &Broker,
    request: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default();
    match init(broker, &request, version).await {
        Ok((producer_id, epoch)) => response
            .with_producer_id(producer_id.into())
            .with_producer_epoch(epoch),
        Err(code) => response
            .with_error_code(code)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1),
    }
}

async fn init(
    broker: &Broker,
    request: &InitProducerIdRequest,
    version: i16,
) -> Result<(i64, i16), i16> {
    if let Some(transactional_id) = &request.transactional_id {
        return init_transactional(broker, transactional_id.as_str(), request, version).await;
    }
    decide(broker, request.producer_id.0, request.producer_epoch).await
}

async fn init_transactional(
    broker: &Broker,
    transactional_id: &str,
    request: &InitProducerIdRequest,
    version: i16,
) -> Result<(i64, i16), i16> {
    if transactional_id.is_empty() {
        return Err(ResponseError::InvalidRequest.code());
    }
    match (request.producer_id.0, request.producer_epoch) {
        (-1, -1) => {}
        (-1, _) | (_, -1) => return Err(ResponseError::InvalidRequest.code()),
        _ => {}
    }
    // An id the coordinator uses only for a new transactional id or an exhausted epoch.
    let fresh_producer_id = fresh_producer_id(broker).await?;
    let params = InitProducerIdParams {
        transactional_id: transactional_id.to_owned(),
        transaction_timeout_ms: request.transaction_timeout_ms,
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
    };
    broker
        .transactions
        .init_producer_id(broker, params, fresh_producer_id)
        .await
        .map_err(|error| {
            debug!(transactional_id, ?error, "InitProducerId refused");
            match error {
                ResponseError::ProducerFenced if version < 4 => {
                    ResponseError::InvalidProducerEpoch.code()
                }
                other => other.code(),
            }
        })
}

/// An unused producer id from this broker's block (a new block when it is used up).
pub(super) async fn fresh_producer_id(broker: &Broker) -> Result<i64, i16> {
    decide(broker, -1, -1).await.map(|(id, _)| id)
}

/// A non-transactional answer: a new id, or the given one with its epoch bumped.
async fn decide(broker: &Broker, producer_id: i64, producer_epoch: i16) -> Result<(i64, i16), i16> {
    let mut block = broker.producer_ids.lock().await;
    loop {
        let allocated_below = broker.metadata().next_producer_id;
        match block.decide(producer_id, producer_epoch, allocated_below) {
            Decision::Grant { producer_id, epoch } => return Ok((producer_id, epoch)),
            Decision::Refuse(code) => {
                debug!(
                    producer_id,
                    epoch = producer_epoch,
                    code,
                    "InitProducerId refused"
                );
                return Err(code);
            }
            Decision::Refill => {
                let ids = broker
                    .control
                    .allocate_producer_ids(
                        broker.link.broker_id(),
                        broker.link.epoch(),
                        PRODUCER_ID_BLOCK_SIZE,
                    )
                    .await
                    .map_err(|e| controller_error_code(&e))?;
                info!(
                    first = ids.start,
                    end = ids.end,
                    "allocated a block of producer ids"
                );
                block.refill(ids);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVALID_REQUEST: i16 = 42;

    fn grant(producer_id: i64, epoch: i16) -> Decision {
        Decision::Grant { producer_id, epoch }
    }

    #[test]
    fn new_producers_get_the_blocks_ids_in_order_with_epoch_zero_then_a_refill() {
        let mut block = ProducerIdBlock::default();
        assert_eq!(block.decide(-1, -1, 0), Decision::Refill);
        block.refill(1000..1003);
        assert_eq!(block.decide(-1, -1, 1003), grant(1000, 0));
        assert_eq!(block.decide(-1, -1, 1003), grant(1001, 0));
        assert_eq!(block.decide(-1, -1, 1003), grant(1002, 0));
        assert_eq!(block.decide(-1, -1, 1003), Decision::Refill);
    }

    #[test]
    fn a_known_producer_gets_its_epoch_bumped_until_it_is_exhausted() {
        let mut block = ProducerIdBlock::default();
        block.refill(10..20);
        assert_eq!(block.decide(-1, -1, 20), grant(10, 0));
        assert_eq!(block.decide(10, 0, 20), grant(10, 1));
        assert_eq!(block.decide(10, 41, 20), grant(10, 42));
        assert_eq!(block.decide(10, i16::MAX - 2, 20), grant(10, i16::MAX - 1));
        // Exhausted epochs get a new id, as Kafka's coordinator gives.
        assert_eq!(block.decide(10, i16::MAX - 1, 20), grant(11, 0));
        assert_eq!(block.decide(11, i16::MAX, 20), grant(12, 0));
        // Ids of earlier blocks (earlier runs) are known too.
        assert_eq!(block.decide(3, 7, 20), grant(3, 8));
    }

    #[test]
    fn ids_never_handed_out_and_half_given_pairs_are_invalid_requests() {
        let mut block = ProducerIdBlock::default();
        block.refill(10..20);
        assert_eq!(block.decide(-1, -1, 20), grant(10, 0));
        for (id, epoch) in [
            (11, 0),
            (19, 3),
            (20, 0),
            (5000, 1),
            (-5, 0),
            (10, -2),
            (-1, 0),
            (10, -1),
        ] {
            assert_eq!(
                block.decide(id, epoch, 20),
                Decision::Refuse(INVALID_REQUEST),
                "{id}/{epoch}"
            );
        }
        assert_eq!(
            block.decide(-1, -1, 20),
            grant(11, 0),
            "refusals take no id"
        );
    }
}
