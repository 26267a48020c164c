//! One pod's life on the simulated node: volumes, environment, the process, probes,
//! restarts, status, and termination.
//!
//! - Volumes: a `persistentVolumeClaim` is a directory per claim (`volumes/<ns>/<claim>`)
//!   that outlives pods (the pod waits while the claim does not exist); a `configMap` or
//!   `secret` is written out as files (with `items`) each time the container starts; an
//!   `emptyDir` is per pod.
//! - Environment: `value`, `fieldRef` (name, namespace, uid, labels, annotations,
//!   node name, service account, pod and host IP), `configMapKeyRef`, `secretKeyRef`,
//!   `$(VAR)` expansion in env values, command and args (`$$` escapes), plus `KUBECONFIG`,
//!   `HOME` (the pod's directory), `PATH` and the options' extras; nothing else of the
//!   test process's environment.
//! - Probes (`httpGet`, `tcpSocket`): at most a second apart; startup gates the others;
//!   readiness decides `Ready`; liveness failing `failureThreshold` times kills the
//!   container (SIGKILL), which restarts.
//! - A container that exits is restarted per `restartPolicy` after the backoff.
//! - Graceful deletion: `Ready=False` at once, SIGTERM, SIGKILL after the grace period,
//!   then the pod is deleted for good (grace 0). A pod removed from the API is SIGKILLed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Container, PersistentVolumeClaim, Pod, Probe, Secret};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot};

use super::Shared;
use super::network::named_port;

pub(crate) enum Control {
    /// Graceful deletion with this grace period.
    Terminate(Duration),
    /// The pod is gone from the API.
    Gone,
    /// Kill the process as a crash would.
    Crash,
}

pub(crate) fn log_path(root: &Path, namespace: &str, pod: &str) -> PathBuf {
    root.join("logs").join(namespace).join(format!("{pod}.log"))
}

pub(crate) fn volume_dir(root: &Path, namespace: &str, claim: &str) -> PathBuf {
    root.join("volumes").join(namespace).join(claim)
}

pub(crate) fn signal(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid)
        && pid > 0
    {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

pub(crate) fn alive(pid: u32) -> bool {
    i32::try_from(pid)
        .is_ok_and(|p| p > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok())
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// `$(VAR)` expansion as Kubernetes does it: unknown references stay, `$$` is `$`.
fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(after) = after.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some(value) = vars.get(&inner[..end])
        {
            out.push_str(value);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// What a container sees: mount path → host directory, longest path first.
struct Mounts(Vec<(String, PathBuf)>);

impl Mounts {
    fn rewrite(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (mount, host) in &self.0 {
            let mut result = String::new();
            let mut rest = out.as_str();
            while let Some(i) = rest.find(mount.as_str()) {
                let end = i + mount.len();
                let boundary = rest[end..]
                    .chars()
                    .next()
                    .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.'));
                result.push_str(&rest[..i]);
                if boundary {
                    result.push_str(&host.display().to_string());
                } else {
                    result.push_str(mount);
                }
                rest = &rest[end..];
            }
            result.push_str(rest);
            out = result;
        }
        out
    }
}

struct Run {
    pid: u32,
    exited: oneshot::Receiver<Option<i32>>,
    started_at: String,
}

struct Pod_ {
    shared: Arc<Shared>,
    pod: Pod,
    namespace: String,
    name: String,
    container: Container,
    ports: Vec<u16>,
    api: Api<Pod>,
    last_status: Value,
    restarts: i32,
    ready: bool,
    started: bool,
    last_state: Value,
}

pub(crate) async fn supervise(
    shared: Arc<Shared>,
    pod: Pod,
    mut control: mpsc::UnboundedReceiver<Control>,
    pid: Arc<AtomicU32>,
) {
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let lock = shared.name_lock(&namespace, &name);
    let _one_at_a_time = lock.lock_owned().await;
    let Some(container) = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .cloned()
    else {
        return;
    };
    let ports = container
        .ports
        .iter()
        .flatten()
        .filter_map(|p| u16::try_from(p.container_port).ok())
        .collect();
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &namespace);
    let mut p = Pod_ {
        shared,
        pod,
        namespace,
        name,
        container,
        ports,
        api,
        last_status: Value::Null,
        restarts: 0,
        ready: false,
        started: false,
        last_state: Value::Null,
    };
    let mut backoff = p.shared.options.backoff.0;
    loop {
        let run = loop {
            match p.start().await {
                Ok(Some(run)) => break run,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(pod = %p.name, error = %e, "cannot start the container");
                    p.report_waiting("CreateContainerError").await;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                msg = control.recv() => match msg {
                    Some(Control::Terminate(_)) => return p.finish().await,
                    None | Some(Control::Gone) => return,
                    Some(Control::Crash) => {}
                },
            }
        };
        pid.store(run.pid, Ordering::Release);
        let began = Instant::now();
        let outcome = p.watch(run, &mut control).await;
        pid.store(0, Ordering::Release);
        match outcome {
            Outcome::Terminated => return p.finish().await,
            Outcome::Gone => return,
            Outcome::Exited(code) => {
                let policy = p
                    .pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.restart_policy.clone())
                    .unwrap_or_else(|| "Always".into());
                let restart = policy == "Always" || (policy == "OnFailure" && code != Some(0));
                p.last_state = json!({"terminated": {
                    "exitCode": code.unwrap_or(137),
                    "reason": if code == Some(0) { "Completed" } else { "Error" },
                    "finishedAt": now(),
                }});
                if !restart {
                    let phase = if code == Some(0) {
                        "Succeeded"
                    } else {
                        "Failed"
                    };
                    p.report_finished(phase, code).await;
                    // Wait for deletion.
                    while let Some(msg) = control.recv().await {
                        if let Control::Terminate(_) = msg {
                            return p.finish().await;
                        }
                        if let Control::Gone = msg {
                            return;
                        }
                    }
                    return;
                }
                p.restarts += 1;
                if began.elapsed() > Duration::from_secs(10) {
                    backoff = p.shared.options.backoff.0;
                }
                p.report_waiting("CrashLoopBackOff").await;
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    msg = control.recv() => match msg {
                        Some(Control::Terminate(_)) => return p.finish().await,
                        None | Some(Control::Gone) => return,
                        Some(Control::Crash) => {}
                    },
                }
                backoff = (backoff * 2).min(p.shared.options.backoff.1);
            }
        }
    }
}

