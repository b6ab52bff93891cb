//! Leader election on a `coordination.k8s.io` Lease, so that only one replica writes status and events. Routing
//! does not depend on it: every replica pushes to its own dataplane.
//!
//! The leader renews every [`LeaseTiming::renew`]; a Lease not renewed for `leaseDurationSeconds` may be taken
//! over. Updates use `replace` with the read `resourceVersion`, so two replicas racing for an expired Lease cannot
//! both win: the API refuses the second write with a conflict.

use crate::drain::Shutdown;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use prometheus_client::metrics::gauge::Gauge;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct LeaseTiming {
    pub duration: Duration,
    pub renew: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        LeaseTiming { duration: Duration::from_secs(15), renew: Duration::from_secs(5) }
    }
}

/// What to do with the Lease as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it, or the holder stopped renewing: take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds a live Lease.
    Follow(String),
}

/// Decides from the Lease spec alone, so the rules are tested without an API.
pub fn decide(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else { return Decision::Acquire };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == identity {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::Acquire;
    }
    let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()).map(|t| t.0);
    match renewed {
        Some(at) if at + SignedDuration::from_secs(seconds) > now => Decision::Follow(holder.to_string()),
        _ => Decision::Acquire,
    }
}

/// Holds or follows the Lease until shutdown, publishing whether this replica leads (to `tx`, and as 1 or 0 to the
/// `leader` gauge). Releases it on shutdown.
pub async fn run(
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: LeaseTiming,
    tx: watch::Sender<bool>,
    leader: Gauge,
    mut shutdown: Shutdown,
) {
    loop {
        let leading = match try_lead(&api, &name, &identity, &timing).await {
            Ok(leading) => leading,
            Err(error) => {
                tracing::warn!(%error, lease = %name, "Leader election failed; not writing status until it works");
                false
            }
        };
        leader.set(i64::from(leading));
        if tx.send_replace(leading) != leading {
            tracing::info!(leading, identity = %identity, "Leadership changed");
        }
        tokio::select! {
            _ = tokio::time::sleep(timing.renew) => {}
            _ = shutdown.wait() => break,
        }
    }
    if *tx.borrow() {
        release(&api, &name, &identity).await;
    }
    leader.set(0);
}

async fn try_lead(api: &Api<Lease>, name: &str, identity: &str, timing: &LeaseTiming) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let current = api.get_opt(name).await?;
    let decision = decide(current.as_ref().and_then(|l| l.spec.as_ref()), identity, now);
    if let Decision::Follow(_) = decision {
        return Ok(false);
    }
    let mut lease = current.clone().unwrap_or_else(|| Lease {
        metadata: ObjectMeta { name: Some(name.to_string()), ..ObjectMeta::default() },
        spec: None,
    });
    let mut spec = lease.spec.take().unwrap_or_default();
    if decision == Decision::Acquire {
        spec.holder_identity = Some(identity.to_string());
        spec.acquire_time = Some(MicroTime(now));
        // Taking over an existing Lease is a transition; creating the first one is not.
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + i32::from(current.is_some()));
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(i32::try_from(timing.duration.as_secs()).unwrap_or(i32::MAX));
    lease.spec = Some(spec);
    match current {
        None => api.create(&PostParams::default(), &lease).await?,
        Some(_) => api.replace(name, &PostParams::default(), &lease).await?,
    };
    Ok(true)
}

/// Lets a successor take over at once instead of waiting for the Lease to expire.
async fn release(api: &Api<Lease>, name: &str, identity: &str) {
    let Ok(Some(mut lease)) = api.get_opt(name).await else { return };
    let Some(spec) = lease.spec.as_mut() else { return };
    if spec.holder_identity.as_deref() != Some(identity) {
        return;
    }
    spec.holder_identity = None;
    if let Err(error) = api.replace(name, &PostParams::default(), &lease).await {
        tracing::debug!(%error, "Could not release the Lease; it will expire");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: &str, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_string()).filter(|h| !h.is_empty()),
            renew_time: Some(MicroTime(renewed.parse().unwrap())),
            lease_duration_seconds: Some(seconds),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn decides_by_holder_and_expiry() {
        let now: Timestamp = "2024-01-01T00:00:20Z".parse().unwrap();
        let cases = [
            ("no lease", None, Decision::Acquire),
            ("ours", Some(spec("me", "2024-01-01T00:00:00Z", 15)), Decision::Renew),
            ("released", Some(spec("", "2024-01-01T00:00:19Z", 15)), Decision::Acquire),
            ("other, fresh", Some(spec("other", "2024-01-01T00:00:10Z", 15)), Decision::Follow("other".into())),
            ("other, expired", Some(spec("other", "2024-01-01T00:00:04Z", 15)), Decision::Acquire),
        ];
        for (case, lease, expected) in cases {
            assert_eq!(decide(lease.as_ref(), "me", now), expected, "{case}");
        }
    }
}
