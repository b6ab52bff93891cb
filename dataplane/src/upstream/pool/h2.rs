//! HTTP/2 connections to endpoints. One connection carries many requests at once, so requests share connections
//! instead of borrowing them: a request takes a stream on the least busy connection of its endpoint, and a new
//! connection is opened only when every one already carries [`STREAMS_PER_CONNECTION`] requests (at most
//! [`MAX_CONNECTIONS_PER_ENDPOINT`] per worker; past that, h2 queues the request until a stream is free, as the
//! endpoint's own `SETTINGS_MAX_CONCURRENT_STREAMS` would make it anyway).
//!
//! While a connection is being opened, other requests to the same endpoint wait for it rather than opening their
//! own: a burst of 100 calls arriving together shares one connection instead of racing 100 connects.

use super::{this_thread, Endpoint, Pool};
use crate::drain::AbortOnDrop;
use crate::upstream::body_source::UpstreamBody;
use crate::upstream::failure::{Failure, FailureKind};
use crate::upstream::limits::MAX_RESPONSE_HEAD_BYTES;
use crate::upstream::transport::Transport;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Requests one connection carries before another is opened. Common servers allow 100 to 250 streams at once
/// (grpc-go 100 by default in many deployments, Envoy and nginx 100+); at 100 a connection is never refused a stream.
const STREAMS_PER_CONNECTION: usize = 100;
/// Connections per endpoint and worker: enough to spread a busy endpoint's flow-control windows and head-of-line
/// blocking over a few TCP connections, few enough that an endpoint is not flooded with connections.
const MAX_CONNECTIONS_PER_ENDPOINT: usize = 4;

/// The HTTP/2 connections of one endpoint on one worker.
#[derive(Default)]
pub(super) struct H2Endpoint {
    conns: Vec<H2Conn>,
    /// Connects under way.
    connecting: usize,
    /// Woken when a connect ends, well or not.
    connected: Arc<Notify>,
}

struct H2Conn {
    sender: http2::SendRequest<UpstreamBody>,
    shared: Arc<Shared>,
    /// Ends the connection when it leaves the list (swept idle, or the pool dropped).
    _task: AbortOnDrop,
}

/// What a connection's streams update without the pool's lock.
#[derive(Debug)]
struct Shared {
    active: AtomicUsize,
    /// When the last stream ended, in milliseconds since `epoch`.
    last_active_ms: AtomicU64,
    epoch: Instant,
}

/// One request's stream on an HTTP/2 connection.
pub struct H2Stream {
    pub sender: http2::SendRequest<UpstreamBody>,
    pub addr: SocketAddr,
    /// On a connection that already carried requests: a failure may only mean the upstream closed it.
    pub reused: bool,
    /// Counts the stream on its connection until the response is done.
    pub lease: StreamLease,
}

/// Counts one stream on its connection while it lives; held by the response body.
#[derive(Debug)]
pub struct StreamLease(Arc<Shared>);

