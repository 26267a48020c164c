//! The resources DescribeConfigs, AlterConfigs and IncrementalAlterConfigs address (Kafka's
//! `ConfigResource`): their type codes, the checks on their names, and why a resource is
//! refused, each reason with its Kafka error code and Kafka's message.
//!
//! Weir serves topic resources and this broker's resource. Broker configs are static (the
//! config file, environment and flags): they can be described but not altered.

use kafka_protocol::ResponseError;
use kafka_protocol::protocol::StrBytes;
use weir_controller::{ControllerError, InvalidTopicName, TopicName};

/// `ConfigResource.Type.TOPIC`.
pub(super) const TOPIC: i8 = 2;
/// `ConfigResource.Type.BROKER`.
pub(super) const BROKER: i8 = 4;

/// Why a config resource was refused.
#[derive(Debug, thiserror::Error)]
pub(super) enum ResourceError {
    #[error(transparent)]
    InvalidTopic(#[from] InvalidTopicName),
    #[error("Default topic resources are not allowed.")]
    DefaultTopic,
    #[error("Topic '{name}' does not exist.")]
    UnknownTopic { name: String },
    #[error("Broker id must be an integer, but it is: {name}")]
    BrokerIdNotInteger { name: String },
    #[error("Unexpected broker id, expected {expected} or empty string, but received {name}")]
    OtherBroker { expected: i32, name: String },
    #[error("Unsupported resource type: {resource_type}")]
    UnsupportedType { resource_type: i8 },
    #[error("Each resource must appear at most once.")]
    Duplicate,
    /// Kafka answers INVALID_REQUEST for a broker config it cannot change at run time
    /// (`ConfigAdminManager.validateBrokerConfigChange`); every Weir broker config is such.
    #[error(
        "Cannot update these configs dynamically: {keys}. Weir has no dynamic broker configs; \
         set them in the broker's config file, environment or flags and restart it"
    )]
    StaticBrokerConfig { keys: String },
    #[error("Null value not supported for : {keys}")]
    NullValue { keys: String },
    #[error("Unknown alter config operation {operation} for config {key}")]
    UnknownOperation { key: String, operation: i8 },
    #[error(transparent)]
    Controller(#[from] ControllerError),
}

impl ResourceError {
    /// The Kafka error code sent for this refusal.
    pub(super) fn code(&self) -> i16 {
        match self {
            ResourceError::InvalidTopic(_) => ResponseError::InvalidTopicException.code(),
            ResourceError::UnknownTopic { .. } => ResponseError::UnknownTopicOrPartition.code(),
            ResourceError::DefaultTopic
            | ResourceError::BrokerIdNotInteger { .. }
            | ResourceError::OtherBroker { .. }
            | ResourceError::UnsupportedType { .. }
            | ResourceError::Duplicate
            | ResourceError::StaticBrokerConfig { .. }
            | ResourceError::NullValue { .. }
            | ResourceError::UnknownOperation { .. } => ResponseError::InvalidRequest.code(),
            ResourceError::Controller(e) => e.kafka_error_code(),
        }
    }

    /// The message sent as `error_message`.
    pub(super) fn message(&self) -> Option<StrBytes> {
        Some(StrBytes::from_string(self.to_string()))
    }
}

/// A topic resource's name, checked as Kafka's `Topic.validate`; the empty name is Kafka's
/// "default topic" resource, which only the alter APIs name separately.
pub(super) fn topic_name(name: &str) -> Result<TopicName, ResourceError> {
    Ok(TopicName::new(name)?)
}

/// Whether a broker resource names this broker (`Some(true)`), the cluster-wide default
/// (`Some(false)`, the empty name), or is refused.
pub(super) fn is_this_broker(name: &str, node_id: i32) -> Result<bool, ResourceError> {
    if name.is_empty() {
        return Ok(false);
    }
    let id: i32 = name
        .parse()
        .map_err(|_| ResourceError::BrokerIdNotInteger {
            name: name.to_owned(),
        })?;
    if id != node_id {
        return Err(ResourceError::OtherBroker {
            expected: node_id,
            name: name.to_owned(),
        });
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_names_are_this_node_the_default_or_refused() {
        assert!(matches!(is_this_broker("3", 3), Ok(true)));
        assert!(matches!(is_this_broker("", 3), Ok(false)));
        let err = is_this_broker("three", 3).unwrap_err();
        assert_eq!(err.code(), ResponseError::InvalidRequest.code());
        assert_eq!(
            err.to_string(),
            "Broker id must be an integer, but it is: three"
        );
        let err = is_this_broker("4", 3).unwrap_err();
        assert!(matches!(
            err,
            ResourceError::OtherBroker { expected: 3, .. }
        ));
        assert!(err.to_string().contains("received 4"), "{err}");
    }

    #[test]
    fn topic_names_are_checked_as_kafka() {
        assert_eq!(topic_name("orders").unwrap().as_str(), "orders");
        let err = topic_name("bad/name").unwrap_err();
        assert_eq!(err.code(), ResponseError::InvalidTopicException.code());
        assert!(err.to_string().contains("bad/name"), "{err}");
    }

    #[test]
    fn controller_refusals_keep_the_controllers_code() {
        let err = ResourceError::from(ControllerError::UnknownTopic { name: "t".into() });
        assert_eq!(err.code(), ResponseError::UnknownTopicOrPartition.code());
        let err = ResourceError::StaticBrokerConfig {
            keys: "log.retention.ms".into(),
        };
        assert_eq!(err.code(), ResponseError::InvalidRequest.code());
        assert!(err.to_string().contains("log.retention.ms"), "{err}");
    }
}
