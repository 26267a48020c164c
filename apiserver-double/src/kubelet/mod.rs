//! A **kubelet simulator**: runs the pods of an [`ApiServer`] double as local processes,
//! so end-to-end tests can run the real operator and real brokers on one machine.
//!
//! It is one node, `kubelet-sim` (a Node object of that name is created), and it is also
//! the scheduler: pods with no `spec.nodeName` whose first container's image starts with
//! a prefix given to [`KubeletOptions::image`] are bound to it (a patch of `spec.nodeName`:
//! the double has no `binding` subresource) and run as that executable. Other unbound pods
//! stay Pending with `PodScheduled=False` naming the image. Everything goes through a
//! [`kube::Client`] of the double, as a real kubelet goes through the API server.
//!
//! # What a pod gets
//!
//! - **One container**: the first of `spec.containers` (init containers and sidecars are
//!   ignored). The process is the mapped executable with `command[1..]` (when `command`
//!   is given, `command[0]` stands for the image's entrypoint, which the executable
//!   replaces) followed by `args`; `$(VAR)` references are expanded as Kubernetes does.
//!   Its working directory and `HOME` are the pod directory, its stdout and stderr are
//!   appended to [`Kubelet::log_path`].
//! - **Environment**: only what a container would see, none of the test process's own:
//!   `env` (`value`, `fieldRef`, `configMapKeyRef`, `secretKeyRef`) and `envFrom`, then
//!   `HOSTNAME`, `HOME`, `PATH` (the test process's, to find tools), `KUBECONFIG` (a
//!   kubeconfig for the double, standing in for the service-account credentials that
//!   in-cluster clients would use; there is no token), and last the options' extra
//!   variables. No `*_SERVICE_HOST` variables, no `resourceFieldRef`.
//! - **Volumes**, as directories under the root: `persistentVolumeClaim` →
//!   [`Kubelet::volume_dir`], which outlives the pod and is removed when the claim is
//!   deleted (the pod waits, Pending, while the claim does not exist); `configMap` and
//!   `secret` → their keys as files (`items` respected), written afresh at every
//!   container start (a restarted container sees updates; no live refresh); `emptyDir` →
//!   a directory removed with the pod; `hostPath` → the path itself. Other volume types
//!   keep the pod Pending.
//! - **Stand-in namespaces**: there is no mount or network namespace, so the kubelet
//!   rewrites what the container is given (command, args, env values, configMap and
//!   secret file contents). Mount paths, as path prefixes, become the host directories.
//!   Each declared container port gets its own port on `127.0.0.1`; `0.0.0.0:<port>`,
//!   `[::]:<port>`, `:::<port>`, `localhost:<port>` and `127.0.0.1:<port>` become that
//!   host port; `<hostname>.<subdomain>.<ns>.svc[.cluster.local]:<port>` becomes the
//!   named pod's host port; `<svc>.<ns>.svc[.cluster.local]:<port>`, `<svc>.<ns>:<port>`
//!   and (in the pod's namespace) `<svc>:<port>` become the Service's proxy address.
//!   Names without a port, or of pods, Services or ports the kubelet does not know, are
//!   left alone. Host ports are allocated when a pod is first seen and kept for the pod
//!   *name*, so a recreated StatefulSet pod keeps its address, as it keeps its DNS name.
//!   The `rewrite` and `network` module docs give the details.
//! - **Services**: each Service with a selector and a cluster IP (not headless, not
//!   `ExternalName`) gets a TCP proxy on `127.0.0.1` per port when first seen, forwarding
//!   each connection to the next Ready pod of the kubelet matching the selector (round
//!   robin); with none Ready the connection is closed.
//! - **Lifecycle**: status (phase, conditions, container state, restart count) written
//!   only on change; startup, readiness and liveness probes (`httpGet`, `tcpSocket`);
//!   restarts per `restartPolicy` with backoff; graceful termination of deleted pods
//!   (SIGTERM, SIGKILL after `deletionGracePeriodSeconds`, then the final grace-0 DELETE);
//!   SIGKILL at once for a pod object that disappears. The `pod` and `probes` module docs
//!   give the details.
//!
//! # Approximations
//!
//! Probe periods, initial delays and timeouts are capped at one second and restart
//! backoff is short (see [`KubeletOptions::restart_backoff`]), so tests run quickly;
//! `exec` and `grpc` probes are not simulated (they fail). Pod DNS records exist whether
//! or not the headless Service does, and a headless Service's own name resolves to
//! nothing. Host ports come from 20000–32767, below the kernel's ephemeral range, and
//! nothing holds them while a pod is not listening: another process binding one
//! explicitly in that window would collide. No resource limits, no security contexts,
//! no image pulls, no exec/attach/logs API, no service environment variables. Processes
//! of a pod run as the test's user and see the whole file system.

