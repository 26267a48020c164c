//! OffsetCommit (v2-9): answered once the offsets are in `__consumer_offsets`.

use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use crate::broker::Broker;
use crate::coordinator::group::wire;

pub(super) async fn handle(
    broker: &Broker,
    request: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let params = wire::offset_commit_params(&request, version);
    let result = broker.groups.commit_offsets(broker, params).await;
    wire::offset_commit_response(result)
}
