//! Kafka's topic-level configs: the one table of names, types, defaults and
//! bounds ([`TOPIC_CONFIGS`]), validation of override maps, and the
//! IncrementalAlterConfigs operations on them.
//!
//! Names, defaults and bounds are Kafka 4's (`LogConfig`). Values are kept as the
//! strings clients sent; parsing follows Kafka's `ConfigDef`: surrounding
//! whitespace is ignored, booleans are `true`/`false` in any case, lists are
//! comma-separated. Invariant: a map that passed [`validate_topic_configs`] has
//! only known keys, every value parses as its kind and meets its bounds, and
//! `min.compaction.lag.ms <= max.compaction.lag.ms` (taking defaults into account).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A config value's type, as Kafka's `ConfigDef.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    Boolean,
    Int,
    Long,
    Double,
    String,
    List,
    Class,
    Password,
}

/// The rule a parsed value must meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validator {
    Any,
    /// A number `>= min`.
    AtLeast(i64),
    /// A number in `min..=max`.
    Between(i64, i64),
    /// A string equal to one of these (case-sensitive, as Kafka's `ValidString`).
    OneOf(&'static [&'static str]),
    /// A list whose every item is one of these; the empty list is allowed.
    ListOf(&'static [&'static str]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub kind: ConfigKind,
    pub default: Option<&'static str>,
    pub doc: &'static str,
    pub validator: Validator,
}

const LONG_MAX: &str = "9223372036854775807";

const fn def(
    name: &'static str,
    kind: ConfigKind,
    default: &'static str,
    validator: Validator,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        kind,
        default: Some(default),
        doc,
        validator,
    }
}

use ConfigKind::{Boolean, Double, Int, List, Long, String as Str};
use Validator::{Any, AtLeast, Between, ListOf, OneOf};

/// Kafka's topic configs, sorted by name.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def(
        "cleanup.policy",
        List,
        "delete",
        ListOf(&["compact", "delete"]),
        "How old segments are cleaned: `delete` drops them past retention, `compact` keeps the latest record per key; both may be given.",
    ),
    def(
        "compression.type",
        Str,
        "producer",
        OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        "Codec batches are stored with; `producer` keeps the producer's codec.",
    ),
    def(
        "delete.retention.ms",
        Long,
        "86400000",
        AtLeast(0),
        "How long tombstones stay readable in a compacted topic.",
    ),
    def(
        "file.delete.delay.ms",
        Long,
        "60000",
        AtLeast(0),
        "Delay before a deleted segment's files are removed from disk.",
    ),
    def(
        "flush.messages",
        Long,
        LONG_MAX,
        AtLeast(1),
        "Messages appended between forced fsyncs of the log.",
    ),
    def(
        "flush.ms",
        Long,
        LONG_MAX,
        AtLeast(0),
        "Longest time a message waits before the log is fsynced.",
    ),
    def(
        "index.interval.bytes",
        Int,
        "4096",
        AtLeast(0),
        "Log bytes between two entries of the sparse offset index.",
    ),
    def(
        "max.compaction.lag.ms",
        Long,
        LONG_MAX,
        AtLeast(1),
        "Longest time a record stays ineligible for compaction.",
    ),
    def(
        "max.message.bytes",
        Int,
        "1048588",
        AtLeast(0),
        "Largest record batch, after compression, the topic accepts.",
    ),
    def(
        "message.timestamp.after.max.ms",
        Long,
        "3600000",
        AtLeast(0),
        "How far a CreateTime timestamp may lie ahead of the broker's clock.",
    ),
    def(
        "message.timestamp.before.max.ms",
        Long,
        LONG_MAX,
        AtLeast(0),
        "How far a CreateTime timestamp may lie behind the broker's clock.",
    ),
    def(
        "message.timestamp.type",
        Str,
        "CreateTime",
        OneOf(&["CreateTime", "LogAppendTime"]),
        "Whether record timestamps are the producer's (CreateTime) or the broker's append time (LogAppendTime).",
    ),
    def(
        "min.cleanable.dirty.ratio",
        Double,
        "0.5",
        Between(0, 1),
        "Share of uncompacted log above which the cleaner compacts it.",
    ),
    def(
        "min.compaction.lag.ms",
        Long,
        "0",
        AtLeast(0),
        "Shortest time a record stays uncompacted.",
    ),
    def(
        "min.insync.replicas",
        Int,
        "1",
        AtLeast(1),
        "In-sync replicas an acks=all write needs.",
    ),
    def(
        "preallocate",
        Boolean,
        "false",
        Any,
        "Whether new segment files are preallocated on disk.",
    ),
    def(
        "retention.bytes",
        Long,
        "-1",
        Any,
        "Largest size a partition keeps before deleting old segments; -1 for no limit.",
    ),
    def(
        "retention.ms",
        Long,
        "604800000",
        AtLeast(-1),
        "How long segments are kept before deletion; -1 for no limit.",
    ),
    def(
        "segment.bytes",
        Int,
        "1073741824",
        AtLeast(1_048_576),
        "Size at which a new log segment is rolled.",
    ),
    def(
        "segment.index.bytes",
        Int,
        "10485760",
        AtLeast(4),
        "Size of a segment's offset and time index files.",
    ),
    def(
        "segment.jitter.ms",
        Long,
        "0",
        AtLeast(0),
        "Random jitter subtracted from segment.ms so segments do not roll together.",
    ),
    def(
        "segment.ms",
        Long,
        "604800000",
        AtLeast(1),
        "Age at which a new log segment is rolled.",
    ),
    def(
        "unclean.leader.election.enable",
        Boolean,
        "false",
        Any,
        "Whether a replica outside the ISR may become leader, at the risk of losing data.",
    ),
];

