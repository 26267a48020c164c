//! Hand-built schema parts the derive cannot express: the config maps, whose keys are
//! checked against the lists the broker and the controller define, so the CRD refuses an
//! unknown key by name (a CEL rule with a `messageExpression`).

use schemars::{Schema, SchemaGenerator, json_schema};
use weir_broker::config::BrokerConfig;
use weir_controller::TOPIC_CONFIGS;

/// Broker keys the operator sets itself for every pod; a `Cluster` may not set them.
pub const OPERATOR_MANAGED_BROKER_KEYS: &[&str] = &[
    "node.id",
    "process.roles",
    "listeners",
    "advertised.listeners",
    "log.dirs",
    "http.listener",
    "controller.listener",
    "controller.quorum.bootstrap.servers",
    "controller.cluster.name",
    "broker.rack",
    "listener.security.protocol.map",
    "inter.broker.listener.name",
    // Kafka's older names for `node.id` and `log.dirs`.
    "broker.id",
    "log.dir",
];

/// At most this many config overrides per resource; it bounds the cost of the CEL rule, as
/// the API server requires.
const MAX_CONFIG_ENTRIES: u32 = 128;

/// `Topic.spec.config`: Kafka topic config keys from the controller's table.
pub(crate) fn topic_config(_: &mut SchemaGenerator) -> Schema {
    let keys: Vec<&str> = TOPIC_CONFIGS.iter().map(|def| def.name).collect();
    config_map(&keys, "topic config")
}

/// `Cluster.spec.config`: broker config keys the broker parses, less those the operator
/// manages.
pub(crate) fn broker_config(_: &mut SchemaGenerator) -> Schema {
    let keys = settable_broker_keys();
    config_map(&keys, "broker config")
}

/// The broker keys a `Cluster` may set.
pub fn settable_broker_keys() -> Vec<&'static str> {
    let mut keys: Vec<&str> = BrokerConfig::known_keys()
        .filter(|k| !OPERATOR_MANAGED_BROKER_KEYS.contains(k))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

fn config_map(keys: &[&str], what: &str) -> Schema {
    let list = keys
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    json_schema!({
        "type": "object",
        "maxProperties": MAX_CONFIG_ENTRIES,
        "additionalProperties": {"type": "string", "maxLength": 4096},
        "x-kubernetes-validations": [{
            "rule": format!("self.all(k, k in [{list}])"),
            "messageExpression": format!(
                "'unknown {what} key(s): ' + self.filter(k, !(k in [{list}])).join(', ')"
            ),
        }],
    })
}

/// A list of objects whose shape the API server does not check (the controller's own JSON).
pub(crate) fn opaque_objects(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
    })
}
