//! The `minBodyRate` section of an UploadPolicy: the least a request body must be sent at, and a response body read
//! at, so that a client trickling a byte every few seconds cannot hold a connection forever.
//!
//! As in the rest of the spec, the doc comments are what `kubectl explain uploadpolicy.spec.minBodyRate` shows.

use super::DURATION_PATTERN;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The minimum transfer rate of bodies, as the user wrote it; the controller turns it into the snapshot's
/// `MinBodyRate`. The user-facing explanation is on `UploadPolicySpec::min_body_rate`, which `kubectl explain` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MinBodyRateSpec {
    /// Bytes per second a body must average over each window. `0` turns the check off. Default: `500`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1073741824))]
    pub bytes_per_second: Option<i64>,
    /// How long the average is taken over, as a duration between `100ms` and `1h`. Default: `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub window: Option<String>,
}
