//! The client listeners: accept connections and serve HTTP/1.1 and HTTP/2 on them — h2c by preface on the plain
//! listener, ALPN `h2` or `http/1.1` on the TLS listener.
//!
//! HTTP/1 connections support half-close (a client may shut down its write side after its request and still get
//! the response) and close with lingering when a response went out before the request body was read
//! (`client_io`).
//!
//! HTTP/2 connections are bounded as `http2` describes: concurrent streams, header list size, resets, and
//! `--max-requests-per-connection` streams per connection (`stream_limit`), after which the connection is sent
//! GOAWAY, as an HTTP/1 connection is sent `Connection: close`.
//!
//! [`Workers`] takes already-bound listeners and a shutdown future, so tests bind `127.0.0.1:0` and never race a
//! rebind. On shutdown the listener closes, open connections are asked to finish (keep-alive ends after the request
//! in flight), and requests in flight, replays and detached deliveries included, get up to the drain timeout.

mod client_io;
mod graceful;
mod head_timeout;
mod http2;
mod share;
mod stream_limit;
mod workers;

pub use client_io::Lingering;
pub use http2::{Http2Limits, MAX_LOCAL_ERROR_RESET_STREAMS, MAX_PENDING_ACCEPT_RESET_STREAMS};
pub use workers::{Listeners, WorkerError, WorkerHandles, Workers};

use crate::client::ConnState;
use crate::forward::ClientInfo;
use crate::Dataplane;
use client_io::ClientIo;
use futures::future::{Either, TryFutureExt};
use graceful::{Graceful, Watched, Watcher};
use head_timeout::HeadTimeout;
use http::Version;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use stream_limit::{Admission, StreamLimit, StreamRefused};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio_rustls::TlsAcceptor;

/// Largest HTTP/1 read buffer per client connection (hyper's minimum is 8 KiB).
const READ_BUFFER: usize = 64 * 1024;

/// How the client listeners behave.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Longest a client may take to send a request head (and, on the TLS listener, to finish the handshake).
    pub header_read_timeout: Duration,
    /// Longest the server waits for requests in flight after shutdown begins.
    pub drain_timeout: Duration,
    /// Bounds of the lingering close after a response sent before the body was read.
    pub lingering: Lingering,
    /// Connections close after this many requests (0: never): HTTP/1 with `Connection: close` on the last response,
    /// HTTP/2 with GOAWAY after the last stream (`stream_limit`).
    pub max_requests_per_connection: u32,
    /// The HTTP/2 limits a user may change.
    pub http2: Http2Limits,
    /// Hand new connections from a busier worker to the least loaded one (`share`).
    pub balance_connections: bool,
    /// Bodies declared at least this large on plain HTTP/1 connections are read past hyper ([`crate::client::DirectBody`]); 0: never.
    pub direct_body_min_bytes: u64,
    /// The longest request-target (path and query) served; longer ones get 414 ([`crate::route::prepare`]).
    pub max_target_bytes: usize,
}

/// Serves one listener (TLS when `tls` is given) on the calling thread's runtime until `shutdown` resolves, then
/// drains. [`Workers`] runs one per listener on each worker.
async fn serve_listener(
    listener: TcpListener,
    dp: Arc<Dataplane>,
    options: ServeOptions,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // The header read timeout is kept per connection instead (`head_timeout`): hyper's costs a timer per request.
        .header_read_timeout(None)
        .keep_alive(true)
        .half_close(true)
        // hyper's read buffer otherwise grows to ~400 KiB per connection for a fast sender; the body is spooled
        // anyway, so a bigger buffer buys nothing, and 1,000 slow uploads must fit in a few hundred MB.
        .max_buf_size(READ_BUFFER);
    http2::configure(&mut builder, options.http2);
    let builder = Arc::new(builder);
    let graceful = Graceful::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = accept(&listener, "client") => accepted,
            _ = &mut shutdown => break,
        };
        let assigned = dp.workers.assign_connection(options.balance_connections);
        let (open, elsewhere) = assigned.map_or((None, None), |assigned| (Some(assigned.open), assigned.elsewhere));
        let connection =
            Connection { dp: dp.clone(), builder: builder.clone(), options: options.clone(), addr, _open: open };
        match elsewhere {
            None => drop(tokio::spawn(connection.run(stream, tls.clone(), graceful.watcher()))),
            Some(worker) => hand_over(worker, connection, stream, tls.clone(), graceful.watcher()),
        }
    }
    drop(listener);
    tracing::info!(open = graceful.count(), "draining client connections");
    let drained = async {
        graceful.shutdown().await;
        dp.drain.detached_finished().await;
    };
    if tokio::time::timeout(options.drain_timeout, drained).await.is_err() {
        tracing::warn!("drain timeout reached with requests still in flight");
    }
}

