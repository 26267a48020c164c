//! ElectLeaders (v0-2): preferred or unclean leader elections, forwarded to the controller
//! (`kafka-leader-election.sh`, `AdminClient.electLeaders`).
//!
//! v0 knows only preferred elections; from v1 the request carries the election type (0
//! preferred, 1 unclean) and the response a top-level error code. A null topic list means
//! every partition, and then, as in Kafka, partitions that need no election are left out of
//! the answer.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::{debug, info};
use weir_controller::{ElectionType, PartitionRef};

use crate::broker::Broker;

pub(super) async fn handle(
    broker: &Broker,
    request: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let election = match (version, request.election_type) {
        (0, _) | (_, 0) => ElectionType::Preferred,
        (_, 1) => ElectionType::Unclean,
        (_, other) => {
            debug!(
                election_type = other,
                "ElectLeaders with an unknown election type (0 preferred, 1 unclean)"
            );
            return ElectLeadersResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code());
        }
    };
    let partitions = request.topic_partitions.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let topic = t.topic.0.to_string();
                t.partitions.into_iter().map(move |partition| PartitionRef {
                    topic: topic.clone(),
                    partition,
                })
            })
            .collect::<Vec<_>>()
    });
    let results = match broker.control.elect_leaders(election, partitions).await {
        Ok(results) => results,
        Err(e) => {
            return ElectLeadersResponse::default().with_error_code(e.kafka_error_code());
        }
    };
    let mut by_topic: Vec<ReplicaElectionResult> = Vec::new();
    for result in results {
        let (code, message) = match &result.result {
            Ok(()) => {
                info!(topic = %result.partition.topic, partition = result.partition.partition, ?election, "elected a leader");
                (0, None)
            }
            Err(e) => (
                e.kafka_error_code(),
                Some(StrBytes::from_string(e.to_string())),
            ),
        };
        let entry = PartitionResult::default()
            .with_partition_id(result.partition.partition)
            .with_error_code(code)
            .with_error_message(message);
        match by_topic
            .iter_mut()
            .find(|t| t.topic.0.as_str() == result.partition.topic)
        {
            Some(topic) => topic.partition_result.push(entry),
            None => by_topic.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(StrBytes::from_string(result.partition.topic)))
                    .with_partition_result(vec![entry]),
            ),
        }
    }
    ElectLeadersResponse::default().with_replica_election_results(by_topic)
}
