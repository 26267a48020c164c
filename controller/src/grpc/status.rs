//! How errors cross the wire, both ways; the only place this mapping lives.
//!
//! Server side, every refusal becomes a [`Status`] whose `weir-kafka-error-code`
//! trailer ([`KAFKA_ERROR_CODE_KEY`]) carries the Kafka error code and whose message is
//! the error's: a [`ControllerError`] its [`ControllerError::kafka_error_code`], a
//! malformed request INVALID_REQUEST (42). The gRPC code is derived from the Kafka code
//! ([`grpc_code`]) for tools that only read that.
//!
//! Client side, a status carrying the trailer becomes
//! [`ControllerError::Remote`] with that code and message, so the Kafka code survives
//! the round trip. A status without it came from the transport, not the controller:
//! REQUEST_TIMED_OUT (7), with a message naming the controller's address, except
//! UNIMPLEMENTED (an older controller: UNSUPPORTED_VERSION, 35) and INTERNAL (a reply
//! that did not decode: UNKNOWN_SERVER_ERROR, -1).

use std::error::Error as _;
use std::time::Duration;

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

use super::invalid::InvalidMessage;
use crate::controller::ControllerError;

/// The trailer that carries the Kafka error code of a refusal, in ASCII decimal.
pub const KAFKA_ERROR_CODE_KEY: &str = "weir-kafka-error-code";

/// The Kafka error codes this layer produces or reads itself.
pub(crate) mod kafka {
    pub(crate) const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub(crate) const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub(crate) const REQUEST_TIMED_OUT: i16 = 7;
    pub(crate) const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub(crate) const UNSUPPORTED_VERSION: i16 = 35;
    pub(crate) const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub(crate) const INVALID_PARTITIONS: i16 = 37;
    pub(crate) const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub(crate) const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub(crate) const INVALID_CONFIG: i16 = 40;
    pub(crate) const NOT_CONTROLLER: i16 = 41;
    pub(crate) const INVALID_REQUEST: i16 = 42;
    pub(crate) const UNKNOWN_TOPIC_ID: i16 = 100;
    pub(crate) const BROKER_ID_NOT_REGISTERED: i16 = 102;
}

/// A controller's refusal, as the server sends it.
pub(crate) fn from_controller_error(err: &ControllerError) -> Status {
    kafka_status(err.kafka_error_code(), err.to_string())
}

/// A malformed request, as the server refuses it.
pub(crate) fn from_invalid_request(err: &InvalidMessage) -> Status {
    kafka_status(kafka::INVALID_REQUEST, err.to_string())
}

/// A request for a cluster this server does not host, refused as a standby
/// controller would refuse it, so the client tries elsewhere or again.
pub(crate) fn not_controller(message: String) -> Status {
    kafka_status(kafka::NOT_CONTROLLER, message)
}

fn kafka_status(code: i16, message: String) -> Status {
    let mut metadata = MetadataMap::new();
    metadata.insert(KAFKA_ERROR_CODE_KEY, MetadataValue::from(code));
    Status::with_metadata(grpc_code(code), message, metadata)
}

/// The gRPC code for a Kafka error code. Informative only: Weir's client reads the
/// Kafka code.
pub(crate) fn grpc_code(kafka_code: i16) -> Code {
    match kafka_code {
        kafka::INVALID_REQUEST
        | kafka::INVALID_TOPIC_EXCEPTION
        | kafka::INVALID_PARTITIONS
        | kafka::INVALID_REPLICATION_FACTOR
        | kafka::INVALID_REPLICA_ASSIGNMENT
        | kafka::INVALID_CONFIG => Code::InvalidArgument,
        kafka::UNKNOWN_TOPIC_OR_PARTITION
        | kafka::UNKNOWN_TOPIC_ID
        | kafka::BROKER_ID_NOT_REGISTERED => Code::NotFound,
        kafka::TOPIC_ALREADY_EXISTS => Code::AlreadyExists,
        kafka::UNKNOWN_SERVER_ERROR => Code::Internal,
        kafka::REQUEST_TIMED_OUT | kafka::NOT_CONTROLLER => Code::Unavailable,
        _ => Code::FailedPrecondition,
    }
}

