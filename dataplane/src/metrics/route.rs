//! Metrics per route, labelled with what the user applied — the route's Ingress (`namespace`, `ingress`) and its
//! backend's Service port (`service`, `port`) — and never with anything a request carries, so that the number of
//! series is bounded by the configuration, as ingress-nginx's are (10,000 requests to distinct hosts and paths add
//! none: a request no route takes is counted only process-wide).
//!
//! A route gets its handles ([`RouteMetrics`]) once per snapshot, from a cache keyed by its labels, so a request
//! finds them without hashing labels, and a route kept across snapshots keeps its series. Series are created on
//! first use: a route that never sees a 4xx has no 4xx series. Label sets of routes no snapshot names any more are
//! removed when the next snapshot is applied ([`RouteFamilies::retain`]).

use crate::metrics::ReplayReason;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

/// What identifies a route in metrics; empty strings when the snapshot does not say (a snapshot written by hand).
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub namespace: String,
    pub ingress: String,
    pub service: String,
    pub port: String,
}

/// A status code's class, the one status label of route metrics (statuses themselves are process-wide).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum StatusClass {
    Informational,
    Success,
    Redirection,
    ClientError,
    ServerError,
}

impl EncodeLabelValue for StatusClass {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
        })
    }
}

impl StatusClass {
    pub fn of(status: u16) -> Self {
        match status {
            ..200 => StatusClass::Informational,
            200..300 => StatusClass::Success,
            300..400 => StatusClass::Redirection,
            400..500 => StatusClass::ClientError,
            _ => StatusClass::ServerError,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

// The route's labels again, with one more (the derive's `flatten` does not compile with this prometheus-client).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    namespace: String,
    ingress: String,
    service: String,
    port: String,
    status_class: StatusClass,
}

impl ClassLabels {
    fn new(route: &RouteLabels, status_class: StatusClass) -> Self {
        let RouteLabels { namespace, ingress, service, port } = route.clone();
        ClassLabels { namespace, ingress, service, port, status_class }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    namespace: String,
    ingress: String,
    service: String,
    port: String,
    reason: ReplayReason,
}

impl ReasonLabels {
    fn new(route: &RouteLabels, reason: ReplayReason) -> Self {
        let RouteLabels { namespace, ingress, service, port } = route.clone();
        ReasonLabels { namespace, ingress, service, port, reason }
    }
}

/// Builds a histogram with fixed buckets for a family.
#[derive(Clone, Copy)]
struct Buckets(&'static [f64]);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

/// Seconds, from a fast GET to a long upload or a WebSocket's life.
const DURATION_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0];
/// Seconds an upstream takes to answer.
const UPSTREAM_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Bytes, 1 KiB to 16 GiB by fours.
const BODY_BUCKETS: &[f64] = &[
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262144.0,
    1048576.0,
    4194304.0,
    16777216.0,
    67108864.0,
    268435456.0,
    1073741824.0,
    4294967296.0,
    17179869184.0,
];

/// The families every route's series live in, registered once.
pub struct RouteFamilies {
    requests: Family<ClassLabels, Counter>,
    duration: Family<ClassLabels, Histogram, Buckets>,
    upstream: Family<RouteLabels, Histogram, Buckets>,
    attempts: Family<RouteLabels, Counter>,
    replays: Family<ReasonLabels, Counter>,
    body_bytes: Family<RouteLabels, Histogram, Buckets>,
    in_flight: Family<RouteLabels, Gauge>,
    uploads: Family<RouteLabels, Gauge>,
    tunnels: Family<RouteLabels, Gauge>,
    too_slow: Family<RouteLabels, Counter>,
    /// Handles by labels, so that a route kept across snapshots gets the same ones.
    cache: Mutex<HashMap<RouteLabels, Arc<RouteMetrics>>>,
}

impl RouteFamilies {
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let families = RouteFamilies {
            requests: Family::default(),
            duration: Family::new_with_constructor(Buckets(DURATION_BUCKETS)),
            upstream: Family::new_with_constructor(Buckets(UPSTREAM_BUCKETS)),
            attempts: Family::default(),
            replays: Family::default(),
            body_bytes: Family::new_with_constructor(Buckets(BODY_BUCKETS)),
            in_flight: Family::default(),
            uploads: Family::default(),
            tunnels: Family::default(),
            too_slow: Family::default(),
            cache: Mutex::new(HashMap::new()),
        };
        let f = &families;
        registry.register("route_requests", "Requests answered per route, by status class", f.requests.clone());
        registry.register(
            "route_request_duration_seconds",
            "Time per route from a request's head to the end of its response, by status class",
            f.duration.clone(),
        );
        registry.register(
            "route_upstream_response_seconds",
            "Time per route from the start of the attempt that was answered to the upstream's response head",
            f.upstream.clone(),
        );
        registry.register("route_attempts", "Deliveries to endpoints per route, replays included", f.attempts.clone());
        registry.register(
            "route_replays",
            "Requests sent again after a failed attempt, per route and failure",
            f.replays.clone(),
        );
        registry.register("route_request_body_bytes", "Sizes of request bodies per route", f.body_bytes.clone());
        registry.register("route_requests_in_flight", "Requests being served per route", f.in_flight.clone());
        registry.register("route_uploads_in_flight", "Requests with a body being served per route", f.uploads.clone());
        registry.register("route_tunnels_open", "Tunnels (WebSockets) open per route", f.tunnels.clone());
        registry.register(
            "route_client_body_too_slow",
            "Request bodies answered 408 for arriving slower than minBodyRate, per route",
            f.too_slow.clone(),
        );
        Arc::new(families)
    }

    /// The handles of the route with `labels`.
    pub fn for_route(self: &Arc<Self>, labels: RouteLabels) -> Arc<RouteMetrics> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(labels.clone())
            .or_insert_with(|| {
                Arc::new(RouteMetrics {
                    attempts: self.attempts.get_or_create(&labels).clone(),
                    in_flight: self.in_flight.get_or_create(&labels).clone(),
                    uploads: self.uploads.get_or_create(&labels).clone(),
                    tunnels: self.tunnels.get_or_create(&labels).clone(),
                    by_class: Default::default(),
                    upstream: OnceLock::new(),
                    body_bytes: OnceLock::new(),
                    families: self.clone(),
                    labels,
                })
            })
            .clone()
    }

    /// Forgets the series of every route whose labels are not in `present` (the snapshot just applied).
    pub fn retain(&self, present: &HashSet<RouteLabels>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|labels, _| {
            if present.contains(labels) {
                return true;
            }
            self.attempts.remove(labels);
            self.in_flight.remove(labels);
            self.uploads.remove(labels);
            self.tunnels.remove(labels);
            self.too_slow.remove(labels);
            self.upstream.remove(labels);
            self.body_bytes.remove(labels);
            for class in CLASSES {
                let labels = ClassLabels::new(labels, class);
                self.requests.remove(&labels);
                self.duration.remove(&labels);
            }
            for reason in ReplayReason::ALL {
                self.replays.remove(&ReasonLabels::new(labels, reason));
            }
            false
        });
    }
}