const MIN_COMPACTION_LAG: &str = "min.compaction.lag.ms";
const MAX_COMPACTION_LAG: &str = "max.compaction.lag.ms";

/// Why a value is not acceptable for its key.
#[derive(Debug, Clone, PartialEq)]
pub enum InvalidValue {
    NotBoolean,
    NotInt,
    NotLong,
    NotDouble,
    NotFinite,
    TooSmall {
        min: i64,
    },
    TooLarge {
        max: i64,
    },
    NotOneOf {
        allowed: &'static [&'static str],
    },
    ListItemNotOneOf {
        item: String,
        allowed: &'static [&'static str],
    },
}

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidValue::NotBoolean => f.write_str("Expected value to be either true or false"),
            InvalidValue::NotInt => f.write_str("Not a number of type INT"),
            InvalidValue::NotLong => f.write_str("Not a number of type LONG"),
            InvalidValue::NotDouble => f.write_str("Not a number of type DOUBLE"),
            InvalidValue::NotFinite => f.write_str("Value must be a finite number"),
            InvalidValue::TooSmall { min } => write!(f, "Value must be at least {min}"),
            InvalidValue::TooLarge { max } => write!(f, "Value must be no more than {max}"),
            InvalidValue::NotOneOf { allowed } => {
                write!(f, "String must be one of: {}", allowed.join(", "))
            }
            InvalidValue::ListItemNotOneOf { item, allowed } => {
                write!(
                    f,
                    "Invalid value {item}: every item must be one of: {}",
                    allowed.join(", ")
                )
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("Unknown topic config name: {key}")]
    Unknown { key: String },
    #[error("Invalid value {value} for configuration {key}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: InvalidValue,
    },
    #[error("conflict topic config setting {key} ({value}) > {other_key} ({other_value})")]
    Conflict {
        key: &'static str,
        value: i64,
        other_key: &'static str,
        other_value: i64,
    },
    #[error("Can't {op} to key {key} because its type is not LIST.")]
    NotAList { key: String, op: &'static str },
    #[error("Error due to duplicate config keys: {key}")]
    DuplicateKey { key: String },
}

