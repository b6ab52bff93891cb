//! The idle limit of WebSocket and other Upgrade tunnels: an UploadPolicy's `timeouts.tunnelIdleTimeout`, over the
//! controller's default.

use super::*;
use holdfast_snapshot::Policy;

#[test]
fn an_upload_policy_sets_the_tunnel_idle_timeout_and_the_controller_default_applies_elsewhere() {
    let mut index = base_index();
    add(&mut index, mk_service("default", "chat", &[("http", 80)]));
    let spec = json!({"targetRefs": [{"kind": "Service", "name": "chat"}], "timeouts": {"tunnelIdleTimeout": "2h"}});
    add(&mut index, mk_policy("default", "ws", spec));
    let rules = json!([rule("", "/chat", "Prefix", "chat", json!(80)), rule("", "/", "Prefix", "web", json!(80))]);
    add(&mut index, mk_ingress("default", "i", json!({"rules": rules})));
    let mut default_policy = Policy::default();
    default_policy.timeouts.tunnel_idle_ms = 600_000;
    let t = translate(&index, &Config { default_policy, ..Config::default() });
    t.snapshot.validate().unwrap();
    assert_eq!(t.snapshot.policies["default/ws"].timeouts.tunnel_idle_ms, 7_200_000);
    assert_eq!(t.snapshot.policies["default"].timeouts.tunnel_idle_ms, 600_000);
}

#[test]
fn tunnel_idle_timeout_defaults_to_an_hour() {
    let mut index = base_index();
    add(&mut index, mk_ingress("default", "i", json!({"rules": [rule("", "/", "Prefix", "web", json!(80))]})));
    assert_eq!(run(&index).snapshot.policies["default"].timeouts.tunnel_idle_ms, 3_600_000);
}

#[test]
fn a_zero_tunnel_idle_timeout_makes_the_policy_invalid() {
    let mut index = base_index();
    let spec = json!({"targetRefs": [{"kind": "Ingress", "name": "i"}], "timeouts": {"tunnelIdleTimeout": "0s"}});
    add(&mut index, mk_policy("default", "p", spec));
    add(&mut index, mk_ingress("default", "i", json!({"rules": [rule("", "/", "Prefix", "web", json!(80))]})));
    let t = run(&index);
    let accepted = &t.report.policies[&key("default", "p")].accepted;
    assert!(!accepted.status && accepted.message.contains("spec.timeouts.tunnelIdleTimeout"), "{}", accepted.message);
}
