//! DescribeConfigs: a topic's configs with the value in force and where it comes from, and
//! this broker's static config.
//!
//! A topic config's value is, in order of precedence: the topic's override
//! (DYNAMIC_TOPIC_CONFIG), the broker's `log.*` setting from its config file, environment or
//! flags (STATIC_BROKER_CONFIG), or Kafka's default (DEFAULT_CONFIG). Synonyms list every
//! layer that has a value, highest first, as Kafka does; the default is listed under the first
//! broker key of the topic config (`log.retention.ms` for `retention.ms`), or under the topic
//! key where the broker has none, with the topic default. Broker configs are all read-only:
//! Weir has no dynamic broker configs, so the empty broker name (the cluster-wide dynamic
//! defaults) describes no configs at all, as it does on a Kafka cluster that has none.

use std::borrow::Cow;
use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use weir_controller::{ConfigKind, TOPIC_CONFIGS, TopicConfigDef};

use super::config_resource::{self, BROKER, ResourceError, TOPIC};
use crate::broker::Broker;
use crate::config::{BrokerConfig, broker_keys_for_topic_key};

/// `DescribeConfigsResponse.ConfigSource` codes.
mod source {
    pub(super) const DYNAMIC_TOPIC_CONFIG: i8 = 1;
    pub(super) const STATIC_BROKER_CONFIG: i8 = 4;
    pub(super) const DEFAULT_CONFIG: i8 = 5;
}

/// One config as described, before it is put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: &'static str,
    value: Option<String>,
    source: i8,
    read_only: bool,
    sensitive: bool,
    /// `(name, value, source)`, highest precedence first.
    synonyms: Vec<(String, Option<String>, i8)>,
    kind: ConfigKind,
    doc: Cow<'static, str>,
}

pub(super) fn handle(broker: &Broker, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let entries = describe(broker, &resource);
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match entries {
                Ok(entries) => {
                    let wanted = resource.configuration_keys.filter(|k| !k.is_empty());
                    let configs = entries
                        .into_iter()
                        .filter(|e| {
                            wanted
                                .as_ref()
                                .is_none_or(|keys| keys.iter().any(|k| &**k == e.name))
                        })
                        .map(|e| {
                            to_wire(e, request.include_synonyms, request.include_documentation)
                        })
                        .collect();
                    result.with_configs(configs)
                }
                Err(e) => result
                    .with_error_code(e.code())
                    .with_error_message(e.message()),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe(
    broker: &Broker,
    resource: &DescribeConfigsResource,
) -> Result<Vec<Entry>, ResourceError> {
    let name = resource.resource_name.as_str();
    match resource.resource_type {
        TOPIC => {
            let topic = config_resource::topic_name(name)?;
            let metadata = broker.metadata();
            let topic =
                metadata
                    .topic(topic.as_str())
                    .ok_or_else(|| ResourceError::UnknownTopic {
                        name: name.to_owned(),
                    })?;
            Ok(topic_entries(&topic.configs, &broker.config))
        }
        BROKER => {
            if config_resource::is_this_broker(name, broker.config.node_id)? {
                Ok(broker_entries(&broker.config))
            } else {
                Ok(Vec::new())
            }
        }
        resource_type => Err(ResourceError::UnsupportedType { resource_type }),
    }
}

fn to_wire(entry: Entry, synonyms: bool, documentation: bool) -> DescribeConfigsResourceResult {
    let string = |s: String| StrBytes::from_string(s);
    let synonyms = if synonyms {
        entry
            .synonyms
            .into_iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(string(name))
                    .with_value(value.map(string))
                    .with_source(source)
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(entry.name))
        .with_value(entry.value.map(string))
        .with_read_only(entry.read_only)
        .with_config_source(entry.source)
        .with_is_sensitive(entry.sensitive)
        .with_synonyms(synonyms)
        .with_config_type(config_type(entry.kind))
        .with_documentation(documentation.then(|| string(entry.doc.into_owned())))
}

/// `DescribeConfigsResponse.ConfigType` of a config kind.
fn config_type(kind: ConfigKind) -> i8 {
    match kind {
        ConfigKind::Boolean => 1,
        ConfigKind::String => 2,
        ConfigKind::Int => 3,
        ConfigKind::Long => 5,
        ConfigKind::Double => 6,
        ConfigKind::List => 7,
        ConfigKind::Class => 8,
        ConfigKind::Password => 9,
    }
}

/// Every topic config with the value in force for a topic with `overrides` on this broker.
fn topic_entries(overrides: &BTreeMap<String, String>, config: &BrokerConfig) -> Vec<Entry> {
    let broker_defaults = BrokerConfig::default();
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let sensitive = def.kind == ConfigKind::Password;
            let shown = |v: &str| (!sensitive).then(|| v.to_owned());
            let mut synonyms = Vec::new();
            if let Some(value) = overrides.get(def.name) {
                synonyms.push((
                    def.name.to_owned(),
                    shown(value),
                    source::DYNAMIC_TOPIC_CONFIG,
                ));
            }
            let broker_keys: Vec<&str> = broker_keys_for_topic_key(def.name).collect();
            for key in &broker_keys {
                if let Some(value) = config.explicit.get(*key) {
                    synonyms.push((
                        (*key).to_owned(),
                        shown(value),
                        source::STATIC_BROKER_CONFIG,
                    ));
                }
            }
            let default = def.default.map(str::to_owned);
            let (default_name, default_value) = match broker_keys.first() {
                Some(key) => (*key, broker_defaults.value_of(key).or(default)),
                None => (def.name, default),
            };
            if default_value.is_some() {
                synonyms.push((
                    default_name.to_owned(),
                    default_value.filter(|_| !sensitive),
                    source::DEFAULT_CONFIG,
                ));
            }
            let source = synonyms
                .first()
                .map_or(source::DEFAULT_CONFIG, |(_, _, s)| *s);
            // The broker's log defaults hold whichever of several synonyms (hours, minutes,
            // ms) was set, already converted to the topic key's unit.
            let value = match source {
                source::DYNAMIC_TOPIC_CONFIG => overrides.get(def.name).cloned(),
                source::STATIC_BROKER_CONFIG => config.log_defaults.get(def.name),
                _ => def.default.map(str::to_owned),
            };
            Entry {
                name: def.name,
                value: value.filter(|_| !sensitive),
                source,
                read_only: false,
                sensitive,
                synonyms,
                kind: def.kind,
                doc: Cow::Borrowed(def.doc),
            }
        })
        .collect()
}

