//! Deltas: computed between two snapshots, applied whole or not at all, with the same verdict as the full check.

use super::*;
use crate::{Endpoint, HostRule, PathRule, PathType, RouteTarget};

fn backend(ports: &[u16]) -> Backend {
    let endpoints = ports
        .iter()
        .map(|&port| Endpoint { address: "10.0.0.1".into(), port, ready: true, serving: true, terminating: false })
        .collect();
    Backend { endpoints, ..Default::default() }
}

fn route(host: &str, backend: &str) -> HostRule {
    let target =
        RouteTarget { backend: backend.into(), policy: None, source: None, redirect_https: false, ingress: None };
    HostRule { host: host.into(), paths: vec![PathRule { path: "/".into(), path_type: PathType::Prefix, target }] }
}

/// Version 7: `a` and `b` routed, `spare` not.
fn base() -> Snapshot {
    let mut snapshot = Snapshot { version: 7, ..Default::default() };
    snapshot.hosts = vec![route("a.example", "a"), route("b.example", "b")].into();
    for (name, port) in [("a", 80), ("b", 81), ("spare", 82)] {
        snapshot.backends.insert(name.into(), backend(&[port]).into());
    }
    snapshot.validate().unwrap();
    snapshot
}

fn delta(base_version: u64, version: u64) -> SnapshotDelta {
    SnapshotDelta { base_version, version, ..Default::default() }
}

#[test]
fn a_delta_between_two_snapshots_rebuilds_the_newer_one() {
    let old = base();
    let mut new = old.clone();
    new.version = 9;
    new.backends.insert("a".into(), backend(&[80, 90]).into());
    new.backends.insert("c".into(), backend(&[83]).into());
    new.backends.remove("spare");
    let delta = SnapshotDelta::between(&old, &new).unwrap();
    assert_eq!(delta.backends.keys().collect::<Vec<_>>(), ["a", "c"], "only what changed travels");
    assert_eq!(delta.removed_backends, ["spare"]);
    assert_eq!((delta.base_version, delta.version), (7, 9));
    assert_eq!(delta.apply(&old).unwrap(), new);
}

#[test]
fn no_delta_when_anything_but_backends_differs() {
    let old = base();
    let mut new = old.clone();
    std::sync::Arc::make_mut(&mut new.hosts).pop();
    assert!(SnapshotDelta::between(&old, &new).is_none());
    let mut new = old.clone();
    std::sync::Arc::make_mut(&mut new.policies).insert("p".into(), Default::default());
    assert!(SnapshotDelta::between(&old, &new).is_none());
    assert!(SnapshotDelta::between(&old, &old).unwrap().is_empty());
}

#[test]
fn a_delta_for_another_base_or_not_moving_forward_is_refused() {
    let mut snapshot = base();
    let err = delta(6, 8).apply_to(&mut snapshot).unwrap_err();
    assert!(matches!(err, DeltaError::BaseMismatch { base: 6, current: 7 }), "{err}");
    assert!(err.to_string().contains("send the full snapshot"), "{err}");
    let err = delta(7, 7).apply_to(&mut snapshot).unwrap_err();
    assert!(matches!(err, DeltaError::NotNewer { base: 7, version: 7 }), "{err}");
    assert_eq!(snapshot, base());
}

#[test]
fn an_invalid_delta_changes_nothing() {
    let mut bad_address = delta(7, 8);
    bad_address.backends.insert("a".into(), backend(&[80]).into());
    let mut pod_name = backend(&[81]);
    pod_name.endpoints[0].address = "pod-b".into();
    bad_address.backends.insert("b".into(), pod_name.into());
    let mut routed_removed = delta(7, 8);
    routed_removed.backends.insert("c".into(), backend(&[83]).into());
    routed_removed.removed_backends = vec!["spare".into(), "b".into()];
    let mut both = delta(7, 8);
    both.backends.insert("spare".into(), backend(&[1]).into());
    both.removed_backends = vec!["spare".into()];
    let cases = [
        (bad_address, "not an IP address"),
        (routed_removed, "would leave hosts[1].paths[0] pointing at nothing"),
        (both, "both upserted and removed"),
    ];
    for (delta, expected) in cases {
        let mut snapshot = base();
        let err = delta.apply_to(&mut snapshot).unwrap_err();
        assert!(err.to_string().contains(expected), "{err} should say {expected:?}");
        assert_eq!(snapshot, base(), "a refused delta must leave the snapshot as it was");
        // The same verdict as the full check of the naively patched snapshot.
        let mut naive = base();
        delta.patch(&mut naive);
        let whole = naive.validate();
        assert!(whole.is_err() || expected.contains("both"), "the full check accepted what the delta refused");
    }
}

#[test]
fn deltas_travel_as_camel_case_json_and_unknown_fields_are_refused() {
    let mut d = delta(7, 8);
    d.backends.insert("a".into(), backend(&[80]).into());
    d.removed_backends = vec!["spare".into()];
    let json = serde_json::to_string(&d).unwrap();
    assert!(json.contains(r#""baseVersion":7"#) && json.contains(r#""removedBackends":["spare"]"#), "{json}");
    assert_eq!(SnapshotDelta::from_json(json.as_bytes()).unwrap(), d);
    let err = SnapshotDelta::from_json(br#"{"baseVersion": 1, "version": 2, "hosts": []}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field `hosts`"), "{err}");
}

#[test]
fn the_delta_of_every_combination_of_kept_copied_changed_added_and_removed_backends_is_exact() {
    use std::sync::Arc;
    let names = ["a", "b", "c", "d"];
    let (v1, v2) = (Arc::new(backend(&[1])), Arc::new(backend(&[2])));
    // Per name, (in old, in new): absent, the same Arc, an equal copy, a different backend.
    type State<'a> = (Option<&'a Arc<Backend>>, Option<Arc<Backend>>);
    let states: [State; 6] = [
        (None, None),
        (None, Some(v2.clone())),
        (Some(&v1), None),
        (Some(&v1), Some(v1.clone())),
        (Some(&v1), Some(Arc::new(backend(&[1])))),
        (Some(&v1), Some(v2.clone())),
    ];
    for case in 0..states.len().pow(names.len() as u32) {
        let (mut old, mut new) = (Snapshot { version: 1, ..Default::default() }, Snapshot::default());
        new.version = 2;
        let (mut upserted, mut removed) = (Vec::new(), Vec::new());
        for (i, name) in names.iter().enumerate() {
            let (was, now) = &states[case / states.len().pow(i as u32) % states.len()];
            if let Some(was) = was {
                old.backends.insert(name.to_string(), Arc::clone(was));
            }
            if let Some(now) = now {
                new.backends.insert(name.to_string(), now.clone());
            }
            match (was, now) {
                (Some(_), None) => removed.push(*name),
                (was, Some(now)) if was.map(|w| **w != **now).unwrap_or(true) => upserted.push(*name),
                _ => {}
            }
        }
        let delta = SnapshotDelta::between(&old, &new).unwrap();
        assert_eq!(delta.backends.keys().collect::<Vec<_>>(), upserted, "case {case}");
        assert_eq!(delta.removed_backends, removed, "case {case}");
        assert_eq!(delta.apply(&old).unwrap(), new, "case {case}");
    }
}
