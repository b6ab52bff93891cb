//! What changed in the index since the last translation, and which EndpointSlices feed each Service.
//!
//! Both exist so that the work after a change is proportional to it: an EndpointSlice edit (the churn of a rolling
//! update, many a second in a large cluster) names the Services whose backends must be re-resolved, and the slices
//! of one Service are found by key instead of by scanning every slice for every backend. Any other change, and any
//! relist, asks for a full rebuild: those are rare, and a rebuild is always correct.

use super::model::{ObjectKey, SliceModel};
use std::collections::{BTreeMap, BTreeSet};

/// Changes recorded since they were last taken ([`super::Index::take_changes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The store of the first change that only a full translation can follow (any kind but EndpointSlice, or a
    /// relist of any kind); `None` while only slices changed.
    pub rebuild: Option<&'static str>,
    /// Services (namespace and name) whose EndpointSlices were added, edited or removed. A slice moved from one
    /// Service to another (its `kubernetes.io/service-name` label edited) names both.
    pub services: BTreeSet<ObjectKey>,
    /// EndpointSlices applied or removed, counted once per event.
    pub slice_events: usize,
}

impl Changes {
    /// Records that only a full translation can account for a change of `store`.
    pub fn rebuild(&mut self, store: &'static str) {
        self.rebuild.get_or_insert(store);
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.rebuild.is_none() && self.services.is_empty() && self.slice_events == 0
    }
}

/// EndpointSlice keys by the Service they belong to (the `kubernetes.io/service-name` label); slices without the
/// label belong to no Service and are not listed.
#[derive(Debug, Default)]
pub struct SlicesByService {
    by_service: BTreeMap<ObjectKey, BTreeSet<ObjectKey>>,
}

impl SlicesByService {
    /// The slice `key` now belongs to `new`'s Service (or was removed: `new` is `None`) after `old`'s; returns the
    /// Services concerned.
    pub fn moved(
        &mut self,
        key: &ObjectKey,
        old: Option<&SliceModel>,
        new: Option<&SliceModel>,
    ) -> [Option<ObjectKey>; 2] {
        let old = old.and_then(|slice| service_of(key, slice));
        let new = new.and_then(|slice| service_of(key, slice));
        if let Some(service) = &old {
            if let Some(slices) = self.by_service.get_mut(service) {
                slices.remove(key);
                if slices.is_empty() {
                    self.by_service.remove(service);
                }
            }
        }
        if let Some(service) = &new {
            self.by_service.entry(service.clone()).or_default().insert(key.clone());
        }
        [old, new]
    }

    /// Rebuilt from a whole store (after a relist).
    pub fn rebuild<'a>(&mut self, slices: impl IntoIterator<Item = (&'a ObjectKey, &'a SliceModel)>) {
        self.by_service.clear();
        for (key, slice) in slices {
            self.moved(key, None, Some(slice));
        }
    }

    /// The keys of the slices of one Service, in key order.
    pub fn of(&self, service: &ObjectKey) -> impl Iterator<Item = &ObjectKey> {
        self.by_service.get(service).into_iter().flatten()
    }
}

/// The Service a slice belongs to: its namespace, and the name its label gives.
fn service_of(key: &ObjectKey, slice: &SliceModel) -> Option<ObjectKey> {
    Some(ObjectKey::new(key.namespace.clone(), slice.service.clone()?))
}
