//! A minimal Deployment controller, enough to run the operator's own Deployment from its
//! Helm chart: keep `spec.replicas` pods of the current template, replace deleted or
//! ended ones, roll a template change out, report status.
//!
//! **No ReplicaSets.** Kubernetes puts a ReplicaSet per template between a Deployment and
//! its pods; here the Deployment controls its pods directly. What the ReplicaSet would
//! contribute is kept where a client can see it: pods are named
//! `<deployment>-<pod-template-hash>-<5 random characters>` (the ReplicaSet's name plus
//! the suffix it would generate) and labelled `pod-template-hash=<hash>`, the hash of
//! the template (see [`template_hash`]). Pods with another hash are the "old
//! ReplicaSets".
//!
//! Rollouts follow the strategy: `Recreate` deletes the old pods and creates new ones
//! once they are gone; `RollingUpdate` (the default) creates new pods within `maxSurge`
//! (default 25%, rounded up), then deletes old ones as far as `maxUnavailable` (default
//! 25%, rounded down; 1 if both are 0) allows, unavailable ones first, one step per
//! reconcile as `rolloutRolling` does. Pods that ended (`Failed`, `Succeeded`) are
//! deleted and replaced (a ReplicaSet would replace them but leave them for the pod
//! garbage collector). `paused`, `progressDeadlineSeconds` and revision history are not
//! implemented.

use std::cmp::Reverse;
use std::sync::Arc;

use futures::Stream;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use serde_json::json;

use super::pods::{
    controlled_by, controller_ref, is_available, is_finished, is_running_and_ready, is_terminating,
    label, labels_with, template_hash,
};
use super::{Context, Error, RESYNC, RETRY, api_error, delete_pod};

/// The label holding the hash of the template a pod was made from.
pub(crate) const HASH_LABEL: &str = "pod-template-hash";

/// The controller for all namespaces, as a stream of reconcile results.
pub(crate) fn controller(
    client: kube::Client,
) -> impl Stream<Item = Result<(ObjectRef<Deployment>, Action), controller::Error<Error, watcher::Error>>>
{
    let context = Context::new(client.clone(), ());
    Controller::new(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Pod>::all(client), watcher::Config::default())
    .run(reconcile, |_, _, _| Action::requeue(RETRY), context)
}

async fn reconcile(deployment: Arc<Deployment>, ctx: Arc<Context<()>>) -> Result<Action, Error> {
    if deployment.metadata.deletion_timestamp.is_some() {
        return Ok(Action::requeue(RESYNC));
    }
    let view = Deploy::new(&deployment)?;
    let ns = view.namespace.as_str();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let pods: Vec<Pod> = pods_api
        .list(&ListParams::default())
        .await
        .map_err(api_error("list", "Pod", ns, ""))?
        .items
        .into_iter()
        .filter(|p| controlled_by(&p.metadata, &view.uid))
        .collect();
    let stored = deployment.status.clone().unwrap_or_default();
    let (steps, status) = plan(&view, &pods, &stored, Timestamp::now());
    if status != stored {
        Api::<Deployment>::namespaced(ctx.client.clone(), ns)
            .patch_status(
                &view.name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
            .map_err(api_error("patch status of", "Deployment", ns, &view.name))?;
    }
    for step in steps {
        match step {
            Step::CreatePod(pod) => {
                tracing::debug!(namespace = ns, deployment = view.name, "creating pod");
                pods_api
                    .create(&PostParams::default(), &pod)
                    .await
                    .map_err(api_error("create", "Pod", ns, &view.name))?;
            }
            Step::DeletePod { name, uid } => delete_pod(&pods_api, ns, &name, uid).await?,
        }
    }
    Ok(Action::requeue(RESYNC))
}

/// A Deployment's spec with defaults applied.
#[derive(Debug, Clone)]
struct Deploy<'a> {
    name: String,
    namespace: String,
    uid: String,
    generation: Option<i64>,
    replicas: i32,
    recreate: bool,
    max_surge: i32,
    max_unavailable: i32,
    min_ready_seconds: i32,
    template: &'a PodTemplateSpec,
    hash: String,
}

