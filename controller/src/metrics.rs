//! The controller's metrics. Each component registers its own metrics into the run's [`Registry`] (no global
//! registry); labels are fixed variant names, never object names or error text.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

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

/// Metrics of the pusher.
#[derive(Clone, Debug, Default)]
pub struct PushMetrics {
    pub pushes: Family<PushLabels, Counter>,
    /// Version of the snapshot the dataplane last accepted from us.
    pub accepted_version: Gauge,
}

impl PushMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = PushMetrics::default();
        registry.register("holdfast_controller_pushes", "Snapshot pushes by outcome", metrics.pushes.clone());
        registry.register(
            "holdfast_controller_accepted_version",
            "Version of the last snapshot the dataplane accepted",
            metrics.accepted_version.clone(),
        );
        metrics
    }

    pub fn count(&self, outcome: PushOutcome) {
        self.pushes.get_or_create(&PushLabels { outcome }).inc();
    }
}

/// Metrics of the publisher.
#[derive(Clone, Debug, Default)]
pub struct PublishMetrics {
    pub translations: Counter,
    /// Warnings in the latest translation.
    pub warnings: Gauge,
    /// Routes (host and path pairs) in the latest translation.
    pub routes: Gauge,
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
            "holdfast_controller_warnings",
            "Warnings in the latest translation",
            metrics.warnings.clone(),
        );
        registry.register("holdfast_controller_routes", "Routes in the latest translation", metrics.routes.clone());
        metrics
    }
}