mod env;
mod network;
mod pod;
mod probes;
mod rewrite;
mod runtime;
mod status;
mod volumes;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::ApiServer;
use network::Network;
use pod::{Command, Worker};

/// The node every pod of the simulator runs on.
pub const NODE_NAME: &str = "kubelet-sim";
/// How long [`Kubelet::stop`] lets processes exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// `(namespace, name)` of a namespaced object.
pub(crate) type ObjectKey = (String, String);

/// How a [`Kubelet`] runs pods.
#[derive(Debug, Clone)]
pub struct KubeletOptions {
    root: PathBuf,
    images: Vec<(String, PathBuf)>,
    backoff_initial: Duration,
    backoff_max: Duration,
    env: Vec<(String, String)>,
}

impl KubeletOptions {
    /// Where pod directories, volumes, logs and the kubeconfig go (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> KubeletOptions {
        KubeletOptions {
            root: root.into(),
            images: Vec::new(),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(10),
            env: Vec::new(),
        }
    }

    /// Runs containers whose `image` starts with `image_prefix` (e.g.
    /// `ghcr.io/weir/weir-broker`, matching any tag or digest after it) as this
    /// executable. Several calls add several images; the longest matching prefix wins.
    pub fn image(
        mut self,
        image_prefix: impl Into<String>,
        executable: impl Into<PathBuf>,
    ) -> KubeletOptions {
        self.images.push((image_prefix.into(), executable.into()));
        self.images
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        self
    }

    /// The restart backoff after a container exits: `initial`, doubling up to `max`, and
    /// back to `initial` once a container has run for ten seconds (default 1 s → 10 s;
    /// Kubernetes uses 10 s → 5 min, too slow for tests).
    pub fn restart_backoff(mut self, initial: Duration, max: Duration) -> KubeletOptions {
        self.backoff_initial = initial;
        self.backoff_max = max.max(initial);
        self
    }

    /// An extra environment variable for every container (e.g. `RUST_LOG`); it overrides
    /// the container's own.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> KubeletOptions {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The executable for `image`, if a prefix matches.
    fn executable(&self, image: &str) -> Option<&Path> {
        self.images
            .iter()
            .find(|(prefix, _)| image.starts_with(prefix.as_str()))
            .map(|(_, exe)| exe.as_path())
    }
}

/// What the pod watcher, the workers and the public methods share.
pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) options: KubeletOptions,
    pub(crate) kubeconfig: PathBuf,
    /// Host ports, DNS records, Service proxies and endpoints.
    pub(crate) network: Arc<Mutex<Network>>,
    /// The PersistentVolumeClaims that exist; pods waiting for one watch it.
    pub(crate) claims: watch::Sender<BTreeSet<ObjectKey>>,
    workers: Mutex<HashMap<ObjectKey, WorkerHandle>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `kube::Client` is not Debug.
        f.debug_struct("Inner")
            .field("options", &self.options)
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

/// The dispatcher's side of one pod name's worker.
#[derive(Debug)]
struct WorkerHandle {
    objects: watch::Sender<Option<Arc<Pod>>>,
    commands: mpsc::UnboundedSender<Command>,
    running: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Inner {
    pub(crate) fn network(&self) -> MutexGuard<'_, Network> {
        self.network.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn workers(&self) -> MutexGuard<'_, HashMap<ObjectKey, WorkerHandle>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn pod_dir(&self, key: &ObjectKey) -> PathBuf {
        self.options.root.join("pods").join(&key.0).join(&key.1)
    }

