//! The broker registry: which broker incarnations are registered, their broker
//! epochs, and which of them are fenced. A pure state machine: no I/O, and the
//! caller passes the time in.
//!
//! The rules follow KRaft's `ClusterControlManager` and `BrokerHeartbeatManager`:
//! - a registration must carry this cluster's id, or it is refused;
//! - the same incarnation registering again (a retry) gets its existing epoch
//!   back, with its listeners and rack replaced by the request's;
//! - a new incarnation of a known broker id gets a new epoch, higher than any
//!   handed out before, which fences the previous incarnation: its heartbeats
//!   now carry a stale epoch. (KRaft instead refuses the new incarnation while
//!   the old one's session is alive; here a restarted broker need not wait for
//!   its predecessor's session to expire.)
//! - a registered broker is fenced until its first heartbeat;
//! - a heartbeat must carry the broker's current epoch, and starts or extends
//!   its session to `broker.session.timeout.ms` after the heartbeat; a fenced
//!   broker is unfenced by it;
//! - [`BrokerRegistry::tick`] fences every broker whose session has run out: it
//!   stays registered with the same epoch, and its next valid heartbeat
//!   unfences it.
//!
//! Invariants: every broker's epoch is at most `last_epoch`, which never
//! decreases, also across restarts, because it is part of the persisted
//! [`BrokerRegistrations`]; a broker has a live session exactly when it is not
//! fenced.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::BrokerId;
use crate::metadata::BrokerInfo;

/// `broker.session.timeout.ms`'s default, as in Kafka.
pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 9000;

/// The epoch of one broker incarnation, handed out at registration.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct BrokerEpoch(pub i64);

impl fmt::Display for BrokerEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A listener a broker advertises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// What a broker sends to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBroker {
    pub id: BrokerId,
    /// Drawn by the broker process at start; tells a retry from a restart.
    pub incarnation: Uuid,
    pub cluster_id: String,
    pub listeners: Vec<Listener>,
    pub rack: Option<String>,
}

/// One registered broker incarnation, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub id: BrokerId,
    pub incarnation: Uuid,
    pub epoch: BrokerEpoch,
    pub listeners: Vec<Listener>,
    pub rack: Option<String>,
    /// Fenced brokers lead no partitions and are left out of ISRs.
    pub fenced: bool,
}

impl BrokerRegistration {
    /// How clients that connected on `listener` reach this broker, if it has
    /// such a listener (Kafka answers metadata with the endpoints of the
    /// listener the request came in on).
    pub fn broker_info(&self, listener: &str) -> Option<BrokerInfo> {
        let endpoint = self.listeners.iter().find(|l| l.name == listener)?;
        Some(BrokerInfo::new(
            self.id,
            self.rack.clone(),
            endpoint.host.clone(),
            endpoint.port,
        ))
    }
}

/// The registry's durable state; sessions are not part of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistrations {
    /// The highest epoch ever handed out; the next registration gets one more.
    pub last_epoch: BrokerEpoch,
    pub brokers: BTreeMap<BrokerId, BrokerRegistration>,
}

/// Why a registration or heartbeat was refused. Each variant names the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "broker {broker} sent cluster id '{requested}', but this controller's cluster id is '{expected}'"
    )]
    ClusterIdMismatch {
        broker: BrokerId,
        requested: String,
        expected: String,
    },
    #[error("broker {broker} is not registered")]
    UnknownBroker { broker: BrokerId },
    #[error(
        "broker {broker} sent broker epoch {requested}, but its current epoch is {current}; register again"
    )]
    StaleBrokerEpoch {
        broker: BrokerId,
        requested: BrokerEpoch,
        current: BrokerEpoch,
    },
}

/// Registered brokers, their epochs and their sessions.
#[derive(Debug)]
pub struct BrokerRegistry {
    cluster_id: String,
    session_timeout: Duration,
    state: BrokerRegistrations,
    /// When each unfenced broker's session runs out.
    sessions: BTreeMap<BrokerId, Instant>,
}

impl BrokerRegistry {
    /// A registry for `cluster_id` with no brokers.
    pub fn new(cluster_id: impl Into<String>, session_timeout: Duration) -> BrokerRegistry {
        BrokerRegistry {
            cluster_id: cluster_id.into(),
            session_timeout,
            state: BrokerRegistrations::default(),
            sessions: BTreeMap::new(),
        }
    }

