//! The life of a pod on the kubelet: one worker per pod *name*.
//!
//! A worker receives the latest object of its pod name (or `None` once it is gone) and
//! handles one pod object (uid) at a time, so a recreated pod of the same name starts
//! only once the old process has exited:
//!
//! 1. **Scheduling**: an unbound pod whose image maps to an executable is bound to this
//!    node; any other unbound pod gets `PodScheduled=False` and waits.
//! 2. **Start**: volumes, env and command line are prepared (the pod waits, Pending with
//!    a `waiting` reason, for missing claims, configmaps or secrets, retrying every half
//!    second), then the process is started: phase `Running`.
//! 3. **Running**: probes report (see [`super::probes`]); a failing liveness or startup
//!    probe stops the container (SIGTERM, SIGKILL after `terminationGracePeriodSeconds`).
//! 4. **Exit**: per `restartPolicy` — `Always` (default) restarts after the backoff
//!    (`waiting: CrashLoopBackOff` meanwhile, then `restartCount` + 1), `OnFailure`
//!    restarts after a non-zero exit, `Never` (or `OnFailure` after exit 0) ends in phase
//!    `Succeeded` or `Failed`.
//! 5. **Termination**, once the pod has a `deletionTimestamp`: `Ready=False` at once,
//!    SIGTERM, SIGKILL when `deletionGracePeriodSeconds` are over (a shorter grace set
//!    meanwhile counts), terminal phase, then the final DELETE with grace 0 (uid as
//!    precondition). A pod object that disappears (or is replaced) without that is
//!    SIGKILLed at once. Its pod directory (emptyDirs included) is removed when the object
//!    is gone.
//!
//! Status is written (a merge patch of `/status`, uid as precondition) only when it
//! differs from what was last written.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};
use tokio::process::Child;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::probes::{self, Kind, Report};
use super::rewrite::Rewriter;
use super::runtime::{self, Launch};
use super::status::{Phase, PodStatus, State, Terminated};
use super::{AbortOnDrop, Inner, NODE_NAME, ObjectKey, env, status, volumes};
use crate::meta;

/// How long a pod waiting for something (a claim, a configmap) waits before trying again,
/// and how soon a failed API call is retried.
const RETRY: Duration = Duration::from_millis(500);
/// A container that ran this long gets its restart backoff reset.
const BACKOFF_RESET: Duration = Duration::from_secs(10);
/// Kubernetes' default `terminationGracePeriodSeconds`.
const DEFAULT_GRACE_SECONDS: i64 = 30;
const FIELD_MANAGER: &str = "kubelet-sim";

/// What the kubelet asks of a worker.
#[derive(Debug)]
pub(crate) enum Command {
    /// SIGKILL the process, as a crash would.
    Kill,
    /// The kubelet stops: SIGTERM, SIGKILL at `deadline`, then end.
    Shutdown { deadline: Instant },
}

/// The first container's image.
pub(crate) fn image(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.containers.first()?.image.as_deref()
}

/// Why a worker stopped handling a pod object.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The object is gone or replaced: handle the next one.
    Gone,
    /// The kubelet is stopping.
    Shutdown,
}

/// The container process of the current run.
#[derive(Debug)]
struct Running {
    child: Child,
    run: u64,
    started_at: String,
    since: Instant,
    /// When to SIGKILL a process already sent SIGTERM (liveness or startup failure).
    kill_at: Option<Instant>,
    _probes: Vec<AbortOnDrop>,
}

