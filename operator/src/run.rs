//! `weir-operator run`: the operator process.
//!
//! Every replica serves `/metrics`, `/healthz` and `/readyz` and the controllers' gRPC
//! endpoint, and campaigns for the Lease. Only the leader reconciles and hosts the
//! Clusters' controllers; a standby answers controller RPCs as a standby controller
//! does (NOT_CONTROLLER), and the controller Service sends brokers to the leader by the
//! [`LEADER_LABEL`] the leader puts on its own pod. A leader that loses the Lease stops
//! and exits, so it restarts clean as a standby; on SIGTERM it releases the Lease so a
//! standby takes over at once.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt as _};
use serde_json::json;
use tokio::sync::watch;
use tracing::{info, warn};
use weir_controller::grpc::{ClusterRouter, serve_routed};

use crate::cluster::ClusterDefaults;
use crate::cluster::reconcile::{self as cluster_reconcile, ReconcileError};
use crate::context::Context;
use crate::crd::{Cluster, Topic};
use crate::leader::{ElectionConfig, Elector};
use crate::topic::reconcile::{self as topic_reconcile, TopicError};

/// The label the leader sets on its own pod; the chart's controller Service selects it.
pub const LEADER_LABEL: &str = "weir.dev/controller-leader";

#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Watch only this namespace (`None`: all namespaces).
    pub watch_namespace: Option<String>,
    pub http_listener: SocketAddr,
    pub controller_listener: SocketAddr,
    /// `host:port` brokers reach the controller at (the chart's controller Service).
    pub controller_address: String,
    /// The broker image for Clusters that do not name one.
    pub broker_image: String,
    /// The operator's namespace (where its Lease lives) and pod name (its identity).
    pub namespace: String,
    pub identity: String,
    pub lease_name: String,
}

/// Runs the operator until `shutdown` completes (`Ok`) or leadership is lost (`Err`).
pub async fn run(
    client: Client,
    config: RunConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let router = ClusterRouter::default();
    let defaults = ClusterDefaults {
        broker_image: config.broker_image.clone(),
        controller_address: config.controller_address.clone(),
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        defaults,
        router.clone(),
        &config.identity,
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        stop_tx.send_replace(true);
    });
    let stopped = move || {
        let mut stop = stop_rx.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    };

    let ready = Arc::new(AtomicBool::new(false));
    let http = tokio::net::TcpListener::bind(config.http_listener)
        .await
        .with_context(|| format!("binding the HTTP listener {}", config.http_listener))?;
    let http = tokio::spawn(crate::http::serve(
        http,
        ctx.metrics.clone(),
        ready.clone(),
        stopped(),
    ));
    let grpc = tokio::net::TcpListener::bind(config.controller_listener)
        .await
        .with_context(|| {
            format!(
                "binding the controller listener {}",
                config.controller_listener
            )
        })?;
    info!(addr = %grpc.local_addr()?, "serving the controllers' gRPC endpoint");
    let grpc = tokio::spawn(serve_routed(grpc, router.clone(), stopped()));
    ready.store(true, Ordering::Release);

    let (leading_tx, mut leading) = watch::channel(false);
    let election = ElectionConfig::new(&config.namespace, &config.lease_name, &config.identity);
    let elector = tokio::spawn(Elector::new(client.clone(), election.clone()).run(leading_tx));
    let elected = tokio::select! {
        () = stopped() => None,
        elected = leading.wait_for(|l| *l) => Some(elected.is_ok()),
    };
    let outcome = match elected {
        None => Ok(()),
        Some(true) => lead(&client, &config, &ctx, &mut leading, stopped()).await,
        Some(false) => Err(anyhow::anyhow!("leader election stopped")),
    };
    elector.abort();
    if outcome.is_ok() {
        // Hand over at once instead of after the Lease expires.
        if let Err(e) = Elector::new(client.clone(), election).release().await {
            warn!(error = %e, "could not release the Lease");
        }
    }
    ctx.metrics.leader.set(0);
    ready.store(false, Ordering::Release);
    if outcome.is_ok() {
        // Stopping: the servers drain on the shutdown signal.
        let _ = grpc.await;
        let _ = http.await;
    } else {
        // Deposed: no shutdown signal will come; stop serving now so the process exits
        // and restarts as a standby.
        grpc.abort();
        http.abort();
    }
    outcome
}

