//! The pusher: sends each published snapshot to the dataplane until it is accepted, with backoff between tries,
//! and pushes again when the dataplane has restarted (its version in force is missing or lower than ours).
//!
//! Pushes cost what changed: when the new snapshot differs from the one the dataplane holds in backends only (an
//! EndpointSlice edit, the common case by far), the pusher sends a delta of those backends based on the version the
//! dataplane accepted from us (`PATCH /config`, [`SnapshotDelta`]); anything else goes as the full snapshot
//! (`PUT /config`). A refused delta — the dataplane restarted, or someone else pushed, so its version is not our
//! base — is followed at once by the full snapshot, which is also how a restart found by the periodic version check
//! is repaired. Like Envoy's incremental xDS, the full state stays the way to resynchronise; unlike it, deltas are
//! ordered by the one whole-snapshot version rather than by a version per resource.
//!
//! Versions: each push takes one more than our last accepted version; when we do not know what the dataplane holds
//! (at start, after a failed push or a restart) we ask it first and take one more than the larger of the two, so a
//! restarted controller never offers a version the dataplane would refuse as stale. A push that follows an accepted
//! one needs no such round trip.

mod client;

pub use client::{ClientError, DataplaneClient};

use crate::drain::Shutdown;
use crate::metrics::{PushKind, PushMetrics, PushOutcome};
use crate::translate::Translation;
use bytes::Bytes;
use holdfast_snapshot::SnapshotDelta;
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

/// What we know of the dataplane's config.
#[derive(Default)]
struct Book {
    /// The last version the dataplane accepted from us.
    version: Option<u64>,
    /// What it holds at `version`, while we are sure of it: the base of the next delta, and what a publication is
    /// compared with to skip an unchanged one. `None` at start, after a failed push and after a restart.
    holds: Option<Arc<Translation>>,
}

impl Pusher {
    /// A pusher with unregistered metrics and nobody watching readiness.
    pub fn new(client: DataplaneClient, timing: PushTiming) -> Self {
        Pusher { client, timing, metrics: PushMetrics::default(), ready: watch::channel(false).0 }
    }

    /// Pushes what `rx` publishes until shutdown. A publication whose snapshot equals the one the dataplane already
    /// holds (only the report changed) is not pushed; after a dataplane restart the snapshot is pushed regardless.
    pub async fn run(self, mut rx: watch::Receiver<Option<Arc<Translation>>>, mut shutdown: Shutdown) {
        let mut book = Book::default();
        if rx.borrow().is_some() {
            // Published before we started: push it without waiting for the next change.
            rx.mark_changed();
        }
        loop {
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(self.timing.resync) => {
                    if !needs_repush(&self.client, book.version).await {
                        continue;
                    }
                    // It lost what we pushed: only the full snapshot will do.
                    book.holds = None;
                }
                _ = shutdown.wait() => return,
            }
            let mut backoff = self.timing.initial_backoff;
            loop {
                let Some(translation) = rx.borrow_and_update().clone() else { break };
                let started = tokio::time::Instant::now();
                let result = self.push_once(&mut book, &translation).await;
                let seconds = started.elapsed().as_secs_f64();
                match result {
                    Ok(None) => break,
                    Ok(Some(version)) => {
                        let hosts = translation.snapshot.hosts.len();
                        tracing::info!(version, hosts, "Dataplane accepted the snapshot");
                        self.metrics.observe(PushOutcome::Accepted, seconds);
                        self.metrics.accepted_version.set(i64::try_from(version).unwrap_or(i64::MAX));
                        self.ready.send_replace(true);
                        book = Book { version: Some(version), holds: Some(translation) };
                        break;
                    }
                    Err(error) => {
                        book.holds = None;
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

    /// Brings the dataplane to `translation`: nothing when it holds it already (`None`), else a delta when one can
    /// say the change, the full snapshot otherwise or when the delta is refused. The version now in force.
    async fn push_once(&self, book: &mut Book, translation: &Translation) -> Result<Option<u64>, PushError> {
        let based = book.version.zip(book.holds.as_ref());
        if let Some((base, holds)) = based {
            match SnapshotDelta::between(&holds.snapshot, &translation.snapshot) {
                Some(delta) if delta.is_empty() => return Ok(None),
                Some(delta) => match self.push_delta(delta, base).await {
                    Ok(version) => return Ok(Some(version)),
                    Err(PushError::Client(ClientError::Refused { reason, .. })) => {
                        self.metrics.delta_fallbacks.inc();
                        tracing::info!(%reason, "Dataplane refused a delta; pushing the full snapshot");
                        book.holds = None;
                    }
                    Err(error) => return Err(error),
                },
                None => {}
            }
        }
        // The version in force is ours only while we hold a base; otherwise ask.
        let theirs = match book.holds {
            Some(_) => None,
            None => self.client.version().await?,
        };
        let version = book.version.unwrap_or(0).max(theirs.unwrap_or(0)) + 1;
        let mut snapshot = translation.snapshot.clone();
        snapshot.version = version;
        let body = serde_json::to_vec(&snapshot)?;
        self.metrics.snapshot_bytes.set(i64::try_from(body.len()).unwrap_or(i64::MAX));
        self.metrics.sent(PushKind::full, body.len());
        self.client.put(Bytes::from(body)).await?;
        Ok(Some(version))
    }

    async fn push_delta(&self, mut delta: SnapshotDelta, base: u64) -> Result<u64, PushError> {
        delta.base_version = base;
        delta.version = base + 1;
        let body = serde_json::to_vec(&delta)?;
        self.metrics.sent(PushKind::delta, body.len());
        self.client.patch(Bytes::from(body)).await?;
        Ok(delta.version)
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