const CLASSES: [StatusClass; 5] = [
    StatusClass::Informational,
    StatusClass::Success,
    StatusClass::Redirection,
    StatusClass::ClientError,
    StatusClass::ServerError,
];

/// One route's series, each an `Arc` shared with its family: updating one is an atomic operation (a histogram takes
/// its own short lock), with no label hashing.
pub struct RouteMetrics {
    pub labels: RouteLabels,
    pub attempts: Counter,
    pub in_flight: Gauge,
    pub uploads: Gauge,
    pub tunnels: Gauge,
    by_class: [OnceLock<(Counter, Histogram)>; 5],
    upstream: OnceLock<Histogram>,
    body_bytes: OnceLock<Histogram>,
    families: Arc<RouteFamilies>,
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteMetrics").field("labels", &self.labels).finish_non_exhaustive()
    }
}

impl RouteMetrics {
    /// A request answered with `status` after `seconds`.
    pub fn answered(&self, status: u16, seconds: f64) {
        let class = StatusClass::of(status);
        let (requests, duration) = self.by_class[class.index()].get_or_init(|| {
            let labels = ClassLabels::new(&self.labels, class);
            let families = &self.families;
            (families.requests.get_or_create(&labels).clone(), families.duration.get_or_create(&labels).clone())
        });
        requests.inc();
        duration.observe(seconds);
    }

    /// The upstream answered `seconds` after the answered attempt started.
    pub fn upstream_answered(&self, seconds: f64) {
        self.upstream.get_or_init(|| self.families.upstream.get_or_create(&self.labels).clone()).observe(seconds);
    }

    /// A request body of `bytes` was received whole.
    pub fn body(&self, bytes: u64) {
        self.body_bytes
            .get_or_init(|| self.families.body_bytes.get_or_create(&self.labels).clone())
            .observe(bytes as f64);
    }

    /// A request body arrived slower than the route's `minBodyRate` (rare: its series is created on first use).
    pub fn body_too_slow(&self) {
        self.families.too_slow.get_or_create(&self.labels).inc();
    }

    /// A replay after a failure of the kind `reason`.
    pub fn replayed(&self, reason: ReplayReason) {
        self.families.replays.get_or_create(&ReasonLabels::new(&self.labels, reason)).inc();
    }
}
