//! Holdfast's custom resources and the value parsers their fields need.
//!
//! `UploadPolicy` is defined here with kube's `CustomResource` derive; `crdgen` renders it to `crds/uploadpolicy.yaml`
//! and a test fails when that committed file differs from what these types generate. Quantities and durations are
//! strings in the API (as users write them) and are parsed by [`parse_bytes`] and [`parse_duration`].

mod duration;
mod quantity;
mod upload_policy;

pub use duration::{parse_duration, DurationError};
pub use quantity::{parse_bytes, QuantityError};
pub use upload_policy::{
    BodyMode, DeliveryMethod, MinBodyRateSpec, ReplayFailure, ReplaySpec, ResumableProtocol, ResumableSpec, TargetKind,
    TargetRef, TimeoutsSpec, UploadPolicy, UploadPolicySpec, UploadPolicyStatus,
};

use kube::CustomResourceExt;

/// Condition type: the spec is valid and in force.
pub const CONDITION_ACCEPTED: &str = "Accepted";
/// Condition type: every `targetRef` names an existing object.
pub const CONDITION_RESOLVED_REFS: &str = "ResolvedRefs";

/// The CRD YAML that `crdgen` writes and the drift test compares against the committed file.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&UploadPolicy::crd())
}
