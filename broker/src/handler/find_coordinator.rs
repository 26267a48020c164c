//! FindCoordinator (v0-4, batched keys from v4).
//!
//! A group's coordinator is the leader of `__consumer_offsets` partition
//! `abs(java_hash(group)) % partitions`, a transactional id's the leader of
//! `__transaction_state` partition `abs(java_hash(id)) % partitions`; each topic is created on
//! its first lookup. Until the partition has a leader the answer is COORDINATOR_NOT_AVAILABLE,
//! which clients retry on; likewise while its leader is fenced or has no endpoint on the
//! listener the request arrived on (Kafka's `getAliveBrokerNode(leader, listenerName)`).
//! (librdkafka also reads this API's presence: it enables LZ4 only for brokers that list
//! FindCoordinator from v0.)

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId as WireBrokerId, FindCoordinatorRequest, FindCoordinatorResponse,
};
use kafka_protocol::protocol::StrBytes;
use tracing::warn;
use weir_controller::ListenerName;

use crate::broker::Broker;
use crate::coordinator::group::{GroupId, partition_for};
use crate::coordinator::group_service::{OFFSETS_TOPIC, create_offsets_topic};
use crate::coordinator::txn_service::{
    TRANSACTION_STATE_TOPIC, create_transaction_state_topic, partition_for_transactional_id,
};

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Where a coordinator is: node id, host, port.
type Endpoint = (i32, String, i32);

pub(super) async fn handle(
    broker: &Broker,
    request: FindCoordinatorRequest,
    version: i16,
    listener: &ListenerName,
) -> FindCoordinatorResponse {
    let key_type = if version >= 1 {
        request.key_type
    } else {
        KEY_TYPE_GROUP
    };
    if version >= 4 {
        let mut coordinators = Vec::with_capacity(request.coordinator_keys.len());
        for key in request.coordinator_keys {
            let found = find(broker, key_type, key.as_str(), listener).await;
            let coordinator = Coordinator::default().with_key(key);
            coordinators.push(match found {
                Ok((node, host, port)) => coordinator
                    .with_node_id(WireBrokerId(node))
                    .with_host(StrBytes::from_string(host))
                    .with_port(port),
                Err((error, message)) => coordinator
                    .with_node_id(WireBrokerId(-1))
                    .with_port(-1)
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_static_str(message))),
            });
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match find(broker, key_type, request.key.as_str(), listener).await {
        Ok((node, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(WireBrokerId(node))
            .with_host(StrBytes::from_string(host))
            .with_port(port),
        Err((error, message)) => FindCoordinatorResponse::default()
            .with_error_code(error.code())
            .with_error_message((version >= 1).then(|| StrBytes::from_static_str(message)))
            .with_node_id(WireBrokerId(-1))
            .with_port(-1),
    }
}

async fn find(
    broker: &Broker,
    key_type: i8,
    key: &str,
    listener: &ListenerName,
) -> Result<Endpoint, (ResponseError, &'static str)> {
    let (topic_name, not_available) = match key_type {
        KEY_TYPE_GROUP if key.is_empty() => {
            return Err((ResponseError::InvalidRequest, "the group id is empty"));
        }
        KEY_TYPE_TRANSACTION if key.is_empty() => {
            return Err((
                ResponseError::InvalidRequest,
                "the transactional id is empty",
            ));
        }
        KEY_TYPE_GROUP => (
            OFFSETS_TOPIC,
            (
                ResponseError::CoordinatorNotAvailable,
                "__consumer_offsets is not available yet",
            ),
        ),
        KEY_TYPE_TRANSACTION => (
            TRANSACTION_STATE_TOPIC,
            (
                ResponseError::CoordinatorNotAvailable,
                "__transaction_state is not available yet",
            ),
        ),
        _ => {
            return Err((
                ResponseError::InvalidRequest,
                "unknown coordinator key type",
            ));
        }
    };
    if broker.metadata().topic(topic_name).is_none() {
        let created = if key_type == KEY_TYPE_GROUP {
            create_offsets_topic(broker).await
        } else {
            create_transaction_state_topic(broker).await
        };
        if let Err(e) = created {
            warn!(error = %e, topic = topic_name, "creating an internal topic failed");
            return Err(not_available);
        }
    }
    let metadata = broker.metadata();
    let topic = metadata.topic(topic_name).ok_or(not_available)?;
    let partition = if key_type == KEY_TYPE_GROUP {
        partition_for(&GroupId::from(key), topic.partitions.len() as u32)
    } else {
        partition_for_transactional_id(key, topic.partitions.len() as u32)
    };
    let leader = topic
        .partitions
        .get(partition as usize)
        .and_then(|p| p.leader)
        .and_then(|id| metadata.brokers.get(&id))
        .filter(|b| !b.fenced)
        .ok_or(not_available)?;
    let endpoint = leader.listener(listener).ok_or(not_available)?;
    Ok((leader.id.0, endpoint.host.clone(), i32::from(endpoint.port)))
}
