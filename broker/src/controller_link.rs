//! The broker's side of the control plane: joining the cluster, heartbeats, controlled
//! shutdown. Like KRaft's `BrokerLifecycleManager`, over the [`ControlPlane`] trait, so the
//! same code runs against a controller in this process or across gRPC.
//!
//! Joining: follow the controller's metadata (the first image carries the cluster id), check
//! or write `meta.properties` against it, then register this process as a new incarnation of
//! `node.id` (a random UUID per start) and get a broker epoch. The broker is fenced until
//! its first heartbeat; heartbeats then run every `broker.heartbeat.interval.ms`.
//!
//! A controller that is unreachable is retried with backoff for as long as it takes (a broker
//! waits for its controller, as Kafka's do); a refusal that retrying cannot fix — another
//! cluster's data directory, a cluster id the controller does not know — stops the start.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info, warn};
use uuid::Uuid;

use weir_controller::registry::{BrokerEpoch, Listener, RegisterBroker};
use weir_controller::{BrokerId, ClusterMetadata, ControlPlane, ControllerError, Heartbeat};

use crate::config::BrokerConfig;
use crate::meta_properties::{self, MetaPropertiesError};
use kafka_protocol::ResponseError;

/// Why the broker could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(transparent)]
    MetaProperties(#[from] MetaPropertiesError),
    #[error("the controller refused to register broker {broker}: {source}")]
    Refused {
        broker: BrokerId,
        #[source]
        source: ControllerError,
    },
}

/// This broker's registration with the controller.
pub struct ControllerLink {
    plane: Arc<dyn ControlPlane>,
    registration: RegisterBroker,
    epoch: watch::Sender<BrokerEpoch>,
    /// Whether the controller considers this broker fenced (true until the first heartbeat).
    fenced: watch::Sender<bool>,
    heartbeat_interval: Duration,
}

impl std::fmt::Debug for ControllerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerLink")
            .field("broker", &self.registration.id)
            .field("incarnation", &self.registration.incarnation)
            .field("epoch", &*self.epoch.borrow())
            .field("fenced", &*self.fenced.borrow())
            .finish_non_exhaustive()
    }
}

/// Backoff between attempts to reach the controller while joining.
const JOIN_BACKOFF: Duration = Duration::from_millis(500);

/// Whether retrying a registration can help: the controller was unreachable or failed.
fn is_transient(error: &ControllerError) -> bool {
    [
        ResponseError::RequestTimedOut,
        ResponseError::NotController,
        ResponseError::UnknownServerError,
    ]
    .iter()
    .any(|e| e.code() == error.kafka_error_code())
}

impl ControllerLink {
    /// Joins the cluster: follows the metadata, checks `meta.properties`, registers. Returns
    /// the link and the metadata receiver (at the controller's current image).
    pub async fn join(
        plane: Arc<dyn ControlPlane>,
        config: &BrokerConfig,
    ) -> Result<(Arc<ControllerLink>, watch::Receiver<Arc<ClusterMetadata>>), JoinError> {
        let broker = BrokerId(config.node_id);
        let metadata = retry("follow the controller's metadata", || {
            plane.watch_metadata()
        })
        .await;
        let cluster_id = metadata.borrow().cluster_id.clone();
        meta_properties::ensure(&config.data_dir, config.node_id, &cluster_id)?;
        let registration = RegisterBroker {
            id: broker,
            incarnation: Uuid::new_v4(),
            cluster_id,
            listeners: config
                .advertised_listeners
                .iter()
                .map(|l| Listener::new(l.name.clone(), l.host.clone(), l.port))
                .collect(),
            rack: config.rack.clone(),
        };
        let link = ControllerLink {
            plane,
            registration,
            epoch: watch::channel(BrokerEpoch::default()).0,
            fenced: watch::channel(true).0,
            heartbeat_interval: Duration::from_millis(config.broker_heartbeat_interval_ms),
        };
        link.register().await?;
        Ok((Arc::new(link), metadata))
    }

    pub fn broker_id(&self) -> BrokerId {
        self.registration.id
    }

    /// The epoch of this incarnation's current registration.
    pub fn epoch(&self) -> BrokerEpoch {
        *self.epoch.borrow()
    }

