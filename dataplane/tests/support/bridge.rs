//! A reference RFC 8441 bridge, about the least a proxy must do: an h2c server that enables extended CONNECT, and
//! for each `CONNECT :protocol websocket` opens an HTTP/1.1 Upgrade to one upstream, answers 200 on its 101 and
//! joins the two. It lets the RFC 8441 client and the WebSocket peer be proven together without the dataplane, so
//! that a failure through the dataplane is the dataplane's.

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Starts the bridge to `upstream`; returns its h2c address.
pub async fn start(upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(move |request| bridge(request, upstream));
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .enable_connect_protocol()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

async fn bridge(
    mut request: http::Request<Incoming>,
    upstream: SocketAddr,
) -> Result<http::Response<Empty<Bytes>>, Infallible> {
    let status = |code: u16| {
        let mut response = http::Response::new(Empty::new());
        *response.status_mut() = http::StatusCode::from_u16(code).unwrap();
        Ok(response)
    };
    let websocket = request.extensions().get::<hyper::ext::Protocol>().is_some_and(|p| p.as_str() == "websocket");
    if request.method() != http::Method::CONNECT || !websocket {
        return status(400);
    }
    let Ok(mut tcp) = TcpStream::connect(upstream).await else { return status(502) };
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        request.uri().path()
    );
    if tcp.write_all(head.as_bytes()).await.is_err() {
        return status(502);
    }
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 4096];
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return status(502),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    if !buffer.starts_with(b"HTTP/1.1 101") {
        return status(502);
    }
    // Bytes after the 101's head (the peer's greeting may come in the same read) belong to the tunnel.
    let early = buffer.split_off(head_end);
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut client = TokioIo::new(upgraded);
        if client.write_all(&early).await.is_ok() {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut tcp).await;
        }
    });
    status(200)
}
