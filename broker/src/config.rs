//! Broker configuration: Kafka's key names and defaults, from a properties file, the
//! environment and the command line.
//!
//! Precedence, lowest first: the defaults here, the `--config` file (Kafka's
//! `server.properties` syntax), environment variables `WEIR_<KEY>` (the key upper-cased with
//! `.` as `_`, e.g. `WEIR_AUTO_CREATE_TOPICS_ENABLE=false`), then `--override key=value` and
//! the dedicated flags. Unknown keys are refused so a typo is never silently ignored.
//! [`BrokerConfig::validate`] checks cross-field rules; every error names the key.

mod controller_cluster;
mod listeners;
mod transactions;
pub use listeners::{Listener, SecurityProtocol, SecurityProtocolMap};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
pub use transactions::TransactionSettings;

use thiserror::Error;
use weir_controller::ListenerName;

use crate::coordinator::group::GroupConfig;
use crate::log::LogConfig;
use crate::replication::ReplicationConfig;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown broker config key `{key}`")]
    UnknownKey { key: String },
    #[error("invalid value `{value}` for `{key}`: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("cannot read config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{path} line {line}: expected `key=value`")]
    Syntax { path: PathBuf, line: usize },
}

/// Everything the broker process is configured with.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// `node.id`
    pub node_id: i32,
    /// `process.roles`: `broker`, `controller`, or both (the standalone default).
    pub process_roles: Vec<String>,
    /// `controller.listener` (Weir's key; Kafka names a CONTROLLER listener instead): where
    /// a process with the controller role serves the gRPC control plane.
    pub controller_listener: SocketAddr,
    /// `controller.quorum.bootstrap.servers`: the controller's gRPC address(es), `host:port`,
    /// for a process with the broker role only.
    pub controller_servers: Vec<String>,
    /// `controller.cluster.name` (Weir's key, unset): the name a multi-cluster controller
    /// knows this broker's cluster by, sent with every controller RPC; set by the operator.
    pub controller_cluster_name: Option<String>,
    /// `broker.heartbeat.interval.ms` (2000): how often a broker heartbeats to the controller.
    pub broker_heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms` (9000): a broker that has not heartbeated for this long is
    /// fenced by the controller (controller role).
    pub broker_session_timeout_ms: u64,
    /// `controlled.shutdown.enable` (true): on SIGTERM, move leadership away before stopping.
    pub controlled_shutdown_enable: bool,
    /// `controlled.shutdown.max.retries` (3) and `controlled.shutdown.retry.backoff.ms` (5000):
    /// how long a controlled shutdown waits for leadership to move before the broker stops anyway.
    pub controlled_shutdown_max_retries: u32,
    pub controlled_shutdown_retry_backoff_ms: u64,
    /// `auto.leader.rebalance.enable` (true), `leader.imbalance.check.interval.seconds` (300)
    /// and `leader.imbalance.per.broker.percentage` (10): the controller moves leadership back
    /// to preferred replicas (controller role).
    pub auto_leader_rebalance_enable: bool,
    /// `min.insync.replicas` (1): the default for topics that do not set it.
    pub min_insync_replicas: usize,
    pub leader_imbalance_check_interval_seconds: u64,
    pub leader_imbalance_per_broker_percentage: u32,
    /// `listeners`: every one is bound, and a request is answered with the brokers'
    /// endpoints on the listener it arrived on.
    pub listeners: Vec<Listener>,
    /// `advertised.listeners` (defaults to `listeners`): registered with the controller.
    pub advertised_listeners: Vec<Listener>,
    /// `listener.security.protocol.map` (Kafka's default maps PLAINTEXT, SSL,
    /// SASL_PLAINTEXT and SASL_SSL to themselves); every listener must map to PLAINTEXT.
    pub listener_security_protocol_map: SecurityProtocolMap,
    /// `inter.broker.listener.name`: see [`BrokerConfig::inter_broker_listener`].
    pub inter_broker_listener_name: Option<ListenerName>,
    /// `log.dirs`: the data directory (`--data-dir`).
    pub data_dir: PathBuf,
    /// `http.listener`: where `/metrics`, `/healthz` and `/readyz` are served.
    pub http_listener: SocketAddr,
    /// `num.partitions`
    pub num_partitions: i32,
    /// `default.replication.factor`
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable`
    pub auto_create_topics: bool,
    /// `socket.request.max.bytes`
    pub socket_request_max_bytes: usize,
    /// `max.connections`
    pub max_connections: usize,
    /// `log.retention.check.interval.ms`
    pub retention_check_interval_ms: u64,
    /// `log.flush.offset.checkpoint.interval.ms`
    pub checkpoint_interval_ms: u64,
    /// `broker.rack`
    pub rack: Option<String>,
    /// `producer.id.expiration.ms`: idempotent producers idle this long are forgotten.
    pub producer_id_expiration_ms: i64,
    /// Topic-level defaults from the broker's `log.*` / `message.max.bytes` keys.
    pub log_defaults: LogConfig,
    /// The group coordinator's `group.*` / `offset*` settings.
    pub group: GroupConfig,
    /// `offsets.topic.num.partitions` (50): partitions of `__consumer_offsets`, fixed once the
    /// topic exists (a group's coordinator is chosen by hashing over them).
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor` (3). Kafka refuses to create `__consumer_offsets`
    /// while fewer brokers are alive; Weir creates it with as many replicas as there are
    /// brokers, up to this, so a standalone broker serves groups out of the box.
    pub offsets_topic_replication_factor: i16,
    /// `offsets.topic.segment.bytes` (100 MiB): `segment.bytes` of `__consumer_offsets`.
    pub offsets_topic_segment_bytes: i32,
    /// The `replica.*` settings: follower fetching and ISR membership.
    pub replication: ReplicationConfig,
    /// The transaction coordinator's `transaction.*` settings.
    pub transactions: TransactionSettings,
    /// Every key that was set explicitly, as given (for logging and DescribeConfigs).
    pub explicit: BTreeMap<String, String>,
}

/// Broker keys whose value becomes a topic-level default: (broker key, topic key, unit
/// multiplier to milliseconds where the broker key is in hours or minutes).
const LOG_DEFAULT_KEYS: &[(&str, &str, i64)] = &[
    ("log.segment.bytes", "segment.bytes", 1),
    ("log.roll.ms", "segment.ms", 1),
    ("log.roll.hours", "segment.ms", 3_600_000),
    ("log.roll.jitter.ms", "segment.jitter.ms", 1),
    ("log.index.size.max.bytes", "segment.index.bytes", 1),
    ("log.index.interval.bytes", "index.interval.bytes", 1),
    ("log.retention.ms", "retention.ms", 1),
    ("log.retention.minutes", "retention.ms", 60_000),
    ("log.retention.hours", "retention.ms", 3_600_000),
    ("log.retention.bytes", "retention.bytes", 1),
    ("message.max.bytes", "max.message.bytes", 1),
    ("log.message.timestamp.type", "message.timestamp.type", 0),
    ("log.flush.interval.messages", "flush.messages", 1),
    ("log.flush.interval.ms", "flush.ms", 1),
    ("log.cleanup.policy", "cleanup.policy", 0),
    ("log.cleaner.delete.retention.ms", "delete.retention.ms", 1),
    (
        "log.cleaner.min.cleanable.ratio",
        "min.cleanable.dirty.ratio",
        0,
    ),
    (
        "log.cleaner.min.compaction.lag.ms",
        "min.compaction.lag.ms",
        1,
    ),
    (
        "log.cleaner.max.compaction.lag.ms",
        "max.compaction.lag.ms",
        1,
    ),
];

const BROKER_KEYS: &[&str] = &[
    "node.id",
    "broker.id",
    "process.roles",
    "controller.listener",
    "controller.quorum.bootstrap.servers",
    controller_cluster::KEY,
    "broker.heartbeat.interval.ms",
    "broker.session.timeout.ms",
    "controlled.shutdown.enable",
    "controlled.shutdown.max.retries",
    "controlled.shutdown.retry.backoff.ms",
    "auto.leader.rebalance.enable",
    "min.insync.replicas",
    "leader.imbalance.check.interval.seconds",
    "leader.imbalance.per.broker.percentage",
    "listeners",
    "advertised.listeners",
    "log.dirs",
    "log.dir",
    "http.listener",
    "num.partitions",
    "default.replication.factor",
    "auto.create.topics.enable",
    "socket.request.max.bytes",
    "max.connections",
    "log.retention.check.interval.ms",
    "log.flush.offset.checkpoint.interval.ms",
    "log.writeback.interval.bytes",
    "log.cache.retain.bytes",
    "broker.rack",
    "producer.id.expiration.ms",
    "group.min.session.timeout.ms",
    "group.max.session.timeout.ms",
    "group.max.size",
    "group.initial.rebalance.delay.ms",
    "offset.metadata.max.bytes",
    "offsets.retention.minutes",
    "offsets.retention.check.interval.ms",
    "offsets.topic.num.partitions",
    "offsets.topic.replication.factor",
    "offsets.topic.segment.bytes",
    "replica.lag.time.max.ms",
    "replica.fetch.max.bytes",
    "replica.fetch.response.max.bytes",
    "replica.fetch.wait.max.ms",
    "replica.fetch.min.bytes",
    "replica.fetch.backoff.ms",
    "replica.socket.timeout.ms",
];

impl Default for BrokerConfig {
    fn default() -> Self {
        let listener = Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092,
        };
        BrokerConfig {
            node_id: 1,
            process_roles: vec!["broker".into(), "controller".into()],
            controller_listener: "127.0.0.1:9093".parse().expect("literal"),
            controller_servers: Vec::new(),
            controller_cluster_name: None,
            broker_heartbeat_interval_ms: 2000,
            broker_session_timeout_ms: 9000,
            controlled_shutdown_enable: true,
            controlled_shutdown_max_retries: 3,
            controlled_shutdown_retry_backoff_ms: 5000,
            auto_leader_rebalance_enable: true,
            min_insync_replicas: 1,
            leader_imbalance_check_interval_seconds: 300,
            leader_imbalance_per_broker_percentage: 10,
            listeners: vec![listener.clone()],
            advertised_listeners: vec![listener],
            listener_security_protocol_map: SecurityProtocolMap::default(),
            inter_broker_listener_name: None,
            data_dir: PathBuf::from("./weir-data"),
            http_listener: "127.0.0.1:9094".parse().expect("literal"),
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics: true,
            socket_request_max_bytes: 104_857_600,
            max_connections: 10_000,
            retention_check_interval_ms: 300_000,
            checkpoint_interval_ms: 60_000,
            rack: None,
            producer_id_expiration_ms:
                crate::log::producer_state::DEFAULT_PRODUCER_ID_EXPIRATION_MS,
            log_defaults: LogConfig::default(),
            group: GroupConfig::default(),
            offsets_topic_num_partitions: 50,
            offsets_topic_replication_factor: 3,
            offsets_topic_segment_bytes: 104_857_600,
            replication: ReplicationConfig::default(),
            transactions: TransactionSettings::default(),
            explicit: BTreeMap::new(),
        }
    }
}

/// Reads a Kafka-style properties file: `key=value` lines, `#` and `!` comments.
pub fn read_properties(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .or_else(|| line.split_once(':'))
            .ok_or(ConfigError::Syntax {
                path: path.to_path_buf(),
                line: i + 1,
            })?;
        out.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(out)
}