    pub fn is_fenced(&self) -> bool {
        *self.fenced.borrow()
    }

    /// Follows fencing (true while fenced).
    pub fn subscribe_fenced(&self) -> watch::Receiver<bool> {
        self.fenced.subscribe()
    }

    async fn register(&self) -> Result<(), JoinError> {
        loop {
            match self.plane.register_broker(self.registration.clone()).await {
                Ok(registered) => {
                    info!(
                        broker = %self.registration.id,
                        incarnation = %self.registration.incarnation,
                        epoch = %registered.broker_epoch,
                        "registered with the controller"
                    );
                    self.epoch.send_replace(registered.broker_epoch);
                    self.fenced.send_replace(true);
                    return Ok(());
                }
                Err(e) if is_transient(&e) => {
                    warn!(error = %e, "registering with the controller failed; retrying");
                    tokio::time::sleep(JOIN_BACKOFF).await;
                }
                Err(source) => {
                    return Err(JoinError::Refused {
                        broker: self.registration.id,
                        source,
                    });
                }
            }
        }
    }

    /// Sends one heartbeat now and records whether the broker is fenced. A controller that
    /// no longer knows this broker (its metadata was lost) gets a new registration.
    pub async fn heartbeat(&self) -> Result<(), ControllerError> {
        let request = Heartbeat {
            broker: self.registration.id,
            broker_epoch: self.epoch(),
        };
        match self.plane.broker_heartbeat(request).await {
            Ok(reply) => {
                let was = self.fenced.send_replace(reply.fenced);
                if was != reply.fenced {
                    info!(
                        fenced = reply.fenced,
                        "the controller changed this broker's fencing"
                    );
                }
                Ok(())
            }
            Err(e) if e.kafka_error_code() == ResponseError::BrokerIdNotRegistered.code() => {
                warn!(error = %e, "the controller does not know this broker; registering again");
                self.fenced.send_replace(true);
                if let Err(join) = self.register().await {
                    error!(error = %join, "registering again failed");
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Heartbeats every `broker.heartbeat.interval.ms` until the task is aborted.
    pub async fn heartbeat_loop(self: Arc<Self>) {
        let mut every = tokio::time::interval(self.heartbeat_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(e) = self.heartbeat().await {
                if e.kafka_error_code() == ResponseError::StaleBrokerEpoch.code() {
                    // A newer process registered as this node id: this one is fenced for good.
                    error!(error = %e, "another incarnation of this node registered; this process stays fenced");
                    self.fenced.send_replace(true);
                    return;
                }
                warn!(error = %e, "heartbeat to the controller failed");
            }
        }
    }

    /// Kafka's controlled shutdown: asks the controller to move leadership and ISR membership
    /// off this broker, up to `retries` more times `backoff` apart while it still leads
    /// partitions and `worth_retrying()` says another broker could take them. Returns whether
    /// the broker ended up leading nothing.
    pub async fn controlled_shutdown(
        &self,
        retries: u32,
        backoff: Duration,
        worth_retrying: impl Fn() -> bool,
    ) -> bool {
        for attempt in 0..=retries {
            match self
                .plane
                .controlled_shutdown(self.registration.id, self.epoch())
                .await
            {
                Ok(reply) if reply.remaining_leaders == 0 => {
                    info!(
                        attempt,
                        "controlled shutdown: leadership moved off this broker"
                    );
                    return true;
                }
                Ok(reply) => {
                    warn!(
                        attempt,
                        remaining = reply.remaining_leaders,
                        "controlled shutdown: partitions still led here (no other in-sync replica)"
                    );
                }
                Err(e) => warn!(attempt, error = %e, "controlled shutdown request failed"),
            }
            if attempt < retries {
                tokio::time::sleep(backoff).await;
                if !worth_retrying() {
                    info!("controlled shutdown: no other live broker left to take over");
                    return false;
                }
            }
        }
        false
    }
}

/// Calls `f` until it succeeds, logging each failure and backing off.
async fn retry<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ControllerError>>,
{
    loop {
        match f().await {
            Ok(value) => return value,
            Err(e) => {
                warn!(error = %e, "could not {what}; retrying");
                tokio::time::sleep(JOIN_BACKOFF).await;
            }
        }
    }
}
