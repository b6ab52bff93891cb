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
//! A spooled body is sent by the same task (`send`), segment by segment as the spool hands them over.
//! Bodies of unknown length in Tee mode (sent chunked) and Streaming bodies keep hyper's client
//! (`upstream::hyper_h1`).

mod body;
// Both parsers are reachable by `crate::fuzzing`, which feeds them arbitrary bytes; the chunked decoder is sans-I/O
// and self-contained, so it is public (the fuzzing module's docs link to it).
pub mod chunked;
mod conn;
pub(crate) mod head;
mod send;

pub(crate) use body::BodyFraming;
pub use body::{PlainBody, PlainBodyError};
pub use conn::PlainConnection;

use super::delivery::{ms, on_new_connection, Answer, Delivery};
use super::failure::{Failure, FailureKind};
use super::pool::Pool;
use super::request::RequestHead;
use super::response_body::ResponseBody;
use crate::spool::Spool;
use head::{framing, read_head};
use http::{Method, Response};
use send::{send_with_body, Sent};
use std::net::SocketAddr;
use std::sync::Arc;

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
                retry_head = Some(delivery.head.next_attempt());
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
            Box::pin(send_with_body(&mut conn, (spool, len), send_limit, delivery.delivered)).await? == Sent::Complete
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
    Ok(Answer::new(response.map(|()| ResponseBody::Plain(body))))
}

/// `METHOD target HTTP/1.1`, then the headers as they are (already rewritten for the upstream, `Host` included).
pub(crate) fn encode_head(head: &RequestHead, out: &mut Vec<u8>) {
    let target = head.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(if target.is_empty() { b"/" } else { target.as_bytes() });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    head.encode_fields(out);
    out.extend_from_slice(b"\r\n");
}
