//! FindCoordinator (v0-4, batched keys from v4).
//!
//! The group and transaction coordinators are not part of this release, so every key is
//! answered COORDINATOR_NOT_AVAILABLE — what Kafka answers while a coordinator is not loaded,
//! and what clients retry on. The API is advertised because clients read its presence:
//! librdkafka enables LZ4 only for brokers that list FindCoordinator from v0.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId as WireBrokerId, FindCoordinatorRequest, FindCoordinatorResponse,
};
use kafka_protocol::protocol::StrBytes;

const NOT_AVAILABLE: &str =
    "the group and transaction coordinators are not available in this release";

pub(super) fn handle(request: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let code = ResponseError::CoordinatorNotAvailable.code();
    let message = || Some(StrBytes::from_static_str(NOT_AVAILABLE));
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(WireBrokerId(-1))
                    .with_port(-1)
                    .with_error_code(code)
                    .with_error_message(message())
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_error_message(if version >= 1 { message() } else { None })
        .with_node_id(WireBrokerId(-1))
        .with_port(-1)
}
