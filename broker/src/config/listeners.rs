//! The listener keys, with Kafka's syntax and checks: `listeners` (what the broker binds),
//! `advertised.listeners` (what it registers for clients and other brokers to connect to),
//! `listener.security.protocol.map` (each listener name's security protocol) and
//! `inter.broker.listener.name` (the listener brokers reach each other on).
//!
//! Listener names are upper-cased as Kafka's `ListenerName.normalised` does, so
//! `internal://…` and `INTERNAL:PLAINTEXT` name the same listener. Parsing one key checks
//! what that key alone can get wrong (syntax, a name twice, a port twice in `listeners`);
//! [`validate`] checks the keys against each other once all are set. Weir speaks PLAINTEXT
//! only: a listener mapped to SSL, SASL_PLAINTEXT or SASL_SSL is refused by name.

use std::fmt;
use std::net::IpAddr;

use weir_controller::ListenerName;

use super::{BrokerConfig, ConfigError};

/// A listener: `NAME://host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub name: ListenerName,
    pub host: String,
    pub port: u16,
}

impl Listener {
    fn parse(key: &str, spec: &str) -> Result<Listener, ConfigError> {
        let invalid = |reason: &str| invalid(key, spec, reason);
        let (name, rest) = spec
            .split_once("://")
            .ok_or_else(|| invalid("expected NAME://host:port"))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| invalid("expected NAME://host:port"))?;
        let port = port
            .parse()
            .map_err(|_| invalid("port is not a number from 0 to 65535"))?;
        Ok(Listener {
            name: parse_name(key, spec, name)?,
            host: host.trim_matches(['[', ']']).to_owned(),
            port,
        })
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.name, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.name, self.host, self.port)
        }
    }
}

/// A listener's security protocol (Kafka's `SecurityProtocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Kafka's `SecurityProtocol.forName`: the name in any case.
    fn parse(name: &str) -> Option<SecurityProtocol> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }
}

/// `listener.security.protocol.map`: `NAME:PROTOCOL` pairs, each name once, in the order
/// given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityProtocolMap(Vec<(ListenerName, SecurityProtocol)>);

impl Default for SecurityProtocolMap {
    /// Kafka's default: every protocol's own name maps to it (the order Kafka shows).
    fn default() -> Self {
        let order = [
            SecurityProtocol::SaslSsl,
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
        ];
        SecurityProtocolMap(
            order
                .into_iter()
                .map(|p| (ListenerName::new(p.name()), p))
                .collect(),
        )
    }
}

impl SecurityProtocolMap {
    fn parse(key: &str, value: &str) -> Result<SecurityProtocolMap, ConfigError> {
        let mut entries: Vec<(ListenerName, SecurityProtocol)> = Vec::new();
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, protocol) = entry
                .split_once(':')
                .ok_or_else(|| invalid(key, value, "expected NAME:PROTOCOL pairs"))?;
            let name = parse_name(key, value, name.trim())?;
            let protocol = SecurityProtocol::parse(protocol.trim()).ok_or_else(|| {
                invalid(
                    key,
                    value,
                    &format!(
                        "invalid security protocol `{}`; expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
                        protocol.trim()
                    ),
                )
            })?;
            if entries.iter().any(|(n, _)| *n == name) {
                return Err(invalid(
                    key,
                    value,
                    &format!("listener name {name} appears more than once"),
                ));
            }
            entries.push((name, protocol));
        }
        Ok(SecurityProtocolMap(entries))
    }

    /// The security protocol of listener `name`, if the map has it.
    pub fn protocol(&self, name: &ListenerName) -> Option<SecurityProtocol> {
        self.0.iter().find(|(n, _)| n == name).map(|&(_, p)| p)
    }
}

impl fmt::Display for SecurityProtocolMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, protocol)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{name}:{}", protocol.name())?;
        }
        Ok(())
    }
}

/// The keys, beside `listeners` and `advertised.listeners` (in the main key list).
pub(super) const KEYS: &[&str] = &[
    "listener.security.protocol.map",
    "inter.broker.listener.name",
];

/// `listeners`: names and ports distinct, as Kafka requires (port 0, an ephemeral port,
/// may repeat; two listeners may share a port when one binds an IPv4 and the other an
/// IPv6 address).
pub(super) fn parse_listeners(key: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    let listeners = parse_list(key, value)?;
    for (i, listener) in listeners.iter().enumerate() {
        if listener.port == 0 {
            continue;
        }
        let same_port: Vec<&Listener> = listeners
            .iter()
            .filter(|l| l.port == listener.port)
            .collect();
        if same_port.len() > 1
            && listeners[..i].iter().all(|l| l.port != listener.port)
            && !one_ipv4_one_ipv6(&same_port)
        {
            return Err(invalid(
                key,
                value,
                &format!(
                    "each listener must have a different port unless exactly one binds an IPv4 and the other an IPv6 address; port {} is used more than once",
                    listener.port
                ),
            ));
        }
    }
    Ok(listeners)
}

