//! The group coordinator's settings, under Kafka's key names and with Kafka's defaults.
//!
//! The broker's own config parsing maps its keys onto [`GroupConfig`]; this type only holds
//! the values and checks the rules between them.

use thiserror::Error;

/// Kafka's default for `offsets.retention.minutes`: 7 days.
const DEFAULT_OFFSETS_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms` (6000): JoinGroup with a shorter session timeout is
    /// refused with INVALID_SESSION_TIMEOUT.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (1800000): the upper bound of the same check.
    pub max_session_timeout_ms: i32,
    /// `group.max.size` (2147483647, i.e. unlimited): members beyond it get
    /// GROUP_MAX_SIZE_REACHED.
    pub max_size: usize,
    /// `group.initial.rebalance.delay.ms` (3000): how long an Empty group's first rebalance
    /// waits for more members, extended (up to the rebalance timeout) while members keep
    /// arriving.
    pub initial_rebalance_delay_ms: i64,
    /// How long a new member's JoinGroup may stay parked before the member is dropped
    /// (5 minutes; a constant in Kafka, not a config key): new members cannot heartbeat yet,
    /// so without it a client that gave up would stay in the rebalance.
    pub new_member_join_timeout_ms: i64,
    /// `offset.metadata.max.bytes` (4096): longer commit metadata is refused per partition
    /// with OFFSET_METADATA_TOO_LARGE. Kafka compares the metadata's length in UTF-16 units.
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes` (7 days), in milliseconds.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms` (600000): how often expired offsets are removed.
    pub offsets_retention_check_interval_ms: i64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            initial_rebalance_delay_ms: 3_000,
            new_member_join_timeout_ms: 5 * 60 * 1000,
            offset_metadata_max_bytes: 4096,
            offsets_retention_ms: DEFAULT_OFFSETS_RETENTION_MS,
            offsets_retention_check_interval_ms: 600_000,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "group.min.session.timeout.ms={min} must be positive and at most group.max.session.timeout.ms={max}"
    )]
    SessionTimeoutRange { min: i32, max: i32 },
    #[error("group.max.size must be at least 1")]
    MaxSize,
    #[error("{key}={value} must not be negative")]
    Negative { key: &'static str, value: i64 },
    #[error("{key}={value} must be positive")]
    NotPositive { key: &'static str, value: i64 },
}

impl GroupConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.min_session_timeout_ms <= 0
            || self.min_session_timeout_ms > self.max_session_timeout_ms
        {
            return Err(ConfigError::SessionTimeoutRange {
                min: self.min_session_timeout_ms,
                max: self.max_session_timeout_ms,
            });
        }
        if self.max_size == 0 {
            return Err(ConfigError::MaxSize);
        }
        if self.initial_rebalance_delay_ms < 0 {
            return Err(ConfigError::Negative {
                key: "group.initial.rebalance.delay.ms",
                value: self.initial_rebalance_delay_ms,
            });
        }
        for (key, value) in [
            ("offsets.retention.minutes", self.offsets_retention_ms),
            (
                "offsets.retention.check.interval.ms",
                self.offsets_retention_check_interval_ms,
            ),
            (
                "new_member_join_timeout_ms",
                self.new_member_join_timeout_ms,
            ),
        ] {
            if value <= 0 {
                return Err(ConfigError::NotPositive { key, value });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas_and_valid() {
        let config = GroupConfig::default();
        assert_eq!(config.offsets_retention_ms, 604_800_000);
        assert_eq!(config.initial_rebalance_delay_ms, 3000);
        assert_eq!(config.max_size, 2_147_483_647);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn validate_names_the_offending_key() {
        let config = GroupConfig {
            min_session_timeout_ms: 10_000,
            max_session_timeout_ms: 6_000,
            ..GroupConfig::default()
        };
        let err = config.validate().unwrap_err();
        assert!(
            err.to_string()
                .contains("group.min.session.timeout.ms=10000")
        );
        let config = GroupConfig {
            offsets_retention_check_interval_ms: 0,
            ..GroupConfig::default()
        };
        let err = config.validate().unwrap_err();
        assert!(
            err.to_string()
                .contains("offsets.retention.check.interval.ms=0")
        );
    }
}