/// `WEIR_*` environment variables as config keys (`WEIR_NUM_PARTITIONS` → `num.partitions`).
pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    vars.into_iter()
        .filter_map(|(k, v)| {
            let key = k
                .strip_prefix("WEIR_")?
                .to_ascii_lowercase()
                .replace('_', ".");
            Some((key, v))
        })
        .collect()
}

impl BrokerConfig {
    /// Applies `WEIR_*` environment settings ([`from_env`]). Unlike a file or a flag, an
    /// environment carries variables meant for other programs (`WEIR_BENCH_ROUNDS`, …), so
    /// keys the broker does not know are skipped and returned for a warning; a bad value for a
    /// known key is still an error.
    pub fn apply_env(&mut self, settings: &[(String, String)]) -> Result<Vec<String>, ConfigError> {
        let mut skipped = Vec::new();
        for (key, value) in settings {
            match self.set(key, value) {
                Err(ConfigError::UnknownKey { key }) => skipped.push(key),
                other => other?,
            }
        }
        Ok(skipped)
    }

    /// Applies `key=value` settings in order over the current values.
    pub fn apply(&mut self, settings: &[(String, String)]) -> Result<(), ConfigError> {
        for (key, value) in settings {
            self.set(key, value)?;
        }
        Ok(())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let invalid = |reason: &str| ConfigError::InvalidValue {
            key: key.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let int = |min: i64, max: i64| -> Result<i64, ConfigError> {
            let v: i64 = value
                .trim()
                .parse()
                .map_err(|_| invalid("not an integer"))?;
            if v < min || v > max {
                return Err(invalid(&format!("must be between {min} and {max}")));
            }
            Ok(v)
        };
        let boolean = || -> Result<bool, ConfigError> {
            match value.trim() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(invalid("expected true or false")),
            }
        };
        match key {
            "node.id" | "broker.id" => self.node_id = int(0, i32::MAX as i64)? as i32,
            "process.roles" => {
                let roles: Vec<String> = value
                    .split(',')
                    .map(|r| r.trim().to_owned())
                    .filter(|r| !r.is_empty())
                    .collect();
                if roles.is_empty() || roles.iter().any(|r| r != "broker" && r != "controller") {
                    return Err(invalid("expected a list of broker and controller"));
                }
                self.process_roles = roles;
            }
            "controller.listener" => {
                self.controller_listener = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("expected host:port"))?
            }
            "controller.quorum.bootstrap.servers" => {
                let servers: Vec<String> = value
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect();
                if servers.iter().any(|s| !valid_host_port(s)) {
                    return Err(invalid("expected a comma-separated list of host:port"));
                }
                self.controller_servers = servers;
            }
            controller_cluster::KEY => {
                self.controller_cluster_name =
                    Some(controller_cluster::parse(value).map_err(invalid)?)
            }
            "broker.heartbeat.interval.ms" => {
                self.broker_heartbeat_interval_ms = int(1, i32::MAX as i64)? as u64
            }
            "broker.session.timeout.ms" => {
                self.broker_session_timeout_ms = int(1, i32::MAX as i64)? as u64
            }
            "controlled.shutdown.enable" => self.controlled_shutdown_enable = boolean()?,
            "controlled.shutdown.max.retries" => {
                self.controlled_shutdown_max_retries = int(0, i32::MAX as i64)? as u32
            }
            "controlled.shutdown.retry.backoff.ms" => {
                self.controlled_shutdown_retry_backoff_ms = int(0, i32::MAX as i64)? as u64
            }
            "auto.leader.rebalance.enable" => self.auto_leader_rebalance_enable = boolean()?,
            "min.insync.replicas" => self.min_insync_replicas = int(1, i32::MAX as i64)? as usize,
            "leader.imbalance.check.interval.seconds" => {
                self.leader_imbalance_check_interval_seconds = int(1, i32::MAX as i64)? as u64
            }
            "leader.imbalance.per.broker.percentage" => {
                self.leader_imbalance_per_broker_percentage = int(0, 100)? as u32
            }
            "listeners" => {
                let parsed = listeners::parse_listeners(key, value)?;
                let advertised_follow = self.advertised_listeners == self.listeners
                    && !self.explicit.contains_key("advertised.listeners");
                self.listeners = parsed;
                if advertised_follow {
                    self.advertised_listeners = self.listeners.clone();
                }
            }
            "advertised.listeners" => {
                self.advertised_listeners = listeners::parse_advertised(key, value)?
            }
            "listener.security.protocol.map" => {
                self.listener_security_protocol_map = listeners::parse_protocol_map(key, value)?
            }
            "inter.broker.listener.name" => {
                self.inter_broker_listener_name = listeners::parse_inter_broker_name(key, value)?
            }
            "log.dirs" | "log.dir" => {
                let first = value.split(',').next().unwrap_or("").trim();
                if first.is_empty() {
                    return Err(invalid("expected a directory"));
                }
                if value.contains(',') {
                    return Err(invalid("one data directory per broker is supported"));
                }
                self.data_dir = PathBuf::from(first);
            }
            "http.listener" => {
                self.http_listener = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("expected host:port"))?
            }
            "log.writeback.interval.bytes" => {
                self.log_defaults.page_cache.writeback_bytes = int(0, i64::MAX)? as u64
            }
            "log.cache.retain.bytes" => {
                self.log_defaults.page_cache.retain_bytes = int(-1, i64::MAX)?
            }
            "num.partitions" => self.num_partitions = int(1, i32::MAX as i64)? as i32,
            "default.replication.factor" => {
                self.default_replication_factor = int(1, i16::MAX as i64)? as i16
            }
            "auto.create.topics.enable" => self.auto_create_topics = boolean()?,
            "socket.request.max.bytes" => {
                self.socket_request_max_bytes = int(1, i32::MAX as i64)? as usize
            }
            "max.connections" => self.max_connections = int(1, i32::MAX as i64)? as usize,
            "log.retention.check.interval.ms" => {
                self.retention_check_interval_ms = int(1, i64::MAX)? as u64
            }
            "log.flush.offset.checkpoint.interval.ms" => {
                self.checkpoint_interval_ms = int(0, i32::MAX as i64)? as u64
            }
            "broker.rack" => self.rack = Some(value.trim().to_owned()).filter(|r| !r.is_empty()),
            // Kafka: int, at least 1.
            "producer.id.expiration.ms" => {
                self.producer_id_expiration_ms = int(1, i32::MAX as i64)?
            }
            "group.min.session.timeout.ms" => {
                self.group.min_session_timeout_ms = int(1, i32::MAX as i64)? as i32
            }
            "group.max.session.timeout.ms" => {
                self.group.max_session_timeout_ms = int(1, i32::MAX as i64)? as i32
            }
            "group.max.size" => self.group.max_size = int(1, i32::MAX as i64)? as usize,
            "group.initial.rebalance.delay.ms" => {
                self.group.initial_rebalance_delay_ms = int(0, i32::MAX as i64)?
            }
            "offset.metadata.max.bytes" => {
                self.group.offset_metadata_max_bytes = int(0, i32::MAX as i64)? as usize
            }
            "offsets.retention.minutes" => {
                self.group.offsets_retention_ms = int(1, i32::MAX as i64)? * 60_000
            }
            "offsets.retention.check.interval.ms" => {
                self.group.offsets_retention_check_interval_ms = int(1, i64::MAX)?
            }
            "offsets.topic.num.partitions" => {
                self.offsets_topic_num_partitions = int(1, i32::MAX as i64)? as i32
            }
            "offsets.topic.replication.factor" => {
                self.offsets_topic_replication_factor = int(1, i16::MAX as i64)? as i16
            }
            // Kafka: at least 1 byte for this key (the topic's segment.bytes bound still applies).
            "offsets.topic.segment.bytes" => {
                self.offsets_topic_segment_bytes = int(1, i32::MAX as i64)? as i32
            }
            // Kafka's bounds: the byte keys at least 0 (min.bytes at least 1), times at least 0.
            "replica.lag.time.max.ms" => self.replication.lag_time_max_ms = int(1, i64::MAX)?,
            "replica.fetch.max.bytes" => {
                self.replication.fetch_max_bytes = int(0, i32::MAX as i64)? as i32
            }
            "replica.fetch.response.max.bytes" => {
                self.replication.fetch_response_max_bytes = int(0, i32::MAX as i64)? as i32
            }
            "replica.fetch.wait.max.ms" => {
                self.replication.fetch_wait_max_ms = int(0, i32::MAX as i64)? as i32
            }
            "replica.fetch.min.bytes" => {
                self.replication.fetch_min_bytes = int(1, i32::MAX as i64)? as i32
            }
            "replica.fetch.backoff.ms" => {
                self.replication.fetch_backoff_ms = int(0, i32::MAX as i64)? as u64
            }
            "replica.socket.timeout.ms" => {
                self.replication.socket_timeout_ms = int(1, i32::MAX as i64)? as u64
            }
            _ if let Some(outcome) = self.transactions.set(key, value) => {
                outcome.map_err(|refusal| match refusal {
                    transactions::Refusal::NotAnInteger => invalid("not an integer"),
                    transactions::Refusal::NotABoolean => invalid("expected true or false"),
                    transactions::Refusal::OutOfRange { min, max } => {
                        invalid(&format!("must be between {min} and {max}"))
                    }
                })?
            }
            _ => {
                let Some(&(_, topic_key, unit)) =
                    LOG_DEFAULT_KEYS.iter().find(|(k, _, _)| *k == key)
                else {
                    return Err(ConfigError::UnknownKey {
                        key: key.to_owned(),
                    });
                };
                let topic_value = if unit > 1 {
                    let v = int(-1, i64::MAX / unit)?;
                    if v < 0 {
                        "-1".to_owned()
                    } else {
                        (v * unit).to_string()
                    }
                } else {
                    value.trim().to_owned()
                };
                self.log_defaults
                    .set(topic_key, &topic_value)
                    .map_err(|e| invalid(&e.to_string()))?;
            }
        }
        self.explicit.insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    /// Cross-field checks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, value: String, reason: &str| ConfigError::InvalidValue {
            key: key.to_owned(),
            value,
            reason: reason.to_owned(),
        };
        listeners::validate(self)?;
        if !self.has_role("controller") && self.controller_servers.is_empty() {
            return Err(invalid(
                "controller.quorum.bootstrap.servers",
                String::new(),
                "a process without the controller role needs the controller's address",
            ));
        }
        if self.broker_heartbeat_interval_ms >= self.broker_session_timeout_ms {
            return Err(invalid(
                "broker.heartbeat.interval.ms",
                self.broker_heartbeat_interval_ms.to_string(),
                "must be below broker.session.timeout.ms, or brokers are fenced between heartbeats",
            ));
        }
        // Parsing bounds every group key on its own; what is left is the min/max pair.
        self.group.validate().map_err(|e| {
            invalid(
                "group.min.session.timeout.ms",
                self.group.min_session_timeout_ms.to_string(),
                &e.to_string(),
            )
        })?;
        let replication = &self.replication;
        if i64::from(replication.fetch_wait_max_ms) > replication.socket_timeout_ms as i64 {
            return Err(invalid(
                "replica.fetch.wait.max.ms",
                replication.fetch_wait_max_ms.to_string(),
                "must not exceed replica.socket.timeout.ms, or a follower's fetches time out",
            ));
        }
        if i64::from(replication.fetch_wait_max_ms) > replication.lag_time_max_ms {
            return Err(invalid(
                "replica.fetch.wait.max.ms",
                replication.fetch_wait_max_ms.to_string(),
                "must not exceed replica.lag.time.max.ms, or followers drop out of the ISR while the leader holds their fetches",
            ));
        }
        Ok(())
    }

    /// The settings of a controller hosted for brokers configured like this: by this
    /// process (role `controller`) or by the Kubernetes operator for a Cluster.
    pub fn controller_config(&self) -> weir_controller::ControllerConfig {
        weir_controller::ControllerConfig {
            defaults: weir_controller::ControllerDefaults {
                num_partitions: self.num_partitions,
                replication_factor: self.default_replication_factor,
            },
            broker_session_timeout_ms: self.broker_session_timeout_ms,
            auto_leader_rebalance_enable: self.auto_leader_rebalance_enable,
            leader_imbalance_check_interval_seconds: self.leader_imbalance_check_interval_seconds,
            leader_imbalance_per_broker_percentage: self.leader_imbalance_per_broker_percentage,
        }
    }

    /// The listener brokers reach each other on (followers fetch from leaders, coordinators
    /// send transaction markers): `inter.broker.listener.name`, else the first of
    /// `advertised.listeners`.
    pub fn inter_broker_listener(&self) -> ListenerName {
        listeners::inter_broker_listener(self)
    }

    /// Whether `process.roles` includes `role` (`broker` or `controller`).
    pub fn has_role(&self, role: &str) -> bool {
        self.process_roles.iter().any(|r| r == role)
    }

    /// The value DescribeConfigs shows for the broker key `key`: as given when it was set
    /// explicitly; otherwise the value in force, except for the `log.*` topic-default keys
    /// (several are one setting in different units), which show Kafka's default in their own
    /// unit. `None` for an unknown key or one without a value (`broker.rack` or
    /// `controller.cluster.name` unset).
    pub fn value_of(&self, key: &str) -> Option<String> {
        if let Some(value) = self.explicit.get(key) {
            return Some(value.clone());
        }
        let listeners = |ls: &[Listener]| {
            ls.iter()
                .map(Listener::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        Some(match key {
            "node.id" | "broker.id" => self.node_id.to_string(),
            "process.roles" => self.process_roles.join(","),
            "controller.listener" => self.controller_listener.to_string(),
            "controller.quorum.bootstrap.servers" => self.controller_servers.join(","),
            "broker.heartbeat.interval.ms" => self.broker_heartbeat_interval_ms.to_string(),
            "broker.session.timeout.ms" => self.broker_session_timeout_ms.to_string(),
            "controlled.shutdown.enable" => self.controlled_shutdown_enable.to_string(),
            "controlled.shutdown.max.retries" => self.controlled_shutdown_max_retries.to_string(),
            "controlled.shutdown.retry.backoff.ms" => {
                self.controlled_shutdown_retry_backoff_ms.to_string()
            }
            "auto.leader.rebalance.enable" => self.auto_leader_rebalance_enable.to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "leader.imbalance.check.interval.seconds" => {
                self.leader_imbalance_check_interval_seconds.to_string()
            }
            "leader.imbalance.per.broker.percentage" => {
                self.leader_imbalance_per_broker_percentage.to_string()
            }
            "listeners" => listeners(&self.listeners),
            "advertised.listeners" => listeners(&self.advertised_listeners),
            "listener.security.protocol.map" => self.listener_security_protocol_map.to_string(),
            "inter.broker.listener.name" => {
                return self
                    .inter_broker_listener_name
                    .as_ref()
                    .map(|n| n.to_string());
            }
            "log.dirs" | "log.dir" => self.data_dir.display().to_string(),
            "http.listener" => self.http_listener.to_string(),
            "log.writeback.interval.bytes" => {
                self.log_defaults.page_cache.writeback_bytes.to_string()
            }
            "log.cache.retain.bytes" => self.log_defaults.page_cache.retain_bytes.to_string(),
            "num.partitions" => self.num_partitions.to_string(),
            "default.replication.factor" => self.default_replication_factor.to_string(),
            "auto.create.topics.enable" => self.auto_create_topics.to_string(),
            "socket.request.max.bytes" => self.socket_request_max_bytes.to_string(),
            "max.connections" => self.max_connections.to_string(),
            "log.retention.check.interval.ms" => self.retention_check_interval_ms.to_string(),
            "log.flush.offset.checkpoint.interval.ms" => self.checkpoint_interval_ms.to_string(),
            "broker.rack" => return self.rack.clone(),
            controller_cluster::KEY => return self.controller_cluster_name.clone(),
            "producer.id.expiration.ms" => self.producer_id_expiration_ms.to_string(),
            "group.min.session.timeout.ms" => self.group.min_session_timeout_ms.to_string(),
            "group.max.session.timeout.ms" => self.group.max_session_timeout_ms.to_string(),
            "group.max.size" => self.group.max_size.to_string(),
            "group.initial.rebalance.delay.ms" => self.group.initial_rebalance_delay_ms.to_string(),
            "offset.metadata.max.bytes" => self.group.offset_metadata_max_bytes.to_string(),
            "offsets.retention.minutes" => (self.group.offsets_retention_ms / 60_000).to_string(),
            "offsets.retention.check.interval.ms" => {
                self.group.offsets_retention_check_interval_ms.to_string()
            }
            "offsets.topic.num.partitions" => self.offsets_topic_num_partitions.to_string(),
            "offsets.topic.replication.factor" => self.offsets_topic_replication_factor.to_string(),
            "offsets.topic.segment.bytes" => self.offsets_topic_segment_bytes.to_string(),
            "replica.lag.time.max.ms" => self.replication.lag_time_max_ms.to_string(),
            "replica.fetch.max.bytes" => self.replication.fetch_max_bytes.to_string(),
            "replica.fetch.response.max.bytes" => {
                self.replication.fetch_response_max_bytes.to_string()
            }
            "replica.fetch.wait.max.ms" => self.replication.fetch_wait_max_ms.to_string(),
            "replica.fetch.min.bytes" => self.replication.fetch_min_bytes.to_string(),
            "replica.fetch.backoff.ms" => self.replication.fetch_backoff_ms.to_string(),
            "replica.socket.timeout.ms" => self.replication.socket_timeout_ms.to_string(),
            _ if let Some(value) = self.transactions.get(key) => value,
            _ => {
                let &(_, topic_key, unit) = LOG_DEFAULT_KEYS.iter().find(|(k, _, _)| *k == key)?;
                let default = LogConfig::default().get(topic_key)?;
                if unit > 1 {
                    let value: i64 = default.parse().ok()?;
                    if value < 0 {
                        "-1".to_owned()
                    } else {
                        (value / unit).to_string()
                    }
                } else {
                    default
                }
            }
        })
    }

    /// Every key this broker understands (for the documentation and DescribeConfigs).
    pub fn known_keys() -> impl Iterator<Item = &'static str> {
        BROKER_KEYS
            .iter()
            .copied()
            .chain(listeners::KEYS.iter().copied())
            .chain(transactions::KEYS.iter().copied())
            .chain(LOG_DEFAULT_KEYS.iter().map(|(k, _, _)| *k))
    }
}

