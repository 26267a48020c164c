//! Leader election among operator replicas with a `coordination.k8s.io/v1` Lease, as
//! client-go's leaderelection does: the holder renews `renewTime` every
//! [`ElectionConfig::retry_period`]; a candidate takes the Lease over once the record has
//! not changed for `leaseDurationSeconds` *by its own clock* (so clock skew between nodes
//! does not matter), and every write is a compare-and-set on `resourceVersion`, so two
//! candidates never both win.
//!
//! [`Elector::step`] makes one attempt; [`Elector::run`] loops and publishes leadership
//! on a watch channel. A leader that cannot renew within `renew_deadline` publishes
//! `false` and stops: the operator then exits so it restarts clean, as a standby.
//! The decision itself ([`decide`]) is a pure function.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElectionConfig {
    /// The Lease's namespace and name.
    pub namespace: String,
    pub name: String,
    /// This candidate (the pod name).
    pub identity: String,
    /// How long a Lease is honoured after its last renewal (15 s, client-go's default).
    pub lease_duration: Duration,
    /// How long a leader keeps trying to renew before it gives up leadership (10 s).
    pub renew_deadline: Duration,
    /// How often candidates try and leaders renew (2 s).
    pub retry_period: Duration,
}

impl ElectionConfig {
    pub fn new(namespace: &str, name: &str, identity: &str) -> ElectionConfig {
        ElectionConfig {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What a candidate does with the Lease it read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Write the Lease with us as holder (create it when absent); `transitions` is the new
    /// `leaseTransitions`.
    Take { transitions: i32 },
    /// We hold it: renew.
    Renew,
    /// Someone else holds a live Lease.
    Follow { holder: String },
}

/// The Lease record as last seen, and when (by the local clock) it last changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub record: Option<LeaseSpec>,
    pub changed_at: Instant,
}

/// Decides from the Lease as read now (`current`), what was observed before, and `now`.
pub fn decide(
    current: Option<&LeaseSpec>,
    observed: Option<&Observed>,
    identity: &str,
    now: Instant,
    lease_duration: Duration,
) -> Decision {
    let Some(spec) = current else {
        return Decision::Take { transitions: 0 };
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let transitions = spec.lease_transitions.unwrap_or(0);
    if holder == identity {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::Take {
            transitions: transitions + 1,
        };
    }
    let duration = spec
        .lease_duration_seconds
        .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
        .unwrap_or(lease_duration);
    // Expired only if we have watched the same record for a whole lease duration.
    let unchanged_since = observed
        .filter(|o| o.record.as_ref() == Some(spec))
        .map(|o| o.changed_at);
    match unchanged_since {
        Some(since) if now.duration_since(since) >= duration => Decision::Take {
            transitions: transitions + 1,
        },
        _ => Decision::Follow { holder },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    #[error("Lease {name}: {source}")]
    Api {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// One candidate.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    config: ElectionConfig,
    observed: Option<Observed>,
}

impl Elector {
    pub fn new(client: Client, config: ElectionConfig) -> Elector {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        }
    }

    /// One attempt: reads the Lease, and takes or renews it when [`decide`] says so.
    /// Returns whether we hold it now. Losing a compare-and-set race is `Ok(false)`.
    pub async fn step(&mut self) -> Result<bool, ElectionError> {
        let err = |source| ElectionError::Api {
            name: self.config.name.clone(),
            source,
        };
        let current = self.api.get_opt(&self.config.name).await.map_err(err)?;
        let now = Instant::now();
        let record = current.as_ref().and_then(|l| l.spec.clone());
        if self.observed.as_ref().map(|o| &o.record) != Some(&record) {
            self.observed = Some(Observed {
                record: record.clone(),
                changed_at: now,
            });
        }
        let decision = decide(
            record.as_ref(),
            self.observed.as_ref(),
            &self.config.identity,
            now,
            self.config.lease_duration,
        );
        let mut spec = match (&decision, record) {
            (Decision::Follow { .. }, _) => return Ok(false),
            (Decision::Renew, Some(spec)) => spec,
            (Decision::Take { transitions }, previous) => LeaseSpec {
                holder_identity: Some(self.config.identity.clone()),
                lease_duration_seconds: i32::try_from(self.config.lease_duration.as_secs()).ok(),
                acquire_time: Some(MicroTime(Timestamp::now())),
                lease_transitions: Some(*transitions),
                ..previous.unwrap_or_default()
            },
            (Decision::Renew, None) => return Ok(false),
        };
        spec.holder_identity = Some(self.config.identity.clone());
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        let result = match current {
            Some(mut lease) => {
                // resourceVersion from the read: a compare-and-set.
                lease.spec = Some(spec.clone());
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec.clone()),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
        };
        match result {
            Ok(written) => {
                self.observed = Some(Observed {
                    record: written.spec,
                    changed_at: Instant::now(),
                });
                if matches!(decision, Decision::Take { .. }) {
                    info!(lease = %self.config.name, identity = %self.config.identity, "acquired the operator Lease");
                }
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(source) => Err(ElectionError::Api {
                name: self.config.name.clone(),
                source,
            }),
        }
    }

    /// Gives the Lease up (empty holder) if we hold it, so a standby takes over without
    /// waiting for it to expire.
    pub async fn release(&mut self) -> Result<(), ElectionError> {
        let err = |source| ElectionError::Api {
            name: self.config.name.clone(),
            source,
        };
        let Some(mut lease) = self.api.get_opt(&self.config.name).await.map_err(err)? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
            Err(source) => Err(ElectionError::Api {
                name: self.config.name.clone(),
                source,
            }),
        }
    }

    /// Campaigns until elected, then renews; publishes `true` on `leading` once elected
    /// and `false` (then returns) when leadership is lost: no successful renewal within
    /// `renew_deadline`, or another holder seen.
    pub async fn run(mut self, leading: watch::Sender<bool>) {
        let mut last_renewal: Option<Instant> = None;
        loop {
            match self.step().await {
                Ok(true) => {
                    if last_renewal.is_none() {
                        leading.send_replace(true);
                    }
                    last_renewal = Some(Instant::now());
                }
                Ok(false) if last_renewal.is_some() => {
                    warn!(lease = %self.config.name, "another operator holds the Lease; giving up leadership");
                    leading.send_replace(false);
                    return;
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(error = %e, "leader election attempt failed");
                    if let Some(at) = last_renewal
                        && at.elapsed() >= self.config.renew_deadline
                    {
                        warn!(lease = %self.config.name, "could not renew the Lease in time; giving up leadership");
                        leading.send_replace(false);
                        return;
                    }
                }
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(15),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_missing_or_released_lease_is_taken() {
        let now = Instant::now();
        let d = Duration::from_secs(15);
        assert_eq!(
            decide(None, None, "a", now, d),
            Decision::Take { transitions: 0 }
        );
        let released = LeaseSpec {
            holder_identity: None,
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        };
        assert_eq!(
            decide(Some(&released), None, "a", now, d),
            Decision::Take { transitions: 4 }
        );
    }

    #[test]
    fn the_holder_renews() {
        let spec = held_by("a", 1);
        assert_eq!(
            decide(
                Some(&spec),
                None,
                "a",
                Instant::now(),
                Duration::from_secs(15)
            ),
            Decision::Renew
        );
    }

    #[test]
    fn another_holder_is_followed_until_its_record_is_unchanged_for_a_lease_duration() {
        let spec = held_by("b", 2);
        let start = Instant::now();
        let d = Duration::from_secs(15);
        let observed = Observed {
            record: Some(spec.clone()),
            changed_at: start,
        };
        // First sight: never expired, whatever the timestamps inside say.
        assert!(matches!(
            decide(Some(&spec), None, "a", start, d),
            Decision::Follow { .. }
        ));
        assert!(matches!(
            decide(
                Some(&spec),
                Some(&observed),
                "a",
                start + Duration::from_secs(14),
                d
            ),
            Decision::Follow { .. }
        ));
        assert_eq!(
            decide(
                Some(&spec),
                Some(&observed),
                "a",
                start + Duration::from_secs(15),
                d
            ),
            Decision::Take { transitions: 3 }
        );
        // A renewal (a different record) restarts the clock.
        let mut renewed = spec.clone();
        renewed.renew_time = Some(MicroTime(Timestamp::now()));
        assert!(matches!(
            decide(
                Some(&renewed),
                Some(&observed),
                "a",
                start + Duration::from_secs(60),
                d
            ),
            Decision::Follow { .. }
        ));
    }
}
