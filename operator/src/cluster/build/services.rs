//! The Services of a Cluster: headless (per-pod DNS, the advertised internal listener),
//! bootstrap (what clients are given), and one per broker for an external listener.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{metadata, selector_labels};
use crate::cluster::names::{EXTERNAL_PORT, HTTP_PORT, KAFKA_PORT};
use crate::cluster::properties::external_address;
use crate::cluster::validate::ValidCluster;
use crate::crd::ExternalType;

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port,
        target_port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }
}

/// Gives each pod `<pod>.<service>.<ns>.svc`. Not-ready pods are published too: brokers
/// must reach each other (replication) before they report ready.
pub(super) fn headless(cluster: &ValidCluster, owner: &OwnerReference) -> Service {
    Service {
        metadata: metadata(cluster, &cluster.names.headless_service(), owner),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(cluster)),
            ports: Some(vec![port("kafka", KAFKA_PORT), port("http", HTTP_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The bootstrap address: any ready broker answers Metadata with every broker's address.
pub(super) fn bootstrap(cluster: &ValidCluster, owner: &OwnerReference) -> Service {
    Service {
        metadata: metadata(cluster, &cluster.names.bootstrap_service(), owner),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector_labels(cluster)),
            ports: Some(vec![port("kafka", KAFKA_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// One Service per broker for the external listener, selecting that broker's pod.
pub(super) fn external(cluster: &ValidCluster, owner: &OwnerReference) -> Vec<Service> {
    let Some(external) = &cluster.spec.listeners.external else {
        return Vec::new();
    };
    (0..cluster.spec.brokers)
        .map(|id| {
            let mut meta = metadata(cluster, &cluster.names.external_service(id), owner);
            if !external.annotations.is_empty() {
                meta.annotations = Some(external.annotations.clone());
            }
            let mut selector = selector_labels(cluster);
            selector.insert(
                "statefulset.kubernetes.io/pod-name".to_owned(),
                cluster.names.pod(id),
            );
            let (_, advertised_port) = external_address(external, id);
            let mut service_port = port("kafka-external", advertised_port);
            service_port.target_port = Some(IntOrString::Int(EXTERNAL_PORT));
            let type_ = match external.kind {
                ExternalType::NodePort => {
                    service_port.node_port = Some(advertised_port);
                    "NodePort"
                }
                ExternalType::LoadBalancer => "LoadBalancer",
            };
            Service {
                metadata: meta,
                spec: Some(ServiceSpec {
                    type_: Some(type_.to_owned()),
                    selector: Some(selector),
                    ports: Some(vec![service_port]),
                    // Keep the client's address and skip the extra node hop.
                    external_traffic_policy: Some("Local".to_owned()),
                    ..ServiceSpec::default()
                }),
                ..Service::default()
            }
        })
        .collect()
}
