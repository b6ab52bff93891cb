//! Tunnels: after an upstream accepted an Upgrade (`101 Switching Protocols`; a WebSocket, say), the client's
//! connection and the upstream's are joined and bytes flow both ways, untouched, until both sides have closed.
//!
//! - A side that ends its half (end of file) has that passed on as a half-close of the other side's write half; the
//!   other direction goes on until it ends too. A side that fails (a reset: a killed pod, a client gone) ends the
//!   tunnel at once, and both connections are closed, so the client sees its WebSocket close and reconnects.
//! - A tunnel that carries no byte either way for the policy's `tunnelIdleMs` is closed.
//! - A tunnel runs in a task counted by [`crate::drain`]: on SIGTERM it goes on until `--drain-timeout`, and is
//!   closed when the worker's runtime stops after it.
//! - A tunnel is never replayed: once the `101` went out, the client owns a connection to that one upstream.
//!
//! The client's side is whatever hyper's server hands over — an HTTP/1.1 connection after `101`, or one HTTP/2 stream
//! after `200` to an extended CONNECT (RFC 8441) — and the upstream's whatever hyper's client hands over.

mod copy;

use crate::exchange::Exchange;
use crate::upstream::Connection;
use crate::Dataplane;
use copy::Direction;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Longest wait for either side's connection to be handed over once the switch was agreed; both are normally there
/// within one turn of their connection's task.
const HANDOVER_LIMIT: Duration = Duration::from_secs(10);

/// Both ends of an agreed switch, before their connections are handed over.
pub struct Ends {
    pub client: OnUpgrade,
    pub upstream: OnUpgrade,
    /// The upstream's HTTP/1.1 connection, whose task hands its socket over; kept until it has.
    pub upstream_conn: Option<Connection>,
}

/// Starts the tunnel in a task of its own on this worker, counted by the drain, once both ends are handed over.
/// The request that opened it ends with it: its log line carries the tunnel's lifetime.
pub fn spawn(dp: &Arc<Dataplane>, ends: Ends, idle: Duration, exchange: Arc<Exchange>) {
    let metrics = dp.metrics.clone();
    let backend = exchange.backend.clone().unwrap_or_else(|| Arc::from("-"));
    let ended = Ended { exchange, dp: dp.clone(), started: Instant::now() };
    let task = async move {
        let ended = ended;
        let Ends { client, upstream, upstream_conn } = ends;
        let handed_over = tokio::time::timeout(HANDOVER_LIMIT, async { tokio::join!(client, upstream) }).await;
        drop(upstream_conn);
        let (client, upstream) = match handed_over {
            Ok((Ok(client), Ok(upstream))) => (client, upstream),
            Ok((client, upstream)) => {
                let (client, upstream) = (client.err(), upstream.err());
                tracing::info!(?client, ?upstream, %backend, "a tunnel's connection was not handed over");
                return;
            }
            Err(_) => {
                tracing::warn!(%backend, "a tunnel's connections were not handed over within {HANDOVER_LIMIT:?}");
                return;
            }
        };
        metrics.tunnels_open.inc();
        let started = Instant::now();
        let mut join = Join::new(client, upstream, idle);
        let outcome = (&mut join).await;
        metrics.tunnels_open.dec();
        let (sent, received) = (join.to_upstream.moved, join.to_client.moved);
        // The request's log line: what the client sent through the tunnel, and what it got.
        ended.exchange.sent(received);
        if let Some(progress) = ended.exchange.progress() {
            progress.set_received(sent);
        }
        let lifetime = started.elapsed();
        tracing::debug!(?outcome, sent, received, ?lifetime, %backend, "tunnel closed");
    };
    drop(dp.drain.spawn_on(&tokio::runtime::Handle::current(), task));
}

/// Ends the tunnel's request when the tunnel's task ends, however it ends (closed, failed, or dropped when the
/// worker stops after the drain).
struct Ended {
    exchange: Arc<Exchange>,
    dp: Arc<Dataplane>,
    started: Instant,
}

impl Drop for Ended {
    fn drop(&mut self) {
        self.exchange.finish(&self.dp, Some(self.started.elapsed()));
    }
}

/// How a tunnel ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Both sides ended their halves.
    Closed,
    /// A side failed (reset, or a write after the peer was gone).
    Failed(std::io::ErrorKind),
    /// No byte either way for the idle limit.
    Idle,
}

/// The two sides joined.
struct Join {
    client: TokioIo<Upgraded>,
    upstream: TokioIo<Upgraded>,
    to_upstream: Direction,
    to_client: Direction,
    idle: Duration,
    last_activity: Instant,
    timer: Pin<Box<Sleep>>,
}

impl Join {
    fn new(client: Upgraded, upstream: Upgraded, idle: Duration) -> Self {
        Join {
            client: TokioIo::new(client),
            upstream: TokioIo::new(upstream),
            to_upstream: Direction::default(),
            to_client: Direction::default(),
            idle,
            last_activity: Instant::now(),
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl Future for Join {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let this = self.get_mut();
        let mut moved = false;
        let up = this.to_upstream.poll_copy(cx, Pin::new(&mut this.client), Pin::new(&mut this.upstream), &mut moved);
        let down = this.to_client.poll_copy(cx, Pin::new(&mut this.upstream), Pin::new(&mut this.client), &mut moved);
        for polled in [up, down] {
            if let Poll::Ready(Err(error)) = polled {
                return Poll::Ready(Outcome::Failed(error.kind()));
            }
        }
        if this.to_upstream.is_done() && this.to_client.is_done() {
            return Poll::Ready(Outcome::Closed);
        }
        if moved {
            // One clock read per wakeup that moved bytes; the timer itself is moved only when it fires.
            this.last_activity = Instant::now();
        }
        while this.timer.as_mut().poll(cx).is_ready() {
            let due = this.last_activity + this.idle;
            if Instant::now() >= due {
                return Poll::Ready(Outcome::Idle);
            }
            this.timer.as_mut().reset(due);
        }
        Poll::Pending
    }
}
