//! DescribeGroups (v0-6): state, protocol and members of each group.

use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use crate::broker::Broker;
use crate::coordinator::group::{GroupId, wire};

pub(super) fn handle(
    broker: &Broker,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .into_iter()
        .map(|id| {
            let group = GroupId::from(id.as_str());
            match broker.groups.describe_group(broker, &group) {
                Ok(description) => wire::described_group(&group, description, version),
                Err(error) => DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(error.code()),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
