//! AddOffsetsToTxn (v0-4): adds the group's `__consumer_offsets` partition to the
//! producer's transaction, before TxnOffsetCommit sends the offsets to the group
//! coordinator. `__consumer_offsets` is created if it does not exist yet. PRODUCER_FENCED is
//! answered INVALID_PRODUCER_EPOCH below v2, as Kafka does.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use tracing::warn;

use crate::broker::Broker;
use crate::coordinator::group::{GroupId, partition_for};
use crate::coordinator::group_service::{OFFSETS_TOPIC, create_offsets_topic};
use crate::coordinator::txn::AddOffsetsParams;

pub(super) async fn handle(
    broker: &Broker,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let error = add(broker, request).await.err();
    let code = match error {
        None => 0,
        Some(ResponseError::ProducerFenced) if version < 2 => {
            ResponseError::InvalidProducerEpoch.code()
        }
        Some(other) => other.code(),
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}

async fn add(broker: &Broker, request: AddOffsetsToTxnRequest) -> Result<(), ResponseError> {
    if broker.metadata().topic(OFFSETS_TOPIC).is_none()
        && let Err(e) = create_offsets_topic(broker).await
    {
        warn!(error = %e, "creating __consumer_offsets failed");
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    let partitions = broker
        .metadata()
        .topic(OFFSETS_TOPIC)
        .map(|t| t.partitions.len() as u32)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    let group = GroupId::from(request.group_id.0.as_str());
    if group.is_empty() {
        return Err(ResponseError::InvalidGroupId);
    }
    let params = AddOffsetsParams {
        transactional_id: request.transactional_id.0.to_string(),
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        offsets_partition: partition_for(&group, partitions) as i32,
    };
    broker.transactions.add_offsets(broker, params).await
}
