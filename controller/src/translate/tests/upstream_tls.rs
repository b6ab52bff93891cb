//! TLS to backends from ingress-nginx's `proxy-ssl-*` annotations: defaults, the Secret (TLS or Opaque), what a
//! missing, foreign or broken Secret costs, SNI and the name checked.

use super::protocols::{backend_at, ingress_to_web};
use super::*;
use holdfast_snapshot::UpstreamTls;

const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nQ0EtY2VydA==\n-----END CERTIFICATE-----\n";
/// Armoured like a certificate, but its content is not base64.
const BROKEN_PEM: &str = "-----BEGIN CERTIFICATE-----\n!!! not base64 !!!\n-----END CERTIFICATE-----\n";

/// The TLS settings of the route `/i` of an Ingress `i` with these annotations (HTTPS added), and its warnings.
fn tls_of(index: &mut Index, nginx: &[(&str, &str)]) -> (String, UpstreamTls, Vec<&'static str>) {
    let mut annotations = vec![("backend-protocol", "HTTPS")];
    annotations.extend_from_slice(nginx);
    add(index, ingress_to_web("i", &annotations));
    let t = run(index);
    let (name, backend) = backend_at(&t, "/i");
    let tls = backend.tls.unwrap_or_else(|| panic!("{name} is not TLS"));
    (name, tls, reasons(&t, "Ingress", "default", "i"))
}

fn expected(change: impl FnOnce(&mut UpstreamTls)) -> UpstreamTls {
    let mut tls = UpstreamTls::new("web.default.svc");
    change(&mut tls);
    tls
}