    pub(crate) fn log_path(&self, key: &ObjectKey) -> PathBuf {
        self.options
            .root
            .join("logs")
            .join(&key.0)
            .join(format!("{}.log", key.1))
    }

    pub(crate) fn claim_dir(&self, namespace: &str, claim: &str) -> PathBuf {
        self.options
            .root
            .join("volumes")
            .join(namespace)
            .join(claim)
    }

    /// Whether this kubelet runs (or would bind and run) `pod`.
    fn runs(&self, pod: &Pod) -> bool {
        match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            Some(node) if !node.is_empty() => node == NODE_NAME,
            _ => pod::image(pod).is_some_and(|i| self.options.executable(i).is_some()),
        }
    }

    /// A pod was added or changed: hand it to its worker (started if new) unless it is
    /// another node's.
    fn pod_seen(self: &Arc<Self>, pod: Pod) {
        let key = (pod.namespace().unwrap_or_default(), pod.name_any());
        let unbound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_none_or(str::is_empty);
        if self.runs(&pod) {
            self.network().pod_seen(&key, &pod);
        }
        let mut workers = self.workers();
        if let Some(worker) = workers.get(&key) {
            worker.objects.send_replace(Some(Arc::new(pod)));
            return;
        }
        if !unbound && !self.runs(&pod) {
            return;
        }
        let (objects, objects_rx) = watch::channel(Some(Arc::new(pod)));
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let running = Arc::new(AtomicBool::new(false));
        let worker = Worker::new(
            self.clone(),
            key.clone(),
            objects_rx,
            commands_rx,
            running.clone(),
        );
        let task = tokio::spawn(worker.run());
        workers.insert(
            key,
            WorkerHandle {
                objects,
                commands,
                running,
                task,
            },
        );
    }

    /// A pod object is gone (unless a newer one of the same name replaced it already).
    fn pod_gone(&self, key: &ObjectKey, uid: Option<&str>) {
        if let Some(worker) = self.workers().get(key) {
            worker.objects.send_if_modified(|current| {
                let same = match (current.as_ref(), uid) {
                    (Some(pod), Some(uid)) => pod.metadata.uid.as_deref() == Some(uid),
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                if same {
                    *current = None;
                }
                same
            });
        }
    }
}

/// Aborts a task when dropped, so tasks end with the kubelet.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A running kubelet simulator. Dropping it SIGKILLs every container process at once;
/// [`Kubelet::stop`] lets them exit first.
#[derive(Debug)]
pub struct Kubelet {
    inner: Arc<Inner>,
    tasks: Vec<AbortOnDrop>,
}

impl Kubelet {
    /// Starts the node `kubelet-sim` against `server`: creates its Node object, writes the
    /// kubeconfig, and watches Pods, PersistentVolumeClaims and Services.
    pub async fn start(server: &ApiServer, options: KubeletOptions) -> io::Result<Kubelet> {
        for dir in ["pods", "volumes", "logs"] {
            tokio::fs::create_dir_all(options.root.join(dir)).await?;
        }
        let kubeconfig = options.root.join("kubeconfig");
        server.write_kubeconfig(&kubeconfig)?;
        let client = server.client();
        create_node(&client).await?;
        let inner = Arc::new(Inner {
            client,
            options,
            kubeconfig,
            network: Arc::new(Mutex::new(Network::default())),
            claims: watch::Sender::new(BTreeSet::new()),
            workers: Mutex::new(HashMap::new()),
        });
        let tasks = vec![
            AbortOnDrop(tokio::spawn(watch_pods(inner.clone()))),
            AbortOnDrop(tokio::spawn(watch_claims(inner.clone()))),
            AbortOnDrop(tokio::spawn(watch_services(inner.clone()))),
        ];
        tracing::debug!(root = %inner.options.root.display(), "kubelet simulator started");
        Ok(Kubelet { inner, tasks })
    }

