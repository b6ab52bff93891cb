//! The request path, top-down: route → limits → body → upstream with replay → response (or rescue).

use crate::error::{ProxyBody, ProxyError};
use crate::forward::{self, ClientInfo, RequestHead};
use crate::receive::{receive, BodyLimits, Sink};
use crate::replay::deliver;
use crate::route::{host_of, Route};
use crate::spool::Spool;
use crate::upstream::{Answer, BodySource, IdleTimeoutBody};
use crate::Dataplane;
use holdfast_snapshot::{BodyMode, Policy};
use http::{header, HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// Serves one client request. Never fails: every error becomes a response in [`ProxyError::into_response`].
pub async fn handle(
    dp: Arc<Dataplane>,
    client: ClientInfo,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let request_id = forward::request_id(request.headers());
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let response = match proxy(&dp, &client, request, &request_id).await {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(%error, %method, path, request_id = ?request_id, "request failed");
            error.into_response(&request_id)
        }
    };
    dp.metrics.requests.get_or_create(&crate::metrics::StatusLabel { status: response.status().as_u16() }).inc();
    Ok(response)
}

async fn proxy(
    dp: &Dataplane,
    client: &ClientInfo,
    request: Request<Incoming>,
    request_id: &HeaderValue,
) -> Result<Response<ProxyBody>, ProxyError> {
    // Route in the snapshot in force now; a replay later sees newer endpoints, but the route stays the one chosen.
    let route = find_route(dp, &request)?;
    let policy = &route.policy;
    // Refuse a declared length over the limit before a byte of the body is read (and before `100 Continue`).
    let declared = request.body().size_hint().exact();
    check_declared_length(declared, policy)?;
    let (parts, body) = request.into_parts();
    let limits = BodyLimits {
        max_bytes: policy.max_body_size_bytes,
        idle: Duration::from_millis(policy.timeouts.client_body_ms),
    };
    let forwarded_len = |len| upstream_head(&parts, client, request_id, len);
    let answer = if declared == Some(0) {
        let head = forwarded_len(parts.headers.contains_key(header::CONTENT_LENGTH).then_some(0));
        deliver(dp, &route.backend, &head, &BodySource::Empty, policy).await?
    } else {
        match policy.mode {
            BodyMode::Buffered => {
                // The whole body is on disk before any upstream is contacted: the upstream never waits for a
                // slow client, and a chunked body is sent with a Content-Length.
                let spool = Spool::new(dp.spool.clone(), policy.memory_buffer_bytes, declared)?;
                receive(body, &Sink::Spool(spool.clone()), limits, &dp.metrics).await?;
                let head = forwarded_len(Some(spool.len()));
                deliver(dp, &route.backend, &head, &BodySource::Spool(spool), policy).await?
            }
            BodyMode::Tee => {
                let spool = Spool::new(dp.spool.clone(), policy.memory_buffer_bytes, declared)?;
                let sink = Sink::Spool(spool.clone());
                let head = forwarded_len(declared);
                receive_while_delivering(dp, &route, body, &sink, limits, &head, &BodySource::Spool(spool)).await?
            }
            BodyMode::Streaming => {
                let (tx, source) = BodySource::stream();
                let head = forwarded_len(declared);
                receive_while_delivering(dp, &route, body, &Sink::Stream(tx), limits, &head, &source).await?
            }
        }
    };
    Ok(into_client_response(dp, answer, policy, request_id))
}

fn find_route(dp: &Dataplane, request: &Request<Incoming>) -> Result<Arc<Route>, ProxyError> {
    let (parts_host, path) = (request_authority(request), request.uri().path());
    let host = host_of(parts_host.unwrap_or(""));
    dp.config
        .current()
        .routes
        .find(host, path)
        .ok_or_else(|| ProxyError::NoRoute { host: host.to_string(), path: path.to_string() })
}

fn request_authority(request: &Request<Incoming>) -> Option<&str> {
    request.uri().authority().map(|a| a.as_str()).or_else(|| request.headers().get(header::HOST)?.to_str().ok())
}

fn check_declared_length(declared: Option<u64>, policy: &Policy) -> Result<(), ProxyError> {
    match declared {
        Some(len) if policy.max_body_size_bytes > 0 && len > policy.max_body_size_bytes => {
            Err(ProxyError::BodyTooLarge { limit: policy.max_body_size_bytes })
        }
        _ => Ok(()),
    }
}

fn upstream_head(
    parts: &http::request::Parts,
    client: &ClientInfo,
    request_id: &HeaderValue,
    len: Option<u64>,
) -> RequestHead {
    forward::upstream_head(parts, client, request_id, len)
}

/// Tee and Streaming: the client's body is read while attempts run. A failure of the client's side ends the request
/// with that failure (the upstream connection is aborted by the failed body); a response from the upstream ends it
/// with that response.
async fn receive_while_delivering(
    dp: &Dataplane,
    route: &Route,
    body: Incoming,
    sink: &Sink,
    limits: BodyLimits,
    head: &RequestHead,
    source: &BodySource,
) -> Result<Answer, ProxyError> {
    let receiving = receive(body, sink, limits, &dp.metrics);
    let delivering = deliver(dp, &route.backend, head, source, &route.policy);
    tokio::pin!(receiving, delivering);
    let mut received = false;
    loop {
        tokio::select! {
            result = &mut receiving, if !received => match result {
                // The attempt holding the stream ended; its own result says how.
                Ok(_) | Err(ProxyError::StreamNotTaken) => received = true,
                Err(error) => return Err(error),
            },
            answer = &mut delivering => return answer,
        }
    }
}

/// The upstream's response for the client: hop-by-hop headers removed, the body under the read timeout, and the
/// connection returned to the pool once the body has been read. The response carries the request's `X-Request-Id`.
fn into_client_response(
    dp: &Dataplane,
    answer: Answer,
    policy: &Policy,
    request_id: &HeaderValue,
) -> Response<ProxyBody> {
    let Answer { response, connection } = answer;
    dp.pool.release(connection);
    let (mut parts, body) = response.into_parts();
    forward::remove_hop_by_hop(&mut parts.headers);
    // The client can quote the same id the upstream logged, on every attempt.
    parts.headers.entry(forward::REQUEST_ID).or_insert_with(|| request_id.clone());
    let bytes_out = dp.metrics.bytes_out.clone();
    let body = IdleTimeoutBody::new(body, Duration::from_millis(policy.timeouts.upstream_read_ms))
        .map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                bytes_out.inc_by(data.len() as u64);
            }
            frame
        })
        .map_err(|e| Box::new(e) as crate::error::BoxError)
        .boxed_unsync();
    Response::from_parts(parts, body)
}
