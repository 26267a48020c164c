//! kstatus-style conditions (`Ready`, `Progressing`, `Degraded`) on both resources, as
//! Kubernetes' own `metav1.Condition`: a condition's `lastTransitionTime` moves only
//! when its status changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionType {
    /// The resource is as specified and serving.
    Ready,
    /// The operator is moving the resource towards its spec.
    Progressing,
    /// Something is wrong that the operator cannot fix by itself.
    Degraded,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Progressing => "Progressing",
            ConditionType::Degraded => "Degraded",
        }
    }
}

/// Sets condition `kind` in `conditions` (replacing one of the same type), keeping its
/// `lastTransitionTime` when the status did not change. `now` is passed in so builds stay
/// pure.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    kind: ConditionType,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: &Time,
) {
    let status = if status { "True" } else { "False" }.to_owned();
    let previous = conditions.iter().position(|c| c.type_ == kind.as_str());
    let last_transition_time = match previous.map(|i| &conditions[i]) {
        Some(old) if old.status == status => old.last_transition_time.clone(),
        _ => now.clone(),
    };
    let condition = Condition {
        type_: kind.as_str().to_owned(),
        status,
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation,
        last_transition_time,
    };
    match previous {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            ConditionType::Ready,
            false,
            "Creating",
            "",
            Some(1),
            &at(10),
        );
        set_condition(
            &mut conditions,
            ConditionType::Ready,
            false,
            "Waiting",
            "x",
            Some(2),
            &at(20),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, at(10));
        assert_eq!(conditions[0].reason, "Waiting");
        assert_eq!(conditions[0].observed_generation, Some(2));
        set_condition(
            &mut conditions,
            ConditionType::Ready,
            true,
            "Ready",
            "",
            Some(2),
            &at(30),
        );
        assert_eq!(conditions[0].last_transition_time, at(30));
        assert_eq!(conditions[0].status, "True");
        set_condition(
            &mut conditions,
            ConditionType::Degraded,
            false,
            "AsExpected",
            "",
            Some(2),
            &at(40),
        );
        assert_eq!(conditions.len(), 2);
    }
}