/// One IncrementalAlterConfigs operation on a topic's overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    /// Sets the override.
    Set(String, String),
    /// Removes the override, so the default applies again.
    Delete(String),
    /// Adds comma-separated items to a list config (starting from its default
    /// when it has no override), skipping items already present.
    Append(String, String),
    /// Removes comma-separated items from a list config.
    Subtract(String, String),
}

impl ConfigOp {
    pub fn key(&self) -> &str {
        match self {
            ConfigOp::Set(key, _)
            | ConfigOp::Delete(key)
            | ConfigOp::Append(key, _)
            | ConfigOp::Subtract(key, _) => key,
        }
    }
}

pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|def| def.name == name)
}

/// The value in force for `name`: the override if there is one, else the default.
pub fn effective_value<'a>(overrides: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    overrides
        .get(name)
        .map(String::as_str)
        .or_else(|| topic_config_def(name).and_then(|def| def.default))
}

/// Checks a topic's overrides: every key known, every value valid, and the
/// cross-key rules. The error names the first offending key and value.
pub fn validate_topic_configs(configs: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (key, value) in configs {
        let def = topic_config_def(key).ok_or_else(|| ConfigError::Unknown { key: key.clone() })?;
        validate_value(def, value).map_err(|reason| ConfigError::Invalid {
            key: key.clone(),
            value: value.clone(),
            reason,
        })?;
    }
    let min_lag = effective_long(configs, MIN_COMPACTION_LAG);
    let max_lag = effective_long(configs, MAX_COMPACTION_LAG);
    if min_lag > max_lag {
        return Err(ConfigError::Conflict {
            key: MIN_COMPACTION_LAG,
            value: min_lag,
            other_key: MAX_COMPACTION_LAG,
            other_value: max_lag,
        });
    }
    Ok(())
}

/// Applies IncrementalAlterConfigs operations to `current` overrides and
/// validates the result. A key may appear in at most one operation.
pub fn apply_config_ops(
    current: &BTreeMap<String, String>,
    ops: &[ConfigOp],
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut seen = BTreeSet::new();
    if let Some(op) = ops.iter().find(|op| !seen.insert(op.key())) {
        return Err(ConfigError::DuplicateKey {
            key: op.key().to_owned(),
        });
    }
    let mut next = current.clone();
    for op in ops {
        match op {
            ConfigOp::Set(key, value) => {
                next.insert(key.clone(), value.clone());
            }
            ConfigOp::Delete(key) => {
                next.remove(key);
            }
            ConfigOp::Append(key, items) | ConfigOp::Subtract(key, items) => {
                let op_name = if matches!(op, ConfigOp::Append(..)) {
                    "APPEND"
                } else {
                    "SUBTRACT"
                };
                let def = topic_config_def(key)
                    .ok_or_else(|| ConfigError::Unknown { key: key.clone() })?;
                if def.kind != ConfigKind::List {
                    return Err(ConfigError::NotAList {
                        key: key.clone(),
                        op: op_name,
                    });
                }
                let mut list: Vec<String> = effective_value(&next, key)
                    .map(|value| split_list(value).map(str::to_owned).collect())
                    .unwrap_or_default();
                for item in split_list(items) {
                    if op_name == "APPEND" {
                        if !list.iter().any(|have| have == item) {
                            list.push(item.to_owned());
                        }
                    } else {
                        list.retain(|have| have != item);
                    }
                }
                next.insert(key.clone(), list.join(","));
            }
        }
    }
    validate_topic_configs(&next)?;
    Ok(next)
}

/// Items of a list value, as Kafka splits them: trimmed, comma-separated, and
/// no items at all for a blank value. Inner empty items are kept (and rejected
/// by validation).
fn split_list(value: &str) -> impl Iterator<Item = &str> {
    let value = value.trim();
    value
        .split(',')
        .map(str::trim)
        .filter(move |_| !value.is_empty())
}