/// `advertised.listeners`: names distinct; ports may repeat (different hosts).
pub(super) fn parse_advertised(key: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    parse_list(key, value)
}

/// `listener.security.protocol.map`.
pub(super) fn parse_protocol_map(
    key: &str,
    value: &str,
) -> Result<SecurityProtocolMap, ConfigError> {
    SecurityProtocolMap::parse(key, value)
}

/// `inter.broker.listener.name`; empty means unset.
pub(super) fn parse_inter_broker_name(
    key: &str,
    value: &str,
) -> Result<Option<ListenerName>, ConfigError> {
    let name = value.trim();
    if name.is_empty() {
        return Ok(None);
    }
    parse_name(key, value, name).map(Some)
}

/// The listener brokers reach each other on: `inter.broker.listener.name`, else the first
/// advertised listener (Weir's default, so a single-listener broker needs no setting; Kafka
/// derives it from `security.inter.broker.protocol`, PLAINTEXT).
pub(super) fn inter_broker_listener(config: &BrokerConfig) -> ListenerName {
    config
        .inter_broker_listener_name
        .clone()
        .or_else(|| config.advertised_listeners.first().map(|l| l.name.clone()))
        .unwrap_or_else(|| ListenerName::new(SecurityProtocol::Plaintext.name()))
}

/// The checks across the listener keys, as Kafka's `KafkaConfig.validateValues` makes them.
pub(super) fn validate(config: &BrokerConfig) -> Result<(), ConfigError> {
    let show = |listeners: &[Listener]| {
        listeners
            .iter()
            .map(Listener::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    if config.listeners.is_empty() {
        return Err(invalid(
            "listeners",
            "",
            "at least one listener is required",
        ));
    }
    if config.advertised_listeners.is_empty() {
        return Err(invalid(
            "advertised.listeners",
            "",
            "at least one listener must be advertised",
        ));
    }
    let map = &config.listener_security_protocol_map;
    let map_key = "listener.security.protocol.map";
    for (key, listeners) in [
        ("listeners", &config.listeners),
        ("advertised.listeners", &config.advertised_listeners),
    ] {
        for listener in listeners.iter() {
            match map.protocol(&listener.name) {
                None => {
                    return Err(invalid(
                        map_key,
                        &map.to_string(),
                        &format!(
                            "no security protocol defined for listener {} (in `{key}`); add {}:PLAINTEXT",
                            listener.name, listener.name
                        ),
                    ));
                }
                Some(SecurityProtocol::Plaintext) => {}
                Some(other) => {
                    return Err(invalid(
                        map_key,
                        &map.to_string(),
                        &format!(
                            "listener {} (in `{key}`) uses security protocol {}, but Weir supports only PLAINTEXT",
                            listener.name,
                            other.name()
                        ),
                    ));
                }
            }
        }
    }
    let names = |listeners: &[Listener]| {
        listeners
            .iter()
            .map(|l| l.name.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    for l in &config.advertised_listeners {
        if !config.listeners.iter().any(|x| x.name == l.name) {
            return Err(invalid(
                "advertised.listeners",
                &show(&config.advertised_listeners),
                &format!(
                    "listener names must be equal to or a subset of those in `listeners` ({}); {} is not",
                    names(&config.listeners),
                    l.name
                ),
            ));
        }
        if l.host.is_empty() || l.host == "0.0.0.0" || l.host == "::" {
            return Err(invalid(
                "advertised.listeners",
                &l.to_string(),
                "clients cannot connect to a wildcard address; set a reachable host",
            ));
        }
    }
    if let Some(name) = &config.inter_broker_listener_name {
        let key = "inter.broker.listener.name";
        if map.protocol(name).is_none() {
            return Err(invalid(
                key,
                name.as_str(),
                &format!("listener {name} is not in `{map_key}`"),
            ));
        }
        if config.advertised_listeners.iter().all(|l| &l.name != name) {
            return Err(invalid(
                key,
                name.as_str(),
                &format!(
                    "must be a listener name defined in `advertised.listeners`; the valid options are {}",
                    names(&config.advertised_listeners)
                ),
            ));
        }
    }
    Ok(())
}

/// A comma-separated list of listeners, each name once.
fn parse_list(key: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    let listeners = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Listener::parse(key, s))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, listener) in listeners.iter().enumerate() {
        if listeners[..i].iter().any(|l| l.name == listener.name) {
            return Err(invalid(
                key,
                value,
                &format!(
                    "each listener must have a different name; {} appears more than once",
                    listener.name
                ),
            ));
        }
    }
    Ok(listeners)
}

/// A listener name: letters, digits and `_`, upper-cased.
fn parse_name(key: &str, value: &str, name: &str) -> Result<ListenerName, ConfigError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(invalid(
            key,
            value,
            "listener name must be letters, digits or _",
        ));
    }
    Ok(ListenerName::normalised(name))
}

