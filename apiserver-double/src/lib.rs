//! An in-process **test double** of the Kubernetes API server, for Weir's operator tests.
//!
//! This is not Kubernetes. It is a small HTTP server that speaks enough of the API
//! server's REST protocol, with enough of its semantics, that a real `kube::Client`
//! (`Api`, `watcher`, `Controller`, server-side apply, Leases, discovery) and the real
//! `kubectl` (`get`, `apply`, `apply --server-side`, `delete`) behave against it as they
//! do against a cluster. It runs on the caller's tokio runtime, serves plain HTTP on
//! `127.0.0.1` and forgets everything when stopped.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::api::{Api, PostParams};
//! use weir_apiserver_double::ApiServer;
//!
//! let server = ApiServer::start().await;
//! let configmaps: Api<ConfigMap> = Api::default_namespaced(server.client());
//! let mut cm = ConfigMap::default();
//! cm.metadata.name = Some("settings".into());
//! configmaps.create(&PostParams::default(), &cm).await?;
//! assert_eq!(server.objects("", "configmaps").len(), 1);
//! server.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! # What it implements
//!
//! - **Resources**: core `v1` namespaces, nodes, persistentvolumes (cluster-scoped),
//!   configmaps, secrets, services, serviceaccounts, pods, persistentvolumeclaims, events,
//!   endpoints; `apps/v1` statefulsets, deployments, replicasets; `policy/v1`
//!   poddisruptionbudgets; `coordination.k8s.io/v1` leases; `events.k8s.io/v1` events;
//!   `discovery.k8s.io/v1` endpointslices; `rbac.authorization.k8s.io/v1` roles,
//!   rolebindings, clusterroles, clusterrolebindings; `apiextensions.k8s.io/v1`
//!   customresourcedefinitions. Storing a CRD registers its resource (group, served
//!   versions, kind, plural, singular, scope, status subresource, short names,
//!   categories) and marks it `Established`; deleting it unregisters the resource and
//!   removes its objects. [`ApiServer::register`] adds a resource from Rust.
//! - **Discovery**: `/version`, `/api`, `/apis`, `/apis/{group}`, `/api/v1`,
//!   `/apis/{group}/{version}`, in the legacy form and as aggregated discovery
//!   (`apidiscovery.k8s.io/v2`) when `Accept` asks for it.
//! - **Verbs**: get, list (label and field selectors, across namespaces), watch, create
//!   (`generateName`), update, patch, delete (`propagationPolicy`, `preconditions`),
//!   deletecollection; `/status` get/update/patch; `dryRun=All` on writes;
//!   metadata-only responses (`PartialObjectMetadata`) when `Accept` asks for them.
//! - **Semantics** of a real server where controllers depend on them: a global
//!   `resourceVersion` counter and optimistic concurrency (409 `Conflict`), `generation`,
//!   the status subresource split, no-op updates that write nothing, finalizers and
//!   `deletionTimestamp`, owner-reference garbage collection (also of objects written
//!   with owners that do not exist, or live in another namespace), namespace termination,
//!   server-side apply with per-manager field ownership, conflicts and removal of fields
//!   a manager stops applying, watch replay from a version and 410 `Expired` when it is
//!   too old, bookmarks, `sendInitialEvents`. Errors are `Status` objects with the real
//!   reasons and codes. Module docs say how each is done.
//! - **Workload controllers**, opt-in ([`Controllers::start`]): the StatefulSet controller
//!   (pods `<set>-<ordinal>`, claims from `volumeClaimTemplates`, `OrderedReady`/`Parallel`,
//!   `OnDelete`/`RollingUpdate` with `partition`, claim retention, status with
//!   `currentRevision`/`updateRevision`) and a minimal Deployment controller. They are
//!   clients of the server like the code under test; see the [`controllers`] module.
//! - **Test hooks**: inspect objects ([`ApiServer::objects`], [`ApiServer::object`]),
//!   inject failures ([`ApiServer::fail_next`]), compact the history to force 410s
//!   ([`ApiServer::compact`]), see the requests served ([`ApiServer::requests`]).
//!
//! # What it approximates
//!
//! - Strategic merge patch and server-side apply know list semantics from a table of
//!   well-known keyed lists for built-in types (`containers` by `name`, ...), not from the
//!   OpenAPI schemas; custom resources use their CRD schema's `x-kubernetes-list-type`.
//!   See the `shape` and `apply` module docs.
//! - Field ownership (`managedFields`) follows the real rules for apply and update
//!   operations (including clients replacing the list) but is computed without schemas.
//! - Garbage collection, namespace termination and CRD cleanup happen synchronously
//!   during the DELETE (or the update removing the last finalizer); `Foreground`
//!   propagation behaves as `Background`.
//! - Custom resources get their schema's `default`s but are neither validated against
//!   the schema nor pruned of unknown fields. Built-in objects are not validated beyond
//!   names, namespaces and `apiVersion`/`kind`, and get no defaults (no `protocol: TCP`,
//!   no `imagePullPolicy`).
//! - Field selectors accept any dotted path. `limit`/`continue` are ignored: lists are
//!   always complete. List `resourceVersion`/`resourceVersionMatch` are ignored: lists
//!   are always current.
//!
//! # What it does not do
//!
//! No TLS, no authentication or authorization, no admission (webhooks, quotas, limit
//! ranges), no validation of built-in types, no protobuf or `Table` output (always JSON;
//! protobuf *request* bodies are decoded only for the Namespace, ConfigMap, Secret and
//! ServiceAccount that `kubectl create namespace|configmap|secret|serviceaccount` send),
//! no other subresources (`scale`, `log`, `exec`, `eviction`, `binding`), no OpenAPI
//! schemas (`/openapi/v3` only tells kubectl that the server validates fields, which it
//! then does not; `/openapi/v2` is 404), no API aggregation, no conversion webhooks (all
//! versions of a CRD share the objects, differing only in `apiVersion`), no controllers
//! beyond the optional ones below (no endpoints, no service accounts or tokens, no
//! ReplicaSets). Persist nothing.
//!
//! # Optional simulators
//!
//! [`Controllers`] runs the StatefulSet and Deployment controllers (Deployments own their
//! pods directly, without ReplicaSets; no ControllerRevisions or PersistentVolumes).
//! [`Kubelet`] is a node that runs pods whose image is mapped to a local executable as
//! real processes (volumes as directories, container ports and cluster DNS names as
//! loopback ports, ClusterIP Services as TCP proxies, probes, restarts, status, graceful
//! termination). Both are beside the server, not part of it: nothing runs pods unless a
//! test starts a [`Kubelet`], and without one a bound pod being deleted stays
//! terminating. The kubelet runs one container per pod (no init containers or sidecars),
//! with no isolation (mount paths and addresses are rewritten in what the container is
//! given, not enforced), no resource limits or security contexts, no exec/attach/logs
//! subresources, no `exec` or `grpc` probes, and short probe periods and restart
//! backoffs. Both talk to the server through a [`kube::Client`] from
//! [`ApiServer::client`], so they go through the same code paths as the code under test.
//! Pods bound to a node are deleted gracefully, as on a real server: a DELETE sets
//! `deletionTimestamp` = now + grace and `deletionGracePeriodSeconds` (from the
//! DeleteOptions' `gracePeriodSeconds`, else the pod's `terminationGracePeriodSeconds`,
//! else 30), and the pod stays until a DELETE with grace 0, which its kubelet sends once
//! the containers have stopped; a later DELETE may only shorten the grace (see the `gc`
//! module docs).
//!
//! Watch streams and request handling run on the runtime `start` was called on; with a
//! paused tokio clock their timeouts elapse whenever that runtime is idle, and kube's
//! client timeouts misbehave with paused time anyway, so tests using the double should
//! keep the clock running.

