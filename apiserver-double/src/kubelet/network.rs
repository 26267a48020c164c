//! The "network namespace" stand-in: host ports for container ports, DNS records, and a
//! TCP proxy per Service port.
//!
//! Owns [`Network`], the kubelet's view of addresses:
//!
//! - Each declared container port of a pod this kubelet runs gets a port on `127.0.0.1`
//!   when the pod is first seen, kept for the pod's *name* for the kubelet's lifetime:
//!   a recreated StatefulSet pod keeps its address as it keeps its DNS name. Ports are
//!   drawn at random from 20000–32767, below Linux's ephemeral range, so the kernel never
//!   hands one out to a `bind(0)` or an outgoing connection while the pod is not
//!   listening; each is checked free when drawn and never drawn twice in a process.
//! - A pod with `spec.hostname` and `spec.subdomain` has the DNS record
//!   `<hostname>.<subdomain>.<namespace>.svc` from then on, as long as the kubelet runs
//!   (the headless Service itself is not required).
//! - A Service with a selector, whose `clusterIP` is not `None` and whose type is not
//!   `ExternalName`, gets a listener on `127.0.0.1` per port when first seen (the same
//!   port again if it is deleted and recreated, when that port is still free). Each
//!   accepted connection goes to the next Ready pod of this kubelet matching the selector
//!   in the Service's namespace (round robin in pod-name order), to the pod's host port
//!   for `targetPort` (a number or a container port name; `port` when absent), copied
//!   both ways; with no Ready pod the connection is closed. The listener closes when the
//!   Service is deleted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener as StdListener};
use std::sync::{Arc, Mutex, OnceLock};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::{TcpListener, TcpStream};

use super::{AbortOnDrop, ObjectKey};

/// The range host ports are drawn from: below Linux's default ephemeral range.
const HOST_PORTS: std::ops::Range<u16> = 20_000..32_768;

/// What the kubelet knows of a pod's network.
#[derive(Debug, Default)]
pub(crate) struct PodNet {
    /// Container port → host port.
    pub(crate) ports: BTreeMap<u16, u16>,
    /// Container port name → container port.
    names: BTreeMap<String, u16>,
    labels: BTreeMap<String, String>,
    /// Whether the pod is Ready on this kubelet (an endpoint of its Services).
    ready: bool,
}

/// A Service port's target in the pods.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TargetPort {
    Number(u16),
    Name(String),
}

#[derive(Debug)]
struct ServicePort {
    port: u16,
    target: TargetPort,
    addr: SocketAddr,
    /// The next endpoint, round robin.
    next: usize,
    _proxy: AbortOnDrop,
}

#[derive(Debug)]
struct ServiceNet {
    selector: BTreeMap<String, String>,
    ports: Vec<ServicePort>,
}

/// Host ports, DNS records, Services and endpoints of one kubelet.
#[derive(Debug, Default)]
pub(crate) struct Network {
    pods: HashMap<ObjectKey, PodNet>,
    /// `(namespace, hostname, subdomain)` → pod name.
    records: HashMap<(String, String, String), String>,
    services: HashMap<ObjectKey, ServiceNet>,
    /// `(namespace, service, port)` → the proxy port it had, to reuse on recreation.
    service_ports: HashMap<(String, String, u16), u16>,
}

