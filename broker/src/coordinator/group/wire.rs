//! Conversions between `kafka-protocol` messages and the coordinator's params and results,
//! applying the version-dependent rules in one place:
//!
//! - JoinGroup v0 has no rebalance timeout (the session timeout is used); v4+ requires a
//!   known member id; v9+ lets a restarted static leader skip the assignment; before v7 the
//!   protocol name is not nullable.
//! - LeaveGroup before v3 names one member and reports its error at the top level.
//! - DescribeGroups v6+ answers GROUP_ID_NOT_FOUND for unknown groups; older versions report
//!   them as Dead without an error.
//! - TxnOffsetCommit names a member and generation from v3 and a leader epoch from v2; before
//!   v2 COORDINATOR_LOAD_IN_PROGRESS is answered COORDINATOR_NOT_AVAILABLE (clients before
//!   Kafka 2.0 do not retry it, KAFKA-7296).

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup as WireListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    GroupId as WireGroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest,
    OffsetCommitResponse, SyncGroupRequest, SyncGroupResponse, TopicName, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::api::{
    CommitPartition, CommitTopic, GroupDescription, HeartbeatParams, JoinGroupParams,
    JoinGroupResult, LeaveGroupParams, LeaveGroupResult, LeavingMember, ListedGroup,
    OffsetCommitParams, OffsetCommitResult, Protocol, SyncGroupParams, SyncGroupResult,
    TxnOffsetCommitParams, TxnProducer,
};
use super::ids::{GenerationId, GroupId, InstanceId, MemberId};
use super::state::GroupState;

fn code(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |e| e.code())
}

fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn instance(id: &Option<StrBytes>) -> Option<InstanceId> {
    id.as_ref().map(|s| InstanceId::from(s.as_str()))
}

pub fn join_group_params(
    request: &JoinGroupRequest,
    version: i16,
    client_id: &str,
    client_host: &str,
) -> JoinGroupParams {
    JoinGroupParams {
        group_id: GroupId::from(request.group_id.as_str()),
        member_id: MemberId::from(request.member_id.as_str()),
        group_instance_id: instance(&request.group_instance_id),
        client_id: client_id.to_owned(),
        client_host: client_host.to_owned(),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: if version == 0 {
            request.session_timeout_ms
        } else {
            request.rebalance_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata.clone(),
            })
            .collect(),
        reason: request.reason.as_ref().map(|r| r.to_string()),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    }
}

pub fn join_group_response(result: JoinGroupResult, version: i16) -> JoinGroupResponse {
    let protocol_name = match result.protocol_name {
        Some(name) => Some(str_bytes(name)),
        // Not nullable before v7.
        None if version < 7 => Some(StrBytes::default()),
        None => None,
    };
    JoinGroupResponse::default()
        .with_error_code(code(result.error))
        .with_generation_id(result.generation_id.0)
        .with_protocol_type(result.protocol_type.map(str_bytes))
        .with_protocol_name(protocol_name)
        .with_leader(str_bytes(result.leader.0))
        .with_skip_assignment(version >= 9 && result.skip_assignment)
        .with_member_id(str_bytes(result.member_id.0))
        .with_members(
            result
                .members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(m.member_id.0))
                        .with_group_instance_id(m.group_instance_id.map(|i| str_bytes(i.0)))
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}

pub fn sync_group_params(request: &SyncGroupRequest) -> SyncGroupParams {
    SyncGroupParams {
        group_id: GroupId::from(request.group_id.as_str()),
        generation_id: GenerationId(request.generation_id),
        member_id: MemberId::from(request.member_id.as_str()),
        group_instance_id: instance(&request.group_instance_id),
        protocol_type: request.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: request.protocol_name.as_ref().map(|s| s.to_string()),
        assignments: request
            .assignments
            .iter()
            .map(|a: &SyncGroupRequestAssignment| {
                (MemberId::from(a.member_id.as_str()), a.assignment.clone())
            })
            .collect(),
    }
}

pub fn sync_group_response(result: SyncGroupResult) -> SyncGroupResponse {
    SyncGroupResponse::default()
        .with_error_code(code(result.error))
        .with_protocol_type(result.protocol_type.map(str_bytes))
        .with_protocol_name(result.protocol_name.map(str_bytes))
        .with_assignment(result.assignment)
}

