//! Translation after EndpointSlice changes alone: the previous snapshot patched with the changed Services'
//! backends resolved again. One slice edit resolves one backend, and random slice edits applied this way always
//! give what a full translation of the same index gives.

use super::*;
use crate::index::{Changes, PeerSlice};
use crate::translate::{update, PeersConfig};
use std::sync::Arc;

/// `n` Ingresses `app-i` (host `app-i.test`), each to its Service `svc-i` (port `http` 80) with one EndpointSlice
/// of ten endpoints; every seventh Service also has port `grpc` 90, routed by name from a second path.
fn cluster(n: usize) -> Index {
    let mut index = Index::default();
    add(&mut index, mk_class("holdfast", true));
    for i in 0..n {
        let service = format!("svc-{i}");
        let mut rules = vec![rule(&format!("app-{i}.test"), "/", "Prefix", &service, json!(80))];
        if i % 7 == 0 {
            add(&mut index, mk_service("default", &service, &[("http", 80), ("grpc", 90)]));
            rules.push(rule(&format!("app-{i}.test"), "/rpc", "Prefix", &service, json!("grpc")));
        } else {
            add(&mut index, mk_service("default", &service, &[("http", 80)]));
        }
        add(&mut index, mk_ingress("default", &format!("app-{i}"), json!({"rules": rules})));
        add(&mut index, slice(&format!("{service}-1"), &service, i, 0));
    }
    index
}

/// Slice `name` of `service`, ten endpoints on ports `http` 8080 and `grpc` 9090; `seed` and `round` vary the
/// addresses and their readiness.
fn slice(name: &str, service: &str, seed: usize, round: usize) -> EndpointSlice {
    let endpoints: Vec<Value> = (0..10)
        .map(|e| {
            let address = format!("10.{}.{}.{}", seed % 250, round % 250, e + 1);
            json!({"addresses": [address], "conditions": {"ready": (seed + round + e) % 4 != 0}})
        })
        .collect();
    mk_slice("default", name, service, &[("http", 8080), ("grpc", 9090)], json!(endpoints))
}

/// The index's changes, and a translation from `previous` after them.
fn next(previous: &Translation, index: &mut Index, config: &Config) -> (Translation, Option<usize>, Changes) {
    let changes = index.take_changes();
    let update = update(Some(previous), index, config, &changes);
    (update.translation, update.patched_backends, changes)
}

#[test]
fn one_slice_edit_resolves_only_the_backend_of_its_service() {
    let mut index = cluster(50);
    let config = Config::default();
    index.take_changes();
    let before = translate(&index, &config);
    assert_eq!(before.snapshot.backends.len(), 50 + 8, "one backend per Service port routed");

    add(&mut index, slice("svc-3-1", "svc-3", 3, 1));
    let (after, patched, changes) = next(&before, &mut index, &config);
    assert_eq!(changes.services.iter().map(ToString::to_string).collect::<Vec<_>>(), ["default/svc-3"]);
    assert_eq!(patched, Some(1), "one backend resolved again");
    assert_eq!(after, translate(&index, &config));
    assert_eq!(after.snapshot.backends["default/svc-3:80"].endpoints[0].address, "10.3.1.1");
    assert_ne!(after, before);
    // Everything but that backend is shared with the translation it patched, not copied.
    assert!(Arc::ptr_eq(&after.snapshot.hosts, &before.snapshot.hosts));
    assert!(Arc::ptr_eq(&after.snapshot.policies, &before.snapshot.policies));
    assert!(Arc::ptr_eq(&after.report, &before.report));
    let copied: Vec<&String> = after
        .snapshot
        .backends
        .iter()
        .filter(|(name, backend)| !Arc::ptr_eq(backend, &before.snapshot.backends[*name]))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(copied, ["default/svc-3:80"]);

    // Both backends of a Service with two routed ports.
    add(&mut index, slice("svc-14-1", "svc-14", 14, 1));
    let (again, patched, _) = next(&after, &mut index, &config);
    assert_eq!(patched, Some(2));
    assert_eq!(again, translate(&index, &config));
}

#[test]
fn any_change_but_a_slice_and_any_relist_translate_in_full() {
    let mut index = cluster(5);
    let config = Config::default();
    index.take_changes();
    let before = translate(&index, &config);
    add(&mut index, mk_service("default", "svc-1", &[("http", 81)]));
    let (after, patched, changes) = next(&before, &mut index, &config);
    assert_eq!((patched, changes.rebuild), (None, Some("Service")));
    assert_eq!(after, translate(&index, &config));

    index.reset(vec![slice("svc-2-1", "svc-2", 2, 9)]);
    let (after_relist, patched, _) = next(&after, &mut index, &config);
    assert_eq!(patched, None, "a relist rebuilds");
    assert_eq!(after_relist.snapshot.backends["default/svc-1:80"].endpoints.len(), 0, "its slice was not listed");
    assert_eq!(after_relist, translate(&index, &config));
}

