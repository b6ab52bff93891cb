//! TLS settings for HTTPS and GRPCS backends, from ingress-nginx's `proxy-ssl-*` annotations on the Ingress.
//!
//! The defaults are ingress-nginx's: the upstream certificate is not verified and no SNI is sent. Where
//! ingress-nginx is unsafe or silent, Holdfast is stricter and says so: `proxy-ssl-verify: "on"` verifies even
//! without a CA of the user's (against the system's trust store) instead of being dropped; a missing or broken CA
//! never turns verification off; a Secret in another namespace is refused. Everything is checked with the
//! snapshot's own [`UpstreamTls::check`], so one Ingress's bad PEM costs that Ingress a setting (and a warning),
//! never the whole push.

use super::report::{Reason, Report};
use crate::index::{Index, ObjectKey};
use holdfast_snapshot::UpstreamTls;
use std::collections::BTreeMap;

pub const VERIFY: &str = "proxy-ssl-verify";
pub const SECRET: &str = "proxy-ssl-secret";
pub const NAME: &str = "proxy-ssl-name";
pub const SERVER_NAME: &str = "proxy-ssl-server-name";
const READ: [&str; 4] = [VERIFY, SECRET, NAME, SERVER_NAME];

/// A valid name to check PEM on its own with [`UpstreamTls::check`], which checks the name first.
const PROBE_NAME: &str = "holdfast.invalid";

/// The `proxy-ssl-*` settings of one Ingress, read once. What was wrong with them is reported only when a backend
/// of the Ingress speaks TLS: on plain backends the annotations are moot, and one warning says so instead. No
/// `Debug`: it holds a client key.
#[derive(Default)]
pub struct IngressTls {
    verify: bool,
    sni: bool,
    /// `proxy-ssl-name`, when usable; otherwise the Service's cluster name.
    server_name: Option<String>,
    ca_pem: Option<String>,
    client: Option<(String, String)>,
    /// The Secret the PEM came from, when any did.
    secret: Option<ObjectKey>,
    /// The annotations present, for the warning on plain backends.
    present: Vec<&'static str>,
    problems: Vec<(Reason, String)>,
}

impl IngressTls {
    pub fn new(index: &Index, ingress: &ObjectKey, nginx: &BTreeMap<String, String>) -> Self {
        let mut tls = IngressTls {
            present: READ.into_iter().filter(|name| nginx.contains_key(*name)).collect(),
            ..Default::default()
        };
        // An unreadable verify value fails closed: whoever wrote it wanted to say something about verification,
        // and a typo must not be what leaves a connection unverified. ingress-nginx would fall back to off.
        tls.verify = tls.on_off(nginx, VERIFY, true);
        tls.sni = tls.on_off(nginx, SERVER_NAME, false);
        if let Some(name) = nginx.get(NAME).map(|n| n.trim()) {
            match UpstreamTls::new(name).check() {
                Ok(()) => tls.server_name = Some(name.to_string()),
                Err(reason) => tls.problem(
                    Reason::InvalidAnnotation,
                    format!("{}: {reason}; the Service's cluster name is used instead", field(NAME)),
                ),
            }
        }
        if let Some(value) = nginx.get(SECRET) {
            tls.read_secret(index, ingress, value);
        }
        tls
    }

    /// The settings for a TLS backend of Service `service` in `namespace`, reporting on `ingress` what was wrong
    /// with the annotations. `Err`: no usable settings could be made (the route must be skipped, not downgraded to
    /// plain TCP); the message says why.
    pub fn for_backend(
        &self,
        ingress: &ObjectKey,
        namespace: &str,
        service: &str,
        report: &mut Report,
    ) -> Result<UpstreamTls, String> {
        for (reason, message) in &self.problems {
            report.warn("Ingress", ingress, *reason, message.clone());
        }
        let tls = UpstreamTls {
            verify: self.verify,
            ca_pem: self.ca_pem.clone(),
            server_name: self.server_name.clone().unwrap_or_else(|| default_server_name(namespace, service)),
            sni: self.sni,
            client_cert_pem: self.client.as_ref().map(|(cert, _)| cert.clone()),
            client_key_pem: self.client.as_ref().map(|(_, key)| key.clone()),
            source: self.secret.as_ref().map(|key| format!("secret {key}")),
        };
        tls.check()
            .map(|()| tls)
            .map_err(|reason| format!("the TLS settings for Service {namespace}/{service} are not usable: {reason}"))
    }

    /// Reports, for a backend spoken to in clear, that the `proxy-ssl-*` annotations do nothing there.
    pub fn warn_ignored(&self, ingress: &ObjectKey, port: &str, report: &mut Report) {
        if self.present.is_empty() {
            return;
        }
        let names = self.present.iter().map(|n| field(n)).collect::<Vec<_>>().join(", ");
        let message = format!("{names} ignored for Service {port}: its connections are not TLS (set {} to HTTPS or GRPCS, or the port's appProtocol to https)", field(super::protocol::BACKEND_PROTOCOL));
        report.warn("Ingress", ingress, Reason::UpstreamTlsIgnored, message);
    }

