//! How the dataplane talks to one backend of one Ingress: the wire ([`super::protocol`]) and, for TLS, its
//! settings ([`super::upstream_tls`]); and the snapshot backend's name, which must tell those apart.
//!
//! One Service port can be routed by several Ingresses with different annotations, so a snapshot backend is one
//! (Service port, protocol, TLS settings). The plain HTTP/1.1 backend keeps the name `namespace/service:port`; the
//! others add what differs, readably and deterministically (`default/api:443+h2+tls(verify,sni)`), so Ingresses
//! with the same settings share one backend and its connection pool.

use super::backend::Resolution;
use super::protocol::{self, Annotated, Wire};
use super::report::Report;
use super::upstream_tls::{default_server_name, IngressTls};
use crate::index::{Index, IngressModel, ObjectKey};
use holdfast_snapshot::{Backend, UpstreamProtocol, UpstreamTls};

/// The protocol annotations of one Ingress, read once.
pub struct IngressUpstream {
    annotated: Option<Annotated>,
    tls: IngressTls,
}

impl IngressUpstream {
    pub fn new(index: &Index, key: &ObjectKey, ingress: &IngressModel, report: &mut Report) -> Self {
        IngressUpstream {
            annotated: protocol::annotation(key, &ingress.nginx, report),
            tls: IngressTls::new(index, key, &ingress.nginx),
        }
    }

    /// Sets the protocol and TLS of a resolved backend and names it. `Err`: the route cannot be served as asked
    /// (TLS settings that no fallback makes usable) and is skipped; the message says why.
    pub fn apply(
        &self,
        ingress: &ObjectKey,
        namespace: &str,
        service: &str,
        resolution: &mut Resolution,
        report: &mut Report,
    ) -> Result<(), String> {
        let port = format!("{namespace}/{service} port {}", resolution.port);
        let wire =
            protocol::choose(ingress, self.annotated.as_ref(), resolution.app_protocol.as_deref(), &port, report);
        let tls = if wire.tls {
            Some(self.tls.for_backend(ingress, namespace, service, report)?)
        } else {
            self.tls.warn_ignored(ingress, &port, report);
            None
        };
        resolution.name = name(&resolution.name, wire, tls.as_ref(), &default_server_name(namespace, service));
        resolution.backend = Backend { protocol: wire.protocol, tls, ..std::mem::take(&mut resolution.backend) };
        Ok(())
    }
}

/// The snapshot name of a backend: `base` (`namespace/service:port`) for plain HTTP/1.1, otherwise with `+h2`,
/// `+tls` and, in parentheses, the TLS settings that differ from the defaults. The PEM itself is named by the
/// Secret it came from: within one snapshot a Secret has one content.
pub fn name(base: &str, wire: Wire, tls: Option<&UpstreamTls>, default_server_name: &str) -> String {
    let mut name = base.to_string();
    if wire.protocol == UpstreamProtocol::Http2 {
        name.push_str("+h2");
    }
    let Some(tls) = tls else { return name };
    name.push_str("+tls");
    let mut settings = Vec::new();
    if tls.verify {
        settings.push("verify".to_string());
    }
    if tls.sni {
        settings.push("sni".to_string());
    }
    if tls.server_name != default_server_name {
        settings.push(format!("name={}", tls.server_name));
    }
    if let Some(source) = &tls.source {
        settings.push(source.replacen("secret ", "secret=", 1));
    }
    if !settings.is_empty() {
        name.push_str(&format!("({})", settings.join(",")));
    }
    name
}
