//! What the StatefulSet controller does about one set, decided without I/O from the set,
//! the pods it controls and the namespace's claims: a list of writes, in order, and the
//! status to report. The rules, in the order `updateStatefulSet` applies them in
//! Kubernetes (`pkg/controller/statefulset/stateful_set_control.go`):
//!
//! 1. **Replicas** (ordinals `start .. start+replicas`, ascending). A `Failed`/`Succeeded`
//!    pod is deleted (it comes back on a later pass, once gone). A missing pod is created,
//!    its missing claims first, unless a claim is being deleted or (under
//!    `whenScaled: Delete`) still belongs to an earlier pod of that name. A pod still
//!    pending gets its missing claims. The claims of a pod are given the owner references
//!    the retention policy wants. Under `OrderedReady` the pass stops at the first pod
//!    created, terminating, or not yet Running, Ready and available: ordinal N is created
//!    only when 0..N-1 are Running and Ready.
//! 2. **Condemned** pods (controlled pods with an ordinal out of range): their claims get
//!    the policy's references (the pod's own under `whenScaled: Delete`); then they are
//!    deleted, highest ordinal first — all at once under `Parallel`; under `OrderedReady`
//!    one per pass, each only once the previous one is gone and the rest are healthy.
//! 3. **Updates**. `OnDelete` stops here: pods are replaced only when deleted, and a
//!    replacement is built from the update revision. `RollingUpdate` deletes the
//!    highest-ordinal pod at or above `partition` that is not on the update revision,
//!    one per pass, and only while the pods above it are healthy; a pod below the
//!    partition that has to be recreated gets the current revision.
//!
//! A name is never reused while an object of that name exists: a pod that is
//! terminating occupies its ordinal until it is gone.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;

use super::claims::{self, Retention};
use crate::controllers::Error;
use crate::controllers::pods::{
    controller_ref, is_available, is_finished, is_pending, is_running_and_ready, is_terminating,
    label, labels_with, template_hash,
};

/// The label naming the revision a pod was built from.
pub(crate) const REVISION_LABEL: &str = "controller-revision-hash";
/// The label naming the pod itself (Services can select a single replica with it).
pub(crate) const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label holding the pod's ordinal.
pub(crate) const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// A pod template and the revision name it hashes to (`<set>-<hash>`).
#[derive(Debug, Clone)]
pub(crate) struct Revision<'a> {
    pub(crate) name: String,
    pub(crate) template: &'a PodTemplateSpec,
}

/// A StatefulSet's spec with its defaults applied, and its revisions.
#[derive(Debug, Clone)]
pub(crate) struct Set<'a> {
    pub(crate) name: String,
    pub(crate) namespace: String,
    pub(crate) uid: String,
    pub(crate) generation: Option<i64>,
    pub(crate) replicas: i32,
    /// `spec.ordinals.start`.
    pub(crate) start: i32,
    /// `OrderedReady` (the default) rather than `Parallel`.
    pub(crate) monotonic: bool,
    pub(crate) on_delete: bool,
    pub(crate) partition: i32,
    pub(crate) min_ready_seconds: i32,
    pub(crate) retention: Retention,
    pub(crate) service_name: Option<String>,
    pub(crate) match_labels: BTreeMap<String, String>,
    pub(crate) claim_templates: &'a [PersistentVolumeClaim],
    /// The revision of `spec.template`.
    pub(crate) update: Revision<'a>,
    /// `status.currentRevision` (the update revision when there is none yet).
    pub(crate) current_name: String,
    /// The current revision's template, when it differs from the update revision's and
    /// is known; pods below a rolling update's partition are rebuilt from it.
    pub(crate) current: Option<Revision<'a>>,
}

/// The name of `set`'s revision of `template`.
pub(crate) fn revision_name(set_name: &str, template: &PodTemplateSpec) -> String {
    format!("{set_name}-{}", template_hash(template))
}

