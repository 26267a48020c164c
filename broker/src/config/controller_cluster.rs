//! `controller.cluster.name` (Weir's own key, unset by default): the cluster name a
//! multi-cluster controller (the Kubernetes operator) knows this broker's cluster by. The
//! broker names it in every controller RPC (the `weir-cluster` gRPC metadata), so that one
//! controller endpoint can serve many clusters; the operator sets it. A controller of one
//! cluster (standalone, a local cluster) needs none.

use weir_controller::grpc::is_valid_cluster_name;

pub(super) const KEY: &str = "controller.cluster.name";

/// The name `value` gives, trimmed; the reason it was refused otherwise.
pub(super) fn parse(value: &str) -> Result<String, &'static str> {
    let name = value.trim();
    if is_valid_cluster_name(name) {
        Ok(name.to_owned())
    } else {
        Err("expected a non-empty name of visible ASCII characters without spaces")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BrokerConfig, ConfigError};

    fn set(value: &str) -> Result<BrokerConfig, ConfigError> {
        let mut config = BrokerConfig::default();
        config.apply(&[(KEY.to_owned(), value.to_owned())])?;
        Ok(config)
    }

    #[test]
    fn the_cluster_name_is_unset_by_default_and_shown_as_given() {
        let defaults = BrokerConfig::default();
        assert_eq!(defaults.controller_cluster_name, None);
        assert_eq!(defaults.value_of(KEY), None);
        assert!(BrokerConfig::known_keys().any(|k| k == KEY));

        let config = set(" weir-system/orders ").unwrap();
        assert_eq!(
            config.controller_cluster_name.as_deref(),
            Some("weir-system/orders")
        );
        assert_eq!(
            config.value_of(KEY).as_deref(),
            Some(" weir-system/orders ")
        );
        config.validate().unwrap();
    }

    #[test]
    fn a_name_that_cannot_be_sent_as_metadata_is_refused_naming_the_key() {
        for bad in ["", "  ", "two words", "tab\tbed", "caf\u{e9}"] {
            let err = set(bad).unwrap_err();
            assert!(
                matches!(&err, ConfigError::InvalidValue { key, value, .. } if key == KEY && value == bad),
                "{bad:?}: {err}"
            );
        }
    }
}
