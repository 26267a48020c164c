//! Replies on the wire: the server encodes what the [`ControlPlane`](crate::ControlPlane)
//! returned (which cannot fail), the client decodes it back, refusing a reply that does
//! not fit the Rust types with an [`InvalidMessage`] naming the field.
//!
//! Per-partition failures (ElectLeaders, AlterReassignments) travel as [`pb::KafkaError`]
//! and come back as [`ControllerError::Remote`], like whole-request failures.

use std::ops::Range;

use super::image::required_topic;
use super::invalid::{self, InvalidMessage, broker_ids, raw_broker_ids};
use super::pb;
use crate::controller::ControllerError;
use crate::metadata::{PartitionState, TopicMetadata};
use crate::plane::{
    Committed, ControlledShutdownReply, ElectionResult, HeartbeatReply, OngoingReassignment,
    PartitionRef, Registered,
};
use crate::registry::BrokerEpoch;

/// What AlterReassignments returns for each change.
pub(crate) type ReassignmentResults = Vec<(PartitionRef, Result<(), ControllerError>)>;

impl From<Registered> for pb::RegisterBrokerResponse {
    fn from(registered: Registered) -> Self {
        pb::RegisterBrokerResponse {
            broker_epoch: registered.broker_epoch.0,
            session_timeout_ms: registered.session_timeout_ms,
        }
    }
}

impl From<pb::RegisterBrokerResponse> for Registered {
    fn from(reply: pb::RegisterBrokerResponse) -> Self {
        Registered {
            broker_epoch: BrokerEpoch(reply.broker_epoch),
            session_timeout_ms: reply.session_timeout_ms,
        }
    }
}

impl From<HeartbeatReply> for pb::BrokerHeartbeatResponse {
    fn from(reply: HeartbeatReply) -> Self {
        pb::BrokerHeartbeatResponse {
            fenced: reply.fenced,
        }
    }
}

impl From<pb::BrokerHeartbeatResponse> for HeartbeatReply {
    fn from(reply: pb::BrokerHeartbeatResponse) -> Self {
        HeartbeatReply {
            fenced: reply.fenced,
        }
    }
}

impl From<ControlledShutdownReply> for pb::ControlledShutdownResponse {
    fn from(reply: ControlledShutdownReply) -> Self {
        pb::ControlledShutdownResponse {
            remaining_leaders: reply.remaining_leaders,
        }
    }
}

impl From<pb::ControlledShutdownResponse> for ControlledShutdownReply {
    fn from(reply: pb::ControlledShutdownResponse) -> Self {
        ControlledShutdownReply {
            remaining_leaders: reply.remaining_leaders,
        }
    }
}

/// The four replies that carry a topic and the version that committed it.
macro_rules! topic_replies {
    ($($reply:ident),*) => {$(
        impl From<Committed<TopicMetadata>> for pb::$reply {
            fn from(committed: Committed<TopicMetadata>) -> Self {
                pb::$reply {
                    topic: Some(pb::Topic::from(&committed.value)),
                    version: committed.version,
                }
            }
        }

        impl TryFrom<pb::$reply> for Committed<TopicMetadata> {
            type Error = InvalidMessage;

            fn try_from(reply: pb::$reply) -> Result<Self, Self::Error> {
                Ok(Committed {
                    value: required_topic("topic", reply.topic)?,
                    version: reply.version,
                })
            }
        }
    )*};
}

topic_replies!(
    CreateTopicResponse,
    DeleteTopicResponse,
    CreatePartitionsResponse,
    AlterTopicConfigsResponse
);

pub(crate) fn encode_producer_ids(ids: &Range<i64>) -> pb::AllocateProducerIdsResponse {
    pb::AllocateProducerIdsResponse {
        first_producer_id: ids.start,
        end_producer_id: ids.end,
    }
}

pub(crate) fn producer_ids(
    reply: &pb::AllocateProducerIdsResponse,
) -> Result<Range<i64>, InvalidMessage> {
    let (first, end) = (reply.first_producer_id, reply.end_producer_id);
    if end < first {
        return Err(InvalidMessage::InvertedProducerIdBlock { first, end });
    }
    Ok(first..end)
}

