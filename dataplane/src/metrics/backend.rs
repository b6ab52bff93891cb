//! Per-backend gauges — endpoints by state, endpoints backing off — labelled with the backend's Service port and
//! set when metrics are scraped, from the snapshot in force and the health book: nothing on the request path updates
//! them. Backends the snapshot no longer has lose their series at the next scrape.

use crate::balance::{BackendState, Health};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::sync::Mutex;

/// A backend's Service port; without one in the snapshot (written by hand), `service` is the backend's name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    pub namespace: String,
    pub service: String,
    pub port: String,
}

impl BackendLabels {
    pub fn of(backend: &BackendState) -> Self {
        match &backend.service {
            Some(s) => BackendLabels { namespace: s.namespace.clone(), service: s.name.clone(), port: s.port.clone() },
            None => BackendLabels { namespace: String::new(), service: backend.name.clone(), port: String::new() },
        }
    }
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum EndpointState {
    ready,
    serving,
    terminating,
}

// The backend's labels again, with the state (the derive's `flatten` does not compile with this prometheus-client).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    namespace: String,
    service: String,
    port: String,
    state: EndpointState,
}

impl StateLabels {
    fn new(backend: &BackendLabels, state: EndpointState) -> Self {
        let BackendLabels { namespace, service, port } = backend.clone();
        StateLabels { namespace, service, port, state }
    }
}

pub struct BackendFamilies {
    endpoints: Family<StateLabels, Gauge>,
    backing_off: Family<BackendLabels, Gauge>,
    /// The backends set at the last scrape.
    shown: Mutex<HashSet<BackendLabels>>,
}

impl BackendFamilies {
    pub fn register(registry: &mut Registry) -> Self {
        let families =
            BackendFamilies { endpoints: Family::default(), backing_off: Family::default(), shown: Mutex::default() };
        registry.register(
            "backend_endpoints",
            "Endpoints per backend in the snapshot in force, by EndpointSlice condition",
            families.endpoints.clone(),
        );
        registry.register(
            "backend_endpoints_backing_off",
            "Endpoints per backend set aside after failures now",
            families.backing_off.clone(),
        );
        families
    }

    /// Sets every backend's gauges from `backends` and `health`, and drops the series of backends gone since.
    pub fn refresh<'a>(&self, backends: impl Iterator<Item = &'a BackendState>, health: &Health) {
        let mut now_shown = HashSet::new();
        for backend in backends {
            let labels = BackendLabels::of(backend);
            let report = health.report(backend);
            let count = |f: &dyn Fn(&crate::balance::EndpointReport) -> bool| report.iter().filter(|e| f(e)).count();
            let set = |state, n: usize| {
                let labels = StateLabels::new(&labels, state);
                self.endpoints.get_or_create(&labels).set(n as i64);
            };
            set(EndpointState::ready, count(&|e| e.ready));
            set(EndpointState::serving, count(&|e| e.serving));
            set(EndpointState::terminating, count(&|e| e.terminating));
            self.backing_off.get_or_create(&labels).set(count(&|e| e.backing_off.is_some()) as i64);
            now_shown.insert(labels);
        }
        let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        for gone in shown.difference(&now_shown) {
            self.backing_off.remove(gone);
            for state in [EndpointState::ready, EndpointState::serving, EndpointState::terminating] {
                self.endpoints.remove(&StateLabels::new(gone, state));
            }
        }
        *shown = now_shown;
    }
}
