//! Reading a response head off a plain connection: informational responses skipped, the head parsed with
//! `httparse` (hyper's parser) into fields that share the head's bytes, and the body's framing worked out (RFC 9112
//! §6.3).

use super::body::BodyFraming;
use super::chunked::ChunkedDecoder;
use super::conn::PlainConnection;
use crate::upstream::failure::{Failure, FailureKind};
use crate::upstream::request::has_token;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};

/// A response head larger than this is refused (502): nginx's limit is 4–8 KiB by default, hyper's 400 KiB.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// hyper's default, so that what passed through hyper's client still passes.
pub(crate) const MAX_HEADERS: usize = 100;
/// Enough for nearly every response; a head with more is parsed again with room for `MAX_HEADERS`. The parser's
/// field array is initialised on every parse, so its size is paid per request.
const USUAL_HEADERS: usize = 32;

pub(super) struct Head {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    /// A reason phrase other than the status's usual one, which hyper's server then sends as it is.
    pub reason: Option<hyper::ext::ReasonPhrase>,
}

/// Reads until a final response head is complete, skipping informational (1xx) responses.
pub(super) async fn read_head(conn: &mut PlainConnection) -> Result<Head, Failure> {
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
pub(super) fn framing(
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
