//! Checks a snapshot before it is put in force, so that a bad push is refused whole with a reason instead of
//! half-applied. Each error names the offending field the way a user would look for it.

use crate::{Backend, Endpoint, PathRule, Policy, RouteTarget, Snapshot};
use std::net::IpAddr;

/// Memory buffers above this are refused: a policy must not let one request pin a gigabyte of RAM.
pub const MAX_MEMORY_BUFFER: u64 = 64 * 1024 * 1024;

/// Why a snapshot was refused.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("invalid snapshot JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("version {offered} is not greater than the version in force ({current})")]
    StaleVersion { offered: u64, current: u64 },
    #[error("hosts[{index}].host {host:?} is not a valid host (a DNS name, or *. followed by one)")]
    BadHost { index: usize, host: String },
    #[error("host {host:?} appears in more than one host rule")]
    DuplicateHost { host: String },
    #[error("{at}.path {path:?} must start with '/'")]
    BadPath { at: String, path: String },
    #[error("{at} refers to backend {name:?}, which is not in backends")]
    UnknownBackend { at: String, name: String },
    #[error("{at} refers to policy {name:?}, which is not in policies")]
    UnknownPolicy { at: String, name: String },
    #[error("backends[{backend:?}].endpoints[{index}].address {address:?} is not an IP address")]
    BadEndpointAddress { backend: String, index: usize, address: String },
    #[error("backends[{backend:?}].endpoints[{index}].port must not be 0")]
    BadEndpointPort { backend: String, index: usize },
    #[error("peers[{name:?}] must have a name, an IP address and a port")]
    BadPeer { name: String },
    #[error("tls[{index}].hosts has {host:?}, which is not a valid host")]
    BadTlsHost { index: usize, host: String },
    #[error("tls[{index}] ({source_name}) is not a usable certificate and key: {reason}")]
    BadCertificate { index: usize, source_name: String, reason: String },
    #[error("backends[{backend:?}].tls is not usable: {reason}")]
    BadUpstreamTls { backend: String, reason: String },
    #[error("policies[{policy:?}].{field} {reason}")]
    BadPolicy { policy: String, field: &'static str, reason: &'static str },
}

impl Snapshot {
    /// Checks references, hosts, paths, addresses and policy bounds. Does not check the version: that needs the
    /// version in force, see [`Snapshot::check_newer_than`].
    pub fn validate(&self) -> Result<(), SnapshotError> {
        let mut seen_hosts = std::collections::HashSet::new();
        for (index, rule) in self.hosts.iter().enumerate() {
            if !valid_host(&rule.host) {
                return Err(SnapshotError::BadHost { index, host: rule.host.clone() });
            }
            if !seen_hosts.insert(rule.host.to_ascii_lowercase()) {
                return Err(SnapshotError::DuplicateHost { host: rule.host.clone() });
            }
            for (p, path) in rule.paths.iter().enumerate() {
                self.validate_path(&format!("hosts[{index}].paths[{p}]"), path)?;
            }
        }
        if let Some(target) = &self.default_backend {
            self.validate_target("defaultBackend", target)?;
        }
        for (name, backend) in &self.backends {
            validate_backend(name, backend)?;
        }
        for (name, policy) in self.policies.iter() {
            policy.validate(name)?;
        }
        for (name, peer) in &self.peers {
            if name.is_empty() || peer.address.parse::<IpAddr>().is_err() || peer.port == 0 {
                return Err(SnapshotError::BadPeer { name: name.clone() });
            }
        }
        for (index, cert) in self.tls.iter().enumerate() {
            if let Some(host) = cert.hosts.iter().find(|h| h.is_empty() || !valid_host(h)) {
                return Err(SnapshotError::BadTlsHost { index, host: host.clone() });
            }
            cert.check().map_err(|reason| SnapshotError::BadCertificate {
                index,
                source_name: cert.source.clone().unwrap_or_else(|| "no source".to_string()),
                reason,
            })?;
        }
        Ok(())
    }

