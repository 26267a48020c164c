//! SyncGroup (v0-5): the leader hands in the assignment; followers wait for it.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use crate::broker::Broker;
use crate::coordinator::group::wire;

pub(super) async fn handle(broker: &Broker, request: SyncGroupRequest) -> SyncGroupResponse {
    let result = broker
        .groups
        .sync_group(broker, wire::sync_group_params(&request))
        .await;
    wire::sync_group_response(result)
}
