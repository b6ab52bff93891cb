//! Which Ingresses are ours: `spec.ingressClassName`, then the legacy annotation, then the default class.

use super::*;

/// (case, our class is default, ingressClassName, legacy annotation, ours?)
type Case = (&'static str, bool, Option<&'static str>, Option<&'static str>, bool);

#[test]
fn selects_ingresses_by_class_name_legacy_annotation_or_default_class() {
    let cases: [Case; 8] = [
        ("class name is ours", false, Some("holdfast"), None, true),
        ("class name is another controller's", true, Some("nginx"), None, false),
        ("class name wins over the legacy annotation", false, Some("nginx"), Some("holdfast"), false),
        ("class name of an unknown class", false, Some("missing"), None, false),
        ("legacy annotation is ours", false, None, Some("holdfast"), true),
        ("legacy annotation is another's, even with our default", true, None, Some("nginx"), false),
        ("no class, our class is default", true, None, None, true),
        ("no class, no default", false, None, None, false),
    ];
    for (case, is_default, class_name, legacy, ours) in cases {
        let mut index = Index::default();
        add(&mut index, mk_class("holdfast", is_default));
        add(&mut index, mk_foreign_class("nginx", false));
        add(&mut index, mk_service("default", "web", &[("http", 80)]));
        let metadata = match legacy {
            Some(class) => json!({"annotations": {"kubernetes.io/ingress.class": class}}),
            None => json!({}),
        };
        let spec = json!({"ingressClassName": class_name, "rules": [rule("", "/", "Prefix", "web", json!(80))]});
        add(&mut index, mk_ingress_meta("default", "i", metadata, spec));
        let t = run(&index);
        assert_eq!(!t.snapshot.hosts.is_empty(), ours, "{case}");
        assert_eq!(t.report.ingresses.contains(&key("default", "i")), ours, "{case}");
    }
}

#[test]
fn a_class_of_another_controller_that_is_default_does_not_make_ingresses_ours() {
    let mut index = Index::default();
    add(&mut index, mk_foreign_class("nginx", true));
    add(&mut index, mk_service("default", "web", &[("http", 80)]));
    let spec = json!({"ingressClassName": null, "rules": [rule("", "/", "Prefix", "web", json!(80))]});
    add(&mut index, mk_ingress("default", "i", spec));
    assert!(run(&index).snapshot.hosts.is_empty());
}
