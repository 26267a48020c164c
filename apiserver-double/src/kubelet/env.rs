//! A container's environment and `$(VAR)` expansion.
//!
//! Owns building the variables of `env` and `envFrom` as the kubelet does: `envFrom`
//! sources first (with their `prefix`), then `env` in order, each value expanded against
//! the variables before it. `valueFrom` supports `fieldRef` (`metadata.name`,
//! `metadata.namespace`, `metadata.uid`, `metadata.labels['k']`,
//! `metadata.annotations['k']`, `spec.nodeName`, `spec.serviceAccountName`,
//! `status.podIP`, `status.hostIP`), `configMapKeyRef` and `secretKeyRef`; a missing
//! referenced object or key fails the start (`CreateContainerConfigError`) unless the
//! reference is `optional`. `resourceFieldRef` is not simulated (an error, so a pod
//! relying on it does not start with a wrong value).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::Api;

/// The config maps and secrets (by name; `None` if missing) a container's env refers to.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    configmaps: HashMap<String, Option<BTreeMap<String, String>>>,
    secrets: HashMap<String, Option<BTreeMap<String, String>>>,
}

impl Sources {
    /// Fetches everything `container`'s env and envFrom name.
    pub(crate) async fn fetch(
        client: &kube::Client,
        namespace: &str,
        container: &Container,
    ) -> Result<Sources, kube::Error> {
        let mut sources = Sources::default();
        let mut configmaps = Vec::new();
        let mut secrets = Vec::new();
        for var in container.env.iter().flatten() {
            if let Some(from) = &var.value_from {
                configmaps.extend(from.config_map_key_ref.as_ref().map(|r| r.name.clone()));
                secrets.extend(from.secret_key_ref.as_ref().map(|r| r.name.clone()));
            }
        }
        for from in container.env_from.iter().flatten() {
            configmaps.extend(from.config_map_ref.as_ref().map(|r| r.name.clone()));
            secrets.extend(from.secret_ref.as_ref().map(|r| r.name.clone()));
        }
        let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        for name in configmaps {
            let data = cm_api.get_opt(&name).await?.map(configmap_data);
            sources.configmaps.insert(name, data);
        }
        let secret_api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        for name in secrets {
            let data = secret_api.get_opt(&name).await?.map(secret_data);
            sources.secrets.insert(name, data);
        }
        Ok(sources)
    }
}

/// A ConfigMap's text entries (`binaryData` that is UTF-8 included).
pub(crate) fn configmap_data(cm: ConfigMap) -> BTreeMap<String, String> {
    let mut data = cm.data.unwrap_or_default();
    for (k, v) in cm.binary_data.unwrap_or_default() {
        if let Ok(text) = String::from_utf8(v.0) {
            data.insert(k, text);
        }
    }
    data
}

/// A Secret's entries as text (`stringData` too, should a server have kept it).
fn secret_data(secret: Secret) -> BTreeMap<String, String> {
    let mut data: BTreeMap<String, String> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    data.extend(secret.string_data.unwrap_or_default());
    data
}

/// The container's own variables, in order (later ones override earlier ones).
pub(crate) fn container_env(
    pod: &Pod,
    container: &Container,
    sources: &Sources,
) -> Result<Vec<(String, String)>, String> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut lookup: HashMap<String, String> = HashMap::new();
    let mut set = |vars: &mut Vec<(String, String)>, name: String, value: String| {
        lookup.insert(name.clone(), value.clone());
        vars.retain(|(n, _)| *n != name);
        vars.push((name, value));
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, optional, what) = if let Some(r) = &from.config_map_ref {
            (
                sources.configmaps.get(&r.name),
                r.optional,
                format!("configmap {:?}", r.name),
            )
        } else if let Some(r) = &from.secret_ref {
            (
                sources.secrets.get(&r.name),
                r.optional,
                format!("secret {:?}", r.name),
            )
        } else {
            continue;
        };
        match data.and_then(Option::as_ref) {
            Some(data) => {
                for (k, v) in data {
                    set(&mut vars, format!("{prefix}{k}"), v.clone());
                }
            }
            None if optional == Some(true) => {}
            None => return Err(format!("{what} not found")),
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => {
                if let Some(field) = &from.field_ref {
                    Some(field_value(pod, &field.field_path)?)
                } else if let Some(r) = &from.config_map_key_ref {
                    key_value(sources.configmaps.get(&r.name), &r.key, r.optional)
                        .map_err(|e| format!("configmap {:?}: {e}", r.name))?
                } else if let Some(r) = &from.secret_key_ref {
                    key_value(sources.secrets.get(&r.name), &r.key, r.optional)
                        .map_err(|e| format!("secret {:?}: {e}", r.name))?
                } else {
                    return Err(format!(
                        "env {:?}: only fieldRef, configMapKeyRef and secretKeyRef are simulated",
                        var.name
                    ));
                }
            }
            (Some(value), None) => {
                let known: HashMap<String, String> = vars.iter().cloned().collect();
                Some(expand(value, &known))
            }
            (None, None) => Some(String::new()),
        };
        if let Some(value) = value {
            set(&mut vars, var.name.clone(), value);
        }
    }
    Ok(vars)
}

