//! Broker registration, broker epochs, sessions and fencing: the rules, as pure
//! functions over the persisted broker map (`ClusterMetadata::brokers` and
//! `last_broker_epoch`) plus [`Sessions`], the in-memory session deadlines. No I/O;
//! the caller passes the time in. The [`crate::Controller`] applies these rules and
//! adds their consequences for partitions; [`BrokerRegistry`] bundles them with their
//! state for a process that tracks brokers only.
//!
//! The rules follow KRaft's `ClusterControlManager` and `BrokerHeartbeatManager`:
//! - a registration must carry this cluster's id, or it is refused;
//! - the same incarnation registering again (a retry) gets its existing epoch back,
//!   with its listeners and rack replaced by the request's;
//! - a new incarnation of a known broker id gets a new epoch, higher than any handed
//!   out before, which fences the previous incarnation: its heartbeats now carry a
//!   stale epoch. (KRaft instead refuses the new incarnation while the old one's
//!   session is alive; here a restarted broker need not wait for its predecessor's
//!   session to expire.) The new incarnation is not in controlled shutdown;
//! - a registered broker is fenced until its first heartbeat;
//! - a heartbeat must carry the broker's current epoch, and starts or extends its
//!   session to `broker.session.timeout.ms` after the heartbeat; a fenced broker is
//!   unfenced by it, unless it is in controlled shutdown;
//! - a session that runs out fences the broker: it stays registered with the same
//!   epoch, and its next valid heartbeat unfences it.
//!
//! A broker keeps every listener it registers with (name, advertised host and port), as
//! KRaft's `BrokerRegistration` does: clients get the endpoints of the listener they
//! connected to, brokers reach each other on their inter-broker listener.
//!
//! Invariants: every broker's epoch is at most `last_epoch`, which never decreases
//! (it is persisted); a broker has a live session exactly when it is not fenced.
//! Brokers written before registration existed (epoch 0, no incarnation) load, but
//! count as unregistered for epoch checks: they must register.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::config::DEFAULT_SESSION_TIMEOUT_MS;
use crate::ids::{BrokerId, ListenerName};
use crate::metadata::BrokerInfo;
pub use crate::metadata::Listener;

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

/// What a broker sends to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBroker {
    pub id: BrokerId,
    /// Drawn by the broker process at start; tells a retry from a restart.
    pub incarnation: Uuid,
    pub cluster_id: String,
    /// Every advertised listener, each name once (the gRPC server refuses a duplicate).
    pub listeners: Vec<Listener>,
    pub rack: Option<String>,
}

/// Why a registration, heartbeat or other broker request was refused. Each variant
/// names the input.
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
    #[error("broker {broker} registered without listeners; it needs one to be reached")]
    NoListeners { broker: BrokerId },
    #[error("broker {broker} registered listener '{listener}' more than once")]
    DuplicateListener {
        broker: BrokerId,
        listener: ListenerName,
    },
}

/// What a successful registration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationOutcome {
    pub epoch: BrokerEpoch,
    /// A new incarnation (or a new broker); false for a retry.
    pub new_incarnation: bool,
    /// The broker was unfenced before and is fenced now: its partitions must be
    /// settled as for a fenced broker.
    pub fenced_previous: bool,
}

/// Registers `request`'s incarnation in `brokers` (see the module docs for the rules).
/// `last_epoch` is the highest epoch ever handed out and is raised for a new one.
pub fn register(
    cluster_id: &str,
    brokers: &mut BTreeMap<BrokerId, BrokerInfo>,
    last_epoch: &mut BrokerEpoch,
    request: RegisterBroker,
) -> Result<RegistrationOutcome, RegistryError> {
    if request.cluster_id != cluster_id {
        return Err(RegistryError::ClusterIdMismatch {
            broker: request.id,
            requested: request.cluster_id,
            expected: cluster_id.to_owned(),
        });
    }
    if request.listeners.is_empty() {
        return Err(RegistryError::NoListeners { broker: request.id });
    }
    for (i, listener) in request.listeners.iter().enumerate() {
        if request.listeners[..i]
            .iter()
            .any(|l| l.name == listener.name)
        {
            return Err(RegistryError::DuplicateListener {
                broker: request.id,
                listener: listener.name.clone(),
            });
        }
    }
    if let Some(existing) = brokers.get_mut(&request.id)
        && existing.incarnation == Some(request.incarnation)
    {
        existing.listeners = request.listeners;
        existing.rack = request.rack;
        return Ok(RegistrationOutcome {
            epoch: existing.epoch,
            new_incarnation: false,
            fenced_previous: false,
        });
    }
    // Defensive: state edited by hand must still never hand out an epoch twice.
    let highest = brokers.values().map(|b| b.epoch).max().unwrap_or_default();
    let epoch = BrokerEpoch((*last_epoch).max(highest).0.saturating_add(1));
    *last_epoch = epoch;
    let fenced_previous = brokers.get(&request.id).is_some_and(|b| !b.fenced);
    let info = BrokerInfo {
        epoch,
        incarnation: Some(request.incarnation),
        fenced: true,
        in_controlled_shutdown: false,
        ..BrokerInfo::new(request.id, request.rack, request.listeners)
    };
    brokers.insert(request.id, info);
    Ok(RegistrationOutcome {
        epoch,
        new_incarnation: true,
        fenced_previous,
    })
}

