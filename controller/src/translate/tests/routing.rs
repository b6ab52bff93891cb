//! Hosts, paths, ports, endpoints, default backends and conflicts.

use super::*;
use holdfast_snapshot::{Endpoint, PathType};

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
fn translates_hosts_paths_and_path_types() {
    let mut index = base_index();
    let rules = json!([
        rule("Photos.Example.com", "/upload", "Prefix", "web", json!(80)),
        rule("photos.example.com", "/health", "Exact", "web", json!(80)),
        rule("*.example.com", "/", "Prefix", "web", json!("http")),
        rule("", "/any", "ImplementationSpecific", "web", json!(80)),
    ]);
    add(&mut index, mk_ingress("default", "photos", json!({"rules": rules})));
    let t = run(&index);
    let backend = "default/web:80";
    let policy = "default";
    assert_eq!(
        routes(&t),
        [
            (s(""), s("/any"), s(backend), s(policy)),
            (s("*.example.com"), s("/"), s(backend), s(policy)),
            (s("photos.example.com"), s("/health"), s(backend), s(policy)),
            (s("photos.example.com"), s("/upload"), s(backend), s(policy)),
        ]
    );
    let photos = t.snapshot.hosts.iter().find(|h| h.host == "photos.example.com").unwrap();
    let types: Vec<_> = photos.paths.iter().map(|p| (p.path.as_str(), p.path_type)).collect();
    assert_eq!(types, [("/upload", PathType::Prefix), ("/health", PathType::Exact)]);
    assert_eq!(photos.paths[0].target.source.as_deref(), Some("ingress default/photos"));
    assert!(t.report.warnings.is_empty(), "{:?}", t.report.warnings);
}

#[test]
fn implementation_specific_without_path_matches_everything() {
    let mut index = base_index();
    let spec = json!({"rules": [{"http": {"paths": [
        {"pathType": "ImplementationSpecific", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
    ]}}]});
    add(&mut index, mk_ingress("default", "all", spec));
    assert_eq!(routes(&run(&index)), [(s(""), s("/"), s("default/web:80"), s("default"))]);
}

#[test]
fn resolves_service_ports_by_number_or_name_through_slice_port_names() {
    let cases: [(&str, Value, &str, u16); 4] = [
        ("by number", json!(80), "default/api:80", 8080),
        ("by name", json!("http"), "default/api:80", 8080),
        ("second port by number", json!(9000), "default/api:9000", 9100),
        ("second port by name", json!("admin"), "default/api:9000", 9100),
    ];
    for (case, port, backend, endpoint_port) in cases {
        let mut index = base_index();
        add(&mut index, mk_service("default", "api", &[("http", 80), ("admin", 9000)]));
        let endpoints = json!([{"addresses": ["10.1.0.1"]}]);
        add(&mut index, mk_slice("default", "api-a", "api", &[("http", 8080), ("admin", 9100)], endpoints));
        add(&mut index, mk_ingress("default", "api", json!({"rules": [rule("api.test", "/", "Prefix", "api", port)]})));
        let t = run(&index);
        assert_eq!(routes(&t)[0].2, backend, "{case}");
        let endpoints = &t.snapshot.backends[backend].endpoints;
        assert_eq!(endpoints.iter().map(|e| e.port).collect::<Vec<_>>(), [endpoint_port], "{case}");
    }
}

#[test]
fn single_unnamed_service_port_matches_unnamed_slice_port() {
    let mut index = base_index();
    add(&mut index, mk_service("default", "plain", &[("", 80)]));
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "plain-x", "namespace": "default", "labels": {"kubernetes.io/service-name": "plain"}},
        "addressType": "IPv4", "ports": [{"port": 3000}], "endpoints": [{"addresses": ["10.2.0.1"]}]
    }))
    .unwrap();
    add(&mut index, slice);
    add(&mut index, mk_ingress("default", "p", json!({"rules": [rule("", "/", "Prefix", "plain", json!(80))]})));
    let t = run(&index);
    assert_eq!(t.snapshot.backends["default/plain:80"].endpoints[0].port, 3000);
}

#[test]
fn endpoint_conditions_follow_the_endpointslice_api() {
    let mut index = base_index();
    let endpoints = json!([
        {"addresses": ["10.0.0.2"]},
        {"addresses": ["10.0.0.3"], "conditions": {"ready": false}},
        {"addresses": ["10.0.0.4"], "conditions": {"ready": false, "serving": true, "terminating": true}},
        {"addresses": ["10.0.0.1"]},
        {"addresses": ["not-an-ip"]},
        {"addresses": ["fd00::1", "10.9.9.9"]},
    ]);
    add(&mut index, mk_slice("default", "web-2", "web", &[("http", 8080)], endpoints));
    add(&mut index, mk_slice("default", "other", "other", &[("http", 8080)], json!([{"addresses": ["10.7.0.1"]}])));
    let mut fqdn = mk_slice("default", "web-fqdn", "web", &[("http", 8080)], json!([{"addresses": ["a.example"]}]));
    fqdn.address_type = "FQDN".into();
    add(&mut index, fqdn);
    add(&mut index, mk_ingress("default", "w", json!({"rules": [rule("", "/", "Prefix", "web", json!(80))]})));
    let t = run(&index);
    let ep = |address: &str, ready, serving, terminating| Endpoint {
        address: address.into(),
        port: 8080,
        ready,
        serving,
        terminating,
    };
    assert_eq!(
        t.snapshot.backends["default/web:80"].endpoints,
        [
            ep("10.0.0.1", true, true, false),
            ep("10.0.0.2", true, true, false),
            ep("10.0.0.3", false, false, false),
            ep("10.0.0.4", false, true, true),
            ep("fd00::1", true, true, false),
        ]
    );
}

