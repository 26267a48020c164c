//! Fixtures: an API server double with a kubelet running `sim_server.py`, pod and
//! object builders, polling with deadlines.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, PodCondition, Service};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_apiserver_double::{ApiServer, Kubelet, KubeletOptions};

/// How long any awaited condition may take.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);
const IMAGE: &str = "sim.local/server";

pub(crate) struct Sim {
    pub(crate) server: ApiServer,
    pub(crate) kubelet: Kubelet,
    pub(crate) client: Client,
    pub(crate) pods: Api<Pod>,
    pub(crate) root: PathBuf,
}

/// The Python interpreter itself (not a version manager's shim, which may need the
/// environment the kubelet does not pass on).
fn python() -> PathBuf {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is installed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn script() -> String {
    format!("{}/tests/kubelet/sim_server.py", env!("CARGO_MANIFEST_DIR"))
}

impl Sim {
    pub(crate) async fn start(name: &str) -> anyhow::Result<Sim> {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("kubelet-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let server = ApiServer::start().await;
        let options = KubeletOptions::new(&root)
            .image(IMAGE, python())
            .restart_backoff(Duration::from_millis(200), Duration::from_secs(1))
            .env("SIM_EXTRA", "1");
        let kubelet = Kubelet::start(&server, options).await?;
        let client = server.client();
        let pods = Api::default_namespaced(client.clone());
        Ok(Sim {
            server,
            kubelet,
            client,
            pods,
            root,
        })
    }

    pub(crate) async fn stop(self) {
        self.kubelet.stop().await;
        self.server.stop().await;
        let _ = std::fs::remove_dir_all(&self.root);
    }

    pub(crate) async fn create_configmap(&self, pod: &str, peer: &str) -> anyhow::Result<()> {
        let config = json!({"listen": "0.0.0.0:8080", "peer": peer, "data": "/var/lib/sim"});
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": format!("config-{pod}")},
            "data": {"config.json": config.to_string()},
        }))?;
        Api::<ConfigMap>::default_namespaced(self.client.clone())
            .create(&PostParams::default(), &cm)
            .await?;
        Ok(())
    }

    pub(crate) async fn create_claim(&self, name: &str) -> anyhow::Result<()> {
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }))?;
        Api::<PersistentVolumeClaim>::default_namespaced(self.client.clone())
            .create(&PostParams::default(), &pvc)
            .await?;
        Ok(())
    }

    pub(crate) async fn create_service(
        &self,
        name: &str,
        selector: Value,
        target: &str,
    ) -> anyhow::Result<()> {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": target}]},
        }))?;
        Api::<Service>::default_namespaced(self.client.clone())
            .create(&PostParams::default(), &svc)
            .await?;
        Ok(())
    }

    pub(crate) async fn create_pod(&self, pod: Value) -> anyhow::Result<()> {
        let pod: Pod = serde_json::from_value(pod)?;
        self.pods.create(&PostParams::default(), &pod).await?;
        Ok(())
    }

    /// A server pod with its configmap and (unless it exists) its claim `data-<name>`.
    pub(crate) async fn create_server(
        &self,
        name: &str,
        peer: &str,
        labels: Value,
    ) -> anyhow::Result<()> {
        self.create_server_from(name, pod_spec(name, peer, labels))
            .await
    }

    pub(crate) async fn create_server_from(&self, name: &str, pod: Value) -> anyhow::Result<()> {
        let peer = pod["spec"]["containers"][0]["env"][2]["value"]
            .as_str()
            .and_then(|url| url.strip_prefix("http://"))
            .and_then(|rest| rest.strip_suffix('/'))
            .unwrap_or_default()
            .to_owned();
        self.create_configmap(name, &peer).await?;
        let claims = Api::<PersistentVolumeClaim>::default_namespaced(self.client.clone());
        if claims.get_opt(&format!("data-{name}")).await?.is_none() {
            self.create_claim(&format!("data-{name}")).await?;
        }
        self.create_pod(pod).await
    }

    /// Polls the pod until `check` holds; panics after the deadline.
    pub(crate) async fn wait_pod(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&Pod) -> bool,
    ) -> Pod {
        eventually(&format!("{name}: {what}"), || async {
            self.pods
                .get_opt(name)
                .await
                .ok()
                .flatten()
                .filter(|p| check(p))
        })
        .await
    }

    pub(crate) async fn wait_ready(&self, name: &str) -> Pod {
        self.wait_pod(name, "Ready", ready).await
    }

    pub(crate) async fn wait_gone(&self, name: &str) {
        eventually(&format!("{name} gone"), || async {
            matches!(self.pods.get_opt(name).await, Ok(None)).then_some(())
        })
        .await;
    }
}

/// A pod running the server: config from `config-<name>`, data on claim `data-<name>`,
/// DNS name `<name>.sims.default.svc`, a readiness probe on `/readyz`.
pub(crate) fn pod_spec(name: &str, peer: &str, labels: Value) -> Value {
    json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "hostname": name,
            "subdomain": "sims",
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "sim",
                "image": format!("{IMAGE}:1.0"),
                "args": [script(), "--config", "/etc/sim/config.json"],
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "DATA_DIR", "value": "/var/lib/sim/$(POD_NAME)"},
                    {"name": "PEER_URL", "value": format!("http://{peer}/")},
                ],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {
                    "httpGet": {"path": "/readyz", "port": "http"},
                    "periodSeconds": 1,
                    "failureThreshold": 1,
                },
                "volumeMounts": [
                    {"name": "config", "mountPath": "/etc/sim", "readOnly": true},
                    {"name": "data", "mountPath": "/var/lib/sim"},
                ],
            }],
            "volumes": [
                {"name": "config", "configMap": {"name": format!("config-{name}")}},
                {"name": "data", "persistentVolumeClaim": {"claimName": format!("data-{name}")}},
            ],
        },
    })
}

/// Polls `probe` every 50 ms until it returns `Some`; panics after [`DEADLINE`].
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn condition(pod: &Pod, kind: &str) -> Option<PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .cloned()
}

pub(crate) fn ready(pod: &Pod) -> bool {
    condition(pod, "Ready").is_some_and(|c| c.status == "True")
}

pub(crate) fn phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

pub(crate) fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map_or(-1, |c| c.restart_count)
}

pub(crate) fn waiting_reason(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.clone())
        .unwrap_or_default()
}

/// One HTTP/1.0 GET: status and body. An error if the connection closes without an
/// answer.
pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response)).await??;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP response from {addr}: {response:?}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("bad status line: {head}"))?;
    Ok((code, body.to_owned()))
}