enum Outcome {
    Exited(Option<i32>),
    Terminated,
    Gone,
}

struct ProbeState {
    probe: Probe,
    successes: i32,
    failures: i32,
    next: Instant,
}

impl ProbeState {
    fn new(probe: Option<&Probe>) -> Option<ProbeState> {
        let probe = probe?.clone();
        let delay = Duration::from_secs(
            u64::try_from(probe.initial_delay_seconds.unwrap_or(0).min(1)).unwrap_or(0),
        );
        Some(ProbeState {
            probe,
            successes: 0,
            failures: 0,
            next: Instant::now() + delay,
        })
    }

    fn period(&self) -> Duration {
        let secs = self.probe.period_seconds.unwrap_or(10).clamp(1, 1);
        Duration::from_secs(u64::try_from(secs).unwrap_or(1))
    }
}

impl Pod_ {
    fn root(&self) -> &Path {
        &self.shared.options.root
    }

    fn pod_dir(&self) -> PathBuf {
        self.root()
            .join("pods")
            .join(&self.namespace)
            .join(&self.name)
    }

    /// Prepares volumes and starts the process; `None` while a claim is missing.
    async fn start(&mut self) -> anyhow_like::Result<Option<Run>> {
        let image = self.container.image.clone().unwrap_or_default();
        let exe = self
            .shared
            .options
            .executable(&image)
            .ok_or_else(|| format!("no executable for image {image:?}"))?
            .to_owned();
        let Some(mounts) = self.mount().await? else {
            self.report_waiting("ContainerCreating").await;
            return Ok(None);
        };
        let net = &self.shared.network;
        let rewrite = |text: &str| {
            net.rewrite(
                &self.namespace,
                Some(&self.name),
                &self.ports,
                &mounts.rewrite(text),
            )
        };
        let env = self.env().await?;
        let args: Vec<String> = self
            .container
            .command
            .iter()
            .flatten()
            .skip(1)
            .chain(self.container.args.iter().flatten())
            .map(|a| rewrite(&expand(a, &env)))
            .collect();
        let dir = self.pod_dir();
        std::fs::create_dir_all(&dir)?;
        let log = log_path(self.root(), &self.namespace, &self.name);
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let mut command = std::process::Command::new(&exe);
        command
            .args(&args)
            .env_clear()
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        command.env("PATH", std::env::var_os("PATH").unwrap_or_default());
        command.env("HOME", &dir);
        command.env("KUBECONFIG", &self.shared.kubeconfig);
        for (k, v) in &self.shared.options.env {
            command.env(k, v);
        }
        for (k, v) in &env {
            command.env(k, rewrite(v));
        }
        let mut child = command.spawn()?;
        let pid = child.id();
        let (tx, exited) = oneshot::channel();
        std::thread::spawn(move || {
            let code = child.wait().ok().and_then(|s| s.code());
            let _ = tx.send(code);
        });
        let started_at = now();
        self.started = self.container.startup_probe.is_none();
        self.ready = false;
        let run = Run {
            pid,
            exited,
            started_at,
        };
        self.report_running(&run).await;
        Ok(Some(run))
    }

