//! What goes into the group coordinator and what comes out: request parameters, results,
//! and the effects the caller executes.
//!
//! Parameters are the decoded Kafka requests with the version-dependent defaults already
//! applied (see [`super::wire`] for the conversions from and to `kafka-protocol` messages).
//! Kafka error codes are `kafka_protocol::ResponseError`s; `None` means success.

use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::ids::{GenerationId, GroupId, InstanceId, MemberId, PersistId, RequestToken};
use super::records::OffsetsRecord;

/// One protocol a member supports (an assignor, for consumers), with its metadata (for
/// consumers: the serialized `ConsumerProtocolSubscription`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinGroupParams {
    pub group_id: GroupId,
    /// Empty on a member's first join.
    pub member_id: MemberId,
    pub group_instance_id: Option<InstanceId>,
    pub client_id: String,
    /// As Kafka shows it in DescribeGroups: `/` and the client's IP address.
    pub client_host: String,
    pub session_timeout_ms: i32,
    /// JoinGroup v0 has none; Kafka uses the session timeout.
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// In the member's order of preference.
    pub protocols: Vec<Protocol>,
    pub reason: Option<String>,
    /// JoinGroup v4+: a dynamic member's first join is answered MEMBER_ID_REQUIRED with a
    /// generated member id it must join with.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a restarted static leader may be told to skip the assignment.
    pub supports_skip_assignment: bool,
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: MemberId,
    pub group_instance_id: Option<InstanceId>,
    /// The member's metadata for the group's selected protocol.
    pub metadata: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinGroupResult {
    pub error: Option<ResponseError>,
    pub generation_id: GenerationId,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// Empty when there is no leader (error responses).
    pub leader: MemberId,
    pub skip_assignment: bool,
    /// The member id the client must use from now on (also set with MEMBER_ID_REQUIRED).
    pub member_id: MemberId,
    /// Every member's metadata for the leader; empty for followers.
    pub members: Vec<JoinedMember>,
}

