//! The routing state in force, and how a new snapshot replaces it.
//!
//! The state lives in a `watch` channel: a request reads the current value without locking, and a request that is
//! waiting for an endpoint subscribes and wakes up the moment a new snapshot arrives (a push from the controller while
//! it waits must be seen by it). A snapshot is validated in full before it replaces anything, so a bad push leaves the
//! previous routes serving.
//!
//! The snapshot in force is also kept as parsed, as the base a delta (`PATCH /config`, [`SnapshotDelta`]) applies
//! to. A delta recompiles only what it touches: the backends it upserts get a fresh [`BackendState`] (the others keep
//! theirs, round-robin position and health handles included), and the route table is shared with the previous state
//! unless an upserted backend's Service port — part of its routes' metric labels — changed.

use crate::balance::BackendState;
use crate::metrics::route::RouteFamilies;
use crate::route::RouteTable;
use holdfast_snapshot::{DeltaError, Snapshot, SnapshotDelta, SnapshotError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// One snapshot, compiled for serving.
#[derive(Default)]
pub struct Active {
    /// `None` until the first snapshot is accepted; the dataplane is not ready before that.
    pub version: Option<u64>,
    /// Shared between states when a delta leaves the routes as they were.
    pub routes: Arc<RouteTable>,
    pub backends: HashMap<String, Arc<BackendState>>,
    /// When it was put in force (the status page and `holdfast_config_age_seconds`).
    pub applied_at: Option<std::time::SystemTime>,
    /// The other dataplanes by instance name, in the form upload ids carry it ([`crate::tus::instance_name`]).
    pub peers: HashMap<String, std::net::SocketAddr>,
}

impl Active {
    fn compile(snapshot: &Snapshot, families: Option<&Arc<RouteFamilies>>) -> Self {
        let backends = snapshot
            .backends
            .iter()
            .map(|(name, backend)| (name.clone(), Arc::new(BackendState::new(name, backend))))
            .collect();
        Active {
            version: Some(snapshot.version),
            routes: Arc::new(RouteTable::compile(snapshot, families)),
            backends,
            applied_at: Some(std::time::SystemTime::now()),
            peers: snapshot
                .peers
                .iter()
                .filter_map(|(name, peer)| {
                    let ip: std::net::IpAddr = peer.address.parse().ok()?;
                    Some((crate::tus::instance_name(name), (ip, peer.port).into()))
                })
                .collect(),
        }
    }

    /// `current` with `delta` applied; `snapshot` is the base with the delta applied already.
    fn patch(
        current: &Active,
        snapshot: &Snapshot,
        delta: &SnapshotDelta,
        families: Option<&Arc<RouteFamilies>>,
    ) -> Patched {
        let mut backends = current.backends.clone();
        let mut relabel = false;
        for name in &delta.removed_backends {
            backends.remove(name);
        }
        for (name, backend) in &delta.backends {
            let old = backends.insert(name.clone(), Arc::new(BackendState::new(name, backend)));
            relabel |= old.is_some_and(|old| old.service != backend.service);
        }
        let routes = if relabel { Arc::new(RouteTable::compile(snapshot, families)) } else { current.routes.clone() };
        let active = Active {
            version: Some(snapshot.version),
            routes,
            backends,
            applied_at: Some(std::time::SystemTime::now()),
            peers: current.peers.clone(),
        };
        let route_labels = relabel.then(|| crate::route::all_labels(snapshot));
        Patched { active: Arc::new(active), route_labels }
    }
}

/// A state compiled from a delta.
pub struct Patched {
    pub active: Arc<Active>,
    /// Every route's metric labels when the routes were compiled anew (they may have changed), else `None`.
    pub route_labels: Option<std::collections::HashSet<crate::metrics::route::RouteLabels>>,
}

/// Holds the snapshot in force and hands out subscriptions to its changes.
pub struct ConfigStore {
    tx: watch::Sender<Arc<Active>>,
    /// The snapshot in force as parsed, the base of the next delta; `None` before the first.
    base: Mutex<Option<Snapshot>>,
}

impl Default for ConfigStore {
    fn default() -> Self {
        ConfigStore { tx: watch::Sender::new(Arc::new(Active::default())), base: Mutex::new(None) }
    }
}

impl ConfigStore {
    /// Validates and puts a snapshot in force, or refuses it and keeps the one in force.
    pub fn apply(
        &self,
        snapshot: Snapshot,
        families: Option<&Arc<RouteFamilies>>,
    ) -> Result<Arc<Active>, SnapshotError> {
        snapshot.validate()?;
        // Every change holds the base's lock from its version check to its swap, so two concurrent pushes cannot
        // both pass the check.
        let mut base = self.base.lock().unwrap_or_else(|p| p.into_inner());
        snapshot.check_newer_than(self.current().version)?;
        let compiled = Arc::new(Active::compile(&snapshot, families));
        self.tx.send_replace(compiled.clone());
        *base = Some(snapshot);
        Ok(compiled)
    }

    /// Applies a delta to the snapshot in force, or refuses it and changes nothing. The same rules as a full
    /// snapshot: the result is checked as a whole snapshot is (see [`SnapshotDelta::apply_to`]), and its version
    /// must be greater than the one in force, which must be exactly the delta's base.
    pub fn apply_delta(
        &self,
        delta: &SnapshotDelta,
        families: Option<&Arc<RouteFamilies>>,
    ) -> Result<Patched, DeltaError> {
        let mut base = self.base.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = base.as_mut().ok_or(DeltaError::NoBase)?;
        // Checks everything, then patches: on an error the base is untouched.
        delta.apply_to(snapshot)?;
        let patched = Active::patch(&self.current(), snapshot, delta, families);
        self.tx.send_replace(patched.active.clone());
        Ok(patched)
    }

    pub fn current(&self) -> Arc<Active> {
        self.tx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Active>> {
        self.tx.subscribe()
    }
}
