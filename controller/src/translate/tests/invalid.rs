//! Invalid input becomes a warning on the object at fault and never costs unrelated routes.

use super::*;

/// Each case adds one broken Ingress next to a good one; the good route must survive and the broken Ingress must be
/// warned with the expected reason. `kept` says whether the broken route stays (pointing at an empty backend).
#[test]
fn invalid_ingresses_are_reported_and_never_drop_unrelated_routes() {
    let svc = |port: Value| json!({"service": {"name": "web", "port": port}});
    let path = |path: &str, path_type: &str, backend: Value| json!({"rules": [{"host": "bad.test", "http": {"paths": [{"path": path, "pathType": path_type, "backend": backend}]}}]});
    let cases: Vec<(&str, Value, &str, bool)> = vec![
        (
            "missing service",
            json!({"rules": [rule("bad.test", "/", "Prefix", "ghost", json!(80))]}),
            "ServiceNotFound",
            true,
        ),
        (
            "missing port number",
            json!({"rules": [rule("bad.test", "/", "Prefix", "web", json!(81))]}),
            "ServicePortNotFound",
            true,
        ),
        (
            "missing port name",
            json!({"rules": [rule("bad.test", "/", "Prefix", "web", json!("grpc"))]}),
            "ServicePortNotFound",
            true,
        ),
        ("no port at all", path("/", "Prefix", json!({"service": {"name": "web"}})), "ServicePortNotFound", false),
        ("relative path", path("up", "Prefix", svc(json!({"number": 80}))), "InvalidPath", false),
        ("unknown path type", path("/", "Regex", svc(json!({"number": 80}))), "InvalidPath", false),
        (
            "resource backend",
            path("/", "Prefix", json!({"resource": {"kind": "Bucket", "name": "b"}})),
            "UnsupportedBackend",
            false,
        ),
        ("bad host", json!({"rules": [rule("bad host!", "/", "Prefix", "web", json!(80))]}), "InvalidHost", false),
        (
            "missing TLS secret",
            json!({"tls": [{"hosts": ["bad.test"], "secretName": "nope"}], "rules": [rule("bad.test", "/", "Prefix", "web", json!(80))]}),
            "TlsSecretNotFound",
            true,
        ),
    ];
    for (case, spec, reason, kept) in cases {
        let mut index = base_index();
        add(
            &mut index,
            mk_ingress("default", "good", json!({"rules": [rule("good.test", "/", "Prefix", "web", json!(80))]})),
        );
        add(&mut index, mk_ingress("default", "bad", spec));
        let t = run(&index);
        assert!(routes(&t).iter().any(|r| r.0 == "good.test"), "{case}: unrelated route dropped");
        assert_eq!(reasons(&t, "Ingress", "default", "bad"), [reason], "{case}");
        assert!(reasons(&t, "Ingress", "default", "good").is_empty(), "{case}");
        let bad: Vec<_> = routes(&t).into_iter().filter(|r| r.0 == "bad.test").collect();
        assert_eq!(!bad.is_empty(), kept, "{case}");
        if kept && reason != "TlsSecretNotFound" {
            assert!(t.snapshot.backends[&bad[0].2].endpoints.is_empty(), "{case}: route kept but without endpoints");
        }
    }
}

#[test]
fn objects_without_a_namespace_are_refused_not_defaulted() {
    let mut index = Index::default();
    let mut ingress = mk_ingress("default", "i", json!({}));
    ingress.metadata.namespace = None;
    let error = index.apply(ingress).unwrap_err();
    assert_eq!(error.to_string(), "Ingress i has no metadata.namespace");
    assert!(index.ingresses.is_empty());
}

#[test]
fn non_tls_secrets_are_not_indexed() {
    let mut index = Index::default();
    add(&mut index, mk_tls_secret("default", "s"));
    let mut opaque = mk_tls_secret("default", "s");
    opaque.type_ = Some("Opaque".into());
    add(&mut index, opaque);
    assert!(index.secrets.is_empty(), "a Secret that changed type leaves the index");
}

#[test]
fn warnings_carry_the_uid_of_the_object_they_are_about() {
    // `kubectl describe` lists an object's events by its uid: a warning must carry the uid the object has now.
    let broken = |uid: Option<&str>| {
        let metadata = uid.map_or(json!({}), |uid| json!({"uid": uid}));
        mk_ingress_meta(
            "default",
            "bad",
            metadata,
            json!({"rules": [rule("bad.test", "/", "Prefix", "ghost", json!(80))]}),
        )
    };
    let uids = |t: &Translation| t.report.warnings.iter().map(|w| (w.kind, w.uid.clone())).collect::<Vec<_>>();
    let mut index = base_index();
    add(&mut index, broken(Some("uid-1")));
    let spec = json!({"targetRefs": [{"kind": "Service", "name": "ghost"}]});
    let mut policy = mk_policy("default", "p", spec);
    policy.metadata.uid = Some("uid-p".into());
    add(&mut index, policy);
    let t = run(&index);
    assert_eq!(uids(&t), [("UploadPolicy", Some("uid-p".into())), ("Ingress", Some("uid-1".into()))]);

    // Deleted and created again under the same name: the new object's uid.
    index.delete(&broken(Some("uid-1"))).unwrap();
    assert!(run(&index).report.warnings.iter().all(|w| w.kind != "Ingress"));
    add(&mut index, broken(Some("uid-2")));
    assert_eq!(uids(&run(&index))[1], ("Ingress", Some("uid-2".into())));

    // A full listing replaces the uids of its kind; objects from files have none.
    index.reset(vec![broken(None)]);
    assert_eq!(uids(&run(&index))[1], ("Ingress", None));
}
