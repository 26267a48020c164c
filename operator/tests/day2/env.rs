//! The environment every day-2 test starts from: the API server double, its StatefulSet
//! and Deployment controllers and its kubelet simulator (pods as real processes on
//! loopback ports), and Weir's Helm chart installed into `weir-system` with the real
//! `helm template | kubectl apply`, so the operator runs as the chart's two pods.
//! [`Env::apply_examples`] then applies `examples/` as a user would.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};
use weir_apiserver_double::ApiServer;
use weir_apiserver_double::controllers::Controllers;
use weir_apiserver_double::kubelet::{Kubelet, KubeletOptions};
use weir_operator::crd::{Cluster, Topic};

use crate::common::brokers::broker_binary;
pub(crate) use crate::common::wait_for;

/// Where the example Cluster and Topics go.
pub(crate) const NS: &str = "kafka";
/// Where the chart installs the operator.
pub(crate) const OPERATOR_NS: &str = "weir-system";
/// The chart's Lease (`weir.leaseName` for release `weir`: the release name).
pub(crate) const LEASE: &str = "weir";
/// The example Cluster.
pub(crate) const CLUSTER: &str = "demo";

/// Writes `[day2] ...` progress and figures to stderr.
pub(crate) fn report(line: impl AsRef<str>) {
    eprintln!("[day2] {}", line.as_ref());
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ is in the repository")
        .to_owned()
}

