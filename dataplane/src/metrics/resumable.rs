//! Resumable uploads (tus): how many are live, what they hold on the volume, how often clients resume, and how their
//! deliveries end. Process-wide: an upload's route is in its access log lines.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// How a delivery of a finished upload ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum DeliveryOutcome {
    /// The backend answered 1xx-3xx.
    accepted,
    /// The backend answered 4xx or 5xx itself.
    refused,
    /// No endpoint answered; retried later (each failed round counts once).
    retrying,
    /// Given up: the upload expired before any endpoint answered.
    expired,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: DeliveryOutcome,
}

pub struct ResumableMetrics {
    /// Uploads created and not yet delivered (receiving or delivering).
    pub in_flight: Gauge,
    /// Bytes of uploads on the volume.
    pub stored_bytes: Gauge,
    pub created: Counter,
    /// PATCHes that continued an upload after an earlier one was cut short, or after a restart.
    pub resumptions: Counter,
    pub deliveries: Family<OutcomeLabel, Counter>,
    /// Unfinished uploads removed at their expiry.
    pub expired: Counter,
    pub terminated: Counter,
}

impl ResumableMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = ResumableMetrics {
            in_flight: Gauge::default(),
            stored_bytes: Gauge::default(),
            created: Counter::default(),
            resumptions: Counter::default(),
            deliveries: Family::default(),
            expired: Counter::default(),
            terminated: Counter::default(),
        };
        registry.register(
            "resumable_uploads_in_flight",
            "Resumable uploads created and not yet delivered",
            m.in_flight.clone(),
        );
        registry.register("resumable_stored_bytes", "Bytes of resumable uploads on the volume", m.stored_bytes.clone());
        registry.register("resumable_uploads_created", "Resumable uploads created", m.created.clone());
        registry.register(
            "resumable_resumptions",
            "PATCH requests that continued an upload after an interrupted one or a restart",
            m.resumptions.clone(),
        );
        registry.register(
            "resumable_deliveries",
            "Deliveries of finished uploads to their backend, by outcome",
            m.deliveries.clone(),
        );
        registry.register("resumable_uploads_expired", "Unfinished uploads removed at expiry", m.expired.clone());
        registry.register("resumable_uploads_terminated", "Uploads ended by the client (DELETE)", m.terminated.clone());
        m
    }

    pub fn delivery(&self, outcome: DeliveryOutcome) {
        self.deliveries.get_or_create(&OutcomeLabel { outcome }).inc();
    }
}
