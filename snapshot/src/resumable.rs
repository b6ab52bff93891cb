//! Resumable uploads that the dataplane terminates itself (UploadPolicy `resumable`): the client speaks tus 1.0.0 to
//! Holdfast, the upload is kept on the spool volume, and once complete it is delivered to the route's backend as one
//! ordinary request with a `Content-Length`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The resumable-upload protocol spoken to clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResumableProtocol {
    /// tus 1.0.0 with the extensions creation, creation-with-upload, creation-defer-length, termination, expiration
    /// and checksum.
    #[default]
    Tus,
}

/// Resumable uploads on a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Resumable {
    pub protocol: ResumableProtocol,
    /// Largest upload (`Tus-Max-Size`); 0: only the policy's `maxBodySizeBytes`, if any, and the spool's room.
    pub max_size_bytes: u64,
    /// An unfinished upload is deleted this long after it was created (tus `expiration`).
    pub expires_after_ms: u64,
    /// How long a delivered upload's outcome (the backend's status, headers and the start of its body) stays
    /// readable at its URL (HEAD, GET) after the delivery ended.
    pub outcome_retention_ms: u64,
    /// How long the PATCH that completes an upload waits for the backend's answer before it answers the client
    /// itself (the delivery goes on; the outcome is then read at the upload's URL).
    pub answer_wait_ms: u64,
    /// The method of the request that delivers a finished upload to the backend (`POST` or `PUT`), to the URL the
    /// upload was created at.
    pub delivery_method: DeliveryMethod,
    /// `Upload-Metadata` keys passed to the backend as request fields, by key: `{"title": "X-Upload-Title"}`.
    /// `filename` and `filetype` always become `Content-Disposition` and `Content-Type`; other keys are not passed.
    pub metadata_headers: BTreeMap<String, String>,
}

/// The method of a delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryMethod {
    #[default]
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "PUT")]
    Put,
}

impl DeliveryMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryMethod::Post => "POST",
            DeliveryMethod::Put => "PUT",
        }
    }
}

/// One day: enough for a phone to come back from a tunnel or a night without network; the tus FAQ suggests up to a
/// week, which a pod's volume rarely has room for.
pub const DEFAULT_EXPIRES_AFTER_MS: u64 = 24 * 3_600_000;
/// One hour: a client that lost the last answer asks again within seconds (tus-js-client retries after 0, 1, 3 and
/// 5 s); an hour leaves room for a client that was offline meanwhile.
pub const DEFAULT_OUTCOME_RETENTION_MS: u64 = 3_600_000;
/// One minute, the default of `replay.upstreamWaitTimeoutMs`: a backend that restarts within it answers the client's
/// last PATCH.
pub const DEFAULT_ANSWER_WAIT_MS: u64 = 60_000;

impl Default for Resumable {
    fn default() -> Self {
        Resumable {
            protocol: ResumableProtocol::Tus,
            max_size_bytes: 0,
            expires_after_ms: DEFAULT_EXPIRES_AFTER_MS,
            outcome_retention_ms: DEFAULT_OUTCOME_RETENTION_MS,
            answer_wait_ms: DEFAULT_ANSWER_WAIT_MS,
            delivery_method: DeliveryMethod::Post,
            metadata_headers: BTreeMap::new(),
        }
    }
}
