//! Per-log (topic-level) configuration: Kafka's key names, defaults and bounds.
//!
//! The defaults here are the one place they are defined; a topic's overrides are applied with
//! [`LogConfig::set`], which names the key in every error.

use thiserror::Error;

use super::batch::TimestampType;

/// Which cleanup a topic gets (`cleanup.policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown log config key `{key}`")]
    UnknownKey { key: String },
    #[error("invalid value `{value}` for `{key}`: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: &'static str,
    },
}

/// A partition log's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment before it would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll the active segment once it is this old (by its first batch's time).
    pub segment_ms: i64,
    /// `segment.jitter.ms`: maximum random jitter subtracted from `segment.ms`.
    pub segment_jitter_ms: i64,
    /// `segment.index.bytes`: preallocated size of each index; a full index rolls the segment.
    pub segment_index_bytes: usize,
    /// `index.interval.bytes`: bytes appended between two offset index entries.
    pub index_interval_bytes: u64,
    /// `retention.ms`: delete sealed segments older than this (-1: keep forever).
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest sealed segments while the log is larger (-1: no limit).
    pub retention_bytes: i64,
    /// `max.message.bytes`: largest record batch accepted, log overhead included.
    pub max_message_bytes: usize,
    /// `message.timestamp.type`: `CreateTime` keeps the producer's timestamps,
    /// `LogAppendTime` stamps the broker's clock on append.
    pub message_timestamp_type: TimestampType,
    /// `flush.messages`: fsync after this many appended messages.
    pub flush_messages: u64,
    /// `flush.ms`: fsync when the oldest unflushed append is this old.
    pub flush_ms: i64,
    /// `cleanup.policy`: `delete`, `compact` or both.
    pub cleanup_policy: CleanupPolicy,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_jitter_ms: 0,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1024 * 1024 + 12,
            message_timestamp_type: TimestampType::CreateTime,
            flush_messages: i64::MAX as u64,
            flush_ms: i64::MAX,
            cleanup_policy: CleanupPolicy {
                delete: true,
                compact: false,
            },
        }
    }
}

/// The keys [`LogConfig::set`] understands.
pub const LOG_CONFIG_KEYS: &[&str] = &[
    "segment.bytes",
    "segment.ms",
    "segment.jitter.ms",
    "segment.index.bytes",
    "index.interval.bytes",
    "retention.ms",
    "retention.bytes",
    "max.message.bytes",
    "message.timestamp.type",
    "flush.messages",
    "flush.ms",
    "cleanup.policy",
];

fn parse_long(key: &str, value: &str, min: i64) -> Result<i64, ConfigError> {
    let invalid = |reason| ConfigError::InvalidValue {
        key: key.to_owned(),
        value: value.to_owned(),
        reason,
    };
    let parsed: i64 = value
        .trim()
        .parse()
        .map_err(|_| invalid("not an integer"))?;
    if parsed < min {
        return Err(invalid(match min {
            -1 => "must be -1 or at least 0",
            0 => "must not be negative",
            _ => "below the minimum",
        }));
    }
    Ok(parsed)
}

impl LogConfig {
    /// Applies one `key=value` override. Bounds follow Kafka's `LogConfig` definitions.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let invalid = |reason| ConfigError::InvalidValue {
            key: key.to_owned(),
            value: value.to_owned(),
            reason,
        };
        let int = |min: i64, max: i64| -> Result<i64, ConfigError> {
            let v = parse_long(key, value, min)?;
            if v > max {
                Err(invalid("above the maximum"))
            } else {
                Ok(v)
            }
        };
        match key {
            // Kafka: segment.bytes atLeast(14) (the smallest legacy record), int-valued.
            "segment.bytes" => self.segment_bytes = int(14, i32::MAX as i64)? as u64,
            "segment.ms" => self.segment_ms = int(1, i64::MAX)?,
            "segment.jitter.ms" => self.segment_jitter_ms = int(0, i64::MAX)?,
            "segment.index.bytes" => self.segment_index_bytes = int(4, i32::MAX as i64)? as usize,
            "index.interval.bytes" => self.index_interval_bytes = int(0, i32::MAX as i64)? as u64,
            "retention.ms" => self.retention_ms = int(-1, i64::MAX)?,
            "retention.bytes" => self.retention_bytes = int(-1, i64::MAX)?,
            "max.message.bytes" => self.max_message_bytes = int(0, i32::MAX as i64)? as usize,
            "flush.messages" => self.flush_messages = int(1, i64::MAX)? as u64,
            "flush.ms" => self.flush_ms = int(0, i64::MAX)?,
            "message.timestamp.type" => {
                self.message_timestamp_type = match value.trim() {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => return Err(invalid("expected CreateTime or LogAppendTime")),
                }
            }
            "cleanup.policy" => {
                let mut policy = CleanupPolicy {
                    delete: false,
                    compact: false,
                };
                for part in value.split(',').map(str::trim) {
                    match part {
                        "delete" => policy.delete = true,
                        "compact" => policy.compact = true,
                        _ => return Err(invalid("expected a list of delete and compact")),
                    }
                }
                self.cleanup_policy = policy;
            }
            _ => {
                return Err(ConfigError::UnknownKey {
                    key: key.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Builds a config from Kafka-style overrides on top of the defaults.
    pub fn from_overrides<'a>(
        overrides: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<LogConfig, ConfigError> {
        let mut config = LogConfig::default();
        for (key, value) in overrides {
            config.set(key, value)?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_kafka() {
        let c = LogConfig::default();
        assert_eq!(c.segment_bytes, 1_073_741_824);
        assert_eq!(c.segment_ms, 604_800_000);
        assert_eq!(c.segment_index_bytes, 10_485_760);
        assert_eq!(c.index_interval_bytes, 4096);
        assert_eq!(c.retention_ms, 604_800_000);
        assert_eq!(c.retention_bytes, -1);
        assert_eq!(c.max_message_bytes, 1_048_588);
        assert_eq!(c.flush_messages, i64::MAX as u64);
    }

    #[test]
    fn overrides_apply_and_errors_name_the_key() {
        let c = LogConfig::from_overrides([
            ("segment.bytes", "1048576"),
            ("cleanup.policy", "compact,delete"),
            ("message.timestamp.type", "LogAppendTime"),
        ])
        .unwrap();
        assert_eq!(c.segment_bytes, 1_048_576);
        assert_eq!(
            c.cleanup_policy,
            CleanupPolicy {
                delete: true,
                compact: true
            }
        );
        assert_eq!(c.message_timestamp_type, TimestampType::LogAppendTime);

        let err = LogConfig::from_overrides([("segment.bytes", "10")]).unwrap_err();
        assert!(err.to_string().contains("segment.bytes"), "{err}");
        let err = LogConfig::from_overrides([("retention.ms", "soon")]).unwrap_err();
        assert!(err.to_string().contains("retention.ms"), "{err}");
        let err = LogConfig::from_overrides([("retention.bytes", "-2")]).unwrap_err();
        assert!(
            matches!(err, ConfigError::InvalidValue { ref key, .. } if key == "retention.bytes")
        );
        let err = LogConfig::from_overrides([("segment.bytez", "1")]).unwrap_err();
        assert_eq!(
            err,
            ConfigError::UnknownKey {
                key: "segment.bytez".into()
            }
        );
        for key in LOG_CONFIG_KEYS {
            let err = LogConfig::default().set(key, "?!").unwrap_err();
            assert!(matches!(err, ConfigError::InvalidValue { .. }), "{key}");
        }
    }
}