/// Whether listeners sharing a port are exactly two, one on an IPv4 and one on an IPv6
/// address (Kafka's exception to distinct ports).
fn one_ipv4_one_ipv6(same_port: &[&Listener]) -> bool {
    let ip = |l: &Listener| l.host.parse::<IpAddr>().ok();
    match same_port {
        [a, b] => matches!(
            (ip(a), ip(b)),
            (Some(IpAddr::V4(_)), Some(IpAddr::V6(_))) | (Some(IpAddr::V6(_)), Some(IpAddr::V4(_)))
        ),
        _ => false,
    }
}

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
        let settings: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut config = BrokerConfig::default();
        config.apply(&settings)?;
        config.validate()?;
        Ok(config)
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        config(pairs)
            .map(|_| ())
            .expect_err("the config should be refused")
            .to_string()
    }

    const TWO_LISTENERS: [(&str, &str); 4] = [
        (
            "listeners",
            "INTERNAL://0.0.0.0:9092,EXTERNAL://0.0.0.0:9095",
        ),
        (
            "advertised.listeners",
            "INTERNAL://pod-0.weir.svc:9092,EXTERNAL://kafka-0.example.com:31000",
        ),
        (
            "listener.security.protocol.map",
            "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT",
        ),
        ("inter.broker.listener.name", "INTERNAL"),
    ];

    #[test]
    fn kafkas_internal_and_external_listeners_are_accepted() {
        let c = config(&TWO_LISTENERS).unwrap();
        let names: Vec<&str> = c.listeners.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["INTERNAL", "EXTERNAL"]);
        assert_eq!(
            c.advertised_listeners[1],
            Listener {
                name: "EXTERNAL".into(),
                host: "kafka-0.example.com".into(),
                port: 31000
            }
        );
        assert_eq!(c.inter_broker_listener(), "INTERNAL");
        assert_eq!(
            c.value_of("inter.broker.listener.name").as_deref(),
            Some("INTERNAL")
        );
        // Names are upper-cased wherever they are given, as Kafka's are.
        let c = config(&[
            (
                "listeners",
                "internal://127.0.0.1:9092,external://127.0.0.1:9095",
            ),
            (
                "listener.security.protocol.map",
                "Internal:plaintext,EXTERNAL:PLAINTEXT",
            ),
            ("inter.broker.listener.name", "external"),
        ])
        .unwrap();
        assert_eq!(c.inter_broker_listener(), "EXTERNAL");
        assert_eq!(c.advertised_listeners[0].name, "INTERNAL");
    }

    #[test]
    fn the_inter_broker_listener_defaults_to_the_first_advertised() {
        let c = BrokerConfig::default();
        assert_eq!(c.inter_broker_listener(), "PLAINTEXT");
        assert_eq!(c.value_of("inter.broker.listener.name"), None);
        let mut pairs = TWO_LISTENERS.to_vec();
        pairs.pop();
        assert_eq!(config(&pairs).unwrap().inter_broker_listener(), "INTERNAL");
        pairs.push(("inter.broker.listener.name", ""));
        assert_eq!(config(&pairs).unwrap().inter_broker_listener_name, None);
    }

    #[test]
    fn the_protocol_map_defaults_to_kafkas() {
        let c = BrokerConfig::default();
        assert_eq!(
            c.value_of("listener.security.protocol.map").as_deref(),
            Some("SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT")
        );
        for protocol in SecurityProtocol::ALL {
            let name = ListenerName::new(protocol.name());
            assert_eq!(
                c.listener_security_protocol_map.protocol(&name),
                Some(protocol)
            );
        }
        assert!(BrokerConfig::known_keys().any(|k| k == "listener.security.protocol.map"));
        assert!(BrokerConfig::known_keys().any(|k| k == "inter.broker.listener.name"));
    }

    #[test]
    fn a_listener_missing_from_the_protocol_map_is_refused_naming_the_key() {
        let e = error(&[("listeners", "INTERNAL://127.0.0.1:9092")]);
        assert!(
            e.contains("`listener.security.protocol.map`")
                && e.contains("no security protocol defined for listener INTERNAL"),
            "{e}"
        );
        // An advertised name the map lacks is caught as well (before the subset check).
        let e = error(&[
            ("listeners", "PLAINTEXT://127.0.0.1:9092"),
            ("advertised.listeners", "OTHER://127.0.0.1:9092"),
        ]);
        assert!(
            e.contains("`listener.security.protocol.map`") && e.contains("OTHER"),
            "{e}"
        );
    }

    #[test]
    fn listeners_other_than_plaintext_are_refused_naming_the_key() {
        let e = error(&[("listeners", "SSL://127.0.0.1:9093")]);
        assert!(
            e.contains("`listener.security.protocol.map`")
                && e.contains("SSL")
                && e.contains("only PLAINTEXT"),
            "{e}"
        );
        let e = error(&[
            (
                "listeners",
                "INTERNAL://127.0.0.1:9092,EXTERNAL://127.0.0.1:9095",
            ),
            (
                "listener.security.protocol.map",
                "INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL",
            ),
        ]);
        assert!(e.contains("EXTERNAL") && e.contains("SASL_SSL"), "{e}");
        // A mapping nobody uses is fine.
        config(&[(
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,UNUSED:SSL",
        )])
        .unwrap();
    }

    #[test]
    fn malformed_protocol_maps_are_refused_naming_the_key() {
        for (value, why) in [
            ("INTERNAL:TLS", "invalid security protocol `TLS`"),
            ("INTERNAL", "NAME:PROTOCOL"),
            ("INTERNAL:PLAINTEXT,internal:PLAINTEXT", "more than once"),
            ("IN-TERNAL:PLAINTEXT", "letters, digits or _"),
        ] {
            let e = error(&[("listener.security.protocol.map", value)]);
            assert!(
                e.contains("`listener.security.protocol.map`") && e.contains(why),
                "{value}: {e}"
            );
        }
    }

    #[test]
    fn listener_names_and_ports_must_be_distinct() {
        let e = error(&[(
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,plaintext://127.0.0.1:9093",
        )]);
        assert!(
            e.contains("`listeners`") && e.contains("different name"),
            "{e}"
        );
        let map = ("listener.security.protocol.map", "A:PLAINTEXT,B:PLAINTEXT");
        let e = error(&[("listeners", "A://127.0.0.1:9092,B://10.0.0.1:9092"), map]);
        assert!(e.contains("`listeners`") && e.contains("port 9092"), "{e}");
        // Kafka's exceptions: ephemeral ports, and one IPv4 beside one IPv6 address.
        config(&[("listeners", "A://127.0.0.1:0,B://127.0.0.1:0"), map]).unwrap();
        let c = config(&[("listeners", "A://127.0.0.1:9092,B://[::1]:9092"), map]).unwrap();
        assert_eq!(c.listeners[1].host, "::1");
        let e = error(&[
            ("listeners", "PLAINTEXT://127.0.0.1:9092"),
            (
                "advertised.listeners",
                "PLAINTEXT://a:9092,PLAINTEXT://b:9093",
            ),
        ]);
        assert!(
            e.contains("`advertised.listeners`") && e.contains("different name"),
            "{e}"
        );
        // Advertised ports may repeat: different hosts behind one port number.
        config(&[
            ("listeners", "A://127.0.0.1:9092,B://127.0.0.1:9095"),
            (
                "advertised.listeners",
                "A://pod-0:9092,B://lb.example.com:9092",
            ),
            map,
        ])
        .unwrap();
    }

    #[test]
    fn advertised_names_must_be_listeners_and_the_inter_broker_name_advertised() {
        let e = error(&[
            ("listeners", "INTERNAL://127.0.0.1:9092"),
            (
                "advertised.listeners",
                "INTERNAL://a:9092,EXTERNAL://b:9095",
            ),
            (
                "listener.security.protocol.map",
                "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT",
            ),
        ]);
        assert!(
            e.contains("`advertised.listeners`") && e.contains("subset") && e.contains("EXTERNAL"),
            "{e}"
        );
        let mut pairs = TWO_LISTENERS.to_vec();
        pairs[1] = ("advertised.listeners", "INTERNAL://pod-0.weir.svc:9092");
        pairs[3] = ("inter.broker.listener.name", "EXTERNAL");
        let e = error(&pairs);
        assert!(
            e.contains("`inter.broker.listener.name`")
                && e.contains("advertised.listeners")
                && e.contains("valid options are INTERNAL"),
            "{e}"
        );
        pairs[3] = ("inter.broker.listener.name", "REPLICATION");
        let e = error(&pairs);
        assert!(
            e.contains("`inter.broker.listener.name`")
                && e.contains("REPLICATION is not in `listener.security.protocol.map`"),
            "{e}"
        );
        let e = error(&[("inter.broker.listener.name", "in-ternal")]);
        assert!(e.contains("`inter.broker.listener.name`"), "{e}");
    }
}