impl<'a> Set<'a> {
    /// Reads `set`; `current_template` is the template of `status.currentRevision` if the
    /// caller knows it.
    pub(crate) fn new(
        set: &'a StatefulSet,
        current_template: Option<&'a PodTemplateSpec>,
    ) -> Result<Set<'a>, Error> {
        let missing = |field| Error::Incomplete {
            kind: "StatefulSet",
            field,
        };
        let meta = &set.metadata;
        let name = meta.name.clone().ok_or_else(|| missing("name"))?;
        let namespace = meta.namespace.clone().ok_or_else(|| missing("namespace"))?;
        let uid = meta.uid.clone().ok_or_else(|| missing("uid"))?;
        let spec = set.spec.as_ref().ok_or_else(|| missing("spec"))?;
        let strategy = spec.update_strategy.as_ref();
        let policy = spec.persistent_volume_claim_retention_policy.as_ref();
        let is_delete = |v: Option<&String>| v.map(String::as_str) == Some("Delete");
        let update = Revision {
            name: revision_name(&name, &spec.template),
            template: &spec.template,
        };
        let current_name = set
            .status
            .as_ref()
            .and_then(|s| s.current_revision.clone())
            .unwrap_or_else(|| update.name.clone());
        let current = current_template
            .filter(|_| current_name != update.name)
            .map(|template| Revision {
                name: current_name.clone(),
                template,
            });
        Ok(Set {
            generation: meta.generation,
            replicas: spec.replicas.unwrap_or(1).max(0),
            start: spec
                .ordinals
                .as_ref()
                .and_then(|o| o.start)
                .unwrap_or(0)
                .max(0),
            monotonic: spec.pod_management_policy.as_deref() != Some("Parallel"),
            on_delete: strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete"),
            partition: strategy
                .and_then(|s| s.rolling_update.as_ref())
                .and_then(|r| r.partition)
                .unwrap_or(0)
                .max(0),
            min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
            retention: Retention {
                when_deleted: is_delete(policy.and_then(|p| p.when_deleted.as_ref())),
                when_scaled: is_delete(policy.and_then(|p| p.when_scaled.as_ref())),
            },
            service_name: spec.service_name.clone().filter(|s| !s.is_empty()),
            match_labels: spec.selector.match_labels.clone().unwrap_or_default(),
            claim_templates: spec.volume_claim_templates.as_deref().unwrap_or_default(),
            update,
            current_name,
            current,
            name,
            namespace,
            uid,
        })
    }

    pub(crate) fn pod_name(&self, ordinal: i32) -> String {
        format!("{}-{ordinal}", self.name)
    }

    /// The ordinal in a pod's name `<set>-<ordinal>` (canonical decimal), if it has one.
    pub(crate) fn ordinal_of(&self, pod: &Pod) -> Option<i32> {
        let name = pod.metadata.name.as_deref()?;
        let digits = name.strip_prefix(&self.name)?.strip_prefix('-')?;
        let ordinal: i32 = digits.parse().ok()?;
        (ordinal >= 0 && ordinal.to_string() == digits).then_some(ordinal)
    }

    fn in_range(&self, ordinal: i32) -> bool {
        (self.start..self.start.saturating_add(self.replicas)).contains(&ordinal)
    }

    /// The revision a new pod of `ordinal` is built from.
    fn revision_for(&self, ordinal: i32) -> &Revision<'a> {
        let below_partition = !self.on_delete && ordinal < self.start + self.partition;
        match &self.current {
            Some(current) if below_partition => current,
            _ => &self.update,
        }
    }
}

/// One write the controller makes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    CreateClaim(Box<PersistentVolumeClaim>),
    /// Marks an existing claim bound (what a volume binder does after provisioning).
    BindClaim {
        name: String,
        uid: String,
    },
    SetClaimOwners {
        name: String,
        resource_version: String,
        owners: Vec<OwnerReference>,
    },
    CreatePod(Box<Pod>),
    /// Deletes the pod with this uid (a precondition: never a successor of that name).
    DeletePod {
        name: String,
        uid: String,
    },
}