/// The next connection on `listener`. An accept error (running out of file descriptors, say) must not end the
/// listener: it is logged and retried after a short pause.
pub(crate) async fn accept(listener: &TcpListener, which: &str) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(error) => {
                tracing::warn!(%error, listener = which, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves `connection` on another worker's runtime. The socket moves from this worker's epoll to that one's; the
/// connection stays watched by this listener's graceful shutdown, so the drain waits for it as for any other.
fn hand_over(worker: Handle, connection: Connection, stream: TcpStream, tls: Option<TlsAcceptor>, watcher: Watcher) {
    let addr = connection.addr;
    match stream.into_std() {
        Ok(stream) => drop(worker.spawn(async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => connection.run(stream, tls, watcher).await,
                Err(error) => tracing::warn!(%error, %addr, "a worker could not take over a client connection"),
            }
        })),
        Err(error) => tracing::warn!(%error, %addr, "a client connection could not be handed to another worker"),
    }
}

/// One accepted client connection.
struct Connection {
    dp: Arc<Dataplane>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    options: ServeOptions,
    addr: SocketAddr,
    /// Counts the connection on the worker serving it.
    _open: Option<share::OpenConnection>,
}

impl Connection {
    async fn run(self, stream: TcpStream, tls: Option<TlsAcceptor>, watcher: Watcher) {
        let _ = stream.set_nodelay(true);
        // TLS: hyper reads the decrypted stream above the socket, never the socket itself.
        let direct_min = Some(self.options.direct_body_min_bytes).filter(|&min| min > 0 && tls.is_none());
        let conn = Arc::new(ConnState::new(Arc::new(stream), direct_min));
        let io = ClientIo::new(conn.clone(), self.options.lingering);
        let addr = self.addr;
        let result = match tls {
            None => self.serve(io, conn, "http", watcher).await,
            Some(acceptor) => {
                let handshake = tokio::time::timeout(self.options.header_read_timeout, acceptor.accept(io)).await;
                match handshake {
                    Ok(Ok(tls_stream)) => self.serve(tls_stream, conn, "https", watcher).await,
                    Ok(Err(error)) => Err(format!("TLS handshake failed: {error}")),
                    Err(_) => Err("TLS handshake timed out".to_string()),
                }
            }
        };
        if let Err(error) = result {
            tracing::debug!(%error, %addr, "client connection ended with an error");
        }
    }

    async fn serve<I>(self, io: I, conn: Arc<ConnState>, scheme: &'static str, watcher: Watcher) -> Result<(), String>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let client = ClientInfo::new(self.addr, scheme);
        let (dp, max_requests) = (self.dp, self.options.max_requests_per_connection);
        let limits = crate::proxy::RequestLimits { max_requests, max_target_bytes: self.options.max_target_bytes };
        let mut head_timeout = HeadTimeout::new(conn.clone(), self.options.header_read_timeout);
        // HTTP/1 counts its requests in the request path; HTTP/2 streams are counted here, when hyper accepts them.
        let streams = Arc::new(StreamLimit::new(max_requests, self.options.http2.max_concurrent_streams));
        let admitted = streams.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let admission = match request.version() {
                Version::HTTP_2 => admitted.admit(),
                _ => Admission::Serve,
            };
            if admission == Admission::Refuse {
                // Before anything of it is proxied: hyper answers `REFUSED_STREAM`, which an honest client retries.
                return Either::Right(std::future::ready(Err(StreamRefused::new())));
            }
            // Boxed: the request's future is about 4.6 KB (routing, spooling, replay and their timers, all inline),
            // and hyper moves the future it is given into its dispatcher; a box makes that move a pointer copy.
            let handled = crate::proxy::handle(dp.clone(), client.clone(), conn.clone(), limits, request);
            Either::Left(Box::pin(handled).map_err(|never| match never {}))
        });
        // With upgrades: a `101` hands the connection over to a tunnel (`crate::tunnel`) instead of closing it.
        let connection = self.builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned();
        let expired = |cx: &mut std::task::Context<'_>| head_timeout.poll_expired(cx);
        match watcher.watch(connection, |connection| connection.graceful_shutdown(), expired, || streams.asked()).await
        {
            Watched::Ended(result) => result.map_err(|e| e.to_string()),
            Watched::Expired => Err(format!("no request head within {:?}", self.options.header_read_timeout)),
            Watched::Closed => {
                // Warned: no honest client does this, and it costs an attacker a new connection each time.
                tracing::warn!(client = %self.addr, "HTTP/2 client kept opening streams after GOAWAY: connection closed");
                Ok(())
            }
        }
    }
}
