//! What the dataplane labels a route's metrics and access log lines with: the Ingress a route comes from, and the
//! Service port behind its backend — by its number once resolved (however Ingresses name it), as the Ingress
//! writes it when the Service or its port is missing.

use super::*;
use holdfast_snapshot::{ObjectRef, ServicePort};

fn ingress_ref(namespace: &str, name: &str) -> Option<ObjectRef> {
    Some(ObjectRef { namespace: namespace.into(), name: name.into() })
}

fn service_port(namespace: &str, name: &str, port: &str) -> Option<ServicePort> {
    Some(ServicePort { namespace: namespace.into(), name: name.into(), port: port.into() })
}

#[test]
fn routes_name_their_ingress_and_backends_the_number_of_their_service_port() {
    let mut index = base_index();
    add(&mut index, mk_service("shop", "api", &[("http", 80), ("admin", 9000)]));
    add(&mut index, mk_service_app("shop", "grpc", Some("kubernetes.io/h2c")));
    add(&mut index, mk_service("shop", "fallback", &[("http", 80)]));
    let spec = json!({
        "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
        "rules": [
            rule("shop.test", "/api", "Prefix", "api", json!(80)),
            rule("shop.test", "/admin", "Prefix", "api", json!("admin")),
            rule("shop.test", "/rpc", "Prefix", "grpc", json!(80)),
        ],
    });
    add(&mut index, mk_ingress("shop", "front", spec));
    let t = run(&index);

    let paths = &t.snapshot.hosts[0].paths;
    assert_eq!(paths.len(), 3);
    for path in paths {
        assert_eq!(path.target.ingress, ingress_ref("shop", "front"), "{}", path.path);
    }
    let backends = &t.snapshot.backends;
    assert_eq!(backends["shop/api:80"].service, service_port("shop", "api", "80"));
    assert_eq!(backends["shop/api:9000"].service, service_port("shop", "api", "9000"), "named, labelled by number");
    assert_eq!(backends["shop/grpc:80+h2"].service, service_port("shop", "grpc", "80"), "protocols keep it");

    let default = t.snapshot.default_backend.as_ref().unwrap();
    assert_eq!(default.ingress, ingress_ref("shop", "front"));
    assert_eq!(backends[&default.backend].service, service_port("shop", "fallback", "80"));
}

#[test]
fn a_backend_without_its_service_still_names_the_service_port_it_was_meant_for() {
    let mut index = base_index();
    let rules =
        json!([rule("", "/gone", "Prefix", "gone", json!(8080)), rule("", "/nope", "Prefix", "web", json!("nope"))]);
    add(&mut index, mk_ingress("default", "w", json!({"rules": rules})));
    let t = run(&index);
    assert_eq!(t.snapshot.backends["default/gone:8080"].service, service_port("default", "gone", "8080"));
    assert_eq!(t.snapshot.backends["default/web:nope"].service, service_port("default", "web", "nope"));
    assert!(t.snapshot.hosts[0].paths.iter().all(|p| p.target.ingress == ingress_ref("default", "w")));
}

#[test]
fn a_service_port_two_ingresses_write_differently_has_one_label_its_number() {
    // One Service port is one backend and one label, whether an Ingress names the port or gives its number, and
    // whichever Ingress is older.
    for (by_name_created, by_number_created) in
        [("2024-01-01T00:00:00Z", "2024-06-01T00:00:00Z"), ("2024-06-01T00:00:00Z", "2024-01-01T00:00:00Z")]
    {
        let mut index = base_index();
        let by_name = json!({"rules": [rule("a.test", "/", "Prefix", "web", json!("http"))]});
        let by_number = json!({"rules": [rule("b.test", "/", "Prefix", "web", json!(80))]});
        add(&mut index, mk_ingress_meta("default", "by-name", created(by_name_created), by_name));
        add(&mut index, mk_ingress_meta("default", "by-number", created(by_number_created), by_number));
        let t = run(&index);
        assert_eq!(t.snapshot.backends.len(), 1);
        assert_eq!(t.snapshot.backends["default/web:80"].service, service_port("default", "web", "80"));
        let ingress_of =
            |host: &str| t.snapshot.hosts.iter().find(|h| h.host == host).unwrap().paths[0].target.ingress.clone();
        assert_eq!(ingress_of("a.test"), ingress_ref("default", "by-name"));
        assert_eq!(ingress_of("b.test"), ingress_ref("default", "by-number"));
    }
}
