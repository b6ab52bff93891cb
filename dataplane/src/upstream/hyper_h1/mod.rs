//! HTTP/1.1 through hyper's client, over TCP or TLS: the bodies Holdfast's own client does not send (a Tee body of
//! unknown length, sent chunked; a Streaming body), every request to a TLS backend, and the handshake of a tunnel
//! (a request that asks for an Upgrade: on `101` hyper hands over the connection, [`super::Answer::upgrade`]).

mod io;

pub use io::UpstreamIo;

use super::body_source::{BodySource, UpstreamBody};
use super::clock::AttemptClock;
use super::delivery::{ms, on_new_connection, Answer, Delivery};
use super::failure::{Failure, FailureKind};
use super::hyper_exchange::within_timeouts;
use super::pool::{Connection, Pool};
use super::request::RequestHead;
use super::response_body::ResponseBody;
use http::{header, Method, StatusCode};
use hyper::body::Incoming;
use hyper::{Request, Response};
use std::net::SocketAddr;
use std::sync::Arc;

/// Sends the request to `addr`. A failure on a reused connection before anything came back is retried once on a
/// fresh connection, as the next attempt (see [`super::attempt()`]).
pub async fn attempt_hyper_h1(pool: &Arc<Pool>, addr: SocketAddr, delivery: &Delivery<'_>) -> Result<Answer, Failure> {
    let transport = &delivery.upstream.transport;
    let streaming = matches!(delivery.body, BodySource::Stream(_));
    let mut retry_head = None;
    if !streaming {
        if let Some(conn) = pool.checkout(addr, transport) {
            match send(conn, delivery).await {
                Err(failure) if failure.kind == FailureKind::ResetBeforeResponse => {
                    tracing::debug!(%addr, %failure, "pooled connection failed; retrying on a new one");
                    retry_head = Some(delivery.head.next_attempt());
                }
                other => return other,
            }
        }
    }
    let (delivery, earlier) = on_new_connection(delivery, retry_head.as_ref());
    let fresh = async {
        // Boxed: the connect and handshake states are large and needed only when no pooled connection is at hand.
        let conn = Box::pin(pool.connect(addr, transport, ms(delivery.timeouts.upstream_connect_ms))).await?;
        send(conn, &delivery).await
    };
    fresh.await.map_err(|failure| failure.after_deliveries(earlier))
}

async fn send(mut conn: Connection, delivery: &Delivery<'_>) -> Result<Answer, Failure> {
    let clock = Arc::new(AttemptClock::new(matches!(delivery.body, BodySource::Empty)));
    let len = delivery.head.added.content_length;
    let body = delivery
        .body
        .open(clock.clone(), len, delivery.delivered.cloned())
        .ok_or_else(|| Failure::new(FailureKind::ClientBodyAborted, "the streaming body was already consumed"))?;
    let request = build_request(delivery.head, body);
    let mut response = within_timeouts(conn.sender.send_request(request), &clock, delivery.timeouts, conn.addr).await?;
    if length_beside_coding(&delivery.head.method, &mut response) {
        conn.close_after_response();
    }
    let upgrade = match (response.status() == StatusCode::SWITCHING_PROTOCOLS, delivery.head.upgrade()) {
        (false, _) => None,
        // hyper hands the connection over once it has read the 101.
        (true, Some(_)) => Some(hyper::upgrade::on(&mut response)),
        (true, None) => {
            let why = format!("{}: 101 Switching Protocols without an upgrade request", conn.addr);
            return Err(Failure::new(FailureKind::Protocol, why));
        }
    };
    Ok(Answer { response: response.map(ResponseBody::Hyper), connection: Some(conn), upgrade })
}

/// Removes a `Content-Length` that came with `Transfer-Encoding`, which hyper decodes by (RFC 9112 §6.3: the coding
/// wins) but leaves in the head, where it would tell the client a length the forwarded body does not have. Such a
/// message is suspect (§6.1, a sign of request smuggling along the way), so `true` also means: close the connection
/// after it, as the plain path does. A response without a body (to HEAD; 1xx, 204, 304) keeps its fields: there its
/// `Content-Length` describes the representation, not a body.
fn length_beside_coding(method: &Method, response: &mut Response<Incoming>) -> bool {
    let status = response.status();
    let bodiless = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let headers = response.headers_mut();
    !bodiless && headers.contains_key(header::TRANSFER_ENCODING) && headers.remove(header::CONTENT_LENGTH).is_some()
}

fn build_request(head: &RequestHead, body: UpstreamBody) -> Request<UpstreamBody> {
    let mut request = Request::new(body);
    *request.method_mut() = head.method.clone();
    *request.uri_mut() = head.uri.clone();
    *request.headers_mut() = head.upstream_headers();
    request
}