    /// A registry continuing from persisted `state`. Every broker that was
    /// unfenced gets a fresh session from `now`, as a new KRaft controller does
    /// on failover, so brokers are not fenced for the controller's own downtime.
    pub fn restore(
        cluster_id: impl Into<String>,
        session_timeout: Duration,
        mut state: BrokerRegistrations,
        now: Instant,
    ) -> BrokerRegistry {
        // Defensive: state edited by hand must still never hand out an epoch twice.
        let highest = state.brokers.values().map(|b| b.epoch).max();
        state.last_epoch = state.last_epoch.max(highest.unwrap_or_default());
        let sessions = state
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| (b.id, now + session_timeout))
            .collect();
        BrokerRegistry {
            cluster_id: cluster_id.into(),
            session_timeout,
            state,
            sessions,
        }
    }

    /// The durable state, to persist after every change.
    pub fn registrations(&self) -> &BrokerRegistrations {
        &self.state
    }

    pub fn broker(&self, id: BrokerId) -> Option<&BrokerRegistration> {
        self.state.brokers.get(&id)
    }

    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }

    /// Registers `request`'s incarnation and returns its epoch (see the module
    /// docs for the rules).
    pub fn register(&mut self, request: RegisterBroker) -> Result<BrokerEpoch, RegistryError> {
        if request.cluster_id != self.cluster_id {
            return Err(RegistryError::ClusterIdMismatch {
                broker: request.id,
                requested: request.cluster_id,
                expected: self.cluster_id.clone(),
            });
        }
        if let Some(existing) = self.state.brokers.get_mut(&request.id)
            && existing.incarnation == request.incarnation
        {
            existing.listeners = request.listeners;
            existing.rack = request.rack;
            return Ok(existing.epoch);
        }
        let epoch = BrokerEpoch(self.state.last_epoch.0 + 1);
        self.state.last_epoch = epoch;
        self.sessions.remove(&request.id);
        self.state.brokers.insert(
            request.id,
            BrokerRegistration {
                id: request.id,
                incarnation: request.incarnation,
                epoch,
                listeners: request.listeners,
                rack: request.rack,
                fenced: true,
            },
        );
        Ok(epoch)
    }

    /// Records a heartbeat from `id` at `now`: its session now lasts until
    /// `now + session_timeout`, and it is unfenced.
    pub fn heartbeat(
        &mut self,
        id: BrokerId,
        epoch: BrokerEpoch,
        now: Instant,
    ) -> Result<(), RegistryError> {
        let broker = self
            .state
            .brokers
            .get_mut(&id)
            .ok_or(RegistryError::UnknownBroker { broker: id })?;
        if broker.epoch != epoch {
            return Err(RegistryError::StaleBrokerEpoch {
                broker: id,
                requested: epoch,
                current: broker.epoch,
            });
        }
        broker.fenced = false;
        self.sessions.insert(id, now + self.session_timeout);
        Ok(())
    }

    /// Fences every broker whose session has run out by `now` (a session
    /// lasting until `t` has run out at `t`), and returns them in id order.
    pub fn tick(&mut self, now: Instant) -> Vec<BrokerId> {
        let expired: Vec<BrokerId> = self
            .sessions
            .iter()
            .filter(|&(_, &deadline)| deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in &expired {
            self.sessions.remove(id);
            if let Some(broker) = self.state.brokers.get_mut(id) {
                broker.fenced = true;
            }
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "Lq6c0FmwTfiBPD2sxFvTAQ";
    const TIMEOUT: Duration = Duration::from_millis(DEFAULT_SESSION_TIMEOUT_MS);

    fn registry() -> BrokerRegistry {
        BrokerRegistry::new(CLUSTER, TIMEOUT)
    }

    fn request(id: i32, incarnation: Uuid) -> RegisterBroker {
        RegisterBroker {
            id: BrokerId(id),
            incarnation,
            cluster_id: CLUSTER.into(),
            listeners: vec![Listener {
                name: "PLAINTEXT".into(),
                host: format!("broker-{id}"),
                port: 9092,
            }],
            rack: Some("r1".into()),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn fenced(registry: &BrokerRegistry, id: i32) -> bool {
        registry.broker(BrokerId(id)).unwrap().fenced
    }

    #[test]
    fn registration_hands_out_increasing_epochs_and_starts_fenced() {
        let mut r = registry();
        let e1 = r.register(request(1, Uuid::new_v4())).unwrap();
        let e2 = r.register(request(2, Uuid::new_v4())).unwrap();
        assert_eq!((e1, e2), (BrokerEpoch(1), BrokerEpoch(2)));
        let b1 = r.broker(BrokerId(1)).unwrap();
        assert_eq!(b1.epoch, e1);
        assert_eq!(b1.listeners[0].host, "broker-1");
        assert!(b1.fenced);
        assert_eq!(r.registrations().last_epoch, e2);
    }

    #[test]
    fn same_incarnation_retry_gets_its_epoch_back_with_amended_listeners() {
        let mut r = registry();
        let incarnation = Uuid::new_v4();
        let epoch = r.register(request(1, incarnation)).unwrap();
        let t0 = Instant::now();
        r.heartbeat(BrokerId(1), epoch, t0).unwrap();
        let mut retry = request(1, incarnation);
        retry.listeners[0].port = 19092;
        assert_eq!(r.register(retry).unwrap(), epoch);
        assert_eq!(r.registrations().last_epoch, epoch);
        assert_eq!(r.broker(BrokerId(1)).unwrap().listeners[0].port, 19092);
        // A retry does not disturb the live session.
        assert!(!fenced(&r, 1));
        assert_eq!(r.tick(t0 + ms(8999)), vec![]);
    }

    #[test]
    fn new_incarnation_gets_a_higher_epoch_and_fences_the_old_one() {
        let mut r = registry();
        let t0 = Instant::now();
        let old = r.register(request(1, Uuid::new_v4())).unwrap();
        r.heartbeat(BrokerId(1), old, t0).unwrap();
        r.register(request(2, Uuid::new_v4())).unwrap();

        let new = r.register(request(1, Uuid::new_v4())).unwrap();
        assert!(new > old);
        assert_eq!(new, BrokerEpoch(3));
        assert!(fenced(&r, 1));
        assert_eq!(
            r.heartbeat(BrokerId(1), old, t0 + ms(1)),
            Err(RegistryError::StaleBrokerEpoch {
                broker: BrokerId(1),
                requested: old,
                current: new,
            })
        );
        // The old incarnation's session went with it: nothing left to expire.
        assert_eq!(r.tick(t0 + TIMEOUT), vec![]);
        r.heartbeat(BrokerId(1), new, t0 + ms(2)).unwrap();
        assert!(!fenced(&r, 1));
    }

    #[test]
    fn registration_with_another_cluster_id_is_refused_naming_both_ids() {
        let mut r = registry();
        let mut wrong = request(1, Uuid::new_v4());
        wrong.cluster_id = "other-cluster".into();
        let err = r.register(wrong).unwrap_err();
        assert_eq!(
            err,
            RegistryError::ClusterIdMismatch {
                broker: BrokerId(1),
                requested: "other-cluster".into(),
                expected: CLUSTER.into(),
            }
        );
        let message = err.to_string();
        assert!(message.contains("'other-cluster'"), "{message}");
        assert!(message.contains(CLUSTER), "{message}");
        assert!(r.broker(BrokerId(1)).is_none());
        assert_eq!(r.registrations().last_epoch, BrokerEpoch(0));
    }

    #[test]
    fn heartbeat_extends_the_session_by_the_timeout() {
        let mut r = registry();
        let t0 = Instant::now();
        let epoch = r.register(request(1, Uuid::new_v4())).unwrap();
        r.heartbeat(BrokerId(1), epoch, t0).unwrap();
        r.heartbeat(BrokerId(1), epoch, t0 + ms(5000)).unwrap();
        // Without the second heartbeat the session would have ended at t0 + 9000.
        assert_eq!(r.tick(t0 + ms(13_999)), vec![]);
        assert!(!fenced(&r, 1));
        assert_eq!(r.tick(t0 + ms(14_000)), vec![BrokerId(1)]);
    }

    #[test]
    fn expired_sessions_are_fenced_once_and_stay_registered() {
        let mut r = registry();
        let t0 = Instant::now();
        let e1 = r.register(request(1, Uuid::new_v4())).unwrap();
        let e2 = r.register(request(2, Uuid::new_v4())).unwrap();
        r.heartbeat(BrokerId(1), e1, t0).unwrap();
        r.heartbeat(BrokerId(2), e2, t0 + ms(100)).unwrap();

        assert_eq!(r.tick(t0 + ms(8999)), vec![]);
        assert_eq!(r.tick(t0 + ms(9000)), vec![BrokerId(1)]);
        assert!(fenced(&r, 1));
        assert!(!fenced(&r, 2));
        assert_eq!(r.tick(t0 + ms(60_000)), vec![BrokerId(2)]);
        assert_eq!(r.tick(t0 + ms(120_000)), vec![]);
        assert_eq!(r.broker(BrokerId(1)).unwrap().epoch, e1);
    }

    #[test]
    fn heartbeat_with_a_stale_epoch_is_refused() {
        let mut r = registry();
        let t0 = Instant::now();
        let epoch = r.register(request(1, Uuid::new_v4())).unwrap();
        let stale = BrokerEpoch(epoch.0 - 1);
        let err = r.heartbeat(BrokerId(1), stale, t0).unwrap_err();
        assert_eq!(
            err,
            RegistryError::StaleBrokerEpoch {
                broker: BrokerId(1),
                requested: stale,
                current: epoch,
            }
        );
        assert!(err.to_string().contains("epoch 0"), "{err}");
        assert!(fenced(&r, 1));
    }

    #[test]
    fn heartbeat_from_an_unknown_broker_is_refused() {
        let mut r = registry();
        let err = r
            .heartbeat(BrokerId(7), BrokerEpoch(1), Instant::now())
            .unwrap_err();
        assert_eq!(
            err,
            RegistryError::UnknownBroker {
                broker: BrokerId(7)
            }
        );
        assert_eq!(err.to_string(), "broker 7 is not registered");
    }

    #[test]
    fn fenced_broker_is_unfenced_by_a_valid_heartbeat() {
        let mut r = registry();
        let t0 = Instant::now();
        let epoch = r.register(request(1, Uuid::new_v4())).unwrap();
        r.heartbeat(BrokerId(1), epoch, t0).unwrap();
        assert_eq!(r.tick(t0 + ms(10_000)), vec![BrokerId(1)]);

        r.heartbeat(BrokerId(1), epoch, t0 + ms(11_000)).unwrap();
        assert!(!fenced(&r, 1));
        assert_eq!(r.broker(BrokerId(1)).unwrap().epoch, epoch);
        assert_eq!(r.tick(t0 + ms(19_999)), vec![]);
        assert_eq!(r.tick(t0 + ms(20_000)), vec![BrokerId(1)]);
    }

    #[test]
    fn restored_registrations_keep_epochs_monotonic_and_sessions_fresh() {
        let mut r = registry();
        let t0 = Instant::now();
        r.register(request(1, Uuid::new_v4())).unwrap();
        r.register(request(2, Uuid::new_v4())).unwrap();
        let live = r.register(request(1, Uuid::new_v4())).unwrap();
        r.heartbeat(BrokerId(1), live, t0).unwrap();
        assert_eq!(live, BrokerEpoch(3));

        let json = serde_json::to_string(r.registrations()).unwrap();
        let state: BrokerRegistrations = serde_json::from_str(&json).unwrap();
        assert_eq!(&state, r.registrations());

        let t1 = t0 + ms(60_000);
        let mut restored = BrokerRegistry::restore(CLUSTER, TIMEOUT, state, t1);
        assert_eq!(restored.registrations(), r.registrations());
        let next = restored.register(request(4, Uuid::new_v4())).unwrap();
        assert_eq!(next, BrokerEpoch(4));
        // The unfenced broker's session restarted at t1 (the one from t0 would
        // have run out long before); the fenced one stays fenced.
        assert!(!fenced(&restored, 1));
        assert!(fenced(&restored, 2));
        assert_eq!(restored.tick(t1 + ms(8999)), vec![]);
        assert_eq!(restored.tick(t1 + TIMEOUT), vec![BrokerId(1)]);
    }

    #[test]
    fn restore_never_reuses_an_epoch_held_by_a_broker() {
        let mut state = BrokerRegistrations::default();
        let mut r = registry();
        r.register(request(1, Uuid::new_v4())).unwrap();
        state.brokers = r.registrations().brokers.clone();
        state.brokers.get_mut(&BrokerId(1)).unwrap().epoch = BrokerEpoch(41);
        let mut restored = BrokerRegistry::restore(CLUSTER, TIMEOUT, state, Instant::now());
        let epoch = restored.register(request(2, Uuid::new_v4())).unwrap();
        assert_eq!(epoch, BrokerEpoch(42));
    }

    #[test]
    fn broker_info_uses_the_named_listener() {
        let mut r = registry();
        let mut req = request(1, Uuid::new_v4());
        req.listeners.push(Listener {
            name: "INTERNAL".into(),
            host: "10.0.0.1".into(),
            port: 19092,
        });
        r.register(req).unwrap();
        let broker = r.broker(BrokerId(1)).unwrap();
        assert_eq!(
            broker.broker_info("INTERNAL"),
            Some(BrokerInfo::new(
                BrokerId(1),
                Some("r1".into()),
                "10.0.0.1",
                19092
            ))
        );
        assert_eq!(broker.broker_info("EXTERNAL"), None);
    }
}
