//! Kafka API handlers, one file per API, and the table of versions this broker advertises.

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_configs;
mod api_versions;
mod config_resource;
mod create_partitions;
mod delete_groups;
mod delete_records;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_producers;
mod describe_transactions;
mod elect_leaders;
mod end_txn;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_transactions;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod partition_reassignments;
mod produce;
mod sync_group;
mod topics;
mod txn_offset_commit;
mod write_txn_markers;

use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};

pub(crate) use init_producer_id::ProducerIdBlock;

use crate::broker::Broker;
use crate::server::Origin;
use crate::server::zero_copy::{FileRegion, Markers};

/// File ranges a response sends with sendfile, marked in the encoded response (see
/// `server::zero_copy`). Only Fetch fills it.
#[derive(Debug, Default)]
pub(crate) struct ZeroCopy {
    pub(crate) parts: Option<(Markers, Vec<FileRegion>)>,
}

/// The versions this broker implements, advertised exactly in ApiVersions. Each is within
/// what `kafka-protocol` can encode and decode.
pub(crate) const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::TxnOffsetCommit, 0, 4),
    (ApiKey::AddPartitionsToTxn, 0, 4),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeProducers, 0, 0),
];

/// The error for a request naming `requested` as the current leader epoch when the
/// partition's is `current` (-1 asks for no check), as Kafka answers it.
pub(crate) fn leader_epoch_error(requested: i32, current: i32) -> Option<i16> {
    use kafka_protocol::ResponseError;
    if requested < 0 || requested == current {
        None
    } else if requested > current {
        Some(ResponseError::UnknownLeaderEpoch.code())
    } else {
        Some(ResponseError::FencedLeaderEpoch.code())
    }
}

/// The error for a partition this broker does not serve: NOT_LEADER_OR_FOLLOWER when the
/// partition exists (another broker holds it; the client refreshes its metadata), else
/// UNKNOWN_TOPIC_OR_PARTITION (Kafka's `getPartitionOrException`).
pub(crate) fn not_served_error(broker: &Broker, topic: &str, partition: i32) -> i16 {
    use kafka_protocol::ResponseError;
    let exists = broker
        .metadata()
        .topic(topic)
        .is_some_and(|t| (0..t.partitions.len() as i64).contains(&i64::from(partition)));
    if exists {
        ResponseError::NotLeaderOrFollower.code()
    } else {
        ResponseError::UnknownTopicOrPartition.code()
    }
}

pub(crate) fn supported_versions(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|&(_, min, max)| (min, max))
}

/// Handles one decoded request, which came in from `origin`. `None` means no response is
/// sent (produce with acks=0).
pub(crate) async fn handle(
    broker: &Broker,
    header: &RequestHeader,
    origin: &Origin,
    request: RequestKind,
    version_supported: bool,
    zero_copy: &mut ZeroCopy,
) -> Option<ResponseKind> {
    let version = header.request_api_version;
    Some(match request {
        RequestKind::ApiVersions(_) => {
            ResponseKind::ApiVersions(api_versions::handle(version_supported))
        }
        RequestKind::Metadata(r) => {
            ResponseKind::Metadata(metadata::handle(broker, r, version, &origin.listener).await)
        }
        RequestKind::Produce(r) => {
            ResponseKind::Produce(produce::handle(broker, r, version).await?)
        }
        RequestKind::Fetch(r) => {
            ResponseKind::Fetch(fetch::handle(broker, r, version, zero_copy).await)
        }
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::handle(broker, r)),
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(broker, r))
        }
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(topics::create(broker, r).await),
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(topics::delete(broker, r, version).await)
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(delete_records::handle(broker, r))
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(broker, r))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(alter_configs::legacy(broker, r).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(create_partitions::handle(broker, r).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(alter_configs::incremental(broker, r).await)
        }
        RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(describe_cluster::handle(
            broker,
            r,
            version,
            &origin.listener,
        )),
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(
            find_coordinator::handle(broker, r, version, &origin.listener).await,
        ),
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(join_group::handle(broker, header, origin.peer, r).await)
        }
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(sync_group::handle(broker, r).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(heartbeat::handle(broker, r)),
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(leave_group::handle(broker, r, version))
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(offset_commit::handle(broker, r, version).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(offset_fetch::handle(broker, r, version))
        }
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(txn_offset_commit::handle(broker, r, version).await)
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(offset_delete::handle(broker, r))
        }
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(list_groups::handle(broker, r)),
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(describe_groups::handle(broker, r, version))
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(delete_groups::handle(broker, r))
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(init_producer_id::handle(broker, r, version).await)
        }
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(elect_leaders::handle(broker, r, version).await)
        }
        RequestKind::AlterPartitionReassignments(r) => ResponseKind::AlterPartitionReassignments(
            partition_reassignments::alter(broker, r, version).await,
        ),
        RequestKind::ListPartitionReassignments(r) => {
            ResponseKind::ListPartitionReassignments(partition_reassignments::list(broker, r).await)
        }
        RequestKind::AddPartitionsToTxn(r) => ResponseKind::AddPartitionsToTxn(
            add_partitions_to_txn::handle(broker, r, version).await,
        ),
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(add_offsets_to_txn::handle(broker, r, version).await)
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(end_txn::handle(broker, r, version).await),
        RequestKind::WriteTxnMarkers(r) => {
            ResponseKind::WriteTxnMarkers(write_txn_markers::handle(broker, r).await)
        }
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(describe_transactions::handle(broker, r))
        }
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(list_transactions::handle(broker, r))
        }
        RequestKind::DescribeProducers(r) => {
            ResponseKind::DescribeProducers(describe_producers::handle(broker, r))
        }
        // The connection only hands over requests whose API is in SUPPORTED.
        other => unreachable!("unsupported request reached the handler: {other:?}"),
    })
}

