//! [`InvalidMessage`]: why a protobuf message does not decode into the Rust types,
//! naming the field. The server refuses such a request with INVALID_ARGUMENT; the
//! client reports such a reply as the controller's failure.
//!
//! Field paths are written as in the `.proto`, with indexes for repeated fields
//! (`listeners[1].port`, `changes[0].partition`), so the message points at the input.

use crate::ids::{BrokerId, TopicId};

/// Why a request or reply is malformed. Each variant names the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMessage {
    #[error("{field} {value} is negative")]
    NegativeBrokerId { field: String, value: i32 },
    #[error("{field} '{value}' is not a UUID")]
    Uuid {
        field: String,
        value: String,
        #[source]
        source: uuid::Error,
    },
    #[error("{field} must not be the nil UUID")]
    NilUuid { field: String },
    #[error("{field} is required")]
    Missing { field: String },
    #[error("broker {broker} registered without listeners")]
    NoListeners { broker: BrokerId },
    #[error("broker {broker} has a listener with an empty name")]
    EmptyListenerName { broker: BrokerId },
    #[error("broker {broker} has listener '{listener}' more than once")]
    DuplicateListener { broker: BrokerId, listener: String },
    #[error("listener '{listener}' of broker {broker} has an empty host")]
    EmptyHost { broker: BrokerId, listener: String },
    #[error("{field} is {port}, outside {range}")]
    PortOutOfRange {
        field: String,
        port: u32,
        range: &'static str,
    },
    #[error("broker {broker} sent an empty rack; leave it out when broker.rack is unset")]
    EmptyRack { broker: BrokerId },
    #[error("replication_factor {value} is outside -32768..=32767")]
    ReplicationFactorOutOfRange { value: i32 },
    #[error("{field} {value} is not a known {what}")]
    UnknownEnumValue {
        field: String,
        value: i32,
        what: &'static str,
    },
    #[error("{field} is required for {op} of config '{key}'")]
    MissingConfigValue {
        field: String,
        op: &'static str,
        key: String,
    },
    #[error("{field}: {source}")]
    TopicName {
        field: String,
        #[source]
        source: crate::ids::InvalidTopicName,
    },
    #[error("{field} {value} is outside the int16 range of Kafka error codes")]
    ErrorCodeOutOfRange { field: String, value: i32 },
    #[error("{field}: topic '{name}' appears more than once")]
    DuplicateTopic { field: String, name: String },
    #[error("{field}: broker {broker} appears more than once")]
    DuplicateBroker { field: String, broker: BrokerId },
    #[error("producer id block {first}..{end} ends before it starts")]
    InvertedProducerIdBlock { first: i64, end: i64 },
}

impl InvalidMessage {
    /// The same error with its field path placed under `parent`
    /// (`port` within `brokers[2]` becomes `brokers[2].port`).
    pub(crate) fn at(mut self, parent: &str) -> InvalidMessage {
        if let Some(field) = self.field_mut() {
            *field = format!("{parent}.{field}");
        }
        self
    }

    fn field_mut(&mut self) -> Option<&mut String> {
        match self {
            InvalidMessage::NegativeBrokerId { field, .. }
            | InvalidMessage::Uuid { field, .. }
            | InvalidMessage::NilUuid { field }
            | InvalidMessage::Missing { field }
            | InvalidMessage::PortOutOfRange { field, .. }
            | InvalidMessage::UnknownEnumValue { field, .. }
            | InvalidMessage::MissingConfigValue { field, .. }
            | InvalidMessage::TopicName { field, .. }
            | InvalidMessage::ErrorCodeOutOfRange { field, .. }
            | InvalidMessage::DuplicateTopic { field, .. }
            | InvalidMessage::DuplicateBroker { field, .. } => Some(field),
            InvalidMessage::NoListeners { .. }
            | InvalidMessage::EmptyListenerName { .. }
            | InvalidMessage::DuplicateListener { .. }
            | InvalidMessage::EmptyHost { .. }
            | InvalidMessage::EmptyRack { .. }
            | InvalidMessage::ReplicationFactorOutOfRange { .. }
            | InvalidMessage::InvertedProducerIdBlock { .. } => None,
        }
    }
}

/// A broker naming itself: its id must not be negative.
pub(crate) fn own_broker_id(field: &str, value: i32) -> Result<BrokerId, InvalidMessage> {
    if value < 0 {
        return Err(InvalidMessage::NegativeBrokerId {
            field: field.to_owned(),
            value,
        });
    }
    Ok(BrokerId(value))
}

/// A UUID in text form that must not be nil.
pub(crate) fn uuid(field: &str, value: &str) -> Result<uuid::Uuid, InvalidMessage> {
    let parsed = uuid::Uuid::parse_str(value).map_err(|source| InvalidMessage::Uuid {
        field: field.to_owned(),
        value: value.to_owned(),
        source,
    })?;
    if parsed.is_nil() {
        return Err(InvalidMessage::NilUuid {
            field: field.to_owned(),
        });
    }
    Ok(parsed)
}

pub(crate) fn topic_id(field: &str, value: &str) -> Result<TopicId, InvalidMessage> {
    uuid(field, value).map(TopicId)
}

pub(crate) fn required<T>(field: &str, value: Option<T>) -> Result<T, InvalidMessage> {
    value.ok_or_else(|| InvalidMessage::Missing {
        field: field.to_owned(),
    })
}

/// A Kafka error code, which is an int16 on Kafka's wire.
pub(crate) fn error_code(field: &str, value: i32) -> Result<i16, InvalidMessage> {
    i16::try_from(value).map_err(|_| InvalidMessage::ErrorCodeOutOfRange {
        field: field.to_owned(),
        value,
    })
}

pub(crate) fn broker_ids(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().copied().map(BrokerId).collect()
}

pub(crate) fn raw_broker_ids(ids: &[BrokerId]) -> Vec<i32> {
    ids.iter().map(|id| id.0).collect()
}
