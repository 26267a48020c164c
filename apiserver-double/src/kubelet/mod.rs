//! A kubelet simulator: one node, `kubelet-sim`, that runs pods as real processes on
//! this machine, so an operator's tests can run the workloads it creates.
//!
//! It talks to the API server double only through a [`kube::Client`], as a kubelet
//! talks to the API server. It binds a pod whose first container's image it knows
//! ([`KubeletOptions::image`]: image prefix → executable) by setting `spec.nodeName`, runs
//! that container as a process ([`pod`] has the lifecycle: volumes, environment, probes,
//! restarts, graceful termination) and reports the pod's status. Pods with other images
//! stay `Pending`. Only the first container of a pod runs; init containers, resources,
//! security contexts and image pulls are ignored.
//!
//! Networking and the filesystem are stand-ins ([`network`]): every container port is a
//! port on 127.0.0.1, Services are TCP proxies on 127.0.0.1, and a container sees these
//! addresses — and its volumes' directories for its mount paths — because the kubelet
//! rewrites them in the container's arguments, environment and mounted config files.
//! Instead of service-account credentials every container gets `KUBECONFIG` pointing at
//! a kubeconfig for the double.
//!
//! Timings are shortened for tests: probes run at most a second apart, and a crashed
//! container restarts after [`KubeletOptions::restart_backoff`] (1 s doubling to 10 s by
//! default; Kubernetes uses 10 s to 5 min).

mod network;
mod pod;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt as _};
use serde_json::json;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::ApiServer;
use network::Network;
use pod::Control;

/// The node name pods are bound to.
pub const NODE_NAME: &str = "kubelet-sim";

/// How a [`Kubelet`] runs pods.
#[derive(Clone, Debug)]
pub struct KubeletOptions {
    root: PathBuf,
    images: Vec<(String, PathBuf)>,
    backoff: (Duration, Duration),
    env: Vec<(String, String)>,
}

impl KubeletOptions {
    /// Pod directories, volumes, logs and the kubeconfig go under `root`.
    pub fn new(root: impl Into<PathBuf>) -> KubeletOptions {
        KubeletOptions {
            root: root.into(),
            images: Vec::new(),
            backoff: (Duration::from_secs(1), Duration::from_secs(10)),
            env: Vec::new(),
        }
    }

    /// Runs containers whose image starts with `image_prefix` as `executable` (with the
    /// container's `args`; a `command` replaces the entrypoint only in name: its first
    /// element is dropped and the rest go before `args`).
    pub fn image(
        mut self,
        image_prefix: impl Into<String>,
        executable: impl Into<PathBuf>,
    ) -> Self {
        self.images.push((image_prefix.into(), executable.into()));
        self
    }

    /// The delay before restarting a container that exited, doubling up to `max`.
    pub fn restart_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = (initial, max);
        self
    }

    /// Extra environment for every container (the pod's own `env` wins).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    fn executable(&self, image: &str) -> Option<&Path> {
        self.images
            .iter()
            .find(|(prefix, _)| image.starts_with(prefix.as_str()))
            .map(|(_, exe)| exe.as_path())
    }
}

/// A running pod: its supervisor task and process.
struct Handle {
    namespace: String,
    name: String,
    control: mpsc::UnboundedSender<Control>,
    pid: Arc<AtomicU32>,
    terminating: bool,
    task: JoinHandle<()>,
}

pub(crate) struct Shared {
    client: Client,
    options: KubeletOptions,
    network: Network,
    kubeconfig: PathBuf,
    /// Running pods by uid.
    pods: Mutex<HashMap<String, Handle>>,
    /// One process per pod name at a time: a recreated pod waits for the old one's.
    names: Mutex<HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>>,
}

impl Shared {
    fn name_lock(&self, namespace: &str, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        names
            .entry((namespace.to_owned(), name.to_owned()))
            .or_default()
            .clone()
    }

    fn handles(&self) -> std::sync::MutexGuard<'_, HashMap<String, Handle>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The simulated node. Kills every process it started when dropped.
pub struct Kubelet {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet")
            .field("root", &self.shared.options.root)
            .finish_non_exhaustive()
    }
}