impl<'a> Deploy<'a> {
    fn new(deployment: &'a Deployment) -> Result<Deploy<'a>, Error> {
        let missing = |field| Error::Incomplete {
            kind: "Deployment",
            field,
        };
        let meta = &deployment.metadata;
        let spec = deployment.spec.as_ref().ok_or_else(|| missing("spec"))?;
        let replicas = spec.replicas.unwrap_or(1).max(0);
        let strategy = spec.strategy.as_ref();
        let recreate = strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate");
        let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
        let quarter = IntOrString::String("25%".to_owned());
        let (max_surge, mut max_unavailable) = if recreate {
            (0, 0)
        } else {
            let surge = rolling
                .and_then(|r| r.max_surge.as_ref())
                .unwrap_or(&quarter);
            let unavailable = rolling
                .and_then(|r| r.max_unavailable.as_ref())
                .unwrap_or(&quarter);
            (
                scaled(surge, replicas, true),
                scaled(unavailable, replicas, false).min(replicas),
            )
        };
        if !recreate && max_surge == 0 && max_unavailable == 0 {
            max_unavailable = 1;
        }
        Ok(Deploy {
            name: meta.name.clone().ok_or_else(|| missing("name"))?,
            namespace: meta.namespace.clone().ok_or_else(|| missing("namespace"))?,
            uid: meta.uid.clone().ok_or_else(|| missing("uid"))?,
            generation: meta.generation,
            replicas,
            recreate,
            max_surge,
            max_unavailable,
            min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
            template: &spec.template,
            hash: template_hash(&spec.template),
        })
    }

    /// What the ReplicaSet of the current template would be called.
    fn replica_set_name(&self) -> String {
        format!("{}-{}", self.name, self.hash)
    }
}

/// An absolute number, or a percentage of `total` rounded up or down.
fn scaled(value: &IntOrString, total: i32, round_up: bool) -> i32 {
    match value {
        IntOrString::Int(n) => (*n).max(0),
        IntOrString::String(s) => {
            let percent: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let product = percent.max(0) * i64::from(total);
            let result = if round_up {
                (product + 99) / 100
            } else {
                product / 100
            };
            i32::try_from(result).unwrap_or(i32::MAX)
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    CreatePod(Box<Pod>),
    DeletePod { name: String, uid: String },
}

fn new_pod(d: &Deploy<'_>) -> Pod {
    let template_meta = d.template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", d.replica_set_name())),
            namespace: Some(d.namespace.clone()),
            labels: Some(labels_with(
                d.template,
                [(HASH_LABEL.to_owned(), d.hash.clone())],
            )),
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![controller_ref("Deployment", &d.name, &d.uid)]),
            ..ObjectMeta::default()
        },
        spec: d.template.spec.clone(),
        status: None,
    }
}

fn delete(pod: &Pod) -> Step {
    Step::DeletePod {
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
    }
}

/// Decides the writes for deployment `d` whose controlled pods are `pods`, and its status
/// (`stored` supplies the condition times that did not change).
fn plan(
    d: &Deploy<'_>,
    pods: &[Pod],
    stored: &DeploymentStatus,
    now: Timestamp,
) -> (Vec<Step>, DeploymentStatus) {
    let available = |p: &&Pod| is_available(p, d.min_ready_seconds, now);
    let mut steps: Vec<Step> = pods
        .iter()
        .filter(|p| is_finished(p) && !is_terminating(p))
        .map(delete)
        .collect();
    let active: Vec<&Pod> = pods
        .iter()
        .filter(|p| !is_finished(p) && !is_terminating(p))
        .collect();
    let is_new = |p: &&Pod| label(&p.metadata, HASH_LABEL) == Some(d.hash.as_str());
    let (mut new, mut old): (Vec<&Pod>, Vec<&Pod>) = active.iter().copied().partition(is_new);
    // The order a ReplicaSet deletes in: not running, not ready, unavailable, newest.
    let rank = |p: &&Pod| {
        (
            is_running_and_ready(p),
            available(p),
            Reverse(p.metadata.creation_timestamp.clone().map(|t| t.0)),
            p.metadata.name.clone(),
        )
    };
    new.sort_by_key(rank);
    old.sort_by_key(rank);
    let replicas = usize::try_from(d.replicas).unwrap_or(0);
    if new.len() > replicas {
        steps.extend(new[..new.len() - replicas].iter().map(|p| delete(p)));
    } else if d.recreate {
        let old_terminating = pods
            .iter()
            .any(|p| is_terminating(p) && label(&p.metadata, HASH_LABEL) != Some(d.hash.as_str()));
        if !old.is_empty() {
            steps.extend(old.iter().map(|p| delete(p)));
        } else if !old_terminating {
            steps.extend((new.len()..replicas).map(|_| Step::CreatePod(Box::new(new_pod(d)))));
        }
    } else {
        let surge = usize::try_from(d.max_surge).unwrap_or(0);
        let room = (replicas + surge).saturating_sub(active.len());
        let create = (replicas - new.len()).min(room);
        steps.extend((0..create).map(|_| Step::CreatePod(Box::new(new_pod(d)))));
        if create == 0 {
            steps.extend(scale_down_old(d, &new, &old, &available));
        }
    }
    let status = status(d, &active, &new, &old, stored, now);
    (steps, status)
}