    /// Volume directories by mount path; `None` while a claim does not exist.
    async fn mount(&self) -> anyhow_like::Result<Option<Mounts>> {
        let mut sources = BTreeMap::new();
        let client = &self.shared.client;
        for volume in self
            .pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
        {
            let dir = if let Some(claim) = &volume.persistent_volume_claim {
                let claims: Api<PersistentVolumeClaim> =
                    Api::namespaced(client.clone(), &self.namespace);
                if claims.get_opt(&claim.claim_name).await?.is_none() {
                    return Ok(None);
                }
                volume_dir(self.root(), &self.namespace, &claim.claim_name)
            } else if let Some(source) = &volume.config_map {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), &self.namespace);
                let data = match api.get_opt(&source.name).await? {
                    Some(cm) => cm
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes()))
                        .collect(),
                    None if source.optional == Some(true) => BTreeMap::new(),
                    None => return Ok(None),
                };
                self.write_files(&volume.name, data, source.items.as_deref())?
            } else if let Some(source) = &volume.secret {
                let api: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
                let name = source.secret_name.clone().unwrap_or_default();
                let data = match api.get_opt(&name).await? {
                    Some(secret) => secret
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect(),
                    None if source.optional == Some(true) => BTreeMap::new(),
                    None => return Ok(None),
                };
                self.write_files(&volume.name, data, source.items.as_deref())?
            } else {
                let uid = self.pod.uid().unwrap_or_default();
                self.pod_dir().join("empty").join(uid).join(&volume.name)
            };
            std::fs::create_dir_all(&dir)?;
            sources.insert(volume.name.clone(), dir);
        }
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        for mount in self.container.volume_mounts.iter().flatten() {
            if let Some(dir) = sources.get(&mount.name) {
                let dir = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
                    Some(sub) => dir.join(sub),
                    None => dir.clone(),
                };
                mounts.push((mount.mount_path.trim_end_matches('/').to_owned(), dir));
            }
        }
        mounts.sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));
        let mounts = Mounts(mounts);
        // Mounted config files see the same rewriting as the command line.
        for (_, dir) in &mounts.0 {
            if !dir.starts_with(self.pod_dir().join("files")) {
                continue;
            }
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if let Ok(text) = std::fs::read_to_string(&path) {
                    let rewritten = self.shared.network.rewrite(
                        &self.namespace,
                        Some(&self.name),
                        &self.ports,
                        &mounts.rewrite(&text),
                    );
                    std::fs::write(&path, rewritten)?;
                }
            }
        }
        Ok(Some(mounts))
    }

    fn write_files(
        &self,
        volume: &str,
        data: BTreeMap<String, Vec<u8>>,
        items: Option<&[k8s_openapi::api::core::v1::KeyToPath]>,
    ) -> std::io::Result<PathBuf> {
        let dir = self.pod_dir().join("files").join(volume);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        for (key, bytes) in data {
            let path = match items {
                Some(items) => match items.iter().find(|i| i.key == key) {
                    Some(item) => item.path.clone(),
                    None => continue,
                },
                None => key,
            };
            let file = dir.join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(file, bytes)?;
        }
        Ok(dir)
    }

    async fn env(&self) -> anyhow_like::Result<BTreeMap<String, String>> {
        let mut vars = BTreeMap::new();
        let client = &self.shared.client;
        for var in self.container.env.iter().flatten() {
            let value = if let Some(value) = &var.value {
                expand(value, &vars)
            } else if let Some(from) = &var.value_from {
                if let Some(field) = &from.field_ref {
                    self.field(&field.field_path)
                } else if let Some(key) = &from.config_map_key_ref {
                    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &self.namespace);
                    api.get_opt(&key.name)
                        .await?
                        .and_then(|cm| cm.data?.get(&key.key).cloned())
                        .unwrap_or_default()
                } else if let Some(key) = &from.secret_key_ref {
                    let api: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
                    api.get_opt(&key.name)
                        .await?
                        .and_then(|s| s.data?.get(&key.key).cloned())
                        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                        .unwrap_or_default()
                } else {
                    String::new()
                }
            } else {
                String::new()
            };
            vars.insert(var.name.clone(), value);
        }
        Ok(vars)
    }

    fn field(&self, path: &str) -> String {
        let meta = &self.pod.metadata;
        let spec = self.pod.spec.as_ref();
        let quoted = |p: &str| p.trim_start_matches("['").trim_end_matches("']").to_owned();
        match path {
            "metadata.name" => self.name.clone(),
            "metadata.namespace" => self.namespace.clone(),
            "metadata.uid" => meta.uid.clone().unwrap_or_default(),
            "spec.nodeName" => super::NODE_NAME.to_owned(),
            "spec.serviceAccountName" => spec
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_default(),
            "status.podIP" | "status.hostIP" => "127.0.0.1".to_owned(),
            p if p.starts_with("metadata.labels") => {
                let key = quoted(&p["metadata.labels".len()..]);
                self.pod.labels().get(&key).cloned().unwrap_or_default()
            }
            p if p.starts_with("metadata.annotations") => {
                let key = quoted(&p["metadata.annotations".len()..]);
                self.pod
                    .annotations()
                    .get(&key)
                    .cloned()
                    .unwrap_or_default()
            }
            _ => String::new(),
        }
    }

    /// Runs until the process exits, the pod is deleted or gone; probes meanwhile.
    async fn watch(
        &mut self,
        mut run: Run,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Outcome {
        let mut startup = ProbeState::new(self.container.startup_probe.as_ref());
        let mut readiness = ProbeState::new(self.container.readiness_probe.as_ref());
        let mut liveness = ProbeState::new(self.container.liveness_probe.as_ref());
        if readiness.is_none() && startup.is_none() {
            self.ready = true;
            self.started = true;
            self.report_running_state(&run).await;
        }
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                code = &mut run.exited => return Outcome::Exited(code.ok().flatten()),
                msg = control.recv() => match msg {
                    Some(Control::Terminate(grace)) => {
                        self.ready = false;
                        self.report_running_state(&run).await;
                        signal(run.pid, Signal::SIGTERM);
                        if tokio::time::timeout(grace, &mut run.exited).await.is_err() {
                            signal(run.pid, Signal::SIGKILL);
                            let _ = (&mut run.exited).await;
                        }
                        return Outcome::Terminated;
                    }
                    None | Some(Control::Gone) => {
                        signal(run.pid, Signal::SIGKILL);
                        let _ = (&mut run.exited).await;
                        return Outcome::Gone;
                    }
                    Some(Control::Crash) => signal(run.pid, Signal::SIGKILL),
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    if let Some(probe) = startup.as_mut().filter(|p| !self.started && p.next <= now) {
                        probe.next = now + probe.period();
                        if self.check(&probe.probe).await {
                            self.started = true;
                        } else {
                            probe.failures += 1;
                            if probe.failures >= probe.probe.failure_threshold.unwrap_or(3) {
                                signal(run.pid, Signal::SIGKILL);
                            }
                        }
                    }
                    if !self.started {
                        continue;
                    }
                    if let Some(probe) = readiness.as_mut().filter(|p| p.next <= now) {
                        probe.next = now + probe.period();
                        let ok = self.check(&probe.probe).await;
                        let was = self.ready;
                        if ok {
                            probe.failures = 0;
                            probe.successes += 1;
                            if probe.successes >= probe.probe.success_threshold.unwrap_or(1) {
                                self.ready = true;
                            }
                        } else {
                            probe.successes = 0;
                            probe.failures += 1;
                            if probe.failures >= probe.probe.failure_threshold.unwrap_or(3) || !was {
                                self.ready = false;
                            }
                        }
                        if was != self.ready {
                            self.report_running_state(&run).await;
                        }
                    } else if readiness.is_none() && !self.ready {
                        self.ready = true;
                        self.report_running_state(&run).await;
                    }
                    if let Some(probe) = liveness.as_mut().filter(|p| p.next <= now) {
                        probe.next = now + probe.period();
                        if self.check(&probe.probe).await {
                            probe.failures = 0;
                        } else {
                            probe.failures += 1;
                            if probe.failures >= probe.probe.failure_threshold.unwrap_or(3) {
                                signal(run.pid, Signal::SIGKILL);
                            }
                        }
                    }
                }
            }
        }
    }

    fn probe_address(&self, port: &IntOrString) -> Option<SocketAddr> {
        let port = match port {
            IntOrString::Int(p) => *p,
            IntOrString::String(name) => named_port(&self.pod, name)?,
        };
        let port = u16::try_from(port).ok()?;
        Some(
            self.shared
                .network
                .pod_address(&self.namespace, &self.name, port),
        )
    }

    async fn check(&self, probe: &Probe) -> bool {
        let timeout = Duration::from_secs(
            u64::try_from(probe.timeout_seconds.unwrap_or(1).max(1)).unwrap_or(1),
        );
        let attempt = async {
            if let Some(http) = &probe.http_get {
                let addr = self.probe_address(&http.port)?;
                let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
                let path = http.path.clone().unwrap_or_else(|| "/".into());
                let request =
                    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
                stream.write_all(request.as_bytes()).await.ok()?;
                let mut buf = [0u8; 64];
                let n = stream.read(&mut buf).await.ok()?;
                let line = String::from_utf8_lossy(&buf[..n]).into_owned();
                let code: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some((200..400).contains(&code))
            } else if let Some(tcp) = &probe.tcp_socket {
                let addr = self.probe_address(&tcp.port)?;
                Some(tokio::net::TcpStream::connect(addr).await.is_ok())
            } else {
                // exec and grpc probes are not simulated: they pass.
                Some(true)
            }
        };
        matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)))
    }

    async fn patch_status(&mut self, status: Value) {
        if status == self.last_status {
            return;
        }
        let patch = json!({ "status": status });
        match self
            .api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => self.last_status = status,
            Err(e) => tracing::debug!(pod = %self.name, error = %e, "writing pod status"),
        }
    }

    fn status(&self, state: Value, phase: &str) -> Value {
        let ready = if self.ready { "True" } else { "False" };
        let image = self.container.image.clone().unwrap_or_default();
        json!({
            "phase": phase,
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": ready},
                {"type": "Ready", "status": ready},
            ],
            "containerStatuses": [{
                "name": self.container.name,
                "image": image,
                "imageID": "",
                "ready": self.ready,
                "started": self.started,
                "restartCount": self.restarts,
                "state": state,
                "lastState": self.last_state,
            }],
        })
    }

    async fn report_running(&mut self, run: &Run) {
        self.report_running_state(run).await;
    }

    async fn report_running_state(&mut self, run: &Run) {
        let state = json!({"running": {"startedAt": run.started_at}});
        let mut status = self.status(state, "Running");
        status["containerStatuses"][0]["containerID"] = json!(format!("sim://{}", run.pid));
        if self.last_status.is_null() {
            status["startTime"] = json!(run.started_at);
        } else if let Some(start) = self.last_status.get("startTime") {
            status["startTime"] = start.clone();
        }
        self.patch_status(status).await;
    }

    async fn report_waiting(&mut self, reason: &str) {
        self.ready = false;
        let phase = if self.restarts > 0 {
            "Running"
        } else {
            "Pending"
        };
        let status = self.status(json!({"waiting": {"reason": reason}}), phase);
        self.patch_status(status).await;
    }

    async fn report_finished(&mut self, phase: &str, code: Option<i32>) {
        self.ready = false;
        let state = json!({"terminated": {"exitCode": code.unwrap_or(137), "finishedAt": now()}});
        let status = self.status(state, phase);
        self.patch_status(status).await;
    }

    /// The containers stopped: remove the pod for good.
    async fn finish(self) {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: self.pod.uid().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        if let Err(e) = self.api.delete(&self.name, &params).await {
            tracing::debug!(pod = %self.name, error = %e, "final pod deletion");
        }
    }
}

/// Errors while starting a container: I/O or the API.
mod anyhow_like {
    pub(crate) type Result<T> = std::result::Result<T, Error>;

    #[derive(Debug, thiserror::Error)]
    pub(crate) enum Error {
        #[error(transparent)]
        Io(#[from] std::io::Error),
        #[error(transparent)]
        Kube(#[from] kube::Error),
        #[error("{0}")]
        Other(String),
    }

    impl From<String> for Error {
        fn from(message: String) -> Error {
            Error::Other(message)
        }
    }
}
