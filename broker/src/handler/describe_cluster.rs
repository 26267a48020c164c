//! DescribeCluster: the cluster id, the controller, and the brokers' Kafka endpoints.
//!
//! This endpoint is a broker endpoint (`EndpointType.BROKER`). A request for controller
//! endpoints (v1+) gets MISMATCHED_ENDPOINT_TYPE and an unknown endpoint type
//! UNSUPPORTED_ENDPOINT_TYPE, as from Kafka (INVALID_REQUEST in v0, which cannot carry
//! either). The in-process controller speaks gRPC, not Kafka, so the controller id reported is
//! this node, as in Metadata. No broker is ever fenced. Brokers are listed with their
//! endpoint on the listener the request arrived on; one without that listener is left out,
//! as Kafka's `getAliveBrokerNodes(listenerName)` leaves it. With no authorizer every supported
//! cluster operation is allowed, as Kafka reports when it has none.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId as WireBrokerId, DescribeClusterRequest, DescribeClusterResponse,
};
use kafka_protocol::protocol::StrBytes;
use weir_controller::ListenerName;

use crate::broker::Broker;

/// `EndpointType.BROKER`.
const BROKER_ENDPOINT: i8 = 1;
/// `EndpointType.CONTROLLER`.
const CONTROLLER_ENDPOINT: i8 = 2;

/// `AclOperation` codes Kafka supports on the CLUSTER resource: CREATE, ALTER, DESCRIBE,
/// CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
const CLUSTER_OPERATIONS: [u8; 7] = [5, 7, 8, 9, 10, 11, 12];

pub(super) fn handle(
    broker: &Broker,
    request: DescribeClusterRequest,
    version: i16,
    listener: &ListenerName,
) -> DescribeClusterResponse {
    if let Err((error, message)) = check_endpoint_type(request.endpoint_type, version) {
        return DescribeClusterResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(StrBytes::from_string(message)));
    }
    let metadata = broker.metadata();
    // Kafka lists the unfenced brokers (fenced ones only on request, from v2's
    // include_fenced_brokers, which this range does not reach).
    let brokers = metadata
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let endpoint = b.listener(listener)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(WireBrokerId(b.id.0))
                    .with_host(StrBytes::from_string(endpoint.host.clone()))
                    .with_port(i32::from(endpoint.port))
                    .with_rack(b.rack.clone().map(StrBytes::from_string)),
            )
        })
        .collect();
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(BROKER_ENDPOINT)
        .with_cluster_id(StrBytes::from_string(metadata.cluster_id.clone()))
        .with_controller_id(WireBrokerId(broker.config.node_id))
        .with_brokers(brokers);
    if request.include_cluster_authorized_operations {
        response.with_cluster_authorized_operations(authorized_operations())
    } else {
        response
    }
}

fn check_endpoint_type(endpoint_type: i8, version: i16) -> Result<(), (ResponseError, String)> {
    let (error, message) = match endpoint_type {
        BROKER_ENDPOINT => return Ok(()),
        CONTROLLER_ENDPOINT => (
            ResponseError::MismatchedEndpointType,
            "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of \
             type CONTROLLER"
                .to_owned(),
        ),
        other => (
            ResponseError::UnsupportedEndpointType,
            format!("Unsupported endpoint type {other}"),
        ),
    };
    Err((
        if version == 0 {
            ResponseError::InvalidRequest
        } else {
            error
        },
        message,
    ))
}

/// The 32-bit field of allowed operations (bit `n` for operation code `n`).
fn authorized_operations() -> i32 {
    CLUSTER_OPERATIONS
        .iter()
        .fold(0, |bits, &operation| bits | 1 << operation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_broker_endpoint_type_is_served() {
        assert!(check_endpoint_type(BROKER_ENDPOINT, 1).is_ok());
        let (error, message) = check_endpoint_type(CONTROLLER_ENDPOINT, 1).unwrap_err();
        assert_eq!(error, ResponseError::MismatchedEndpointType);
        assert!(message.contains("CONTROLLER"), "{message}");
        let (error, message) = check_endpoint_type(9, 2).unwrap_err();
        assert_eq!(error, ResponseError::UnsupportedEndpointType);
        assert!(message.contains('9'), "{message}");
        let (error, _) = check_endpoint_type(9, 0).unwrap_err();
        assert_eq!(error, ResponseError::InvalidRequest);
    }

    #[test]
    fn authorized_operations_are_kafkas_cluster_operations() {
        // CREATE(5) ALTER(7) DESCRIBE(8) CLUSTER_ACTION(9) DESCRIBE_CONFIGS(10)
        // ALTER_CONFIGS(11) IDEMPOTENT_WRITE(12)
        assert_eq!(authorized_operations(), 0b1_1111_1010_0000);
    }
}
