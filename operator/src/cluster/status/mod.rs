//! The status step of the `Cluster` reconciler, and its rolling-restart decision: pure
//! functions of what was observed (the StatefulSet, the broker pods, the controller's
//! metadata) so each rule is unit-tested.
//!
//! Rolling restarts (the StatefulSet is `OnDelete`): one broker at a time, and only when
//! every broker pod is ready, registered and in the ISR of every partition it replicates
//! and no partition is under-replicated — so stopping one broker never takes a partition
//! below the ISR it had. The broker moves its leadership away itself on SIGTERM
//! (controlled shutdown). Highest ordinal first, as the StatefulSet controller rolls.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use weir_controller::BrokerId;
use weir_controller::metadata::ClusterMetadata;

use super::names::Names;
use crate::crd::{BrokerStatus, ConditionType, set_condition};

/// The pod label the StatefulSet controller sets to the revision the pod runs.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// What the status step computes (the parts of `ClusterStatus` the reconciler owns).
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub brokers: Vec<BrokerStatus>,
    pub ready_brokers: i32,
    pub under_replicated_partitions: i32,
    pub offline_partitions: i32,
    /// Pods not yet on the StatefulSet's update revision.
    pub outdated: Vec<String>,
}

pub fn observe(
    names: &Names,
    wanted: i32,
    statefulset: Option<&StatefulSet>,
    pods: &[Pod],
    metadata: Option<&ClusterMetadata>,
) -> Observed {
    let update_revision = statefulset
        .and_then(|s| s.status.as_ref())
        .and_then(|s| s.update_revision.clone());
    let mut brokers = Vec::new();
    let mut outdated = Vec::new();
    for id in 0..wanted {
        let pod_name = names.pod(id);
        let pod = pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(&pod_name));
        let ready = pod.is_some_and(pod_ready)
            && pod.is_some_and(|p| p.metadata.deletion_timestamp.is_none());
        if let (Some(pod), Some(revision)) = (pod, &update_revision)
            && pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_LABEL))
                != Some(revision)
        {
            outdated.push(pod_name.clone());
        }
        let broker = BrokerId(id);
        let registered = metadata
            .and_then(|m| m.brokers.get(&broker))
            .is_some_and(|b| !b.fenced);
        let in_sync = metadata.is_some_and(|m| {
            m.topics.values().flat_map(|t| &t.partitions).all(|p| {
                !p.replicas.contains(&broker)
                    || p.adding_replicas.contains(&broker)
                    || p.isr.contains(&broker)
            })
        });
        brokers.push(BrokerStatus {
            id,
            pod: pod_name,
            ready,
            in_sync,
            registered,
        });
    }
    let partitions = || {
        metadata
            .into_iter()
            .flat_map(|m| m.topics.values())
            .flat_map(|t| &t.partitions)
    };
    let under_replicated = partitions()
        .filter(|p| p.isr.len() < p.replicas.len() - p.adding_replicas.len())
        .count();
    let offline = partitions().filter(|p| p.leader.is_none()).count();
    Observed {
        ready_brokers: i32::try_from(brokers.iter().filter(|b| b.ready).count()).unwrap_or(0),
        brokers,
        under_replicated_partitions: i32::try_from(under_replicated).unwrap_or(i32::MAX),
        offline_partitions: i32::try_from(offline).unwrap_or(i32::MAX),
        outdated,
    }
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

impl Observed {
    /// Every broker ready, registered and in sync, nothing under-replicated or offline.
    pub fn healthy(&self) -> bool {
        self.brokers
            .iter()
            .all(|b| b.ready && b.registered && b.in_sync)
            && self.under_replicated_partitions == 0
            && self.offline_partitions == 0
    }

    /// The pod to restart now for a rolling update, if any may go.
    pub fn next_restart(&self) -> Option<&str> {
        if !self.healthy() {
            return None;
        }
        self.outdated
            .iter()
            .max_by_key(|pod| pod.rsplit('-').next().and_then(|n| n.parse::<i32>().ok()))
            .map(String::as_str)
    }

    /// Ready, Progressing and Degraded from this observation.
    pub fn conditions(
        &self,
        previous: &[Condition],
        generation: Option<i64>,
        now: &Time,
    ) -> Vec<Condition> {
        let mut conditions = previous.to_vec();
        let wanted = self.brokers.len();
        let (progressing, progress_reason, progress_message) = if !self.outdated.is_empty() {
            (
                true,
                "RollingRestart",
                format!(
                    "{} broker(s) to restart for a new revision: {}",
                    self.outdated.len(),
                    self.outdated.join(", ")
                ),
            )
        } else if self.ready_brokers < i32::try_from(wanted).unwrap_or(i32::MAX) {
            (
                true,
                "BrokersStarting",
                format!("{} of {wanted} brokers ready", self.ready_brokers),
            )
        } else {
            (
                false,
                "Stable",
                "every broker runs the current revision".to_owned(),
            )
        };
        let (degraded, degraded_reason, degraded_message) = if self.offline_partitions > 0 {
            (
                true,
                "OfflinePartitions",
                format!("{} partition(s) have no leader", self.offline_partitions),
            )
        } else if self.under_replicated_partitions > 0 {
            (
                true,
                "UnderReplicatedPartitions",
                format!(
                    "{} partition(s) are under-replicated",
                    self.under_replicated_partitions
                ),
            )
        } else {
            (
                false,
                "AsExpected",
                "all partitions fully replicated".to_owned(),
            )
        };
        let unregistered: Vec<String> = self
            .brokers
            .iter()
            .filter(|b| !b.registered)
            .map(|b| b.id.to_string())
            .collect();
        let (ready, ready_reason, ready_message) =
            if self.ready_brokers < i32::try_from(wanted).unwrap_or(i32::MAX) {
                (
                    false,
                    "BrokersNotReady",
                    format!("{} of {wanted} brokers ready", self.ready_brokers),
                )
            } else if !unregistered.is_empty() {
                (
                    false,
                    "BrokersNotRegistered",
                    format!(
                        "broker(s) {} not registered with the controller",
                        unregistered.join(", ")
                    ),
                )
            } else if degraded {
                (false, degraded_reason, degraded_message.clone())
            } else {
                (true, "Ready", format!("{wanted} brokers ready and in sync"))
            };
        set_condition(
            &mut conditions,
            ConditionType::Ready,
            ready,
            ready_reason,
            ready_message,
            generation,
            now,
        );
        set_condition(
            &mut conditions,
            ConditionType::Progressing,
            progressing,
            progress_reason,
            progress_message,
            generation,
            now,
        );
        set_condition(
            &mut conditions,
            ConditionType::Degraded,
            degraded,
            degraded_reason,
            degraded_message,
            generation,
            now,
        );
        conditions
    }
}

#[cfg(test)]
mod tests;