impl Kubelet {
    /// Registers node `kubelet-sim` and starts running pods.
    pub async fn start(server: &ApiServer, options: KubeletOptions) -> std::io::Result<Kubelet> {
        std::fs::create_dir_all(&options.root)?;
        let kubeconfig = options.root.join("kubeconfig");
        server.write_kubeconfig(&kubeconfig)?;
        let client = server.client();
        let nodes: Api<Node> = Api::all(client.clone());
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": NODE_NAME, "labels": {"kubernetes.io/hostname": NODE_NAME}},
        }))
        .map_err(std::io::Error::other)?;
        if let Err(e) = nodes.create(&PostParams::default(), &node).await {
            tracing::debug!(error = %e, "creating the Node");
        }
        let shared = Arc::new(Shared {
            client: client.clone(),
            options,
            network: Network::default(),
            kubeconfig,
            pods: Mutex::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
        });
        let changed = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        for kind in ["pods", "services", "pvcs"] {
            let changed = changed.clone();
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let notify = || changed.notify_one();
                match kind {
                    "pods" => watch_all::<Pod>(client, notify).await,
                    "services" => watch_all::<Service>(client, notify).await,
                    _ => watch_all::<PersistentVolumeClaim>(client, notify).await,
                }
            }));
        }
        let looping = shared.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                if let Err(e) = sync(&looping).await {
                    tracing::debug!(error = %e, "kubelet pass failed; retrying");
                }
                let _ = tokio::time::timeout(Duration::from_millis(500), changed.notified()).await;
            }
        }));
        Ok(Kubelet { shared, tasks })
    }

    /// The loopback address standing in for `pod:container_port`, once the pod ran here
    /// or was named by an address in a container's configuration.
    pub fn pod_address(
        &self,
        namespace: &str,
        pod: &str,
        container_port: u16,
    ) -> Option<SocketAddr> {
        self.shared
            .network
            .known_pod_address(namespace, pod, container_port)
    }

    /// The loopback address standing in for Service `service:port`.
    pub fn service_address(&self, namespace: &str, service: &str, port: u16) -> SocketAddr {
        self.shared
            .network
            .service_address(namespace, service, port)
    }

    /// `text` with cluster DNS names rewritten to the loopback addresses standing in for
    /// them, as containers see them (a `bootstrapServers` status value, say).
    pub fn resolve(&self, namespace: &str, text: &str) -> String {
        self.shared.network.rewrite(namespace, None, &[], text)
    }

    /// SIGKILLs the pod's process, as a crash would; the container restarts per its
    /// `restartPolicy`. False if no process of that pod runs.
    pub fn kill(&self, namespace: &str, pod: &str) -> bool {
        let handles = self.shared.handles();
        handles
            .values()
            .filter(|h| h.namespace == namespace && h.name == pod && !h.terminating)
            .any(|h| h.pid.load(Ordering::Acquire) != 0 && h.control.send(Control::Crash).is_ok())
    }

    /// The pod's log: every run's stdout and stderr, appended.
    pub fn log_path(&self, namespace: &str, pod: &str) -> PathBuf {
        pod::log_path(&self.shared.options.root, namespace, pod)
    }

    /// The directory backing a PersistentVolumeClaim (removed with the claim).
    pub fn volume_dir(&self, namespace: &str, claim: &str) -> PathBuf {
        pod::volume_dir(&self.shared.options.root, namespace, claim)
    }

    /// SIGTERMs every process, gives them ten seconds, SIGKILLs the rest.
    pub async fn stop(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        let pids: Vec<Arc<AtomicU32>> = {
            let mut handles = self.shared.handles();
            handles
                .drain()
                .map(|(_, h)| {
                    h.task.abort();
                    h.pid
                })
                .collect()
        };
        for pid in &pids {
            pod::signal(
                pid.load(Ordering::Acquire),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline
            && pids.iter().any(|p| pod::alive(p.load(Ordering::Acquire)))
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for pid in &pids {
            pod::signal(
                pid.load(Ordering::Acquire),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for (_, handle) in self.shared.handles().drain() {
            handle.task.abort();
            pod::signal(
                handle.pid.load(Ordering::Acquire),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

async fn watch_all<K>(client: Client, notify: impl Fn())
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let mut events = watcher(Api::<K>::all(client), watcher::Config::default()).boxed();
    while let Some(event) = events.next().await {
        if event.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        notify();
    }
}

/// One pass: bind and start new pods, terminate deleted ones, refresh the proxies'
/// view, remove deleted claims' directories.
async fn sync(shared: &Arc<Shared>) -> kube::Result<()> {
    let client = &shared.client;
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let services = Api::<Service>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let claims = Api::<PersistentVolumeClaim>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    {
        let mut snapshot = shared
            .network
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        snapshot.pods = pods.clone();
        snapshot.services = services;
    }
    let live: std::collections::HashSet<String> = pods.iter().filter_map(|p| p.uid()).collect();
    // Pods gone from the API: kill their processes.
    {
        let mut handles = shared.handles();
        handles.retain(|uid, handle| {
            if live.contains(uid) {
                return !handle.task.is_finished();
            }
            let _ = handle.control.send(Control::Gone);
            false
        });
    }
    for p in &pods {
        let namespace = p.namespace().unwrap_or_default();
        let name = p.name_any();
        let uid = p.uid().unwrap_or_default();
        let spec = p.spec.as_ref();
        let node = spec.and_then(|s| s.node_name.as_deref());
        let image = spec
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        match node {
            None if p.metadata.deletion_timestamp.is_none() => {
                if shared.options.executable(&image).is_some() {
                    let bind = json!({"spec": {"nodeName": NODE_NAME}});
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&bind))
                        .await?;
                } else if p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Pending") {
                    let pending = json!({"status": {"phase": "Pending", "conditions": [{
                        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": format!("the kubelet simulator runs no image {image:?}"),
                    }]}});
                    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&pending))
                        .await?;
                }
            }
            Some(NODE_NAME) => {
                let deleting = p.metadata.deletion_timestamp.is_some();
                let delete_now = {
                    let mut handles = shared.handles();
                    match handles.get_mut(&uid) {
                        Some(handle) if deleting && !handle.terminating => {
                            handle.terminating = true;
                            let grace = p.metadata.deletion_grace_period_seconds.unwrap_or(30);
                            let grace = Duration::from_secs(u64::try_from(grace).unwrap_or(0));
                            let _ = handle.control.send(Control::Terminate(grace));
                            false
                        }
                        Some(_) => false,
                        None if deleting => true,
                        None => {
                            let (control, receiver) = mpsc::unbounded_channel();
                            let pid = Arc::new(AtomicU32::new(0));
                            let task = tokio::spawn(pod::supervise(
                                shared.clone(),
                                p.clone(),
                                receiver,
                                pid.clone(),
                            ));
                            handles.insert(
                                uid,
                                Handle {
                                    namespace,
                                    name: name.clone(),
                                    control,
                                    pid,
                                    terminating: false,
                                    task,
                                },
                            );
                            false
                        }
                    }
                };
                if delete_now {
                    let now = DeleteParams {
                        grace_period_seconds: Some(0),
                        ..DeleteParams::default()
                    };
                    let _ = api.delete(&name, &now).await;
                }
            }
            _ => {}
        }
    }
    // Volumes of deleted claims go.
    let volumes = shared.options.root.join("volumes");
    if let Ok(namespaces) = std::fs::read_dir(&volumes) {
        for ns in namespaces.flatten() {
            let namespace = ns.file_name().to_string_lossy().into_owned();
            for dir in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                let claim = dir.file_name().to_string_lossy().into_owned();
                let exists = claims.iter().any(|c| {
                    c.namespace().as_deref() == Some(namespace.as_str()) && c.name_any() == claim
                });
                if !exists {
                    let _ = std::fs::remove_dir_all(dir.path());
                }
            }
        }
    }
    Ok(())
}
