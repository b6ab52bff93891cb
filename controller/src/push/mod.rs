//! The pusher: sends each published snapshot to the dataplane until it is accepted, with backoff between tries,
//! and pushes again when the dataplane has restarted (its version in force is missing or lower than ours).
//!
//! Versions: each push takes one more than the larger of our last accepted version and the dataplane's, so a
//! restarted controller never offers a version the dataplane would refuse as stale.

mod client;

pub use client::{ClientError, DataplaneClient};

use crate::drain::Shutdown;
use crate::metrics::{PushMetrics, PushOutcome};
use crate::translate::Translation;
use bytes::Bytes;
use holdfast_snapshot::Snapshot;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Timing of the pusher; tests shorten it.
#[derive(Debug, Clone)]
pub struct PushTiming {
    /// How often the dataplane's version is checked for a restart.
    pub resync: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for PushTiming {
    fn default() -> Self {
        PushTiming {
            resync: Duration::from_secs(1),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot encode the snapshot: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The pusher and what it reports.
pub struct Pusher {
    pub client: DataplaneClient,
    pub timing: PushTiming,
    pub metrics: PushMetrics,
    /// Set once the dataplane has accepted a snapshot from this process (`/readyz`).
    pub ready: watch::Sender<bool>,
}

impl Pusher {
    /// A pusher with unregistered metrics and nobody watching readiness.
    pub fn new(client: DataplaneClient, timing: PushTiming) -> Self {
        Pusher { client, timing, metrics: PushMetrics::default(), ready: watch::channel(false).0 }
    }

    /// Pushes what `rx` publishes until shutdown. A publication whose snapshot equals the one the dataplane already
    /// accepted (only the report changed) is not pushed; after a dataplane restart the snapshot is pushed regardless.
    pub async fn run(self, mut rx: watch::Receiver<Option<Arc<Translation>>>, mut shutdown: Shutdown) {
        let mut accepted: Option<(u64, Snapshot)> = None;
        if rx.borrow().is_some() {
            // Published before we started: push it without waiting for the next change.
            rx.mark_changed();
        }
        loop {
            let force = tokio::select! {
                changed = rx.changed() => match changed {
                    Ok(()) => false,
                    Err(_) => return,
                },
                _ = tokio::time::sleep(self.timing.resync) => {
                    if !needs_repush(&self.client, accepted.as_ref().map(|(v, _)| *v)).await {
                        continue;
                    }
                    true
                }
                _ = shutdown.wait() => return,
            };
            let mut backoff = self.timing.initial_backoff;
            loop {
                let Some(translation) = rx.borrow_and_update().clone() else { break };
                if !force && accepted.as_ref().is_some_and(|(_, snapshot)| *snapshot == translation.snapshot) {
                    break;
                }
                let started = tokio::time::Instant::now();
                let ours = accepted.as_ref().map(|(v, _)| *v);
                let result = push_once(&self.client, &translation, ours, &self.metrics).await;
                let seconds = started.elapsed().as_secs_f64();
                match result {
                    Ok(version) => {
                        let hosts = translation.snapshot.hosts.len();
                        tracing::info!(version, hosts, "Dataplane accepted the snapshot");
                        self.metrics.observe(PushOutcome::Accepted, seconds);
                        self.metrics.accepted_version.set(i64::try_from(version).unwrap_or(i64::MAX));
                        self.ready.send_replace(true);
                        accepted = Some((version, translation.snapshot.clone()));
                        break;
                    }
                    Err(error) => {
                        self.metrics.observe(error.outcome(), seconds);
                        tracing::warn!(%error, retry_in = ?backoff, "Push to the dataplane failed");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            // A newer snapshot is worth trying at once.
                            changed = rx.changed() => if changed.is_err() { return },
                            _ = shutdown.wait() => return,
                        }
                        backoff = (backoff * 2).min(self.timing.max_backoff);
                    }
                }
            }
        }
    }
}

impl PushError {
    fn outcome(&self) -> PushOutcome {
        match self {
            PushError::Client(ClientError::Refused { .. } | ClientError::BadVersion(_)) => PushOutcome::Refused,
            PushError::Client(_) => PushOutcome::Unreachable,
            PushError::Encode(_) => PushOutcome::Refused,
        }
    }
}

/// Whether the dataplane lost our snapshot: it has none, or an older one (it restarted and got an older push).
async fn needs_repush(client: &DataplaneClient, accepted: Option<u64>) -> bool {
    let Some(ours) = accepted else { return false };
    match client.version().await {
        Ok(Some(theirs)) if theirs >= ours => false,
        Ok(theirs) => {
            tracing::info!(ours, ?theirs, "Dataplane lost our snapshot (restarted?); pushing again");
            true
        }
        Err(error) => {
            tracing::debug!(%error, "Dataplane version check failed");
            false
        }
    }
}

async fn push_once(
    client: &DataplaneClient,
    translation: &Translation,
    accepted: Option<u64>,
    metrics: &PushMetrics,
) -> Result<u64, PushError> {
    let theirs = client.version().await?;
    let version = accepted.unwrap_or(0).max(theirs.unwrap_or(0)) + 1;
    let mut snapshot = translation.snapshot.clone();
    snapshot.version = version;
    let body = serde_json::to_vec(&snapshot)?;
    metrics.snapshot_bytes.set(i64::try_from(body.len()).unwrap_or(i64::MAX));
    client.put(Bytes::from(body)).await?;
    Ok(version)
}