fn helm() -> PathBuf {
    let helm = std::env::var_os("WEIR_HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".tools/bin/helm"));
    assert!(
        helm.is_file(),
        "helm not found at {} (set WEIR_HELM, or run scripts/install-tools.sh, which \
         scripts/test.sh runs)",
        helm.display()
    );
    helm
}

pub(crate) struct Env {
    pub(crate) client: Client,
    kubelet: Option<Kubelet>,
    controllers: Option<Controllers>,
    server: Option<ApiServer>,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

impl Env {
    /// Starts the double, its controllers and kubelet, and installs the chart; returns
    /// once both operator pods are Ready and one holds the Lease.
    pub(crate) async fn install() -> Env {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let broker = broker_binary().to_owned();
        let operator = PathBuf::from(env!("CARGO_BIN_EXE_weir-operator"));
        let dir = tempfile::tempdir().expect("a temporary directory");
        let server = ApiServer::start().await;
        let client = server.client();
        let controllers = Controllers::start(client.clone()).await;
        let kubelet = Kubelet::start(
            &server,
            KubeletOptions::new(dir.path().join("node"))
                .image("weir-broker", broker)
                .image("weir-operator", operator),
        )
        .await
        .expect("starting the kubelet simulator");
        let kubeconfig = dir.path().join("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig)
            .expect("writing a kubeconfig");
        let env = Env {
            client,
            kubelet: Some(kubelet),
            controllers: Some(controllers),
            server: Some(server),
            kubeconfig,
            dir,
        };
        let started = Instant::now();
        env.kubectl(&["create", "namespace", OPERATOR_NS]);
        env.kubectl(&["create", "namespace", NS]);
        let chart = env.helm_template();
        env.kubectl_stdin(&["apply", "-f", "-"], &chart);
        env.wait_operator_ready(Duration::from_secs(60)).await;
        report(format!(
            "chart installed, operator pods Ready and leading: {:.1?}",
            started.elapsed()
        ));
        env
    }

    /// [`Env::install`], then `examples/` applied and serving: the Cluster Ready, both
    /// Topics Ready with every partition fully replicated. Returns the bootstrap address.
    pub(crate) async fn serving() -> (Env, String) {
        let env = Env::install().await;
        env.apply_examples();
        env.wait_cluster_ready(Duration::from_secs(90)).await;
        env.wait_topic_in_sync("orders", 12, 3, Duration::from_secs(60))
            .await;
        env.wait_topic_in_sync("customer-profiles", 6, 3, Duration::from_secs(60))
            .await;
        let bootstrap = env.bootstrap().await;
        (env, bootstrap)
    }

    /// `helm template weir charts/weir --namespace weir-system --include-crds`.
    fn helm_template(&self) -> String {
        let out = Command::new(helm())
            .args(["template", "weir"])
            .arg(repo().join("charts/weir"))
            .args([
                "--namespace",
                OPERATOR_NS,
                "--include-crds",
                "--kube-version",
                "1.33.0",
            ])
            .output()
            .expect("run helm");
        assert!(
            out.status.success(),
            "helm template: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("helm writes UTF-8")
    }

    fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        cmd
    }

    /// Runs the real `kubectl` against the double; its stdout (fails on an error).
    pub(crate) fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_command(args).output().expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// [`Env::kubectl`] with `input` on stdin.
    pub(crate) fn kubectl_stdin(&self, args: &[&str], input: &str) -> String {
        let mut child = self
            .kubectl_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("write kubectl's stdin");
        let out = child.wait_with_output().expect("kubectl finishes");
        assert!(
            out.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply -n kafka -f examples/cluster.yaml -f examples/topics.yaml`.
    pub(crate) fn apply_examples(&self) {
        let examples = repo().join("examples");
        let cluster = examples.join("cluster.yaml");
        let topics = examples.join("topics.yaml");
        self.kubectl(&[
            "apply",
            "-n",
            NS,
            "-f",
            cluster.to_str().unwrap(),
            "-f",
            topics.to_str().unwrap(),
        ]);
    }

    /// The chart's operator pods, Ready, and a Lease holder among them.
    async fn wait_operator_ready(&self, within: Duration) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), OPERATOR_NS);
        wait_for("both operator pods Ready", within, || {
            let pods = pods.clone();
            async move {
                let list = pods.list(&ListParams::default()).await.ok()?.items;
                (list.len() == 2 && list.iter().all(pod_ready)).then_some(())
            }
        })
        .await;
        wait_for("an operator holds the Lease", within, || async {
            self.lease_holder().await
        })
        .await;
    }

    /// The Lease holder's identity (its pod name).
    pub(crate) async fn lease_holder(&self) -> Option<String> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), OPERATOR_NS);
        let lease = leases.get_opt(LEASE).await.ok()??;
        lease.spec?.holder_identity.filter(|h| !h.is_empty())
    }

    /// The kubelet simulator (pod addresses, crashes, logs, volumes).
    pub(crate) fn kubelet(&self) -> &Kubelet {
        self.kubelet
            .as_ref()
            .expect("the kubelet runs until Env::stop")
    }

    pub(crate) fn clusters(&self) -> Api<Cluster> {
        Api::namespaced(self.client.clone(), NS)
    }

    pub(crate) fn topics(&self) -> Api<Topic> {
        Api::namespaced(self.client.clone(), NS)
    }

    pub(crate) fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// The example Cluster is Ready for its current generation, every broker in sync.
    pub(crate) async fn wait_cluster_ready(&self, within: Duration) -> Cluster {
        let clusters = self.clusters();
        wait_for("Cluster demo Ready", within, || {
            let clusters = clusters.clone();
            async move {
                let cluster = clusters.get_opt(CLUSTER).await.ok()??;
                cluster_ready(&cluster).then_some(cluster)
            }
        })
        .await
    }

    /// The bootstrap address a client dials: the Cluster's `status.bootstrapServers`
    /// (the bootstrap Service's DNS name) as the kubelet's network resolves it.
    pub(crate) async fn bootstrap(&self) -> String {
        let cluster = wait_for(
            "Cluster demo reports bootstrapServers",
            Duration::from_secs(30),
            || async {
                let cluster = self.clusters().get_opt(CLUSTER).await.ok()??;
                cluster.status.as_ref()?.bootstrap_servers.as_ref()?;
                Some(cluster)
            },
        )
        .await;
        let servers = cluster.status.unwrap().bootstrap_servers.unwrap();
        let resolved = self.kubelet().resolve(NS, &servers);
        assert!(
            resolved.starts_with("127.0.0.1:"),
            "{servers} resolves to {resolved}"
        );
        resolved
    }

    /// Waits until Topic `name` is Ready with `partitions` partitions of `rf` replicas,
    /// each with a leader and a full ISR.
    pub(crate) async fn wait_topic_in_sync(
        &self,
        name: &str,
        partitions: usize,
        rf: usize,
        within: Duration,
    ) -> Topic {
        let topics = self.topics();
        wait_for(
            &format!("Topic {name}: {partitions} partitions fully replicated ×{rf}"),
            within,
            || {
                let topics = topics.clone();
                async move {
                    let topic = topics.get_opt(name).await.ok()??;
                    (topic_ready(&topic) && fully_replicated(&topic, partitions, rf))
                        .then_some(topic)
                }
            },
        )
        .await
    }

    /// Stops the kubelet (SIGTERM to every process), the controllers and the server.
    pub(crate) async fn stop(mut self) {
        if let Some(kubelet) = self.kubelet.take() {
            kubelet.stop().await;
        }
        if let Some(controllers) = self.controllers.take() {
            controllers.stop().await;
        }
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    /// The last lines of every pod's log (shown when a test fails).
    fn pod_logs(&self) -> String {
        let mut out = String::new();
        let node = self.dir.path().join("node");
        let mut logs: Vec<PathBuf> = walk(&node)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        logs.sort();
        for log in logs {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            writeln!(out, "--- {} (last {} lines) ---", log.display(), tail.len()).ok();
            for line in tail {
                writeln!(out, "{line}").ok();
            }
        }
        out
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprint!("{}", self.pod_logs());
        }
        // `DAY2_KEEP=1` keeps the pods' logs and volumes for a look afterwards.
        if std::env::var_os("DAY2_KEEP").is_some() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("a directory"));
            report(format!("kept {}", dir.keep().display()));
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

pub(crate) fn pod_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub(crate) fn condition<'a>(
    conditions: &'a [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

pub(crate) fn cluster_ready(cluster: &Cluster) -> bool {
    cluster.status.as_ref().is_some_and(|s| {
        s.observed_generation == cluster.metadata.generation
            && s.ready_brokers == cluster.spec.brokers
            && condition(&s.conditions, "Ready").is_some_and(|c| c.status == "True")
    })
}

pub(crate) fn topic_ready(topic: &Topic) -> bool {
    topic.status.as_ref().is_some_and(|s| {
        s.observed_generation == topic.metadata.generation
            && condition(&s.conditions, "Ready").is_some_and(|c| c.status == "True")
    })
}

/// Every partition `0..partitions` has a leader among `rf` replicas, all in the ISR.
pub(crate) fn fully_replicated(topic: &Topic, partitions: usize, rf: usize) -> bool {
    topic.status.as_ref().is_some_and(|s| {
        s.partitions.len() == partitions
            && s.partitions.iter().enumerate().all(|(i, p)| {
                usize::try_from(p.partition) == Ok(i)
                    && p.replicas.len() == rf
                    && p.adding_replicas.is_empty()
                    && p.removing_replicas.is_empty()
                    && p.leader.is_some_and(|l| p.replicas.contains(&l))
                    && p.isr.len() == p.replicas.len()
                    && p.isr.iter().all(|r| p.replicas.contains(r))
            })
    })
}