fn validate_value(def: &TopicConfigDef, raw: &str) -> Result<(), InvalidValue> {
    let value = raw.trim();
    match def.kind {
        ConfigKind::Boolean => {
            if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false") {
                Ok(())
            } else {
                Err(InvalidValue::NotBoolean)
            }
        }
        ConfigKind::Int => {
            let n = value.parse::<i32>().map_err(|_| InvalidValue::NotInt)?;
            check_range(def.validator, f64::from(n))
        }
        ConfigKind::Long => {
            let n = value.parse::<i64>().map_err(|_| InvalidValue::NotLong)?;
            check_long(def.validator, n)
        }
        ConfigKind::Double => {
            let n = value.parse::<f64>().map_err(|_| InvalidValue::NotDouble)?;
            if !n.is_finite() {
                return Err(InvalidValue::NotFinite);
            }
            check_range(def.validator, n)
        }
        ConfigKind::String | ConfigKind::Class | ConfigKind::Password => match def.validator {
            Validator::OneOf(allowed) if !allowed.contains(&value) => {
                Err(InvalidValue::NotOneOf { allowed })
            }
            _ => Ok(()),
        },
        ConfigKind::List => match def.validator {
            Validator::ListOf(allowed) => split_list(value)
                .find(|item| !allowed.contains(item))
                .map_or(Ok(()), |item| {
                    Err(InvalidValue::ListItemNotOneOf {
                        item: item.to_owned(),
                        allowed,
                    })
                }),
            _ => Ok(()),
        },
    }
}

/// Longs are compared exactly: an f64 cannot tell i64::MAX from i64::MAX - 1.
fn check_long(validator: Validator, n: i64) -> Result<(), InvalidValue> {
    match validator {
        Validator::AtLeast(min) if n < min => Err(InvalidValue::TooSmall { min }),
        Validator::Between(min, _) if n < min => Err(InvalidValue::TooSmall { min }),
        Validator::Between(_, max) if n > max => Err(InvalidValue::TooLarge { max }),
        _ => Ok(()),
    }
}

#[allow(clippy::cast_precision_loss)] // bounds in the table are small integers
fn check_range(validator: Validator, n: f64) -> Result<(), InvalidValue> {
    match validator {
        Validator::AtLeast(min) if n < min as f64 => Err(InvalidValue::TooSmall { min }),
        Validator::Between(min, _) if n < min as f64 => Err(InvalidValue::TooSmall { min }),
        Validator::Between(_, max) if n > max as f64 => Err(InvalidValue::TooLarge { max }),
        _ => Ok(()),
    }
}

