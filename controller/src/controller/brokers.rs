//! The broker lifecycle in the controller: registration, heartbeats, session expiry
//! and controlled shutdown, with their consequences for partitions (the rules are in
//! [`crate::registry`] and [`crate::partitions`]), and the periodic [`Controller::tick`].

use std::time::Instant;

use super::{Controller, ControllerError};
use crate::ids::BrokerId;
use crate::metadata::ClusterMetadata;
use crate::partitions;
use crate::plane::{ControlledShutdownReply, Heartbeat, HeartbeatReply, PartitionRef};
use crate::registry::{self, BrokerEpoch, RegisterBroker};
use crate::store::MetadataStore;

/// What one [`Controller::tick`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Brokers fenced because their session ran out, in id order.
    pub fenced: Vec<BrokerId>,
    /// Reassignments that completed.
    pub reassignments_completed: Vec<PartitionRef>,
    /// Partitions whose leadership moved back to the preferred replica.
    pub leaders_rebalanced: Vec<PartitionRef>,
}

impl<S: MetadataStore> Controller<S> {
    /// Registers a broker incarnation and returns its epoch (rules in
    /// [`crate::registry`]). A new incarnation of a broker that was unfenced fences
    /// it: it leaves ISRs and leaderships as on session expiry. A retry commits only
    /// if the endpoint or rack changed.
    pub async fn register_broker(
        &mut self,
        request: RegisterBroker,
    ) -> Result<BrokerEpoch, ControllerError> {
        let id = request.id;
        let mut next = ClusterMetadata::clone(&self.metadata);
        let outcome = registry::register(
            &self.metadata.cluster_id,
            &mut next.brokers,
            &mut next.last_broker_epoch,
            request,
        )?;
        if outcome.fenced_previous {
            partitions::settle_all(&mut next);
        }
        self.commit_if_changed(next).await?;
        if outcome.new_incarnation {
            self.sessions.end(id);
        }
        Ok(outcome.epoch)
    }

    /// A broker's heartbeat at `now`: starts or extends its session; the first one
    /// after registration or expiry unfences the broker (a commit, which also elects it
    /// leader of leaderless partitions whose ISR holds it). A heartbeat that only
    /// extends the session writes nothing.
    pub async fn broker_heartbeat(
        &mut self,
        request: Heartbeat,
        now: Instant,
    ) -> Result<HeartbeatReply, ControllerError> {
        let outcome =
            registry::heartbeat(&self.metadata.brokers, request.broker, request.broker_epoch)?;
        if outcome.unfences {
            let mut next = ClusterMetadata::clone(&self.metadata);
            registry::unfence(&mut next.brokers, request.broker);
            partitions::settle_all(&mut next);
            self.commit(next).await?;
        }
        if outcome.has_session {
            self.sessions.extend(request.broker, now);
        }
        Ok(HeartbeatReply {
            fenced: !outcome.live,
        })
    }

    /// One step of a controlled shutdown (see [`ControlledShutdownReply`]): marks the
    /// broker as shutting down, moves its leaderships to live ISR members and takes it
    /// out of every ISR where another member remains. Returns how many partitions it
    /// still leads (those where it is the last ISR member).
    pub async fn controlled_shutdown(
        &mut self,
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
    ) -> Result<ControlledShutdownReply, ControllerError> {
        let mut next = ClusterMetadata::clone(&self.metadata);
        registry::begin_controlled_shutdown(&mut next.brokers, broker, broker_epoch)?;
        partitions::settle_all(&mut next);
        self.commit_if_changed(next).await?;
        let led = self
            .metadata
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .filter(|p| p.leader == Some(broker))
            .count();
        Ok(ControlledShutdownReply {
            remaining_leaders: u32::try_from(led).unwrap_or(u32::MAX),
        })
    }

    /// UnregisterBroker (KIP-500's decommissioning): forgets a broker that is gone for
    /// good, so metadata stops listing it. Refused while any partition still names it
    /// (move its replicas off first); unknown brokers are a no-op, as retries must be.
    pub async fn unregister_broker(&mut self, broker: BrokerId) -> Result<(), ControllerError> {
        if !self.metadata.brokers.contains_key(&broker) {
            return Ok(());
        }
        let hosting = self.metadata.topics.values().find_map(|t| {
            t.partitions
                .iter()
                .find(|p| {
                    p.replicas.contains(&broker)
                        || p.adding_replicas.contains(&broker)
                        || p.isr.contains(&broker)
                })
                .map(|p| format!("{}-{}", t.name, p.partition))
        });
        if let Some(partition) = hosting {
            return Err(ControllerError::PolicyViolation {
                message: format!(
                    "broker {broker} still hosts a replica of {partition}; reassign it first"
                ),
            });
        }
        let mut next = ClusterMetadata::clone(&self.metadata);
        next.brokers.remove(&broker);
        self.sessions.end(broker);
        self.commit(next).await
    }

    /// The controller's periodic work at `now`, to run every few hundred milliseconds:
    /// fences brokers whose session ran out (one after another, each settling the
    /// partitions), completes reassignments whose target replicas are all in sync,
    /// elects leaders where one can be elected, and, every
    /// `leader.imbalance.check.interval.seconds` when `auto.leader.rebalance.enable`,
    /// moves leadership back to preferred replicas. All of it is one commit, or none
    /// when nothing changed; after a failed commit the same work is retried next time.
    pub async fn tick(&mut self, now: Instant) -> Result<TickReport, ControllerError> {
        let expired = self.sessions.expired(now);
        let rebalance_due =
            self.config.auto_leader_rebalance_enable && now >= self.next_rebalance_check;
        if expired.is_empty() && !rebalance_due && !partitions::may_need_settling(&self.metadata) {
            return Ok(TickReport::default());
        }
        let mut next = ClusterMetadata::clone(&self.metadata);
        for &id in &expired {
            registry::fence(&mut next.brokers, id);
            partitions::settle_all(&mut next);
        }
        partitions::settle_all(&mut next);
        let leaders_rebalanced = if rebalance_due {
            let percentage = self.config.leader_imbalance_per_broker_percentage;
            partitions::rebalance_leaders(&mut next, percentage)
        } else {
            Vec::new()
        };
        let reassignments_completed = completed_reassignments(&self.metadata, &next);
        self.commit_if_changed(next).await?;
        for &id in &expired {
            self.sessions.end(id);
        }
        if rebalance_due {
            self.next_rebalance_check = now + self.config.leader_imbalance_check_interval();
        }
        Ok(TickReport {
            fenced: expired,
            reassignments_completed,
            leaders_rebalanced,
        })
    }
}

/// Partitions reassigning in `before` and not in `after` (same topic id).
pub(super) fn completed_reassignments(
    before: &ClusterMetadata,
    after: &ClusterMetadata,
) -> Vec<PartitionRef> {
    let mut completed = Vec::new();
    for (name, topic) in &after.topics {
        let Some(old) = before.topics.get(name).filter(|t| t.id == topic.id) else {
            continue;
        };
        for (was, is) in old.partitions.iter().zip(&topic.partitions) {
            if was.is_reassigning() && !is.is_reassigning() {
                completed.push(PartitionRef {
                    topic: name.clone(),
                    partition: is.partition,
                });
            }
        }
    }
    completed
}
