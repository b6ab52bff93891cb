//! An UploadPolicy's `resumable` section reaches the route's snapshot policy; a value the dataplane would refuse makes
//! the policy `Accepted=False` with the field named, and never reaches a snapshot.

use super::*;
use holdfast_snapshot::{DeliveryMethod, Resumable};

fn index_with_policy(resumable: Value) -> Index {
    let mut index = base_index();
    add(&mut index, mk_ingress("default", "up", json!({"rules": [rule("", "/upload", "Prefix", "web", json!(80))]})));
    let spec = json!({"targetRefs": [{"kind": "Ingress", "name": "up"}], "maxBodySize": "1Gi", "resumable": resumable});
    add(&mut index, mk_policy("default", "p", spec));
    index
}

#[test]
fn resumable_section_reaches_the_routes_policy() {
    let resumable = json!({"maxSize": "20Gi", "deliveryMethod": "PUT", "metadataHeaders": {"title": "X-Title"}});
    let t = run(&index_with_policy(resumable));
    assert_eq!(routes(&t)[0].3, "default/p");
    let policy = &t.snapshot.policies["default/p"];
    assert_eq!(policy.max_body_size_bytes, 1 << 30);
    let r = policy.resumable.as_ref().expect("resumable uploads on");
    assert_eq!((r.max_size_bytes, r.delivery_method), (20 << 30, DeliveryMethod::Put));
    assert_eq!(r.expires_after_ms, Resumable::default().expires_after_ms);
    assert_eq!(r.metadata_headers["title"], "X-Title");
    assert!(t.report.policies[&key("default", "p")].accepted.status);
    assert!(reasons(&t, "UploadPolicy", "default", "p").is_empty());
}

#[test]
fn routes_without_a_resumable_section_only_proxy() {
    let mut index = base_index();
    add(&mut index, mk_ingress("default", "up", json!({"rules": [rule("", "/", "Prefix", "web", json!(80))]})));
    add(&mut index, mk_policy("default", "p", json!({"targetRefs": [{"kind": "Ingress", "name": "up"}]})));
    let t = run(&index);
    assert!(t.snapshot.policies.values().all(|p| p.resumable.is_none()));
}

#[test]
fn a_reserved_metadata_header_is_refused_in_the_status_and_never_pushed() {
    let t = run(&index_with_policy(json!({"metadataHeaders": {"session": "Cookie"}})));
    assert_eq!(routes(&t)[0].3, "default", "a policy that was never valid is not in force");
    assert!(t.snapshot.policies.values().all(|p| p.resumable.is_none()));
    let accepted = &t.report.policies[&key("default", "p")].accepted;
    assert_eq!((accepted.status, accepted.reason), (false, "Invalid"));
    let expected = r#"spec.resumable.metadataHeaders["session"]: "Cookie": may not name a field Holdfast sets on the delivery itself; the policy is not in force"#;
    assert_eq!(accepted.message, expected);
    assert_eq!(reasons(&t, "UploadPolicy", "default", "p"), ["PolicyInvalid"]);
}

#[test]
fn an_invalid_resumable_edit_keeps_the_previous_settings_in_force() {
    let mut index = index_with_policy(json!({"answerWait": "2m"}));
    let spec = json!({"targetRefs": [{"kind": "Ingress", "name": "up"}], "resumable": {"answerWait": "2 minutes"}});
    add(&mut index, mk_policy("default", "p", spec));
    let t = run(&index);
    let r = t.snapshot.policies["default/p"].resumable.as_ref().unwrap();
    assert_eq!(r.answer_wait_ms, 120_000);
    let accepted = &t.report.policies[&key("default", "p")].accepted;
    assert!(!accepted.status);
    assert!(accepted.message.starts_with("spec.resumable.answerWait: duration \"2 minutes\""), "{}", accepted.message);
    assert!(accepted.message.ends_with("the previous valid spec stays in force"), "{}", accepted.message);
}
