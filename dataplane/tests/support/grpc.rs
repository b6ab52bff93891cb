//! A real gRPC client: tonic's generic `Grpc` over one HTTP/2 connection of our own (h2c, or TLS with ALPN h2),
//! with a codec that passes messages as bytes (no codegen). The connection is ours so that a test knows every call
//! it makes goes over the one client connection.

use super::tls::ClientTls;
use super::ws::{transport, STEP};
use bytes::{Buf, BufMut, Bytes};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

pub type Client = tonic::client::Grpc<Connection>;

/// One HTTP/2 connection as the `Service` tonic sends its requests through; clones share it.
#[derive(Clone)]
pub struct Connection(SendRequest<tonic::body::Body>);

impl tower_service::Service<http::Request<tonic::body::Body>> for Connection {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, hyper::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(request))
    }
}

/// A client on a new HTTP/2 connection to `addr` (h2c, or TLS when `tls` is given).
pub async fn connect(addr: SocketAddr, tls: Option<&ClientTls>) -> Client {
    let io = transport(addr, tls).await;
    let (sender, connection) = tokio::time::timeout(
        STEP,
        hyper::client::conn::http2::handshake::<_, _, tonic::body::Body>(TokioExecutor::new(), TokioIo::new(io)),
    )
    .await
    .expect("HTTP/2 handshake in time")
    .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let origin: http::Uri = format!("{scheme}://grpc.test").parse().unwrap();
    tonic::client::Grpc::with_origin(Connection(sender), origin)
}

/// The path of a method of the peer's `holdfast.test.Echo`.
pub fn method(name: &str) -> http::uri::PathAndQuery {
    format!("/holdfast.test.Echo/{name}").parse().unwrap()
}

/// A request with ASCII metadata.
pub fn request<T>(message: T, metadata: &[(&'static str, &str)]) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    for (name, value) in metadata {
        request.metadata_mut().insert(*name, value.parse().unwrap());
    }
    request
}

/// A unary call, bounded in time.
pub async fn unary(
    client: &mut Client,
    name: &str,
    message: impl Into<Bytes>,
    metadata: &[(&'static str, &str)],
) -> Result<tonic::Response<Bytes>, Status> {
    let request = request(message.into(), metadata);
    let call = async {
        client.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
        client.unary(request, method(name), BytesCodec).await
    };
    tokio::time::timeout(STEP, call).await.expect("the unary call ended in time")
}

/// An ASCII metadata value of a response (headers and, for unary calls, trailers merged by tonic).
pub fn meta(metadata: &tonic::metadata::MetadataMap, name: &str) -> String {
    metadata.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

/// Messages as bytes, unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesCodec;

impl Codec for BytesCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = BytesCodec;
    type Decoder = BytesCodec;

    fn encoder(&mut self) -> BytesCodec {
        BytesCodec
    }

    fn decoder(&mut self) -> BytesCodec {
        BytesCodec
    }
}

impl Encoder for BytesCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for BytesCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
