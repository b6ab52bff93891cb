//! Reading a response head off a plain connection: informational responses skipped, the head parsed with
//! `httparse` (hyper's parser) into fields that share the head's bytes, and the body's framing worked out (RFC 9112
//! §6.3).

use super::chunked::ChunkedDecoder;
use super::conn::PlainConnection;
use super::BodyFraming;
use crate::upstream::failure::{Failure, FailureKind};
use crate::upstream::limits::{MAX_RESPONSE_FIELDS, MAX_RESPONSE_HEAD_BYTES};
use crate::upstream::request::has_token;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};

/// Enough for nearly every response; a head with more is parsed again with room for [`MAX_RESPONSE_FIELDS`]. The
/// parser's field array is initialised on every parse, so its size is paid per request.
const USUAL_HEADERS: usize = 32;

/// A response head as parsed, its fields sharing the head's bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    /// A reason phrase other than the status's usual one, which hyper's server then sends as it is.
    pub reason: Option<hyper::ext::ReasonPhrase>,
}

/// Why a response head was refused (502). Every one is final: the connection is not used again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    /// The head is, or is already known to be, longer than [`MAX_RESPONSE_HEAD_BYTES`].
    #[error("response head larger than {MAX_RESPONSE_HEAD_BYTES} bytes")]
    TooLarge,
    #[error("more than {MAX_RESPONSE_FIELDS} header fields")]
    TooManyFields,
    #[error("invalid response head: {0}")]
    Syntax(httparse::Error),
    #[error("invalid status code")]
    Status,
    /// `Upgrade` is never forwarded on this path, so the upstream cannot have been asked to switch.
    #[error("101 Switching Protocols without an upgrade request")]
    UnaskedSwitch,
    #[error("invalid header name")]
    FieldName,
    #[error("invalid header value")]
    FieldValue,
}

/// Reads until a final response head is complete, skipping informational (1xx) responses.
pub(super) async fn read_head(conn: &mut PlainConnection) -> Result<Head, Failure> {
    let addr = conn.addr;
    loop {
        if !conn.read_buf.is_empty() {
            match parse_head(conn)? {
                Some(head) if head.status.is_informational() => continue,
                Some(head) => return Ok(head),
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

/// [`parse_response_head`] on the connection's read buffer, a refusal classified for the replay decision.
pub(crate) fn parse_head(conn: &mut PlainConnection) -> Result<Option<Head>, Failure> {
    parse_response_head(&mut conn.read_buf)
        .map_err(|why| Failure::new(FailureKind::Protocol, format!("{}: {why}", conn.addr)))
}

/// The head at the start of `buf`, consumed from it, or `None` when it is not complete yet (nothing consumed). An
/// interim (`1xx`) head is returned like a final one; the caller skips it and calls again for the next.
///
/// The size cap holds whatever way the bytes arrived: a head that completes in the read that crosses
/// [`MAX_RESPONSE_HEAD_BYTES`] is refused like one that is still incomplete at the cap. The outcome is the same
/// however the bytes are split between calls (tested at every split point).
pub(crate) fn parse_response_head(buf: &mut BytesMut) -> Result<Option<Head>, HeadError> {
    match parse_head_with::<USUAL_HEADERS>(buf) {
        Err(HeadError::TooManyFields) => parse_head_with::<MAX_RESPONSE_FIELDS>(buf),
        other => other,
    }
}

/// [`parse_response_head`] with room for `N` header fields.
fn parse_head_with<const N: usize>(buf: &mut BytesMut) -> Result<Option<Head>, HeadError> {
    let mut storage = [httparse::EMPTY_HEADER; N];
    let mut parsed = httparse::Response::new(&mut storage);
    // Only the cap's worth of bytes is looked at, so that the outcome depends on those bytes alone and not on how
    // the reads cut them: a head completes within them, or is refused for its size, or for what they hold.
    let window = &buf[..buf.len().min(MAX_RESPONSE_HEAD_BYTES)];
    let len = match parsed.parse(window) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if window.len() == MAX_RESPONSE_HEAD_BYTES => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyFields),
        Err(e) => return Err(HeadError::Syntax(e)),
    };
    let status = parsed.code.and_then(|code| StatusCode::from_u16(code).ok()).ok_or(HeadError::Status)?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(HeadError::UnaskedSwitch);
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
    // A phrase with obs-text (bytes over 0x7E, which RFC 9112 §4 allows) comes back from httparse as an empty string
    // that is not in the buffer and has no span there: hyper's usual phrase is sent instead.
    let reason = parsed.reason.filter(|r| !r.is_empty() && status.canonical_reason() != Some(*r));
    let reason = reason.map(|r| span(r.as_bytes()));
    let head: Bytes = buf.split_to(len).freeze();
    let slice = |(at, len): (usize, usize)| head.slice(at..at + len);
    // One more than parsed: the client's copy gets `X-Request-Id` (proxy.rs) without the map growing.
    let mut headers = HeaderMap::with_capacity(count + 1);
    for &(name, value) in &spans[..count] {
        let name = HeaderName::from_bytes(&slice(name)).map_err(|_| HeadError::FieldName)?;
        let value = HeaderValue::from_maybe_shared(slice(value)).map_err(|_| HeadError::FieldValue)?;
        headers.append(name, value);
    }
    let reason = reason.and_then(|span| hyper::ext::ReasonPhrase::try_from(slice(span)).ok());
    Ok(Some(Head { status, version, headers, reason }))
}

/// How the response's body is delimited (RFC 9112 §6.3), and whether the connection may carry another request
/// after it. `Transfer-Encoding` overrides `Content-Length`, which is then removed so that the client is not told a
/// length the body does not have.
pub(crate) fn framing(
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

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
