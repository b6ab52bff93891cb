//! What the upstream sees of the client's request, and what the client sees of the upstream's response.
//!
//! Host is preserved; `X-Forwarded-For`, `-Proto`, `-Host` and `X-Request-Id` are added; hop-by-hop headers (RFC 9110
//! §7.6.1: `Connection` and the fields it names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Transfer-Encoding`,
//! `Upgrade`) are removed in both directions. The body's framing is Holdfast's to decide per attempt, so
//! `Content-Length` is set here from what the spool holds. Every attempt of one request carries the same
//! `X-Request-Id`; attempts after the first add `X-Holdfast-Attempt: N` so an upstream can recognise a replay.

pub use crate::upstream::request::X_FORWARDED_FOR;
use crate::upstream::request::{has_token, X_FORWARDED_HOST, X_FORWARDED_PROTO};
pub use crate::upstream::request::{Added, RequestHead, ATTEMPT, REQUEST_ID};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::Uri;
use std::net::SocketAddr;

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Who sent the request and over what.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub addr: SocketAddr,
    pub scheme: &'static str,
    /// The client's IP as a header value, made once per connection for `X-Forwarded-For`.
    ip: HeaderValue,
}

impl ClientInfo {
    pub fn new(addr: SocketAddr, scheme: &'static str) -> Self {
        let ip = HeaderValue::from_str(&addr.ip().to_string()).expect("an IP address is a valid header value");
        ClientInfo { addr, scheme, ip }
    }
}

/// The client's `X-Request-Id`, or a new one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    match headers.get(REQUEST_ID) {
        Some(id) if !id.is_empty() && id.len() <= 200 => id.clone(),
        _ => new_request_id(),
    }
}

/// 32 hex digits, unique per process and, through a random seed, across replicas. Made from a counter rather than
/// a fresh random UUID so that a request costs no `getrandom` system call, and from a counter per thread (its top
/// 16 bits number the thread) so that the workers do not contend for one.
fn new_request_id() -> HeaderValue {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static SEED: OnceLock<u128> = OnceLock::new();
    static THREADS: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static COUNTER: Cell<u64> = Cell::new(THREADS.fetch_add(1, Ordering::Relaxed) << 48);
    }
    let seed = *SEED.get_or_init(|| uuid::Uuid::new_v4().as_u128());
    let n = COUNTER.with(|counter| {
        let n = counter.get();
        counter.set(n.wrapping_add(1));
        n
    });
    // splitmix64 of the counter spreads consecutive ids over the whole space; xor with the seed keeps them apart
    // from another process's.
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let id = seed ^ (u128::from(z) << 64 | u128::from(n));
    let mut hex = [0u8; 32];
    for (i, digit) in hex.iter_mut().enumerate() {
        *digit = b"0123456789abcdef"[((id >> (124 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&hex).expect("hex is a valid header value")
}

/// The host the client asked for: `:authority` (HTTP/2, absolute-form) or `Host`.
pub fn authority<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    uri.authority().map(|a| a.as_str()).or_else(|| headers.get(header::HOST)?.to_str().ok())
}

/// The head to send upstream, made from the client's head without copying its header map. `body_len` is the exact
/// body length when known; `None` lets hyper chunk the body.
pub fn upstream_head(
    parts: Parts,
    client: &ClientInfo,
    request_id: &HeaderValue,
    body_len: Option<u64>,
) -> RequestHead {
    let Parts { method, uri, mut headers, .. } = parts;
    // The same host that routing used: HTTP/2's `:authority` (or an absolute-form target), else `Host`.
    let (host, replaces_host) = match uri.authority() {
        Some(authority) => (HeaderValue::from_str(authority.as_str()).ok(), true),
        None => (headers.get(header::HOST).filter(|h| h.to_str().is_ok()).cloned(), false),
    };
    // TE is hop-by-hop: only its `trailers` is passed on. Looked up only when the head has hop-by-hop fields at all,
    // which most requests have not (a lookup costs a hash).
    let te_trailers = has_hop_by_hop(&headers) && has_token(&headers, header::TE, "trailers");
    let forwarded_for = forwarded_for(&headers, client);
    remove_hop_by_hop(&mut headers);
    // Most requests carry none of the fields Holdfast replaces: one pass over the names spares the hashed removals.
    if headers.keys().any(|name| REPLACED.contains(name)) {
        for name in &REPLACED {
            headers.remove(name);
        }
    }
    if replaces_host && host.is_some() {
        headers.remove(header::HOST);
    }
    // An origin-form target (every HTTP/1 request to a server) is already what the upstream must see.
    let uri = if uri.scheme().is_none() && uri.authority().is_none() {
        uri
    } else {
        uri.path_and_query().map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()))
    };
    let added = Added {
        host,
        replaces_host,
        forwarded_for,
        forwarded_proto: client.scheme,
        request_id: request_id.clone(),
        content_length: body_len,
        attempt: 1,
        upgrade: None,
        te_trailers,
    };
    RequestHead { method, uri, headers, added }
}

