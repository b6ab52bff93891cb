//! The small, kube-free models translation reads. Each keeps only what routing needs, with the API's defaults
//! already applied where the API defines them (an absent EndpointSlice `ready` means ready) and missing required
//! fields kept as explicit "missing" values so translation can say what is wrong.

use k8s_openapi::jiff::Timestamp;
use std::fmt;

/// Namespace and name; the namespace is empty for cluster-scoped kinds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey { namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// The order "oldest wins" uses: creation time, objects without one last, then namespace and name so ties (and the
/// file source, which has no creation times) resolve the same way every time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Age {
    pub missing: bool,
    pub created: Option<Timestamp>,
}

impl Age {
    pub fn new(created: Option<Timestamp>) -> Self {
        Age { missing: created.is_none(), created }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressClassModel {
    /// `spec.controller`; ours is [`crate::translate::CONTROLLER_NAME`] unless overridden.
    pub controller: String,
    /// `ingressclass.kubernetes.io/is-default-class: "true"`.
    pub is_default: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressModel {
    pub age: Age,
    pub generation: Option<i64>,
    pub class_name: Option<String>,
    /// The legacy `kubernetes.io/ingress.class` annotation, only read when `spec.ingressClassName` is absent.
    pub legacy_class: Option<String>,
    /// `holdfast.io/upload-policy`.
    pub policy_annotation: Option<String>,
    /// `holdfast.io/ssl-redirect`.
    pub ssl_redirect_annotation: Option<String>,
    /// The `nginx.ingress.kubernetes.io/*` annotations, prefix removed.
    pub nginx: std::collections::BTreeMap<String, String>,
    pub default_backend: Option<BackendModel>,
    pub rules: Vec<RuleModel>,
    pub tls: Vec<TlsModel>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleModel {
    /// Empty when the rule has no host (it applies to every host).
    pub host: String,
    pub paths: Vec<PathModel>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathModel {
    pub path: Option<String>,
    pub path_type: String,
    pub backend: BackendModel,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendModel {
    Service {
        name: String,
        port: PortRef,
    },
    /// A `resource` backend or one with neither field: Holdfast only routes to Services.
    Unsupported,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortRef {
    Number(i32),
    Name(String),
    Missing,
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(name) => f.write_str(name),
            PortRef::Missing => f.write_str("<missing>"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsModel {
    pub hosts: Vec<String>,
    pub secret_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceModel {
    /// `ExternalName` Services have no endpoints Holdfast can route to.
    pub external_name: bool,
    pub ports: Vec<ServicePortModel>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortModel {
    /// Empty for the single unnamed port; EndpointSlice ports carry the same name.
    pub name: String,
    pub port: i32,
    /// `appProtocol` (KEP-3726), as written: what the endpoints speak on this port. Kept verbatim because the API
    /// compares these values case-sensitively.
    pub app_protocol: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceModel {
    /// The `kubernetes.io/service-name` label; slices without it belong to no Service.
    pub service: Option<String>,
    /// `IPv4`, `IPv6` or `FQDN`; the dataplane never resolves names, so `FQDN` slices are skipped.
    pub address_type: String,
    pub ports: Vec<SlicePortModel>,
    pub endpoints: Vec<SliceEndpointModel>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlicePortModel {
    pub name: String,
    pub port: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceEndpointModel {
    pub addresses: Vec<String>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// The Pod behind the endpoint (`targetRef.name` when `targetRef.kind` is `Pod` or unset): a StatefulSet's pod
    /// names are the dataplanes' instance names, which peers are keyed by. `None` without a targetRef.
    pub pod: Option<String>,
}

/// A `kubernetes.io/tls` Secret's certificate chain and key, as PEM text, and the CA bundle some issuers add
/// (cert-manager's `ca.crt`). `None` when absent, empty or not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSecretModel {
    pub cert_pem: Option<Pem>,
    pub key_pem: Option<Pem>,
    pub ca_pem: Option<Pem>,
}

/// An `Opaque` Secret that carries a `ca.crt` (ingress-nginx's `proxy-ssl-secret` layout, made with `kubectl create
/// secret generic --from-file=ca.crt=…`). Only `ca.crt`, `tls.crt` and `tls.key` (a client certificate for mutual
/// TLS) are kept; every other key of the Secret is dropped when it is converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaSecretModel {
    pub ca_pem: Pem,
    pub cert_pem: Option<Pem>,
    pub key_pem: Option<Pem>,
}

/// PEM text from a Secret. Its `Debug` never shows the content, so a logged model cannot leak a private key.
#[derive(Clone, PartialEq, Eq)]
pub struct Pem(pub String);

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pem(<{} bytes redacted>)", self.0.len())
    }
}
