//! EndpointSlices of the peers Service (`--peers-service`) when the main EndpointSlice watch cannot see them: with
//! `--watch-namespace` set to another namespace than the peers Service's, one more watch reads that Service's slices
//! alone. They go into a store of their own because each watch relists on its own: a relist of one must not drop
//! the other's slices.

use super::convert::Convert;
use super::model::{ObjectKey, SliceModel};
use super::{Index, IndexKind};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::BTreeMap;

/// An EndpointSlice read by the peers watch: the same API object, indexed into [`Index::peer_slices`].
#[derive(Debug, Clone)]
pub struct PeerSlice(pub EndpointSlice);

impl From<EndpointSlice> for PeerSlice {
    fn from(slice: EndpointSlice) -> Self {
        PeerSlice(slice)
    }
}

impl IndexKind for PeerSlice {
    const KIND: &'static str = "EndpointSlice";
    const STORE: &'static str = "EndpointSlice/peers";
    type Model = SliceModel;

    fn store(index: &mut Index) -> &mut BTreeMap<ObjectKey, Self::Model> {
        &mut index.peer_slices
    }
    fn metadata(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &self.0.metadata
    }
    fn convert(self, key: &ObjectKey, previous: Option<&Self::Model>) -> Option<Self::Model> {
        Convert::convert(self.0, key, previous)
    }
}
