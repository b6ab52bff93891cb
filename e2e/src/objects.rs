//! The objects the cluster test creates, as a user would write them: an IngressClass for this run's controller, a
//! Service without a selector whose EndpointSlice points at the test hosts, an Ingress, and UploadPolicies. Each is
//! written as JSON (the shape `kubectl apply` takes) and parsed into its type, so a field the types do not know
//! fails here rather than being dropped silently.

use holdfast_crds::UploadPolicy;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde_json::{json, Value};
use std::net::Ipv4Addr;

/// Port the upstreams listen on inside their test hosts.
pub const UPSTREAM_PORT: u16 = 3000;
/// Name of the Service (and the EndpointSlice's `kubernetes.io/service-name`).
pub const SERVICE: &str = "uploads";
pub const INGRESS: &str = "uploads";
/// Targets the Ingress; valid.
pub const VALID_POLICY: &str = "uploads-valid";
/// Targets the Service; `memoryBuffer: 1Gi` passes the CRD schema but exceeds the dataplane's 64Mi bound, so only
/// the controller can reject it.
pub const INVALID_POLICY: &str = "uploads-invalid";
/// The valid policy's `maxBodySize`, in bytes: larger uploads get 413, which the default (unlimited) would not give.
pub const VALID_MAX_BODY: usize = 1 << 20;

fn parse<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("the suite's own manifests match the API types")
}

/// An IngressClass served by the controller named `controller` (unique to the run, so that a Holdfast already
/// installed in the cluster leaves this run's Ingress alone). Not the default class: other Ingresses are untouched.
pub fn ingress_class(name: &str, controller: &str) -> IngressClass {
    parse(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": { "name": name },
        "spec": { "controller": controller },
    }))
}

/// A Service without a selector: nothing in the cluster manages its endpoints but the EndpointSlice below.
pub fn service(namespace: &str) -> Service {
    parse(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": SERVICE, "namespace": namespace },
        "spec": { "ports": [{ "name": "http", "port": 80, "targetPort": UPSTREAM_PORT, "protocol": "TCP" }] },
    }))
}

/// One ready endpoint per test host address, on [`UPSTREAM_PORT`].
pub fn endpoint_slice(namespace: &str, addresses: &[Ipv4Addr]) -> EndpointSlice {
    let endpoints: Vec<Value> =
        addresses.iter().map(|a| json!({ "addresses": [a.to_string()], "conditions": { "ready": true } })).collect();
    parse(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{SERVICE}-e2e"), "namespace": namespace,
            // managed-by keeps Kubernetes' own EndpointSlice controllers from claiming the slice.
            "labels": { "kubernetes.io/service-name": SERVICE, "endpointslice.kubernetes.io/managed-by": "holdfast-e2e" },
        },
        "addressType": "IPv4",
        "ports": [{ "name": "http", "port": UPSTREAM_PORT, "protocol": "TCP" }],
        "endpoints": endpoints,
    }))
}

/// Every host, every path, to the Service's `http` port (a named port, resolved through the EndpointSlice).
pub fn ingress(namespace: &str, class: &str) -> Ingress {
    parse(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": { "name": INGRESS, "namespace": namespace },
        "spec": {
            "ingressClassName": class,
            "rules": [{ "http": { "paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": { "service": { "name": SERVICE, "port": { "name": "http" } } },
            }] } }],
        },
    }))
}

pub fn valid_policy(namespace: &str) -> UploadPolicy {
    parse(json!({
        "apiVersion": "holdfast.io/v1alpha1", "kind": "UploadPolicy",
        "metadata": { "name": VALID_POLICY, "namespace": namespace },
        "spec": {
            "targetRefs": [{ "kind": "Ingress", "name": INGRESS }],
            "mode": "Buffered",
            "maxBodySize": "1Mi",
            "replay": { "maxAttempts": 3, "upstreamWaitTimeout": "10s" },
        },
    }))
}

pub fn invalid_policy(namespace: &str) -> UploadPolicy {
    parse(json!({
        "apiVersion": "holdfast.io/v1alpha1", "kind": "UploadPolicy",
        "metadata": { "name": INVALID_POLICY, "namespace": namespace },
        "spec": { "targetRefs": [{ "kind": "Service", "name": SERVICE }], "memoryBuffer": "1Gi" },
    }))
}
