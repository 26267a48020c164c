//! The build step of the `Cluster` reconciler: every Kubernetes object a valid Cluster
//! owns, as pure functions of the [`ValidCluster`] (no client, no clock), so each is
//! tested as a golden object. The reconciler server-side-applies them in
//! [`ClusterObjects::in_apply_order`] order: the StatefulSet last, once what its pods
//! mount and resolve exists.

mod services;
mod statefulset;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use kube::api::{ApiResource, DynamicObject};
use kube::{Resource, ResourceExt as _};
use serde::Serialize;

use super::validate::ValidCluster;

pub use statefulset::{CONFIG_HASH_ANNOTATION, config_hash};

/// The label every owned object carries with the Cluster's name; broker pods are selected
/// by it and [`COMPONENT_LABEL`].
pub const CLUSTER_LABEL: &str = "weir.dev/cluster";
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";

/// Everything a Cluster owns.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterObjects {
    pub service_account: ServiceAccount,
    pub config_map: ConfigMap,
    pub headless_service: Service,
    pub bootstrap_service: Service,
    /// One per broker when an external listener is configured.
    pub external_services: Vec<Service>,
    pub pod_disruption_budget: PodDisruptionBudget,
    pub statefulset: StatefulSet,
}

/// One owned object as the apply step sends it: its API resource and its JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Owned {
    pub resource: ApiResource,
    pub object: DynamicObject,
}

impl Owned {
    fn of<K>(object: &K) -> Owned
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let resource = ApiResource::erase::<K>(&());
        let json = serde_json::to_value(object).unwrap_or_default();
        // A typed Kubernetes object always fits DynamicObject's shape.
        let object = serde_json::from_value(json).unwrap_or_else(|_| {
            DynamicObject::new(&object.name_any(), &resource)
                .within(&object.namespace().unwrap_or_default())
        });
        Owned { resource, object }
    }
}

impl ClusterObjects {
    /// ServiceAccount, ConfigMap, Services, PDB, then the StatefulSet.
    pub fn in_apply_order(&self) -> Vec<Owned> {
        let mut objects = vec![
            Owned::of(&self.service_account),
            Owned::of(&self.config_map),
            Owned::of(&self.headless_service),
            Owned::of(&self.bootstrap_service),
        ];
        objects.extend(self.external_services.iter().map(Owned::of));
        objects.push(Owned::of(&self.pod_disruption_budget));
        objects.push(Owned::of(&self.statefulset));
        objects
    }
}

/// Builds every owned object; `owner` is the Cluster's controller ownerReference.
pub fn build(cluster: &ValidCluster, owner: &OwnerReference) -> ClusterObjects {
    ClusterObjects {
        service_account: ServiceAccount {
            metadata: metadata(cluster, &cluster.names.statefulset(), owner),
            // Brokers never call the Kubernetes API.
            automount_service_account_token: Some(false),
            ..ServiceAccount::default()
        },
        config_map: ConfigMap {
            metadata: metadata(cluster, &cluster.names.config_map(), owner),
            data: Some(cluster.broker_configs.clone()),
            ..ConfigMap::default()
        },
        headless_service: services::headless(cluster, owner),
        bootstrap_service: services::bootstrap(cluster, owner),
        external_services: services::external(cluster, owner),
        pod_disruption_budget: PodDisruptionBudget {
            metadata: metadata(cluster, &cluster.names.statefulset(), owner),
            spec: Some(PodDisruptionBudgetSpec {
                // One broker down at a time: with RF 3 and min.insync.replicas 2, every
                // partition keeps accepting acks=all writes through a node drain.
                max_unavailable: Some(IntOrString::Int(1)),
                selector: Some(broker_selector(cluster)),
                ..PodDisruptionBudgetSpec::default()
            }),
            ..PodDisruptionBudget::default()
        },
        statefulset: statefulset::build(cluster, owner),
    }
}

/// Labels on every owned object.
pub fn labels(cluster: &ValidCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "weir".to_owned()),
        (
            "app.kubernetes.io/instance".to_owned(),
            cluster.names.cluster.clone(),
        ),
        (COMPONENT_LABEL.to_owned(), "broker".to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "weir-operator".to_owned(),
        ),
        (CLUSTER_LABEL.to_owned(), cluster.names.cluster.clone()),
    ])
}

/// The labels that select this Cluster's broker pods (a subset of [`labels`], stable
/// across operator versions: a StatefulSet's selector cannot change).
pub fn selector_labels(cluster: &ValidCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        (CLUSTER_LABEL.to_owned(), cluster.names.cluster.clone()),
        (COMPONENT_LABEL.to_owned(), "broker".to_owned()),
    ])
}

fn broker_selector(cluster: &ValidCluster) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector_labels(cluster)),
        ..LabelSelector::default()
    }
}

fn metadata(cluster: &ValidCluster, name: &str, owner: &OwnerReference) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(cluster.names.namespace.clone()),
        labels: Some(labels(cluster)),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    }
}

#[cfg(test)]
mod tests;