/// Waits for the process of `running` to exit (forever if none).
async fn exited(running: &mut Option<Running>) -> i32 {
    match running {
        Some(r) => match r.child.wait().await {
            Ok(status) => runtime::exit_code(status),
            Err(err) => {
                tracing::warn!(error = %err, "cannot wait for a container process");
                // Treated as killed; dropping the child SIGKILLs it.
                137
            }
        },
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn grace_of(seconds: Option<i64>) -> Duration {
    Duration::from_secs(u64::try_from(seconds.unwrap_or(0)).unwrap_or(0))
}

/// One pod name's worker.
#[derive(Debug)]
pub(crate) struct Worker {
    inner: Arc<Inner>,
    key: ObjectKey,
    objects: watch::Receiver<Option<Arc<Pod>>>,
    commands: mpsc::UnboundedReceiver<Command>,
    running: Arc<AtomicBool>,
    reports_tx: mpsc::UnboundedSender<(u64, Report)>,
    reports: mpsc::UnboundedReceiver<(u64, Report)>,
    runs: u64,
}

impl Worker {
    pub(crate) fn new(
        inner: Arc<Inner>,
        key: ObjectKey,
        objects: watch::Receiver<Option<Arc<Pod>>>,
        commands: mpsc::UnboundedReceiver<Command>,
        running: Arc<AtomicBool>,
    ) -> Worker {
        let (reports_tx, reports) = mpsc::unbounded_channel();
        Worker {
            inner,
            key,
            objects,
            commands,
            running,
            reports_tx,
            reports,
            runs: 0,
        }
    }

    fn api(&self) -> Api<Pod> {
        Api::namespaced(self.inner.client.clone(), &self.key.0)
    }

    pub(crate) async fn run(mut self) {
        loop {
            let current = self.objects.borrow_and_update().clone();
            let end = match current {
                Some(pod) if bound_here(&pod) => self.run_pod(pod).await,
                Some(pod) => self.schedule(&pod).await,
                None => self.idle().await,
            };
            if end == End::Shutdown {
                return;
            }
        }
    }

    /// Waits for the object to change (`Gone`: look again) or the kubelet to stop.
    async fn idle(&mut self) -> End {
        loop {
            tokio::select! {
                changed = self.objects.changed() => {
                    return if changed.is_ok() { End::Gone } else { End::Shutdown };
                }
                command = self.commands.recv() => match command {
                    Some(Command::Kill) => {}
                    Some(Command::Shutdown { .. }) | None => return End::Shutdown,
                }
            }
        }
    }

    /// An unbound pod: binds it here if its image maps to an executable, else reports it
    /// unschedulable; then waits for it to change.
    async fn schedule(&mut self, pod: &Pod) -> End {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let unbound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_none_or(str::is_empty);
        if unbound {
            let image = image(pod).unwrap_or_default();
            let runnable = self.inner.options.executable(image).is_some();
            let result = if runnable {
                let bind = json!({"metadata": {"uid": uid}, "spec": {"nodeName": NODE_NAME}});
                self.api()
                    .patch(&self.key.1, &patch_params(), &Patch::Merge(&bind))
                    .await
                    .map(drop)
            } else if already_unschedulable(pod) {
                Ok(())
            } else {
                let body =
                    json!({"metadata": {"uid": uid}, "status": status::unschedulable(image)});
                self.api()
                    .patch_status(&self.key.1, &patch_params(), &Patch::Merge(&body))
                    .await
                    .map(drop)
            };
            if let Err(err) = result {
                tracing::debug!(pod = %self.key.1, error = %err, "scheduling a pod failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => return End::Gone,
                    end = self.idle() => return end,
                }
            }
        }
        self.idle().await
    }

    /// Runs one pod object (uid) bound to this node until it is gone.
    async fn run_pod(&mut self, pod: Arc<Pod>) -> End {
        let uid = pod.metadata.uid.clone();
        let container = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first().cloned())
            .unwrap_or_default();
        let image = container.image.clone().unwrap_or_default();
        let restart_policy = pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".to_owned());
        let options = &self.inner.options;
        let (initial_backoff, max_backoff) = (options.backoff_initial, options.backoff_max);
        let mut status = PodStatus::new(&container.name, &image);
        let mut written: Option<Value> = None;
        let mut running: Option<Running> = None;
        let mut next_start = Some(Instant::now());
        let mut backoff = initial_backoff;
        let mut starts = 0;

        loop {
            let current = self.objects.borrow_and_update().clone();
            let Some(pod) = current.filter(|p| p.metadata.uid == uid) else {
                if let Some(mut r) = running.take() {
                    runtime::kill(&mut r.child);
                    let _ = r.child.wait().await;
                }
                self.forget().await;
                return End::Gone;
            };
            if pod.metadata.deletion_timestamp.is_some() {
                return self.terminate(&pod, status, written, running).await;
            }
            if running.is_none() && next_start.is_some_and(|at| at <= Instant::now()) {
                match self.start(&pod, &container, &mut status).await {
                    Ok(r) => {
                        starts += 1;
                        status.restart_count = starts - 1;
                        running = Some(r);
                        next_start = None;
                    }
                    Err(waiting) => {
                        tracing::debug!(pod = %self.key.1, state = ?waiting, "container not started yet");
                        status.state = waiting;
                        next_start = Some(Instant::now() + RETRY);
                    }
                }
            }
            let retry_write = match self.write(&pod, &mut status, &mut written).await {
                true => None,
                false => Some(Instant::now() + RETRY),
            };

            let kill_at = running.as_ref().and_then(|r| r.kill_at);
            let wake = [next_start, retry_write, kill_at]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                changed = self.objects.changed() => if changed.is_err() {
                    return self.shutdown(running, Instant::now()).await;
                },
                command = self.commands.recv() => match command {
                    Some(Command::Kill) => if let Some(r) = running.as_mut() {
                        runtime::kill(&mut r.child);
                    },
                    Some(Command::Shutdown { deadline }) => return self.shutdown(running, deadline).await,
                    None => return self.shutdown(running, Instant::now()).await,
                },
                code = exited(&mut running) => {
                    let Some(r) = running.take() else { continue };
                    self.running.store(false, Ordering::SeqCst);
                    let ran = r.since.elapsed();
                    let ended = Terminated {
                        exit_code: code,
                        started_at: r.started_at,
                        finished_at: meta::now_rfc3339(),
                    };
                    tracing::debug!(pod = %self.key.1, code, "container exited");
                    status.ready = false;
                    status.started = false;
                    status.pid = None;
                    let restart = match restart_policy.as_str() {
                        "Never" => false,
                        "OnFailure" => code != 0,
                        _ => true,
                    };
                    if restart {
                        if ran >= BACKOFF_RESET {
                            backoff = initial_backoff;
                        }
                        next_start = Some(Instant::now() + backoff);
                        status.state = State::waiting(
                            "CrashLoopBackOff",
                            format!("back-off {backoff:?} restarting failed container={} pod={}", container.name, self.key.1),
                        );
                        status.last_state = Some(ended);
                        backoff = (backoff * 2).min(max_backoff);
                    } else {
                        status.phase = if code == 0 { Phase::Succeeded } else { Phase::Failed };
                        status.state = State::Terminated(ended);
                    }
                }
                Some((run, report)) = self.reports.recv() => {
                    if let Some(r) = running.as_mut().filter(|r| r.run == run) {
                        self.on_report(report, r, &pod, &container, &mut status);
                    }
                }
                () = sleep_until(wake) => {
                    if let Some(r) = running.as_mut().filter(|r| r.kill_at.is_some_and(|at| at <= Instant::now())) {
                        runtime::kill(&mut r.child);
                        r.kill_at = None;
                    }
                }
            }
        }
    }

    /// A probe's transition.
    fn on_report(
        &self,
        report: Report,
        r: &mut Running,
        pod: &Pod,
        container: &Container,
        status: &mut PodStatus,
    ) {
        match report {
            Report::Started => {
                status.started = true;
                r._probes
                    .extend(self.probes_after_start(pod, container, r.run, status));
            }
            Report::Ready(ready) => status.ready = ready && status.started,
            Report::StartupFailed | Report::LivenessFailed => {
                tracing::debug!(pod = %self.key.1, ?report, "probe failed; stopping the container");
                status.ready = false;
                if r.kill_at.is_none() {
                    runtime::terminate(&r.child);
                    let grace = pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds);
                    r.kill_at =
                        Some(Instant::now() + grace_of(grace.or(Some(DEFAULT_GRACE_SECONDS))));
                }
            }
        }
    }

    /// Readiness and liveness probes (started once the startup probe passed). Without a
    /// readiness probe the container is ready now.
    fn probes_after_start(
        &self,
        pod: &Pod,
        container: &Container,
        run: u64,
        status: &mut PodStatus,
    ) -> Vec<AbortOnDrop> {
        let mut tasks = Vec::new();
        for (kind, probe) in [
            (Kind::Readiness, &container.readiness_probe),
            (Kind::Liveness, &container.liveness_probe),
        ] {
            if let Some(probe) = probe {
                tasks.push(self.probe(kind, probe, pod, run));
            }
        }
        if container.readiness_probe.is_none() {
            status.ready = true;
        }
        tasks
    }

    fn probe(
        &self,
        kind: Kind,
        probe: &k8s_openapi::api::core::v1::Probe,
        pod: &Pod,
        run: u64,
    ) -> AbortOnDrop {
        let network = self.inner.network();
        let spec = probes::Spec::new(kind, probe, |port| {
            let container_port = network.container_port(&self.key, port)?;
            network.pod_address(&self.key, container_port)
        });
        drop(network);
        if let Some(problem) = spec.problem() {
            tracing::warn!(pod = %self.key.1, ns = ?pod.metadata.namespace, ?kind, problem, "probe cannot succeed");
        }
        spec.spawn(run, self.reports_tx.clone())
    }

    /// Prepares and starts the container; `Err` is the waiting state to report.
    async fn start(
        &mut self,
        pod: &Pod,
        container: &Container,
        status: &mut PodStatus,
    ) -> Result<Running, State> {
        let image = container.image.clone().unwrap_or_default();
        let program = self
            .inner
            .options
            .executable(&image)
            .map(Path::to_path_buf)
            .ok_or_else(|| {
                State::waiting(
                    "ErrImageNeverPull",
                    format!("the kubelet simulator runs no image matching {image:?}"),
                )
            })?;
        let pod_dir = self.inner.pod_dir(&self.key);
        tokio::fs::create_dir_all(&pod_dir)
            .await
            .map_err(|e| State::waiting("RunContainerError", e.to_string()))?;
        let mounts = volumes::prepare(&self.inner, &self.key, pod, container)
            .await
            .map_err(|message| State::waiting("ContainerCreating", message))?;
        let config_error = |message: String| State::waiting("CreateContainerConfigError", message);
        let sources = env::Sources::fetch(&self.inner.client, &self.key.0, container)
            .await
            .map_err(|e| config_error(e.to_string()))?;
        let own_env = env::container_env(pod, container, &sources).map_err(config_error)?;
        let launch = self
            .launch(pod, container, program, pod_dir, &mounts, own_env)
            .map_err(|e| State::waiting("RunContainerError", e.to_string()))?;
        let child = runtime::spawn(&launch).map_err(|e| {
            State::waiting(
                "RunContainerError",
                format!("starting {}: {e}", launch.program.display()),
            )
        })?;
        self.running.store(true, Ordering::SeqCst);
        self.runs += 1;
        let run = self.runs;
        let started_at = meta::now_rfc3339();
        tracing::debug!(pod = %self.key.1, pid = ?child.id(), "container started");
        status.phase = Phase::Running;
        status.pid = child.id();
        status.state = State::Running {
            started_at: started_at.clone(),
        };
        status.ready = false;
        status.started = false;
        let probes = match &container.startup_probe {
            Some(probe) => vec![self.probe(Kind::Startup, probe, pod, run)],
            None => {
                status.started = true;
                self.probes_after_start(pod, container, run, status)
            }
        };
        Ok(Running {
            child,
            run,
            started_at,
            since: Instant::now(),
            kill_at: None,
            _probes: probes,
        })
    }

    /// The command line and environment, rewritten for the stand-in namespaces; writes
    /// the configMap and secret files.
    fn launch(
        &self,
        pod: &Pod,
        container: &Container,
        program: PathBuf,
        pod_dir: PathBuf,
        mounts: &volumes::Mounts,
        own_env: Vec<(String, String)>,
    ) -> std::io::Result<Launch> {
        let network = self.inner.network();
        let mount_paths: Vec<(String, &Path)> = mounts
            .paths
            .iter()
            .map(|(mount, host)| (mount.clone(), host.as_path()))
            .collect();
        let rewriter = Rewriter::for_pod(
            &network,
            &self.key.0,
            &mount_paths,
            network.pod_ports(&self.key),
        );
        mounts.write_files(&rewriter)?;
        let vars: HashMap<String, String> = own_env.iter().cloned().collect();
        let args: Vec<String> = container
            .command
            .iter()
            .flatten()
            .skip(1)
            .chain(container.args.iter().flatten())
            .map(|arg| rewriter.rewrite(&env::expand(arg, &vars)))
            .collect();
        let hostname = pod
            .spec
            .as_ref()
            .and_then(|s| s.hostname.clone())
            .unwrap_or_else(|| self.key.1.clone());
        let mut env: Vec<(String, String)> = vec![
            ("HOSTNAME".into(), hostname),
            ("HOME".into(), pod_dir.to_string_lossy().into_owned()),
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            (
                "KUBECONFIG".into(),
                self.inner.kubeconfig.to_string_lossy().into_owned(),
            ),
        ];
        env.extend(own_env.into_iter().map(|(k, v)| {
            let v = rewriter.rewrite(&v);
            (k, v)
        }));
        env.extend(self.inner.options.env.iter().cloned());
        Ok(Launch {
            program,
            args,
            env,
            dir: pod_dir,
            log: self.inner.log_path(&self.key),
        })
    }

    /// Writes the status if it changed; false if the write failed (try again later).
    async fn write(&self, pod: &Pod, status: &mut PodStatus, written: &mut Option<Value>) -> bool {
        self.inner.network().set_ready(&self.key, status.ready);
        let rendered = status.render();
        if written.as_ref() == Some(&rendered) {
            return true;
        }
        let body = json!({"metadata": {"uid": pod.metadata.uid}, "status": rendered});
        match self
            .api()
            .patch_status(&self.key.1, &patch_params(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => {
                *written = Some(rendered);
                true
            }
            Err(err) => {
                tracing::debug!(pod = %self.key.1, error = %err, "writing pod status failed");
                false
            }
        }
    }

    /// Graceful termination of a pod being deleted, then its final removal.
    async fn terminate(
        &mut self,
        pod: &Pod,
        mut status: PodStatus,
        mut written: Option<Value>,
        running: Option<Running>,
    ) -> End {
        status.ready = false;
        self.write(pod, &mut status, &mut written).await;
        let uid = pod.metadata.uid.clone();
        let mut deadline = Instant::now() + grace_of(pod.metadata.deletion_grace_period_seconds);
        let mut shutdown = false;
        if let Some(mut r) = running {
            runtime::terminate(&r.child);
            let code = loop {
                tokio::select! {
                    status = r.child.wait() => break status.map(runtime::exit_code).unwrap_or(137),
                    () = tokio::time::sleep_until(deadline) => {
                        runtime::kill(&mut r.child);
                        deadline = Instant::now() + Duration::from_secs(3600);
                    }
                    changed = self.objects.changed() => {
                        let current = self.objects.borrow_and_update().clone();
                        match current.filter(|p| p.metadata.uid == uid && changed.is_ok()) {
                            Some(p) => {
                                let shorter = Instant::now() + grace_of(p.metadata.deletion_grace_period_seconds);
                                deadline = deadline.min(shorter);
                            }
                            None => runtime::kill(&mut r.child),
                        }
                    }
                    command = self.commands.recv() => match command {
                        Some(Command::Kill) | None => runtime::kill(&mut r.child),
                        Some(Command::Shutdown { deadline: stop }) => {
                            shutdown = true;
                            deadline = deadline.min(stop);
                        }
                    }
                }
            };
            self.running.store(false, Ordering::SeqCst);
            status.pid = None;
            status.started = false;
            status.phase = if code == 0 {
                Phase::Succeeded
            } else {
                Phase::Failed
            };
            status.state = State::Terminated(Terminated {
                exit_code: code,
                started_at: r.started_at.clone(),
                finished_at: meta::now_rfc3339(),
            });
        }
        if shutdown {
            return End::Shutdown;
        }
        self.write(pod, &mut status, &mut written).await;
        self.remove(uid).await
    }

    /// Deletes the pod object with grace 0 and waits until it is gone (or replaced).
    async fn remove(&mut self, uid: Option<String>) -> End {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let mut deleted = false;
        loop {
            let current = self.objects.borrow_and_update().clone();
            if current.is_none_or(|p| p.metadata.uid != uid) {
                self.forget().await;
                return End::Gone;
            }
            if !deleted {
                match self.api().delete(&self.key.1, &params).await {
                    Ok(_) => deleted = true,
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => deleted = true,
                    Err(err) => {
                        tracing::debug!(pod = %self.key.1, error = %err, "final pod deletion failed; retrying")
                    }
                }
            }
            tokio::select! {
                changed = self.objects.changed() => if changed.is_err() { return End::Shutdown },
                () = tokio::time::sleep(RETRY), if !deleted => {}
                command = self.commands.recv() => match command {
                    Some(Command::Kill) => {}
                    Some(Command::Shutdown { .. }) | None => return End::Shutdown,
                }
            }
        }
    }

    /// The kubelet stops while a pod runs: SIGTERM, SIGKILL at `deadline`.
    async fn shutdown(&mut self, running: Option<Running>, deadline: Instant) -> End {
        if let Some(mut r) = running {
            runtime::terminate(&r.child);
            if tokio::time::timeout_at(deadline, r.child.wait())
                .await
                .is_err()
            {
                runtime::kill(&mut r.child);
                let _ = r.child.wait().await;
            }
        }
        self.running.store(false, Ordering::SeqCst);
        End::Shutdown
    }

    /// The pod object is gone: no longer an endpoint, and its directory goes.
    async fn forget(&self) {
        self.running.store(false, Ordering::SeqCst);
        self.inner.network().set_ready(&self.key, false);
        let dir = self.inner.pod_dir(&self.key);
        if let Err(err) = tokio::fs::remove_dir_all(&dir).await
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %err, "cannot remove a pod directory");
        }
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

fn bound_here(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(NODE_NAME)
}

/// Whether the pod already says it cannot be scheduled.
fn already_unschedulable(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "PodScheduled" && c.status == "False")
        })
}
