//! The validate step of the `Cluster` reconciler: turns a `Cluster` into a
//! [`ValidCluster`] or an [`InvalidSpec`] that names what is wrong. Pure; the reconciler
//! reports an invalid spec as `Ready=False` and waits for the next change.
//!
//! The schema already refused what CEL can express (unknown or operator-managed config
//! keys, counts out of range, listener shapes); this step checks what needs the broker's
//! own code: every broker's full config is parsed and cross-checked with
//! [`BrokerConfig`], exactly as the broker will at start.

use std::collections::BTreeMap;

use kube::ResourceExt as _;
use weir_broker::config::BrokerConfig;

use super::names::Names;
use super::properties;
use crate::crd::{Cluster, ClusterSpec, MAX_BROKERS, schema};

/// Where the broker image and the controller come from when the spec does not say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDefaults {
    /// The broker image of this operator release (`spec.image` overrides it).
    pub broker_image: String,
    /// `host:port` where brokers reach the controller the operator hosts.
    pub controller_address: String,
}

/// Why a spec cannot be built; `reason` is the condition reason, the Display the message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidSpec {
    #[error("the Cluster has no {what}")]
    MissingMetadata { what: &'static str },
    #[error("spec.brokers must be between 1 and {MAX_BROKERS}, not {brokers}")]
    BrokerCount { brokers: i32 },
    #[error("spec.config: `{key}` is set by the operator for each broker and cannot be overridden")]
    ManagedKey { key: String },
    #[error("spec.config: {source}")]
    BrokerConfig {
        #[source]
        source: weir_broker::config::ConfigError,
    },
    #[error("spec.config: `{key}` is {value}, more than the {brokers} broker(s) the Cluster has")]
    ReplicationAboveBrokers {
        key: &'static str,
        value: i64,
        brokers: i32,
    },
    #[error("spec.storage.size `{size}` is not a Kubernetes quantity of bytes (e.g. 100Gi)")]
    StorageSize { size: String },
}

impl InvalidSpec {
    /// The condition reason (CamelCase, as Kubernetes conditions have).
    pub fn reason(&self) -> &'static str {
        match self {
            InvalidSpec::MissingMetadata { .. } => "InvalidMetadata",
            InvalidSpec::BrokerCount { .. } => "InvalidBrokerCount",
            InvalidSpec::ManagedKey { .. } | InvalidSpec::BrokerConfig { .. } => {
                "InvalidBrokerConfig"
            }
            InvalidSpec::ReplicationAboveBrokers { .. } => "ReplicationFactorAboveBrokers",
            InvalidSpec::StorageSize { .. } => "InvalidStorage",
        }
    }
}

/// A `Cluster` whose spec builds: names resolved, image chosen, and each broker's config
/// file already rendered and accepted by the broker's config code.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidCluster {
    pub names: Names,
    pub spec: ClusterSpec,
    pub image: String,
    /// `<pod>.properties` → file contents, one per broker id.
    pub broker_configs: BTreeMap<String, String>,
    /// The settings every broker shares (all but its identity and addresses): what a
    /// change must restart existing brokers for. Scaling adds files but changes none of
    /// these.
    pub shared_settings: Vec<(String, String)>,
}

/// Replication settings that cannot exceed the broker count: every CreateTopics without a
/// replication factor would fail. (The internal topics' factors are capped at the live
/// brokers by the broker, as a single-node Kafka does for development.)
const REPLICATION_KEYS: &[&str] = &["default.replication.factor"];

pub fn validate(
    cluster: &Cluster,
    defaults: &ClusterDefaults,
) -> Result<ValidCluster, InvalidSpec> {
    let namespace = cluster
        .namespace()
        .ok_or(InvalidSpec::MissingMetadata { what: "namespace" })?;
    if cluster.metadata.name.is_none() {
        return Err(InvalidSpec::MissingMetadata { what: "name" });
    }
    let spec = &cluster.spec;
    if !(1..=MAX_BROKERS).contains(&spec.brokers) {
        return Err(InvalidSpec::BrokerCount {
            brokers: spec.brokers,
        });
    }
    if let Some(key) = spec
        .config
        .keys()
        .find(|k| schema::OPERATOR_MANAGED_BROKER_KEYS.contains(&k.as_str()))
    {
        return Err(InvalidSpec::ManagedKey { key: key.clone() });
    }
    if properties::parse_quantity_bytes(&spec.storage.size.0).is_none() {
        return Err(InvalidSpec::StorageSize {
            size: spec.storage.size.0.clone(),
        });
    }
    let names = Names::new(&cluster.name_any(), &namespace);
    let mut broker_configs = BTreeMap::new();
    let mut shared_settings = Vec::new();
    for id in 0..spec.brokers {
        let settings = properties::broker_settings(&names, spec, id, &defaults.controller_address);
        let mut config = BrokerConfig::default();
        config
            .apply(&settings)
            .and_then(|()| config.validate())
            .map_err(|source| InvalidSpec::BrokerConfig { source })?;
        if id == 0 {
            check_replication(&config, spec.brokers)?;
            shared_settings = properties::shared(&settings);
        }
        broker_configs.insert(
            names.broker_config_file(id),
            properties::render(&names, &settings),
        );
    }
    Ok(ValidCluster {
        image: spec
            .image
            .clone()
            .unwrap_or_else(|| defaults.broker_image.clone()),
        names,
        spec: spec.clone(),
        broker_configs,
        shared_settings,
    })
}

fn check_replication(config: &BrokerConfig, brokers: i32) -> Result<(), InvalidSpec> {
    for key in REPLICATION_KEYS {
        let value = config
            .value_of(key)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(1);
        if value > i64::from(brokers) {
            return Err(InvalidSpec::ReplicationAboveBrokers {
                key,
                value,
                brokers,
            });
        }
    }
    Ok(())
}
