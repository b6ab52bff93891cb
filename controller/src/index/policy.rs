//! The index model of an `UploadPolicy`: its targets and its parsed settings, plus the last settings that parsed,
//! so that an invalid edit keeps the previous valid policy in force (and is reported) instead of dropping it.

use super::model::Age;
use crate::overrides::{FieldError, PolicyOverrides};
use holdfast_crds::{TargetRef, UploadPolicy, UploadPolicyStatus};

#[derive(Debug)]
pub struct PolicyModel {
    pub age: Age,
    pub generation: Option<i64>,
    pub targets: Vec<TargetRef>,
    /// The current spec, parsed; the errors name the spec fields at fault.
    pub parsed: Result<PolicyOverrides, Vec<FieldError>>,
    /// The newest spec of this object that parsed, if any. Equal to `parsed` when that is `Ok`.
    pub last_good: Option<PolicyOverrides>,
    /// The status as the API last showed it, so a new leader keeps transition times instead of rewriting them.
    pub observed_status: Option<UploadPolicyStatus>,
}

impl PolicyModel {
    pub fn new(policy: UploadPolicy, previous: Option<&PolicyModel>) -> Self {
        let parsed = PolicyOverrides::from_spec(&policy.spec);
        let last_good = match &parsed {
            Ok(overrides) => Some(overrides.clone()),
            Err(_) => previous.and_then(|p| p.last_good.clone()),
        };
        PolicyModel {
            age: Age::new(policy.metadata.creation_timestamp.map(|t| t.0)),
            generation: policy.metadata.generation,
            targets: policy.spec.target_refs,
            parsed,
            last_good,
            observed_status: policy.status,
        }
    }

    /// The settings in force: the current ones, or the last good ones while the current spec is invalid.
    pub fn in_force(&self) -> Option<&PolicyOverrides> {
        self.last_good.as_ref()
    }
}
