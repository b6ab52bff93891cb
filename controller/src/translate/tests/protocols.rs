//! The protocol spoken to a backend: the Service port's `appProtocol`, ingress-nginx's `backend-protocol` over it,
//! their disagreements, and the backend names that keep one snapshot backend per (port, protocol, TLS settings).

use super::*;
use holdfast_snapshot::{Backend, UpstreamProtocol, UpstreamTls};
use UpstreamProtocol::{Http1, Http2};

/// An Ingress routing `/NAME` to `web`:80, with these annotations (names without the nginx prefix).
pub fn ingress_to_web(name: &str, nginx: &[(&str, &str)]) -> Ingress {
    let annotations: serde_json::Map<String, Value> =
        nginx.iter().map(|(k, v)| (format!("nginx.ingress.kubernetes.io/{k}"), json!(v))).collect();
    let spec = json!({"rules": [rule("", &format!("/{name}"), "Prefix", "web", json!(80))]});
    mk_ingress_meta("default", name, json!({"annotations": annotations}), spec)
}

/// The backend name and backend of the route at `path`.
pub fn backend_at(t: &Translation, path: &str) -> (String, Backend) {
    let rule = t.snapshot.hosts.iter().flat_map(|h| &h.paths).find(|p| p.path == path);
    let name = rule.unwrap_or_else(|| panic!("no route {path}: {:?}", t.report.warnings)).target.backend.clone();
    let backend = Backend::clone(&t.snapshot.backends[&name]);
    (name, backend)
}

/// The world of [`base_index`] with `web`'s port carrying `app` as its `appProtocol`.
fn index_with_app_protocol(app: Option<&str>) -> Index {
    let mut index = base_index();
    add(&mut index, mk_service_app("default", "web", app));
    index
}

fn default_tls() -> Option<UpstreamTls> {
    Some(UpstreamTls::new("web.default.svc"))
}

#[test]
fn each_known_app_protocol_chooses_its_protocol_and_an_unknown_one_falls_back_to_http1_with_a_warning() {
    let cases: [(Option<&str>, UpstreamProtocol, bool, &str); 12] = [
        (None, Http1, false, "default/web:80"),
        (Some("http"), Http1, false, "default/web:80"),
        (Some("kubernetes.io/ws"), Http1, false, "default/web:80"),
        (Some("https"), Http1, true, "default/web:80+tls"),
        (Some("kubernetes.io/wss"), Http1, true, "default/web:80+tls"),
        (Some("h2c"), Http2, false, "default/web:80+h2"),
        (Some("kubernetes.io/h2c"), Http2, false, "default/web:80+h2"),
        (Some("grpc"), Http2, false, "default/web:80+h2"),
        // Unknown: Kubernetes compares these case-sensitively, and Holdfast does not guess.
        (Some("HTTPS"), Http1, false, "default/web:80"),
        (Some("GRPC"), Http1, false, "default/web:80"),
        (Some("kubernetes.io/grpc-web"), Http1, false, "default/web:80"),
        (Some("example.com/custom"), Http1, false, "default/web:80"),
    ];
    for (app, protocol, tls, expected_name) in cases {
        let mut index = index_with_app_protocol(app);
        add(&mut index, ingress_to_web("i", &[]));
        let t = run(&index);
        let (name, backend) = backend_at(&t, "/i");
        assert_eq!(name, expected_name, "{app:?}");
        assert_eq!(backend.protocol, protocol, "{app:?}");
        assert_eq!(backend.tls, if tls { default_tls() } else { None }, "{app:?}");
        assert_eq!(backend.endpoints.len(), 1, "{app:?}: the endpoints stay");
        let known = protocol != Http1 || tls || matches!(app, None | Some("http" | "kubernetes.io/ws"));
        let warnings = t.report.warnings_for("Ingress", &key("default", "i"));
        if known {
            assert!(warnings.is_empty(), "{app:?}: {warnings:?}");
        } else {
            assert_eq!(warnings.len(), 1, "{app:?}: {warnings:?}");
            assert_eq!(warnings[0].reason.as_str(), "UnsupportedAppProtocol");
            let message = &warnings[0].message;
            assert!(message.contains(app.unwrap()) && message.contains("HTTP/1.1 is used"), "{message}");
        }
    }
}

