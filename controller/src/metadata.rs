//! The cluster metadata image: brokers, topics, partitions and topic config overrides.
//!
//! Plain data, shared by the controller (which alone changes it), the stores
//! (which persist it as JSON) and the brokers (which read published copies).
//! Invariants the controller keeps:
//! - `topics` is keyed by the topic's own name, and topic ids are unique;
//! - a topic's `partitions[i].partition == i`, and it has at least one partition;
//! - every partition of a topic has the same number of replicas (its target's while a
//!   reassignment runs), no broker twice;
//! - `configs` holds overrides only, each valid per [`crate::topic_config`];
//! - `version` grows by exactly one with every committed change;
//! - `next_producer_id` never decreases: every id below it has been handed to a broker
//!   in a block (see `Controller::allocate_producer_ids`), none at or above it has;
//! - `last_broker_epoch` never decreases and is at least every broker's epoch;
//! - a registered broker has at least one listener, and no listener name twice;
//! - a partition's ISR is never empty, is a subset of its replicas, and holds its
//!   leader; `adding_replicas` and `removing_replicas` are disjoint subsets of the
//!   replicas (see [`crate::partitions`] for the liveness rules);
//! - `leader_epoch` grows exactly when the leader changes, `partition_epoch` whenever
//!   the leader, ISR or replica sets change; neither ever decreases.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use uuid::Uuid;

use crate::ids::{BrokerId, ListenerName, TopicId, TopicName};
use crate::registry::BrokerEpoch;

/// Leadership and replica set of one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub partition: i32,
    /// Assigned replicas; the first is the preferred leader.
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub leader: Option<BrokerId>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// During a reassignment: target replicas not yet in the old replica set (KIP-455).
    /// `replicas` then holds the union of old and target replicas.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<BrokerId>,
    /// During a reassignment: old replicas that are not in the target set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<BrokerId>,
}

