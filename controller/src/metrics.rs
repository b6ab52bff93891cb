//! The controller's metrics. Each component registers its own metrics into the run's [`Registry`] (no global
//! registry); labels are fixed variant names or compile-time kind names, never object names or error text.
//!
//! Along the pipeline: the source counts watch events ([`SourceMetrics`]), the publisher times translations
//! ([`PublishMetrics`]), the pusher counts and times pushes, full or delta, and the bytes it sends ([`PushMetrics`]).

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// What a watch (or the file source) told the index, in kube-runtime's terms.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum WatchEvent {
    /// An object was added or changed.
    apply,
    delete,
    /// A (re)list started; `init_apply` for each object listed follows, then `init_done`.
    init,
    init_apply,
    /// A (re)list ended: objects not listed have left the index.
    init_done,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    /// The Kubernetes kind ([`crate::index::IndexKind::KIND`]): a compile-time name, so the label stays bounded.
    pub kind: &'static str,
    pub event: WatchEvent,
}

/// Metrics of the source: what came in, and whether this replica leads.
#[derive(Clone, Debug, Default)]
pub struct SourceMetrics {
    pub watch_events: Family<WatchLabels, Counter>,
    /// 1 while this replica holds the leader-election Lease (and so writes status and events), else 0. The file
    /// source elects nobody and writes no status: it stays 0.
    pub leader: Gauge,
}

impl SourceMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = SourceMetrics::default();
        registry.register(
            "holdfast_controller_watch_events",
            "Events from the watches (or the file source) by kind and event",
            metrics.watch_events.clone(),
        );
        registry.register(
            "holdfast_controller_leader",
            "1 while this replica holds the Lease and writes status, else 0 (always 0 with --from-dir)",
            metrics.leader.clone(),
        );
        metrics
    }

    pub fn count(&self, kind: &'static str, event: WatchEvent) {
        self.count_n(kind, event, 1);
    }

    pub fn count_n(&self, kind: &'static str, event: WatchEvent, n: u64) {
        self.watch_events.get_or_create(&WatchLabels { kind, event }).inc_by(n);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum PushOutcome {
    Accepted,
    /// The dataplane answered but did not take the snapshot.
    Refused,
    /// The dataplane could not be reached or timed out.
    Unreachable,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PushLabels {
    pub outcome: PushOutcome,
}

/// What a push request carried.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum PushKind {
    /// The whole snapshot (`PUT /config`).
    full,
    /// The backends that changed since the version the dataplane holds (`PATCH /config`).
    delta,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PushKindLabels {
    pub kind: PushKind,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Metrics of the pusher.
#[derive(Clone, Debug)]
pub struct PushMetrics {
    pub pushes: Family<PushLabels, Counter>,
    /// Seconds from the start of a push (a version check when one is needed, the `PATCH` of a delta and the `PUT`
    /// that replaces a refused one) to the dataplane's last answer, by outcome.
    pub push_seconds: HistogramFamily<PushLabels>,
    /// Version of the snapshot the dataplane last accepted from us.
    pub accepted_version: Gauge,
    /// Bytes of the last snapshot sent (the `PUT /config` body), accepted or not.
    pub snapshot_bytes: Gauge,
    /// Requests that changed the dataplane's config, by kind, whatever their answer.
    pub requests: Family<PushKindLabels, Counter>,
    /// Body bytes of those requests, by kind: what each change cost to send.
    pub bytes: Family<PushKindLabels, Counter>,
    /// Deltas the dataplane refused (its version was not their base), each followed by the full snapshot.
    pub delta_fallbacks: Counter,
}

impl Default for PushMetrics {
    fn default() -> Self {
        PushMetrics {
            pushes: Family::default(),
            // A push is two requests to a local listener, each given up after 5 s.
            push_seconds: Family::new_with_constructor(|| {
                Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
            }),
            accepted_version: Gauge::default(),
            snapshot_bytes: Gauge::default(),
            requests: Family::default(),
            bytes: Family::default(),
            delta_fallbacks: Counter::default(),
        }
    }
}

impl PushMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = PushMetrics::default();
        registry.register("holdfast_controller_pushes", "Snapshot pushes by outcome", metrics.pushes.clone());
        registry.register(
            "holdfast_controller_push_seconds",
            "Time a snapshot push took, version check and PUT, by outcome",
            metrics.push_seconds.clone(),
        );
        registry.register(
            "holdfast_controller_accepted_version",
            "Version of the last snapshot the dataplane accepted",
            metrics.accepted_version.clone(),
        );
        registry.register(
            "holdfast_controller_snapshot_bytes",
            "Size of the last snapshot pushed to the dataplane, as JSON",
            metrics.snapshot_bytes.clone(),
        );
        registry.register(
            "holdfast_controller_push_requests",
            "Config changes sent to the dataplane by kind (full snapshot or delta), whatever the answer",
            metrics.requests.clone(),
        );
        registry.register(
            "holdfast_controller_pushed_bytes",
            "Body bytes of the config changes sent to the dataplane, by kind",
            metrics.bytes.clone(),
        );
        registry.register(
            "holdfast_controller_delta_fallbacks",
            "Deltas the dataplane refused, each replaced by the full snapshot",
            metrics.delta_fallbacks.clone(),
        );
        metrics
    }

    /// Counts one request of `kind` with a body of `bytes`.
    pub fn sent(&self, kind: PushKind, bytes: usize) {
        let labels = PushKindLabels { kind };
        self.requests.get_or_create(&labels).inc();
        self.bytes.get_or_create(&labels).inc_by(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    /// Counts one push and how long it took.
    pub fn observe(&self, outcome: PushOutcome, seconds: f64) {
        let labels = PushLabels { outcome };
        self.push_seconds.get_or_create(&labels).observe(seconds);
        self.pushes.get_or_create(&labels).inc();
    }
}

/// Metrics of the publisher.
#[derive(Clone, Debug)]
pub struct PublishMetrics {
    pub translations: Counter,
    /// Seconds each translation of the index took (the index locked meanwhile).
    pub translation_seconds: Histogram,
    /// Warnings in the latest translation.
    pub warnings: Gauge,
    /// Routes (host and path pairs) in the latest translation.
    pub routes: Gauge,
}

impl Default for PublishMetrics {
    fn default() -> Self {
        PublishMetrics {
            translations: Counter::default(),
            // A handful of Ingresses translate in tens of microseconds; thousands in tens of milliseconds.
            translation_seconds: Histogram::new([
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            warnings: Gauge::default(),
            routes: Gauge::default(),
        }
    }
}

impl PublishMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = PublishMetrics::default();
        registry.register(
            "holdfast_controller_translations",
            "Translations of the index",
            metrics.translations.clone(),
        );
        registry.register(
            "holdfast_controller_translation_seconds",
            "Time each translation of the index into a snapshot took",
            metrics.translation_seconds.clone(),
        );
        registry.register(
            "holdfast_controller_warnings",
            "Warnings in the latest translation",
            metrics.warnings.clone(),
        );
        registry.register("holdfast_controller_routes", "Routes in the latest translation", metrics.routes.clone());
        metrics
    }
}