/// The broker `id`, if `epoch` is its current epoch. A broker that never registered
/// through the control plane (no incarnation) counts as not registered.
pub fn check_epoch(
    brokers: &BTreeMap<BrokerId, BrokerInfo>,
    id: BrokerId,
    epoch: BrokerEpoch,
) -> Result<&BrokerInfo, RegistryError> {
    let broker = brokers
        .get(&id)
        .filter(|b| b.incarnation.is_some())
        .ok_or(RegistryError::UnknownBroker { broker: id })?;
    if broker.epoch != epoch {
        return Err(RegistryError::StaleBrokerEpoch {
            broker: id,
            requested: epoch,
            current: broker.epoch,
        });
    }
    Ok(broker)
}

/// What a valid heartbeat means for the broker: decided by [`heartbeat`], applied by
/// the caller ([`unfence`], then the session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatOutcome {
    /// The heartbeat unfences the broker (a durable change).
    pub unfences: bool,
    /// The broker is unfenced after the heartbeat, so its session starts or extends.
    pub has_session: bool,
    /// Whether the broker may lead and join ISRs after the heartbeat: unfenced and not
    /// in controlled shutdown.
    pub live: bool,
}

/// Decides what a heartbeat from `id` carrying `epoch` does: a fenced broker is
/// unfenced unless it is in controlled shutdown. Changes nothing.
pub fn heartbeat(
    brokers: &BTreeMap<BrokerId, BrokerInfo>,
    id: BrokerId,
    epoch: BrokerEpoch,
) -> Result<HeartbeatOutcome, RegistryError> {
    let broker = check_epoch(brokers, id, epoch)?;
    let unfences = broker.fenced && !broker.in_controlled_shutdown;
    let fenced_after = broker.fenced && !unfences;
    Ok(HeartbeatOutcome {
        unfences,
        has_session: !fenced_after,
        live: !fenced_after && !broker.in_controlled_shutdown,
    })
}

/// Unfences `id` (a heartbeat [`heartbeat`] found unfencing). Returns whether anything
/// changed.
pub fn unfence(brokers: &mut BTreeMap<BrokerId, BrokerInfo>, id: BrokerId) -> bool {
    match brokers.get_mut(&id) {
        Some(broker) if broker.fenced => {
            broker.fenced = false;
            true
        }
        _ => false,
    }
}

/// Fences `id` (its session ran out). Returns whether anything changed.
pub fn fence(brokers: &mut BTreeMap<BrokerId, BrokerInfo>, id: BrokerId) -> bool {
    match brokers.get_mut(&id) {
        Some(broker) if !broker.fenced => {
            broker.fenced = true;
            true
        }
        _ => false,
    }
}

/// Marks `id`, whose current epoch is `epoch`, as in controlled shutdown. Returns
/// whether anything changed.
pub fn begin_controlled_shutdown(
    brokers: &mut BTreeMap<BrokerId, BrokerInfo>,
    id: BrokerId,
    epoch: BrokerEpoch,
) -> Result<bool, RegistryError> {
    check_epoch(brokers, id, epoch)?;
    let broker = brokers
        .get_mut(&id)
        .ok_or(RegistryError::UnknownBroker { broker: id })?;
    let changed = !broker.in_controlled_shutdown;
    broker.in_controlled_shutdown = true;
    Ok(changed)
}

/// When each unfenced broker's session runs out. Kept in memory only: a controller
/// that starts gives every unfenced broker a fresh session ([`Sessions::restore`]).
#[derive(Debug, Clone)]
pub struct Sessions {
    timeout: Duration,
    deadlines: BTreeMap<BrokerId, Instant>,
}

impl Sessions {
    pub fn new(timeout: Duration) -> Sessions {
        Sessions {
            timeout,
            deadlines: BTreeMap::new(),
        }
    }

