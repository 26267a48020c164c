//! The stand-in for pod networking and DNS on one machine. Every pod's container port is
//! its own port on 127.0.0.1, allocated the first time anything names it and kept for the
//! pod's *name* (a StatefulSet pod recreated with its name keeps its address, as it keeps
//! its DNS name). Every ClusterIP Service port is a 127.0.0.1 port with a TCP proxy to the
//! Ready pods its selector matches, round robin.
//!
//! Containers see these addresses through text rewriting (of their arguments, environment
//! and mounted config files) — see [`Network::rewrite`]:
//!
//! - `0.0.0.0:P`, `[::]:P`, `:::P`, `localhost:P`, `127.0.0.1:P` where `P` is one of the
//!   pod's own container ports → the pod's address for `P`;
//! - `<pod>.<subdomain>.<ns>.svc[.cluster.local]:P` (a headless Service's pod record,
//!   where the pod's hostname is its name, as StatefulSet pods' are) → that pod's address
//!   for `P`;
//! - `<service>.<ns>.svc[.cluster.local]:P` → the Service's proxy for port `P`.
//!
//! Names without a port, short names (`<service>`, `<service>.<ns>`) and anything else are
//! left alone.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt as _;
use tokio::net::{TcpListener, TcpStream};

/// What the proxies route by: the latest Services and pods the kubelet listed.
#[derive(Default)]
pub(crate) struct Snapshot {
    pub(crate) services: Vec<Service>,
    pub(crate) pods: Vec<Pod>,
}

#[derive(Default)]
struct Inner {
    /// (namespace, pod name, container port) → host port.
    pod_ports: BTreeMap<(String, String, u16), u16>,
    /// (namespace, service, port) → proxy address.
    service_ports: BTreeMap<(String, String, u16), SocketAddr>,
    proxies: Vec<tokio::task::JoinHandle<()>>,
    next: usize,
}

#[derive(Clone, Default)]
pub(crate) struct Network {
    inner: Arc<Mutex<Inner>>,
    pub(crate) snapshot: Arc<Mutex<Snapshot>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

impl Network {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pod's host address for a container port (allocated on first use).
    pub(crate) fn pod_address(&self, namespace: &str, pod: &str, port: u16) -> SocketAddr {
        let mut inner = self.lock();
        let host_port = *inner
            .pod_ports
            .entry((namespace.to_owned(), pod.to_owned(), port))
            .or_insert_with(free_port);
        SocketAddr::from(([127, 0, 0, 1], host_port))
    }

