//! The routing state in force, and how a new snapshot replaces it.
//!
//! The state lives in a `watch` channel: a request reads the current value without locking, and a request that is
//! waiting for an endpoint subscribes and wakes up the moment a new snapshot arrives (a push from the controller while
//! it waits must be seen by it). A snapshot is validated in full before it replaces anything, so a bad push leaves the
//! previous routes serving.

use crate::balance::BackendState;
use crate::metrics::route::RouteFamilies;
use crate::route::RouteTable;
use holdfast_snapshot::{Snapshot, SnapshotError};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;

/// One snapshot, compiled for serving.
#[derive(Default)]
pub struct Active {
    /// `None` until the first snapshot is accepted; the dataplane is not ready before that.
    pub version: Option<u64>,
    pub routes: RouteTable,
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
            routes: RouteTable::compile(snapshot, families),
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
}

/// Holds the snapshot in force and hands out subscriptions to its changes.
pub struct ConfigStore {
    tx: watch::Sender<Arc<Active>>,
}

impl Default for ConfigStore {
    fn default() -> Self {
        ConfigStore { tx: watch::Sender::new(Arc::new(Active::default())) }
    }
}

impl ConfigStore {
    /// Validates and puts a snapshot in force, or refuses it and keeps the one in force.
    pub fn apply(
        &self,
        snapshot: &Snapshot,
        families: Option<&Arc<RouteFamilies>>,
    ) -> Result<Arc<Active>, SnapshotError> {
        snapshot.validate()?;
        let compiled = Arc::new(Active::compile(snapshot, families));
        let mut refused = None;
        // The version check and the swap happen under the channel's lock, so two concurrent pushes cannot both pass
        // the check.
        self.tx.send_if_modified(|current| match snapshot.check_newer_than(current.version) {
            Ok(()) => {
                *current = compiled.clone();
                true
            }
            Err(err) => {
                refused = Some(err);
                false
            }
        });
        match refused {
            Some(err) => Err(err),
            None => Ok(compiled),
        }
    }

    pub fn current(&self) -> Arc<Active> {
        self.tx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Active>> {
        self.tx.subscribe()
    }
}
