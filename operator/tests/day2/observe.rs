//! Watches what an operation does to the cluster, event by event (every write the API
//! server makes is a watch event, so nothing between two polls is missed): the smallest
//! ISR each partition had, how many broker pods were down at once, the order brokers were
//! taken down in, and the progress the Cluster's status reported.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use weir_operator::crd::{Cluster, Topic};

use crate::env::{CLUSTER, NS, condition, pod_ready};

#[derive(Clone, Debug, Default)]
pub(crate) struct Observed {
    /// The smallest ISR each (topic, partition) had.
    pub(crate) min_isr: BTreeMap<(String, i32), usize>,
    /// Broker pods currently not Ready (terminating, gone or starting).
    unready: BTreeSet<String>,
    /// The most broker pods not Ready at one time.
    pub(crate) max_unready: usize,
    /// Broker pods in the order they started terminating (or crashed).
    pub(crate) taken_down: Vec<String>,
    /// The Cluster's `Progressing` messages, in order, each once.
    pub(crate) progress: Vec<String>,
}

impl Observed {
    /// The (topic, partition)s whose ISR fell below `min_isr`.
    pub(crate) fn below(&self, min_isr: usize) -> Vec<String> {
        self.min_isr
            .iter()
            .filter(|(_, isr)| **isr < min_isr)
            .map(|((t, p), isr)| format!("{t}-{p}: ISR {isr}"))
            .collect()
    }
}

pub(crate) struct Observer {
    state: Arc<Mutex<Observed>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Observer {
    /// Starts watching the example cluster's broker pods, Topics and Cluster.
    pub(crate) fn start(client: &Client) -> Observer {
        let state = Arc::new(Mutex::new(Observed::default()));
        let prefix = format!("{CLUSTER}-broker-");
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        let topics: Api<Topic> = Api::namespaced(client.clone(), NS);
        let clusters: Api<Cluster> = Api::namespaced(client.clone(), NS);
        let pod_task = {
            let state = state.clone();
            tokio::spawn(async move {
                let mut events = watcher(pods, watcher::Config::default())
                    .default_backoff()
                    .touched_objects()
                    .boxed();
                while let Some(Ok(pod)) = events.next().await {
                    let name = pod.name_any();
                    if !name.starts_with(&prefix) {
                        continue;
                    }
                    let mut state = state.lock().unwrap();
                    if pod_ready(&pod) {
                        state.unready.remove(&name);
                    } else if state.unready.insert(name.clone()) {
                        let down = pod.metadata.deletion_timestamp.is_some() || restarting(&pod);
                        if down {
                            state.taken_down.push(name);
                        }
                    }
                    state.max_unready = state.max_unready.max(state.unready.len());
                }
            })
        };
        let topic_task = {
            let state = state.clone();
            tokio::spawn(async move {
                let mut events = watcher(topics, watcher::Config::default())
                    .default_backoff()
                    .applied_objects()
                    .boxed();
                while let Some(Ok(topic)) = events.next().await {
                    let name = topic.topic_name().to_owned();
                    let Some(status) = topic.status else { continue };
                    let mut state = state.lock().unwrap();
                    for p in status.partitions {
                        let min = state
                            .min_isr
                            .entry((name.clone(), p.partition))
                            .or_insert(usize::MAX);
                        *min = (*min).min(p.isr.len());
                    }
                }
            })
        };
        let cluster_task = {
            let state = state.clone();
            tokio::spawn(async move {
                let mut events = watcher(clusters, watcher::Config::default())
                    .default_backoff()
                    .applied_objects()
                    .boxed();
                while let Some(Ok(cluster)) = events.next().await {
                    let Some(status) = cluster.status else {
                        continue;
                    };
                    let Some(progressing) = condition(&status.conditions, "Progressing") else {
                        continue;
                    };
                    if progressing.status != "True" {
                        continue;
                    }
                    let line = format!("{}: {}", progressing.reason, progressing.message);
                    let mut state = state.lock().unwrap();
                    if state.progress.last() != Some(&line) {
                        state.progress.push(line);
                    }
                }
            })
        };
        Observer {
            state,
            tasks: vec![pod_task, topic_task, cluster_task],
        }
    }

    pub(crate) fn snapshot(&self) -> Observed {
        self.state.lock().unwrap().clone()
    }

    pub(crate) fn stop(self) -> Observed {
        for task in &self.tasks {
            task.abort();
        }
        self.snapshot()
    }
}

/// The container is not running (it crashed and waits to restart).
fn restarting(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .is_some_and(|c| c.state.as_ref().is_none_or(|s| s.running.is_none()))
}
