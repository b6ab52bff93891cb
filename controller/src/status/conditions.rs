//! UploadPolicy status as the API stores it, computed from translation's [`PolicyStatus`]. A condition keeps its
//! `lastTransitionTime` while its status stays the same, as the Kubernetes condition conventions require.

use crate::translate::{ConditionState, PolicyStatus};
use holdfast_crds::{UploadPolicyStatus, CONDITION_ACCEPTED, CONDITION_RESOLVED_REFS};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The status to write, given the one written before (if any).
pub fn policy_status(previous: Option<&UploadPolicyStatus>, computed: &PolicyStatus, now: &Time) -> UploadPolicyStatus {
    let condition = |type_: &str, state: &ConditionState| {
        let status = if state.status { "True" } else { "False" };
        let before = previous.and_then(|p| p.conditions.iter().find(|c| c.type_ == type_));
        let last_transition_time = match before {
            Some(c) if c.status == status => c.last_transition_time.clone(),
            _ => now.clone(),
        };
        Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: state.reason.to_string(),
            message: state.message.clone(),
            observed_generation: computed.generation,
            last_transition_time,
        }
    };
    UploadPolicyStatus {
        conditions: vec![
            condition(CONDITION_ACCEPTED, &computed.accepted),
            condition(CONDITION_RESOLVED_REFS, &computed.resolved_refs),
        ],
        attached_routes: computed.attached_routes.iter().cloned().collect(),
    }
}

/// Whether two statuses differ in anything but transition times (which alone never justify a write).
pub fn differs(a: &UploadPolicyStatus, b: &UploadPolicyStatus) -> bool {
    let strip = |s: &UploadPolicyStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time = Time(Default::default());
        }
        s
    };
    strip(a) != strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: bool, reason: &'static str) -> ConditionState {
        ConditionState { status, reason, message: reason.to_lowercase() }
    }

    fn computed(accepted: bool) -> PolicyStatus {
        PolicyStatus {
            generation: Some(3),
            accepted: state(accepted, if accepted { "Accepted" } else { "Invalid" }),
            resolved_refs: state(true, "ResolvedRefs"),
            attached_routes: ["default/up * /".to_string()].into(),
            observed: None,
        }
    }

    fn time(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn keeps_transition_time_until_the_status_changes() {
        let first = policy_status(None, &computed(true), &time("2024-01-01T00:00:00Z"));
        assert_eq!(first.conditions[0].type_, "Accepted");
        assert_eq!(first.conditions[0].observed_generation, Some(3));
        assert_eq!(first.attached_routes, ["default/up * /"]);

        let same = policy_status(Some(&first), &computed(true), &time("2024-02-01T00:00:00Z"));
        assert_eq!(same.conditions[0].last_transition_time, time("2024-01-01T00:00:00Z"));
        assert!(!differs(&first, &same));

        let flipped = policy_status(Some(&same), &computed(false), &time("2024-03-01T00:00:00Z"));
        assert_eq!(
            (flipped.conditions[0].status.as_str(), flipped.conditions[0].reason.as_str()),
            ("False", "Invalid")
        );
        assert_eq!(flipped.conditions[0].last_transition_time, time("2024-03-01T00:00:00Z"));
        assert_eq!(flipped.conditions[1].last_transition_time, time("2024-01-01T00:00:00Z"));
        assert!(differs(&same, &flipped));
    }
}