mod apply;
pub mod controllers;
mod discovery;
mod faults;
mod fields;
mod gc;
mod http;
mod kubeconfig;
pub mod kubelet;
mod managed;
mod meta;
mod openapi;
mod patch;
mod protobuf;
mod registry;
mod schema;
mod selector;
mod shape;
mod status;
mod store;
mod watch;
mod write;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use controllers::Controllers;
pub use faults::{Fault, Verb};
pub use http::RecordedRequest;
pub use kubelet::{Kubelet, KubeletOptions};
pub use registry::{ResourceType, Scope};

use crate::http::Shared;
use crate::registry::ResourceKey;
use crate::store::State;

/// Tunables of a server; [`Options::default`] suits most tests.
#[derive(Debug, Clone)]
pub struct Options {
    history_limit: usize,
    watch_buffer: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            history_limit: 10_000,
            watch_buffer: 16_384,
        }
    }
}

impl Options {
    /// How many events the watch history keeps (watches resuming from a version older
    /// than the oldest kept event get 410 Gone). At least 1.
    pub fn history_limit(mut self, events: usize) -> Options {
        self.history_limit = events;
        self
    }

    /// How many events a watch may fall behind before it is ended with 410 Gone.
    pub fn watch_buffer(mut self, events: usize) -> Options {
        self.watch_buffer = events;
        self
    }
}

