//! gRPC calls are delivered in Tee mode whatever the policy says: a Buffered mode set explicitly on a route to an
//! HTTP/2 backend is reported where it was set, and nothing else is.

use super::protocols::ingress_to_web;
use super::*;
use holdfast_snapshot::{BodyMode, Policy};

/// A policy targeting Ingress `i` with this mode.
fn mode_policy(mode: &str) -> UploadPolicy {
    mk_policy("default", "p", json!({"targetRefs": [{"kind": "Ingress", "name": "i"}], "mode": mode}))
}

#[test]
fn buffered_from_an_upload_policy_on_a_grpc_route_warns_the_ingress_and_the_policy() {
    for protocol in ["GRPC", "GRPCS"] {
        let mut index = base_index();
        add(&mut index, mode_policy("Buffered"));
        add(&mut index, ingress_to_web("i", &[("backend-protocol", protocol)]));
        let t = run(&index);
        assert_eq!(reasons(&t, "Ingress", "default", "i"), ["GrpcNotBuffered"], "{protocol}");
        assert_eq!(reasons(&t, "UploadPolicy", "default", "p"), ["GrpcNotBuffered"], "{protocol}");
        let message = &t.report.warnings_for("Ingress", &key("default", "i"))[0].message;
        assert!(message.contains("UploadPolicy default/p") && message.contains("Tee"), "{message}");
        // The policy itself is pushed as written: the dataplane picks Tee for gRPC requests only.
        assert_eq!(t.snapshot.policies["default/p"].mode, BodyMode::Buffered);
    }
}

#[test]
fn buffered_from_proxy_request_buffering_on_a_grpc_route_warns_the_ingress() {
    let mut index = base_index();
    add(&mut index, mk_service_app("default", "web", Some("grpc")));
    add(&mut index, ingress_to_web("i", &[("proxy-request-buffering", "on")]));
    let t = run(&index);
    assert_eq!(reasons(&t, "Ingress", "default", "i"), ["GrpcNotBuffered"]);
    let message = &t.report.warnings[0].message;
    assert!(message.contains("proxy-request-buffering") && message.contains("default/web:80+h2"), "{message}");
}

#[test]
fn no_grpc_warning_without_an_explicit_buffered_mode_on_an_http2_backend() {
    // (case, app protocol of the port, nginx annotations, UploadPolicy mode, controller default mode)
    type Case =
        (&'static str, Option<&'static str>, &'static [(&'static str, &'static str)], Option<&'static str>, BodyMode);
    let cases: [Case; 7] = [
        ("the controller's default", Some("h2c"), &[], None, BodyMode::Buffered),
        ("Tee", Some("h2c"), &[], Some("Tee"), BodyMode::Buffered),
        ("Streaming", Some("grpc"), &[], Some("Streaming"), BodyMode::Buffered),
        ("nginx off", Some("grpc"), &[("proxy-request-buffering", "off")], None, BodyMode::Buffered),
        (
            "the UploadPolicy wins over nginx on",
            Some("grpc"),
            &[("proxy-request-buffering", "on")],
            Some("Tee"),
            BodyMode::Buffered,
        ),
        ("HTTP/1.1 backend", None, &[("proxy-request-buffering", "on")], Some("Buffered"), BodyMode::Buffered),
        ("HTTPS backend", Some("https"), &[], Some("Buffered"), BodyMode::Tee),
    ];
    for (case, app, nginx, mode, default_mode) in cases {
        let mut index = base_index();
        add(&mut index, mk_service_app("default", "web", app));
        if let Some(mode) = mode {
            add(&mut index, mode_policy(mode));
        }
        add(&mut index, ingress_to_web("i", nginx));
        let config = Config { default_policy: Policy { mode: default_mode, ..Policy::default() }, ..Config::default() };
        let t = translate(&index, &config);
        t.snapshot.validate().unwrap();
        assert!(t.report.warnings.is_empty(), "{case}: {:?}", t.report.warnings);
    }
}
