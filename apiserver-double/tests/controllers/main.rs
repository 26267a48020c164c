//! Integration tests of the workload controllers against the double, driven through a
//! real `kube::Client`. Nothing runs pods here: where a test needs a pod Running and
//! Ready it patches the pod's `/status` itself, as a kubelet would.

mod deployment;
mod retention;
mod statefulset;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use weir_apiserver_double::{ApiServer, Controllers, Verb};

/// A server with the controllers running, and a client of it.
pub(crate) async fn start() -> (ApiServer, Controllers, Client) {
    let server = ApiServer::start().await;
    let client = server.client();
    let controllers = Controllers::start(client.clone()).await;
    (server, controllers, client)
}

/// Polls `check` until it holds; fails the test after five seconds.
pub(crate) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the controllers have listed the pods of `default` twice more: the
/// reconcile that made the first list has then finished its writes. Used before asserting
/// that something did *not* happen.
pub(crate) async fn settled(server: &ApiServer) {
    let lists = || {
        server
            .requests()
            .iter()
            .filter(|r| r.verb == Some(Verb::List) && r.path == "/api/v1/namespaces/default/pods")
            .count()
    };
    let before = lists();
    eventually("the controllers reconciled twice more", || {
        lists() >= before + 2
    })
    .await;
}

/// The writes (create, update, patch, delete) served since the last
/// [`ApiServer::clear_requests`], as `METHOD path`.
pub(crate) fn writes(server: &ApiServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter(|r| !matches!(r.verb, Some(Verb::Get | Verb::List | Verb::Watch)))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// A stored pod of `default`, if it exists.
pub(crate) fn pod(server: &ApiServer, name: &str) -> Option<Value> {
    server.object("", "pods", Some("default"), name)
}

/// The names of the stored pods of `default` starting with `prefix`, sorted.
pub(crate) fn pod_names(server: &ApiServer, prefix: &str) -> Vec<String> {
    server
        .objects("", "pods")
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// The stored claim `name` of `default`, if it exists.
pub(crate) fn claim(server: &ApiServer, name: &str) -> Option<Value> {
    server.object("", "persistentvolumeclaims", Some("default"), name)
}

pub(crate) fn uid(object: &Value) -> String {
    object["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

pub(crate) fn revision_of(pod: &Value) -> String {
    pod["metadata"]["labels"]["controller-revision-hash"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

pub(crate) fn is_terminating(object: &Value) -> bool {
    object["metadata"].get("deletionTimestamp").is_some()
}

/// Marks a pod Running and Ready, as a kubelet would once its containers pass their
/// readiness probes.
pub(crate) async fn make_ready(client: &Client, name: &str) -> anyhow::Result<()> {
    set_phase(client, name, "Running", true).await
}

pub(crate) async fn set_phase(
    client: &Client,
    name: &str,
    phase: &str,
    ready: bool,
) -> anyhow::Result<()> {
    let status = if ready { "True" } else { "False" };
    let patch = json!({"status": {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": status, "lastTransitionTime": "2025-01-01T00:00:00Z"}],
    }});
    Api::<Pod>::default_namespaced(client.clone())
        .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(())
}

/// Sets (or with `None` removes) a finalizer on a pod, to hold it once deleted.
pub(crate) async fn hold(client: &Client, name: &str, held: bool) -> anyhow::Result<()> {
    let finalizers = if held {
        json!(["test.weir.dev/hold"])
    } else {
        Value::Null
    };
    Api::<Pod>::default_namespaced(client.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": finalizers}})),
        )
        .await?;
    Ok(())
}

/// How a test StatefulSet is set up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SetSpec {
    pub(crate) replicas: i32,
    pub(crate) parallel: bool,
    pub(crate) on_delete: bool,
    /// `(whenDeleted, whenScaled)`; `None` leaves the policy out (both Retain).
    pub(crate) retention: Option<(&'static str, &'static str)>,
}

/// Creates StatefulSet `web` in `default`: service `web-headless`, one claim template
/// `data`, selector `app=web`.
pub(crate) async fn create_set(client: &Client, spec: SetSpec) -> anyhow::Result<StatefulSet> {
    let mut body = json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": spec.replicas,
            "serviceName": "web-headless",
            "selector": {"matchLabels": {"app": "web"}},
            "podManagementPolicy": if spec.parallel { "Parallel" } else { "OrderedReady" },
            "updateStrategy": {"type": if spec.on_delete { "OnDelete" } else { "RollingUpdate" }},
            "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {"note": "v1"}},
                "spec": {
                    "containers": [{"name": "c", "image": "example/web:1",
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data", "labels": {"tier": "storage"}},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }],
        },
    });
    if let Some((deleted, scaled)) = spec.retention {
        body["spec"]["persistentVolumeClaimRetentionPolicy"] =
            json!({"whenDeleted": deleted, "whenScaled": scaled});
    }
    let set: StatefulSet = serde_json::from_value(body)?;
    Ok(sets(client).create(&PostParams::default(), &set).await?)
}

pub(crate) fn sets(client: &Client) -> Api<StatefulSet> {
    Api::default_namespaced(client.clone())
}

/// Merge-patches the spec of StatefulSet `web`.
pub(crate) async fn patch_set(client: &Client, spec: Value) -> anyhow::Result<()> {
    sets(client)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec})),
        )
        .await?;
    Ok(())
}

/// The stored status of StatefulSet `web`.
pub(crate) fn set_status(server: &ApiServer) -> Value {
    server
        .object("apps", "statefulsets", Some("default"), "web")
        .map(|s| s["status"].clone())
        .unwrap_or_default()
}
