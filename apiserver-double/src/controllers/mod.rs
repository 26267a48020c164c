//! The workload controllers of kube-controller-manager that Weir's tests need: StatefulSet
//! and Deployment. They make Pods (and PersistentVolumeClaims) appear for the workloads
//! the operator writes, and write the workloads' status from those pods, so the operator
//! under test sees what it would see on a cluster.
//!
//! They are clients of the double like any other: they watch, list, create, patch and
//! delete through a [`kube::Client`] and never reach into the store, so they exercise
//! the same code paths (and the same faults, conflicts and deletion rules) as the code
//! under test. They do not run pods: a pod's `status` (phase, `Ready` condition) is the
//! kubelet's to write — a kubelet simulator, or a test patching `/status`.
//!
//! Each controller is a [`kube::runtime::Controller`] of its workload kind that also
//! watches the pods it owns (and, for StatefulSets, the claims that reference it), so it
//! reacts within a round trip, and requeues every second so a missed event heals
//! itself. A reconcile lists the namespace's pods afresh from the server rather than from
//! a cache: the real controllers guard against their caches lagging behind their own
//! writes with "expectations"; reading the server makes that unnecessary (lists of the
//! double are always current) at a cost that does not matter at test sizes.
//!
//! Being clients, their requests appear in [`crate::ApiServer::requests`] and can be hit
//! by faults injected with [`crate::ApiServer::fail_next`] (a failed reconcile is retried
//! after a tenth of a second); a test that counts requests or injects faults while they
//! run should filter by path. A settled workload makes no writes, only a list every
//! second.
//!
//! Each reconcile is split as the operator's are: a pure `plan` over what was observed
//! (the workload, its pods, its claims) returns the writes to make and the status to
//! report; the reconcile function only does I/O.

mod deployment;
mod pods;
mod statefulset;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};
use tokio::task::JoinHandle;

/// How often every workload is reconciled even when nothing was seen to change.
pub(crate) const RESYNC: Duration = Duration::from_secs(1);

/// How soon a failed reconcile (a 409 `Conflict`, a fault a test injected) is retried.
pub(crate) const RETRY: Duration = Duration::from_millis(100);

/// The running StatefulSet and Deployment controllers (all namespaces). Stops them when
/// dropped (or with [`Controllers::stop`]).
#[derive(Debug)]
pub struct Controllers {
    tasks: Vec<JoinHandle<()>>,
}

impl Controllers {
    /// Starts the StatefulSet and Deployment controllers against `client` (a client of the
    /// double, e.g. [`crate::ApiServer::client`]), for all namespaces. They use only the
    /// public API (watch, list, create, delete, patch and `/status`), as the real ones do.
    pub async fn start(client: kube::Client) -> Controllers {
        let statefulsets = statefulset::controller(client.clone()).for_each(|result| async {
            log_result("StatefulSet", result);
        });
        let deployments = deployment::controller(client).for_each(|result| async {
            log_result("Deployment", result);
        });
        Controllers {
            tasks: vec![tokio::spawn(statefulsets), tokio::spawn(deployments)],
        }
    }

    /// Stops the controllers and waits until their tasks have ended; a reconcile under
    /// way is cancelled between two requests.
    pub async fn stop(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
            // An aborted task ends with a cancellation error; that is the point.
            let _ = task.await;
        }
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Reconcile outcomes are only logged: a failed reconcile is retried by the controller's
/// error policy, and a reconcile of an object deleted meanwhile is expected.
fn log_result<K, E, Q>(
    kind: &str,
    result: Result<
        (
            kube::runtime::reflector::ObjectRef<K>,
            kube::runtime::controller::Action,
        ),
        kube::runtime::controller::Error<E, Q>,
    >,
) where
    K: kube::Resource,
    E: std::error::Error,
    Q: std::error::Error,
{
    match result {
        Ok(_) => {}
        Err(kube::runtime::controller::Error::ObjectNotFound(object)) => {
            tracing::trace!(kind, %object, "reconcile of a deleted object skipped");
        }
        Err(err) => tracing::debug!(kind, error = %err, "reconcile failed; retrying"),
    }
}

/// A controller's failure to reconcile one object: a request the server refused or a
/// connection failure. Retried after [`RETRY`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A request to the API server failed.
    #[error("{verb} {kind} {namespace}/{name}")]
    Api {
        verb: &'static str,
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// The stored object lacks a field the server always sets (name, namespace, uid).
    #[error("{kind} without metadata.{field}")]
    Incomplete {
        kind: &'static str,
        field: &'static str,
    },
}

/// What reconcile functions share: the client, and per-controller state.
pub(crate) struct Context<S> {
    pub(crate) client: kube::Client,
    pub(crate) state: S,
}

impl<S> Context<S> {
    pub(crate) fn new(client: kube::Client, state: S) -> Arc<Context<S>> {
        Arc::new(Context { client, state })
    }
}

/// Deletes the pod `name` if it is still the one with `uid`; a pod already gone is fine.
pub(crate) async fn delete_pod(
    pods: &Api<Pod>,
    ns: &str,
    name: &str,
    uid: String,
) -> Result<(), Error> {
    tracing::debug!(namespace = ns, pod = name, "deleting pod");
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match pods.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(api_error("delete", "Pod", ns, name)(err)),
    }
}

/// Makes `owner` the controller of an orphan pod whose labels match its selector, as the
/// real controllers adopt (a pod left behind by a workload deleted with
/// `propagationPolicy: Orphan` goes back to its successor). Conditional on the pod's
/// resourceVersion, so a pod that changed meanwhile is looked at again next time.
pub(crate) async fn adopt(
    pods: &Api<Pod>,
    ns: &str,
    pod: Pod,
    owner: k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> Result<Pod, Error> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    tracing::debug!(
        namespace = ns,
        pod = name,
        owner = owner.name,
        "adopting pod"
    );
    let mut owners = pod.metadata.owner_references.unwrap_or_default();
    owners.push(owner);
    let patch = serde_json::json!({"metadata": {
        "resourceVersion": pod.metadata.resource_version,
        "ownerReferences": owners,
    }});
    pods.patch(
        &name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(patch),
    )
    .await
    .map_err(api_error("adopt", "Pod", ns, &name))
}

/// Wraps a failed request's error with what it was.
pub(crate) fn api_error(
    verb: &'static str,
    kind: &'static str,
    namespace: &str,
    name: &str,
) -> impl FnOnce(kube::Error) -> Error {
    let (namespace, name) = (namespace.to_owned(), name.to_owned());
    move |source| Error::Api {
        verb,
        kind,
        namespace,
        name,
        source: Box::new(source),
    }
}
