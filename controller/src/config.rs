//! The controller's own configuration: Kafka's controller-side keys, their defaults
//! (the one place they are defined) and the checks on them.
//!
//! Keys and defaults are Kafka's: `num.partitions` (1), `default.replication.factor`
//! (1), `broker.session.timeout.ms` (9000), `auto.leader.rebalance.enable` (true),
//! `leader.imbalance.check.interval.seconds` (300) and
//! `leader.imbalance.per.broker.percentage` (10). The hosting process overrides them
//! from its command line or environment and calls [`ControllerConfig::validate`]
//! (the controller does too when it opens).

use std::time::Duration;

/// Used where a request leaves the count or the replication factor to the cluster
/// (Kafka's `num.partitions` and `default.replication.factor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerDefaults {
    pub num_partitions: i32,
    pub replication_factor: i16,
}

impl Default for ControllerDefaults {
    fn default() -> Self {
        ControllerDefaults {
            num_partitions: 1,
            replication_factor: 1,
        }
    }
}

/// `broker.session.timeout.ms`'s default, as in Kafka.
pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 9000;

/// Everything the controller is configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerConfig {
    /// `num.partitions` and `default.replication.factor`.
    pub defaults: ControllerDefaults,
    /// `broker.session.timeout.ms`: a broker that has not heartbeat for this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// `auto.leader.rebalance.enable`: whether `tick` moves leadership back to preferred
    /// replicas.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`: how often `tick` checks the balance.
    pub leader_imbalance_check_interval_seconds: u64,
    /// `leader.imbalance.per.broker.percentage`: the share of a broker's preferred
    /// partitions that may be led by others before they are moved back to it.
    pub leader_imbalance_per_broker_percentage: u32,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            defaults: ControllerDefaults::default(),
            broker_session_timeout_ms: DEFAULT_SESSION_TIMEOUT_MS,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: 300,
            leader_imbalance_per_broker_percentage: 10,
        }
    }
}

/// A config value the controller cannot run with. Names the key and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid value {value} for configuration {key}: {reason}")]
pub struct ControllerConfigError {
    pub key: &'static str,
    pub value: String,
    pub reason: &'static str,
}

impl ControllerConfig {
    /// Checks every value against Kafka's bounds for its key.
    pub fn validate(&self) -> Result<(), ControllerConfigError> {
        let at_least_one = |key: &'static str, value: i64| {
            if value < 1 {
                return Err(ControllerConfigError {
                    key,
                    value: value.to_string(),
                    reason: "Value must be at least 1",
                });
            }
            Ok(())
        };
        at_least_one("num.partitions", i64::from(self.defaults.num_partitions))?;
        at_least_one(
            "default.replication.factor",
            i64::from(self.defaults.replication_factor),
        )?;
        let session = i64::try_from(self.broker_session_timeout_ms).unwrap_or(i64::MAX);
        at_least_one("broker.session.timeout.ms", session)?;
        let interval =
            i64::try_from(self.leader_imbalance_check_interval_seconds).unwrap_or(i64::MAX);
        at_least_one("leader.imbalance.check.interval.seconds", interval)?;
        Ok(())
    }

    /// `broker.session.timeout.ms` as a duration.
    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.broker_session_timeout_ms)
    }

    /// `leader.imbalance.check.interval.seconds` as a duration.
    pub fn leader_imbalance_check_interval(&self) -> Duration {
        Duration::from_secs(self.leader_imbalance_check_interval_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas() {
        let config = ControllerConfig::default();
        assert_eq!(config.defaults.num_partitions, 1);
        assert_eq!(config.defaults.replication_factor, 1);
        assert_eq!(config.session_timeout(), Duration::from_millis(9000));
        assert!(config.auto_leader_rebalance_enable);
        assert_eq!(
            config.leader_imbalance_check_interval(),
            Duration::from_secs(300)
        );
        assert_eq!(config.leader_imbalance_per_broker_percentage, 10);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn out_of_range_values_are_refused_naming_the_key() {
        let cases = [
            (
                ControllerConfig {
                    broker_session_timeout_ms: 0,
                    ..ControllerConfig::default()
                },
                "broker.session.timeout.ms",
            ),
            (
                ControllerConfig {
                    leader_imbalance_check_interval_seconds: 0,
                    ..ControllerConfig::default()
                },
                "leader.imbalance.check.interval.seconds",
            ),
            (
                ControllerConfig {
                    defaults: ControllerDefaults {
                        num_partitions: 0,
                        replication_factor: 1,
                    },
                    ..ControllerConfig::default()
                },
                "num.partitions",
            ),
            (
                ControllerConfig {
                    defaults: ControllerDefaults {
                        num_partitions: 1,
                        replication_factor: -1,
                    },
                    ..ControllerConfig::default()
                },
                "default.replication.factor",
            ),
        ];
        for (config, key) in cases {
            let err = config.validate().unwrap_err();
            assert_eq!(err.key, key);
            assert!(err.to_string().contains(key), "{err}");
        }
    }
}
