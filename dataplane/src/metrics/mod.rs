//! The dataplane's Prometheus metrics, served as text on the admin listener's `/metrics` (and the read-only
//! `--metrics` listener's).
//!
//! One registry per process, owned here and passed around in an `Arc` (no global registry, so tests running several
//! dataplanes in one process do not mix their counts). Every label has a bounded set of values: fixed names, or
//! names from the configuration (routes: [`route`]; backends: [`backend`]), never from requests.

pub mod backend;
pub mod resumable;
pub mod route;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: u16,
}

/// Why an attempt was replayed; the variants are the failure classes of [`crate::upstream::FailureKind`].
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ReplayReason {
    connect_refused,
    connect_timeout,
    reset_before_response,
    send_timeout,
    read_timeout,
    stale_connection,
}

impl ReplayReason {
    pub const ALL: [ReplayReason; 6] = [
        ReplayReason::connect_refused,
        ReplayReason::connect_timeout,
        ReplayReason::reset_before_response,
        ReplayReason::send_timeout,
        ReplayReason::read_timeout,
        ReplayReason::stale_connection,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReplayReason::connect_refused => "connect_refused",
            ReplayReason::connect_timeout => "connect_timeout",
            ReplayReason::reset_before_response => "reset_before_response",
            ReplayReason::send_timeout => "send_timeout",
            ReplayReason::read_timeout => "read_timeout",
            ReplayReason::stale_connection => "stale_connection",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReplayLabel {
    pub reason: ReplayReason,
}

/// All metrics of one dataplane.
pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<StatusLabel, Counter>,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub spool_bytes: Gauge,
    pub spool_files: Gauge,
    /// Uploads that yielded their spool space to older ones and were refused (507).
    pub spool_yielded: Counter,
    /// Tee uploads that gave up their spool file under spool pressure and were relayed on without replay.
    pub tee_unspooled: Counter,
    pub replays: Family<ReplayLabel, Counter>,
    pub upstream_wait_seconds: Histogram,
    pub config_version: Gauge,
    pub tunnels_open: Gauge,
    /// Request bodies answered 408 for arriving slower than their `minBodyRate`.
    pub client_body_too_slow: Counter,
    /// Client connections closed for reading their responses slower than `minBodyRate`.
    pub client_read_too_slow: Counter,
    /// Seconds since the snapshot in force was applied; set when scraped.
    pub config_age_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// `--spool-quota` (0: none).
    pub spool_quota_bytes: Gauge,
    /// Endpoint addresses backing off after failures, all backends together; set when scraped.
    pub endpoints_backing_off: Gauge,
    pub route: Arc<route::RouteFamilies>,
    pub backend: backend::BackendFamilies,
    pub resumable: resumable::ResumableMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("holdfast");
        let requests = Family::<StatusLabel, Counter>::default();
        registry.register("requests", "Client requests answered, by status", requests.clone());
        let bytes_in = Counter::default();
        registry.register("request_body_bytes", "Request body bytes received from clients", bytes_in.clone());
        let bytes_out = Counter::default();
        registry.register("response_body_bytes", "Response body bytes sent to clients", bytes_out.clone());
        let spool_bytes = Gauge::default();
        registry.register("spool_bytes", "Bytes held in spool files now", spool_bytes.clone());
        let spool_files = Gauge::default();
        registry.register("spool_files", "Spool files open now", spool_files.clone());
        let spool_yielded = Counter::default();
        registry.register(
            "spool_yielded",
            "Uploads refused (507) because the spool had no room, the newest yielding to older ones",
            spool_yielded.clone(),
        );
        let tee_unspooled = Counter::default();
        registry.register(
            "tee_unspooled",
            "Tee uploads that gave up their spool file for want of room and went on without replay",
            tee_unspooled.clone(),
        );
        let replays = Family::<ReplayLabel, Counter>::default();
        registry.register("replays", "Requests sent again after a failed attempt, by failure", replays.clone());
        // Buckets from 10 ms to about 80 s: waits are for pods to come back, which takes seconds.
        let upstream_wait_seconds = Histogram::new([0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0]);
        registry.register(
            "upstream_wait_seconds",
            "Time requests spent waiting for an endpoint that would take them",
            upstream_wait_seconds.clone(),
        );
        let config_version = Gauge::default();
        registry.register("config_version", "Version of the route snapshot in force (0: none)", config_version.clone());
        let tunnels_open = Gauge::default();
        registry.register(
            "tunnels_open",
            "Tunnels (WebSocket and other Upgrades) carrying bytes between a client and an upstream now",
            tunnels_open.clone(),
        );
        let client_body_too_slow = Counter::default();
        registry.register(
            "client_body_too_slow",
            "Request bodies answered 408 for arriving slower than the route's minBodyRate",
            client_body_too_slow.clone(),
        );
        let client_read_too_slow = Counter::default();
        registry.register(
            "client_read_too_slow",
            "Client connections closed for reading responses slower than minBodyRate",
            client_read_too_slow.clone(),
        );
        let config_age_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "config_age_seconds",
            "Seconds since the route snapshot in force was applied",
            config_age_seconds.clone(),
        );
        let spool_quota_bytes = Gauge::default();
        registry.register(
            "spool_quota_bytes",
            "Spool bytes requests may use together (0: no quota)",
            spool_quota_bytes.clone(),
        );
        let endpoints_backing_off = Gauge::default();
        registry.register(
            "endpoints_backing_off",
            "Endpoint addresses set aside after failures, all backends together",
            endpoints_backing_off.clone(),
        );
        let route = route::RouteFamilies::register(&mut registry);
        let backend = backend::BackendFamilies::register(&mut registry);
        let resumable = resumable::ResumableMetrics::register(&mut registry);
        Metrics {
            client_body_too_slow,
            client_read_too_slow,
            resumable,
            config_age_seconds,
            spool_quota_bytes,
            endpoints_backing_off,
            route,
            backend,
            tunnels_open,
            registry,
            requests,
            bytes_in,
            bytes_out,
            spool_bytes,
            spool_files,
            spool_yielded,
            tee_unspooled,
            replays,
            upstream_wait_seconds,
            config_version,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
