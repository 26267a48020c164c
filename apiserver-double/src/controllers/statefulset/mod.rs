//! The StatefulSet controller: stable pod identities (`<set>-<ordinal>`), their claims,
//! ordered or parallel scaling, `OnDelete` and `RollingUpdate` (with `partition`),
//! claim retention, and the status Weir's operator reads (`updateRevision` and each pod's
//! `controller-revision-hash` decide which brokers are outdated). The decisions are in
//! [`plan`]; this module reads the inputs and makes the writes.
//!
//! Revisions are named `<set>-<hash of spec.template>` as in Kubernetes, but no
//! ControllerRevision objects are written (the double does not serve them). The template
//! of the *current* revision, needed only to recreate a pod below a rolling update's
//! partition, is remembered in memory from the templates this controller has seen; when
//! it is unknown (the template changed before the controller started) such a pod is
//! built from the update revision instead.
//!
//! Orphan pods (no controller) whose labels match the set's selector are adopted, as the
//! real controller does; a pod of the set's naming that belongs to another controller
//! blocks its ordinal (creating it fails with `AlreadyExists` and is retried).
//!
//! Claims are created `Pending` and then bound at once — `spec.volumeName:
//! pvc-<claim uid>` and `status.phase: Bound`, as dynamic provisioning would leave them —
//! without PersistentVolume objects. Under `whenScaled: Delete` a claim of a pod scaled
//! away gets that pod as its owner, as the real controller does, and the server's
//! garbage collector deletes it once the pod is gone.

mod claims;
mod plan;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use futures::Stream;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use serde_json::json;

use self::plan::{Plan, Set, Step};
use super::pods::{controlled_by, controller_ref, is_orphan, is_terminating, selector_matches};
use super::{Context, Error, RESYNC, RETRY, adopt, api_error, delete_pod};

/// The templates seen per StatefulSet (namespace, name, uid), by revision name: enough
/// to rebuild a pod of the current revision during a partitioned rolling update.
#[derive(Debug, Default)]
pub(crate) struct History {
    templates: Mutex<HashMap<SetKey, BTreeMap<String, PodTemplateSpec>>>,
}

/// A StatefulSet incarnation: namespace, name, uid.
type SetKey = (String, String, String);

impl History {
    /// Records `set`'s update revision and returns the template of its current revision
    /// if that is another one and known. Forgets every other revision.
    fn remember(&self, set: &StatefulSet) -> Option<PodTemplateSpec> {
        let meta = &set.metadata;
        let spec = set.spec.as_ref()?;
        let key = (
            meta.namespace.clone()?,
            meta.name.clone()?,
            meta.uid.clone()?,
        );
        let update = plan::revision_name(&key.1, &spec.template);
        let current = set
            .status
            .as_ref()
            .and_then(|s| s.current_revision.clone())
            .unwrap_or_else(|| update.clone());
        let mut all = self
            .templates
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let known = all.entry(key).or_default();
        known.insert(update.clone(), spec.template.clone());
        known.retain(|name, _| *name == update || *name == current);
        known.get(&current).filter(|_| current != update).cloned()
    }
}

/// The controller for all namespaces, as a stream of reconcile results.
pub(crate) fn controller(
    client: kube::Client,
) -> impl Stream<Item = Result<(ObjectRef<StatefulSet>, Action), controller::Error<Error, watcher::Error>>>
{
    let context = Context::new(client.clone(), History::default());
    Controller::new(
        Api::<StatefulSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Pod>::all(client.clone()), watcher::Config::default())
    .owns(
        Api::<PersistentVolumeClaim>::all(client),
        watcher::Config::default(),
    )
    .run(reconcile, |_, _, _| Action::requeue(RETRY), context)
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Context<History>>) -> Result<Action, Error> {
    // The garbage collector removes the pods of a set being deleted; nothing to add.
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Action::requeue(RESYNC));
    }
    let current_template = ctx.state.remember(&set);
    let view = Set::new(&set, current_template.as_ref())?;
    let ns = view.namespace.as_str();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let listed = pods_api
        .list(&ListParams::default())
        .await
        .map_err(api_error("list", "Pod", ns, ""))?
        .items;
    let selector = set.spec.as_ref().map(|s| &s.selector);
    let mut pods = Vec::new();
    for pod in listed {
        if controlled_by(&pod.metadata, &view.uid) {
            pods.push(pod);
        } else if is_orphan(&pod.metadata)
            && !is_terminating(&pod)
            && selector.is_some_and(|s| selector_matches(s, pod.metadata.labels.as_ref()))
        {
            let owner = controller_ref("StatefulSet", &view.name, &view.uid);
            pods.push(adopt(&pods_api, ns, pod, owner).await?);
        }
    }
    let claims: BTreeMap<String, PersistentVolumeClaim> = if view.claim_templates.is_empty() {
        BTreeMap::new()
    } else {
        claims_api
            .list(&ListParams::default())
            .await
            .map_err(api_error("list", "PersistentVolumeClaim", ns, ""))?
            .items
            .into_iter()
            .filter_map(|c| Some((c.metadata.name.clone()?, c)))
            .collect()
    };
    let Plan { steps, status } = plan::plan(&view, &pods, &claims, Timestamp::now());
    write_status(&ctx.client, &set, &view, status).await?;
    for step in steps {
        execute(&pods_api, &claims_api, ns, step).await?;
    }
    Ok(Action::requeue(RESYNC))
}