impl From<Committed<PartitionState>> for pb::AlterPartitionResponse {
    fn from(committed: Committed<PartitionState>) -> Self {
        pb::AlterPartitionResponse {
            partition: Some(pb::PartitionState::from(&committed.value)),
            version: committed.version,
        }
    }
}

impl TryFrom<pb::AlterPartitionResponse> for Committed<PartitionState> {
    type Error = InvalidMessage;

    fn try_from(reply: pb::AlterPartitionResponse) -> Result<Self, Self::Error> {
        let partition = invalid::required("partition", reply.partition)?;
        Ok(Committed {
            value: PartitionState::from(&partition),
            version: reply.version,
        })
    }
}

fn encode_result(
    partition: &PartitionRef,
    result: &Result<(), ControllerError>,
) -> pb::PartitionResult {
    pb::PartitionResult {
        partition: Some(pb::PartitionRef::from(partition)),
        error: result.as_ref().err().map(|err| pb::KafkaError {
            code: i32::from(err.kafka_error_code()),
            message: err.to_string(),
        }),
    }
}

fn decode_result(
    i: usize,
    result: pb::PartitionResult,
) -> Result<(PartitionRef, Result<(), ControllerError>), InvalidMessage> {
    let field = format!("results[{i}]");
    let partition =
        invalid::required("partition", result.partition).map_err(|err| err.at(&field))?;
    let outcome = match result.error {
        None => Ok(()),
        Some(error) => Err(ControllerError::Remote {
            code: invalid::error_code("error.code", error.code).map_err(|err| err.at(&field))?,
            message: error.message,
        }),
    };
    Ok((PartitionRef::from(partition), outcome))
}

pub(crate) fn encode_elections(results: &[ElectionResult]) -> pb::ElectLeadersResponse {
    pb::ElectLeadersResponse {
        results: results
            .iter()
            .map(|result| encode_result(&result.partition, &result.result))
            .collect(),
    }
}

pub(crate) fn elections(
    reply: pb::ElectLeadersResponse,
) -> Result<Vec<ElectionResult>, InvalidMessage> {
    reply
        .results
        .into_iter()
        .enumerate()
        .map(|(i, result)| {
            let (partition, result) = decode_result(i, result)?;
            Ok(ElectionResult { partition, result })
        })
        .collect()
}

pub(crate) fn encode_reassignment_results(
    results: &ReassignmentResults,
) -> pb::AlterReassignmentsResponse {
    pb::AlterReassignmentsResponse {
        results: results
            .iter()
            .map(|(partition, result)| encode_result(partition, result))
            .collect(),
    }
}

pub(crate) fn reassignment_results(
    reply: pb::AlterReassignmentsResponse,
) -> Result<ReassignmentResults, InvalidMessage> {
    reply
        .results
        .into_iter()
        .enumerate()
        .map(|(i, result)| decode_result(i, result))
        .collect()
}

impl From<&OngoingReassignment> for pb::OngoingReassignment {
    fn from(ongoing: &OngoingReassignment) -> Self {
        pb::OngoingReassignment {
            partition: Some(pb::PartitionRef::from(&ongoing.partition)),
            replicas: raw_broker_ids(&ongoing.replicas),
            adding_replicas: raw_broker_ids(&ongoing.adding),
            removing_replicas: raw_broker_ids(&ongoing.removing),
        }
    }
}

pub(crate) fn ongoing_reassignments(
    reply: pb::ListReassignmentsResponse,
) -> Result<Vec<OngoingReassignment>, InvalidMessage> {
    reply
        .reassignments
        .into_iter()
        .enumerate()
        .map(|(i, ongoing)| {
            let partition =
                invalid::required(&format!("reassignments[{i}].partition"), ongoing.partition)?;
            Ok(OngoingReassignment {
                partition: PartitionRef::from(partition),
                replicas: broker_ids(&ongoing.replicas),
                adding: broker_ids(&ongoing.adding_replicas),
                removing: broker_ids(&ongoing.removing_replicas),
            })
        })
        .collect()
}