    /// The loopback address standing in for `pod:container_port` (`None` if the pod is
    /// not this kubelet's or declares no such port). It stays the same for the pod name.
    pub fn pod_address(
        &self,
        namespace: &str,
        pod: &str,
        container_port: u16,
    ) -> Option<SocketAddr> {
        self.inner
            .network()
            .pod_address(&(namespace.to_owned(), pod.to_owned()), container_port)
    }

    /// The loopback address standing in for Service `service:port` (ClusterIP Services
    /// with a selector; `None` for others).
    pub fn service_address(&self, namespace: &str, service: &str, port: u16) -> Option<SocketAddr> {
        self.inner
            .network()
            .service_address(&(namespace.to_owned(), service.to_owned()), port)
    }

    /// Rewrites `text` as it would be rewritten for a container in `namespace`: cluster
    /// DNS names with ports become loopback addresses. (Local addresses and mount paths
    /// belong to a pod, so they are left alone here.) Tests use it to turn, say, a
    /// `bootstrapServers` status value into something they can dial.
    pub fn resolve(&self, namespace: &str, text: &str) -> String {
        let network = self.inner.network();
        rewrite::Rewriter::new(&network, namespace).rewrite(text)
    }

    /// SIGKILLs the pod's container process, as a crash would; the kubelet restarts it
    /// per `restartPolicy` (restartCount + 1). False if no process of the pod is running.
    pub fn kill(&self, namespace: &str, pod: &str) -> bool {
        let workers = self.inner.workers();
        let Some(worker) = workers.get(&(namespace.to_owned(), pod.to_owned())) else {
            return false;
        };
        worker.running.load(Ordering::SeqCst) && worker.commands.send(Command::Kill).is_ok()
    }

    /// The container log file: stdout and stderr of every run of the pod's container
    /// (and of later pods of the same name), appended.
    pub fn log_path(&self, namespace: &str, pod: &str) -> PathBuf {
        self.inner.log_path(&(namespace.to_owned(), pod.to_owned()))
    }

    /// The directory backing a PersistentVolumeClaim: it exists as long as the claim
    /// object exists, and is removed when the claim is deleted.
    pub fn volume_dir(&self, namespace: &str, claim: &str) -> PathBuf {
        self.inner.claim_dir(namespace, claim)
    }

    /// Stops: SIGTERMs every container process, waits up to ten seconds for them to exit
    /// and SIGKILLs the rest. Pod objects are left as they are.
    pub async fn stop(mut self) {
        self.tasks.clear();
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        // The handles stay alive until their workers end: a worker whose object channel
        // closed would take it for an abrupt end and SIGKILL at once.
        let mut workers: Vec<WorkerHandle> = self
            .inner
            .workers()
            .drain()
            .map(|(_, worker)| worker)
            .collect();
        for worker in &workers {
            let _ = worker.commands.send(Command::Shutdown { deadline });
        }
        for worker in &mut workers {
            // The workers SIGKILL at the deadline; the margin covers reaping.
            if tokio::time::timeout_at(deadline + Duration::from_secs(2), &mut worker.task)
                .await
                .is_err()
            {
                tracing::warn!("a pod worker did not stop in time");
                worker.task.abort();
            }
        }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        // Aborted workers drop their `Child`ren, which kill_on_drop SIGKILLs.
        for (_, worker) in self.inner.workers().drain() {
            worker.task.abort();
        }
        self.inner.network().clear();
    }
}

/// Creates the Node object (once; a second kubelet of the same server reuses it).
async fn create_node(client: &Client) -> io::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": NODE_NAME, "labels": {
            "kubernetes.io/hostname": NODE_NAME,
            "kubernetes.io/os": std::env::consts::OS,
        }},
        "spec": {},
    }))
    .map_err(io::Error::other)?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(err) => return Err(io::Error::other(err)),
    }
    let now = crate::meta::now_rfc3339();
    let status = json!({"status": {
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "the kubelet simulator is running",
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }],
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": NODE_NAME},
        ],
    }});
    nodes
        .patch_status(
            NODE_NAME,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(status),
        )
        .await
        .map_err(io::Error::other)?;
    Ok(())
}

