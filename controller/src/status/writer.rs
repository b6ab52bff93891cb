//! The status writer: after each published translation, while this replica leads, writes what changed since its
//! last successful write. It remembers what it wrote rather than reading objects back, so an unchanged translation
//! costs no API calls; a failed write is not remembered and is retried on the next change or resync.

use super::conditions::{differs, policy_status};
use super::ClusterWriter;
use crate::drain::Shutdown;
use crate::index::ObjectKey;
use crate::translate::{Translation, Warning};
use holdfast_crds::UploadPolicyStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often everything is re-checked even without a change (to retry failed writes, follow `--publish-service`).
pub const RESYNC: Duration = Duration::from_secs(30);

/// Where Ingress status addresses come from.
#[derive(Debug, Clone)]
pub enum Addresses {
    /// Neither `--publish-service` nor `--publish-status-address`: Ingress status is left alone.
    None,
    Static(Vec<String>),
    Service(ObjectKey),
}

/// What this replica last wrote, per object.
#[derive(Debug, Default)]
pub struct StatusWriter {
    policies: BTreeMap<ObjectKey, UploadPolicyStatus>,
    ingresses: BTreeMap<ObjectKey, Vec<String>>,
    evented: BTreeSet<Warning>,
}

impl StatusWriter {
    /// Writes what differs from the last successful writes. `addresses`: `None` leaves Ingress status alone.
    pub async fn sync<W: ClusterWriter>(&mut self, api: &W, t: &Translation, addresses: Option<&[String]>, now: Time) {
        for (key, computed) in &t.report.policies {
            // What this replica wrote, else what the API shows (written by an earlier leader or process).
            let previous = self.policies.get(key).or(computed.observed.as_ref());
            let next = policy_status(previous, computed, &now);
            if previous.is_some_and(|p| !differs(p, &next)) {
                continue;
            }
            match api.patch_policy_status(key, &next).await {
                Ok(()) => _ = self.policies.insert(key.clone(), next),
                Err(error) => tracing::warn!(%error, policy = %key, "UploadPolicy status not written"),
            }
        }
        self.policies.retain(|key, _| t.report.policies.contains_key(key));

        if let Some(addresses) = addresses {
            for key in &t.report.ingresses {
                if self.ingresses.get(key).is_some_and(|written| written == addresses) {
                    continue;
                }
                match api.patch_ingress_addresses(key, addresses).await {
                    Ok(()) => _ = self.ingresses.insert(key.clone(), addresses.to_vec()),
                    Err(error) => tracing::warn!(%error, ingress = %key, "Ingress status not written"),
                }
            }
        }
        // An Ingress this replica wrote that is no longer ours (its class changed) loses the addresses, unless its
        // new owner wrote its own; a deleted one simply goes.
        let left: Vec<ObjectKey> =
            self.ingresses.keys().filter(|key| !t.report.ingresses.contains(*key)).cloned().collect();
        for key in left {
            match api.clear_ingress_addresses(&key, &self.ingresses[&key]).await {
                Ok(()) => _ = self.ingresses.remove(&key),
                Err(error) => tracing::warn!(%error, ingress = %key, "Ingress status not cleared"),
            }
        }

        let current: BTreeSet<&Warning> = t.report.warnings.iter().collect();
        let new: Vec<&Warning> = current.iter().copied().filter(|w| !self.evented.contains(*w)).collect();
        for warning in new {
            match api.warning_event(warning).await {
                Ok(()) => _ = self.evented.insert(warning.clone()),
                Err(error) => tracing::warn!(%error, object = %warning.key, "Warning event not recorded"),
            }
        }
        // A warning that clears and comes back is a new occurrence worth a new event.
        self.evented.retain(|w| current.contains(w));
    }

    /// Forgets everything written: after losing the lease, the next term must write afresh.
    pub fn forget(&mut self) {
        *self = StatusWriter::default();
    }
}

/// Writes status after each change while `leader` is true, until shutdown.
pub async fn run<W: ClusterWriter>(
    api: W,
    mut published: watch::Receiver<Option<Arc<Translation>>>,
    mut leader: watch::Receiver<bool>,
    addresses: Addresses,
    mut shutdown: Shutdown,
) {
    let mut writer = StatusWriter::default();
    let mut resync = tokio::time::interval(RESYNC);
    loop {
        tokio::select! {
            changed = published.changed() => if changed.is_err() { return },
            changed = leader.changed() => if changed.is_err() { return },
            _ = resync.tick() => {}
            _ = shutdown.wait() => return,
        }
        if !*leader.borrow_and_update() {
            writer.forget();
            continue;
        }
        let Some(translation) = published.borrow_and_update().clone() else { continue };
        let addresses = match &addresses {
            Addresses::None => None,
            Addresses::Static(list) => Some(list.clone()),
            Addresses::Service(key) => match api.service_addresses(key).await {
                Ok(list) => Some(list),
                Err(error) => {
                    tracing::warn!(%error, "Cannot read the --publish-service addresses");
                    None
                }
            },
        };
        writer.sync(&api, &translation, addresses.as_deref(), Time(Timestamp::now())).await;
    }
}
