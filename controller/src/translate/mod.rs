//! Translation: a pure function from the [`Index`] to the dataplane [`Snapshot`], plus a [`Report`] of everything
//! that was wrong with the input. Nothing here fails: an invalid object (or the invalid part of one) is left out of
//! the snapshot and reported, and every other route is still translated, so one bad Ingress never takes the routes
//! of unrelated ones with it.

mod backend;
mod class;
mod nginx;
mod policy;
mod report;
mod routes;

pub use policy::DEFAULT_POLICY;
pub use report::{ConditionState, PolicyStatus, Reason, Report, Warning};

use crate::index::Index;
use holdfast_snapshot::{Policy, Snapshot};

/// `spec.controller` of the IngressClasses this controller serves.
pub const CONTROLLER_NAME: &str = "holdfast.io/ingress-controller";

/// What translation needs besides the index.
#[derive(Debug, Clone)]
pub struct Config {
    /// IngressClasses whose `spec.controller` equals this are ours.
    pub controller_name: String,
    /// Applied to routes no UploadPolicy or annotation governs, and under those that set only some fields.
    pub default_policy: Policy,
}

impl Default for Config {
    fn default() -> Self {
        Config { controller_name: CONTROLLER_NAME.to_string(), default_policy: Policy::default() }
    }
}

/// A translated snapshot (version 0: the pusher numbers it) and what was wrong with the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    pub snapshot: Snapshot,
    pub report: Report,
}

/// Translates the whole index. Deterministic: the same index always gives the same snapshot and report.
pub fn translate(index: &Index, config: &Config) -> Translation {
    let mut report = Report::default();
    let policies = policy::statuses(index);
    for (key, status) in &policies {
        if !status.accepted.status {
            report.warn("UploadPolicy", key, Reason::PolicyInvalid, status.accepted.message.clone());
        }
        if !status.resolved_refs.status {
            report.warn("UploadPolicy", key, Reason::TargetNotFound, status.resolved_refs.message.clone());
        }
    }
    report.policies = policies;
    let mut routes = routes::Routes::new(index, config, &mut report);
    for (key, ingress) in class::owned_ingresses(index, &config.controller_name) {
        report.ingresses.insert(key.clone());
        check_tls(index, key, ingress, &mut report);
        routes.add_ingress(key, ingress, &mut report);
    }
    Translation { snapshot: routes.into_snapshot(), report }
}

/// TLS Secrets an Ingress names must exist and hold a certificate and key. Routes are kept either way: the
/// snapshot does not carry certificates yet, and a missing Secret must not take plain-HTTP routes down.
fn check_tls(index: &Index, key: &crate::index::ObjectKey, ingress: &crate::index::IngressModel, report: &mut Report) {
    for tls in &ingress.tls {
        let Some(secret_name) = &tls.secret_name else { continue };
        let secret_key = crate::index::ObjectKey::new(&key.namespace, secret_name);
        match index.secrets.get(&secret_key) {
            None => {
                let message = format!("TLS Secret {secret_key} does not exist or is not of type kubernetes.io/tls");
                report.warn("Ingress", key, Reason::TlsSecretNotFound, message);
            }
            Some(secret) if !(secret.has_cert && secret.has_key) => {
                let message = format!("TLS Secret {secret_key} lacks tls.crt or tls.key");
                report.warn("Ingress", key, Reason::TlsSecretIncomplete, message);
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
