//! Policy precedence (annotation, Ingress target, Service target, defaults), nginx annotations under explicit
//! Holdfast settings, and UploadPolicy status.

use super::*;
use holdfast_snapshot::BodyMode;

fn targeting(kind: &str, name: &str, max_body: &str) -> Value {
    json!({"targetRefs": [{"kind": kind, "name": name}], "maxBodySize": max_body})
}

/// (case, policies present, annotation, expected policy name, expected max body)
type Case = (&'static str, &'static [&'static str], Option<&'static str>, &'static str, u64);

#[test]
fn policy_precedence_is_annotation_then_ingress_then_service_then_defaults() {
    const ALL: &[&str] = &["by-annotation", "by-ingress", "by-service"];
    let cases: [Case; 5] = [
        ("annotation wins", ALL, Some("by-annotation"), "default/by-annotation", 1000),
        ("ingress target next", ALL, None, "default/by-ingress", 2000),
        ("service target next", &["by-service"], None, "default/by-service", 3000),
        ("defaults last", &[], None, "default", 0),
        ("missing annotated policy falls through", &["by-service"], Some("gone"), "default/by-service", 3000),
    ];
    for (case, present, annotation, expected_name, expected_max) in cases {
        let mut index = base_index();
        for name in present.iter() {
            let spec = match *name {
                "by-annotation" => json!({"maxBodySize": "1k"}),
                "by-ingress" => targeting("Ingress", "up", "2k"),
                _ => targeting("Service", "web", "3k"),
            };
            add(&mut index, mk_policy("default", name, spec));
        }
        let metadata = match annotation {
            Some(name) => json!({"annotations": {"holdfast.io/upload-policy": name}}),
            None => json!({}),
        };
        let spec = json!({"rules": [rule("", "/", "Prefix", "web", json!(80))]});
        add(&mut index, mk_ingress_meta("default", "up", metadata, spec));
        let t = run(&index);
        let (_, _, _, policy) = &routes(&t)[0];
        assert_eq!(policy, expected_name, "{case}");
        assert_eq!(t.snapshot.policies[policy].max_body_size_bytes, expected_max, "{case}");
        let warned = reasons(&t, "Ingress", "default", "up").contains(&"PolicyNotFound");
        assert_eq!(warned, annotation == Some("gone"), "{case}");
    }
}

#[test]
fn service_policy_applies_per_backend() {
    let mut index = base_index();
    add(&mut index, mk_service("default", "api", &[("http", 80)]));
    add(&mut index, mk_policy("default", "web-only", targeting("Service", "web", "5k")));
    let rules = json!([rule("", "/web", "Prefix", "web", json!(80)), rule("", "/api", "Prefix", "api", json!(80))]);
    add(&mut index, mk_ingress("default", "both", json!({"rules": rules})));
    let policies: Vec<_> = routes(&run(&index)).into_iter().map(|r| (r.1, r.3)).collect();
    assert_eq!(policies, [("/api".into(), "default".into()), ("/web".into(), "default/web-only".into())]);
}

#[test]
fn oldest_policy_targeting_the_same_ingress_wins() {
    let mut index = base_index();
    let mut newer = mk_policy("default", "a-newer", targeting("Ingress", "up", "1k"));
    newer.metadata.creation_timestamp = serde_json::from_value(json!("2024-06-01T00:00:00Z")).unwrap();
    let mut older = mk_policy("default", "b-older", targeting("Ingress", "up", "2k"));
    older.metadata.creation_timestamp = serde_json::from_value(json!("2024-01-01T00:00:00Z")).unwrap();
    add(&mut index, newer);
    add(&mut index, older);
    add(&mut index, mk_ingress("default", "up", json!({"rules": [rule("", "/", "Prefix", "web", json!(80))]})));
    let t = run(&index);
    assert_eq!(routes(&t)[0].3, "default/b-older");
    assert_eq!(reasons(&t, "UploadPolicy", "default", "a-newer"), ["PolicyConflict"]);
}

#[test]
fn nginx_annotations_apply_under_explicit_holdfast_settings() {
    let nginx = json!({"annotations": {
        "nginx.ingress.kubernetes.io/proxy-body-size": "8m",
        "nginx.ingress.kubernetes.io/proxy-request-buffering": "off",
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "120",
        "nginx.ingress.kubernetes.io/proxy-connect-timeout": "nonsense",
    }});
    let spec = json!({"rules": [rule("", "/", "Prefix", "web", json!(80))]});

    let mut index = base_index();
    add(&mut index, mk_ingress_meta("default", "up", nginx.clone(), spec.clone()));
    let t = run(&index);
    let (_, _, _, name) = &routes(&t)[0];
    assert_eq!(name, "ingress:default/up");
    let p = &t.snapshot.policies[name];
    assert_eq!((p.max_body_size_bytes, p.mode, p.timeouts.upstream_read_ms), (8 << 20, BodyMode::Streaming, 120_000));
    assert_eq!(p.timeouts.upstream_connect_ms, 5_000, "a bad annotation leaves the default");
    assert_eq!(reasons(&t, "Ingress", "default", "up"), ["InvalidAnnotation"]);

    // An UploadPolicy's explicit fields win; the ones it leaves unset keep the annotation's values.
    add(
        &mut index,
        mk_policy("default", "p", json!({"targetRefs": [{"kind": "Ingress", "name": "up"}], "mode": "Tee"})),
    );
    let t = run(&index);
    let (_, _, _, name) = &routes(&t)[0];
    assert_eq!(name, "default/p+ingress:default/up");
    let p = &t.snapshot.policies[name];
    assert_eq!((p.max_body_size_bytes, p.mode), (8 << 20, BodyMode::Tee));
}

#[test]
fn policy_status_reports_acceptance_targets_and_attached_routes() {
    let mut index = base_index();
    let spec = json!({"targetRefs": [{"kind": "Ingress", "name": "up"}, {"kind": "Service", "name": "ghost"}]});
    add(&mut index, mk_policy("default", "p", spec));
    add(&mut index, mk_ingress("default", "up", json!({"rules": [rule("a.test", "/x", "Prefix", "web", json!(80))]})));
    let t = run(&index);
    let status = &t.report.policies[&key("default", "p")];
    assert!(status.accepted.status);
    assert!(!status.resolved_refs.status);
    assert_eq!(status.resolved_refs.reason, "TargetNotFound");
    assert!(status.resolved_refs.message.contains("Service ghost"), "{}", status.resolved_refs.message);
    assert_eq!(status.attached_routes.iter().collect::<Vec<_>>(), ["default/up a.test /x"]);
    assert_eq!(reasons(&t, "UploadPolicy", "default", "p"), ["TargetNotFound"]);
}

#[test]
fn invalid_policy_edit_keeps_the_last_valid_spec_in_force() {
    let mut index = base_index();
    add(&mut index, mk_ingress("default", "up", json!({"rules": [rule("", "/", "Prefix", "web", json!(80))]})));
    add(&mut index, mk_policy("default", "p", targeting("Ingress", "up", "1Gi")));
    add(&mut index, mk_policy("default", "p", targeting("Ingress", "up", "lots")));
    let t = run(&index);
    assert_eq!(routes(&t)[0].3, "default/p");
    assert_eq!(t.snapshot.policies["default/p"].max_body_size_bytes, 1 << 30);
    let accepted = &t.report.policies[&key("default", "p")].accepted;
    assert_eq!((accepted.status, accepted.reason), (false, "Invalid"));
    assert!(accepted.message.contains("spec.maxBodySize") && accepted.message.contains("previous valid spec"));
    assert_eq!(reasons(&t, "UploadPolicy", "default", "p"), ["PolicyInvalid"]);
}

#[test]
fn policy_that_was_never_valid_is_not_in_force() {
    let mut index = base_index();
    add(&mut index, mk_ingress("default", "up", json!({"rules": [rule("", "/", "Prefix", "web", json!(80))]})));
    let spec = json!({"targetRefs": [{"kind": "Ingress", "name": "up"}], "timeouts": {"upstreamReadTimeout": "5 min"}});
    add(&mut index, mk_policy("default", "p", spec));
    let t = run(&index);
    assert_eq!(routes(&t)[0].3, "default");
    let accepted = &t.report.policies[&key("default", "p")].accepted;
    assert!(
        accepted.message.contains("spec.timeouts.upstreamReadTimeout") && accepted.message.contains("not in force")
    );
}

#[test]
fn min_body_rate_flows_from_the_upload_policy_to_the_snapshot_and_bad_values_are_reported() {
    let mut index = base_index();
    add(&mut index, mk_ingress("default", "up", json!({"rules": [rule("", "/", "Prefix", "web", json!(80))]})));
    let t = run(&index);
    let defaults = t.snapshot.policies["default"].min_body_rate;
    assert_eq!((defaults.bytes_per_second, defaults.window_ms), (500, 60_000));

    let target = json!([{"kind": "Ingress", "name": "up"}]);
    let spec = json!({"targetRefs": target, "minBodyRate": {"bytesPerSecond": 4096, "window": "20s"}});
    add(&mut index, mk_policy("default", "p", spec));
    let t = run(&index);
    let rate = t.snapshot.policies["default/p"].min_body_rate;
    assert_eq!((rate.bytes_per_second, rate.window_ms), (4096, 20_000));

    // A bad edit is reported in the status and the previous valid rate stays in force.
    let spec = json!({"targetRefs": target, "minBodyRate": {"bytesPerSecond": 4096, "window": "10ms"}});
    add(&mut index, mk_policy("default", "p", spec));
    let t = run(&index);
    assert_eq!(t.snapshot.policies["default/p"].min_body_rate.window_ms, 20_000);
    let accepted = &t.report.policies[&key("default", "p")].accepted;
    assert!(!accepted.status);
    assert!(accepted.message.contains("spec.minBodyRate.window: must be between 100ms and 1h"), "{}", accepted.message);
}