/// `host:port` with a non-empty host and a port in 1..=65535.
fn valid_host_port(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0))
}

/// The broker keys whose value becomes the topic-level default `topic_key`, in Kafka's order
/// of precedence (`retention.ms` ← `log.retention.ms`, `log.retention.minutes`,
/// `log.retention.hours`). Empty for a topic key the broker config cannot set.
pub fn broker_keys_for_topic_key(topic_key: &str) -> impl Iterator<Item = &'static str> + '_ {
    LOG_DEFAULT_KEYS
        .iter()
        .filter(move |(_, t, _)| *t == topic_key)
        .map(|(broker_key, _, _)| *broker_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_kafkas_single_node_defaults() {
        let c = BrokerConfig::default();
        assert_eq!(
            c.listeners[0],
            Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092
            }
        );
        assert_eq!(c.num_partitions, 1);
        assert!(c.auto_create_topics);
        assert_eq!(c.socket_request_max_bytes, 104_857_600);
        assert_eq!(c.log_defaults, LogConfig::default());
        assert_eq!(c.producer_id_expiration_ms, 86_400_000);
        c.validate().unwrap();
    }

    #[test]
    fn later_sources_override_earlier_and_log_keys_become_topic_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.properties");
        std::fs::write(&file, "# comment\nnode.id=3\nlisteners=PLAINTEXT://0.0.0.0:19092\nadvertised.listeners=PLAINTEXT://broker-3:19092\nlog.retention.hours=1\n").unwrap();
        let mut c = BrokerConfig::default();
        c.apply(&read_properties(&file).unwrap()).unwrap();
        c.apply_env(&from_env([
            ("WEIR_NUM_PARTITIONS".to_string(), "6".to_string()),
            ("PATH".into(), "/bin".into()),
        ]))
        .unwrap();
        c.apply(&kv(&[("node.id", "4"), ("log.segment.bytes", "1048576")]))
            .unwrap();
        c.validate().unwrap();
        assert_eq!(c.node_id, 4);
        assert_eq!(c.num_partitions, 6);
        assert_eq!(c.listeners[0].port, 19092);
        assert_eq!(c.advertised_listeners[0].host, "broker-3");
        assert_eq!(c.log_defaults.retention_ms, 3_600_000);
        assert_eq!(c.log_defaults.segment_bytes, 1_048_576);
    }

    #[test]
    fn shown_defaults_reapply_without_changing_anything() {
        let defaults = BrokerConfig::default();
        for key in BrokerConfig::known_keys() {
            let Some(value) = defaults.value_of(key) else {
                assert!(
                    [
                        "broker.rack",
                        "controller.cluster.name",
                        "inter.broker.listener.name"
                    ]
                    .contains(&key),
                    "{key}"
                );
                continue;
            };
            let mut c = BrokerConfig::default();
            c.apply(&kv(&[(key, &value)]))
                .unwrap_or_else(|e| panic!("{key}={value}: {e}"));
            c.explicit.clear();
            assert_eq!(format!("{c:?}"), format!("{defaults:?}"), "{key}={value}");
        }
        assert_eq!(
            defaults.value_of("log.retention.hours").as_deref(),
            Some("168")
        );
        assert_eq!(
            defaults.value_of("log.retention.ms").as_deref(),
            Some("604800000")
        );
        assert_eq!(defaults.value_of("no.such.key"), None);
    }

    #[test]
    fn explicit_values_are_shown_as_given() {
        let mut c = BrokerConfig::default();
        c.apply(&kv(&[
            ("log.retention.hours", "2"),
            ("listeners", "PLAINTEXT://[::1]:19092"),
        ]))
        .unwrap();
        assert_eq!(c.value_of("log.retention.hours").as_deref(), Some("2"));
        assert_eq!(c.value_of("log.retention.ms").as_deref(), Some("604800000"));
        assert_eq!(
            c.value_of("advertised.listeners").as_deref(),
            Some("PLAINTEXT://[::1]:19092")
        );
        assert_eq!(
            broker_keys_for_topic_key("retention.ms").collect::<Vec<_>>(),
            [
                "log.retention.ms",
                "log.retention.minutes",
                "log.retention.hours"
            ]
        );
        assert_eq!(broker_keys_for_topic_key("min.insync.replicas").count(), 0);
    }

    #[test]
    fn unrelated_weir_environment_variables_are_skipped_but_bad_values_are_not() {
        let mut c = BrokerConfig::default();
        let skipped = c
            .apply_env(&from_env([
                ("WEIR_BENCH_ROUNDS".to_string(), "9".to_string()),
                ("WEIR_NUM_PARTITIONS".to_string(), "3".to_string()),
            ]))
            .unwrap();
        assert_eq!(skipped, vec!["bench.rounds".to_string()]);
        assert_eq!(c.num_partitions, 3);
        let err = c
            .apply_env(&from_env([(
                "WEIR_NUM_PARTITIONS".to_string(),
                "x".to_string(),
            )]))
            .unwrap_err();
        assert!(err.to_string().contains("num.partitions"), "{err}");
    }

    #[test]
    fn the_example_server_properties_is_a_valid_config() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/server.properties");
        let mut c = BrokerConfig::default();
        c.apply(&read_properties(&path).unwrap()).unwrap();
        c.validate().unwrap();
        assert_eq!(c.listeners[0].port, 9092);
        assert_eq!(c.log_defaults.retention_ms, 168 * 3_600_000);
    }

    #[test]
    fn replica_keys_take_kafkas_defaults_and_fetch_waits_fit_the_timeouts() {
        let c = BrokerConfig::default();
        assert_eq!(c.replication, ReplicationConfig::default());
        assert_eq!(
            c.value_of("replica.lag.time.max.ms").as_deref(),
            Some("30000")
        );
        assert_eq!(
            c.value_of("replica.fetch.wait.max.ms").as_deref(),
            Some("500")
        );
        assert_eq!(c.value_of("replica.fetch.min.bytes").as_deref(), Some("1"));
        assert_eq!(
            c.value_of("replica.fetch.backoff.ms").as_deref(),
            Some("1000")
        );
        assert_eq!(
            c.value_of("replica.fetch.max.bytes").as_deref(),
            Some("1048576")
        );
        let mut c = BrokerConfig::default();
        c.apply(&kv(&[("replica.lag.time.max.ms", "10000")]))
            .unwrap();
        c.validate().unwrap();
        assert_eq!(c.replication.lag_time_max_ms, 10_000);
        c.apply(&kv(&[("replica.fetch.wait.max.ms", "20000")]))
            .unwrap();
        let e = c.validate().unwrap_err();
        assert!(
            e.to_string().contains("replica.fetch.wait.max.ms")
                && e.to_string().contains("replica.lag.time.max.ms"),
            "{e}"
        );
        let mut c = BrokerConfig::default();
        c.apply(&kv(&[("replica.socket.timeout.ms", "100")]))
            .unwrap();
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("replica.socket.timeout.ms"), "{e}");
        let e = c
            .apply(&kv(&[("replica.fetch.min.bytes", "0")]))
            .unwrap_err();
        assert!(e.to_string().contains("`replica.fetch.min.bytes`"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let mut c = BrokerConfig::default();
        let e = c.apply(&kv(&[("num.partitons", "3")])).unwrap_err();
        assert_eq!(
            e,
            ConfigError::UnknownKey {
                key: "num.partitons".into()
            }
        );
        let e = c
            .apply(&kv(&[("listeners", "localhost:9092")]))
            .unwrap_err();
        assert!(e.to_string().contains("`listeners`"), "{e}");
        let e = c.apply(&kv(&[("log.segment.bytes", "5")])).unwrap_err();
        assert!(
            e.to_string().contains("`log.segment.bytes`")
                && e.to_string().contains("segment.bytes"),
            "{e}"
        );
        let e = c
            .apply(&kv(&[("auto.create.topics.enable", "yes")]))
            .unwrap_err();
        assert!(e.to_string().contains("auto.create.topics.enable"), "{e}");

        let mut c = BrokerConfig::default();
        c.apply(&kv(&[("advertised.listeners", "PLAINTEXT://0.0.0.0:9092")]))
            .unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("advertised.listeners")
        );
        let mut c = BrokerConfig::default();
        c.apply(&kv(&[("process.roles", "broker")])).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("controller.quorum.bootstrap.servers"), "{e}");
        c.apply(&kv(&[(
            "controller.quorum.bootstrap.servers",
            "127.0.0.1:9093,10.0.0.2:9093",
        )]))
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.controller_servers.len(), 2);
        let e = c
            .apply(&kv(&[("controller.quorum.bootstrap.servers", "nohost")]))
            .unwrap_err();
        assert!(e.to_string().contains("host:port"), "{e}");

        let mut c = BrokerConfig::default();
        c.apply(&kv(&[("broker.heartbeat.interval.ms", "9000")]))
            .unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("broker.heartbeat.interval.ms"), "{e}");
    }
}