#[test]
fn each_backend_protocol_value_chooses_its_protocol_and_refused_ones_leave_app_protocol_to_decide() {
    // (annotation, the port's appProtocol, protocol, tls, name, warning)
    type Case = (&'static str, Option<&'static str>, UpstreamProtocol, bool, &'static str, Option<&'static str>);
    let cases: [Case; 13] = [
        ("HTTP", None, Http1, false, "default/web:80", None),
        ("HTTPS", None, Http1, true, "default/web:80+tls", None),
        ("GRPC", None, Http2, false, "default/web:80+h2", None),
        ("GRPCS", None, Http2, true, "default/web:80+h2+tls", None),
        // ingress-nginx trims and upper-cases the value.
        ("grpcs", None, Http2, true, "default/web:80+h2+tls", None),
        (" Https ", None, Http1, true, "default/web:80+tls", None),
        ("AUTO_HTTP", None, Http1, false, "default/web:80", Some("UnsupportedBackendProtocol")),
        ("AUTO_HTTP", Some("kubernetes.io/h2c"), Http2, false, "default/web:80+h2", Some("UnsupportedBackendProtocol")),
        ("FCGI", Some("https"), Http1, true, "default/web:80+tls", Some("UnsupportedBackendProtocol")),
        ("AJP", None, Http1, false, "default/web:80", Some("UnsupportedBackendProtocol")),
        ("HTTP2", Some("grpc"), Http2, false, "default/web:80+h2", Some("InvalidAnnotation")),
        ("h2c", None, Http1, false, "default/web:80", Some("InvalidAnnotation")),
        ("", None, Http1, false, "default/web:80", Some("InvalidAnnotation")),
    ];
    for (value, app, protocol, tls, expected_name, warning) in cases {
        let mut index = index_with_app_protocol(app);
        add(&mut index, ingress_to_web("i", &[("backend-protocol", value)]));
        let t = run(&index);
        let (name, backend) = backend_at(&t, "/i");
        let case = format!("{value:?} over {app:?}");
        assert_eq!((name.as_str(), backend.protocol), (expected_name, protocol), "{case}");
        assert_eq!(backend.tls, if tls { default_tls() } else { None }, "{case}");
        assert_eq!(reasons(&t, "Ingress", "default", "i"), Vec::from_iter(warning), "{case}");
        if warning.is_some() {
            let message = &t.report.warnings[0].message;
            assert!(message.contains("backend-protocol") && message.contains("appProtocol decides"), "{message}");
        }
    }
}

#[test]
fn the_annotation_wins_over_app_protocol_and_a_disagreement_names_both() {
    // (the port's appProtocol, annotation, protocol, tls, conflict reported)
    let cases = [
        (Some("https"), "GRPC", Http2, false, true),
        (Some("http"), "HTTPS", Http1, true, true),
        (Some("grpc"), "GRPCS", Http2, true, true),
        (Some("kubernetes.io/wss"), "HTTP", Http1, false, true),
        (Some("grpc"), "GRPC", Http2, false, false),
        (Some("h2c"), "grpc", Http2, false, false),
        (Some("https"), "HTTPS", Http1, true, false),
        (Some("kubernetes.io/ws"), "HTTP", Http1, false, false),
        (None, "GRPCS", Http2, true, false),
        // An appProtocol the annotation overrides is not used, so it is neither a conflict nor reported unknown.
        (Some("kubernetes.io/grpc-web"), "GRPC", Http2, false, false),
    ];
    for (app, value, protocol, tls, conflict) in cases {
        let mut index = index_with_app_protocol(app);
        add(&mut index, ingress_to_web("i", &[("backend-protocol", value)]));
        let t = run(&index);
        let (_, backend) = backend_at(&t, "/i");
        let case = format!("{value:?} over {app:?}");
        assert_eq!((backend.protocol, backend.tls.is_some()), (protocol, tls), "{case}");
        let warnings = t.report.warnings_for("Ingress", &key("default", "i"));
        if conflict {
            assert_eq!(warnings.len(), 1, "{case}: {warnings:?}");
            assert_eq!(warnings[0].reason.as_str(), "BackendProtocolConflict", "{case}");
            let message = &warnings[0].message;
            assert!(message.contains(value) && message.contains(app.unwrap()), "{case}: {message}");
            assert!(message.contains("the annotation wins"), "{message}");
        } else {
            assert!(warnings.is_empty(), "{case}: {warnings:?}");
        }
    }
}

