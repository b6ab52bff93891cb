//! Table-driven translation tests on hand-built objects: no API server, no async. Builders take JSON so each case
//! reads like the manifest a user would write.

mod classes;
mod grpc;
mod identities;
mod incremental;
mod invalid;
mod peers;
mod policies;
mod protocols;
mod resumable;
mod routing;
mod tls;
mod tunnels;
mod upstream_tls;

use super::{translate, Config, Translation};
use crate::index::{Index, IndexKind, ObjectKey};
use holdfast_crds::UploadPolicy;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde_json::{json, Value};

fn object<K: serde::de::DeserializeOwned>(namespace: &str, name: &str, mut body: Value) -> K {
    let meta = body.as_object_mut().unwrap().entry("metadata").or_insert_with(|| json!({}));
    meta["name"] = json!(name);
    if !namespace.is_empty() {
        meta["namespace"] = json!(namespace);
    }
    serde_json::from_value(body).unwrap()
}

/// An IngressClass of this controller.
pub fn mk_class(name: &str, is_default: bool) -> IngressClass {
    let annotations = json!({"ingressclass.kubernetes.io/is-default-class": is_default.to_string()});
    object(
        "",
        name,
        json!({"metadata": {"annotations": annotations}, "spec": {"controller": "holdfast.io/ingress-controller"}}),
    )
}

pub fn mk_foreign_class(name: &str, is_default: bool) -> IngressClass {
    let annotations = json!({"ingressclass.kubernetes.io/is-default-class": is_default.to_string()});
    object("", name, json!({"metadata": {"annotations": annotations}, "spec": {"controller": "k8s.io/ingress-nginx"}}))
}

/// An Ingress of class `holdfast` with `spec` merged in; `created` orders conflicts ("2024-01-01T00:00:00Z").
pub fn mk_ingress(namespace: &str, name: &str, spec: Value) -> Ingress {
    mk_ingress_meta(namespace, name, json!({}), spec)
}

pub fn mk_ingress_meta(namespace: &str, name: &str, metadata: Value, spec: Value) -> Ingress {
    let mut spec = spec;
    if spec.get("ingressClassName").is_none() {
        spec["ingressClassName"] = json!("holdfast");
    }
    if spec["ingressClassName"].is_null() {
        spec.as_object_mut().unwrap().remove("ingressClassName");
    }
    object(namespace, name, json!({"metadata": metadata, "spec": spec}))
}

/// One rule: `host` (empty: none), `path`, `pathType`, service and port (a number or a name).
pub fn rule(host: &str, path: &str, path_type: &str, service: &str, port: Value) -> Value {
    let port = if port.is_number() { json!({"number": port}) } else { json!({"name": port}) };
    let mut rule = json!({"http": {"paths": [{
        "path": path, "pathType": path_type, "backend": {"service": {"name": service, "port": port}}
    }]}});
    if !host.is_empty() {
        rule["host"] = json!(host);
    }
    rule
}

/// A Service with ports `(name, port)`.
pub fn mk_service(namespace: &str, name: &str, ports: &[(&str, i32)]) -> Service {
    let ports: Vec<Value> = ports.iter().map(|(n, p)| json!({"name": n, "port": p})).collect();
    object(namespace, name, json!({"spec": {"ports": ports}}))
}

/// A Service with one port `http` 80 whose `appProtocol` is `app` (absent when `None`).
pub fn mk_service_app(namespace: &str, name: &str, app: Option<&str>) -> Service {
    let mut port = json!({"name": "http", "port": 80});
    if let Some(app) = app {
        port["appProtocol"] = json!(app);
    }
    object(namespace, name, json!({"spec": {"ports": [port]}}))
}

/// An EndpointSlice of `service` with ports `(name, port)` and endpoints `(address, conditions)`.
pub fn mk_slice(namespace: &str, name: &str, service: &str, ports: &[(&str, i32)], endpoints: Value) -> EndpointSlice {
    let ports: Vec<Value> = ports.iter().map(|(n, p)| json!({"name": n, "port": p, "protocol": "TCP"})).collect();
    object(
        namespace,
        name,
        json!({
            "metadata": {"labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": ports, "endpoints": endpoints
        }),
    )
}

pub fn mk_policy(namespace: &str, name: &str, spec: Value) -> UploadPolicy {
    object(namespace, name, json!({"apiVersion": "holdfast.io/v1alpha1", "kind": "UploadPolicy", "spec": spec}))
}

pub const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
pub const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleQ==\n-----END PRIVATE KEY-----\n";

/// A `kubernetes.io/tls` Secret with PEM-shaped (not cryptographically valid) content, as `stringData`.
pub fn mk_tls_secret(namespace: &str, name: &str) -> Secret {
    let data = json!({"tls.crt": CERT_PEM, "tls.key": KEY_PEM});
    object(namespace, name, json!({"type": "kubernetes.io/tls", "stringData": data}))
}

/// A Secret of `type_` (`None`: no type, which the API reads as Opaque) with `data` as `stringData`.
pub fn mk_secret(namespace: &str, name: &str, type_: Option<&str>, data: &[(&str, &str)]) -> Secret {
    let data: serde_json::Map<String, Value> = data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    let mut body = json!({"stringData": data});
    if let Some(type_) = type_ {
        body["type"] = json!(type_);
    }
    object(namespace, name, body)
}

/// An `Opaque` Secret, as indexed by the Opaque watch (and by the file source).
pub fn mk_opaque_secret(namespace: &str, name: &str, data: &[(&str, &str)]) -> crate::index::OpaqueSecret {
    crate::index::OpaqueSecret(mk_secret(namespace, name, Some("Opaque"), data))
}

pub fn created(at: &str) -> Value {
    json!({"creationTimestamp": at})
}

/// The usual world: our default class and Service `default/web` (port `http` 80 → 8080 on one ready endpoint).
pub fn base_index() -> Index {
    let mut index = Index::default();
    add(&mut index, mk_class("holdfast", false));
    add(&mut index, mk_service("default", "web", &[("http", 80)]));
    add(&mut index, mk_slice("default", "web-1", "web", &[("http", 8080)], json!([{"addresses": ["10.0.0.1"]}])));
    index
}

pub fn add<K: IndexKind>(index: &mut Index, object: K) {
    index.apply(object).unwrap();
}

/// Translates with default config and checks the dataplane would accept the result: translation must never
/// produce a snapshot that sinks every route with it.
pub fn run(index: &Index) -> Translation {
    let translation = translate(index, &Config::default());
    translation.snapshot.validate().expect("translation produced a snapshot the dataplane refuses");
    translation
}

/// `(host, path, backend, policy)` of every route, sorted, for compact assertions.
pub fn routes(t: &Translation) -> Vec<(String, String, String, String)> {
    let mut out: Vec<_> = t
        .snapshot
        .hosts
        .iter()
        .flat_map(|h| {
            h.paths.iter().map(|p| {
                (h.host.clone(), p.path.clone(), p.target.backend.clone(), p.target.policy.clone().unwrap_or_default())
            })
        })
        .collect();
    out.sort();
    out
}

pub fn key(namespace: &str, name: &str) -> ObjectKey {
    ObjectKey::new(namespace, name)
}

/// Reasons of the warnings on one object.
pub fn reasons(t: &Translation, kind: &str, namespace: &str, name: &str) -> Vec<&'static str> {
    t.report.warnings_for(kind, &key(namespace, name)).iter().map(|w| w.reason.as_str()).collect()
}
