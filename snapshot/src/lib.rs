//! The route snapshot: the one contract between the Holdfast controller and its dataplane.
//!
//! The controller turns Ingresses, Services, EndpointSlices and UploadPolicies into a [`Snapshot`] and `PUT`s it,
//! as JSON, to the dataplane's admin `/config`. The dataplane validates it with [`Snapshot::validate`] and swaps it in
//! whole. This crate has no kube dependency on purpose: the dataplane must never compile kube, and the controller
//! must be able to build snapshots in plain unit tests.
//!
//! Units are explicit in field names (`…Bytes`, `…Ms`) because JSON has no quantities or durations; the controller
//! converts Kubernetes quantities ("10Gi") and durations ("90s") before it pushes.

mod delta;
mod min_rate;
mod policy;
mod resumable;
mod upstream;
mod validate;

pub use delta::{DeltaError, SnapshotDelta};
pub use min_rate::{
    MinBodyRate, DEFAULT_MIN_BYTES_PER_SECOND, DEFAULT_MIN_RATE_WINDOW_MS, MAX_MIN_BYTES_PER_SECOND,
    MIN_RATE_WINDOW_CEILING_MS, MIN_RATE_WINDOW_FLOOR_MS,
};
pub use policy::{BodyMode, ClientAbort, ErrorPage, HalfClose, Policy, ReplayPolicy, Timeouts};
pub use resumable::{
    DeliveryMethod, Resumable, ResumableProtocol, DEFAULT_ANSWER_WAIT_MS, DEFAULT_EXPIRES_AFTER_MS,
    DEFAULT_OUTCOME_RETENTION_MS,
};
pub use upstream::{UpstreamProtocol, UpstreamTls};
pub use validate::{is_token, valid_host, validate_backend, SnapshotError, MAX_MEMORY_BUFFER};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

fn no_certificates(tls: &Arc<Vec<TlsCertificate>>) -> bool {
    tls.is_empty()
}

/// A complete routing state. The dataplane only accepts a snapshot whose `version` is greater than the one in force.
///
/// Its large parts are shared (`Arc`), so that a snapshot that differs from another in a few backends (an
/// EndpointSlice edit) is made, compared and kept beside it at the cost of those backends, not of the whole: at
/// thousands of Ingresses a copy of every host, backend and certificate per endpoint change was most of the
/// controller's work. `Arc`'s equality looks at the pointer first, so comparing two snapshots that share a part
/// does not walk it. On the wire they are plain JSON: sharing is not preserved by serialisation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Snapshot {
    /// Strictly increasing across pushes from one controller.
    pub version: u64,
    /// Host rules, in any order: the dataplane sorts them by Ingress precedence.
    #[serde(default)]
    pub hosts: Arc<Vec<HostRule>>,
    /// Where requests go when no host or path rule matches (an Ingress `defaultBackend`). `None`: 404.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_backend: Option<RouteTarget>,
    /// Backends by name (the controller uses `namespace/service:port`, with `+h2`, `+tls(…)` suffixes when the
    /// protocol or TLS settings are not plain HTTP/1.1: one Service port can be routed with several).
    #[serde(default)]
    pub backends: BTreeMap<String, Arc<Backend>>,
    /// Upload policies by name (the controller uses `namespace/name`, or `default` for its flag defaults).
    #[serde(default)]
    pub policies: Arc<BTreeMap<String, Policy>>,
    /// Certificates for the TLS listener, chosen by SNI (from the Ingresses' `tls` sections).
    #[serde(default, skip_serializing_if = "no_certificates")]
    pub tls: Arc<Vec<TlsCertificate>>,
    /// The other dataplanes of this installation by instance name (a StatefulSet's pod names), at their plain
    /// client listener: a request for a resumable upload that another replica owns is passed to it there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub peers: BTreeMap<String, Peer>,
}

/// Another dataplane, as its peers reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Peer {
    /// An IPv4 or IPv6 address (the pod's).
    pub address: String,
    /// Its plain HTTP listener (`--listen`).
    pub port: u16,
}

