//! One attempt spoken over a plain socket instead of hyper's client: every request without a body, and every request
//! whose body is spooled and whose length is known (Buffered, and Tee with a declared length).
//!
//! Most requests through an ingress are small GETs, and for them hyper's client costs more than the exchange
//! itself: a connection task per upstream connection, a channel to hand it the request, a callback for the response
//! head and another channel for the response body — each a task wakeup on the worker, for a head that fits in one
//! `write` and a response that usually arrives in one `read`. Here the request's own task writes the head, reads
//! the response head, and frames the body (RFC 9112 §6.3); a small response body that arrived with its head is handed
//! over whole and the connection goes straight back to the pool.
//!
//! A spooled body is sent by the same task ([`super::plain_send`]), segment by segment as the spool hands them over.
//! Bodies of unknown length in Tee mode (sent chunked) and Streaming bodies keep hyper's client
//! ([`super::attempt()`]).

use super::attempt::{ms, on_new_connection, Answer, Delivery};
use super::chunked::ChunkedDecoder;
use super::failure::{Failure, FailureKind};
use super::plain_body::{BodyFraming, PlainBody};
use super::plain_conn::PlainConnection;
use super::plain_send::{send_with_body, Sent};
use super::pool::Pool;
use super::response_body::ResponseBody;
use crate::forward::{next_attempt, RequestHead};
use crate::spool::Spool;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version};
use std::net::SocketAddr;
use std::sync::Arc;

/// A response head larger than this is refused (502): nginx's limit is 4–8 KiB by default, hyper's 400 KiB.
pub(super) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// hyper's default, so that what passed through hyper's client still passes.
pub(super) const MAX_HEADERS: usize = 100;
/// Enough for nearly every response; a head with more is parsed again with room for `MAX_HEADERS`. The parser's
/// field array is initialised on every parse, so its size is paid per request.
const USUAL_HEADERS: usize = 32;

/// A request body held in a spool, with the length the upstream is told.
#[derive(Clone, Copy)]
pub struct SpooledBody<'a> {
    pub spool: &'a Arc<Spool>,
    pub len: u64,
}

/// Sends the request to `addr`, with `body` if it has one. A failure on a reused connection before anything came back
/// is retried once on a fresh connection, as the next attempt: see [`super::attempt::attempt`].
pub async fn attempt_plain(
    pool: &Arc<Pool>,
    addr: SocketAddr,
    delivery: &Delivery<'_>,
    body: Option<SpooledBody<'_>>,
) -> Result<Answer, Failure> {
    let mut retry_head = None;
    if let Some(conn) = pool.checkout_plain(addr) {
        match exchange(pool, conn, delivery, body).await {
            Err(failure) if failure.kind == FailureKind::ResetBeforeResponse => {
                tracing::debug!(%addr, %failure, "pooled connection failed; retrying on a new one");
                retry_head = Some(next_attempt(delivery.head));
            }
            other => return other,
        }
    }
    let (delivery, earlier) = on_new_connection(delivery, retry_head.as_ref());
    let fresh = async {
        let conn = Box::pin(pool.connect_plain(addr, ms(delivery.timeouts.upstream_connect_ms))).await?;
        exchange(pool, conn, &delivery, body).await
    };
    fresh.await.map_err(|failure| failure.after_deliveries(earlier))
}

