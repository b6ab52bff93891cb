//! What translation found wrong, and what it made of each UploadPolicy: the input for logs, Kubernetes events and
//! UploadPolicy status. Reasons are a fixed set so they can be event reasons and metric labels.

use crate::index::ObjectKey;
use std::collections::{BTreeMap, BTreeSet};

/// Why an object (or part of it) was not translated as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    RouteConflict,
    DefaultBackendConflict,
    InvalidHost,
    InvalidPath,
    UnsupportedBackend,
    ServiceNotFound,
    ServicePortNotFound,
    TlsSecretNotFound,
    TlsSecretInvalid,
    TlsHostConflict,
    PolicyNotFound,
    PolicyInvalid,
    PolicyConflict,
    InvalidAnnotation,
    TargetNotFound,
    /// A Service port's `appProtocol` Holdfast does not know; HTTP/1.1 is used.
    UnsupportedAppProtocol,
    /// A `backend-protocol` value of ingress-nginx's that Holdfast does not speak (AUTO_HTTP, FCGI, AJP).
    UnsupportedBackendProtocol,
    /// The `backend-protocol` annotation and the port's `appProtocol` disagree; the annotation wins.
    BackendProtocolConflict,
    /// `proxy-ssl-secret` names a Secret that is missing, or lacks the `ca.crt` verification needs.
    UpstreamTlsSecretNotFound,
    /// `proxy-ssl-secret` names a Secret in another namespace.
    UpstreamTlsSecretRefused,
    /// The upstream TLS settings' PEM (CA, client certificate) cannot be used.
    UpstreamTlsInvalid,
    /// `proxy-ssl-*` annotations on an Ingress whose backend is not spoken to over TLS.
    UpstreamTlsIgnored,
    /// Buffered was asked for on a route to an HTTP/2 backend: gRPC calls there go in Tee mode.
    GrpcNotBuffered,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::RouteConflict => "RouteConflict",
            Reason::DefaultBackendConflict => "DefaultBackendConflict",
            Reason::InvalidHost => "InvalidHost",
            Reason::InvalidPath => "InvalidPath",
            Reason::UnsupportedBackend => "UnsupportedBackend",
            Reason::ServiceNotFound => "ServiceNotFound",
            Reason::ServicePortNotFound => "ServicePortNotFound",
            Reason::TlsSecretNotFound => "TlsSecretNotFound",
            Reason::TlsSecretInvalid => "TlsSecretInvalid",
            Reason::TlsHostConflict => "TlsHostConflict",
            Reason::PolicyNotFound => "PolicyNotFound",
            Reason::PolicyInvalid => "PolicyInvalid",
            Reason::PolicyConflict => "PolicyConflict",
            Reason::InvalidAnnotation => "InvalidAnnotation",
            Reason::TargetNotFound => "TargetNotFound",
            Reason::UnsupportedAppProtocol => "UnsupportedAppProtocol",
            Reason::UnsupportedBackendProtocol => "UnsupportedBackendProtocol",
            Reason::BackendProtocolConflict => "BackendProtocolConflict",
            Reason::UpstreamTlsSecretNotFound => "UpstreamTlsSecretNotFound",
            Reason::UpstreamTlsSecretRefused => "UpstreamTlsSecretRefused",
            Reason::UpstreamTlsInvalid => "UpstreamTlsInvalid",
            Reason::UpstreamTlsIgnored => "UpstreamTlsIgnored",
            Reason::GrpcNotBuffered => "GrpcNotBuffered",
        }
    }
}

/// One problem, on the object a user should look at (`kubectl describe` shows it as a Warning event).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Warning {
    pub kind: &'static str,
    pub key: ObjectKey,
    /// The object's `metadata.uid`, when it has one (objects read from files do not). `kubectl describe` asks for
    /// events by uid as well as by name, so an event without it is never shown there.
    pub uid: Option<String>,
    pub reason: Reason,
    pub message: String,
}

/// A condition as translation computed it; the status writer adds times and generations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionState {
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

/// What the controller made of one UploadPolicy.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyStatus {
    pub generation: Option<i64>,
    pub accepted: ConditionState,
    pub resolved_refs: ConditionState,
    /// `namespace/ingress host path` of each route it governs.
    pub attached_routes: BTreeSet<String>,
    /// The status the API last showed for the policy.
    pub observed: Option<holdfast_crds::UploadPolicyStatus>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub warnings: Vec<Warning>,
    pub policies: BTreeMap<ObjectKey, PolicyStatus>,
    /// The Ingresses this controller owns, for the Ingress status writer.
    pub ingresses: BTreeSet<ObjectKey>,
}

impl Report {
    /// Records a warning once: an Ingress with several routes to one backend meets the same problem on each.
    pub fn warn(&mut self, kind: &'static str, key: &ObjectKey, reason: Reason, message: impl Into<String>) {
        let warning = Warning { kind, key: key.clone(), uid: None, reason, message: message.into() };
        if !self.warnings.contains(&warning) {
            self.warnings.push(warning);
        }
    }

    /// Warnings about one object, for tests and for the event recorder.
    pub fn warnings_for(&self, kind: &str, key: &ObjectKey) -> Vec<&Warning> {
        self.warnings.iter().filter(|w| w.kind == kind && &w.key == key).collect()
    }
}
