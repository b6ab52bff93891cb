//! Certificates from Ingress `tls` sections and TLS Secrets.

use super::*;

fn tls_ingress(name: &str, created_at: &str, hosts: &[&str], secret: &str) -> Ingress {
    let spec = json!({"tls": [{"hosts": hosts, "secretName": secret}], "rules": [rule(hosts[0], "/", "Prefix", "web", json!(80))]});
    mk_ingress_meta("default", name, created(created_at), spec)
}

#[test]
fn ingress_tls_sections_become_certificates_by_secret() {
    let mut index = base_index();
    add(&mut index, mk_tls_secret("default", "photos-tls"));
    add(&mut index, tls_ingress("a", "2024-01-01T00:00:00Z", &["Photos.Test", "*.photos.test"], "photos-tls"));
    add(&mut index, tls_ingress("b", "2024-02-01T00:00:00Z", &["api.photos.test"], "photos-tls"));
    let t = run(&index);
    assert!(t.report.warnings.is_empty(), "{:?}", t.report.warnings);
    assert_eq!(t.snapshot.tls.len(), 1, "one entry per Secret");
    let cert = &t.snapshot.tls[0];
    assert_eq!(cert.hosts, ["*.photos.test", "api.photos.test", "photos.test"]);
    assert_eq!((cert.cert_pem.as_str(), cert.key_pem.as_str()), (CERT_PEM, KEY_PEM));
    assert_eq!(cert.source.as_deref(), Some("secret default/photos-tls"));
}

#[test]
fn a_host_with_two_secrets_keeps_the_oldest_ingress_one() {
    let mut index = base_index();
    add(&mut index, mk_tls_secret("default", "old"));
    add(&mut index, mk_tls_secret("default", "new"));
    add(&mut index, tls_ingress("z-old", "2024-01-01T00:00:00Z", &["a.test"], "old"));
    add(&mut index, tls_ingress("a-new", "2024-02-01T00:00:00Z", &["a.test"], "new"));
    let t = run(&index);
    let sources: Vec<_> = t.snapshot.tls.iter().map(|c| c.source.clone().unwrap()).collect();
    assert_eq!(sources, ["secret default/old"]);
    assert_eq!(reasons(&t, "Ingress", "default", "a-new"), ["TlsHostConflict", "RouteConflict"]);
}

#[test]
fn unusable_tls_secrets_are_reported_and_keep_the_routes() {
    let mut der = mk_tls_secret("default", "der");
    der.string_data =
        Some([("tls.crt".to_string(), "MIIB-not-pem".to_string()), ("tls.key".into(), KEY_PEM.into())].into());
    let cases = [("missing secret", None, "TlsSecretNotFound"), ("not PEM", Some(der), "TlsSecretInvalid")];
    for (case, secret, reason) in cases {
        let mut index = base_index();
        if let Some(secret) = secret {
            add(&mut index, secret);
        }
        add(
            &mut index,
            tls_ingress("i", "2024-01-01T00:00:00Z", &["a.test"], if case == "not PEM" { "der" } else { "gone" }),
        );
        let t = run(&index);
        assert!(t.snapshot.tls.is_empty(), "{case}");
        assert_eq!(reasons(&t, "Ingress", "default", "i"), [reason], "{case}");
        assert_eq!(routes(&t).len(), 1, "{case}: the route stays");
    }
}

#[test]
fn private_keys_never_appear_in_debug_output() {
    let mut index = base_index();
    add(&mut index, mk_tls_secret("default", "photos-tls"));
    add(&mut index, tls_ingress("a", "2024-01-01T00:00:00Z", &["a.test"], "photos-tls"));
    let t = run(&index);
    assert!(!format!("{t:?}").contains("c2VjcmV0LWtleQ"), "translation Debug leaks the key");
    assert!(!format!("{index:?}").contains("c2VjcmV0LWtleQ"), "index Debug leaks the key");
}
