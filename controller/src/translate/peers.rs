//! The installation's dataplanes, for the snapshot's `peers`: every endpoint of the peers Service (a StatefulSet's
//! governing Service) by the name of its Pod, which is the instance name the dataplane writes into the ids of the
//! resumable uploads it owns. Endpoints that are not ready count too: a replica that is starting (or draining)
//! still owns the uploads on its volume, and the dataplane answers 503 while a peer does not answer.

use crate::index::{Index, ObjectKey, SliceEndpointModel, SliceModel};
use holdfast_snapshot::Peer;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Where peers come from: `--peers-service` and `--peers-port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeersConfig {
    /// The Service whose EndpointSlices list the installation's pods.
    pub service: ObjectKey,
    /// The dataplane's plain client listener on every pod.
    pub port: u16,
}

/// Every Pod among the Service's endpoints, at its address. A Pod found twice (in the IPv4 and the IPv6 slice of a
/// dual-stack Service, or in two slices while they are rebalanced) keeps its best endpoint by [`rank`].
pub fn peers(index: &Index, config: &PeersConfig) -> BTreeMap<String, Peer> {
    let service = &config.service;
    let of_service = |(key, slice): &(&ObjectKey, &SliceModel)| {
        key.namespace == service.namespace && slice.service.as_deref() == Some(service.name.as_str())
    };
    let mut best: BTreeMap<&str, (Rank, IpAddr)> = BTreeMap::new();
    // The peers watch only fills its store when the main watch cannot see the Service, so a slice is in one store.
    let slices = index.slices_of(service).chain(index.peer_slices.iter().filter(of_service));
    for (_, slice) in slices.filter(|(_, slice)| slice.address_type != "FQDN") {
        for endpoint in &slice.endpoints {
            let Some(pod) = endpoint.pod.as_deref() else { continue };
            // The API treats an endpoint's addresses as fungible and tells consumers to use the first.
            let Some(address) = endpoint.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) else { continue };
            let candidate = (rank(endpoint, address), address);
            if best.get(pod).is_none_or(|current| candidate < *current) {
                best.insert(pod, candidate);
            }
        }
    }
    best.into_iter()
        .map(|(pod, (_, address))| (pod.to_string(), Peer { address: address.to_string(), port: config.port }))
        .collect()
}

/// Lower is better: an endpoint that is not terminating, then a ready one (a Pod's new endpoint over the last one of
/// its predecessor by the same name), then IPv4, which the chart's dataplane listens on (`0.0.0.0`); the address
/// last, so that the choice never depends on the order slices arrive in.
type Rank = (bool, bool, bool);

fn rank(endpoint: &SliceEndpointModel, address: IpAddr) -> Rank {
    (endpoint.terminating, !endpoint.ready, !address.is_ipv4())
}
