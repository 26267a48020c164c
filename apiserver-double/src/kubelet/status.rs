//! The pod status the kubelet reports.
//!
//! Owns [`PodStatus`], the facts a worker tracks about one pod, and rendering them as
//! the `status` of a Pod: `phase`, `hostIP`/`podIP` (`127.0.0.1`), `startTime`, the
//! conditions `PodScheduled`, `Initialized`, `ContainersReady` and `Ready` (each with a
//! `lastTransitionTime` that moves only when its status does), and `containerStatuses[0]`
//! with `state` and `lastState`. Rendering is pure; the worker writes the result only
//! when it differs from what it wrote last.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::meta;

/// A pod's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }
}

/// How a run of the container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Terminated {
    pub(crate) exit_code: i32,
    pub(crate) started_at: String,
    pub(crate) finished_at: String,
}

impl Terminated {
    fn render(&self) -> Value {
        json!({"terminated": {
            "exitCode": self.exit_code,
            "reason": if self.exit_code == 0 { "Completed" } else { "Error" },
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
        }})
    }
}

/// The container's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum State {
    Waiting { reason: String, message: String },
    Running { started_at: String },
    Terminated(Terminated),
}

impl State {
    pub(crate) fn waiting(reason: &str, message: impl Into<String>) -> State {
        State::Waiting {
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    fn render(&self) -> Value {
        match self {
            State::Waiting { reason, message } if message.is_empty() => {
                json!({"waiting": {"reason": reason}})
            }
            State::Waiting { reason, message } => {
                json!({"waiting": {"reason": reason, "message": message}})
            }
            State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            State::Terminated(t) => t.render(),
        }
    }
}

/// What the kubelet knows of one pod.
#[derive(Debug, Clone)]
pub(crate) struct PodStatus {
    pub(crate) phase: Phase,
    pub(crate) start_time: String,
    pub(crate) container: String,
    pub(crate) image: String,
    pub(crate) state: State,
    pub(crate) last_state: Option<Terminated>,
    pub(crate) restart_count: i32,
    pub(crate) started: bool,
    pub(crate) ready: bool,
    /// A process id for `containerID`, while one runs.
    pub(crate) pid: Option<u32>,
    /// Condition type → (status, lastTransitionTime).
    transitions: BTreeMap<&'static str, (bool, String)>,
}

impl PodStatus {
    pub(crate) fn new(container: &str, image: &str) -> PodStatus {
        PodStatus {
            phase: Phase::Pending,
            start_time: meta::now_rfc3339(),
            container: container.to_owned(),
            image: image.to_owned(),
            state: State::waiting("ContainerCreating", ""),
            last_state: None,
            restart_count: 0,
            started: false,
            ready: false,
            pid: None,
            transitions: BTreeMap::new(),
        }
    }

    fn condition(&mut self, kind: &'static str, status: bool) -> Value {
        let (_, since) = self
            .transitions
            .entry(kind)
            .and_modify(|(was, since)| {
                if *was != status {
                    *was = status;
                    *since = meta::now_rfc3339();
                }
            })
            .or_insert_with(|| (status, meta::now_rfc3339()));
        let mut condition = json!({
            "type": kind,
            "status": if status { "True" } else { "False" },
            "lastProbeTime": null,
            "lastTransitionTime": since,
        });
        if !status && matches!(kind, "Ready" | "ContainersReady") {
            condition["reason"] = json!("ContainersNotReady");
            condition["message"] = json!(format!(
                "containers with unready status: [{}]",
                self.container
            ));
        }
        condition
    }

    /// The `status` object.
    pub(crate) fn render(&mut self) -> Value {
        let ready = self.ready;
        let conditions = vec![
            self.condition("PodScheduled", true),
            self.condition("Initialized", true),
            self.condition("ContainersReady", ready),
            self.condition("Ready", ready),
        ];
        let mut container = json!({
            "name": self.container,
            "image": self.image,
            "imageID": "",
            "ready": ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state.render(),
            "lastState": self.last_state.as_ref().map_or_else(|| json!({}), Terminated::render),
        });
        if let Some(pid) = self.pid {
            container["containerID"] = json!(format!("sim://{pid}"));
        }
        json!({
            "phase": self.phase.as_str(),
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time,
            "conditions": conditions,
            "containerStatuses": [container],
        })
    }
}

/// The status of a pod no node here runs.
pub(crate) fn unschedulable(image: &str) -> Value {
    json!({
        "phase": "Pending",
        "conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": format!("0/1 nodes are available: the kubelet simulator runs no image matching {image:?}"),
            "lastProbeTime": null,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_follow_readiness_and_keep_their_transition_time() {
        let mut status = PodStatus::new("c", "img:1");
        let first = status.render();
        assert_eq!(first["phase"], "Pending");
        assert_eq!(first["conditions"][3]["type"], "Ready");
        assert_eq!(first["conditions"][3]["status"], "False");
        assert_eq!(
            first["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
        assert_eq!(status.render(), first, "nothing changed, nothing to write");

        status.phase = Phase::Running;
        status.state = State::Running {
            started_at: "t0".into(),
        };
        status.ready = true;
        status.started = true;
        status.pid = Some(42);
        status.last_state = Some(Terminated {
            exit_code: 137,
            started_at: "a".into(),
            finished_at: "b".into(),
        });
        let running = status.render();
        assert_eq!(running["conditions"][3]["status"], "True");
        let c = &running["containerStatuses"][0];
        assert_eq!(c["state"]["running"]["startedAt"], "t0");
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 137);
        assert_eq!(c["lastState"]["terminated"]["reason"], "Error");
        assert_eq!(c["containerID"], "sim://42");
    }
}