pub fn heartbeat_params(request: &HeartbeatRequest) -> HeartbeatParams {
    HeartbeatParams {
        group_id: GroupId::from(request.group_id.as_str()),
        generation_id: GenerationId(request.generation_id),
        member_id: MemberId::from(request.member_id.as_str()),
        group_instance_id: instance(&request.group_instance_id),
    }
}

pub fn heartbeat_response(error: Option<ResponseError>) -> HeartbeatResponse {
    HeartbeatResponse::default().with_error_code(code(error))
}

pub fn leave_group_params(request: &LeaveGroupRequest, version: i16) -> LeaveGroupParams {
    let members = if version < 3 {
        vec![LeavingMember {
            member_id: MemberId::from(request.member_id.as_str()),
            group_instance_id: None,
            reason: None,
        }]
    } else {
        request
            .members
            .iter()
            .map(|m| LeavingMember {
                member_id: MemberId::from(m.member_id.as_str()),
                group_instance_id: instance(&m.group_instance_id),
                reason: m.reason.as_ref().map(|r| r.to_string()),
            })
            .collect()
    };
    LeaveGroupParams {
        group_id: GroupId::from(request.group_id.as_str()),
        members,
    }
}

pub fn leave_group_response(result: LeaveGroupResult, version: i16) -> LeaveGroupResponse {
    if version < 3 {
        let error = result
            .error
            .or_else(|| result.members.first().and_then(|m| m.error));
        return LeaveGroupResponse::default().with_error_code(code(error));
    }
    LeaveGroupResponse::default()
        .with_error_code(code(result.error))
        .with_members(
            result
                .members
                .into_iter()
                .map(|m| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(m.member_id.0))
                        .with_group_instance_id(m.group_instance_id.map(|i| str_bytes(i.0)))
                        .with_error_code(code(m.error))
                })
                .collect(),
        )
}

/// OffsetCommit v2+ (v0/v1 are not advertised).
pub fn offset_commit_params(request: &OffsetCommitRequest, version: i16) -> OffsetCommitParams {
    OffsetCommitParams {
        group_id: GroupId::from(request.group_id.as_str()),
        generation_id: GenerationId(request.generation_id_or_member_epoch),
        member_id: MemberId::from(request.member_id.as_str()),
        group_instance_id: instance(&request.group_instance_id),
        retention_time_ms: if (2..=4).contains(&version) {
            request.retention_time_ms
        } else {
            -1
        },
        topics: request
            .topics
            .iter()
            .map(|t| CommitTopic {
                name: t.name.to_string(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| CommitPartition {
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    })
                    .collect(),
            })
            .collect(),
        api_version: version,
    }
}

