//! Every way a request can fail, and the one place where a failure becomes the client's response.
//!
//! Bodies say what happened in words a user can act on; they never echo request headers or bodies.

use crate::upstream::Failure;
use bytes::Bytes;
use holdfast_snapshot::{ErrorPage, Policy};
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use std::time::Duration;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of every response the dataplane sends to clients.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no route for host {host:?} and path {path:?}")]
    NoRoute { host: String, path: String },
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The request's host fields or target, refused before routing (400, 414).
    #[error(transparent)]
    Target(#[from] crate::route::TargetError),
    #[error("the request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("the client sent no body bytes for {0:?}")]
    ClientBodyTimeout(Duration),
    #[error("the client sent its body too slowly: {0}")]
    ClientBodyTooSlow(crate::min_rate::TooSlow),
    #[error("the client went away before its body was complete")]
    ClientAborted,
    #[error("not enough spool space for this request body (quota {quota} bytes); try again later")]
    SpoolFull { quota: u64 },
    #[error("the spool disk has no room for this request body; try again later")]
    DiskFull,
    #[error("the request body could not be stored: {0}")]
    SpoolIo(std::io::Error),
    #[error("the upstream stopped taking the streamed body")]
    StreamNotTaken,
    #[error("no endpoint of backend {backend} took the request within {waited:?} ({attempts} deliveries; last failure: {})", display_last(.last))]
    Unavailable { backend: String, waited: Duration, attempts: u32, last: Option<Failure> },
    #[error("backend {backend} timed out ({attempts} deliveries; last failure: {last})")]
    GatewayTimeout { backend: String, attempts: u32, last: Failure },
    #[error("backend {backend} failed and the request cannot be replayed: {last}")]
    BadGateway { backend: String, last: Failure },
    #[error("backend {backend} speaks HTTP/2, which cannot carry an HTTP/1.1 Upgrade (WebSocket): give the Service port an HTTP/1.1 appProtocol (kubernetes.io/ws)")]
    TunnelUnsupported { backend: String },
    #[error("internal error: {0}")]
    Internal(String),
}

fn display_last(last: &Option<Failure>) -> String {
    last.as_ref().map_or_else(|| "no ready endpoint".to_string(), Failure::to_string)
}

impl From<crate::spool::SpoolError> for ProxyError {
    fn from(error: crate::spool::SpoolError) -> Self {
        match error {
            crate::spool::SpoolError::QuotaExceeded { quota } => ProxyError::SpoolFull { quota },
            crate::spool::SpoolError::DiskFull => ProxyError::DiskFull,
            crate::spool::SpoolError::Io(e) => ProxyError::SpoolIo(e),
        }
    }
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ProxyError::BadRequest(_) | ProxyError::ClientAborted => StatusCode::BAD_REQUEST,
            ProxyError::Target(error) => error.status(),
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::ClientBodyTimeout(_) | ProxyError::ClientBodyTooSlow(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::SpoolFull { .. } | ProxyError::DiskFull => StatusCode::INSUFFICIENT_STORAGE,
            ProxyError::SpoolIo(_) | ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::GatewayTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BadGateway { .. } | ProxyError::StreamNotTaken => StatusCode::BAD_GATEWAY,
            ProxyError::TunnelUnsupported { .. } => StatusCode::NOT_IMPLEMENTED,
        }
    }

    /// Whether the client's body may be left partly unread, so that the connection cannot be reused.
    fn closes_connection(&self) -> bool {
        matches!(
            self,
            ProxyError::BadRequest(_)
                | ProxyError::Target(_)
                | ProxyError::BodyTooLarge { .. }
                | ProxyError::ClientBodyTimeout(_)
                | ProxyError::ClientBodyTooSlow(_)
                | ProxyError::ClientAborted
                | ProxyError::SpoolFull { .. }
                | ProxyError::DiskFull
                | ProxyError::SpoolIo(_)
                | ProxyError::Internal(_)
        )
    }

    /// The response the client gets: the route policy's error page for 502, 503 and 504 when it has one (with its
    /// status rewrite), otherwise a text body that says what happened. 503s carry `Retry-After`.
    pub fn into_response(self, request_id: &HeaderValue, policy: Option<&Policy>) -> Response<ProxyBody> {
        let status = self.status();
        let close = self.closes_connection();
        let page = policy.and_then(|p| p.error_pages.get(&status.as_u16()));
        let mut response = match page {
            Some(page) => page_response(status, page),
            None => text_response(status, format!("{self}\n")),
        };
        let headers = response.headers_mut();
        headers.insert("x-request-id", request_id.clone());
        let retry_after = policy.map_or(Policy::default().retry_after_seconds, |p| p.retry_after_seconds);
        if status == StatusCode::SERVICE_UNAVAILABLE && retry_after > 0 {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        if close {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// A policy's error page, with its status rewrite.
fn page_response(status: StatusCode, page: &ErrorPage) -> Response<ProxyBody> {
    let mut response = text_response(status, page.body.clone());
    if let Some(rewritten) = page.status.and_then(|s| StatusCode::from_u16(s).ok()) {
        *response.status_mut() = rewritten;
    }
    if let Ok(content_type) = HeaderValue::from_str(&page.content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, content_type);
    }
    response
}

/// A plain-text response made by the dataplane itself.
pub fn text_response(status: StatusCode, text: impl Into<Bytes>) -> Response<ProxyBody> {
    let body = Full::new(text.into()).map_err(|never| match never {}).boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// An empty response body.
pub fn empty_body() -> ProxyBody {
    http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A response body of bytes already in hand.
pub fn full_body(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}
