//! The brokers' StatefulSet.
//!
//! - Pods start in parallel (brokers wait for the controller, not for each other) and are
//!   updated `OnDelete`: the operator restarts them one at a time, leadership-aware, so
//!   a template change never rolls brokers behind its back.
//! - Each pod reads `/etc/weir/$(POD_NAME).properties` from the ConfigMap: its node id and
//!   advertised listeners are in its own file, so it needs no ordinal arithmetic.
//! - The pod template carries [`CONFIG_HASH_ANNOTATION`], a checksum of the ConfigMap,
//!   so a config change is a new StatefulSet revision.
//! - `/readyz` gates readiness; termination leaves time for controlled shutdown.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    SeccompProfile, SecurityContext, TopologySpreadConstraint, Volume, VolumeMount,
    VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{broker_selector, labels, metadata, selector_labels};
use crate::cluster::names::{CONFIG_DIR, DATA_DIR, EXTERNAL_PORT, HTTP_PORT, KAFKA_PORT};
use crate::cluster::validate::ValidCluster;

/// The pod-template annotation holding the CRC-32C of the brokers' config files.
pub const CONFIG_HASH_ANNOTATION: &str = "weir.dev/config-hash";

/// The broker's user and group in the image (distroless "nonroot").
const BROKER_UID: i64 = 65532;
/// Enough for controlled shutdown (leadership moves away, the broker drains and closes
/// its logs cleanly) on a broker leading thousands of partitions.
const DEFAULT_TERMINATION_GRACE_SECONDS: i64 = 120;
const DATA_VOLUME: &str = "data";
const CONFIG_VOLUME: &str = "config";

pub(super) fn build(cluster: &ValidCluster, owner: &OwnerReference) -> StatefulSet {
    let spec = &cluster.spec;
    let retention = &spec.storage.retention;
    StatefulSet {
        metadata: metadata(cluster, &cluster.names.statefulset(), owner),
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.brokers),
            service_name: Some(cluster.names.headless_service()),
            selector: broker_selector(cluster),
            pod_management_policy: Some("Parallel".to_owned()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_owned()),
                ..StatefulSetUpdateStrategy::default()
            }),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(retention.when_deleted.as_str().to_owned()),
                    when_scaled: Some(retention.when_scaled.as_str().to_owned()),
                },
            ),
            template: pod_template(cluster),
            volume_claim_templates: Some(vec![data_claim(cluster)]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// CRC-32C (stable across operator versions, unlike std's hasher) over what existing
/// brokers must restart for: the shared settings and the external listener (whose
/// advertised addresses are per broker). Scaling changes neither, so it restarts nobody.
pub fn config_hash(cluster: &ValidCluster) -> String {
    let mut crc = 0u32;
    let external = serde_json::to_string(&cluster.spec.listeners.external).unwrap_or_default();
    let pairs = cluster
        .shared_settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()));
    for (key, value) in pairs.chain([("external", external.as_str())]) {
        for part in [key, value] {
            crc = crc32c::crc32c_append(crc, part.as_bytes());
            crc = crc32c::crc32c_append(crc, &[0]);
        }
    }
    format!("{crc:08x}")
}

fn pod_template(cluster: &ValidCluster) -> PodTemplateSpec {
    let overrides = cluster.spec.template.clone().unwrap_or_default();
    let mut pod_labels = overrides.labels.clone();
    pod_labels.extend(labels(cluster));
    let mut annotations = overrides.annotations.clone();
    annotations.insert(CONFIG_HASH_ANNOTATION.to_owned(), config_hash(cluster));
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(cluster.names.statefulset()),
            automount_service_account_token: Some(false),
            termination_grace_period_seconds: Some(
                overrides
                    .termination_grace_period_seconds
                    .unwrap_or(DEFAULT_TERMINATION_GRACE_SECONDS),
            ),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(BROKER_UID),
                run_as_group: Some(BROKER_UID),
                // Makes the data volume writable by the broker.
                fs_group: Some(BROKER_UID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            containers: vec![container(cluster)],
            volumes: Some(vec![Volume {
                name: CONFIG_VOLUME.to_owned(),
                config_map: Some(ConfigMapVolumeSource {
                    name: cluster.names.config_map(),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            }]),
            affinity: Some(
                overrides
                    .affinity
                    .clone()
                    .unwrap_or_else(|| spread_over_nodes(cluster)),
            ),
            topology_spread_constraints: cluster.spec.rack.as_ref().map(|rack| {
                vec![TopologySpreadConstraint {
                    max_skew: 1,
                    topology_key: rack.topology_key.clone(),
                    when_unsatisfiable: "ScheduleAnyway".to_owned(),
                    label_selector: Some(broker_selector(cluster)),
                    ..TopologySpreadConstraint::default()
                }]
            }),
            tolerations: (!overrides.tolerations.is_empty()).then(|| overrides.tolerations.clone()),
            node_selector: (!overrides.node_selector.is_empty())
                .then(|| overrides.node_selector.clone()),
            priority_class_name: overrides.priority_class_name.clone(),
            ..PodSpec::default()
        }),
    }
}

/// A preference, not a rule: brokers on different nodes, so one node's loss takes one
/// replica of each partition.
fn spread_over_nodes(cluster: &ValidCluster) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        topology_key: "kubernetes.io/hostname".to_owned(),
                        label_selector: Some(LabelSelector {
                            match_labels: Some(selector_labels(cluster)),
                            ..LabelSelector::default()
                        }),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn container(cluster: &ValidCluster) -> Container {
    let mut env = vec![field_env("POD_NAME", "metadata.name")];
    if let Some(rack) = &cluster.spec.rack {
        // `broker.rack` through the broker's environment override.
        env.push(field_env(
            "WEIR_BROKER_RACK",
            &format!("metadata.labels['{}']", rack.topology_key),
        ));
    }
    let mut ports = vec![
        container_port("kafka", KAFKA_PORT),
        container_port("http", HTTP_PORT),
    ];
    if cluster.spec.listeners.external.is_some() {
        ports.push(container_port("kafka-external", EXTERNAL_PORT));
    }
    let http_probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    Container {
        name: "broker".to_owned(),
        image: Some(cluster.image.clone()),
        image_pull_policy: cluster
            .spec
            .image_pull_policy
            .map(|p| p.as_str().to_owned()),
        args: Some(vec![
            "--config".to_owned(),
            format!("{CONFIG_DIR}/$(POD_NAME).properties"),
        ]),
        env: Some(env),
        ports: Some(ports),
        resources: cluster.spec.resources.clone(),
        // Log recovery after a crash can take a while: liveness starts only once the
        // broker has answered /healthz (up to 10 minutes).
        startup_probe: Some(http_probe("/healthz", 5, 120)),
        liveness_probe: Some(http_probe("/healthz", 10, 6)),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: DATA_VOLUME.to_owned(),
                mount_path: DATA_DIR.to_owned(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: CONFIG_VOLUME.to_owned(),
                mount_path: CONFIG_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: port,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

fn data_claim(cluster: &ValidCluster) -> PersistentVolumeClaim {
    let storage = &cluster.spec.storage;
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.to_owned()),
            labels: Some(selector_labels(cluster)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(storage.size.0.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}
