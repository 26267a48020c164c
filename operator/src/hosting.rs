//! The controllers the operator hosts: one [`Controller`] per `Cluster`, over a
//! [`KubeStore`], served to that cluster's brokers through the shared gRPC endpoint
//! ([`ClusterRouter`], which routes each RPC by the cluster the broker names), and ticked
//! (sessions, reassignments, leader balance) every [`TICK`].
//!
//! Only the Lease holder hosts. A new leader opens each controller from the CRs (the
//! store loads the image from `Cluster` and `Topic` status) and brokers re-register with
//! it, as they do after any controller failover.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use prometheus::IntGauge;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use weir_controller::grpc::ClusterRouter;
use weir_controller::{
    ControlPlane, Controller, ControllerConfig, ControllerError, LocalControlPlane,
};

use crate::kube_store::KubeStore;
use crate::topic::policy::KafkaApiPolicy;

/// How often each hosted controller checks sessions, reassignments and leader balance.
pub const TICK: Duration = Duration::from_millis(250);

/// A hosted controller.
pub type HostedPlane = Arc<LocalControlPlane<KubeStore>>;

struct Hosted {
    plane: HostedPlane,
    config: ControllerConfig,
    ticker: JoinHandle<()>,
}

impl Drop for Hosted {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}

/// The hosted controllers, by `namespace/name`.
pub struct Hosting {
    client: Client,
    router: ClusterRouter,
    hosted: Mutex<BTreeMap<String, Hosted>>,
    /// `weir_operator_hosted_controllers`.
    gauge: IntGauge,
}

impl std::fmt::Debug for Hosting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hosting")
            .field("clusters", &self.keys())
            .finish_non_exhaustive()
    }
}

/// The key a cluster is hosted and routed under (what its brokers send as
/// `controller.cluster.name`).
pub fn cluster_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl Hosting {
    pub fn new(client: Client, router: ClusterRouter, gauge: IntGauge) -> Hosting {
        Hosting {
            client,
            router,
            hosted: Mutex::new(BTreeMap::new()),
            gauge,
        }
    }

    pub fn router(&self) -> &ClusterRouter {
        &self.router
    }

    fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Hosted>> {
        self.hosted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The controller of `namespace/name`, if hosted.
    pub fn get(&self, namespace: &str, name: &str) -> Option<HostedPlane> {
        self.lock()
            .get(&cluster_key(namespace, name))
            .map(|h| h.plane.clone())
    }

    /// Hosts the controller of `namespace/name` unless it is already hosted with the same
    /// config; a changed config reopens it (from the store, so nothing is lost).
    pub async fn ensure(
        &self,
        namespace: &str,
        name: &str,
        config: ControllerConfig,
    ) -> Result<HostedPlane, ControllerError> {
        let key = cluster_key(namespace, name);
        if let Some(hosted) = self.lock().get(&key)
            && hosted.config == config
        {
            return Ok(hosted.plane.clone());
        }
        let store = KubeStore::new(self.client.clone(), namespace, name);
        let controller =
            Controller::open_with_config(store, config, tokio::time::Instant::now().into_std())
                .await?;
        let plane: HostedPlane = Arc::new(LocalControlPlane::new(controller));
        let ticker = {
            let plane = plane.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(TICK);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    if let Err(e) = plane.tick().await {
                        warn!(cluster = %key, error = %e, "controller tick failed; retrying");
                    }
                }
            })
        };
        // Brokers reach it for the Kafka API, through the topic ownership policy.
        let policy = KafkaApiPolicy::new(
            plane.clone() as Arc<dyn ControlPlane>,
            self.client.clone(),
            namespace,
            name,
        );
        self.router.register(&key, Arc::new(policy));
        info!(cluster = %key, "hosting the cluster's controller");
        let mut hosted = self.lock();
        hosted.insert(
            key,
            Hosted {
                plane: plane.clone(),
                config,
                ticker,
            },
        );
        self.gauge
            .set(i64::try_from(hosted.len()).unwrap_or(i64::MAX));
        Ok(plane)
    }

    /// Stops hosting `namespace/name` (its Cluster is gone).
    pub fn stop(&self, namespace: &str, name: &str) {
        let key = cluster_key(namespace, name);
        self.router.unregister(&key);
        let mut hosted = self.lock();
        if hosted.remove(&key).is_some() {
            info!(cluster = %key, "stopped hosting the cluster's controller");
        }
        self.gauge
            .set(i64::try_from(hosted.len()).unwrap_or(i64::MAX));
    }
}