/// Every broker key with its value; all read-only.
fn broker_entries(config: &BrokerConfig) -> Vec<Entry> {
    let defaults = BrokerConfig::default();
    BrokerConfig::known_keys()
        .map(|key| {
            let (kind, doc) = broker_key_info(key);
            let explicit = config.explicit.contains_key(key);
            let value = config.value_of(key);
            let mut synonyms = Vec::new();
            if explicit {
                synonyms.push((key.to_owned(), value.clone(), source::STATIC_BROKER_CONFIG));
            }
            if let Some(default) = defaults.value_of(key) {
                synonyms.push((key.to_owned(), Some(default), source::DEFAULT_CONFIG));
            }
            Entry {
                name: key,
                value,
                source: if explicit {
                    source::STATIC_BROKER_CONFIG
                } else {
                    source::DEFAULT_CONFIG
                },
                read_only: true,
                sensitive: false,
                synonyms,
                kind,
                doc,
            }
        })
        .collect()
}

/// The type and documentation of a broker key. The `log.*` keys (and `message.max.bytes`)
/// are the broker-wide defaults of topic configs and take their type from them.
fn broker_key_info(key: &'static str) -> (ConfigKind, Cow<'static, str>) {
    use ConfigKind::{Boolean, Int, List, Long, String as Str};
    let (kind, doc) = match key {
        "node.id" => (Int, "The id of this node in the cluster."),
        "broker.id" => (Int, "Another name for node.id."),
        "process.roles" => (
            List,
            "The roles this process plays: broker, controller or both.",
        ),
        "listeners" => (
            Str,
            "The addresses the broker listens on, as NAME://host:port; each listener name and port once.",
        ),
        "controller.listener" => (
            Str,
            "Where a process with the controller role serves the gRPC control plane (host:port).",
        ),
        "controller.quorum.bootstrap.servers" => (
            List,
            "The controller's gRPC address(es), host:port, for a broker without the controller role.",
        ),
        "controller.cluster.name" => (
            Str,
            "The cluster name a multi-cluster controller (the Kubernetes operator) knows this broker's cluster by, sent with every controller RPC; set by the operator. Unset for a controller of one cluster.",
        ),
        "broker.heartbeat.interval.ms" => {
            (Long, "How often the broker heartbeats to the controller.")
        }
        "broker.session.timeout.ms" => (
            Long,
            "How long the controller waits for a heartbeat before it fences a broker.",
        ),
        "controlled.shutdown.enable" => (
            Boolean,
            "Move leadership off the broker before it stops on SIGTERM.",
        ),
        "controlled.shutdown.max.retries" => (
            Int,
            "Controlled shutdown attempts before the broker stops anyway.",
        ),
        "controlled.shutdown.retry.backoff.ms" => {
            (Long, "The wait between controlled shutdown attempts.")
        }
        "min.insync.replicas" => (
            Int,
            "The in-sync replicas an acks=all write needs, for topics that do not set it.",
        ),
        "auto.leader.rebalance.enable" => (
            Boolean,
            "The controller moves leadership back to preferred replicas when brokers are imbalanced.",
        ),
        "leader.imbalance.check.interval.seconds" => {
            (Long, "How often the controller checks the leader balance.")
        }
        "leader.imbalance.per.broker.percentage" => (
            Int,
            "The share of a broker's preferred partitions led elsewhere that triggers a rebalance.",
        ),
        "advertised.listeners" => (
            Str,
            "The addresses clients and other brokers are told to connect to, per listener name (a subset of the names in listeners); listeners when unset. A client is given each broker's address on the listener it connected to.",
        ),
        "listener.security.protocol.map" => (
            Str,
            "The security protocol of each listener name, as NAME:PROTOCOL pairs. Every listener must map to PLAINTEXT, the only protocol Weir supports.",
        ),
        "inter.broker.listener.name" => (
            Str,
            "The listener brokers connect to each other on (follower fetches, transaction markers); the first of advertised.listeners when unset.",
        ),
        "log.dirs" => (Str, "The directory the partition logs are kept in."),
        "log.dir" => (Str, "Another name for log.dirs."),
        "http.listener" => (Str, "Where /metrics, /healthz and /readyz are served."),
        "num.partitions" => (Int, "Partitions of a topic created without a count."),
        "default.replication.factor" => (
            Int,
            "Replicas of each partition of a topic created without a replication factor.",
        ),
        "auto.create.topics.enable" => (
            Boolean,
            "Whether a topic that a client asks for and that does not exist is created.",
        ),
        "socket.request.max.bytes" => (Int, "The largest request the broker accepts."),
        "max.connections" => (Int, "The most client connections served at once."),
        "log.retention.check.interval.ms" => (
            Long,
            "How often logs are checked for segments past retention.",
        ),
        "log.flush.offset.checkpoint.interval.ms" => {
            (Int, "How often the recovery point checkpoint is written.")
        }
        "log.writeback.interval.bytes" => (
            Long,
            "Start writing a partition's appended bytes to disk every this many bytes (0: leave it to the kernel).",
        ),
        "log.cache.retain.bytes" => (
            Long,
            "Drop written data from the page cache once it is this many bytes behind its partition's end (-1: never).",
        ),
        "broker.rack" => (Str, "The rack this broker is in."),
        "producer.id.expiration.ms" => (
            Int,
            "How long an idempotent producer may stay idle before its state is forgotten.",
        ),
        "group.min.session.timeout.ms" => {
            (Int, "The shortest session timeout a member may ask for.")
        }
        "group.max.session.timeout.ms" => {
            (Int, "The longest session timeout a member may ask for.")
        }
        "group.max.size" => (Int, "The most members a consumer group may have."),
        "group.initial.rebalance.delay.ms" => (
            Int,
            "How long an empty group's first rebalance waits for more members to join.",
        ),
        "offset.metadata.max.bytes" => (
            Int,
            "The longest metadata string an offset commit may carry.",
        ),
        "offsets.retention.minutes" => (
            Int,
            "How long committed offsets are kept once their group is empty (or after the commit, for groups without members).",
        ),
        "offsets.retention.check.interval.ms" => (Long, "How often expired offsets are removed."),
        "offsets.topic.num.partitions" => {
            (Int, "Partitions of __consumer_offsets when it is created.")
        }
        "offsets.topic.replication.factor" => (
            Int,
            "Replicas of each __consumer_offsets partition (at most the number of brokers).",
        ),
        "offsets.topic.segment.bytes" => (Int, "segment.bytes of __consumer_offsets."),
        "transaction.state.log.num.partitions" => {
            (Int, "Partitions of __transaction_state when it is created.")
        }
        "transaction.state.log.replication.factor" => (
            Int,
            "Replicas of each __transaction_state partition (at most the number of brokers).",
        ),
        "transaction.state.log.min.isr" => (
            Int,
            "min.insync.replicas of __transaction_state (at most its replication factor).",
        ),
        "transaction.state.log.segment.bytes" => (Int, "segment.bytes of __transaction_state."),
        "transaction.max.timeout.ms" => (
            Int,
            "The longest transaction.timeout.ms a transactional producer may ask for.",
        ),
        "transactional.id.expiration.ms" => (
            Int,
            "How long a transactional id without an open transaction is kept after its last use.",
        ),
        "transaction.abort.timed.out.transaction.cleanup.interval.ms" => (
            Int,
            "How often transactions open past their timeout are looked for and aborted.",
        ),
        "transaction.remove.expired.transaction.cleanup.interval.ms" => (
            Int,
            "How often expired transactional ids are looked for and removed.",
        ),
        "transaction.partition.verification.enable" => (
            Boolean,
            "Whether a partition leader verifies with the transaction coordinator that a transactional write belongs to an ongoing transaction before it opens one in the partition (KIP-890).",
        ),
        "replica.lag.time.max.ms" => (
            Long,
            "How long a follower may go without catching up with the leader before it leaves the ISR.",
        ),
        "replica.fetch.max.bytes" => (Int, "Bytes a follower fetches per partition."),
        "replica.fetch.response.max.bytes" => (Int, "Bytes a follower fetches per request."),
        "replica.fetch.wait.max.ms" => (
            Int,
            "How long the leader may hold a follower's fetch while it has no new data.",
        ),
        "replica.fetch.min.bytes" => (
            Int,
            "Bytes the leader waits for before answering a follower's fetch.",
        ),
        "replica.fetch.backoff.ms" => (Int, "How long a follower waits after a failed fetch."),
        "replica.socket.timeout.ms" => (
            Int,
            "Connect and request timeout of a follower's connection to its leader.",
        ),
        _ => {
            let Some(topic) = topic_config_of(key) else {
                return (Str, Cow::Borrowed(""));
            };
            let (kind, unit) = match key.rsplit('.').next() {
                Some("hours") => (Int, " (in hours)"),
                Some("minutes") => (Int, " (in minutes)"),
                _ => (topic.kind, ""),
            };
            return (
                kind,
                Cow::Owned(format!(
                    "The default of the topic config {}{unit}: {}",
                    topic.name, topic.doc
                )),
            );
        }
    };
    (kind, Cow::Borrowed(doc))
}