/// Feeds every Pod event to the workers.
async fn watch_pods(inner: Arc<Inner>) {
    let api: Api<Pod> = Api::all(inner.client.clone());
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listed = HashSet::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(pod)) => {
                listed.insert((pod.namespace().unwrap_or_default(), pod.name_any()));
                inner.pod_seen(pod);
            }
            Ok(Event::InitDone) => {
                let known: Vec<ObjectKey> = inner.workers().keys().cloned().collect();
                for key in known.iter().filter(|key| !listed.contains(*key)) {
                    inner.pod_gone(key, None);
                }
            }
            Ok(Event::Apply(pod)) => inner.pod_seen(pod),
            Ok(Event::Delete(pod)) => {
                let key = (pod.namespace().unwrap_or_default(), pod.name_any());
                inner.pod_gone(&key, pod.metadata.uid.as_deref());
            }
            Err(err) => tracing::debug!(error = %err, "kubelet pod watch failed; retrying"),
        }
    }
}

/// Keeps one directory per existing PersistentVolumeClaim.
async fn watch_claims(inner: Arc<Inner>) {
    let api: Api<PersistentVolumeClaim> = Api::all(inner.client.clone());
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listed = BTreeSet::new();
    while let Some(event) = events.next().await {
        let key =
            |pvc: &PersistentVolumeClaim| (pvc.namespace().unwrap_or_default(), pvc.name_any());
        match event {
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(pvc)) => {
                listed.insert(key(&pvc));
                claim_exists(&inner, key(&pvc)).await;
            }
            Ok(Event::InitDone) => {
                let gone: Vec<ObjectKey> = inner
                    .claims
                    .borrow()
                    .iter()
                    .filter(|k| !listed.contains(*k))
                    .cloned()
                    .collect();
                for claim in gone {
                    claim_gone(&inner, &claim).await;
                }
            }
            Ok(Event::Apply(pvc)) => claim_exists(&inner, key(&pvc)).await,
            Ok(Event::Delete(pvc)) => claim_gone(&inner, &key(&pvc)).await,
            Err(err) => tracing::debug!(error = %err, "kubelet claim watch failed; retrying"),
        }
    }
}

async fn claim_exists(inner: &Inner, claim: ObjectKey) {
    if inner.claims.borrow().contains(&claim) {
        return;
    }
    let dir = inner.claim_dir(&claim.0, &claim.1);
    if let Err(err) = tokio::fs::create_dir_all(&dir).await {
        tracing::warn!(dir = %dir.display(), error = %err, "cannot create a claim's directory");
        return;
    }
    inner.claims.send_modify(|claims| {
        claims.insert(claim);
    });
}

async fn claim_gone(inner: &Inner, claim: &ObjectKey) {
    inner.claims.send_modify(|claims| {
        claims.remove(claim);
    });
    let dir = inner.claim_dir(&claim.0, &claim.1);
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => {
            tracing::warn!(dir = %dir.display(), error = %err, "cannot remove a claim's directory")
        }
    }
}

/// Keeps a proxy per ClusterIP Service port.
async fn watch_services(inner: Arc<Inner>) {
    let api: Api<Service> = Api::all(inner.client.clone());
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listed = HashSet::new();
    while let Some(event) = events.next().await {
        let key = |svc: &Service| (svc.namespace().unwrap_or_default(), svc.name_any());
        match event {
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(svc)) => {
                listed.insert(key(&svc));
                network::service_seen(&inner.network, key(&svc), &svc);
            }
            Ok(Event::InitDone) => inner.network().retain_services(|k| listed.contains(k)),
            Ok(Event::Apply(svc)) => network::service_seen(&inner.network, key(&svc), &svc),
            Ok(Event::Delete(svc)) => inner.network().remove_service(&key(&svc)),
            Err(err) => tracing::debug!(error = %err, "kubelet service watch failed; retrying"),
        }
    }
}
