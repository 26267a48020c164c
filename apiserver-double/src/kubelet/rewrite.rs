//! Rewriting what a container is given, standing in for its mount and network namespaces.
//!
//! The container's command, args, env values and the contents of its configMap and secret
//! files are scanned once, left to right (a replacement is never scanned again), for:
//!
//! - **Mount paths**: a `volumeMounts[].mountPath` (longest first) where it begins a
//!   path — not preceded by a file-name character (`[A-Za-z0-9._-]`) and followed by the
//!   end, `/` or anything but a file-name character — becomes the host directory
//!   (`/etc/weir/b-0.properties` → `<root>/pods/ns/b-0/volumes/config/b-0.properties`).
//!   A mount at `/` is not rewritten.
//! - **Local addresses** of a declared container port: `0.0.0.0:<port>`, `[::]:<port>`,
//!   `:::<port>`, `localhost:<port>` and `127.0.0.1:<port>` become `127.0.0.1:<host port>`
//!   of the pod.
//! - **Cluster DNS names with a port** (case-insensitive, optional trailing dot):
//!   `<hostname>.<subdomain>.<ns>.svc[.cluster.local]:<port>` (a pod's record) becomes
//!   that pod's `127.0.0.1:<host port>` for the container port; `<svc>.<ns>.svc[.cluster
//!   .local]:<port>` and `<svc>.<ns>:<port>` of a proxied Service become its proxy
//!   address; as the pod's DNS search path would, `<svc>:<port>` and
//!   `<hostname>.<subdomain>:<port>` resolve in the pod's own namespace.
//!
//! Only names that resolve, with a port that exists, are rewritten: a port-less name
//! (`b-0.brokers.ns.svc`) is left alone, since no single loopback address stands for all
//! the pod's ports; so are names of unknown pods and Services (they resolve once the
//! kubelet has seen them: pod ports are allocated when a pod is first seen), headless
//! Service names, and ports a pod does not declare.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use super::network::{Network, loopback};

/// Rewrites text for one pod (or, without pod context, DNS names only).
#[derive(Debug)]
pub(crate) struct Rewriter<'a> {
    network: &'a Network,
    namespace: &'a str,
    /// `(mount path, host path)`, longest mount path first.
    mounts: Vec<(String, String)>,
    /// The pod's container port → host port.
    local: BTreeMap<u16, u16>,
}

impl<'a> Rewriter<'a> {
    /// DNS names only (for [`super::Kubelet::resolve`]).
    pub(crate) fn new(network: &'a Network, namespace: &'a str) -> Rewriter<'a> {
        Rewriter {
            network,
            namespace,
            mounts: Vec::new(),
            local: BTreeMap::new(),
        }
    }

    /// For a pod: its mounts and its own ports as well.
    pub(crate) fn for_pod(
        network: &'a Network,
        namespace: &'a str,
        mounts: &[(String, &Path)],
        local: BTreeMap<u16, u16>,
    ) -> Rewriter<'a> {
        let mut mounts: Vec<(String, String)> = mounts
            .iter()
            .map(|(mount, host)| {
                let mount = mount.trim_end_matches('/').to_owned();
                (mount, host.to_string_lossy().into_owned())
            })
            .filter(|(mount, _)| !mount.is_empty())
            .collect();
        mounts.sort_by_key(|(mount, _)| std::cmp::Reverse(mount.len()));
        Rewriter {
            network,
            namespace,
            mounts,
            local,
        }
    }

    pub(crate) fn rewrite(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while let Some(ch) = text[i..].chars().next() {
            let prev = text[..i].chars().next_back();
            if let Some((len, replacement)) = self.match_at(&text[i..], prev) {
                out.push_str(&replacement);
                i += len;
            } else {
                out.push(ch);
                i += ch.len_utf8();
            }
        }
        out
    }

    /// A rewrite starting at the beginning of `rest`: its length and replacement.
    fn match_at(&self, rest: &str, prev: Option<char>) -> Option<(usize, String)> {
        if !prev.is_some_and(is_file_char) {
            for (mount, host) in &self.mounts {
                if rest.starts_with(mount.as_str())
                    && !rest[mount.len()..].chars().next().is_some_and(is_file_char)
                {
                    return Some((mount.len(), host.clone()));
                }
            }
        }
        if prev.is_some_and(|c| is_host_char(c) || c == ':' || c == '[') {
            return None;
        }
        for wildcard in ["[::]:", ":::"] {
            if let Some(after) = rest.strip_prefix(wildcard) {
                let (digits, port) = port_at(after)?;
                let host = self.local.get(&port)?;
                return Some((wildcard.len() + digits, loopback(*host).to_string()));
            }
        }
        let name_len = rest.find(|c: char| !is_host_char(c)).unwrap_or(rest.len());
        let after = rest[name_len..].strip_prefix(':')?;
        let (digits, port) = port_at(after)?;
        let addr = self.resolve_name(&rest[..name_len], port)?;
        Some((name_len + 1 + digits, addr.to_string()))
    }

    fn resolve_name(&self, name: &str, port: u16) -> Option<SocketAddr> {
        let name = name.to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name);
        if matches!(name, "0.0.0.0" | "localhost" | "127.0.0.1") {
            return self.local.get(&port).map(|host| loopback(*host));
        }
        let labels: Vec<&str> = name.split('.').collect();
        let (labels, qualified) = match labels.as_slice() {
            [rest @ .., "svc", "cluster", "local"] | [rest @ .., "svc"] => (rest, true),
            all => (all, false),
        };
        let service = |svc: &str, ns: &str| {
            self.network
                .service_address(&(ns.to_owned(), svc.to_owned()), port)
        };
        match *labels {
            [host, sub, ns] if qualified => self.network.record_address(ns, host, sub, port),
            [svc, ns] if qualified => service(svc, ns),
            [a, b] => {
                service(a, b).or_else(|| self.network.record_address(self.namespace, a, b, port))
            }
            [svc] if !qualified => service(svc, self.namespace),
            _ => None,
        }
    }
}

