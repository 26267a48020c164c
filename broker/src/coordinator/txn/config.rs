//! The transaction coordinator's settings, under Kafka's key names and with Kafka's defaults.

use thiserror::Error;

use super::metadata::TransactionVersion;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms` (900000): InitProducerId with a longer (or a non-positive)
    /// `transaction.timeout.ms` is refused with INVALID_TRANSACTION_TIMEOUT.
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms` (604800000, 7 days): an id idle (Empty or Complete*)
    /// for longer is removed with a tombstone.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms` (3600000): how often idle
    /// ids are looked for.
    pub remove_expired_transactional_id_cleanup_interval_ms: i64,
    /// The cluster's finalized `transaction.version` feature level (2, as a new Kafka 4 cluster):
    /// the `__transaction_state` value version written (0 at level 0, 1 from level 1) and
    /// whether the coordinator's own aborts (fencing, timeouts) bump the epoch as a TV2 EndTxn
    /// does. The broker should advertise EndTxn v5 only at level 2.
    pub transaction_version: TransactionVersion,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 7 * 24 * 60 * 60 * 1000,
            remove_expired_transactional_id_cleanup_interval_ms: 3_600_000,
            transaction_version: TransactionVersion::TV_2,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("transaction.max.timeout.ms={0} must be positive")]
    MaxTimeout(i32),
    #[error("transactional.id.expiration.ms={0} must be positive")]
    Expiration(i64),
    #[error("transaction.remove.expired.transaction.cleanup.interval.ms={0} must be positive")]
    CleanupInterval(i64),
    #[error("transaction.version={0} is not a known level (0, 1 or 2)")]
    TransactionVersion(i16),
}

impl TxnConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.transaction_max_timeout_ms <= 0 {
            return Err(ConfigError::MaxTimeout(self.transaction_max_timeout_ms));
        }
        if self.transactional_id_expiration_ms <= 0 {
            return Err(ConfigError::Expiration(self.transactional_id_expiration_ms));
        }
        if self.remove_expired_transactional_id_cleanup_interval_ms <= 0 {
            return Err(ConfigError::CleanupInterval(
                self.remove_expired_transactional_id_cleanup_interval_ms,
            ));
        }
        if !(0..=2).contains(&self.transaction_version.0) {
            return Err(ConfigError::TransactionVersion(self.transaction_version.0));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas_and_valid() {
        let config = TxnConfig::default();
        assert_eq!(config.transaction_max_timeout_ms, 900_000);
        assert_eq!(config.transactional_id_expiration_ms, 604_800_000);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn validate_names_the_wrong_key() {
        let config = TxnConfig {
            transaction_max_timeout_ms: 0,
            ..TxnConfig::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::MaxTimeout(0)));
        let config = TxnConfig {
            transaction_version: TransactionVersion(3),
            ..TxnConfig::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("transaction.version")
        );
    }
}
