//! Real upstreams on `127.0.0.1:0` for a dataplane to deliver to. Each answers every request 200 with its name and
//! the `Host` it was asked for, so that a test can tell that the right upstream answered the right host.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;

/// What upstream `name` answers to a request for `host`.
pub fn answer(name: &str, host: &str) -> String {
    format!("{name} {host}")
}

/// Starts upstream `name` on the calling runtime; it serves until the runtime ends.
pub async fn start(name: &str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let name: std::sync::Arc<str> = name.into();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let name = name.clone();
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let host = request.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
                let body = Bytes::from(answer(&name, host));
                async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    addr
}
