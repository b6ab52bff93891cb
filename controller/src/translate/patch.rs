//! The translation after EndpointSlice changes alone: the previous snapshot with the endpoints of the changed
//! Services' backends resolved again, instead of a full translation. Exact by construction: a backend's endpoints
//! depend only on its Service (unchanged, or this path is not taken) and that Service's slices, and slices feed
//! nothing else in the snapshot but the peers, which are recomputed when their Service is among the changed ones.
//! Anything this path cannot settle from the backend alone sends the caller back to [`super::translate`].
//!
//! The cost is that of the change: the result shares with `previous` its hosts, policies, certificates, report and
//! every backend it does not touch (they sit behind `Arc`s); what is copied is the map of backend names.

use super::backend;
use super::{peers, Config, Translation};
use crate::index::{Index, ObjectKey, PortRef};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

/// `previous` with the endpoints of every backend of `services` resolved again from `index`, and how many backends
/// that was; `None` when a backend cannot be re-resolved from what the snapshot records of it, or its new endpoints
/// would not pass the snapshot's checks (then a full translation is needed, which reports what is wrong).
pub fn endpoints_of(
    previous: &Translation,
    index: &Index,
    config: &Config,
    services: &BTreeSet<ObjectKey>,
) -> Option<(Translation, usize)> {
    let wanted: HashSet<(&str, &str)> = services.iter().map(|k| (k.namespace.as_str(), k.name.as_str())).collect();
    let mut snapshot = previous.snapshot.clone();
    let mut backends_resolved = 0;
    for (name, backend) in snapshot.backends.iter_mut() {
        let Some(service) = &backend.service else { continue };
        if !wanted.contains(&(service.namespace.as_str(), service.name.as_str())) {
            continue;
        }
        let key = ObjectKey::new(service.namespace.clone(), service.name.clone());
        // A backend whose Service, or port in it, did not resolve has no endpoints and keeps none: the Service is
        // the same as at the last full translation.
        let Some(svc) = index.services.get(&key).filter(|svc| !svc.external_name) else { continue };
        let Ok(number) = service.port.parse::<i32>() else { continue };
        // One number can name two ports (TCP and UDP): the snapshot does not record which name the route used.
        if svc.ports.iter().filter(|p| p.port == number).count() > 1 {
            return None;
        }
        let Some(port) = backend::find_port(&svc.ports, &PortRef::Number(number)) else { continue };
        let endpoints = backend::endpoints(index, &key, &port.name);
        backends_resolved += 1;
        if endpoints == backend.endpoints {
            continue;
        }
        let backend = Arc::make_mut(backend);
        backend.endpoints = endpoints;
        holdfast_snapshot::validate_backend(name, backend).ok()?;
    }
    if let Some(peers) = config.peers.as_ref().filter(|peers| services.contains(&peers.service)) {
        snapshot.peers = peers::peers(index, peers);
    }
    Some((Translation { snapshot, report: previous.report.clone() }, backends_resolved))
}