impl JoinGroupResult {
    pub fn error(member_id: MemberId, error: ResponseError) -> Self {
        JoinGroupResult {
            error: Some(error),
            generation_id: GenerationId::NONE,
            protocol_type: None,
            protocol_name: None,
            leader: MemberId::default(),
            skip_assignment: false,
            member_id,
            members: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncGroupParams {
    pub group_id: GroupId,
    pub generation_id: GenerationId,
    pub member_id: MemberId,
    pub group_instance_id: Option<InstanceId>,
    /// SyncGroup v5+; checked against the group's when present.
    pub protocol_type: Option<String>,
    /// SyncGroup v5+; checked against the group's when present.
    pub protocol_name: Option<String>,
    /// The leader's assignment; empty from followers.
    pub assignments: Vec<(MemberId, Bytes)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncGroupResult {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncGroupResult {
    pub fn error(error: ResponseError) -> Self {
        SyncGroupResult {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatParams {
    pub group_id: GroupId,
    pub generation_id: GenerationId,
    pub member_id: MemberId,
    pub group_instance_id: Option<InstanceId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeavingMember {
    /// Empty when an admin removes a static member by instance id.
    pub member_id: MemberId,
    pub group_instance_id: Option<InstanceId>,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaveGroupParams {
    pub group_id: GroupId,
    /// One member before LeaveGroup v3, a batch since.
    pub members: Vec<LeavingMember>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeftMember {
    pub member_id: MemberId,
    pub group_instance_id: Option<InstanceId>,
    pub error: Option<ResponseError>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaveGroupResult {
    pub error: Option<ResponseError>,
    pub members: Vec<LeftMember>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitPartition {
    pub partition: i32,
    pub offset: i64,
    /// -1 when the client sent none (OffsetCommit before v6).
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitTopic {
    pub name: String,
    pub partitions: Vec<CommitPartition>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommitParams {
    pub group_id: GroupId,
    /// -1 for commits from outside group management (admin clients, `assign()` consumers).
    pub generation_id: GenerationId,
    pub member_id: MemberId,
    pub group_instance_id: Option<InstanceId>,
    /// OffsetCommit v2-4 may override the broker's retention; -1 keeps it.
    pub retention_time_ms: i64,
    pub topics: Vec<CommitTopic>,
    /// v9+ answers a commit to an unknown group with GROUP_ID_NOT_FOUND instead of
    /// ILLEGAL_GENERATION.
    pub api_version: i16,
}

/// TxnOffsetCommit: offsets a transactional producer commits for a group, visible to
/// OffsetFetch only once its transaction commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnOffsetCommitParams {
    pub transactional_id: String,
    pub group_id: GroupId,
    pub producer: TxnProducer,
    /// v3+; -1 before (the producer does not say which generation it consumed in).
    pub generation_id: GenerationId,
    /// v3+; empty before.
    pub member_id: MemberId,
    /// v3+.
    pub group_instance_id: Option<InstanceId>,
    pub topics: Vec<CommitTopic>,
}

/// The transactional producer a write belongs to. Its batch carries this producer id and
/// epoch with the transactional attribute set and no sequence number (Kafka's
/// `NO_SEQUENCE`), so the partition's producer state fences stale epochs and the transaction
/// markers complete it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TxnProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionResult {
    pub partition: i32,
    pub error: Option<ResponseError>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicResult {
    pub name: String,
    pub partitions: Vec<PartitionResult>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommitResult {
    pub topics: Vec<TopicResult>,
}

impl OffsetCommitResult {
    /// The same error for every partition of the request, as Kafka answers a refused commit.
    pub fn all(topics: &[CommitTopic], error: Option<ResponseError>) -> Self {
        OffsetCommitResult {
            topics: topics
                .iter()
                .map(|topic| TopicResult {
                    name: topic.name.clone(),
                    partitions: topic
                        .partitions
                        .iter()
                        .map(|p| PartitionResult {
                            partition: p.partition,
                            error,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// The same response with `error` for every partition.
    pub(super) fn with_error(self, error: ResponseError) -> Self {
        OffsetCommitResult {
            topics: self
                .topics
                .into_iter()
                .map(|topic| TopicResult {
                    name: topic.name,
                    partitions: topic
                        .partitions
                        .into_iter()
                        .map(|p| PartitionResult {
                            partition: p.partition,
                            error: Some(error),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// Topics and partitions named in OffsetFetch or OffsetDelete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPartitions {
    pub name: String,
    pub partitions: Vec<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedPartition {
    pub partition: i32,
    /// -1 when nothing is committed.
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    /// UNSTABLE_OFFSET_COMMIT when the fetch requires stable offsets and a commit of the
    /// partition is pending (a transaction not yet ended, or a write in flight).
    pub error: Option<ResponseError>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedTopic {
    pub name: String,
    pub partitions: Vec<FetchedPartition>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetDeleteResult {
    /// A group-level error leaves `topics` empty.
    pub error: Option<ResponseError>,
    pub topics: Vec<TopicResult>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: MemberId,
    pub group_instance_id: Option<InstanceId>,
    pub client_id: String,
    pub client_host: String,
    /// Only for a Stable group: the metadata for its protocol.
    pub metadata: Bytes,
    /// Only for a Stable group.
    pub assignment: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: GroupId,
    pub state: super::GroupState,
    /// Empty for a group without one (standalone committers).
    pub protocol_type: String,
    /// The selected protocol; empty unless the group is Stable.
    pub protocol_data: String,
    pub members: Vec<DescribedMember>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: GroupId,
    pub protocol_type: String,
    pub state: super::GroupState,
}

/// A parked or immediate response to a request that came with a [`RequestToken`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    JoinGroup(JoinGroupResult),
    SyncGroup(SyncGroupResult),
    OffsetCommit(OffsetCommitResult),
    /// TxnOffsetCommit answers per partition like OffsetCommit.
    TxnOffsetCommit(OffsetCommitResult),
}

/// What the caller must do after handing the coordinator an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Complete the request that came with `token`.
    Respond {
        token: RequestToken,
        response: Response,
    },
    /// Append `records` to this coordinator's `__consumer_offsets` partition, as one batch
    /// (Kafka writes a request's records atomically), after every earlier `Persist` of this
    /// coordinator, then report the outcome with
    /// [`GroupCoordinator::persisted`](super::GroupCoordinator::persisted). Requests may be
    /// parked until then (SyncGroup, OffsetCommit, a static member's JoinGroup).
    Persist {
        id: PersistId,
        group: GroupId,
        records: Vec<OffsetsRecord>,
        /// `Some` for a TxnOffsetCommit: the batch is the producer's, transactional.
        transaction: Option<TxnProducer>,
    },
}

/// The value a non-parking call answers with, and the effects it caused on other requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome<T> {
    pub response: T,
    pub effects: Vec<Effect>,
}

/// How Kafka answers a group request whose `__consumer_offsets` append failed with `error`
/// (the one mapping of its coordinator runtime): clients retry COORDINATOR_NOT_AVAILABLE in
/// place and look the coordinator up again after NOT_COORDINATOR.
pub fn coordinator_error_for_append(error: ResponseError) -> ResponseError {
    match error {
        ResponseError::UnknownTopicOrPartition
        | ResponseError::NotEnoughReplicas
        | ResponseError::RequestTimedOut => ResponseError::CoordinatorNotAvailable,
        ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError => {
            ResponseError::NotCoordinator
        }
        ResponseError::MessageTooLarge
        | ResponseError::RecordListTooLarge
        | ResponseError::InvalidFetchSize => ResponseError::UnknownServerError,
        other => other,
    }
}
