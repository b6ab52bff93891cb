//! The snapshot's `peers`: every endpoint of the `--peers-service` Service by its Pod's name, ready or not, at the
//! dataplane's port; other Services' endpoints never; endpoints without a Pod skipped.

use super::*;
use crate::index::PeerSlice;
use crate::translate::PeersConfig;
use holdfast_snapshot::Peer;

fn config() -> Config {
    let service = key("holdfast-system", "holdfast-pods");
    Config { peers: Some(PeersConfig { service, port: 8080 }), ..Config::default() }
}

/// An EndpointSlice of `service` in `namespace` of address type `family` (`IPv4`, `IPv6`, `FQDN`).
fn mk_peer_slice(namespace: &str, name: &str, service: &str, family: &str, endpoints: Value) -> EndpointSlice {
    let mut slice = mk_slice(namespace, name, service, &[("http", 8080)], endpoints);
    slice.address_type = family.to_string();
    slice
}

/// An endpoint of Pod `pod` (no targetRef when empty) at `address`, with `conditions`.
fn pod(pod: &str, address: &str, conditions: Value) -> Value {
    let mut endpoint = json!({"addresses": [address], "conditions": conditions});
    if !pod.is_empty() {
        endpoint["targetRef"] = json!({"kind": "Pod", "namespace": "holdfast-system", "name": pod});
    }
    endpoint
}

fn peer(address: &str) -> Peer {
    Peer { address: address.to_string(), port: 8080 }
}

fn peers(index: &Index, config: &Config) -> Vec<(String, Peer)> {
    let translation = translate(index, config);
    translation.snapshot.validate().expect("translation produced a snapshot the dataplane refuses");
    translation.snapshot.peers.into_iter().collect()
}

#[test]
fn every_endpoint_of_the_peers_service_is_a_peer_by_pod_name_ready_or_not() {
    let mut index = base_index();
    let endpoints = json!([
        pod("holdfast-0", "10.1.0.10", json!({"ready": true})),
        pod("holdfast-1", "10.1.0.11", json!({"ready": false})),
        pod("holdfast-2", "10.1.0.12", json!({"ready": false, "serving": true, "terminating": true})),
    ]);
    add(&mut index, mk_peer_slice("holdfast-system", "holdfast-pods-abc", "holdfast-pods", "IPv4", endpoints));
    let expected = [("holdfast-0", "10.1.0.10"), ("holdfast-1", "10.1.0.11"), ("holdfast-2", "10.1.0.12")];
    let expected: Vec<_> = expected.iter().map(|(name, address)| (name.to_string(), peer(address))).collect();
    assert_eq!(peers(&index, &config()), expected);
    assert!(run(&index).snapshot.peers.is_empty(), "without --peers-service there are no peers");
}

#[test]
fn other_services_and_namespaces_give_no_peers() {
    let mut index = base_index();
    let endpoints = || json!([pod("holdfast-0", "10.1.0.10", json!({}))]);
    add(&mut index, mk_peer_slice("holdfast-system", "client-abc", "holdfast", "IPv4", endpoints()));
    add(&mut index, mk_peer_slice("apps", "holdfast-pods-abc", "holdfast-pods", "IPv4", endpoints()));
    let mut unlabelled = mk_peer_slice("holdfast-system", "stray", "holdfast-pods", "IPv4", endpoints());
    unlabelled.metadata.labels = None;
    add(&mut index, unlabelled);
    assert!(peers(&index, &config()).is_empty());
}

#[test]
fn endpoints_without_a_pod_or_an_ip_are_skipped() {
    let mut index = base_index();
    let mut node = pod("", "10.1.0.9", json!({}));
    node["targetRef"] = json!({"kind": "Node", "name": "node-1"});
    let endpoints = json!([
        pod("", "10.1.0.8", json!({})),
        node,
        {"addresses": ["10.1.0.7"], "targetRef": {"kind": "Pod", "name": ""}},
        pod("holdfast-0", "10.1.0.10", json!({})),
    ]);
    add(&mut index, mk_peer_slice("holdfast-system", "holdfast-pods-abc", "holdfast-pods", "IPv4", endpoints));
    let names = json!([pod("holdfast-1", "holdfast-1.example", json!({}))]);
    add(&mut index, mk_peer_slice("holdfast-system", "holdfast-pods-fqdn", "holdfast-pods", "FQDN", names));
    assert_eq!(peers(&index, &config()), [("holdfast-0".to_string(), peer("10.1.0.10"))]);
}

#[test]
fn ipv6_peers_keep_their_address_and_dual_stack_pods_are_reached_over_ipv4() {
    let mut index = base_index();
    let v6 = json!([pod("holdfast-0", "fd00::10", json!({})), pod("holdfast-1", "fd00::11", json!({}))]);
    add(&mut index, mk_peer_slice("holdfast-system", "holdfast-pods-v6", "holdfast-pods", "IPv6", v6));
    let v4 = json!([pod("holdfast-1", "10.1.0.11", json!({}))]);
    add(&mut index, mk_peer_slice("holdfast-system", "holdfast-pods-v4", "holdfast-pods", "IPv4", v4));
    let expected = vec![("holdfast-0".to_string(), peer("fd00::10")), ("holdfast-1".to_string(), peer("10.1.0.11"))];
    assert_eq!(peers(&index, &config()), expected);
}

#[test]
fn a_pod_in_two_slices_keeps_its_live_endpoint_whatever_the_order() {
    // A StatefulSet's pod comes back under the same name: its predecessor's endpoint may linger in another slice.
    let old = json!([pod("holdfast-0", "10.1.0.10", json!({"ready": false, "terminating": true}))]);
    let new = json!([pod("holdfast-0", "10.1.0.20", json!({"ready": false}))]);
    for (first, second) in [("a", "b"), ("b", "a")] {
        let mut index = base_index();
        add(&mut index, mk_peer_slice("holdfast-system", first, "holdfast-pods", "IPv4", old.clone()));
        add(&mut index, mk_peer_slice("holdfast-system", second, "holdfast-pods", "IPv4", new.clone()));
        assert_eq!(peers(&index, &config()), [("holdfast-0".to_string(), peer("10.1.0.20"))]);
    }
}

#[test]
fn slices_of_the_peers_watch_count_and_survive_a_relist_of_the_main_watch() {
    let mut index = base_index();
    let endpoints = json!([pod("holdfast-0", "10.1.0.10", json!({}))]);
    let slice = mk_peer_slice("holdfast-system", "holdfast-pods-abc", "holdfast-pods", "IPv4", endpoints);
    add(&mut index, PeerSlice(slice));
    assert!(index.reset::<EndpointSlice>(Vec::new()).is_empty());
    assert_eq!(peers(&index, &config()), [("holdfast-0".to_string(), peer("10.1.0.10"))]);
    let config = Config { peers: Some(PeersConfig { port: 9080, ..config().peers.unwrap() }), ..Config::default() };
    assert_eq!(peers(&index, &config)[0].1.port, 9080);
}
