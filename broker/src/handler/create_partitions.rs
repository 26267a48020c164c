//! CreatePartitions: grows topics through the controller, then opens the new partitions' logs.
//!
//! Checks the controller does not make, done here as Kafka's broker does: a topic named twice
//! in one request is not changed and gets one INVALID_REQUEST result. A null
//! assignment list lets the controller place the new replicas; a list, even an empty one, must
//! give one replica list per new partition.

use std::collections::HashMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use tracing::info;
use weir_controller::BrokerId;

use crate::broker::Broker;

pub(super) async fn handle(
    broker: &Broker,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let validate_only = request.validate_only;
    let mut times_named: HashMap<StrBytes, usize> = HashMap::new();
    for topic in &request.topics {
        *times_named.entry(topic.name.0.clone()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        let name = topic.name.0.to_string();
        match times_named.get_mut(&topic.name.0) {
            Some(0) => continue,
            Some(n) if *n > 1 => {
                *n = 0;
                results.push(
                    result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(StrBytes::from_static_str(
                            "Duplicate topic name.",
                        ))),
                );
                continue;
            }
            _ => {}
        }
        let assignments = topic.assignments.map(|list| {
            list.into_iter()
                .map(|a| a.broker_ids.into_iter().map(|b| BrokerId(b.0)).collect())
                .collect()
        });
        let outcome = broker
            .control
            .create_partitions(&name, topic.count, assignments, validate_only)
            .await;
        results.push(match outcome {
            Ok(committed) => {
                let t = broker.applied(committed).await;
                if !validate_only {
                    info!(topic = %name, partitions = t.partitions.len(), "created partitions");
                }
                result
            }
            Err(e) => result
                .with_error_code(e.kafka_error_code())
                .with_error_message(Some(StrBytes::from_string(e.to_string()))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