/// Old pods to delete in a rolling update: unavailable ones, then available ones, as far
/// as keeping `replicas - maxUnavailable` pods available allows.
fn scale_down_old(
    d: &Deploy<'_>,
    new: &[&Pod],
    old: &[&Pod],
    available: &impl Fn(&&Pod) -> bool,
) -> Vec<Step> {
    let count = |pods: &[&Pod]| i32::try_from(pods.len()).unwrap_or(i32::MAX);
    let min_available = d.replicas - d.max_unavailable;
    let new_available = count(&new.iter().copied().filter(available).collect::<Vec<_>>());
    let new_unavailable = count(new) - new_available;
    let max_scaled_down = count(new) + count(old) - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    let (old_available, old_unavailable): (Vec<&Pod>, Vec<&Pod>) =
        old.iter().copied().partition(available);
    let cleanup = old_unavailable
        .iter()
        .take(usize::try_from(max_scaled_down).unwrap_or(0));
    let scale_down = (new_available + count(&old_available) - min_available).max(0);
    let healthy = old_available
        .iter()
        .take(usize::try_from(scale_down).unwrap_or(0));
    cleanup.chain(healthy).map(|p| delete(p)).collect()
}

fn status(
    d: &Deploy<'_>,
    active: &[&Pod],
    new: &[&Pod],
    old: &[&Pod],
    stored: &DeploymentStatus,
    now: Timestamp,
) -> DeploymentStatus {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let ready = count(active.iter().filter(|p| is_running_and_ready(p)).count());
    let available = count(
        active
            .iter()
            .filter(|p| is_available(p, d.min_ready_seconds, now))
            .count(),
    );
    let new_available = count(
        new.iter()
            .filter(|p| is_available(p, d.min_ready_seconds, now))
            .count(),
    );
    let replicas = count(active.len());
    let minimum = available >= d.replicas - d.max_unavailable;
    let complete = count(new.len()) == d.replicas && new_available == d.replicas && old.is_empty();
    let rs = d.replica_set_name();
    let conditions = vec![
        condition(
            stored,
            "Available",
            minimum,
            if minimum {
                (
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.".to_owned(),
                )
            } else {
                (
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.".to_owned(),
                )
            },
            now,
        ),
        condition(
            stored,
            "Progressing",
            true,
            if complete {
                (
                    "NewReplicaSetAvailable",
                    format!("ReplicaSet \"{rs}\" has successfully progressed."),
                )
            } else {
                (
                    "ReplicaSetUpdated",
                    format!("ReplicaSet \"{rs}\" is progressing."),
                )
            },
            now,
        ),
    ];
    DeploymentStatus {
        observed_generation: d.generation,
        replicas: Some(replicas),
        updated_replicas: Some(count(new.len())),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((replicas.max(d.replicas) - available).max(0)),
        conditions: Some(conditions),
        ..stored.clone()
    }
}

/// A condition, keeping the stored one's times when nothing about it changed.
fn condition(
    stored: &DeploymentStatus,
    type_: &str,
    status: bool,
    (reason, message): (&str, String),
    now: Timestamp,
) -> DeploymentCondition {
    let status = if status { "True" } else { "False" }.to_owned();
    let previous = stored
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_);
    let same_status = previous.is_some_and(|c| c.status == status);
    let unchanged = same_status && previous.is_some_and(|c| c.reason.as_deref() == Some(reason));
    let stamp = Some(Time(now));
    DeploymentCondition {
        last_transition_time: if same_status {
            previous.and_then(|c| c.last_transition_time.clone())
        } else {
            stamp.clone()
        },
        last_update_time: if unchanged {
            previous.and_then(|c| c.last_update_time.clone())
        } else {
            stamp
        },
        message: Some(message),
        reason: Some(reason.to_owned()),
        status,
        type_: type_.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_surge_up_and_unavailability_down() {
        let quarter = IntOrString::String("25%".into());
        assert_eq!(scaled(&quarter, 1, true), 1);
        assert_eq!(scaled(&quarter, 1, false), 0);
        assert_eq!(scaled(&quarter, 10, true), 3);
        assert_eq!(scaled(&quarter, 10, false), 2);
        assert_eq!(scaled(&IntOrString::Int(2), 10, false), 2);
    }
}
