//! The request an attempt sends upstream: the client's request line and end-to-end fields, and the fields Holdfast
//! sets, kept apart until they are sent. [`crate::forward`] builds it from the client's head; every protocol of this
//! layer sends it in its own way (written out on a plain connection, as a header map for hyper's clients).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const ATTEMPT: HeaderName = HeaderName::from_static("x-holdfast-attempt");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The request line and headers sent upstream; cloned for each attempt.
///
/// The fields Holdfast sets are kept apart from the client's ([`Added`]) and joined when the head is sent: a small
/// GET then costs no hashed insert into the client's header map, and a plain connection writes them straight out.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: Method,
    /// Origin form: path and query only.
    pub uri: Uri,
    /// The client's end-to-end fields, without any of the fields in `added`.
    pub headers: HeaderMap,
    pub added: Added,
}

/// The fields Holdfast sets on the upstream request, each replacing any the client sent.
#[derive(Debug, Clone)]
pub struct Added {
    /// The host routing used, sent as `X-Forwarded-Host`; also as `Host` when `replaces_host`.
    pub host: Option<HeaderValue>,
    /// The host is not the client's own `Host` field (HTTP/2's `:authority`, an absolute-form target).
    pub replaces_host: bool,
    pub forwarded_for: Option<HeaderValue>,
    pub forwarded_proto: &'static str,
    pub request_id: HeaderValue,
    /// The exact body length when known; `None` lets hyper chunk the body.
    pub content_length: Option<u64>,
    /// 1-based; attempts after the first carry `X-Holdfast-Attempt`.
    pub attempt: u32,
    /// The protocol a tunnel request asks to switch to (the client's `Upgrade`, `websocket` from an HTTP/2
    /// extended CONNECT): sent with `Connection: upgrade`. `None` for every other request.
    pub upgrade: Option<HeaderValue>,
    /// The client takes trailers (`TE: trailers`). Said to upstreams whose trailers reach the client (through
    /// hyper's clients); gRPC servers look for it.
    pub te_trailers: bool,
}

impl Added {
    /// The fields other than `Host`, in the order they are sent, as `(name, value)`.
    fn each(&self, mut field: impl FnMut(&HeaderName, &[u8])) {
        if let Some(len) = self.content_length {
            field(&header::CONTENT_LENGTH, itoa_u64(len, &mut [0; 20]));
        }
        if let Some(host) = &self.host {
            field(&X_FORWARDED_HOST, host.as_bytes());
        }
        if let Some(ips) = &self.forwarded_for {
            field(&X_FORWARDED_FOR, ips.as_bytes());
        }
        field(&X_FORWARDED_PROTO, self.forwarded_proto.as_bytes());
        field(&REQUEST_ID, self.request_id.as_bytes());
        if self.attempt > 1 {
            field(&ATTEMPT, itoa_u64(self.attempt.into(), &mut [0; 20]));
        }
        if let Some(protocol) = &self.upgrade {
            field(&header::CONNECTION, b"upgrade");
            field(&header::UPGRADE, protocol.as_bytes());
        }
    }
}

/// `n` in decimal, in the tail of `buf`.
pub(crate) fn itoa_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

impl RequestHead {
    /// Every field to send: the client's and Holdfast's (for hyper's client, which takes a header map).
    pub fn upstream_headers(&self) -> HeaderMap {
        let mut headers = self.headers.clone();
        if let Some(host) = self.added.host.as_ref().filter(|_| self.added.replaces_host) {
            headers.insert(header::HOST, host.clone());
        }
        self.added.each(|name, value| {
            // Every added value came from a header value, a number or a scheme: all valid.
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.insert(name.clone(), value);
            }
        });
        if self.added.te_trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        headers
    }

    /// The protocol this tunnel request asks to switch to; `None` for an ordinary request.
    pub fn upgrade(&self) -> Option<&HeaderValue> {
        self.added.upgrade.as_ref()
    }

    /// Writes every field as `name: value\r\n`: `Host` first (RFC 9112 §3.2), then the client's, then Holdfast's.
    pub fn encode_fields(&self, out: &mut Vec<u8>) {
        let mut field = |name: &HeaderName, value: &[u8]| {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        };
        if let Some(host) = self.added.host.as_ref().filter(|_| self.added.replaces_host) {
            field(&header::HOST, host.as_bytes());
        }
        for (name, value) in &self.headers {
            field(name, value.as_bytes());
        }
        self.added.each(field);
    }
}

impl RequestHead {
    /// Marks the head as attempt `n` (1-based); the first attempt carries no marker.
    pub fn set_attempt(&mut self, n: u32) {
        self.added.attempt = n;
    }

    /// A copy of the head marked as the attempt after its own.
    pub fn next_attempt(&self) -> RequestHead {
        let mut next = self.clone();
        next.added.attempt += 1;
        next
    }
}

/// Whether a field's comma-separated list holds `token` (case-insensitive, as tokens are).
pub fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_in_decimal() {
        for n in [0, 7, 10, 4_294_967_296, u64::MAX] {
            assert_eq!(itoa_u64(n, &mut [0; 20]), n.to_string().as_bytes());
        }
    }
}
