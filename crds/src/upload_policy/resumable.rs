//! The `resumable` section of an UploadPolicy: resumable uploads (tus) that Holdfast terminates itself, so that a
//! client on a bad network resumes an upload where it broke off instead of starting again, and the backend still
//! receives one ordinary request.
//!
//! As in the rest of the spec, the doc comments are what `kubectl explain uploadpolicy.spec.resumable` shows.

use super::{DURATION_PATTERN, QUANTITY_PATTERN};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An RFC 9110 field name (a token). The controller also refuses names Holdfast sets on the delivery itself, which
/// no pattern can express.
const HEADER_NAME_PATTERN: &str = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

/// Resumable uploads on the targeted routes, as the user wrote them; the controller turns them into the snapshot's
/// `Resumable`. The user-facing explanation is on `UploadPolicySpec::resumable`, which `kubectl explain` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResumableSpec {
    /// The resumable-upload protocol spoken to clients. Only `Tus` (tus 1.0.0 with the creation,
    /// creation-with-upload, creation-defer-length, termination, expiration and checksum extensions). Default: `Tus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_protocol")]
    pub protocol: Option<ResumableProtocol>,
    /// Largest upload, as a quantity (`20Gi`), announced to clients as `Tus-Max-Size`; a larger upload is refused
    /// with 413. When `maxBodySize` is set too, the lower of the two applies. `0`: no limit of its own. Default: `0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = QUANTITY_PATTERN))]
    pub max_size: Option<String>,
    /// How long after its creation an unfinished upload is deleted, as a duration (`24h`); clients see it in
    /// `Upload-Expires`. Default: `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub expires_after: Option<String>,
    /// How long, after its delivery ended, a finished upload's outcome (the backend's status, headers and the start of
    /// its body) can still be read at the upload's URL (`HEAD`, `GET`), for a client that lost the answer to its last
    /// `PATCH`. Default: `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub outcome_retention: Option<String>,
    /// How long the `PATCH` that completes an upload waits for the backend's answer. After it, Holdfast answers that
    /// `PATCH` itself, the delivery goes on, and the client reads the outcome at the upload's URL. Default: `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub answer_wait: Option<String>,
    /// The method of the request that delivers a finished upload to the backend, at the URL the upload was created
    /// at: `POST` or `PUT`. Default: `POST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_delivery_method")]
    pub delivery_method: Option<DeliveryMethod>,
    /// `Upload-Metadata` keys passed to the backend as request header fields, by key: `title: X-Upload-Title` sends
    /// the client's `title` as `X-Upload-Title`. `filename` and `filetype` always become `Content-Disposition` and
    /// `Content-Type` of the delivery; other keys not listed here are not passed. A field Holdfast sets on the
    /// delivery itself (`Content-Length`, `Content-Type`, `Host`, `Authorization`, `Cookie`, `X-Forwarded-For` and
    /// the like) cannot be named. Default: none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "metadata_headers")]
    pub metadata_headers: BTreeMap<String, String>,
}

/// Resumable-upload protocols.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum ResumableProtocol {
    #[default]
    Tus,
}

/// The method of a finished upload's delivery.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum DeliveryMethod {
    #[default]
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "PUT")]
    Put,
}

/// Written by hand, like `optional_body_mode`: the derived schema of an optional enum lists `null` among its values,
/// which a structural schema expresses with `nullable` alone.
fn optional_protocol(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "enum": ["Tus"],
        "nullable": true,
    })
}

fn optional_delivery_method(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "enum": ["POST", "PUT"],
        "nullable": true,
    })
}

/// A map of strings whose values are field names, so that a typo such as `X Upload Title` fails at `kubectl apply`.
fn metadata_headers(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "additionalProperties": {"type": "string", "pattern": HEADER_NAME_PATTERN},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_as_users_write_them() {
        let yaml = "protocol: Tus\nmaxSize: 20Gi\nexpiresAfter: 12h\noutcomeRetention: 30m\nanswerWait: 90s\n\
                    deliveryMethod: PUT\nmetadataHeaders: {title: X-Upload-Title}\n";
        let spec: ResumableSpec = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(spec.protocol, Some(ResumableProtocol::Tus));
        assert_eq!(spec.max_size.as_deref(), Some("20Gi"));
        assert_eq!(
            (spec.expires_after.as_deref(), spec.outcome_retention.as_deref(), spec.answer_wait.as_deref()),
            (Some("12h"), Some("30m"), Some("90s"))
        );
        assert_eq!(spec.delivery_method, Some(DeliveryMethod::Put));
        assert_eq!(spec.metadata_headers["title"], "X-Upload-Title");
        let again: ResumableSpec = serde_yaml::from_str(&serde_yaml::to_string(&spec).unwrap()).unwrap();
        assert_eq!(again, spec);
    }

    #[test]
    fn an_empty_section_leaves_every_field_to_its_default() {
        let spec: ResumableSpec = serde_yaml::from_str("{}").unwrap();
        assert_eq!(spec, ResumableSpec::default());
        assert_eq!(serde_json::to_string(&spec).unwrap(), "{}");
    }

    #[test]
    fn refuses_unknown_protocols_and_methods() {
        for yaml in ["protocol: Ietf", "deliveryMethod: PATCH", "deliveryMethod: post"] {
            assert!(serde_yaml::from_str::<ResumableSpec>(yaml).is_err(), "{yaml}");
        }
    }
}
