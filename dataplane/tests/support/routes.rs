//! Snapshots for the protocol tests: one route to one backend whose `protocol` and `tls` the test chooses.

use serde_json::{json, Value};
use std::net::SocketAddr;

/// Routes every host and path to backend `b` with `endpoints`, the backend's extra fields (`{"protocol": "Http2",
/// "tls": {…}}`) merged in, under policy `p`.
pub fn routed(version: u64, endpoints: &[SocketAddr], backend: Value, policy: Value) -> Value {
    let endpoints: Vec<Value> =
        endpoints.iter().map(|a| json!({"address": a.ip().to_string(), "port": a.port()})).collect();
    let mut b = json!({"endpoints": endpoints});
    if let Value::Object(extra) = backend {
        b.as_object_mut().unwrap().extend(extra);
    }
    json!({
        "version": version,
        "hosts": [{"host": "", "paths": [{"path": "/", "pathType": "Prefix", "backend": "b", "policy": "p"}]}],
        "backends": {"b": b},
        "policies": {"p": policy},
    })
}

/// Backend fields for TLS to the peers' certificates (`support::peer::TLS_NAME`), verification off.
pub fn tls_unverified() -> Value {
    json!({"serverName": super::peer::TLS_NAME, "verify": false})
}
