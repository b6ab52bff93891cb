//! Certificates for the dataplane's TLS listener, from the `tls` sections of our Ingresses (oldest first). One entry
//! per Secret, with the union of the hosts that use it. A host claimed with two different Secrets keeps the oldest
//! Ingress's; a missing or unusable Secret is reported and costs only its own hosts, never any route.

use super::report::{Reason, Report};
use crate::index::{Index, IngressModel, ObjectKey, TlsSecretModel};
use holdfast_snapshot::TlsCertificate;
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Default)]
pub struct Certificates {
    /// Host → the Secret that serves it.
    claimed: HashMap<String, ObjectKey>,
    /// Secret → its hosts, and the PEM pair.
    by_secret: BTreeMap<ObjectKey, (BTreeSet<String>, String, String)>,
}

impl Certificates {
    /// Adds the certificates of one Ingress; Ingresses must come oldest first.
    pub fn add_ingress(&mut self, index: &Index, key: &ObjectKey, ingress: &IngressModel, report: &mut Report) {
        for tls in &ingress.tls {
            let Some(secret_name) = &tls.secret_name else {
                let message = "a tls entry without secretName is ignored: Holdfast has no default certificate";
                report.warn("Ingress", key, Reason::TlsSecretNotFound, message);
                continue;
            };
            let secret_key = ObjectKey::new(&key.namespace, secret_name);
            let Some(secret) = index.secrets.get(&secret_key) else {
                let message = format!("TLS Secret {secret_key} does not exist or is not of type kubernetes.io/tls");
                report.warn("Ingress", key, Reason::TlsSecretNotFound, message);
                continue;
            };
            let Some((cert, private_key)) = usable(secret) else {
                let message =
                    format!("TLS Secret {secret_key} lacks a PEM certificate in tls.crt or a PEM key in tls.key");
                report.warn("Ingress", key, Reason::TlsSecretInvalid, message);
                continue;
            };
            for host in &tls.hosts {
                self.add_host(key, &secret_key, host, report);
            }
            if let Some(entry) = self.by_secret.get_mut(&secret_key) {
                (entry.1, entry.2) = (cert.to_string(), private_key.to_string());
            }
        }
    }

    fn add_host(&mut self, ingress: &ObjectKey, secret: &ObjectKey, host: &str, report: &mut Report) {
        let host = host.to_ascii_lowercase();
        if host.is_empty() || !super::host_is_valid(&host) {
            let message = format!("tls host {host:?} is not a DNS name or a *. wildcard of one; ignored");
            report.warn("Ingress", ingress, Reason::InvalidHost, message);
            return;
        }
        match self.claimed.get(&host) {
            Some(owner) if owner != secret => {
                let message = format!(
                    "tls host {host} already uses Secret {owner} from an older Ingress; {secret} is not used for it"
                );
                report.warn("Ingress", ingress, Reason::TlsHostConflict, message);
            }
            Some(_) => {}
            None => {
                self.claimed.insert(host.clone(), secret.clone());
                self.by_secret.entry(secret.clone()).or_default().0.insert(host);
            }
        }
    }

    pub fn into_certificates(self) -> Vec<TlsCertificate> {
        self.by_secret
            .into_iter()
            .map(|(secret, (hosts, cert_pem, key_pem))| TlsCertificate {
                hosts: hosts.into_iter().collect(),
                cert_pem,
                key_pem,
                source: Some(format!("secret {secret}")),
            })
            .collect()
    }
}

/// The PEM pair, when both look like PEM. The dataplane parses them fully; this only keeps an obviously broken
/// Secret (a DER blob, a swapped key) out of the snapshot so it cannot get the whole push refused.
fn usable(secret: &TlsSecretModel) -> Option<(&str, &str)> {
    let cert = secret.cert_pem.as_ref()?.0.as_str();
    let key = secret.key_pem.as_ref()?.0.as_str();
    // The dataplane refuses a whole snapshot whose PEM does not parse, so check with its own rule.
    let probe =
        TlsCertificate { hosts: Vec::new(), cert_pem: cert.to_string(), key_pem: key.to_string(), source: None };
    probe.check().is_ok().then_some((cert, key))
}
