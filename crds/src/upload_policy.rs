//! The `UploadPolicy` custom resource (`holdfast.io/v1alpha1`): how request bodies on the routes it targets are held,
//! limited and replayed.
//!
//! The doc comments on these fields are the schema descriptions `kubectl explain uploadpolicy.spec` shows, so they are
//! written for users. Sizes and durations stay strings here, as users write them; the controller parses them with
//! [`crate::parse_bytes`] and [`crate::parse_duration`] and reports bad values in the status instead of failing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod min_rate;
mod resumable;
pub use min_rate::MinBodyRateSpec;
pub use resumable::{DeliveryMethod, ResumableProtocol, ResumableSpec};

/// A Kubernetes quantity of bytes such as `10Gi`, `512Mi` or `1G`. Kept in step with [`crate::parse_bytes`].
const QUANTITY_PATTERN: &str = r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|[eE][0-9]+)?$";
/// A duration such as `90s`, `5m`, `1h30m` or `250ms`. Kept in step with [`crate::parse_duration`].
const DURATION_PATTERN: &str = r"^([0-9]*\.?[0-9]+(ms|s|m|h))+$";

/// How uploads on the targeted routes are held before and while they are sent upstream, and when they are replayed.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "holdfast.io",
    version = "v1alpha1",
    kind = "UploadPolicy",
    namespaced,
    shortname = "upol",
    status = "UploadPolicyStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "UploadPolicy says how request bodies on the Ingress routes it targets are held, limited and replayed.",
    // Raw JSON rather than `printcolumn(name = ..)`: clippy's duplicated_attributes lint fires on the repeated
    // `type_ = "string"` inside the derive's input.
    printcolumn = r#"{"name": "Mode", "type": "string", "jsonPath": ".spec.mode"}"#,
    printcolumn = r#"{"name": "Max Body", "type": "string", "jsonPath": ".spec.maxBodySize"}"#,
    printcolumn = r#"{"name": "Accepted", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct UploadPolicySpec {
    /// The Ingresses and Services, in this namespace, whose routes this policy governs. A policy named by an Ingress's
    /// `holdfast.io/upload-policy` annotation wins over one targeting the Ingress, which wins over one targeting the
    /// backend Service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<TargetRef>,
    /// Largest accepted request body, as a quantity (`10Gi`). Larger bodies get 413. `0` means unlimited. Default:
    /// unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = QUANTITY_PATTERN))]
    pub max_body_size: Option<String>,
    /// How much of each body is kept in memory before it spills to disk, as a quantity (`128Ki`), at most `64Mi`.
    /// Default: `128Ki`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = QUANTITY_PATTERN))]
    pub memory_buffer: Option<String>,
    /// How bodies travel: `Buffered` (the whole body is stored before the upstream is contacted; replayable), `Tee`
    /// (streamed to the upstream and stored as it goes; replayable) or `Streaming` (no store, no replay once the body
    /// has started). Default: `Buffered`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_body_mode")]
    pub mode: Option<BodyMode>,
    /// When and how long a failed delivery is retried with the stored body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplaySpec>,
    /// Timeouts of the client and upstream sides of a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<TimeoutsSpec>,
    /// The least a request body must be sent at and a response body read at. Each `window` spent waiting for the
    /// client must move at least `bytesPerSecond × window` bytes: a request body sent slower gets 408 (its stored part
    /// is removed), a client reading a response slower has its connection closed. Time Holdfast itself spends not
    /// reading (a slow upstream holding the body back) does not count against the client. `clientBodyTimeout` still
    /// applies. Default: 500 bytes per second over `60s`, which never cuts a phone on a 2G network (4-12 KB/s) that
    /// stalls for 20s while it changes cells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_body_rate: Option<MinBodyRateSpec>,
    /// Resumable uploads (tus): when present, Holdfast itself speaks tus to clients on the targeted routes, so that an
    /// upload broken off by the network resumes where it stopped. A client creates an upload by sending the tus
    /// creation request (a `POST` with `Tus-Resumable`) to the very URL it would have posted the file to, then sends
    /// the bytes with `PATCH` requests to the upload's own URL. Holdfast keeps the upload on its spool volume and, once
    /// it is complete, delivers it to the URL it was created at, through the route's backend, as one ordinary request
    /// with a `Content-Length`. Other requests on those routes are proxied as before. Absent: requests are only
    /// proxied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumable: Option<ResumableSpec>,
}

/// An object in the policy's namespace whose routes the policy governs.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// `Ingress` (every route of that Ingress) or `Service` (every route whose backend is that Service).
    pub kind: TargetKind,
    /// Name of the Ingress or Service, in the policy's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Kinds a policy can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
pub enum TargetKind {
    Ingress,
    Service,
}

/// How a request body travels from the client to the upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum BodyMode {
    Buffered,
    Tee,
    Streaming,
}

/// The schema of an optional [`BodyMode`]. Written by hand because the derived one lists `null` among the enum
/// values, which a structural schema should express with `nullable` alone.
fn optional_body_mode(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "enum": ["Buffered", "Tee", "Streaming"],
        "nullable": true,
    })
}

/// When a failed delivery is retried with the stored body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplaySpec {
    /// Most deliveries that reach an upstream, the first included. Refused connections send nothing and do not count.
    /// Default: 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_attempts: Option<i32>,
    /// How long a request may wait for an endpoint that takes it (`60s`), counted from when its body is complete: a
    /// `Tee` request is not given up while its body is still arriving. Default: `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub upstream_wait_timeout: Option<String>,
    /// Which failures are replayed: `Reset` (the upstream closed or reset the connection before the response head) and
    /// `Timeout` (an upstream connect, send or read timeout). Refused connections are always retried. Default: both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<Vec<ReplayFailure>>,
}

/// A kind of delivery failure that can be replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum ReplayFailure {
    Reset,
    Timeout,
}

/// Timeouts, as durations (`90s`, `5m`). Each must be greater than zero.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutsSpec {
    /// Longest idle gap between two reads of the client's body; the client gets 408 after it. Default: `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub client_body_timeout: Option<String>,
    /// Longest TCP connect to one endpoint. Default: `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub upstream_connect_timeout: Option<String>,
    /// Longest time the upstream may leave the body unread. Default: `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub upstream_send_timeout: Option<String>,
    /// Longest time the upstream may take to send the response head once the body is sent. Default: `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub upstream_read_timeout: Option<String>,
    /// Longest a WebSocket (or other HTTP/1.1 Upgrade) tunnel may carry no byte in either direction before it is
    /// closed. WebSocket applications ping every 20-60 s, so a long limit never cuts a live tunnel and still frees one
    /// whose peer vanished. Default: `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub tunnel_idle_timeout: Option<String>,
}

/// What the controller made of the policy.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadPolicyStatus {
    /// `Accepted`: whether the spec is valid and in force. `ResolvedRefs`: whether every target exists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The routes this policy governs, as `namespace/ingress host path`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached_routes: Vec<String>,
}
