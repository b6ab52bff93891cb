//! HTTP/2 to an endpoint, over TCP with prior knowledge (h2c) or TLS with ALPN `h2`: every request to an `Http2`
//! backend, gRPC among them. Requests share connections ([`super::pool`]); bodies stream both ways, trailers included
//! (gRPC's status lives in them).
//!
//! A failure on a connection that already carried requests, before the response head, is retried once on a new
//! connection, as the next attempt: the upstream may have closed it (GOAWAY, an idle timeout) between requests. Not
//! for a Streaming body, which its first send takes: that failure is the request's (502), as on HTTP/1.1.

use super::body_source::{BodySource, UpstreamBody};
use super::clock::AttemptClock;
use super::delivery::{ms, on_new_connection, Answer, Delivery};
use super::failure::{Failure, FailureKind};
use super::hyper_exchange::within_timeouts;
use super::limits::check_field_count;
use super::pool::{H2Stream, Pool};
use super::request::RequestHead;
use super::response_body::ResponseBody;
use super::transport::Transport;
use http::uri::{Authority, Scheme};
use http::{header, Uri, Version};
use hyper::Request;
use std::net::SocketAddr;
use std::sync::Arc;

pub async fn attempt_h2(pool: &Arc<Pool>, addr: SocketAddr, delivery: &Delivery<'_>) -> Result<Answer, Failure> {
    let transport = &delivery.upstream.transport;
    let connect_limit = ms(delivery.timeouts.upstream_connect_ms);
    let stream = pool.h2_stream(addr, transport, connect_limit, false).await?;
    // A streamed body is taken by its first send: it could not go out again on a new connection.
    if !stream.reused || matches!(delivery.body, BodySource::Stream(_)) {
        return send(stream, delivery).await;
    }
    let retry_head = match send(stream, delivery).await {
        Err(failure) if failure.kind == FailureKind::ResetBeforeResponse => {
            tracing::debug!(%addr, %failure, "shared HTTP/2 connection failed; retrying on a new one");
            delivery.head.next_attempt()
        }
        other => return other,
    };
    let (delivery, earlier) = on_new_connection(delivery, Some(&retry_head));
    let fresh = async {
        let stream = pool.h2_stream(addr, transport, connect_limit, true).await?;
        send(stream, &delivery).await
    };
    fresh.await.map_err(|failure| failure.after_deliveries(earlier))
}

async fn send(stream: H2Stream, delivery: &Delivery<'_>) -> Result<Answer, Failure> {
    let H2Stream { mut sender, addr, lease, .. } = stream;
    let clock = Arc::new(AttemptClock::new(matches!(delivery.body, BodySource::Empty)));
    let body = delivery
        .body
        .open(clock.clone(), delivery.head.added.content_length, delivery.delivered.cloned())
        .ok_or_else(|| Failure::new(FailureKind::ClientBodyAborted, "the streaming body was already consumed"))?;
    let request = build_request(delivery.head, body, &delivery.upstream.transport, addr);
    let sent = async {
        // Waits while the connection is at the upstream's limit of concurrent streams.
        sender.ready().await?;
        sender.send_request(request).await
    };
    let response = within_timeouts(sent, &clock, delivery.timeouts, addr).await?;
    // h2 holds the head's size to SETTINGS_MAX_HEADER_LIST_SIZE (the pool's handshake) but has no field count.
    check_field_count(response.headers(), addr)?;
    Ok(Answer::new(response.map(|body| ResponseBody::Hyper2(body, lease))))
}

/// The request as HTTP/2 carries it: the host in `:authority` (an absolute URI) rather than in `Host`, and no
/// HTTP/1-only fields (the hop-by-hop ones are gone already; `te: trailers` is the one value HTTP/2 allows).
fn build_request(
    head: &RequestHead,
    body: UpstreamBody,
    transport: &Transport,
    addr: SocketAddr,
) -> Request<UpstreamBody> {
    let mut headers = head.upstream_headers();
    let host = headers.remove(header::HOST);
    let authority = host
        .as_ref()
        .and_then(|h| Authority::try_from(h.as_bytes()).ok())
        .unwrap_or_else(|| Authority::try_from(addr.to_string()).expect("a socket address is an authority"));
    let scheme = match transport {
        Transport::Tcp => Scheme::HTTP,
        Transport::Tls(_) => Scheme::HTTPS,
    };
    let mut parts = head.uri.clone().into_parts();
    parts.scheme = Some(scheme);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    let mut request = Request::new(body);
    *request.method_mut() = head.method.clone();
    *request.uri_mut() = Uri::from_parts(parts).unwrap_or_else(|_| head.uri.clone());
    *request.version_mut() = Version::HTTP_2;
    *request.headers_mut() = headers;
    request
}
