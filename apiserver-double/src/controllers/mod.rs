//! The workload controllers of kube-controller-manager that Weir's tests need: StatefulSets
//! ([`statefulset`]) and Deployments ([`deployment`]). They create and delete Pods and
//! PersistentVolumeClaims and write their workloads' status, through a real
//! [`kube::Client`] as the real controllers do; they run nothing — the
//! [`crate::kubelet`] does, and reports through the pods' status.
//!
//! Each controller is a loop that looks at every object of its kind whenever a watched
//! kind changes (and every second anyway), which is plenty for a test cluster and keeps
//! them level-triggered: whatever was missed is corrected on the next pass.

mod deployment;
mod statefulset;

use std::time::Duration;

use futures::StreamExt as _;
use kube::api::{Api, ListParams};
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How often every workload is looked at without a change.
const RESYNC: Duration = Duration::from_secs(1);

/// The StatefulSet and Deployment controllers; stopped on drop.
#[derive(Debug)]
pub struct Controllers {
    tasks: Vec<JoinHandle<()>>,
}

impl Controllers {
    /// Starts both controllers against `client` (all namespaces).
    pub async fn start(client: Client) -> Controllers {
        let changed = Arc::new(Notify::new());
        let mut tasks = vec![
            notify_on::<k8s_openapi::api::apps::v1::StatefulSet>(&client, &changed),
            notify_on::<k8s_openapi::api::apps::v1::Deployment>(&client, &changed),
            notify_on::<k8s_openapi::api::core::v1::Pod>(&client, &changed),
            notify_on::<k8s_openapi::api::core::v1::PersistentVolumeClaim>(&client, &changed),
        ];
        tasks.push(tokio::spawn(run(client, changed)));
        Controllers { tasks }
    }

    /// Stops both controllers.
    pub async fn stop(self) {}
}

impl Drop for Controllers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Wakes the loop on every change to a `K`.
fn notify_on<K>(client: &Client, changed: &Arc<Notify>) -> JoinHandle<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let api: Api<K> = Api::all(client.clone());
    let changed = changed.clone();
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = events.next().await {
            if event.is_err() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            changed.notify_one();
        }
    })
}

async fn run(client: Client, changed: Arc<Notify>) {
    loop {
        if let Err(e) = statefulset::reconcile_all(&client).await {
            tracing::debug!(error = %e, "StatefulSet controller pass failed; retrying");
        }
        if let Err(e) = deployment::reconcile_all(&client).await {
            tracing::debug!(error = %e, "Deployment controller pass failed; retrying");
        }
        let _ = tokio::time::timeout(RESYNC, changed.notified()).await;
    }
}

/// Every `K` in every namespace.
async fn list_all<K>(client: &Client) -> kube::Result<Vec<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    Ok(Api::<K>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items)
}

/// A stable short hash of a JSON value (FNV-1a over its serialization).
fn hash_of(value: &impl serde::Serialize) -> String {
    let text = serde_json::to_string(value).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:010x}", hash & 0xff_ffff_ffff)
}

/// Whether `owner_uid` is among `meta`'s owner references.
fn owned_by(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| r.uid == uid))
}

fn pod_ready(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