    /// The pod's address if it was ever allocated.
    pub(crate) fn known_pod_address(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> Option<SocketAddr> {
        let inner = self.lock();
        let host_port = inner
            .pod_ports
            .get(&(namespace.to_owned(), pod.to_owned(), port))?;
        Some(SocketAddr::from(([127, 0, 0, 1], *host_port)))
    }

    /// The Service's proxy address for `port` (its listener started on first use).
    pub(crate) fn service_address(&self, namespace: &str, service: &str, port: u16) -> SocketAddr {
        let key = (namespace.to_owned(), service.to_owned(), port);
        if let Some(addr) = self.lock().service_ports.get(&key) {
            return *addr;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        listener.set_nonblocking(true).expect("non-blocking");
        let network = self.clone();
        let task = tokio::spawn(async move {
            let Ok(listener) = TcpListener::from_std(listener) else {
                return;
            };
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let Some(target) = network.endpoint(&key) else {
                    drop(client);
                    continue;
                };
                tokio::spawn(async move {
                    if let Ok(mut upstream) = TcpStream::connect(target).await {
                        let mut client = client;
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        let mut inner = self.lock();
        inner.proxies.push(task);
        *inner
            .service_ports
            .entry((namespace.to_owned(), service.to_owned(), port))
            .or_insert(addr)
    }

    /// A Ready pod behind the Service port, round robin.
    fn endpoint(&self, (namespace, service, port): &(String, String, u16)) -> Option<SocketAddr> {
        let snapshot = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        let svc = snapshot
            .services
            .iter()
            .find(|s| s.namespace().as_deref() == Some(namespace) && s.name_any() == *service)?;
        let spec = svc.spec.as_ref()?;
        let selector = spec.selector.as_ref()?;
        let svc_port = spec
            .ports
            .as_ref()?
            .iter()
            .find(|p| u16::try_from(p.port).ok() == Some(*port))?;
        let mut targets = Vec::new();
        for pod in &snapshot.pods {
            let matches = pod.namespace().as_deref() == Some(namespace)
                && selector.iter().all(|(k, v)| pod.labels().get(k) == Some(v));
            if !matches || !ready(pod) {
                continue;
            }
            let container_port = match &svc_port.target_port {
                None => Some(svc_port.port),
                Some(IntOrString::Int(p)) => Some(*p),
                Some(IntOrString::String(name)) => named_port(pod, name),
            };
            if let Some(p) = container_port.and_then(|p| u16::try_from(p).ok()) {
                targets.push((pod.name_any(), p));
            }
        }
        drop(snapshot);
        if targets.is_empty() {
            return None;
        }
        let mut inner = self.lock();
        inner.next = inner.next.wrapping_add(1);
        let (pod, p) = &targets[inner.next % targets.len()];
        drop(inner);
        Some(self.pod_address(namespace, pod, *p))
    }

    /// Rewrites addresses in `text` for a container of `pod` (its own container ports are
    /// `own_ports`) in `namespace`; see the module docs.
    pub(crate) fn rewrite(
        &self,
        namespace: &str,
        pod: Option<&str>,
        own_ports: &[u16],
        text: &str,
    ) -> String {
        let mut out = String::with_capacity(text.len());
        let mut word = String::new();
        let is_word = |c: char| c.is_ascii_alphanumeric() || "._-:[]".contains(c);
        for c in text.chars().chain(std::iter::once('\0')) {
            if is_word(c) {
                word.push(c);
                continue;
            }
            if !word.is_empty() {
                out.push_str(&self.rewrite_word(namespace, pod, own_ports, &word));
                word.clear();
            }
            if c != '\0' {
                out.push(c);
            }
        }
        out
    }

    fn rewrite_word(&self, namespace: &str, pod: Option<&str>, own: &[u16], word: &str) -> String {
        let Some((host, port)) = word.rsplit_once(':') else {
            return word.to_owned();
        };
        let Ok(port) = port.parse::<u16>() else {
            return word.to_owned();
        };
        if let Some(pod) = pod
            && own.contains(&port)
            && matches!(host, "0.0.0.0" | "[::]" | "::" | "localhost" | "127.0.0.1")
        {
            return self.pod_address(namespace, pod, port).to_string();
        }
        let name = host.strip_suffix(".cluster.local").unwrap_or(host);
        let Some(name) = name.strip_suffix(".svc") else {
            return word.to_owned();
        };
        let labels: Vec<&str> = name.split('.').collect();
        let addr = match labels.as_slice() {
            [service, ns] => self.service_address(ns, service, port),
            [pod, _subdomain, ns] => self.pod_address(ns, pod, port),
            _ => return word.to_owned(),
        };
        addr.to_string()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.proxies {
            task.abort();
        }
    }
}

pub(crate) fn ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The container port named `name` in the pod's first container.
pub(crate) fn named_port(pod: &Pod, name: &str) -> Option<i32> {
    pod.spec
        .as_ref()?
        .containers
        .first()?
        .ports
        .as_ref()?
        .iter()
        .find(|p| p.name.as_deref() == Some(name))
        .map(|p| p.container_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn addresses_are_rewritten() {
        let net = Network::default();
        let own = net.pod_address("kafka", "demo-broker-0", 9092);
        let peer = net.pod_address("kafka", "demo-broker-1", 9092);
        let text = "listeners=PLAINTEXT://0.0.0.0:9092\n\
             advertised.listeners=PLAINTEXT://demo-broker-0.demo-brokers.kafka.svc:9092\n\
             peer=demo-broker-1.demo-brokers.kafka.svc.cluster.local:9092,other:1\n\
             keep=0.0.0.0:1234 name.kafka.svc no-port";
        let rewritten = net.rewrite("kafka", Some("demo-broker-0"), &[9092], text);
        let expected = format!(
            "listeners=PLAINTEXT://{own}\nadvertised.listeners=PLAINTEXT://{own}\n\
             peer={peer},other:1\nkeep=0.0.0.0:1234 name.kafka.svc no-port"
        );
        assert_eq!(rewritten, expected);
        let svc = net.rewrite("kafka", None, &[], "controller=weir.weir-system.svc:9093");
        let proxy = net.service_address("weir-system", "weir", 9093);
        assert_eq!(svc, format!("controller={proxy}"));
        assert_eq!(
            net.rewrite("kafka", Some("p"), &[80], "[::]:80"),
            format!("{}", net.pod_address("kafka", "p", 80))
        );
    }
}
