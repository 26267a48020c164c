//! Per-log (topic-level) configuration: Kafka's key names, defaults and bounds.
//!
//! The defaults here are the one place they are defined; a topic's overrides are applied with
//! [`LogConfig::set`], which names the key in every error. `set` checks one key at a time; the
//! cross-field rule `min.compaction.lag.ms <= max.compaction.lag.ms` is the controller's to
//! enforce, and the cleaner reads the two independently as Kafka's does.

use thiserror::Error;

use super::batch::TimestampType;
use super::writeback::PageCachePolicy;

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

/// A ratio in `[0, 1]`, such as `min.cleanable.dirty.ratio`. Never NaN, hence `Eq`.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Ratio(f64);

impl Eq for Ratio {}

impl Ratio {
    /// `value` if it lies in `[0, 1]` (NaN does not).
    pub fn new(value: f64) -> Option<Ratio> {
        (0.0..=1.0).contains(&value).then_some(Ratio(value))
    }

    pub fn get(self) -> f64 {
        self.0
    }
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
    /// `delete.retention.ms`: how long the cleaner keeps tombstones once their segment is
    /// in the clean section (see `cleaner`).
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: the cleaner compacts a log once its dirty bytes are more
    /// than this share of its cleanable bytes.
    pub min_cleanable_dirty_ratio: Ratio,
    /// `min.compaction.lag.ms`: a segment whose newest record is younger than this is not
    /// compacted yet.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a log whose oldest dirty segment started longer ago than this
    /// is compacted whatever its dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// The broker's page-cache write-behind (`log.writeback.interval.bytes`,
    /// `log.cache.retain.bytes`): broker-wide, not a topic config.
    pub page_cache: PageCachePolicy,
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
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_cleanable_dirty_ratio: Ratio(0.5),
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            page_cache: PageCachePolicy::default(),
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
    "delete.retention.ms",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
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
            // Kafka puts no bound on retention.bytes: any negative value means no limit.
            "retention.bytes" => self.retention_bytes = int(i64::MIN, i64::MAX)?,
            "max.message.bytes" => self.max_message_bytes = int(0, i32::MAX as i64)? as usize,
            "flush.messages" => self.flush_messages = int(1, i64::MAX)? as u64,
            "flush.ms" => self.flush_ms = int(0, i64::MAX)?,
            "delete.retention.ms" => self.delete_retention_ms = int(0, i64::MAX)?,
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = int(0, i64::MAX)?,
            "max.compaction.lag.ms" => self.max_compaction_lag_ms = int(1, i64::MAX)?,
            // Kafka: a DOUBLE, between(0, 1).
            "min.cleanable.dirty.ratio" => {
                let parsed: f64 = value.trim().parse().map_err(|_| invalid("not a number"))?;
                self.min_cleanable_dirty_ratio =
                    Ratio::new(parsed).ok_or(invalid("must be between 0 and 1"))?;
            }
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
                // A blank value is the empty list: neither deletion nor compaction.
                for part in value
                    .split(',')
                    .map(str::trim)
                    .filter(|_| !value.trim().is_empty())
                {
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

    /// The value of `key` as Kafka renders it, the inverse of [`LogConfig::set`]; `None` for a
    /// key `set` does not understand.
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "segment.jitter.ms" => self.segment_jitter_ms.to_string(),
            "segment.index.bytes" => self.segment_index_bytes.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "flush.messages" => self.flush_messages.to_string(),
            "flush.ms" => self.flush_ms.to_string(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            // `{:?}` keeps the decimal point (`1.0`, `0.5`), as Java's Double.toString does.
            "min.cleanable.dirty.ratio" => format!("{:?}", self.min_cleanable_dirty_ratio.get()),
            "message.timestamp.type" => match self.message_timestamp_type {
                TimestampType::CreateTime => "CreateTime".to_owned(),
                TimestampType::LogAppendTime => "LogAppendTime".to_owned(),
            },
            "cleanup.policy" => {
                let CleanupPolicy { delete, compact } = self.cleanup_policy;
                [(compact, "compact"), (delete, "delete")]
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, name)| *name)
                    .collect::<Vec<_>>()
                    .join(",")
            }
            _ => return None,
        })
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
        assert_eq!(c.delete_retention_ms, 86_400_000);
        assert_eq!(c.min_cleanable_dirty_ratio.get(), 0.5);
        assert_eq!(c.min_compaction_lag_ms, 0);
        assert_eq!(c.max_compaction_lag_ms, i64::MAX);
    }

    #[test]
    fn compaction_settings_are_bounded_as_kafka_bounds_them() {
        for (key, value) in [
            ("min.cleanable.dirty.ratio", "1.5"),
            ("min.cleanable.dirty.ratio", "-0.1"),
            ("min.cleanable.dirty.ratio", "NaN"),
            ("min.cleanable.dirty.ratio", "inf"),
            ("max.compaction.lag.ms", "0"),
            ("min.compaction.lag.ms", "-1"),
            ("delete.retention.ms", "-1"),
        ] {
            let err = LogConfig::default().set(key, value).unwrap_err();
            assert!(
                matches!(err, ConfigError::InvalidValue { key: ref k, .. } if k == key),
                "{key}={value}: {err}"
            );
        }
        let c = LogConfig::from_overrides([
            ("min.cleanable.dirty.ratio", " 0.01 "),
            ("delete.retention.ms", "0"),
            ("min.compaction.lag.ms", "60000"),
            ("max.compaction.lag.ms", "1"),
        ])
        .unwrap();
        assert_eq!(c.min_cleanable_dirty_ratio.get(), 0.01);
        assert_eq!(c.delete_retention_ms, 0);
        assert_eq!(c.min_compaction_lag_ms, 60_000);
        assert_eq!(c.max_compaction_lag_ms, 1);
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
        let err = LogConfig::from_overrides([("retention.bytes", "lots")]).unwrap_err();
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

    #[test]
    fn get_renders_what_set_parses() {
        let samples: &[(&str, &[&str])] = &[
            ("segment.bytes", &["1048576", "1073741824"]),
            ("segment.ms", &["1", "604800000"]),
            ("segment.jitter.ms", &["0", "5000"]),
            ("segment.index.bytes", &["4", "10485760"]),
            ("index.interval.bytes", &["0", "4096"]),
            ("retention.ms", &["-1", "3600000"]),
            ("retention.bytes", &["-1", "-5", "1000"]),
            ("max.message.bytes", &["0", "1048588"]),
            ("message.timestamp.type", &["CreateTime", "LogAppendTime"]),
            ("flush.messages", &["1", "9223372036854775807"]),
            ("flush.ms", &["0", "9223372036854775807"]),
            (
                "cleanup.policy",
                &["delete", "compact", "compact,delete", ""],
            ),
            ("delete.retention.ms", &["0", "86400000"]),
            ("min.cleanable.dirty.ratio", &["0.0", "0.5", "1.0", "0.25"]),
            ("min.compaction.lag.ms", &["0", "3600000"]),
            ("max.compaction.lag.ms", &["1", "9223372036854775807"]),
        ];
        assert_eq!(samples.len(), LOG_CONFIG_KEYS.len());
        for (key, values) in samples {
            for value in *values {
                let mut c = LogConfig::default();
                c.set(key, value).unwrap();
                assert_eq!(c.get(key).as_deref(), Some(*value), "{key}");
            }
        }
        let c = LogConfig::from_overrides([("cleanup.policy", "delete , compact")]).unwrap();
        assert_eq!(c.get("cleanup.policy").as_deref(), Some("compact,delete"));
        assert_eq!(
            LogConfig::default().get("cleanup.policy").as_deref(),
            Some("delete")
        );
        assert_eq!(LogConfig::default().get("preallocate"), None);
    }

    /// A topic override the controller commits must never fail here: the broker could then
    /// not open or reconfigure the topic's logs.
    #[test]
    fn every_value_the_controller_accepts_is_accepted() {
        let candidates = [
            "",
            " ",
            "-9223372036854775808",
            "-2",
            "-1",
            "0",
            "1",
            "4",
            "14",
            " 5 ",
            "1048575",
            "1048576",
            "2147483647",
            "2147483648",
            "9223372036854775807",
            "delete",
            "compact",
            "compact,delete",
            "delete, compact",
            "CreateTime",
            "LogAppendTime",
            "true",
            "0.5",
            "-0.5",
            "1.5",
            "NaN",
        ];
        let mut accepted = 0;
        for key in LOG_CONFIG_KEYS {
            for value in candidates {
                let overrides =
                    std::collections::BTreeMap::from([((*key).to_owned(), value.to_owned())]);
                if weir_controller::validate_topic_configs(&overrides).is_ok() {
                    accepted += 1;
                    let result = LogConfig::default().set(key, value);
                    assert_eq!(result, Ok(()), "{key}={value:?}");
                }
            }
        }
        assert!(accepted > LOG_CONFIG_KEYS.len(), "{accepted}");
    }

    #[test]
    fn blank_cleanup_policy_disables_deletion_and_compaction() {
        let c = LogConfig::from_overrides([("cleanup.policy", " ")]).unwrap();
        assert_eq!(
            c.cleanup_policy,
            CleanupPolicy {
                delete: false,
                compact: false
            }
        );
    }
}