/// The digits of a port at the start of `text` (all of them) and its value.
fn port_at(text: &str) -> Option<(usize, u16)> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if digits == 0 || digits > 5 {
        return None;
    }
    Some((digits, text[..digits].parse().ok()?))
}

fn is_file_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn is_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-')
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use k8s_openapi::api::core::v1::{Pod, Service};
    use serde_json::json;

    use super::super::network::service_seen;
    use super::*;

    fn network() -> (Arc<Mutex<Network>>, u16, u16) {
        let network = Arc::new(Mutex::new(Network::default()));
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "b-0", "namespace": "ns", "labels": {"app": "b"}},
            "spec": {"hostname": "b-0", "subdomain": "brokers",
                "containers": [{"name": "c", "ports": [{"containerPort": 9092}]}]},
        }))
        .unwrap();
        let key = ("ns".to_owned(), "b-0".to_owned());
        network.lock().unwrap().pod_seen(&key, &pod);
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "bootstrap", "namespace": "ns"},
            "spec": {"selector": {"app": "b"}, "ports": [{"port": 9092}]},
        }))
        .unwrap();
        service_seen(&network, ("ns".into(), "bootstrap".into()), &svc);
        let net = network.lock().unwrap();
        let pod_port = net.pod_address(&key, 9092).unwrap().port();
        let svc_port = net
            .service_address(&("ns".into(), "bootstrap".into()), 9092)
            .unwrap()
            .port();
        drop(net);
        (network, pod_port, svc_port)
    }

    #[tokio::test]
    async fn addresses_and_names_become_loopback_ports() {
        let (network, pod, svc) = network();
        let net = network.lock().unwrap();
        let ports = net.pod_ports(&("ns".into(), "b-0".into()));
        let r = Rewriter::for_pod(&net, "ns", &[], ports);
        let cases = [
            (
                "listeners=PLAINTEXT://0.0.0.0:9092",
                format!("listeners=PLAINTEXT://127.0.0.1:{pod}"),
            ),
            (
                "[::]:9092 :::9092 localhost:9092",
                format!("127.0.0.1:{pod} 127.0.0.1:{pod} 127.0.0.1:{pod}"),
            ),
            ("127.0.0.1:90921", "127.0.0.1:90921".to_owned()),
            ("127.0.0.1:8080", "127.0.0.1:8080".to_owned()),
            (
                "x://b-0.brokers.ns.svc.cluster.local:9092,B-0.Brokers.NS.svc:9092",
                format!("x://127.0.0.1:{pod},127.0.0.1:{pod}"),
            ),
            ("b-0.brokers.ns.svc", "b-0.brokers.ns.svc".to_owned()),
            ("b-0.brokers:9092", format!("127.0.0.1:{pod}")),
            (
                "bootstrap.ns.svc:9092 bootstrap.ns:9092 bootstrap:9092",
                format!("127.0.0.1:{svc} 127.0.0.1:{svc} 127.0.0.1:{svc}"),
            ),
            (
                "bootstrap.ns.svc.cluster.local.:9092",
                format!("127.0.0.1:{svc}"),
            ),
            (
                "xbootstrap:9092 b-9.brokers.ns.svc:9092 other.ns:1",
                "xbootstrap:9092 b-9.brokers.ns.svc:9092 other.ns:1".to_owned(),
            ),
            ("naïve localhost:9092", format!("naïve 127.0.0.1:{pod}")),
        ];
        for (input, expected) in cases {
            assert_eq!(r.rewrite(input), expected, "{input}");
        }
        let dns_only = Rewriter::new(&net, "ns");
        assert_eq!(dns_only.rewrite("localhost:9092"), "localhost:9092");
        assert_eq!(
            dns_only.rewrite("bootstrap:9092"),
            format!("127.0.0.1:{svc}")
        );
    }

    #[tokio::test]
    async fn mount_paths_become_host_directories_as_path_prefixes() {
        let (network, _, _) = network();
        let net = network.lock().unwrap();
        let mounts = [
            ("/etc/weir".to_owned(), Path::new("/r/cfg")),
            ("/etc/weir/extra/".to_owned(), Path::new("/r/extra")),
            ("/var/lib/weir".to_owned(), Path::new("/r/etc/weir")),
            ("/".to_owned(), Path::new("/r/root")),
        ];
        let r = Rewriter::for_pod(&net, "ns", &mounts, BTreeMap::new());
        let cases = [
            (
                "--config=/etc/weir/$(POD).properties",
                "--config=/r/cfg/$(POD).properties",
            ),
            ("/etc/weir/extra/x /etc/weir", "/r/extra/x /r/cfg"),
            ("log.dirs=/var/lib/weir/data", "log.dirs=/r/etc/weir/data"),
            (
                "/etc/weirdo /x/etc/weir a/etc/weir",
                "/etc/weirdo /x/etc/weir a/etc/weir",
            ),
            ("file:///etc/weir:/etc/weir", "file:///r/cfg:/r/cfg"),
        ];
        for (input, expected) in cases {
            assert_eq!(r.rewrite(input), expected, "{input}");
        }
    }
}
