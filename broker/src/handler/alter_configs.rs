//! AlterConfigs (legacy: the request's configs replace all of a topic's overrides) and
//! IncrementalAlterConfigs (SET, DELETE, APPEND, SUBTRACT on single keys), committed through
//! the controller; then the open logs are reconfigured.
//!
//! Each resource succeeds or fails alone. A resource named twice in one request fails at
//! every mention and is not changed. `validate_only` runs every check and commits nothing.
//! Broker resources are refused with INVALID_REQUEST, as Kafka refuses a broker config that
//! cannot be updated dynamically: Weir's broker configs are all static. An empty list of
//! changes to the broker succeeds, as there is nothing to refuse.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::alter_configs_request::AlterConfigsResource as LegacyResource;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as LegacyResult;
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use tracing::info;
use weir_controller::{ConfigChange, ConfigError, ConfigOp, ControllerError};

use super::config_resource::{self, BROKER, ResourceError, TOPIC};
use crate::broker::Broker;

/// What one resource asks to change.
enum Change {
    /// Legacy AlterConfigs: the topic's overrides become exactly these.
    Replace(BTreeMap<String, String>),
    /// IncrementalAlterConfigs.
    Ops(Vec<ConfigOp>),
}

impl Change {
    fn keys(&self) -> Vec<&str> {
        match self {
            Change::Replace(configs) => configs.keys().map(String::as_str).collect(),
            Change::Ops(ops) => ops.iter().map(ConfigOp::key).collect(),
        }
    }
}