#[test]
fn a_slice_edit_of_the_peers_service_updates_the_peers() {
    let mut index = cluster(3);
    let service = ObjectKey::new("default", "svc-1");
    let config = Config { peers: Some(PeersConfig { service, port: 8080 }), ..Config::default() };
    let peer = |pod: &str, address: &str| json!([{"addresses": [address], "targetRef": {"kind": "Pod", "name": pod}}]);
    add(&mut index, mk_slice("default", "svc-1-1", "svc-1", &[("http", 8080)], peer("holdfast-0", "10.9.0.1")));
    index.take_changes();
    let before = translate(&index, &config);
    add(&mut index, mk_slice("default", "svc-1-1", "svc-1", &[("http", 8080)], peer("holdfast-0", "10.9.0.2")));
    let (after, patched, _) = next(&before, &mut index, &config);
    assert_eq!(patched, Some(1));
    assert_eq!(after.snapshot.peers["holdfast-0"].address, "10.9.0.2");
    assert_eq!(after, translate(&index, &config));
    // The peers watch's own store is not followed slice by slice.
    add(&mut index, PeerSlice(mk_slice("default", "p", "svc-1", &[], peer("holdfast-1", "10.9.0.3"))));
    assert_eq!(next(&after, &mut index, &config).1, None);
}

/// A small deterministic generator (64-bit LCG): the test needs spread, not cryptographic quality, and must
/// replay the same sequence on every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

#[test]
fn random_slice_edits_patched_in_always_equal_a_full_translation() {
    const SERVICES: usize = 30;
    let config = Config::default();
    for seed in [1_u64, 7, 42] {
        let mut rng = Lcg(seed);
        let mut index = cluster(SERVICES);
        // Slices of a Service no Ingress routes to, and an Ingress to a Service that does not exist.
        add(
            &mut index,
            mk_ingress("default", "ghost", json!({"rules": [rule("ghost.test", "/", "Prefix", "nobody", json!(80))]})),
        );
        index.take_changes();
        let mut previous = translate(&index, &config);
        for round in 0..150 {
            for _ in 0..1 + rng.below(3) {
                // Services beyond SERVICES and "nobody" have no Ingress or no Service: their slices feed nothing.
                let service = match rng.below(SERVICES + 3) {
                    n if n < SERVICES => format!("svc-{n}"),
                    n if n == SERVICES => "nobody".to_string(),
                    n => format!("unrouted-{n}"),
                };
                let name = format!("slice-{}", rng.below(12));
                match rng.below(4) {
                    // Deleting a slice that is not there is a no-op, as a delete of an unknown object is.
                    0 => index.remove::<EndpointSlice>(&ObjectKey::new("default", &name)),
                    // An edit, which may also move the slice to another Service.
                    _ => add(&mut index, slice(&name, &service, rng.below(1000), round)),
                }
            }
            let (translation, patched, _) = next(&previous, &mut index, &config);
            assert!(patched.is_some(), "seed {seed} round {round}: slices alone were patched in");
            assert_eq!(translation, translate(&index, &config), "seed {seed} round {round}");
            previous = translation;
        }
    }
}

/// Not a timing assertion: prints what a full translation and a one-slice patch cost at 5,000 Ingresses
/// (`cargo test -p holdfast-controller --lib translation_cost -- --nocapture`), and checks they agree.
#[test]
fn translation_cost_at_5000_ingresses_full_and_after_one_slice_edit() {
    let mut index = cluster(5000);
    let config = Config::default();
    index.take_changes();
    let started = std::time::Instant::now();
    let full = translate(&index, &config);
    let full_time = started.elapsed();
    add(&mut index, slice("svc-4321-1", "svc-4321", 4321, 1));
    let started = std::time::Instant::now();
    let (patched, backends, _) = next(&full, &mut index, &config);
    let patch_time = started.elapsed();
    eprintln!("5000 Ingresses: full translation {full_time:?}; one-slice patch {patch_time:?} ({backends:?} backends)");
    assert_eq!(backends, Some(1));
    assert_eq!(patched, translate(&index, &config));
}
