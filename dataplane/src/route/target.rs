//! What routing reads from a request, checked before routing and put in the form the upstream will receive: the
//! request-target's length, the `Host` field(s) against the target's authority, and the path (`normalize`).
//!
//! Routing and forwarding read the same request afterwards, so a request is never routed by one host or path and
//! delivered with another: a second `Host` field, a `Host` that contradicts HTTP/2's `:authority`, and a path with
//! dot segments are settled here or refused.

use super::host_field::{self, HostField};
use super::normalize::{normalize_path, PathError};
use http::uri::{Authority, PathAndQuery};
use http::{header, HeaderMap, Request, StatusCode, Uri, Version};
use std::borrow::Cow;

/// The longest request-target (path and query) accepted by default (`--max-request-target`): nginx's
/// `large_client_header_buffers` line (8 KiB), also Apache's `LimitRequestLine`. Longer targets get 414.
pub const MAX_TARGET_BYTES: usize = 8 * 1024;

/// The most `--max-request-target` may be: half the HTTP/1.1 read buffer (64 KiB, `server::READ_BUFFER`), which
/// holds the whole request head, so that a request with a target at the limit still has room for its fields.
pub const MAX_TARGET_BYTES_CEILING: usize = 32 * 1024;

/// Why a request cannot be routed as it is (the client gets 400, or 414 for a long target). The messages never
/// echo the request's fields.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("the request target is longer than {0} bytes")]
    TooLong(usize),
    #[error("an HTTP/1.1 request needs a Host field (RFC 9112 section 3.2)")]
    MissingHost,
    #[error("a request may have only one Host field (RFC 9112 section 3.2)")]
    DuplicateHost,
    #[error("the Host field is not a host with an optional port")]
    InvalidHost,
    #[error("the Host field names another server than the request's authority (RFC 9113 section 8.3.1)")]
    HostContradictsAuthority,
    #[error("bad path: {0}")]
    Path(#[from] PathError),
    #[error("the normalised path does not form a valid request target")]
    Unrepresentable,
}

impl TargetError {
    pub fn status(&self) -> StatusCode {
        match self {
            TargetError::TooLong(_) => StatusCode::URI_TOO_LONG,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Checks a request's target (at most `max_target_bytes` of path and query) and host fields, and puts its path in
/// normal form in place (the query is untouched).
pub fn prepare<B>(request: &mut Request<B>, max_target_bytes: usize) -> Result<(), TargetError> {
    let target_len = request.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > max_target_bytes {
        return Err(TargetError::TooLong(max_target_bytes));
    }
    check_host(request.version(), request.uri(), request.headers())?;
    if let Cow::Owned(normal) = normalize_path(request.uri().path())? {
        *request.uri_mut() = with_path(request.uri(), &normal)?;
    }
    Ok(())
}

/// RFC 9112 §3.2: one `Host` field, required from HTTP/1.1 on (HTTP/1.0 may leave it out), with a valid value; an
/// absolute-form target's authority wins over it (§3.2.2), and `forward` replaces it with that authority.
/// RFC 9113 §8.3.1: a `Host` beside `:authority` that names another server makes the request malformed. (Routing
/// by `:authority` and forwarding it as `Host` would be consistent too; but a request that carries two names is a
/// client bug or a smuggling attempt, and the RFC asks servers to refuse it.)
fn check_host(version: Version, uri: &Uri, headers: &HeaderMap) -> Result<(), TargetError> {
    let mut fields = headers.get_all(header::HOST).iter();
    let field = match (fields.next(), fields.next()) {
        (Some(_), Some(_)) => return Err(TargetError::DuplicateHost),
        (Some(field), None) => field,
        // HTTP/2 names the server in `:authority`, HTTP/1.0 had no Host.
        (None, _) if version == Version::HTTP_11 => return Err(TargetError::MissingHost),
        (None, _) => return Ok(()),
    };
    let value = field.to_str().map_err(|_| TargetError::InvalidHost)?;
    // An empty Host is what a client sends for a target without an authority (RFC 9112 §3.2).
    if value.is_empty() {
        return Ok(());
    }
    let host = host_field::parse(value).ok_or(TargetError::InvalidHost)?;
    match uri.authority() {
        Some(authority) if version == Version::HTTP_2 && !same_server(uri, authority, host) => {
            Err(TargetError::HostContradictsAuthority)
        }
        _ => Ok(()),
    }
}

/// RFC 3986 §6.2.3 scheme-based comparison: the host in any case, an absent port the scheme's default.
fn same_server(uri: &Uri, authority: &Authority, host: HostField<'_>) -> bool {
    let default = if uri.scheme_str() == Some("https") { 443 } else { 80 };
    authority.host().eq_ignore_ascii_case(host.host)
        && authority.port_u16().unwrap_or(default) == host.port.unwrap_or(default)
}

/// `uri` with another path and its own query, scheme and authority.
fn with_path(uri: &Uri, path: &str) -> Result<Uri, TargetError> {
    let target = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(target).map_err(|_| TargetError::Unrepresentable)?);
    Uri::from_parts(parts).map_err(|_| TargetError::Unrepresentable)
}

#[cfg(test)]
#[path = "target_tests.rs"]
mod tests;
