//! The transaction coordinator's broker keys (`transaction.*`, `transactional.id.*`), with
//! Kafka's names, defaults and bounds.

/// The `transaction.*` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionSettings {
    /// `transaction.state.log.num.partitions` (50): partitions of `__transaction_state`,
    /// fixed once the topic exists (a transactional id's coordinator is chosen by hashing).
    pub state_log_num_partitions: i32,
    /// `transaction.state.log.replication.factor` (3). As for `__consumer_offsets`, Weir
    /// creates the topic with as many replicas as there are live brokers, up to this.
    pub state_log_replication_factor: i16,
    /// `transaction.state.log.min.isr` (2): the topic's `min.insync.replicas` (at most its
    /// replication factor).
    pub state_log_min_isr: i32,
    /// `transaction.state.log.segment.bytes` (100 MiB).
    pub state_log_segment_bytes: i32,
    /// `transaction.max.timeout.ms` (15 minutes): the longest `transaction.timeout.ms` a
    /// producer may ask for.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms` (7 days): a transactional id idle this long with no
    /// open transaction is forgotten.
    pub id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms` (10 s): how often
    /// transactions open past their timeout are looked for and aborted.
    pub abort_timed_out_interval_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms` (1 hour).
    pub remove_expired_interval_ms: i64,
    /// `transaction.partition.verification.enable` (true): a partition leader asks the
    /// transaction coordinator whether the partition is in the producer's ongoing transaction
    /// before a transactional write opens one there (KIP-890 part 1).
    pub partition_verification_enable: bool,
}

impl Default for TransactionSettings {
    fn default() -> Self {
        TransactionSettings {
            state_log_num_partitions: 50,
            state_log_replication_factor: 3,
            state_log_min_isr: 2,
            state_log_segment_bytes: 104_857_600,
            max_timeout_ms: 900_000,
            id_expiration_ms: 604_800_000,
            abort_timed_out_interval_ms: 10_000,
            remove_expired_interval_ms: 3_600_000,
            partition_verification_enable: true,
        }
    }
}

/// The keys, in the order the documentation lists them.
pub(super) const KEYS: &[&str] = &[
    "transaction.state.log.num.partitions",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "transaction.state.log.segment.bytes",
    "transaction.max.timeout.ms",
    "transactional.id.expiration.ms",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
    "transaction.remove.expired.transaction.cleanup.interval.ms",
    "transaction.partition.verification.enable",
];

/// Why a value was refused (the caller names the key).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    NotAnInteger,
    NotABoolean,
    OutOfRange { min: i64, max: i64 },
}

impl TransactionSettings {
    /// Sets `key`; `None` when the key is not one of these.
    pub(super) fn set(&mut self, key: &str, value: &str) -> Option<Result<(), Refusal>> {
        // Kafka's bounds: partitions, replication factor, min ISR and the intervals at least 1;
        // segment bytes at least 1; the timeouts at least 1.
        if key == "transaction.partition.verification.enable" {
            self.partition_verification_enable = match value.trim() {
                "true" => true,
                "false" => false,
                _ => return Some(Err(Refusal::NotABoolean)),
            };
            return Some(Ok(()));
        }
        let (min, max) = match key {
            "transaction.state.log.replication.factor" => (1, i64::from(i16::MAX)),
            "transactional.id.expiration.ms" => (1, i64::from(i32::MAX)),
            k if KEYS.contains(&k) => (1, i64::from(i32::MAX)),
            _ => return None,
        };
        let parsed = value.trim().parse::<i64>();
        Some(match parsed {
            Err(_) => Err(Refusal::NotAnInteger),
            Ok(v) if v < min || v > max => Err(Refusal::OutOfRange { min, max }),
            Ok(v) => {
                match key {
                    "transaction.state.log.num.partitions" => {
                        self.state_log_num_partitions = v as i32
                    }
                    "transaction.state.log.replication.factor" => {
                        self.state_log_replication_factor = v as i16
                    }
                    "transaction.state.log.min.isr" => self.state_log_min_isr = v as i32,
                    "transaction.state.log.segment.bytes" => {
                        self.state_log_segment_bytes = v as i32
                    }
                    "transaction.max.timeout.ms" => self.max_timeout_ms = v as i32,
                    "transactional.id.expiration.ms" => self.id_expiration_ms = v,
                    "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
                        self.abort_timed_out_interval_ms = v
                    }
                    _ => self.remove_expired_interval_ms = v,
                }
                Ok(())
            }
        })
    }

    /// The value in force for `key`; `None` when the key is not one of these.
    pub(super) fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "transaction.state.log.num.partitions" => self.state_log_num_partitions.to_string(),
            "transaction.state.log.replication.factor" => {
                self.state_log_replication_factor.to_string()
            }
            "transaction.state.log.min.isr" => self.state_log_min_isr.to_string(),
            "transaction.state.log.segment.bytes" => self.state_log_segment_bytes.to_string(),
            "transaction.max.timeout.ms" => self.max_timeout_ms.to_string(),
            "transactional.id.expiration.ms" => self.id_expiration_ms.to_string(),
            "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
                self.abort_timed_out_interval_ms.to_string()
            }
            "transaction.remove.expired.transaction.cleanup.interval.ms" => {
                self.remove_expired_interval_ms.to_string()
            }
            "transaction.partition.verification.enable" => {
                self.partition_verification_enable.to_string()
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips_and_defaults_are_kafkas() {
        let defaults = TransactionSettings::default();
        assert_eq!(
            defaults
                .get("transaction.state.log.num.partitions")
                .as_deref(),
            Some("50")
        );
        assert_eq!(
            defaults.get("transaction.max.timeout.ms").as_deref(),
            Some("900000")
        );
        assert_eq!(
            defaults
                .get("transaction.partition.verification.enable")
                .as_deref(),
            Some("true")
        );
        let mut settings = TransactionSettings::default();
        for (i, key) in KEYS.iter().enumerate() {
            let value = if key.ends_with(".enable") {
                "false".to_owned()
            } else {
                (i as i64 + 2).to_string()
            };
            assert_eq!(settings.set(key, &value), Some(Ok(())), "{key}");
            assert_eq!(settings.get(key), Some(value), "{key}");
        }
        assert_eq!(settings.set("transaction.unknown", "1"), None);
    }

    #[test]
    fn out_of_range_and_garbage_values_are_refused_without_change() {
        let mut settings = TransactionSettings::default();
        assert_eq!(
            settings.set("transaction.max.timeout.ms", "0"),
            Some(Err(Refusal::OutOfRange {
                min: 1,
                max: i64::from(i32::MAX)
            }))
        );
        assert_eq!(
            settings.set("transaction.state.log.replication.factor", "40000"),
            Some(Err(Refusal::OutOfRange {
                min: 1,
                max: i64::from(i16::MAX)
            }))
        );
        assert_eq!(
            settings.set("transaction.state.log.min.isr", "two"),
            Some(Err(Refusal::NotAnInteger))
        );
        assert_eq!(
            settings.set("transaction.partition.verification.enable", "yes"),
            Some(Err(Refusal::NotABoolean))
        );
        assert_eq!(settings, TransactionSettings::default());
    }
}
