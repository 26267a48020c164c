//! The "mount namespace" stand-in: a directory per volume, and where mounts point.
//!
//! - `persistentVolumeClaim` → `<root>/volumes/<ns>/<claim>`, kept by the claim watch
//!   (created when the claim appears, removed when it is deleted); a pod waits while its
//!   claim does not exist.
//! - `configMap`, `secret` → `<pod dir>/volumes/<volume>`, emptied and written afresh at
//!   every container start: every key, or only `items` (at their `path`); a missing
//!   object or item key waits unless `optional`. File contents are rewritten like the
//!   command line (UTF-8 files only), since they are configuration.
//! - `emptyDir` → `<pod dir>/volumes/<volume>`, removed with the pod directory when the pod
//!   object is gone.
//! - `hostPath` → the path itself.
//!
//! Other volume types keep the pod waiting, with a message that says so.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Container, KeyToPath, Pod, Secret};
use kube::Api;

use super::rewrite::Rewriter;
use super::{Inner, ObjectKey};

/// A container's mounts, and the configMap/secret files still to be written.
#[derive(Debug, Default)]
pub(crate) struct Mounts {
    /// Container mount path → host path.
    pub(crate) paths: Vec<(String, PathBuf)>,
    files: Vec<(PathBuf, Vec<u8>)>,
}

impl Mounts {
    /// Writes the configMap and secret files, their text rewritten by `rewriter`.
    pub(crate) fn write_files(&self, rewriter: &Rewriter<'_>) -> std::io::Result<()> {
        for (path, content) in &self.files {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            match std::str::from_utf8(content) {
                Ok(text) => std::fs::write(path, rewriter.rewrite(text))?,
                Err(_) => std::fs::write(path, content)?,
            }
        }
        Ok(())
    }
}

/// Prepares the volumes `container` mounts; `Err` says what the pod waits for.
pub(crate) async fn prepare(
    inner: &Inner,
    key: &ObjectKey,
    pod: &Pod,
    container: &Container,
) -> Result<Mounts, String> {
    let pod_dir = inner.pod_dir(key);
    let mut dirs: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut files = Vec::new();
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let io = |what: &str, err: std::io::Error| format!("{what}: {err}");
    for volume in volumes {
        let dir = pod_dir.join("volumes").join(&volume.name);
        if let Some(claim) = &volume.persistent_volume_claim {
            if !inner
                .claims
                .borrow()
                .contains(&(key.0.clone(), claim.claim_name.clone()))
            {
                return Err(format!(
                    "waiting for PersistentVolumeClaim {:?}",
                    claim.claim_name
                ));
            }
            dirs.insert(volume.name, inner.claim_dir(&key.0, &claim.claim_name));
        } else if volume.empty_dir.is_some() {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| io("emptyDir", e))?;
            dirs.insert(volume.name, dir);
        } else if let Some(source) = &volume.config_map {
            let api: Api<ConfigMap> = Api::namespaced(inner.client.clone(), &key.0);
            let data = api
                .get_opt(&source.name)
                .await
                .map_err(|e| e.to_string())?
                .map(|cm| {
                    let mut data: BTreeMap<String, Vec<u8>> = cm
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes()))
                        .collect();
                    data.extend(
                        cm.binary_data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, v.0)),
                    );
                    data
                });
            let what = format!("configmap {:?}", source.name);
            files.extend(materialize(
                &dir,
                data,
                source.items.as_deref(),
                source.optional,
                &what,
            )?);
            reset_dir(&dir).await.map_err(|e| io(&what, e))?;
            dirs.insert(volume.name, dir);
        } else if let Some(source) = &volume.secret {
            let name = source.secret_name.clone().unwrap_or_default();
            let api: Api<Secret> = Api::namespaced(inner.client.clone(), &key.0);
            let data = api
                .get_opt(&name)
                .await
                .map_err(|e| e.to_string())?
                .map(|secret| {
                    let mut data: BTreeMap<String, Vec<u8>> = secret
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect();
                    data.extend(
                        secret
                            .string_data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, v.into_bytes())),
                    );
                    data
                });
            let what = format!("secret {name:?}");
            files.extend(materialize(
                &dir,
                data,
                source.items.as_deref(),
                source.optional,
                &what,
            )?);
            reset_dir(&dir).await.map_err(|e| io(&what, e))?;
            dirs.insert(volume.name, dir);
        } else if let Some(host) = &volume.host_path {
            dirs.insert(volume.name, PathBuf::from(&host.path));
        } else {
            return Err(format!(
                "volume {:?}: only persistentVolumeClaim, configMap, secret, emptyDir and hostPath volumes are simulated",
                volume.name
            ));
        }
    }
    let mut paths = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let dir = dirs
            .get(&mount.name)
            .ok_or_else(|| format!("volumeMount {:?} names no volume", mount.name))?;
        let host = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => dir.join(relative(sub).ok_or_else(|| format!("bad subPath {sub:?}"))?),
            None => dir.clone(),
        };
        paths.push((mount.mount_path.clone(), host));
    }
    Ok(Mounts { paths, files })
}

/// The files of a configMap or secret volume (not yet written).
fn materialize(
    dir: &Path,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    what: &str,
) -> Result<Vec<(PathBuf, Vec<u8>)>, String> {
    let Some(data) = data else {
        return if optional == Some(true) {
            Ok(Vec::new())
        } else {
            Err(format!("waiting for {what}"))
        };
    };
    let Some(items) = items else {
        return Ok(data.into_iter().map(|(k, v)| (dir.join(k), v)).collect());
    };
    let mut files = Vec::new();
    for item in items {
        let path =
            relative(&item.path).ok_or_else(|| format!("{what}: bad item path {:?}", item.path))?;
        match data.get(&item.key) {
            Some(value) => files.push((dir.join(path), value.clone())),
            None if optional == Some(true) => {}
            None => return Err(format!("waiting for key {:?} of {what}", item.key)),
        }
    }
    Ok(files)
}

/// `path` if it stays below the directory it is joined to.
fn relative(path: &str) -> Option<&Path> {
    let path = Path::new(path);
    path.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then_some(path)
}

/// Empties a directory (creating it if missing).
async fn reset_dir(dir: &Path) -> std::io::Result<()> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    tokio::fs::create_dir_all(dir).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_select_keys_and_paths() {
        let data = BTreeMap::from([
            ("a".to_owned(), b"1".to_vec()),
            ("b".to_owned(), b"2".to_vec()),
        ]);
        let dir = Path::new("/v");
        let all = materialize(dir, Some(data.clone()), None, None, "cm").unwrap();
        assert_eq!(all.len(), 2);
        let items: Vec<KeyToPath> = serde_json::from_value(serde_json::json!([
            {"key": "b", "path": "sub/b.conf"}
        ]))
        .unwrap();
        let some = materialize(dir, Some(data.clone()), Some(&items), None, "cm").unwrap();
        assert_eq!(some, [(PathBuf::from("/v/sub/b.conf"), b"2".to_vec())]);
        assert!(
            materialize(dir, None, None, None, "cm").is_err(),
            "waits for the object"
        );
        assert!(
            materialize(dir, None, None, Some(true), "cm")
                .unwrap()
                .is_empty()
        );
        let escape: Vec<KeyToPath> =
            serde_json::from_value(serde_json::json!([{"key": "a", "path": "../x"}])).unwrap();
        assert!(materialize(dir, Some(data), Some(&escape), None, "cm").is_err());
    }
}