    fn on_off(&mut self, nginx: &BTreeMap<String, String>, name: &'static str, on_error: bool) -> bool {
        match nginx.get(name).map(|v| v.trim()) {
            None => false,
            Some("on") => true,
            Some("off") => false,
            Some(other) => {
                let used = if on_error { "on" } else { "off" };
                let message = format!("{}: {other:?} must be \"on\" or \"off\"; {used} is used", field(name));
                self.problem(Reason::InvalidAnnotation, message);
                on_error
            }
        }
    }

    /// Takes the CA (when verifying) and the client certificate from the Secret `value` names.
    fn read_secret(&mut self, index: &Index, ingress: &ObjectKey, value: &str) {
        let Some(key) = self.secret_key(ingress, value) else { return };
        let found = match (index.secrets.get(&key), index.ca_secrets.get(&key)) {
            (Some(tls), _) => Some((tls.ca_pem.as_ref(), tls.cert_pem.as_ref(), tls.key_pem.as_ref())),
            (None, Some(ca)) => Some((Some(&ca.ca_pem), ca.cert_pem.as_ref(), ca.key_pem.as_ref())),
            (None, None) => None,
        };
        let Some((ca, cert, private_key)) = found else {
            let message = format!("{}: Secret {key} does not exist, or is neither of type kubernetes.io/tls nor an Opaque Secret with a ca.crt; {}", field(SECRET), self.without_ca());
            return self.problem(Reason::UpstreamTlsSecretNotFound, message);
        };
        let pem = |p: Option<&crate::index::Pem>| p.map(|p| p.0.clone());
        self.take_ca(&key, pem(ca));
        self.take_client(&key, pem(cert), pem(private_key));
        if self.ca_pem.is_some() || self.client.is_some() {
            self.secret = Some(key);
        }
    }

    /// The Secret's key: `namespace/name` as ingress-nginx writes it, or a bare `name` in the Ingress's namespace.
    /// Another namespace is refused: an annotation must not let a user read a Secret their namespace cannot.
    fn secret_key(&mut self, ingress: &ObjectKey, value: &str) -> Option<ObjectKey> {
        let value = value.trim();
        let (namespace, name) = value.split_once('/').unwrap_or((ingress.namespace.as_str(), value));
        if namespace.is_empty() || name.is_empty() || name.contains('/') {
            let message = format!("{}: {value:?} is not NAMESPACE/NAME or NAME; {}", field(SECRET), self.without_ca());
            self.problem(Reason::InvalidAnnotation, message);
            return None;
        }
        if namespace != ingress.namespace {
            let message = format!(
                "{}: Secret {value} is in another namespace than the Ingress, which is not allowed; {}",
                field(SECRET),
                self.without_ca()
            );
            self.problem(Reason::UpstreamTlsSecretRefused, message);
            return None;
        }
        Some(ObjectKey::new(namespace, name))
    }

    fn take_ca(&mut self, secret: &ObjectKey, ca: Option<String>) {
        if !self.verify {
            // Nothing is verified, so a CA would change nothing (ingress-nginx ignores it too).
            return;
        }
        let Some(ca) = ca else {
            let message = format!("{}: Secret {secret} has no ca.crt; {}", field(SECRET), self.without_ca());
            return self.problem(Reason::UpstreamTlsSecretNotFound, message);
        };
        match (UpstreamTls { ca_pem: Some(ca.clone()), ..UpstreamTls::new(PROBE_NAME) }).check() {
            Ok(()) => self.ca_pem = Some(ca),
            Err(reason) => {
                let message = format!("ca.crt of Secret {secret} is not usable ({reason}); {}", self.without_ca());
                self.problem(Reason::UpstreamTlsInvalid, message);
            }
        }
    }

    fn take_client(&mut self, secret: &ObjectKey, cert: Option<String>, key: Option<String>) {
        let consequence = "connections to the backend go without a client certificate";
        let (cert, key) = match (cert, key) {
            (None, None) => return,
            (Some(cert), Some(key)) => (cert, key),
            (Some(_), None) | (None, Some(_)) => {
                let message = format!("Secret {secret} has only one of tls.crt and tls.key; {consequence}");
                return self.problem(Reason::UpstreamTlsInvalid, message);
            }
        };
        let probe = UpstreamTls {
            client_cert_pem: Some(cert.clone()),
            client_key_pem: Some(key.clone()),
            ..UpstreamTls::new(PROBE_NAME)
        };
        match probe.check() {
            Ok(()) => self.client = Some((cert, key)),
            Err(reason) => {
                let message = format!(
                    "tls.crt/tls.key of Secret {secret} are not a usable client certificate ({reason}); {consequence}"
                );
                self.problem(Reason::UpstreamTlsInvalid, message);
            }
        }
    }

    /// What happens to verification when the CA the user meant cannot be had.
    fn without_ca(&self) -> &'static str {
        if self.verify {
            "the upstream certificate is still verified, against the system's trust store"
        } else {
            "no CA or client certificate is used (the upstream certificate is not verified: proxy-ssl-verify is off)"
        }
    }

    fn problem(&mut self, reason: Reason, message: String) {
        self.problems.push((reason, message));
    }
}

/// The name an upstream certificate is checked against when `proxy-ssl-name` is absent: the Service's cluster name,
/// which certificates issued for in-cluster services carry (`service.namespace.svc`).
pub fn default_server_name(namespace: &str, service: &str) -> String {
    format!("{service}.{namespace}.svc")
}

fn field(name: &str) -> String {
    format!("nginx.ingress.kubernetes.io/{name}")
}
