//! The index: the one synchronous store every source (kube watches, the `--from-dir` file source) feeds.
//!
//! Each event is converted at this boundary into the small model translation needs ([`model`]), so translation never
//! sees raw API objects and the index can be filled by hand in tests. Sources call [`Index::apply`],
//! [`Index::delete`] and [`Index::reset`] (a relist: everything not listed is gone); nothing here blocks or talks to
//! the network. Every change is also recorded ([`Changes`]) so that the publisher can tell an EndpointSlice edit,
//! which re-resolves only the backends of its Service, from anything else, which rebuilds the snapshot.

mod changes;
mod convert;
pub mod model;
mod peer_slice;
mod policy;
mod secret;

pub use changes::Changes;
pub use convert::SERVICE_NAME_LABEL;
pub use model::*;
pub use peer_slice::PeerSlice;
pub use policy::PolicyModel;
pub use secret::OpaqueSecret;

use holdfast_crds::UploadPolicy;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use std::collections::BTreeMap;

/// Everything the controller knows about the objects it translates, keyed by namespace and name.
#[derive(Debug, Default)]
pub struct Index {
    pub classes: BTreeMap<ObjectKey, IngressClassModel>,
    pub ingresses: BTreeMap<ObjectKey, IngressModel>,
    pub services: BTreeMap<ObjectKey, ServiceModel>,
    pub slices: BTreeMap<ObjectKey, SliceModel>,
    /// The peers Service's EndpointSlices, from their own watch when the main one does not cover their namespace.
    pub peer_slices: BTreeMap<ObjectKey, SliceModel>,
    /// `kubernetes.io/tls` Secrets.
    pub secrets: BTreeMap<ObjectKey, TlsSecretModel>,
    /// `Opaque` Secrets that carry a `ca.crt` (for HTTPS upstreams), from their own watch.
    pub ca_secrets: BTreeMap<ObjectKey, CaSecretModel>,
    pub policies: BTreeMap<ObjectKey, PolicyModel>,
    /// `metadata.uid` of every indexed object that has one, by store and key: warnings carry it to their events.
    uids: BTreeMap<(&'static str, ObjectKey), String>,
    /// `slices` by Service, kept in step with it by every change.
    slices_by_service: changes::SlicesByService,
    /// What changed since [`Index::take_changes`] was last called.
    changes: Changes,
}

/// Why an object was not indexed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("{kind} has no metadata.name")]
    MissingName { kind: &'static str },
    #[error("{kind} {name} has no metadata.namespace")]
    MissingNamespace { kind: &'static str, name: String },
}

/// A kind of object the index stores, and how it becomes its model.
pub trait IndexKind: Sized {
    /// The Kubernetes kind, for logs and warnings.
    const KIND: &'static str;
    /// The store this kind fills, where it differs from `KIND`: one API kind read by two watches (Secrets by type)
    /// fills two stores, and a relist of one must not touch the other's objects.
    const STORE: &'static str = Self::KIND;
    /// Cluster-scoped kinds are keyed with an empty namespace.
    const NAMESPACED: bool = true;
    type Model;

    fn store(index: &mut Index) -> &mut BTreeMap<ObjectKey, Self::Model>;
    fn metadata(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    /// Records that the object at `key` changed from `old` to what the store now holds. Any kind but EndpointSlice
    /// asks for a full translation.
    fn changed(index: &mut Index, _key: &ObjectKey, _old: Option<&Self::Model>) {
        index.changes.rebuild(Self::STORE);
    }

    /// Records that the whole store was replaced by a relist: always a full translation.
    fn relisted(index: &mut Index) {
        index.changes.rebuild(Self::STORE);
    }

    /// Converts the object; `previous` is the model it replaces, for kinds that keep their last good state.
    /// `None`: the object is not one the index keeps (a Secret of another type), so any previous entry goes.
    fn convert(self, key: &ObjectKey, previous: Option<&Self::Model>) -> Option<Self::Model>;

    /// The object's key, refused when the API's required metadata is missing (never defaulted).
    fn key(&self) -> Result<ObjectKey, IndexError> {
        let meta = self.metadata();
        let name = meta.name.clone().filter(|n| !n.is_empty()).ok_or(IndexError::MissingName { kind: Self::KIND })?;
        let namespace = match (Self::NAMESPACED, &meta.namespace) {
            (false, _) => String::new(),
            (true, Some(ns)) if !ns.is_empty() => ns.clone(),
            (true, _) => return Err(IndexError::MissingNamespace { kind: Self::KIND, name }),
        };
        Ok(ObjectKey { namespace, name })
    }
}

impl Index {
    /// Adds or replaces one object.
    pub fn apply<K: IndexKind>(&mut self, object: K) -> Result<(), IndexError> {
        let key = object.key()?;
        let uid = object.metadata().uid.clone();
        let store = K::store(self);
        match object.convert(&key, store.get(&key)) {
            Some(model) => {
                let old = store.insert(key.clone(), model);
                K::changed(self, &key, old.as_ref());
                self.set_uid(K::STORE, key, uid);
            }
            None => self.remove::<K>(&key),
        };
        Ok(())
    }

    /// Removes one object.
    pub fn delete<K: IndexKind>(&mut self, object: &K) -> Result<(), IndexError> {
        let key = object.key()?;
        self.remove::<K>(&key);
        Ok(())
    }

    /// Removes the object of kind `K` at `key`, if there is one.
    pub fn remove<K: IndexKind>(&mut self, key: &ObjectKey) {
        if let Some(old) = K::store(self).remove(key) {
            K::changed(self, key, Some(&old));
        }
        self.uids.remove(&(K::STORE, key.clone()));
    }

    /// Takes what changed since the last call, leaving nothing recorded.
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// The EndpointSlices of one Service (its namespace and name), in key order.
    pub fn slices_of<'a>(&'a self, service: &ObjectKey) -> impl Iterator<Item = (&'a ObjectKey, &'a SliceModel)> {
        self.slices_by_service.of(service).filter_map(|key| Some((key, self.slices.get(key)?)))
    }

    /// The `metadata.uid` of an indexed object of `kind` (its store, for the kinds read into two), if it had one.
    pub fn uid(&self, kind: &'static str, key: &ObjectKey) -> Option<&str> {
        self.uids.get(&(kind, key.clone())).map(String::as_str)
    }

    fn set_uid(&mut self, kind: &'static str, key: ObjectKey, uid: Option<String>) {
        match uid.filter(|uid| !uid.is_empty()) {
            Some(uid) => _ = self.uids.insert((kind, key), uid),
            None => _ = self.uids.remove(&(kind, key)),
        }
    }

    /// Replaces every object of a kind with a complete listing: what is not listed was deleted meanwhile. Objects
    /// that cannot be keyed are skipped and returned, so the caller can say why.
    pub fn reset<K: IndexKind>(&mut self, objects: Vec<K>) -> Vec<IndexError> {
        let mut errors = Vec::new();
        let mut previous = std::mem::take(K::store(self));
        let mut next = BTreeMap::new();
        let mut uids = Vec::new();
        for object in objects {
            match object.key() {
                Ok(key) => {
                    let old = previous.remove(&key);
                    let uid = object.metadata().uid.clone();
                    if let Some(model) = object.convert(&key, old.as_ref()) {
                        uids.push((key.clone(), uid));
                        next.insert(key, model);
                    }
                }
                Err(error) => errors.push(error),
            }
        }
        *K::store(self) = next;
        K::relisted(self);
        self.uids.retain(|(store, _), _| *store != K::STORE);
        for (key, uid) in uids {
            self.set_uid(K::STORE, key, uid);
        }
        errors
    }
}

macro_rules! index_kind {
    ($ty:ty, $kind:literal, $field:ident, $namespaced:literal) => {
        impl IndexKind for $ty {
            const KIND: &'static str = $kind;
            const NAMESPACED: bool = $namespaced;
            type Model = <$ty as convert::Convert>::Model;

            fn store(index: &mut Index) -> &mut BTreeMap<ObjectKey, Self::Model> {
                &mut index.$field
            }
            fn metadata(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }
            fn convert(self, key: &ObjectKey, previous: Option<&Self::Model>) -> Option<Self::Model> {
                convert::Convert::convert(self, key, previous)
            }
        }
    };
}

index_kind!(IngressClass, "IngressClass", classes, false);
index_kind!(Ingress, "Ingress", ingresses, true);
index_kind!(Service, "Service", services, true);
index_kind!(Secret, "Secret", secrets, true);
index_kind!(UploadPolicy, "UploadPolicy", policies, true);

/// The one kind whose changes are followed without a rebuild: see [`Changes`].
impl IndexKind for EndpointSlice {
    const KIND: &'static str = "EndpointSlice";
    type Model = SliceModel;

    fn store(index: &mut Index) -> &mut BTreeMap<ObjectKey, Self::Model> {
        &mut index.slices
    }
    fn metadata(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &self.metadata
    }
    fn convert(self, key: &ObjectKey, previous: Option<&Self::Model>) -> Option<Self::Model> {
        convert::Convert::convert(self, key, previous)
    }
    fn changed(index: &mut Index, key: &ObjectKey, old: Option<&Self::Model>) {
        let services = index.slices_by_service.moved(key, old, index.slices.get(key));
        index.changes.services.extend(services.into_iter().flatten());
        index.changes.slice_events += 1;
    }
    fn relisted(index: &mut Index) {
        index.slices_by_service.rebuild(&index.slices);
        index.changes.rebuild(Self::STORE);
    }
}

impl IndexKind for OpaqueSecret {
    const KIND: &'static str = "Secret";
    const STORE: &'static str = "Secret/Opaque";
    type Model = CaSecretModel;

    fn store(index: &mut Index) -> &mut BTreeMap<ObjectKey, Self::Model> {
        &mut index.ca_secrets
    }
    fn metadata(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &self.0.metadata
    }
    fn convert(self, key: &ObjectKey, previous: Option<&Self::Model>) -> Option<Self::Model> {
        convert::Convert::convert(self, key, previous)
    }
}
