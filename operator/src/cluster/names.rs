//! The names of everything a `Cluster` owns, derived from its name in one place so that
//! the builders, the status and the tests agree. With the Cluster name at most 40
//! characters (a CRD rule), every derived name fits a 63-character DNS label.

/// The broker pods' listener ports and paths (DESIGN.md, Ports).
pub const KAFKA_PORT: i32 = 9092;
pub const HTTP_PORT: i32 = 9094;
/// The external listener's container port, and its default advertised port for
/// LoadBalancer Services.
pub const EXTERNAL_PORT: i32 = 9095;
/// Where each broker's volume and config are mounted.
pub const DATA_DIR: &str = "/var/lib/weir";
pub const CONFIG_DIR: &str = "/etc/weir";
/// The name of the internal listener (Kafka's default listener name) and of the external one.
pub const INTERNAL_LISTENER: &str = "PLAINTEXT";
pub const EXTERNAL_LISTENER: &str = "EXTERNAL";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    pub cluster: String,
    pub namespace: String,
}

impl Names {
    pub fn new(cluster: &str, namespace: &str) -> Names {
        Names {
            cluster: cluster.to_owned(),
            namespace: namespace.to_owned(),
        }
    }

    /// The StatefulSet, its PodDisruptionBudget and ServiceAccount; pods are `<this>-<id>`.
    pub fn statefulset(&self) -> String {
        format!("{}-broker", self.cluster)
    }

    pub fn pod(&self, id: i32) -> String {
        format!("{}-{id}", self.statefulset())
    }

    /// The headless Service that gives each pod a stable DNS name.
    pub fn headless_service(&self) -> String {
        format!("{}-brokers", self.cluster)
    }

    /// The Service Kafka clients bootstrap through.
    pub fn bootstrap_service(&self) -> String {
        format!("{}-bootstrap", self.cluster)
    }

    pub fn external_service(&self, id: i32) -> String {
        format!("{}-external", self.pod(id))
    }

    pub fn config_map(&self) -> String {
        format!("{}-broker-config", self.cluster)
    }

    /// Broker `id`'s config file in the ConfigMap. Each pod reads the file named after
    /// itself (`--config /etc/weir/$(POD_NAME).properties`), so no pod needs to know its
    /// ordinal through other means.
    pub fn broker_config_file(&self, id: i32) -> String {
        format!("{}.properties", self.pod(id))
    }

    /// Broker `id`'s address on the headless Service.
    pub fn pod_host(&self, id: i32) -> String {
        format!(
            "{}.{}.{}.svc",
            self.pod(id),
            self.headless_service(),
            self.namespace
        )
    }

    pub fn bootstrap_servers(&self) -> String {
        format!(
            "{}.{}.svc:{KAFKA_PORT}",
            self.bootstrap_service(),
            self.namespace
        )
    }

    /// The identity brokers present to the multi-cluster controller the operator hosts.
    pub fn controller_cluster(&self) -> String {
        format!("{}/{}", self.namespace, self.cluster)
    }
}
