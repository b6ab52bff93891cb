//! One attempt: the request sent to one endpoint and the response head read back, by the protocol part that fits the
//! backend and the request:
//!
//! | backend | request | protocol |
//! |---|---|---|
//! | HTTP/1.1 over TCP | no body, or a spooled body of known length | [`super::plain`]: Holdfast's own client, the measured fast path |
//! | HTTP/1.1 over TCP | a Tee body of unknown length (chunked), a Streaming body, a tunnel's handshake | [`super::hyper_h1`] |
//! | HTTP/1.1 over TLS | any | [`super::hyper_h1`] |
//! | HTTP/2 (h2c or TLS) | any but a tunnel | [`super::h2`] |
//!
//! Each part gets its connection from [`super::pool`] over [`super::transport`], and retries once on a new
//! connection when a kept-alive one fails before anything came back: the upstream most likely closed the idle
//! connection, which says nothing about its health. The request may still have reached an upstream that died while
//! working on it, so the retry is numbered as the next attempt.

use super::body_source::BodySource;
use super::delivery::{Answer, Delivery};
use super::failure::{Failure, FailureKind};
use super::h2::attempt_h2;
use super::hyper_h1::attempt_hyper_h1;
use super::plain::{attempt_plain, SpooledBody};
use super::pool::Pool;
use super::transport::Transport;
use holdfast_snapshot::UpstreamProtocol;
use std::net::SocketAddr;
use std::sync::Arc;

/// Sends the request to `addr` by the protocol that fits (module docs).
pub async fn attempt(pool: &Arc<Pool>, addr: SocketAddr, delivery: &Delivery<'_>) -> Result<Answer, Failure> {
    let tunnel = delivery.head.upgrade().is_some();
    match (delivery.upstream.protocol, &delivery.upstream.transport) {
        (UpstreamProtocol::Http2, _) if tunnel => Err(Failure::new(
            FailureKind::Protocol,
            format!("{addr}: the backend speaks HTTP/2, which cannot carry an HTTP/1.1 Upgrade (WebSocket)"),
        )),
        (UpstreamProtocol::Http2, _) => attempt_h2(pool, addr, delivery).await,
        (UpstreamProtocol::Http1, Transport::Tcp) if !tunnel => {
            match (delivery.body, delivery.head.added.content_length) {
                (BodySource::Empty, _) => attempt_plain(pool, addr, delivery, None).await,
                (BodySource::Spool(spool), Some(len)) => {
                    attempt_plain(pool, addr, delivery, Some(SpooledBody { spool, len })).await
                }
                _ => attempt_hyper_h1(pool, addr, delivery).await,
            }
        }
        (UpstreamProtocol::Http1, _) => attempt_hyper_h1(pool, addr, delivery).await,
    }
}