pub(super) async fn legacy(broker: &Broker, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let names: Vec<(i8, StrBytes)> = request
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.clone()))
        .collect();
    let changes = request.resources.into_iter().map(legacy_change).collect();
    let outcomes = apply(broker, names.clone(), changes, request.validate_only).await;
    let responses = names
        .into_iter()
        .zip(outcomes)
        .map(|((resource_type, resource_name), outcome)| {
            let result = LegacyResult::default()
                .with_resource_type(resource_type)
                .with_resource_name(resource_name);
            match outcome {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(e.code())
                    .with_error_message(e.message()),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

pub(super) async fn incremental(
    broker: &Broker,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let names: Vec<(i8, StrBytes)> = request
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.clone()))
        .collect();
    let changes = request
        .resources
        .into_iter()
        .map(incremental_change)
        .collect();
    let outcomes = apply(broker, names.clone(), changes, request.validate_only).await;
    let responses = names
        .into_iter()
        .zip(outcomes)
        .map(|((resource_type, resource_name), outcome)| {
            let result = AlterConfigsResourceResponse::default()
                .with_resource_type(resource_type)
                .with_resource_name(resource_name);
            match outcome {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(e.code())
                    .with_error_message(e.message()),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// The overrides a legacy resource sets. A null value is refused, as Kafka does, and so is a
/// key given twice (the request would not say which value is meant).
fn legacy_change(resource: LegacyResource) -> Result<Change, ResourceError> {
    let nulls: Vec<&str> = resource
        .configs
        .iter()
        .filter(|c| c.value.is_none())
        .map(|c| c.name.as_str())
        .collect();
    if !nulls.is_empty() {
        return Err(ResourceError::NullValue {
            keys: nulls.join(", "),
        });
    }
    let mut configs = BTreeMap::new();
    for config in resource.configs {
        let key = config.name.to_string();
        let value = config.value.map(|v| v.to_string()).unwrap_or_default();
        if configs.insert(key.clone(), value).is_some() {
            return Err(ResourceError::Controller(ControllerError::InvalidConfig {
                name: resource.resource_name.to_string(),
                source: ConfigError::DuplicateKey { key },
            }));
        }
    }
    Ok(Change::Replace(configs))
}

/// `AlterConfigOp.OpType` codes.
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// The operations an incremental resource asks for. Every operation but DELETE needs a value.
fn incremental_change(resource: AlterConfigsResource) -> Result<Change, ResourceError> {
    let mut ops = Vec::with_capacity(resource.configs.len());
    for config in resource.configs {
        let key = config.name.to_string();
        let operation = config.config_operation;
        if operation == DELETE {
            ops.push(ConfigOp::Delete(key));
            continue;
        }
        let Some(value) = config.value.map(|v| v.to_string()) else {
            return Err(ResourceError::NullValue { keys: key });
        };
        ops.push(match operation {
            SET => ConfigOp::Set(key, value),
            APPEND => ConfigOp::Append(key, value),
            SUBTRACT => ConfigOp::Subtract(key, value),
            _ => return Err(ResourceError::UnknownOperation { key, operation }),
        });
    }
    Ok(Change::Ops(ops))
}

/// Checks and applies each resource's change; one outcome per resource, in order.
async fn apply(
    broker: &Broker,
    names: Vec<(i8, StrBytes)>,
    changes: Vec<Result<Change, ResourceError>>,
    validate_only: bool,
) -> Vec<Result<(), ResourceError>> {
    let mut mentions: HashMap<(i8, StrBytes), usize> = HashMap::new();
    for name in &names {
        *mentions.entry(name.clone()).or_default() += 1;
    }
    let mut outcomes = Vec::with_capacity(names.len());
    for (name, change) in names.into_iter().zip(changes) {
        if mentions.get(&name).is_some_and(|&n| n > 1) {
            outcomes.push(Err(ResourceError::Duplicate));
            continue;
        }
        let (resource_type, resource_name) = name;
        let outcome = match change {
            Err(e) => Err(e),
            Ok(change) => {
                alter(
                    broker,
                    resource_type,
                    resource_name.as_str(),
                    change,
                    validate_only,
                )
                .await
            }
        };
        outcomes.push(outcome.map(|_| ()));
    }
    outcomes
}

/// Applies one resource's change; `Ok(true)` when a change was committed.
async fn alter(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    change: Change,
    validate_only: bool,
) -> Result<bool, ResourceError> {
    match resource_type {
        TOPIC => {
            if name.is_empty() {
                return Err(ResourceError::DefaultTopic);
            }
            let topic = config_resource::topic_name(name)?;
            let before = broker
                .metadata()
                .topic(topic.as_str())
                .map(|t| t.configs.clone());
            let change = match change {
                Change::Replace(configs) => ConfigChange::Replace(configs),
                Change::Ops(ops) => ConfigChange::Incremental(ops),
            };
            let committed = broker
                .control
                .alter_topic_configs(topic.as_str(), change, validate_only)
                .await?;
            let after = broker.applied(committed).await;
            let changed = before.as_ref() != Some(&after.configs);
            if changed && !validate_only {
                info!(topic = topic.as_str(), configs = ?after.configs, "altered topic configs");
            }
            Ok(changed && !validate_only)
        }
        BROKER => {
            config_resource::is_this_broker(name, broker.config.node_id)?;
            let keys = change.keys();
            if keys.is_empty() {
                Ok(false)
            } else {
                Err(ResourceError::StaticBrokerConfig {
                    keys: keys.join(", "),
                })
            }
        }
        resource_type => Err(ResourceError::UnsupportedType { resource_type }),
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::ResponseError;
    use kafka_protocol::messages::alter_configs_request::AlterableConfig as LegacyConfig;
    use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;

    use super::*;

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_owned())
    }

    fn incremental_config(name: &str, op: i8, value: Option<&str>) -> AlterableConfig {
        AlterableConfig::default()
            .with_name(s(name))
            .with_config_operation(op)
            .with_value(value.map(s))
    }

    #[test]
    fn incremental_operations_become_config_ops() {
        let resource = AlterConfigsResource::default().with_configs(vec![
            incremental_config("retention.ms", SET, Some("1000")),
            incremental_config("segment.ms", DELETE, None),
            incremental_config("cleanup.policy", APPEND, Some("compact")),
            incremental_config("flush.ms", SUBTRACT, Some("x")),
        ]);
        let Ok(Change::Ops(ops)) = incremental_change(resource) else {
            panic!("refused");
        };
        assert_eq!(
            ops,
            [
                ConfigOp::Set("retention.ms".into(), "1000".into()),
                ConfigOp::Delete("segment.ms".into()),
                ConfigOp::Append("cleanup.policy".into(), "compact".into()),
                ConfigOp::Subtract("flush.ms".into(), "x".into()),
            ]
        );
    }

    #[test]
    fn incremental_refuses_null_values_and_unknown_operations() {
        let resource = AlterConfigsResource::default().with_configs(vec![incremental_config(
            "retention.ms",
            SET,
            None,
        )]);
        let err = incremental_change(resource).err().unwrap();
        assert_eq!(err.code(), ResponseError::InvalidRequest.code());
        assert!(err.to_string().contains("retention.ms"), "{err}");

        let resource = AlterConfigsResource::default().with_configs(vec![incremental_config(
            "retention.ms",
            7,
            Some("1"),
        )]);
        let err = incremental_change(resource).err().unwrap();
        assert!(
            matches!(err, ResourceError::UnknownOperation { operation: 7, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn legacy_refuses_null_values_and_repeated_keys() {
        let config = |name: &str, value: Option<&str>| {
            LegacyConfig::default()
                .with_name(s(name))
                .with_value(value.map(s))
        };
        let resource = LegacyResource::default().with_configs(vec![
            config("retention.ms", Some("1")),
            config("segment.ms", None),
        ]);
        let err = legacy_change(resource).err().unwrap();
        assert_eq!(err.to_string(), "Null value not supported for : segment.ms");

        let resource = LegacyResource::default().with_configs(vec![
            config("retention.ms", Some("1")),
            config("retention.ms", Some("2")),
        ]);
        let err = legacy_change(resource).err().unwrap();
        assert_eq!(err.code(), ResponseError::InvalidRequest.code());

        let resource = LegacyResource::default().with_configs(vec![
            config("retention.ms", Some("1")),
            config("segment.ms", Some("2")),
        ]);
        let Ok(Change::Replace(configs)) = legacy_change(resource) else {
            panic!("refused");
        };
        assert_eq!(configs.len(), 2);
    }
}