/// A key of a referenced object: `Ok(None)` when optional and missing.
fn key_value(
    data: Option<&Option<BTreeMap<String, String>>>,
    key: &str,
    optional: Option<bool>,
) -> Result<Option<String>, String> {
    match data.and_then(Option::as_ref) {
        Some(data) => match data.get(key) {
            Some(value) => Ok(Some(value.clone())),
            None if optional == Some(true) => Ok(None),
            None => Err(format!("key {key:?} not found")),
        },
        None if optional == Some(true) => Ok(None),
        None => Err("not found".to_owned()),
    }
}

/// The value of a `fieldRef`.
fn field_value(pod: &Pod, path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let map_entry = |map: &Option<BTreeMap<String, String>>, prefix: &str| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?.to_owned();
        Some(
            map.as_ref()
                .and_then(|m| m.get(&key))
                .cloned()
                .unwrap_or_default(),
        )
    };
    let value = match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.podIP" | "status.hostIP" => Some("127.0.0.1".to_owned()),
        _ => {
            let entry = map_entry(&meta.labels, "metadata.labels['")
                .or_else(|| map_entry(&meta.annotations, "metadata.annotations['"));
            return entry.ok_or_else(|| format!("fieldRef {path:?} is not supported"));
        }
    };
    Ok(value.unwrap_or_default())
}

/// Kubernetes' `$(VAR)` expansion: defined variables are replaced, undefined references
/// are kept as written, `$$` is a literal `$`.
pub(crate) fn expand(input: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(after_escape) = after.strip_prefix('$') {
            out.push('$');
            rest = after_escape;
        } else if let Some(reference) = after.strip_prefix('(') {
            match reference.find(')') {
                Some(close) => {
                    let name = &reference[..close];
                    match vars.get(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &reference[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = reference;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expansion_follows_kubernetes() {
        let vars = HashMap::from([
            ("A".to_owned(), "x".to_owned()),
            ("B".to_owned(), "$(A)".to_owned()),
        ]);
        assert_eq!(expand("$(A)-$(B)-$(C)", &vars), "x-$(A)-$(C)");
        assert_eq!(expand("$$(A) $$ $x $", &vars), "$(A) $ $x $");
        assert_eq!(expand("$(A", &vars), "$(A");
    }

    #[test]
    fn env_resolves_fields_references_and_sources() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1",
                "labels": {"zone": "z1"}, "annotations": {"a/b": "note"}},
            "spec": {"nodeName": "kubelet-sim", "serviceAccountName": "sa", "containers": [{
                "name": "c",
                "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
                "env": [
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "ZONE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['zone']"}}},
                    {"name": "NOTE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['a/b']"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
                    {"name": "MAYBE", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": true}}},
                    {"name": "CONFIG", "value": "/etc/$(POD).conf $(LATER)"},
                    {"name": "LATER", "value": "l"},
                ],
            }]},
        }))
        .unwrap();
        let container = pod.spec.as_ref().unwrap().containers[0].clone();
        let sources = Sources {
            configmaps: HashMap::from([
                (
                    "cm".to_owned(),
                    Some(BTreeMap::from([("k".to_owned(), "v".to_owned())])),
                ),
                ("gone".to_owned(), None),
            ]),
            secrets: HashMap::from([(
                "s".to_owned(),
                Some(BTreeMap::from([(
                    "password".to_owned(),
                    "hunter2".to_owned(),
                )])),
            )]),
        };
        let env: HashMap<String, String> = container_env(&pod, &container, &sources)
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(env["CM_k"], "v");
        assert_eq!(env["POD"], "p");
        assert_eq!(env["ZONE"], "z1");
        assert_eq!(env["NOTE"], "note");
        assert_eq!(env["IP"], "127.0.0.1");
        assert_eq!(env["PASS"], "hunter2");
        assert!(!env.contains_key("MAYBE"));
        assert_eq!(
            env["CONFIG"], "/etc/p.conf $(LATER)",
            "only earlier variables expand"
        );

        let mut strict = container.clone();
        strict.env = Some(vec![
            serde_json::from_value(json!(
                {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}
            ))
            .unwrap(),
        ]);
        let err = container_env(&pod, &strict, &sources).unwrap_err();
        assert!(err.contains("gone"), "{err}");
    }
}
