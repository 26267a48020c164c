//! Discovery documents: `/version`, `/api`, `/apis`, `/api/v1`, `/apis/{group}[/{version}]`.
//!
//! Owns the JSON of the legacy discovery documents (`APIVersions`, `APIGroupList`,
//! `APIGroup`, `APIResourceList`, as `kube::discovery` and kubectl's fallback read them)
//! and of aggregated discovery (`APIGroupDiscoveryList` of `apidiscovery.k8s.io/v2`, sent
//! when the client's `Accept` asks for it, as kubectl and `Discovery::run_aggregated` do).
//! Everything is generated from the [`Registry`], so a CRD's resource appears as soon as
//! the CRD is stored. Every resource supports every verb; each with a status subresource
//! lists `{plural}/status` with `get`, `patch`, `update`.

use serde_json::{Value, json};

use crate::registry::{Registry, ResourceType, version_priority};

/// The Kubernetes version the double claims to be.
pub(crate) const KUBE_MINOR: &str = "33";

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const STATUS_VERBS: [&str; 3] = ["get", "patch", "update"];

/// The media type of aggregated discovery responses.
pub(crate) const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an `Accept` header asks for aggregated discovery (v2).
pub(crate) fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"v=v2")
            && params.contains(&"as=APIGroupDiscoveryList")
    })
}

pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0-weir-apiserver-double"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`: the core group's versions.
pub(crate) fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": versions, "preferredVersion": versions.first().cloned().unwrap_or(Value::Null)})
}

/// `/apis`: every named group.
pub(crate) fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .groups()
        .iter()
        .map(|(name, versions)| group_doc(name, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`, if the group is served.
pub(crate) fn group(registry: &Registry, name: &str) -> Option<Value> {
    let groups = registry.groups();
    let versions = groups.get(name)?;
    let mut doc = group_doc(name, versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `/api/v1` or `/apis/{group}/{version}`, if that group version is served.
pub(crate) fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for rt in registry
        .all()
        .filter(|rt| rt.group == group && rt.serves(version))
    {
        let mut doc = json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced(),
            "kind": rt.kind,
            "verbs": VERBS,
        });
        if !rt.short_names.is_empty() {
            doc["shortNames"] = json!(rt.short_names);
        }
        if !rt.categories.is_empty() {
            doc["categories"] = json!(rt.categories);
        }
        resources.push(doc);
        if rt.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", rt.plural),
                "singularName": "",
                "namespaced": rt.namespaced(),
                "kind": rt.kind,
                "verbs": STATUS_VERBS,
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

fn aggregated_resource(rt: &ResourceType, version: &str) -> Value {
    let response_kind = json!({"group": rt.group, "version": version, "kind": rt.kind});
    let mut doc = json!({
        "resource": rt.plural,
        "responseKind": response_kind,
        "scope": if rt.namespaced() { "Namespaced" } else { "Cluster" },
        "singularResource": rt.singular,
        "verbs": VERBS,
    });
    if !rt.short_names.is_empty() {
        doc["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        doc["categories"] = json!(rt.categories);
    }
    if rt.status_subresource {
        doc["subresources"] = json!([{"subresource": "status", "responseKind": response_kind, "verbs": STATUS_VERBS}]);
    }
    doc
}

/// Aggregated discovery of the core group (`/api`) or of every named group (`/apis`).
pub(crate) fn aggregated(registry: &Registry, core: bool) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = if core {
        vec![(String::new(), vec!["v1".to_owned()])]
    } else {
        registry.groups().into_iter().collect()
    };
    for (_, versions) in &mut groups {
        versions.sort_by_key(|v| version_priority(v));
    }
    let items: Vec<Value> = groups
        .iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = registry
                        .all()
                        .filter(|rt| rt.group == *group && rt.serves(v))
                        .map(|rt| aggregated_resource(rt, v))
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_v1_lists_statefulsets_and_their_status() {
        let list = resource_list(&Registry::with_builtins(), "apps", "v1").unwrap();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert!(names.contains(&"statefulsets"));
        assert!(names.contains(&"statefulsets/status"));
        assert!(resource_list(&Registry::with_builtins(), "apps", "v2").is_none());
    }

    #[test]
    fn aggregated_discovery_is_recognised_in_kubectls_accept_header() {
        assert!(wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated("application/json, */*"));
    }

    #[test]
    fn group_list_prefers_the_first_version() {
        let list = group_list(&Registry::with_builtins());
        let policy = list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "policy")
            .unwrap();
        assert_eq!(policy["preferredVersion"]["groupVersion"], "policy/v1");
    }
}