#[test]
fn deleted_and_relisted_slices_take_their_endpoints_with_them() {
    let mut index = base_index();
    add(&mut index, mk_ingress("default", "w", json!({"rules": [rule("", "/", "Prefix", "web", json!(80))]})));
    let slice = mk_slice("default", "web-1", "web", &[("http", 8080)], json!([{"addresses": ["10.0.0.1"]}]));
    index.delete(&slice).unwrap();
    assert!(run(&index).snapshot.backends["default/web:80"].endpoints.is_empty());
    add(&mut index, slice);
    let replacement = mk_slice("default", "web-9", "web", &[("http", 8080)], json!([{"addresses": ["10.0.0.9"]}]));
    assert!(index.reset(vec![replacement]).is_empty());
    let t = run(&index);
    assert_eq!(t.snapshot.backends["default/web:80"].endpoints[0].address, "10.0.0.9");
    assert_eq!(t.snapshot.backends["default/web:80"].endpoints.len(), 1);
}

#[test]
fn default_backend_is_used_and_the_oldest_wins() {
    let mut index = base_index();
    add(&mut index, mk_service("default", "fallback", &[("http", 80)]));
    let backend = |svc: &str| json!({"defaultBackend": {"service": {"name": svc, "port": {"number": 80}}}});
    add(&mut index, mk_ingress_meta("default", "a-new", created("2024-02-01T00:00:00Z"), backend("web")));
    add(&mut index, mk_ingress_meta("default", "z-old", created("2024-01-01T00:00:00Z"), backend("fallback")));
    let t = run(&index);
    let default = t.snapshot.default_backend.as_ref().unwrap();
    assert_eq!(default.backend, "default/fallback:80");
    assert_eq!(reasons(&t, "Ingress", "default", "a-new"), ["DefaultBackendConflict"]);
}

#[test]
fn conflicting_routes_go_to_the_oldest_ingress_and_the_loser_keeps_its_other_routes() {
    let cases = [
        ("same path", "/up", "Prefix", "/up", "Prefix", true),
        ("trailing slash is the same prefix", "/up", "Prefix", "/up/", "Prefix", true),
        ("exact and prefix differ", "/up", "Prefix", "/up", "Exact", false),
    ];
    for (case, old_path, old_type, new_path, new_type, conflict) in cases {
        let mut index = base_index();
        add(&mut index, mk_service("default", "other", &[("http", 80)]));
        let old = json!({"rules": [rule("a.test", old_path, old_type, "web", json!(80))]});
        let new = json!({"rules": [
            rule("a.test", new_path, new_type, "other", json!(80)),
            rule("b.test", "/", "Prefix", "other", json!(80)),
        ]});
        // Names sort the other way round, so only the creation time can make "z-old" win.
        add(&mut index, mk_ingress_meta("default", "a-new", created("2024-05-01T00:00:00Z"), new));
        add(&mut index, mk_ingress_meta("default", "z-old", created("2023-05-01T00:00:00Z"), old));
        let t = run(&index);
        let a: Vec<_> = routes(&t).into_iter().filter(|r| r.0 == "a.test").collect();
        assert_eq!(a.len(), if conflict { 1 } else { 2 }, "{case}");
        assert!(a.iter().any(|r| r.1 == old_path && r.2 == "default/web:80"), "{case}: the oldest keeps its route");
        assert!(routes(&t).iter().any(|r| r.0 == "b.test"), "{case}: loser's other routes stay");
        let expected: &[&str] = if conflict { &["RouteConflict"] } else { &[] };
        assert_eq!(reasons(&t, "Ingress", "default", "a-new"), expected, "{case}");
    }
}

#[test]
fn conflicts_without_creation_times_resolve_by_namespace_and_name() {
    let mut index = base_index();
    add(&mut index, mk_service("default", "other", &[("http", 80)]));
    add(&mut index, mk_ingress("default", "b", json!({"rules": [rule("x.test", "/", "Prefix", "other", json!(80))]})));
    add(&mut index, mk_ingress("default", "a", json!({"rules": [rule("x.test", "/", "Prefix", "web", json!(80))]})));
    let t = run(&index);
    assert_eq!(routes(&t)[0].2, "default/web:80");
    assert_eq!(reasons(&t, "Ingress", "default", "b"), ["RouteConflict"]);
    assert_eq!(run(&index), t, "translation is deterministic");
}

#[test]
fn https_redirect_is_off_unless_an_annotation_asks_for_it() {
    let cases: [(&str, Value, bool, usize); 6] = [
        ("no annotation", json!({}), false, 0),
        ("holdfast", json!({"holdfast.io/ssl-redirect": "true"}), true, 0),
        ("nginx force", json!({"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"}), true, 0),
        ("nginx explicit", json!({"nginx.ingress.kubernetes.io/ssl-redirect": "true"}), true, 0),
        (
            "holdfast wins",
            json!({"holdfast.io/ssl-redirect": "false", "nginx.ingress.kubernetes.io/force-ssl-redirect": "true"}),
            false,
            0,
        ),
        ("bad value", json!({"holdfast.io/ssl-redirect": "yes"}), false, 1),
    ];
    for (case, annotations, redirect, warnings) in cases {
        let mut index = base_index();
        let spec = json!({"rules": [rule("a.test", "/", "Prefix", "web", json!(80))]});
        add(&mut index, mk_ingress_meta("default", "i", json!({"annotations": annotations}), spec));
        let t = run(&index);
        assert_eq!(t.snapshot.hosts[0].paths[0].target.redirect_https, redirect, "{case}");
        assert_eq!(t.report.warnings.len(), warnings, "{case}");
    }
}