/// The non-zero error codes in a response, for the errors metric.
pub(crate) fn error_codes(response: &ResponseKind) -> Vec<i16> {
    let mut codes = Vec::new();
    match response {
        ResponseKind::Produce(r) => codes.extend(
            r.responses
                .iter()
                .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code)),
        ),
        ResponseKind::Fetch(r) => {
            codes.push(r.error_code);
            codes.extend(
                r.responses
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            );
        }
        ResponseKind::ListOffsets(r) => codes.extend(
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        ),
        ResponseKind::OffsetForLeaderEpoch(r) => codes.extend(
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        ),
        ResponseKind::Metadata(r) => codes.extend(r.topics.iter().map(|t| t.error_code)),
        ResponseKind::ApiVersions(r) => codes.push(r.error_code),
        ResponseKind::CreateTopics(r) => codes.extend(r.topics.iter().map(|t| t.error_code)),
        ResponseKind::DeleteTopics(r) => codes.extend(r.responses.iter().map(|t| t.error_code)),
        ResponseKind::DeleteRecords(r) => codes.extend(
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        ),
        ResponseKind::DescribeConfigs(r) => codes.extend(r.results.iter().map(|r| r.error_code)),
        ResponseKind::AlterConfigs(r) => codes.extend(r.responses.iter().map(|r| r.error_code)),
        ResponseKind::CreatePartitions(r) => {
            codes.extend(r.results.iter().map(|r| r.error_code));
        }
        ResponseKind::IncrementalAlterConfigs(r) => {
            codes.extend(r.responses.iter().map(|r| r.error_code));
        }
        ResponseKind::DescribeCluster(r) => codes.push(r.error_code),
        ResponseKind::InitProducerId(r) => codes.push(r.error_code),
        ResponseKind::FindCoordinator(r) => {
            codes.push(r.error_code);
            codes.extend(r.coordinators.iter().map(|c| c.error_code));
        }
        ResponseKind::JoinGroup(r) => codes.push(r.error_code),
        ResponseKind::SyncGroup(r) => codes.push(r.error_code),
        ResponseKind::Heartbeat(r) => codes.push(r.error_code),
        ResponseKind::LeaveGroup(r) => {
            codes.push(r.error_code);
            codes.extend(r.members.iter().map(|m| m.error_code));
        }
        ResponseKind::OffsetCommit(r) => codes.extend(
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        ),
        ResponseKind::OffsetFetch(r) => {
            codes.push(r.error_code);
            codes.extend(
                r.topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            );
            for g in &r.groups {
                codes.push(g.error_code);
                codes.extend(
                    g.topics
                        .iter()
                        .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
                );
            }
        }
        ResponseKind::TxnOffsetCommit(r) => codes.extend(
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        ),
        ResponseKind::OffsetDelete(r) => {
            codes.push(r.error_code);
            codes.extend(
                r.topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            );
        }
        ResponseKind::ListGroups(r) => codes.push(r.error_code),
        ResponseKind::DescribeGroups(r) => codes.extend(r.groups.iter().map(|g| g.error_code)),
        ResponseKind::DeleteGroups(r) => codes.extend(r.results.iter().map(|g| g.error_code)),
        ResponseKind::ElectLeaders(r) => {
            codes.push(r.error_code);
            codes.extend(
                r.replica_election_results
                    .iter()
                    .flat_map(|t| t.partition_result.iter().map(|p| p.error_code)),
            );
        }
        ResponseKind::AlterPartitionReassignments(r) => {
            codes.push(r.error_code);
            codes.extend(
                r.responses
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            );
        }
        ResponseKind::ListPartitionReassignments(r) => codes.push(r.error_code),
        ResponseKind::AddPartitionsToTxn(r) => {
            codes.push(r.error_code);
            let topics = r.results_by_topic_v3_and_below.iter().chain(
                r.results_by_transaction
                    .iter()
                    .flat_map(|t| t.topic_results.iter()),
            );
            codes.extend(topics.flat_map(|t| {
                t.results_by_partition
                    .iter()
                    .map(|p| p.partition_error_code)
            }));
        }
        ResponseKind::AddOffsetsToTxn(r) => codes.push(r.error_code),
        ResponseKind::EndTxn(r) => codes.push(r.error_code),
        ResponseKind::WriteTxnMarkers(r) => codes.extend(r.markers.iter().flat_map(|m| {
            m.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        })),
        ResponseKind::DescribeTransactions(r) => {
            codes.extend(r.transaction_states.iter().map(|t| t.error_code));
        }
        ResponseKind::ListTransactions(r) => codes.push(r.error_code),
        ResponseKind::DescribeProducers(r) => codes.extend(
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
        ),
        _ => {}
    }
    codes.retain(|&c| c != 0);
    codes
}