    /// Refuses a snapshot that does not move the version forward.
    pub fn check_newer_than(&self, current: Option<u64>) -> Result<(), SnapshotError> {
        match current {
            Some(current) if self.version <= current => {
                Err(SnapshotError::StaleVersion { offered: self.version, current })
            }
            _ => Ok(()),
        }
    }

    fn validate_path(&self, at: &str, rule: &PathRule) -> Result<(), SnapshotError> {
        if !rule.path.starts_with('/') {
            return Err(SnapshotError::BadPath { at: at.to_string(), path: rule.path.clone() });
        }
        self.validate_target(at, &rule.target)
    }

    fn validate_target(&self, at: &str, target: &RouteTarget) -> Result<(), SnapshotError> {
        if !self.backends.contains_key(&target.backend) {
            return Err(SnapshotError::UnknownBackend { at: at.to_string(), name: target.backend.clone() });
        }
        match &target.policy {
            Some(name) if !self.policies.contains_key(name) => {
                Err(SnapshotError::UnknownPolicy { at: at.to_string(), name: name.clone() })
            }
            _ => Ok(()),
        }
    }
}

/// A DNS name of letters, digits, '-' and '.', optionally starting with `*.`; empty means "any host".
pub fn valid_host(host: &str) -> bool {
    if host.is_empty() {
        return true;
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Checks one backend on its own (its references are checked from the routes): a delta checks each backend it
/// upserts with this, exactly as a full snapshot does, and so does the controller for each backend it patches.
pub fn validate_backend(name: &str, backend: &Backend) -> Result<(), SnapshotError> {
    for (index, endpoint) in backend.endpoints.iter().enumerate() {
        validate_endpoint(name, index, endpoint)?;
    }
    if let Some(tls) = &backend.tls {
        tls.check().map_err(|reason| SnapshotError::BadUpstreamTls { backend: name.to_string(), reason })?;
    }
    Ok(())
}

fn validate_endpoint(backend: &str, index: usize, endpoint: &Endpoint) -> Result<(), SnapshotError> {
    if endpoint.address.parse::<IpAddr>().is_err() {
        return Err(SnapshotError::BadEndpointAddress {
            backend: backend.to_string(),
            index,
            address: endpoint.address.clone(),
        });
    }
    if endpoint.port == 0 {
        return Err(SnapshotError::BadEndpointPort { backend: backend.to_string(), index });
    }
    Ok(())
}

impl Policy {
    /// Checks the bounds of a policy; `name` appears in the error.
    pub fn validate(&self, name: &str) -> Result<(), SnapshotError> {
        validate_policy(name, self)
    }
}

fn validate_policy(name: &str, policy: &Policy) -> Result<(), SnapshotError> {
    let bad = |field, reason| Err(SnapshotError::BadPolicy { policy: name.to_string(), field, reason });
    if policy.memory_buffer_bytes > MAX_MEMORY_BUFFER {
        return bad("memoryBufferBytes", "must be at most 64 MiB");
    }
    if policy.replay.max_attempts == 0 {
        return bad("replay.maxAttempts", "must be at least 1");
    }
    for (status, page) in &policy.error_pages {
        if !matches!(status, 502..=504) {
            return bad("errorPages", "may only have the keys 502, 503 and 504");
        }
        if page.status.is_some_and(|s| !(200..=599).contains(&s)) {
            return bad("errorPages.status", "must be an HTTP status between 200 and 599");
        }
        if http_header_value_invalid(&page.content_type) {
            return bad("errorPages.contentType", "must be a valid header value");
        }
    }
    let t = &policy.timeouts;
    for (field, value) in [
        ("timeouts.clientBodyMs", t.client_body_ms),
        ("timeouts.upstreamConnectMs", t.upstream_connect_ms),
        ("timeouts.upstreamSendMs", t.upstream_send_ms),
        ("timeouts.upstreamReadMs", t.upstream_read_ms),
        ("timeouts.tunnelIdleMs", t.tunnel_idle_ms),
    ] {
        if value == 0 {
            return bad(field, "must be greater than 0");
        }
    }
    policy.min_body_rate.check().or_else(|(field, reason)| bad(field, reason))?;
    if let Some(resumable) = &policy.resumable {
        validate_resumable(resumable).or_else(|(field, reason)| bad(field, reason))?;
    }
    Ok(())
}

fn validate_resumable(r: &crate::Resumable) -> Result<(), (&'static str, &'static str)> {
    for (field, value) in [
        ("resumable.expiresAfterMs", r.expires_after_ms),
        ("resumable.outcomeRetentionMs", r.outcome_retention_ms),
        ("resumable.answerWaitMs", r.answer_wait_ms),
    ] {
        if value == 0 {
            return Err((field, "must be greater than 0"));
        }
    }
    for (key, header) in &r.metadata_headers {
        // tus: keys are non-empty and contain neither spaces nor commas.
        if key.is_empty() || key.bytes().any(|b| b == b' ' || b == b',' || !b.is_ascii_graphic()) {
            return Err(("resumable.metadataHeaders", "keys must be tus metadata keys (no spaces or commas)"));
        }
        if !is_token(header) {
            return Err(("resumable.metadataHeaders", "values must be valid header names"));
        }
        if RESERVED_DELIVERY_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(header)) {
            return Err(("resumable.metadataHeaders", "may not name a field Holdfast sets on the delivery itself"));
        }
    }
    Ok(())
}

/// An RFC 9110 token: what a field name (and a media type's parts) is made of.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Fields of a delivery that Holdfast writes itself, or that would change its framing: metadata may not set them.
const RESERVED_DELIVERY_FIELDS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "content-type",
    "content-disposition",
    "content-encoding",
    "host",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "expect",
    "x-request-id",
    "authorization",
    "cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-real-ip",
];