impl Network {
    /// Records a pod this kubelet runs: allocates host ports for new container ports and
    /// notes its port names, labels and DNS record.
    pub(crate) fn pod_seen(&mut self, key: &ObjectKey, pod: &Pod) {
        let net = self.pods.entry(key.clone()).or_default();
        net.labels = pod.metadata.labels.clone().unwrap_or_default();
        net.names.clear();
        let ports = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.ports.as_ref());
        for port in ports.into_iter().flatten() {
            let Ok(container_port) = u16::try_from(port.container_port) else {
                continue;
            };
            if let Some(name) = &port.name {
                net.names.insert(name.clone(), container_port);
            }
            if let std::collections::btree_map::Entry::Vacant(slot) =
                net.ports.entry(container_port)
            {
                match allocate_port() {
                    Some(host) => {
                        slot.insert(host);
                    }
                    None => tracing::warn!(pod = %key.1, "no free host port for a container port"),
                }
            }
        }
        let spec = pod.spec.as_ref();
        if let (Some(host), Some(sub)) = (
            spec.and_then(|s| s.hostname.as_deref()),
            spec.and_then(|s| s.subdomain.as_deref()),
        ) {
            self.records.insert(
                (
                    key.0.clone(),
                    host.to_ascii_lowercase(),
                    sub.to_ascii_lowercase(),
                ),
                key.1.clone(),
            );
        }
    }

    /// Marks a pod Ready or not (an endpoint of its Services or not).
    pub(crate) fn set_ready(&mut self, key: &ObjectKey, ready: bool) {
        if let Some(net) = self.pods.get_mut(key) {
            net.ready = ready;
        }
    }

    /// The pod's container port → host port map.
    pub(crate) fn pod_ports(&self, key: &ObjectKey) -> BTreeMap<u16, u16> {
        self.pods
            .get(key)
            .map(|net| net.ports.clone())
            .unwrap_or_default()
    }

    /// The container port a probe or Service names by number or name.
    pub(crate) fn container_port(&self, key: &ObjectKey, port: &IntOrString) -> Option<u16> {
        match port {
            IntOrString::Int(n) => u16::try_from(*n).ok(),
            IntOrString::String(name) => self.pods.get(key)?.names.get(name).copied(),
        }
    }

    pub(crate) fn pod_address(&self, key: &ObjectKey, container_port: u16) -> Option<SocketAddr> {
        let host = *self.pods.get(key)?.ports.get(&container_port)?;
        Some(loopback(host))
    }

    /// The host address of `<hostname>.<subdomain>.<namespace>.svc:<port>`.
    pub(crate) fn record_address(
        &self,
        namespace: &str,
        hostname: &str,
        subdomain: &str,
        port: u16,
    ) -> Option<SocketAddr> {
        let pod = self.records.get(&(
            namespace.to_owned(),
            hostname.to_owned(),
            subdomain.to_owned(),
        ))?;
        self.pod_address(&(namespace.to_owned(), pod.clone()), port)
    }

    pub(crate) fn service_address(&self, key: &ObjectKey, port: u16) -> Option<SocketAddr> {
        let service = self.services.get(key)?;
        service
            .ports
            .iter()
            .find(|p| p.port == port)
            .map(|p| p.addr)
    }

    pub(crate) fn remove_service(&mut self, key: &ObjectKey) {
        self.services.remove(key);
    }

    pub(crate) fn retain_services(&mut self, mut keep: impl FnMut(&ObjectKey) -> bool) {
        self.services.retain(|key, _| keep(key));
    }

    /// Forgets every Service (closing their listeners).
    pub(crate) fn clear(&mut self) {
        self.services.clear();
    }

    /// The next Ready endpoint of a Service port, round robin.
    fn next_endpoint(&mut self, key: &ObjectKey, port: u16) -> Option<SocketAddr> {
        let service = self.services.get(key)?;
        let index = service.ports.iter().position(|p| p.port == port)?;
        let target = service.ports[index].target.clone();
        let mut endpoints: Vec<(&String, SocketAddr)> = self
            .pods
            .iter()
            .filter(|((ns, _), net)| {
                *ns == key.0
                    && net.ready
                    && service
                        .selector
                        .iter()
                        .all(|(k, v)| net.labels.get(k) == Some(v))
            })
            .filter_map(|((_, name), net)| {
                let container_port = match &target {
                    TargetPort::Number(n) => *n,
                    TargetPort::Name(name) => *net.names.get(name)?,
                };
                Some((name, loopback(*net.ports.get(&container_port)?)))
            })
            .collect();
        if endpoints.is_empty() {
            return None;
        }
        endpoints.sort();
        let service_port = &mut self.services.get_mut(key)?.ports[index];
        let chosen = endpoints[service_port.next % endpoints.len()].1;
        service_port.next = service_port.next.wrapping_add(1);
        Some(chosen)
    }
}

/// A Service was added or changed: (re)configures its proxies.
pub(crate) fn service_seen(network: &Arc<Mutex<Network>>, key: ObjectKey, svc: &Service) {
    let spec = svc.spec.clone().unwrap_or_default();
    let selector = spec.selector.unwrap_or_default();
    let proxied = !selector.is_empty()
        && spec.cluster_ip.as_deref() != Some("None")
        && spec.type_.as_deref() != Some("ExternalName");
    let mut net = network.lock().unwrap_or_else(|p| p.into_inner());
    if !proxied {
        net.services.remove(&key);
        return;
    }
    let mut old = net
        .services
        .remove(&key)
        .map(|s| s.ports)
        .unwrap_or_default();
    let mut ports = Vec::new();
    for port in spec.ports.unwrap_or_default() {
        let Ok(number) = u16::try_from(port.port) else {
            continue;
        };
        let target = match port.target_port {
            Some(IntOrString::String(name)) => TargetPort::Name(name),
            Some(IntOrString::Int(n)) => TargetPort::Number(u16::try_from(n).unwrap_or(number)),
            None => TargetPort::Number(number),
        };
        if let Some(i) = old.iter().position(|p| p.port == number) {
            let mut existing = old.swap_remove(i);
            existing.target = target;
            ports.push(existing);
            continue;
        }
        let remembered = net
            .service_ports
            .get(&(key.0.clone(), key.1.clone(), number))
            .copied();
        let listener = match bind_proxy(remembered) {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(service = %key.1, port = number, error = %err, "cannot bind a Service proxy");
                continue;
            }
        };
        let Ok(addr) = listener.local_addr() else {
            continue;
        };
        net.service_ports
            .insert((key.0.clone(), key.1.clone(), number), addr.port());
        let proxy = tokio::spawn(proxy(network.clone(), key.clone(), number, listener));
        ports.push(ServicePort {
            port: number,
            target,
            addr,
            next: 0,
            _proxy: AbortOnDrop(proxy),
        });
    }
    net.services.insert(key, ServiceNet { selector, ports });
}

