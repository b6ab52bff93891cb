//! The client listener: accepts connections and serves HTTP/1.1 and HTTP/2 (h2c, by preface) on them.
//!
//! HTTP/1 connections support half-close (a client may shut down its write side after its request and still get
//! the response) and close with lingering when a response went out before the request body was read
//! ([`client_io`]).
//!
//! Entry points take an already-bound listener and a shutdown future, so tests bind `127.0.0.1:0` and never race a
//! rebind. On shutdown the listener closes, open connections are asked to finish (keep-alive ends after the request
//! in flight), and requests in flight, replays included, get up to the drain timeout to complete.

mod client_io;

pub use client_io::{ClientSignal, ConnState, Lingering};

use crate::forward::ClientInfo;
use crate::Dataplane;
use client_io::ClientIo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How the client listener behaves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Longest a client may take to send a request head.
    pub header_read_timeout: Duration,
    /// Longest the server waits for requests in flight after shutdown begins.
    pub drain_timeout: Duration,
    /// Bounds of the lingering close after a response sent before the body was read.
    pub lingering: Lingering,
    /// HTTP/1 connections close after this many requests (0: never).
    pub max_requests_per_connection: u32,
}

/// Serves clients until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    dp: Arc<Dataplane>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true)
        .half_close(true);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Running out of file descriptors must not end the listener: back off briefly.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let client = ClientInfo { addr, scheme: "http" };
        let conn = Arc::new(ConnState::new(Arc::new(stream)));
        let io = ClientIo::new(conn.clone(), options.lingering);
        let (dp, max_requests) = (dp.clone(), options.max_requests_per_connection);
        let service = hyper::service::service_fn(move |request| {
            crate::proxy::handle(dp.clone(), client, conn.clone(), max_requests, request)
        });
        let connection = builder.serve_connection(TokioIo::new(io), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %addr, "client connection ended with an error");
            }
        });
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