/// A running API server double. Stops when dropped (or with [`ApiServer::stop`]).
#[derive(Debug)]
pub struct ApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Starts a server on `127.0.0.1` with an ephemeral port.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound.
    pub async fn start() -> ApiServer {
        ApiServer::start_with(Options::default()).await
    }

    /// [`ApiServer::start`] with options.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound.
    pub async fn start_with(options: Options) -> ApiServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0 for the API server double");
        ApiServer::start_on(listener, options)
            .expect("reading the local address of a bound listener")
    }

    /// Serves on an already bound listener (plain HTTP).
    pub fn start_on(listener: TcpListener, options: Options) -> io::Result<ApiServer> {
        let addr = listener.local_addr()?;
        let state = State::new(options.history_limit, options.watch_buffer);
        let shared = Arc::new(Shared::new(state, addr.to_string()));
        let app = http::router(shared.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                // A dropped sender also stops the server.
                let _ = stopped.await;
            });
            if let Err(err) = serve.await {
                tracing::warn!(error = %err, "API server double stopped with an error");
            }
        });
        tracing::debug!(%addr, "API server double listening");
        Ok(ApiServer {
            shared,
            addr,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A `kube::Config` for this server, default namespace `default`.
    pub fn config(&self) -> kube::Config {
        let uri = self
            .url()
            .parse()
            .expect("http://127.0.0.1:PORT is a valid URI");
        kube::Config::new(uri)
    }

    /// A real `kube::Client` talking to this server.
    ///
    /// # Panics
    ///
    /// If kube cannot build its HTTP stack (it does not for a plain-HTTP URL).
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config())
            .expect("building a kube client for the API server double")
    }

    /// Writes a kubeconfig for kubectl and `kube::Config::infer` (via `KUBECONFIG`):
    /// cluster `server` = [`ApiServer::url`], no credentials, namespace `default`.
    pub fn write_kubeconfig(&self, path: &Path) -> io::Result<()> {
        kubeconfig::write(&self.url(), path)
    }

    /// Stops serving: ends every watch stream and waits (up to five seconds) for open
    /// connections to finish.
    pub async fn stop(mut self) {
        self.signal_stop();
        if let Some(task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
        {
            tracing::warn!("API server double did not stop within five seconds");
        }
    }

    fn signal_stop(&mut self) {
        self.shared.end_watches();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Every stored object of a resource (`group` `""` for core), across namespaces,
    /// ordered by namespace and name, as stored (`apiVersion` as last written).
    pub fn objects(&self, group: &str, plural: &str) -> Vec<Value> {
        self.shared
            .lock()
            .list(&ResourceKey::new(group, plural), None)
            .cloned()
            .collect()
    }

    /// One stored object (`namespace` `None` for cluster-scoped resources).
    pub fn object(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let key = (namespace.unwrap_or_default().to_owned(), name.to_owned());
        self.shared
            .lock()
            .get(&ResourceKey::new(group, plural), &key)
            .cloned()
    }

    /// Serves a resource from now on (replacing one with the same group and plural),
    /// as if a CRD declaring it had been created, without the CRD object.
    pub fn register(&self, resource: ResourceType) {
        self.shared.lock().registry.register(resource);
    }

    /// Makes the next matching request(s) fail; see [`Fault`].
    pub fn fail_next(&self, fault: Fault) {
        self.shared.lock().add_fault(fault);
    }

    /// Removes every injected fault that is not used up yet.
    pub fn clear_faults(&self) {
        self.shared.lock().clear_faults();
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv()
    }

    /// Forgets the watch history and ends every open watch, as an etcd compaction with a
    /// restart of the watch cache would: clients resuming from any earlier
    /// resourceVersion get 410 Gone (`Expired`) and must list again.
    pub fn compact(&self) {
        self.shared.lock().compact();
        self.shared.end_watches();
    }

    /// The requests served so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// Forgets the requests served so far.
    pub fn clear_requests(&self) {
        self.shared.clear_requests();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.signal_stop();
    }
}