async fn exchange(
    pool: &Arc<Pool>,
    mut conn: PlainConnection,
    delivery: &Delivery<'_>,
    body: Option<SpooledBody<'_>>,
) -> Result<Answer, Failure> {
    let addr = conn.addr;
    let timeouts = delivery.timeouts;
    let send_limit = ms(timeouts.upstream_send_ms);
    conn.write_buf.clear();
    encode_head(delivery.head, &mut conn.write_buf);
    let closed = |e: std::io::Error| Failure::new(FailureKind::ResetBeforeResponse, format!("{addr}: {e}"));
    // Whether the whole request went out: after an early answer the connection cannot carry another one.
    let complete = match body {
        // Boxed: a bodiless request's future (every small GET's) need not hold room for sending a body.
        Some(SpooledBody { spool, len }) => {
            Box::pin(send_with_body(&mut conn, spool, len, send_limit)).await? == Sent::Complete
        }
        None => {
            let sent = conn.try_send_write_buf().map_err(closed)?;
            if sent < conn.write_buf.len() {
                match tokio::time::timeout(send_limit, conn.send_write_buf_from(sent)).await {
                    Err(_) => {
                        return Err(Failure::new(FailureKind::SendTimeout, format!("{addr} after {send_limit:?}")))
                    }
                    Ok(result) => result.map_err(closed)?,
                }
            }
            true
        }
    };
    let is_head = delivery.head.method == Method::HEAD;
    let read_limit = ms(timeouts.upstream_read_ms);
    let head = match tokio::time::timeout(read_limit, read_head(&mut conn)).await {
        Err(_) => return Err(Failure::new(FailureKind::ReadTimeout, format!("{addr} after {read_limit:?}"))),
        Ok(head) => head?,
    };
    let mut response = Response::new(());
    *response.status_mut() = head.status;
    *response.version_mut() = head.version;
    *response.headers_mut() = head.headers;
    if let Some(reason) = head.reason {
        response.extensions_mut().insert(reason);
    }
    let (framing, reusable) = framing(is_head, response.status(), response.version(), response.headers_mut())
        .map_err(|why| Failure::new(FailureKind::Protocol, format!("{addr}: {why}")))?;
    let body = PlainBody::new(conn, framing, reusable && complete, pool);
    Ok(Answer { response: response.map(|()| ResponseBody::Plain(body)), connection: None })
}

/// `METHOD target HTTP/1.1`, then the headers as they are (already rewritten for the upstream, `Host` included).
fn encode_head(head: &RequestHead, out: &mut Vec<u8>) {
    let target = head.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(if target.is_empty() { b"/" } else { target.as_bytes() });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    head.encode_fields(out);
    out.extend_from_slice(b"\r\n");
}

struct Head {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    /// A reason phrase other than the status's usual one, which hyper's server then sends as it is.
    reason: Option<hyper::ext::ReasonPhrase>,
}

/// Reads until a final response head is complete, skipping informational (1xx) responses.
async fn read_head(conn: &mut PlainConnection) -> Result<Head, Failure> {
    let addr = conn.addr;
    loop {
        if !conn.read_buf.is_empty() {
            match parse_head(conn)? {
                Some(head) if head.status.is_informational() => continue,
                Some(head) => return Ok(head),
                None if conn.read_buf.len() >= MAX_HEAD_BYTES => {
                    return Err(Failure::new(
                        FailureKind::Protocol,
                        format!("{addr}: response head larger than {MAX_HEAD_BYTES} bytes"),
                    ))
                }
                None => {}
            }
        }
        match conn.fill().await {
            Ok(0) if conn.read_buf.is_empty() => {
                return Err(Failure::new(FailureKind::ResetBeforeResponse, format!("{addr}: closed")))
            }
            Ok(0) => {
                return Err(Failure::new(FailureKind::ResetBeforeResponse, format!("{addr}: closed inside the head")))
            }
            Ok(_) => {}
            Err(e) => return Err(Failure::new(FailureKind::ResetBeforeResponse, format!("{addr}: {e}"))),
        }
    }
}

/// The head at the start of the read buffer, consumed from it, or `None` when it is not complete yet.
fn parse_head(conn: &mut PlainConnection) -> Result<Option<Head>, Failure> {
    match parse_head_with::<USUAL_HEADERS>(conn) {
        Err(None) => parse_head_with::<MAX_HEADERS>(conn),
        other => other,
    }
    .map_err(|why| {
        let why = why.unwrap_or_else(|| format!("more than {MAX_HEADERS} header fields"));
        Failure::new(FailureKind::Protocol, format!("{}: {why}", conn.addr))
    })
}