impl Drop for StreamLease {
    fn drop(&mut self) {
        let now = self.0.epoch.elapsed().as_millis() as u64;
        self.0.last_active_ms.store(now, Ordering::Relaxed);
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl H2Conn {
    fn lease(&self, addr: SocketAddr, reused: bool) -> H2Stream {
        self.shared.active.fetch_add(1, Ordering::AcqRel);
        H2Stream { sender: self.sender.clone(), addr, reused, lease: StreamLease(self.shared.clone()) }
    }
}

impl H2Endpoint {
    /// Drops closed connections and those idle past the timeout; whether anything is left.
    pub(super) fn sweep(&mut self, now_ms: u64, idle_ms: u64) -> bool {
        self.conns.retain(|c| {
            let idle = c.shared.active.load(Ordering::Acquire) == 0
                && now_ms.saturating_sub(c.shared.last_active_ms.load(Ordering::Relaxed)) >= idle_ms;
            !idle && !c.sender.is_closed()
        });
        !self.conns.is_empty() || self.connecting > 0
    }

    /// The least busy open connection.
    fn least_busy(&mut self) -> Option<&H2Conn> {
        self.conns.retain(|c| !c.sender.is_closed());
        self.conns.iter().min_by_key(|c| c.shared.active.load(Ordering::Acquire))
    }
}

/// What to do for a stream, decided under the lock.
enum Next {
    Stream(H2Stream),
    /// Made under the lock, so that a connect ending right after it is let go still wakes it.
    Wait(tokio::sync::futures::OwnedNotified),
    Connect,
}

impl Pool {
    /// A stream to `addr` over `transport`: on an open connection with room, or on a new one (`fresh`: always a new
    /// one, after a failure on a shared connection). The whole wait, connect included, is bounded by `timeout`.
    pub async fn h2_stream(
        &self,
        addr: SocketAddr,
        transport: &Transport,
        timeout: Duration,
        fresh: bool,
    ) -> Result<H2Stream, Failure> {
        let deadline = Instant::now() + timeout;
        let home = this_thread();
        let endpoint: Endpoint = (home.thread, addr, transport.key());
        loop {
            let next = {
                let mut idle = self.lock(home.shard);
                let ep = idle.h2.entry(endpoint).or_default();
                let (connecting, connected) = (ep.connecting, ep.connected.clone());
                let open = ep.conns.len() + connecting;
                match ep.least_busy() {
                    Some(c) if !fresh => {
                        let full = c.shared.active.load(Ordering::Acquire) >= STREAMS_PER_CONNECTION;
                        match (full, open >= MAX_CONNECTIONS_PER_ENDPOINT, connecting) {
                            (false, _, _) | (true, true, _) => Next::Stream(c.lease(addr, true)),
                            (true, false, 0) => Next::Connect,
                            (true, false, _) => Next::Wait(connected.notified_owned()),
                        }
                    }
                    None if !fresh && connecting > 0 => Next::Wait(connected.notified_owned()),
                    _ => Next::Connect,
                }
            };
            match next {
                Next::Stream(stream) => return Ok(stream),
                Next::Wait(connected) => {
                    if tokio::time::timeout_at(deadline, connected).await.is_err() {
                        return Err(Failure::new(FailureKind::ConnectTimeout, format!("{addr} after {timeout:?}")));
                    }
                }
                Next::Connect => return self.open_h2(endpoint, home.shard, transport, deadline).await,
            }
        }
    }

    /// Opens a connection for `endpoint`, counted as connecting meanwhile, and takes the first stream on it.
    async fn open_h2(
        &self,
        endpoint: Endpoint,
        shard: usize,
        transport: &Transport,
        deadline: Instant,
    ) -> Result<H2Stream, Failure> {
        let addr = endpoint.1;
        let mut counted = Connecting { pool: self, endpoint, shard, done: false };
        {
            let mut idle = self.lock(shard);
            idle.h2.entry(endpoint).or_default().connecting += 1;
        }
        let timeout = deadline.saturating_duration_since(Instant::now());
        let connected = connect(addr, transport, timeout).await;
        let mut idle = self.lock(shard);
        let ep = idle.h2.entry(endpoint).or_default();
        counted.done = true;
        ep.connecting -= 1;
        ep.connected.notify_waiters();
        let (sender, task) = connected?;
        let shared =
            Arc::new(Shared { active: AtomicUsize::new(0), last_active_ms: AtomicU64::new(0), epoch: self.epoch });
        let conn = H2Conn { sender, shared, _task: task };
        let stream = conn.lease(addr, false);
        ep.conns.push(conn);
        Ok(stream)
    }
}

/// Counts a connect as under way; if the request is dropped before it ends, the count goes back down and the
/// requests waiting for it look again.
struct Connecting<'a> {
    pool: &'a Pool,
    endpoint: Endpoint,
    shard: usize,
    done: bool,
}

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut idle = self.pool.lock(self.shard);
        if let Some(ep) = idle.h2.get_mut(&self.endpoint) {
            ep.connecting = ep.connecting.saturating_sub(1);
            ep.connected.notify_waiters();
        }
    }
}

/// A new HTTP/2 connection: prior knowledge on TCP (h2c), ALPN `h2` on TLS.
async fn connect(
    addr: SocketAddr,
    transport: &Transport,
    timeout: Duration,
) -> Result<(http2::SendRequest<UpstreamBody>, AbortOnDrop), Failure> {
    let stream = transport.connect(addr, timeout).await?;
    let handshake = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        // Flow-control windows sized to the connection's bandwidth-delay product, as a large upload over one stream
        // would otherwise wait for a window update every 64 KiB.
        .adaptive_window(true)
        // SETTINGS_MAX_HEADER_LIST_SIZE: a larger response head (or trailer section) resets its stream (h2's own
        // default is 16 KiB; one cap for every upstream path).
        .max_header_list_size(MAX_RESPONSE_HEAD_BYTES as u32)
        .handshake(TokioIo::new(stream));
    let (sender, conn) = match tokio::time::timeout(timeout, handshake).await {
        Err(_) => return Err(Failure::new(FailureKind::ConnectTimeout, format!("{addr}: HTTP/2 handshake"))),
        Ok(Err(e)) => return Err(Failure::new(FailureKind::ResetBeforeResponse, format!("{addr}: {e}"))),
        Ok(Ok(handshake)) => handshake,
    };
    let task = tokio::spawn(async move {
        if let Err(error) = conn.await {
            tracing::debug!(%error, %addr, "upstream HTTP/2 connection ended");
        }
    });
    Ok((sender, AbortOnDrop(task.abort_handle())))
}
