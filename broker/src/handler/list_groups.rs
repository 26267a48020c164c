//! ListGroups (v0-5): every group coordinated here, filtered by state (v4+) and type (v5+).

use kafka_protocol::messages::{ListGroupsRequest, ListGroupsResponse};

use crate::broker::Broker;
use crate::coordinator::group::wire;

pub(super) fn handle(broker: &Broker, request: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_string())
        .collect();
    let types: Vec<String> = request.types_filter.iter().map(|s| s.to_string()).collect();
    let (error, groups) = broker.groups.list_groups(&states, &types);
    ListGroupsResponse::default()
        .with_error_code(error.map_or(0, |e| e.code()))
        .with_groups(groups.into_iter().map(wire::listed_group).collect())
}
