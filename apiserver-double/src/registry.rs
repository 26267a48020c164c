//! The resource types the double serves: the built-in ones, and those registered by
//! CustomResourceDefinitions or from Rust.
//!
//! Owns [`ResourceType`] (group, versions, kind, plural, scope, status subresource, short
//! names, categories, per-version schemas) and the [`Registry`] keyed by group and plural.
//! Invariant: one entry per (group, plural); objects are stored per (group, plural) and not
//! per version, so a resource served at several versions has one set of objects, as with a
//! CRD whose conversion strategy is `None` (only `apiVersion` differs between versions).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::status::ApiError;

/// Whether objects of a resource live in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `metadata.namespace` is required and taken from the request path.
    Namespaced,
    /// The resource has no namespace (Namespaces, Nodes, CRDs, ...).
    Cluster,
}

/// One resource the double serves, as discovery describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub(crate) group: String,
    /// Served versions, the preferred one first.
    pub(crate) versions: Vec<String>,
    pub(crate) kind: String,
    pub(crate) plural: String,
    pub(crate) singular: String,
    pub(crate) scope: Scope,
    pub(crate) status_subresource: bool,
    pub(crate) short_names: Vec<String>,
    pub(crate) categories: Vec<String>,
    /// `openAPIV3Schema` per version (custom resources only): defaults are applied from it.
    pub(crate) schemas: BTreeMap<String, Value>,
    /// The CustomResourceDefinition that registered the resource, if any.
    pub(crate) crd: Option<String>,
}

impl ResourceType {
    /// A resource served at `group`/`version` (group `""` is the core group).
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, scope: Scope) -> ResourceType {
        ResourceType {
            group: group.to_owned(),
            versions: vec![version.to_owned()],
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            singular: kind.to_lowercase(),
            scope,
            status_subresource: false,
            short_names: Vec::new(),
            categories: Vec::new(),
            schemas: BTreeMap::new(),
            crd: None,
        }
    }

    /// Serves the `/status` subresource: writes to the main resource then keep `.status`,
    /// and writes to `/status` change only `.status`.
    pub fn with_status_subresource(mut self) -> ResourceType {
        self.status_subresource = true;
        self
    }

    /// Short names, as `kubectl get cm` uses them.
    pub fn with_short_names(mut self, names: &[&str]) -> ResourceType {
        self.short_names = names.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Categories, as `kubectl get all` uses them.
    pub fn with_categories(mut self, categories: &[&str]) -> ResourceType {
        self.categories = categories.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// The API group (`""` for the core group).
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The plural resource name used in paths.
    pub fn plural(&self) -> &str {
        &self.plural
    }

    /// The kind of the objects.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub(crate) fn key(&self) -> ResourceKey {
        ResourceKey::new(&self.group, &self.plural)
    }

    pub(crate) fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    pub(crate) fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    /// `apiVersion` of objects served at `version`.
    pub(crate) fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// The resource as error messages name it: `configmaps`, `leases.coordination.k8s.io`.
    pub(crate) fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub(crate) fn schema(&self, version: &str) -> Option<&Value> {
        self.schemas.get(version)
    }
}

/// Where the objects of a resource are stored: group and plural, not version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ResourceKey {
    pub(crate) group: String,
    pub(crate) plural: String,
}

impl ResourceKey {
    pub(crate) fn new(group: &str, plural: &str) -> ResourceKey {
        ResourceKey {
            group: group.to_owned(),
            plural: plural.to_owned(),
        }
    }

    pub(crate) fn is_crd(&self) -> bool {
        self.group == "apiextensions.k8s.io" && self.plural == "customresourcedefinitions"
    }

    pub(crate) fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.plural == "namespaces"
    }
}

/// Every resource the double serves.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    resources: BTreeMap<ResourceKey, ResourceType>,
}

impl Registry {
    /// The built-in resources (see the crate docs for the list).
    pub(crate) fn with_builtins() -> Registry {
        let mut registry = Registry {
            resources: BTreeMap::new(),
        };
        for rt in builtins() {
            registry.register(rt);
        }
        registry
    }

    pub(crate) fn register(&mut self, rt: ResourceType) {
        self.resources.insert(rt.key(), rt);
    }

    pub(crate) fn unregister(&mut self, key: &ResourceKey) -> Option<ResourceType> {
        self.resources.remove(key)
    }

