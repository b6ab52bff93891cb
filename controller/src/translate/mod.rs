//! Translation: a pure function from the [`Index`] to the dataplane [`Snapshot`], plus a [`Report`] of everything
//! that was wrong with the input. Nothing here fails: an invalid object (or the invalid part of one) is left out of
//! the snapshot and reported, and every other route is still translated, so one bad Ingress never takes the routes
//! of unrelated ones with it.

mod backend;
mod class;
mod grpc;
mod nginx;
mod patch;
mod peers;
mod policy;
mod protocol;
mod report;
mod routes;
mod tls;
mod upstream;
mod upstream_tls;

pub use peers::PeersConfig;
pub use policy::DEFAULT_POLICY;
pub use report::{ConditionState, PolicyStatus, Reason, Report, Warning};

use crate::index::{Changes, Index};
use holdfast_snapshot::{Policy, Snapshot};
use std::sync::Arc;

/// `spec.controller` of the IngressClasses this controller serves.
pub const CONTROLLER_NAME: &str = "holdfast.io/ingress-controller";

/// What translation needs besides the index.
#[derive(Debug, Clone)]
pub struct Config {
    /// IngressClasses whose `spec.controller` equals this are ours.
    pub controller_name: String,
    /// Applied to routes no UploadPolicy or annotation governs, and under those that set only some fields.
    pub default_policy: Policy,
    /// Where the snapshot's `peers` come from; `None` (a Deployment, or one replica): no peers.
    pub peers: Option<PeersConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config { controller_name: CONTROLLER_NAME.to_string(), default_policy: Policy::default(), peers: None }
    }
}

/// A translated snapshot (version 0: the pusher numbers it) and what was wrong with the input. The report is shared
/// for the same reason the snapshot's large parts are: a patched translation has the report of the one it patched.
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    pub snapshot: Snapshot,
    pub report: Arc<Report>,
}

impl Translation {
    /// Equality that does not walk a report both share (a patch and what it patched).
    pub fn same_as(&self, other: &Translation) -> bool {
        self.snapshot == other.snapshot && (Arc::ptr_eq(&self.report, &other.report) || self.report == other.report)
    }
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
    let mut certificates = tls::Certificates::default();
    for (key, ingress) in class::owned_ingresses(index, &config.controller_name) {
        report.ingresses.insert(key.clone());
        certificates.add_ingress(index, key, ingress, &mut report);
        routes.add_ingress(key, ingress, &mut report);
    }
    let mut snapshot = routes.into_snapshot();
    snapshot.tls = certificates.into_certificates().into();
    if let Some(peers) = &config.peers {
        snapshot.peers = peers::peers(index, peers);
    }
    for warning in &mut report.warnings {
        warning.uid = index.uid(warning.kind, &warning.key).map(str::to_string);
    }
    Translation { snapshot, report: Arc::new(report) }
}

/// A translation and how it was made.
pub struct Update {
    pub translation: Translation,
    /// `Some(n)`: only EndpointSlices had changed, and the previous translation was patched by resolving `n`
    /// backends again (each backend it changed was checked as the snapshot's validation checks it, and nothing
    /// else changed); `None`: translated in full, and not yet validated.
    pub patched_backends: Option<usize>,
}

/// The translation of `index` after `changes`, given `previous`, the translation of the index just before them:
/// when only EndpointSlices changed, `previous` with the backends of their Services resolved again (work in
/// proportion to the change); otherwise, or with no `previous`, the full [`translate`]. Either way the result
/// equals `translate(index, config)`.
pub fn update(previous: Option<&Translation>, index: &Index, config: &Config, changes: &Changes) -> Update {
    if let (Some(previous), None) = (previous, changes.rebuild) {
        if let Some((translation, n)) = patch::endpoints_of(previous, index, config, &changes.services) {
            return Update { translation, patched_backends: Some(n) };
        }
    }
    Update { translation: translate(index, config), patched_backends: None }
}

/// The snapshot's own rule, so a host the dataplane would refuse never reaches (and sinks) a push.
fn host_is_valid(host: &str) -> bool {
    holdfast_snapshot::valid_host(host)
}

#[cfg(test)]
mod tests;
