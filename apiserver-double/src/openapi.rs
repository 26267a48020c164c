//! A minimal OpenAPI v3 discovery: `/openapi/v3` and `/openapi/v3/{api/v1|apis/g/v}`.
//!
//! Owns the documents kubectl reads before `apply`/`create`/`replace`: it checks whether
//! the server validates fields itself (a `fieldValidation` query parameter on the PATCH
//! operation of the kind) and otherwise downloads schemas to validate on the client,
//! failing when there are none. Each group version's document therefore lists, per
//! resource, only a PATCH operation carrying `x-kubernetes-group-version-kind` and the
//! `fieldValidation` parameter, and no schemas (`components.schemas` is empty). kubectl
//! then leaves validation to the server, which the double does not do (the parameter is
//! accepted and ignored), and builds client-side apply patches from its compiled-in
//! types (a JSON merge patch for custom resources). `/openapi/v2` is not served (404).

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Map, Value, json};

use crate::registry::Registry;

/// Group versions as OpenAPI v3 names them: `api/v1`, `apis/apps/v1`.
fn group_versions(registry: &Registry) -> Vec<(String, String, String)> {
    let mut out = vec![("api/v1".to_owned(), String::new(), "v1".to_owned())];
    for (group, versions) in registry.groups() {
        for version in versions {
            out.push((format!("apis/{group}/{version}"), group.clone(), version));
        }
    }
    out
}

/// `/openapi/v3`: where each group version's document is.
pub(crate) fn index(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for (path, group, version) in group_versions(registry) {
        if let Some(doc) = group_version(registry, &group, &version) {
            let mut hasher = DefaultHasher::new();
            doc.to_string().hash(&mut hasher);
            let url = format!("/openapi/v3/{path}?hash={:016X}", hasher.finish());
            paths.insert(path, json!({"serverRelativeURL": url}));
        }
    }
    json!({"paths": paths})
}

/// The document of one group version, if it has resources.
pub(crate) fn group_version(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let prefix = if group.is_empty() {
        "/api/v1".to_owned()
    } else {
        format!("/apis/{group}/{version}")
    };
    let mut paths = Map::new();
    for rt in registry
        .all()
        .filter(|rt| rt.group == group && rt.serves(version))
    {
        let path = if rt.namespaced() {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", rt.plural)
        } else {
            format!("{prefix}/{}/{{name}}", rt.plural)
        };
        paths.insert(
            path,
            json!({"patch": {
                "operationId": format!("patch{}", rt.kind),
                "parameters": [{
                    "name": "fieldValidation",
                    "in": "query",
                    "description": "accepted and ignored by the API server double",
                    "schema": {"type": "string", "uniqueItems": true},
                }],
                "responses": {},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": rt.kind},
            }}),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (weir API server double)", "version": "unversioned"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_version_is_indexed_with_its_patch_operations() {
        let registry = Registry::with_builtins();
        let index = index(&registry);
        assert!(
            index["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/api/v1?hash=")
        );
        assert!(index["paths"].get("apis/apps/v1").is_some());
        let apps = group_version(&registry, "apps", "v1").unwrap();
        let patch =
            &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "StatefulSet"
        );
        assert_eq!(patch["parameters"][0]["name"], "fieldValidation");
        assert!(group_version(&registry, "apps", "v9").is_none());
    }
}