#[test]
fn ingresses_with_the_same_protocol_share_one_backend_and_different_ones_get_their_own() {
    let mut index = base_index();
    add(&mut index, ingress_to_web("plain", &[]));
    add(&mut index, ingress_to_web("grpc-a", &[("backend-protocol", "GRPC")]));
    add(&mut index, ingress_to_web("grpc-b", &[("backend-protocol", "grpc")]));
    add(&mut index, ingress_to_web("https-a", &[("backend-protocol", "HTTPS")]));
    add(&mut index, ingress_to_web("https-b", &[("backend-protocol", "HTTPS")]));
    add(&mut index, ingress_to_web("verified", &[("backend-protocol", "HTTPS"), ("proxy-ssl-verify", "on")]));
    let t = run(&index);
    assert!(t.report.warnings.is_empty(), "{:?}", t.report.warnings);
    let names: Vec<_> = routes(&t).into_iter().map(|(_, path, backend, _)| (path, backend)).collect();
    let expected = [
        ("/grpc-a", "default/web:80+h2"),
        ("/grpc-b", "default/web:80+h2"),
        ("/https-a", "default/web:80+tls"),
        ("/https-b", "default/web:80+tls"),
        ("/plain", "default/web:80"),
        ("/verified", "default/web:80+tls(verify)"),
    ];
    assert_eq!(names, expected.map(|(p, b)| (p.to_string(), b.to_string())));
    let backends: Vec<_> = t.snapshot.backends.keys().cloned().collect();
    assert_eq!(backends, ["default/web:80", "default/web:80+h2", "default/web:80+tls", "default/web:80+tls(verify)"]);
    for backend in t.snapshot.backends.values() {
        assert_eq!(backend.endpoints[0].address, "10.0.0.1", "every protocol's backend has the port's endpoints");
    }
}

#[test]
fn the_same_problem_on_several_routes_of_an_ingress_is_reported_once() {
    let mut index = index_with_app_protocol(Some("spdy"));
    let rules =
        json!([rule("a.test", "/x", "Prefix", "web", json!(80)), rule("b.test", "/y", "Prefix", "web", json!(80))]);
    add(&mut index, mk_ingress("default", "i", json!({"rules": rules})));
    let t = run(&index);
    assert_eq!(routes(&t).len(), 2);
    assert_eq!(reasons(&t, "Ingress", "default", "i"), ["UnsupportedAppProtocol"]);
}

#[test]
fn a_service_port_named_by_the_route_carries_its_app_protocol() {
    let mut index = base_index();
    let service = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80}, {"name": "grpc", "port": 9000, "appProtocol": "grpc"}]}
    }))
    .unwrap();
    add::<Service>(&mut index, service);
    let rules =
        json!([rule("", "/", "Prefix", "web", json!("http")), rule("", "/rpc", "Prefix", "web", json!("grpc"))]);
    add(&mut index, mk_ingress("default", "i", json!({"rules": rules})));
    let t = run(&index);
    assert_eq!(backend_at(&t, "/").0, "default/web:80");
    let (name, backend) = backend_at(&t, "/rpc");
    assert_eq!((name.as_str(), backend.protocol), ("default/web:9000+h2", Http2));
}
