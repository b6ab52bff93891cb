//! One attempt: a connection (pooled or new), the request, and the response head, under the send/read timeouts.
//! Requests without a body or with a spooled body of known length go over a plain socket ([`super::plain`]); the
//! others through hyper's client, here.

use super::body::{BodySource, UpstreamBody};
use super::clock::{AttemptClock, Expired};
use super::failure::{Failure, FailureKind};
use super::plain::{attempt_plain, SpooledBody};
use super::pool::{Connection, Pool};
use super::response_body::ResponseBody;
use crate::forward::{next_attempt, RequestHead};
use holdfast_snapshot::Timeouts;
use hyper::{Request, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Everything an attempt needs to (re)build its request.
#[derive(Clone, Copy)]
pub struct Delivery<'a> {
    /// Method, URI (origin form) and headers, already rewritten for the upstream.
    pub head: &'a RequestHead,
    pub body: &'a BodySource,
    pub timeouts: &'a Timeouts,
}

/// The result of a successful attempt: the response, and the hyper connection to give back once it is read (a
/// plain connection travels inside its response body instead).
pub struct Answer {
    pub response: Response<ResponseBody>,
    pub connection: Option<Connection>,
}

/// Sends the request to `addr`. A failure on a reused connection before anything came back is retried once on a
/// fresh connection: the upstream most likely closed the idle connection, which says nothing about its health. The
/// request may still have reached an upstream that died while working on it, so the retry is numbered as the next
/// attempt (`on_new_connection`).
pub async fn attempt(pool: &Arc<Pool>, addr: SocketAddr, delivery: &Delivery<'_>) -> Result<Answer, Failure> {
    match (delivery.body, delivery.head.added.content_length) {
        (BodySource::Empty, _) => return attempt_plain(pool, addr, delivery, None).await,
        (BodySource::Spool(spool), Some(len)) => {
            return attempt_plain(pool, addr, delivery, Some(SpooledBody { spool, len })).await
        }
        // A body of unknown length (sent chunked) or one streamed without a spool: hyper's client.
        _ => {}
    }
    let streaming = matches!(delivery.body, BodySource::Stream(_));
    let mut retry_head = None;
    if !streaming {
        if let Some(conn) = pool.checkout(addr) {
            match send(conn, delivery).await {
                Err(failure) if failure.kind == FailureKind::ResetBeforeResponse => {
                    tracing::debug!(%addr, %failure, "pooled connection failed; retrying on a new one");
                    retry_head = Some(next_attempt(delivery.head));
                }
                other => return other,
            }
        }
    }
    let (delivery, earlier) = on_new_connection(delivery, retry_head.as_ref());
    let fresh = async {
        // Boxed: the connect and handshake states are large and needed only when no pooled connection is at hand.
        let conn = Box::pin(pool.connect(addr, ms(delivery.timeouts.upstream_connect_ms))).await?;
        send(conn, &delivery).await
    };
    fresh.await.map_err(|failure| failure.after_deliveries(earlier))
}

/// The delivery to make on a new connection: `delivery` itself, or, after a kept-alive connection failed, the same
/// request under `retry_head` (the next attempt number). Also returns how many deliveries came before it, which a
/// failure of the retry carries so that the replay loop numbers its next attempt after both.
pub(super) fn on_new_connection<'a>(
    delivery: &Delivery<'a>,
    retry_head: Option<&'a RequestHead>,
) -> (Delivery<'a>, u32) {
    match retry_head {
        Some(head) => (Delivery { head, ..*delivery }, 1),
        None => (*delivery, 0),
    }
}

async fn send(mut conn: Connection, delivery: &Delivery<'_>) -> Result<Answer, Failure> {
    let clock = Arc::new(AttemptClock::new(matches!(delivery.body, BodySource::Empty)));
    let len = delivery.head.added.content_length;
    let body = delivery
        .body
        .open(clock.clone(), len)
        .ok_or_else(|| Failure::new(FailureKind::ClientBodyAborted, "the streaming body was already consumed"))?;
    let request = build_request(delivery.head, body);
    let timeouts = delivery.timeouts;
    let outcome = tokio::select! {
        result = conn.sender.send_request(request) => result,
        expired = clock.expired(ms(timeouts.upstream_send_ms), ms(timeouts.upstream_read_ms)) => {
            let (kind, limit) = match expired {
                Expired::Send => (FailureKind::SendTimeout, timeouts.upstream_send_ms),
                Expired::Read => (FailureKind::ReadTimeout, timeouts.upstream_read_ms),
            };
            return Err(Failure::new(kind, format!("{} after {limit} ms", conn.addr)));
        }
    };
    match outcome {
        Ok(response) => Ok(Answer { response: response.map(ResponseBody::Hyper), connection: Some(conn) }),
        Err(_) if clock.was_source_aborted() => {
            Err(Failure::new(FailureKind::ClientBodyAborted, "the client's body ended early"))
        }
        Err(error) if error.is_parse() => Err(Failure::new(FailureKind::Protocol, format!("{}: {error}", conn.addr))),
        Err(error) => Err(Failure::new(FailureKind::ResetBeforeResponse, format!("{}: {error}", conn.addr))),
    }
}

fn build_request(head: &RequestHead, body: UpstreamBody) -> Request<UpstreamBody> {
    let mut request = Request::new(body);
    *request.method_mut() = head.method.clone();
    *request.uri_mut() = head.uri.clone();
    *request.headers_mut() = head.upstream_headers();
    request
}

pub(super) fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}