#[test]
fn by_default_like_ingress_nginx_the_certificate_is_not_verified_and_no_sni_is_sent() {
    let (name, tls, warnings) = tls_of(&mut base_index(), &[]);
    assert_eq!(name, "default/web:80+tls");
    assert!(!tls.verify && !tls.sni);
    assert_eq!(tls, expected(|_| {}));
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn verify_on_without_a_secret_verifies_against_the_system_trust_store() {
    let (name, tls, warnings) = tls_of(&mut base_index(), &[("proxy-ssl-verify", "on")]);
    assert_eq!(name, "default/web:80+tls(verify)");
    assert_eq!(tls, expected(|t| t.verify = true));
    assert!(warnings.is_empty(), "{warnings:?}");
    let (_, tls, _) = tls_of(&mut base_index(), &[("proxy-ssl-verify", "off")]);
    assert!(!tls.verify);
}

#[test]
fn an_unreadable_verify_value_verifies_and_warns() {
    let (_, tls, warnings) = tls_of(&mut base_index(), &[("proxy-ssl-verify", "true")]);
    assert!(tls.verify, "a typo must not leave the connection unverified");
    assert_eq!(warnings, ["InvalidAnnotation"]);
}

#[test]
fn an_opaque_secret_with_only_a_ca_gives_the_ca_in_either_reference_form() {
    for reference in ["default/backend-ca", "backend-ca"] {
        let mut index = base_index();
        add(&mut index, mk_opaque_secret("default", "backend-ca", &[("ca.crt", CA_PEM), ("password", "hunter2")]));
        let (name, tls, warnings) = tls_of(&mut index, &[("proxy-ssl-verify", "on"), ("proxy-ssl-secret", reference)]);
        assert_eq!(name, "default/web:80+tls(verify,secret=default/backend-ca)", "{reference}");
        let want = expected(|t| {
            t.verify = true;
            t.ca_pem = Some(CA_PEM.to_string());
            t.source = Some("secret default/backend-ca".to_string());
        });
        assert_eq!(tls, want, "{reference}");
        assert!(warnings.is_empty(), "{reference}: {warnings:?}");
    }
}

#[test]
fn only_the_pem_keys_of_opaque_secrets_with_a_ca_are_indexed() {
    let mut index = base_index();
    add(&mut index, mk_opaque_secret("default", "ca", &[("ca.crt", CA_PEM), ("password", "hunter2")]));
    add(&mut index, mk_opaque_secret("default", "app-credentials", &[("password", "hunter2")]));
    // A Secret without a type is Opaque, as the API defaults it.
    add(&mut index, crate::index::OpaqueSecret(mk_secret("default", "untyped", None, &[("ca.crt", CA_PEM)])));
    add(&mut index, crate::index::OpaqueSecret(mk_tls_secret("default", "listener")));
    assert_eq!(index.ca_secrets.keys().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["ca", "untyped"]);
    let debug = format!("{index:?}");
    assert!(!debug.contains("hunter2") && !debug.contains("Q0EtY2VydA"), "{debug}");
}

#[test]
fn a_secret_with_a_client_certificate_gives_mutual_tls() {
    let tls_secret = mk_secret(
        "default",
        "client",
        Some("kubernetes.io/tls"),
        &[("tls.crt", CERT_PEM), ("tls.key", KEY_PEM), ("ca.crt", CA_PEM)],
    );
    let opaque =
        mk_opaque_secret("default", "client", &[("tls.crt", CERT_PEM), ("tls.key", KEY_PEM), ("ca.crt", CA_PEM)]);
    let with_tls: Box<dyn Fn(&mut Index)> = Box::new(move |index| add(index, tls_secret.clone()));
    let with_opaque: Box<dyn Fn(&mut Index)> = Box::new(move |index| add(index, opaque.clone()));
    for (case, add_secret) in [("kubernetes.io/tls", with_tls), ("Opaque", with_opaque)] {
        for verify in ["on", "off"] {
            let mut index = base_index();
            add_secret(&mut index);
            let (_, tls, warnings) =
                tls_of(&mut index, &[("proxy-ssl-secret", "default/client"), ("proxy-ssl-verify", verify)]);
            let case = format!("{case}, verify {verify}");
            assert_eq!(tls.client_cert_pem.as_deref(), Some(CERT_PEM), "{case}");
            assert_eq!(tls.client_key_pem.as_deref(), Some(KEY_PEM), "{case}");
            // Without verification a CA changes nothing, so it is left out.
            assert_eq!(tls.ca_pem.is_some(), verify == "on", "{case}");
            assert_eq!(tls.source.as_deref(), Some("secret default/client"), "{case}");
            assert!(warnings.is_empty(), "{case}: {warnings:?}");
        }
    }
}

#[test]
fn a_missing_secret_or_one_without_a_ca_keeps_verification_on_and_warns() {
    let cases = [
        ("missing", None, "UpstreamTlsSecretNotFound"),
        (
            "no ca.crt",
            Some(mk_secret("default", "s", Some("kubernetes.io/tls"), &[("tls.crt", CERT_PEM), ("tls.key", KEY_PEM)])),
            "UpstreamTlsSecretNotFound",
        ),
        (
            "Opaque without ca.crt",
            Some(mk_secret("default", "s", Some("Opaque"), &[("tls.crt", CERT_PEM)])),
            "UpstreamTlsSecretNotFound",
        ),
    ];
    for (case, secret, reason) in cases {
        let mut index = base_index();
        if let Some(secret) = secret {
            add(&mut index, secret.clone());
            add(&mut index, crate::index::OpaqueSecret(secret));
        }
        let (_, tls, warnings) = tls_of(&mut index, &[("proxy-ssl-verify", "on"), ("proxy-ssl-secret", "default/s")]);
        assert!(tls.verify, "{case}: verification must not be turned off");
        assert_eq!(tls.ca_pem, None, "{case}");
        assert_eq!(warnings, [reason], "{case}");
    }
}

#[test]
fn a_secret_in_another_namespace_is_refused_even_when_it_exists() {
    let mut index = base_index();
    add(&mut index, mk_opaque_secret("other", "ca", &[("ca.crt", CA_PEM)]));
    let (_, tls, warnings) = tls_of(&mut index, &[("proxy-ssl-verify", "on"), ("proxy-ssl-secret", "other/ca")]);
    assert_eq!((tls.verify, tls.ca_pem, tls.source), (true, None, None));
    assert_eq!(warnings, ["UpstreamTlsSecretRefused"]);
}

#[test]
fn a_malformed_secret_reference_is_reported() {
    for reference in ["a/b/c", "/ca", "default/", ""] {
        let (_, tls, warnings) = tls_of(&mut base_index(), &[("proxy-ssl-secret", reference)]);
        assert_eq!(tls.source, None, "{reference:?}");
        assert_eq!(warnings, ["InvalidAnnotation"], "{reference:?}");
    }
}

#[test]
fn bad_pem_costs_only_that_setting_and_never_the_push() {
    // (case, Secret data, what remains)
    let cases = [
        ("CA not base64", vec![("ca.crt", BROKEN_PEM)], "no ca"),
        ("CA not PEM", vec![("ca.crt", "just text")], "no ca"),
        ("client cert broken", vec![("ca.crt", CA_PEM), ("tls.crt", BROKEN_PEM), ("tls.key", KEY_PEM)], "no client"),
        ("client key not a key", vec![("ca.crt", CA_PEM), ("tls.crt", CERT_PEM), ("tls.key", CA_PEM)], "no client"),
        ("half a client certificate", vec![("ca.crt", CA_PEM), ("tls.key", KEY_PEM)], "no client"),
    ];
    for (case, data, remains) in cases {
        let mut index = base_index();
        add(&mut index, mk_opaque_secret("default", "s", &data));
        // `run` validates the snapshot as the dataplane would.
        let (_, tls, warnings) = tls_of(&mut index, &[("proxy-ssl-verify", "on"), ("proxy-ssl-secret", "s")]);
        assert!(tls.verify, "{case}");
        assert_eq!(warnings, ["UpstreamTlsInvalid"], "{case}");
        assert!(tls.client_cert_pem.is_none() && tls.client_key_pem.is_none(), "{case}");
        assert_eq!(tls.ca_pem.is_none(), remains == "no ca", "{case}");
    }
}

#[test]
fn server_name_and_sni_follow_proxy_ssl_name_and_proxy_ssl_server_name() {
    let (name, tls, warnings) = tls_of(
        &mut base_index(),
        &[("proxy-ssl-name", "api.internal.example"), ("proxy-ssl-server-name", "on"), ("proxy-ssl-verify", "on")],
    );
    assert_eq!(name, "default/web:80+tls(verify,sni,name=api.internal.example)");
    assert_eq!((tls.server_name.as_str(), tls.sni), ("api.internal.example", true));
    assert!(warnings.is_empty(), "{warnings:?}");

    let (_, tls, _) = tls_of(&mut base_index(), &[("proxy-ssl-server-name", "off")]);
    assert_eq!((tls.server_name.as_str(), tls.sni), ("web.default.svc", false));
    let (name, tls, _) = tls_of(&mut base_index(), &[("proxy-ssl-server-name", "on")]);
    assert_eq!(
        (name.as_str(), tls.server_name.as_str(), tls.sni),
        ("default/web:80+tls(sni)", "web.default.svc", true)
    );

    let (_, tls, warnings) =
        tls_of(&mut base_index(), &[("proxy-ssl-name", "$host"), ("proxy-ssl-server-name", "yes")]);
    assert_eq!((tls.server_name.as_str(), tls.sni), ("web.default.svc", false));
    assert_eq!(warnings, ["InvalidAnnotation", "InvalidAnnotation"]);
}

#[test]
fn proxy_ssl_annotations_on_a_plain_backend_are_ignored_with_a_warning() {
    let mut index = base_index();
    add(&mut index, ingress_to_web("i", &[("proxy-ssl-verify", "on"), ("proxy-ssl-secret", "gone")]));
    let t = run(&index);
    let (name, backend) = backend_at(&t, "/i");
    assert_eq!((name.as_str(), backend.tls), ("default/web:80", None));
    // The missing Secret is moot on a plain backend: only the annotations being ignored is reported.
    assert_eq!(reasons(&t, "Ingress", "default", "i"), ["UpstreamTlsIgnored"]);
    let message = &t.report.warnings[0].message;
    assert!(message.contains("proxy-ssl-verify") && message.contains("proxy-ssl-secret"), "{message}");
}

#[test]
fn tls_settings_no_fallback_can_fix_skip_the_route_and_keep_the_others() {
    let mut index = base_index();
    // A Service name that is no DNS label (possible in files) makes an unusable default server name.
    add(&mut index, mk_service("default", "bad name", &[("http", 80)]));
    let rules = json!([rule("", "/bad", "Prefix", "bad name", json!(80)), rule("", "/ok", "Prefix", "web", json!(80))]);
    let annotations = json!({"annotations": {"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"}});
    add(&mut index, mk_ingress_meta("default", "i", annotations, json!({"rules": rules})));
    let t = run(&index);
    assert_eq!(routes(&t).into_iter().map(|r| r.1).collect::<Vec<_>>(), ["/ok"]);
    let warnings = t.report.warnings_for("Ingress", &key("default", "i"));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].reason.as_str(), "UpstreamTlsInvalid");
    assert!(warnings[0].message.contains("path skipped"), "{}", warnings[0].message);
}

#[test]
fn client_keys_never_appear_in_debug_output() {
    let mut index = base_index();
    add(
        &mut index,
        mk_opaque_secret("default", "s", &[("ca.crt", CA_PEM), ("tls.crt", CERT_PEM), ("tls.key", KEY_PEM)]),
    );
    add(&mut index, ingress_to_web("i", &[("backend-protocol", "GRPCS"), ("proxy-ssl-secret", "s")]));
    let t = run(&index);
    assert!(t.snapshot.backends.values().any(|b| b.tls.as_ref().is_some_and(|t| t.client_key_pem.is_some())));
    assert!(!format!("{t:?}").contains("c2VjcmV0LWtleQ"), "translation Debug leaks the client key");
    assert!(!format!("{index:?}").contains("c2VjcmV0LWtleQ"), "index Debug leaks the client key");
}