/// Writes `status` unless the stored one already says the same (conditions, which this
/// controller does not own, are left alone).
async fn write_status(
    client: &kube::Client,
    set: &StatefulSet,
    view: &Set<'_>,
    status: StatefulSetStatus,
) -> Result<(), Error> {
    let stored = set.status.clone().unwrap_or_default();
    if (StatefulSetStatus {
        conditions: None,
        ..stored
    }) == status
    {
        return Ok(());
    }
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), &view.namespace);
    api.patch_status(
        &view.name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map_err(api_error(
        "patch status of",
        "StatefulSet",
        &view.namespace,
        &view.name,
    ))?;
    Ok(())
}

async fn execute(
    pods: &Api<Pod>,
    claims: &Api<PersistentVolumeClaim>,
    ns: &str,
    step: Step,
) -> Result<(), Error> {
    match step {
        Step::CreateClaim(claim) => {
            let name = claim.metadata.name.clone().unwrap_or_default();
            tracing::debug!(namespace = ns, claim = name, "creating claim");
            let created = claims
                .create(&PostParams::default(), &claim)
                .await
                .map_err(api_error("create", "PersistentVolumeClaim", ns, &name))?;
            let uid = created.metadata.uid.unwrap_or_default();
            bind(claims, ns, &name, &uid).await
        }
        Step::BindClaim { name, uid } => bind(claims, ns, &name, &uid).await,
        Step::SetClaimOwners {
            name,
            resource_version,
            owners,
        } => {
            tracing::debug!(
                namespace = ns,
                claim = name,
                ?owners,
                "setting claim owners"
            );
            // The resourceVersion makes the merge patch conditional: owners decided from
            // a claim that changed since are not written.
            let patch = json!({"metadata": {
                "resourceVersion": resource_version,
                "ownerReferences": owners,
            }});
            claims
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(api_error(
                    "set owners of",
                    "PersistentVolumeClaim",
                    ns,
                    &name,
                ))?;
            Ok(())
        }
        Step::CreatePod(pod) => {
            let name = pod.metadata.name.clone().unwrap_or_default();
            tracing::debug!(namespace = ns, pod = name, "creating pod");
            pods.create(&PostParams::default(), &pod)
                .await
                .map_err(api_error("create", "Pod", ns, &name))?;
            Ok(())
        }
        Step::DeletePod { name, uid } => delete_pod(pods, ns, &name, uid).await,
    }
}

/// Binds a claim as dynamic provisioning would: a volume name, the binder's annotations,
/// then `status.phase: Bound` with the requested capacity.
async fn bind(
    claims: &Api<PersistentVolumeClaim>,
    ns: &str,
    name: &str,
    uid: &str,
) -> Result<(), Error> {
    let claim =
        claims
            .get(name)
            .await
            .map_err(api_error("get", "PersistentVolumeClaim", ns, name))?;
    let spec = claim.spec.unwrap_or_default();
    if spec.volume_name.as_deref().unwrap_or_default().is_empty() {
        let patch = json!({
            "metadata": {"annotations": {
                "pv.kubernetes.io/bind-completed": "yes",
                "pv.kubernetes.io/bound-by-controller": "yes",
            }},
            "spec": {"volumeName": format!("pvc-{uid}")},
        });
        claims
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(api_error("bind", "PersistentVolumeClaim", ns, name))?;
    }
    let capacity = spec
        .resources
        .and_then(|r| r.requests)
        .and_then(|r| r.get("storage").cloned());
    let status = json!({"status": {
        "phase": "Bound",
        "accessModes": spec.access_modes,
        "capacity": capacity.map(|storage| json!({"storage": storage})),
    }});
    claims
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .map_err(api_error("mark bound", "PersistentVolumeClaim", ns, name))?;
    Ok(())
}
