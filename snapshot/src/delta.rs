//! A snapshot delta: the backends that changed since a snapshot the dataplane already holds, so that one
//! EndpointSlice edit costs a few hundred bytes to push and to apply instead of the whole snapshot.
//!
//! The controller sends it as `PATCH /config`; the dataplane applies it to the snapshot in force only when that is
//! exactly `baseVersion`, and the result is checked exactly as a full snapshot would be, before anything changes.
//! Like Envoy's incremental xDS it names what is upserted and what is removed; unlike it, there is no version per
//! resource: one controller orders every push, so the whole-snapshot version already says which state a delta
//! builds on, and a mismatch (the dataplane restarted, someone else pushed) is answered by the full snapshot.
//! Only backends travel this way: they are what endpoint churn changes. A change to anything else (hosts, policies,
//! certificates, peers) is pushed whole.

use crate::validate::validate_backend;
use crate::{Backend, Snapshot, SnapshotError};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// The backends to upsert and remove on top of the snapshot of version `base_version`, giving version `version`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnapshotDelta {
    /// The version this delta applies to: it must be the one in force.
    pub base_version: u64,
    /// The version in force once applied; greater than `base_version`.
    pub version: u64,
    /// Backends added or replaced whole, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backends: BTreeMap<String, Arc<Backend>>,
    /// Backends no route refers to any more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_backends: Vec<String>,
}

/// Why a delta was refused; the snapshot it was meant for is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("invalid delta JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("no snapshot is in force to apply a delta to: send the full snapshot")]
    NoBase,
    #[error("the delta is based on version {base} but version {current} is in force: send the full snapshot")]
    BaseMismatch { base: u64, current: u64 },
    #[error("the delta's version {version} is not greater than its base version {base}")]
    NotNewer { base: u64, version: u64 },
    #[error("backend {name:?} is both upserted and removed")]
    UpsertedAndRemoved { name: String },
    #[error("removing backend {name:?} would leave {at} pointing at nothing")]
    StillReferenced { name: String, at: String },
    #[error(transparent)]
    Invalid(#[from] SnapshotError),
}

impl SnapshotDelta {
    /// Parses a delta from JSON (checked against a snapshot only by [`SnapshotDelta::apply_to`]).
    pub fn from_json(bytes: &[u8]) -> Result<Self, DeltaError> {
        serde_json::from_slice(bytes).map_err(DeltaError::Json)
    }

    /// The delta from `old` to `new` when they differ in backends only; `None` when anything else differs (then the
    /// full snapshot must be sent). Its versions are those of `old` and `new`: the sender sets the ones it pushes.
    pub fn between(old: &Snapshot, new: &Snapshot) -> Option<Self> {
        let same_rest = old.hosts == new.hosts
            && old.default_backend == new.default_backend
            && old.policies == new.policies
            && old.tls == new.tls
            && old.peers == new.peers;
        if !same_rest {
            return None;
        }
        // One walk over both maps in key order: at thousands of backends, a lookup per name costs more than the
        // comparisons, which are mostly of one shared `Arc` with itself.
        let mut delta = SnapshotDelta { base_version: old.version, version: new.version, ..SnapshotDelta::default() };
        let (mut olds, mut news) = (old.backends.iter().peekable(), new.backends.iter().peekable());
        loop {
            let order = match (olds.peek(), news.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((old_name, _)), Some((new_name, _))) => old_name.cmp(new_name),
            };
            match order {
                Ordering::Less => delta.removed_backends.extend(olds.next().map(|(name, _)| name.clone())),
                Ordering::Greater => delta.backends.extend(news.next().map(|(n, b)| (n.clone(), b.clone()))),
                Ordering::Equal => {
                    let (Some((_, was)), Some((name, now))) = (olds.next(), news.next()) else { break };
                    if was != now {
                        delta.backends.insert(name.clone(), now.clone());
                    }
                }
            }
        }
        Some(delta)
    }

    /// Whether applying it changes no backend (only the version would move).
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty() && self.removed_backends.is_empty()
    }

    /// The snapshot `base` becomes with this delta, checked as a whole snapshot is.
    pub fn apply(&self, base: &Snapshot) -> Result<Snapshot, DeltaError> {
        self.check(base)?;
        let mut next = base.clone();
        self.patch(&mut next);
        Ok(next)
    }

    /// Applies the delta to `snapshot` in place, or changes nothing and says why. The checks are those of
    /// [`Snapshot::validate`] restricted to what a delta can break (`snapshot` is valid already): each upserted
    /// backend on its own, and no route left pointing at a removed backend.
    pub fn apply_to(&self, snapshot: &mut Snapshot) -> Result<(), DeltaError> {
        self.check(snapshot)?;
        self.patch(snapshot);
        Ok(())
    }

    fn check(&self, base: &Snapshot) -> Result<(), DeltaError> {
        if self.base_version != base.version {
            return Err(DeltaError::BaseMismatch { base: self.base_version, current: base.version });
        }
        if self.version <= self.base_version {
            return Err(DeltaError::NotNewer { base: self.base_version, version: self.version });
        }
        for (name, backend) in &self.backends {
            validate_backend(name, backend)?;
        }
        if self.removed_backends.is_empty() {
            return Ok(());
        }
        let removed: HashSet<&str> = self.removed_backends.iter().map(String::as_str).collect();
        if let Some(name) = self.backends.keys().find(|name| removed.contains(name.as_str())) {
            return Err(DeltaError::UpsertedAndRemoved { name: name.clone() });
        }
        referenced_removed(base, &removed).map_or(Ok(()), |(name, at)| Err(DeltaError::StillReferenced { name, at }))
    }

    fn patch(&self, snapshot: &mut Snapshot) {
        for name in &self.removed_backends {
            snapshot.backends.remove(name);
        }
        for (name, backend) in &self.backends {
            snapshot.backends.insert(name.clone(), backend.clone());
        }
        snapshot.version = self.version;
    }
}

/// The first route target of `snapshot` that names a backend in `removed`, with where it is.
fn referenced_removed(snapshot: &Snapshot, removed: &HashSet<&str>) -> Option<(String, String)> {
    if let Some(target) = snapshot.default_backend.as_ref().filter(|t| removed.contains(t.backend.as_str())) {
        return Some((target.backend.clone(), "defaultBackend".to_string()));
    }
    snapshot.hosts.iter().enumerate().find_map(|(index, rule)| {
        rule.paths.iter().enumerate().find_map(|(p, path)| {
            removed
                .contains(path.target.backend.as_str())
                .then(|| (path.target.backend.clone(), format!("hosts[{index}].paths[{p}]")))
        })
    })
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