    /// The resource at `group`/`version`/`plural`, if that version is served.
    pub(crate) fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.resources
            .get(&ResourceKey::new(group, plural))
            .filter(|rt| rt.serves(version))
    }

    /// The resource registered by the CRD named `crd_name`, if any.
    pub(crate) fn by_crd(&self, crd_name: &str) -> Option<&ResourceType> {
        self.resources
            .values()
            .find(|rt| rt.crd.as_deref() == Some(crd_name))
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &ResourceType> {
        self.resources.values()
    }

    /// Served groups (without the core group) with their versions, preferred first.
    pub(crate) fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for rt in self.resources.values().filter(|rt| !rt.group.is_empty()) {
            let versions = groups.entry(rt.group.clone()).or_default();
            for v in &rt.versions {
                if !versions.contains(v) {
                    versions.push(v.clone());
                }
            }
        }
        for versions in groups.values_mut() {
            versions.sort_by_key(|v| version_priority(v));
        }
        groups
    }
}

/// Sort key of Kubernetes version names: GA before beta before alpha, higher numbers first,
/// names that are not of the `v1beta2` form last, alphabetically.
pub(crate) fn version_priority(version: &str) -> (u8, i64, i64, String) {
    let parsed = version.strip_prefix('v').and_then(|rest| {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: i64 = rest[..digits].parse().ok()?;
        let tail = &rest[digits..];
        if tail.is_empty() {
            return Some((0, -major, 0));
        }
        let (tier, minor) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (2, n)
        } else {
            return None;
        };
        let minor: i64 = if minor.is_empty() {
            0
        } else {
            minor.parse().ok()?
        };
        Some((tier, -major, -minor))
    });
    match parsed {
        Some((tier, major, minor)) => (tier, major, minor, String::new()),
        None => (3, 0, 0, version.to_owned()),
    }
}

fn builtins() -> Vec<ResourceType> {
    use Scope::{Cluster, Namespaced};
    let all = ["all"];
    vec![
        ResourceType::new("", "v1", "Namespace", "namespaces", Cluster)
            .with_status_subresource()
            .with_short_names(&["ns"]),
        ResourceType::new("", "v1", "Node", "nodes", Cluster)
            .with_status_subresource()
            .with_short_names(&["no"]),
        ResourceType::new("", "v1", "PersistentVolume", "persistentvolumes", Cluster)
            .with_status_subresource()
            .with_short_names(&["pv"]),
        ResourceType::new("", "v1", "ConfigMap", "configmaps", Namespaced)
            .with_short_names(&["cm"]),
        ResourceType::new("", "v1", "Secret", "secrets", Namespaced),
        ResourceType::new("", "v1", "Service", "services", Namespaced)
            .with_status_subresource()
            .with_short_names(&["svc"])
            .with_categories(&all),
        ResourceType::new("", "v1", "ServiceAccount", "serviceaccounts", Namespaced)
            .with_short_names(&["sa"]),
        ResourceType::new("", "v1", "Pod", "pods", Namespaced)
            .with_status_subresource()
            .with_short_names(&["po"])
            .with_categories(&all),
        ResourceType::new(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            Namespaced,
        )
        .with_status_subresource()
        .with_short_names(&["pvc"]),
        ResourceType::new("", "v1", "Event", "events", Namespaced).with_short_names(&["ev"]),
        ResourceType::new("", "v1", "Endpoints", "endpoints", Namespaced).with_short_names(&["ep"]),
        ResourceType::new("apps", "v1", "StatefulSet", "statefulsets", Namespaced)
            .with_status_subresource()
            .with_short_names(&["sts"])
            .with_categories(&all),
        ResourceType::new("apps", "v1", "Deployment", "deployments", Namespaced)
            .with_status_subresource()
            .with_short_names(&["deploy"])
            .with_categories(&all),
        ResourceType::new("apps", "v1", "ReplicaSet", "replicasets", Namespaced)
            .with_status_subresource()
            .with_short_names(&["rs"])
            .with_categories(&all),
        ResourceType::new(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            Namespaced,
        )
        .with_status_subresource()
        .with_short_names(&["pdb"]),
        ResourceType::new("coordination.k8s.io", "v1", "Lease", "leases", Namespaced),
        ResourceType::new("events.k8s.io", "v1", "Event", "events", Namespaced)
            .with_short_names(&["ev"]),
        ResourceType::new(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            Namespaced,
        ),
        ResourceType::new(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            Namespaced,
        ),
        ResourceType::new(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            Namespaced,
        ),
        ResourceType::new(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            Cluster,
        ),
        ResourceType::new(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            Cluster,
        ),
        ResourceType::new(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            Cluster,
        )
        .with_status_subresource()
        .with_short_names(&["crd", "crds"])
        .with_categories(&["api-extensions"]),
    ]
}

fn crd_invalid(name: &str, field: &str, detail: impl Into<String>) -> ApiError {
    ApiError::Invalid {
        kind: "CustomResourceDefinition".into(),
        name: name.to_owned(),
        field: field.to_owned(),
        detail: detail.into(),
    }
}