/// [`parse_head`] with room for `N` header fields; `Err(None)`: more than that.
fn parse_head_with<const N: usize>(conn: &mut PlainConnection) -> Result<Option<Head>, Option<String>> {
    let protocol = |why: &str| Some(why.to_string());
    let mut storage = [httparse::EMPTY_HEADER; N];
    let mut parsed = httparse::Response::new(&mut storage);
    let buf = &conn.read_buf;
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(None),
        Err(e) => return Err(Some(format!("invalid response head: {e}"))),
    };
    let status =
        parsed.code.and_then(|code| StatusCode::from_u16(code).ok()).ok_or_else(|| protocol("invalid status code"))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        // `Upgrade` is never forwarded, so the upstream cannot have been asked to switch.
        return Err(protocol("101 Switching Protocols without an upgrade request"));
    }
    let version = if parsed.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    // Header fields are kept as slices of the head's bytes, not copied: where each lies in the buffer.
    let base = buf.as_ptr() as usize;
    let span = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
    let mut spans = [((0, 0), (0, 0)); N];
    let count = parsed.headers.len();
    for (slot, field) in spans.iter_mut().zip(parsed.headers.iter()) {
        *slot = (span(field.name.as_bytes()), span(field.value));
    }
    let reason = parsed.reason.map(|r| span(r.as_bytes())).filter(|_| status.canonical_reason() != parsed.reason);
    let head: Bytes = conn.read_buf.split_to(len).freeze();
    let slice = |(at, len): (usize, usize)| head.slice(at..at + len);
    // One more than parsed: the client's copy gets `X-Request-Id` (proxy.rs) without the map growing.
    let mut headers = HeaderMap::with_capacity(count + 1);
    for &(name, value) in &spans[..count] {
        let name = HeaderName::from_bytes(&slice(name)).map_err(|_| protocol("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(slice(value)).map_err(|_| protocol("invalid header value"))?;
        headers.append(name, value);
    }
    let reason = reason.and_then(|span| hyper::ext::ReasonPhrase::try_from(slice(span)).ok());
    Ok(Some(Head { status, version, headers, reason }))
}

/// How the response's body is delimited (RFC 9112 §6.3), and whether the connection may carry another request
/// after it. `Transfer-Encoding` overrides `Content-Length`, which is then removed so that the client is not told a
/// length the body does not have.
fn framing(
    is_head: bool,
    status: StatusCode,
    version: Version,
    headers: &mut HeaderMap,
) -> Result<(BodyFraming, bool), String> {
    let keep_alive = match version {
        Version::HTTP_10 => has_token(headers, header::CONNECTION, "keep-alive"),
        _ => !has_token(headers, header::CONNECTION, "close"),
    };
    if is_head || status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok((BodyFraming::Length(0), keep_alive));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        let had_length = headers.remove(header::CONTENT_LENGTH).is_some();
        let chunked = last_coding_is_chunked(headers);
        // A message with both is suspect (RFC 9112 §6.1): answer it, then close.
        return Ok(match chunked {
            true => (BodyFraming::Chunked(ChunkedDecoder::new()), keep_alive && !had_length),
            false => (BodyFraming::UntilClose, false),
        });
    }
    match content_length(headers)? {
        Some(len) => Ok((BodyFraming::Length(len), keep_alive)),
        None => Ok((BodyFraming::UntilClose, false)),
    }
}

/// The one length that every `Content-Length` field (and every element of a list in one) agrees on.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, String> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let text = value.to_str().map_err(|_| "invalid Content-Length".to_string())?;
        for element in text.split(',') {
            let element = element.trim();
            if element.is_empty() || !element.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("invalid Content-Length {text:?}"));
            }
            let len: u64 = element.parse().map_err(|_| format!("invalid Content-Length {text:?}"))?;
            if length.is_some_and(|earlier| earlier != len) {
                return Err("conflicting Content-Length values".into());
            }
            length = Some(len);
        }
    }
    Ok(length)
}

fn last_coding_is_chunked(headers: &HeaderMap) -> bool {
    let last = headers.get_all(header::TRANSFER_ENCODING).iter().next_back();
    let last = last.and_then(|v| v.to_str().ok()).and_then(|v| v.rsplit(',').next());
    last.is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"))
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}