fn http_header_value_invalid(value: &str) -> bool {
    value.is_empty() || value.bytes().any(|b| b < 0x20 || b == 0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Snapshot, SnapshotError> {
        Snapshot::from_json(json.as_bytes())
    }

    const GOOD: &str = r#"{"version": 2,
        "hosts": [{"host": "*.example.com", "paths": [{"path": "/up", "pathType": "Prefix", "backend": "b", "policy": "p"}]}],
        "backends": {"b": {"endpoints": [{"address": "127.0.0.1", "port": 8000}]}},
        "policies": {"p": {"mode": "Tee", "replay": {"maxAttempts": 3}}}}"#;

    #[test]
    fn accepts_a_complete_snapshot_and_fills_defaults() {
        let s = parse(GOOD).unwrap();
        let p = &s.policies["p"];
        assert_eq!(p.replay.max_attempts, 3);
        assert_eq!(p.replay.upstream_wait_timeout_ms, 60_000);
        assert_eq!(p.memory_buffer_bytes, 128 * 1024);
        assert!(s.backends["b"].endpoints[0].ready);
    }

    #[test]
    fn refuses_each_kind_of_bad_input_with_the_field_named() {
        let cases: &[(&str, &str)] = &[
            ("{", "invalid snapshot JSON"),
            (r#"{"version": 1, "bogus": 1}"#, "unknown field `bogus`"),
            (r#"{"version": 1, "hosts": [{"host": "a..b", "paths": []}]}"#, "hosts[0].host"),
            (r#"{"version": 1, "hosts": [{"host": "*.*.b", "paths": []}]}"#, "hosts[0].host"),
            (r#"{"version": 1, "hosts": [{"host": "a", "paths": []}, {"host": "A", "paths": []}]}"#, "more than one"),
            (
                r#"{"version": 1, "hosts": [{"paths": [{"path": "x", "pathType": "Exact", "backend": "b"}]}]}"#,
                "must start with '/'",
            ),
            (r#"{"version": 1, "defaultBackend": {"backend": "nope"}}"#, "backend \"nope\""),
            (
                r#"{"version": 1, "backends": {"b": {}}, "defaultBackend": {"backend": "b", "policy": "q"}}"#,
                "policy \"q\"",
            ),
            (
                r#"{"version": 1, "backends": {"b": {"endpoints": [{"address": "pod.local", "port": 1}]}}}"#,
                "not an IP address",
            ),
            (
                r#"{"version": 1, "backends": {"b": {"endpoints": [{"address": "::1", "port": 0}]}}}"#,
                "port must not be 0",
            ),
            (r#"{"version": 1, "policies": {"p": {"mode": "Fast"}}}"#, "unknown variant `Fast`"),
            (r#"{"version": 1, "policies": {"p": {"replay": {"maxAttempts": 0}}}}"#, "maxAttempts must be at least 1"),
            (r#"{"version": 1, "policies": {"p": {"memoryBufferBytes": 1000000000}}}"#, "at most 64 MiB"),
            (r#"{"version": 1, "policies": {"p": {"timeouts": {"upstreamReadMs": 0}}}}"#, "upstreamReadMs"),
            (r#"{"version": 1, "policies": {"p": {"errorPages": {"404": {"body": "x"}}}}}"#, "502, 503 and 504"),
            (
                r#"{"version": 1, "policies": {"p": {"errorPages": {"503": {"body": "x", "status": 99}}}}}"#,
                "between 200",
            ),
            (r#"{"version": 1, "policies": {"p": {"halfClose": "Ignore"}}}"#, "unknown variant `Ignore`"),
            (r#"{"version": 1, "policies": {"p": {"timeouts": {"tunnelIdleMs": 0}}}}"#, "tunnelIdleMs"),
            (
                r#"{"version": 1, "policies": {"p": {"minBodyRate": {"bytesPerSecond": 10, "windowMs": 0}}}}"#,
                "minBodyRate.windowMs must be between 100 ms and 1 h",
            ),
            (
                r#"{"version": 1, "policies": {"p": {"minBodyRate": {"bytesPerSecond": 2000000000}}}}"#,
                "minBodyRate.bytesPerSecond must be at most",
            ),
            (r#"{"version": 1, "policies": {"p": {"minBodyRate": {"perSecond": 1}}}}"#, "unknown field `perSecond`"),
            (r#"{"version": 1, "backends": {"b": {"protocol": "Http3"}}}"#, "unknown variant `Http3`"),
            (r#"{"version": 1, "backends": {"b": {"tls": {}}}}"#, "missing field `serverName`"),
            (r#"{"version": 1, "backends": {"b": {"tls": {"serverName": "a b"}}}}"#, "neither a DNS name"),
            (
                r#"{"version": 1, "backends": {"b": {"tls": {"serverName": "s.ns.svc", "caPem": "nope"}}}}"#,
                "caPem holds no CERTIFICATE",
            ),
            (
                r#"{"version": 1, "backends": {"b": {"tls": {"serverName": "s.ns.svc", "clientKeyPem": "x"}}}}"#,
                "must be given together",
            ),
        ];
        for (json, expected) in cases {
            let err = parse(json).expect_err(json).to_string();
            assert!(err.contains(expected), "{json}: {err:?} should contain {expected:?}");
        }
    }

    #[test]
    fn backends_default_to_plain_http1_and_carry_their_protocol_and_tls() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.backends["b"].protocol, crate::UpstreamProtocol::Http1);
        assert!(s.backends["b"].tls.is_none());
        assert_eq!(s.policies["p"].timeouts.tunnel_idle_ms, 3_600_000);
        let json = r#"{"version": 1, "backends": {"g": {"protocol": "Http2",
            "tls": {"serverName": "grpc.apps.svc", "verify": true, "sni": true}}}}"#;
        let s = parse(json).unwrap();
        let g = &s.backends["g"];
        assert_eq!(g.protocol, crate::UpstreamProtocol::Http2);
        let tls = g.tls.as_ref().unwrap();
        assert!(tls.verify && tls.sni && tls.ca_pem.is_none());
        assert_eq!(tls.server_name, "grpc.apps.svc");
        let again = parse(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(s, again);
    }

    #[test]
    fn versions_must_increase() {
        let s = parse(GOOD).unwrap();
        assert!(s.check_newer_than(None).is_ok());
        assert!(s.check_newer_than(Some(1)).is_ok());
        assert!(s.check_newer_than(Some(2)).is_err());
        assert!(s.check_newer_than(Some(3)).is_err());
    }

    #[test]
    fn resumable_policies_have_defaults_and_bounds() {
        let with =
            |resumable: &str| parse(&format!(r#"{{"version": 1, "policies": {{"p": {{"resumable": {resumable}}}}}}}"#));
        let s = with("{}").unwrap();
        let r = s.policies["p"].resumable.as_ref().unwrap();
        assert_eq!((r.protocol, r.delivery_method), (crate::ResumableProtocol::Tus, crate::DeliveryMethod::Post));
        assert_eq!(r.expires_after_ms, crate::DEFAULT_EXPIRES_AFTER_MS);
        assert_eq!(parse(&serde_json::to_string(&s).unwrap()).unwrap(), s);
        let s = with(r#"{"deliveryMethod": "PUT", "metadataHeaders": {"title": "X-Upload-Title"}}"#).unwrap();
        assert_eq!(s.policies["p"].resumable.as_ref().unwrap().delivery_method, crate::DeliveryMethod::Put);
        for (bad, says) in [
            (r#"{"answerWaitMs": 0}"#, "resumable.answerWaitMs"),
            (r#"{"metadataHeaders": {"a b": "X-A"}}"#, "keys must be tus metadata keys"),
            (r#"{"metadataHeaders": {"a": "X A"}}"#, "valid header names"),
            (r#"{"metadataHeaders": {"a": "Content-Length"}}"#, "sets on the delivery itself"),
            (r#"{"metadataHeaders": {"a": "authorization"}}"#, "sets on the delivery itself"),
        ] {
            let error = with(bad).unwrap_err().to_string();
            assert!(error.contains(says), "{bad}: {error}");
        }
        assert!(with(r#"{"protocol": "Ietf"}"#).is_err());
    }

    #[test]
    fn min_body_rate_is_the_default_when_absent_off_at_zero_and_left_out_when_default() {
        // A snapshot from a controller older than the field: the default floor applies.
        let s = parse(r#"{"version": 1, "policies": {"p": {}}}"#).unwrap();
        assert_eq!(s.policies["p"].min_body_rate, crate::MinBodyRate { bytes_per_second: 500, window_ms: 60_000 });
        assert_eq!(s.policies["p"].min_body_rate.bytes_per_window(), 30_000);
        // Written back, the default is left out so that older dataplanes (which refuse unknown fields) take it.
        assert!(!serde_json::to_string(&s).unwrap().contains("minBodyRate"));
        let s = parse(r#"{"version": 1, "policies": {"p": {"minBodyRate": {"bytesPerSecond": 0, "windowMs": 0}}}}"#)
            .unwrap();
        assert!(s.policies["p"].min_body_rate.is_off());
        let s = parse(r#"{"version": 1, "policies": {"p": {"minBodyRate": {"windowMs": 2000}}}}"#).unwrap();
        let rate = s.policies["p"].min_body_rate;
        assert_eq!((rate.bytes_per_second, rate.bytes_per_window()), (500, 1000));
        assert_eq!(parse(&serde_json::to_string(&s).unwrap()).unwrap(), s);
    }

    #[test]
    fn round_trips_through_json() {
        let s = parse(GOOD).unwrap();
        let again = parse(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(s, again);
    }
}