/// The leader's work: label this pod, run both reconcilers, until leadership is lost
/// (`Err`) or `stopped` (`Ok`).
async fn lead(
    client: &Client,
    config: &RunConfig,
    ctx: &Arc<Context>,
    leading: &mut watch::Receiver<bool>,
    stopped: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    info!(identity = %config.identity, "leading: reconciling and hosting the controllers");
    ctx.metrics.leader.set(1);
    if let Err(e) = label_leader(client, config).await {
        warn!(error = %e, "could not label this pod as the controller leader");
    }
    let (clusters, topics, statefulsets, config_maps, services) = apis(client, config);
    // A deleted Cluster is never reconciled again (it has no finalizer: ownerReferences
    // clean up after it), so its controller stops when the watch sees it go.
    let departures =
        watcher::watcher(clusters.clone(), watcher::Config::default()).for_each(|event| async {
            if let Ok(watcher::Event::Delete(cluster)) = event {
                ctx.hosting.stop(
                    &cluster.namespace().unwrap_or_default(),
                    &cluster.name_any(),
                );
            }
        });
    let cluster_controller = Controller::new(clusters.clone(), watcher::Config::default())
        .owns(statefulsets, watcher::Config::default())
        .owns(config_maps, watcher::Config::default())
        .owns(services, watcher::Config::default())
        .run(
            |cluster, ctx| instrumented("Cluster", cluster, ctx, cluster_reconcile::reconcile),
            cluster_error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move { log_failure("Cluster", result) });
    // A Topic waits for its Cluster (its controller, enough registered brokers): a change
    // to the Cluster, its status included, looks at the Cluster's Topics again at once.
    let topic_controller = Controller::new(topics, watcher::Config::default());
    let known_topics = topic_controller.store();
    let topic_controller = topic_controller
        .watches(
            clusters,
            watcher::Config::default(),
            move |cluster: Cluster| {
                let namespace = cluster.namespace();
                let name = cluster.name_any();
                known_topics
                    .state()
                    .into_iter()
                    .filter(|t| t.namespace() == namespace && t.spec.cluster == name)
                    .map(|t| ObjectRef::from_obj(t.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .run(
            |topic, ctx| instrumented("Topic", topic, ctx, topic_reconcile::reconcile),
            topic_error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move { log_failure("Topic", result) });
    tokio::select! {
        () = stopped => Ok(()),
        () = cluster_controller => Err(anyhow::anyhow!("the Cluster controller stopped")),
        () = topic_controller => Err(anyhow::anyhow!("the Topic controller stopped")),
        () = departures => Err(anyhow::anyhow!("the Cluster watch stopped")),
        _ = leading.wait_for(|l| !*l) => Err(anyhow::anyhow!("lost the leader Lease")),
    }
}

/// Logs a failed reconcile (the error policy already counted and scheduled it). A requeue
/// for an object deleted meanwhile is not a failure.
fn log_failure<T, E: std::error::Error + 'static, Q: std::error::Error + 'static>(
    kind: &str,
    result: Result<T, kube::runtime::controller::Error<E, Q>>,
) {
    match result {
        Ok(_) | Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
        Err(e) => warn!(error = %e, kind, "reconcile failed"),
    }
}

/// Runs one reconcile with its metrics, and resets the object's error backoff when it
/// succeeds.
async fn instrumented<K, E, F, Fut>(
    kind: &'static str,
    object: Arc<K>,
    ctx: Arc<Context>,
    reconcile: F,
) -> Result<Action, E>
where
    K: kube::Resource,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action, E>>,
{
    let key = backoff_key(kind, object.as_ref());
    ctx.metrics.reconciles.with_label_values(&[kind]).inc();
    let timer = ctx
        .metrics
        .reconcile_duration
        .with_label_values(&[kind])
        .start_timer();
    let result = reconcile(object, ctx.clone()).await;
    timer.observe_duration();
    if result.is_ok() {
        ctx.succeeded(&key);
    }
    result
}

fn backoff_key<K: kube::Resource>(kind: &str, object: &K) -> String {
    format!(
        "{kind}/{}/{}",
        object.meta().namespace.as_deref().unwrap_or_default(),
        object.meta().name.as_deref().unwrap_or_default()
    )
}

type Apis = (
    Api<Cluster>,
    Api<Topic>,
    Api<StatefulSet>,
    Api<ConfigMap>,
    Api<Service>,
);

fn apis(client: &Client, config: &RunConfig) -> Apis {
    match &config.watch_namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
        ),
    }
}

fn cluster_error_policy(
    cluster: Arc<Cluster>,
    error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics
        .reconcile_errors
        .with_label_values(&["Cluster", error.reason()])
        .inc();
    warn!(cluster = %cluster.name_any(), error = %error, "Cluster reconcile failed; retrying with backoff");
    ctx.backoff(&format!(
        "Cluster/{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    ))
}

fn topic_error_policy(topic: Arc<Topic>, error: &TopicError, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_errors
        .with_label_values(&["Topic", error.reason()])
        .inc();
    warn!(topic = %topic.name_any(), error = %error, "Topic reconcile failed; retrying with backoff");
    ctx.backoff(&format!(
        "Topic/{}/{}",
        topic.namespace().unwrap_or_default(),
        topic.name_any()
    ))
}

/// Puts [`LEADER_LABEL`] on this pod and takes it off any other (a leader that crashed
/// keeps its pod, and its label, across container restarts).
async fn label_leader(client: &Client, config: &RunConfig) -> Result<(), kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &config.namespace);
    let others = pods
        .list(&ListParams::default().labels(&format!("{LEADER_LABEL}=true")))
        .await?;
    for pod in others
        .items
        .iter()
        .filter(|p| p.name_any() != config.identity)
    {
        let unlabel = json!({"metadata": {"labels": {LEADER_LABEL: null}}});
        pods.patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&unlabel),
        )
        .await?;
    }
    let label = json!({"metadata": {"labels": {LEADER_LABEL: "true"}}});
    pods.patch(
        &config.identity,
        &PatchParams::default(),
        &Patch::Merge(&label),
    )
    .await?;
    Ok(())
}