/// `X-Forwarded-For` as the next hop gets it: the client's chain with this client's address appended.
pub fn forwarded_for(headers: &HeaderMap, client: &ClientInfo) -> Option<HeaderValue> {
    match headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(earlier) => HeaderValue::from_str(&format!("{earlier}, {}", client.addr.ip())).ok(),
        None => Some(client.ip.clone()),
    }
}

/// The client's fields that Holdfast removes or sets itself (`Host` only when it comes from elsewhere).
const REPLACED: [HeaderName; 7] =
    [header::EXPECT, header::CONTENT_LENGTH, X_FORWARDED_HOST, X_FORWARDED_FOR, X_FORWARDED_PROTO, REQUEST_ID, ATTEMPT];

/// The hop-by-hop fields every message loses; the fields named in `Connection` go too.
const HOP_BY_HOP: [HeaderName; 6] =
    [header::CONNECTION, KEEP_ALIVE, PROXY_CONNECTION, header::TE, header::TRANSFER_ENCODING, header::UPGRADE];

fn has_hop_by_hop(headers: &HeaderMap) -> bool {
    headers.keys().any(|name| HOP_BY_HOP.contains(name))
}

/// Removes the hop-by-hop fields of RFC 9110 §7.6.1, including those named in `Connection`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of them, and one pass over the few names a message has is cheaper than hashing
    // all six for lookups (this runs twice per request).
    if !has_hop_by_hop(headers) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(request: http::Request<()>) -> Parts {
        request.into_parts().0
    }

    #[test]
    fn adds_forwarding_headers_and_strips_hop_by_hop_ones() {
        let p = parts(
            http::Request::post("/up?x=1")
                .header("host", "photos.example:8080")
                .header("connection", "keep-alive, x-secret-hop")
                .header("x-secret-hop", "1")
                .header("keep-alive", "timeout=5")
                .header("transfer-encoding", "chunked")
                .header("te", "deflate, trailers")
                .header("expect", "100-continue")
                .header("x-forwarded-for", "10.0.0.1")
                .header("idempotency-key", "abc")
                .body(())
                .unwrap(),
        );
        let client = ClientInfo::new("192.0.2.7:5555".parse().unwrap(), "http");
        let head = upstream_head(p, &client, &HeaderValue::from_static("rid"), Some(42));
        let h = &head.upstream_headers();
        // Only `trailers` survives of TE, and only towards hyper's clients, which pass trailers back.
        assert_eq!(h["te"], "trailers");
        assert!(!encoded(&head).contains("te:"), "the plain client discards trailers: {}", encoded(&head));
        for gone in ["connection", "x-secret-hop", "keep-alive", "transfer-encoding", "expect"] {
            assert!(h.get(gone).is_none(), "{gone} must be removed");
        }
        assert_eq!(h["host"], "photos.example:8080");
        assert_eq!(h["x-forwarded-host"], "photos.example:8080");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-request-id"], "rid");
        assert_eq!(h["content-length"], "42");
        assert_eq!(h["idempotency-key"], "abc");
        assert_eq!(head.uri, "/up?x=1");
    }

    #[test]
    fn removes_each_hop_by_hop_field_alone_and_leaves_other_fields() {
        for hop in ["connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade"] {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            headers.insert(HeaderName::from_static(hop), HeaderValue::from_static("x-named"));
            headers.insert(HeaderName::from_static("x-named"), HeaderValue::from_static("1"));
            remove_hop_by_hop(&mut headers);
            assert!(headers.get(hop).is_none(), "{hop} must be removed");
            assert_eq!(headers.get("x-named").is_none(), hop == "connection", "{hop}: only Connection names fields");
            assert_eq!(headers[header::CONTENT_TYPE], "text/plain");
        }
    }

    #[test]
    fn keeps_a_client_request_id_and_numbers_replays() {
        let p = parts(http::Request::get("http://h2.example/x").header("x-request-id", "given").body(()).unwrap());
        let id = request_id(&p.headers);
        assert_eq!(id, "given");
        let client = ClientInfo::new("127.0.0.1:1".parse().unwrap(), "https");
        let mut head = upstream_head(p, &client, &id, None);
        assert_eq!(head.upstream_headers()["host"], "h2.example", "HTTP/2 :authority becomes Host");
        assert!(head.upstream_headers().get("content-length").is_none());
        head.set_attempt(1);
        assert!(head.upstream_headers().get("x-holdfast-attempt").is_none());
        head.set_attempt(3);
        assert_eq!(head.upstream_headers()["x-holdfast-attempt"], "3");
        let (a, b) = (request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
        assert_eq!(a.len(), 32);
        assert_ne!(a, b, "generated ids differ");
    }

    fn encoded(head: &RequestHead) -> String {
        let mut out = Vec::new();
        head.encode_fields(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_plain_connection_gets_the_clients_fields_then_holdfasts() {
        let p = parts(http::Request::get("/a").header("host", "a.example").header("accept", "*/*").body(()).unwrap());
        let client = ClientInfo::new("192.0.2.7:5555".parse().unwrap(), "http");
        let mut head = upstream_head(p, &client, &HeaderValue::from_static("rid"), Some(0));
        assert_eq!(
            encoded(&head),
            "host: a.example\r\naccept: */*\r\ncontent-length: 0\r\nx-forwarded-host: a.example\r\n\
             x-forwarded-for: 192.0.2.7\r\nx-forwarded-proto: http\r\nx-request-id: rid\r\n"
        );
        head.set_attempt(12);
        assert!(encoded(&head).ends_with("x-request-id: rid\r\nx-holdfast-attempt: 12\r\n"));
    }

    #[test]
    fn fields_holdfast_sets_replace_the_clients_on_both_paths() {
        let p = parts(
            http::Request::get("https://h2.example/x")
                .header("host", "spoofed.example")
                .header("x-forwarded-host", "spoofed.example")
                .header("x-forwarded-proto", "gopher")
                .header("x-request-id", "from-client")
                .header("x-holdfast-attempt", "9")
                .header("content-length", "5")
                .body(())
                .unwrap(),
        );
        let client = ClientInfo::new("127.0.0.1:1".parse().unwrap(), "https");
        let head = upstream_head(p, &client, &HeaderValue::from_static("rid"), None);
        let text = encoded(&head);
        assert!(text.starts_with("host: h2.example\r\n"), "Host first, from :authority: {text}");
        for (name, value) in [
            ("host", "h2.example"),
            ("x-forwarded-host", "h2.example"),
            ("x-forwarded-proto", "https"),
            ("x-request-id", "rid"),
        ] {
            let lines: Vec<_> = text.lines().filter(|line| line.starts_with(&format!("{name}: "))).collect();
            assert_eq!(lines, [format!("{name}: {value}")], "{name} once in {text}");
            let all: Vec<_> = head.upstream_headers().get_all(name).iter().cloned().collect();
            assert_eq!(all, [value], "{name} through hyper's client");
        }
        for gone in ["x-holdfast-attempt", "content-length"] {
            assert!(!text.contains(gone), "{gone} in {text}");
            assert!(head.upstream_headers().get(gone).is_none(), "{gone} through hyper's client");
        }
    }
}