/// The topic config a broker key is the default of, if any.
fn topic_config_of(broker_key: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS
        .iter()
        .find(|def| broker_keys_for_topic_key(def.name).any(|k| k == broker_key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_controller::topic_config_def;

    fn entry<'a>(entries: &'a [Entry], name: &str) -> &'a Entry {
        entries
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no entry {name}"))
    }

    fn broker_config(settings: &[(&str, &str)]) -> BrokerConfig {
        let mut config = BrokerConfig::default();
        let settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        config.apply(&settings).unwrap();
        config
    }

    #[test]
    fn topic_configs_default_to_kafkas_defaults() {
        let entries = topic_entries(&BTreeMap::new(), &BrokerConfig::default());
        assert_eq!(entries.len(), TOPIC_CONFIGS.len());
        for e in &entries {
            assert_eq!(e.source, source::DEFAULT_CONFIG, "{}", e.name);
            assert_eq!(
                e.value.as_deref(),
                topic_config_def(e.name).and_then(|d| d.default),
                "{}",
                e.name
            );
            assert!(!e.read_only && !e.sensitive, "{}", e.name);
            assert!(
                e.synonyms.iter().all(|s| s.2 == source::DEFAULT_CONFIG),
                "{}",
                e.name
            );
        }
        let segment = entry(&entries, "segment.bytes");
        assert_eq!(
            segment.synonyms,
            [(
                "log.segment.bytes".to_owned(),
                Some("1073741824".to_owned()),
                source::DEFAULT_CONFIG
            )]
        );
    }

    #[test]
    fn broker_log_defaults_agree_with_the_topic_table() {
        // A broker that sets nothing must describe the same values as the topic table.
        let log = crate::log::LogConfig::default();
        for key in crate::log::config::LOG_CONFIG_KEYS {
            assert_eq!(
                log.get(key).as_deref(),
                topic_config_def(key).and_then(|d| d.default),
                "{key}"
            );
        }
    }

    #[test]
    fn an_override_is_a_dynamic_topic_config_above_the_broker_setting() {
        let config = broker_config(&[("log.retention.hours", "2")]);
        let overrides = BTreeMap::from([("retention.ms".to_owned(), "1000".to_owned())]);
        let entries = topic_entries(&overrides, &config);
        let retention = entry(&entries, "retention.ms");
        assert_eq!(retention.value.as_deref(), Some("1000"));
        assert_eq!(retention.source, source::DYNAMIC_TOPIC_CONFIG);
        let sources: Vec<(&str, i8)> = retention
            .synonyms
            .iter()
            .map(|(n, _, s)| (n.as_str(), *s))
            .collect();
        assert_eq!(
            sources,
            [
                ("retention.ms", source::DYNAMIC_TOPIC_CONFIG),
                ("log.retention.hours", source::STATIC_BROKER_CONFIG),
                ("log.retention.ms", source::DEFAULT_CONFIG),
            ]
        );
    }

    #[test]
    fn a_broker_setting_is_a_static_broker_config_in_the_topics_unit() {
        let config = broker_config(&[
            ("log.retention.hours", "2"),
            ("log.cleanup.policy", "compact"),
        ]);
        let entries = topic_entries(&BTreeMap::new(), &config);
        let retention = entry(&entries, "retention.ms");
        assert_eq!(retention.source, source::STATIC_BROKER_CONFIG);
        assert_eq!(retention.value.as_deref(), Some("7200000"));
        assert_eq!(
            retention.synonyms[0],
            (
                "log.retention.hours".to_owned(),
                Some("2".to_owned()),
                source::STATIC_BROKER_CONFIG
            )
        );
        let cleanup = entry(&entries, "cleanup.policy");
        assert_eq!(
            (cleanup.source, cleanup.value.as_deref()),
            (source::STATIC_BROKER_CONFIG, Some("compact"))
        );
        let untouched = entry(&entries, "segment.ms");
        assert_eq!(untouched.source, source::DEFAULT_CONFIG);
    }

    #[test]
    fn broker_configs_are_read_only_with_explicit_ones_static() {
        let config = broker_config(&[("num.partitions", "6"), ("log.retention.hours", "2")]);
        let entries = broker_entries(&config);
        assert_eq!(entries.len(), BrokerConfig::known_keys().count());
        assert!(entries.iter().all(|e| e.read_only));
        let partitions = entry(&entries, "num.partitions");
        assert_eq!(
            (partitions.source, partitions.value.as_deref()),
            (source::STATIC_BROKER_CONFIG, Some("6"))
        );
        assert_eq!(
            partitions.synonyms,
            [
                (
                    "num.partitions".to_owned(),
                    Some("6".to_owned()),
                    source::STATIC_BROKER_CONFIG
                ),
                (
                    "num.partitions".to_owned(),
                    Some("1".to_owned()),
                    source::DEFAULT_CONFIG
                ),
            ]
        );
        let hours = entry(&entries, "log.retention.hours");
        assert_eq!(hours.value.as_deref(), Some("2"));
        let auto = entry(&entries, "auto.create.topics.enable");
        assert_eq!(
            (auto.source, auto.value.as_deref()),
            (source::DEFAULT_CONFIG, Some("true"))
        );
        let rack = entry(&entries, "broker.rack");
        assert_eq!(rack.value, None);
    }

    #[test]
    fn the_controller_cluster_name_is_shown_when_set_with_its_documentation() {
        let unset = broker_entries(&BrokerConfig::default());
        let entry_unset = entry(&unset, "controller.cluster.name");
        assert_eq!(
            (entry_unset.value.as_deref(), entry_unset.kind),
            (None, ConfigKind::String)
        );
        assert!(entry_unset.doc.contains("operator"), "{}", entry_unset.doc);
        let set = broker_entries(&broker_config(&[(
            "controller.cluster.name",
            "weir-system/orders",
        )]));
        let entry_set = entry(&set, "controller.cluster.name");
        assert_eq!(
            (entry_set.source, entry_set.value.as_deref()),
            (source::STATIC_BROKER_CONFIG, Some("weir-system/orders"))
        );
    }

    #[test]
    fn every_broker_key_has_a_type_and_documentation() {
        for key in BrokerConfig::known_keys() {
            let (kind, doc) = broker_key_info(key);
            assert!(!doc.is_empty(), "{key} has no documentation");
            if let Some(topic) = topic_config_of(key) {
                assert!(doc.contains(topic.name), "{key}: {doc}");
                if !key.ends_with("hours") && !key.ends_with("minutes") {
                    assert_eq!(kind, topic.kind, "{key}");
                }
            }
        }
        assert_eq!(broker_key_info("log.retention.hours").0, ConfigKind::Int);
    }

    #[test]
    fn documentation_and_synonyms_go_on_the_wire_only_when_asked() {
        let entries = topic_entries(&BTreeMap::new(), &BrokerConfig::default());
        let e = entry(&entries, "segment.bytes").clone();
        let bare = to_wire(e.clone(), false, false);
        assert!(bare.synonyms.is_empty() && bare.documentation.is_none());
        assert_eq!(bare.config_type, 3);
        let full = to_wire(e, true, true);
        assert_eq!(full.synonyms.len(), 1);
        assert!(full.documentation.is_some_and(|d| !d.is_empty()));
    }
}
