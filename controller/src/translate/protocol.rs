//! What a backend speaks: the HTTP version, and whether its connections are TLS.
//!
//! Two inputs, most specific first: the Ingress's `nginx.ingress.kubernetes.io/backend-protocol` annotation (a user
//! migrating from ingress-nginx sets it on purpose, for this Ingress), then the Service port's `appProtocol`
//! (KEP-3726, for every Ingress routing to the port). Neither: HTTP/1.1 in clear. When both are set and disagree the
//! annotation wins and the Ingress is told. A value Holdfast cannot speak is reported and never guessed at.

use super::report::{Reason, Report};
use crate::index::ObjectKey;
use holdfast_snapshot::UpstreamProtocol;
use std::collections::BTreeMap;

/// The `appProtocol` values [`app_protocol`] maps, for messages.
const KNOWN_APP_PROTOCOLS: &str = "http, https, h2c, grpc, kubernetes.io/h2c, kubernetes.io/ws and kubernetes.io/wss";

/// The annotation, prefix removed.
pub const BACKEND_PROTOCOL: &str = "backend-protocol";

/// The HTTP version and transport spoken to a backend's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wire {
    pub protocol: UpstreamProtocol,
    pub tls: bool,
}

impl Wire {
    pub const HTTP1: Wire = Wire { protocol: UpstreamProtocol::Http1, tls: false };
    pub const HTTPS: Wire = Wire { protocol: UpstreamProtocol::Http1, tls: true };
    pub const H2C: Wire = Wire { protocol: UpstreamProtocol::Http2, tls: false };
    pub const H2_TLS: Wire = Wire { protocol: UpstreamProtocol::Http2, tls: true };

    fn describe(self) -> &'static str {
        match (self.protocol, self.tls) {
            (UpstreamProtocol::Http1, false) => "HTTP/1.1",
            (UpstreamProtocol::Http1, true) => "HTTP/1.1 over TLS",
            (UpstreamProtocol::Http2, false) => "HTTP/2 in clear (h2c)",
            (UpstreamProtocol::Http2, true) => "HTTP/2 over TLS",
        }
    }
}

/// A Service port's `appProtocol`. Compared case-sensitively, as Kubernetes compares these values: the IANA names
/// and the `kubernetes.io/` ones KEP-3726 defines. `None`: a value Holdfast does not know.
pub fn app_protocol(value: Option<&str>) -> Option<Wire> {
    match value {
        // WebSocket is HTTP/1.1 with an Upgrade: any HTTP/1.1 backend tunnels it, request by request.
        None | Some("http" | "kubernetes.io/ws") => Some(Wire::HTTP1),
        Some("https" | "kubernetes.io/wss") => Some(Wire::HTTPS),
        // gRPC needs HTTP/2; a port that says only `grpc` is taken to be in clear, as gRPC servers in a cluster
        // usually are (TLS to it is asked for with the annotation's GRPCS).
        Some("h2c" | "kubernetes.io/h2c" | "grpc") => Some(Wire::H2C),
        Some(_) => None,
    }
}

/// The Ingress's `backend-protocol` annotation, read once per Ingress. `None` when absent or ignored (the warning
/// is then already in the report): the backends' `appProtocol` decides.
pub fn annotation(key: &ObjectKey, nginx: &BTreeMap<String, String>, report: &mut Report) -> Option<Annotated> {
    let written = nginx.get(BACKEND_PROTOCOL)?;
    let field = format!("nginx.ingress.kubernetes.io/{BACKEND_PROTOCOL}");
    // ingress-nginx trims and upper-cases the value before matching it.
    let wire = match written.trim().to_ascii_uppercase().as_str() {
        "HTTP" => Wire::HTTP1,
        "HTTPS" => Wire::HTTPS,
        "GRPC" => Wire::H2C,
        "GRPCS" => Wire::H2_TLS,
        value @ ("AUTO_HTTP" | "FCGI" | "AJP") => {
            let message = format!("{field}: {value} is an ingress-nginx protocol Holdfast does not speak to backends; annotation ignored, each backend's Service port appProtocol decides (HTTP/1.1 without one)");
            report.warn("Ingress", key, Reason::UnsupportedBackendProtocol, message);
            return None;
        }
        _ => {
            let message = format!("{field}: {written:?} is not one of HTTP, HTTPS, GRPC or GRPCS; annotation ignored, each backend's Service port appProtocol decides (HTTP/1.1 without one)");
            report.warn("Ingress", key, Reason::InvalidAnnotation, message);
            return None;
        }
    };
    Some(Annotated { wire, written: written.clone() })
}

/// A usable `backend-protocol` annotation.
#[derive(Debug, Clone)]
pub struct Annotated {
    pub wire: Wire,
    /// As the user wrote it, for messages.
    pub written: String,
}

/// The wire for one backend of an Ingress. `port` names the Service port for messages (`default/web port 443`).
pub fn choose(
    ingress: &ObjectKey,
    annotated: Option<&Annotated>,
    app: Option<&str>,
    port: &str,
    report: &mut Report,
) -> Wire {
    let from_port = app_protocol(app);
    match (annotated, from_port, app) {
        (Some(annotated), Some(wire), Some(app)) if wire != annotated.wire => {
            let message = format!(
                "nginx.ingress.kubernetes.io/{BACKEND_PROTOCOL}: {:?} and the appProtocol {app:?} of Service {port} disagree; the annotation wins: {} to this backend",
                annotated.written,
                annotated.wire.describe()
            );
            report.warn("Ingress", ingress, Reason::BackendProtocolConflict, message);
            annotated.wire
        }
        (Some(annotated), _, _) => annotated.wire,
        (None, Some(wire), _) => wire,
        (None, None, app) => {
            let message = format!(
                "Service {port} has appProtocol {:?}, which Holdfast does not know (it knows {KNOWN_APP_PROTOCOLS}); HTTP/1.1 is used to this backend",
                app.unwrap_or_default()
            );
            report.warn("Ingress", ingress, Reason::UnsupportedAppProtocol, message);
            Wire::HTTP1
        }
    }
}