/// Binds a proxy listener, on `port` if given and free, else on any port.
fn bind_proxy(port: Option<u16>) -> std::io::Result<TcpListener> {
    let std = port
        .and_then(|p| StdListener::bind(loopback(p)).ok())
        .map_or_else(|| StdListener::bind(loopback(0)), Ok)?;
    std.set_nonblocking(true)?;
    TcpListener::from_std(std)
}

/// Accepts connections to a Service port and forwards each to an endpoint.
async fn proxy(network: Arc<Mutex<Network>>, key: ObjectKey, port: u16, listener: TcpListener) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        let endpoint = network
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_endpoint(&key, port);
        let Some(endpoint) = endpoint else {
            tracing::debug!(service = %key.1, port, "no ready endpoint; closing the connection");
            continue;
        };
        tokio::spawn(async move {
            match TcpStream::connect(endpoint).await {
                Ok(mut outbound) => {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                Err(err) => {
                    tracing::debug!(%endpoint, error = %err, "endpoint refused a proxied connection")
                }
            }
        });
    }
}

pub(crate) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// Draws a free host port no other pod of this process has (see the module docs).
fn allocate_port() -> Option<u16> {
    static TAKEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let mut taken = TAKEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let span = u64::from(HOST_PORTS.end - HOST_PORTS.start);
    for _ in 0..1000 {
        let offset = u16::try_from(random_u64() % span).unwrap_or_default();
        let port = HOST_PORTS.start + offset;
        if taken.contains(&port) || StdListener::bind(loopback(port)).is_err() {
            continue;
        }
        taken.insert(port);
        return Some(port);
    }
    None
}

fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, labels: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "labels": labels},
            "spec": {
                "hostname": name, "subdomain": "peers",
                "containers": [{"name": "c", "ports": [
                    {"name": "http", "containerPort": 8080},
                    {"containerPort": 9092},
                ]}],
            },
        }))
        .unwrap()
    }

    #[test]
    fn host_ports_are_kept_for_the_pod_name_and_distinct() {
        let mut net = Network::default();
        let key = ("ns".to_owned(), "a-0".to_owned());
        net.pod_seen(&key, &pod("a-0", json!({})));
        let first = net.pod_ports(&key);
        assert_eq!(first.len(), 2);
        net.pod_seen(&key, &pod("a-0", json!({})));
        assert_eq!(net.pod_ports(&key), first, "same name, same ports");
        let other = ("ns".to_owned(), "a-1".to_owned());
        net.pod_seen(&other, &pod("a-1", json!({})));
        let all: HashSet<u16> = first
            .values()
            .chain(net.pod_ports(&other).values())
            .copied()
            .collect();
        assert_eq!(all.len(), 4);
        assert!(all.iter().all(|p| HOST_PORTS.contains(p)));
        assert_eq!(
            net.record_address("ns", "a-1", "peers", 8080),
            net.pod_address(&other, 8080)
        );
        assert_eq!(net.record_address("ns", "a-1", "peers", 1234), None);
        assert_eq!(
            net.container_port(&key, &IntOrString::String("http".into())),
            Some(8080)
        );
    }

    #[tokio::test]
    async fn service_endpoints_are_ready_matching_pods_in_turn() {
        let network = Arc::new(Mutex::new(Network::default()));
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
        }))
        .unwrap();
        let key = ("ns".to_owned(), "web".to_owned());
        service_seen(&network, key.clone(), &svc);
        let mut net = network.lock().unwrap();
        assert!(net.service_address(&key, 80).is_some());
        assert_eq!(net.next_endpoint(&key, 80), None, "no pods yet");
        for name in ["w-0", "w-1", "other"] {
            let app = if name == "other" { "db" } else { "web" };
            let pod_key = ("ns".to_owned(), name.to_owned());
            net.pod_seen(&pod_key, &pod(name, json!({"app": app})));
            net.set_ready(&pod_key, true);
        }
        let w0 = net.pod_address(&("ns".into(), "w-0".into()), 8080);
        let w1 = net.pod_address(&("ns".into(), "w-1".into()), 8080);
        let picks: Vec<_> = (0..4).map(|_| net.next_endpoint(&key, 80)).collect();
        assert_eq!(picks, [w0, w1, w0, w1]);
        net.set_ready(&("ns".into(), "w-0".into()), false);
        assert_eq!(net.next_endpoint(&key, 80), w1);
        assert_eq!(net.next_endpoint(&key, 80), w1);
    }
}