/// A long config's value in force. Only called after the map validated, so a
/// value that does not parse cannot occur; the default is used if it did.
fn effective_long(configs: &BTreeMap<String, String>, name: &str) -> i64 {
    let parse = |v: &str| v.trim().parse::<i64>().ok();
    configs
        .get(name)
        .and_then(|v| parse(v))
        .or_else(|| {
            topic_config_def(name)
                .and_then(|d| d.default)
                .and_then(parse)
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn table_is_sorted_unique_and_every_default_validates() {
        let names: Vec<&str> = TOPIC_CONFIGS.iter().map(|d| d.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        for def in TOPIC_CONFIGS {
            let default = def.default.expect("every topic config has a default");
            assert_eq!(
                validate_value(def, default),
                Ok(()),
                "default of {}",
                def.name
            );
            assert!(!def.doc.is_empty(), "{} has no doc", def.name);
        }
    }

    #[test]
    fn defaults_are_kafkas() {
        let expect = [
            ("cleanup.policy", "delete"),
            ("compression.type", "producer"),
            ("delete.retention.ms", "86400000"),
            ("file.delete.delay.ms", "60000"),
            ("flush.messages", "9223372036854775807"),
            ("flush.ms", "9223372036854775807"),
            ("index.interval.bytes", "4096"),
            ("max.compaction.lag.ms", "9223372036854775807"),
            ("max.message.bytes", "1048588"),
            ("message.timestamp.after.max.ms", "3600000"),
            ("message.timestamp.before.max.ms", "9223372036854775807"),
            ("message.timestamp.type", "CreateTime"),
            ("min.cleanable.dirty.ratio", "0.5"),
            ("min.compaction.lag.ms", "0"),
            ("min.insync.replicas", "1"),
            ("preallocate", "false"),
            ("retention.bytes", "-1"),
            ("retention.ms", "604800000"),
            ("segment.bytes", "1073741824"),
            ("segment.index.bytes", "10485760"),
            ("segment.jitter.ms", "0"),
            ("segment.ms", "604800000"),
            ("unclean.leader.election.enable", "false"),
        ];
        assert_eq!(TOPIC_CONFIGS.len(), expect.len());
        for (name, default) in expect {
            assert_eq!(
                topic_config_def(name).and_then(|d| d.default),
                Some(default),
                "{name}"
            );
        }
    }

    #[test]
    fn values_are_checked_against_kind_and_bounds() {
        let ok = [
            ("cleanup.policy", "compact"),
            ("cleanup.policy", "compact,delete"),
            ("cleanup.policy", " delete , compact "),
            ("cleanup.policy", ""),
            ("compression.type", "zstd"),
            ("min.insync.replicas", "2"),
            ("min.cleanable.dirty.ratio", "0"),
            ("min.cleanable.dirty.ratio", "1"),
            ("min.cleanable.dirty.ratio", "1e-3"),
            ("preallocate", "TRUE"),
            ("retention.ms", "-1"),
            ("retention.bytes", "-5"),
            ("segment.bytes", "1048576"),
            ("flush.ms", "9223372036854775807"),
            ("message.timestamp.type", "LogAppendTime"),
        ];
        for (key, value) in ok {
            assert_eq!(
                validate_topic_configs(&map(&[(key, value)])),
                Ok(()),
                "{key}={value}"
            );
        }
        let bad: &[(&str, &str, InvalidValue)] = &[
            (
                "min.insync.replicas",
                "0",
                InvalidValue::TooSmall { min: 1 },
            ),
            ("retention.ms", "-2", InvalidValue::TooSmall { min: -1 }),
            (
                "segment.bytes",
                "1048575",
                InvalidValue::TooSmall { min: 1_048_576 },
            ),
            ("segment.bytes", "2147483648", InvalidValue::NotInt),
            ("segment.ms", "soon", InvalidValue::NotLong),
            ("flush.ms", "9223372036854775808", InvalidValue::NotLong),
            (
                "min.cleanable.dirty.ratio",
                "1.5",
                InvalidValue::TooLarge { max: 1 },
            ),
            (
                "min.cleanable.dirty.ratio",
                "-0.1",
                InvalidValue::TooSmall { min: 0 },
            ),
            ("min.cleanable.dirty.ratio", "NaN", InvalidValue::NotFinite),
            ("min.cleanable.dirty.ratio", "half", InvalidValue::NotDouble),
            ("preallocate", "yes", InvalidValue::NotBoolean),
            (
                "compression.type",
                "brotli",
                InvalidValue::NotOneOf {
                    allowed: &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"],
                },
            ),
            (
                "message.timestamp.type",
                "createtime",
                InvalidValue::NotOneOf {
                    allowed: &["CreateTime", "LogAppendTime"],
                },
            ),
            (
                "cleanup.policy",
                "delete,archive",
                InvalidValue::ListItemNotOneOf {
                    item: "archive".into(),
                    allowed: &["compact", "delete"],
                },
            ),
            (
                "cleanup.policy",
                "delete,",
                InvalidValue::ListItemNotOneOf {
                    item: String::new(),
                    allowed: &["compact", "delete"],
                },
            ),
        ];
        for (key, value, reason) in bad {
            let err = validate_topic_configs(&map(&[(key, value)])).unwrap_err();
            assert_eq!(
                err,
                ConfigError::Invalid {
                    key: (*key).into(),
                    value: (*value).into(),
                    reason: reason.clone()
                },
                "{key}={value}"
            );
        }
    }

    #[test]
    fn errors_name_the_key_and_value() {
        let err = validate_topic_configs(&map(&[("retention.ms", "-7")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid value -7 for configuration retention.ms: Value must be at least -1"
        );
        let err = validate_topic_configs(&map(&[("retention.hours", "1")])).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Unknown {
                key: "retention.hours".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "Unknown topic config name: retention.hours"
        );
    }

    #[test]
    fn min_compaction_lag_above_max_is_a_conflict() {
        let err = validate_topic_configs(&map(&[
            ("min.compaction.lag.ms", "10"),
            ("max.compaction.lag.ms", "5"),
        ]))
        .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Conflict {
                    value: 10,
                    other_value: 5,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            validate_topic_configs(&map(&[("min.compaction.lag.ms", "5000")])),
            Ok(())
        );
    }

    #[test]
    fn effective_value_prefers_the_override() {
        let overrides = map(&[("retention.ms", "1000")]);
        assert_eq!(effective_value(&overrides, "retention.ms"), Some("1000"));
        assert_eq!(effective_value(&overrides, "segment.ms"), Some("604800000"));
        assert_eq!(effective_value(&overrides, "no.such.key"), None);
    }

    #[test]
    fn incremental_ops_set_delete_append_and_subtract() {
        let current = map(&[("retention.ms", "1000"), ("segment.ms", "5000")]);
        let next = apply_config_ops(
            &current,
            &[
                ConfigOp::Set("retention.ms".into(), "2000".into()),
                ConfigOp::Delete("segment.ms".into()),
                ConfigOp::Append("cleanup.policy".into(), "compact".into()),
            ],
        )
        .unwrap();
        assert_eq!(
            next,
            map(&[
                ("cleanup.policy", "delete,compact"),
                ("retention.ms", "2000")
            ])
        );

        let next = apply_config_ops(
            &next,
            &[ConfigOp::Subtract("cleanup.policy".into(), "delete".into())],
        )
        .unwrap();
        assert_eq!(
            next.get("cleanup.policy").map(String::as_str),
            Some("compact")
        );

        let again = apply_config_ops(
            &next,
            &[ConfigOp::Append("cleanup.policy".into(), "compact".into())],
        )
        .unwrap();
        assert_eq!(
            again.get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
    }

    #[test]
    fn deleting_an_absent_override_changes_nothing() {
        let current = map(&[("retention.ms", "1000")]);
        let next = apply_config_ops(&current, &[ConfigOp::Delete("segment.ms".into())]).unwrap();
        assert_eq!(next, current);
    }

    #[test]
    fn incremental_ops_are_refused_when_wrong() {
        let current = BTreeMap::new();
        let err = apply_config_ops(
            &current,
            &[ConfigOp::Append("retention.ms".into(), "5".into())],
        )
        .unwrap_err();
        assert_eq!(
            err,
            ConfigError::NotAList {
                key: "retention.ms".into(),
                op: "APPEND"
            }
        );
        assert_eq!(
            err.to_string(),
            "Can't APPEND to key retention.ms because its type is not LIST."
        );

        let err = apply_config_ops(
            &current,
            &[
                ConfigOp::Set("retention.ms".into(), "5".into()),
                ConfigOp::Delete("retention.ms".into()),
            ],
        )
        .unwrap_err();
        assert_eq!(
            err,
            ConfigError::DuplicateKey {
                key: "retention.ms".into()
            }
        );

        let err =
            apply_config_ops(&current, &[ConfigOp::Set("bogus".into(), "1".into())]).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Unknown {
                key: "bogus".into()
            }
        );

        let err = apply_config_ops(&current, &[ConfigOp::Subtract("bogus".into(), "1".into())])
            .unwrap_err();
        assert_eq!(
            err,
            ConfigError::Unknown {
                key: "bogus".into()
            }
        );

        let err = apply_config_ops(&current, &[ConfigOp::Set("segment.ms".into(), "0".into())])
            .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                reason: InvalidValue::TooSmall { min: 1 },
                ..
            }
        ));
    }
}