/// The writes to make, in order (stop at the first that fails), and the status that
/// describes what was observed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub(crate) steps: Vec<Step>,
    pub(crate) status: StatefulSetStatus,
}

/// What occupies an ordinal in range.
#[derive(Debug, Clone)]
enum Slot<'p> {
    Pod {
        pod: &'p Pod,
        deleting: bool,
    },
    /// Created by this pass (so neither running nor ready yet).
    Created,
    Missing,
}

impl Slot<'_> {
    /// Running, Ready and not on its way out.
    fn healthy(&self) -> bool {
        match self {
            Slot::Pod { pod, deleting } => {
                !deleting && !is_terminating(pod) && is_running_and_ready(pod)
            }
            Slot::Created | Slot::Missing => false,
        }
    }
}

/// Decides what to do about `set`, whose controlled pods are `pods`, with `claims` the
/// namespace's claims by name.
pub(crate) fn plan(
    set: &Set<'_>,
    pods: &[Pod],
    claims: &BTreeMap<String, PersistentVolumeClaim>,
    now: Timestamp,
) -> Plan {
    let mut slots: Vec<(i32, Slot<'_>)> = (0..set.replicas)
        .map(|i| {
            let ordinal = set.start + i;
            let slot = pods
                .iter()
                .find(|p| set.ordinal_of(p) == Some(ordinal))
                .map_or(Slot::Missing, |pod| Slot::Pod {
                    pod,
                    deleting: false,
                });
            (ordinal, slot)
        })
        .collect();
    let mut condemned: Vec<(i32, &Pod)> = pods
        .iter()
        .filter_map(|p| set.ordinal_of(p).map(|o| (o, p)))
        .filter(|(o, _)| !set.in_range(*o))
        .collect();
    condemned.sort_by_key(|(o, _)| Reverse(*o));

    let mut planner = Planner {
        set,
        claims,
        now,
        steps: Vec::new(),
    };
    planner.bind_claims(&slots);
    if planner.replicas(&mut slots) && planner.condemned(&slots, &condemned) && !set.on_delete {
        planner.roll(&slots);
    }
    Plan {
        steps: planner.steps,
        status: status(set, pods, now),
    }
}

struct Planner<'s, 'a> {
    set: &'s Set<'a>,
    claims: &'s BTreeMap<String, PersistentVolumeClaim>,
    now: Timestamp,
    steps: Vec<Step>,
}

impl Planner<'_, '_> {
    fn available(&self, pod: &Pod) -> bool {
        is_available(pod, self.set.min_ready_seconds, self.now)
    }

    /// The claim names of `ordinal`, with each template.
    fn claims_of(&self, ordinal: i32) -> impl Iterator<Item = (String, &PersistentVolumeClaim)> {
        self.set.claim_templates.iter().map(move |t| {
            let template = t.metadata.name.as_deref().unwrap_or_default();
            (claims::claim_name(template, &self.set.name, ordinal), t)
        })
    }

    /// Existing claims of pods in range that no binder has bound yet.
    fn bind_claims(&mut self, slots: &[(i32, Slot<'_>)]) {
        for (ordinal, _) in slots {
            let names: Vec<String> = self.claims_of(*ordinal).map(|(n, _)| n).collect();
            for name in names {
                if let Some(claim) = self.claims.get(&name)
                    && !claims::is_bound(claim)
                    && claim.metadata.deletion_timestamp.is_none()
                {
                    let uid = claim.metadata.uid.clone().unwrap_or_default();
                    self.steps.push(Step::BindClaim { name, uid });
                }
            }
        }
    }

    /// Rule 1; false when the pass must stop here.
    fn replicas(&mut self, slots: &mut [(i32, Slot<'_>)]) -> bool {
        let monotonic = self.set.monotonic;
        for (ordinal, slot) in slots.iter_mut() {
            let proceed = match slot {
                Slot::Pod { pod, deleting } if is_finished(pod) => {
                    if !is_terminating(pod) {
                        self.delete(pod);
                        *deleting = true;
                    }
                    false
                }
                Slot::Missing => {
                    if self.create(*ordinal) {
                        *slot = Slot::Created;
                    }
                    false
                }
                Slot::Pod { pod, .. } => {
                    if is_pending(pod) {
                        self.create_missing_claims(*ordinal);
                    }
                    if monotonic && (is_terminating(pod) || !self.available(pod)) {
                        false
                    } else {
                        self.fix_claim_owners(*ordinal, pod, false);
                        true
                    }
                }
                Slot::Created => true,
            };
            if !proceed && monotonic {
                return false;
            }
        }
        true
    }

    /// Creates the pod of `ordinal` (and its missing claims); false when a claim it needs
    /// is on its way out.
    fn create(&mut self, ordinal: i32) -> bool {
        let pod_name = self.set.pod_name(ordinal);
        let mut new_claims = Vec::new();
        for (name, template) in self.claims_of(ordinal) {
            match self.claims.get(&name) {
                Some(claim) if claim.metadata.deletion_timestamp.is_some() => return false,
                Some(claim)
                    if self.set.retention.when_scaled
                        && claims::is_stale(claim, &pod_name, None) =>
                {
                    return false;
                }
                Some(_) => {}
                None => new_claims.push(claims::new_claim(self.set, template, ordinal)),
            }
        }
        self.steps.extend(
            new_claims
                .into_iter()
                .map(|c| Step::CreateClaim(Box::new(c))),
        );
        let revision = self.set.revision_for(ordinal);
        self.steps.push(Step::CreatePod(Box::new(new_pod(
            self.set, ordinal, revision,
        ))));
        true
    }

    fn create_missing_claims(&mut self, ordinal: i32) {
        let missing: Vec<Step> = self
            .claims_of(ordinal)
            .filter(|(name, _)| !self.claims.contains_key(name))
            .map(|(_, template)| {
                Step::CreateClaim(Box::new(claims::new_claim(self.set, template, ordinal)))
            })
            .collect();
        self.steps.extend(missing);
    }

    /// Gives the claims of `pod` the owner references the retention policy wants.
    fn fix_claim_owners(&mut self, ordinal: i32, pod: &Pod, scaled_down: bool) {
        let pod_name = self.set.pod_name(ordinal);
        let names: Vec<String> = self.claims_of(ordinal).map(|(n, _)| n).collect();
        for name in names {
            let Some(claim) = self.claims.get(&name) else {
                continue;
            };
            if claim.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let current = claim
                .metadata
                .owner_references
                .as_deref()
                .unwrap_or_default();
            let owners = claims::owners(
                current,
                self.set,
                &pod_name,
                pod.metadata.uid.as_deref(),
                scaled_down,
            );
            if owners != current {
                self.steps.push(Step::SetClaimOwners {
                    name,
                    resource_version: claim.metadata.resource_version.clone().unwrap_or_default(),
                    owners,
                });
            }
        }
    }

    fn delete(&mut self, pod: &Pod) {
        self.steps.push(Step::DeletePod {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        });
    }

    /// Rule 2; false when the pass must stop here.
    fn condemned(&mut self, slots: &[(i32, Slot<'_>)], condemned: &[(i32, &Pod)]) -> bool {
        for (ordinal, pod) in condemned {
            self.fix_claim_owners(*ordinal, pod, true);
        }
        let healthy = |pod: &Pod| !is_terminating(pod) && is_running_and_ready(pod);
        let first_unhealthy = slots
            .iter()
            .find(|(_, s)| !s.healthy())
            .map(|(o, _)| *o)
            .or_else(|| {
                condemned
                    .iter()
                    .rev()
                    .find(|(_, p)| !healthy(p))
                    .map(|(o, _)| *o)
            });
        let monotonic = self.set.monotonic;
        for (ordinal, pod) in condemned {
            if is_terminating(pod) {
                if monotonic {
                    return false;
                }
                continue;
            }
            if monotonic && !self.available(pod) && first_unhealthy != Some(*ordinal) {
                return false;
            }
            self.delete(pod);
            if monotonic {
                return false;
            }
        }
        true
    }

    /// Rule 3 for `RollingUpdate`.
    fn roll(&mut self, slots: &[(i32, Slot<'_>)]) {
        let update = &self.set.update.name;
        for (ordinal, slot) in slots.iter().rev() {
            if *ordinal < self.set.start + self.set.partition {
                return;
            }
            if let Slot::Pod {
                pod,
                deleting: false,
            } = slot
                && label(&pod.metadata, REVISION_LABEL) != Some(update.as_str())
                && !is_terminating(pod)
            {
                self.delete(pod);
                return;
            }
            if !slot.healthy() {
                return;
            }
        }
    }
}

/// The pod of `ordinal` built from `revision`: the template's metadata and spec, the
/// identity the StatefulSet gives it (name, hostname, subdomain, labels), its claims as
/// volumes, and the set as its controller.
pub(crate) fn new_pod(set: &Set<'_>, ordinal: i32, revision: &Revision<'_>) -> Pod {
    let name = set.pod_name(ordinal);
    let template = revision.template;
    let labels = labels_with(
        template,
        [
            (POD_NAME_LABEL.to_owned(), name.clone()),
            (POD_INDEX_LABEL.to_owned(), ordinal.to_string()),
            (REVISION_LABEL.to_owned(), revision.name.clone()),
        ],
    );
    let template_meta = template.metadata.clone().unwrap_or_default();
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name.clone());
    spec.subdomain.clone_from(&set.service_name);
    let claim_volumes: Vec<Volume> = set
        .claim_templates
        .iter()
        .map(|t| {
            let volume = t.metadata.name.clone().unwrap_or_default();
            Volume {
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claims::claim_name(&volume, &set.name, ordinal),
                    read_only: None,
                }),
                name: volume,
                ..Volume::default()
            }
        })
        .collect();
    let others = spec
        .volumes
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|v| !claim_volumes.iter().any(|c| c.name == v.name));
    let volumes: Vec<Volume> = claim_volumes.iter().cloned().chain(others).collect();
    spec.volumes = (!volumes.is_empty()).then_some(volumes);
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(set.namespace.clone()),
            labels: Some(labels),
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![controller_ref("StatefulSet", &set.name, &set.uid)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The status of `set` with controlled pods `pods`. `currentRevision` becomes the update
/// revision once every replica runs it (under `RollingUpdate`, and is Ready).
pub(crate) fn status(set: &Set<'_>, pods: &[Pod], now: Timestamp) -> StatefulSetStatus {
    let (mut replicas, mut ready, mut available, mut current, mut updated) = (0, 0, 0, 0, 0);
    for pod in pods {
        replicas += 1;
        if is_running_and_ready(pod) {
            ready += 1;
            if is_available(pod, set.min_ready_seconds, now) {
                available += 1;
            }
        }
        if !is_terminating(pod) {
            let revision = label(&pod.metadata, REVISION_LABEL);
            if revision == Some(set.current_name.as_str()) {
                current += 1;
            }
            if revision == Some(set.update.name.as_str()) {
                updated += 1;
            }
        }
    }
    let mut current_revision = set.current_name.clone();
    let complete = replicas == set.replicas
        && updated == set.replicas
        && (set.on_delete || ready == set.replicas);
    if complete {
        current_revision.clone_from(&set.update.name);
        current = updated;
    }
    StatefulSetStatus {
        observed_generation: set.generation,
        replicas,
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        current_replicas: Some(current),
        updated_replicas: Some(updated),
        current_revision: Some(current_revision),
        update_revision: Some(set.update.name.clone()),
        collision_count: Some(0),
        conditions: None,
    }
}