impl PartitionState {
    /// A partition as created: every replica in sync, the first one leading, epochs 0.
    pub fn new(partition: i32, replicas: Vec<BrokerId>) -> PartitionState {
        PartitionState {
            partition,
            leader: replicas.first().copied(),
            isr: replicas.clone(),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub name: TopicName,
    pub id: TopicId,
    pub partitions: Vec<PartitionState>,
    /// Config overrides only; keys absent here take the defaults.
    pub configs: BTreeMap<String, String>,
}

impl BrokerInfo {
    /// An unregistered broker entry (epoch 0, no incarnation), unfenced.
    pub fn new(id: BrokerId, rack: Option<String>, listeners: Vec<Listener>) -> BrokerInfo {
        BrokerInfo {
            id,
            rack,
            listeners,
            epoch: BrokerEpoch::default(),
            incarnation: None,
            fenced: false,
            in_controlled_shutdown: false,
        }
    }

    /// Whether the broker may lead partitions and join ISRs: unfenced and not in
    /// controlled shutdown.
    pub fn is_live(&self) -> bool {
        !self.fenced && !self.in_controlled_shutdown
    }

    /// The broker's endpoint on listener `name`, if it advertises one (Kafka's
    /// `BrokerRegistration.node(listenerName)`).
    pub fn listener(&self, name: &ListenerName) -> Option<&Listener> {
        self.listeners.iter().find(|l| &l.name == name)
    }
}

impl PartitionState {
    /// Whether a reassignment (KIP-455) is under way.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }
}

impl TopicMetadata {
    /// Replicas per partition (every partition has the same number), counting a
    /// partition under reassignment by its target (Kafka counts the widened set).
    pub fn replication_factor(&self) -> usize {
        self.partitions.first().map_or(0, |p| {
            p.replicas.len().saturating_sub(p.removing_replicas.len())
        })
    }
}

/// An endpoint a broker advertises: its host and port on one named listener
/// (`advertised.listeners`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub name: ListenerName,
    pub host: String,
    pub port: u16,
}

impl Listener {
    pub fn new(name: impl Into<ListenerName>, host: impl Into<String>, port: u16) -> Listener {
        Listener {
            name: name.into(),
            host: host.into(),
            port,
        }
    }
}

/// The listener name a broker's single endpoint had in files written before brokers kept
/// every listener: Kafka's default listener name, which Weir's config defaulted to.
pub const LEGACY_LISTENER_NAME: &str = "PLAINTEXT";

/// A registered broker: how clients and other brokers reach it, and its liveness.
///
/// Stored as JSON with its `listeners`; files written before brokers kept every listener
/// have `host` and `port` instead, which load as one [`LEGACY_LISTENER_NAME`] listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredBrokerInfo")]
pub struct BrokerInfo {
    pub id: BrokerId,
    pub rack: Option<String>,
    /// Every advertised listener, in the broker's order, each name once. A request is
    /// answered with the endpoint of the listener it arrived on; brokers reach each other
    /// on their `inter.broker.listener.name`.
    pub listeners: Vec<Listener>,
    /// The epoch of the broker's current incarnation (0 for a broker that never
    /// registered through the control plane, e.g. in files written before it existed).
    pub epoch: BrokerEpoch,
    /// The current incarnation, which tells a registration retry from a restart.
    pub incarnation: Option<Uuid>,
    /// Fenced brokers lead no partitions, are in no ISR (unless the last member), and
    /// are not offered to clients. A broker is fenced from registration until its first
    /// heartbeat and whenever its session expires.
    pub fenced: bool,
    /// Set by a controlled shutdown: the broker is being drained of leadership and ISR
    /// membership and is not eligible for either until it registers again.
    pub in_controlled_shutdown: bool,
}

/// [`BrokerInfo`] as read from JSON, in the current or any older format.
#[derive(Deserialize)]
struct StoredBrokerInfo {
    id: BrokerId,
    rack: Option<String>,
    #[serde(default)]
    listeners: Vec<Listener>,
    /// Before `listeners`: the advertised host and port of the first listener.
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    epoch: BrokerEpoch,
    #[serde(default)]
    incarnation: Option<Uuid>,
    #[serde(default)]
    fenced: bool,
    #[serde(default)]
    in_controlled_shutdown: bool,
}

impl From<StoredBrokerInfo> for BrokerInfo {
    fn from(stored: StoredBrokerInfo) -> BrokerInfo {
        let mut listeners = stored.listeners;
        if listeners.is_empty()
            && let Some(host) = stored.host
        {
            listeners.push(Listener::new(
                LEGACY_LISTENER_NAME,
                host,
                stored.port.unwrap_or_default(),
            ));
        }
        BrokerInfo {
            id: stored.id,
            rack: stored.rack,
            listeners,
            epoch: stored.epoch,
            incarnation: stored.incarnation,
            fenced: stored.fenced,
            in_controlled_shutdown: stored.in_controlled_shutdown,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    pub cluster_id: String,
    pub version: u64,
    pub brokers: BTreeMap<BrokerId, BrokerInfo>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicMetadata>,
    /// The first producer id not yet allocated to a broker. Missing from files written
    /// before producer ids existed, which therefore load as 0.
    #[serde(default)]
    pub next_producer_id: i64,
    /// The highest broker epoch ever handed out; never decreases.
    #[serde(default)]
    pub last_broker_epoch: BrokerEpoch,
}

impl ClusterMetadata {
    /// An image of cluster `cluster_id` at `version` with no brokers, topics or allocations.
    pub fn empty(cluster_id: impl Into<String>, version: u64) -> ClusterMetadata {
        ClusterMetadata {
            cluster_id: cluster_id.into(),
            version,
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            next_producer_id: 0,
            last_broker_epoch: BrokerEpoch::default(),
        }
    }

    pub fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: TopicId) -> Option<&TopicMetadata> {
        self.topics.values().find(|topic| topic.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_partition_is_led_by_its_first_replica_with_full_isr() {
        let p = PartitionState::new(3, vec![BrokerId(2), BrokerId(0), BrokerId(1)]);
        assert_eq!(p.partition, 3);
        assert_eq!(p.leader, Some(BrokerId(2)));
        assert_eq!(p.isr, p.replicas);
        assert_eq!((p.leader_epoch, p.partition_epoch), (0, 0));
    }

    #[test]
    fn cluster_metadata_round_trips_through_json() {
        let name = TopicName::new("orders").unwrap();
        let id = TopicId::random();
        let mut metadata = ClusterMetadata {
            cluster_id: "abc".into(),
            version: 4,
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            next_producer_id: 2000,
            last_broker_epoch: BrokerEpoch::default(),
        };
        metadata.brokers.insert(
            BrokerId(1),
            BrokerInfo::new(
                BrokerId(1),
                Some("r1".into()),
                vec![
                    Listener::new("INTERNAL", "h", 9092),
                    Listener::new("EXTERNAL", "kafka-1.example.com", 31000),
                ],
            ),
        );
        metadata.topics.insert(
            "orders".into(),
            TopicMetadata {
                name,
                id,
                partitions: vec![PartitionState::new(0, vec![BrokerId(1)])],
                configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
            },
        );
        let json = serde_json::to_string(&metadata).unwrap();
        let back: ClusterMetadata = serde_json::from_str(&json).unwrap();
        assert_eq!(back, metadata);
        assert_eq!(
            back.topic_by_id(id).map(|t| t.name.as_str()),
            Some("orders")
        );
        assert_eq!(
            back.topic("orders").map(TopicMetadata::replication_factor),
            Some(1)
        );
    }

    #[test]
    fn a_reassigning_partition_counts_its_target_replicas() {
        let mut p = PartitionState::new(0, vec![BrokerId(3), BrokerId(4), BrokerId(1)]);
        p.adding_replicas = vec![BrokerId(3), BrokerId(4)];
        p.removing_replicas = vec![BrokerId(1)];
        let topic = TopicMetadata {
            name: TopicName::new("t").unwrap(),
            id: TopicId::random(),
            partitions: vec![p],
            configs: BTreeMap::new(),
        };
        assert_eq!(topic.replication_factor(), 2);
        assert!(topic.partitions[0].is_reassigning());
    }

    #[test]
    fn brokers_written_before_registration_load_unfenced_without_an_epoch() {
        let old = r#"{"id":0,"rack":null,"host":"h","port":9092}"#;
        let broker: BrokerInfo = serde_json::from_str(old).unwrap();
        assert_eq!(
            broker,
            BrokerInfo::new(
                BrokerId(0),
                None,
                vec![Listener::new("PLAINTEXT", "h", 9092)]
            )
        );
        assert_eq!((broker.epoch, broker.incarnation), (BrokerEpoch(0), None));
        assert!(broker.is_live());
    }

    #[test]
    fn brokers_written_with_one_endpoint_load_it_as_their_plaintext_listener() {
        let old = r#"{"id":2,"rack":"r1","host":"pod-2.svc","port":9092,"epoch":7,
            "incarnation":"0b6f1c2e-8f7e-4c1a-9d2b-3c4d5e6f7a8b","fenced":true,
            "in_controlled_shutdown":false}"#;
        let broker: BrokerInfo = serde_json::from_str(old).unwrap();
        assert_eq!(
            broker.listeners,
            vec![Listener::new("PLAINTEXT", "pod-2.svc", 9092)]
        );
        assert_eq!(broker.epoch, BrokerEpoch(7));
        assert!(broker.fenced && broker.incarnation.is_some());
        // Written back, it is in the new format only, and reads back the same.
        let json = serde_json::to_value(&broker).unwrap();
        assert!(
            json.get("host").is_none() && json.get("port").is_none(),
            "{json}"
        );
        assert_eq!(json["listeners"][0]["name"], "PLAINTEXT");
        let back: BrokerInfo = serde_json::from_value(json).unwrap();
        assert_eq!(back, broker);
        let plaintext = ListenerName::new("PLAINTEXT");
        assert_eq!(broker.listener(&plaintext).map(|l| l.port), Some(9092));
        assert!(broker.listener(&ListenerName::new("EXTERNAL")).is_none());
    }

    #[test]
    fn metadata_written_before_producer_ids_loads_with_the_first_id_next() {
        let old = r#"{"cluster_id":"abc","version":7,"brokers":{},"topics":{}}"#;
        let metadata: ClusterMetadata = serde_json::from_str(old).unwrap();
        assert_eq!(metadata.version, 7);
        assert_eq!(metadata.next_producer_id, 0);
    }
}