/// The resource a CustomResourceDefinition object declares, or why it is invalid.
pub(crate) fn from_crd(crd: &Value) -> Result<ResourceType, ApiError> {
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &crd["spec"];
    let required = |field: &str, value: &Value| -> Result<String, ApiError> {
        match value.as_str() {
            Some(s) if !s.is_empty() => Ok(s.to_owned()),
            _ => Err(crd_invalid(name, field, "Required value")),
        }
    };
    let group = required("spec.group", &spec["group"])?;
    let names = &spec["names"];
    let plural = required("spec.names.plural", &names["plural"])?;
    let kind = required("spec.names.kind", &names["kind"])?;
    if name != format!("{plural}.{group}") {
        return Err(crd_invalid(
            name,
            "metadata.name",
            format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let scope = match spec["scope"].as_str() {
        Some("Namespaced") => Scope::Namespaced,
        Some("Cluster") => Scope::Cluster,
        other => {
            return Err(crd_invalid(
                name,
                "spec.scope",
                format!(
                    "Unsupported value: {other:?}: supported values: \"Cluster\", \"Namespaced\""
                ),
            ));
        }
    };
    let versions = spec["versions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut served = Vec::new();
    let mut status_subresource = false;
    let mut schemas = BTreeMap::new();
    for version in versions {
        let Some(vname) = version["name"].as_str() else {
            return Err(crd_invalid(name, "spec.versions[].name", "Required value"));
        };
        if version["served"].as_bool().unwrap_or(false) {
            served.push(vname.to_owned());
        }
        if version["subresources"]["status"].is_object() {
            status_subresource = true;
        }
        if let Some(schema) = version["schema"].get("openAPIV3Schema") {
            schemas.insert(vname.to_owned(), schema.clone());
        }
    }
    if versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .count()
        != 1
    {
        return Err(crd_invalid(
            name,
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    served.sort_by_key(|v| version_priority(v));
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(ResourceType {
        group,
        versions: served,
        singular: names["singular"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| kind.to_lowercase()),
        kind,
        plural,
        scope,
        status_subresource,
        short_names: strings(&names["shortNames"]),
        categories: strings(&names["categories"]),
        schemas,
        crd: Some(name.to_owned()),
    })
}

/// The `status` the real API server gives an accepted CRD: names accepted, established.
pub(crate) fn crd_status(crd: &Value, rt: &ResourceType, now: &str) -> Value {
    let mut accepted = crd["spec"]["names"].clone();
    accepted["singular"] = json!(rt.singular);
    if accepted.get("listKind").is_none() {
        accepted["listKind"] = json!(format!("{}List", rt.kind));
    }
    let condition = |kind: &str, reason: &str, message: &str| {
        // Keep the transition time of a condition that is already true.
        let existing = crd["status"]["conditions"]
            .as_array()
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c["type"] == kind && c["status"] == "True")
            })
            .and_then(|c| c["lastTransitionTime"].as_str())
            .unwrap_or(now);
        json!({"type": kind, "status": "True", "reason": reason, "message": message,
               "lastTransitionTime": existing})
    };
    let stored = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .filter_map(|v| v["name"].as_str())
        .collect::<Vec<_>>();
    json!({
        "acceptedNames": accepted,
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": stored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(name: &str) -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
            "spec": {
                "group": "weir.dev",
                "names": {"plural": "clusters", "kind": "Cluster", "shortNames": ["wc"]},
                "scope": "Namespaced",
                "versions": [
                    {"name": "v1alpha1", "served": true, "storage": false},
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                ],
            },
        })
    }

    #[test]
    fn crd_registers_its_names_scope_and_status_subresource() {
        let rt = from_crd(&crd("clusters.weir.dev")).unwrap();
        assert_eq!(rt.group, "weir.dev");
        assert_eq!(rt.versions, ["v1", "v1alpha1"]);
        assert_eq!(rt.singular, "cluster");
        assert_eq!(rt.short_names, ["wc"]);
        assert!(rt.status_subresource);
        assert!(rt.namespaced());
        assert_eq!(rt.crd.as_deref(), Some("clusters.weir.dev"));
    }

    #[test]
    fn crd_whose_name_is_not_plural_dot_group_is_invalid() {
        let err = from_crd(&crd("cluster.weir.dev")).unwrap_err();
        assert_eq!(err.code(), 422);
    }

    #[test]
    fn versions_sort_ga_then_beta_then_alpha() {
        let mut versions = vec!["v1alpha1", "v2beta1", "v1", "v2", "v1beta2", "foo"];
        versions.sort_by_key(|v| version_priority(v));
        assert_eq!(
            versions,
            ["v2", "v1", "v2beta1", "v1beta2", "v1alpha1", "foo"]
        );
    }
}