pub fn offset_commit_response(result: OffsetCommitResult) -> OffsetCommitResponse {
    OffsetCommitResponse::default().with_topics(
        result
            .topics
            .into_iter()
            .map(|t| {
                OffsetCommitResponseTopic::default()
                    .with_name(TopicName(str_bytes(t.name)))
                    .with_partitions(
                        t.partitions
                            .into_iter()
                            .map(|p| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition)
                                    .with_error_code(code(p.error))
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

/// TxnOffsetCommit v0+.
pub fn txn_offset_commit_params(
    request: &TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitParams {
    let v3 = version >= 3;
    TxnOffsetCommitParams {
        transactional_id: request.transactional_id.to_string(),
        group_id: GroupId::from(request.group_id.as_str()),
        producer: TxnProducer {
            producer_id: request.producer_id.0,
            producer_epoch: request.producer_epoch,
        },
        generation_id: GenerationId(if v3 { request.generation_id } else { -1 }),
        member_id: if v3 {
            MemberId::from(request.member_id.as_str())
        } else {
            MemberId::default()
        },
        group_instance_id: if v3 {
            instance(&request.group_instance_id)
        } else {
            None
        },
        topics: request
            .topics
            .iter()
            .map(|t| CommitTopic {
                name: t.name.to_string(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| CommitPartition {
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: if version >= 2 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    })
                    .collect(),
            })
            .collect(),
    }
}

pub fn txn_offset_commit_response(
    result: OffsetCommitResult,
    version: i16,
) -> TxnOffsetCommitResponse {
    let code = |error: Option<ResponseError>| match error {
        Some(ResponseError::CoordinatorLoadInProgress) if version < 2 => {
            ResponseError::CoordinatorNotAvailable.code()
        }
        other => code(other),
    };
    TxnOffsetCommitResponse::default().with_topics(
        result
            .topics
            .into_iter()
            .map(|t| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(TopicName(str_bytes(t.name)))
                    .with_partitions(
                        t.partitions
                            .into_iter()
                            .map(|p| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition)
                                    .with_error_code(code(p.error))
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

/// One DescribeGroups entry; `description` is `None` for a group the coordinator does not
/// know.
pub fn described_group(
    group_id: &GroupId,
    description: Option<GroupDescription>,
    version: i16,
) -> DescribedGroup {
    let Some(d) = description else {
        let group = DescribedGroup::default()
            .with_group_id(WireGroupId(str_bytes(group_id.0.clone())))
            .with_group_state(StrBytes::from_static_str(GroupState::Dead.name()));
        if version >= 6 {
            return group
                .with_error_code(ResponseError::GroupIdNotFound.code())
                .with_error_message(Some(str_bytes(format!("Group {group_id} not found."))));
        }
        return group;
    };
    DescribedGroup::default()
        .with_group_id(WireGroupId(str_bytes(d.group_id.0)))
        .with_group_state(StrBytes::from_static_str(d.state.name()))
        .with_protocol_type(str_bytes(d.protocol_type))
        .with_protocol_data(str_bytes(d.protocol_data))
        .with_members(
            d.members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(str_bytes(m.member_id.0))
                        .with_group_instance_id(m.group_instance_id.map(|i| str_bytes(i.0)))
                        .with_client_id(str_bytes(m.client_id))
                        .with_client_host(str_bytes(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect(),
        )
}

pub fn listed_group(group: ListedGroup) -> WireListedGroup {
    WireListedGroup::default()
        .with_group_id(WireGroupId(str_bytes(group.group_id.0)))
        .with_protocol_type(str_bytes(group.protocol_type))
        .with_group_state(StrBytes::from_static_str(group.state.name()))
        .with_group_type(StrBytes::from_static_str("classic"))
}

/// The version-0 prefix every `ConsumerProtocolSubscription` version starts with, for tests
/// and tools that build member metadata: version, topics, user data.
pub fn consumer_subscription(topics: &[&str]) -> Bytes {
    use bytes::BufMut;
    let mut buf = Vec::new();
    buf.put_i16(0);
    buf.put_i32(topics.len() as i32);
    for topic in topics {
        buf.put_i16(topic.len() as i16);
        buf.put_slice(topic.as_bytes());
    }
    buf.put_i32(-1); // null user data
    Bytes::from(buf)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::leave_group_request::MemberIdentity;
    use kafka_protocol::messages::{ConsumerProtocolSubscription, JoinGroupRequest};
    use kafka_protocol::protocol::{Decodable, Encodable};

    use super::*;
    use crate::coordinator::group::api::LeftMember;

    fn txn_request() -> TxnOffsetCommitRequest {
        use kafka_protocol::messages::txn_offset_commit_request::{
            TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
        };
        TxnOffsetCommitRequest::default()
            .with_transactional_id(str_bytes("tx").into())
            .with_group_id(WireGroupId(str_bytes("g")))
            .with_producer_id(17.into())
            .with_producer_epoch(3)
            .with_generation_id(5)
            .with_member_id(str_bytes("m"))
            .with_group_instance_id(Some(str_bytes("i")))
            .with_topics(vec![
                TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(str_bytes("t")))
                    .with_partitions(vec![
                        TxnOffsetCommitRequestPartition::default()
                            .with_partition_index(1)
                            .with_committed_offset(42)
                            .with_committed_leader_epoch(9)
                            .with_committed_metadata(None),
                    ]),
            ])
    }

    #[test]
    fn txn_offset_commit_names_a_member_from_v3_and_a_leader_epoch_from_v2() {
        let request = txn_request();
        let v3 = txn_offset_commit_params(&request, 3);
        assert_eq!(v3.producer.producer_id, 17);
        assert_eq!(v3.producer.producer_epoch, 3);
        assert_eq!(v3.generation_id, GenerationId(5));
        assert_eq!(v3.member_id, MemberId::from("m"));
        assert_eq!(v3.group_instance_id, Some(InstanceId::from("i")));
        assert_eq!(v3.topics[0].partitions[0].leader_epoch, 9);
        let v1 = txn_offset_commit_params(&request, 1);
        assert_eq!(v1.generation_id, GenerationId::NONE);
        assert!(v1.member_id.is_empty());
        assert_eq!(v1.group_instance_id, None);
        assert_eq!(v1.topics[0].partitions[0].leader_epoch, -1);
        assert_eq!(v1.topics[0].partitions[0].offset, 42);
    }

    #[test]
    fn txn_offset_commit_before_v2_answers_load_in_progress_as_not_available() {
        let result = OffsetCommitResult::all(
            &txn_offset_commit_params(&txn_request(), 1).topics,
            Some(ResponseError::CoordinatorLoadInProgress),
        );
        let code = |version| {
            txn_offset_commit_response(result.clone(), version).topics[0].partitions[0].error_code
        };
        assert_eq!(code(1), ResponseError::CoordinatorNotAvailable.code());
        assert_eq!(code(2), ResponseError::CoordinatorLoadInProgress.code());
        for version in 0..=4 {
            let mut buf = bytes::BytesMut::new();
            txn_offset_commit_response(result.clone(), version)
                .encode(&mut buf, version)
                .expect("encodes");
        }
    }

    #[test]
    fn join_group_v0_uses_the_session_timeout_as_rebalance_timeout() {
        let request = JoinGroupRequest::default()
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(-1);
        let v0 = join_group_params(&request, 0, "client", "/10.0.0.1");
        assert_eq!(v0.rebalance_timeout_ms, 10_000);
        assert!(!v0.require_known_member_id);
        let v4 = join_group_params(&request.with_rebalance_timeout_ms(60_000), 4, "c", "h");
        assert_eq!(v4.rebalance_timeout_ms, 60_000);
        assert!(v4.require_known_member_id && !v4.supports_skip_assignment);
    }

    #[test]
    fn join_group_response_encodes_in_every_version() {
        let mut result =
            JoinGroupResult::error(MemberId::from("m"), ResponseError::MemberIdRequired);
        result.skip_assignment = true;
        for version in 0..=9 {
            let response = join_group_response(result.clone(), version);
            let mut buf = Vec::new();
            response
                .encode(&mut buf, version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
            if version < 7 {
                assert_eq!(response.protocol_name.as_deref(), Some(""));
            }
        }
    }

    #[test]
    fn leave_group_before_v3_reports_the_member_error_at_top_level() {
        let request = LeaveGroupRequest::default()
            .with_group_id(WireGroupId(str_bytes("g")))
            .with_member_id(str_bytes("m1"))
            .with_members(vec![MemberIdentity::default()]);
        let params = leave_group_params(&request, 1);
        assert_eq!(params.members.len(), 1);
        assert_eq!(params.members[0].member_id, MemberId::from("m1"));
        let result = LeaveGroupResult {
            error: None,
            members: vec![LeftMember {
                member_id: MemberId::from("m1"),
                group_instance_id: None,
                error: Some(ResponseError::UnknownMemberId),
            }],
        };
        let response = leave_group_response(result.clone(), 2);
        assert_eq!(response.error_code, ResponseError::UnknownMemberId.code());
        assert!(response.members.is_empty(), "v2 cannot encode members");
        let response = leave_group_response(result, 3);
        assert_eq!(response.error_code, 0);
        assert_eq!(response.members.len(), 1);
    }

    #[test]
    fn describe_unknown_group_is_dead_with_group_id_not_found_from_v6() {
        let id = GroupId::from("nope");
        let old = described_group(&id, None, 5);
        assert_eq!(old.group_state.as_str(), "Dead");
        assert_eq!(old.error_code, 0);
        let new = described_group(&id, None, 6);
        assert_eq!(new.error_code, ResponseError::GroupIdNotFound.code());
    }

    #[test]
    fn consumer_subscription_is_readable_by_kafka_protocol() {
        let bytes = consumer_subscription(&["orders", "payments"]);
        let mut buf = &bytes[2..];
        let parsed = ConsumerProtocolSubscription::decode(&mut buf, 0).unwrap();
        let topics: Vec<&str> = parsed.topics.iter().map(|t| t.as_str()).collect();
        assert_eq!(topics, ["orders", "payments"]);
        assert!(buf.is_empty());
    }
}
