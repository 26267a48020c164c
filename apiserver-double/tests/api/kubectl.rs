//! The real kubectl against the double: get, client-side apply, server-side apply,
//! custom resources, delete. Skipped (with a message) only when kubectl is not on PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use weir_apiserver_double::ApiServer;

fn kubectl_on_path() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("kubectl"))
            .find(|candidate| candidate.is_file())
    })
}

/// Runs kubectl against the kubeconfig in `dir` on a blocking thread (the server runs on
/// this test's runtime); returns stdout, failing with stderr when kubectl fails.
async fn kubectl(bin: &Path, dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let mut command = Command::new(bin);
    command
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(args);
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(
        output.status.success(),
        "kubectl {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(stdout)
}

fn data_keys(obj: Option<Value>) -> Vec<String> {
    obj.and_then(|o| o["data"].as_object().map(|d| d.keys().cloned().collect()))
        .unwrap_or_default()
}

const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {app: weir}
data:
  a: \"1\"
  b: \"2\"
";

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.weir.dev
spec:
  group: example.weir.dev
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
";

const WIDGET: &str = "apiVersion: example.weir.dev/v1
kind: Widget
metadata: {name: w1}
spec: {size: 3}
";

/// A server, a directory with its kubeconfig, and kubectl; None (after saying why) when
/// kubectl is not on PATH.
/// A scratch directory removed when dropped, also when the test fails.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

async fn setup(test: &str) -> anyhow::Result<Option<(PathBuf, ApiServer, Scratch)>> {
    let Some(bin) = kubectl_on_path() else {
        eprintln!("skipping {test}: kubectl is not on PATH");
        return Ok(None);
    };
    let server = ApiServer::start().await;
    let dir = std::env::temp_dir().join(format!(
        "weir-apiserver-double-kubectl-{}",
        server.addr().port()
    ));
    std::fs::create_dir_all(&dir)?;
    let dir = Scratch(dir);
    server.write_kubeconfig(&dir.join("kubeconfig"))?;
    Ok(Some((bin, server, dir)))
}

#[tokio::test]
async fn kubectl_gets_and_applies_configmaps_and_custom_resources() -> anyhow::Result<()> {
    let Some((bin, server, dir)) =
        setup("kubectl_gets_and_applies_configmaps_and_custom_resources").await?
    else {
        return Ok(());
    };
    let manifest = dir.join("settings.yaml");
    let manifest_arg = manifest.to_str().unwrap_or_default();

    // Client-side apply: create, then a three-way strategic merge patch drops `b`.
    std::fs::write(&manifest, CONFIGMAP)?;
    let out = kubectl(&bin, &dir, &["apply", "-f", manifest_arg]).await?;
    assert!(out.contains("configmap/settings created"), "{out}");
    std::fs::write(&manifest, CONFIGMAP.replace("b: \"2\"", "c: \"3\""))?;
    let out = kubectl(&bin, &dir, &["apply", "-f", manifest_arg]).await?;
    assert!(out.contains("configmap/settings configured"), "{out}");
    let stored = server.object("", "configmaps", Some("default"), "settings");
    assert_eq!(data_keys(stored), ["a", "c"]);

    // Server-side apply: takes over the fields, then drops `c` when it is omitted.
    std::fs::write(&manifest, CONFIGMAP.replace("b: \"2\"", "c: \"3\""))?;
    let out = kubectl(&bin, &dir, &["apply", "--server-side", "-f", manifest_arg]).await?;
    assert!(out.contains("serverside-applied"), "{out}");
    std::fs::write(&manifest, CONFIGMAP.replace("  b: \"2\"\n", ""))?;
    kubectl(&bin, &dir, &["apply", "--server-side", "-f", manifest_arg]).await?;
    let stored = server.object("", "configmaps", Some("default"), "settings");
    assert_eq!(data_keys(stored.clone()), ["a"]);
    let managers: Vec<&str> = stored
        .as_ref()
        .and_then(|o| o["metadata"]["managedFields"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"kubectl"), "{managers:?}");

    let listed = kubectl(&bin, &dir, &["get", "configmaps", "-A"]).await?;
    assert!(
        listed.contains("NAMESPACE") && listed.contains("settings"),
        "{listed}"
    );
    let json: Value = serde_json::from_str(
        &kubectl(&bin, &dir, &["get", "cm", "settings", "-o", "json"]).await?,
    )?;
    assert_eq!(json["data"]["a"], "1");
    let selected = kubectl(&bin, &dir, &["get", "cm", "-l", "app=weir", "-o", "name"]).await?;
    assert_eq!(selected.trim(), "configmap/settings");

    // A CRD, then a custom resource of it, listed by plural and short name.
    std::fs::write(dir.join("crd.yaml"), CRD)?;
    std::fs::write(dir.join("widget.yaml"), WIDGET)?;
    kubectl(
        &bin,
        &dir,
        &[
            "apply",
            "-f",
            dir.join("crd.yaml").to_str().unwrap_or_default(),
        ],
    )
    .await?;
    let out = kubectl(
        &bin,
        &dir,
        &[
            "apply",
            "-f",
            dir.join("widget.yaml").to_str().unwrap_or_default(),
        ],
    )
    .await?;
    assert!(out.contains("widget.example.weir.dev/w1 created"), "{out}");
    let widgets = kubectl(&bin, &dir, &["get", "widgets"]).await?;
    assert!(widgets.contains("w1"), "{widgets}");
    let by_short_name = kubectl(
        &bin,
        &dir,
        &["get", "wd", "w1", "-o", "jsonpath={.spec.size}"],
    )
    .await?;
    assert_eq!(by_short_name, "3");

    let out = kubectl(&bin, &dir, &["delete", "configmap", "settings"]).await?;
    assert!(out.contains("deleted"), "{out}");
    assert!(
        server
            .object("", "configmaps", Some("default"), "settings")
            .is_none()
    );

    server.stop().await;
    Ok(())
}

#[tokio::test]
async fn kubectl_typed_create_commands_and_namespace_deletion_work() -> anyhow::Result<()> {
    let Some((bin, server, dir)) =
        setup("kubectl_typed_create_commands_and_namespace_deletion_work").await?
    else {
        return Ok(());
    };
    // These commands send protobuf bodies.
    kubectl(&bin, &dir, &["create", "namespace", "tenant"]).await?;
    kubectl(
        &bin,
        &dir,
        &[
            "-n",
            "tenant",
            "create",
            "configmap",
            "cm",
            "--from-literal=a=b",
        ],
    )
    .await?;
    kubectl(
        &bin,
        &dir,
        &[
            "-n",
            "tenant",
            "create",
            "secret",
            "generic",
            "s",
            "--from-literal=k=v",
        ],
    )
    .await?;
    kubectl(
        &bin,
        &dir,
        &["-n", "tenant", "create", "serviceaccount", "sa"],
    )
    .await?;
    let cm = server.object("", "configmaps", Some("tenant"), "cm");
    assert_eq!(cm.map(|c| c["data"]["a"].clone()), Some(Value::from("b")));
    let secret = server.object("", "secrets", Some("tenant"), "s");
    assert_eq!(
        secret.map(|s| s["data"]["k"].clone()),
        Some(Value::from("dg=="))
    );
    assert!(
        server
            .object("", "serviceaccounts", Some("tenant"), "sa")
            .is_some()
    );

    let names = kubectl(&bin, &dir, &["get", "namespaces", "-o", "name"]).await?;
    assert!(names.lines().any(|l| l == "namespace/tenant"), "{names}");
    let out = kubectl(&bin, &dir, &["delete", "namespace", "tenant"]).await?;
    assert!(out.contains("deleted"), "{out}");
    assert!(server.object("", "namespaces", None, "tenant").is_none());
    assert!(server.objects("", "configmaps").is_empty());

    server.stop().await;
    Ok(())
}
