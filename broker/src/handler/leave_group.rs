//! LeaveGroup (v0-5; batched members from v3).

use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use crate::broker::Broker;
use crate::coordinator::group::wire;

pub(super) fn handle(
    broker: &Broker,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let result = broker
        .groups
        .leave_group(broker, &wire::leave_group_params(&request, version));
    wire::leave_group_response(result, version)
}
