//! JoinGroup (v0-9): parked until the group's join phase completes (see `coordinator::group`).

use std::net::SocketAddr;

use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, RequestHeader};

use crate::broker::Broker;
use crate::coordinator::group::wire;

pub(super) async fn handle(
    broker: &Broker,
    header: &RequestHeader,
    peer: SocketAddr,
    request: JoinGroupRequest,
) -> JoinGroupResponse {
    let version = header.request_api_version;
    let client_id = header.client_id.as_deref().unwrap_or("");
    // Kafka shows a member's host as `/` and its address.
    let client_host = format!("/{}", peer.ip());
    let params = wire::join_group_params(&request, version, client_id, &client_host);
    let result = broker.groups.join_group(broker, params).await;
    wire::join_group_response(result, version)
}