    /// A fresh session from `now` for every unfenced broker, as a new KRaft controller
    /// does on failover, so brokers are not fenced for the controller's own downtime.
    pub fn restore(
        timeout: Duration,
        brokers: &BTreeMap<BrokerId, BrokerInfo>,
        now: Instant,
    ) -> Sessions {
        let deadlines = brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| (b.id, now + timeout))
            .collect();
        Sessions { timeout, deadlines }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Starts or extends `id`'s session to `now + timeout`.
    pub fn extend(&mut self, id: BrokerId, now: Instant) {
        self.deadlines.insert(id, now + self.timeout);
    }

    pub fn end(&mut self, id: BrokerId) {
        self.deadlines.remove(&id);
    }

    pub fn deadline(&self, id: BrokerId) -> Option<Instant> {
        self.deadlines.get(&id).copied()
    }

    /// Brokers whose session has run out by `now` (a session lasting until `t` has run
    /// out at `t`), in id order. They keep their (expired) session until
    /// [`Sessions::end`], so the caller ends them only once the fencing committed.
    pub fn expired(&self, now: Instant) -> Vec<BrokerId> {
        self.deadlines
            .iter()
            .filter(|&(_, &deadline)| deadline <= now)
            .map(|(&id, _)| id)
            .collect()
    }
}

/// The durable state of a [`BrokerRegistry`]; the same shape as the broker part of
/// `ClusterMetadata`.
#[cfg(test)]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistrations {
    /// The highest epoch ever handed out; the next registration gets one more.
    pub last_epoch: BrokerEpoch,
    pub brokers: BTreeMap<BrokerId, BrokerInfo>,
}

/// Registered brokers, their epochs and their sessions, without partitions: the
/// rules above bundled with their state, so the unit tests can drive them without a
/// `Controller`.
#[cfg(test)]
#[derive(Debug)]
pub struct BrokerRegistry {
    cluster_id: String,
    state: BrokerRegistrations,
    sessions: Sessions,
}

#[cfg(test)]
impl BrokerRegistry {
    /// A registry for `cluster_id` with no brokers.
    pub fn new(cluster_id: impl Into<String>, session_timeout: Duration) -> BrokerRegistry {
        BrokerRegistry {
            cluster_id: cluster_id.into(),
            state: BrokerRegistrations::default(),
            sessions: Sessions::new(session_timeout),
        }
    }

    /// A registry continuing from persisted `state`, with fresh sessions from `now`.
    pub fn restore(
        cluster_id: impl Into<String>,
        session_timeout: Duration,
        state: BrokerRegistrations,
        now: Instant,
    ) -> BrokerRegistry {
        let sessions = Sessions::restore(session_timeout, &state.brokers, now);
        BrokerRegistry {
            cluster_id: cluster_id.into(),
            state,
            sessions,
        }
    }

    /// The durable state, to persist after every change.
    pub fn registrations(&self) -> &BrokerRegistrations {
        &self.state
    }

    pub fn broker(&self, id: BrokerId) -> Option<&BrokerInfo> {
        self.state.brokers.get(&id)
    }

    pub fn session_timeout(&self) -> Duration {
        self.sessions.timeout()
    }

    /// Registers `request`'s incarnation and returns its epoch.
    pub fn register(&mut self, request: RegisterBroker) -> Result<BrokerEpoch, RegistryError> {
        let id = request.id;
        let outcome = register(
            &self.cluster_id,
            &mut self.state.brokers,
            &mut self.state.last_epoch,
            request,
        )?;
        if outcome.new_incarnation {
            self.sessions.end(id);
        }
        Ok(outcome.epoch)
    }

    /// Records a heartbeat from `id` at `now`.
    pub fn heartbeat(
        &mut self,
        id: BrokerId,
        epoch: BrokerEpoch,
        now: Instant,
    ) -> Result<(), RegistryError> {
        let outcome = heartbeat(&self.state.brokers, id, epoch)?;
        if outcome.unfences {
            unfence(&mut self.state.brokers, id);
        }
        if outcome.has_session {
            self.sessions.extend(id, now);
        }
        Ok(())
    }

    /// Fences every broker whose session has run out by `now`, and returns them in id
    /// order.
    pub fn tick(&mut self, now: Instant) -> Vec<BrokerId> {
        let expired = self.sessions.expired(now);
        for &id in &expired {
            self.sessions.end(id);
            fence(&mut self.state.brokers, id);
        }
        expired
    }
}

#[cfg(test)]
mod tests;
