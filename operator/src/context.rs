//! What every reconciler shares: the client, the operator's defaults, the hosted
//! controllers, the event recorder and the metrics, plus per-object backoff for errors.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::warn;

use weir_controller::grpc::ClusterRouter;

use crate::cluster::ClusterDefaults;
use crate::hosting::Hosting;
use crate::metrics::Metrics;

/// The name the operator writes with (server-side apply field manager, events).
pub const MANAGER: &str = "weir-operator";

/// Backoff after a failed reconcile: 1 s doubling to 5 minutes, per object.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

pub struct Context {
    pub client: Client,
    pub defaults: ClusterDefaults,
    pub hosting: Hosting,
    pub metrics: Metrics,
    recorder: Recorder,
    failures: Mutex<BTreeMap<String, u32>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("defaults", &self.defaults)
            .field("hosting", &self.hosting)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// `router` is the gRPC endpoint the hosted controllers are served on.
    pub fn new(
        client: Client,
        defaults: ClusterDefaults,
        router: ClusterRouter,
        identity: &str,
    ) -> Context {
        let reporter = Reporter {
            controller: MANAGER.to_owned(),
            instance: Some(identity.to_owned()),
        };
        let metrics = Metrics::default();
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            hosting: Hosting::new(client.clone(), router, metrics.hosted_controllers.clone()),
            client,
            defaults,
            metrics,
            failures: Mutex::new(BTreeMap::new()),
        }
    }

    /// Publishes a Kubernetes Event about `object`; failing to is logged, never fatal.
    pub async fn event(
        &self,
        object: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, object).await {
            warn!(error = %e, reason, "could not publish an event");
        }
    }

    /// The requeue after the `key`'s next consecutive failure: exponential backoff.
    pub fn backoff(&self, key: &str) -> Action {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.to_owned()).or_default();
        *n = n.saturating_add(1);
        let delay = BACKOFF_MIN
            .saturating_mul(1u32 << (*n - 1).min(16))
            .min(BACKOFF_MAX);
        Action::requeue(delay)
    }

    /// `key` reconciled successfully: its backoff starts over.
    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delay(action: &Action) -> String {
        format!("{action:?}")
    }

    #[tokio::test]
    async fn backoff_doubles_per_failure_and_starts_over_after_a_success() {
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let defaults = ClusterDefaults {
            broker_image: "x".into(),
            controller_address: "y:9093".into(),
        };
        let ctx = Context::new(client, defaults, ClusterRouter::default(), "test");
        let first = ctx.backoff("Cluster/a/b");
        let second = ctx.backoff("Cluster/a/b");
        let other = ctx.backoff("Cluster/a/c");
        assert_eq!(
            delay(&first),
            delay(&Action::requeue(Duration::from_secs(1)))
        );
        assert_eq!(
            delay(&second),
            delay(&Action::requeue(Duration::from_secs(2)))
        );
        assert_eq!(delay(&other), delay(&first), "backoff is per object");
        for _ in 0..20 {
            ctx.backoff("Cluster/a/b");
        }
        assert_eq!(
            delay(&ctx.backoff("Cluster/a/b")),
            delay(&Action::requeue(BACKOFF_MAX))
        );
        ctx.succeeded("Cluster/a/b");
        assert_eq!(delay(&ctx.backoff("Cluster/a/b")), delay(&first));
    }
}