/// The Kafka error code a status carries, if the controller produced it.
pub(crate) fn kafka_code(status: &Status) -> Option<i16> {
    status
        .metadata()
        .get(KAFKA_ERROR_CODE_KEY)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// What a status received from the controller at `address` for `rpc` means.
pub(crate) fn into_controller_error(status: &Status, address: &str, rpc: &str) -> ControllerError {
    if let Some(code) = kafka_code(status) {
        return ControllerError::Remote {
            code,
            message: status.message().to_owned(),
        };
    }
    match status.code() {
        Code::Unimplemented => ControllerError::Remote {
            code: kafka::UNSUPPORTED_VERSION,
            message: format!(
                "the controller at {address} does not serve {rpc}: {}",
                describe(status)
            ),
        },
        Code::Internal => ControllerError::Remote {
            code: kafka::UNKNOWN_SERVER_ERROR,
            message: format!(
                "the controller at {address} failed {rpc}: {}",
                describe(status)
            ),
        },
        _ => unreachable(address, &describe(status)),
    }
}

/// The controller at `address` could not be reached, or the connection broke.
pub(crate) fn unreachable(address: &str, reason: &str) -> ControllerError {
    ControllerError::Remote {
        code: kafka::REQUEST_TIMED_OUT,
        message: format!("the controller at {address} is unreachable: {reason}"),
    }
}

/// The controller at `address` did not answer `rpc` in time.
pub(crate) fn timed_out(address: &str, rpc: &str, timeout: Duration) -> ControllerError {
    ControllerError::Remote {
        code: kafka::REQUEST_TIMED_OUT,
        message: format!(
            "the controller at {address} did not answer {rpc} within {} ms",
            timeout.as_millis()
        ),
    }
}

/// The controller at `address` answered `rpc` with a reply that does not decode.
pub(crate) fn malformed_reply(address: &str, rpc: &str, err: &InvalidMessage) -> ControllerError {
    ControllerError::Remote {
        code: kafka::UNKNOWN_SERVER_ERROR,
        message: format!("the controller at {address} sent a malformed {rpc} reply: {err}"),
    }
}

/// A status's message and the chain of errors under it (a transport status says
/// "tcp connect error"; its source says why).
pub(crate) fn describe(status: &Status) -> String {
    let mut text = if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        status.message().to_owned()
    };
    let mut source = status.source();
    while let Some(err) = source {
        let part = err.to_string();
        if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
        source = err.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_controller_error_keeps_its_kafka_code_across_the_wire() {
        let err = ControllerError::TopicAlreadyExists {
            name: "orders".into(),
        };
        let status = from_controller_error(&err);
        assert_eq!(status.code(), Code::AlreadyExists);
        assert_eq!(kafka_code(&status), Some(kafka::TOPIC_ALREADY_EXISTS));
        let back = into_controller_error(&status, "http://c:9093", "CreateTopic");
        assert!(matches!(
            &back,
            ControllerError::Remote { code: 36, message } if message == "Topic 'orders' already exists."
        ));
        assert_eq!(back.kafka_error_code(), err.kafka_error_code());
    }

    #[test]
    fn a_status_without_a_kafka_code_is_a_transport_failure() {
        let back = into_controller_error(
            &Status::unavailable("tcp connect error"),
            "http://c:9093",
            "CreateTopic",
        );
        assert!(matches!(
            &back,
            ControllerError::Remote { code: 7, message }
                if message == "the controller at http://c:9093 is unreachable: tcp connect error"
        ));
        let back = into_controller_error(&Status::unimplemented(""), "a", "ElectLeaders");
        assert_eq!(back.kafka_error_code(), kafka::UNSUPPORTED_VERSION);
        let back = into_controller_error(&Status::internal("bad frame"), "a", "ElectLeaders");
        assert_eq!(back.kafka_error_code(), kafka::UNKNOWN_SERVER_ERROR);
    }

    #[test]
    fn malformed_requests_are_invalid_argument_with_invalid_request() {
        let status = from_invalid_request(&InvalidMessage::Missing {
            field: "partition".into(),
        });
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(kafka_code(&status), Some(kafka::INVALID_REQUEST));
        assert_eq!(status.message(), "partition is required");
    }

    #[test]
    fn refusals_without_a_closer_grpc_code_are_failed_precondition() {
        assert_eq!(grpc_code(77), Code::FailedPrecondition); // STALE_BROKER_EPOCH
        assert_eq!(grpc_code(kafka::UNKNOWN_TOPIC_ID), Code::NotFound);
        assert_eq!(grpc_code(kafka::NOT_CONTROLLER), Code::Unavailable);
    }
}
