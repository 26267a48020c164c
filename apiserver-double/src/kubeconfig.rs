//! The kubeconfig file that points kubectl and `kube::Config::infer` at the double.
//!
//! Owns its format: one cluster, user and context, all named `weir-apiserver-double`;
//! the cluster's `server` is the double's plain-HTTP URL (no TLS, so no certificate
//! settings) and the user has no credentials (the double does no authentication). The
//! context's namespace is `default`.

use std::io;
use std::path::Path;

/// The name of the cluster, user and context in the file.
pub(crate) const NAME: &str = "weir-apiserver-double";

/// The kubeconfig YAML for a server at `url`.
pub(crate) fn render(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {NAME}
  cluster:
    server: {url}
users:
- name: {NAME}
  user: {{}}
contexts:
- name: {NAME}
  context:
    cluster: {NAME}
    user: {NAME}
    namespace: default
current-context: {NAME}
preferences: {{}}
"
    )
}

/// Writes the kubeconfig for a server at `url` to `path`.
pub(crate) fn write(url: &str, path: &Path) -> io::Result<()> {
    std::fs::write(path, render(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubeconfig_parses_and_points_at_the_url() {
        let text = render("http://127.0.0.1:1234");
        let doc: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(
            doc["clusters"][0]["cluster"]["server"],
            "http://127.0.0.1:1234"
        );
        assert_eq!(doc["current-context"], NAME);
        assert_eq!(doc["contexts"][0]["context"]["namespace"], "default");
        assert!(doc["users"][0]["user"].as_object().unwrap().is_empty());
    }
}