/// A certificate chain and its key for some hosts (a `kubernetes.io/tls` Secret).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsCertificate {
    /// Exact names or `*.example.com` wildcards.
    pub hosts: Vec<String>,
    /// PEM: the leaf certificate first, then intermediates.
    pub cert_pem: String,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
    /// Where it came from (for example `secret default/photos-tls`), for errors and logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl TlsCertificate {
    /// Checks that the PEM holds at least one certificate and exactly one private key. Whether the key matches the
    /// certificate needs a crypto provider: the dataplane checks that, and serves its default certificate for the
    /// hosts of an entry that fails it, without refusing the snapshot.
    pub fn check(&self) -> Result<(), String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the certificate PEM is malformed: {e}"))?;
        if certs.is_empty() {
            return Err("the certificate PEM holds no CERTIFICATE block".to_string());
        }
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map(drop)
            .map_err(|e| format!("the key PEM holds no usable private key: {e}"))
    }
}

/// Never prints the key: snapshots are logged and compared in tests.
impl std::fmt::Debug for TlsCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCertificate")
            .field("hosts", &self.hosts)
            .field("source", &self.source)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The paths of one host. `host` is an exact DNS name, a wildcard `*.example.com` (exactly one label), or empty for
/// rules that apply to every host (an Ingress rule without `host`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostRule {
    #[serde(default)]
    pub host: String,
    pub paths: Vec<PathRule>,
}

/// One Ingress HTTP path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathRule {
    pub path: String,
    pub path_type: PathType,
    #[serde(flatten)]
    pub target: RouteTarget,
}

/// Ingress `pathType`. `ImplementationSpecific` is matched as `Prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PathType {
    Exact,
    Prefix,
    ImplementationSpecific,
}

/// What a matched route points at: a backend, and the upload policy that governs requests on this route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteTarget {
    pub backend: String,
    /// Name of an entry in [`Snapshot::policies`]; `None` means the dataplane's built-in defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Where this route came from (for example `ingress default/photos`), for logs and error bodies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Answer plain-HTTP requests with a permanent redirect to HTTPS (an Ingress annotation turns it on).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redirect_https: bool,
    /// The Ingress the route comes from: the `namespace` and `ingress` labels of the route's metrics, and its access
    /// log lines. Bounded by what users applied, never by requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<ObjectRef>,
}

/// A namespaced Kubernetes object by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectRef {
    pub namespace: String,
    pub name: String,
}

/// A Service port, as routes name it: the `service` and `port` labels of the route's metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    /// The port's number, or its name when the Ingress names it (as written in the Ingress).
    pub port: String,
}

/// A Service port and the endpoints behind it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backend {
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub balance: Balance,
    /// The HTTP version spoken to the endpoints.
    #[serde(default, skip_serializing_if = "UpstreamProtocol::is_default")]
    pub protocol: UpstreamProtocol,
    /// TLS to the endpoints; `None`: plain TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
    /// The Service port behind the backend, for metric labels, logs and the status page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServicePort>,
}

/// How a backend's ready endpoints share requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastInFlight,
}

/// One address behind a backend, with the EndpointSlice conditions (absent `ready` already resolved to `true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoint {
    /// An IPv4 or IPv6 address (no DNS names: the dataplane never resolves).
    pub address: String,
    pub port: u16,
    #[serde(default = "yes")]
    pub ready: bool,
    #[serde(default = "yes")]
    pub serving: bool,
    #[serde(default)]
    pub terminating: bool,
}

fn yes() -> bool {
    true
}

impl Snapshot {
    /// Parses and validates a snapshot from JSON. Every error names the field at fault.
    pub fn from_json(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let snapshot: Snapshot = serde_json::from_slice(bytes).map_err(SnapshotError::Json)?;
        snapshot.validate()?;
        Ok(snapshot)
    }
}
