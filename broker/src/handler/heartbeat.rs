//! Heartbeat (v0-4): keeps a member's session alive and tells it when to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::broker::Broker;
use crate::coordinator::group::wire;

pub(super) fn handle(broker: &Broker, request: HeartbeatRequest) -> HeartbeatResponse {
    let error = broker
        .groups
        .heartbeat(broker, &wire::heartbeat_params(&request));
    wire::heartbeat_response(error)
}
