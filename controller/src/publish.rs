//! From index to snapshot: sources update the shared [`Index`] and wake the publisher, which translates at once
//! and publishes the result for the pusher and the status writers. Changes that arrive while a translation is in
//! flight wake it once more when it ends, so a burst (a relist, a rollout) costs one translation per translation
//! time rather than one per event, and a lone change waits for nothing.
//!
//! Nothing is published until every source has listed once ([`Shared::expect`], [`Shared::listed`]): a snapshot
//! made from half the watches would make the dataplane forget routes it was serving. Translation runs on the
//! blocking pool: at thousands of Ingresses a full one takes long enough to stall the runtime's workers. Warnings
//! are logged when they appear and when they clear, not on every translation.

use crate::drain::Shutdown;
use crate::index::Index;
use crate::metrics::PublishMetrics;
use crate::translate::{self, Config, Translation, Update, Warning};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::{watch, Notify};

/// The index, shared by the sources (writers) and the publisher (reader).
#[derive(Default)]
pub struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Default)]
struct State {
    index: Index,
    /// Sources that have not listed everything once yet.
    waiting: BTreeSet<&'static str>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the index half-updated in a way translation cannot read:
        // every store is replaced entry by entry, so the poisoned data is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the index and wakes the publisher.
    pub fn update<T>(&self, f: impl FnOnce(&mut Index) -> T) -> T {
        let out = f(&mut self.lock().index);
        self.changed.notify_one();
        out
    }

    /// Reads the index (tests, diagnostics).
    pub fn read<T>(&self, f: impl FnOnce(&Index) -> T) -> T {
        f(&self.lock().index)
    }

    /// Holds publication until `source` (a watch's store, or the file source) says it has listed once. Called
    /// before the source starts, so that no other source's change can publish without it.
    pub fn expect(&self, source: &'static str) {
        self.lock().waiting.insert(source);
    }

    /// `source` has put everything it found into the index once; a no-op for a source not waited for (a relist).
    pub fn listed(&self, source: &'static str) {
        let mut state = self.lock();
        if state.waiting.remove(source) {
            let waiting: Vec<_> = state.waiting.iter().collect();
            tracing::info!(source, ?waiting, "A source has listed everything once");
            drop(state);
            self.changed.notify_one();
        }
    }

    /// The translation after the changes since the last call, or `None` while a source has not listed yet (the
    /// changes then stay recorded for later).
    fn next(&self, previous: Option<&Translation>, config: &Config, rebuild: bool) -> Option<Update> {
        let mut state = self.lock();
        if !state.waiting.is_empty() {
            return None;
        }
        let mut changes = state.index.take_changes();
        if rebuild {
            changes.rebuild("publisher");
        }
        Some(translate::update(previous, &state.index, config, &changes))
    }
}

/// Translates after each change (and once more for what arrived meanwhile) and publishes the result until shutdown.
pub async fn run(
    shared: Arc<Shared>,
    config: Config,
    tx: watch::Sender<Option<Arc<Translation>>>,
    metrics: PublishMetrics,
    mut shutdown: Shutdown,
) {
    let config = Arc::new(config);
    let mut logged = BTreeSet::new();
    // Set when the translation published last is not the translation of the index as last read, so that the next
    // one cannot be a patch of it.
    let mut rebuild = false;
    loop {
        tokio::select! {
            _ = shared.changed.notified() => {}
            _ = shutdown.wait() => return,
        }
        let started = tokio::time::Instant::now();
        let previous = tx.borrow().clone();
        let (s, c) = (shared.clone(), config.clone());
        let job = tokio::task::spawn_blocking(move || s.next(previous.as_deref(), &c, rebuild));
        let update = match job.await {
            Ok(Some(update)) => update,
            Ok(None) => continue,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // Cancelled: the runtime is shutting down.
            Err(_) => return,
        };
        metrics.translation_seconds.observe(started.elapsed().as_secs_f64());
        metrics.translations.inc();
        let translation = update.translation;
        if let Some(backends) = update.patched_backends {
            tracing::debug!(backends, "Only EndpointSlices changed; their backends were resolved again");
        }
        metrics.warnings.set(i64::try_from(translation.report.warnings.len()).unwrap_or(i64::MAX));
        let routes: usize = translation.snapshot.hosts.iter().map(|h| h.paths.len()).sum();
        metrics.routes.set(i64::try_from(routes).unwrap_or(i64::MAX));
        log_warnings(&translation.report.warnings, &mut logged);
        // A patch has checked the backends it changed, and nothing else changed since the last validation.
        let checked = if update.patched_backends.is_some() { Ok(()) } else { translation.snapshot.validate() };
        if let Err(error) = checked {
            // Translation only emits what validation accepts; if that ever breaks, keep the last good snapshot.
            tracing::error!(%error, "Translated snapshot is invalid; keeping the previous one");
            rebuild = true;
            continue;
        }
        rebuild = false;
        tx.send_if_modified(|current| {
            let changed = !current.as_deref().is_some_and(|current| current.same_as(&translation));
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
