//! From index to snapshot: sources update the shared [`Index`] and wake the publisher, which waits [`COALESCE`] so a
//! burst of events (a relist, a rollout) becomes one translation, then publishes the result for the pusher and the
//! status writers. Warnings are logged when they appear and when they clear, not on every translation.

use crate::drain::Shutdown;
use crate::index::Index;
use crate::metrics::PublishMetrics;
use crate::translate::{translate, Config, Translation, Warning};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// How long after a change the publisher waits for more before translating.
pub const COALESCE: Duration = Duration::from_millis(100);

/// The index, shared by the sources (writers) and the publisher (reader).
#[derive(Default)]
pub struct Shared {
    index: Mutex<Index>,
    changed: Notify,
}

impl Shared {
    /// Changes the index and wakes the publisher.
    pub fn update<T>(&self, f: impl FnOnce(&mut Index) -> T) -> T {
        // A panic while holding the lock cannot leave the index half-updated in a way translation cannot read:
        // every store is replaced entry by entry, so the poisoned data is still usable.
        let out = f(&mut self.index.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.notify_one();
        out
    }

    /// Reads the index (tests, diagnostics).
    pub fn read<T>(&self, f: impl FnOnce(&Index) -> T) -> T {
        f(&self.index.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn translate(&self, config: &Config) -> Translation {
        translate(&self.index.lock().unwrap_or_else(PoisonError::into_inner), config)
    }
}

/// Translates after each (coalesced) change and publishes the result until shutdown.
pub async fn run(
    shared: Arc<Shared>,
    config: Config,
    tx: watch::Sender<Option<Arc<Translation>>>,
    metrics: PublishMetrics,
    mut shutdown: Shutdown,
) {
    let mut logged = BTreeSet::new();
    loop {
        tokio::select! {
            _ = shared.changed.notified() => {}
            _ = shutdown.wait() => return,
        }
        tokio::time::sleep(COALESCE).await;
        let started = tokio::time::Instant::now();
        let translation = shared.translate(&config);
        metrics.translation_seconds.observe(started.elapsed().as_secs_f64());
        metrics.translations.inc();
        metrics.warnings.set(i64::try_from(translation.report.warnings.len()).unwrap_or(i64::MAX));
        let routes: usize = translation.snapshot.hosts.iter().map(|h| h.paths.len()).sum();
        metrics.routes.set(i64::try_from(routes).unwrap_or(i64::MAX));
        log_warnings(&translation.report.warnings, &mut logged);
        if let Err(error) = translation.snapshot.validate() {
            // Translation only emits what validation accepts; if that ever breaks, keep the last good snapshot.
            tracing::error!(%error, "Translated snapshot is invalid; keeping the previous one");
            continue;
        }
        tx.send_if_modified(|current| {
            let changed = current.as_deref() != Some(&translation);
            if changed {
                *current = Some(Arc::new(translation));
            }
            changed
        });
    }
}

fn log_warnings(warnings: &[Warning], logged: &mut BTreeSet<Warning>) {
    let now: BTreeSet<Warning> = warnings.iter().cloned().collect();
    for w in now.difference(logged) {
        tracing::warn!(kind = w.kind, object = %w.key, reason = w.reason.as_str(), "{}", w.message);
    }
    for w in logged.difference(&now) {
        tracing::info!(kind = w.kind, object = %w.key, reason = w.reason.as_str(), "Resolved: {}", w.message);
    }
    *logged = now;
}
