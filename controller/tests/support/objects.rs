//! Small builders of API objects from JSON, for tests outside the crate.

use serde_json::{json, Value};

pub fn from<K: serde::de::DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value).unwrap()
}

pub fn class() -> k8s_openapi::api::networking::v1::IngressClass {
    from(json!({"metadata": {"name": "holdfast"}, "spec": {"controller": "holdfast.io/ingress-controller"}}))
}

pub fn service(name: &str) -> k8s_openapi::api::core::v1::Service {
    from(json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"ports": [{"name": "http", "port": 80}]}}))
}

/// An Ingress routing `/` to `service`:80.
pub fn ingress(name: &str, service: &str) -> k8s_openapi::api::networking::v1::Ingress {
    from(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"ingressClassName": "holdfast", "rules": [{"host": format!("{name}.test"), "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"number": 80}}}}
        ]}}]}
    }))
}

pub fn slice(name: &str, service: &str, address: &str) -> k8s_openapi::api::discovery::v1::EndpointSlice {
    from(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}], "endpoints": [{"addresses": [address]}]
    }))
}

pub fn policy(name: &str, spec: Value) -> holdfast_crds::UploadPolicy {
    from(json!({"apiVersion": "holdfast.io/v1alpha1", "kind": "UploadPolicy",
        "metadata": {"name": name, "namespace": "default", "generation": 2}, "spec": spec}))
}
